/*
 * loc.c — where a store is: parsing the locations given on the command
 * line into struct loc (see transport.h and docs/REMOTE.md).
 *
 *   PATH                          a local store; what is on disk says
 *                                 which format (store_detect)
 *   maildir:PATH                  a local Maildir
 *   mbox:PATH                     a local mbox file (INBOX) or directory
 *                                 of mbox files
 *   [user@]host:PATH              remote, rsync's rule: a ':' before the
 *                                 first '/' ("./a:b" and "/a:b" are local)
 *   [user@][v6addr]:PATH          remote, IPv6 literal
 *   ssh://[user@]host[:port]/PATH remote; "/~/x" is x in the home dir,
 *                                 "/abs" is absolute
 *
 * Any of them may end in options, each ";key=value": "layout=fs",
 * "layout=maildir++", "layout=mbox", "layout=thunderbird" (an mbox
 * directory as Thunderbird keeps it), for a local mbox "inbox=PATH"
 * (INBOX from another file, e.g. the spool), and for a local or ssh mbox
 * "format=mboxo" or "format=mboxrd" (how ">From " lines read).  The
 * prefixes take a local path only; "maildir:host:PATH" is refused,
 * "host:PATH;layout=fs" or "host:PATH;layout=mbox" is fine.  A bare
 * remote path is looked at by the server.  Every location gets a
 * canonical text form (struct loc.text) that keys the sync state, so
 * that the spellings of one store give the same text.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mboxfmt.h"
#include "msync.h"
#include "msyncs.h"
#include "store.h"
#include "transport.h"
#include "imap/url.h"

#define LOC_HOST_MAX	255	/* bytes in a host name */
#define LOC_USER_MAX	256	/* bytes in a user name */

/*
 * Returns 1 if c may appear in an unbracketed host name (or ssh_config
 * alias).  Shell metacharacters are refused: ssh may paste the host into
 * a ProxyCommand.
 */
static int
loc_hostchar(int c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

/*
 * Checks a host name: not empty, not starting with '-' (it would be an
 * option to ssh), bounded, and made of host characters.  An IPv6 literal
 * (v6 set; the brackets already stripped) takes hex digits, ':' and '.',
 * and an optional "%zone".
 * Returns 0 on success, MSYNC_ERR_USAGE on failure.
 */
static int
loc_check_host(const char *h, int v6)
{
	size_t	 i, len = strlen(h);
	int	 zone = 0;

	if (len == 0 || len > LOC_HOST_MAX || h[0] == '-')
		return MSYNC_ERR_USAGE;
	for (i = 0; i < len; i++) {
		if (!v6) {
			if (!loc_hostchar(h[i]))
				return MSYNC_ERR_USAGE;
		} else if (zone) {
			if (!loc_hostchar(h[i]))
				return MSYNC_ERR_USAGE;
		} else if (h[i] == '%' && i > 0)
			zone = 1;
		else if (!isxdigit((unsigned char)h[i]) && h[i] != ':' &&
		    h[i] != '.')
			return MSYNC_ERR_USAGE;
	}
	if (v6 && (strchr(h, ':') == NULL || h[len - 1] == '%'))
		return MSYNC_ERR_USAGE;
	return 0;
}

/*
 * Checks a user name: not empty, not starting with '-', bounded, made of
 * letters, digits and "._-+@".
 * Returns 0 on success, MSYNC_ERR_USAGE on failure.
 */
static int
loc_check_user(const char *u)
{
	size_t	 i, len = strlen(u);

	if (len == 0 || len > LOC_USER_MAX || u[0] == '-')
		return MSYNC_ERR_USAGE;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)u[i]) && strchr("._-+@", u[i]) ==
		    NULL)
			return MSYNC_ERR_USAGE;
	return 0;
}

/*
 * Parses a port number: decimal digits only, 1..65535.
 * Returns 0 on success, MSYNC_ERR_USAGE on failure.
 */
static int
loc_parse_port(const char *s, size_t len, int *port)
{
	size_t	 i;
	long	 v = 0;

	if (len == 0 || len > 5)
		return MSYNC_ERR_USAGE;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return MSYNC_ERR_USAGE;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return MSYNC_ERR_USAGE;
	*port = (int)v;
	return 0;
}

