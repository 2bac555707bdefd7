/*
 * brain.c — the symmetric brain (DESIGN.md "The shape").
 *
 * A session, in order (docs/PROTOCOL.md has the records):
 *   1. handshake (chan)
 *   2. A sends HELLO and the base; B opens its store as HELLO says
 *   3. both send their view: per mailbox its status and, unless the
 *      mailbox is unchanged since the base, its messages
 *   4. both plan (plan.c) and exchange digests; a mismatch stops both
 *   5. both apply mailbox creates/renames, then stream the COPY messages
 *      whose source they are while saving the ones they receive, then
 *      apply local copies, flag changes, expunges and mailbox deletes
 *   6. both rescan what they touched and send DONE; B sends RESULT first
 *   7. A fills in the new UIDs, commits the state, sends BYE
 * Nothing is changed before step 5, and the state is replaced only in 7,
 * so a run killed anywhere leaves the old base, which the next run
 * reconciles without loss or duplicates (matching by GUID).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "brain.h"
#include "chan.h"
#include "log.h"
#include "mboxfmt.h"
#include "msync.h"
#include "names.h"
#include "plan.h"
#include "progress.h"
#include "proto.h"
#include "dpath.h"
#include "server.h"
#include "state.h"
#include "store.h"

#define OUT_HIGH_WATER	(1024 * 1024)	/* queue no more output than this */
#define HANDSHAKE_MS	60000

/* One message being received. */
struct incoming {
	struct store_save *save;	/* owned */
	uint32_t	 act;		/* its COPY action */
	int64_t		 date;
	uint64_t	 size;		/* announced */
	uint64_t	 got;		/* received so far */
	int		 failed;	/* writing failed: discard the rest */
	int		 skip;		/* its mailbox is skipped: discard */
};

/* One message being sent. */
struct outgoing {
	struct store_msg *msg;		/* owned; NULL when none is open */
	uint64_t	 left;		/* bytes still to send */
	size_t		 next;		/* index into out_acts of the next one */
};

/* My uid of a base message, and where the message is in its mailbox. */
struct uid_pos {
	uint32_t	 uid;
	uint32_t	 pos;		/* index into msgs */
};

/* The messages of one base mailbox by my uid (built when first needed). */
struct base_uids {
	const struct state_mbox *bm;	/* borrowed */
	struct uid_pos	*v;		/* owned; sorted by uid */
	size_t		 n;
};

#define EST_UNKNOWN	UINT64_MAX	/* a size the listings did not give */

/*
 * B: a listing of A's that came as changes against A's side of the base
 * (MSGS_DELTA, protocol 3); expanded into views[A] by expand_deltas once
 * the base's messages are in.
 */
struct delta_in {
	struct guid	 guid;		/* the mailbox, in views[A] and base */
	struct msg_change *v;		/* owned; sorted by uid */
	size_t		 n;
	size_t		 cap;
};

/*
 * A: the header fingerprints B sent for one of its mailboxes (FPRINTS,
 * protocol 4), handed to my store as hints before I list that mailbox.
 */
struct fp_in {
	char		*name;		/* owned; the mailbox, in views[B] */
	size_t		 vi;		/* its index there (views[B] does not
					   change until my build_view) */
	struct fprint_ent *v;		/* owned; sorted by uid */
	size_t		 n;
	size_t		 cap;
};

/*
 * One flag change or expunge of mine: to find a copy's source among them
 * (apply_store_copies, act_plan_early).
 */
struct sexp {
	uint32_t	 mbox, uid, act;
};

#define SEXP_HELD	UINT32_MAX	/* act of a held one (act_plan_early) */

struct seenlist;

struct brain {
	enum side	 self;
	enum side	 peer;
	struct chan	*ch;		/* owned */
	unsigned	 version;	/* the protocol version spoken */
	struct delta_in	*din;		/* owned; B: see struct delta_in */
	size_t		 ndin;
	struct fp_in	*fpin;		/* owned; A: see struct fp_in */
	size_t		 nfpin;
	struct store	*store;		/* owned */
	enum sync_mode	 mode;
	enum side	 src;
	uint32_t	 hopts;		/* HELLO_* */
	char		**include;	/* owned on B, borrowed on A */
	size_t		 ninclude;
	char		**exclude;
	size_t		 nexclude;
	struct state	 base;		/* the base as sent/received */
	struct state	 keep;		/* base mailboxes not planned: not
					   selected, or unchanged on both sides */
	size_t		 listed[2];	/* mailboxes each side listed */
	int		 had_base;	/* the base had mailboxes */
	struct store_mailbox *mbs;	/* owned; my store's mailboxes */
	size_t		 nmbs;
	struct base_uids *bu;		/* owned; see base_uid_find */
	size_t		 nbu;
	size_t		 capbu;
	struct view	 views[2];
	struct plan	 plan;
	char		**cur_name;	/* owned; per plan mailbox, my name now */
	/* transfer */
	uint32_t	*out_acts;	/* owned; COPY actions I send */
	size_t		 nout;
	size_t		 capout;
	size_t		 nin;		/* COPY actions the peer sends me */
	/*
	 * Owned; per action: an incoming COPY already received, or one of
	 * my flag changes and expunges already applied (apply_early).
	 */
	uint8_t		*in_seen;
	size_t		 in_done;
	struct incoming	 in;
	struct outgoing	 out;
	struct rec_result *results;	/* owned; my COPY results (B sends) */
	size_t		 nresults;
	size_t		 capresults;
	int		 data_error;	/* a message failed its GUID check */
	int		 sent_error;	/* 1: an ERROR record went out */
	int		 peer_error;	/* 1: the peer sent an ERROR */
	int		 action_error;	/* some action failed */
	int		 changed;	/* a store changed during the run */
	int		 unreadable;	/* a mailbox could not be read */
	uint8_t		*mb_failed;	/* owned; per plan mailbox: an action
					   on it failed, its old state stays */
	size_t		 nfailed;	/* mailboxes marked in mb_failed */
	uint8_t		*mb_skip;	/* owned; per plan mailbox: it changed
					   under us, no more actions on it */
	uint8_t		*srv_done;	/* owned; per action: the store did it
					   (apply_store_copies), or NULL */
	/*
	 * Owned; per plan mailbox: my actions on it not done yet, and my
	 * local copies still to read from it.  At 0 it is finished
	 * (finish_mbox): past the store's bound, checked and let go.
	 */
	uint32_t	*mb_left;
	/*
	 * Owned; per plan mailbox: the COPY actions the peer still has to
	 * send into it.  At 0 its early actions are applied (apply_early).
	 */
	uint32_t	*mb_in;
	/*
	 * Owned; per plan mailbox: 1 if I change it otherwise than by the
	 * saves the peer sends (flag changes, expunges, local copies).
	 */
	uint8_t		*mb_acts;
	/*
	 * Owned; my flag changes and expunges that may come as soon as
	 * their mailbox's saves are in, sorted by mailbox, then plan order
	 * (act_plan_early): all but those on a message a copy of mine
	 * still reads.
	 */
	struct sexp	*early;
	size_t		 nearly;
	/*
	 * Owned; per plan mailbox: its end-of-run check made when the
	 * brain was done with it (finish_mbox), chk_state 0 not made, 1
	 * made with chk[i] to report, 2 made with nothing to report.
	 */
	struct rec_done_mbox *chk;
	uint8_t		*chk_state;
	/* check_mbox's lists, kept from one mailbox to the next (owned). */
	struct seenlist	*chk_want, *chk_have, *chk_exp;
	struct rec_done	 peer_done;
	int		 got_peer_done;
	int		 got_peer_results;
	/* bookkeeping */
	int		 crash_after;
	int		 writes;
	int		 progress;	/* --progress: 1 plain lines, 2 tty */
	struct progress	 pg;
	uint64_t	*est;		/* owned; per action: its size from the
					   listing, EST_UNKNOWN; NULL: none */
	struct brain_stats st;
};

static ssize_t	 view_find(const struct view *, const struct guid *,
		    const char *);
static void	 chk_bufs_free(struct brain *);
static int	 send_base_refs(struct brain *, const struct state_mbox *);

static void
brain_free(struct brain *b)
{
	store_mailboxes_free(b->mbs, b->nmbs);
	for (size_t i = 0; i < b->ndin; i++)
		msg_changes_free(b->din[i].v, b->din[i].n);
	free(b->din);
	for (size_t i = 0; i < b->nfpin; i++) {
		free(b->fpin[i].name);
		free(b->fpin[i].v);
	}
	free(b->fpin);
	for (size_t i = 0; i < b->nbu; i++)
		free(b->bu[i].v);
	free(b->bu);
	if (b->in.save != NULL)
		store_save_abort(b->in.save);
	store_msg_close(b->out.msg);
	if (b->cur_name != NULL)
		for (size_t i = 0; i < b->plan.nmb; i++)
			free(b->cur_name[i]);
	free(b->cur_name);
	free(b->mb_failed);
	free(b->mb_skip);
	free(b->srv_done);
	free(b->mb_left);
	free(b->mb_in);
	free(b->mb_acts);
	free(b->early);
	free(b->chk);
	free(b->chk_state);
	chk_bufs_free(b);
	free(b->est);
	free(b->out_acts);
	free(b->in_seen);
	free(b->results);
	rec_done_free(&b->peer_done);
	plan_free(&b->plan);
	view_free(&b->views[0]);
	view_free(&b->views[1]);
	state_clear(&b->base);
	state_clear(&b->keep);
	store_close(b->store);
	chan_free(b->ch);
}

/*
 * Counts one durable change; the test switch -Tcrash=N (or
 * MSYNC_TEST_CRASH_A/B) exits hard right after the Nth, so the test suite
 * can check that a run killed after any step resumes cleanly.
 */
static void
durable(struct brain *b)
{
	if (b->crash_after > 0 && ++b->writes == b->crash_after) {
		fprintf(stderr, "msync: test crash after %d writes\n",
		    b->writes);
		_exit(100);
	}
}

static const char *
side_name(enum side s)
{
	return s == SIDE_A ? "A" : "B";
}

/* Encodes with enc and queues the record.  Returns 0 or MSYNC_ERR_*. */
static int
put(struct brain *b, uint8_t type, int r, uint8_t *p, size_t len)
{
	if (r == 0)
		r = chan_put(b->ch, type, p, len);
	free(p);
	return r;
}

static int
put_text(struct brain *b, uint8_t type, int32_t n, const char *text)
{
	uint8_t	*p = NULL;
	size_t	 len = 0;
	int	 r;

	r = proto_enc_text(n, text, &p, &len);
	if (type == REC_ERROR)
		b->sent_error = 1;
	return put(b, type, r, p, len);
}

/*
 * The code an ERROR record from the peer carries, if it is one we know
 * (so that our exit status says what stopped the peer: a store that
 * changed under it is "run again", exit 2, not a lost connection);
 * MSYNC_ERR_INTERNAL otherwise.
 */
static int
peer_code(struct brain *b, int32_t n)
{
	b->peer_error = 1;
	return n < 0 && n >= MSYNC_ERR_LAST ? n : MSYNC_ERR_INTERNAL;
}

/*
 * Server mode: log lines go to the peer as REC_LOG records, so the user
 * sees them.  Errors while doing so are ignored: logging must not fail
 * the run.
 */
static void
log_to_peer(int level, const char *text, void *arg)
{
	struct brain	*b = arg;

	(void)put_text(b, REC_LOG, level, text);
}

/*
 * Reads the next record, blocking.  LOG records are printed (prefixed
 * with the peer's side) and skipped; an ERROR record is printed and
 * turned into its code.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
next_rec(struct brain *b, uint8_t *type, const uint8_t **p, size_t *len)
{
	int32_t	 n;
	char	*text = NULL;
	int	 r;

	for (;;) {
		if ((r = chan_get_wait(b->ch, type, p, len)) != 0)
			return r;
		if (*type != REC_LOG && *type != REC_ERROR)
			return 0;
		if ((r = proto_dec_text(*p, *len, &n, &text)) != 0)
			return r;
		if (*type == REC_ERROR) {
			ERRX("peer: %s", log_esc(text, 512));
			free(text);
			return peer_code(b, n);
		}
		if (n <= log_verbosity)
			fprintf(stderr, "msync[peer]: %s\n",
			    log_esc(text, 512));
		free(text);
	}
}

/* Expects a record of the given type next.  Returns 0 or MSYNC_ERR_*. */
static int
expect_rec(struct brain *b, uint8_t want, const uint8_t **p, size_t *len)
{
	uint8_t	 type;
	int	 r;

	if ((r = next_rec(b, &type, p, len)) != 0)
		return r;
	if (type != want) {
		LOG3("expected %s, got %s", proto_rec_name(want),
		    proto_rec_name(type));
		return MSYNC_ERR_PROTO;
	}
	return 0;
}

/* 1 if mailbox name is selected by -m/-x. */
static int
selected(const struct brain *b, const char *name)
{
	size_t	 i;
	int	 in = b->ninclude == 0;

	for (i = 0; i < b->ninclude && !in; i++)
		if (names_match(b->include[i], name))
			in = 1;
	for (i = 0; i < b->nexclude && in; i++)
		if (names_match(b->exclude[i], name))
			in = 0;
	return in;
}

/*
 * Splits the loaded base into the mailboxes this run works on (b->base)
 * and the ones -m/-x leave out (b->keep, carried into the new state
 * unchanged).
 */
static int
split_base(struct brain *b)
{
	struct state	 all = b->base;
	struct state	*to;
	int		 r;

	memset(&b->base, 0, sizeof(b->base));
	for (size_t i = 0; i < all.n; i++) {
		to = selected(b, all.mb[i].name) ? &b->base : &b->keep;
		if ((r = state_take_mbox(to, &all.mb[i])) != 0)
			goto out;
	}
	state_sort(&b->base);
	state_sort(&b->keep);
	r = 0;
out:
	state_clear(&all);
	return r;
}

/*
 * Sends the base in one of its two parts (docs/PROTOCOL.md): with
 * headers_only, one BASE_MBOX per mailbox and no messages, enough for the
 * peer to tell which of its mailboxes are unchanged; later, once both
 * views are known, BASE_MBOX + BASE_MSGS for only the mailboxes that need
 * planning, so a sync where little changed sends little.
 */
static int
send_base(struct brain *b, int headers_only)
{
	uint8_t	*p;
	size_t	 len;
	int	 r;

	for (size_t i = 0; i < b->base.n; i++) {
		struct state_mbox	*m = &b->base.mb[i];
		struct rec_mbox		 rm;
		ssize_t			 vb = -1;

		memset(&rm, 0, sizeof(rm));
		rm.name = m->name;
		rm.guid = m->guid;
		memcpy(rm.uidvalidity, m->uidvalidity, sizeof(rm.uidvalidity));
		memcpy(rm.modseq, m->modseq, sizeof(rm.modseq));
		rm.nmsgs = headers_only ? 0 : (uint32_t)m->nmsgs;
		/*
		 * B's listing of this mailbox equals B's side of the base:
		 * from protocol 3 on, B takes that side from its own
		 * listing (BASE_REFS), which saves the GUIDs on the wire.
		 */
		if (!headers_only && b->version >= 3 && m->nmsgs > 0 &&
		    (vb = view_find(&b->views[SIDE_B], &m->guid,
		    m->name)) >= 0 && b->views[SIDE_B].mb[vb].unchanged)
			rm.unchanged = 3;
		p = NULL;
		r = proto_enc_mbox(&rm, &p, &len);
		if ((r = put(b, REC_BASE_MBOX, r, p, len)) != 0)
			return r;
		if (rm.unchanged == 3) {
			if ((r = send_base_refs(b, m)) != 0)
				return r;
			continue;
		}
		for (size_t j = 0; j < rm.nmsgs; j += PROTO_LIST_CHUNK) {
			size_t	 n = m->nmsgs - j;

			if (n > PROTO_LIST_CHUNK)
				n = PROTO_LIST_CHUNK;
			p = NULL;
			r = proto_enc_base_msgs(m->msgs + j, n, &p, &len);
			if ((r = put(b, REC_BASE_MSGS, r, p, len)) != 0)
				return r;
			if (chan_pending(b->ch) > OUT_HIGH_WATER &&
			    (r = chan_flush(b->ch)) != 0)
				return r;
		}
	}
	return chan_put(b->ch, REC_BASE_END, NULL, 0);
}

/*
 * A: the messages of base mailbox m as BASE_REFS records: only the uids
 * (none for a run of consecutive ones) and A's flags where they differ
 * from B's; a message absent on B goes whole (REF_FULL).
 */
static int
send_base_refs(struct brain *b, const struct state_mbox *m)
{
	struct base_ref	 v[PROTO_LIST_CHUNK], prev;
	uint8_t		*p;
	size_t		 len, n;
	int		 r;

	memset(&prev, 0, sizeof(prev));
	for (size_t j = 0; j < m->nmsgs; j += n) {
		n = m->nmsgs - j;
		if (n > PROTO_LIST_CHUNK)
			n = PROTO_LIST_CHUNK;
		for (size_t k = 0; k < n; k++) {
			const struct state_msg *sm = &m->msgs[j + k];
			const struct state_msg *pm = j + k == 0 ? NULL :
			    &m->msgs[j + k - 1];

			v[k].sm = *sm;		/* keywords borrowed */
			if (sm->uid[SIDE_B] == 0) {
				v[k].tag = REF_FULL;
				continue;
			}
			v[k].tag = 0;
			if (sm->flags[SIDE_A] == sm->flags[SIDE_B] &&
			    strcmp(sm->kw[SIDE_A] != NULL ? sm->kw[SIDE_A] :
			    "", sm->kw[SIDE_B] != NULL ? sm->kw[SIDE_B] :
			    "") == 0)
				v[k].tag |= REF_SAME;
			if (sm->uid[SIDE_A] != 0 &&
			    sm->uid[SIDE_A] == (pm != NULL ?
			    pm->uid[SIDE_A] : 0) + 1 &&
			    sm->uid[SIDE_B] == (pm != NULL ?
			    pm->uid[SIDE_B] : 0) + 1)
				v[k].tag |= REF_NEXT;
		}
		p = NULL;
		r = proto_enc_base_refs(v, n, j == 0 ? NULL : &prev, &p, &len);
		if ((r = put(b, REC_BASE_REFS, r, p, len)) != 0)
			return r;
		prev = v[n - 1];
		if (chan_pending(b->ch) > OUT_HIGH_WATER &&
		    (r = chan_flush(b->ch)) != 0)
			return r;
	}
	return 0;
}

/* Receives the base headers that send_base(b, 1) sent. */
static int
recv_base_headers(struct brain *b)
{
	struct state_mbox *m;
	const uint8_t	*p;
	size_t		 len;
	uint8_t		 type;
	int		 r;

	for (;;) {
		struct rec_mbox	 rm;

		if ((r = next_rec(b, &type, &p, &len)) != 0)
			return r;
		if (type == REC_BASE_END)
			break;
		if (type != REC_BASE_MBOX)
			return MSYNC_ERR_PROTO;
		if (b->base.n >= MSYNC_MBOX_MAX)
			return MSYNC_ERR_TOOBIG;
		if ((r = proto_dec_mbox(p, len, &rm)) != 0)
			return r;
		if (rm.nmsgs != 0 || rm.unchanged != 0)
			r = MSYNC_ERR_PROTO;
		else if ((r = state_add_mbox(&b->base, &rm.guid, rm.name,
		    &m)) == 0) {
			memcpy(m->uidvalidity, rm.uidvalidity,
			    sizeof(m->uidvalidity));
			memcpy(m->modseq, rm.modseq, sizeof(m->modseq));
		}
		rec_mbox_free(&rm);
		if (r != 0)
			return r;
	}
	state_sort(&b->base);
	/* Mailbox GUIDs must be unique, or lookups are ambiguous. */
	for (size_t i = 1; i < b->base.n; i++)
		if (guid_cmp(&b->base.mb[i - 1].guid, &b->base.mb[i].guid) == 0)
			return MSYNC_ERR_PROTO;
	return 0;
}

/*
 * B: appends to base mailbox m the n entries of BASE_REFS in v, their
 * B side (GUID, flags, keywords) taken from own, my listing of the
 * mailbox, which equals my side of the base (it is unchanged since).  A
 * uid I do not have means the mailbox changed since I listed it.
 * Returns 0, MSYNC_ERR_STORE_CHANGED or MSYNC_ERR_NOMEM.
 */
