/*
 * test_index.c — Maildir file names (mdname.c) and the per-folder index
 * (index.c): parse tables, round trip, corruption at every byte, rescans
 * against a real directory, keywords, and Nth-call-fails injection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "msync.h"
#include "guid.h"
#include "index.h"
#include "log.h"
#include "mdname.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const struct {
	const char	*name;
	int		 ok;
	size_t		 base_len;
	uint8_t		 flags;
	uint32_t	 kw;
	int		 has_size;
	uint64_t	 size;
	int		 has_vsize;
	uint64_t	 vsize;
} parse_cases[] = {
	{ "1700000000.M1P2Q3.host", 1, 22, 0, 0, 0, 0, 0, 0 },
	{ "x:2,", 1, 1, 0, 0, 0, 0, 0, 0 },
	{ "x:2,D", 1, 1, FLAG_DRAFT, 0, 0, 0, 0, 0 },
	{ "x:2,F", 1, 1, FLAG_FLAGGED, 0, 0, 0, 0, 0 },
	{ "x:2,P", 1, 1, FLAG_PASSED, 0, 0, 0, 0, 0 },
	{ "x:2,R", 1, 1, FLAG_REPLIED, 0, 0, 0, 0, 0 },
	{ "x:2,S", 1, 1, FLAG_SEEN, 0, 0, 0, 0, 0 },
	{ "x:2,T", 1, 1, FLAG_TRASHED, 0, 0, 0, 0, 0 },
	{ "x:2,DFPRST", 1, 1, FLAG_ALL, 0, 0, 0, 0, 0 },
	{ "x:2,Sac", 1, 1, FLAG_SEEN, 0x5, 0, 0, 0, 0 },
	{ "x:2,z", 1, 1, 0, 1u << 25, 0, 0, 0, 0 },
	{ "x:2,S1Z", 1, 1, FLAG_SEEN, 0, 0, 0, 0, 0 },
	{ "x:1,S", 1, 1, 0, 0, 0, 0, 0, 0 },	/* old info: no flags */
	{ "a,S=123:2,S", 1, 7, FLAG_SEEN, 0, 1, 123, 0, 0 },
	{ "a,S=123,W=130:2,", 1, 13, 0, 0, 1, 123, 1, 130 },
	{ "a,W=9,S=8", 1, 9, 0, 0, 1, 8, 1, 9 },
	{ "a,S=:2,", 1, 4, 0, 0, 0, 0, 0, 0 },
	{ "a,S=1x", 1, 6, 0, 0, 0, 0, 0, 0 },
	{ "a,", 1, 2, 0, 0, 0, 0, 0, 0 },
	{ "", 0, 0, 0, 0, 0, 0, 0, 0 },
	{ ".hidden", 0, 0, 0, 0, 0, 0, 0, 0 },
	{ ":2,S", 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "a/b", 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "a\nb", 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "a\x7f", 0, 0, 0, 0, 0, 0, 0, 0 },
	{ "\xc3\xa4", 0, 0, 0, 0, 0, 0, 0, 0 },
};

static void
test_mdname_parse(void **state)
{
	struct mdname	md;
	char		long_name[300];
	size_t		i;
	uint32_t	kw;
	uint8_t		flags;

	for (i = 0; i < LEN(parse_cases); i++) {
		int r = mdname_parse(parse_cases[i].name, &md);

		if (!parse_cases[i].ok) {
			if (r != MSYNC_ERR_BADNAME)
				fail_msg("accepted '%s'", parse_cases[i].name);
			continue;
		}
		if (r != 0)
			fail_msg("refused '%s'", parse_cases[i].name);
		assert_int_equal(md.base_len, parse_cases[i].base_len);
		assert_int_equal(md.flags, parse_cases[i].flags);
		assert_int_equal(md.kwbits, parse_cases[i].kw);
		assert_int_equal(md.has_size, parse_cases[i].has_size);
		assert_int_equal(md.size, parse_cases[i].size);
		assert_int_equal(md.has_vsize, parse_cases[i].has_vsize);
		assert_int_equal(md.vsize, parse_cases[i].vsize);
		/* The listing's shortcut reads the same flags. */
		mdname_info(parse_cases[i].name, &flags, &kw);
		assert_int_equal(flags, parse_cases[i].flags);
		assert_int_equal(kw, parse_cases[i].kw);
	}
	/* Bytes the table must stop at, anywhere in the name. */
	assert_int_equal(mdname_parse("ab\x01", &md), MSYNC_ERR_BADNAME);
	assert_int_equal(mdname_parse("a:2,S/", &md), MSYNC_ERR_BADNAME);
	assert_int_equal(mdname_parse("a:2,S\xff", &md), MSYNC_ERR_BADNAME);
	assert_int_equal(mdname_parse("a:b:2,S", &md), 0);
	assert_int_equal(md.base_len, 1);
	memset(long_name, 'a', 256);
	long_name[256] = '\0';
	assert_int_equal(mdname_parse(long_name, &md), MSYNC_ERR_BADNAME);
	long_name[255] = '\0';
	assert_int_equal(mdname_parse(long_name, &md), 0);
	/* The index's check of a name (no NUL at its end) agrees. */
	for (i = 0; i < LEN(parse_cases); i++)
		if ((mdname_check(parse_cases[i].name,
		    strlen(parse_cases[i].name)) == 0) != parse_cases[i].ok)
			fail_msg("mdname_check differs on '%s'",
			    parse_cases[i].name);
	assert_int_equal(mdname_check(long_name, 255), 0);
	long_name[255] = 'a';		/* 256 bytes: too long */
	assert_int_equal(mdname_check(long_name, 256), MSYNC_ERR_BADNAME);
	assert_int_equal(mdname_check("ab\0c", 4), MSYNC_ERR_BADNAME);
	assert_int_equal(mdname_check("a:2,S/", 6), MSYNC_ERR_BADNAME);
	assert_int_equal(mdname_check("a:2,S/", 5), 0);
	/*
	 * Every byte value at every place of a 19-byte name (the check
	 * reads 8 bytes at a time, then bytes): as mdname_parse decides.
	 */
	for (i = 0; i < 19 * 256; i++) {
		char	nm[20];
		int	 want;

		memset(nm, 'a', 19);
		nm[19] = '\0';
		nm[i / 256] = (char)(i % 256);
		want = i % 256 == 0 ? MSYNC_ERR_BADNAME : mdname_parse(nm, &md);
		if (mdname_check(nm, 19) != want)
			fail_msg("mdname_check: byte 0x%02zx at %zu", i % 256,
			    i / 256);
	}
}

