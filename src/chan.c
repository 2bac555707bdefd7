/*
 * chan.c — the record channel: handshake line, record framing, LZ4
 * streaming per direction, non-blocking output queue, byte counters and a
 * token-bucket bandwidth cap.  See chan.h and docs/PROTOCOL.md.
 *
 * Buffers (all struct mbuf):
 *
 *	rout	records queued, not yet compressed (compressed mode only;
 *		less than one LZ4 block: full blocks are compressed at once)
 *	wout	bytes for the fd, not yet written
 *	win	bytes read from the fd, not yet decompressed (compressed
 *		mode only)
 *	rin	record bytes received, not yet taken by chan_get
 *
 * Input is bounded: chan_fill reads only while rin (uncompressed) or win
 * (compressed) holds less than one largest record plus one LZ4 block, and
 * decompresses only while rin has room for the block under that bound.
 * chan_flush must not deadlock against a peer that is flushing too, so
 * while it waits for the fd to take our output it keeps reading, up to
 * CHAN_FLUSH_IN_MAX bytes; past that it stops reading and waits.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "buf.h"
#include "chan.h"
#include "log.h"
#include "lz4s.h"
#include "msync.h"
#include "proto.h"

#define CHAN_READ_CHUNK		(64 * 1024)	/* bytes per read(2) */
#define CHAN_WRITE_CHUNK	(1024 * 1024)	/* bytes per write(2) */
#define CHAN_OUT_MAX		(1UL << 30)	/* queued output */
#define CHAN_FLUSH_IN_MAX	(1UL << 30)	/* input read in chan_flush */
#define CHAN_WIN_MAX		(2 * (LZ4S_HDR_LEN + LZ4S_CBLOCK_MAX))
#define CHAN_GARBAGE_MS		200		/* to collect a bad line */
#define CHAN_CAP_LEN_MAX	32		/* bytes in a capability word */
#define CHAN_AWAY_MS		1000		/* away this long: own work */
#define CHAN_KA_MIN_MS		100		/* shortest keepalive interval */

/*
 * The fuzzer (tests/fuzz, built with MSYNC_FUZZ) feeds made-up streams
 * that could never carry right checksums: it skips the comparisons, so
 * that it still reaches the decoders behind them.
 */
#ifdef MSYNC_FUZZ
#define CHAN_FUZZ	1
#else
#define CHAN_FUZZ	0
#endif

struct chan {
	int		 rfd;		/* borrowed */
	int		 wfd;		/* borrowed */
	int		 rflags;	/* rfd's flags before chan_new */
	int		 wflags;	/* wfd's flags before chan_new */
	int		 ready;		/* 1: handshake done */
	int		 compressed;	/* 1: LZ4 both ways */
	int		 guid_data;	/* 1: MSG_DATA payloads carry no check
					   of their own (protocol 3) */
	int		 eof;		/* 1: read(2) returned 0 */
	int		 rerr;		/* sticky input error (PROTO) */
	int		 werr;		/* sticky output error */
	uint64_t	 seq_out;	/* number of the next record we send */
	uint64_t	 seq_in;	/* number of the next record we take */
	int		 in_checked;	/* 1: the record at rin's front passed
					   its payload check */
	size_t		 in_max;	/* normal bound of rin */
	struct mbuf	*rout;		/* owned; compressed mode only */
	struct mbuf	*wout;		/* owned */
	struct mbuf	*win;		/* owned; compressed mode only */
	struct mbuf	*rin;		/* owned */
	struct lz4s_enc	*enc;		/* owned; compressed mode only */
	struct lz4s_dec	*dec;		/* owned; compressed mode only */
	struct chan_stats st;		/* byte counters */
	uint64_t	 bw;		/* bytes per second; 0 = no cap */
	double		 tokens;	/* bytes that may be written now */
	double		 burst;		/* most tokens that can be saved up */
	struct timespec	 bwlast;	/* when tokens were last topped up */

	/*
	 * Idle timeout and keepalives (chan_set_timeout).  mu guards all of
	 * the above against the keepalive thread: every public function
	 * holds it (it is recursive, as they call each other), waits
	 * included, so the thread only acts while the owner is away doing
	 * its own work.
	 */
	pthread_mutex_t	 mu;
	int		 mu_ok;		/* 1: mu initialised */
	int		 idle_ms;	/* 0: no timeout, no keepalives */
	int		 ka_ms;		/* keepalive interval */
	char		*who;		/* owned; the peer, for the message */
	int		 timed_out;	/* 1: sticky MSYNC_ERR_TIMEOUT */
	int64_t		 quiet_since;	/* ms: waiting without progress since */
	int64_t		 wait_left;	/* ms: when the owner last left a wait */
	int64_t		 last_out;	/* ms: when bytes last went out */
	uint64_t	 nkeepalive;	/* keepalives sent */
	pthread_t	 ka;		/* the keepalive thread, if ka_on */
	int		 ka_on;
	int		 ka_stop;	/* 1: the thread must end (ka_mu) */
	pthread_mutex_t	 ka_mu;
	pthread_cond_t	 ka_cv;
};

static int	 chan_put_l(struct chan *, uint8_t, const void *, size_t);
static size_t	 chan_pending_l(const struct chan *);
static int	 chan_flush_some_l(struct chan *);
static int	 chan_flush_l(struct chan *);
static int	 chan_fill_l(struct chan *);
static int	 chan_get_l(struct chan *, uint8_t *, const uint8_t **,
		    size_t *);
static int	 chan_wait_l(struct chan *, int);
static int	 chan_get_wait_l(struct chan *, uint8_t *, const uint8_t **,
		    size_t *);
static void	 chan_set_bwlimit_l(struct chan *, uint64_t);

/*
 * Adds O_NONBLOCK to fd, saving the old flags in *saved.
 * Returns 0 or MSYNC_ERR_IO.
 */
static int
set_nonblock(int fd, int *saved)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1)
		return MSYNC_ERR_IO;
	*saved = fl;
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return MSYNC_ERR_IO;
	return 0;
}

