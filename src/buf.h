/*
 * buf.h — struct mbuf: a capped, growable byte buffer with typed
 * big-endian get and put (OpenSSH sshbuf, curl dynbuf).
 *
 * Bytes are appended at the end and consumed from the front.  Every buffer
 * has a cap, fixed when it is created: a put or reserve that would grow
 * the buffer beyond it fails with MSYNC_ERR_TOOBIG.  A failed get consumes
 * nothing.  Lengths are compared without overflow (len > avail - off).
 *
 * A read-only view (mbuf_from, mbuf_view) wraps bytes that it does not
 * own, for decoding; puts on a view fail with MSYNC_ERR_INTERNAL.
 *
 * Wire conventions: integers are big-endian; a string is a u32 length and
 * that many bytes (no terminating NUL); a GUID is 16 raw bytes.
 *
 * All memory belongs to the caller unless stated otherwise.  Functions
 * return 0 on success or a negative MSYNC_ERR_*: INCOMPLETE for a get
 * with too few bytes, TOOBIG for a put over the cap or a string over its
 * limit, PROTO for a string with a NUL or bad UTF-8, NOMEM.
 */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>
#include <stdint.h>

#include "msync.h"

/*
 * The members are private to buf.c; the struct is public only so that a
 * view can live on the stack (mbuf_view).
 */
struct mbuf {
	uint8_t		*d;		/* owned unless ro; NULL until grown */
	const uint8_t	*cd;		/* the bytes: d, or the viewed bytes */
	size_t		 off;		/* first unconsumed byte */
	size_t		 size;		/* end of the data */
	size_t		 alloc;		/* bytes allocated at d */
	size_t		 max;		/* cap on size - off (and alloc) */
	int		 ro;		/* 1: a read-only view */
	int		 heap;		/* 1: the struct itself was malloc'd */
};

/* The cap used when none is given: 256 MiB. */
#define MBUF_MAX_DEFAULT	(256UL * 1024 * 1024)

/* A new empty buffer holding at most max bytes; NULL when out of memory. */
struct mbuf	*mbuf_new(size_t max);
/* A read-only view of p[0..len) (not copied); NULL when out of memory. */
struct mbuf	*mbuf_from(const void *p, size_t len);
/* Makes *b, e.g. on the stack, a read-only view of p[0..len). */
void		 mbuf_view(struct mbuf *b, const void *p, size_t len);
/* Frees the buffer (and the struct if mbuf_new/mbuf_from made it). */
void		 mbuf_free(struct mbuf *);

/* Bytes not yet consumed. */
size_t		 mbuf_len(const struct mbuf *);
/* The unconsumed bytes; valid until the next call that changes b. */
const uint8_t	*mbuf_ptr(const struct mbuf *);
/* Bytes that could still be appended before the cap. */
size_t		 mbuf_avail(const struct mbuf *);
size_t		 mbuf_max(const struct mbuf *);
/* Changes the cap; MSYNC_ERR_TOOBIG if the data already exceeds it. */
int		 mbuf_set_max(struct mbuf *, size_t max);
/* Empties the buffer, keeping its memory (a view: consumes everything). */
void		 mbuf_reset(struct mbuf *);

/*
 * Makes room for len more bytes at the end and returns them in *dp: the
 * data grows by len now (shrink with mbuf_consume_end).  *dp is valid
 * until the next call that changes b.
 */
int		 mbuf_reserve(struct mbuf *, size_t len, uint8_t **dp);
/* Drops len bytes from the front / from the end; INCOMPLETE if fewer. */
int		 mbuf_consume(struct mbuf *, size_t len);
int		 mbuf_consume_end(struct mbuf *, size_t len);
/*
 * Hands the unconsumed bytes over as a malloc'd block (*out, owned by the
 * caller; NULL when empty) and empties b.  Not for views.
 */
int		 mbuf_detach(struct mbuf *, uint8_t **out, size_t *len);

int		 mbuf_put(struct mbuf *, const void *, size_t);
int		 mbuf_put_u8(struct mbuf *, uint8_t);
int		 mbuf_put_u32(struct mbuf *, uint32_t);
int		 mbuf_put_u64(struct mbuf *, uint64_t);
int		 mbuf_put_i32(struct mbuf *, int32_t);
int		 mbuf_put_i64(struct mbuf *, int64_t);
/* u32 length + bytes; MSYNC_ERR_TOOBIG when len > UINT32_MAX. */
int		 mbuf_put_string(struct mbuf *, const void *, size_t);
/* A C string (NULL counts as "") as a string. */
int		 mbuf_put_cstring(struct mbuf *, const char *);
int		 mbuf_put_guid(struct mbuf *, const struct guid *);

/* Typed gets; a NULL out pointer skips the value. */
int		 mbuf_get(struct mbuf *, void *, size_t);
int		 mbuf_get_u8(struct mbuf *, uint8_t *);
int		 mbuf_get_u32(struct mbuf *, uint32_t *);
int		 mbuf_get_u64(struct mbuf *, uint64_t *);
int		 mbuf_get_i32(struct mbuf *, int32_t *);
int		 mbuf_get_i64(struct mbuf *, int64_t *);
int		 mbuf_get_guid(struct mbuf *, struct guid *);
/*
 * A string as a borrowed view (*p, *len; not NUL-terminated; valid until
 * the next call that changes b).  MSYNC_ERR_TOOBIG when the length field
 * exceeds max (checked before anything else), INCOMPLETE when fewer bytes
 * are there.
 */
int		 mbuf_get_string_direct(struct mbuf *, const uint8_t **p,
		    size_t *len, size_t max);
/*
 * A string as a new NUL-terminated C string (*out, owned by the caller):
 * at most max bytes, no NUL inside, valid UTF-8 (MSYNC_ERR_PROTO).
 */
int		 mbuf_get_cstring(struct mbuf *, char **out, size_t *len,
		    size_t max);
/* Reads a u32 or u8 without consuming it. */
int		 mbuf_peek_u32(const struct mbuf *, size_t off, uint32_t *);
int		 mbuf_peek_u8(const struct mbuf *, size_t off, uint8_t *);

/* 1 if p[0..len) is valid UTF-8 (RFC 3629: no overlongs, surrogates). */
int		 mbuf_utf8_valid(const uint8_t *p, size_t len);

/* Big-endian helpers on raw memory. */
uint32_t	 mbuf_be32(const uint8_t *);
void		 mbuf_set_be32(uint8_t *, uint32_t);

#endif /* BUF_H */
