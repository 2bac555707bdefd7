/*
 * readahead.c — items prepared in order by worker threads, a bounded
 * window ahead of the caller; see readahead.h.
 *
 * One mutex guards the item states; workers wait on `work` for the window
 * to move or the read-ahead to stop, the caller on `done` for the item it
 * asked for.  Each item goes FREE -> (a worker) BUSY -> READY -> TAKEN, or
 * FREE -> MINE when the caller asks for it first.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msync.h"
#include "readahead.h"

enum ra_item_state { RA_FREE, RA_BUSY, RA_READY, RA_TAKEN, RA_MINE };

struct ra_item {
	enum ra_item_state	 state;
	void			*result;	/* owned while READY */
};

struct readahead {
	pthread_mutex_t	 mu;
	pthread_cond_t	 work;		/* the window moved, or stop */
	pthread_cond_t	 done;		/* an item became READY */
	struct ra_item	*items;		/* n of them */
	size_t		 n;
	size_t		 window;
	size_t		 next;		/* the first item the caller may ask for */
	size_t		 claim;		/* the first item no worker looked at */
	int		 stop;
	/*
	 * Tests (MSYNC_TEST_READAHEAD_WAIT set): the caller waits for the
	 * workers to do every item it asks for, instead of doing the ones
	 * not started, so that what a worker prepared is taken every time.
	 */
	int		 patient;
	ra_job_fn	 job;
	ra_free_fn	 free_fn;
	void		*ctx;
	pthread_t	*tids;
	unsigned	 nthreads;	/* started */
};

static void *
worker(void *arg)
{
	struct readahead	*ra = arg;
	size_t			 i;
	void			*res;

	pthread_mutex_lock(&ra->mu);
	for (;;) {
		/* The caller did the ones it passed: skip them. */
		if (ra->claim < ra->next)
			ra->claim = ra->next;
		if (ra->stop || ra->claim >= ra->n)
			break;
		if (ra->claim >= ra->next + ra->window) {
			pthread_cond_wait(&ra->work, &ra->mu);
			continue;
		}
		i = ra->claim++;
		if (ra->items[i].state != RA_FREE)
			continue;
		ra->items[i].state = RA_BUSY;
		pthread_mutex_unlock(&ra->mu);
		res = ra->job(ra->ctx, i);
		pthread_mutex_lock(&ra->mu);
		ra->items[i].result = res;
		ra->items[i].state = RA_READY;
		pthread_cond_broadcast(&ra->done);
	}
	pthread_mutex_unlock(&ra->mu);
	return NULL;
}

unsigned
ra_threads(unsigned max)
{
	const char	*e = getenv("MSYNC_READAHEAD");
	char		*end;
	long		 ncpu;

	if (e != NULL && *e != '\0') {
		/* A number of threads, for tests: 0 turns it off. */
		errno = 0;
		ncpu = strtol(e, &end, 10);
		if (errno == 0 && *end == '\0' && ncpu >= 0)
			return ncpu < (long)max ? (unsigned)ncpu : max;
	}
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu <= 1)
		return 0;
	return ncpu < (long)max ? (unsigned)ncpu : max;
}

int
ra_start(size_t n, size_t window, unsigned nthreads, ra_job_fn job,
    ra_free_fn free_fn, void *ctx, struct readahead **out)
{
	struct readahead	*ra;
	unsigned		 t;

	*out = NULL;
	if (nthreads == 0 || n == 0 || window == 0)
		return 0;
	if ((ra = calloc(1, sizeof(*ra))) == NULL ||
	    (ra->items = calloc(n, sizeof(*ra->items))) == NULL ||
	    (ra->tids = calloc(nthreads, sizeof(*ra->tids))) == NULL) {
		if (ra != NULL) {
			free(ra->items);
			free(ra);
		}
		return MSYNC_ERR_NOMEM;
	}
	ra->n = n;
	ra->window = window;
	ra->job = job;
	ra->free_fn = free_fn;
	ra->ctx = ctx;
	ra->patient = getenv("MSYNC_TEST_READAHEAD_WAIT") != NULL;
	if (pthread_mutex_init(&ra->mu, NULL) != 0) {
		free(ra->tids);
		free(ra->items);
		free(ra);
		return 0;
	}
	pthread_cond_init(&ra->work, NULL);
	pthread_cond_init(&ra->done, NULL);
	for (t = 0; t < nthreads; t++)
		if (pthread_create(&ra->tids[t], NULL, worker, ra) != 0)
			break;
	ra->nthreads = t;
	if (t == 0) {
		/* No thread: the caller does everything, as without us. */
		ra_stop(ra);
		return 0;
	}
	*out = ra;
	return 0;
}

void *
ra_take(struct readahead *ra, size_t i)
{
	void	*res = NULL;
	size_t	 j;

	if (ra == NULL || i >= ra->n)
		return NULL;
	pthread_mutex_lock(&ra->mu);
	/* Passed over: what was prepared for them goes. */
	for (j = ra->next; j < i; j++)
		if (ra->items[j].state == RA_READY) {
			ra->free_fn(ra->ctx, ra->items[j].result);
			ra->items[j].result = NULL;
			ra->items[j].state = RA_TAKEN;
		} else if (ra->items[j].state == RA_FREE)
			ra->items[j].state = RA_MINE;
	if (i > ra->next)
		ra->next = i;
	if (ra->items[i].state == RA_FREE && !ra->patient)
		ra->items[i].state = RA_MINE;
	else
		/* The window moved: a worker may take item i now. */
		pthread_cond_broadcast(&ra->work);
	while (ra->items[i].state == RA_BUSY ||
	    ra->items[i].state == RA_FREE)
		pthread_cond_wait(&ra->done, &ra->mu);
	if (i >= ra->next)
		ra->next = i + 1;
	if (ra->items[i].state == RA_READY) {
		res = ra->items[i].result;
		ra->items[i].result = NULL;
		ra->items[i].state = RA_TAKEN;
	}
	/* The window moved on: workers may take the next ones. */
	pthread_cond_broadcast(&ra->work);
	pthread_mutex_unlock(&ra->mu);
	return res;
}

void
ra_stop(struct readahead *ra)
{
	size_t	 i;

	if (ra == NULL)
		return;
	pthread_mutex_lock(&ra->mu);
	ra->stop = 1;
	pthread_cond_broadcast(&ra->work);
	pthread_mutex_unlock(&ra->mu);
	for (unsigned t = 0; t < ra->nthreads; t++)
		pthread_join(ra->tids[t], NULL);
	for (i = 0; i < ra->n; i++)
		if (ra->items[i].state == RA_READY && ra->items[i].result != NULL)
			ra->free_fn(ra->ctx, ra->items[i].result);
	pthread_cond_destroy(&ra->work);
	pthread_cond_destroy(&ra->done);
	pthread_mutex_destroy(&ra->mu);
	free(ra->tids);
	free(ra->items);
	free(ra);
}
