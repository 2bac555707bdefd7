/*
 * proto.c — encode and decode every record payload of the wire protocol
 * (docs/PROTOCOL.md).  Pure: bytes <-> structs, no I/O.
 *
 * Each decoder reads from a read-only view of exactly the payload, bounds
 * every count before it allocates, validates every field, and requires the
 * view to be empty at the end.  Encoders refuse what the decoders would
 * reject, so a bad value is caught on the side that made it.  The
 * "Read: [name]" tags name the grammar rules of docs/PROTOCOL.md.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "msync.h"
#include "names.h"
#include "proto.h"

/* Limits of the grammar that only the codec needs. */
#define PROTO_HELLO_MAX		(64 * 1024)	/* bytes in a HELLO */
#define PROTO_TEXT_MAX		4096	/* bytes of text in LOG / ERROR */
#define PROTO_STATUS_MIN	(-255)	/* lowest status / error code */
#define PROTO_LOGLEVEL_MAX	4	/* LOG levels 0 .. 4 */
#define HELLO_ALL	(HELLO_DRY_RUN | HELLO_FORCE_DELETES | HELLO_FULL | \
			    HELLO_READ_ONLY | HELLO_CREATE | HELLO_FPRINT | \
			    HELLO_MBOXO)
#define LAYOUT_MAX	4		/* enum store_layout: maildir++, fs,
				   mbox, mbox thunderbird, imap */

/* Encoded sizes: fixed parts and the largest variable ones. */
#define STR_LEN(max)	(4 + (size_t)(max))
#define MBOX_LEN_MAX	(STR_LEN(MSYNC_NAME_MAX) + 16 + 2 * 4 + 2 * 8 + \
			    1 + 4 + 4 + 8)
#define MSG_LEN_MIN	(4 + 16 + 1 + STR_LEN(0) + 8 + 8)
#define MSG_LEN_MAX	(MSG_LEN_MIN + MSYNC_KWSTR_MAX)
#define BMSG_LEN_MIN	(16 + 2 * 4 + 2 * 1 + 2 * STR_LEN(0))
#define BMSG_LEN_MAX	(BMSG_LEN_MIN + 2 * MSYNC_KWSTR_MAX)
#define CHG_LEN_MIN	(1 + 4)		/* op GONE: op and uid */
#define CHG_LEN_MAX	(1 + MSG_LEN_MAX)	/* op NEW: op and a msg */
#define REF_LEN_MIN	1		/* tag NEXT|SAME alone */
#define REF_LEN_MAX	(1 + BMSG_LEN_MAX)	/* tag FULL and a base-msg */
#define RESULT_LEN	(4 + 4 + 4)
#define FPRINT_LEN	(4 + 16)	/* uid and fingerprint */
#define DONE_MBOX_LEN	(4 + 4 + 8)

/* What a string field may hold; see str_check(). */
enum str_kind {
	STR_NAME,	/* a mailbox name: names_valid() */
	STR_PATH,	/* a store path: printable, may be empty */
	STR_PATTERN,	/* a -m/-x pattern: printable, not empty */
	STR_KW,		/* keywords: sorted, one space apart; may be empty */
	STR_TEXT	/* LOG / ERROR text: printable or tab */
};

/* Largest payload of each record type, indexed by enum rec_type. */
static const size_t rec_max[REC_TYPE_MAX + 1] = {
	[REC_HELLO] = PROTO_HELLO_MAX,
	[REC_BASE_MBOX] = MBOX_LEN_MAX,
	[REC_BASE_MSGS] = 4 + (size_t)PROTO_LIST_CHUNK * BMSG_LEN_MAX,
	[REC_BASE_END] = 0,
	[REC_MBOX] = MBOX_LEN_MAX,
	[REC_MSGS] = 4 + (size_t)PROTO_LIST_CHUNK * MSG_LEN_MAX,
	[REC_LIST_END] = 0,
	[REC_DIGEST] = 8 + 4,
	[REC_MSG_BEGIN] = 4 + 8 + 8,
	[REC_MSG_DATA] = PROTO_DATA_MAX,
	[REC_MSG_END] = 0,
	[REC_MSG_SKIP] = 4 + 4,
	[REC_RESULT] = 4 + (size_t)PROTO_LIST_CHUNK * RESULT_LEN,
	[REC_DONE] = 4 + 4 + (size_t)MSYNC_MBOX_MAX * DONE_MBOX_LEN,
	[REC_LOG] = 4 + STR_LEN(PROTO_TEXT_MAX),
	[REC_ERROR] = 4 + STR_LEN(PROTO_TEXT_MAX),
	[REC_BYE] = 0,
	[REC_KEEPALIVE] = 0,
	[REC_MSGS_DELTA] = 4 + (size_t)PROTO_LIST_CHUNK * CHG_LEN_MAX,
	[REC_BASE_REFS] = 4 + (size_t)PROTO_LIST_CHUNK * REF_LEN_MAX,
	[REC_FPRINTS] = 4 + (size_t)PROTO_LIST_CHUNK * FPRINT_LEN,
};

static const char *const rec_names[REC_TYPE_MAX + 1] = {
	[REC_HELLO] = "HELLO",
	[REC_BASE_MBOX] = "BASE_MBOX",
	[REC_BASE_MSGS] = "BASE_MSGS",
	[REC_BASE_END] = "BASE_END",
	[REC_MBOX] = "MBOX",
	[REC_MSGS] = "MSGS",
	[REC_LIST_END] = "LIST_END",
	[REC_DIGEST] = "DIGEST",
	[REC_MSG_BEGIN] = "MSG_BEGIN",
	[REC_MSG_DATA] = "MSG_DATA",
	[REC_MSG_END] = "MSG_END",
	[REC_MSG_SKIP] = "MSG_SKIP",
	[REC_RESULT] = "RESULT",
	[REC_DONE] = "DONE",
	[REC_LOG] = "LOG",
	[REC_ERROR] = "ERROR",
	[REC_BYE] = "BYE",
	[REC_KEEPALIVE] = "KEEPALIVE",
	[REC_MSGS_DELTA] = "MSGS_DELTA",
	[REC_BASE_REFS] = "BASE_REFS",
	[REC_FPRINTS] = "FPRINTS",
};

/*
 * The largest payload a record of this type may have; 0 for an unknown
 * type (and for the types whose payload is empty: check the type with
 * proto_rec_name or the REC_* range first).
 */
size_t
proto_max_len(uint8_t type)
{
	if (type == 0 || type > REC_TYPE_MAX)
		return 0;
	return rec_max[type];
}

/* "MBOX", "MSG_DATA", ...; "unknown" for an unknown type. */
const char *
proto_rec_name(uint8_t type)
{
	if (type == 0 || type > REC_TYPE_MAX)
		return "unknown";
	return rec_names[type];
}

/*
 * Checks a keyword string: names of 1..MSYNC_KWNAME_MAX bytes without
 * control characters or spaces, one space apart, strictly increasing in
 * byte order (so no duplicates), at most MSYNC_KW_MAX of them.
 * Returns 1 if valid, else 0.
 */
