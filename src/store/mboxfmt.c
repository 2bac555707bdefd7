/*
 * src/store/mboxfmt.c — the mbox format (mboxfmt.h): a line reader over
 * a byte source, the message reader (a state machine fed one line piece
 * at a time, so a message of any size takes constant memory), and the
 * mboxrd writer.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mboxfmt.h"
#include "msync.h"

#define RBUF		65536	/* bytes read ahead */
#define SEG_MAX		4096	/* bytes of one line handed on at once */
#define HEAD_MAX	((size_t)sizeof(((struct mboxfmt_writer *)0)->hold))
				/* bytes of a line start that decide it */
#define KEPT		"X-Msync-Kept-"
/* msync's mark of a message written without a header block. */
#define HEADERLESS	"X-Msync-Headerless: yes\n\n"
/* The folder-data message of UW-IMAP and Dovecot. */
#define PSEUDO_SUBJECT	"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA"
#define KEPT_LEN	13

/*
 * The bookkeeping headers (mboxfmt.h), lower case, with their lengths:
 * every header line is looked up, and a strlen per name was a tenth of
 * a scan's instructions.
 */
#define META(s)		{ s, sizeof(s) - 1 }
static const struct {
	const char	*name;
	size_t		 len;
} meta_names[] = {
	META("status"), META("x-status"), META("x-keywords"), META("x-uid"),
	META("x-imap"), META("x-imapbase"), META("content-length"),
	META("x-msync-headerless")
};

/* Reader states. */
#define ST_FROM		0	/* at a "From " line */
#define ST_HEAD		1	/* in the header block */
#define ST_HEADEND	2	/* after an empty line that ends it */
#define ST_BODY		3	/* in the body, by "From " lines */
#define ST_CLBODY	4	/* in a body of trusted Content-Length */
#define ST_DONE		5

struct mboxfmt {
	const struct mboxfmt_src *src;
	int		 format;
	uint64_t	 limit;
	size_t		 len;		/* bytes in buf */
	size_t		 pos;		/* next byte in buf */
	uint64_t	 base;		/* offset of buf[0] */
	int		 eof;		/* the source has no more */
	int		 linestart;	/* the next piece starts a line */
	int		 state;
	int		 strip;		/* the header line is bookkeeping */
	int64_t		 clen;		/* Content-Length seen, or -1 */
	uint64_t	 left;		/* ST_CLBODY: bytes still to take */
	uint8_t		 pend[2];	/* an empty line held back */
	size_t		 npend;
	uint64_t	 pend_off;
	int		 first;		/* the first message of the input */
	int		 imapbase;	/* it carries X-IMAP */
	int		 headerless;	/* X-Msync-Headerless: no header block */
	char		 kwraw[MSYNC_KWSTR_MAX + 1];
	uint8_t		 buf[RBUF];	/* last: not cleared (mboxfmt_new) */
};

/* Refills buf so that at least want bytes follow pos (or the end). */
static int
fill(struct mboxfmt *f, size_t want)
{
	size_t	 got;
	uint64_t room;
	int	 r;

	if (f->len - f->pos >= want || f->eof)
		return 0;
	memmove(f->buf, f->buf + f->pos, f->len - f->pos);
	f->base += f->pos;
	f->len -= f->pos;
	f->pos = 0;
	while (f->len < sizeof(f->buf) && !f->eof) {
		room = sizeof(f->buf) - f->len;
		if (f->limit != UINT64_MAX) {
			if (f->base + f->len >= f->limit) {
				f->eof = 1;
				break;
			}
			if (room > f->limit - f->base - f->len)
				room = f->limit - f->base - f->len;
		}
		if ((r = f->src->pread(f->src->arg, f->buf + f->len,
		    (size_t)room, f->base + f->len, &got)) != 0)
			return r;
		if (got == 0)
			f->eof = 1;
		f->len += got;
		if (f->len - f->pos >= want)
			break;
	}
	return 0;
}

/*
 * The next piece of input: up to the end of the line, at most SEG_MAX
 * bytes (and never past cap bytes).  *start says it begins a line.
 * Returns 0, 1 at the end, or MSYNC_ERR_IO.
 */
static int
piece(struct mboxfmt *f, size_t cap, const uint8_t **p, size_t *n,
    int *start)
{
	const uint8_t	*nl;
	size_t		 avail, take;
	int		 r;

	if ((r = fill(f, SEG_MAX)) != 0)
		return r;
	avail = f->len - f->pos;
	if (avail == 0)
		return 1;
	take = avail < SEG_MAX ? avail : SEG_MAX;
	if (take > cap)
		take = cap;
	if ((nl = memchr(f->buf + f->pos, '\n', take)) != NULL)
		take = (size_t)(nl - (f->buf + f->pos)) + 1;
	*p = f->buf + f->pos;
	*n = take;
	*start = f->linestart;
	f->linestart = (*p)[take - 1] == '\n';
	f->pos += take;
	return 0;
}

