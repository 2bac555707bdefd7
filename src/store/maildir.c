/*
 * src/store/maildir.c — the Maildir store (store.h), Maildir++ and fs layouts.
 *
 * The root is resolved and opened once; every later access is relative
 * to that descriptor, with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
 * where the kernel has it and a component-by-component O_NOFOLLOW walk
 * where it does not, so no name (this store also serves an untrusted
 * peer) reaches outside the root.  Mailbox names are validated again here.
 *
 * Each folder has an index (index.h): in the folder, or for a read-only
 * store in $XDG_CACHE_HOME/msync/index/<hash of the folder path>.index,
 * so a read-only store is never written.  The lock is msync.lock in the
 * root (in the cache directory for a read-only store), an flock(2) with
 * "pid N on HOST" written in it.
 *
 * Messages are saved through tmp/ and moved into cur/ without ever
 * replacing a file (renameat2 RENAME_NOREPLACE, or link + unlink);
 * flags are renames that keep the base name; keywords are letters named
 * by the folder's dovecot-keywords.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>

#include <linux/openat2.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msync.h"
#include "guid.h"
#include "index.h"
#include "log.h"
#include "mdname.h"
#include "names.h"
#include "readahead.h"
#include "store.h"

#define LOCK_FILE	"msync.lock"
#define LOCK_POLL_NS	100000000L	/* 100 ms between lock attempts */
#define SAVE_TRIES	100		/* names tried before giving up */
#define PENDING_MAX	256		/* saves per syncfs() */
/*
 * Saves that may wait in tmp/ for their syncfs(): while one syncfs() runs
 * in the durability thread, the next saves keep arriving (PENDING_MAX
 * for it, the rest for the one after), and only when this many wait does
 * a save block until the running syncfs() ends.
 */
#define PENDING_CAP	(PENDING_MAX * 8)

/* A directory descriptor not opened yet (struct subdirs, op_sub). */
#define SUB_UNOPENED	(-2)

/* How much folder_refresh checks. */
#define REFRESH_LAZY	0	/* scanned once this session is enough */
#define REFRESH_TOKEN	1	/* rescan if the change token moved */
#define REFRESH_FORCE	2	/* rescan */
#define REFRESH_HEAD	3	/* listing: as TOKEN, but an unmoved token
				   needs only the index file's header */
#define REFRESH_READ	4	/* reading a message: as LAZY, and a pass
				   that may unload indexes (ix_trim) */
#define REFRESH_CHECK	5	/* end-of-run rescan: as HEAD, and a pass
				   that may unload indexes */

/* One folder the store has seen. */
struct folder {
	char			*name;		/* owned; internal name */
	char			*dir;		/* owned; relative to the root */
	char			*where;		/* owned; root/dir, for messages */
	struct index		*ix;		/* owned; NULL until loaded */
	struct index_kwmap	 kw;		/* dovecot-keywords, lazily */
	int			 scanned;	/* up to date this session */
	/*
	 * Read-only store: ix came from the folder's own msync.index (a
	 * writable run made it) and lives in memory only, never written.
	 */
	int			 ownix;
	/*
	 * While ix is NULL after a listing found the change token unmoved:
	 * the index file's header, all that was read.
	 */
	struct index_head	 head;
	int			 swept;		/* tmp/ cleaned this session */
	/*
	 * The stamp chain (issue 10.3): chain is set when a refresh left
	 * the index matching cur/ and new/ as of a valid token, ch.  Each
	 * of msync's own changes to cur/ or new/ is preceded by a stat that
	 * must find the stamps ch holds (nobody else changed the directory
	 * since) and followed by one that moves ch on; any mismatch, or a
	 * change made another way, clears chain.  A refresh that finds the
	 * stamps ch holds after ch_ops own changes then needs no rescan:
	 * the index already says what msync did, and nobody else changed
	 * the folder, but for a change in the very moment of one of
	 * msync's own (between its two stats), which the token, stored
	 * racy, leaves to the next run's rescan.
	 */
	int			 chain;
	unsigned long		 ch_ops;
	struct index_token	 ch;
	int			 synced;	/* cur/ needs an fsync: 0 */
	/*
	 * Read-only store: the first load found no usable msync.index in
	 * the folder and took the cache's, so a reload after ix_trim takes
	 * the cache's again (one index, one UID space, for the whole run).
	 */
	int			 cacheix;
	uint64_t		 used;		/* st->clock when last opened */
	int			 done;		/* store_done since last opened */
	/*
	 * The messages this run found (uid at least run_next, the uidnext
	 * of the index's first load this run), kept when ix_trim lets the
	 * index go if they are few (KEPT_SHARE): the reading of the new
	 * messages to send comes after the plan, and would decode the
	 * whole index again for them (issue 10.3).  Sorted by uid; freed
	 * when the index is loaded again.
	 */
	uint32_t		 run_next;	/* 0: not loaded yet this run */
	struct kept		*kept;		/* owned */
	size_t			 nkept;
	uint64_t		 load_modseq;	/* the index's, as loaded */
	/*
	 * The folder's message listing, made by list_mailboxes while it had
	 * the index loaded and rescanned, for store_list_messages to take
	 * (issue 10.3: memory): list_mailboxes may then let the index go
	 * past the bound without a second decode for the listing.  NULL
	 * when there is none.
	 */
	struct held		*held;		/* owned */
};

/*
 * A listing held for store_list_messages (struct folder): what
 * maildir_list_messages would return, good while cur/ and new/ still
 * show tok (a valid token, read before the scan that made the listing).
 * Dropped, unused, by the first operation of the run that is no listing
 * (folder_open, kept_open), so one the brain never asks for (its
 * mailbox unchanged since the base) is freed before the transfer.
 */
struct held {
	struct msglist		 l;
	struct index_token	 tok;
};

/* A message of an unloaded index, as the index said (struct folder). */
struct kept {
	uint32_t		 uid;
	uint64_t		 size;
	int64_t			 date;		/* the file's mtime */
	char			*name;		/* owned; "cur/..." or "new/..." */
};

/*
 * At most one in KEPT_SHARE of a folder's entries are kept when its index
 * is let go, and KEPT_MAX in all: a 1% run's new messages, not a copy's.
 */
#define KEPT_SHARE	16
#define KEPT_MAX	4096

/*
 * Index entries kept loaded across folders (issue 10.3: memory).  Past
 * this, the indexes of the folders a pass over the store is done with
 * are written (if changed) and freed, and loaded again if a folder is
 * opened again (ix_trim): a run's index memory at its planning is
 * bounded by this and by its largest folder, not by the store.  About
 * 100 bytes an entry (the entry and its name).
 */
#define IX_KEEP		32768

/*
 * The read-ahead of a pass over folders (issue 10.3): while the listing
 * (or list_messages) saves and lists one folder, threads load, and
 * rescan if they changed, the indexes of the next ones: the longest part
 * of a run after a few changes (reading the directories of folders of
 * tens of thousands of messages, decoding their indexes), which one core
 * did alone.  A worker reads only what no one changes during the pass:
 * the store's fixed fields, the names, and folders the pass has not
 * reached yet.
 */
struct ahead {
	struct maildir	*st;		/* borrowed */
	char		**names;	/* borrowed */
	/* 1: also load an unchanged folder's index (list_messages needs
	   it); 0: the listing reads only its header. */
	int		 load_unchanged;
	/* Or NULL; skip[i] 1: nothing to read for names[i] (its index or
	   its listing is held already).  Borrowed. */
	const uint8_t	*skip;
};

struct maildir {
	struct store		 base;		/* first: the driver's handle */
	struct store_opts	 o;		/* path, cachedir borrowed */
	char			*root;		/* owned; absolute root */
	int			 rootfd;	/* the root directory */
	int			 lockfd;	/* holds the lock; -1 none */
	int			 cachefd;	/* cache index dir; -1 none */
	char			 host[160];	/* escaped, for file names */
	unsigned int		 counter;	/* file name uniqueness */
	/*
	 * getpid() once, when the store is opened, not once per file name
	 * (a system call each: glibc does not cache it).  A store is used
	 * by the process that opened it.
	 */
	long			 pid;
	struct folder		**f;		/* owned; sorted by name */
	size_t			 nf;
	size_t			 capf;
	/*
	 * The folder the last message was saved into, with its directory,
	 * tmp/ and cur/ open: a sync saves mailbox by mailbox, so this saves
	 * four opens and closes per message.  Dropped by hot_drop() before
	 * anything renames or deletes folders.
	 */
	struct folder		*hot;		/* borrowed; NULL = none */
	int			 hot_fd;	/* owned, like the two below */
	int			 hot_tmpfd;
	int			 hot_curfd;
	/*
	 * The folder saved into before the hot one, while some of its
	 * saves still wait in tmp/ for their syncfs() (issue 10.4): saving
	 * into the next folder no longer waits for them (hot_park).  Its
	 * directory, tmp/ and cur/ stay open until those saves are in cur/
	 * (pending_move), and its index stays loaded.  One at a time, on
	 * the hot folder's file system (one syncfs() covers both): a third
	 * folder, or another file system, waits as before (hot_drop).
	 */
	struct folder		*cold;		/* borrowed; NULL = none */
	int			 cold_fd;	/* owned, like the two below */
	int			 cold_tmpfd;
	int			 cold_curfd;
	/*
	 * The folder of the last message read, flag change or expunge, with
	 * its directory open and its cur/ and new/ once used (issue 10.3):
	 * those come folder by folder too, and opening and closing the
	 * folder and cur/ or new/ per message cost five system calls of the
	 * six or nine each took.  Before each operation, one fstatat of
	 * "DIR/cur" (and of "DIR/new" if that is open too) from the root
	 * checks that the path still leads to the directory held open
	 * (op_dev, op_ino): a folder moved, replaced or with cur/ or new/
	 * swapped since is opened afresh through folder_open, as without
	 * the cache.  Dropped by op_drop() wherever hot_drop() is called.
	 */
	struct folder		*opf;		/* borrowed; NULL = none */
	int			 op_fd;		/* owned, like op_sub */
	int			 op_sub[2];	/* cur/, new/; SUB_UNOPENED */
	dev_t			 op_dev[2];
	ino_t			 op_ino[2];
	char			*op_path;	/* owned; "DIR/cur" */
	size_t			 op_dlen;	/* where "cur" starts in it */
	/* Test hook (MSYNC_TEST_OP_HOOK=N:command): run before the Nth. */
	unsigned long		 op_n;
	unsigned long		 op_hook_at;
	const char		*op_hook;	/* borrowed from environ */
	/*
	 * Saved messages of the hot folder (and first, of the cold one)
	 * still in tmp/, waiting for one syncfs() to make their contents
	 * durable before they are moved into cur/ (sync_reap,
	 * pending_flush): one syncfs() per PENDING_MAX messages or more,
	 * instead of one fsync per message.  They already have their UIDs.
	 */
	struct pending		*pend;		/* owned; PENDING_CAP of them */
	size_t			 npend;
	int			 pend_failed;	/* sticky: a flush failed */
	/*
	 * The durability thread (issue 10.4): a syncfs() of the hot
	 * folder's file system runs in a thread of its own while the next
	 * messages are received and written, so the receiving side does
	 * not stop reading for it.  It covers pend[0 .. insync), every
	 * byte of which was written before the thread started; those move
	 * into cur/ only after it ended (sync_reap), so cur/, the index and
	 * the sync state still never name a message before its content is
	 * on disk.  At most one runs, and none outlives pending_flush.
	 */
	struct syncer		*sy;		/* owned; NULL = none running */
	size_t			 insync;
	/* For -vv: syncfs() calls made, of them in the thread, and how
	   long saves waited for them (the transfer stopped meanwhile). */
	unsigned		 nsync;
	unsigned		 nsync_bg;
	long long		 wait_ms;
	/*
	 * Folders skipped this run because they have an index but no cur/
	 * directory (issue 11): MSYNC_ERR_STORE_CHANGED when one looked
	 * like a change under way (cur/ a symlink or a file, or gone after
	 * we saw it), else MSYNC_ERR_NOTFOUND; 0 when there was none.
	 * store_flush reports it, so the run ends with 2 or 1.
	 */
	int			 incomplete;
	/*
	 * Mailboxes found half there (no cur/, or cur/ or new/ not a real
	 * directory): refused for the rest of the run, even if they look
	 * whole again, so one run never sees them both ways.
	 */
	char			**skip;		/* owned */
	size_t			 nskip;
	/*
	 * Loaded indexes (ix_trim): at most ix_keep entries, the test hook
	 * MSYNC_TEST_INDEX_KEEP aside.  ix_est counts the entries of every
	 * folder opened since the last count, an upper bound of what is
	 * loaded, so the folders are walked only when it passes ix_next.
	 */
	size_t			 ix_keep;
	size_t			 ix_est;
	size_t			 ix_next;
	uint64_t		 clock;
	struct folder		*last;		/* borrowed; last opened */
	/*
	 * st->clock when the current run of opens that may trim began:
	 * only folders opened since are unloaded, as the pass is done with
	 * them, while it comes to the others next.
	 */
	uint64_t		 pass_start;
	int			 trimming;	/* in such a pass */
	size_t			 nkept;		/* struct folder's, in all */
	int			 listing;	/* in list_mailboxes */
	size_t			 nheld;		/* folders with a held listing */
	/*
	 * The folder being opened, as a read-ahead thread loaded it
	 * (struct ahead_folder), or NULL: in list_mailboxes, and in
	 * list_messages while a prefetch runs.
	 */
	struct ahead_folder	*ahead;
	/*
	 * store_prefetch: the read-ahead of the folders whose messages the
	 * caller lists next (pre_names, owned, in that order; pre_next the
	 * first not asked for yet).  It ends at any other operation
	 * (folder_open outside list_messages: prefetch_stop).
	 */
	struct readahead	*pre;
	struct ahead		 pre_ctx;
	char			**pre_names;
	uint8_t			*pre_skip;
	size_t			 pre_n;
	size_t			 pre_next;
	int			 pre_listing;	/* in list_messages */
};

/*
 * A folder's index loaded, and if the folder changed since it was saved
 * also rescanned, by a read-ahead thread (ahead_job), for folder_refresh
 * to take instead of loading and rescanning it.
 */
struct ahead_folder {
	struct index		*ix;		/* owned; up to date */
	uint32_t		 uidnext;	/* the index's as loaded */
	uint64_t		 modseq;	/* the index's as loaded */
	size_t			 nloaded;	/* its entries as loaded */
	int			 rescanned;	/* 0: the folder was unchanged */
};

/* One syncfs() in the durability thread; see struct maildir. */
struct syncer {
	pthread_t		 th;
	int			 fd;		/* owned; a dup of the hot folder */
	int			 err;		/* its errno; 0 = synced */
	atomic_int		 done;		/* set last by the thread */
	const char		*hold;		/* test hook; see syncer_run */
};

struct pending {
	uint32_t		 uid;		/* in its folder's index */
	uint8_t			 cold;		/* of st->cold, not st->hot */
	uint8_t			 flags;
	uint32_t		 bits;		/* keyword letters */
	uint64_t		 size;
	char			 tmp[MDNAME_MAX + 1];	/* name in tmp/ */
};

struct maildir_save {
	struct store_save	 base;		/* first: the driver's handle */
	struct maildir		*st;		/* borrowed */
	char			*mbox;		/* owned; mailbox name */
	int			 folderfd;	/* borrowed from st->hot_fd */
	int			 tmpdirfd;	/* borrowed: its tmp/ */
	int			 curfd;		/* borrowed: its cur/ */
	int			 fd;		/* the tmp file */
	char			 tmpname[MDNAME_MAX + 1];
	struct guid_ctx		*gc;		/* owned */
	uint64_t		 size;		/* bytes written */
	int			 failed;	/* a write failed */
};

static int	have_openat2 = 1;	/* cleared on ENOSYS */

static int	 pending_flush(struct maildir *);
static void	 prefetch_stop(struct maildir *);
static void	 sync_here(struct maildir *);
static void	 sync_start(struct maildir *);
static void	 hot_park(struct maildir *);
static int	 same_fs(int, int);
static void	 ix_trim(struct maildir *, struct folder *, int);
static int	 held_make(struct maildir *, struct folder *, int);
static int	 move_noreplace(int, const char *, int, const char *);
static int	 maildir_set_mailbox_guid(struct maildir *, const char *,
		    const struct guid *);
static void	 maildir_save_abort(struct maildir_save *);
static int	 maildir_close(struct maildir *);
static int	 maildir_expunge_guid(struct maildir *, const char *, uint32_t,
		    const struct guid *);
static int	 set_flags(struct maildir *, const char *, uint32_t, uint8_t,
		    const char *, int, uint8_t, const char *);

/* Closes a folder's directory, tmp/ and cur/ (-1: not open), sets -1. */
static void
dirs_close(int *fd, int *tmpfd, int *curfd)
{
	int	*p[3] = { fd, tmpfd, curfd };
	int	 i;

	for (i = 0; i < 3; i++) {
		if (*p[i] != -1)
			close(*p[i]);
		*p[i] = -1;
	}
}

/* Closes the cold folder's descriptors; its saves are all in cur/. */
static void
cold_release(struct maildir *st)
{
	dirs_close(&st->cold_fd, &st->cold_tmpfd, &st->cold_curfd);
	st->cold = NULL;
}

/*
 * Forgets the hot folder of st, closing its descriptors, once every
 * pending save (the cold folder's too) is in cur/.
 */
static void
hot_drop(struct maildir *st)
{
	(void)pending_flush(st);	/* a failure stays in pend_failed */
	cold_release(st);		/* pending_flush emptied the queue */
	dirs_close(&st->hot_fd, &st->hot_tmpfd, &st->hot_curfd);
	st->hot = NULL;
}

/* Forgets the folder of the last message operation (st->opf). */
static void
op_drop(struct maildir *st)
{
	int	i;

	if (st->op_fd != -1)
		close(st->op_fd);
	for (i = 0; i < 2; i++) {
		if (st->op_sub[i] >= 0)
			close(st->op_sub[i]);
		st->op_sub[i] = SUB_UNOPENED;
	}
	free(st->op_path);
	st->op_path = NULL;
	st->opf = NULL;
	st->op_fd = -1;
}

/*
 * Opens directory rel (relative, already validated; "" is the root
 * itself) beneath rootfd, never following a symlink and never leaving
 * the root.  Returns the descriptor, or -1 with errno set.
 */
