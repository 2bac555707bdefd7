/*
 * test_plan.c — the planner, table-driven.  Each case gives a base, two
 * views and a mode in a small text notation, and the expected actions and
 * next base rendered as text (see render_act, render_next).
 *
 * Notation (mailboxes separated by ';', messages by spaces):
 *   view mailbox:  NAME#G/UIDVALIDITY/MODSEQ[/u]: MSG...    (/u: unchanged)
 *   view message:  UID:GUID[:FLAGS[:KW]]
 *   base mailbox:  NAME#G/UVA,UVB/MSA,MSB: ENTRY...
 *   base entry:    UIDA,UIDB:GUID[:FA,FB[:KWA,KWB]]
 * G is the mailbox GUID's first byte (a number), GUID a letter (the
 * message GUID's first byte), FLAGS Maildir letters "DFPRST" or "-",
 * KW keyword names joined by '+' or "-".
 *
 * Rendered actions, one per line, in plan order:
 *   create B Old | rename A Foo->Bar | setguid B INBOX | delete A Old
 *   copy B Arch a S [kw] <A:INBOX:1    (source side:mailbox:uid)
 *   flags B INBOX 1 FS [kw] | expunge B INBOX 2
 * Rendered next, one mailbox per line:  NAME#G: UIDA,UIDB:GUID:FA,FB[:KWA,KWB]
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

#include <cmocka.h>

#include "msync.h"
#include "state.h"
#include "plan.h"

#define TW	MODE_TWOWAY
#define BK	MODE_BACKUP
#define OW	MODE_ONEWAY

/* ------------------------------------------------------------------ */
/* Parsing the notation. */

static uint8_t
parse_flags(const char *s)
{
	static const char	 letters[] = "DFPRST";
	uint8_t			 f = 0;
	const char		*p;

	for (; *s != '\0'; s++) {
		if (*s == '-')
			continue;
		p = strchr(letters, *s);
		assert_non_null(p);
		f |= (uint8_t)(1 << (p - letters));
	}
	return f;
}

/* "a+b" -> "a b" (heap), "-" or "" -> NULL. */
static char *
parse_kw(const char *s)
{
	char	*k, *p;

	if (s == NULL || *s == '\0' || strcmp(s, "-") == 0)
		return NULL;
	k = strdup(s);
	for (p = k; *p != '\0'; p++)
		if (*p == '+')
			*p = ' ';
	return k;
}

static struct guid
mguid(int c)
{
	struct guid	 g;

	memset(&g, 0, sizeof(g));
	g.b[0] = (uint8_t)c;
	g.b[1] = 0x4d;		/* 'M'essage, apart from mailbox GUIDs */
	return g;
}

static struct guid
bguid(int n)
{
	struct guid	 g;

	memset(&g, 0, sizeof(g));
	g.b[0] = (uint8_t)n;
	return g;
}

/* Splits "HEAD: items" into the head and the item list. */
static char *
split_head(char *line, char **items)
{
	char	*c = strchr(line, ':');

	assert_non_null(c);
	*c = '\0';
	*items = c + 1;
	while (*line == ' ')
		line++;
	return line;
}

static void
parse_view(const char *text, struct view *v)
{
	char	*buf, *line, *save1, *save2, *items, *head, *tok;

	memset(v, 0, sizeof(*v));
	if (text == NULL)
		return;
	buf = strdup(text);
	for (line = strtok_r(buf, ";", &save1); line != NULL;
	    line = strtok_r(NULL, ";", &save1)) {
		struct view_mbox	*m;
		char			*hash, *f[4];
		int			 nf = 0;

		head = split_head(line, &items);
		hash = strchr(head, '#');
		assert_non_null(hash);
		*hash++ = '\0';
		assert_int_equal(view_add(v, head, &m), 0);
		for (tok = strtok_r(hash, "/", &save2); tok != NULL && nf < 4;
		    tok = strtok_r(NULL, "/", &save2))
			f[nf++] = tok;
		assert_true(nf >= 3);
		m->guid = bguid(atoi(f[0]));
		m->uidvalidity = (uint32_t)strtoul(f[1], NULL, 10);
		m->modseq = strtoull(f[2], NULL, 10);
		m->unchanged = nf == 4 && strcmp(f[3], "u") == 0;
		for (tok = strtok_r(items, " ", &save2); tok != NULL;
		    tok = strtok_r(NULL, " ", &save2)) {
			struct msg	 msg;
			char		*q[4] = { NULL, NULL, NULL, NULL };
			char		*s3;
			int		 k = 0;

			for (s3 = strtok(tok, ":"); s3 != NULL && k < 4;
			    s3 = strtok(NULL, ":"))
				q[k++] = s3;
			memset(&msg, 0, sizeof(msg));
			msg.uid = (uint32_t)strtoul(q[0], NULL, 10);
			msg.guid = mguid(q[1][0]);
			msg.flags = q[2] != NULL ? parse_flags(q[2]) : 0;
			msg.kw = parse_kw(q[3]);
			msg.size = 100;
			assert_int_equal(msglist_add(&m->msgs, &msg), 0);
			free(msg.kw);
		}
	}
	free(buf);
}

static void
parse_base(const char *text, struct state *st)
{
	char	*buf, *line, *save1, *save2, *items, *head, *tok;

	memset(st, 0, sizeof(*st));
	if (text == NULL)
		return;
	buf = strdup(text);
	for (line = strtok_r(buf, ";", &save1); line != NULL;
	    line = strtok_r(NULL, ";", &save1)) {
		struct state_mbox	*mb;
		char			*hash, *f[3];
		int			 nf = 0;

		head = split_head(line, &items);
		hash = strchr(head, '#');
		assert_non_null(hash);
		*hash++ = '\0';
		for (tok = strtok_r(hash, "/", &save2); tok != NULL && nf < 3;
		    tok = strtok_r(NULL, "/", &save2))
			f[nf++] = tok;
		assert_int_equal(nf, 3);
		assert_int_equal(state_add_mbox(st, &(struct guid){ .b = {
		    [0] = (uint8_t)atoi(f[0]) } }, head, &mb), 0);
		assert_int_equal(sscanf(f[1], "%u,%u", &mb->uidvalidity[0],
		    &mb->uidvalidity[1]), 2);
		{
			unsigned long long a, b;

			assert_int_equal(sscanf(f[2], "%llu,%llu", &a, &b), 2);
			mb->modseq[0] = a;
			mb->modseq[1] = b;
		}
		for (tok = strtok_r(items, " ", &save2); tok != NULL;
		    tok = strtok_r(NULL, " ", &save2)) {
			struct state_msg	 e;
			char			*q[4] = { NULL };
			char			*s3, *c;
			int			 k = 0;

			for (s3 = strtok(tok, ":"); s3 != NULL && k < 4;
			    s3 = strtok(NULL, ":"))
				q[k++] = s3;
			memset(&e, 0, sizeof(e));
			assert_int_equal(sscanf(q[0], "%u,%u", &e.uid[0],
			    &e.uid[1]), 2);
			e.guid = mguid(q[1][0]);
			if (q[2] != NULL) {
				c = strchr(q[2], ',');
				assert_non_null(c);
				*c++ = '\0';
				e.flags[0] = parse_flags(q[2]);
				e.flags[1] = parse_flags(c);
			}
			if (q[3] != NULL) {
				c = strchr(q[3], ',');
				assert_non_null(c);
				*c++ = '\0';
				e.kw[0] = parse_kw(q[3]);
				e.kw[1] = parse_kw(c);
			}
			assert_int_equal(state_add_msg(mb, &e), 0);
			free(e.kw[0]);
			free(e.kw[1]);
		}
	}
	free(buf);
	state_sort(st);
}

/* ------------------------------------------------------------------ */
/* Rendering. */

