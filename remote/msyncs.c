/*
 * msyncs.c — the msyncs:// transport: a TLS 1.3 connection to an msync
 * daemon (remote/daemon.c), and the parts of its locations that ssh
 * locations do not have.
 *
 *   msyncs://[user@]host[:port]/module[/path][;param=value...]
 *
 * with the params fingerprint=sha256:HEX (pin the server certificate's
 * SHA-256 instead of checking it against the system CAs), secret-file=PATH
 * (the user's secret; default $MSYNC_SECRET_FILE), cert=PATH and key=PATH
 * (log in with a client certificate), layout=fs.
 *
 * As with libssh, a forked helper runs the connection: it connects,
 * verifies the server, sends the greeting (dconf.h), and then pumps bytes
 * between TLS and its end of a socketpair, so the brain sees only an fd.
 * A failure before the pump runs is one WHY_FULL line and exit status
 * LIBSSH_EXIT_FAIL, which transport_finish reports as "unreachable".
 *
 * This is a minimal TLS client of its own: src/tls.[ch], the IMAP
 * client's, was not on main when this was written (see docs/DAEMON.md).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "msync.h"
#include "transport.h"
#include "remote.h"
#include "store.h"
#include "dconf.h"
#include "msyncs.h"
#include "tlspump.h"

#define CONNECT_MS	15000	/* TCP connect, TLS and the greeting */
#define FP_LEN		32	/* SHA-256 */

void
dloc_free(struct dloc *d)
{
	if (d == NULL)
		return;
	free(d->module);
	free(d->secret_file);
	free(d->cert);
	free(d->key);
	free(d);
}

/* Two hex digits to a byte; -1 when not hex. */
static int
msyncs_hexbyte(const char *s)
{
	int	 hi, lo;

	if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]))
		return -1;
	hi = isdigit((unsigned char)s[0]) ? s[0] - '0' :
	    tolower((unsigned char)s[0]) - 'a' + 10;
	lo = isdigit((unsigned char)s[1]) ? s[1] - '0' :
	    tolower((unsigned char)s[1]) - 'a' + 10;
	return hi << 4 | lo;
}

/* "sha256:" then 64 hex digits, ':' separators allowed (openssl -c). */
static int
msyncs_fingerprint(const char *v, struct dloc *d)
{
	size_t	 n = 0;
	int	 b;

	if (strncasecmp(v, "sha256:", 7) != 0)
		return MSYNC_ERR_USAGE;
	for (v += 7; *v != '\0' && n < FP_LEN; ) {
		if (*v == ':') {
			v++;
			continue;
		}
		if ((b = msyncs_hexbyte(v)) < 0)
			return MSYNC_ERR_USAGE;
		d->fp[n++] = (unsigned char)b;
		v += 2;
	}
	if (n != FP_LEN || *v != '\0')
		return MSYNC_ERR_USAGE;
	d->have_fp = 1;
	return 0;
}

int
msyncs_loc_params(char *s, struct loc *l)
{
	struct dloc	*d;
	char		*semi, *p, *next, **slot;
	int		 r = MSYNC_ERR_USAGE;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return MSYNC_ERR_NOMEM;
	l->daemon = d;
	if ((semi = strchr(s, ';')) == NULL)
		return 0;
	*semi = '\0';
	for (p = semi + 1; p != NULL; p = next) {
		if ((next = strchr(p, ';')) != NULL)
			*next++ = '\0';
		slot = NULL;
		if (strncmp(p, "fingerprint=", 12) == 0) {
			if ((r = msyncs_fingerprint(p + 12, d)) != 0)
				return r;
			continue;
		} else if (strcmp(p, "layout=fs") == 0) {
			l->layout = LAYOUT_FS;
			continue;
		} else if (strcmp(p, "layout=maildir++") == 0)
			continue;
		else if (strncmp(p, "secret-file=", 12) == 0)
			slot = &d->secret_file, p += 12;
		else if (strncmp(p, "cert=", 5) == 0)
			slot = &d->cert, p += 5;
		else if (strncmp(p, "key=", 4) == 0)
			slot = &d->key, p += 4;
		if (slot == NULL || *p == '\0' || *slot != NULL)
			return MSYNC_ERR_USAGE;
		if ((*slot = strdup(p)) == NULL)
			return MSYNC_ERR_NOMEM;
	}
	return 0;
}

