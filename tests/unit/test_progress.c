/*
 * test_progress.c — the --progress line's two forms: totals, the "+" of
 * unknown sizes, the rate, the time left from bytes or (roughly) from
 * counts, and a buffer too short.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "progress.h"

static const struct {
	uint64_t	 msgs, msgs_total, bytes, bytes_total, unknown;
	long long	 elapsed_ms;
	int		 tty, final;
	const char	*want;
} cases[] = {
	{ 0, 10, 0, 5000, 0, 0, 0, 0,
	  "progress: messages 0/10 bytes 0/5000 rate 0 B/s eta ?" },
	{ 3, 10, 1000, 5000, 0, 2000, 0, 0,
	  "progress: messages 3/10 bytes 1000/5000 rate 500 B/s eta 8 s" },
	{ 5, 10, 1000, 4000, 2, 1000, 0, 0,
	  "progress: messages 5/10 bytes 1000/4000+ rate 1000 B/s eta ~1 s" },
	{ 10, 10, 5000, 5000, 0, 1000, 0, 1,
	  "progress: messages 10/10 bytes 5000/5000 rate 5000 B/s eta 0 s done" },
	{ 0, 0, 0, 0, 0, 0, 0, 1,
	  "progress: messages 0/0 bytes 0/0 rate 0 B/s eta 0 s done" },
	{ 3, 10, 1048576, 5242880, 0, 1000, 1, 0,
	  "3/10 messages, 1.0 MiB/5.0 MiB, 1.0 MiB/s, 0:04 left" },
	{ 1, 10, 1, 100000, 0, 1000, 1, 0,
	  "1/10 messages, 1 B/97.7 KiB, 1 B/s, 27:46:39 left" },
	{ 0, 10, 0, 100, 0, 0, 1, 0,
	  "0/10 messages, 0 B/100 B, 0 B/s, --:-- left" },
	{ 10, 10, 100, 100, 0, 1000, 1, 1,
	  "10/10 messages, 100 B/100 B, 100 B/s, done" },
};

static void
test_format(void **state)
{
	char	 buf[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct progress	 p;
		size_t		 n;

		memset(&p, 0, sizeof(p));
		p.msgs = cases[i].msgs;
		p.msgs_total = cases[i].msgs_total;
		p.bytes = cases[i].bytes;
		p.bytes_total = cases[i].bytes_total;
		p.unknown = cases[i].unknown;
		p.start_ms = 1000000;
		n = progress_format(&p, p.start_ms + cases[i].elapsed_ms,
		    cases[i].tty, cases[i].final, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
		assert_int_equal(n, strlen(cases[i].want));
	}
}

static void
test_short_buffer(void **state)
{
	struct progress	 p;
	char		 buf[10];

	memset(&p, 0, sizeof(p));
	p.msgs_total = 10;
	assert_int_equal(progress_format(&p, 0, 0, 0, buf, sizeof(buf)), 9);
	assert_string_equal(buf, "progress:");
	assert_int_equal(progress_format(&p, 0, 0, 0, buf, 0), 0);
}

static void
test_size_correction(void **state)
{
	struct progress	 p;

	progress_start(&p, NULL, 0, 3, 300, 1);
	progress_size(&p, 1, 100, 120);	/* listed 100, was 120 */
	assert_int_equal(p.bytes_total, 320);
	assert_int_equal(p.unknown, 1);
	progress_size(&p, 0, 0, 50);	/* not listed: now known */
	assert_int_equal(p.bytes_total, 370);
	assert_int_equal(p.unknown, 0);
	progress_size(&p, 1, 1000, 0);	/* more than the total: no wrap */
	assert_int_equal(p.bytes_total, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_short_buffer),
		cmocka_unit_test(test_size_correction),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
