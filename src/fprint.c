/*
 * fprint.c — the header fingerprint of fprint.h: Message-ID, Date and
 * the CRLF size, hashed.  Used by the side that is not the IMAP store
 * (over its messages' content) and by the IMAP store (over what
 * BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE)] and RFC822.SIZE return).
 */
#include <sys/types.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "msync.h"
#include "fprint.h"

#define FPRINT_TAG	"msync-fp1"

ssize_t
fprint_field(const char *hdr, size_t n, const char *name, char *out,
    size_t max)
{
	size_t	 nl = strlen(name), i = 0, o = 0;
	int	 sp = 0;

	for (;;) {
		/* i is at the start of a line. */
		if (i >= n || hdr[i] == '\n' || (hdr[i] == '\r' &&
		    (i + 1 >= n || hdr[i + 1] == '\n')))
			return -1;	/* the blank line: end of header */
		if (n - i > nl && strncasecmp(hdr + i, name, nl) == 0 &&
		    hdr[i + nl] == ':')
			break;
		while (i < n && hdr[i] != '\n')
			i++;
		i++;
	}
	for (i += nl + 1; i < n; i++) {
		if (hdr[i] == '\n' && (i + 1 >= n ||
		    (hdr[i + 1] != ' ' && hdr[i + 1] != '\t')))
			break;	/* the field ends (no continuation) */
		if (hdr[i] == ' ' || hdr[i] == '\t' || hdr[i] == '\r' ||
		    hdr[i] == '\n') {
			sp = o > 0;
			continue;
		}
		if (o >= max)
			break;
		if (sp) {
			out[o++] = ' ';
			sp = 0;
			if (o >= max)
				break;
		}
		out[o++] = hdr[i];
	}
	out[o] = '\0';
	return (ssize_t)o;
}

int
fprint_of(const char *hdr, size_t n, uint64_t crlf_size, struct guid *out)
{
	char		 id[FPRINT_FIELD_MAX + 1], date[FPRINT_FIELD_MAX + 1];
	char		 sz[24];
	ssize_t		 il, dl;
	XXH3_state_t	*st;
	XXH128_hash_t	 h;
	int		 sl;

	memset(out, 0, sizeof(*out));
	if ((il = fprint_field(hdr, n, "Message-ID", id,
	    FPRINT_FIELD_MAX)) <= 0)
		return MSYNC_ERR_NOTFOUND;
	if ((dl = fprint_field(hdr, n, "Date", date, FPRINT_FIELD_MAX)) < 0)
		dl = 0;
	sl = snprintf(sz, sizeof(sz), "%llu", (unsigned long long)crlf_size);
	if ((st = XXH3_createState()) == NULL)
		return MSYNC_ERR_NOMEM;
	XXH3_128bits_reset(st);
	XXH3_128bits_update(st, FPRINT_TAG, sizeof(FPRINT_TAG));
	XXH3_128bits_update(st, id, (size_t)il + 1);
	XXH3_128bits_update(st, date, (size_t)dl + 1);
	XXH3_128bits_update(st, sz, (size_t)sl);
	h = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	XXH128_canonicalFromHash((XXH128_canonical_t *)out->b, h);
	return 0;
}

void
fprint_init(struct fprint_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->nl = 1;
}

/*
 * Feeds content.  Every LF not preceded by CR counts two bytes (it
 * would travel as CRLF); the header is kept up to its blank line.
 */
void
fprint_update(struct fprint_ctx *c, const void *p, size_t len)
{
	const char	*s = p;

	for (size_t i = 0; i < len; i++) {
		if (!c->in_body) {
			if (s[i] == '\n' && c->nl)
				c->in_body = 1;	/* LF or CRLF alone */
			else if (c->nhdr < sizeof(c->hdr))
				c->hdr[c->nhdr++] = s[i];
			if (s[i] == '\n')
				c->nl = 1;
			else if (s[i] != '\r')
				c->nl = 0;
		}
		c->crlf_size += s[i] == '\n' && !c->cr ? 2 : 1;
		c->cr = s[i] == '\r';
	}
}

int
fprint_final(struct fprint_ctx *c, struct guid *out)
{
	return fprint_of(c->hdr, c->nhdr, c->crlf_size, out);
}
