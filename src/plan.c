/*
 * plan.c — the deterministic planner: (base, side A's view, side B's view,
 * mode) -> actions, notes, and the base the run leaves behind.  No I/O.
 *
 * Both brains run plan_build on identical inputs and compare the digest,
 * so nothing here may depend on input order, pointer values, the qsort
 * implementation or the machine: every list is sorted by a total order
 * before it is walked, and the digest hashes a little-endian encoding.
 * docs/SYNC.md states the rules in English; this file implements them.
 *
 * Outline of plan_build:
 *   1. pair mailboxes: by GUID, then left-overs by name;
 *   2. per pair: current lists, base lookup, trust;
 *   3. mailbox decisions (create, delete, keep), then names (renames,
 *      name conflicts);
 *   4. message decisions: trusted three-way rules or a union;
 *   5. sort actions; point copies at local sources where one exists;
 *   6. the mass-deletion guard; plan->next; the digest.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "msync.h"
#include "state.h"
#include "plan.h"

#define NONE		((size_t)-1)
#define NONE32		UINT32_MAX	/* an entry's aux: no action */
#define MARK32		(UINT32_MAX - 1)	/* same_entries' own */
#define GUARD_MIN	20	/* the share rule applies from this many */

/*
 * One message of one side's current list of one mailbox: its uid and
 * where it is in its source (struct lsrc), which holds its GUID, flags
 * and keywords.  8 bytes a message and side (was 48, 32, then 24 with
 * a pointer to the GUID and a copy of the keywords): the lists of every
 * changed mailbox are held at once, at the planner's peak.
 */
struct lmsg {
	uint32_t	 uid;
	uint32_t	 i : 27;	/* index into the source */
	uint32_t	 kwfix : 1;	/* keywords in the source's fix */
	uint32_t	 matched : 1;	/* claimed by a base entry or a pair */
	uint32_t	 gone : 1;	/* expunged, or its mailbox deleted */
	uint32_t	 used : 1;	/* the source of a local copy */
	uint32_t	 cand : 1;	/* local_copies: a copy may take it */
};

_Static_assert(sizeof(struct lmsg) == 8, "struct lmsg is 8 bytes");

/* lmsg's i: a source that is longer cannot be planned (MSYNC_MSGS_MAX
 * is far below it). */
#define LSRC_MAX	((size_t)1 << 27)

/* The canonical keywords of one message whose own are not canonical. */
struct kwfix {
	uint32_t	 i;		/* index into the source */
	char		*kw;		/* owned; canonical, or NULL for none */
};

/*
 * Where one side's current list of a pair comes from: the view's
 * messages or, for an unchanged view, the base's entries (plan_build's
 * inputs, unchanged while it runs).
 */
struct lsrc {
	const struct msg	*v;	/* borrowed; the view's, or NULL */
	const struct state_msg	*b;	/* borrowed; else the base's */
	int			 s;	/* b's side: uid[s], flags[s], kw[s] */
	/*
	 * Owned, kw owned; in index order.  Keywords are compared,
	 * merged and hashed in canonical form (sorted, unique, one space
	 * between); a store sends them so, and the few that are not
	 * ("y x", "x x", "") are kept here, not a string per message.
	 */
	struct kwfix		*fix;
	size_t			 nfix;
};

/* One mailbox pair under construction. */
struct pair {
	struct guid	 guid;		/* the pair's identity */
	const struct view_mbox *v[2];	/* borrowed; NULL: not on that side */
	const struct state_mbox *base;	/* borrowed; base entry or NULL */
	struct lmsg	*l[2];		/* owned; current list, sorted by uid */
	size_t		 n[2];
	struct lsrc	 src[2];	/* what l[s] indexes */
	/*
	 * Owned; per base message, the index of its lmsg in l[s], or
	 * NONE32: 4 bytes, not a pointer's 8, as every changed pair's are
	 * held from pair_setup to its planning.
	 */
	uint32_t	*cur[2];
	int		 byname;	/* paired by name (GUIDs differed) */
	int		 basedup;	/* the base uses a uid twice */
	int		 trusted;
	int		 keep;		/* in plan->next */
	int		 released[2];	/* plan_mbox.released */
	int		 create[2];	/* ACT_MBOX_CREATE on side */
	int		 rename[2];	/* ACT_MBOX_RENAME on side */
	int		 setguid[2];	/* ACT_MBOX_SETGUID on side */
	int		 del[2];	/* ACT_MBOX_DELETE on side */
	int		 copyall;	/* single side: copy (new) messages */
	int		 newonly;	/* ... only those not in the base */
	int		 expall;	/* single side: expunge every message
					   (a backup's DST-only INBOX, which
					   cannot be deleted) */
	const char	*final;		/* borrowed; name after the run */
	/*
	 * Owned; the entries of plan->next, kw owned.  Each is the next
	 * base's message as it will be stored: aux is NONE32, or, from
	 * next_build on, the index of the COPY that fills it in.  A COPY's
	 * entry is made by next_build, from the COPY (emit_copy): during
	 * planning the copied messages of an initial copy have an action
	 * each and no entry yet.
	 */
	struct state_msg *e;
	size_t		 ne;
	size_t		 cape;
	/*
	 * Owned; bit i: base message i goes into the next base as it is
	 * (both sides still have it, and nothing of it changes).  Its
	 * entry is made by next_build, after the lists are freed: a 1% run
	 * changes a few messages of a folder, and an entry per message
	 * made while planning was the largest thing at the planner's peak.
	 */
	uint64_t	*same;
	size_t		 nextidx;	/* index into plan->next.mb */
};

struct ctx {
	const struct state	*base;	/* borrowed; may be empty */
	struct view		*views;	/* borrowed; [2], lists freed as
					   o->release says */
	const struct plan_opts	*o;	/* borrowed */
	int			 first;	/* the base is empty */
	/*
	 * Side s lists no mailbox at all although the base has some: an
	 * emptied or unmounted store, not a user's deletion, so no mailbox
	 * deletion is inferred from it.
	 */
	int			 emptied[2];
	const struct state_mbox	**bidx;	/* owned array; base by GUID */
	size_t			 nb;
	struct pair		*p;	/* owned; sorted by GUID */
	size_t			 np;
	/*
	 * Owned, kw owned; the plan's actions as they will be handed over
	 * (no wrapper: 48 bytes each, was 72).  Until next_build, a COPY's
	 * next_msg is the uid it was planned from on side side ^ 1 (its
	 * entry's, which local_copies may point src_uid away from);
	 * next_build makes the entry and puts its index there.
	 */
	struct action		*a;
	size_t			 na;
	size_t			 capa;
	char			**notes;	/* owned */
	size_t			 nn;
	size_t			 capn;
	int			 tripped;	/* the guard tripped */
};

static const char sidech[2] = { 'A', 'B' };

/* ------------------------------------------------------------------ */
/* A list entry's message, in its source. */

static inline const struct guid *
lm_guid(const struct lsrc *src, const struct lmsg *m)
{
	return src->v != NULL ? &src->v[m->i].guid : &src->b[m->i].guid;
}

static inline uint8_t
lm_flags(const struct lsrc *src, const struct lmsg *m)
{
	return src->v != NULL ? src->v[m->i].flags :
	    src->b[m->i].flags[src->s];
}

/* lm_kw of a message with kwfix set: its entry in src->fix. */
static const char *
lm_kwfix(const struct lsrc *src, const struct lmsg *m)
{
	size_t	 lo = 0, hi = src->nfix, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (src->fix[mid].i < m->i)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* list_build put one there for every kwfix. */
	return lo < src->nfix ? src->fix[lo].kw : NULL;
}

/* Its canonical keywords (borrowed), or NULL for none. */
static inline const char *
lm_kw(const struct lsrc *src, const struct lmsg *m)
{
	if (m->kwfix)
		return lm_kwfix(src, m);
	return src->v != NULL ? src->v[m->i].kw : src->b[m->i].kw[src->s];
}

/*
 * The source the comparators of lmsg pointers read GUIDs from (qsort
 * passes no context): set by the pass that sorts, for its one pair and
 * side.
 */
static _Thread_local const struct lsrc *sort_src;

/* ------------------------------------------------------------------ */
/* Small helpers. */

