/*
 * config.c — the configuration file parser (format: msync(5)).
 *
 * Line based, like ssh_config and mbsync's: "pair NAME" opens a section,
 * "defaults" opens the section whose keys every pair inherits unless it
 * sets them, "group NAME MEMBER..." names several pairs at once.  A key
 * and its values are separated by blanks; a value with blanks is quoted
 * ("a b", with \" and \\), except for the commands (rsh, passcmd), which
 * take the rest of the line as it stands.  '#' starts a comment line.
 *
 * Anything unknown is an error naming the file, line and column: a key
 * silently ignored is an option the user believes is in force.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "msync.h"
#include "names.h"

#define CONFIG_TOKENS_MAX	(CONFIG_LIST_MAX + 2)	/* words on a line */

/* The parser's position, for messages. */
struct cparse {
	const char	*path;		/* borrowed */
	int		 line;
	char		*why;		/* owned; the first error */
	int		 nomem;
};

/* One word of a line and the column it starts at (1-based). */
struct token {
	char	*s;			/* owned */
	int	 col;
};

static void
perr(struct cparse *p, int col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error as "PATH:LINE:COL: text". */
static void
perr(struct cparse *p, int col, const char *fmt, ...)
{
	va_list	 ap;
	char	 text[512];

	if (p->why != NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (asprintf(&p->why, "%s:%d:%d: %s", p->path, p->line, col,
	    text) < 0) {
		p->why = NULL;
		p->nomem = 1;
	}
}

int
config_name_valid(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0 || len > CONFIG_NAME_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-'))
			return 0;
	}
	return 1;
}

int
config_duration(const char *s, int want_ms, int *out)
{
	long long	 v, mul;
	char		*end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v > 100LL * 365 * 86400)
		return -1;
	if (strcmp(end, "ms") == 0) {
		if (!want_ms)
			return -1;
		mul = 1;
	} else if (*end == '\0' || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mul = 3600 * 1000;
	else if (strcmp(end, "d") == 0)
		mul = 86400 * 1000LL;
	else
		return -1;
	v *= mul;
	if (!want_ms)
		v /= 1000;
	if (v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

/* Checks a --bwlimit value: digits and an optional K, M or G. */
static int
rate_valid(const char *s)
{
	size_t	 n = strspn(s, "0123456789");

	if (n == 0 || n > 15)
		return 0;
	return s[n] == '\0' || (strchr("kKmMgG", s[n]) != NULL &&
	    s[n + 1] == '\0');
}

/* yes/no, on/off, true/false.  Returns 0, 1, or -1. */
static int
parse_bool(const char *s)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "on") == 0 ||
	    strcmp(s, "true") == 0)
		return 1;
	if (strcmp(s, "no") == 0 || strcmp(s, "off") == 0 ||
	    strcmp(s, "false") == 0)
		return 0;
	return -1;
}

static void
tokens_free(struct token *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].s);
}

/*
 * Splits one line (NUL-terminated, no newline) into words.  *rest gets
 * the offset of the text after the first word and its blanks (for the
 * commands).  Returns the number of words, or -1 with an error recorded.
 */
static int
tokenize(struct cparse *p, const char *line, struct token *t, size_t *rest)
{
	size_t	 i = 0, n = 0, len;
	char	*w;

	*rest = strlen(line);
	for (;;) {
		while (line[i] == ' ' || line[i] == '\t')
			i++;
		if (n == 1)
			*rest = i;
		if (line[i] == '\0')
			break;
		if (n == CONFIG_TOKENS_MAX) {
			perr(p, (int)i + 1, "too many values on one line");
			goto fail;
		}
		if ((w = malloc(strlen(line + i) + 1)) == NULL) {
			p->nomem = 1;
			goto fail;
		}
		t[n].s = w;
		t[n].col = (int)i + 1;
		n++;
		len = 0;
		if (line[i] == '"') {
			int	 col = (int)i + 1;

			for (i++; line[i] != '"'; i++) {
				if (line[i] == '\0') {
					perr(p, col, "unterminated quote");
					goto fail;
				}
				if (line[i] == '\\' && (line[i + 1] == '"' ||
				    line[i + 1] == '\\'))
					i++;
				w[len++] = line[i];
			}
			i++;
			if (line[i] != '\0' && line[i] != ' ' &&
			    line[i] != '\t') {
				perr(p, (int)i + 1, "a blank must follow a "
				    "closing quote");
				goto fail;
			}
		} else {
			while (line[i] != '\0' && line[i] != ' ' &&
			    line[i] != '\t') {
				if (line[i] == '"') {
					perr(p, (int)i + 1, "a quote inside "
					    "a word");
					goto fail;
				}
				w[len++] = line[i++];
			}
		}
		w[len] = '\0';
	}
	return (int)n;
fail:
	tokens_free(t, n);
	return -1;
}

