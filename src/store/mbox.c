/*
 * src/store/mbox.c — the mbox store (store.h): one mbox file (INBOX), a
 * directory of mbox files with subdirectories as the hierarchy (mutt,
 * Dovecot's mbox layout), or Thunderbird's "Name" + "Name.sbd/".  The
 * format itself (what a message is, quoting, flags headers) is
 * mboxfmt.c's; this file does the files, the locks and the index.
 *
 * Index: per mbox file, in $XDG_CACHE_HOME/msync/mbox/<hash of its
 * path>.index (never next to the mail, where a mail reader would take it
 * for a mailbox): UIDVALIDITY, the next UID, the mailbox GUID, a
 * modification sequence, the file's identity (device, inode, size,
 * mtime) at the last scan, and per message its UID, offset, raw length,
 * content size, date, flags, GUID and keywords.  A file whose identity
 * is unchanged is not read; one that only grew is read from its last
 * known end (after checking that its last known message is still where
 * it was); anything else is read whole, and messages keep their UIDs by
 * GUID.
 *
 * Writing: new messages are appended (fsync before the store is
 * flushed); flag changes and expunges are collected and written at the
 * flush, by writing the file anew beside it and renaming it over the old
 * one, so that a crash leaves the old content or the new.  Every read
 * and write of a mail file holds its fcntl lock, and every write also
 * its dotlock (FILE.lock), as Debian's policy, mutt, Dovecot, procmail
 * and postfix have it; msync waits up to --lock-wait for them.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "guid.h"
#include "log.h"
#include "mboxfmt.h"
#include "msync.h"
#include "names.h"
#include "store.h"

#define IX_MAGIC	"msync-mbox-index 1"
#define LOCK_POLL_NS	100000000L	/* 100 ms between lock attempts */
#define RACY_SEC	2		/* an mtime this recent proves nothing */
#define DOTLOCK_STALE	600		/* seconds an unchanged dotlock lives */
#define WBUF		(1 << 20)	/* bytes collected before a write */
#define DEPTH_MAX	MSYNC_NAME_DEPTH

/* One message. */
struct ment {
	uint32_t	 uid;
	uint8_t		 flags;
	uint8_t		 newflags;	/* to write at the flush */
	uint8_t		 dirty;		/* flags to write */
	uint8_t		 gone;		/* expunged, to write */
	uint64_t	 off;		/* its "From " line */
	uint64_t	 raw;		/* bytes up to the next one */
	uint64_t	 size;		/* content bytes */
	int64_t		 date;
	struct guid	 guid;
	char		*kw;		/* owned; NULL none */
	char		*newkw;		/* owned; with newflags */
};

/* One mailbox: one mbox file. */
struct mfolder {
	char		*name;		/* owned; internal name */
	char		*path;		/* owned; absolute file path */
	int		 loaded;	/* the index is in memory */
	int		 scanned;	/* read this session */
	uint32_t	 uidvalidity;
	uint32_t	 uidnext;
	struct guid	 guid;
	uint64_t	 modseq;
	/* The file at the last scan. */
	uint64_t	 dev, ino, fsize;
	int64_t		 msec;
	long		 mnsec;
	int		 valid;		/* 0: read it again */
	struct ment	*v;		/* owned; by offset */
	size_t		 n;
	size_t		 hint;		/* where ent_find looks first */
	size_t		 cap;
	int		 pending;	/* flag changes or expunges to write */
	int		 ixdirty;
	int		 quiet;		/* its problems were warned about */
	/* Appends in progress: the file open, locked, written to. */
	int		 wfd;		/* -1 none */
	int		 dotlock;	/* we made FILE.lock */
	struct mboxfmt_out wbuf;
	uint64_t	 wend;		/* file size once wbuf is written */
	int		 jfd;		/* the append journal, -1 none */
	int		 format;	/* MBOXFMT_MBOXRD or _MBOXO: how read */
	/*
	 * The file open for reading messages, kept from one message to the
	 * next (a conversion reads every message of a file in turn: an
	 * open and a close each were a third of its system calls), and the
	 * file it is; used only while that is still the file of the index
	 * (dev, ino): a rewrite renames a new one in.
	 */
	int		 rfd;		/* -1 none */
	uint64_t	 rdev, rino;
	int		 rusers;	/* messages open on rfd */
};

struct mbox {
	struct store	 base;		/* first: the driver's handle */
	struct store_opts o;		/* borrowed strings */
	char		*root;		/* owned; the file or directory */
	int		 isdir;
	char		*inbox;		/* owned; INBOX's file, or NULL */
	char		*cache;		/* owned; the cache directory */
	int		 lockfd;	/* msync's own run lock */
	struct mfolder	**f;		/* owned */
	size_t		 nf;
	size_t		 capf;
	struct mfolder	*rf;		/* the one folder with its rfd open */
};

struct mmsg {				/* a message being read */
	struct store_msg base;
	int		 fd;
	struct mfolder	*f;		/* fd is f->rfd; NULL: fd is its own */
	struct mboxfmt	*fmt;
	struct mboxfmt_src src;
	struct mboxfmt_msg m;
	struct mboxfmt_out out;
	size_t		 outpos;
	uint64_t	 size;		/* announced */
	uint64_t	 sent;
	int		 done;
};

struct msave {				/* a message being saved */
	struct store_save base;
	struct mbox	*st;
	char		*name;		/* owned */
	int		 fd;		/* the spool: an unnamed file */
	struct guid_ctx	*gc;		/* owned */
	uint64_t	 size;
	uint8_t		 last;		/* its last byte */
	int		 failed;
};

static int	 folder_flush(struct mbox *, struct mfolder *);
static int	 folder_save_index(struct mbox *, struct mfolder *);
static int	 append_repair(struct mbox *, struct mfolder *, int);

static struct mbox *
mb(struct store *s)
{
	return (struct mbox *)s;
}

/* pread for mboxfmt: arg is a pointer to the descriptor. */
static int
fd_pread(void *arg, void *buf, size_t n, uint64_t off, size_t *got)
{
	ssize_t	 r;

	*got = 0;
	if (off > (uint64_t)INT64_MAX)
		return 0;
	do
		r = pread(*(int *)arg, buf, n, (off_t)off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return MSYNC_ERR_IO;
	*got = (size_t)r;
	return 0;
}

/* Writes all of buf to fd.  Returns 0 or MSYNC_ERR_IO. */
static int
write_all(int fd, const void *buf, size_t len)
{
	const uint8_t	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return MSYNC_ERR_IO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The cache directory for mbox indexes (created). */
static int
cache_dir(const struct store_opts *o, char **out)
{
	const char	*x, *home;
	int		 n;

	if (o->cachedir != NULL)
		n = asprintf(out, "%s/mbox", o->cachedir);
	else if ((x = getenv("XDG_CACHE_HOME")) != NULL && *x == '/')
		n = asprintf(out, "%s/msync/mbox", x);
	else if ((home = getenv("HOME")) != NULL && *home == '/')
		n = asprintf(out, "%s/.cache/msync/mbox", home);
	else
		return MSYNC_ERR_IO;
	if (n < 0) {
		*out = NULL;
		return MSYNC_ERR_NOMEM;
	}
	return msync_mkdirs(*out);
}

/*
 * The index's suffix: a file read as mboxo has its own index, since the
 * content (and so the GUID) of a message with a ">From " line depends
 * on how the file is read.
 */
#define IX_SUFFIX(st)	((st)->o.mbox_format == MBOXFMT_MBOXO ? \
			    ".mboxo-index" : ".index")

/* The cache file for key: "<cache>/<XXH3-64 of key><suffix>". */
static void
cache_file(const struct mbox *st, const char *key, const char *suffix,
    char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016" PRIx64 "%s", st->cache,
	    (uint64_t)XXH3_64bits(key, strlen(key)), suffix);
}

/*
 * 1 if the dotlock lk is stale: it names a process (as msync writes it,
 * "PID\n") that no longer exists, or it has not changed for
 * DOTLOCK_STALE seconds (procmail's and Dovecot's rule, more patient).
 * Such a lock is left by a program that died holding it.
 */