/*
 * A channel over rfd (read) and wfd (write), which may be the same fd.
 * Both are made non-blocking; chan_free restores their flags.  Neither is
 * closed.  Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
chan_new(int rfd, int wfd, struct chan **out)
{
	struct chan	*c;
	size_t		 max = 0;
	unsigned	 t;
	int		 r;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MSYNC_ERR_NOMEM;
	c->rfd = rfd;
	c->wfd = wfd;
	c->rflags = c->wflags = -1;
	{
		pthread_mutexattr_t	 ma;

		if (pthread_mutexattr_init(&ma) != 0 ||
		    pthread_mutexattr_settype(&ma,
		    PTHREAD_MUTEX_RECURSIVE) != 0 ||
		    pthread_mutex_init(&c->mu, &ma) != 0) {
			free(c);
			return MSYNC_ERR_NOMEM;
		}
		pthread_mutexattr_destroy(&ma);
		c->mu_ok = 1;
	}
	for (t = 1; t <= REC_TYPE_MAX; t++)
		if (proto_max_len((uint8_t)t) > max)
			max = proto_max_len((uint8_t)t);
	c->in_max = CHAN_HDR_LEN + max + LZ4S_BLOCK_MAX;
	if ((c->wout = mbuf_new(CHAN_OUT_MAX)) == NULL ||
	    (c->rin = mbuf_new(c->in_max + CHAN_FLUSH_IN_MAX)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	if ((r = set_nonblock(rfd, &c->rflags)) != 0)
		goto out;
	if (wfd != rfd && (r = set_nonblock(wfd, &c->wflags)) != 0)
		goto out;
	*out = c;
	c = NULL;	/* transferred */
 out:
	chan_free(c);
	return r;
}

/* Frees the channel and restores the fds' flags; closes neither. */
void
chan_free(struct chan *c)
{
	if (c == NULL)
		return;
	if (c->ka_on) {
		pthread_mutex_lock(&c->ka_mu);
		c->ka_stop = 1;
		pthread_cond_signal(&c->ka_cv);
		pthread_mutex_unlock(&c->ka_mu);
		pthread_join(c->ka, NULL);
		pthread_cond_destroy(&c->ka_cv);
		pthread_mutex_destroy(&c->ka_mu);
		if (c->nkeepalive > 0)
			LOG4("chan: %" PRIu64 " keepalives sent", c->nkeepalive);
	}
	if (c->mu_ok)
		pthread_mutex_destroy(&c->mu);
	free(c->who);
	if (c->rflags != -1)
		(void)fcntl(c->rfd, F_SETFL, c->rflags);
	if (c->wflags != -1)
		(void)fcntl(c->wfd, F_SETFL, c->wflags);
	mbuf_free(c->rout);
	mbuf_free(c->wout);
	mbuf_free(c->win);
	mbuf_free(c->rin);
	lz4s_enc_free(c->enc);
	lz4s_dec_free(c->dec);
	free(c);
}

/*
 * Sets *why (if why is not NULL) to a new string; out of memory leaves it
 * NULL.
 */
