/*
 * dconf.c — msyncd.conf, the secrets file and the client's greeting:
 * parsers from bytes to structs (see dconf.h).  Everything here is read
 * before or right after the TLS handshake, so every length and count is
 * bounded and every name checked before it is kept.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msync.h"
#include "dconf.h"

#define DCONF_LINE_MAX	4096	/* bytes of one config line */

/* Puts a formatted reason into err (when there is room). */
static void
dconf_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void
dconf_init(struct dconf *c)
{
	memset(c, 0, sizeof(*c));
	c->port = DCONF_PORT;
	c->max_conn = 64;
	c->max_per_addr = 8;
	c->max_memory = 1024ULL * 1024 * 1024;
	c->timeout = 600;
	c->handshake_timeout = 10;
	c->auth_delay_ms = 2000;
	c->max_auth_fail = 10;
	c->fail_window = 600;
}

int
dconf_name_ok(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0 || len > DCONF_NAME_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("_.+-@", s[i]) ==
		    NULL)
			return 0;
	return 1;
}

/* Trims blanks at both ends of s in place; returns the new start. */
static char *
dconf_trim(char *s)
{
	size_t	 n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/*
 * Parses a non-negative integer with an optional K/M/G suffix (when
 * sizes is set) or "ms" (when ms is set; else the value is seconds and
 * may have one decimal part, converted to milliseconds).  Returns -1 when
 * invalid or over max.
 */
static long long
dconf_number(const char *s, int sizes, long long max)
{
	char		*end;
	long long	 v;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return -1;
	if (sizes && *end != '\0') {
		long long	 mul = 1;

		switch (*end++) {
		case 'k': case 'K': mul = 1024LL; break;
		case 'm': case 'M': mul = 1024LL * 1024; break;
		case 'g': case 'G': mul = 1024LL * 1024 * 1024; break;
		default: return -1;
		}
		if (v > max / mul)
			return -1;
		v *= mul;
	}
	if (*end != '\0' || v > max)
		return -1;
	return v;
}

/* Seconds, possibly with a fraction ("0.2"), to milliseconds; -1 bad. */
static long long
dconf_millis(const char *s, long long max_ms)
{
	char		*end;
	double		 d;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || *end != '\0' || d < 0 || d * 1000 > (double)max_ms)
		return -1;
	return (long long)(d * 1000 + 0.5);
}

/* yes/no/true/false/1/0; -1 when neither. */
static int
dconf_bool(const char *s)
{
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0 ||
	    strcmp(s, "1") == 0)
		return 1;
	if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0 ||
	    strcmp(s, "0") == 0)
		return 0;
	return -1;
}

/* Replaces *slot by a copy of v.  Returns 0 or MSYNC_ERR_NOMEM. */
static int
dconf_setstr(char **slot, const char *v)
{
	char	*c;

	if ((c = strdup(v)) == NULL)
		return MSYNC_ERR_NOMEM;
	free(*slot);
	*slot = c;
	return 0;
}

