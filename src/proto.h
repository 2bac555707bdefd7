/*
 * proto.h — the wire protocol: record types, their decoded forms, and
 * pure encode/decode between bytes and structs.  docs/PROTOCOL.md is the
 * grammar.  Only buf.c, proto.c, chan.c and lz4s.c touch peer bytes.
 *
 * A record is type (u8) + length (u32, big-endian) + payload.  Integers
 * are big-endian.  A string is u32 length + bytes (no NUL, valid UTF-8).
 * A GUID is 16 raw bytes.
 *
 * All memory belongs to the caller unless stated otherwise.  Decoders
 * return 0, or MSYNC_ERR_PROTO / MSYNC_ERR_TOOBIG / MSYNC_ERR_BADNAME /
 * MSYNC_ERR_NOMEM, and on failure leave *out empty (nothing to free).
 * Every decoder consumes exactly the payload; trailing bytes are an error.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "msync.h"
#include "plan.h"
#include "state.h"

#define PROTO_VERSION_MIN	2
#define PROTO_VERSION_MAX	5	/* 3: no MSG_DATA pcheck; MSGS_DELTA, BASE_REFS;
				   4: HELLO_FPRINT, FPRINTS;
				   5: HELLO_MBOXO */
#define PROTO_HANDSHAKE_MAX	256	/* bytes in the handshake line */
#define PROTO_DATA_MAX		(256 * 1024) /* payload of one MSG_DATA */
#define PROTO_LIST_CHUNK	1024	/* entries per MSGS / BASE_MSGS record */
#define PROTO_PATTERNS_MAX	256	/* include/exclude patterns in HELLO */

enum rec_type {
	REC_HELLO = 1,		/* A -> B: mode, options, B's store */
	REC_BASE_MBOX = 2,	/* A -> B: one mailbox of the base */
	REC_BASE_MSGS = 3,	/* A -> B: up to LIST_CHUNK of its messages */
	REC_BASE_END = 4,	/* A -> B: end of the base */
	REC_MBOX = 5,		/* both: one mailbox of the sender's view */
	REC_MSGS = 6,		/* both: up to LIST_CHUNK of its messages */
	REC_LIST_END = 7,	/* both: end of the view */
	REC_DIGEST = 8,		/* both: the plan's digest */
	REC_MSG_BEGIN = 9,	/* both: a message for a COPY action */
	REC_MSG_DATA = 10,	/* both: a piece of its content */
	REC_MSG_END = 11,	/* both: end of the message */
	REC_MSG_SKIP = 12,	/* both: a message that could not be sent */
	REC_RESULT = 13,	/* B -> A: results of B's actions */
	REC_DONE = 14,		/* both: finished, with final mailbox status */
	REC_LOG = 15,		/* both: a line for the user's terminal */
	REC_ERROR = 16,		/* both: fatal; the run stops */
	REC_BYE = 17,		/* A -> B: state committed; exit */
	REC_KEEPALIVE = 18,	/* both: "still working"; chan.c eats it */
	REC_MSGS_DELTA = 19,	/* A -> B, version 3: changes against the base */
	REC_BASE_REFS = 20,	/* A -> B, version 3: base messages, B's side
				   left to B's own listing */
	REC_FPRINTS = 21,	/* B -> A, version 4: header fingerprints of
				   the MSGS before it, when A asked */
	REC_TYPE_MAX = 21
};

/* Maximum payload of a record of the given type; 0 for unknown types. */
size_t	 proto_max_len(uint8_t type);
const char *proto_rec_name(uint8_t type);

#define HELLO_DRY_RUN		0x01
#define HELLO_FORCE_DELETES	0x02
#define HELLO_FULL		0x04
#define HELLO_READ_ONLY		0x08	/* B must not write its store */
#define HELLO_CREATE		0x10	/* B may create its store root */
#define HELLO_FPRINT		0x20	/* version 4: B sends FPRINTS for its
					   mailboxes without a base */
#define HELLO_MBOXO		0x40	/* version 5: B's mbox store is read
					   and written as mboxo (";format=") */

struct rec_hello {
	uint8_t		 mode;		/* enum sync_mode; LIST for --list */
	uint8_t		 src;		/* enum side: the source side */
	uint32_t	 opts;		/* HELLO_* */
	char		*path;		/* owned; B's store root */
	uint8_t		 layout;	/* enum store_layout */
	char		**include;	/* owned; -m patterns */
	uint32_t	 ninclude;
	char		**exclude;	/* owned; -x patterns */
	uint32_t	 nexclude;
};
#define MODE_LIST	3	/* rec_hello.mode: only list B's store */

struct rec_mbox {			/* REC_MBOX and REC_BASE_MBOX */
	char		*name;		/* owned; checked with names_valid */
	struct guid	 guid;
	uint32_t	 uidvalidity[2];/* REC_MBOX uses [0] only */
	uint64_t	 modseq[2];	/* REC_MBOX uses [0] only */
	uint8_t		 unchanged;	/* REC_MBOX: 1 listing taken from base,
					   2 mailbox unreadable (no list),
					   3 changes against the base follow
					   (MSGS_DELTA, version 3) */
	uint32_t	 nmsgs;		/* messages that follow */
	uint32_t	 count;		/* REC_MBOX: messages in the mailbox */
	uint64_t	 bytes;		/* REC_MBOX: their total size */
};

struct rec_msg_begin {
	uint32_t	 act;		/* index into the plan's actions */
	uint64_t	 size;
	int64_t		 date;
};

struct rec_result {
	uint32_t	 act;		/* index into the plan's actions */
	uint32_t	 uid;		/* COPY: the new uid, else 0 */
	int32_t		 status;	/* 0 or MSYNC_ERR_* */
};

