/*
 * test_dconf.c — msyncd.conf, the secrets file, the client's greeting
 * (dconf.c) and the module-path confinement (dpath.c).  The daemon
 * itself is tested end to end in tests/integration/t25xx.
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
#include <unistd.h>

#include "msync.h"
#include "dconf.h"
#include "dpath.h"
#include "s2s.h"

static const char good[] =
    "# global\n"
    "address = 127.0.0.1\n"
    "Port = 9000\n"
    "user = nobody\n"
    "cert = /c.pem\n"
    "key = /k.pem\n"
    "client ca = /ca.pem\n"
    "secrets file = /s\n"
    "max memory = 64M\n"
    "auth delay = 0.25\n"
    "max_connections = 5\n"
    "[mail]\n"
    "path = /srv/%u/Maildir\n"
    "users = alice, bob\n"
    "read only = no\n"
    "auth = any\n"
    "  ; a comment\n"
    "[backup]\r\n"
    "path = /srv/mail\n"
    "users = *\n";

static int
parse(const char *text, struct dconf *c, char *err)
{
	return dconf_parse(text, strlen(text), c, err, 256);
}

static void
test_good(void **state)
{
	struct dconf		 c;
	const struct dmodule	*m;
	char			 err[256], *root = NULL;

	(void)state;
	assert_int_equal(parse(good, &c, err), 0);
	assert_int_equal(c.port, 9000);
	assert_int_equal(c.max_conn, 5);
	assert_int_equal(c.auth_delay_ms, 250);
	assert_true(c.max_memory == 64ULL * 1024 * 1024);
	assert_int_equal(c.nmods, 2);
	assert_non_null(m = dconf_module(&c, "mail"));
	assert_int_equal(m->read_only, 0);
	assert_int_equal(m->auth, DAUTH_SECRET | DAUTH_CERT);
	assert_true(dconf_user_allowed(m, "bob"));
	assert_false(dconf_user_allowed(m, "carol"));
	assert_int_equal(dconf_module_root(m, "alice", &root), 0);
	assert_string_equal(root, "/srv/alice/Maildir");
	free(root);
	assert_int_not_equal(dconf_module_root(m, "../x", &root), 0);
	assert_non_null(m = dconf_module(&c, "backup"));
	assert_int_equal(m->read_only, 1);	/* the default */
	assert_int_equal(m->auth, DAUTH_SECRET);
	assert_true(dconf_user_allowed(m, "anyone"));
	assert_null(dconf_module(&c, "nope"));
	dconf_free(&c);
}

static void
test_bad(void **state)
{
	static const char *bad[] = {
		"",					/* no module */
		"[m]\npath = /x\n",			/* no users */
		"[m]\nusers = a\n",			/* no path */
		"port = 0\n[m]\npath = /x\nusers = a\n",
		"bogus = 1\n[m]\npath = /x\nusers = a\n",
		"[m]\npath = relative\nusers = a\n",
		"[m]\npath = /a/../b\nusers = a\n",
		"[m]\npath = /a/%u/%u\nusers = a\n",
		"[m]\npath = /a%ub\nusers = a\n",
		"[m]\npath = /x\nusers = a/b\n",
		"[../m]\npath = /x\nusers = a\n",
		"[m]\npath = /x\nusers = a\n[m]\npath = /y\nusers = a\n",
		"[m]\npath = /x\nusers = a\nauth = cert\n",	/* no client ca */
		"[m]\npath = /x\nusers = a\nread only = maybe\n",
		"max memory = 1K\n[m]\npath = /x\nusers = a\n",
		"no equals sign\n",
	};
	struct dconf	 c;
	char		 err[256];
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (parse(bad[i], &c, err) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
	}
	assert_int_not_equal(parse("a = b\n", &c, err), 0);
	assert_non_null(strstr(err, "line 1"));
}

