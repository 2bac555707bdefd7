/*
 * index.c — the per-folder index of a Maildir folder (see index.h).
 *
 * The file, "msync.index" in the folder (or in the cache directory for a
 * read-only store), is text:
 *
 *	msync-index 3
 *	uidvalidity <u32>
 *	uidnext <u32>
 *	guid <32 lowercase hex>
 *	modseq <u64>
 *	token - | token [~]<sec>.<nsec> <id> <sec>.<nsec> <id>	(cur/, new/)
 *		(mtime and identity of cur/ and new/; "~": racy, rescan anyway;
 *		an identity is the inode number mixed with the birth time: a
 *		different one only makes the folder rescanned, a copy or a
 *		remount changes it; see index_token_older)
 *	count <n>
 *	bytes <u64>			(sum of the sizes below)
 *	head <16 lowercase hex: XXH3-64 of every byte above>
 *	<uid> <guid hex> <size> <date> <cur/NAME:2,INFO | new/NAME>	(n lines)
 *	checksum <16 lowercase hex: XXH3-64 of every byte above>
 *	[journal: batches of records, see below]
 *
 * The journal (version 3): a run that changed a few messages appends
 * what changed instead of writing the whole file again, one batch per
 * save:
 *
 *	+ <uid> <guid hex> <size> <date> <name>		(a message added)
 *	- <uid>						(removed)
 *	r <uid> <name>					(renamed)
 *	end <uidnext> <modseq> <count> <bytes> <token> <body> <line>
 *
 * where <token> is written as on the token line ("-" or the stamps),
 * <body> is the XXH3-64 of the batch's records seeded with the previous
 * batch's <line> (the first batch's with the base's checksum), so a batch
 * belongs to this file and this place in it, and <line> the XXH3-64 of
 * the end line up to the space before it, so that index_load_head can
 * take the header of the newest batch from the file's last line alone.
 * A batch is made durable (fsync) before the save returns.  A last
 * batch without a sound end line (a crash during the append: a file
 * cut short) is dropped and the file is rewritten, which loses nothing
 * the sync state knows (it is written after the save).  Records that do
 * not check before a sound end line are damage, not a torn append: the
 * file is refused, as any other damage.
 * When the journal passes a quarter of the base the file is rewritten
 * whole without it.
 *
 * Everything is checked on load (the checksum first, then every field,
 * UIDs increasing and below uidnext, counts and sizes bounded, names
 * Maildir names), so a torn or corrupt file is refused and rebuilt by
 * the caller, never trusted.  The head line lets a reader that only
 * needs the header (a folder whose change token did not move) check it
 * without reading the rest: index_load_head.  Version 1 files, without
 * bytes and head, are still read (in full).
 */
#include <sys/stat.h>
#include <sys/vfs.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "msync.h"
#include "guid.h"
#include "index.h"
#include "log.h"
#include "mdname.h"

#define INDEX_MAGIC	"msync-index 3"
#define INDEX_MAGIC_V2	"msync-index 2"
#define INDEX_MAGIC_V1	"msync-index 1"
#define INDEX_TAIL_MAX	512	/* bytes the last line fits in */
#define INDEX_END_MAX	256	/* bytes of an end line */
#define INDEX_HEAD_MAX	1024		/* bytes the header fits in */
#define INDEX_FILE_MAX	((size_t)2 << 30)	/* bytes in an index file */
#define INDEX_KWFILE_MAX (64 * 1024)		/* bytes in dovecot-keywords */
/*
 * The racy window (as in racy git): a directory stamped less than this
 * before a scan may change again within the same timestamp tick, which
 * its token could not show.  2 s covers file systems that keep whole or
 * even seconds, and a server whose clock stamps NFS or SMB directories.
 * A local file system that stamps nanoseconds from this machine's clock
 * (ticks of at most 10 ms) needs far less: 100 ms.
 */
#define INDEX_RACY_NS		2000000000LL
#define INDEX_RACY_NS_FINE	100000000LL
#define INDEX_RETRIES	2			/* re-reads for renamed files */

int index_fail_nth;	/* test hook; see index.h */

/* Counts a faultable call; 1 if this one must fail (index_fail_nth). */
static int
fault(void)
{
	if (index_fail_nth <= 0)
		return 0;
	if (--index_fail_nth == 0) {
		errno = EIO;
		return 1;
	}
	return 0;
}

/*
 * Makes a new empty index.  The UIDVALIDITY is the current time, or
 * old_uidvalidity + 1 if that is not above it; the modseq starts at a
 * random value.  Returns 0,
 * MSYNC_ERR_NOMEM or MSYNC_ERR_IO (no random source).
 */
int
index_new(const struct guid *guid, uint32_t old_uidvalidity,
    struct index **out)
{
	struct index	*ix;
	uint32_t	 uv;
	int		 r;

	*out = NULL;
	if ((ix = calloc(1, sizeof(*ix))) == NULL)
		return MSYNC_ERR_NOMEM;
	uv = (uint32_t)time(NULL);
	if (uv <= old_uidvalidity)
		uv = old_uidvalidity + 1;
	if (uv == 0)
		uv = 1;
	ix->uidvalidity = uv;
	ix->uidnext = 1;
	ix->dirty = 1;
	if (guid != NULL && !guid_is_zero(guid))
		ix->guid = *guid;
	else if ((r = guid_random(&ix->guid)) != 0) {
		free(ix);
		return r;
	}
	/*
	 * The modseq starts at a random point: two indexes of one folder
	 * made in the same second (one in the store, one in the cache) get
	 * the same UIDVALIDITY, and the sync state must never take one's
	 * (uidvalidity, modseq) for the other's.
	 */
	{
		struct guid	 rnd;

		if ((r = guid_random(&rnd)) != 0) {
			free(ix);
			return r;
		}
		memcpy(&ix->modseq, rnd.b, sizeof(ix->modseq));
		ix->modseq = (ix->modseq >> 24) + 1;	/* 40 bits, room to grow */
	}
	*out = ix;
	return 0;
}

/* Frees an index.  Accepts NULL. */
void
index_free(struct index *ix)
{
	if (ix == NULL)
		return;
	free(ix->v);
	free(ix->arena);
	free(ix->jbuf);
	free(ix);
}

/*
 * Copies name (NUL-terminated) into the arena; *off gets its offset.
 * Returns 0, MSYNC_ERR_TOOBIG or MSYNC_ERR_NOMEM.
 */
static int
arena_add(struct index *ix, const char *name, uint32_t *off)
{
	size_t	 len = strlen(name) + 1, ncap;
	char	*a;

	if (len > UINT32_MAX - 1 - ix->alen)
		return MSYNC_ERR_TOOBIG;
	if (len > ix->acap - ix->alen) {
		/*
		 * Grow by a quarter: big indexes stay close to their size;
		 * small steps, as a store of 2,000 folders of 100 messages
		 * holds every folder's index at once (docs/PERFORMANCE.md).
		 */
		ncap = ix->acap ? ix->acap : 1024;
		while (ncap - ix->alen < len)
			ncap += ncap / 4 + 1024;
		if ((a = realloc(ix->arena, ncap)) == NULL)
			return MSYNC_ERR_NOMEM;
		ix->arena = a;
		ix->acap = ncap;
	}
	memcpy(ix->arena + ix->alen, name, len);
	*off = (uint32_t)ix->alen;
	ix->alen += len;
	return 0;
}

/*
 * Moves the modseq past its old value and past the current time in
 * microseconds.  Time makes it unique across copies of one index: a
 * read-only run rescans the store's msync.index in memory and never
 * writes it back (src/store/maildir.c), so that copy and the next writable
 * run's both start from the same modseq, and each must end above every
 * value the other could have handed to the sync state, never on one of
 * them for another content.
 */
static void
modseq_bump(struct index *ix)
{
	struct timespec	 now;
	uint64_t	 us;

	if (ix->moved) {
		ix->modseq++;
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
	ix->modseq = us > ix->modseq ? us : ix->modseq + 1;
}

static size_t	put_dec(char *, uint64_t);
static size_t	put_ent(char *, const struct index_ent *);

/* Stops recording: the next save rewrites the whole file. */
static void
jrec_stop(struct index *ix)
{
	free(ix->jbuf);
	ix->jbuf = NULL;
	ix->jlen = ix->jcap = 0;
	ix->jrec = 0;
}

/*
 * Room for len more bytes of journal records, or 0 (recording stops):
 * records that would take more than a quarter of the file are not kept,
 * since that save rewrites the file anyway, so a large change (the first
 * copy into a folder) does not hold a second copy of its names.
 */
static char *
jrec_room(struct index *ix, size_t len)
{
	size_t	 ncap;
	char	*b;

	if (!ix->jrec)
		return NULL;
	if (ix->jlen + len + (ix->fsize - ix->fbase) > ix->fbase / 4) {
		jrec_stop(ix);
		return NULL;
	}
	if (len > ix->jcap - ix->jlen) {
		ncap = ix->jcap ? ix->jcap : 1024;
		while (ncap - ix->jlen < len)
			ncap *= 2;
		if ((b = realloc(ix->jbuf, ncap)) == NULL) {
			jrec_stop(ix);
			return NULL;
		}
		ix->jbuf = b;
		ix->jcap = ncap;
	}
	return ix->jbuf + ix->jlen;
}

/*
 * Records a change for the journal: type '+' (e added), '-' (e removed)
 * or 'r' (e renamed to name).
 */
static void
jrec_add(struct index *ix, char type, const struct index_ent *e,
    const char *name)
{
	size_t	 nlen = name != NULL ? strlen(name) : 0, o = 0;
	char	*b;

	if ((b = jrec_room(ix, 2 + 11 + 33 + 21 + 22 + nlen + 1)) == NULL)
		return;
	b[o++] = type;
	b[o++] = ' ';
	if (type == '+')
		o += put_ent(b + o, e);
	else
		o += put_dec(b + o, e->uid);
	if (name != NULL) {
		b[o++] = ' ';
		memcpy(b + o, name, nlen);
		o += nlen;
	}
	b[o++] = '\n';
	ix->jlen += o;
}

/* Appends an entry (uid above all others); no modseq change. */
static int
ent_append(struct index *ix, uint32_t uid, const struct guid *g,
    uint64_t size, int64_t date, const char *name)
{
	struct index_ent	*v, *e;
	size_t			 ncap;
	uint32_t		 off;
	int			 r;

	if (ix->n >= MSYNC_MSGS_MAX)
		return MSYNC_ERR_TOOBIG;
	if (ix->n == ix->cap) {
		ncap = ix->cap + ix->cap / 4 + 16;
		if ((v = reallocarray(ix->v, ncap, sizeof(*v))) == NULL)
			return MSYNC_ERR_NOMEM;
		ix->v = v;
		ix->cap = ncap;
	}
	if ((r = arena_add(ix, name, &off)) != 0)
		return r;
	e = &ix->v[ix->n++];
	e->guid = *g;
	e->size = size;
	e->date = date;
	e->uid = uid;
	e->name = off;
	ix->live++;
	ix->bytes += size;
	if (ix->jrec)
		jrec_add(ix, '+', e, name);
	return 0;
}

/* Drops removed entries and unused arena bytes. */
static int
index_compact(struct index *ix)
{
	char	*a = NULL;
	size_t	 i, o = 0, alen = 0, len;

	if (ix->garbage == 0 && ix->live == ix->n)
		return 0;
	if (ix->alen - ix->garbage > 0 &&
	    (a = malloc(ix->alen - ix->garbage)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < ix->n; i++) {
		if (ix->v[i].name == INDEX_NAME_DEAD)
			continue;
		len = strlen(ix->arena + ix->v[i].name) + 1;
		memcpy(a + alen, ix->arena + ix->v[i].name, len);
		ix->v[o] = ix->v[i];
		ix->v[o++].name = (uint32_t)alen;
		alen += len;
	}
	free(ix->arena);
	ix->arena = a;
	ix->alen = ix->acap = alen;
	ix->garbage = 0;
	ix->n = o;
	return 0;
}

/* The live entry with uid (binary search), or NULL. */
struct index_ent *
index_find(struct index *ix, uint32_t uid)
{
	size_t	lo = 0, hi = ix->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ix->v[mid].uid < uid)
			lo = mid + 1;
		else if (ix->v[mid].uid > uid)
			hi = mid;
		else
			return ix->v[mid].name == INDEX_NAME_DEAD ? NULL :
			    &ix->v[mid];
	}
	return NULL;
}

