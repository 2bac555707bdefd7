/*
 * test_lz4s.c — LZ4 block streaming: many blocks round-trip, the
 * dictionary spans blocks (a repeated header costs a few bytes), and
 * lying sizes, truncated blocks and garbage are refused cleanly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "buf.h"
#include "lz4s.h"
#include "msync.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const char header[] =
    "Received: from mail.example.org (mail.example.org [192.0.2.1])\n"
    "\tby mx.example.net with ESMTPS id 4Ab3Cd5Ef6\n"
    "\tfor <user@example.net>; Tue, 28 Nov 2023 18:00:00 +0000\n"
    "From: Someone <someone@example.org>\n"
    "To: user@example.net\n"
    "Subject: quarterly report and other things\n"
    "Message-ID: <20231128180000.12345@example.org>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n\n";

/* Pseudo-random, incompressible bytes. */
static void
fill_random(uint8_t *p, size_t n, uint32_t *seed)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		*seed = *seed * 1103515245 + 12345;
		p[i] = (uint8_t)(*seed >> 16);
	}
}

/* Compresses one block and returns its size on the wire. */
static size_t
enc(struct lz4s_enc *e, const void *p, size_t n, struct mbuf *out)
{
	size_t	 before = mbuf_len(out);

	assert_int_equal(lz4s_enc_block(e, p, n, out), 0);
	return mbuf_len(out) - before;
}

static void
test_dictionary(void **state)
{
	struct lz4s_enc	*e;
	struct lz4s_dec	*d;
	struct mbuf	*wire, *raw;
	size_t		 first, second, hl = sizeof(header) - 1;

	assert_int_equal(lz4s_enc_new(&e), 0);
	assert_int_equal(lz4s_dec_new(&d), 0);
	assert_non_null(wire = mbuf_new(1 << 20));
	assert_non_null(raw = mbuf_new(1 << 20));
	first = enc(e, header, hl, wire);
	second = enc(e, header, hl, wire);
	print_message("# header %zu bytes: first block %zu, second %zu\n",
	    hl, first, second);
	assert_true(first > hl / 2);
	assert_true(second < 32);	/* one match against the previous */
	assert_int_equal(lz4s_dec_block(d, wire, raw), 0);
	assert_int_equal(lz4s_dec_block(d, wire, raw), 0);
	assert_int_equal(mbuf_len(wire), 0);
	assert_int_equal(mbuf_len(raw), 2 * hl);
	assert_memory_equal(mbuf_ptr(raw), header, hl);
	assert_memory_equal(mbuf_ptr(raw) + hl, header, hl);
	assert_int_equal(lz4s_dec_block(d, wire, raw), MSYNC_ERR_INCOMPLETE);
	mbuf_free(wire);
	mbuf_free(raw);
	lz4s_enc_free(e);
	lz4s_dec_free(d);
}

/*
 * Many blocks of mixed sizes and content, decoded as the wire delivers
 * them (in pieces), wrapping both rings many times.
 */
static void
test_many_blocks(void **state)
{
	struct lz4s_enc	*e;
	struct lz4s_dec	*d;
	struct mbuf	*wire, *raw, *want;
	uint8_t		*blk;
	uint32_t	 seed = 7;
	size_t		 i, n, total_wire = 0, fed;
	int		 r;

	assert_int_equal(lz4s_enc_new(&e), 0);
	assert_int_equal(lz4s_dec_new(&d), 0);
	assert_non_null(blk = malloc(LZ4S_BLOCK_MAX));
	assert_non_null(want = mbuf_new(64 << 20));
	assert_non_null(raw = mbuf_new(64 << 20));
	assert_non_null(wire = mbuf_new(64 << 20));
	for (i = 0; i < 600; i++) {
		seed = seed * 1103515245 + 12345;
		n = 1 + (seed >> 8) % LZ4S_BLOCK_MAX;
		if (i % 7 == 0)
			n = LZ4S_BLOCK_MAX;
		if (i % 3 == 0)
			fill_random(blk, n, &seed);
		else {
			size_t k;

			for (k = 0; k < n; k++)
				blk[k] = (uint8_t)header[(k + i) %
				    (sizeof(header) - 1)];
		}
		assert_int_equal(mbuf_put(want, blk, n), 0);
		total_wire += enc(e, blk, n, wire);
	}
	/* Feed the wire bytes 1000 at a time. */
	{
		struct mbuf	*in = mbuf_new(1 << 20);
		const uint8_t	*w = mbuf_ptr(wire);

		assert_non_null(in);
		for (fed = 0; fed < total_wire; ) {
			n = total_wire - fed < 1000 ? total_wire - fed : 1000;
			assert_int_equal(mbuf_put(in, w + fed, n), 0);
			fed += n;
			while ((r = lz4s_dec_block(d, in, raw)) == 0)
				;
			assert_int_equal(r, MSYNC_ERR_INCOMPLETE);
		}
		assert_int_equal(mbuf_len(in), 0);
		mbuf_free(in);
	}
	assert_int_equal(mbuf_len(raw), mbuf_len(want));
	assert_memory_equal(mbuf_ptr(raw), mbuf_ptr(want), mbuf_len(want));
	print_message("# %zu raw bytes, %zu on the wire\n", mbuf_len(want),
	    total_wire);
	free(blk);
	mbuf_free(want);
	mbuf_free(raw);
	mbuf_free(wire);
	lz4s_enc_free(e);
	lz4s_dec_free(d);
}

