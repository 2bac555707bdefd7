/*
 * msync.h — small things every module shares: sides, error codes, limits,
 * message identity and the per-message record that stores, the planner,
 * the state and the wire all speak.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef MSYNC_H
#define MSYNC_H

#include <stddef.h>
#include <stdint.h>

#define MSYNC_VERSION	"0.1.0"

/*
 * Sides are absolute: A is the initiator (the process the user started),
 * B is its peer.  Per-side data is an array [2]; the other side is s ^ 1.
 */
enum side {
	SIDE_A = 0,
	SIDE_B = 1
};

/* What a sync does; see DESIGN.md "Sync state". */
enum sync_mode {
	MODE_TWOWAY = 0,	/* three-way merge against the base */
	MODE_BACKUP = 1,	/* DST := SRC; SRC untouched */
	MODE_ONEWAY = 2		/* SRC's changes merged into DST; nothing deleted */
};

/*
 * Error codes.  Functions below the brain return 0 or one of these; they
 * never exit.  MSYNC_ERR_IO keeps errno intact for the caller.
 */
#define MSYNC_OK		  0
#define MSYNC_ERR_INTERNAL	(-1)	/* a bug: an invariant broke */
#define MSYNC_ERR_NOMEM		(-2)
#define MSYNC_ERR_INCOMPLETE	(-3)	/* need more bytes (decoders) */
#define MSYNC_ERR_PROTO		(-4)	/* malformed or unexpected record */
#define MSYNC_ERR_TOOBIG	(-5)	/* a length or count over its limit */
#define MSYNC_ERR_BADNAME	(-6)	/* a name failed validation */
#define MSYNC_ERR_IO		(-7)	/* a system call failed; see errno */
#define MSYNC_ERR_PEER_EOF	(-8)	/* the connection closed */
#define MSYNC_ERR_LOCKED	(-9)	/* another run holds the lock */
#define MSYNC_ERR_STATE_CORRUPT	(-10)	/* a state or index file is bad */
#define MSYNC_ERR_STORE_CHANGED	(-11)	/* the store changed under us */
#define MSYNC_ERR_NOTFOUND	(-12)	/* no such mailbox or message */
#define MSYNC_ERR_EXISTS	(-13)	/* the mailbox already exists */
#define MSYNC_ERR_BADDATA	(-14)	/* content failed a check (GUID) */
#define MSYNC_ERR_READONLY	(-15)	/* a write to a read-only store */
#define MSYNC_ERR_USAGE		(-16)	/* bad option or location */
#define MSYNC_ERR_UNREACHABLE	(-17)	/* the peer could not be started */
#define MSYNC_ERR_VERSION	(-18)	/* no common protocol version */
#define MSYNC_ERR_GUARD		(-19)	/* the mass-deletion guard tripped */
#define MSYNC_ERR_TIMEOUT	(-20)	/* the peer went quiet (--timeout) */
#define MSYNC_ERR_AUTH		(-21)	/* credentials refused: needs a person */
#define MSYNC_ERR_THROTTLED	(-22)	/* the server said "come back later" */
#define MSYNC_ERR_RENUMBERED	(-23)	/* one mailbox's UIDVALIDITY moved */
#define MSYNC_ERR_LAST		MSYNC_ERR_RENUMBERED	/* the lowest code */

/* Exit statuses (DESIGN.md), matching <sysexits.h> where they overlap. */
#define EXIT_INSYNC	0
#define EXIT_ERROR	1
#define EXIT_CHANGED	2
#define EXIT_USAGE	64
#define EXIT_DATAERR	65
#define EXIT_UNREACH	69
#define EXIT_TEMPFAIL	75
#define EXIT_PROTOCOL	76
#define EXIT_NOPERM	77	/* login refused: fix the credentials */

/*
 * Limits.  Every length and count from the wire or from disk is checked
 * against one of these before it is used.
 */
