/*
 * util.c — small shared helpers: error texts and exit statuses, message
 * lists, GUID formatting.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "msync.h"

/*
 * Text for an MSYNC_ERR_* code.  For MSYNC_ERR_IO the caller usually
 * prints strerror(errno) instead, since errno says more.
 */
const char *
msync_strerror(int r)
{
	switch (r) {
	case MSYNC_OK:			return "success";
	case MSYNC_ERR_INTERNAL:	return "internal error";
	case MSYNC_ERR_NOMEM:		return "out of memory";
	case MSYNC_ERR_INCOMPLETE:	return "incomplete data";
	case MSYNC_ERR_PROTO:		return "protocol error";
	case MSYNC_ERR_TOOBIG:		return "length or count over its limit";
	case MSYNC_ERR_BADNAME:		return "invalid name";
	case MSYNC_ERR_IO:		return "input/output error";
	case MSYNC_ERR_PEER_EOF:	return "connection closed by peer";
	case MSYNC_ERR_LOCKED:		return "store is locked by another run";
	case MSYNC_ERR_STATE_CORRUPT:	return "corrupt state or index file";
	case MSYNC_ERR_STORE_CHANGED:	return "store changed during the run";
	case MSYNC_ERR_NOTFOUND:	return "no such mailbox or message";
	case MSYNC_ERR_EXISTS:		return "mailbox already exists";
	case MSYNC_ERR_BADDATA:		return "content does not match its GUID";
	case MSYNC_ERR_READONLY:	return "store is read-only";
	case MSYNC_ERR_USAGE:		return "usage error";
	case MSYNC_ERR_UNREACHABLE:	return "peer unreachable";
	case MSYNC_ERR_VERSION:		return "no common protocol version";
	case MSYNC_ERR_GUARD:		return "refusing mass deletion";
	case MSYNC_ERR_TIMEOUT:		return "the peer went quiet";
	case MSYNC_ERR_AUTH:		return "login refused";
	case MSYNC_ERR_THROTTLED:	return "server busy: try again later";
	case MSYNC_ERR_RENUMBERED:
		return "mailbox renumbered (new UIDVALIDITY) during the run";
	default:			return "unknown error";
	}
}

/*
 * Maps an MSYNC_ERR_* code to the exit status DESIGN.md gives it.
 */
int
msync_exit_status(int r)
{
	switch (r) {
	case MSYNC_OK:
		return EXIT_INSYNC;
	case MSYNC_ERR_STORE_CHANGED:
	case MSYNC_ERR_RENUMBERED:
		return EXIT_CHANGED;
	case MSYNC_ERR_USAGE:
		return EXIT_USAGE;
	case MSYNC_ERR_BADDATA:
	case MSYNC_ERR_BADNAME:
		return EXIT_DATAERR;
	case MSYNC_ERR_UNREACHABLE:
		return EXIT_UNREACH;
	case MSYNC_ERR_LOCKED:
	case MSYNC_ERR_PEER_EOF:
	case MSYNC_ERR_TIMEOUT:
	case MSYNC_ERR_THROTTLED:
		return EXIT_TEMPFAIL;
	case MSYNC_ERR_AUTH:
		return EXIT_NOPERM;
	case MSYNC_ERR_PROTO:
	case MSYNC_ERR_TOOBIG:
	case MSYNC_ERR_VERSION:
	case MSYNC_ERR_INCOMPLETE:
		return EXIT_PROTOCOL;
	default:
		return EXIT_ERROR;
	}
}

/*
 * Makes room for element n of the array *vecp (a pointer to the array
 * pointer) of *cap elements of elem bytes, doubling it as needed.
 * Returns 0 on success, MSYNC_ERR_NOMEM on failure (the array unchanged).
 */
