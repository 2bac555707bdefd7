/*
 * src/store/imap.c — the IMAP store: an IMAP account behind store.h,
 * through the client in src/imap/.
 *
 * Identity.  A message's GUID is its content hash, as everywhere; to know
 * it, its body must be read once.  What has been read is kept in the
 * cache directory ($XDG_CACHE_HOME/msync/imap/<server+user>/<mailbox>):
 * per (UIDVALIDITY, UID) the GUID, size and date, so a re-run downloads
 * no body it has seen.  A body read while listing is kept in a spool file
 * beside the cache until the sync reads it (msg_open), so a first copy
 * downloads each message once.  A mailbox's GUID is derived from server,
 * user, name and UIDVALIDITY, or the one adopted from the peer (kept in
 * the cache).
 *
 * Content.  Bodies are stored in the spool (and handed to the brain) with
 * CRLF folded to LF, as Maildir and mbox hold them; saved messages get
 * LF -> CRLF on the way to APPEND.  The GUID is the same either way.
 *
 * Change.  A mailbox's modseq is the server's HIGHESTMODSEQ (CONDSTORE),
 * so an unchanged mailbox costs one STATUS; without CONDSTORE it is 0 and
 * the mailbox is listed every run.
 *
 * Read-only.  A read-only store (a --backup/--one-way source) opens
 * mailboxes with EXAMINE and reads with BODY.PEEK: nothing on the server
 * changes, \Seen included.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fprint.h"
#include "guid.h"
#include "log.h"
#include "msync.h"
#include "names.h"
#include "secret.h"
#include "store.h"
#include "imap/conn.h"
#include "imap/parse.h"
#include "imap/url.h"

/*
 * Version 2 adds the flags of each message and the HIGHESTMODSEQ they
 * are valid at, so that a changed mailbox is listed by its changes
 * (CONDSTORE's CHANGEDSINCE, QRESYNC's VANISHED).  Version 1 files are
 * read (without flags) and rewritten as version 2.
 */
#define CACHE_MAGIC1	"msync-imap-cache 1"
#define CACHE_MAGIC	"msync-imap-cache 2"
#define CACHE_LINE_MAX	(MSYNC_KWSTR_MAX + 256)
#define CACHE_RBUF	(64 * 1024)	/* bytes of the cache read at once */
#define FETCH_CHUNK	256	/* UIDs in one UID FETCH of bodies */
#define RETRIES		5	/* reconnects for one operation */
#define RECONNECTS_MAX	50	/* reconnects in one run */
#define BACKOFF_MS	1000	/* the first wait; doubled each time */
#define BACKOFF_MAX_MS	60000	/* our own waits stop growing here */
#define REFUSED_MAX	10000	/* refused messages remembered for the list */
#define HDR_MAX		65536	/* header bytes read for the refused list */
#define SPOOL_BUF	(256 * 1024)	/* spool bytes gathered per write */

/* A message the server would not take, for the list at the end. */
struct refused {
	char		*mbox;		/* owned; internal name */
	uint64_t	 size;		/* bytes as sent (CRLF) */
	char		*msgid;		/* owned; Message-ID or NULL */
	char		*subject;	/* owned; Subject or NULL */
	char		*why;		/* owned; the server's answer */
};

/* One cached message: what a body read once told us. */
struct centry {
	uint32_t	 uid;
	struct guid	 guid;
	uint64_t	 size;		/* bytes with CRLF folded to LF */
	int64_t		 date;		/* INTERNALDATE */
	uint8_t		 fknown;	/* flags and kw below are known */
	uint8_t		 flags;		/* FLAG_* bits */
	uint8_t		 byfp;		/* GUID taken from the peer's message
					   of the same header fingerprint,
					   not from the body (docs/IMAP.md) */
	char		*kw;		/* owned; NULL or sorted keywords */
};

/* A body in the spool file: bytes [off, off + len), CRLF folded. */
struct spent {
	uint32_t	 uv;		/* UIDVALIDITY it was read under */
	uint32_t	 uid;
	uint64_t	 off, len;
};

/* A message's header fingerprint, as a FETCH told it. */
struct fpseen {
	uint32_t	 uid;
	int		 ok;		/* fp is set (it has a Message-ID) */
	struct guid	 fp;
	int64_t		 date;		/* INTERNALDATE */
};

/* One server mailbox. */
struct imbox {
	char		*name;		/* owned; internal name */
	char		*raw;		/* owned; the server's name (mUTF-7) */
	char		*wire;		/* owned; raw, quoted */
	struct guid	 guid;
	int		 guid_adopted;	/* guid came from the cache */
	uint32_t	 uidvalidity, uidnext, count;
	uint64_t	 modseq;
	uint32_t	 append_floor;	/* no message we appended has a UID
					   below this (UIDNEXT, APPENDUID+1) */
	int		 uv_changed;	/* UIDVALIDITY moved in this run */
	int		 loaded;	/* cache read */
	int		 dirty;		/* cache to write */
	uint32_t	 cache_uidvalidity;
	/*
	 * The HIGHESTMODSEQ at which the cache's flags and UIDs were the
	 * server's (0: unknown): a listing asks only for what changed
	 * since (CHANGEDSINCE, VANISHED).
	 */
	uint64_t	 cache_modseq;
	struct centry	*c;		/* owned; sorted by uid */
	size_t		 nc, capc;
	struct spent	*sp;		/* owned; bodies spooled this run,
					   sorted by (uv, uid) */
	size_t		 nsp, capsp;
	struct msglist	 last;		/* owned; the last listing this run */
	uint64_t	 last_modseq;	/* HIGHESTMODSEQ it was made at; 0: none */
	struct store_hint *hints;	/* owned; the peer's, for the next
					   listing (store_hints) */
	size_t		 nhints;
	/*
	 * Fingerprint matches found wrong when the body was read (kept in
	 * the cache's first line).  Added to the modseq the brain sees, so
	 * a mailbox whose cached GUIDs were corrected is listed again even
	 * though nothing changed on the server.
	 */
	uint64_t	 fixgen;
};

struct istore {
	struct store	 base;
	struct imap_conn *c;		/* owned */
	struct imap_url	 u;		/* owned */
	int		 readonly;
	char		*dir;		/* owned; cache dir of this account */
	struct imbox	*mb;		/* owned */
	size_t		 nmb;
	ssize_t		 sel;		/* selected mailbox, -1 */
	int		 sel_ro;
	uint32_t	 sel_uidvalidity;
	int		 error_shown;
	/* Filled by the untagged handler for the command running. */
	struct msglist	*fl;		/* FETCH listing target, or NULL */
	struct imbox	*fb;		/* FETCH bodies target, or NULL */
	struct fpseen	*fps;		/* FETCH fingerprints target, or NULL */
	size_t		 nfps, capfps;
	/*
	 * The spool: one file for the run, unlinked as soon as it is made
	 * (nothing is left behind, whatever ends the run), written in
	 * SPOOL_BUF pieces at its end; each mailbox's sp says where its
	 * bodies are.  One file instead of one per body saves a creation,
	 * a rename, an open and an unlink per message read (docs/IMAP.md
	 * "Speed: session 9").
	 */
	int		 sp_fd;		/* -1 until the first body */
	uint64_t	 sp_flushed;	/* bytes written to sp_fd */
	uint64_t	 sp_commit;	/* end of the last whole body */
	char		*sp_buf;	/* owned; SPOOL_BUF bytes after
					   sp_flushed */
	size_t		 sp_blen;
	/*
	 * Spool bytes [sp_roff, sp_roff + sp_rlen) read ahead: the sync
	 * reads the bodies in about the order they were spooled, so one
	 * pread serves many small messages.
	 */
	char		*sp_rbuf;	/* owned; SPOOL_BUF bytes */
	uint64_t	 sp_roff;
	size_t		 sp_rlen;
	/* The body being streamed, from sk_off on. */
	int		 sk_on;		/* begun, not finished */
	uint64_t	 sk_off;
	struct guid_ctx	*sk_g;
	uint64_t	 sk_size;	/* LF bytes written */
	int		 sk_cr;		/* a CR is pending */
	int		 sk_err;
	/* What a STATUS or LIST told. */
	int		 listing;
	/* Reconnecting (see recover). */
	struct imap_conn_opts co;	/* borrows from u and secret */
	char		*secret;	/* owned; wiped by secret_free */
	int		 retries;	/* per operation */
	int		 backoff_ms;	/* the first wait */
	int		 reconnects;	/* in this run */
	int		 dead;		/* gave up: no more reconnects */
	/* Messages the server refused, listed at the end. */
	struct refused	*ref;		/* owned */
	size_t		 nref, capref;
	uint64_t	 nref_all;	/* also those past REFUSED_MAX */
	/* The selected mailbox, from SELECT and what followed. */
	uint32_t	 sel_exists;	/* messages (EXISTS, EXPUNGE, VANISHED) */
	uint64_t	 sel_modseq;	/* OK [HIGHESTMODSEQ] of the SELECT */
	int		 sel_nomodseq;	/* OK [NOMODSEQ]: no CONDSTORE here */
	/* VANISHED ranges collected while listing (st->fl set). */
	struct imap_range *van;		/* owned */
	size_t		 nvan, capvan;
	int		 van_over;	/* too many or unreadable: list all */
	int		 qresync_off;	/* the server refused SELECT (QRESYNC) */
	/* COPYUID answers for the UID COPY/MOVE running, or NULL. */
	struct copymap	*cu;
	/*
	 * Where the caches place each GUID (one place per GUID), made when
	 * the first message is saved: see copy_instead.
	 */
	struct gloc	*gl;		/* owned; open addressing */
	size_t		 glmask, ngl;
	int		 gl_built;
};

/*
 * A GUID the server holds, by its first 64 bits (a GUID is a hash
 * already; imap_copy checks the whole GUID against the cache before it
 * copies): mailbox st->mb[mbox], UID uid.  16 bytes a message.
 */
struct gloc {
	uint64_t	 h;
	uint32_t	 mbox;
	uint32_t	 uid;		/* 0: a free slot */
};

struct imsg {
	struct store_msg base;
	struct istore	*st;		/* borrowed; its spool */
	uint64_t	 off, left;	/* the rest of the body in the spool */
};

struct isave {
	struct store_save base;
	struct imbox	*mb;
	int		 fd;
	char		 path[MSYNC_PATH_MAX];
	struct guid_ctx	*g;
	uint64_t	 lfsize;	/* bytes as a reader will see them */
	int		 prev_cr;	/* the last byte written was a CR */
};

static struct istore *
is(struct store *s)
{
	return (struct istore *)s;
}

/*
 * Prints the connection's reason once, for the layer above.  A failure of
 * the connection itself is never one mailbox's: an over-long response
 * leaves the stream unusable, so it is a protocol error (exit 76) like
 * any other malformed one, and a lost connection stays PEER_EOF (75).
 */
static int
fail(struct istore *st, int r)
{
	if (st->c != NULL && imap_why(st->c)[0] != '\0') {
		if (!st->error_shown)
			ERRX("imap: %s", imap_why(st->c));
		st->error_shown = 1;
		if (r == MSYNC_ERR_TOOBIG)
			r = MSYNC_ERR_PROTO;
	}
	return r;
}

/* ---- reconnecting -------------------------------------------------- */

static int	on_untagged(void *, const struct imap_resp *);
struct copymap;
static int	copyuid_take(struct copymap *, const char *);

