/*
 * transport.h — how the two brains get connected.  A transport only moves
 * bytes: it hands the local brain a pair of file descriptors that lead to
 * the peer brain, and later reaps whatever it started.  The brain never
 * knows which transport it runs over.
 *
 *   pair    local to local: this program re-executed as "msync --server"
 *           on a socketpair
 *   rsh     the ssh program (or -e CMD / $MSYNC_RSH): CMD [-p port]
 *           [-l user] host msync --server
 *   libssh  the built-in client: a forked helper process runs the libssh
 *           session and pumps bytes between a socketpair and an exec
 *           channel running "msync --server"
 *
 * All memory belongs to the caller unless stated otherwise.  Functions
 * return 0 or a negative MSYNC_ERR_*.
 */
#ifndef TRANSPORT_H
#define TRANSPORT_H

#include <sys/types.h>

/* Where a store is (see loc_parse). */
struct loc {
	char	*user;		/* owned; NULL = default */
	char	*host;		/* owned; NULL = this machine */
	int	 port;		/* 0 = default */
	char	*path;		/* owned; the store root */
	int	 layout;	/* enum store_layout */
	char	*inbox;		/* owned; mbox ";inbox=PATH", or NULL */
	int	 format;	/* mbox ";format=": MBOXFMT_MBOXRD (0), _MBOXO */
	char	*text;		/* owned; canonical form, for the state key */
	struct dloc *daemon;	/* owned; msyncs:// only (msyncs.h) */
};

/*
 * Parses a location given on the command line:
 *   PATH | maildir:PATH | maildir:PATH;layout=fs
 *   mbox:PATH[;inbox=P][;format=mboxo|mboxrd]
 *   [user@]host:PATH            (rsync's rule: a ':' before the first '/')
 *   ssh://[user@]host[:port]/PATH   (a leading "/~/" means the home dir)
 *   imap://... imaps://...          an IMAP account (src/imap/url.h): kept
 *                                   verbatim in path, layout LAYOUT_IMAP
 *   msyncs://[user@]host[:port]/module[/path][;param...]  (msyncs.h)
 * A host that starts with '-' is refused (MSYNC_ERR_USAGE).
 */
int	 loc_parse(const char *arg, struct loc *out);
void	 loc_free(struct loc *);

struct transport_opts {
	const char	*self;		/* borrowed; path of this binary */
	const char	*rsh;		/* borrowed; -e CMD or NULL ($MSYNC_RSH, "ssh") */
	const char	*remote_msync;	/* borrowed; NULL = "msync" */
	int		 use_libssh;	/* --ssh=libssh */
	int		 accept_new_host_key;
	int		 verbose;	/* passed on as -v to the server */
	const char	*server_args;	/* borrowed; extra fixed args, e.g. "-T..." */
	const char	*daemon_run;	/* borrowed; msyncs://: a server-to-
					   server RUN line (s2s.h), or NULL */
};

struct transport {
	int	 rfd;		/* read end for the brain */
	int	 wfd;		/* write end for the brain (may equal rfd) */
	pid_t	 pid;		/* the child we started, or -1 */
	pid_t	 err_pid;	/* the stderr relay, or -1 */
	/* Private to remote/: set by transport_start, used by _finish. */
	int	 kind;		/* enum transport_kind (remote/remote.h) */
	int	 why_fd;	/* read end of the why pipe, or -1 */
	char	*host;		/* owned; the peer's host, for messages */
	char	*prog;		/* owned; the program started, for messages */
};

/*
 * Starts the peer brain for location l (l->host NULL: a local pair).
 * The peer's stderr reaches ours with each line prefixed by the host.
 * Failure to start (no such program, host unreachable, authentication
 * refused, remote msync missing) gives MSYNC_ERR_UNREACHABLE and a
 * one-line message in *why (owned by the caller).
 */
int	 transport_start(const struct transport_opts *, const struct loc *l,
	    struct transport *out, char **why);
/*
 * Closes the fds and reaps the child (waiting at most timeout_ms, then
 * killing it; timeout_ms < 0 waits without limit).  *status gets the
 * child's exit status (or 128+signal).  A child that died of the
 * connection failing is reported via *why (owned by the caller).
 * Returns 0 when the child exited 0; MSYNC_ERR_UNREACHABLE when the
 * transport could not reach the peer or start msync there (ssh's 255,
 * a remote 126/127, a libssh helper failure; after a completed handshake
 * the caller should read this as the connection being lost);
 * MSYNC_ERR_PEER_EOF when the child exited otherwise or was killed;
 * MSYNC_ERR_IO when it cannot be reaped.  On a struct that was never
 * started (or already finished) it does nothing and returns 0.
 */
int	 transport_finish(struct transport *, int timeout_ms, int *status,
	    char **why);

#endif /* TRANSPORT_H */
