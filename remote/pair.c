/*
 * pair.c — the local transport: this program re-executed as
 * "msync --server [-v...] [server args]" on a socketpair.  The second
 * brain shares our stderr (server mode marks its own messages), so there
 * is no relay.  It gets EOF on stdin when the brain closes its end, and
 * exits then.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msync.h"
#include "transport.h"
#include "remote.h"

/*
 * Starts the local peer brain: opts->self (or "msync" from $PATH when
 * NULL) with "--server" on one end of a socketpair; the brain gets the
 * other end (rfd == wfd).
 * Returns 0 on success; MSYNC_ERR_UNREACHABLE with *why set when the
 * program cannot be run; other negative MSYNC_ERR_*.
 */
int
pair_start(const struct transport_opts *o, struct transport *t, char **why)
{
	const char	*self = o->self != NULL ? o->self : "msync";
	char		**argv = NULL;
	size_t		 argc = 0;
	int		 sv[2] = { -1, -1 }, r, e;
	pid_t		 pid;

	if ((r = transport_argv_add(&argv, &argc, self)) != 0 ||
	    (r = transport_server_words(o, 0, &argv, &argc)) != 0)
		goto out;
	r = MSYNC_ERR_NOMEM;
	if ((t->prog = strdup(self)) == NULL)
		goto out;
	r = MSYNC_ERR_IO;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		goto out;
	if ((r = transport_spawn(argv, sv[1], -1, &pid, why)) != 0)
		goto out;
	t->rfd = t->wfd = sv[0];
	t->pid = pid;
	t->kind = TRANSPORT_PAIR;
	sv[0] = -1;	/* transferred */
	r = 0;
out:
	e = errno;
	if (r != 0)
		transport_abandon(t);
	transport_close_pair(sv);
	transport_argv_free(argv);
	errno = e;
	return r;
}