/* Sleeps ms milliseconds (poll(2), so a signal ends it early). */
static void
nap(int ms)
{
	struct timespec	 ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * After an operation failed with r: if the connection was lost (a drop,
 * a BYE, a stall) or the server asked to slow down ([UNAVAILABLE],
 * [LIMIT], [THROTTLED], "throttled"), waits and connects again, so that
 * the caller can repeat the operation.  Waits 1, 2, 4, 8, 16 s (doubling
 * from MSYNC_IMAP_BACKOFF_MS, at most 60 s each), or the server's own
 * "Suggested Backoff Time" when longer (at most 10 minutes); at most
 * st->retries tries per operation (*attempt counts them) and
 * RECONNECTS_MAX per run.  Returns 0 when the caller may repeat, else r
 * (the old connection, and its reason for fail(), stay).
 *
 * What was selected is forgotten; the next select_mbox checks that the
 * mailbox's UIDVALIDITY is still the one listed.
 */
static int
backoff(const struct istore *st, int attempt, int hint)
{
	int	 delay = st->backoff_ms;

	for (int i = 0; i < attempt && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	return hint > delay ? hint : delay;
}

static int
recover(struct istore *st, int r, int *attempt)
{
	struct imap_conn *nc = NULL;
	char		*why = NULL;
	int		 hint = 0, delay, r2;

	if (r != MSYNC_ERR_PEER_EOF || st->dead || st->c == NULL)
		return r;
	(void)imap_throttled(st->c, &hint);
	for (;;) {
		if (*attempt >= st->retries ||
		    st->reconnects >= RECONNECTS_MAX) {
			st->dead = 1;
			LOG1("imap: %s: giving up after %d reconnect(s)%s%s",
			    st->u.host, *attempt, why != NULL ? ": " : "",
			    why != NULL ? why : "");
			free(why);
			return r;
		}
		delay = backoff(st, *attempt, hint);
		(*attempt)++;
		st->reconnects++;
		LOG1("imap: %s; connecting again in %d.%03d s (try %d of %d)",
		    why == NULL ? imap_why(st->c) : why, delay / 1000,
		    delay % 1000, *attempt, st->retries);
		free(why);
		why = NULL;
		nap(delay);
		if ((r2 = imap_connect(&st->co, &nc, &why)) == 0)
			break;
		if (why == NULL && (why = strdup(msync_strerror(r2))) == NULL)
			return r;
	}
	free(why);
	imap_close(st->c);
	st->c = nc;
	imap_set_untagged(st->c, on_untagged, st);
	st->sel = -1;
	st->sel_uidvalidity = 0;
	LOG2("imap: %s: connected again", st->u.host);
	return 0;
}

/* ---- refused messages ---------------------------------------------- */

/*
 * The value of header field name in the header hdr[0..n) (which may stop
 * anywhere), unfolded, with runs of white space made one space and the
 * ends trimmed, at most 200 bytes; NULL if absent (or out of memory).
 */
static char *
hdr_field(const char *hdr, size_t n, const char *name)
{
	char	*v;

	if ((v = malloc(201)) == NULL)
		return NULL;
	if (fprint_field(hdr, n, name, v, 200) < 0) {
		free(v);
		return NULL;
	}
	return v;
}

/*
 * Remembers a message the server would not take (for the list at the
 * end): its mailbox, size, Message-ID and Subject (from the first
 * HDR_MAX bytes of fd) and the server's answer.
 */
static void
refused_add(struct istore *st, const struct imbox *m, int fd,
    uint64_t size, const char *why)
{
	struct refused	*f;
	char		*hdr;
	ssize_t		 n;

	st->nref_all++;
	if (st->nref >= REFUSED_MAX ||
	    msync_grow(&st->ref, &st->capref, st->nref, sizeof(*st->ref)) != 0)
		return;
	f = &st->ref[st->nref];
	memset(f, 0, sizeof(*f));
	if ((f->mbox = strdup(m->name)) == NULL ||
	    (f->why = strdup(why)) == NULL) {
		free(f->mbox);
		free(f->why);
		return;
	}
	f->size = size;
	if ((hdr = malloc(HDR_MAX)) != NULL &&
	    (n = pread(fd, hdr, HDR_MAX, 0)) > 0) {
		f->msgid = hdr_field(hdr, (size_t)n, "Message-ID");
		f->subject = hdr_field(hdr, (size_t)n, "Subject");
	}
	free(hdr);
	st->nref++;
}

/*
 * The list at the end of the run: every message the server refused, so
 * that a person can deal with them (the run's exit status is 1).
 */
static void
refused_report(struct istore *st)
{
	struct refused	*f;

	if (st->nref_all == 0)
		return;
	ERRX("%llu message(s) refused by %s, not copied (everything else "
	    "was synced):", (unsigned long long)st->nref_all, st->u.host);
	for (size_t i = 0; i < st->nref; i++) {
		f = &st->ref[i];
		ERRX("  refused: '%s', %llu bytes, Message-ID %s, Subject "
		    "'%s': %s", log_esc(f->mbox, 100),
		    (unsigned long long)f->size,
		    f->msgid != NULL ? log_esc(f->msgid, 120) : "(none)",
		    f->subject != NULL ? log_esc(f->subject, 120) : "",
		    log_esc(f->why, 200));
		free(f->mbox);
		free(f->msgid);
		free(f->subject);
		free(f->why);
	}
	if (st->nref_all > st->nref)
		ERRX("  (and %llu more)",
		    (unsigned long long)(st->nref_all - st->nref));
	free(st->ref);
	st->ref = NULL;
	st->nref = 0;
}

/* ---- names --------------------------------------------------------- */

/*
 * The personal namespace's prefix ("INBOX." on Courier and Cyrus), used
 * as the root when the location gives none (as mbsync does): the user's
 * "INBOX.Sent" is msync's "Sent".  INBOX itself stays INBOX.
 */
static const char *
ns_prefix(struct istore *st)
{
	return st->u.root[0] != '\0' ? "" : imap_conn_prefix(st->c);
}

/* Internal name -> the server's (root prefix, separator, mUTF-7). */
static int
name_to_raw(struct istore *st, const char *name, char **out)
{
	char	*m = NULL, *p, *full = NULL;
	char	 sep = imap_conn_sep(st->c);
	int	 r;

	*out = NULL;
	if (strcmp(name, "INBOX") == 0 && st->u.root[0] == '\0')
		return (*out = strdup("INBOX")) == NULL ? MSYNC_ERR_NOMEM : 0;
	if ((r = names_to_mutf7(name, &m)) != 0)
		return r;
	for (p = m; *p != '\0'; p++) {
		if (*p == sep && sep != '/') {
			free(m);
			return MSYNC_ERR_BADNAME;	/* cannot exist there */
		}
		if (*p == '/')
			*p = sep;
	}
	if (st->u.root[0] != '\0' || ns_prefix(st)[0] != '\0') {
		if ((st->u.root[0] != '\0' ? asprintf(&full, "%s%c%s",
		    st->u.root, sep, m) : asprintf(&full, "%s%s",
		    ns_prefix(st), m)) < 0) {
			free(m);
			return MSYNC_ERR_NOMEM;
		}
		free(m);
		m = full;
	}
	*out = m;
	return 0;
}

/* The server's name -> internal; BADNAME if it has no internal form. */
static int
name_from_raw(struct istore *st, const char *raw, char **out)
{
	char	*u = NULL, *p;
	char	 sep = imap_conn_sep(st->c);
	size_t	 rl = strlen(st->u.root), pl;
	int	 r;

	*out = NULL;
	if (rl > 0) {
		if (strncmp(raw, st->u.root, rl) != 0 || raw[rl] != sep ||
		    raw[rl + 1] == '\0')
			return MSYNC_ERR_BADNAME;
		raw += rl + 1;
	} else if (strcasecmp(raw, "INBOX") == 0)
		return (*out = strdup("INBOX")) == NULL ? MSYNC_ERR_NOMEM : 0;
	else if ((pl = strlen(ns_prefix(st))) > 0) {
		/* Outside the personal namespace: not this account's. */
		if (strncmp(raw, ns_prefix(st), pl) != 0 || raw[pl] == '\0' ||
		    strcasecmp(raw + pl, "INBOX") == 0)
			return MSYNC_ERR_BADNAME;
		raw += pl;
	}
	if ((r = names_from_mutf7(raw, &u)) != 0)
		return r;
	if (sep != '/') {
		if (strchr(u, '/') != NULL) {
			free(u);
			return MSYNC_ERR_BADNAME;
		}
		for (p = u; *p != '\0'; p++)
			if (*p == sep)
				*p = '/';
	}
	if (!names_valid(u, strlen(u))) {
		free(u);
		return MSYNC_ERR_BADNAME;
	}
	*out = u;
	return 0;
}

static struct imbox *
mbox_find(struct istore *st, const char *name)
{
	for (size_t i = 0; i < st->nmb; i++)
		if (strcmp(st->mb[i].name, name) == 0)
			return &st->mb[i];
	return NULL;
}

static struct imbox *
mbox_find_raw(struct istore *st, const char *raw)
{
	for (size_t i = 0; i < st->nmb; i++)
		if (strcmp(st->mb[i].raw, raw) == 0 ||
		    (strcasecmp(raw, "INBOX") == 0 &&
		    strcasecmp(st->mb[i].raw, "INBOX") == 0))
			return &st->mb[i];
	return NULL;
}

/* Empties m's cache in memory. */
static void
cache_clear(struct imbox *m)
{
	for (size_t i = 0; i < m->nc; i++)
		free(m->c[i].kw);
	m->nc = 0;
}

static void
mbox_clear(struct imbox *m)
{
	free(m->name);
	free(m->raw);
	free(m->wire);
	cache_clear(m);
	free(m->c);
	free(m->sp);
	msglist_free(&m->last);
	free(m->hints);
	memset(m, 0, sizeof(*m));
}

/* Adds (or finds) mailbox name; *out points into st->mb (until next add). */
static int
mbox_add(struct istore *st, const char *name, struct imbox **out)
{
	struct imbox	*m, *nm;
	int		 r;

	if ((m = mbox_find(st, name)) != NULL) {
		*out = m;
		return 0;
	}
	if (st->nmb >= MSYNC_MBOX_MAX)
		return MSYNC_ERR_TOOBIG;
	nm = reallocarray(st->mb, st->nmb + 1, sizeof(*nm));
	if (nm == NULL)
		return MSYNC_ERR_NOMEM;
	st->mb = nm;
	m = &st->mb[st->nmb];
	memset(m, 0, sizeof(*m));
	if ((m->name = strdup(name)) == NULL)
		return MSYNC_ERR_NOMEM;
	if ((r = name_to_raw(st, name, &m->raw)) != 0 ||
	    (r = imap_quote(m->raw, &m->wire)) != 0) {
		mbox_clear(m);
		return r;
	}
	st->nmb++;
	*out = m;
	return 0;
}

/* ---- the cache ----------------------------------------------------- */

/* The cache file of m: dir/<hash of the raw name>. */
static void
cache_path(struct istore *st, const struct imbox *m, char *out, size_t n)
{
	struct guid	 g;
	char		 hex[33];

	guid_of(m->raw, strlen(m->raw), &g);
	guid_hex(&g, hex);
	snprintf(out, n, "%s/%s", st->dir, hex);
}

static int
spent_cmp(uint32_t uv, uint32_t uid, const struct spent *e)
{
	if (uv != e->uv)
		return uv < e->uv ? -1 : 1;
	if (uid != e->uid)
		return uid < e->uid ? -1 : 1;
	return 0;
}

/*
 * Where (m's UIDVALIDITY, uid) is or would go in m->sp: *found set when
 * it is there.
 */
static size_t
spool_pos(const struct imbox *m, uint32_t uid, int *found)
{
	size_t	 lo = 0, hi = m->nsp, mid;
	int	 c;

	*found = 0;
	/* Bodies mostly arrive in UID order: the end first. */
	if (hi > 0 && spent_cmp(m->uidvalidity, uid, &m->sp[hi - 1]) > 0)
		return hi;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = spent_cmp(m->uidvalidity, uid, &m->sp[mid])) == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* The spooled body of (m, uid) under m's UIDVALIDITY, or NULL. */
static struct spent *
spool_find(struct imbox *m, uint32_t uid)
{
	size_t	 i;
	int	 found;

	i = spool_pos(m, uid, &found);
	return found ? &m->sp[i] : NULL;
}

/* Writes the gathered spool bytes to the file. */
static int
spool_flush(struct istore *st)
{
	ssize_t	 w;
	size_t	 o = 0;

	while (o < st->sp_blen) {
		w = pwrite(st->sp_fd, st->sp_buf + o, st->sp_blen - o,
		    (off_t)(st->sp_flushed + o));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return MSYNC_ERR_IO;
		o += (size_t)w;
	}
	st->sp_flushed += st->sp_blen;
	st->sp_blen = 0;
	/* What was read ahead may have been written over (sink_begin). */
	st->sp_rlen = 0;
	return 0;
}

/* Appends n bytes of the body being streamed to the spool. */
static int
spool_put(struct istore *st, const char *p, size_t n)
{
	size_t	 k;
	int	 r;

	while (n > 0) {
		if (st->sp_blen == SPOOL_BUF && (r = spool_flush(st)) != 0)
			return r;
		k = SPOOL_BUF - st->sp_blen;
		if (k > n)
			k = n;
		memcpy(st->sp_buf + st->sp_blen, p, k);
		st->sp_blen += k;
		st->sk_size += k;
		p += k;
		n -= k;
	}
	return 0;
}

static struct centry *
cache_find(struct imbox *m, uint32_t uid)
{
	size_t	 lo = 0, hi = m->nc, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (m->c[mid].uid == uid)
			return &m->c[mid];
		if (m->c[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Adds or replaces an entry, keeping the array sorted.  e->kw becomes the
 * cache's, also on failure (freed then).
 */
static int
cache_put(struct imbox *m, const struct centry *e)
{
	struct centry	*f;
	size_t		 i;

	if ((f = cache_find(m, e->uid)) != NULL) {
		free(f->kw);
		*f = *e;
		m->dirty = 1;
		return 0;
	}
	if (m->nc >= MSYNC_MSGS_MAX) {
		free(e->kw);
		return MSYNC_ERR_TOOBIG;
	}
	if (msync_grow(&m->c, &m->capc, m->nc, sizeof(*m->c)) != 0) {
		free(e->kw);
		return MSYNC_ERR_NOMEM;
	}
	for (i = m->nc; i > 0 && m->c[i - 1].uid > e->uid; i--)
		m->c[i] = m->c[i - 1];
	m->c[i] = *e;
	m->nc++;
	m->dirty = 1;
	return 0;
}

static void
cache_del(struct imbox *m, uint32_t uid)
{
	struct centry	*f = cache_find(m, uid);
	size_t		 i;

	if (f == NULL)
		return;
	i = (size_t)(f - m->c);
	free(f->kw);
	memmove(&m->c[i], &m->c[i + 1], (m->nc - i - 1) * sizeof(*m->c));
	m->nc--;
	m->dirty = 1;
}

static int kw_ok(const char *, size_t);

/*
 * A version 2 entry's flags: fl is the FLAG_* bits in decimal or "-"
 * (not known), rest the keywords up to the line's end.  Anything odd
 * leaves the flags unknown: the next listing asks the server.
 */
static void
cache_entry_flags(struct centry *e, const char *fl, const char *rest)
{
	const char	*w;
	size_t		 len, wl, nw = 0;
	char		*end;
	unsigned long	 v;

	if (strcmp(fl, "-") == 0)
		return;
	v = strtoul(fl, &end, 10);
	if (*end != '\0' || end == fl || v > 0xff)
		return;
	len = strcspn(rest, "\r\n");
	for (w = rest; w < rest + len; w += wl + 1) {
		wl = strcspn(w, " \r\n");
		if (!kw_ok(w, wl) || ++nw > MSYNC_KW_MAX)
			return;
		if (w + wl >= rest + len)
			break;
	}
	if (len > 0 && (e->kw = strndup(rest, len)) == NULL)
		return;
	e->flags = (uint8_t)v;
	e->fknown = 1;
}

/*
 * The decimal number at *pp, up to max, followed by one space or the end
 * of the line; *pp moves past both.  -1 for anything else.  (The cache
 * has one line per message of the mailbox and is read every run:
 * sscanf(3) made it 5,000 instructions a line.)
 */
static int
cache_num(const char **pp, uint64_t max, uint64_t *v)
{
	const char	*p = *pp;
	uint64_t	 n = 0;
	size_t		 k;

	/* 19 digits cannot overflow 64 bits; max is checked after. */
	for (k = 0; k < 19 && p[k] >= '0' && p[k] <= '9'; k++)
		n = n * 10 + (uint64_t)(p[k] - '0');
	if (k == 0 || (p[k] >= '0' && p[k] <= '9') || n > max)
		return -1;
	p += k;
	if (*p == ' ')
		p++;
	else if (*p != '\n' && *p != '\0')
		return -1;
	*v = n;
	*pp = p;
	return 0;
}

/*
 * One entry line, "uid [~]guid size date [flags [keywords]]" (version 1
 * has no flags), into *e (kw owned).  Returns 0, or -1 for a line to
 * skip.
 */
static int
cache_line(const char *p, int v2, struct centry *e)
{
	char		 hex[33], fl[8];
	uint64_t	 uid, size, date;
	size_t		 n;
	int		 neg;

	memset(e, 0, sizeof(*e));
	if (cache_num(&p, UINT32_MAX, &uid) != 0 || uid == 0)
		return -1;
	/* "~": matched by fingerprint (an older msync skips it). */
	if ((e->byfp = *p == '~'))
		p++;
	if (strcspn(p, " \n") != 32 || p[32] != ' ')
		return -1;
	memcpy(hex, p, 32);
	hex[32] = '\0';
	if (guid_from_hex(hex, &e->guid) != 0)
		return -1;
	p += 33;
	if (cache_num(&p, MSYNC_MSG_SIZE_MAX, &size) != 0)
		return -1;
	if ((neg = *p == '-'))
		p++;
	if (cache_num(&p, INT64_MAX, &date) != 0)
		return -1;
	e->uid = (uint32_t)uid;
	e->size = size;
	e->date = neg ? -(int64_t)date : (int64_t)date;
	if (!v2 || *p == '\n' || *p == '\0')
		return 0;
	n = strcspn(p, " \n");
	if (n == 0 || n >= sizeof(fl))
		return 0;	/* flags unknown: the listing asks */
	memcpy(fl, p, n);
	fl[n] = '\0';
	p += n;
	if (*p == ' ')
		p++;
	cache_entry_flags(e, fl, p);
	return 0;
}

/*
 * Reads m's cache file; a missing or bad one is an empty cache (it only
 * costs downloads).
 */
static void
cache_load(struct istore *st, struct imbox *m)
{
	char		 path[MSYNC_PATH_MAX], line[CACHE_LINE_MAX], hex[40];
	struct centry	 e;
	unsigned long	 uv;
	unsigned long long ms = 0, fg = 0;
	int		 v2, n;
	FILE		*f;
	char		*vb;

	if (m->loaded)
		return;
	m->loaded = 1;
	cache_path(st, m, path, sizeof(path));
	if ((f = fopen(path, "re")) == NULL)
		return;
	/*
	 * Not 4 KB reads: glibc ignores the size given without a buffer,
	 * so the buffer is ours (freed after fclose).
	 */
	if ((vb = malloc(CACHE_RBUF)) != NULL)
		(void)setvbuf(f, vb, _IOFBF, CACHE_RBUF);
	if (fgets(line, sizeof(line), f) == NULL)
		goto out;
	v2 = strncmp(line, CACHE_MAGIC " ", sizeof(CACHE_MAGIC)) == 0;
	if ((!v2 && strncmp(line, CACHE_MAGIC1 " ", sizeof(CACHE_MAGIC1)) !=
	    0) || (n = sscanf(line + sizeof(CACHE_MAGIC), "%lu %39s %llu %llu",
	    &uv, hex, &ms, &fg)) < 2 + v2 || uv > UINT32_MAX)
		goto out;
	/* An optional fifth field: fixgen (older msync ignores it). */
	m->fixgen = v2 && n == 4 && fg < UINT32_MAX ? fg : 0;
	m->cache_uidvalidity = (uint32_t)uv;
	m->cache_modseq = v2 ? ms : 0;
	if (strcmp(hex, "-") != 0 && guid_from_hex(hex, &m->guid) == 0)
		m->guid_adopted = 1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (cache_line(line, v2, &e) != 0)
			continue;
		/* Written in UID order: appended, no search. */
		if (m->nc > 0 && m->c[m->nc - 1].uid >= e.uid) {
			if (cache_put(m, &e) != 0)
				break;
			continue;
		}
		if (m->nc >= MSYNC_MSGS_MAX ||
		    msync_grow(&m->c, &m->capc, m->nc, sizeof(*m->c)) != 0) {
			free(e.kw);
			break;
		}
		m->c[m->nc++] = e;
	}
	m->dirty = 0;
out:
	fclose(f);
	free(vb);
}

/* Writes v in decimal at p; returns the number of digits. */
static size_t
dec_at(char *p, uint64_t v)
{
	char	 d[20];
	size_t	 n = sizeof(d), k;

	do
		d[--n] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	k = sizeof(d) - n;
	memcpy(p, d + n, k);
	return k;
}

/* Writes m's cache file atomically (tmp + rename). */
static int
cache_save(struct istore *st, struct imbox *m)
{
	char	 path[MSYNC_PATH_MAX], tmp[MSYNC_PATH_MAX + 8], *b, *p;
	size_t	 i, cap, kl;
	ssize_t	 w;
	int	 fd, r = MSYNC_ERR_IO;

	if (!m->dirty)
		return 0;
	/*
	 * Made in memory and written at once (stdio's fprintf cost more
	 * than the rest of a 1% re-run's listing): a line is at most
	 * 10 + 2 + 32 + 1 + 20 + 2 + 20 + 1 + 3 + 1 + keywords + 1 bytes.
	 */
	cap = 160;
	for (i = 0; i < m->nc; i++)
		cap += 96 + (m->c[i].kw != NULL ? strlen(m->c[i].kw) : 0);
	if ((b = malloc(cap)) == NULL)
		return MSYNC_ERR_NOMEM;
	p = b + snprintf(b, 160, "%s %u ", CACHE_MAGIC, m->cache_uidvalidity);
	if (m->guid_adopted) {
		guid_hex(&m->guid, p);
		p += 32;
	} else
		*p++ = '-';
	*p++ = ' ';
	p += dec_at(p, m->cache_modseq);
	if (m->fixgen > 0) {
		*p++ = ' ';
		p += dec_at(p, m->fixgen);
	}
	*p++ = '\n';
	for (i = 0; i < m->nc; i++) {
		const struct centry *e = &m->c[i];

		p += dec_at(p, e->uid);
		*p++ = ' ';
		if (e->byfp)
			*p++ = '~';
		guid_hex(&e->guid, p);
		p += 32;
		*p++ = ' ';
		p += dec_at(p, e->size);
		*p++ = ' ';
		if (e->date < 0) {
			*p++ = '-';
			p += dec_at(p, (uint64_t)0 - (uint64_t)e->date);
		} else
			p += dec_at(p, (uint64_t)e->date);
		*p++ = ' ';
		if (!e->fknown)
			*p++ = '-';
		else {
			p += dec_at(p, e->flags);
			if (e->kw != NULL) {
				kl = strlen(e->kw);
				*p++ = ' ';
				memcpy(p, e->kw, kl);
				p += kl;
			}
		}
		*p++ = '\n';
	}
	cache_path(st, m, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		goto out;
	for (i = 0; i < (size_t)(p - b); i += (size_t)w)
		if ((w = write(fd, b + i, (size_t)(p - b) - i)) <= 0) {
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			break;
		}
	if (i != (size_t)(p - b) || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		goto out;
	}
	m->dirty = 0;
	r = 0;
out:
	free(b);
	return r;
}

/* A UIDVALIDITY other than the cache's makes the cache worthless. */
static void
cache_check_uidvalidity(struct imbox *m, uint32_t uv)
{
	if (m->cache_uidvalidity == uv)
		return;
	if (m->nc > 0)
		LOG2("imap: '%s': UIDVALIDITY changed, cache dropped",
		    log_esc(m->name, 200));
	cache_clear(m);
	m->cache_modseq = 0;
	m->cache_uidvalidity = uv;
	m->dirty = 1;
}

/* The mailbox GUID: adopted, or derived from account, name, UIDVALIDITY. */
static void
mbox_guid(struct istore *st, struct imbox *m)
{
	char	*s = NULL;
	int	 n;

	if (m->guid_adopted)
		return;
	n = asprintf(&s, "imap\n%s\n%d\n%s\n%s\n%u", st->u.host, st->u.port,
	    st->u.user, m->raw, m->uidvalidity);
	if (n < 0)
		return;
	guid_of(s, (size_t)n, &m->guid);
	free(s);
}

/* ---- flags and dates ----------------------------------------------- */

static const struct {
	const char	*name;
	uint8_t		 bit;
} sysflags[] = {
	{ "\\Draft", FLAG_DRAFT },
	{ "\\Flagged", FLAG_FLAGGED },
	{ "$Forwarded", FLAG_PASSED },
	{ "\\Answered", FLAG_REPLIED },
	{ "\\Seen", FLAG_SEEN },
	{ "\\Deleted", FLAG_TRASHED },
};

static int
kw_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A FLAGS list -> flag bits and a sorted keyword string (*kw owned). */
static int
flags_from_list(const struct imap_resp *r, size_t l, uint8_t *flags,
    char **kw)
{
	const char	*names[MSYNC_KW_MAX];
	size_t		 n = 0, k, i, len = 0;
	char		*s;

	*flags = 0;
	*kw = NULL;
	if (l == 0 || r->v[l].type != IV_LIST)
		return MSYNC_ERR_PROTO;
	for (k = r->v[l].kid; k != 0; k = r->v[k].next) {
		if (r->v[k].type != IV_ATOM)
			continue;
		for (i = 0; i < sizeof(sysflags) / sizeof(sysflags[0]); i++)
			if (strcasecmp(r->v[k].s, sysflags[i].name) == 0)
				break;
		if (i < sizeof(sysflags) / sizeof(sysflags[0])) {
			*flags |= sysflags[i].bit;
			continue;
		}
		if (r->v[k].s[0] == '\\' || r->v[k].len > MSYNC_KWNAME_MAX)
			continue;	/* \Recent, unknown system flags */
		if (n == MSYNC_KW_MAX) {
			LOG2("imap: more than %d keywords on a message; "
			    "the rest are not synced", MSYNC_KW_MAX);
			break;
		}
		names[n++] = r->v[k].s;
		len += r->v[k].len + 1;
	}
	if (n == 0)
		return 0;
	msync_sort(names, n, sizeof(names[0]), kw_cmp);
	if ((s = malloc(len)) == NULL)
		return MSYNC_ERR_NOMEM;
	s[0] = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
			continue;
		if (s[0] != '\0')
			strcat(s, " ");
		strcat(s, names[i]);
	}
	*kw = s;
	return 0;
}

/* Is kw a keyword the server can take as an atom? */
static int
kw_ok(const char *w, size_t n)
{
	size_t	 i;

	if (n == 0 || n > MSYNC_KWNAME_MAX || w[0] == '\\')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)w[i];

		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch))
			return 0;
	}
	return 1;
}

