/*
 * transport.c — starting and reaping the peer brain: the dispatch to the
 * three transports (pair.c, rsh.c, libssh.c), transport_finish, and what
 * they share: argv building, the remote command line, fork+exec with
 * exec-failure reporting, and the stderr relay.
 *
 * The remote command line is fixed: "msync --server [-v...] [server
 * args]".  No user data goes into it; the store path travels inside the
 * protocol.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msync.h"
#include "transport.h"
#include "remote.h"

#define SPLIT_MAX	256	/* words in a -e command or server args */
#define KILL_GRACE_MS	2000	/* after SIGTERM, before SIGKILL */
#define RELAY_WAIT_MS	1000	/* for the relay, once the child is gone */

/*
 * Sets every field of a struct transport to "nothing started".
 */
void
transport_init(struct transport *t)
{
	memset(t, 0, sizeof(*t));
	t->rfd = t->wfd = -1;
	t->pid = t->err_pid = -1;
	t->kind = TRANSPORT_NONE;
	t->why_fd = -1;
}

/*
 * Undoes a transport start that failed half-way: frees what t owns and
 * sets it back to "nothing started".
 */
void
transport_abandon(struct transport *t)
{
	free(t->host);
	free(t->prog);
	transport_init(t);
}

/* Closes both ends of a pipe or socketpair, where open. */
void
transport_close_pair(int fds[2])
{
	for (int i = 0; i < 2; i++)
		if (fds[i] != -1) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/*
 * write(2) for messages that are a courtesy: a failure is ignored (and
 * _FORTIFY_SOURCE's warn_unused_result is satisfied).
 */
static void
transport_write_quiet(int fd, const void *buf, size_t n)
{
	ssize_t	 w;

	w = write(fd, buf, n);
	(void)w;
}

/*
 * asprintf(3) that returns 0 or MSYNC_ERR_NOMEM and leaves *out NULL on
 * failure.
 */
int
transport_asprintf(char **out, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(out, fmt, ap);
	va_end(ap);
	if (n == -1) {
		*out = NULL;
		return MSYNC_ERR_NOMEM;
	}
	return 0;
}

/*
 * Frees a NULL-terminated argv and its strings.  Accepts NULL.
 */
void
transport_argv_free(char **argv)
{
	size_t	 i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/*
 * Appends a copy of s to the NULL-terminated argv *argvp of *argcp words.
 * Returns 0 on success, MSYNC_ERR_NOMEM or MSYNC_ERR_TOOBIG on failure
 * (the argv is unchanged then).
 */
int
transport_argv_add(char ***argvp, size_t *argcp, const char *s)
{
	char	**nv, *c;

	if (*argcp >= SPLIT_MAX * 2)
		return MSYNC_ERR_TOOBIG;
	if ((c = strdup(s)) == NULL)
		return MSYNC_ERR_NOMEM;
	if ((nv = reallocarray(*argvp, *argcp + 2, sizeof(*nv))) == NULL) {
		free(c);
		return MSYNC_ERR_NOMEM;
	}
	nv[(*argcp)++] = c;
	nv[*argcp] = NULL;
	*argvp = nv;
	return 0;
}

/*
 * Splits a command (-e CMD, $MSYNC_RSH, server args) into words, as rsync
 * does: whitespace separates words; '...' is literal; "..." is literal
 * but for \" and \\; outside quotes a backslash takes the next character
 * literally.  The words are appended to the NULL-terminated *argvp (which
 * may start NULL) and *argcp is updated.
 * Returns 0 on success, MSYNC_ERR_USAGE for an unterminated quote or a
 * trailing backslash, MSYNC_ERR_TOOBIG, or MSYNC_ERR_NOMEM.
 */
int
transport_split(const char *cmd, char ***argvp, size_t *argcp)
{
	char	*w = NULL;
	size_t	 wl = 0;
	int	 inword = 0, r = 0;
	char	 q = '\0';

	if ((w = malloc(strlen(cmd) + 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (; *cmd != '\0'; cmd++) {
		if (q == '\'') {
			if (*cmd == '\'')
				q = '\0';
			else
				w[wl++] = *cmd;
		} else if (q == '"') {
			if (*cmd == '"')
				q = '\0';
			else if (*cmd == '\\' &&
			    (cmd[1] == '"' || cmd[1] == '\\'))
				w[wl++] = *++cmd;
			else
				w[wl++] = *cmd;
		} else if (*cmd == ' ' || *cmd == '\t' || *cmd == '\n') {
			if (inword) {
				w[wl] = '\0';
				if ((r = transport_argv_add(argvp, argcp,
				    w)) != 0)
					goto out;
				wl = 0;
				inword = 0;
			}
		} else {
			inword = 1;
			if (*cmd == '\'' || *cmd == '"')
				q = *cmd;
			else if (*cmd == '\\') {
				if (cmd[1] == '\0') {
					r = MSYNC_ERR_USAGE;
					goto out;
				}
				w[wl++] = *++cmd;
			} else
				w[wl++] = *cmd;
		}
	}
	if (q != '\0') {
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	if (inword) {
		w[wl] = '\0';
		r = transport_argv_add(argvp, argcp, w);
	}
out:
	free(w);
	return r;
}

/*
 * Quotes one word for the remote shell (ssh joins its command words with
 * spaces and the remote user's shell parses the result).  Words of safe
 * characters stay as they are; others are put in single quotes, a '
 * becoming '\''.  With tilde set, a leading "~/" or "~user/" is left
 * unquoted so that the remote shell still expands it.
 * Returns a new string, or NULL when out of memory.
 */
char *
transport_shquote(const char *s, int tilde)
{
	const char	*p, *rest = s;
	char		*out, *w;
	size_t		 n, pre = 0;

	if (tilde && s[0] == '~') {
		for (p = s + 1; *p != '\0' && *p != '/'; p++)
			if (!isalnum((unsigned char)*p) &&
			    strchr("._-", *p) == NULL)
				break;
		if (*p == '/')
			p++;	/* the slash ends the tilde-prefix unquoted */
		if (p[-1] == '/' || *p == '\0') {
			pre = p - s;
			rest = p;
		}
	}
	for (p = rest; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) &&
		    strchr("@%+=:,./_-", *p) == NULL)
			break;
	if (*p == '\0' && (*rest != '\0' || pre > 0))
		return strdup(s);

	/* Worst case: every byte a quote ('\'' is 4 bytes), plus ''. */
	n = strlen(rest);
	if (n > (SIZE_MAX - pre - 3) / 4)
		return NULL;
	if ((out = malloc(pre + n * 4 + 3)) == NULL)
		return NULL;
	memcpy(out, s, pre);
	w = out + pre;
	*w++ = '\'';
	for (p = rest; *p != '\0'; p++) {
		if (*p == '\'') {
			memcpy(w, "'\\''", 4);
			w += 4;
		} else
			*w++ = *p;
	}
	*w++ = '\'';
	*w = '\0';
	return out;
}

/*
 * Appends the fixed server arguments to *argvp: "--server", one "-v" per
 * level of opts->verbose, then the words of opts->server_args.  With
 * quote set, each server-args word is quoted for the remote shell.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
transport_server_words(const struct transport_opts *o, int quote,
    char ***argvp, size_t *argcp)
{
	char	**extra = NULL, *q;
	size_t	 nextra = 0, i;
	int	 r, v;

	if ((r = transport_argv_add(argvp, argcp, "--server")) != 0)
		return r;
	for (v = 0; v < o->verbose && v < 4; v++)
		if ((r = transport_argv_add(argvp, argcp, "-v")) != 0)
			return r;
	if (o->server_args == NULL)
		return 0;
	if ((r = transport_split(o->server_args, &extra, &nextra)) != 0)
		goto out;
	for (i = 0; i < nextra; i++) {
		if (quote) {
			if ((q = transport_shquote(extra[i], 0)) == NULL) {
				r = MSYNC_ERR_NOMEM;
				goto out;
			}
			r = transport_argv_add(argvp, argcp, q);
			free(q);
		} else
			r = transport_argv_add(argvp, argcp, extra[i]);
		if (r != 0)
			goto out;
	}
out:
	transport_argv_free(extra);
	return r;
}

/*
 * Builds the remote command line as one string, quoted for the remote
 * shell: "msync --server [-v...] [server args]", with opts->remote_msync
 * in place of "msync" when set.  This is what ssh would send for the rsh
 * transport, and what the libssh helper asks the channel to exec.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
transport_cmdline(const struct transport_opts *o, char **out)
{
	char	**words = NULL, *q = NULL, *s = NULL;
	size_t	 nwords = 0, i, len = 0;
	int	 r = MSYNC_ERR_NOMEM;

	*out = NULL;
	if ((q = transport_shquote(o->remote_msync != NULL ?
	    o->remote_msync : "msync", 1)) == NULL)
		goto out;
	if ((r = transport_argv_add(&words, &nwords, q)) != 0 ||
	    (r = transport_server_words(o, 1, &words, &nwords)) != 0)
		goto out;
	for (i = 0; i < nwords; i++)
		len += strlen(words[i]) + 1;
	r = MSYNC_ERR_NOMEM;
	if ((s = malloc(len + 1)) == NULL)
		goto out;
	s[0] = '\0';
	for (i = 0; i < nwords; i++) {
		if (i > 0)
			strcat(s, " ");
		strcat(s, words[i]);
	}
	*out = s;
	s = NULL;	/* transferred */
	r = 0;
out:
	free(q);
	free(s);
	transport_argv_free(words);
	return r;
}

/*
 * In a forked child: closes every descriptor from 3 up, except the ones
 * given (-1 for none).  Uses close_range(2) where there is one.
 */
void
transport_close_except(int a, int b, int c)
{
	int	 keep[3] = { a, b, c }, i, j, t, lo, maxfd;
	long	 om;

	/* Sort the keepers so the gaps between them can be closed. */
	for (i = 0; i < 3; i++)
		for (j = i + 1; j < 3; j++)
			if (keep[j] < keep[i]) {
				t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	om = sysconf(_SC_OPEN_MAX);
	maxfd = om < 0 || om > 65536 ? 65536 : (int)om;
	lo = 3;
	for (i = 0; i <= 3; i++) {
		int	 hi = i < 3 ? keep[i] : INT_MAX;

		if (hi < lo)
			continue;
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
		if (hi > lo && close_range(lo, hi == INT_MAX ? ~0U :
		    (unsigned int)hi - 1, 0) == 0) {
			lo = hi == INT_MAX ? hi : hi + 1;
			continue;
		}
#endif
		for (t = lo; t < hi && t < maxfd; t++)
			close(t);
		lo = hi == INT_MAX ? hi : hi + 1;
	}
}

/*
 * Writes one why message (see remote.h) into fd: the kind byte, then msg
 * with control characters replaced by '?', cut at WHY_MAX bytes, in one
 * write(2).  Errors are ignored: the message is a courtesy.
 */
void
transport_why_line(int fd, int kind, const char *msg)
{
	char	 buf[WHY_MAX + 1];
	size_t	 n;

	if (fd < 0 || msg == NULL)
		return;
	buf[0] = (char)kind;
	for (n = 0; msg[n] != '\0' && n < WHY_MAX; n++)
		buf[n + 1] = (unsigned char)msg[n] < 0x20 ||
		    msg[n] == 0x7f ? '?' : msg[n];
	transport_write_quiet(fd, buf, n + 1);
}

/*
 * In a forked child that does not exec a program: points stdin and
 * stdout at /dev/null (unless one of them is keep), so the child holds
 * on to none of the brain's standard descriptors.
 */
void
transport_null_stdio(int keep)
{
	int	 fd;

	if ((fd = open("/dev/null", O_RDWR)) == -1)
		return;
	if (keep != STDIN_FILENO && fd != STDIN_FILENO)
		(void)dup2(fd, STDIN_FILENO);
	if (keep != STDOUT_FILENO && fd != STDOUT_FILENO)
		(void)dup2(fd, STDOUT_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/*
 * Starts a helper process (the libssh and msyncs:// transports): a
 * socketpair whose one end becomes the brain's fd, and a close-on-exec
 * why pipe for the helper's one-line reason when it fails.  A pipe and
 * not the socketpair, because the socketpair carries the brain's bytes
 * and a reason must not be mistaken for them.  The child has fresh
 * signal dispositions, SIGPIPE ignored (it writes to sockets), only the
 * two ends open, /dev/null as stdin and stdout, and exits with
 * run(arg, sock, whyfd).  host and prog are copied for messages.
 * Returns 0 with t filled, or MSYNC_ERR_NOMEM / MSYNC_ERR_IO (t then
 * abandoned).
 */
int
transport_helper(struct transport *t, int kind, const char *host,
    const char *prog, int (*run)(void *, int, int), void *arg)
{
	int	 sv[2] = { -1, -1 }, wp[2] = { -1, -1 }, r, e;
	pid_t	 pid;

	r = MSYNC_ERR_NOMEM;
	if ((t->host = strdup(host)) == NULL ||
	    (t->prog = strdup(prog)) == NULL)
		goto out;
	r = MSYNC_ERR_IO;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    pipe2(wp, O_CLOEXEC) == -1)
		goto out;
	fflush(stderr);
	if ((pid = fork()) == -1)
		goto out;
	if (pid == 0) {
		transport_child_signals();
		signal(SIGPIPE, SIG_IGN);
		transport_close_except(sv[1], wp[1], -1);
		transport_null_stdio(sv[1]);
		_exit(run(arg, sv[1], wp[1]));
	}
	t->rfd = t->wfd = sv[0];
	t->pid = pid;
	t->err_pid = -1;
	t->why_fd = wp[0];
	t->kind = kind;
	sv[0] = wp[0] = -1;	/* transferred */
	r = 0;
out:
	e = errno;
	if (r != 0)
		transport_abandon(t);
	transport_close_pair(sv);
	transport_close_pair(wp);
	errno = e;
	return r;
}

/*
 * Resets the signal dispositions and mask a forked child inherits from
 * the brain, so the child behaves like a freshly started program.
 */
void
transport_child_signals(void)
{
	sigset_t	 none;

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Forks and executes argv (found on $PATH unless argv[0] has a '/') with
 * sock as its stdin and stdout and errfd (or our stderr, if -1) as its
 * stderr.  An exec failure is reported back through a close-on-exec pipe,
 * so a missing program is known here, not later.
 * Returns 0 and the child in *pidp, MSYNC_ERR_UNREACHABLE with *why set
 * when the program cannot be run, or MSYNC_ERR_IO.
 */
int
transport_spawn(char *const *argv, int sock, int errfd, pid_t *pidp,
    char **why)
{
	int	 ep[2] = { -1, -1 }, e, r = MSYNC_ERR_IO, s2, e2;
	ssize_t	 n;
	pid_t	 pid;

	*pidp = -1;
	if (pipe2(ep, O_CLOEXEC) == -1)
		return MSYNC_ERR_IO;
	if ((pid = fork()) == -1)
		goto out;
	if (pid == 0) {
		transport_child_signals();
		/* Move out of 0..2 first, so dup2 cannot clobber. */
		s2 = fcntl(sock, F_DUPFD_CLOEXEC, 3);
		e2 = errfd >= 0 ? fcntl(errfd, F_DUPFD_CLOEXEC, 3) : -1;
		if (s2 == -1 || (errfd >= 0 && e2 == -1) ||
		    dup2(s2, 0) == -1 || dup2(s2, 1) == -1 ||
		    (e2 >= 0 && dup2(e2, 2) == -1))
			goto fail;
		/* Nothing else of ours goes through exec. */
#if defined(__GLIBC__) && defined(CLOSE_RANGE_CLOEXEC)
		if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == -1)
#endif
		{
			long	 om = sysconf(_SC_OPEN_MAX);
			int	 fd, maxfd = om < 0 || om > 65536 ?
				    65536 : (int)om;

			for (fd = 3; fd < maxfd; fd++)
				if (fd != ep[1])
					(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		}
		execvp(argv[0], argv);
fail:
		e = errno;
		transport_write_quiet(ep[1], &e, sizeof(e));
		_exit(127);
	}
	close(ep[1]);
	ep[1] = -1;
	do
		n = read(ep[0], &e, sizeof(e));
	while (n == -1 && errno == EINTR);
	if (n == 0) {
		*pidp = pid;
		r = 0;
		goto out;
	}
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(e)) {
		r = MSYNC_ERR_UNREACHABLE;
		if (transport_asprintf(why, "cannot run '%s': %s", argv[0],
		    strerror(e)) != 0)
			r = MSYNC_ERR_NOMEM;
	} else
		errno = EIO;
out:
	e = errno;
	if (ep[0] != -1)
		close(ep[0]);
	if (ep[1] != -1)
		close(ep[1]);
	errno = e;
	return r;
}

/*
 * Writes one line of the peer's stderr to ours as "PREFIX: LINE", with
 * control characters escaped (\xNN) so a hostile peer cannot drive the
 * terminal, and remembers it as the last line.  A trailing '\r' is
 * dropped; an empty line is skipped.
 */
static void
relay_emit(struct relaybuf *rb, const char *prefix)
{
	char	 out[128 + 4 * sizeof(rb->line) + 2];
	size_t	 o, i, len = rb->ll;
	int	 n;

	rb->ll = 0;
	while (len > 0 && rb->line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	rb->lastlen = len > WHY_MAX ? WHY_MAX : len;
	memcpy(rb->last, rb->line, rb->lastlen);
	rb->last[rb->lastlen] = '\0';
	n = snprintf(out, 128, "%.100s: ", prefix);
	o = n < 0 ? 0 : (size_t)n;
	for (i = 0; i < len; i++) {
		unsigned char	 c = (unsigned char)rb->line[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			o += snprintf(out + o, 5, "\\x%02x", c);
		else
			out[o++] = c;
	}
	out[o++] = '\n';
	transport_write_quiet(STDERR_FILENO, out, o);
}

/*
 * Feeds n bytes of the peer's stderr to the line relay rb: each complete
 * line goes to our stderr as "PREFIX: LINE" (over-long lines in pieces).
 * Used by the relay process and by the libssh helper.
 */
void
transport_relay_feed(struct relaybuf *rb, const char *prefix,
    const char *buf, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			relay_emit(rb, prefix);
			continue;
		}
		if (rb->ll == sizeof(rb->line))
			relay_emit(rb, prefix);
		rb->line[rb->ll++] = buf[i];
	}
}

/*
 * Ends the line relay rb: writes out a final unterminated line, then,
 * when whyfd >= 0, leaves the last non-empty line in the why pipe.
 */
void
transport_relay_end(struct relaybuf *rb, const char *prefix, int whyfd)
{
	relay_emit(rb, prefix);
	if (whyfd >= 0 && rb->lastlen > 0)
		transport_why_line(whyfd, WHY_LAST, rb->last);
}

/*
 * The relay's main loop, in the forked relay process: reads the peer's
 * stderr from rfd until EOF, writes each line to stderr with the prefix,
 * then writes the last non-empty line into the why pipe and exits.
 */
static void __attribute__((noreturn))
relay_run(int rfd, const char *prefix, int whyfd)
{
	struct relaybuf	 rb;
	char		 buf[4096];
	ssize_t		 n;

	memset(&rb, 0, sizeof(rb));
	for (;;) {
		n = read(rfd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		transport_relay_feed(&rb, prefix, buf, (size_t)n);
	}
	transport_relay_end(&rb, prefix, whyfd);
	_exit(0);
}

/*
 * Forks the stderr relay: a small process that copies the peer's stderr
 * (read end rfd) to ours, each line prefixed with "PREFIX: ", and at the
 * end leaves the last line in the why pipe (write end whyfd).  The relay
 * keeps no other descriptor of ours open: in particular not the brain's
 * socket, whose EOF must reach the peer.
 * Returns 0 and the relay in *pidp, or MSYNC_ERR_IO.
 */
int
transport_relay(int rfd, const char *prefix, int whyfd, pid_t *pidp)
{
	pid_t	 pid;

	*pidp = -1;
	if ((pid = fork()) == -1)
		return MSYNC_ERR_IO;
	if (pid == 0) {
		transport_child_signals();
		/* ^C reaches the peer; let the relay drain what it says. */
		signal(SIGINT, SIG_IGN);
		transport_close_except(rfd, whyfd, -1);
		transport_null_stdio(rfd);
		relay_run(rfd, prefix, whyfd);
	}
	*pidp = pid;
	return 0;
}

/*
 * Starts the peer brain for location l: a local pair when l->host is
 * NULL, else the libssh helper (opts->use_libssh) or the rsh program.
 * *out is always initialised, so transport_finish may be called on it.
 * Returns 0 on success; MSYNC_ERR_UNREACHABLE with *why set when the peer
 * cannot be started; other negative MSYNC_ERR_* (*why may be set).
 */
int
transport_start(const struct transport_opts *o, const struct loc *l,
    struct transport *out, char **why)
{
	transport_init(out);
	*why = NULL;
	if (o == NULL || l == NULL)
		return MSYNC_ERR_INTERNAL;
	if (l->host == NULL)
		return pair_start(o, out, why);
	if (l->host[0] == '\0' || l->host[0] == '-')
		return MSYNC_ERR_USAGE;
	if (l->daemon != NULL)
		return msyncs_start(o, l, out, why);
	if (o->use_libssh)
		return libssh_start(o, l, out, why);
	return rsh_start(o, l, out, why);
}

/*
 * A descriptor that becomes readable when pid exits (pidfd_open, Linux
 * 5.3), or -1 where there is none: transport_reap then naps instead.
 */
static int
transport_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

/*
 * Waits for pid for at most timeout_ms (< 0: no limit).  When time runs
 * out it sends SIGTERM, waits KILL_GRACE_MS more, then SIGKILL.  *ws
 * gets the wait status; *killed is set if we had to signal it.
 * The wait is a poll on a pidfd, so the reap follows the exit at once:
 * naps of up to 50 ms made every run over ssh end that much later than
 * the ssh it waited for (issue 10.4).  Without a pidfd it naps.
 * Returns 0 on success, MSYNC_ERR_IO when waitpid fails.
 */
static int
transport_reap(pid_t pid, int timeout_ms, int *ws, int *killed)
{
	long long	 deadline, left;
	struct timespec	 nap;
	struct pollfd	 pfd;
	long		 step = 1;
	int		 sig = SIGTERM, pidfd = -1;
	pid_t		 r;

	*killed = 0;
	deadline = msync_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	if (timeout_ms >= 0)
		pidfd = transport_pidfd(pid);
	for (;;) {
		if (timeout_ms < 0 || sig == 0)
			r = waitpid(pid, ws, 0);
		else
			r = waitpid(pid, ws, WNOHANG);
		if (r == pid)
			break;
		if (r == -1 && errno != EINTR) {
			if (pidfd != -1)
				close(pidfd);
			return MSYNC_ERR_IO;
		}
		if (r == -1)
			continue;
		if ((left = deadline - msync_now_ms()) <= 0) {
			kill(pid, sig);
			*killed = 1;
			if (sig == SIGKILL)
				sig = 0;	/* now wait for good */
			else {
				sig = SIGKILL;
				deadline = msync_now_ms() + KILL_GRACE_MS;
			}
			continue;
		}
		if (pidfd != -1) {
			pfd.fd = pidfd;
			pfd.events = POLLIN;
			pfd.revents = 0;
			(void)poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
			continue;
		}
		nap.tv_sec = 0;
		nap.tv_nsec = step * 1000000L;
		nanosleep(&nap, NULL);
		if (step < 50)
			step *= 2;
	}
	if (pidfd != -1)
		close(pidfd);
	return 0;
}

/*
 * Reads what the why pipe holds (see remote.h) into buf (size > WHY_MAX)
 * with control characters made '?'.  *kind gets the kind byte, or 0
 * when the pipe was empty.
 */
static void
transport_read_why(int fd, int *kind, char *buf)
{
	char	 tmp[WHY_MAX + 2];
	ssize_t	 n;
	size_t	 i;

	*kind = 0;
	buf[0] = '\0';
	if (fd < 0)
		return;
	(void)fcntl(fd, F_SETFL, O_NONBLOCK);
	do
		n = read(fd, tmp, sizeof(tmp) - 1);
	while (n == -1 && errno == EINTR);
	if (n < 2)
		return;
	*kind = tmp[0];
	for (i = 1; i < (size_t)n && i <= WHY_MAX; i++)
		buf[i - 1] = (unsigned char)tmp[i] < 0x20 ||
		    tmp[i] == 0x7f ? '?' : tmp[i];
	buf[i - 1] = '\0';
}

/*
 * Turns how the child ended into a return code and a one-line *why (see
 * transport.h for the codes).  st is the exit status (128+signal for a
 * signal), killed says we killed it, wkind/wtext the why pipe's message.
 * Returns the code; MSYNC_ERR_NOMEM if *why cannot be allocated.
 */
static int
transport_explain(const struct transport *t, int st, int sig, int killed,
    int wkind, const char *wtext, char **why)
{
	const char	*host = t->host != NULL ? t->host : "local peer";
	const char	*prog = t->prog != NULL ? t->prog : "peer";
	char		 paren[WHY_MAX + 8], who[256];
	int		 code = MSYNC_ERR_PEER_EOF, r;

	paren[0] = '\0';
	if (wkind == WHY_LAST && wtext[0] != '\0')
		snprintf(paren, sizeof(paren), " (%s)", wtext);
	if (st == 0 && !killed && !sig)
		return 0;
	if (t->kind == TRANSPORT_PAIR)
		snprintf(who, sizeof(who), "local msync --server");
	else
		snprintf(who, sizeof(who), "%.64s to %.128s", prog, host);
	if (killed)
		r = transport_asprintf(why, "%s did not exit in time; killed",
		    who);
	else if (sig)
		r = transport_asprintf(why, "%s killed by signal %d", who,
		    st - 128);
	else if ((t->kind == TRANSPORT_LIBSSH ||
	    t->kind == TRANSPORT_MSYNCS) && st == LIBSSH_EXIT_FAIL &&
	    wkind == WHY_FULL) {
		code = MSYNC_ERR_UNREACHABLE;
		r = transport_asprintf(why, "%s", wtext);
	} else if (t->kind == TRANSPORT_MSYNCS && st == MSYNCS_EXIT_AUTH &&
	    wkind == WHY_FULL) {
		code = MSYNC_ERR_AUTH;
		r = transport_asprintf(why, "%s", wtext);
	} else if (t->kind != TRANSPORT_PAIR && st == 255) {
		code = MSYNC_ERR_UNREACHABLE;
		r = transport_asprintf(why, "cannot reach %s: %s exited with "
		    "status 255%s", host, prog, paren);
	} else if (t->kind != TRANSPORT_PAIR && (st == 127 || st == 126)) {
		code = MSYNC_ERR_UNREACHABLE;
		r = transport_asprintf(why, "cannot start msync on %s: %s%s",
		    host, st == 127 ? "command not found" :
		    "permission denied", paren);
	} else if (t->kind == TRANSPORT_PAIR)
		r = transport_asprintf(why, "local msync --server exited with "
		    "status %d", st);
	else
		r = transport_asprintf(why, "msync on %s exited with status "
		    "%d%s", host, st, paren);
	return r != 0 ? r : code;
}

/*
 * Closes the brain's fds, reaps the child and the relay, and says why
 * the child ended.  See transport.h.  status and why may be NULL.
 */
int
transport_finish(struct transport *t, int timeout_ms, int *status,
    char **why)
{
	char	 wtext[WHY_MAX + 1], *dummy = NULL;
	int	 ws = 0, killed = 0, rkilled, st = 0, sig = 0, wkind = 0;
	int	 r = 0, e, dst;

	if (why == NULL)
		why = &dummy;
	if (status == NULL)
		status = &dst;
	*why = NULL;
	*status = 0;
	if (t == NULL || t->kind == TRANSPORT_NONE)
		return 0;
	if (t->rfd != -1)
		close(t->rfd);
	if (t->wfd != -1 && t->wfd != t->rfd)
		close(t->wfd);
	t->rfd = t->wfd = -1;

	if (t->pid != -1) {
		if ((r = transport_reap(t->pid, timeout_ms, &ws,
		    &killed)) != 0)
			goto out;
		if (WIFEXITED(ws))
			st = WEXITSTATUS(ws);
		else if (WIFSIGNALED(ws)) {
			st = 128 + WTERMSIG(ws);
			sig = 1;
		}
		t->pid = -1;
	}
	if (t->err_pid != -1) {
		/* Gone with the child, unless a grandchild holds the pipe. */
		if ((r = transport_reap(t->err_pid, RELAY_WAIT_MS, &ws,
		    &rkilled)) != 0)
			goto out;
		t->err_pid = -1;
	}
	transport_read_why(t->why_fd, &wkind, wtext);
	*status = st;
	r = transport_explain(t, st, sig, killed, wkind, wtext, why);
out:
	e = errno;
	if (t->why_fd != -1)
		close(t->why_fd);
	free(t->host);
	free(t->prog);
	transport_init(t);
	free(dummy);
	errno = e;
	return r;
}
