/*
 * index.h — the per-folder index of a Maildir folder (DESIGN.md
 * "Per-folder index"): UIDVALIDITY, next UID, mailbox GUID, a modification
 * sequence, the change token of cur/ and new/, and per message its UID,
 * GUID, size, date and file name ("cur/BASE:2,INFO" or "new/BASE").
 *
 * The file format (text, one record per line, versioned, ending in an
 * XXH3-64 checksum of every byte before the checksum line) is described
 * at the top of index.c and in man/msync.5.
 *
 * Memory: a struct index owns its entries and one arena of file names;
 * index_name() returns a borrowed pointer valid until the next call that
 * changes the index.  All other memory belongs to the caller.
 */
#ifndef INDEX_H
#define INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "msync.h"

#define INDEX_FILE	"msync.index"
#define INDEX_KWFILE	"dovecot-keywords"
#define INDEX_NAME_DEAD	UINT32_MAX	/* index_ent.name of a removed entry */

/*
 * The change token: what cur/ and new/ looked like at the last scan.
 * valid is 0 when the scan came within the racy window of a directory's
 * mtime (a change in the same timestamp tick would be invisible: racy
 * git): 100 ms on a local file system with nanosecond stamps, else 2 s.
 */
struct index_token {
	int		 valid;		/* 0: always rescan */
	int64_t		 cur_sec;	/* cur/ mtime */
	long		 cur_nsec;
	uint64_t	 cur_ino;	/* inode, birth time: a change hint only */
	int64_t		 new_sec;	/* new/ mtime; all 0 if new/ is missing */
	long		 new_nsec;
	uint64_t	 new_ino;
};

/* One message; 40 bytes, names live in the arena. */
struct index_ent {
	struct guid	 guid;		/* content GUID */
	uint64_t	 size;		/* bytes */
	int64_t		 date;		/* mtime seconds (received date) */
	uint32_t	 uid;		/* increasing, never 0 */
	uint32_t	 name;		/* arena offset; INDEX_NAME_DEAD if removed */
};

struct index {
	uint32_t		 uidvalidity;
	uint32_t		 uidnext;
	struct guid		 guid;		/* mailbox GUID */
	uint64_t		 modseq;	/* bumps on every content change */
	struct index_token	 token;
	struct index_ent	*v;		/* owned; sorted by uid */
	size_t			 n;		/* entries, removed ones included */
	size_t			 cap;
	size_t			 live;		/* entries not removed */
	uint64_t		 bytes;		/* sum of live sizes */
	char			*arena;		/* owned; NUL-terminated names */
	size_t			 alen;		/* used */
	size_t			 acap;
	size_t			 garbage;	/* arena bytes no longer used */
	int			 dirty;		/* differs from the file */
	/*
	 * The folder's directories are not the ones indexed (a copy, a
	 * restore, a remount): modseq steps by one instead of jumping to
	 * the clock, so an older copy stays below the sync base's modseq
	 * even after changes, and its first sync is a union (not stored).
	 */
	int			 moved;
	/*
	 * The journal (index format 3, index.c): what changed since the
	 * file was read or written, as records index_save appends to it
	 * instead of rewriting the whole file.  jrec is 0 when the file
	 * cannot take an append (none yet, an older format, a torn tail,
	 * records past a quarter of it): the next save rewrites it.
	 */
	char			*jbuf;		/* owned; records not written */
	size_t			 jlen;
	size_t			 jcap;
	int			 jrec;
	uint64_t		 fsize;		/* bytes of the file */
	uint64_t		 fbase;		/* of which before the journal */
	uint64_t		 fdev;		/* the file's identity */
	uint64_t		 fino;
	struct timespec		 fmtime;	/* its mtime: any other write */
	uint64_t		 jprev;		/* chains the next batch */
	uint32_t		 fuidvalidity;	/* as in the file */
	struct guid		 fguid;
};

/* The header of an index file: what a listing needs (index_load_head). */
struct index_head {
	int			 version;	/* of the file format */
	uint32_t		 uidvalidity;
	uint32_t		 uidnext;
	struct guid		 guid;
	uint64_t		 modseq;
	struct index_token	 token;
	uint64_t		 count;		/* messages */
	uint64_t		 bytes;		/* their sizes; version 2 */
	int			 journal;	/* header from a journal's end */
};

/* Keyword names of one folder: dovecot-keywords, letter 'a' + n. */
struct index_kwmap {
	char		*name[26];	/* owned; NULL if the slot is free */
	int		 loaded;	/* read from disk at least once */
};

/*
 * A new empty index: a fresh UIDVALIDITY (time-based, above
 * old_uidvalidity), uidnext 1, the mailbox GUID *guid or a random one.
 */
int	 index_new(const struct guid *guid, uint32_t old_uidvalidity,
	    struct index **out);
void	 index_free(struct index *);

/*
 * Reads the index file fname in directory dirfd.  Returns 0,
 * MSYNC_ERR_NOTFOUND if there is none, MSYNC_ERR_STATE_CORRUPT if it
 * fails any check, MSYNC_ERR_IO or MSYNC_ERR_NOMEM.
 */
