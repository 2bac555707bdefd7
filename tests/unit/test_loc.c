/*
 * test_loc.c — location parsing (loc_parse) and the remote command line
 * helpers (word splitting, shell quoting): tables of good and bad input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msync.h"
#include "store.h"
#include "transport.h"
#include "remote.h"

/* A remote location and what it must parse to. */
static const struct {
	const char	*in;
	const char	*user;
	const char	*host;
	int		 port;
	const char	*path;
	int		 layout;
	const char	*text;
} remote_ok[] = {
	{ "host:Maildir", NULL, "host", 0, "Maildir", LAYOUT_MAILDIRPP,
	    "ssh://host/~/Maildir" },
	{ "user@host:Maildir", "user", "host", 0, "Maildir",
	    LAYOUT_MAILDIRPP, "ssh://user@host/~/Maildir" },
	{ "Host.Example.ORG:/var/mail/x", NULL, "Host.Example.ORG", 0,
	    "/var/mail/x", LAYOUT_MAILDIRPP,
	    "ssh://host.example.org/var/mail/x" },
	{ "host:~/Maildir", NULL, "host", 0, "~/Maildir", LAYOUT_MAILDIRPP,
	    "ssh://host/~/Maildir" },
	{ "host:a:b", NULL, "host", 0, "a:b", LAYOUT_MAILDIRPP,
	    "ssh://host/~/a:b" },
	{ "host:Mail;layout=mbox", NULL, "host", 0, "Mail", LAYOUT_MBOX,
	    "ssh://host/~/Mail;layout=mbox" },
	{ "host:TB;layout=thunderbird", NULL, "host", 0, "TB",
	    LAYOUT_MBOX_TB, "ssh://host/~/TB;layout=thunderbird" },
	{ "host:Maildir;layout=fs", NULL, "host", 0, "Maildir", LAYOUT_FS,
	    "ssh://host/~/Maildir;layout=fs" },
	{ "host:Maildir;layout=maildir++", NULL, "host", 0, "Maildir",
	    LAYOUT_MAILDIRPP, "ssh://host/~/Maildir" },
	{ "me.x+y@host:M", "me.x+y", "host", 0, "M", LAYOUT_MAILDIRPP,
	    "ssh://me.x+y@host/~/M" },
	{ "a@b@host:M", "a@b", "host", 0, "M", LAYOUT_MAILDIRPP,
	    "ssh://a@b@host/~/M" },
	{ "[::1]:Maildir", NULL, "::1", 0, "Maildir", LAYOUT_MAILDIRPP,
	    "ssh://[::1]/~/Maildir" },
	{ "u@[fe80::1%eth0]:/m", "u", "fe80::1%eth0", 0, "/m",
	    LAYOUT_MAILDIRPP, "ssh://u@[fe80::1%eth0]/m" },
	{ "ssh://host/~/Maildir", NULL, "host", 0, "~/Maildir",
	    LAYOUT_MAILDIRPP, "ssh://host/~/Maildir" },
	{ "ssh://host/~", NULL, "host", 0, "~", LAYOUT_MAILDIRPP,
	    "ssh://host/~" },
	{ "ssh://host/abs/Maildir", NULL, "host", 0, "/abs/Maildir",
	    LAYOUT_MAILDIRPP, "ssh://host/abs/Maildir" },
	{ "ssh://host/", NULL, "host", 0, "/", LAYOUT_MAILDIRPP,
	    "ssh://host/" },
	{ "ssh://u@host:2222/~/M;layout=fs", "u", "host", 2222, "~/M",
	    LAYOUT_FS, "ssh://u@host:2222/~/M;layout=fs" },
	{ "ssh://[::1]:22/x", NULL, "::1", 22, "/x", LAYOUT_MAILDIRPP,
	    "ssh://[::1]:22/x" },
	{ "ssh://u@[2001:db8::7]/~/M", "u", "2001:db8::7", 0, "~/M",
	    LAYOUT_MAILDIRPP, "ssh://u@[2001:db8::7]/~/M" },
	{ "ssh://h/a;b", NULL, "h", 0, "/a;b", LAYOUT_MAILDIRPP,
	    "ssh://h/a;b" },
	/* Only the last ";layout=" is an option. */
	{ "h:x;layout=fs;layout=fs", NULL, "h", 0, "x;layout=fs", LAYOUT_FS,
	    "ssh://h/~/x;layout=fs;layout=fs" },
	{ "ssh://h_1.x-y/m", NULL, "h_1.x-y", 0, "/m", LAYOUT_MAILDIRPP,
	    "ssh://h_1.x-y/m" },
	{ "ssh://h:65535/m", NULL, "h", 65535, "/m", LAYOUT_MAILDIRPP,
	    "ssh://h:65535/m" },
};