static void
pair_clear(struct pair *p)
{
	free(p->name);
	free(p->a);
	free(p->b);
	for (size_t i = 0; i < p->nmailbox; i++)
		free(p->mailbox[i]);
	free(p->mailbox);
	for (size_t i = 0; i < p->nexclude; i++)
		free(p->exclude[i]);
	free(p->exclude);
	for (size_t i = 0; i < p->nidle; i++)
		free(p->idle[i]);
	free(p->idle);
	free(p->passcmd);
	free(p->rsh);
	free(p->ssh);
	free(p->remote_msync);
	free(p->state_dir);
	free(p->bwlimit);
}

static void
pair_init(struct pair *p)
{
	memset(p, 0, sizeof(*p));
	p->mode = p->compress = p->force_deletes = p->full = -1;
	p->lock_wait = p->every = p->debounce_ms = -1;
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->npair; i++)
		pair_clear(&c->pair[i]);
	free(c->pair);
	for (size_t i = 0; i < c->ngroup; i++) {
		free(c->group[i].name);
		for (size_t j = 0; j < c->group[i].nmember; j++)
			free(c->group[i].member[j]);
		free(c->group[i].member);
	}
	free(c->group);
	free(c->path);
	free(c);
}

const struct pair *
config_pair(const struct config *c, const char *name)
{
	for (size_t i = 0; c != NULL && i < c->npair; i++)
		if (strcmp(c->pair[i].name, name) == 0)
			return &c->pair[i];
	return NULL;
}

static const struct group *
config_group(const struct config *c, const char *name)
{
	for (size_t i = 0; c != NULL && i < c->ngroup; i++)
		if (strcmp(c->group[i].name, name) == 0)
			return &c->group[i];
	return NULL;
}

int
config_has(const struct config *c, const char *name)
{
	return config_pair(c, name) != NULL || config_group(c, name) != NULL;
}

/* Takes a string value into *dst; a second one is an error. */
static int
set_str(struct cparse *p, const struct token *key, char **dst,
    const char *v)
{
	if (*dst != NULL) {
		perr(p, key->col, "'%s' is given twice in this section",
		    key->s);
		return -1;
	}
	if ((*dst = strdup(v)) == NULL) {
		p->nomem = 1;
		return -1;
	}
	return 0;
}

static int
set_int(struct cparse *p, const struct token *key, int *dst, int v)
{
	if (*dst != -1) {
		perr(p, key->col, "'%s' is given twice in this section",
		    key->s);
		return -1;
	}
	*dst = v;
	return 0;
}

/* Appends the words t[1..n-1] to a list. */
static int
add_list(struct cparse *p, char ***list, size_t *nlist, struct token *t,
    int n)
{
	char	**v;

	if (*nlist + (size_t)n - 1 > CONFIG_LIST_MAX) {
		perr(p, t[0].col, "more than %d '%s' values", CONFIG_LIST_MAX,
		    t[0].s);
		return -1;
	}
	v = reallocarray(*list, *nlist + (size_t)n - 1, sizeof(*v));
	if (v == NULL) {
		p->nomem = 1;
		return -1;
	}
	*list = v;
	for (int i = 1; i < n; i++) {
		if (t[i].s[0] == '\0') {
			perr(p, t[i].col, "an empty '%s' pattern", t[0].s);
			return -1;
		}
		v[(*nlist)++] = t[i].s;
		t[i].s = NULL;	/* transferred */
	}
	return 0;
}