struct sbuf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (b->len + (size_t)n + 1 > b->cap) {
		b->cap = (b->len + (size_t)n + 1) * 2;
		b->s = realloc(b->s, b->cap);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static const char *
flagstr(uint8_t f)
{
	static char	 buf[4][8];
	static int	 k;
	char		*p = buf[k = (k + 1) % 4];
	int		 i;

	if (f == 0)
		return "-";
	for (i = 0; i < 6; i++)
		if (f & (1 << i))
			*p++ = "DFPRST"[i];
	*p = '\0';
	return buf[k];
}

static const char *
kwstr(const char *kw)
{
	static char	 buf[4][256];
	static int	 k;
	char		*p;

	if (kw == NULL)
		return "-";
	p = buf[k = (k + 1) % 4];
	snprintf(p, 256, "%s", kw);
	for (; *p != '\0'; p++)
		if (*p == ' ')
			*p = '+';
	return buf[k];
}

/* Side letter, swapped when mirror is set. */
static char
sc(int s, int mirror)
{
	return "AB"[s ^ mirror];
}

static const char *
mbname(const struct plan *pl, uint32_t i, int side)
{
	assert_true(i < pl->nmb);
	if (pl->mb[i].name[side] != NULL)
		return pl->mb[i].name[side];
	return pl->mb[i].final_name;
}

static void
render_one(struct sbuf *b, const struct plan *pl, const struct action *a,
    int mir)
{
	const struct plan_mbox *m = &pl->mb[a->mbox];

	switch (a->type) {
	case ACT_MBOX_CREATE:
		sb_printf(b, "create %c %s", sc(a->side, mir), m->final_name);
		break;
	case ACT_MBOX_RENAME:
		sb_printf(b, "rename %c %s->%s", sc(a->side, mir),
		    m->name[a->side], m->final_name);
		break;
	case ACT_MBOX_SETGUID:
		sb_printf(b, "setguid %c %s", sc(a->side, mir),
		    m->name[a->side]);
		break;
	case ACT_MBOX_DELETE:
		sb_printf(b, "delete %c %s", sc(a->side, mir),
		    m->name[a->side]);
		break;
	case ACT_COPY:
		sb_printf(b, "copy %c %s %c %s", sc(a->side, mir),
		    m->final_name != NULL ? m->final_name : m->name[a->side],
		    a->guid.b[0], flagstr(a->flags));
		if (a->kw != NULL)
			sb_printf(b, " [%s]", a->kw);
		sb_printf(b, " <%c:%s:%u", sc(a->src_side, mir),
		    mbname(pl, a->src_mbox, a->src_side), a->src_uid);
		break;
	case ACT_FLAGS:
		sb_printf(b, "flags %c %s %u %s", sc(a->side, mir),
		    m->name[a->side], a->uid, flagstr(a->flags));
		if (a->kw != NULL)
			sb_printf(b, " [%s]", a->kw);
		break;
	case ACT_EXPUNGE:
		sb_printf(b, "expunge %c %s %u", sc(a->side, mir),
		    m->name[a->side], a->uid);
		break;
	default:
		fail_msg("bad action type %d", a->type);
	}
}

static char *
render_acts(const struct plan *pl)
{
	struct sbuf	 b = { NULL, 0, 0 };
	size_t		 i;

	sb_printf(&b, "%s", "");
	for (i = 0; i < pl->nact; i++) {
		if (i > 0)
			sb_printf(&b, "\n");
		render_one(&b, pl, &pl->act[i], 0);
	}
	return b.s;
}

static void
render_ent(struct sbuf *b, const struct state_msg *e, int mir)
{
	int	 x = mir, y = mir ^ 1;

	sb_printf(b, "%u,%u:%c:%s,%s", e->uid[x], e->uid[y], e->guid.b[0],
	    flagstr(e->flags[x]), flagstr(e->flags[y]));
	if (e->kw[0] != NULL || e->kw[1] != NULL)
		sb_printf(b, ":%s,%s", kwstr(e->kw[x]), kwstr(e->kw[y]));
}

static char *
render_next(const struct plan *pl)
{
	struct sbuf	 b = { NULL, 0, 0 };
	size_t		 i, j;

	sb_printf(&b, "%s", "");
	for (i = 0; i < pl->next.n; i++) {
		const struct state_mbox *m = &pl->next.mb[i];

		if (i > 0)
			sb_printf(&b, "\n");
		sb_printf(&b, "%s#%d:", m->name, m->guid.b[0]);
		for (j = 0; j < m->nmsgs; j++) {
			sb_printf(&b, " ");
			render_ent(&b, &m->msgs[j], 0);
		}
	}
	return b.s;
}

static int
notes_have(const struct plan *pl, const char *sub)
{
	size_t	 i;

	for (i = 0; i < pl->nnotes; i++)
		if (strstr(pl->notes[i], sub) != NULL)
			return 1;
	return 0;
}

static void
dump_notes(const struct plan *pl)
{
	size_t	 i;

	for (i = 0; i < pl->nnotes; i++)
		print_message("  note: %s\n", pl->notes[i]);
}

/* Checks invariants every plan must satisfy. */
static void
check_invariants(struct plan *pl, const struct plan_opts *o)
{
	size_t	 i;
	int	 prev = 0;

	for (i = 0; i < pl->nact; i++) {
		const struct action *a = &pl->act[i];

		assert_true((int)a->type >= prev);
		prev = (int)a->type;
		assert_true(a->mbox < pl->nmb);
		if (o->mode != MODE_TWOWAY)
			assert_int_not_equal(a->side, o->src);
		if (a->type == ACT_COPY) {
			const struct state_msg *e;

			assert_true(pl->mb[a->mbox].next < pl->next.n);
			assert_int_equal(guid_cmp(&pl->next.mb[pl->mb[a->mbox]
			    .next].guid, &pl->mb[a->mbox].guid), 0);
			e = plan_next_msg(pl, a);
			assert_non_null(e);
			assert_int_equal(e->uid[a->side], 0);
			assert_int_equal(guid_cmp(&e->guid, &a->guid), 0);
			assert_true(a->src_mbox < pl->nmb);
			assert_int_not_equal(a->src_uid, 0);
		}
	}
	for (i = 1; i < pl->next.n; i++)
		assert_true(guid_cmp(&pl->next.mb[i - 1].guid,
		    &pl->next.mb[i].guid) < 0);
}

/* ------------------------------------------------------------------ */
/* The table. */

struct pcase {
	const char	*name;
	int		 mode;
	int		 src;
	int		 force;
	const char	*base;
	const char	*va;
	const char	*vb;
	const char	*acts;		/* expected rendering */
	const char	*next;		/* expected rendering */
	int		 guard;		/* expected guard_tripped */
	const char	*note;		/* a substring of some note, or NULL */
	int		 nosym;		/* A/B asymmetric by rule (A wins) */
};

static const struct pcase cases[] = {
/* ---- two-way: messages ---- */
{ "tw in sync", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a:S,S",
  "INBOX#1/1/5: 1:a:S", "INBOX#1/1/5: 1:a:S",
  "", "INBOX#1: 1,1:a:S,S", 0, NULL, 0 },
{ "tw in sync, unchanged views", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a:S,S 2,2:b:-,F",
  "INBOX#1/1/5/u:", "INBOX#1/1/5/u:",
  "flags A INBOX 2 F", "INBOX#1: 1,1:a:S,S 2,2:b:F,F", 0, NULL, 0 },
{ "tw new on A", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a",
  "INBOX#1/1/6: 1:a 2:b:F", "INBOX#1/1/5: 1:a",
  "copy B INBOX b F <A:INBOX:2",
  "INBOX#1: 1,1:a:-,- 2,0:b:F,F", 0, NULL, 0 },
{ "tw new on B with keywords", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a",
  "INBOX#1/1/5: 1:a", "INBOX#1/1/6: 1:a 7:b:S:$Label1+work",
  "copy A INBOX b S [$Label1 work] <B:INBOX:7",
  "INBOX#1: 0,7:b:S,S:$Label1+work,$Label1+work 1,1:a:-,-", 0, NULL, 0 },
{ "tw copies of keywords not in canonical form: canonical in plan and base",
  TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a",
  "INBOX#1/1/5: 1:a", "INBOX#1/1/6: 1:a 7:b:S:y+x+y 8:c:-:x",
  "copy A INBOX b S [x y] <B:INBOX:7\ncopy A INBOX c - [x] <B:INBOX:8",
  "INBOX#1: 0,7:b:S,S:x+y,x+y 0,8:c:-,-:x,x 1,1:a:-,-", 0, NULL, 0 },
{ "tw new on both, different", TW, 0, 0,
  "INBOX#1/1,1/5,5:",
  "INBOX#1/1/6: 1:a", "INBOX#1/1/6: 1:b",
  "copy A INBOX b - <B:INBOX:1\ncopy B INBOX a - <A:INBOX:1",
  "INBOX#1: 0,1:b:-,- 1,0:a:-,-", 0, NULL, 0 },
{ "tw new on both, same GUID: paired, flags OR", TW, 0, 0,
  "INBOX#1/1,1/5,5:",
  "INBOX#1/1/6: 1:a:S:x", "INBOX#1/1/6: 4:a:F:y",
  "flags A INBOX 1 FS [x y]\nflags B INBOX 4 FS [x y]",
  "INBOX#1: 1,4:a:FS,FS:x+y,x+y", 0, NULL, 0 },
{ "tw duplicates are a multiset", TW, 0, 0,
  "INBOX#1/1,1/5,5:",
  "INBOX#1/1/6: 1:a 2:a 3:a 4:b", "INBOX#1/1/6: 5:a 6:b 7:b",
  "copy A INBOX b - <A:INBOX:4\ncopy B INBOX a - <B:INBOX:5\n"
  "copy B INBOX a - <B:INBOX:5",
  "INBOX#1: 0,7:b:-,- 1,5:a:-,- 2,0:a:-,- 3,0:a:-,- 4,6:b:-,-",
  0, NULL, 0 },
{ "tw expunged on A", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a 2,2:b",
  "INBOX#1/1/6: 1:a", "INBOX#1/1/5: 1:a 2:b",
  "expunge B INBOX 2", "INBOX#1: 1,1:a:-,-", 0, NULL, 0 },
{ "tw expunge beats flag change", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a 2,2:b",
  "INBOX#1/1/6: 1:a", "INBOX#1/1/6: 1:a 2:b:FS",
  "expunge B INBOX 2", "INBOX#1: 1,1:a:-,-", 0, NULL, 0 },
{ "tw gone on both", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a 2,2:b",
  "INBOX#1/1/6: 1:a", "INBOX#1/1/6: 1:a",
  "", "INBOX#1: 1,1:a:-,-", 0, NULL, 0 },
{ "tw tombstone stays", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,0:a:S,- 0,2:b:-,F",
  "INBOX#1/1/5: 1:a:S", "INBOX#1/1/5: 2:b:F",
  "", "INBOX#1: 0,2:b:-,F 1,0:a:S,-", 0, NULL, 0 },
{ "tw tombstone side expunged: dropped", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,0:a:S,-",
  "INBOX#1/1/6:", "INBOX#1/1/5:",
  "", "INBOX#1:", 0, NULL, 0 },
{ "tw uid reused with another GUID", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a",
  "INBOX#1/1/6: 1:z", "INBOX#1/1/5: 1:a",
  "copy B INBOX z - <A:INBOX:1\nexpunge B INBOX 1",
  "INBOX#1: 1,0:z:-,-", 0, NULL, 0 },
{ "tw flags: one side changed", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a:-,- 2,2:b:S,S",
  "INBOX#1/1/6: 1:a:S 2:b:S", "INBOX#1/1/6: 1:a 2:b:SR",
  "flags A INBOX 2 RS\nflags B INBOX 1 S",
  "INBOX#1: 1,1:a:S,S 2,2:b:RS,RS", 0, NULL, 0 },
{ "tw flags: both changed, different bits", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a:S,S",
  "INBOX#1/1/6: 1:a:-", "INBOX#1/1/6: 1:a:SF",
  "flags A INBOX 1 F\nflags B INBOX 1 F",
  "INBOX#1: 1,1:a:F,F", 0, NULL, 0 },
{ "tw keywords merge per name", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a:-,-:x,x",
  "INBOX#1/1/6: 1:a:-:x+y", "INBOX#1/1/6: 1:a",
  "flags A INBOX 1 - [y]\nflags B INBOX 1 - [y]",
  "INBOX#1: 1,1:a:-,-:y,y", 0, NULL, 0 },
{ "tw keywords unsorted input is canonical", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a:-,-:y+x,x+y",
  "INBOX#1/1/6: 1:a:-:y+x+y", "INBOX#1/1/6: 1:a:-:x+y",
  "", "INBOX#1: 1,1:a:-,-:x+y,x+y", 0, NULL, 0 },
{ "tw move on A: local copy + expunge on B", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a:S,S 2,2:b;Arch#2/1,1/5,5:",
  "INBOX#1/1/6: 2:b;Arch#2/1/6: 1:a:S", "INBOX#1/1/5: 1:a:S 2:b;Arch#2/1/5:",
  "copy B Arch a S <B:INBOX:1\nexpunge B INBOX 1",
  "INBOX#1: 2,2:b:-,-\nArch#2: 1,0:a:S,S", 0, NULL, 0 },
{ "tw local copy: the side already has it elsewhere", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a;Arch#2/1,1/5,5:",
  "INBOX#1/1/5: 1:a;Arch#2/1/6: 1:a", "INBOX#1/1/5: 1:a;Arch#2/1/5:",
  "copy B Arch a - <B:INBOX:1",
  "INBOX#1: 1,1:a:-,-\nArch#2: 1,0:a:-,-", 0, NULL, 0 },
{ "tw local copy prefers a message being expunged", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a 2,2:a;Arch#2/1,1/5,5:",
  "INBOX#1/1/6: 1:a;Arch#2/1/6: 1:a", "INBOX#1/1/5: 1:a 2:a;Arch#2/1/5:",
  "copy B Arch a - <B:INBOX:2\nexpunge B INBOX 2",
  "INBOX#1: 1,1:a:-,-\nArch#2: 1,0:a:-,-", 0, NULL, 0 },
{ "tw unchanged view takes the base's list", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a:S,S 2,2:b",
  "INBOX#1/1/5/u:", "INBOX#1/1/6: 1:a:S",
  "expunge A INBOX 2", "INBOX#1: 1,1:a:S,S", 0, NULL, 0 },
/* ---- two-way: untrusted -> union ---- */
{ "tw first sync: union by name, nothing deleted", TW, 0, 0,
  NULL,
  "INBOX#1/1/5: 1:a:S 2:b", "INBOX#9/7/3: 1:a 7:c",
  "setguid B INBOX\ncopy A INBOX c - <B:INBOX:7\n"
  "copy B INBOX b - <A:INBOX:2\nflags B INBOX 1 S",
  "INBOX#1: 0,7:c:-,- 1,1:a:S,S 2,0:b:-,-", 0,
  "first sync of this pair: merging, nothing deleted", 1 },
{ "tw uidvalidity changed: union", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a 2,2:b 3,3:c",
  "INBOX#1/2/5: 5:a", "INBOX#1/1/5: 1:a 2:b",
  "copy A INBOX b - <B:INBOX:2",
  "INBOX#1: 0,2:b:-,- 5,1:a:-,-", 0,
  "uidvalidity of INBOX changed on A: merging without deletions", 0 },
{ "tw modseq went backwards: union", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a 2,2:b",
  "INBOX#1/1/5: 1:a", "INBOX#1/1/4: 1:a 2:b",
  "copy A INBOX b - <B:INBOX:2",
  "INBOX#1: 0,2:b:-,- 1,1:a:-,-", 0, "went back in time on B", 0 },
{ "tw no state for one mailbox: union", TW, 0, 0,
  "Other#2/1,1/5,5:",
  "INBOX#1/1/5: 1:a:S;Other#2/1/5:", "INBOX#1/1/5: 2:a:F;Other#2/1/5:",
  "flags A INBOX 1 FS\nflags B INBOX 2 FS",
  "INBOX#1: 1,2:a:FS,FS\nOther#2:", 0,
  "no sync state for mailbox INBOX: merging without deletions", 0 },
{ "tw paired by name despite a base: union", TW, 0, 0,
  "INBOX#1/1,1/5,5: 1,1:a",
  "INBOX#1/1/5: 1:a", "INBOX#7/1/5: 2:b",
  "setguid B INBOX\ncopy A INBOX b - <B:INBOX:2\n"
  "copy B INBOX a - <A:INBOX:1",
  "INBOX#1: 0,2:b:-,- 1,0:a:-,-", 0, "different mailbox GUIDs", 1 },
/* ---- two-way: mailboxes ---- */
{ "tw new mailbox on A", TW, 0, 0,
  "INBOX#1/1,1/5,5:",
  "INBOX#1/1/5:;New#4/3/1: 1:a:S 2:b", "INBOX#1/1/5:",
  "create B New\ncopy B New a S <A:New:1\ncopy B New b - <A:New:2",
  "INBOX#1:\nNew#4: 1,0:a:S,S 2,0:b:-,-", 0, NULL, 0 },
{ "tw mailbox deleted on B, nothing new on A", TW, 0, 1,
  "INBOX#1/1,1/5,5:;Old#5/3,3/5,5: 1,1:a 2,2:b",
  "INBOX#1/1/5:;Old#5/3/5: 1:a 2:b", "INBOX#1/1/5:",
  "delete A Old", "INBOX#1:", 0, NULL, 0 },
{ "tw mailbox deleted on B: the guard", TW, 0, 0,
  "INBOX#1/1,1/5,5:;Old#5/3,3/5,5: 1,1:a 2,2:b",
  "INBOX#1/1/5:;Old#5/3/5: 1:a 2:b", "INBOX#1/1/5:",
  "delete A Old", "INBOX#1:", 1,
  "would delete mailbox Old on A with 2 messages; use --force-deletes",
  0 },
{ "tw empty mailbox deleted on B: no guard", TW, 0, 0,
  "INBOX#1/1,1/5,5:;Old#5/3,3/5,5: 1,1:a",
  "INBOX#1/1/5:;Old#5/3/6:", "INBOX#1/1/5:",
  "delete A Old", "INBOX#1:", 0, NULL, 0 },
{ "tw mailbox deleted on B, new mail on A: kept", TW, 0, 0,
  "INBOX#1/1,1/5,5:;Old#5/3,3/5,5: 1,1:a",
  "INBOX#1/1/5:;Old#5/3/6: 1:a 2:b", "INBOX#1/1/5:",
  "create B Old\ncopy B Old a - <A:Old:1\ncopy B Old b - <A:Old:2",
  "INBOX#1:\nOld#5: 1,0:a:-,- 2,0:b:-,-", 0,
  "kept mailbox Old: deleted on B but has new mail on A", 0 },
{ "tw mailbox deleted on B, uidvalidity changed on A: kept", TW, 0, 0,
  "INBOX#1/1,1/5,5:;Old#5/3,3/5,5: 1,1:a",
  "INBOX#1/1/5:;Old#5/4/6: 1:a", "INBOX#1/1/5:",
  "create B Old\ncopy B Old a - <A:Old:1",
  "INBOX#1:\nOld#5: 1,0:a:-,-", 0, NULL, 0 },
{ "tw B lists no mailbox at all: the guard", TW, 0, 0,
  "Old#5/3,3/5,5: 1,1:a",
  "Old#5/3/5: 1:a", "",
  "create B Old\ncopy B Old a - <A:Old:1",
  "Old#5: 1,0:a:-,-", 1, "no mailboxes at all", 0 },
{ "tw B lists no mailbox at all, empty mailboxes: still the guard", TW, 0, 0,
  "Old#5/3,3/5,5:",
  "Old#5/3/5:", "",
  "create B Old",
  "Old#5:", 1, "use --force-deletes if its mailboxes", 0 },
{ "tw B lists no mailbox at all, forced: deleted on A", TW, 0, 1,
  "Old#5/3,3/5,5: 1,1:a",
  "Old#5/3/5: 1:a", "",
  "delete A Old", "", 0, NULL, 0 },
{ "tw mailbox moved into: delete + local copies, no guard", TW, 0, 0,
  "Old#5/3,3/5,5: 1,1:a 2,2:b;Arch#6/1,1/1,1:",
  "Old#5/3/5: 1:a 2:b;Arch#6/1/1:", "Arch#6/1/2: 1:a 2:b",
  "copy A Arch a - <A:Old:1\ncopy A Arch b - <A:Old:2\ndelete A Old",
  "Arch#6: 0,1:a:-,- 0,2:b:-,-", 0, NULL, 0 },
{ "tw rename on B", TW, 0, 0,
  "Foo#3/1,1/5,5: 1,1:a",
  "Foo#3/1/5: 1:a", "Bar#3/1/5: 1:a",
  "rename A Foo->Bar", "Bar#3: 1,1:a:-,-", 0, NULL, 0 },
{ "tw rename on both: A wins", TW, 0, 0,
  "Foo#3/1,1/5,5:",
  "X#3/1/5:", "Y#3/1/5:",
  "rename B Y->X", "X#3:", 0, NULL, 1 },
{ "tw rename, name taken: skipped", TW, 0, 0,
  "Foo#3/1,1/5,5:;Bar#4/1,1/5,5:",
  "Foo#3/1/5:;Bar#4/1/5:", "Bar#3/1/5:;Qux#4/1/5:",
  "rename A Bar->Qux", "Foo#3:\nQux#4:", 0,
  "cannot rename mailbox Foo to Bar on A: the name is in use", 0 },
{ "tw create, name taken: skipped until the next run", TW, 0, 0,
  "Foo#3/1,1/5,5:",
  "Foo#3/1/5:", "Bar#3/1/5:;Foo#7/1/1: 1:a",
  "rename A Foo->Bar", "Bar#3:", 0,
  "cannot create mailbox Foo on A yet", 0 },
/* ---- the guard ---- */
/* (generated cases below) */
/* ---- backup, SRC = A ---- */
{ "bk messages", BK, SIDE_A, 0,
  "INBOX#1/1,1/5,5: 1,1:a:S,S 2,2:b 3,3:c 4,0:t",
  "INBOX#1/1/6: 1:a 2:b 4:t 5:d", "INBOX#1/1/6: 1:a:SF 3:c 9:e",
  "copy B INBOX b - <A:INBOX:2\ncopy B INBOX t - <A:INBOX:4\n"
  "copy B INBOX d - <A:INBOX:5\nflags B INBOX 1 -\n"
  "expunge B INBOX 3\nexpunge B INBOX 9",
  "INBOX#1: 1,1:a:-,- 2,0:b:-,- 4,0:t:-,- 5,0:d:-,-", 0, NULL, 0 },
{ "bk SRC = B", BK, SIDE_B, 0,
  "INBOX#1/1,1/5,5: 1,1:a:S,S 2,2:b",
  "INBOX#1/1/6: 1:a:SF 2:b 9:e", "INBOX#1/1/6: 1:a 5:d",
  "copy A INBOX d - <B:INBOX:5\nflags A INBOX 1 -\n"
  "expunge A INBOX 2\nexpunge A INBOX 9",
  "INBOX#1: 0,5:d:-,- 1,1:a:-,-", 0, NULL, 0 },
{ "bk new pair: DST takes SRC's flags", BK, SIDE_A, 0,
  "INBOX#1/1,1/5,5:",
  "INBOX#1/1/6: 1:a:S:x", "INBOX#1/1/6: 3:a:F:y",
  "flags B INBOX 3 S [x]", "INBOX#1: 1,3:a:S,S:x,x", 0, NULL, 0 },
{ "bk mailboxes", BK, SIDE_A, 0,
  "INBOX#1/1,1/5,5:;Gone#2/1,1/5,5:;Lost#3/1,1/5,5: 1,1:a",
  "INBOX#1/1/5:;Lost#3/1/5: 1:a;New#4/1/1: 1:n",
  "INBOX#1/1/5:;Gone#2/1/5:;Extra#8/1/1:",
  "create B Lost\ncreate B New\ncopy B Lost a - <A:Lost:1\n"
  "copy B New n - <A:New:1\ndelete B Gone\ndelete B Extra",
  "INBOX#1:\nLost#3: 1,0:a:-,-\nNew#4: 1,0:n:-,-", 0, NULL, 0 },
{ "bk delete of a mailbox holding mail: guard", BK, SIDE_A, 0,
  "INBOX#1/1,1/5,5:",
  "INBOX#1/1/5:", "INBOX#1/1/5:;Extra#8/1/1: 1:x",
  "delete B Extra", "INBOX#1:", 1,
  "would delete mailbox Extra on B with 1 messages", 0 },
{ "bk rename: SRC's name wins", BK, SIDE_A, 0,
  "Foo#3/1,1/5,5:",
  "Foo#3/1/5:", "Bar#3/1/5:",
  "rename B Bar->Foo", "Foo#3:", 0, NULL, 0 },
{ "bk first sync: DST made identical, the guard for a mailbox with mail",
  BK, SIDE_A, 0,
  NULL,
  "INBOX#1/1/5: 1:a 2:b", "INBOX#9/7/3: 1:a:S 7:c;Extra#8/1/1: 1:x",
  "setguid B INBOX\ncopy B INBOX b - <A:INBOX:2\nflags B INBOX 1 -\n"
  "expunge B INBOX 7\ndelete B Extra",
  "INBOX#1: 1,1:a:-,- 2,0:b:-,-", 1,
  "would delete mailbox Extra on B with 1 messages", 0 },
{ "bk first sync, forced: DST made identical in one run", BK, SIDE_A, 1,
  NULL,
  "INBOX#1/1/5: 1:a 2:b", "INBOX#9/7/3: 1:a:S 7:c;Extra#8/1/1: 1:x",
  "setguid B INBOX\ncopy B INBOX b - <A:INBOX:2\nflags B INBOX 1 -\n"
  "expunge B INBOX 7\ndelete B Extra",
  "INBOX#1: 1,1:a:-,- 2,0:b:-,-", 0, "B is made identical to A", 0 },
{ "bk first sync, SRC = B: an empty extra mailbox goes without the guard",
  BK, SIDE_B, 0,
  NULL,
  "INBOX#9/7/3: 1:a 3:c;Empty#8/1/1:", "INBOX#1/1/5: 1:a:S",
  "setguid A INBOX\nflags A INBOX 1 S\nexpunge A INBOX 3\n"
  "delete A Empty",
  "INBOX#1: 1,1:a:S,S", 0, "A is made identical to B", 0 },
{ "bk SRC without INBOX: DST's INBOX is emptied, not deleted", BK, SIDE_A, 0,
  "INBOX#1/1,1/5,5: 1,1:a;Old#3/1,1/5,5:",
  "Old#3/1/5:", "INBOX#1/1/5: 1:a 2:b;Old#3/1/5:",
  "expunge B INBOX 1\nexpunge B INBOX 2", "Old#3:", 0, NULL, 0 },
{ "bk untrusted: DST mirrored all the same", BK, SIDE_A, 0,
  "INBOX#1/1,1/5,5: 1,1:a 2,2:b",
  "INBOX#1/2/5: 1:a", "INBOX#1/1/5: 1:a 2:b 3:c",
  "expunge B INBOX 2\nexpunge B INBOX 3", "INBOX#1: 1,1:a:-,-", 0,
  "uidvalidity of INBOX changed on A: mirroring A onto B", 0 },
{ "bk untrusted: more than half of 20 is the guard's", BK, SIDE_A, 0,
  "INBOX#1/1,1/5,5: 1,1:a",
  "INBOX#1/2/5: 1:a",
  "INBOX#1/1/5: 1:a 2:b 3:c 4:d 5:e 6:f 7:g 8:h 9:i 10:j 11:k 12:l 13:m "
  "14:n 15:o 16:p 17:q 18:r 19:s 20:t",
  "expunge B INBOX 2\nexpunge B INBOX 3\nexpunge B INBOX 4\n"
  "expunge B INBOX 5\nexpunge B INBOX 6\nexpunge B INBOX 7\n"
  "expunge B INBOX 8\nexpunge B INBOX 9\nexpunge B INBOX 10\n"
  "expunge B INBOX 11\nexpunge B INBOX 12\nexpunge B INBOX 13\n"
  "expunge B INBOX 14\nexpunge B INBOX 15\nexpunge B INBOX 16\n"
  "expunge B INBOX 17\nexpunge B INBOX 18\nexpunge B INBOX 19\n"
  "expunge B INBOX 20",
  "INBOX#1: 1,1:a:-,-", 1, "would expunge 19 of 20 messages in INBOX on B",
  0 },
/* ---- one-way, SRC = A ---- */
{ "ow messages", OW, SIDE_A, 0,
  "INBOX#1/1,1/5,5: 1,1:a:-,- 2,2:b 3,3:c",
  "INBOX#1/1/6: 1:a:S 2:b 4:d", "INBOX#1/1/6: 1:a 3:c 9:e",
  "copy B INBOX d - <A:INBOX:4\nflags B INBOX 1 S",
  "INBOX#1: 0,3:c:-,- 1,1:a:S,S 2,0:b:-,- 4,0:d:-,-", 0, NULL, 0 },
{ "ow tombstones stay", OW, SIDE_A, 0,
  "INBOX#1/1,1/5,5: 2,0:b:S,- 0,3:c:-,S",
  "INBOX#1/1/6: 2:b:SF", "INBOX#1/1/6: 3:c:S",
  "", "INBOX#1: 0,3:c:-,S 2,0:b:FS,-", 0, NULL, 0 },
{ "ow SRC = B", OW, SIDE_B, 0,
  "INBOX#1/1,1/5,5: 1,1:a:-,- 2,2:b 3,3:c",
  "INBOX#1/1/6: 1:a 3:c 9:e", "INBOX#1/1/6: 1:a:S 2:b 4:d",
  "copy A INBOX d - <B:INBOX:4\nflags A INBOX 1 S",
  "INBOX#1: 0,2:b:-,- 0,4:d:-,- 1,1:a:S,S 3,0:c:-,-", 0, NULL, 0 },
{ "ow new pair: DST takes SRC's flags", OW, SIDE_A, 0,
  "INBOX#1/1,1/5,5:",
  "INBOX#1/1/6: 1:a:S", "INBOX#1/1/6: 3:a:F",
  "flags B INBOX 3 S", "INBOX#1: 1,3:a:S,S", 0, NULL, 0 },
{ "ow untrusted: DST gets DST|SRC, nothing deleted", OW, SIDE_A, 0,
  "INBOX#1/1,1/5,5: 1,1:a 2,2:b",
  "INBOX#1/2/5: 1:a:S:x", "INBOX#1/1/5: 1:a:F:y 2:b 3:c",
  "flags B INBOX 1 FS [x y]", "INBOX#1: 1,1:a:S,FS:x,x+y", 0,
  "uidvalidity", 0 },
{ "ow mailboxes", OW, SIDE_A, 0,
  "Del#2/1,1/5,5: 1,1:a;Dnew#3/1,1/5,5: 1,1:a;Sdel#4/1,1/5,5: 1,1:a",
  "Del#2/1/5: 1:a:S;Dnew#3/1/6: 1:a 2:b;New#6/1/1: 1:n",
  "Sdel#4/1/5: 1:a;Mine#7/1/1: 1:m",
  "create B Dnew\ncreate B New\ncopy B Dnew b - <A:Dnew:2\n"
  "copy B New n - <A:New:1",
  "Del#2: 1,0:a:S,-\nDnew#3: 1,0:a:-,- 2,0:b:-,-\nNew#6: 1,0:n:-,-", 0,
  "recreated mailbox Dnew on B", 0 },
{ "ow mailbox kept deleted on DST stays so", OW, SIDE_A, 0,
  "Del#2/1,0/5,0: 1,0:a:S,-",
  "Del#2/1/5: 1:a:S", "",
  "", "Del#2: 1,0:a:S,-", 0, NULL, 0 },
{ "ow rename: SRC's name wins", OW, SIDE_A, 0,
  "Foo#3/1,1/5,5:",
  "Foo#3/1/5:", "Bar#3/1/5:",
  "rename B Bar->Foo", "Foo#3:", 0, NULL, 0 },
{ "ow first sync, SRC = B: A adopts B's GUID", OW, SIDE_B, 0,
  NULL,
  "INBOX#1/1/5: 1:a 2:x", "INBOX#9/7/3: 1:a 7:c",
  "setguid A INBOX\ncopy A INBOX c - <B:INBOX:7",
  "INBOX#9: 0,7:c:-,- 1,1:a:-,-", 0, "first sync", 0 },
};

static void
build(const struct pcase *c, int mirror, struct plan *pl)
{
	struct state		 base;
	struct view		 v[2];
	struct plan_opts	 o;
	size_t			 i;
	int			 r;

	parse_base(c->base, &base);
	parse_view(c->va, &v[mirror]);
	parse_view(c->vb, &v[mirror ^ 1]);
	if (mirror) {
		for (i = 0; i < base.n; i++) {
			struct state_mbox	*m = &base.mb[i];
			size_t			 j;
			uint32_t		 u;
			uint64_t		 q;

			u = m->uidvalidity[0];
			m->uidvalidity[0] = m->uidvalidity[1];
			m->uidvalidity[1] = u;
			q = m->modseq[0];
			m->modseq[0] = m->modseq[1];
			m->modseq[1] = q;
			for (j = 0; j < m->nmsgs; j++) {
				struct state_msg	*e = &m->msgs[j];
				char			*k;
				uint8_t			 f;

				u = e->uid[0];
				e->uid[0] = e->uid[1];
				e->uid[1] = u;
				f = e->flags[0];
				e->flags[0] = e->flags[1];
				e->flags[1] = f;
				k = e->kw[0];
				e->kw[0] = e->kw[1];
				e->kw[1] = k;
			}
		}
		state_sort(&base);
	}
	memset(&o, 0, sizeof(o));
	o.mode = (enum sync_mode)c->mode;
	o.src = (enum side)(c->src ^ mirror);
	o.force_deletes = c->force;
	r = plan_build(&base, v, &o, pl);
	if (r != 0)
		fail_msg("%s: plan_build: %d", c->name, r);
	check_invariants(pl, &o);
	state_clear(&base);
	view_free(&v[0]);
	view_free(&v[1]);
}

static void
test_cases(void **unused)
{
	size_t	 i;
	int	 bad = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase	*c = &cases[i];
		struct plan		 pl;
		char			*acts, *next;
		int			 ok;

		build(c, 0, &pl);
		acts = render_acts(&pl);
		next = render_next(&pl);
		ok = strcmp(acts, c->acts) == 0 && strcmp(next, c->next) == 0 &&
		    pl.guard_tripped == c->guard &&
		    (c->note == NULL || notes_have(&pl, c->note));
		if (!ok) {
			print_message("case '%s':\n--- actions\n%s\n--- want\n"
			    "%s\n--- next\n%s\n--- want\n%s\n--- guard %d "
			    "want %d\n", c->name, acts, c->acts, next, c->next,
			    pl.guard_tripped, c->guard);
			dump_notes(&pl);
			bad++;
		}
		free(acts);
		free(next);
		plan_free(&pl);
	}
	assert_int_equal(bad, 0);
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every action and next entry as one line, sides mirrored, sorted. */
static char *
render_set(const struct plan *pl, int mir)
{
	struct sbuf	 b = { NULL, 0, 0 }, line;
	char		**v;
	size_t		 n = 0, i, j, tot = pl->nact;

	for (i = 0; i < pl->next.n; i++)
		tot += pl->next.mb[i].nmsgs + 1;
	v = calloc(tot + 1, sizeof(*v));
	for (i = 0; i < pl->nact; i++) {
		memset(&line, 0, sizeof(line));
		render_one(&line, pl, &pl->act[i], mir);
		v[n++] = line.s;
	}
	for (i = 0; i < pl->next.n; i++) {
		const struct state_mbox *m = &pl->next.mb[i];

		memset(&line, 0, sizeof(line));
		sb_printf(&line, "next %s uv %u,%u", m->name,
		    m->uidvalidity[mir], m->uidvalidity[mir ^ 1]);
		v[n++] = line.s;
		for (j = 0; j < m->nmsgs; j++) {
			memset(&line, 0, sizeof(line));
			sb_printf(&line, "next %s ", m->name);
			render_ent(&line, &m->msgs[j], mir);
			v[n++] = line.s;
		}
	}
	qsort(v, n, sizeof(*v), str_cmp);
	sb_printf(&b, "%s", "");
	for (i = 0; i < n; i++) {
		sb_printf(&b, "%s\n", v[i]);
		free(v[i]);
	}
	free(v);
	return b.s;
}

/* Swapping A and B (views, the base's per-side fields, SRC) mirrors it. */
static void
test_symmetry(void **unused)
{
	size_t	 i;
	int	 bad = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase	*c = &cases[i];
		struct plan		 p1, p2;
		char			*s1, *s2;

		if (c->nosym)
			continue;
		build(c, 0, &p1);
		build(c, 1, &p2);
		s1 = render_set(&p1, 0);
		s2 = render_set(&p2, 1);
		if (strcmp(s1, s2) != 0 || p1.guard_tripped !=
		    p2.guard_tripped) {
			print_message("case '%s' is not symmetric:\n%s---\n%s",
			    c->name, s1, s2);
			bad++;
		}
		free(s1);
		free(s2);
		plan_free(&p1);
		plan_free(&p2);
	}
	assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ */
/* Merge tables: every combination of one bit / one keyword. */

struct bitrow {
	int	 oa, ob, a, b, want;
};

/* Two-way: a bit changed on one side only takes that side's value. */
static const struct bitrow tw_rows[] = {
	{ 0, 0, 0, 0, 0 }, { 0, 0, 0, 1, 1 }, { 0, 0, 1, 0, 1 },
	{ 0, 0, 1, 1, 1 }, { 0, 1, 0, 0, 0 }, { 0, 1, 0, 1, 1 },
	{ 0, 1, 1, 0, 1 }, { 0, 1, 1, 1, 1 }, { 1, 0, 0, 0, 0 },
	{ 1, 0, 0, 1, 1 }, { 1, 0, 1, 0, 1 }, { 1, 0, 1, 1, 1 },
	{ 1, 1, 0, 0, 0 }, { 1, 1, 0, 1, 0 }, { 1, 1, 1, 0, 0 },
	{ 1, 1, 1, 1, 1 },
};

/* One-way (a = SRC, b = DST): DST takes SRC's only if DST did not change. */
static const struct bitrow ow_rows[] = {
	{ 0, 0, 0, 0, 0 }, { 0, 0, 0, 1, 1 }, { 0, 0, 1, 0, 1 },
	{ 0, 0, 1, 1, 1 }, { 0, 1, 0, 0, 0 }, { 0, 1, 0, 1, 1 },
	{ 0, 1, 1, 0, 0 }, { 0, 1, 1, 1, 1 }, { 1, 0, 0, 0, 0 },
	{ 1, 0, 0, 1, 1 }, { 1, 0, 1, 0, 0 }, { 1, 0, 1, 1, 1 },
	{ 1, 1, 0, 0, 0 }, { 1, 1, 0, 1, 0 }, { 1, 1, 1, 0, 0 },
	{ 1, 1, 1, 1, 1 },
};

static void
run_bit(int mode, const struct bitrow *r, int kw)
{
	struct pcase	 c;
	struct plan	 pl;
	char		 base[128], va[64], vb[64];
	const char	*on = kw ? "-:work" : "F", *off = kw ? "-:-" : "-";
	size_t		 i;
	int		 s;

	snprintf(base, sizeof(base), "INBOX#1/1,1/5,5: 1,1:a:%s,%s%s%s",
	    kw ? "-" : (r->oa ? "F" : "-"), kw ? "-" : (r->ob ? "F" : "-"),
	    kw ? ":" : "", kw ? (r->oa ? (r->ob ? "work,work" : "work,-") :
	    (r->ob ? "-,work" : "-,-")) : "");
	snprintf(va, sizeof(va), "INBOX#1/1/6: 1:a:%s", r->a ? on : off);
	snprintf(vb, sizeof(vb), "INBOX#1/1/6: 1:a:%s", r->b ? on : off);
	memset(&c, 0, sizeof(c));
	c.name = "bit";
	c.mode = mode;
	c.base = base;
	c.va = va;
	c.vb = vb;
	build(&c, 0, &pl);
	assert_int_equal(pl.next.n, 1);
	assert_int_equal(pl.next.mb[0].nmsgs, 1);
	for (s = 0; s < 2; s++) {
		const struct state_msg	*e = &pl.next.mb[0].msgs[0];
		int			 want, cur, got;

		if (mode == MODE_ONEWAY && s == SIDE_A)
			want = r->a;	/* SRC keeps its own */
		else
			want = r->want;
		got = kw ? e->kw[s] != NULL && strcmp(e->kw[s], "work") == 0 :
		    (e->flags[s] & FLAG_FLAGGED) != 0;
		if (got != want)
			fail_msg("mode %d kw %d row oa%d ob%d a%d b%d: side %d "
			    "got %d want %d", mode, kw, r->oa, r->ob, r->a,
			    r->b, s, got, want);
		/* A FLAGS action exactly where the value changes. */
		cur = s == SIDE_A ? r->a : r->b;
		for (i = 0; i < pl.nact; i++)
			if (pl.act[i].side == (enum side)s)
				break;
		assert_int_equal(i < pl.nact, cur != want);
	}
	plan_free(&pl);
}

static void
test_merge_tables(void **unused)
{
	size_t	 i;
	int	 kw;

	for (kw = 0; kw < 2; kw++) {
		for (i = 0; i < sizeof(tw_rows) / sizeof(tw_rows[0]); i++)
			run_bit(MODE_TWOWAY, &tw_rows[i], kw);
		for (i = 0; i < sizeof(ow_rows) / sizeof(ow_rows[0]); i++)
			run_bit(MODE_ONEWAY, &ow_rows[i], kw);
	}
}

/* ------------------------------------------------------------------ */
/* The mass-deletion guard, generated: n messages, k expunged on B. */

static void
run_guard(int n, int k, int force, int mode, int want)
{
	struct sbuf	 base = { NULL, 0, 0 }, va = { NULL, 0, 0 };
	struct sbuf	 vb = { NULL, 0, 0 };
	struct pcase	 c;
	struct plan	 pl;
	size_t		 i, nexp = 0;
	int		 j;

	sb_printf(&base, "INBOX#1/1,1/5,5:");
	sb_printf(&va, "INBOX#1/1/5:");
	sb_printf(&vb, "INBOX#1/1/6:");
	for (j = 1; j <= n; j++) {
		/* GUIDs need not differ for this; use one letter. */
		sb_printf(&base, " %d,%d:m", j, j);
		sb_printf(&va, " %d:m", j);
		if (j > k)
			sb_printf(&vb, " %d:m", j);
	}
	memset(&c, 0, sizeof(c));
	c.name = "guard";
	c.mode = mode;
	c.src = SIDE_B;
	c.force = force;
	c.base = base.s;
	c.va = va.s;
	c.vb = vb.s;
	build(&c, 0, &pl);
	for (i = 0; i < pl.nact; i++)
		if (pl.act[i].type == ACT_EXPUNGE && pl.act[i].side == SIDE_A)
			nexp++;
	assert_int_equal(nexp, (size_t)k);	/* the plan stays complete */
	if (pl.guard_tripped != want)
		fail_msg("guard n=%d k=%d force=%d: got %d want %d", n, k,
		    force, pl.guard_tripped, want);
	if (want) {
		char	 msg[128];

		snprintf(msg, sizeof(msg), "would expunge %d of %d messages in "
		    "INBOX on A; use --force-deletes", k, n);
		assert_true(notes_have(&pl, msg));
	}
	plan_free(&pl);
	free(base.s);
	free(va.s);
	free(vb.s);
}

static void
test_guard(void **unused)
{
	run_guard(20, 11, 0, MODE_TWOWAY, 1);
	run_guard(20, 10, 0, MODE_TWOWAY, 0);
	run_guard(10, 10, 0, MODE_TWOWAY, 0);
	run_guard(19, 19, 0, MODE_TWOWAY, 0);
	run_guard(40, 30, 0, MODE_TWOWAY, 1);
	run_guard(40, 40, 0, MODE_TWOWAY, 1);
	run_guard(20, 11, 1, MODE_TWOWAY, 0);
	run_guard(20, 11, 0, MODE_BACKUP, 1);
	run_guard(20, 10, 0, MODE_BACKUP, 0);
}

/* ------------------------------------------------------------------ */
/* Determinism and the digest. */

static uint64_t
digest_of(const char *base, const char *va, const char *vb, int mode)
{
	struct pcase	 c;
	struct plan	 pl;
	uint64_t	 d;

	memset(&c, 0, sizeof(c));
	c.name = "digest";
	c.mode = mode;
	c.base = base;
	c.va = va;
	c.vb = vb;
	build(&c, 0, &pl);
	d = pl.digest;
	plan_free(&pl);
	return d;
}

static void
test_digest(void **unused)
{
	const char	*base =
	    "INBOX#1/1,1/5,5: 1,1:a 2,2:b 3,3:c;Arch#2/1,1/5,5:";
	const char	*va = "INBOX#1/1/6: 1:a:S 2:b 4:d;Arch#2/1/5:";
	const char	*vb = "INBOX#1/1/6: 1:a 3:c 9:e;Arch#2/1/5:";
	uint64_t	 d = digest_of(base, va, vb, TW);

	/* Equal inputs, equal digest; input order does not matter. */
	assert_true(d == digest_of(base, va, vb, TW));
	assert_true(d == digest_of(
	    "Arch#2/1,1/5,5:;INBOX#1/1,1/5,5: 3,3:c 2,2:b 1,1:a",
	    "Arch#2/1/5:;INBOX#1/1/6: 4:d 2:b 1:a:S",
	    "Arch#2/1/5:;INBOX#1/1/6: 9:e 1:a 3:c", TW));
	/* Any change in an action changes it. */
	assert_true(d != digest_of(base,
	    "INBOX#1/1/6: 1:a:F 2:b 4:d;Arch#2/1/5:", vb, TW));
	assert_true(d != digest_of(base,
	    "INBOX#1/1/6: 1:a:S:x 2:b 4:d;Arch#2/1/5:", vb, TW));
	assert_true(d != digest_of(base,
	    "INBOX#1/1/6: 1:a:S 2:b 5:d;Arch#2/1/5:", vb, TW));
	assert_true(d != digest_of(base,
	    "INBOX#1/1/6: 1:a:S 2:b 4:f;Arch#2/1/5:", vb, TW));
	assert_true(d != digest_of(base, va,
	    "INBOX#1/1/6: 1:a 3:c 8:e;Arch#2/1/5:", TW));
	assert_true(d != digest_of(base, va,
	    "INBOX#1/1/6: 1:a 3:c 9:e;Arch#2/1/5: 1:d", TW));
	assert_true(d != digest_of(base, va, vb, BK));
	assert_true(d != digest_of(base, va, vb, OW));
	/* A name differs: a rename. */
	assert_true(d != digest_of(base, va,
	    "INBOX#1/1/6: 1:a 3:c 9:e;Arch2#2/1/5:", TW));
}

/* ------------------------------------------------------------------ */
/* Errors and details. */

static void
test_errors(void **unused)
{
	struct state		 base;
	struct view		 v[2];
	struct plan		 pl;
	struct plan_opts	 o;

	memset(&o, 0, sizeof(o));
	/* unchanged without a base entry */
	parse_base(NULL, &base);
	parse_view("INBOX#1/1/5/u:", &v[0]);
	parse_view("INBOX#1/1/5:", &v[1]);
	assert_int_equal(plan_build(&base, v, &o, &pl), MSYNC_ERR_PROTO);
	assert_int_equal(pl.nact, 0);
	view_free(&v[0]);
	view_free(&v[1]);
	/* one name twice on a side */
	parse_view("INBOX#1/1/5:;INBOX#2/1/5:", &v[0]);
	parse_view("", &v[1]);
	assert_int_equal(plan_build(&base, v, &o, &pl), MSYNC_ERR_PROTO);
	view_free(&v[0]);
	/* one GUID twice on a side */
	parse_view("INBOX#1/1/5:;Other#1/1/5:", &v[0]);
	assert_int_equal(plan_build(&base, v, &o, &pl), MSYNC_ERR_PROTO);
	view_free(&v[0]);
	/* one uid twice in a mailbox */
	parse_view("INBOX#1/1/5: 1:a 1:b", &v[0]);
	assert_int_equal(plan_build(&base, v, &o, &pl), MSYNC_ERR_PROTO);
	view_free(&v[0]);
	/* uid 0 */
	parse_view("INBOX#1/1/5: 0:a", &v[0]);
	assert_int_equal(plan_build(&base, v, &o, &pl), MSYNC_ERR_PROTO);
	view_free(&v[0]);
	/* a bad mode */
	parse_view("INBOX#1/1/5: 1:a", &v[0]);
	o.mode = (enum sync_mode)7;
	assert_int_equal(plan_build(&base, v, &o, &pl), MSYNC_ERR_INTERNAL);
	view_free(&v[0]);
	view_free(&v[1]);
	/* NULL base is an empty base */
	o.mode = MODE_TWOWAY;
	parse_view("INBOX#1/1/5: 1:a", &v[0]);
	parse_view("", &v[1]);
	assert_int_equal(plan_build(NULL, v, &o, &pl), 0);
	assert_int_equal(pl.nact, 2);
	assert_true(notes_have(&pl, "first sync"));
	/* the created side's uidvalidity and modseq are 0 in next */
	assert_int_equal(pl.next.mb[0].uidvalidity[SIDE_A], 1);
	assert_true(pl.next.mb[0].modseq[SIDE_A] == 5);
	assert_int_equal(pl.next.mb[0].uidvalidity[SIDE_B], 0);
	assert_true(pl.next.mb[0].modseq[SIDE_B] == 0);
	assert_non_null(pl.mb[0].final_name);
	assert_null(pl.mb[0].name[SIDE_B]);
	plan_free(&pl);
	plan_free(&pl);
	view_free(&v[0]);
	view_free(&v[1]);
	plan_free(NULL);
	view_free(NULL);
	assert_string_equal(plan_act_name(ACT_COPY), "copy");
	assert_string_equal(plan_act_name(ACT_MBOX_DELETE), "delete");
	assert_string_equal(plan_act_name((enum act_type)99), "unknown");
}

/* A plan's next, saved and reloaded, is the same state. */
static void
test_next_roundtrip(void **unused)
{
	struct pcase	 c;
	struct plan	 pl;
	struct state	 back;
	uint8_t		*buf;
	size_t		 len;

	memset(&c, 0, sizeof(c));
	c.mode = TW;
	c.base = "INBOX#1/1,1/5,5: 1,1:a:S,S:x,x 2,0:b";
	c.va = "INBOX#1/1/6: 1:a:S:x 2:b 3:c";
	c.vb = "INBOX#1/1/6: 1:a:S:x 4:d";
	build(&c, 0, &pl);
	assert_int_equal(state_encode(&pl.next, &buf, &len), 0);
	assert_int_equal(state_decode(buf, len, &back), 0);
	assert_int_equal(back.n, 1);
	assert_int_equal(back.mb[0].nmsgs, pl.next.mb[0].nmsgs);
	assert_int_equal(memcmp(back.mb[0].msgs, pl.next.mb[0].msgs, 0), 0);
	free(buf);
	state_clear(&back);
	plan_free(&pl);
}

/* ------------------------------------------------------------------ */
/* Random inputs: determinism, symmetry, and a simulated run that must
 * converge (a second plan with nothing to do) without losing mail. */

static uint64_t rng_state;

static unsigned
rnd(unsigned n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)((rng_state >> 33) % n);
}

