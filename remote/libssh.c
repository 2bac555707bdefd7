/*
 * libssh.c — the built-in ssh client (--ssh=libssh, libssh 0.10).
 *
 * A forked helper process runs the whole ssh session, so the brain sees
 * only one end of a socketpair, exactly as with the ssh program.  The
 * helper connects, checks the host key against known_hosts, authenticates
 * with the agent and the user's keys, execs "msync --server" on a session
 * channel, then pumps bytes between the socketpair and the channel, and
 * the channel's stderr to ours with "HOST: " in front.  It exits with the
 * remote exit status.
 *
 * Host keys: a known key goes; a changed key (or one of another type)
 * is always refused; an unknown key is refused unless
 * --accept-new-host-key, which adds it to known_hosts.
 *
 * Files: unlike OpenSSH, which uses the home directory from the password
 * database, config, keys and known_hosts are looked up in $HOME/.ssh when
 * $HOME is set.
 *
 * A failure before the channel runs is written as one line into the why
 * pipe (WHY_FULL) and the helper exits with LIBSSH_EXIT_FAIL, which
 * transport_finish turns into MSYNC_ERR_UNREACHABLE and that line.
 *
 * libssh is not linked: it is loaded (dlopen) by libssh_start, the only
 * way in, so that every other start of msync (the server above all, and
 * the client over the ssh program) does not pay the dynamic linking of
 * libssh and the Kerberos libraries it pulls in.  Its header still gives
 * the types and the prototypes, which lib's members are made from.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "msync.h"
#include "transport.h"
#include "remote.h"

#define PUMP_BUF	(64 * 1024)	/* bytes buffered each way */
#define POLL_MS		1000		/* poll(2) timeout, a safety net */
#define LIBSSH_SONAME	"libssh.so.4"	/* what -lssh would have named */

/* The libssh functions msync calls, looked up by lsh_load. */
#define LSH_FUNCS(X) \
	X(ssh_channel_close) \
	X(ssh_channel_free) \
	X(ssh_channel_get_exit_status) \
	X(ssh_channel_is_closed) \
	X(ssh_channel_is_open) \
	X(ssh_channel_new) \
	X(ssh_channel_open_session) \
	X(ssh_channel_poll) \
	X(ssh_channel_read_nonblocking) \
	X(ssh_channel_request_exec) \
	X(ssh_channel_send_eof) \
	X(ssh_channel_window_size) \
	X(ssh_channel_write) \
	X(ssh_clean_pubkey_hash) \
	X(ssh_connect) \
	X(ssh_disconnect) \
	X(ssh_finalize) \
	X(ssh_free) \
	X(ssh_get_error) \
	X(ssh_get_fd) \
	X(ssh_get_fingerprint_hash) \
	X(ssh_get_publickey_hash) \
	X(ssh_get_server_publickey) \
	X(ssh_init) \
	X(ssh_is_connected) \
	X(ssh_key_free) \
	X(ssh_new) \
	X(ssh_options_parse_config) \
	X(ssh_options_set) \
	X(ssh_session_is_known_server) \
	X(ssh_session_update_known_hosts) \
	X(ssh_string_free_char) \
	X(ssh_userauth_list) \
	X(ssh_userauth_none) \
	X(ssh_userauth_publickey_auto)

/*
 * Pointers to the functions of LSH_FUNCS, each of its prototype's type,
 * filled once by lsh_load (before the helper forks: it inherits them).
 */
static struct {
#define LSH_MEMBER(f)	__typeof__(f)	*f;
	LSH_FUNCS(LSH_MEMBER)
#undef LSH_MEMBER
} lib;
static int	lib_loaded;	/* lib is filled */

/* What the helper works with; all borrowed from the parent's memory. */
struct lsh {
	const struct transport_opts	*o;	/* borrowed */
	const struct loc		*l;	/* borrowed */
	const char			*cmd;	/* borrowed; remote command */
	int				 sock;	/* our end of the socketpair */
	int				 whyfd;	/* write end of the why pipe */
	struct relaybuf			 rb;	/* the channel's stderr */
};

/*
 * Writes a one-line reason into the why pipe (WHY_FULL).  After this the
 * helper exits with LIBSSH_EXIT_FAIL.
 */
