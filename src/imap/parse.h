/*
 * parse.h — IMAP server responses (RFC 3501 section 7/9, RFC 7162,
 * RFC 4315) as pure functions: bytes -> structs.  Only this file and
 * conn.c touch the server's bytes.
 *
 * Two steps:
 *   imap_frame()  finds where one response ends in a buffer, following
 *                 literals ("{N}\r\n" and N bytes), and stops at a literal
 *                 the caller wants to stream (a message body): the caller
 *                 then moves its N bytes elsewhere and replaces the
 *                 literal's header with NIL (imap_frame_splice).
 *   imap_parse()  turns one complete response into a struct imap_resp:
 *                 the tag or '*' or '+', a number ("* 3 EXISTS"), the kind
 *                 (upper-cased), for status responses the [code] and text,
 *                 for data responses a tree of values.
 *
 * Every size is bounded (IMAP_*_MAX below) before it is used; an over-long
 * line, literal or response is MSYNC_ERR_TOOBIG, a syntax error
 * MSYNC_ERR_PROTO.  Neither function reads outside the buffer it is given.
 *
 * All memory belongs to the caller unless stated otherwise; an imap_resp's
 * values point into its own arena and live until imap_resp_free().
 */
#ifndef IMAP_PARSE_H
#define IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define IMAP_LINE_MAX	 (64 * 1024)	/* bytes in one line of a response */
#define IMAP_LITERAL_MAX (256 * 1024)	/* a literal kept in memory */
#define IMAP_RESP_MAX	 (1024 * 1024)	/* one response, kept literals incl. */
#define IMAP_VALS_MAX	 16384		/* values in one response */
#define IMAP_DEPTH_MAX	 16		/* nested parentheses */
#define IMAP_TAG_MAX	 32		/* bytes in a tag and in a kind */
#define IMAP_BODY_MAX	 (4ULL << 30)	/* bytes in a streamed body */

/* Where imap_frame() stopped. */
struct imap_frame {
	size_t		 scanned;	/* bytes of buf known to be complete */
	size_t		 end;		/* set when done: the response's length */
	int		 done;		/* a whole response is in buf[0..end) */
	int		 stream;	/* stopped at a body literal, see below */
	size_t		 lit_start;	/* stream: offset of the '{' */
	size_t		 lit_hdr_end;	/* stream: offset after its CRLF */
	uint64_t	 lit_size;	/* stream: N */
};

/*
 * Looks for the end of the response that starts at buf[0].  f must be
 * zeroed before the first call for a response and kept between calls as
 * more bytes arrive (scanning resumes at f->scanned).  Returns 0 with
 * f->done set when buf[0..f->end) is one response; 0 with f->stream set
 * when a literal of a FETCH response follows an item named BODY[...] or
 * RFC822 (the caller streams it, see imap_frame_splice); or
 * MSYNC_ERR_INCOMPLETE when more bytes are needed; MSYNC_ERR_TOOBIG for a
 * line over IMAP_LINE_MAX, a kept literal over IMAP_LITERAL_MAX, a
 * response over IMAP_RESP_MAX or a body over IMAP_BODY_MAX;
 * MSYNC_ERR_PROTO for a malformed literal header.
 */
int	 imap_frame(const char *buf, size_t len, struct imap_frame *f);

/*
 * After a stream stop: replaces buf[lit_start..lit_hdr_end) with "NIL"
 * (the caller has taken the literal's bytes out of the input) and lets
 * scanning go on.  *len is updated; the buffer only shrinks.
 */
void	 imap_frame_splice(char *buf, size_t *len, struct imap_frame *f);

enum imap_vtype {
	IV_ATOM = 0,	/* also numbers, flags, BODY[...]<n> */
	IV_STRING,	/* quoted or literal, unescaped */
	IV_NIL,
	IV_LIST		/* ( ... ) */
};

/* One value; lists link their children by index. */
struct imap_val {
	enum imap_vtype	 type;
	const char	*s;	/* ATOM/STRING: NUL-terminated, in the arena */
	size_t		 len;	/* ATOM/STRING: bytes (a STRING may hold NUL) */
	size_t		 kid;	/* LIST: index of the first child, 0 = none */
	size_t		 next;	/* index of the next sibling, 0 = none */
};

enum imap_rtype {
	IR_TAGGED = 0,
	IR_UNTAGGED,
	IR_CONT		/* "+ ..." */
};

struct imap_resp {
	enum imap_rtype	 type;
	char		 tag[IMAP_TAG_MAX + 1];	/* IR_TAGGED */
	int		 has_num;		/* "* N KIND" */
	uint32_t	 num;
	char		 kind[IMAP_TAG_MAX + 1];	/* "OK", "FETCH", ... */
	int		 status;	/* OK/NO/BAD/BYE/PREAUTH/IR_CONT */
	const char	*code;		/* status: "[...]" contents or NULL */
	const char	*text;		/* status: the text ("" if none) */
	struct imap_val	*v;		/* owned; v[0] is a LIST of the rest */
	size_t		 nv;
	char		*arena;		/* owned; the values' bytes */
};

/*
 * Parses buf[0..len), one response as imap_frame() found it (ending in
 * CRLF).  *out is filled (zeroed first); free with imap_resp_free even on
 * failure.
 */
int	 imap_parse(const char *buf, size_t len, struct imap_resp *out);
void	 imap_resp_free(struct imap_resp *);

/* Helpers over values.  i is an index into r->v. */
/* The i-th child of list l (0-based), or 0 (no such child). */
size_t	 imap_kid(const struct imap_resp *, size_t l, size_t i);
/* Atom i equals s, ignoring ASCII case. */
int	 imap_is(const struct imap_resp *, size_t i, const char *s);
/* Atom i as a number (digits only, within max): 0, or MSYNC_ERR_PROTO. */
int	 imap_num(const struct imap_resp *, size_t i, uint64_t max,
	    uint64_t *out);
/* A status response's code starts with word w (e.g. "UIDVALIDITY"). */
int	 imap_code_is(const struct imap_resp *, const char *w);

/* One range of a sequence set, lo <= hi. */
struct imap_range {
	uint32_t	 lo, hi;
};
#define IMAP_SET_MAX	32768	/* ranges in one sequence set */

/*
 * Parses sequence-set s[0..len) ("1:3,5,9:*", RFC 3501 section 9) into
 * *out (owned by the caller, free()) and *n ranges, each with lo <= hi
 * ("7:3" is 3:7); "*" is read as star.  Nothing is expanded: a set of
 * 4 billion UIDs is one range.  MSYNC_ERR_PROTO for a bad set (a 0, a
 * number over 2^32-1, an empty element), MSYNC_ERR_TOOBIG for more than
 * IMAP_SET_MAX ranges.
 */
int	 imap_set_parse(const char *s, size_t len, uint32_t star,
	    struct imap_range **out, size_t *n);
/* How many numbers the ranges hold (ranges may overlap: an upper bound). */
uint64_t imap_set_count(const struct imap_range *, size_t n);

/*
 * A "* VANISHED [(EARLIER)] set" response (RFC 7162 section 3.2.10):
 * *earlier is 1 for the EARLIER form (an answer to SELECT/FETCH with
 * QRESYNC, no change to the message count), the ranges as above.
 * MSYNC_ERR_PROTO if r is no such response.
 */
int	 imap_vanished(const struct imap_resp *r, int *earlier,
	    struct imap_range **out, size_t *n);

#endif /* IMAP_PARSE_H */