int
msync_grow(void *vecp, size_t *cap, size_t n, size_t elem)
{
	void	**vec = vecp, *nv;
	size_t	 ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap <= n)
		ncap = n + 1;
	if ((nv = reallocarray(*vec, ncap, elem)) == NULL)
		return MSYNC_ERR_NOMEM;
	*vec = nv;
	*cap = ncap;
	return 0;
}

/*
 * Appends a copy of *m (its kw string duplicated) to l.
 * Returns 0 on success, MSYNC_ERR_NOMEM on failure.
 */
int
msglist_add(struct msglist *l, const struct msg *m)
{
	/* The call only when full: a listing adds every message. */
	if (l->n == l->cap &&
	    msync_grow(&l->v, &l->cap, l->n, sizeof(*l->v)) != 0)
		return MSYNC_ERR_NOMEM;
	l->v[l->n] = *m;
	l->v[l->n].kw = NULL;
	if (m->kw != NULL && (l->v[l->n].kw = strdup(m->kw)) == NULL)
		return MSYNC_ERR_NOMEM;
	l->n++;
	return 0;
}

/* Frees the messages of l and empties it.  Accepts NULL. */
void
msglist_free(struct msglist *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].kw);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/*
 * qsort, after a linear check that spares it when v is in order already:
 * lists read from an index or the sync state usually are, and a 100,000
 * element merge sort costs more than the rest of a no-change plan.
 * A list that is in order but for a short tail (a plan's next base: the
 * base's entries in order, then the few new messages of a 1% run) has
 * only the tail sorted and merged in, from the back, with the tail in a
 * temporary buffer: O(n) instead of O(n log n).  Equal elements keep
 * their order (the prefix's first), as in a merge sort of the whole.
 */
void
msync_sort(void *v, size_t n, size_t size,
    int (*cmp)(const void *, const void *))
{
	char		*p = v, *t;
	size_t		 i, k;

	for (i = 1; i < n; i++)
		if (cmp(p + (i - 1) * size, p + i * size) > 0)
			break;
	if (i >= n)
		return;
	/* A tail of more than a quarter: the plain sort is as good. */
	if (n - i > n / 4 || (t = malloc((n - i) * size)) == NULL) {
		qsort(v, n, size, cmp);
		return;
	}
	k = n - i;
	qsort(p + i * size, k, size, cmp);
	memcpy(t, p + i * size, k * size);
	/* Merge from the back: w is where the next largest goes. */
	while (k > 0) {
		size_t	 w = i + k - 1;

		if (i > 0 && cmp(p + (i - 1) * size, t + (k - 1) * size) > 0) {
			memcpy(p + w * size, p + (i - 1) * size, size);
			i--;
		} else {
			memcpy(p + w * size, t + (k - 1) * size, size);
			k--;
		}
	}
	free(t);
}

/*
 * Gives the heap's free pages back to the kernel.  A run's phases each
 * hold a whole-store structure (the listing's indexes, the plan) and
 * free it before the next one grows: glibc returns only the top of the
 * heap, so the holes the last phase left stay resident under the next
 * phase's peak (at 200,000 messages, 40 bytes a message of the client's
 * peak RSS: docs/PERFORMANCE.md).  Called between phases, where it costs
 * one walk of the free lists; a no-op where the C library has no
 * malloc_trim.
 */
void
msync_release_free(void)
{
#ifdef __GLIBC__
	(void)malloc_trim(0);
#endif
}

/* Milliseconds on the monotonic clock, for deadlines and rates. */
long long
msync_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* qsort/bsearch order of uint32_t values. */
int
msync_u32_cmp(const void *pa, const void *pb)
{
	uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;

	return a < b ? -1 : a > b;
}

