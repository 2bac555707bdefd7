/*
 * test_imap_parse.c — IMAP response framing and parsing (src/imap/parse.c):
 * real server lines, every truncation, absurd sizes, body literals that
 * are to be streamed, and malformed input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msync.h"
#include "imap/parse.h"

/* Responses as Dovecot and others send them; each must parse. */
static const char *good[] = {
	"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
	    "LITERAL+ AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.\r\n",
	"a1 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n",
	"a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
	"* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n",
	"* LIST (\\HasNoChildren) \"/\" {9}\r\nA \"q\" }\\x\r\n",
	"* LIST (\\Noselect) NIL \"\"\r\n",
	"* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1733 "
	    "HIGHESTMODSEQ 9)\r\n",
	"* 3 EXISTS\r\n",
	"* 1 FETCH (UID 7 FLAGS (\\Seen $Label1) RFC822.SIZE 120 "
	    "INTERNALDATE \"06-Dec-2026 04:17:25 +0000\" MODSEQ (12))\r\n",
	"* 2 FETCH (UID 8 BODY[HEADER.FIELDS (MESSAGE-ID)] {5}\r\nab\r\n\r)\r\n",
	"* VANISHED (EARLIER) 1:3,5\r\n",
	"* ENABLED CONDSTORE QRESYNC\r\n",
	"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n",
	"* ID (\"name\" \"Dovecot\")\r\n",
	"* BYE Server shutting down.\r\n",
	"+ \r\n",
	"+\r\n",
	"+ cmVhZHk=\r\n",
	"* OK [UIDVALIDITY 1733] UIDs valid\r\n",
	"a3 OK [APPENDUID 1733 42] Append completed.\r\n",
	"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n",
	"* SEARCH\r\n",
	"* 4 FETCH (UID 9 BODY[]<0> \"\")\r\n",
	"* LIST (\\HasNoChildren) \"/\" \"A \\\"q\\\" \\\\x\"\n",
	/* QRESYNC, NAMESPACE (new entries go last: tests use indices). */
	"* NAMESPACE ((\"INBOX.\" \".\")) ((\"user.\" \".\")) "
	    "((\"shared.\" \".\" \"X-PARAM\" (\"a\")))\r\n",
	"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n",
	"* OK [NOMODSEQ] Sorry, this mailbox format doesn't support "
	    "modsequences\r\n",
	"* 49 FETCH (UID 117 FLAGS (\\Seen \\Answered) MODSEQ "
	    "(90060115194045001))\r\n",
	"* VANISHED 405,407,410,425\r\n",
};

static int
parse_str(const char *s, struct imap_resp *r)
{
	return imap_parse(s, strlen(s), r);
}

static void
test_good(void **state)
{
	struct imap_resp	 r;
	struct imap_frame	 f;
	size_t			 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&f, 0, sizeof(f));
		if (strstr(good[i], "BODY[]") == NULL) {
			assert_int_equal(imap_frame(good[i], strlen(good[i]),
			    &f), 0);
			assert_true(f.done);
			assert_int_equal(f.end, strlen(good[i]));
		}
		if (parse_str(good[i], &r) != 0)
			fail_msg("cannot parse: %s", good[i]);
		imap_resp_free(&r);
	}
}

