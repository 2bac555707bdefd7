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
 * The TLS client is src/tls.[ch], the one the IMAP store uses; this file
 * adds the greeting and hands the SSL to the pump.
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

#include "log.h"
#include "msync.h"
#include "ossl.h"
#include "transport.h"
#include "remote.h"
#include "store.h"
#include "dconf.h"
#include "msyncs.h"
#include "tlspump.h"
#include "tls.h"

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
	const char		*run_line;	/* borrowed; s2s.c's RUN line */
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

/*
 * The helper: connect, verify, log in, pump.  Returns its exit status.
 * The TCP connection and the TLS client (certificate checks, pinning,
 * client certificates) are src/tls.c's, the IMAP store's too.
 */
static int
msyncs_run(struct mhelp *h)
{
	const struct dloc	*d = h->l->daemon;
	struct tlspump_stats	 ps;
	struct tls_opts		 to;
	struct tls		*t = NULL;
	SSL			*ssl;
	char			 line[DCONF_HELLO_MAX + 1];
	char			 sec[DCONF_SECRET_MAX + 2];
	char			 pin[7 + 2 * FP_LEN + 1];
	char			*greet = NULL, *why = NULL;
	long long		 deadline = msync_now_ms() + CONNECT_MS;
	int			 fd = -1, tmo, idle, st = LIBSSH_EXIT_FAIL;

	if (tls_tcp_connect(h->l->host, h->l->port != 0 ? h->l->port :
	    DCONF_PORT, CONNECT_MS, &fd, &why) != 0) {
		msyncs_fail(h, "%s", why != NULL ? why : "cannot connect");
		goto out;
	}
	memset(&to, 0, sizeof(to));
	to.host = h->l->host;
	to.timeout_ms = CONNECT_MS;
	to.cert = d->cert;
	to.key = d->key;
	to.tls13 = 1;
	if (d->have_fp) {
		memcpy(pin, "sha256:", 7);
		for (int i = 0; i < FP_LEN; i++)
			snprintf(pin + 7 + 2 * i, 3, "%02x", d->fp[i]);
		to.fingerprint = pin;
	}
	/* $SSL_CERT_FILE / $SSL_CERT_DIR are honoured by tls_start. */
	if (tls_start(fd, &to, &t, &why) != 0) {
		msyncs_fail(h, "%s", why != NULL ? why : "TLS failed");
		goto out;
	}
	ssl = tls_ssl(t);
	if (d->cert == NULL && msyncs_secret(h, sec, sizeof(sec)) != 0)
		goto out;
	/*
	 * A server-to-server run (s2s.c) says so in the first line and
	 * sends its options as a third line.
	 */
	if (asprintf(&greet, "MSYNCD/1 %s %s%s\n%s%s\n%s%s",
	    d->module, msyncs_user(h->l), h->run_line != NULL ? " RUN" : "",
	    d->cert != NULL ? "CERT" : "SECRET ",
	    d->cert != NULL ? "" : sec, h->run_line != NULL ? h->run_line : "",
	    h->run_line != NULL ? "\n" : "") < 0) {
		greet = NULL;
		goto out;
	}
	explicit_bzero(sec, sizeof(sec));
	if (tlspump_write(ssl, greet, strlen(greet), deadline) != 0 ||
	    tlspump_getline(ssl, line, DCONF_HELLO_MAX, deadline +
	    60000, &tmo) != 0) {
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
	tls_free(t);
	free(why);
	if (fd != -1)
		close(fd);
	return st;
}

/* The helper process's body (transport_helper). */
static int
msyncs_helper(void *arg, int sock, int whyfd)
{
	struct mhelp	*h = arg;

	h->sock = sock;
	h->whyfd = whyfd;
	return msyncs_run(h);
}

int
msyncs_start(const struct transport_opts *o, const struct loc *l,
    struct transport *t, char **why)
{
	struct mhelp	 h;
	int		 r;

	/*
	 * OpenSSL before the helper forks (it inherits the table), so that
	 * a missing libssl is said here, at once, as for libssh.
	 */
	if ((r = ossl_load(why)) != 0)
		return r;
	memset(&h, 0, sizeof(h));
	h.l = l;
	h.run_line = o->daemon_run;
	snprintf(h.where, sizeof(h.where), "%s port %d", l->host,
	    l->port != 0 ? l->port : DCONF_PORT);
	return transport_helper(t, TRANSPORT_MSYNCS, l->host, "msyncs",
	    msyncs_helper, &h);
}
