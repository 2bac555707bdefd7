/*
 * tlspump.c — bytes between a TLS connection and a plain socket, both
 * ways at once (see tlspump.h).
 *
 * Both fds are non-blocking and each direction has its own buffer, so a
 * peer that stops reading stalls only the direction it stopped: the two
 * brains send message bodies both ways at once, and two pumps that each
 * blocked in a write would wait for each other forever.  A plain EOF is
 * passed on as a TLS close_notify; a close_notify as shutdown(SHUT_WR);
 * TLS 1.3 keeps the other direction open meanwhile.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msync.h"
#include "ossl.h"
#include "tlspump.h"

#define PUMP_BUF	(64 * 1024)	/* bytes buffered each way */

static void
tlspump_nonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) != -1)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * Waits until fd is ready for the TLS operation that returned err
 * (SSL_ERROR_WANT_READ/WRITE), or until the deadline.  Returns 1 ready,
 * 0 timed out, -1 on any other error.
 */
static int
tlspump_wait(int fd, int err, long long deadline_ms)
{
	struct pollfd	 p;
	long long	 left;
	int		 n;

	if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
		return -1;
	p.fd = fd;
	p.events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
	for (;;) {
		if ((left = deadline_ms - msync_now_ms()) <= 0)
			return 0;
		n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n > 0)
			return 1;
		if (n == -1 && errno != EINTR)
			return -1;
	}
}

int
tlspump_handshake(SSL *ssl, int server, long long deadline_ms,
    int *timedout)
{
	int	 fd = SSL_get_fd(ssl), n, w;

	*timedout = 0;
	tlspump_nonblock(fd);
	for (;;) {
		n = server ? SSL_accept(ssl) : SSL_connect(ssl);
		if (n == 1)
			return 0;
		w = tlspump_wait(fd, SSL_get_error(ssl, n), deadline_ms);
		if (w == 0) {
			*timedout = 1;
			return MSYNC_ERR_PEER_EOF;
		}
		if (w < 0)
			return MSYNC_ERR_PROTO;
	}
}