static void
set_why(char **why, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_why(char **why, const char *fmt, ...)
{
	va_list	 ap;

	if (why == NULL)
		return;
	free(*why);
	*why = NULL;
	va_start(ap, fmt);
	if (vasprintf(why, fmt, ap) == -1)
		*why = NULL;
	va_end(ap);
}

/*
 * Parses a decimal version number of 1..5 digits without a leading zero,
 * 1..65535, at *pp up to the next space or the end.  Returns 0 and
 * advances *pp, or -1.
 */
static int
parse_ver(const char **pp, unsigned *v)
{
	const char	*p = *pp;
	unsigned	 n = 0;
	int		 k;

	for (k = 0; p[k] >= '0' && p[k] <= '9'; k++) {
		if (k == 5 || (k == 0 && p[k] == '0'))
			return -1;
		n = n * 10 + (unsigned)(p[k] - '0');
	}
	if (k == 0 || n == 0 || n > 65535 || (p[k] != ' ' && p[k] != '\0'))
		return -1;
	*v = n;
	*pp = p + k;
	return 0;
}

/*
 * Parses the peer's handshake line (without its newline, NUL-terminated):
 *	"msync" SP minver SP maxver *(SP capability)
 * Unknown capabilities are ignored.  Returns 0, or -1 if the line is not
 * an msync handshake.
 */
static int
parse_line(const char *line, unsigned *vmin, unsigned *vmax, int *lz4,
    int *want)
{
	const char	*p = line, *w;
	size_t		 n;

	*lz4 = *want = 0;
	if (strncmp(p, "msync ", 6) != 0)
		return -1;
	p += 6;
	if (parse_ver(&p, vmin) == -1 || *p++ != ' ' ||
	    parse_ver(&p, vmax) == -1 || *vmin > *vmax)
		return -1;
	while (*p != '\0') {
		if (*p++ != ' ')
			return -1;
		for (w = p; (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'; p++)
			;
		n = (size_t)(p - w);
		if (n == 0 || n > CHAN_CAP_LEN_MAX ||
		    (*p != ' ' && *p != '\0'))
			return -1;
		if (n == 3 && strncmp(w, "lz4", 3) == 0)
			*lz4 = 1;
		else if (n == 8 && strncmp(w, "compress", 8) == 0)
			*want = 1;
	}
	return 0;
}

/*
 * Scans the peer's bytes so far for the handshake line.  Returns 1 when
 * the line (len bytes with its newline) is complete, 0 when more bytes
 * may still make one, -1 when they cannot (a byte that is not printable
 * ASCII, a line over PROTO_HANDSHAKE_MAX, or not starting with "msync ").
 */
static int
scan_line(const uint8_t *p, size_t n, size_t *len)
{
	static const char pfx[] = "msync ";
	size_t		 i;

	*len = 0;
	for (i = 0; i < n && i < PROTO_HANDSHAKE_MAX; i++) {
		if (p[i] == '\n') {
			*len = i + 1;
			return 1;
		}
		if (p[i] < 0x20 || p[i] > 0x7e)
			return -1;
		if (i < sizeof(pfx) - 1 && p[i] != (uint8_t)pfx[i])
			return -1;
	}
	return i == PROTO_HANDSHAKE_MAX ? -1 : 0;
}

/*
 * Sets *lmin and *lmax to the protocol versions this side advertises:
 * PROTO_VERSION_MIN..MAX.  Test-only hook: MSYNC_TEST_PROTO_VERSIONS="MIN
 * MAX" in the environment replaces that range (read at each handshake), so
 * the integration tests can stage a version mismatch; anything that does
 * not parse as two numbers, MIN <= MAX, is ignored.
 */
static void
local_versions(unsigned *lmin, unsigned *lmax)
{
	const char	*e;
	unsigned	 a, b;
	char		 c;

	*lmin = PROTO_VERSION_MIN;
	*lmax = PROTO_VERSION_MAX;
	if ((e = getenv("MSYNC_TEST_PROTO_VERSIONS")) != NULL &&
	    sscanf(e, "%u %u %c", &a, &b, &c) == 2 && a <= b) {
		*lmin = a;
		*lmax = b;
	}
}

/*
 * After our line, tells a peer whose line we refused why, as a plain
 * ERROR record (record 0), so that an msync peer reports a protocol
 * error (exit 76) rather than a lost connection.  Best effort: one
 * non-blocking write of a small record.  (A peer that expects LZ4
 * blocks fails their check instead: still a protocol error.)
 */
static void
hs_refuse(struct chan *c, int code, const char *why)
{
	uint8_t	*p = NULL, *rec;
	size_t	 len = 0;

	if (proto_enc_text(code, why != NULL ? why : msync_strerror(code),
	    &p, &len) != 0)
		return;
	if ((rec = malloc(CHAN_HDR_LEN + len)) != NULL) {
		memcpy(rec + CHAN_HDR_LEN, p, len);
		chan_frame_hdr(rec, 0, REC_ERROR, p, len);
		if (write(c->wfd, rec, CHAN_HDR_LEN + len) == -1)
			LOG4("chan: cannot say why: %s", strerror(errno));
		free(rec);
	}
	free(p);
}

/*
 * Exchanges handshake lines: writes ours and reads the peer's at the same
 * time, under one deadline.  On success the channel is ready and bytes
 * that followed the peer's line are kept as input.  On failure *why (if
 * why is not NULL) says what happened, with the peer's bytes escaped.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int
chan_handshake(struct chan *c, int want_compress, int timeout_ms,
    unsigned *version, int *compressed, char **why)
{
	struct mbuf	*hs = NULL;
	struct pollfd	 pfd[2];
	char		 mine[PROTO_HANDSHAKE_MAX], line[PROTO_HANDSHAKE_MAX];
	size_t		 mlen, moff = 0, llen = 0, rest;
	int64_t		 deadline, left;
	unsigned	 vmin = 0, vmax = 0, lmin, lmax;
	uint8_t		*dp;
	ssize_t		 n;
	int		 r, st = 0, npfd, lz4, want, wdead = 0, bad = 0;

	*version = 0;
	*compressed = 0;
	if (why != NULL)
		*why = NULL;
	if (c->ready)
		return MSYNC_ERR_INTERNAL;
	local_versions(&lmin, &lmax);
	mlen = (size_t)snprintf(mine, sizeof(mine), "msync %u %u lz4%s\n",
	    lmin, lmax, want_compress ? " compress" : "");
	if ((hs = mbuf_new(c->in_max)) == NULL)
		return MSYNC_ERR_NOMEM;
	deadline = timeout_ms < 0 ? INT64_MAX : msync_now_ms() + timeout_ms;

	while (st != 1 || (moff < mlen && !wdead)) {
		left = -1;
		if (deadline != INT64_MAX &&
		    (left = deadline - msync_now_ms()) <= 0) {
			r = st == -1 ? MSYNC_ERR_PROTO : MSYNC_ERR_UNREACHABLE;
			goto fail;
		}
		npfd = 0;
		memset(pfd, 0, sizeof(pfd));
		if (moff < mlen && !wdead) {
			pfd[npfd].fd = c->wfd;
			pfd[npfd++].events = POLLOUT;
		}
		if (st != 1) {
			if (npfd == 1 && c->wfd == c->rfd)
				pfd[0].events |= POLLIN;
			else {
				pfd[npfd].fd = c->rfd;
				pfd[npfd++].events = POLLIN;
			}
		}
		if (poll(pfd, (nfds_t)npfd, left > INT_MAX ? INT_MAX :
		    (int)left) == -1) {
			if (errno == EINTR)
				continue;
			r = MSYNC_ERR_IO;
			goto out;
		}
		if (moff < mlen && !wdead) {
			n = write(c->wfd, mine + moff, mlen - moff);
			if (n > 0) {
				moff += (size_t)n;
				c->st.wire_out += (uint64_t)n;
				c->st.raw_out += (uint64_t)n;
			} else if (n == -1 && (errno == EPIPE ||
			    errno == ECONNRESET))
				wdead = 1;	/* read what the peer said */
			else if (n == -1 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR) {
				r = MSYNC_ERR_IO;
				goto out;
			}
		}
		if (st == 1)
			continue;
		if ((r = mbuf_reserve(hs, CHAN_READ_CHUNK, &dp)) != 0)
			goto out;
		n = read(c->rfd, dp, CHAN_READ_CHUNK);
		mbuf_consume_end(hs, n > 0 ? CHAN_READ_CHUNK - (size_t)n :
		    CHAN_READ_CHUNK);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR))
			continue;
		if (n == -1 && errno != ECONNRESET) {
			r = MSYNC_ERR_IO;
			goto out;
		}
		if (n <= 0) {
			r = st == -1 ? MSYNC_ERR_PROTO : MSYNC_ERR_PEER_EOF;
			goto fail;
		}
		c->st.wire_in += (uint64_t)n;
		st = scan_line(mbuf_ptr(hs), mbuf_len(hs), &llen);
		if (st == -1 && !bad) {
			/* Collect a little more of it to show the user. */
			bad = 1;
			if (deadline - msync_now_ms() > CHAN_GARBAGE_MS)
				deadline = msync_now_ms() + CHAN_GARBAGE_MS;
		}
		if (st == -1 && (memchr(mbuf_ptr(hs), '\n', mbuf_len(hs)) !=
		    NULL || mbuf_len(hs) >= PROTO_HANDSHAKE_MAX)) {
			r = MSYNC_ERR_PROTO;
			goto fail;
		}
	}
	if (wdead) {
		r = MSYNC_ERR_PEER_EOF;
		set_why(why, "the peer closed the connection during the "
		    "handshake");
		goto out;
	}

	memcpy(line, mbuf_ptr(hs), llen - 1);
	line[llen - 1] = '\0';
	if (parse_line(line, &vmin, &vmax, &lz4, &want) == -1) {
		r = MSYNC_ERR_PROTO;
		goto fail;
	}
	c->st.raw_in += llen;
	if (vmin > lmax || vmax < lmin) {
		r = MSYNC_ERR_VERSION;
		set_why(why, "no common protocol version: this side speaks "
		    "%u..%u, the peer %u..%u", lmin, lmax, vmin, vmax);
		goto out;
	}
	*version = vmax < lmax ? vmax : lmax;
	c->guid_data = *version >= 3;
	c->compressed = lz4 && (want || want_compress);
	mbuf_consume(hs, llen);
	rest = mbuf_len(hs);
	if (c->compressed) {
		if ((r = lz4s_enc_new(&c->enc)) != 0 ||
		    (r = lz4s_dec_new(&c->dec)) != 0)
			goto out;
		if ((c->rout = mbuf_new(c->in_max)) == NULL ||
		    (c->win = mbuf_new(CHAN_WIN_MAX + CHAN_FLUSH_IN_MAX)) ==
		    NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		r = mbuf_put(c->win, mbuf_ptr(hs), rest);
	} else {
		r = mbuf_put(c->rin, mbuf_ptr(hs), rest);
		c->st.raw_in += rest;
	}
	if (r != 0)
		goto out;
	*compressed = c->compressed;
	c->ready = 1;
	LOG4("chan: protocol %u, compression %s", *version,
	    c->compressed ? "on" : "off");
	goto out;
 fail:
	if (r == MSYNC_ERR_UNREACHABLE)
		set_why(why, "no handshake from the peer within %d ms",
		    timeout_ms);
	else if (r == MSYNC_ERR_PEER_EOF && mbuf_len(hs) == 0)
		set_why(why, "the peer closed the connection before its "
		    "handshake");
	else {
		llen = mbuf_len(hs) < sizeof(line) - 1 ? mbuf_len(hs) :
		    sizeof(line) - 1;
		memcpy(line, mbuf_ptr(hs), llen);
		line[llen] = '\0';
		if ((dp = memchr(line, '\n', llen)) != NULL)
			*dp = '\0';
		if (r == MSYNC_ERR_PEER_EOF)
			set_why(why, "the peer closed the connection after "
			    "'%s'", log_esc(line, 128));
		else
			set_why(why, "the peer is not msync: it said '%s'",
			    log_esc(line, 128));
	}
 out:
	mbuf_free(hs);
	if (r != 0)
		LOG3("chan: handshake failed: %s", msync_strerror(r));
	if ((r == MSYNC_ERR_PROTO || r == MSYNC_ERR_VERSION) && moff == mlen &&
	    !wdead)
		hs_refuse(c, r, why != NULL ? *why : NULL);
	return r;
}

