/*
 * test_mbox.c — the mbox format (mboxfmt.c) on byte strings, and the
 * mbox store (src/store/mbox.c) against real temporary files.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msync.h"
#include "guid.h"
#include "mboxfmt.h"
#include "store.h"

static char	 dir[128];	/* the test's directory */
static char	 cache[160];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_mbox.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	return 0;
}

static int
teardown(void **state)
{
	char	cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

struct mem {
	const char	*p;
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

/* Parses text; out[i] gets message i's content (NUL-terminated). */
static size_t
parse(const char *text, int format, char **out, struct mboxfmt_msg *info,
    size_t max)
{
	struct mem		 m = { text, strlen(text) };
	struct mboxfmt_src	 src = { mem_pread, &m };
	struct mboxfmt		*f;
	size_t			 n = 0;
	int			 r;

	assert_int_equal(mboxfmt_new(&src, format, 0, UINT64_MAX, &f), 0);
	while (n < max && (r = mboxfmt_begin(f, &info[n])) == 0) {
		struct mboxfmt_out	 o = { 0 };

		while ((r = mboxfmt_step(f, &info[n], sink, &o)) == 0)
			;
		assert_int_equal(r, 1);
		mboxfmt_put(&o, "", 1);
		out[n++] = (char *)o.p;
	}
	mboxfmt_free(f);
	return n;
}

static void
free_all(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

/* Separators, quoting, flags, the pseudo-message, Content-Length. */
static void
test_read_rules(void **state)
{
	char			*v[8];
	struct mboxfmt_msg	 m[8];
	size_t			 n;

	n = parse(
	    "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
	    "Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
	    "X-IMAP: 1234 3\n\nfolder data\n\n"
	    "From a@b Sat Jan  3 01:02:03 2004\n"
	    "Status: RO\nX-Status: AF\nX-Keywords: work $Forwarded a,b\n"
	    "X-UID: 7\nSubject: one\n\nbody\n>From x\n>>From y\nFrom z\n\n"
	    "From b@c Sun Jan  4 00:00:00 2004\n"
	    "Content-Length: 12\n\nFrom inside\n\n\n"
	    "From c@d Mon Jan  5 00:00:00 2004\n"
	    "Content-Length: 2\n\nno lie here\n\n"
	    "From nodate\nX-Msync-Kept-Status: mine\n\nlast", MBOXFMT_MBOXRD,
	    v, m, 8);
	assert_int_equal(n, 5);
	assert_true(m[0].pseudo);
	assert_false(m[1].pseudo);
	assert_string_equal(v[1], "Subject: one\n\nbody\nFrom x\n>From y\n"
	    "From z\n");
	assert_int_equal(m[1].flags, FLAG_SEEN | FLAG_REPLIED |
	    FLAG_FLAGGED | FLAG_PASSED);
	assert_string_equal(m[1].kw, "a b work");
	assert_int_equal(m[1].date, 1073091723);
	/* A Content-Length that lands on a "From " line is trusted ... */
	assert_true(m[2].cl);
	assert_string_equal(v[2], "\nFrom inside\n");
	/* ... one that does not is not. */
	assert_false(m[3].cl);
	assert_string_equal(v[3], "\nno lie here\n");
	assert_int_equal(m[4].date, -1);
	assert_string_equal(v[4], "Status: mine\n\nlast");
	free_all(v, n);

	/* mboxo leaves ">From " alone. */
	n = parse("From a Thu Jan  1 00:00:00 1970\n\n>From x\n",
	    MBOXFMT_MBOXO, v, m, 8);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "\n>From x\n");
	free_all(v, n);

	/* "From " not after an empty line is content; CRLF separators. */
	n = parse("From a Thu Jan  1 00:00:00 1970\r\nA: b\r\n\r\nx\r\n"
	    "From here\r\n\r\nFrom b Thu Jan  1 00:00:00 1970\r\n\r\ny\r\n",
	    MBOXFMT_MBOXRD, v, m, 8);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "A: b\r\n\r\nx\r\nFrom here\r\n");
	free_all(v, n);

	/* Not an mbox. */
	{
		struct mem		 mm = { "hello\n", 6 };
		struct mboxfmt_src	 src = { mem_pread, &mm };
		struct mboxfmt		*f;
		struct mboxfmt_msg	 x;

		assert_int_equal(mboxfmt_new(&src, 0, 0, UINT64_MAX, &f), 0);
		assert_int_equal(mboxfmt_begin(f, &x), MSYNC_ERR_BADDATA);
		mboxfmt_free(f);
	}
}

/* What msync writes reads back byte for byte, flags and all. */
static void
test_write_read(void **state)
{
	static const char *const msgs[] = {
		"Subject: a\n\nFrom x\n>From y\n>>From z\n",
		"Subject: b\r\n\r\ncrlf\r\nFrom q\r\n",
		"Subject: c\n\n",
		"Subject: d\nStatus: theirs\nX-Msync-Kept-X-Status: x\n\nb\n",
		"Subject: e\n\nends with blank lines\n\n\n",
		"No-Body: here\n",
		" folded-first: x\nSubject: f\n\nbody\n",
	};
	struct mboxfmt_out	 o = { 0 };
	struct mboxfmt_writer	 w;
	struct mboxfmt_msg	 m[8];
	char			*v[8];
	size_t			 n;

	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		mboxfmt_write_begin(&w, &o, "a@b", 86400 * (int64_t)i,
		    (uint8_t)(i & FLAG_ALL), i == 2 ? "k1 k2" : NULL, -1, 0);
		/* In pieces of one byte: the writer holds line starts. */
		for (size_t j = 0; msgs[i][j] != '\0'; j++)
			mboxfmt_write(&w, &o, msgs[i] + j, 1);
		mboxfmt_write_end(&w, &o);
	}
	mboxfmt_put(&o, "", 1);
	n = parse((char *)o.p, MBOXFMT_MBOXRD, v, m, 8);
	assert_int_equal(n, sizeof(msgs) / sizeof(msgs[0]));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(v[i], msgs[i]);
		assert_int_equal(m[i].flags, i & FLAG_ALL);
		assert_int_equal(m[i].date, 86400 * (int64_t)i);
	}
	assert_string_equal(m[2].kw, "k1 k2");
	free_all(v, n);
	free(o.p);

	/* No final newline: Content-Length, the body as it is. */
	memset(&o, 0, sizeof(o));
	mboxfmt_write_begin(&w, &o, NULL, 0, 0, NULL, 15, 0);
	mboxfmt_write(&w, &o, "S: x\n\nFrom no newline", 21);
	mboxfmt_write_end(&w, &o);
	/* Not even an empty line (a truncated message): all body. */
	mboxfmt_write_begin(&w, &o, NULL, 0, 0, NULL, 10, 1);
	mboxfmt_write(&w, &o, "Subject: t", 10);
	mboxfmt_write_end(&w, &o);
	mboxfmt_put(&o, "", 1);
	n = parse((char *)o.p, MBOXFMT_MBOXRD, v, m, 8);
	assert_int_equal(n, 2);
	assert_true(m[0].cl);
	assert_string_equal(v[0], "S: x\n\nFrom no newline");
	assert_true(m[1].cl);
	assert_string_equal(v[1], "Subject: t");
	free_all(v, n);
	free(o.p);
}

