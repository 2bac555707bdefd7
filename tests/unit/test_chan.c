/*
 * test_chan.c — the record channel over a socketpair: handshake agreement,
 * mismatch and garbage; many records both ways at once with large
 * payloads (interleaved in one process, and two processes flushing at
 * each other); compression on and off; a truncated stream; an oversized
 * or unknown record; byte counters; the bandwidth cap.
 *
 * Also writes tests/unit/data/stream-{plain,lz4}.bin (with
 * MSYNC_WRITE_SEEDS=1): a peer's whole stream, seeds for the fuzzer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "buf.h"
#include "chan.h"
#include "lz4s.h"
#include "msync.h"
#include "proto.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static int64_t
ms_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct hs_arg {
	struct chan	*c;
	int		 want;
	int		 r;
	unsigned	 version;
	int		 compressed;
	char		*why;
};

static void *
hs_thread(void *p)
{
	struct hs_arg	*a = p;

	a->r = chan_handshake(a->c, a->want, 5000, &a->version,
	    &a->compressed, &a->why);
	return NULL;
}

struct pair {
	int		 fd[2];
	struct chan	*c[2];
	int		 compressed;
};

/* Two channels over a socketpair, handshaken (side 1 in a thread). */
static void
pair_open(struct pair *p, int want0, int want1)
{
	struct hs_arg	 a[2];
	pthread_t	 t;

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	assert_int_equal(chan_new(p->fd[0], p->fd[0], &p->c[0]), 0);
	assert_int_equal(chan_new(p->fd[1], p->fd[1], &p->c[1]), 0);
	memset(a, 0, sizeof(a));
	a[0].c = p->c[0];
	a[0].want = want0;
	a[1].c = p->c[1];
	a[1].want = want1;
	assert_int_equal(pthread_create(&t, NULL, hs_thread, &a[1]), 0);
	hs_thread(&a[0]);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a[0].r, 0);
	assert_int_equal(a[1].r, 0);
	assert_null(a[0].why);
	assert_int_equal(a[0].version, PROTO_VERSION_MAX);
	assert_int_equal(a[1].version, PROTO_VERSION_MAX);
	assert_int_equal(a[0].compressed, a[1].compressed);
	p->compressed = a[0].compressed;
}

static void
pair_close(struct pair *p)
{
	chan_free(p->c[0]);
	chan_free(p->c[1]);
	close(p->fd[0]);
	close(p->fd[1]);
}

static void
test_handshake_agree(void **state)
{
	static const struct {
		int	 want0, want1, compressed;
	} t[] = {
		{ 0, 0, 0 }, { 1, 0, 1 }, { 0, 1, 1 }, { 1, 1, 1 },
	};
	struct pair	 p;
	size_t		 i;

	for (i = 0; i < LEN(t); i++) {
		pair_open(&p, t[i].want0, t[i].want1);
		assert_int_equal(p.compressed, t[i].compressed);
		pair_close(&p);
	}
}

/*
 * Our channel on fd[0]; the test plays the peer on fd[1]: it writes the
 * peer's bytes (then closes when asked) and reads our line.
 */
static int
handshake_with(const void *peer, size_t len, int close_after, int want,
    int timeout_ms, int *compressed, char **why, struct chan **cp,
    int fds[2])
{
	struct chan	*c;
	unsigned	 version;
	int		 r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(chan_new(fds[0], fds[0], &c), 0);
	if (len > 0)
		assert_int_equal(write(fds[1], peer, len), (ssize_t)len);
	if (close_after)
		shutdown(fds[1], SHUT_WR);
	r = chan_handshake(c, want, timeout_ms, &version, compressed, why);
	/* The highest version both ranges hold: 2 with "msync 2 2". */
	if (r == 0) {
		unsigned	 pmin, pmax;

		if (peer == NULL || sscanf(peer, "msync %u %u", &pmin,
		    &pmax) != 2 || pmax > PROTO_VERSION_MAX)
			pmax = PROTO_VERSION_MAX;
		assert_int_equal(version, pmax);
	}
	*cp = c;
	return r;
}

