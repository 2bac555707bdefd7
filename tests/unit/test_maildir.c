/*
 * test_maildir.c — the Maildir store against real temporary directories.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msync.h"
#include "guid.h"
#include "index.h"
#include "log.h"
#include "store.h"

static char	 root[128];	/* the store root of the running test */
static char	 cache[160];	/* its cache directory */

static int
setup(void **state)
{
	snprintf(root, sizeof(root), "/tmp/test_maildir.XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(cache, sizeof(cache), "%s.cache", root);
	strcat(root, "/Maildir");
	return 0;
}

static int
teardown(void **state)
{
	char	cmd[512];

	*strrchr(root, '/') = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", root, cache);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct store *
open_store(int layout, int readonly)
{
	struct store_opts	 o;
	struct store		*st = NULL;
	char			*holder = NULL;

	memset(&o, 0, sizeof(o));
	o.path = root;
	o.layout = layout;
	o.readonly = readonly;
	o.create = !readonly;
	o.cachedir = cache;
	assert_int_equal(store_open(&o, &st, &holder), 0);
	assert_null(holder);
	return st;
}

/* Saves content into mbox; returns the UID. */
static uint32_t
save(struct store *st, const char *mbox, const char *content, uint8_t flags,
    const char *kw, int64_t date)
{
	struct store_save	*s;
	struct guid		 g;
	uint32_t		 uid = 0;
	size_t			 cut;

	guid_of(content, strlen(content), &g);
	assert_int_equal(store_save_begin(st, mbox, &s), 0);
	/* In two pieces, the first CR-free. */
	cut = strlen(content) < 3 ? strlen(content) : 3;
	assert_int_equal(store_save_write(s, content, cut), 0);
	assert_int_equal(store_save_write(s, content + cut,
	    strlen(content) - cut), 0);
	assert_int_equal(store_save_commit(s, flags, kw, date, &g, &uid), 0);
	assert_int_not_equal(uid, 0);
	/* Saves reach cur/ in batches; the tests look at cur/ directly. */
	assert_int_equal(store_flush(st), 0);
	return uid;
}

/* Number of entries (but . and ..) in root/sub. */
static int
count_dir(const char *sub)
{
	char		 path[512];
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	snprintf(path, sizeof(path), "%s/%s", root, sub);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* The single file name in root/sub (there must be exactly one). */
static void
only_file(const char *sub, char *out, size_t sz)
{
	char		 path[512];
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	snprintf(path, sizeof(path), "%s/%s", root, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.') {
			snprintf(out, sz, "%s", de->d_name);
			n++;
		}
	closedir(d);
	assert_int_equal(n, 1);
}

/* Writes a file below the root. */
static void
put(const char *rel, const char *content)
{
	char	path[512];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_non_null(f = fopen(path, "w"));
	fputs(content, f);
	fclose(f);
}

static void
mk(const char *rel)
{
	char	path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(mkdir(path, 0700), 0);
}

static int
exists(const char *rel)
{
	char		path[512];
	struct stat	sb;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return lstat(path, &sb) == 0;
}

/* Finds the message with uid in l. */
static const struct msg *
find_uid(const struct msglist *l, uint32_t uid)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].uid == uid)
			return &l->v[i];
	return NULL;
}