static int
dotlock_stale(const char *lk)
{
	struct stat	 sb;
	char		 b[32], *end;
	ssize_t		 n;
	long		 pid;
	int		 fd;

	if (stat(lk, &sb) == -1)
		return 0;
	if (time(NULL) - sb.st_mtime > DOTLOCK_STALE)
		return 1;
	if ((fd = open(lk, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return 0;
	n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 1 || b[n - 1] != '\n')
		return 0;
	b[n - 1] = '\0';
	pid = strtol(b, &end, 10);
	return *end == '\0' && pid > 0 && pid <= INT32_MAX &&
	    kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* Sleeps one lock poll; returns 1 when lock_wait seconds have passed. */
static int
lock_nap(const struct mbox *st, const struct timespec *start)
{
	struct timespec	 now, nap = { 0, LOCK_POLL_NS };

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - start->tv_sec >= st->o.lock_wait)
		return 1;
	nanosleep(&nap, NULL);
	return 0;
}

/*
 * Takes the fcntl lock (type F_RDLCK or F_WRLCK) on fd, then for a write
 * the dotlock path.lock, waiting up to --lock-wait.  *dot is set when a
 * dotlock was made.  MSYNC_ERR_LOCKED when another program keeps one.
 */
static int
lock_file(struct mbox *st, const char *path, int fd, int type, int *dot)
{
	struct timespec	 start;
	struct flock	 fl;
	char		 lk[MSYNC_PATH_MAX + 8], pid[32];
	int		 lfd, n, broke = 0;

	*dot = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = (short)type;
	fl.l_whence = SEEK_SET;
	while (fcntl(fd, F_SETLK, &fl) == -1) {
		if (errno != EACCES && errno != EAGAIN && errno != EINTR)
			return MSYNC_ERR_IO;
		if (lock_nap(st, &start)) {
			WARNX("'%s' is locked by another program",
			    log_esc(path, 300));
			return MSYNC_ERR_LOCKED;
		}
	}
	if (type != F_WRLCK)
		return 0;
	snprintf(lk, sizeof(lk), "%s.lock", path);
	for (;;) {
		lfd = open(lk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (lfd >= 0)
			break;
		if (errno == EACCES || errno == EROFS || errno == EPERM) {
			/* A directory we may not write (a spool): fcntl only. */
			LOG1("cannot make '%s': fcntl lock only",
			    log_esc(lk, 300));
			return 0;
		}
		if (errno == EEXIST && !broke && dotlock_stale(lk)) {
			WARNX("removing the stale dotlock '%s'",
			    log_esc(lk, 300));
			(void)unlink(lk);
			broke = 1;	/* once: then it is someone's */
			continue;
		}
		if (errno != EEXIST || lock_nap(st, &start)) {
			WARNX("'%s' is dotlocked by another program",
			    log_esc(path, 300));
			fl.l_type = F_UNLCK;
			(void)fcntl(fd, F_SETLK, &fl);
			return errno == EEXIST ? MSYNC_ERR_LOCKED : MSYNC_ERR_IO;
		}
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	(void)write_all(lfd, pid, (size_t)n);
	close(lfd);
	*dot = 1;
	return 0;
}

/* Releases what lock_file took. */
static void
unlock_file(const char *path, int fd, int dot)
{
	struct flock	 fl;
	char		 lk[MSYNC_PATH_MAX + 8];

	if (dot) {
		snprintf(lk, sizeof(lk), "%s.lock", path);
		(void)unlink(lk);
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_UNLCK;
	fl.l_whence = SEEK_SET;
	(void)fcntl(fd, F_SETLK, &fl);
}

static void
ent_free(struct ment *e)
{
	free(e->kw);
	free(e->newkw);
}

static void
folder_free(struct mfolder *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++)
		ent_free(&f->v[i]);
	free(f->v);
	free(f->wbuf.p);
	if (f->wfd >= 0)
		close(f->wfd);
	if (f->jfd >= 0)
		close(f->jfd);
	if (f->rfd >= 0)
		close(f->rfd);
	free(f->name);
	free(f->path);
	free(f);
}

/* A fresh UIDVALIDITY, time-based, above old. */
static uint32_t
new_uidvalidity(uint32_t old)
{
	uint32_t	 t = (uint32_t)time(NULL);

	return t > old ? t : old + 1;
}

/* Index file. */

/* Loads f's index from the cache; a missing or bad one leaves f empty. */
static void
index_load(struct mbox *st, struct mfolder *f)
{
	char		 path[MSYNC_PATH_MAX + 64], line[MSYNC_KWSTR_MAX + 256];
	char		 g[40], kw[MSYNC_KWSTR_MAX + 1];
	FILE		*fp;
	struct ment	 e;
	unsigned long long a, b, c, d, x;
	long long	 dt;
	long		 ns;
	unsigned int	 fl;
	int		 ok = 0;

	f->loaded = 1;
	cache_file(st, f->path, IX_SUFFIX(st), path, sizeof(path));
	if ((fp = fopen(path, "re")) == NULL)
		goto fresh;
	if (fgets(line, sizeof(line), fp) == NULL ||
	    strcmp(line, IX_MAGIC "\n") != 0)
		goto bad;
	if (fgets(line, sizeof(line), fp) == NULL || sscanf(line,
	    "mailbox %llu %llu %32s %llu", &a, &b, g, &c) != 4 ||
	    a == 0 || a > UINT32_MAX || b == 0 || b > UINT32_MAX ||
	    guid_from_hex(g, &f->guid) != 0)
		goto bad;
	f->uidvalidity = (uint32_t)a;
	f->uidnext = (uint32_t)b;
	f->modseq = c;
	if (fgets(line, sizeof(line), fp) == NULL || sscanf(line,
	    "file %llu %llu %llu %lld %ld %llu", &a, &b, &c, &dt, &ns,
	    &x) != 6)
		goto bad;
	f->dev = a;
	f->ino = b;
	f->fsize = c;
	f->msec = dt;
	f->mnsec = ns;
	f->valid = x == 1;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strcmp(line, "end\n") == 0) {
			ok = 1;
			break;
		}
		memset(&e, 0, sizeof(e));
		kw[0] = '\0';
		if (sscanf(line, "m %llu %llu %llu %llu %lld %u %32s %1024[^\n]",
		    &a, &b, &c, &d, &dt, &fl, g, kw) < 7 || a == 0 ||
		    a >= f->uidnext || fl > FLAG_ALL ||
		    guid_from_hex(g, &e.guid) != 0 || b > f->fsize ||
		    c > f->fsize - b || c == 0)
			goto bad;
		e.uid = (uint32_t)a;
		e.off = b;
		e.raw = c;
		e.size = d;
		e.date = dt;
		e.flags = (uint8_t)fl;
		if (kw[0] != '\0' && (e.kw = strdup(kw)) == NULL)
			goto bad;
		if (f->n > 0 && e.off < f->v[f->n - 1].off +
		    f->v[f->n - 1].raw) {
			free(e.kw);
			goto bad;
		}
		if (msync_grow(&f->v, &f->cap, f->n, sizeof(*f->v)) != 0) {
			free(e.kw);
			goto bad;
		}
		f->v[f->n++] = e;
	}
	if (!ok)
		goto bad;
	fclose(fp);
	return;
bad:
	WARNX("ignoring the damaged index of '%s'", log_esc(f->path, 300));
	fclose(fp);
	for (size_t i = 0; i < f->n; i++)
		ent_free(&f->v[i]);
	f->n = 0;
	a = f->uidvalidity;
	f->uidvalidity = new_uidvalidity((uint32_t)a);
	f->uidnext = 1;
	f->valid = 0;
	f->ixdirty = 1;
	return;
fresh:
	f->uidvalidity = new_uidvalidity(0);
	f->uidnext = 1;
	(void)guid_random(&f->guid);
	f->valid = 0;
	f->ixdirty = 1;
}

/* Writes f's index atomically (temporary file, fsync, rename). */
static int
folder_save_index(struct mbox *st, struct mfolder *f)
{
	char	 path[MSYNC_PATH_MAX + 64], tmp[MSYNC_PATH_MAX + 80];
	char	 g[33];
	FILE	*fp;
	int	 fd, r = 0;

	if (!f->ixdirty)
		return 0;
	cache_file(st, f->path, IX_SUFFIX(st), path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1 || (fp = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		return MSYNC_ERR_IO;
	}
	guid_hex(&f->guid, g);
	fprintf(fp, "%s\nmailbox %" PRIu32 " %" PRIu32 " %s %" PRIu64 "\n",
	    IX_MAGIC, f->uidvalidity, f->uidnext, g, f->modseq);
	fprintf(fp, "file %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRId64
	    " %ld %d\n", f->dev, f->ino, f->fsize, f->msec, f->mnsec,
	    f->valid && !f->pending);
	for (size_t i = 0; i < f->n; i++) {
		const struct ment	*e = &f->v[i];

		guid_hex(&e->guid, g);
		fprintf(fp, "m %" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu64
		    " %" PRId64 " %u %s%s%s\n", e->uid, e->off, e->raw,
		    e->size, e->date, e->flags, g, e->kw != NULL ? " " : "",
		    e->kw != NULL ? e->kw : "");
	}
	fprintf(fp, "end\n");
	if (fflush(fp) != 0 || fsync(fileno(fp)) != 0)
		r = MSYNC_ERR_IO;
	if (fclose(fp) != 0)
		r = MSYNC_ERR_IO;
	if (r == 0 && rename(tmp, path) != 0)
		r = MSYNC_ERR_IO;
	if (r != 0)
		(void)unlink(tmp);
	else
		f->ixdirty = 0;
	return r;
}

/* Scanning. */

/*
 * The GUID sink of a scan.  The parser hands on a line at a time; the
 * hash gets them in blocks (one XXH3 update and one scan for '\r' per
 * line were a sixth of a conversion's instructions).  Hashing is
 * streaming, so the GUID is the same.
 */
struct gsink {
	struct guid_ctx	*gc;
	size_t		 n;
	uint8_t		 b[16384];
};

static void
gsink_flush(struct gsink *g)
{
	if (g->n > 0)
		guid_update(g->gc, g->b, g->n);
	g->n = 0;
}

static void
sink_guid(void *arg, const void *p, size_t n)
{
	struct gsink	*g = arg;

	if (n > sizeof(g->b) - g->n) {
		gsink_flush(g);
		if (n >= sizeof(g->b)) {
			guid_update(g->gc, p, n);
			return;
		}
	}
	memcpy(g->b + g->n, p, n);
	g->n += n;
}

/* Order of entries by GUID, then offset, for matching. */
static int
ent_guid_cmp(const void *a, const void *b)
{
	const struct ment	*x = *(const struct ment *const *)a;
	const struct ment	*y = *(const struct ment *const *)b;
	int			 c = guid_cmp(&x->guid, &y->guid);

	if (c != 0)
		return c;
	return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * Reads the messages of the file open on fd from offset from (a "From "
 * line or the end) up to limit into the array *nv (*nn used, *ncap
 * allocated).  Problems are warned about.
 */
static int
parse_from(struct mfolder *f, int fd, uint64_t from,
    uint64_t limit, struct ment **nv, size_t *nn, size_t *ncap)
{
	int			 nodate = 0;	/* warned about a missing date */
	struct mboxfmt_src	 src = { fd_pread, &fd };
	struct mboxfmt		*p = NULL;
	struct mboxfmt_msg	 m;
	struct guid_ctx		*gc = NULL;
	struct gsink		*gs;
	struct ment		 e;
	struct stat		 sb;
	int			 r;

	if ((r = mboxfmt_new(&src, f->format, from, limit, &p)) != 0)
		return r;
	if ((gc = guid_ctx_new()) == NULL ||
	    (gs = calloc(1, sizeof(*gs))) == NULL) {
		guid_ctx_free(gc);
		mboxfmt_free(p);
		return MSYNC_ERR_NOMEM;
	}
	for (;;) {
		if ((r = mboxfmt_begin(p, &m)) != 0) {
			if (r == 1)
				r = 0;
			else if (r == MSYNC_ERR_BADDATA && !f->quiet)
				WARNX("'%s' is not an mbox file (no \"From \" "
				    "line at byte %" PRIu64 ")",
				    log_esc(f->path, 300), m.off);
			break;
		}
		gs->gc = gc;
		gs->n = 0;
		while ((r = mboxfmt_step(p, &m, sink_guid, gs)) == 0)
			;
		if (r < 0)
			break;
		gsink_flush(gs);
		memset(&e, 0, sizeof(e));
		guid_final(gc, &e.guid);
		guid_ctx_free(gc);
		if ((gc = guid_ctx_new()) == NULL) {
			r = MSYNC_ERR_NOMEM;
			break;
		}
		if (m.pseudo)
			continue;	/* Dovecot's folder data: not mail */
		if (m.size == 0 || m.size > MSYNC_MSG_SIZE_MAX) {
			if (!f->quiet)
				WARNX("skipping the %s message at byte %" PRIu64
				    " of '%s'", m.size == 0 ? "empty" :
				    "oversized", m.off, log_esc(f->path, 300));
			continue;
		}
		if (m.nul && !f->quiet)
			WARNX("the message at byte %" PRIu64 " of '%s' holds "
			    "NUL bytes", m.off, log_esc(f->path, 300));
		if (m.date < 0) {
			if (!nodate && !f->quiet)
				WARNX("'%s': a \"From \" line without a date "
				    "(byte %" PRIu64 "); using the file's",
				    log_esc(f->path, 300), m.off);
			nodate = 1;
			m.date = fstat(fd, &sb) == 0 ? (int64_t)sb.st_mtime :
			    0;
		}
		e.off = m.off;
		e.raw = m.next - m.off;
		e.size = m.size;
		e.date = m.date;
		e.flags = m.flags;
		if (m.kw[0] != '\0' && (e.kw = strdup(m.kw)) == NULL) {
			r = MSYNC_ERR_NOMEM;
			break;
		}
		if (*nn >= MSYNC_MSGS_MAX ||
		    msync_grow(nv, ncap, *nn, sizeof(**nv)) != 0) {
			free(e.kw);
			r = MSYNC_ERR_NOMEM;
			break;
		}
		(*nv)[(*nn)++] = e;
	}
	free(gs);
	guid_ctx_free(gc);
	mboxfmt_free(p);
	f->quiet = 1;	/* once per run is enough */
	return r;
}

/*
 * Gives the newly read entries nv their UIDs: the UID of an old entry
 * with the same GUID (each used once, in file order), else a new one.
 * Replaces f's entries.  Bumps modseq if anything changed.
 */
static int
adopt(struct mfolder *f, struct ment *nv, size_t nn)
{
	struct ment	**ov = NULL, key, *kp;
	size_t		 lo, hi, mid;
	uint8_t		*used = NULL;
	int		 changed = nn != f->n;

	if (f->n > 0 && ((ov = calloc(f->n, sizeof(*ov))) == NULL ||
	    (used = calloc(f->n, 1)) == NULL)) {
		free(ov);
		return MSYNC_ERR_NOMEM;
	}
	for (size_t i = 0; i < f->n; i++)
		ov[i] = &f->v[i];
	if (f->n > 1)
		msync_sort(ov, f->n, sizeof(*ov), ent_guid_cmp);
	for (size_t i = 0; i < nn; i++) {
		key = nv[i];
		key.off = 0;
		kp = &key;
		lo = 0;
		hi = f->n;
		while (lo < hi) {	/* the first with this GUID */
			mid = (lo + hi) / 2;
			if (ent_guid_cmp(&ov[mid], &kp) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		while (lo < f->n && used[lo] &&
		    guid_cmp(&ov[lo]->guid, &nv[i].guid) == 0)
			lo++;
		if (lo < f->n && guid_cmp(&ov[lo]->guid, &nv[i].guid) == 0) {
			used[lo] = 1;
			nv[i].uid = ov[lo]->uid;
			if (ov[lo]->flags != nv[i].flags ||
			    (ov[lo]->kw == NULL) != (nv[i].kw == NULL) ||
			    (ov[lo]->kw != NULL &&
			    strcmp(ov[lo]->kw, nv[i].kw) != 0))
				changed = 1;
		} else {
			nv[i].uid = f->uidnext++;
			changed = 1;
		}
	}
	free(ov);
	free(used);
	for (size_t i = 0; i < f->n; i++)
		ent_free(&f->v[i]);
	free(f->v);
	f->v = nv;
	f->n = f->cap = nn;
	if (changed)
		f->modseq++;
	f->ixdirty = 1;
	return 0;
}

/*
 * 1 if the last known message is still the same bytes at its place, and
 * what follows it (if anything) starts a message.
 */
static int
last_still_there(struct mfolder *f, int fd)
{
	struct ment	*nv = NULL, *last;
	size_t		 nn = 0, ncap = 0, got = 0;
	char		 b[5];
	int		 same, quiet = f->quiet, r;

	if (f->n == 0)
		return f->fsize == 0;
	last = &f->v[f->n - 1];
	if (fd_pread(&fd, b, 5, last->off + last->raw, &got) != 0 ||
	    (got != 0 && (got != 5 || memcmp(b, "From ", 5) != 0)))
		return 0;
	f->quiet = 1;	/* the full read that may follow warns */
	r = parse_from(f, fd, last->off, last->off + last->raw, &nv, &nn,
	    &ncap);
	f->quiet = quiet;
	if (r != 0 || nn != 1) {
		for (size_t i = 0; i < nn; i++)
			ent_free(&nv[i]);
		free(nv);
		return 0;
	}
	same = guid_cmp(&nv[0].guid, &last->guid) == 0 &&
	    nv[0].raw == last->raw;
	for (size_t i = 0; i < nn; i++)
		ent_free(&nv[i]);
	free(nv);
	return same;
}

/*
 * Brings f up to date with its file (see the top of this file).  force
 * reads it even when it looks unchanged.  Holds the file's fcntl read
 * lock while reading, unless the caller holds its write lock (wfd).
 */
static int
folder_refresh(struct mbox *st, struct mfolder *f, int force)
{
	struct stat	 sb;
	struct ment	*nv = NULL;
	size_t		 nn = 0, ncap = 0;
	struct timespec	 now;
	int		 fd, r, dot = 0, locked = 0;

	if (!f->loaded)
		index_load(st, f);
	if (f->pending && (r = folder_flush(st, f)) != 0)
		return r;
	fd = f->wfd >= 0 ? f->wfd : open(f->path, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		r = MSYNC_ERR_IO;
		if (fd != f->wfd && S_ISDIR(sb.st_mode))
			WARNX("'%s' is a directory, not an mbox file",
			    log_esc(f->path, 300));
		goto out;
	}
	if (!force && (uint64_t)sb.st_dev == f->dev &&
	    (uint64_t)sb.st_ino == f->ino &&
	    (uint64_t)sb.st_size == f->fsize &&
	    (int64_t)sb.st_mtim.tv_sec == f->msec &&
	    sb.st_mtim.tv_nsec == f->mnsec &&
	    (f->valid || last_still_there(f, fd))) {
		/*
		 * Unchanged: the stat was all it cost.  A stamp taken too
		 * soon after the last change (this run's own appends) is
		 * backed by its last message being where it was, and is
		 * trusted fully once it is old enough.
		 */
		if (!f->valid && time(NULL) - sb.st_mtim.tv_sec >= RACY_SEC) {
			f->valid = 1;
			f->ixdirty = 1;
		}
		r = 0;
		f->scanned = 1;
		goto out;
	}
	/* Changed: first what a run that died appending may have left. */
	if ((r = append_repair(st, f, fd)) != 0)
		goto out;
	if (fd != f->wfd) {
		if ((r = lock_file(st, f->path, fd, F_RDLCK, &dot)) != 0)
			goto out;
		locked = 1;
	}
	if (fstat(fd, &sb) == -1) {	/* under the lock, and repaired */
		r = MSYNC_ERR_IO;
		goto out;
	}
	if (!force && (uint64_t)sb.st_dev == f->dev &&
	    (uint64_t)sb.st_ino == f->ino &&
	    (uint64_t)sb.st_size > f->fsize && last_still_there(f, fd)) {
		/* Only grown (a delivery): read from the last known end. */
		if ((r = parse_from(f, fd, f->fsize, UINT64_MAX, &nv, &nn,
		    &ncap)) != 0)
			goto out;
		for (size_t i = 0; i < nn; i++) {
			nv[i].uid = f->uidnext++;
			if (msync_grow(&f->v, &f->cap, f->n,
			    sizeof(*f->v)) != 0) {
				r = MSYNC_ERR_NOMEM;
				for (; i < nn; i++)
					ent_free(&nv[i]);
				goto out;
			}
			f->v[f->n++] = nv[i];
		}
		free(nv);
		nv = NULL;
		nn = 0;
		f->modseq++;
		f->ixdirty = 1;
	} else {
		if ((r = parse_from(f, fd, 0, UINT64_MAX, &nv, &nn,
		    &ncap)) != 0)
			goto out;
		if ((r = adopt(f, nv, nn)) != 0)
			goto out;
		nv = NULL;
		nn = 0;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	f->dev = (uint64_t)sb.st_dev;
	f->ino = (uint64_t)sb.st_ino;
	f->fsize = (uint64_t)sb.st_size;
	f->msec = (int64_t)sb.st_mtim.tv_sec;
	f->mnsec = sb.st_mtim.tv_nsec;
	/* A change in the same second could hide behind this mtime. */
	f->valid = now.tv_sec - sb.st_mtim.tv_sec >= RACY_SEC;
	f->ixdirty = 1;
	f->scanned = 1;
out:
	for (size_t i = 0; i < nn; i++)
		ent_free(&nv[i]);
	free(nv);
	if (locked)
		unlock_file(f->path, fd, dot);
	if (fd != f->wfd)
		close(fd);
	return r;
}

/* Folders. */

/* The file of mailbox name, or NULL (*r set) if it cannot have one. */
static char *
name_path(struct mbox *st, const char *name, int *r)
{
	char	*out = NULL, *s;
	size_t	 cap;

	*r = MSYNC_ERR_NOMEM;
	if (!names_valid(name, strlen(name))) {
		*r = MSYNC_ERR_BADNAME;
		return NULL;
	}
	if (strcmp(name, "INBOX") == 0) {
		if (st->inbox != NULL)
			return strdup(st->inbox);
		if (!st->isdir)
			return strdup(st->root);
		if (asprintf(&out, "%s/%s", st->root,
		    st->o.layout == LAYOUT_MBOX_TB ? "Inbox" : "INBOX") < 0)
			return NULL;
		return out;
	}
	if (!st->isdir) {
		*r = MSYNC_ERR_BADNAME;	/* a single file holds INBOX only */
		return NULL;
	}
	if (st->o.layout != LAYOUT_MBOX_TB) {
		if (asprintf(&out, "%s/%s", st->root, name) < 0)
			return NULL;
		return out;
	}
	/* Thunderbird: "A/B" is A.sbd/B. */
	cap = strlen(st->root) + 2 + strlen(name) * 2 + 8 * DEPTH_MAX;
	if ((out = malloc(cap)) == NULL)
		return NULL;
	s = out + snprintf(out, cap, "%s/", st->root);
	for (const char *p = name; *p != '\0'; p++) {
		if (*p == '/') {
			memcpy(s, ".sbd/", 5);
			s += 5;
		} else
			*s++ = *p;
	}
	*s = '\0';
	return out;
}

static struct mfolder *
folder_find(struct mbox *st, const char *name)
{
	for (size_t i = 0; i < st->nf; i++)
		if (strcmp(st->f[i]->name, name) == 0)
			return st->f[i];
	return NULL;
}

/* The folder of name, known or new (not read yet). */
static int
folder_get(struct mbox *st, const char *name, struct mfolder **out)
{
	struct mfolder	*f;
	int		 r;

	if ((*out = folder_find(st, name)) != NULL)
		return 0;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return MSYNC_ERR_NOMEM;
	f->wfd = -1;
	f->jfd = -1;
	f->rfd = -1;
	f->format = st->o.mbox_format;
	if ((f->name = strdup(name)) == NULL ||
	    (f->path = name_path(st, name, &r)) == NULL) {
		if (f->name == NULL)
			r = MSYNC_ERR_NOMEM;
		folder_free(f);
		return r;
	}
	if (st->nf >= MSYNC_MBOX_MAX ||
	    msync_grow(&st->f, &st->capf, st->nf, sizeof(*st->f)) != 0) {
		folder_free(f);
		return MSYNC_ERR_NOMEM;
	}
	st->f[st->nf++] = f;
	*out = f;
	return 0;
}

/* The folder of name, read if this session has not read it. */
static int
folder_open(struct mbox *st, const char *name, struct mfolder **out)
{
	int	r;

	if ((r = folder_get(st, name, out)) != 0)
		return r;
	if (!(*out)->scanned)
		return folder_refresh(st, *out, st->o.full);
	return 0;
}

/* Appends. */

/*
 * The append journal: while msync appends to an mbox file, a small file
 * in the cache says where its appends began (the file's size before
 * them), the file's inode, where the write(2) being made begins ("at")
 * and ends ("end"), the XXH3-64 of that write's bytes ("sum"), and, after
 * this header, a copy of those bytes.  It is made durable before the
 * first byte is appended and removed once the appends are fsynced, so a
 * journal found by a later run means a run died in the middle of
 * appending: append_repair takes what it wrote off again (those
 * messages were never counted: the sync state was not saved, they still
 * are on the other side and come again).  The copy and then the header
 * are updated, without an fsync, before every write(2): together they
 * tell the run's own bytes from a delivery made after the crash, even
 * when the write was cut short and the delivery begins inside it.  A
 * copy written but not yet described by the header fails the sum and is
 * not used (then the file holds the previous write whole, which is what
 * the header describes).  Version 1 journals (no at, sum or copy) are
 * still read.
 */
#define JOURNAL_MAGIC1	"msync-mbox-append 1\n"
#define JOURNAL_MAGIC	"msync-mbox-append 2\n"
#define JOURNAL_LINE	27
#define JOURNAL_AT	(sizeof(JOURNAL_MAGIC) - 1 + 2 * JOURNAL_LINE)
#define JOURNAL_LEN	(sizeof(JOURNAL_MAGIC) - 1 + 5 * JOURNAL_LINE)
#define JOURNAL_LEN1	(sizeof(JOURNAL_MAGIC1) - 1 + 3 * JOURNAL_LINE)
#define JOURNAL_COPY_MAX (64 << 20)	/* a larger copy is not believed */

/* Formats the journal header: five fixed-width lines after the magic. */
static void
journal_fmt(char out[JOURNAL_LEN + 1], uint64_t ino, uint64_t start,
    uint64_t at, uint64_t end, uint64_t sum)
{
	snprintf(out, JOURNAL_LEN + 1, "%sino   %020" PRIu64 "\n"
	    "start %020" PRIu64 "\nat    %020" PRIu64 "\n"
	    "end   %020" PRIu64 "\nsum   %020" PRIu64 "\n", JOURNAL_MAGIC,
	    ino, start, at, end, sum);
}

/*
 * Test hook (MSYNC_TEST_MBOX_KILL=N:K): the Nth write of appended data
 * in this process writes only its first K bytes (all of them if K is
 * -1), then the process kills itself, as a SIGKILL or a power cut in
 * the middle of an append would leave the file.
 */
static void
test_kill(int fd, const uint8_t *p, size_t len)
{
	static long	 n;
	const char	*e = getenv("MSYNC_TEST_MBOX_KILL");
	long		 at, k;

	if (e == NULL || sscanf(e, "%ld:%ld", &at, &k) != 2 || ++n != at)
		return;
	if (k < 0 || (size_t)k > len)
		k = (long)len;
	(void)write_all(fd, p, (size_t)k);
	raise(SIGKILL);
}

/* Writes the collected appends of f to its file. */
static int
wbuf_write(struct mfolder *f)
{
	char	 j[JOURNAL_LEN + 1];
	int	 r;

	if (f->wbuf.failed)
		return MSYNC_ERR_NOMEM;
	if (f->wbuf.len == 0)
		return 0;
	if (f->jfd >= 0) {
		/* The copy first, then the header that describes it. */
		journal_fmt(j, f->ino, f->fsize, f->wend - f->wbuf.len,
		    f->wend, (uint64_t)XXH3_64bits(f->wbuf.p, f->wbuf.len));
		if (pwrite(f->jfd, f->wbuf.p, f->wbuf.len, (off_t)JOURNAL_LEN)
		    != (ssize_t)f->wbuf.len ||
		    pwrite(f->jfd, j + JOURNAL_AT, JOURNAL_LEN - JOURNAL_AT,
		    (off_t)JOURNAL_AT) != (ssize_t)(JOURNAL_LEN - JOURNAL_AT))
			return MSYNC_ERR_IO;
	}
	test_kill(f->wfd, f->wbuf.p, f->wbuf.len);
	r = write_all(f->wfd, f->wbuf.p, f->wbuf.len);
	f->wbuf.len = 0;
	return r;
}

/*
 * Starts f's journal: appends begin at f->fsize of inode f->ino.
 * Durable (file and directory fsynced) before anything is appended.
 */
static int
journal_begin(struct mbox *st, struct mfolder *f)
{
	char	 path[MSYNC_PATH_MAX + 64], j[JOURNAL_LEN + 1];
	int	 dfd, r = 0;

	cache_file(st, f->path, ".append", path, sizeof(path));
	if ((f->jfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		return MSYNC_ERR_IO;
	journal_fmt(j, f->ino, f->fsize, f->fsize, f->fsize,
	    (uint64_t)XXH3_64bits(NULL, 0));
	if (write_all(f->jfd, j, JOURNAL_LEN) != 0 || fsync(f->jfd) != 0)
		r = MSYNC_ERR_IO;
	if (r == 0 && (dfd = open(st->cache, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) >= 0) {
		if (fsync(dfd) != 0)
			r = MSYNC_ERR_IO;
		close(dfd);
	}
	if (r != 0) {
		close(f->jfd);
		f->jfd = -1;
		(void)unlink(path);
	}
	return r;
}

/* Ends f's journal: its appends are durable, or were taken back. */
static void
journal_end(struct mbox *st, struct mfolder *f)
{
	char	 path[MSYNC_PATH_MAX + 64];

	if (f->jfd < 0)
		return;
	close(f->jfd);
	f->jfd = -1;
	cache_file(st, f->path, ".append", path, sizeof(path));
	if (unlink(path) != 0 && errno != ENOENT)
		WARN("cannot remove '%s'", log_esc(path, 300));
}

/*
 * Copies bytes [from, to) of fd to the file out (made, fsynced).
 * Returns 0 or MSYNC_ERR_IO.
 */
static int
copy_range(int fd, uint64_t from, uint64_t to, const char *out)
{
	uint8_t	 buf[65536];
	size_t	 got;
	int	 ofd, r = 0;

	if ((ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		return MSYNC_ERR_IO;
	while (r == 0 && from < to) {
		size_t	 want = to - from < sizeof(buf) ? (size_t)(to - from) :
		    sizeof(buf);

		if ((r = fd_pread(&fd, buf, want, from, &got)) != 0)
			break;
		if (got == 0) {
			r = MSYNC_ERR_IO;
			break;
		}
		r = write_all(ofd, buf, got);
		from += got;
	}
	if (r == 0 && fsync(ofd) != 0)
		r = MSYNC_ERR_IO;
	close(ofd);
	return r;
}

/* Reads up to n bytes of fd at off into buf; *got short only at the end. */
static int
pread_full(int fd, uint8_t *buf, size_t n, uint64_t off, size_t *got)
{
	size_t	 g;
	int	 r;

	*got = 0;
	while (*got < n) {
		if ((r = fd_pread(&fd, buf + *got, n - *got, off + *got,
		    &g)) != 0)
			return r;
		if (g == 0)
			break;
		*got += g;
	}
	return 0;
}

/*
 * Reads f's append journal at path.  Returns 1 with *ino, *start, *at,
 * *end filled and *copy (malloc'd, end - at bytes, or NULL when the
 * journal has no copy that its sum vouches for), 0 if the journal is not
 * one that was made durable (nothing was appended after it), or a
 * negative MSYNC_ERR_*.
 */
static int
journal_read(const char *path, uint64_t *ino, uint64_t *start,
    uint64_t *at, uint64_t *end, uint8_t **copy)
{
	char		 j[JOURNAL_LEN + 1];
	unsigned long long a, b, c, d, e;
	size_t		 got;
	int		 jfd, r, v2;

	*copy = NULL;
	if ((jfd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return errno == ENOENT ? 0 : MSYNC_ERR_IO;
	if ((r = pread_full(jfd, (uint8_t *)j, JOURNAL_LEN, 0, &got)) != 0) {
		close(jfd);
		return r;
	}
	j[got] = '\0';
	v2 = got == JOURNAL_LEN &&
	    strncmp(j, JOURNAL_MAGIC, sizeof(JOURNAL_MAGIC) - 1) == 0 &&
	    sscanf(j + sizeof(JOURNAL_MAGIC) - 1, "ino %llu start %llu "
	    "at %llu end %llu sum %llu", &a, &b, &c, &d, &e) == 5 &&
	    b <= c && c <= d;
	if (!v2 && (got < JOURNAL_LEN1 ||
	    strncmp(j, JOURNAL_MAGIC1, sizeof(JOURNAL_MAGIC1) - 1) != 0 ||
	    sscanf(j + sizeof(JOURNAL_MAGIC1) - 1, "ino %llu start %llu "
	    "end %llu", &a, &b, &d) != 3 || d < b)) {
		close(jfd);
		return 0;
	}
	*ino = a;
	*start = b;
	*end = d;
	*at = v2 ? c : d;
	if (v2 && d - c <= JOURNAL_COPY_MAX &&
	    (*copy = malloc(d - c + 1)) != NULL) {
		if (pread_full(jfd, *copy, d - c, JOURNAL_LEN, &got) != 0 ||
		    got != d - c ||
		    (uint64_t)XXH3_64bits(*copy, got) != (uint64_t)e) {
			free(*copy);
			*copy = NULL;
		}
	}
	close(jfd);
	return 1;
}

/*
 * Where a delivery made after the crash begins in f's file (fd, size
 * bytes), given the journal's last write [at, end) and its copy: the
 * file is compared with the copy from at; where they part (m), or where
 * the file ends first, the run's bytes have ended at the latest.  The
 * delivery began at or before m, with a "From " line, perhaps after
 * newlines of its own (an agent that ends the line it found cut): the
 * last such start at or before m, if the file matches the copy past it
 * only inside that "From " line.  Sets *tail to its "From " line, or to
 * size if the file holds nothing but the run's bytes.  Returns 0, 2 if
 * the write was whole (the caller looks right after it), 1 if no
 * delivery could be found where one must be, or a negative MSYNC_ERR_*.
 */
#define DELIVERY_NL_MAX	4096	/* newlines believed before a "From " */
static int
delivery_find(int fd, uint64_t size, uint64_t at, uint64_t end,
    const uint8_t *copy, uint64_t *tail)
{
	uint8_t		*b;
	uint64_t	 lim = size < end ? size : end, m, top;
	size_t		 n, got, i, nn;
	int		 r;

	*tail = size;
	if (at >= size)
		return 0;
	top = lim + 5 + DELIVERY_NL_MAX;
	n = (size_t)((size < top ? size : top) - at);
	if ((b = malloc(n + 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	if ((r = pread_full(fd, b, n, at, &got)) != 0 || got != n) {
		free(b);
		return r != 0 ? r : MSYNC_ERR_IO;
	}
	for (i = 0; at + i < lim && b[i] == copy[i]; i++)
		;
	m = at + i;
	if (m == size) {		/* all of it is the run's */
		free(b);
		return 0;
	}
	if (m == end) {			/* the write was whole: after it */
		free(b);
		*tail = end;
		return 2;
	}
	/* nn: the first byte at or after i that is not a newline. */
	r = 1;
	for (nn = n, i = n; i-- > 0; ) {
		if (b[i] != '\n')
			nn = i;
		if (at + i > m)
			continue;
		if (nn + 5 > n || memcmp(b + nn, "From ", 5) != 0)
			continue;
		/*
		 * A delivery's bytes can match the run's only inside its
		 * "From " line (the same "From " and perhaps the sender):
		 * a match across a newline is the run's own message, and
		 * what follows it no delivery.
		 */
		if (at + nn < m && memchr(b + nn, '\n', (size_t)(m - at -
		    nn)) != NULL)
			break;
		*tail = at + nn;
		r = 0;
		break;
	}
	free(b);
	return r;
}

/*
 * Repairs what a run that died appending to f left (see the journal
 * above); fd is f's file, open for reading, or f->wfd.  Called with the
 * file changed since the index.  The unfinished appends (from the
 * journal's start) are first copied to "<cache>/<hash>.unfinished-TIME"
 * (nothing is lost whatever follows), then cut off the file; a delivery
 * made after the crash is put back after the cut.  It begins where the
 * run's bytes end: where the file stops matching the journal's copy of
 * the last write, or right after that write if it was whole.  Where no
 * delivery's "From " line is found there, the file is left as it is,
 * with a warning.  A read-only store is not repaired: the mailbox is an
 * error until a run that may write it.  Returns 0 or a negative
 * MSYNC_ERR_*.
 */
static int
append_repair(struct mbox *st, struct mfolder *f, int fd)
{
	char		 path[MSYNC_PATH_MAX + 64], q[MSYNC_PATH_MAX + 96];
	uint64_t	 ino, start, at, end;
	struct stat	 sb;
	uint8_t		 head[8], *copy = NULL;
	uint64_t	 tail = 0, size;
	size_t		 got;
	int		 wfd = fd, dot = 0, locked = 0, r = 0, ok;
	int		 putback = 0;

	cache_file(st, f->path, ".append", path, sizeof(path));
	if ((r = journal_read(path, &ino, &start, &at, &end, &copy)) <= 0) {
		/* Never made durable: nothing was appended after it. */
		if (r == 0 && unlink(path) != 0 && errno != ENOENT)
			return MSYNC_ERR_IO;
		return r;
	}
	r = 0;
	if (st->o.readonly) {
		WARNX("'%s' ends in appends of an msync run that did not "
		    "finish (from byte %llu); a run that may write it "
		    "repairs it", log_esc(f->path, 300),
		    (unsigned long long)start);
		free(copy);
		return MSYNC_ERR_BADDATA;
	}
	if (fd != f->wfd) {
		if ((wfd = open(f->path, O_RDWR | O_APPEND | O_CLOEXEC |
		    O_NOFOLLOW | O_NONBLOCK)) == -1) {
			free(copy);
			return errno == ENOENT ? MSYNC_ERR_NOTFOUND :
			    MSYNC_ERR_IO;
		}
		if ((r = lock_file(st, f->path, wfd, F_WRLCK, &dot)) != 0) {
			close(wfd);
			free(copy);
			return r;
		}
		locked = 1;
	}
	if (fstat(wfd, &sb) == -1) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	size = (uint64_t)sb.st_size;
	if ((uint64_t)sb.st_ino != ino || size <= start) {
		/* Replaced or cut since: nothing of the run's is left here. */
		if ((uint64_t)sb.st_ino != ino && size > start)
			WARNX("'%s' was replaced after an msync run died "
			    "appending to it; left as it is",
			    log_esc(f->path, 300));
		goto done;
	}
	snprintf(q, sizeof(q), "%.*s.unfinished-%lld", (int)(strlen(path) -
	    strlen(".append")), path, (long long)time(NULL));
	if ((r = copy_range(wfd, start, size, q)) != 0) {
		WARNX("cannot save the unfinished end of '%s' to '%s'",
		    log_esc(f->path, 300), log_esc(q, 300));
		goto out;
	}
	if (copy != NULL) {
		/* Where do the run's bytes end? */
		if ((r = delivery_find(wfd, size, at, end, copy, &tail)) < 0)
			goto out;
		ok = r != 1;
		putback = r == 0 && tail < size;
		r = r == 2 ? 2 : 0;
	} else
		r = (ok = size <= end) ? 0 : 2;
	if (r == 2) {
		/* A delivery after the whole write: does it start there? */
		tail = end;
		if ((r = fd_pread(&wfd, head, sizeof(head), tail, &got)) != 0)
			goto out;
		while (got > 0 && head[0] == '\n' && tail < size) {
			tail++;
			if ((r = fd_pread(&wfd, head, sizeof(head), tail,
			    &got)) != 0)
				goto out;
		}
		ok = putback = got >= 5 && memcmp(head, "From ", 5) == 0;
	}
	if (!ok) {
		WARNX("'%s': an msync run died appending to it and more was "
		    "appended after, not starting with a \"From \" line; left "
		    "as it is (its end from byte %llu is copied to '%s')",
		    log_esc(f->path, 300), (unsigned long long)start,
		    log_esc(q, 300));
		goto done;
	}
	if (ftruncate(wfd, (off_t)start) != 0) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	if (putback) {
		/* Put the delivery back, behind an empty line. */
		uint8_t	 buf[65536], last[2] = { '\n', '\n' };
		int	 qfd;
		uint64_t off = tail - start;

		if (start >= 2)
			(void)fd_pread(&wfd, last, 2, start - 2, &got);
		r = 0;
		if (start > 0 && last[1] != '\n')
			r = write_all(wfd, "\n\n", 2);
		else if (start > 1 && last[0] != '\n')
			r = write_all(wfd, "\n", 1);
		if (r == 0 && (qfd = open(q, O_RDONLY | O_CLOEXEC)) == -1)
			r = MSYNC_ERR_IO;
		else if (r == 0) {
			while (r == 0 && (r = fd_pread(&qfd, buf, sizeof(buf),
			    off, &got)) == 0 && got > 0) {
				if (write_all(wfd, buf, got) != 0)
					r = MSYNC_ERR_IO;
				off += got;
			}
			close(qfd);
		}
		if (r != 0) {
			WARNX("cannot put back the end of '%s': it is in '%s'",
			    log_esc(f->path, 300), log_esc(q, 300));
			goto out;
		}
	}
	if (fsync(wfd) != 0) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	WARNX("'%s': an msync run died appending to it; its unfinished "
	    "part (%llu bytes from byte %llu) is cut off%s (a copy is in "
	    "'%s'); those messages are copied again", log_esc(f->path, 300),
	    (unsigned long long)((putback ? tail : size) - start),
	    (unsigned long long)start, putback ? " and what was delivered "
	    "after it is kept" : "", log_esc(q, 300));
done:
	if (unlink(path) != 0 && errno != ENOENT)
		r = MSYNC_ERR_IO;
out:
	free(copy);
	if (locked)
		unlock_file(f->path, wfd, dot);
	if (wfd != fd)
		close(wfd);
	return r;
}

/*
 * Ends the appends to f: writes and fsyncs them, or, if anything failed,
 * cuts the file back to where they began, so no part of a message stays.
 * Releases the locks.
 */
static int
append_end(struct mbox *st, struct mfolder *f, int ok)
{
	struct stat	 sb;
	int		 r = 0;

	if (f->wfd < 0)
		return 0;
	if (ok && (r = wbuf_write(f)) == 0 && fsync(f->wfd) != 0)
		r = MSYNC_ERR_IO;
	if (!ok || r != 0) {
		/*
		 * Drop what this run added (entries past fsize).  If that
		 * fails, the journal stays for the next run to repair.
		 */
		if (ftruncate(f->wfd, (off_t)f->fsize) != 0 ||
		    fsync(f->wfd) != 0) {
			WARN("cannot cut '%s' back", log_esc(f->path, 300));
			if (f->jfd >= 0)
				close(f->jfd);
			f->jfd = -1;
		}
		journal_end(st, f);
		while (f->n > 0 && f->v[f->n - 1].off >= f->fsize)
			ent_free(&f->v[--f->n]);
		if (r == 0)
			r = MSYNC_ERR_IO;
	} else if (journal_end(st, f), fstat(f->wfd, &sb) == 0) {
		f->fsize = (uint64_t)sb.st_size;
		f->msec = (int64_t)sb.st_mtim.tv_sec;
		f->mnsec = sb.st_mtim.tv_nsec;
		f->valid = time(NULL) - sb.st_mtim.tv_sec >= RACY_SEC;
	}
	f->wbuf.len = 0;
	f->ixdirty = 1;
	unlock_file(f->path, f->wfd, f->dotlock);
	close(f->wfd);
	f->wfd = -1;
	f->dotlock = 0;
	if (r == 0)
		r = folder_save_index(st, f);
	return r;
}

/*
 * Takes back a message being appended from offset start: out of the
 * buffer, or off the end of the file if part of it was written.
 */
static void
append_undo(struct mfolder *f, uint64_t start)
{
	uint64_t	 infile = f->wend - f->wbuf.len;

	if (start >= infile)
		f->wbuf.len = (size_t)(start - infile);
	else {
		f->wbuf.len = 0;
		if (ftruncate(f->wfd, (off_t)start) != 0)
			WARN("cannot cut '%s' back", log_esc(f->path, 300));
	}
	f->wbuf.failed = 0;
	f->wend = start;
}

/* Ends the appends of every folder but keep. */
static int
appends_end(struct mbox *st, struct mfolder *keep)
{
	int	r = 0, r2;

	for (size_t i = 0; i < st->nf; i++)
		if (st->f[i] != keep && st->f[i]->wfd >= 0 &&
		    (r2 = append_end(st, st->f[i], 1)) != 0 && r == 0)
			r = r2;
	return r;
}

/*
 * Starts appending to f: opens and locks its file, reads what others
 * added, and sees that it ends in an empty line.
 */
static int
append_begin(struct mbox *st, struct mfolder *f)
{
	struct stat	 sb;
	uint8_t		 tail[2];
	size_t		 got = 0;
	int		 fd, r, dot = 0;

	if (f->wfd >= 0)
		return 0;
	if ((r = appends_end(st, f)) != 0)
		return r;
	if ((fd = open(f->path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK)) == -1)
		return errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
	if ((r = lock_file(st, f->path, fd, F_WRLCK, &dot)) != 0) {
		close(fd);
		return r;
	}
	f->wfd = fd;
	f->dotlock = dot;
	if ((r = folder_refresh(st, f, 0)) != 0)
		goto fail;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		r = MSYNC_ERR_IO;
		goto fail;
	}
	f->wend = (uint64_t)sb.st_size;
	if (f->wend != f->fsize) {	/* the refresh saw it so, under lock */
		r = MSYNC_ERR_STORE_CHANGED;
		goto fail;
	}
	if ((r = journal_begin(st, f)) != 0)
		goto fail;
	if (sb.st_size >= 2 && (r = fd_pread(&fd, tail, 2,
	    (uint64_t)sb.st_size - 2, &got)) != 0)
		goto fail;
	if (sb.st_size == 1 && (r = fd_pread(&fd, tail + 1, 1, 0, &got)) != 0)
		goto fail;
	/* The last message must end in an empty line before ours. */
	if (sb.st_size > 0 && tail[1] != '\n')
		mboxfmt_put(&f->wbuf, "\n\n", 2);
	else if (sb.st_size > 1 && tail[0] != '\n')
		mboxfmt_put(&f->wbuf, "\n", 1);
	else if (sb.st_size == 1)
		mboxfmt_put(&f->wbuf, "\n", 1);
	f->wend += f->wbuf.len;
	return 0;
fail:
	unlock_file(f->path, fd, dot);
	close(fd);
	f->wfd = -1;
	f->dotlock = 0;
	f->wbuf.len = 0;
	return r;
}

/* Driver methods. */

static int
mbox_store_lock(struct mbox *st, char **holder)
{
	struct timespec	 start;
	char		 path[MSYNC_PATH_MAX + 64];

	cache_file(st, st->root, ".lock", path, sizeof(path));
	if ((st->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC,
	    0600)) == -1)
		return MSYNC_ERR_IO;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (flock(st->lockfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return MSYNC_ERR_IO;
		if (lock_nap(st, &start)) {
			if (holder != NULL)
				*holder = strdup("another msync run");
			return MSYNC_ERR_LOCKED;
		}
	}
	return 0;
}

static int
mbox_close(struct store *s)
{
	struct mbox	*st = mb(s);
	int		 r = 0, r2;

	if (st == NULL)
		return 0;
	for (size_t i = 0; i < st->nf; i++) {
		struct mfolder	*f = st->f[i];

		if (f->wfd >= 0 && (r2 = append_end(st, f, 1)) != 0 && r == 0)
			r = r2;
		if (f->pending && (r2 = folder_flush(st, f)) != 0 && r == 0)
			r = r2;
		/* The index is in the cache: a read-only store keeps one. */
		if (f->loaded && (r2 = folder_save_index(st, f)) != 0 &&
		    r == 0)
			r = r2;
		folder_free(f);
	}
	free(st->f);
	if (st->lockfd >= 0)
		close(st->lockfd);
	free(st->root);
	free(st->inbox);
	free(st->cache);
	free(st);
	return r;
}

static int
mbox_open(const struct store_opts *o, struct store **out, char **holder)
{
	struct mbox	*st;
	struct stat	 sb;
	int		 r, fd;

	*out = NULL;
	if (o->path == NULL || *o->path == '\0' ||
	    strlen(o->path) >= MSYNC_PATH_MAX)
		return MSYNC_ERR_USAGE;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return MSYNC_ERR_NOMEM;
	st->base.drv = &store_mbox_driver;
	st->o = *o;
	st->lockfd = -1;
	if ((st->root = strdup(o->path)) == NULL ||
	    (o->inbox != NULL && (st->inbox = strdup(o->inbox)) == NULL)) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	if (stat(st->root, &sb) == -1) {
		if (errno != ENOENT || !o->create || o->readonly) {
			r = errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
			goto out;
		}
		/*
		 * A new mbox store is a directory (it may get folders),
		 * unless its name ends in ".mbox": one file, INBOX.
		 */
		size_t	len = strlen(st->root);

		if (len > 5 && strcmp(st->root + len - 5, ".mbox") == 0) {
			if ((fd = open(st->root, O_WRONLY | O_CREAT | O_EXCL |
			    O_CLOEXEC, 0600)) == -1) {
				r = MSYNC_ERR_IO;
				goto out;
			}
			close(fd);
		} else if ((r = msync_mkdirs(st->root)) != 0)
			goto out;
		if (stat(st->root, &sb) == -1) {
			r = MSYNC_ERR_IO;
			goto out;
		}
	}
	st->isdir = S_ISDIR(sb.st_mode);
	if (!st->isdir && (!S_ISREG(sb.st_mode) || o->layout ==
	    LAYOUT_MBOX_TB || st->inbox != NULL)) {
		WARNX("'%s' must be %s", log_esc(st->root, 300),
		    S_ISREG(sb.st_mode) ? "a directory for this layout" :
		    "an mbox file or a directory");
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	if (!st->isdir && (fd = open(st->root, O_RDONLY | O_CLOEXEC)) >= 0) {
		char	 b[5];
		ssize_t	 n = read(fd, b, 5);

		close(fd);
		if (n > 0 && (n < 5 || memcmp(b, "From ", 5) != 0)) {
			WARNX("'%s' is not an mbox file (it does not start "
			    "with \"From \")", log_esc(st->root, 300));
			r = MSYNC_ERR_USAGE;
			goto out;
		}
	}
	if ((r = cache_dir(o, &st->cache)) != 0) {
		WARN("cannot make the cache directory");
		goto out;
	}
	if ((r = mbox_store_lock(st, holder)) != 0)
		goto out;
	/* INBOX of a directory store exists from the start. */
	if (st->isdir && o->create && !o->readonly && st->inbox == NULL) {
		char	*ip;

		if ((ip = name_path(st, "INBOX", &r)) == NULL)
			goto out;
		fd = open(ip, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		free(ip);
	}
	*out = &st->base;
	st = NULL;
	r = 0;
out:
	mbox_close(st != NULL ? &st->base : NULL);
	return r;
}

/* Listing. */

struct namelist {
	char	**v;
	size_t	 n;
	size_t	 cap;
};

static int
namelist_add(struct namelist *l, const char *name)
{
	char	*s;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], name) == 0)
			return 0;
	if (l->n >= MSYNC_MBOX_MAX)
		return MSYNC_ERR_TOOBIG;
	if ((s = strdup(name)) == NULL ||
	    msync_grow(&l->v, &l->cap, l->n, sizeof(*l->v)) != 0) {
		free(s);
		return MSYNC_ERR_NOMEM;
	}
	l->v[l->n++] = s;
	return 0;
}

/*
 * 1 if the file at dfd/ent is an mbox (empty, or "From " first), 0 if
 * not, -1 if it cannot be read (so cannot be told): such a file is
 * listed, as a mailbox with an error, because leaving it out would make
 * it look deleted (issue 16: a store that cannot be read is never taken
 * for an empty one).
 */
static int
is_mbox_file(int dfd, const char *ent)
{
	char	 b[5];
	ssize_t	 n;
	int	 fd;

	if ((fd = openat(dfd, ent, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK)) == -1)
		return errno == ENOENT || errno == ELOOP ? 0 : -1;
	do
		n = read(fd, b, sizeof(b));
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return -1;
	return n == 0 || (n == 5 && memcmp(b, "From ", 5) == 0);
}

/* 1 if a directory entry is never a mailbox (locks, indexes, dot files). */
static int
ignored(const char *ent, int tb)
{
	size_t	 len = strlen(ent);

	if (ent[0] == '.')
		return 1;
	if (len > 5 && strcmp(ent + len - 5, ".lock") == 0)
		return 1;
	if (tb && len > 4 && (strcmp(ent + len - 4, ".msf") == 0 ||
	    strcmp(ent + len - 4, ".dat") == 0 ||
	    strcmp(ent + len - 5, ".json") == 0 ||
	    strcmp(ent + len - 5, ".html") == 0))
		return 1;
	return 0;
}

/* Walks directory rel (under the root) for mailboxes. */
static int
list_dir(struct mbox *st, const char *rel, const char *prefix, int depth,
    struct namelist *l)
{
	char		 path[MSYNC_PATH_MAX + 1], name[MSYNC_NAME_MAX + 1];
	char		 sub_path[MSYNC_PATH_MAX + NAME_MAX + 2];
	DIR		*d;
	struct dirent	*de;
	struct stat	 sb;
	int		 tb = st->o.layout == LAYOUT_MBOX_TB, r = 0;
	size_t		 len;

	if (depth > DEPTH_MAX)
		return 0;
	snprintf(path, sizeof(path), "%s%s%s", st->root, *rel ? "/" : "",
	    rel);
	/*
	 * A directory that cannot be read fails the listing: the mailboxes
	 * in it would otherwise look deleted (store.h).
	 */
	if ((d = opendir(path)) == NULL) {
		WARN("cannot read '%s'", log_esc(path, 300));
		return MSYNC_ERR_IO;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (ignored(de->d_name, tb))
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb,
		    AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno == ENOENT)
				continue;	/* gone since readdir */
			WARN("cannot read '%s/%s'", log_esc(path, 300),
			    log_esc(de->d_name, 200));
			r = MSYNC_ERR_IO;
			break;
		}
		len = strlen(de->d_name);
		if (S_ISDIR(sb.st_mode)) {
			char	sub[MSYNC_PATH_MAX + 1], np[MSYNC_NAME_MAX + 1];

			if (tb && (len <= 4 ||
			    strcmp(de->d_name + len - 4, ".sbd") != 0))
				continue;
			snprintf(sub, sizeof(sub), "%s%s%s", rel,
			    *rel ? "/" : "", de->d_name);
			snprintf(np, sizeof(np), "%s%.*s/", prefix,
			    (int)(tb ? len - 4 : len), de->d_name);
			r = list_dir(st, sub, np, depth + 1, l);
			continue;
		}
		if (!S_ISREG(sb.st_mode))
			continue;
		if (snprintf(name, sizeof(name), "%s%s", prefix, de->d_name) >=
		    (int)sizeof(name))
			continue;
		if (st->inbox != NULL && snprintf(sub_path, sizeof(sub_path),
		    "%s/%s", path, de->d_name) > 0 &&
		    strcmp(sub_path, st->inbox) == 0)
			continue;	/* listed as INBOX */
		if (is_mbox_file(dirfd(d), de->d_name) == 0) {
			LOG1("'%s/%s' is not an mbox file, skipped",
			    log_esc(path, 300), log_esc(de->d_name, 200));
			continue;
		}
		if (depth == 0 && strcmp(name, tb ? "Inbox" : "INBOX") == 0) {
			if (st->inbox != NULL) {
				WARNX("'%s/%s' is left out: INBOX is '%s'",
				    log_esc(path, 300), name,
				    log_esc(st->inbox, 300));
				continue;
			}
			snprintf(name, sizeof(name), "INBOX");
		} else if (strcmp(name, "INBOX") == 0 ||
		    !names_valid(name, strlen(name))) {
			WARNX("'%s/%s': not a usable mailbox name, skipped",
			    log_esc(path, 300), log_esc(de->d_name, 200));
			continue;
		}
		r = namelist_add(l, name);
	}
	closedir(d);
	return r;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fills *m from f. */
static int
status_of(const struct mfolder *f, struct store_mailbox *m)
{
	memset(m, 0, sizeof(*m));
	if ((m->name = strdup(f->name)) == NULL)
		return MSYNC_ERR_NOMEM;
	m->guid = f->guid;
	m->uidvalidity = f->uidvalidity;
	m->uidnext = f->uidnext;
	m->modseq = f->modseq;
	for (size_t i = 0; i < f->n; i++)
		if (!f->v[i].gone) {
			m->count++;
			m->bytes += f->v[i].size;
		}
	return 0;
}

static int
mbox_list_mailboxes(struct store *s, struct store_mailbox **out, size_t *n)
{
	struct mbox		*st = mb(s);
	struct namelist		 l = { 0 };
	struct store_mailbox	*v = NULL;
	struct mfolder		*f;
	struct stat		 sb;
	size_t			 nv = 0;
	int			 r = 0;

	*out = NULL;
	*n = 0;
	if (!st->isdir || (st->inbox != NULL && stat(st->inbox, &sb) == 0))
		r = namelist_add(&l, "INBOX");
	if (r == 0 && st->isdir)
		r = list_dir(st, "", "", 0, &l);
	if (r != 0)
		goto out;
	if (l.n > 1)
		msync_sort(l.v, l.n, sizeof(*l.v), name_cmp);
	if (l.n > 0 && (v = calloc(l.n, sizeof(*v))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		if ((r = folder_get(st, l.v[i], &f)) != 0) {
			if (r == MSYNC_ERR_NOMEM)
				goto out;
			r = 0;
			continue;
		}
		if ((r = folder_refresh(st, f, st->o.full)) != 0) {
			if (r == MSYNC_ERR_NOMEM || r == MSYNC_ERR_LOCKED)
				goto out;
			if (r == MSYNC_ERR_NOTFOUND) {
				/* Gone since the directory was read. */
				r = 0;
				continue;
			}
			/*
			 * There but unreadable (EACCES, EIO, not an mbox
			 * any more): listed with its error, so the brain
			 * leaves it out of the run instead of taking it
			 * for empty or deleted.
			 */
			WARNX("cannot read '%s': %s", log_esc(f->path, 300),
			    msync_strerror(r));
			memset(&v[nv], 0, sizeof(v[nv]));
			if ((v[nv].name = strdup(f->name)) == NULL) {
				r = MSYNC_ERR_NOMEM;
				goto out;
			}
			v[nv++].error = r;
			r = 0;
			continue;
		}
		if ((r = status_of(f, &v[nv])) != 0)
			goto out;
		nv++;
	}
	*out = v;
	*n = nv;
	v = NULL;
	nv = 0;
out:
	store_mailboxes_free(v, nv);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
	return r;
}

static int
mbox_list_messages(struct store *s, const char *name, struct msglist *out)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	size_t		 first = out->n;
	int		 r;

	if ((r = folder_open(st, name, &f)) != 0)
		return r;
	for (size_t i = 0; i < f->n; i++) {
		struct msg	 m;

		if (f->v[i].gone)
			continue;
		memset(&m, 0, sizeof(m));
		m.uid = f->v[i].uid;
		m.guid = f->v[i].guid;
		m.flags = f->v[i].dirty ? f->v[i].newflags : f->v[i].flags;
		m.kw = f->v[i].dirty ? f->v[i].newkw : f->v[i].kw;
		m.size = f->v[i].size;
		m.date = f->v[i].date;
		if ((r = msglist_add(out, &m)) != 0)
			return r;
	}
	/* By UID: a UID found again keeps its place in the file. */
	if (out->n - first > 1)
		msync_sort(out->v + first, out->n - first, sizeof(*out->v),
		    msync_u32_cmp);
	return 0;
}

static int
mbox_rescan(struct store *s, const char *name, struct store_mailbox *m)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	int		 r;

	if ((r = folder_get(st, name, &f)) != 0 ||
	    (r = appends_end(st, NULL)) != 0 ||
	    (r = folder_refresh(st, f, 0)) != 0)
		return r;
	if (m == NULL)
		return 0;
	free(m->name);
	return status_of(f, m);
}

/* Finds the live entry uid in f. */
static struct ment *
ent_find(struct mfolder *f, uint32_t uid)
{
	size_t	 i;

	/*
	 * The brain reads, flags and expunges in UID order, which is
	 * mostly file order: try where the last lookup ended first, so a
	 * pass over the folder costs O(n), not O(n^2) (100,000 messages
	 * were 5e9 comparisons).
	 */
	for (i = f->hint; i < f->n && i < f->hint + 2; i++)
		if (f->v[i].uid == uid && !f->v[i].gone)
			goto found;
	for (i = 0; i < f->n; i++)
		if (f->v[i].uid == uid && !f->v[i].gone)
			goto found;
	return NULL;
found:
	f->hint = i + 1;
	return &f->v[i];
}

/* Reading. */

/*
 * The sink of a message being read: content goes straight into the
 * caller's buffer, and only what does not fit waits in rest for the next
 * call (a copy into rest and another out of it for every byte were a
 * tenth of a conversion's instructions on the mbox side).
 */
struct rsink {
	uint8_t			*buf;
	size_t			 cap;
	size_t			 n;
	struct mboxfmt_out	*rest;
};

static void
sink_read(void *arg, const void *p, size_t n)
{
	struct rsink	*k = arg;
	size_t		 take = 0;

	if (k->rest->len == 0) {
		take = k->cap - k->n < n ? k->cap - k->n : n;
		memcpy(k->buf + k->n, p, take);
		k->n += take;
	}
	mboxfmt_put(k->rest, (const uint8_t *)p + take, n - take);
}

static int
mbox_msg_open(struct store *s, const char *name, uint32_t uid,
    struct store_msg **out, uint64_t *size, int64_t *date)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	struct ment	*e;
	struct mmsg	*m;
	int		 r;

	*out = NULL;
	if ((r = folder_open(st, name, &f)) != 0)
		return r;
	if (f->wfd >= 0 && (r = append_end(st, f, 1)) != 0)
		return r;
	if ((e = ent_find(f, uid)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return MSYNC_ERR_NOMEM;
	m->base.st = s;
	m->size = e->size;
	if (f->rusers > 0) {
		/* Another message reads f->rfd: this one gets its own. */
		if ((m->fd = open(f->path, O_RDONLY | O_CLOEXEC |
		    O_NOFOLLOW)) == -1) {
			r = errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
			free(m);
			return r;
		}
	} else {
		if (st->rf != NULL && st->rf != f && st->rf->rfd >= 0 &&
		    st->rf->rusers == 0) {
			/* One file open, whatever the number of folders. */
			close(st->rf->rfd);
			st->rf->rfd = -1;
		}
		st->rf = f;
		if (f->rfd >= 0 && (f->rdev != f->dev || f->rino != f->ino)) {
			close(f->rfd);
			f->rfd = -1;
		}
		if (f->rfd < 0) {
			struct stat	sb;
			int		fd;

			if ((fd = open(f->path, O_RDONLY | O_CLOEXEC |
			    O_NOFOLLOW)) == -1 || fstat(fd, &sb) == -1) {
				r = errno == ENOENT ? MSYNC_ERR_NOTFOUND :
				    MSYNC_ERR_IO;
				if (fd != -1)
					close(fd);
				free(m);
				return r;
			}
			f->rfd = fd;
			f->rdev = (uint64_t)sb.st_dev;
			f->rino = (uint64_t)sb.st_ino;
		}
		m->fd = f->rfd;		/* borrowed from the folder */
		m->f = f;
		f->rusers++;
	}
	m->src.pread = fd_pread;
	m->src.arg = &m->fd;
	if ((r = mboxfmt_new(&m->src, f->format, e->off,
	    e->off + e->raw, &m->fmt)) != 0 ||
	    (r = mboxfmt_begin(m->fmt, &m->m)) != 0) {
		if (r == 1 || r == MSYNC_ERR_BADDATA)
			r = MSYNC_ERR_STORE_CHANGED;
		mboxfmt_free(m->fmt);
		if (m->f != NULL)
			m->f->rusers--;
		else
			close(m->fd);
		free(m);
		return r;
	}
	*size = e->size;
	*date = e->date;
	*out = &m->base;
	return 0;
}

static int
mbox_msg_read(struct store_msg *sm, void *buf, size_t cap, size_t *got)
{
	struct mmsg	*m = (struct mmsg *)sm;
	struct rsink	 k = { buf, cap, 0, &m->out };
	int		 r;

	*got = 0;
	/* What the last call could not take comes first. */
	if (m->outpos < m->out.len) {
		k.n = m->out.len - m->outpos;
		if (k.n > cap)
			k.n = cap;
		memcpy(buf, m->out.p + m->outpos, k.n);
		m->outpos += k.n;
	}
	if (m->outpos == m->out.len)
		m->out.len = m->outpos = 0;
	/*
	 * A step hands on a line or a run of them: steps until cap bytes
	 * are there, so that the caller (and the store the message goes
	 * to) gets pieces of its size, not a record and a write(2) per
	 * line.  What overflows is kept: at most one step's worth.
	 */
	while (k.n < cap && m->out.len == 0 && !m->done) {
		r = mboxfmt_step(m->fmt, &m->m, sink_read, &k);
		if (r < 0)
			return r;
		if (m->out.failed)
			return MSYNC_ERR_NOMEM;
		if (r == 1)
			m->done = 1;
	}
	if (m->sent + k.n > m->size ||
	    (m->done && m->outpos == m->out.len && m->sent + k.n != m->size))
		return MSYNC_ERR_STORE_CHANGED;	/* not what was listed */
	m->sent += k.n;
	*got = k.n;
	return 0;
}

static void
mbox_msg_close(struct store_msg *sm)
{
	struct mmsg	*m = (struct mmsg *)sm;

	if (m == NULL)
		return;
	mboxfmt_free(m->fmt);
	free(m->out.p);
	if (m->f != NULL)
		m->f->rusers--;
	else
		close(m->fd);
	free(m);
}

/* Saving. */

static int
mbox_save_begin(struct store *s, const char *name, struct store_save **out)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	struct msave	*sv;
	int		 r;

	*out = NULL;
	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((r = folder_open(st, name, &f)) != 0)
		return r;
	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return MSYNC_ERR_NOMEM;
	sv->base.st = s;
	sv->st = st;
	sv->fd = open(st->cache, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (sv->fd == -1 || (sv->name = strdup(name)) == NULL ||
	    (sv->gc = guid_ctx_new()) == NULL) {
		r = sv->fd == -1 ? MSYNC_ERR_IO : MSYNC_ERR_NOMEM;
		if (sv->fd >= 0)
			close(sv->fd);
		free(sv->name);
		free(sv);
		return r;
	}
	*out = &sv->base;
	return 0;
}

static int
mbox_save_write(struct store_save *s, const void *p, size_t len)
{
	struct msave	*sv = (struct msave *)s;

	if (sv->failed)
		return MSYNC_ERR_IO;
	if (len == 0)
		return 0;
	if (sv->size + len > MSYNC_MSG_SIZE_MAX)
		return MSYNC_ERR_TOOBIG;
	if (write_all(sv->fd, p, len) != 0) {
		sv->failed = 1;
		return MSYNC_ERR_IO;
	}
	guid_update(sv->gc, p, len);
	sv->size += len;
	sv->last = ((const uint8_t *)p)[len - 1];
	return 0;
}

static void
mbox_save_abort(struct store_save *s)
{
	struct msave	*sv = (struct msave *)s;

	if (sv == NULL)
		return;
	close(sv->fd);
	guid_ctx_free(sv->gc);
	free(sv->name);
	free(sv);
}

/*
 * The body length of the spooled message: bytes after its first empty
 * line, or -1 if it has none.
 */
static int64_t
spool_body(struct msave *sv)
{
	uint8_t		 b[65536];
	uint64_t	 off = 0;
	size_t		 got;
	int		 bol = 1, crbol = 0;

	while (off < sv->size) {
		if (fd_pread(&sv->fd, b, sizeof(b), off, &got) != 0 ||
		    got == 0)
			return -1;
		for (size_t i = 0; i < got; i++) {
			/* An empty line: "\n" or "\r\n" at a line start. */
			if (b[i] == '\n' && (bol || crbol))
				return (int64_t)(sv->size - (off + i + 1));
			crbol = bol && b[i] == '\r';
			bol = b[i] == '\n';
		}
		off += got;
	}
	return -1;
}

/*
 * 1 if the spooled message has a line that starts with "From " (for an
 * mboxo file: such a message gets a Content-Length instead of a quoting
 * that an mboxo reader would not take off), 0 if not, -1 on a read error.
 */
static int
spool_has_from(struct msave *sv)
{
	static const char from[] = "From ";
	uint8_t		 b[65536];
	uint64_t	 off = 0;
	size_t		 got;
	int		 k = 0;		/* "From " bytes matched; -1 none */

	while (off < sv->size) {
		if (fd_pread(&sv->fd, b, sizeof(b), off, &got) != 0 ||
		    got == 0)
			return -1;
		for (size_t i = 0; i < got; i++) {
			if (k >= 0 && b[i] == (uint8_t)from[k]) {
				if (++k == 5)
					return 1;
			} else
				k = b[i] == '\n' ? 0 : -1;
		}
		off += got;
	}
	return 0;
}

static int
mbox_save_commit(struct store_save *s, uint8_t flags, const char *kw,
    int64_t date, const struct guid *expect, uint32_t *uid_out)
{
	struct msave		*sv = (struct msave *)s;
	struct mbox		*st = sv->st;
	struct mfolder		*f;
	struct mboxfmt_writer	 w;
	struct ment		 e;
	struct guid		 g;
	uint8_t			 b[65536];
	char			 sender[256];
	uint64_t		 off = 0, start;
	size_t			 got;
	int64_t			 clen = -1;
	int			 r, headerless = 0;

	if (uid_out != NULL)
		*uid_out = 0;
	guid_final(sv->gc, &g);
	if (expect != NULL && guid_cmp(&g, expect) != 0) {
		r = MSYNC_ERR_BADDATA;
		goto out;
	}
	if (sv->failed || sv->size == 0) {
		r = sv->failed ? MSYNC_ERR_IO : MSYNC_ERR_BADDATA;
		goto out;
	}
	if ((r = folder_get(st, sv->name, &f)) != 0 ||
	    (r = append_begin(st, f)) != 0)
		goto out;
	start = f->wend;
	if ((r = fd_pread(&sv->fd, b, sizeof(b), 0, &got)) != 0)
		goto fail;
	mboxfmt_sender(b, got, sender);
	/*
	 * A message without a final newline: the newline mbox needs would
	 * join it, so its length goes into Content-Length, and the body is
	 * written as it is (mboxcl2).
	 */
	if (sv->last != '\n' && (clen = spool_body(sv)) < 0) {
		/* Not even an empty line: all of it is the body. */
		clen = (int64_t)sv->size;
		headerless = 1;
	} else if (clen < 0 && f->format == MBOXFMT_MBOXO) {
		/*
		 * mboxo: a "From " line would have to become ">From ",
		 * which no mboxo reader takes back; a Content-Length keeps
		 * it as it is (as mutt and Dovecot write it).
		 */
		if ((r = spool_has_from(sv)) < 0) {
			r = MSYNC_ERR_IO;
			goto fail;
		}
		if (r == 1 && (clen = spool_body(sv)) < 0) {
			clen = (int64_t)sv->size;
			headerless = 1;
		}
	}
	{
		size_t	before = f->wbuf.len;

		mboxfmt_write_begin(&w, &f->wbuf, sender, date, flags, kw,
		    clen, headerless);
		w.mboxo = f->format == MBOXFMT_MBOXO;
		while (off < sv->size) {
			if ((r = fd_pread(&sv->fd, b, sizeof(b), off,
			    &got)) != 0)
				goto fail;
			if (got == 0) {
				r = MSYNC_ERR_IO;
				goto fail;
			}
			mboxfmt_write(&w, &f->wbuf, b, got);
			off += got;
			if (f->wbuf.len >= WBUF) {
				f->wend += f->wbuf.len - before;
				before = 0;
				if ((r = wbuf_write(f)) != 0)
					goto fail;
			}
		}
		mboxfmt_write_end(&w, &f->wbuf);
		if (f->wbuf.failed) {
			r = MSYNC_ERR_NOMEM;
			goto fail;
		}
		f->wend += f->wbuf.len - before;
		if (f->wbuf.len >= WBUF && (r = wbuf_write(f)) != 0)
			goto fail;
	}
	memset(&e, 0, sizeof(e));
	e.uid = f->uidnext++;
	e.off = start;
	e.raw = f->wend - start;
	e.size = sv->size;
	e.date = date;
	e.flags = flags & FLAG_ALL;
	e.guid = g;
	if (kw != NULL && *kw != '\0' && (e.kw = strdup(kw)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto fail;
	}
	if (msync_grow(&f->v, &f->cap, f->n, sizeof(*f->v)) != 0) {
		free(e.kw);
		r = MSYNC_ERR_NOMEM;
		goto fail;
	}
	f->v[f->n++] = e;
	f->modseq++;
	f->ixdirty = 1;
	if (uid_out != NULL)
		*uid_out = e.uid;
	r = 0;
	goto out;
fail:
	append_undo(f, start);
out:
	mbox_save_abort(s);
	return r;
}

/* Flags and expunges: collected, written at the flush. */

/* Splits kw into at most MSYNC_KW_MAX names in v (pointers into buf). */
static size_t
kw_split(const char *kw, char *buf, size_t cap, char **v)
{
	char	*s, *save;
	size_t	 n = 0;

	buf[0] = '\0';
	if (kw != NULL)
		snprintf(buf, cap, "%s", kw);
	for (s = strtok_r(buf, " ", &save); s != NULL && n < MSYNC_KW_MAX;
	    s = strtok_r(NULL, " ", &save))
		v[n++] = s;
	return n;
}

static int
kw_has(char **v, size_t n, const char *k)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], k) == 0)
			return 1;
	return 0;
}

/*
 * cur with what differs between old and want applied: names in want
 * but not old are added, in old but not want removed.  *out owned, NULL
 * for none.
 */
static int
kw_merge(const char *cur, const char *old, const char *want, char **out)
{
	char	 bc[MSYNC_KWSTR_MAX + 1], bo[MSYNC_KWSTR_MAX + 1];
	char	 bw[MSYNC_KWSTR_MAX + 1], res[MSYNC_KWSTR_MAX + 1];
	char	*vc[MSYNC_KW_MAX], *vo[MSYNC_KW_MAX], *vw[MSYNC_KW_MAX];
	char	*vr[MSYNC_KW_MAX * 2];
	size_t	 nc, no, nw, nr = 0, o = 0;

	*out = NULL;
	nc = kw_split(cur, bc, sizeof(bc), vc);
	no = kw_split(old, bo, sizeof(bo), vo);
	nw = kw_split(want, bw, sizeof(bw), vw);
	for (size_t i = 0; i < nc; i++)
		if (!(kw_has(vo, no, vc[i]) && !kw_has(vw, nw, vc[i])))
			vr[nr++] = vc[i];
	for (size_t i = 0; i < nw; i++)
		if (!kw_has(vo, no, vw[i]) && !kw_has(vr, nr, vw[i]) &&
		    nr < MSYNC_KW_MAX)
			vr[nr++] = vw[i];
	if (nr == 0)
		return 0;
	msync_sort(vr, nr, sizeof(vr[0]), name_cmp);
	res[0] = '\0';
	for (size_t i = 0; i < nr && o < sizeof(res); i++)
		o += (size_t)snprintf(res + o, sizeof(res) - o, "%s%s",
		    i > 0 ? " " : "", vr[i]);
	if ((*out = strdup(res)) == NULL)
		return MSYNC_ERR_NOMEM;
	return 0;
}

static int
set_flags(struct mbox *st, const char *name, uint32_t uid, int merge,
    uint8_t old_flags, const char *old_kw, uint8_t flags, const char *kw)
{
	struct mfolder	*f;
	struct ment	*e;
	uint8_t		 cur, nf;
	char		*nk = NULL;
	const char	*curkw;
	int		 r;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((r = folder_open(st, name, &f)) != 0)
		return r;
	if ((e = ent_find(f, uid)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	cur = e->dirty ? e->newflags : e->flags;
	curkw = e->dirty ? e->newkw : e->kw;
	if (merge) {
		nf = (uint8_t)((cur & ~(old_flags ^ flags)) |
		    (flags & (old_flags ^ flags)));
		if ((r = kw_merge(curkw, old_kw, kw, &nk)) != 0)
			return r;
	} else {
		nf = flags;
		if (kw != NULL && *kw != '\0' && (nk = strdup(kw)) == NULL)
			return MSYNC_ERR_NOMEM;
	}
	nf &= FLAG_ALL;
	if (nf == e->flags && ((nk == NULL && e->kw == NULL) ||
	    (nk != NULL && e->kw != NULL && strcmp(nk, e->kw) == 0))) {
		free(nk);
		free(e->newkw);
		e->newkw = NULL;
		e->dirty = 0;
		return 0;
	}
	free(e->newkw);
	e->newkw = nk;
	e->newflags = nf;
	e->dirty = 1;
	f->pending = 1;
	f->modseq++;
	return 0;
}

static int
mbox_set_flags(struct store *s, const char *name, uint32_t uid,
    uint8_t flags, const char *kw)
{
	return set_flags(mb(s), name, uid, 0, 0, NULL, flags, kw);
}

static int
mbox_update_flags(struct store *s, const char *name, uint32_t uid,
    uint8_t old_flags, const char *old_kw, uint8_t flags, const char *kw)
{
	return set_flags(mb(s), name, uid, 1, old_flags, old_kw, flags, kw);
}

static int
mbox_expunge_guid(struct store *s, const char *name, uint32_t uid,
    const struct guid *expect)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	struct ment	*e;
	int		 r;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((r = folder_open(st, name, &f)) != 0)
		return r;
	if ((e = ent_find(f, uid)) == NULL)
		return 0;
	if (expect != NULL && guid_cmp(&e->guid, expect) != 0)
		return MSYNC_ERR_STORE_CHANGED;
	e->gone = 1;
	f->pending = 1;
	f->modseq++;
	return 0;
}

static int
mbox_expunge(struct store *s, const char *name, uint32_t uid)
{
	return mbox_expunge_guid(s, name, uid, NULL);
}

/* The sink of a rewrite: collects and writes in big pieces. */
struct rw {
	int			 fd;
	struct mboxfmt_out	 o;
	uint64_t		 pos;	/* bytes of the new file so far */
	int			 r;
};

static void
rw_sink(void *arg, const void *p, size_t n)
{
	struct rw	*w = arg;

	mboxfmt_put(&w->o, p, n);
	w->pos += n;
	if (w->o.len >= WBUF && w->r == 0) {
		w->r = w->o.failed ? MSYNC_ERR_NOMEM :
		    write_all(w->fd, w->o.p, w->o.len);
		w->o.len = 0;
	}
}

/* Copies bytes [from, to) of fd into w. */
static int
rw_copy(struct rw *w, int fd, uint64_t from, uint64_t to)
{
	uint8_t	 b[65536];
	size_t	 got, want;
	int	 r;

	while (from < to && w->r == 0) {
		want = to - from < sizeof(b) ? (size_t)(to - from) : sizeof(b);
		if ((r = fd_pread(&fd, b, want, from, &got)) != 0)
			return r;
		if (got == 0)
			return MSYNC_ERR_STORE_CHANGED;
		rw_sink(w, b, got);
		from += got;
	}
	return w->r;
}

/*
 * Writes f's pending flag changes and expunges: the file is written anew
 * beside itself (".NAME.msync-new", a dot file no reader lists) with
 * every byte before the first change copied, then renamed over it, with
 * the file and its directory fsynced, so a crash leaves the old file or
 * the new one.  Other programs' locks are held throughout.
 */
static int
folder_flush(struct mbox *st, struct mfolder *f)
{
	struct mboxfmt_src	 src;
	struct rw		 w;
	struct stat		 sb;
	char			 tmp[MSYNC_PATH_MAX + 32], *slash;
	uint64_t		 cur = 0;
	int			 fd = -1, dot = 0, r, dfd;

	if (!f->pending)
		return 0;
	f->pending = 0;		/* folder_refresh below must not recurse */
	memset(&w, 0, sizeof(w));
	w.fd = -1;
	if (f->wfd >= 0 && (r = append_end(st, f, 1)) != 0)
		goto out;
	if ((fd = open(f->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		r = errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
		goto out;
	}
	if ((r = lock_file(st, f->path, fd, F_WRLCK, &dot)) != 0)
		goto out;
	if (fstat(fd, &sb) == -1) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	/* Changed by another program since it was read: those win. */
	if ((uint64_t)sb.st_ino != f->ino || (uint64_t)sb.st_size < f->fsize ||
	    !last_still_there(f, fd)) {
		WARNX("'%s' changed during the run; its flag changes and "
		    "expunges wait for the next run", log_esc(f->path, 300));
		for (size_t i = 0; i < f->n; i++)
			f->v[i].dirty = f->v[i].gone = 0;
		f->valid = 0;
		r = MSYNC_ERR_STORE_CHANGED;
		goto out;
	}
	slash = strrchr(f->path, '/');
	snprintf(tmp, sizeof(tmp), "%.*s/.%s.msync-new",
	    (int)(slash - f->path), f->path, slash + 1);
	if ((w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, sb.st_mode & 07777)) == -1) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	(void)fchown(w.fd, sb.st_uid, sb.st_gid);
	src.pread = fd_pread;
	src.arg = &fd;
	for (size_t i = 0; i < f->n && r == 0; i++) {
		struct ment	*e = &f->v[i];

		if (!e->gone && !e->dirty)
			continue;
		if ((r = rw_copy(&w, fd, cur, e->off)) != 0)
			break;
		cur = e->off + e->raw;
		if (e->gone)
			continue;
		r = mboxfmt_reflag(&src, e->off, e->raw, e->newflags,
		    e->newkw, rw_sink, &w);
		if (r == 0)
			r = w.r;
	}
	if (r == 0)
		r = rw_copy(&w, fd, cur, (uint64_t)sb.st_size);
	if (r == 0 && w.o.failed)
		r = MSYNC_ERR_NOMEM;
	if (r == 0 && w.o.len > 0)
		r = write_all(w.fd, w.o.p, w.o.len);
	if (r == 0 && fsync(w.fd) != 0)
		r = MSYNC_ERR_IO;
	if (r == 0 && close(w.fd) != 0)
		r = MSYNC_ERR_IO;
	w.fd = -1;
	if (r == 0 && rename(tmp, f->path) != 0)
		r = MSYNC_ERR_IO;
	if (r != 0) {
		(void)unlink(tmp);
		goto out;
	}
	*slash = '\0';
	if ((dfd = open(f->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	*slash = '/';
	/* The new file: read it (UIDs stay, by GUID). */
	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].gone) {
			ent_free(&f->v[i]);
			memmove(&f->v[i], &f->v[i + 1],
			    (f->n - i - 1) * sizeof(*f->v));
			f->n--;
			i--;
		}
	unlock_file(f->path, fd, dot);
	close(fd);
	fd = -1;
	dot = 0;
	f->valid = 0;
	r = folder_refresh(st, f, 1);
out:
	if (w.fd >= 0)
		close(w.fd);
	free(w.o.p);
	if (fd >= 0) {
		unlock_file(f->path, fd, dot);
		close(fd);
	}
	f->ixdirty = 1;
	return r;
}

/* Mailboxes. */

static int
mbox_create_mailbox(struct store *s, const char *name,
    const struct guid *guid)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	struct stat	 psb;
	char		*path, *slash;
	int		 r, fd;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((path = name_path(st, name, &r)) == NULL) {
		if (r == MSYNC_ERR_BADNAME && !st->isdir)
			WARNX("'%s' is one mbox file: it holds INBOX only, "
			    "not '%s'", log_esc(st->root, 300),
			    log_esc(name, 200));
		return r;
	}
	r = 0;
	if ((slash = strrchr(path, '/')) != NULL && slash != path) {
		*slash = '\0';
		r = msync_mkdirs(path);
		*slash = '/';
		if (r != 0 && errno != ENOTDIR) {
			WARN("cannot make the folder of '%s'",
			    log_esc(path, 300));
			free(path);
			return r;
		}
	}
	if (r != 0) {
		/* A parent is an mbox file: the layout conflict below. */
		fd = -1;
		errno = ENOTDIR;
	} else
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (fd == -1 && (errno == ENOTDIR || errno == EISDIR ||
	    (errno == EEXIST && stat(path, &psb) == 0 &&
	    S_ISDIR(psb.st_mode)))) {
		/* mutt's and Dovecot's layout: a file or a directory. */
		WARNX("cannot make mailbox '%s' in '%s': a mailbox that "
		    "holds messages cannot also hold mailboxes in this "
		    "layout; use ;layout=thunderbird", log_esc(name, 200),
		    log_esc(st->root, 300));
		free(path);
		return MSYNC_ERR_BADNAME;
	}
	if (fd == -1) {
		r = errno == EEXIST ? MSYNC_ERR_EXISTS : MSYNC_ERR_IO;
		if (r == MSYNC_ERR_EXISTS && strcmp(name, "INBOX") == 0) {
			struct stat	 sb;

			/* The empty INBOX mbox_open made is not "existing". */
			if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
			    sb.st_size == 0)
				r = 0;
		}
		free(path);
		if (r != 0)
			return r;
	} else {
		(void)fsync(fd);
		close(fd);
		free(path);
	}
	if ((r = folder_get(st, name, &f)) != 0 ||
	    (r = folder_refresh(st, f, 1)) != 0)
		return r;
	if (guid != NULL)
		f->guid = *guid;
	f->ixdirty = 1;
	return folder_save_index(st, f);
}

static int
mbox_rename_mailbox(struct store *s, const char *from, const char *to)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	char		*np, *slash, oi[MSYNC_PATH_MAX + 64];
	char		 ni[MSYNC_PATH_MAX + 64];
	int		 r;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((r = folder_open(st, from, &f)) != 0)
		return r;
	if ((r = appends_end(st, NULL)) != 0 ||
	    (r = folder_flush(st, f)) != 0)
		return r;
	if ((np = name_path(st, to, &r)) == NULL)
		return r;
	if (access(np, F_OK) == 0) {
		free(np);
		return MSYNC_ERR_EXISTS;
	}
	if ((slash = strrchr(np, '/')) != NULL && slash != np) {
		*slash = '\0';
		(void)msync_mkdirs(np);
		*slash = '/';
	}
	if (rename(f->path, np) != 0) {
		free(np);
		return MSYNC_ERR_IO;
	}
	if (st->o.layout == LAYOUT_MBOX_TB) {
		char	os[MSYNC_PATH_MAX + 8], ns[MSYNC_PATH_MAX + 8];

		snprintf(os, sizeof(os), "%s.sbd", f->path);
		snprintf(ns, sizeof(ns), "%s.sbd", np);
		(void)rename(os, ns);
	}
	cache_file(st, f->path, IX_SUFFIX(st), oi, sizeof(oi));
	cache_file(st, np, IX_SUFFIX(st), ni, sizeof(ni));
	(void)rename(oi, ni);
	free(f->path);
	f->path = np;
	free(f->name);
	if ((f->name = strdup(to)) == NULL)
		return MSYNC_ERR_NOMEM;
	f->ixdirty = 1;
	/* Children in a directory layout moved with the file's folder. */
	for (size_t i = 0; i < st->nf; i++)
		if (st->f[i] != f && strncmp(st->f[i]->name, from,
		    strlen(from)) == 0 && st->f[i]->name[strlen(from)] == '/')
			st->f[i]->scanned = 0;
	return folder_save_index(st, f);
}

static int
mbox_delete_mailbox(struct store *s, const char *name)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	char		 ix[MSYNC_PATH_MAX + 64];
	int		 r;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((r = folder_get(st, name, &f)) != 0)
		return r;
	if (f->wfd >= 0)
		(void)append_end(st, f, 1);
	if (!st->isdir && strcmp(name, "INBOX") == 0)
		return MSYNC_ERR_BADNAME;	/* the store itself */
	if (unlink(f->path) != 0 && errno != ENOENT)
		return MSYNC_ERR_IO;
	cache_file(st, f->path, IX_SUFFIX(st), ix, sizeof(ix));
	(void)unlink(ix);
	for (size_t i = 0; i < f->n; i++)
		ent_free(&f->v[i]);
	f->n = 0;
	f->pending = 0;
	f->loaded = f->scanned = 0;
	f->ixdirty = 0;
	return 0;
}

static int
mbox_set_mailbox_guid(struct store *s, const char *name,
    const struct guid *guid)
{
	struct mbox	*st = mb(s);
	struct mfolder	*f;
	int		 r;

	if ((r = folder_open(st, name, &f)) != 0)
		return r;
	f->guid = *guid;
	f->ixdirty = 1;
	return 0;
}

static int
mbox_flush(struct store *s)
{
	struct mbox	*st = mb(s);
	int		 r = 0, r2;

	if ((r = appends_end(st, NULL)) != 0)
		return r;
	for (size_t i = 0; i < st->nf; i++) {
		if ((r2 = folder_flush(st, st->f[i])) != 0 && r == 0)
			r = r2;
		if (st->f[i]->loaded &&
		    (r2 = folder_save_index(st, st->f[i])) != 0 && r == 0)
			r = r2;
	}
	return r;
}

const struct store_driver store_mbox_driver = {
	.name = "mbox",
	.open = mbox_open,
	.close = mbox_close,
	.list_mailboxes = mbox_list_mailboxes,
	.list_messages = mbox_list_messages,
	.rescan = mbox_rescan,
	.msg_open = mbox_msg_open,
	.msg_read = mbox_msg_read,
	.msg_close = mbox_msg_close,
	.save_begin = mbox_save_begin,
	.save_write = mbox_save_write,
	.save_commit = mbox_save_commit,
	.save_abort = mbox_save_abort,
	.set_flags = mbox_set_flags,
	.update_flags = mbox_update_flags,
	.expunge = mbox_expunge,
	.expunge_guid = mbox_expunge_guid,
	.create_mailbox = mbox_create_mailbox,
	.rename_mailbox = mbox_rename_mailbox,
	.delete_mailbox = mbox_delete_mailbox,
	.set_mailbox_guid = mbox_set_mailbox_guid,
	.flush = mbox_flush
};
