/*
 * daemon.c — msync --daemon: the listener, the per-connection process,
 * and the login of a client into a module (see docs/DAEMON.md).
 *
 * The listening process (root, to bind a low port and read the key and
 * the secrets file) never reads a byte from a client.  It counts its
 * children, refuses connections over the total and per-address limits,
 * and throttles an address whose logins failed too often: a connection
 * process that refused a login exits with DAEMON_EXIT_AUTH.
 *
 * A connection process drops to the configured Unix user and caps its
 * memory before the TLS handshake, so nothing a client sends is parsed
 * with privileges.  It reads the greeting (dconf.h), checks the client,
 * resolves the module's root (dpath.h), then forks the server brain on a
 * socketpair and pumps bytes between it and TLS (tlspump.h), which also
 * enforces the idle timeout.
 *
 * Under systemd, LISTEN_FDS hands us either the listening socket
 * (Accept=no: we accept and fork as above) or one accepted connection
 * (Accept=yes, msyncd@.service: we serve it and exit).
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "brain.h"
#include "daemon.h"
#include "dconf.h"
#include "dpath.h"
#include "log.h"
#include "msync.h"
#include "ossl.h"
#include "s2s.h"
#include "tlspump.h"

#define ADDR_MAX	64	/* text of a peer address */
#define FAIL_SLOTS	1024	/* addresses whose failures we remember */
#define REFUSE_QUIET_S	10	/* one "refused" line per address and reason */

struct child {
	pid_t	 pid;
	char	 addr[ADDR_MAX];
};

struct failrec {
	char	 addr[ADDR_MAX];
	int	 count;
	time_t	 first;
};

struct daemon {
	struct dconf	 conf;
	SSL_CTX		*ctx;
	uid_t		 uid;
	gid_t		 gid;
	int		 drop;		/* switch to uid/gid per connection */
	struct child	*kids;		/* max_conn slots; pid 0 = free */
	struct failrec	 fails[FAIL_SLOTS];
};

static volatile sig_atomic_t	 stopping;

static void
daemon_onsignal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Log sink for "syslog = yes". */
static void
daemon_syslog(int level, const char *text, void *arg)
{
	(void)arg;
	syslog(level == 0 ? LOG_ERR : level == 1 ? LOG_NOTICE : LOG_INFO,
	    "%s", text);
}

/* The peer's address as text ("127.0.0.1", "::1"), or "unknown". */
static void
daemon_peer(int fd, char *out)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);

	snprintf(out, ADDR_MAX, "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == -1)
		return;
	if (ss.ss_family == AF_UNIX) {
		snprintf(out, ADDR_MAX, "local");
		return;
	}
	(void)getnameinfo((struct sockaddr *)&ss, sl, out, ADDR_MAX, NULL, 0,
	    NI_NUMERICHOST);
}

