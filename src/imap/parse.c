/*
 * parse.c — IMAP response framing and parsing; see parse.h.
 *
 * The grammar is RFC 3501's, read leniently where servers differ in
 * harmless ways (several spaces between values, lower-case keywords) and
 * strictly where a mistake could misplace bytes (literal headers, line
 * ends, sizes).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msync.h"
#include "imap/parse.h"

/* Is kind (upper-case) a status response (resp-text follows)? */
static int
kind_is_status(const char *k)
{
	return strcmp(k, "OK") == 0 || strcmp(k, "NO") == 0 ||
	    strcmp(k, "BAD") == 0 || strcmp(k, "BYE") == 0 ||
	    strcmp(k, "PREAUTH") == 0;
}

/*
 * Reads the start of a response line: its tag ("*", "+" or a tag) and,
 * for "*", an optional number and the kind.  Sets *status (resp-text
 * follows, no literals) and *fetch.  Looks at buf[0..eol) only.
 */
static void
frame_classify(const char *buf, size_t eol, int *status, int *fetch)
{
	char	 kind[IMAP_TAG_MAX + 1];
	size_t	 p = 0, k = 0;

	*status = *fetch = 0;
	if (eol >= 1 && buf[0] == '+') {
		*status = 1;
		return;
	}
	while (p < eol && buf[p] != ' ')
		p++;
	if (!(eol >= 1 && buf[0] == '*')) {
		/* A tagged response is always a status response. */
		*status = 1;
		return;
	}
	while (p < eol && buf[p] == ' ')
		p++;
	if (p < eol && isdigit((unsigned char)buf[p])) {
		while (p < eol && isdigit((unsigned char)buf[p]))
			p++;
		while (p < eol && buf[p] == ' ')
			p++;
	}
	while (p < eol && k < IMAP_TAG_MAX && isalpha((unsigned char)buf[p]))
		kind[k++] = (char)toupper((unsigned char)buf[p++]);
	kind[k] = '\0';
	*status = kind_is_status(kind);
	*fetch = strcmp(kind, "FETCH") == 0;
}

/*
 * Is the atom that ends just before buf[at] (the '{' of a literal, after
 * one space) an item whose literal is a whole message: BODY[]<n>,
 * BINARY[]<n> or RFC822?  Other sections (headers) are kept in memory,
 * within IMAP_LITERAL_MAX.  The atom may hold "[...]" with spaces
 * (BODY[HEADER.FIELDS (A B)]), so it is walked back bracket-aware.
 */
static int
frame_body_item(const char *buf, size_t at)
{
	size_t	 e, b, depth = 0;

	if (at < 2 || buf[at - 1] != ' ')
		return 0;
	e = at - 1;
	for (b = e; b > 0; b--) {
		char	 ch = buf[b - 1];

		if (ch == ']')
			depth++;
		else if (ch == '[' && depth > 0)
			depth--;
		else if (depth == 0 && (ch == ' ' || ch == '('))
			break;
	}
	if (e - b >= 6 && strncasecmp(buf + b, "BODY[]", 6) == 0)
		return 1;
	if (e - b >= 8 && strncasecmp(buf + b, "BINARY[]", 8) == 0)
		return 1;
	if (e - b == 6 && strncasecmp(buf + b, "RFC822", 6) == 0)
		return 1;
	return 0;
}

