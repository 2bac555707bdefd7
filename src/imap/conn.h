/*
 * conn.h — one IMAP client connection, built for sync: commands are
 * pipelined (queued with imap_send, many in flight, completions collected
 * with imap_wait), the socket is non-blocking and driven by poll(2) with
 * an inactivity limit, message bodies are streamed to a sink (never held
 * in memory), and every byte from the server goes through imap/parse.c.
 *
 * imap_connect() does the whole opening: TCP, TLS (implicit, or STARTTLS
 * with the plaintext buffer thrown away, or none), the greeting,
 * CAPABILITY, login (AUTHENTICATE PLAIN, LOGIN, XOAUTH2 or OAUTHBEARER),
 * COMPRESS=DEFLATE, then in one round trip ENABLE QRESYNC/CONDSTORE, ID
 * (RFC 2971) and NAMESPACE (the personal prefix and the separator; LIST
 * "" "" without it).
 * A missing extension is worked around, and said with -v.
 *
 * All memory belongs to the caller unless stated otherwise.  Functions
 * return 0 or a negative MSYNC_ERR_*; connection failures come with a
 * one-line reason (owned by the caller) in *why, or from imap_why().
 */
#ifndef IMAP_CONN_H
#define IMAP_CONN_H

#include <stdint.h>

#include "imap/parse.h"

enum imap_tls {
	IMAP_TLS_IMPLICIT = 0,	/* imaps:// */
	IMAP_TLS_STARTTLS,	/* imap://, refused without STARTTLS */
	IMAP_TLS_NONE		/* imap://...;tls=none */
};

/* Capabilities we act on (bits of imap_conn_caps()). */
#define IMAP_CAP_UIDPLUS	0x0001
#define IMAP_CAP_CONDSTORE	0x0002
#define IMAP_CAP_QRESYNC	0x0004
#define IMAP_CAP_LITERALPLUS	0x0008	/* LITERAL+ */
#define IMAP_CAP_LITERALMINUS	0x0010	/* LITERAL- (<= 4096 bytes) */
#define IMAP_CAP_MOVE		0x0020
#define IMAP_CAP_SPECIALUSE	0x0040
#define IMAP_CAP_COMPRESS	0x0080	/* COMPRESS=DEFLATE */
#define IMAP_CAP_ENABLE		0x0100
#define IMAP_CAP_ID		0x0200
#define IMAP_CAP_NAMESPACE	0x0400
#define IMAP_CAP_STARTTLS	0x0800
#define IMAP_CAP_LOGINDISABLED	0x1000
#define IMAP_CAP_SASLIR		0x2000
#define IMAP_CAP_AUTH_PLAIN	0x4000
#define IMAP_CAP_AUTH_XOAUTH2	0x8000
#define IMAP_CAP_AUTH_OAUTHBEARER 0x10000
#define IMAP_CAP_IMAP4REV1	0x20000

struct imap_conn_opts {
	const char	*host;		/* borrowed */
	int		 port;		/* 0: 993 or 143 */
	const char	*user;		/* borrowed */
	enum imap_tls	 tls;
	const char	*fingerprint;	/* borrowed; "sha256:..." or NULL */
	const char	*auth;		/* borrowed; NULL, "plain", "login",
					   "xoauth2", "oauthbearer" */
	const char	*secret;	/* borrowed; password or token */
	int		 timeout_ms;	/* inactivity limit; <= 0: 120 s */
	/*
	 * A response that arrives slower than TRICKLE_MIN bytes per this
	 * many ms is taken for a stall; 0: 60 s, < 0: never.
	 */
	int		 trickle_ms;
	int		 no_compress;	/* never COMPRESS=DEFLATE */
	/*
	 * COMPRESS=DEFLATE also to a server on a loopback address, where
	 * by default it is not asked for: there is no bandwidth to save,
	 * and the server's deflate costs more time than the bytes it
	 * saves (docs/IMAP.md "Speed: session 9").
	 */
	int		 loopback_compress;
};

struct imap_conn;	/* opaque */

/*
 * Called for every untagged response while imap_wait runs (after conn.c
 * has taken what it needs: CAPABILITY, BYE).  r is valid during the call.
 * A non-zero return stops imap_wait with that code.
 */
typedef int (*imap_untagged_fn)(void *arg, const struct imap_resp *r);

/*
 * Where a streamed body goes (a FETCH BODY[] literal): begin with its
 * size, its bytes in pieces, then the FETCH response it belongs to (with
 * NIL in place of the literal) goes to the untagged handler as usual.
 */
struct imap_sink {
	int	(*begin)(void *arg, uint64_t size);
	int	(*write)(void *arg, const void *, size_t);
	void	*arg;
};