/* Locations that must be refused with MSYNC_ERR_USAGE. */
static const char *bad[] = {
	"",
	"-host:Maildir",
	"user@-host:Maildir",
	"-oProxyCommand=x:y",
	"ssh://-oProxyCommand=touch%20x/y",
	"ssh://user@-host/x",
	"host:",
	":Maildir",
	"@host:M",
	"-u@host:M",
	"host::module",
	"ho st:M",
	"ho;st:M",
	"h$(id):M",
	"h`id`:M",
	"u'x@host:M",
	"u x@host:M",
	"[::1:M",
	"[]:M",
	"[abc]:M",
	"[fe80::1%]:M",
	"[fe80::1%a b]:M",
	"[::1]x:M",
	"ssh://host",
	"ssh://host:/x",
	"ssh://host:0/x",
	"ssh://host:65536/x",
	"ssh://host:22x/x",
	"ssh://host:-1/x",
	"ssh://host:+22/x",
	"ssh:///x",
	"ssh://[::1/x",
	"ssh://[::1]x/y",
	"ssh://u@/x",
	"ssh://h/a\nb",
	"host:a\x1b[2J",
	"maildir:",
	"maildir:host:M",
	"maildir:ssh://host/x",
	"M;layout=",
	"M;layout=mboxx",
	"mbox:",
	"mbox:host:M",
	"mbox:ssh://host/x",
	"mbox:x;layout=fs",
	"maildir:x;layout=mbox",
	"host:M;layout=mbox;inbox=/x",
	"M;inbox=/x",
	"mbox:x;inbox=",
	"host:M;layout=FS",
};

static void
test_loc_remote_ok(void **state)
{
	size_t	 i;

	for (i = 0; i < sizeof(remote_ok) / sizeof(remote_ok[0]); i++) {
		struct loc	 l, l2;

		print_message("# %s\n", remote_ok[i].in);
		assert_int_equal(loc_parse(remote_ok[i].in, &l), 0);
		if (remote_ok[i].user == NULL)
			assert_null(l.user);
		else
			assert_string_equal(l.user, remote_ok[i].user);
		assert_string_equal(l.host, remote_ok[i].host);
		assert_int_equal(l.port, remote_ok[i].port);
		assert_string_equal(l.path, remote_ok[i].path);
		assert_int_equal(l.layout, remote_ok[i].layout);
		assert_string_equal(l.text, remote_ok[i].text);

		/* The canonical text parses back to itself. */
		assert_int_equal(loc_parse(l.text, &l2), 0);
		assert_string_equal(l2.text, l.text);
		assert_int_equal(l2.port, l.port);
		assert_int_equal(l2.layout, l.layout);
		loc_free(&l2);
		loc_free(&l);
		assert_null(l.text);
	}
}

static void
test_loc_bad(void **state)
{
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct loc	 l;

		print_message("# bad[%zu]\n", i);
		memset(&l, 0xa5, sizeof(l));
		assert_int_equal(loc_parse(bad[i], &l), MSYNC_ERR_USAGE);
		/* Nothing to free, and loc_free is harmless. */
		assert_null(l.host);
		assert_null(l.path);
		assert_null(l.text);
		loc_free(&l);
	}
	assert_int_equal(loc_parse(NULL, &(struct loc){ 0 }),
	    MSYNC_ERR_USAGE);
	loc_free(NULL);
}