int
imap_frame(const char *buf, size_t len, struct imap_frame *f)
{
	const char	*nl;
	size_t		 eol, lb, i, hdr_end;
	uint64_t	 n;
	int		 status, fetch, digits;

	f->done = f->stream = 0;
	for (;;) {
		if (f->scanned > len)
			return MSYNC_ERR_INTERNAL;
		nl = memchr(buf + f->scanned, '\n', len - f->scanned);
		if (nl == NULL) {
			if (len - f->scanned > IMAP_LINE_MAX)
				return MSYNC_ERR_TOOBIG;
			return MSYNC_ERR_INCOMPLETE;
		}
		eol = (size_t)(nl - buf);
		if (eol - f->scanned > IMAP_LINE_MAX)
			return MSYNC_ERR_TOOBIG;
		/* Lines end in CRLF; a bare LF is accepted (some servers). */
		hdr_end = eol + 1;
		if (eol > f->scanned && buf[eol - 1] == '\r')
			eol--;
		frame_classify(buf, eol, &status, &fetch);
		if (status || eol == 0 || buf[eol - 1] != '}') {
			if (hdr_end > IMAP_RESP_MAX)
				return MSYNC_ERR_TOOBIG;
			f->end = hdr_end;
			f->done = 1;
			return 0;
		}
		/* A literal header "{N}" (or literal8 "~{N}") ends the line. */
		lb = eol - 1;
		digits = 0;
		n = 0;
		while (lb > f->scanned && isdigit((unsigned char)buf[lb - 1])) {
			lb--;
			digits++;
		}
		if (lb == f->scanned || buf[lb - 1] != '{' || digits == 0 ||
		    digits > 19)
			return MSYNC_ERR_PROTO;
		for (i = lb; i < eol - 1; i++)
			n = n * 10 + (uint64_t)(buf[i] - '0');
		lb--;	/* the '{' */
		if (lb > 0 && buf[lb - 1] == '~')
			lb--;
		if (fetch && frame_body_item(buf, lb)) {
			if (n > IMAP_BODY_MAX)
				return MSYNC_ERR_TOOBIG;
			f->stream = 1;
			f->lit_start = lb;
			f->lit_hdr_end = hdr_end;
			f->lit_size = n;
			return 0;
		}
		if (n > IMAP_LITERAL_MAX || n > IMAP_RESP_MAX - hdr_end)
			return MSYNC_ERR_TOOBIG;
		if (len - hdr_end < n)
			return MSYNC_ERR_INCOMPLETE;
		f->scanned = hdr_end + (size_t)n;
	}
}

void
imap_frame_splice(char *buf, size_t *len, struct imap_frame *f)
{
	size_t	 cut = f->lit_hdr_end - f->lit_start;

	/* "{N}\r\n" is at least 5 bytes, "NIL" 3: the buffer shrinks. */
	memcpy(buf + f->lit_start, "NIL", 3);
	memmove(buf + f->lit_start + 3, buf + f->lit_hdr_end,
	    *len - f->lit_hdr_end);
	*len -= cut - 3;
	f->scanned = f->lit_start + 3;
	f->stream = 0;
}

/* The parser's cursor. */
struct pctx {
	const char	*b;	/* the response */
	size_t		 len;	/* its length without the final CRLF */
	size_t		 p;	/* position */
	struct imap_resp *r;
	size_t		 cap;	/* allocated entries of r->v */
	size_t		 ap;	/* used bytes of r->arena */
};

/* Copies n bytes into the arena, NUL-terminated; returns them. */
static const char *
arena_put(struct pctx *c, const char *s, size_t n)
{
	char	*d = c->r->arena + c->ap;

	memcpy(d, s, n);
	d[n] = '\0';
	c->ap += n + 1;
	return d;
}

/* A new value at index *idx (the first one made is the root, 0). */
static int
val_new(struct pctx *c, enum imap_vtype t, size_t *idx)
{
	struct imap_val	*nv;
	size_t		 ncap;

	if (c->r->nv >= IMAP_VALS_MAX)
		return MSYNC_ERR_TOOBIG;
	if (c->r->nv == c->cap) {
		ncap = c->cap == 0 ? 16 : c->cap * 2;
		if (ncap > IMAP_VALS_MAX)
			ncap = IMAP_VALS_MAX;
		nv = reallocarray(c->r->v, ncap, sizeof(*nv));
		if (nv == NULL)
			return MSYNC_ERR_NOMEM;
		c->r->v = nv;
		c->cap = ncap;
	}
	memset(&c->r->v[c->r->nv], 0, sizeof(c->r->v[0]));
	c->r->v[c->r->nv].type = t;
	*idx = c->r->nv++;
	return 0;
}

static int
atom_char(unsigned char ch)
{
	return ch > 0x20 && ch != 0x7f && ch != '(' && ch != ')' &&
	    ch != '{' && ch != '"';
}

static int parse_list(struct pctx *, size_t, int, char);