static int
kw_eq(const char *a, const char *b)
{
	if (a == b)
		return 1;	/* both NULL: most messages have no keywords */
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

static int
xstrdup(const char *s, char **out)
{
	*out = NULL;
	if (s == NULL)
		return 0;
	if ((*out = strdup(s)) == NULL)
		return MSYNC_ERR_NOMEM;
	return 0;
}

/* Appends a formatted note.  Returns 0 or MSYNC_ERR_NOMEM. */
static int __attribute__((format(printf, 2, 3)))
note(struct ctx *c, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 r;

	if (c->nn == c->capn) {
		size_t	 ncap = c->capn ? c->capn * 2 : 8;
		void	*p;

		if ((p = reallocarray(c->notes, ncap, sizeof(*c->notes)))
		    == NULL)
			return MSYNC_ERR_NOMEM;
		c->notes = p;
		c->capn = ncap;
	}
	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return MSYNC_ERR_NOMEM;
	c->notes[c->nn++] = s;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Keywords: canonical form is sorted, unique names, one space between. */

struct tok {
	const char	*p;	/* borrowed */
	size_t		 len;
	int		 bit;	/* which input it came from */
};

static int
tok_cmp(const void *pa, const void *pb)
{
	const struct tok	*a = pa, *b = pb;
	size_t			 n = a->len < b->len ? a->len : b->len;
	int			 r;

	if ((r = memcmp(a->p, b->p, n)) != 0)
		return r;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->bit - b->bit;
}

/* Splits s on spaces into t (NULL: just count).  Returns the count. */
static size_t
kw_split(const char *s, int bit, struct tok *t)
{
	size_t	 n = 0, len;

	if (s == NULL)
		return 0;
	while (*s != '\0') {
		if (*s == ' ') {
			s++;
			continue;
		}
		len = strcspn(s, " ");
		if (t != NULL) {
			t[n].p = s;
			t[n].len = len;
			t[n].bit = bit;
		}
		n++;
		s += len;
	}
	return n;
}

/* How kw_combine decides whether a name is in the result. */
enum kwrule {
	KW_MERGE3,	/* in: a b oa ob; one-sided change wins, else a|b */
	KW_ONEWAY	/* in: s d os od; s if only s changed, else d */
};

static int
kw_rule(enum kwrule how, int m)
{
	int	 x = m & 1, y = (m >> 1) & 1, ox = (m >> 2) & 1;
	int	 oy = (m >> 3) & 1, cx = x != ox, cy = y != oy;

	if (how == KW_ONEWAY)
		return cx && !cy ? x : y;
	if (cx && !cy)
		return x;
	if (cy && !cx)
		return y;
	return x | y;
}

/*
 * Combines up to four keyword strings (k[i] may be NULL) name by name
 * with rule how into a canonical string (*out, owned; NULL for none).
 * Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
kw_combine(enum kwrule how, const char *k[4], char **out)
{
	struct tok	*t = NULL;
	size_t		 n = 0, i, j, len = 0;
	char		*s, *w;
	int		 m;

	*out = NULL;
	/* Most messages have no keywords on either side, nor had. */
	for (i = 0; i < 4; i++)
		if (k[i] != NULL && k[i][0] != '\0')
			break;
	if (i == 4)
		return 0;
	for (i = 0; i < 4; i++)
		n += kw_split(k[i], 0, NULL);
	if (n == 0)
		return 0;
	if ((t = calloc(n, sizeof(*t))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0, n = 0; i < 4; i++)
		n += kw_split(k[i], 1 << i, t + n);
	msync_sort(t, n, sizeof(*t), tok_cmp);
	for (i = 0; i < n; i++)
		len += t[i].len + 1;
	if ((s = malloc(len + 1)) == NULL) {
		free(t);
		return MSYNC_ERR_NOMEM;
	}
	w = s;
	for (i = 0; i < n; i = j) {
		m = 0;
		for (j = i; j < n && t[j].len == t[i].len &&
		    memcmp(t[j].p, t[i].p, t[i].len) == 0; j++)
			m |= t[j].bit;
		if (!kw_rule(how, m))
			continue;
		if (w != s)
			*w++ = ' ';
		memcpy(w, t[i].p, t[i].len);
		w += t[i].len;
	}
	*w = '\0';
	free(t);
	if (w == s) {
		free(s);
		return 0;
	}
	*out = s;
	return 0;
}

/* The canonical form of one keyword string (*out owned, NULL for none). */
static int
kw_canon(const char *s, char **out)
{
	const char	*k[4] = { s, s, s, s };

	/* Most messages have no keywords: no split, no sort. */
	if (s == NULL || s[0] == '\0') {
		*out = NULL;
		return 0;
	}
	return kw_combine(KW_MERGE3, k, out);
}

/* Per-bit merge: a bit changed on one side only takes that side's value. */
static uint8_t
flags_merge3(uint8_t a, uint8_t b, uint8_t oa, uint8_t ob)
{
	uint8_t	 ca = a ^ oa, cb = b ^ ob;

	return (uint8_t)((ca & ~cb & a) | (cb & ~ca & b) |
	    (~(ca ^ cb) & (a | b)));
}

/* Per-bit one-way: DST takes SRC's bit if only SRC changed it. */
static uint8_t
flags_oneway(uint8_t s, uint8_t d, uint8_t os, uint8_t od)
{
	uint8_t	 take = (s ^ os) & ~(d ^ od);

	return (uint8_t)((take & s) | (~take & d));
}

/* ------------------------------------------------------------------ */
/* Actions and next entries. */

/*
 * Appends an action; *out (may be NULL) gets its index.
 * Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
act_add(struct ctx *c, enum act_type t, int side, size_t pidx, uint32_t uid,
    const struct guid *g, uint8_t flags, const char *kw, size_t *out)
{
	struct action	*a;
	char		*k = NULL;

	if (xstrdup(kw, &k) != 0)
		return MSYNC_ERR_NOMEM;
	/* Every index into a plan is 32 bits. */
	if (c->na >= UINT32_MAX - 1)
		return MSYNC_ERR_TOOBIG;
	if (c->na == c->capa) {
		/* A quarter more, not double: one action per copy. */
		size_t	 ncap = c->capa + c->capa / 4 + 64;
		void	*p;

		if ((p = reallocarray(c->a, ncap, sizeof(*c->a))) == NULL) {
			free(k);
			return MSYNC_ERR_NOMEM;
		}
		c->a = p;
		c->capa = ncap;
	}
	a = &c->a[c->na];
	memset(a, 0, sizeof(*a));
	a->type = (uint8_t)t;
	a->side = (uint8_t)side;
	a->mbox = (uint32_t)pidx;
	a->uid = uid;
	if (g != NULL)
		a->guid = *g;
	a->flags = flags;
	a->kw = k;
	a->src_side = (uint8_t)side;
	if (out != NULL)
		*out = c->na;
	c->na++;
	return 0;
}

/*
 * Appends a next entry (kw copied).  uid[s] == 0 for an absent side.
 * Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
ent_add(struct pair *p, const struct guid *g, const uint32_t uid[2],
    const uint8_t flags[2], const char *const kw[2])
{
	struct state_msg *e;
	char		*k[2] = { NULL, NULL };
	int		 s;

	for (s = 0; s < 2; s++)
		if (xstrdup(kw[s], &k[s]) != 0) {
			free(k[0]);
			return MSYNC_ERR_NOMEM;
		}
	if (p->ne == p->cape) {
		/* A quarter more, not double: this is the largest thing a
		 * run holds per message (docs/PERFORMANCE.md).  The first
		 * size is the longest list, which the entries nearly always
		 * reach: no growth through many small steps. */
		size_t	 ncap = p->cape + p->cape / 4 + 16;
		void	*q;

		if (p->cape == 0 && p->same != NULL) {
			/* A trusted pair: its unchanged messages are marks,
			 * so entries are few (next_build sizes the array). */
			ncap = 16;
		} else if (p->cape == 0) {
			ncap = p->n[0] > p->n[1] ? p->n[0] : p->n[1];
			if (p->base != NULL && p->base->nmsgs > ncap)
				ncap = p->base->nmsgs;
			/* Room for a few new messages: a fixed 16 was a
			 * sixth more for folders of 100. */
			ncap += ncap / 32 + 4;
		}

		if ((q = reallocarray(p->e, ncap, sizeof(*p->e))) == NULL) {
			free(k[0]);
			free(k[1]);
			return MSYNC_ERR_NOMEM;
		}
		p->e = q;
		p->cape = ncap;
	}
	e = &p->e[p->ne];
	memset(e, 0, sizeof(*e));
	e->guid = *g;
	for (s = 0; s < 2; s++) {
		e->uid[s] = uid[s];
		e->flags[s] = uid[s] != 0 ? flags[s] : 0;
		e->kw[s] = uid[s] != 0 ? k[s] : NULL;
		if (uid[s] == 0)
			free(k[s]);
	}
	e->aux = NONE32;
	p->ne++;
	return 0;
}

/* An entry for message m, present on side s only (a tombstone). */
static int
ent_one(struct pair *p, int s, const struct lmsg *m)
{
	const struct lsrc *src = &p->src[s];
	uint32_t	 uid[2] = { 0, 0 };
	uint8_t		 fl[2] = { 0, 0 };
	const char	*kw[2] = { NULL, NULL };

	uid[s] = m->uid;
	fl[s] = lm_flags(src, m);
	kw[s] = lm_kw(src, m);
	return ent_add(p, lm_guid(src, m), uid, fl, kw);
}

/* An entry for a message on both sides with final flags/keywords. */
static int
ent_both(struct pair *p, const struct lmsg *ma, const struct lmsg *mb,
    const uint8_t fl[2], const char *const kw[2])
{
	uint32_t	 uid[2];

	uid[SIDE_A] = ma->uid;
	uid[SIDE_B] = mb->uid;
	return ent_add(p, lm_guid(&p->src[SIDE_A], ma), uid, fl, kw);
}

/*
 * Copies message m of side s (in pair pidx) to side s ^ 1 of the same
 * pair, with its flags and keywords.  Its next entry (uid m->uid on s,
 * those flags and keywords on both sides) is made by next_build, from
 * the COPY: until then an initial copy holds one action per message,
 * not an action and an entry.
 */
static int
emit_copy(struct ctx *c, size_t pidx, int s, const struct lmsg *m)
{
	const struct lsrc *src = &c->p[pidx].src[s];
	size_t		 ai;
	int		 r;

	if ((r = act_add(c, ACT_COPY, s ^ 1, pidx, 0, lm_guid(src, m),
	    lm_flags(src, m), lm_kw(src, m), &ai)) != 0)
		return r;
	c->a[ai].src_side = (uint8_t)s;
	c->a[ai].src_mbox = (uint32_t)pidx;
	c->a[ai].src_uid = m->uid;
	c->a[ai].next_msg = m->uid;	/* see struct ctx's a */
	return 0;
}

/* Expunges message m on side s. */
static int
emit_expunge(struct ctx *c, size_t pidx, int s, struct lmsg *m)
{
	m->gone = 1;
	return act_add(c, ACT_EXPUNGE, s, pidx, m->uid,
	    lm_guid(&c->p[pidx].src[s], m), 0, NULL, NULL);
}

/*
 * Sets flags/kw of m on side s if they differ from the final ones; mfl
 * and mkw are m's own (the caller has read them).
 */
static inline int
emit_flags(struct ctx *c, size_t pidx, int s, const struct lmsg *m,
    uint8_t mfl, const char *mkw, uint8_t fl, const char *kw)
{
	if (mfl == fl && kw_eq(mkw, kw))
		return 0;
	return act_add(c, ACT_FLAGS, s, pidx, m->uid,
	    lm_guid(&c->p[pidx].src[s], m), fl, kw, NULL);
}

/*
 * Emits the mailbox-level actions (dels 0: creates, renames, setguids;
 * 1: deletes) in act_sort's order: by type, pair, side.
 */