/* Flag bits and keywords -> "\Seen kw ..." (no parentheses). */
static int
flags_to_text(uint8_t flags, const char *kw, char *out, size_t n)
{
	size_t	 i, o = 0, wl;
	const char *w, *e;
	int	 k;

	out[0] = '\0';
	for (i = 0; i < sizeof(sysflags) / sizeof(sysflags[0]); i++)
		if (flags & sysflags[i].bit) {
			k = snprintf(out + o, n - o, "%s%s", o ? " " : "",
			    sysflags[i].name);
			if (k < 0 || (size_t)k >= n - o)
				return MSYNC_ERR_TOOBIG;
			o += (size_t)k;
		}
	for (w = kw; w != NULL && *w != '\0'; w = *e ? e + 1 : e) {
		e = strchr(w, ' ');
		if (e == NULL)
			e = w + strlen(w);
		wl = (size_t)(e - w);
		if (!kw_ok(w, wl)) {
			LOG1("imap: keyword '%s' cannot be stored on the "
			    "server; left out", log_esc(w, wl < 64 ? wl : 64));
			continue;
		}
		k = snprintf(out + o, n - o, "%s%.*s", o ? " " : "", (int)wl,
		    w);
		if (k < 0 || (size_t)k >= n - o)
			return MSYNC_ERR_TOOBIG;
		o += (size_t)k;
	}
	return 0;
}

static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* "06-Dec-2026 04:17:25 +0000" -> seconds since the epoch. */
static int
date_parse(const char *s, int64_t *out)
{
	struct tm	 tm;
	char		 mon[4];
	int		 d, y, H, M, S, z, i, n = 0;
	char		 sign;

	memset(&tm, 0, sizeof(tm));
	while (*s == ' ')
		s++;
	if (sscanf(s, "%d-%3s-%d %d:%d:%d %c%4d%n", &d, mon, &y, &H, &M, &S,
	    &sign, &z, &n) != 8 || (sign != '+' && sign != '-'))
		return MSYNC_ERR_PROTO;
	for (i = 0; i < 12; i++)
		if (strcasecmp(mon, months[i]) == 0)
			break;
	if (i == 12 || d < 1 || d > 31 || y < 1970 || y > 9999 || H > 23 ||
	    M > 59 || S > 60 || z > 1400 || H < 0 || M < 0 || S < 0 || z < 0)
		return MSYNC_ERR_PROTO;
	tm.tm_mday = d;
	tm.tm_mon = i;
	tm.tm_year = y - 1900;
	tm.tm_hour = H;
	tm.tm_min = M;
	tm.tm_sec = S;
	*out = (int64_t)timegm(&tm) - (sign == '+' ? 1 : -1) *
	    ((z / 100) * 3600 + (z % 100) * 60);
	return 0;
}

static void
date_format(int64_t t, char *out, size_t n)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
		out[0] = '\0';
		return;
	}
	snprintf(out, n, "\"%02d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
	    months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	    tm.tm_sec);
}

/* ---- bodies into the spool ----------------------------------------- */

/*
 * A body begins: it goes to the spool's end, after the last whole body
 * (a body cut off by a lost connection is overwritten).  The spool file
 * is made with the first body, and unlinked at once: only its fd is
 * needed, and a run that dies leaves nothing behind.
 */
static int
sink_begin(void *arg, uint64_t size)
{
	struct istore	*st = arg;
	char		 path[MSYNC_PATH_MAX];

	(void)size;
	st->sk_on = 0;
	st->sk_err = 0;
	st->sk_size = 0;
	st->sk_cr = 0;
	if (st->sp_fd < 0) {
		if (st->sp_buf == NULL &&
		    (st->sp_buf = malloc(SPOOL_BUF)) == NULL) {
			st->sk_err = MSYNC_ERR_NOMEM;
			return MSYNC_ERR_NOMEM;
		}
		snprintf(path, sizeof(path), "%s/spool.XXXXXX", st->dir);
		if ((st->sp_fd = mkostemp(path, O_CLOEXEC)) < 0) {
			st->sk_err = MSYNC_ERR_IO;
			return MSYNC_ERR_IO;
		}
		(void)unlink(path);
		st->sp_flushed = st->sp_commit = 0;
		st->sp_blen = 0;
	}
	if (st->sp_commit < st->sp_flushed) {
		st->sp_flushed = st->sp_commit;
		st->sp_blen = 0;
	} else
		st->sp_blen = (size_t)(st->sp_commit - st->sp_flushed);
	st->sk_off = st->sp_commit;
	guid_ctx_free(st->sk_g);
	if ((st->sk_g = guid_ctx_new()) == NULL)
		return MSYNC_ERR_NOMEM;
	st->sk_on = 1;
	return 0;
}

/* Spools n bytes of the body, folding CRLF to LF across pieces. */
static int
sink_write(void *arg, const void *p, size_t n)
{
	struct istore	*st = arg;
	const char	*s = p, *cr;
	size_t		 i, run;
	int		 r;

	if (!st->sk_on)
		return 0;
	guid_update(st->sk_g, p, n);
	for (i = 0; i < n;) {
		if (st->sk_cr) {
			st->sk_cr = 0;
			if (s[i] != '\n' && (r = spool_put(st, "\r", 1)) != 0)
				return r;
		}
		if (s[i] == '\r') {
			st->sk_cr = 1;
			i++;
			continue;
		}
		/* The bytes up to the next CR go as they are. */
		cr = memchr(s + i, '\r', n - i);
		run = cr != NULL ? (size_t)(cr - (s + i)) : n - i;
		if ((r = spool_put(st, s + i, run)) != 0)
			return r;
		i += run;
	}
	return 0;
}

/*
 * The FETCH that carried the streamed body arrived: the body becomes
 * (m, uid)'s, and the cache learns its GUID.
 */
static int
sink_finish(struct istore *st, struct imbox *m, uint32_t uid, int64_t date)
{
	struct centry	 e, *old;
	struct spent	*sp;
	size_t		 i;
	int		 r, found;

	if (st->sk_cr) {
		st->sk_cr = 0;
		if ((r = spool_put(st, "\r", 1)) != 0)
			return r;
	}
	st->sk_on = 0;
	memset(&e, 0, sizeof(e));
	e.uid = uid;
	guid_final(st->sk_g, &e.guid);
	e.size = st->sk_size;
	e.date = date;
	/* Flags the cache knows stay (they come from listings). */
	if ((old = cache_find(m, uid)) != NULL && old->fknown &&
	    guid_cmp(&old->guid, &e.guid) == 0) {
		e.fknown = 1;
		e.flags = old->flags;
		if (old->kw != NULL && (e.kw = strdup(old->kw)) == NULL)
			e.fknown = 0;
	}
	/* Remembered, so that msg_open reads it from the spool. */
	i = spool_pos(m, uid, &found);
	if (!found) {
		if (msync_grow(&m->sp, &m->capsp, m->nsp, sizeof(*m->sp)) !=
		    0) {
			free(e.kw);
			return MSYNC_ERR_NOMEM;
		}
		memmove(m->sp + i + 1, m->sp + i, (m->nsp - i) *
		    sizeof(*m->sp));
		m->nsp++;
	}
	sp = &m->sp[i];
	sp->uv = m->uidvalidity;
	sp->uid = uid;
	sp->off = st->sk_off;
	sp->len = st->sk_size;
	st->sp_commit = st->sk_off + st->sk_size;
	if ((r = cache_put(m, &e)) != 0)
		return r;
	return 0;
}

/* ---- untagged responses -------------------------------------------- */

/*
 * A FETCH of (UID RFC822.SIZE INTERNALDATE BODY[HEADER.FIELDS ...])
 * arrived while matching by fingerprint: remembered for match_fprints.
 */
static int
fp_seen(struct istore *st, uint32_t uid, const struct imap_val *hdr,
    uint64_t size, int64_t date)
{
	struct fpseen	*f;

	if (st->nfps >= MSYNC_MSGS_MAX)
		return MSYNC_ERR_TOOBIG;	/* more than any mailbox */
	if (msync_grow(&st->fps, &st->capfps, st->nfps, sizeof(*st->fps)) !=
	    0)
		return MSYNC_ERR_NOMEM;
	f = &st->fps[st->nfps++];
	memset(f, 0, sizeof(*f));
	f->uid = uid;
	f->date = date;
	f->ok = hdr != NULL && fprint_of(hdr->s, hdr->len, size,
	    &f->fp) == 0;
	return 0;
}

/* Reads one FETCH response's items. */
static int
on_fetch(struct istore *st, const struct imap_resp *r)
{
	struct msg	 msg;
	size_t		 l = imap_kid(r, 0, 0), k, v;
	uint64_t	 n;
	int		 have_uid = 0, have_flags = 0, body = 0, rc = 0;
	int		 have_size = 0;
	const struct imap_val *bodystr = NULL, *hdr = NULL;
	struct centry	*e;

	memset(&msg, 0, sizeof(msg));
	if (l == 0 || r->v[l].type != IV_LIST)
		return MSYNC_ERR_PROTO;
	for (k = r->v[l].kid; k != 0; k = r->v[v].next) {
		if ((v = r->v[k].next) == 0)
			return MSYNC_ERR_PROTO;
		if (imap_is(r, k, "UID")) {
			if (imap_num(r, v, UINT32_MAX, &n) != 0 || n == 0)
				return MSYNC_ERR_PROTO;
			msg.uid = (uint32_t)n;
			have_uid = 1;
		} else if (imap_is(r, k, "FLAGS")) {
			free(msg.kw);
			if ((rc = flags_from_list(r, v, &msg.flags,
			    &msg.kw)) != 0)
				goto out;
			have_flags = 1;
		} else if (imap_is(r, k, "RFC822.SIZE")) {
			if (imap_num(r, v, MSYNC_MSG_SIZE_MAX, &n) != 0) {
				rc = MSYNC_ERR_PROTO;
				goto out;
			}
			msg.size = n;
			have_size = 1;
		} else if (imap_is(r, k, "INTERNALDATE")) {
			if (r->v[v].type != IV_STRING ||
			    date_parse(r->v[v].s, &msg.date) != 0) {
				rc = MSYNC_ERR_PROTO;
				goto out;
			}
		} else if (r->v[k].type == IV_ATOM &&
		    strncasecmp(r->v[k].s, "BODY[HEADER.FIELDS", 18) == 0) {
			/* NIL or a string: no such fields is no fp. */
			if (r->v[v].type == IV_STRING)
				hdr = &r->v[v];
		} else if (r->v[k].type == IV_ATOM &&
		    strncasecmp(r->v[k].s, "BODY[]", 6) == 0) {
			body = 1;
			if (r->v[v].type == IV_STRING)
				bodystr = &r->v[v];
		}
	}
	if (body && st->fb != NULL) {
		if (!have_uid) {
			rc = MSYNC_ERR_PROTO;
			goto out;
		}
		if (bodystr != NULL) {
			/* A small body sent as a string, not streamed. */
			if ((rc = sink_begin(st, bodystr->len)) != 0 ||
			    (rc = sink_write(st, bodystr->s,
			    bodystr->len)) != 0)
				goto out;
		}
		if (!st->sk_on) {
			rc = st->sk_err != 0 ? st->sk_err : MSYNC_ERR_PROTO;
			goto out;
		}
		e = cache_find(st->fb, msg.uid);
		rc = sink_finish(st, st->fb, msg.uid, e != NULL ? e->date :
		    msg.date);
		goto out;
	}
	if (st->fps != NULL && have_uid && have_size) {
		rc = fp_seen(st, msg.uid, hdr, msg.size, msg.date);
		goto out;
	}
	/* msglist_add copies msg (kw included). */
	if (st->fl != NULL && have_uid && have_flags)
		rc = msglist_add(st->fl, &msg);
out:
	free(msg.kw);
	return rc;
}

static int
on_list(struct istore *st, const struct imap_resp *r)
{
	size_t		 attrs = imap_kid(r, 0, 0), nm = imap_kid(r, 0, 2), k;
	char		*name = NULL;
	struct imbox	*m;
	int		 rc;

	if (attrs == 0 || nm == 0 || r->v[attrs].type != IV_LIST ||
	    (r->v[nm].type != IV_STRING && r->v[nm].type != IV_ATOM) ||
	    strlen(r->v[nm].s) != r->v[nm].len)
		return 0;	/* odd, but not ours to judge */
	for (k = r->v[attrs].kid; k != 0; k = r->v[k].next) {
		if (imap_is(r, k, "\\Noselect") ||
		    imap_is(r, k, "\\NonExistent"))
			return 0;
		if (imap_is(r, k, "\\All") || imap_is(r, k, "\\Flagged") ||
		    imap_is(r, k, "\\Important")) {
			LOG1("imap: '%s' is a virtual folder (%s) of messages "
			    "in other folders: left out",
			    log_esc(r->v[nm].s, 200), r->v[k].s);
			return 0;
		}
	}
	if ((rc = name_from_raw(st, r->v[nm].s, &name)) != 0) {
		if (rc == MSYNC_ERR_BADNAME) {
			if (strcmp(r->v[nm].s, st->u.root) != 0)
				LOG1("imap: folder '%s' has no name msync can "
				    "use on the other side: left out",
				    log_esc(r->v[nm].s, 200));
			return 0;
		}
		return rc;
	}
	rc = mbox_add(st, name, &m);
	free(name);
	return rc == MSYNC_ERR_BADNAME ? 0 : rc;
}

