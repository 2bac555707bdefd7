/*
 * readahead.h — work done ahead, in order, by a few threads: item i of n
 * is prepared by a worker while the caller still works on an earlier one,
 * and handed over when the caller asks for it.  The Maildir listing uses
 * it to load and rescan the next changed folders' indexes while it saves
 * and lists the current one (issue 10.3: the listing was the longest
 * stretch of a 1% run that only one core worked on).
 *
 * The caller takes the items in increasing order.  An item no worker has
 * started when it is asked for is the caller's to do (ra_take returns
 * NULL), so a slow worker never makes the caller wait for work it could
 * have done itself; an item a worker is on is waited for.  Workers stay
 * at most `window` items ahead of the caller, which bounds the memory
 * that prepared results hold.
 *
 * The job runs on a worker thread: it must touch only what the caller
 * does not change while the read-ahead runs, and may return NULL (nothing
 * prepared: the caller does the item itself).  Results belong to the
 * read-ahead until taken; ra_take transfers one to the caller, and
 * ra_stop frees, with the free function, those never taken.
 */
#ifndef READAHEAD_H
#define READAHEAD_H

#include <stddef.h>

struct readahead;

typedef void	*(*ra_job_fn)(void *ctx, size_t i);
typedef void	 (*ra_free_fn)(void *ctx, void *result);

/*
 * Starts up to nthreads workers over items 0..n-1, each at most window
 * items ahead of the caller.  *out is owned by the caller (ra_stop).
 * With nthreads 0, or when no thread can be made, *out is NULL and every
 * ra_take returns NULL: the caller does all the work, as without a
 * read-ahead.  Returns 0, or MSYNC_ERR_NOMEM.
 */
int	 ra_start(size_t n, size_t window, unsigned nthreads, ra_job_fn job,
	    ra_free_fn free_fn, void *ctx, struct readahead **out);
/*
 * The result of item i (owned by the caller from now on), waiting if a
 * worker is on it; NULL if none was prepared, and i is then the caller's
 * to do.  Items below i that were not taken are freed.  i must not be
 * below an item taken before.  ra may be NULL (returns NULL).
 */
void	*ra_take(struct readahead *ra, size_t i);
/* Stops the workers (each finishes its item), frees what was not taken,
   and frees ra.  Accepts NULL. */
void	 ra_stop(struct readahead *ra);
/*
 * How many threads a read-ahead should use here: the online CPUs (the
 * caller mostly waits for the workers, and its own share is small), at
 * most max; 0 on one CPU.  MSYNC_READAHEAD=N in the environment asks
 * for N (at most max; 0 turns the read-ahead off): tests and benchmarks
 * compare with and without, on any machine.
 */
unsigned ra_threads(unsigned max);

#endif /* READAHEAD_H */