static void
test_handshake_lines(void **state)
{
	static const struct {
		const char	*line;
		int		 close, want;
		int		 r, compressed;
		const char	*why;	/* a part of *why */
	} t[] = {
		{ "msync 2 2 lz4\n", 0, 0, 0, 0, NULL },
		{ "msync 2 2 lz4\n", 0, 1, 0, 1, NULL },
		{ "msync 2 2 lz4 compress\n", 0, 0, 0, 1, NULL },
		{ "msync 2 2 compress\n", 0, 1, 0, 0, NULL },
		{ "msync 2 2\n", 0, 1, 0, 0, NULL },
		{ "msync 1 9 lz4 compress x-future_2\n", 0, 0, 0, 1, NULL },
		{ "msync 65535 65535\n", 0, 0, MSYNC_ERR_VERSION, 0,
		    "2..5, the peer 65535..65535" },
		{ "msync 6 7 lz4\n", 0, 0, MSYNC_ERR_VERSION, 0, "6..7" },
		{ "msync 3 4 lz4\n", 0, 0, 0, 0, NULL },
		{ "msync 4 5 lz4\n", 0, 0, 0, 0, NULL },
		{ "msync 1 1 lz4\n", 0, 0, MSYNC_ERR_VERSION, 0, "1..1" },
		{ "bash: msync: command not found\n", 1, 0, MSYNC_ERR_PROTO, 0,
		    "'bash: msync: command not found'" },
		{ "bash: msync: command not found\n", 0, 0, MSYNC_ERR_PROTO, 0,
		    "command not found" },
		{ "Welcome to Ubuntu 22.04\n\nmsync 1 1\n", 0, 0,
		    MSYNC_ERR_PROTO, 0, "Welcome" },
		{ "\x1b[1mhello\x07\n", 0, 0, MSYNC_ERR_PROTO, 0, "\\x1b[1m" },
		{ "msync 0 1\n", 0, 0, MSYNC_ERR_PROTO, 0, "msync 0 1" },
		{ "msync 01 1\n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync 2 1\n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync 1 65536\n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync 2 2 LZ4\n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync 2 2 lz4 \n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync 1  1\n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync 2 2\r\n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync 1\n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync\n", 0, 0, MSYNC_ERR_PROTO, 0, NULL },
		{ "msync 2 2 lz4", 1, 0, MSYNC_ERR_PEER_EOF, 0, "msync 2 2" },
		{ "", 1, 0, MSYNC_ERR_PEER_EOF, 0, "before its handshake" },
	};
	struct chan	*c;
	char		*why;
	const char	*exp;
	char		 mine[8192];
	int		 fds[2], r, comp;
	size_t		 i;
	ssize_t		 n;

	for (i = 0; i < LEN(t); i++) {
		print_message("# %zu: %s", i, t[i].line);
		why = NULL;
		r = handshake_with(t[i].line, strlen(t[i].line), t[i].close,
		    t[i].want, 2000, &comp, &why, &c, fds);
		assert_int_equal(r, t[i].r);
		if (r == 0) {
			assert_int_equal(comp, t[i].compressed);
			assert_null(why);
		} else
			assert_non_null(why);
		if (t[i].why != NULL) {
			print_message("#   why: %s\n", why);
			assert_non_null(strstr(why, t[i].why));
		}
		/*
		 * Our line went out, whatever the peer said; after a line we
		 * refused, an ERROR record saying why.
		 */
		n = read(fds[1], mine, sizeof(mine) - 1);
		assert_true(n > 0);
		mine[n] = '\0';
		exp = t[i].want ? "msync 2 5 lz4 compress\n" :
		    "msync 2 5 lz4\n";
		assert_true((size_t)n >= strlen(exp));
		assert_memory_equal(mine, exp, strlen(exp));
		if (r == MSYNC_ERR_PROTO || r == MSYNC_ERR_VERSION) {
			assert_true((size_t)n > strlen(exp) + CHAN_HDR_LEN);
			assert_int_equal((uint8_t)mine[strlen(exp)], REC_ERROR);
		} else
			assert_int_equal((size_t)n, strlen(exp));
		free(why);
		chan_free(c);
		close(fds[0]);
		close(fds[1]);
	}
}

static void
test_handshake_long_and_slow(void **state)
{
	struct chan	*c;
	char		 junk[1000], *why = NULL;
	int		 fds[2], comp;
	int64_t		 t0;

	/* No newline in PROTO_HANDSHAKE_MAX bytes. */
	memset(junk, 'a', sizeof(junk));
	assert_int_equal(handshake_with(junk, sizeof(junk), 0, 0, 2000, &comp,
	    &why, &c, fds), MSYNC_ERR_PROTO);
	assert_non_null(why);
	free(why);
	chan_free(c);
	close(fds[0]);
	close(fds[1]);

	/* "msync " and then nothing: times out. */
	why = NULL;
	t0 = ms_now();
	assert_int_equal(handshake_with("msync ", 6, 0, 0, 150, &comp, &why,
	    &c, fds), MSYNC_ERR_UNREACHABLE);
	assert_true(ms_now() - t0 >= 140);
	assert_non_null(strstr(why, "150 ms"));
	free(why);
	chan_free(c);
	close(fds[0]);
	close(fds[1]);

	/* Garbage without a newline, peer silent: PROTO soon, not timeout. */
	why = NULL;
	t0 = ms_now();
	assert_int_equal(handshake_with("Password: ", 10, 0, 0, 10000, &comp,
	    &why, &c, fds), MSYNC_ERR_PROTO);
	assert_true(ms_now() - t0 < 2000);
	assert_non_null(strstr(why, "Password: "));
	free(why);
	chan_free(c);
	close(fds[0]);
	close(fds[1]);

	/* Calling it twice is a bug. */
	why = NULL;
	{
		unsigned v;

		assert_int_equal(handshake_with("msync 2 2\n", 10, 0, 0, 1000,
		    &comp, &why, &c, fds), 0);
		assert_int_equal(chan_handshake(c, 0, 1000, &v, &comp, &why),
		    MSYNC_ERR_INTERNAL);
	}
	chan_free(c);
	close(fds[0]);
	close(fds[1]);
}

/* Fills p with a payload that identifies record i. */
static size_t
make_payload(uint8_t *p, size_t i, size_t max)
{
	size_t	 n, k;

	n = (i * 7919) % max;
	if (i % 5 == 0)
		n = max;
	for (k = 0; k < n; k++)
		p[k] = (uint8_t)(i * 31 + k / 64 + (i % 3 == 0 ? k : 0));
	return n;
}

/*
 * Both sides send nrec MSG_DATA records (up to PROTO_DATA_MAX each) and
 * a BYE, all queued up front, and then pump: flush_some, fill, get,
 * in one process.  Nothing blocks, so nothing deadlocks.
 */
