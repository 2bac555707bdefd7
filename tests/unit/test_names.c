/*
 * test_names.c — mailbox name validation, modified UTF-7 and the folder
 * directory encodings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "msync.h"
#include "names.h"
#include "store.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const char *const good_names[] = {
	"INBOX", "a", "A/B", "Sent Items", "Entwürfe", "a.b", "~peter/mail",
	"日本語/台北", "x/y/z", "&", "a&b", "..a", "a..", ".a", "a/.b",
	"emoji \xf0\x9f\x98\x80",
};

static const struct {
	const char	*name;
	size_t		 len;	/* 0: strlen */
} bad_names[] = {
	{ "", 0 }, { "/", 0 }, { "/a", 0 }, { "a/", 0 }, { "a//b", 0 },
	{ ".", 0 }, { "..", 0 }, { "a/..", 0 }, { "../a", 0 }, { "a/./b", 0 },
	{ "a\nb", 0 }, { "a\tb", 0 }, { "a\x7f", 0 }, { "\x1b[1m", 0 },
	{ "a\0b", 3 }, { "a\0", 2 },
	{ "\xc3", 0 }, { "\xc3\x28", 0 }, { "\xc0\xaf", 0 },	/* overlong */
	{ "\xe0\x80\xaf", 0 }, { "\xed\xa0\x80", 0 },		/* surrogate */
	{ "\xf4\x90\x80\x80", 0 }, { "\xff", 0 }, { "\x80", 0 },
	{ "\xc2\x85", 0 },					/* C1 NEL */
};

static void
test_valid(void **state)
{
	char	*big;
	size_t	 i;

	for (i = 0; i < LEN(good_names); i++)
		assert_true(names_valid(good_names[i], strlen(good_names[i])));
	for (i = 0; i < LEN(bad_names); i++) {
		size_t	len = bad_names[i].len ? bad_names[i].len :
		    strlen(bad_names[i].name);

		if (names_valid(bad_names[i].name, len))
			fail_msg("accepted bad name #%zu", i);
	}
	assert_false(names_valid(NULL, 0));
	/* Over-long. */
	assert_non_null(big = malloc(MSYNC_NAME_MAX + 2));
	memset(big, 'a', MSYNC_NAME_MAX + 1);
	big[MSYNC_NAME_MAX + 1] = '\0';
	assert_false(names_valid(big, MSYNC_NAME_MAX + 1));
	assert_true(names_valid(big, MSYNC_NAME_MAX));
	/* Too deep: "a/a/.../a" with DEPTH + 1 levels, and exactly DEPTH. */
	for (i = 0; i < MSYNC_NAME_DEPTH + 1; i++) {
		big[2 * i] = 'a';
		big[2 * i + 1] = '/';
	}
	big[2 * MSYNC_NAME_DEPTH + 1] = '\0';
	assert_false(names_valid(big, strlen(big)));
	big[2 * MSYNC_NAME_DEPTH - 1] = '\0';
	assert_true(names_valid(big, strlen(big)));
	free(big);
}