static void
test_save_list_open(void **state)
{
	struct store		*st;
	struct store_mailbox	*mb;
	struct store_save	*s;
	struct msglist		 l = { 0 };
	struct guid		 g, bad;
	char			 buf[64], name[300];
	uint64_t		 size;
	int64_t			 date;
	uint32_t		 uid, u2;
	size_t			 n, got;
	struct store_msg	*sm;

	st = open_store(LAYOUT_MAILDIRPP, 0);
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(mb[0].name, "INBOX");
	assert_int_equal(mb[0].count, 0);
	assert_int_not_equal(mb[0].uidvalidity, 0);
	assert_false(guid_is_zero(&mb[0].guid));
	store_mailboxes_free(mb, n);

	uid = save(st, "INBOX", "Subject: a\r\n\r\nhello\r\n", FLAG_SEEN,
	    NULL, 1600000000);
	assert_int_equal(uid, 1);
	only_file("cur", name, sizeof(name));
	assert_non_null(strstr(name, ",S=21:2,S"));
	assert_int_equal(count_dir("tmp"), 0);

	/* A GUID mismatch: refused, nothing left behind. */
	memset(&bad, 0x42, sizeof(bad));
	assert_int_equal(store_save_begin(st, "INBOX", &s), 0);
	assert_int_equal(count_dir("tmp"), 1);
	assert_int_equal(store_save_write(s, "x\n", 2), 0);
	assert_int_equal(store_save_commit(s, 0, NULL, 0, &bad, &u2),
	    MSYNC_ERR_BADDATA);
	assert_int_equal(count_dir("tmp"), 0);
	assert_int_equal(count_dir("cur"), 1);
	/* Abort also cleans up. */
	assert_int_equal(store_save_begin(st, "INBOX", &s), 0);
	store_save_abort(s);
	assert_int_equal(count_dir("tmp"), 0);

	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].uid, 1);
	assert_int_equal(l.v[0].flags, FLAG_SEEN);
	assert_null(l.v[0].kw);
	assert_int_equal(l.v[0].size, 21);
	assert_int_equal(l.v[0].date, 1600000000);
	guid_of("Subject: a\n\nhello\n", 18, &g);
	assert_memory_equal(&l.v[0].guid, &g, 16);
	msglist_free(&l);

	/* Read as a stream, in pieces; 0 bytes only at the end. */
	assert_int_equal(store_msg_open(st, "INBOX", 1, &sm, &size,
	    &date), 0);
	assert_int_equal(size, 21);
	assert_int_equal(date, 1600000000);
	assert_int_equal(store_msg_read(sm, buf, 5, &got), 0);
	assert_int_equal(got, 5);
	assert_int_equal(store_msg_read(sm, buf + 5, sizeof(buf) - 5, &got),
	    0);
	assert_int_equal(got, 16);
	assert_memory_equal(buf, "Subject: a\r\n\r\nhello\r\n", 21);
	assert_int_equal(store_msg_read(sm, buf, sizeof(buf), &got), 0);
	assert_int_equal(got, 0);
	store_msg_close(sm);
	assert_int_equal(store_msg_open(st, "INBOX", 99, &sm, NULL,
	    NULL), MSYNC_ERR_NOTFOUND);
	assert_null(sm);
	assert_int_equal(store_list_messages(st, "Nope", &l),
	    MSYNC_ERR_NOTFOUND);
	assert_int_equal(store_list_messages(st, "../etc", &l),
	    MSYNC_ERR_BADNAME);
	assert_int_equal(store_close(st), 0);

	/* Reopened: the index keeps the UID, nothing is rehashed. */
	st = open_store(LAYOUT_MAILDIRPP, 0);
	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].uid, 1);
	msglist_free(&l);
	store_close(st);
}

