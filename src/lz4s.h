/*
 * lz4s.h — per-direction LZ4 streaming for the record channel.  One
 * encoder per outgoing stream, one decoder per incoming stream; each keeps
 * the last 64 KiB of its stream as the dictionary, so a header repeated
 * in a later block costs a few bytes.
 *
 * On the wire a block is
 *
 *	u32 clen	compressed length, 1 .. LZ4S_CBLOCK_MAX
 *	u32 rlen	raw length, 1 .. LZ4S_BLOCK_MAX
 *	u32 check	low 32 bits of XXH3-64 of the 8 bytes above,
 *			seeded with the block's number in the stream (0..)
 *	clen bytes	one LZ4 block (no frame), compressed with the
 *			stream's history as its dictionary
 *
 * all big-endian.  The check lets a receiver refuse a changed length at
 * once instead of waiting for bytes that will never come; the records
 * inside carry their own checks (chan.c).  The decoder uses LZ4_decompress_safe_continue with
 * capacity rlen; any other result size is MSYNC_ERR_PROTO.  After an
 * error a decoder (or encoder) is unusable and must be freed.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef LZ4S_H
#define LZ4S_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define LZ4S_BLOCK_MAX	(64 * 1024)	/* raw bytes in one block */
#define LZ4S_CBLOCK_MAX	(LZ4S_BLOCK_MAX + LZ4S_BLOCK_MAX / 255 + 16)
#define LZ4S_HDR_LEN	12		/* clen + rlen + check */

struct lz4s_enc;
struct lz4s_dec;

/* Returns 0 or MSYNC_ERR_NOMEM. */
int	 lz4s_enc_new(struct lz4s_enc **out);
void	 lz4s_enc_free(struct lz4s_enc *);
/*
 * Compresses p[0..len), 1 <= len <= LZ4S_BLOCK_MAX, into one block
 * (header and data) appended to out.  Returns 0 on success, negative
 * MSYNC_ERR_* on failure (out unchanged).
 */
int	 lz4s_enc_block(struct lz4s_enc *, const void *p, size_t len,
	    struct mbuf *out);

/* Returns 0 or MSYNC_ERR_NOMEM. */
int	 lz4s_dec_new(struct lz4s_dec **out);
void	 lz4s_dec_free(struct lz4s_dec *);
/*
 * Looks at the header of the decoder's next block, at the front of
 * p[0..len): *blen = the whole block's size on the wire, *rlen = its raw
 * size.  Returns 0, MSYNC_ERR_INCOMPLETE (fewer than LZ4S_HDR_LEN bytes)
 * or MSYNC_ERR_PROTO (a bad check, a length of 0 or over its maximum).
 */
int	 lz4s_peek(const struct lz4s_dec *, const uint8_t *p, size_t len,
	    size_t *blen, size_t *rlen);
/*
 * Decodes the block at the front of in, consumes it and appends its raw
 * bytes to out.  Returns 0; MSYNC_ERR_INCOMPLETE when the block is not
 * all there (nothing consumed); MSYNC_ERR_PROTO for a bad header or bad
 * data; MSYNC_ERR_TOOBIG when out has no room for the raw bytes (nothing
 * consumed).
 */
int	 lz4s_dec_block(struct lz4s_dec *, struct mbuf *in, struct mbuf *out);

#endif /* LZ4S_H */