static int
kw_valid(const uint8_t *p, size_t len)
{
	const uint8_t	*prev = NULL;
	size_t		 i, start, n, prevlen = 0, count = 0, k;
	int		 c;

	if (len > MSYNC_KWSTR_MAX)
		return 0;
	for (start = 0; start < len; start = i + 1) {
		for (i = start; i < len && p[i] != ' '; i++)
			if (p[i] < 0x20 || p[i] == 0x7f)
				return 0;
		n = i - start;
		if (n == 0 || n > MSYNC_KWNAME_MAX || ++count > MSYNC_KW_MAX)
			return 0;
		if (prev != NULL) {
			k = n < prevlen ? n : prevlen;
			c = memcmp(prev, p + start, k);
			if (c > 0 || (c == 0 && prevlen >= n))
				return 0;
		}
		prev = p + start;
		prevlen = n;
		if (i == len - 1)
			return 0;	/* a trailing space */
	}
	return 1;
}

/*
 * Checks the bytes of a string field of the given kind.
 * Returns 0, or MSYNC_ERR_BADNAME / MSYNC_ERR_PROTO / MSYNC_ERR_TOOBIG.
 */
static int
str_check(enum str_kind kind, const uint8_t *p, size_t len)
{
	size_t	 i;

	if (kind == STR_NAME)
		return names_valid((const char *)p, len) ? 0 :
		    MSYNC_ERR_BADNAME;
	if (memchr(p, '\0', len) != NULL || !mbuf_utf8_valid(p, len))
		return MSYNC_ERR_PROTO;
	switch (kind) {
	case STR_KW:
		return kw_valid(p, len) ? 0 : MSYNC_ERR_PROTO;
	case STR_PATTERN:
		if (len == 0 || len > MSYNC_NAME_MAX)
			return MSYNC_ERR_PROTO;
		break;
	case STR_PATH:
		if (len > MSYNC_PATH_MAX)
			return MSYNC_ERR_TOOBIG;
		break;
	case STR_TEXT:
		if (len > PROTO_TEXT_MAX)
			return MSYNC_ERR_TOOBIG;
		break;
	default:
		break;
	}
	for (i = 0; i < len; i++)
		if ((p[i] < 0x20 && !(kind == STR_TEXT && p[i] == '\t')) ||
		    p[i] == 0x7f)
			return MSYNC_ERR_PROTO;
	return 0;
}

/* The most bytes a string of this kind may have. */
static size_t
str_max(enum str_kind kind)
{
	switch (kind) {
	case STR_NAME:
	case STR_PATTERN:
		return MSYNC_NAME_MAX;
	case STR_PATH:
		return MSYNC_PATH_MAX;
	case STR_KW:
		return MSYNC_KWSTR_MAX;
	case STR_TEXT:
	default:
		return PROTO_TEXT_MAX;
	}
}

/*
 * Decodes a string field into a new C string (*out, owned by the caller;
 * NULL for an empty keyword string).  Returns 0 on success, negative
 * MSYNC_ERR_* on failure (nothing consumed; *out NULL).
 */