static int
refs_resolve(struct state_mbox *m, struct base_ref *v, size_t n,
    const struct msglist *own)
{
	size_t	 lo = 0;

	if (msync_grow(&m->msgs, &m->capmsgs, m->nmsgs + n,
	    sizeof(*m->msgs)) != 0)
		return MSYNC_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		struct state_msg	*sm = &v[i].sm;
		const struct msg	*om = NULL;
		size_t			 a, z;

		if (v[i].tag != REF_FULL) {
			/* uid[B] increases with the entries, mostly by 1. */
			if (lo < own->n && own->v[lo].uid == sm->uid[SIDE_B])
				om = &own->v[lo];
			for (a = 0, z = own->n; om == NULL && a < z;) {
				size_t	 mid = a + (z - a) / 2;

				if (own->v[mid].uid < sm->uid[SIDE_B])
					a = mid + 1;
				else if (own->v[mid].uid > sm->uid[SIDE_B])
					z = mid;
				else
					om = &own->v[mid];
			}
			if (om == NULL)
				return MSYNC_ERR_STORE_CHANGED;
			lo = (size_t)(om - own->v) + 1;
			sm->guid = om->guid;
			sm->flags[SIDE_B] = om->flags;
			if (om->kw != NULL &&
			    (sm->kw[SIDE_B] = strdup(om->kw)) == NULL)
				return MSYNC_ERR_NOMEM;
			if (v[i].tag & REF_SAME) {
				sm->flags[SIDE_A] = om->flags;
				if (om->kw != NULL && (sm->kw[SIDE_A] =
				    strdup(om->kw)) == NULL)
					return MSYNC_ERR_NOMEM;
			}
		}
		m->msgs[m->nmsgs++] = *sm;	/* keywords move */
		memset(sm, 0, sizeof(*sm));
	}
	return 0;
}

/*
 * B, before recv_base_msgs: tells the store which of my mailboxes that
 * will list, in order, so that it can read them ahead (store_prefetch).
 * A sends by reference (BASE_REFS) base mailboxes that my view has
 * unchanged, in the base's order, which split_dormant left sorted as A's
 * is; A may leave some out, which the store then skips.  Best effort.
 */
static void
prefetch_own_listings(struct brain *b)
{
	char		**names;
	size_t		 n = 0;
	ssize_t		 vb;

	if (b->version < 3 || b->base.n < 2 ||
	    (names = calloc(b->base.n, sizeof(*names))) == NULL)
		return;
	for (size_t i = 0; i < b->base.n; i++) {
		const struct state_mbox *m = &b->base.mb[i];

		vb = view_find(&b->views[b->self], &m->guid, m->name);
		if (vb >= 0 && b->views[b->self].mb[vb].unchanged)
			names[n++] = b->views[b->self].mb[vb].name;
	}
	(void)store_prefetch(b->store, names, n);
	free(names);
}

/*
 * Receives the messages of every base mailbox left to plan (send_base(b,
 * 0)).  Each must come exactly once, with exactly the announced count.
 * A mailbox announced with unchanged 3 (protocol 3) comes as BASE_REFS,
 * filled in from my own listing (refs_resolve).
 */