static void
test_flags_keywords(void **state)
{
	struct store	*st;
	struct msglist	 l = { 0 };
	char		 name[300];
	const struct msg *m;
	uint32_t	 uid;

	st = open_store(LAYOUT_MAILDIRPP, 0);
	assert_int_equal(store_create_mailbox(st, "A", NULL), 0);
	assert_int_equal(store_create_mailbox(st, "B", NULL), 0);
	assert_int_equal(store_create_mailbox(st, "A", NULL),
	    MSYNC_ERR_EXISTS);
	/* Two folders naming the same letter differently. */
	put(".A/dovecot-keywords", "0 work\n1 home\n");
	put(".B/dovecot-keywords", "0 home\n1 work\n");
	put(".A/cur/1.M1P1.h:2,Sa", "one\n");
	put(".B/cur/2.M1P1.h:2,a", "two\n");
	put(".B/cur/3.M1P1.h:2,Raq", "three\n");	/* q has no name */
	assert_int_equal(store_list_messages(st, "A", &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].kw, "work");
	assert_int_equal(l.v[0].flags, FLAG_SEEN);
	msglist_free(&l);
	assert_int_equal(store_list_messages(st, "B", &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].kw, "home");
	assert_string_equal(l.v[1].kw, "home");
	assert_int_equal(l.v[1].flags, FLAG_REPLIED);
	msglist_free(&l);

	/* "work" in B is letter b; a new name takes the next free one. */
	assert_int_equal(store_set_flags(st, "B", 1, FLAG_FLAGGED,
	    "work"), 0);
	assert_true(exists(".B/cur/2.M1P1.h:2,Fb"));
	assert_int_equal(store_set_flags(st, "B", 2, FLAG_SEEN,
	    "$Label1 work"), 0);
	assert_true(exists(".B/cur/3.M1P1.h:2,Sbcq"));	/* q kept */
	assert_int_equal(store_list_messages(st, "B", &l), 0);
	assert_non_null(m = find_uid(&l, 2));
	assert_string_equal(m->kw, "$Label1 work");
	assert_int_equal(m->flags, FLAG_SEEN);
	msglist_free(&l);

	/* A saved message with keywords in A. */
	uid = save(st, "A", "four\n", FLAG_DRAFT, "home $Junk", 1);
	assert_int_equal(store_list_messages(st, "A", &l), 0);
	assert_non_null(m = find_uid(&l, uid));
	assert_string_equal(m->kw, "$Junk home");
	assert_int_equal(m->flags, FLAG_DRAFT);
	msglist_free(&l);
	/* Clearing everything; a message in new/ moves to cur/. */
	put(".A/new/5.M1P1.h", "five\n");
	assert_int_equal(store_rescan(st, "A", NULL), 0);
	assert_int_equal(store_set_flags(st, "A", uid + 1, FLAG_SEEN, NULL),
	    0);
	assert_false(exists(".A/new/5.M1P1.h"));
	assert_true(exists(".A/cur/5.M1P1.h:2,S"));
	assert_int_equal(store_set_flags(st, "A", 1, 0, NULL), 0);
	assert_true(exists(".A/cur/1.M1P1.h:2,"));
	(void)name;
	store_close(st);
}

static void
test_expunge_and_renamed(void **state)
{
	struct store	*st;
	struct msglist	 l = { 0 };
	uint64_t	 size;
	struct store_msg *sm;
	char		 from[512], to[512];

	st = open_store(LAYOUT_MAILDIRPP, 0);
	put("cur/1.M1P1.h:2,", "one\n");
	put("cur/2.M1P1.h:2,", "two\n");
	put("cur/3.M1P1.h:2,", "three\n");
	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 3);
	msglist_free(&l);
	/* Renamed by a MUA between listing and open: found again. */
	snprintf(from, sizeof(from), "%s/cur/2.M1P1.h:2,", root);
	snprintf(to, sizeof(to), "%s/cur/2.M1P1.h:2,RS", root);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(store_msg_open(st, "INBOX", 2, &sm, &size,
	    NULL), 0);
	assert_int_equal(size, 4);
	store_msg_close(sm);
	/* Renamed, then flags set by us: the rename starts from the file. */
	snprintf(from, sizeof(from), "%s/cur/3.M1P1.h:2,", root);
	snprintf(to, sizeof(to), "%s/cur/3.M1P1.h:2,T", root);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(store_set_flags(st, "INBOX", 3, FLAG_FLAGGED, NULL),
	    0);
	assert_true(exists("cur/3.M1P1.h:2,F"));
	/* An expunge meant for another message deletes nothing. */
	{
		struct guid	 g1, other;

		guid_of("one\n", 4, &g1);
		guid_of("not one\n", 8, &other);
		assert_int_equal(store_expunge_guid(st, "INBOX", 1, &other),
		    MSYNC_ERR_STORE_CHANGED);
		assert_true(exists("cur/1.M1P1.h:2,"));
		assert_int_equal(store_expunge_guid(st, "INBOX", 1, &g1), 0);
		assert_false(exists("cur/1.M1P1.h:2,"));
	}
	/* Gone: NOTFOUND, and it leaves the list. */
	snprintf(from, sizeof(from), "%s/cur/2.M1P1.h:2,RS", root);
	assert_int_equal(unlink(from), 0);
	assert_int_equal(store_msg_open(st, "INBOX", 2, &sm, NULL, NULL),
	    MSYNC_ERR_NOTFOUND);
	/* Expunge; again is fine; a renamed file is found and removed. */
	assert_int_equal(store_expunge(st, "INBOX", 1), 0);
	assert_false(exists("cur/1.M1P1.h:2,"));
	assert_int_equal(store_expunge(st, "INBOX", 1), 0);
	snprintf(from, sizeof(from), "%s/cur/3.M1P1.h:2,F", root);
	snprintf(to, sizeof(to), "%s/cur/3.M1P1.h:2,FS", root);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(store_expunge(st, "INBOX", 3), 0);
	assert_false(exists("cur/3.M1P1.h:2,FS"));
	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 0);
	msglist_free(&l);
	store_close(st);
}