/*
 * Checks a remote path: not empty, bounded, no control characters (it is
 * shown to the user and travels to the server in the protocol).
 * Returns 0 on success, MSYNC_ERR_USAGE on failure.
 */
static int
loc_check_rpath(const char *p)
{
	size_t	 i, len = strlen(p);

	if (len == 0 || len > MSYNC_PATH_MAX)
		return MSYNC_ERR_USAGE;
	for (i = 0; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return MSYNC_ERR_USAGE;
	return 0;
}

/*
 * Copies len bytes of s into a new string in *out.
 * Returns 0 on success, MSYNC_ERR_NOMEM on failure.
 */
static int
loc_strndup(const char *s, size_t len, char **out)
{
	if ((*out = strndup(s, len)) == NULL)
		return MSYNC_ERR_NOMEM;
	return 0;
}

/*
 * Splits "[user@]host" or "[user@][v6]" (len bytes of s) into l->user
 * and l->host, checking both.  *v6 is set for a bracketed host.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
loc_userhost(const char *s, size_t len, struct loc *l, int *v6)
{
	const char	*at = NULL, *h;
	size_t		 i, hlen;
	int		 r;

	*v6 = 0;
	for (i = 0; i < len; i++)
		if (s[i] == '@')
			at = s + i;
	if (at != NULL) {
		if ((r = loc_strndup(s, at - s, &l->user)) != 0)
			return r;
		if ((r = loc_check_user(l->user)) != 0)
			return r;
		h = at + 1;
	} else
		h = s;
	hlen = len - (h - s);
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		*v6 = 1;
		h++;
		hlen -= 2;
	}
	if ((r = loc_strndup(h, hlen, &l->host)) != 0)
		return r;
	return loc_check_host(l->host, *v6);
}

/*
 * Parses the short remote form "[user@]host:PATH" (s), where the host
 * ends at the first ':' outside brackets.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
loc_parse_short(const char *s, struct loc *l, int *v6)
{
	const char	*sep = NULL, *p;
	int		 inbr = 0, r;

	for (p = s; *p != '\0' && sep == NULL; p++) {
		if (*p == '[')
			inbr = 1;
		else if (*p == ']')
			inbr = 0;
		else if (*p == ':' && !inbr)
			sep = p;
	}
	if (sep == NULL)
		return MSYNC_ERR_USAGE;
	if ((r = loc_userhost(s, sep - s, l, v6)) != 0)
		return r;
	p = sep + 1;
	if (*p == ':')		/* rsync's "host::module": not ours */
		return MSYNC_ERR_USAGE;
	if ((r = loc_check_rpath(p)) != 0)
		return r;
	return loc_strndup(p, strlen(p), &l->path);
}

/*
 * Parses the URL form; s points just after "ssh://":
 * "[user@]host[:port]/PATH" or "[user@][v6][:port]/PATH".  A path of
 * "/~" or "/~/x" (or "/~user/x") is kept without its leading '/', for the
 * server to expand; any other path is absolute.  No %-decoding is done.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
loc_parse_url(const char *s, struct loc *l, int *v6)
{
	const char	*slash, *at = NULL, *hp, *colon = NULL, *p;
	int		 r;

	if ((slash = strchr(s, '/')) == NULL)
		return MSYNC_ERR_USAGE;
	for (p = s; p < slash; p++)
		if (*p == '@')
			at = p;
	hp = at != NULL ? at + 1 : s;
	if (*hp == '[') {
		if ((p = memchr(hp, ']', slash - hp)) == NULL)
			return MSYNC_ERR_USAGE;
		if (p + 1 < slash) {
			if (p[1] != ':')
				return MSYNC_ERR_USAGE;
			colon = p + 1;
		}
	} else
		colon = memchr(hp, ':', slash - hp);
	if (colon != NULL &&
	    (r = loc_parse_port(colon + 1, slash - colon - 1, &l->port)) != 0)
		return r;
	if ((r = loc_userhost(s, (colon != NULL ? colon : slash) - s,
	    l, v6)) != 0)
		return r;
	p = slash;
	if (p[1] == '~')
		p++;
	if ((r = loc_check_rpath(p)) != 0)
		return r;
	return loc_strndup(p, strlen(p), &l->path);
}

/*
 * Lexically cleans an absolute path in place: collapses "//", drops "."
 * components, resolves ".." against the previous component, drops a
 * trailing '/'.  Used only for paths that do not exist yet.
 */