/* Offset of the next unread byte. */
static uint64_t
here(const struct mboxfmt *f)
{
	return f->base + f->pos;
}

/* 1 if p (n bytes) is an empty line. */
static int
blank(const uint8_t *p, size_t n)
{
	return (n == 1 && p[0] == '\n') || (n == 2 && p[0] == '\r' &&
	    p[1] == '\n');
}

/* 1 if p (n bytes) starts with "From ". */
static int
is_from(const uint8_t *p, size_t n)
{
	return n >= 5 && memcmp(p, "From ", 5) == 0;
}

/*
 * 1 if the line start p (n bytes, the first HEAD_MAX count) is ">*From ";
 * *gt gets the number of '>'.
 */
static int
quoted_from(const uint8_t *p, size_t n, size_t *gt)
{
	size_t	i = 0;

	if (n > HEAD_MAX)
		n = HEAD_MAX;
	while (i < n && p[i] == '>')
		i++;
	*gt = i;
	return is_from(p + i, n - i);
}

/*
 * What a header line is: 0 an ordinary one, 1 a bookkeeping header,
 * 2 one with the X-Msync-Kept- prefix over a bookkeeping name.  Only the
 * first HEAD_MAX bytes count, and the ':' must be among them.
 */
static int
meta_kind(const uint8_t *p, size_t n)
{
	const uint8_t	*colon;
	size_t		 off = 0, len;
	int		 kept = 0;

	if (n > HEAD_MAX)
		n = HEAD_MAX;
	if ((colon = memchr(p, ':', n)) == NULL)
		return 0;
	len = (size_t)(colon - p);
	while (len - off > KEPT_LEN && (p[off] == 'X' || p[off] == 'x') &&
	    strncasecmp((const char *)p + off, KEPT, KEPT_LEN) == 0) {
		off += KEPT_LEN;
		kept = 1;
	}
	for (size_t i = 0; i < sizeof(meta_names) / sizeof(meta_names[0]);
	    i++)
		if (meta_names[i].len == len - off &&
		    strncasecmp((const char *)p + off, meta_names[i].name,
		    len - off) == 0)
			return kept ? 2 : 1;
	return 0;
}

int
mboxfmt_is_meta(const void *p, size_t len)
{
	return meta_kind(p, len) == 1;
}

/* The value of header line p (n bytes) after ':', trimmed, into out. */
static void
header_value(const uint8_t *p, size_t n, char *out, size_t cap)
{
	const uint8_t	*c = memchr(p, ':', n);
	size_t		 i, o = 0;

	out[0] = '\0';
	if (c == NULL)
		return;
	i = (size_t)(c - p) + 1;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	while (i < n && p[i] != '\r' && p[i] != '\n' && o + 1 < cap)
		out[o++] = (char)p[i++];
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
		o--;
	out[o] = '\0';
}

static int
kw_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 if s (len bytes) may be a keyword (as index_kw_valid). */
static int
kw_ok(const char *s, size_t len)
{
	if (len == 0 || len > MSYNC_KWNAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f ||
		    strchr("(){%*\"\\]", s[i]) != NULL)
			return 0;
	return 1;
}

/*
 * Turns raw keyword text (names separated by spaces or commas) into
 * m->kw: valid names, sorted, each once; $Forwarded becomes the Passed
 * flag.
 */
static void
kw_finish(const char *raw, struct mboxfmt_msg *m)
{
	char	 buf[MSYNC_KWSTR_MAX + 1], *v[MSYNC_KW_MAX], *s, *save;
	size_t	 n = 0, o = 0;

	m->kw[0] = '\0';
	snprintf(buf, sizeof(buf), "%s", raw);
	for (s = strtok_r(buf, " \t,", &save); s != NULL && n < MSYNC_KW_MAX;
	    s = strtok_r(NULL, " \t,", &save)) {
		if (!kw_ok(s, strlen(s)))
			continue;
		if (strcmp(s, "$Forwarded") == 0) {
			m->flags |= FLAG_PASSED;
			continue;
		}
		v[n++] = s;
	}
	msync_sort(v, n, sizeof(v[0]), kw_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		o += (size_t)snprintf(m->kw + o, sizeof(m->kw) - o, "%s%s",
		    o > 0 ? " " : "", v[i]);
		if (o >= sizeof(m->kw)) {	/* cannot happen: bounded */
			m->kw[0] = '\0';
			return;
		}
	}
}

