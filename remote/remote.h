/*
 * remote.h — private to remote/: what the transports (pair.c, rsh.c,
 * libssh.c) share with the dispatcher in transport.c.  Nothing outside
 * remote/ includes this file.
 *
 * All memory belongs to the caller unless stated otherwise.  Functions
 * return 0 or a negative MSYNC_ERR_*.
 */
#ifndef REMOTE_H
#define REMOTE_H

#include <sys/types.h>

#include "transport.h"

/* Which transport a struct transport came from (transport.kind). */
enum transport_kind {
	TRANSPORT_NONE = 0,	/* not started, or finished */
	TRANSPORT_PAIR = 1,	/* local socketpair, re-executed self */
	TRANSPORT_RSH = 2,	/* the ssh program (or -e CMD) */
	TRANSPORT_LIBSSH = 3,	/* forked libssh helper */
	TRANSPORT_MSYNCS = 4	/* forked TLS helper, msyncs.c */
};

/*
 * The why pipe: a child (the stderr relay, or the libssh helper) writes
 * at most one message into it just before it exits.  The first byte says
 * what follows:
 *   WHY_LAST  the last non-empty line the peer's stderr carried
 *   WHY_FULL  a complete one-line reason, meant for the user as is
 */
#define WHY_LAST	'L'
#define WHY_FULL	'F'
#define WHY_MAX		512	/* bytes kept of a why message */

/* Exit status of the libssh helper when the connection failed. */
#define LIBSSH_EXIT_FAIL	255
/*
 * The msyncs:// helper's exit status when the daemon refused the login
 * (with a WHY_FULL line): a person must fix the secret or certificate,
 * so it becomes MSYNC_ERR_AUTH (exit 77), not "unreachable".
 */
#define MSYNCS_EXIT_AUTH	77

/* A line relay for the peer's stderr (transport_relay_feed). */
struct relaybuf {
	char	 line[1024];		/* the line being collected */
	size_t	 ll;			/* bytes in line */
	char	 last[WHY_MAX + 1];	/* the last non-empty line, NUL'd */
	size_t	 lastlen;		/* bytes in last */
};

/* pair.c */
int	 pair_start(const struct transport_opts *, struct transport *,
	    char **why);

/* rsh.c */
int	 rsh_start(const struct transport_opts *, const struct loc *,
	    struct transport *, char **why);

/* libssh.c */
int	 libssh_start(const struct transport_opts *, const struct loc *,
	    struct transport *, char **why);

/* msyncs.c */
int	 msyncs_start(const struct transport_opts *, const struct loc *,
	    struct transport *, char **why);

/* transport.c: helpers shared by the transports */
void	 transport_init(struct transport *);
void	 transport_abandon(struct transport *);
void	 transport_close_pair(int [2]);
int	 transport_split(const char *, char ***, size_t *);
void	 transport_argv_free(char **);
int	 transport_argv_add(char ***, size_t *, const char *);
char	*transport_shquote(const char *, int);
int	 transport_server_words(const struct transport_opts *, int,
	    char ***, size_t *);
int	 transport_cmdline(const struct transport_opts *, char **);
int	 transport_spawn(char *const *, int, int, pid_t *, char **);
int	 transport_relay(int, const char *, int, pid_t *);
void	 transport_relay_feed(struct relaybuf *, const char *, const char *,
	    size_t);
void	 transport_relay_end(struct relaybuf *, const char *, int);
void	 transport_close_except(int, int, int);
void	 transport_child_signals(void);
void	 transport_null_stdio(int);
void	 transport_why_line(int, int, const char *);
int	 transport_helper(struct transport *, int, const char *,
	    const char *, int (*)(void *, int, int), void *);
int	 transport_asprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

#endif /* REMOTE_H */