struct rec_done_mbox {
	uint32_t	 mbox;		/* index into the plan's mailboxes */
	uint32_t	 uidvalidity;
	uint64_t	 modseq;	/* 0: listing differs from the plan */
};

struct rec_done {
	int32_t		 status;	/* 0, or MSYNC_ERR_* of the sender */
	struct rec_done_mbox *mb;	/* owned */
	uint32_t	 n;
};

/*
 * Encoders append one whole record (header and payload) to a heap buffer
 * that the chan queues; see chan_put_*.  The functions below fill *out
 * (owned by the caller, free()) with the payload only.
 */
int	 proto_enc_hello(const struct rec_hello *, uint8_t **out, size_t *len);
int	 proto_dec_hello(const uint8_t *, size_t, struct rec_hello *);
void	 rec_hello_free(struct rec_hello *);

int	 proto_enc_mbox(const struct rec_mbox *, uint8_t **out, size_t *len);
int	 proto_dec_mbox(const uint8_t *, size_t, struct rec_mbox *);
void	 rec_mbox_free(struct rec_mbox *);

/* REC_MSGS: msgs[0..n); the decoder appends to *out. */
int	 proto_enc_msgs(const struct msg *, size_t n, uint8_t **out,
	    size_t *len);
int	 proto_dec_msgs(const uint8_t *, size_t, struct msglist *out);

/* REC_BASE_MSGS: msgs[0..n); the decoder appends to *mb. */
/*
 * One entry of a MSGS_DELTA record: how the sender's listing of a mailbox
 * differs from its side of the base (docs/PROTOCOL.md).  GONE uses m.uid
 * only, FLAGS m.uid, m.flags and m.kw, NEW all of m.
 */
#define CHANGE_GONE	0
#define CHANGE_FLAGS	1
#define CHANGE_NEW	2
struct msg_change {
	uint8_t		 op;		/* CHANGE_* */
	struct msg	 m;		/* m.kw owned */
};

int	 proto_enc_msgs_delta(const struct msg_change *, size_t n,
	    uint8_t **out, size_t *len);
int	 proto_dec_msgs_delta(const uint8_t *, size_t,
	    struct msg_change **v, size_t *n, size_t *cap);
void	 msg_changes_free(struct msg_change *, size_t n);

/*
 * One entry of a BASE_REFS record (docs/PROTOCOL.md): a base message
 * whose B side (GUID, flags, keywords) B takes from its own listing by
 * uid[B], unless REF_FULL.  REF_SAME: A's flags and keywords are B's.
 * REF_NEXT: both uids are one more than the previous entry's.
 */
#define REF_FULL	0x01
#define REF_SAME	0x02
#define REF_NEXT	0x04
struct base_ref {
	uint8_t		 tag;		/* REF_* */
	struct state_msg sm;		/* sm.kw[] owned */
};

int	 proto_enc_base_refs(const struct base_ref *, size_t n,
	    const struct base_ref *prev, uint8_t **out, size_t *len);
int	 proto_dec_base_refs(const uint8_t *, size_t, struct base_ref **v,
	    size_t *n, size_t *cap);
void	 base_refs_free(struct base_ref *, size_t n);

int	 proto_enc_base_msgs(const struct state_msg *, size_t n,
	    uint8_t **out, size_t *len);
int	 proto_dec_base_msgs(const uint8_t *, size_t, struct state_mbox *mb);

/*
 * One entry of a FPRINTS record (version 4): the header fingerprint
 * (src/fprint.h) of the sender's message uid in the mailbox of the MBOX
 * before it.
 */
struct fprint_ent {
	uint32_t	 uid;
	struct guid	 fp;
};
int	 proto_enc_fprints(const struct fprint_ent *, size_t n, uint8_t **out,
	    size_t *len);
/* Appends to *v (*n used, *cap allocated); uids increase across calls. */
int	 proto_dec_fprints(const uint8_t *, size_t, struct fprint_ent **v,
	    size_t *n, size_t *cap);
int	 proto_enc_digest(uint64_t digest, uint32_t nact, uint8_t **out,
	    size_t *len);
int	 proto_dec_digest(const uint8_t *, size_t, uint64_t *digest,
	    uint32_t *nact);

int	 proto_enc_msg_begin(const struct rec_msg_begin *, uint8_t **out,
	    size_t *len);
int	 proto_dec_msg_begin(const uint8_t *, size_t, struct rec_msg_begin *);

/* REC_MSG_SKIP: act + status. */
int	 proto_enc_msg_skip(uint32_t act, int32_t status, uint8_t **out,
	    size_t *len);
int	 proto_dec_msg_skip(const uint8_t *, size_t, uint32_t *act,
	    int32_t *status);

/* REC_RESULT: n results; the decoder allocates *out. */
int	 proto_enc_results(const struct rec_result *, size_t n, uint8_t **out,
	    size_t *len);
int	 proto_dec_results(const uint8_t *, size_t, struct rec_result **out,
	    size_t *n);

int	 proto_enc_done(const struct rec_done *, uint8_t **out, size_t *len);
int	 proto_dec_done(const uint8_t *, size_t, struct rec_done *);
void	 rec_done_free(struct rec_done *);

/* REC_LOG (level 0 error .. 4 debug) and REC_ERROR (code) + text. */
int	 proto_enc_text(int32_t n, const char *text, uint8_t **out,
	    size_t *len);
int	 proto_dec_text(const uint8_t *, size_t, int32_t *n, char **text);

#endif /* PROTO_H */