static const struct {
	const char	*old;
	uint8_t		 flags;
	uint32_t	 kw;
	const char	*want;
} build_cases[] = {
	{ "x", 0, 0, "x:2," },
	{ "x", FLAG_SEEN, 0, "x:2,S" },
	{ "x:2,S", FLAG_SEEN | FLAG_FLAGGED, 0x5, "x:2,FSac" },
	{ "x:2,DFPRST", 0, 0, "x:2," },
	{ "x:2,S1Z", FLAG_REPLIED, 0, "x:2,1RZ" },	/* others' letters */
	{ "x,S=5:2,Sb", FLAG_ALL, 1u << 25, "x,S=5:2,DFPRSTz" },
	{ "x:1,weird", FLAG_SEEN, 0, "x:2,S" },
};

static void
test_mdname_build(void **state)
{
	char	out[300];
	char	fs[7];
	size_t	i;

	for (i = 0; i < LEN(build_cases); i++) {
		assert_int_equal(mdname_build(build_cases[i].old,
		    build_cases[i].flags, build_cases[i].kw, out,
		    sizeof(out)), 0);
		assert_string_equal(out, build_cases[i].want);
	}
	assert_int_equal(mdname_build(".x", 0, 0, out, sizeof(out)),
	    MSYNC_ERR_BADNAME);
	assert_int_equal(mdname_build("xyz", 0, 0, out, 5),
	    MSYNC_ERR_TOOBIG);
	mdname_flagstr(FLAG_SEEN | FLAG_DRAFT, fs);
	assert_string_equal(fs, "DS");
}

/* A small index with a few entries. */
static struct index *
sample_index(void)
{
	struct index	*ix;
	struct guid	 g;
	uint32_t	 uid;
	int		 i;
	char		 name[64];

	assert_int_equal(index_new(NULL, 0, &ix), 0);
	for (i = 0; i < 5; i++) {
		memset(&g, 0x11 * (i + 1), sizeof(g));
		snprintf(name, sizeof(name), "%s/%d.M1P1Q%d.h,S=%d%s",
		    i % 2 ? "new" : "cur", 1700000000 + i, i, 100 + i,
		    i % 2 ? "" : ":2,S");
		assert_int_equal(index_add(ix, &g, 100 + i,
		    1700000000 + i, name, &uid), 0);
		assert_int_equal(uid, i + 1);
	}
	ix->token.valid = 1;
	ix->token.cur_sec = 1700000000;
	ix->token.cur_nsec = 5;
	ix->token.cur_ino = 1234;
	ix->token.new_sec = -3;
	ix->token.new_nsec = 999999999;
	ix->token.new_ino = 0;
	return ix;
}