static void
test_mailboxes_pp(void **state)
{
	struct store		*st;
	struct store_mailbox	*mb, one = { 0 };
	struct msglist		 l = { 0 };
	struct guid		 g;
	uint32_t		 uv;
	size_t			 n;

	st = open_store(LAYOUT_MAILDIRPP, 0);
	memset(&g, 0x5a, sizeof(g));
	assert_int_equal(store_create_mailbox(st, "Entwürfe", &g), 0);
	assert_true(exists(".Entw&APw-rfe/cur"));
	assert_true(exists(".Entw&APw-rfe/maildirfolder"));
	assert_int_equal(store_create_mailbox(st, "Entwürfe/Alt", NULL), 0);
	assert_true(exists(".Entw&APw-rfe.Alt/cur"));
	assert_int_equal(store_create_mailbox(st, "a.b", NULL),
	    MSYNC_ERR_BADNAME);
	assert_int_equal(store_create_mailbox(st, "../x", NULL),
	    MSYNC_ERR_BADNAME);
	save(st, "Entwürfe", "draft\n", 0, NULL, 5);
	/* A folder without cur/ is warned about and skipped. */
	mk(".Broken");
	mk(".Broken/new");
	/* A symlinked folder is skipped. */
	assert_int_equal(symlinkat("/tmp", open(root, O_RDONLY), ".Evil"),
	    0);
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(mb[0].name, "Entwürfe");
	assert_string_equal(mb[1].name, "Entwürfe/Alt");
	assert_string_equal(mb[2].name, "INBOX");
	assert_memory_equal(&mb[0].guid, &g, 16);
	assert_int_equal(mb[0].count, 1);
	assert_int_equal(mb[0].bytes, 6);
	uv = mb[0].uidvalidity;
	store_mailboxes_free(mb, n);
	assert_int_equal(store_list_messages(st, "Evil", &l),
	    MSYNC_ERR_NOTFOUND);
	assert_int_equal(store_list_messages(st, "Broken", &l),
	    MSYNC_ERR_NOTFOUND);

	/*
	 * Rename; GUID, UIDVALIDITY and UIDs are kept.  The child is a
	 * mailbox of its own and stays.
	 */
	assert_int_equal(store_rename_mailbox(st, "Entwürfe", "Drafts"), 0);
	assert_false(exists(".Entw&APw-rfe"));
	assert_true(exists(".Drafts/cur"));
	assert_false(exists(".Drafts.Alt/cur"));
	assert_true(exists(".Entw&APw-rfe.Alt/cur"));
	assert_int_equal(store_rescan(st, "Drafts", &one), 0);
	assert_string_equal(one.name, "Drafts");
	assert_memory_equal(&one.guid, &g, 16);
	assert_int_equal(one.uidvalidity, uv);
	assert_int_equal(one.count, 1);
	free(one.name);
	one.name = NULL;
	assert_int_equal(store_rename_mailbox(st, "Drafts", "INBOX/x"), 0);
	assert_true(exists(".INBOX.x/cur"));
	assert_false(exists(".INBOX.x.Alt"));
	assert_int_equal(store_rename_mailbox(st, "Nope", "Z"),
	    MSYNC_ERR_NOTFOUND);
	assert_int_equal(store_create_mailbox(st, "Y", NULL), 0);
	assert_int_equal(store_rename_mailbox(st, "INBOX/x", "Y"),
	    MSYNC_ERR_EXISTS);
	assert_int_equal(store_rename_mailbox(st, "INBOX", "Z"),
	    MSYNC_ERR_BADNAME);
	assert_int_equal(store_set_mailbox_guid(st, "Y", &g), 0);
	assert_int_equal(store_rescan(st, "Y", &one), 0);
	assert_memory_equal(&one.guid, &g, 16);
	free(one.name);

	/* Delete: the child stays; an unknown file keeps its folder. */
	assert_int_equal(store_delete_mailbox(st, "INBOX/x"), 0);
	assert_false(exists(".INBOX.x"));
	assert_true(exists(".Entw&APw-rfe.Alt/cur"));
	put(".Y/cur/notes.txt", "");	/* empty: skipped, never deleted */
	assert_int_equal(store_delete_mailbox(st, "Y"), 0);
	assert_true(exists(".Y/cur/notes.txt"));
	assert_int_equal(store_delete_mailbox(st, "INBOX"),
	    MSYNC_ERR_BADNAME);
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	assert_int_equal(n, 3);	/* INBOX, Entwürfe/Alt, Y (cur/ stays) */
	store_mailboxes_free(mb, n);
	store_close(st);
}