/* The name of e; borrowed, valid until the index changes. */
const char *
index_name(const struct index *ix, const struct index_ent *e)
{
	return ix->arena + e->name;
}

/* Renames e in the index.  Returns 0 or a negative MSYNC_ERR_*. */
int
index_set_name(struct index *ix, struct index_ent *e, const char *name)
{
	uint32_t	off;
	size_t		old;
	int		r;

	if (strcmp(ix->arena + e->name, name) == 0)
		return 0;
	old = strlen(ix->arena + e->name) + 1;
	if ((r = arena_add(ix, name, &off)) != 0)
		return r;
	e->name = off;
	ix->garbage += old;
	if (ix->jrec)
		jrec_add(ix, 'r', e, name);
	modseq_bump(ix);
	ix->dirty = 1;
	return 0;
}

/* Adds a message under the next UID.  Returns 0 or MSYNC_ERR_*. */
int
index_add(struct index *ix, const struct guid *g, uint64_t size,
    int64_t date, const char *name, uint32_t *uid)
{
	int	r;

	if (ix->uidnext == UINT32_MAX)
		return MSYNC_ERR_TOOBIG;
	if ((r = ent_append(ix, ix->uidnext, g, size, date, name)) != 0)
		return r;
	if (uid != NULL)
		*uid = ix->uidnext;
	ix->uidnext++;
	modseq_bump(ix);
	ix->dirty = 1;
	return 0;
}

/* Marks e removed without touching modseq. */
static void
ent_remove(struct index *ix, struct index_ent *e)
{
	if (e->name == INDEX_NAME_DEAD)
		return;
	ix->garbage += strlen(ix->arena + e->name) + 1;
	e->name = INDEX_NAME_DEAD;
	ix->live--;
	ix->bytes -= e->size;
	ix->dirty = 1;
	if (ix->jrec)
		jrec_add(ix, '-', e, NULL);
}

/* Removes e; modseq bumps. */
void
index_remove(struct index *ix, struct index_ent *e)
{
	if (e->name == INDEX_NAME_DEAD)
		return;
	ent_remove(ix, e);
	modseq_bump(ix);
}

/* An entry line without its name: uid, GUID, size, date, spaces, newline. */
#define ENTRY_FIXED_MAX	(10 + 1 + 32 + 1 + 20 + 1 + 21 + 1 + 1)

