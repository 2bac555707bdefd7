/*
 * guid.c — message identity: XXH3-128 of the content with every CRLF
 * folded to LF (DESIGN.md "Identity").
 *
 * The folding is streaming: a CR that ends one piece is held back until
 * the next piece shows whether an LF follows; a lone CR is kept.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

#include "msync.h"
#include "guid.h"

#define GUID_READ_SIZE	(64 * 1024)

struct guid_ctx {
	XXH3_state_t	*st;		/* owned */
	int		 cr;		/* a CR ends the last piece */
};

/*
 * Allocates a hashing context.  Returns NULL when out of memory; free it
 * with guid_ctx_free.
 */
struct guid_ctx *
guid_ctx_new(void)
{
	struct guid_ctx	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->st = XXH3_createState()) == NULL) {
		free(c);
		return NULL;
	}
	XXH3_128bits_reset(c->st);
	return c;
}

/* Frees a context.  Accepts NULL. */
void
guid_ctx_free(struct guid_ctx *c)
{
	if (c == NULL)
		return;
	XXH3_freeState(c->st);
	free(c);
}

/*
 * Feeds len bytes of content.  Every CR directly followed by LF is
 * dropped, also across pieces: a CR at the end of p is held until the
 * next call (or guid_final) tells whether it pairs with an LF.
 */
void
guid_update(struct guid_ctx *c, const void *p, size_t len)
{
	const char	*s = p, *end = s + len, *cr;

	if (len == 0)
		return;
	if (c->cr) {
		c->cr = 0;
		if (*s != '\n')
			XXH3_128bits_update(c->st, "\r", 1);
	}
	while (s < end) {
		if ((cr = memchr(s, '\r', end - s)) == NULL) {
			XXH3_128bits_update(c->st, s, end - s);
			break;
		}
		if (cr > s)
			XXH3_128bits_update(c->st, s, cr - s);
		if (cr + 1 == end) {
			c->cr = 1;	/* decided by the next piece */
			break;
		}
		if (cr[1] == '\n')
			s = cr + 1;	/* drop the CR, the LF starts the run */
		else {
			XXH3_128bits_update(c->st, "\r", 1);
			s = cr + 1;
		}
	}
}

/*
 * Finishes the hash into *out.  The context may not be fed again
 * (guid_ctx_free it).
 */
void
guid_final(struct guid_ctx *c, struct guid *out)
{
	XXH128_hash_t		h;
	XXH128_canonical_t	canon;

	if (c->cr) {
		c->cr = 0;
		XXH3_128bits_update(c->st, "\r", 1);
	}
	h = XXH3_128bits_digest(c->st);
	XXH128_canonicalFromHash(&canon, h);
	memcpy(out->b, canon.digest, sizeof(out->b));
}

/*
 * The GUID of a whole buffer, without allocating: the CRLF folding is
 * done by hand on a stack state.
 */
void
guid_of(const void *p, size_t len, struct guid *out)
{
	struct guid_ctx	 c;
	XXH3_state_t	 st;

	c.st = &st;
	c.cr = 0;
	XXH3_INITSTATE(&st);
	XXH3_128bits_reset(&st);
	guid_update(&c, p, len);
	guid_final(&c, out);
}

/*
 * The GUID of the file open on fd, read from offset 0 with pread (the
 * file offset is not moved), 64 KiB at a time.  *size (if not NULL) gets
 * the number of bytes read.  Returns 0, MSYNC_ERR_NOMEM, or MSYNC_ERR_IO
 * with errno set.
 */
int
guid_of_fd(int fd, struct guid *out, uint64_t *size)
{
	struct guid_ctx	 c;
	XXH3_state_t	 st;
	char		*buf = NULL;
	uint64_t	 off = 0;
	ssize_t		 n;
	int		 r = MSYNC_ERR_IO, saved;

	if ((buf = malloc(GUID_READ_SIZE)) == NULL)
		return MSYNC_ERR_NOMEM;
	c.st = &st;
	c.cr = 0;
	XXH3_INITSTATE(&st);
	XXH3_128bits_reset(&st);
	for (;;) {
		n = pread(fd, buf, GUID_READ_SIZE, (off_t)off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		if (n == 0)
			break;
		guid_update(&c, buf, (size_t)n);
		off += (uint64_t)n;
	}
	guid_final(&c, out);
	if (size != NULL)
		*size = off;
	r = 0;
out:
	saved = errno;
	free(buf);
	errno = saved;
	return r;
}
