/*
 * store.h — a mailbox format behind one interface (DESIGN.md "The shape"),
 * a driver table as isync's driver_t: one file per format in src/store/
 * (maildir.c, mbox.c, later imap.c) fills a struct store_driver, and the
 * thin dispatch in src/store/store.c picks the driver from the location's
 * type and calls through the table.  The brain and the planner see only
 * the store_* functions below and never learn the format.
 *
 * Mailboxes are named by their internal name: UTF-8, '/' as the hierarchy
 * separator, "INBOX" for the root folder.  Callers validate peer names
 * with names_valid() before passing them in; the store checks again.
 * Messages are named by (mailbox, UID).
 *
 * Ownership, stated once for the interface and every driver:
 *  - all memory passed in is borrowed for the duration of the call and
 *    belongs to the caller; all memory handed out (*out arrays, *holder)
 *    belongs to the caller, freed with the function named next to it;
 *  - a struct store is owned by whoever opened it, until store_close;
 *  - a struct store_msg (a message being read) and a struct store_save (a
 *    message being saved) belong to the store they came from and must be
 *    finished (store_msg_close; store_save_commit or store_save_abort)
 *    before it is closed; neither survives store_close;
 *  - no function hands out a file descriptor: a message is a byte stream,
 *    so a format whose message is a slice of a file (mbox) or arrives
 *    over a network (IMAP) fits the same calls.
 * Every function returns 0 on success or a negative MSYNC_ERR_* code.
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>
#include <sys/types.h>

#include "msync.h"

enum store_layout {
	LAYOUT_MAILDIRPP = 0,	/* Maildir++: INBOX is the root, ".A.B" */
	LAYOUT_FS = 1,		/* nested directories: A/B/{cur,new,tmp} */
	LAYOUT_MBOX = 2,	/* mbox: a file (INBOX), or a directory of
				   mbox files and subdirectories (mutt) */
	LAYOUT_MBOX_TB = 3,	/* mbox, Thunderbird: "Name" + "Name.sbd/" */
	LAYOUT_IMAP = 4		/* an IMAP account: path is the imap[s]://
				   location (src/imap/url.h) */
};
#define STORE_LAYOUT_MAX LAYOUT_IMAP
/* 1 if layout is one of the mbox layouts. */
#define LAYOUT_IS_MBOX(l) ((l) == LAYOUT_MBOX || (l) == LAYOUT_MBOX_TB)

/* How to open a store. */
struct store_opts {
	const char	*path;		/* borrowed; the store root */
	enum store_layout layout;	/* also picks the driver */
	int		 readonly;	/* never write the store (index in cache) */
	int		 full;		/* ignore change tokens: rescan all */
	int		 create;	/* create the root if it does not exist */
	int		 lock_wait;	/* seconds to wait for the lock; 0 = none */
	const char	*cachedir;	/* borrowed; NULL = $XDG_CACHE_HOME/msync */
	const char	*inbox;		/* borrowed; mbox: INBOX's file, or NULL */
	int		 mbox_format;	/* mbox: MBOXFMT_MBOXRD (0) or _MBOXO */
};

/* Status of one mailbox, as store_list_mailboxes reports it. */
struct store_mailbox {
	char		*name;		/* owned; internal name */
	struct guid	 guid;		/* mailbox GUID, kept in the index */
	uint32_t	 uidvalidity;
	uint32_t	 uidnext;
	uint64_t	 modseq;	/* bumps whenever the contents change */
	uint32_t	 count;		/* messages */
	uint64_t	 bytes;		/* sum of message sizes */
	/*
	 * Non-zero (an MSYNC_ERR_*): the mailbox exists but could not be
	 * read (its index unreadable, EMFILE, EIO); only name is valid.  It
	 * is neither empty nor gone: the brain leaves it out of the run.
	 */
	int		 error;
};

struct store_driver;

/*
 * The three handles are a driver's own structs, each beginning with the
 * member below (isync's store_t): the dispatch reads only that member,
 * a driver converts the pointer back to its own struct.
 */
struct store {
	const struct store_driver *drv;	/* the driver that made it */
};
struct store_msg {			/* one message being read */
	struct store	*st;		/* the store it came from */
};
struct store_save {			/* one message being saved */
	struct store	*st;		/* the store it goes into */
};

