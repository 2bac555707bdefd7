/*
 * tls.h — the CLIENT side of a TLS connection (OpenSSL) over a TCP socket,
 * for the IMAP store (imaps://, imap:// with STARTTLS) and for the msync
 * daemon transport (msyncs://).
 *
 * What it promises:
 *   - the server certificate is verified against the system's CA store
 *     (OpenSSL's default paths; SSL_CERT_FILE / SSL_CERT_DIR override them)
 *     and against the host name (or IP address) the user gave;
 *   - or, when a fingerprint is pinned ("sha256:" + 64 hex digits, colons
 *     allowed), the leaf certificate's SHA-256 must equal it and nothing
 *     else is checked (a self-signed server);
 *   - a refusal gives one line in *why that names the reason and the
 *     certificate's SHA-256 fingerprint, and says how to pin it;
 *   - TLS 1.2 at least (1.3 with tls13 set); SNI is sent for names (not
 *     for addresses);
 *   - with cert set, the client certificate and its key are offered (a
 *     file that cannot be loaded is MSYNC_ERR_USAGE with *why).
 *
 * STARTTLS: call tls_start() on the fd right after the server's go-ahead,
 * and throw away every plaintext byte buffered from before it (libetpan's
 * CVE-2020-15953: an attacker can inject responses ahead of the
 * handshake).  tls_start() itself reads nothing from the fd but the
 * handshake.
 *
 * The fd may be blocking or not: tls_start() drives the handshake with
 * poll(2) up to a timeout; after it, tls_read()/tls_write() never block on
 * a non-blocking fd: they return MSYNC_ERR_INCOMPLETE and tls_want() says
 * which poll(2) event to wait for.  Call tls_pending() before sleeping in
 * poll: OpenSSL may hold decrypted bytes the fd no longer shows.
 *
 * All memory belongs to the caller unless stated otherwise.  Functions
 * return 0 (or a byte count) on success, a negative MSYNC_ERR_* on
 * failure.  The struct tls does not own the fd: the caller closes it
 * after tls_free().
 */
#ifndef TLS_H
#define TLS_H

#include <stddef.h>
#include <sys/types.h>

/* How to check the peer, and how to show ourselves. */
struct tls_opts {
	const char	*host;		/* borrowed; name or address to verify */
	const char	*fingerprint;	/* borrowed; "sha256:HEX" pin or NULL */
	int		 timeout_ms;	/* handshake limit; <= 0: 30 seconds */
	const char	*cert;		/* borrowed; client certificate chain
					   (PEM file) or NULL: msyncs:// */
	const char	*key;		/* borrowed; its key, NULL = in cert */
	int		 tls13;		/* nonzero: TLS 1.3 only (msyncs://) */
	/*
	 * Nonzero: OpenSSL reads what the socket has (up to its buffer, a
	 * record and a bit) rather than a record header and then its body,
	 * two reads a record; the
	 * caller must then ask tls_pending() before every poll(2).  Only
	 * for callers that do (src/imap/conn.c), not remote/tlspump.c.
	 */
	int		 read_ahead;
};

struct tls;	/* opaque */
struct ssl_st;	/* OpenSSL's SSL */

/*
 * Makes a TCP connection to host:port (every address getaddrinfo gives,
 * in turn), within timeout_ms (<= 0: 30 seconds).  *fd is owned by the
 * caller, non-blocking, close-on-exec.  Failure is
 * MSYNC_ERR_UNREACHABLE with a one-line reason in *why (owned by the
 * caller), e.g. "cannot connect to 127.0.0.1 port 993: Connection refused".
 */
int	 tls_tcp_connect(const char *host, int port, int timeout_ms, int *fd,
	    char **why);

/*
 * Runs a TLS handshake as client on fd and verifies the peer (above).
 * MSYNC_ERR_UNREACHABLE (with *why) for a refused certificate or a failed
 * handshake; MSYNC_ERR_NOMEM.
 */
int	 tls_start(int fd, const struct tls_opts *, struct tls **out,
	    char **why);

/*
 * Reads up to n bytes.  Returns the count (> 0); MSYNC_ERR_INCOMPLETE if
 * nothing can be read now; MSYNC_ERR_PEER_EOF on a close by the peer
 * (clean or not); MSYNC_ERR_IO / MSYNC_ERR_PROTO on errors.
 */
ssize_t	 tls_read(struct tls *, void *, size_t n);
/* Writes up to n bytes: the count (> 0) or a code as tls_read. */
ssize_t	 tls_write(struct tls *, const void *, size_t n);
/* POLLIN or POLLOUT: what the last INCOMPLETE call waits for. */
int	 tls_want(const struct tls *);
/*
 * Nonzero if bytes wait inside OpenSSL (no poll needed): decrypted ones,
 * or with read_ahead, read ones that may hold a whole record (never
 * after a read that found the socket empty).
 */
int	 tls_pending(const struct tls *);
/* The negotiated protocol and cipher, for -v ("TLSv1.3 TLS_AES_..."). */
const char *tls_describe(const struct tls *);
/*
 * The connection's SSL, still owned by the struct tls: for a caller that
 * drives the bytes itself (remote/tlspump.c under msyncs://).
 */
struct ssl_st *tls_ssl(struct tls *);
/*
 * Sends close_notify (best effort, never blocks) and frees.  Accepts
 * NULL.  The fd stays open.
 */
void	 tls_free(struct tls *);

/*
 * Normalises a pin ("sha256:AB:cd..." or "sha256:abcd...") into
 * 64 lowercase hex digits in out[65].  MSYNC_ERR_USAGE if malformed.
 */
int	 tls_parse_fingerprint(const char *, char out[65]);

#endif /* TLS_H */
