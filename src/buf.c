/*
 * buf.c — struct mbuf: capped growable bytes with typed big-endian get and
 * put.  See buf.h for the contract; the rules followed here are STYLE.md's
 * "Protocol-parsing rules" 4 and 5: no length comparison can overflow, and
 * a failed get consumes nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define MBUF_MIN_ALLOC	256

/*
 * A new empty buffer that may hold up to max bytes.  Memory is allocated
 * on the first put.  Returns NULL when out of memory.
 */
struct mbuf *
mbuf_new(size_t max)
{
	struct mbuf	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->max = max;
	b->heap = 1;
	return b;
}

/*
 * Makes b a read-only view of p[0..len).  The bytes are borrowed: they
 * must outlive b and are never freed by it.
 */
void
mbuf_view(struct mbuf *b, const void *p, size_t len)
{
	memset(b, 0, sizeof(*b));
	b->cd = p;
	b->size = len;
	b->alloc = len;
	b->max = len;
	b->ro = 1;
}

/*
 * A heap-allocated read-only view of p[0..len); free it with mbuf_free.
 * Returns NULL when out of memory.
 */
struct mbuf *
mbuf_from(const void *p, size_t len)
{
	struct mbuf	*b;

	if ((b = malloc(sizeof(*b))) == NULL)
		return NULL;
	mbuf_view(b, p, len);
	b->heap = 1;
	return b;
}

void
mbuf_free(struct mbuf *b)
{
	if (b == NULL)
		return;
	if (!b->ro)
		free(b->d);
	if (b->heap)
		free(b);
	else
		memset(b, 0, sizeof(*b));
}

size_t
mbuf_len(const struct mbuf *b)
{
	return b->size - b->off;
}

const uint8_t *
mbuf_ptr(const struct mbuf *b)
{
	if (b->cd == NULL)
		return (const uint8_t *)"";
	return b->cd + b->off;
}

size_t
mbuf_avail(const struct mbuf *b)
{
	if (b->ro || mbuf_len(b) > b->max)
		return 0;
	return b->max - mbuf_len(b);
}

size_t
mbuf_max(const struct mbuf *b)
{
	return b->max;
}

/*
 * Changes the cap.  Returns 0, or MSYNC_ERR_TOOBIG when more than max
 * bytes are held already, MSYNC_ERR_INTERNAL for a view.
 */
int
mbuf_set_max(struct mbuf *b, size_t max)
{
	if (b->ro)
		return MSYNC_ERR_INTERNAL;
	if (mbuf_len(b) > max)
		return MSYNC_ERR_TOOBIG;
	b->max = max;
	return 0;
}

void
mbuf_reset(struct mbuf *b)
{
	if (b->ro) {
		b->off = b->size;
		return;
	}
	b->off = b->size = 0;
}

/*
 * Makes sure len more bytes fit after the data: moves the data to the
 * front, then grows the allocation (doubling, capped at max).
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
mbuf_make_room(struct mbuf *b, size_t len)
{
	size_t	 used, need, nalloc;
	uint8_t	*nd;

	if (b->ro)
		return MSYNC_ERR_INTERNAL;
	used = b->size - b->off;
	if (used > b->max || len > b->max - used)
		return MSYNC_ERR_TOOBIG;
	need = used + len;
	if (len <= b->alloc - b->size)
		return 0;
	if (b->off > 0) {
		if (used > 0)
			memmove(b->d, b->d + b->off, used);
		b->off = 0;
		b->size = used;
		b->cd = b->d;
		if (need <= b->alloc)
			return 0;
	}
	nalloc = b->alloc < MBUF_MIN_ALLOC ? MBUF_MIN_ALLOC : b->alloc;
	while (nalloc < need) {
		if (nalloc > SIZE_MAX / 2) {
			nalloc = need;
			break;
		}
		nalloc *= 2;
	}
	if (nalloc > b->max)
		nalloc = b->max;	/* need <= max: checked above */
	if ((nd = realloc(b->d, nalloc)) == NULL)
		return MSYNC_ERR_NOMEM;
	b->d = nd;
	b->cd = nd;
	b->alloc = nalloc;
	return 0;
}

/*
 * Grows the data by len bytes at the end and points *dp at them (their
 * contents are undefined).  Returns 0 on success, negative MSYNC_ERR_* on
 * failure (nothing changes then).
 */