static const char *const rkw[] = { NULL, "x", "x y", "y" };

static uint8_t
rflags(void)
{
	static const uint8_t f[] = { 0, FLAG_SEEN, FLAG_FLAGGED,
	    FLAG_SEEN | FLAG_FLAGGED };

	return f[rnd(4)];
}

static void
vadd(struct view_mbox *m, uint32_t uid, int g, uint8_t fl, const char *kw)
{
	struct msg	 msg;

	memset(&msg, 0, sizeof(msg));
	msg.uid = uid;
	msg.guid = mguid(g);
	msg.flags = fl;
	msg.kw = (char *)kw;
	assert_int_equal(msglist_add(&m->msgs, &msg), 0);
}

/* A random base and two views derived from it. */
static void
gen(struct state *base, struct view v[2], int namepair)
{
	int	 g, s;
	size_t	 i;

	memset(base, 0, sizeof(*base));
	memset(v, 0, 2 * sizeof(*v));
	for (g = 1; g <= 3; g++) {
		struct state_mbox	*bm = NULL;
		char			 name[8];

		snprintf(name, sizeof(name), "M%d", g);
		if (!namepair && rnd(10) < 7) {
			int n = (int)rnd(7);

			assert_int_equal(state_add_mbox(base,
			    &(struct guid){ .b = { [0] = (uint8_t)g } }, name,
			    &bm), 0);
			bm->uidvalidity[0] = bm->uidvalidity[1] = 1;
			bm->modseq[0] = bm->modseq[1] = 5;
			for (i = 0; i < (size_t)n; i++) {
				struct state_msg e;

				memset(&e, 0, sizeof(e));
				e.guid = mguid('a' + (int)rnd(5));
				e.uid[0] = e.uid[1] = (uint32_t)i + 1;
				if (rnd(8) == 0)
					e.uid[rnd(2)] = 0;
				e.flags[0] = rflags();
				e.flags[1] = rnd(3) ? e.flags[0] : rflags();
				e.kw[0] = (char *)rkw[rnd(4)];
				e.kw[1] = rnd(3) ? e.kw[0] :
				    (char *)rkw[rnd(4)];
				assert_int_equal(state_add_msg(bm, &e), 0);
			}
		}
		for (s = 0; s < 2; s++) {
			struct view_mbox	*m;
			int			 k;

			if (rnd(10) >= 8)
				continue;
			assert_int_equal(view_add(&v[s], name, &m), 0);
			m->guid = bguid(g + (namepair && s ? 10 : 0));
			m->uidvalidity = rnd(12) == 0 ? 2 : 1;
			m->modseq = rnd(12) == 0 ? 4 : 6;
			for (i = 0; bm != NULL && i < bm->nmsgs; i++) {
				const struct state_msg *e = &bm->msgs[i];

				if (e->uid[s] == 0 || rnd(4) == 0)
					continue;
				vadd(m, e->uid[s], e->guid.b[0],
				    rnd(3) ? e->flags[s] : rflags(),
				    rnd(4) ? e->kw[s] : rkw[rnd(4)]);
			}
			for (k = (int)rnd(4); k > 0; k--)
				vadd(m, 100 + (uint32_t)k, 'a' + (int)rnd(5),
				    rflags(), rkw[rnd(4)]);
		}
	}
	state_sort(base);
}