static int
open_beneath(int rootfd, const char *rel)
{
	struct open_how	 how;
	char		 buf[MSYNC_PATH_MAX], *comp, *next;
	int		 fd, nfd;
	long		 r;

	if (*rel == '\0')
		return openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (have_openat2) {
		memset(&how, 0, sizeof(how));
		how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		    RESOLVE_NO_MAGICLINKS;
		r = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
		if (r >= 0)
			return (int)r;
		if (errno != ENOSYS && errno != EPERM)
			return -1;
		have_openat2 = 0;
	}
	if (strlen(rel) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, rel);
	fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (comp = buf; fd != -1 && comp != NULL; comp = next) {
		if ((next = strchr(comp, '/')) != NULL)
			*next++ = '\0';
		if (*comp == '\0' || strcmp(comp, ".") == 0 ||
		    strcmp(comp, "..") == 0) {
			close(fd);
			errno = EXDEV;
			return -1;
		}
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		close(fd);
		fd = nfd;
	}
	return fd;
}

/* 1 if dirfd has a cur/ directory (not a symlink). */
static int
has_cur(int dirfd)
{
	struct stat	st;

	if (fstatat(dirfd, "cur", &st, AT_SYMLINK_NOFOLLOW) != 0)
		return 0;
	if (S_ISDIR(st.st_mode))
		return 1;
	errno = ENOTDIR;
	return 0;
}

/*
 * 1 if errno says a path is simply not there (or not a directory, or a
 * symlink we refuse): not a mailbox.  Anything else (EMFILE, EACCES, EIO)
 * means we could not look, which must never be taken for "no mailbox"
 * (issue 16): the caller reports it as an error instead.
 */
static int
errno_gone(void)
{
	return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ||
	    errno == EXDEV;
}

/*
 * The directories of one folder, for an operation on its messages.
 * Every message is reached as (one of these descriptors, a base name
 * without '/'), never as "cur/NAME" relative to the folder: a symlink
 * swapped in for cur/ or new/ after we checked would otherwise be
 * followed by each later rename or unlink (issue 11).  Each is opened
 * at most once per operation, O_NOFOLLOW | O_DIRECTORY, and only when a
 * name in it is asked for: a flag change or an expunge of a message in
 * cur/ (nearly all of them) then costs one open instead of two (issue
 * 10: 2,197 openat calls for a 1% run of 20,000 messages).  -1 if it is
 * missing or not a real directory, SUB_UNOPENED until asked for.
 */
struct subdirs {
	int		 folderfd;	/* borrowed */
	int		 cur;
	int		 new;
	struct maildir	*held;		/* borrowed: op_open's, or NULL */
};

static int	op_sub_get(struct maildir *, int);
static void	chain_post(struct folder *, int, int);

static int
sub_open(int folderfd, const char *sub)
{
	return openat(folderfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
}

static void
subdirs_open(int folderfd, struct subdirs *d)
{
	d->folderfd = folderfd;
	d->cur = d->new = SUB_UNOPENED;
	d->held = NULL;
}

/*
 * subdirs_open for the folder op_open gave (folderfd is st->op_fd):
 * cur/ and new/ are those st holds (opened there when first asked for)
 * and stay open after subdirs_close.
 */
static void
subdirs_held(struct maildir *st, int folderfd, struct subdirs *d)
{
	subdirs_open(folderfd, d);
	if (st != NULL && st->opf != NULL && folderfd == st->op_fd)
		d->held = st;
}

static void
subdirs_close(struct subdirs *d)
{
	if (d->held == NULL) {
		if (d->cur >= 0)
			close(d->cur);
		if (d->new >= 0)
			close(d->new);
	}
	d->cur = d->new = SUB_UNOPENED;
}

/*
 * After an operation through d changed its directories: the stamp chain
 * of st->opf (struct folder) moves on, or breaks if d was not st's.
 */
static void
subdirs_changed(struct subdirs *d)
{
	if (d->held == NULL)
		return;
	if (d->cur >= 0)
		chain_post(d->held->opf, 0, d->cur);
	if (d->new >= 0)
		chain_post(d->held->opf, 1, d->new);
}

/*
 * For an index name "cur/BASE" or "new/BASE": the descriptor of its
 * directory (opened now if this operation had not yet), and *base the
 * name in it.  -1 with errno ENOENT when that directory could not be
 * opened.
 */
static int
sub_at(struct subdirs *d, const char *rel, const char **base)
{
	int	*fdp;

	*base = rel + 4;
	fdp = strncmp(rel, "new/", 4) == 0 ? &d->new : &d->cur;
	if (*fdp == SUB_UNOPENED && d->held != NULL)
		*fdp = op_sub_get(d->held, fdp == &d->new);
	else if (*fdp == SUB_UNOPENED)
		*fdp = sub_open(d->folderfd, fdp == &d->new ? "new" : "cur");
	if (*fdp == -1)
		errno = ENOENT;
	return *fdp;
}

/*
 * unlinkat of the message file rel ("cur/BASE") of the folder on fd
 * (st's op_open folder: its cur/ and new/ as held there; st may be NULL).
 */
static int
unlink_ent(struct maildir *st, int folderfd, const char *rel)
{
	struct subdirs	 d;
	const char	*base;
	int		 dfd, r = -1, e = ENOENT;

	subdirs_held(st, folderfd, &d);
	if ((dfd = sub_at(&d, rel, &base)) != -1) {
		r = unlinkat(dfd, base, 0);
		e = errno;
		if (r == 0)
			subdirs_changed(&d);
	}
	subdirs_close(&d);
	errno = e;
	return r;
}

/*
 * Opens (creating it) the cache directory <cache>/index for the indexes
 * of a read-only store.  Returns the descriptor or -1.
 */
static int
open_cachedir(const struct store_opts *o)
{
	char		 path[MSYNC_PATH_MAX];
	const char	*x, *home;
	int		 n;

	if (o->cachedir != NULL)
		n = snprintf(path, sizeof(path), "%s/index", o->cachedir);
	else if ((x = getenv("XDG_CACHE_HOME")) != NULL && *x == '/')
		n = snprintf(path, sizeof(path), "%s/msync/index", x);
	else if ((home = getenv("HOME")) != NULL && *home == '/')
		n = snprintf(path, sizeof(path), "%s/.cache/msync/index",
		    home);
	else {
		errno = ENOENT;
		return -1;
	}
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (msync_mkdirs(path) != 0)
		return -1;
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The cache file name "<hex of XXH3-128 of key><suffix>". */
static void
cache_name(const char *path, const char *suffix, char out[64])
{
	struct guid	g;
	char		hex[33];

	guid_of(path, strlen(path), &g);
	guid_hex(&g, hex);
	snprintf(out, 64, "%s%s", hex, suffix);
}

/* Forgets the kept messages of f. */
static void
kept_clear(struct maildir *st, struct folder *f)
{
	for (size_t i = 0; i < f->nkept; i++)
		free(f->kept[i].name);
	free(f->kept);
	if (st != NULL)
		st->nkept -= f->nkept;
	f->kept = NULL;
	f->nkept = 0;
}

/* Forgets the listing held for f (struct held), if any. */
static void
held_clear(struct maildir *st, struct folder *f)
{
	if (f->held == NULL)
		return;
	msglist_free(&f->held->l);
	free(f->held);
	f->held = NULL;
	if (st != NULL)
		st->nheld--;
}

/*
 * The listing phase is over (an operation that is no listing began):
 * every listing still held is one store_list_messages was not asked for
 * (its mailbox unchanged since the base), freed now, not at the end.
 */
static void
held_drop_all(struct maildir *st)
{
	for (size_t i = 0; i < st->nf && st->nheld > 0; i++) {
		if (st->f[i]->held == NULL)
			continue;
		LOG4("'%s': held listing dropped, not asked for",
		    st->f[i]->where);
		held_clear(st, st->f[i]);
	}
}

/* Frees a folder.  Accepts NULL. */
static void
folder_free(struct folder *f)
{
	if (f == NULL)
		return;
	kept_clear(NULL, f);
	held_clear(NULL, f);
	free(f->name);
	free(f->dir);
	free(f->where);
	index_free(f->ix);
	index_kw_clear(&f->kw);
	free(f);
}

/*
 * Before one of msync's own changes to cur/ (i 0) or new/ (i 1) of f,
 * whose stat is sb: the chain holds only if nobody moved the stamps.
 */
static void
chain_pre(struct folder *f, int i, const struct stat *sb)
{
	int64_t	sec = i ? f->ch.new_sec : f->ch.cur_sec;
	long	nsec = i ? f->ch.new_nsec : f->ch.cur_nsec;

	if ((int64_t)sb->st_mtim.tv_sec != sec || sb->st_mtim.tv_nsec != nsec)
		f->chain = 0;
}

/* After one of msync's own changes to directory i (on fd) of f. */
static void
chain_post(struct folder *f, int i, int fd)
{
	struct stat	dsb;
	struct timespec	m;

	if (!f->chain)
		return;
	if (fstat(fd, &dsb) == -1) {
		f->chain = 0;
		return;
	}
	m = dsb.st_mtim;
	if (i) {
		f->ch.new_sec = m.tv_sec;
		f->ch.new_nsec = m.tv_nsec;
	} else {
		f->ch.cur_sec = m.tv_sec;
		f->ch.cur_nsec = m.tv_nsec;
	}
	f->ch_ops++;
}

/*
 * 1 if tok (just read) shows f's directories as msync's own changes
 * left them, with the chain unbroken since a valid token.
 */
static int
chain_holds(const struct folder *f, const struct index_token *tok)
{
	return f->chain && f->ch_ops > 0 && tok->cur_ino == f->ch.cur_ino &&
	    tok->new_ino == f->ch.new_ino && tok->cur_sec == f->ch.cur_sec &&
	    tok->cur_nsec == f->ch.cur_nsec && tok->new_sec == f->ch.new_sec &&
	    tok->new_nsec == f->ch.new_nsec;
}

/* Binary search for name; *pos gets the insertion point. */
static struct folder *
folder_find(struct maildir *st, const char *name, size_t *pos)
{
	size_t	lo = 0, hi = st->nf, mid;
	int	c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(st->f[mid]->name, name)) < 0)
			lo = mid + 1;
		else if (c > 0)
			hi = mid;
		else {
			if (pos != NULL)
				*pos = mid;
			return st->f[mid];
		}
	}
	if (pos != NULL)
		*pos = lo;
	return NULL;
}

/* Forgets folder at array position pos (its index must be saved). */
static void
folder_drop(struct maildir *st, size_t pos)
{
	if (st->last == st->f[pos])
		st->last = NULL;
	if (st->opf == st->f[pos])
		op_drop(st);
	folder_free(st->f[pos]);
	memmove(&st->f[pos], &st->f[pos + 1],
	    (st->nf - pos - 1) * sizeof(st->f[0]));
	st->nf--;
}

/*
 * The cache index of a read-only store (issue 10).  Its name is keyed by
 * the folder's PATH (the store root and the folder directory), never by
 * inode numbers, so a store copied back in place (cp -a, rsync -a, a
 * tar restore), moved to another disk mounted at the same place, or
 * remounted with new inode numbers keeps its index.  A copy at another
 * path gets an index of its own (a new UIDVALIDITY: its first sync is a
 * union, which loses nothing), so two live copies never share an index.
 * A folder renamed, or a store moved, on one file system is still found:
 * an alias, "<hash of the directory's device, inode, birth time>.id",
 * names the index file, and a folder whose path has no index takes over
 * the one its alias names (that entry moves to the new path).
 */
static void
cache_index_name_dir(struct maildir *st, const char *dir, char name[64])
{
	char	 key[MSYNC_PATH_MAX * 2 + 16];

	snprintf(key, sizeof(key), "path\n%s\n%s", st->root, dir);
	cache_name(key, ".index", name);
}

static void
cache_index_name(struct maildir *st, struct folder *f, char name[64])
{
	cache_index_name_dir(st, f->dir, name);
}

/* The alias file name of the directory on folderfd; 0, or -1. */
static int
cache_alias_name(int folderfd, char name[64])
{
	struct statx	 sx;
	char		 key[96];

	if (statx(folderfd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME,
	    &sx) != 0)
		return -1;
	snprintf(key, sizeof(key), "dir\n%u:%u:%llu:%lld.%u",
	    sx.stx_dev_major, sx.stx_dev_minor,
	    (unsigned long long)sx.stx_ino,
	    (sx.stx_mask & STATX_BTIME) ? (long long)sx.stx_btime.tv_sec : 0LL,
	    (sx.stx_mask & STATX_BTIME) ? sx.stx_btime.tv_nsec : 0u);
	cache_name(key, ".id", name);
	return 0;
}