/*
 * Opens the store described by o, taking its lock (waiting up to
 * o->lock_wait seconds; MSYNC_ERR_LOCKED with *holder naming the holder
 * when it cannot).  *holder, if set, is owned by the caller; on another
 * failure a driver may set it to a one-line reason for the user (IMAP:
 * "certificate of HOST is not trusted: ...").
 */
int	 store_open(const struct store_opts *o, struct store **out,
	    char **holder);
/*
 * What a bare path (no "maildir:" or "mbox:") is, by what is on disk: a
 * regular file starting with "From " sets *layout to LAYOUT_MBOX; a
 * directory or a path that does not exist yet leaves *layout alone (a
 * Maildir).  MSYNC_ERR_USAGE for anything else (a file that is not an
 * mbox, a directory of mbox files without any Maildir part, a device),
 * MSYNC_ERR_IO if it cannot be read.
 */
int	 store_detect(const char *path, int *layout);
/* Writes any dirty index, releases the lock, frees.  Accepts NULL. */
int	 store_close(struct store *);
/* The driver's name ("maildir", "mbox"), for messages. */
const char *store_kind(const struct store *);

/*
 * Lists every mailbox with its status.  A folder whose change token is
 * unchanged is not read (only its index header); a changed one is
 * rescanned and its index rewritten.  Problems with single files are
 * warned about and skipped; a folder that exists but cannot be read is
 * listed with its error set; a directory that cannot be read while
 * looking for folders fails the whole listing (MSYNC_ERR_IO), since a
 * folder missing from the list would look deleted.  *out is an owned array of *n
 * entries; free with store_mailboxes_free.
 */
int	 store_list_mailboxes(struct store *, struct store_mailbox **out,
	    size_t *n);
void	 store_mailboxes_free(struct store_mailbox *, size_t n);

/*
 * Fills *out (appended to; the caller frees with msglist_free) with the
 * messages of mailbox name, sorted by UID.  MSYNC_ERR_RENUMBERED: the
 * mailbox was numbered afresh since store_list_mailboxes (an IMAP
 * server's new UIDVALIDITY); only this mailbox is affected.
 */
int	 store_list_messages(struct store *, const char *name,
	    struct msglist *out);

/*
 * Brings mailbox name up to date, so the caller sees deliveries made
 * during the run: rescanned if its change token moved since it was last
 * read.  Updates its status in *st.
 */
int	 store_rescan(struct store *, const char *name,
	    struct store_mailbox *st);

/*
 * Reading a message, as a stream: open gives its length (*size) and
 * received date (*date); read fills up to cap bytes of buf and sets *got
 * (0 only at the end, after exactly *size bytes); close frees (accepts
 * NULL).  A message renamed or moved by another program since the scan
 * is found again; one that is gone gives MSYNC_ERR_NOTFOUND.  A message
 * whose bytes change under the reader gives MSYNC_ERR_STORE_CHANGED.
 */
int	 store_msg_open(struct store *, const char *name, uint32_t uid,
	    struct store_msg **out, uint64_t *size, int64_t *date);
int	 store_msg_read(struct store_msg *, void *buf, size_t cap,
	    size_t *got);
void	 store_msg_close(struct store_msg *);

/*
 * Saving: begin, write the content in pieces, then commit (make it
 * durable, check the GUID against *expect if not NULL, make it visible
 * without ever replacing another message, assign the next UID).  abort
 * drops what was written.  commit and abort both free the store_save.
 */
int	 store_save_begin(struct store *, const char *name,
	    struct store_save **out);
int	 store_save_write(struct store_save *, const void *, size_t);
int	 store_save_commit(struct store_save *, uint8_t flags, const char *kw,
	    int64_t date, const struct guid *expect, uint32_t *uid_out);
void	 store_save_abort(struct store_save *);

/* Sets a message's flags and keywords. */
int	 store_set_flags(struct store *, const char *name, uint32_t uid,
	    uint8_t flags, const char *kw);
/*
 * The same, changing only what differs between (old_flags, old_kw), the
 * flags the caller listed, and (flags, kw): a flag another program set or
 * cleared since the listing is kept, not overwritten.
 */
