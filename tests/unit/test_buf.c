/*
 * test_buf.c — struct mbuf: sshbuf's cases (caps, typed get/put, a failed
 * get consumes nothing, strings with lying lengths) and random
 * reserve/consume runs checked against a model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "msync.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_new_free(void **state)
{
	struct mbuf	*b;

	assert_non_null(b = mbuf_new(100));
	assert_int_equal(mbuf_len(b), 0);
	assert_int_equal(mbuf_avail(b), 100);
	assert_int_equal(mbuf_max(b), 100);
	assert_non_null(mbuf_ptr(b));
	mbuf_free(b);
	mbuf_free(NULL);
}

static void
test_put_get_ints(void **state)
{
	static const uint8_t want[] = {
		0x7f,
		0xde, 0xad, 0xbe, 0xef,
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0xff, 0xff, 0xff, 0xfe,
		0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	struct mbuf	*b;
	uint8_t		 u8;
	uint32_t	 u32;
	uint64_t	 u64;
	int32_t		 i32;
	int64_t		 i64;

	assert_non_null(b = mbuf_new(1024));
	assert_int_equal(mbuf_put_u8(b, 0x7f), 0);
	assert_int_equal(mbuf_put_u32(b, 0xdeadbeef), 0);
	assert_int_equal(mbuf_put_u64(b, 0x0102030405060708ULL), 0);
	assert_int_equal(mbuf_put_i32(b, -2), 0);
	assert_int_equal(mbuf_put_i64(b, INT64_MIN), 0);
	assert_int_equal(mbuf_len(b), sizeof(want));
	assert_memory_equal(mbuf_ptr(b), want, sizeof(want));

	assert_int_equal(mbuf_get_u8(b, &u8), 0);
	assert_int_equal(u8, 0x7f);
	assert_int_equal(mbuf_get_u32(b, &u32), 0);
	assert_int_equal(u32, 0xdeadbeef);
	assert_int_equal(mbuf_get_u64(b, &u64), 0);
	assert_true(u64 == 0x0102030405060708ULL);
	assert_int_equal(mbuf_get_i32(b, &i32), 0);
	assert_int_equal(i32, -2);
	assert_int_equal(mbuf_get_i64(b, &i64), 0);
	assert_true(i64 == INT64_MIN);
	assert_int_equal(mbuf_len(b), 0);
	assert_int_equal(mbuf_get_u8(b, &u8), MSYNC_ERR_INCOMPLETE);
	mbuf_free(b);
}

/* Every get on too few bytes fails and consumes nothing. */
static void
test_short_gets(void **state)
{
	static const uint8_t bytes[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	struct mbuf	 v;
	struct guid	 g;
	uint32_t	 u32;
	uint64_t	 u64;
	uint8_t		 u8;
	size_t		 n;

	for (n = 0; n < sizeof(bytes); n++) {
		mbuf_view(&v, bytes, n);
		if (n < 4) {
			assert_int_equal(mbuf_get_u32(&v, &u32),
			    MSYNC_ERR_INCOMPLETE);
			assert_int_equal(mbuf_get_i32(&v, NULL),
			    MSYNC_ERR_INCOMPLETE);
		}
		if (n < 8) {
			assert_int_equal(mbuf_get_u64(&v, &u64),
			    MSYNC_ERR_INCOMPLETE);
			assert_int_equal(mbuf_get_i64(&v, NULL),
			    MSYNC_ERR_INCOMPLETE);
		}
		assert_int_equal(mbuf_get_guid(&v, &g), MSYNC_ERR_INCOMPLETE);
		if (n == 0)
			assert_int_equal(mbuf_get_u8(&v, &u8),
			    MSYNC_ERR_INCOMPLETE);
		assert_int_equal(mbuf_len(&v), n);
		assert_ptr_equal(mbuf_ptr(&v), bytes);
		mbuf_free(&v);
	}
}

static void
test_cap(void **state)
{
	struct mbuf	*b;
	uint8_t		*dp;

	assert_non_null(b = mbuf_new(10));
	assert_int_equal(mbuf_put(b, "0123456789", 10), 0);
	assert_int_equal(mbuf_avail(b), 0);
	assert_int_equal(mbuf_put_u8(b, 1), MSYNC_ERR_TOOBIG);
	assert_int_equal(mbuf_reserve(b, 1, &dp), MSYNC_ERR_TOOBIG);
	assert_null(dp);
	assert_int_equal(mbuf_reserve(b, SIZE_MAX, &dp), MSYNC_ERR_TOOBIG);
	assert_int_equal(mbuf_len(b), 10);
	/* Consumed bytes make room again: the data moves to the front. */
	assert_int_equal(mbuf_consume(b, 4), 0);
	assert_int_equal(mbuf_put(b, "abcd", 4), 0);
	assert_memory_equal(mbuf_ptr(b), "456789abcd", 10);
	assert_int_equal(mbuf_set_max(b, 5), MSYNC_ERR_TOOBIG);
	assert_int_equal(mbuf_set_max(b, 20), 0);
	assert_int_equal(mbuf_put(b, "0123456789", 10), 0);
	assert_int_equal(mbuf_put_u32(b, 7), MSYNC_ERR_TOOBIG);
	assert_int_equal(mbuf_len(b), 20);
	/* A string that does not fit leaves nothing behind. */
	mbuf_reset(b);
	assert_int_equal(mbuf_put_string(b, "0123456789abcdefg", 17),
	    MSYNC_ERR_TOOBIG);
	assert_int_equal(mbuf_len(b), 0);
	mbuf_free(b);

	assert_non_null(b = mbuf_new(0));
	assert_int_equal(mbuf_put(b, "", 0), 0);
	assert_int_equal(mbuf_put_u8(b, 0), MSYNC_ERR_TOOBIG);
	mbuf_free(b);
}

static void
test_view_readonly(void **state)
{
	static const uint8_t bytes[] = { 0, 0, 0, 1, 'x' };
	struct mbuf	*b;
	uint8_t		*dp, *out;
	size_t		 len;

	assert_non_null(b = mbuf_from(bytes, sizeof(bytes)));
	assert_int_equal(mbuf_put_u8(b, 1), MSYNC_ERR_INTERNAL);
	assert_int_equal(mbuf_reserve(b, 0, &dp), MSYNC_ERR_INTERNAL);
	assert_int_equal(mbuf_detach(b, &out, &len), MSYNC_ERR_INTERNAL);
	assert_int_equal(mbuf_set_max(b, 100), MSYNC_ERR_INTERNAL);
	assert_int_equal(mbuf_avail(b), 0);
	assert_int_equal(mbuf_len(b), sizeof(bytes));
	mbuf_reset(b);
	assert_int_equal(mbuf_len(b), 0);
	mbuf_free(b);
}

static const struct {
	const char	*name;
	uint8_t		 bytes[12];
	size_t		 len;
	size_t		 max;
	int		 r;		/* mbuf_get_string_direct */
	int		 rc;		/* mbuf_get_cstring */
	size_t		 slen;
} strings[] = {
	{ "empty", { 0, 0, 0, 0 }, 4, 10, 0, 0, 0 },
	{ "abc", { 0, 0, 0, 3, 'a', 'b', 'c' }, 7, 10, 0, 0, 3 },
	{ "at max", { 0, 0, 0, 3, 'a', 'b', 'c' }, 7, 3, 0, 0, 3 },
	{ "over max", { 0, 0, 0, 3, 'a', 'b', 'c' }, 7, 2,
	    MSYNC_ERR_TOOBIG, MSYNC_ERR_TOOBIG, 0 },
	{ "short", { 0, 0, 0, 4, 'a', 'b', 'c' }, 7, 10,
	    MSYNC_ERR_INCOMPLETE, MSYNC_ERR_INCOMPLETE, 0 },
	{ "ffffffff", { 0xff, 0xff, 0xff, 0xff, 'a' }, 5, SIZE_MAX,
	    MSYNC_ERR_INCOMPLETE, MSYNC_ERR_INCOMPLETE, 0 },
	{ "ffffffff capped", { 0xff, 0xff, 0xff, 0xff, 'a' }, 5, 100,
	    MSYNC_ERR_TOOBIG, MSYNC_ERR_TOOBIG, 0 },
	{ "no length", { 0, 0, 0 }, 3, 10,
	    MSYNC_ERR_INCOMPLETE, MSYNC_ERR_INCOMPLETE, 0 },
	{ "nul", { 0, 0, 0, 3, 'a', 0, 'c' }, 7, 10, 0, MSYNC_ERR_PROTO, 3 },
	{ "bad utf8", { 0, 0, 0, 2, 0xc3, 0x28 }, 6, 10,
	    0, MSYNC_ERR_PROTO, 2 },
	{ "utf8", { 0, 0, 0, 2, 0xc3, 0xa9 }, 6, 10, 0, 0, 2 },
	{ "trailing", { 0, 0, 0, 1, 'a', 'b' }, 6, 10, 0, 0, 1 },
};

/* Strings: lying lengths, caps, NUL, UTF-8; failures consume nothing. */
static void
test_strings(void **state)
{
	const uint8_t	*p;
	struct mbuf	 v;
	size_t		 i, len;
	char		*s;
	int		 r;

	for (i = 0; i < LEN(strings); i++) {
		print_message("# %s\n", strings[i].name);
		mbuf_view(&v, strings[i].bytes, strings[i].len);
		r = mbuf_get_string_direct(&v, &p, &len, strings[i].max);
		assert_int_equal(r, strings[i].r);
		if (r == 0) {
			assert_int_equal(len, strings[i].slen);
			assert_int_equal(mbuf_len(&v),
			    strings[i].len - 4 - len);
		} else {
			assert_null(p);
			assert_int_equal(mbuf_len(&v), strings[i].len);
		}
		mbuf_view(&v, strings[i].bytes, strings[i].len);
		r = mbuf_get_cstring(&v, &s, &len, strings[i].max);
		assert_int_equal(r, strings[i].rc);
		if (r == 0) {
			assert_int_equal(strlen(s), strings[i].slen);
			assert_memory_equal(s, strings[i].bytes + 4, len);
			free(s);
		} else {
			assert_null(s);
			assert_int_equal(mbuf_len(&v), strings[i].len);
		}
	}
}

static void
test_string_roundtrip(void **state)
{
	struct mbuf	*b;
	struct guid	 g, h;
	char		*s;
	size_t		 len;

	memset(g.b, 0xab, sizeof(g.b));
	assert_non_null(b = mbuf_new(1024));
	assert_int_equal(mbuf_put_cstring(b, "héllo"), 0);
	assert_int_equal(mbuf_put_cstring(b, NULL), 0);
	assert_int_equal(mbuf_put_guid(b, &g), 0);
	assert_int_equal(mbuf_get_cstring(b, &s, &len, 100), 0);
	assert_string_equal(s, "héllo");
	assert_int_equal(len, 6);
	free(s);
	assert_int_equal(mbuf_get_cstring(b, &s, &len, 100), 0);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(mbuf_get_guid(b, &h), 0);
	assert_memory_equal(g.b, h.b, sizeof(g.b));
	assert_int_equal(mbuf_len(b), 0);
	mbuf_free(b);
}

static void
test_peek_consume(void **state)
{
	static const uint8_t bytes[] = { 9, 0, 0, 1, 2, 3 };
	struct mbuf	 v;
	uint32_t	 u32;
	uint8_t		 u8;

	mbuf_view(&v, bytes, sizeof(bytes));
	assert_int_equal(mbuf_peek_u8(&v, 0, &u8), 0);
	assert_int_equal(u8, 9);
	assert_int_equal(mbuf_peek_u8(&v, 6, &u8), MSYNC_ERR_INCOMPLETE);
	assert_int_equal(mbuf_peek_u32(&v, 1, &u32), 0);
	assert_int_equal(u32, 0x102);
	assert_int_equal(mbuf_peek_u32(&v, 3, &u32), MSYNC_ERR_INCOMPLETE);
	assert_int_equal(mbuf_peek_u32(&v, SIZE_MAX, &u32),
	    MSYNC_ERR_INCOMPLETE);
	assert_int_equal(mbuf_len(&v), sizeof(bytes));
	assert_int_equal(mbuf_consume(&v, 7), MSYNC_ERR_INCOMPLETE);
	assert_int_equal(mbuf_consume(&v, SIZE_MAX), MSYNC_ERR_INCOMPLETE);
	assert_int_equal(mbuf_consume_end(&v, 7), MSYNC_ERR_INCOMPLETE);
	assert_int_equal(mbuf_consume(&v, 1), 0);
	assert_int_equal(mbuf_consume_end(&v, 2), 0);
	assert_int_equal(mbuf_len(&v), 3);
	assert_memory_equal(mbuf_ptr(&v), bytes + 1, 3);
	assert_int_equal(mbuf_consume(&v, 3), 0);
	assert_int_equal(mbuf_len(&v), 0);
}

static void
test_detach(void **state)
{
	struct mbuf	*b;
	uint8_t		*out;
	size_t		 len;

	assert_non_null(b = mbuf_new(100));
	assert_int_equal(mbuf_detach(b, &out, &len), 0);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_int_equal(mbuf_put(b, "xxhello", 7), 0);
	assert_int_equal(mbuf_consume(b, 2), 0);
	assert_int_equal(mbuf_detach(b, &out, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(out, "hello", 5);
	free(out);
	assert_int_equal(mbuf_len(b), 0);
	assert_int_equal(mbuf_put(b, "again", 5), 0);
	assert_memory_equal(mbuf_ptr(b), "again", 5);
	mbuf_free(b);
}

static const struct {
	const char	*s;
	int		 ok;
} utf8[] = {
	{ "", 1 }, { "ascii", 1 }, { "\xc3\xa9", 1 }, { "\xe2\x82\xac", 1 },
	{ "\xf0\x9f\x98\x80", 1 }, { "\xf4\x8f\xbf\xbf", 1 },
	{ "\xc3", 0 }, { "\xc3\x28", 0 }, { "\xc0\xaf", 0 }, { "\xc1\xbf", 0 },
	{ "\xe0\x80\xaf", 0 }, { "\xed\xa0\x80", 0 }, { "\xf4\x90\x80\x80", 0 },
	{ "\xf8\x88\x80\x80\x80", 0 }, { "\xff", 0 }, { "\x80", 0 },
	{ "\xe2\x82", 0 }, { "\xf0\x9f\x98", 0 },
};

static void
test_utf8(void **state)
{
	size_t	 i;

	for (i = 0; i < LEN(utf8); i++)
		assert_int_equal(mbuf_utf8_valid((const uint8_t *)utf8[i].s,
		    strlen(utf8[i].s)), utf8[i].ok);
}

/*
 * Random puts, reserves and consumes from both ends against a model of
 * the expected bytes: the length, the contents and the cap always agree.
 */
static void
test_random(void **state)
{
	enum { CAP = 5000, ROUNDS = 20000 };
	static uint8_t	 model[CAP];
	struct mbuf	*b;
	size_t		 mlen = 0, n, i;
	uint8_t		*dp, tmp[512];
	unsigned	 seed = 12345, op;
	int		 r, k;

	assert_non_null(b = mbuf_new(CAP));
	for (k = 0; k < ROUNDS; k++) {
		seed = seed * 1103515245 + 12345;
		op = (seed >> 16) % 5;
		seed = seed * 1103515245 + 12345;
		n = (seed >> 16) % sizeof(tmp);
		for (i = 0; i < n; i++)
			tmp[i] = (uint8_t)(k + i);
		switch (op) {
		case 0:		/* put */
		case 1:		/* reserve and fill */
			if (op == 0)
				r = mbuf_put(b, tmp, n);
			else if ((r = mbuf_reserve(b, n, &dp)) == 0 && n > 0)
				memcpy(dp, tmp, n);
			if (n > CAP - mlen) {
				assert_int_equal(r, MSYNC_ERR_TOOBIG);
				break;
			}
			assert_int_equal(r, 0);
			memcpy(model + mlen, tmp, n);
			mlen += n;
			break;
		case 2:		/* consume */
		case 3:		/* get */
			if (op == 2)
				r = mbuf_consume(b, n);
			else
				r = mbuf_get(b, tmp, n);
			if (n > mlen) {
				assert_int_equal(r, MSYNC_ERR_INCOMPLETE);
				break;
			}
			assert_int_equal(r, 0);
			if (op == 3)
				assert_memory_equal(tmp, model, n);
			memmove(model, model + n, mlen - n);
			mlen -= n;
			break;
		case 4:		/* consume_end */
			r = mbuf_consume_end(b, n);
			if (n > mlen) {
				assert_int_equal(r, MSYNC_ERR_INCOMPLETE);
				break;
			}
			assert_int_equal(r, 0);
			mlen -= n;
			break;
		}
		assert_int_equal(mbuf_len(b), mlen);
		assert_int_equal(mbuf_avail(b), CAP - mlen);
		if (mlen > 0)
			assert_memory_equal(mbuf_ptr(b), model, mlen);
		assert_true(b->alloc <= CAP);
	}
	mbuf_free(b);
}

/* Big buffers grow geometrically up to the cap. */
static void
test_growth(void **state)
{
	struct mbuf	*b;
	uint8_t		*dp;
	size_t		 i;

	assert_non_null(b = mbuf_new(1 << 20));
	for (i = 0; i < 1000; i++)
		assert_int_equal(mbuf_put_u32(b, (uint32_t)i), 0);
	assert_int_equal(mbuf_reserve(b, (1 << 20) - 4000, &dp), 0);
	assert_int_equal(mbuf_len(b), 1 << 20);
	assert_int_equal(b->alloc, 1 << 20);
	assert_int_equal(mbuf_put_u8(b, 0), MSYNC_ERR_TOOBIG);
	for (i = 0; i < 1000; i++) {
		uint32_t v;

		assert_int_equal(mbuf_get_u32(b, &v), 0);
		assert_int_equal(v, i);
	}
	mbuf_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_free),
		cmocka_unit_test(test_put_get_ints),
		cmocka_unit_test(test_short_gets),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_view_readonly),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_string_roundtrip),
		cmocka_unit_test(test_peek_consume),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_growth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