static void
test_enc_args(void **state)
{
	struct lz4s_enc	*e;
	struct mbuf	*out, *small;
	static uint8_t	 big[LZ4S_BLOCK_MAX + 1];

	assert_int_equal(lz4s_enc_new(&e), 0);
	assert_non_null(out = mbuf_new(1 << 20));
	assert_int_equal(lz4s_enc_block(e, big, 0, out), MSYNC_ERR_INTERNAL);
	assert_int_equal(lz4s_enc_block(e, big, sizeof(big), out),
	    MSYNC_ERR_INTERNAL);
	assert_int_equal(mbuf_len(out), 0);
	/* An output buffer that cannot take a block's bound: TOOBIG. */
	assert_non_null(small = mbuf_new(100));
	assert_int_equal(lz4s_enc_block(e, big, 10, small), MSYNC_ERR_TOOBIG);
	assert_int_equal(mbuf_len(small), 0);
	assert_int_equal(lz4s_enc_block(e, big, sizeof(big) - 1, out), 0);
	mbuf_free(small);
	mbuf_free(out);
	lz4s_enc_free(e);
	lz4s_enc_free(NULL);
	lz4s_dec_free(NULL);
}

/* Builds one valid block of text into a new buffer. */
static struct mbuf *
one_block(const void *p, size_t n)
{
	struct lz4s_enc	*e;
	struct mbuf	*out;

	assert_int_equal(lz4s_enc_new(&e), 0);
	assert_non_null(out = mbuf_new(1 << 20));
	assert_int_equal(lz4s_enc_block(e, p, n, out), 0);
	lz4s_enc_free(e);
	return out;
}

/* Decodes bytes with a fresh decoder; returns the result. */
static int
dec_bytes(const uint8_t *p, size_t n, size_t outcap)
{
	struct lz4s_dec	*d;
	struct mbuf	 in, *out;
	int		 r;

	assert_int_equal(lz4s_dec_new(&d), 0);
	assert_non_null(out = mbuf_new(outcap));
	mbuf_view(&in, p, n);
	r = lz4s_dec_block(d, &in, out);
	if (r != 0) {
		assert_int_equal(mbuf_len(out), 0);
		if (r == MSYNC_ERR_INCOMPLETE || r == MSYNC_ERR_TOOBIG)
			assert_int_equal(mbuf_len(&in), n);
	}
	mbuf_free(out);
	lz4s_dec_free(d);
	return r;
}

/* Raw sizes that lie, either way, and lengths over their maximum. */
/*
 * Sets the u32 at p + off of the first block's header to v and gives the
 * header a matching check, so that only the lie itself is tested.
 */
static void
lie(uint8_t *p, size_t off, uint32_t v)
{
	mbuf_set_be32(p + off, v);
	mbuf_set_be32(p + 8, (uint32_t)XXH3_64bits_withSeed(p, 8, 0));
}