/*
 * Applies one "key value..." line to a pair (or to the defaults, where
 * is_def).  raw is the rest of the line after the key, for commands.
 * Returns 0 or -1 with the error recorded.
 */
static int
apply_key(struct cparse *p, struct pair *pr, int is_def, struct token *t,
    int n, const char *raw)
{
	const char	*k = t[0].s, *v = n > 1 ? t[1].s : NULL;
	int		 b, d;

	if (strcmp(k, "rsh") == 0 || strcmp(k, "passcmd") == 0) {
		if (*raw == '\0') {
			perr(p, t[0].col, "'%s' needs a command", k);
			return -1;
		}
		return set_str(p, &t[0], k[0] == 'r' ? &pr->rsh :
		    &pr->passcmd, raw);
	}
	if (strcmp(k, "password") == 0 || strcmp(k, "pass") == 0) {
		perr(p, t[0].col, "passwords are not kept in the config "
		    "file: use 'passcmd COMMAND' to run a password manager");
		return -1;
	}
	if (strcmp(k, "idle") == 0) {
		/* Watch mode: mailbox names (not patterns), INBOX if none. */
		if (n < 2 || pr->nidle + (size_t)n - 1 > CONFIG_IDLE_MAX) {
			perr(p, t[0].col, "'idle' takes 1 to %d mailbox names",
			    CONFIG_IDLE_MAX);
			return -1;
		}
		for (int i = 1; i < n; i++)
			if (!names_valid(t[i].s, strlen(t[i].s))) {
				perr(p, t[i].col, "'%s' is not a mailbox name",
				    log_esc(t[i].s, 64));
				return -1;
			}
		return add_list(p, &pr->idle, &pr->nidle, t, n);
	}
	if (strcmp(k, "mailbox") == 0 || strcmp(k, "exclude") == 0) {
		if (n < 2) {
			perr(p, t[0].col, "'%s' needs at least one pattern",
			    k);
			return -1;
		}
		return k[0] == 'm' ?
		    add_list(p, &pr->mailbox, &pr->nmailbox, t, n) :
		    add_list(p, &pr->exclude, &pr->nexclude, t, n);
	}
	/* Everything else takes exactly one value. */
	if (strcmp(k, "a") != 0 && strcmp(k, "b") != 0 &&
	    strcmp(k, "mode") != 0 && strcmp(k, "ssh") != 0 &&
	    strcmp(k, "remote-msync") != 0 && strcmp(k, "state-dir") != 0 &&
	    strcmp(k, "bwlimit") != 0 && strcmp(k, "compress") != 0 &&
	    strcmp(k, "force-deletes") != 0 && strcmp(k, "full") != 0 &&
	    strcmp(k, "lock-wait") != 0 && strcmp(k, "every") != 0 &&
	    strcmp(k, "debounce") != 0) {
		perr(p, t[0].col, "unknown key '%s'", log_esc(k, 64));
		return -1;
	}
	if (n != 2) {
		perr(p, n < 2 ? t[0].col : t[2].col, "'%s' takes one value%s",
		    k, n > 2 ? " (quote a value that holds blanks)" : "");
		return -1;
	}
	if (v[0] == '\0') {
		perr(p, t[1].col, "'%s' has an empty value", k);
		return -1;
	}
	if (strcmp(k, "a") == 0 || strcmp(k, "b") == 0) {
		if (is_def) {
			perr(p, t[0].col, "'%s' belongs in a pair, not in "
			    "defaults", k);
			return -1;
		}
		return set_str(p, &t[0], k[0] == 'a' ? &pr->a : &pr->b, v);
	}
	if (strcmp(k, "mode") == 0) {
		if (strcmp(v, "two-way") == 0)
			d = MODE_TWOWAY;
		else if (strcmp(v, "backup") == 0)
			d = MODE_BACKUP;
		else if (strcmp(v, "one-way") == 0)
			d = MODE_ONEWAY;
		else {
			perr(p, t[1].col, "mode is two-way, backup or "
			    "one-way, not '%s'", log_esc(v, 64));
			return -1;
		}
		return set_int(p, &t[0], &pr->mode, d);
	}
	if (strcmp(k, "ssh") == 0) {
		if (strcmp(v, "openssh") != 0 && strcmp(v, "libssh") != 0) {
			perr(p, t[1].col, "ssh is openssh or libssh, not "
			    "'%s'", log_esc(v, 64));
			return -1;
		}
		return set_str(p, &t[0], &pr->ssh, v);
	}
	if (strcmp(k, "remote-msync") == 0)
		return set_str(p, &t[0], &pr->remote_msync, v);
	if (strcmp(k, "state-dir") == 0)
		return set_str(p, &t[0], &pr->state_dir, v);
	if (strcmp(k, "bwlimit") == 0) {
		if (!rate_valid(v)) {
			perr(p, t[1].col, "bwlimit is bytes per second with "
			    "an optional K, M or G, not '%s'",
			    log_esc(v, 64));
			return -1;
		}
		return set_str(p, &t[0], &pr->bwlimit, v);
	}
	if (strcmp(k, "compress") == 0 || strcmp(k, "force-deletes") == 0 ||
	    strcmp(k, "full") == 0) {
		if ((b = parse_bool(v)) < 0) {
			perr(p, t[1].col, "'%s' is yes or no, not '%s'", k,
			    log_esc(v, 64));
			return -1;
		}
		return set_int(p, &t[0], k[0] == 'c' ? &pr->compress :
		    k[0] == 'f' && k[1] == 'o' ? &pr->force_deletes :
		    &pr->full, b);
	}
	/* lock-wait, every, debounce: durations. */
	if (config_duration(v, strcmp(k, "debounce") == 0, &d) != 0 ||
	    (strcmp(k, "every") == 0 && d < 1)) {
		perr(p, t[1].col, "'%s' is a duration such as 30s, 5m, "
		    "1h%s, not '%s'", k, strcmp(k, "debounce") == 0 ?
		    " or 500ms" : "", log_esc(v, 64));
		return -1;
	}
	return set_int(p, &t[0], strcmp(k, "lock-wait") == 0 ?
	    &pr->lock_wait : k[0] == 'e' ? &pr->every : &pr->debounce_ms, d);
}