static void
test_fields(void **state)
{
	struct imap_resp	 r;
	uint64_t		 n;
	size_t			 k;

	assert_int_equal(parse_str(good[0], &r), 0);
	assert_int_equal(r.type, IR_UNTAGGED);
	assert_string_equal(r.kind, "OK");
	assert_true(imap_code_is(&r, "CAPABILITY"));
	assert_string_equal(r.text, "Dovecot (Debian) ready.");
	imap_resp_free(&r);

	assert_int_equal(parse_str(good[2], &r), 0);
	assert_int_equal(r.type, IR_TAGGED);
	assert_string_equal(r.tag, "a2");
	assert_string_equal(r.kind, "NO");
	assert_string_equal(r.code, "AUTHENTICATIONFAILED");
	imap_resp_free(&r);

	/* A literal mailbox name with quotes, braces and a backslash. */
	assert_int_equal(parse_str(good[4], &r), 0);
	assert_string_equal(r.kind, "LIST");
	k = imap_kid(&r, 0, 2);
	assert_int_equal(r.v[k].type, IV_STRING);
	assert_int_equal(r.v[k].len, 9);
	assert_memory_equal(r.v[k].s, "A \"q\" }\\x", 9);
	imap_resp_free(&r);

	/* The same name quoted. */
	assert_int_equal(parse_str(good[23], &r), 0);
	k = imap_kid(&r, 0, 2);
	assert_string_equal(r.v[k].s, "A \"q\" \\x");
	imap_resp_free(&r);

	assert_int_equal(parse_str(good[5], &r), 0);
	assert_int_equal(r.v[imap_kid(&r, 0, 1)].type, IV_NIL);
	imap_resp_free(&r);

	assert_int_equal(parse_str(good[8], &r), 0);
	assert_true(r.has_num);
	assert_int_equal(r.num, 1);
	assert_string_equal(r.kind, "FETCH");
	k = imap_kid(&r, 0, 0);
	assert_int_equal(r.v[k].type, IV_LIST);
	assert_true(imap_is(&r, imap_kid(&r, k, 0), "uid"));
	assert_int_equal(imap_num(&r, imap_kid(&r, k, 1), UINT32_MAX, &n), 0);
	assert_int_equal(n, 7);
	assert_int_equal(r.v[imap_kid(&r, k, 3)].type, IV_LIST);
	assert_string_equal(r.v[imap_kid(&r, imap_kid(&r, k, 3), 1)].s,
	    "$Label1");
	assert_string_equal(r.v[imap_kid(&r, k, 7)].s,
	    "06-Dec-2026 04:17:25 +0000");
	assert_int_equal(imap_kid(&r, k, 10), 0);
	imap_resp_free(&r);

	/* A bracketed item with spaces is one atom. */
	assert_int_equal(parse_str(good[9], &r), 0);
	k = imap_kid(&r, 0, 0);
	assert_string_equal(r.v[imap_kid(&r, k, 2)].s,
	    "BODY[HEADER.FIELDS (MESSAGE-ID)]");
	assert_int_equal(r.v[imap_kid(&r, k, 3)].len, 5);
	imap_resp_free(&r);

	assert_int_equal(parse_str(good[16], &r), 0);
	assert_int_equal(r.type, IR_CONT);
	assert_string_equal(r.text, "");
	imap_resp_free(&r);
}

static const char *bad[] = {
	"\r\n",
	"*\r\n",
	"* \r\n",
	"a1\r\n",
	"a1 FETCH (UID 1)\r\n",		/* tagged data */
	"a1 BYE x\r\n",
	"* 99999999999 EXISTS\r\n",
	"* 1 FETCH (UID 1\r\n",		/* unclosed list */
	"* 1 FETCH (UID 1))\r\n",
	"* LIST () \"/\" \"abc\r\n",
	"* LIST () \"/\" \"a\\b\"\r\n",	/* bad escape */
	"* LIST () \"/\" {5}\r\nab\r\n",	/* literal past the end */
	"* LIST () \"/\" {}\r\n\r\n",
	"* LIST () \"/\" {99999999999999999999}\r\n\r\n",
	"* 1 FETCH (BODY[ 1)\r\n",
	"* 1 FETCH (UID 1)",		/* no line end */
	"* 1 FETCH (UID\0 1)\r\n",
};

static void
test_bad(void **state)
{
	struct imap_resp	 r;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t	 len = strlen(bad[i]);

		if (i == sizeof(bad) / sizeof(bad[0]) - 1)
			len = 21;	/* the one with the NUL */
		if (imap_parse(bad[i], len, &r) == 0)
			fail_msg("parsed: %s", bad[i]);
		imap_resp_free(&r);
	}
}

/* A response cut at every offset is incomplete, never done or an error. */
static void
test_frame_truncated(void **state)
{
	struct imap_frame	 f;
	size_t			 i, j;

	for (j = 0; j < sizeof(good) / sizeof(good[0]); j++) {
		size_t	 len = strlen(good[j]);

		if (strstr(good[j], "BODY[]") != NULL)
			continue;
		for (i = 0; i < len; i++) {
			memset(&f, 0, sizeof(f));
			if (imap_frame(good[j], i, &f) !=
			    MSYNC_ERR_INCOMPLETE)
				fail_msg("%zu bytes of: %s", i, good[j]);
			assert_false(f.done);
		}
	}
}