static void
test_mailboxes_fs(void **state)
{
	struct store		*st;
	struct store_mailbox	*mb;
	size_t			 n;

	st = open_store(LAYOUT_FS, 0);
	assert_int_equal(store_create_mailbox(st, "A/B", NULL), 0);
	assert_true(exists("A/B/cur"));
	assert_false(exists("A/cur"));
	assert_int_equal(store_create_mailbox(st, "a.b/Entwürfe", NULL), 0);
	assert_true(exists("a.b/Entw&APw-rfe/cur"));
	assert_int_equal(store_create_mailbox(st, "A/cur", NULL),
	    MSYNC_ERR_BADNAME);
	save(st, "A/B", "x\n", FLAG_SEEN, NULL, 1);
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(mb[0].name, "A/B");
	assert_int_equal(mb[0].count, 1);
	assert_string_equal(mb[1].name, "INBOX");
	assert_string_equal(mb[2].name, "a.b/Entwürfe");
	store_mailboxes_free(mb, n);
	assert_int_equal(store_rename_mailbox(st, "A/B", "C/D/E"), 0);
	assert_true(exists("C/D/E/cur"));
	assert_false(exists("A/B"));
	assert_int_equal(store_rename_mailbox(st, "C", "X"),
	    MSYNC_ERR_NOTFOUND);	/* C is not a mailbox */
	assert_int_equal(store_delete_mailbox(st, "C/D/E"), 0);
	assert_false(exists("C/D/E"));
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	assert_int_equal(n, 2);
	store_mailboxes_free(mb, n);
	store_close(st);
}