static int
on_status(struct istore *st, const struct imap_resp *r)
{
	size_t		 nm = imap_kid(r, 0, 0), l = imap_kid(r, 0, 1), k, v;
	struct imbox	*m;
	uint64_t	 n;

	if (nm == 0 || l == 0 || r->v[l].type != IV_LIST ||
	    r->v[nm].type == IV_LIST || r->v[nm].type == IV_NIL)
		return MSYNC_ERR_PROTO;
	if ((m = mbox_find_raw(st, r->v[nm].s)) == NULL)
		return 0;
	for (k = r->v[l].kid; k != 0; k = r->v[v].next) {
		if ((v = r->v[k].next) == 0 ||
		    imap_num(r, v, UINT64_MAX, &n) != 0)
			return MSYNC_ERR_PROTO;
		if (imap_is(r, k, "MESSAGES"))
			m->count = n > MSYNC_MSGS_MAX ? MSYNC_MSGS_MAX :
			    (uint32_t)n;
		else if (imap_is(r, k, "UIDNEXT") && n <= UINT32_MAX)
			m->uidnext = (uint32_t)n;
		else if (imap_is(r, k, "UIDVALIDITY") && n <= UINT32_MAX) {
			/*
			 * Renumbered since listed: the listed one is kept
			 * (the UIDs the plan holds are under it), and the
			 * mailbox is done with for this run.
			 */
			if (m->uidvalidity != 0 && n != m->uidvalidity) {
				if (!m->uv_changed)
					ERRX("imap: '%s': UIDVALIDITY changed "
					    "during the run (%u, now %u): "
					    "nothing more is done in this "
					    "folder in this run, and the next "
					    "run matches its messages by "
					    "content", log_esc(m->name, 200),
					    m->uidvalidity, (uint32_t)n);
				m->uv_changed = 1;
			} else
				m->uidvalidity = (uint32_t)n;
		}
		else if (imap_is(r, k, "HIGHESTMODSEQ"))
			m->modseq = n;
	}
	return 0;
}

/*
 * A mod-sequence (RFC 7162: 1 to 2^63-1) after spaces, up to a space or
 * the end; 0 for anything else, which makes the next listing a full one.
 */
static uint64_t
modseq_parse(const char *s)
{
	uint64_t	 n = 0;
	const char	*p;

	while (*s == ' ')
		s++;
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (p - s >= 19)
			return 0;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (p == s || (*p != '\0' && *p != ' ') || n > INT64_MAX)
		return 0;
	return n;
}

/*
 * VANISHED (QRESYNC): the EARLIER form answers a listing and goes to
 * st->van; the other form reports expunges as they happen (the message
 * count drops), and is kept too while listing.  A set msync cannot
 * read, or too many ranges, only makes the listing a full one.
 */
static int
on_vanished(struct istore *st, const struct imap_resp *r)
{
	struct imap_range *v = NULL;
	size_t		 n, i;
	uint64_t	 cnt;
	int		 earlier, rc;

	if ((rc = imap_vanished(r, &earlier, &v, &n)) != 0) {
		if (rc == MSYNC_ERR_NOMEM)
			return rc;
		LOG2("imap: %s sent a VANISHED msync cannot read: the "
		    "mailbox is listed in full", st->u.host);
		st->van_over = 1;
		return 0;
	}
	if (!earlier) {
		cnt = imap_set_count(v, n);
		st->sel_exists = cnt >= st->sel_exists ? 0 :
		    st->sel_exists - (uint32_t)cnt;
	}
	if (st->fl != NULL && !st->van_over) {
		for (i = 0; i < n; i++) {
			if (st->nvan >= MSYNC_MSGS_MAX) {
				st->van_over = 1;
				break;
			}
			if (msync_grow(&st->van, &st->capvan, st->nvan,
			    sizeof(*st->van)) != 0) {
				free(v);
				return MSYNC_ERR_NOMEM;
			}
			st->van[st->nvan++] = v[i];
		}
	}
	free(v);
	return 0;
}

static int
on_untagged(void *arg, const struct imap_resp *r)
{
	struct istore	*st = arg;
	unsigned long	 v;

	if (strcmp(r->kind, "FETCH") == 0)
		return on_fetch(st, r);
	if (strcmp(r->kind, "OK") == 0 && st->cu != NULL &&
	    imap_code_is(r, "COPYUID"))
		return copyuid_take(st->cu, r->code);
	if (strcmp(r->kind, "EXISTS") == 0 && r->has_num)
		st->sel_exists = r->num;
	if (strcmp(r->kind, "EXPUNGE") == 0 && r->has_num &&
	    st->sel_exists > 0)
		st->sel_exists--;
	if (strcmp(r->kind, "VANISHED") == 0)
		return on_vanished(st, r);
	if (strcmp(r->kind, "OK") == 0 && imap_code_is(r, "HIGHESTMODSEQ"))
		st->sel_modseq = modseq_parse(r->code + 13);
	if (strcmp(r->kind, "OK") == 0 && imap_code_is(r, "NOMODSEQ"))
		st->sel_nomodseq = 1;
	if (strcmp(r->kind, "LIST") == 0 && st->listing)
		return on_list(st, r);
	if (strcmp(r->kind, "STATUS") == 0)
		return on_status(st, r);
	if (strcmp(r->kind, "OK") == 0 && imap_code_is(r, "UIDVALIDITY") &&
	    sscanf(r->code + 11, "%lu", &v) == 1 && v <= UINT32_MAX)
		st->sel_uidvalidity = (uint32_t)v;
	if ((strcmp(r->kind, "NO") == 0 || strcmp(r->kind, "BAD") == 0))
		LOG1("imap: %s says: %s", st->u.host, log_esc(r->text, 200));
	return 0;
}

/* ---- opening and listing ------------------------------------------- */

static int
make_dirs(const char *path)
{
	char	 p[MSYNC_PATH_MAX];
	size_t	 i;

	snprintf(p, sizeof(p), "%s", path);
	for (i = 1; p[i] != '\0'; i++) {
		if (p[i] != '/')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return MSYNC_ERR_IO;
		p[i] = '/';
	}
	if (mkdir(p, 0700) != 0 && errno != EEXIST)
		return MSYNC_ERR_IO;
	return 0;
}

