/*
 * test_proto.c — every record codec: a valid encoding of each record type
 * round-trips; every truncation fails cleanly; length and count fields of
 * 0xffffffff, one trailing byte, bad enum values, bad names and bad
 * keyword strings are refused; limits hold.
 *
 * The valid encodings double as the fuzz seeds and as golden files:
 * tests/unit/data/<rec>.bin holds each as a whole record (type u8, length
 * u32, payload).  When a file exists the encoding must equal it (a change
 * of the wire format needs a new protocol version); run with
 * MSYNC_WRITE_SEEDS=1 to (re)write them.  MSYNC_TEST_DATA overrides the
 * directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "msync.h"
#include "proto.h"
#include "state.h"
#include "proto_rt.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static struct guid
mkguid(uint8_t seed)
{
	struct guid	 g;
	size_t		 i;

	for (i = 0; i < sizeof(g.b); i++)
		g.b[i] = (uint8_t)(seed + i * 17);
	return g;
}

/* The valid records. */

static int
enc_hello(uint8_t **out, size_t *len)
{
	char		*inc[] = { "INBOX", "Work/*" }, *exc[] = { "Trash" };
	struct rec_hello h = {
		.mode = MODE_BACKUP, .src = SIDE_B,
		.opts = HELLO_DRY_RUN | HELLO_CREATE,
		.path = "/home/u/Maildir", .layout = 1,
		.include = inc, .ninclude = 2, .exclude = exc, .nexclude = 1,
	};

	return proto_enc_hello(&h, out, len);
}

static int
enc_hello_min(uint8_t **out, size_t *len)
{
	struct rec_hello h = { .mode = MODE_LIST, .path = "" };

	return proto_enc_hello(&h, out, len);
}

static int
enc_mbox(uint8_t **out, size_t *len)
{
	struct rec_mbox	 m = {
		.name = "Work/Projekte/\xc3\x9c", .guid = mkguid(1),
		.uidvalidity = { 1700000000, 0 }, .modseq = { 42, 0 },
		.unchanged = 0, .nmsgs = 3, .count = 3, .bytes = 12345,
	};

	return proto_enc_mbox(&m, out, len);
}

static int
enc_base_mbox(uint8_t **out, size_t *len)
{
	struct rec_mbox	 m = {
		.name = "INBOX", .guid = mkguid(2),
		.uidvalidity = { 1, 2 }, .modseq = { 3, UINT64_MAX },
		.unchanged = 1, .nmsgs = 2,
	};

	return proto_enc_mbox(&m, out, len);
}

static struct msg sample_msgs[] = {
	{ .uid = 1, .flags = 0, .kw = NULL, .size = 0, .date = 0 },
	{ .uid = 2, .flags = FLAG_SEEN | FLAG_FLAGGED,
	    .kw = "$Forwarded work", .size = 4096, .date = 1700000000 },
	{ .uid = 0xffffffff, .flags = FLAG_ALL, .kw = "$Label1",
	    .size = MSYNC_MSG_SIZE_MAX, .date = -1 },
};

static int
enc_msgs(uint8_t **out, size_t *len)
{
	sample_msgs[0].guid = mkguid(3);
	sample_msgs[1].guid = mkguid(4);
	sample_msgs[2].guid = mkguid(5);
	return proto_enc_msgs(sample_msgs, LEN(sample_msgs), out, len);
}

static int
enc_msgs_empty(uint8_t **out, size_t *len)
{
	return proto_enc_msgs(NULL, 0, out, len);
}

static int
enc_msgs_delta(uint8_t **out, size_t *len)
{
	struct msg_change v[] = {
		{ .op = CHANGE_GONE, .m = { .uid = 2 } },
		{ .op = CHANGE_FLAGS, .m = { .uid = 5, .flags = FLAG_SEEN,
		    .kw = "$Label1" } },
		{ .op = CHANGE_NEW, .m = { .uid = 9, .flags = FLAG_FLAGGED,
		    .size = 1234, .date = 1000000000 } },
	};

	v[2].m.guid = mkguid(11);
	return proto_enc_msgs_delta(v, LEN(v), out, len);
}

static int
enc_fprints(uint8_t **out, size_t *len)
{
	struct fprint_ent v[] = { { .uid = 3 }, { .uid = 4 }, { .uid = 70 } };

	v[0].fp = mkguid(21);
	v[1].fp = mkguid(22);
	v[2].fp = mkguid(21);	/* two messages, one fingerprint */
	return proto_enc_fprints(v, LEN(v), out, len);
}

static int
enc_base_refs(uint8_t **out, size_t *len)
{
	struct base_ref v[] = {
		{ .tag = REF_FULL, .sm = { .uid = { 0, 5 },
		    .flags = { 0, FLAG_SEEN }, .kw = { NULL, "junk" } } },
		{ .tag = REF_NEXT | REF_SAME, .sm = { .uid = { 1, 6 } } },
		{ .tag = REF_NEXT, .sm = { .uid = { 2, 7 },
		    .flags = { FLAG_SEEN }, .kw = { "$Label1" } } },
		{ .tag = REF_SAME, .sm = { .uid = { 9, 8 } } },
		{ .tag = 0, .sm = { .uid = { 10, 12 },
		    .flags = { FLAG_DRAFT } } },
	};

	v[0].sm.guid = mkguid(12);
	return proto_enc_base_refs(v, LEN(v), NULL, out, len);
}

static int
enc_base_msgs(uint8_t **out, size_t *len)
{
	struct state_msg v[] = {
		{ .uid = { 0, 5 }, .flags = { 0, FLAG_SEEN },
		    .kw = { NULL, "junk" } },
		{ .uid = { 1, 0 }, .flags = { FLAG_DRAFT, 0 } },
		{ .uid = { 2, 3 }, .flags = { FLAG_SEEN, FLAG_SEEN },
		    .kw = { "$Label1 work", "$Label1 work" } },
	};

	v[0].guid = mkguid(6);
	v[1].guid = mkguid(7);
	v[2].guid = mkguid(8);
	return proto_enc_base_msgs(v, LEN(v), out, len);
}

