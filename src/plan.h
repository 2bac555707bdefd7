/*
 * plan.h — the deterministic planner: (base, side A's view, side B's view,
 * mode) -> the actions that bring the two sides in step, and the base the
 * sync will leave behind.  No I/O.  Both brains run it on identical inputs
 * and compare plan->digest before either changes anything.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef PLAN_H
#define PLAN_H

#include <stdint.h>

#include "msync.h"
#include "state.h"

/* One side's view of one mailbox: the planner's input. */
struct view_mbox {
	char		*name;		/* owned; internal name */
	struct guid	 guid;		/* mailbox GUID */
	uint32_t	 uidvalidity;
	uint64_t	 modseq;
	/*
	 * 1: the side's listing equals the base's (same uidvalidity and
	 * modseq), so msgs is empty and the planner takes the list from the
	 * base: every state_msg with uid[s] != 0, flags[s], kw[s].
	 */
	int		 unchanged;
	/*
	 * 1: the mailbox exists on that side but could not be read (its
	 * index unreadable, EMFILE, EIO); guid and msgs are empty.  The
	 * brain takes such mailboxes, and everything that might be them,
	 * out of the views before planning: the planner never sees one.
	 */
	int		 unreadable;
	struct msglist	 msgs;		/* sorted by uid; empty if unchanged */
};

struct view {
	struct view_mbox *mb;		/* owned */
	size_t		 n;
	size_t		 cap;
};

enum act_type {
	ACT_MBOX_CREATE = 1,	/* create mbox (final_name, guid) on side */
	ACT_MBOX_RENAME = 2,	/* rename mbox on side: name[side] -> final_name */
	ACT_MBOX_SETGUID = 3,	/* side adopts the pair's guid (first sync) */
	ACT_COPY = 4,		/* copy a message into mbox on side */
	ACT_FLAGS = 5,		/* set flags/keywords of uid in mbox on side */
	ACT_EXPUNGE = 6,	/* remove uid from mbox on side */
	ACT_MBOX_DELETE = 7	/* delete mbox on side (after its expunges) */
};

/*
 * One action.  Actions are ordered: mailbox creates, renames and setguids
 * first, then copies, flag changes, expunges, and mailbox deletes last, so
 * an interrupted run never loses the only copy of a message.
 */
struct action {
	/*
	 * The small fields first and as bytes: a run holds one action per
	 * message it copies (48 bytes here, was 72; docs/PERFORMANCE.md).
	 */
	uint8_t		 type;		/* enum act_type */
	uint8_t		 side;		/* enum side: the side that changes */
	uint8_t		 flags;		/* COPY, FLAGS: the final flags */
	/*
	 * COPY: where the content comes from (enum side).  src_side == side
	 * means a local copy (a move, or a message the side already has
	 * elsewhere): no content crosses the wire.
	 */
	uint8_t		 src_side;
	uint32_t	 mbox;		/* index into plan->mb */
	uint32_t	 uid;		/* FLAGS, EXPUNGE: the uid on side */
	uint32_t	 src_mbox;	/* COPY: index into plan->mb */
	uint32_t	 src_uid;
	/*
	 * COPY: the entry of plan->next that gets the new uid (its
	 * uid[side]): next.mb[mb[mbox].next].msgs[next_msg], which
	 * plan_next_msg finds.
	 */
	uint32_t	 next_msg;
	struct guid	 guid;		/* COPY, FLAGS, EXPUNGE: message GUID */
	char		*kw;		/* owned; COPY, FLAGS: final keywords */
};

/* One mailbox pair of the plan. */
struct plan_mbox {
	struct guid	 guid;		/* the pair's identity */
	char		*name[2];	/* owned; current name per side, or NULL */
	char		*final_name;	/* owned; name after the sync, NULL if deleted */
	int		 trusted;	/* 1: a base was used; 0: union */
	/*
	 * Per side, 1: plan_build freed that side's listing of this
	 * mailbox (plan_opts.release PLAN_RELEASE_UNTOUCHED): the plan
	 * changes nothing of it there and reads none of its messages for a
	 * local copy, and next holds on that side exactly what it listed,
	 * so next stands for the listing.  Not in the digest.
	 */
	uint8_t		 released[2];
	uint32_t	 next;		/* index into plan->next.mb, or
					   UINT32_MAX: not kept */
};

struct plan {
	struct plan_mbox *mb;		/* owned */
	size_t		 nmb;
	struct action	*act;		/* owned */
	size_t		 nact;
	size_t		 capact;
	/*
	 * The base after a complete run.  Entries that a COPY creates have
	 * uid[side] == 0 until the brain fills it in; modseq is 0 until the
	 * brain fills it in after its final rescan.
	 */
	struct state	 next;
	char		**notes;	/* owned; what msync tells the user */
	size_t		 nnotes;
	/* Non-zero when the mass-deletion guard tripped (see notes). */
	int		 guard_tripped;
	uint64_t	 digest;	/* XXH3-64 of the canonical action list */
};

/* What plan_build may free of a side's views (plan_opts.release). */
enum plan_release {
	PLAN_RELEASE_NONE = 0,	/* nothing: the caller reads them after */
	PLAN_RELEASE_ALL,	/* every message list */
	PLAN_RELEASE_UNTOUCHED	/* the lists plan_mbox.released names */
};

struct plan_opts {
	enum sync_mode	 mode;
	enum side	 src;		/* BACKUP, ONEWAY: the source side */
	int		 force_deletes;
	/*
	 * The brain leaves out mailboxes that are unchanged on both sides
	 * (they need no planning), so views and base may be a subset.  These
	 * say what the whole picture was: the base had mailboxes (so this
	 * is not a first sync), and how many mailboxes each side listed (so
	 * a side is not taken for emptied).  Zero: views and base are whole.
	 */
	int		 had_base;
	size_t		 listed[2];
	/*
	 * Per side: the views' message lists plan_build may free, each as
	 * soon as its pair's part of next is built (a message's listing
	 * and its next entry are about the same size: the one takes the
	 * other's room).  Zero: none.
	 */
	enum plan_release release[2];
};

/*
 * Builds the plan.  base may be empty (first sync).  views[s] are the
 * sides' listings.  Inputs are not modified, but for the views' message
 * lists that o->release lets it free (their view_mbox stays, with msgs
 * empty; on failure some may be gone).
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int	 plan_build(const struct state *base, struct view views[2],
	    const struct plan_opts *o, struct plan *out);
void	 plan_free(struct plan *);
/* Frees pl's actions only (nact 0): for a brain done with them. */
void	 plan_free_actions(struct plan *pl);
/* The entry of pl->next that COPY a fills in, or NULL (not a COPY). */
struct state_msg *plan_next_msg(struct plan *pl, const struct action *a);
void	 view_free(struct view *);
/* Appends an empty view_mbox; *out valid until the next add. */
int	 view_add(struct view *, const char *name, struct view_mbox **out);
/* "copy", "flags", ... for dry-run lines and logs. */
const char *plan_act_name(enum act_type);

#endif /* PLAN_H */