/* One value at c->p into list parent; links it after *last. */
static int
parse_value(struct pctx *c, size_t parent, size_t *last, int depth)
{
	const char	*b = c->b;
	size_t		 i, start, o, depthb;
	uint64_t	 n;
	int		 r;
	char		*d;
	unsigned char	 ch = (unsigned char)b[c->p];

	if (ch == '(') {
		if (depth >= IMAP_DEPTH_MAX)
			return MSYNC_ERR_TOOBIG;
		if ((r = val_new(c, IV_LIST, &i)) != 0)
			return r;
		c->p++;
		if ((r = parse_list(c, i, depth + 1, ')')) != 0)
			return r;
		if (c->p >= c->len || b[c->p] != ')')
			return MSYNC_ERR_PROTO;
		c->p++;
	} else if (ch == '"') {
		if ((r = val_new(c, IV_STRING, &i)) != 0)
			return r;
		d = c->r->arena + c->ap;
		o = 0;
		for (c->p++; ; c->p++) {
			if (c->p >= c->len)
				return MSYNC_ERR_PROTO;
			ch = (unsigned char)b[c->p];
			if (ch == '"')
				break;
			if (ch == '\r' || ch == '\n' || ch == '\0')
				return MSYNC_ERR_PROTO;
			if (ch == '\\') {
				if (++c->p >= c->len || (b[c->p] != '"' &&
				    b[c->p] != '\\'))
					return MSYNC_ERR_PROTO;
				ch = (unsigned char)b[c->p];
			}
			d[o++] = (char)ch;
		}
		c->p++;
		d[o] = '\0';
		c->r->v[i].s = d;
		c->r->v[i].len = o;
		c->ap += o + 1;
	} else if (ch == '{' || (ch == '~' && c->p + 1 < c->len &&
	    b[c->p + 1] == '{')) {
		if ((r = val_new(c, IV_STRING, &i)) != 0)
			return r;
		c->p += ch == '~' ? 2 : 1;
		n = 0;
		start = c->p;
		while (c->p < c->len && isdigit((unsigned char)b[c->p]) &&
		    c->p - start < 19)
			n = n * 10 + (uint64_t)(b[c->p++] - '0');
		if (c->p == start || c->p >= c->len || b[c->p] != '}')
			return MSYNC_ERR_PROTO;
		c->p++;
		/* CRLF (or LF), then exactly n bytes inside the response. */
		if (c->p < c->len && b[c->p] == '\r')
			c->p++;
		if (c->p >= c->len || b[c->p] != '\n')
			return MSYNC_ERR_PROTO;
		c->p++;
		if (n > c->len - c->p)
			return MSYNC_ERR_PROTO;
		c->r->v[i].s = arena_put(c, b + c->p, (size_t)n);
		c->r->v[i].len = (size_t)n;
		c->p += (size_t)n;
	} else if (atom_char(ch)) {
		start = c->p;
		depthb = 0;
		while (c->p < c->len) {
			ch = (unsigned char)b[c->p];
			if (ch == '[')
				depthb++;
			else if (ch == ']' && depthb > 0)
				depthb--;
			else if (depthb > 0) {
				if (ch == '\r' || ch == '\n' || ch == '\0')
					return MSYNC_ERR_PROTO;
			} else if (!atom_char(ch))
				break;
			c->p++;
		}
		if (depthb != 0)
			return MSYNC_ERR_PROTO;
		r = val_new(c, c->p - start == 3 &&
		    strncasecmp(b + start, "NIL", 3) == 0 ? IV_NIL : IV_ATOM,
		    &i);
		if (r != 0)
			return r;
		if (c->r->v[i].type == IV_ATOM) {
			c->r->v[i].s = arena_put(c, b + start, c->p - start);
			c->r->v[i].len = c->p - start;
		}
	} else
		return MSYNC_ERR_PROTO;
	if (*last == 0)
		c->r->v[parent].kid = i;
	else
		c->r->v[*last].next = i;
	*last = i;
	return 0;
}

/* Values separated by spaces until close (')' or '\0' for the line end). */
static int
parse_list(struct pctx *c, size_t self, int depth, char close)
{
	size_t	 last = 0;
	int	 r;

	for (;;) {
		while (c->p < c->len && c->b[c->p] == ' ')
			c->p++;
		if (c->p >= c->len)
			return close == '\0' ? 0 : MSYNC_ERR_PROTO;
		if (c->b[c->p] == close)
			return 0;
		if ((r = parse_value(c, self, &last, depth)) != 0)
			return r;
		/* Values are followed by a space, the close, or the end. */
		if (c->p < c->len && c->b[c->p] != ' ' && c->b[c->p] != ')' &&
		    c->b[c->p] != close)
			return MSYNC_ERR_PROTO;
		if (c->p < c->len && c->b[c->p] == ')' && close != ')')
			return MSYNC_ERR_PROTO;
	}
}

/* An atom of letters (a tag may hold more) into out, upper-cased. */
static int
parse_word(struct pctx *c, char *out, int is_tag)
{
	size_t	 k = 0;
	unsigned char ch;

	while (c->p < c->len) {
		ch = (unsigned char)c->b[c->p];
		if (is_tag ? !atom_char(ch) || ch == '+' || ch == '*' :
		    !isalpha(ch))
			break;
		if (k >= IMAP_TAG_MAX)
			return MSYNC_ERR_PROTO;
		out[k++] = is_tag ? (char)ch : (char)toupper(ch);
		c->p++;
	}
	out[k] = '\0';
	return k == 0 ? MSYNC_ERR_PROTO : 0;
}