static void
loc_clean(char *p)
{
	char	*r = p, *w = p;

	while (*r != '\0') {
		while (*r == '/')
			r++;
		if (*r == '\0')
			break;
		if (r[0] == '.' && (r[1] == '/' || r[1] == '\0')) {
			r++;
			continue;
		}
		if (r[0] == '.' && r[1] == '.' && (r[2] == '/' ||
		    r[2] == '\0')) {
			r += 2;
			while (w > p && *--w != '/')
				;
			continue;
		}
		*w++ = '/';
		while (*r != '\0' && *r != '/')
			*w++ = *r++;
	}
	if (w == p)
		*w++ = '/';
	*w = '\0';
}

/*
 * Makes a local path absolute: realpath(3) when it exists; else the real
 * path of its parent plus the last component (a store about to be
 * created); else the path joined to the working directory and cleaned.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
static int
loc_absolute(const char *path, char **out)
{
	char	*p = NULL, *dir = NULL, *rdir = NULL, *cwd = NULL, *slash;
	char	*res = NULL;
	size_t	 len;
	int	 r = MSYNC_ERR_NOMEM;

	*out = NULL;
	if ((p = strdup(path)) == NULL)
		goto out;
	len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	if ((res = realpath(p, NULL)) != NULL)
		goto done;
	if (errno == ENOMEM)
		goto out;

	/* Not there (yet): try its parent. */
	slash = strrchr(p, '/');
	if (slash != NULL && slash != p)
		dir = strndup(p, slash - p);
	else
		dir = strdup(slash == p ? "/" : ".");
	if (dir == NULL)
		goto out;
	if (strcmp(slash != NULL ? slash + 1 : p, ".") != 0 &&
	    strcmp(slash != NULL ? slash + 1 : p, "..") != 0 &&
	    (rdir = realpath(dir, NULL)) != NULL) {
		if (asprintf(&res, "%s/%s", strcmp(rdir, "/") == 0 ? "" : rdir,
		    slash != NULL ? slash + 1 : p) == -1) {
			res = NULL;
			goto out;
		}
		goto done;
	}

	/* Neither: join with the working directory. */
	if (p[0] == '/') {
		if ((res = strdup(p)) == NULL)
			goto out;
	} else {
		if ((cwd = getcwd(NULL, 0)) == NULL) {
			r = errno == ENOMEM ? MSYNC_ERR_NOMEM : MSYNC_ERR_IO;
			goto out;
		}
		if (asprintf(&res, "%s/%s", cwd, p) == -1) {
			res = NULL;
			goto out;
		}
	}
	loc_clean(res);
done:
	if (strlen(res) > MSYNC_PATH_MAX) {
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	*out = res;
	res = NULL;	/* transferred */
	r = 0;
out:
	free(p);
	free(dir);
	free(rdir);
	free(cwd);
	free(res);
	return r;
}

/*
 * Builds l->text, the canonical form:
 *   local:  "/abs/path[;layout=fs]"
 *   remote: "ssh://[user@]host[:port]/PATH[;layout=fs]" with the host in
 *           lower case ("[v6]" bracketed), PATH "~/x" for a path relative
 *           to the home directory (also "host:x"), "/abs" kept absolute.
 * Returns 0 on success, MSYNC_ERR_NOMEM on failure.
 */