static void
put_file(const char *name, const char *text)
{
	char	 p[300];
	FILE	*f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_non_null(f = fopen(p, "a"));
	fputs(text, f);
	fclose(f);
}

static struct store *
open_mbox(const char *path, int layout, int create)
{
	struct store_opts	 o;
	struct store		*st = NULL;
	char			 p[300];

	snprintf(p, sizeof(p), "%s/%s", dir, path);
	memset(&o, 0, sizeof(o));
	o.path = p;
	o.layout = layout;
	o.create = create;
	o.cachedir = cache;
	assert_int_equal(store_open(&o, &st, NULL), 0);
	return st;
}

/* Reads message uid of INBOX through the stream interface. */
static char *
read_msg(struct store *st, const char *mbox, uint32_t uid)
{
	struct store_msg	*sm;
	uint64_t		 size;
	int64_t			 date;
	size_t			 got, len = 0;
	char			*buf;

	assert_int_equal(store_msg_open(st, mbox, uid, &sm, &size, &date),
	    0);
	assert_non_null(buf = malloc(size + 1));
	do {
		assert_int_equal(store_msg_read(sm, buf + len, 3, &got), 0);
		len += got;
	} while (got > 0);
	assert_int_equal(len, size);
	buf[len] = '\0';
	store_msg_close(sm);
	return buf;
}