/* resp-text: ["[" code "]" SP] text. */
static void
parse_resp_text(struct pctx *c)
{
	size_t	 s, depth = 0;

	while (c->p < c->len && c->b[c->p] == ' ')
		c->p++;
	c->r->code = NULL;
	if (c->p < c->len && c->b[c->p] == '[') {
		s = ++c->p;
		while (c->p < c->len && !(c->b[c->p] == ']' && depth == 0)) {
			if (c->b[c->p] == '[')
				depth++;
			else if (c->b[c->p] == ']')
				depth--;
			c->p++;
		}
		if (c->p < c->len) {
			c->r->code = arena_put(c, c->b + s, c->p - s);
			c->p++;
		} else
			c->p = s - 1;	/* unterminated: all of it is text */
		while (c->p < c->len && c->b[c->p] == ' ')
			c->p++;
	}
	c->r->text = arena_put(c, c->b + c->p, c->len - c->p);
	c->p = c->len;
}

int
imap_parse(const char *buf, size_t len, struct imap_resp *r)
{
	struct pctx	 c;
	uint64_t	 n;
	size_t		 root;
	int		 rc;

	memset(r, 0, sizeof(*r));
	memset(&c, 0, sizeof(c));
	if (len < 1 || len > IMAP_RESP_MAX || buf[len - 1] != '\n')
		return MSYNC_ERR_PROTO;
	len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	c.b = buf;
	c.len = len;
	c.r = r;
	/* Every value, code and text fits its source bytes plus a NUL. */
	if ((r->arena = malloc(2 * len + 64)) == NULL)
		return MSYNC_ERR_NOMEM;
	if ((rc = val_new(&c, IV_LIST, &root)) != 0)
		return rc;	/* the root is index 0 */
	if (len >= 1 && buf[0] == '+') {
		r->type = IR_CONT;
		r->status = IR_CONT;
		c.p = 1;
		parse_resp_text(&c);
		return 0;
	}
	if (len >= 1 && buf[0] == '*') {
		r->type = IR_UNTAGGED;
		c.p = 1;
	} else {
		r->type = IR_TAGGED;
		if ((rc = parse_word(&c, r->tag, 1)) != 0)
			return rc;
	}
	if (c.p >= len || buf[c.p] != ' ')
		return MSYNC_ERR_PROTO;
	while (c.p < len && buf[c.p] == ' ')
		c.p++;
	if (r->type == IR_UNTAGGED && c.p < len &&
	    isdigit((unsigned char)buf[c.p])) {
		n = 0;
		while (c.p < len && isdigit((unsigned char)buf[c.p])) {
			n = n * 10 + (uint64_t)(buf[c.p++] - '0');
			if (n > UINT32_MAX)
				return MSYNC_ERR_PROTO;
		}
		r->has_num = 1;
		r->num = (uint32_t)n;
		if (c.p >= len || buf[c.p] != ' ')
			return MSYNC_ERR_PROTO;
		while (c.p < len && buf[c.p] == ' ')
			c.p++;
	}
	if ((rc = parse_word(&c, r->kind, 0)) != 0)
		return rc;
	if (kind_is_status(r->kind)) {
		r->status = 1;
		if (r->type == IR_TAGGED && strcmp(r->kind, "OK") != 0 &&
		    strcmp(r->kind, "NO") != 0 && strcmp(r->kind, "BAD") != 0)
			return MSYNC_ERR_PROTO;
		parse_resp_text(&c);
		return 0;
	}
	if (r->type == IR_TAGGED)
		return MSYNC_ERR_PROTO;
	if (c.p < len && buf[c.p] != ' ')
		return MSYNC_ERR_PROTO;
	return parse_list(&c, 0, 0, '\0');
}

void
imap_resp_free(struct imap_resp *r)
{
	if (r == NULL)
		return;
	free(r->v);
	free(r->arena);
	memset(r, 0, sizeof(*r));
}

size_t
imap_kid(const struct imap_resp *r, size_t l, size_t i)
{
	size_t	 k;

	if (l >= r->nv || r->v[l].type != IV_LIST)
		return 0;
	for (k = r->v[l].kid; k != 0 && i > 0; i--)
		k = r->v[k].next;
	return k;
}