/* A copy of view v with mailboxes and messages in reverse order. */
static void
view_reversed(const struct view *v, struct view *out)
{
	size_t	 i, j;

	memset(out, 0, sizeof(*out));
	for (i = v->n; i-- > 0; ) {
		const struct view_mbox	*m = &v->mb[i];
		struct view_mbox	*n;

		assert_int_equal(view_add(out, m->name, &n), 0);
		n->guid = m->guid;
		n->uidvalidity = m->uidvalidity;
		n->modseq = m->modseq;
		n->unchanged = m->unchanged;
		for (j = m->msgs.n; j-- > 0; )
			assert_int_equal(msglist_add(&n->msgs, &m->msgs.v[j]),
			    0);
	}
}

static void
state_mirror(struct state *st)
{
	size_t	 i, j;

	for (i = 0; i < st->n; i++) {
		struct state_mbox	*m = &st->mb[i];
		uint32_t		 u;
		uint64_t		 q;

		u = m->uidvalidity[0];
		m->uidvalidity[0] = m->uidvalidity[1];
		m->uidvalidity[1] = u;
		q = m->modseq[0];
		m->modseq[0] = m->modseq[1];
		m->modseq[1] = q;
		for (j = 0; j < m->nmsgs; j++) {
			struct state_msg	*e = &m->msgs[j];
			char			*k;
			uint8_t			 f;

			u = e->uid[0];
			e->uid[0] = e->uid[1];
			e->uid[1] = u;
			f = e->flags[0];
			e->flags[0] = e->flags[1];
			e->flags[1] = f;
			k = e->kw[0];
			e->kw[0] = e->kw[1];
			e->kw[1] = k;
		}
	}
	state_sort(st);
}