int
msyncs_loc_module(struct loc *l)
{
	struct dloc	*d = l->daemon;
	const char	*p = l->path, *slash;
	char		*rest;

	/* loc_parse_url left "/module[/path]". */
	if (p[0] != '/')
		return MSYNC_ERR_USAGE;
	p++;
	slash = strchr(p, '/');
	if ((d->module = strndup(p, slash != NULL ? (size_t)(slash - p) :
	    strlen(p))) == NULL)
		return MSYNC_ERR_NOMEM;
	if (!dconf_name_ok(d->module))
		return MSYNC_ERR_USAGE;
	if ((rest = strdup(slash != NULL && slash[1] != '\0' ? slash + 1 :
	    ".")) == NULL)
		return MSYNC_ERR_NOMEM;
	free(l->path);
	l->path = rest;
	return 0;
}

int
msyncs_loc_text(struct loc *l, int v6)
{
	char	 port[16], *h;
	size_t	 i;
	int	 n;

	if ((h = strdup(l->host)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; h[i] != '\0'; i++)
		h[i] = tolower((unsigned char)h[i]);
	port[0] = '\0';
	if (l->port != 0 && l->port != DCONF_PORT)
		snprintf(port, sizeof(port), ":%d", l->port);
	n = asprintf(&l->text, "msyncs://%s%s%s%s%s%s/%s%s%s%s",
	    l->user != NULL ? l->user : "", l->user != NULL ? "@" : "",
	    v6 ? "[" : "", h, v6 ? "]" : "", port, l->daemon->module,
	    strcmp(l->path, ".") != 0 ? "/" : "",
	    strcmp(l->path, ".") != 0 ? l->path : "",
	    l->layout == LAYOUT_FS ? ";layout=fs" : "");
	free(h);
	if (n < 0) {
		l->text = NULL;
		return MSYNC_ERR_NOMEM;
	}
	return 0;
}

/* What the helper works with. */
struct mhelp {
	const struct loc	*l;	/* borrowed */
	int			 sock;	/* our end of the socketpair */
	int			 whyfd;	/* write end of the why pipe */
	char			 where[320];	/* "host:port", for messages */
};

static void __attribute__((format(printf, 2, 3)))
msyncs_fail(struct mhelp *h, const char *fmt, ...)
{
	char	 buf[WHY_MAX + 1];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	transport_why_line(h->whyfd, WHY_FULL, buf);
	h->whyfd = -1;
}

/* The first OpenSSL error as text. */
static const char *
msyncs_sslerr(void)
{
	static char	 buf[256];
	unsigned long	 e = ERR_get_error();

	if (e == 0)
		return "connection closed";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

/* TCP connect to host:port within CONNECT_MS.  Returns fd or -1. */
static int
msyncs_connect(struct mhelp *h)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	struct pollfd	 pf;
	char		 port[16];
	socklen_t	 sl;
	int		 fd = -1, e, soerr = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", h->l->port != 0 ? h->l->port :
	    DCONF_PORT);
	if ((e = getaddrinfo(h->l->host, port, &hints, &res)) != 0) {
		msyncs_fail(h, "cannot resolve %s: %s", h->l->host,
		    gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype |
		    SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol)) == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			pf.fd = fd;
			pf.events = POLLOUT;
			sl = sizeof(soerr);
			if (poll(&pf, 1, CONNECT_MS) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
			    &sl) == 0 && soerr == 0)
				break;
			errno = soerr != 0 ? soerr : ETIMEDOUT;
		}
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	freeaddrinfo(res);
	if (fd == -1)
		msyncs_fail(h, "cannot connect to %s: %s", h->where,
		    strerror(errno));
	return fd;
}