/* Takes the flags and keywords from a bookkeeping header line. */
static void
meta_parse(struct mboxfmt *f, const uint8_t *p, size_t n,
    struct mboxfmt_msg *m)
{
	char	 v[MSYNC_KWSTR_MAX + 1];
	size_t	 nl = (size_t)((const uint8_t *)memchr(p, ':', n) - p);

	header_value(p, n, v, sizeof(v));
	if (nl == 6 && strncasecmp((const char *)p, "status", 6) == 0) {
		if (strchr(v, 'R') != NULL)
			m->flags |= FLAG_SEEN;
	} else if (nl == 8 && strncasecmp((const char *)p, "x-status", 8) ==
	    0) {
		if (strchr(v, 'A') != NULL)
			m->flags |= FLAG_REPLIED;
		if (strchr(v, 'F') != NULL)
			m->flags |= FLAG_FLAGGED;
		if (strchr(v, 'T') != NULL)
			m->flags |= FLAG_DRAFT;
		if (strchr(v, 'D') != NULL)
			m->flags |= FLAG_TRASHED;
	} else if (nl == 10 && strncasecmp((const char *)p, "x-keywords",
	    10) == 0)
		snprintf(f->kwraw, sizeof(f->kwraw), "%s", v);
	else if (nl == 6 && strncasecmp((const char *)p, "x-imap", 6) == 0)
		f->imapbase = 1;
	else if (nl == 18 && strncasecmp((const char *)p,
	    "x-msync-headerless", 18) == 0)
		f->headerless = 1;
	else if (nl == 14 && strncasecmp((const char *)p, "content-length",
	    14) == 0) {
		char		*end;
		unsigned long long cl;

		if (v[0] >= '0' && v[0] <= '9' && strlen(v) <= 12) {
			cl = strtoull(v, &end, 10);
			if (*end == '\0')
				f->clen = (int64_t)cl;
		}
	}
}

/* The month number of a three-letter name, or -1. */
static int
month_of(const char *s)
{
	static const char	 months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	if (s[0] == '\0' || s[1] == '\0' || s[2] == '\0' || s[3] != '\0')
		return -1;
	for (int i = 0; i < 12; i++)
		if (memcmp(s, months + 3 * i, 3) == 0)
			return i;
	return -1;
}

/*
 * Seconds since the epoch of a UTC date, y >= 1970, mon 0-11, d 1-31,
 * hh:mm:ss as read (ss may be 60): what timegm gives, overflowing days
 * and seconds carried over as it does, without its time zone machinery
 * (timegm and strtok_r were two thirds of reading a "From " line).
 */
static int64_t
utc_seconds(int y, int mon, int d, int hh, int mm, int ss)
{
	int64_t	 days;
	int	 m = mon + 1;

	/* Days from 1970-01-01 to y-m-01, counting years from March. */
	if (m <= 2)
		y--;
	days = (int64_t)365 * y + y / 4 - y / 100 + y / 400 +
	    (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 - 719468;
	days += d - 1;
	return ((days * 24 + hh) * 60 + mm) * 60 + ss;
}

/* 1 if c separates the words of a "From " line. */
static int
from_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * A decimal number at *s (an optional sign, then up to nine digits), as
 * sscanf's %d reads one: *s is moved past it.  0 if there is none.
 * (sscanf, three to six calls per message, was 6% of a conversion's
 * instructions.)
 */
static int
dec(const char **s, int *v)
{
	const char	*p = *s;
	int		 neg = 0, n = 0, k = 0;

	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	while (*p >= '0' && *p <= '9' && k < 9) {
		n = n * 10 + (*p++ - '0');
		k++;
	}
	if (k == 0 || (*p >= '0' && *p <= '9'))
		return 0;
	*v = neg ? -n : n;
	*s = p;
	return 1;
}

/* A token that is a whole decimal number ("%d%c" matching only %d). */
static int
dec_token(const char *s, int *v)
{
	return dec(&s, v) && *s == '\0';
}

/*
 * The date of a "From " line: "From SENDER Www Mmm dd hh:mm[:ss] [ZONE]
 * yyyy" (ctime, as every writer uses), read as UTC.  -1 if there is none.
 */
static int64_t
from_date(const uint8_t *p, size_t n)
{
	char	 line[256], *tok[16], *s;
	size_t	 nt = 0;

	if (n > sizeof(line) - 1)
		n = sizeof(line) - 1;
	memcpy(line, p, n);
	line[n] = '\0';
	/* The words, as strtok_r splits them: up to a NUL byte. */
	for (s = line; nt < 16; ) {
		while (from_space(*s))
			s++;
		if (*s == '\0')
			break;
		tok[nt++] = s;
		while (*s != '\0' && !from_space(*s))
			s++;
		if (*s != '\0')
			*s++ = '\0';
	}
	for (size_t i = 2; i + 2 < nt; i++) {
		int		 mon = month_of(tok[i]), d, hh, mm, ss = 0, y;
		const char	*t = tok[i + 2];

		if (mon < 0 || !dec_token(tok[i + 1], &d) || d < 1 || d > 31)
			continue;
		/* "hh:mm[:ss]", anything after it ignored. */
		if (!dec(&t, &hh) || *t++ != ':' || !dec(&t, &mm))
			continue;
		if (*t == ':') {
			t++;
			if (!dec(&t, &ss) && *t >= '0' && *t <= '9')
				continue;	/* too long a number */
		}
		if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 ||
		    ss > 60)
			continue;
		/* The year follows the time, maybe after a zone. */
		for (size_t j = i + 3; j < nt && j <= i + 4; j++) {
			if (!dec_token(tok[j], &y) || y < 1970 || y > 9999)
				continue;
			return utc_seconds(y, mon, d, hh, mm, ss);
		}
	}
	return -1;
}

