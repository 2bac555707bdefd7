/*
 * test_state.c — the sync state: encode/decode round trips, a file cut at
 * every byte, flipped bytes, bad versions, hostile counts, trailing data,
 * atomic save with Nth-call-fails injection, state_path.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "msync.h"
#include "state.h"

/* state.c's test hook: the nth write/fsync/rename of state_save fails. */
extern int state_test_fail;

#define GP(x, y)	(&(struct guid){ .b = { [0] = (x), [15] = (y) } })

static struct guid
G(int a, int b)
{
	struct guid	 g;

	memset(&g, 0, sizeof(g));
	g.b[0] = (uint8_t)a;
	g.b[15] = (uint8_t)b;
	return g;
}

static void
add_msg(struct state_mbox *mb, int g, uint32_t ua, uint32_t ub,
    uint8_t fa, uint8_t fb, const char *ka, const char *kb)
{
	struct state_msg	 m;

	memset(&m, 0, sizeof(m));
	m.guid = G(g, 1);
	m.uid[0] = ua;
	m.uid[1] = ub;
	m.flags[0] = fa;
	m.flags[1] = fb;
	m.kw[0] = (char *)ka;
	m.kw[1] = (char *)kb;
	assert_int_equal(state_add_msg(mb, &m), 0);
}

/* A small state with two mailboxes (added out of order), tombstones, kw. */
static void
make_state(struct state *st)
{
	struct state_mbox	*mb;

	memset(st, 0, sizeof(*st));
	assert_int_equal(state_add_mbox(st, GP(9, 0), "Archive/2024", &mb), 0);
	mb->uidvalidity[0] = 1700000000;
	mb->uidvalidity[1] = 7;
	mb->modseq[0] = 0x123456789aULL;
	mb->modseq[1] = 0;
	add_msg(mb, 'c', 3, 0, FLAG_SEEN, 0, "work", NULL);
	add_msg(mb, 'a', 1, 1, FLAG_SEEN | FLAG_FLAGGED, FLAG_SEEN,
	    "$Forwarded work", "work");
	add_msg(mb, 'b', 0, 2, 0, FLAG_ALL, NULL, NULL);
	assert_int_equal(state_add_mbox(st, GP(2, 0), "INBOX", &mb), 0);
	mb->uidvalidity[0] = mb->uidvalidity[1] = 1;
	mb->modseq[0] = mb->modseq[1] = 42;
	state_sort(st);
}

static void
assert_state_equal(const struct state *a, const struct state *b)
{
	size_t	 i, j;
	int	 s;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		const struct state_mbox *x = &a->mb[i], *y = &b->mb[i];

		assert_int_equal(guid_cmp(&x->guid, &y->guid), 0);
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->nmsgs, y->nmsgs);
		for (s = 0; s < 2; s++) {
			assert_int_equal(x->uidvalidity[s], y->uidvalidity[s]);
			assert_true(x->modseq[s] == y->modseq[s]);
		}
		for (j = 0; j < x->nmsgs; j++) {
			const struct state_msg *m = &x->msgs[j];
			const struct state_msg *n = &y->msgs[j];

			assert_int_equal(guid_cmp(&m->guid, &n->guid), 0);
			for (s = 0; s < 2; s++) {
				assert_int_equal(m->uid[s], n->uid[s]);
				assert_int_equal(m->flags[s], n->flags[s]);
				if (m->kw[s] == NULL)
					assert_null(n->kw[s]);
				else
					assert_string_equal(m->kw[s], n->kw[s]);
			}
		}
	}
}

/* Rewrites the checksum of buf after an edit, so the parser sees it. */
static void
fix_sum(uint8_t *buf, size_t len)
{
	uint64_t	 h = XXH3_64bits(buf, len - 8);
	int		 i;

	for (i = 0; i < 8; i++)
		buf[len - 8 + i] = (h >> (8 * i)) & 0xff;
}