static const struct {
	const char	*utf8;
	const char	*mutf7;
} mutf7_cases[] = {
	{ "INBOX", "INBOX" },
	{ "Entwürfe", "Entw&APw-rfe" },
	{ "~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },
	{ "&", "&-" },
	{ "a&b&", "a&-b&-" },
	{ "&Jjo-!", "&-Jjo-!" },
	{ "☺!", "&Jjo-!" },
	{ "ü", "&APw-" },
	{ "üü", "&APwA,A-" },
	{ "ü&ü", "&APw-&-&APw-" },
	{ "\xf0\x9f\x98\x80", "&2D3eAA-" },	/* U+1F600, a surrogate pair */
	{ "Sent Items", "Sent Items" },
	{ "", "" },
};

static void
test_mutf7_roundtrip(void **state)
{
	char	*o;
	size_t	 i;

	for (i = 0; i < LEN(mutf7_cases); i++) {
		assert_int_equal(names_to_mutf7(mutf7_cases[i].utf8, &o), 0);
		assert_string_equal(o, mutf7_cases[i].mutf7);
		free(o);
		assert_int_equal(names_from_mutf7(mutf7_cases[i].mutf7, &o), 0);
		assert_string_equal(o, mutf7_cases[i].utf8);
		free(o);
	}
}

static const char *const bad_mutf7[] = {
	"&",		/* unterminated */
	"&APw",		/* unterminated */
	"&APx-",	/* non-zero padding bits */
	"&AGE-",	/* encoded printable ASCII 'a' */
	"&AAA-",	/* encoded NUL */
	"&2D0-",	/* lone high surrogate */
	"&3gA-",	/* lone low surrogate */
	"&2D3YPQ-",	/* high surrogate followed by high */
	"&APw/-",	/* '/' is not modified BASE64 */
	"&AP=-",	/* bad character */
	"&APwA-",	/* surplus sextet */
	"\xc3\xbc",	/* raw 8-bit */
	"a\tb",		/* control */
	"&&-",
};

static void
test_mutf7_bad(void **state)
{
	char	*o = (char *)1;
	size_t	 i;

	for (i = 0; i < LEN(bad_mutf7); i++) {
		if (names_from_mutf7(bad_mutf7[i], &o) != MSYNC_ERR_BADNAME)
			fail_msg("accepted bad mUTF-7 '%s'", bad_mutf7[i]);
		assert_null(o);
	}
	assert_int_equal(names_to_mutf7("\xc3", &o), MSYNC_ERR_BADNAME);
	assert_null(o);
	assert_int_equal(names_to_mutf7("\xed\xa0\x80", &o),
	    MSYNC_ERR_BADNAME);
}

static const struct {
	const char	*name;
	int		 layout;
	const char	*dir;		/* NULL: refused */
} dir_cases[] = {
	{ "INBOX", LAYOUT_MAILDIRPP, "" },
	{ "INBOX", LAYOUT_FS, "" },
	{ "A", LAYOUT_MAILDIRPP, ".A" },
	{ "A/B", LAYOUT_MAILDIRPP, ".A.B" },
	{ "INBOX/x", LAYOUT_MAILDIRPP, ".INBOX.x" },
	{ "Entwürfe/Alt", LAYOUT_MAILDIRPP, ".Entw&APw-rfe.Alt" },
	{ "a.b", LAYOUT_MAILDIRPP, NULL },
	{ "A/B", LAYOUT_FS, "A/B" },
	{ "a.b", LAYOUT_FS, "a.b" },
	{ "Entwürfe/Alt", LAYOUT_FS, "Entw&APw-rfe/Alt" },
	{ "A/cur", LAYOUT_FS, NULL },
	{ "new", LAYOUT_FS, NULL },
	{ "tmp/x", LAYOUT_FS, NULL },
	{ "msync.index", LAYOUT_FS, NULL },
	{ ".hidden", LAYOUT_FS, NULL },
	{ "A/../B", LAYOUT_FS, NULL },
	{ "/A", LAYOUT_MAILDIRPP, NULL },
	{ "", LAYOUT_MAILDIRPP, NULL },
};

static void
test_to_dir(void **state)
{
	char	*o;
	size_t	 i;
	int	 r;

	for (i = 0; i < LEN(dir_cases); i++) {
		r = names_to_dir(dir_cases[i].name, dir_cases[i].layout, &o);
		if (dir_cases[i].dir == NULL) {
			if (r != MSYNC_ERR_BADNAME)
				fail_msg("#%zu '%s' not refused", i,
				    dir_cases[i].name);
			assert_null(o);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(o, dir_cases[i].dir);
		free(o);
	}
}

static const struct {
	const char	*dirent;
	const char	*name;		/* NULL: refused */
} pp_cases[] = {
	{ ".A", "A" },
	{ ".A.B", "A/B" },
	{ ".Entw&APw-rfe.Alt", "Entwürfe/Alt" },
	{ ".INBOX.x", "INBOX/x" },
	{ ".Sent Items", "Sent Items" },
	{ ".INBOX", NULL },	/* ambiguous with the root */
	{ ".", NULL },
	{ "..", NULL },
	{ "A", NULL },
	{ "", NULL },
	{ "..A", NULL },
	{ ".A.", NULL },
	{ ".A..B", NULL },
	{ ".A.&APx-", NULL },
	{ ".a\nb", NULL },
	{ ".a/b", NULL },
	{ ".\xc3\xbc", NULL },
};

static void
test_from_maildirpp(void **state)
{
	char	*o, *back;
	size_t	 i;
	int	 r;

	for (i = 0; i < LEN(pp_cases); i++) {
		r = names_from_maildirpp(pp_cases[i].dirent, &o);
		if (pp_cases[i].name == NULL) {
			if (r != MSYNC_ERR_BADNAME)
				fail_msg("#%zu '%s' not refused", i,
				    pp_cases[i].dirent);
			assert_null(o);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(o, pp_cases[i].name);
		/* And back. */
		assert_int_equal(names_to_dir(o, LAYOUT_MAILDIRPP, &back), 0);
		assert_string_equal(back, pp_cases[i].dirent);
		free(back);
		free(o);
	}
}

static const struct {
	const char	*pat;
	const char	*name;
	int		 match;
} match_cases[] = {
	{ "*", "A/B", 1 },
	{ "%", "A/B", 0 },
	{ "%", "A", 1 },
	{ "A/%", "A/B", 1 },
	{ "A/%", "A/B/C", 0 },
	{ "A/*", "A/B/C", 1 },
	{ "A*", "A", 1 },
	{ "A*", "AB/C", 1 },
	{ "A%", "AB/C", 0 },
	{ "INBOX", "INBOX", 1 },
	{ "INBOX", "INBOXX", 0 },
	{ "", "", 1 },
	{ "", "a", 0 },
	{ "*a*b*c*", "xxaxxbxxcxx", 1 },
	{ "*a*b*c*d", "xxaxxbxxcxx", 0 },
	{ "%/%", "a/b", 1 },
	{ "a%b", "a/b", 0 },
	{ "**%**%**%**%**%**%**%**%**%x", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaay", 0 },
};

static void
test_match(void **state)
{
	size_t	i;

	for (i = 0; i < LEN(match_cases); i++)
		if (names_match(match_cases[i].pat, match_cases[i].name) !=
		    match_cases[i].match)
			fail_msg("match '%s' '%s'", match_cases[i].pat,
			    match_cases[i].name);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_mutf7_roundtrip),
		cmocka_unit_test(test_mutf7_bad),
		cmocka_unit_test(test_to_dir),
		cmocka_unit_test(test_from_maildirpp),
		cmocka_unit_test(test_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