static void
state_copy(const struct state *st, struct state *out)
{
	uint8_t	*buf;
	size_t	 len;

	assert_int_equal(state_encode(st, &buf, &len), 0);
	assert_int_equal(state_decode(buf, len, out), 0);
	free(buf);
}

static struct msg *
find_uid(struct view_mbox *m, uint32_t uid)
{
	size_t	 i;

	for (i = 0; i < m->msgs.n; i++)
		if (m->msgs.v[i].uid == uid)
			return &m->msgs.v[i];
	return NULL;
}

/*
 * Runs plan pl against the model stores v[] (as the brains would) and
 * fills in pl->next: uids of copies, uidvalidity of created mailboxes.
 */
static void
apply(struct plan *pl, struct view v[2])
{
	long	*idx[2];
	size_t	 i, j;
	int	 s;

	for (s = 0; s < 2; s++) {
		idx[s] = calloc(pl->nmb + 1, sizeof(long));
		for (i = 0; i < pl->nmb; i++) {
			idx[s][i] = -1;
			for (j = 0; pl->mb[i].name[s] != NULL && j < v[s].n;
			    j++)
				if (strcmp(v[s].mb[j].name, pl->mb[i].name[s])
				    == 0)
					idx[s][i] = (long)j;
		}
	}
	for (i = 0; i < pl->nact; i++) {
		const struct action	*a = &pl->act[i];
		struct view_mbox	*m = NULL, *sm;
		struct msg		*msg, nm;
		uint32_t		 max = 0;

		s = a->side;
		if (a->type == ACT_MBOX_CREATE) {
			assert_int_equal(idx[s][a->mbox], -1);
			assert_int_equal(view_add(&v[s],
			    pl->mb[a->mbox].final_name, &m), 0);
			m->guid = pl->mb[a->mbox].guid;
			m->uidvalidity = 77;
			m->modseq = 1;
			idx[s][a->mbox] = (long)v[s].n - 1;
			continue;
		}
		assert_true(idx[s][a->mbox] >= 0);
		m = &v[s].mb[idx[s][a->mbox]];
		switch (a->type) {
		case ACT_MBOX_RENAME:
			free(m->name);
			m->name = strdup(pl->mb[a->mbox].final_name);
			break;
		case ACT_MBOX_SETGUID:
			m->guid = pl->mb[a->mbox].guid;
			break;
		case ACT_COPY:
			assert_true(idx[a->src_side][a->src_mbox] >= 0);
			sm = &v[a->src_side].mb[idx[a->src_side][a->src_mbox]];
			msg = find_uid(sm, a->src_uid);
			assert_non_null(msg);	/* the source exists */
			assert_int_equal(guid_cmp(&msg->guid, &a->guid), 0);
			for (j = 0; j < m->msgs.n; j++)
				if (m->msgs.v[j].uid > max)
					max = m->msgs.v[j].uid;
			memset(&nm, 0, sizeof(nm));
			nm.uid = max + 1000;
			nm.guid = a->guid;
			nm.flags = a->flags;
			nm.kw = a->kw;
			assert_int_equal(msglist_add(&m->msgs, &nm), 0);
			plan_next_msg(pl, a)->uid[s] = nm.uid;
			break;
		case ACT_FLAGS:
			msg = find_uid(m, a->uid);
			assert_non_null(msg);
			assert_int_equal(guid_cmp(&msg->guid, &a->guid), 0);
			msg->flags = a->flags;
			free(msg->kw);
			msg->kw = a->kw != NULL ? strdup(a->kw) : NULL;
			break;
		case ACT_EXPUNGE:
			msg = find_uid(m, a->uid);
			assert_non_null(msg);
			assert_int_equal(guid_cmp(&msg->guid, &a->guid), 0);
			free(msg->kw);
			j = (size_t)(msg - m->msgs.v);
			memmove(msg, msg + 1, (m->msgs.n - j - 1) *
			    sizeof(*msg));
			m->msgs.n--;
			break;
		case ACT_MBOX_DELETE:
			m->guid = bguid(0xff);	/* marked; removed below */
			break;
		default:
			fail();
		}
	}
	/* Remove deleted mailboxes; fill created sides into next. */
	for (s = 0; s < 2; s++) {
		for (j = 0; j < v[s].n; ) {
			if (v[s].mb[j].guid.b[0] != 0xff) {
				j++;
				continue;
			}
			free(v[s].mb[j].name);
			msglist_free(&v[s].mb[j].msgs);
			memmove(&v[s].mb[j], &v[s].mb[j + 1],
			    (v[s].n - j - 1) * sizeof(v[s].mb[0]));
			v[s].n--;
		}
		for (i = 0; i < pl->next.n; i++)
			for (j = 0; j < v[s].n; j++)
				if (guid_cmp(&v[s].mb[j].guid,
				    &pl->next.mb[i].guid) == 0 &&
				    pl->next.mb[i].uidvalidity[s] == 0)
					pl->next.mb[i].uidvalidity[s] =
					    v[s].mb[j].uidvalidity;
		free(idx[s]);
	}
	for (i = 0; i < pl->next.n; i++)
		for (j = 0; j < pl->next.mb[i].nmsgs; j++) {
			const struct state_msg *e = &pl->next.mb[i].msgs[j];

			assert_true(e->uid[0] != 0 || e->uid[1] != 0);
		}
	state_sort(&pl->next);
}