static void __attribute__((format(printf, 2, 3)))
lsh_fail(struct lsh *h, const char *fmt, ...)
{
	char	 buf[WHY_MAX + 1];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	transport_why_line(h->whyfd, WHY_FULL, buf);
	h->whyfd = -1;	/* one message per pipe */
}

/*
 * Returns the SHA256 fingerprint of the server's host key ("SHA256:...")
 * as a string to free with ssh_string_free_char, or NULL.
 */
static char *
lsh_fingerprint(ssh_session s)
{
	ssh_key		 key = NULL;
	unsigned char	*hash = NULL;
	size_t		 hlen = 0;
	char		*fp = NULL;

	if (lib.ssh_get_server_publickey(s, &key) != SSH_OK)
		return NULL;
	if (lib.ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
	    &hlen) == 0) {
		fp = lib.ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
		    hlen);
		lib.ssh_clean_pubkey_hash(&hash);
	}
	lib.ssh_key_free(key);
	return fp;
}

/*
 * Checks the server's host key against known_hosts, with the policy at
 * the top of this file.
 * Returns 0 to go on, -1 after lsh_fail.
 */
static int
lsh_hostkey(struct lsh *h, ssh_session s)
{
	const char	*host = h->l->host;
	char		*fp;
	int		 r = -1;

	fp = lsh_fingerprint(s);
	switch (lib.ssh_session_is_known_server(s)) {
	case SSH_KNOWN_HOSTS_OK:
		r = 0;
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
		lsh_fail(h, "host key for %s has changed (now %s): someone "
		    "may be intercepting the connection; refusing to connect "
		    "(if the change is expected, remove the old key from "
		    "known_hosts)", host, fp != NULL ? fp : "?");
		break;
	case SSH_KNOWN_HOSTS_OTHER:
		lsh_fail(h, "host key for %s is of another type than the one "
		    "in known_hosts (now %s): someone may be intercepting the "
		    "connection; refusing to connect", host,
		    fp != NULL ? fp : "?");
		break;
	case SSH_KNOWN_HOSTS_NOT_FOUND:
	case SSH_KNOWN_HOSTS_UNKNOWN:
		if (!h->o->accept_new_host_key) {
			lsh_fail(h, "host key for %s is not known (%s); "
			    "check it, then run again with "
			    "--accept-new-host-key, or connect once with ssh",
			    host, fp != NULL ? fp : "?");
			break;
		}
		if (lib.ssh_session_update_known_hosts(s) != SSH_OK) {
			lsh_fail(h, "cannot add the host key for %s to "
			    "known_hosts: %s", host, lib.ssh_get_error(s));
			break;
		}
		fprintf(stderr, "%s: added host key %s to known_hosts\n",
		    host, fp != NULL ? fp : "?");
		r = 0;
		break;
	case SSH_KNOWN_HOSTS_ERROR:
	default:
		lsh_fail(h, "cannot check the host key of %s: %s", host,
		    lib.ssh_get_error(s));
		break;
	}
	if (fp != NULL)
		lib.ssh_string_free_char(fp);
	return r;
}

/*
 * Authenticates: "none" first (it also tells which methods the server
 * takes), then public keys.  ssh_userauth_publickey_auto tries the
 * agent's keys (when $SSH_AUTH_SOCK is set) and then the identity files
 * (IdentityFile, or the default ~/.ssh/id_*); keys with a passphrase
 * must be in the agent.
 * Returns 0 when authenticated, -1 after lsh_fail.
 */
static int
lsh_auth(struct lsh *h, ssh_session s)
{
	const char	*host = h->l->host;
	int		 rc, methods;

	rc = lib.ssh_userauth_none(s, NULL);
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	if (rc == SSH_AUTH_ERROR) {
		lsh_fail(h, "cannot reach %s: authentication failed: %s",
		    host, lib.ssh_get_error(s));
		return -1;
	}
	methods = lib.ssh_userauth_list(s, NULL);
	if (methods & SSH_AUTH_METHOD_PUBLICKEY) {
		rc = lib.ssh_userauth_publickey_auto(s, NULL, NULL);
		if (rc == SSH_AUTH_SUCCESS)
			return 0;
		if (rc == SSH_AUTH_ERROR) {
			lsh_fail(h, "cannot reach %s: authentication failed: "
			    "%s", host, lib.ssh_get_error(s));
			return -1;
		}
	}
	lsh_fail(h, "cannot reach %s: authentication refused (%s); add "
	    "a key to the ssh agent or ~/.ssh and to the server's "
	    "authorized_keys", host, (methods & SSH_AUTH_METHOD_PUBLICKEY) ?
	    "no key was accepted" : "the server takes no public keys");
	return -1;
}