int
mbuf_reserve(struct mbuf *b, size_t len, uint8_t **dp)
{
	int	 r;

	if (dp != NULL)
		*dp = NULL;
	if ((r = mbuf_make_room(b, len)) != 0)
		return r;
	if (dp != NULL && b->d != NULL)
		*dp = b->d + b->size;
	b->size += len;
	return 0;
}

int
mbuf_consume(struct mbuf *b, size_t len)
{
	if (len > b->size - b->off)
		return MSYNC_ERR_INCOMPLETE;
	b->off += len;
	if (b->off == b->size && !b->ro)
		b->off = b->size = 0;
	return 0;
}

int
mbuf_consume_end(struct mbuf *b, size_t len)
{
	if (len > b->size - b->off)
		return MSYNC_ERR_INCOMPLETE;
	b->size -= len;
	if (b->off == b->size && !b->ro)
		b->off = b->size = 0;
	return 0;
}

/*
 * Hands the data over as one malloc'd block and empties b.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
mbuf_detach(struct mbuf *b, uint8_t **out, size_t *len)
{
	size_t	 used;

	*out = NULL;
	*len = 0;
	if (b->ro)
		return MSYNC_ERR_INTERNAL;
	used = b->size - b->off;
	if (used == 0) {
		b->off = b->size = 0;
		return 0;
	}
	if (b->off > 0)
		memmove(b->d, b->d + b->off, used);
	*out = b->d;
	*len = used;
	b->d = NULL;
	b->cd = NULL;
	b->off = b->size = b->alloc = 0;
	return 0;
}

int
mbuf_put(struct mbuf *b, const void *p, size_t len)
{
	uint8_t	*dp;
	int	 r;

	if ((r = mbuf_reserve(b, len, &dp)) != 0)
		return r;
	if (len > 0)
		memcpy(dp, p, len);
	return 0;
}

uint32_t
mbuf_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void
mbuf_set_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

int
mbuf_put_u8(struct mbuf *b, uint8_t v)
{
	return mbuf_put(b, &v, 1);
}

int
mbuf_put_u32(struct mbuf *b, uint32_t v)
{
	uint8_t	 p[4];

	mbuf_set_be32(p, v);
	return mbuf_put(b, p, sizeof(p));
}

int
mbuf_put_u64(struct mbuf *b, uint64_t v)
{
	uint8_t	 p[8];

	mbuf_set_be32(p, v >> 32);
	mbuf_set_be32(p + 4, (uint32_t)v);
	return mbuf_put(b, p, sizeof(p));
}

int
mbuf_put_i32(struct mbuf *b, int32_t v)
{
	return mbuf_put_u32(b, (uint32_t)v);
}

int
mbuf_put_i64(struct mbuf *b, int64_t v)
{
	return mbuf_put_u64(b, (uint64_t)v);
}

/*
 * Appends a u32 length and the bytes, or nothing at all on failure.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
mbuf_put_string(struct mbuf *b, const void *p, size_t len)
{
	uint8_t	*dp;
	int	 r;

	if (len > UINT32_MAX || len > SIZE_MAX - 4)
		return MSYNC_ERR_TOOBIG;
	if ((r = mbuf_reserve(b, 4 + len, &dp)) != 0)
		return r;
	mbuf_set_be32(dp, (uint32_t)len);
	if (len > 0)
		memcpy(dp + 4, p, len);
	return 0;
}

int
mbuf_put_cstring(struct mbuf *b, const char *s)
{
	return mbuf_put_string(b, s, s == NULL ? 0 : strlen(s));
}

int
mbuf_put_guid(struct mbuf *b, const struct guid *g)
{
	return mbuf_put(b, g->b, sizeof(g->b));
}

/*
 * Copies len bytes into p (NULL: skips them) and consumes them.
 * Returns 0, or MSYNC_ERR_INCOMPLETE (nothing consumed).
 */
int
mbuf_get(struct mbuf *b, void *p, size_t len)
{
	if (len > b->size - b->off)
		return MSYNC_ERR_INCOMPLETE;
	if (p != NULL && len > 0)
		memcpy(p, b->cd + b->off, len);
	return mbuf_consume(b, len);
}

int
mbuf_peek_u8(const struct mbuf *b, size_t off, uint8_t *v)
{
	if (off >= b->size - b->off)
		return MSYNC_ERR_INCOMPLETE;
	*v = b->cd[b->off + off];
	return 0;
}

