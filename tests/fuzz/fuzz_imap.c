/*
 * fuzz_imap.c — libFuzzer target for the IMAP response parser
 * (src/imap/parse.c): the input is a server's byte stream.
 *
 * It is framed as conn.c frames it: imap_frame() finds each response;
 * at a body literal the literal's bytes are taken out (as conn.c sends
 * them to a file) and NIL spliced in; every complete response goes to
 * imap_parse() and its values are walked with the helpers.  The input is
 * offered in two ways: all at once, and growing one byte at a time up to
 * 4 KiB (the incremental path).
 *
 * Checks beyond the sanitizers: a frame never ends past the buffer; a
 * parsed tree's indices stay inside it and lists end; a VANISHED set's
 * ranges are ordered and non-zero.  Every string also goes through
 * fprint_of (src/fprint.c), which reads HEADER.FIELDS sections.
 *
 *   make -C tests/fuzz fuzz_imap && tests/fuzz/run.sh 60 imap
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msync.h"
#include "fprint.h"
#include "imap/parse.h"

/* Walks the tree: every index in range, every list finite. */
static void
walk(const struct imap_resp *r)
{
	size_t		 i, k, steps, nset;
	uint64_t	 n;
	struct imap_range *set = NULL;
	int		 earlier;

	for (i = 0; i < r->nv; i++) {
		if (r->v[i].next >= r->nv || r->v[i].kid >= r->nv)
			abort();
		/* A header section, as the fingerprint reads it. */
		if (r->v[i].type == IV_STRING) {
			struct guid	 g;

			(void)fprint_of(r->v[i].s, r->v[i].len, 1234, &g);
		}
		if (r->v[i].type != IV_LIST)
			continue;
		steps = 0;
		for (k = r->v[i].kid; k != 0; k = r->v[k].next)
			if (++steps > r->nv)
				abort();
		(void)imap_kid(r, i, 3);
		(void)imap_num(r, r->v[i].kid, UINT32_MAX, &n);
		(void)imap_is(r, r->v[i].kid, "UID");
	}
	(void)imap_code_is(r, "APPENDUID");
	/* The sequence-set reader on VANISHED's set (RFC 7162). */
	if (imap_vanished(r, &earlier, &set, &nset) == 0) {
		if (nset == 0 || nset > IMAP_SET_MAX)
			abort();
		for (i = 0; i < nset; i++)
			if (set[i].lo == 0 || set[i].lo > set[i].hi)
				abort();
		(void)imap_set_count(set, nset);
	}
	free(set);
}

/* Feeds buf[0..len) (a private copy) through framer and parser. */
static void
run(char *buf, size_t len, int incremental)
{
	struct imap_frame	 f;
	struct imap_resp	 r;
	size_t			 have, skip;
	int			 rc;

	memset(&f, 0, sizeof(f));
	have = incremental ? 0 : len;
	while (have <= len) {
		rc = imap_frame(buf, have, &f);
		if (rc == MSYNC_ERR_INCOMPLETE) {
			if (have == len)
				return;
			have++;
			continue;
		}
		if (rc != 0)
			return;
		if (f.stream) {
			if (f.lit_hdr_end > have)
				abort();
			/* Take out the body bytes that are there. */
			skip = have - f.lit_hdr_end;
			if (skip > f.lit_size)
				skip = (size_t)f.lit_size;
			memmove(buf + f.lit_hdr_end, buf + f.lit_hdr_end + skip,
			    len - f.lit_hdr_end - skip);
			len -= skip;
			have -= skip;
			if (skip < f.lit_size)
				return;	/* the body is cut short: EOF */
			imap_frame_splice(buf, &have, &f);
			len -= (f.lit_hdr_end - f.lit_start) - 3;
			continue;
		}
		if (!f.done || f.end == 0 || f.end > have)
			abort();
		if (imap_parse(buf, f.end, &r) == 0)
			walk(&r);
		imap_resp_free(&r);
		memmove(buf, buf + f.end, len - f.end);
		len -= f.end;
		have -= f.end;
		memset(&f, 0, sizeof(f));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*buf;

	if (size > 2 * IMAP_RESP_MAX)
		return 0;
	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	run(buf, size, 0);
	if (size <= 4096) {
		memcpy(buf, data, size);
		run(buf, size, 1);
	}
	free(buf);
	return 0;
}
