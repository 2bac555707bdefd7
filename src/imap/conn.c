/*
 * conn.c — one IMAP client connection; see conn.h.
 *
 * Bytes flow: socket -> (TLS) -> (inflate) -> rbuf -> imap_frame ->
 * imap_parse -> handlers; and commands -> wbuf -> (deflate) -> (TLS) ->
 * socket.  rbuf is capped (IMAP_RESP_MAX plus one read), so a server can
 * make us hold at most one response; bodies bypass it into the sink.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "log.h"
#include "msync.h"
#include "tls.h"
#include "imap/conn.h"
#include "imap/parse.h"

#define IO_CHUNK	(64 * 1024)
#define RBUF_CAP	(IMAP_RESP_MAX + IO_CHUNK)
#define WBUF_CAP	(16 * 1024 * 1024)	/* queued commands */
#define PENDING_MAX	4096			/* commands in flight */
#define TIMEOUT_DEFAULT	120000
/*
 * A server that throttles by bandwidth (a slow trickle) keeps a body
 * coming a few bytes at a time, which the inactivity limit never sees.
 * Less than TRICKLE_MIN bytes of one response within a window (60 s by
 * default, under 300 bytes a second) is counted as a stall, so the
 * store backs off and connects again.  Only bytes of an unfinished
 * response count: an idle server's "* OK still here" is not a trickle.
 */
#define TRICKLE_DEFAULT	60000
#define TRICKLE_MIN	(16 * 1024)

struct pending {
	uint32_t	 tag;
	int		 done;
	struct imap_done d;
};

struct imap_conn {
	int		 fd;
	struct tls	*tls;		/* owned; NULL: plain */
	int		 zon;		/* COMPRESS=DEFLATE active */
	z_stream	 zin, zout;
	char		*zraw;		/* owned; compressed input not inflated */
	size_t		 zrawlen;
	char		*rmem;		/* owned; RBUF_CAP bytes */
	char		*rbuf;		/* in rmem; decoded input not handled */
	size_t		 rlen;
	char		*wbuf;		/* owned; commands not yet sent */
	size_t		 wlen, woff;
	struct imap_frame fr;
	uint64_t	 body_left;	/* bytes of a streamed body to come */
	int		 in_body;
	uint32_t	 next_tag;
	struct pending	*pend;		/* owned */
	size_t		 npend;
	int		 cont;		/* a "+" arrived */
	char		 cont_text[512];
	uint32_t	 caps;
	char		 sep;
	char		*prefix;	/* owned; NAMESPACE's personal prefix */
	int		 eof;
	char		 why[512];
	char		*host;		/* owned; for messages */
	int		 timeout_ms;
	int		 trickle_ms;	/* see TRICKLE_MIN; < 0: off */
	imap_untagged_fn untagged;
	void		*uarg;
	struct imap_sink sink;
	int		 has_sink;
	uint64_t	 bytes_in, bytes_out;
	uint64_t	 appendlimit;	/* APPENDLIMIT=N (RFC 7889); 0: none */
	int		 throttled;	/* the last failure: "try later" */
	int		 logging_in;	/* a refusal is login_refusal's */
	int		 hint_ms;	/* the server's suggested backoff */
};

