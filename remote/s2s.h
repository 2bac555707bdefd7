/*
 * s2s.h — server to server between two msync daemons (remote/s2s.c):
 *
 *   msync [--backup|--one-way] msyncs://mail1/m msyncs://mail2/m
 *
 * The msync on the command line connects to both daemons and only
 * relays bytes.  Daemon 1 (the first location) runs the client brain,
 * side A, against its module; daemon 2 runs the server brain as for any
 * client.  Neither daemon gets the other's credentials.
 *
 * Daemon 1 learns that it is to run side A from the word "RUN" at the
 * end of the greeting's first line, and the run's options from a third
 * greeting line (s2s_encode / s2s_parse).  From then on it sends framed
 * bytes to the client (S2S_F_*): side A's protocol bytes, to be relayed
 * to daemon 2, its messages for the user, and at the end its exit
 * status.  The client sends daemon 2's bytes to daemon 1 unframed.
 *
 * All memory belongs to the caller unless stated otherwise.  Functions
 * return 0 or a negative MSYNC_ERR_* unless stated otherwise.
 */
#ifndef S2S_H
#define S2S_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define S2S_LINE_MAX		8192	/* the RUN line */
#define S2S_PATTERNS_MAX	64	/* -m and -x patterns, each */
#define S2S_VALUE_MAX		1024	/* one decoded value */
#define S2S_FRAME_MAX		16384	/* payload of one frame */
#define S2S_HDR			5	/* type byte, 32-bit length */

/* Frame types, daemon 1 to the client. */
#define S2S_F_DATA	'D'	/* side A's protocol bytes for daemon 2 */
#define S2S_F_TEXT	'E'	/* side A's messages (its stderr) */
#define S2S_F_EXIT	'X'	/* side A's exit status, 4 bytes; last */
#define S2S_F_RESULT	'R'	/* what side A's run did (--json), text */

#define S2S_RES_FIELDS	20	/* numbers in an R frame after ran, compressed */
#define S2S_RES_MAX	512	/* bytes of an R frame */

struct brain_result;

/* The options a client may give daemon 1's side A: no more. */
struct s2s_run {
	int		 mode;		/* enum sync_mode; A is the source */
	int		 dry_run;
	int		 force_deletes;
	int		 full;
	int		 stats;
	int		 verbose;	/* 0..2 */
	int		 compress;	/* 0, 1 */
	int		 timeout;	/* 0..86400 seconds */
	int		 lock_wait;	/* 0..600 seconds */
	uint64_t	 bwlimit;	/* bytes per second, 0 = none */
	char		*path_a;	/* beneath daemon 1's module root */
	int		 layout_a;
	char		*path_b;	/* beneath daemon 2's, sent to it */
	int		 layout_b;
	char		*other;		/* B's location text: the state key */
	char		**include;
	size_t		 ninclude;
	char		**exclude;
	size_t		 nexclude;
};

/* The RUN line (without '\n') for r, in *line (caller frees). */
int	 s2s_encode(const struct s2s_run *r, char **line);
/*
 * Parses a RUN line into r (whose strings it allocates; s2s_free).
 * Anything unknown, repeated, out of range or over a limit is
 * MSYNC_ERR_PROTO; a value with a control byte MSYNC_ERR_BADNAME.
 */
int	 s2s_parse(const char *line, struct s2s_run *r);
void	 s2s_free(struct s2s_run *r);

/* What daemon 1's connection knows about the login (daemon.c). */
struct s2s_login {
	const char	*addr;		/* the client's address, for logs */
	const char	*user;
	const char	*module;
	const char	*root;		/* the module's resolved root */
	int		 read_only;	/* the module's "read only" */
	const char	*state_dir;	/* where pairs' sync states live */
	int		 lock_wait;
};

/*
 * Checks r against the module (a read-only module is only ever the
 * source; no path outside its root; no IMAP store), putting the reason
 * for a refusal into why (of whylen bytes).  Returns 0 or an error.
 */
int	 s2s_check(const struct s2s_run *r, const struct s2s_login *lg,
	    char *why, size_t whylen);
/*
 * Daemon 1, in the process behind the TLS pump (up is its socket): runs
 * side A in a child and frames what it says onto up.  Returns the
 * child's exit status (EXIT_*).
 */
int	 s2s_serve(const struct s2s_run *r, const struct s2s_login *lg,
	    int up);

/*
 * The client's relay between d1 (daemon 1: frames in, plain out) and d2
 * (daemon 2: plain both ways), bounded each way (s2s.c).  What side A's
 * run did goes into *res (if not NULL) when daemon 1 says.  Returns side
 * A's exit status; -1 when daemon 1's connection ended without one; -2
 * when it broke the framing; -3 when both were silent over idle_s
 * seconds (0 = no limit).
 */
int	 s2s_relay(int d1, int d2, int idle_s, struct brain_result *res);

/*
 * The client: connects to both daemons (loc[0] runs side A) and relays.
 * r holds the run's options (path, layout and other are filled here
 * from loc); res (or NULL) gets what side A's run did, for --json.
 * Returns an exit status (EXIT_*).
 */
int	 s2s_client(struct transport_opts *to, const struct loc loc[2],
	    struct s2s_run *r, struct brain_result *res);

#endif /* S2S_H */