static int
loc_text(struct loc *l, int v6)
{
	const char	*lay = "", *pre, *rp;
	char		 port[16];
	char		*h = NULL;
	size_t		 i;
	int		 n;

	if (l->daemon != NULL)
		return msyncs_loc_text(l, v6);
	switch (l->layout) {
	case LAYOUT_FS:
		lay = ";layout=fs";
		break;
	case LAYOUT_MBOX:
		lay = l->host != NULL ? ";layout=mbox" : "";
		break;
	case LAYOUT_MBOX_TB:
		lay = ";layout=thunderbird";
		break;
	default:
		break;
	}
	if (l->host == NULL) {
		n = asprintf(&l->text, "%s%s%s%s%s",
		    LAYOUT_IS_MBOX(l->layout) ? "mbox:" : "", l->path, lay,
		    l->inbox != NULL ? ";inbox=" : "",
		    l->inbox != NULL ? l->inbox : "");
		goto out;
	}
	if ((h = strdup(l->host)) == NULL)
		return MSYNC_ERR_NOMEM;
	for (i = 0; h[i] != '\0'; i++)
		h[i] = tolower((unsigned char)h[i]);
	port[0] = '\0';
	if (l->port != 0)
		snprintf(port, sizeof(port), ":%d", l->port);
	rp = l->path;
	if (rp[0] == '/') {
		pre = "";
		rp++;
	} else if (rp[0] == '~')
		pre = "";
	else
		pre = "~/";
	n = asprintf(&l->text, "ssh://%s%s%s%s%s%s/%s%s%s",
	    l->user != NULL ? l->user : "", l->user != NULL ? "@" : "",
	    v6 ? "[" : "", h, v6 ? "]" : "", port, pre, rp, lay);
	free(h);
out:
	if (n == -1) {
		l->text = NULL;
		return MSYNC_ERR_NOMEM;
	}
	return 0;
}

/*
 * Parses a location given on the command line into *out (see the top of
 * this file).  On failure *out holds nothing to free.
 * Returns 0 on success, MSYNC_ERR_USAGE for a malformed location,
 * MSYNC_ERR_NOMEM or MSYNC_ERR_IO.
 */
/*
 * Takes the trailing ";key=value" options off s (in place) into *l,
 * *inbox (borrowed from s) and *fmt (set if ";format=" was given).  Only the last of a repeated key is an
 * option; the others are part of the path, as is any other ";...".
 * Returns 0, or MSYNC_ERR_USAGE for an unknown key or value.
 */
static int
loc_options(char *s, struct loc *l, const char **inbox, int *fmt)
{
	char	*semi;
	int	 lay = 0;

	*inbox = NULL;
	*fmt = 0;
	/* Bounded: each round takes one ';' off the end of s. */
	while ((semi = strrchr(s, ';')) != NULL) {
		if (strncmp(semi + 1, "layout=", 7) == 0 && !lay) {
			const char	*v = semi + 8;

			if (strcmp(v, "fs") == 0)
				l->layout = LAYOUT_FS;
			else if (strcmp(v, "maildir++") == 0)
				l->layout = LAYOUT_MAILDIRPP;
			else if (strcmp(v, "mbox") == 0)
				l->layout = LAYOUT_MBOX;
			else if (strcmp(v, "thunderbird") == 0)
				l->layout = LAYOUT_MBOX_TB;
			else
				return MSYNC_ERR_USAGE;
			lay = 1;
		} else if (strncmp(semi + 1, "inbox=", 6) == 0 &&
		    *inbox == NULL) {
			if (semi[7] == '\0')
				return MSYNC_ERR_USAGE;
			*inbox = semi + 7;
		} else if (strncmp(semi + 1, "format=", 7) == 0 && !*fmt) {
			if (strcmp(semi + 8, "mboxo") == 0)
				l->format = MBOXFMT_MBOXO;
			else if (strcmp(semi + 8, "mboxrd") == 0)
				l->format = MBOXFMT_MBOXRD;
			else
				return MSYNC_ERR_USAGE;
			*fmt = 1;
		} else
			break;	/* a ';' that is part of the path */
		*semi = '\0';
	}
	return 0;
}

/*
 * An imap:// or imaps:// location: checked here (so a bad one is a usage
 * error at once), kept verbatim as path and text for the IMAP store,
 * which runs on this machine (host NULL).
 */
static int
loc_imap(const char *arg, struct loc *out)
{
	struct imap_url	 u;
	char		*why = NULL;
	int		 r;

	if ((r = imap_url_parse(arg, &u, &why)) != 0) {
		if (why != NULL)
			ERRX("%s", why);
		free(why);
		return r;
	}
	imap_url_free(&u);
	out->layout = LAYOUT_IMAP;
	if ((out->path = strdup(arg)) == NULL ||
	    (out->text = strdup(arg)) == NULL) {
		loc_free(out);
		return MSYNC_ERR_NOMEM;
	}
	return 0;
}