static int
get_str(struct mbuf *b, enum str_kind kind, char **out)
{
	struct mbuf	 save = *b;
	const uint8_t	*p;
	size_t		 len;
	char		*s = NULL;
	int		 r;

	*out = NULL;
	if ((r = mbuf_get_string_direct(b, &p, &len, str_max(kind))) != 0)
		goto out;
	if ((r = str_check(kind, p, len)) != 0)
		goto out;
	if (kind == STR_KW && len == 0)
		return 0;
	if ((s = malloc(len + 1)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	memcpy(s, p, len);
	s[len] = '\0';
	*out = s;
	return 0;
 out:
	*b = save;
	return r == MSYNC_ERR_INCOMPLETE ? MSYNC_ERR_PROTO : r;
}

/*
 * Encodes a C string field (NULL counts as empty) after the checks the
 * decoder makes.  Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
put_str(struct mbuf *b, enum str_kind kind, const char *s)
{
	size_t	 len = s == NULL ? 0 : strlen(s);
	int	 r;

	if (len > str_max(kind))
		return MSYNC_ERR_TOOBIG;
	if ((r = str_check(kind, (const uint8_t *)(s == NULL ? "" : s),
	    len)) != 0)
		return r;
	return mbuf_put_string(b, s, len);
}

/* A status field: 0 or an MSYNC_ERR_* code. */
static int
status_ok(int32_t st)
{
	return st <= 0 && st >= PROTO_STATUS_MIN;
}

/*
 * Maps a get's INCOMPLETE (the payload ended early) to PROTO: a payload is
 * always complete, so a short one is malformed.
 */
static int
short_is_proto(int r)
{
	return r == MSYNC_ERR_INCOMPLETE ? MSYNC_ERR_PROTO : r;
}

/*
 * Creates an encoding buffer capped at the record type's maximum.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
enc_start(uint8_t type, struct mbuf **b, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if ((*b = mbuf_new(proto_max_len(type))) == NULL)
		return MSYNC_ERR_NOMEM;
	return 0;
}

/*
 * Hands the encoded payload over on success and frees the buffer.
 * Returns r, or the error of the hand-over.
 */
static int
enc_finish(uint8_t type, struct mbuf *b, int r, uint8_t **out, size_t *len)
{
	if (r == 0)
		r = mbuf_detach(b, out, len);
	if (r != 0)
		LOG4("proto: cannot encode %s: %s", proto_rec_name(type),
		    msync_strerror(r));
	mbuf_free(b);
	return r;
}

/*
 * Ends a decode: trailing bytes are an error.  Returns r, or
 * MSYNC_ERR_PROTO when r is 0 and bytes are left.
 */
static int
dec_finish(uint8_t type, const struct mbuf *b, int r)
{
	if (r == 0 && mbuf_len(b) != 0)
		r = MSYNC_ERR_PROTO;
	r = short_is_proto(r);
	if (r != 0)
		LOG4("proto: bad %s record: %s", proto_rec_name(type),
		    msync_strerror(r));
	return r;
}

/*
 * HELLO: mode, source side, options, B's store path and layout, include
 * and exclude patterns.  Returns 0 on success, negative MSYNC_ERR_* on
 * failure.
 */
int
proto_enc_hello(const struct rec_hello *h, uint8_t **out, size_t *len)
{
	struct mbuf	*b = NULL;
	uint32_t	 i;
	int		 r;

	if ((r = enc_start(REC_HELLO, &b, out, len)) != 0)
		return r;
	if (h->mode > MODE_LIST || h->src > SIDE_B ||
	    (h->opts & ~HELLO_ALL) != 0 || h->layout > LAYOUT_MAX) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	if (h->ninclude > PROTO_PATTERNS_MAX ||
	    h->nexclude > PROTO_PATTERNS_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_u8(b, h->mode)) != 0 ||
	    (r = mbuf_put_u8(b, h->src)) != 0 ||
	    (r = mbuf_put_u32(b, h->opts)) != 0 ||
	    (r = put_str(b, STR_PATH, h->path)) != 0 ||
	    (r = mbuf_put_u8(b, h->layout)) != 0 ||
	    (r = mbuf_put_u32(b, h->ninclude)) != 0)
		goto out;
	for (i = 0; i < h->ninclude; i++)
		if ((r = put_str(b, STR_PATTERN, h->include[i])) != 0)
			goto out;
	if ((r = mbuf_put_u32(b, h->nexclude)) != 0)
		goto out;
	for (i = 0; i < h->nexclude; i++)
		if ((r = put_str(b, STR_PATTERN, h->exclude[i])) != 0)
			goto out;
 out:
	return enc_finish(REC_HELLO, b, r, out, len);
}

/*
 * Decodes a pattern list: u32 count, then that many patterns, into a new
 * array (*out, owned by the caller; NULL when the count is 0).
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
get_patterns(struct mbuf *b, char ***out, uint32_t *np)
{
	char		**v = NULL;
	uint32_t	  n, i = 0;
	int		  r;

	*out = NULL;
	*np = 0;
	/* Read: [hello-npatterns]. */
	if ((r = mbuf_get_u32(b, &n)) != 0)
		goto out;
	if (n > PROTO_PATTERNS_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if (n > mbuf_len(b) / STR_LEN(1)) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		/* Read: [hello-pattern]. */
		if ((r = get_str(b, STR_PATTERN, &v[i])) != 0)
			goto out;
	*out = v;
	*np = n;
	v = NULL;	/* transferred */
 out:
	if (v != NULL) {
		while (i > 0)
			free(v[--i]);
		free(v);
	}
	return r;
}

int
proto_dec_hello(const uint8_t *p, size_t len, struct rec_hello *h)
{
	struct mbuf	 b;
	int		 r;

	memset(h, 0, sizeof(*h));
	mbuf_view(&b, p, len);
	/* Read: [hello-mode]. */
	if ((r = mbuf_get_u8(&b, &h->mode)) != 0)
		goto out;
	/* Read: [hello-src]. */
	if ((r = mbuf_get_u8(&b, &h->src)) != 0)
		goto out;
	/* Read: [hello-opts]. */
	if ((r = mbuf_get_u32(&b, &h->opts)) != 0)
		goto out;
	if (h->mode > MODE_LIST || h->src > SIDE_B ||
	    (h->opts & ~HELLO_ALL) != 0) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	/* Read: [hello-path]. */
	if ((r = get_str(&b, STR_PATH, &h->path)) != 0)
		goto out;
	/* Read: [hello-layout]. */
	if ((r = mbuf_get_u8(&b, &h->layout)) != 0)
		goto out;
	if (h->layout > LAYOUT_MAX) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	/* Read: [hello-include]. */
	if ((r = get_patterns(&b, &h->include, &h->ninclude)) != 0)
		goto out;
	/* Read: [hello-exclude]. */
	if ((r = get_patterns(&b, &h->exclude, &h->nexclude)) != 0)
		goto out;
 out:
	if ((r = dec_finish(REC_HELLO, &b, r)) != 0)
		rec_hello_free(h);
	return r;
}

/* Frees what h holds and empties it.  Accepts NULL. */
void
rec_hello_free(struct rec_hello *h)
{
	uint32_t	 i;

	if (h == NULL)
		return;
	free(h->path);
	for (i = 0; h->include != NULL && i < h->ninclude; i++)
		free(h->include[i]);
	free(h->include);
	for (i = 0; h->exclude != NULL && i < h->nexclude; i++)
		free(h->exclude[i]);
	free(h->exclude);
	memset(h, 0, sizeof(*h));
}

/*
 * MBOX and BASE_MBOX: one mailbox.  Returns 0 on success, negative
 * MSYNC_ERR_* on failure.
 */
int
proto_enc_mbox(const struct rec_mbox *m, uint8_t **out, size_t *len)
{
	struct mbuf	*b = NULL;
	int		 r;

	if ((r = enc_start(REC_MBOX, &b, out, len)) != 0)
		return r;
	if (m->unchanged > 3) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	if (m->nmsgs > MSYNC_MSGS_MAX || m->count > MSYNC_MSGS_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = put_str(b, STR_NAME, m->name)) != 0 ||
	    (r = mbuf_put_guid(b, &m->guid)) != 0 ||
	    (r = mbuf_put_u32(b, m->uidvalidity[0])) != 0 ||
	    (r = mbuf_put_u32(b, m->uidvalidity[1])) != 0 ||
	    (r = mbuf_put_u64(b, m->modseq[0])) != 0 ||
	    (r = mbuf_put_u64(b, m->modseq[1])) != 0 ||
	    (r = mbuf_put_u8(b, m->unchanged)) != 0 ||
	    (r = mbuf_put_u32(b, m->nmsgs)) != 0 ||
	    (r = mbuf_put_u32(b, m->count)) != 0 ||
	    (r = mbuf_put_u64(b, m->bytes)) != 0)
		goto out;
 out:
	return enc_finish(REC_MBOX, b, r, out, len);
}

