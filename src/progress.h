/*
 * progress.h — the --progress line of a sync's transfer: messages and
 * bytes done out of the total, the rate and the time left.
 *
 * On a terminal it is one line on stderr, rewritten in place a few times
 * a second; otherwise (a file, a pipe, a pair's child whose stderr the
 * runner relays) it is a plain line every PROGRESS_PLAIN_MS, plus one at
 * the start and one at the end, in a fixed form a script can read:
 *
 *   msync: progress: messages 3/10 bytes 1200/5000 rate 800 B/s eta 5 s
 *
 * The brain knows the size of a message it will copy from its listing;
 * where a listing did not carry it (a mailbox unchanged since the last
 * sync on the sending side), the size is learnt when the message starts,
 * and until every size is known the time left is estimated from the
 * message counts ("eta ~N s").  All memory belongs to the caller.
 */
#ifndef PROGRESS_H
#define PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#define PROGRESS_TTY_MS		250	/* between rewrites on a terminal */
#define PROGRESS_PLAIN_MS	1000	/* between plain lines */

struct progress {
	FILE		*f;		/* borrowed; NULL: off */
	int		 tty;		/* rewrite one line in place */
	uint64_t	 msgs;		/* done */
	uint64_t	 msgs_total;
	uint64_t	 bytes;		/* done */
	uint64_t	 bytes_total;	/* of the sizes known so far */
	uint64_t	 unknown;	/* messages whose size is not known */
	long long	 start_ms;	/* monotonic */
	long long	 last_ms;	/* of the last line shown, 0 none */
	size_t		 width;		/* of the last terminal line */
};

/*
 * Starts the progress of a transfer of msgs_total messages, bytes_total
 * bytes of them of known size and unknown of unknown size, shown on f
 * (NULL: nothing is shown), in place when tty.  Shows the first line.
 */
void	 progress_start(struct progress *, FILE *f, int tty,
	    uint64_t msgs_total, uint64_t bytes_total, uint64_t unknown);
/*
 * A message of estimated size est (known: est is meaningful) turned out
 * to be size bytes: the total is corrected.
 */
void	 progress_size(struct progress *, int known, uint64_t est,
	    uint64_t size);
/* Shows the line if it is time to (always when final, then ends it). */
void	 progress_show(struct progress *, int final);
/*
 * Formats the line as of now_ms into buf (n bytes, NUL-terminated, cut
 * if short): the plain form, or the terminal's (human units) when tty.
 * Returns the length written.  Pure: for the tests.
 */
size_t	 progress_format(const struct progress *, long long now_ms, int tty,
	    int final, char *buf, size_t n);

#endif /* PROGRESS_H */