static int
enc_digest(uint8_t **out, size_t *len)
{
	return proto_enc_digest(0x0123456789abcdefULL, 77, out, len);
}

static int
enc_msg_begin(uint8_t **out, size_t *len)
{
	struct rec_msg_begin m = { .act = 5, .size = 1234, .date = 99 };

	return proto_enc_msg_begin(&m, out, len);
}

static int
enc_msg_skip(uint8_t **out, size_t *len)
{
	return proto_enc_msg_skip(9, MSYNC_ERR_NOTFOUND, out, len);
}

static int
enc_result(uint8_t **out, size_t *len)
{
	struct rec_result v[] = {
		{ .act = 3, .uid = 17, .status = 0 },
		{ .act = 4, .uid = 0, .status = MSYNC_ERR_IO },
	};

	return proto_enc_results(v, LEN(v), out, len);
}

static int
enc_done(uint8_t **out, size_t *len)
{
	struct rec_done_mbox v[] = {
		{ .mbox = 0, .uidvalidity = 1, .modseq = 10 },
		{ .mbox = 1, .uidvalidity = 2, .modseq = 0 },
	};
	struct rec_done	 d = { .status = MSYNC_ERR_STORE_CHANGED, .mb = v,
	    .n = LEN(v) };

	return proto_enc_done(&d, out, len);
}

static int
enc_log(uint8_t **out, size_t *len)
{
	return proto_enc_text(2, "copied 3 messages\tto 'Entw\xc3\xbcrfe'",
	    out, len);
}

static int
enc_error(uint8_t **out, size_t *len)
{
	return proto_enc_text(MSYNC_ERR_PROTO, "protocol error", out, len);
}

static int
enc_empty(uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	return 0;
}

