/*
 * test_config.c — the config file parser: good files give the pairs and
 * groups they say, every error names its line and column, names follow
 * the rule that keeps them apart from locations, durations parse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "msync.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const char good[] =
    "# two accounts and a backup\n"
    "defaults\n"
    "\tlock-wait 30s\n"
    "\tcompress no\n"
    "\texclude Trash Spam\n"
    "\n"
    "pair work\n"
    "\ta ~/Maildir\n"
    "\tb me@mail.example.org:Maildir\n"
    "\tmode two-way\n"
    "\tmailbox INBOX \"Sent Items\" Work/*\n"
    "\trsh ssh -p 2222 -i \"~/.ssh/id work\"\n"
    "\tcompress yes\n"
    "\tevery 5m\n"
    "\tdebounce 500ms\n"
    "\n"
    "pair backup\r\n"
    "  a ~/Maildir\n"
    "  b /backup/Maildir\n"
    "  mode backup\n"
    "  force-deletes yes\n"
    "  bwlimit 2M\n"
    "  state-dir ~/.local/state/msync-backup\n"
    "group daily work backup\n"
    "group all daily work\n";

static void
test_good(void **state)
{
	struct config		*c = NULL;
	const struct pair	*p, **list = NULL;
	char			*why = NULL;
	size_t			 n = 0;

	assert_int_equal(config_parse("cfg", good, strlen(good), &c, &why),
	    0);
	assert_null(why);
	assert_int_equal(c->npair, 2);
	assert_int_equal(c->ngroup, 2);
	p = config_pair(c, "work");
	assert_non_null(p);
	assert_int_equal(p->line, 7);
	assert_string_equal(p->a, "~/Maildir");
	assert_string_equal(p->b, "me@mail.example.org:Maildir");
	assert_int_equal(p->mode, MODE_TWOWAY);
	assert_int_equal(p->nmailbox, 3);
	assert_string_equal(p->mailbox[1], "Sent Items");
	assert_string_equal(p->rsh, "ssh -p 2222 -i \"~/.ssh/id work\"");
	assert_int_equal(p->compress, 1);	/* its own beats defaults */
	assert_int_equal(p->every, 300);
	assert_int_equal(p->debounce_ms, 500);
	assert_int_equal(p->lock_wait, 30);	/* from defaults */
	assert_int_equal(p->nexclude, 2);
	p = config_pair(c, "backup");
	assert_non_null(p);
	assert_int_equal(p->mode, MODE_BACKUP);
	assert_int_equal(p->force_deletes, 1);
	assert_int_equal(p->compress, 0);
	assert_string_equal(p->bwlimit, "2M");
	assert_int_equal(p->every, -1);
	assert_null(config_pair(c, "daily"));
	assert_true(config_has(c, "daily"));
	assert_false(config_has(c, "nope"));

	/* Groups expand recursively, each pair once, in order. */
	assert_int_equal(config_select(c, "all", &list, &n, &why), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0]->name, "work");
	assert_string_equal(list[1]->name, "backup");
	assert_int_equal(config_select(c, "nope", &list, &n, &why),
	    MSYNC_ERR_NOTFOUND);
	free(list);
	config_free(c);
}

static void
test_empty(void **state)
{
	struct config	*c = NULL;
	char		*why = NULL;

	assert_int_equal(config_parse("cfg", "", 0, &c, &why), 0);
	assert_int_equal(c->npair, 0);
	config_free(c);
	assert_int_equal(config_parse("cfg", "# only\n\n  \n", 11, &c, &why),
	    0);
	config_free(c);
}