/* Writes v in decimal at p (no NUL); returns the digits written. */
static size_t
put_dec(char *p, uint64_t v)
{
	char	tmp[20];
	size_t	n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/*
 * Writes "uid guid size date" of e at p (an entry line without its name,
 * as the index and the journal's "+" record have it); returns its length,
 * at most 10 + 1 + 32 + 1 + 20 + 1 + 20 bytes.
 */
static size_t
put_ent(char *p, const struct index_ent *e)
{
	size_t	o;

	o = put_dec(p, e->uid);
	p[o++] = ' ';
	guid_hex(&e->guid, p + o);
	o += 32;
	p[o++] = ' ';
	o += put_dec(p + o, e->size);
	p[o++] = ' ';
	if (e->date < 0) {
		p[o++] = '-';
		o += put_dec(p + o, (uint64_t)0 - (uint64_t)e->date);
	} else
		o += put_dec(p + o, (uint64_t)e->date);
	return o;
}

/*
 * The token as the token line and an end line write it, at b (cap
 * bytes, at least 80); returns its length.  A racy token ("~") is never
 * trusted as unchanged, but its stamps still tell a cur/ put back from
 * an older copy.
 */
static size_t
put_token(char *b, size_t cap, const struct index_token *t)
{
	int	n;

	if (t->cur_ino != 0)
		n = snprintf(b, cap, "%s%" PRId64 ".%09ld %" PRIu64 " %"
		    PRId64 ".%09ld %" PRIu64, t->valid ? "" : "~",
		    t->cur_sec, t->cur_nsec, t->cur_ino,
		    t->new_sec, t->new_nsec, t->new_ino);
	else
		n = snprintf(b, cap, "-");
	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static int	encode(const struct index *, char **, size_t *, uint64_t *);

/*
 * Serialises ix into *buf (owned by the caller, *len bytes), without a
 * journal.  Returns 0 or MSYNC_ERR_NOMEM.
 */
int
index_encode(const struct index *ix, char **buf, size_t *len)
{
	uint64_t	sum;

	return encode(ix, buf, len, &sum);
}

/* index_encode; *sum gets the value of the checksum line. */
static int
encode(const struct index *ix, char **buf, size_t *len, uint64_t *sum)
{
	struct index_ent	*e;
	const char		*name;
	char			*b = NULL, hex[33];
	size_t			 cap, o = 0, i, nlen;
	int			 n;

	*buf = NULL;
	*len = 0;
	/* Header, checksum, and per entry its fixed fields plus the name. */
	cap = 640 + ix->live * ENTRY_FIXED_MAX + ix->alen;
	if ((b = malloc(cap)) == NULL)
		return MSYNC_ERR_NOMEM;
	guid_hex(&ix->guid, hex);
	n = snprintf(b, cap, INDEX_MAGIC "\nuidvalidity %" PRIu32
	    "\nuidnext %" PRIu32 "\nguid %s\nmodseq %" PRIu64 "\n",
	    ix->uidvalidity, ix->uidnext, hex, ix->modseq);
	o += (size_t)n;
	memcpy(b + o, "token ", 6);
	o += 6;
	o += put_token(b + o, cap - o, &ix->token);
	b[o++] = '\n';
	o += (size_t)snprintf(b + o, cap - o, "count %zu\nbytes %" PRIu64
	    "\n", ix->live, ix->bytes);
	o += (size_t)snprintf(b + o, cap - o, "head %016" PRIx64 "\n",
	    (uint64_t)XXH3_64bits(b, o));
	for (i = 0; i < ix->n; i++) {
		e = &ix->v[i];
		if (e->name == INDEX_NAME_DEAD)
			continue;
		/* By hand: snprintf was most of the cost of a large index. */
		name = ix->arena + e->name;
		nlen = strlen(name);
		if (cap - o < ENTRY_FIXED_MAX + nlen + 1) {
			free(b);
			return MSYNC_ERR_INTERNAL;
		}
		o += put_ent(b + o, e);
		b[o++] = ' ';
		memcpy(b + o, name, nlen);
		o += nlen;
		b[o++] = '\n';
	}
	*sum = (uint64_t)XXH3_64bits(b, o);
	n = snprintf(b + o, cap - o, "checksum %016" PRIx64 "\n", *sum);
	o += (size_t)n;
	*buf = b;
	*len = o;
	return 0;
}

/* A cursor over one line of the file being decoded. */
struct cur {
	const char	*p;		/* next byte */
	const char	*end;		/* end of the line (its '\n') */
};

/* Consumes literal s. */
static int
get_lit(struct cur *c, const char *s)
{
	size_t	len = strlen(s);

	if (len > (size_t)(c->end - c->p) || memcmp(c->p, s, len) != 0)
		return 0;
	c->p += len;
	return 1;
}

/* Consumes an unsigned decimal number (1..20 digits, no overflow). */
static int
get_u64(struct cur *c, uint64_t *v)
{
	const unsigned char	*p = (const unsigned char *)c->p;
	size_t			 avail = (size_t)(c->end - c->p), max, i;
	uint64_t		 n = 0, d;

	/*
	 * 19 digits cannot overflow: only a 20th needs the check, out of
	 * the loop (three numbers a line of every index load).
	 */
	max = avail < 19 ? avail : 19;
	for (i = 0; i < max && (d = (uint64_t)p[i] - '0') < 10; i++)
		n = n * 10 + d;
	if (i == 19 && i < avail && (d = (uint64_t)p[i] - '0') < 10) {
		if (n > (UINT64_MAX - d) / 10)
			return 0;
		n = n * 10 + d;
		if (++i < avail && (uint64_t)p[i] - '0' < 10)
			return 0;	/* a 21st digit */
	}
	if (i == 0)
		return 0;
	c->p += i;
	*v = n;
	return 1;
}

/* Consumes a decimal number with an optional '-', in int64 range. */
static int
get_i64(struct cur *c, int64_t *v)
{
	uint64_t	u;
	int		neg = 0;

	if (c->p < c->end && *c->p == '-') {
		neg = 1;
		c->p++;
	}
	if (!get_u64(c, &u) || u > (uint64_t)INT64_MAX)
		return 0;
	*v = neg ? -(int64_t)u : (int64_t)u;
	return 1;
}

/* Consumes a u32. */
static int
get_u32(struct cur *c, uint32_t *v)
{
	uint64_t	u;

	if (!get_u64(c, &u) || u > UINT32_MAX)
		return 0;
	*v = (uint32_t)u;
	return 1;
}

/*
 * The value of each lowercase hex digit; 0xff for every other byte.  A
 * table: the index holds one GUID per message, decoded on every load.
 */
#define X 0xff
static const uint8_t hexval[256] = {
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, 10, 11, 12, 13, 14, 15, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
	X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
};
#undef X

#define ONES	0x0101010101010101ull
#define HIGHS	0x8080808080808080ull

/*
 * The 8 bytes at p as a little-endian number (a single load where the
 * CPU is little-endian; the first byte is the lowest).
 */
static uint64_t
le64_at(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	    (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
	    (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	    (uint64_t)p[7] << 56;
}

/*
 * Decodes the 8 lowercase hex digits x (le64_at) into 4 bytes at out.
 * Returns 0 if one of them is no such digit.  Each byte b below 0x80
 * plus 0x80 - n has its high bit set iff b >= n, and no sum carries
 * into the next byte, so "in ['0', '9'] or in ['a', 'f']" is four
 * additions for all 8 bytes; a digit's value is its low nibble, plus 9
 * for a letter (bit 6 set).
 */
static int
hex8(uint64_t x, uint8_t *out)
{
	uint64_t	 ok, v;

	if (x & HIGHS)
		return 0;
	ok = ((x + ONES * (0x80 - '0')) & ~(x + ONES * (0x80 - '9' - 1))) |
	    ((x + ONES * (0x80 - 'a')) & ~(x + ONES * (0x80 - 'f' - 1)));
	if ((ok & HIGHS) != HIGHS)
		return 0;
	v = (x & ONES * 0x0f) + 9 * ((x >> 6) & ONES);
	/* Byte 2k is the high nibble of output byte k, 2k + 1 the low. */
	v = ((v & 0x000f000f000f000full) << 4) | ((v >> 8) & 0x000f000f000f000full);
	out[0] = (uint8_t)v;
	out[1] = (uint8_t)(v >> 16);
	out[2] = (uint8_t)(v >> 32);
	out[3] = (uint8_t)(v >> 48);
	return 1;
}

/* Consumes 32 lowercase hex digits, 8 at a time (one per message). */
static int
get_guid(struct cur *c, struct guid *g)
{
	const unsigned char	*p = (const unsigned char *)c->p;
	int			 i;

	if (c->end - c->p < 32)
		return 0;
	for (i = 0; i < 4; i++)
		if (!hex8(le64_at(p + 8 * i), g->b + 4 * i))
			return 0;
	c->p += 32;
	return 1;
}

/* Consumes "<sec>.<9 digit nsec> <ino>" into the token fields. */
static int
get_stamp(struct cur *c, int64_t *sec, long *nsec, uint64_t *ino)
{
	const char	*s;
	uint64_t	 ns;

	if (!get_i64(c, sec) || !get_lit(c, "."))
		return 0;
	s = c->p;
	if (!get_u64(c, &ns) || c->p - s != 9)
		return 0;
	*nsec = (long)ns;
	return get_lit(c, " ") && get_u64(c, ino);
}

/* Consumes a token as put_token writes it. */
static int
get_token(struct cur *c, struct index_token *t)
{
	int	racy_tok;

	memset(t, 0, sizeof(*t));
	if (get_lit(c, "-"))
		return 1;
	racy_tok = get_lit(c, "~");
	if (!get_stamp(c, &t->cur_sec, &t->cur_nsec, &t->cur_ino) ||
	    !get_lit(c, " ") ||
	    !get_stamp(c, &t->new_sec, &t->new_nsec, &t->new_ino))
		return 0;
	t->valid = !racy_tok;
	return 1;
}

/* Consumes 16 lowercase hex digits equal to v. */
static int
get_hash(struct cur *c, uint64_t v)
{
	char	hex[17];

	snprintf(hex, sizeof(hex), "%016" PRIx64, v);
	if (c->end - c->p < 16 || memcmp(c->p, hex, 16) != 0)
		return 0;
	c->p += 16;
	return 1;
}

/*
 * Parses the header of an index file from the len bytes at buf (the
 * file's start; more may follow): every field is checked, and in a
 * version 2 file the head checksum.  *body (if not NULL) gets where the
 * message lines start.  Returns 0 or MSYNC_ERR_STATE_CORRUPT.
 */
static int
parse_head(const char *buf, size_t len, struct index_head *h,
    const char **body)
{
	struct cur	 c;
	const char	*p = buf, *end = buf + len, *nl, *headline;
	char		 hex[17];

	memset(h, 0, sizeof(*h));
#define LINE() do {							\
	if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)		\
		return MSYNC_ERR_STATE_CORRUPT;				\
	c.p = p;							\
	c.end = nl;							\
	p = nl + 1;							\
} while (0)
#define WANT(cond) do {							\
	if (!(cond))							\
		return MSYNC_ERR_STATE_CORRUPT;				\
} while (0)
	LINE();
	if (get_lit(&c, INDEX_MAGIC) && c.p == c.end)
		h->version = 3;
	else if (get_lit(&c, INDEX_MAGIC_V2) && c.p == c.end)
		h->version = 2;
	else if (get_lit(&c, INDEX_MAGIC_V1) && c.p == c.end)
		h->version = 1;
	else
		return MSYNC_ERR_STATE_CORRUPT;
	LINE();
	WANT(get_lit(&c, "uidvalidity ") && get_u32(&c, &h->uidvalidity) &&
	    c.p == c.end && h->uidvalidity != 0);
	LINE();
	WANT(get_lit(&c, "uidnext ") && get_u32(&c, &h->uidnext) &&
	    c.p == c.end && h->uidnext != 0);
	LINE();
	WANT(get_lit(&c, "guid ") && get_guid(&c, &h->guid) && c.p == c.end);
	LINE();
	WANT(get_lit(&c, "modseq ") && get_u64(&c, &h->modseq) &&
	    c.p == c.end);
	LINE();
	WANT(get_lit(&c, "token ") && get_token(&c, &h->token) &&
	    c.p == c.end);
	LINE();
	WANT(get_lit(&c, "count ") && get_u64(&c, &h->count) &&
	    c.p == c.end && h->count <= MSYNC_MSGS_MAX &&
	    h->count < h->uidnext);
	if (h->version >= 2) {
		LINE();
		WANT(get_lit(&c, "bytes ") && get_u64(&c, &h->bytes) &&
		    c.p == c.end);
		headline = p;
		LINE();
		snprintf(hex, sizeof(hex), "%016" PRIx64,
		    (uint64_t)XXH3_64bits(buf, (size_t)(headline - buf)));
		WANT(get_lit(&c, "head ") && c.end - c.p == 16 &&
		    memcmp(c.p, hex, 16) == 0);
	}
#undef WANT
#undef LINE
	if (body != NULL)
		*body = p;
	return 0;
}

/*
 * Consumes an entry's file name ("cur/..." or "new/...", a Maildir name)
 * up to the end of the line into name (4 + MDNAME_MAX + 1 bytes).
 */
static int
get_name(struct cur *c, char *name)
{
	size_t		 nlen = (size_t)(c->end - c->p);

	if (nlen < 5 || nlen >= 4 + MDNAME_MAX + 1 ||
	    (memcmp(c->p, "cur/", 4) != 0 && memcmp(c->p, "new/", 4) != 0))
		return 0;
	if (mdname_check(c->p + 4, nlen - 4) != 0)
		return 0;
	memcpy(name, c->p, nlen);
	name[nlen] = '\0';
	c->p = c->end;
	return 1;
}

/* What an end line says. */
struct jend {
	uint32_t		 uidnext;
	uint64_t		 modseq;
	uint64_t		 count;
	uint64_t		 bytes;
	struct index_token	 token;
	uint64_t		 body;		/* hash of the batch's records */
	uint64_t		 line;		/* hash of this line */
};

/*
 * Parses the end line at c (without its '\n'), checking its own hash.
 * Returns 1 if it is sound.
 */
static int
get_end(struct cur *c, struct jend *e)
{
	const char	*start = c->p;
	unsigned	 v, bad = 0;
	size_t		 i;

	if (!get_lit(c, "end ") || !get_u32(c, &e->uidnext) ||
	    !get_lit(c, " ") || !get_u64(c, &e->modseq) ||
	    !get_lit(c, " ") || !get_u64(c, &e->count) ||
	    !get_lit(c, " ") || !get_u64(c, &e->bytes) ||
	    !get_lit(c, " ") || !get_token(c, &e->token) ||
	    !get_lit(c, " ") || c->end - c->p != 16 + 1 + 16)
		return 0;
	e->body = 0;
	for (i = 0; i < 16; i++) {
		v = hexval[(unsigned char)c->p[i]];
		bad |= v;
		e->body = e->body << 4 | (v & 0xf);
	}
	if (bad & 0xf0)
		return 0;
	c->p += 16;
	if (!get_lit(c, " "))
		return 0;
	e->line = (uint64_t)XXH3_64bits(start, (size_t)(c->p - start));
	if (!get_hash(c, e->line) || c->p != c->end)
		return 0;
	return e->uidnext != 0 && e->count <= MSYNC_MSGS_MAX &&
	    e->count < e->uidnext;
}

/* 1 if a sound end line starts somewhere in [p, end). */
static int
any_end(const char *p, const char *end)
{
	const char	*nl;
	struct cur	 c;
	struct jend	 e;

	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			return 0;
		c.p = p;
		c.end = nl;
		if (nl - p > 4 && memcmp(p, "end ", 4) == 0 && get_end(&c, &e))
			return 1;
	}
	return 0;
}

/*
 * Applies the records of one batch, [p, end) (checked by its hash
 * already), to ix.  Returns 0 or MSYNC_ERR_STATE_CORRUPT/NOMEM.
 */
static int
replay(struct index *ix, const char *p, const char *end)
{
	struct index_ent	*e;
	struct cur		 c;
	struct guid		 g;
	const char		*nl;
	char			 name[4 + MDNAME_MAX + 1];
	uint64_t		 size;
	int64_t			 date;
	uint32_t		 uid;
	int			 r;

	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || nl - p < 3 || p[1] != ' ')
			return MSYNC_ERR_STATE_CORRUPT;
		c.p = p + 2;
		c.end = nl;
		if (!get_u32(&c, &uid))
			return MSYNC_ERR_STATE_CORRUPT;
		switch (p[0]) {
		case '+':
			if ((ix->n > 0 && uid <= ix->v[ix->n - 1].uid) ||
			    !get_lit(&c, " ") || !get_guid(&c, &g) ||
			    !get_lit(&c, " ") || !get_u64(&c, &size) ||
			    size > MSYNC_MSG_SIZE_MAX || !get_lit(&c, " ") ||
			    !get_i64(&c, &date) || !get_lit(&c, " ") ||
			    !get_name(&c, name))
				return MSYNC_ERR_STATE_CORRUPT;
			if ((r = ent_append(ix, uid, &g, size, date,
			    name)) != 0)
				return r == MSYNC_ERR_NOMEM ? r :
				    MSYNC_ERR_STATE_CORRUPT;
			break;
		case '-':
			if (c.p != c.end || (e = index_find(ix, uid)) == NULL)
				return MSYNC_ERR_STATE_CORRUPT;
			ent_remove(ix, e);
			break;
		case 'r':
			if (!get_lit(&c, " ") || !get_name(&c, name) ||
			    (e = index_find(ix, uid)) == NULL)
				return MSYNC_ERR_STATE_CORRUPT;
			if ((r = index_set_name(ix, e, name)) != 0)
				return r == MSYNC_ERR_NOMEM ? r :
				    MSYNC_ERR_STATE_CORRUPT;
			break;
		default:
			return MSYNC_ERR_STATE_CORRUPT;
		}
	}
	return 0;
}