static void
test_lying_sizes(void **state)
{
	struct mbuf	*b;
	uint8_t		*p;
	size_t		 n, hl = sizeof(header) - 1;
	uint32_t	 c, rl;

	b = one_block(header, hl);
	n = mbuf_len(b);
	assert_non_null(p = malloc(n));
	memcpy(p, mbuf_ptr(b), n);
	c = mbuf_be32(p);
	rl = mbuf_be32(p + 4);
	assert_int_equal(c + LZ4S_HDR_LEN, n);
	assert_int_equal(rl, hl);
	assert_int_equal(dec_bytes(p, n, 1 << 20), 0);

	/* any header byte changed without its check: refused at once */
	for (size_t k = 0; k < LZ4S_HDR_LEN; k++) {
		p[k] ^= 0x01;
		assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
		p[k] ^= 0x01;
	}

	/* raw size too small, too large, 0, over the block maximum */
	lie(p, 4, rl - 1);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
	lie(p, 4, rl + 1);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
	lie(p, 4, 0);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
	lie(p, 4, LZ4S_BLOCK_MAX + 1);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
	lie(p, 4, 0xffffffff);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
	lie(p, 4, rl);

	/* compressed size: 0, over the bound, 0xffffffff, shorter */
	lie(p, 0, 0);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
	lie(p, 0, LZ4S_CBLOCK_MAX + 1);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
	lie(p, 0, 0xffffffff);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_PROTO);
	lie(p, 0, c - 1);
	assert_int_equal(dec_bytes(p, n - 1, 1 << 20), MSYNC_ERR_PROTO);
	/* longer than the data: waits for more */
	lie(p, 0, c + 1);
	assert_int_equal(dec_bytes(p, n, 1 << 20), MSYNC_ERR_INCOMPLETE);
	lie(p, 0, c);

	/* no room in the output for the declared size */
	assert_int_equal(dec_bytes(p, n, hl - 1), MSYNC_ERR_TOOBIG);
	free(p);
	mbuf_free(b);
}

static void
test_truncated(void **state)
{
	struct mbuf	*b;
	const uint8_t	*p;
	size_t		 i, n;

	b = one_block(header, sizeof(header) - 1);
	p = mbuf_ptr(b);
	n = mbuf_len(b);
	for (i = 0; i < n; i++) {
		uint8_t *cut = malloc(i + 1);

		assert_non_null(cut);
		memcpy(cut, p, i);
		assert_int_equal(dec_bytes(cut, i, 1 << 20),
		    MSYNC_ERR_INCOMPLETE);
		free(cut);
	}
	mbuf_free(b);
}

/* Garbage data under a plausible header: an error, never a crash. */
static void
test_garbage(void **state)
{
	uint8_t		 buf[8 + 4096];
	uint32_t	 seed = 99;
	size_t		 i, clen;
	int		 r, ok = 0;

	for (i = 0; i < 2000; i++) {
		seed = seed * 1103515245 + 12345;
		clen = 1 + (seed >> 8) % 4096;
		fill_random(buf + 8, clen, &seed);
		mbuf_set_be32(buf, (uint32_t)clen);
		mbuf_set_be32(buf + 4, 1 + (seed >> 4) % LZ4S_BLOCK_MAX);
		r = dec_bytes(buf, 8 + clen, 1 << 20);
		assert_true(r == 0 || r == MSYNC_ERR_PROTO);
		ok += r == 0;
	}
	print_message("# %d of 2000 random blocks decoded\n", ok);

	/* A match offset before the start of the stream. */
	{
		static const uint8_t bad[] = {
			0, 0, 0, 4, 0, 0, 0, 20,
			0x0f, 0xff, 0xff, 0x00,	/* match, offset 0xffff */
		};

		assert_int_equal(dec_bytes(bad, sizeof(bad), 1 << 20),
		    MSYNC_ERR_PROTO);
	}
}

/* After an error a decoder stays failed. */
static void
test_sticky(void **state)
{
	struct lz4s_dec	*d;
	struct mbuf	*good, *out, in;
	static const uint8_t bad[] = { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 };

	good = one_block("hello", 5);
	assert_int_equal(lz4s_dec_new(&d), 0);
	assert_non_null(out = mbuf_new(1 << 20));
	mbuf_view(&in, bad, sizeof(bad));
	assert_int_equal(lz4s_dec_block(d, &in, out), MSYNC_ERR_PROTO);
	assert_int_equal(lz4s_dec_block(d, good, out), MSYNC_ERR_PROTO);
	mbuf_free(out);
	mbuf_free(good);
	lz4s_dec_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dictionary),
		cmocka_unit_test(test_many_blocks),
		cmocka_unit_test(test_enc_args),
		cmocka_unit_test(test_lying_sizes),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_sticky),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