int	 store_update_flags(struct store *, const char *name, uint32_t uid,
	    uint8_t old_flags, const char *old_kw, uint8_t flags,
	    const char *kw);
/* Removes a message.  One that is already gone is not an error. */
int	 store_expunge(struct store *, const char *name, uint32_t uid);
/*
 * The same, but only if message uid still has GUID *expect: a safety
 * net, so that a stale UID never deletes another message.
 * MSYNC_ERR_STORE_CHANGED (nothing deleted) if it does not.
 */
int	 store_expunge_guid(struct store *, const char *name, uint32_t uid,
	    const struct guid *expect);

/*
 * A copy within one store, made by the store itself (an IMAP server's
 * UID COPY or UID MOVE): no byte of the message passes through msync.
 * Optional: a driver without it (Maildir, mbox) leaves every item's done
 * at 0, and the caller copies by reading and saving as before.
 *
 * The items of one call all go from mailbox from to mailbox to.  With
 * move, the source message is to be removed too, and the store may do
 * both at once (UID MOVE, RFC 6851): then moved says so, and the caller
 * drops its own expunge of the source.  A move is only asked for when
 * the caller would expunge the source after its copies anyway; the store
 * never leaves a message in neither mailbox.
 */
struct store_copy {
	uint32_t	 uid;		/* in: the message in from */
	uint8_t		 flags;		/* in: the flags the copy must have */
	const char	*kw;		/* in: borrowed; its keywords or NULL */
	int		 src_known;	/* in: src_flags/src_kw are known */
	uint8_t		 src_flags;	/* in: uid's flags as listed */
	const char	*src_kw;	/* in: borrowed; as listed, or NULL */
	struct guid	 guid;		/* in: the message's GUID */
	int		 done;		/* out: 1 if the store handled it */
	int		 status;	/* out: done: 0 or an MSYNC_ERR_* */
	uint32_t	 new_uid;	/* out: its UID in to; 0 = not known
					   (learned on the next listing) */
	int		 moved;		/* out: the source is gone as well */
};
/* 1 if the store can copy within itself (store_copy does something). */
int	 store_has_copy(const struct store *);
/*
 * Copies v[0..n) from mailbox from to mailbox to (see struct
 * store_copy).  Returns 0, or an MSYNC_ERR_* when nothing more can be
 * done in this store (the items not done are then failed by the caller).
 */
int	 store_copy(struct store *, const char *from, const char *to,
	    int move, struct store_copy *v, size_t n);

/*
 * Creates a mailbox (and its parents) with the given mailbox GUID
 * (random if NULL).  MSYNC_ERR_EXISTS if it exists.
 */
int	 store_create_mailbox(struct store *, const char *name,
	    const struct guid *guid);
/*
 * Renames a mailbox; its GUID and UIDs are kept.  Whether its children
 * move with it is the layout's (Maildir++: no, they are separate
 * ".A.*" folders; fs and mbox directories: yes).
 */
int	 store_rename_mailbox(struct store *, const char *from,
	    const char *to);
/*
 * Deletes a mailbox: its messages and its index.  Files the store does
 * not recognise are left in place (a warning says why).  Children are
 * not touched.
 */
int	 store_delete_mailbox(struct store *, const char *name);
/* Gives a mailbox another GUID (adopting the peer's on a first sync). */
int	 store_set_mailbox_guid(struct store *, const char *name,
	    const struct guid *guid);
/* Writes the index of every mailbox changed since the last flush. */
int	 store_flush(struct store *);
/*
 * Says that this run will not touch mailbox name again: the store may
 * write what it holds for it now and free it (issue 10.3: memory).  A
 * hint: if the caller comes back, the store loads what it needs again.
 * With name NULL, changes nothing and asks: 1 if the store holds more
 * loaded than its bound, so that it would let mailboxes go (the caller
 * then makes a mailbox's end-of-run check before it says it is done
 * with it), else 0.  Optional (NULL: nothing to do, and 0).
 */
int	 store_done(struct store *, const char *name);

