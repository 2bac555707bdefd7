/*
 * brain.h — the symmetric brain: the same code on both sides of a sync.
 * It exchanges mailbox lists with its peer over a chan, runs the planner,
 * checks that both plans agree, moves messages both ways at once, and on
 * the initiating side commits the new sync state.
 *
 * Only main.c and server.c know which side is the server; the brain knows
 * only "self" and "peer".
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef BRAIN_H
#define BRAIN_H

#include <stdint.h>

#include "msync.h"

/* What moved, counted per target side (index = the side that changed). */
struct brain_stats {
	uint64_t	 copied[2];	/* messages over the wire */
	uint64_t	 copied_bytes[2];
	uint64_t	 local[2];	/* local copies (moves) */
	uint64_t	 flags[2];
	uint64_t	 expunged[2];
	uint64_t	 mb_created[2];
	uint64_t	 mb_renamed[2];
	uint64_t	 mb_deleted[2];
};

/*
 * What a client run did (for --json): what the plan changed on each
 * side, and the bytes on the wire.  Filled when brain_opts.result is
 * set, also after a failed run (counts up to the failure).
 */
struct brain_result {
	int		 ran;		/* the sides got to speak */
	struct brain_stats st;
	uint64_t	 wire_out, raw_out;	/* bytes sent, before compression */
	uint64_t	 wire_in, raw_in;	/* bytes received, after */
	int		 compressed;
};

/* Options of the initiating side (A).  All pointers are borrowed. */
struct brain_opts {
	int		 list;		/* --list of B's store, no sync */
	int		 list_verbose;	/* --list -v: one line per message */
	enum sync_mode	 mode;
	enum side	 src;		/* BACKUP, ONEWAY: the source side */
	int		 dry_run;
	int		 force_deletes;
	int		 full;		/* ignore change tokens */
	int		 stats;		/* --stats */
	int		 progress;	/* --progress */
	int		 compress;	/* -1 default (off for pipes), 0, 1 */
	uint64_t	 bwlimit;	/* bytes per second, 0 = none */
	int		 lock_wait;	/* seconds */
	int		 timeout;	/* --timeout: idle seconds, 0 = none */
	char		**include;	/* -m NAME (patterns) */
	size_t		 ninclude;
	char		**exclude;	/* -x PATTERN */
	size_t		 nexclude;
	const char	*path[2];	/* store root per side */
	int		 layout[2];	/* enum store_layout per side */
	const char	*inbox;		/* side A's mbox INBOX file, or NULL */
	int		 mbox_format;	/* side A's mbox ";format=" */
	int		 mbox_format_b;	/* side B's, sent in HELLO */
	const char	*state_path;	/* the pair's state file */
	int		 crash_after;	/* test: exit 100 after N durable writes */
	struct brain_result *result;	/* out (--json); NULL = not wanted */
	int		*a_open_failed;	/* out, or NULL: set to 1 when side A's
					   store could not be opened (and that
					   was reported): a 69 is then not the
					   transport's */
};

/* --timeout when none is given: rsync's users set 300-600. */
#define MSYNC_TIMEOUT_DEFAULT	300

/* Options of the server side (B), from its command line. */
struct server_opts {
	const char	*restrict_dir;	/* --restrict: the only root allowed */
	const char	*module_root;	/* daemon: roots only beneath this */
	int		 read_only;	/* --read-only */
	int		 lock_wait;
	int		 crash_after;	/* test: exit 100 after N durable writes */
	uint64_t	 bwlimit;	/* --bwlimit: bytes per second sent */
	int		 timeout;	/* --timeout: idle seconds, 0 = none */
};

/*
 * Runs side A over the peer connection (rfd, wfd).  Prints what the user
 * must see.  Returns an exit status (EXIT_*).
 */
int	 brain_client(const struct brain_opts *, int rfd, int wfd);
/* Runs side B over (rfd, wfd).  Returns an exit status (EXIT_*). */
int	 brain_server(const struct server_opts *, int rfd, int wfd);
/*
 * Lists a local store (msync --list): one line per mailbox, and with
 * verbose one line per message.  Returns an exit status.
 */
int	 brain_list_local(const char *path, int layout, const char *inbox,
	    int mbox_format, int verbose, int lock_wait);

#endif /* BRAIN_H */