/* Checks the pinned fingerprint.  Returns 0, or -1 after msyncs_fail. */
static int
msyncs_pin(struct mhelp *h, SSL *ssl)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 n = 0;
	X509		*peer;
	char		 hex[FP_LEN * 3 + 1];
	int		 ok;

	if ((peer = SSL_get1_peer_certificate(ssl)) == NULL) {
		msyncs_fail(h, "%s sent no certificate", h->where);
		return -1;
	}
	ok = X509_digest(peer, EVP_sha256(), md, &n) == 1 && n == FP_LEN &&
	    CRYPTO_memcmp(md, h->l->daemon->fp, FP_LEN) == 0;
	X509_free(peer);
	if (ok)
		return 0;
	for (unsigned i = 0; i < n && i < FP_LEN; i++)
		snprintf(hex + i * 2, 3, "%02x", md[i]);
	hex[n < FP_LEN ? n * 2 : FP_LEN * 2] = '\0';
	msyncs_fail(h, "certificate of %s does not match the pinned "
	    "fingerprint (it is sha256:%s): refusing to connect", h->where,
	    hex);
	return -1;
}

/* Reads the secret from the file (first line). */
static int
msyncs_secret(struct mhelp *h, char *out, size_t max)
{
	const char	*path = h->l->daemon->secret_file;
	FILE		*f;
	size_t		 n;

	if (path == NULL)
		path = getenv("MSYNC_SECRET_FILE");
	if (path == NULL) {
		msyncs_fail(h, "no secret for %s: give ;secret-file=PATH, "
		    "$MSYNC_SECRET_FILE or ;cert=PATH", h->where);
		return -1;
	}
	if ((f = fopen(path, "re")) == NULL) {
		msyncs_fail(h, "cannot read secret file '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	if (fgets(out, (int)max, f) == NULL)
		out[0] = '\0';
	fclose(f);
	n = strcspn(out, "\r\n");
	out[n] = '\0';
	if (n == 0 || n > DCONF_SECRET_MAX) {
		msyncs_fail(h, "secret file '%s' holds no usable secret", path);
		return -1;
	}
	return 0;
}

/* The user to log in as: the location's, else the local user's name. */
static const char *
msyncs_user(const struct loc *l)
{
	struct passwd	*pw;
	const char	*u;

	if (l->user != NULL)
		return l->user;
	if ((u = getenv("USER")) != NULL && *u != '\0')
		return u;
	if ((pw = getpwuid(getuid())) != NULL)
		return pw->pw_name;
	return "nobody";
}

/* The helper: connect, verify, log in, pump.  Returns its exit status. */
static int
msyncs_run(struct mhelp *h)
{
	const struct dloc	*d = h->l->daemon;
	struct tlspump_stats	 ps;
	struct in6_addr		 a6;
	SSL_CTX			*ctx = NULL;
	SSL			*ssl = NULL;
	char			 line[DCONF_HELLO_MAX + 1];
	char			 sec[DCONF_SECRET_MAX + 2];
	char			*greet = NULL;
	long long		 deadline = tlspump_now_ms() + CONNECT_MS;
	int			 fd = -1, to, idle, st = LIBSSH_EXIT_FAIL, ip;

	if ((fd = msyncs_connect(h)) == -1)
		goto out;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
		msyncs_fail(h, "cannot set up TLS: %s", msyncs_sslerr());
		goto out;
	}
	if (!d->have_fp) {
		/* $SSL_CERT_FILE / $SSL_CERT_DIR are honoured here. */
		if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			msyncs_fail(h, "cannot load the system CAs: %s",
			    msyncs_sslerr());
			goto out;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	if (d->cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx,
	    d->cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, d->key != NULL ?
	    d->key : d->cert, SSL_FILETYPE_PEM) != 1)) {
		msyncs_fail(h, "cannot load client certificate '%s': %s",
		    d->cert, msyncs_sslerr());
		goto out;
	}
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1)
		goto out;
	ip = inet_pton(AF_INET, h->l->host, &a6) == 1 ||
	    inet_pton(AF_INET6, h->l->host, &a6) == 1;
	if (!d->have_fp) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

		if (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, h->l->host) != 1 :
		    X509_VERIFY_PARAM_set1_host(vp, h->l->host, 0) != 1)
			goto out;
	}
	if (!ip)
		(void)SSL_set_tlsext_host_name(ssl, h->l->host);
	if (tlspump_handshake(ssl, 0, deadline, &to) != 0) {
		long	 v = SSL_get_verify_result(ssl);

		if (v != X509_V_OK)
			msyncs_fail(h, "certificate of %s not trusted: %s",
			    h->where, X509_verify_cert_error_string(v));
		else
			msyncs_fail(h, "TLS handshake with %s %s: %s",
			    h->where, to ? "timed out" : "failed",
			    msyncs_sslerr());
		goto out;
	}
	if (d->have_fp && msyncs_pin(h, ssl) != 0)
		goto out;
	if (d->cert == NULL && msyncs_secret(h, sec, sizeof(sec)) != 0)
		goto out;
	if (asprintf(&greet, "MSYNCD/1 %s %s\n%s%s\n", d->module,
	    msyncs_user(h->l), d->cert != NULL ? "CERT" : "SECRET ",
	    d->cert != NULL ? "" : sec) < 0) {
		greet = NULL;
		goto out;
	}
	explicit_bzero(sec, sizeof(sec));
	if (tlspump_write(ssl, greet, strlen(greet), deadline) != 0 ||
	    tlspump_getline(ssl, line, DCONF_HELLO_MAX, deadline +
	    60000, &to) != 0) {
		msyncs_fail(h, "%s closed the connection during login",
		    h->where);
		goto out;
	}
	if (strcmp(line, "OK") != 0) {
		msyncs_fail(h, "%s refused the login to module '%s': %s",
		    h->where, d->module, strncmp(line, "ERR ", 4) == 0 ?
		    log_esc(line + 4, 200) : "unexpected answer");
		/* A refusal said in words: no retry will fix it. */
		if (strncmp(line, "ERR ", 4) == 0)
			st = MSYNCS_EXIT_AUTH;
		goto out;
	}
	st = tlspump_run(ssl, h->sock, 0, &ps, &idle) == 0 ? 0 : EXIT_ERROR;