/*
 * Compresses everything in rout into blocks appended to wout.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
compress_staged(struct chan *c)
{
	size_t	 n;
	int	 r;

	while (mbuf_len(c->rout) > 0) {
		n = mbuf_len(c->rout);
		if (n > LZ4S_BLOCK_MAX)
			n = LZ4S_BLOCK_MAX;
		if ((r = lz4s_enc_block(c->enc, mbuf_ptr(c->rout), n,
		    c->wout)) != 0)
			return r;
		mbuf_consume(c->rout, n);
	}
	return 0;
}

/* The low 32 bits of XXH3-64 of p[0..len), seeded with the record number. */
static uint32_t
check32(const void *p, size_t len, uint64_t seq)
{
	return (uint32_t)XXH3_64bits_withSeed(p, len, seq);
}

/*
 * 1 if a record of this type carries no payload check on this channel.
 * From protocol 3 on, MSG_DATA's pcheck is 0: message content is
 * covered end to end by its GUID, which the receiver computes anyway
 * and compares before anything is saved (a mismatch is exit 65 with
 * the sync state not written), so a second hash of the same bytes on
 * each side would only cost time: a fifth of the instructions of a
 * local copy.  The header check still covers type, length and record
 * number, so a changed length or a lost record still fails at once.
 */
static int
no_pcheck(const struct chan *c, uint8_t type)
{
	return c->guid_data && type == REC_MSG_DATA;
}

/* Fills hdr: type, length, pcheck, then the check of those 9 bytes. */
static void
frame_hdr(uint8_t hdr[CHAN_HDR_LEN], uint64_t seq, uint8_t type,
    size_t len, uint32_t pcheck)
{
	hdr[0] = type;
	mbuf_set_be32(hdr + 1, (uint32_t)len);
	mbuf_set_be32(hdr + 5, pcheck);
	mbuf_set_be32(hdr + 9, check32(hdr, 9, seq));
}

/*
 * Fills hdr with the header of record number seq (0 for the first
 * record after the handshake, in each direction): type, length, the
 * payload's check, then the check of those 9 bytes.  Seeding both checks
 * with the record number makes a lost, repeated or reordered record fail
 * as surely as a changed byte.
 */
void
chan_frame_hdr(uint8_t hdr[CHAN_HDR_LEN], uint64_t seq, uint8_t type,
    const void *payload, size_t len)
{
	frame_hdr(hdr, seq, type, len, check32(payload, len, seq));
}