/* Checks that name is new in this file (pairs and groups share names). */
static int
name_new(struct cparse *p, const struct config *c, const struct token *t)
{
	if (!config_name_valid(t->s)) {
		perr(p, t->col, "'%s' is not a valid name (letters, digits, "
		    "'.', '_' and '-'; no '/' or ':'; at most %d bytes)",
		    log_esc(t->s, 80), CONFIG_NAME_MAX);
		return -1;
	}
	if (config_has(c, t->s)) {
		perr(p, t->col, "'%s' is defined twice", t->s);
		return -1;
	}
	if (c->npair + c->ngroup >= CONFIG_PAIRS_MAX) {
		perr(p, t->col, "more than %d pairs and groups",
		    CONFIG_PAIRS_MAX);
		return -1;
	}
	return 0;
}

/* Copies the n strings of src into an empty *dst. */
static int
copy_list(char ***dst, size_t *ndst, char **src, size_t n)
{
	if (n == 0)
		return 0;
	if ((*dst = calloc(n, sizeof(char *))) == NULL)
		return MSYNC_ERR_NOMEM;
	for (; *ndst < n; (*ndst)++)
		if (((*dst)[*ndst] = strdup(src[*ndst])) == NULL)
			return MSYNC_ERR_NOMEM;
	return 0;
}