/* 1 if s is a cache index name: 32 lowercase hex digits and ".index". */
static int
cache_index_valid(const char *s)
{
	size_t	i;

	for (i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return strcmp(s + 32, ".index") == 0;
}

/*
 * The folder on folderfd has no cache index under its path (name): if
 * its directory's alias names another index (the folder was renamed, or
 * the store moved, since), moves that index to name.  Best effort.
 */
static void
cache_follow_alias(int cfd, int folderfd, const char *name)
{
	char	 alias[64], old[64];
	ssize_t	 n;
	int	 fd;

	if (cache_alias_name(folderfd, alias) != 0 ||
	    (fd = openat(cfd, alias, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return;
	n = read(fd, old, sizeof(old) - 1);
	close(fd);
	if (n < 38)
		return;
	old[n] = '\0';
	old[strcspn(old, "\n")] = '\0';
	if (!cache_index_valid(old) || strcmp(old, name) == 0)
		return;
	/* RENAME_NOREPLACE: an index already at name is never lost. */
	if (move_noreplace(cfd, old, cfd, name) == 0)
		LOG2("cache index %s follows its folder to %s", old, name);
}

/* Points the alias of the directory on folderfd at name.  Best effort. */
static void
cache_alias_save(int cfd, int folderfd, const char *name)
{
	char	 alias[64], buf[80], have[80];
	ssize_t	 n = 0;
	int	 fd;

	if (cache_alias_name(folderfd, alias) != 0)
		return;
	snprintf(buf, sizeof(buf), "%s\n", name);
	if ((fd = openat(cfd, alias, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) !=
	    -1) {
		n = read(fd, have, sizeof(have) - 1);
		close(fd);
		if (n == (ssize_t)strlen(buf) && memcmp(have, buf, n) == 0)
			return;
	}
	(void)index_write_atomic(cfd, alias, buf, strlen(buf));
}

/* Where the index of f lives: *dfd and name (64 bytes). */
static void
index_place(struct maildir *st, struct folder *f, int folderfd, int *dfd,
    char name[64])
{
	if (st->o.readonly) {
		*dfd = st->cachefd;
		cache_index_name(st, f, name);
	} else {
		*dfd = folderfd;
		snprintf(name, 64, "%s", INDEX_FILE);
	}
}

/* Writes f's index if it changed. */
static int
folder_save(struct maildir *st, struct folder *f, int folderfd)
{
	char	name[64];
	int	dfd, r;

	if (f->ix == NULL || !f->ix->dirty)
		return 0;
	if (f->ownix)
		return 0;	/* read-only: the store's own file stays as is */
	index_place(st, f, folderfd, &dfd, name);
	if ((r = index_save(f->ix, dfd, name)) != 0)
		WARN("cannot write index of '%s'", f->where);
	else if (st->o.readonly)
		cache_alias_save(dfd, folderfd, name);
	return r;
}

/*
 * Writable store, folder without msync.index: takes over the index that
 * read-only runs (a --backup or --one-way from this store) kept in the
 * cache, so the two-way sync that follows keeps their sync base.  The
 * cache copy is removed first: two live copies of one index could give
 * one UIDVALIDITY to different UID assignments.  Returns 0 with *out
 * set, MSYNC_ERR_NOTFOUND when there is none, or MSYNC_ERR_NOMEM.
 */
static int
adopt_cache_index(struct maildir *st, struct folder *f, int folderfd,
    struct index **out)
{
	struct index	*ix = NULL;
	char		 name[64];
	int		 cfd, r;

	*out = NULL;
	if ((cfd = open_cachedir(&st->o)) == -1)
		return MSYNC_ERR_NOTFOUND;
	cache_index_name(st, f, name);
	cache_follow_alias(cfd, folderfd, name);
	if ((r = index_load(cfd, name, &ix)) != 0) {
		close(cfd);
		return r == MSYNC_ERR_NOMEM ? r : MSYNC_ERR_NOTFOUND;
	}
	if (unlinkat(cfd, name, 0) == -1) {
		/* Keep the copies apart: build a fresh index instead. */
		index_free(ix);
		close(cfd);
		return MSYNC_ERR_NOTFOUND;
	}
	close(cfd);
	LOG2("taking over the cached index of '%s'", f->where);
	ix->dirty = 1;
	*out = ix;
	return 0;
}

/*
 * Read-only store: loads the index a writable run left in the folder
 * (msync.index), so that read-only and writable runs see one UID space
 * under one UIDVALIDITY and a --backup after a two-way sync of the same
 * pair keeps its base.  Messages that arrived since get UIDs in memory
 * only; the sync state records them, and the next run finds them again
 * by GUID (plan.c).  Without a usable file (missing, unreadable, corrupt,
 * or made for a cur/ that was since replaced) nothing is loaded and the
 * cache keeps the folder's index instead.  Returns 0, or MSYNC_ERR_IO
 * when the file is there but cannot be read (EACCES, EMFILE, EIO): the
 * folder is then unreadable, not new (issue 16).
 */
static int
own_index_load(struct folder *f, int folderfd)
{
	struct index_token	 tok;
	struct timespec		 now;
	struct index		*ix = NULL;
	int			 r;

	if ((r = index_load(folderfd, INDEX_FILE, &ix)) != 0) {
		if (r == MSYNC_ERR_STATE_CORRUPT)
			WARNX("index '%s/%s' is corrupt: a read-only run "
			    "cannot rebuild it, so it indexes the folder anew "
			    "in its cache", f->where, INDEX_FILE);
		if (r == MSYNC_ERR_IO) {
			WARN("cannot read index '%s/%s'", f->where,
			    INDEX_FILE);
			return r;
		}
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (index_token_read(folderfd, &now, &tok) != 0 ||
	    index_token_older(&tok, &ix->token)) {
		index_free(ix);
		return 0;
	}
	LOG3("using the index in '%s' read-only", f->where);
	f->ix = ix;
	f->ownix = 1;
	f->scanned = 0;
	return 0;
}

/*
 * Listing a folder whose index is not loaded yet: if the index file's
 * header is sound and its change token equals the folder's, the header
 * says all a listing needs, and the messages are not read.  Which file
 * is the same choice folder_refresh makes (own_index_load; a read-only
 * folder that took the cache's index keeps it, also after ix_trim let it
 * go and the end-of-run rescan looks at its header).  Returns 1
 * when f->head is set, 0 when the whole index must be loaded.
 */
static int
folder_head(struct maildir *st, struct folder *f, int folderfd)
{
	struct index_head	 h;
	struct index_token	 tok;
	struct timespec		 now;
	char			 name[64];
	int			 dfd, r, own = 0;

	if (st->o.readonly && !f->cacheix) {
		r = index_load_head(folderfd, INDEX_FILE, &h);
		if (r == 0)
			own = 1;
		else if (r != MSYNC_ERR_NOTFOUND)
			return 0;
	}
	if (!own) {
		index_place(st, f, folderfd, &dfd, name);
		if (index_load_head(dfd, name, &h) != 0)
			return 0;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (index_token_read(folderfd, &now, &tok) != 0 ||
	    !index_token_same(&tok, &h.token))
		return 0;
	f->head = h;
	return 1;
}

/*
 * The folder's cur/ or new/ is another directory than the one indexed
 * (a copy, a restore, a remount: new inode numbers).  Names are a
 * message's identity in a Maildir, but a store recreated at the same
 * path could hold other bytes under an old name: one stat per message
 * (once, after such a move) drops the entries whose file has another
 * size, so the rescan that follows hashes those files again.
 */
static void
verify_sizes(struct folder *f, int folderfd)
{
	struct index	*ix = f->ix;
	struct subdirs	 d;
	struct stat	 sb;
	const char	*base;
	size_t		 i, dropped = 0;
	int		 dfd;

	subdirs_open(folderfd, &d);
	for (i = 0; i < ix->n; i++) {
		if (ix->v[i].name == INDEX_NAME_DEAD)
			continue;
		dfd = sub_at(&d, index_name(ix, &ix->v[i]), &base);
		if (dfd == -1 || fstatat(dfd, base, &sb,
		    AT_SYMLINK_NOFOLLOW) != 0)
			continue;	/* gone: the rescan removes it */
		if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size ==
		    ix->v[i].size)
			continue;
		index_remove(ix, &ix->v[i]);
		dropped++;
	}
	subdirs_close(&d);
	if (dropped > 0)
		WARNX("'%s': %zu files changed size since they were indexed: "
		    "hashing them again", f->where, dropped);
}

/*
 * Loads f's index (rebuilding a missing or corrupt one with a new
 * UIDVALIDITY) and brings it up to date according to mode (REFRESH_*):
 * a folder is rescanned when its change token moved, with o.full once per
 * session, and always with REFRESH_FORCE; REFRESH_LAZY does nothing more
 * once the folder was scanned this session.  A changed index is written
 * at once (a read-only store's by the next store_flush).  Returns 0 or
 * MSYNC_ERR_*.
 */
static int
folder_refresh(struct maildir *st, struct folder *f, int folderfd, int mode)
{
	struct index_token	 tok;
	struct timespec		 now;
	struct index		*ix = NULL;
	char			 name[64];
	int			 dfd, r, loaded = 0, built = 0;

	if (f->ix == NULL && mode == REFRESH_HEAD && !st->o.full &&
	    folder_head(st, f, folderfd))
		return 0;
	index_place(st, f, folderfd, &dfd, name);
	if (f->ix == NULL) {
		loaded = 1;
		f->ownix = 0;
		if (st->o.readonly && !f->cacheix &&
		    (r = own_index_load(f, folderfd)) != 0)
			return r;
		if (st->o.readonly && f->ix == NULL)
			f->cacheix = 1;
	}
	if (f->ix == NULL && st->ahead != NULL) {
		/*
		 * A read-ahead thread loaded it, and rescanned it if it
		 * had changed: a rescan as folder_refresh's own, from a
		 * token read first.  The token is checked below as always;
		 * had the folder moved on since, it is rescanned again.
		 */
		struct ahead_folder *af = st->ahead;
		const char	    *hook;

		st->ahead = NULL;
		f->ix = af->ix;
		f->scanned = 0;
		f->chain = 0;
		if (f->run_next == 0)
			f->run_next = af->uidnext ? af->uidnext : 1;
		kept_clear(st, f);
		LOG4("'%s': index loaded (%zu entries)", f->where,
		    af->nloaded);
		if (af->rescanned) {
			LOG3("rescanning '%s'", f->where);
			LOG4("'%s': rescanned ahead", f->where);
		} else
			LOG4("'%s': loaded ahead", f->where);
		f->load_modseq = af->modseq;
		loaded = 0;
		free(af);
		/* Test hook: a change after the read-ahead's rescan. */
		if ((hook = getenv("MSYNC_TEST_AHEAD_HOOK")) != NULL &&
		    *hook != '\0' && system(hook) != 0)
			WARNX("MSYNC_TEST_AHEAD_HOOK failed");
	}
	if (f->ix == NULL) {
		r = index_load(dfd, name, &ix);
		if (r == MSYNC_ERR_NOTFOUND && st->o.readonly) {
			cache_follow_alias(dfd, folderfd, name);
			r = index_load(dfd, name, &ix);
		}
		if (r == MSYNC_ERR_NOTFOUND && !st->o.readonly)
			r = adopt_cache_index(st, f, folderfd, &ix);
		if (r == MSYNC_ERR_NOTFOUND) {
			LOG2("building the index of '%s'", f->where);
			r = index_new(NULL, 0, &ix);
			built = 1;
		} else if (r == MSYNC_ERR_STATE_CORRUPT) {
			WARNX("index '%s/%s' is corrupt: rebuilding it with "
			    "a new UIDVALIDITY", st->o.readonly ?
			    "(cache)" : f->where, name);
			r = index_new(NULL, index_old_uidvalidity(dfd, name),
			    &ix);
			built = 1;
		} else if (r == MSYNC_ERR_IO)
			WARN("cannot read index of '%s'", f->where);
		if (r != 0)
			return r;
		f->ix = ix;
		f->scanned = 0;
		f->chain = 0;
		if (f->run_next == 0)
			f->run_next = ix->uidnext ? ix->uidnext : 1;
		kept_clear(st, f);
	}
	if (loaded) {
		/* What tests count: an index file decoded (issue 10.3). */
		if (!built)
			LOG4("'%s': index loaded (%zu entries)", f->where,
			    f->ix->n);
		f->load_modseq = f->ix->modseq;
	}
	if (mode == REFRESH_LAZY && f->scanned)
		return 0;
	clock_gettime(CLOCK_REALTIME, &now);
	/* cur/ was there a moment ago (folder_open): moved, not gone. */
	if ((r = index_token_read(folderfd, &now, &tok)) != 0)
		return r == MSYNC_ERR_NOTFOUND ? MSYNC_ERR_STORE_CHANGED : r;
	if (index_token_older(&tok, &f->ix->token)) {
		/*
		 * cur/ is older than the index says it was (a backup of the
		 * folder's mail restored under a newer index): what the index
		 * holds that cur/ lacks was not deleted by the user, so a new
		 * UIDVALIDITY makes the next sync a union.  A copy (cp -a,
		 * rsync -a, tar) keeps the stamps, and new inode numbers
		 * (a copy, a remount) only make the folder rescanned.
		 */
		struct index	*fresh = NULL;

		WARNX("'%s' is older than its index (restored from a "
		    "backup?): rebuilding its index with a new UIDVALIDITY",
		    f->where);
		if ((r = index_new(&f->ix->guid, f->ix->uidvalidity,
		    &fresh)) != 0)
			return r;
		index_free(f->ix);
		f->ix = fresh;
		f->ix->dirty = 1;
		mode = REFRESH_FORCE;
	}
	if (f->ix->token.cur_ino != tok.cur_ino ||
	    (f->ix->token.new_ino != 0 && f->ix->token.new_ino != tok.new_ino)) {
		f->ix->moved = 1;
		verify_sizes(f, folderfd);
		mode = REFRESH_FORCE;
	}
	if (mode != REFRESH_FORCE && f->scanned && chain_holds(f, &tok)) {
		/*
		 * Only msync changed the folder since its last scan: the
		 * index says so already.  The token is kept racy, so the next
		 * run rescans (a change in the moment of one of msync's own).
		 */
		LOG3("'%s' changed only by this run: not rescanned", f->where);
		if (memcmp(&tok, &f->ix->token, sizeof(tok)) != 0)
			f->ix->dirty = 1;
		f->ix->token = tok;
		f->ix->token.valid = 0;
	} else if (mode == REFRESH_FORCE || (st->o.full && !f->scanned) ||
	    !index_token_same(&tok, &f->ix->token)) {
		LOG3("rescanning '%s'", f->where);
		f->chain = 0;
		if ((r = index_rescan(f->ix, folderfd, f->where, NULL)) != 0)
			return r == MSYNC_ERR_NOTFOUND ?
			    MSYNC_ERR_STORE_CHANGED : r;
		/* The chain starts from the token read before the scan. */
		if (f->ix->token.valid) {
			f->chain = 1;
			f->ch_ops = 0;
			f->ch = f->ix->token;
		}
	} else if (!f->chain || f->ch_ops == 0) {
		/* Unchanged since a valid token: the chain starts there. */
		f->chain = 1;
		f->ch_ops = 0;
		f->ch = f->ix->token;
	}
	f->scanned = 1;
	/*
	 * A read-only store's cached index is written by store_flush, which
	 * the brain calls after its transfer (and before it reports done,
	 * so before the sync state names these UIDs): the writing overlaps
	 * the other side's work instead of delaying the listing.
	 */
	if (st->o.readonly)
		return 0;
	return folder_save(st, f, folderfd);
}

/*
 * Reads the header of the index of the folder directory dir (open on
 * fd): its own msync.index, or for a read-only store the one in the
 * cache.  Returns 0 or MSYNC_ERR_*.
 */
static int
dir_index_head(struct maildir *st, int fd, const char *dir,
    struct index_head *h)
{
	char	 name[64];
	int	 r;

	r = index_load_head(fd, INDEX_FILE, h);
	if (r != MSYNC_ERR_NOTFOUND || !st->o.readonly || st->cachefd == -1)
		return r;
	cache_index_name_dir(st, dir, name);
	return index_load_head(st->cachefd, name, h);
}

/* 1 if the folder directory dir (open on fd) has an index somewhere. */
static int
dir_has_index(struct maildir *st, int fd, const char *dir)
{
	struct stat	 sb;
	char		 name[64];

	if (fstatat(fd, INDEX_FILE, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	if (!st->o.readonly || st->cachefd == -1)
		return 0;
	cache_index_name_dir(st, dir, name);
	return fstatat(st->cachefd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/*
 * The folder directory dir (open on fd) has no cur/ directory.  Without
 * an index it is no folder of ours (MSYNC_ERR_NOTFOUND).  With one, it
 * is a folder caught half-way (a restore, a user's mv, a racer): its
 * index is its identity and must not be replaced by a fresh one, so it
 * is left alone for this run, with a warning, and store_flush fails the
 * run (exit 2 if it looks like a change under way: seen is set when the
 * folder was seen whole earlier in this run; else 1).  Returns
 * MSYNC_ERR_NOTFOUND or MSYNC_ERR_STORE_CHANGED.
 */
static int
folder_no_cur(struct maildir *st, int fd, const char *dir, int seen)
{
	struct stat	 sb;
	int		 busy;

	if (!dir_has_index(st, fd, dir))
		return MSYNC_ERR_NOTFOUND;
	/* cur/ there but not a directory (a symlink): a swap under way. */
	busy = seen || fstatat(fd, "cur", &sb, AT_SYMLINK_NOFOLLOW) == 0;
	WARNX("folder '%s%s%s' has an index but no cur/ directory (%s): "
	    "not synced in this run, its index kept", st->root, *dir ? "/" : "",
	    log_esc(dir, 255), busy ? "changing under us?" :
	    "half restored or moved?");
	return MSYNC_ERR_STORE_CHANGED;
}

/* 1 if mailbox name was found half there earlier in this run. */
static int
skip_has(const struct maildir *st, const char *name)
{
	size_t	i;

	for (i = 0; i < st->nskip; i++)
		if (strcmp(st->skip[i], name) == 0)
			return 1;
	return 0;
}

/* Remembers mailbox name as half there (best effort: NOMEM forgets). */
static void
skip_add(struct maildir *st, const char *name)
{
	char	**nv, *c;

	st->incomplete = MSYNC_ERR_STORE_CHANGED;
	if (skip_has(st, name) || st->nskip >= MSYNC_MBOX_MAX ||
	    (c = strdup(name)) == NULL)
		return;
	if ((nv = reallocarray(st->skip, st->nskip + 1, sizeof(*nv))) ==
	    NULL) {
		free(c);
		return;
	}
	st->skip = nv;
	st->skip[st->nskip++] = c;
}

/*
 * Finds (or adds) the folder of mailbox name, opens its directory
 * (*folderfd, owned by the caller) and brings its index up to date.
 * Returns 0, MSYNC_ERR_BADNAME, MSYNC_ERR_NOTFOUND or another code.
 */
static int
folder_open(struct maildir *st, const char *name, int mode,
    struct folder **out, int *folderfd)
{
	struct folder	*f = NULL, **nv;
	char		*dir = NULL;
	size_t		 pos, ncap;
	int		 fd = -1, r, trim;

	*out = NULL;
	*folderfd = -1;
	/* A prefetch lives while the caller only lists messages. */
	if (st->pre != NULL && !st->pre_listing)
		prefetch_stop(st);
	if (name == NULL || !names_valid(name, strlen(name)))
		return MSYNC_ERR_BADNAME;
	if (skip_has(st, name))
		return MSYNC_ERR_STORE_CHANGED;
	/*
	 * Only passes that visit each folder once may unload indexes: the
	 * listing (list_mailboxes, which keeps a changed folder's message
	 * listing for list_messages when it lets the index go: struct
	 * held), list_messages, the reading of the messages to send, and
	 * the end-of-run rescan.  Saves, flag changes and expunges come in
	 * one pass per kind of action over the same folders: a bound there
	 * would load a folder's index once per pass.
	 */
	trim = mode == REFRESH_HEAD || mode == REFRESH_TOKEN ||
	    mode == REFRESH_FORCE || mode == REFRESH_READ ||
	    mode == REFRESH_CHECK;
	if (mode != REFRESH_HEAD && mode != REFRESH_TOKEN && !st->listing &&
	    st->nheld > 0)
		held_drop_all(st);
	if (mode == REFRESH_READ)
		mode = REFRESH_LAZY;
	if (mode == REFRESH_CHECK)
		mode = REFRESH_HEAD;
	if (trim && !st->trimming)
		st->pass_start = st->clock;
	st->trimming = trim;
	f = folder_find(st, name, &pos);
	/* Whatever looks at the hot or the cold folder sees its pending
	   saves in cur/. */
	if (f != NULL && (f == st->hot || f == st->cold) && st->npend > 0 &&
	    (r = pending_flush(st)) != 0)
		return r;
	if (f != NULL) {
		if ((fd = open_beneath(st->rootfd, f->dir)) == -1) {
			r = errno_gone() ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
			goto out;
		}
		if (!has_cur(fd)) {
			r = errno_gone() ? folder_no_cur(st, fd, f->dir, f->scanned) :
			    MSYNC_ERR_IO;
			goto out;
		}
	} else {
		if ((r = names_to_dir(name, (int)st->o.layout, &dir)) != 0)
			return r;
		if ((fd = open_beneath(st->rootfd, dir)) == -1) {
			r = errno_gone() ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
			goto out;
		}
		if (!has_cur(fd)) {
			r = errno_gone() ? folder_no_cur(st, fd, dir, 0) :
			    MSYNC_ERR_IO;
			goto out;
		}
		if (st->nf >= MSYNC_MBOX_MAX) {
			r = MSYNC_ERR_TOOBIG;
			goto out;
		}
		if (st->nf == st->capf) {
			ncap = st->capf ? st->capf * 2 : 16;
			if ((nv = reallocarray(st->f, ncap, sizeof(*nv))) ==
			    NULL) {
				r = MSYNC_ERR_NOMEM;
				goto out;
			}
			st->f = nv;
			st->capf = ncap;
		}
		r = MSYNC_ERR_NOMEM;
		if ((f = calloc(1, sizeof(*f))) == NULL ||
		    (f->name = strdup(name)) == NULL ||
		    asprintf(&f->where, "%s%s%s", st->root,
		    *dir ? "/" : "", dir) == -1) {
			if (f != NULL)
				f->where = NULL;
			folder_free(f);
			goto out;
		}
		f->dir = dir;
		dir = NULL;	/* transferred */
		memmove(&st->f[pos + 1], &st->f[pos],
		    (st->nf - pos) * sizeof(st->f[0]));
		st->f[pos] = f;
		st->nf++;
	}
	if ((r = folder_refresh(st, f, fd, mode)) != 0)
		goto out;
	f->used = ++st->clock;
	f->done = 0;
	if (f->ix != NULL && f != st->last) {
		/* The one left behind may have grown since (saves). */
		if (st->last != NULL && st->last->ix != NULL)
			st->ix_est += st->last->ix->n;
		st->last = f;
		st->ix_est += f->ix->n;
		if (trim && st->ix_est > st->ix_next)
			ix_trim(st, f, 0);
	}
	*out = f;
	*folderfd = fd;
	fd = -1;	/* transferred */
	r = 0;
out:
	if (r == MSYNC_ERR_STORE_CHANGED)
		skip_add(st, name);
	free(dir);
	if (fd != -1)
		close(fd);
	return r;
}

/*
 * 1 if the path of st->opf's cur/ (i 0) or new/ (i 1) still leads, from
 * the root, to the directory st->op_sub[i] holds open: the folder was
 * neither moved nor replaced, nor that directory swapped, since it was
 * opened.  The path's last component is not followed; a symlink put in
 * for a directory above it that leads back to the same directory passes
 * (the descriptors then still reach the messages the index names, and
 * the end-of-run rescan and folder_settle open the folder again with
 * open_beneath, which refuses the symlink).
 */
static int
op_still(struct maildir *st, int i)
{
	struct stat	sb;

	memcpy(st->op_path + st->op_dlen, i ? "new" : "cur", 3);
	if (fstatat(st->rootfd, st->op_path, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
	    !S_ISDIR(sb.st_mode) || sb.st_dev != st->op_dev[i] ||
	    sb.st_ino != st->op_ino[i])
		return 0;
	chain_pre(st->opf, i, &sb);
	return 1;
}

/*
 * cur/ (i 0) or new/ (i 1) of st->opf, opened on st->op_fd the first
 * time it is asked for and held (borrowed by the caller).  -1 if it
 * cannot be opened (not held: the next operation tries again).
 */
static int
op_sub_get(struct maildir *st, int i)
{
	struct stat	sb;
	int		fd;

	if (st->op_sub[i] != SUB_UNOPENED)
		return st->op_sub[i];
	if ((fd = sub_open(st->op_fd, i ? "new" : "cur")) == -1)
		return -1;
	if (fstat(fd, &sb) == -1) {
		close(fd);
		return -1;
	}
	chain_pre(st->opf, i, &sb);
	st->op_sub[i] = fd;
	st->op_dev[i] = sb.st_dev;
	st->op_ino[i] = sb.st_ino;
	return fd;
}

/*
 * folder_open(mode) for reading a message (REFRESH_READ), changing its
 * flags or expunging it (REFRESH_LAZY), through the cache st->opf (and,
 * with hook, counting the operation for MSYNC_TEST_OP_HOOK): *f
 * the folder and *folderfd its directory, borrowed from st until the
 * next op_open or op_drop; subdirs_held then reaches its cur/ and new/.
 * The cache is used only where folder_open would neither refresh the
 * folder nor count or unload indexes (the folder is the last one it
 * opened), so the two paths differ only in the system calls made.
 * Returns 0 or what folder_open returns.
 */
/* The test hook MSYNC_TEST_OP_HOOK: counts a message operation. */
static void
op_hook_run(struct maildir *st)
{
	if (st->op_hook != NULL && ++st->op_n == st->op_hook_at &&
	    system(st->op_hook) != 0)
		WARNX("MSYNC_TEST_OP_HOOK failed");
}

static int
op_open(struct maildir *st, const char *name, int mode, struct folder **f,
    int *folderfd, int hook)
{
	int	 fd, i, held = 0, r;

	*f = NULL;
	*folderfd = -1;
	if (hook)
		op_hook_run(st);
	if (st->opf != NULL && st->opf == st->last &&
	    strcmp(st->opf->name, name) == 0 && !skip_has(st, name) &&
	    st->opf->ix != NULL && st->opf->scanned) {
		for (i = 0; i < 2; i++)
			if (st->op_sub[i] >= 0 && (held++, !op_still(st, i)))
				break;
		if (held > 0 && i == 2) {
			/* As folder_open does for a folder it need not
			   refresh. */
			if ((st->opf == st->hot || st->opf == st->cold) &&
			    st->npend > 0 &&
			    (r = pending_flush(st)) != 0)
				return r;
			if (mode == REFRESH_READ && !st->trimming)
				st->pass_start = st->clock;
			st->trimming = mode == REFRESH_READ;
			st->opf->used = ++st->clock;
			*f = st->opf;
			*folderfd = st->op_fd;
			return 0;
		}
	}
	op_drop(st);
	if ((r = folder_open(st, name, mode, f, &fd)) != 0)
		return r;
	if (asprintf(&st->op_path, "%s%scur", (*f)->dir,
	    *(*f)->dir ? "/" : "") == -1) {
		st->op_path = NULL;
		close(fd);
		*f = NULL;
		return MSYNC_ERR_NOMEM;
	}
	st->op_dlen = strlen(st->op_path) - 3;
	st->opf = *f;
	st->op_fd = *folderfd = fd;
	return 0;
}

/*
 * Takes the lock file: msync.lock in the root, or <hash>.lock in the
 * cache directory for a read-only store.  Waits up to o.lock_wait
 * seconds.  Returns 0 or MSYNC_ERR_LOCKED (*holder set), MSYNC_ERR_IO.
 */
static int
store_lock(struct maildir *st, char **holder)
{
	struct timespec	 start, now, nap = { 0, LOCK_POLL_NS };
	struct stat	 sb;
	char		 name[64], buf[300], host[256];
	ssize_t		 n;
	size_t		 i;
	int		 fd;

	if (st->o.readonly) {
		cache_name(st->root, ".lock", name);
		fd = openat(st->cachefd, name, O_RDWR | O_CREAT | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	} else
		fd = openat(st->rootfd, LOCK_FILE, O_RDWR | O_CREAT |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		WARN("cannot open lock file in '%s'", st->root);
		return MSYNC_ERR_IO;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			close(fd);
			return MSYNC_ERR_IO;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= st->o.lock_wait) {
			n = pread(fd, buf, sizeof(buf) - 1, 0);
			buf[n > 0 ? n : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			for (i = 0; buf[i] != '\0'; i++)
				if (buf[i] < 0x20 || buf[i] > 0x7e)
					buf[i] = '?';
			close(fd);
			if (holder != NULL)
				*holder = strdup(buf[0] ? buf : "unknown");
			return MSYNC_ERR_LOCKED;
		}
		nanosleep(&nap, NULL);
	}
	if (gethostname(host, sizeof(host)) == -1)
		strcpy(host, "unknown");
	host[sizeof(host) - 1] = '\0';
	n = snprintf(buf, sizeof(buf), "pid %ld on %s\n", (long)getpid(),
	    host);
	/*
	 * Written over the last holder's line, cut only where that was
	 * longer: a truncation waits for a write-out of the old line in
	 * progress (13 ms seen on a busy disk, in a run that otherwise
	 * writes nothing), and on a journalled ext4 also journals an
	 * orphan record.
	 */
	if (pwrite(fd, buf, (size_t)n, 0) != n || fstat(fd, &sb) == -1 ||
	    (sb.st_size > n && ftruncate(fd, n) == -1))
		LOG2("cannot record the holder in the lock file");
	st->lockfd = fd;
	return 0;
}

/* The host name for file names, '/' and ':' escaped as Dovecot does. */
static void
host_escaped(char out[160])
{
	char	h[128];
	size_t	i, o = 0;

	if (gethostname(h, sizeof(h)) == -1)
		strcpy(h, "localhost");
	h[sizeof(h) - 1] = '\0';
	for (i = 0; h[i] != '\0' && o < 150; i++) {
		if (h[i] == '/') {
			memcpy(out + o, "\\057", 4);
			o += 4;
		} else if (h[i] == ':') {
			memcpy(out + o, "\\072", 4);
			o += 4;
		} else if (h[i] > 0x20 && h[i] < 0x7f && h[i] != '.')
			out[o++] = h[i];
		else if (h[i] == '.')
			out[o++] = '.';
	}
	if (o == 0)
		out[o++] = 'x';
	out[o] = '\0';
}

/*
 * The test hook MSYNC_TEST_OP_HOOK=N:cmd: cmd runs before the store's Nth
 * message operation (read, flag change, expunge), so that a test can
 * change the folder between two of them.
 */
static void
op_hook_get(struct maildir *st)
{
	const char	*e = getenv("MSYNC_TEST_OP_HOOK");
	char		*end;
	unsigned long	 v;

	if (e == NULL || *e == '\0')
		return;
	errno = 0;
	v = strtoul(e, &end, 10);
	if (errno != 0 || *end != ':' || v == 0)
		return;
	st->op_hook_at = v;
	st->op_hook = end + 1;
}

/*
 * IX_KEEP, or the test hook MSYNC_TEST_INDEX_KEEP (a number of entries,
 * at least 1), which lets small test stores exercise ix_trim.
 */
static size_t
ix_keep_bound(void)
{
	const char	*e = getenv("MSYNC_TEST_INDEX_KEEP");
	char		*end;
	unsigned long	 v;

	if (e == NULL || *e == '\0')
		return IX_KEEP;
	errno = 0;
	v = strtoul(e, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > SIZE_MAX / 4)
		return IX_KEEP;
	return (size_t)v;
}

/* Opens the store; see store.h. */
static int
maildir_open(const struct store_opts *o, struct maildir **out, char **holder)
{
	struct maildir	*st = NULL;
	char		*rp = NULL;
	int		 r = MSYNC_ERR_IO;

	*out = NULL;
	if (holder != NULL)
		*holder = NULL;
	if (o->path == NULL || *o->path == '\0' ||
	    strlen(o->path) >= MSYNC_PATH_MAX)
		return MSYNC_ERR_USAGE;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return MSYNC_ERR_NOMEM;
	st->o = *o;
	st->rootfd = st->lockfd = st->cachefd = -1;
	st->hot_fd = st->hot_tmpfd = st->hot_curfd = -1;
	st->cold_fd = st->cold_tmpfd = st->cold_curfd = -1;
	st->op_fd = -1;
	st->op_sub[0] = st->op_sub[1] = SUB_UNOPENED;
	op_hook_get(st);
	host_escaped(st->host);
	st->pid = (long)getpid();
	st->ix_keep = ix_keep_bound();
	st->ix_next = st->ix_keep;
	if (o->create && !o->readonly && (r = msync_mkdirs(o->path)) != 0) {
		WARN("cannot create '%s'", o->path);
		goto out;
	}
	if ((st->rootfd = open(o->path, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		r = errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
		goto out;
	}
	if ((rp = realpath(o->path, NULL)) == NULL) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	st->root = rp;
	if (o->readonly && (st->cachefd = open_cachedir(o)) == -1) {
		WARN("cannot open the cache directory");
		r = MSYNC_ERR_IO;
		goto out;
	}
	if ((r = store_lock(st, holder)) != 0)
		goto out;
	/*
	 * A root that has its index but no cur/ is an INBOX caught half-way
	 * (folder_no_cur), not a new store: an empty cur/ made here would
	 * make all its mail look deleted.
	 */
	if (o->create && !o->readonly && !has_cur(st->rootfd) &&
	    !dir_has_index(st, st->rootfd, "")) {
		if ((mkdirat(st->rootfd, "tmp", 0700) == -1 &&
		    errno != EEXIST) ||
		    (mkdirat(st->rootfd, "new", 0700) == -1 &&
		    errno != EEXIST) ||
		    (mkdirat(st->rootfd, "cur", 0700) == -1 &&
		    errno != EEXIST)) {
			WARN("cannot create '%s/cur'", st->root);
			r = MSYNC_ERR_IO;
			goto out;
		}
		(void)fsync(st->rootfd);
	}
	*out = st;
	st = NULL;	/* transferred */
	r = 0;
out:
	maildir_close(st);
	return r;
}

/* Writes every changed index and fsyncs touched cur/ directories. */
/*
 * Before a writable folder's index is written after msync's own changes:
 * if cur/ and new/ now give a racy token (changed within the racy window,
 * as they just were), the index takes it.  A racy token is never trusted
 * as "unchanged", so this hides nothing, yet its stamps are what the
 * end-of-run rescan would record (and what tells a restored older cur/
 * later): that rescan then finds the same token and the index is not
 * written a second time.  A valid token is not taken: another program
 * may have changed the folder since the last scan.
 */
static void
own_writes_token(struct maildir *st, struct folder *f, int folderfd)
{
	struct index_token	 tok;
	struct timespec		 now;

	if (st->o.readonly || f->ix == NULL || !f->ix->dirty)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	if (index_token_read(folderfd, &now, &tok) != 0 || tok.valid ||
	    tok.cur_ino != f->ix->token.cur_ino ||
	    tok.new_ino != f->ix->token.new_ino)
		return;
	f->ix->token = tok;
}

/*
 * Makes what this run did to folder f durable: fsyncs its cur/ after
 * moves into it, and writes its index if it changed.  Returns 0,
 * MSYNC_ERR_NOTFOUND when the folder is gone (nothing to write it to),
 * or the first error (every step is tried).
 */
static int
folder_settle(struct maildir *st, struct folder *f)
{
	int	 fd, cfd, r, ret = 0;

	if ((f->ix == NULL || !f->ix->dirty) && f->synced == 0)
		return 0;
	if ((fd = open_beneath(st->rootfd, f->dir)) == -1) {
		/* Gone under us: nothing to write it to. */
		if (errno_gone())
			return MSYNC_ERR_NOTFOUND;
		WARN("cannot open '%s'", f->where);
		return MSYNC_ERR_IO;
	}
	if (f->synced) {
		if ((cfd = openat(fd, "cur", O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) != -1) {
			if (fsync(cfd) == -1)
				ret = MSYNC_ERR_IO;
			close(cfd);
		} else if (!errno_gone())
			ret = MSYNC_ERR_IO;
		f->synced = 0;
	}
	own_writes_token(st, f, fd);
	if ((r = folder_save(st, f, fd)) != 0 && ret == 0)
		ret = r;
	close(fd);
	return ret;
}

/* By uid. */
static int
kept_cmp(const void *x, const void *y)
{
	const struct kept	*a = x, *b = y;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

/*
 * Before ix_trim frees f's index: keeps the messages this run found in
 * it, if they are few enough (struct folder).  Best effort: none kept is
 * only the whole index decoded again to read one.
 */
static void
kept_fill(struct maildir *st, struct folder *f)
{
	struct index	*ix = f->ix;
	size_t		 i, n = 0;

	kept_clear(st, f);
	if (f->run_next == 0)
		return;
	for (i = 0; i < ix->n; i++)
		if (ix->v[i].name != INDEX_NAME_DEAD &&
		    ix->v[i].uid >= f->run_next)
			n++;
	if (n == 0 || n > ix->n / KEPT_SHARE || n > KEPT_MAX - st->nkept ||
	    (f->kept = calloc(n, sizeof(*f->kept))) == NULL)
		return;
	for (i = 0; i < ix->n && f->nkept < n; i++) {
		const struct index_ent	*e = &ix->v[i];
		struct kept		*k = &f->kept[f->nkept];

		if (e->name == INDEX_NAME_DEAD || e->uid < f->run_next)
			continue;
		if ((k->name = strdup(index_name(ix, e))) == NULL) {
			kept_clear(st, f);
			return;
		}
		k->uid = e->uid;
		k->size = e->size;
		k->date = e->date;
		f->nkept++;
		st->nkept++;
	}
	qsort(f->kept, f->nkept, sizeof(*f->kept), kept_cmp);
}

/*
 * Opens message uid of folder name from what kept_fill kept, without
 * loading the folder's index: only if the folder's index is not loaded,
 * the message is kept, and its file is there under the kept name with
 * the kept size and mtime (what check_unchanged asks).  Anything else
 * (a renamed, replaced or vanished file, a moved folder) returns -1 and
 * the caller takes the usual path, which loads the index and handles
 * it.  Returns 0 with *fdp open, or -1.
 */
static int
kept_open(struct maildir *st, const char *name, uint32_t uid, int *fdp,
    uint64_t *size, int64_t *date)
{
	struct folder	*f;
	struct kept	 key, *k;
	struct stat	 sb;
	int		 ffd, dfd, fd;

	if (st->nheld > 0)
		held_drop_all(st);
	key.uid = uid;
	if ((f = folder_find(st, name, NULL)) == NULL || f->ix != NULL ||
	    f->nkept == 0 || f == st->hot || f == st->cold ||
	    skip_has(st, name) ||
	    (k = bsearch(&key, f->kept, f->nkept, sizeof(*k),
	    kept_cmp)) == NULL)
		return -1;
	if ((ffd = open_beneath(st->rootfd, f->dir)) == -1)
		return -1;
	k->name[3] = '\0';
	dfd = openat(ffd, k->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	k->name[3] = '/';
	close(ffd);
	if (dfd == -1)
		return -1;
	fd = openat(dfd, k->name + 4, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	close(dfd);
	if (fd == -1)
		return -1;
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size != k->size ||
	    (int64_t)sb.st_mtim.tv_sec != k->date) {
		close(fd);
		return -1;
	}
	if (size != NULL)
		*size = (uint64_t)sb.st_size;
	if (date != NULL)
		*date = k->date;
	*fdp = fd;
	return 0;
}

/* Most recently opened first. */
static int
used_cmp(const void *x, const void *y)
{
	const struct folder	*a = *(struct folder *const *)x;
	const struct folder	*b = *(struct folder *const *)y;

	return a->used > b->used ? -1 : a->used < b->used;
}

/*
 * Keeps the loaded indexes at most st->ix_keep entries (issue 10.3): an
 * index is written (folder_settle, what store_flush would do) and freed,
 * down to half the bound.  The passes that trim (see folder_open) visit
 * every folder once: only the folders this pass opened already are
 * unloaded, as it comes to the others next (so a pass over more than
 * the bound may hold more until it is done with some).  Never keep's
 * (just opened: its caller uses it), the hot and the cold folder's
 * (their saves wait in tmp/ and name their entries) or a read-only
 * run's in-memory use of a folder's own index (its new UIDs are in
 * memory only); in the listing, only folders whose listing is held:
 * another loaded there (rescanned, its contents unchanged: a racy token)
 * may still be listed (the server's by-reference listing) or saved into,
 * which would decode it again, so it waits for the later passes as
 * before.  Best effort: what cannot be written stays loaded, and
 * store_flush reports it.  With done, the candidates are the folders the
 * caller is done with instead (maildir_done).
 */
static void
ix_trim(struct maildir *st, struct folder *keep, int done)
{
	struct folder	**c;
	size_t		  sum = 0, nc = 0, i;

	for (i = 0; i < st->nf; i++)
		if (st->f[i]->ix != NULL)
			sum += st->f[i]->ix->n;
	if (sum > st->ix_keep &&
	    (c = reallocarray(NULL, st->nf, sizeof(*c))) != NULL) {
		for (i = 0; i < st->nf; i++)
			if (st->f[i]->ix != NULL && st->f[i] != keep &&
			    st->f[i] != st->hot && st->f[i] != st->cold &&
			    !st->f[i]->ownix &&
			    (!st->listing || st->f[i]->held != NULL) &&
			    (done ? st->f[i]->done :
			    st->f[i]->used > st->pass_start))
				c[nc++] = st->f[i];
		qsort(c, nc, sizeof(*c), used_cmp);
		for (i = 0; i < nc && sum > st->ix_keep / 2; i++) {
			if (folder_settle(st, c[i]) != 0)
				continue;
			LOG4("'%s': index unloaded (%zu entries loaded)",
			    c[i]->where, sum);
			sum -= c[i]->ix->n;
			kept_fill(st, c[i]);
			index_free(c[i]->ix);
			c[i]->ix = NULL;
			c[i]->scanned = 0;
			if (st->last == c[i])
				st->last = NULL;
		}
		free(c);
	}
	st->ix_est = sum;
	st->ix_next = (sum > st->ix_keep ? sum : st->ix_keep) +
	    st->ix_keep / 2;
}

/*
 * store_done: past the bound on loaded indexes, the folders the caller
 * is done with are unloaded, the hot one among them once its pending
 * saves are in cur/ (as the next save into another folder would put
 * them).  Below the bound nothing changes, so a folder is not loaded
 * twice (for the end-of-run rescan) when memory does not ask for it.
 * With name NULL: 1 if the loaded indexes may be past the bound (ix_est
 * counts high), which the brain asks before it checks a folder early.
 */
static int
maildir_done(struct maildir *st, const char *name)
{
	struct folder	*f;

	if (name == NULL)
		return st->ix_est > st->ix_keep;
	if ((f = folder_find(st, name, NULL)) == NULL || f->ix == NULL)
		return 0;
	f->done = 1;
	if (st->ix_est <= st->ix_next)
		return 0;
	if (st->hot != NULL && st->hot->done)
		hot_drop(st);
	ix_trim(st, NULL, 1);
	return 0;
}

static int
maildir_flush(struct maildir *st)
{
	size_t		 i;
	int		 r, ret;

	/* A save that never reached cur/ must fail the run. */
	ret = pending_flush(st);
	if (ret == 0)
		ret = st->incomplete;
	for (i = 0; i < st->nf; i++)
		if ((r = folder_settle(st, st->f[i])) != 0 &&
		    r != MSYNC_ERR_NOTFOUND && ret == 0)
			ret = r;
	return ret;
}

/* Flushes, unlocks and frees.  Accepts NULL. */
static int
maildir_close(struct maildir *st)
{
	size_t	i;
	int	r = 0;

	if (st == NULL)
		return 0;
	prefetch_stop(st);
	if (st->rootfd != -1 && st->lockfd != -1)
		r = maildir_flush(st);
	hot_drop(st);
	op_drop(st);
	if (st->nsync > 0)
		LOG2("'%s': %u syncfs() for saved messages, %u of them in the "
		    "durability thread; saving waited %lld ms for them",
		    st->root, st->nsync, st->nsync_bg, st->wait_ms);
	free(st->pend);
	for (i = 0; i < st->nf; i++)
		folder_free(st->f[i]);
	free(st->f);
	for (i = 0; i < st->nskip; i++)
		free(st->skip[i]);
	free(st->skip);
	if (st->lockfd != -1)
		close(st->lockfd);	/* releases the flock */
	if (st->cachefd != -1)
		close(st->cachefd);
	if (st->rootfd != -1)
		close(st->rootfd);
	free(st->root);
	free(st);
	return r;
}

/* Fills *m from folder f. */
static int
status_of(const struct folder *f, struct store_mailbox *m)
{
	memset(m, 0, sizeof(*m));
	if ((m->name = strdup(f->name)) == NULL)
		return MSYNC_ERR_NOMEM;
	if (f->ix == NULL) {		/* listed from the header */
		m->guid = f->head.guid;
		m->uidvalidity = f->head.uidvalidity;
		m->uidnext = f->head.uidnext;
		m->modseq = f->head.modseq;
		m->count = (uint32_t)f->head.count;
		m->bytes = f->head.bytes;
		return 0;
	}
	m->guid = f->ix->guid;
	m->uidvalidity = f->ix->uidvalidity;
	m->uidnext = f->ix->uidnext;
	m->modseq = f->ix->modseq;
	m->count = (uint32_t)f->ix->live;
	m->bytes = f->ix->bytes;
	return 0;
}

/* A growing list of names found while listing. */
struct namelist {
	char	**v;		/* owned */
	size_t	  n, cap;
};

/* Appends a copy of name (owned: takes name). */
static int
namelist_add(struct namelist *l, char *name)
{
	char	**nv;
	size_t	  ncap;

	if (l->n >= MSYNC_MBOX_MAX) {
		free(name);
		return MSYNC_ERR_TOOBIG;
	}
	if (l->n == l->cap) {
		ncap = l->cap ? l->cap * 2 : 32;
		if ((nv = reallocarray(l->v, ncap, sizeof(*nv))) == NULL) {
			free(name);
			return MSYNC_ERR_NOMEM;
		}
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n++] = name;
	return 0;
}

/* Maildir++: every ".A.B" directory of the root with a cur/. */
static int
list_maildirpp(struct maildir *st, struct namelist *l)
{
	struct dirent	*de;
	DIR		*d;
	char		*name;
	int		 fd, sub, hc, r = 0;

	if ((fd = openat(st->rootfd, ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return MSYNC_ERR_IO;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) {
			if (de->d_type == DT_LNK)
				WARNX("skipping '%s/%s': a symbolic link",
				    st->root, log_esc(de->d_name, 255));
			continue;
		}
		if (names_from_maildirpp(de->d_name, &name) != 0) {
			WARNX("skipping '%s/%s': not a Maildir++ folder name",
			    st->root, log_esc(de->d_name, 255));
			continue;
		}
		if ((sub = openat(dirfd(d), de->d_name, O_RDONLY |
		    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
			if (errno == ELOOP)
				WARNX("skipping '%s/%s': a symbolic link",
				    st->root, log_esc(de->d_name, 255));
			else if (!errno_gone()) {
				WARN("cannot open '%s/%s'", st->root,
				    log_esc(de->d_name, 255));
				free(name);
				r = MSYNC_ERR_IO;
				break;
			}
			free(name);
			continue;
		}
		hc = has_cur(sub);
		if (!hc && !errno_gone()) {
			WARN("cannot look into '%s/%s'", st->root,
			    log_esc(de->d_name, 255));
			free(name);
			close(sub);
			r = MSYNC_ERR_IO;
			break;
		}
		if (!hc && !dir_has_index(st, sub, de->d_name)) {
			WARNX("skipping folder '%s/%s': no cur/ directory",
			    st->root, log_esc(de->d_name, 255));
			free(name);
			close(sub);
			continue;
		}
		close(sub);
		if ((r = namelist_add(l, name)) != 0)
			break;
	}
	closedir(d);
	return r;
}

/*
 * fs layout: walks the directories below dirfd (relative path rel,
 * depth levels deep); one with a cur/ is a mailbox.
 */
static int
list_fs(struct maildir *st, int dfd, const char *rel, int depth,
    struct namelist *l)
{
	struct dirent	*de;
	DIR		*d;
	char		*path = NULL, *name;
	int		 fd, sub, hc, r = 0;

	if ((fd = dup(dfd)) == -1)
		return MSYNC_ERR_IO;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return MSYNC_ERR_IO;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, "cur") == 0 ||
		    strcmp(de->d_name, "new") == 0 ||
		    strcmp(de->d_name, "tmp") == 0)
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) {
			if (de->d_type == DT_LNK)
				WARNX("skipping '%s/%s%s%s': a symbolic link",
				    st->root, rel, *rel ? "/" : "",
				    log_esc(de->d_name, 255));
			continue;
		}
		if ((sub = openat(dirfd(d), de->d_name, O_RDONLY |
		    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
			if (errno_gone())
				continue;	/* a file, or a symlink */
			WARN("cannot open '%s/%s%s%s'", st->root, rel,
			    *rel ? "/" : "", log_esc(de->d_name, 255));
			r = MSYNC_ERR_IO;
			break;
		}
		free(path);
		if (asprintf(&path, "%s%s%s", rel, *rel ? "/" : "",
		    de->d_name) == -1) {
			path = NULL;
			close(sub);
			r = MSYNC_ERR_NOMEM;
			break;
		}
		hc = has_cur(sub);
		if (!hc && !errno_gone()) {
			WARN("cannot look into '%s/%s'", st->root,
			    log_esc(path, 255));
			close(sub);
			r = MSYNC_ERR_IO;
			break;
		}
		if (hc || dir_has_index(st, sub, path)) {
			if (names_from_mutf7(path, &name) != 0 ||
			    !names_valid(name, strlen(name))) {
				if (name != NULL)
					free(name);
				WARNX("skipping '%s/%s': not a mailbox name",
				    st->root, log_esc(path, 255));
			} else if ((r = namelist_add(l, name)) != 0) {
				close(sub);
				break;
			}
		}
		if (depth + 1 < MSYNC_NAME_DEPTH)
			r = list_fs(st, sub, path, depth + 1, l);
		else
			WARNX("not descending into '%s/%s': too deep",
			    st->root, log_esc(path, 255));
		close(sub);
		if (r != 0)
			break;
	}
	free(path);
	closedir(d);
	return r;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int	 unique_guid(struct maildir *, struct store_mailbox *, size_t *);

/*
 * The status of the half-there folder of mailbox name (folder_no_cur),
 * from its index's header.  Returns 0, MSYNC_ERR_NOMEM, or another code
 * when that cannot be read (the folder is then left out).
 */
static int
incomplete_status(struct maildir *st, const char *name,
    struct store_mailbox *m)
{
	struct index_head	 h;
	char			*dir = NULL;
	int			 fd, r;

	memset(m, 0, sizeof(*m));
	if ((r = names_to_dir(name, (int)st->o.layout, &dir)) != 0)
		return r;
	if ((fd = open_beneath(st->rootfd, dir)) == -1) {
		free(dir);
		return MSYNC_ERR_NOTFOUND;
	}
	r = dir_index_head(st, fd, dir, &h);
	close(fd);
	free(dir);
	if (r != 0)
		return r == MSYNC_ERR_NOMEM ? r : MSYNC_ERR_NOTFOUND;
	if ((m->name = strdup(name)) == NULL)
		return MSYNC_ERR_NOMEM;
	/*
	 * modseq 0 never equals a base's, so the brain asks for the
	 * folder's messages, which folder_open refuses: the run stops
	 * before anything is planned or changed (exit 2).  Stopping is the
	 * only safe skip: a plan made without the folder would delete it,
	 * or create it again, on one side, and actions on it would fail
	 * with the state then saved as if they had not.
	 */
	m->guid = h.guid;
	m->uidvalidity = h.uidvalidity;
	m->uidnext = h.uidnext;
	m->modseq = 0;
	m->count = (uint32_t)h.count;
	m->bytes = h.bytes;
	return 0;
}



/*
 * Item i of the read-ahead: loads the index of folder names[i] and, if
 * the folder changed since it was saved, rescans it, the way
 * folder_refresh would, and returns it (owned by the read-ahead, then by
 * the caller), or NULL for every other case, which folder_refresh
 * handles (and reports) itself: an unchanged folder when only its
 * header is read, a read-only store's folder with an index of its own,
 * a missing or unreadable index, a folder moved or older than its
 * index, and any error.
 */
static void *
ahead_job(void *ctx, size_t i)
{
	struct ahead		*a = ctx;
	struct maildir		*st = a->st;
	struct ahead_folder	*af = NULL;
	struct index_head	 h;
	struct index_token	 tok;
	struct timespec		 now;
	struct index		*ix = NULL;
	struct stat		 sb;
	char			*dir = NULL, *where = NULL, name[64];
	int			 fd = -1, dfd;

	if (a->skip != NULL && a->skip[i])
		return NULL;
	if (names_to_dir(a->names[i], (int)st->o.layout, &dir) != 0 ||
	    (fd = open_beneath(st->rootfd, dir)) == -1)
		goto out;
	if (st->o.readonly) {
		/* Its own msync.index comes first (own_index_load). */
		if (st->cachefd == -1 || fstatat(fd, INDEX_FILE, &sb,
		    AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
			goto out;
		dfd = st->cachefd;
		cache_index_name_dir(st, dir, name);
	} else {
		dfd = fd;
		snprintf(name, sizeof(name), "%s", INDEX_FILE);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (index_load_head(dfd, name, &h) != 0 ||
	    index_token_read(fd, &now, &tok) != 0)
		goto out;
	if (index_token_same(&tok, &h.token)) {
		/* Unchanged: loaded as it is, if the pass needs it. */
		if (!a->load_unchanged || index_load(dfd, name, &ix) != 0 ||
		    (af = calloc(1, sizeof(*af))) == NULL)
			goto out;
		af->uidnext = ix->uidnext;
		af->modseq = ix->modseq;
		af->nloaded = ix->n;
		af->ix = ix;
		ix = NULL;	/* transferred */
		goto out;
	}
	if (index_load(dfd, name, &ix) != 0)
		goto out;
	if (index_token_older(&tok, &ix->token) ||
	    ix->token.cur_ino != tok.cur_ino ||
	    (ix->token.new_ino != 0 && ix->token.new_ino != tok.new_ino))
		goto out;
	if (asprintf(&where, "%s%s%s", st->root, *dir ? "/" : "", dir) == -1) {
		where = NULL;
		goto out;
	}
	if ((af = calloc(1, sizeof(*af))) == NULL)
		goto out;
	af->uidnext = ix->uidnext;
	af->modseq = ix->modseq;
	af->nloaded = ix->n;
	af->rescanned = 1;
	if (index_rescan(ix, fd, where, NULL) != 0) {
		free(af);
		af = NULL;
		goto out;
	}
	af->ix = ix;
	ix = NULL;	/* transferred */
out:
	index_free(ix);
	free(where);
	free(dir);
	if (fd != -1)
		close(fd);
	return af;
}

static void
ahead_free(void *ctx, void *res)
{
	struct ahead_folder	*af = res;

	(void)ctx;
	if (af == NULL)
		return;
	index_free(af->ix);
	free(af);
}

/* Lists every mailbox with its status; see store.h. */
static int
maildir_list_mailboxes(struct maildir *st, struct store_mailbox **out,
    size_t *n)
{
	struct namelist		 l;
	struct store_mailbox	*v = NULL;
	struct folder		*f;
	struct readahead	*ra = NULL;
	struct ahead		 a;
	char			*inbox;
	const char		*hook;
	size_t			 i, nv = 0;
	unsigned		 nthreads;
	int			 fd, hc, r;

	*out = NULL;
	*n = 0;
	memset(&l, 0, sizeof(l));
	/* Its own read-ahead below; a prefetch's threads end first. */
	prefetch_stop(st);
	hc = has_cur(st->rootfd);
	if (!hc && !errno_gone()) {
		WARN("cannot look into '%s'", st->root);
		return MSYNC_ERR_IO;
	}
	if (hc || dir_has_index(st, st->rootfd, "")) {
		if ((inbox = strdup("INBOX")) == NULL)
			return MSYNC_ERR_NOMEM;
		if ((r = namelist_add(&l, inbox)) != 0)
			goto out;
	}
	if (st->o.layout == LAYOUT_FS)
		r = list_fs(st, st->rootfd, "", 0, &l);
	else
		r = list_maildirpp(st, &l);
	if (r != 0)
		goto out;
	if (l.n > 1)
		msync_sort(l.v, l.n, sizeof(l.v[0]), name_cmp);
	if (l.n > 0 && (v = calloc(l.n, sizeof(*v))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	/*
	 * One pass that may unload indexes (issue 10.3: memory): a changed
	 * folder's index is loaded and rescanned here, its listing made and
	 * held for list_messages (held_make), and past the bound ix_trim
	 * lets the index go, keeping the few messages the run found for the
	 * reading of the new mail (kept_fill).  So the listing holds at most
	 * the bound's indexes, not every changed folder's, and each is still
	 * decoded once.
	 */
	held_drop_all(st);
	st->listing = 1;
	/*
	 * The read-ahead keeps at most one folder per thread, and one more,
	 * beyond what the listing holds.  --full rescans every folder here
	 * anyway.
	 */
	a.st = st;
	a.names = l.v;
	a.load_unchanged = 0;
	a.skip = NULL;
	if (l.n > 1 && !st->o.full && (nthreads = ra_threads(4)) > 0 &&
	    (r = ra_start(l.n, nthreads + 1, nthreads, ahead_job, ahead_free,
	    &a, &ra)) != 0)
		goto out;
	for (i = 0; i < l.n; i++) {
		st->ahead = ra_take(ra, i);
		r = folder_open(st, l.v[i], REFRESH_HEAD, &f, &fd);
		/* Not taken: the folder was loaded already, or is gone. */
		ahead_free(NULL, st->ahead);
		st->ahead = NULL;
		if (r == MSYNC_ERR_NOMEM)
			goto out;
		if (r == MSYNC_ERR_STORE_CHANGED) {
			/*
			 * Half there: listed as its index last saw it, so
			 * that the other side neither deletes it nor has it
			 * created again here.
			 */
			if ((r = incomplete_status(st, l.v[i], &v[nv])) ==
			    MSYNC_ERR_NOMEM)
				goto out;
			if (r == 0)
				nv++;
			continue;
		}
		if (r == MSYNC_ERR_NOTFOUND || r == MSYNC_ERR_BADNAME) {
			/* Gone since the directory was read: not a mailbox. */
			WARNX("skipping mailbox '%s': %s",
			    log_esc(l.v[i], 255), msync_strerror(r));
			continue;
		}
		if (r != 0) {
			/*
			 * It is there but cannot be read: listed with its
			 * error, so the brain leaves it alone this run
			 * instead of taking it for empty or deleted.
			 */
			memset(&v[nv], 0, sizeof(v[nv]));
			if ((v[nv].name = strdup(l.v[i])) == NULL) {
				r = MSYNC_ERR_NOMEM;
				goto out;
			}
			v[nv++].error = r;
			continue;
		}
		r = held_make(st, f, fd);
		close(fd);
		if (r != 0 || (r = status_of(f, &v[nv])) != 0)
			goto out;
		nv++;
		if ((r = unique_guid(st, v, &nv)) != 0)
			goto out;
	}
	/* Test hook: a change between the listing and list_messages. */
	if ((hook = getenv("MSYNC_TEST_LIST_HOOK")) != NULL && *hook != '\0' &&
	    system(hook) != 0)
		WARNX("MSYNC_TEST_LIST_HOOK failed");
	LOG4("'%s': %zu mailboxes listed", st->root, nv);
	*out = v;
	*n = nv;
	v = NULL;	/* transferred */
	r = 0;
out:
	ra_stop(ra);
	/* list_messages, the next pass, unloads only what it opened. */
	st->listing = 0;
	st->trimming = 0;
	store_mailboxes_free(v, nv);
	for (i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
	return r;
}

/*
 * A folder copied with its index (cp -a .A .B) carries the same mailbox
 * GUID as its original, which would make two mailboxes one.  The later of
 * the two (by name) gets a fresh GUID, so it is synced as the new mailbox
 * it is.  If that cannot be written, the folder is left out with a
 * warning (*nv shrinks by one).  Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
unique_guid(struct maildir *st, struct store_mailbox *v, size_t *nv)
{
	struct store_mailbox	*last = &v[*nv - 1];
	struct guid		 g;
	int			 r;

	for (size_t i = 0; i + 1 < *nv; i++) {
		if (v[i].error != 0 || guid_cmp(&v[i].guid, &last->guid) != 0)
			continue;
		if ((r = guid_random(&g)) == 0 &&
		    (r = maildir_set_mailbox_guid(st, last->name, &g)) == 0) {
			WARNX("mailbox '%s' had the id of '%s' (a copied "
			    "folder?): it gets a new one",
			    log_esc(last->name, 200), log_esc(v[i].name, 200));
			last->guid = g;
			return 0;
		}
		if (r == MSYNC_ERR_NOMEM)
			return r;
		WARNX("skipping mailbox '%s': it has the id of '%s'",
		    log_esc(last->name, 200), log_esc(v[i].name, 200));
		free(last->name);
		memset(last, 0, sizeof(*last));
		(*nv)--;
		return 0;
	}
	return 0;
}

/* Loads f's keyword map if it is not loaded yet. */
static int
kw_ready(struct folder *f, int folderfd)
{
	if (f->kw.loaded)
		return 0;
	return index_kw_load(folderfd, &f->kw);
}

/*
 * Appends the messages of f, whose index is loaded (its directory open
 * on fd), to *out, sorted by uid: what store_list_messages returns.
 * Returns 0 or MSYNC_ERR_*.
 */
static int
list_build(struct folder *f, int fd, struct msglist *out)
{
	struct index_ent	*e;
	struct msg		 m;
	size_t			 i;
	uint32_t		 kwbits;
	uint8_t			 flags;
	int			 r;

	/*
	 * The count is known: one allocation of the right size instead of
	 * doubling, which left a list of the whole folder up to twice the
	 * memory it needs at the run's peak.
	 */
	if (out->cap - out->n < f->ix->live) {
		struct msg	*nv;

		if ((nv = reallocarray(out->v, out->n + f->ix->live,
		    sizeof(*nv))) == NULL)
			return MSYNC_ERR_NOMEM;
		out->v = nv;
		out->cap = out->n + f->ix->live;
	}
	for (i = 0; i < f->ix->n; i++) {
		e = &f->ix->v[i];
		if (e->name == INDEX_NAME_DEAD)
			continue;
		/* Names were checked when the index got them. */
		mdname_info(index_name(f->ix, e) + 4, &flags, &kwbits);
		memset(&m, 0, sizeof(m));
		m.uid = e->uid;
		m.guid = e->guid;
		m.flags = flags;
		m.size = e->size;
		m.date = e->date;
		if (kwbits != 0) {
			if ((r = kw_ready(f, fd)) != 0)
				return r;
			if ((r = index_kw_names(&f->kw, kwbits,
			    &m.kw)) != 0)
				return r;
		}
		r = msglist_add(out, &m);
		free(m.kw);
		if (r != 0)
			return r;
	}
	return 0;
}

/*
 * list_mailboxes, folder f just opened (on fd) with its index loaded:
 * if the brain is likely to ask for its messages (the refresh moved its
 * modseq, which then differs from the one the sync base took at the end
 * of the last run; or --full, which lists every mailbox), makes the
 * listing now and holds it (struct held), so that a trim may let the
 * index go before list_messages comes.  Not with a racy token, which
 * could not tell a later change.  Best effort but for memory: without
 * a held listing, list_messages loads the index as before.  Returns 0
 * or MSYNC_ERR_NOMEM.
 */
static int
held_make(struct maildir *st, struct folder *f, int fd)
{
	struct held	*h;
	int		 r;

	if (f->held != NULL || f->ix == NULL || !f->ix->token.valid ||
	    (!st->o.full && f->ix->modseq == f->load_modseq))
		return 0;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return MSYNC_ERR_NOMEM;
	if ((r = list_build(f, fd, &h->l)) != 0) {
		msglist_free(&h->l);
		free(h);
		return r == MSYNC_ERR_NOMEM ? r : 0;
	}
	h->tok = f->ix->token;
	f->held = h;
	st->nheld++;
	LOG4("'%s': listing held (%zu messages)", f->where, h->l.n);
	return 0;
}

/*
 * list_messages: hands f's held listing over to *out if cur/ and new/
 * still show the token it was made under (nobody changed the folder
 * since: msync's own changes drop it first).  Either way the listing is
 * no longer held.  Returns 0 when handed over, 1 when the caller must
 * list from the index, or MSYNC_ERR_NOMEM.
 */
static int
held_take(struct maildir *st, struct folder *f, struct msglist *out)
{
	struct index_token	 tok;
	struct timespec		 now;
	struct held		*h = f->held;
	int			 fd, ok = 0;

	if (!skip_has(st, f->name) &&
	    (fd = open_beneath(st->rootfd, f->dir)) != -1) {
		clock_gettime(CLOCK_REALTIME, &now);
		ok = index_token_read(fd, &now, &tok) == 0 &&
		    index_token_same(&tok, &h->tok);
		close(fd);
	}
	if (!ok) {
		LOG3("'%s' changed since it was listed: listing it again",
		    f->where);
		held_clear(st, f);
		return 1;
	}
	if (out->n == 0) {
		free(out->v);
		*out = h->l;
	} else {
		if (out->cap - out->n < h->l.n) {
			struct msg	*nv;

			if ((nv = reallocarray(out->v, out->n + h->l.n,
			    sizeof(*nv))) == NULL)
				return MSYNC_ERR_NOMEM;
			out->v = nv;
			out->cap = out->n + h->l.n;
		}
		/* The keyword strings move with their messages. */
		memcpy(&out->v[out->n], h->l.v, h->l.n * sizeof(*h->l.v));
		out->n += h->l.n;
		free(h->l.v);
	}
	memset(&h->l, 0, sizeof(h->l));	/* transferred */
	LOG4("'%s': held listing taken", f->where);
	held_clear(st, f);
	return 0;
}

/* Lists the messages of mailbox name; see store.h. */
static int
maildir_list_messages(struct maildir *st, const char *name,
    struct msglist *out)
{
	struct folder	*f;
	size_t		 j;
	int		 fd = -1, r;

	if (st->pre != NULL) {
		/* The next on the prefetch's list (those passed are let go). */
		for (j = st->pre_next; j < st->pre_n; j++)
			if (strcmp(st->pre_names[j], name) == 0)
				break;
		if (j == st->pre_n)
			prefetch_stop(st);
		else {
			st->ahead = ra_take(st->pre, j);
			st->pre_next = j + 1;
		}
	}
	if ((f = folder_find(st, name, NULL)) != NULL && f->held != NULL &&
	    (r = held_take(st, f, out)) <= 0)
		goto out;
	st->pre_listing = 1;
	r = folder_open(st, name, REFRESH_TOKEN, &f, &fd);
	st->pre_listing = 0;
	if (r != 0)
		goto out;
	r = list_build(f, fd, out);
	close(fd);
out:
	/* Not taken: the folder was loaded already, or is gone. */
	ahead_free(NULL, st->ahead);
	st->ahead = NULL;
	if (st->pre != NULL && st->pre_next == st->pre_n)
		prefetch_stop(st);
	return r;
}

/* Ends the prefetch, if one runs: its threads, and what they made. */
static void
prefetch_stop(struct maildir *st)
{
	ra_stop(st->pre);
	st->pre = NULL;
	for (size_t i = 0; i < st->pre_n; i++)
		free(st->pre_names[i]);
	free(st->pre_names);
	free(st->pre_skip);
	st->pre_names = NULL;
	st->pre_skip = NULL;
	st->pre_n = 0;
	st->pre_next = 0;
}

/* Starts reading ahead the folders of names; see store.h. */
static int
maildir_prefetch(struct maildir *st, char *const *names, size_t n)
{
	struct folder	*f;
	unsigned	 nthreads;
	size_t		 i, nwork = 0;
	int		 r;

	prefetch_stop(st);
	if (n < 2 || st->o.full || (nthreads = ra_threads(4)) == 0)
		return 0;
	if ((st->pre_names = calloc(n, sizeof(*st->pre_names))) == NULL ||
	    (st->pre_skip = calloc(n, 1)) == NULL) {
		prefetch_stop(st);
		return MSYNC_ERR_NOMEM;
	}
	for (i = 0; i < n; i++) {
		if ((st->pre_names[i] = strdup(names[i])) == NULL) {
			st->pre_n = i;
			prefetch_stop(st);
			return MSYNC_ERR_NOMEM;
		}
		/* A changed folder's listing is held from list_mailboxes. */
		f = folder_find(st, names[i], NULL);
		if (f != NULL && (f->held != NULL || f->ix != NULL))
			st->pre_skip[i] = 1;
		else
			nwork++;
	}
	st->pre_n = n;
	if (nwork < 2) {
		prefetch_stop(st);
		return 0;
	}
	st->pre_ctx.st = st;
	st->pre_ctx.names = st->pre_names;
	st->pre_ctx.load_unchanged = 1;
	st->pre_ctx.skip = st->pre_skip;
	if ((r = ra_start(n, nthreads + 1, nthreads, ahead_job, ahead_free,
	    &st->pre_ctx, &st->pre)) != 0 || st->pre == NULL) {
		prefetch_stop(st);
		return r;
	}
	return 0;
}

/* Rescans mailbox name now; see store.h. */
static int
maildir_rescan(struct maildir *st, const char *name, struct store_mailbox *m)
{
	struct folder	*f;
	char		*name_keep;
	int		 fd, r;

	/*
	 * A folder whose index a trim let go, its token unmoved since, is
	 * checked from the index file's header (written when it was let
	 * go), not decoded again: the caller may need no more than its
	 * status (issue 10.3).
	 */
	if ((r = folder_open(st, name, REFRESH_CHECK, &f, &fd)) != 0)
		return r;
	close(fd);
	if (f->ix == NULL)
		LOG3("'%s' unchanged: checked from its index's header",
		    f->where);
	if (m == NULL)
		return 0;
	name_keep = m->name;
	if ((r = status_of(f, m)) != 0)
		return r;
	if (name_keep != NULL) {
		/* The caller's name stays: it is the same. */
		free(m->name);
		m->name = name_keep;
	}
	return 0;
}

/*
 * Opens the file of e for reading, finding it again if it was renamed.
 * Gone: the entry is removed and MSYNC_ERR_NOTFOUND returned.
 */
static int
open_ent(struct maildir *st, struct folder *f, int folderfd,
    struct index_ent *e, int *fdp)
{
	struct subdirs	 d;
	const char	*base;
	int		 dfd, fd = -1, r;

	subdirs_held(st, folderfd, &d);
	if ((dfd = sub_at(&d, index_name(f->ix, e), &base)) != -1)
		fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT) {
		f->chain = 0;	/* renamed by another program */
		if ((r = index_refind(f->ix, folderfd, e)) == 0) {
			if ((dfd = sub_at(&d, index_name(f->ix, e),
			    &base)) != -1)
				fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW |
				    O_CLOEXEC);
		} else {
			subdirs_close(&d);
			if (r == MSYNC_ERR_NOTFOUND)
				index_remove(f->ix, e);
			return r;
		}
	}
	subdirs_close(&d);
	if (fd == -1)
		return errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
	*fdp = fd;
	return 0;
}

/*
 * A message about to be sent must still be the one listed: a file
 * replaced since (same name, other bytes: a restore, a rewriting tool)
 * would reach the peer under the listed GUID, fail the peer's check
 * and end the run as bad data (65), when it is only a store that
 * changed during the run (2).  The file's size and mtime are compared
 * with the index entry's; only when they differ (rare: a touch, a
 * replacement) is the file hashed again.  Other bytes: the entry is
 * dropped and the folder marked for a rescan, so the next listing
 * hashes the file as new, and MSYNC_ERR_STORE_CHANGED is returned.
 * Same size and mtime with other bytes (bit rot) is not seen here: the
 * peer's GUID check finds that.  Returns 0 or MSYNC_ERR_*.
 */
static int
check_unchanged(struct folder *f, struct index_ent *e, int fd,
    const struct stat *sb)
{
	struct guid	 g;
	uint64_t	 n;
	int		 r;

	if ((uint64_t)sb->st_size == e->size &&
	    (int64_t)sb->st_mtim.tv_sec == e->date)
		return 0;
	if ((uint64_t)sb->st_size == e->size) {
		if ((r = guid_of_fd(fd, &g, &n)) != 0)
			return r;
		if (n == e->size && guid_cmp(&g, &e->guid) == 0)
			return 0;	/* touched, not changed */
	}
	WARNX("'%s/%s' was replaced since it was listed: not sent in this "
	    "run", f->where, log_esc(index_name(f->ix, e), 300));
	index_remove(f->ix, e);
	f->ix->token.valid = 0;
	f->ix->dirty = 1;
	return MSYNC_ERR_STORE_CHANGED;
}

/* Opens message uid of mailbox name; see store.h. */
static int
maildir_open_message(struct maildir *st, const char *name, uint32_t uid,
    int *fdp, uint64_t *size, int64_t *date)
{
	struct folder		*f;
	struct index_ent	*e;
	struct stat		 sb;
	int			 folderfd, fd = -1, r;

	*fdp = -1;
	op_hook_run(st);
	if (kept_open(st, name, uid, fdp, size, date) == 0)
		return 0;
	if ((r = op_open(st, name, REFRESH_READ, &f, &folderfd, 0)) != 0)
		return r;
	if ((e = index_find(f->ix, uid)) == NULL) {
		r = MSYNC_ERR_NOTFOUND;
		goto out;
	}
	if ((r = open_ent(st, f, folderfd, e, &fd)) != 0)
		goto out;
	if (fstat(fd, &sb) == -1) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	if ((r = check_unchanged(f, e, fd, &sb)) != 0)
		goto out;
	if (size != NULL)
		*size = (uint64_t)sb.st_size;
	if (date != NULL)
		*date = e->date;
	*fdp = fd;
	fd = -1;	/* transferred */
	r = 0;
out:
	if (fd != -1)
		close(fd);
	return r;
}

/*
 * Moves olddfd/old to newdfd/new, never replacing a file:
 * renameat2(RENAME_NOREPLACE), or link + unlink where the file system
 * lacks it.  Returns 0 or -1 with errno (EEXIST: the target exists).
 */
static int
move_noreplace(int olddfd, const char *old, int newdfd, const char *new)
{
	if (renameat2(olddfd, old, newdfd, new, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -1;
	if (linkat(olddfd, old, newdfd, new, 0) == -1)
		return -1;
	if (unlinkat(olddfd, old, 0) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

/*
 * Removes files left in tmp/ by deliveries that died (a crashed msync,
 * MDA or MUA): the Maildir convention is that a file in tmp/ untouched
 * for 36 hours is garbage.  Only regular files are removed, and only
 * when both their access and modification times are that old (a
 * delivery in progress writes, so its mtime is recent).  Runs once per
 * folder and session, the first time msync saves into it; failures are
 * only logged.
 */
#define TMP_STALE_SECS	(36 * 3600)
static void
tmp_sweep(int tmpfd, const char *where)
{
	struct dirent	*de;
	struct stat	 sb;
	DIR		*d;
	time_t		 cutoff = time(NULL) - TMP_STALE_SECS;
	int		 fd;

	if ((fd = dup(tmpfd)) == -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' &&
		    (de->d_name[1] == '\0' || (de->d_name[1] == '.' &&
		    de->d_name[2] == '\0')))
			continue;
		if (fstatat(tmpfd, de->d_name, &sb,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(sb.st_mode) ||
		    sb.st_atime >= cutoff || sb.st_mtime >= cutoff)
			continue;
		if (unlinkat(tmpfd, de->d_name, 0) == 0)
			LOG2("removed '%s/tmp/%s', left there over 36 hours ago",
			    where, log_esc(de->d_name, 200));
	}
	rewinddir(d);	/* tmpfd shares the offset: leave it at the start */
	closedir(d);
}

/* Starts saving a message into mailbox name; see store.h. */
static int
maildir_save_begin(struct maildir *st, const char *name,
    struct maildir_save **out)
{
	struct maildir_save	*s = NULL;
	struct folder		*f;
	struct timeval		 tv;
	int			 r, i;

	*out = NULL;
	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return MSYNC_ERR_NOMEM;
	s->st = st;
	s->fd = s->folderfd = s->tmpdirfd = s->curfd = -1;
	f = folder_find(st, name, NULL);
	if (f == NULL || f != st->hot || f->ix == NULL) {
		int	 fd;

		if (f != st->hot && st->hot != NULL && st->hot->ix != NULL &&
		    st->npend > 0 && st->cold == NULL)
			hot_park(st);
		else
			hot_drop(st);
		if ((r = folder_open(st, name, REFRESH_LAZY, &f, &fd)) != 0)
			goto out;
		st->hot_fd = fd;
		/* One syncfs() must cover the cold folder's saves too. */
		if (st->cold != NULL && !same_fs(fd, st->cold_fd))
			(void)pending_flush(st);	/* releases cold */
		r = MSYNC_ERR_IO;
		if (mkdirat(fd, "tmp", 0700) == -1 && errno != EEXIST)
			goto out;
		if ((st->hot_tmpfd = openat(fd, "tmp", O_RDONLY |
		    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1 ||
		    (st->hot_curfd = openat(fd, "cur", O_RDONLY |
		    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1)
			goto out;
		st->hot = f;
		if (!f->swept) {
			tmp_sweep(st->hot_tmpfd, f->where);
			f->swept = 1;
		}
	}
	s->folderfd = st->hot_fd;
	s->tmpdirfd = st->hot_tmpfd;
	s->curfd = st->hot_curfd;
	r = MSYNC_ERR_NOMEM;
	if ((s->mbox = strdup(name)) == NULL ||
	    (s->gc = guid_ctx_new()) == NULL)
		goto out;
	r = MSYNC_ERR_IO;
	for (i = 0; i < SAVE_TRIES; i++) {
		gettimeofday(&tv, NULL);
		snprintf(s->tmpname, sizeof(s->tmpname),
		    "%lld.M%ldP%ldQ%u.%s", (long long)tv.tv_sec,
		    (long)tv.tv_usec, st->pid, ++st->counter, st->host);
		s->fd = openat(s->tmpdirfd, s->tmpname, O_WRONLY | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (s->fd != -1 || errno != EEXIST)
			break;
	}
	if (s->fd == -1) {
		WARN("cannot create '%s/tmp/%s'", f->where, s->tmpname);
		s->tmpname[0] = '\0';	/* not ours: never unlink it */
		goto out;
	}
	*out = s;
	s = NULL;	/* transferred */
	r = 0;
out:
	maildir_save_abort(s);
	return r;
}

/*
 * Moves the first n pending saves from tmp/ into cur/ of their folders
 * (the cold folder's come first); the caller made their contents durable
 * (one syncfs()), so a crash never leaves a partial message in cur/.  A
 * name taken meanwhile gets another name (never replacing a file).  A
 * message that cannot be moved (or whose syncfs() failed: pend_failed)
 * stays in tmp/, leaves the index, and makes every later store_flush
 * fail, so the brain never commits a sync state that counts it as
 * saved.  The saves after the first n stay pending, moved to the front;
 * when none of the cold folder's is left, the cold folder is let go.
 */
static void
pending_move(struct maildir *st, size_t n)
{
	struct folder		*f, *fs[2];
	struct index_ent	*e;
	char			 base[MDNAME_MAX + 1], dest[MDNAME_MAX + 1];
	char			 rel[4 + MDNAME_MAX + 1];
	struct stat		 sb;
	size_t			 k;
	int			 i, m, ok, c, tmpfd, curfd, seen[2] = { 0, 0 };
	int			 curfds[2];

	fs[0] = st->hot;
	fs[1] = st->cold;
	curfds[0] = st->hot_curfd;
	curfds[1] = st->cold_curfd;
	for (k = 0; k < n; k++) {
		struct pending	*pd = &st->pend[k];

		c = pd->cold ? 1 : 0;
		f = fs[c];
		curfd = curfds[c];
		tmpfd = c ? st->cold_tmpfd : st->hot_tmpfd;
		if (!seen[c]) {
			seen[c] = 1;
			if (f->chain) {
				if (fstat(curfd, &sb) == 0)
					chain_pre(f, 0, &sb);
				else
					f->chain = 0;
			}
		}
		e = index_find(f->ix, pd->uid);
		ok = 0;
		for (i = 0; i < SAVE_TRIES && !st->pend_failed && e != NULL;
		    i++) {
			if (i == 0)
				m = snprintf(base, sizeof(base), "%s,S=%" PRIu64,
				    pd->tmp, pd->size);
			else {
				struct timeval	tv;

				gettimeofday(&tv, NULL);
				m = snprintf(base, sizeof(base),
				    "%lld.M%ldP%ldQ%u.%s,S=%" PRIu64,
				    (long long)tv.tv_sec, (long)tv.tv_usec,
				    st->pid, ++st->counter, st->host,
				    pd->size);
			}
			if (m < 0 || (size_t)m >= sizeof(base) ||
			    mdname_build(base, pd->flags, pd->bits, dest,
			    sizeof(dest)) != 0)
				break;
			if (move_noreplace(tmpfd, pd->tmp, curfd, dest) == 0) {
				ok = 1;
				snprintf(rel, sizeof(rel), "cur/%s", dest);
				if (i > 0 && index_set_name(f->ix, e, rel) != 0)
					ok = 0;
				break;
			}
			if (errno != EEXIST) {
				WARN("cannot move '%s/tmp/%s' into cur/",
				    f->where, pd->tmp);
				break;
			}
			LOG3("'%s/cur/%s' exists: picking another name",
			    f->where, dest);
			f->chain = 0;	/* not a name of ours */
		}
		if (!ok) {
			st->pend_failed = 1;
			if (e != NULL)
				index_remove(f->ix, e);
		}
	}
	for (c = 0; c < 2; c++)
		if (seen[c]) {
			fs[c]->synced = 1;
			chain_post(fs[c], 0, curfds[c]);
		}
	if (n < st->npend)
		memmove(st->pend, st->pend + n,
		    (st->npend - n) * sizeof(*st->pend));
	st->npend -= n;
	if (st->cold != NULL && (st->npend == 0 || !st->pend[0].cold))
		cold_release(st);
}

/* 1 if directories fd and fd2 are on one file system (one syncfs()). */
static int
same_fs(int fd, int fd2)
{
	struct stat	 a, b;

	return fstat(fd, &a) == 0 && fstat(fd2, &b) == 0 &&
	    a.st_dev == b.st_dev;
}

/*
 * Saving moves on from the hot folder while some of its saves wait for
 * their syncfs() (issue 10.4): instead of waiting for it (hot_drop), they
 * stay pending as the cold folder's, whose directories stay open, and a
 * syncfs() for them starts now if none is running.  The caller makes
 * sure there is no cold folder yet, and opens the next hot one.
 */
static void
hot_park(struct maildir *st)
{
	size_t	k;

	if (st->sy == NULL)
		sync_start(st);
	if (st->npend == 0) {	/* synced here: nothing left to wait for */
		hot_drop(st);
		return;
	}
	for (k = 0; k < st->npend; k++)
		st->pend[k].cold = 1;
	st->cold = st->hot;
	st->cold_fd = st->hot_fd;
	st->cold_tmpfd = st->hot_tmpfd;
	st->cold_curfd = st->hot_curfd;
	st->hot = NULL;
	st->hot_fd = st->hot_tmpfd = st->hot_curfd = -1;
}

/*
 * The durability thread: one syncfs(), then says it is done.  Test hook
 * (MSYNC_TEST_SYNC_HOLD=FILE): the syncfs() waits until FILE exists (at
 * most about a minute), so a test can kill a run whose durability sync
 * is in flight and watch the transfer go on meanwhile (t2610).
 */
static void *
syncer_run(void *arg)
{
	struct syncer	*sy = arg;
	struct timespec	 nap = { 0, 10000000L };	/* 10 ms */
	int		 i;

	for (i = 0; sy->hold != NULL && i < 6000 &&
	    access(sy->hold, F_OK) == -1; i++)
		nanosleep(&nap, NULL);
	sy->err = syncfs(sy->fd) == -1 ? errno : 0;
	atomic_store(&sy->done, 1);
	return NULL;
}

/* Where the pending saves are: the hot folder, else the cold one. */
static struct folder *
pend_folder(struct maildir *st, int *fdp)
{
	*fdp = st->hot != NULL ? st->hot_fd : st->cold_fd;
	return st->hot != NULL ? st->hot : st->cold;
}

/* A syncfs() of the pending saves' file system in this thread. */
static void
sync_here(struct maildir *st)
{
	long long	 t0 = msync_now_ms();
	struct folder	*f;
	int		 fd;

	f = pend_folder(st, &fd);
	st->nsync++;
	if (syncfs(fd) == -1) {
		WARN("cannot flush '%s' to disk", f->where);
		st->pend_failed = 1;
	}
	st->wait_ms += msync_now_ms() - t0;
}

/*
 * Starts a syncfs() of the hot folder's file system in the durability
 * thread, for every save pending now (their bytes are all written).
 * Where no thread can be had, syncs here and moves them at once.
 */
static void
sync_start(struct maildir *st)
{
	struct syncer	*sy;

	if ((sy = calloc(1, sizeof(*sy))) != NULL) {
		atomic_init(&sy->done, 0);
		sy->hold = getenv("MSYNC_TEST_SYNC_HOLD");
		sy->fd = fcntl(st->hot_fd, F_DUPFD_CLOEXEC, 0);
		if (sy->fd != -1 &&
		    pthread_create(&sy->th, NULL, syncer_run, sy) == 0) {
			st->sy = sy;
			st->insync = st->npend;
			st->nsync++;
			st->nsync_bg++;
			return;
		}
		if (sy->fd != -1)
			close(sy->fd);
		free(sy);
	}
	sync_here(st);
	pending_move(st, st->npend);
}

/*
 * Ends the running syncfs() if it is done, or with wait set, once it is,
 * and moves the saves it covered into cur/.
 */
static void
sync_reap(struct maildir *st, int wait)
{
	struct syncer	*sy = st->sy;
	struct folder	*f;
	long long	 t0;
	int		 fd;

	if (sy == NULL || (!wait && !atomic_load(&sy->done)))
		return;
	t0 = msync_now_ms();
	(void)pthread_join(sy->th, NULL);
	st->wait_ms += msync_now_ms() - t0;
	if (sy->err != 0) {
		f = pend_folder(st, &fd);
		errno = sy->err;
		WARN("cannot flush '%s' to disk", f->where);
		st->pend_failed = 1;
	}
	close(sy->fd);
	free(sy);
	st->sy = NULL;
	pending_move(st, st->insync);
	st->insync = 0;
}

/*
 * Makes every pending save (of the hot and the cold folder) durable and
 * moves it into cur/ (waiting for the durability thread first), so that
 * what looks at the folder, and the index and the state written after,
 * see it there.  Returns 0 or MSYNC_ERR_IO (this or an earlier save
 * failed).
 */
static int
pending_flush(struct maildir *st)
{
	sync_reap(st, 1);
	if (st->npend > 0 && (st->hot != NULL || st->cold != NULL)) {
		sync_here(st);
		pending_move(st, st->npend);
	}
	return st->pend_failed ? MSYNC_ERR_IO : 0;
}

/* Writes a piece of the message; see store.h. */
static int
maildir_save_write(struct maildir_save *s, const void *p, size_t len)
{
	const char	*b = p;
	size_t		 off = 0;
	ssize_t		 n;

	if (s->failed)
		return MSYNC_ERR_IO;
	if (len > MSYNC_MSG_SIZE_MAX - s->size) {
		s->failed = 1;
		return MSYNC_ERR_TOOBIG;
	}
	guid_update(s->gc, p, len);
	while (off < len) {
		n = write(s->fd, b + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			s->failed = 1;
			return MSYNC_ERR_IO;
		}
		off += (size_t)n;
	}
	s->size += len;
	return 0;
}

/* Removes the tmp file and frees s.  Accepts NULL. */
static void
maildir_save_abort(struct maildir_save *s)
{
	int	saved = errno;

	if (s == NULL)
		return;
	if (s->fd != -1)
		close(s->fd);
	/* tmpname is set only while a file we created is in tmp/. */
	if (s->tmpname[0] != '\0' && s->tmpdirfd != -1)
		(void)unlinkat(s->tmpdirfd, s->tmpname, 0);
	guid_ctx_free(s->gc);
	free(s->mbox);
	free(s);
	errno = saved;
}

/*
 * The letters for keyword names kw in folder f, saving dovecot-keywords
 * first if a name needed a new letter.
 */
static int
kw_letters(struct maildir *st, struct folder *f, int folderfd,
    const char *kw, uint32_t *bits)
{
	int	added = 0, r;

	*bits = 0;
	if (kw == NULL || *kw == '\0')
		return 0;
	/* Re-read: another program may have added names. */
	if ((r = index_kw_load(folderfd, &f->kw)) != 0)
		return r;
	if ((r = index_kw_bits(&f->kw, kw, bits, &added)) != 0)
		return r;
	if (added && (r = index_kw_save(folderfd, &f->kw)) != 0) {
		WARN("cannot write '%s/%s'", f->where, INDEX_KWFILE);
		index_kw_clear(&f->kw);
		return r;
	}
	return 0;
}

/* Finishes saving; see store.h.  Frees s. */
static int
maildir_save_commit(struct maildir_save *s, uint8_t flags, const char *kw,
    int64_t date, const struct guid *expect, uint32_t *uid_out)
{
	struct maildir	*st = s->st;
	struct folder	*f;
	struct guid	 g;
	struct timespec	 ts[2];
	char		 base[MDNAME_MAX + 1], dest[MDNAME_MAX + 1];
	char		 rel[4 + MDNAME_MAX + 1];
	struct pending	*pd;
	uint32_t	 bits;
	int		 r, n;

	if (s->failed) {
		r = MSYNC_ERR_IO;
		goto out;
	}
	guid_final(s->gc, &g);
	if (expect != NULL && guid_cmp(expect, &g) != 0) {
		r = MSYNC_ERR_BADDATA;
		goto out;
	}
	if ((f = folder_find(st, s->mbox, NULL)) == NULL || f->ix == NULL) {
		r = MSYNC_ERR_NOTFOUND;
		goto out;
	}
	r = MSYNC_ERR_IO;
	ts[0].tv_sec = ts[1].tv_sec = (time_t)date;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(s->fd, ts) == -1)
		goto out;
	if ((r = kw_letters(st, f, s->folderfd, kw, &bits)) != 0)
		goto out;
	/* The name it will get in cur/ (pending_flush may pick another). */
	n = snprintf(base, sizeof(base), "%s,S=%" PRIu64, s->tmpname,
	    s->size);
	if (n < 0 || (size_t)n >= sizeof(base) ||
	    mdname_build(base, flags & FLAG_ALL, bits, dest,
	    sizeof(dest)) != 0) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if (st->pend == NULL && (st->pend = calloc(PENDING_CAP,
	    sizeof(*st->pend))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	snprintf(rel, sizeof(rel), "cur/%s", dest);
	if ((r = index_add(f->ix, &g, s->size, date, rel, uid_out)) != 0)
		goto out;
	pd = &st->pend[st->npend++];
	pd->uid = *uid_out;
	pd->cold = 0;
	pd->flags = flags & FLAG_ALL;
	pd->bits = bits;
	pd->size = s->size;
	memcpy(pd->tmp, s->tmpname, sizeof(pd->tmp));
	s->tmpname[0] = '\0';	/* pending_flush moves it, or keeps it */
	/*
	 * Durability without stopping the transfer: a finished syncfs()
	 * lets its saves into cur/; PENDING_MAX written ones start the
	 * next, and so does a cold folder's save still waiting (so that
	 * the folder is let go before the next one is saved into); only a
	 * full queue waits for the running one.
	 */
	sync_reap(st, st->npend == PENDING_CAP);
	if (st->sy == NULL && (st->npend >= PENDING_MAX || st->cold != NULL))
		sync_start(st);
	r = st->pend_failed ? MSYNC_ERR_IO : 0;
out:
	maildir_save_abort(s);
	return r;
}

/* Sets a message's flags and keywords; see store.h. */
static int
maildir_set_flags(struct maildir *st, const char *name, uint32_t uid,
    uint8_t flags, const char *kw)
{
	return set_flags(st, name, uid, flags, kw, 0, 0, NULL);
}

/* Changes a message's flags from what the caller saw; see store.h. */
static int
maildir_update_flags(struct maildir *st, const char *name, uint32_t uid,
    uint8_t old_flags, const char *old_kw, uint8_t flags, const char *kw)
{
	return set_flags(st, name, uid, flags, kw, 1, old_flags, old_kw);
}

/*
 * Renames message uid to carry flags and keywords kw.  With delta set,
 * only what differs between (old_flags, old_kw) and (flags, kw) is
 * changed, so a flag that another program changed in the meantime (its
 * file renamed since our scan) is kept rather than overwritten.
 */
static int
set_flags(struct maildir *st, const char *name, uint32_t uid, uint8_t flags,
    const char *kw, int delta, uint8_t old_flags, const char *old_kw)
{
	struct folder		*f;
	struct index_ent	*e;
	struct mdname		 md;
	char			 dest[MDNAME_MAX + 1], rel[4 + MDNAME_MAX + 1];
	char			 old[4 + MDNAME_MAX + 1];
	uint32_t		 bits, old_bits = 0, unknown = 0, want_bits;
	uint8_t			 want_flags;
	struct subdirs		 d;
	const char		*obase, *nbase;
	int			 fd, ofd, nfd, r, i, try;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((r = op_open(st, name, REFRESH_LAZY, &f, &fd, 1)) != 0)
		return r;
	if ((e = index_find(f->ix, uid)) == NULL) {
		r = MSYNC_ERR_NOTFOUND;
		goto out;
	}
	if ((r = kw_letters(st, f, fd, kw, &bits)) != 0 ||
	    (delta && (r = kw_letters(st, f, fd, old_kw, &old_bits)) != 0) ||
	    (r = kw_ready(f, fd)) != 0)
		goto out;
	for (try = 0; try < 2; try++) {
		snprintf(old, sizeof(old), "%s", index_name(f->ix, e));
		if ((r = mdname_parse(old + 4, &md)) != 0)
			goto out;
		if (delta) {
			want_flags = (uint8_t)((md.flags | (flags & ~old_flags)) &
			    ~(old_flags & ~flags));
			want_bits = (md.kwbits | (bits & ~old_bits)) &
			    ~(old_bits & ~bits);
		} else {
			/* Letters nobody named stay in the file name. */
			unknown = 0;
			for (i = 0; i < 26; i++)
				if ((md.kwbits & (1u << i)) &&
				    f->kw.name[i] == NULL)
					unknown |= 1u << i;
			want_flags = flags;
			want_bits = bits | unknown;
		}
		if ((r = mdname_build(old + 4, want_flags & FLAG_ALL,
		    want_bits, dest, sizeof(dest))) != 0)
			goto out;
		snprintf(rel, sizeof(rel), "cur/%s", dest);
		if (strcmp(rel, old) == 0) {
			r = 0;
			goto out;
		}
		subdirs_held(st, fd, &d);
		ofd = sub_at(&d, old, &obase);
		nfd = sub_at(&d, rel, &nbase);
		if (ofd != -1 && nfd != -1 &&
		    move_noreplace(ofd, obase, nfd, nbase) == 0) {
			subdirs_changed(&d);
			subdirs_close(&d);
			break;
		}
		subdirs_close(&d);
		if (errno == ENOENT && try == 0) {
			f->chain = 0;	/* renamed by another program */
			if ((r = index_refind(f->ix, fd, e)) == 0)
				continue;
			if (r == MSYNC_ERR_NOTFOUND)
				index_remove(f->ix, e);
			goto out;
		}
		WARN("cannot rename '%s/%s'", f->where, old);
		r = errno == ENOENT ? MSYNC_ERR_NOTFOUND : MSYNC_ERR_IO;
		goto out;
	}
	f->synced = 1;
	r = index_set_name(f->ix, e, rel);
out:
	return r;
}

/* Removes a message; see store.h. */
static int
maildir_expunge(struct maildir *st, const char *name, uint32_t uid)
{
	return maildir_expunge_guid(st, name, uid, NULL);
}

/* Removes a message if it is the one the caller means; see store.h. */
static int
maildir_expunge_guid(struct maildir *st, const char *name, uint32_t uid,
    const struct guid *expect)
{
	struct folder		*f;
	struct index_ent	*e;
	int			 fd, r = 0;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if ((r = op_open(st, name, REFRESH_LAZY, &f, &fd, 1)) != 0)
		return r;
	if ((e = index_find(f->ix, uid)) == NULL)
		goto out;	/* already gone */
	if (expect != NULL && guid_cmp(&e->guid, expect) != 0) {
		/* Not the message the plan meant: never delete it. */
		r = MSYNC_ERR_STORE_CHANGED;
		goto out;
	}
	if (unlink_ent(st, fd, index_name(f->ix, e)) == -1) {
		if (errno != ENOENT) {
			WARN("cannot remove '%s/%s'", f->where,
			    index_name(f->ix, e));
			r = MSYNC_ERR_IO;
			goto out;
		}
		f->chain = 0;	/* renamed by another program */
		if ((r = index_refind(f->ix, fd, e)) == 0 &&
		    unlink_ent(st, fd, index_name(f->ix, e)) == -1 &&
		    errno != ENOENT) {
			r = MSYNC_ERR_IO;
			goto out;
		}
		r = 0;
	}
	f->synced = 1;
	index_remove(f->ix, e);
out:
	return r;
}

/*
 * Creates the directories of rel below the root (each component in turn,
 * never following a symlink).  Returns the descriptor of the last one or
 * -1 with errno.
 */
static int
mkdir_beneath(int rootfd, const char *rel)
{
	char	 buf[MSYNC_PATH_MAX], *comp, *next;
	int	 fd, nfd;

	if (strlen(rel) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(buf, rel);
	fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (comp = buf; fd != -1 && comp != NULL && *comp != '\0';
	    comp = next) {
		if ((next = strchr(comp, '/')) != NULL)
			*next++ = '\0';
		if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
			close(fd);
			errno = EXDEV;
			return -1;
		}
		if (mkdirat(fd, comp, 0700) == -1 && errno != EEXIST) {
			close(fd);
			return -1;
		}
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		(void)fsync(fd);
		close(fd);
		fd = nfd;
	}
	return fd;
}

/* Creates a mailbox; see store.h. */
static int
maildir_create_mailbox(struct maildir *st, const char *name,
    const struct guid *guid)
{
	struct folder	*f;
	struct index	*ix = NULL;
	struct stat	 sb;
	char		*dir = NULL;
	int		 fd = -1, r, i;
	static const char *const subs[] = { "tmp", "new", "cur" };

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if (name == NULL || !names_valid(name, strlen(name)))
		return MSYNC_ERR_BADNAME;
	if ((r = names_to_dir(name, (int)st->o.layout, &dir)) != 0)
		return r;
	if ((fd = open_beneath(st->rootfd, dir)) != -1 && has_cur(fd)) {
		r = MSYNC_ERR_EXISTS;
		goto out;
	}
	/*
	 * There, with an index, but without cur/ (or with a cur/ that is
	 * no directory): a folder caught half-way, whose identity a fresh
	 * index would destroy.  Left alone (folder_no_cur).
	 */
	if (fd != -1 && (dir_has_index(st, fd, dir) ||
	    fstatat(fd, "cur", &sb, AT_SYMLINK_NOFOLLOW) == 0)) {
		skip_add(st, name);
		if (dir_has_index(st, fd, dir))
			(void)folder_no_cur(st, fd, dir, 1);
		else
			WARNX("'%s/%s/cur' is not a directory: not creating "
			    "mailbox '%s' over it", st->root,
			    log_esc(dir, 255), log_esc(name, 255));
		r = MSYNC_ERR_STORE_CHANGED;
		goto out;
	}
	if (fd != -1)
		close(fd);
	if ((fd = mkdir_beneath(st->rootfd, dir)) == -1) {
		WARN("cannot create '%s/%s'", st->root, dir);
		r = MSYNC_ERR_IO;
		goto out;
	}
	for (i = 0; i < 3; i++)
		if (mkdirat(fd, subs[i], 0700) == -1 && errno != EEXIST) {
			WARN("cannot create '%s/%s/%s'", st->root, dir,
			    subs[i]);
			r = MSYNC_ERR_IO;
			goto out;
		}
	if (st->o.layout == LAYOUT_MAILDIRPP && *dir != '\0') {
		/* As Dovecot and Courier mark a Maildir++ subfolder. */
		int	mfd = openat(fd, "maildirfolder", O_WRONLY | O_CREAT |
		    O_NOFOLLOW | O_CLOEXEC, 0600);

		if (mfd != -1)
			close(mfd);
	}
	(void)fsync(fd);
	/* A fresh index with the wanted GUID, then the usual refresh. */
	if ((r = index_new(guid, 0, &ix)) != 0)
		goto out;
	if ((f = folder_find(st, name, NULL)) != NULL) {
		index_free(f->ix);
		f->ix = NULL;
	}
	if ((r = index_save(ix, fd, INDEX_FILE)) != 0)
		goto out;
	close(fd);
	fd = -1;
	if ((r = folder_open(st, name, REFRESH_FORCE, &f, &fd)) != 0)
		goto out;
	r = 0;
out:
	index_free(ix);
	free(dir);
	if (fd != -1)
		close(fd);
	return r;
}

/* Saves and forgets every folder named name or below it. */
static int
forget_tree(struct maildir *st, const char *name)
{
	size_t	i, len = strlen(name);
	int	fd, r;

	for (i = 0; i < st->nf; ) {
		if (strcmp(st->f[i]->name, name) != 0 &&
		    !(strncmp(st->f[i]->name, name, len) == 0 &&
		    st->f[i]->name[len] == '/')) {
			i++;
			continue;
		}
		if ((fd = open_beneath(st->rootfd, st->f[i]->dir)) != -1) {
			r = folder_save(st, st->f[i], fd);
			close(fd);
			if (r != 0)
				return r;
		}
		folder_drop(st, i);
	}
	return 0;
}

/*
 * Opens the parent directory of rel ("a/b/c" -> "a/b"), creating it if
 * create.  *last points into rel at the last component.
 */
static int
open_parent(int rootfd, const char *rel, int create, const char **last)
{
	char		 buf[MSYNC_PATH_MAX];
	const char	*s;
	int		 fd;

	if ((s = strrchr(rel, '/')) == NULL) {
		*last = rel;
		return openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	*last = s + 1;
	if ((size_t)(s - rel) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, rel, (size_t)(s - rel));
	buf[s - rel] = '\0';
	fd = create ? mkdir_beneath(rootfd, buf) : open_beneath(rootfd, buf);
	return fd;
}

/* Renames a mailbox and its children; see store.h. */
static int
maildir_rename_mailbox(struct maildir *st, const char *from, const char *to)
{
	char		*fdir = NULL, *tdir = NULL;
	const char	*fl, *tl;
	int		 fd = -1, pfd = -1, tfd = -1, r;
	struct stat	 sb;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	hot_drop(st);
	op_drop(st);
	if (from == NULL || to == NULL ||
	    !names_valid(from, strlen(from)) || !names_valid(to, strlen(to)) ||
	    strcmp(from, "INBOX") == 0 || strcmp(to, "INBOX") == 0)
		return MSYNC_ERR_BADNAME;
	if ((r = names_to_dir(from, (int)st->o.layout, &fdir)) != 0 ||
	    (r = names_to_dir(to, (int)st->o.layout, &tdir)) != 0)
		goto out;
	if (strncmp(tdir, fdir, strlen(fdir)) == 0 &&
	    (tdir[strlen(fdir)] == '/' || tdir[strlen(fdir)] == '.')) {
		r = MSYNC_ERR_BADNAME;	/* into its own child */
		goto out;
	}
	if ((fd = open_beneath(st->rootfd, fdir)) == -1 || !has_cur(fd)) {
		r = MSYNC_ERR_NOTFOUND;
		goto out;
	}
	close(fd);
	fd = -1;
	if (fstatat(st->rootfd, tdir, &sb, AT_SYMLINK_NOFOLLOW) == 0 ||
	    errno != ENOENT) {
		r = MSYNC_ERR_EXISTS;
		goto out;
	}
	if ((r = forget_tree(st, from)) != 0)
		goto out;
	if (st->o.layout == LAYOUT_FS) {
		r = MSYNC_ERR_IO;
		if ((pfd = open_parent(st->rootfd, fdir, 0, &fl)) == -1 ||
		    (tfd = open_parent(st->rootfd, tdir, 1, &tl)) == -1)
			goto out;
		if (move_noreplace(pfd, fl, tfd, tl) == -1) {
			r = errno == EEXIST ? MSYNC_ERR_EXISTS : MSYNC_ERR_IO;
			goto out;
		}
		(void)fsync(pfd);
		(void)fsync(tfd);
		r = 0;
		goto out;
	}
	/*
	 * Maildir++: ".A" only.  Its children ".A.*" are mailboxes of their
	 * own, which the planner renames (or not) one by one: moving them
	 * along would rename what the other side never renamed.
	 */
	if (move_noreplace(st->rootfd, fdir, st->rootfd, tdir) == -1) {
		WARN("cannot rename '%s/%s'", st->root, fdir);
		r = MSYNC_ERR_IO;
		goto out;
	}
	(void)fsync(st->rootfd);
	r = 0;
out:
	if (fd != -1)
		close(fd);
	if (pfd != -1)
		close(pfd);
	if (tfd != -1)
		close(tfd);
	free(fdir);
	free(tdir);
	return r;
}

/* Removes directory sub of dfd if it is empty; warns if it is not. */
static int
rmdir_warn(int dfd, const char *sub, const char *where)
{
	if (unlinkat(dfd, sub, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	if (errno == ENOTEMPTY || errno == EEXIST)
		WARNX("leaving '%s/%s': it holds files msync does not know",
		    where, sub);
	else
		WARN("cannot remove '%s/%s'", where, sub);
	return -1;
}

/* Deletes a mailbox; see store.h. */
static int
maildir_delete_mailbox(struct maildir *st, const char *name)
{
	static const char *const meta[] = {
		INDEX_KWFILE, "maildirfolder", "dovecot-uidlist",
		"dovecot.index", "dovecot.index.cache", "dovecot.index.log",
		"dovecot.index.log.2", "dovecot-uidlist.lock"
	};
	struct folder	*f;
	struct index	*ix;
	const char	*last;
	char		*where = NULL, *dir = NULL;
	size_t		 i, pos;
	int		 fd = -1, pfd = -1, r, left = 0;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	hot_drop(st);
	op_drop(st);
	if (name != NULL && strcmp(name, "INBOX") == 0)
		return MSYNC_ERR_BADNAME;
	if ((r = folder_open(st, name, REFRESH_FORCE, &f, &fd)) != 0)
		return r;
	ix = f->ix;
	for (i = 0; i < ix->n; i++) {
		if (ix->v[i].name == INDEX_NAME_DEAD)
			continue;
		if (unlink_ent(NULL, fd, index_name(ix, &ix->v[i])) == -1 &&
		    errno != ENOENT) {
			WARN("cannot remove '%s/%s'", f->where,
			    index_name(ix, &ix->v[i]));
			r = MSYNC_ERR_IO;
			goto out;
		}
	}
	(void)unlinkat(fd, INDEX_FILE, 0);
	for (i = 0; i < sizeof(meta) / sizeof(meta[0]); i++)
		(void)unlinkat(fd, meta[i], 0);
	r = MSYNC_ERR_NOMEM;
	if ((where = strdup(f->where)) == NULL ||
	    (dir = strdup(f->dir)) == NULL)
		goto out;
	if (folder_find(st, name, &pos) != NULL)
		folder_drop(st, pos);
	/* cur/ last: a folder with cur/ is still a mailbox. */
	if (rmdir_warn(fd, "tmp", where) == -1)
		left = 1;
	if (rmdir_warn(fd, "new", where) == -1)
		left = 1;
	if (rmdir_warn(fd, "cur", where) == -1)
		left = 1;
	(void)fsync(fd);
	if (!left) {
		if ((pfd = open_parent(st->rootfd, dir, 0, &last)) != -1) {
			if (unlinkat(pfd, last, AT_REMOVEDIR) == -1 &&
			    errno != ENOENT) {
				if (errno == ENOTEMPTY || errno == EEXIST)
					WARNX("leaving '%s': it holds files "
					    "msync does not know (or child "
					    "mailboxes)", where);
				else
					WARN("cannot remove '%s'", where);
			}
			(void)fsync(pfd);
		}
	}
	r = 0;
out:
	free(where);
	free(dir);
	if (pfd != -1)
		close(pfd);
	if (fd != -1)
		close(fd);
	return r;
}

/* Gives a mailbox another GUID; see store.h. */
static int
maildir_set_mailbox_guid(struct maildir *st, const char *name,
    const struct guid *guid)
{
	struct folder	*f;
	int		 fd, r;

	if (st->o.readonly)
		return MSYNC_ERR_READONLY;
	if (guid == NULL || guid_is_zero(guid))
		return MSYNC_ERR_INTERNAL;
	if ((r = folder_open(st, name, REFRESH_LAZY, &f, &fd)) != 0)
		return r;
	if (guid_cmp(&f->ix->guid, guid) != 0) {
		f->ix->guid = *guid;
		f->ix->dirty = 1;
		r = folder_save(st, f, fd);
	}
	close(fd);
	return r;
}

/*
 * The driver table (store.h).  The functions above work on struct
 * maildir; these adapters convert the interface's handles to it, and
 * turn the message file of maildir_open_message into a stream.
 */

/* One message being read: its file. */
struct maildir_msg {
	struct store_msg	 base;		/* first: the driver's handle */
	int			 fd;		/* the message file */
	uint64_t		 left;		/* bytes still to read */
};

static struct maildir *
md(struct store *s)
{
	return (struct maildir *)s;
}

static int
md_open(const struct store_opts *o, struct store **out, char **holder)
{
	struct maildir	*st = NULL;
	int		 r;

	*out = NULL;
	if ((r = maildir_open(o, &st, holder)) != 0)
		return r;
	st->base.drv = &store_maildir_driver;
	*out = &st->base;
	return 0;
}

static int
md_close(struct store *s)
{
	return maildir_close(md(s));
}

static int
md_list_mailboxes(struct store *s, struct store_mailbox **out, size_t *n)
{
	return maildir_list_mailboxes(md(s), out, n);
}

static int
md_list_messages(struct store *s, const char *name, struct msglist *out)
{
	return maildir_list_messages(md(s), name, out);
}

static int
md_prefetch(struct store *s, char *const *names, size_t n)
{
	return maildir_prefetch(md(s), names, n);
}

static int
md_rescan(struct store *s, const char *name, struct store_mailbox *m)
{
	return maildir_rescan(md(s), name, m);
}

static int
md_msg_open(struct store *s, const char *name, uint32_t uid,
    struct store_msg **out, uint64_t *size, int64_t *date)
{
	struct maildir_msg	*m;
	int			 r, fd;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return MSYNC_ERR_NOMEM;
	if ((r = maildir_open_message(md(s), name, uid, &fd, size,
	    date)) != 0) {
		free(m);
		return r;
	}
	m->base.st = s;
	m->fd = fd;
	m->left = *size;
	*out = &m->base;
	return 0;
}

static int
md_msg_read(struct store_msg *sm, void *buf, size_t cap, size_t *got)
{
	struct maildir_msg	*m = (struct maildir_msg *)sm;
	ssize_t			 n;

	*got = 0;
	if (m->left == 0 || cap == 0)
		return 0;
	if (cap > m->left)
		cap = (size_t)m->left;
	do
		n = read(m->fd, buf, cap);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return MSYNC_ERR_IO;
	if (n == 0)	/* the file shrank since it was opened */
		return MSYNC_ERR_STORE_CHANGED;
	m->left -= (uint64_t)n;
	*got = (size_t)n;
	return 0;
}

static void
md_msg_close(struct store_msg *sm)
{
	struct maildir_msg	*m = (struct maildir_msg *)sm;

	if (m == NULL)
		return;
	close(m->fd);
	free(m);
}

static int
md_save_begin(struct store *s, const char *name, struct store_save **out)
{
	struct maildir_save	*sv = NULL;
	int			 r;

	*out = NULL;
	if ((r = maildir_save_begin(md(s), name, &sv)) != 0)
		return r;
	sv->base.st = s;
	*out = &sv->base;
	return 0;
}

static int
md_save_write(struct store_save *sv, const void *p, size_t len)
{
	return maildir_save_write((struct maildir_save *)sv, p, len);
}

static int
md_save_commit(struct store_save *sv, uint8_t flags, const char *kw,
    int64_t date, const struct guid *expect, uint32_t *uid)
{
	return maildir_save_commit((struct maildir_save *)sv, flags, kw, date,
	    expect, uid);
}

static void
md_save_abort(struct store_save *sv)
{
	maildir_save_abort((struct maildir_save *)sv);
}

static int
md_set_flags(struct store *s, const char *name, uint32_t uid,
    uint8_t flags, const char *kw)
{
	return maildir_set_flags(md(s), name, uid, flags, kw);
}

static int
md_update_flags(struct store *s, const char *name, uint32_t uid,
    uint8_t old_flags, const char *old_kw, uint8_t flags, const char *kw)
{
	return maildir_update_flags(md(s), name, uid, old_flags, old_kw,
	    flags, kw);
}

static int
md_expunge(struct store *s, const char *name, uint32_t uid)
{
	return maildir_expunge(md(s), name, uid);
}

static int
md_expunge_guid(struct store *s, const char *name, uint32_t uid,
    const struct guid *expect)
{
	return maildir_expunge_guid(md(s), name, uid, expect);
}

static int
md_create_mailbox(struct store *s, const char *name,
    const struct guid *guid)
{
	return maildir_create_mailbox(md(s), name, guid);
}

static int
md_rename_mailbox(struct store *s, const char *from, const char *to)
{
	return maildir_rename_mailbox(md(s), from, to);
}

static int
md_delete_mailbox(struct store *s, const char *name)
{
	return maildir_delete_mailbox(md(s), name);
}

static int
md_set_mailbox_guid(struct store *s, const char *name,
    const struct guid *guid)
{
	return maildir_set_mailbox_guid(md(s), name, guid);
}

static int
md_flush(struct store *s)
{
	return maildir_flush(md(s));
}

static int
md_done(struct store *s, const char *name)
{
	return maildir_done(md(s), name);
}

const struct store_driver store_maildir_driver = {
	.name = "maildir",
	.open = md_open,
	.close = md_close,
	.list_mailboxes = md_list_mailboxes,
	.list_messages = md_list_messages,
	.rescan = md_rescan,
	.msg_open = md_msg_open,
	.msg_read = md_msg_read,
	.msg_close = md_msg_close,
	.save_begin = md_save_begin,
	.save_write = md_save_write,
	.save_commit = md_save_commit,
	.save_abort = md_save_abort,
	.set_flags = md_set_flags,
	.update_flags = md_update_flags,
	.expunge = md_expunge,
	.expunge_guid = md_expunge_guid,
	.create_mailbox = md_create_mailbox,
	.rename_mailbox = md_rename_mailbox,
	.delete_mailbox = md_delete_mailbox,
	.set_mailbox_guid = md_set_mailbox_guid,
	.flush = md_flush,
	.done = md_done,
	.prefetch = md_prefetch
};