/* The first OpenSSL error, as text, or "no details". */
static const char *
daemon_sslerr(void)
{
	static char	 buf[256];
	unsigned long	 e = ERR_get_error();

	if (e == 0)
		return "no details";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/* Builds the TLS 1.3 server context from the config. */
static int
daemon_tls(struct daemon *d)
{
	const struct dconf	*c = &d->conf;

	if (c->cert == NULL || c->key == NULL) {
		ERRX("config: 'cert' and 'key' are required (TLS is always "
		    "on)");
		return -1;
	}
	if ((d->ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(d->ctx, TLS1_3_VERSION) != 1) {
		ERRX("cannot set up TLS: %s", daemon_sslerr());
		return -1;
	}
	if (SSL_CTX_use_certificate_chain_file(d->ctx, c->cert) != 1) {
		ERRX("cannot load certificate '%s': %s", c->cert,
		    daemon_sslerr());
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(d->ctx, c->key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(d->ctx) != 1) {
		ERRX("cannot load key '%s': %s", c->key, daemon_sslerr());
		return -1;
	}
	if (c->client_ca != NULL) {
		STACK_OF(X509_NAME)	*names;

		if (SSL_CTX_load_verify_locations(d->ctx, c->client_ca,
		    NULL) != 1 || (names = SSL_load_client_CA_file(
		    c->client_ca)) == NULL) {
			ERRX("cannot load client CA '%s': %s", c->client_ca,
			    daemon_sslerr());
			return -1;
		}
		SSL_CTX_set_client_CA_list(d->ctx, names);
		/* Asked, not required: secret users have no certificate. */
		SSL_CTX_set_verify(d->ctx, SSL_VERIFY_PEER, NULL);
	}
	/* No resumption: each connection is one process, tickets are moot. */
	SSL_CTX_set_num_tickets(d->ctx, 0);
	SSL_CTX_set_session_cache_mode(d->ctx, SSL_SESS_CACHE_OFF);
	return 0;
}

/* Resolves the Unix user (and group) connections will run as. */
static int
daemon_ids(struct daemon *d)
{
	const char	*u = d->conf.user;
	struct passwd	*pw;
	struct group	*gr;

	if (geteuid() != 0) {
		if (u != NULL && ((pw = getpwnam(u)) == NULL ||
		    pw->pw_uid != geteuid())) {
			ERRX("config: cannot run as user '%s' without root",
			    u);
			return -1;
		}
		return 0;
	}
	if (u == NULL) {
		u = "nobody";
		LOG1("no 'user' in the config: connections run as nobody");
	}
	if ((pw = getpwnam(u)) == NULL) {
		ERRX("config: no such user '%s'", u);
		return -1;
	}
	if (pw->pw_uid == 0) {
		ERRX("config: connections must not run as root");
		return -1;
	}
	d->uid = pw->pw_uid;
	d->gid = pw->pw_gid;
	if (d->conf.group != NULL) {
		if ((gr = getgrnam(d->conf.group)) == NULL) {
			ERRX("config: no such group '%s'", d->conf.group);
			return -1;
		}
		d->gid = gr->gr_gid;
	}
	d->drop = 1;
	return 0;
}

/*
 * The cache directory (indexes of stores the daemon may not write): made
 * here, owned by the connections' user, and given to the brains as
 * $XDG_CACHE_HOME.
 */
static int
daemon_cachedir(struct daemon *d)
{
	const char	*dir = d->conf.cache_dir != NULL ? d->conf.cache_dir :
			    "/var/cache/msync";
	struct stat	 st;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		ERR("cannot make the cache dir '%s'", dir);
		return -1;
	}
	if (lstat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		ERRX("cache dir '%s' is not a directory", dir);
		return -1;
	}
	if (d->drop && st.st_uid != d->uid && chown(dir, d->uid, d->gid) == -1) {
		ERR("cannot give the cache dir '%s' to the daemon user", dir);
		return -1;
	}
	if (setenv("XDG_CACHE_HOME", dir, 1) == -1) {
		ERR("setenv");
		return -1;
	}
	return 0;
}

/*
 * In a connection process, before any byte from the client is read:
 * the Unix user, no core dumps (the key and secrets are in memory), and
 * the memory cap.
 */
static int
daemon_confine(const struct daemon *d)
{
	struct rlimit	 rl;

	rl.rlim_cur = rl.rlim_max = 0;
	(void)setrlimit(RLIMIT_CORE, &rl);
	if (d->drop) {
		if (setgroups(1, &d->gid) == -1 || setgid(d->gid) == -1 ||
		    setuid(d->uid) == -1) {
			ERR("cannot drop privileges");
			return -1;
		}
		if (setuid(0) != -1) {
			ERRX("privileges could be regained: refusing");
			return -1;
		}
	}
	if (d->conf.max_memory != 0) {
		rl.rlim_cur = rl.rlim_max = (rlim_t)d->conf.max_memory;
		if (setrlimit(RLIMIT_AS, &rl) == -1)
			WARN("cannot set the memory limit");
	}
	return 0;
}

/*
 * Compares two secrets in time that depends only on their lengths'
 * digests: both are hashed, and the digests compared with CRYPTO_memcmp.
 */
static int
daemon_secret_eq(const char *given, const char *want)
{
	unsigned char	 a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int	 al = 0, bl = 0;

	if (EVP_Digest(given, strlen(given), a, &al, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(want, strlen(want), b, &bl, EVP_sha256(), NULL) != 1 ||
	    al != bl)
		return 0;
	return CRYPTO_memcmp(a, b, al) == 0;
}

/*
 * Checks the login: the module's methods, then the certificate (its
 * common name must be the user) or the secret, then the module's users.
 * *what gets the reason for the log.  Returns 1 when allowed.
 */
static int
daemon_login(const struct daemon *d, SSL *ssl, const struct dmodule *m,
    const struct dhello *h, const char **what)
{
	const char	*want;
	X509		*peer;
	char		 cn[DCONF_NAME_MAX + 2];
	int		 ok, n;

	if (h->cert) {
		*what = "no valid client certificate";
		if (!(m->auth & DAUTH_CERT))
			return *what = "module takes no certificates", 0;
		if ((peer = SSL_get1_peer_certificate(ssl)) == NULL)
			return 0;
		ok = SSL_get_verify_result(ssl) == X509_V_OK;
		n = X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
		    NID_commonName, cn, sizeof(cn));
		X509_free(peer);
		if (!ok)
			return 0;
		if (n <= 0 || (size_t)n > DCONF_NAME_MAX ||
		    strcmp(cn, h->user) != 0)
			return *what = "certificate is not the user's", 0;
	} else {
		if (!(m->auth & DAUTH_SECRET))
			return *what = "module takes no secrets", 0;
		/* An unknown user costs the same as a wrong secret. */
		want = dconf_secret(&d->conf, h->user);
		ok = daemon_secret_eq(h->secret, want != NULL ? want :
		    "\x01unknown user\x01");
		if (want == NULL || !ok)
			return *what = "wrong secret", 0;
	}
	if (!dconf_user_allowed(m, h->user))
		return *what = "user not allowed in this module", 0;
	return 1;
}

/* Sleeps ms milliseconds (the failed-login delay). */
static void
daemon_nap(int ms)
{
	struct timespec	 ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * Serves one accepted connection in this process: returns its exit
 * status.
 */
static int
daemon_conn(struct daemon *d, int fd)
{
	struct server_opts	 so;
	struct tlspump_stats	 ps;
	struct dhello		 h;
	const struct dmodule	*m;
	SSL			*ssl = NULL;
	char			 addr[ADDR_MAX], l1[DCONF_HELLO_MAX + 1];
	char			 l2[DCONF_HELLO_MAX + 1], *root = NULL;
	char			*root0 = NULL;
	char			 msg[300], why[256];
	char			*l3 = NULL, *state_dir = NULL;
	struct s2s_run		 run;
	struct s2s_login	 lg;
	const char		*what = NULL;
	long long		 deadline;
	int			 sv[2] = { -1, -1 }, to, r, ws, idle;
	int			 status = EXIT_ERROR;
	pid_t			 pid;

	memset(&run, 0, sizeof(run));
	daemon_peer(fd, addr);
	if (daemon_confine(d) != 0)
		goto out;
	if ((ssl = SSL_new(d->ctx)) == NULL || SSL_set_fd(ssl, fd) != 1) {
		ERRX("%s: cannot set up TLS: %s", addr, daemon_sslerr());
		goto out;
	}
	deadline = msync_now_ms() + d->conf.handshake_timeout * 1000LL;
	if ((r = tlspump_handshake(ssl, 1, deadline, &to)) != 0) {
		ERRX("%s: TLS handshake %s", addr, to ? "timed out" :
		    "failed");
		LOG2("%s: %s", addr, daemon_sslerr());
		goto out;
	}
	if ((r = tlspump_getline(ssl, l1, DCONF_HELLO_MAX, deadline,
	    &to)) != 0 || (r = tlspump_getline(ssl, l2, DCONF_HELLO_MAX,
	    deadline, &to)) != 0) {
		ERRX("%s: %s", addr, to ? "no greeting in time" :
		    "malformed greeting");
		goto out;
	}
	/* Server to server: the run's options on a third line. */
	if ((r = dhello_parse(l1, l2, &h)) == 0 && h.run &&
	    ((l3 = malloc(S2S_LINE_MAX + 1)) == NULL ||
	    (r = tlspump_getline(ssl, l3, S2S_LINE_MAX, deadline, &to)) != 0 ||
	    (r = s2s_parse(l3, &run)) != 0)) {
		ERRX("%s: %s", addr, to ? "no greeting in time" :
		    "malformed server-to-server greeting");
		explicit_bzero(l2, sizeof(l2));
		explicit_bzero(h.secret, sizeof(h.secret));
		(void)tlspump_write(ssl, "ERR malformed greeting\n", 23,
		    deadline);
		status = DAEMON_EXIT_AUTH;
		goto out;
	}
	if (r != 0) {
		ERRX("%s: malformed greeting '%s'", addr, log_esc(l1, 64));
		(void)tlspump_write(ssl, "ERR malformed greeting\n", 23,
		    deadline);
		status = DAEMON_EXIT_AUTH;
		goto out;
	}
	explicit_bzero(l2, sizeof(l2));
	if ((m = dconf_module(&d->conf, h.module)) == NULL ||
	    !daemon_login(d, ssl, m, &h, &what)) {
		ERRX("%s user %s module %s: login refused: %s", addr, h.user,
		    h.module, m == NULL ? "unknown module" : what);
		explicit_bzero(h.secret, sizeof(h.secret));
		daemon_nap(d->conf.auth_delay_ms);
		snprintf(msg, sizeof(msg), "ERR %s\n", m == NULL ?
		    "unknown module" : "authentication failed");
		(void)tlspump_write(ssl, msg, strlen(msg),
		    msync_now_ms() + 5000);
		status = DAEMON_EXIT_AUTH;
		goto out;
	}
	explicit_bzero(h.secret, sizeof(h.secret));
	if ((r = dconf_module_root(m, h.user, &root0)) != 0 ||
	    (r = dpath_resolve(root0, NULL, &root)) != 0) {
		ERRX("%s user %s module %s: store root '%s' refused: %s", addr,
		    h.user, h.module, root0 != NULL ? root0 : m->path,
		    r == MSYNC_ERR_BADNAME ? "a symbolic link or not a "
		    "directory" : msync_strerror(r));
		(void)tlspump_write(ssl, "ERR store root refused\n", 23,
		    deadline);
		goto out;
	}
	if (h.run) {
		memset(&lg, 0, sizeof(lg));
		lg.addr = addr;
		lg.user = h.user;
		lg.module = h.module;
		lg.root = root;
		lg.read_only = m->read_only;
		if (asprintf(&state_dir, "%s/s2s", getenv("XDG_CACHE_HOME") !=
		    NULL ? getenv("XDG_CACHE_HOME") : "/var/cache/msync") < 0) {
			state_dir = NULL;
			goto out;
		}
		lg.state_dir = state_dir;
		if ((r = s2s_check(&run, &lg, why, sizeof(why))) != 0) {
			ERRX("%s user %s module %s: server to server refused: "
			    "%s", addr, h.user, h.module, why);
			snprintf(msg, sizeof(msg), "ERR %s\n", why);
			(void)tlspump_write(ssl, msg, strlen(msg), deadline);
			goto out;
		}
	}
	if ((r = tlspump_write(ssl, "OK\n", 3, deadline)) != 0)
		goto out;
	LOG1("%s user %s module %s: logged in%s%s", addr, h.user, h.module,
	    m->read_only ? " (read-only)" : "", h.run ?
	    ", server to server: side A" : "");

	r = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    (pid = fork()) == -1) {
		ERR("%s: cannot start the server brain", addr);
		goto out;
	}
	if (pid == 0 && h.run) {
		close(sv[0]);
		close(fd);
		_exit(s2s_serve(&run, &lg, sv[1]));
	}
	if (pid == 0) {
		close(sv[0]);
		close(fd);
		memset(&so, 0, sizeof(so));
		so.module_root = root;
		so.read_only = m->read_only;
		so.lock_wait = 10;
		/*
		 * The client's default idle timeout: so that this side
		 * sends keepalives while it does long local work, and a
		 * client waiting on it does not give up.
		 */
		so.timeout = MSYNC_TIMEOUT_DEFAULT;
		_exit(brain_server(&so, sv[1], sv[1]));
	}
	close(sv[1]);
	sv[1] = -1;
	r = tlspump_run(ssl, sv[0], d->conf.timeout, &ps, &idle);
	close(sv[0]);
	sv[0] = -1;
	if (r != 0) {
		ERRX("%s user %s module %s: %s", addr, h.user, h.module,
		    idle ? "idle timeout: closing" : "connection lost");
		kill(pid, SIGTERM);
	}
	while (waitpid(pid, &ws, 0) == -1 && errno == EINTR)
		;
	status = WIFEXITED(ws) ? WEXITSTATUS(ws) : EXIT_ERROR;
	LOG1("%s user %s module %s: done, status %d, %llu bytes in, %llu "
	    "out", addr, h.user, h.module, status,
	    (unsigned long long)ps.net_in, (unsigned long long)ps.net_out);
out:
	if (ssl != NULL)
		SSL_free(ssl);
	free(root);
	free(root0);
	free(l3);
	free(state_dir);
	s2s_free(&run);
	close(fd);
	return status;
}

/* The failure record for addr, or a free (or the oldest) slot. */
static struct failrec *
daemon_failrec(struct daemon *d, const char *addr, int create)
{
	struct failrec	*old = &d->fails[0];
	size_t		 i;

	for (i = 0; i < FAIL_SLOTS; i++) {
		if (d->fails[i].count > 0 &&
		    strcmp(d->fails[i].addr, addr) == 0)
			return &d->fails[i];
		if (d->fails[i].first < old->first)
			old = &d->fails[i];
	}
	if (!create)
		return NULL;
	memset(old, 0, sizeof(*old));
	snprintf(old->addr, sizeof(old->addr), "%s", addr);
	return old;
}

/* Reaps finished connection processes; counts failed logins. */
static void
daemon_reap(struct daemon *d)
{
	struct failrec	*f;
	pid_t		 pid;
	int		 ws, i;

	while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
		for (i = 0; i < d->conf.max_conn; i++) {
			if (d->kids[i].pid != pid)
				continue;
			d->kids[i].pid = 0;
			if (!WIFEXITED(ws) ||
			    WEXITSTATUS(ws) != DAEMON_EXIT_AUTH)
				break;
			f = daemon_failrec(d, d->kids[i].addr, 1);
			if (f->count == 0 || time(NULL) - f->first >
			    d->conf.fail_window) {
				f->count = 0;
				f->first = time(NULL);
			}
			f->count++;
			break;
		}
	}
}

/*
 * Decides whether to serve a new connection from addr.  Returns NULL
 * to serve it, or why not.
 */
static const char *
daemon_admit(struct daemon *d, const char *addr, int *slot)
{
	struct failrec	*f;
	int		 i, total = 0, here = 0;

	*slot = -1;
	if ((f = daemon_failrec(d, addr, 0)) != NULL) {
		if (time(NULL) - f->first > d->conf.fail_window)
			f->count = 0;
		else if (f->count >= d->conf.max_auth_fail)
			return "too many failed logins: throttled";
	}
	for (i = 0; i < d->conf.max_conn; i++) {
		if (d->kids[i].pid == 0) {
			if (*slot == -1)
				*slot = i;
			continue;
		}
		total++;
		if (strcmp(d->kids[i].addr, addr) == 0)
			here++;
	}
	if (total >= d->conf.max_conn)
		return "too many connections";
	if (here >= d->conf.max_per_addr)
		return "too many connections from this address";
	return NULL;
}

/*
 * Logs a refused connection, but one line per address and reason per
 * REFUSE_QUIET_S seconds: a flood must not become a flood of log lines.
 */
static void
daemon_refused(const char *addr, const char *why)
{
	static char	 last_addr[ADDR_MAX];
	static const char *last_why;
	static time_t	 last_t;
	static unsigned long quiet;
	time_t		 now = time(NULL);

	if (last_why == why && strcmp(last_addr, addr) == 0 &&
	    now - last_t < REFUSE_QUIET_S) {
		quiet++;
		return;
	}
	if (quiet > 0)
		WARNX("%s: refused %lu more: %s", last_addr, quiet, last_why);
	WARNX("%s: refused: %s", addr, why);
	snprintf(last_addr, sizeof(last_addr), "%s", addr);
	last_why = why;
	last_t = now;
	quiet = 0;
}

/* The accept loop on a listening socket. */
static int
daemon_loop(struct daemon *d, int lfd)
{
	struct pollfd	 pf;
	char		 addr[ADDR_MAX];
	const char	*no;
	int		 fd, slot;
	pid_t		 pid;

	if ((d->kids = calloc((size_t)d->conf.max_conn,
	    sizeof(*d->kids))) == NULL) {
		ERR("calloc");
		return EXIT_ERROR;
	}
	pf.fd = lfd;
	pf.events = POLLIN;
	while (!stopping) {
		daemon_reap(d);
		if (poll(&pf, 1, 1000) <= 0)
			continue;
		if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) == -1)
			continue;
		daemon_peer(fd, addr);
		daemon_reap(d);
		if ((no = daemon_admit(d, addr, &slot)) != NULL) {
			daemon_refused(addr, no);
			close(fd);
			continue;
		}
		if ((pid = fork()) == -1) {
			WARN("%s: refused: cannot fork", addr);
			close(fd);
			continue;
		}
		if (pid == 0) {
			close(lfd);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			_exit(daemon_conn(d, fd));
		}
		close(fd);
		d->kids[slot].pid = pid;
		snprintf(d->kids[slot].addr, sizeof(d->kids[slot].addr), "%s",
		    addr);
	}
	LOG1("stopping");
	return 0;
}