/* Copies each unset key of pr from the defaults d. */
static int
inherit(struct pair *pr, const struct pair *d)
{
	char	**sp[] = { &pr->passcmd, &pr->rsh, &pr->ssh,
		    &pr->remote_msync, &pr->state_dir, &pr->bwlimit };
	char	*const ds[] = { d->passcmd, d->rsh, d->ssh, d->remote_msync,
		    d->state_dir, d->bwlimit };
	int	*ip[] = { &pr->mode, &pr->compress, &pr->force_deletes,
		    &pr->full, &pr->lock_wait, &pr->every, &pr->debounce_ms };
	const int di[] = { d->mode, d->compress, d->force_deletes, d->full,
		    d->lock_wait, d->every, d->debounce_ms };

	for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++)
		if (*sp[i] == NULL && ds[i] != NULL &&
		    (*sp[i] = strdup(ds[i])) == NULL)
			return MSYNC_ERR_NOMEM;
	for (size_t i = 0; i < sizeof(ip) / sizeof(ip[0]); i++)
		if (*ip[i] == -1)
			*ip[i] = di[i];
	/* Lists: the pair's own replace the defaults' entirely. */
	if ((pr->nmailbox == 0 && copy_list(&pr->mailbox, &pr->nmailbox,
	    d->mailbox, d->nmailbox) != 0) || (pr->nexclude == 0 &&
	    copy_list(&pr->exclude, &pr->nexclude, d->exclude,
	    d->nexclude) != 0) || (pr->nidle == 0 &&
	    copy_list(&pr->idle, &pr->nidle, d->idle, d->nidle) != 0))
		return MSYNC_ERR_NOMEM;
	return 0;
}

/*
 * Walks group g's members depth first; a group met again on the current
 * path is a loop.  path[0..depth-1] are the groups above.
 */
static int
check_group(struct cparse *p, const struct config *c, const struct group *g,
    const struct group **path, int depth)
{
	for (int i = 0; i < depth; i++) {
		if (path[i] == g) {
			p->line = path[0]->line;
			perr(p, 1, "group '%s' contains itself (through '%s')",
			    path[0]->name, g->name);
			return -1;
		}
	}
	if (depth >= CONFIG_DEPTH_MAX) {
		p->line = path[0]->line;
		perr(p, 1, "groups nested more than %d deep",
		    CONFIG_DEPTH_MAX);
		return -1;
	}
	path[depth] = g;
	for (size_t i = 0; i < g->nmember; i++) {
		const struct group *sub = config_group(c, g->member[i]);

		if (sub == NULL && config_pair(c, g->member[i]) == NULL) {
			p->line = g->line;
			perr(p, 1, "group '%s' names '%s', which is neither "
			    "a pair nor a group", g->name, g->member[i]);
			return -1;
		}
		if (sub != NULL && check_group(p, c, sub, path, depth + 1) != 0)
			return -1;
	}
	return 0;
}

/* Whole-file checks, after the last line. */
static int
finish(struct cparse *p, struct config *c, struct pair *def)
{
	const struct group *path[CONFIG_DEPTH_MAX];

	for (size_t i = 0; i < c->npair; i++) {
		struct pair *pr = &c->pair[i];

		p->line = pr->line;
		if (pr->a == NULL || pr->b == NULL) {
			perr(p, 1, "pair '%s' needs both 'a' and 'b'",
			    pr->name);
			return -1;
		}
		if (inherit(pr, def) != 0) {
			p->nomem = 1;
			return -1;
		}
	}
	for (size_t i = 0; i < c->ngroup; i++)
		if (check_group(p, c, &c->group[i], path, 0) != 0)
			return -1;
	return 0;
}

int
config_parse(const char *path, const char *text, size_t len,
    struct config **out, char **why)
{
	struct cparse	 p;
	struct config	*c = NULL;
	struct pair	 def, *cur = NULL;
	struct token	*t = NULL;
	char		*line = NULL;
	size_t		 off = 0, end, rest;
	int		 n, r = MSYNC_ERR_USAGE, in_def = 0;