static void
test_roundtrip(void **unused)
{
	struct state	 st, back;
	uint8_t		*buf, *buf2;
	size_t		 len, len2;

	make_state(&st);
	assert_int_equal(st.mb[0].guid.b[0], 2);	/* sorted */
	assert_int_equal(st.mb[1].msgs[0].uid[0], 0);	/* tombstone first */
	assert_int_equal(state_encode(&st, &buf, &len), 0);
	assert_int_equal(state_decode(buf, len, &back), 0);
	assert_state_equal(&st, &back);
	assert_int_equal(state_encode(&back, &buf2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	assert_non_null(state_find(&back, GP(9, 0)));
	assert_string_equal(state_find(&back, GP(2, 0))->name, "INBOX");
	assert_null(state_find(&back, GP(5, 0)));
	free(buf);
	free(buf2);
	state_clear(&st);
	state_clear(&back);
	state_clear(&back);		/* twice is fine */
	state_clear(NULL);
}

static void
test_empty(void **unused)
{
	struct state	 st, back;
	uint8_t		*buf;
	size_t		 len;

	memset(&st, 0, sizeof(st));
	assert_int_equal(state_encode(&st, &buf, &len), 0);
	assert_int_equal(len, 8 + 4 + 4 + 8);
	assert_int_equal(state_decode(buf, len, &back), 0);
	assert_int_equal(back.n, 0);
	assert_null(state_find(&back, GP(1, 0)));
	free(buf);
}

static void
test_truncated(void **unused)
{
	struct state	 st, back;
	uint8_t		*buf, *cp;
	size_t		 len, i;

	make_state(&st);
	assert_int_equal(state_encode(&st, &buf, &len), 0);
	for (i = 0; i < len; i++) {
		/* A heap copy of exactly i bytes, so ASan sees overreads. */
		cp = malloc(i + 1);
		memcpy(cp, buf, i);
		assert_int_equal(state_decode(cp, i, &back),
		    MSYNC_ERR_STATE_CORRUPT);
		assert_int_equal(back.n, 0);
		assert_null(back.mb);
		free(cp);
	}
	free(buf);
	state_clear(&st);
}

static void
test_flipped(void **unused)
{
	struct state	 st, back;
	uint8_t		*buf;
	size_t		 len, i;
	int		 bit;

	make_state(&st);
	assert_int_equal(state_encode(&st, &buf, &len), 0);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit += 3) {
			buf[i] ^= (uint8_t)(1 << bit);
			assert_int_equal(state_decode(buf, len, &back),
			    MSYNC_ERR_STATE_CORRUPT);
			buf[i] ^= (uint8_t)(1 << bit);
		}
	}
	assert_int_equal(state_decode(buf, len, &back), 0);
	state_clear(&back);
	free(buf);
	state_clear(&st);
}

static void
test_bad_version(void **unused)
{
	struct state	 st, back;
	uint8_t		*buf;
	size_t		 len;

	make_state(&st);
	assert_int_equal(state_encode(&st, &buf, &len), 0);
	buf[8] = 2;			/* version 2, valid checksum */
	fix_sum(buf, len);
	assert_int_equal(state_decode(buf, len, &back),
	    MSYNC_ERR_STATE_CORRUPT);
	buf[8] = 1;
	buf[0] = 'X';			/* bad magic, valid checksum */
	fix_sum(buf, len);
	assert_int_equal(state_decode(buf, len, &back),
	    MSYNC_ERR_STATE_CORRUPT);
	buf[0] = 'M';
	fix_sum(buf, len);
	assert_int_equal(state_decode(buf, len, &back), 0);
	state_clear(&back);
	free(buf);
	state_clear(&st);
}

static void
test_trailing(void **unused)
{
	struct state	 st, back;
	uint8_t		*buf, *big;
	size_t		 len;

	make_state(&st);
	assert_int_equal(state_encode(&st, &buf, &len), 0);
	/* One byte after the checksum. */
	big = calloc(1, len + 1);
	memcpy(big, buf, len);
	assert_int_equal(state_decode(big, len + 1, &back),
	    MSYNC_ERR_STATE_CORRUPT);
	/* One byte before the checksum, with the checksum fixed. */
	memcpy(big, buf, len - 8);
	big[len - 8] = 0;
	fix_sum(big, len + 1);
	assert_int_equal(state_decode(big, len + 1, &back),
	    MSYNC_ERR_STATE_CORRUPT);
	free(big);
	free(buf);
	state_clear(&st);
}

/* Little-endian u32 at p. */
static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

/* A hand-built file: header, one mailbox named name with one message. */
static size_t
one_msg_file(uint8_t *b, const char *name, uint32_t nmbox, uint32_t nmsgs,
    uint32_t ua, uint32_t ub, uint8_t fa, uint16_t kwlen, const char *kw)
{
	size_t	 o = 0, nl = strlen(name);

	memcpy(b, "MSYNCST", 8);
	o = 8;
	put32(b + o, 1);
	o += 4;
	put32(b + o, nmbox);
	o += 4;
	memset(b + o, 1, 16);
	o += 16;
	put32(b + o, (uint32_t)nl);
	o += 4;
	memcpy(b + o, name, nl);
	o += nl;
	memset(b + o, 0, 24);		/* uidvalidity, modseq */
	o += 24;
	put32(b + o, nmsgs);
	o += 4;
	memset(b + o, 2, 16);
	o += 16;
	put32(b + o, ua);
	o += 4;
	put32(b + o, ub);
	o += 4;
	b[o++] = fa;
	b[o++] = 0;
	b[o++] = kwlen & 0xff;
	b[o++] = kwlen >> 8;
	memcpy(b + o, kw, strlen(kw));
	o += strlen(kw);
	b[o++] = 0;
	b[o++] = 0;
	o += 8;
	fix_sum(b, o);
	return o;
}

