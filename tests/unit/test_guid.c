/*
 * test_guid.c — message GUIDs: CRLF and LF copies agree, streaming splits
 * do not matter, a lone CR is content.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "msync.h"
#include "guid.h"

/* Each input with what it must hash like once CRLF is folded to LF. */
static const struct {
	const char	*in;
	const char	*folded;
} fold_cases[] = {
	{ "", "" },
	{ "a", "a" },
	{ "\r\n", "\n" },
	{ "\r", "\r" },
	{ "\r\r\n", "\r\n" },
	{ "\n\r", "\n\r" },
	{ "a\r\nb\r\n", "a\nb\n" },
	{ "a\rb", "a\rb" },
	{ "\r\r\r", "\r\r\r" },
	{ "\r\n\r\n\r\n", "\n\n\n" },
	{ "Subject: x\r\n\r\nbody\r\n.\r", "Subject: x\n\nbody\n.\r" },
	{ "x\n\r\n\r", "x\n\n\r" },
};

/* The GUID of s hashed as is (no folding), by xxhash itself. */
static void
raw_guid(const char *s, struct guid *g)
{
	XXH128_canonical_t	c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(s, strlen(s)));
	memcpy(g->b, c.digest, 16);
}

static void
test_fold_table(void **state)
{
	struct guid	a, b;
	size_t		i;

	for (i = 0; i < sizeof(fold_cases) / sizeof(fold_cases[0]); i++) {
		guid_of(fold_cases[i].in, strlen(fold_cases[i].in), &a);
		raw_guid(fold_cases[i].folded, &b);
		assert_memory_equal(a.b, b.b, 16);
	}
}

static void
test_crlf_equals_lf(void **state)
{
	const char	*lf = "From: a@b\nTo: c@d\n\nhello\nworld\n";
	const char	*crlf = "From: a@b\r\nTo: c@d\r\n\r\nhello\r\nworld\r\n";
	struct guid	 a, b;

	guid_of(lf, strlen(lf), &a);
	guid_of(crlf, strlen(crlf), &b);
	assert_memory_equal(a.b, b.b, 16);
	assert_false(guid_is_zero(&a));
}

static void
test_split_everywhere(void **state)
{
	struct guid	 whole, part, three;
	struct guid_ctx	*c;
	size_t		 i, j, k, len;
	const char	*s;

	for (i = 0; i < sizeof(fold_cases) / sizeof(fold_cases[0]); i++) {
		s = fold_cases[i].in;
		len = strlen(s);
		guid_of(s, len, &whole);
		for (j = 0; j <= len; j++) {
			assert_non_null(c = guid_ctx_new());
			guid_update(c, s, j);
			guid_update(c, s + j, len - j);
			guid_final(c, &part);
			guid_ctx_free(c);
			assert_memory_equal(whole.b, part.b, 16);
			for (k = j; k <= len; k++) {
				assert_non_null(c = guid_ctx_new());
				guid_update(c, s, j);
				guid_update(c, s + j, k - j);
				guid_update(c, s + k, len - k);
				guid_final(c, &three);
				guid_ctx_free(c);
				assert_memory_equal(whole.b, three.b, 16);
			}
		}
		/* One byte at a time. */
		assert_non_null(c = guid_ctx_new());
		for (j = 0; j < len; j++)
			guid_update(c, s + j, 1);
		guid_final(c, &part);
		guid_ctx_free(c);
		assert_memory_equal(whole.b, part.b, 16);
	}
}

static void
test_lone_cr_differs(void **state)
{
	struct guid	a, b;

	guid_of("a\rb", 3, &a);
	guid_of("a\nb", 3, &b);
	assert_memory_not_equal(a.b, b.b, 16);
	guid_of("a\r", 2, &a);
	guid_of("a", 1, &b);
	assert_memory_not_equal(a.b, b.b, 16);
}

static void
test_empty(void **state)
{
	struct guid	 a, b;
	struct guid_ctx	*c;

	guid_of("", 0, &a);
	raw_guid("", &b);
	assert_memory_equal(a.b, b.b, 16);
	assert_non_null(c = guid_ctx_new());
	guid_final(c, &b);
	guid_ctx_free(c);
	assert_memory_equal(a.b, b.b, 16);
	guid_ctx_free(NULL);
}

/* guid_of_fd over a file bigger than its 64 KiB buffer, CRs on the seam. */
static void
test_fd(void **state)
{
	char		 path[] = "/tmp/test_guid.XXXXXX";
	char		*buf, *lf;
	size_t		 len = 200000, i, n = 0;
	struct guid	 a, b;
	uint64_t	 size = 0;
	int		 fd;

	assert_non_null(buf = malloc(len));
	assert_non_null(lf = malloc(len));
	for (i = 0; i < len; i++) {
		/* CR LF pairs straddling offset 65536 and 131072. */
		buf[i] = (i % 7 == 5 || i == 65535 || i == 131071) ? '\r' :
		    (i % 7 == 6 || i == 65536 || i == 131072) ? '\n' : 'x';
	}
	for (i = 0; i < len; i++)
		if (!(buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n'))
			lf[n++] = buf[i];
	assert_int_not_equal(fd = mkstemp(path), -1);
	unlink(path);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(guid_of_fd(fd, &a, &size), 0);
	assert_int_equal(size, len);
	guid_of(lf, n, &b);
	assert_memory_equal(a.b, b.b, 16);
	guid_of(buf, len, &b);
	assert_memory_equal(a.b, b.b, 16);
	/* The offset is not moved, and a second call agrees. */
	assert_int_equal(lseek(fd, 0, SEEK_CUR), (off_t)len);
	assert_int_equal(guid_of_fd(fd, &b, NULL), 0);
	assert_memory_equal(a.b, b.b, 16);
	close(fd);
	assert_int_equal(guid_of_fd(fd, &b, NULL), MSYNC_ERR_IO);
	free(buf);
	free(lf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fold_table),
		cmocka_unit_test(test_crlf_equals_lf),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_lone_cr_differs),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