int
mboxfmt_new(const struct mboxfmt_src *src, int format, uint64_t start,
    uint64_t limit, struct mboxfmt **out)
{
	struct mboxfmt	*f;

	*out = NULL;
	/*
	 * Everything but the read-ahead buffer is cleared: a reader is
	 * made per message read, and clearing 64 KB each time was a third
	 * of a conversion's instructions (callgrind, 20,000 messages).
	 */
	if ((f = malloc(sizeof(*f))) == NULL)
		return MSYNC_ERR_NOMEM;
	memset(f, 0, offsetof(struct mboxfmt, buf));
	f->src = src;
	f->format = format;
	f->base = start;
	f->limit = limit;
	f->linestart = 1;
	f->first = start == 0;
	f->state = ST_FROM;
	*out = f;
	return 0;
}

void
mboxfmt_free(struct mboxfmt *f)
{
	free(f);
}

int
mboxfmt_begin(struct mboxfmt *f, struct mboxfmt_msg *m)
{
	const uint8_t	*p;
	size_t		 n;
	int		 start, r;

	memset(m, 0, sizeof(*m));
	m->off = here(f);
	if ((r = piece(f, SIZE_MAX, &p, &n, &start)) != 0)
		return r;
	if (!start || !is_from(p, n))
		return MSYNC_ERR_BADDATA;
	m->date = from_date(p, n);
	/* The rest of an overlong "From " line is not content either. */
	while (!f->linestart)
		if ((r = piece(f, SIZE_MAX, &p, &n, &start)) != 0) {
			if (r < 0)
				return r;
			break;
		}
	f->state = ST_HEAD;
	f->strip = 0;
	f->clen = -1;
	f->npend = 0;
	f->imapbase = 0;
	f->headerless = 0;
	f->kwraw[0] = '\0';
	return 0;
}

/* Hands content to the sink, counting it. */
static void
emit(struct mboxfmt_msg *m, mboxfmt_sink sink, void *arg, const void *p,
    size_t n)
{
	if (n == 0)
		return;
	if (memchr(p, '\0', n) != NULL)
		m->nul = 1;
	m->size += n;
	if (sink != NULL)
		sink(arg, p, n);
}

/*
 * 1 if a body of clen bytes from offset body lands on the end of the
 * input or on a "From " line after at most two newlines.
 */
static int
cl_lands(struct mboxfmt *f, uint64_t body, int64_t clen)
{
	uint8_t		 b[8];
	uint64_t	 q = body + (uint64_t)clen;
	size_t		 got = 0, i = 0;

	if (f->limit != UINT64_MAX && q > f->limit)
		return 0;
	if (f->limit != UINT64_MAX && q == f->limit)
		return 1;
	if (f->src->pread(f->src->arg, b, sizeof(b), q, &got) != 0)
		return 0;
	if (got == 0) {
		/* The end, but is it really, or a short file?  Check q-1. */
		return q == 0 || (f->src->pread(f->src->arg, b, 1, q - 1,
		    &got) == 0 && got == 1);
	}
	while (i < 2 && i < got && b[i] == '\n')
		i++;
	return i == got || is_from(b + i, got - i);
}

/* Finishes the message: keywords, the pseudo-message test. */
static int
done(struct mboxfmt *f, struct mboxfmt_msg *m, uint64_t next)
{
	kw_finish(f->kwraw, m);
	m->pseudo = f->first && f->imapbase;
	m->next = next;
	f->first = 0;
	f->state = ST_FROM;
	return 1;
}