static void
test_clash_never_overwrites(void **state)
{
	struct store		*st;
	struct store_save	*s;
	struct msglist		 l = { 0 };
	char			 tmpname[300], target[600];
	uint32_t		 uid;

	st = open_store(LAYOUT_MAILDIRPP, 0);
	assert_int_equal(store_save_begin(st, "INBOX", &s), 0);
	assert_int_equal(store_save_write(s, "new\n", 4), 0);
	only_file("tmp", tmpname, sizeof(tmpname));
	/* Someone else took the name the commit would use. */
	snprintf(target, sizeof(target), "cur/%s,S=4:2,", tmpname);
	put(target, "old\n");
	assert_int_equal(store_save_commit(s, 0, NULL, 7, NULL, &uid), 0);
	assert_int_equal(store_flush(st), 0);
	assert_int_equal(count_dir("cur"), 2);
	{
		char	path[800], buf[8] = { 0 };
		FILE	*f;

		snprintf(path, sizeof(path), "%s/%s", root, target);
		assert_non_null(f = fopen(path, "r"));
		assert_non_null(fgets(buf, sizeof(buf), f));
		fclose(f);
		assert_string_equal(buf, "old\n");
	}
	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 2);
	msglist_free(&l);
	store_close(st);
}

/* The bytes of root/rel, NUL-terminated, in buf. */
static size_t
slurp(const char *rel, char *buf, size_t sz)
{
	char	path[512];
	FILE	*f;
	size_t	n;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	assert_non_null(f = fopen(path, "r"));
	n = fread(buf, 1, sz - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n;
}

/*
 * Issue 11: a folder that has its index but no cur/ (a racer, a
 * half-finished restore) is never taken for a new one: creating it
 * refuses (store changed), opening it refuses, and the index stays as
 * it was; with cur/ back, the old identity is there.
 */
static void
test_incomplete_folder_kept(void **state)
{
	struct store		*st;
	struct store_mailbox	*mb = NULL;
	struct msglist		 l = { 0 };
	struct store_save	*s;
	char			 before[4096], after[4096], path[600], p2[600];
	size_t			 n, i;
	int			 found = 0;

	st = open_store(LAYOUT_MAILDIRPP, 0);
	assert_int_equal(store_create_mailbox(st, "W", NULL), 0);
	save(st, "W", "Subject: w\n\nkeep me\n", 0, NULL, 7);
	store_close(st);
	slurp(".W/msync.index", before, sizeof(before));
	snprintf(path, sizeof(path), "%s/.W/cur", root);
	snprintf(p2, sizeof(p2), "%s/W-cur.away", root);
	assert_int_equal(rename(path, p2), 0);

	st = open_store(LAYOUT_MAILDIRPP, 0);
	assert_int_equal(store_create_mailbox(st, "W", NULL),
	    MSYNC_ERR_STORE_CHANGED);
	assert_false(exists(".W/cur"));
	assert_int_equal(store_list_messages(st, "W", &l),
	    MSYNC_ERR_STORE_CHANGED);
	assert_int_equal(store_save_begin(st, "W", &s),
	    MSYNC_ERR_STORE_CHANGED);
	/* Listed, as its index last saw it, so nobody deletes it. */
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	for (i = 0; i < n; i++)
		if (strcmp(mb[i].name, "W") == 0) {
			found = 1;
			assert_int_equal(mb[i].count, 1);
			assert_int_equal(mb[i].modseq, 0);
		}
	assert_true(found);
	store_mailboxes_free(mb, n);
	assert_int_equal(store_flush(st), MSYNC_ERR_STORE_CHANGED);
	store_close(st);
	slurp(".W/msync.index", after, sizeof(after));
	assert_string_equal(before, after);

	/* cur/ back: the same index, the message under its old UID. */
	assert_int_equal(rename(p2, path), 0);
	st = open_store(LAYOUT_MAILDIRPP, 0);
	assert_int_equal(store_list_messages(st, "W", &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].uid, 1);
	msglist_free(&l);
	assert_int_equal(store_flush(st), 0);
	store_close(st);
}

/*
 * Issue 11: flag renames and expunges reach a message through cur/ and
 * new/ opened without following symlinks: with cur/ swapped for a
 * symlink to another directory, nothing in that directory changes.
 */
static void
test_swapped_cur_not_followed(void **state)
{
	struct store	*st;
	char		 path[600], p2[600], outside[600], cmd[2048];
	uint32_t	 uid;

	st = open_store(LAYOUT_MAILDIRPP, 0);
	uid = save(st, "INBOX", "Subject: x\n\nbody\n", 0, NULL, 7);
	/* The same file, by name, in a directory outside the store. */
	snprintf(outside, sizeof(outside), "%s.out", root);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir '%s' && "
	    "cp -p '%s'/cur/* '%s'/", outside, outside, root, outside);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/cur", root);
	snprintf(p2, sizeof(p2), "%s/cur.away", root);
	assert_int_equal(rename(path, p2), 0);
	assert_int_equal(symlink(outside, path), 0);
	assert_int_not_equal(store_set_flags(st, "INBOX", uid, FLAG_SEEN,
	    NULL), 0);
	assert_int_not_equal(store_expunge(st, "INBOX", uid), 0);
	(void)store_flush(st);
	store_close(st);
	/* The outside file is still there, under its old name. */
	snprintf(cmd, sizeof(cmd), "test \"$(ls '%s')\" = \"$(ls '%s')\"",
	    outside, p2);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rename(p2, path), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", outside);
	assert_int_equal(system(cmd), 0);
}