static int
lmsg_uid_sort(const void *pa, const void *pb)
{
	const struct msg	*a = pa, *b = pb;

	return a->uid < b->uid ? -1 : a->uid > b->uid;
}

static int
msg_cmp(const void *pa, const void *pb)
{
	const struct msg	*a = pa, *b = pb;
	int			 r;

	if ((r = guid_cmp(&a->guid, &b->guid)) != 0)
		return r;
	if (a->flags != b->flags)
		return a->flags - b->flags;
	return strcmp(a->kw ? a->kw : "", b->kw ? b->kw : "");
}

static void
dump_view(const char *tag, const struct view *v)
{
	size_t	 i, j;

	for (i = 0; i < v->n; i++) {
		print_message("%s %s#%d uv %u ms %llu:", tag, v->mb[i].name,
		    v->mb[i].guid.b[0], v->mb[i].uidvalidity,
		    (unsigned long long)v->mb[i].modseq);
		for (j = 0; j < v->mb[i].msgs.n; j++)
			print_message(" %u:%c:%s:%s", v->mb[i].msgs.v[j].uid,
			    v->mb[i].msgs.v[j].guid.b[0],
			    flagstr(v->mb[i].msgs.v[j].flags),
			    kwstr(v->mb[i].msgs.v[j].kw));
		print_message("\n");
	}
}

