/*
 * fuzz_mbox.c — libFuzzer target for the mbox format (mboxfmt.h): the
 * input is an mbox file.  Every message is read twice, once whole (as a
 * scan does, hashing) and once by its own reader limited to its slice
 * (as store_msg_read does); both must give the same bytes.  Then each
 * message is written back as msync writes it and read again: the same
 * bytes must come back (the round trip msync promises).
 * Seeds: tests/fuzz/seeds/fuzz_mbox/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mboxfmt.h"
#include "msync.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct mem {
	const uint8_t	*p;
	size_t		 n;
};

static int
mem_pread(void *arg, void *buf, size_t n, uint64_t off, size_t *got)
{
	const struct mem	*m = arg;

	*got = 0;
	if (off >= m->n)
		return 0;
	if (n > m->n - off)
		n = m->n - (size_t)off;
	memcpy(buf, m->p + off, n);
	*got = n;
	return 0;
}

static void
sink(void *arg, const void *p, size_t n)
{
	mboxfmt_put(arg, p, n);
}

/* Reads the messages of src from start; whole[] gets each content. */
static size_t
read_fmt(struct mem *m, int format, uint64_t start, uint64_t limit,
    struct mboxfmt_out *whole, struct mboxfmt_msg *info, size_t max)
{
	struct mboxfmt_src	 src = { mem_pread, m };
	struct mboxfmt		*f;
	size_t			 n = 0;
	int			 r;

	if (mboxfmt_new(&src, format, start, limit, &f) != 0)
		return 0;
	while (n < max && mboxfmt_begin(f, &info[n]) == 0) {
		while ((r = mboxfmt_step(f, &info[n], sink, &whole[n])) == 0)
			;
		if (r < 0)
			abort();	/* memory sources do not fail */
		if (info[n].size != whole[n].len)
			abort();
		n++;
	}
	mboxfmt_free(f);
	return n;
}

static size_t
read_all(struct mem *m, uint64_t start, uint64_t limit,
    struct mboxfmt_out *whole, struct mboxfmt_msg *info, size_t max)
{
	return read_fmt(m, MBOXFMT_MBOXRD, start, limit, whole, info, max);
}

/* Where the body after the first empty line begins, or -1 (no such). */
static int64_t
body_len(const uint8_t *c, size_t len)
{
	for (size_t j = 0, bol = 1, crbol = 0; j < len; j++) {
		if (c[j] == '\n' && (bol || crbol))
			return (int64_t)(len - j - 1);
		crbol = bol && c[j] == '\r';
		bol = c[j] == '\n';
	}
	return -1;
}

/* 1 if a line of c starts with "From " (mbox.c's spool_has_from). */
static int
has_from(const uint8_t *c, size_t len)
{
	for (size_t j = 0; j + 5 <= len; j++)
		if ((j == 0 || c[j - 1] == '\n') &&
		    memcmp(c + j, "From ", 5) == 0)
			return 1;
	return 0;
}

/*
 * Written the mboxo way (;format=mboxo, as src/store/mbox.c decides the
 * Content-Length), the message c reads back as mboxo with the same
 * bytes and flags.
 */
static void
mboxo_round_trip(const uint8_t *c, size_t len, const struct mboxfmt_msg *in)
{
	struct mboxfmt_out	 w = { 0 }, one[1];
	struct mboxfmt_msg	 i2[1];
	struct mboxfmt_writer	 wr;
	struct mem		 wm;
	int64_t			 clen = -1;
	int			 headerless = 0;

	if ((c[len - 1] != '\n' || has_from(c, len)) &&
	    (clen = body_len(c, len)) < 0) {
		clen = (int64_t)len;
		headerless = 1;
	}
	mboxfmt_write_begin(&wr, &w, "a@b", 0, in->flags, in->kw, clen,
	    headerless);
	wr.mboxo = 1;
	mboxfmt_write(&wr, &w, c, len);
	mboxfmt_write_end(&wr, &w);
	if (!w.failed) {
		wm.p = w.p;
		wm.n = w.len;
		memset(one, 0, sizeof(one));
		if (read_fmt(&wm, MBOXFMT_MBOXO, 0, UINT64_MAX, one, i2, 1) !=
		    1 || one[0].len != len || memcmp(one[0].p, c, len) != 0 ||
		    i2[0].flags != in->flags || strcmp(i2[0].kw, in->kw) != 0)
			abort();
		free(one[0].p);
	}
	free(w.p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem		 m = { data, size };
	struct mboxfmt_out	 whole[16], one[1], w = { 0 };
	struct mboxfmt_msg	 info[16], i2[1];
	struct mboxfmt_writer	 wr;
	size_t			 n;
	int64_t			 clen;
	int			 headerless;

	if (size > 1 << 20)
		return 0;
	memset(whole, 0, sizeof(whole));
	n = read_all(&m, 0, UINT64_MAX, whole, info, 16);
	for (size_t i = 0; i < n; i++) {
		const uint8_t	*c = whole[i].p;
		size_t		 len = whole[i].len;
		struct mem	 wm;

		/* Its own slice gives the same bytes. */
		memset(one, 0, sizeof(one));
		if (read_all(&m, info[i].off, info[i].next, one, i2, 1) != 1 ||
		    one[0].len != len || (len > 0 &&
		    memcmp(one[0].p, c, len) != 0))
			abort();
		free(one[0].p);

		/*
		 * Written as msync writes it, it reads back the same: one
		 * without a final newline with a Content-Length of its body
		 * (after the first empty line), or of all of it if it has
		 * none (as src/store/mbox.c decides).
		 */
		if (len == 0)
			continue;
		mboxo_round_trip(c, len, &info[i]);
		clen = -1;
		headerless = 0;
		if (c[len - 1] != '\n') {
			for (size_t j = 0, bol = 1, crbol = 0; j < len; j++) {
				if (c[j] == '\n' && (bol || crbol)) {
					clen = (int64_t)(len - j - 1);
					break;
				}
				crbol = bol && c[j] == '\r';
				bol = c[j] == '\n';
			}
			if (clen < 0) {
				clen = (int64_t)len;
				headerless = 1;
			}
		}
		w.len = 0;
		mboxfmt_write_begin(&wr, &w, "a@b", 0, info[i].flags,
		    info[i].kw, clen, headerless);
		mboxfmt_write(&wr, &w, c, len);
		mboxfmt_write_end(&wr, &w);
		if (w.failed)
			break;
		wm.p = w.p;
		wm.n = w.len;
		memset(one, 0, sizeof(one));
		if (read_all(&wm, 0, UINT64_MAX, one, i2, 1) != 1 ||
		    one[0].len != len || memcmp(one[0].p, c, len) != 0 ||
		    i2[0].flags != info[i].flags ||
		    strcmp(i2[0].kw, info[i].kw) != 0)
			abort();
		free(one[0].p);
	}
	for (size_t i = 0; i < n; i++)
		free(whole[i].p);
	free(w.p);
	return 0;
}