/* Ends an ST_CLBODY message: skips up to two newlines. */
static int
cl_end(struct mboxfmt *f, struct mboxfmt_msg *m)
{
	int	r;

	for (int i = 0; i < 2; i++) {
		if ((r = fill(f, 1)) != 0)
			return r;
		if (f->pos < f->len && f->buf[f->pos] == '\n') {
			f->pos++;
			f->linestart = 1;
		}
	}
	f->linestart = 1;
	return done(f, m, here(f));
}

/*
 * The length of the body line at s (e the end of what is read ahead) if
 * it needs nothing done to it, else 0: an empty line whose next line
 * starts with "From " or is not read yet (the separator, or content: the
 * line-at-a-time way decides), in mboxrd a line ">+From " (one '>' comes
 * off), and a line whose end is not read yet.
 */
static size_t
body_plain(const struct mboxfmt *f, const uint8_t *s, const uint8_t *e)
{
	const uint8_t	*nl;
	size_t		 gt, n;

	if (*s == '\n' || (*s == '\r' && e - s >= 2 && s[1] == '\n')) {
		/* An empty line is content if no "From " follows. */
		n = *s == '\n' ? 1 : 2;
		return e - s - n < 5 || memcmp(s + n, "From ", 5) == 0 ? 0 : n;
	}
	if ((nl = memchr(s, '\n', (size_t)(e - s))) == NULL)
		return 0;
	n = (size_t)(nl - s) + 1;
	if (*s == '>' && f->format == MBOXFMT_MBOXRD && quoted_from(s, n, &gt) &&
	    gt > 0)
		return 0;
	return n;
}

/*
 * The same for a header line: 0 for the empty line that ends the block,
 * a bookkeeping header or one with the X-Msync-Kept- prefix, the
 * continuation of a bookkeeping header (dropped), in mboxrd a line
 * ">+From ", the folder-data subject in a first message, and a line
 * whose end is not read yet.  A header line that passes ends the
 * bookkeeping header before it (strip).
 */
static size_t
head_plain(struct mboxfmt *f, const uint8_t *s, const uint8_t *e)
{
	const uint8_t	*nl;
	size_t		 gt, n;

	if ((nl = memchr(s, '\n', (size_t)(e - s))) == NULL)
		return 0;
	n = (size_t)(nl - s) + 1;
	if (blank(s, n))
		return 0;
	if (*s == ' ' || *s == '\t')
		return f->strip ? 0 : n;
	if (meta_kind(s, n) != 0 ||
	    (*s == '>' && f->format == MBOXFMT_MBOXRD &&
	    quoted_from(s, n, &gt) && gt > 0) ||
	    (f->first && n >= sizeof(PSEUDO_SUBJECT) - 1 &&
	    memcmp(s, PSEUDO_SUBJECT, sizeof(PSEUDO_SUBJECT) - 1) == 0))
		return 0;
	f->strip = 0;
	return n;
}

/*
 * The fast way through a header block or a body (ST_HEAD or ST_BODY, at
 * a line start, no empty line held): the whole lines read ahead that
 * need nothing done to them (head_plain, body_plain) are handed on in
 * one piece; the line-at-a-time way takes the others.  A line at a time
 * was one piece(), emit() and sink call per line: half of a
 * conversion's instructions on the mbox side.  Returns 1 if it handed
 * on anything, 0 if the line-at-a-time way must take the next line, or
 * MSYNC_ERR_IO.
 */
static int
plain_run(struct mboxfmt *f, struct mboxfmt_msg *m, mboxfmt_sink sink,
    void *arg)
{
	const uint8_t	*b, *e, *s;
	size_t		 n;
	int		 r;

	if ((r = fill(f, SEG_MAX)) != 0)
		return r;
	b = f->buf + f->pos;
	e = f->buf + f->len;
	for (s = b; s < e; s += n)
		if ((n = f->state == ST_HEAD ? head_plain(f, s, e) :
		    body_plain(f, s, e)) == 0)
			break;
	if (s == b)
		return 0;
	emit(m, sink, arg, b, (size_t)(s - b));
	f->pos += (size_t)(s - b);
	f->linestart = 1;
	return 1;
}

