/*
 * s2s.c — server to server between two msync daemons (see s2s.h and
 * docs/DAEMON.md, "Server to server").
 *
 *   client msync                 daemon 1                 daemon 2
 *   t[0]: TLS, RUN line  ──>  pump ── mux ── side A
 *         <── frames ───                      (its module)
 *   relay (this file)
 *   t[1]: TLS, plain     ──>  pump ── side B (server brain, as today)
 *
 * The client's relay copies the payload of DATA frames from daemon 1 to
 * daemon 2, and daemon 2's bytes to daemon 1 as they are.  Each
 * direction has one bounded buffer, and a direction whose reader is slow
 * stops being read: nothing is buffered without bound.
 *
 * The RUN line: "RUN key=value ..." with each value percent-encoded
 * (bytes up to space, '%' and DEL as %XX).  The keys are exactly those
 * of struct s2s_run; daemon 1 takes nothing else from the client.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brain.h"
#include "dpath.h"
#include "log.h"
#include "msync.h"
#include "remote.h"
#include "s2s.h"
#include "state.h"
#include "store.h"
#include "transport.h"

#define S2S_BUF		(64 * 1024)	/* raw bytes buffered each way */

/* --- the RUN line ------------------------------------------------------ */

/* Appends " key=" and v, percent-encoded, to the growing line. */
static int
s2s_put(char **line, size_t *len, const char *key, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		 need = strlen(key) + 2 + 3 * strlen(v) + 1;
	char		*p, *o;

	if (*len + need > S2S_LINE_MAX + 1)
		return MSYNC_ERR_TOOBIG;
	if ((p = realloc(*line, *len + need)) == NULL)
		return MSYNC_ERR_NOMEM;
	*line = p;
	o = p + *len;
	o += sprintf(o, " %s=", key);
	for (; *v != '\0'; v++) {
		unsigned char	 c = (unsigned char)*v;

		if (c <= ' ' || c == '%' || c == 0x7f) {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else
			*o++ = (char)c;
	}
	*o = '\0';
	*len = (size_t)(o - p);
	return 0;
}

static int
s2s_putn(char **line, size_t *len, const char *key, unsigned long long n)
{
	char	 b[32];

	snprintf(b, sizeof(b), "%llu", n);
	return s2s_put(line, len, key, b);
}

int
s2s_encode(const struct s2s_run *r, char **line)
{
	static const char *modes[] = { "twoway", "backup", "oneway" };
	size_t	 len, i;
	int	 e = 0;

	*line = NULL;
	if (r->mode < 0 || r->mode > 2 || r->path_a == NULL ||
	    r->path_b == NULL || r->other == NULL)
		return MSYNC_ERR_INTERNAL;
	if ((*line = strdup("RUN")) == NULL)
		return MSYNC_ERR_NOMEM;
	len = 3;
	e = e ? e : s2s_put(line, &len, "mode", modes[r->mode]);
	e = e ? e : s2s_putn(line, &len, "dry", r->dry_run != 0);
	e = e ? e : s2s_putn(line, &len, "force", r->force_deletes != 0);
	e = e ? e : s2s_putn(line, &len, "full", r->full != 0);
	e = e ? e : s2s_putn(line, &len, "stats", r->stats != 0);
	e = e ? e : s2s_putn(line, &len, "v", (unsigned)(r->verbose < 0 ? 0 :
	    r->verbose > 2 ? 2 : r->verbose));
	e = e ? e : s2s_putn(line, &len, "z", r->compress != 0);
	e = e ? e : s2s_putn(line, &len, "timeout", (unsigned)r->timeout);
	e = e ? e : s2s_putn(line, &len, "lockwait", (unsigned)r->lock_wait);
	e = e ? e : s2s_putn(line, &len, "bwlimit", r->bwlimit);
	e = e ? e : s2s_put(line, &len, "a", r->path_a);
	e = e ? e : s2s_putn(line, &len, "la", (unsigned)r->layout_a);
	e = e ? e : s2s_put(line, &len, "b", r->path_b);
	e = e ? e : s2s_putn(line, &len, "lb", (unsigned)r->layout_b);
	e = e ? e : s2s_put(line, &len, "other", r->other);
	for (i = 0; e == 0 && i < r->ninclude; i++)
		e = s2s_put(line, &len, "m", r->include[i]);
	for (i = 0; e == 0 && i < r->nexclude; i++)
		e = s2s_put(line, &len, "x", r->exclude[i]);
	if (e == 0 && (r->ninclude > S2S_PATTERNS_MAX ||
	    r->nexclude > S2S_PATTERNS_MAX))
		e = MSYNC_ERR_TOOBIG;
	if (e != 0) {
		free(*line);
		*line = NULL;
	}
	return e;
}

static int
s2s_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes n bytes of a percent-encoded value into a new string. */
static int
s2s_decode(const char *s, size_t n, char **out)
{
	char	*o;
	size_t	 i, k = 0;
	int	 hi, lo;

	*out = NULL;
	if (n > 3 * S2S_VALUE_MAX)
		return MSYNC_ERR_PROTO;
	if ((o = malloc(n + 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; i < n; i++) {
		unsigned char	 c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= n) {
				free(o);
				return MSYNC_ERR_PROTO;
			}
			if ((hi = s2s_hex(s[i + 1])) < 0 ||
			    (lo = s2s_hex(s[i + 2])) < 0) {
				free(o);
				return MSYNC_ERR_PROTO;
			}
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (c < ' ' || c == 0x7f) {
			free(o);
			return MSYNC_ERR_BADNAME;
		}
		o[k++] = (char)c;
	}
	o[k] = '\0';
	if (k > S2S_VALUE_MAX) {
		free(o);
		return MSYNC_ERR_PROTO;
	}
	*out = o;
	return 0;
}

/* A decimal number in [0, max]; -1 when it is not one. */
static long long
s2s_num(const char *v, long long max)
{
	long long	 n = 0;

	if (*v == '\0' || strlen(v) > 20)
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		if (n > (LLONG_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*v - '0');
	}
	return n <= max ? n : -1;
}

/* Adds a pattern to a list of at most S2S_PATTERNS_MAX (takes v). */
static int
s2s_addpat(char ***list, size_t *n, char *v)
{
	char	**l;

	if (*n >= S2S_PATTERNS_MAX || *v == '\0') {
		free(v);
		return MSYNC_ERR_PROTO;
	}
	if ((l = reallocarray(*list, *n + 1, sizeof(*l))) == NULL) {
		free(v);
		return MSYNC_ERR_NOMEM;
	}
	*list = l;
	l[(*n)++] = v;
	return 0;
}

void
s2s_free(struct s2s_run *r)
{
	size_t	 i;

	free(r->path_a);
	free(r->path_b);
	free(r->other);
	for (i = 0; i < r->ninclude; i++)
		free(r->include[i]);
	for (i = 0; i < r->nexclude; i++)
		free(r->exclude[i]);
	free(r->include);
	free(r->exclude);
	memset(r, 0, sizeof(*r));
}

int
s2s_parse(const char *line, struct s2s_run *r)
{
	/* Numeric keys, their field and their largest value. */
	struct {
		const char	*key;
		int		*field;
		long long	 max;
	} nums[] = {
		{ "dry", &r->dry_run, 1 }, { "force", &r->force_deletes, 1 },
		{ "full", &r->full, 1 }, { "stats", &r->stats, 1 },
		{ "v", &r->verbose, 2 }, { "z", &r->compress, 1 },
		{ "timeout", &r->timeout, 86400 },
		{ "lockwait", &r->lock_wait, 600 },
		{ "la", &r->layout_a, STORE_LAYOUT_MAX },
		{ "lb", &r->layout_b, STORE_LAYOUT_MAX },
	};
	const size_t	 nnums = sizeof(nums) / sizeof(nums[0]);
	unsigned	 seen = 0;	/* bit per nums[] entry, then others */
	const char	*p, *eq, *end;
	char		*v = NULL, key[16];
	long long	 n;
	size_t		 i, kl;
	int		 e;

	memset(r, 0, sizeof(*r));
	if (strlen(line) > S2S_LINE_MAX || strncmp(line, "RUN", 3) != 0)
		return MSYNC_ERR_PROTO;
	r->mode = -1;
	for (p = line + 3; *p != '\0'; p = end) {
		if (*p++ != ' ')
			goto proto;
		end = p + strcspn(p, " ");
		if ((eq = memchr(p, '=', (size_t)(end - p))) == NULL ||
		    (kl = (size_t)(eq - p)) == 0 || kl >= sizeof(key))
			goto proto;
		memcpy(key, p, kl);
		key[kl] = '\0';
		if ((e = s2s_decode(eq + 1, (size_t)(end - eq - 1), &v)) != 0)
			goto fail;
		for (i = 0; i < nnums; i++)
			if (strcmp(key, nums[i].key) == 0)
				break;
		if (i < nnums) {
			if ((seen & 1u << i) ||
			    (n = s2s_num(v, nums[i].max)) < 0)
				goto proto;
			seen |= 1u << i;
			*nums[i].field = (int)n;
		} else if (strcmp(key, "mode") == 0 && r->mode == -1) {
			r->mode = strcmp(v, "twoway") == 0 ? MODE_TWOWAY :
			    strcmp(v, "backup") == 0 ? MODE_BACKUP :
			    strcmp(v, "oneway") == 0 ? MODE_ONEWAY : -1;
			if (r->mode == -1)
				goto proto;
		} else if (strcmp(key, "bwlimit") == 0 &&
		    !(seen & 1u << 20)) {
			if ((n = s2s_num(v, LLONG_MAX / 2)) < 0)
				goto proto;
			seen |= 1u << 20;
			r->bwlimit = (uint64_t)n;
		} else if (strcmp(key, "a") == 0 && r->path_a == NULL) {
			r->path_a = v;
			v = NULL;
		} else if (strcmp(key, "b") == 0 && r->path_b == NULL) {
			r->path_b = v;
			v = NULL;
		} else if (strcmp(key, "other") == 0 && r->other == NULL) {
			r->other = v;
			v = NULL;
		} else if (strcmp(key, "m") == 0) {
			e = s2s_addpat(&r->include, &r->ninclude, v);
			v = NULL;
			if (e != 0)
				goto fail;
		} else if (strcmp(key, "x") == 0) {
			e = s2s_addpat(&r->exclude, &r->nexclude, v);
			v = NULL;
			if (e != 0)
				goto fail;
		} else
			goto proto;
		free(v);
		v = NULL;
	}
	if (r->mode == -1 || r->path_a == NULL || r->path_b == NULL ||
	    r->other == NULL || seen != (((1u << nnums) - 1) | 1u << 20))
		goto proto;
	return 0;
proto:
	e = MSYNC_ERR_PROTO;
fail:
	free(v);
	s2s_free(r);
	return e;
}

/* --- daemon 1 ---------------------------------------------------------- */

int
s2s_check(const struct s2s_run *r, const struct s2s_login *lg, char *why,
    size_t whylen)
{
	char	*root = NULL;
	int	 e;

	/* Side A is always the source: only two-way writes it. */
	if (lg->read_only && r->mode == MODE_TWOWAY) {
		snprintf(why, whylen, "module is read-only: it can only be "
		    "the source of --backup or --one-way");
		return MSYNC_ERR_READONLY;
	}
	/*
	 * An IMAP "path" would make this daemon a client of any server
	 * the user names; a store here is a Maildir or an mbox.
	 */
	if (r->layout_a == LAYOUT_IMAP || r->layout_b == LAYOUT_IMAP) {
		snprintf(why, whylen, "no IMAP stores between daemons");
		return MSYNC_ERR_USAGE;
	}
	if ((e = dpath_resolve(lg->root, r->path_a, &root)) != 0) {
		snprintf(why, whylen, "store path refused");
		return e;
	}
	free(root);
	return 0;
}

/* The result's numbers, in the order of the R frame's text. */
static void
s2s_res_fields(struct brain_result *res, uint64_t *f[S2S_RES_FIELDS])
{
	int	 i = 0, s;

	for (s = 0; s < 2; s++) {
		f[i++] = &res->st.copied[s];
		f[i++] = &res->st.copied_bytes[s];
		f[i++] = &res->st.local[s];
		f[i++] = &res->st.flags[s];
		f[i++] = &res->st.expunged[s];
		f[i++] = &res->st.mb_created[s];
		f[i++] = &res->st.mb_renamed[s];
		f[i++] = &res->st.mb_deleted[s];
	}
	f[i++] = &res->wire_out;
	f[i++] = &res->raw_out;
	f[i++] = &res->wire_in;
	f[i] = &res->raw_in;
}

/*
 * Side A, in the grandchild: its stderr (and stdout) is errfd; what the
 * run did (for the client's --json) goes to resfd as one line of
 * numbers: ran, compressed, then s2s_res_fields.
 */
static int
s2s_side_a(const struct s2s_run *r, const struct s2s_login *lg, int sock,
    int errfd, int resfd)
{
	struct brain_result	 res;
	uint64_t		*f[S2S_RES_FIELDS];
	char			 line[S2S_RES_MAX + 1];
	size_t			 n;
	int			 i;
	struct brain_opts	 bo;
	char			*root = NULL, *key = NULL, *state = NULL;
	int			 layout, e, fd;

	if ((fd = open("/dev/null", O_RDONLY)) != -1) {
		(void)dup2(fd, STDIN_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (dup2(errfd, STDOUT_FILENO) == -1 ||
	    dup2(errfd, STDERR_FILENO) == -1)
		return EXIT_ERROR;
	if (errfd > STDERR_FILENO)
		close(errfd);
	/* What side A says goes to the client, not to the daemon's log. */
	log_set_sink(NULL, NULL);
	log_set_prefix(lg->module);
	log_verbosity = r->verbose;
	if ((e = dpath_resolve(lg->root, r->path_a, &root)) != 0) {
		ERRC(e, "store path refused");
		return EXIT_NOPERM;
	}
	/*
	 * The pair's state: keyed by who asked (user and module), the
	 * store here, and the other location as the client named it.  Only
	 * a hash of the key names the file, so no text from the client
	 * reaches a path.
	 */
	if (asprintf(&key, "msyncd:%s/%s/%s", lg->user, lg->module,
	    r->path_a) < 0 || (e = msync_mkdirs(lg->state_dir)) != 0 ||
	    (e = state_path(lg->state_dir, key, r->other, &state)) != 0) {
		ERRX("cannot find a place for the sync state");
		free(key);
		free(root);
		return EXIT_ERROR;
	}
	layout = r->layout_a;
	if (layout == LAYOUT_MAILDIRPP)
		(void)store_detect(root, &layout);
	memset(&bo, 0, sizeof(bo));
	bo.mode = (enum sync_mode)r->mode;
	bo.src = SIDE_A;
	bo.dry_run = r->dry_run;
	bo.force_deletes = r->force_deletes;
	bo.full = r->full;
	bo.stats = r->stats;
	bo.compress = r->compress;
	bo.bwlimit = r->bwlimit;
	bo.lock_wait = r->lock_wait;
	bo.timeout = r->timeout;
	bo.include = r->include;
	bo.ninclude = r->ninclude;
	bo.exclude = r->exclude;
	bo.nexclude = r->nexclude;
	bo.path[SIDE_A] = root;
	bo.path[SIDE_B] = r->path_b;
	bo.layout[SIDE_A] = layout;
	bo.layout[SIDE_B] = r->layout_b;
	bo.state_path = state;
	memset(&res, 0, sizeof(res));
	bo.result = &res;
	e = brain_client(&bo, sock, sock);
	s2s_res_fields(&res, f);
	n = (size_t)snprintf(line, sizeof(line), "%d %d", res.ran != 0,
	    res.compressed != 0);
	for (i = 0; i < S2S_RES_FIELDS && n < sizeof(line); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %llu",
		    (unsigned long long)*f[i]);
	if (n < sizeof(line))
		(void)write(resfd, line, n);
	free(key);
	free(state);
	free(root);
	return e;
}

static void
s2s_nonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) != -1)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void
s2s_hdr(unsigned char *h, int type, size_t len)
{
	h[0] = (unsigned char)type;
	h[1] = (unsigned char)(len >> 24);
	h[2] = (unsigned char)(len >> 16);
	h[3] = (unsigned char)(len >> 8);
	h[4] = (unsigned char)len;
}

/* A bounded byte queue. */
struct s2s_q {
	unsigned char	*b;
	size_t		 cap, off, len;
};

static size_t
s2s_room(struct s2s_q *q)
{
	if (q->len == 0)
		q->off = 0;
	else if (q->off > 0 && q->off + q->len > q->cap / 2) {
		memmove(q->b, q->b + q->off, q->len);
		q->off = 0;
	}
	return q->cap - q->off - q->len;
}

/*
 * Writes what q holds to fd (non-blocking).  Returns 1 on progress, 0
 * when fd would block or q is empty, -1 when fd is gone.
 */
static int
s2s_drain(struct s2s_q *q, int fd)
{
	ssize_t	 k;

	if (q->len == 0)
		return 0;
	k = write(fd, q->b + q->off, q->len);
	if (k > 0) {
		q->off += (size_t)k;
		q->len -= (size_t)k;
		return 1;
	}
	if (k == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return -1;
}

/*
 * Reads from fd into a new frame of the given type at q's end, when q
 * has room for one.  Returns 1 on data, 0 when nothing came or there is
 * no room, 2 at EOF, -1 on error.
 */
static int
s2s_frame_in(struct s2s_q *q, int fd, int type)
{
	size_t	 room = s2s_room(q), want;
	ssize_t	 k;

	if (room < S2S_HDR + 512)
		return 0;
	want = room - S2S_HDR;
	if (want > S2S_FRAME_MAX)
		want = S2S_FRAME_MAX;
	k = read(fd, q->b + q->off + q->len + S2S_HDR, want);
	if (k > 0) {
		s2s_hdr(q->b + q->off + q->len, type, (size_t)k);
		q->len += S2S_HDR + (size_t)k;
		return 1;
	}
	if (k == 0 || (k == -1 && errno == ECONNRESET))
		return 2;
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	return -1;
}

int
s2s_serve(const struct s2s_run *r, const struct s2s_login *lg, int up)
{
	static unsigned char	 ob[2 * (S2S_HDR + S2S_FRAME_MAX)];
	static unsigned char	 ib[S2S_BUF];
	struct s2s_q		 out = { ob, sizeof(ob), 0, 0 };
	struct s2s_q		 in = { ib, sizeof(ib), 0, 0 };
	struct pollfd		 pf[3];
	int			 sv[2] = { -1, -1 }, ep[2] = { -1, -1 };
	int			 rp[2] = { -1, -1 };
	char			 res[S2S_RES_MAX];
	size_t			 rn;
	int			 a_eof = 0, e_eof = 0, up_eof = 0, a_shut = 0;
	int			 ws, st = EXIT_ERROR, k, progress, sent = 0;
	int			 room;
	pid_t			 pid;
	ssize_t			 n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    pipe2(ep, O_CLOEXEC) == -1 || pipe2(rp, O_CLOEXEC) == -1 ||
	    (pid = fork()) == -1) {
		ERR("%s user %s module %s: cannot start side A", lg->addr,
		    lg->user, lg->module);
		return EXIT_ERROR;
	}
	if (pid == 0) {
		close(up);
		close(sv[0]);
		close(ep[0]);
		close(rp[0]);
		_exit(s2s_side_a(r, lg, sv[1], ep[1], rp[1]));
	}
	close(sv[1]);
	close(ep[1]);
	close(rp[1]);
	s2s_nonblock(sv[0]);
	s2s_nonblock(ep[0]);
	s2s_nonblock(up);
	for (;;) {
		do {
			progress = 0;
			/* The client's (daemon 2's) bytes to side A. */
			if (!up_eof && s2s_room(&in) > 0) {
				n = read(up, in.b + in.off + in.len,
				    s2s_room(&in));
				if (n > 0) {
					in.len += (size_t)n;
					progress = 1;
				} else if (n == 0 || (errno != EAGAIN &&
				    errno != EINTR))
					up_eof = progress = 1;
			}
			if ((k = s2s_drain(&in, sv[0])) < 0)
				in.len = 0, up_eof = 1;
			progress |= k > 0;
			if (up_eof && in.len == 0 && !a_shut) {
				(void)shutdown(sv[0], SHUT_WR);
				a_shut = 1;
			}
			/* Side A's messages first: they are small. */
			if (!e_eof) {
				k = s2s_frame_in(&out, ep[0], S2S_F_TEXT);
				e_eof = k == 2 || k < 0;
				progress |= k != 0;
			}
			if (!a_eof) {
				k = s2s_frame_in(&out, sv[0], S2S_F_DATA);
				a_eof = k == 2 || k < 0;
				progress |= k != 0;
			}
			if (a_eof && e_eof && !sent &&
			    s2s_room(&out) >= 2 * S2S_HDR + 4 + S2S_RES_MAX) {
				while (waitpid(pid, &ws, 0) == -1 &&
				    errno == EINTR)
					;
				st = WIFEXITED(ws) ? WEXITSTATUS(ws) :
				    EXIT_TEMPFAIL;
				/* Side A is gone: its result line is whole. */
				for (rn = 0; rn < sizeof(res); rn += (size_t)n)
					if ((n = read(rp[0], res + rn,
					    sizeof(res) - rn)) <= 0)
						break;
				if (rn > 0 && rn < sizeof(res)) {
					(void)s2s_room(&out);
					s2s_hdr(out.b + out.off + out.len,
					    S2S_F_RESULT, rn);
					memcpy(out.b + out.off + out.len +
					    S2S_HDR, res, rn);
					out.len += S2S_HDR + rn;
				}
				(void)s2s_room(&out);
				s2s_hdr(out.b + out.off + out.len, S2S_F_EXIT, 4);
				out.b[out.off + out.len + 5] = 0;
				out.b[out.off + out.len + 6] = 0;
				out.b[out.off + out.len + 7] = 0;
				out.b[out.off + out.len + 8] = (unsigned char)st;
				out.len += S2S_HDR + 4;
				sent = progress = 1;
			}
			if ((k = s2s_drain(&out, up)) < 0)
				goto gone;
			progress |= k > 0;
		} while (progress);
		if (sent && out.len == 0)
			break;
		pf[0].fd = up;
		pf[0].events = (short)((!up_eof && s2s_room(&in) > 0 ?
		    POLLIN : 0) | (out.len > 0 ? POLLOUT : 0));
		/*
		 * Side A is read only while a frame fits: when the client is
		 * slow, side A blocks on its socket, and we do not spin.
		 */
		room = s2s_room(&out) >= S2S_HDR + 512;
		pf[1].fd = sv[0];
		pf[1].events = (short)((!a_eof && room ? POLLIN : 0) |
		    (in.len > 0 ? POLLOUT : 0));
		pf[2].fd = e_eof || !room ? -1 : ep[0];
		pf[2].events = POLLIN;
		if (a_eof)
			pf[1].fd = in.len > 0 ? sv[0] : -1;
		/* A hung-up fd we wait nothing from must not wake us. */
		for (k = 0; k < 3; k++)
			if (pf[k].events == 0)
				pf[k].fd = -1;
		if (poll(pf, 3, 1000) == -1 && errno != EINTR)
			goto gone;
	}
	close(sv[0]);
	close(ep[0]);
	close(rp[0]);
	return st;
gone:
	/* The client is gone: side A sees its end close and stops. */
	close(sv[0]);
	close(ep[0]);
	close(rp[0]);
	if (!sent) {
		kill(pid, SIGTERM);
		while (waitpid(pid, &ws, 0) == -1 && errno == EINTR)
			;
	}
	return EXIT_TEMPFAIL;
}

/* --- the client's relay ------------------------------------------------ */

/* Writes all of buf to fd (stderr: blocking is fine). */
static void
s2s_write_all(int fd, const unsigned char *b, size_t n)
{
	ssize_t	 k;

	while (n > 0) {
		k = write(fd, b, n);
		if (k <= 0) {
			if (k == -1 && errno == EINTR)
				continue;
			return;
		}
		b += k;
		n -= (size_t)k;
	}
}

/*
 * Parses an R frame's text into res: exactly 2 + S2S_RES_FIELDS decimal
 * numbers.  Returns 0 or -1.
 */
static int
s2s_res_parse(const unsigned char *p, size_t len, struct brain_result *res)
{
	struct brain_result	 r;
	uint64_t		*f[S2S_RES_FIELDS];
	char			 text[S2S_RES_MAX + 1], *s, *end;
	unsigned long long	 v;
	int			 i;

	if (len == 0 || len > S2S_RES_MAX)
		return -1;
	memcpy(text, p, len);
	text[len] = '\0';
	memset(&r, 0, sizeof(r));
	s2s_res_fields(&r, f);
	s = text;
	for (i = -2; i < S2S_RES_FIELDS; i++) {
		if (*s < '0' || *s > '9')
			return -1;
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno != 0 || end - s > 20 || (*end != ' ' &&
		    *end != '\0') || (*end == '\0') != (i == S2S_RES_FIELDS - 1))
			return -1;
		if (i < 0 && v > 1)
			return -1;
		if (i == -2)
			r.ran = (int)v;
		else if (i == -1)
			r.compressed = (int)v;
		else
			*f[i] = v;
		s = *end == ' ' ? end + 1 : end;
	}
	if (res != NULL)
		*res = r;
	return 0;
}

int
s2s_relay(int d1, int d2, int idle_s, struct brain_result *res)
{
	static unsigned char	 b1[S2S_HDR + S2S_FRAME_MAX];
	static unsigned char	 b2[S2S_FRAME_MAX], b3[S2S_BUF];
	struct s2s_q		 fin = { b1, sizeof(b1), 0, 0 };	/* d1 -> */
	struct s2s_q		 to2 = { b2, sizeof(b2), 0, 0 };	/* -> d2 */
	struct s2s_q		 to1 = { b3, sizeof(b3), 0, 0 };	/* d2 -> d1 */
	struct pollfd		 pf[2];
	long long		 last = msync_now_ms();
	size_t			 len;
	ssize_t			 n;
	int			 d1_eof = 0, d2_eof = 0, d1_shut = 0;
	int			 d2_shut = 0, st = -1, progress, k, type;
	const unsigned char	*h;

	s2s_nonblock(d1);
	s2s_nonblock(d2);
	for (;;) {
		do {
			progress = 0;
			/* Frames from daemon 1. */
			if (!d1_eof && st < 0 && s2s_room(&fin) > 0) {
				n = read(d1, fin.b + fin.off + fin.len,
				    s2s_room(&fin));
				if (n > 0) {
					fin.len += (size_t)n;
					progress = 1;
				} else if (n == 0 || (errno != EAGAIN &&
				    errno != EINTR))
					d1_eof = progress = 1;
			}
			while (fin.len >= S2S_HDR && st < 0) {
				h = fin.b + fin.off;
				type = h[0];
				len = (size_t)h[1] << 24 | (size_t)h[2] << 16 |
				    (size_t)h[3] << 8 | h[4];
				if (len > S2S_FRAME_MAX || (type != S2S_F_DATA &&
				    type != S2S_F_TEXT && type != S2S_F_EXIT &&
				    type != S2S_F_RESULT) ||
				    (type == S2S_F_EXIT && len != 4) ||
				    (type == S2S_F_RESULT && len > S2S_RES_MAX))
					return -2;
				if (fin.len < S2S_HDR + len)
					break;
				if (type == S2S_F_DATA) {
					if (d2_shut)
						;	/* daemon 2 is gone */
					else if (s2s_room(&to2) < len)
						break;
					else {
						memcpy(to2.b + to2.off + to2.len,
						    h + S2S_HDR, len);
						to2.len += len;
					}
				} else if (type == S2S_F_TEXT)
					s2s_write_all(STDERR_FILENO,
					    h + S2S_HDR, len);
				else if (type == S2S_F_RESULT) {
					if (s2s_res_parse(h + S2S_HDR, len,
					    res) != 0)
						return -2;
				}
				else if (h[5] != 0 || h[6] != 0 || h[7] != 0)
					return -2;
				else
					st = h[8];
				fin.off += S2S_HDR + len;
				fin.len -= S2S_HDR + len;
				progress = 1;
			}
			if (!d2_shut && (k = s2s_drain(&to2, d2)) < 0) {
				/* Daemon 2 is gone: side A will see EOF. */
				to2.len = 0;
				d2_eof = d2_shut = 1;
			} else if (!d2_shut)
				progress |= k > 0;
			/* Daemon 2's bytes, as they are, to daemon 1. */
			if (!d2_eof && s2s_room(&to1) > 0) {
				n = read(d2, to1.b + to1.off + to1.len,
				    s2s_room(&to1));
				if (n > 0) {
					to1.len += (size_t)n;
					progress = 1;
				} else if (n == 0 || (errno != EAGAIN &&
				    errno != EINTR))
					d2_eof = progress = 1;
			}
			if (!d1_shut && (k = s2s_drain(&to1, d1)) < 0) {
				to1.len = 0;
				d1_shut = 1;
			} else if (!d1_shut)
				progress |= k > 0;
			if (d2_eof && to1.len == 0 && !d1_shut) {
				(void)shutdown(d1, SHUT_WR);
				d1_shut = 1;
			}
			if ((d1_eof || st >= 0) && to2.len == 0 && !d2_shut) {
				(void)shutdown(d2, SHUT_WR);
				d2_shut = 1;
			}
			if (progress)
				last = msync_now_ms();
		} while (progress);
		if (st >= 0 && to2.len == 0)
			return st;
		/*
		 * Daemon 1 is gone without its status; what it sent before
		 * is delivered first.  A frame cut off is lost with it.
		 */
		if (d1_eof && st < 0 && (fin.len < S2S_HDR || fin.len <
		    S2S_HDR + ((size_t)fin.b[fin.off + 3] << 8 |
		    fin.b[fin.off + 4] | (size_t)fin.b[fin.off + 2] << 16)) &&
		    (to2.len == 0 || d2_shut))
			return -1;
		pf[0].fd = d1;
		pf[0].events = (short)((!d1_eof && st < 0 &&
		    s2s_room(&fin) > 0 ? POLLIN : 0) |
		    (!d1_shut && to1.len > 0 ? POLLOUT : 0));
		pf[1].fd = d2;
		pf[1].events = (short)((!d2_eof && s2s_room(&to1) > 0 ?
		    POLLIN : 0) | (!d2_shut && to2.len > 0 ? POLLOUT : 0));
		for (k = 0; k < 2; k++)
			if (pf[k].events == 0)
				pf[k].fd = -1;
		if (idle_s > 0 && msync_now_ms() - last > idle_s * 1000LL)
			return -3;
		if (poll(pf, 2, 1000) == -1 && errno != EINTR)
			return -1;
	}
}

/*
 * Ends transport t and says what its helper said.  Returns the
 * transport's result (transport_finish).
 */
static int
s2s_finish(struct transport *t, int say)
{
	char	*why = NULL;
	int	 child = 0, r;

	r = transport_finish(t, 10000, &child, &why);
	/* Only a failure to connect or log in: a loss is said elsewhere. */
	if (say && (r == MSYNC_ERR_AUTH || r == MSYNC_ERR_UNREACHABLE) &&
	    why != NULL)
		ERRX("%s", why);
	free(why);
	return r;
}

int
s2s_client(struct transport_opts *to, const struct loc loc[2],
    struct s2s_run *r, struct brain_result *res)
{
	struct transport	 t[2];
	char			*line = NULL, *why = NULL;
	int			 e, st, r0, r1;

	memset(t, 0, sizeof(t));
	r->path_a = loc[0].path;
	r->layout_a = loc[0].layout;
	r->path_b = loc[1].path;
	r->layout_b = loc[1].layout;
	r->other = loc[1].text;
	e = s2s_encode(r, &line);
	r->path_a = r->path_b = r->other = NULL;	/* borrowed */
	if (e != 0) {
		ERRC(e, "the run's options do not fit the greeting");
		return EXIT_USAGE;
	}
	/* Daemon 2 first: a plain client connection, as for any client. */
	to->daemon_run = NULL;
	if ((e = transport_start(to, &loc[1], &t[1], &why)) != 0) {
		ERRX("%s", why != NULL ? why : msync_strerror(e));
		free(why);
		free(line);
		return e == MSYNC_ERR_USAGE ? EXIT_USAGE : EXIT_UNREACH;
	}
	to->daemon_run = line;
	if ((e = transport_start(to, &loc[0], &t[0], &why)) != 0) {
		ERRX("%s", why != NULL ? why : msync_strerror(e));
		free(why);
		free(line);
		(void)s2s_finish(&t[1], 0);
		return e == MSYNC_ERR_USAGE ? EXIT_USAGE : EXIT_UNREACH;
	}
	to->daemon_run = NULL;
	free(line);
	st = s2s_relay(t[0].rfd, t[1].rfd, r->timeout > 0 ? r->timeout +
	    60 : 0, res);
	r0 = s2s_finish(&t[0], st < 0);
	/*
	 * Daemon 2's helper speaks when side A never reached it; a
	 * connection lost later side A has reported already.
	 */
	r1 = s2s_finish(&t[1], st == EXIT_UNREACH);
	if (st == -2) {
		ERRX("%s broke the relay's framing", loc[0].host);
		return EXIT_PROTOCOL;
	}
	if (st == -3) {
		ERRX("no bytes from either daemon for %d seconds: giving up",
		    r->timeout + 60);
		return EXIT_TEMPFAIL;
	}
	if (st < 0) {
		/* Never logged in, or lost on the way. */
		if (r0 == MSYNC_ERR_AUTH)
			return EXIT_NOPERM;
		if (r0 == MSYNC_ERR_UNREACHABLE)
			return EXIT_UNREACH;
		ERRX("connection to %s lost", loc[0].text);
		return EXIT_TEMPFAIL;
	}
	/* Side A could not reach B: daemon 2's helper says why. */
	if (st == EXIT_UNREACH && r1 == MSYNC_ERR_AUTH)
		return EXIT_NOPERM;
	return st;
}
