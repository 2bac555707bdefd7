/*
 * secret.h — where a password (or an OAuth2 access token) comes from,
 * as mbsync's PassCmd and curl's .netrc: a command the user names
 * (--passcmd CMD, run by /bin/sh -c, its first output line), else a
 * matching ~/.netrc entry ($NETRC overrides the path), else a prompt on
 * the terminal (/dev/tty, echo off).  Never from argv; never printed: the
 * secret is wiped (explicit_bzero) by secret_free.
 *
 * Shared by the IMAP store and (later) the config file's passcmd.
 *
 * All memory belongs to the caller unless stated otherwise.  Functions
 * return 0 or a negative MSYNC_ERR_*; a failure comes with a one-line
 * reason in *why (owned by the caller) that never contains the secret.
 */
#ifndef SECRET_H
#define SECRET_H

#define SECRET_MAX	8192	/* bytes of a password or token */

/*
 * Runs cmd with /bin/sh -c and returns its first line (without the line
 * end) in *out.  A command that fails (non-zero exit) or prints nothing
 * is MSYNC_ERR_USAGE.
 */
int	 secret_from_cmd(const char *cmd, char **out, char **why);
/*
 * Looks up "machine host login user password P" in ~/.netrc (or $NETRC).
 * MSYNC_ERR_NOTFOUND if there is no such entry (or no file).
 */
int	 secret_from_netrc(const char *host, const char *user, char **out,
	    char **why);
/* Prompts on /dev/tty; MSYNC_ERR_NOTFOUND if there is no terminal. */
int	 secret_prompt(const char *prompt, char **out, char **why);
/* passcmd if not NULL, else .netrc, else the prompt. */
int	 secret_get(const char *passcmd, const char *host, const char *user,
	    char **out, char **why);
/* Wipes and frees.  Accepts NULL. */
void	 secret_free(char *);

#endif /* SECRET_H */