int
mboxfmt_step(struct mboxfmt *f, struct mboxfmt_msg *m, mboxfmt_sink sink,
    void *arg)
{
	const uint8_t	*p;
	size_t		 n, gt;
	uint64_t	 off;
	int		 start, r, k;

	if (f->state == ST_CLBODY) {
		if (f->left == 0)
			return cl_end(f, m);
		/* Taken as it is: what is read ahead, not a line at a time. */
		if ((r = fill(f, SEG_MAX)) != 0)
			return r;
		n = f->len - f->pos;
		if (n == 0)	/* cannot happen: cl_lands checked */
			return done(f, m, here(f));
		if (n > f->left)
			n = (size_t)f->left;
		p = f->buf + f->pos;
		f->pos += n;
		f->linestart = p[n - 1] == '\n';
		f->left -= n;
		emit(m, sink, arg, p, n);
		return 0;
	}
	if ((f->state == ST_HEAD || (f->state == ST_BODY && f->npend == 0)) &&
	    f->linestart && (r = plain_run(f, m, sink, arg)) != 0)
		return r < 0 ? r : 0;
	if (f->state != ST_HEAD && f->state != ST_HEADEND &&
	    f->state != ST_BODY)
		return MSYNC_ERR_INTERNAL;
	off = here(f);
	if ((r = piece(f, SIZE_MAX, &p, &n, &start)) < 0)
		return r;
	if (r == 1)	/* the end: a held empty line was the separator */
		return done(f, m, off);

	/* An empty line held back: it was the separator, or content. */
	if (f->npend > 0 && start) {
		if (is_from(p, n)) {
			f->pos -= n;
			f->linestart = 1;
			return done(f, m, off);
		}
		emit(m, sink, arg, f->pend, f->npend);
		f->npend = 0;
		if (f->state == ST_HEADEND)
			f->state = ST_BODY;
	}

	if (f->state == ST_HEAD) {
		if (!start) {
			if (!f->strip)
				emit(m, sink, arg, p, n);
			return 0;
		}
		if (blank(p, n)) {
			/* The header block ends; a trusted body follows? */
			if (f->clen >= 0 && cl_lands(f, here(f), f->clen)) {
				/* msync's own empty header block is not. */
				if (!f->headerless || m->size > 0)
					emit(m, sink, arg, p, n);
				m->cl = 1;
				f->left = (uint64_t)f->clen;
				f->state = ST_CLBODY;
				f->linestart = 1;
				return 0;
			}
			memcpy(f->pend, p, n);
			f->npend = n;
			f->pend_off = off;
			f->state = ST_HEADEND;
			return 0;
		}
		if ((p[0] == ' ' || p[0] == '\t')) {
			if (!f->strip)
				emit(m, sink, arg, p, n);
			return 0;
		}
		f->strip = 0;
		k = meta_kind(p, n);
		if (k == 1) {
			meta_parse(f, p, n, m);
			f->strip = 1;
			return 0;
		}
		if (k == 2) {
			emit(m, sink, arg, p + KEPT_LEN, n - KEPT_LEN);
			return 0;
		}
		if (f->format == MBOXFMT_MBOXRD && quoted_from(p, n, &gt) &&
		    gt > 0) {
			emit(m, sink, arg, p + 1, n - 1);
			return 0;
		}
		if (f->first && n >= sizeof(PSEUDO_SUBJECT) - 1 &&
		    memcmp(p, PSEUDO_SUBJECT, sizeof(PSEUDO_SUBJECT) - 1) == 0)
			f->imapbase = 1;
		emit(m, sink, arg, p, n);
		return 0;
	}

	/* ST_BODY, or ST_HEADEND with its empty line already sent. */
	f->state = ST_BODY;
	if (start && blank(p, n)) {
		memcpy(f->pend, p, n);
		f->npend = n;
		f->pend_off = off;
		return 0;
	}
	if (start && f->format == MBOXFMT_MBOXRD && quoted_from(p, n, &gt) &&
	    gt > 0) {
		emit(m, sink, arg, p + 1, n - 1);
		return 0;
	}
	emit(m, sink, arg, p, n);
	return 0;
}

/* Writing. */