out:
	if (greet != NULL) {
		explicit_bzero(greet, strlen(greet));
		free(greet);
	}
	if (ssl != NULL)
		SSL_free(ssl);
	if (ctx != NULL)
		SSL_CTX_free(ctx);
	if (fd != -1)
		close(fd);
	return st;
}

int
msyncs_start(const struct transport_opts *o, const struct loc *l,
    struct transport *t, char **why)
{
	struct mhelp	 h;
	int		 sv[2] = { -1, -1 }, wp[2] = { -1, -1 }, r, e;
	pid_t		 pid;

	(void)o;
	(void)why;
	r = MSYNC_ERR_NOMEM;
	if ((t->host = strdup(l->host)) == NULL ||
	    (t->prog = strdup("msyncs")) == NULL)
		goto out;
	r = MSYNC_ERR_IO;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    pipe2(wp, O_CLOEXEC) == -1)
		goto out;
	fflush(stderr);
	if ((pid = fork()) == -1)
		goto out;
	if (pid == 0) {
		transport_child_signals();
		signal(SIGPIPE, SIG_IGN);
		transport_close_except(sv[1], wp[1], -1);
		transport_null_stdio(sv[1]);
		memset(&h, 0, sizeof(h));
		h.l = l;
		h.sock = sv[1];
		h.whyfd = wp[1];
		snprintf(h.where, sizeof(h.where), "%s port %d", l->host,
		    l->port != 0 ? l->port : DCONF_PORT);
		_exit(msyncs_run(&h));
	}
	t->rfd = t->wfd = sv[0];
	t->pid = pid;
	t->err_pid = -1;
	t->why_fd = wp[0];
	t->kind = TRANSPORT_MSYNCS;
	sv[0] = wp[0] = -1;	/* transferred */
	r = 0;
out:
	e = errno;
	if (r != 0)
		transport_abandon(t);
	transport_close_pair(sv);
	transport_close_pair(wp);
	errno = e;
	return r;
}
