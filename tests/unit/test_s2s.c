/*
 * test_s2s.c — the server-to-server relay (remote/s2s.c, s2s_relay) on
 * socketpairs: a stalled daemon 2 stalls daemon 1 instead of filling
 * the relay's memory (the bytes the relay takes in while daemon 2 reads
 * nothing stay within its buffers and the sockets' own), everything
 * arrives in order once daemon 2 reads again, the exit status frame ends
 * the relay; a frame of an unknown type, an over-long frame and a
 * connection lost in mid-frame are told apart; a result frame fills the
 * caller's brain_result, a malformed one is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brain.h"
#include "msync.h"
#include "s2s.h"

#define TOTAL	(8 * 1024 * 1024)	/* D payload bytes sent */
#define SMALL	32768			/* socket buffers, so that the
					   relay's share is visible */

static unsigned char
pat(size_t off)
{
	return (unsigned char)(off % 251);
}

/* Starts the relay in a child on two socketpairs; returns its pid. */
static pid_t
start_relay(int *d1, int *d2)
{
	int	 a[2], b[2], sz = SMALL;
	pid_t	 pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	(void)setsockopt(a[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(b[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(b[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		int	 st;

		close(a[1]);
		close(b[1]);
		st = s2s_relay(a[0], b[0], 0, NULL);
		_exit(st < 0 ? 200 - st : st);
	}
	close(a[0]);
	close(b[0]);
	*d1 = a[1];
	*d2 = b[1];
	return pid;
}

static int
child_status(pid_t pid)
{
	int	 ws;

	while (waitpid(pid, &ws, 0) == -1 && errno == EINTR)
		;
	return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* Writes as much of buf as fits now (non-blocking).  Returns bytes. */
static size_t
push(int fd, const unsigned char *buf, size_t len)
{
	ssize_t	 k = write(fd, buf, len);

	return k > 0 ? (size_t)k : 0;
}

static void
test_relay_bounded(void **state)
{
	static unsigned char	 stream[TOTAL + TOTAL / S2S_FRAME_MAX * S2S_HDR +
				    S2S_HDR + 4];
	unsigned char		 got[65536];
	size_t			 len = 0, off, sent = 0, recvd = 0, n;
	struct pollfd		 pf[2];
	int			 d1, d2, idle, bad = 0;
	pid_t			 pid;

	(void)state;
	/* The stream daemon 1 would send: D frames, then X 7. */
	for (off = 0; off < TOTAL; off += S2S_FRAME_MAX) {
		n = TOTAL - off < S2S_FRAME_MAX ? TOTAL - off : S2S_FRAME_MAX;
		stream[len] = S2S_F_DATA;
		stream[len + 1] = (unsigned char)(n >> 24);
		stream[len + 2] = (unsigned char)(n >> 16);
		stream[len + 3] = (unsigned char)(n >> 8);
		stream[len + 4] = (unsigned char)n;
		for (size_t i = 0; i < n; i++)
			stream[len + S2S_HDR + i] = pat(off + i);
		len += S2S_HDR + n;
	}
	memcpy(stream + len, "X\0\0\0\4\0\0\0\7", 9);
	len += 9;

	pid = start_relay(&d1, &d2);
	assert_int_equal(fcntl(d1, F_SETFL, O_NONBLOCK), 0);
	/*
	 * Daemon 2 reads nothing: write until the relay stops taking
	 * bytes (20 quiet polls of 50 ms in a row: a bounded loop).
	 */
	for (idle = 0; idle < 20 && sent < len; ) {
		n = push(d1, stream + sent, len - sent);
		sent += n;
		if (n > 0) {
			idle = 0;
			continue;
		}
		pf[0].fd = d1;
		pf[0].events = POLLOUT;
		if (poll(pf, 1, 50) == 0)
			idle++;
	}
	/*
	 * The relay holds at most one frame each way plus what the two
	 * sockets buffer: far less than the 8 MiB it was offered.
	 */
	print_message("taken in while daemon 2 was stalled: %zu bytes\n",
	    sent);
	assert_true(sent < 1024 * 1024);
	assert_true(sent < len);

	/* Daemon 2 reads again: everything arrives, in order, once. */
	while (recvd < TOTAL || sent < len) {
		pf[0].fd = d1;
		pf[0].events = sent < len ? POLLOUT : 0;
		pf[1].fd = d2;
		pf[1].events = POLLIN;
		assert_true(poll(pf, 2, 10000) > 0);
		if (sent < len && (pf[0].revents & POLLOUT))
			sent += push(d1, stream + sent, len - sent);
		if (pf[1].revents & (POLLIN | POLLHUP)) {
			ssize_t	 k = read(d2, got, sizeof(got));

			assert_true(k > 0);
			for (ssize_t i = 0; i < k; i++)
				if (got[i] != pat(recvd + (size_t)i))
					bad++;
			recvd += (size_t)k;
		}
	}
	assert_int_equal(bad, 0);
	assert_int_equal(recvd, TOTAL);
	/* The X frame ended it: daemon 2's side is closed, status 7. */
	assert_int_equal(read(d2, got, sizeof(got)), 0);
	assert_int_equal(child_status(pid), 7);
	close(d1);
	close(d2);
}

/* Sends bytes to a fresh relay, closes, and returns its exit status. */
static int
relay_of(const void *bytes, size_t len)
{
	unsigned char	 sink[4096];
	int		 d1, d2;
	pid_t		 pid;

	pid = start_relay(&d1, &d2);
	assert_int_equal(write(d1, bytes, len), (ssize_t)len);
	shutdown(d1, SHUT_WR);
	while (read(d2, sink, sizeof(sink)) > 0)
		;
	close(d1);
	close(d2);
	return child_status(pid);
}

static void
test_relay_bad(void **state)
{
	(void)state;
	/* -2: broke the framing; -1: lost without a status. */
	assert_int_equal(relay_of("Q\0\0\0\1x", 6), 202);
	assert_int_equal(relay_of("D\0\1\0\1x", 6), 202);	/* > 16 KiB */
	assert_int_equal(relay_of("X\0\0\0\3\0\0\0", 8), 202);	/* X is 4 */
	assert_int_equal(relay_of("X\0\0\0\4\1\0\0\0", 9), 202);
	assert_int_equal(relay_of("D\0\0\0\10abc", 8), 201);	/* cut off */
	assert_int_equal(relay_of("D\0\0\0\3abc", 8), 201);	/* no X */
	assert_int_equal(relay_of("E\0\0\0\3ab\nX\0\0\0\4\0\0\0\x4b",
	    17), 75);
	/* R: exactly 22 numbers, ran and compressed 0 or 1. */
	assert_int_equal(relay_of("R\0\0\0\0052 0 1X\0\0\0\4\0\0\0\0",
	    19), 202);
}

/* An R frame's numbers reach the caller's brain_result. */
static void
test_relay_result(void **state)
{
	const char	*text = "1 1 3 300 0 0 0 0 0 0 5 500 0 0 0 0 0 0 "
			    "11 12 13 14";
	unsigned char	 buf[256], sink[64];
	struct brain_result res;
	size_t		 n = strlen(text);
	int		 a[2], b[2], st;

	(void)state;
	buf[0] = S2S_F_RESULT;
	buf[1] = buf[2] = buf[3] = 0;
	buf[4] = (unsigned char)n;
	memcpy(buf + 5, text, n);
	memcpy(buf + 5 + n, "X\0\0\0\4\0\0\0\0", 9);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	assert_int_equal(write(a[1], buf, 5 + n + 9), (ssize_t)(5 + n + 9));
	memset(&res, 0, sizeof(res));
	st = s2s_relay(a[0], b[0], 0, &res);
	assert_int_equal(st, 0);
	assert_int_equal(res.ran, 1);
	assert_int_equal(res.compressed, 1);
	assert_int_equal(res.st.copied[0], 3);
	assert_int_equal(res.st.copied_bytes[0], 300);
	assert_int_equal(res.st.copied[1], 5);
	assert_int_equal(res.st.copied_bytes[1], 500);
	assert_int_equal(res.wire_out, 11);
	assert_int_equal(res.raw_in, 14);
	close(b[0]);
	while (read(b[1], sink, sizeof(sink)) > 0)
		;
	close(a[0]);
	close(a[1]);
	close(b[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay_bounded),
		cmocka_unit_test(test_relay_bad),
		cmocka_unit_test(test_relay_result),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