static int
emit_mboxes(struct ctx *c, int dels)
{
	static const enum act_type type[] = { ACT_MBOX_CREATE,
	    ACT_MBOX_RENAME, ACT_MBOX_SETGUID, ACT_MBOX_DELETE };
	size_t	 t, i;
	int	 s, on, r;

	for (t = dels ? 3 : 0; t < (dels ? 4u : 3u); t++)
		for (i = 0; i < c->np; i++)
			for (s = 0; s < 2; s++) {
				const struct pair *p = &c->p[i];

				on = type[t] == ACT_MBOX_CREATE ? p->create[s] :
				    type[t] == ACT_MBOX_RENAME ? p->rename[s] :
				    type[t] == ACT_MBOX_SETGUID ?
				    p->setguid[s] : p->del[s];
				if (on && (r = act_add(c, type[t], s, i, 0,
				    &p->guid, 0, NULL, NULL)) != 0)
					return r;
			}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Current lists. */

static int
lmsg_uid_cmp(const void *pa, const void *pb)
{
	const struct lmsg	*a = pa, *b = pb;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

/*
 * The message with uid in l (n, sorted by uid), or NULL.  *hint is where
 * the last lookup ended: base entries come in uid order on side A, and
 * nearly so on B, so the next uid is nearly always the next message, and
 * a run looks up every message of the base (a binary search each was the
 * largest single cost of planning a changed folder).
 */
static struct lmsg *
lmsg_find(struct lmsg *l, size_t n, uint32_t uid, size_t *hint)
{
	size_t	 lo = 0, hi = n, mid;

	if (*hint < n && l[*hint].uid == uid)
		return &l[(*hint)++];
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (l[mid].uid == uid) {
			*hint = mid + 1;
			return &l[mid];
		}
		if (l[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
bidx_cmp(const void *pa, const void *pb)
{
	const struct state_mbox *a = *(const struct state_mbox *const *)pa;
	const struct state_mbox *b = *(const struct state_mbox *const *)pb;
	int			 r;

	if ((r = guid_cmp(&a->guid, &b->guid)) != 0)
		return r;
	if ((r = strcmp(a->name, b->name)) != 0)
		return r;
	return a < b ? -1 : a > b;
}

/* The base mailbox with GUID g, or NULL; the first of duplicates wins. */
static const struct state_mbox *
base_find(const struct ctx *c, const struct guid *g)
{
	size_t	 lo = 0, hi = c->nb, mid;
	int	 r;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		r = guid_cmp(&c->bidx[mid]->guid, g);
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < c->nb && guid_cmp(&c->bidx[lo]->guid, g) == 0)
		return c->bidx[lo];
	return NULL;
}

/*
 * Notes in src->fix the canonical form of keywords kw (not NULL) of
 * source message i when it is not kw itself (kw_canon's copy is kept,
 * else freed), and sets m->kwfix.  Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
kw_note(struct lsrc *src, struct lmsg *m, size_t i, const char *kw,
    size_t *cap)
{
	char	*k;
	int	 r;

	/* A store's keywords are canonical: nearly always freed here. */
	if ((r = kw_canon(kw, &k)) != 0)
		return r;
	if (k != NULL && strcmp(k, kw) == 0) {
		free(k);
		return 0;
	}
	if (src->nfix == *cap) {
		size_t	 ncap = *cap ? *cap * 2 : 8;
		void	*q;

		if ((q = reallocarray(src->fix, ncap, sizeof(*src->fix)))
		    == NULL) {
			free(k);
			return MSYNC_ERR_NOMEM;
		}
		src->fix = q;
		*cap = ncap;
	}
	src->fix[src->nfix].i = (uint32_t)i;
	src->fix[src->nfix++].kw = k;
	m->kwfix = 1;
	return 0;
}

/*
 * Builds side s's current list of pair p from its view: the view's
 * messages, or the base's when the view is unchanged.
 * Returns 0, MSYNC_ERR_NOMEM, or MSYNC_ERR_PROTO for a bad listing.
 */
static int
list_build(struct ctx *c, struct pair *p, int s)
{
	const struct view_mbox	*v = p->v[s];
	const struct state_mbox	*bm = NULL;
	struct lsrc		*src = &p->src[s];
	struct lmsg		*l;
	size_t			 n = 0, i, cnt, len, capfix = 0;
	int			 r;

	if (v == NULL)
		return 0;
	if (v->unchanged) {
		if ((bm = base_find(c, &v->guid)) == NULL)
			return MSYNC_ERR_PROTO;
		for (i = cnt = 0; i < bm->nmsgs; i++)
			if (bm->msgs[i].uid[s] != 0)
				cnt++;
		len = bm->nmsgs;
	} else
		len = cnt = v->msgs.n;
	if (cnt > MSYNC_MSGS_MAX || len > LSRC_MAX)
		return MSYNC_ERR_TOOBIG;
	if (cnt == 0)
		return 0;
	if ((l = calloc(cnt, sizeof(*l))) == NULL)
		return MSYNC_ERR_NOMEM;
	p->l[s] = l;
	src->s = s;
	if (bm != NULL) {
		src->b = bm->msgs;
		for (i = 0; i < bm->nmsgs; i++) {
			const struct state_msg *m = &bm->msgs[i];

			if (m->uid[s] == 0)
				continue;
			l[n].uid = m->uid[s];
			l[n].i = (uint32_t)i;
			p->n[s] = ++n;
			if ((m->flags[s] & ~FLAG_ALL) != 0)
				return MSYNC_ERR_PROTO;
			if (m->kw[s] != NULL && (r = kw_note(src, &l[n - 1],
			    i, m->kw[s], &capfix)) != 0)
				return r;
		}
	} else {
		src->v = v->msgs.v;
		for (i = 0; i < cnt; i++) {
			const struct msg *m = &v->msgs.v[i];

			l[n].uid = m->uid;
			l[n].i = (uint32_t)i;
			p->n[s] = ++n;
			if ((m->flags & ~FLAG_ALL) != 0)
				return MSYNC_ERR_PROTO;
			if (m->kw != NULL && (r = kw_note(src, &l[n - 1], i,
			    m->kw, &capfix)) != 0)
				return r;
		}
	}
	msync_sort(l, n, sizeof(*l), lmsg_uid_cmp);
	for (i = 0; i < n; i++)
		if (l[i].uid == 0 || (i > 0 && l[i].uid == l[i - 1].uid))
			return MSYNC_ERR_PROTO;
	return 0;
}

/* Orders lmsg pointers of sort_src's list by GUID, then uid. */
static int
lmsg_guid_cmp(const void *pa, const void *pb)
{
	const struct lmsg	*a = *(const struct lmsg *const *)pa;
	const struct lmsg	*b = *(const struct lmsg *const *)pb;
	int			 r;

	if ((r = guid_cmp(lm_guid(sort_src, a), lm_guid(sort_src, b))) != 0)
		return r;
	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

/* A base entry waiting to be rebound, in an order both sides agree on. */
struct lost {
	uint32_t	 uid;		/* its uid on the side that lost it */
	uint32_t	 other;		/* its uid on the other side */
	size_t		 i;		/* index into the base mailbox */
};

static int
lost_cmp(const void *pa, const void *pb)
{
	const struct lost	*a = pa, *b = pb;

	if (a->uid != b->uid)
		return a->uid < b->uid ? -1 : 1;
	if (a->other != b->other)
		return a->other < b->other ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

/*
 * Base entries of p that side s no longer has under their uid (the uid
 * is gone, or holds other content) are bound to an unclaimed message of
 * the same GUID in the same mailbox, if there is one: the message is
 * still there under another number, not expunged and delivered again.
 * That happens when a read-only run handed out uids in memory (its
 * store's index is never written) and a later run numbered the same new
 * files differently.  Deterministic and mirror-symmetric: entries in
 * order of (uid on s, uid on the other side) take candidates in uid
 * order.
 */
static int
base_rebind(struct pair *p, int s)
{
	const struct state_mbox	*b = p->base;
	const struct lsrc	*src = &p->src[s];
	struct lmsg		**cand = NULL;
	struct lost		*lost = NULL;
	size_t			 i, k, n = 0, nlost = 0, lo, hi, mid;
	int			 r = MSYNC_ERR_NOMEM;

	for (i = 0; i < b->nmsgs; i++)
		if (b->msgs[i].uid[s] != 0 && p->cur[s][i] == NONE32)
			nlost++;
	if (nlost == 0)
		return 0;		/* everything bound: the usual case */
	if ((lost = calloc(nlost, sizeof(*lost))) == NULL ||
	    (cand = calloc(p->n[s] + 1, sizeof(*cand))) == NULL)
		goto out;
	for (i = k = 0; i < b->nmsgs; i++)
		if (b->msgs[i].uid[s] != 0 && p->cur[s][i] == NONE32) {
			lost[k].uid = b->msgs[i].uid[s];
			lost[k].other = b->msgs[i].uid[s ^ 1];
			lost[k++].i = i;
		}
	msync_sort(lost, nlost, sizeof(*lost), lost_cmp);
	for (k = 0; k < p->n[s]; k++)
		if (!p->l[s][k].matched)
			cand[n++] = &p->l[s][k];
	sort_src = src;
	msync_sort(cand, n, sizeof(*cand), lmsg_guid_cmp);
	for (k = 0; k < nlost; k++) {
		const struct state_msg	*e = &b->msgs[lost[k].i];

		for (lo = 0, hi = n; lo < hi;) {	/* first of e's GUID */
			mid = lo + (hi - lo) / 2;
			if (guid_cmp(lm_guid(src, cand[mid]), &e->guid) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < n && guid_cmp(lm_guid(src, cand[lo]), &e->guid)
		    == 0; lo++)
			if (!cand[lo]->matched) {
				cand[lo]->matched = 1;
				p->cur[s][lost[k].i] =
				    (uint32_t)(cand[lo] - p->l[s]);
				break;
			}
	}
	r = 0;
out:
	free(lost);
	free(cand);
	return r;
}

/*
 * Matches the base entries of p to the current lists: cur[s][i] is the
 * message of side s that base message i still is (same uid and GUID,
 * and side s's uidvalidity unchanged), else NULL.  Also notes a base
 * that uses a uid twice on one side (p->basedup).
 */
static int
base_match(struct pair *p)
{
	const struct state_mbox	*b = p->base;
	uint32_t		*u;
	size_t			 i, k, hint;
	int			 s, r;

	if (b == NULL || b->nmsgs == 0)
		return 0;
	if ((u = calloc(b->nmsgs, sizeof(*u))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (s = 0; s < 2; s++) {
		for (i = k = 0; i < b->nmsgs; i++)
			if (b->msgs[i].uid[s] != 0)
				u[k++] = b->msgs[i].uid[s];
		msync_sort(u, k, sizeof(*u), msync_u32_cmp);
		for (i = 1; i < k; i++)
			if (u[i] == u[i - 1])
				p->basedup = 1;
	}
	free(u);
	for (s = 0; s < 2; s++) {
		if (p->v[s] == NULL ||
		    p->v[s]->uidvalidity != b->uidvalidity[s])
			continue;
		if ((p->cur[s] = reallocarray(NULL, b->nmsgs,
		    sizeof(*p->cur[s]))) == NULL)
			return MSYNC_ERR_NOMEM;
		memset(p->cur[s], 0xff, b->nmsgs * sizeof(*p->cur[s]));
		hint = 0;
		for (i = 0; i < b->nmsgs; i++) {
			const struct state_msg	*e = &b->msgs[i];
			struct lmsg		*m;

			if (e->uid[s] == 0)
				continue;
			m = lmsg_find(p->l[s], p->n[s], e->uid[s], &hint);
			if (m == NULL || m->matched ||
			    guid_cmp(lm_guid(&p->src[s], m), &e->guid) != 0)
				continue;
			m->matched = 1;
			p->cur[s][i] = (uint32_t)(m - p->l[s]);
		}
		if ((r = base_rebind(p, s)) != 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Pairing. */

static int
vm_guid_cmp(const void *pa, const void *pb)
{
	const struct view_mbox *a = *(const struct view_mbox *const *)pa;
	const struct view_mbox *b = *(const struct view_mbox *const *)pb;
	int			r;

	if ((r = guid_cmp(&a->guid, &b->guid)) != 0)
		return r;
	return strcmp(a->name, b->name);
}

static int
vm_name_cmp(const void *pa, const void *pb)
{
	const struct view_mbox *a = *(const struct view_mbox *const *)pa;
	const struct view_mbox *b = *(const struct view_mbox *const *)pb;

	return strcmp(a->name, b->name);
}

static int
pair_cmp(const void *pa, const void *pb)
{
	const struct pair	*a = pa, *b = pb;

	return guid_cmp(&a->guid, &b->guid);
}

/* Appends a pair of (va, vb), either may be NULL, named by g. */
static int
pair_add(struct ctx *c, size_t *cap, const struct guid *g,
    const struct view_mbox *va, const struct view_mbox *vb, int byname)
{
	struct pair	*p;

	if (c->np == *cap) {
		size_t	 ncap = *cap ? *cap * 2 : 16;
		void	*q;

		if ((q = reallocarray(c->p, ncap, sizeof(*c->p))) == NULL)
			return MSYNC_ERR_NOMEM;
		c->p = q;
		*cap = ncap;
	}
	p = &c->p[c->np++];
	memset(p, 0, sizeof(*p));
	p->guid = *g;
	p->v[SIDE_A] = va;
	p->v[SIDE_B] = vb;
	p->byname = byname;
	p->nextidx = NONE;
	return 0;
}

/*
 * Pairs the two sides' mailboxes: by GUID, then the left-overs by equal
 * name (the pair takes A's GUID in two-way mode, SRC's otherwise; the
 * other side adopts it).  Returns 0, MSYNC_ERR_NOMEM, or MSYNC_ERR_PROTO
 * when one side lists a GUID or a name twice.
 */
static int
pair_mailboxes(struct ctx *c, const struct view views[2])
{
	const struct view_mbox	**g[2] = { NULL, NULL };
	const struct view_mbox	**nm[2] = { NULL, NULL };
	size_t			 n[2], nn[2] = { 0, 0 }, i, j, cap = 0;
	int			 s, r = 0, keeper;

	keeper = c->o->mode == MODE_TWOWAY ? SIDE_A : (int)c->o->src;
	for (s = 0; s < 2; s++) {
		n[s] = views[s].n;
		if (n[s] > MSYNC_MBOX_MAX) {
			r = MSYNC_ERR_TOOBIG;
			goto out;
		}
		if ((g[s] = calloc(n[s] + 1, sizeof(*g[s]))) == NULL ||
		    (nm[s] = calloc(n[s] + 1, sizeof(*nm[s]))) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		for (i = 0; i < n[s]; i++) {
			if (views[s].mb[i].name == NULL) {
				r = MSYNC_ERR_PROTO;
				goto out;
			}
			g[s][i] = nm[s][i] = &views[s].mb[i];
		}
		msync_sort(g[s], n[s], sizeof(*g[s]), vm_guid_cmp);
		msync_sort(nm[s], n[s], sizeof(*nm[s]), vm_name_cmp);
		for (i = 1; i < n[s]; i++)
			if (guid_cmp(&g[s][i]->guid, &g[s][i - 1]->guid) == 0 ||
			    strcmp(nm[s][i]->name, nm[s][i - 1]->name) == 0) {
				r = MSYNC_ERR_PROTO;
				goto out;
			}
	}
	/* By GUID; left-overs are collected (sorted by name) in nm[]. */
	for (i = j = 0; i < n[0] || j < n[1]; ) {
		int cmp = i == n[0] ? 1 : j == n[1] ? -1 :
		    guid_cmp(&g[0][i]->guid, &g[1][j]->guid);

		if (cmp == 0) {
			if ((r = pair_add(c, &cap, &g[0][i]->guid, g[0][i],
			    g[1][j], 0)) != 0)
				goto out;
			i++;
			j++;
		} else if (cmp < 0)
			nm[0][nn[0]++] = g[0][i++];
		else
			nm[1][nn[1]++] = g[1][j++];
	}
	for (s = 0; s < 2; s++)
		msync_sort(nm[s], nn[s], sizeof(*nm[s]), vm_name_cmp);
	/* Left-overs by name. */
	for (i = j = 0; i < nn[0] || j < nn[1]; ) {
		int cmp = i == nn[0] ? 1 : j == nn[1] ? -1 :
		    strcmp(nm[0][i]->name, nm[1][j]->name);

		if (cmp == 0) {
			r = pair_add(c, &cap, &nm[keeper][keeper ? j : i]->guid,
			    nm[0][i], nm[1][j], 1);
			i++;
			j++;
		} else if (cmp < 0) {
			r = pair_add(c, &cap, &nm[0][i]->guid, nm[0][i], NULL,
			    0);
			i++;
		} else {
			r = pair_add(c, &cap, &nm[1][j]->guid, NULL, nm[1][j],
			    0);
			j++;
		}
		if (r != 0)
			goto out;
	}
	if (c->np > 1)
		msync_sort(c->p, c->np, sizeof(*c->p), pair_cmp);
	for (i = 1; i < c->np; i++)
		if (guid_cmp(&c->p[i].guid, &c->p[i - 1].guid) == 0) {
			r = MSYNC_ERR_INTERNAL;	/* cannot happen */
			goto out;
		}
 out:
	for (s = 0; s < 2; s++) {
		free(g[s]);
		free(nm[s]);
	}
	return r;
}

/* The name of pair p for notes: its final or any current name. */
static const char *
pair_name(const struct pair *p)
{
	if (p->final != NULL)
		return p->final;
	return p->v[SIDE_A] != NULL ? p->v[SIDE_A]->name : p->v[SIDE_B]->name;
}

/*
 * Sets up pair p: lists, base lookup, trust; notes why a pair on both
 * sides is not trusted (except on a first sync, which has one note).
 */
static int
pair_setup(struct ctx *c, struct pair *p)
{
	const char	*how;
	int		 s, r;

	for (s = 0; s < 2; s++)
		if ((r = list_build(c, p, s)) != 0)
			return r;
	p->base = base_find(c, &p->guid);
	if ((r = base_match(p)) != 0)
		return r;
	p->trusted = p->base != NULL && !p->byname && !p->basedup;
	for (s = 0; s < 2 && p->trusted; s++) {
		if (p->v[s] == NULL)
			continue;
		if (p->v[s]->uidvalidity != p->base->uidvalidity[s] ||
		    p->v[s]->modseq < p->base->modseq[s])
			p->trusted = 0;
	}
	if (!p->trusted && p->v[SIDE_A] != NULL && p->v[SIDE_B] != NULL) {
		/* A union: the base's matches mean nothing. */
		for (s = 0; s < 2; s++) {
			size_t	 i;

			for (i = 0; i < p->n[s]; i++)
				p->l[s][i].matched = 0;
		}
	}
	if (p->trusted || p->v[SIDE_A] == NULL || p->v[SIDE_B] == NULL ||
	    c->first)
		return 0;
	/* A backup mirrors SRC all the same; the others merge. */
	how = c->o->mode != MODE_BACKUP ? "merging without deletions" :
	    c->o->src == SIDE_A ? "mirroring A onto B without a base" :
	    "mirroring B onto A without a base";
	if (p->base == NULL)
		return note(c, "no sync state for mailbox %s: %s",
		    pair_name(p), how);
	if (p->byname)
		return note(c, "mailbox %s has different mailbox GUIDs on A "
		    "and B: %s", pair_name(p), how);
	if (p->basedup)
		return note(c, "sync state of mailbox %s is inconsistent: %s",
		    pair_name(p), how);
	for (s = 0; s < 2; s++)
		if (p->v[s]->uidvalidity != p->base->uidvalidity[s])
			return note(c, "uidvalidity of %s changed on %c: %s",
			    pair_name(p), sidech[s], how);
	for (s = 0; s < 2; s++)
		if (p->v[s]->modseq < p->base->modseq[s])
			return note(c, "mailbox %s went back in time on %c "
			    "(modseq %llu < %llu): %s",
			    pair_name(p), sidech[s],
			    (unsigned long long)p->v[s]->modseq,
			    (unsigned long long)p->base->modseq[s], how);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Mailbox decisions. */

/*
 * 1 if side s's list of p has a message the base does not know (by uid
 * and GUID, under an unchanged uidvalidity: base_match marked the rest).
 */
static int
has_new(const struct pair *p, int s)
{
	size_t	 i;

	if (p->base == NULL)
		return 1;
	for (i = 0; i < p->n[s]; i++)
		if (!p->l[s][i].matched)
			return 1;
	return 0;
}

/*
 * A backup's DST has mailbox p and SRC does not: it goes.  INBOX, the
 * root of a store, cannot be deleted: its messages are expunged instead
 * (an mbox directory or IMAP account as SRC may have no INBOX).
 */
static void
dst_remove(struct pair *p, int s)
{
	if (strcmp(p->v[s]->name, "INBOX") == 0)
		p->expall = 1;
	else
		p->del[s] = 1;
	p->final = NULL;
}

/*
 * Decides what happens to pair p at mailbox level: creates, deletes,
 * whether it stays in the base, its final name.  Messages come later.
 */
static int
mbox_decide(struct ctx *c, struct pair *p)
{
	enum sync_mode	 mode = c->o->mode;
	int		 src = c->o->src, dst = src ^ 1, s, t;

	if (p->v[SIDE_A] != NULL && p->v[SIDE_B] != NULL) {
		const char *na = p->v[SIDE_A]->name, *nb = p->v[SIDE_B]->name;

		p->keep = 1;
		if (p->byname)
			p->setguid[mode == MODE_TWOWAY ? SIDE_B : dst] = 1;
		if (strcmp(na, nb) == 0) {
			p->final = na;
			return 0;
		}
		if (mode != MODE_TWOWAY)
			p->final = p->v[src]->name;
		else if (p->base != NULL && strcmp(na, p->base->name) == 0)
			p->final = nb;
		else
			p->final = na;
		p->rename[strcmp(p->final, na) == 0 ? SIDE_B : SIDE_A] = 1;
		return 0;
	}
	s = p->v[SIDE_A] != NULL ? SIDE_A : SIDE_B;
	t = s ^ 1;
	p->final = p->v[s]->name;
	if (p->base != NULL && c->emptied[t]) {
		if (mode == MODE_TWOWAY || s == src)
			p->create[t] = p->copyall = p->keep = 1;
		return 0;
	}
	if (p->base != NULL) {
		/* In the base: side t deleted it since. */
		if (mode == MODE_TWOWAY) {
			if (!has_new(p, s)) {
				p->del[s] = 1;
				p->final = NULL;
				return 0;
			}
			p->create[t] = p->copyall = p->keep = 1;
			return note(c, "kept mailbox %s: deleted on %c but has "
			    "new mail on %c", p->v[s]->name, sidech[t],
			    sidech[s]);
		}
		if (mode == MODE_BACKUP) {
			if (s == src)
				p->create[t] = p->copyall = p->keep = 1;
			else
				dst_remove(p, s);
			return 0;
		}
		/* MODE_ONEWAY */
		if (s != src)
			return 0;
		p->keep = 1;	/* tombstones keep it deleted on DST */
		if (!has_new(p, s))
			return 0;
		p->create[t] = p->copyall = p->newonly = 1;
		return note(c, "recreated mailbox %s on %c: deleted there but "
		    "has new mail on %c", p->v[s]->name, sidech[t], sidech[s]);
	}
	/* New on side s. */
	if (mode == MODE_TWOWAY || s == src) {
		p->create[t] = p->copyall = p->keep = 1;
		return 0;
	}
	if (mode == MODE_BACKUP)	/* even on a first sync (issue 10) */
		dst_remove(p, s);
	return 0;
}

/* A create or rename of pair pidx to name on side s, for conflicts. */
struct target {
	const char	*name;	/* borrowed */
	int		 side;
	size_t		 pidx;
	int		 bad;	/* conflicts */
};

static int
target_cmp(const void *pa, const void *pb)
{
	const struct target	*a = pa, *b = pb;
	int			 r;

	if (a->side != b->side)
		return a->side - b->side;
	if ((r = strcmp(a->name, b->name)) != 0)
		return r;
	return a->pidx < b->pidx ? -1 : a->pidx > b->pidx;
}

static int
target_pidx_cmp(const void *pa, const void *pb)
{
	const struct target	*a = pa, *b = pb;

	if (a->pidx != b->pidx)
		return a->pidx < b->pidx ? -1 : 1;
	return a->side - b->side;
}

static int
str_cmp(const void *pa, const void *pb)
{
	return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/*
 * Name conflicts: a create or rename to a name that a mailbox on that
 * side has now (creates and renames run before deletes), or that an
 * earlier pair already takes there, is skipped with a note.  A skipped
 * rename leaves both names; the base records the name the renamed side
 * still has, so the next run decides the same way.  A skipped create
 * leaves the pair out of the base, so the next run creates it.
 */
static int
names_resolve(struct ctx *c)
{
	struct target	*t = NULL;
	const char	**cur[2] = { NULL, NULL };
	size_t		 nt = 0, ncur[2] = { 0, 0 }, i, k;
	int		 s, r = 0;

	for (s = 0; s < 2; s++) {
		if ((cur[s] = calloc(c->np + 1, sizeof(*cur[s]))) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
	}
	if ((t = calloc(2 * c->np + 1, sizeof(*t))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < c->np; i++) {
		struct pair *p = &c->p[i];

		for (s = 0; s < 2; s++) {
			if (p->v[s] != NULL)
				cur[s][ncur[s]++] = p->v[s]->name;
			if (p->create[s] || p->rename[s]) {
				t[nt].name = p->final;
				t[nt].side = s;
				t[nt].pidx = i;
				nt++;
			}
		}
	}
	for (s = 0; s < 2; s++)
		msync_sort(cur[s], ncur[s], sizeof(*cur[s]), str_cmp);
	msync_sort(t, nt, sizeof(*t), target_cmp);
	for (i = 0; i < nt; i++) {
		if (bsearch(&t[i].name, cur[t[i].side], ncur[t[i].side],
		    sizeof(*cur[0]), str_cmp) != NULL)
			t[i].bad = 1;
	}
	for (i = 0; i < nt; i = k) {
		int taken = 0;

		for (k = i; k < nt && t[k].side == t[i].side &&
		    strcmp(t[k].name, t[i].name) == 0; k++) {
			if (t[k].bad)
				continue;
			if (taken)
				t[k].bad = 1;
			taken = 1;
		}
	}
	/* Notes in pair order. */
	msync_sort(t, nt, sizeof(*t), target_pidx_cmp);
	for (i = 0; i < nt && r == 0; i++) {
		struct pair	*p = &c->p[t[i].pidx];
		int		 ts = t[i].side;

		if (!t[i].bad)
			continue;
		if (p->rename[ts]) {
			p->rename[ts] = 0;
			r = note(c, "cannot rename mailbox %s to %s on %c: the "
			    "name is in use", p->v[ts]->name, p->final,
			    sidech[ts]);
			p->final = p->v[ts]->name;
		} else {
			p->create[ts] = p->keep = p->copyall = 0;
			p->newonly = 0;
			r = note(c, "cannot create mailbox %s on %c yet: the "
			    "name is in use; run again", p->final, sidech[ts]);
		}
	}
 out:
	free(t);
	free(cur[0]);
	free(cur[1]);
	return r;
}

/* ------------------------------------------------------------------ */
/* Message decisions. */

/*
 * Final flags and keywords of a message paired on both sides (a new
 * pair, or a pair in a union): two-way: set wins, keywords union;
 * backup: SRC's; one-way: SRC's for a new pair, DST|SRC in a union.
 * mf[], mk[]: the message's flags and keywords on each side; fl[], kw[]
 * per side; kw[] owned by the caller.
 */
static int
merge_new(struct ctx *c, const uint8_t mf[2], const char *const mk[2],
    int isunion, uint8_t fl[2], char *kw[2])
{
	const char	*k[4];
	int		 src = c->o->src, dst = src ^ 1, r;

	kw[0] = kw[1] = NULL;
	if (c->o->mode == MODE_TWOWAY) {
		fl[0] = fl[1] = mf[0] | mf[1];
		k[0] = k[2] = mk[0];
		k[1] = k[3] = mk[1];
		if ((r = kw_combine(KW_MERGE3, k, &kw[0])) != 0)
			return r;
		return xstrdup(kw[0], &kw[1]);
	}
	fl[src] = mf[src];
	if ((r = xstrdup(mk[src], &kw[src])) != 0)
		return r;
	if (c->o->mode == MODE_BACKUP || !isunion) {
		fl[dst] = mf[src];
		return xstrdup(mk[src], &kw[dst]);
	}
	fl[dst] = mf[src] | mf[dst];
	k[0] = k[2] = mk[src];
	k[1] = k[3] = mk[dst];
	return kw_combine(KW_MERGE3, k, &kw[dst]);
}

/*
 * The messages of p that no base entry claimed: paired across sides by
 * GUID as a multiset (in uid order), the rest copied or expunged by the
 * mode's rules.  isunion: p is not trusted, so nothing is expunged.
 */
static int
plan_new(struct ctx *c, struct pair *p, size_t pidx, int isunion)
{
	struct lmsg	**x[2] = { NULL, NULL };
	size_t		 n[2] = { 0, 0 }, i, j;
	enum sync_mode	 mode = c->o->mode;
	int		 s, r = 0, src = c->o->src;

	for (s = 0; s < 2; s++) {
		if (p->n[s] == 0)
			continue;
		if ((x[s] = calloc(p->n[s], sizeof(*x[s]))) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		for (i = 0; i < p->n[s]; i++)
			if (!p->l[s][i].matched)
				x[s][n[s]++] = &p->l[s][i];
		sort_src = &p->src[s];
		msync_sort(x[s], n[s], sizeof(*x[s]), lmsg_guid_cmp);
	}
	for (i = j = 0; r == 0 && (i < n[0] || j < n[1]); ) {
		int		 cmp = i == n[0] ? 1 : j == n[1] ? -1 :
		    guid_cmp(lm_guid(&p->src[0], x[0][i]),
		    lm_guid(&p->src[1], x[1][j]));
		struct lmsg	*m;

		if (cmp == 0) {
			const char	*mk[2];
			uint8_t		 fl[2], mf[2];
			char		*kw[2];

			mf[0] = lm_flags(&p->src[0], x[0][i]);
			mf[1] = lm_flags(&p->src[1], x[1][j]);
			mk[0] = lm_kw(&p->src[0], x[0][i]);
			mk[1] = lm_kw(&p->src[1], x[1][j]);
			x[0][i]->matched = x[1][j]->matched = 1;
			if ((r = merge_new(c, mf, mk, isunion, fl, kw)) == 0 &&
			    (r = emit_flags(c, pidx, SIDE_A, x[0][i], mf[0],
			    mk[0], fl[0], kw[0])) == 0 &&
			    (r = emit_flags(c, pidx, SIDE_B, x[1][j], mf[1],
			    mk[1], fl[1], kw[1])) == 0)
				r = ent_both(p, x[0][i], x[1][j], fl,
				    (const char *const *)kw);
			free(kw[0]);
			free(kw[1]);
			i++;
			j++;
			continue;
		}
		s = cmp < 0 ? SIDE_A : SIDE_B;
		m = cmp < 0 ? x[0][i++] : x[1][j++];
		m->matched = 1;
		if (mode == MODE_TWOWAY || s == src)
			r = emit_copy(c, pidx, s, m);
		else if (mode == MODE_BACKUP && !isunion)
			r = emit_expunge(c, pidx, s, m);
		/* ONEWAY new on DST, or DST's extra in a union: nothing. */
	}
 out:
	free(x[0]);
	free(x[1]);
	return r;
}

/* Two keywords strings the same as the next base stores them. */
static int
kw_same(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/*
 * 1 if base message e, still cur[] on both sides, goes into the next
 * base with flags fl and keywords kw as it is: the entry ent_both would
 * make equals e, field by field (the GUIDs match: base_match paired
 * them by it).
 */
static int
ent_is_base(const struct state_msg *e, struct lmsg *const cur[2],
    const uint8_t fl[2], char *const kw[2])
{
	int	 s;

	for (s = 0; s < 2; s++)
		if (cur[s]->uid != e->uid[s] || fl[s] != e->flags[s] ||
		    !kw_same(kw[s], e->kw[s]))
			return 0;
	return 1;
}

/*
 * Both sides have base message i, e (cur[s] = current): flags rules.
 * An unchanged message gets a mark in p->same, not an entry.
 */
static int
plan_both(struct ctx *c, struct pair *p, size_t pidx, size_t i,
    const struct state_msg *e, struct lmsg *cur[2])
{
	const char	*k[4], *ck[2];
	char		*kw[2] = { NULL, NULL };
	uint8_t		 fl[2], cf[2];
	int		 src = c->o->src, dst = src ^ 1, s, r;

	for (s = 0; s < 2; s++) {
		cf[s] = lm_flags(&p->src[s], cur[s]);
		ck[s] = lm_kw(&p->src[s], cur[s]);
	}
	switch (c->o->mode) {
	case MODE_TWOWAY:
		fl[0] = fl[1] = flags_merge3(cf[0], cf[1], e->flags[0],
		    e->flags[1]);
		k[0] = ck[0];
		k[1] = ck[1];
		k[2] = e->kw[0];
		k[3] = e->kw[1];
		if ((r = kw_combine(KW_MERGE3, k, &kw[0])) != 0 ||
		    (r = xstrdup(kw[0], &kw[1])) != 0)
			goto out;
		break;
	case MODE_BACKUP:
		fl[0] = fl[1] = cf[src];
		if ((r = xstrdup(ck[src], &kw[0])) != 0 ||
		    (r = xstrdup(ck[src], &kw[1])) != 0)
			goto out;
		break;
	default:
		fl[src] = cf[src];
		fl[dst] = flags_oneway(cf[src], cf[dst], e->flags[src],
		    e->flags[dst]);
		k[0] = ck[src];
		k[1] = ck[dst];
		k[2] = e->kw[src];
		k[3] = e->kw[dst];
		if ((r = xstrdup(ck[src], &kw[src])) != 0 ||
		    (r = kw_combine(KW_ONEWAY, k, &kw[dst])) != 0)
			goto out;
		break;
	}
	if ((r = emit_flags(c, pidx, SIDE_A, cur[0], cf[0], ck[0], fl[0],
	    kw[0])) != 0 ||
	    (r = emit_flags(c, pidx, SIDE_B, cur[1], cf[1], ck[1], fl[1],
	    kw[1])) != 0)
		goto out;
	if (ent_is_base(e, cur, fl, kw))
		p->same[i / 64] |= (uint64_t)1 << (i % 64);
	else
		r = ent_both(p, cur[0], cur[1], fl, (const char *const *)kw);
 out:
	free(kw[0]);
	free(kw[1]);
	return r;
}

/* A trusted pair on both sides: the base's messages, then the new ones. */
static int
plan_trusted(struct ctx *c, struct pair *p, size_t pidx)
{
	const struct state_mbox	*b = p->base;
	enum sync_mode		 mode = c->o->mode;
	size_t			 i;
	int			 s, t, r, src = c->o->src;

	if (b->nmsgs > 0 && (p->same = calloc((b->nmsgs + 63) / 64,
	    sizeof(*p->same))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < b->nmsgs; i++) {
		const struct state_msg	*e = &b->msgs[i];
		struct lmsg		*cur[2];

		for (s = 0; s < 2; s++)
			cur[s] = p->cur[s] == NULL || p->cur[s][i] == NONE32 ?
			    NULL : &p->l[s][p->cur[s][i]];
		if (cur[0] != NULL && cur[1] != NULL) {
			if ((r = plan_both(c, p, pidx, i, e, cur)) != 0)
				return r;
			continue;
		}
		if (cur[0] == NULL && cur[1] == NULL)
			continue;	/* gone on both: drop */
		s = cur[0] != NULL ? SIDE_A : SIDE_B;
		t = s ^ 1;
		if (mode == MODE_TWOWAY) {
			if (e->uid[t] != 0)	/* t expunged it */
				r = emit_expunge(c, pidx, s, cur[s]);
			else			/* a tombstone */
				r = ent_one(p, s, cur[s]);
		} else if (mode == MODE_BACKUP) {
			if (s == src)
				r = emit_copy(c, pidx, s, cur[s]);
			else
				r = emit_expunge(c, pidx, s, cur[s]);
		} else
			r = ent_one(p, s, cur[s]);	/* stays one-sided */
		if (r != 0)
			return r;
	}
	return plan_new(c, p, pidx, 0);
}

/* A pair on one side only, created on the other: copy its messages. */
static int
plan_single(struct ctx *c, struct pair *p, size_t pidx)
{
	size_t	 i;
	int	 s = p->v[SIDE_A] != NULL ? SIDE_A : SIDE_B, r = 0;

	for (i = 0; i < p->n[s] && r == 0; i++) {
		struct lmsg *m = &p->l[s][i];

		if (p->del[s])
			m->gone = 1;
		else if (p->expall)
			r = emit_expunge(c, pidx, s, m);
		else if (p->copyall && !(p->newonly && m->matched))
			r = emit_copy(c, pidx, s, m);
		else if (p->keep)
			r = ent_one(p, s, m);	/* one-way: stays deleted */
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Sorting, local copies, the guard, next, the digest. */

/*
 * The order of the actions: type, mailbox, side, then the message's uid
 * on the side it is read from (a copy's source uid, as emitted: the sort
 * comes before local_copies points copies elsewhere), then creation
 * order (act_sort is stable).
 */
static int
act_cmp(const struct action *a, const struct action *b)
{
	uint32_t	 ka, kb;

	if (a->type != b->type)
		return a->type < b->type ? -1 : 1;
	if (a->mbox != b->mbox)
		return a->mbox < b->mbox ? -1 : 1;
	if (a->side != b->side)
		return a->side < b->side ? -1 : 1;
	ka = a->type == ACT_COPY ? a->src_uid : a->uid;
	kb = b->type == ACT_COPY ? b->src_uid : b->uid;
	return ka < kb ? -1 : ka > kb;
}

/*
 * Sorts the n actions at a by act_cmp, ties in creation order.  A
 * stable merge sort of 32-bit indices, then the actions permuted in
 * place: 8 bytes an action while sorting, where sorting the actions
 * themselves (with a sort key and creation number in each) took 16
 * bytes in every action and 16 more in qsort's buffer.  plan_build
 * sorts each pair's actions as they are made, so that the whole list
 * is nearly always in order already when it is sorted at the end (an
 * initial copy's: mailbox creates, then every pair's copies): no
 * indices for every action of the store.  Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
act_sort(struct action *a, size_t n)
{
	struct action	 t;
	uint32_t	*mem, *x, *y, *z;
	size_t		 w, lo, mid, hi, i, j, k;

	for (i = 1; i < n; i++)
		if (act_cmp(&a[i - 1], &a[i]) > 0)
			break;
	if (i >= n)
		return 0;
	if ((mem = reallocarray(NULL, n, 2 * sizeof(*mem))) == NULL)
		return MSYNC_ERR_NOMEM;
	x = mem;
	y = mem + n;
	for (i = 0; i < n; i++)
		x[i] = (uint32_t)i;
	for (w = 1; w < n; w *= 2) {
		for (lo = 0; lo < n; lo += 2 * w) {
			mid = lo + w < n ? lo + w : n;
			hi = mid + w < n ? mid + w : n;
			i = lo;
			j = mid;
			k = lo;
			while (i < mid && j < hi)
				y[k++] = act_cmp(&a[x[j]], &a[x[i]]) < 0 ?
				    x[j++] : x[i++];
			while (i < mid)
				y[k++] = x[i++];
			while (j < hi)
				y[k++] = x[j++];
		}
		z = x;
		x = y;
		y = z;
	}
	/* x[i]: the action that belongs at i.  Follow each cycle once. */
	for (i = 0; i < n; i++) {
		if (x[i] == i)
			continue;
		t = a[i];
		j = i;
		while ((k = x[j]) != i) {
			a[j] = a[k];
			x[j] = (uint32_t)j;
			j = k;
		}
		a[j] = t;
		x[j] = (uint32_t)j;
	}
	free(mem);
	return 0;
}

/* One message of one side, anywhere: a candidate local copy source. */
struct cand {
	struct lmsg	*m;	/* borrowed */
	uint32_t	 pidx;
};

/* The pairs and side cand_cmp reads GUIDs from (see sort_src). */
static _Thread_local const struct ctx *cand_ctx;
static _Thread_local int cand_side;

static const struct guid *
cand_guid(const struct ctx *c, int s, const struct cand *x)
{
	return lm_guid(&c->p[x->pidx].src[s], x->m);
}

static int
cand_cmp(const void *pa, const void *pb)
{
	const struct cand	*a = pa, *b = pb;
	int			 r;

	if ((r = guid_cmp(cand_guid(cand_ctx, cand_side, a),
	    cand_guid(cand_ctx, cand_side, b))) != 0)
		return r;
	if (a->m->gone != b->m->gone)
		return a->m->gone ? -1 : 1;
	if (a->pidx != b->pidx)
		return a->pidx < b->pidx ? -1 : 1;
	return a->m->uid < b->m->uid ? -1 : a->m->uid > b->m->uid;
}

/*
 * The GUIDs of the plan's copies, as an open-addressing hash set: a GUID
 * is a content hash, so its first bytes are a good hash already.
 */
struct guidset {
	const struct guid **slot;	/* owned; NULL: empty */
	size_t		 mask;		/* slots - 1; 0: no set */
};

static size_t
guidset_pos(const struct guidset *set, const struct guid *g)
{
	uint64_t	 h;
	size_t		 pos;

	memcpy(&h, g->b, sizeof(h));
	for (pos = (size_t)h & set->mask; set->slot[pos] != NULL &&
	    guid_cmp(set->slot[pos], g) != 0; pos = (pos + 1) & set->mask)
		;
	return pos;
}

static int
guidset_has(const struct guidset *set, const struct guid *g)
{
	return set->slot[guidset_pos(set, g)] != NULL;
}

/*
 * Fills set with the GUIDs of c's COPY actions to side s (mask 0 if
 * none).  A side that lists no message at all (the destination of an
 * initial copy) has nothing a copy could take: no set, instead of one
 * slot pair per message of the store.
 */
static int
guidset_build(const struct ctx *c, int s, struct guidset *set)
{
	size_t	 i, n = 0, sz, listed = 0;

	for (i = 0; i < c->np && listed == 0; i++)
		listed += c->p[i].n[s];
	if (listed == 0)
		return 0;
	for (i = 0; i < c->na; i++)
		if (c->a[i].type == ACT_COPY && c->a[i].side == s)
			n++;
	if (n == 0)
		return 0;
	for (sz = 16; sz < n * 2; sz *= 2)
		;
	if ((set->slot = calloc(sz, sizeof(*set->slot))) == NULL)
		return MSYNC_ERR_NOMEM;
	set->mask = sz - 1;
	for (i = 0; i < c->na; i++)
		if (c->a[i].type == ACT_COPY && c->a[i].side == s)
			set->slot[guidset_pos(set, &c->a[i].guid)] =
			    &c->a[i].guid;
	return 0;
}

/*
 * Points every COPY at a message its own side already has, where one
 * exists, preferring one this plan removes (a move) and not yet used.
 * Actions must be sorted already, so the choice is deterministic.
 */
static int
local_copies(struct ctx *c)
{
	struct guidset	 set[2] = { { NULL, 0 }, { NULL, 0 } };
	struct cand	*v[2] = { NULL, NULL };
	size_t		 n[2] = { 0, 0 }, tot[2] = { 0, 0 }, i, j, k;
	int		 s, r = 0;

	/*
	 * A copy to side s takes a message of side s: one set per side, so
	 * the source's messages (whose GUIDs every copy has) are not all
	 * taken for candidates.
	 */
	for (s = 0; s < 2; s++)
		if ((r = guidset_build(c, s, &set[s])) != 0)
			goto out;
	if (set[0].mask == 0 && set[1].mask == 0)
		goto out;	/* nothing to look for */
	/*
	 * Only messages some copy may take: a few, usually.  Counted (and
	 * marked) first, so the candidates take their number, not one per
	 * listed message.
	 */
	for (s = 0; s < 2; s++) {
		if (set[s].mask == 0)
			continue;
		for (i = 0; i < c->np; i++)
			for (j = 0; j < c->p[i].n[s]; j++) {
				struct lmsg *m = &c->p[i].l[s][j];

				m->cand = guidset_has(&set[s],
				    lm_guid(&c->p[i].src[s], m));
				tot[s] += m->cand;
			}
	}
	for (s = 0; s < 2; s++) {
		if ((v[s] = calloc(tot[s] + 1, sizeof(*v[s]))) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		if (set[s].mask == 0)
			continue;
		for (i = 0; i < c->np; i++)
			for (j = 0; j < c->p[i].n[s]; j++) {
				if (!c->p[i].l[s][j].cand)
					continue;
				v[s][n[s]].m = &c->p[i].l[s][j];
				v[s][n[s]++].pidx = (uint32_t)i;
			}
		cand_ctx = c;
		cand_side = s;
		msync_sort(v[s], n[s], sizeof(*v[s]), cand_cmp);
	}
	for (i = 0; i < c->na; i++) {
		struct action	*a = &c->a[i];
		struct cand	*cv;
		size_t		 lo, hi, mid, pick;

		if (a->type != ACT_COPY)
			continue;
		s = a->side;
		cv = v[s];
		lo = 0;
		hi = n[s];
		while (lo < hi) {
			mid = lo + (hi - lo) / 2;
			if (guid_cmp(cand_guid(c, s, &cv[mid]), &a->guid) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == n[s] ||
		    guid_cmp(cand_guid(c, s, &cv[lo]), &a->guid) != 0)
			continue;
		pick = lo;
		for (k = lo; k < n[s] && cv[k].m->gone &&
		    guid_cmp(cand_guid(c, s, &cv[k]), &a->guid) == 0; k++)
			if (!cv[k].m->used) {
				pick = k;
				break;
			}
		cv[pick].m->used = 1;
		a->src_side = (uint8_t)s;
		a->src_mbox = cv[pick].pidx;
		a->src_uid = cv[pick].m->uid;
	}
 out:
	free(set[0].slot);
	free(set[1].slot);
	free(v[0]);
	free(v[1]);
	return r;
}

/*
 * The mass-deletion guard: per side and mailbox, the delete of a mailbox
 * holding mail, or removing more than half of a mailbox of at least
 * GUARD_MIN messages, trips it (one note per mailbox) unless forced.
 * A message that a local copy reads (a move) does not count: its content
 * stays on that side.
 */
static int
guard(struct ctx *c)
{
	size_t	 i, j, lost;
	int	 s, r;

	if (c->o->force_deletes)
		return 0;
	for (i = 0; i < c->np; i++) {
		struct pair *p = &c->p[i];

		for (s = 0; s < 2; s++) {
			for (j = lost = 0; j < p->n[s]; j++)
				if (p->l[s][j].gone && !p->l[s][j].used)
					lost++;
			if (p->del[s] && lost > 0)
				r = note(c, "would delete mailbox %s on %c "
				    "with %zu messages; use --force-deletes",
				    p->v[s]->name, sidech[s], lost);
			else if (p->n[s] >= GUARD_MIN && lost > p->n[s] - lost)
				r = note(c, "would expunge %zu of %zu messages "
				    "in %s on %c; use --force-deletes", lost,
				    p->n[s], p->v[s]->name, sidech[s]);
			else
				continue;
			if (r != 0)
				return r;
			c->tripped = 1;
		}
	}
	return 0;
}

/* Frees p's current lists, their sources' keywords and base matching. */
static void
lists_free(struct pair *p)
{
	size_t	 j;
	int	 s;

	for (s = 0; s < 2; s++) {
		for (j = 0; j < p->src[s].nfix; j++)
			free(p->src[s].fix[j].kw);
		free(p->src[s].fix);
		memset(&p->src[s], 0, sizeof(p->src[s]));
		free(p->l[s]);
		free(p->cur[s]);
		p->l[s] = NULL;
		p->cur[s] = NULL;
		p->n[s] = 0;
	}
}

/*
 * Appends to p's entries those of its COPYs, c->a[lo..hi): the message
 * on the side it was planned from (emit_copy left that uid in next_msg),
 * with the COPY's flags and keywords on both sides, the other side's
 * uid to be filled in by the brain.  Each entry's aux names its COPY.
 * Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
copy_entries(struct ctx *c, struct pair *p, size_t lo, size_t hi)
{
	struct state_msg	*e;
	size_t			 k;

	if (p->ne + (hi - lo) > p->cape) {
		size_t	 ncap = p->ne + (hi - lo);
		void	*q;

		if ((q = reallocarray(p->e, ncap, sizeof(*p->e))) == NULL)
			return MSYNC_ERR_NOMEM;
		p->e = q;
		p->cape = ncap;
	}
	for (k = lo; k < hi; k++) {
		struct action	*a = &c->a[k];

		e = &p->e[p->ne];
		memset(e, 0, sizeof(*e));
		e->guid = a->guid;
		e->uid[a->side ^ 1] = a->next_msg;
		e->flags[0] = e->flags[1] = a->flags;
		if (xstrdup(a->kw, &e->kw[0]) != 0 ||
		    xstrdup(a->kw, &e->kw[1]) != 0) {
			free(e->kw[0]);
			return MSYNC_ERR_NOMEM;
		}
		e->aux = (uint32_t)k;
		a->next_msg = 0;
		p->ne++;
	}
	return 0;
}

/*
 * 1 if entry a comes before b in the next base's order (state_msg_cmp's,
 * whose first keys are the uids: two entries of a pair differ in them).
 */
static inline int
uids_before(const struct state_msg *a, const struct state_msg *b)
{
	return a->uid[0] != b->uid[0] ? a->uid[0] < b->uid[0] :
	    a->uid[1] < b->uid[1];
}

/*
 * Merges into p's entries the base messages its planning marked as going
 * into the next base unchanged (p->same), and frees the marks.  Both are
 * in the next base's order (the base's, and plan_trusted's walk of it),
 * so the result nearly is too and msync_sort has little to do: the new
 * messages' entries, then the COPYs', are a short tail it merges in.
 * Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
same_entries(struct pair *p)
{
	const struct state_mbox	*b = p->base;
	struct state_msg	*v = NULL, *e;
	size_t			 i, j = 0, n = 0, k = 0;
	int			 r = 0, s;

	if (p->same == NULL)
		return 0;
	for (i = 0; i < (b->nmsgs + 63) / 64; i++)
		n += (size_t)__builtin_popcountll(p->same[i]);
	if (n == 0)
		goto out;
	if ((v = reallocarray(NULL, n + p->ne, sizeof(*v))) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < b->nmsgs; i++) {
		if (!(p->same[i / 64] >> (i % 64) & 1))
			continue;
		for (; j < p->ne && uids_before(&p->e[j], &b->msgs[i]); j++)
			v[k++] = p->e[j];
		e = &v[k];
		*e = b->msgs[i];
		e->kw[0] = e->kw[1] = NULL;
		e->aux = MARK32;	/* its kw are v's: see out */
		for (s = 0; s < 2; s++)
			if (b->msgs[i].kw[s] != NULL &&
			    (e->kw[s] = strdup(b->msgs[i].kw[s])) == NULL) {
				r = MSYNC_ERR_NOMEM;
				goto out;
			}
		k++;
	}
	for (; j < p->ne; j++)
		v[k++] = p->e[j];
	for (j = 0; j < k; j++)
		if (v[j].aux == MARK32)
			v[j].aux = NONE32;
	free(p->e);
	p->e = v;
	p->ne = p->cape = k;
	v = NULL;
 out:
	if (v != NULL) {
		/* p->e's entries are still p's; the marks' copies are v's. */
		for (j = 0; j <= k && j < n + p->ne; j++)
			if (v[j].aux == MARK32) {
				free(v[j].kw[0]);
				free(v[j].kw[1]);
			}
		free(v);
	}
	free(p->same);
	p->same = NULL;
	return r;
}

/*
 * Flags per pair (bit s): the plan changes something of the pair on
 * side s, or a local copy reads a message of it there.  *out is owned by
 * the caller.  Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
touched_pairs(const struct ctx *c, uint8_t **out)
{
	uint8_t	*t;
	size_t	 i;

	if ((t = calloc(c->np + 1, 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < c->na; i++) {
		const struct action *a = &c->a[i];

		if (a->mbox < c->np)
			t[a->mbox] |= (uint8_t)(1 << a->side);
		if (a->type == ACT_COPY && a->src_side == a->side &&
		    a->src_mbox < c->np)
			t[a->src_mbox] |= (uint8_t)(1 << a->src_side);
	}
	*out = t;
	return 0;
}

/*
 * 1 if the next base's messages of a pair, next[0..n), hold on side s
 * exactly what list did (uids, flags, keywords, as the brain's final
 * check compares them: no keywords and "" alike).
 */
static int
next_is_list(const struct state_msg *next, size_t n, int s,
    const struct msglist *list)
{
	size_t	 i, k = 0, hint = 0;

	for (i = 0; i < n; i++) {
		struct msg	 key;
		const struct msg *m;

		if (next[i].uid[s] == 0)
			continue;
		k++;
		key.uid = next[i].uid[s];
		/* next is in uid order on A, and nearly always on B too. */
		if (hint < list->n && list->v[hint].uid == key.uid)
			m = &list->v[hint];
		else
			m = bsearch(&key, list->v, list->n, sizeof(*list->v),
			    msync_msg_uid_cmp);
		if (m != NULL)
			hint = (size_t)(m - list->v) + 1;
		if (m == NULL || m->flags != next[i].flags[s] ||
		    strcmp(m->kw != NULL ? m->kw : "",
		    next[i].kw[s] != NULL ? next[i].kw[s] : "") != 0)
			return 0;
	}
	return k == list->n;
}

/*
 * Frees what o->release allows of p's views, now that p's next base is
 * built (next[0..n), or none for a pair not kept); touched is
 * touched_pairs' flags of p.
 */
static void
release_views(const struct ctx *c, struct pair *p, uint8_t touched,
    const struct state_msg *next, size_t n, int kept)
{
	int	 s;

	for (s = 0; s < 2; s++) {
		struct view_mbox *v;

		if (p->v[s] == NULL)
			continue;
		/* The same view, writable: the caller lent the views. */
		v = &c->views[s].mb[p->v[s] - c->views[s].mb];
		if (v->msgs.v == NULL)
			continue;
		switch (c->o->release[s]) {
		case PLAN_RELEASE_ALL:
			break;
		case PLAN_RELEASE_UNTOUCHED:
			if (!kept || v->unchanged || (touched >> s & 1) ||
			    !next_is_list(next, n, s, &v->msgs))
				continue;
			p->released[s] = 1;
			break;
		default:
			continue;
		}
		msglist_free(&v->msgs);
	}
}

/*
 * next_build's walk of the pairs: each kept pair's entries (its marks,
 * then its COPYs) sorted into out->next, then its views released.
 * touched is touched_pairs'.
 */
static int
next_pairs(struct ctx *c, struct plan *out, const uint8_t *touched)
{
	struct state_mbox	*mb;
	struct state_msg	*msgs;
	size_t			 i, j, k, lo;
	int			 s, r;

	/* The COPYs: after the mailbox creates, renames and setguids, in
	 * pair order (act_cmp). */
	for (k = 0; k < c->na && c->a[k].type < ACT_COPY; k++)
		;
	for (i = 0; i < c->np; i++) {
		struct pair *p = &c->p[i];

		for (lo = k; k < c->na && c->a[k].type == ACT_COPY &&
		    c->a[k].mbox == i; k++)
			;
		if (!p->keep) {
			if (k > lo)
				return MSYNC_ERR_INTERNAL;
			release_views(c, p, touched[i], NULL, 0, 0);
			continue;
		}
		if ((r = same_entries(p)) != 0 ||
		    (r = copy_entries(c, p, lo, k)) != 0)
			return r;
		if ((r = state_add_mbox(&out->next, &p->guid, p->final, &mb))
		    != 0)
			return r;
		p->nextidx = out->next.n - 1;
		for (s = 0; s < 2; s++) {
			if (p->v[s] == NULL)
				continue;
			mb->uidvalidity[s] = p->v[s]->uidvalidity;
			mb->modseq[s] = p->v[s]->modseq;
		}
		if (p->ne == 0) {
			release_views(c, p, touched[i], NULL, 0, 1);
			continue;
		}
		/*
		 * The state file's order: the plan's base is built in it.
		 * The entries of a pair differ in their uids (each lists
		 * message is in one), so the order does not depend on the
		 * order they were made in.
		 */
		msync_sort(p->e, p->ne, sizeof(*p->e), state_msg_cmp);
		for (j = 0; j < p->ne; j++) {
			if (p->e[j].aux != NONE32)
				c->a[p->e[j].aux].next_msg = (uint32_t)j;
			p->e[j].aux = 0;
		}
		/* The entries are the next base's messages as they are: no
		 * second copy of the base.  The array shrinks to fit. */
		mb->msgs = p->e;		/* transferred */
		mb->nmsgs = mb->capmsgs = p->ne;
		p->e = NULL;
		p->ne = p->cape = 0;
		if ((msgs = realloc(mb->msgs, mb->nmsgs * sizeof(*msgs)))
		    != NULL)
			mb->msgs = msgs;
		release_views(c, p, touched[i], mb->msgs, mb->nmsgs, 1);
	}
	if (k < c->na && c->a[k].type == ACT_COPY)
		return MSYNC_ERR_INTERNAL;	/* out of pair order */
	return 0;
}

/*
 * Builds out->next from the kept pairs (in GUID order, entries in the
 * order state_sort gives) and points each COPY at its entry.  Entries
 * move into out->next.  Every action is in its final place (act_sort).
 */
static int
next_build(struct ctx *c, struct plan *out)
{
	uint8_t			*touched;
	size_t			 i;
	int			 r, s;

	/*
	 * Every pass that reads the current lists is done: free them now,
	 * before the next base is built, so that a run never holds the
	 * lists, the entries and the next base of every mailbox at once.
	 * Each pair's views go as soon as its next base is made, where the
	 * caller allows it (release_views): the listing of a message and
	 * its entry are about the same size, so the one takes the other's
	 * room instead of the run holding both.
	 */
	for (i = 0; i < c->np; i++)
		lists_free(&c->p[i]);
	if ((r = touched_pairs(c, &touched)) != 0)
		return r;
	r = next_pairs(c, out, touched);
	free(touched);
	/* A view no pair took (none, as the brain checks its views). */
	for (s = 0; s < 2 && r == 0; s++)
		for (i = 0; c->o->release[s] == PLAN_RELEASE_ALL &&
		    i < c->views[s].n; i++)
			msglist_free(&c->views[s].mb[i].msgs);
	return r;
}


/*
 * The canonical digest encoding: little-endian, strings length-first.
 * Bytes gather in a buffer before they reach XXH3: one update per field
 * cost more than the rest of the plan (a few per message of the base),
 * and the hash of the stream is the same.
 */
struct dg {
	XXH3_state_t	*x;
	size_t		 n;		/* bytes in b */
	uint8_t		 b[4096];
};

static void
dg_flush(struct dg *x)
{
	(void)XXH3_64bits_update(x->x, x->b, x->n);
	x->n = 0;
}

static void
dg_bytes(struct dg *x, const void *p, size_t n)
{
	if (n > sizeof(x->b) - x->n) {
		dg_flush(x);
		if (n > sizeof(x->b)) {
			(void)XXH3_64bits_update(x->x, p, n);
			return;
		}
	}
	memcpy(x->b + x->n, p, n);
	x->n += n;
}

/* Puts v little-endian at b; returns b + 8. */
static inline uint8_t *
dg_le64(uint8_t *b, uint64_t v)
{
	/* Spelled out: compilers make one store of it on little-endian. */
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
	b[4] = (uint8_t)(v >> 32);
	b[5] = (uint8_t)(v >> 40);
	b[6] = (uint8_t)(v >> 48);
	b[7] = (uint8_t)(v >> 56);
	return b + 8;
}

static void
dg_u64(struct dg *x, uint64_t v)
{
	if (sizeof(x->b) - x->n < 8)
		dg_flush(x);
	(void)dg_le64(x->b + x->n, v);
	x->n += 8;
}

static void	 dg_str(struct dg *, const char *);

/*
 * One message of the next base: the bytes dg_bytes, dg_u64 and dg_str
 * would give, written in one go (a call per field cost more than the
 * hash of the bytes; this runs once per message of every changed
 * folder).
 */
static void
dg_msg(struct dg *x, const struct state_msg *e)
{
	uint8_t	*b;
	int	 s;

	if (sizeof(x->b) - x->n < 16 + 2 * 24)
		dg_flush(x);
	b = x->b + x->n;
	memcpy(b, e->guid.b, 16);
	b += 16;
	for (s = 0; s < 2; s++) {
		b = dg_le64(b, e->uid[s]);
		b = dg_le64(b, e->flags[s]);
		if (e->kw[s] != NULL) {
			x->n = (size_t)(b - x->b);
			dg_str(x, e->kw[s]);
			if (sizeof(x->b) - x->n < 24)
				dg_flush(x);
			b = x->b + x->n;
		} else
			b = dg_le64(b, UINT64_MAX);
	}
	x->n = (size_t)(b - x->b);
}

static void
dg_str(struct dg *x, const char *s)
{
	size_t	n;

	if (s == NULL) {
		dg_u64(x, UINT64_MAX);
		return;
	}
	n = strlen(s);
	dg_u64(x, n);
	dg_bytes(x, s, n);
}

/* XXH3-64 of mode, plan_mbox list, action list and next. */
static int
digest(const struct plan_opts *o, struct plan *pl)
{
	struct dg	*x;
	size_t		 i, j;
	int		 s;

	if ((x = malloc(sizeof(*x))) == NULL)
		return MSYNC_ERR_NOMEM;
	x->n = 0;
	if ((x->x = XXH3_createState()) == NULL) {
		free(x);
		return MSYNC_ERR_NOMEM;
	}
	(void)XXH3_64bits_reset(x->x);
	dg_bytes(x, "msync-plan-1", 12);
	dg_u64(x, (uint64_t)o->mode);
	dg_u64(x, o->mode == MODE_TWOWAY ? 0 : (uint64_t)o->src);
	dg_u64(x, (uint64_t)(o->force_deletes != 0));
	dg_u64(x, (uint64_t)(pl->guard_tripped != 0));
	dg_u64(x, pl->nmb);
	for (i = 0; i < pl->nmb; i++) {
		const struct plan_mbox *m = &pl->mb[i];

		dg_bytes(x, m->guid.b, 16);
		dg_str(x, m->name[0]);
		dg_str(x, m->name[1]);
		dg_str(x, m->final_name);
		dg_u64(x, (uint64_t)m->trusted);
	}
	dg_u64(x, pl->nact);
	for (i = 0; i < pl->nact; i++) {
		const struct action *a = &pl->act[i];

		dg_u64(x, (uint64_t)a->type);
		dg_u64(x, (uint64_t)a->side);
		dg_u64(x, a->mbox);
		dg_u64(x, a->uid);
		dg_bytes(x, a->guid.b, 16);
		dg_u64(x, a->flags);
		dg_str(x, a->kw);
		dg_u64(x, (uint64_t)a->src_side);
		dg_u64(x, a->src_mbox);
		dg_u64(x, a->src_uid);
		/* The next base's mailbox, as actions once carried it. */
		dg_u64(x, a->type == ACT_COPY ? pl->mb[a->mbox].next : 0);
		dg_u64(x, a->next_msg);
	}
	dg_u64(x, pl->next.n);
	for (i = 0; i < pl->next.n; i++) {
		const struct state_mbox *m = &pl->next.mb[i];

		dg_bytes(x, m->guid.b, 16);
		dg_str(x, m->name);
		for (s = 0; s < 2; s++) {
			dg_u64(x, m->uidvalidity[s]);
			dg_u64(x, m->modseq[s]);
		}
		dg_u64(x, m->nmsgs);
		for (j = 0; j < m->nmsgs; j++)
			dg_msg(x, &m->msgs[j]);
	}
	dg_flush(x);
	pl->digest = XXH3_64bits_digest(x->x);
	XXH3_freeState(x->x);
	free(x);
	return 0;
}

static void
ctx_free(struct ctx *c)
{
	size_t	 i, j;

	for (i = 0; i < c->np; i++) {
		struct pair *p = &c->p[i];

		lists_free(p);
		free(p->same);
		for (j = 0; p->e != NULL && j < p->ne; j++) {
			free(p->e[j].kw[0]);
			free(p->e[j].kw[1]);
		}
		free(p->e);
	}
	free(c->p);
	for (i = 0; i < c->na; i++)
		free(c->a[i].kw);
	free(c->a);
	for (i = 0; i < c->nn; i++)
		free(c->notes[i]);
	free(c->notes);
	free(c->bidx);
	memset(c, 0, sizeof(*c));
}

/*
 * Fills out->mb from the pairs and moves actions and notes into out.
 * Returns 0 or MSYNC_ERR_NOMEM.
 */
static int
plan_fill(struct ctx *c, struct plan *out)
{
	size_t	 i;
	int	 s;

	if (c->np > 0 &&
	    (out->mb = calloc(c->np, sizeof(*out->mb))) == NULL)
		return MSYNC_ERR_NOMEM;
	out->nmb = c->np;
	for (i = 0; i < c->np; i++) {
		struct pair		*p = &c->p[i];
		struct plan_mbox	*m = &out->mb[i];

		m->guid = p->guid;
		m->trusted = p->trusted;
		m->released[0] = (uint8_t)p->released[0];
		m->released[1] = (uint8_t)p->released[1];
		m->next = p->nextidx == NONE ? NONE32 : (uint32_t)p->nextidx;
		for (s = 0; s < 2; s++)
			if (p->v[s] != NULL &&
			    xstrdup(p->v[s]->name, &m->name[s]) != 0)
				return MSYNC_ERR_NOMEM;
		if (xstrdup(p->final, &m->final_name) != 0)
			return MSYNC_ERR_NOMEM;
	}
	/*
	 * The actions move over as they are, and the array shrinks to fit:
	 * a second array of every action was the largest thing an initial
	 * copy held.
	 */
	if (c->na > 0) {
		struct action	*q;

		out->act = c->a;		/* kw transferred */
		out->nact = out->capact = c->na;
		c->a = NULL;
		c->na = c->capa = 0;
		if ((q = realloc(out->act, out->nact * sizeof(*q))) != NULL)
			out->act = q;
	}
	out->notes = c->notes;		/* transferred */
	out->nnotes = c->nn;
	c->notes = NULL;
	c->nn = c->capn = 0;
	out->guard_tripped = c->tripped;
	return 0;
}

/* In backup and one-way modes nothing may touch SRC. */
static int
check_src(const struct ctx *c)
{
	size_t	 i;

	if (c->o->mode == MODE_TWOWAY)
		return 0;
	for (i = 0; i < c->na; i++)
		if ((int)c->a[i].side == (int)c->o->src)
			return MSYNC_ERR_INTERNAL;
	return 0;
}

int
plan_build(const struct state *base, struct view views[2],
    const struct plan_opts *o, struct plan *out)
{
	struct ctx	 c;
	size_t		 i;
	int		 r, s;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	if (o == NULL || views == NULL ||
	    (o->mode != MODE_TWOWAY && o->mode != MODE_BACKUP &&
	    o->mode != MODE_ONEWAY) ||
	    (o->src != SIDE_A && o->src != SIDE_B))
		return MSYNC_ERR_INTERNAL;
	c.base = base;
	c.views = views;
	c.o = o;
	c.first = (base == NULL || base->n == 0) && !o->had_base;
	if (base != NULL && base->n > 0) {
		if ((c.bidx = calloc(base->n, sizeof(*c.bidx))) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		for (i = 0; i < base->n; i++)
			c.bidx[i] = &base->mb[i];
		c.nb = base->n;
		msync_sort(c.bidx, c.nb, sizeof(*c.bidx), bidx_cmp);
	}
	if ((r = pair_mailboxes(&c, views)) != 0)
		goto out;
	for (s = 0; s < 2 && !c.first; s++) {
		/* One-way never deletes; a backup deletes only for SRC. */
		if (views[s].n != 0 || o->listed[s] != 0 ||
		    o->mode == MODE_ONEWAY ||
		    (o->mode == MODE_BACKUP && s != (int)o->src))
			continue;
		/*
		 * A side that had mailboxes at the last sync and lists none
		 * now was emptied, unmounted or mistyped far more often than
		 * cleared by its user: the guard's case (issue 16).  With
		 * --force-deletes it is a deletion like any other.
		 */
		if (o->force_deletes)
			continue;
		c.emptied[s] = 1;
		c.tripped = 1;
		if ((r = note(&c, "%c has no mailboxes at all (emptied, or not "
		    "mounted?): use --force-deletes if its mailboxes were "
		    "deleted on purpose", sidech[s])) != 0)
			goto out;
	}
	if (c.first && c.np > 0 && (r = o->mode == MODE_BACKUP ?
	    note(&c, "first sync of this pair: %c is made identical to %c",
	    sidech[o->src ^ 1], sidech[o->src]) :
	    note(&c, "first sync of this pair: merging, nothing deleted")) != 0)
		goto out;
	for (i = 0; i < c.np; i++)
		if ((r = pair_setup(&c, &c.p[i])) != 0 ||
		    (r = mbox_decide(&c, &c.p[i])) != 0)
			goto out;
	if ((r = names_resolve(&c)) != 0)
		goto out;
	/*
	 * The actions are made in the order act_sort gives them as far as
	 * that costs nothing: the mailbox actions by type, the pairs'
	 * message actions in pair order (each pair's sorted as soon as
	 * they are made), the mailbox deletes last.  The order among
	 * actions that compare equal (the creation order, which the
	 * digest sees) is that of message actions of one pair, made in
	 * the same order as before.
	 */
	if ((r = emit_mboxes(&c, 0)) != 0)
		goto out;
	for (i = 0; i < c.np; i++) {
		struct pair	*p = &c.p[i];
		size_t		 first = c.na;

		if (p->v[SIDE_A] == NULL || p->v[SIDE_B] == NULL)
			r = plan_single(&c, p, i);
		else if (p->trusted)
			r = plan_trusted(&c, p, i);
		else	/* a backup mirrors SRC even without a base */
			r = plan_new(&c, p, i, o->mode != MODE_BACKUP);
		if (r != 0 || (c.na > first &&
		    (r = act_sort(c.a + first, c.na - first)) != 0))
			goto out;
		/* Read by the pair's own planning only: the next pair's
		 * entries take their room. */
		for (s = 0; s < 2; s++) {
			free(p->cur[s]);
			p->cur[s] = NULL;
		}
	}
	if ((r = emit_mboxes(&c, 1)) != 0 ||
	    (r = act_sort(c.a, c.na)) != 0 ||
	    (r = check_src(&c)) != 0 ||
	    (r = local_copies(&c)) != 0 ||
	    (r = guard(&c)) != 0 ||
	    (r = next_build(&c, out)) != 0 ||
	    (r = plan_fill(&c, out)) != 0 ||
	    (r = digest(o, out)) != 0)
		goto out;
 out:
	ctx_free(&c);
	if (r != 0)
		plan_free(out);
	return r;
}

void
plan_free(struct plan *pl)
{
	size_t	 i;

	if (pl == NULL)
		return;
	for (i = 0; i < pl->nmb; i++) {
		free(pl->mb[i].name[0]);
		free(pl->mb[i].name[1]);
		free(pl->mb[i].final_name);
	}
	free(pl->mb);
	plan_free_actions(pl);
	state_clear(&pl->next);
	for (i = 0; i < pl->nnotes; i++)
		free(pl->notes[i]);
	free(pl->notes);
	memset(pl, 0, sizeof(*pl));
}

void
plan_free_actions(struct plan *pl)
{
	size_t	 i;

	for (i = 0; i < pl->nact; i++)
		free(pl->act[i].kw);
	free(pl->act);
	pl->act = NULL;
	pl->nact = pl->capact = 0;
}

struct state_msg *
plan_next_msg(struct plan *pl, const struct action *a)
{
	uint32_t	 nm;

	if (a->type != ACT_COPY || a->mbox >= pl->nmb)
		return NULL;
	nm = pl->mb[a->mbox].next;
	if (nm >= pl->next.n || a->next_msg >= pl->next.mb[nm].nmsgs)
		return NULL;
	return &pl->next.mb[nm].msgs[a->next_msg];
}

void
view_free(struct view *v)
{
	size_t	 i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		free(v->mb[i].name);
		msglist_free(&v->mb[i].msgs);
	}
	free(v->mb);
	memset(v, 0, sizeof(*v));
}

int
view_add(struct view *v, const char *name, struct view_mbox **out)
{
	struct view_mbox	*m;
	char			*nm;

	if (msync_grow(&v->mb, &v->cap, v->n, sizeof(*v->mb)) != 0)
		return MSYNC_ERR_NOMEM;
	if ((nm = strdup(name != NULL ? name : "")) == NULL)
		return MSYNC_ERR_NOMEM;
	m = &v->mb[v->n++];
	memset(m, 0, sizeof(*m));
	m->name = nm;
	if (out != NULL)
		*out = m;
	return 0;
}

const char *
plan_act_name(enum act_type t)
{
	switch (t) {
	case ACT_MBOX_CREATE:
		return "create";
	case ACT_MBOX_RENAME:
		return "rename";
	case ACT_MBOX_SETGUID:
		return "setguid";
	case ACT_COPY:
		return "copy";
	case ACT_FLAGS:
		return "flags";
	case ACT_EXPUNGE:
		return "expunge";
	case ACT_MBOX_DELETE:
		return "delete";
	}
	return "unknown";
}