#define MSYNC_NAME_MAX		1024	/* bytes in a mailbox name */
#define MSYNC_NAME_DEPTH	32	/* hierarchy levels in a mailbox name */
#define MSYNC_KW_MAX		26	/* keywords on one message (a..z) */
#define MSYNC_KWNAME_MAX	64	/* bytes in one keyword name */
#define MSYNC_KWSTR_MAX		(MSYNC_KW_MAX * (MSYNC_KWNAME_MAX + 1))
#define MSYNC_MBOX_MAX		100000	/* mailboxes in one store */
#define MSYNC_MSGS_MAX		10000000 /* messages in one mailbox */
#define MSYNC_MSG_SIZE_MAX	(4ULL << 30) /* bytes in one message */
#define MSYNC_PATH_MAX		4096	/* bytes in a store path */

/* Message flags, one bit each, in Maildir info order (D F P R S T). */
#define FLAG_DRAFT	0x01
#define FLAG_FLAGGED	0x02
#define FLAG_PASSED	0x04
#define FLAG_REPLIED	0x08
#define FLAG_SEEN	0x10
#define FLAG_TRASHED	0x20
#define FLAG_ALL	0x3f

/* A 128-bit identifier: a message GUID or a mailbox GUID. */
struct guid {
	uint8_t	 b[16];
};

/* Bytes 8k..8k+7 of g as a big-endian number (one load on most CPUs). */
static inline uint64_t
guid_half(const struct guid *g, int k)
{
	const uint8_t	*p = g->b + 8 * k;

	return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 |
	    (uint64_t)p[2] << 40 | (uint64_t)p[3] << 32 |
	    (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
	    (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

/*
 * memcmp's order of two GUIDs (-1, 0, 1), inline: planning compares
 * GUIDs a few times per message of every changed folder, and a call
 * to memcmp for 16 bytes cost more than the comparison.
 */
static inline int
guid_cmp(const struct guid *a, const struct guid *b)
{
	uint64_t	 x = guid_half(a, 0), y = guid_half(b, 0);

	if (x == y) {
		x = guid_half(a, 1);
		y = guid_half(b, 1);
	}
	return x < y ? -1 : x > y;
}

/*
 * One message as a store lists it and as the wire carries it.
 * Keywords are names (never Maildir letters), sorted, separated by one
 * space, or NULL for none: "$Forwarded $Label1 work".
 */
struct msg {
	uint32_t	 uid;		/* per-side UID, never 0 */
	struct guid	 guid;		/* XXH3-128 of content, CRLF -> LF */
	uint8_t		 flags;		/* FLAG_* bits */
	char		*kw;		/* owned; NULL or sorted keyword names */
	uint64_t	 size;		/* bytes on disk */
	int64_t		 date;		/* received date, seconds since epoch */
};

/* A growable list of messages; msglist_free frees every kw too. */
struct msglist {
	struct msg	*v;		/* owned */
	size_t		 n;		/* used */
	size_t		 cap;		/* allocated */
};

/* util.c */
int		 msync_grow(void *vecp, size_t *cap, size_t n, size_t elem);
const char	*msync_strerror(int);
int		 msync_exit_status(int);
int		 msglist_add(struct msglist *, const struct msg *);
void		 msglist_free(struct msglist *);
int		 msync_u32_cmp(const void *, const void *);
/* qsort/bsearch order of struct msg by uid. */
int		 msync_msg_uid_cmp(const void *, const void *);
long long	 msync_now_ms(void);
void		 msync_release_free(void);
void		 msync_sort(void *, size_t n, size_t size,
		    int (*cmp)(const void *, const void *));
int		 guid_is_zero(const struct guid *);
void		 guid_hex(const struct guid *, char out[33]);
int		 guid_from_hex(const char *, struct guid *);
int		 guid_random(struct guid *);
int		 msync_mkdirs(const char *dir);
/* *why = a formatted one-line reason (owned), unless one is set already. */
void		 msync_why(char **why, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

#endif /* MSYNC_H */