/* One mbox file: list, read, save, flags, expunge, a delivery. */
static void
test_store_file(void **state)
{
	struct store		*st;
	struct store_mailbox	*mbs;
	struct store_save	*sv;
	struct msglist		 l = { 0 };
	struct guid		 g;
	size_t			 n;
	uint32_t		 uid;
	char			*s;

	put_file("box", "From a Thu Jan  1 00:00:00 1970\nStatus: RO\n"
	    "Subject: 1\n\none\n\nFrom b Thu Jan  1 00:00:00 1970\n"
	    "Subject: 2\n\n>From two\n\n");
	st = open_mbox("box", LAYOUT_MBOX, 0);
	assert_int_equal(store_list_mailboxes(st, &mbs, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(mbs[0].name, "INBOX");
	assert_int_equal(mbs[0].count, 2);
	store_mailboxes_free(mbs, n);
	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[0].uid, 1);
	assert_int_equal(l.v[0].flags, FLAG_SEEN);
	guid_of("Subject: 1\n\none\n", 16, &g);
	assert_memory_equal(&l.v[0].guid, &g, sizeof(g));
	msglist_free(&l);
	s = read_msg(st, "INBOX", 2);
	assert_string_equal(s, "Subject: 2\n\nFrom two\n");
	free(s);

	/* Save: appended, readable at once. */
	assert_int_equal(store_save_begin(st, "INBOX", &sv), 0);
	assert_int_equal(store_save_write(sv, "Subject: 3\n\nFrom", 16), 0);
	assert_int_equal(store_save_write(sv, " three\n", 7), 0);
	guid_of("Subject: 3\n\nFrom three\n", 23, &g);
	assert_int_equal(store_save_commit(sv, FLAG_FLAGGED, "x", 0, &g,
	    &uid), 0);
	assert_int_equal(uid, 3);
	s = read_msg(st, "INBOX", 3);
	assert_string_equal(s, "Subject: 3\n\nFrom three\n");
	free(s);
	/* A GUID check that fails saves nothing. */
	assert_int_equal(store_save_begin(st, "INBOX", &sv), 0);
	assert_int_equal(store_save_write(sv, "x\n", 2), 0);
	assert_int_equal(store_save_commit(sv, 0, NULL, 0, &g, &uid),
	    MSYNC_ERR_BADDATA);

	/* Flags and an expunge, written at the flush. */
	assert_int_equal(store_set_flags(st, "INBOX", 2, FLAG_SEEN |
	    FLAG_REPLIED, "k"), 0);
	assert_int_equal(store_expunge(st, "INBOX", 1), 0);
	assert_int_equal(store_flush(st), 0);
	assert_int_equal(store_close(st), 0);

	/* Reopened: UIDs kept, the delivery of another program found. */
	put_file("box", "From d Thu Jan  1 00:00:00 1970\n\nfour\n");
	st = open_mbox("box", LAYOUT_MBOX, 0);
	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].uid, 2);
	assert_int_equal(l.v[0].flags, FLAG_SEEN | FLAG_REPLIED);
	assert_string_equal(l.v[0].kw, "k");
	assert_int_equal(l.v[1].uid, 3);
	assert_int_equal(l.v[1].flags, FLAG_FLAGGED);
	assert_int_equal(l.v[2].uid, 4);
	msglist_free(&l);
	/* Only INBOX in a single file. */
	assert_int_equal(store_create_mailbox(st, "A", NULL),
	    MSYNC_ERR_BADNAME);
	assert_int_equal(store_close(st), 0);
}

/* A directory of mbox files; Thunderbird's layout. */
static void
test_store_dirs(void **state)
{
	struct store		*st;
	struct store_mailbox	*mbs;
	size_t			 n;
	char			 p[300];

	st = open_mbox("mail", LAYOUT_MBOX, 1);
	assert_int_equal(store_create_mailbox(st, "A/B", NULL), 0);
	assert_int_equal(store_create_mailbox(st, "C", NULL), 0);
	assert_int_equal(store_list_mailboxes(st, &mbs, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(mbs[0].name, "A/B");
	assert_string_equal(mbs[1].name, "C");
	assert_string_equal(mbs[2].name, "INBOX");
	store_mailboxes_free(mbs, n);
	assert_int_equal(store_rename_mailbox(st, "C", "D/E"), 0);
	assert_int_equal(store_close(st), 0);
	snprintf(p, sizeof(p), "%s/mail/D/E", dir);
	assert_int_equal(access(p, F_OK), 0);

	snprintf(p, sizeof(p), "%s/tb", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	put_file("tb/Inbox", "");
	put_file("tb/Inbox.msf", "// mork\n");
	put_file("tb/Work", "From a Thu Jan  1 00:00:00 1970\n\nx\n");
	st = open_mbox("tb", LAYOUT_MBOX_TB, 0);
	assert_int_equal(store_create_mailbox(st, "Work/Sub", NULL), 0);
	assert_int_equal(store_list_mailboxes(st, &mbs, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(mbs[0].name, "INBOX");
	assert_string_equal(mbs[1].name, "Work");
	assert_int_equal(mbs[1].count, 1);
	assert_string_equal(mbs[2].name, "Work/Sub");
	store_mailboxes_free(mbs, n);
	assert_int_equal(store_close(st), 0);
	snprintf(p, sizeof(p), "%s/tb/Work.sbd/Sub", dir);
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/tb/Inbox.msf", dir);
	assert_int_equal(access(p, F_OK), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_rules),
		cmocka_unit_test(test_write_read),
		cmocka_unit_test_setup_teardown(test_store_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_store_dirs, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