/*
 * Opens the session: options (host, ~/.ssh/config, then the user and
 * port given on the command line, which win), connect, host key, auth.
 * Returns 0 on success, -1 after lsh_fail.
 */
static int
lsh_connect(struct lsh *h, ssh_session s)
{
	const char	*home = getenv("HOME"), *host = h->l->host;
	char		 dir[4096];
	int		 v;

	if (home != NULL && home[0] != '\0') {
		snprintf(dir, sizeof(dir), "%s/.ssh", home);
		if (lib.ssh_options_set(s, SSH_OPTIONS_SSH_DIR, dir) < 0)
			goto opt;
	}
	if (h->o->verbose >= 3) {
		v = h->o->verbose >= 4 ? SSH_LOG_PACKET : SSH_LOG_PROTOCOL;
		(void)lib.ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &v);
	}
	if (lib.ssh_options_set(s, SSH_OPTIONS_HOST, host) < 0)
		goto opt;
	if (lib.ssh_options_parse_config(s, NULL) < 0) {
		lsh_fail(h, "cannot reach %s: bad ssh configuration: %s",
		    host, lib.ssh_get_error(s));
		return -1;
	}
	if (h->l->user != NULL &&
	    lib.ssh_options_set(s, SSH_OPTIONS_USER, h->l->user) < 0)
		goto opt;
	if (h->l->port != 0 &&
	    lib.ssh_options_set(s, SSH_OPTIONS_PORT, &h->l->port) < 0)
		goto opt;
	if (lib.ssh_connect(s) != SSH_OK) {
		lsh_fail(h, "cannot reach %s: %s", host, lib.ssh_get_error(s));
		return -1;
	}
	if (lsh_hostkey(h, s) != 0 || lsh_auth(h, s) != 0)
		return -1;
	return 0;
opt:
	lsh_fail(h, "cannot reach %s: bad ssh option: %s", host,
	    lib.ssh_get_error(s));
	return -1;
}

/*
 * Copies the channel's pending stderr to ours through the line relay.
 * Reading also makes libssh process incoming packets (window adjusts,
 * EOF, close).
 * Returns 0, or -1 when the session failed.
 */
static int
lsh_stderr(struct lsh *h, ssh_channel ch, int *progress)
{
	char	 eb[4096];
	int	 n;

	while ((n = lib.ssh_channel_read_nonblocking(ch, eb, sizeof(eb),
	    1)) > 0) {
		transport_relay_feed(&h->rb, h->l->host, eb, (size_t)n);
		*progress = 1;
	}
	return n == SSH_ERROR ? -1 : 0;
}

/*
 * Pumps bytes both ways until the channel's stdout ends: socket to
 * channel (never more than the channel window, so a write cannot block
 * on a peer that is itself blocked writing to us), channel to socket
 * (non-blocking), and the channel's stderr to ours.  EOF from the brain
 * becomes a channel EOF; the channel's EOF becomes a shutdown of the
 * socket, so the brain reads EOF.
 * Returns 0 when the channel ended, -1 when the connection failed.
 */