static void
exchange_interleaved(struct pair *p, size_t nrec)
{
	uint8_t		*buf, *want;
	size_t		 got[2] = { 0, 0 }, i, n, len;
	const uint8_t	*pl;
	uint8_t		 type;
	int		 s, r, done[2] = { 0, 0 };
	int64_t		 t0 = ms_now();

	assert_non_null(buf = malloc(PROTO_DATA_MAX));
	assert_non_null(want = malloc(PROTO_DATA_MAX));
	for (s = 0; s < 2; s++) {
		for (i = 0; i < nrec; i++) {
			n = make_payload(buf, i, PROTO_DATA_MAX);
			assert_int_equal(chan_put(p->c[s], REC_MSG_DATA, buf,
			    n), 0);
		}
		assert_int_equal(chan_put(p->c[s], REC_BYE, NULL, 0), 0);
		assert_true(chan_pending(p->c[s]) > 0);
	}
	while (!done[0] || !done[1]) {
		assert_true(ms_now() - t0 < 60000);
		for (s = 0; s < 2; s++) {
			assert_int_equal(chan_flush_some(p->c[s]), 0);
			r = chan_fill(p->c[s]);
			assert_int_equal(r, 0);
			while ((r = chan_get(p->c[s], &type, &pl, &len)) == 0) {
				if (type == REC_BYE) {
					assert_int_equal(got[s], nrec);
					assert_int_equal(len, 0);
					done[s] = 1;
					continue;
				}
				assert_int_equal(type, REC_MSG_DATA);
				n = make_payload(want, got[s], PROTO_DATA_MAX);
				assert_int_equal(len, n);
				if (n > 0)
					assert_memory_equal(pl, want, n);
				got[s]++;
			}
			assert_int_equal(r, MSYNC_ERR_INCOMPLETE);
		}
		if (!done[0] || !done[1])
			assert_int_equal(chan_wait(p->c[0], 10), 0);
	}
	assert_int_equal(chan_pending(p->c[0]), 0);
	assert_int_equal(chan_pending(p->c[1]), 0);
	free(buf);
	free(want);
}

static void
check_stats(struct pair *p)
{
	struct chan_stats st[2];
	int		 s;

	chan_get_stats(p->c[0], &st[0]);
	chan_get_stats(p->c[1], &st[1]);
	for (s = 0; s < 2; s++) {
		print_message("# side %d: raw out %llu wire out %llu\n", s,
		    (unsigned long long)st[s].raw_out,
		    (unsigned long long)st[s].wire_out);
		assert_true(st[s].raw_out == st[s ^ 1].raw_in);
		assert_true(st[s].wire_out == st[s ^ 1].wire_in);
		if (!p->compressed)
			assert_true(st[s].raw_out == st[s].wire_out);
	}
}

static void
test_records_plain(void **state)
{
	struct pair	 p;
	struct chan_stats st;

	pair_open(&p, 0, 0);
	assert_int_equal(p.compressed, 0);
	exchange_interleaved(&p, 200);
	check_stats(&p);
	chan_get_stats(p.c[0], &st);
	assert_true(st.raw_out > 200ULL * PROTO_DATA_MAX / 3);
	pair_close(&p);
}

static void
test_records_lz4(void **state)
{
	struct pair	 p;
	struct chan_stats st;

	pair_open(&p, 1, 0);
	assert_int_equal(p.compressed, 1);
	exchange_interleaved(&p, 200);
	check_stats(&p);
	chan_get_stats(p.c[0], &st);
	/* The payloads repeat a lot: compression must show. */
	assert_true(st.wire_out < st.raw_out / 2);
	pair_close(&p);
}

/*
 * Two processes queue big outputs and chan_flush at each other before
 * reading anything: chan_flush keeps reading, so both finish.
 */