static void
conn_why(struct imap_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Records the first connection-level failure (for imap_why). */
static void
conn_why(struct imap_conn *c, const char *fmt, ...)
{
	va_list	 ap;

	if (c->why[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
}

const char *
imap_why(const struct imap_conn *c)
{
	return c->why;
}

uint32_t
imap_conn_caps(const struct imap_conn *c)
{
	return c->caps;
}

uint64_t
imap_conn_appendlimit(const struct imap_conn *c)
{
	return c->appendlimit;
}

char
imap_conn_sep(const struct imap_conn *c)
{
	return c->sep;
}

const char *
imap_conn_prefix(const struct imap_conn *c)
{
	return c->prefix != NULL ? c->prefix : "";
}

void
imap_set_untagged(struct imap_conn *c, imap_untagged_fn fn, void *arg)
{
	c->untagged = fn;
	c->uarg = arg;
}

void
imap_set_sink(struct imap_conn *c, const struct imap_sink *s)
{
	c->has_sink = s != NULL;
	if (s != NULL)
		c->sink = *s;
}

/* Raw socket read: > 0, or INCOMPLETE, PEER_EOF, IO. */
static ssize_t
raw_read(struct imap_conn *c, void *p, size_t n)
{
	ssize_t	 r;

	if (c->tls != NULL)
		return tls_read(c->tls, p, n);
	r = read(c->fd, p, n);
	if (r > 0)
		return r;
	if (r == 0)
		return MSYNC_ERR_PEER_EOF;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MSYNC_ERR_INCOMPLETE;
	if (errno == ECONNRESET)
		return MSYNC_ERR_PEER_EOF;
	return MSYNC_ERR_IO;
}

static ssize_t
raw_write(struct imap_conn *c, const void *p, size_t n)
{
	ssize_t	 r;

	if (c->tls != NULL)
		return tls_write(c->tls, p, n);
	r = write(c->fd, p, n);
	if (r >= 0)
		return r;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return MSYNC_ERR_INCOMPLETE;
	if (errno == EPIPE || errno == ECONNRESET)
		return MSYNC_ERR_PEER_EOF;
	return MSYNC_ERR_IO;
}

/* Appends n bytes to the output queue (compressed when COMPRESS is on). */
static int
out_put(struct imap_conn *c, const void *p, size_t n)
{
	char	 zb[IO_CHUNK];
	size_t	 k;
	int	 zr;

	if (!c->zon) {
		if (n > WBUF_CAP - c->wlen)
			return MSYNC_ERR_TOOBIG;
		memcpy(c->wbuf + c->wlen, p, n);
		c->wlen += n;
		return 0;
	}
	c->zout.next_in = (Bytef *)(uintptr_t)p;
	c->zout.avail_in = (uInt)n;
	do {
		c->zout.next_out = (Bytef *)zb;
		c->zout.avail_out = sizeof(zb);
		zr = deflate(&c->zout, Z_SYNC_FLUSH);
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return MSYNC_ERR_INTERNAL;
		k = sizeof(zb) - c->zout.avail_out;
		if (k > WBUF_CAP - c->wlen)
			return MSYNC_ERR_TOOBIG;
		memcpy(c->wbuf + c->wlen, zb, k);
		c->wlen += k;
	} while (c->zout.avail_in > 0 || c->zout.avail_out == 0);
	return 0;
}

/* Sends what it can of the output queue without blocking. */
static int
flush_some(struct imap_conn *c)
{
	ssize_t	 r;

	while (c->woff < c->wlen) {
		r = raw_write(c, c->wbuf + c->woff, c->wlen - c->woff);
		if (r == MSYNC_ERR_INCOMPLETE)
			return 0;
		if (r < 0) {
			conn_why(c, "connection to %s lost while sending",
			    c->host);
			return r == MSYNC_ERR_IO ? MSYNC_ERR_PEER_EOF : (int)r;
		}
		c->woff += (size_t)r;
		c->bytes_out += (uint64_t)r;
	}
	c->woff = c->wlen = 0;
	return 0;
}

/*
 * Reads what is there into rbuf (decoded), at most up to its cap.
 * Returns the count added (> 0), INCOMPLETE, or an error.
 */
static ssize_t
fill(struct imap_conn *c)
{
	size_t	 room, got;
	ssize_t	 r;
	int	 zr;

	/*
	 * A handled response only moves rbuf on (no memmove of what follows
	 * it, up to a whole read, for each one); what is left goes back to
	 * the start of rmem when the room after it gets short.
	 */
	if (c->rbuf != c->rmem && (c->rlen == 0 ||
	    RBUF_CAP - (size_t)(c->rbuf - c->rmem) - c->rlen < IO_CHUNK)) {
		memmove(c->rmem, c->rbuf, c->rlen);
		c->rbuf = c->rmem;
	}
	room = RBUF_CAP - (size_t)(c->rbuf - c->rmem) - c->rlen;
	if (room == 0)
		return MSYNC_ERR_TOOBIG;
	if (room > IO_CHUNK)
		room = IO_CHUNK;
	if (!c->zon) {
		r = raw_read(c, c->rbuf + c->rlen, room);
		if (r > 0) {
			c->rlen += (size_t)r;
			c->bytes_in += (uint64_t)r;
		}
		return r;
	}
	if (c->zrawlen == 0) {
		r = raw_read(c, c->zraw, IO_CHUNK);
		if (r <= 0)
			return r;
		c->bytes_in += (uint64_t)r;
		c->zrawlen = (size_t)r;
		c->zin.next_in = (Bytef *)c->zraw;
		c->zin.avail_in = (uInt)r;
	}
	c->zin.next_out = (Bytef *)(c->rbuf + c->rlen);
	c->zin.avail_out = (uInt)room;
	zr = inflate(&c->zin, Z_SYNC_FLUSH);
	if (zr != Z_OK && zr != Z_BUF_ERROR) {
		conn_why(c, "bad compressed data from %s", c->host);
		return MSYNC_ERR_PROTO;
	}
	if (c->zin.avail_in == 0)
		c->zrawlen = 0;
	got = room - c->zin.avail_out;
	c->rlen += got;
	return got > 0 ? (ssize_t)got : MSYNC_ERR_INCOMPLETE;
}

/* Finds the pending command with tag t. */
static struct pending *
pending_find(struct imap_conn *c, uint32_t t)
{
	size_t	 i;

	for (i = 0; i < c->npend; i++)
		if (c->pend[i].tag == t)
			return &c->pend[i];
	return NULL;
}

/* Reads CAPABILITY words from the atoms of list l of r. */
static void
caps_from_vals(struct imap_conn *c, const struct imap_resp *r, size_t l)
{
	static const struct {
		const char	*name;
		uint32_t	 bit;
	} names[] = {
		{ "UIDPLUS", IMAP_CAP_UIDPLUS },
		{ "CONDSTORE", IMAP_CAP_CONDSTORE },
		{ "QRESYNC", IMAP_CAP_QRESYNC },
		{ "LITERAL+", IMAP_CAP_LITERALPLUS },
		{ "LITERAL-", IMAP_CAP_LITERALMINUS },
		{ "MOVE", IMAP_CAP_MOVE },
		{ "SPECIAL-USE", IMAP_CAP_SPECIALUSE },
		{ "COMPRESS=DEFLATE", IMAP_CAP_COMPRESS },
		{ "ENABLE", IMAP_CAP_ENABLE },
		{ "ID", IMAP_CAP_ID },
		{ "NAMESPACE", IMAP_CAP_NAMESPACE },
		{ "STARTTLS", IMAP_CAP_STARTTLS },
		{ "LOGINDISABLED", IMAP_CAP_LOGINDISABLED },
		{ "SASL-IR", IMAP_CAP_SASLIR },
		{ "AUTH=PLAIN", IMAP_CAP_AUTH_PLAIN },
		{ "AUTH=XOAUTH2", IMAP_CAP_AUTH_XOAUTH2 },
		{ "AUTH=OAUTHBEARER", IMAP_CAP_AUTH_OAUTHBEARER },
		{ "IMAP4REV1", IMAP_CAP_IMAP4REV1 },
	};
	size_t	 k, i;

	c->caps = 0;
	c->appendlimit = 0;
	for (k = r->v[l].kid; k != 0; k = r->v[k].next) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (imap_is(r, k, names[i].name))
				c->caps |= names[i].bit;
		if (r->v[k].type == IV_ATOM &&
		    strncasecmp(r->v[k].s, "APPENDLIMIT=", 12) == 0)
			c->appendlimit = strtoull(r->v[k].s + 12, NULL, 10);
	}
	LOG3("imap: %s capabilities 0x%x", c->host, c->caps);
}

/* Capabilities from a status response's [CAPABILITY ...] code. */
static void
caps_from_code(struct imap_conn *c, const char *code)
{
	struct imap_resp r;
	char		*line;
	size_t		 n = strlen(code);

	/* Re-parse the code as the data of an untagged response. */
	if ((line = malloc(n + 8)) == NULL)
		return;
	memcpy(line, "* ", 2);
	memcpy(line + 2, code, n);
	memcpy(line + 2 + n, "\r\n", 3);
	if (imap_parse(line, n + 4, &r) == 0)
		caps_from_vals(c, &r, 0);
	imap_resp_free(&r);
	free(line);
}

/*
 * Does a status response say "not now, later" rather than "no"?  The
 * codes of RFC 5530 for that (UNAVAILABLE; LIMIT, which Gmail and
 * Microsoft 365 use for rate limits), Gmail's THROTTLED, and Microsoft
 * 365's "Request is throttled.  Suggested Backoff Time: N milliseconds",
 * whose N becomes c->hint_ms (at most 10 minutes).
 */
static int
temporary(struct imap_conn *c, const char *code, const char *text)
{
	const char	*p;
	unsigned long	 ms;
	int		 t = 0;

	if (code != NULL && (strncasecmp(code, "UNAVAILABLE", 11) == 0 ||
	    strncasecmp(code, "LIMIT", 5) == 0 ||
	    strncasecmp(code, "THROTTLED", 9) == 0))
		t = 1;
	if (text != NULL && strcasestr(text, "throttl") != NULL)
		t = 1;
	if (t && text != NULL &&
	    (p = strcasestr(text, "Backoff Time:")) != NULL &&
	    sscanf(p + 13, "%lu", &ms) == 1)
		c->hint_ms = ms > 600000 ? 600000 : (int)ms;
	return t;
}

int
imap_throttled(const struct imap_conn *c, int *hint_ms)
{
	if (hint_ms != NULL)
		*hint_ms = c->hint_ms;
	return c->throttled;
}

/* Copies at most max-1 bytes of s, escaped, into out. */
static void
copy_text(char *out, size_t max, const char *s)
{
	snprintf(out, max, "%s", s != NULL ? s : "");
}

/* Handles one complete response in rbuf[0..fr.end). */
static int
handle_response(struct imap_conn *c)
{
	struct imap_resp r;
	struct pending	*p;
	char		*e;
	unsigned long	 t;
	int		 rc = 0;

	rc = imap_parse(c->rbuf, c->fr.end, &r);
	if (rc != 0) {
		conn_why(c, "malformed response from %s: '%s'", c->host,
		    log_esc(c->rbuf, c->fr.end < 80 ? c->fr.end : 80));
		goto out;
	}
	if (r.status && r.code != NULL && imap_code_is(&r, "CAPABILITY"))
		caps_from_code(c, r.code);
	switch (r.type) {
	case IR_CONT:
		c->cont = 1;
		copy_text(c->cont_text, sizeof(c->cont_text), r.text);
		break;
	case IR_TAGGED:
		t = r.tag[0] == 'm' ? strtoul(r.tag + 1, &e, 10) : 0;
		if (r.tag[0] != 'm' || *e != '\0' || t > UINT32_MAX ||
		    (p = pending_find(c, (uint32_t)t)) == NULL || p->done) {
			conn_why(c, "%s answered a command never sent "
			    "('%s')", c->host, log_esc(r.tag, 32));
			rc = MSYNC_ERR_PROTO;
			goto out;
		}
		p->done = 1;
		p->d.status = strcmp(r.kind, "OK") == 0 ? IMAP_OK :
		    strcmp(r.kind, "NO") == 0 ? IMAP_NO : IMAP_BAD;
		copy_text(p->d.code, sizeof(p->d.code), r.code);
		copy_text(p->d.text, sizeof(p->d.text), r.text);
		break;
	case IR_UNTAGGED:
		if (strcmp(r.kind, "BYE") == 0) {
			/* Not yet an error: a LOGOUT also gets one. */
			snprintf(c->cont_text, sizeof(c->cont_text), "%s",
			    log_esc(r.text, 200));
			c->eof = 2;
			(void)temporary(c, r.code, r.text);
		} else if (strcmp(r.kind, "CAPABILITY") == 0)
			caps_from_vals(c, &r, 0);
		if (c->untagged != NULL)
			rc = c->untagged(c->uarg, &r);
		break;
	}
out:
	imap_resp_free(&r);
	c->rbuf += c->fr.end;
	c->rlen -= c->fr.end;
	memset(&c->fr, 0, sizeof(c->fr));
	return rc;
}

/* Moves body bytes now in rbuf (after the literal header) to the sink. */
static int
body_take(struct imap_conn *c)
{
	size_t	 have = c->rlen - c->fr.lit_hdr_end, n;
	int	 r;

	n = have < c->body_left ? have : (size_t)c->body_left;
	if (n > 0 && c->has_sink &&
	    (r = c->sink.write(c->sink.arg, c->rbuf + c->fr.lit_hdr_end,
	    n)) != 0)
		return r;
	memmove(c->rbuf + c->fr.lit_hdr_end, c->rbuf + c->fr.lit_hdr_end + n,
	    c->rlen - c->fr.lit_hdr_end - n);
	c->rlen -= n;
	c->body_left -= n;
	if (c->body_left == 0) {
		c->in_body = 0;
		imap_frame_splice(c->rbuf, &c->rlen, &c->fr);
	}
	return 0;
}

/* Handles everything complete in rbuf. */
static int
drain(struct imap_conn *c)
{
	int	 r;

	for (;;) {
		if (c->in_body) {
			if ((r = body_take(c)) != 0)
				return r;
			if (c->in_body)
				return 0;
		}
		r = imap_frame(c->rbuf, c->rlen, &c->fr);
		if (r == MSYNC_ERR_INCOMPLETE)
			return 0;
		if (r != 0) {
			conn_why(c, "%s sent %s", c->host,
			    r == MSYNC_ERR_TOOBIG ? "a response over the size "
			    "limit" : "a malformed literal");
			return r;
		}
		if (c->fr.stream) {
			c->in_body = 1;
			c->body_left = c->fr.lit_size;
			if (c->has_sink && (r = c->sink.begin(c->sink.arg,
			    c->fr.lit_size)) != 0)
				return r;
			continue;
		}
		if ((r = handle_response(c)) != 0)
			return r;
	}
}

/*
 * The window of TRICKLE_MIN for run_until: *win is when it began,
 * *win_bytes what arrived since.  A window starts again whenever no
 * response is unfinished (nothing left over in rbuf after drain, no
 * body streaming) and when one ends with enough bytes.  Returns 0 or
 * MSYNC_ERR_PEER_EOF (a trickle: the caller may connect again).
 */
static int
trickle_check(struct imap_conn *c, long long *win, uint64_t *win_bytes)
{
	long long	 now;

	if (c->trickle_ms < 0)
		return 0;
	now = msync_now_ms();
	if (!c->in_body && c->rlen == 0) {
		*win = now;
		*win_bytes = 0;
		return 0;
	}
	if (now - *win < c->trickle_ms)
		return 0;
	if (*win_bytes < TRICKLE_MIN) {
		conn_why(c, "%s sent %llu bytes of a response in %d s "
		    "(a trickle): taken for a stall", c->host,
		    (unsigned long long)*win_bytes, c->trickle_ms / 1000);
		return MSYNC_ERR_PEER_EOF;
	}
	*win = now;
	*win_bytes = 0;
	return 0;
}

/*
 * Runs the connection until done(c, arg) is true: sends, reads, handles.
 * Fails on EOF, a stall of timeout_ms, a trickle (trickle_check), or an
 * error.
 */
static int
run_until(struct imap_conn *c, int (*done)(struct imap_conn *, void *),
    void *arg)
{
	struct pollfd	 pfd;
	long long	 last = msync_now_ms(), win = last;
	uint64_t	 win_bytes = 0;
	ssize_t		 n;
	int		 r, pr;

	for (;;) {
		if ((r = drain(c)) != 0)
			return r;
		if (done(c, arg))
			return 0;
		if ((r = trickle_check(c, &win, &win_bytes)) != 0)
			return r;
		if ((r = flush_some(c)) != 0)
			return r;
		/*
		 * Asked again: imap_push is done once the queue is out, and
		 * must not sit in poll() until the first answer (its caller
		 * works meanwhile: docs/IMAP.md "Speed: session 9").
		 */
		if (done(c, arg))
			return 0;
		if (c->eof) {
			conn_why(c, "%s closed the connection%s%s", c->host,
			    c->eof == 2 ? ": " : "",
			    c->eof == 2 ? c->cont_text : "");
			return MSYNC_ERR_PEER_EOF;
		}
		n = (c->tls != NULL && tls_pending(c->tls)) || c->zrawlen > 0 ?
		    1 : 0;
		if (n == 0) {
			pfd.fd = c->fd;
			pfd.events = POLLIN;
			if (c->woff < c->wlen)
				pfd.events |= POLLOUT;
			if (c->tls != NULL)
				pfd.events |= (short)tls_want(c->tls);
			pfd.revents = 0;
			pr = poll(&pfd, 1, 1000);
			if (pr < 0 && errno != EINTR)
				return MSYNC_ERR_IO;
			if (pr <= 0) {
				if (msync_now_ms() - last > c->timeout_ms) {
					conn_why(c, "%s sent nothing for %d "
					    "seconds", c->host,
					    c->timeout_ms / 1000);
					return MSYNC_ERR_PEER_EOF;
				}
				continue;
			}
		}
		n = fill(c);
		if (n > 0) {
			last = msync_now_ms();
			win_bytes += (uint64_t)n;
			continue;
		}
		if (n == MSYNC_ERR_INCOMPLETE)
			continue;
		if (n == MSYNC_ERR_PEER_EOF) {
			if (c->eof == 0)
				c->eof = 1;
			if ((r = drain(c)) != 0)
				return r;
			if (done(c, arg))
				return 0;
			continue;
		}
		if (n == MSYNC_ERR_TOOBIG)
			conn_why(c, "%s sent a response over the size limit",
			    c->host);
		else
			conn_why(c, "reading from %s failed", c->host);
		return (int)n;
	}
}

static int
done_tag(struct imap_conn *c, void *arg)
{
	struct pending	*p = pending_find(c, *(uint32_t *)arg);

	return p == NULL || p->done;
}

static int
done_cont(struct imap_conn *c, void *arg)
{
	struct pending	*p = pending_find(c, *(uint32_t *)arg);

	return c->cont || p == NULL || p->done;
}

static int
done_flushed(struct imap_conn *c, void *arg)
{
	return c->wlen == 0;
}

int
imap_push(struct imap_conn *c)
{
	return run_until(c, done_flushed, NULL);
}

/* Queues one command line with a new tag; secret: not logged. */
static int
send_va(struct imap_conn *c, uint32_t *tag, int secret, const char *fmt,
    va_list ap)
{
	char		*line = NULL, pre[16];
	struct pending	*np;
	int		 n, r;

	if (c->npend >= PENDING_MAX)
		return MSYNC_ERR_TOOBIG;
	if ((n = vasprintf(&line, fmt, ap)) < 0)
		return MSYNC_ERR_NOMEM;
	np = reallocarray(c->pend, c->npend + 1, sizeof(*np));
	if (np == NULL) {
		free(line);
		return MSYNC_ERR_NOMEM;
	}
	c->pend = np;
	*tag = ++c->next_tag;
	memset(&c->pend[c->npend], 0, sizeof(c->pend[0]));
	c->pend[c->npend++].tag = *tag;
	snprintf(pre, sizeof(pre), "m%u ", *tag);
	if (!secret)
		LOG4("imap: %s > %s%s", c->host, pre, log_esc(line, 200));
	if ((r = out_put(c, pre, strlen(pre))) == 0 &&
	    (r = out_put(c, line, (size_t)n)) == 0)
		r = out_put(c, "\r\n", 2);
	explicit_bzero(line, (size_t)n);
	free(line);
	return r;
}

int
imap_send(struct imap_conn *c, uint32_t *tag, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = send_va(c, tag, 0, fmt, ap);
	va_end(ap);
	return r;
}

/* Drops the completed pending entry for tag, copying its result. */
static void
pending_take(struct imap_conn *c, uint32_t tag, struct imap_done *d)
{
	struct pending	*p = pending_find(c, tag);
	size_t		 i;

	if (p == NULL)
		return;
	if (d != NULL)
		*d = p->d;
	i = (size_t)(p - c->pend);
	memmove(&c->pend[i], &c->pend[i + 1],
	    (c->npend - i - 1) * sizeof(c->pend[0]));
	c->npend--;
}

int
imap_wait(struct imap_conn *c, uint32_t tag, struct imap_done *d)
{
	struct imap_done dd;
	int		 r;

	if ((r = run_until(c, done_tag, &tag)) != 0)
		return r;
	pending_take(c, tag, &dd);
	if (d != NULL)
		*d = dd;
	/*
	 * "Later, please" is not this command's answer: the caller backs
	 * off and tries again (on a new connection, which is what the
	 * servers that say it expect).  Not for the login: a refused login
	 * ends the run with its own status (login_refusal: 75 or 77), which
	 * a batch retries later, as a busy server asks.
	 */
	if (dd.status != IMAP_OK && !c->logging_in &&
	    temporary(c, dd.code, dd.text)) {
		conn_why(c, "%s asks to slow down: %s%s%s%s", c->host,
		    dd.code[0] != '\0' ? "[" : "", log_esc(dd.code, 60),
		    dd.code[0] != '\0' ? "] " : "", log_esc(dd.text, 160));
		c->throttled = 1;
		return MSYNC_ERR_PEER_EOF;
	}
	return 0;
}

/* imap_wait, a NO/BAD giving PROTO unless the caller takes *d. */
static int
wait_ok(struct imap_conn *c, uint32_t tag, struct imap_done *d)
{
	struct imap_done dd;
	int		 r;

	if ((r = imap_wait(c, tag, d != NULL ? d : &dd)) != 0)
		return r;
	if (d == NULL && dd.status != IMAP_OK) {
		conn_why(c, "%s refused a command: %s", c->host,
		    log_esc(dd.text, 200));
		return MSYNC_ERR_PROTO;
	}
	return 0;
}

int
imap_cmd(struct imap_conn *c, struct imap_done *d, const char *fmt, ...)
{
	va_list		 ap;
	uint32_t	 tag;
	int		 r;

	va_start(ap, fmt);
	r = send_va(c, &tag, 0, fmt, ap);
	va_end(ap);
	if (r != 0)
		return r;
	return wait_ok(c, tag, d);
}

int
imap_quote(const char *s, char **out)
{
	size_t	 n = strlen(s), i, o = 0;
	char	*q;

	*out = NULL;
	if (n > MSYNC_PATH_MAX)
		return MSYNC_ERR_BADNAME;
	if ((q = malloc(2 * n + 3)) == NULL)
		return MSYNC_ERR_NOMEM;
	q[o++] = '"';
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '\r' || ch == '\n' || ch >= 0x80) {
			free(q);
			return MSYNC_ERR_BADNAME;
		}
		if (ch == '"' || ch == '\\')
			q[o++] = '\\';
		q[o++] = (char)ch;
	}
	q[o++] = '"';
	q[o] = '\0';
	*out = q;
	return 0;
}