int
imap_is(const struct imap_resp *r, size_t i, const char *s)
{
	return i != 0 && i < r->nv && r->v[i].type == IV_ATOM &&
	    strcasecmp(r->v[i].s, s) == 0;
}

int
imap_num(const struct imap_resp *r, size_t i, uint64_t max, uint64_t *out)
{
	const char	*s;
	uint64_t	 n = 0;

	if (i == 0 || i >= r->nv || r->v[i].type != IV_ATOM)
		return MSYNC_ERR_PROTO;
	s = r->v[i].s;
	if (*s == '\0' || r->v[i].len > 20)
		return MSYNC_ERR_PROTO;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return MSYNC_ERR_PROTO;
		if (n > (UINT64_MAX - 9) / 10)
			return MSYNC_ERR_PROTO;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	if (n > max)
		return MSYNC_ERR_PROTO;
	*out = n;
	return 0;
}

int
imap_code_is(const struct imap_resp *r, const char *w)
{
	size_t	 n = strlen(w);

	return r->code != NULL && strncasecmp(r->code, w, n) == 0 &&
	    (r->code[n] == '\0' || r->code[n] == ' ');
}

/* One number of a set: 1..2^32-1, or '*'. */
static int
set_num(const char *s, size_t len, size_t *p, uint32_t star, uint32_t *out)
{
	uint64_t	 n = 0;
	size_t		 start = *p;

	if (*p < len && s[*p] == '*') {
		(*p)++;
		*out = star;
		return 0;
	}
	while (*p < len && isdigit((unsigned char)s[*p])) {
		n = n * 10 + (uint64_t)(s[(*p)++] - '0');
		if (n > UINT32_MAX)
			return MSYNC_ERR_PROTO;
	}
	if (*p == start || n == 0)
		return MSYNC_ERR_PROTO;
	*out = (uint32_t)n;
	return 0;
}

int
imap_set_parse(const char *s, size_t len, uint32_t star,
    struct imap_range **out, size_t *n)
{
	struct imap_range *v = NULL, *nv;
	size_t		 p = 0, nr = 0, cap = 0;
	uint32_t	 a, b;
	int		 r;

	*out = NULL;
	*n = 0;
	if (len == 0)
		return MSYNC_ERR_PROTO;
	for (;;) {
		if ((r = set_num(s, len, &p, star, &a)) != 0)
			goto fail;
		b = a;
		if (p < len && s[p] == ':') {
			p++;
			if ((r = set_num(s, len, &p, star, &b)) != 0)
				goto fail;
		}
		if (nr == IMAP_SET_MAX) {
			r = MSYNC_ERR_TOOBIG;
			goto fail;
		}
		if (nr == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if (cap > IMAP_SET_MAX)
				cap = IMAP_SET_MAX;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				r = MSYNC_ERR_NOMEM;
				goto fail;
			}
			v = nv;
		}
		v[nr].lo = a < b ? a : b;
		v[nr].hi = a < b ? b : a;
		nr++;
		if (p == len)
			break;
		if (s[p++] != ',') {
			r = MSYNC_ERR_PROTO;
			goto fail;
		}
	}
	*out = v;
	*n = nr;
	return 0;
fail:
	free(v);
	return r;
}

uint64_t
imap_set_count(const struct imap_range *v, size_t n)
{
	uint64_t	 c = 0;

	/* At most IMAP_SET_MAX * 2^32: no overflow. */
	for (size_t i = 0; i < n; i++)
		c += (uint64_t)v[i].hi - v[i].lo + 1;
	return c;
}

int
imap_vanished(const struct imap_resp *r, int *earlier,
    struct imap_range **out, size_t *n)
{
	size_t	 k = imap_kid(r, 0, 0), e;

	*out = NULL;
	*n = 0;
	*earlier = 0;
	if (r->type != IR_UNTAGGED || strcmp(r->kind, "VANISHED") != 0 ||
	    r->has_num || k == 0)
		return MSYNC_ERR_PROTO;
	if (r->v[k].type == IV_LIST) {
		e = r->v[k].kid;
		if (!imap_is(r, e, "EARLIER") || r->v[e].next != 0)
			return MSYNC_ERR_PROTO;
		*earlier = 1;
		k = r->v[k].next;
	}
	if (k == 0 || r->v[k].type != IV_ATOM || r->v[k].next != 0)
		return MSYNC_ERR_PROTO;
	return imap_set_parse(r->v[k].s, r->v[k].len, UINT32_MAX, out, n);
}