static void
test_links_skipped(void **state)
{
	struct store	*st;
	struct msglist	 l = { 0 };
	char		 a[512], b[512];

	st = open_store(LAYOUT_MAILDIRPP, 0);
	put("cur/1.M1P1.h:2,", "one\n");
	put("cur/2.M1P1.h:2,", "two\n");
	snprintf(a, sizeof(a), "%s/cur/2.M1P1.h:2,", root);
	snprintf(b, sizeof(b), "%s/tmp/elsewhere", root);
	assert_int_equal(link(a, b), 0);
	snprintf(b, sizeof(b), "%s/cur/3.M1P1.h:2,", root);
	assert_int_equal(symlink("/etc/passwd", b), 0);
	put("cur/.junk", "x\n");
	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 1);
	msglist_free(&l);
	assert_true(exists("cur/2.M1P1.h:2,"));
	assert_true(exists("cur/3.M1P1.h:2,"));
	assert_true(exists("cur/.junk"));
	store_close(st);
}

static void
test_corrupt_index(void **state)
{
	struct store		*st;
	struct store_mailbox	*mb;
	size_t			 n;
	uint32_t		 uv;
	char			 path[512];
	FILE			*f;

	st = open_store(LAYOUT_MAILDIRPP, 0);
	put("cur/1.M1P1.h:2,", "one\n");
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	uv = mb[0].uidvalidity;
	store_mailboxes_free(mb, n);
	store_close(st);
	/* Flip one byte in the middle of the index. */
	snprintf(path, sizeof(path), "%s/%s", root, INDEX_FILE);
	assert_non_null(f = fopen(path, "r+"));
	fseek(f, 40, SEEK_SET);
	fputc('#', f);
	fclose(f);
	st = open_store(LAYOUT_MAILDIRPP, 0);
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	assert_int_equal(n, 1);
	assert_int_not_equal(mb[0].uidvalidity, uv);
	assert_int_equal(mb[0].count, 1);
	store_mailboxes_free(mb, n);
	store_close(st);
}

static void
test_lock(void **state)
{
	struct store_opts	 o;
	struct store		*st, *st2 = NULL;
	char			*holder = NULL, want[64];

	st = open_store(LAYOUT_MAILDIRPP, 0);
	memset(&o, 0, sizeof(o));
	o.path = root;
	o.lock_wait = 1;
	assert_int_equal(store_open(&o, &st2, &holder), MSYNC_ERR_LOCKED);
	assert_null(st2);
	assert_non_null(holder);
	snprintf(want, sizeof(want), "pid %ld on ", (long)getpid());
	assert_int_equal(strncmp(holder, want, strlen(want)), 0);
	free(holder);
	store_close(st);
	assert_int_equal(store_open(&o, &st2, &holder), 0);
	store_close(st2);
}