static int
recv_base_msgs(struct brain *b)
{
	struct state_mbox *m = NULL;
	struct base_ref	*refs = NULL;
	struct msglist	 own;
	uint8_t		*seen = NULL;
	const uint8_t	*p;
	size_t		 len, nseen = 0, nrefs = 0, caprefs = 0;
	uint8_t		 type;
	uint32_t	 want = 0;
	int		 r, byref = 0;

	memset(&own, 0, sizeof(own));
	if ((seen = calloc(b->base.n + 1, 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (;;) {
		if ((r = next_rec(b, &type, &p, &len)) != 0)
			goto out;
		r = MSYNC_ERR_PROTO;
		if (type == REC_BASE_END || type == REC_BASE_MBOX) {
			if (byref) {
				if (nrefs != want)
					goto out;
				if ((r = refs_resolve(m, refs, nrefs,
				    &own)) != 0)
					goto out;
				base_refs_free(refs, nrefs);
				refs = NULL;
				nrefs = caprefs = 0;
				msglist_free(&own);
				byref = 0;
				r = MSYNC_ERR_PROTO;
			}
		}
		if (type == REC_BASE_END)
			break;
		if (type == REC_BASE_MBOX) {
			struct rec_mbox	 rm;
			ssize_t		 vb;

			if (m != NULL && m->nmsgs != want)
				goto out;
			if ((r = proto_dec_mbox(p, len, &rm)) != 0)
				goto out;
			m = state_find(&b->base, &rm.guid);
			want = rm.nmsgs;
			byref = rm.unchanged == 3;
			r = rm.unchanged == 0 || byref ? 0 : MSYNC_ERR_PROTO;
			rec_mbox_free(&rm);
			if (r != 0 || m == NULL || seen[m - b->base.mb]) {
				r = MSYNC_ERR_PROTO;
				goto out;
			}
			seen[m - b->base.mb] = 1;
			nseen++;
			if (!byref)
				continue;
			/* Only where my listing is the base's, from 3 on. */
			vb = view_find(&b->views[b->self], &m->guid, m->name);
			if (b->version < 3 || b->self != SIDE_B || vb < 0 ||
			    !b->views[b->self].mb[vb].unchanged ||
			    m->nmsgs != 0)
				goto out;
			if ((r = store_list_messages(b->store,
			    b->views[b->self].mb[vb].name, &own)) != 0) {
				ERRC(r, "cannot list mailbox '%s'",
				    log_esc(m->name, 128));
				goto out;
			}
			r = MSYNC_ERR_PROTO;
		} else if (type == REC_BASE_MSGS) {
			if (m == NULL || byref)
				goto out;
			if ((r = proto_dec_base_msgs(p, len, m)) != 0)
				goto out;
			r = MSYNC_ERR_PROTO;
			if (m->nmsgs > want)
				goto out;
		} else if (type == REC_BASE_REFS) {
			if (m == NULL || !byref)
				goto out;
			if ((r = proto_dec_base_refs(p, len, &refs, &nrefs,
			    &caprefs)) != 0)
				goto out;
			r = MSYNC_ERR_PROTO;
			if (nrefs > want)
				goto out;
		} else
			goto out;
	}
	if ((m != NULL && m->nmsgs != want) || nseen != b->base.n)
		goto out;
	r = 0;
out:
	base_refs_free(refs, nrefs);
	msglist_free(&own);
	free(seen);
	return r;
}

/* Removes entry i of view v, freeing it. */
static void
view_remove(struct view *v, size_t i)
{
	free(v->mb[i].name);
	msglist_free(&v->mb[i].msgs);
	memmove(&v->mb[i], &v->mb[i + 1], (v->n - i - 1) * sizeof(v->mb[0]));
	v->n--;
}

/* Index of the view mailbox named name with this GUID, or -1. */
static ssize_t
view_find(const struct view *v, const struct guid *g, const char *name)
{
	for (size_t i = 0; i < v->n; i++)
		if (guid_cmp(&v->mb[i].guid, g) == 0 &&
		    strcmp(v->mb[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

/* 1 if name is in the list v of n names. */
static int
name_in(char **v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], name) == 0)
			return 1;
	return 0;
}

/* 1 if g is in the list v of n GUIDs. */
static int
guid_in(const struct guid *v, size_t n, const struct guid *g)
{
	for (size_t i = 0; i < n; i++)
		if (guid_cmp(&v[i], g) == 0)
			return 1;
	return 0;
}

/*
 * Takes out of this run every mailbox that could be an unreadable one
 * (issue 16), so that nothing is planned from a listing we do not have:
 * the unreadable mailboxes themselves, anything on either side with
 * their names, a base mailbox missing on a side that has an unreadable
 * mailbox (it may be that one, renamed), and then, to a fixed point,
 * everything sharing a name or a GUID with what was taken out.  Their
 * base entries go to b->keep unchanged.  Both brains run this on the
 * same views and base.  Error cases only, so the quadratic scans are
 * fine.
 */
static int
split_unreadable(struct brain *b)
{
	char		**names = NULL;	/* borrowed strings */
	struct guid	 *guids = NULL;
	uint8_t		 *out[2] = { NULL, NULL }, *kept = NULL;
	size_t		  nn = 0, ng = 0, cap, i, j;
	int		  any[2] = { 0, 0 }, more, s, r = MSYNC_ERR_NOMEM;

	for (s = 0; s < 2; s++)
		for (i = 0; i < b->views[s].n; i++)
			any[s] |= b->views[s].mb[i].unreadable;
	if (!any[SIDE_A] && !any[SIDE_B])
		return 0;
	cap = b->views[SIDE_A].n + b->views[SIDE_B].n + b->base.n + 1;
	if ((names = calloc(cap, sizeof(*names))) == NULL ||
	    (guids = calloc(cap, sizeof(*guids))) == NULL ||
	    (out[0] = calloc(b->views[SIDE_A].n + 1, 1)) == NULL ||
	    (out[1] = calloc(b->views[SIDE_B].n + 1, 1)) == NULL ||
	    (kept = calloc(b->base.n + 1, 1)) == NULL)
		goto done;
	do {
		more = 0;
		for (s = 0; s < 2; s++)
			for (i = 0; i < b->views[s].n; i++) {
				struct view_mbox *vm = &b->views[s].mb[i];

				if (out[s][i] || !(vm->unreadable ||
				    name_in(names, nn, vm->name) ||
				    guid_in(guids, ng, &vm->guid)))
					continue;
				out[s][i] = more = 1;
				names[nn++] = vm->name;
				if (!vm->unreadable)
					guids[ng++] = vm->guid;
			}
		for (i = 0; i < b->base.n; i++) {
			struct state_mbox *m = &b->base.mb[i];
			int	 take = name_in(names, nn, m->name) ||
			    guid_in(guids, ng, &m->guid);

			for (s = 0; s < 2 && !take; s++) {
				if (!any[s])
					continue;
				for (j = 0; j < b->views[s].n; j++)
					if (guid_cmp(&b->views[s].mb[j].guid,
					    &m->guid) == 0)
						break;
				take = j == b->views[s].n;
			}
			if (kept[i] || !take)
				continue;
			kept[i] = more = 1;
			names[nn++] = m->name;
			guids[ng++] = m->guid;
		}
	} while (more);
	for (i = 0; i < b->base.n; i++)
		if (kept[i] && (r = state_take_mbox(&b->keep,
		    &b->base.mb[i])) != 0)
			goto done;
	/* The moved-out entries are left empty in base; drop them. */
	for (i = j = 0; i < b->base.n; i++)
		if (!kept[i])
			b->base.mb[j++] = b->base.mb[i];
	b->base.n = j;
	for (s = 0; s < 2; s++)
		for (i = b->views[s].n; i-- > 0;)
			if (out[s][i]) {
				if (!b->views[s].mb[i].unreadable &&
				    b->self == SIDE_A)
					LOG1("note: mailbox %s on %c is left "
					    "out of this run too: it may be "
					    "an unreadable one", log_esc(
					    b->views[s].mb[i].name, 200),
					    s == SIDE_A ? 'A' : 'B');
				view_remove(&b->views[s], i);
			}
	state_sort(&b->keep);
	r = 0;
done:
	free(names);
	free(guids);
	free(out[0]);
	free(out[1]);
	free(kept);
	return r;
}

/*
 * Leaves out of planning every mailbox that is unchanged on both sides
 * under its base name: nothing can happen to it, so its base entry goes
 * to b->keep as it is and its messages never cross the wire.  Both
 * brains decide this from the same two views.
 */
static int
split_dormant(struct brain *b)
{
	struct state	 active;
	struct state	*to;
	ssize_t		 va, vb;
	int		 r = 0;

	memset(&active, 0, sizeof(active));
	b->listed[SIDE_A] = b->views[SIDE_A].n;
	b->listed[SIDE_B] = b->views[SIDE_B].n;
	b->had_base = b->base.n > 0;
	if ((r = split_unreadable(b)) != 0)
		return r;
	for (size_t i = 0; i < b->base.n; i++) {
		struct state_mbox *m = &b->base.mb[i];

		va = view_find(&b->views[SIDE_A], &m->guid, m->name);
		vb = view_find(&b->views[SIDE_B], &m->guid, m->name);
		if (va >= 0 && vb >= 0 && b->views[SIDE_A].mb[va].unchanged &&
		    b->views[SIDE_B].mb[vb].unchanged) {
			view_remove(&b->views[SIDE_A], (size_t)va);
			view_remove(&b->views[SIDE_B], (size_t)vb);
			to = &b->keep;
		} else
			to = &active;
		if ((r = state_take_mbox(to, m)) != 0)
			goto out;
	}
	state_sort(&active);
	state_sort(&b->keep);
	state_clear(&b->base);
	b->base = active;
	memset(&active, 0, sizeof(active));
out:
	state_clear(&active);
	return r;
}

/*
 * Lists my store's mailboxes (their status, not their messages).  Both
 * brains do it before they know the base, so the two listings overlap;
 * build_view then needs only the base's headers.
 */
static int
list_store(struct brain *b)
{
	int	r;

	if ((r = store_list_mailboxes(b->store, &b->mbs, &b->nmbs)) != 0)
		ERRC(r, "cannot list the mailboxes");
	return r;
}

/*
 * A mailbox of mine exists but could not be read: it is an error for
 * that mailbox (exit 1; 2 if renumbered), never an empty one.  It
 * travels as "unreadable" so both brains leave it, and whatever might
 * be it, out of the run (split_unreadable).
 */
static void
mark_unreadable(struct brain *b, struct view_mbox *vm, int r)
{
	/* The store said why (with errno); r may no longer carry it. */
	ERRX("cannot read mailbox '%s' (%s): it is left out of this run and "
	    "its sync state is kept", log_esc(vm->name, 200),
	    msync_strerror(r));
	msglist_free(&vm->msgs);
	memset(&vm->guid, 0, sizeof(vm->guid));
	vm->uidvalidity = 0;
	vm->modseq = 0;
	vm->unchanged = 0;
	vm->unreadable = 1;
	b->unreadable = 1;
	/*
	 * The run is not complete: exit 1, or 2 for a mailbox renumbered
	 * under us (the next run reads it under its new UIDVALIDITY).
	 */
	if (r == MSYNC_ERR_RENUMBERED)
		b->changed = 1;
	else
		b->action_error = 1;
}

static int
msg_uid_find_cmp(const void *k, const void *e)
{
	uint32_t		 uid = *(const uint32_t *)k;
	const struct msg	*m = e;

	return uid < m->uid ? -1 : uid > m->uid;
}

/* The message uid of a listing sorted by uid, or NULL. */
static const struct msg *
msglist_find(const struct msglist *l, uint32_t uid)
{
	if (l->n == 0)
		return NULL;
	return bsearch(&uid, l->v, l->n, sizeof(*l->v), msg_uid_find_cmp);
}

/*
 * A, protocol 4: hands my store what B sent for mailbox name (FPRINTS):
 * each fingerprint with the GUID and size B listed for that uid, so a
 * first listing can recognise the messages already here without reading
 * them (docs/IMAP.md).  The fingerprints are used once.
 */
static int
give_hints(struct brain *b, const char *name)
{
	const struct view	*pv = &b->views[b->peer];
	struct store_hint	*h;
	struct fp_in		*f = NULL;
	const struct msglist	*ml = NULL;
	const struct msg	*m;
	size_t			 i, n = 0;
	int			 r;

	for (i = 0; i < b->nfpin && f == NULL; i++)
		if (b->fpin[i].name != NULL &&
		    strcmp(b->fpin[i].name, name) == 0)
			f = &b->fpin[i];
	if (f == NULL || f->n == 0 || f->vi >= pv->n ||
	    strcmp(pv->mb[f->vi].name, name) != 0)
		return 0;
	ml = &pv->mb[f->vi].msgs;
	if ((h = calloc(f->n, sizeof(*h))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < f->n; i++) {
		if ((m = msglist_find(ml, f->v[i].uid)) == NULL)
			continue;	/* checked in recv_view */
		h[n].fp = f->v[i].fp;
		h[n].guid = m->guid;
		h[n++].size = m->size;
	}
	r = store_hints(b->store, name, h, n);
	free(h);
	free(f->name);
	free(f->v);
	memset(f, 0, sizeof(*f));
	return r;
}

/*
 * B, protocol 4, when A asked (HELLO_FPRINT): the header fingerprints of
 * the messages of vm, a mailbox with no base (a first sync), read
 * through my store (the header, and the size with CRLF line ends).  A
 * message without a Message-ID, or one that cannot be read now, gets
 * none: A then reads its own copy as before.  An IMAP store of mine
 * gives them only for the messages its listing downloaded anyway
 * (store_fingerprint never downloads one for this).
 */
static int
send_fprints(struct brain *b, const struct view_mbox *vm)
{
	struct fprint_ent	 v[PROTO_LIST_CHUNK];
	uint8_t			*p;
	size_t			 n = 0, len;
	int			 r;

	if (b->self != SIDE_B || b->version < 4 ||
	    !(b->hopts & HELLO_FPRINT) || vm->unreadable || vm->unchanged ||
	    vm->msgs.n == 0)
		return 0;
	for (size_t i = 0; i < b->base.n; i++)
		if (guid_cmp(&b->base.mb[i].guid, &vm->guid) == 0 ||
		    strcmp(b->base.mb[i].name, vm->name) == 0)
			return 0;	/* not a first sync */
	for (size_t i = 0; i <= vm->msgs.n; i++) {
		if (i < vm->msgs.n) {
			r = store_fingerprint(b->store, vm->name,
			    vm->msgs.v[i].uid, &v[n].fp);
			if (r == MSYNC_ERR_NOMEM)
				return r;
			if (r != 0)
				continue;
			v[n++].uid = vm->msgs.v[i].uid;
		}
		if (n == PROTO_LIST_CHUNK || (i == vm->msgs.n && n > 0)) {
			p = NULL;
			r = proto_enc_fprints(v, n, &p, &len);
			if ((r = put(b, REC_FPRINTS, r, p, len)) != 0)
				return r;
			n = 0;
			if (chan_pending(b->ch) > OUT_HIGH_WATER &&
			    (r = chan_flush(b->ch)) != 0)
				return r;
		}
	}
	return 0;
}

/* 1 if mailbox m, as listed, is as the base left it on my side. */
static int
listed_unchanged(struct brain *b, const struct store_mailbox *m, int full)
{
	const struct state_mbox *bm;

	bm = state_find(&b->base, &m->guid);
	return !full && bm != NULL && bm->modseq[b->self] != 0 &&
	    bm->uidvalidity[b->self] == m->uidvalidity &&
	    bm->modseq[b->self] == m->modseq;
}

/*
 * Tells the store which mailboxes build_view will list the messages of,
 * in order, so that it can read them ahead (store_prefetch).  Best
 * effort.
 */
static void
prefetch_view(struct brain *b, int full)
{
	char	**names;
	size_t	 n = 0;

	if (b->nmbs < 2 ||
	    (names = calloc(b->nmbs, sizeof(*names))) == NULL)
		return;
	for (size_t i = 0; i < b->nmbs; i++)
		if (selected(b, b->mbs[i].name) && b->mbs[i].error == 0 &&
		    !listed_unchanged(b, &b->mbs[i], full))
			names[n++] = b->mbs[i].name;
	(void)store_prefetch(b->store, names, n);
	free(names);
}

/*
 * Builds views[self] from the listing list_store made.  A mailbox whose
 * uidvalidity and modseq equal the base's is "unchanged": only its status
 * travels, and both planners take its messages from the base.
 */
static int
build_view(struct brain *b, int full)
{
	struct store_mailbox	*mbs = b->mbs;
	struct view_mbox	*vm;
	int			 r = 0;

	prefetch_view(b, full);
	for (size_t i = 0; i < b->nmbs; i++) {
		if (!selected(b, mbs[i].name))
			continue;
		if ((r = view_add(&b->views[b->self], mbs[i].name, &vm)) != 0)
			goto out;
		if (mbs[i].error != 0) {
			mark_unreadable(b, vm, mbs[i].error);
			continue;
		}
		vm->guid = mbs[i].guid;
		vm->uidvalidity = mbs[i].uidvalidity;
		vm->modseq = mbs[i].modseq;
		if (listed_unchanged(b, &mbs[i], full)) {
			vm->unchanged = 1;
			continue;
		}
		if ((r = give_hints(b, vm->name)) != 0)
			goto out;
		if ((r = store_list_messages(b->store, vm->name,
		    &vm->msgs)) != 0) {
			/*
			 * A folder changing under us (its cur/ missing, see
			 * the store) stops the whole run before planning:
			 * exit 2, run again.  So does a store whose
			 * connection is gone or talks nonsense (an IMAP
			 * server: every other mailbox would fail the same
			 * way): exit 75 or 76.  A mailbox renumbered since
			 * it was listed (MSYNC_ERR_RENUMBERED) is left out
			 * alone, as an unreadable one.
			 */
			if (r == MSYNC_ERR_NOMEM || r == MSYNC_ERR_STORE_CHANGED ||
			    r == MSYNC_ERR_PEER_EOF || r == MSYNC_ERR_PROTO) {
				ERRC(r, "cannot list mailbox '%s'",
				    log_esc(vm->name, 128));
				goto out;
			}
			mark_unreadable(b, vm, r);
			r = 0;
		}
	}
out:
	(void)store_prefetch(b->store, NULL, 0);
	store_mailboxes_free(b->mbs, b->nmbs);
	b->mbs = NULL;
	b->nmbs = 0;
	return r;
}

/*
 * A's listing vm of a mailbox as changes against A's side of base
 * mailbox bm (protocol 3, docs/PROTOCOL.md "MSGS_DELTA"): the base
 * messages it no longer has, those whose flags or keywords changed, and
 * the new ones, so a 1% change sends about 1% of the list.  Returns 0
 * with *out and *nout set (possibly 0 changes), 1 when the listing
 * cannot be told this way (a uid whose content differs from the base's,
 * base uids out of order) or the changes would not be shorter than the
 * list, or MSYNC_ERR_NOMEM.
 */
static int
view_delta(const struct view_mbox *vm, const struct state_mbox *bm,
    struct msg_change **out, size_t *nout)
{
	const struct msglist	*ml = &vm->msgs;
	struct msg_change	*v = NULL;
	size_t			 n = 0, i = 0, j = 0, cap;
	uint32_t		 prev = 0;

	*out = NULL;
	*nout = 0;
	cap = ml->n + bm->nmsgs;
	if (cap == 0)
		return 1;
	if ((v = calloc(cap, sizeof(*v))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (;;) {
		const struct state_msg	*sm;
		const struct msg	*m;

		/* The base's entries of my side, in uid order. */
		while (j < bm->nmsgs && bm->msgs[j].uid[SIDE_A] == 0)
			j++;
		sm = j < bm->nmsgs ? &bm->msgs[j] : NULL;
		m = i < ml->n ? &ml->v[i] : NULL;
		if (sm == NULL && m == NULL)
			break;
		if (sm != NULL && sm->uid[SIDE_A] <= prev)
			goto no;
		if (m != NULL && (sm == NULL || m->uid < sm->uid[SIDE_A])) {
			v[n].op = CHANGE_NEW;
			v[n++].m = *m;	/* kw borrowed from the view */
			i++;
			continue;
		}
		prev = sm->uid[SIDE_A];
		j++;
		if (m == NULL || sm->uid[SIDE_A] < m->uid) {
			v[n].op = CHANGE_GONE;
			v[n++].m.uid = sm->uid[SIDE_A];
			continue;
		}
		i++;
		if (guid_cmp(&m->guid, &sm->guid) != 0)
			goto no;
		if (m->flags != sm->flags[SIDE_A] ||
		    strcmp(m->kw != NULL ? m->kw : "",
		    sm->kw[SIDE_A] != NULL ? sm->kw[SIDE_A] : "") != 0) {
			v[n].op = CHANGE_FLAGS;
			v[n++].m = *m;
		}
	}
	if (n >= ml->n)
		goto no;
	*out = v;
	*nout = n;
	return 0;
no:
	free(v);
	return 1;
}

/*
 * Sends views[self]: MBOX + MSGS chunks, then LIST_END.  From protocol
 * 3 on, A sends a changed mailbox that has a base as MSGS_DELTA chunks
 * (view_delta) when that is shorter.
 */
static int
send_view(struct brain *b)
{
	const struct view	*v = &b->views[b->self];
	uint8_t			*p;
	size_t			 len;
	int			 r;

	for (size_t i = 0; i < v->n; i++) {
		const struct view_mbox	*vm = &v->mb[i];
		const struct state_mbox	*bm;
		struct msg_change	*chg = NULL;
		size_t			 nchg = 0;
		struct rec_mbox		 rm;

		memset(&rm, 0, sizeof(rm));
		rm.name = vm->name;
		rm.guid = vm->guid;
		rm.uidvalidity[0] = vm->uidvalidity;
		rm.modseq[0] = vm->modseq;
		rm.unchanged = vm->unreadable ? 2 : (uint8_t)vm->unchanged;
		rm.nmsgs = (uint32_t)vm->msgs.n;
		if (b->version >= 3 && b->self == SIDE_A && !vm->unreadable &&
		    !vm->unchanged &&
		    (bm = state_find(&b->base, &vm->guid)) != NULL &&
		    bm->modseq[SIDE_A] != 0 &&
		    bm->uidvalidity[SIDE_A] == vm->uidvalidity) {
			if ((r = view_delta(vm, bm, &chg, &nchg)) < 0)
				return r;
			if (r == 0) {
				rm.unchanged = 3;
				rm.nmsgs = (uint32_t)nchg;
			}
		}
		p = NULL;
		r = proto_enc_mbox(&rm, &p, &len);
		if ((r = put(b, REC_MBOX, r, p, len)) != 0) {
			free(chg);
			return r;
		}
		for (size_t j = 0; rm.unchanged == 3 && j < nchg;
		    j += PROTO_LIST_CHUNK) {
			size_t	 n = nchg - j;

			if (n > PROTO_LIST_CHUNK)
				n = PROTO_LIST_CHUNK;
			p = NULL;
			r = proto_enc_msgs_delta(chg + j, n, &p, &len);
			if ((r = put(b, REC_MSGS_DELTA, r, p, len)) != 0) {
				free(chg);
				return r;
			}
		}
		free(chg);	/* the keywords are the view's */
		for (size_t j = 0; rm.unchanged != 3 && j < vm->msgs.n;
		    j += PROTO_LIST_CHUNK) {
			size_t	 n = vm->msgs.n - j;

			if (n > PROTO_LIST_CHUNK)
				n = PROTO_LIST_CHUNK;
			p = NULL;
			r = proto_enc_msgs(vm->msgs.v + j, n, &p, &len);
			if ((r = put(b, REC_MSGS, r, p, len)) != 0)
				return r;
			if (chan_pending(b->ch) > OUT_HIGH_WATER &&
			    (r = chan_flush(b->ch)) != 0)
				return r;
		}
		if (rm.unchanged == 0 && (r = send_fprints(b, vm)) != 0)
			return r;
	}
	return chan_put(b->ch, REC_LIST_END, NULL, 0);
}

/*
 * B: turns each of A's listings that came as changes (struct delta_in)
 * into a full listing in views[A], from A's side of the base mailbox of
 * the same GUID, now that the base's messages are in.  A listing left
 * out of the run meanwhile (split_unreadable) is dropped.  Returns 0,
 * MSYNC_ERR_PROTO when the changes do not fit the base, or
 * MSYNC_ERR_NOMEM.
 */
static int
expand_deltas(struct brain *b)
{
	struct view		*v = &b->views[SIDE_A];

	for (size_t k = 0; k < b->ndin; k++) {
		const struct delta_in	*d = &b->din[k];
		const struct state_mbox	*bm;
		struct view_mbox	*vm = NULL;
		struct msglist		*ml;
		size_t			 i = 0, j = 0;
		uint32_t		 prev = 0;

		for (size_t x = 0; x < v->n; x++)
			if (!v->mb[x].unreadable &&
			    guid_cmp(&v->mb[x].guid, &d->guid) == 0)
				vm = &v->mb[x];
		if (vm == NULL)
			continue;
		/* A sends changes only against a base of the same uidvalidity. */
		if ((bm = state_find(&b->base, &d->guid)) == NULL ||
		    bm->uidvalidity[SIDE_A] != vm->uidvalidity ||
		    vm->msgs.n != 0)
			return MSYNC_ERR_PROTO;
		ml = &vm->msgs;
		/*
		 * The listing has at most the base's A side plus the new
		 * messages: allocated once, not doubled on the way (a list
		 * doubling from 0 ends up to twice its size).
		 */
		{
			size_t	 want = 0;

			for (size_t x = 0; x < bm->nmsgs; x++)
				want += bm->msgs[x].uid[SIDE_A] != 0;
			for (size_t x = 0; x < d->n; x++)
				want += d->v[x].op == CHANGE_NEW;
			if (want > 0 && msync_grow(&ml->v, &ml->cap, want - 1,
			    sizeof(*ml->v)) != 0)
				return MSYNC_ERR_NOMEM;
		}
		for (;;) {
			const struct state_msg	*sm;
			const struct msg_change	*c;
			struct msg		 m;

			while (j < bm->nmsgs && bm->msgs[j].uid[SIDE_A] == 0)
				j++;
			sm = j < bm->nmsgs ? &bm->msgs[j] : NULL;
			c = i < d->n ? &d->v[i] : NULL;
			if (sm == NULL && c == NULL)
				break;
			if (sm != NULL && sm->uid[SIDE_A] <= prev)
				return MSYNC_ERR_PROTO;
			memset(&m, 0, sizeof(m));
			if (c != NULL && (sm == NULL ||
			    c->m.uid < sm->uid[SIDE_A])) {
				if (c->op != CHANGE_NEW)
					return MSYNC_ERR_PROTO;
				m = c->m;
				i++;
			} else {
				prev = sm->uid[SIDE_A];
				j++;
				if (c != NULL && c->m.uid == prev) {
					i++;
					if (c->op == CHANGE_NEW)
						return MSYNC_ERR_PROTO;
					if (c->op == CHANGE_GONE)
						continue;
					m = c->m;
				} else {
					m.uid = prev;
					m.flags = sm->flags[SIDE_A];
					m.kw = sm->kw[SIDE_A];
				}
				m.guid = sm->guid;
			}
			if (m.kw != NULL && (m.kw = strdup(m.kw)) == NULL)
				return MSYNC_ERR_NOMEM;
			if (msync_grow(&ml->v, &ml->cap, ml->n,
			    sizeof(*ml->v)) != 0) {
				free(m.kw);
				return MSYNC_ERR_NOMEM;
			}
			ml->v[ml->n++] = m;
		}
	}
	return 0;
}

/*
 * B: a new struct delta_in for A's mailbox guid, in *out.  Only A sends
 * changes, from protocol 3 on, and one set per mailbox.  Returns 0,
 * MSYNC_ERR_PROTO or MSYNC_ERR_NOMEM.
 */
static int
delta_add(struct brain *b, const struct guid *guid, struct delta_in **out)
{
	struct delta_in	*nv;

	if (b->version < 3 || b->self != SIDE_B)
		return MSYNC_ERR_PROTO;
	for (size_t i = 0; i < b->ndin; i++)
		if (guid_cmp(&b->din[i].guid, guid) == 0)
			return MSYNC_ERR_PROTO;
	if ((nv = reallocarray(b->din, b->ndin + 1, sizeof(*nv))) == NULL)
		return MSYNC_ERR_NOMEM;
	b->din = nv;
	memset(&nv[b->ndin], 0, sizeof(nv[b->ndin]));
	nv[b->ndin].guid = *guid;
	*out = &nv[b->ndin++];
	return 0;
}

/*
 * A: a FPRINTS record (protocol 4), only when I asked for it
 * (HELLO_FPRINT), after all the MSGS of the mailbox vm, each uid one
 * that vm lists, increasing across the mailbox's records.
 */
static int
recv_fprints(struct brain *b, const struct view_mbox *vm,
    const struct delta_in *d, uint32_t want, const uint8_t *p, size_t len)
{
	struct fp_in	*f, *nv;
	size_t		 n0;
	int		 r;

	if (b->self != SIDE_A || b->version < 4 ||
	    !(b->hopts & HELLO_FPRINT) || vm == NULL || d != NULL ||
	    vm->unchanged || vm->unreadable || vm->msgs.n != want)
		return MSYNC_ERR_PROTO;
	f = b->nfpin > 0 ? &b->fpin[b->nfpin - 1] : NULL;
	if (f == NULL || f->name == NULL || strcmp(f->name, vm->name) != 0) {
		if (b->nfpin >= MSYNC_MBOX_MAX)
			return MSYNC_ERR_TOOBIG;
		if ((nv = reallocarray(b->fpin, b->nfpin + 1,
		    sizeof(*nv))) == NULL)
			return MSYNC_ERR_NOMEM;
		b->fpin = nv;
		f = &nv[b->nfpin];
		memset(f, 0, sizeof(*f));
		if ((f->name = strdup(vm->name)) == NULL)
			return MSYNC_ERR_NOMEM;
		f->vi = (size_t)(vm - b->views[b->peer].mb);
		b->nfpin++;
	}
	n0 = f->n;
	if ((r = proto_dec_fprints(p, len, &f->v, &f->n, &f->cap)) != 0)
		return r;
	for (size_t i = n0; i < f->n; i++)
		if (msglist_find(&vm->msgs, f->v[i].uid) == NULL)
			return MSYNC_ERR_PROTO;
	return 0;
}

/*
 * Receives the peer's view into views[peer].  An "unchanged" mailbox
 * must have a base entry that agrees, or the two planners would build
 * different lists.
 */
static int
recv_view(struct brain *b)
{
	struct view	*v = &b->views[b->peer];
	struct view_mbox *vm = NULL;
	struct delta_in	*d = NULL;
	const uint8_t	*p;
	size_t		 len;
	uint8_t		 type;
	uint32_t	 want = 0;
	int		 r;

	for (;;) {
		if ((r = next_rec(b, &type, &p, &len)) != 0)
			return r;
		if (type == REC_LIST_END)
			break;
		if (type == REC_MBOX) {
			struct rec_mbox	 rm;

			if (vm != NULL && (d != NULL ? d->n : vm->msgs.n) !=
			    want)
				return MSYNC_ERR_PROTO;
			if (v->n >= MSYNC_MBOX_MAX)
				return MSYNC_ERR_TOOBIG;
			if ((r = proto_dec_mbox(p, len, &rm)) != 0)
				return r;
			if ((r = view_add(v, rm.name, &vm)) == 0) {
				vm->guid = rm.guid;
				vm->uidvalidity = rm.uidvalidity[0];
				vm->modseq = rm.modseq[0];
				vm->unchanged = rm.unchanged == 1;
				vm->unreadable = rm.unchanged == 2;
				b->unreadable |= vm->unreadable;
				want = rm.nmsgs;
				if ((vm->unchanged || vm->unreadable) &&
				    want != 0)
					r = MSYNC_ERR_PROTO;
				/* Changes against the base: protocol 3, A. */
				d = NULL;
				if (r == 0 && rm.unchanged == 3)
					r = delta_add(b, &rm.guid, &d);
			}
			rec_mbox_free(&rm);
			if (r != 0)
				return r;
			if (vm->unchanged) {
				struct state_mbox *bm;

				bm = state_find(&b->base, &vm->guid);
				if (bm == NULL ||
				    bm->uidvalidity[b->peer] != vm->uidvalidity ||
				    bm->modseq[b->peer] != vm->modseq)
					return MSYNC_ERR_PROTO;
			}
		} else if (type == REC_MSGS) {
			if (vm == NULL || d != NULL)
				return MSYNC_ERR_PROTO;
			if ((r = proto_dec_msgs(p, len, &vm->msgs)) != 0)
				return r;
			if (vm->msgs.n > want)
				return MSYNC_ERR_PROTO;
		} else if (type == REC_FPRINTS) {
			if ((r = recv_fprints(b, vm, d, want, p, len)) != 0)
				return r;
		} else if (type == REC_MSGS_DELTA) {
			if (d == NULL)
				return MSYNC_ERR_PROTO;
			if ((r = proto_dec_msgs_delta(p, len, &d->v, &d->n,
			    &d->cap)) != 0)
				return r;
			if (d->n > want)
				return MSYNC_ERR_PROTO;
		} else
			return MSYNC_ERR_PROTO;
	}
	if (vm != NULL && (d != NULL ? d->n : vm->msgs.n) != want)
		return MSYNC_ERR_PROTO;
	/*
	 * Names and GUIDs must be unique, or two planners could differ (an
	 * unreadable mailbox has no GUID, only its name).
	 */
	for (size_t i = 0; i < v->n; i++)
		for (size_t j = i + 1; j < v->n; j++)
			if (strcmp(v->mb[i].name, v->mb[j].name) == 0 ||
			    (!v->mb[i].unreadable && !v->mb[j].unreadable &&
			    guid_cmp(&v->mb[i].guid, &v->mb[j].guid) == 0))
				return MSYNC_ERR_PROTO;
	return 0;
}

static void
flags_str(uint8_t flags, const char *kw, char *out, size_t outsz)
{
	static const char letters[] = "DFPRST";
	size_t	 o = 0;

	for (int i = 0; i < 6 && o + 1 < outsz; i++)
		if (flags & (1 << i))
			out[o++] = letters[i];
	out[o] = '\0';
	if (kw != NULL && *kw != '\0')
		snprintf(out + o, outsz - o, "%s%s", o ? " " : "", kw);
	if (out[0] == '\0')
		snprintf(out, outsz, "-");
}

/* The name of plan mailbox i for printing. */
static const char *
mb_label(const struct plan *pl, uint32_t i, enum side s)
{
	const struct plan_mbox	*m = &pl->mb[i];

	if (m->name[s] != NULL)
		return m->name[s];
	return m->final_name != NULL ? m->final_name : "?";
}

/* Prints one action, as --dry-run shows it and -v logs it. */
static void
print_action(const struct plan *pl, const struct action *a, int level)
{
	char	 g[33], fl[MSYNC_KWSTR_MAX + 16];
	char	 name[256];

	guid_hex(&a->guid, g);
	g[12] = '\0';
	snprintf(name, sizeof(name), "%s", log_esc(mb_label(pl, a->mbox,
	    a->side), 200));
	switch (a->type) {
	case ACT_MBOX_CREATE:
		LOG(level, "create mailbox '%s' on %s",
		    log_esc(pl->mb[a->mbox].final_name, 200),
		    side_name(a->side));
		break;
	case ACT_MBOX_RENAME:
		LOG(level, "rename mailbox '%s' to '%s' on %s", name,
		    log_esc(pl->mb[a->mbox].final_name, 200),
		    side_name(a->side));
		break;
	case ACT_MBOX_SETGUID:
		LOG(level, "adopt mailbox id of '%s' on %s", name,
		    side_name(a->side));
		break;
	case ACT_MBOX_DELETE:
		LOG(level, "delete mailbox '%s' on %s", name,
		    side_name(a->side));
		break;
	case ACT_COPY:
		flags_str(a->flags, a->kw, fl, sizeof(fl));
		if (a->src_side == a->side)
			LOG(level, "copy %s within %s: '%s' uid %" PRIu32
			    " -> '%s' [%s]", g, side_name(a->side),
			    log_esc(mb_label(pl, a->src_mbox, a->src_side), 100),
			    a->src_uid, name, fl);
		else
			LOG(level, "copy %s %s -> %s: '%s' uid %" PRIu32
			    " [%s]", g, side_name(a->src_side),
			    side_name(a->side), name, a->src_uid, fl);
		break;
	case ACT_FLAGS:
		flags_str(a->flags, a->kw, fl, sizeof(fl));
		LOG(level, "flags on %s: '%s' uid %" PRIu32 " -> %s",
		    side_name(a->side), name, a->uid, fl);
		break;
	case ACT_EXPUNGE:
		LOG(level, "expunge on %s: '%s' uid %" PRIu32 " (%s)",
		    side_name(a->side), name, a->uid, g);
		break;
	}
}

/* Counts the plan's actions into st (per target side). */
static void
count_plan(const struct plan *pl, struct brain_stats *st)
{
	for (size_t i = 0; i < pl->nact; i++) {
		const struct action *a = &pl->act[i];

		switch (a->type) {
		case ACT_MBOX_CREATE:	st->mb_created[a->side]++; break;
		case ACT_MBOX_RENAME:	st->mb_renamed[a->side]++; break;
		case ACT_MBOX_DELETE:	st->mb_deleted[a->side]++; break;
		case ACT_FLAGS:		st->flags[a->side]++; break;
		case ACT_EXPUNGE:	st->expunged[a->side]++; break;
		case ACT_COPY:
			if (a->src_side == a->side)
				st->local[a->side]++;
			else
				st->copied[a->side]++;
			break;
		default:
			break;
		}
	}
}

static void
print_totals(const struct brain_stats *st, const char *what)
{
	for (int s = 0; s < 2; s++)
		LOG1("%s on %s: %" PRIu64 " copied (%" PRIu64 " bytes), %"
		    PRIu64 " moved/local, %" PRIu64 " flag changes, %" PRIu64
		    " expunged; mailboxes: %" PRIu64 " created, %" PRIu64
		    " renamed, %" PRIu64 " deleted", what, side_name(s),
		    st->copied[s], st->copied_bytes[s], st->local[s],
		    st->flags[s], st->expunged[s], st->mb_created[s],
		    st->mb_renamed[s], st->mb_deleted[s]);
}

/*
 * Plans and compares digests with the peer.  The planner frees the
 * listings this brain reads no more as it goes (issue 10.3, memory):
 * past planning, a brain looks up its own listing only for a mailbox
 * it changes or copies from (listed_flags, expected_msgs; the rest is
 * in plan.next, plan_mbox.released), and the peer's only for --progress
 * and dry-run figures (A).  Returns 0 or MSYNC_ERR_*.
 */
static int
plan_and_agree(struct brain *b, int force_deletes, int dry_run)
{
	struct plan_opts po;
	const uint8_t	*p;
	uint8_t		*q = NULL;
	size_t		 len;
	uint64_t	 digest;
	uint32_t	 nact;
	int		 r;

	memset(&po, 0, sizeof(po));
	po.mode = b->mode;
	po.src = b->src;
	po.force_deletes = force_deletes;
	po.had_base = b->had_base;
	po.listed[SIDE_A] = b->listed[SIDE_A];
	po.listed[SIDE_B] = b->listed[SIDE_B];
	if (!b->progress && !(b->self == SIDE_A && dry_run)) {
		po.release[b->self] = PLAN_RELEASE_UNTOUCHED;
		po.release[b->peer] = PLAN_RELEASE_ALL;
	}
	/* What the listing freed goes back: the plan grows into fresh pages. */
	msync_release_free();
	if ((r = plan_build(&b->base, b->views, &po, &b->plan)) != 0) {
		ERRC(r, "planning failed");
		return r;
	}
	r = proto_enc_digest(b->plan.digest, (uint32_t)b->plan.nact, &q, &len);
	if ((r = put(b, REC_DIGEST, r, q, len)) != 0 ||
	    (r = chan_flush(b->ch)) != 0)
		return r;
	if ((r = expect_rec(b, REC_DIGEST, &p, &len)) != 0 ||
	    (r = proto_dec_digest(p, len, &digest, &nact)) != 0)
		return r;
	if (digest != b->plan.digest || nact != b->plan.nact) {
		ERRX("the two sides planned differently (%" PRIu32 " vs %zu "
		    "actions); nothing was changed", nact, b->plan.nact);
		return MSYNC_ERR_PROTO;
	}
	return 0;
}

/*
 * An action on plan mailbox i failed: the mailbox was not synced
 * completely, so final_state keeps its previous state (issue 16).
 */
static void
fail_mbox(struct brain *b, uint32_t i)
{
	if (b->mb_failed != NULL && i < b->plan.nmb && !b->mb_failed[i]) {
		b->mb_failed[i] = 1;
		b->nfailed++;
	}
}

/*
 * Plan mailbox i changed under us: no further action on it in this run
 * (copies for it are received and dropped), its state stays, exit 2.
 */
static void
skip_mbox(struct brain *b, uint32_t i)
{
	if (b->mb_skip != NULL && i < b->plan.nmb)
		b->mb_skip[i] = 1;
	fail_mbox(b, i);
	b->changed = 1;
}

/* 1 if r from an action means "it changed since we listed it". */
static int
changed_under_us(int r)
{
	return r == MSYNC_ERR_NOTFOUND || r == MSYNC_ERR_STORE_CHANGED;
}

/* Applies my mailbox creates, renames and GUID adoptions. */
static int
apply_mailbox_ops(struct brain *b)
{
	int	 r;

	if ((b->cur_name = calloc(b->plan.nmb ? b->plan.nmb : 1,
	    sizeof(char *))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (size_t i = 0; i < b->plan.nmb; i++) {
		const char *n = b->plan.mb[i].name[b->self];

		if (n == NULL)
			n = b->plan.mb[i].final_name;
		if (n != NULL && (b->cur_name[i] = strdup(n)) == NULL)
			return MSYNC_ERR_NOMEM;
	}
	for (size_t i = 0; i < b->plan.nact; i++) {
		const struct action	*a = &b->plan.act[i];
		const struct plan_mbox	*m = &b->plan.mb[a->mbox];
		char			*fn;

		if (a->side != b->self)
			continue;
		switch (a->type) {
		case ACT_MBOX_CREATE:
			r = store_create_mailbox(b->store, m->final_name,
			    &m->guid);
			if (r == MSYNC_ERR_EXISTS) {
				/*
				 * Missing when listed, there now: it changed
				 * under us (issue 11).  Copying "everything"
				 * into it would duplicate what it holds, so
				 * its sync ends here; the next run pairs it
				 * by name and content.
				 */
				WARNX("mailbox '%s' appeared during the run: "
				    "not synced in this run",
				    log_esc(m->final_name, 200));
				skip_mbox(b, a->mbox);
				continue;
			}
			break;
		case ACT_MBOX_RENAME:
			r = store_rename_mailbox(b->store,
			    b->cur_name[a->mbox], m->final_name);
			/* A parent's rename may have moved it already. */
			if (r == MSYNC_ERR_NOTFOUND)
				r = 0;
			if (r == 0) {
				if ((fn = strdup(m->final_name)) == NULL)
					return MSYNC_ERR_NOMEM;
				free(b->cur_name[a->mbox]);
				b->cur_name[a->mbox] = fn;
			}
			break;
		case ACT_MBOX_SETGUID:
			r = store_set_mailbox_guid(b->store,
			    b->cur_name[a->mbox], &m->guid);
			break;
		default:
			continue;
		}
		if (r != 0) {
			ERRC(r, "mailbox '%s'",
			    log_esc(b->cur_name[a->mbox], 200));
			return r;
		}
		durable(b);
	}
	return 0;
}

static void	 progress_act_size(struct brain *, uint32_t, uint64_t);

/* Queues the next piece of outgoing content.  Returns 0 or MSYNC_ERR_*. */
static int
produce(struct brain *b)
{
	static uint8_t		 buf[PROTO_DATA_MAX];
	const struct action	*a;
	struct rec_msg_begin	 mb;
	uint8_t			*p;
	size_t			 len, want, n;
	int			 r;

	if (b->out.msg == NULL) {
		uint64_t	 size;
		int64_t		 date;

		a = &b->plan.act[b->out_acts[b->out.next]];
		r = store_msg_open(b->store, b->cur_name[a->src_mbox],
		    a->src_uid, &b->out.msg, &size, &date);
		if (r != 0) {
			WARNX("cannot read message uid %" PRIu32 " in '%s': %s",
			    a->src_uid, log_esc(b->cur_name[a->src_mbox], 200),
			    msync_strerror(r));
			if (changed_under_us(r)) {	/* gone since listed */
				fail_mbox(b, a->mbox);
				b->changed = 1;
			} else
				b->action_error = 1;
			b->out.msg = NULL;
			p = NULL;
			r = proto_enc_msg_skip(b->out_acts[b->out.next], r,
			    &p, &len);
			b->out.next++;
			return put(b, REC_MSG_SKIP, r, p, len);
		}
		mb.act = b->out_acts[b->out.next];
		mb.size = size;
		progress_act_size(b, mb.act, size);
		mb.date = date;
		b->out.left = size;
		p = NULL;
		r = proto_enc_msg_begin(&mb, &p, &len);
		if ((r = put(b, REC_MSG_BEGIN, r, p, len)) != 0)
			return r;
		b->st.copied_bytes[b->peer] += size;
	}
	want = b->out.left < sizeof(buf) ? (size_t)b->out.left : sizeof(buf);
	if (want > 0) {
		r = store_msg_read(b->out.msg, buf, want, &n);
		if (r != 0 || n == 0) {
			/*
			 * The message shrank or failed under us: we cannot
			 * send the announced size, so the peer's GUID check
			 * would fail anyway.  Stop the run; nothing is lost.
			 */
			ERRX("message changed while being sent");
			return MSYNC_ERR_STORE_CHANGED;
		}
		b->out.left -= (uint64_t)n;
		b->pg.bytes += (uint64_t)n;
		if ((r = chan_put(b->ch, REC_MSG_DATA, buf, n)) != 0)
			return r;
		if (b->out.left > 0)
			return 0;
	}
	store_msg_close(b->out.msg);
	b->out.msg = NULL;
	b->out.next++;
	b->pg.msgs++;
	return chan_put(b->ch, REC_MSG_END, NULL, 0);
}

static int
add_result(struct brain *b, uint32_t act, uint32_t uid, int status)
{
	struct rec_result	*v;

	if (msync_grow(&b->results, &b->capresults, b->nresults,
	    sizeof(*b->results)) != 0)
		return MSYNC_ERR_NOMEM;
	v = b->results;
	v[b->nresults].act = act;
	v[b->nresults].uid = uid;
	v[b->nresults].status = status;
	b->nresults++;
	return 0;
}

/*
 * Records a COPY's outcome in plan->next: the new uid, or, when it failed,
 * the entry is marked dead (both uids 0) so the next run copies it again
 * instead of taking its absence for a deletion.
 */
static void
note_copy(struct brain *b, const struct action *a, uint32_t uid, int status)
{
	struct state_msg	*m;

	if (status != 0)
		fail_mbox(b, a->mbox);
	if ((m = plan_next_msg(&b->plan, a)) == NULL)
		return;
	if (status == 0)
		m->uid[a->side] = uid;
	else
		m->uid[0] = m->uid[1] = 0;
}

/*
 * 1 if a is one of my actions that mb_left counts: all but the mailbox
 * creates, renames and guid changes, which come first
 * (apply_mailbox_ops).
 */
static int
counted(const struct brain *b, const struct action *a)
{
	return a->side == b->self && a->type != ACT_MBOX_CREATE &&
	    a->type != ACT_MBOX_RENAME && a->type != ACT_MBOX_SETGUID &&
	    a->mbox < b->plan.nmb;
}

/* 1 if a is a copy of mine that reads my own store (a local copy). */
static int
local_copy(const struct brain *b, const struct action *a)
{
	return a->type == ACT_COPY && a->side == b->self &&
	    a->src_side == b->self && a->src_mbox < b->plan.nmb;
}

static int
sexp_cmp(const void *x, const void *y)
{
	const struct sexp *a = x, *b = y;

	if (a->mbox != b->mbox)
		return a->mbox < b->mbox ? -1 : 1;
	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

/* By mailbox, then plan order. */
static int
sexp_act_cmp(const void *x, const void *y)
{
	const struct sexp *a = x, *b = y;

	if (a->mbox != b->mbox)
		return a->mbox < b->mbox ? -1 : 1;
	return a->act < b->act ? -1 : a->act > b->act;
}

/*
 * Which of my flag changes and expunges may be applied as soon as their
 * mailbox's saves are in (apply_early), instead of after every mailbox's
 * saves and my local copies (the plan's order, which apply_local keeps
 * for the rest): each folder can then be let go once (issue 10.3: the
 * destination of a 1% run held every folder it changed from its first
 * save to its last expunge).  Left to apply_local: an action on a
 * message that a copy of mine reads (a local copy, or one I send to the
 * peer), so the copy still finds the message, and with the flags it was
 * listed with (a store's own copy takes the source's flags:
 * store_copy's src_flags).
 *
 * Why an interrupted run still never removes the only copy of a message
 * (docs/SYNC.md): an expunge applied early is of a message no copy of
 * this side reads.  A message moved between folders on the other side is
 * copied here from this side's own message (local_copies prefers a
 * message the plan removes), whose expunge is therefore held until the
 * copy is made, as before.  A copy this side gets over the wire is of a
 * message this side had nowhere when it listed (local_copies would have
 * read it locally otherwise), so no expunge here concerns it, and the
 * peer, which sends it, holds its own expunges of what it sends until
 * its transfer is over.  Any other early expunge removes a message that
 * the plan deletes and that no copy needs: killed before, after or
 * during it, the run loses nothing the plan keeps, and the next run
 * plans again from the last committed base.
 */
static int
act_plan_early(struct brain *b)
{
	struct sexp	*e, key, *hit;
	size_t		 n = 0, w;

	for (size_t i = 0; i < b->plan.nact; i++) {
		const struct action *a = &b->plan.act[i];

		if (a->side == b->self && (a->type == ACT_FLAGS ||
		    a->type == ACT_EXPUNGE) && a->mbox < b->plan.nmb)
			n++;
	}
	if (n == 0)
		return 0;
	if ((e = calloc(n, sizeof(*e))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (size_t i = 0; i < b->plan.nact; i++) {
		const struct action *a = &b->plan.act[i];

		if (a->side == b->self && (a->type == ACT_FLAGS ||
		    a->type == ACT_EXPUNGE) && a->mbox < b->plan.nmb) {
			e[b->nearly].mbox = a->mbox;
			e[b->nearly].uid = a->uid;
			e[b->nearly++].act = (uint32_t)i;
		}
	}
	msync_sort(e, n, sizeof(*e), sexp_cmp);
	for (size_t i = 0; i < b->plan.nact; i++) {
		const struct action *a = &b->plan.act[i];

		if (a->type != ACT_COPY || a->src_side != b->self)
			continue;
		key.mbox = a->src_mbox;
		key.uid = a->src_uid;
		if ((hit = bsearch(&key, e, n, sizeof(*e), sexp_cmp)) == NULL)
			continue;
		/* Every action on that message (a flag change and more). */
		while (hit > e && sexp_cmp(hit - 1, &key) == 0)
			hit--;
		for (; hit < e + n && sexp_cmp(hit, &key) == 0; hit++)
			hit->act = SEXP_HELD;
	}
	for (size_t i = w = 0; i < n; i++)
		if (e[i].act != SEXP_HELD)
			e[w++] = e[i];
	b->nearly = w;
	msync_sort(e, w, sizeof(*e), sexp_act_cmp);
	b->early = e;
	return 0;
}

/*
 * Counts my actions per mailbox (mb_left: those it waits for before the
 * store may let it go, and a local copy's read of its source; mb_in: the
 * saves the peer sends) and plans the early ones (act_plan_early).
 */
static int
count_left(struct brain *b)
{
	size_t	 nmb = b->plan.nmb + 1;

	if ((b->mb_left = calloc(nmb, sizeof(*b->mb_left))) == NULL ||
	    (b->mb_in = calloc(nmb, sizeof(*b->mb_in))) == NULL ||
	    (b->mb_acts = calloc(nmb, 1)) == NULL ||
	    (b->chk = calloc(nmb, sizeof(*b->chk))) == NULL ||
	    (b->chk_state = calloc(nmb, 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (size_t i = 0; i < b->plan.nact; i++) {
		const struct action *a = &b->plan.act[i];

		if (!counted(b, a))
			continue;
		b->mb_left[a->mbox]++;
		if (local_copy(b, a))
			b->mb_left[a->src_mbox]++;
		if (a->type == ACT_COPY && !local_copy(b, a))
			b->mb_in[a->mbox]++;
		else
			b->mb_acts[a->mbox] = 1;
	}
	return act_plan_early(b);
}

static int	 check_mbox(struct brain *, uint32_t, uint8_t,
		    struct rec_done_mbox *, int *);
static int	 apply_one(struct brain *, uint32_t);
static int	 act_done(struct brain *, const struct action *);

/*
 * Applies mailbox i's early flag changes and expunges (act_plan_early)
 * not applied yet, in plan order.  Returns 0 or MSYNC_ERR_*.
 */
static int
apply_early(struct brain *b, uint32_t i)
{
	size_t	 lo = 0, hi = b->nearly;
	int	 r;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->early[mid].mbox < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < b->nearly && b->early[lo].mbox == i; lo++) {
		uint32_t act = b->early[lo].act;

		if (b->in_seen[act])
			continue;
		b->in_seen[act] = 1;
		if ((r = apply_one(b, act)) != 0 ||
		    (r = act_done(b, &b->plan.act[act])) != 0)
			return r;
	}
	return 0;
}

/*
 * My actions on mailbox i are all done, and the store may let it go
 * (store_done).  A mailbox I only saved into is let go as it was before
 * session 10: the end-of-run check loads it again, and its rescan then
 * gives its index a change token that the next run can trust (one taken
 * right after the saves is racy, and would make the next run rescan
 * it).  A mailbox I also changed otherwise (flags, expunges, local
 * copies) gets a racy token from its check anyway (the stamp chain);
 * when the store is past its bound on what it holds loaded (store_done
 * with no name), its end-of-run check is made now, while the store has
 * it loaded, and the store then lets it go: the check at the end of the
 * run would have loaded it again (measured in session 9: +17%
 * instructions for a 1% run's destination).  So past the bound, a
 * change another program makes to such a mailbox after the brain is
 * done with it is not seen by this run (its exit status stays 0), but
 * by the next one: its rescan finds the change token moved.  Below the
 * bound nothing is let go and the check stays at the end of the run.
 */
static int
finish_mbox(struct brain *b, uint32_t i)
{
	int	 r, got = 0;

	if (b->cur_name[i] == NULL)
		return 0;
	if (!b->mb_acts[i]) {
		store_done(b->store, b->cur_name[i]);
		return 0;
	}
	if (!store_done(b->store, NULL))
		return 0;
	/* Touched (it had my actions); created if my side had no name. */
	if ((r = check_mbox(b, i, b->plan.mb[i].name[b->self] == NULL ? 3 : 1,
	    &b->chk[i], &got)) != 0)
		return r;
	b->chk_state[i] = got ? 1 : 2;
	LOG3("'%s': checked as my actions on it are done",
	    log_esc(b->cur_name[i], 200));
	store_done(b->store, b->cur_name[i]);
	return 0;
}

/* One of mailbox i's counted actions is done: 1 if it was the last. */
static int
mb_dec(struct brain *b, uint32_t i)
{
	if (i >= b->plan.nmb || b->mb_left[i] == 0)
		return 0;
	return --b->mb_left[i] == 0;
}

/*
 * Action a of mine (counted) is done, well or not.  After an incoming
 * save, the last one of its mailbox lets the mailbox's early flag changes
 * and expunges come (apply_early); after a mailbox's last action, it is
 * checked and may be let go (finish_mbox).  A mailbox delete never
 * counts down: the mailbox goes with it.  Returns 0 or MSYNC_ERR_*.
 */
static int
act_done(struct brain *b, const struct action *a)
{
	int	 r;

	if (b->mb_left == NULL || !counted(b, a) ||
	    a->type == ACT_MBOX_DELETE)
		return 0;
	if (local_copy(b, a) && mb_dec(b, a->src_mbox) &&
	    (r = finish_mbox(b, a->src_mbox)) != 0)
		return r;
	if (a->type == ACT_COPY && !local_copy(b, a) &&
	    b->mb_in[a->mbox] > 0 && --b->mb_in[a->mbox] == 0 &&
	    (r = apply_early(b, a->mbox)) != 0)
		return r;
	if (mb_dec(b, a->mbox))
		return finish_mbox(b, a->mbox);
	return 0;
}

/*
 * The COPY action an incoming record names, checked: it must be a copy
 * from the peer to me that has not arrived before (a peer sending one
 * twice would otherwise make a duplicate).  NULL if bad.
 */
static const struct action *
incoming_action(struct brain *b, uint32_t act)
{
	const struct action	*a;

	if (act >= b->plan.nact || b->in_seen == NULL || b->in_seen[act])
		return NULL;
	a = &b->plan.act[act];
	if (a->type != ACT_COPY || a->side != b->self ||
	    a->src_side != b->peer)
		return NULL;
	b->in_seen[act] = 1;
	return a;
}

/* Handles one record of the transfer phase.  Returns 0 or MSYNC_ERR_*. */
static int
consume(struct brain *b, uint8_t type, const uint8_t *p, size_t len)
{
	const struct action	*a;
	struct rec_msg_begin	 mb;
	uint32_t		 act, uid;
	int32_t			 status;
	int			 r;

	switch (type) {
	case REC_MSG_BEGIN:
		if (b->in.save != NULL || b->in.failed || b->in_done >= b->nin)
			return MSYNC_ERR_PROTO;
		if ((r = proto_dec_msg_begin(p, len, &mb)) != 0)
			return r;
		if ((a = incoming_action(b, mb.act)) == NULL)
			return MSYNC_ERR_PROTO;
		memset(&b->in, 0, sizeof(b->in));
		b->in.act = mb.act;
		b->in.size = mb.size;
		b->in.date = mb.date;
		progress_act_size(b, mb.act, mb.size);
		if (b->mb_skip[a->mbox]) {
			b->in.skip = 1;
			return 0;
		}
		r = store_save_begin(b->store, b->cur_name[a->mbox],
		    &b->in.save);
		if (changed_under_us(r)) {
			/* Renamed or removed since we listed it. */
			WARNX("mailbox '%s' changed during the run: not "
			    "synced in this run",
			    log_esc(b->cur_name[a->mbox], 200));
			skip_mbox(b, a->mbox);
			b->in.skip = 1;
			return 0;
		}
		if (r != 0) {
			ERRC(r, "cannot save into '%s'",
			    log_esc(b->cur_name[a->mbox], 200));
			return r;
		}
		return 0;
	case REC_MSG_DATA:
		if (b->in.save == NULL && !b->in.skip)
			return MSYNC_ERR_PROTO;
		if (len > b->in.size - b->in.got)
			return MSYNC_ERR_PROTO;
		b->in.got += len;
		b->pg.bytes += len;
		if (b->in.skip)
			return 0;
		if ((r = store_save_write(b->in.save, p, len)) != 0) {
			ERRC(r, "cannot write message");
			return r;
		}
		return 0;
	case REC_MSG_END:
		if (len != 0 || (b->in.save == NULL && !b->in.skip) ||
		    b->in.got != b->in.size)
			return MSYNC_ERR_PROTO;
		a = &b->plan.act[b->in.act];
		if (b->in.skip) {
			b->in.skip = 0;
			b->in_done++;
			b->pg.msgs++;
			note_copy(b, a, 0, MSYNC_ERR_STORE_CHANGED);
			if ((r = add_result(b, b->in.act, 0,
			    MSYNC_ERR_STORE_CHANGED)) != 0)
				return r;
			return act_done(b, a);
		}
		r = store_save_commit(b->in.save, a->flags, a->kw, b->in.date,
		    &a->guid, &uid);
		b->in.save = NULL;
		b->in_done++;
		b->pg.msgs++;
		b->st.copied_bytes[b->self] += b->in.size;
		if (r == MSYNC_ERR_BADDATA) {
			char	 g[33];

			guid_hex(&a->guid, g);
			ERRX("message %s from the peer does not match its "
			    "GUID; discarded", g);
			b->data_error = 1;
		} else if (r == MSYNC_ERR_TOOBIG) {
			char	 g[33];

			/*
			 * The store refused this one message (an IMAP
			 * server's TOOBIG, APPENDLIMIT, quota): the rest of
			 * the sync goes on, the run ends with status 1, and
			 * the next run tries it again.
			 */
			guid_hex(&a->guid, g);
			ERRX("message %s (%" PRIu64 " bytes) not saved into "
			    "'%s': refused by the store", g, b->in.size,
			    log_esc(b->cur_name[a->mbox], 200));
			b->action_error = 1;
		} else if (changed_under_us(r)) {
			/*
			 * The mailbox changed under the store (an IMAP
			 * server renumbered it, UIDVALIDITY): nothing more
			 * in it in this run, its state stays, exit 2.
			 */
			WARNX("mailbox '%s' changed during the run: not "
			    "synced further in this run",
			    log_esc(b->cur_name[a->mbox], 200));
			skip_mbox(b, a->mbox);
		} else if (r != 0) {
			ERRC(r, "cannot save message into '%s'",
			    log_esc(b->cur_name[a->mbox], 200));
			return r;
		}
		note_copy(b, a, uid, r);
		if (r == 0)
			durable(b);
		/* After note_copy: the mailbox's check needs the new uid. */
		if ((r = add_result(b, b->in.act, r == 0 ? uid : 0, r)) != 0)
			return r;
		return act_done(b, a);
	case REC_MSG_SKIP:
		if (b->in.save != NULL || b->in_done >= b->nin)
			return MSYNC_ERR_PROTO;
		if ((r = proto_dec_msg_skip(p, len, &act, &status)) != 0)
			return r;
		if ((a = incoming_action(b, act)) == NULL)
			return MSYNC_ERR_PROTO;
		b->in_done++;
		b->pg.msgs++;
		progress_act_size(b, act, 0);
		/* The sender's file went away since it listed it: exit 2. */
		if (changed_under_us(status))
			b->changed = 1;
		else
			b->action_error = 1;
		note_copy(b, a, 0, MSYNC_ERR_NOTFOUND);
		if ((r = add_result(b, act, 0, changed_under_us(status) ?
		    MSYNC_ERR_STORE_CHANGED : MSYNC_ERR_NOTFOUND)) != 0)
			return r;
		return act_done(b, a);
	case REC_RESULT: {
		struct rec_result	*res = NULL;
		size_t			 n = 0;

		if (b->self != SIDE_A)
			return MSYNC_ERR_PROTO;
		if ((r = proto_dec_results(p, len, &res, &n)) != 0)
			return r;
		for (size_t i = 0; i < n && r == 0; i++) {
			if (res[i].act >= b->plan.nact ||
			    b->plan.act[res[i].act].side != b->peer) {
				r = MSYNC_ERR_PROTO;
				break;
			}
			a = &b->plan.act[res[i].act];
			if (changed_under_us(res[i].status)) {
				b->changed = 1;
				fail_mbox(b, a->mbox);
			} else if (res[i].status != 0) {
				b->action_error = 1;
				fail_mbox(b, a->mbox);
			}
			if (a->type == ACT_COPY)
				note_copy(b, a, res[i].uid, res[i].status);
		}
		free(res);
		b->got_peer_results = 1;
		return r;
	}
	case REC_DONE:
		if (b->got_peer_done)
			return MSYNC_ERR_PROTO;
		if ((r = proto_dec_done(p, len, &b->peer_done)) != 0)
			return r;
		b->got_peer_done = 1;
		return 0;
	default:
		return MSYNC_ERR_PROTO;
	}
}

/*
 * A COPY action's message turned out to be size bytes (it started, or
 * was skipped: 0): the progress total is corrected.
 */
static void
progress_act_size(struct brain *b, uint32_t act, uint64_t size)
{
	if (b->est == NULL || act >= b->plan.nact)
		return;
	progress_size(&b->pg, b->est[act] != EST_UNKNOWN, b->est[act], size);
	b->est[act] = size;
}

/* Message act's size from its source side's listing, or EST_UNKNOWN. */
static uint64_t
listed_size(struct brain *b, const struct action *a, ssize_t *vcache)
{
	const struct plan_mbox	*m = &b->plan.mb[a->src_mbox];
	const struct view	*v = &b->views[a->src_side];
	const struct msglist	*ml;
	size_t			 lo = 0, hi;
	ssize_t			 vi;

	/* vcache[src_mbox * 2 + side]: -2 not looked up yet. */
	vi = vcache[a->src_mbox * 2 + a->src_side];
	if (vi == -2) {
		vi = m->name[a->src_side] == NULL ? -1 :
		    view_find(v, &m->guid, m->name[a->src_side]);
		vcache[a->src_mbox * 2 + a->src_side] = vi;
	}
	if (vi < 0)
		return EST_UNKNOWN;
	ml = &v->mb[vi].msgs;	/* sorted by uid; empty if unchanged */
	hi = ml->n;
	while (lo < hi) {
		size_t	 mid = lo + (hi - lo) / 2;

		if (ml->v[mid].uid == a->src_uid)
			return ml->v[mid].size;
		if (ml->v[mid].uid < a->src_uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return EST_UNKNOWN;
}

/*
 * Starts the --progress line: the messages that cross the wire, and
 * their bytes where the listings tell them.
 */
static int
progress_begin(struct brain *b)
{
	ssize_t		*vcache;
	uint64_t	 bytes = 0, unknown = 0;

	if (!b->progress)
		return 0;
	if ((b->est = calloc(b->plan.nact + 1, sizeof(*b->est))) == NULL ||
	    (vcache = calloc(b->plan.nmb * 2 + 1, sizeof(*vcache))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (size_t i = 0; i < b->plan.nmb * 2; i++)
		vcache[i] = -2;
	for (size_t i = 0; i < b->plan.nact; i++) {
		const struct action *a = &b->plan.act[i];

		b->est[i] = EST_UNKNOWN;
		if (a->type != ACT_COPY || a->side == a->src_side)
			continue;
		b->est[i] = listed_size(b, a, vcache);
		if (b->est[i] == EST_UNKNOWN)
			unknown++;
		else
			bytes += b->est[i];
	}
	free(vcache);
	progress_start(&b->pg, stderr, b->progress == 2, b->nout + b->nin,
	    bytes, unknown);
	return 0;
}

/*
 * Streams my outgoing messages while saving incoming ones, never blocking
 * on a write while the peer may be blocked writing to us.
 */
static int
transfer(struct brain *b)
{
	const uint8_t	*p;
	size_t		 len;
	uint8_t		 type;
	int		 r;

	b->out.msg = NULL;
	if ((b->in_seen = calloc(b->plan.nact + 1, 1)) == NULL ||
	    count_left(b) != 0)
		return MSYNC_ERR_NOMEM;
	for (size_t i = 0; i < b->plan.nact; i++) {
		const struct action *a = &b->plan.act[i];

		if (a->type != ACT_COPY || a->side == a->src_side)
			continue;
		if (a->src_side == b->self) {
			if (msync_grow(&b->out_acts, &b->capout, b->nout,
			    sizeof(*b->out_acts)) != 0)
				return MSYNC_ERR_NOMEM;
			b->out_acts[b->nout++] = (uint32_t)i;
		} else
			b->nin++;
	}
	if ((r = progress_begin(b)) != 0)
		return r;
	while (b->out.next < b->nout || b->in_done < b->nin ||
	    chan_pending(b->ch) > 0) {
		int	 progressed = 0;

		while (b->out.next < b->nout &&
		    chan_pending(b->ch) < OUT_HIGH_WATER) {
			if ((r = produce(b)) != 0)
				return r;
			progressed = 1;
		}
		if ((r = chan_flush_some(b->ch)) != 0)
			return r;
		for (;;) {
			r = chan_get(b->ch, &type, &p, &len);
			if (r == MSYNC_ERR_INCOMPLETE)
				break;
			if (r != 0)
				return r;
			progressed = 1;
			if (type == REC_LOG || type == REC_ERROR) {
				int32_t	 n;
				char	*text = NULL;

				if ((r = proto_dec_text(p, len, &n,
				    &text)) != 0)
					return r;
				if (type == REC_ERROR) {
					ERRX("peer: %s", log_esc(text, 512));
					free(text);
					return peer_code(b, n);
				}
				if (n <= log_verbosity)
					fprintf(stderr, "msync[peer]: %s\n",
					    log_esc(text, 512));
				free(text);
				continue;
			}
			if ((r = consume(b, type, p, len)) != 0)
				return r;
		}
		progress_show(&b->pg, 0);
		if (b->out.next >= b->nout && b->in_done >= b->nin &&
		    chan_pending(b->ch) == 0)
			break;
		/*
		 * The flush may have emptied a full queue: then there is
		 * more to produce at once, and waiting here (for input
		 * only, as nothing is pending) would stall the transfer
		 * for the whole timeout while the peer waits for us.
		 */
		if (b->out.next < b->nout &&
		    chan_pending(b->ch) < OUT_HIGH_WATER)
			progressed = 1;
		if (!progressed && (r = chan_wait(b->ch, 1000)) != 0)
			return r;
		if ((r = chan_fill(b->ch)) != 0 &&
		    !(r == MSYNC_ERR_PEER_EOF && b->in_done >= b->nin &&
		    b->out.next >= b->nout && chan_pending(b->ch) == 0))
			return r;
	}
	progress_show(&b->pg, 1);
	return 0;
}

/* Side s's view of plan mailbox i, or NULL. */
static const struct view_mbox *
view_of(const struct brain *b, enum side s, uint32_t i)
{
	const struct plan_mbox	*pm = &b->plan.mb[i];

	for (size_t j = 0; pm->name[s] != NULL && j < b->views[s].n; j++)
		if (strcmp(b->views[s].mb[j].name, pm->name[s]) == 0)
			return &b->views[s].mb[j];
	return NULL;
}

/* Message uid as side s listed it in plan mailbox i; NULL if not listed. */
static const struct msg *
listed_msg(const struct brain *b, enum side s, uint32_t i, uint32_t uid)
{
	const struct view_mbox	*vm = view_of(b, s, i);
	struct msg		 key;

	if (vm == NULL || vm->msgs.n == 0)
		return NULL;
	key.uid = uid;
	return bsearch(&key, vm->msgs.v, vm->msgs.n, sizeof(key),
	    msync_msg_uid_cmp);
}

static int
uid_pos_cmp(const void *pa, const void *pb)
{
	const struct uid_pos	*a = pa, *b = pb;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

/*
 * Finds the message of base mailbox bm with my uid: a lookup table per
 * mailbox, made on first use, so that a run with many flag changes in a
 * large unchanged mailbox does not scan the mailbox once per change.
 * Returns 0 with *out set, MSYNC_ERR_NOTFOUND or MSYNC_ERR_NOMEM.
 */
static int
base_uid_find(struct brain *b, const struct state_mbox *bm, uint32_t uid,
    const struct state_msg **out)
{
	struct base_uids	*bu = NULL;
	struct uid_pos		 key, *hit;

	for (size_t i = 0; i < b->nbu; i++)
		if (b->bu[i].bm == bm)
			bu = &b->bu[i];
	if (bu == NULL) {
		if (msync_grow(&b->bu, &b->capbu, b->nbu, sizeof(*b->bu)) != 0)
			return MSYNC_ERR_NOMEM;
		bu = &b->bu[b->nbu];
		memset(bu, 0, sizeof(*bu));
		bu->bm = bm;
		if (bm->nmsgs > 0 &&
		    (bu->v = calloc(bm->nmsgs, sizeof(*bu->v))) == NULL)
			return MSYNC_ERR_NOMEM;
		b->nbu++;
		for (size_t j = 0; j < bm->nmsgs; j++)
			if (bm->msgs[j].uid[b->self] != 0) {
				bu->v[bu->n].uid = bm->msgs[j].uid[b->self];
				bu->v[bu->n++].pos = (uint32_t)j;
			}
		msync_sort(bu->v, bu->n, sizeof(*bu->v), uid_pos_cmp);
	}
	key.uid = uid;
	if (bu->n == 0 || (hit = bsearch(&key, bu->v, bu->n, sizeof(key),
	    uid_pos_cmp)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	*out = &bm->msgs[hit->pos];
	return 0;
}

/*
 * The flags and keywords message uid of plan mailbox i had on my side
 * when I listed it (from the base if the mailbox was unchanged).
 * Returns 0, or MSYNC_ERR_NOTFOUND.
 */
static int
listed_flags(struct brain *b, uint32_t i, uint32_t uid, uint8_t *flags,
    const char **kw)
{
	const struct view_mbox	*vm = view_of(b, b->self, i);
	const struct msg	*m;

	if (vm == NULL)
		return MSYNC_ERR_NOTFOUND;
	if (vm->unchanged) {
		const struct state_mbox *bm = state_find(&b->base, &vm->guid);
		const struct state_msg	*sm;
		int			 r;

		if (bm == NULL)
			return MSYNC_ERR_NOTFOUND;
		if ((r = base_uid_find(b, bm, uid, &sm)) != 0)
			return r;
		*flags = sm->flags[b->self];
		*kw = sm->kw[b->self];
		return 0;
	}
	if ((m = listed_msg(b, b->self, i, uid)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	*flags = m->flags;
	*kw = m->kw;
	return 0;
}

/* A local copy the store may make itself (apply_store_copies). */
struct scopy {
	uint32_t	 act;		/* its COPY action */
	uint32_t	 exp;		/* the EXPUNGE of its source, or NONE */
	uint32_t	 src_mbox, mbox, src_uid;
	int		 move;		/* copy and expunge as one */
};
#define SCOPY_NONE	UINT32_MAX

/* By source (mailbox, uid), then plan order. */
static int
scopy_src_cmp(const void *x, const void *y)
{
	const struct scopy *a = x, *b = y;

	if (a->src_mbox != b->src_mbox)
		return a->src_mbox < b->src_mbox ? -1 : 1;
	if (a->src_uid != b->src_uid)
		return a->src_uid < b->src_uid ? -1 : 1;
	return a->act < b->act ? -1 : a->act > b->act;
}

/* By kind (copies first), source mailbox, target mailbox, source uid. */
static int
scopy_batch_cmp(const void *x, const void *y)
{
	const struct scopy *a = x, *b = y;

	if (a->move != b->move)
		return a->move - b->move;
	if (a->src_mbox != b->src_mbox)
		return a->src_mbox < b->src_mbox ? -1 : 1;
	if (a->mbox != b->mbox)
		return a->mbox < b->mbox ? -1 : 1;
	if (a->src_uid != b->src_uid)
		return a->src_uid < b->src_uid ? -1 : 1;
	return a->act < b->act ? -1 : a->act > b->act;
}

/*
 * Hands the batch sc[0..n) (one kind, one source and one target mailbox)
 * to the store and records what it did: the copies it made as done (and
 * the expunges its moves made), the rest is left to apply_local.
 */
static int
store_copy_batch(struct brain *b, struct scopy *sc, size_t n)
{
	struct store_copy	*v;
	const struct action	*a0 = &b->plan.act[sc[0].act];
	size_t			 i, nmoved = 0, ndone = 0;
	int			 r;

	if ((v = calloc(n, sizeof(*v))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		const struct action *a = &b->plan.act[sc[i].act];

		v[i].uid = a->src_uid;
		v[i].flags = a->flags;
		v[i].kw = a->kw;
		v[i].guid = a->guid;
		v[i].src_known = listed_flags(b, a->src_mbox, a->src_uid,
		    &v[i].src_flags, &v[i].src_kw) == 0;
	}
	r = store_copy(b->store, b->cur_name[a0->src_mbox],
	    b->cur_name[a0->mbox], sc[0].move, v, n);
	for (i = 0; i < n; i++) {
		const struct action *a = &b->plan.act[sc[i].act];
		int	 st = v[i].status;

		if (!v[i].done) {
			if (r == 0)
				continue;	/* apply_local copies it */
			st = r;
		}
		b->srv_done[sc[i].act] = 1;
		note_copy(b, a, v[i].new_uid, st);
		if (b->self == SIDE_B && add_result(b, sc[i].act,
		    v[i].new_uid, st) != 0) {
			free(v);
			return MSYNC_ERR_NOMEM;
		}
		if (st == 0) {
			ndone++;
			if (v[i].moved && sc[i].exp != SCOPY_NONE) {
				b->srv_done[sc[i].exp] = 1;
				nmoved++;
			}
			continue;
		}
		if (changed_under_us(st)) {
			WARNX("copy in '%s': the message changed since it was "
			    "listed", log_esc(b->cur_name[a->mbox], 200));
			b->changed = 1;
		} else {
			ERRC(st, "copy in '%s' failed",
			    log_esc(b->cur_name[a->mbox], 200));
			b->action_error = 1;
		}
	}
	if (ndone > 0) {
		LOG2("%s %zu message(s) from '%s' to '%s' within %s%s",
		    sc[0].move ? "moved" : "copied", ndone,
		    log_esc(b->cur_name[a0->src_mbox], 100),
		    log_esc(b->cur_name[a0->mbox], 100),
		    store_kind(b->store),
		    sc[0].move && nmoved < ndone ? " (some sources are "
		    "expunged as planned)" : "");
		durable(b);
	}
	free(v);
	return 0;
}

/*
 * My local copies, made by the store itself where it can (an IMAP
 * server's UID COPY and UID MOVE: no body crosses the network).  A copy
 * whose source the plan expunges after all copies is a move: the last
 * copy of that source becomes one UID MOVE (or COPY then EXPUNGE of the
 * copied UIDs), provided every other copy of the same source was made
 * already.  The plan's order "copies, flags, expunges" exists so that an
 * interrupted run never loses the only copy of a message; a move keeps
 * it, because the server never leaves a moved message in neither mailbox
 * (RFC 6851 section 3.3) and the next run matches what it finds by GUID
 * (docs/IMAP.md "Moves on the server").  Copies the store does not make
 * are left to apply_local, as for stores without the method.
 */
static int
apply_store_copies(struct brain *b)
{
	struct scopy	*sc = NULL;
	struct sexp	*ex = NULL, key, *hit;
	size_t		 nsc = 0, nex = 0, i, j;
	int		 r = 0;

	if (!store_has_copy(b->store) || b->plan.nact == 0)
		return 0;
	if ((b->srv_done = calloc(b->plan.nact, 1)) == NULL ||
	    (sc = calloc(b->plan.nact, sizeof(*sc))) == NULL ||
	    (ex = calloc(b->plan.nact, sizeof(*ex))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < b->plan.nact; i++) {
		const struct action *a = &b->plan.act[i];

		if (a->side != b->self)
			continue;
		if (a->type == ACT_EXPUNGE) {
			ex[nex].mbox = a->mbox;
			ex[nex].uid = a->uid;
			ex[nex++].act = (uint32_t)i;
		}
		if (a->type != ACT_COPY || a->src_side != b->self ||
		    b->mb_skip[a->mbox] || b->mb_skip[a->src_mbox] ||
		    b->cur_name[a->mbox] == NULL ||
		    b->cur_name[a->src_mbox] == NULL)
			continue;
		sc[nsc].act = (uint32_t)i;
		sc[nsc].src_mbox = a->src_mbox;
		sc[nsc].mbox = a->mbox;
		sc[nsc].src_uid = a->src_uid;
		sc[nsc++].exp = SCOPY_NONE;
	}
	if (nsc == 0)
		goto out;
	msync_sort(ex, nex, sizeof(*ex), sexp_cmp);
	msync_sort(sc, nsc, sizeof(*sc), scopy_src_cmp);
	/* The last copy of a source the plan expunges becomes the move. */
	for (i = 0; i < nsc; i++) {
		const struct action *a = &b->plan.act[sc[i].act];

		if (i + 1 < nsc && sc[i + 1].src_mbox == sc[i].src_mbox &&
		    sc[i + 1].src_uid == sc[i].src_uid)
			continue;
		key.mbox = sc[i].src_mbox;
		key.uid = sc[i].src_uid;
		if (nex > 0 && (hit = bsearch(&key, ex, nex, sizeof(*ex),
		    sexp_cmp)) != NULL &&
		    guid_cmp(&b->plan.act[hit->act].guid, &a->guid) == 0) {
			sc[i].exp = hit->act;
			sc[i].move = 1;
		}
	}
	/* Plain copies first: a move takes its source away. */
	msync_sort(sc, nsc, sizeof(*sc), scopy_batch_cmp);
	for (i = 0; i < nsc && !sc[i].move; i = j) {
		for (j = i + 1; j < nsc && !sc[j].move &&
		    sc[j].src_mbox == sc[i].src_mbox &&
		    sc[j].mbox == sc[i].mbox; j++)
			;
		if ((r = store_copy_batch(b, sc + i, j - i)) != 0)
			goto out;
	}
	/*
	 * A move whose source is still needed by a copy left to
	 * apply_local (which reads the source) stays a copy; its expunge
	 * then runs as planned.
	 */
	msync_sort(sc, nsc, sizeof(*sc), scopy_src_cmp);
	for (i = 0; i < nsc; i++) {
		if (!sc[i].move)
			continue;
		for (j = i; j > 0 && sc[j - 1].src_mbox == sc[i].src_mbox &&
		    sc[j - 1].src_uid == sc[i].src_uid; j--)
			if (!b->srv_done[sc[j - 1].act])
				sc[i].move = 0;
		if (!sc[i].move)
			sc[i].exp = SCOPY_NONE;
	}
	msync_sort(sc, nsc, sizeof(*sc), scopy_batch_cmp);
	for (i = 0; i < nsc; i = j) {
		for (j = i + 1; j < nsc && sc[j].move == sc[i].move &&
		    sc[j].src_mbox == sc[i].src_mbox &&
		    sc[j].mbox == sc[i].mbox; j++)
			;
		if (b->srv_done[sc[i].act])
			continue;	/* the plain copies done above */
		if ((r = store_copy_batch(b, sc + i, j - i)) != 0)
			goto out;
	}
out:
	free(sc);
	free(ex);
	return r;
}

/*
 * Applies my action act (a local copy, flag change, expunge or mailbox
 * delete; others are not done here).  A failure is reported and
 * remembered, and the run goes on: every action is independent and safe
 * to retry.  Returns 0, or MSYNC_ERR_NOMEM.
 */
static int
apply_one(struct brain *b, uint32_t act)
{
	const struct action	*a = &b->plan.act[act];
	const char		*mbn = b->cur_name[a->mbox];
	uint32_t		 uid = 0;
	int			 r;

	if (b->mb_skip[a->mbox]) {
		/* It changed under us: nothing more in it. */
		if (b->self == SIDE_B && add_result(b, act, 0,
		    MSYNC_ERR_STORE_CHANGED) != 0)
			return MSYNC_ERR_NOMEM;
		return 0;
	}
	switch (a->type) {
	case ACT_COPY: {
		struct store_save	*sv = NULL;
		struct store_msg	*sm = NULL;
		uint64_t		 size;
		int64_t			 date;
		static uint8_t		 buf[65536];
		size_t			 n;

		if (a->src_side != b->self)
			return 0;
		r = store_msg_open(b->store, b->cur_name[a->src_mbox],
		    a->src_uid, &sm, &size, &date);
		if (r == 0)
			r = store_save_begin(b->store, mbn, &sv);
		while (r == 0 && (r = store_msg_read(sm, buf, sizeof(buf),
		    &n)) == 0 && n > 0)
			r = store_save_write(sv, buf, n);
		if (r == 0) {
			r = store_save_commit(sv, a->flags, a->kw, date,
			    &a->guid, &uid);
			sv = NULL;
		}
		if (sv != NULL)
			store_save_abort(sv);
		store_msg_close(sm);
		note_copy(b, a, uid, r);
		if (b->self == SIDE_B && add_result(b, act, uid, r) != 0)
			return MSYNC_ERR_NOMEM;
		break;
	}
	case ACT_FLAGS: {
		uint8_t		 of;
		const char	*okw;

		/*
		 * Change only what the plan changes: a flag that a mail
		 * reader changed since we listed is kept.
		 */
		if (listed_flags(b, a->mbox, a->uid, &of, &okw) == 0)
			r = store_update_flags(b->store, mbn, a->uid, of, okw,
			    a->flags, a->kw);
		else
			r = store_set_flags(b->store, mbn, a->uid, a->flags,
			    a->kw);
		break;
	}
	case ACT_EXPUNGE:
		r = store_expunge_guid(b->store, mbn, a->uid, &a->guid);
		if (r == MSYNC_ERR_STORE_CHANGED) {
			/* Another message took the uid: keep it. */
			WARNX("uid %" PRIu32 " in '%s' is not the message to "
			    "expunge; kept", a->uid, log_esc(mbn, 200));
			b->changed = 1;
			fail_mbox(b, a->mbox);
			return 0;
		}
		break;
	case ACT_MBOX_DELETE:
		r = store_delete_mailbox(b->store, mbn);
		break;
	default:
		return 0;
	}
	if (r != 0) {
		if (changed_under_us(r)) {
			WARNX("%s in '%s': the message changed since it was "
			    "listed", plan_act_name(a->type), log_esc(mbn, 200));
			b->changed = 1;
		} else {
			ERRC(r, "%s in '%s' failed", plan_act_name(a->type),
			    log_esc(mbn, 200));
			b->action_error = 1;
		}
		fail_mbox(b, a->mbox);
		if (b->self == SIDE_B && a->type != ACT_COPY &&
		    add_result(b, act, 0, r) != 0)
			return MSYNC_ERR_NOMEM;
		return 0;
	}
	durable(b);
	return 0;
}

/*
 * Applies my local actions: the early flag changes and expunges of the
 * mailboxes the transfer saved nothing into (mailbox by mailbox, so each
 * can be let go after its own: finish_mbox), then my local copies, and
 * the rest in plan order: the flag changes and expunges of messages a
 * copy read (act_plan_early), the mailbox deletes.  A failure is
 * reported and remembered, and the run goes on: every action is
 * independent and safe to retry.
 */
static int
apply_local(struct brain *b)
{
	size_t	ncopied = 0;
	int	fr;

	for (size_t i = 0; i < b->nearly; i++)
		if (!b->in_seen[b->early[i].act] &&
		    (fr = apply_early(b, b->early[i].mbox)) != 0)
			return fr;
	if ((fr = apply_store_copies(b)) != 0)
		return fr;
	for (size_t i = 0; i < b->plan.nact; i++) {
		const struct action *a = &b->plan.act[i];

		if (a->side != b->self)
			continue;
		if (a->type == ACT_COPY && a->src_side != b->self) {
			/* The transfer's; failed as a whole if skipped. */
			if (b->mb_skip[a->mbox] && (b->srv_done == NULL ||
			    !b->srv_done[i]) && b->self == SIDE_B &&
			    add_result(b, (uint32_t)i, 0,
			    MSYNC_ERR_STORE_CHANGED) != 0)
				return MSYNC_ERR_NOMEM;
			continue;
		}
		if (a->type != ACT_COPY && b->in_seen[i])
			continue;	/* applied early */
		if (a->type != ACT_COPY && ncopied > 0) {
			/*
			 * The plan's copies come first: the messages they
			 * read may go next.  A store may still hold the
			 * copies back (Maildir's saves wait in tmp/ for
			 * their syncfs): a run killed after an expunge of a
			 * moved message's source would then leave it in
			 * neither folder on this side.  So the copies are
			 * put in place first, and if that fails, nothing
			 * they read is removed.
			 */
			ncopied = 0;
			if ((fr = store_flush(b->store)) != 0 &&
			    fr != MSYNC_ERR_STORE_CHANGED) {
				ERRC(fr, "cannot store the copies made");
				return fr;
			}
		}
		/* A copy the store made itself is done already. */
		if ((b->srv_done == NULL || !b->srv_done[i]) &&
		    (fr = apply_one(b, (uint32_t)i)) != 0)
			return fr;
		if (a->type == ACT_COPY && (b->srv_done == NULL ||
		    !b->srv_done[i]))
			ncopied++;
		if ((fr = act_done(b, a)) != 0)
			return fr;
	}
	/* A folder the store skipped (half there): run again, not fatal. */
	fr = store_flush(b->store);
	if (fr == MSYNC_ERR_STORE_CHANGED) {
		b->changed = 1;
		fr = 0;
	}
	return fr;
}

/* One message as a final check sees it: uid, flags, keywords. */
struct seen {
	uint32_t	 uid;
	uint8_t		 flags;
	const char	*kw;		/* borrowed; NULL = none */
};

struct seenlist {
	struct seen	*v;		/* owned */
	size_t		 n;
	size_t		 cap;
};

static int
seen_add(struct seenlist *l, uint32_t uid, uint8_t flags, const char *kw)
{
	/* The call only when full: this runs per message of the check. */
	if (l->n == l->cap &&
	    msync_grow(&l->v, &l->cap, l->n, sizeof(*l->v)) != 0)
		return MSYNC_ERR_NOMEM;
	l->v[l->n].uid = uid;
	l->v[l->n].flags = flags;
	l->v[l->n].kw = kw;
	l->n++;
	return 0;
}

static int
seen_cmp(const void *x, const void *y)
{
	const struct seen *a = x, *b = y;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

/* The entry for uid in l, which is sorted by uid; NULL if none. */
static struct seen *
seen_find(struct seenlist *l, uint32_t uid)
{
	struct seen	 key;

	key.uid = uid;
	return l->n == 0 ? NULL :
	    bsearch(&key, l->v, l->n, sizeof(*l->v), seen_cmp);
}

/* 1 if the two lists hold the same messages with the same flags. */
static int
seen_equal(struct seenlist *a, struct seenlist *b)
{
	if (a->n != b->n)
		return 0;
	if (a->n == 0)
		return 1;
	msync_sort(a->v, a->n, sizeof(*a->v), seen_cmp);
	msync_sort(b->v, b->n, sizeof(*b->v), seen_cmp);
	for (size_t i = 0; i < a->n; i++)
		if (a->v[i].uid != b->v[i].uid ||
		    a->v[i].flags != b->v[i].flags ||
		    strcmp(a->v[i].kw != NULL ? a->v[i].kw : "",
		    b->v[i].kw != NULL ? b->v[i].kw : "") != 0)
			return 0;
	return 1;
}

/*
 * What plan mailbox i should hold on my side after my actions: what I
 * listed (or, for an unchanged mailbox, what the base says I had), with
 * my flag changes applied, less my expunges, plus my copies.
 */
static int
expected_msgs(struct brain *b, size_t i, const struct view_mbox *vm,
    struct seenlist *out)
{
	struct seen	*e;
	size_t		 j, k, nlisted;
	int		 r;

	if (vm != NULL && vm->unchanged) {
		const struct state_mbox *bm = state_find(&b->base, &vm->guid);

		for (j = 0; bm != NULL && j < bm->nmsgs; j++)
			if (bm->msgs[j].uid[b->self] != 0 &&
			    (r = seen_add(out, bm->msgs[j].uid[b->self],
			    bm->msgs[j].flags[b->self],
			    bm->msgs[j].kw[b->self])) != 0)
				return r;
	} else if (vm != NULL) {
		for (j = 0; j < vm->msgs.n; j++)
			if ((r = seen_add(out, vm->msgs.v[j].uid,
			    vm->msgs.v[j].flags, vm->msgs.v[j].kw)) != 0)
				return r;
	}
	if (out->n > 0)
		msync_sort(out->v, out->n, sizeof(*out->v), seen_cmp);
	/* Copies are appended after the sorted part; lookups stay in it. */
	nlisted = out->n;
	for (j = 0; j < b->plan.nact; j++) {
		const struct action	*a = &b->plan.act[j];
		const struct state_msg	*m;
		struct seenlist		 listed = *out;

		if (a->side != b->self || a->mbox != i)
			continue;
		listed.n = nlisted;
		if (a->type == ACT_EXPUNGE) {
			/* Marked with uid 0 and dropped below. */
			if ((e = seen_find(&listed, a->uid)) != NULL)
				e->uid = 0;
		} else if (a->type == ACT_FLAGS) {
			if ((e = seen_find(&listed, a->uid)) != NULL) {
				e->flags = a->flags;
				e->kw = a->kw;
			}
		} else if ((m = plan_next_msg(&b->plan, a)) != NULL) {
			if (m->uid[b->self] != 0 &&
			    (r = seen_add(out, m->uid[b->self], a->flags,
			    a->kw)) != 0)
				return r;
		}
	}
	for (j = k = 0; j < out->n; j++)
		if (out->v[j].uid != 0)
			out->v[k++] = out->v[j];
	out->n = k;
	return 0;
}

/*
 * Checks plan mailbox i, which touched says I touched (bit 0) or created
 * (bit 1): its uidvalidity and modseq go into *out, with *got 1, unless
 * there is nothing to report (*got 0).  The modseq goes into the state
 * only if my listing then equals the new base exactly, flags included,
 * since the next run takes an "unchanged" mailbox's list from the base;
 * otherwise 0 is recorded, so the next run lists it in full.  A listing
 * that differs from what my own actions explain means mail arrived,
 * left or changed flags during the run (exit status 2).  A mailbox I
 * neither touched nor listed keeps its modseq without a rescan, so an
 * unchanged mailbox costs nothing here.  Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
check_mbox(struct brain *b, uint32_t i, uint8_t touched,
    struct rec_done_mbox *out, int *got)
{
	const struct plan_mbox	*pm = &b->plan.mb[i];
	const struct view_mbox	*vm = NULL;
	struct state_mbox	*nm;
	struct store_mailbox	 st;
	struct msglist		 now;
	struct seenlist		*want, *have, *exp;
	size_t			 j;
	int			 same, released, r;

	*got = 0;
	if (pm->final_name == NULL || b->mb_skip[i] ||
	    (nm = state_find(&b->plan.next, &pm->guid)) == NULL)
		return 0;
	/*
	 * Not on my side, before or after (one-way keeps a mailbox that DST
	 * deleted in the base, as tombstones): nothing to check.
	 */
	if (pm->name[b->self] == NULL && !(touched & 2))
		return 0;
	for (j = 0; pm->name[b->self] != NULL && j < b->views[b->self].n; j++)
		if (strcmp(b->views[b->self].mb[j].name,
		    pm->name[b->self]) == 0)
			vm = &b->views[b->self].mb[j];
	out->mbox = i;
	if (!touched && vm != NULL && vm->unchanged) {
		out->uidvalidity = vm->uidvalidity;
		out->modseq = vm->modseq;
		*got = 1;
		return 0;
	}
	memset(&st, 0, sizeof(st));
	memset(&now, 0, sizeof(now));
	/*
	 * A mailbox I did not touch whose modseq (which bumps whenever its
	 * contents change) is still the one I listed holds what I listed:
	 * its list is not read again (a store may have let its index go
	 * since the listing, and would decode it once more for nothing).
	 */
	same = 0;
	if ((r = store_rescan(b->store, b->cur_name[i], &st)) != 0 ||
	    (!(same = !touched && vm != NULL && st.modseq != 0 &&
	    st.uidvalidity == vm->uidvalidity && st.modseq == vm->modseq) &&
	    (r = store_list_messages(b->store, b->cur_name[i], &now)) != 0)) {
		free(st.name);
		msglist_free(&now);
		if (changed_under_us(r)) {
			/* Its state stays as it was: exit 2. */
			WARNX("'%s' changed during the run",
			    log_esc(b->cur_name[i], 200));
			fail_mbox(b, i);
			b->changed = 1;
		} else {
			ERRC(r, "cannot rescan '%s'",
			    log_esc(b->cur_name[i], 200));
			b->action_error = 1;
		}
		return 0;
	}
	free(st.name);
	/* Kept from one mailbox to the next: no growth from 0 each time. */
	if ((b->chk_want == NULL &&
	    (b->chk_want = calloc(1, sizeof(*b->chk_want))) == NULL) ||
	    (b->chk_have == NULL &&
	    (b->chk_have = calloc(1, sizeof(*b->chk_have))) == NULL) ||
	    (b->chk_exp == NULL &&
	    (b->chk_exp = calloc(1, sizeof(*b->chk_exp))) == NULL)) {
		msglist_free(&now);
		return MSYNC_ERR_NOMEM;
	}
	want = b->chk_want;
	have = b->chk_have;
	exp = b->chk_exp;
	want->n = have->n = exp->n = 0;
	for (j = 0; j < nm->nmsgs && r == 0; j++)
		if (nm->msgs[j].uid[b->self] != 0)
			r = seen_add(want, nm->msgs[j].uid[b->self],
			    nm->msgs[j].flags[b->self], nm->msgs[j].kw[b->self]);
	/*
	 * A listing the planner freed (plan_mbox.released) was what next
	 * holds on my side, and I changed nothing of the mailbox: next
	 * stands for it.  Should a copy to the other side have failed,
	 * its entry is dead in next and the mailbox keeps its previous
	 * state (final_state): nothing to compare.
	 */
	released = pm->released[b->self] != 0;
	if (released && b->mb_failed[i]) {
		out->uidvalidity = st.uidvalidity;
		*got = 1;
		msglist_free(&now);
		return 0;
	}
	for (j = 0; released && j < want->n && r == 0; j++)
		r = seen_add(exp, want->v[j].uid, want->v[j].flags,
		    want->v[j].kw);
	if (r == 0 && !released)
		r = expected_msgs(b, i, vm, exp);
	for (j = 0; same && j < exp->n && r == 0; j++)
		r = seen_add(have, exp->v[j].uid, exp->v[j].flags,
		    exp->v[j].kw);
	for (j = 0; j < now.n && r == 0; j++)
		r = seen_add(have, now.v[j].uid, now.v[j].flags,
		    now.v[j].kw);
	if (r == 0) {
		out->uidvalidity = st.uidvalidity;
		out->modseq = seen_equal(want, have) ? st.modseq : 0;
		*got = 1;
		if (!seen_equal(exp, have)) {
			LOG2("'%s' changed during the run",
			    log_esc(b->cur_name[i], 200));
			if (!b->action_error)
				b->changed = 1;
		}
	}
	msglist_free(&now);
	return r;
}

/* Frees check_mbox's lists. */
static void
chk_bufs_free(struct brain *b)
{
	struct seenlist	*l[3] = { b->chk_want, b->chk_have, b->chk_exp };

	for (size_t i = 0; i < 3; i++)
		if (l[i] != NULL) {
			free(l[i]->v);
			free(l[i]);
		}
	b->chk_want = b->chk_have = b->chk_exp = NULL;
}

/*
 * Finds out, for every mailbox of the new base that exists on my side,
 * its uidvalidity and modseq (check_mbox), or takes what finish_mbox
 * found when the brain was done with the mailbox.
 */
static int
final_status(struct brain *b, struct rec_done *d)
{
	uint8_t		*touched = NULL;
	int		 r = 0, got;

	if ((d->mb = calloc(b->plan.nmb ? b->plan.nmb : 1,
	    sizeof(*d->mb))) == NULL ||
	    (touched = calloc(b->plan.nmb ? b->plan.nmb : 1, 1)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->plan.nact; i++)
		if (b->plan.act[i].side == b->self)
			touched[b->plan.act[i].mbox] |=
			    b->plan.act[i].type == ACT_MBOX_CREATE ? 3 : 1;
	for (uint32_t i = 0; i < b->plan.nmb; i++) {
		if (b->chk_state != NULL && b->chk_state[i] != 0) {
			if (b->chk_state[i] == 1)
				d->mb[d->n++] = b->chk[i];
			continue;
		}
		if ((r = check_mbox(b, i, touched[i], &d->mb[d->n],
		    &got)) != 0)
			goto out;
		if (got)
			d->n++;
	}
out:
	free(touched);
	chk_bufs_free(b);
	return r;
}

/* Puts a side's DONE mailbox statuses into the new base. */
static void
apply_done(struct brain *b, enum side s, const struct rec_done *d)
{
	for (uint32_t i = 0; i < d->n; i++) {
		struct state_mbox *nm;

		if (d->mb[i].mbox >= b->plan.nmb)
			continue;
		nm = state_find(&b->plan.next, &b->plan.mb[d->mb[i].mbox].guid);
		if (nm == NULL)
			continue;
		nm->uidvalidity[s] = d->mb[i].uidvalidity;
		nm->modseq[s] = d->mb[i].modseq;
	}
}

/* 1 if an action on the plan mailbox with this GUID failed. */
static int
guid_failed(const struct brain *b, const struct guid *g)
{
	for (size_t i = 0; b->nfailed > 0 && i < b->plan.nmb; i++)
		if (b->mb_failed[i] && guid_cmp(&b->plan.mb[i].guid, g) == 0)
			return 1;
	return 0;
}

/*
 * The base to commit: plan->next without dead entries, plus the mailboxes
 * -m/-x left out of this run.  A mailbox on which an action failed was
 * not synced completely: it keeps its previous entry as it was (none, if
 * it had none), so the next run decides again from the last good base.
 */
static int
final_state(struct brain *b, struct state *out)
{
	struct state_mbox	*nm;
	int			 r;

	/*
	 * The mailboxes not planned go in as they are (moved, not copied),
	 * first, while plan->next is still whole to look them up in.
	 */
	for (size_t i = 0; i < b->keep.n; i++) {
		struct state_mbox *m = &b->keep.mb[i];

		if (state_find(&b->plan.next, &m->guid) != NULL)
			continue;
		if ((r = state_take_mbox(out, m)) != 0)
			return r;
	}
	for (size_t i = 0; i < b->plan.nmb; i++) {
		const struct state_mbox *m;

		if (!b->mb_failed[i] ||
		    (m = state_find(&b->base, &b->plan.mb[i].guid)) == NULL)
			continue;
		if ((r = state_add_mbox(out, &m->guid, m->name, &nm)) != 0)
			return r;
		memcpy(nm->uidvalidity, m->uidvalidity, sizeof(nm->uidvalidity));
		memcpy(nm->modseq, m->modseq, sizeof(nm->modseq));
		for (size_t j = 0; j < m->nmsgs; j++)
			if ((r = state_add_msg(nm, &m->msgs[j])) != 0)
				return r;
	}
	/*
	 * plan->next is not needed after this: its mailboxes move into out
	 * (dead entries dropped in place) instead of being copied, so the
	 * commit does not hold the next base twice.  The state_find above
	 * is done with it; guid_failed reads plan->mb only.
	 */
	for (size_t i = 0; i < b->plan.next.n; i++) {
		struct state_mbox *m = &b->plan.next.mb[i];
		size_t		  w = 0;

		if (guid_failed(b, &m->guid))
			continue;
		for (size_t j = 0; j < m->nmsgs; j++) {
			if (m->msgs[j].uid[0] == 0 && m->msgs[j].uid[1] == 0) {
				/* A failed copy: no longer trusted as synced. */
				m->modseq[0] = m->modseq[1] = 0;
				free(m->msgs[j].kw[0]);
				free(m->msgs[j].kw[1]);
				continue;
			}
			m->msgs[w++] = m->msgs[j];
		}
		m->nmsgs = w;
		if ((r = state_take_mbox(out, m)) != 0)
			return r;
	}
	state_sort(out);
	return 0;
}

/*
 * Steps 4-6 of a session, the same on both sides.  Returns 0, or
 * MSYNC_ERR_GUARD when the plan was refused, or another MSYNC_ERR_*.
 */
static int
sync_common(struct brain *b, int force_deletes, int dry_run, int show)
{
	const char	*hook;
	struct rec_done	 mine;
	uint8_t		*q;
	size_t		 len;
	int		 r;

	memset(&mine, 0, sizeof(mine));
	if ((r = plan_and_agree(b, force_deletes, dry_run)) != 0)
		return r;
	if ((b->mb_failed = calloc(b->plan.nmb + 1, 1)) == NULL ||
	    (b->mb_skip = calloc(b->plan.nmb + 1, 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	if (show) {
		for (size_t i = 0; i < b->plan.nnotes; i++)
			LOG1("note: %s", log_esc(b->plan.notes[i], 400));
		count_plan(&b->plan, &b->st);
		/* A real run counts bytes as they move; a dry run estimates. */
		for (size_t i = 0; dry_run && i < b->plan.nact; i++) {
			const struct action	*a = &b->plan.act[i];
			const struct msg	*m;

			if (a->type == ACT_COPY && a->src_side != a->side &&
			    (m = listed_msg(b, a->src_side, a->src_mbox,
			    a->src_uid)) != NULL)
				b->st.copied_bytes[a->side] += m->size;
		}
		for (size_t i = 0; i < b->plan.nact; i++)
			print_action(&b->plan, &b->plan.act[i],
			    dry_run ? 1 : 2);
		if (dry_run)
			print_totals(&b->st, "would change");
	}
	if (b->plan.guard_tripped) {
		if (show)
			ERRX("refusing to delete this much mail; nothing was "
			    "changed (use --force-deletes if it is intended)");
		return MSYNC_ERR_GUARD;
	}
	if (dry_run)
		return 0;
	/*
	 * Test hook: a command run after both sides listed and planned but
	 * before anything changes, so a test can deliver mail "during" a
	 * run deterministically (the exit status must then be 2).  The _B
	 * one runs in B's brain (a local pair's forked one), before B's own
	 * changes, which do not wait for A's hook.
	 */
	hook = b->self == SIDE_A ? "MSYNC_TEST_AFTER_PLAN" :
	    "MSYNC_TEST_AFTER_PLAN_B";
	if (getenv(hook) != NULL && system(getenv(hook)) != 0)
		WARNX("%s failed", hook);
	if ((r = apply_mailbox_ops(b)) != 0 ||
	    (r = transfer(b)) != 0 ||
	    (r = apply_local(b)) != 0 ||
	    (r = final_status(b, &mine)) != 0)
		goto out;
	if (b->self == SIDE_B) {
		size_t	 i = 0, n;

		do {	/* at most PROTO_LIST_CHUNK results per record */
			n = b->nresults - i;
			if (n > PROTO_LIST_CHUNK)
				n = PROTO_LIST_CHUNK;
			q = NULL;
			r = proto_enc_results(n == 0 ? NULL : b->results + i,
			    n, &q, &len);
			if ((r = put(b, REC_RESULT, r, q, len)) != 0)
				goto out;
			i += n;
		} while (i < b->nresults);
	}
	mine.status = b->data_error ? MSYNC_ERR_BADDATA :
	    b->action_error ? MSYNC_ERR_IO :
	    b->changed ? MSYNC_ERR_STORE_CHANGED : 0;
	q = NULL;
	r = proto_enc_done(&mine, &q, &len);
	if ((r = put(b, REC_DONE, r, q, len)) != 0 ||
	    (r = chan_flush(b->ch)) != 0)
		goto out;
	apply_done(b, b->self, &mine);
out:
	rec_done_free(&mine);
	return r;
}

/*
 * Test hook (t1450): with MSYNC_TEST_HWM set to a file name, each brain
 * appends "A|B <VmHWM in kB>" to it when it ends, so a test can bound
 * the peak resident memory of both processes of a local run (the forked
 * server brain is not the process /usr/bin/time watches).
 */
static void
report_hwm(enum side self)
{
	const char	*path;
	char		 line[256];
	FILE		*in, *out;

	if ((path = getenv("MSYNC_TEST_HWM")) == NULL ||
	    (in = fopen("/proc/self/status", "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), in) != NULL) {
		if (strncmp(line, "VmHWM:", 6) != 0)
			continue;
		if ((out = fopen(path, "a")) != NULL) {
			fprintf(out, "%s %lld\n", side_name(self),
			    strtoll(line + 6, NULL, 10));
			fclose(out);
		}
		break;
	}
	fclose(in);
}

/*
 * Opens the store of side self without a word: *holder gets the lock's
 * holder or a driver's reason (owned by the caller), for open_store_say.
 * Returns 0 or MSYNC_ERR_*.
 */
static int
open_store_quiet(struct brain *b, const char *path, int layout,
    const char *inbox, int mbox_format, int readonly, int create, int full,
    int lock_wait, char **holder)
{
	struct store_opts	 so;

	memset(&so, 0, sizeof(so));
	so.path = path;
	so.layout = (enum store_layout)layout;
	so.readonly = readonly;
	so.full = full;
	so.create = create;
	so.lock_wait = lock_wait;
	so.inbox = inbox;
	so.mbox_format = mbox_format;
	return store_open(&so, &b->store, holder);
}

/* Says why the store at path did not open (r, from open_store_quiet). */
static void
open_store_say(const char *path, int r, const char *holder)
{
	if (r == MSYNC_ERR_LOCKED)
		ERRX("store '%s' is locked by %s", log_esc(path, 300),
		    holder != NULL ? log_esc(holder, 100) : "another run");
	else if (r != 0 && holder != NULL)
		ERRX("%s", holder);	/* a driver's one-line reason (IMAP) */
	else if (r != 0)
		ERRC(r, "cannot open store '%s'", log_esc(path, 300));
}

/* Opens the store of side self.  Returns 0 or MSYNC_ERR_*. */
static int
open_store(struct brain *b, const char *path, int layout,
    const char *inbox, int mbox_format, int readonly, int create, int full,
    int lock_wait)
{
	char	*holder = NULL;
	int	 r;

	r = open_store_quiet(b, path, layout, inbox, mbox_format, readonly,
	    create, full, lock_wait, &holder);
	open_store_say(path, r, holder);
	free(holder);
	return r;
}

/* Prints a listing: one line per mailbox, with verbose one per message. */
static void
print_listing(const char *name, uint32_t count, uint64_t bytes,
    const struct msglist *ml)
{
	char	 g[33], fl[MSYNC_KWSTR_MAX + 16];

	printf("%s\t%" PRIu32 "\t%" PRIu64 "\n", log_esc(name, 1024), count,
	    bytes);
	for (size_t i = 0; ml != NULL && i < ml->n; i++) {
		guid_hex(&ml->v[i].guid, g);
		flags_str(ml->v[i].flags, ml->v[i].kw, fl, sizeof(fl));
		printf("  %" PRIu32 "\t%s\t%s\t%" PRIu64 "\n", ml->v[i].uid, g,
		    fl, ml->v[i].size);
	}
}

int
brain_list_local(const char *path, int layout, const char *inbox,
    int mbox_format, int verbose, int lock_wait)
{
	struct brain		 b;
	struct store_mailbox	*mbs = NULL;
	size_t			 n = 0;
	int			 r;

	memset(&b, 0, sizeof(b));
	if ((r = open_store(&b, path, layout, inbox, mbox_format, 1, 0, 0,
	    lock_wait)) != 0)
		goto out;
	if ((r = store_list_mailboxes(b.store, &mbs, &n)) != 0) {
		ERRC(r, "cannot list '%s'", log_esc(path, 300));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct msglist	 ml;

		memset(&ml, 0, sizeof(ml));
		if (verbose && (r = store_list_messages(b.store, mbs[i].name,
		    &ml)) != 0) {
			ERRC(r, "cannot list '%s'", log_esc(mbs[i].name, 300));
			goto out;
		}
		print_listing(mbs[i].name, mbs[i].count, mbs[i].bytes,
		    verbose ? &ml : NULL);
		msglist_free(&ml);
	}
out:
	store_mailboxes_free(mbs, n);
	brain_free(&b);
	return msync_exit_status(r);
}

/* The client side of --list: B sends its view; print it. */
static int
list_remote(struct brain *b, int verbose)
{
	int	 r;

	if ((r = recv_view(b)) != 0)
		return r;
	for (size_t i = 0; i < b->views[b->peer].n; i++) {
		const struct view_mbox	*vm = &b->views[b->peer].mb[i];
		uint64_t		 bytes = 0;

		for (size_t j = 0; j < vm->msgs.n; j++)
			bytes += vm->msgs.v[j].size;
		print_listing(vm->name, (uint32_t)vm->msgs.n, bytes,
		    verbose ? &vm->msgs : NULL);
	}
	return 0;
}

/*
 * After a failure, prints what the peer said before it went away (its
 * LOG and ERROR records may still be buffered), so the user sees the
 * cause rather than only "connection lost".  Returns the peer's error
 * code, if it sent one, else r.
 */
static int
drain_peer(struct brain *b, int r)
{
	const uint8_t	*p;
	size_t		 len;
	uint8_t		 type;
	int32_t		 n;
	char		*text;

	if (b->ch == NULL)
		return r;
	for (int rounds = 0; rounds < 64; rounds++) {
		int	 fr = chan_fill(b->ch), gr;

		while ((gr = chan_get(b->ch, &type, &p, &len)) == 0) {
			if (type != REC_LOG && type != REC_ERROR)
				continue;
			text = NULL;
			if (proto_dec_text(p, len, &n, &text) != 0)
				return r;
			if (type == REC_ERROR) {
				ERRX("peer: %s", log_esc(text, 512));
				if (n < 0 && n >= MSYNC_ERR_LAST)
					r = peer_code(b, n);
			} else if (n <= log_verbosity)
				fprintf(stderr, "msync[peer]: %s\n",
				    log_esc(text, 512));
			free(text);
		}
		/* What the peer sent arrived damaged: that, not a lost link. */
		if (gr == MSYNC_ERR_PROTO || fr == MSYNC_ERR_PROTO)
			return MSYNC_ERR_PROTO;
		if (fr != 0 || chan_wait(b->ch, 100) != 0)
			break;
	}
	return r;
}

/* Maps an error to an exit status, saying what a user can do. */
static int
finish(struct brain *b, int r)
{
	if (r == MSYNC_ERR_PEER_EOF || r == MSYNC_ERR_IO)
		r = drain_peer(b, r);
	if (r == MSYNC_ERR_PEER_EOF)
		ERRX("connection to the peer lost; both stores are intact, "
		    "run again to finish");
	else if (r == MSYNC_ERR_PROTO || r == MSYNC_ERR_TOOBIG)
		ERRX("protocol error: the peer sent something invalid");
	else if (r == MSYNC_ERR_STORE_CHANGED)
		LOG1("a store changed during the run; nothing was lost, run "
		    "again to finish");
	if (r == MSYNC_ERR_GUARD)
		return EXIT_ERROR;
	return msync_exit_status(r);
}

/* Copies what this run did into res (for --json reports). */
static void
fill_result(const struct brain *b, int compressed, struct brain_result *res)
{
	struct chan_stats cs;

	memset(res, 0, sizeof(*res));
	if (b->ch == NULL)
		return;
	res->ran = 1;
	res->st = b->st;
	chan_get_stats(b->ch, &cs);
	res->wire_out = cs.wire_out;
	res->raw_out = cs.raw_out;
	res->wire_in = cs.wire_in;
	res->raw_in = cs.raw_in;
	res->compressed = compressed;
}

/*
 * The start of A's session up to and including HELLO: the handshake,
 * the idle timeout (keepalives from then on), HELLO, flushed.  Run by a
 * thread of its own while A opens its store (brain_client), it uses only
 * b->ch and reads b and o; it prints nothing (greet_say does, after).
 */
struct greet {
	struct brain		*b;		/* borrowed */
	const struct brain_opts	*o;		/* borrowed */
	int			 first_sync;	/* in: the pair has no state */
	int			 r;		/* out: 0 or MSYNC_ERR_* */
	int			 shook;		/* out: the handshake passed */
	int			 old_mboxo;	/* out: the peer is too old for
						   ;format=mboxo */
	unsigned		 version;	/* out: the protocol agreed */
	int			 compressed;	/* out: LZ4 both ways */
	uint8_t			 hopts;		/* out: HELLO's options */
	char			*why;		/* out, owned: the handshake's
						   failure */
	pthread_mutex_t		 mu;		/* guards done (greet_thread) */
	pthread_cond_t		 cv;		/* signalled when done is set */
	int			 done;		/* greet returned */
};

static int
greet(struct greet *g)
{
	struct brain		*b = g->b;
	const struct brain_opts	*o = g->o;
	struct rec_hello	 h;
	uint8_t			*q = NULL;
	size_t			 len;
	int			 r, r2;

	r = chan_handshake(b->ch, o->compress > 0, HANDSHAKE_MS, &g->version,
	    &g->compressed, &g->why);
	if (r != 0)
		goto out;
	g->shook = 1;

	memset(&h, 0, sizeof(h));
	h.mode = o->list ? MODE_LIST : (uint8_t)o->mode;
	h.src = (uint8_t)o->src;
	h.opts = b->hopts;
	if (o->force_deletes)
		h.opts |= HELLO_FORCE_DELETES;
	if (o->full)
		h.opts |= HELLO_FULL;
	/*
	 * A store root is created only for a pair that was never synced:
	 * after a sync, a missing root is a disk not mounted or a path
	 * mistyped (or a HELLO path damaged on the way), and creating it
	 * would start an empty store where the user's mail should be.
	 */
	if (o->list || (o->mode != MODE_TWOWAY && o->src == SIDE_B))
		h.opts |= HELLO_READ_ONLY;
	else if (g->first_sync)
		h.opts |= HELLO_CREATE;
	h.path = (char *)o->path[SIDE_B];
	h.layout = (uint8_t)o->layout[SIDE_B];
	h.include = o->include;
	h.ninclude = (uint32_t)o->ninclude;
	h.exclude = o->exclude;
	h.nexclude = (uint32_t)o->nexclude;
	/*
	 * An IMAP store of mine can recognise, on a first sync, the
	 * messages the server already holds by their header fingerprint
	 * if B tells its own (protocol 4; docs/IMAP.md).  A B whose store
	 * is IMAP too tells those its listing downloaded (on a first sync,
	 * every message it did not know), no others.  Only when the pair has
	 * no sync state: asking costs the overlap of the two listings (I
	 * wait for B's view), which later runs keep.
	 */
	if (g->version >= 4 && !o->list && g->first_sync &&
	    o->layout[SIDE_A] == LAYOUT_IMAP &&
	    getenv("MSYNC_NO_FPRINT") == NULL)
		h.opts |= HELLO_FPRINT;
	/*
	 * B's ";format=mboxo" (an mbox whose ">From " lines are content)
	 * travels as a HELLO option, protocol 5: an older B would read
	 * its file as mboxrd and change such messages, so it is refused.
	 */
	if (o->mbox_format_b == MBOXFMT_MBOXO) {
		if (g->version < 5)
			g->old_mboxo = 1;
		else
			h.opts |= HELLO_MBOXO;
	}
	/*
	 * HELLO goes out before the keepalive thread is made: B waits for
	 * it to open and list its store, and making a thread is time on
	 * that path.  chan_flush_some only writes what the fd takes (a
	 * HELLO fits a pipe); what it leaves waits below, under the
	 * timeout, as before.
	 */
	if (g->old_mboxo)
		r = MSYNC_ERR_PROTO;
	else {
		g->hopts = h.opts;
		r = proto_enc_hello(&h, &q, &len);
		if ((r = put(b, REC_HELLO, r, q, len)) == 0)
			r = chan_flush_some(b->ch);
	}
	if ((r2 = chan_set_timeout(b->ch, o->timeout,
	    "B (the other side)")) != 0)
		r = r2;
	if (r == 0)
		r = chan_flush(b->ch);
out:
	g->r = r;
	return r;
}

/*
 * greet in a thread of its own: says it is done (g->done under g->mu)
 * as soon as greet returns, so that A goes on without waiting for the
 * thread's exit; brain_client joins it at its end.
 */
static void *
greet_thread(void *arg)
{
	struct greet	*g = arg;

	(void)greet(g);
	pthread_mutex_lock(&g->mu);
	g->done = 1;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/*
 * Says what greet found, takes its results into b (version, HELLO's
 * options) and *compressed.  Returns greet's result, MSYNC_ERR_UNREACHABLE
 * for a peer that closed before its handshake (the transport knows why;
 * main says it).
 */
static int
greet_say(struct greet *g, struct brain *b, int *compressed)
{
	if (!g->shook) {
		if (g->r == MSYNC_ERR_PEER_EOF) {
			LOG2("%s", g->why != NULL ? g->why : "no handshake");
			return MSYNC_ERR_UNREACHABLE;
		}
		if (g->why != NULL)
			ERRX("%s", g->why);
		return g->r;
	}
	LOG3("protocol version %u, compression %s", g->version,
	    g->compressed ? "on" : "off");
	b->version = g->version;
	*compressed = g->compressed;
	b->hopts = g->hopts;
	if (g->old_mboxo)
		ERRX("the other side's msync speaks protocol %u; "
		    ";format=mboxo on its store needs 5", g->version);
	return g->r;
}

/*
 * What A did before its handshake (brain_client): the results of opening
 * and listing its store and of reading the sync state, for the steps
 * that would have done them to report.
 */
struct early {
	int	 ran;		/* 1: the steps below ran */
	int	 open_r;	/* open_store_quiet's result */
	char	*holder;	/* owned; its holder or reason */
	int	 list_r;	/* store_list_mailboxes' (if opened) */
	int	 state_r;	/* state_load's (if opened) */
};

int
brain_client(const struct brain_opts *o, int rfd, int wfd)
{
	struct brain	 b;
	struct greet	 g;
	struct early	 e;
	struct state	 commit;
	struct chan_stats cs;
	pthread_t	 tid;
	int		 compressed = 0, r, status = 0, first_sync;
	int		 threaded = 0;
	size_t		 len;

	memset(&b, 0, sizeof(b));
	memset(&g, 0, sizeof(g));
	memset(&e, 0, sizeof(e));
	memset(&commit, 0, sizeof(commit));
	b.self = SIDE_A;
	b.peer = SIDE_B;
	b.mode = o->mode;
	b.src = o->src;
	b.include = o->include;
	b.ninclude = o->ninclude;
	b.exclude = o->exclude;
	b.nexclude = o->nexclude;
	b.crash_after = o->crash_after;
	/* A terminal gets one line rewritten; anything else plain lines. */
	b.progress = !o->progress ? 0 : isatty(STDERR_FILENO) ? 2 : 1;
	if (o->dry_run)
		b.hopts |= HELLO_DRY_RUN;

	if ((r = chan_new(rfd, wfd, &b.ch)) != 0)
		goto out;
	chan_set_bwlimit(b.ch, o->bwlimit);
	first_sync = o->state_path == NULL ||
	    (access(o->state_path, F_OK) == -1 && errno == ENOENT);
	g.b = &b;
	g.o = o;
	g.first_sync = first_sync;
	/*
	 * The connection's start is most of a run that changes nothing over
	 * ssh (its key exchange and login, then msync's start there), and
	 * A has nothing to do meanwhile: a thread says the handshake and
	 * HELLO while I open and list my store and read the sync state,
	 * which used to follow HELLO on the critical path.  The thread
	 * starts the idle timeout as before, so the keepalives cover a long
	 * listing.  Not for a store that a first sync creates, nor an IMAP
	 * one (its login may ask for a password), and the lock is only
	 * tried: a store that must wait for it, or be made, keeps its place
	 * after the handshake, so that an unreachable peer is told at once
	 * and never leaves a store behind.  (It may now cost a listing,
	 * whose rescans the indexes keep.)
	 */
	if (!o->list && !first_sync && o->layout[SIDE_A] != LAYOUT_IMAP &&
	    pthread_mutex_init(&g.mu, NULL) == 0) {
		if (pthread_cond_init(&g.cv, NULL) != 0)
			pthread_mutex_destroy(&g.mu);
		else if (pthread_create(&tid, NULL, greet_thread, &g) != 0) {
			pthread_cond_destroy(&g.cv);
			pthread_mutex_destroy(&g.mu);
		} else
			threaded = 1;
	}
	if (threaded) {
		e.ran = 1;
		e.open_r = open_store_quiet(&b, o->path[SIDE_A],
		    o->layout[SIDE_A], o->inbox, o->mbox_format,
		    o->mode != MODE_TWOWAY && o->src == SIDE_A, 0, o->full, 0,
		    &e.holder);
		/*
		 * The state before the listing: state_load's file buffer
		 * is gone before the listing loads indexes (issue 10.3:
		 * memory).  Errors are told in the order they always were.
		 */
		if (e.open_r == 0) {
			e.state_r = state_load(o->state_path, &b.base);
			e.list_r = store_list_mailboxes(b.store, &b.mbs,
			    &b.nmbs);
		}
		/*
		 * Greet's results, not the thread's exit (it is joined at
		 * the end): the lists go out as soon as HELLO did.
		 */
		pthread_mutex_lock(&g.mu);
		while (!g.done)
			pthread_cond_wait(&g.cv, &g.mu);
		pthread_mutex_unlock(&g.mu);
		/* Locked: wait for it (--lock-wait) where we always did. */
		if (e.open_r == MSYNC_ERR_LOCKED && o->lock_wait > 0) {
			free(e.holder);
			e.holder = NULL;
			e.ran = 0;
		}
	} else
		(void)greet(&g);
	if ((r = greet_say(&g, &b, &compressed)) != 0)
		goto out;

	if (o->list) {
		if ((r = list_remote(&b, o->list_verbose)) != 0)
			goto out;
		(void)chan_put(b.ch, REC_BYE, NULL, 0);
		(void)chan_flush(b.ch);
		goto out;
	}

	/*
	 * B opens and lists its store as soon as HELLO reaches it, while we
	 * do the same and read the sync state: the two listings overlap.
	 */
	if (e.ran) {
		r = e.open_r;
		open_store_say(o->path[SIDE_A], r, e.holder);
	} else
		r = open_store(&b, o->path[SIDE_A], o->layout[SIDE_A],
		    o->inbox, o->mbox_format,
		    o->mode != MODE_TWOWAY && o->src == SIDE_A, first_sync,
		    o->full, o->lock_wait);
	if (r != 0) {
		if (r == MSYNC_ERR_NOTFOUND && !first_sync)
			ERRX("'%s' does not exist, but this pair was synced "
			    "before: is a disk not mounted?  To start over, "
			    "remove the sync state '%s'",
			    log_esc(o->path[SIDE_A], 300),
			    log_esc(o->state_path, 300));
		(void)put_text(&b, REC_ERROR, r, "initiator cannot open its "
		    "store");
		(void)chan_flush(b.ch);
		if (o->a_open_failed != NULL)
			*o->a_open_failed = 1;
		goto out;
	}
	if (e.ran) {
		if ((r = e.list_r) != 0) {
			ERRC(r, "cannot list the mailboxes");
			goto out;
		}
	} else {
		/* The state first, as above. */
		e.state_r = state_load(o->state_path, &b.base);
		if ((r = list_store(&b)) != 0)
			goto out;
	}
	r = e.state_r;
	if (r == MSYNC_ERR_STATE_CORRUPT)
		WARNX("sync state '%s' is corrupt: merging without deletions",
		    log_esc(o->state_path, 300));
	else if (r != 0) {
		ERRC(r, "cannot read sync state '%s'",
		    log_esc(o->state_path, 300));
		goto out;
	}
	if ((r = split_base(&b)) != 0 || (r = send_base(&b, 1)) != 0 ||
	    (r = chan_flush(b.ch)) != 0)
		goto out;
	/*
	 * With fingerprints, B's view (and its FPRINTS) comes first: my
	 * IMAP store needs them before it lists, so the two listings do
	 * not overlap.  B sends its view without waiting for mine.
	 */
	if ((b.hopts & HELLO_FPRINT) && (r = recv_view(&b)) != 0)
		goto out;
	if ((r = build_view(&b, o->full)) != 0 || (r = send_view(&b)) != 0 ||
	    (r = chan_flush(b.ch)) != 0 ||
	    (!(b.hopts & HELLO_FPRINT) && (r = recv_view(&b)) != 0) ||
	    (r = split_dormant(&b)) != 0 || (r = send_base(&b, 0)) != 0 ||
	    (r = chan_flush(b.ch)) != 0)
		goto out;
	r = sync_common(&b, o->force_deletes, o->dry_run, 1);
	if (r == 0 && o->dry_run && b.unreadable)
		status = EXIT_ERROR;
	if (r != 0 || o->dry_run)
		goto out;
	/* Wait for B's RESULT and DONE. */
	while (!b.got_peer_done) {
		const uint8_t	*p;
		uint8_t		 type;

		if ((r = next_rec(&b, &type, &p, &len)) != 0 ||
		    (r = consume(&b, type, p, len)) != 0)
			goto out;
	}
	if (!b.got_peer_results) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	apply_done(&b, SIDE_B, &b.peer_done);
	/* Nothing was planned: the state on disk is still exact. */
	if (b.plan.nmb == 0)
		goto committed;
	/*
	 * A copy failed its GUID check on either side: its bytes changed on
	 * the way (from protocol 3 on, the GUID is what covers message
	 * content; docs/PROTOCOL.md) or the sender's store holds other
	 * bytes than it listed (a replaced file is caught by the sender
	 * and reported as a change, exit 2).  Nothing of that copy was
	 * saved; the state is not written either, as after any damaged
	 * record, so the next run starts from the same base and pairs what
	 * this run did copy by content.
	 */
	if (b.data_error || b.peer_done.status == MSYNC_ERR_BADDATA) {
		ERRX("a message arrived with other bytes than its GUID says: "
		    "the sync state is not updated; run again");
		goto committed;
	}
	/*
	 * The views and the old base are done with once the commit is
	 * built: free them before the state file's bytes are made.
	 */
	view_free(&b.views[SIDE_A]);
	view_free(&b.views[SIDE_B]);
	if ((r = final_state(&b, &commit)) == 0) {
		state_clear(&b.base);
		/* The actions too: an initial copy's, one per message, are
		 * larger than the state file's bytes about to be made. */
		plan_free_actions(&b.plan);
	}
	/*
	 * Their room goes back before state_save encodes the commit: its
	 * one large buffer cannot use the holes, and grew the heap's top
	 * past the run's peak (issue 10.3).
	 */
	msync_release_free();
	if (r != 0 || (r = state_save(o->state_path, &commit)) != 0) {
		ERRC(r, "cannot write sync state '%s'",
		    log_esc(o->state_path, 300));
		goto out;
	}
	durable(&b);
committed:
	(void)chan_put(b.ch, REC_BYE, NULL, 0);
	(void)chan_flush(b.ch);

	if (b.peer_done.status == MSYNC_ERR_BADDATA || b.data_error)
		status = EXIT_DATAERR;
	else if (b.peer_done.status != 0 && b.peer_done.status !=
	    MSYNC_ERR_STORE_CHANGED)
		status = EXIT_ERROR;
	else if (b.action_error)
		status = EXIT_ERROR;
	else if (b.changed || b.peer_done.status == MSYNC_ERR_STORE_CHANGED) {
		LOG1("a store changed during the run; run again to pick up "
		    "the changes");
		status = EXIT_CHANGED;
	}
	if (o->stats) {
		print_totals(&b.st, "changes");
		chan_get_stats(b.ch, &cs);
		LOG1("wire: sent %" PRIu64 " bytes (%" PRIu64 " before "
		    "compression), received %" PRIu64 " bytes (%" PRIu64
		    " after decompression)%s", cs.wire_out, cs.raw_out,
		    cs.wire_in, cs.raw_in, compressed ? "" : ", uncompressed");
	}
out:
	if (threaded) {
		pthread_join(tid, NULL);
		pthread_cond_destroy(&g.cv);
		pthread_mutex_destroy(&g.mu);
	}
	if (o->result != NULL)
		fill_result(&b, compressed, o->result);
	free(g.why);
	free(e.holder);
	state_clear(&commit);
	if (r != 0)
		status = finish(&b, r);
	brain_free(&b);
	report_hwm(SIDE_A);
	return status;
}

int
brain_server(const struct server_opts *so, int rfd, int wfd)
{
	struct brain	 b;
	struct rec_hello h;
	const uint8_t	*p;
	size_t		 len;
	unsigned	 version;
	int		 compressed, r, writes, layout;
	char		*why = NULL, *root = NULL;
	uint8_t		 type;

	memset(&b, 0, sizeof(b));
	memset(&h, 0, sizeof(h));
	b.self = SIDE_B;
	b.peer = SIDE_A;
	b.crash_after = so->crash_after;
	if ((r = chan_new(rfd, wfd, &b.ch)) != 0)
		goto out;
	chan_set_bwlimit(b.ch, so->bwlimit);
	r = chan_handshake(b.ch, 0, HANDSHAKE_MS, &version, &compressed,
	    &why);
	if (r != 0) {
		if (why != NULL)
			ERRX("%s", why);
		goto out;
	}
	b.version = version;
	if ((r = chan_set_timeout(b.ch, so->timeout, "A (the client)")) != 0)
		goto out;
	/* From here on, what we say reaches the user through the peer. */
	log_set_sink(log_to_peer, &b);
	if ((r = expect_rec(&b, REC_HELLO, &p, &len)) != 0 ||
	    (r = proto_dec_hello(p, len, &h)) != 0)
		goto out;
	b.mode = h.mode == MODE_LIST ? MODE_TWOWAY : (enum sync_mode)h.mode;
	b.src = (enum side)h.src;
	b.hopts = h.opts;
	/* Fingerprints are protocol 4's, the mbox format 5's. */
	if (((h.opts & HELLO_FPRINT) && b.version < 4) ||
	    ((h.opts & HELLO_MBOXO) && b.version < 5)) {
		r = MSYNC_ERR_PROTO;
		goto out;
	}
	b.include = h.include;
	b.ninclude = h.ninclude;
	b.exclude = h.exclude;
	b.nexclude = h.nexclude;
	writes = !(h.opts & HELLO_READ_ONLY);
	if (so->read_only && writes) {
		r = MSYNC_ERR_READONLY;
		(void)put_text(&b, REC_ERROR, r, "this server is read-only: "
		    "it can only be the source of --backup or --one-way");
		goto out;
	}
	if ((r = so->module_root != NULL ?
	    dpath_resolve(so->module_root, h.path, &root) :
	    server_root(h.path, so->restrict_dir, &root)) != 0) {
		(void)put_text(&b, REC_ERROR, r, "store path refused");
		goto out;
	}
	/*
	 * Layout 0 is also what a bare path sends: an mbox file here is
	 * opened as one (store_detect); anything else stays a Maildir,
	 * whose driver says what is wrong with it.
	 */
	layout = h.layout;
	if (layout == LAYOUT_MAILDIRPP)
		(void)store_detect(root, &layout);
	if ((h.opts & HELLO_MBOXO) && !LAYOUT_IS_MBOX(layout)) {
		r = MSYNC_ERR_USAGE;
		(void)put_text(&b, REC_ERROR, r, ";format=mboxo is for an "
		    "mbox store, and this one is not");
		goto out;
	}
	if ((r = open_store(&b, root, layout, NULL, (h.opts & HELLO_MBOXO) ?
	    MBOXFMT_MBOXO : MBOXFMT_MBOXRD, !writes,
	    (h.opts & HELLO_CREATE) != 0, (h.opts & HELLO_FULL) != 0,
	    so->lock_wait)) != 0) {
		(void)put_text(&b, REC_ERROR, r,
		    r == MSYNC_ERR_NOTFOUND && writes &&
		    (h.opts & HELLO_CREATE) == 0 ?
		    "the store does not exist, and this pair was synced "
		    "before, so it is not created: is a disk not mounted? "
		    "To start over, remove the pair's sync state" :
		    "cannot open the store");
		goto out;
	}
	if ((r = list_store(&b)) != 0) {
		(void)put_text(&b, REC_ERROR, r, "cannot list the store");
		goto out;
	}
	if (h.mode != MODE_LIST && (r = recv_base_headers(&b)) != 0)
		goto out;
	if (h.mode == MODE_LIST) {
		if ((r = build_view(&b, 1)) != 0 || (r = send_view(&b)) != 0 ||
		    (r = chan_flush(b.ch)) != 0)
			goto out;
		if ((r = next_rec(&b, &type, &p, &len)) == 0 &&
		    type != REC_BYE)
			r = MSYNC_ERR_PROTO;
		goto out;
	}
	if ((r = split_base(&b)) != 0 ||
	    (r = build_view(&b, (h.opts & HELLO_FULL) != 0)) != 0 ||
	    (r = send_view(&b)) != 0 || (r = chan_flush(b.ch)) != 0 ||
	    (r = recv_view(&b)) != 0 || (r = split_dormant(&b)) != 0)
		goto out;
	prefetch_own_listings(&b);
	r = recv_base_msgs(&b);
	(void)store_prefetch(b.store, NULL, 0);
	if (r != 0 || (r = expand_deltas(&b)) != 0)
		goto out;
	r = sync_common(&b, (h.opts & HELLO_FORCE_DELETES) != 0,
	    (h.opts & HELLO_DRY_RUN) != 0, 0);
	if (r != 0 || (h.opts & HELLO_DRY_RUN))
		goto out;
	/*
	 * The state is A's to commit; wait for its BYE, then exit.  A's
	 * DONE may come first if our transfer finished before A's did.
	 */
	for (;;) {
		if ((r = next_rec(&b, &type, &p, &len)) != 0 ||
		    type == REC_BYE)
			break;
		if (type != REC_DONE ||
		    (r = consume(&b, type, p, len)) != 0) {
			r = r != 0 ? r : MSYNC_ERR_PROTO;
			break;
		}
	}
out:
	if (r != 0 && r != MSYNC_ERR_PEER_EOF && r != MSYNC_ERR_GUARD &&
	    log_verbosity >= 0)
		ERRC(r, "server");
	/*
	 * Whatever stopped this side, A learns it with the code, so that
	 * its exit status says what happened: 76 for a stream from A that
	 * arrived damaged or malformed, 2 for a store that changed under
	 * us (a folder without cur/), rather than "connection lost".  Not
	 * when A is gone, or stopped us itself with its own ERROR; the
	 * guard trips on both sides alike.
	 */
	if (r == MSYNC_ERR_PROTO || r == MSYNC_ERR_TOOBIG)
		(void)put_text(&b, REC_ERROR, r, "the server refused what "
		    "this side sent");
	else if (r != 0 && r != MSYNC_ERR_PEER_EOF && r != MSYNC_ERR_GUARD &&
	    r != MSYNC_ERR_TIMEOUT && !b.sent_error && !b.peer_error)
		(void)put_text(&b, REC_ERROR, r, r == MSYNC_ERR_STORE_CHANGED ?
		    "the server's store changed during the run; run again" :
		    "the server stopped");
	log_set_sink(NULL, NULL);
	(void)chan_flush(b.ch);
	b.include = b.exclude = NULL;
	rec_hello_free(&h);
	free(root);
	free(why);
	brain_free(&b);
	report_hwm(SIDE_B);
	return r == MSYNC_ERR_GUARD ? EXIT_ERROR : msync_exit_status(r);
}