/* Each bad file and the "file:line:col: " its error must start with. */
static const struct {
	const char	*text;
	const char	*where;
	const char	*what;		/* a piece of the message */
} bad[] = {
	{ "a /x\n", "cfg:1:1: ", "outside a section" },
	{ "pair\n", "cfg:1:1: ", "needs a name" },
	{ "pair a/b\n", "cfg:1:6: ", "not a valid name" },
	{ "pair host:x\n", "cfg:1:6: ", "not a valid name" },
	{ "pair -x\n", "cfg:1:6: ", "not a valid name" },
	{ "pair x y\n", "cfg:1:8: ", "one name" },
	{ "pair x\n a /1\n b /2\npair x\n", "cfg:4:6: ", "defined twice" },
	{ "pair x\n a /1\n b /2\ngroup x x\n", "cfg:4:7: ",
	    "defined twice" },
	{ "pair x\n a /1\n\n  frob 1\n", "cfg:4:3: ", "unknown key 'frob'" },
	{ "pair x\n a /1\n a /2\n", "cfg:3:2: ", "given twice" },
	{ "pair x\n a\n", "cfg:2:2: ", "takes one value" },
	{ "pair x\n a /1 /2\n", "cfg:2:7: ", "quote a value" },
	{ "pair x\n a \"/1\n", "cfg:2:4: ", "unterminated quote" },
	{ "pair x\n a \"/1\"x\n", "cfg:2:8: ", "blank must follow" },
	{ "pair x\n a /a\"b\n", "cfg:2:6: ", "quote inside" },
	{ "pair x\n a \"\"\n", "cfg:2:4: ", "empty value" },
	{ "pair x\n mode sideways\n", "cfg:2:7: ", "two-way, backup" },
	{ "pair x\n ssh putty\n", "cfg:2:6: ", "openssh or libssh" },
	{ "pair x\n compress maybe\n", "cfg:2:11: ", "yes or no" },
	{ "pair x\n bwlimit fast\n", "cfg:2:10: ", "bwlimit" },
	{ "pair x\n bwlimit 5X\n", "cfg:2:10: ", "bwlimit" },
	{ "pair x\n every 0\n", "cfg:2:8: ", "duration" },
	{ "pair x\n every 5y\n", "cfg:2:8: ", "duration" },
	{ "pair x\n every 500ms\n", "cfg:2:8: ", "duration" },
	{ "pair x\n debounce -1\n", "cfg:2:11: ", "duration" },
	{ "pair x\n lock-wait soon\n", "cfg:2:12: ", "duration" },
	{ "pair x\n rsh\n", "cfg:2:2: ", "needs a command" },
	{ "pair x\n passcmd\n", "cfg:2:2: ", "needs a command" },
	{ "pair x\n password hunter2\n", "cfg:2:2: ", "passcmd" },
	{ "pair x\n mailbox\n", "cfg:2:2: ", "at least one pattern" },
	{ "pair x\n mailbox \"\"\n", "cfg:2:10: ", "empty 'mailbox'" },
	{ "pair x\n a /1\n", "cfg:1:1: ", "needs both 'a' and 'b'" },
	{ "pair x\n b /1\n", "cfg:1:1: ", "needs both 'a' and 'b'" },
	{ "defaults\n a /1\n", "cfg:2:2: ", "belongs in a pair" },
	{ "defaults x\n", "cfg:1:10: ", "takes no value" },
	{ "pair x\n a /1\n b /2\ndefaults\n", "cfg:4:1: ",
	    "before the first pair" },
	{ "group g\n", "cfg:1:1: ", "no members" },
	{ "group g a/b\n", "cfg:1:9: ", "not a valid name" },
	{ "group g nope\n", "cfg:1:1: ", "neither a pair nor a group" },
	{ "pair x\n a /1\n b /2\ngroup g x g\n", "cfg:4:1: ",
	    "contains itself" },
	{ "pair x\n a /1\n b /2\ngroup g h\ngroup h x g\n", "cfg:4:1: ",
	    "contains itself" },
	{ "pair x\n a /1\x01\n", "cfg:2:6: ", "control character" },
	{ "pair x\n\n\n\n\n b /\x1b[1m\n", "cfg:6:5: ", "control character" },
};

