/*
 * state.c — the sync state of one pair of stores: what both sides had in
 * common at the end of the last successful sync (DESIGN.md "Sync state").
 *
 * The file (and the bytes state_encode produces, which also travel to the
 * server brain) is binary, every integer little-endian:
 *
 *	file	= magic version nmbox *mbox checksum
 *	magic	= "MSYNCST" NUL				8 bytes
 *	version	= u32					1
 *	nmbox	= u32					<= MSYNC_MBOX_MAX
 *	mbox	= guid[16] u32:namelen name uidvalidity[2]:u32
 *		  modseq[2]:u64 u32:nmsgs *msg		1 <= namelen <= NAME_MAX
 *	msg	= guid[16] uid[2]:u32 flags[2]:u8
 *		  u16:kwlen kw u16:kwlen kw		kwlen <= KWSTR_MAX
 *	checksum = u64					XXH3-64 of all before it
 *
 * A name or keyword string holds no NUL; kwlen 0 means no keywords.  The
 * decoder checks the checksum first, bounds every count by both its limit
 * and the bytes left, rejects a message whose two uids are 0, unknown flag
 * bits, two mailboxes with one GUID, a uid used twice on one side of a
 * mailbox, and trailing bytes.  The decoded state is sorted (state_sort).
 */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "msync.h"
#include "state.h"

#define STATE_MAGIC	"MSYNCST"	/* 7 chars + NUL = 8 bytes */
#define STATE_VERSION	1
#define HDR_LEN		(8 + 4 + 4)
#define SUM_LEN		8
#define MBOX_MIN	(16 + 4 + 1 + 2 * 4 + 2 * 8 + 4)
#define MSG_MIN		(16 + 2 * 4 + 2 + 2 * 2)

/*
 * Test hook (declared by tests/unit/test_state.c only): when non-zero,
 * the state_test_fail'th write(2), fsync(2) or rename(2) that state_save
 * makes fails with EIO, SQLite-style.  Each failure resets it to 0.
 */
int state_test_fail;
static int state_test_calls;

void
state_clear(struct state *st)
{
	size_t	 i, j;

	if (st == NULL)
		return;
	for (i = 0; i < st->n; i++) {
		struct state_mbox *mb = &st->mb[i];

		for (j = 0; j < mb->nmsgs; j++) {
			free(mb->msgs[j].kw[0]);
			free(mb->msgs[j].kw[1]);
		}
		free(mb->msgs);
		free(mb->name);
	}
	free(st->mb);
	memset(st, 0, sizeof(*st));
}

int
state_add_mbox(struct state *st, const struct guid *g, const char *name,
    struct state_mbox **out)
{
	struct state_mbox	*mb;
	char			*nm;

	if (msync_grow(&st->mb, &st->cap, st->n, sizeof(*st->mb)) != 0)
		return MSYNC_ERR_NOMEM;
	if ((nm = strdup(name != NULL ? name : "")) == NULL)
		return MSYNC_ERR_NOMEM;
	mb = &st->mb[st->n++];
	memset(mb, 0, sizeof(*mb));
	mb->guid = *g;
	mb->name = nm;
	if (out != NULL)
		*out = mb;
	return 0;
}

int
state_add_msg(struct state_mbox *mb, const struct state_msg *m)
{
	struct state_msg	*d;
	char			*kw[2] = { NULL, NULL };
	int			 s;

	for (s = 0; s < 2; s++) {
		if (m->kw[s] != NULL && (kw[s] = strdup(m->kw[s])) == NULL) {
			free(kw[0]);
			return MSYNC_ERR_NOMEM;
		}
	}
	if (msync_grow(&mb->msgs, &mb->capmsgs, mb->nmsgs,
	    sizeof(*mb->msgs)) != 0) {
		free(kw[0]);
		free(kw[1]);
		return MSYNC_ERR_NOMEM;
	}
	d = &mb->msgs[mb->nmsgs++];
	*d = *m;
	d->kw[0] = kw[0];
	d->kw[1] = kw[1];
	return 0;
}