/* How a tagged command ended. */
struct imap_done {
	int	 status;	/* IMAP_OK, IMAP_NO, IMAP_BAD */
	/* Room for a COPYUID of 128 UIDs (src/store/imap.c COPY_CHUNK). */
	char	 code[4096];	/* the [code] (truncated), "" if none */
	char	 text[256];	/* the text (truncated, escaped later) */
};
#define IMAP_OK		0
#define IMAP_NO		1
#define IMAP_BAD	2

int	 imap_connect(const struct imap_conn_opts *, struct imap_conn **out,
	    char **why);
/* LOGOUT (not waited for long), close, free.  Accepts NULL. */
void	 imap_close(struct imap_conn *);

uint32_t imap_conn_caps(const struct imap_conn *);
/* The server's APPENDLIMIT (RFC 7889) in bytes; 0: none announced. */
uint64_t imap_conn_appendlimit(const struct imap_conn *);
/* The hierarchy separator ('/' if the server has none). */
char	 imap_conn_sep(const struct imap_conn *);
/*
 * The personal namespace's prefix from NAMESPACE (RFC 2342): "INBOX."
 * on Courier and Cyrus, "" on Dovecot, Gmail and servers without
 * NAMESPACE.  Borrowed from the connection.
 */
const char *imap_conn_prefix(const struct imap_conn *);
#define IMAP_PREFIX_MAX	1024	/* bytes in a namespace prefix */

void	 imap_set_untagged(struct imap_conn *, imap_untagged_fn, void *);
/* NULL: bodies are read and dropped. */
void	 imap_set_sink(struct imap_conn *, const struct imap_sink *);

/*
 * Queues a command (printf-style; the tag and CRLF are added; %s
 * arguments must already be quoted with imap_quote).  *tag identifies it
 * for imap_wait.  Nothing is sent until imap_wait (or imap_push) runs.
 */
int	 imap_send(struct imap_conn *, uint32_t *tag, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/*
 * Sends what is queued (handling what arrives meanwhile), so that the
 * caller can work while the server answers.
 */
int	 imap_push(struct imap_conn *);
/*
 * Sends and reads until command tag has completed; fills *d.  A NO or
 * BAD is not an error here (the caller decides); a lost connection,
 * stall, BYE or protocol error is, with imap_why() saying which.
 */
int	 imap_wait(struct imap_conn *, uint32_t tag, struct imap_done *d);
/* imap_send + imap_wait; NO/BAD become MSYNC_ERR_PROTO unless d given. */
int	 imap_cmd(struct imap_conn *, struct imap_done *d, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * APPEND: mailbox (already quoted), flags ("(\\Seen)" or ""), date
 * (INTERNALDATE, already quoted, or ""), then size bytes read from fd
 * (from its offset 0) as a literal (LITERAL+ or LITERAL- when allowed,
 * else after the server's "+").  *uid gets the APPENDUID UID, or 0.
 */
int	 imap_append(struct imap_conn *, const char *mbox, const char *flags,
	    const char *date, int fd, uint64_t size, uint32_t *uidvalidity,
	    uint32_t *uid, struct imap_done *d);

/*
 * Quotes s as an IMAP quoted string into a new string (*out).
 * MSYNC_ERR_BADNAME for bytes a quoted string cannot carry (CR, LF, NUL,
 * 8-bit): mailbox names are modified UTF-7, and secrets go through
 * AUTHENTICATE (base64) instead.
 */
int	 imap_quote(const char *s, char **out);

/*
 * IDLE (RFC 2177) on the selected mailbox, for watch mode: waits until
 * the server reports a change (EXISTS, EXPUNGE, FETCH, RECENT,
 * VANISHED; *changed = 1) or max_ms passed, then ends the IDLE with DONE
 * and waits for its completion.  The caller's untagged handler still
 * sees every response.  Returns 0, MSYNC_ERR_NOTFOUND when the server
 * refuses IDLE, or a connection error (imap_why says which).
 */
int	 imap_idle(struct imap_conn *, int max_ms, int *changed);

/*
 * 1 if the last failure was the server asking to slow down rather than a
 * lost connection: a NO or BAD with [UNAVAILABLE], [LIMIT], [THROTTLED]
 * or "throttled" in its text (imap_wait then returns MSYNC_ERR_PEER_EOF
 * with imap_why() saying so), or a BYE saying the same.  *hint_ms gets
 * the server's suggested backoff (Microsoft 365's "Suggested Backoff
 * Time: N milliseconds"), 0 if none.
 */
int	 imap_throttled(const struct imap_conn *, int *hint_ms);

/* The last connection-level failure, for messages ("" if none). */
const char *imap_why(const struct imap_conn *);

#endif /* IMAP_CONN_H */