/*
 * Queues one record: header and a copy of the payload.  In compressed
 * mode every full LZ4 block is compressed at once.  Returns 0 on success,
 * negative MSYNC_ERR_* on failure (nothing queued).
 */
static int
chan_put_l(struct chan *c, uint8_t type, const void *payload, size_t len)
{
	struct mbuf	*q;
	uint8_t		*dp;
	size_t		 n;
	int		 r;

	if (!c->ready || type == 0 || type > REC_TYPE_MAX)
		return MSYNC_ERR_INTERNAL;
	if (len > proto_max_len(type))
		return MSYNC_ERR_TOOBIG;
	if (c->werr != 0)
		return c->werr;
	q = c->compressed ? c->rout : c->wout;
	if (c->compressed) {
		/* Make sure the blocks it fills fit in wout. */
		n = (mbuf_len(q) + CHAN_HDR_LEN + len) / LZ4S_BLOCK_MAX;
		if (n >= mbuf_avail(c->wout) / (LZ4S_HDR_LEN +
		    LZ4S_CBLOCK_MAX))
			return MSYNC_ERR_TOOBIG;
	}
	if ((r = mbuf_reserve(q, CHAN_HDR_LEN + len, &dp)) != 0)
		return r;
	if (len > 0)
		memcpy(dp + CHAN_HDR_LEN, payload, len);
	frame_hdr(dp, c->seq_out, type, len, no_pcheck(c, type) ? 0 :
	    check32(dp + CHAN_HDR_LEN, len, c->seq_out));
	c->seq_out++;
	c->st.raw_out += CHAN_HDR_LEN + len;
	if (!c->compressed)
		return 0;
	while (mbuf_len(c->rout) >= LZ4S_BLOCK_MAX) {
		if ((r = lz4s_enc_block(c->enc, mbuf_ptr(c->rout),
		    LZ4S_BLOCK_MAX, c->wout)) != 0) {
			c->werr = r;
			return r;
		}
		mbuf_consume(c->rout, LZ4S_BLOCK_MAX);
	}
	return 0;
}

static size_t
chan_pending_l(const struct chan *c)
{
	return mbuf_len(c->wout) + (c->rout != NULL ? mbuf_len(c->rout) : 0);
}

/* Tops up the bandwidth tokens for the time that passed. */
static void
bw_refill(struct chan *c)
{
	struct timespec	 ts;
	double		 dt;

	if (c->bw == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	dt = (double)(ts.tv_sec - c->bwlast.tv_sec) +
	    (double)(ts.tv_nsec - c->bwlast.tv_nsec) / 1e9;
	c->bwlast = ts;
	if (dt <= 0)
		return;
	c->tokens += dt * (double)c->bw;
	if (c->tokens > c->burst)
		c->tokens = c->burst;
}

/*
 * Caps the bytes written per second; 0 removes the cap.  Up to an eighth
 * of a second's worth (at least 512 bytes) may go out in one burst.
 */
static void
chan_set_bwlimit_l(struct chan *c, uint64_t bytes_per_sec)
{
	c->bw = bytes_per_sec;
	c->burst = (double)bytes_per_sec / 8;
	if (c->burst < 512)
		c->burst = 512;
	c->tokens = c->burst;
	clock_gettime(CLOCK_MONOTONIC, &c->bwlast);
}

/*
 * Writes what the fd takes now, within the bandwidth cap.  In compressed
 * mode the staged records are cut into a block first, unless a block's
 * worth of output is still waiting anyway.  Returns 0, or MSYNC_ERR_IO /
 * MSYNC_ERR_PEER_EOF (sticky).
 */
static int
chan_flush_some_l(struct chan *c)
{
	size_t	 n;
	ssize_t	 w;
	int	 r;

	if (c->werr != 0)
		return c->werr;
	if (!c->ready)
		return 0;
	for (;;) {
		if (c->compressed && mbuf_len(c->wout) < LZ4S_BLOCK_MAX &&
		    (r = compress_staged(c)) != 0) {
			c->werr = r;
			return r;
		}
		if ((n = mbuf_len(c->wout)) == 0)
			return 0;
		if (n > CHAN_WRITE_CHUNK)
			n = CHAN_WRITE_CHUNK;
		if (c->bw != 0) {
			bw_refill(c);
			if (c->tokens < 1)
				return 0;
			if ((double)n > c->tokens)
				n = (size_t)c->tokens;
		}
		w = write(c->wfd, mbuf_ptr(c->wout), n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EPIPE || errno == ECONNRESET) {
				LOG4("chan: the peer closed the connection");
				c->werr = MSYNC_ERR_PEER_EOF;
			} else {
				LOG3("chan: write: %s", strerror(errno));
				c->werr = MSYNC_ERR_IO;
			}
			return c->werr;
		}
		mbuf_consume(c->wout, (size_t)w);
		c->st.wire_out += (uint64_t)w;
		if (c->idle_ms > 0)
			c->quiet_since = c->last_out = msync_now_ms();
		if (c->bw != 0)
			c->tokens -= (double)w;
	}
}

/*
 * Looks at the record at the front of rin.  Returns 0 with *type and
 * *len when it is all there, MSYNC_ERR_INCOMPLETE when not, and
 * MSYNC_ERR_PROTO (sticky) for an unknown type or a length over the
 * type's maximum, as soon as the header shows it.
 */