int
proto_dec_mbox(const uint8_t *p, size_t len, struct rec_mbox *m)
{
	struct mbuf	 b;
	int		 r;

	memset(m, 0, sizeof(*m));
	mbuf_view(&b, p, len);
	/* Read: [mbox-name]. */
	if ((r = get_str(&b, STR_NAME, &m->name)) != 0)
		goto out;
	/* Read: [mbox-guid]. */
	if ((r = mbuf_get_guid(&b, &m->guid)) != 0)
		goto out;
	/* Read: [mbox-uidvalidity]. */
	if ((r = mbuf_get_u32(&b, &m->uidvalidity[0])) != 0 ||
	    (r = mbuf_get_u32(&b, &m->uidvalidity[1])) != 0)
		goto out;
	/* Read: [mbox-modseq]. */
	if ((r = mbuf_get_u64(&b, &m->modseq[0])) != 0 ||
	    (r = mbuf_get_u64(&b, &m->modseq[1])) != 0)
		goto out;
	/* Read: [mbox-unchanged]. */
	if ((r = mbuf_get_u8(&b, &m->unchanged)) != 0)
		goto out;
	if (m->unchanged > 3) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	/* Read: [mbox-nmsgs]. */
	if ((r = mbuf_get_u32(&b, &m->nmsgs)) != 0)
		goto out;
	/* Read: [mbox-count]. */
	if ((r = mbuf_get_u32(&b, &m->count)) != 0)
		goto out;
	if (m->nmsgs > MSYNC_MSGS_MAX || m->count > MSYNC_MSGS_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	/* Read: [mbox-bytes]. */
	if ((r = mbuf_get_u64(&b, &m->bytes)) != 0)
		goto out;
 out:
	if ((r = dec_finish(REC_MBOX, &b, r)) != 0)
		rec_mbox_free(m);
	return r;
}

/* Frees what m holds and empties it.  Accepts NULL. */
void
rec_mbox_free(struct rec_mbox *m)
{
	if (m == NULL)
		return;
	free(m->name);
	memset(m, 0, sizeof(*m));
}

/*
 * Checks one message of a MSGS record.  prev is the uid of the message
 * before it (0 for none): uids must increase strictly.
 * Returns 0, or MSYNC_ERR_PROTO / MSYNC_ERR_TOOBIG.
 */
static int
msg_check(const struct msg *m, uint32_t prev)
{
	if (m->uid == 0 || m->uid <= prev || (m->flags & ~FLAG_ALL) != 0)
		return MSYNC_ERR_PROTO;
	if (m->size > MSYNC_MSG_SIZE_MAX)
		return MSYNC_ERR_TOOBIG;
	return 0;
}

/*
 * MSGS: n messages of one mailbox, uids strictly increasing.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
proto_enc_msgs(const struct msg *v, size_t n, uint8_t **out, size_t *len)
{
	struct mbuf	*b = NULL;
	size_t		 i;
	int		 r;

	if ((r = enc_start(REC_MSGS, &b, out, len)) != 0)
		return r;
	if (n > PROTO_LIST_CHUNK) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_u32(b, (uint32_t)n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = msg_check(&v[i], i == 0 ? 0 : v[i - 1].uid)) != 0 ||
		    (r = mbuf_put_u32(b, v[i].uid)) != 0 ||
		    (r = mbuf_put_guid(b, &v[i].guid)) != 0 ||
		    (r = mbuf_put_u8(b, v[i].flags)) != 0 ||
		    (r = put_str(b, STR_KW, v[i].kw)) != 0 ||
		    (r = mbuf_put_u64(b, v[i].size)) != 0 ||
		    (r = mbuf_put_i64(b, v[i].date)) != 0)
			goto out;
	}
 out:
	return enc_finish(REC_MSGS, b, r, out, len);
}

/*
 * The head of every list record: reads its count into *np and makes
 * room for that many more entries of elsize bytes after the n0 in *vp
 * (*capp allocated).  The count is checked before anything is
 * allocated: at most PROTO_LIST_CHUNK per record, MSYNC_MSGS_MAX in
 * all, and no more than the record's remaining bytes can hold at
 * minlen bytes per entry.  Grows by a quarter, not double: the lists
 * of a whole store are held at the run's peak (docs/PERFORMANCE.md).
 * Returns 0, MSYNC_ERR_TOOBIG, MSYNC_ERR_PROTO or MSYNC_ERR_NOMEM.
 */
static int
dec_list_head(struct mbuf *b, size_t n0, size_t minlen, void **vp,
    size_t *capp, size_t elsize, uint32_t *np)
{
	size_t	 ncap;
	void	*nv;
	int	 r;

	/* Read: [count]. */
	if ((r = mbuf_get_u32(b, np)) != 0)
		return r;
	if (*np > PROTO_LIST_CHUNK || *np > MSYNC_MSGS_MAX - n0)
		return MSYNC_ERR_TOOBIG;
	if (*np > mbuf_len(b) / minlen)
		return MSYNC_ERR_PROTO;
	if (n0 + *np <= *capp)
		return 0;
	ncap = *capp > MSYNC_MSGS_MAX / 2 ? MSYNC_MSGS_MAX :
	    *capp + *capp / 4;
	if (ncap < n0 + *np)
		ncap = n0 + *np;
	if ((nv = reallocarray(*vp, ncap, elsize)) == NULL)
		return MSYNC_ERR_NOMEM;
	*vp = nv;
	*capp = ncap;
	return 0;
}

/*
 * Decodes a MSGS record and appends its messages to ml.  The first must
 * have a higher uid than ml's last.  On failure ml holds what it held
 * (an empty list holds no memory).
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
proto_dec_msgs(const uint8_t *p, size_t len, struct msglist *ml)
{
	struct mbuf	 b;
	struct msg	*m;
	void		*vp;
	size_t		 n0 = ml->n, i = 0;
	uint32_t	 n = 0, prev;
	int		 r;

	mbuf_view(&b, p, len);
	/* Read: [msgs-count]. */
	vp = ml->v;
	r = dec_list_head(&b, n0, MSG_LEN_MIN, &vp, &ml->cap, sizeof(*m), &n);
	ml->v = vp;
	if (r != 0)
		goto out;
	prev = n0 > 0 ? ml->v[n0 - 1].uid : 0;
	for (i = 0; i < n; i++) {
		m = &ml->v[n0 + i];
		memset(m, 0, sizeof(*m));
		/* Read: [msg-uid]. */
		if ((r = mbuf_get_u32(&b, &m->uid)) != 0 ||
		    /* Read: [msg-guid]. */
		    (r = mbuf_get_guid(&b, &m->guid)) != 0 ||
		    /* Read: [msg-flags]. */
		    (r = mbuf_get_u8(&b, &m->flags)) != 0 ||
		    /* Read: [msg-keywords]. */
		    (r = get_str(&b, STR_KW, &m->kw)) != 0 ||
		    /* Read: [msg-size]. */
		    (r = mbuf_get_u64(&b, &m->size)) != 0 ||
		    /* Read: [msg-date]. */
		    (r = mbuf_get_i64(&b, &m->date)) != 0 ||
		    (r = msg_check(m, prev)) != 0) {
			free(m->kw);
			goto out;
		}
		prev = m->uid;
	}
 out:
	if ((r = dec_finish(REC_MSGS, &b, r)) != 0) {
		while (i > 0)
			free(ml->v[n0 + --i].kw);
		if (n0 == 0) {
			/* Leave an empty list with nothing to free. */
			free(ml->v);
			ml->v = NULL;
			ml->cap = 0;
		}
	} else
		ml->n = n0 + n;
	return r;
}

/*
 * MSGS_DELTA: up to PROTO_LIST_CHUNK changes of one mailbox's listing
 * against the sender's side of the base, uids strictly increasing.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
proto_enc_msgs_delta(const struct msg_change *v, size_t n, uint8_t **out,
    size_t *len)
{
	struct mbuf	*b = NULL;
	size_t		 i;
	int		 r;

	if ((r = enc_start(REC_MSGS_DELTA, &b, out, len)) != 0)
		return r;
	if (n > PROTO_LIST_CHUNK) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_u32(b, (uint32_t)n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		const struct msg *m = &v[i].m;

		if (v[i].op > CHANGE_NEW) {
			r = MSYNC_ERR_PROTO;
			goto out;
		}
		if ((r = msg_check(m, i == 0 ? 0 : v[i - 1].m.uid)) != 0 ||
		    (r = mbuf_put_u8(b, v[i].op)) != 0 ||
		    (r = mbuf_put_u32(b, m->uid)) != 0)
			goto out;
		if (v[i].op == CHANGE_NEW &&
		    (r = mbuf_put_guid(b, &m->guid)) != 0)
			goto out;
		if (v[i].op != CHANGE_GONE &&
		    ((r = mbuf_put_u8(b, m->flags)) != 0 ||
		    (r = put_str(b, STR_KW, m->kw)) != 0))
			goto out;
		if (v[i].op == CHANGE_NEW &&
		    ((r = mbuf_put_u64(b, m->size)) != 0 ||
		    (r = mbuf_put_i64(b, m->date)) != 0))
			goto out;
	}
 out:
	return enc_finish(REC_MSGS_DELTA, b, r, out, len);
}

/* Frees the keywords of n changes and the array. */
void
msg_changes_free(struct msg_change *v, size_t n)
{
	for (size_t i = 0; i < n && v != NULL; i++)
		free(v[i].m.kw);
	free(v);
}

