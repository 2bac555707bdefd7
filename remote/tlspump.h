/*
 * tlspump.h — moving bytes between a TLS connection and a plain socket
 * (the brain's end of a socketpair), both ways at once, without either
 * direction able to block the other.  Used by the daemon's connection
 * process and by the msyncs:// client helper.
 *
 * Also the small blocking-with-deadline steps both sides need before the
 * pump runs: the handshake and the greeting lines.
 */
#ifndef TLSPUMP_H
#define TLSPUMP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct tlspump_stats {
	uint64_t	 net_in;	/* plaintext bytes read from TLS */
	uint64_t	 net_out;	/* plaintext bytes written to TLS */
};

/*
 * Runs the pump until both directions reached EOF and were flushed.
 * The TLS socket and plainfd are made non-blocking.  No progress for
 * idle_s seconds (0 = no limit) ends it with MSYNC_ERR_PEER_EOF and
 * *idle set.  Returns 0, MSYNC_ERR_PEER_EOF (the TLS peer vanished
 * without close_notify, or idle) or MSYNC_ERR_IO.
 */
int	 tlspump_run(SSL *ssl, int plainfd, int idle_s,
	    struct tlspump_stats *st, int *idle);

/*
 * SSL_accept or SSL_connect on a non-blocking socket, giving up at the
 * deadline (CLOCK_MONOTONIC milliseconds).  Returns 0, MSYNC_ERR_PEER_EOF
 * on timeout (with *timedout set) or MSYNC_ERR_PROTO on TLS failure.
 */
int	 tlspump_handshake(SSL *ssl, int server, long long deadline_ms,
	    int *timedout);
/*
 * Reads one line of at most max bytes (without its '\n', NUL'd into
 * buf of max + 1 bytes) before the deadline.  Reads one byte at a time
 * so that nothing after the line is consumed.  A NUL or a longer line is
 * MSYNC_ERR_PROTO; a timeout MSYNC_ERR_PEER_EOF with *timedout set.
 */
int	 tlspump_getline(SSL *ssl, char *buf, size_t max,
	    long long deadline_ms, int *timedout);
/* Writes all of buf before the deadline.  Returns 0 or MSYNC_ERR_IO. */
int	 tlspump_write(SSL *ssl, const void *buf, size_t len,
	    long long deadline_ms);

#endif /* TLSPUMP_H */