static void
dump_state(const struct state *st)
{
	size_t	 i, j;

	for (i = 0; i < st->n; i++) {
		struct sbuf b = { NULL, 0, 0 };

		sb_printf(&b, "base %s#%d uv %u,%u ms %llu,%llu:",
		    st->mb[i].name, st->mb[i].guid.b[0],
		    st->mb[i].uidvalidity[0], st->mb[i].uidvalidity[1],
		    (unsigned long long)st->mb[i].modseq[0],
		    (unsigned long long)st->mb[i].modseq[1]);
		for (j = 0; j < st->mb[i].nmsgs; j++) {
			sb_printf(&b, " ");
			render_ent(&b, &st->mb[i].msgs[j], 0);
		}
		print_message("%s\n", b.s);
		free(b.s);
	}
}

/* Removes from v[] the messages that are tombstones in st. */
static void
drop_tombstones(struct view v[2], const struct state *st)
{
	size_t	 i, j, k;
	int	 s;

	for (i = 0; i < st->n; i++)
		for (j = 0; j < st->mb[i].nmsgs; j++) {
			const struct state_msg *e = &st->mb[i].msgs[j];

			for (s = 0; s < 2; s++) {
				if (e->uid[s] == 0 || e->uid[s ^ 1] != 0)
					continue;
				for (k = 0; k < v[s].n; k++) {
					struct view_mbox *m = &v[s].mb[k];
					struct msg		*msg;

					if (guid_cmp(&m->guid, &st->mb[i].guid)
					    != 0 ||
					    (msg = find_uid(m, e->uid[s])) ==
					    NULL)
						continue;
					free(msg->kw);
					memmove(msg, msg + 1, (m->msgs.n - 1 -
					    (size_t)(msg - m->msgs.v)) *
					    sizeof(*msg));
					m->msgs.n--;
				}
			}
		}
}

/* 1 if both sides hold the same mailboxes with the same messages. */
static int
sides_equal(struct view v[2])
{
	size_t	 i, j, k;

	if (v[0].n != v[1].n)
		return 0;
	for (i = 0; i < v[0].n; i++) {
		struct view_mbox *a = &v[0].mb[i], *b = NULL;

		for (j = 0; j < v[1].n; j++)
			if (strcmp(v[1].mb[j].name, a->name) == 0)
				b = &v[1].mb[j];
		if (b == NULL || guid_cmp(&a->guid, &b->guid) != 0 ||
		    a->msgs.n != b->msgs.n)
			return 0;
		if (a->msgs.n == 0)
			continue;
		qsort(a->msgs.v, a->msgs.n, sizeof(struct msg), msg_cmp);
		qsort(b->msgs.v, b->msgs.n, sizeof(struct msg), msg_cmp);
		for (k = 0; k < a->msgs.n; k++)
			if (msg_cmp(&a->msgs.v[k], &b->msgs.v[k]) != 0)
				return 0;
		qsort(a->msgs.v, a->msgs.n, sizeof(struct msg), lmsg_uid_sort);
		qsort(b->msgs.v, b->msgs.n, sizeof(struct msg), lmsg_uid_sort);
	}
	return 1;
}

/* The set of message GUIDs (first bytes) on side s, as a bit mask. */
static unsigned
guids_on(const struct view *v)
{
	unsigned	 m = 0;
	size_t		 i, j;

	for (i = 0; i < v->n; i++)
		for (j = 0; j < v->mb[i].msgs.n; j++)
			m |= 1u << (v->mb[i].msgs.v[j].guid.b[0] - 'a');
	return m;
}

static void
test_random(void **unused)
{
	int	 iter, run, iters = 3000;

	if (getenv("PLAN_ITERS") != NULL)
		iters = atoi(getenv("PLAN_ITERS"));
	for (iter = 0; iter < iters; iter++) {
		struct state		 base, b2, b3;
		struct view		 v[2], r[2], m[2];
		struct plan_opts	 o;
		struct plan		 pl, p2;
		unsigned		 before;
		int			 namepair, s;
		char			*s1, *s2;

		rng_state = (uint64_t)iter * 7919 + 1;
		namepair = rnd(6) == 0;
		gen(&base, v, namepair);
		memset(&o, 0, sizeof(o));
		o.mode = (enum sync_mode)rnd(3);
		o.src = (enum side)rnd(2);
		o.force_deletes = 1;
		assert_int_equal(plan_build(&base, v, &o, &pl), 0);
		check_invariants(&pl, &o);

		/* Input order does not matter. */
		view_reversed(&v[0], &r[0]);
		view_reversed(&v[1], &r[1]);
		assert_int_equal(plan_build(&base, r, &o, &p2), 0);
		if (p2.digest != pl.digest)
			fail_msg("iteration %d: order changed the plan", iter);
		plan_free(&p2);

		/* Mirrored inputs give the mirrored plan. */
		if (!namepair) {
			state_copy(&base, &b2);
			state_mirror(&b2);
			m[0] = r[1];
			m[1] = r[0];
			o.src ^= 1;
			assert_int_equal(plan_build(&b2, m, &o, &p2), 0);
			o.src ^= 1;
			s1 = render_set(&pl, 0);
			s2 = render_set(&p2, 1);
			if (strcmp(s1, s2) != 0)
				fail_msg("iteration %d: not symmetric:\n%s---\n"
				    "%s", iter, s1, s2);
			free(s1);
			free(s2);
			plan_free(&p2);
			state_clear(&b2);
		}
		view_free(&r[0]);
		view_free(&r[1]);

		if (getenv("PLAN_DEBUG") != NULL &&
		    atoi(getenv("PLAN_DEBUG")) == iter) {
			char *a = render_acts(&pl), *n = render_next(&pl);

			print_message("mode %d src %d\n", o.mode, o.src);
			dump_state(&base);
			dump_view("A", &v[0]);
			dump_view("B", &v[1]);
			print_message("acts:\n%s\nnext:\n%s\n", a, n);
			dump_notes(&pl);
			free(a);
			free(n);
		}
		/* Run it, then plan again until there is nothing to do. */
		before = guids_on(&v[0]) | guids_on(&v[1]);
		for (run = 0; ; run++) {
			int empty = pl.nact == 0;

			apply(&pl, v);
			state_copy(&pl.next, &b3);
			plan_free(&pl);
			state_clear(&base);
			base = b3;
			assert_int_equal(plan_build(&base, v, &o, &pl), 0);
			check_invariants(&pl, &o);
			if (getenv("PLAN_DEBUG") != NULL &&
			    atoi(getenv("PLAN_DEBUG")) == iter) {
				char *a = render_acts(&pl);

				print_message("--- run %d\n", run + 1);
				dump_state(&base);
				dump_view("A", &v[0]);
				dump_view("B", &v[1]);
				print_message("acts:\n%s\n", a);
				free(a);
			}
			if (pl.nact == 0 && empty)
				break;
			if (run == 3)
				fail_msg("iteration %d (mode %d): no "
				    "convergence after %d runs", iter, o.mode,
				    run);
		}
		if (o.mode == MODE_TWOWAY)
			drop_tombstones(v, &base);
		/*
		 * Backup of a SRC with no mailboxes at all never gets a base,
		 * so it stays a first sync, which deletes nothing.
		 */
		if (o.mode != MODE_ONEWAY && (o.mode != MODE_BACKUP ||
		    base.n > 0) && !sides_equal(v))
			fail_msg("iteration %d (mode %d): sides differ", iter,
			    o.mode);
		if (o.mode == MODE_TWOWAY && namepair) {
			/* First sync: a union, nothing lost. */
			for (s = 0; s < 2; s++)
				assert_int_equal(guids_on(&v[s]), before);
		}
		plan_free(&pl);
		state_clear(&base);
		view_free(&v[0]);
		view_free(&v[1]);
	}
}

/* ------------------------------------------------------------------ */
/*
 * The plan pinned: the digests (actions, their order, the next base),
 * action counts, guard results and notes that main's planner (c5e9cac,
 * before session 10 made its lists 8 bytes) gave on varied inputs.  A
 * change of memory layout must not change any plan: old and new
 * binaries agree on digests or refuse to sync.
 */

/* Keywords, some not in canonical form (unsorted, repeated, spaces). */
static const char *const pkw[] = { NULL, "", "x", "x y", "y x", "y",
    "x x", "$Label1 work", " y", "b a c", "a  b" };

static const char *
rpkw(void)
{
	return rnd(3) ? NULL : pkw[rnd(sizeof(pkw) / sizeof(pkw[0]))];
}

/* By uid, then the rest: a total order, whatever qsort is used. */
static int
msg_uid_cmp(const void *pa, const void *pb)
{
	const struct msg	*a = pa, *b = pb;
	int			 r;

	if (a->uid != b->uid)
		return a->uid < b->uid ? -1 : 1;
	if ((r = guid_cmp(&a->guid, &b->guid)) != 0)
		return r;
	if (a->flags != b->flags)
		return a->flags < b->flags ? -1 : 1;
	if (a->kw == NULL || b->kw == NULL)
		return (a->kw != NULL) - (b->kw != NULL);
	return strcmp(a->kw, b->kw);
}

/*
 * Random inputs in the shapes the planner meets: up to 6 mailboxes, a
 * base or none, B's uids not in A's order, messages moved between
 * mailboxes or there twice, tombstones, a base that uses a uid twice,
 * keywords not in canonical form, unchanged views (the list from the
 * base), changed uidvalidities, modseqs gone back, renames, mailboxes
 * on one side only or paired by name, an empty destination.  big: up
 * to 400 messages a mailbox.
 */