static int
kwcmp(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

/*
 * A total order on messages: uid[A], uid[B], then every other field, so
 * the sorted order does not depend on the qsort implementation.
 */
int
state_msg_cmp(const void *pa, const void *pb)
{
	const struct state_msg	*a = pa, *b = pb;
	int			 s, r;

	for (s = 0; s < 2; s++)
		if (a->uid[s] != b->uid[s])
			return a->uid[s] < b->uid[s] ? -1 : 1;
	if ((r = guid_cmp(&a->guid, &b->guid)) != 0)
		return r;
	for (s = 0; s < 2; s++)
		if (a->flags[s] != b->flags[s])
			return a->flags[s] < b->flags[s] ? -1 : 1;
	for (s = 0; s < 2; s++)
		if ((r = kwcmp(a->kw[s], b->kw[s])) != 0)
			return r;
	return 0;
}

static int
mbox_cmp(const void *pa, const void *pb)
{
	const struct state_mbox	*a = pa, *b = pb;
	int			 r;

	if ((r = guid_cmp(&a->guid, &b->guid)) != 0)
		return r;
	return strcmp(a->name, b->name);
}

void
state_sort(struct state *st)
{
	size_t	 i;

	msync_sort(st->mb, st->n, sizeof(*st->mb), mbox_cmp);
	for (i = 0; i < st->n; i++)
		msync_sort(st->mb[i].msgs, st->mb[i].nmsgs,
		    sizeof(*st->mb[i].msgs), state_msg_cmp);
}

int
state_take_mbox(struct state *to, struct state_mbox *from)
{
	if (msync_grow(&to->mb, &to->cap, to->n, sizeof(*to->mb)) != 0)
		return MSYNC_ERR_NOMEM;
	to->mb[to->n++] = *from;
	memset(from, 0, sizeof(*from));
	return 0;
}

struct state_mbox *
state_find(const struct state *st, const struct guid *g)
{
	size_t	 lo = 0, hi, mid;
	int	 r;

	if (st == NULL)
		return NULL;
	hi = st->n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		r = guid_cmp(&st->mb[mid].guid, g);
		if (r == 0)
			return &st->mb[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Little-endian writers into a buffer sized beforehand. */
static uint8_t *
put_u16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
	return p + 2;
}

static uint8_t *
put_u32(uint8_t *p, uint32_t v)
{
	int	 i;

	for (i = 0; i < 4; i++)
		p[i] = (v >> (8 * i)) & 0xff;
	return p + 4;
}

static uint8_t *
put_u64(uint8_t *p, uint64_t v)
{
	int	 i;

	for (i = 0; i < 8; i++)
		p[i] = (v >> (8 * i)) & 0xff;
	return p + 8;
}

static uint8_t *
put_bytes(uint8_t *p, const void *v, size_t n)
{
	if (n > 0)
		memcpy(p, v, n);
	return p + n;
}

/* Adds n to *tot; returns -1 on overflow. */
static int
add_len(size_t *tot, size_t n)
{
	if (n > SIZE_MAX - *tot)
		return -1;
	*tot += n;
	return 0;
}

int
state_encode(const struct state *st, uint8_t **out, size_t *len)
{
	uint8_t	*buf = NULL, *p;
	size_t	 tot = HDR_LEN + SUM_LEN, i, j, nl, kl;
	int	 s;

	*out = NULL;
	*len = 0;
	if (st->n > MSYNC_MBOX_MAX)
		return MSYNC_ERR_TOOBIG;
	for (i = 0; i < st->n; i++) {
		const struct state_mbox *mb = &st->mb[i];

		nl = mb->name != NULL ? strlen(mb->name) : 0;
		if (nl == 0 || nl > MSYNC_NAME_MAX)
			return MSYNC_ERR_BADNAME;
		if (mb->nmsgs > MSYNC_MSGS_MAX)
			return MSYNC_ERR_TOOBIG;
		if (add_len(&tot, MBOX_MIN - 1 + nl) != 0)
			return MSYNC_ERR_TOOBIG;
		for (j = 0; j < mb->nmsgs; j++) {
			if (add_len(&tot, MSG_MIN) != 0)
				return MSYNC_ERR_TOOBIG;
			for (s = 0; s < 2; s++) {
				kl = mb->msgs[j].kw[s] != NULL ?
				    strlen(mb->msgs[j].kw[s]) : 0;
				if (kl > MSYNC_KWSTR_MAX)
					return MSYNC_ERR_TOOBIG;
				if (add_len(&tot, kl) != 0)
					return MSYNC_ERR_TOOBIG;
			}
		}
	}
	if ((buf = malloc(tot)) == NULL)
		return MSYNC_ERR_NOMEM;
	p = put_bytes(buf, STATE_MAGIC, 8);
	p = put_u32(p, STATE_VERSION);
	p = put_u32(p, (uint32_t)st->n);
	for (i = 0; i < st->n; i++) {
		const struct state_mbox *mb = &st->mb[i];

		nl = strlen(mb->name);
		p = put_bytes(p, mb->guid.b, 16);
		p = put_u32(p, (uint32_t)nl);
		p = put_bytes(p, mb->name, nl);
		for (s = 0; s < 2; s++)
			p = put_u32(p, mb->uidvalidity[s]);
		for (s = 0; s < 2; s++)
			p = put_u64(p, mb->modseq[s]);
		p = put_u32(p, (uint32_t)mb->nmsgs);
		for (j = 0; j < mb->nmsgs; j++) {
			const struct state_msg *m = &mb->msgs[j];

			p = put_bytes(p, m->guid.b, 16);
			for (s = 0; s < 2; s++)
				p = put_u32(p, m->uid[s]);
			for (s = 0; s < 2; s++)
				*p++ = m->flags[s];
			for (s = 0; s < 2; s++) {
				kl = m->kw[s] != NULL ? strlen(m->kw[s]) : 0;
				p = put_u16(p, (uint16_t)kl);
				p = put_bytes(p, m->kw[s], kl);
			}
		}
	}
	p = put_u64(p, XXH3_64bits(buf, (size_t)(p - buf)));
	if ((size_t)(p - buf) != tot) {
		free(buf);
		return MSYNC_ERR_INTERNAL;
	}
	*out = buf;
	*len = tot;
	return 0;
}

/* A bounded reader: a failed get leaves the cursor where it was. */
struct rd {
	const uint8_t	*p;		/* borrowed */
	size_t		 len;
	size_t		 off;
};

static int
get_bytes(struct rd *r, void *v, size_t n)
{
	if (n > r->len - r->off)
		return -1;
	if (n > 0)
		memcpy(v, r->p + r->off, n);
	r->off += n;
	return 0;
}

static int
get_u16(struct rd *r, uint16_t *v)
{
	uint8_t	 b[2];

	if (get_bytes(r, b, 2) != 0)
		return -1;
	*v = (uint16_t)(b[0] | (b[1] << 8));
	return 0;
}

static int
get_u32(struct rd *r, uint32_t *v)
{
	uint8_t	 b[4];

	if (get_bytes(r, b, 4) != 0)
		return -1;
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	    (uint32_t)b[3] << 24;
	return 0;
}

static int
get_u64(struct rd *r, uint64_t *v)
{
	uint8_t	 b[8];
	int	 i;

	if (get_bytes(r, b, 8) != 0)
		return -1;
	*v = 0;
	for (i = 7; i >= 0; i--)
		*v = *v << 8 | b[i];
	return 0;
}

/*
 * Reads a string of n bytes (no NUL inside) into a new heap string.
 * Returns 0, MSYNC_ERR_STATE_CORRUPT or MSYNC_ERR_NOMEM.
 */
static int
get_str(struct rd *r, size_t n, char **out)
{
	char	*s;

	*out = NULL;
	if (n > r->len - r->off || memchr(r->p + r->off, '\0', n) != NULL)
		return MSYNC_ERR_STATE_CORRUPT;
	if ((s = malloc(n + 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	memcpy(s, r->p + r->off, n);
	s[n] = '\0';
	r->off += n;
	*out = s;
	return 0;
}

/*
 * Checks a sorted state: distinct mailbox GUIDs, and no uid used twice
 * on one side of one mailbox.  Returns 0 or MSYNC_ERR_STATE_CORRUPT.
 */
static int
state_check(const struct state *st)
{
	uint32_t	*u = NULL;
	size_t		 i, j, k, cap = 0;
	int		 s, r = 0;

	for (i = 0; i < st->n && r == 0; i++) {
		const struct state_mbox *mb = &st->mb[i];

		if (i > 0 && guid_cmp(&st->mb[i - 1].guid, &mb->guid) == 0) {
			r = MSYNC_ERR_STATE_CORRUPT;
			break;
		}
		if (mb->nmsgs > cap) {
			free(u);
			if ((u = calloc(mb->nmsgs, sizeof(*u))) == NULL)
				return MSYNC_ERR_NOMEM;
			cap = mb->nmsgs;
		}
		for (s = 0; s < 2 && r == 0; s++) {
			for (j = k = 0; j < mb->nmsgs; j++)
				if (mb->msgs[j].uid[s] != 0)
					u[k++] = mb->msgs[j].uid[s];
			/* Side A's are in order already, side B's mostly. */
			msync_sort(u, k, sizeof(*u), msync_u32_cmp);
			for (j = 1; j < k; j++)
				if (u[j] == u[j - 1])
					r = MSYNC_ERR_STATE_CORRUPT;
		}
	}
	free(u);
	return r;
}

/* Reads: mbox (see the grammar at the top). */
static int
get_mbox(struct rd *r, struct state *st)
{
	struct state_mbox	*mb;
	struct state_msg	 m;
	struct guid		 g;
	uint32_t		 nl, nmsgs, j;
	uint16_t		 kl;
	char			*name = NULL;
	int			 s, rc;

	/* Read: [mbox-guid] [name-len] [name]. */
	if (get_bytes(r, g.b, 16) != 0 || get_u32(r, &nl) != 0 ||
	    nl == 0 || nl > MSYNC_NAME_MAX)
		return MSYNC_ERR_STATE_CORRUPT;
	if ((rc = get_str(r, nl, &name)) != 0)
		return rc;
	rc = state_add_mbox(st, &g, name, &mb);
	free(name);
	if (rc != 0)
		return rc;
	/* Read: [uidvalidity A B] [modseq A B] [nmsgs]. */
	for (s = 0; s < 2; s++)
		if (get_u32(r, &mb->uidvalidity[s]) != 0)
			return MSYNC_ERR_STATE_CORRUPT;
	for (s = 0; s < 2; s++)
		if (get_u64(r, &mb->modseq[s]) != 0)
			return MSYNC_ERR_STATE_CORRUPT;
	if (get_u32(r, &nmsgs) != 0 || nmsgs > MSYNC_MSGS_MAX ||
	    nmsgs > (r->len - r->off) / MSG_MIN)
		return MSYNC_ERR_STATE_CORRUPT;
	if (nmsgs > 0) {
		if ((mb->msgs = calloc(nmsgs, sizeof(*mb->msgs))) == NULL)
			return MSYNC_ERR_NOMEM;
		mb->capmsgs = nmsgs;
	}
	for (j = 0; j < nmsgs; j++) {
		/* Read: [guid] [uid A B] [flags A B] [kw A] [kw B]. */
		memset(&m, 0, sizeof(m));
		if (get_bytes(r, m.guid.b, 16) != 0 ||
		    get_u32(r, &m.uid[0]) != 0 || get_u32(r, &m.uid[1]) != 0 ||
		    get_bytes(r, m.flags, 2) != 0)
			return MSYNC_ERR_STATE_CORRUPT;
		if ((m.uid[0] == 0 && m.uid[1] == 0) ||
		    (m.flags[0] & ~FLAG_ALL) != 0 ||
		    (m.flags[1] & ~FLAG_ALL) != 0)
			return MSYNC_ERR_STATE_CORRUPT;
		/* The entry owns what get_str returns from here on. */
		mb->msgs[mb->nmsgs++] = m;
		for (s = 0; s < 2; s++) {
			if (get_u16(r, &kl) != 0 || kl > MSYNC_KWSTR_MAX)
				return MSYNC_ERR_STATE_CORRUPT;
			if (kl == 0)
				continue;
			if ((rc = get_str(r, kl, &mb->msgs[j].kw[s])) != 0)
				return rc;
		}
	}
	return 0;
}

int
state_decode(const uint8_t *buf, size_t len, struct state *out)
{
	struct rd	 r;
	uint32_t	 ver, n, i;
	uint64_t	 sum;
	uint8_t		 magic[8];
	int		 rc = 0;

	memset(out, 0, sizeof(*out));
	if (buf == NULL || len < HDR_LEN + SUM_LEN)
		return MSYNC_ERR_STATE_CORRUPT;
	/* Read: [checksum], the last 8 bytes, before anything else. */
	r.p = buf;
	r.len = len;
	r.off = len - SUM_LEN;
	if (get_u64(&r, &sum) != 0 || sum != XXH3_64bits(buf, len - SUM_LEN))
		return MSYNC_ERR_STATE_CORRUPT;
	r.len = len - SUM_LEN;
	r.off = 0;
	/* Read: [magic] [version] [nmbox]. */
	if (get_bytes(&r, magic, 8) != 0 ||
	    memcmp(magic, STATE_MAGIC, 8) != 0 ||
	    get_u32(&r, &ver) != 0 || ver != STATE_VERSION ||
	    get_u32(&r, &n) != 0 || n > MSYNC_MBOX_MAX ||
	    n > (r.len - r.off) / MBOX_MIN)
		return MSYNC_ERR_STATE_CORRUPT;
	if (n > 0) {
		if ((out->mb = calloc(n, sizeof(*out->mb))) == NULL)
			return MSYNC_ERR_NOMEM;
		out->cap = n;
	}
	for (i = 0; i < n && rc == 0; i++)
		rc = get_mbox(&r, out);
	if (rc == 0 && r.off != r.len)
		rc = MSYNC_ERR_STATE_CORRUPT;	/* trailing data */
	if (rc == 0) {
		state_sort(out);
		rc = state_check(out);
	}
	if (rc != 0)
		state_clear(out);
	return rc;
}

/* Counts a fallible system call for the test hook; 1 = fail it now. */
static int
fault(void)
{
	if (state_test_fail == 0)
		return 0;
	if (++state_test_calls < state_test_fail)
		return 0;
	state_test_fail = 0;
	state_test_calls = 0;
	errno = EIO;
	return 1;
}

/* write(2) all of buf, retrying on EINTR and short writes. */
static int
write_all(int fd, const uint8_t *buf, size_t len)
{
	ssize_t	 w;

	while (len > 0) {
		if (fault())
			return -1;
		w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

int
state_save(const char *path, const struct state *st)
{
	uint8_t	*buf = NULL;
	size_t	 len, dl;
	char	*dir = NULL, *tmp = NULL, *slash;
	int	 fd = -1, dfd = -1, rc, saved;

	state_test_calls = 0;
	if ((rc = state_encode(st, &buf, &len)) != 0)
		return rc;
	if ((dir = strdup(path)) == NULL ||
	    (tmp = malloc(strlen(path) + 8)) == NULL) {
		rc = MSYNC_ERR_NOMEM;
		goto out;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((rc = msync_mkdirs(dir)) != 0)
		goto out;
	dl = strlen(path);
	memcpy(tmp, path, dl);
	memcpy(tmp + dl, ".XXXXXX", 8);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		rc = MSYNC_ERR_IO;
		free(tmp);
		tmp = NULL;		/* nothing to unlink */
		goto out;
	}
	if (write_all(fd, buf, len) != 0 || fault() || fsync(fd) != 0) {
		rc = MSYNC_ERR_IO;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = MSYNC_ERR_IO;
		goto out;
	}
	fd = -1;
	if (fault() || rename(tmp, path) != 0) {
		rc = MSYNC_ERR_IO;
		goto out;
	}
	free(tmp);
	tmp = NULL;		/* renamed: nothing to unlink */
	/*
	 * The new state is in place; a failed fsync of the directory only
	 * means the rename may not survive a crash.  Report it anyway.
	 */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fault() || fsync(dfd) != 0)
		rc = MSYNC_ERR_IO;
 out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	if (tmp != NULL)
		unlink(tmp);
	free(tmp);
	free(dir);
	free(buf);
	errno = saved;
	return rc;
}

int
state_load(const char *path, struct state *out)
{
	struct stat	 sb;
	uint8_t		*buf = NULL;
	size_t		 len = 0, cap;
	ssize_t		 n;
	int		 fd, rc;

	memset(out, 0, sizeof(*out));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return errno == ENOENT ? 0 : MSYNC_ERR_STATE_CORRUPT;
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return MSYNC_ERR_STATE_CORRUPT;
	}
	cap = sb.st_size > 0 && (uint64_t)sb.st_size < SIZE_MAX / 2 ?
	    (size_t)sb.st_size + 1 : 4096;
	if ((buf = malloc(cap)) == NULL) {
		close(fd);
		return MSYNC_ERR_NOMEM;
	}
	for (;;) {
		if (len == cap) {
			void *p;

			if (cap > SIZE_MAX / 2 ||
			    (p = realloc(buf, cap * 2)) == NULL) {
				rc = MSYNC_ERR_NOMEM;
				goto out;
			}
			buf = p;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = MSYNC_ERR_STATE_CORRUPT;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	rc = state_decode(buf, len, out);
 out:
	close(fd);
	free(buf);
	return rc;
}

int
state_path(const char *state_dir, const char *loc_a, const char *loc_b,
    char **out)
{
	XXH128_hash_t		 h;
	XXH128_canonical_t	 c;
	XXH3_state_t		*xs;
	const char		*e, *dir = state_dir, *sfx = "";
	char			 hex[33];
	size_t			 len;
	int			 i;

	*out = NULL;
	if (dir == NULL) {
		if ((e = getenv("XDG_STATE_HOME")) != NULL && e[0] == '/') {
			dir = e;
			sfx = "/msync";
		} else if ((e = getenv("HOME")) != NULL && e[0] == '/') {
			dir = e;
			sfx = "/.local/state/msync";
		} else
			return MSYNC_ERR_USAGE;
	}
	if ((xs = XXH3_createState()) == NULL)
		return MSYNC_ERR_NOMEM;
	(void)XXH3_128bits_reset(xs);
	(void)XXH3_128bits_update(xs, loc_a, strlen(loc_a) + 1);
	(void)XXH3_128bits_update(xs, loc_b, strlen(loc_b));
	h = XXH3_128bits_digest(xs);
	XXH3_freeState(xs);
	XXH128_canonicalFromHash(&c, h);
	for (i = 0; i < 16; i++) {
		hex[2 * i] = "0123456789abcdef"[c.digest[i] >> 4];
		hex[2 * i + 1] = "0123456789abcdef"[c.digest[i] & 0xf];
	}
	hex[32] = '\0';
	len = strlen(dir) + strlen(sfx) + 1 + 32 + sizeof(".state");
	if (len > MSYNC_PATH_MAX)
		return MSYNC_ERR_TOOBIG;
	if ((*out = malloc(len)) == NULL)
		return MSYNC_ERR_NOMEM;
	(void)snprintf(*out, len, "%s%s/%s.state", dir, sfx, hex);
	return 0;
}