/* Local paths: made absolute; existing ones through realpath. */
static void
test_loc_local(void **state)
{
	char		 tmpl[] = "/tmp/test_loc.XXXXXX", *dir, *real;
	char		 cwd[PATH_MAX], buf[PATH_MAX * 2];
	struct loc	 l;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_non_null(dir = mkdtemp(tmpl));
	assert_non_null(real = realpath(dir, NULL));
	assert_int_equal(chdir(dir), 0);
	assert_int_equal(mkdir("md", 0700), 0);
	assert_int_equal(mkdir("a:b", 0700), 0);

	/* Existing, relative. */
	assert_int_equal(loc_parse("md", &l), 0);
	snprintf(buf, sizeof(buf), "%s/md", real);
	assert_null(l.host);
	assert_null(l.user);
	assert_string_equal(l.path, buf);
	assert_string_equal(l.text, buf);
	assert_int_equal(l.layout, LAYOUT_MAILDIRPP);
	loc_free(&l);

	/* Trailing slashes, "./", the maildir: prefix, a layout. */
	assert_int_equal(loc_parse("maildir:./md//;layout=fs", &l), 0);
	assert_string_equal(l.path, buf);
	snprintf(buf, sizeof(buf), "%s/md;layout=fs", real);
	assert_string_equal(l.text, buf);
	assert_int_equal(l.layout, LAYOUT_FS);
	loc_free(&l);

	/* A ':' after a '/' is local (rsync's rule). */
	assert_int_equal(loc_parse("./a:b", &l), 0);
	snprintf(buf, sizeof(buf), "%s/a:b", real);
	assert_null(l.host);
	assert_string_equal(l.path, buf);
	loc_free(&l);
	assert_int_equal(loc_parse("maildir:./a:b", &l), 0);
	assert_null(l.host);
	assert_string_equal(l.path, buf);
	loc_free(&l);
	assert_int_equal(loc_parse("/x/a:b", &l), 0);
	assert_null(l.host);
	assert_string_equal(l.path, "/x/a:b");
	assert_string_equal(l.text, "/x/a:b");
	loc_free(&l);

	/* Not there yet: the parent's real path plus the name. */
	assert_int_equal(loc_parse("md/new-store/", &l), 0);
	snprintf(buf, sizeof(buf), "%s/md/new-store", real);
	assert_string_equal(l.path, buf);
	loc_free(&l);

	/* No parent either: joined to the cwd and cleaned. */
	assert_int_equal(loc_parse("no/such/./x/../y", &l), 0);
	snprintf(buf, sizeof(buf), "%s/no/such/y", real);
	assert_string_equal(l.path, buf);
	loc_free(&l);
	assert_int_equal(loc_parse("/nonexistent-msync//a/../b/", &l), 0);
	assert_string_equal(l.path, "/nonexistent-msync/b");
	loc_free(&l);
	assert_int_equal(loc_parse("/", &l), 0);
	assert_string_equal(l.path, "/");
	loc_free(&l);

	/* mbox: a file, a directory, INBOX from elsewhere. */
	assert_int_equal(loc_parse("mbox:md;inbox=./md/../spool", &l), 0);
	snprintf(buf, sizeof(buf), "%s/md", real);
	assert_string_equal(l.path, buf);
	assert_int_equal(l.layout, LAYOUT_MBOX);
	snprintf(buf, sizeof(buf), "%s/spool", real);
	assert_string_equal(l.inbox, buf);
	snprintf(buf, sizeof(buf), "mbox:%s/md;inbox=%s/spool", real, real);
	assert_string_equal(l.text, buf);
	loc_free(&l);
	assert_int_equal(loc_parse("mbox:md;layout=thunderbird", &l), 0);
	assert_int_equal(l.layout, LAYOUT_MBOX_TB);
	snprintf(buf, sizeof(buf), "mbox:%s/md;layout=thunderbird", real);
	assert_string_equal(l.text, buf);
	loc_free(&l);

	/* A bare path: a file starting with "From " is an mbox ... */
	{
		FILE	*f;

		assert_non_null(f = fopen("box", "w"));
		fputs("From a@b Thu Jan  1 00:00:00 1970\n\nx\n", f);
		fclose(f);
		assert_int_equal(loc_parse("box", &l), 0);
		assert_int_equal(l.layout, LAYOUT_MBOX);
		snprintf(buf, sizeof(buf), "mbox:%s/box", real);
		assert_string_equal(l.text, buf);
		loc_free(&l);
		/* ... any other file is refused, naming the prefixes ... */
		assert_non_null(f = fopen("notes", "w"));
		fputs("hello\n", f);
		fclose(f);
		assert_int_equal(loc_parse("notes", &l), MSYNC_ERR_USAGE);
		/* ... as is a directory of mbox files with no Maildir part. */
		assert_int_equal(mkdir("mboxes", 0700), 0);
		assert_int_equal(rename("box", "mboxes/box"), 0);
		assert_int_equal(loc_parse("mboxes", &l), MSYNC_ERR_USAGE);
		assert_int_equal(loc_parse("mbox:mboxes", &l), 0);
		loc_free(&l);
		/* The prefix wins over what is on disk. */
		assert_int_equal(loc_parse("maildir:notes", &l), 0);
		assert_int_equal(l.layout, LAYOUT_MAILDIRPP);
		loc_free(&l);
		unlink("mboxes/box");
		rmdir("mboxes");
		unlink("notes");
	}

	/* A ';' not followed by layout= is part of the path. */
	assert_int_equal(loc_parse("/nonexistent-msync/a;b", &l), 0);
	assert_string_equal(l.path, "/nonexistent-msync/a;b");
	loc_free(&l);

	assert_int_equal(chdir(cwd), 0);
	rmdir(strcat(strcpy(buf, real), "/md"));
	rmdir(strcat(strcpy(buf, real), "/a:b"));
	rmdir(real);
	free(real);
}

