/*
 * test_readahead.c — the ordered read-ahead (src/readahead.c): every item
 * is done exactly once, by a worker or by the caller; results reach the
 * caller for the item they were made for; workers never run more than
 * the window ahead; what is passed over or never taken is freed; and
 * with no threads the caller does everything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msync.h"
#include "readahead.h"

#define N	200

struct ctx {
	atomic_int	 runs[N];	/* times each item's job ran */
	atomic_int	 freed[N];	/* times each item's result was freed */
	atomic_size_t	 taken;		/* the caller's next item */
	atomic_int	 too_far;	/* a job started beyond the window */
	size_t		 window;
	int		 null_every;	/* every k-th job prepares nothing */
	int		 slow;		/* µs a job takes */
};

struct res {
	size_t	 i;
};

static void *
job(void *arg, size_t i)
{
	struct ctx	*c = arg;
	struct res	*r;

	atomic_fetch_add(&c->runs[i], 1);
	if (i > atomic_load(&c->taken) + c->window)
		atomic_store(&c->too_far, 1);
	if (c->slow > 0)
		usleep((useconds_t)c->slow);
	if (c->null_every > 0 && i % (size_t)c->null_every == 0)
		return NULL;
	if ((r = malloc(sizeof(*r))) == NULL)
		return NULL;
	r->i = i;
	return r;
}

static void
res_free(void *arg, void *p)
{
	struct ctx	*c = arg;
	struct res	*r = p;

	atomic_fetch_add(&c->freed[r->i], 1);
	free(r);
}

/*
 * Takes every item in order (every step-th, when step > 1), doing the
 * ones nobody prepared; checks each result is its item's.  Returns how
 * many results came from workers.
 */
static size_t
take_all(struct readahead *ra, struct ctx *c, size_t step)
{
	size_t		 i, got = 0;
	struct res	*r;

	for (i = 0; i < N; i += step) {
		/* The window is measured from the item asked for. */
		atomic_store(&c->taken, i);
		r = ra_take(ra, i);
		if (r == NULL) {
			/* Mine: do it as a worker would have. */
			if (c->null_every == 0 || i % (size_t)c->null_every != 0)
				atomic_fetch_add(&c->runs[i], 1);
			else if (atomic_load(&c->runs[i]) == 0)
				atomic_fetch_add(&c->runs[i], 1);
			continue;
		}
		assert_int_equal(r->i, i);
		got++;
		free(r);
	}
	return got;
}

static void
check_runs_once(struct ctx *c, size_t step)
{
	for (size_t i = 0; i < N; i += step)
		assert_int_equal(atomic_load(&c->runs[i]), 1);
}

static void
test_in_order(void **state)
{
	struct readahead	*ra;
	struct ctx		*c;

	(void)state;
	assert_non_null(c = calloc(1, sizeof(*c)));
	c->window = 3;
	c->slow = 50;
	assert_int_equal(ra_start(N, c->window, 2, job, res_free, c, &ra), 0);
	assert_non_null(ra);
	(void)take_all(ra, c, 1);
	ra_stop(ra);
	check_runs_once(c, 1);
	assert_int_equal(atomic_load(&c->too_far), 0);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(atomic_load(&c->freed[i]), 0);
	free(c);
}

static void
test_nothing_prepared(void **state)
{
	struct readahead	*ra;
	struct ctx		*c;

	(void)state;
	assert_non_null(c = calloc(1, sizeof(*c)));
	c->window = 2;
	c->null_every = 3;
	assert_int_equal(ra_start(N, c->window, 3, job, res_free, c, &ra), 0);
	(void)take_all(ra, c, 1);
	ra_stop(ra);
	check_runs_once(c, 1);
	free(c);
}

static void
test_passed_over_freed(void **state)
{
	struct readahead	*ra;
	struct ctx		*c;
	size_t			 i;

	(void)state;
	assert_non_null(c = calloc(1, sizeof(*c)));
	c->window = 4;
	assert_int_equal(ra_start(N, c->window, 2, job, res_free, c, &ra), 0);
	(void)take_all(ra, c, 3);
	ra_stop(ra);
	for (i = 0; i < N; i++) {
		/* Never twice; each prepared one not taken is freed once. */
		assert_true(atomic_load(&c->runs[i]) <= 1);
		if (i % 3 == 0)
			assert_int_equal(atomic_load(&c->freed[i]), 0);
		else
			assert_int_equal(atomic_load(&c->freed[i]),
			    atomic_load(&c->runs[i]));
	}
	free(c);
}

static void
test_stop_early(void **state)
{
	struct readahead	*ra;
	struct ctx		*c;
	struct res		*r;

	(void)state;
	assert_non_null(c = calloc(1, sizeof(*c)));
	c->window = 5;
	assert_int_equal(ra_start(N, c->window, 2, job, res_free, c, &ra), 0);
	if ((r = ra_take(ra, 0)) != NULL)
		free(r);
	else
		atomic_fetch_add(&c->runs[0], 1);
	/* Let the workers fill the window, then stop with it full. */
	usleep(20000);
	ra_stop(ra);
	for (size_t i = 1; i < N; i++) {
		assert_int_equal(atomic_load(&c->freed[i]),
		    atomic_load(&c->runs[i]));
		/* Never beyond the window of the last item asked for. */
		if (i > c->window)
			assert_int_equal(atomic_load(&c->runs[i]), 0);
	}
	free(c);
}

static void
test_no_threads(void **state)
{
	struct readahead	*ra = (struct readahead *)&ra;
	struct ctx		*c;

	(void)state;
	assert_non_null(c = calloc(1, sizeof(*c)));
	assert_int_equal(ra_start(N, 3, 0, job, res_free, c, &ra), 0);
	assert_null(ra);
	assert_int_equal(take_all(ra, c, 1), 0);
	ra_stop(ra);
	check_runs_once(c, 1);
	free(c);
}

/* Tests ask the caller to wait for every item: all come from workers. */
static void
test_patient(void **state)
{
	struct readahead	*ra;
	struct ctx		*c;

	(void)state;
	assert_non_null(c = calloc(1, sizeof(*c)));
	c->window = 2;
	setenv("MSYNC_TEST_READAHEAD_WAIT", "1", 1);
	assert_int_equal(ra_start(N, c->window, 2, job, res_free, c, &ra), 0);
	unsetenv("MSYNC_TEST_READAHEAD_WAIT");
	assert_int_equal(take_all(ra, c, 1), N);
	ra_stop(ra);
	check_runs_once(c, 1);
	assert_int_equal(atomic_load(&c->too_far), 0);
	free(c);
}

static void
test_threads_env(void **state)
{
	(void)state;
	setenv("MSYNC_READAHEAD", "0", 1);
	assert_int_equal(ra_threads(4), 0);
	setenv("MSYNC_READAHEAD", "3", 1);
	assert_int_equal(ra_threads(4), 3);
	setenv("MSYNC_READAHEAD", "9", 1);
	assert_int_equal(ra_threads(4), 4);
	unsetenv("MSYNC_READAHEAD");
	assert_true(ra_threads(4) <= 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order),
		cmocka_unit_test(test_nothing_prepared),
		cmocka_unit_test(test_passed_over_freed),
		cmocka_unit_test(test_stop_early),
		cmocka_unit_test(test_no_threads),
		cmocka_unit_test(test_patient),
		cmocka_unit_test(test_threads_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