/*
 * Decodes a MSGS_DELTA record and appends its changes to *v (*n used,
 * *cap allocated).  The first must have a higher uid than the last one
 * there.  On failure *v holds what it held.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
proto_dec_msgs_delta(const uint8_t *p, size_t len, struct msg_change **v,
    size_t *np, size_t *capp)
{
	struct mbuf		 b;
	struct msg_change	*c;
	void			*vp;
	size_t			 n0 = *np, i = 0;
	uint32_t		 n = 0, prev;
	int			 r;

	mbuf_view(&b, p, len);
	/* Read: [delta-count]. */
	vp = *v;
	r = dec_list_head(&b, n0, CHG_LEN_MIN, &vp, capp, sizeof(*c), &n);
	*v = vp;
	if (r != 0)
		goto out;
	prev = n0 > 0 ? (*v)[n0 - 1].m.uid : 0;
	for (i = 0; i < n; i++) {
		c = &(*v)[n0 + i];
		memset(c, 0, sizeof(*c));
		/* Read: [delta-op]. */
		if ((r = mbuf_get_u8(&b, &c->op)) != 0)
			goto out;
		if (c->op > CHANGE_NEW) {
			r = MSYNC_ERR_PROTO;
			goto out;
		}
		/* Read: [delta-uid]. */
		if ((r = mbuf_get_u32(&b, &c->m.uid)) != 0)
			goto out;
		/* Read: [delta-guid]. */
		if (c->op == CHANGE_NEW &&
		    (r = mbuf_get_guid(&b, &c->m.guid)) != 0)
			goto out;
		/* Read: [delta-flags], [delta-keywords]. */
		if (c->op != CHANGE_GONE &&
		    ((r = mbuf_get_u8(&b, &c->m.flags)) != 0 ||
		    (r = get_str(&b, STR_KW, &c->m.kw)) != 0))
			goto bad;
		/* Read: [delta-size], [delta-date]. */
		if (c->op == CHANGE_NEW &&
		    ((r = mbuf_get_u64(&b, &c->m.size)) != 0 ||
		    (r = mbuf_get_i64(&b, &c->m.date)) != 0))
			goto bad;
		if ((r = msg_check(&c->m, prev)) != 0)
			goto bad;
		prev = c->m.uid;
		continue;
 bad:
		free(c->m.kw);
		goto out;
	}
 out:
	if ((r = dec_finish(REC_MSGS_DELTA, &b, r)) != 0) {
		while (i > 0)
			free((*v)[n0 + --i].m.kw);
		if (n0 == 0) {
			free(*v);
			*v = NULL;
			*capp = 0;
		}
	} else
		*np = n0 + n;
	return r;
}

/*
 * FPRINTS (version 4): up to PROTO_LIST_CHUNK header fingerprints of one
 * mailbox's messages, uids strictly increasing.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
proto_enc_fprints(const struct fprint_ent *v, size_t n, uint8_t **out,
    size_t *len)
{
	struct mbuf	*b = NULL;
	size_t		 i;
	int		 r;

	if ((r = enc_start(REC_FPRINTS, &b, out, len)) != 0)
		return r;
	if (n > PROTO_LIST_CHUNK) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_u32(b, (uint32_t)n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (v[i].uid == 0 || (i > 0 && v[i].uid <= v[i - 1].uid)) {
			r = MSYNC_ERR_PROTO;
			goto out;
		}
		if ((r = mbuf_put_u32(b, v[i].uid)) != 0 ||
		    (r = mbuf_put_guid(b, &v[i].fp)) != 0)
			goto out;
	}
 out:
	return enc_finish(REC_FPRINTS, b, r, out, len);
}

/*
 * Decodes a FPRINTS record and appends its entries to *v (*n used, *cap
 * allocated).  The first must have a higher uid than the last one
 * there.  On failure *v holds what it held.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
proto_dec_fprints(const uint8_t *p, size_t len, struct fprint_ent **v,
    size_t *np, size_t *capp)
{
	struct mbuf		 b;
	struct fprint_ent	*e;
	void			*vp;
	size_t			 n0 = *np, i;
	uint32_t		 n = 0, prev;
	int			 r;

	mbuf_view(&b, p, len);
	/* Read: [fprints-count]. */
	vp = *v;
	r = dec_list_head(&b, n0, FPRINT_LEN, &vp, capp, sizeof(*e), &n);
	*v = vp;
	if (r != 0)
		goto out;
	/* Fixed-size entries: exactly count of them. */
	if (n != mbuf_len(&b) / FPRINT_LEN) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	prev = n0 > 0 ? (*v)[n0 - 1].uid : 0;
	for (i = 0; i < n; i++) {
		e = &(*v)[n0 + i];
		/* Read: [fprint-uid], [fprint-fp]. */
		if ((r = mbuf_get_u32(&b, &e->uid)) != 0 ||
		    (r = mbuf_get_guid(&b, &e->fp)) != 0)
			goto out;
		if (e->uid == 0 || e->uid <= prev) {
			r = MSYNC_ERR_PROTO;
			goto out;
		}
		prev = e->uid;
	}
 out:
	if ((r = dec_finish(REC_FPRINTS, &b, r)) != 0) {
		if (n0 == 0) {
			free(*v);
			*v = NULL;
			*capp = 0;
		}
	} else
		*np = n0 + n;
	return r;
}

/*
 * Checks one message of a BASE_MSGS record against the one before it
 * (NULL for none): (uid[A], uid[B]) increase strictly, and not both are 0.
 * Returns 0 or MSYNC_ERR_PROTO.
 */
static int
smsg_check(const struct state_msg *m, const struct state_msg *prev)
{
	if ((m->uid[0] == 0 && m->uid[1] == 0) ||
	    (m->flags[0] & ~FLAG_ALL) != 0 || (m->flags[1] & ~FLAG_ALL) != 0)
		return MSYNC_ERR_PROTO;
	if (prev != NULL && (m->uid[0] < prev->uid[0] ||
	    (m->uid[0] == prev->uid[0] && m->uid[1] <= prev->uid[1])))
		return MSYNC_ERR_PROTO;
	return 0;
}

/*
 * BASE_MSGS: n messages of one base mailbox.  Returns 0 on success,
 * negative MSYNC_ERR_* on failure.
 */
int
proto_enc_base_msgs(const struct state_msg *v, size_t n, uint8_t **out,
    size_t *len)
{
	struct mbuf	*b = NULL;
	size_t		 i;
	int		 r;

	if ((r = enc_start(REC_BASE_MSGS, &b, out, len)) != 0)
		return r;
	if (n > PROTO_LIST_CHUNK) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_u32(b, (uint32_t)n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = smsg_check(&v[i], i == 0 ? NULL : &v[i - 1])) != 0 ||
		    (r = mbuf_put_guid(b, &v[i].guid)) != 0 ||
		    (r = mbuf_put_u32(b, v[i].uid[0])) != 0 ||
		    (r = mbuf_put_u32(b, v[i].uid[1])) != 0 ||
		    (r = mbuf_put_u8(b, v[i].flags[0])) != 0 ||
		    (r = mbuf_put_u8(b, v[i].flags[1])) != 0 ||
		    (r = put_str(b, STR_KW, v[i].kw[0])) != 0 ||
		    (r = put_str(b, STR_KW, v[i].kw[1])) != 0)
			goto out;
	}
 out:
	return enc_finish(REC_BASE_MSGS, b, r, out, len);
}