static void
gen_pin(struct state *base, struct view v[2], struct plan_opts *o, int big)
{
	uint32_t	*perm;
	size_t		 nmb, i, j, n, npool;
	int		 g, s, first, dupe;
	const char	*kw;
	uint8_t		 fl;
	int		 gc;

	memset(base, 0, sizeof(*base));
	memset(v, 0, 2 * sizeof(*v));
	memset(o, 0, sizeof(*o));
	o->mode = (enum sync_mode)rnd(3);
	o->src = (enum side)rnd(2);
	o->force_deletes = (int)rnd(2);
	nmb = 1 + rnd(6);
	npool = big ? 900 : 40;
	first = rnd(5) == 0;
	if (first && rnd(6) == 0)
		o->had_base = 1;
	for (g = 1; g <= (int)nmb; g++) {
		struct state_mbox	*bm = NULL;
		char			 name[16], rn[16];

		if (g == 1)
			snprintf(name, sizeof(name), "INBOX");
		else
			snprintf(name, sizeof(name), "F%d", g);
		if (!first && rnd(10) < 8) {
			n = rnd(big ? 400 : 30);
			struct guid	 mg = bguid(g);

			dupe = rnd(20) == 0;
			assert_int_equal(state_add_mbox(base, &mg, name, &bm),
			    0);
			bm->uidvalidity[0] = bm->uidvalidity[1] = 1;
			bm->modseq[0] = bm->modseq[1] = 5;
			perm = calloc(n + 1, sizeof(*perm));
			assert_non_null(perm);
			for (i = 0; i < n; i++)
				perm[i] = (uint32_t)i + 1;
			for (i = n; i > 1; i--) {
				uint32_t t;

				j = rnd((unsigned)i);
				t = perm[i - 1];
				perm[i - 1] = perm[j];
				perm[j] = t;
			}
			for (i = 0; i < n; i++) {
				struct state_msg e;

				memset(&e, 0, sizeof(e));
				e.guid = mguid('a' + (int)rnd((unsigned)npool));
				e.uid[0] = (uint32_t)i * 2 + 1;
				e.uid[1] = perm[i];
				if (dupe && i > 0 && rnd(8) == 0)
					e.uid[0] = (uint32_t)i * 2 - 1;
				if (rnd(10) == 0)
					e.uid[rnd(2)] = 0;
				e.flags[0] = (uint8_t)rnd(64);
				e.flags[1] = rnd(3) ? e.flags[0] :
				    (uint8_t)rnd(64);
				e.kw[0] = (char *)rpkw();
				e.kw[1] = rnd(3) ? e.kw[0] : (char *)rpkw();
				assert_int_equal(state_add_msg(bm, &e), 0);
			}
			free(perm);
		}
		for (s = 0; s < 2; s++) {
			struct view_mbox	*m;
			uint32_t		 top = 0;
			int			 k;

			if (rnd(100) >= (bm != NULL ? 85u : 70u) ||
			    (first && s == 1 && o->had_base == 0 &&
			    rnd(3) == 0))
				continue;
			snprintf(rn, sizeof(rn), "R%d", g);
			assert_int_equal(view_add(&v[s], rnd(15) == 0 ? rn :
			    name, &m), 0);
			m->guid = bguid(g + (rnd(12) == 0 ? 20 : 0));
			m->uidvalidity = rnd(15) == 0 ? 2 : 1;
			m->modseq = rnd(15) == 0 ? 4 : 6;
			if (bm != NULL && rnd(4) == 0 &&
			    guid_cmp(&m->guid, &bm->guid) == 0) {
				m->unchanged = 1;
				m->uidvalidity = bm->uidvalidity[s];
				m->modseq = bm->modseq[s];
				continue;
			}
			for (i = 0; bm != NULL && i < bm->nmsgs; i++) {
				const struct state_msg *e = &bm->msgs[i];

				if (e->uid[s] > top)
					top = e->uid[s];
				if (e->uid[s] == 0 || rnd(5) == 0)
					continue;
				/*
				 * The draws in a fixed order, last argument
				 * first (as gcc, which recorded the pins,
				 * evaluated them): the order of a call's
				 * arguments is unspecified, and clang's
				 * differs.
				 */
				kw = rnd(7) ? e->kw[s] : rpkw();
				fl = rnd(5) ? e->flags[s] : (uint8_t)rnd(64);
				vadd(m, e->uid[s], e->guid.b[0], fl, kw);
			}
			for (k = (int)rnd(big ? 60 : 6); k > 0; k--) {
				kw = rpkw();
				fl = (uint8_t)rnd(64);
				gc = 'a' + (int)rnd((unsigned)npool);
				vadd(m, top + (uint32_t)k, gc, fl, kw);
			}
			if (m->msgs.n > 1)
				qsort(m->msgs.v, m->msgs.n, sizeof(*m->msgs.v),
				    msg_uid_cmp);
			for (i = j = 0; i < m->msgs.n; i++) {
				if (j > 0 && m->msgs.v[j - 1].uid ==
				    m->msgs.v[i].uid) {
					free(m->msgs.v[i].kw);
					continue;
				}
				m->msgs.v[j++] = m->msgs.v[i];
			}
			m->msgs.n = j;
		}
	}
	state_sort(base);
}

/* FNV-1a, 64 bits: enough to tell a plan from another. */
static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t	*b = p;

	while (n-- > 0)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h;
}

/*
 * The hash of the outcomes of iters plans from seed: return code,
 * digest, action count, guard, notes.
 */
static uint64_t
pin_run(uint64_t seed, int iters, int big)
{
	uint64_t	 h = 0xcbf29ce484222325ULL;
	int		 iter;

	for (iter = 0; iter < iters; iter++) {
		struct state		 base;
		struct view		 v[2];
		struct plan_opts	 o;
		struct plan		 pl;
		uint64_t		 x[4];
		size_t			 i;
		int			 r;

		rng_state = seed + (uint64_t)iter * 104729;
		gen_pin(&base, v, &o, big);
		if ((r = plan_build(&base, v, &o, &pl)) == 0)
			check_invariants(&pl, &o);
		x[0] = (uint64_t)(int64_t)r;
		x[1] = pl.digest;
		x[2] = pl.nact;
		x[3] = (uint64_t)pl.guard_tripped;
		h = fnv(h, x, sizeof(x));
		for (i = 0; i < pl.nnotes; i++)
			h = fnv(h, pl.notes[i], strlen(pl.notes[i]) + 1);
		if (getenv("PLAN_PIN_DEBUG") != NULL)
			print_message("%d: r %d digest %016llx nact %zu\n",
			    iter, r, (unsigned long long)pl.digest, pl.nact);
		plan_free(&pl);
		state_clear(&base);
		view_free(&v[0]);
		view_free(&v[1]);
	}
	return h;
}

/* Side s's mailbox named name in v, or NULL. */
static const struct view_mbox *
view_named(const struct view *v, const char *name)
{
	size_t	 i;

	for (i = 0; name != NULL && i < v->n; i++)
		if (strcmp(v->mb[i].name, name) == 0)
			return &v->mb[i];
	return NULL;
}

/*
 * 1 if next's messages hold on side s exactly list's (uids, flags,
 * keywords; none and "" alike, as the brain's final check has them).
 */
static int
next_holds(const struct state_mbox *next, int s, const struct msglist *list)
{
	size_t	 i, j, k = 0;

	for (i = 0; next != NULL && i < next->nmsgs; i++) {
		const struct state_msg *e = &next->msgs[i];

		if (e->uid[s] == 0)
			continue;
		k++;
		for (j = 0; j < list->n && list->v[j].uid != e->uid[s]; j++)
			;
		if (j == list->n || list->v[j].flags != e->flags[s] ||
		    strcmp(list->v[j].kw ? list->v[j].kw : "",
		    e->kw[s] ? e->kw[s] : "") != 0)
			return 0;
	}
	return k == list->n;
}

/*
 * plan_opts.release (issue 10.3, memory): the planner frees the views'
 * lists it is allowed to, the plan is the same as without, and a list
 * freed under PLAN_RELEASE_UNTOUCHED is one the plan changes nothing of
 * on that side, reads nothing of for a local copy, and next holds
 * exactly.
 */
static void
test_release(void **unused)
{
	int	 iter, iters = 3000, released = 0, kept = 0;

	for (iter = 0; iter < iters; iter++) {
		struct state		 base;
		struct view		 v[2], r[2];
		struct plan_opts	 o;
		struct plan		 pl, p2;
		size_t			 i, k;
		int			 s;

		rng_state = (uint64_t)iter * 15485863 + 3;
		gen(&base, v, rnd(6) == 0);
		memset(&o, 0, sizeof(o));
		o.mode = (enum sync_mode)rnd(3);
		o.src = (enum side)rnd(2);
		o.force_deletes = 1;
		assert_int_equal(plan_build(&base, v, &o, &pl), 0);
		view_reversed(&v[0], &r[0]);
		view_reversed(&v[1], &r[1]);
		for (s = 0; s < 2; s++)
			o.release[s] = (enum plan_release)rnd(3);
		assert_int_equal(plan_build(&base, r, &o, &p2), 0);
		if (p2.digest != pl.digest || p2.nact != pl.nact)
			fail_msg("iteration %d: release changed the plan",
			    iter);
		for (i = 0; i < p2.nmb; i++)
			for (s = 0; s < 2; s++) {
				const struct view_mbox	*was, *now;

				was = view_named(&v[s], p2.mb[i].name[s]);
				now = view_named(&r[s], p2.mb[i].name[s]);
				if (was == NULL)
					continue;
				if (o.release[s] == PLAN_RELEASE_ALL) {
					assert_int_equal(now->msgs.n, 0);
					continue;
				}
				if (!p2.mb[i].released[s]) {
					assert_int_equal(now->msgs.n,
					    was->msgs.n);
					kept += was->msgs.n > 0;
					continue;
				}
				assert_int_equal(o.release[s],
				    PLAN_RELEASE_UNTOUCHED);
				assert_int_equal(now->msgs.n, 0);
				released++;
				for (k = 0; k < p2.nact; k++) {
					const struct action *a = &p2.act[k];

					if ((a->side == s && a->mbox == i) ||
					    (a->type == ACT_COPY &&
					    a->src_side == s &&
					    a->side == s && a->src_mbox == i))
						fail_msg("iteration %d: %s "
						    "released on %d but "
						    "touched", iter,
						    p2.mb[i].name[s], s);
				}
				if (!next_holds(state_find(&p2.next,
				    &p2.mb[i].guid), s, &was->msgs))
					fail_msg("iteration %d: %s released "
					    "on %d, next differs", iter,
					    p2.mb[i].name[s], s);
			}
		plan_free(&pl);
		plan_free(&p2);
		view_free(&r[0]);
		view_free(&r[1]);
		view_free(&v[0]);
		view_free(&v[1]);
		state_clear(&base);
	}
	/* Both outcomes happen, so the checks above check something. */
	assert_true(released > 100);
	assert_true(kept > 100);
}

static void
test_pinned(void **unused)
{
	static const struct {
		uint64_t	 seed;
		int		 iters, big;
		uint64_t	 want;
	} pin[] = {
		{ 1, 1500, 0, 0x4e603d2e64955832ULL },
		{ 2, 1500, 0, 0xfa6831a79625e533ULL },
		{ 3, 150, 1, 0xd06106db2502687cULL },
	};
	size_t	 i;
	int	 bad = 0;

	(void)unused;
	for (i = 0; i < sizeof(pin) / sizeof(pin[0]); i++) {
		uint64_t h = pin_run(pin[i].seed, pin[i].iters, pin[i].big);

		if (h != pin[i].want) {
			print_message("pin %zu: %016llx, main's %016llx\n", i,
			    (unsigned long long)h,
			    (unsigned long long)pin[i].want);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* msync_sort: an element, compared by key only (seq shows the order). */
struct skey {
	uint32_t	 key;
	uint32_t	 seq;
};

static int
skey_cmp(const void *pa, const void *pb)
{
	const struct skey	*a = pa, *b = pb;

	return a->key < b->key ? -1 : a->key > b->key;
}

/*
 * msync_sort of a list in order but for a tail (the next base of a 1%
 * run), of one with the tail in front, and of a random one: in key
 * order, and equal keys in their input order (what a stable sort of the
 * whole gives; the plan's digest depends on the order).  Keys are
 * unique (a random number * 300 + the index) but on every third
 * iteration.
 */
static void
test_sort_tail(void **unused)
{
	struct skey	 v[300], want[300], t;
	size_t		 n, tail, i, j;
	int		 iter;

	(void)unused;
	srandom(7);
	for (iter = 0; iter < 2000; iter++) {
		n = (size_t)(random() % 300);
		tail = n > 0 ? (size_t)random() % (n / 3 + 1) : 0;
		for (i = 0; i < n; i++) {
			/* Every third iteration, few distinct keys. */
			v[i].key = iter % 3 ? (uint32_t)(random() % 1000) *
			    300 + (uint32_t)i : (uint32_t)(random() % 20);
			v[i].seq = (uint32_t)i;
		}
		/* The first n - tail in order (a stable insertion sort). */
		for (i = 1; i < n - tail; i++)
			for (j = i; j > 0 && v[j - 1].key > v[j].key; j--) {
				t = v[j];
				v[j] = v[j - 1];
				v[j - 1] = t;
			}
		for (i = 0; i < n; i++)
			v[i].seq = (uint32_t)i;
		if (iter % 5 == 4 && n > 1)	/* a small key at the end */
			v[n - 1].key = 0;
		memcpy(want, v, n * sizeof(*v));
		for (i = 1; i < n; i++)
			for (j = i; j > 0 && want[j - 1].key > want[j].key;
			    j--) {
				t = want[j];
				want[j] = want[j - 1];
				want[j - 1] = t;
			}
		msync_sort(v, n, sizeof(*v), skey_cmp);
		/*
		 * With ties only the keys are compared: qsort need not be
		 * stable (glibc's is a merge sort, others are not).
		 */
		for (i = 0; i < n; i++)
			if (v[i].key != want[i].key ||
			    (iter % 3 != 0 && v[i].seq != want[i].seq))
				fail_msg("iteration %d: element %zu of %zu "
				    "(tail %zu) differs", iter, i, n, tail);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_symmetry),
		cmocka_unit_test(test_merge_tables),
		cmocka_unit_test(test_guard),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_next_roundtrip),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_sort_tail),
		cmocka_unit_test(test_pinned),
		cmocka_unit_test(test_release),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
