/*
 * config.h — the configuration file: named pairs of locations with their
 * options, groups of pairs, and defaults (format: msync(5), "CONFIGURATION
 * FILE").  The parser is pure (text in, struct config out); reading the
 * file and its permission check are config_load's.
 *
 * All memory belongs to the caller unless stated otherwise; a struct
 * config owns every string and array reachable from it.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>

#define CONFIG_SIZE_MAX		(1024 * 1024)	/* bytes in a config file */
#define CONFIG_LINE_MAX		4096		/* bytes in one line */
#define CONFIG_NAME_MAX		64		/* bytes in a pair name */
#define CONFIG_PAIRS_MAX	1000		/* pairs + groups in a file */
#define CONFIG_LIST_MAX		1000		/* mailbox/exclude/members */
#define CONFIG_DEPTH_MAX	16		/* groups within groups */

/* One pair.  Unset values: NULL pointers, -1 for the ints. */
#define CONFIG_IDLE_MAX	4	/* IMAP folders idled on per side */

struct pair {
	char	*name;		/* owned */
	int	 line;		/* where "pair NAME" stands */
	char	*a;		/* owned; first location (the source) */
	char	*b;		/* owned; second location */
	int	 mode;		/* enum sync_mode, -1 unset */
	char	**mailbox;	/* owned; -m patterns */
	size_t	 nmailbox;
	char	**exclude;	/* owned; -x patterns */
	size_t	 nexclude;
	char	**idle;	/* owned; watch mode: IMAP folders to IDLE on */
	size_t	 nidle;
	char	*passcmd;	/* owned; command printing a password */
	char	*rsh;		/* owned; -e */
	char	*ssh;		/* owned; "openssh" or "libssh" */
	char	*remote_msync;	/* owned */
	char	*state_dir;	/* owned */
	char	*bwlimit;	/* owned; checked like --bwlimit */
	int	 compress;	/* 0, 1, -1 unset */
	int	 force_deletes;	/* 0, 1, -1 unset */
	int	 full;		/* 0, 1, -1 unset */
	int	 lock_wait;	/* seconds, -1 unset */
	int	 every;		/* watch mode: poll every N seconds, -1 unset */
	int	 debounce_ms;	/* watch mode: quiet time before a sync, -1 */
};

/* A name that stands for several pairs (or groups). */
struct group {
	char	*name;		/* owned */
	int	 line;
	char	**member;	/* owned */
	size_t	 nmember;
};

struct config {
	char		*path;		/* owned; as given, for messages */
	struct pair	*pair;		/* owned; in file order */
	size_t		 npair;
	struct group	*group;		/* owned */
	size_t		 ngroup;
};

/*
 * Parses text (len bytes, not necessarily NUL-terminated) read from path.
 * On failure *why gets "PATH:LINE:COL: what" (owned by the caller).
 * Returns 0 or MSYNC_ERR_USAGE (the file is wrong), MSYNC_ERR_NOMEM.
 */
int	 config_parse(const char *path, const char *text, size_t len,
	    struct config **out, char **why);

/*
 * Reads and parses path.  A missing file gives MSYNC_ERR_NOTFOUND (so
 * the caller can tell "no config" from "bad config"); a file that others
 * may write is refused (it runs commands: rsh, passcmd), one that others
 * may read while it holds a passcmd gets a warning.
 */
int	 config_load(const char *path, struct config **out, char **why);
void	 config_free(struct config *);

/*
 * The default file: $XDG_CONFIG_HOME/msync/config or
 * ~/.config/msync/config.  Returns an owned string or NULL (no memory,
 * no HOME).
 */
char	*config_default_path(void);

/* The pair called name, or NULL. */
const struct pair *config_pair(const struct config *, const char *name);
/* 1 if name is a pair or a group of this config. */
int	 config_has(const struct config *, const char *name);

/*
 * Appends the pairs that name stands for (a pair, or a group expanded
 * recursively) to *list, each pair once, in order.  A group that contains
 * itself, or a member that does not exist, fails with *why set.
 * Returns 0, MSYNC_ERR_NOTFOUND (name unknown), MSYNC_ERR_USAGE or
 * MSYNC_ERR_NOMEM.  *list holds borrowed pointers into the config.
 */
int	 config_select(const struct config *, const char *name,
	    const struct pair ***list, size_t *n, char **why);

/*
 * The rule that keeps pair names and locations apart: a name is 1..64
 * bytes of letters, digits, '.', '_', '-', does not start with '.' or
 * '-', and so never contains '/' or ':'.  Returns 1 if s may be a name.
 */
int	 config_name_valid(const char *s);

/*
 * Parses a duration: "90", "90s", "5m", "2h", "1d", "500ms" (only for
 * want_ms).  *out gets seconds (or milliseconds when want_ms).
 * Returns 0 or -1.
 */
int	 config_duration(const char *s, int want_ms, int *out);

#endif /* CONFIG_H */