/*
 * Reads the journal [p, end) into ix, whose base ended with checksum
 * sum.  A last batch that does not check is dropped (a torn append) and
 * the index marked for a rewrite.  Returns 0 or MSYNC_ERR_*.
 */
static int
journal_read(struct index *ix, const char *p, const char *end, uint64_t sum,
    int *torn)
{
	const char	*b, *nl;
	struct cur	 c;
	struct jend	 e;
	uint64_t	 ms;
	int		 r;

	ix->jprev = sum;
	*torn = 0;
	while (p < end) {
		b = p;
		/* Records start "+ ", "- ", "r ": only an end line has "end ". */
		for (nl = NULL; p < end; p = nl + 1) {
			if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
				break;
			if (nl - p > 4 && memcmp(p, "end ", 4) == 0)
				break;
		}
		c.p = p;
		c.end = nl;
		if (nl == NULL || p >= end || !get_end(&c, &e) ||
		    e.body != (uint64_t)XXH3_64bits_withSeed(b,
		    (size_t)(p - b), ix->jprev)) {
			/*
			 * Torn (an append cut short by a crash) only if no
			 * sound end line is left from here on: a sound one
			 * after records that do not check is damage.
			 */
			if (any_end(b, end))
				return MSYNC_ERR_STATE_CORRUPT;
			LOG2("index: dropping a torn journal batch (%zu bytes)",
			    (size_t)(end - b));
			*torn = 1;
			return 0;
		}
		/* A rename in the replay moves modseq: the end line says. */
		ms = ix->modseq;
		if ((r = replay(ix, b, p)) != 0)
			return r;
		if (e.uidnext < ix->uidnext ||
		    (ix->n > 0 && e.uidnext <= ix->v[ix->n - 1].uid) ||
		    e.modseq < ms || e.count != ix->live ||
		    e.bytes != ix->bytes)
			return MSYNC_ERR_STATE_CORRUPT;
		ix->uidnext = e.uidnext;
		ix->modseq = e.modseq;
		ix->token = e.token;
		ix->jprev = e.line;
		p = nl + 1;
	}
	return 0;
}

/*
 * Parses the bytes of an index file, validating everything (see the top
 * of this file).  Returns 0, MSYNC_ERR_STATE_CORRUPT or MSYNC_ERR_NOMEM.
 */