/* Opens the listening socket from the config. */
static int
daemon_listen(const struct daemon *d)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	char		 port[16];
	int		 fd = -1, one = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", d->conf.port);
	if ((e = getaddrinfo(d->conf.address, port, &hints, &res)) != 0) {
		ERRX("cannot resolve listen address '%s': %s",
		    d->conf.address != NULL ? d->conf.address : "*",
		    gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol)) == -1)
			continue;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		ERR("cannot listen on %s port %d", d->conf.address != NULL ?
		    d->conf.address : "*", d->conf.port);
	return fd;
}

/*
 * The socket systemd passed (LISTEN_FDS=1 for this process), or -1.
 * *accepting says whether it is a listening socket.
 */
static int
daemon_systemd_fd(int *accepting)
{
	const char	*pidv = getenv("LISTEN_PID"), *nv = getenv("LISTEN_FDS");
	socklen_t	 sl = sizeof(*accepting);

	*accepting = 0;
	if (pidv == NULL || nv == NULL || atol(pidv) != (long)getpid())
		return -1;
	if (atoi(nv) != 1) {
		WARNX("systemd passed %s sockets; using the first", nv);
		if (atoi(nv) < 1)
			return -1;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, accepting, &sl) == -1)
		return -1;
	return 3;
}

int
daemon_main(const char *config_path)
{
	struct daemon	*d;
	char		 err[512], *why = NULL;
	int		 lfd, accepting, status;

	log_set_prefix("msyncd");
	signal(SIGPIPE, SIG_IGN);
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		ERR("calloc");
		return EXIT_ERROR;
	}
	if (dconf_load(config_path, &d->conf, err, sizeof(err)) != 0) {
		ERRX("%s: %s", config_path, err);
		free(d);
		return EXIT_USAGE;
	}
	if (d->conf.syslog) {
		openlog("msyncd", LOG_PID, LOG_DAEMON);
		log_set_sink(daemon_syslog, NULL);
	}
	/* TLS is always on: without OpenSSL there is nothing to serve. */
	if (ossl_load(&why) != 0) {
		ERRX("%s", why != NULL ? why : "cannot load OpenSSL");
		free(why);
		status = EXIT_UNREACH;
		goto out;
	}
	status = EXIT_USAGE;
	if (daemon_tls(d) != 0 || daemon_ids(d) != 0 ||
	    daemon_cachedir(d) != 0)
		goto out;
	if ((lfd = daemon_systemd_fd(&accepting)) != -1 && !accepting) {
		/* msyncd@.service: one connection, on fd 3. */
		status = daemon_conn(d, lfd);
		goto out;
	}
	status = EXIT_ERROR;
	if (lfd == -1 && (lfd = daemon_listen(d)) == -1)
		goto out;
	signal(SIGTERM, daemon_onsignal);
	signal(SIGINT, daemon_onsignal);
	LOG1("listening on %s port %d, %zu modules",
	    d->conf.address != NULL ? d->conf.address : "*", d->conf.port,
	    d->conf.nmods);
	status = daemon_loop(d, lfd);
	close(lfd);
out:
	if (d->ctx != NULL)
		SSL_CTX_free(d->ctx);
	dconf_free(&d->conf);
	free(d->kids);
	free(d);
	return status;
}