static int
rec_peek(struct chan *c, uint8_t *type, size_t *len)
{
	const uint8_t	*p = mbuf_ptr(c->rin);
	size_t		 have = mbuf_len(c->rin);
	uint32_t	 n;

	if (c->rerr != 0)
		return c->rerr;
	if (have < CHAN_HDR_LEN)
		return MSYNC_ERR_INCOMPLETE;
	/*
	 * Read: [record-hcheck].  Checked first, so that a changed type or
	 * length is reported as damage, and a changed length never makes
	 * us wait for bytes that will not come.
	 */
	if (mbuf_be32(p + 9) != check32(p, 9, c->seq_in) && !CHAN_FUZZ) {
		ERRX("record %" PRIu64 " from the peer arrived damaged "
		    "(header checksum mismatch): the connection changed it",
		    c->seq_in);
		return c->rerr = MSYNC_ERR_PROTO;
	}
	/* Read: [record-type]. */
	if (p[0] == 0 || p[0] > REC_TYPE_MAX) {
		LOG3("chan: record of unknown type %u", p[0]);
		return c->rerr = MSYNC_ERR_PROTO;
	}
	/* Read: [record-length]. */
	n = mbuf_be32(p + 1);
	if (n > proto_max_len(p[0])) {
		LOG3("chan: %s record of %u bytes, over its maximum %zu",
		    proto_rec_name(p[0]), n, proto_max_len(p[0]));
		return c->rerr = MSYNC_ERR_PROTO;
	}
	if (n > have - CHAN_HDR_LEN)
		return MSYNC_ERR_INCOMPLETE;
	/* Read: [record-pcheck]; 0 where there is none (no_pcheck). */
	if (!c->in_checked && mbuf_be32(p + 5) != (no_pcheck(c, p[0]) ? 0 :
	    check32(p + CHAN_HDR_LEN, n, c->seq_in)) && !CHAN_FUZZ) {
		ERRX("record %" PRIu64 " from the peer (%s, %u bytes) arrived "
		    "damaged (checksum mismatch): the connection changed it",
		    c->seq_in, proto_rec_name(p[0]), n);
		return c->rerr = MSYNC_ERR_PROTO;
	}
	c->in_checked = 1;
	*type = p[0];
	*len = n;
	return 0;
}

/*
 * Decompresses whole blocks from win into rin while rin stays within
 * limit.  Returns 0, or MSYNC_ERR_PROTO (sticky) for a bad block.
 */
static int
decompress_some(struct chan *c, size_t limit)
{
	size_t	 blen, rlen, before;
	int	 r;

	if (!c->compressed)
		return 0;
	while (c->rerr == 0) {
		r = lz4s_peek(c->dec, mbuf_ptr(c->win), mbuf_len(c->win),
		    &blen, &rlen);
		if (r == MSYNC_ERR_INCOMPLETE)
			break;
		if (r == 0 && blen > mbuf_len(c->win))
			break;
		if (r == 0 && (mbuf_len(c->rin) > limit ||
		    rlen > limit - mbuf_len(c->rin)))
			break;
		before = mbuf_len(c->rin);
		if (r == 0)
			r = lz4s_dec_block(c->dec, c->win, c->rin);
		if (r == MSYNC_ERR_TOOBIG)
			break;
		if (r != 0) {
			ERRX("compressed block from the peer arrived "
			    "damaged (%s): the connection changed it",
			    msync_strerror(r));
			c->rerr = MSYNC_ERR_PROTO;
			break;
		}
		c->st.raw_in += mbuf_len(c->rin) - before;
	}
	return c->rerr;
}

/*
 * Reads what the fd has now into win (compressed) or rin, while that
 * buffer holds less than limit bytes.  Sets c->eof at end of file.
 * Returns 0 or MSYNC_ERR_IO.
 */
static int
read_some(struct chan *c, size_t limit)
{
	struct mbuf	*q = c->compressed ? c->win : c->rin;
	uint8_t		*dp;
	size_t		 n;
	ssize_t		 got;
	int		 r;

	while (!c->eof && mbuf_len(q) < limit) {
		n = limit - mbuf_len(q);
		if (n > CHAN_READ_CHUNK)
			n = CHAN_READ_CHUNK;
		if ((r = mbuf_reserve(q, n, &dp)) != 0)
			return r == MSYNC_ERR_TOOBIG ? 0 : r;
		got = read(c->rfd, dp, n);
		mbuf_consume_end(q, got > 0 ? n - (size_t)got : n);
		if (got == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno != ECONNRESET) {
				LOG3("chan: read: %s", strerror(errno));
				return MSYNC_ERR_IO;
			}
			got = 0;
		}
		if (got == 0) {
			c->eof = 1;
			break;
		}
		c->st.wire_in += (uint64_t)got;
		if (c->idle_ms > 0)
			c->quiet_since = msync_now_ms();
		if (!c->compressed)
			c->st.raw_in += (uint64_t)got;
		if ((size_t)got < n)
			break;
	}
	return 0;
}

/*
 * Reads and decompresses what is available now, within the input bound.
 * Returns 0; MSYNC_ERR_PEER_EOF when the peer closed and no whole record
 * is buffered; MSYNC_ERR_PROTO for bad input; MSYNC_ERR_IO.
 */
static int
chan_fill_l(struct chan *c)
{
	uint8_t	 type;
	size_t	 len;
	int	 r;

	if (!c->ready)
		return MSYNC_ERR_INTERNAL;
	if (c->rerr != 0)
		return c->rerr;
	if ((r = decompress_some(c, c->in_max)) != 0 ||
	    (r = read_some(c, c->compressed ? CHAN_WIN_MAX : c->in_max)) !=
	    0 || (r = decompress_some(c, c->in_max)) != 0)
		return r;
	if (!c->eof)
		return 0;
	r = rec_peek(c, &type, &len);
	return r == MSYNC_ERR_INCOMPLETE ? MSYNC_ERR_PEER_EOF : r;
}

/*
 * Takes the next record off the input: *type and a borrowed view of its
 * payload, valid until the next chan_get, chan_fill, chan_flush or
 * chan_get_wait.  Returns 0 on success; MSYNC_ERR_INCOMPLETE when more
 * bytes are needed; MSYNC_ERR_PEER_EOF when none will come;
 * MSYNC_ERR_PROTO for a bad record.
 */
