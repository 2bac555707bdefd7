/*
 * lz4s.c — per-direction LZ4 block streaming with a dictionary that spans
 * blocks.  See lz4s.h for the block format.
 *
 * The encoder copies each block's input into a ring of 3 x 64 KiB, so
 * the previous 64 KiB of the stream stay in place at their addresses, as
 * LZ4_compress_fast_continue needs.  The decoder decompresses into its
 * own ring of LZ4_decoderRingBufferSize(64 KiB) bytes, which lz4.h allows
 * to wrap independently of the encoder, and copies the result out.
 */
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <xxhash.h>

#include "buf.h"
#include "lz4s.h"
#include "msync.h"

#define LZ4S_ENC_RING	(3 * LZ4S_BLOCK_MAX)
#define LZ4S_ACCEL	1

/* See chan.c's CHAN_FUZZ: the fuzzer's made-up blocks skip the check. */
#ifdef MSYNC_FUZZ
#define LZ4S_FUZZ	1
#else
#define LZ4S_FUZZ	0
#endif

/* The check of a block header's first 8 bytes. */
static uint32_t
hdr_check(const uint8_t *p, uint64_t seq)
{
	return (uint32_t)XXH3_64bits_withSeed(p, 8, seq);
}

_Static_assert(LZ4S_CBLOCK_MAX == LZ4_COMPRESSBOUND(LZ4S_BLOCK_MAX),
    "LZ4S_CBLOCK_MAX must equal LZ4_COMPRESSBOUND(LZ4S_BLOCK_MAX)");

struct lz4s_enc {
	LZ4_stream_t	*ls;		/* owned */
	char		*ring;		/* owned; LZ4S_ENC_RING bytes */
	size_t		 pos;		/* where the next block's input goes */
	uint64_t	 seq;		/* number of the next block */
	int		 broken;	/* an error happened: unusable */
};

struct lz4s_dec {
	LZ4_streamDecode_t *ls;		/* owned */
	char		*ring;		/* owned; ringlen bytes */
	size_t		 ringlen;
	size_t		 pos;		/* where the next block decodes to */
	uint64_t	 seq;		/* number of the next block */
	int		 broken;	/* an error happened: unusable */
};

int
lz4s_enc_new(struct lz4s_enc **out)
{
	struct lz4s_enc	*e;

	*out = NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return MSYNC_ERR_NOMEM;
	if ((e->ls = LZ4_createStream()) == NULL ||
	    (e->ring = malloc(LZ4S_ENC_RING)) == NULL) {
		lz4s_enc_free(e);
		return MSYNC_ERR_NOMEM;
	}
	*out = e;
	return 0;
}

void
lz4s_enc_free(struct lz4s_enc *e)
{
	if (e == NULL)
		return;
	if (e->ls != NULL)
		LZ4_freeStream(e->ls);
	free(e->ring);
	free(e);
}

/*
 * Copies p[0..len) into the ring and compresses it as the next block,
 * appending header and data to out.  Returns 0 on success, negative
 * MSYNC_ERR_* on failure.
 */
int
lz4s_enc_block(struct lz4s_enc *e, const void *p, size_t len,
    struct mbuf *out)
{
	uint8_t	*dp;
	char	*src;
	int	 c, r;

	if (e->broken || len == 0 || len > LZ4S_BLOCK_MAX)
		return MSYNC_ERR_INTERNAL;
	if ((r = mbuf_reserve(out, LZ4S_HDR_LEN + LZ4S_CBLOCK_MAX, &dp)) != 0)
		return r;
	if (len > LZ4S_ENC_RING - e->pos)
		e->pos = 0;
	src = e->ring + e->pos;
	memcpy(src, p, len);
	c = LZ4_compress_fast_continue(e->ls, src, (char *)dp + LZ4S_HDR_LEN,
	    (int)len, LZ4S_CBLOCK_MAX, LZ4S_ACCEL);
	if (c <= 0 || c > LZ4S_CBLOCK_MAX) {
		e->broken = 1;
		mbuf_consume_end(out, LZ4S_HDR_LEN + LZ4S_CBLOCK_MAX);
		return MSYNC_ERR_INTERNAL;
	}
	e->pos += len;
	mbuf_set_be32(dp, (uint32_t)c);
	mbuf_set_be32(dp + 4, (uint32_t)len);
	mbuf_set_be32(dp + 8, hdr_check(dp, e->seq++));
	mbuf_consume_end(out, LZ4S_CBLOCK_MAX - (size_t)c);
	return 0;
}