/*
 * Decodes a BASE_MSGS record and appends its messages to mb->msgs.  On
 * failure mb holds what it held (no messages: no memory).
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
proto_dec_base_msgs(const uint8_t *p, size_t len, struct state_mbox *mb)
{
	struct mbuf	 b;
	struct state_msg *m;
	void		*vp;
	size_t		 n0 = mb->nmsgs, i = 0;
	uint32_t	 n = 0;
	int		 r;

	mbuf_view(&b, p, len);
	/* Read: [bmsgs-count]. */
	vp = mb->msgs;
	r = dec_list_head(&b, n0, BMSG_LEN_MIN, &vp, &mb->capmsgs, sizeof(*m),
	    &n);
	mb->msgs = vp;
	if (r != 0)
		goto out;
	for (i = 0; i < n; i++) {
		m = &mb->msgs[n0 + i];
		memset(m, 0, sizeof(*m));
		/* Read: [bmsg-guid]. */
		if ((r = mbuf_get_guid(&b, &m->guid)) != 0 ||
		    /* Read: [bmsg-uid]. */
		    (r = mbuf_get_u32(&b, &m->uid[0])) != 0 ||
		    (r = mbuf_get_u32(&b, &m->uid[1])) != 0 ||
		    /* Read: [bmsg-flags]. */
		    (r = mbuf_get_u8(&b, &m->flags[0])) != 0 ||
		    (r = mbuf_get_u8(&b, &m->flags[1])) != 0 ||
		    /* Read: [bmsg-keywords]. */
		    (r = get_str(&b, STR_KW, &m->kw[0])) != 0 ||
		    (r = get_str(&b, STR_KW, &m->kw[1])) != 0 ||
		    (r = smsg_check(m, n0 + i == 0 ? NULL : m - 1)) != 0) {
			free(m->kw[0]);
			free(m->kw[1]);
			goto out;
		}
	}
 out:
	if ((r = dec_finish(REC_BASE_MSGS, &b, r)) != 0) {
		while (i > 0) {
			i--;
			free(mb->msgs[n0 + i].kw[0]);
			free(mb->msgs[n0 + i].kw[1]);
		}
		if (n0 == 0) {
			free(mb->msgs);
			mb->msgs = NULL;
			mb->capmsgs = 0;
		}
	} else
		mb->nmsgs = n0 + n;
	return r;
}

/*
 * Checks a BASE_REFS entry against the one before it (NULL for none):
 * the tag's bits, REF_NEXT's uids, a B uid unless REF_FULL, and the
 * order of BASE_MSGS.  Returns 0 or MSYNC_ERR_PROTO.
 */
static int
ref_check(const struct base_ref *e, const struct base_ref *prev)
{
	uint32_t	 pa = prev != NULL ? prev->sm.uid[0] : 0;
	uint32_t	 pb = prev != NULL ? prev->sm.uid[1] : 0;

	if ((e->tag & ~(REF_FULL | REF_SAME | REF_NEXT)) != 0 ||
	    ((e->tag & REF_FULL) && e->tag != REF_FULL))
		return MSYNC_ERR_PROTO;
	if (!(e->tag & REF_FULL) && e->sm.uid[1] == 0)
		return MSYNC_ERR_PROTO;
	if ((e->tag & REF_NEXT) && (pa == UINT32_MAX || pb == UINT32_MAX ||
	    e->sm.uid[0] != pa + 1 || e->sm.uid[1] != pb + 1))
		return MSYNC_ERR_PROTO;
	return smsg_check(&e->sm, prev != NULL ? &prev->sm : NULL);
}

/*
 * BASE_REFS: n base messages of one mailbox in BASE_MSGS order, prev the
 * entry before the first (NULL for none).  Returns 0 on success,
 * negative MSYNC_ERR_* on failure.
 */
int
proto_enc_base_refs(const struct base_ref *v, size_t n,
    const struct base_ref *prev, uint8_t **out, size_t *len)
{
	struct mbuf	*b = NULL;
	size_t		 i;
	int		 r;

	if ((r = enc_start(REC_BASE_REFS, &b, out, len)) != 0)
		return r;
	if (n > PROTO_LIST_CHUNK) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_u32(b, (uint32_t)n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		const struct state_msg *m = &v[i].sm;
		uint8_t		 t = v[i].tag;

		if ((r = ref_check(&v[i], i == 0 ? prev : &v[i - 1])) != 0 ||
		    (r = mbuf_put_u8(b, t)) != 0)
			goto out;
		if (t == REF_FULL) {
			if ((r = mbuf_put_guid(b, &m->guid)) != 0 ||
			    (r = mbuf_put_u32(b, m->uid[0])) != 0 ||
			    (r = mbuf_put_u32(b, m->uid[1])) != 0 ||
			    (r = mbuf_put_u8(b, m->flags[0])) != 0 ||
			    (r = mbuf_put_u8(b, m->flags[1])) != 0 ||
			    (r = put_str(b, STR_KW, m->kw[0])) != 0 ||
			    (r = put_str(b, STR_KW, m->kw[1])) != 0)
				goto out;
			continue;
		}
		if (!(t & REF_NEXT) &&
		    ((r = mbuf_put_u32(b, m->uid[0])) != 0 ||
		    (r = mbuf_put_u32(b, m->uid[1])) != 0))
			goto out;
		if (!(t & REF_SAME) &&
		    ((r = mbuf_put_u8(b, m->flags[0])) != 0 ||
		    (r = put_str(b, STR_KW, m->kw[0])) != 0))
			goto out;
	}
 out:
	return enc_finish(REC_BASE_REFS, b, r, out, len);
}

/* Frees the keywords of n entries and the array. */
void
base_refs_free(struct base_ref *v, size_t n)
{
	for (size_t i = 0; i < n && v != NULL; i++) {
		free(v[i].sm.kw[0]);
		free(v[i].sm.kw[1]);
	}
	free(v);
}

/*
 * Decodes a BASE_REFS record and appends its entries to *v (*n used,
 * *cap allocated); the first follows the last one there.  Entries that
 * are not REF_FULL come with a zero GUID and no B side, and with no A
 * flags or keywords when REF_SAME: the brain fills them in.  On failure
 * *v holds what it held.  Returns 0 on success, negative MSYNC_ERR_*
 * on failure.
 */