/* Bytes after the end of one response are not part of it. */
static void
test_frame_two(void **state)
{
	const char		*s = "* 1 EXISTS\r\n* 2 EXISTS\r\n";
	struct imap_frame	 f;

	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame(s, strlen(s), &f), 0);
	assert_int_equal(f.end, 12);
}

static void
test_frame_limits(void **state)
{
	struct imap_frame	 f;
	char			*big;
	const char		*lit = "* LIST () \"/\" {4294967295}\r\n";
	const char		*lit2 = "* LIST () \"/\" {262145}\r\n";
	const char		*body = "* 1 FETCH (BODY[] {99999999999}\r\n";

	/* A line that never ends. */
	big = malloc(IMAP_LINE_MAX + 10);
	assert_non_null(big);
	memset(big, 'a', IMAP_LINE_MAX + 10);
	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame(big, IMAP_LINE_MAX + 10, &f),
	    MSYNC_ERR_TOOBIG);
	free(big);
	/* Kept literals over their limit, before any byte of them arrives. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame(lit, strlen(lit), &f), MSYNC_ERR_TOOBIG);
	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame(lit2, strlen(lit2), &f), MSYNC_ERR_TOOBIG);
	/* A body over 4 GiB. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame(body, strlen(body), &f), MSYNC_ERR_TOOBIG);
	/* A literal header in a status response is text. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame("* OK {5}\r\n", 10, &f), 0);
	assert_true(f.done);
	/* A malformed literal header. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame("* LIST x}\r\n", 11, &f), MSYNC_ERR_PROTO);
}

/* A body literal stops the framer; splicing NIL in lets it go on. */
static void
test_frame_stream(void **state)
{
	const char		*in = "* 3 FETCH (UID 9 BODY[] {11}\r\n";
	const char		*rest = " FLAGS (\\Seen))\r\n";
	char			 buf[256];
	size_t			 len;
	struct imap_frame	 f;
	struct imap_resp	 r;
	size_t			 k;

	len = strlen(in);
	memcpy(buf, in, len);
	memcpy(buf + len, "hello", 5);	/* the first bytes of the body */
	len += 5;
	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame(buf, len, &f), 0);
	assert_true(f.stream);
	assert_int_equal(f.lit_size, 11);
	assert_int_equal(f.lit_hdr_end, strlen(in));
	/* The caller takes the 5 body bytes out, then splices. */
	len -= 5;
	imap_frame_splice(buf, &len, &f);
	assert_int_equal(imap_frame(buf, len, &f), MSYNC_ERR_INCOMPLETE);
	memcpy(buf + len, rest, strlen(rest));
	len += strlen(rest);
	assert_int_equal(imap_frame(buf, len, &f), 0);
	assert_true(f.done);
	assert_int_equal(f.end, len);
	assert_int_equal(imap_parse(buf, len, &r), 0);
	k = imap_kid(&r, 0, 0);
	assert_true(imap_is(&r, imap_kid(&r, k, 2), "BODY[]"));
	assert_int_equal(r.v[imap_kid(&r, k, 3)].type, IV_NIL);
	imap_resp_free(&r);

	/* A header fetch is kept, not streamed. */
	memset(&f, 0, sizeof(f));
	assert_int_equal(imap_frame(good[9], strlen(good[9]), &f), 0);
	assert_true(f.done);
}

static void
test_deep(void **state)
{
	char			 buf[256];
	struct imap_resp	 r;
	size_t			 i, o;

	o = (size_t)snprintf(buf, sizeof(buf), "* X ");
	for (i = 0; i < IMAP_DEPTH_MAX + 2; i++)
		buf[o++] = '(';
	for (i = 0; i < IMAP_DEPTH_MAX + 2; i++)
		buf[o++] = ')';
	memcpy(buf + o, "\r\n", 2);
	o += 2;
	assert_int_equal(imap_parse(buf, o, &r), MSYNC_ERR_TOOBIG);
	imap_resp_free(&r);
}