int
msync_msg_uid_cmp(const void *pa, const void *pb)
{
	const struct msg *a = pa, *b = pb;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

int
guid_is_zero(const struct guid *g)
{
	for (size_t i = 0; i < sizeof(g->b); i++)
		if (g->b[i] != 0)
			return 0;
	return 1;
}

/* Lowercase hex, NUL-terminated. */
void
guid_hex(const struct guid *g, char out[33])
{
	/* Two digits per byte: every index save writes one per message. */
	static const char pair[513] =
	    "0001020304050607"
	    "08090a0b0c0d0e0f"
	    "1011121314151617"
	    "18191a1b1c1d1e1f"
	    "2021222324252627"
	    "28292a2b2c2d2e2f"
	    "3031323334353637"
	    "38393a3b3c3d3e3f"
	    "4041424344454647"
	    "48494a4b4c4d4e4f"
	    "5051525354555657"
	    "58595a5b5c5d5e5f"
	    "6061626364656667"
	    "68696a6b6c6d6e6f"
	    "7071727374757677"
	    "78797a7b7c7d7e7f"
	    "8081828384858687"
	    "88898a8b8c8d8e8f"
	    "9091929394959697"
	    "98999a9b9c9d9e9f"
	    "a0a1a2a3a4a5a6a7"
	    "a8a9aaabacadaeaf"
	    "b0b1b2b3b4b5b6b7"
	    "b8b9babbbcbdbebf"
	    "c0c1c2c3c4c5c6c7"
	    "c8c9cacbcccdcecf"
	    "d0d1d2d3d4d5d6d7"
	    "d8d9dadbdcdddedf"
	    "e0e1e2e3e4e5e6e7"
	    "e8e9eaebecedeeef"
	    "f0f1f2f3f4f5f6f7"
	    "f8f9fafbfcfdfeff";

	for (size_t i = 0; i < sizeof(g->b); i++)
		memcpy(out + 2 * i, pair + 2 * g->b[i], 2);
	out[32] = '\0';
}

/*
 * Each hex digit's value plus one (0: not a digit): the state and the
 * IMAP cache turn a GUID per message back from hex on every run.
 */
static const uint8_t hexval1[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
	['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/*
 * Parses exactly 32 hex digits.
 * Returns 0 on success, MSYNC_ERR_PROTO on anything else.
 */
int
guid_from_hex(const char *s, struct guid *out)
{
	for (size_t i = 0; i < sizeof(out->b); i++) {
		unsigned hi = hexval1[(unsigned char)s[2 * i]], lo;

		/* A NUL is not a digit: nothing past the end is read. */
		if (hi == 0 || (lo = hexval1[(unsigned char)s[2 * i + 1]]) == 0)
			return MSYNC_ERR_PROTO;
		out->b[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
	}
	if (s[32] != '\0')
		return MSYNC_ERR_PROTO;
	return 0;
}

/* Fills g from the kernel's random source.  Returns 0 or MSYNC_ERR_IO. */
int
guid_random(struct guid *g)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < sizeof(g->b)) {
		n = getrandom(g->b + off, sizeof(g->b) - off, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return MSYNC_ERR_IO;
		}
		off += (size_t)n;
	}
	return 0;
}

void
msync_why(char **why, const char *fmt, ...)
{
	va_list	 ap;
	char	*s = NULL;

	if (why == NULL || *why != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*why = s;
}

/*
 * mkdir -p: creates dir and its missing parents, mode 0700.  A component
 * that exists but is not a directory is an error (ENOTDIR).
 * Returns 0, MSYNC_ERR_NOMEM or MSYNC_ERR_IO (errno set).
 */
int
msync_mkdirs(const char *dir)
{
	struct stat	 sb;
	char		*p, *d;
	int		 rc = 0;

	if ((d = strdup(dir)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (p = d + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (p[-1] != '/') {
			char c = *p;

			*p = '\0';
			if (mkdir(d, 0700) != 0 && (errno != EEXIST ||
			    stat(d, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
				if (errno == EEXIST)
					errno = ENOTDIR;
				rc = MSYNC_ERR_IO;
			}
			*p = c;
		}
		if (rc != 0 || *p == '\0')
			break;
	}
	free(d);
	return rc;
}