/* A listing of every path, type, size, mtime and content hash. */
static void
snapshot(const char *out)
{
	char	cmd[1024];

	snprintf(cmd, sizeof(cmd), "cd '%s' && { find . -printf "
	    "'%%p %%y %%s %%T@ %%m\\n' | sort; find . -type f -exec "
	    "md5sum {} + | sort; } > '%s'", root, out);
	assert_int_equal(system(cmd), 0);
}

static void
test_readonly(void **state)
{
	struct store		*st;
	struct store_mailbox	*mb;
	struct store_save	*s;
	struct msglist		 l = { 0 };
	struct guid		 g;
	char			 a[256], b[256], cmd[600];
	size_t			 n;
	struct store_msg	*sm;

	/* A tree made by someone else, never indexed. */
	mk("");
	mk("cur");
	mk("new");
	mk("tmp");
	mk(".A");
	mk(".A/cur");
	mk(".A/new");
	put("cur/1.M1P1.h:2,S", "one\n");
	put("new/2.M1P1.h", "two\n");
	put(".A/cur/3.M1P1.h:2,a", "three\n");
	put(".A/dovecot-keywords", "0 work\n");
	snprintf(a, sizeof(a), "%s.a", root);
	snprintf(b, sizeof(b), "%s.b", root);
	snapshot(a);
	st = open_store(LAYOUT_MAILDIRPP, 1);
	assert_int_equal(store_list_mailboxes(st, &mb, &n), 0);
	assert_int_equal(n, 2);
	store_mailboxes_free(mb, n);
	assert_int_equal(store_list_messages(st, "A", &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].kw, "work");
	assert_int_equal(store_msg_open(st, "A", l.v[0].uid, &sm, NULL,
	    NULL), 0);
	store_msg_close(sm);
	msglist_free(&l);
	assert_int_equal(store_save_begin(st, "INBOX", &s),
	    MSYNC_ERR_READONLY);
	assert_int_equal(store_set_flags(st, "INBOX", 1, 0, NULL),
	    MSYNC_ERR_READONLY);
	assert_int_equal(store_expunge(st, "INBOX", 1), MSYNC_ERR_READONLY);
	assert_int_equal(store_create_mailbox(st, "B", NULL),
	    MSYNC_ERR_READONLY);
	assert_int_equal(store_rename_mailbox(st, "A", "B"),
	    MSYNC_ERR_READONLY);
	assert_int_equal(store_delete_mailbox(st, "A"), MSYNC_ERR_READONLY);
	memset(&g, 1, sizeof(g));
	assert_int_equal(store_set_mailbox_guid(st, "A", &g),
	    MSYNC_ERR_READONLY);
	assert_int_equal(store_close(st), 0);
	/* Again, now from the cached index. */
	st = open_store(LAYOUT_MAILDIRPP, 1);
	assert_int_equal(store_list_messages(st, "INBOX", &l), 0);
	assert_int_equal(l.n, 2);
	msglist_free(&l);
	store_close(st);
	snapshot(b);
	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	assert_int_equal(system(cmd), 0);
	/* The indexes went to the cache. */
	snprintf(cmd, sizeof(cmd), "test $(ls '%s/index' | grep -c "
	    "'\\.index$') -eq 2", cache);
	assert_int_equal(system(cmd), 0);
	unlink(a);
	unlink(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_save_list_open, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_flags_keywords, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_expunge_and_renamed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailboxes_pp, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mailboxes_fs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_clash_never_overwrites,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_incomplete_folder_kept,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_swapped_cur_not_followed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_links_skipped, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_index, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup,
		    teardown),
	};

	if (getenv("TEST_VERBOSE") == NULL)
		log_verbosity = -1;	/* the skip warnings are expected */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