void
mboxfmt_put(struct mboxfmt_out *o, const void *p, size_t n)
{
	uint8_t	*np;
	size_t	 cap;

	if (o->failed || n == 0)
		return;
	if (o->len + n > o->cap) {
		cap = o->cap == 0 ? 4096 : o->cap;
		while (cap < o->len + n)
			cap *= 2;
		if ((np = realloc(o->p, cap)) == NULL) {
			o->failed = 1;
			return;
		}
		o->p = np;
		o->cap = cap;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

void
mboxfmt_from(struct mboxfmt_out *o, const char *sender, int64_t date)
{
	char		 b[320], t[64];
	struct tm	 tm;
	time_t		 tt = (time_t)date;
	int		 n;

	if (date < 0 || gmtime_r(&tt, &tm) == NULL) {
		tt = 0;
		gmtime_r(&tt, &tm);
	}
	strftime(t, sizeof(t), "%a %b %e %H:%M:%S %Y", &tm);
	n = snprintf(b, sizeof(b), "From %s %s\n", sender != NULL &&
	    *sender != '\0' ? sender : "MAILER-DAEMON", t);
	mboxfmt_put(o, b, (size_t)n);
}

void
mboxfmt_meta(struct mboxfmt_out *o, uint8_t flags, const char *kw,
    int64_t clen)
{
	char		 b[MSYNC_KWSTR_MAX + 320];
	int		 n;

	n = snprintf(b, sizeof(b), "Status: %sO\n",
	    (flags & FLAG_SEEN) ? "R" : "");
	mboxfmt_put(o, b, (size_t)n);
	if (flags & (FLAG_REPLIED | FLAG_FLAGGED | FLAG_DRAFT |
	    FLAG_TRASHED)) {
		n = snprintf(b, sizeof(b), "X-Status: %s%s%s%s\n",
		    (flags & FLAG_REPLIED) ? "A" : "",
		    (flags & FLAG_FLAGGED) ? "F" : "",
		    (flags & FLAG_DRAFT) ? "T" : "",
		    (flags & FLAG_TRASHED) ? "D" : "");
		mboxfmt_put(o, b, (size_t)n);
	}
	if ((kw != NULL && *kw != '\0') || (flags & FLAG_PASSED)) {
		n = snprintf(b, sizeof(b), "X-Keywords: %s%s%s\n",
		    (flags & FLAG_PASSED) ? "$Forwarded" : "",
		    (flags & FLAG_PASSED) && kw != NULL && *kw != '\0' ?
		    " " : "", kw != NULL ? kw : "");
		mboxfmt_put(o, b, (size_t)n);
	}
	if (clen >= 0) {
		n = snprintf(b, sizeof(b), "Content-Length: %lld\n",
		    (long long)clen);
		mboxfmt_put(o, b, (size_t)n);
	}
}

void
mboxfmt_write_begin(struct mboxfmt_writer *w, struct mboxfmt_out *o,
    const char *sender, int64_t date, uint8_t flags, const char *kw,
    int64_t clen, int headerless)
{
	struct mboxfmt_out	 m = { 0 };

	memset(w, 0, sizeof(*w));
	w->quote = clen < 0;
	mboxfmt_from(o, sender, date);
	mboxfmt_meta(&m, flags, kw, clen);
	if (headerless && clen >= 0) {
		/* The header block is ours alone; the content is its body. */
		mboxfmt_put(o, m.p, m.len);
		mboxfmt_put(o, HEADERLESS, sizeof(HEADERLESS) - 1);
		w->body = 1;
		free(m.p);
		return;
	}
	if (m.failed || m.len > sizeof(w->meta))
		o->failed = 1;
	else {
		memcpy(w->meta, m.p, m.len);
		w->nmeta = m.len;
	}
	free(m.p);
}

/* Decides a held line start and sends it on. */
static void
w_flush(struct mboxfmt_writer *w, struct mboxfmt_out *o)
{
	size_t	gt;

	if (w->nhold == 0)
		return;
	if (!w->body && blank(w->hold, w->nhold)) {
		/* The bookkeeping headers end the header block. */
		mboxfmt_put(o, w->meta, w->nmeta);
		w->body = 1;
	}
	else if (!w->body && meta_kind(w->hold, w->nhold) != 0)
		mboxfmt_put(o, KEPT, KEPT_LEN);
	else if (w->mboxo ? w->quote && is_from(w->hold, w->nhold) :
	    (w->quote || !w->body) && quoted_from(w->hold, w->nhold, &gt))
		mboxfmt_put(o, ">", 1);
	mboxfmt_put(o, w->hold, w->nhold);
	w->nhold = 0;
}

void
mboxfmt_write(struct mboxfmt_writer *w, struct mboxfmt_out *o,
    const void *buf, size_t len)
{
	const uint8_t	*p = buf, *nl;
	size_t		 take;

	while (len > 0) {
		if (w->mid) {
			/* Inside a line: everything up to its end passes. */
			nl = memchr(p, '\n', len);
			take = nl != NULL ? (size_t)(nl - p) + 1 : len;
			mboxfmt_put(o, p, take);
			w->mid = nl == NULL;
			w->last_nl = nl != NULL;
			p += take;
			len -= take;
			continue;
		}
		/* A line start: held until its first HEAD_MAX bytes. */
		nl = memchr(p, '\n', len);
		take = nl != NULL ? (size_t)(nl - p) + 1 : len;
		if (take > HEAD_MAX - w->nhold)
			take = HEAD_MAX - w->nhold;
		memcpy(w->hold + w->nhold, p, take);
		w->nhold += take;
		p += take;
		len -= take;
		w->last_nl = w->hold[w->nhold - 1] == '\n';
		if (w->last_nl || w->nhold == HEAD_MAX) {
			w->mid = !w->last_nl;
			w_flush(w, o);
		}
	}
}

void
mboxfmt_write_end(struct mboxfmt_writer *w, struct mboxfmt_out *o)
{
	w_flush(w, o);
	if (!w->last_nl)
		mboxfmt_put(o, "\n", 1);
	if (!w->body)	/* no empty line: the headers end here */
		mboxfmt_put(o, w->meta, w->nmeta);
	mboxfmt_put(o, "\n", 1);
}

/* Copies an address out of a header value: <addr>, else the first word. */
static void
addr_of(const char *v, char out[256])
{
	const char	*lt = strchr(v, '<'), *gt;
	size_t		 n, o = 0;

	out[0] = '\0';
	if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
		v = lt + 1;
		n = (size_t)(gt - v);
	} else {
		while (*v == ' ')
			v++;
		n = strcspn(v, " \t");
	}
	for (size_t i = 0; i < n && o < 255; i++)
		if ((unsigned char)v[i] > 0x20 && (unsigned char)v[i] < 0x7f)
			out[o++] = v[i];
	out[o] = '\0';
}

void
mboxfmt_sender(const void *head, size_t len, char out[256])
{
	const char	*p = head, *end = p + len, *nl;
	char		 v[512], from[256] = "";

	out[0] = '\0';
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (nl == p || (nl == p + 1 && *p == '\r'))
			break;	/* the header block ends */
		if ((size_t)(nl - p) > 12 && strncasecmp(p, "Return-Path:",
		    12) == 0) {
			header_value((const uint8_t *)p, (size_t)(nl - p), v,
			    sizeof(v));
			addr_of(v, out);
			if (out[0] != '\0')
				return;
		} else if ((size_t)(nl - p) > 5 && strncasecmp(p, "From:",
		    5) == 0 && from[0] == '\0') {
			header_value((const uint8_t *)p, (size_t)(nl - p), v,
			    sizeof(v));
			addr_of(v, from);
		}
		p = nl + 1;
	}
	snprintf(out, 256, "%s", from);
}