/* transport_split: rsync-style word splitting of -e CMD. */
static void
test_split(void **state)
{
	static const struct {
		const char	*in;
		int		 r;
		const char	*words[6];
	} t[] = {
		{ "ssh", 0, { "ssh" } },
		{ "  ssh  -F  cfg ", 0, { "ssh", "-F", "cfg" } },
		{ "ssh -o 'ProxyCommand=a b'", 0,
		    { "ssh", "-o", "ProxyCommand=a b" } },
		{ "ssh -i \"my key\"", 0, { "ssh", "-i", "my key" } },
		{ "a\"b\\\"c\\\\d\\e\"", 0, { "ab\"c\\d\\e" } },
		{ "a\\ b c", 0, { "a b", "c" } },
		{ "''", 0, { "" } },
		{ "", 0, { NULL } },
		{ "   ", 0, { NULL } },
		{ "ssh 'x", MSYNC_ERR_USAGE, { NULL } },
		{ "ssh \"x", MSYNC_ERR_USAGE, { NULL } },
		{ "ssh x\\", MSYNC_ERR_USAGE, { NULL } },
	};
	size_t	 i, j, argc;
	char	**argv;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		argv = NULL;
		argc = 0;
		print_message("# %s\n", t[i].in);
		assert_int_equal(transport_split(t[i].in, &argv, &argc),
		    t[i].r);
		if (t[i].r != 0) {
			transport_argv_free(argv);
			continue;
		}
		for (j = 0; t[i].words[j] != NULL; j++) {
			assert_true(j < argc);
			assert_string_equal(argv[j], t[i].words[j]);
		}
		assert_int_equal(j, argc);
		if (argc == 0)
			assert_null(argv);
		else
			assert_null(argv[argc]);
		transport_argv_free(argv);
	}
}

/* transport_shquote: words for the remote shell. */
static void
test_shquote(void **state)
{
	static const struct {
		const char	*in;
		int		 tilde;
		const char	*out;
	} t[] = {
		{ "msync", 1, "msync" },
		{ "/usr/local/bin/msync", 1, "/usr/local/bin/msync" },
		{ "--server", 0, "--server" },
		{ "-Tcrash=3", 0, "-Tcrash=3" },
		{ "", 0, "''" },
		{ "a b", 0, "'a b'" },
		{ "it's", 0, "'it'\\''s'" },
		{ "$(rm -rf /)", 0, "'$(rm -rf /)'" },
		{ "a;b", 0, "'a;b'" },
		{ "~/bin/msync", 1, "~/bin/msync" },
		{ "~/my bin/msync", 1, "~/'my bin/msync'" },
		{ "~bob/bin/msync", 1, "~bob/bin/msync" },
		{ "~", 1, "~" },
		{ "~/", 1, "~/" },
		{ "~/'", 1, "~/''\\'''" },
		{ "~/bin/msync", 0, "'~/bin/msync'" },
		{ "~$(x)/m", 1, "'~$(x)/m'" },
	};
	size_t	 i;
	char	*q;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_non_null(q = transport_shquote(t[i].in, t[i].tilde));
		assert_string_equal(q, t[i].out);
		free(q);
	}
}

/* transport_cmdline: the fixed remote command line. */
static void
test_cmdline(void **state)
{
	struct transport_opts	 o;
	char			*s;

	memset(&o, 0, sizeof(o));
	assert_int_equal(transport_cmdline(&o, &s), 0);
	assert_string_equal(s, "msync --server");
	free(s);

	o.remote_msync = "/opt/my msync/bin/msync";
	o.verbose = 2;
	o.server_args = "-Tcrash=3 'a b'";
	assert_int_equal(transport_cmdline(&o, &s), 0);
	assert_string_equal(s, "'/opt/my msync/bin/msync' --server -v -v "
	    "-Tcrash=3 'a b'");
	free(s);

	o.server_args = "'unterminated";
	assert_int_equal(transport_cmdline(&o, &s), MSYNC_ERR_USAGE);
	assert_null(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loc_remote_ok),
		cmocka_unit_test(test_loc_bad),
		cmocka_unit_test(test_loc_local),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_shquote),
		cmocka_unit_test(test_cmdline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