int	 index_load(int dirfd, const char *fname, struct index **out);
/*
 * Reads only the header of the index file fname in dirfd (its first few
 * hundred bytes), checked by its own checksum.  For a folder whose change
 * token did not move, that is all a listing needs; the messages are read
 * (and the whole file checked) by index_load when something needs them.
 * A version 3 file's changing fields come from its last line, the end
 * line of its newest journal batch, if it has one; a file whose last
 * line is neither (a torn append) is loaded whole to answer.
 * Returns 0, MSYNC_ERR_NOTFOUND, MSYNC_ERR_STATE_CORRUPT (also for a
 * version 1 file, which has no checked header: load it whole) or
 * MSYNC_ERR_IO.
 */
int	 index_load_head(int dirfd, const char *fname,
	    struct index_head *out);
/*
 * The UIDVALIDITY still readable at the top of a damaged index file, or
 * 0: a rebuilt index must get a different one.
 */
uint32_t index_old_uidvalidity(int dirfd, const char *fname);
/* Writes the index atomically to fname in dirfd; clears dirty. */
int	 index_save(struct index *, int dirfd, const char *fname);
/* The file's bytes, and back (validating everything). */
int	 index_encode(const struct index *, char **buf, size_t *len);
int	 index_decode(const char *buf, size_t len, struct index **out);

/*
 * Reads the change token of the folder open on folderfd (cur/ and new/
 * mtimes and inodes).  now is the current time; a directory changed less
 * than the racy window before it gives an invalid token.
 */
int	 index_token_read(int folderfd, const struct timespec *now,
	    struct index_token *out);
/* 1 if both tokens are valid and equal. */
int	 index_token_same(const struct index_token *,
	    const struct index_token *);
/*
 * 1 if the folder's token now is older than the token the index was
 * made with (cur/ or new/ stamped more than INDEX_OLDER_SLACK seconds
 * earlier): the folder's mail was put back from an older copy under a
 * newer index.  Directory stamps only move forward as mail changes, and
 * cp -a, rsync -a and tar keep them (to the second; FAT to 2 s), so a
 * copy is not older; inode numbers are not compared (a copy or a
 * remount changes them and the folder stays the same).
 */
#define INDEX_OLDER_SLACK	2
int	 index_token_older(const struct index_token *now,
	    const struct index_token *indexed);

/*
 * Brings the index up to date with the folder open on folderfd: known
 * files are matched by base name without a stat; new regular files are
 * hashed and get the next UIDs (in name order); entries whose files are
 * gone are removed; modseq bumps if anything changed.  Symlinks, hard
 * links, empty files, non-Maildir names and unreadable files are warned
 * about (where names the folder in warnings) and skipped, never touched.
 * Also stores the new change token.  *changed (if not NULL) is set to 1
 * when the message set or a name changed.
 */
int	 index_rescan(struct index *, int folderfd, const char *where,
	    int *changed);

/* The live entry with uid, or NULL. */
struct index_ent *index_find(struct index *, uint32_t uid);
/* The file name of e, relative to the folder; borrowed (see above). */
const char	*index_name(const struct index *, const struct index_ent *);
/* Gives e another file name ("cur/..." or "new/..."). */
int	 index_set_name(struct index *, struct index_ent *, const char *);
/* Adds a message under the next UID; modseq bumps. */
int	 index_add(struct index *, const struct guid *, uint64_t size,
	    int64_t date, const char *name, uint32_t *uid);
/* Removes e; modseq bumps. */
void	 index_remove(struct index *, struct index_ent *);
/*
 * Looks for the file of e again in cur/ and new/ by its base name (it was
 * renamed by another program) and updates its name.  Returns 0, or
 * MSYNC_ERR_NOTFOUND if it is gone.
 */
int	 index_refind(struct index *, int folderfd, struct index_ent *);

/*
 * Keywords.  index_kw_load reads dovecot-keywords from folderfd (a
 * missing file is an empty map; bad lines are skipped).  index_kw_names
 * turns letters into a sorted, space-separated name string (*out NULL
 * when there are none; letters without a name are left out).
 * index_kw_bits turns such a string into letters, giving new names free
 * letters; *added is set when the map must be saved with index_kw_save
 * (atomically).  A name that finds no free letter is dropped with a
 * warning.
 */
int	 index_kw_load(int folderfd, struct index_kwmap *);
void	 index_kw_clear(struct index_kwmap *);
int	 index_kw_names(const struct index_kwmap *, uint32_t bits,
	    char **out);
int	 index_kw_bits(struct index_kwmap *, const char *kw, uint32_t *bits,
	    int *added);
int	 index_kw_save(int folderfd, const struct index_kwmap *);
/* 1 if s is a usable keyword name (an IMAP atom, bounded). */
int	 index_kw_valid(const char *s, size_t len);

/*
 * Replaces fname in dirfd with len bytes of buf atomically: a temporary
 * file, write, fsync, rename, fsync of the directory.
 */
int	 index_write_atomic(int dirfd, const char *fname, const void *buf,
	    size_t len);

/*
 * Test hook (Nth-call-fails injection): when > 0, the Nth write, fsync
 * or rename made by index_write_atomic from now on fails with EIO.
 */
extern int index_fail_nth;

#endif /* INDEX_H */