static void
test_hostile(void **unused)
{
	static uint8_t	 b[4096];
	struct state	 back;
	size_t		 len;

	len = one_msg_file(b, "INBOX", 1, 1, 1, 1, 0, 4, "work");
	assert_int_equal(state_decode(b, len, &back), 0);
	assert_string_equal(back.mb[0].msgs[0].kw[0], "work");
	state_clear(&back);
	/* Counts far beyond the bytes present. */
	len = one_msg_file(b, "INBOX", 0xffffffff, 1, 1, 1, 0, 0, "");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	len = one_msg_file(b, "INBOX", 1, 0xffffffff, 1, 1, 0, 0, "");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	len = one_msg_file(b, "INBOX", 1, 2, 1, 1, 0, 0, "");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	len = one_msg_file(b, "INBOX", 2, 1, 1, 1, 0, 0, "");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	/* Both uids 0; unknown flags; a long or NUL-bearing keyword. */
	len = one_msg_file(b, "INBOX", 1, 1, 0, 0, 0, 0, "");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	len = one_msg_file(b, "INBOX", 1, 1, 1, 0, 0x40, 0, "");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	len = one_msg_file(b, "INBOX", 1, 1, 1, 0, 0, 0xffff, "");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	len = one_msg_file(b, "INBOX", 1, 1, 1, 0, 0, 3, "a\0b");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	/* Empty name; name with a NUL. */
	len = one_msg_file(b, "", 1, 1, 1, 0, 0, 0, "");
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	len = one_msg_file(b, "IN", 1, 1, 1, 0, 0, 0, "");
	b[8 + 4 + 4 + 16 + 4 + 1] = '\0';
	fix_sum(b, len);
	assert_int_equal(state_decode(b, len, &back), MSYNC_ERR_STATE_CORRUPT);
	assert_int_equal(state_decode(NULL, 0, &back), MSYNC_ERR_STATE_CORRUPT);
}

static void
test_duplicates(void **unused)
{
	struct state		 st, back;
	struct state_mbox	*mb;
	uint8_t			*buf;
	size_t			 len;

	/* The same mailbox GUID twice. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(state_add_mbox(&st, GP(1, 0), "A", &mb), 0);
	assert_int_equal(state_add_mbox(&st, GP(1, 0), "B", &mb), 0);
	assert_int_equal(state_encode(&st, &buf, &len), 0);
	assert_int_equal(state_decode(buf, len, &back),
	    MSYNC_ERR_STATE_CORRUPT);
	free(buf);
	state_clear(&st);
	/* One uid twice on side B. */
	assert_int_equal(state_add_mbox(&st, GP(1, 0), "A", &mb), 0);
	add_msg(mb, 'a', 1, 5, 0, 0, NULL, NULL);
	add_msg(mb, 'b', 2, 5, 0, 0, NULL, NULL);
	assert_int_equal(state_encode(&st, &buf, &len), 0);
	assert_int_equal(state_decode(buf, len, &back),
	    MSYNC_ERR_STATE_CORRUPT);
	free(buf);
	/* Limits on encode. */
	free(st.mb[0].name);
	st.mb[0].name = strdup("");
	assert_int_equal(state_encode(&st, &buf, &len), MSYNC_ERR_BADNAME);
	state_clear(&st);
}

static char tmpdir[] = "/tmp/test_state.XXXXXX";