int
loc_parse(const char *arg, struct loc *out)
{
	struct loc	 l;
	char		*s = NULL, *body, *abs = NULL;
	const char	*slash, *colon, *inbox = NULL;
	int		 r = MSYNC_ERR_USAGE, v6 = 0, prefixed = 0, mbox = 0;
	int		 fmt = 0;

	memset(&l, 0, sizeof(l));
	memset(out, 0, sizeof(*out));
	if (imap_url_is(arg))
		return loc_imap(arg, out);
	l.layout = LAYOUT_MAILDIRPP;
	if (arg == NULL || arg[0] == '\0' ||
	    strlen(arg) > MSYNC_PATH_MAX + LOC_HOST_MAX + LOC_USER_MAX + 64)
		goto out;
	if ((s = strdup(arg)) == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}

	if ((r = loc_options(s, &l, &inbox, &fmt)) != 0)
		goto out;
	r = MSYNC_ERR_USAGE;

	body = s;
	if (strncmp(body, "maildir:", 8) == 0) {
		body += 8;
		prefixed = 1;
		if (LAYOUT_IS_MBOX(l.layout))
			goto out;
	} else if (strncmp(body, "mbox:", 5) == 0) {
		body += 5;
		prefixed = mbox = 1;
		if (l.layout == LAYOUT_FS)
			goto out;
		if (l.layout != LAYOUT_MBOX_TB)
			l.layout = LAYOUT_MBOX;
	}
	/* INBOX from another file: a local mbox only. */
	if (inbox != NULL && !LAYOUT_IS_MBOX(l.layout))
		goto out;
	if (strncmp(body, "msyncs://", 9) == 0) {
		if (prefixed ||
		    (r = msyncs_loc_params(body + 9, &l)) != 0 ||
		    (r = loc_parse_url(body + 9, &l, &v6)) != 0 ||
		    (r = msyncs_loc_module(&l)) != 0)
			goto out;
	} else if (strncmp(body, "ssh://", 6) == 0) {
		if (prefixed)
			goto out;
		if ((r = loc_parse_url(body + 6, &l, &v6)) != 0)
			goto out;
	} else if ((colon = strchr(body, ':')) != NULL &&
	    ((slash = strchr(body, '/')) == NULL || colon < slash)) {
		r = MSYNC_ERR_USAGE;
		if (prefixed)	/* "maildir:host:PATH" is not supported */
			goto out;
		if ((r = loc_parse_short(body, &l, &v6)) != 0)
			goto out;
	} else {
		if (body[0] == '\0')
			goto out;
		if ((r = loc_absolute(body, &abs)) != 0)
			goto out;
		l.path = abs;
		abs = NULL;	/* transferred */
		if (inbox != NULL && (r = loc_absolute(inbox, &l.inbox)) != 0)
			goto out;
		/* A bare path: what is on disk says which format. */
		if (!prefixed && l.layout == LAYOUT_MAILDIRPP &&
		    (r = store_detect(l.path, &l.layout)) != 0) {
			if (r == MSYNC_ERR_USAGE)
				ERRX("'%s' is neither a Maildir nor an mbox "
				    "file: name its format, maildir:PATH or "
				    "mbox:PATH", log_esc(l.path, 300));
			else
				ERRC(r, "cannot read '%s'",
				    log_esc(l.path, 300));
			r = MSYNC_ERR_USAGE;
			goto out;
		}
	}
	if (l.host != NULL && inbox != NULL) {
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	/*
	 * How to read an mbox: not for a Maildir, not to a daemon.  A
	 * remote bare path may be an mbox file (the server looks), and the
	 * server refuses the option for a Maildir.
	 */
	if (fmt && (l.daemon != NULL || (l.host == NULL ?
	    !LAYOUT_IS_MBOX(l.layout) : l.layout == LAYOUT_FS ||
	    l.layout == LAYOUT_IMAP))) {
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	if ((r = loc_text(&l, v6)) != 0)
		goto out;
	*out = l;
	memset(&l, 0, sizeof(l));	/* transferred */
	r = 0;
out:
	loc_free(&l);
	free(abs);
	free(s);
	return r;
}

/*
 * Frees what a struct loc owns (not the struct itself) and clears it.
 * Accepts NULL.
 */
void
loc_free(struct loc *l)
{
	if (l == NULL)
		return;
	free(l->user);
	free(l->host);
	free(l->path);
	free(l->inbox);
	free(l->text);
	dloc_free(l->daemon);
	memset(l, 0, sizeof(*l));
}