int
proto_dec_base_refs(const uint8_t *p, size_t len, struct base_ref **v,
    size_t *np, size_t *capp)
{
	struct mbuf	 b;
	struct base_ref	*e;
	void		*vp;
	size_t		 n0 = *np, i = 0;
	uint32_t	 n = 0;
	int		 r;

	mbuf_view(&b, p, len);
	/* Read: [refs-count]. */
	vp = *v;
	r = dec_list_head(&b, n0, REF_LEN_MIN, &vp, capp, sizeof(*e), &n);
	*v = vp;
	if (r != 0)
		goto out;
	for (i = 0; i < n; i++) {
		const struct base_ref *prev;

		e = &(*v)[n0 + i];
		prev = n0 + i == 0 ? NULL : e - 1;
		memset(e, 0, sizeof(*e));
		/* Read: [ref-tag]. */
		if ((r = mbuf_get_u8(&b, &e->tag)) != 0)
			goto out;
		if (e->tag == REF_FULL) {
			/* Read: [bmsg-guid], [bmsg-uid], [bmsg-flags],
			   [bmsg-keywords]. */
			if ((r = mbuf_get_guid(&b, &e->sm.guid)) != 0 ||
			    (r = mbuf_get_u32(&b, &e->sm.uid[0])) != 0 ||
			    (r = mbuf_get_u32(&b, &e->sm.uid[1])) != 0 ||
			    (r = mbuf_get_u8(&b, &e->sm.flags[0])) != 0 ||
			    (r = mbuf_get_u8(&b, &e->sm.flags[1])) != 0 ||
			    (r = get_str(&b, STR_KW, &e->sm.kw[0])) != 0 ||
			    (r = get_str(&b, STR_KW, &e->sm.kw[1])) != 0)
				goto bad;
		} else {
			if (e->tag & REF_NEXT) {
				if (prev != NULL && (prev->sm.uid[0] ==
				    UINT32_MAX || prev->sm.uid[1] ==
				    UINT32_MAX)) {
					r = MSYNC_ERR_PROTO;
					goto out;
				}
				e->sm.uid[0] = (prev != NULL ?
				    prev->sm.uid[0] : 0) + 1;
				e->sm.uid[1] = (prev != NULL ?
				    prev->sm.uid[1] : 0) + 1;
			} else if (
			    /* Read: [ref-uid]. */
			    (r = mbuf_get_u32(&b, &e->sm.uid[0])) != 0 ||
			    (r = mbuf_get_u32(&b, &e->sm.uid[1])) != 0)
				goto out;
			/* Read: [ref-flags], [ref-keywords]. */
			if (!(e->tag & REF_SAME) &&
			    ((r = mbuf_get_u8(&b, &e->sm.flags[0])) != 0 ||
			    (r = get_str(&b, STR_KW, &e->sm.kw[0])) != 0))
				goto bad;
		}
		if ((r = ref_check(e, prev)) != 0)
			goto bad;
		continue;
 bad:
		free(e->sm.kw[0]);
		free(e->sm.kw[1]);
		goto out;
	}
 out:
	if ((r = dec_finish(REC_BASE_REFS, &b, r)) != 0) {
		while (i > 0) {
			i--;
			free((*v)[n0 + i].sm.kw[0]);
			free((*v)[n0 + i].sm.kw[1]);
		}
		if (n0 == 0) {
			free(*v);
			*v = NULL;
			*capp = 0;
		}
	} else
		*np = n0 + n;
	return r;
}

/*
 * DIGEST: the plan's digest and its number of actions.  Returns 0 on
 * success, negative MSYNC_ERR_* on failure.
 */
int
proto_enc_digest(uint64_t digest, uint32_t nact, uint8_t **out, size_t *len)
{
	struct mbuf	*b = NULL;
	int		 r;

	if ((r = enc_start(REC_DIGEST, &b, out, len)) != 0)
		return r;
	if ((r = mbuf_put_u64(b, digest)) != 0 ||
	    (r = mbuf_put_u32(b, nact)) != 0)
		goto out;
 out:
	return enc_finish(REC_DIGEST, b, r, out, len);
}

int
proto_dec_digest(const uint8_t *p, size_t len, uint64_t *digest,
    uint32_t *nact)
{
	struct mbuf	 b;
	uint64_t	 d = 0;
	uint32_t	 n = 0;
	int		 r;

	*digest = 0;
	*nact = 0;
	mbuf_view(&b, p, len);
	/* Read: [digest-value]. */
	if ((r = mbuf_get_u64(&b, &d)) != 0)
		goto out;
	/* Read: [digest-nact]. */
	if ((r = mbuf_get_u32(&b, &n)) != 0)
		goto out;
 out:
	if ((r = dec_finish(REC_DIGEST, &b, r)) == 0) {
		*digest = d;
		*nact = n;
	}
	return r;
}

/*
 * MSG_BEGIN: the COPY action, the message's size and date.  Returns 0 on
 * success, negative MSYNC_ERR_* on failure.
 */
int
proto_enc_msg_begin(const struct rec_msg_begin *m, uint8_t **out,
    size_t *len)
{
	struct mbuf	*b = NULL;
	int		 r;

	if ((r = enc_start(REC_MSG_BEGIN, &b, out, len)) != 0)
		return r;
	if (m->size > MSYNC_MSG_SIZE_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_u32(b, m->act)) != 0 ||
	    (r = mbuf_put_u64(b, m->size)) != 0 ||
	    (r = mbuf_put_i64(b, m->date)) != 0)
		goto out;
 out:
	return enc_finish(REC_MSG_BEGIN, b, r, out, len);
}

int
proto_dec_msg_begin(const uint8_t *p, size_t len, struct rec_msg_begin *m)
{
	struct mbuf	 b;
	int		 r;

	memset(m, 0, sizeof(*m));
	mbuf_view(&b, p, len);
	/* Read: [begin-act]. */
	if ((r = mbuf_get_u32(&b, &m->act)) != 0)
		goto out;
	/* Read: [begin-size]. */
	if ((r = mbuf_get_u64(&b, &m->size)) != 0)
		goto out;
	if (m->size > MSYNC_MSG_SIZE_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	/* Read: [begin-date]. */
	if ((r = mbuf_get_i64(&b, &m->date)) != 0)
		goto out;
 out:
	if ((r = dec_finish(REC_MSG_BEGIN, &b, r)) != 0)
		memset(m, 0, sizeof(*m));
	return r;
}

/*
 * MSG_SKIP: the COPY action whose message could not be sent and why (a
 * negative MSYNC_ERR_*).  Returns 0 on success, negative MSYNC_ERR_* on
 * failure.
 */
int
proto_enc_msg_skip(uint32_t act, int32_t status, uint8_t **out, size_t *len)
{
	struct mbuf	*b = NULL;
	int		 r;

	if ((r = enc_start(REC_MSG_SKIP, &b, out, len)) != 0)
		return r;
	if (status == 0 || !status_ok(status)) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	if ((r = mbuf_put_u32(b, act)) != 0 ||
	    (r = mbuf_put_i32(b, status)) != 0)
		goto out;
 out:
	return enc_finish(REC_MSG_SKIP, b, r, out, len);
}

int
proto_dec_msg_skip(const uint8_t *p, size_t len, uint32_t *act,
    int32_t *status)
{
	struct mbuf	 b;
	uint32_t	 a = 0;
	int32_t		 st = 0;
	int		 r;

	*act = 0;
	*status = 0;
	mbuf_view(&b, p, len);
	/* Read: [skip-act]. */
	if ((r = mbuf_get_u32(&b, &a)) != 0)
		goto out;
	/* Read: [skip-status]. */
	if ((r = mbuf_get_i32(&b, &st)) != 0)
		goto out;
	if (st == 0 || !status_ok(st))
		r = MSYNC_ERR_PROTO;
 out:
	if ((r = dec_finish(REC_MSG_SKIP, &b, r)) == 0) {
		*act = a;
		*status = st;
	}
	return r;
}

/*
 * RESULT: the outcome of up to PROTO_LIST_CHUNK of B's actions.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
proto_enc_results(const struct rec_result *v, size_t n, uint8_t **out,
    size_t *len)
{
	struct mbuf	*b = NULL;
	size_t		 i;
	int		 r;

	if ((r = enc_start(REC_RESULT, &b, out, len)) != 0)
		return r;
	if (n > PROTO_LIST_CHUNK) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_u32(b, (uint32_t)n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (!status_ok(v[i].status)) {
			r = MSYNC_ERR_PROTO;
			goto out;
		}
		if ((r = mbuf_put_u32(b, v[i].act)) != 0 ||
		    (r = mbuf_put_u32(b, v[i].uid)) != 0 ||
		    (r = mbuf_put_i32(b, v[i].status)) != 0)
			goto out;
	}
 out:
	return enc_finish(REC_RESULT, b, r, out, len);
}

int
proto_dec_results(const uint8_t *p, size_t len, struct rec_result **out,
    size_t *np)
{
	struct mbuf	 b;
	struct rec_result *v = NULL;
	uint32_t	 n = 0, i;
	int		 r;

	*out = NULL;
	*np = 0;
	mbuf_view(&b, p, len);
	/* Read: [result-count]. */
	if ((r = mbuf_get_u32(&b, &n)) != 0)
		goto out;
	if (n > PROTO_LIST_CHUNK) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if (n > mbuf_len(&b) / RESULT_LEN) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		/* Read: [result-act]. */
		if ((r = mbuf_get_u32(&b, &v[i].act)) != 0 ||
		    /* Read: [result-uid]. */
		    (r = mbuf_get_u32(&b, &v[i].uid)) != 0 ||
		    /* Read: [result-status]. */
		    (r = mbuf_get_i32(&b, &v[i].status)) != 0)
			goto out;
		if (!status_ok(v[i].status)) {
			r = MSYNC_ERR_PROTO;
			goto out;
		}
	}
 out:
	if ((r = dec_finish(REC_RESULT, &b, r)) == 0) {
		*out = v;
		*np = n;
		v = NULL;	/* transferred */
	}
	free(v);
	return r;
}