static void
flush_at_each_other(int want)
{
	struct pair	 p;
	uint8_t		*buf;
	size_t		 i, n, len, got = 0, nrec = 150;
	const uint8_t	*pl;
	uint8_t		 type;
	pid_t		 pid;
	int		 s, st, r, bad = 0;

	pair_open(&p, want, 0);
	assert_non_null(buf = malloc(PROTO_DATA_MAX));
	if ((pid = fork()) == -1)
		fail();
	s = pid == 0 ? 1 : 0;
	alarm(120);
	for (i = 0; i < nrec; i++) {
		n = make_payload(buf, i + 1000 * (size_t)s, PROTO_DATA_MAX);
		if (chan_put(p.c[s], REC_MSG_DATA, buf, n) != 0)
			bad++;
	}
	(void)chan_put(p.c[s], REC_BYE, NULL, 0);
	if (chan_flush(p.c[s]) != 0)
		bad++;
	for (;;) {
		r = chan_get_wait(p.c[s], &type, &pl, &len);
		if (r != 0) {
			bad++;
			break;
		}
		if (type == REC_BYE)
			break;
		n = make_payload(buf, got + 1000 * (size_t)(s ^ 1),
		    PROTO_DATA_MAX);
		if (type != REC_MSG_DATA || len != n ||
		    (n > 0 && memcmp(pl, buf, n) != 0))
			bad++;
		got++;
	}
	if (got != nrec)
		bad++;
	if (pid == 0)
		_exit(bad == 0 ? 0 : 1);
	assert_int_equal(bad, 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	alarm(0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	free(buf);
	pair_close(&p);
}

static void
test_flush_no_deadlock(void **state)
{
	flush_at_each_other(0);
	flush_at_each_other(1);
}

/* Every record type, with its largest payload, crosses both ways. */
static void
test_max_records(void **state)
{
	struct pair	 p;
	uint8_t		*buf, type;
	const uint8_t	*pl;
	size_t		 len, max;
	unsigned	 t;
	int		 comp;

	assert_non_null(buf = calloc(1, 4 << 20));
	for (comp = 0; comp < 2; comp++) {
		pair_open(&p, comp, 0);
		for (t = 1; t <= REC_TYPE_MAX; t++) {
			max = proto_max_len((uint8_t)t);
			assert_true(max < (4 << 20));
			memset(buf, (int)t, max);
			assert_int_equal(chan_put(p.c[0], (uint8_t)t, buf,
			    max), 0);
			assert_int_equal(chan_put(p.c[0], (uint8_t)t, buf,
			    max + 1), MSYNC_ERR_TOOBIG);
		}
		for (t = 1; t <= REC_TYPE_MAX; t++) {
			/* chan_get drops keepalives: test_keepalive. */
			if (t == REC_KEEPALIVE)
				continue;
			max = proto_max_len((uint8_t)t);
			for (;;) {
				assert_int_equal(chan_flush_some(p.c[0]), 0);
				if (chan_get(p.c[1], &type, &pl, &len) == 0)
					break;
				assert_int_equal(chan_wait(p.c[1], 1000), 0);
				assert_int_equal(chan_fill(p.c[1]), 0);
			}
			assert_int_equal(type, t);
			assert_int_equal(len, max);
			memset(buf, (int)t, max);
			if (max > 0)
				assert_memory_equal(pl, buf, max);
		}
		check_stats(&p);
		pair_close(&p);
	}
	free(buf);
}

static void
test_put_misuse(void **state)
{
	struct chan	*c;
	struct pair	 p;
	int		 fds[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(chan_new(fds[0], fds[0], &c), 0);
	assert_int_equal(chan_put(c, REC_BYE, NULL, 0), MSYNC_ERR_INTERNAL);
	chan_free(c);
	chan_free(NULL);
	close(fds[0]);
	close(fds[1]);

	pair_open(&p, 0, 0);
	assert_int_equal(chan_put(p.c[0], 0, NULL, 0), MSYNC_ERR_INTERNAL);
	assert_int_equal(chan_put(p.c[0], REC_TYPE_MAX + 1, NULL, 0),
	    MSYNC_ERR_INTERNAL);
	assert_int_equal(chan_put(p.c[0], REC_LIST_END, "x", 1),
	    MSYNC_ERR_TOOBIG);
	assert_int_equal(chan_pending(p.c[0]), 0);
	pair_close(&p);
}

/*
 * Our channel (uncompressed unless the bytes say otherwise) reads bytes
 * the test writes as the peer, after the given handshake line; the peer
 * then closes.  Returns the first non-zero result of chan_get_wait,
 * counting the records before it.
 */
static int
read_stream(const char *line, const void *bytes, size_t len, int eof,
    size_t *nrec)
{
	struct chan	*c;
	const uint8_t	*pl;
	uint8_t		 type;
	size_t		 plen;
	char		*why = NULL, drain[256];
	int		 fds[2], comp, r;

	assert_int_equal(handshake_with(line, strlen(line), 0, 0, 2000, &comp,
	    &why, &c, fds), 0);
	assert_true(read(fds[1], drain, sizeof(drain)) > 0);
	if (len > 0)
		assert_int_equal(write(fds[1], bytes, len), (ssize_t)len);
	if (eof)
		shutdown(fds[1], SHUT_WR);
	*nrec = 0;
	while ((r = chan_get_wait(c, &type, &pl, &plen)) == 0)
		(*nrec)++;
	chan_free(c);
	close(fds[0]);
	close(fds[1]);
	return r;
}

/*
 * Appends record number seq (type, payload p[0..len)) to out, framed as
 * chan_put frames it; declared_len, if not (size_t)-1, replaces the
 * length in the header (a lie, with a matching header check).
 */
static void
frame(struct mbuf *out, uint64_t seq, uint8_t type, const void *p,
    size_t len, size_t declared_len)
{
	uint8_t	 hdr[CHAN_HDR_LEN];

	chan_frame_hdr(hdr, seq, type, p, len);
	if (declared_len != (size_t)-1) {
		mbuf_set_be32(hdr + 1, (uint32_t)declared_len);
		mbuf_set_be32(hdr + 9, (uint32_t)XXH3_64bits_withSeed(hdr, 9,
		    seq));
	}
	assert_int_equal(mbuf_put(out, hdr, sizeof(hdr)), 0);
	if (len > 0)
		assert_int_equal(mbuf_put(out, p, len), 0);
}

static void
test_bad_streams(void **state)
{
	struct mbuf	*s;
	size_t		 n, k, full;
	int		 r;

	assert_non_null(s = mbuf_new(1 << 20));
	frame(s, 0, REC_LIST_END, NULL, 0, (size_t)-1);
	frame(s, 1, REC_MSG_DATA, "abc", 3, (size_t)-1);
	full = mbuf_len(s);
	assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s), full, 1,
	    &n), MSYNC_ERR_PEER_EOF);
	assert_int_equal(n, 2);
	/* Cut anywhere: the records before the cut, then PEER_EOF. */
	for (k = 0; k < full; k++) {
		assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s), k, 1,
		    &n), MSYNC_ERR_PEER_EOF);
		assert_int_equal(n, k < full - CHAN_HDR_LEN - 3 ? 0 : 1);
	}
	assert_int_equal(read_stream("msync 2 2\n", NULL, 0, 1, &n),
	    MSYNC_ERR_PEER_EOF);
	/*
	 * Any byte changed, anywhere, with the stream left open: PROTO as
	 * soon as the damaged record's header or payload is in, never a
	 * damaged record handed out, never a wait for bytes that will not
	 * come.
	 */
	for (k = 0; k < full; k++) {
		uint8_t	*q = (uint8_t *)mbuf_ptr(s);

		q[k] ^= 0x01;
		r = read_stream("msync 2 2\n", q, full, 0, &n);
		q[k] ^= 0x01;
		assert_int_equal(r, MSYNC_ERR_PROTO);
		assert_int_equal(n, k < CHAN_HDR_LEN ? 0 : 1);
	}
	/* Records out of order, or one left out: PROTO. */
	mbuf_consume(s, mbuf_len(s));
	frame(s, 1, REC_LIST_END, NULL, 0, (size_t)-1);
	assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s), mbuf_len(s),
	    0, &n), MSYNC_ERR_PROTO);
	/* Over-long and unknown: PROTO at once, no wait for the payload. */
	mbuf_consume(s, mbuf_len(s));
	frame(s, 0, REC_MSG_DATA, "x", 1, PROTO_DATA_MAX + 1);
	assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s),
	    CHAN_HDR_LEN, 0, &n), MSYNC_ERR_PROTO);
	mbuf_consume(s, mbuf_len(s));
	frame(s, 0, REC_HELLO, "x", 1, 0xffffffffU);
	assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s),
	    CHAN_HDR_LEN, 0, &n), MSYNC_ERR_PROTO);
	mbuf_consume(s, mbuf_len(s));
	frame(s, 0, REC_LIST_END, "x", 1, (size_t)-1);
	assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s), mbuf_len(s),
	    0, &n), MSYNC_ERR_PROTO);
	mbuf_consume(s, mbuf_len(s));
	frame(s, 0, 0, NULL, 0, (size_t)-1);
	assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s), mbuf_len(s),
	    0, &n), MSYNC_ERR_PROTO);
	mbuf_consume(s, mbuf_len(s));
	frame(s, 0, REC_TYPE_MAX + 1, NULL, 0, (size_t)-1);
	assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s), mbuf_len(s),
	    0, &n), MSYNC_ERR_PROTO);
	/* Garbage after a good record. */
	mbuf_consume(s, mbuf_len(s));
	frame(s, 0, REC_BYE, NULL, 0, (size_t)-1);
	assert_int_equal(mbuf_put(s, "\xee\0\0\0\0\0\0\0\0\0\0\0\0", 13),
	    0);
	assert_int_equal(read_stream("msync 2 2\n", mbuf_ptr(s), mbuf_len(s),
	    0, &n), MSYNC_ERR_PROTO);
	assert_int_equal(n, 1);
	mbuf_free(s);
}