static int
lsh_pump(struct lsh *h, ssh_session s, ssh_channel ch)
{
	static char	 in[PUMP_BUF], out[PUMP_BUF];
	struct pollfd	 pfd[2];
	size_t		 inlen = 0, inoff = 0, outlen = 0, outoff = 0, n;
	ssize_t		 w;
	uint32_t	 win;
	int		 sock_eof = 0, sent_eof = 0, chan_eof = 0;
	int		 sock_dead = 0, shut = 0, progress, rc;

	for (;;) {
		progress = 0;
		if (lsh_stderr(h, ch, &progress) != 0)
			return -1;

		/* Channel stdout into out. */
		if (outlen == 0 && !chan_eof) {
			rc = lib.ssh_channel_read_nonblocking(ch, out, sizeof(out),
			    0);
			if (rc == SSH_EOF)
				chan_eof = progress = 1;
			else if (rc < 0)
				return -1;
			else if (rc > 0) {
				outlen = (size_t)rc;
				outoff = 0;
				progress = 1;
			}
		}

		/* out to the brain; if the brain is gone, drop it. */
		if (outlen > 0 && sock_dead)
			outlen = 0;
		if (outlen > 0) {
			w = write(h->sock, out + outoff, outlen);
			if (w > 0) {
				outoff += (size_t)w;
				outlen -= (size_t)w;
				progress = 1;
			} else if (w == -1 && errno != EAGAIN &&
			    errno != EINTR) {
				sock_dead = 1;
				outlen = 0;
			}
		}
		if (chan_eof && outlen == 0 && !shut) {
			(void)shutdown(h->sock, SHUT_WR);
			shut = 1;
		}
		if (chan_eof && outlen == 0)
			break;

		/* The brain into in. */
		if (inlen == 0 && !sock_eof) {
			w = read(h->sock, in, sizeof(in));
			if (w > 0) {
				inlen = (size_t)w;
				inoff = 0;
				progress = 1;
			} else if (w == 0 || (errno != EAGAIN &&
			    errno != EINTR)) {
				sock_eof = progress = 1;
			}
		}

		/* in to the channel, within the window. */
		if (inlen > 0 && lib.ssh_channel_is_closed(ch))
			inlen = 0;
		if (inlen > 0 && (win = lib.ssh_channel_window_size(ch)) > 0) {
			n = inlen < win ? inlen : win;
			rc = lib.ssh_channel_write(ch, in + inoff, (uint32_t)n);
			if (rc == SSH_ERROR)
				return -1;
			if (rc > 0) {
				inoff += (size_t)rc;
				inlen -= (size_t)rc;
				progress = 1;
			}
		}
		if (sock_eof && inlen == 0 && !sent_eof &&
		    lib.ssh_channel_is_open(ch)) {
			if (lib.ssh_channel_send_eof(ch) == SSH_ERROR)
				return -1;
			sent_eof = 1;
		}

		/* Closed (or the session died) without an EOF. */
		if (lib.ssh_channel_is_closed(ch) && outlen == 0 &&
		    lib.ssh_channel_poll(ch, 0) <= 0)
			break;
		if (progress)
			continue;

		pfd[0].fd = h->sock;
		pfd[0].events = 0;
		if (inlen == 0 && !sock_eof)
			pfd[0].events |= POLLIN;
		if (outlen > 0)
			pfd[0].events |= POLLOUT;
		pfd[1].fd = lib.ssh_get_fd(s);
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, POLL_MS) == -1 && errno != EINTR)
			return -1;
	}
	return lsh_stderr(h, ch, &progress);
}

/*
 * The helper's body: session, channel, pump, exit status.
 * Returns the exit status for the helper process.
 */
static int
lsh_run(struct lsh *h)
{
	ssh_session	 s = NULL;
	ssh_channel	 ch = NULL;
	const char	*host = h->l->host;
	int		 st = LIBSSH_EXIT_FAIL;

	if (lib.ssh_init() < 0) {
		lsh_fail(h, "cannot reach %s: libssh initialisation failed",
		    host);
		goto out;
	}
	if ((s = lib.ssh_new()) == NULL) {
		lsh_fail(h, "cannot reach %s: out of memory", host);
		goto out;
	}
	if (lsh_connect(h, s) != 0)
		goto out;
	if ((ch = lib.ssh_channel_new(s)) == NULL ||
	    lib.ssh_channel_open_session(ch) != SSH_OK) {
		lsh_fail(h, "cannot reach %s: cannot open a session: %s",
		    host, lib.ssh_get_error(s));
		goto out;
	}
	if (lib.ssh_channel_request_exec(ch, h->cmd) != SSH_OK) {
		lsh_fail(h, "cannot start msync on %s: %s", host,
		    lib.ssh_get_error(s));
		goto out;
	}

	/* The channel runs: from here on, the remote decides. */
	if (lsh_pump(h, s, ch) != 0) {
		transport_relay_end(&h->rb, host, -1);
		lsh_fail(h, "connection to %s lost: %s", host,
		    lib.ssh_get_error(s));
		goto out;
	}
	close(h->sock);
	h->sock = -1;
	transport_relay_end(&h->rb, host, -1);
	if ((st = lib.ssh_channel_get_exit_status(ch)) < 0 || st > 255) {
		lsh_fail(h, "connection to %s lost: msync ended without an "
		    "exit status", host);
		st = LIBSSH_EXIT_FAIL;
		goto out;
	}
	if (st != 0 && h->rb.lastlen > 0)
		transport_why_line(h->whyfd, WHY_LAST, h->rb.last);
out:
	if (h->sock != -1)
		close(h->sock);
	if (ch != NULL) {
		if (lib.ssh_channel_is_open(ch))
			lib.ssh_channel_close(ch);
		lib.ssh_channel_free(ch);
	}
	if (s != NULL) {
		if (lib.ssh_is_connected(s))
			lib.ssh_disconnect(s);
		lib.ssh_free(s);
	}
	lib.ssh_finalize();
	return st;
}