static int
enc_data(uint8_t **out, size_t *len)
{
	static const char msg[] = "From: a@example.org\nSubject: hi\n\nbody\n";

	if ((*out = malloc(sizeof(msg) - 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	memcpy(*out, msg, sizeof(msg) - 1);
	*len = sizeof(msg) - 1;
	return 0;
}

static const struct rcase {
	const char	*name;		/* seed file: data/<name>.bin */
	uint8_t		 type;
	int		(*enc)(uint8_t **, size_t *);
} cases[] = {
	{ "hello", REC_HELLO, enc_hello },
	{ "hello-min", REC_HELLO, enc_hello_min },
	{ "base-mbox", REC_BASE_MBOX, enc_base_mbox },
	{ "base-msgs", REC_BASE_MSGS, enc_base_msgs },
	{ "base-refs", REC_BASE_REFS, enc_base_refs },
	{ "base-end", REC_BASE_END, enc_empty },
	{ "mbox", REC_MBOX, enc_mbox },
	{ "msgs", REC_MSGS, enc_msgs },
	{ "msgs-empty", REC_MSGS, enc_msgs_empty },
	{ "msgs-delta", REC_MSGS_DELTA, enc_msgs_delta },
	{ "fprints", REC_FPRINTS, enc_fprints },
	{ "list-end", REC_LIST_END, enc_empty },
	{ "digest", REC_DIGEST, enc_digest },
	{ "msg-begin", REC_MSG_BEGIN, enc_msg_begin },
	{ "msg-data", REC_MSG_DATA, enc_data },
	{ "msg-end", REC_MSG_END, enc_empty },
	{ "msg-skip", REC_MSG_SKIP, enc_msg_skip },
	{ "result", REC_RESULT, enc_result },
	{ "done", REC_DONE, enc_done },
	{ "log", REC_LOG, enc_log },
	{ "error", REC_ERROR, enc_error },
	{ "bye", REC_BYE, enc_empty },
};

/* A decoder's failure must be one of the documented codes. */
static void
assert_clean_failure(int r)
{
	assert_true(r == MSYNC_ERR_PROTO || r == MSYNC_ERR_TOOBIG ||
	    r == MSYNC_ERR_BADNAME);
}

/* Decodes and, on success, checks that the encoding is canonical. */
static int
check_decode(uint8_t type, const uint8_t *p, size_t len)
{
	uint8_t	*re = NULL;
	size_t	 relen = 0;
	int	 r;

	r = proto_rt(type, p, len, &re, &relen);
	if (r == 0) {
		assert_int_equal(relen, len);
		if (len > 0)
			assert_memory_equal(re, p, len);
	} else
		assert_clean_failure(r);
	free(re);
	return r;
}

static const char *
data_dir(void)
{
	const char	*d = getenv("MSYNC_TEST_DATA");

	return d != NULL ? d : "tests/unit/data";
}

/*
 * Writes the record as a seed file (MSYNC_WRITE_SEEDS set), or compares
 * it with the one there.
 */
static void
seed(const struct rcase *c, const uint8_t *p, size_t len)
{
	char		 path[1024];
	uint8_t		 hdr[5], *want = NULL;
	struct stat	 sb;
	FILE		*f;
	long		 n;

	snprintf(path, sizeof(path), "%s/%s.bin", data_dir(), c->name);
	hdr[0] = c->type;
	mbuf_set_be32(hdr + 1, (uint32_t)len);
	if (getenv("MSYNC_WRITE_SEEDS") != NULL) {
		(void)mkdir(data_dir(), 0755);
		assert_non_null(f = fopen(path, "wb"));
		assert_int_equal(fwrite(hdr, 1, 5, f), 5);
		if (len > 0)
			assert_int_equal(fwrite(p, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
		return;
	}
	if (stat(path, &sb) == -1 || (f = fopen(path, "rb")) == NULL)
		return;		/* run from elsewhere: nothing to compare */
	n = (long)sb.st_size;
	assert_int_equal(n, (long)(5 + len));
	assert_non_null(want = malloc((size_t)n));
	assert_int_equal(fread(want, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	assert_memory_equal(want, hdr, 5);
	if (len > 0)
		assert_memory_equal(want + 5, p, len);
	free(want);
}

static void
test_roundtrip(void **state)
{
	uint8_t	*p;
	size_t	 i, len;

	for (i = 0; i < LEN(cases); i++) {
		print_message("# %s\n", cases[i].name);
		p = NULL;
		assert_int_equal(cases[i].enc(&p, &len), 0);
		assert_true(len <= proto_max_len(cases[i].type));
		assert_int_equal(check_decode(cases[i].type, p, len), 0);
		seed(&cases[i], p, len);
		free(p);
	}
}

/* A few field-level checks that re-encoding alone would not catch. */
static void
test_fields(void **state)
{
	struct rec_hello h;
	struct rec_mbox	 m;
	struct msglist	 ml = { 0 };
	struct rec_done	 d;
	uint8_t		*p;
	size_t		 len;
	int32_t		 n;
	char		*text;

	assert_int_equal(enc_hello(&p, &len), 0);
	assert_int_equal(proto_dec_hello(p, len, &h), 0);
	assert_int_equal(h.mode, MODE_BACKUP);
	assert_int_equal(h.src, SIDE_B);
	assert_int_equal(h.opts, HELLO_DRY_RUN | HELLO_CREATE);
	assert_string_equal(h.path, "/home/u/Maildir");
	assert_int_equal(h.layout, 1);
	assert_int_equal(h.ninclude, 2);
	assert_string_equal(h.include[1], "Work/*");
	assert_int_equal(h.nexclude, 1);
	assert_string_equal(h.exclude[0], "Trash");
	rec_hello_free(&h);
	assert_null(h.path);
	rec_hello_free(NULL);
	free(p);

	assert_int_equal(enc_mbox(&p, &len), 0);
	assert_int_equal(proto_dec_mbox(p, len, &m), 0);
	assert_string_equal(m.name, "Work/Projekte/\xc3\x9c");
	assert_int_equal(m.uidvalidity[0], 1700000000);
	assert_true(m.bytes == 12345);
	rec_mbox_free(&m);
	free(p);

	assert_int_equal(enc_msgs(&p, &len), 0);
	assert_int_equal(proto_dec_msgs(p, len, &ml), 0);
	assert_int_equal(ml.n, 3);
	assert_null(ml.v[0].kw);
	assert_string_equal(ml.v[1].kw, "$Forwarded work");
	assert_int_equal(ml.v[2].uid, 0xffffffff);
	assert_true(ml.v[2].date == -1);
	assert_memory_equal(ml.v[1].guid.b, sample_msgs[1].guid.b, 16);
	msglist_free(&ml);
	free(p);

	assert_int_equal(enc_done(&p, &len), 0);
	assert_int_equal(proto_dec_done(p, len, &d), 0);
	assert_int_equal(d.status, MSYNC_ERR_STORE_CHANGED);
	assert_int_equal(d.n, 2);
	assert_true(d.mb[0].modseq == 10);
	rec_done_free(&d);
	free(p);

	assert_int_equal(enc_error(&p, &len), 0);
	assert_int_equal(proto_dec_text(p, len, &n, &text), 0);
	assert_int_equal(n, MSYNC_ERR_PROTO);
	assert_string_equal(text, "protocol error");
	free(text);
	free(p);
}

/* Every proper prefix of a valid payload fails and leaks nothing. */
static void
test_truncated(void **state)
{
	uint8_t	*p;
	size_t	 i, k, len;

	for (i = 0; i < LEN(cases); i++) {
		if (cases[i].enc == enc_empty || cases[i].enc == enc_data)
			continue;
		p = NULL;
		assert_int_equal(cases[i].enc(&p, &len), 0);
		for (k = 0; k < len; k++) {
			uint8_t *cut = malloc(k + 1);	/* exact, for ASan */

			assert_non_null(cut);
			memcpy(cut, p, k);
			assert_int_not_equal(check_decode(cases[i].type, cut,
			    k), 0);
			free(cut);
		}
		free(p);
	}
}

/* One trailing byte is an error, for every type. */
static void
test_trailing(void **state)
{
	uint8_t	*p, *q;
	size_t	 i, len;

	for (i = 0; i < LEN(cases); i++) {
		p = NULL;
		assert_int_equal(cases[i].enc(&p, &len), 0);
		assert_non_null(q = malloc(len + 1));
		if (len > 0)
			memcpy(q, p, len);
		q[len] = 0;
		if (cases[i].type == REC_MSG_DATA)
			assert_int_equal(check_decode(cases[i].type, q,
			    len + 1), 0);
		else
			assert_int_equal(proto_rt(cases[i].type, q, len + 1,
			    NULL, NULL), MSYNC_ERR_PROTO);
		free(q);
		free(p);
	}
}

/*
 * 0xffffffff in every 4-byte window: never a crash or a leak, and what
 * still decodes is canonical.  Then the known length and count fields
 * must be refused.
 */
static void
test_ffffffff(void **state)
{
	static const struct {
		const char	*name;
		size_t		 off;
	} fields[] = {
		{ "hello", 6 },		/* path length */
		{ "mbox", 0 },		/* name length */
		{ "msgs", 0 },		/* count */
		{ "msgs", 4 + 4 + 16 + 1 },	/* first keywords length */
		{ "base-msgs", 0 },	/* count */
		{ "result", 0 },	/* count */
		{ "done", 4 },		/* count */
		{ "log", 4 },		/* text length */
	};
	uint8_t	*p;
	size_t	 i, k, len;

	for (i = 0; i < LEN(cases); i++) {
		p = NULL;
		assert_int_equal(cases[i].enc(&p, &len), 0);
		for (k = 0; len >= 4 && k <= len - 4; k++) {
			uint8_t	 save[4];

			memcpy(save, p + k, 4);
			memset(p + k, 0xff, 4);
			(void)check_decode(cases[i].type, p, len);
			memcpy(p + k, save, 4);
		}
		for (k = 0; k < LEN(fields); k++) {
			if (strcmp(fields[k].name, cases[i].name) != 0)
				continue;
			memset(p + fields[k].off, 0xff, 4);
			print_message("# %s at %zu\n", fields[k].name,
			    fields[k].off);
			assert_int_equal(proto_rt(cases[i].type, p, len, NULL,
			    NULL), MSYNC_ERR_TOOBIG);
			free(p);
			p = NULL;
			assert_int_equal(cases[i].enc(&p, &len), 0);
		}
		free(p);
	}
}

/* Every byte changed a few ways: a small deterministic fuzz. */
static void
test_mutate(void **state)
{
	static const uint8_t vals[] = { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff };
	uint8_t	*p, save;
	size_t	 i, k, v;

	for (i = 0; i < LEN(cases); i++) {
		size_t len;

		p = NULL;
		assert_int_equal(cases[i].enc(&p, &len), 0);
		for (k = 0; k < len; k++) {
			save = p[k];
			for (v = 0; v < LEN(vals); v++) {
				p[k] = vals[v];
				(void)check_decode(cases[i].type, p, len);
			}
			p[k] = save;
		}
		free(p);
	}
}

/* Raw builders for payloads the encoders refuse to make. */

static uint8_t *
raw_hello(uint8_t mode, uint8_t src, uint32_t opts, const char *path,
    uint8_t layout, uint32_t ninc, const char *pat, size_t *len)
{
	struct mbuf	*b = mbuf_new(1 << 20);
	uint8_t		*p;
	uint32_t	 i;

	assert_non_null(b);
	assert_int_equal(mbuf_put_u8(b, mode), 0);
	assert_int_equal(mbuf_put_u8(b, src), 0);
	assert_int_equal(mbuf_put_u32(b, opts), 0);
	assert_int_equal(mbuf_put_cstring(b, path), 0);
	assert_int_equal(mbuf_put_u8(b, layout), 0);
	assert_int_equal(mbuf_put_u32(b, ninc), 0);
	for (i = 0; i < ninc && pat != NULL; i++)
		assert_int_equal(mbuf_put_cstring(b, pat), 0);
	assert_int_equal(mbuf_put_u32(b, 0), 0);
	assert_int_equal(mbuf_detach(b, &p, len), 0);
	mbuf_free(b);
	return p;
}

static uint8_t *
raw_mbox(const char *name, size_t namelen, uint8_t unchanged,
    uint32_t nmsgs, size_t *len)
{
	struct mbuf	*b = mbuf_new(1 << 20);
	struct guid	 g = mkguid(9);
	uint8_t		*p;

	assert_non_null(b);
	assert_int_equal(mbuf_put_string(b, name, namelen), 0);
	assert_int_equal(mbuf_put_guid(b, &g), 0);
	assert_int_equal(mbuf_put_u32(b, 1), 0);
	assert_int_equal(mbuf_put_u32(b, 0), 0);
	assert_int_equal(mbuf_put_u64(b, 1), 0);
	assert_int_equal(mbuf_put_u64(b, 0), 0);
	assert_int_equal(mbuf_put_u8(b, unchanged), 0);
	assert_int_equal(mbuf_put_u32(b, nmsgs), 0);
	assert_int_equal(mbuf_put_u32(b, 0), 0);
	assert_int_equal(mbuf_put_u64(b, 0), 0);
	assert_int_equal(mbuf_detach(b, &p, len), 0);
	mbuf_free(b);
	return p;
}

static uint8_t *
raw_msgs(uint32_t count, uint32_t uid, uint8_t flags, const char *kw,
    size_t kwlen, uint64_t size, size_t *len)
{
	struct mbuf	*b = mbuf_new(1 << 20);
	struct guid	 g = mkguid(10);
	uint8_t		*p;

	assert_non_null(b);
	assert_int_equal(mbuf_put_u32(b, count), 0);
	assert_int_equal(mbuf_put_u32(b, uid), 0);
	assert_int_equal(mbuf_put_guid(b, &g), 0);
	assert_int_equal(mbuf_put_u8(b, flags), 0);
	assert_int_equal(mbuf_put_string(b, kw, kwlen), 0);
	assert_int_equal(mbuf_put_u64(b, size), 0);
	assert_int_equal(mbuf_put_i64(b, 0), 0);
	assert_int_equal(mbuf_detach(b, &p, len), 0);
	mbuf_free(b);
	return p;
}

static void
test_bad_enums(void **state)
{
	static const struct {
		uint8_t		 mode, src, layout;
		uint32_t	 opts;
		int		 r;
	} hellos[] = {
		{ MODE_TWOWAY, SIDE_A, 0, 0, 0 },
		{ MODE_LIST, SIDE_B, 1, 0x3f, 0 },	/* 0x20: FPRINT */
		{ MODE_TWOWAY, SIDE_B, 2, 0x7f, 0 },	/* 0x40: MBOXO */
		{ MODE_LIST + 1, SIDE_A, 0, 0, MSYNC_ERR_PROTO },
		{ 0xff, SIDE_A, 0, 0, MSYNC_ERR_PROTO },
		{ MODE_TWOWAY, 2, 0, 0, MSYNC_ERR_PROTO },
		{ MODE_TWOWAY, SIDE_A, 4, 0, 0 },	/* imap */
		{ MODE_TWOWAY, SIDE_A, 5, 0, MSYNC_ERR_PROTO },
		{ MODE_TWOWAY, SIDE_A, 0, 0x80, MSYNC_ERR_PROTO },
		{ MODE_TWOWAY, SIDE_A, 0, 0x80000000, MSYNC_ERR_PROTO },
	};
	struct rec_hello h;
	struct msglist	 ml = { 0 };
	uint8_t		*p;
	size_t		 i, len;
	uint32_t	 act;
	int32_t		 st;

	for (i = 0; i < LEN(hellos); i++) {
		p = raw_hello(hellos[i].mode, hellos[i].src, hellos[i].opts,
		    "/x", hellos[i].layout, 0, NULL, &len);
		assert_int_equal(proto_dec_hello(p, len, &h), hellos[i].r);
		if (hellos[i].r != 0) {
			struct rec_hello bad = {
				.mode = hellos[i].mode, .src = hellos[i].src,
				.opts = hellos[i].opts,
				.layout = hellos[i].layout,
			};
			uint8_t *q = NULL;

			assert_null(h.path);
			assert_int_equal(proto_enc_hello(&bad, &q, &len),
			    hellos[i].r);
			assert_null(q);
		}
		rec_hello_free(&h);
		free(p);
	}

	p = raw_mbox("INBOX", 5, 4, 0, &len);	/* 3 = changes, the last */
	assert_int_equal(check_decode(REC_MBOX, p, len), MSYNC_ERR_PROTO);
	free(p);
	p = raw_mbox("INBOX", 5, 1, MSYNC_MSGS_MAX + 1, &len);
	assert_int_equal(check_decode(REC_MBOX, p, len), MSYNC_ERR_TOOBIG);
	free(p);

	/* flags, uid 0, size */
	p = raw_msgs(1, 1, 0x40, NULL, 0, 0, &len);
	assert_int_equal(proto_dec_msgs(p, len, &ml), MSYNC_ERR_PROTO);
	free(p);
	p = raw_msgs(1, 0, 0, NULL, 0, 0, &len);
	assert_int_equal(proto_dec_msgs(p, len, &ml), MSYNC_ERR_PROTO);
	free(p);
	p = raw_msgs(1, 1, 0, NULL, 0, MSYNC_MSG_SIZE_MAX + 1, &len);
	assert_int_equal(proto_dec_msgs(p, len, &ml), MSYNC_ERR_TOOBIG);
	free(p);
	p = raw_msgs(2, 1, 0, NULL, 0, 0, &len);	/* count lies */
	assert_int_equal(proto_dec_msgs(p, len, &ml), MSYNC_ERR_PROTO);
	free(p);
	assert_int_equal(ml.n, 0);
	assert_null(ml.v);

	/* statuses */
	p = NULL;
	assert_int_equal(proto_enc_msg_skip(1, 0, &p, &len), MSYNC_ERR_PROTO);
	assert_int_equal(proto_enc_msg_skip(1, 1, &p, &len), MSYNC_ERR_PROTO);
	assert_int_equal(proto_enc_msg_skip(1, -256, &p, &len),
	    MSYNC_ERR_PROTO);
	{
		static const uint8_t skip0[] = { 0, 0, 0, 1, 0, 0, 0, 0 };
		static const uint8_t skip1[] = { 0, 0, 0, 1, 0, 0, 0, 1 };

		assert_int_equal(proto_dec_msg_skip(skip0, 8, &act, &st),
		    MSYNC_ERR_PROTO);
		assert_int_equal(proto_dec_msg_skip(skip1, 8, &act, &st),
		    MSYNC_ERR_PROTO);
	}
	{
		struct rec_result res = { .act = 1, .status = 1 };
		struct rec_done	 d = { .status = 5 };

		assert_int_equal(proto_enc_results(&res, 1, &p, &len),
		    MSYNC_ERR_PROTO);
		assert_int_equal(proto_enc_done(&d, &p, &len),
		    MSYNC_ERR_PROTO);
		assert_null(p);
	}
	{
		static const uint8_t done[] = { 0, 0, 0, 1, 0, 0, 0, 0 };
		static const uint8_t log5[] = { 0, 0, 0, 5, 0, 0, 0, 0 };
		static const uint8_t logm[] = { 0xff, 0xff, 0xff, 0, 0, 0, 0,
		    0 };
		struct rec_done	 d;
		char		*text;

		assert_int_equal(proto_dec_done(done, 8, &d), MSYNC_ERR_PROTO);
		assert_int_equal(proto_dec_text(log5, 8, &st, &text),
		    MSYNC_ERR_PROTO);
		assert_null(text);
		assert_int_equal(proto_dec_text(logm, 8, &st, &text),
		    MSYNC_ERR_PROTO);
		assert_int_equal(proto_enc_text(5, "x", &p, &len),
		    MSYNC_ERR_PROTO);
	}
}

static const struct {
	const char	*name;
	size_t		 len;		/* 0: strlen */
} bad_names[] = {
	{ "../x", 0 }, { "/abs", 0 }, { "a\0b", 3 }, { "a\nb", 0 },
	{ "\x1b[31m", 0 }, { "", 0 }, { "a/", 0 }, { "a//b", 0 }, { "..", 0 },
	{ "a/../b", 0 }, { "\xc3\x28", 0 }, { "a\x7f", 0 },
};

static void
test_bad_names(void **state)
{
	struct rec_mbox	 m;
	char		 longname[MSYNC_NAME_MAX + 2];
	uint8_t		*p, *q;
	size_t		 i, len, n;

	for (i = 0; i < LEN(bad_names); i++) {
		n = bad_names[i].len ? bad_names[i].len :
		    strlen(bad_names[i].name);
		print_message("# bad name %zu\n", i);
		p = raw_mbox(bad_names[i].name, n, 0, 0, &len);
		assert_int_equal(proto_dec_mbox(p, len, &m),
		    MSYNC_ERR_BADNAME);
		assert_null(m.name);
		free(p);
		if (bad_names[i].len == 0) {
			struct rec_mbox	 bad = { .name =
			    (char *)bad_names[i].name };

			q = NULL;
			assert_int_equal(proto_enc_mbox(&bad, &q, &len),
			    MSYNC_ERR_BADNAME);
			assert_null(q);
		}
	}
	/* Too long: refused by length before it is looked at. */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	p = raw_mbox(longname, strlen(longname), 0, 0, &len);
	assert_int_equal(proto_dec_mbox(p, len, &m), MSYNC_ERR_TOOBIG);
	free(p);
	/* Exactly at the limit: fine (if names_valid agrees). */
	p = raw_mbox(longname, MSYNC_NAME_MAX, 0, 0, &len);
	assert_int_equal(proto_dec_mbox(p, len, &m), 0);
	assert_int_equal(strlen(m.name), MSYNC_NAME_MAX);
	rec_mbox_free(&m);
	free(p);
}

static void
test_keywords(void **state)
{
	static const struct {
		const char	*kw;
		size_t		 len;	/* 0: strlen */
		int		 r;
	} kws[] = {
		{ "", 0, 0 }, { "a", 0, 0 },
		{ "$Forwarded $Label1 work", 0, 0 }, { "A a", 0, 0 },
		{ "ab abc", 0, 0 }, { "\xc3\xa9t\xc3\xa9", 0, 0 },
		{ "b a", 0, MSYNC_ERR_PROTO }, { "a a", 0, MSYNC_ERR_PROTO },
		{ "abc ab", 0, MSYNC_ERR_PROTO },
		{ "a  b", 0, MSYNC_ERR_PROTO },
		{ " a", 0, MSYNC_ERR_PROTO }, { "a ", 0, MSYNC_ERR_PROTO },
		{ " ", 0, MSYNC_ERR_PROTO }, { "a\tb", 0, MSYNC_ERR_PROTO },
		{ "a\nb", 0, MSYNC_ERR_PROTO }, { "a\x7f", 0, MSYNC_ERR_PROTO },
		{ "a\0b", 3, MSYNC_ERR_PROTO }, { "\xc3\x28", 0,
		    MSYNC_ERR_PROTO },
	};
	struct msglist	 ml = { 0 };
	char		 buf[MSYNC_KWSTR_MAX * 2];
	uint8_t		*p;
	size_t		 i, len, n;

	for (i = 0; i < LEN(kws); i++) {
		n = kws[i].len ? kws[i].len : strlen(kws[i].kw);
		print_message("# keywords %zu\n", i);
		p = raw_msgs(1, 1, 0, kws[i].kw, n, 0, &len);
		assert_int_equal(check_decode(REC_MSGS, p, len), kws[i].r);
		free(p);
	}
	/* 64-byte name fine, 65 not. */
	memset(buf, 'k', MSYNC_KWNAME_MAX + 1);
	p = raw_msgs(1, 1, 0, buf, MSYNC_KWNAME_MAX, 0, &len);
	assert_int_equal(check_decode(REC_MSGS, p, len), 0);
	free(p);
	p = raw_msgs(1, 1, 0, buf, MSYNC_KWNAME_MAX + 1, 0, &len);
	assert_int_equal(check_decode(REC_MSGS, p, len), MSYNC_ERR_PROTO);
	free(p);
	/* 26 keywords fine, 27 not: "aa ab ac ..." */
	for (i = 0, n = 0; i < MSYNC_KW_MAX + 1; i++) {
		buf[n++] = 'a' + (char)(i / 26);
		buf[n++] = 'a' + (char)(i % 26);
		buf[n++] = ' ';
	}
	p = raw_msgs(1, 1, 0, buf, MSYNC_KW_MAX * 3 - 1, 0, &len);
	assert_int_equal(check_decode(REC_MSGS, p, len), 0);
	free(p);
	p = raw_msgs(1, 1, 0, buf, n - 1, 0, &len);
	assert_int_equal(check_decode(REC_MSGS, p, len), MSYNC_ERR_PROTO);
	free(p);
	/* Over MSYNC_KWSTR_MAX: refused by length. */
	memset(buf, 'a', sizeof(buf));
	p = raw_msgs(1, 1, 0, buf, MSYNC_KWSTR_MAX + 1, 0, &len);
	assert_int_equal(proto_dec_msgs(p, len, &ml), MSYNC_ERR_TOOBIG);
	free(p);
	{
		struct msg m = { .uid = 1, .kw = "b a" };

		p = NULL;
		assert_int_equal(proto_enc_msgs(&m, 1, &p, &len),
		    MSYNC_ERR_PROTO);
		assert_null(p);
	}
}

static void
test_max_len(void **state)
{
	unsigned	 t;

	assert_int_equal(proto_max_len(0), 0);
	assert_int_equal(proto_max_len(REC_TYPE_MAX + 1), 0);
	assert_int_equal(proto_max_len(255), 0);
	assert_string_equal(proto_rec_name(0), "unknown");
	assert_string_equal(proto_rec_name(255), "unknown");
	assert_string_equal(proto_rec_name(REC_MSG_DATA), "MSG_DATA");
	assert_int_equal(proto_max_len(REC_MSG_DATA), PROTO_DATA_MAX);
	assert_int_equal(proto_max_len(REC_BYE), 0);
	assert_int_equal(proto_max_len(REC_HELLO), 64 * 1024);
	assert_true(proto_max_len(REC_MBOX) < 4096);
	for (t = 1; t <= REC_TYPE_MAX; t++) {
		assert_string_not_equal(proto_rec_name((uint8_t)t), "unknown");
		/* Everything fits a u32 length, with room to spare. */
		assert_true(proto_max_len((uint8_t)t) < 16 * 1024 * 1024);
	}
}

/* Lists at their limits: the encoding fits the type's maximum. */
static void
test_limits(void **state)
{
	struct msg		*v;
	struct state_msg	*sv;
	struct rec_result	*rv;
	struct rec_hello	 h = { .path = "/p" };
	char			 kw[MSYNC_KWSTR_MAX + 1];
	char			*pats[PROTO_PATTERNS_MAX + 1];
	char			 pat[MSYNC_NAME_MAX + 1];
	uint8_t			*p;
	size_t			 i, n, len;

	/* The longest keyword string: 26 names of 64 bytes. */
	for (i = 0, n = 0; i < MSYNC_KW_MAX; i++) {
		memset(kw + n, 'a' + (char)i, MSYNC_KWNAME_MAX);
		n += MSYNC_KWNAME_MAX;
		kw[n++] = ' ';
	}
	kw[n - 1] = '\0';
	assert_non_null(v = calloc(PROTO_LIST_CHUNK + 1, sizeof(*v)));
	assert_non_null(sv = calloc(PROTO_LIST_CHUNK + 1, sizeof(*sv)));
	assert_non_null(rv = calloc(PROTO_LIST_CHUNK + 1, sizeof(*rv)));
	for (i = 0; i <= PROTO_LIST_CHUNK; i++) {
		v[i].uid = (uint32_t)i + 1;
		v[i].kw = kw;
		sv[i].uid[0] = sv[i].uid[1] = (uint32_t)i + 1;
		sv[i].kw[0] = sv[i].kw[1] = kw;
	}
	p = NULL;
	assert_int_equal(proto_enc_msgs(v, PROTO_LIST_CHUNK, &p, &len), 0);
	assert_true(len <= proto_max_len(REC_MSGS));
	assert_int_equal(check_decode(REC_MSGS, p, len), 0);
	free(p);
	assert_int_equal(proto_enc_msgs(v, PROTO_LIST_CHUNK + 1, &p, &len),
	    MSYNC_ERR_TOOBIG);
	assert_int_equal(proto_enc_base_msgs(sv, PROTO_LIST_CHUNK, &p, &len),
	    0);
	assert_true(len <= proto_max_len(REC_BASE_MSGS));
	assert_int_equal(check_decode(REC_BASE_MSGS, p, len), 0);
	free(p);
	assert_int_equal(proto_enc_base_msgs(sv, PROTO_LIST_CHUNK + 1, &p,
	    &len), MSYNC_ERR_TOOBIG);
	assert_int_equal(proto_enc_results(rv, PROTO_LIST_CHUNK, &p, &len),
	    0);
	assert_true(len <= proto_max_len(REC_RESULT));
	free(p);
	assert_int_equal(proto_enc_results(rv, PROTO_LIST_CHUNK + 1, &p,
	    &len), MSYNC_ERR_TOOBIG);
	free(v);
	free(sv);
	free(rv);

	/* Patterns: too many, or too many bytes, is TOOBIG. */
	memset(pat, 'p', MSYNC_NAME_MAX);
	pat[MSYNC_NAME_MAX] = '\0';
	for (i = 0; i <= PROTO_PATTERNS_MAX; i++)
		pats[i] = "INBOX";
	h.include = pats;
	h.ninclude = PROTO_PATTERNS_MAX;
	assert_int_equal(proto_enc_hello(&h, &p, &len), 0);
	assert_int_equal(check_decode(REC_HELLO, p, len), 0);
	free(p);
	h.ninclude = PROTO_PATTERNS_MAX + 1;
	assert_int_equal(proto_enc_hello(&h, &p, &len), MSYNC_ERR_TOOBIG);
	for (i = 0; i < 64; i++)
		pats[i] = pat;
	h.ninclude = 64;
	assert_int_equal(proto_enc_hello(&h, &p, &len), MSYNC_ERR_TOOBIG);
	assert_null(p);

	/* A DONE with every mailbox fits. */
	{
		struct rec_done d = { .n = MSYNC_MBOX_MAX };

		assert_non_null(d.mb = calloc(d.n, sizeof(*d.mb)));
		assert_int_equal(proto_enc_done(&d, &p, &len), 0);
		assert_true(len <= proto_max_len(REC_DONE));
		assert_int_equal(check_decode(REC_DONE, p, len), 0);
		free(p);
		d.n++;
		assert_int_equal(proto_enc_done(&d, &p, &len),
		    MSYNC_ERR_TOOBIG);
		free(d.mb);
	}
}

/* MSGS records append, and keep uids increasing across records. */
static void
test_msgs_append(void **state)
{
	struct msglist	 ml = { 0 };
	struct state_mbox sm = { 0 };
	uint8_t		*p;
	size_t		 len, i;

	assert_int_equal(enc_msgs(&p, &len), 0);
	assert_int_equal(proto_dec_msgs(p, len, &ml), 0);
	assert_int_equal(ml.n, 3);
	/* The same uids again: not increasing, refused, list unchanged. */
	assert_int_equal(proto_dec_msgs(p, len, &ml), MSYNC_ERR_PROTO);
	assert_int_equal(ml.n, 3);
	assert_string_equal(ml.v[1].kw, "$Forwarded work");
	msglist_free(&ml);
	assert_int_equal(proto_dec_msgs(p, len, &ml), 0);
	free(p);
	p = raw_msgs(1, 1, 0, NULL, 0, 0, &len);
	assert_int_equal(proto_dec_msgs(p, len, &ml), MSYNC_ERR_PROTO);
	assert_int_equal(ml.n, 3);
	msglist_free(&ml);
	/* A list at its limit takes no more (checked before any access). */
	ml.n = ml.cap = MSYNC_MSGS_MAX;
	assert_int_equal(proto_dec_msgs(p, len, &ml), MSYNC_ERR_TOOBIG);
	ml.n = ml.cap = 0;
	free(p);

	assert_int_equal(enc_base_msgs(&p, &len), 0);
	assert_int_equal(proto_dec_base_msgs(p, len, &sm), 0);
	assert_int_equal(sm.nmsgs, 3);
	assert_int_equal(proto_dec_base_msgs(p, len, &sm), MSYNC_ERR_PROTO);
	assert_int_equal(sm.nmsgs, 3);
	assert_string_equal(sm.msgs[0].kw[1], "junk");
	assert_null(sm.msgs[0].kw[0]);
	for (i = 0; i < sm.nmsgs; i++) {
		free(sm.msgs[i].kw[0]);
		free(sm.msgs[i].kw[1]);
	}
	free(sm.msgs);
	free(p);
	{
		/* both uids 0; decreasing pairs */
		struct state_msg bad[2] = {
			{ .uid = { 0, 0 } },
			{ .uid = { 2, 1 } },
		};

		p = NULL;
		assert_int_equal(proto_enc_base_msgs(bad, 1, &p, &len),
		    MSYNC_ERR_PROTO);
		bad[0].uid[0] = 2;
		bad[0].uid[1] = 1;
		assert_int_equal(proto_enc_base_msgs(bad, 2, &p, &len),
		    MSYNC_ERR_PROTO);
		assert_null(p);
	}
}

/* LOG text is made printable, cut to its limit; decoders are strict. */
/*
 * MSGS_DELTA and BASE_REFS (protocol 3): each row a record of one or two
 * entries, raw bytes, and what the decoder must say.
 */
static void
test_delta_refs(void **state)
{
	static const struct {
		uint8_t		 type;
		const char	*hex;	/* payload after the u32 count */
		uint32_t	 count;
		int		 r;
	} t[] = {
		/* GONE 5 */
		{ REC_MSGS_DELTA, "0000000005", 1, 0 },
		/* FLAGS 5 Seen, no keywords */
		{ REC_MSGS_DELTA, "01000000051000000000", 1, 0 },
		/* op 3 */
		{ REC_MSGS_DELTA, "0300000005", 1, MSYNC_ERR_PROTO },
		/* uid 0 */
		{ REC_MSGS_DELTA, "0000000000", 1, MSYNC_ERR_PROTO },
		/* GONE 5, GONE 5: not increasing */
		{ REC_MSGS_DELTA, "00000000050000000005", 2, MSYNC_ERR_PROTO },
		/* FLAGS with a bad flag bit */
		{ REC_MSGS_DELTA, "01000000054000000000", 1, MSYNC_ERR_PROTO },
		/* a count larger than the bytes allow */
		{ REC_MSGS_DELTA, "0000000005", 3, MSYNC_ERR_PROTO },
		/* NEXT|SAME from (0,0): uids 1, 1 */
		{ REC_BASE_REFS, "06", 1, 0 },
		/* SAME, uids 3, 4 */
		{ REC_BASE_REFS, "020000000300000004", 1, 0 },
		/* an unknown tag bit */
		{ REC_BASE_REFS, "0e", 1, MSYNC_ERR_PROTO },
		/* FULL with another bit */
		{ REC_BASE_REFS, "03", 1, MSYNC_ERR_PROTO },
		/* not FULL but no uid on B */
		{ REC_BASE_REFS, "020000000300000000", 1, MSYNC_ERR_PROTO },
		/* NEXT after uid 0xffffffff on A */
		{ REC_BASE_REFS, "02ffffffff0000000106", 2, MSYNC_ERR_PROTO },
		/* (3,4) then (3,4): not increasing */
		{ REC_BASE_REFS, "020000000300000004020000000300000004", 2,
		    MSYNC_ERR_PROTO },
		/* flags and keywords cut short */
		{ REC_BASE_REFS, "00000000030000000410", 1, MSYNC_ERR_PROTO },
	};
	uint8_t		 p[256];
	size_t		 i, k, n;
	unsigned	 x;

	(void)state;
	for (i = 0; i < LEN(t); i++) {
		print_message("# %zu: %s\n", i, t[i].hex);
		mbuf_set_be32(p, t[i].count);
		n = strlen(t[i].hex) / 2;
		assert_true(4 + n <= sizeof(p));
		for (k = 0; k < n; k++) {
			assert_int_equal(sscanf(t[i].hex + 2 * k, "%2x", &x), 1);
			p[4 + k] = (uint8_t)x;
		}
		assert_int_equal(check_decode(t[i].type, p, 4 + n), t[i].r);
	}
}

static void
test_text(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
	} texts[] = {
		{ "plain", "plain" }, { NULL, "" },
		{ "a\nb\x1b[1m", "a?b?[1m" },
		{ "tab\there", "tab\there" }, { "\xc3\xa9", "\xc3\xa9" },
		{ "bad \xc3\x28 utf8", "bad ?( utf8" }, { "\xff\xfe", "??" },
		{ "cut \xe2\x82", "cut ??" }, { "del\x7f", "del?" },
	};
	char	 big[5000], *text;
	uint8_t	*p;
	size_t	 i, len;
	int32_t	 n;

	for (i = 0; i < LEN(texts); i++) {
		assert_int_equal(proto_enc_text(1, texts[i].in, &p, &len), 0);
		assert_int_equal(proto_dec_text(p, len, &n, &text), 0);
		assert_int_equal(n, 1);
		assert_string_equal(text, texts[i].out);
		free(text);
		free(p);
	}
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(proto_enc_text(0, big, &p, &len), 0);
	assert_int_equal(proto_dec_text(p, len, &n, &text), 0);
	assert_int_equal(strlen(text), 4096);
	free(text);
	/* A 4097-byte text from the peer is refused. */
	{
		struct mbuf	*b = mbuf_new(1 << 20);
		uint8_t		*q;

		assert_int_equal(mbuf_put_i32(b, 0), 0);
		assert_int_equal(mbuf_put_string(b, big, 4097), 0);
		assert_int_equal(mbuf_detach(b, &q, &len), 0);
		assert_int_equal(proto_dec_text(q, len, &n, &text),
		    MSYNC_ERR_TOOBIG);
		free(q);
		mbuf_free(b);
	}
	free(p);
	{
		static const uint8_t nl[] = { 0, 0, 0, 1, 0, 0, 0, 3, 'a',
		    '\n', 'b' };

		assert_int_equal(proto_dec_text(nl, sizeof(nl), &n, &text),
		    MSYNC_ERR_PROTO);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_ffffffff),
		cmocka_unit_test(test_mutate),
		cmocka_unit_test(test_bad_enums),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_max_len),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_msgs_append),
		cmocka_unit_test(test_delta_refs),
		cmocka_unit_test(test_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