static int
chan_get_l(struct chan *c, uint8_t *type, const uint8_t **payload,
    size_t *len)
{
	int	 r;

	*type = 0;
	*payload = NULL;
	*len = 0;
	if (!c->ready)
		return MSYNC_ERR_INTERNAL;
	r = rec_peek(c, type, len);
	if (r == MSYNC_ERR_INCOMPLETE && c->compressed) {
		if ((r = decompress_some(c, c->in_max)) == 0)
			r = rec_peek(c, type, len);
	}
	if (r == MSYNC_ERR_INCOMPLETE && c->eof)
		r = MSYNC_ERR_PEER_EOF;
	if (r != 0) {
		*type = 0;
		*len = 0;
		return r;
	}
	*payload = mbuf_ptr(c->rin) + CHAN_HDR_LEN;
	mbuf_consume(c->rin, CHAN_HDR_LEN + *len);	/* bytes stay put */
	c->seq_in++;
	c->in_checked = 0;
	/* A keepalive only says the peer is alive: it has been counted. */
	if (*type == REC_KEEPALIVE)
		return chan_get_l(c, type, payload, len);
	return 0;
}

/*
 * The peer sent nothing, and took nothing, for the idle timeout while
 * we waited on it: says who went quiet, once, and makes the channel
 * fail from now on.  Returns MSYNC_ERR_TIMEOUT.
 */
static int
timed_out(struct chan *c, int64_t now)
{
	c->timed_out = 1;
	ERRX("%s sent nothing for %lld s: it went quiet, giving up "
	    "(--timeout %d); both stores are intact, run again to finish",
	    c->who != NULL ? c->who : "the peer",
	    (long long)((now - c->quiet_since) / 1000), c->idle_ms / 1000);
	return MSYNC_ERR_TIMEOUT;
}

/*
 * Polls for input (when there is room for it and the peer has not
 * closed) and for output (when some is pending, the fd has not failed
 * and the bandwidth cap allows), for at most timeout_ms (-1: no limit).
 * When only the cap holds output back, the wait ends when it allows
 * more.  Returns at once when there is nothing to wait for.
 * Returns 0 or MSYNC_ERR_IO.
 */
static int
wait_io(struct chan *c, int timeout_ms, size_t in_limit)
{
	struct pollfd	 pfd[2];
	struct mbuf	*q = c->compressed ? c->win : c->rin;
	short		 rev = 0, wev = 0;
	double		 want;
	int64_t		 now, left;
	int		 n = 0, bwms = -1, tmo = timeout_ms;

	if (c->timed_out)
		return MSYNC_ERR_TIMEOUT;
	if (!c->eof && c->rerr == 0 && mbuf_len(q) < in_limit)
		rev = POLLIN;
	if (chan_pending_l(c) > 0 && c->werr == 0) {
		bw_refill(c);
		if (c->bw == 0 || c->tokens >= 1)
			wev = POLLOUT;
		else {
			want = (double)chan_pending_l(c);
			if (want > c->burst / 2 + 1)
				want = c->burst / 2 + 1;
			want = (want - c->tokens) * 1000 / (double)c->bw;
			bwms = want > INT_MAX - 1 ? INT_MAX : (int)want + 1;
		}
	}
	if (rev == 0 && wev == 0 && bwms == -1)
		return 0;
	if (bwms != -1 && (tmo < 0 || bwms < tmo))
		tmo = bwms;
	if (c->idle_ms > 0) {
		now = msync_now_ms();
		/* Time we spent on our own work is not the peer's silence. */
		if (now - c->wait_left > CHAN_AWAY_MS && now > c->quiet_since)
			c->quiet_since = now;
		if ((left = c->quiet_since + c->idle_ms - now) <= 0)
			return timed_out(c, now);
		if (tmo < 0 || left < tmo)
			tmo = (int)left;
	}
	memset(pfd, 0, sizeof(pfd));
	if (rev != 0) {
		pfd[n].fd = c->rfd;
		pfd[n++].events = rev;
	}
	if (wev != 0) {
		if (n == 1 && c->rfd == c->wfd)
			pfd[0].events |= wev;
		else {
			pfd[n].fd = c->wfd;
			pfd[n++].events = wev;
		}
	}
	if (poll(pfd, (nfds_t)n, tmo) == -1 && errno != EINTR) {
		LOG3("chan: poll: %s", strerror(errno));
		return MSYNC_ERR_IO;
	}
	if (c->idle_ms > 0)
		c->wait_left = msync_now_ms();
	return 0;
}

/*
 * Waits until the fd is readable, or writable while output is pending,
 * or timeout_ms passes (-1 = forever).  Take every buffered record with
 * chan_get first: this waits on the fds only.  Returns 0 or MSYNC_ERR_IO.
 */
static int
chan_wait_l(struct chan *c, int timeout_ms)
{
	return wait_io(c, timeout_ms, c->compressed ? CHAN_WIN_MAX :
	    c->in_max);
}

/*
 * Writes everything queued, waiting as needed.  Meanwhile it reads the
 * peer's input into memory (up to CHAN_FLUSH_IN_MAX bytes), so two
 * peers flushing at each other both finish.  Returns 0, or MSYNC_ERR_IO /
 * MSYNC_ERR_PEER_EOF.
 */
static int
chan_flush_l(struct chan *c)
{
	size_t	 limit;
	int	 r;

	if (!c->ready)
		return MSYNC_ERR_INTERNAL;
	limit = (c->compressed ? CHAN_WIN_MAX : c->in_max) +
	    CHAN_FLUSH_IN_MAX;
	for (;;) {
		if ((r = chan_flush_some_l(c)) != 0)
			return r;
		if (chan_pending_l(c) == 0)
			return 0;
		if ((r = wait_io(c, -1, limit)) != 0 ||
		    (r = read_some(c, limit)) != 0)
			return r;
	}
}

/*
 * Waits for the next record, keeping pending output moving meanwhile.
 * Same results as chan_get, but never MSYNC_ERR_INCOMPLETE.
 */
static int
chan_get_wait_l(struct chan *c, uint8_t *type, const uint8_t **payload,
    size_t *len)
{
	int	 r;

	for (;;) {
		r = chan_get_l(c, type, payload, len);
		if (r != MSYNC_ERR_INCOMPLETE)
			return r;
		/* A dead write side must not hide what the peer said. */
		(void)chan_flush_some_l(c);
		if ((r = chan_wait_l(c, -1)) != 0)
			return r;
		r = chan_fill_l(c);
		if (r != 0 && r != MSYNC_ERR_PEER_EOF)
			return r;
	}
}

