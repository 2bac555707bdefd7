/*
 * tls.c — TCP connect and the client side of TLS with OpenSSL.
 * See tls.h for what is verified and how the fd is driven.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "msync.h"
#include "ossl.h"
#include "tls.h"

#define TLS_TIMEOUT_DEFAULT	30000	/* ms, when the caller says <= 0 */

struct tls {
	SSL_CTX		*ctx;		/* owned */
	SSL		*ssl;		/* owned */
	int		 fd;		/* borrowed */
	int		 want;		/* POLLIN/POLLOUT of the last retry */
	int		 read_ahead;	/* tls_opts.read_ahead */
	int		 starved;	/* the last tls_read wanted the socket */
	char		 desc[128];	/* protocol and cipher */
};

/* Waits until fd is ready for ev or the deadline passes (0: timed out). */
static int
wait_fd(int fd, short ev, long long deadline)
{
	struct pollfd	 p;
	long long	 left;
	int		 r;

	for (;;) {
		left = deadline - msync_now_ms();
		if (left <= 0)
			return 0;
		p.fd = fd;
		p.events = ev;
		p.revents = 0;
		r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* Tries one address; 0 with *fdp set, or -1 with errno. */
static int
connect_one(const struct addrinfo *ai, long long deadline, int *fdp)
{
	int		 fd, e = 0, r;
	socklen_t	 len = sizeof(e);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		goto ok;
	if (errno != EINPROGRESS)
		goto bad;
	r = wait_fd(fd, POLLOUT, deadline);
	if (r == 0) {
		errno = ETIMEDOUT;
		goto bad;
	}
	if (r < 0)
		goto bad;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
		goto bad;
	if (e != 0) {
		errno = e;
		goto bad;
	}
ok:
	*fdp = fd;
	return 0;
bad:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

int
tls_tcp_connect(const char *host, int port, int timeout_ms, int *fdp,
    char **why)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	char		 serv[16];
	long long	 deadline;
	int		 r, e = ECONNREFUSED;

	*fdp = -1;
	if (port <= 0 || port > 65535) {
		msync_why(why, "invalid port %d", port);
		return MSYNC_ERR_USAGE;
	}
	if (timeout_ms <= 0)
		timeout_ms = TLS_TIMEOUT_DEFAULT;
	deadline = msync_now_ms() + timeout_ms;
	snprintf(serv, sizeof(serv), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
	if ((r = getaddrinfo(host, serv, &hints, &res)) != 0) {
		msync_why(why, "cannot resolve '%s': %s", log_esc(host, 200),
		    gai_strerror(r));
		return MSYNC_ERR_UNREACHABLE;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (connect_one(ai, deadline, fdp) == 0)
			break;
		e = errno;
	}
	freeaddrinfo(res);
	if (*fdp < 0) {
		msync_why(why, "cannot connect to %s port %d: %s",
		    log_esc(host, 200), port, strerror(e));
		return MSYNC_ERR_UNREACHABLE;
	}
	return 0;
}

int
tls_parse_fingerprint(const char *s, char out[65])
{
	size_t	 n = 0;

	if (s == NULL || strncasecmp(s, "sha256:", 7) != 0)
		return MSYNC_ERR_USAGE;
	for (s += 7; *s != '\0'; s++) {
		if (*s == ':')
			continue;
		if (!isxdigit((unsigned char)*s) || n >= 64)
			return MSYNC_ERR_USAGE;
		out[n++] = (char)tolower((unsigned char)*s);
	}
	if (n != 64)
		return MSYNC_ERR_USAGE;
	out[64] = '\0';
	return 0;
}

/* The leaf certificate's SHA-256 as 64 lowercase hex digits. */
static int
cert_sha256(X509 *cert, char out[65])
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 len = 0, i;

	if (X509_digest(cert, EVP_sha256(), md, &len) != 1 || len != 32)
		return MSYNC_ERR_INTERNAL;
	for (i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* The pin as the user writes it: "sha256:AB:CD:..." */
static void
pin_text(const char hex[65], char out[7 + 96])
{
	size_t	 i, o = 0;

	memcpy(out, "sha256:", 7);
	o = 7;
	for (i = 0; i < 64; i += 2) {
		if (i > 0)
			out[o++] = ':';
		out[o++] = (char)toupper((unsigned char)hex[i]);
		out[o++] = (char)toupper((unsigned char)hex[i + 1]);
	}
	out[o] = '\0';
}

/* The first OpenSSL error in the queue, as text (queue cleared). */
static const char *
ssl_errtext(char *buf, size_t len)
{
	unsigned long	 e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "%s", errno != 0 ? strerror(errno) :
		    "connection closed");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Checks the peer certificate after a completed handshake. */
static int
verify_peer(struct tls *t, const struct tls_opts *o, char **why)
{
	X509		*cert = NULL;
	char		 have[65], pin[65], shown[7 + 96];
	long		 vr;
	int		 r = MSYNC_ERR_UNREACHABLE;

	if ((cert = SSL_get1_peer_certificate(t->ssl)) == NULL) {
		msync_why(why, "%s sent no certificate", log_esc(o->host, 200));
		goto out;
	}
	if ((r = cert_sha256(cert, have)) != 0)
		goto out;
	pin_text(have, shown);
	if (o->fingerprint != NULL) {
		if (tls_parse_fingerprint(o->fingerprint, pin) != 0) {
			msync_why(why, "invalid fingerprint '%s' (want "
			    "sha256: and 64 hex digits)",
			    log_esc(o->fingerprint, 120));
			r = MSYNC_ERR_USAGE;
			goto out;
		}
		if (strcmp(pin, have) != 0) {
			msync_why(why, "certificate of %s does not match the "
			    "pinned fingerprint: it is %s (if the server's "
			    "certificate was changed on purpose, pin the new "
			    "one with ;fingerprint=%s)",
			    log_esc(o->host, 200), shown, shown);
			r = MSYNC_ERR_UNREACHABLE;
			goto out;
		}
		r = 0;
		goto out;
	}
	vr = SSL_get_verify_result(t->ssl);
	if (vr != X509_V_OK) {
		msync_why(why, "certificate of %s is not trusted: %s (to trust "
		    "this certificate anyway, add ;fingerprint=%s to the "
		    "location)", log_esc(o->host, 200),
		    X509_verify_cert_error_string(vr), shown);
		r = MSYNC_ERR_UNREACHABLE;
		goto out;
	}
	r = 0;
out:
	X509_free(cert);
	return r;
}

/* Is s a literal IPv4 or IPv6 address? */
static int
is_address(const char *s)
{
	unsigned char	 b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

int
tls_start(int fd, const struct tls_opts *o, struct tls **out, char **why)
{
	struct tls	*t = NULL;
	X509_VERIFY_PARAM *vp;
	long long	 deadline;
	char		 ebuf[256];
	int		 r, n, e, w;

	*out = NULL;
	/* OpenSSL is loaded by the first connection that needs it. */
	if ((r = ossl_load(why)) != 0)
		return r;
	/*
	 * What a failure below that sets no code of its own is: a handshake
	 * that failed or timed out.  Never 0 there, or the caller would go
	 * on in clear on a connection that was to be TLS.
	 */
	r = MSYNC_ERR_UNREACHABLE;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return MSYNC_ERR_NOMEM;
	t->fd = fd;
	if ((t->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (SSL_CTX_set_min_proto_version(t->ctx, o->tls13 ?
	    TLS1_3_VERSION : TLS1_2_VERSION) != 1)) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	if (o->cert != NULL && (SSL_CTX_use_certificate_chain_file(t->ctx,
	    o->cert) != 1 || SSL_CTX_use_PrivateKey_file(t->ctx,
	    o->key != NULL ? o->key : o->cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1)) {
		msync_why(why, "cannot load client certificate '%s': %s",
		    log_esc(o->cert, 200), ssl_errtext(ebuf, sizeof(ebuf)));
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	/*
	 * Verification runs during the handshake either way; with
	 * SSL_VERIFY_NONE the handshake completes and verify_peer() decides,
	 * so that a refusal can show the fingerprint to pin.
	 */
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	if (o->fingerprint == NULL &&
	    SSL_CTX_set_default_verify_paths(t->ctx) != 1)
		LOG3("tls: no default CA paths");
	if ((t->ssl = SSL_new(t->ctx)) == NULL ||
	    SSL_set_fd(t->ssl, fd) != 1) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/*
	 * OpenSSL's own buffer (one record and a bit): a 64 KB one saved
	 * fewer reads than it cost in moving what is left of it after each
	 * record (memmove: 92M more instructions for 12.6 MB of bodies).
	 */
	if (o->read_ahead) {
		SSL_set_read_ahead(t->ssl, 1);
		t->read_ahead = 1;
	}
	vp = SSL_get0_param(t->ssl);
	if (is_address(o->host)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, o->host) != 1) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
	} else {
		X509_VERIFY_PARAM_set_hostflags(vp,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(t->ssl, o->host) != 1 ||
		    SSL_set_tlsext_host_name(t->ssl, o->host) != 1) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
	}
	deadline = msync_now_ms() + (o->timeout_ms > 0 ? o->timeout_ms :
	    TLS_TIMEOUT_DEFAULT);
	for (;;) {
		ERR_clear_error();
		errno = 0;
		if ((n = SSL_connect(t->ssl)) == 1)
			break;
		e = SSL_get_error(t->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			w = wait_fd(fd, e == SSL_ERROR_WANT_READ ? POLLIN :
			    POLLOUT, deadline);
			if (w > 0)
				continue;
			msync_why(why, "TLS handshake with %s %s",
			    log_esc(o->host, 200), w == 0 ? "timed out" :
			    strerror(errno));
			goto out;
		}
		msync_why(why, "TLS handshake with %s failed: %s",
		    log_esc(o->host, 200), ssl_errtext(ebuf, sizeof(ebuf)));
		goto out;
	}
	if ((r = verify_peer(t, o, why)) != 0)
		goto out;
	snprintf(t->desc, sizeof(t->desc), "%s %s",
	    SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
	LOG3("tls: %s with %s", t->desc, log_esc(o->host, 200));
	*out = t;
	t = NULL;	/* transferred */
	r = 0;
out:
	if (t != NULL) {
		SSL_free(t->ssl);
		SSL_CTX_free(t->ctx);
		free(t);
	}
	return r;
}

/* Maps the result of SSL_read/SSL_write n to our return convention. */
static ssize_t
io_result(struct tls *t, int n)
{
	int	 e = SSL_get_error(t->ssl, n);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		t->want = POLLIN;
		return MSYNC_ERR_INCOMPLETE;
	case SSL_ERROR_WANT_WRITE:
		t->want = POLLOUT;
		return MSYNC_ERR_INCOMPLETE;
	case SSL_ERROR_ZERO_RETURN:
		return MSYNC_ERR_PEER_EOF;
	case SSL_ERROR_SYSCALL:
		/* An EOF without close_notify, or a reset. */
		ERR_clear_error();
		if (errno == 0 || errno == ECONNRESET || errno == EPIPE)
			return MSYNC_ERR_PEER_EOF;
		return MSYNC_ERR_IO;
	default:
		if (ERR_GET_REASON(ERR_peek_error()) ==
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return MSYNC_ERR_PEER_EOF;
		}
		LOG3("tls: %s", ERR_error_string(ERR_peek_error(), NULL));
		ERR_clear_error();
		return MSYNC_ERR_PROTO;
	}
}

ssize_t
tls_read(struct tls *t, void *p, size_t n)
{
	int	 r;

	if (n == 0)
		return 0;
	if (n > 1 << 30)
		n = 1 << 30;
	ERR_clear_error();
	errno = 0;
	r = SSL_read(t->ssl, p, (int)n);
	if (r > 0) {
		t->starved = 0;
		return r;
	}
	r = (int)io_result(t, r);
	t->starved = r == MSYNC_ERR_INCOMPLETE;
	return r;
}

ssize_t
tls_write(struct tls *t, const void *p, size_t n)
{
	int	 r;

	if (n == 0)
		return 0;
	if (n > 1 << 30)
		n = 1 << 30;
	ERR_clear_error();
	errno = 0;
	r = SSL_write(t->ssl, p, (int)n);
	if (r > 0)
		return r;
	return io_result(t, r);
}

int
tls_want(const struct tls *t)
{
	return t->want != 0 ? t->want : POLLIN;
}

int
tls_pending(const struct tls *t)
{
	if (SSL_pending(t->ssl) > 0)
		return 1;
	/*
	 * Read ahead, OpenSSL may hold whole records not yet decrypted; or
	 * only part of one, which a read completes only after poll(2): so
	 * not once a read found the socket empty (no busy loop).
	 */
	return t->read_ahead && !t->starved && SSL_has_pending(t->ssl);
}

const char *
tls_describe(const struct tls *t)
{
	return t->desc;
}

struct ssl_st *
tls_ssl(struct tls *t)
{
	return t->ssl;
}

void
tls_free(struct tls *t)
{
	if (t == NULL)
		return;
	if (t->ssl != NULL) {
		/* One try; a peer that is gone or slow gets no wait. */
		(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
		SSL_free(t->ssl);
	}
	SSL_CTX_free(t->ctx);
	free(t);
}