static int
imap_open(const struct store_opts *o, struct store **out, char **holder)
{
	struct istore		*st = NULL;
	struct imap_conn_opts	 co;
	char			*secret = NULL, *why = NULL, *acct = NULL;
	char			 hex[33];
	const char		*x;
	struct guid		 g;
	int			 r, attempt, delay;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return MSYNC_ERR_NOMEM;
	st->base.drv = &store_imap_driver;
	st->sel = -1;
	st->sp_fd = -1;
	st->readonly = o->readonly;
	if ((r = imap_url_parse(o->path, &st->u, &why)) != 0)
		goto out;
	/* The cache directory of this account. */
	if (asprintf(&acct, "%s:%d:%s:%s", st->u.host, st->u.port, st->u.user,
	    st->u.root) < 0) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	guid_of(acct, strlen(acct), &g);
	guid_hex(&g, hex);
	if (o->cachedir != NULL)
		r = asprintf(&st->dir, "%s/imap/%s", o->cachedir, hex);
	else if ((x = getenv("XDG_CACHE_HOME")) != NULL && *x == '/')
		r = asprintf(&st->dir, "%s/msync/imap/%s", x, hex);
	else if ((x = getenv("HOME")) != NULL && *x == '/')
		r = asprintf(&st->dir, "%s/.cache/msync/imap/%s", x, hex);
	else {
		why = strdup("no cache directory: set HOME or XDG_CACHE_HOME");
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	if (r < 0) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	if ((r = make_dirs(st->dir)) != 0) {
		if (asprintf(&why, "cannot create the cache directory '%s': "
		    "%s", st->dir, strerror(errno)) < 0)
			why = NULL;
		goto out;
	}
	if ((r = secret_get(getenv("MSYNC_PASSCMD"), st->u.host, st->u.user,
	    &secret, &why)) != 0)
		goto out;
	memset(&co, 0, sizeof(co));
	st->retries = RETRIES;
	if ((x = getenv("MSYNC_IMAP_RETRIES")) != NULL && atoi(x) >= 0)
		st->retries = atoi(x);
	st->backoff_ms = BACKOFF_MS;
	if ((x = getenv("MSYNC_IMAP_BACKOFF_MS")) != NULL && atoi(x) > 0)
		st->backoff_ms = atoi(x);
	co.host = st->u.host;
	co.port = st->u.port;
	co.user = st->u.user;
	co.tls = st->u.tls;
	co.fingerprint = st->u.fingerprint;
	co.auth = st->u.auth;
	co.secret = secret;
	if ((x = getenv("MSYNC_IMAP_TIMEOUT")) != NULL && atoi(x) > 0)
		co.timeout_ms = atoi(x) * 1000;
	/* Tests shorten the trickle window; 0 there turns it off. */
	if ((x = getenv("MSYNC_IMAP_TRICKLE_MS")) != NULL && *x != '\0')
		co.trickle_ms = atoi(x) > 0 ? atoi(x) : -1;
	co.no_compress = getenv("MSYNC_IMAP_NO_COMPRESS") != NULL;
	co.loopback_compress = getenv("MSYNC_IMAP_COMPRESS") != NULL;
	/*
	 * A connection lost while logging in is tried again as later ones
	 * are; a refused connection or login is the user's to fix.
	 */
	for (attempt = 0; (r = imap_connect(&co, &st->c, &why)) ==
	    MSYNC_ERR_PEER_EOF && attempt < st->retries; attempt++) {
		delay = backoff(st, attempt, 0);
		LOG1("imap: %s; connecting again in %d.%03d s (try %d of %d)",
		    why != NULL ? why : "connection lost", delay / 1000,
		    delay % 1000, attempt + 1, st->retries);
		free(why);
		why = NULL;
		nap(delay);
	}
	if (r != 0)
		goto out;
	imap_set_untagged(st->c, on_untagged, st);
	/* Kept (wiped at close) to connect again after a drop. */
	st->co = co;
	st->secret = secret;
	secret = NULL;	/* transferred */
	*out = &st->base;
	st = NULL;	/* transferred */
	r = 0;
out:
	secret_free(secret);
	free(acct);
	if (r != 0 && why != NULL && holder != NULL) {
		*holder = why;
		why = NULL;
	}
	free(why);
	if (st != NULL) {
		imap_url_free(&st->u);
		free(st->dir);
		free(st);
	}
	return r;
}

static int
imap_close_store(struct store *s)
{
	struct istore	*st = is(s);
	int		 r = 0, r2;

	if (st == NULL)
		return 0;
	for (size_t i = 0; i < st->nmb; i++) {
		if ((r2 = cache_save(st, &st->mb[i])) != 0 && r == 0)
			r = r2;
		mbox_clear(&st->mb[i]);
	}
	free(st->mb);
	free(st->van);
	free(st->gl);
	/* The spool (unlinked already) goes with its fd. */
	if (st->sp_fd >= 0)
		close(st->sp_fd);
	free(st->sp_buf);
	free(st->sp_rbuf);
	guid_ctx_free(st->sk_g);
	refused_report(st);
	imap_close(st->c);
	secret_free(st->secret);
	imap_url_free(&st->u);
	free(st->dir);
	free(st);
	return r;
}

/* STATUS items we ask for. */
static const char *
status_items(struct istore *st)
{
	return (imap_conn_caps(st->c) & IMAP_CAP_CONDSTORE) ?
	    "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)" :
	    "(MESSAGES UIDNEXT UIDVALIDITY)";
}

/* Fills a store_mailbox from m. */
static int
mbox_status(struct istore *st, struct imbox *m, struct store_mailbox *o)
{
	memset(o, 0, sizeof(*o));
	if ((o->name = strdup(m->name)) == NULL)
		return MSYNC_ERR_NOMEM;
	cache_load(st, m);
	mbox_guid(st, m);
	o->guid = m->guid;
	o->uidvalidity = m->uidvalidity;
	o->uidnext = m->uidnext;
	/* 0 stays 0: no CONDSTORE, never "unchanged". */
	o->modseq = m->modseq != 0 ? m->modseq + m->fixgen : 0;
	o->count = m->count;
	for (size_t i = 0; i < m->nc; i++)
		o->bytes += m->c[i].size;
	return 0;
}

static int
list_mailboxes_once(struct istore *st, struct store_mailbox **out,
    size_t *n)
{
	struct store_mailbox	*v = NULL;
	uint32_t		*tags = NULL;
	char			*pat = NULL, *q = NULL;
	size_t			 i, k = 0;
	int			 r;

	*out = NULL;
	*n = 0;
	st->listing = 1;
	if (st->u.root[0] != '\0' || ns_prefix(st)[0] != '\0') {
		if ((st->u.root[0] != '\0' ? asprintf(&pat, "%s%c*",
		    st->u.root, imap_conn_sep(st->c)) : asprintf(&pat, "%s*",
		    ns_prefix(st))) < 0) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		if ((r = imap_quote(pat, &q)) != 0)
			goto out;
		r = imap_cmd(st->c, NULL, "LIST \"\" %s", q);
	} else
		r = imap_cmd(st->c, NULL, "LIST \"\" \"*\"");
	st->listing = 0;
	if (r != 0)
		goto out;
	if (st->u.root[0] == '\0' && mbox_find(st, "INBOX") == NULL) {
		struct imbox *m;

		if ((r = mbox_add(st, "INBOX", &m)) != 0)
			goto out;
	}
	/* One STATUS per mailbox, all in flight at once. */
	if ((tags = calloc(st->nmb + 1, sizeof(*tags))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < st->nmb; i++)
		if ((r = imap_send(st->c, &tags[i], "STATUS %s %s",
		    st->mb[i].wire, status_items(st))) != 0)
			goto out;
	/*
	 * The caches are read while the server works on the STATUS
	 * commands (mbox_status needs them; a large one is 10 ms or more).
	 */
	if ((r = imap_push(st->c)) != 0)
		goto out;
	for (i = 0; i < st->nmb; i++)
		cache_load(st, &st->mb[i]);
	for (i = 0; i < st->nmb; i++) {
		struct imap_done d;

		if ((r = imap_wait(st->c, tags[i], &d)) != 0)
			goto out;
		if (d.status != IMAP_OK)
			LOG1("imap: no status for '%s': %s",
			    log_esc(st->mb[i].name, 200),
			    log_esc(d.text, 200));
	}
	if ((v = calloc(st->nmb + 1, sizeof(*v))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < st->nmb; i++) {
		if (st->mb[i].uidvalidity == 0)
			continue;	/* STATUS failed: not there */
		if ((r = mbox_status(st, &st->mb[i], &v[k])) != 0)
			goto out;
		k++;
	}
	*out = v;
	*n = k;
	v = NULL;	/* transferred */
out:
	st->listing = 0;
	if (v != NULL)
		store_mailboxes_free(v, k);
	free(tags);
	free(pat);
	free(q);
	return r;
}

/*
 * Each operation below that talks to the server is an idempotent "once"
 * function run by a loop: when the connection is lost or the server asks
 * to slow down, recover() connects again and the operation is repeated
 * from its start (what the first try learned, bodies in the spool and
 * GUIDs in the cache, is kept, so it is not fetched twice).
 */
static int
imap_list_mailboxes(struct store *s, struct store_mailbox **out, size_t *n)
{
	struct istore	*st = is(s);
	int		 r, attempt = 0;

	while ((r = list_mailboxes_once(st, out, n)) != 0 &&
	    recover(st, r, &attempt) == 0)
		;
	return r != 0 ? fail(st, r) : 0;
}

/*
 * SELECT (or EXAMINE when read-only) m, unless it is selected already
 * (*fresh, if given, says whether it was selected now).  With qresync
 * (the caller collects FETCH and VANISHED), the cache's UIDVALIDITY and
 * modseq go along (RFC 7162 section 3.2.5): the server answers with what
 * changed since, in the same round trip.
 */
static int
select_mbox_q(struct istore *st, struct imbox *m, int need_rw, int qresync,
    int *fresh)
{
	struct imap_done d;
	int		 ro = st->readonly || !need_rw, r;
	ssize_t		 idx = m - st->mb;
	const char	*verb = st->readonly ? "EXAMINE" : "SELECT";

	if (fresh != NULL)
		*fresh = 0;
	if (st->readonly && need_rw)
		return MSYNC_ERR_READONLY;
	if (st->sel == idx && (st->sel_ro == 0 || ro))
		return 0;
	st->sel = -1;
	st->sel_uidvalidity = 0;
	st->sel_exists = 0;
	st->sel_modseq = 0;
	st->sel_nomodseq = 0;
	/* A read-only store never SELECTs: EXAMINE leaves \Seen alone. */
	if (m->uv_changed)
		return MSYNC_ERR_STORE_CHANGED;
	if (qresync)
		r = imap_cmd(st->c, &d, "%s %s (QRESYNC (%u %llu))", verb,
		    m->wire, m->cache_uidvalidity,
		    (unsigned long long)m->cache_modseq);
	else
		r = imap_cmd(st->c, &d, "%s %s", verb, m->wire);
	if (r == 0 && qresync && d.status == IMAP_BAD) {
		/* A server that offers QRESYNC but not this: plain SELECT. */
		LOG2("imap: %s refused %s with QRESYNC: %s", st->u.host, verb,
		    log_esc(d.text, 200));
		st->qresync_off = 1;
		r = imap_cmd(st->c, &d, "%s %s", verb, m->wire);
	}
	if (r != 0)
		return r;
	if (d.status != IMAP_OK) {
		LOG1("imap: cannot open '%s': %s", log_esc(m->name, 200),
		    log_esc(d.text, 200));
		return MSYNC_ERR_NOTFOUND;
	}
	if (m->uidvalidity != 0 && st->sel_uidvalidity != m->uidvalidity) {
		/*
		 * The server numbered the mailbox afresh: the UIDs listed
		 * name other messages now, or none.  Nothing more is done
		 * in it in this run (a UID could hit the wrong message);
		 * the next run sees the new UIDVALIDITY, reads the
		 * messages again and merges by content, inferring no
		 * deletions.
		 */
		ERRX("imap: '%s': UIDVALIDITY changed during the run (%u, "
		    "now %u): the server renumbered its messages; nothing "
		    "more is done in this folder in this run, and the next "
		    "run matches its messages by content",
		    log_esc(m->name, 200), m->uidvalidity,
		    st->sel_uidvalidity);
		m->uv_changed = 1;
		st->sel = -1;
		return MSYNC_ERR_STORE_CHANGED;
	}
	m->uidvalidity = st->sel_uidvalidity;
	cache_load(st, m);
	cache_check_uidvalidity(m, m->uidvalidity);
	st->sel = idx;
	st->sel_ro = st->readonly;
	if (fresh != NULL)
		*fresh = 1;
	return 0;
}

static int
select_mbox(struct istore *st, struct imbox *m, int need_rw)
{
	return select_mbox_q(st, m, need_rw, 0, NULL);
}

/* Downloads the bodies of uids[0..n) of the selected m into the spool. */
static int
fetch_bodies(struct istore *st, struct imbox *m, const uint32_t *uids,
    size_t n)
{
	uint32_t	*tags = NULL;
	char		*set = NULL;
	size_t		 i, j, ntag = 0, o;
	int		 r = 0;
	struct imap_sink sk = { sink_begin, sink_write, st };

	if (n == 0)
		return 0;
	if ((tags = calloc(n / FETCH_CHUNK + 1, sizeof(*tags))) == NULL ||
	    (set = malloc(FETCH_CHUNK * 11 + 1)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	imap_set_sink(st->c, &sk);
	st->fb = m;
	for (i = 0; i < n; i += FETCH_CHUNK) {
		o = 0;
		for (j = i; j < n && j < i + FETCH_CHUNK; j++)
			o += (size_t)sprintf(set + o, "%s%u", o ? "," : "",
			    uids[j]);
		if ((r = imap_send(st->c, &tags[ntag++], "UID FETCH %s "
		    "(UID INTERNALDATE BODY.PEEK[])", set)) != 0)
			goto out;
	}
	for (i = 0; i < ntag; i++)
		if ((r = imap_wait(st->c, tags[i], NULL)) != 0)
			goto out;
out:
	st->fb = NULL;
	imap_set_sink(st->c, NULL);
	free(tags);
	free(set);
	return r;
}

/* Is uid inside one of the VANISHED ranges collected? */
static int
van_has(const struct istore *st, uint32_t uid)
{
	for (size_t i = 0; i < st->nvan; i++)
		if (uid >= st->van[i].lo && uid <= st->van[i].hi)
			return 1;
	return 0;
}

/* Drops the cache entries inside the VANISHED ranges. */
static void
van_apply(struct istore *st, struct imbox *m)
{
	size_t	 i, k;

	if (st->nvan == 0)
		return;
	for (i = 0, k = 0; i < m->nc; i++) {
		if (van_has(st, m->c[i].uid)) {
			free(m->c[i].kw);
			continue;
		}
		m->c[k++] = m->c[i];
	}
	if (k != m->nc) {
		m->nc = k;
		m->dirty = 1;
	}
}

static void
listing_reset(struct istore *st, struct msglist *l)
{
	msglist_free(l);
	memset(l, 0, sizeof(*l));
	st->nvan = 0;
	st->van_over = 0;
}

/*
 * The flags listed in l (in the order the server sent them: a later
 * FETCH of the same UID is newer) go into the cache entries.
 */
static int
flags_apply(struct imbox *m, const struct msglist *l)
{
	struct centry	*e;
	char		*kw;

	for (size_t i = 0; i < l->n; i++) {
		if ((e = cache_find(m, l->v[i].uid)) == NULL)
			continue;	/* vanished while read */
		kw = NULL;
		if (l->v[i].kw != NULL && (kw = strdup(l->v[i].kw)) == NULL)
			return MSYNC_ERR_NOMEM;
		free(e->kw);
		e->kw = kw;
		e->flags = l->v[i].flags;
		e->fknown = 1;
		m->dirty = 1;
	}
	return 0;
}

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The UIDs of l that the cache does not hold (no body read yet), sorted. */
static int
missing_uids(struct imbox *m, const struct msglist *l, int skip_van,
    const struct istore *st, uint32_t **out, size_t *n)
{
	uint32_t	*miss;
	size_t		 i, k = 0;

	*out = NULL;
	*n = 0;
	if ((miss = calloc(l->n + 1, sizeof(*miss))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < l->n; i++) {
		if (cache_find(m, l->v[i].uid) != NULL ||
		    (skip_van && van_has(st, l->v[i].uid)))
			continue;
		miss[k++] = l->v[i].uid;
	}
	msync_sort(miss, k, sizeof(*miss), u32_cmp);
	/* A UID listed twice (an unsolicited FETCH too) counts once. */
	for (i = 0, *n = 0; i < k; i++)
		if (*n == 0 || miss[*n - 1] != miss[i])
			miss[(*n)++] = miss[i];
	*out = miss;
	return 0;
}

/* Orders hints by fingerprint, then by the peer's order (their index). */
struct hint_ref {
	const struct store_hint	*h;
	size_t			 ord;
	int			 used;
};

static int
hint_ref_cmp(const void *a, const void *b)
{
	const struct hint_ref	*x = a, *y = b;
	int			 c;

	if ((c = memcmp(&x->h->fp, &y->h->fp, sizeof(x->h->fp))) != 0)
		return c;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static int
fpseen_cmp(const void *a, const void *b)
{
	const struct fpseen	*x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/*
 * A first listing of m where the peer told its messages' header
 * fingerprints (store_hints): the UIDs in miss[0..*nmiss) (sorted) whose
 * GUID the cache does not know are asked for their fingerprint only,
 * (UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID
 * DATE)]), and each one equal to a peer's message's is taken as that
 * message: its GUID and size go into the cache, marked byfp, and it is
 * taken out of miss so its body is not read.  One to one, both sides in
 * UID order: the n-th message of a fingerprint here pairs with the n-th
 * of the peer's.  Messages without a Message-ID, and those left over,
 * stay in miss (read as before).  The hints are used once.
 */
static int
match_fprints(struct istore *st, struct imbox *m, uint32_t *miss,
    size_t *nmiss)
{
	struct hint_ref	*hr = NULL;
	uint32_t	*tags = NULL;
	char		*set = NULL;
	size_t		 i, j, k, ntag = 0, o, nmatch = 0, lo, hi, mid;
	int		 r = 0;

	if (m->nhints == 0 || *nmiss == 0)
		goto out;
	if ((tags = calloc(*nmiss / FETCH_CHUNK + 1, sizeof(*tags))) == NULL ||
	    (set = malloc(FETCH_CHUNK * 11 + 1)) == NULL ||
	    (hr = calloc(m->nhints, sizeof(*hr))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	/* Collected by on_fetch only while st->fps is set. */
	st->nfps = 0;
	if ((st->fps = calloc(1, sizeof(*st->fps))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	st->capfps = 1;
	for (i = 0; i < *nmiss; i += FETCH_CHUNK) {
		o = 0;
		for (j = i; j < *nmiss && j < i + FETCH_CHUNK; j++)
			o += (size_t)sprintf(set + o, "%s%u", o ? "," : "",
			    miss[j]);
		if ((r = imap_send(st->c, &tags[ntag++], "UID FETCH %s (UID "
		    "RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS "
		    "(MESSAGE-ID DATE)])", set)) != 0)
			goto out;
	}
	for (i = 0; i < ntag; i++)
		if ((r = imap_wait(st->c, tags[i], NULL)) != 0)
			goto out;
	msync_sort(st->fps, st->nfps, sizeof(*st->fps), fpseen_cmp);
	for (i = 0; i < m->nhints; i++) {
		hr[i].h = &m->hints[i];
		hr[i].ord = i;
	}
	msync_sort(hr, m->nhints, sizeof(*hr), hint_ref_cmp);
	for (i = 0; i < st->nfps; i++) {
		struct fpseen	*f = &st->fps[i];
		struct centry	 e;

		/* A UID answered twice, or not asked for, counts not. */
		if (!f->ok || (i > 0 && st->fps[i - 1].uid == f->uid) ||
		    bsearch(&f->uid, miss, *nmiss, sizeof(*miss),
		    u32_cmp) == NULL)
			continue;
		/* The first unused hint of this fingerprint. */
		lo = 0;
		hi = m->nhints;
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (memcmp(&hr[mid].h->fp, &f->fp, sizeof(f->fp)) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		while (lo < m->nhints && hr[lo].used &&
		    memcmp(&hr[lo].h->fp, &f->fp, sizeof(f->fp)) == 0)
			lo++;
		if (lo >= m->nhints ||
		    memcmp(&hr[lo].h->fp, &f->fp, sizeof(f->fp)) != 0)
			continue;
		hr[lo].used = 1;
		memset(&e, 0, sizeof(e));
		e.uid = f->uid;
		e.guid = hr[lo].h->guid;
		e.size = hr[lo].h->size;
		e.date = f->date;
		e.byfp = 1;
		if ((r = cache_put(m, &e)) != 0)
			goto out;
		nmatch++;
	}
	/* What is left is read as before. */
	for (i = 0, k = 0; i < *nmiss; i++) {
		struct centry	*e = cache_find(m, miss[i]);

		if (e == NULL || !e->byfp)
			miss[k++] = miss[i];
	}
	LOG2("imap: '%s': %zu of %zu new message(s) matched by header "
	    "fingerprint, not read", log_esc(m->name, 200), nmatch, *nmiss);
	*nmiss = k;
out:
	free(st->fps);
	st->fps = NULL;
	st->nfps = st->capfps = 0;
	free(hr);
	free(tags);
	free(set);
	/* Used once: a later listing reads what it does not know. */
	if (r == 0) {
		free(m->hints);
		m->hints = NULL;
		m->nhints = 0;
	}
	return r;
}

/*
 * Lists m by its changes since the cache's modseq (CONDSTORE, QRESYNC):
 * *done is 1 when the cache now equals the server's mailbox; 0 when the
 * changes cannot tell (no modseq, messages whose flags the cache does
 * not know, a count that does not add up), and the caller lists in full.
 * *newms is the modseq the cache is then valid at.
 */
static int
list_changes(struct istore *st, struct imbox *m, struct msglist *l,
    uint64_t status_ms, int *done, uint64_t *newms)
{
	uint32_t	 caps = imap_conn_caps(st->c), *miss = NULL;
	size_t		 nmiss = 0, i, nknown;
	int		 qr, fresh = 0, r;
	uint64_t	 ms;

	*done = 0;
	*newms = 0;
	cache_load(st, m);
	/* A cache ahead of the server's STATUS is not the server's. */
	if (!(caps & (IMAP_CAP_CONDSTORE | IMAP_CAP_QRESYNC)) ||
	    m->cache_modseq == 0 || m->nc == 0 ||
	    m->cache_uidvalidity != m->uidvalidity ||
	    (m->modseq != 0 && m->cache_modseq > m->modseq))
		return select_mbox(st, m, 0);
	ms = m->cache_modseq;
	st->fl = l;
	/* QRESYNC: the SELECT itself brings the changes. */
	qr = (caps & IMAP_CAP_QRESYNC) && !st->qresync_off;
	r = select_mbox_q(st, m, 0, qr && st->sel != m - st->mb, &fresh);
	qr = (caps & IMAP_CAP_QRESYNC) && !st->qresync_off;
	if (r == 0 && (!fresh || !qr || st->van_over)) {
		listing_reset(st, l);
		r = imap_cmd(st->c, NULL, "UID FETCH 1:* (UID FLAGS) "
		    "(CHANGEDSINCE %llu%s)", (unsigned long long)ms,
		    qr ? " VANISHED" : "");
	}
	st->fl = NULL;
	if (r != 0)
		return r;
	if (st->van_over || st->sel_nomodseq ||
	    m->cache_uidvalidity != st->sel_uidvalidity || m->nc == 0)
		return 0;
	/* Does the count add up?  Then nothing else was expunged. */
	van_apply(st, m);
	if ((r = missing_uids(m, l, 1, st, &miss, &nmiss)) != 0)
		return r;
	nknown = m->nc;
	if (nknown + nmiss != st->sel_exists) {
		LOG2("imap: '%s': %zu known + %zu new != %u messages: listed "
		    "in full%s", log_esc(m->name, 200), nknown, nmiss,
		    st->sel_exists, qr ? "" : " (no QRESYNC: expunges are "
		    "seen this way)");
		free(miss);
		return 0;
	}
	LOG2("imap: '%s': %zu change(s), %zu expunged range(s) since modseq "
	    "%llu (%s)", log_esc(m->name, 200), l->n, st->nvan,
	    (unsigned long long)ms, qr ? "QRESYNC" : "CONDSTORE");
	if ((r = match_fprints(st, m, miss, &nmiss)) != 0) {
		free(miss);
		return r;
	}
	if (nmiss > 0) {
		LOG2("imap: '%s': reading %zu new message(s)",
		    log_esc(m->name, 200), nmiss);
		if ((r = fetch_bodies(st, m, miss, nmiss)) != 0) {
			free(miss);
			return r;
		}
	}
	free(miss);
	if ((r = flags_apply(m, l)) != 0)
		return r;
	for (i = 0; i < m->nc; i++)
		if (!m->c[i].fknown)
			return 0;	/* not listed since it was cached */
	*newms = status_ms > st->sel_modseq ? status_ms : st->sel_modseq;
	*done = 1;
	return 0;
}

/* Lists m in full: every UID and its flags. */
static int
list_full(struct istore *st, struct imbox *m, struct msglist *l)
{
	uint32_t	*miss = NULL, *all = NULL;
	size_t		 nmiss = 0, i, k;
	int		 r;

	listing_reset(st, l);
	st->fl = l;
	/* Dates and sizes come from the cache, or with the body. */
	r = imap_cmd(st->c, NULL, "UID FETCH 1:* (UID FLAGS)");
	st->fl = NULL;
	if (r != 0)
		return r;
	if ((all = calloc(l->n + 1, sizeof(*all))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < l->n; i++)
		all[i] = l->v[i].uid;
	msync_sort(all, l->n, sizeof(*all), u32_cmp);
	if ((r = missing_uids(m, l, 0, st, &miss, &nmiss)) != 0 ||
	    (r = match_fprints(st, m, miss, &nmiss)) != 0)
		goto out;
	if (nmiss > 0) {
		LOG2("imap: '%s': reading %zu new message(s)",
		    log_esc(m->name, 200), nmiss);
		if ((r = fetch_bodies(st, m, miss, nmiss)) != 0)
			goto out;
	}
	/* Cached entries of messages that are gone are dropped. */
	for (i = 0, k = 0; i < m->nc; i++) {
		if (bsearch(&m->c[i].uid, all, l->n, sizeof(*all),
		    u32_cmp) == NULL) {
			free(m->c[i].kw);
			continue;
		}
		m->c[k++] = m->c[i];
	}
	if (k != m->nc) {
		m->nc = k;
		m->dirty = 1;
	}
	r = flags_apply(m, l);
out:
	free(all);
	free(miss);
	return r;
}

static int
list_messages_once(struct istore *st, const char *name, struct msglist *out)
{
	struct imbox	*m;
	struct msglist	 l;
	struct msg	 msg;
	uint64_t	 listed_modseq, newms = 0;
	size_t		 i, first = out->n;
	int		 r, done = 0;

	memset(&l, 0, sizeof(l));
	if ((m = mbox_find(st, name)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	if (m->uv_changed)
		return MSYNC_ERR_STORE_CHANGED;
	/*
	 * Listed before in this run, and HIGHESTMODSEQ (from the STATUS of
	 * list_mailboxes or rescan) has not moved since: the same list
	 * (the brain lists a mailbox again after syncing it).
	 */
	if (m->last_modseq != 0 && m->last_modseq == m->modseq) {
		for (i = 0; i < m->last.n; i++)
			if ((r = msglist_add(out, &m->last.v[i])) != 0)
				return r;
		return 0;
	}
	listed_modseq = m->modseq;
	listing_reset(st, &l);
	if ((r = list_changes(st, m, &l, listed_modseq, &done, &newms)) != 0)
		goto out;
	if (!done) {
		if ((r = list_full(st, m, &l)) != 0)
			goto out;
		/*
		 * The later of the STATUS before and the SELECT's
		 * HIGHESTMODSEQ: both come before the FETCH, so every
		 * change after them is asked for next time.
		 */
		newms = 0;
		if ((imap_conn_caps(st->c) & (IMAP_CAP_CONDSTORE |
		    IMAP_CAP_QRESYNC)) && !st->sel_nomodseq)
			newms = listed_modseq > st->sel_modseq ?
			    listed_modseq : st->sel_modseq;
	}
	if (m->cache_modseq != newms) {
		m->cache_modseq = newms;
		m->dirty = 1;
	}
	/* The listing is the cache: every entry's flags are now known. */
	for (i = 0; i < m->nc; i++) {
		if (!m->c[i].fknown)
			continue;
		memset(&msg, 0, sizeof(msg));
		msg.uid = m->c[i].uid;
		msg.guid = m->c[i].guid;
		msg.flags = m->c[i].flags;
		msg.kw = m->c[i].kw;
		msg.size = m->c[i].size;
		msg.date = m->c[i].date;
		if ((r = msglist_add(out, &msg)) != 0)
			goto out;
	}
	/* Kept for a second listing in this run (see above). */
	msglist_free(&m->last);
	memset(&m->last, 0, sizeof(m->last));
	m->last_modseq = 0;
	for (i = first; i < out->n; i++)
		if (msglist_add(&m->last, &out->v[i]) != 0) {
			msglist_free(&m->last);
			memset(&m->last, 0, sizeof(m->last));
			break;
		}
	if (i == out->n)
		m->last_modseq = listed_modseq;
	r = cache_save(st, m);
out:
	listing_reset(st, &l);
	return r;
}

static int
imap_list_messages(struct store *s, const char *name, struct msglist *out)
{
	struct istore	*st = is(s);
	struct imbox	*m;
	size_t		 first = out->n;
	int		 r, attempt = 0;

	while ((r = list_messages_once(st, name, out)) != 0) {
		/* What the failed try added is taken back. */
		while (out->n > first)
			free(out->v[--out->n].kw);
		if (recover(st, r, &attempt) != 0)
			break;
	}
	/*
	 * Renumbered since the STATUS of list_mailboxes (said once, where
	 * it was seen): only this mailbox is left out of the run.
	 */
	if (r == MSYNC_ERR_STORE_CHANGED && (m = mbox_find(st, name)) != NULL &&
	    m->uv_changed)
		return MSYNC_ERR_RENUMBERED;
	return r != 0 ? fail(st, r) : 0;
}

static int
imap_rescan(struct store *s, const char *name, struct store_mailbox *o)
{
	struct istore	*st = is(s);
	struct imbox	*m;
	int		 r, attempt = 0;

	memset(o, 0, sizeof(*o));
	if ((m = mbox_find(st, name)) == NULL) {
		if ((r = mbox_add(st, name, &m)) != 0)
			return r;
	}
	while ((r = imap_cmd(st->c, NULL, "STATUS %s %s", m->wire,
	    status_items(st))) != 0 && recover(st, r, &attempt) == 0)
		;
	if (r != 0)
		return fail(st, r);
	return mbox_status(st, m, o);
}

/* ---- reading ------------------------------------------------------- */

static int
imap_msg_open(struct store *s, const char *name, uint32_t uid,
    struct store_msg **out, uint64_t *size, int64_t *date)
{
	struct istore	*st = is(s);
	struct imbox	*m;
	struct imsg	*im;
	struct centry	*e;
	struct spent	*sp;
	int		 r, fp;

	*out = NULL;
	if ((m = mbox_find(st, name)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	cache_load(st, m);
	if ((sp = spool_find(m, uid)) == NULL) {
		int	 attempt = 0;
		struct guid was;

		e = cache_find(m, uid);
		fp = e != NULL && e->byfp;
		memset(&was, 0, sizeof(was));
		if (fp)
			was = e->guid;
		while (((r = select_mbox(st, m, 0)) != 0 ||
		    (r = fetch_bodies(st, m, &uid, 1)) != 0) &&
		    recover(st, r, &attempt) == 0)
			;
		if (r != 0)
			return fail(st, r);
		if ((sp = spool_find(m, uid)) == NULL)
			return MSYNC_ERR_NOTFOUND;	/* expunged */
		/*
		 * Matched by its header fingerprint, and now read: the cache
		 * has its real GUID (sink_finish).  If that is not the
		 * peer's, the match was wrong; the plan was made with the
		 * wrong GUID, so stop here (exit 2) and let the next run
		 * plan with the right one.
		 */
		e = cache_find(m, uid);
		if (fp && e != NULL && guid_cmp(&e->guid, &was) != 0) {
			WARNX("imap: '%s' UID %u has the Message-ID, Date and "
			    "size of another message but not its content: "
			    "taken as a message of its own from the next run",
			    log_esc(m->name, 200), uid);
			m->fixgen++;
			m->dirty = 1;
			(void)cache_save(st, m);
			return MSYNC_ERR_STORE_CHANGED;
		}
	}
	/* Read with pread: what is still gathered goes to the file first. */
	if (sp->off + sp->len > st->sp_flushed && (r = spool_flush(st)) != 0)
		return r;
	if ((im = calloc(1, sizeof(*im))) == NULL)
		return MSYNC_ERR_NOMEM;
	im->base.st = s;
	im->st = st;
	im->off = sp->off;
	im->left = sp->len;
	e = cache_find(m, uid);
	*size = sp->len;
	*date = e != NULL ? e->date : 0;
	*out = &im->base;
	return 0;
}

static int
imap_msg_read(struct store_msg *sm, void *buf, size_t cap, size_t *got)
{
	struct imsg	*im = (struct imsg *)sm;
	struct istore	*st = im->st;
	ssize_t		 n;
	size_t		 want;

	*got = 0;
	if (cap > im->left)
		cap = (size_t)im->left;
	if (cap == 0)
		return 0;
	/* Not in the window read ahead: the next SPOOL_BUF bytes are. */
	if (im->off < st->sp_roff || im->off >= st->sp_roff + st->sp_rlen) {
		if (st->sp_rbuf == NULL &&
		    (st->sp_rbuf = malloc(SPOOL_BUF)) == NULL)
			return MSYNC_ERR_NOMEM;
		/* Only what is written and whole (msg_open flushed it). */
		want = st->sp_flushed - im->off < SPOOL_BUF ?
		    (size_t)(st->sp_flushed - im->off) : SPOOL_BUF;
		st->sp_rlen = 0;
		do
			n = pread(st->sp_fd, st->sp_rbuf, want,
			    (off_t)im->off);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return n < 0 ? MSYNC_ERR_IO : 0;
		st->sp_roff = im->off;
		st->sp_rlen = (size_t)n;
	}
	n = (ssize_t)(st->sp_roff + st->sp_rlen - im->off);
	if ((size_t)n > cap)
		n = (ssize_t)cap;
	memcpy(buf, st->sp_rbuf + (im->off - st->sp_roff), (size_t)n);
	im->off += (uint64_t)n;
	im->left -= (uint64_t)n;
	*got = (size_t)n;
	return 0;
}

/*
 * The body stays in the spool (it goes with the run); a second read of
 * it costs no download.
 */
static void
imap_msg_close(struct store_msg *sm)
{
	free(sm);
}

/* ---- saving -------------------------------------------------------- */

static int
imap_save_begin(struct store *s, const char *name, struct store_save **out)
{
	struct istore	*st = is(s);
	struct isave	*sv;
	struct imbox	*m;

	*out = NULL;
	if (st->readonly)
		return MSYNC_ERR_READONLY;
	if ((m = mbox_find(st, name)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return MSYNC_ERR_NOMEM;
	sv->base.st = s;
	sv->mb = m;
	snprintf(sv->path, sizeof(sv->path), "%s/save.XXXXXX", st->dir);
	if ((sv->fd = mkostemp(sv->path, O_CLOEXEC)) < 0) {
		free(sv);
		return MSYNC_ERR_IO;
	}
	unlink(sv->path);	/* only the fd is needed */
	if ((sv->g = guid_ctx_new()) == NULL) {
		close(sv->fd);
		free(sv);
		return MSYNC_ERR_NOMEM;
	}
	*out = &sv->base;
	return 0;
}

/* Writes the content with every bare LF made CRLF (IMAP wants CRLF). */
static int
imap_save_write(struct store_save *ss, const void *p, size_t n)
{
	struct isave	*sv = (struct isave *)ss;
	const char	*s = p;
	char		 out[16384];
	size_t		 i, o = 0;

	guid_update(sv->g, p, n);
	for (i = 0; i < n; i++) {
		if (o + 2 > sizeof(out)) {
			if (write(sv->fd, out, o) != (ssize_t)o)
				return MSYNC_ERR_IO;
			o = 0;
		}
		if (s[i] == '\n') {
			if (!sv->prev_cr)
				out[o++] = '\r';
			else
				sv->lfsize--;	/* that CR folds away */
		}
		out[o++] = s[i];
		sv->lfsize++;
		sv->prev_cr = s[i] == '\r';
	}
	if (o > 0 && write(sv->fd, out, o) != (ssize_t)o)
		return MSYNC_ERR_IO;
	return 0;
}

static void
imap_save_abort(struct store_save *ss)
{
	struct isave	*sv = (struct isave *)ss;

	if (sv == NULL)
		return;
	close(sv->fd);
	guid_ctx_free(sv->g);
	free(sv);
}

/*
 * After a connection was lost with an APPEND, UID COPY or UID MOVE sent
 * but not answered: which of the messages (GUIDs g[0..n)) are in m now?
 * Looks at the messages from m->append_floor on (the UIDs they could
 * have got) that this run does not know yet and, when size is not
 * UINT64_MAX, have that size; reads those (in practice few or none) to
 * learn their GUIDs.  found[i] gets the UID of g[i], or stays 0.  A
 * known UID is never taken: an identical message that was there before
 * stays a second copy, as the plan wants.
 */
static int
find_arrived(struct istore *st, struct imbox *m, const struct guid *g,
    size_t n, uint64_t size, uint32_t *found)
{
	struct msglist	 l;
	struct centry	*e;
	uint32_t	*cand = NULL;
	size_t		 nc = 0, i, k;
	int		 r;

	memset(&l, 0, sizeof(l));
	if ((r = select_mbox(st, m, 1)) != 0)
		return r;
	cache_load(st, m);
	st->fl = &l;
	r = imap_cmd(st->c, NULL, "UID FETCH %u:* (UID FLAGS RFC822.SIZE)",
	    m->append_floor);
	st->fl = NULL;
	if (r != 0)
		goto out;
	if ((cand = calloc(l.n + 1, sizeof(*cand))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < l.n; i++)
		if (l.v[i].uid >= m->append_floor &&
		    (size == UINT64_MAX || l.v[i].size == size) &&
		    cache_find(m, l.v[i].uid) == NULL)
			cand[nc++] = l.v[i].uid;
	if (nc > 0 && (r = fetch_bodies(st, m, cand, nc)) != 0)
		goto out;
	for (i = 0; i < nc; i++) {
		if ((e = cache_find(m, cand[i])) == NULL)
			continue;
		for (k = 0; k < n; k++)
			if (found[k] == 0 && guid_cmp(&e->guid, &g[k]) == 0) {
				found[k] = cand[i];
				break;
			}
	}
out:
	free(cand);
	msglist_free(&l);
	return r;
}

/* find_arrived for one APPENDed message of size bytes: *uid or 0. */
static int
find_appended(struct istore *st, struct imbox *m, uint64_t size,
    const struct guid *g, uint32_t *uid)
{
	*uid = 0;
	return find_arrived(st, m, g, 1, size, uid);
}

/* ---- a save the server can make by copying ------------------------ */

static int	imap_copy(struct store *, const char *, const char *, int,
		    struct store_copy *, size_t);

/* The key of g in st->gl. */
static uint64_t
gloc_key(const struct guid *g)
{
	uint64_t	 h;

	memcpy(&h, g->b, sizeof(h));
	return h;
}

/* The slot of key h in st->gl: where it is, or the free slot it would take. */
static struct gloc *
gloc_slot(struct istore *st, uint64_t h)
{
	size_t	 i;

	for (i = (size_t)h & st->glmask;; i = (i + 1) & st->glmask)
		if (st->gl[i].uid == 0 || st->gl[i].h == h)
			return &st->gl[i];
}

/*
 * Records that message uid of st->mb[mbox] has GUID g.  The first place
 * found is kept, unless copy_instead found it gone (mbox UINT32_MAX).
 */
static int
gloc_add(struct istore *st, size_t mbox, uint32_t uid, const struct guid *g)
{
	struct gloc	*l, *old = st->gl;
	size_t		 i, oldn = old != NULL ? st->glmask + 1 : 0, n;

	if (uid == 0)
		return 0;
	if ((st->ngl + 1) * 2 > oldn) {
		/* At most half full: the probes stay short. */
		for (n = 64; n < (st->ngl + 1) * 4; n *= 2)
			;
		if ((st->gl = calloc(n, sizeof(*st->gl))) == NULL) {
			st->gl = old;
			return MSYNC_ERR_NOMEM;
		}
		st->glmask = n - 1;
		for (i = 0; i < oldn; i++)
			if (old[i].uid != 0)
				*gloc_slot(st, old[i].h) = old[i];
		free(old);
	}
	if ((l = gloc_slot(st, gloc_key(g)))->uid != 0 &&
	    l->mbox != UINT32_MAX)
		return 0;
	if (l->uid == 0)
		st->ngl++;
	l->h = gloc_key(g);
	l->mbox = (uint32_t)mbox;
	l->uid = uid;
	return 0;
}

/* Fills st->gl from the caches of every mailbox whose UIDs are current. */
static int
gloc_build(struct istore *st)
{
	size_t	 i, k;
	int	 r;

	st->gl_built = 1;
	for (i = 0; i < st->nmb; i++) {
		struct imbox *m = &st->mb[i];

		if (!m->loaded || m->uv_changed || m->uidvalidity == 0 ||
		    m->cache_uidvalidity != m->uidvalidity)
			continue;
		for (k = 0; k < m->nc; k++)
			if ((r = gloc_add(st, i, m->c[k].uid,
			    &m->c[k].guid)) != 0)
				return r;
	}
	return 0;
}

/*
 * A message to save into m that the server holds already (the caches
 * know its GUID g in some mailbox) is copied there with UID COPY instead
 * of uploaded.  The brain plans a copy within this store only from the
 * folders it plans, and it leaves out those unchanged on both sides: a
 * copy made on the other side out of such a folder comes as a save
 * (docs/IMAP.md "Moves and copies on the server").  imap_copy checks the
 * cache's GUID again, sets the flags asked for, and finds a copy whose
 * answer a lost connection took.  Returns 0 with *done 1 and *uid the
 * copy's UID, 0 with *done 0 (not copied: upload it), or an MSYNC_ERR_*
 * once the copy may exist (never uploaded then: no second copy).
 */
static int
copy_instead(struct istore *st, struct imbox *m, const struct guid *g,
    uint8_t flags, const char *kw, int *done, uint32_t *uid)
{
	struct store_copy v;
	struct imbox	*mf;
	struct gloc	*l;
	int		 r;

	*done = 0;
	*uid = 0;
	/* Without UIDPLUS the copy's UID, and so its flags, are unknown. */
	if (st->c == NULL || !(imap_conn_caps(st->c) & IMAP_CAP_UIDPLUS))
		return 0;
	if (!st->gl_built && gloc_build(st) != 0)
		return 0;	/* no memory for the map: upload */
	if (st->gl == NULL || (l = gloc_slot(st, gloc_key(g)))->uid == 0 ||
	    l->mbox >= st->nmb)
		return 0;
	mf = &st->mb[l->mbox];
	memset(&v, 0, sizeof(v));
	v.uid = l->uid;
	v.flags = flags;
	v.kw = kw;
	v.guid = *g;
	if ((r = imap_copy(&st->base, mf->name, m->name, 0, &v, 1)) != 0)
		return r;
	if (!v.done || v.status == MSYNC_ERR_NOTFOUND) {
		/* Expunged since its cache entry was made: upload. */
		LOG2("imap: '%s' UID %u is no longer there to copy: uploaded",
		    log_esc(mf->name, 200), l->uid);
		l->mbox = UINT32_MAX;
		return 0;
	}
	*done = 1;
	if (v.status != 0)
		return v.status;
	LOG2("imap: '%s': a copy of '%s' UID %u made on the server (UID %u), "
	    "not uploaded", log_esc(m->name, 200), log_esc(mf->name, 200),
	    l->uid, v.new_uid);
	*uid = v.new_uid;
	return 0;
}

static int
imap_save_commit(struct store_save *ss, uint8_t flags, const char *kw,
    int64_t date, const struct guid *expect, uint32_t *uid_out)
{
	struct isave	*sv = (struct isave *)ss;
	struct istore	*st = is(sv->base.st);
	struct imbox	*m = sv->mb;
	struct imap_done d;
	struct centry	 e;
	struct stat	 sb;
	char		 fl[MSYNC_KWSTR_MAX + 128], fls[MSYNC_KWSTR_MAX + 130];
	char		 ds[64], why[600];
	uint32_t	 uv = 0, uid = 0;
	uint64_t	 lim;
	int		 r, attempt = 0, maybe_stored = 0, throttled, copied;

	*uid_out = 0;
	memset(&e, 0, sizeof(e));
	memset(&d, 0, sizeof(d));
	guid_final(sv->g, &e.guid);
	if (expect != NULL && guid_cmp(expect, &e.guid) != 0) {
		r = MSYNC_ERR_BADDATA;
		goto out;
	}
	if (fstat(sv->fd, &sb) != 0) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	if ((r = flags_to_text(flags, kw, fl, sizeof(fl))) != 0)
		goto out;
	snprintf(fls, sizeof(fls), "(%s)", fl);
	date_format(date, ds, sizeof(ds));
	m->last_modseq = 0;	/* our change: list afresh */
	if (m->uv_changed) {
		r = MSYNC_ERR_STORE_CHANGED;
		goto out;
	}
	/* On the server already (also one over APPENDLIMIT): UID COPY. */
	if ((r = copy_instead(st, m, &e.guid, flags, kw, &copied, &uid)) != 0 ||
	    copied) {
		*uid_out = uid;
		goto out;
	}
	lim = imap_conn_appendlimit(st->c);
	if (lim != 0 && (uint64_t)sb.st_size > lim) {
		/* RFC 7889: a client does not send what will be refused. */
		snprintf(d.text, sizeof(d.text), "larger than the server's "
		    "APPENDLIMIT of %llu bytes", (unsigned long long)lim);
		d.code[0] = '\0';
		goto refused;
	}
	if (m->append_floor == 0)
		m->append_floor = m->uidnext != 0 ? m->uidnext : 1;
	for (;;) {
		if (maybe_stored) {
			/* Did the APPEND whose answer was lost arrive? */
			r = find_appended(st, m, (uint64_t)sb.st_size, &e.guid,
			    &uid);
			if (r == 0 && uid != 0) {
				LOG1("imap: '%s': the message sent before the "
				    "connection was lost had arrived (UID %u): "
				    "not sent again", log_esc(m->name, 200),
				    uid);
				uv = m->uidvalidity;
				d.status = IMAP_OK;
				break;
			}
			if (r == 0)
				maybe_stored = 0;
		}
		if (r == 0) {
			r = imap_append(st->c, m->wire, fls, ds, sv->fd,
			    (uint64_t)sb.st_size, &uv, &uid, &d);
			if (r == 0)
				break;
			/* Lost with the message sent: it may be there. */
			if (r == MSYNC_ERR_PEER_EOF &&
			    !imap_throttled(st->c, NULL))
				maybe_stored = 1;
		}
		throttled = r == MSYNC_ERR_PEER_EOF &&
		    imap_throttled(st->c, NULL);
		if (recover(st, r, &attempt) != 0) {
			if (throttled && !maybe_stored) {
				/* Refused every time: this message's turn. */
				snprintf(d.text, sizeof(d.text), "%s",
				    imap_why(st->c));
				d.code[0] = '\0';
				goto refused;
			}
			r = fail(st, r);
			goto out;
		}
		r = 0;
	}
	if (d.status != IMAP_OK) {
refused:
		ERRX("imap: %s refused a message for '%s': %s%s%s%s",
		    st->u.host, log_esc(m->name, 200), d.code[0] ? "[" : "",
		    log_esc(d.code, 100), d.code[0] ? "] " : "",
		    log_esc(d.text, 200));
		snprintf(why, sizeof(why), "%s%s%s%s", d.code[0] ? "[" : "",
		    d.code, d.code[0] ? "] " : "", d.text);
		refused_add(st, m, sv->fd, (uint64_t)sb.st_size, why);
		/*
		 * A refusal of this message (TOOBIG, LIMIT, OVERQUOTA or
		 * none given): the brain goes on without it, the message
		 * is listed at the end, and the run ends with status 1.
		 */
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if (uid != 0 && uid >= m->append_floor && uid < UINT32_MAX)
		m->append_floor = uid + 1;
	if (uid != 0 && m->uidvalidity != 0 && uv != 0 &&
	    uv != m->uidvalidity) {
		/*
		 * Saved, but under a UIDVALIDITY other than the one listed:
		 * the mailbox was renumbered.  The cache learns the message
		 * under the new one (so the next run knows it without a
		 * download); this run does nothing more in the mailbox.
		 */
		ERRX("imap: '%s': UIDVALIDITY changed during the run (%u, "
		    "now %u): nothing more is done in this folder in this "
		    "run, and the next run matches its messages by content",
		    log_esc(m->name, 200), m->uidvalidity, uv);
		m->uv_changed = 1;
		cache_load(st, m);
		cache_check_uidvalidity(m, uv);
		e.uid = uid;
		e.size = sv->lfsize;
		e.date = date;
		(void)cache_put(m, &e);
		r = MSYNC_ERR_STORE_CHANGED;
		goto out;
	}
	if (uid != 0) {
		cache_load(st, m);
		if (m->cache_uidvalidity != uv)
			cache_check_uidvalidity(m, uv);
		e.uid = uid;
		e.size = sv->lfsize;
		e.date = date;
		if ((r = cache_put(m, &e)) != 0)
			goto out;
		/* A later save of the same message copies this one. */
		if (st->gl_built)
			(void)gloc_add(st, (size_t)(m - st->mb), uid, &e.guid);
	} else
		LOG2("imap: no APPENDUID from %s: the saved message gets its "
		    "UID on the next run", st->u.host);
	*uid_out = uid;
	r = 0;
out:
	imap_save_abort(ss);
	return r;
}

/* ---- flags, expunge, mailboxes ------------------------------------- */

static int
store_cmd(struct istore *st, struct imbox *m, uint32_t uid, const char *op,
    const char *what)
{
	int	 r;

	if ((r = select_mbox(st, m, 1)) != 0)
		return r;
	m->last_modseq = 0;	/* our change: list afresh */
	return imap_cmd(st->c, NULL, "UID STORE %u %s (%s)", uid, op, what);
}

static int
imap_set_flags(struct store *s, const char *name, uint32_t uid,
    uint8_t flags, const char *kw)
{
	struct istore	*st = is(s);
	struct imbox	*m;
	char		 fl[MSYNC_KWSTR_MAX + 128];
	int		 r;

	int		 attempt = 0;

	if ((m = mbox_find(st, name)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	if ((r = flags_to_text(flags, kw, fl, sizeof(fl))) != 0)
		return r;
	while ((r = store_cmd(st, m, uid, "FLAGS.SILENT", fl)) != 0 &&
	    recover(st, r, &attempt) == 0)
		;
	return r != 0 ? fail(st, r) : 0;
}

/* The words of a that are not in b, as a space-separated string. */
static void
kw_minus(const char *a, const char *b, char *out, size_t n)
{
	const char	*w, *e;
	size_t		 wl, o = 0;

	out[0] = '\0';
	for (w = a; w != NULL && *w != '\0'; w = *e ? e + 1 : e) {
		const char	*x, *xe;
		int		 found = 0;

		e = strchr(w, ' ');
		if (e == NULL)
			e = w + strlen(w);
		wl = (size_t)(e - w);
		for (x = b; x != NULL && *x != '\0' && !found;
		    x = *xe ? xe + 1 : xe) {
			xe = strchr(x, ' ');
			if (xe == NULL)
				xe = x + strlen(x);
			found = (size_t)(xe - x) == wl &&
			    memcmp(x, w, wl) == 0;
		}
		if (!found && o + wl + 2 < n) {
			if (o > 0)
				out[o++] = ' ';
			memcpy(out + o, w, wl);
			o += wl;
			out[o] = '\0';
		}
	}
}

static int
update_flags_once(struct istore *st, const char *name, uint32_t uid,
    uint8_t old_flags, const char *old_kw, uint8_t flags, const char *kw)
{
	struct imbox	*m;
	char		 addk[MSYNC_KWSTR_MAX + 1], delk[MSYNC_KWSTR_MAX + 1];
	char		 fl[MSYNC_KWSTR_MAX + 128];
	int		 r;

	if ((m = mbox_find(st, name)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	kw_minus(kw, old_kw, addk, sizeof(addk));
	kw_minus(old_kw, kw, delk, sizeof(delk));
	if ((flags & ~old_flags) != 0 || addk[0] != '\0') {
		if ((r = flags_to_text(flags & ~old_flags, addk, fl,
		    sizeof(fl))) != 0 ||
		    (r = store_cmd(st, m, uid, "+FLAGS.SILENT", fl)) != 0)
			return r;
	}
	if ((old_flags & ~flags) != 0 || delk[0] != '\0') {
		if ((r = flags_to_text(old_flags & ~flags, delk, fl,
		    sizeof(fl))) != 0 ||
		    (r = store_cmd(st, m, uid, "-FLAGS.SILENT", fl)) != 0)
			return r;
	}
	return 0;
}

/* +FLAGS and -FLAGS: repeating them is harmless. */
static int
imap_update_flags(struct store *s, const char *name, uint32_t uid,
    uint8_t old_flags, const char *old_kw, uint8_t flags, const char *kw)
{
	struct istore	*st = is(s);
	int		 r, attempt = 0;

	while ((r = update_flags_once(st, name, uid, old_flags, old_kw, flags,
	    kw)) != 0 && recover(st, r, &attempt) == 0)
		;
	return r != 0 ? fail(st, r) : 0;
}

static int
expunge_once(struct istore *st, const char *name, uint32_t uid)
{
	struct imbox	*m;
	int		 r;

	if ((m = mbox_find(st, name)) == NULL)
		return 0;
	if ((r = store_cmd(st, m, uid, "+FLAGS.SILENT", "\\Deleted")) != 0)
		return r;
	if (imap_conn_caps(st->c) & IMAP_CAP_UIDPLUS)
		r = imap_cmd(st->c, NULL, "UID EXPUNGE %u", uid);
	else {
		/* Without UIDPLUS, EXPUNGE also removes others' \Deleted. */
		LOG2("imap: %s has no UIDPLUS: EXPUNGE removes every "
		    "\\Deleted message of '%s'", st->u.host,
		    log_esc(name, 200));
		r = imap_cmd(st->c, NULL, "EXPUNGE");
	}
	if (r != 0)
		return r;
	cache_del(m, uid);
	return 0;
}

/* \Deleted then UID EXPUNGE: repeating them is harmless. */
static int
imap_expunge(struct store *s, const char *name, uint32_t uid)
{
	struct istore	*st = is(s);
	int		 r, attempt = 0;

	while ((r = expunge_once(st, name, uid)) != 0 &&
	    recover(st, r, &attempt) == 0)
		;
	return r != 0 ? fail(st, r) : 0;
}

static int
imap_expunge_guid(struct store *s, const char *name, uint32_t uid,
    const struct guid *expect)
{
	struct istore	*st = is(s);
	struct imbox	*m;
	struct centry	*e;

	if ((m = mbox_find(st, name)) == NULL)
		return 0;
	cache_load(st, m);
	if ((e = cache_find(m, uid)) == NULL ||
	    guid_cmp(&e->guid, expect) != 0)
		return MSYNC_ERR_STORE_CHANGED;
	return imap_expunge(s, name, uid);
}

/* ---- copies within the account (UID COPY, UID MOVE) ---------------- */

/*
 * UIDs in one UID COPY or UID MOVE: its COPYUID answer (RFC 4315), two
 * sets of at most 128 UIDs, fits struct imap_done's code even when the
 * server numbers the copies with gaps.
 */
#define COPY_CHUNK	128

/* The COPYUID answers collected for the command running (st->cu). */
struct copymap {
	uint32_t	 uv;		/* the destination's UIDVALIDITY, 0 any */
	const uint32_t	*src;		/* borrowed; sorted source UIDs */
	uint32_t	*dst;		/* borrowed; their new UIDs, 0 unknown */
	size_t		 n;
	int		 other_uv;	/* a COPYUID named another UIDVALIDITY */
};

/*
 * Reads "COPYUID uidvalidity source-set destination-set" (RFC 4315
 * section 3): the n-th source UID became the n-th destination UID.  A
 * COPYUID that does not parse, names more UIDs than were asked for, or
 * whose two sets differ in size is ignored (copy_cmd then counts the
 * copies it should have named as not made).  Nothing is expanded before
 * the sizes are checked against cu->n.
 */
static int
copyuid_take(struct copymap *cu, const char *code)
{
	struct imap_range *sr = NULL, *dr = NULL;
	size_t		 ns = 0, nd = 0, i, j;
	const char	*p, *s1, *s2;
	unsigned long	 uv;
	uint64_t	 cnt;
	uint32_t	 su, du;
	int		 r;

	if (strncasecmp(code, "COPYUID ", 8) != 0)
		return 0;
	p = code + 8;
	if (sscanf(p, "%lu", &uv) != 1 || uv == 0 || uv > UINT32_MAX)
		return 0;
	if (cu->uv != 0 && uv != cu->uv) {
		cu->other_uv = 1;
		return 0;
	}
	if ((s1 = strchr(p, ' ')) == NULL || (s2 = strchr(++s1, ' ')) ==
	    NULL)
		return 0;
	s2++;
	r = imap_set_parse(s1, (size_t)(s2 - 1 - s1), 0, &sr, &ns);
	if (r == 0)
		r = imap_set_parse(s2, strcspn(s2, " "), 0, &dr, &nd);
	if (r == MSYNC_ERR_NOMEM)
		goto out;
	r = 0;
	if (sr == NULL || dr == NULL || ns == 0 || nd == 0 ||
	    (cnt = imap_set_count(sr, ns)) > cu->n ||
	    cnt != imap_set_count(dr, nd))
		goto out;
	/* Walk both sets in step; the counts are equal and small. */
	su = sr[0].lo;
	du = dr[0].lo;
	for (i = j = 0; i < ns && j < nd;) {
		size_t	 lo = 0, hi = cu->n, mid;

		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (cu->src[mid] < su)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < cu->n && cu->src[lo] == su)
			cu->dst[lo] = du;
		if (su == sr[i].hi) {
			if (++i < ns)
				su = sr[i].lo;
		} else
			su++;
		if (du == dr[j].hi) {
			if (++j < nd)
				du = dr[j].lo;
		} else
			du++;
	}
out:
	free(sr);
	free(dr);
	return r;
}

/* Writes the sorted uids[0..n) as a sequence set with ranges. */
static void
uid_set(const uint32_t *uids, size_t n, char *out, size_t cap)
{
	size_t	 i, j, o = 0;

	out[0] = '\0';
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && uids[j] == uids[j - 1] + 1; j++)
			;
		if (j - 1 == i)
			o += (size_t)snprintf(out + o, cap - o, "%s%u",
			    o ? "," : "", uids[i]);
		else
			o += (size_t)snprintf(out + o, cap - o, "%s%u:%u",
			    o ? "," : "", uids[i], uids[j - 1]);
		if (o >= cap) {
			out[cap - 1] = '\0';
			return;
		}
	}
}

/* 1 if keyword strings a and b (sorted, space-separated) are equal. */
static int
kw_same(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/*
 * One UID COPY or UID MOVE of items[0..n) (indexes into v, sorted by
 * source UID) from mf to mt, answered or not: the copies it made get
 * done and new_uid.  Returns 0 once the server answered (a NO leaves the
 * items not done: the caller copies them by content), or the connection
 * error.  *lost is set when the command was sent and its answer lost.
 */
static int
copy_cmd(struct istore *st, struct imbox *mf, struct imbox *mt,
    int use_move, struct store_copy *v, const size_t *items, size_t n,
    int *lost)
{
	struct copymap	 cu;
	struct imap_done d;
	uint32_t	 src[COPY_CHUNK], dst[COPY_CHUNK];
	char		 set[COPY_CHUNK * 22 + 1];
	size_t		 i;
	int		 r;

	*lost = 0;
	for (i = 0; i < n; i++) {
		src[i] = v[items[i]].uid;
		dst[i] = 0;
	}
	uid_set(src, n, set, sizeof(set));
	if ((r = select_mbox(st, mf, use_move)) != 0)
		return r;
	mf->last_modseq = mt->last_modseq = 0;	/* our change: list afresh */
	memset(&cu, 0, sizeof(cu));
	cu.uv = mt->uidvalidity;
	cu.src = src;
	cu.dst = dst;
	cu.n = n;
	st->cu = &cu;	/* MOVE's COPYUID comes untagged (RFC 6851 4.3) */
	r = imap_cmd(st->c, &d, "UID %s %s %s", use_move ? "MOVE" : "COPY",
	    set, mt->wire);
	st->cu = NULL;
	if (r != 0) {
		if (r == MSYNC_ERR_PEER_EOF && !imap_throttled(st->c, NULL))
			*lost = 1;
		return r;
	}
	if (d.status != IMAP_OK) {
		/*
		 * A refused COPY changed nothing (RFC 3501 6.4.7); a
		 * refused MOVE leaves each message moved or not (RFC 6851
		 * 3.3): those its COPYUID named are done, the others are
		 * copied by content.
		 */
		LOG1("imap: %s refused UID %s into '%s': %s%s%s%s", st->u.host,
		    use_move ? "MOVE" : "COPY", log_esc(mt->name, 200),
		    d.code[0] ? "[" : "", log_esc(d.code, 100),
		    d.code[0] ? "] " : "", log_esc(d.text, 200));
		if (!use_move)
			return 0;
	} else if ((r = copyuid_take(&cu, d.code)) != 0)
		return r;
	if (cu.other_uv) {
		ERRX("imap: '%s': UIDVALIDITY changed during the run: "
		    "nothing more is done in this folder in this run",
		    log_esc(mt->name, 200));
		mt->uv_changed = 1;
	}
	for (i = 0; i < n; i++) {
		struct store_copy *c = &v[items[i]];

		if (d.status != IMAP_OK && dst[i] == 0)
			continue;
		c->done = 1;
		c->new_uid = dst[i];
		c->moved = use_move;
		if (dst[i] == 0 && (imap_conn_caps(st->c) & IMAP_CAP_UIDPLUS) &&
		    !cu.other_uv)
			/* UIDPLUS names every copy made: this one was not. */
			c->status = MSYNC_ERR_NOTFOUND;
	}
	return 0;
}

/*
 * Copies (or moves) messages between two mailboxes of the account on the
 * server: UID MOVE (RFC 6851) when offered and asked for, else UID COPY
 * followed, for a move with UIDPLUS, by \Deleted and UID EXPUNGE of
 * exactly the copied UIDs.  COPYUID gives the new UIDs; the cache learns
 * them with the source's GUID, size and date, so nothing is downloaded.
 *
 * A message is left to the caller (done 0: read and APPENDed as before)
 * when the cache does not know it as the GUID asked for, or when its
 * flags must change and the server has no UIDPLUS (the copy's UID would
 * not be known for the STORE).
 *
 * A lost connection: the command is not simply repeated (a COPY that
 * arrived would be made twice).  After connecting again, the messages
 * from the destination's append floor on that the cache does not know
 * are read and matched by GUID (find_arrived); what is found is done
 * (moved 0: the caller's own expunge of the source follows, harmless if
 * a MOVE removed it already), the rest is sent again.
 */
static int
imap_copy(struct store *s, const char *from, const char *to, int move,
    struct store_copy *v, size_t n)
{
	struct istore	*st = is(s);
	struct imbox	*mf, *mt;
	struct centry	*e, ne;
	size_t		*items = NULL, *round = NULL, ni = 0, i, k, base;
	struct guid	*gs = NULL;
	uint32_t	*found = NULL, caps, done_uids[COPY_CHUNK];
	char		 set[COPY_CHUNK * 22 + 1], fl[MSYNC_KWSTR_MAX + 128];
	int		 r = 0, attempt, lost, use_move, emulate, nd;

	if (st->readonly || st->dead || st->c == NULL ||
	    (mf = mbox_find(st, from)) == NULL ||
	    (mt = mbox_find(st, to)) == NULL || mf->uv_changed ||
	    mt->uv_changed)
		return 0;
	caps = imap_conn_caps(st->c);
	use_move = move && (caps & IMAP_CAP_MOVE);
	emulate = move && !use_move && (caps & IMAP_CAP_UIDPLUS);
	if (move && !use_move)
		LOG2("imap: %s has no MOVE: UID COPY, then %s", st->u.host,
		    emulate ? "\\Deleted and UID EXPUNGE" :
		    "the expunges as planned");
	cache_load(st, mf);
	if ((items = calloc(n + 1, sizeof(*items))) == NULL ||
	    (round = calloc(n + 1, sizeof(*round))) == NULL ||
	    (gs = calloc(COPY_CHUNK, sizeof(*gs))) == NULL ||
	    (found = calloc(COPY_CHUNK, sizeof(*found))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		int	 same = v[i].src_known && v[i].src_flags == v[i].flags &&
		    kw_same(v[i].src_kw, v[i].kw);

		if ((e = cache_find(mf, v[i].uid)) == NULL ||
		    guid_cmp(&e->guid, &v[i].guid) != 0)
			continue;
		if (!same && !(caps & IMAP_CAP_UIDPLUS))
			continue;
		items[ni++] = i;
	}
	/* The caller's order is by UID; keep the sets' ranges long. */
	for (i = 1; i < ni; i++)
		for (k = i; k > 0 && v[items[k - 1]].uid > v[items[k]].uid; k--) {
			size_t t = items[k];

			items[k] = items[k - 1];
			items[k - 1] = t;
		}
	/*
	 * Two copies of one message into one mailbox (a message the other
	 * side holds twice) cannot share a command: the server copies a
	 * UID named twice once, and COPYUID names it once.  The n-th copy
	 * of each UID goes in round n; a command never spans two rounds.
	 */
	for (i = 0; i < ni; i++)
		round[items[i]] = i > 0 && v[items[i - 1]].uid ==
		    v[items[i]].uid ? round[items[i - 1]] + 1 : 0;
	for (i = 1; i < ni; i++)
		for (k = i; k > 0 && round[items[k - 1]] > round[items[k]];
		    k--) {
			size_t t = items[k];

			items[k] = items[k - 1];
			items[k - 1] = t;
		}
	if (mt->append_floor == 0)
		mt->append_floor = mt->uidnext != 0 ? mt->uidnext : 1;
	for (base = 0; base < ni; base += COPY_CHUNK) {
		size_t	 cn = ni - base < COPY_CHUNK ? ni - base : COPY_CHUNK;
		size_t	 left[COPY_CHUNK], nl;

		for (i = 1; i < cn; i++)
			if (round[items[base + i]] != round[items[base]])
				cn = i;
		nl = cn;

		for (i = 0; i < cn; i++)
			left[i] = items[base + i];
		attempt = 0;
		for (;;) {
			r = copy_cmd(st, mf, mt, use_move, v, left, nl, &lost);
			if (r == 0)
				break;
			if (recover(st, r, &attempt) != 0) {
				r = fail(st, r);
				goto out;
			}
			if (!lost)
				continue;
			/* Did it arrive?  Never copy a message twice. */
			for (i = 0; i < nl; i++) {
				gs[i] = v[left[i]].guid;
				found[i] = 0;
			}
			if ((r = find_arrived(st, mt, gs, nl, UINT64_MAX,
			    found)) != 0) {
				if (recover(st, r, &attempt) != 0) {
					r = fail(st, r);
					goto out;
				}
				continue;
			}
			for (i = k = 0; i < nl; i++) {
				if (found[i] == 0) {
					left[k++] = left[i];
					continue;
				}
				LOG1("imap: '%s': the copy made before the "
				    "connection was lost had arrived (UID %u)",
				    log_esc(mt->name, 200), found[i]);
				v[left[i]].done = 1;
				v[left[i]].new_uid = found[i];
			}
			if ((nl = k) == 0)
				break;
		}
		/* What the copies need: the cache entry, their flags. */
		nd = 0;
		cache_load(st, mt);
		for (i = 0; i < cn; i++) {
			struct store_copy *c = &v[items[base + i]];

			if (!c->done || c->status != 0)
				continue;
			if (c->new_uid == 0)
				continue;
			if (c->new_uid >= mt->append_floor &&
			    c->new_uid < UINT32_MAX)
				mt->append_floor = c->new_uid + 1;
			if ((e = cache_find(mf, c->uid)) != NULL &&
			    cache_find(mt, c->new_uid) == NULL) {
				memset(&ne, 0, sizeof(ne));
				ne.uid = c->new_uid;
				ne.guid = e->guid;
				ne.size = e->size;
				ne.date = e->date;
				if ((r = cache_put(mt, &ne)) != 0)
					goto out;
			}
			if (c->moved)
				cache_del(mf, c->uid);
			else if (emulate)
				done_uids[nd++] = c->uid;
			if (c->src_known && c->src_flags == c->flags &&
			    kw_same(c->src_kw, c->kw))
				continue;
			/* The copy has the source's flags: set the plan's. */
			attempt = 0;
			if ((r = flags_to_text(c->flags, c->kw, fl,
			    sizeof(fl))) == 0)
				while ((r = store_cmd(st, mt, c->new_uid,
				    "FLAGS.SILENT", fl)) != 0 &&
				    recover(st, r, &attempt) == 0)
					;
			if (r != 0) {
				c->status = fail(st, r);
				r = 0;
			}
		}
		if (nd == 0)
			continue;
		/*
		 * No MOVE: the copies are made (the server said OK), so
		 * the sources go, exactly these UIDs (RFC 6851 section 3.3's
		 * way).  A failure here only leaves them to the caller's
		 * expunges, which repeat it message by message.
		 */
		for (i = 1; i < (size_t)nd; i++)
			for (k = i; k > 0 && done_uids[k - 1] > done_uids[k];
			    k--) {
				uint32_t t = done_uids[k];

				done_uids[k] = done_uids[k - 1];
				done_uids[k - 1] = t;
			}
		uid_set(done_uids, (size_t)nd, set, sizeof(set));
		if (select_mbox(st, mf, 1) != 0 ||
		    imap_cmd(st->c, NULL, "UID STORE %s +FLAGS.SILENT "
		    "(\\Deleted)", set) != 0 ||
		    imap_cmd(st->c, NULL, "UID EXPUNGE %s", set) != 0)
			continue;
		for (i = 0; i < cn; i++) {
			struct store_copy *c = &v[items[base + i]];

			if (c->done && c->status == 0 && c->new_uid != 0 &&
			    !c->moved) {
				c->moved = 1;
				cache_del(mf, c->uid);
			}
		}
	}
	r = 0;
out:
	free(items);
	free(round);
	free(gs);
	free(found);
	return r;
}

/* CREATE, then (unless refused) the new mailbox's STATUS. */
static int
create_once(struct istore *st, struct imbox *m, struct imap_done *d)
{
	int	 r;

	if ((r = imap_cmd(st->c, d, "CREATE %s", m->wire)) != 0)
		return r;
	if (d->status != IMAP_OK &&
	    strncasecmp(d->code, "ALREADYEXISTS", 13) != 0)
		return 0;
	return imap_cmd(st->c, NULL, "STATUS %s %s", m->wire,
	    status_items(st));
}

static int
imap_create_mailbox(struct store *s, const char *name,
    const struct guid *guid)
{
	struct istore	*st = is(s);
	struct imbox	*m;
	struct imap_done d;
	int		 r, attempt = 0;

	if (st->readonly)
		return MSYNC_ERR_READONLY;
	if (!names_valid(name, strlen(name)))
		return MSYNC_ERR_BADNAME;
	if (mbox_find(st, name) != NULL)
		return MSYNC_ERR_EXISTS;
	if ((r = mbox_add(st, name, &m)) != 0)
		return r;
	/* A CREATE repeated after a drop finds the mailbox: ALREADYEXISTS. */
	while ((r = create_once(st, m, &d)) != 0 &&
	    recover(st, r, &attempt) == 0)
		;
	if (r != 0)
		return fail(st, r);
	if (d.status != IMAP_OK &&
	    strncasecmp(d.code, "ALREADYEXISTS", 13) != 0) {
		ERRX("imap: cannot create '%s': %s", log_esc(name, 200),
		    log_esc(d.text, 200));
		return MSYNC_ERR_IO;
	}
	cache_load(st, m);
	cache_check_uidvalidity(m, m->uidvalidity);
	if (guid != NULL) {
		m->guid = *guid;
		m->guid_adopted = 1;
		m->dirty = 1;
	}
	return cache_save(st, m);
}

static int
imap_rename_mailbox(struct store *s, const char *from, const char *to)
{
	struct istore	*st = is(s);
	struct imbox	*m;
	char		*raw = NULL, *wire = NULL, *nn = NULL;
	char		 op[MSYNC_PATH_MAX], np[MSYNC_PATH_MAX];
	int		 r;

	if (st->readonly)
		return MSYNC_ERR_READONLY;
	if ((m = mbox_find(st, from)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	if ((r = name_to_raw(st, to, &raw)) != 0 ||
	    (r = imap_quote(raw, &wire)) != 0 ||
	    (nn = strdup(to)) == NULL) {
		r = r != 0 ? r : MSYNC_ERR_NOMEM;
		goto out;
	}
	if ((r = imap_cmd(st->c, NULL, "RENAME %s %s", m->wire, wire)) != 0) {
		r = fail(st, r);
		goto out;
	}
	cache_load(st, m);
	cache_path(st, m, op, sizeof(op));
	free(m->name);
	free(m->raw);
	free(m->wire);
	m->name = nn;
	m->raw = raw;
	m->wire = wire;
	nn = raw = wire = NULL;	/* transferred */
	cache_path(st, m, np, sizeof(np));
	(void)rename(op, np);
	st->sel = -1;
out:
	free(raw);
	free(wire);
	free(nn);
	return r;
}

static int
imap_delete_mailbox(struct store *s, const char *name)
{
	struct istore	*st = is(s);
	struct imbox	*m;
	char		 p[MSYNC_PATH_MAX];
	int		 r;

	if (st->readonly)
		return MSYNC_ERR_READONLY;
	if ((m = mbox_find(st, name)) == NULL)
		return 0;
	if (st->sel == m - st->mb) {
		/* A selected mailbox cannot always be deleted. */
		(void)imap_cmd(st->c, NULL, "CLOSE");
		st->sel = -1;
	}
	if ((r = imap_cmd(st->c, NULL, "DELETE %s", m->wire)) != 0)
		return fail(st, r);
	cache_path(st, m, p, sizeof(p));
	(void)unlink(p);
	cache_clear(m);
	m->cache_modseq = 0;
	m->dirty = 0;
	return 0;
}

static int
imap_set_mailbox_guid(struct store *s, const char *name,
    const struct guid *guid)
{
	struct istore	*st = is(s);
	struct imbox	*m;

	if ((m = mbox_find(st, name)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	cache_load(st, m);
	m->guid = *guid;
	m->guid_adopted = 1;
	m->dirty = 1;
	return cache_save(st, m);
}

static int
imap_flush(struct store *s)
{
	struct istore	*st = is(s);
	int		 r;

	for (size_t i = 0; i < st->nmb; i++)
		if ((r = cache_save(st, &st->mb[i])) != 0)
			return r;
	return 0;
}

/*
 * The peer's fingerprints for the first listing of name (see
 * match_fprints).  Kept sorted by nothing: match_fprints orders them.
 */
static int
imap_hints(struct store *s, const char *name, const struct store_hint *v,
    size_t n)
{
	struct istore	*st = is(s);
	struct imbox	*m;

	if ((m = mbox_find(st, name)) == NULL)
		return 0;	/* not on the server: nothing to match */
	free(m->hints);
	m->hints = NULL;
	m->nhints = 0;
	if (n == 0)
		return 0;
	if (n > MSYNC_MSGS_MAX)
		return MSYNC_ERR_TOOBIG;
	if ((m->hints = calloc(n, sizeof(*v))) == NULL)
		return MSYNC_ERR_NOMEM;
	memcpy(m->hints, v, n * sizeof(*v));
	m->nhints = n;
	return 0;
}

/*
 * 1 if message uid of name is in the spool (read this run, typically by
 * the listing, to learn its GUID): a header fingerprint of it costs no
 * download (an IMAP side B's FPRINTS, docs/IMAP.md).
 */
static int
imap_msg_local(struct store *s, const char *name, uint32_t uid)
{
	struct istore	*st = is(s);
	struct imbox	*m;

	if ((m = mbox_find(st, name)) == NULL)
		return 0;
	return spool_find(m, uid) != NULL;
}

const struct store_driver store_imap_driver = {
	.name = "imap",
	.open = imap_open,
	.close = imap_close_store,
	.list_mailboxes = imap_list_mailboxes,
	.list_messages = imap_list_messages,
	.rescan = imap_rescan,
	.msg_open = imap_msg_open,
	.msg_read = imap_msg_read,
	.msg_close = imap_msg_close,
	.save_begin = imap_save_begin,
	.save_write = imap_save_write,
	.save_commit = imap_save_commit,
	.save_abort = imap_save_abort,
	.set_flags = imap_set_flags,
	.update_flags = imap_update_flags,
	.expunge = imap_expunge,
	.expunge_guid = imap_expunge_guid,
	.copy = imap_copy,
	.create_mailbox = imap_create_mailbox,
	.rename_mailbox = imap_rename_mailbox,
	.delete_mailbox = imap_delete_mailbox,
	.set_mailbox_guid = imap_set_mailbox_guid,
	.flush = imap_flush,
	.hints = imap_hints,
	.msg_local = imap_msg_local,
};