/*
 * Protocol 3: a MSG_DATA record's pcheck is 0, written so and required
 * so (the header check covers it); its payload is left to the GUID
 * check of the message, so a changed payload byte goes through the
 * channel, while every other byte of it, and every byte of any other
 * record, still fails.  Protocol 2 (test_bad_streams) checks it all.
 */
static void
test_v3_msg_data(void **state)
{
	struct mbuf	*s;
	struct pair	 p;
	uint8_t		 hdr[CHAN_HDR_LEN], buf[256];
	size_t		 n, k, full, at;
	ssize_t		 got;
	int		 r;

	/* What chan_put writes between two sides of protocol 3. */
	pair_open(&p, 0, 0);
	assert_int_equal(chan_put(p.c[0], REC_MSG_DATA, "abc", 3), 0);
	assert_int_equal(chan_put(p.c[0], REC_LIST_END, NULL, 0), 0);
	assert_int_equal(chan_flush(p.c[0]), 0);
	got = read(p.fd[1], buf, sizeof(buf));
	assert_int_equal(got, 2 * CHAN_HDR_LEN + 3);
	assert_int_equal(mbuf_be32(buf + 5), 0);
	assert_int_equal(mbuf_be32(buf + 9),
	    (uint32_t)XXH3_64bits_withSeed(buf, 9, 0));
	assert_int_not_equal(mbuf_be32(buf + CHAN_HDR_LEN + 3 + 5), 0);
	pair_close(&p);

	assert_non_null(s = mbuf_new(1 << 20));
	frame(s, 0, REC_LIST_END, NULL, 0, (size_t)-1);
	at = mbuf_len(s);
	frame(s, 1, REC_MSG_DATA, "abc", 3, (size_t)-1);
	full = mbuf_len(s);
	/* With its protocol-2 pcheck: refused under protocol 3. */
	assert_int_equal(read_stream("msync 3 3\n", mbuf_ptr(s), full, 1,
	    &n), MSYNC_ERR_PROTO);
	assert_int_equal(n, 1);
	mbuf_consume(s, mbuf_len(s));
	frame(s, 0, REC_LIST_END, NULL, 0, (size_t)-1);
	memset(hdr, 0, sizeof(hdr));
	hdr[0] = REC_MSG_DATA;
	mbuf_set_be32(hdr + 1, 3);
	mbuf_set_be32(hdr + 9, (uint32_t)XXH3_64bits_withSeed(hdr, 9, 1));
	assert_int_equal(mbuf_put(s, hdr, sizeof(hdr)), 0);
	assert_int_equal(mbuf_put(s, "abc", 3), 0);
	full = mbuf_len(s);
	assert_int_equal(read_stream("msync 3 3\n", mbuf_ptr(s), full, 1,
	    &n), MSYNC_ERR_PEER_EOF);
	assert_int_equal(n, 2);
	for (k = 0; k < full; k++) {
		uint8_t	*q = (uint8_t *)mbuf_ptr(s);

		q[k] ^= 0x01;
		r = read_stream("msync 3 3\n", q, full,
		    k >= at + CHAN_HDR_LEN, &n);
		q[k] ^= 0x01;
		if (k >= at + CHAN_HDR_LEN) {
			/* Payload: through (the GUID check's job). */
			assert_int_equal(r, MSYNC_ERR_PEER_EOF);
			assert_int_equal(n, 2);
		} else {
			assert_int_equal(r, MSYNC_ERR_PROTO);
			assert_int_equal(n, k < at ? 0 : 1);
		}
	}
	mbuf_free(s);
}