/*
 * Loads libssh (LIBSSH_SONAME, or MSYNC_TEST_LIBSSH's name in the tests)
 * and looks up the functions of LSH_FUNCS into lib, once per process;
 * the library stays loaded.  On failure *why (owned by the caller) says
 * what is missing.  Returns 0, MSYNC_ERR_UNREACHABLE when the library or
 * a function is missing, or MSYNC_ERR_NOMEM.
 */
static int
lsh_load(char **why)
{
	const char	*name, *miss = NULL;
	void		*dl;

	if (lib_loaded)
		return 0;
	if ((name = getenv("MSYNC_TEST_LIBSSH")) == NULL)
		name = LIBSSH_SONAME;
	if ((dl = dlopen(name, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		if (asprintf(why, "--ssh=libssh needs libssh, which cannot "
		    "be loaded (%s): install it (Debian: libssh-4), or use "
		    "the ssh program (--ssh=openssh)", dlerror()) < 0) {
			*why = NULL;
			return MSYNC_ERR_NOMEM;
		}
		return MSYNC_ERR_UNREACHABLE;
	}
	/* A cast, as POSIX allows: dlsym's void * is a function's address. */
#define LSH_LOOKUP(f) \
	if (miss == NULL && \
	    (lib.f = (__typeof__(lib.f))dlsym(dl, #f)) == NULL) \
		miss = #f;
	LSH_FUNCS(LSH_LOOKUP)
#undef LSH_LOOKUP
	if (miss != NULL) {
		(void)dlclose(dl);
		if (asprintf(why, "--ssh=libssh: the libssh loaded (%s) has "
		    "no %s: it is older than msync needs", name, miss) < 0) {
			*why = NULL;
			return MSYNC_ERR_NOMEM;
		}
		return MSYNC_ERR_UNREACHABLE;
	}
	lib_loaded = 1;
	return 0;
}

/*
 * Starts the libssh helper for l (a remote location).  The brain gets one
 * end of a socketpair (rfd == wfd); the helper, a fork of this process,
 * the other.  The helper writes the channel's stderr to ours itself, so
 * there is no separate relay (err_pid is -1).
 * Returns 0 on success, negative MSYNC_ERR_* on failure.  Connection
 * failures show up later, at transport_finish.
 */
/* The helper process's body (transport_helper). */
static int
libssh_helper(void *arg, int sock, int whyfd)
{
	struct lsh	*h = arg;

	h->sock = sock;
	h->whyfd = whyfd;
	(void)fcntl(h->sock, F_SETFL, O_NONBLOCK);
	return lsh_run(h);
}

int
libssh_start(const struct transport_opts *o, const struct loc *l,
    struct transport *t, char **why)
{
	struct lsh	 h;
	char		*cmd = NULL;
	int		 r;

	if ((r = lsh_load(why)) != 0)
		return r;
	if ((r = transport_cmdline(o, &cmd)) != 0)
		return r;
	memset(&h, 0, sizeof(h));
	h.o = o;
	h.l = l;
	h.cmd = cmd;
	r = transport_helper(t, TRANSPORT_LIBSSH, l->host, "libssh",
	    libssh_helper, &h);
	free(cmd);
	return r;
}