/*
 * base64 (RFC 4648, with padding, no line breaks) of n bytes into a new
 * string, or NULL when out of memory.  Our own, not OpenSSL's: a login
 * over ;tls=none must not need OpenSSL loaded (src/ossl.h).
 */
static char *
b64(const void *p, size_t n)
{
	static const char	 abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char	*s = p;
	uint32_t		 v;
	size_t			 i, o = 0;
	char			*out;

	if (n > SIZE_MAX / 2 || (out = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		out[o++] = abc[v >> 18 & 0x3f];
		out[o++] = abc[v >> 12 & 0x3f];
		out[o++] = abc[v >> 6 & 0x3f];
		out[o++] = abc[v & 0x3f];
	}
	if (i < n) {
		v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		out[o++] = abc[v >> 18 & 0x3f];
		out[o++] = abc[v >> 12 & 0x3f];
		out[o++] = i + 1 < n ? abc[v >> 6 & 0x3f] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

/* imap_send for a line that holds a secret: never logged. */
static int
send_secret(struct imap_conn *c, uint32_t *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
send_secret(struct imap_conn *c, uint32_t *tag, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = send_va(c, tag, 1, fmt, ap);
	va_end(ap);
	LOG4("imap: %s > m%u (login, not shown)", c->host, *tag);
	return r;
}

/*
 * AUTHENTICATE mech with the initial response ir (base64): inline with
 * SASL-IR, else after the server's "+".  A "+" with an error (XOAUTH2
 * sends a JSON one) is answered with an empty line, as RFC 7628 asks.
 */
static int
authenticate(struct imap_conn *c, const char *mech, const char *ir,
    struct imap_done *d)
{
	uint32_t	 tag;
	int		 r, sent = 0, rounds;

	c->cont = 0;
	if (c->caps & IMAP_CAP_SASLIR) {
		r = send_secret(c, &tag, "AUTHENTICATE %s %s", mech,
		    ir[0] != '\0' ? ir : "=");
		sent = 1;
	} else
		r = imap_send(c, &tag, "AUTHENTICATE %s", mech);
	if (r != 0)
		return r;
	for (rounds = 0; rounds < 4; rounds++) {
		if ((r = run_until(c, done_cont, &tag)) != 0)
			return r;
		if (!c->cont)
			break;
		c->cont = 0;
		if (!sent) {
			r = out_put(c, ir, strlen(ir));
			sent = 1;
		}
		if (r != 0 || (r = out_put(c, "\r\n", 2)) != 0)
			return r;
	}
	return imap_wait(c, tag, d);
}

/* LOGIN "user" "password" (AUTHENTICATE PLAIN is preferred). */
static int
login_cmd(struct imap_conn *c, const struct imap_conn_opts *o,
    struct imap_done *d)
{
	char		*qu = NULL, *qp = NULL;
	uint32_t	 tag;
	int		 r;

	if ((r = imap_quote(o->user, &qu)) != 0 ||
	    (r = imap_quote(o->secret, &qp)) != 0) {
		conn_why(c, "%s offers only LOGIN, which cannot carry this "
		    "user name or password (8-bit or line breaks)", c->host);
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	if ((r = send_secret(c, &tag, "LOGIN %s %s", qu, qp)) == 0)
		r = imap_wait(c, tag, d);
out:
	free(qu);
	if (qp != NULL) {
		explicit_bzero(qp, strlen(qp));
		free(qp);
	}
	return r;
}

/* Builds a SASL initial response in base64 from raw bytes. */
static char *
sasl_ir(const char *raw, size_t n)
{
	return b64(raw, n);
}

/*
 * What a refused login means for a batch (RFC 5530's response codes):
 * the server is busy or limits us (come back later: MSYNC_ERR_THROTTLED,
 * exit 75) or the server is unreachable for now (UNAVAILABLE), else the
 * credentials are wrong, expired or not allowed, which no retry fixes
 * (MSYNC_ERR_AUTH, exit 77).  A NO without a code is taken as wrong
 * credentials: retrying a bad password is what gets accounts locked.
 */
static int
login_refusal(const char *code)
{
	static const char *const later[] = { "UNAVAILABLE", "LIMIT",
	    "INUSE", "OVERQUOTA", "SERVERBUG" };
	size_t	 n;

	for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		n = strlen(later[i]);
		if (strncasecmp(code, later[i], n) == 0 &&
		    (code[n] == '\0' || code[n] == ' '))
			return MSYNC_ERR_THROTTLED;
	}
	return MSYNC_ERR_AUTH;
}

/* Logs in as o->user with o->secret by the best mechanism there is. */
static int
login(struct imap_conn *c, const struct imap_conn_opts *o)
{
	struct imap_done d;
	char		*raw = NULL, *ir = NULL;
	const char	*mech, *auth = o->auth != NULL ? o->auth : "";
	size_t		 ul = strlen(o->user), sl = strlen(o->secret), n;
	int		 r;

	memset(&d, 0, sizeof(d));
	if ((raw = malloc(ul + sl + 256 + strlen(c->host))) == NULL)
		return MSYNC_ERR_NOMEM;
	if (strcasecmp(auth, "xoauth2") == 0) {
		mech = "XOAUTH2";
		n = (size_t)sprintf(raw, "user=%s\001auth=Bearer %s\001\001",
		    o->user, o->secret);
	} else if (strcasecmp(auth, "oauthbearer") == 0) {
		mech = "OAUTHBEARER";
		n = (size_t)sprintf(raw, "n,a=%s,\001host=%s\001port=%d\001"
		    "auth=Bearer %s\001\001", o->user, c->host, o->port,
		    o->secret);
	} else if (strcasecmp(auth, "login") != 0 &&
	    (c->caps & IMAP_CAP_AUTH_PLAIN)) {
		mech = "PLAIN";
		raw[0] = '\0';
		memcpy(raw + 1, o->user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, o->secret, sl);
		n = 2 + ul + sl;
	} else
		mech = NULL;
	if (mech != NULL) {
		if ((ir = sasl_ir(raw, n)) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		LOG2("imap: %s: AUTHENTICATE %s as %s", c->host, mech,
		    log_esc(o->user, 100));
		c->logging_in = 1;
		r = authenticate(c, mech, ir, &d);
		c->logging_in = 0;
	} else {
		if (c->caps & IMAP_CAP_LOGINDISABLED) {
			conn_why(c, "%s allows no login on this connection "
			    "(LOGINDISABLED)", c->host);
			r = MSYNC_ERR_UNREACHABLE;
			goto out;
		}
		LOG2("imap: %s: LOGIN as %s", c->host, log_esc(o->user, 100));
		c->logging_in = 1;
		r = login_cmd(c, o, &d);
		c->logging_in = 0;
	}
	if (r != 0)
		goto out;
	if (d.status != IMAP_OK) {
		conn_why(c, "%s refused the login of '%s': %s%s%s%s", c->host,
		    log_esc(o->user, 100), d.code[0] ? "[" : "",
		    log_esc(d.code, 60), d.code[0] ? "] " : "",
		    log_esc(d.text, 200));
		r = login_refusal(d.code);
		goto out;
	}
	/*
	 * The OK's [CAPABILITY ...] was read in full by handle_response
	 * (d.code is truncated); without one, ask.
	 */
	if (strncasecmp(d.code, "CAPABILITY", 10) != 0)
		r = imap_cmd(c, NULL, "CAPABILITY");
out:
	if (raw != NULL) {
		explicit_bzero(raw, ul + sl + 256 + strlen(c->host));
		free(raw);
	}
	if (ir != NULL) {
		explicit_bzero(ir, strlen(ir));
		free(ir);
	}
	return r;
}

/* STARTTLS, then the handshake; the plaintext left over is dropped. */
static int
starttls(struct imap_conn *c, const struct imap_conn_opts *o, char **why)
{
	struct tls_opts	 to;
	int		 r;

	if (!(c->caps & IMAP_CAP_STARTTLS)) {
		conn_why(c, "%s does not offer STARTTLS: use imaps://, or add "
		    ";tls=none to send the password in clear", c->host);
		return MSYNC_ERR_UNREACHABLE;
	}
	if ((r = imap_cmd(c, NULL, "STARTTLS")) != 0)
		return r;
	/*
	 * Whatever the server sent after its OK arrived in clear and could
	 * have been injected by anyone on the path (CVE-2020-15953).
	 */
	if (c->rlen > 0)
		LOG2("imap: %s: %zu bytes after STARTTLS dropped", c->host,
		    c->rlen);
	c->rlen = 0;
	memset(&c->fr, 0, sizeof(c->fr));
	memset(&to, 0, sizeof(to));
	to.host = o->host;
	to.fingerprint = o->fingerprint;
	to.timeout_ms = c->timeout_ms;
	to.read_ahead = 1;	/* run_until asks tls_pending */
	if ((r = tls_start(c->fd, &to, &c->tls, why)) != 0)
		return r;
	c->caps = 0;
	return imap_cmd(c, NULL, "CAPABILITY");
}

/*
 * 1 if the socket's peer is a loopback address (127.0.0.0/8, ::1, or
 * 127.x as an IPv4-mapped IPv6 address): the server runs on this
 * machine.
 */
static int
peer_loopback(int fd)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	const struct sockaddr_in6 *s6;
	const uint8_t		*a;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&ss)->sin_addr.
		    s_addr) >> 24) == 127;
	if (ss.ss_family != AF_INET6)
		return 0;
	s6 = (const struct sockaddr_in6 *)&ss;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return 1;
	a = s6->sin6_addr.s6_addr;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && a[12] == 127;
}

/* COMPRESS DEFLATE (RFC 4978): raw deflate both ways from here on. */
static int
compress_on(struct imap_conn *c)
{
	struct imap_done d;
	int		 r;

	if ((r = imap_cmd(c, &d, "COMPRESS DEFLATE")) != 0)
		return r;
	if (d.status != IMAP_OK)
		return 0;	/* fine: uncompressed */
	if (inflateInit2(&c->zin, -15) != Z_OK)
		return MSYNC_ERR_NOMEM;
	if (deflateInit2(&c->zout, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15,
	    8, Z_DEFAULT_STRATEGY) != Z_OK) {
		inflateEnd(&c->zin);
		return MSYNC_ERR_NOMEM;
	}
	if ((c->zraw = malloc(IO_CHUNK)) == NULL) {
		inflateEnd(&c->zin);
		deflateEnd(&c->zout);
		return MSYNC_ERR_NOMEM;
	}
	/* Bytes already read after the OK are compressed ones. */
	if (c->rlen > IO_CHUNK)
		return MSYNC_ERR_PROTO;
	memcpy(c->zraw, c->rbuf, c->rlen);
	c->zrawlen = c->rlen;
	c->zin.next_in = (Bytef *)c->zraw;
	c->zin.avail_in = (uInt)c->rlen;
	c->rlen = 0;
	c->zon = 1;
	LOG2("imap: %s: COMPRESS=DEFLATE on", c->host);
	return 0;
}

/*
 * NAMESPACE (RFC 2342): the first personal namespace's prefix and
 * separator, e.g. (("INBOX." ".")) on Courier and Cyrus.  The other
 * users' and shared namespaces are not synced.  A prefix that is too
 * long or holds a NUL is ignored (the server's whole tree is used).
 */
static int
namespace_untagged(struct imap_conn *c, const struct imap_resp *r)
{
	size_t	 pers = imap_kid(r, 0, 0), e, pfx, sep;
	char	*p;

	if (pers == 0 || r->v[pers].type != IV_LIST ||
	    (e = imap_kid(r, pers, 0)) == 0 || r->v[e].type != IV_LIST)
		return 0;	/* NIL: no personal namespace */
	pfx = imap_kid(r, e, 0);
	sep = imap_kid(r, e, 1);
	if (pfx == 0 || r->v[pfx].type != IV_STRING ||
	    r->v[pfx].len > IMAP_PREFIX_MAX ||
	    strlen(r->v[pfx].s) != r->v[pfx].len)
		return 0;
	if (sep != 0 && r->v[sep].type == IV_STRING && r->v[sep].len == 1 &&
	    r->v[sep].s[0] != '\0')
		c->sep = r->v[sep].s[0];
	if ((p = strdup(r->v[pfx].s)) == NULL)
		return MSYNC_ERR_NOMEM;
	free(c->prefix);
	c->prefix = p;
	return 0;
}

/*
 * Untagged answers to what follows the login: LIST "" "" (the
 * separator, when there is no NAMESPACE), NAMESPACE, and the server's
 * ID (said with -vv).
 */
static int
sep_untagged(void *arg, const struct imap_resp *r)
{
	struct imap_conn *c = arg;
	size_t		  k, v;

	if (strcmp(r->kind, "NAMESPACE") == 0)
		return namespace_untagged(c, r);
	if (strcmp(r->kind, "ID") == 0) {
		k = imap_kid(r, 0, 0);
		if (k == 0 || r->v[k].type != IV_LIST)
			return 0;
		for (k = r->v[k].kid; k != 0 && (v = r->v[k].next) != 0;
		    k = r->v[v].next)
			if (r->v[k].type == IV_STRING &&
			    r->v[v].type == IV_STRING &&
			    (strcasecmp(r->v[k].s, "name") == 0 ||
			    strcasecmp(r->v[k].s, "version") == 0))
				LOG2("imap: %s: server %s '%s'", c->host,
				    r->v[k].s, log_esc(r->v[v].s, 64));
		return 0;
	}
	if (strcmp(r->kind, "LIST") != 0)
		return 0;
	k = imap_kid(r, 0, 1);
	if (k != 0 && r->v[k].type == IV_STRING && r->v[k].len == 1)
		c->sep = r->v[k].s[0];
	return 0;
}

/* Waits for the greeting: OK (caps maybe), PREAUTH, or BYE. */
static int
greeting_untagged(void *arg, const struct imap_resp *r)
{
	int	*got = arg;

	if (strcmp(r->kind, "OK") == 0 || strcmp(r->kind, "PREAUTH") == 0)
		*got = strcmp(r->kind, "OK") == 0 ? 1 : 2;
	return 0;
}

static int
done_greeting(struct imap_conn *c, void *arg)
{
	return *(int *)arg != 0;
}

int
imap_connect(const struct imap_conn_opts *o, struct imap_conn **out,
    char **why)
{
	struct imap_conn *c = NULL;
	struct tls_opts	 to;
	struct imap_done d;
	uint32_t	 tags[3];
	size_t		 i, ntag;
	int		 r, greeted = 0, port;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MSYNC_ERR_NOMEM;
	c->fd = -1;
	c->sep = '/';
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : TIMEOUT_DEFAULT;
	c->trickle_ms = o->trickle_ms != 0 ? o->trickle_ms : TRICKLE_DEFAULT;
	if ((c->host = strdup(o->host)) == NULL ||
	    (c->rbuf = c->rmem = malloc(RBUF_CAP)) == NULL ||
	    (c->wbuf = malloc(WBUF_CAP)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	port = o->port != 0 ? o->port : o->tls == IMAP_TLS_IMPLICIT ? 993 :
	    143;
	if ((r = tls_tcp_connect(o->host, port, c->timeout_ms, &c->fd,
	    why)) != 0)
		goto out;
	if (o->tls == IMAP_TLS_IMPLICIT) {
		memset(&to, 0, sizeof(to));
		to.host = o->host;
		to.fingerprint = o->fingerprint;
		to.timeout_ms = c->timeout_ms;
		to.read_ahead = 1;	/* run_until asks tls_pending */
		if ((r = tls_start(c->fd, &to, &c->tls, why)) != 0)
			goto out;
	}
	imap_set_untagged(c, greeting_untagged, &greeted);
	if ((r = run_until(c, done_greeting, &greeted)) != 0)
		goto fail;
	imap_set_untagged(c, NULL, NULL);
	if (c->caps == 0 && (r = imap_cmd(c, NULL, "CAPABILITY")) != 0)
		goto fail;
	if (o->tls == IMAP_TLS_STARTTLS && (r = starttls(c, o, why)) != 0)
		goto fail;
	if (o->tls == IMAP_TLS_NONE)
		LOG1("imap: %s: no TLS (;tls=none): the password travels in "
		    "clear", c->host);
	if (greeted != 2 && (r = login(c, o)) != 0)
		goto fail;
	if (!(c->caps & IMAP_CAP_UIDPLUS))
		LOG2("imap: %s has no UIDPLUS: saved messages are found "
		    "again by a search", c->host);
	/* QRESYNC implies CONDSTORE (RFC 7162 section 3.2.3). */
	if (c->caps & IMAP_CAP_QRESYNC)
		c->caps |= IMAP_CAP_CONDSTORE;
	if (!(c->caps & IMAP_CAP_CONDSTORE))
		LOG2("imap: %s has no CONDSTORE: a no-change run reads every "
		    "mailbox's flags", c->host);
	else if (!(c->caps & IMAP_CAP_QRESYNC))
		LOG2("imap: %s has no QRESYNC: expunges cost a full listing "
		    "of the mailbox's UIDs", c->host);
	/* COMPRESS first: what follows is sent compressed. */
	if ((c->caps & IMAP_CAP_COMPRESS) && !o->no_compress) {
		if (!o->loopback_compress && peer_loopback(c->fd))
			LOG2("imap: %s: a loopback address: COMPRESS=DEFLATE "
			    "not asked for", c->host);
		else if ((r = compress_on(c)) != 0)
			goto fail;
	}
	/*
	 * ENABLE, ID, NAMESPACE (or LIST "" "" for the separator) in one
	 * round trip.  Their NO or BAD is not fatal: msync then works
	 * without what they give.
	 */
	imap_set_untagged(c, sep_untagged, c);
	ntag = 0;
	if ((c->caps & IMAP_CAP_ENABLE) && (c->caps & IMAP_CAP_CONDSTORE) &&
	    (r = imap_send(c, &tags[ntag++], "ENABLE %s",
	    (c->caps & IMAP_CAP_QRESYNC) ? "QRESYNC" : "CONDSTORE")) != 0)
		goto fail;
	/* RFC 2971: who we are, nothing about the user or the machine. */
	if ((c->caps & IMAP_CAP_ID) && (r = imap_send(c, &tags[ntag++],
	    "ID (\"name\" \"msync\" \"version\" \"%s\")",
	    MSYNC_VERSION)) != 0)
		goto fail;
	if ((r = imap_send(c, &tags[ntag++], "%s",
	    (c->caps & IMAP_CAP_NAMESPACE) ? "NAMESPACE" :
	    "LIST \"\" \"\"")) != 0)
		goto fail;
	for (i = 0; i < ntag; i++) {
		if ((r = imap_wait(c, tags[i], &d)) != 0)
			goto fail;
		if (d.status != IMAP_OK)
			LOG2("imap: %s: a command after the login failed: %s",
			    c->host, log_esc(d.text, 200));
	}
	imap_set_untagged(c, NULL, NULL);
	LOG2("imap: %s: logged in%s%s, separator '%c'%s%s%s", c->host,
	    c->tls != NULL ? ", " : "", c->tls != NULL ?
	    tls_describe(c->tls) : "", c->sep,
	    c->prefix != NULL && c->prefix[0] != '\0' ? ", personal "
	    "namespace '" : "", c->prefix != NULL && c->prefix[0] != '\0' ?
	    log_esc(c->prefix, 64) : "",
	    c->prefix != NULL && c->prefix[0] != '\0' ? "'" : "");
	*out = c;
	c = NULL;	/* transferred */
	r = 0;
	goto out;
fail:
	if (why != NULL && *why == NULL && c->why[0] != '\0')
		*why = strdup(c->why);
out:
	if (c != NULL) {
		c->wlen = 0;	/* no LOGOUT on a failed start */
		imap_close(c);
	}
	return r;
}

int
imap_append(struct imap_conn *c, const char *mbox, const char *flags,
    const char *date, int fd, uint64_t size, uint32_t *uidvalidity,
    uint32_t *uid, struct imap_done *d)
{
	char		 buf[IO_CHUNK], hdr[64];
	uint32_t	 tag;
	uint64_t	 left = size;
	unsigned long	 v, u;
	ssize_t		 n;
	int		 r, sync;

	*uid = 0;
	sync = !((c->caps & IMAP_CAP_LITERALPLUS) ||
	    ((c->caps & IMAP_CAP_LITERALMINUS) && size <= 4096));
	snprintf(hdr, sizeof(hdr), "{%llu%s}", (unsigned long long)size,
	    sync ? "" : "+");
	if ((r = imap_send(c, &tag, "APPEND %s%s%s%s%s %s", mbox,
	    flags[0] != '\0' ? " " : "", flags, date[0] != '\0' ? " " : "",
	    date, hdr)) != 0)
		return r;
	if (sync) {
		c->cont = 0;
		if ((r = run_until(c, done_cont, &tag)) != 0)
			return r;
		if (!c->cont)
			return imap_wait(c, tag, d);	/* refused early */
		c->cont = 0;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		return MSYNC_ERR_IO;
	while (left > 0) {
		n = read(fd, buf, left < sizeof(buf) ? (size_t)left :
		    sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? MSYNC_ERR_STORE_CHANGED : MSYNC_ERR_IO;
		if ((r = out_put(c, buf, (size_t)n)) != 0)
			return r;
		left -= (uint64_t)n;
		/* Keep the queue short: a big message is sent as it goes. */
		if (c->wlen > IO_CHUNK * 4 &&
		    (r = run_until(c, done_flushed, NULL)) != 0)
			return r;
	}
	if ((r = out_put(c, "\r\n", 2)) != 0 ||
	    (r = imap_wait(c, tag, d)) != 0)
		return r;
	if (d->status == IMAP_OK && strncasecmp(d->code, "APPENDUID ", 10) ==
	    0 && sscanf(d->code + 10, "%lu %lu", &v, &u) == 2 &&
	    v <= UINT32_MAX && u <= UINT32_MAX) {
		if (uidvalidity != NULL)
			*uidvalidity = (uint32_t)v;
		*uid = (uint32_t)u;
	}
	return 0;
}

/*
 * IDLE (RFC 2177), for watch mode; self-contained so that it touches
 * nothing the sync commands use.  The untagged handler is wrapped for
 * the duration: EXISTS, EXPUNGE, FETCH, RECENT and VANISHED count as a
 * change (then passed on as usual).
 */
struct idle_state {
	imap_untagged_fn fn;		/* the caller's handler */
	void		*arg;
	int		 changed;
	long long	 until;		/* leave IDLE at this time */
	uint32_t	 tag;
};

static int
idle_untagged(void *arg, const struct imap_resp *r)
{
	struct idle_state *is = arg;

	if (strcmp(r->kind, "EXISTS") == 0 || strcmp(r->kind, "EXPUNGE") ==
	    0 || strcmp(r->kind, "FETCH") == 0 || strcmp(r->kind, "RECENT") ==
	    0 || strcmp(r->kind, "VANISHED") == 0)
		is->changed = 1;
	return is->fn != NULL ? is->fn(is->arg, r) : 0;
}

static int
done_idle(struct imap_conn *c, void *arg)
{
	struct idle_state *is = arg;
	struct pending	*p = pending_find(c, is->tag);

	return is->changed || p == NULL || p->done || msync_now_ms() >= is->until;
}

int
imap_idle(struct imap_conn *c, int max_ms, int *changed)
{
	struct idle_state is;
	struct imap_done d;
	struct pending	*p;
	int		 r, saved_timeout = c->timeout_ms;

	*changed = 0;
	memset(&is, 0, sizeof(is));
	is.fn = c->untagged;
	is.arg = c->uarg;
	c->untagged = idle_untagged;
	c->uarg = &is;
	c->cont = 0;
	if ((r = imap_send(c, &is.tag, "IDLE")) != 0)
		goto out;
	if ((r = run_until(c, done_cont, &is.tag)) != 0)
		goto out;
	if (!c->cont) {
		/* Refused at once: a server without IDLE. */
		pending_take(c, is.tag, &d);
		r = MSYNC_ERR_NOTFOUND;
		goto out;
	}
	c->cont = 0;
	/* A server is silent while idling: only max_ms bounds the wait. */
	c->timeout_ms = max_ms + 60000;
	is.until = msync_now_ms() + max_ms;
	if ((r = run_until(c, done_idle, &is)) != 0)
		goto out;
	c->timeout_ms = saved_timeout;
	p = pending_find(c, is.tag);
	if (p != NULL && p->done) {
		/* The server ended the IDLE itself: no DONE to send. */
		pending_take(c, is.tag, &d);
	} else if ((r = out_put(c, "DONE\r\n", 6)) != 0 ||
	    (r = imap_wait(c, is.tag, &d)) != 0)
		goto out;
	if (d.status != IMAP_OK) {
		conn_why(c, "%s ended IDLE with %s", c->host,
		    d.status == IMAP_NO ? "NO" : "BAD");
		r = MSYNC_ERR_PROTO;
	}
out:
	c->timeout_ms = saved_timeout;
	c->untagged = is.fn;
	c->uarg = is.arg;
	*changed = is.changed;
	return r;
}

void
imap_close(struct imap_conn *c)
{
	uint32_t	 tag;

	if (c == NULL)
		return;
	if (c->fd >= 0 && c->why[0] == '\0' && c->eof == 0 && c->wlen == 0 &&
	    imap_send(c, &tag, "LOGOUT") == 0) {
		c->timeout_ms = 2000;
		(void)imap_wait(c, tag, NULL);
	}
	LOG3("imap: %s: %llu bytes in, %llu out", c->host,
	    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
	tls_free(c->tls);
	if (c->fd >= 0)
		close(c->fd);
	if (c->zon) {
		inflateEnd(&c->zin);
		deflateEnd(&c->zout);
	}
	free(c->zraw);
	free(c->rmem);
	free(c->wbuf);
	free(c->pend);
	free(c->host);
	free(c->prefix);
	free(c);
}