/* Builds a compressed stream of blocks holding the given record bytes. */
static struct mbuf *
lz4_stream(const void *rec, size_t len, size_t cut)
{
	struct lz4s_enc	*e;
	struct mbuf	*out;
	const uint8_t	*p = rec;

	assert_int_equal(lz4s_enc_new(&e), 0);
	assert_non_null(out = mbuf_new(1 << 20));
	if (cut > 0 && cut < len) {
		assert_int_equal(lz4s_enc_block(e, p, cut, out), 0);
		assert_int_equal(lz4s_enc_block(e, p + cut, len - cut, out), 0);
	} else
		assert_int_equal(lz4s_enc_block(e, p, len, out), 0);
	lz4s_enc_free(e);
	return out;
}

static void
test_bad_lz4_streams(void **state)
{
	static const char line[] = "msync 2 2 lz4 compress\n";
	struct mbuf	*recs, *bigrec, *s;
	uint8_t		*copy;
	size_t		 n, k;
	int		 r;

	assert_non_null(recs = mbuf_new(4096));
	frame(recs, 0, REC_LIST_END, NULL, 0, (size_t)-1);
	frame(recs, 1, REC_MSG_DATA, "abc", 3, (size_t)-1);
	frame(recs, 2, REC_BYE, NULL, 0, (size_t)-1);
	/* Records cut across blocks arrive whole. */
	for (k = 0; k < mbuf_len(recs); k++) {
		s = lz4_stream(mbuf_ptr(recs), mbuf_len(recs), k);
		assert_int_equal(read_stream(line, mbuf_ptr(s), mbuf_len(s), 1,
		    &n), MSYNC_ERR_PEER_EOF);
		assert_int_equal(n, 3);
		mbuf_free(s);
	}
	/* The stream cut at every byte: PEER_EOF, never more records. */
	s = lz4_stream(mbuf_ptr(recs), mbuf_len(recs), 7);
	for (k = 0; k < mbuf_len(s); k++) {
		assert_int_equal(read_stream(line, mbuf_ptr(s), k, 1, &n),
		    MSYNC_ERR_PEER_EOF);
		assert_true(n <= 3);
	}
	/*
	 * A flipped byte anywhere, the stream left open: PROTO, with no
	 * wait for bytes that will not come.  (LZ4 may decode changed data
	 * to other bytes of the right length: the records' checks catch
	 * that.)
	 */
	assert_non_null(copy = malloc(mbuf_len(s)));
	for (k = 0; k < mbuf_len(s); k++) {
		memcpy(copy, mbuf_ptr(s), mbuf_len(s));
		copy[k] ^= 0x55;
		r = read_stream(line, copy, mbuf_len(s), 0, &n);
		assert_int_equal(r, MSYNC_ERR_PROTO);
		assert_true(n < 3);
	}
	free(copy);
	mbuf_free(s);
	/* An over-long record inside a valid block. */
	assert_non_null(bigrec = mbuf_new(4096));
	frame(bigrec, 0, REC_MSG_DATA, "x", 1, PROTO_DATA_MAX + 1);
	s = lz4_stream(mbuf_ptr(bigrec), mbuf_len(bigrec), 0);
	assert_int_equal(read_stream(line, mbuf_ptr(s), mbuf_len(s), 0, &n),
	    MSYNC_ERR_PROTO);
	mbuf_free(s);
	mbuf_free(bigrec);
	/* Plain records where blocks are expected. */
	assert_int_equal(read_stream(line, mbuf_ptr(recs), mbuf_len(recs), 1,
	    &n), MSYNC_ERR_PROTO);
	assert_int_equal(n, 0);
	mbuf_free(recs);
	/* A block header with lying lengths, its check made to match. */
	{
		uint8_t lie[12] = { 0, 0x10, 0, 0, 0, 0, 0, 1 };

		mbuf_set_be32(lie + 8, (uint32_t)XXH3_64bits_withSeed(lie, 8,
		    0));
		assert_int_equal(read_stream(line, lie, sizeof(lie), 0, &n),
		    MSYNC_ERR_PROTO);
	}
}

