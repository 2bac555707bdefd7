/*
 * rsh.c — the default transport: the ssh program (or -e CMD, or
 * $MSYNC_RSH) started as an argv, never through a local shell, on a
 * socketpair, as openrsync does:
 *
 *	CMD [-p port] [-l user] host msync --server [-v...] [server args]
 *
 * ssh joins the words after the host with spaces and the remote shell
 * parses them, so each is quoted for the remote shell.  The peer's stderr
 * goes through a relay that prefixes each line with the host and keeps
 * the last line for transport_finish.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msync.h"
#include "transport.h"
#include "remote.h"

/*
 * Builds the argv for the rsh transport (see the top of this file).
 * Returns 0 on success, negative MSYNC_ERR_* on failure (*why may be
 * set for a bad -e command).
 */
static int
rsh_argv(const struct transport_opts *o, const struct loc *l,
    char ***argvp, char **why)
{
	const char	*rsh = o->rsh;
	char		**argv = NULL, *q = NULL, port[16];
	size_t		 argc = 0;
	int		 r;

	*argvp = NULL;
	if (rsh == NULL && ((rsh = getenv("MSYNC_RSH")) == NULL ||
	    rsh[0] == '\0'))
		rsh = "ssh";
	if ((r = transport_split(rsh, &argv, &argc)) != 0 || argc == 0) {
		if (r == 0 || r == MSYNC_ERR_USAGE) {
			r = MSYNC_ERR_USAGE;
			(void)transport_asprintf(why, "bad remote shell "
			    "command '%.64s'", rsh);
		}
		goto out;
	}
	if (l->port != 0) {
		snprintf(port, sizeof(port), "%d", l->port);
		if ((r = transport_argv_add(&argv, &argc, "-p")) != 0 ||
		    (r = transport_argv_add(&argv, &argc, port)) != 0)
			goto out;
	}
	if (l->user != NULL &&
	    ((r = transport_argv_add(&argv, &argc, "-l")) != 0 ||
	    (r = transport_argv_add(&argv, &argc, l->user)) != 0))
		goto out;
	if ((r = transport_argv_add(&argv, &argc, l->host)) != 0)
		goto out;
	r = MSYNC_ERR_NOMEM;
	if ((q = transport_shquote(o->remote_msync != NULL ?
	    o->remote_msync : "msync", 1)) == NULL)
		goto out;
	if ((r = transport_argv_add(&argv, &argc, q)) != 0 ||
	    (r = transport_server_words(o, 1, &argv, &argc)) != 0)
		goto out;
	*argvp = argv;
	argv = NULL;	/* transferred */
out:
	free(q);
	transport_argv_free(argv);
	return r;
}

/*
 * Starts the peer through the rsh program for l (a remote location):
 * the brain gets one end of a socketpair (rfd == wfd), the program the
 * other as stdin and stdout; its stderr goes to the relay.
 * Returns 0 on success; MSYNC_ERR_UNREACHABLE with *why set when the
 * program cannot be run; other negative MSYNC_ERR_*.
 */
int
rsh_start(const struct transport_opts *o, const struct loc *l,
    struct transport *t, char **why)
{
	char	**argv = NULL;
	int	 sv[2] = { -1, -1 }, ep[2] = { -1, -1 }, wp[2] = { -1, -1 };
	int	 r, e;
	pid_t	 pid = -1, rpid = -1;

	if ((r = rsh_argv(o, l, &argv, why)) != 0)
		goto out;
	r = MSYNC_ERR_NOMEM;
	if ((t->host = strdup(l->host)) == NULL ||
	    (t->prog = strdup(argv[0])) == NULL)
		goto out;
	r = MSYNC_ERR_IO;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1 || pipe2(wp, O_CLOEXEC) == -1)
		goto out;
	if ((r = transport_spawn(argv, sv[1], ep[1], &pid, why)) != 0)
		goto out;
	close(sv[1]);
	close(ep[1]);
	sv[1] = ep[1] = -1;
	if ((r = transport_relay(ep[0], l->host, wp[1], &rpid)) != 0)
		goto out;
	t->rfd = t->wfd = sv[0];
	t->pid = pid;
	t->err_pid = rpid;
	t->why_fd = wp[0];
	t->kind = TRANSPORT_RSH;
	sv[0] = wp[0] = -1;	/* transferred */
	pid = -1;
	r = 0;
out:
	e = errno;
	if (pid != -1) {
		/* The relay could not start: do not leave ssh behind. */
		close(sv[0]);
		sv[0] = -1;
		kill(pid, SIGTERM);
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
	}
	if (r != 0)
		transport_abandon(t);
	transport_close_pair(sv);
	transport_close_pair(ep);
	transport_close_pair(wp);
	transport_argv_free(argv);
	errno = e;
	return r;
}