int
index_decode(const char *buf, size_t len, struct index **out)
{
	struct index	*ix = NULL;
	struct cur	 c;
	const char	*p = buf, *end, *sum = NULL, *nl;
	char		 name[4 + MDNAME_MAX + 1];
	struct guid	 g;
	struct index_head h;
	uint64_t	 count, i, size, sumv = 0;
	int64_t		 date;
	uint32_t	 uid, prev = 0;
	int		 r = MSYNC_ERR_STATE_CORRUPT, torn = 0;

	*out = NULL;
	if (len < 27)
		goto out;
	end = buf + len;
	if (parse_head(buf, len, &h, &p) != 0)
		goto out;
	if (h.version < 3) {
		if (buf[len - 1] != '\n')
			goto out;
		/* The checksum line: the last one, over every byte before. */
		sum = buf + len - 26;
		if (sum[-1] != '\n' || memcmp(sum, "checksum ", 9) != 0)
			goto out;
		c.p = sum + 9;
		c.end = buf + len - 1;
		if (!get_hash(&c, (uint64_t)XXH3_64bits(buf,
		    (size_t)(sum - buf))))
			goto out;
		end = sum;
	}
	if ((ix = calloc(1, sizeof(*ix))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	ix->uidvalidity = h.uidvalidity;
	ix->uidnext = h.uidnext;
	ix->guid = h.guid;
	ix->modseq = h.modseq;
	ix->token = h.token;
	count = h.count;
#define LINE() do {							\
	if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)		\
		goto out;						\
	c.p = p;							\
	c.end = nl;							\
	p = nl + 1;							\
} while (0)
	if (count > 0) {
		if ((ix->v = calloc(count, sizeof(*ix->v))) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		ix->cap = count;
		/* The names take less than the file. */
		if ((ix->arena = malloc(len)) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		ix->acap = len;
	}
	for (i = 0; i < count; i++) {
		LINE();
		if (!get_u32(&c, &uid) || uid <= prev || uid >= ix->uidnext ||
		    !get_lit(&c, " ") || !get_guid(&c, &g) ||
		    !get_lit(&c, " ") || !get_u64(&c, &size) ||
		    size > MSYNC_MSG_SIZE_MAX || !get_lit(&c, " ") ||
		    !get_i64(&c, &date) || !get_lit(&c, " ") ||
		    !get_name(&c, name))
			goto out;
		prev = uid;
		if ((r = ent_append(ix, uid, &g, size, date, name)) != 0) {
			if (r != MSYNC_ERR_NOMEM)
				r = MSYNC_ERR_STATE_CORRUPT;
			goto out;
		}
		r = MSYNC_ERR_STATE_CORRUPT;
	}
	if (h.version >= 2 && h.bytes != ix->bytes)
		goto out;
	if (h.version < 3) {
		if (p != end)
			goto out;	/* trailing lines */
		ix->dirty = 1;	/* written back in the current format */
	} else {
		/* The base's checksum line, over every byte before it. */
		sum = p;
		LINE();
		sumv = (uint64_t)XXH3_64bits(buf, (size_t)(sum - buf));
		if (!get_lit(&c, "checksum ") || !get_hash(&c, sumv) ||
		    c.p != c.end)
			goto out;
		ix->fbase = (uint64_t)(p - buf);
		ix->fsize = len;
		ix->fuidvalidity = ix->uidvalidity;
		ix->fguid = ix->guid;
		if ((r = journal_read(ix, p, buf + len, sumv, &torn)) != 0)
			goto out;
		r = MSYNC_ERR_STATE_CORRUPT;
		/* Recording from here on; a torn file is rewritten whole. */
		ix->dirty = torn;
		ix->jrec = !torn;
	}
#undef LINE
	if (ix->alen > 0 && ix->alen < ix->acap) {
		char	*a;

		/* The arena was sized to the file: give the rest back. */
		if ((a = realloc(ix->arena, ix->alen)) != NULL) {
			ix->arena = a;
			ix->acap = ix->alen;
		}
	}
	*out = ix;
	ix = NULL;	/* transferred */
	r = 0;
out:
	index_free(ix);
	return r;
}

/*
 * Reads the index file fname in dirfd.  Returns 0, MSYNC_ERR_NOTFOUND,
 * MSYNC_ERR_STATE_CORRUPT, MSYNC_ERR_IO or MSYNC_ERR_NOMEM.
 */
int
index_load(int dirfd, const char *fname, struct index **out)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd, r = MSYNC_ERR_IO, saved;

	*out = NULL;
	fd = openat(dirfd, fname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? MSYNC_ERR_NOTFOUND :
		    errno == ELOOP ? MSYNC_ERR_STATE_CORRUPT : MSYNC_ERR_IO;
	if (fstat(fd, &st) == -1)
		goto out;
	r = MSYNC_ERR_STATE_CORRUPT;
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > INDEX_FILE_MAX)
		goto out;
	if ((buf = malloc((size_t)st.st_size)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = MSYNC_ERR_IO;
			goto out;
		}
		if (n == 0)
			break;	/* shrank: the checksum will tell */
		off += (size_t)n;
	}
	r = index_decode(buf, off, out);
	if (r == 0) {
		/* index_save appends only to this very file. */
		(*out)->fdev = (uint64_t)st.st_dev;
		(*out)->fino = (uint64_t)st.st_ino;
		(*out)->fmtime = st.st_mtim;
		if (off != (size_t)st.st_size)
			(*out)->jrec = 0;
	}
out:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return r;
}

/*
 * A version 3 file's header may be newer at its end: its last line is
 * the base's checksum line (no journal: h stays) or the end line of the
 * newest journal batch, which carries every field that changes
 * (checked by its own hash).  Anything else is a torn append, which
 * index_load sorts out.  Returns 0 or MSYNC_ERR_*.
 */
static int
head_tail(int fd, const char *buf, size_t n, struct index_head *h)
{
	struct stat	 st;
	char		 tail[INDEX_TAIL_MAX];
	const char	*t = buf, *ln, *nl;
	struct cur	 c;
	struct jend	 e;
	ssize_t		 got;
	size_t		 tn = n;

	if (fstat(fd, &st) == -1)
		return MSYNC_ERR_IO;
	if (st.st_size <= 0 || (uint64_t)st.st_size > INDEX_FILE_MAX)
		return MSYNC_ERR_STATE_CORRUPT;
	if ((uint64_t)st.st_size > n) {
		tn = (uint64_t)st.st_size < sizeof(tail) ?
		    (size_t)st.st_size : sizeof(tail);
		do
			got = pread(fd, tail, tn, st.st_size - (off_t)tn);
		while (got == -1 && errno == EINTR);
		if (got == -1)
			return MSYNC_ERR_IO;
		if ((size_t)got != tn)
			return MSYNC_ERR_STATE_CORRUPT;
		t = tail;
	}
	if (tn < 2 || t[tn - 1] != '\n')
		return MSYNC_ERR_STATE_CORRUPT;
	nl = t + tn - 1;
	for (ln = nl; ln > t && ln[-1] != '\n'; ln--)
		;
	if (ln == t && t != buf)
		return MSYNC_ERR_STATE_CORRUPT;	/* longer than a line */
	c.p = ln;
	c.end = nl;
	if (get_lit(&c, "checksum "))
		return 0;
	c.p = ln;
	if (!get_end(&c, &e) || e.uidnext < h->uidnext)
		return MSYNC_ERR_STATE_CORRUPT;
	h->uidnext = e.uidnext;
	h->modseq = e.modseq;
	h->token = e.token;
	h->count = e.count;
	h->bytes = e.bytes;
	h->journal = 1;
	return 0;
}

/*
 * A version 3 file whose last line is no sound end line (an append cut
 * short, or one still being written by another process): the whole
 * file says what its header is, once the load has dropped the torn
 * batch.  Rare, so the cost of a whole load does not matter here.
 */
static int
head_full(int dirfd, const char *fname, struct index_head *h)
{
	struct index	*ix = NULL;
	int		 r;

	if ((r = index_load(dirfd, fname, &ix)) != 0)
		return r;
	h->uidvalidity = ix->uidvalidity;
	h->uidnext = ix->uidnext;
	h->guid = ix->guid;
	h->modseq = ix->modseq;
	h->token = ix->token;
	h->count = ix->live;
	h->bytes = ix->bytes;
	h->journal = 1;
	index_free(ix);
	return 0;
}

/* Reads the header of an index file (see index.h). */
int
index_load_head(int dirfd, const char *fname, struct index_head *out)
{
	char	 buf[INDEX_HEAD_MAX];
	ssize_t	 n;
	int	 fd, saved, r;

	memset(out, 0, sizeof(*out));
	fd = openat(dirfd, fname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? MSYNC_ERR_NOTFOUND :
		    errno == ELOOP ? MSYNC_ERR_STATE_CORRUPT : MSYNC_ERR_IO;
	do
		n = pread(fd, buf, sizeof(buf), 0);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		r = MSYNC_ERR_IO;
	else if (parse_head(buf, (size_t)n, out, NULL) != 0 ||
	    out->version < 2)
		r = MSYNC_ERR_STATE_CORRUPT;
	else if (out->version >= 3)
		r = head_tail(fd, buf, (size_t)n, out);
	else
		r = 0;
	saved = errno;
	close(fd);
	errno = saved;
	if (r == MSYNC_ERR_STATE_CORRUPT && out->version >= 3)
		r = head_full(dirfd, fname, out);
	return r;
}

/*
 * The UIDVALIDITY a damaged index file fname in dirfd still shows on its
 * second line, or 0.  Only used to pick a different one for the rebuilt
 * index; nothing else of the file is trusted.
 */
uint32_t
index_old_uidvalidity(int dirfd, const char *fname)
{
	char		 buf[128];
	struct cur	 c;
	const char	*nl;
	uint32_t	 uv = 0;
	ssize_t		 n;
	int		 fd;

	fd = openat(dirfd, fname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0)
		return 0;
	c.p = buf;
	c.end = buf + n;
	if ((!get_lit(&c, INDEX_MAGIC "\n") &&
	    !get_lit(&c, INDEX_MAGIC_V2 "\n") &&
	    !get_lit(&c, INDEX_MAGIC_V1 "\n")) ||
	    !get_lit(&c, "uidvalidity ") ||
	    (nl = memchr(c.p, '\n', (size_t)(c.end - c.p))) == NULL)
		return 0;
	c.end = nl;
	if (!get_u32(&c, &uv) || c.p != c.end)
		return 0;
	return uv;
}

/*
 * Replaces fname in dirfd atomically (see index.h).  Returns 0,
 * MSYNC_ERR_IO (errno set) or MSYNC_ERR_NOMEM.
 */
static int	write_atomic(int, const char *, const void *, size_t,
		    struct stat *);

int
index_write_atomic(int dirfd, const char *fname, const void *buf,
    size_t len)
{
	return write_atomic(dirfd, fname, buf, len, NULL);
}

/* index_write_atomic; *sb (if not NULL) gets the new file's stat. */
static int
write_atomic(int dirfd, const char *fname, const void *buf, size_t len,
    struct stat *sb)
{
	char		 tmp[MSYNC_PATH_MAX];
	const char	*p = buf;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd = -1, r = MSYNC_ERR_IO, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", fname,
	    (long)getpid()) >= sizeof(tmp))
		return MSYNC_ERR_TOOBIG;
	(void)unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		return MSYNC_ERR_IO;
	while (off < len) {
		if (fault())
			goto out;
		n = write(fd, p + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto out;
		off += (size_t)n;
	}
	if (fault() || fsync(fd) == -1)
		goto out;
	if (sb != NULL && fstat(fd, sb) == -1)
		goto out;
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (fault() || renameat(dirfd, tmp, dirfd, fname) == -1)
		goto out;
	tmp[0] = '\0';	/* nothing left to remove */
	if (fault() || fsync(dirfd) == -1)
		goto out;
	r = 0;
out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (r != 0 && tmp[0] != '\0')
		(void)unlinkat(dirfd, tmp, 0);
	errno = saved;
	return r;
}

/*
 * Appends ix's records since the file was read or written, and an end
 * line, to fname in dirfd, which must still be the file ix came from
 * (same identity, same size), and makes them durable.  Returns 0, or
 * MSYNC_ERR_NOTFOUND when the file cannot take them (rewrite it), or
 * MSYNC_ERR_IO (errno set).
 */
static int
journal_append(struct index *ix, int dirfd, const char *fname)
{
	struct stat	 st;
	uint64_t	 body, line;
	size_t		 o, len, off = 0;
	ssize_t		 n;
	char		*b, hex[17];
	int		 fd, r = MSYNC_ERR_IO, saved;

	if (ix->uidvalidity != ix->fuidvalidity ||
	    guid_cmp(&ix->guid, &ix->fguid) != 0)
		return MSYNC_ERR_NOTFOUND;
	body = (uint64_t)XXH3_64bits_withSeed(ix->jbuf, ix->jlen, ix->jprev);
	if ((b = jrec_room(ix, INDEX_END_MAX)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	o = (size_t)snprintf(b, INDEX_END_MAX, "end %" PRIu32 " %" PRIu64
	    " %zu %" PRIu64 " ", ix->uidnext, ix->modseq, ix->live,
	    ix->bytes);
	o += put_token(b + o, INDEX_END_MAX - 40 - o, &ix->token);
	o += (size_t)snprintf(b + o, INDEX_END_MAX - o, " %016" PRIx64 " ",
	    body);
	line = (uint64_t)XXH3_64bits(b, o);
	snprintf(hex, sizeof(hex), "%016" PRIx64, line);
	memcpy(b + o, hex, 16);
	o += 16;
	b[o++] = '\n';
	len = ix->jlen + o;

	fd = openat(dirfd, fname, O_WRONLY | O_APPEND | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
	if (fstat(fd, &st) == -1)
		goto out;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_dev != ix->fdev ||
	    (uint64_t)st.st_ino != ix->fino ||
	    (uint64_t)st.st_size != ix->fsize ||
	    st.st_mtim.tv_sec != ix->fmtime.tv_sec ||
	    st.st_mtim.tv_nsec != ix->fmtime.tv_nsec) {
		r = MSYNC_ERR_NOTFOUND;
		goto out;
	}
	while (off < len) {
		if (fault())
			goto fail;
		n = write(fd, ix->jbuf + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		off += (size_t)n;
	}
	/*
	 * A batch of no records carries only a new token (a rescan that
	 * found nothing, as the first run after a copy does for a folder
	 * stamped within the racy window): losing it costs a rescan,
	 * never a UID, so it is not worth an fsync, which on a busy disk
	 * waits for everybody's writes.  A later batch's fsync covers it.
	 */
	if (fault() || (ix->jlen > 0 && fsync(fd) == -1) ||
	    fstat(fd, &st) == -1)
		goto fail;
	ix->fmtime = st.st_mtim;
	ix->fsize += len;
	ix->jprev = line;
	ix->jlen = 0;
	r = 0;
	goto out;
fail:
	/* Take the torn batch back; if that fails, a load drops it. */
	saved = errno;
	(void)ftruncate(fd, (off_t)ix->fsize);
	errno = saved;
out:
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/*
 * Writes ix to fname in dirfd and clears dirty: as a journal batch
 * appended to the file when it can take one, else the whole file
 * atomically.
 */
int
index_save(struct index *ix, int dirfd, const char *fname)
{
	struct stat	 st;
	uint64_t	 sum;
	char		*buf = NULL;
	size_t		 len;
	int		 r;

	if (ix->jrec && ix->fsize > 0) {
		r = journal_append(ix, dirfd, fname);
		if (r == 0) {
			ix->dirty = 0;
			return 0;
		}
		LOG3("index: rewriting '%s' (%s)", fname, r ==
		    MSYNC_ERR_NOTFOUND ? "journal full or file replaced" :
		    "append failed");
	}
	if (ix->garbage > ix->alen / 2 || ix->n - ix->live > ix->n / 2)
		if ((r = index_compact(ix)) != 0)
			return r;
	if ((r = encode(ix, &buf, &len, &sum)) != 0)
		return r;
	if ((r = write_atomic(dirfd, fname, buf, len, &st)) == 0) {
		ix->dirty = 0;
		/* Later changes go to the journal of this file. */
		free(ix->jbuf);
		ix->jbuf = NULL;
		ix->jlen = ix->jcap = 0;
		ix->jrec = 1;
		ix->fsize = ix->fbase = len;
		ix->fdev = (uint64_t)st.st_dev;
		ix->fino = (uint64_t)st.st_ino;
		ix->fmtime = st.st_mtim;
		ix->jprev = sum;
		ix->fuidvalidity = ix->uidvalidity;
		ix->fguid = ix->guid;
	}
	free(buf);
	return r;
}

/*
 * 1 if the file system of fd is local and stamps times to the
 * nanosecond: ext2/3/4, XFS, Btrfs, tmpfs, F2FS.  (ext4 with small inodes
 * keeps whole seconds: racy() also wants a non-zero nanosecond part.)
 */
static int
fine_local_fs(int fd)
{
	struct statfs	 sf;

	if (fstatfs(fd, &sf) != 0)
		return 0;
	switch ((unsigned long)sf.f_type) {
	case 0xEF53UL:		/* ext2, ext3, ext4 */
	case 0x58465342UL:	/* XFS */
	case 0x9123683EUL:	/* Btrfs */
	case 0x01021994UL:	/* tmpfs */
	case 0xF2F52010UL:	/* F2FS */
		return 1;
	}
	return 0;
}

/*
 * 1 if a directory stamped ts is within the racy window of now; fine:
 * its file system is a fine_local_fs.
 */
static int
racy(const struct timespec *ts, const struct timespec *now, int fine)
{
	int64_t	d;

	d = ((int64_t)now->tv_sec - (int64_t)ts->tv_sec) * 1000000000LL +
	    ((int64_t)now->tv_nsec - (int64_t)ts->tv_nsec);
	if (fine && ts->tv_nsec != 0)
		return d < INDEX_RACY_NS_FINE;
	return d < INDEX_RACY_NS;
}

/*
 * stat(2) of directory name in dirfd, through statx so that *id can
 * include the directory's birth time where the file system records it:
 * a directory deleted and created again often gets its old inode number
 * back, and an index must not take the new one for the old.  Returns 0,
 * MSYNC_ERR_NOTFOUND (missing, or not a directory) or MSYNC_ERR_IO.
 */
static int
dir_stat(int dirfd, const char *name, struct timespec *mtime, uint64_t *id)
{
	struct statx	 sx;

	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO |
	    STATX_MTIME | STATX_BTIME, &sx) == -1)
		return errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
	if (!S_ISDIR(sx.stx_mode))
		return MSYNC_ERR_NOTFOUND;
	mtime->tv_sec = sx.stx_mtime.tv_sec;
	mtime->tv_nsec = sx.stx_mtime.tv_nsec;
	*id = sx.stx_ino;
	if (sx.stx_mask & STATX_BTIME)
		*id ^= ((uint64_t)sx.stx_btime.tv_sec << 24) ^
		    ((uint64_t)sx.stx_btime.tv_nsec << 1);
	return 0;
}

/*
 * Reads the change token of the folder on folderfd.  Returns 0,
 * MSYNC_ERR_NOTFOUND (no cur/ directory) or MSYNC_ERR_IO.
 */
int
index_token_read(int folderfd, const struct timespec *now,
    struct index_token *t)
{
	struct timespec	 mt;
	uint64_t	 id;
	int		 r, fine;

	memset(t, 0, sizeof(*t));
	if ((r = dir_stat(folderfd, "cur", &mt, &id)) != 0)
		return r;
	fine = fine_local_fs(folderfd);
	t->valid = !racy(&mt, now, fine);
	t->cur_sec = mt.tv_sec;
	t->cur_nsec = mt.tv_nsec;
	t->cur_ino = id;
	if ((r = dir_stat(folderfd, "new", &mt, &id)) != 0)
		return r == MSYNC_ERR_NOTFOUND ? 0 : r;
	if (racy(&mt, now, fine))
		t->valid = 0;
	t->new_sec = mt.tv_sec;
	t->new_nsec = mt.tv_nsec;
	t->new_ino = id;
	return 0;
}

/* 1 if a and b are both valid and equal. */
int
index_token_same(const struct index_token *a, const struct index_token *b)
{
	return a->valid && b->valid && a->cur_sec == b->cur_sec &&
	    a->cur_nsec == b->cur_nsec && a->cur_ino == b->cur_ino &&
	    a->new_sec == b->new_sec && a->new_nsec == b->new_nsec &&
	    a->new_ino == b->new_ino;
}

int
index_token_older(const struct index_token *now,
    const struct index_token *ix)
{
	if (ix->cur_sec != 0 && now->cur_sec + INDEX_OLDER_SLACK < ix->cur_sec)
		return 1;
	return ix->new_sec != 0 && now->new_sec != 0 &&
	    now->new_sec + INDEX_OLDER_SLACK < ix->new_sec;
}

/* A file found by a rescan that the index did not know. */
struct pend {
	struct guid	 guid;
	uint64_t	 size;
	int64_t		 date;
	uint32_t	 name;		/* arena offset of "cur/..." */
};

#define HT_PEND	0x80000000u	/* id names a pend, not an entry */

/* The state of one rescan. */
struct scan {
	struct index	*ix;		/* borrowed */
	int		 folderfd;	/* borrowed */
	const char	*where;		/* borrowed; folder path for messages */
	int		 had_new;	/* the token, read first, saw new/ */
	size_t		 nin_new;	/* live entries the index has in new/ */
	/*
	 * Owned; hash table: the top 32 bits of the name's hash above
	 * id + 1, 0 empty.  The hash bits spare a look at the name (a
	 * cache miss in the arena) for all but the matching slot.
	 */
	uint64_t	*slot;
	size_t		 mask;		/* table size - 1 */
	size_t		 used;		/* ids in the table */
	uint8_t		*seen;		/* owned; per entry */
	struct pend	*pend;		/* owned */
	size_t		 npend, cappend;
	char		**retry;	/* owned; base names that vanished */
	size_t		 nretry;
	int		 changed;	/* the message set or a name changed */
};

/* The name ("cur/..." or "new/...") of table id. */
static const char *
id_name(const struct scan *sc, uint32_t id)
{
	if (id & HT_PEND)
		return sc->ix->arena + sc->pend[id & ~HT_PEND].name;
	return sc->ix->arena + sc->ix->v[id].name;
}

/* Bytes of the base part of file name s (before ':'). */
static size_t
base_len(const char *s)
{
	/* strchrnul: strcspn's set handling cost more than the search. */
	return (size_t)(strchrnul(s, ':') - s);
}

/* The slot value of id, whose base name hashes to hv. */
static uint64_t
ht_val(uint64_t hv, uint32_t id)
{
	return (hv & 0xffffffff00000000u) | ((uint64_t)id + 1);
}

/* The table id whose base is base (blen bytes, hashing to hv), or -1. */
static int64_t
ht_find_hv(const struct scan *sc, const char *base, size_t blen,
    uint64_t hv)
{
	uint64_t	 tag, v;
	size_t		 h;
	const char	*n;
	uint32_t	 id;

	tag = hv & 0xffffffff00000000u;
	for (h = (size_t)hv & sc->mask; (v = sc->slot[h]) != 0;
	    h = (h + 1) & sc->mask) {
		if ((v & 0xffffffff00000000u) != tag)
			continue;
		id = (uint32_t)(v & 0xffffffffu) - 1;
		n = id_name(sc, id) + 4;
		/*
		 * n's base is base if its first blen bytes are base's (base
		 * holds no NUL: strncmp stops at n's end) and ':' or its end
		 * follows.
		 */
		if (strncmp(n, base, blen) == 0 && (n[blen] == ':' ||
		    n[blen] == '\0'))
			return id;
	}
	return -1;
}

/* The table id whose base is base (blen bytes), or -1. */
static int64_t
ht_find(const struct scan *sc, const char *base, size_t blen)
{
	return ht_find_hv(sc, base, blen, XXH3_64bits(base, blen));
}

/*
 * Inserts id (its base not yet present, hashing to hv), growing the
 * table.
 */
static int
ht_insert(struct scan *sc, uint32_t id, uint64_t hv)
{
	uint64_t	*old = sc->slot, *ns;
	size_t		 oldsz = sc->mask + 1, nsz, i, h;
	const char	*n;

	if ((sc->used + 1) * 2 > oldsz) {
		nsz = oldsz * 2;
		if ((ns = calloc(nsz, sizeof(*ns))) == NULL)
			return MSYNC_ERR_NOMEM;
		sc->slot = ns;
		sc->mask = nsz - 1;
		sc->used = 0;
		for (i = 0; i < oldsz; i++)
			if (old[i] != 0) {
				n = id_name(sc,
				    (uint32_t)(old[i] & 0xffffffffu) - 1) + 4;
				h = (size_t)XXH3_64bits(n, base_len(n)) &
				    sc->mask;
				while (sc->slot[h] != 0)
					h = (h + 1) & sc->mask;
				sc->slot[h] = old[i];
				sc->used++;
			}
		free(old);
	}
	h = (size_t)hv & sc->mask;
	while (sc->slot[h] != 0)
		h = (h + 1) & sc->mask;
	sc->slot[h] = ht_val(hv, id);
	sc->used++;
	return 0;
}

/* 1 if base (blen bytes) is on the retry list; removes it if del. */
static int
retry_has(struct scan *sc, const char *base, size_t blen, int del)
{
	size_t	i;

	for (i = 0; i < sc->nretry; i++)
		if (strlen(sc->retry[i]) == blen &&
		    memcmp(sc->retry[i], base, blen) == 0) {
			if (del) {
				free(sc->retry[i]);
				sc->retry[i] = sc->retry[--sc->nretry];
			}
			return 1;
		}
	return 0;
}

/*
 * 1 if errno says the folder could not be read as a whole (out of file
 * descriptors or memory, a device error), not that one file is odd: the
 * rescan then fails, so the mailbox is reported unreadable instead of
 * listed without the file (issue 16).
 */
static int
scan_fatal_errno(void)
{
	return errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
	    errno == EIO;
}

/*
 * Hashes the unknown file rel ("cur/NAME") in dir dfd (entry name) and
 * adds it to the pending list.  A file that vanished goes on the retry
 * list; one that must be skipped is warned about.
 */
static int
scan_new_file(struct scan *sc, int dfd, const char *dname, const char *rel,
    size_t blen)
{
	struct stat	 st;
	struct pend	*p, *np;
	struct guid	 g;
	uint64_t	 size;
	size_t		 ncap;
	char		*b, **nr;
	int		 fd, r = 0;

	fd = openat(dfd, dname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT) {
			/* Renamed since readdir: look again later. */
			if (retry_has(sc, rel + 4, blen, 0))
				return 0;
			if ((ncap = sc->nretry + 1) > 1024)
				return 0;	/* gone is gone */
			if ((b = strndup(rel + 4, blen)) == NULL)
				return MSYNC_ERR_NOMEM;
			if ((nr = reallocarray(sc->retry, ncap,
			    sizeof(*nr))) == NULL) {
				free(b);
				return MSYNC_ERR_NOMEM;
			}
			sc->retry = nr;
			sc->retry[sc->nretry++] = b;
			return 0;
		}
		if (errno == ELOOP)
			WARNX("skipping symbolic link '%s/%s'", sc->where,
			    log_esc(rel, 300));
		else if (scan_fatal_errno()) {
			WARN("cannot read '%s/%s'", sc->where,
			    log_esc(rel, 300));
			return MSYNC_ERR_IO;
		} else
			WARN("skipping unreadable '%s/%s'", sc->where,
			    log_esc(rel, 300));
		return 0;
	}
	if (fstat(fd, &st) == -1) {
		WARN("skipping '%s/%s'", sc->where, log_esc(rel, 300));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		WARNX("skipping '%s/%s': not a regular file", sc->where,
		    log_esc(rel, 300));
		goto out;
	}
	if (st.st_nlink > 1) {
		WARNX("skipping '%s/%s': hard-linked (%ju links)", sc->where,
		    log_esc(rel, 300), (uintmax_t)st.st_nlink);
		goto out;
	}
	if (st.st_size == 0) {
		WARNX("skipping '%s/%s': empty file", sc->where,
		    log_esc(rel, 300));
		goto out;
	}
	if ((uint64_t)st.st_size > MSYNC_MSG_SIZE_MAX) {
		WARNX("skipping '%s/%s': too big", sc->where,
		    log_esc(rel, 300));
		goto out;
	}
	if ((r = guid_of_fd(fd, &g, &size)) != 0) {
		if (r == MSYNC_ERR_IO && scan_fatal_errno()) {
			WARN("cannot read '%s/%s'", sc->where,
			    log_esc(rel, 300));
			goto out;
		}
		if (r == MSYNC_ERR_IO) {
			WARN("skipping unreadable '%s/%s'", sc->where,
			    log_esc(rel, 300));
			r = 0;
		}
		goto out;
	}
	if (size == 0 || size > MSYNC_MSG_SIZE_MAX) {
		WARNX("skipping '%s/%s': changed while read", sc->where,
		    log_esc(rel, 300));
		goto out;
	}
	LOG4("new file '%s/%s'", sc->where, log_esc(rel, 300));
	if (sc->npend == sc->cappend) {
		ncap = sc->cappend ? sc->cappend * 2 : 64;
		if ((np = reallocarray(sc->pend, ncap, sizeof(*np))) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		sc->pend = np;
		sc->cappend = ncap;
	}
	p = &sc->pend[sc->npend];
	p->guid = g;
	p->size = size;
	p->date = (int64_t)st.st_mtim.tv_sec;
	if ((r = arena_add(sc->ix, rel, &p->name)) != 0)
		goto out;
	if ((r = ht_insert(sc, (uint32_t)sc->npend | HT_PEND,
	    XXH3_64bits(rel + 4, blen))) != 0)
		goto out;
	sc->npend++;
	(void)retry_has(sc, rel + 4, blen, 1);
out:
	close(fd);
	return r;
}

#define PEND_TAKEN	UINT32_MAX	/* a pend that kept an old entry's UID */

/* A vanished index entry, for keep_renamed. */
struct vanished {
	struct guid	 guid;
	uint64_t	 size;
	size_t		 idx;		/* into ix->v */
};

static int
vanished_cmp(const void *x, const void *y)
{
	const struct vanished	*a = x, *b = y;
	int			 c;

	if ((c = guid_cmp(&a->guid, &b->guid)) != 0)
		return c;
	if (a->size != b->size)
		return a->size < b->size ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/*
 * A file whose base name changed (mbsync appends ",U=n"; some tools
 * rename on import) vanishes under its old name and appears under a new
 * one with the same content.  Such a file keeps its entry and UID instead
 * of becoming a new message, which the other side would see as an
 * expunge plus a copy.  Matches each new file (in pend order) with a
 * vanished entry of the same GUID and size.  Returns 0 or
 * MSYNC_ERR_NOMEM.
 */
static int
keep_renamed(struct index *ix, struct scan *sc)
{
	struct vanished	*v = NULL, key, *hit;
	size_t		 nv = 0, i, lo, hi, mid;
	char		 tmp[4 + MDNAME_MAX + 1];
	int		 r = 0;

	if (sc->npend == 0)
		return 0;
	for (i = 0; i < ix->n; i++)
		if (ix->v[i].name != INDEX_NAME_DEAD && !sc->seen[i])
			nv++;
	if (nv == 0)
		return 0;
	if ((v = calloc(nv, sizeof(*v))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = nv = 0; i < ix->n; i++)
		if (ix->v[i].name != INDEX_NAME_DEAD && !sc->seen[i]) {
			v[nv].guid = ix->v[i].guid;
			v[nv].size = ix->v[i].size;
			v[nv].idx = i;
			nv++;
		}
	msync_sort(v, nv, sizeof(*v), vanished_cmp);
	for (i = 0; i < sc->npend; i++) {
		key.guid = sc->pend[i].guid;
		key.size = sc->pend[i].size;
		key.idx = 0;
		/* The first vanished entry not below key, still unclaimed. */
		lo = 0;
		hi = nv;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (vanished_cmp(&v[mid], &key) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		hit = NULL;
		for (; lo < nv && guid_cmp(&v[lo].guid, &key.guid) == 0 &&
		    v[lo].size == key.size; lo++)
			if (!sc->seen[v[lo].idx]) {
				hit = &v[lo];
				break;
			}
		if (hit == NULL)
			continue;
		/* index_set_name may move the arena: copy the name out. */
		snprintf(tmp, sizeof(tmp), "%s", ix->arena + sc->pend[i].name);
		if ((r = index_set_name(ix, &ix->v[hit->idx], tmp)) != 0)
			break;
		ix->garbage += strlen(tmp) + 1;
		sc->seen[hit->idx] = 1;
		sc->pend[i].name = PEND_TAKEN;
		sc->changed = 1;
	}
	free(v);
	return r;
}

/*
 * Reads directory sub ("new" or "cur") of the folder.  With only_retry,
 * looks only for the base names on the retry list.
 */
static int
scan_dir(struct scan *sc, const char *sub, int only_retry)
{
	struct dirent	*de;
	struct mdname	 md;
	struct index	*ix = sc->ix;
	DIR		*d = NULL;
	char		 rel[4 + MDNAME_MAX + 1];
	const char	*old;
	size_t		 blen;
	int64_t		 id;
	uint32_t	 off;
	int		 fd, r = 0;

	fd = openat(sc->folderfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		/*
		 * A Maildir may lack new/, but not one that was there when
		 * the token was read a moment ago, nor one the index last saw
		 * messages in: new/ moved away and back (a user's mv, a
		 * racer) would otherwise make them all look deleted, and the
		 * deletion would be replayed on the other side.  A new/
		 * removed on purpose is made again empty by the user.
		 */
		if (errno == ENOENT && strcmp(sub, "new") == 0 &&
		    !sc->had_new) {
			if (sc->nin_new == 0)
				return 0;
			WARNX("'%s/new' is missing, but its index lists %zu "
			    "message%s there: not synced in this run (if new/ "
			    "was removed on purpose, make it again, empty)",
			    sc->where, sc->nin_new, sc->nin_new == 1 ? "" : "s");
			return MSYNC_ERR_STORE_CHANGED;
		}
		if (errno == ENOTDIR || errno == ELOOP || errno == ENOENT) {
			/* Swapped for a symlink or a file, or moved away. */
			WARNX("'%s/%s' is not a directory now: the folder is "
			    "changing under us", sc->where, sub);
			return MSYNC_ERR_STORE_CHANGED;
		}
		WARN("cannot read '%s/%s'", sc->where, sub);
		return MSYNC_ERR_IO;
	}
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return MSYNC_ERR_IO;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0) {
				WARN("cannot read '%s/%s'", sc->where, sub);
				r = MSYNC_ERR_IO;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/*
		 * The common case first: a regular file whose name the index
		 * holds as it is (checked when the index was loaded or the
		 * name added) needs neither a parse nor a copy.
		 */
		if (!only_retry && (de->d_type == DT_REG ||
		    de->d_type == DT_UNKNOWN) &&
		    (id = ht_find(sc, de->d_name,
		    (blen = base_len(de->d_name)))) >= 0 &&
		    !(id & HT_PEND) && !sc->seen[id]) {
			/* ht_find matched the base: compare the rest. */
			old = ix->arena + ix->v[id].name;
			if (memcmp(old, sub, 3) == 0 && old[3] == '/' &&
			    strcmp(old + 4 + blen, de->d_name + blen) == 0) {
				sc->seen[id] = 1;
				continue;
			}
		}
		if (mdname_parse(de->d_name, &md) != 0) {
			if (!only_retry)
				WARNX("skipping '%s/%s/%s': not a Maildir "
				    "message name", sc->where, sub,
				    log_esc(de->d_name, 300));
			continue;
		}
		if (only_retry &&
		    !retry_has(sc, de->d_name, md.base_len, 0))
			continue;
		if (de->d_type == DT_LNK) {
			WARNX("skipping symbolic link '%s/%s/%s'", sc->where,
			    sub, log_esc(de->d_name, 300));
			continue;
		}
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN) {
			WARNX("skipping '%s/%s/%s': not a regular file",
			    sc->where, sub, log_esc(de->d_name, 300));
			continue;
		}
		/* sub is "new" or "cur"; mdname_parse bounded the name. */
		memcpy(rel, sub, 3);
		rel[3] = '/';
		memcpy(rel + 4, de->d_name, strlen(de->d_name) + 1);
		id = ht_find(sc, de->d_name, md.base_len);
		if (id < 0) {
			if ((r = scan_new_file(sc, dirfd(d), de->d_name, rel,
			    md.base_len)) != 0)
				break;
			continue;
		}
		if (id & HT_PEND) {
			struct pend *p = &sc->pend[id & ~HT_PEND];

			old = ix->arena + p->name;
			if (strcmp(old, rel) == 0)
				continue;
			if (strncmp(old, "new/", 4) == 0 &&
			    strcmp(sub, "cur") == 0) {
				/* Moved to cur/ during the scan. */
				ix->garbage += strlen(old) + 1;
				if ((r = arena_add(ix, rel, &off)) != 0)
					break;
				p->name = off;
			} else
				WARNX("skipping '%s/%s': same base name as "
				    "'%s'", sc->where, log_esc(rel, 300), old);
			continue;
		}
		old = ix->arena + ix->v[id].name;
		if (!sc->seen[id]) {
			sc->seen[id] = 1;
			if (strcmp(old, rel) != 0) {
				if ((r = index_set_name(ix, &ix->v[id],
				    rel)) != 0)
					break;
				sc->changed = 1;
			}
		} else if (strcmp(old, rel) != 0) {
			if (strncmp(old, "new/", 4) == 0 &&
			    strcmp(sub, "cur") == 0) {
				if ((r = index_set_name(ix, &ix->v[id],
				    rel)) != 0)
					break;
				sc->changed = 1;
			} else
				WARNX("skipping '%s/%s': same base name as "
				    "'%s'", sc->where, log_esc(rel, 300), old);
		}
	}
	closedir(d);
	return r;
}

/*
 * Sorts pending files by name, so UIDs follow delivery order.  The index
 * being sorted is per thread: the listing rescans on read-ahead threads.
 */
static _Thread_local struct index *sort_ix;
static int
pend_cmp(const void *a, const void *b)
{
	const struct pend	*pa = a, *pb = b;

	return strcmp(sort_ix->arena + pa->name + 4,
	    sort_ix->arena + pb->name + 4);
}

/* Brings the index up to date with the folder; see index.h. */
int
index_rescan(struct index *ix, int folderfd, const char *where,
    int *changed)
{
	struct scan		 sc;
	struct index_token	 tok;
	struct timespec		 now;
	const char		*n;
	size_t			 i, sz, blen;
	uint64_t		 hv;
	uint32_t		 uid;
	int			 r, pass;

	memset(&sc, 0, sizeof(sc));
	sc.ix = ix;
	sc.folderfd = folderfd;
	sc.where = where;
	if (changed != NULL)
		*changed = 0;
	/* The token first: a change during the scan shows next time. */
	clock_gettime(CLOCK_REALTIME, &now);
	if ((r = index_token_read(folderfd, &now, &tok)) != 0) {
		if (r == MSYNC_ERR_NOTFOUND)
			WARNX("'%s' has no cur/ directory", where);
		return r;
	}
	sc.had_new = tok.new_ino != 0 || tok.new_sec != 0;
	for (sz = 64; sz < ix->live * 2 + 64; sz *= 2)
		;
	r = MSYNC_ERR_NOMEM;
	if ((sc.slot = calloc(sz, sizeof(*sc.slot))) == NULL ||
	    (ix->n > 0 && (sc.seen = calloc(ix->n, 1)) == NULL))
		goto out;
	sc.mask = sz - 1;
	for (i = 0; i < ix->n; i++) {
		if (ix->v[i].name == INDEX_NAME_DEAD)
			continue;
		/* One hash of the name for the look-up and the insert. */
		n = ix->arena + ix->v[i].name + 4;
		blen = base_len(n);
		hv = XXH3_64bits(n, blen);
		if (ht_find_hv(&sc, n, blen, hv) >= 0) {
			/* Two entries, one file: keep the first. */
			ent_remove(ix, &ix->v[i]);
			sc.changed = 1;
			continue;
		}
		if ((r = ht_insert(&sc, (uint32_t)i, hv)) != 0)
			goto out;
		if (strncmp(ix->arena + ix->v[i].name, "new/", 4) == 0)
			sc.nin_new++;
	}
	if ((r = scan_dir(&sc, "new", 0)) != 0 ||
	    (r = scan_dir(&sc, "cur", 0)) != 0)
		goto out;
	for (pass = 0; pass < INDEX_RETRIES && sc.nretry > 0; pass++)
		if ((r = scan_dir(&sc, "cur", 1)) != 0 ||
		    (r = scan_dir(&sc, "new", 1)) != 0)
			goto out;
	for (i = 0; i < sc.nretry; i++)
		LOG3("'%s': '%s' vanished during the scan", where,
		    log_esc(sc.retry[i], 300));
	if (sc.npend > 1) {
		sort_ix = ix;
		msync_sort(sc.pend, sc.npend, sizeof(*sc.pend), pend_cmp);
		sort_ix = NULL;
	}
	if ((r = keep_renamed(ix, &sc)) != 0)
		goto out;
	for (i = 0; i < ix->n; i++)
		if (ix->v[i].name != INDEX_NAME_DEAD && !sc.seen[i]) {
			LOG4("'%s': uid %u gone", where, ix->v[i].uid);
			ent_remove(ix, &ix->v[i]);
			sc.changed = 1;
		}
	for (i = 0; i < sc.npend; i++) {
		if (sc.pend[i].name == PEND_TAKEN)
			continue;
		/* ent_append copies the name; the pend one becomes garbage. */
		n = ix->arena + sc.pend[i].name;
		if (ix->uidnext == UINT32_MAX) {
			r = MSYNC_ERR_TOOBIG;
			goto out;
		}
		uid = ix->uidnext;
		{
			char	tmp[4 + MDNAME_MAX + 1];

			snprintf(tmp, sizeof(tmp), "%s", n);
			if ((r = ent_append(ix, uid, &sc.pend[i].guid,
			    sc.pend[i].size, sc.pend[i].date, tmp)) != 0)
				goto out;
			ix->garbage += strlen(tmp) + 1;
		}
		ix->uidnext++;
		sc.changed = 1;
	}
	if (sc.changed) {
		modseq_bump(ix);
		ix->dirty = 1;
	}
	if (memcmp(&tok, &ix->token, sizeof(tok)) != 0)
		ix->dirty = 1;
	ix->token = tok;
	if (changed != NULL)
		*changed = sc.changed;
	/*
	 * A first scan leaves half the arena garbage (every name is kept
	 * once while pending, once in its entry), and a run holds every
	 * folder's index: compact from a quarter (docs/PERFORMANCE.md).
	 */
	if (ix->garbage > ix->alen / 4 || ix->n - ix->live > ix->n / 2)
		r = index_compact(ix);
	else
		r = 0;
out:
	for (i = 0; i < sc.nretry; i++)
		free(sc.retry[i]);
	free(sc.retry);
	free(sc.slot);
	free(sc.seen);
	free(sc.pend);
	return r;
}

/*
 * Finds e's file again by base name in cur/ then new/ (twice, as a
 * rename can race a readdir).  Returns 0, MSYNC_ERR_NOTFOUND or
 * MSYNC_ERR_IO.
 */
int
index_refind(struct index *ix, int folderfd, struct index_ent *e)
{
	static const char *const subs[] = { "cur", "new" };
	struct dirent	*de;
	DIR		*d;
	char		 base[MDNAME_MAX + 1], rel[4 + MDNAME_MAX + 1];
	size_t		 blen;
	int		 fd, pass, s, r;

	snprintf(base, sizeof(base), "%s", index_name(ix, e) + 4);
	blen = base_len(base);
	base[blen] = '\0';
	for (pass = 0; pass < 2; pass++)
		for (s = 0; s < 2; s++) {
			fd = openat(folderfd, subs[s], O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (fd == -1)
				continue;
			if ((d = fdopendir(fd)) == NULL) {
				close(fd);
				return MSYNC_ERR_IO;
			}
			while ((de = readdir(d)) != NULL) {
				if (strncmp(de->d_name, base, blen) != 0 ||
				    (de->d_name[blen] != '\0' &&
				    de->d_name[blen] != ':'))
					continue;
				if (de->d_type != DT_REG &&
				    de->d_type != DT_UNKNOWN)
					continue;
				snprintf(rel, sizeof(rel), "%s/%s", subs[s],
				    de->d_name);
				closedir(d);
				r = index_set_name(ix, e, rel);
				return r;
			}
			closedir(d);
		}
	return MSYNC_ERR_NOTFOUND;
}

/* 1 if s (len bytes) is a keyword name: an IMAP atom, bounded. */
int
index_kw_valid(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > MSYNC_KWNAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || strchr("(){%*\"\\]",
		    s[i]) != NULL)
			return 0;
	return 1;
}

/* Frees the names of a keyword map and marks it unloaded. */
void
index_kw_clear(struct index_kwmap *m)
{
	int	i;

	for (i = 0; i < 26; i++) {
		free(m->name[i]);
		m->name[i] = NULL;
	}
	m->loaded = 0;
}

/*
 * (Re)reads dovecot-keywords of the folder into m.  A missing file is an
 * empty map; bad lines are skipped.  Returns 0, MSYNC_ERR_IO or
 * MSYNC_ERR_NOMEM.
 */
int
index_kw_load(int folderfd, struct index_kwmap *m)
{
	struct stat	 st;
	char		 buf[INDEX_KWFILE_MAX + 1], *line, *nl, *sp;
	ssize_t		 n;
	size_t		 off = 0;
	uint64_t	 slot;
	struct cur	 c;
	int		 fd;

	index_kw_clear(m);
	fd = openat(folderfd, INDEX_KWFILE, O_RDONLY | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		if (errno != ENOENT)
			return MSYNC_ERR_IO;
		m->loaded = 1;
		return 0;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		close(fd);
		return MSYNC_ERR_IO;
	}
	while (off < INDEX_KWFILE_MAX) {
		n = read(fd, buf + off, INDEX_KWFILE_MAX - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	for (line = buf; line < buf + off; line = nl + 1) {
		if ((nl = memchr(line, '\n', (size_t)(buf + off - line))) ==
		    NULL)
			break;	/* an unfinished last line is ignored */
		*nl = '\0';
		c.p = line;
		c.end = nl;
		if (!get_u64(&c, &slot) || slot >= 26 || !get_lit(&c, " ") ||
		    (sp = (char *)c.p) == NULL ||
		    !index_kw_valid(sp, (size_t)(nl - sp)) ||
		    m->name[slot] != NULL) {
			LOG3("ignoring line in dovecot-keywords");
			continue;
		}
		if ((m->name[slot] = strdup(sp)) == NULL) {
			index_kw_clear(m);
			return MSYNC_ERR_NOMEM;
		}
	}
	m->loaded = 1;
	return 0;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The names of letters bits, sorted, space-separated; *out NULL when
 * none is named.  Returns 0 or MSYNC_ERR_NOMEM.
 */
int
index_kw_names(const struct index_kwmap *m, uint32_t bits, char **out)
{
	const char	*v[26];
	size_t		 n = 0, len = 0, i, o = 0;
	char		*s;

	*out = NULL;
	for (i = 0; i < 26; i++)
		if ((bits & (1u << i)) && m->name[i] != NULL) {
			v[n++] = m->name[i];
			len += strlen(m->name[i]) + 1;
		}
	if (n == 0)
		return 0;
	msync_sort(v, n, sizeof(v[0]), str_cmp);
	if ((s = malloc(len)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		if (o > 0)
			s[o++] = ' ';
		memcpy(s + o, v[i], strlen(v[i]));
		o += strlen(v[i]);
	}
	s[o] = '\0';
	*out = s;
	return 0;
}

/*
 * Letters for the keyword names in kw (space-separated; NULL or "" for
 * none).  New names take free slots (*added = 1); invalid names and names
 * with no free slot left are dropped with a warning.  Returns 0 or
 * MSYNC_ERR_NOMEM.
 */
int
index_kw_bits(struct index_kwmap *m, const char *kw, uint32_t *bits,
    int *added)
{
	const char	*p, *e;
	size_t		 len;
	int		 i, freeslot;

	*bits = 0;
	if (kw == NULL)
		return 0;
	for (p = kw; *p != '\0'; p = *e ? e + 1 : e) {
		e = strchr(p, ' ');
		if (e == NULL)
			e = p + strlen(p);
		len = (size_t)(e - p);
		if (len == 0)
			continue;
		if (!index_kw_valid(p, len)) {
			WARNX("dropping invalid keyword '%s'",
			    log_esc(p, len < 64 ? len : 64));
			continue;
		}
		freeslot = -1;
		for (i = 0; i < 26; i++) {
			if (m->name[i] == NULL) {
				if (freeslot < 0)
					freeslot = i;
				continue;
			}
			if (strlen(m->name[i]) == len &&
			    memcmp(m->name[i], p, len) == 0)
				break;
		}
		if (i < 26) {
			*bits |= 1u << i;
			continue;
		}
		if (freeslot < 0) {
			WARNX("dropping keyword '%.*s': all 26 keyword "
			    "letters are in use", (int)len, p);
			continue;
		}
		if ((m->name[freeslot] = strndup(p, len)) == NULL)
			return MSYNC_ERR_NOMEM;
		*bits |= 1u << freeslot;
		if (added != NULL)
			*added = 1;
	}
	return 0;
}

/* Writes dovecot-keywords of the folder atomically from m. */
int
index_kw_save(int folderfd, const struct index_kwmap *m)
{
	char	buf[26 * (MSYNC_KWNAME_MAX + 5)];
	size_t	o = 0;
	int	i;

	for (i = 0; i < 26; i++)
		if (m->name[i] != NULL)
			o += (size_t)snprintf(buf + o, sizeof(buf) - o,
			    "%d %s\n", i, m->name[i]);
	return index_write_atomic(folderfd, INDEX_KWFILE, buf, o);
}
