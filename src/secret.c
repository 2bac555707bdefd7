/*
 * secret.c — passwords and tokens from a command, ~/.netrc or the
 * terminal; see secret.h.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "msync.h"
#include "secret.h"

void
secret_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* Reads one line (up to SECRET_MAX bytes) from fd into *out. */
static int
read_line(int fd, char **out)
{
	char	*b;
	size_t	 n = 0;
	ssize_t	 r;
	char	 ch;

	if ((b = malloc(SECRET_MAX + 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (;;) {
		r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || ch == '\n')
			break;
		if (n >= SECRET_MAX) {
			explicit_bzero(b, n);
			free(b);
			return MSYNC_ERR_TOOBIG;
		}
		b[n++] = ch;
	}
	if (n > 0 && b[n - 1] == '\r')
		n--;
	b[n] = '\0';
	*out = b;
	return 0;
}

int
secret_from_cmd(const char *cmd, char **out, char **why)
{
	int	 p[2], st, r;
	pid_t	 pid;
	char	*s = NULL, buf[256];

	*out = NULL;
	if (pipe2(p, O_CLOEXEC) != 0)
		return MSYNC_ERR_IO;
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return MSYNC_ERR_IO;
	}
	if (pid == 0) {
		if (dup2(p[1], STDOUT_FILENO) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	r = read_line(p[0], &s);
	/* Drain the rest, so the command never dies of SIGPIPE. */
	while (read(p[0], buf, sizeof(buf)) > 0)
		;
	explicit_bzero(buf, sizeof(buf));
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (r == MSYNC_ERR_TOOBIG) {
		/* Not a password: a usage error, not the wire's TOOBIG (76). */
		msync_why(why, "the password command '%s' printed a line over "
		    "%d bytes", log_esc(cmd, 120), SECRET_MAX);
		return MSYNC_ERR_USAGE;
	}
	if (r != 0)
		return r;
	/*
	 * The reasons name the command, never its output: what a failing
	 * password manager printed may still be the secret.  127 and 126
	 * are the shell's "not found" and "cannot run".
	 */
	if (WIFSIGNALED(st)) {
		msync_why(why, "the password command '%s' was killed by "
		    "signal %d", log_esc(cmd, 120), WTERMSIG(st));
		secret_free(s);
		return MSYNC_ERR_USAGE;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		int	 x = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		char	 sig[32] = "";

		/* The shell reports a killed command as 128 + signal. */
		if (x > 128 && x < 128 + 65)
			snprintf(sig, sizeof(sig), ": killed by signal %d",
			    x - 128);
		msync_why(why, "the password command '%s' failed (exit %d%s)",
		    log_esc(cmd, 120), x, x == 127 ? ": command not found" :
		    x == 126 ? ": cannot be run" : sig);
		secret_free(s);
		return MSYNC_ERR_USAGE;
	}
	if (s[0] == '\0') {
		msync_why(why, "the password command '%s' printed nothing",
		    log_esc(cmd, 120));
		secret_free(s);
		return MSYNC_ERR_USAGE;
	}
	*out = s;
	return 0;
}

/* The next .netrc token from *p (whitespace separated; quotes honoured). */
static int
netrc_token(char **p, char *tok, size_t max)
{
	char	*s = *p;
	size_t	 n = 0;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (*s == '\0')
		return 0;
	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			if (n < max - 1)
				tok[n++] = *s;
		}
		if (*s == '"')
			s++;
	} else {
		for (; *s != '\0' && *s != ' ' && *s != '\t' && *s != '\n' &&
		    *s != '\r'; s++)
			if (n < max - 1)
				tok[n++] = *s;
	}
	tok[n] = '\0';
	*p = s;
	return 1;
}

int
secret_from_netrc(const char *host, const char *user, char **out,
    char **why)
{
	char		 path[MSYNC_PATH_MAX], tok[SECRET_MAX + 1];
	char		*text = NULL, *p, *pw = NULL;
	const char	*env = getenv("NETRC"), *home = getenv("HOME");
	FILE		*f = NULL;
	size_t		 n;
	int		 in_machine = 0, user_ok = 0, r = MSYNC_ERR_NOTFOUND;

	*out = NULL;
	if (env != NULL && *env != '\0')
		snprintf(path, sizeof(path), "%s", env);
	else if (home != NULL)
		snprintf(path, sizeof(path), "%s/.netrc", home);
	else
		return MSYNC_ERR_NOTFOUND;
	if ((f = fopen(path, "re")) == NULL)
		return MSYNC_ERR_NOTFOUND;
	if ((text = calloc(1, 1024 * 1024 + 1)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	n = fread(text, 1, 1024 * 1024, f);
	text[n] = '\0';
	p = text;
	while (netrc_token(&p, tok, sizeof(tok))) {
		if (strcmp(tok, "machine") == 0 || strcmp(tok, "default") == 0) {
			if (in_machine && user_ok && pw != NULL)
				break;
			secret_free(pw);
			pw = NULL;
			user_ok = 0;
			in_machine = strcmp(tok, "default") == 0;
			if (!in_machine && netrc_token(&p, tok, sizeof(tok)))
				in_machine = strcmp(tok, host) == 0;
		} else if (strcmp(tok, "login") == 0) {
			if (netrc_token(&p, tok, sizeof(tok)))
				user_ok = user == NULL || strcmp(tok, user) == 0;
		} else if (strcmp(tok, "password") == 0) {
			if (netrc_token(&p, tok, sizeof(tok)) && in_machine &&
			    pw == NULL && (pw = strdup(tok)) == NULL) {
				r = MSYNC_ERR_NOMEM;
				goto out;
			}
		}
	}
	if (in_machine && user_ok && pw != NULL) {
		LOG3("password for %s from %s", log_esc(host, 200),
		    log_esc(path, 300));
		*out = pw;
		pw = NULL;	/* transferred */
		r = 0;
	}
out:
	(void)why;
	explicit_bzero(tok, sizeof(tok));
	if (text != NULL) {
		explicit_bzero(text, 1024 * 1024);
		free(text);
	}
	secret_free(pw);
	if (f != NULL)
		fclose(f);
	return r;
}

int
secret_prompt(const char *prompt, char **out, char **why)
{
	struct termios	 old, noecho;
	int		 fd, r, restore = 0;

	*out = NULL;
	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0)
		return MSYNC_ERR_NOTFOUND;
	if (tcgetattr(fd, &old) == 0) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		if (tcsetattr(fd, TCSAFLUSH, &noecho) == 0)
			restore = 1;
	}
	(void)!write(fd, prompt, strlen(prompt));
	r = read_line(fd, out);
	(void)!write(fd, "\n", 1);
	if (restore)
		(void)tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	if (r != 0)
		msync_why(why, "cannot read the password from the terminal");
	return r;
}

int
secret_get(const char *passcmd, const char *host, const char *user,
    char **out, char **why)
{
	char	 prompt[512];
	int	 r;

	if (passcmd != NULL)
		return secret_from_cmd(passcmd, out, why);
	if ((r = secret_from_netrc(host, user, out, why)) != MSYNC_ERR_NOTFOUND)
		return r;
	snprintf(prompt, sizeof(prompt), "password for %s@%s: ",
	    log_esc(user != NULL ? user : "", 100), log_esc(host, 200));
	r = secret_prompt(prompt, out, why);
	if (r == MSYNC_ERR_NOTFOUND)
		msync_why(why, "no password for %s@%s: give --passcmd, add it "
		    "to ~/.netrc, or run on a terminal",
		    log_esc(user != NULL ? user : "", 100),
		    log_esc(host, 200));
	return r == MSYNC_ERR_NOTFOUND ? MSYNC_ERR_USAGE : r;
}