static int
count_files(const char *dir)
{
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_save_load(void **unused)
{
	struct state	 st, back;
	struct stat	 sb;
	char		 path[512], dir[256];
	FILE		*f;

	snprintf(dir, sizeof(dir), "%s/a/b", tmpdir);
	snprintf(path, sizeof(path), "%s/x.state", dir);
	/* Missing: empty and 0. */
	assert_int_equal(state_load(path, &back), 0);
	assert_int_equal(back.n, 0);
	make_state(&st);
	assert_int_equal(state_save(path, &st), 0);
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(count_files(dir), 1);
	assert_int_equal(state_load(path, &back), 0);
	assert_state_equal(&st, &back);
	state_clear(&back);
	/* Overwrite with an empty state. */
	state_clear(&st);
	assert_int_equal(state_save(path, &st), 0);
	assert_int_equal(state_load(path, &back), 0);
	assert_int_equal(back.n, 0);
	/* Torn file. */
	f = fopen(path, "r+");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 10), 0);
	fclose(f);
	assert_int_equal(state_load(path, &back), MSYNC_ERR_STATE_CORRUPT);
	assert_int_equal(back.n, 0);
	/* A directory where the file should be: unreadable. */
	snprintf(path, sizeof(path), "%s/a", tmpdir);
	assert_int_equal(state_load(path, &back), MSYNC_ERR_STATE_CORRUPT);
	/* A file where a directory should be. */
	snprintf(path, sizeof(path), "%s/a/b/x.state/y.state", tmpdir);
	assert_int_equal(state_save(path, &st), MSYNC_ERR_IO);
}

static void
test_save_faults(void **unused)
{
	struct state	 old, nw, back;
	char		 path[512], dir[256];
	int		 n, r, failed = 0;

	snprintf(dir, sizeof(dir), "%s/faults", tmpdir);
	snprintf(path, sizeof(path), "%s/f.state", dir);
	memset(&old, 0, sizeof(old));
	assert_int_equal(state_save(path, &old), 0);
	make_state(&nw);
	for (n = 1; n < 100; n++) {
		state_test_fail = n;
		r = state_save(path, &nw);
		if (r == 0 && state_test_fail != 0) {
			state_test_fail = 0;	/* ran out of calls */
			break;
		}
		assert_int_equal(r, MSYNC_ERR_IO);
		assert_int_equal(errno, EIO);
		failed++;
		/* No temporary file is left behind. */
		assert_int_equal(count_files(dir), 1);
		assert_int_equal(state_load(path, &back), 0);
		if (back.n != 0) {
			/* Only the directory fsync came after the rename. */
			assert_state_equal(&nw, &back);
			state_clear(&back);
			assert_int_equal(state_save(path, &old), 0);
		}
	}
	assert_true(failed >= 4);	/* write, fsync, rename, dir fsync */
	assert_int_equal(state_load(path, &back), 0);
	assert_state_equal(&nw, &back);
	state_clear(&back);
	state_clear(&nw);
}

static void
test_path(void **unused)
{
	char	*p1, *p2, *p3;
	size_t	 l;

	assert_int_equal(state_path("/st", "host:Maildir", "/home/u/Maildir",
	    &p1), 0);
	assert_int_equal(strncmp(p1, "/st/", 4), 0);
	l = strlen(p1);
	assert_int_equal(l, 4 + 32 + 6);
	assert_string_equal(p1 + l - 6, ".state");
	assert_int_equal(strspn(p1 + 4, "0123456789abcdef"), 32);
	assert_int_equal(state_path("/st", "host:Maildir", "/home/u/Maildir",
	    &p2), 0);
	assert_string_equal(p1, p2);
	free(p2);
	assert_int_equal(state_path("/st", "/home/u/Maildir", "host:Maildir",
	    &p2), 0);
	assert_string_not_equal(p1, p2);
	free(p2);
	/* "ab"+"c" and "a"+"bc" differ. */
	assert_int_equal(state_path("/st", "ab", "c", &p2), 0);
	assert_int_equal(state_path("/st", "a", "bc", &p3), 0);
	assert_string_not_equal(p2, p3);
	free(p2);
	free(p3);
	setenv("XDG_STATE_HOME", "/xdg", 1);
	assert_int_equal(state_path(NULL, "host:Maildir", "/home/u/Maildir",
	    &p2), 0);
	assert_string_equal(p2 + strlen("/xdg/msync/"), p1 + 4);
	assert_int_equal(strncmp(p2, "/xdg/msync/", 11), 0);
	free(p2);
	unsetenv("XDG_STATE_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(state_path(NULL, "x", "y", &p2), 0);
	assert_int_equal(strncmp(p2, "/home/u/.local/state/msync/", 27), 0);
	free(p2);
	unsetenv("HOME");
	assert_int_equal(state_path(NULL, "x", "y", &p2), MSYNC_ERR_USAGE);
	free(p1);
}

static int
setup_tmp(void **unused)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_tmp(void **unused)
{
	char	 cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_flipped),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_trailing),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_save_faults),
		cmocka_unit_test(test_path),
	};

	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