static void
test_roundtrip(void **state)
{
	struct index	*ix, *back;
	char		*buf, *buf2;
	size_t		 len, len2, i;

	ix = sample_index();
	index_remove(ix, index_find(ix, 3));
	assert_null(index_find(ix, 3));
	assert_int_equal(index_encode(ix, &buf, &len), 0);
	assert_int_equal(index_decode(buf, len, &back), 0);
	assert_int_equal(back->uidvalidity, ix->uidvalidity);
	assert_int_equal(back->uidnext, 6);
	assert_int_equal(back->modseq, ix->modseq);
	assert_int_equal(back->live, 4);
	assert_int_equal(back->bytes, 100 + 101 + 103 + 104);
	assert_memory_equal(&back->guid, &ix->guid, 16);
	assert_memory_equal(&back->token, &ix->token, sizeof(ix->token));
	for (i = 1; i <= 5; i++) {
		struct index_ent *a = index_find(ix, (uint32_t)i);
		struct index_ent *b = index_find(back, (uint32_t)i);

		if (a == NULL) {
			assert_null(b);
			continue;
		}
		assert_non_null(b);
		assert_memory_equal(&a->guid, &b->guid, 16);
		assert_int_equal(a->size, b->size);
		assert_int_equal(a->date, b->date);
		assert_string_equal(index_name(ix, a), index_name(back, b));
	}
	assert_int_equal(index_encode(back, &buf2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	free(buf);
	free(buf2);
	index_free(back);
	/* Invalid token, empty index. */
	ix->token.valid = 0;
	for (i = 1; i <= 5; i++)
		if (index_find(ix, (uint32_t)i) != NULL)
			index_remove(ix, index_find(ix, (uint32_t)i));
	assert_int_equal(index_encode(ix, &buf, &len), 0);
	assert_int_equal(index_decode(buf, len, &back), 0);
	assert_int_equal(back->live, 0);
	assert_int_equal(back->token.valid, 0);
	free(buf);
	index_free(back);
	index_free(ix);
}

static void
test_corrupt_every_byte(void **state)
{
	struct index	*ix, *back;
	char		*buf;
	size_t		 len, i;

	ix = sample_index();
	assert_int_equal(index_encode(ix, &buf, &len), 0);
	for (i = 0; i < len; i++) {
		back = (struct index *)1;
		assert_int_equal(index_decode(buf, i, &back),
		    MSYNC_ERR_STATE_CORRUPT);
		assert_null(back);
	}
	for (i = 0; i < len; i++) {
		buf[i] ^= 0x01;
		assert_int_equal(index_decode(buf, len, &back),
		    MSYNC_ERR_STATE_CORRUPT);
		buf[i] ^= 0x01;
		buf[i] ^= 0x40;
		assert_int_equal(index_decode(buf, len, &back),
		    MSYNC_ERR_STATE_CORRUPT);
		buf[i] ^= 0x40;
	}
	assert_int_equal(index_decode(buf, len, &back), 0);
	index_free(back);
	free(buf);
	index_free(ix);
}

/* Bodies with a correct checksum that must still be refused. */
static const char *const bad_bodies[] = {
	/* unknown version */
	"msync-index 3\nuidvalidity 1\nuidnext 2\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 0\n",
	/* version 2 without its bytes and head lines */
	"msync-index 2\nuidvalidity 1\nuidnext 2\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 0\n",
	/* uidvalidity 0 */
	"msync-index 1\nuidvalidity 0\nuidnext 2\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 0\n",
	/* uid >= uidnext */
	"msync-index 1\nuidvalidity 1\nuidnext 2\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "2 00000000000000000000000000000001 5 0 cur/a:2,S\n",
	/* uids not increasing */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 2\n"
	    "3 00000000000000000000000000000001 5 0 cur/a:2,S\n"
	    "3 00000000000000000000000000000001 5 0 cur/b:2,S\n",
	/* a '/' in the name */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "3 00000000000000000000000000000001 5 0 cur/../../etc\n",
	/* no cur/ or new/ prefix */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "3 00000000000000000000000000000001 5 0 tmp/a\n",
	/* size over the limit */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "3 00000000000000000000000000000001 4294967297 0 cur/a\n",
	/* count over the limit */
	"msync-index 1\nuidvalidity 1\nuidnext 4294967295\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\n"
	    "count 99999999999\n",
	/* fewer lines than count */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 2\n"
	    "3 00000000000000000000000000000001 5 0 cur/a\n",
	/* trailing line */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 0\n"
	    "3 00000000000000000000000000000001 5 0 cur/a\n",
	/* uppercase GUID */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "0000000000000000000000000000000A\nmodseq 1\ntoken -\ncount 0\n",
	/* bad token */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken 1.5 2 3.4 5\n"
	    "count 0\n",
	/* uid overflow */
	"msync-index 1\nuidvalidity 4294967296\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 0\n",
	/* two spaces */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "3  00000000000000000000000000000001 5 0 cur/a\n",
	/* a name with a control character */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "3 00000000000000000000000000000001 5 0 cur/a\tb\n",
	/* a name starting with '.' */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "3 00000000000000000000000000000001 5 0 new/.x\n",
	/* a name with an empty base */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "3 00000000000000000000000000000001 5 0 cur/:2,S\n",
	/* modseq one above UINT64_MAX (the 20th digit overflows) */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 18446744073709551616\n"
	    "token -\ncount 0\n",
	/* a 21-digit number */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 100000000000000000000\n"
	    "token -\ncount 0\n",
	/* a date below INT64_MIN */
	"msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken -\ncount 1\n"
	    "3 00000000000000000000000000000001 5 -9223372036854775809 "
	    "cur/a\n",
};

/* body + a correct checksum line; owned by the caller. */
static char *
with_sum(const char *body, size_t *len)
{
	char	*b;
	size_t	 n = strlen(body);

	assert_non_null(b = malloc(n + 27));
	memcpy(b, body, n);
	snprintf(b + n, 27, "checksum %016" PRIx64 "\n",
	    (uint64_t)XXH3_64bits(body, n));
	*len = n + 26;
	return b;
}

/*
 * Every byte value (but NUL) at every place of an entry's GUID (read 8
 * digits at a time): taken iff it is a lowercase hex digit, and then
 * with the digit's value.
 */
static void
guid_bytes(void)
{
	static const char hex[] = "0123456789abcdef";
	char		 body[512], g[33];
	struct index	*ix;
	char		*b;
	size_t		 len, pos;
	int		 c, v, r;

	for (pos = 0; pos < 32; pos++)
		for (c = 1; c < 256; c++) {
			memcpy(g, "0123456789abcdeffedcba9876543210", 33);
			g[pos] = (char)c;
			snprintf(body, sizeof(body), "msync-index 1\n"
			    "uidvalidity 1\nuidnext 9\nguid "
			    "00000000000000000000000000000001\nmodseq 1\n"
			    "token -\ncount 1\n3 %s 5 0 cur/a:2,S\n", g);
			b = with_sum(body, &len);
			r = index_decode(b, len, &ix);
			free(b);
			v = strchr(hex, c) != NULL ? (int)(strchr(hex, c) - hex)
			    : -1;
			if (v < 0 || c == '\0') {
				if (r != MSYNC_ERR_STATE_CORRUPT)
					fail_msg("GUID byte 0x%02x at %zu taken",
					    c, pos);
				continue;
			}
			if (r != 0)
				fail_msg("GUID byte 0x%02x at %zu refused", c,
				    pos);
			assert_int_equal(pos % 2 ? index_find(ix, 3)->guid.b[pos
			    / 2] & 0xf : index_find(ix, 3)->guid.b[pos / 2] >> 4,
			    v);
			index_free(ix);
		}
}

static void
test_bad_bodies(void **state)
{
	struct index	*ix;
	char		*b;
	size_t		 len, i;

	b = with_sum("msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 1\ntoken "
	    "1.000000005 2 3.000000004 5\ncount 1\n"
	    "3 00000000000000000000000000000001 5 -7 cur/a:2,S\n", &len);
	assert_int_equal(index_decode(b, len, &ix), 0);
	assert_int_equal(index_find(ix, 3)->date, -7);
	assert_int_equal(ix->token.valid, 1);
	assert_int_equal(ix->token.cur_nsec, 5);
	index_free(ix);
	free(b);
	/* The largest numbers are not refused. */
	b = with_sum("msync-index 1\nuidvalidity 1\nuidnext 9\nguid "
	    "00000000000000000000000000000001\nmodseq 18446744073709551615\n"
	    "token -\ncount 1\n"
	    "3 00000000000000000000000000000001 5 9223372036854775807 "
	    "cur/a:2,S\n", &len);
	assert_int_equal(index_decode(b, len, &ix), 0);
	assert_true(ix->modseq == UINT64_MAX);
	assert_true(index_find(ix, 3)->date == INT64_MAX);
	index_free(ix);
	free(b);
	guid_bytes();
	for (i = 0; i < LEN(bad_bodies); i++) {
		b = with_sum(bad_bodies[i], &len);
		if (index_decode(b, len, &ix) != MSYNC_ERR_STATE_CORRUPT)
			fail_msg("accepted bad body #%zu", i);
		free(b);
	}
}

/* A temporary folder with cur/ new/ tmp/; *dir gets its path. */
static int
mkfolder(char *dir, size_t sz)
{
	int	fd;

	snprintf(dir, sz, "/tmp/test_index.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_not_equal(fd = open(dir, O_RDONLY | O_DIRECTORY), -1);
	assert_int_equal(mkdirat(fd, "cur", 0700), 0);
	assert_int_equal(mkdirat(fd, "new", 0700), 0);
	assert_int_equal(mkdirat(fd, "tmp", 0700), 0);
	return fd;
}

static void
put(int dfd, const char *name, const char *content)
{
	int	fd;

	assert_int_not_equal(fd = openat(dfd, name, O_WRONLY | O_CREAT |
	    O_TRUNC, 0600), -1);
	assert_int_equal(write(fd, content, strlen(content)),
	    (ssize_t)strlen(content));
	close(fd);
}

static void
rm_rf(const char *dir)
{
	char	cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/*
 * The header alone (index_load_head): the same fields as a whole load,
 * refused when any header byte is damaged, blind to the messages (which
 * a whole load then refuses); a version 1 file has no checked header and
 * loads whole, marked to be written back in the current format.
 */
static void
test_head(void **state)
{
	struct index		*ix, *back;
	struct index_head	 h;
	char			 dir[64], *buf, *body;
	const char		*v1 = "msync-index 1\nuidvalidity 7\nuidnext 9\n"
	    "guid 00000000000000000000000000000001\nmodseq 3\ntoken -\n"
	    "count 1\n3 00000000000000000000000000000001 5 0 cur/a:2,S\n";
	size_t			 len, headlen, i;
	int			 dfd;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/msync-test-head.%ld", (long)getpid());
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_not_equal(dfd = open(dir, O_RDONLY | O_DIRECTORY), -1);
	assert_int_equal(index_load_head(dfd, "none", &h), MSYNC_ERR_NOTFOUND);

	ix = sample_index();
	assert_int_equal(index_save(ix, dfd, "ix"), 0);
	assert_int_equal(index_load_head(dfd, "ix", &h), 0);
	assert_int_equal(h.version, 3);
	assert_int_equal(h.uidvalidity, ix->uidvalidity);
	assert_int_equal(h.uidnext, ix->uidnext);
	assert_int_equal(h.modseq, ix->modseq);
	assert_int_equal(h.count, ix->live);
	assert_int_equal(h.bytes, ix->bytes);
	assert_memory_equal(&h.guid, &ix->guid, 16);
	assert_memory_equal(&h.token, &ix->token, sizeof(h.token));

	assert_int_equal(index_encode(ix, &buf, &len), 0);
	headlen = (size_t)(strstr(buf, "\nhead ") - buf) + 1;
	for (i = 0; i < headlen; i++) {
		buf[i] ^= 0x01;
		index_write_atomic(dfd, "ix", buf, len);
		assert_int_equal(index_load_head(dfd, "ix", &h),
		    MSYNC_ERR_STATE_CORRUPT);
		buf[i] ^= 0x01;
	}
	/* A damaged message line: the header still reads, the whole not. */
	body = strstr(buf, "\nhead ") + 23;	/* the first message line */
	body[3] ^= 0x01;
	assert_int_equal(index_write_atomic(dfd, "ix", buf, len), 0);
	assert_int_equal(index_load_head(dfd, "ix", &h), 0);
	assert_int_equal(index_load(dfd, "ix", &back),
	    MSYNC_ERR_STATE_CORRUPT);
	free(buf);

	body = with_sum(v1, &len);
	assert_int_equal(index_write_atomic(dfd, "v1", body, len), 0);
	free(body);
	assert_int_equal(index_load_head(dfd, "v1", &h),
	    MSYNC_ERR_STATE_CORRUPT);
	assert_int_equal(index_load(dfd, "v1", &back), 0);
	assert_int_equal(back->uidvalidity, 7);
	assert_int_equal(back->live, 1);
	assert_int_equal(back->bytes, 5);
	assert_true(back->dirty);
	index_free(back);
	index_free(ix);
	close(dfd);
	rm_rf(dir);
}

/* An index of n messages, as sample_index. */
static struct index *
big_index(int n)
{
	struct index	*ix;
	struct guid	 g;
	int		 i;
	char		 name[64];

	assert_int_equal(index_new(NULL, 0, &ix), 0);
	for (i = 0; i < n; i++) {
		memset(&g, 0, sizeof(g));
		memcpy(&g, &i, sizeof(i));
		g.b[15] = 0x5a;
		snprintf(name, sizeof(name), "cur/%d.M%dP1Q1.h,S=%d:2,%s",
		    1700000000 + i, i, 100 + i, i % 3 ? "S" : "");
		assert_int_equal(index_add(ix, &g, 100 + (uint64_t)i,
		    1700000000 + i, name, NULL), 0);
	}
	ix->token.valid = 1;
	ix->token.cur_sec = 1700000000;
	ix->token.cur_nsec = 5;
	ix->token.cur_ino = 1234;
	return ix;
}

/* a and b hold the same messages under the same header. */
static void
same_index(const struct index *a, const struct index *b)
{
	size_t	i, j;

	assert_int_equal(a->uidvalidity, b->uidvalidity);
	assert_int_equal(a->uidnext, b->uidnext);
	assert_int_equal(a->modseq, b->modseq);
	assert_int_equal(a->live, b->live);
	assert_int_equal(a->bytes, b->bytes);
	assert_memory_equal(&a->guid, &b->guid, sizeof(a->guid));
	assert_memory_equal(&a->token, &b->token, sizeof(a->token));
	for (i = j = 0; i < a->n; i++) {
		if (a->v[i].name == INDEX_NAME_DEAD)
			continue;
		while (j < b->n && b->v[j].name == INDEX_NAME_DEAD)
			j++;
		assert_true(j < b->n);
		assert_int_equal(a->v[i].uid, b->v[j].uid);
		assert_memory_equal(&a->v[i].guid, &b->v[j].guid, 16);
		assert_int_equal(a->v[i].size, b->v[j].size);
		assert_int_equal(a->v[i].date, b->v[j].date);
		assert_string_equal(index_name(a, &a->v[i]),
		    index_name(b, &b->v[j]));
		j++;
	}
}

/* The bytes of dfd's file name, in *len. */
static char *
slurp(int dfd, const char *name, size_t *len)
{
	struct stat	 st;
	char		*b;
	int		 fd;

	assert_int_not_equal(fd = openat(dfd, name, O_RDONLY), -1);
	assert_int_equal(fstat(fd, &st), 0);
	assert_non_null(b = malloc((size_t)st.st_size + 1));
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	b[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

/* A few changes: one added, one removed, one renamed, a new token. */
static void
change_some(struct index *ix, int k)
{
	struct guid	 g;
	char		 name[64];

	memset(&g, 0xc0 + k, sizeof(g));
	snprintf(name, sizeof(name), "new/%d.N%dP2Q2.h", 1800000000 + k, k);
	assert_int_equal(index_add(ix, &g, 5000 + (uint64_t)k, 1800000000,
	    name, NULL), 0);
	index_remove(ix, &ix->v[3 * k + 1]);
	snprintf(name, sizeof(name), "cur/%d.M%dP1Q1.h,S=%d:2,FS",
	    1700000000 + 3 * k + 2, 3 * k + 2, 100 + 3 * k + 2);
	assert_int_equal(index_set_name(ix, &ix->v[3 * k + 2], name), 0);
	ix->token.cur_sec += 10;
	ix->token.valid = k % 2;
}

/*
 * The journal (format 3): a save after a few changes appends a batch
 * (the file's old bytes stay as they were), a load replays it, and the
 * header comes from the last line; a journal past a quarter of the base
 * is folded into a rewrite; a file replaced under the index is rewritten,
 * not appended to.
 */
static void
test_journal(void **state)
{
	struct index		*ix, *back;
	struct index_head	 h;
	char			 dir[64], *b0, *b1;
	size_t			 l0, l1;
	int			 dfd, k;

	(void)state;
	dfd = mkfolder(dir, sizeof(dir));
	ix = big_index(200);
	assert_int_equal(index_save(ix, dfd, INDEX_FILE), 0);
	b0 = slurp(dfd, INDEX_FILE, &l0);
	change_some(ix, 0);
	assert_int_equal(index_save(ix, dfd, INDEX_FILE), 0);
	assert_false(ix->dirty);
	b1 = slurp(dfd, INDEX_FILE, &l1);
	assert_true(l1 > l0 && l1 < l0 + 600);
	assert_memory_equal(b0, b1, l0);
	assert_non_null(strstr(b1 + l0, "\nend "));
	free(b0);
	free(b1);
	assert_int_equal(index_load(dfd, INDEX_FILE, &back), 0);
	same_index(ix, back);
	assert_false(back->dirty);
	assert_int_equal(index_load_head(dfd, INDEX_FILE, &h), 0);
	assert_true(h.journal);
	assert_int_equal(h.uidnext, ix->uidnext);
	assert_int_equal(h.modseq, ix->modseq);
	assert_int_equal(h.count, ix->live);
	assert_int_equal(h.bytes, ix->bytes);
	assert_memory_equal(&h.token, &ix->token, sizeof(h.token));

	/* The loaded copy appends to the same file, batch after batch. */
	for (k = 1; k < 4; k++) {
		change_some(back, k);
		assert_int_equal(index_save(back, dfd, INDEX_FILE), 0);
		index_free(ix);
		assert_int_equal(index_load(dfd, INDEX_FILE, &ix), 0);
		same_index(back, ix);
	}
	/* A token alone: an end line. */
	back->token.cur_nsec++;
	back->dirty = 1;
	b0 = slurp(dfd, INDEX_FILE, &l0);
	assert_int_equal(index_save(back, dfd, INDEX_FILE), 0);
	b1 = slurp(dfd, INDEX_FILE, &l1);
	assert_true(l1 > l0 && l1 < l0 + 256);
	assert_memory_equal(b0, b1, l0);
	assert_int_equal(strncmp(b1 + l0, "end ", 4), 0);
	free(b0);
	free(b1);
	index_free(ix);
	assert_int_equal(index_load(dfd, INDEX_FILE, &ix), 0);
	same_index(back, ix);
	index_free(ix);

	/* Many changes: folded into one rewrite, no journal left. */
	for (k = 4; k < 60; k++)
		change_some(back, k);
	assert_int_equal(index_save(back, dfd, INDEX_FILE), 0);
	b1 = slurp(dfd, INDEX_FILE, &l1);
	assert_null(strstr(b1, "\nend "));
	free(b1);
	assert_int_equal(index_load(dfd, INDEX_FILE, &ix), 0);
	same_index(back, ix);
	index_free(ix);

	/* Replaced under it (another file): rewritten, not appended. */
	b0 = slurp(dfd, INDEX_FILE, &l0);
	assert_int_equal(index_write_atomic(dfd, INDEX_FILE, b0, l0), 0);
	free(b0);
	change_some(back, 60);
	assert_int_equal(index_save(back, dfd, INDEX_FILE), 0);
	b1 = slurp(dfd, INDEX_FILE, &l1);
	assert_null(strstr(b1, "\nend "));
	free(b1);
	assert_int_equal(index_load(dfd, INDEX_FILE, &ix), 0);
	same_index(back, ix);
	index_free(ix);
	index_free(back);
	close(dfd);
	rm_rf(dir);
}

/*
 * A crash during an append: every prefix of the last batch, and any
 * byte of it damaged, loads as the index before that batch, marked to
 * be rewritten, and the rewrite is sound.  Damage in a batch that a
 * sound one follows is refused (as any damage), never skipped.
 */
static void
test_journal_torn(void **state)
{
	struct index	*ix, *before, *back;
	char		 dir[64], *b0, *b1, *b2;
	size_t		 l0, l1, l2, cut, endl;
	int		 dfd, r;

	(void)state;
	dfd = mkfolder(dir, sizeof(dir));
	ix = big_index(200);
	assert_int_equal(index_save(ix, dfd, INDEX_FILE), 0);
	change_some(ix, 0);
	assert_int_equal(index_save(ix, dfd, INDEX_FILE), 0);
	assert_int_equal(index_load(dfd, INDEX_FILE, &before), 0);
	b0 = slurp(dfd, INDEX_FILE, &l0);
	change_some(ix, 1);
	assert_int_equal(index_save(ix, dfd, INDEX_FILE), 0);
	b1 = slurp(dfd, INDEX_FILE, &l1);
	assert_true(l1 > l0);
	for (cut = l0; cut < l1; cut++) {
		assert_int_equal(index_decode(b1, cut, &back), 0);
		same_index(before, back);
		assert_int_equal(back->dirty, cut != l0);
		index_free(back);
	}
	/*
	 * A damaged end line: as if torn.  A damaged record before a sound
	 * end line: damage, refused.
	 */
	endl = (size_t)(strstr(b1 + l0, "\nend ") - b1);
	for (cut = l0; cut < l1; cut++) {
		b1[cut] ^= 0x04;
		r = index_decode(b1, l1, &back);
		if (cut >= endl) {
			assert_int_equal(r, 0);
			same_index(before, back);
			assert_true(back->dirty);
			index_free(back);
		} else {
			assert_int_equal(r, MSYNC_ERR_STATE_CORRUPT);
		}
		b1[cut] ^= 0x04;
	}
	/* Torn on disk: the load drops it, the next save rewrites. */
	assert_int_equal(index_write_atomic(dfd, INDEX_FILE, b1, l1 - 7), 0);
	{
		struct index_head	h;

		/* The header too: what the whole file says. */
		assert_int_equal(index_load_head(dfd, INDEX_FILE, &h), 0);
		assert_int_equal(h.uidnext, before->uidnext);
		assert_int_equal(h.modseq, before->modseq);
		assert_int_equal(h.count, before->live);
		assert_memory_equal(&h.token, &before->token,
		    sizeof(h.token));
	}
	assert_int_equal(index_load(dfd, INDEX_FILE, &back), 0);
	same_index(before, back);
	assert_true(back->dirty);
	assert_int_equal(index_save(back, dfd, INDEX_FILE), 0);
	b2 = slurp(dfd, INDEX_FILE, &l2);
	assert_null(strstr(b2, "\nend "));
	free(b2);
	index_free(back);
	assert_int_equal(index_load(dfd, INDEX_FILE, &back), 0);
	same_index(before, back);
	index_free(back);
	/* Damage in the first of two batches: refused. */
	for (cut = (size_t)(strstr(b0, "\nchecksum ") - b0) + 27; cut < l0;
	    cut++) {
		b1[cut] ^= 0x04;
		assert_int_equal(index_decode(b1, l1, &back),
		    MSYNC_ERR_STATE_CORRUPT);
		b1[cut] ^= 0x04;
	}
	free(b0);
	free(b1);
	index_free(before);
	index_free(ix);
	close(dfd);
	rm_rf(dir);
}

static void
test_rescan(void **state)
{
	struct index		*ix;
	struct index_ent	*e;
	struct guid		 g;
	char			 dir[64];
	uint64_t		 modseq;
	int			 fd, changed;

	fd = mkfolder(dir, sizeof(dir));
	put(fd, "new/2.M1P1Q1.h", "b\r\n");
	put(fd, "cur/1.M1P1Q1.h:2,S", "a\n");
	put(fd, "cur/.hidden", "x\n");
	put(fd, "cur/3.M1P1Q1.h:2,", "");			/* empty */
	put(fd, "cur/4.M1P1Q1.h:2,", "hard\n");
	assert_int_equal(linkat(fd, "cur/4.M1P1Q1.h:2,", fd,
	    "tmp/link", 0), 0);					/* 2 links */
	assert_int_equal(symlinkat("/etc/passwd", fd, "cur/5.M1.h:2,"), 0);
	assert_int_equal(mkdirat(fd, "cur/6.M1.h", 0700), 0);
	assert_int_equal(index_new(NULL, 0, &ix), 0);
	assert_int_equal(index_rescan(ix, fd, dir, &changed), 0);
	assert_int_equal(changed, 1);
	assert_int_equal(ix->live, 2);
	/* UIDs in name order; the CRLF one hashes like LF. */
	assert_non_null(e = index_find(ix, 1));
	assert_string_equal(index_name(ix, e), "cur/1.M1P1Q1.h:2,S");
	guid_of("a\n", 2, &g);
	assert_memory_equal(&e->guid, &g, 16);
	assert_int_equal(e->size, 2);
	assert_non_null(e = index_find(ix, 2));
	assert_string_equal(index_name(ix, e), "new/2.M1P1Q1.h");
	guid_of("b\n", 2, &g);
	assert_memory_equal(&e->guid, &g, 16);
	assert_int_equal(e->size, 3);
	assert_int_equal(ix->uidnext, 3);
	/* Nothing changed: no modseq bump. */
	modseq = ix->modseq;
	assert_int_equal(index_rescan(ix, fd, dir, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(ix->modseq, modseq);
	/* A flag change by a MUA (new -> cur), a removal, an addition. */
	assert_int_equal(renameat(fd, "new/2.M1P1Q1.h", fd,
	    "cur/2.M1P1Q1.h:2,RS"), 0);
	assert_int_equal(unlinkat(fd, "cur/1.M1P1Q1.h:2,S", 0), 0);
	put(fd, "new/7.M1P1Q1.h", "c\n");
	assert_int_equal(index_rescan(ix, fd, dir, &changed), 0);
	assert_int_equal(changed, 1);
	assert_true(ix->modseq > modseq);
	assert_null(index_find(ix, 1));
	assert_string_equal(index_name(ix, index_find(ix, 2)),
	    "cur/2.M1P1Q1.h:2,RS");
	assert_string_equal(index_name(ix, index_find(ix, 3)),
	    "new/7.M1P1Q1.h");
	assert_int_equal(ix->live, 2);
	/* refind after a rename behind our back. */
	e = index_find(ix, 3);
	assert_int_equal(renameat(fd, "new/7.M1P1Q1.h", fd,
	    "cur/7.M1P1Q1.h:2,F"), 0);
	assert_int_equal(index_refind(ix, fd, e), 0);
	assert_string_equal(index_name(ix, e), "cur/7.M1P1Q1.h:2,F");
	assert_int_equal(unlinkat(fd, "cur/7.M1P1Q1.h:2,F", 0), 0);
	assert_int_equal(index_refind(ix, fd, e), MSYNC_ERR_NOTFOUND);
	/* Save and load back. */
	assert_int_equal(index_save(ix, fd, INDEX_FILE), 0);
	{
		struct index *back;

		assert_int_equal(index_load(fd, INDEX_FILE, &back), 0);
		assert_int_equal(back->live, ix->live);
		assert_int_equal(back->uidvalidity, ix->uidvalidity);
		index_free(back);
	}
	/* The hard link and the symlink are untouched. */
	assert_int_equal(faccessat(fd, "cur/4.M1P1Q1.h:2,", F_OK, 0), 0);
	assert_int_equal(faccessat(fd, "cur/5.M1.h:2,", F_OK,
	    AT_SYMLINK_NOFOLLOW), 0);
	index_free(ix);
	close(fd);
	rm_rf(dir);
}

static void
test_token(void **state)
{
	struct index_token	t1, t2;
	struct timespec		now;
	char			dir[64];
	int			fd;

	fd = mkfolder(dir, sizeof(dir));
	clock_gettime(CLOCK_REALTIME, &now);
	/* Just made: within the racy window. */
	assert_int_equal(index_token_read(fd, &now, &t1), 0);
	assert_int_equal(t1.valid, 0);
	now.tv_sec += 10;
	assert_int_equal(index_token_read(fd, &now, &t1), 0);
	assert_int_equal(t1.valid, 1);
	assert_int_equal(index_token_read(fd, &now, &t2), 0);
	assert_true(index_token_same(&t1, &t2));
	put(fd, "new/x", "x\n");
	assert_int_equal(index_token_read(fd, &now, &t2), 0);
	assert_false(index_token_same(&t1, &t2));
	assert_int_equal(unlinkat(fd, "cur", AT_REMOVEDIR), 0);
	assert_int_equal(index_token_read(fd, &now, &t2), MSYNC_ERR_NOTFOUND);
	close(fd);
	rm_rf(dir);
}

static void
test_keywords(void **state)
{
	struct index_kwmap	m;
	uint32_t		bits;
	char			dir[64], *names;
	int			fd, added = 0;

	memset(&m, 0, sizeof(m));
	fd = mkfolder(dir, sizeof(dir));
	assert_int_equal(index_kw_load(fd, &m), 0);	/* missing: empty */
	assert_int_equal(m.loaded, 1);
	put(fd, INDEX_KWFILE, "0 $Label1\n2 work\nbad line\n30 x\n"
	    "1 two words\n0 dup\n3 $Junk");
	assert_int_equal(index_kw_load(fd, &m), 0);
	assert_string_equal(m.name[0], "$Label1");
	assert_null(m.name[1]);
	assert_string_equal(m.name[2], "work");
	assert_null(m.name[3]);		/* unfinished last line */
	assert_int_equal(index_kw_names(&m, 0x7, &names), 0);
	assert_string_equal(names, "$Label1 work");	/* 'b' has no name */
	free(names);
	assert_int_equal(index_kw_names(&m, 0x2, &names), 0);
	assert_null(names);
	assert_int_equal(index_kw_bits(&m, "work $Label1", &bits, &added), 0);
	assert_int_equal(bits, 0x5);
	assert_int_equal(added, 0);
	assert_int_equal(index_kw_bits(&m, "new1 work", &bits, &added), 0);
	assert_int_equal(bits, 0x6);	/* new1 took the free 'b' */
	assert_int_equal(added, 1);
	assert_int_equal(index_kw_save(fd, &m), 0);
	index_kw_clear(&m);
	assert_int_equal(index_kw_load(fd, &m), 0);
	assert_string_equal(m.name[1], "new1");
	assert_int_equal(index_kw_bits(&m, "bad\"kw", &bits, NULL), 0);
	assert_int_equal(bits, 0);
	assert_false(index_kw_valid("a b", 3));
	assert_true(index_kw_valid("$Forwarded", 10));
	index_kw_clear(&m);
	close(fd);
	rm_rf(dir);
}

/* Every write/fsync/rename failing in turn leaves the old file whole. */
static void
test_fail_nth(void **state)
{
	struct index	*ix, *back;
	char		 dir[64];
	int		 fd, n, r, done = 0;

	fd = mkfolder(dir, sizeof(dir));
	ix = sample_index();
	assert_int_equal(index_save(ix, fd, INDEX_FILE), 0);
	ix->uidvalidity = 4242;
	ix->dirty = 1;
	for (n = 1; n < 20 && !done; n++) {
		index_fail_nth = n;
		r = index_save(ix, fd, INDEX_FILE);
		done = index_fail_nth > 0;	/* not reached: success */
		index_fail_nth = 0;
		assert_int_equal(index_load(fd, INDEX_FILE, &back), 0);
		if (r != 0) {
			assert_int_equal(r, MSYNC_ERR_IO);
			/* Failed before the rename: old content. */
			if (back->uidvalidity != 4242)
				assert_int_equal(ix->dirty, 1);
		} else
			assert_int_equal(back->uidvalidity, 4242);
		index_free(back);
		/* No temporary file left behind. */
		{
			char	tmp[64];

			snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", INDEX_FILE,
			    (long)getpid());
			assert_int_not_equal(faccessat(fd, tmp, F_OK, 0), 0);
		}
	}
	assert_true(done);
	index_free(ix);
	close(fd);
	rm_rf(dir);
}

/*
 * Issue 10: a copy keeps directory stamps and changes inode numbers, so
 * it is not "older"; mail put back from an older copy under a newer
 * index is, beyond the 2 s that FAT and tar's whole seconds may lose.
 */
static void
test_token_older(void **state)
{
	struct index_token	ix, now;

	memset(&ix, 0, sizeof(ix));
	ix.valid = 1;
	ix.cur_sec = 1700000100;
	ix.cur_nsec = 999999999;
	ix.cur_ino = 11;
	ix.new_sec = 1700000050;
	ix.new_ino = 12;
	now = ix;
	now.cur_ino = 99;		/* cp -a, a remount: other inodes */
	now.new_ino = 98;
	assert_false(index_token_older(&now, &ix));
	now.cur_nsec = 0;		/* tar: whole seconds */
	now.cur_sec = ix.cur_sec - 2;	/* FAT: 2 s */
	assert_false(index_token_older(&now, &ix));
	now.cur_sec = ix.cur_sec + 500;	/* mail arrived since */
	assert_false(index_token_older(&now, &ix));
	now.cur_sec = ix.cur_sec - 3;	/* cur/ from an older copy */
	assert_true(index_token_older(&now, &ix));
	now.cur_sec = ix.cur_sec;
	now.new_sec = ix.new_sec - 60;	/* new/ from an older copy */
	assert_true(index_token_older(&now, &ix));
	now.new_sec = 0;		/* new/ gone: not a restore */
	assert_false(index_token_older(&now, &ix));
	ix.cur_sec = 0;			/* no token in the index */
	ix.new_sec = 0;
	now.cur_sec = 5;
	assert_false(index_token_older(&now, &ix));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mdname_parse),
		cmocka_unit_test(test_mdname_build),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_token_older),
		cmocka_unit_test(test_corrupt_every_byte),
		cmocka_unit_test(test_bad_bodies),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_journal),
		cmocka_unit_test(test_journal_torn),
		cmocka_unit_test(test_rescan),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_keywords),
		cmocka_unit_test(test_fail_nth),
	};

	log_verbosity = -1;	/* the skip warnings are expected */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