/*
 * DONE: the sender's final status and, per mailbox of the plan, its
 * uidvalidity and modseq after the run.  Returns 0 on success, negative
 * MSYNC_ERR_* on failure.
 */
int
proto_enc_done(const struct rec_done *d, uint8_t **out, size_t *len)
{
	struct mbuf	*b = NULL;
	uint32_t	 i;
	int		 r;

	if ((r = enc_start(REC_DONE, &b, out, len)) != 0)
		return r;
	if (!status_ok(d->status)) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	if (d->n > MSYNC_MBOX_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if ((r = mbuf_put_i32(b, d->status)) != 0 ||
	    (r = mbuf_put_u32(b, d->n)) != 0)
		goto out;
	for (i = 0; i < d->n; i++)
		if ((r = mbuf_put_u32(b, d->mb[i].mbox)) != 0 ||
		    (r = mbuf_put_u32(b, d->mb[i].uidvalidity)) != 0 ||
		    (r = mbuf_put_u64(b, d->mb[i].modseq)) != 0)
			goto out;
 out:
	return enc_finish(REC_DONE, b, r, out, len);
}

int
proto_dec_done(const uint8_t *p, size_t len, struct rec_done *d)
{
	struct mbuf	 b;
	uint32_t	 i;
	int		 r;

	memset(d, 0, sizeof(*d));
	mbuf_view(&b, p, len);
	/* Read: [done-status]. */
	if ((r = mbuf_get_i32(&b, &d->status)) != 0)
		goto out;
	if (!status_ok(d->status)) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	/* Read: [done-count]. */
	if ((r = mbuf_get_u32(&b, &d->n)) != 0)
		goto out;
	if (d->n > MSYNC_MBOX_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if (d->n > mbuf_len(&b) / DONE_MBOX_LEN) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	if (d->n > 0 && (d->mb = calloc(d->n, sizeof(*d->mb))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < d->n; i++)
		/* Read: [done-mbox]. */
		if ((r = mbuf_get_u32(&b, &d->mb[i].mbox)) != 0 ||
		    (r = mbuf_get_u32(&b, &d->mb[i].uidvalidity)) != 0 ||
		    (r = mbuf_get_u64(&b, &d->mb[i].modseq)) != 0)
			goto out;
 out:
	if ((r = dec_finish(REC_DONE, &b, r)) != 0)
		rec_done_free(d);
	return r;
}

/* Frees what d holds and empties it.  Accepts NULL. */
void
rec_done_free(struct rec_done *d)
{
	if (d == NULL)
		return;
	free(d->mb);
	memset(d, 0, sizeof(*d));
}

/*
 * LOG (n = level 0..4) and ERROR (n = an MSYNC_ERR_* code, or 0) with a
 * line of text (NULL: empty).  The text is made fit to print first: cut to
 * PROTO_TEXT_MAX bytes, then control characters but tab and every byte
 * that is not part of a valid UTF-8 character (a character cut in two at
 * the end, too) replaced by '?'.  Returns 0 on success,
 * negative MSYNC_ERR_* on failure.
 */
int
proto_enc_text(int32_t n, const char *text, uint8_t **out, size_t *len)
{
	struct mbuf	*b = NULL;
	uint8_t		*t = NULL;
	size_t		 tlen, i, k;
	int		 r;

	if ((r = enc_start(REC_LOG, &b, out, len)) != 0)
		return r;
	if (n > PROTO_LOGLEVEL_MAX || n < PROTO_STATUS_MIN) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	tlen = text == NULL ? 0 : strnlen(text, PROTO_TEXT_MAX + 1);
	if (tlen > PROTO_TEXT_MAX)
		tlen = PROTO_TEXT_MAX;
	if ((t = malloc(tlen + 1)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	if (tlen > 0)
		memcpy(t, text, tlen);
	for (i = 0; i < tlen; i += k) {
		k = 1;
		if (t[i] < 0x80) {
			if ((t[i] < 0x20 && t[i] != '\t') || t[i] == 0x7f)
				t[i] = '?';
			continue;
		}
		if (t[i] >= 0xc2 && t[i] <= 0xdf)
			k = 2;
		else if (t[i] >= 0xe0 && t[i] <= 0xef)
			k = 3;
		else if (t[i] >= 0xf0 && t[i] <= 0xf4)
			k = 4;
		if (k == 1 || k > tlen - i || !mbuf_utf8_valid(t + i, k)) {
			t[i] = '?';
			k = 1;
		}
	}
	if ((r = mbuf_put_i32(b, n)) != 0 ||
	    (r = mbuf_put_string(b, t, tlen)) != 0)
		goto out;
 out:
	free(t);
	return enc_finish(REC_LOG, b, r, out, len);
}

int
proto_dec_text(const uint8_t *p, size_t len, int32_t *n, char **text)
{
	struct mbuf	 b;
	int32_t		 v = 0;
	char		*s = NULL;
	int		 r;

	*n = 0;
	*text = NULL;
	mbuf_view(&b, p, len);
	/* Read: [text-level]. */
	if ((r = mbuf_get_i32(&b, &v)) != 0)
		goto out;
	if (v > PROTO_LOGLEVEL_MAX || v < PROTO_STATUS_MIN) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	/* Read: [text-line]. */
	if ((r = get_str(&b, STR_TEXT, &s)) != 0)
		goto out;
 out:
	if ((r = dec_finish(REC_LOG, &b, r)) == 0) {
		*n = v;
		*text = s;
		s = NULL;	/* transferred */
	}
	free(s);
	return r;
}