static void
chan_get_stats_l(const struct chan *c, struct chan_stats *st)
{
	*st = c->st;
}

/*
 * The keepalive thread: every half interval, if the owner has been away
 * from the channel (busy with its own work: a long listing, a big
 * message, a slow disk) for a whole interval and nothing went out
 * meanwhile, queues a KEEPALIVE record and writes what the fd takes.
 * It never waits for the fd, and never acts while the owner is inside a
 * chan function (that holds mu): a side that waits on its peer sends no
 * keepalives, so two sides stuck waiting on each other both time out.
 */
static void *
ka_main(void *arg)
{
	struct chan	*c = arg;
	struct timespec	 ts;
	int64_t		 now;
	long		 ns;

	pthread_mutex_lock(&c->ka_mu);
	while (!c->ka_stop) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ns = ts.tv_nsec + (long)(c->ka_ms / 2) * 1000000L;
		ts.tv_sec += ns / 1000000000L;
		ts.tv_nsec = ns % 1000000000L;
		(void)pthread_cond_timedwait(&c->ka_cv, &c->ka_mu, &ts);
		if (c->ka_stop || pthread_mutex_trylock(&c->mu) != 0)
			continue;
		now = msync_now_ms();
		if (c->werr == 0 && !c->timed_out &&
		    now - c->wait_left >= c->ka_ms &&
		    now - c->last_out >= c->ka_ms &&
		    chan_put_l(c, REC_KEEPALIVE, NULL, 0) == 0) {
			c->nkeepalive++;
			c->last_out = now;
			(void)chan_flush_some_l(c);
		}
		pthread_mutex_unlock(&c->mu);
	}
	pthread_mutex_unlock(&c->ka_mu);
	return NULL;
}

int
chan_set_timeout(struct chan *c, int idle_s, const char *who)
{
	pthread_condattr_t	 ca;
	int			 r = 0;

	if (!c->ready || c->ka_on || idle_s < 0 || idle_s > INT_MAX / 1000)
		return MSYNC_ERR_INTERNAL;
	if (idle_s == 0)
		return 0;
	free(c->who);
	if ((c->who = strdup(who != NULL ? who : "the peer")) == NULL)
		return MSYNC_ERR_NOMEM;
	pthread_mutex_lock(&c->mu);
	c->idle_ms = idle_s * 1000;
	c->ka_ms = c->idle_ms / 4 > CHAN_KA_MIN_MS ? c->idle_ms / 4 :
	    CHAN_KA_MIN_MS;
	c->quiet_since = c->wait_left = c->last_out = msync_now_ms();
	if (pthread_mutex_init(&c->ka_mu, NULL) != 0)
		r = MSYNC_ERR_NOMEM;
	else if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&c->ka_cv, &ca) != 0) {
		pthread_mutex_destroy(&c->ka_mu);
		r = MSYNC_ERR_NOMEM;
	} else if (pthread_create(&c->ka, NULL, ka_main, c) != 0) {
		pthread_cond_destroy(&c->ka_cv);
		pthread_mutex_destroy(&c->ka_mu);
		r = MSYNC_ERR_NOMEM;
	} else
		c->ka_on = 1;
	if (r != 0)
		c->idle_ms = 0;
	pthread_mutex_unlock(&c->mu);
	return r;
}

/*
 * The public functions: each holds mu while it runs (see struct chan).
 */
int
chan_put(struct chan *c, uint8_t type, const void *payload, size_t len)
{
	int	 r;

	pthread_mutex_lock(&c->mu);
	r = chan_put_l(c, type, payload, len);
	pthread_mutex_unlock(&c->mu);
	return r;
}

size_t
chan_pending(const struct chan *c)
{
	size_t	 n;

	pthread_mutex_lock((pthread_mutex_t *)&c->mu);
	n = chan_pending_l(c);
	pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
	return n;
}

int
chan_flush_some(struct chan *c)
{
	int	 r;

	pthread_mutex_lock(&c->mu);
	r = chan_flush_some_l(c);
	pthread_mutex_unlock(&c->mu);
	return r;
}

int
chan_flush(struct chan *c)
{
	int	 r;

	pthread_mutex_lock(&c->mu);
	r = chan_flush_l(c);
	pthread_mutex_unlock(&c->mu);
	return r;
}

int
chan_fill(struct chan *c)
{
	int	 r;

	pthread_mutex_lock(&c->mu);
	r = chan_fill_l(c);
	pthread_mutex_unlock(&c->mu);
	return r;
}

int
chan_get(struct chan *c, uint8_t *type, const uint8_t **payload,
    size_t *len)
{
	int	 r;

	pthread_mutex_lock(&c->mu);
	r = chan_get_l(c, type, payload, len);
	pthread_mutex_unlock(&c->mu);
	return r;
}

int
chan_wait(struct chan *c, int timeout_ms)
{
	int	 r;

	pthread_mutex_lock(&c->mu);
	r = chan_wait_l(c, timeout_ms);
	pthread_mutex_unlock(&c->mu);
	return r;
}

int
chan_get_wait(struct chan *c, uint8_t *type, const uint8_t **payload,
    size_t *len)
{
	int	 r;

	pthread_mutex_lock(&c->mu);
	r = chan_get_wait_l(c, type, payload, len);
	pthread_mutex_unlock(&c->mu);
	return r;
}

void
chan_set_bwlimit(struct chan *c, uint64_t bytes_per_sec)
{
	pthread_mutex_lock(&c->mu);
	chan_set_bwlimit_l(c, bytes_per_sec);
	pthread_mutex_unlock(&c->mu);
}

void
chan_get_stats(const struct chan *c, struct chan_stats *st)
{
	pthread_mutex_lock((pthread_mutex_t *)&c->mu);
	chan_get_stats_l(c, st);
	pthread_mutex_unlock((pthread_mutex_t *)&c->mu);
}