/* Records sent right behind the handshake line are not lost. */
static void
test_bytes_after_line(void **state)
{
	static const char line[] = "msync 2 2\n";
	struct mbuf	*s;
	struct chan	*c;
	const uint8_t	*pl;
	uint8_t		 type;
	size_t		 len;
	char		*why = NULL;
	int		 fds[2], comp;

	assert_non_null(s = mbuf_new(4096));
	assert_int_equal(mbuf_put(s, line, sizeof(line) - 1), 0);
	frame(s, 0, REC_BYE, NULL, 0, (size_t)-1);
	assert_int_equal(handshake_with(mbuf_ptr(s), mbuf_len(s), 1, 0, 1000,
	    &comp, &why, &c, fds), 0);
	mbuf_free(s);
	assert_int_equal(chan_get(c, &type, &pl, &len), 0);
	assert_int_equal(type, REC_BYE);
	assert_int_equal(chan_get(c, &type, &pl, &len), MSYNC_ERR_INCOMPLETE);
	assert_int_equal(chan_fill(c), MSYNC_ERR_PEER_EOF);
	assert_int_equal(chan_get(c, &type, &pl, &len), MSYNC_ERR_PEER_EOF);
	chan_free(c);
	close(fds[0]);
	close(fds[1]);
}

/* Writing to a closed peer is PEER_EOF. */
static void
test_write_closed(void **state)
{
	struct pair	 p;
	static uint8_t	 buf[PROTO_DATA_MAX];
	int		 i, r = 0;

	signal(SIGPIPE, SIG_IGN);
	pair_open(&p, 0, 0);
	chan_free(p.c[1]);
	p.c[1] = NULL;
	close(p.fd[1]);
	p.fd[1] = -1;
	for (i = 0; i < 10 && r == 0; i++) {
		assert_int_equal(chan_put(p.c[0], REC_MSG_DATA, buf,
		    sizeof(buf)), 0);
		r = chan_flush(p.c[0]);
	}
	assert_int_equal(r, MSYNC_ERR_PEER_EOF);
	assert_int_equal(chan_flush_some(p.c[0]), MSYNC_ERR_PEER_EOF);
	pair_close(&p);
}

/* The bandwidth cap: 400 KiB at 1 MiB/s takes about 0.27 s or more. */
static void
test_bwlimit(void **state)
{
	struct pair	 p;
	struct chan_stats st;
	static uint8_t	 buf[PROTO_DATA_MAX];
	const uint8_t	*pl;
	uint8_t		 type;
	size_t		 len, got = 0, want = 400 * 1024;
	uint64_t	 rate = 1024 * 1024;
	int64_t		 t0, dt;
	int		 i;

	pair_open(&p, 0, 0);
	chan_set_bwlimit(p.c[0], rate);
	for (i = 0; i < 4; i++)
		assert_int_equal(chan_put(p.c[0], REC_MSG_DATA, buf,
		    want / 4), 0);
	t0 = ms_now();
	while (got < 4) {
		assert_int_equal(chan_flush_some(p.c[0]), 0);
		chan_get_stats(p.c[0], &st);
		dt = ms_now() - t0;
		/* Never ahead of the bucket: burst + rate * time. */
		assert_true(st.wire_out - 14 <=
		    rate / 8 + rate * (uint64_t)(dt + 5) / 1000);
		assert_int_equal(chan_fill(p.c[1]), 0);
		while (chan_get(p.c[1], &type, &pl, &len) == 0)
			got++;
		if (got < 4)
			assert_int_equal(chan_wait(p.c[0], 1000), 0);
		assert_true(ms_now() - t0 < 5000);
	}
	dt = ms_now() - t0;
	print_message("# %zu bytes at %llu B/s took %lld ms\n", want,
	    (unsigned long long)rate, (long long)dt);
	assert_true(dt >= 250);
	/* chan_flush honours it too, and 0 lifts it. */
	chan_set_bwlimit(p.c[0], 0);
	assert_int_equal(chan_put(p.c[0], REC_MSG_DATA, buf, 1000), 0);
	assert_int_equal(chan_flush(p.c[0]), 0);
	pair_close(&p);
}