int
lz4s_dec_new(struct lz4s_dec **out)
{
	struct lz4s_dec	*d;
	int		 n;

	*out = NULL;
	if ((n = LZ4_decoderRingBufferSize(LZ4S_BLOCK_MAX)) <= 0)
		return MSYNC_ERR_INTERNAL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return MSYNC_ERR_NOMEM;
	d->ringlen = (size_t)n;
	if ((d->ls = LZ4_createStreamDecode()) == NULL ||
	    (d->ring = malloc(d->ringlen)) == NULL) {
		lz4s_dec_free(d);
		return MSYNC_ERR_NOMEM;
	}
	*out = d;
	return 0;
}

void
lz4s_dec_free(struct lz4s_dec *d)
{
	if (d == NULL)
		return;
	if (d->ls != NULL)
		LZ4_freeStreamDecode(d->ls);
	free(d->ring);
	free(d);
}

/*
 * Reads a block header.  Returns 0 on success, negative MSYNC_ERR_* on
 * failure.
 */
int
lz4s_peek(const struct lz4s_dec *d, const uint8_t *p, size_t len,
    size_t *blen, size_t *rlen)
{
	uint32_t c, n;

	*blen = *rlen = 0;
	if (len < LZ4S_HDR_LEN)
		return MSYNC_ERR_INCOMPLETE;
	/* Read: [lz4-block-clen]. */
	c = mbuf_be32(p);
	/* Read: [lz4-block-rlen]. */
	n = mbuf_be32(p + 4);
	/* Read: [lz4-block-check]. */
	if (mbuf_be32(p + 8) != hdr_check(p, d->seq) && !LZ4S_FUZZ)
		return MSYNC_ERR_PROTO;
	if (c == 0 || c > LZ4S_CBLOCK_MAX || n == 0 || n > LZ4S_BLOCK_MAX)
		return MSYNC_ERR_PROTO;
	*blen = LZ4S_HDR_LEN + (size_t)c;
	*rlen = n;
	return 0;
}

/*
 * Decodes one block from in to out.  Returns 0 on success, negative
 * MSYNC_ERR_* on failure.
 */
int
lz4s_dec_block(struct lz4s_dec *d, struct mbuf *in, struct mbuf *out)
{
	size_t	 blen, rlen;
	char	*dst;
	int	 n, r;

	if (d->broken)
		return MSYNC_ERR_PROTO;
	if ((r = lz4s_peek(d, mbuf_ptr(in), mbuf_len(in), &blen, &rlen)) !=
	    0) {
		if (r == MSYNC_ERR_PROTO)
			d->broken = 1;
		return r;
	}
	if (blen > mbuf_len(in))
		return MSYNC_ERR_INCOMPLETE;
	if (rlen > mbuf_avail(out))
		return MSYNC_ERR_TOOBIG;
	if (rlen > d->ringlen - d->pos)
		d->pos = 0;
	dst = d->ring + d->pos;
	/* Read: [lz4-block-data]. */
	n = LZ4_decompress_safe_continue(d->ls,
	    (const char *)mbuf_ptr(in) + LZ4S_HDR_LEN, dst,
	    (int)(blen - LZ4S_HDR_LEN), (int)rlen);
	if (n < 0 || (size_t)n != rlen) {
		d->broken = 1;
		return MSYNC_ERR_PROTO;
	}
	d->pos += rlen;
	d->seq++;
	if ((r = mbuf_put(out, dst, rlen)) != 0) {
		d->broken = 1;	/* the stream has moved on */
		return r;
	}
	return mbuf_consume(in, blen);
}