int
tlspump_getline(SSL *ssl, char *buf, size_t max, long long deadline_ms,
    int *timedout)
{
	size_t	 len = 0;
	int	 fd = SSL_get_fd(ssl), n, w;
	char	 c;

	*timedout = 0;
	for (;;) {
		n = SSL_read(ssl, &c, 1);
		if (n == 1) {
			if (c == '\n')
				break;
			if (c == '\0' || len >= max)
				return MSYNC_ERR_PROTO;
			buf[len++] = c;
			continue;
		}
		w = tlspump_wait(fd, SSL_get_error(ssl, n), deadline_ms);
		if (w == 0) {
			*timedout = 1;
			return MSYNC_ERR_PEER_EOF;
		}
		if (w < 0)
			return MSYNC_ERR_PEER_EOF;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return 0;
}

int
tlspump_write(SSL *ssl, const void *buf, size_t len, long long deadline_ms)
{
	size_t	 done = 0, wn;
	int	 fd = SSL_get_fd(ssl), n;

	while (done < len) {
		if ((n = SSL_write_ex(ssl, (const char *)buf + done,
		    len - done, &wn)) == 1) {
			done += wn;
			continue;
		}
		if (tlspump_wait(fd, SSL_get_error(ssl, n), deadline_ms) != 1)
			return MSYNC_ERR_IO;
	}
	return 0;
}

/* One direction's buffer. */
struct pumpbuf {
	unsigned char	 b[PUMP_BUF];
	size_t		 off, len;	/* pending bytes are b[off, off+len) */
};

int
tlspump_run(SSL *ssl, int plainfd, int idle_s, struct tlspump_stats *st,
    int *idle)
{
	static struct pumpbuf	 in, out;	/* net->plain, plain->net */
	struct pollfd		 pf[2];
	long long		 last = msync_now_ms(), left;
	size_t			 n;
	ssize_t			 k;
	int			 netfd = SSL_get_fd(ssl), e, rc, progress;
	int			 net_eof = 0, plain_eof = 0, plain_shut = 0;
	int			 tls_shut = 0, rd_want = POLLIN, wr_want = 0;
	int			 sd_want = 0;

	memset(st, 0, sizeof(*st));
	*idle = 0;
	in.off = in.len = out.off = out.len = 0;
	tlspump_nonblock(netfd);
	tlspump_nonblock(plainfd);
	/* The writes below may be retried with a moved buffer. */
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_ENABLE_PARTIAL_WRITE);
	for (;;) {
		do {
			progress = 0;
			rd_want = wr_want = sd_want = 0;
			/* TLS -> in */
			if (!net_eof && in.len == 0) {
				in.off = 0;
				rc = SSL_read_ex(ssl, in.b, sizeof(in.b), &n);
				if (rc == 1) {
					in.len = n;
					st->net_in += n;
					progress = 1;
				} else switch ((e = SSL_get_error(ssl, rc))) {
				case SSL_ERROR_WANT_READ:
					rd_want = POLLIN;
					break;
				case SSL_ERROR_WANT_WRITE:
					rd_want = POLLOUT;
					break;
				case SSL_ERROR_ZERO_RETURN:
					net_eof = progress = 1;
					break;
				default:
					return MSYNC_ERR_PEER_EOF;
				}
			}
			/* in -> plain */
			if (in.len > 0) {
				k = write(plainfd, in.b + in.off, in.len);
				if (k > 0) {
					in.off += (size_t)k;
					in.len -= (size_t)k;
					progress = 1;
				} else if (k == -1 && errno != EAGAIN &&
				    errno != EINTR)
					return MSYNC_ERR_IO;
			}
			if (net_eof && in.len == 0 && !plain_shut) {
				(void)shutdown(plainfd, SHUT_WR);
				plain_shut = 1;
			}
			/* plain -> out */
			if (!plain_eof && out.len == 0) {
				out.off = 0;
				k = read(plainfd, out.b, sizeof(out.b));
				if (k > 0) {
					out.len = (size_t)k;
					progress = 1;
				} else if (k == 0)
					plain_eof = progress = 1;
				else if (errno != EAGAIN && errno != EINTR &&
				    errno != ECONNRESET)
					return MSYNC_ERR_IO;
				else if (errno == ECONNRESET)
					plain_eof = progress = 1;
			}
			/* out -> TLS */
			if (out.len > 0) {
				rc = SSL_write_ex(ssl, out.b + out.off,
				    out.len, &n);
				if (rc == 1) {
					out.off += n;
					out.len -= n;
					st->net_out += n;
					progress = 1;
				} else switch ((e = SSL_get_error(ssl, rc))) {
				case SSL_ERROR_WANT_READ:
					wr_want = POLLIN;
					break;
				case SSL_ERROR_WANT_WRITE:
					wr_want = POLLOUT;
					break;
				default:
					return MSYNC_ERR_PEER_EOF;
				}
			}
			if (plain_eof && out.len == 0 && !tls_shut) {
				rc = SSL_shutdown(ssl);
				if (rc >= 0) {
					tls_shut = progress = 1;
				} else switch (SSL_get_error(ssl, rc)) {
				case SSL_ERROR_WANT_READ:
					sd_want = POLLIN;
					break;
				case SSL_ERROR_WANT_WRITE:
					sd_want = POLLOUT;
					break;
				default:
					tls_shut = 1;	/* peer gone */
				}
			}
			if (progress)
				last = msync_now_ms();
		} while (progress);
		if (net_eof && plain_eof && in.len == 0 && out.len == 0 &&
		    tls_shut)
			return 0;
		/* Our brain is gone and our last words are sent: done. */
		if (plain_eof && tls_shut && plain_shut)
			return 0;
		pf[0].fd = netfd;
		pf[0].events = (short)(rd_want | wr_want | sd_want);
		pf[1].fd = plainfd;
		pf[1].events = 0;
		if (in.len > 0)
			pf[1].events |= POLLOUT;
		if (!plain_eof && out.len == 0)
			pf[1].events |= POLLIN;
		left = 1000;
		if (idle_s > 0) {
			left = last + (long long)idle_s * 1000 -
			    msync_now_ms();
			if (left <= 0) {
				*idle = 1;
				return MSYNC_ERR_PEER_EOF;
			}
			if (left > 1000)
				left = 1000;
		}
		if (poll(pf, 2, (int)left) == -1 && errno != EINTR)
			return MSYNC_ERR_IO;
	}
}