/* fds get their flags back. */
static void
test_flags_restored(void **state)
{
	struct chan	*c;
	int		 fds[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
	assert_int_equal(chan_new(fds[0], fds[1], &c), 0);
	assert_int_not_equal(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
	assert_int_not_equal(fcntl(fds[1], F_GETFL) & O_NONBLOCK, 0);
	chan_free(c);
	assert_int_equal(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
	assert_int_equal(fcntl(fds[1], F_GETFL) & O_NONBLOCK, 0);
	close(fds[0]);
	close(fds[1]);
}

/*
 * Writes the fuzz seeds: what a peer sends (its line and records), plain
 * and compressed.  Only with MSYNC_WRITE_SEEDS set.
 */
static void
test_write_seeds(void **state)
{
	static const char *const names[2] = { "stream-plain", "stream-lz4" };
	static const uint8_t digest[12] = {
		1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1,
	};
	const char	*dir = getenv("MSYNC_TEST_DATA");
	struct chan	*c;
	char		 path[1024], *why = NULL, buf[65536];
	uint8_t		 hello[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, '/', 0,
	    0, 0, 0, 0, 0, 0, 0, 0 };
	const char	*line;
	FILE		*f;
	ssize_t		 n;
	int		 fds[2], comp, k, i;

	if (getenv("MSYNC_WRITE_SEEDS") == NULL)
		return;
	if (dir == NULL)
		dir = "tests/unit/data";
	for (k = 0; k < 2; k++) {
		line = k ? "msync 2 2 lz4 compress\n" : "msync 2 2 lz4\n";
		assert_int_equal(handshake_with(line, strlen(line), 0, k,
		    1000, &comp, &why, &c, fds), 0);
		assert_int_equal(comp, k);
		assert_int_equal(chan_put(c, REC_HELLO, hello, sizeof(hello)),
		    0);
		for (i = 0; i < 3; i++)
			assert_int_equal(chan_put(c, REC_LOG,
			    "\0\0\0\2\0\0\0\x0cmsync: hello", 20), 0);
		assert_int_equal(chan_put(c, REC_DIGEST, digest,
		    sizeof(digest)), 0);
		assert_int_equal(chan_put(c, REC_MSG_DATA, "From: x\n\nhi\n",
		    12), 0);
		assert_int_equal(chan_put(c, REC_BYE, NULL, 0), 0);
		assert_int_equal(chan_flush(c), 0);
		shutdown(fds[0], SHUT_WR);
		snprintf(path, sizeof(path), "%s/%s.bin", dir, names[k]);
		assert_non_null(f = fopen(path, "wb"));
		while ((n = read(fds[1], buf, sizeof(buf))) > 0)
			assert_int_equal(fwrite(buf, 1, (size_t)n, f),
			    (size_t)n);
		assert_int_equal(fclose(f), 0);
		chan_free(c);
		close(fds[0]);
		close(fds[1]);
	}
}

struct wait_arg {
	struct chan	*c;
	int		 r;
	uint8_t		 type;
};

/* Waits for one record on a->c (side 1 of a pair), in its own thread. */
static void *
wait_thread(void *p)
{
	struct wait_arg	*a = p;
	const uint8_t	*pl;
	size_t		 len;

	a->r = chan_get_wait(a->c, &a->type, &pl, &len);
	return NULL;
}

/*
 * A keepalive is counted (the record numbers stay in step) but never
 * handed out; with a timeout set, a side that hears nothing for it while
 * waiting gets MSYNC_ERR_TIMEOUT, and a side that only gets keepalives
 * from a peer busy elsewhere does not.
 */
static void
test_keepalive_timeout(void **state)
{
	struct pair	 p;
	const uint8_t	*pl;
	uint8_t		 type;
	size_t		 len;
	int64_t		 t0;
	int		 r, i;

	pair_open(&p, 0, 0);
	assert_int_equal(chan_put(p.c[0], REC_KEEPALIVE, NULL, 0), 0);
	assert_int_equal(chan_put(p.c[0], REC_BYE, NULL, 0), 0);
	assert_int_equal(chan_flush(p.c[0]), 0);
	assert_int_equal(chan_get_wait(p.c[1], &type, &pl, &len), 0);
	assert_int_equal(type, REC_BYE);

	/* Side 1 waits on a silent side 0: a timeout, after about 1 s. */
	assert_int_equal(chan_set_timeout(p.c[1], 1, "side 0"), 0);
	t0 = ms_now();
	r = chan_get_wait(p.c[1], &type, &pl, &len);
	assert_int_equal(r, MSYNC_ERR_TIMEOUT);
	assert_true(ms_now() - t0 >= 900);
	/* Sticky. */
	assert_int_equal(chan_wait(p.c[1], 0), MSYNC_ERR_TIMEOUT);
	pair_close(&p);

	/*
	 * Side 0 is away for 3 s (a sleep: its own long work) with its
	 * timeout on: its keepalive thread keeps side 1, which waits with a
	 * 1 s timeout, from giving up.
	 */
	pair_open(&p, 0, 0);
	assert_int_equal(chan_set_timeout(p.c[0], 1, "side 1"), 0);
	assert_int_equal(chan_set_timeout(p.c[1], 1, "side 0"), 0);
	{
		struct wait_arg	 w = { p.c[1], -1, 0 };
		pthread_t	 t;

		assert_int_equal(pthread_create(&t, NULL, wait_thread, &w),
		    0);
		/* Side 0 is away (its own work) for 3 s. */
		for (i = 0; i < 30; i++)
			usleep(100 * 1000);
		assert_int_equal(chan_put(p.c[0], REC_BYE, NULL, 0), 0);
		assert_int_equal(chan_flush(p.c[0]), 0);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(w.r, 0);
		assert_int_equal(w.type, REC_BYE);
	}
	pair_close(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_agree),
		cmocka_unit_test(test_handshake_lines),
		cmocka_unit_test(test_handshake_long_and_slow),
		cmocka_unit_test(test_records_plain),
		cmocka_unit_test(test_records_lz4),
		cmocka_unit_test(test_flush_no_deadlock),
		cmocka_unit_test(test_max_records),
		cmocka_unit_test(test_put_misuse),
		cmocka_unit_test(test_bad_streams),
		cmocka_unit_test(test_v3_msg_data),
		cmocka_unit_test(test_bad_lz4_streams),
		cmocka_unit_test(test_bytes_after_line),
		cmocka_unit_test(test_write_closed),
		cmocka_unit_test(test_bwlimit),
		cmocka_unit_test(test_flags_restored),
		cmocka_unit_test(test_keepalive_timeout),
		cmocka_unit_test(test_write_seeds),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
