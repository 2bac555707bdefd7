/*
 * store.h — a mailbox format behind one interface (DESIGN.md "The shape").
 *
 * Mailboxes are named by their internal name: UTF-8, '/' as the hierarchy
 * separator, "INBOX" for the root folder.  Callers validate peer names
 * with names_valid() before passing them in; the store checks again.
 * Messages are named by (mailbox, UID).
 *
 * All memory belongs to the caller unless stated otherwise.  Every
 * function returns 0 on success or a negative MSYNC_ERR_* code.
 */
#ifndef STORE_H
#define STORE_H

#include <stdint.h>
#include <sys/types.h>

#include "msync.h"

enum store_layout {
	LAYOUT_MAILDIRPP = 0,	/* Maildir++: INBOX is the root, ".A.B" */
	LAYOUT_FS = 1		/* nested directories: A/B/{cur,new,tmp} */
};

/* How to open a store. */
struct store_opts {
	const char	*path;		/* borrowed; the store root */
	enum store_layout layout;
	int		 readonly;	/* never write the store (index in cache) */
	int		 full;		/* ignore change tokens: rescan all */
	int		 create;	/* create the root if it does not exist */
	int		 lock_wait;	/* seconds to wait for the lock; 0 = none */
	const char	*cachedir;	/* borrowed; NULL = $XDG_CACHE_HOME/msync */
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
};

struct store;		/* opaque */
struct store_save;	/* one message being saved */

/*
 * Opens the store at o->path, taking its lock (waiting up to
 * o->lock_wait seconds; MSYNC_ERR_LOCKED with *holder naming the holder
 * when it cannot).  *holder, if set, is owned by the caller.
 */
int	 store_open(const struct store_opts *o, struct store **out,
	    char **holder);
/* Writes any dirty index, releases the lock, frees.  Accepts NULL. */
int	 store_close(struct store *);

/*
 * Lists every mailbox with its status.  A folder whose change token is
 * unchanged is not read (only its index header); a changed one is
 * rescanned and its index rewritten.  Problems with single files or
 * folders are warned about and skipped.  *out is an owned array of *n
 * entries; free with store_mailboxes_free.
 */
int	 store_list_mailboxes(struct store *, struct store_mailbox **out,
	    size_t *n);
void	 store_mailboxes_free(struct store_mailbox *, size_t n);

/*
 * Fills *out (appended to; the caller frees with msglist_free) with the
 * messages of mailbox name, sorted by UID.
 */
int	 store_list_messages(struct store *, const char *name,
	    struct msglist *out);

/*
 * Brings mailbox name up to date, so the caller sees deliveries made
 * during the run: rescanned if its change token moved since it was last
 * read (any change to cur/ or new/, also this run's own, moves it; a
 * token read within 2 seconds of a change never counts as unmoved).
 * Updates its status in *st.
 */
int	 store_rescan(struct store *, const char *name,
	    struct store_mailbox *st);

/*
 * Opens message uid of mailbox name for reading: *fd is an owned file
 * descriptor positioned at 0, *size its length, *date its received date.
 * A message renamed by another program since the scan is found again; one
 * that is gone gives MSYNC_ERR_NOTFOUND.
 */
int	 store_open_message(struct store *, const char *name, uint32_t uid,
	    int *fd, uint64_t *size, int64_t *date);

/*
 * Saving: begin (a file in tmp/), write the content in pieces, then
 * commit (fsync, GUID check against *expect if not NULL, move into
 * new/ or cur/ under a name that never replaces an existing one, fsync
 * the directory, assign the next UID).  abort removes the tmp file.
 * commit and abort both free the store_save.
 */
int	 store_save_begin(struct store *, const char *name,
	    struct store_save **out);
int	 store_save_write(struct store_save *, const void *, size_t);
int	 store_save_commit(struct store_save *, uint8_t flags, const char *kw,
	    int64_t date, const struct guid *expect, uint32_t *uid_out);
void	 store_save_abort(struct store_save *);

/* Sets a message's flags and keywords (a rename in Maildir). */
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
 * Creates a mailbox (and its parents) with the given mailbox GUID
 * (random if NULL).  MSYNC_ERR_EXISTS if it exists.
 */
int	 store_create_mailbox(struct store *, const char *name,
	    const struct guid *guid);
/*
 * Renames a mailbox; its GUID and UIDs are kept.  In Maildir++ its
 * children (".A.*") are separate mailboxes and stay where they are; in
 * the fs layout they are inside its directory and move with it.
 */
int	 store_rename_mailbox(struct store *, const char *from,
	    const char *to);
/*
 * Deletes a mailbox: its messages, its index, its cur/new/tmp.  Files the
 * store does not recognise are left in place (the folder then stays, and
 * a warning says why).  Children are not touched.
 */
int	 store_delete_mailbox(struct store *, const char *name);
/* Gives a mailbox another GUID (adopting the peer's on a first sync). */
int	 store_set_mailbox_guid(struct store *, const char *name,
	    const struct guid *guid);
/* Writes the index of every mailbox changed since the last flush. */
int	 store_flush(struct store *);

#endif /* STORE_H */