	*out = NULL;
	*why = NULL;
	memset(&p, 0, sizeof(p));
	p.path = path;
	pair_init(&def);
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->path = strdup(path)) == NULL ||
	    (t = calloc(CONFIG_TOKENS_MAX, sizeof(*t))) == NULL ||
	    (line = malloc(CONFIG_LINE_MAX + 1)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	if (len > CONFIG_SIZE_MAX) {
		p.line = 1;
		perr(&p, 1, "the file is larger than %d bytes",
		    CONFIG_SIZE_MAX);
		goto out;
	}
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);

		end = nl != NULL ? (size_t)(nl - text) : len;
		p.line++;
		if (end - off > CONFIG_LINE_MAX) {
			perr(&p, CONFIG_LINE_MAX + 1, "line longer than %d "
			    "bytes", CONFIG_LINE_MAX);
			goto out;
		}
		memcpy(line, text + off, end - off);
		line[end - off] = '\0';
		if (strlen(line) != end - off) {
			perr(&p, (int)strlen(line) + 1, "a NUL byte");
			goto out;
		}
		off = end + 1;
		{
			size_t	 l = strlen(line);

			if (l > 0 && line[l - 1] == '\r')
				line[--l] = '\0';
			for (size_t i = 0; i < l; i++) {
				unsigned char ch = (unsigned char)line[i];

				if (ch < 0x20 && ch != '\t') {
					perr(&p, (int)i + 1, "a control "
					    "character (0x%02x)", ch);
					goto out;
				}
			}
		}
		if ((n = tokenize(&p, line, t, &rest)) < 0)
			goto out;
		if (n == 0 || t[0].s[0] == '#') {
			tokens_free(t, (size_t)n);
			continue;
		}
		if (strcmp(t[0].s, "pair") == 0 ||
		    strcmp(t[0].s, "group") == 0) {
			int	 is_pair = t[0].s[0] == 'p';

			if (n < 2) {
				perr(&p, t[0].col, "'%s' needs a name",
				    t[0].s);
				goto tfail;
			}
			if (is_pair && n > 2) {
				perr(&p, t[2].col, "'pair' takes one name; "
				    "its keys follow on the next lines");
				goto tfail;
			}
			if (name_new(&p, c, &t[1]) != 0)
				goto tfail;
			if (is_pair) {
				struct pair *v = reallocarray(c->pair,
				    c->npair + 1, sizeof(*v));

				if (v == NULL)
					goto nomem;
				c->pair = v;
				cur = &c->pair[c->npair++];
				pair_init(cur);
				cur->name = t[1].s;
				t[1].s = NULL;	/* transferred */
				cur->line = p.line;
				in_def = 0;
			} else {
				struct group *v = reallocarray(c->group,
				    c->ngroup + 1, sizeof(*v)), *g;

				if (v == NULL)
					goto nomem;
				c->group = v;
				g = &c->group[c->ngroup++];
				memset(g, 0, sizeof(*g));
				g->name = t[1].s;
				t[1].s = NULL;	/* transferred */
				g->line = p.line;
				if (n < 3) {
					perr(&p, t[0].col, "group '%s' has "
					    "no members", g->name);
					goto tfail;
				}
				for (int i = 2; i < n; i++)
					if (!config_name_valid(t[i].s)) {
						perr(&p, t[i].col, "'%s' is "
						    "not a valid name",
						    log_esc(t[i].s, 80));
						goto tfail;
					}
				if (add_list(&p, &g->member, &g->nmember,
				    t + 1, n - 1) != 0)
					goto tfail;
				/* A group ends any open section. */
				cur = NULL;
				in_def = 0;
			}
		} else if (strcmp(t[0].s, "defaults") == 0) {
			if (n > 1) {
				perr(&p, t[1].col, "'defaults' takes no "
				    "value");
				goto tfail;
			}
			if (c->npair > 0) {
				perr(&p, t[0].col, "'defaults' must come "
				    "before the first pair");
				goto tfail;
			}
			in_def = 1;
			cur = &def;
		} else if (cur == NULL) {
			perr(&p, t[0].col, "'%s' outside a section: start "
			    "one with 'pair NAME'", log_esc(t[0].s, 64));
			goto tfail;
		} else if (apply_key(&p, cur, in_def, t, n, line + rest) !=
		    0)
			goto tfail;
		tokens_free(t, (size_t)n);
	}
	if (finish(&p, c, &def) != 0)
		goto out;
	*out = c;
	c = NULL;	/* transferred */
	r = 0;
	goto out;
tfail:
	tokens_free(t, (size_t)n);
	goto out;
nomem:
	tokens_free(t, (size_t)n);
	p.nomem = 1;
out:
	if (p.nomem)
		r = MSYNC_ERR_NOMEM;
	if (r != 0 && p.why != NULL) {
		*why = p.why;
		p.why = NULL;
	}
	free(p.why);
	free(t);
	free(line);
	pair_clear(&def);
	config_free(c);
	return r;
}