/* Sequence sets: ranges kept as ranges, bounds checked. */
static void
test_set(void **state)
{
	struct imap_range	*v;
	size_t			 n, i, o;
	char			*big;
	static const char *badset[] = { "", ",", "1,", ",1", "0", "1:0", "1::2",
	    "4294967296", "1:4294967296", "a", "1 2", "1,,2", "-1", ":3",
	    "99999999999999999999999" };

	assert_int_equal(imap_set_parse("1:3,5,9:*", 9, 12, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].lo, 1);
	assert_int_equal(v[0].hi, 3);
	assert_int_equal(v[1].lo, 5);
	assert_int_equal(v[1].hi, 5);
	assert_int_equal(v[2].lo, 9);
	assert_int_equal(v[2].hi, 12);
	assert_int_equal(imap_set_count(v, n), 8);
	free(v);
	/* Reversed, and the widest: one range, never expanded. */
	assert_int_equal(imap_set_parse("7:3", 3, 1, &v, &n), 0);
	assert_int_equal(v[0].lo, 3);
	assert_int_equal(v[0].hi, 7);
	free(v);
	assert_int_equal(imap_set_parse("1:4294967295", 12, 1, &v, &n), 0);
	assert_true(imap_set_count(v, n) == 4294967295ULL);
	free(v);
	for (i = 0; i < sizeof(badset) / sizeof(badset[0]); i++) {
		if (imap_set_parse(badset[i], strlen(badset[i]), 1, &v, &n) !=
		    MSYNC_ERR_PROTO)
			fail_msg("accepted: '%s'", badset[i]);
		assert_null(v);
	}
	/* More ranges than IMAP_SET_MAX. */
	assert_non_null(big = malloc((IMAP_SET_MAX + 1) * 2));
	for (i = 0, o = 0; i <= IMAP_SET_MAX; i++) {
		big[o++] = '1';
		big[o++] = ',';
	}
	assert_int_equal(imap_set_parse(big, o - 1, 1, &v, &n),
	    MSYNC_ERR_TOOBIG);
	assert_null(v);
	assert_int_equal(imap_set_parse(big, o - 3, 1, &v, &n), 0);
	assert_int_equal(n, IMAP_SET_MAX);
	free(v);
	free(big);
}

/* VANISHED (RFC 7162): both forms, and what is not one. */
static void
test_vanished(void **state)
{
	struct imap_resp	 r;
	struct imap_range	*v;
	size_t			 n, i;
	int			 earlier;
	static const char *badvan[] = {
		"* VANISHED\r\n",
		"* VANISHED (LATER) 1\r\n",
		"* VANISHED (EARLIER X) 1\r\n",
		"* VANISHED (EARLIER)\r\n",
		"* VANISHED 1 2\r\n",
		"* VANISHED \"1\"\r\n",
		"* VANISHED 0\r\n",
		"* 3 VANISHED 1\r\n",
		"* EXPUNGE 1\r\n",
	};

	assert_int_equal(parse_str("* VANISHED (EARLIER) 300:310,405,411\r\n",
	    &r), 0);
	assert_int_equal(imap_vanished(&r, &earlier, &v, &n), 0);
	assert_int_equal(earlier, 1);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].lo, 300);
	assert_int_equal(v[0].hi, 310);
	assert_int_equal(v[2].hi, 411);
	free(v);
	imap_resp_free(&r);
	assert_int_equal(parse_str("* vanished 405\r\n", &r), 0);
	assert_int_equal(imap_vanished(&r, &earlier, &v, &n), 0);
	assert_int_equal(earlier, 0);
	assert_int_equal(n, 1);
	free(v);
	imap_resp_free(&r);
	for (i = 0; i < sizeof(badvan) / sizeof(badvan[0]); i++) {
		if (parse_str(badvan[i], &r) == 0 &&
		    imap_vanished(&r, &earlier, &v, &n) == 0)
			fail_msg("taken as VANISHED: %s", badvan[i]);
		imap_resp_free(&r);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_frame_truncated),
		cmocka_unit_test(test_frame_two),
		cmocka_unit_test(test_frame_limits),
		cmocka_unit_test(test_frame_stream),
		cmocka_unit_test(test_deep),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_vanished),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