/* "secret", "cert" or "secret, cert" / "any" to DAUTH_* bits; 0 bad. */
static int
dconf_auth(const char *v)
{
	char	 buf[64], *tok, *save = NULL;
	int	 bits = 0;

	if (strlen(v) >= sizeof(buf))
		return 0;
	strcpy(buf, v);
	for (tok = strtok_r(buf, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (strcmp(tok, "secret") == 0)
			bits |= DAUTH_SECRET;
		else if (strcmp(tok, "cert") == 0)
			bits |= DAUTH_CERT;
		else if (strcmp(tok, "any") == 0)
			bits |= DAUTH_SECRET | DAUTH_CERT;
		else
			return 0;
	}
	return bits;
}

/* Splits "a, b c" into m->users, checking each name. */
static int
dconf_users(const char *v, struct dmodule *m)
{
	char	 *buf, *tok, *save = NULL, **nu;
	int	  r = 0;

	if ((buf = strdup(v)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (tok = strtok_r(buf, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (strcmp(tok, "*") != 0 && !dconf_name_ok(tok)) {
			r = MSYNC_ERR_BADNAME;
			break;
		}
		if (m->nusers >= DCONF_MAX_USERS) {
			r = MSYNC_ERR_TOOBIG;
			break;
		}
		if ((nu = reallocarray(m->users, m->nusers + 1,
		    sizeof(*nu))) == NULL) {
			r = MSYNC_ERR_NOMEM;
			break;
		}
		m->users = nu;
		if ((m->users[m->nusers] = strdup(tok)) == NULL) {
			r = MSYNC_ERR_NOMEM;
			break;
		}
		m->nusers++;
	}
	free(buf);
	return r;
}

/*
 * Checks a module path: absolute, no "." or ".." component, at most one
 * "%u", and that only as a whole component ("/srv/%u/Maildir").
 */
static int
dconf_path_ok(const char *p)
{
	const char	*c, *u;
	size_t		 len;

	if (p[0] != '/' || strlen(p) > MSYNC_PATH_MAX)
		return 0;
	for (c = p; *c != '\0'; c += len) {
		while (*c == '/')
			c++;
		len = strcspn(c, "/");
		if ((len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if ((u = memchr(c, '%', len)) != NULL &&
		    (len != 2 || u[1] != 'u'))
			return 0;
	}
	if ((u = strstr(p, "%u")) != NULL && strstr(u + 2, "%u") != NULL)
		return 0;
	return 1;
}

/* A global key; 0, MSYNC_ERR_USAGE for a bad value or unknown key. */
static int
dconf_global(struct dconf *c, const char *k, const char *v)
{
	long long	 n;

	if (strcmp(k, "address") == 0)
		return dconf_setstr(&c->address, v);
	if (strcmp(k, "user") == 0 || strcmp(k, "uid") == 0)
		return dconf_name_ok(v) ? dconf_setstr(&c->user, v) :
		    MSYNC_ERR_USAGE;
	if (strcmp(k, "group") == 0 || strcmp(k, "gid") == 0)
		return dconf_name_ok(v) ? dconf_setstr(&c->group, v) :
		    MSYNC_ERR_USAGE;
	if (strcmp(k, "cert") == 0 || strcmp(k, "tls cert") == 0)
		return dconf_setstr(&c->cert, v);
	if (strcmp(k, "key") == 0 || strcmp(k, "tls key") == 0)
		return dconf_setstr(&c->key, v);
	if (strcmp(k, "client ca") == 0)
		return dconf_setstr(&c->client_ca, v);
	if (strcmp(k, "secrets file") == 0)
		return dconf_setstr(&c->secrets_file, v);
	if (strcmp(k, "cache dir") == 0)
		return v[0] == '/' ? dconf_setstr(&c->cache_dir, v) :
		    MSYNC_ERR_USAGE;
	if (strcmp(k, "syslog") == 0) {
		if ((c->syslog = dconf_bool(v)) < 0)
			return MSYNC_ERR_USAGE;
		return 0;
	}
	if (strcmp(k, "max memory") == 0) {
		if ((n = dconf_number(v, 1, 1LL << 46)) < 0 ||
		    (n != 0 && n < 16 * 1024 * 1024))
			return MSYNC_ERR_USAGE;
		c->max_memory = (uint64_t)n;
		return 0;
	}
	if (strcmp(k, "auth delay") == 0) {
		if ((n = dconf_millis(v, 60000)) < 0)
			return MSYNC_ERR_USAGE;
		c->auth_delay_ms = (int)n;
		return 0;
	}
	if ((n = dconf_number(v, 0, 1000000)) < 0)
		n = -1;
	if (strcmp(k, "port") == 0) {
		if (n < 1 || n > 65535)
			return MSYNC_ERR_USAGE;
		c->port = (int)n;
	} else if (strcmp(k, "max connections") == 0 && n >= 1)
		c->max_conn = (int)n;
	else if (strcmp(k, "max connections per address") == 0 && n >= 1)
		c->max_per_addr = (int)n;
	else if (strcmp(k, "timeout") == 0 && n >= 1)
		c->timeout = (int)n;
	else if (strcmp(k, "handshake timeout") == 0 && n >= 1 && n <= 3600)
		c->handshake_timeout = (int)n;
	else if (strcmp(k, "max auth failures") == 0 && n >= 1)
		c->max_auth_fail = (int)n;
	else if (strcmp(k, "auth failure window") == 0 && n >= 1)
		c->fail_window = (int)n;
	else
		return MSYNC_ERR_USAGE;
	return 0;
}

/* A module key; 0, MSYNC_ERR_USAGE for a bad value or unknown key. */
static int
dconf_modkey(struct dmodule *m, const char *k, const char *v)
{
	int	 b;

	if (strcmp(k, "path") == 0)
		return dconf_path_ok(v) ? dconf_setstr(&m->path, v) :
		    MSYNC_ERR_USAGE;
	if (strcmp(k, "comment") == 0)
		return dconf_setstr(&m->comment, v);
	if (strcmp(k, "read only") == 0) {
		if ((b = dconf_bool(v)) < 0)
			return MSYNC_ERR_USAGE;
		m->read_only = b;
		return 0;
	}
	if (strcmp(k, "auth") == 0) {
		if ((m->auth = dconf_auth(v)) == 0)
			return MSYNC_ERR_USAGE;
		return 0;
	}
	if (strcmp(k, "users") == 0 || strcmp(k, "auth users") == 0)
		return dconf_users(v, m);
	return MSYNC_ERR_USAGE;
}

/* Starts a new [name] section. */
static int
dconf_newmod(struct dconf *c, const char *name)
{
	struct dmodule	*nm;

	if (!dconf_name_ok(name) || dconf_module(c, name) != NULL)
		return MSYNC_ERR_BADNAME;
	if (c->nmods >= DCONF_MAX_MODULES)
		return MSYNC_ERR_TOOBIG;
	if ((nm = reallocarray(c->mods, c->nmods + 1, sizeof(*nm))) == NULL)
		return MSYNC_ERR_NOMEM;
	c->mods = nm;
	memset(&nm[c->nmods], 0, sizeof(*nm));
	nm[c->nmods].auth = DAUTH_SECRET;
	nm[c->nmods].read_only = 1;	/* writes are opted into */
	if ((nm[c->nmods].name = strdup(name)) == NULL)
		return MSYNC_ERR_NOMEM;
	c->nmods++;
	return 0;
}

/*
 * Calls fn on each line of text (len bytes): a line longer than
 * DCONF_LINE_MAX or holding a NUL is an error.  *lineno is the line
 * being handled, for messages.
 */
static int
dconf_lines(const char *text, size_t len, int *lineno,
    int (*fn)(char *, void *), void *arg)
{
	char		 line[DCONF_LINE_MAX + 1];
	const char	*p = text, *end = text + len, *nl;
	size_t		 n;
	int		 r;

	*lineno = 0;
	while (p < end) {
		(*lineno)++;
		nl = memchr(p, '\n', end - p);
		n = (nl != NULL ? nl : end) - p;
		if (n > DCONF_LINE_MAX)
			return MSYNC_ERR_TOOBIG;
		if (memchr(p, '\0', n) != NULL)
			return MSYNC_ERR_BADNAME;
		memcpy(line, p, n);
		line[n] = '\0';
		if ((r = fn(line, arg)) != 0)
			return r;
		p += n + (nl != NULL);
	}
	return 0;
}

/* One msyncd.conf line. */
static int
dconf_line(char *line, void *arg)
{
	struct dconf	*c = arg;
	char		*s = dconf_trim(line), *eq, *k, *v, *ks;
	size_t		 n;

	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;
	if (*s == '[') {
		n = strlen(s);
		if (n < 3 || s[n - 1] != ']')
			return MSYNC_ERR_USAGE;
		s[n - 1] = '\0';
		return dconf_newmod(c, dconf_trim(s + 1));
	}
	if ((eq = strchr(s, '=')) == NULL)
		return MSYNC_ERR_USAGE;
	*eq = '\0';
	k = dconf_trim(s);
	v = dconf_trim(eq + 1);
	/* Keys are case-insensitive with single blanks, as in rsyncd.conf. */
	for (ks = k; *ks != '\0'; ks++) {
		*ks = tolower((unsigned char)*ks);
		if (*ks == '\t' || *ks == '_')
			*ks = ' ';
	}
	if (*v == '\0')
		return MSYNC_ERR_USAGE;
	if (c->nmods == 0)
		return dconf_global(c, k, v);
	return dconf_modkey(&c->mods[c->nmods - 1], k, v);
}

int
dconf_parse(const char *text, size_t len, struct dconf *c, char *err,
    size_t errlen)
{
	int	 r, lineno = 0;
	size_t	 i;

	dconf_init(c);
	if (len > DCONF_MAX_BYTES) {
		dconf_err(err, errlen, "config is larger than %d bytes",
		    DCONF_MAX_BYTES);
		return MSYNC_ERR_TOOBIG;
	}
	if ((r = dconf_lines(text, len, &lineno, dconf_line, c)) != 0) {
		dconf_err(err, errlen, "line %d: %s", lineno,
		    r == MSYNC_ERR_USAGE ? "unknown key or bad value" :
		    r == MSYNC_ERR_BADNAME ? "bad or repeated name" :
		    msync_strerror(r));
		goto fail;
	}
	r = MSYNC_ERR_USAGE;
	if (c->nmods == 0) {
		dconf_err(err, errlen, "no [module] defined");
		goto fail;
	}
	for (i = 0; i < c->nmods; i++) {
		if (c->mods[i].path == NULL) {
			dconf_err(err, errlen, "module [%s] has no path",
			    c->mods[i].name);
			goto fail;
		}
		if (c->mods[i].nusers == 0) {
			dconf_err(err, errlen, "module [%s] has no users",
			    c->mods[i].name);
			goto fail;
		}
		if ((c->mods[i].auth & DAUTH_CERT) && c->client_ca == NULL) {
			dconf_err(err, errlen, "module [%s] takes client "
			    "certificates but no 'client ca' is set",
			    c->mods[i].name);
			goto fail;
		}
		if ((c->mods[i].auth & DAUTH_SECRET) &&
		    c->secrets_file == NULL) {
			dconf_err(err, errlen, "module [%s] takes secrets "
			    "but no 'secrets file' is set", c->mods[i].name);
			goto fail;
		}
	}
	return 0;
fail:
	dconf_free(c);
	return r;
}

/* One secrets line: "user:secret". */
static int
dconf_secret_line(char *line, void *arg)
{
	struct dconf	*c = arg;
	struct dsecret	*ns;
	char		*s = line, *colon;
	size_t		 n = strlen(s);

	if (n > 0 && s[n - 1] == '\r')
		s[--n] = '\0';
	if (*s == '\0' || *s == '#')
		return 0;
	if ((colon = strchr(s, ':')) == NULL)
		return MSYNC_ERR_USAGE;
	*colon = '\0';
	if (!dconf_name_ok(s) || dconf_secret(c, s) != NULL)
		return MSYNC_ERR_BADNAME;
	n = strlen(colon + 1);
	if (n == 0 || n > DCONF_SECRET_MAX)
		return MSYNC_ERR_USAGE;
	if (c->nsecrets >= DCONF_MAX_USERS)
		return MSYNC_ERR_TOOBIG;
	if ((ns = reallocarray(c->secrets, c->nsecrets + 1,
	    sizeof(*ns))) == NULL)
		return MSYNC_ERR_NOMEM;
	c->secrets = ns;
	ns += c->nsecrets;
	ns->user = strdup(s);
	ns->secret = strdup(colon + 1);
	c->nsecrets++;
	if (ns->user == NULL || ns->secret == NULL)
		return MSYNC_ERR_NOMEM;
	return 0;
}

int
dconf_parse_secrets(const char *text, size_t len, struct dconf *c,
    char *err, size_t errlen)
{
	int	 r, lineno = 0;

	if (len > DCONF_MAX_BYTES)
		return MSYNC_ERR_TOOBIG;
	if ((r = dconf_lines(text, len, &lineno, dconf_secret_line, c)) != 0)
		dconf_err(err, errlen, "secrets file line %d: %s", lineno,
		    r == MSYNC_ERR_USAGE ? "not 'user:secret'" :
		    r == MSYNC_ERR_BADNAME ? "bad or repeated user name" :
		    msync_strerror(r));
	return r;
}

/*
 * Reads a whole file of at most DCONF_MAX_BYTES into *out (*len bytes);
 * *st gets its status, taken from the open file.
 */
static int
dconf_read(const char *path, char **out, size_t *len, struct stat *st)
{
	char	*buf = NULL;
	ssize_t	 n;
	size_t	 got = 0;
	int	 fd, r = MSYNC_ERR_IO, e;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return MSYNC_ERR_IO;
	if (fstat(fd, st) == -1)
		goto out;
	if (!S_ISREG(st->st_mode) || st->st_size > DCONF_MAX_BYTES) {
		errno = EINVAL;
		goto out;
	}
	r = MSYNC_ERR_NOMEM;
	if ((buf = malloc((size_t)st->st_size + 1)) == NULL)
		goto out;
	r = MSYNC_ERR_IO;
	while (got < (size_t)st->st_size) {
		n = read(fd, buf + got, (size_t)st->st_size - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	buf = NULL;
	r = 0;
out:
	e = errno;
	free(buf);
	close(fd);
	errno = e;
	return r;
}

int
dconf_load(const char *path, struct dconf *c, char *err, size_t errlen)
{
	struct stat	 st;
	char		*text = NULL;
	size_t		 len = 0;
	int		 r;

	dconf_init(c);
	if ((r = dconf_read(path, &text, &len, &st)) != 0) {
		dconf_err(err, errlen, "cannot read '%s': %s", path,
		    strerror(errno));
		return r;
	}
	r = dconf_parse(text, len, c, err, errlen);
	free(text);
	text = NULL;
	if (r != 0 || c->secrets_file == NULL)
		return r;
	if ((r = dconf_read(c->secrets_file, &text, &len, &st)) != 0) {
		dconf_err(err, errlen, "cannot read secrets file '%s': %s",
		    c->secrets_file, strerror(errno));
		goto fail;
	}
	/* rsync's "strict modes": a secret others can read is no secret. */
	if ((st.st_mode & (S_IRWXO | S_IWGRP)) != 0 ||
	    (st.st_uid != 0 && st.st_uid != geteuid())) {
		dconf_err(err, errlen, "secrets file '%s' is readable or "
		    "writable by others (mode %03o, owner %ld): refusing to "
		    "start; chmod 600 it", c->secrets_file,
		    (unsigned)(st.st_mode & 0777), (long)st.st_uid);
		r = MSYNC_ERR_USAGE;
		goto fail;
	}
	if ((r = dconf_parse_secrets(text, len, c, err, errlen)) != 0)
		goto fail;
	explicit_bzero(text, len);
	free(text);
	return 0;
fail:
	if (text != NULL)
		explicit_bzero(text, len);
	free(text);
	dconf_free(c);
	return r;
}

void
dconf_free(struct dconf *c)
{
	size_t	 i, j;

	free(c->address);
	free(c->user);
	free(c->group);
	free(c->cert);
	free(c->key);
	free(c->client_ca);
	free(c->secrets_file);
	free(c->cache_dir);
	for (i = 0; i < c->nmods; i++) {
		free(c->mods[i].name);
		free(c->mods[i].path);
		free(c->mods[i].comment);
		for (j = 0; j < c->mods[i].nusers; j++)
			free(c->mods[i].users[j]);
		free(c->mods[i].users);
	}
	free(c->mods);
	for (i = 0; i < c->nsecrets; i++) {
		free(c->secrets[i].user);
		if (c->secrets[i].secret != NULL) {
			explicit_bzero(c->secrets[i].secret,
			    strlen(c->secrets[i].secret));
			free(c->secrets[i].secret);
		}
	}
	free(c->secrets);
	dconf_init(c);
}

const struct dmodule *
dconf_module(const struct dconf *c, const char *name)
{
	size_t	 i;

	for (i = 0; i < c->nmods; i++)
		if (strcmp(c->mods[i].name, name) == 0)
			return &c->mods[i];
	return NULL;
}

int
dconf_user_allowed(const struct dmodule *m, const char *user)
{
	size_t	 i;

	for (i = 0; i < m->nusers; i++)
		if (strcmp(m->users[i], "*") == 0 ||
		    strcmp(m->users[i], user) == 0)
			return 1;
	return 0;
}

const char *
dconf_secret(const struct dconf *c, const char *user)
{
	size_t	 i;

	for (i = 0; i < c->nsecrets; i++)
		if (strcmp(c->secrets[i].user, user) == 0)
			return c->secrets[i].secret;
	return NULL;
}

int
dconf_module_root(const struct dmodule *m, const char *user, char **out)
{
	const char	*u;
	int		 n;

	*out = NULL;
	if (!dconf_name_ok(user))
		return MSYNC_ERR_BADNAME;
	if ((u = strstr(m->path, "%u")) == NULL)
		n = asprintf(out, "%s", m->path);
	else
		n = asprintf(out, "%.*s%s%s", (int)(u - m->path), m->path,
		    user, u + 2);
	if (n < 0) {
		*out = NULL;
		return MSYNC_ERR_NOMEM;
	}
	return 0;
}

/* Copies a word of at most max bytes out of *p (space-separated). */
static int
dhello_word(const char **p, char *out, size_t max)
{
	size_t	 n = strcspn(*p, " ");

	if (n == 0 || n > max)
		return MSYNC_ERR_PROTO;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n;
	if (**p == ' ')
		(*p)++;
	return 0;
}

int
dhello_parse(const char *line1, const char *line2, struct dhello *h)
{
	const char	*p = line1;
	size_t		 i, n;

	memset(h, 0, sizeof(*h));
	if (strlen(line1) > DCONF_HELLO_MAX || strlen(line2) >
	    DCONF_HELLO_MAX || strncmp(p, "MSYNCD/1 ", 9) != 0)
		return MSYNC_ERR_PROTO;
	p += 9;
	if (dhello_word(&p, h->module, DCONF_NAME_MAX) != 0 ||
	    dhello_word(&p, h->user, DCONF_NAME_MAX) != 0)
		return MSYNC_ERR_PROTO;
	/* Server to server (s2s.h): a third line with the run follows. */
	if (strcmp(p, "RUN") == 0) {
		h->run = 1;
		p += 3;
	}
	if (*p != '\0')
		return MSYNC_ERR_PROTO;
	if (!dconf_name_ok(h->module) || !dconf_name_ok(h->user))
		return MSYNC_ERR_BADNAME;
	if (strcmp(line2, "CERT") == 0) {
		h->cert = 1;
		return 0;
	}
	if (strncmp(line2, "SECRET ", 7) != 0)
		return MSYNC_ERR_PROTO;
	n = strlen(line2 + 7);
	if (n == 0 || n > DCONF_SECRET_MAX)
		return MSYNC_ERR_PROTO;
	for (i = 0; i < n; i++)
		if ((unsigned char)line2[7 + i] < 0x20)
			return MSYNC_ERR_PROTO;
	memcpy(h->secret, line2 + 7, n + 1);
	return 0;
}