static void
test_secrets(void **state)
{
	static const char s[] = "alice:s3cret\n# c\n\nbob:two:colons\r\n";
	struct dconf	 c;
	char		 err[256];

	(void)state;
	dconf_init(&c);
	assert_int_equal(dconf_parse_secrets(s, strlen(s), &c, err, 256), 0);
	assert_string_equal(dconf_secret(&c, "alice"), "s3cret");
	assert_string_equal(dconf_secret(&c, "bob"), "two:colons");
	assert_null(dconf_secret(&c, "carol"));
	dconf_free(&c);
	dconf_init(&c);
	assert_int_not_equal(dconf_parse_secrets("a:x\na:y\n", 8, &c, err,
	    256), 0);
	dconf_free(&c);
	dconf_init(&c);
	assert_int_not_equal(dconf_parse_secrets("nocolon\n", 8, &c, err,
	    256), 0);
	dconf_free(&c);
}

static void
test_hello(void **state)
{
	struct dhello	 h;

	(void)state;
	assert_int_equal(dhello_parse("MSYNCD/1 mail alice", "SECRET a b",
	    &h), 0);
	assert_string_equal(h.module, "mail");
	assert_string_equal(h.user, "alice");
	assert_string_equal(h.secret, "a b");
	assert_false(h.cert);
	assert_int_equal(dhello_parse("MSYNCD/1 mail alice", "CERT", &h), 0);
	assert_true(h.cert);
	assert_int_not_equal(dhello_parse("MSYNCD/2 mail alice", "CERT", &h),
	    0);
	assert_int_not_equal(dhello_parse("MSYNCD/1 ../x alice", "CERT", &h),
	    0);
	assert_int_not_equal(dhello_parse("MSYNCD/1 mail", "CERT", &h), 0);
	assert_int_not_equal(dhello_parse("MSYNCD/1 mail alice extra",
	    "CERT", &h), 0);
	assert_int_not_equal(dhello_parse("MSYNCD/1 mail alice", "SECRET ",
	    &h), 0);
	assert_int_not_equal(dhello_parse("MSYNCD/1 mail alice",
	    "SECRET a\tb", &h), 0);
}

static void
test_hello_run(void **state)
{
	struct dhello	 h;

	(void)state;
	assert_int_equal(dhello_parse("MSYNCD/1 mail alice RUN", "CERT", &h),
	    0);
	assert_true(h.run);
	assert_string_equal(h.user, "alice");
	assert_int_equal(dhello_parse("MSYNCD/1 mail alice", "CERT", &h), 0);
	assert_false(h.run);
	assert_int_not_equal(dhello_parse("MSYNCD/1 mail alice RUN x",
	    "CERT", &h), 0);
	assert_int_not_equal(dhello_parse("MSYNCD/1 mail alice run",
	    "CERT", &h), 0);
}