/* 1 if header line p (n bytes) is Status, X-Status or X-Keywords. */
static int
flag_header(const uint8_t *p, size_t n)
{
	const uint8_t	*c;
	size_t		 len;

	if (n > HEAD_MAX)
		n = HEAD_MAX;
	if ((c = memchr(p, ':', n)) == NULL)
		return 0;
	len = (size_t)(c - p);
	return (len == 6 && strncasecmp((const char *)p, "status", 6) == 0) ||
	    (len == 8 && strncasecmp((const char *)p, "x-status", 8) == 0) ||
	    (len == 10 && strncasecmp((const char *)p, "x-keywords", 10) == 0);
}

int
mboxfmt_reflag(const struct mboxfmt_src *src, uint64_t off, uint64_t raw,
    uint8_t flags, const char *kw, mboxfmt_sink sink, void *arg)
{
	struct mboxfmt		*f;
	struct mboxfmt_out	 o = { 0 };
	const uint8_t		*p;
	size_t			 n;
	int			 start, r, head = 1, drop = 0, first = 1;
	int			 last_nl = 1;

	mboxfmt_meta(&o, flags, kw, -1);
	if (o.failed)
		return MSYNC_ERR_NOMEM;
	if ((r = mboxfmt_new(src, MBOXFMT_MBOXO, off, off + raw, &f)) != 0) {
		free(o.p);
		return r;
	}
	while ((r = piece(f, SIZE_MAX, &p, &n, &start)) == 0) {
		if (first) {
			/* The "From " line. */
			sink(arg, p, n);
			first = !f->linestart;
			continue;
		}
		if (head && start) {
			if (blank(p, n)) {
				/* The new flags end the header block. */
				head = 0;
				sink(arg, o.p, o.len);
			} else if (p[0] != ' ' && p[0] != '\t')
				drop = flag_header(p, n);
		}
		if (!head || !drop)
			sink(arg, p, n);
		last_nl = p[n - 1] == '\n';
	}
	if (r >= 0 && head) {
		/* No empty line at all: the flags go at the end. */
		if (!last_nl)
			sink(arg, "\n", 1);
		sink(arg, o.p, o.len);
	}
	free(o.p);
	mboxfmt_free(f);
	return r < 0 ? r : 0;
}