static void
test_bad(void **state)
{
	for (size_t i = 0; i < LEN(bad); i++) {
		struct config	*c = NULL;
		char		*why = NULL;
		int		 r;

		r = config_parse("cfg", bad[i].text, strlen(bad[i].text), &c,
		    &why);
		if (r != MSYNC_ERR_USAGE || c != NULL || why == NULL)
			fail_msg("case %zu ('%s'): r=%d", i, bad[i].text, r);
		if (strncmp(why, bad[i].where, strlen(bad[i].where)) != 0 ||
		    strstr(why, bad[i].what) == NULL)
			fail_msg("case %zu: got '%s', want '%s...%s'", i, why,
			    bad[i].where, bad[i].what);
		free(why);
	}
}

/* A NUL inside the text, an over-long line, an over-large file. */
static void
test_bad_bytes(void **state)
{
	struct config	*c = NULL;
	char		*why = NULL, *big;
	const char	 nul[] = "pair x\n a /1\0\n";

	assert_int_equal(config_parse("cfg", nul, sizeof(nul) - 1, &c, &why),
	    MSYNC_ERR_USAGE);
	assert_non_null(strstr(why, "cfg:2:6: a NUL byte"));
	free(why);

	big = malloc(CONFIG_SIZE_MAX + 2);
	assert_non_null(big);
	memset(big, '#', CONFIG_LINE_MAX + 1);
	assert_int_equal(config_parse("cfg", big, CONFIG_LINE_MAX + 1, &c,
	    &why), MSYNC_ERR_USAGE);
	assert_non_null(strstr(why, "cfg:1:"));
	assert_non_null(strstr(why, "longer than"));
	free(why);
	memset(big, '\n', CONFIG_SIZE_MAX + 1);
	assert_int_equal(config_parse("cfg", big, CONFIG_SIZE_MAX + 1, &c,
	    &why), MSYNC_ERR_USAGE);
	assert_non_null(strstr(why, "larger than"));
	free(why);
	free(big);
}

static void
test_names(void **state)
{
	const char *ok[] = { "work", "a", "Work-2", "x.y", "my_pair", "0" };
	const char *no[] = { "", "a/b", "h:p", ".x", "-x", "a b", "ä",
	    "a\n", "~x",
	    /* 65 characters: one over the limit */
	    ("0123456789012345678901234567890123456789012345678901234567890"
	    "1234") };

	for (size_t i = 0; i < LEN(ok); i++)
		if (!config_name_valid(ok[i]))
			fail_msg("'%s' should be a name", ok[i]);
	for (size_t i = 0; i < LEN(no); i++)
		if (config_name_valid(no[i]))
			fail_msg("'%s' should not be a name", no[i]);
}

static void
test_duration(void **state)
{
	int	 v;

	assert_int_equal(config_duration("90", 0, &v), 0);
	assert_int_equal(v, 90);
	assert_int_equal(config_duration("5m", 0, &v), 0);
	assert_int_equal(v, 300);
	assert_int_equal(config_duration("2h", 0, &v), 0);
	assert_int_equal(v, 7200);
	assert_int_equal(config_duration("1d", 0, &v), 0);
	assert_int_equal(v, 86400);
	assert_int_equal(config_duration("250ms", 1, &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(config_duration("2s", 1, &v), 0);
	assert_int_equal(v, 2000);
	assert_int_equal(config_duration("250ms", 0, &v), -1);
	assert_int_equal(config_duration("", 0, &v), -1);
	assert_int_equal(config_duration("-1", 0, &v), -1);
	assert_int_equal(config_duration("1w", 0, &v), -1);
	assert_int_equal(config_duration("99999999999999999999", 0, &v), -1);
	assert_int_equal(config_duration("30d", 1, &v), -1); /* > INT_MAX ms */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_bad_bytes),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_duration),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