int
mbuf_peek_u32(const struct mbuf *b, size_t off, uint32_t *v)
{
	size_t	 used = b->size - b->off;

	if (off > used || 4 > used - off)
		return MSYNC_ERR_INCOMPLETE;
	*v = mbuf_be32(b->cd + b->off + off);
	return 0;
}

int
mbuf_get_u8(struct mbuf *b, uint8_t *v)
{
	return mbuf_get(b, v, 1);
}

int
mbuf_get_u32(struct mbuf *b, uint32_t *v)
{
	uint8_t	 p[4];
	int	 r;

	if ((r = mbuf_get(b, p, sizeof(p))) != 0)
		return r;
	if (v != NULL)
		*v = mbuf_be32(p);
	return 0;
}

int
mbuf_get_u64(struct mbuf *b, uint64_t *v)
{
	uint8_t	 p[8];
	int	 r;

	if ((r = mbuf_get(b, p, sizeof(p))) != 0)
		return r;
	if (v != NULL)
		*v = (uint64_t)mbuf_be32(p) << 32 | mbuf_be32(p + 4);
	return 0;
}

int
mbuf_get_i32(struct mbuf *b, int32_t *v)
{
	uint32_t u;
	int	 r;

	if ((r = mbuf_get_u32(b, &u)) != 0)
		return r;
	if (v != NULL)
		*v = (int32_t)u;
	return 0;
}

int
mbuf_get_i64(struct mbuf *b, int64_t *v)
{
	uint64_t u;
	int	 r;

	if ((r = mbuf_get_u64(b, &u)) != 0)
		return r;
	if (v != NULL)
		*v = (int64_t)u;
	return 0;
}

int
mbuf_get_guid(struct mbuf *b, struct guid *g)
{
	return mbuf_get(b, g == NULL ? NULL : g->b, sizeof(g->b));
}

/*
 * Reads a u32 length and points *p at that many bytes, then consumes
 * both.  The length is checked against max before the bytes are looked
 * for.  Returns 0 on success, negative MSYNC_ERR_* on failure (nothing
 * consumed).
 */
int
mbuf_get_string_direct(struct mbuf *b, const uint8_t **p, size_t *len,
    size_t max)
{
	uint32_t n;
	size_t	 used = b->size - b->off;
	int	 r;

	if (p != NULL)
		*p = NULL;
	if (len != NULL)
		*len = 0;
	if ((r = mbuf_peek_u32(b, 0, &n)) != 0)
		return r;
	if (n > max)
		return MSYNC_ERR_TOOBIG;
	if (n > used - 4)
		return MSYNC_ERR_INCOMPLETE;
	if (p != NULL)
		*p = b->cd + b->off + 4;
	if (len != NULL)
		*len = n;
	return mbuf_consume(b, 4 + (size_t)n);
}

/*
 * Reads a string into a new C string.  Returns 0 on success, negative
 * MSYNC_ERR_* on failure (nothing consumed, *out NULL).
 */
int
mbuf_get_cstring(struct mbuf *b, char **out, size_t *lenp, size_t max)
{
	struct mbuf	 save = *b;
	const uint8_t	*p;
	size_t		 len;
	char		*s;
	int		 r;

	*out = NULL;
	if (lenp != NULL)
		*lenp = 0;
	if ((r = mbuf_get_string_direct(b, &p, &len, max)) != 0)
		return r;
	if (memchr(p, '\0', len) != NULL || !mbuf_utf8_valid(p, len)) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	if ((s = malloc(len + 1)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	memcpy(s, p, len);
	s[len] = '\0';
	*out = s;
	if (lenp != NULL)
		*lenp = len;
	return 0;
 out:
	*b = save;	/* a failed get consumes nothing */
	return r;
}

/*
 * 1 if p[0..len) is well-formed UTF-8 (RFC 3629): no overlong forms, no
 * surrogates, nothing above U+10FFFF.  NUL bytes pass; callers that care
 * check for them.
 */
int
mbuf_utf8_valid(const uint8_t *p, size_t len)
{
	size_t	 i = 0, n, k;
	uint32_t c, min;

	while (i < len) {
		c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1;
			c &= 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			c &= 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			c &= 0x07;
			min = 0x10000;
		} else
			return 0;
		if (n > len - i - 1)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (p[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}
