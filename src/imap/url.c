/*
 * url.c — imap:// and imaps:// locations; see url.h.
 */
#include <ctype.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "msync.h"
#include "tls.h"
#include "imap/url.h"

#define URL_PART_MAX	1024

int
imap_url_is(const char *s)
{
	return s != NULL && (strncasecmp(s, "imap://", 7) == 0 ||
	    strncasecmp(s, "imaps://", 8) == 0);
}

/* Decodes %XX in s[0..n) into a new string; NULL on a bad escape. */
static char *
pct_decode(const char *s, size_t n)
{
	char	*o, hex[3];
	size_t	 i, k = 0;

	if ((o = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n)
				goto bad;
			if (!isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]))
				goto bad;
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			hex[2] = '\0';
			o[k++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else
			o[k++] = s[i];
		if (o[k - 1] == '\0' || (unsigned char)o[k - 1] < 0x20)
			goto bad;
	}
	o[k] = '\0';
	return o;
bad:
	free(o);
	return NULL;
}

void
imap_url_free(struct imap_url *u)
{
	if (u == NULL)
		return;
	free(u->user);
	free(u->host);
	free(u->root);
	free(u->fingerprint);
	free(u->auth);
	memset(u, 0, sizeof(*u));
}

int
imap_url_parse(const char *s, struct imap_url *out, char **why)
{
	struct imap_url	 u;
	const char	*p, *end, *at, *hs, *he, *opt, *slash;
	char		*copy = NULL, *o, *next, pin[65];
	struct passwd	*pw;
	long		 port;
	int		 r = MSYNC_ERR_USAGE, tls_none = 0;

	memset(&u, 0, sizeof(u));
	memset(out, 0, sizeof(*out));
	if (!imap_url_is(s) || strlen(s) > 4 * URL_PART_MAX) {
		msync_why(why, "not an imap:// or imaps:// location");
		goto out;
	}
	u.tls = strncasecmp(s, "imaps://", 8) == 0 ? IMAP_TLS_IMPLICIT :
	    IMAP_TLS_STARTTLS;
	p = s + (u.tls == IMAP_TLS_IMPLICIT ? 8 : 7);
	opt = strchr(p, ';');
	end = opt != NULL ? opt : p + strlen(p);
	slash = memchr(p, '/', (size_t)(end - p));
	if (slash == NULL)
		slash = end;
	/* The last '@' before the path ends the user. */
	at = NULL;
	for (const char *q = p; q < slash; q++)
		if (*q == '@')
			at = q;
	if (at != NULL) {
		if (memchr(p, ':', (size_t)(at - p)) != NULL) {
			msync_why(why, "a password in the location is refused "
			    "(it would show in the process list): use "
			    "--passcmd, ~/.netrc or the prompt");
			goto out;
		}
		if (at == p || (u.user = pct_decode(p, (size_t)(at - p))) ==
		    NULL) {
			msync_why(why, "bad user name in the location");
			goto out;
		}
		hs = at + 1;
	} else
		hs = p;
	if (hs < slash && *hs == '[') {
		he = memchr(hs, ']', (size_t)(slash - hs));
		if (he == NULL) {
			msync_why(why, "unterminated [address] in the location");
			goto out;
		}
		u.host = strndup(hs + 1, (size_t)(he - hs - 1));
		he++;
	} else {
		he = memchr(hs, ':', (size_t)(slash - hs));
		if (he == NULL)
			he = slash;
		u.host = strndup(hs, (size_t)(he - hs));
	}
	if (u.host == NULL) {
		r = MSYNC_ERR_NOMEM;
		goto out;
	}
	if (u.host[0] == '\0' || u.host[0] == '-' ||
	    strlen(u.host) > 255 || strpbrk(u.host, " /@\\") != NULL) {
		msync_why(why, "bad host name in the location");
		goto out;
	}
	u.port = u.tls == IMAP_TLS_IMPLICIT ? 993 : 143;
	if (he < slash) {
		if (*he != ':' || he + 1 == slash) {
			msync_why(why, "bad port in the location");
			goto out;
		}
		port = 0;
		for (p = he + 1; p < slash; p++) {
			if (!isdigit((unsigned char)*p) || port > 65535) {
				msync_why(why, "bad port in the location");
				goto out;
			}
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535) {
			msync_why(why, "bad port in the location");
			goto out;
		}
		u.port = (int)port;
	}
	/* The root folder, without slashes at its ends. */
	p = slash;
	while (p < end && *p == '/')
		p++;
	he = end;
	while (he > p && he[-1] == '/')
		he--;
	if ((u.root = pct_decode(p, (size_t)(he - p))) == NULL) {
		msync_why(why, "bad root folder in the location");
		goto out;
	}
	if (opt != NULL) {
		if ((copy = strdup(opt + 1)) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		for (o = copy; o != NULL; o = next) {
			if ((next = strchr(o, ';')) != NULL)
				*next++ = '\0';
			if (strcasecmp(o, "tls=none") == 0)
				tls_none = 1;
			else if (strncasecmp(o, "fingerprint=", 12) == 0 &&
			    u.fingerprint == NULL) {
				if (tls_parse_fingerprint(o + 12, pin) != 0) {
					msync_why(why, "bad fingerprint: want "
					    "sha256: and 64 hex digits");
					goto out;
				}
				if ((u.fingerprint = strdup(o + 12)) == NULL) {
					r = MSYNC_ERR_NOMEM;
					goto out;
				}
			} else if (strncasecmp(o, "auth=", 5) == 0 &&
			    u.auth == NULL && (strcasecmp(o + 5, "plain") == 0 ||
			    strcasecmp(o + 5, "login") == 0 ||
			    strcasecmp(o + 5, "xoauth2") == 0 ||
			    strcasecmp(o + 5, "oauthbearer") == 0)) {
				if ((u.auth = strdup(o + 5)) == NULL) {
					r = MSYNC_ERR_NOMEM;
					goto out;
				}
			} else {
				msync_why(why, "unknown option ';%s' (known: "
				    "tls=none, fingerprint=sha256:..., auth="
				    "plain|login|xoauth2|oauthbearer)",
				    log_esc(o, 60));
				goto out;
			}
		}
	}
	if (tls_none) {
		if (u.tls == IMAP_TLS_IMPLICIT) {
			msync_why(why, ";tls=none goes with imap://, not imaps://");
			goto out;
		}
		u.tls = IMAP_TLS_NONE;
	}
	if (u.user == NULL) {
		const char *e = getenv("USER");

		if ((e == NULL || *e == '\0') &&
		    (pw = getpwuid(getuid())) != NULL)
			e = pw->pw_name;
		if (e == NULL || (u.user = strdup(e)) == NULL) {
			msync_why(why, "no user name: write user@host");
			goto out;
		}
	}
	*out = u;
	memset(&u, 0, sizeof(u));	/* transferred */
	r = 0;
out:
	free(copy);
	imap_url_free(&u);
	return r;
}