char *
config_default_path(void)
{
	const char	*x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");
	char		*s = NULL;

	if (x != NULL && x[0] == '/')
		return asprintf(&s, "%s/msync/config", x) < 0 ? NULL : s;
	if (h == NULL || h[0] == '\0')
		return NULL;
	return asprintf(&s, "%s/.config/msync/config", h) < 0 ? NULL : s;
}

int
config_load(const char *path, struct config **out, char **why)
{
	struct stat	 st;
	char		*text = NULL;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd, r;

	*out = NULL;
	*why = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT)
			return MSYNC_ERR_NOTFOUND;
		if (asprintf(why, "cannot open '%s': %s", path,
		    strerror(errno)) < 0)
			*why = NULL;
		return MSYNC_ERR_USAGE;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (asprintf(why, "'%s' is not a regular file", path) < 0)
			*why = NULL;
		close(fd);
		return MSYNC_ERR_USAGE;
	}
	/* It starts commands (rsh, passcmd): others must not write it. */
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		if (asprintf(why, "'%s' is writable by others; it names "
		    "commands msync runs (chmod go-w)", path) < 0)
			*why = NULL;
		close(fd);
		return MSYNC_ERR_USAGE;
	}
	if (st.st_size > CONFIG_SIZE_MAX) {
		if (asprintf(why, "'%s' is larger than %d bytes", path,
		    CONFIG_SIZE_MAX) < 0)
			*why = NULL;
		close(fd);
		return MSYNC_ERR_USAGE;
	}
	if ((text = malloc(CONFIG_SIZE_MAX + 1)) == NULL) {
		close(fd);
		return MSYNC_ERR_NOMEM;
	}
	while (len <= CONFIG_SIZE_MAX &&
	    (n = read(fd, text + len, CONFIG_SIZE_MAX + 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (asprintf(why, "cannot read '%s': %s", path,
			    strerror(errno)) < 0)
				*why = NULL;
			free(text);
			close(fd);
			return MSYNC_ERR_USAGE;
		}
		len += (size_t)n;
	}
	close(fd);
	r = config_parse(path, text, len, out, why);
	free(text);
	if (r != 0)
		return r;
	if (st.st_mode & (S_IRGRP | S_IROTH)) {
		for (size_t i = 0; i < (*out)->npair; i++)
			if ((*out)->pair[i].passcmd != NULL) {
				WARNX("'%s' is readable by others and "
				    "names a password command (chmod go-r)",
				    path);
				break;
			}
	}
	return 0;
}

/* Appends p to the list unless it is there already. */
static int
select_add(const struct pair ***list, size_t *n, const struct pair *p)
{
	const struct pair **v;

	for (size_t i = 0; i < *n; i++)
		if ((*list)[i] == p)
			return 0;
	if ((v = reallocarray(*list, *n + 1, sizeof(*v))) == NULL)
		return MSYNC_ERR_NOMEM;
	*list = v;
	v[(*n)++] = p;
	return 0;
}

static int
select_rec(const struct config *c, const char *name,
    const struct pair ***list, size_t *n, int depth, char **why)
{
	const struct pair	*p;
	const struct group	*g;
	int			 r;

	if ((p = config_pair(c, name)) != NULL)
		return select_add(list, n, p);
	if ((g = config_group(c, name)) == NULL)
		return MSYNC_ERR_NOTFOUND;
	/* config_parse refused loops; this bound is a second fence. */
	if (depth >= CONFIG_DEPTH_MAX) {
		if (asprintf(why, "group '%s' is nested too deep", name) < 0)
			*why = NULL;
		return MSYNC_ERR_USAGE;
	}
	for (size_t i = 0; i < g->nmember; i++)
		if ((r = select_rec(c, g->member[i], list, n, depth + 1,
		    why)) != 0)
			return r;
	return 0;
}

int
config_select(const struct config *c, const char *name,
    const struct pair ***list, size_t *n, char **why)
{
	*why = NULL;
	return select_rec(c, name, list, n, 0, why);
}
