/*
 * state.h — the sync state of one pair of stores (DESIGN.md "Sync state"):
 * what both sides had in common at the end of the last successful sync.
 * It lives on the initiating side and travels to the server brain.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef STATE_H
#define STATE_H

#include <stdint.h>

#include "msync.h"

/*
 * One message of the base.  uid[s] == 0 means side s did not have it at
 * the end of the last sync (a one-way run left it on one side only: DST
 * deleted it, or SRC did); such an entry is a tombstone that stops the
 * message from being treated as new again.
 */
struct state_msg {
	struct guid	 guid;
	uint32_t	 uid[2];	/* per side; 0 = absent on that side */
	uint8_t		 flags[2];	/* per side FLAG_* */
	/*
	 * The planner's scratch while it builds the next base (plan.c
	 * next_build), 0 everywhere else: never stored, hashed or compared.
	 * It takes room the alignment of kw leaves free anyway.
	 */
	uint32_t	 aux;
	char		*kw[2];		/* owned; per side keywords or NULL */
};

/* One mailbox pair of the base. */
struct state_mbox {
	struct guid	 guid;		/* mailbox GUID (both sides share it) */
	char		*name;		/* owned; internal name at last sync */
	uint32_t	 uidvalidity[2];
	/*
	 * Each side's index modseq at the end of the last sync, or 0 when
	 * that side's listing then did not equal msgs exactly (a delivery
	 * during the run): 0 never matches, so the side is listed in full.
	 */
	uint64_t	 modseq[2];
	struct state_msg *msgs;		/* owned; sorted by uid[SIDE_A], then uid[SIDE_B] */
	size_t		 nmsgs;
	size_t		 capmsgs;
};

struct state {
	struct state_mbox *mb;		/* owned; sorted by guid */
	size_t		 n;
	size_t		 cap;
};

/* Frees everything inside st (not st itself).  Accepts NULL. */
void	 state_clear(struct state *st);
/* Appends an empty mailbox; *out is borrowed, valid until the next add. */
int	 state_add_mbox(struct state *, const struct guid *, const char *name,
	    struct state_mbox **out);
/* Appends a message (kw strings are copied). */
int	 state_add_msg(struct state_mbox *, const struct state_msg *);
/*
 * Moves *from (its name and messages) to the end of to, leaving *from
 * empty: no copy.  Returns 0 or MSYNC_ERR_NOMEM (*from unchanged).
 */
int	 state_take_mbox(struct state *to, struct state_mbox *from);
/* Sorts mailboxes by guid and messages by uid, so encodings are stable. */
void	 state_sort(struct state *);
/* qsort order of struct state_msg: uid[A], uid[B], then every other field. */
int	 state_msg_cmp(const void *, const void *);
/* Finds a mailbox by GUID (state must be sorted); NULL if none. */
struct state_mbox *state_find(const struct state *, const struct guid *);

/*
 * Loads the state file at path.  A missing file gives an empty state and
 * 0.  A corrupt or unreadable one gives MSYNC_ERR_STATE_CORRUPT and an
 * empty state (the caller warns; no deletions will be inferred).
 */
int	 state_load(const char *path, struct state *out);
/*
 * Replaces the file at path atomically (temporary file, fsync, rename,
 * fsync of the directory).  The previous state stays whole on any error.
 */
int	 state_save(const char *path, const struct state *st);

/*
 * Serialises st into a heap buffer (*out, owned by the caller), the same
 * bytes state_save writes, and parses them back.  The parser bounds every
 * count and length and rejects trailing data.
 */
int	 state_encode(const struct state *st, uint8_t **out, size_t *len);
int	 state_decode(const uint8_t *buf, size_t len, struct state *out);

/*
 * The file that holds the state of the pair (loc_a, loc_b) under
 * state_dir (NULL = $XDG_STATE_HOME/msync, else ~/.local/state/msync).
 * The name is a hash of the two canonical locations, so it does not
 * depend on the mode.  *out is owned by the caller.
 */
int	 state_path(const char *state_dir, const char *loc_a,
	    const char *loc_b, char **out);

#endif /* STATE_H */