/* The RUN line: what is encoded comes back; what is not allowed fails. */
static void
test_s2s_run(void **state)
{
	struct s2s_run	 r, back;
	char		*inc[] = { "Lists/*", "a b%c" }, *exc[] = { "Junk" };
	char		*line = NULL, big[S2S_VALUE_MAX + 2];
	const char	*tail = " dry=0 force=0 full=0 stats=0 v=1 z=1 "
			    "timeout=300 lockwait=10 bwlimit=0 a=x la=0 b=y lb=0 "
			    "other=z";
	char		 buf[1024];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.mode = MODE_ONEWAY;
	r.dry_run = r.full = r.compress = 1;
	r.verbose = 2;
	r.timeout = 60;
	r.lock_wait = 5;
	r.bwlimit = 123456;
	r.path_a = "Mail dir/sub";
	r.layout_a = 1;
	r.path_b = "%u/x";
	r.other = "msyncs://bob@h:1/m;layout=fs";
	r.include = inc;
	r.ninclude = 2;
	r.exclude = exc;
	r.nexclude = 1;
	assert_int_equal(s2s_encode(&r, &line), 0);
	assert_null(strchr(line, '\n'));
	assert_int_equal(s2s_parse(line, &back), 0);
	assert_int_equal(back.mode, MODE_ONEWAY);
	assert_int_equal(back.dry_run, 1);
	assert_int_equal(back.force_deletes, 0);
	assert_int_equal(back.verbose, 2);
	assert_int_equal(back.timeout, 60);
	assert_int_equal(back.bwlimit, 123456);
	assert_string_equal(back.path_a, "Mail dir/sub");
	assert_int_equal(back.layout_a, 1);
	assert_string_equal(back.path_b, "%u/x");
	assert_string_equal(back.other, r.other);
	assert_int_equal(back.ninclude, 2);
	assert_string_equal(back.include[1], "a b%c");
	assert_string_equal(back.exclude[0], "Junk");
	s2s_free(&back);
	free(line);

	/* The minimal line parses; each damage to it does not. */
	snprintf(buf, sizeof(buf), "RUN mode=backup%s", tail);
	assert_int_equal(s2s_parse(buf, &back), 0);
	s2s_free(&back);
	assert_int_not_equal(s2s_parse("RUN mode=backup", &back), 0);
	snprintf(buf, sizeof(buf), "RUN mode=backup%s x=", tail);
	assert_int_not_equal(s2s_parse(buf, &back), 0);	/* empty pattern */
	snprintf(buf, sizeof(buf), "RUN mode=backup%s dry=1", tail);
	assert_int_not_equal(s2s_parse(buf, &back), 0);	/* repeated */
	snprintf(buf, sizeof(buf), "RUN mode=backup%s state=%%2F", tail);
	assert_int_not_equal(s2s_parse(buf, &back), 0);	/* unknown */
	snprintf(buf, sizeof(buf), "RUN mode=backup%s m=a%%0Ab", tail);
	assert_int_not_equal(s2s_parse(buf, &back), 0);	/* control */
	snprintf(buf, sizeof(buf), "RUN mode=backup%s m=a%%4", tail);
	assert_int_not_equal(s2s_parse(buf, &back), 0);	/* cut escape */
	snprintf(buf, sizeof(buf), "RUN mode=backup%s m=a%%zz", tail);
	assert_int_not_equal(s2s_parse(buf, &back), 0);
	snprintf(buf, sizeof(buf), "RUN mode=backup %s", tail);
	assert_int_not_equal(s2s_parse(buf, &back), 0);	/* two spaces */
	snprintf(buf, sizeof(buf), "RUN mode=backup%s", tail);
	buf[strlen(buf) - 1] = '\0';
	strcat(buf, "z timeout=99999999999999999999999");
	assert_int_not_equal(s2s_parse(buf, &back), 0);
	/* Too many patterns, a value over its limit. */
	memset(&r, 0, sizeof(r));
	r.path_a = r.path_b = r.other = "x";
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r.path_a = big;
	assert_int_equal(s2s_encode(&r, &line), 0);
	assert_int_not_equal(s2s_parse(line, &back), 0);
	free(line);
}

static void
test_dpath(void **state)
{
	char	 dir[] = "/tmp/msync-test-dpath.XXXXXX", sub[256], *out;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/real", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(sub, sizeof(sub), "%s/link", dir);
	assert_int_equal(symlink("/etc", sub), 0);

	assert_int_equal(dpath_resolve(dir, ".", &out), 0);
	assert_string_equal(out, dir);
	free(out);
	assert_int_equal(dpath_resolve(dir, "real/new/Maildir", &out), 0);
	free(out);
	assert_int_equal(dpath_resolve(dir, "link", &out), MSYNC_ERR_BADNAME);
	assert_int_equal(dpath_resolve(dir, "link/x", &out),
	    MSYNC_ERR_BADNAME);
	assert_int_equal(dpath_resolve(dir, "../x", &out), MSYNC_ERR_BADNAME);
	assert_int_equal(dpath_resolve(dir, "a/../../x", &out),
	    MSYNC_ERR_BADNAME);
	assert_int_equal(dpath_resolve(dir, "/etc", &out), MSYNC_ERR_BADNAME);
	assert_int_equal(dpath_resolve(dir, "~/x", &out), MSYNC_ERR_BADNAME);
	assert_int_equal(dpath_resolve(dir, "a//b", &out), MSYNC_ERR_BADNAME);
	assert_int_equal(dpath_resolve(sub, ".", &out), MSYNC_ERR_BADNAME);

	unlink(sub);
	snprintf(sub, sizeof(sub), "%s/real", dir);
	rmdir(sub);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_hello_run),
		cmocka_unit_test(test_s2s_run),
		cmocka_unit_test(test_dpath),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
