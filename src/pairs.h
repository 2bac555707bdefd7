/*
 * pairs.h — running named pairs from the config file: which command-line
 * words are pair names, one child msync per pair sync (sequentially or
 * -j N at once), each output line prefixed with the pair's name, JSON
 * reports collected per pair, the last result kept for --pairs.
 *
 * A pair's sync is a child process running this same binary on the pair's
 * two locations: it takes the stores' locks, keeps its own sync state and
 * exits with a DESIGN.md status, so a crash of one pair cannot harm
 * another and the runner needs to know nothing about stores.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef PAIRS_H
#define PAIRS_H

#include <sys/types.h>

#include <poll.h>

#include <stddef.h>

#include "config.h"

/* What main.c found on the command line.  Pointers are borrowed. */
struct pairs_opts {
	const char	*self;		/* this binary, for the children */
	const char	*config_path;	/* -F FILE, or NULL for the default */
	int		 all;		/* --all */
	int		 list;		/* --pairs */
	int		 json;		/* --json */
	int		 watch;		/* --watch */
	int		 jobs;		/* -j N (1 = one after the other) */
	int		 verbose;	/* log_verbosity */
	int		 cl_mode;	/* -b or -1 given: the file's mode yields */
	int		 cl_mailbox;	/* -m given: the file's list yields */
	int		 cl_exclude;	/* -x given */
	char		**fwd;		/* options for every child, as given */
	size_t		 nfwd;
};

/*
 * Decides whether words (the non-option arguments) name pairs, and loads
 * the config when they might.  The rule: a word with '/' or ':' is always
 * a location; a word without is a pair (or group) name if the config
 * defines it.  Two words that are both undefined are two locations (plain
 * `msync dirA dirB` keeps working); one word, or more than two, or a mix,
 * is an error with a hint.  Without a config file every word is a
 * location, as before pairs existed.  --all, --pairs and --watch always mean pairs.
 * *cfg gets the loaded config (owned by the caller) when the answer is 1.
 * Returns 1 (run pairs), 0 (two locations), or a negative EXIT_* status
 * (an error, already printed).
 */
int	 pairs_wanted(const struct pairs_opts *, int argc, char **argv,
	    struct config **cfg);

/*
 * Runs the selected pairs (argv names, or every pair with --all), lists
 * them (--pairs), or watches them (--watch; which may replace *cfg, see
 * watch_main).  Returns an exit status: the
 * first failing pair's (in the order given), else 2 if any pair reported
 * 2, else 0.
 */
int	 pairs_main(const struct pairs_opts *, struct config **cfg, int argc,
	    char **argv);

/* --- for watch.c ------------------------------------------------- */

/* One child sync of a pair, with its output pipes. */
struct job {
	const struct pair *pair;	/* borrowed */
	pid_t		 pid;		/* 0 when not running */
	int		 out;		/* child's stdout, -1 when closed */
	int		 err;		/* child's stderr, -1 when closed */
	char		*obuf;		/* owned; stdout bytes (JSON) */
	size_t		 olen;
	char		 ebuf[1024];	/* a partial stderr line */
	size_t		 elen;
	char		*first_error;	/* owned; first "error:" line */
	int		 status;	/* exit status once reaped */
	int		 reaped;
	int		 mute;		/* drop its stderr lines (a retry) */
	long long	 started_ms;	/* monotonic */
};

/* Starts a pair's child.  Returns 0 or -1 (printed). */
int	 job_start(const struct pairs_opts *, const struct pair *,
	    struct job *);
/* Adds the job's open fds to pfd (at most 2); returns how many. */
int	 job_pollfds(const struct job *, struct pollfd *);
/*
 * Reads what is ready, relays stderr lines with the pair's prefix, reaps
 * the child once its pipes are closed.  Returns 1 when the job is over
 * (status set, its report written and its result recorded), else 0.
 */
int	 job_step(const struct pairs_opts *, struct job *);
/* Frees the job's buffers (the child must be reaped). */
void	 job_clear(struct job *);
/*
 * A file of the pair's in the state directory: DIR/pairs/NAME.SUFFIX,
 * DIR being the pair's state-dir or $XDG_STATE_HOME/msync.  mkdirs makes
 * the directories.  Returns an owned string or NULL.
 */
char	*pairs_state_file(const struct pair *, const char *suffix, int mkdirs);

#endif /* PAIRS_H */