/*
 * Says that the caller will next list the messages (store_list_messages)
 * of these mailboxes, in this order, perhaps not all of them, and nothing
 * else meanwhile: the store may start reading them ahead (the Maildir
 * driver loads their indexes on worker threads).  names are copied.
 * Any other call, or a listing of a mailbox not next on the list, ends
 * the read-ahead; n 0 ends it now.  Optional (NULL: nothing to do).
 * Returns 0 or MSYNC_ERR_NOMEM (the caller may go on without it).
 */
int	 store_prefetch(struct store *, char *const *names, size_t n);

/*
 * The header fingerprint (src/fprint.h) of message uid of mailbox name,
 * read through msg_open/msg_read: its header and its size with CRLF line
 * ends.  MSYNC_ERR_NOTFOUND when it has no Message-ID (or is gone).
 */
int	 store_fingerprint(struct store *, const char *name, uint32_t uid,
	    struct guid *fp);

/*
 * The peer's messages of mailbox name that a store may recognise by
 * their header fingerprint on a first sync (docs/IMAP.md): fp, and the
 * GUID and size the peer listed.  Kept until the next listing of name,
 * which uses them for messages whose GUID it does not know; a driver
 * without the method ignores them.
 */
struct store_hint {
	struct guid	 fp;
	struct guid	 guid;
	uint64_t	 size;
};
int	 store_hints(struct store *, const char *name,
	    const struct store_hint *, size_t n);

/*
 * The driver table.  Each method is the store_* function of the same
 * name, with the same contract; the dispatch checks nothing a driver
 * must check itself (names, lengths), it only routes.  open allocates
 * the driver's struct and sets its drv member; close frees it.
 */
struct store_driver {
	const char	*name;
	int	(*open)(const struct store_opts *, struct store **, char **);
	int	(*close)(struct store *);
	int	(*list_mailboxes)(struct store *, struct store_mailbox **,
		    size_t *);
	int	(*list_messages)(struct store *, const char *,
		    struct msglist *);
	int	(*rescan)(struct store *, const char *,
		    struct store_mailbox *);
	int	(*msg_open)(struct store *, const char *, uint32_t,
		    struct store_msg **, uint64_t *, int64_t *);
	int	(*msg_read)(struct store_msg *, void *, size_t, size_t *);
	void	(*msg_close)(struct store_msg *);
	int	(*save_begin)(struct store *, const char *,
		    struct store_save **);
	int	(*save_write)(struct store_save *, const void *, size_t);
	int	(*save_commit)(struct store_save *, uint8_t, const char *,
		    int64_t, const struct guid *, uint32_t *);
	void	(*save_abort)(struct store_save *);
	int	(*set_flags)(struct store *, const char *, uint32_t, uint8_t,
		    const char *);
	int	(*update_flags)(struct store *, const char *, uint32_t,
		    uint8_t, const char *, uint8_t, const char *);
	int	(*expunge)(struct store *, const char *, uint32_t);
	int	(*expunge_guid)(struct store *, const char *, uint32_t,
		    const struct guid *);
	/* Optional (NULL: the caller reads and saves). */
	int	(*copy)(struct store *, const char *, const char *, int,
		    struct store_copy *, size_t);
	int	(*create_mailbox)(struct store *, const char *,
		    const struct guid *);
	int	(*rename_mailbox)(struct store *, const char *, const char *);
	int	(*delete_mailbox)(struct store *, const char *);
	int	(*set_mailbox_guid)(struct store *, const char *,
		    const struct guid *);
	int	(*flush)(struct store *);
	int	(*done)(struct store *, const char *);	/* or NULL */
	int	(*hints)(struct store *, const char *,
		    const struct store_hint *, size_t);	/* or NULL */
	int	(*prefetch)(struct store *, char *const *,
		    size_t);				/* or NULL */
	/*
	 * Optional: 0 if reading message uid would cost more than a local
	 * read (an IMAP message not in the spool: a download).
	 */
	int	(*msg_local)(struct store *, const char *, uint32_t);
};

/* The drivers (src/store/<name>.c). */
extern const struct store_driver store_maildir_driver;
extern const struct store_driver store_imap_driver;
extern const struct store_driver store_mbox_driver;

#endif /* STORE_H */
