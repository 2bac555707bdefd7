/*
 * names.c — mailbox names: validation, IMAP modified UTF-7 (RFC 3501
 * 5.1.3), and the folder directory encodings.
 *
 * Maildir++ (as Dovecot writes it): "INBOX" is the store root, "A/B" is
 * the directory ".A.B" with each component in modified UTF-7.  A
 * component containing '.' cannot be written (it would read back as two
 * levels) and is refused.  The directory ".INBOX" is refused when read
 * back: its name would be "INBOX", which is the root folder, so it is
 * ambiguous; ".INBOX.X" is "INBOX/X" and is fine.
 *
 * fs: "INBOX" is the root, "A/B" the nested directory "A/B", each
 * component in modified UTF-7 too (as Dovecot's fs layout does).
 * Components that would clash with the Maildir structure itself (cur,
 * new, tmp, msync.* files, names starting with '.') are refused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msync.h"
#include "names.h"
#include "store.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/*
 * Decodes one UTF-8 sequence at s (at most len bytes) into *cp.
 * Rejects overlong forms, surrogates and code points above U+10FFFF.
 * Returns the sequence length, or 0 if it is invalid.
 */
static size_t
utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t	c;
	size_t		n, i;

	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
	} else
		return 0;
	if (n > len)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* Appends code point c as UTF-8 to out; returns the bytes written. */
static size_t
utf8_encode(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/*
 * 1 if name (len bytes) is a usable mailbox name; see names.h.  C1
 * control characters (U+0080..U+009F) are refused too.
 */
int
names_valid(const char *name, size_t len)
{
	const unsigned char	*s = (const unsigned char *)name;
	size_t			 i = 0, n, comp = 0, depth = 1;
	uint32_t		 cp;

	if (name == NULL || len == 0 || len > MSYNC_NAME_MAX)
		return 0;
	while (i < len) {
		if ((n = utf8_decode(s + i, len - i, &cp)) == 0)
			return 0;
		if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
			return 0;	/* NUL included */
		if (cp == '/') {
			/* End of a component of comp bytes at i - comp. */
			if (comp == 0 ||
			    (comp == 1 && s[i - 1] == '.') ||
			    (comp == 2 && s[i - 1] == '.' && s[i - 2] == '.'))
				return 0;
			if (++depth > MSYNC_NAME_DEPTH)
				return 0;
			comp = 0;
		} else
			comp += n;
		i += n;
	}
	if (comp == 0 || (comp == 1 && s[i - 1] == '.') ||
	    (comp == 2 && s[i - 1] == '.' && s[i - 2] == '.'))
		return 0;
	return 1;
}

/*
 * UTF-8 -> IMAP modified UTF-7.  Printable ASCII stays ('&' becomes
 * "&-"); runs of anything else become '&', modified BASE64 of their
 * UTF-16BE, '-'.  *out is owned by the caller.  Returns 0,
 * MSYNC_ERR_BADNAME for invalid UTF-8 or a NUL, MSYNC_ERR_TOOBIG, or
 * MSYNC_ERR_NOMEM.
 */
int
names_to_mutf7(const char *utf8, char **out)
{
	const unsigned char	*s = (const unsigned char *)utf8;
	size_t			 len, i = 0, n, o = 0, cap;
	uint32_t		 cp, bits = 0;
	int			 nbits = 0, inb64 = 0;
	uint16_t		 u[2];
	int			 nu, k;
	char			*r;

	*out = NULL;
	len = strlen(utf8);
	if (len > MSYNC_NAME_MAX * 4)
		return MSYNC_ERR_TOOBIG;
	/* Worst case: each 4-byte sequence -> 2 units = 32 bits -> 6 chars. */
	cap = len * 3 + 3;
	if ((r = malloc(cap)) == NULL)
		return MSYNC_ERR_NOMEM;
	while (i < len) {
		if ((n = utf8_decode(s + i, len - i, &cp)) == 0) {
			free(r);
			return MSYNC_ERR_BADNAME;
		}
		i += n;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (inb64) {
				if (nbits > 0)
					r[o++] = b64chars[(bits << (6 - nbits))
					    & 0x3f];
				r[o++] = '-';
				inb64 = 0;
				nbits = 0;
				bits = 0;
			}
			r[o++] = (char)cp;
			if (cp == '&')
				r[o++] = '-';
			continue;
		}
		if (!inb64) {
			r[o++] = '&';
			inb64 = 1;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			u[0] = (uint16_t)(0xd800 | (cp >> 10));
			u[1] = (uint16_t)(0xdc00 | (cp & 0x3ff));
			nu = 2;
		} else {
			u[0] = (uint16_t)cp;
			nu = 1;
		}
		for (k = 0; k < nu; k++) {
			bits = (bits << 16) | u[k];
			nbits += 16;
			while (nbits >= 6) {
				nbits -= 6;
				r[o++] = b64chars[(bits >> nbits) & 0x3f];
			}
			bits &= (1u << nbits) - 1;
		}
	}
	if (inb64) {
		if (nbits > 0)
			r[o++] = b64chars[(bits << (6 - nbits)) & 0x3f];
		r[o++] = '-';
	}
	r[o] = '\0';
	*out = r;
	return 0;
}

/* The value of a modified BASE64 character, or -1. */
static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/*
 * IMAP modified UTF-7 -> UTF-8.  Strict: only printable ASCII on input,
 * every '&' closed by '-', no non-zero or surplus padding bits, paired
 * surrogates, no encoded printable ASCII or NUL (so every name has one
 * encoding and round trips).  *out is owned by the caller.  Returns 0,
 * MSYNC_ERR_BADNAME, MSYNC_ERR_TOOBIG or MSYNC_ERR_NOMEM.
 */
int
names_from_mutf7(const char *mutf7, char **out)
{
	const unsigned char	*s = (const unsigned char *)mutf7;
	size_t			 len, i = 0, o = 0, nchars;
	uint32_t		 bits, hi, cp;
	int			 nbits, v, r = MSYNC_ERR_BADNAME;
	char			*res;
	uint16_t		 u;

	*out = NULL;
	len = strlen(mutf7);
	if (len > MSYNC_NAME_MAX * 8)
		return MSYNC_ERR_TOOBIG;
	/* Output never exceeds input: 8 BASE64 chars hold at most 12 UTF-8. */
	if ((res = malloc(len * 2 + 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	while (i < len) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			goto out;
		if (s[i] != '&') {
			res[o++] = (char)s[i++];
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			res[o++] = '&';
			i++;
			continue;
		}
		bits = 0;
		nbits = 0;
		hi = 0;
		nchars = 0;
		for (;; i++) {
			if (i >= len)
				goto out;	/* unterminated */
			if (s[i] == '-')
				break;
			if ((v = b64val(s[i])) < 0)
				goto out;
			nchars++;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			u = (uint16_t)(bits >> nbits);
			bits &= (1u << nbits) - 1;
			if (hi != 0) {
				if (u < 0xdc00 || u > 0xdfff)
					goto out;
				cp = 0x10000 + ((hi - 0xd800) << 10) +
				    (u - 0xdc00);
				hi = 0;
			} else if (u >= 0xd800 && u <= 0xdbff) {
				hi = u;
				continue;
			} else if (u >= 0xdc00 && u <= 0xdfff)
				goto out;
			else
				cp = u;
			if (cp >= 0x20 && cp <= 0x7e)
				goto out;	/* must be plain ASCII */
			if (cp == 0)
				goto out;
			o += utf8_encode(cp, res + o);
		}
		i++;	/* the '-' */
		if (nchars == 0 || hi != 0 || nbits >= 6 || bits != 0)
			goto out;
	}
	res[o] = '\0';
	*out = res;
	res = NULL;	/* transferred */
	r = 0;
out:
	free(res);
	return r;
}

/* 1 if component c (n bytes) is one the fs layout cannot use. */
static int
fs_reserved(const char *c, size_t n)
{
	static const char *const res[] = {
		"cur", "new", "tmp", "msync.index", "msync.lock",
		"dovecot-keywords", "maildirfolder"
	};
	size_t	i;

	if (n > 0 && c[0] == '.')
		return 1;
	for (i = 0; i < sizeof(res) / sizeof(res[0]); i++)
		if (strlen(res[i]) == n && memcmp(res[i], c, n) == 0)
			return 1;
	return 0;
}

/*
 * Internal name -> folder directory relative to the store root (see
 * names.h and the comment at the top of this file).  *out is owned by the
 * caller; "" for INBOX.  Returns 0, MSYNC_ERR_BADNAME, MSYNC_ERR_TOOBIG
 * or MSYNC_ERR_NOMEM.
 */
int
names_to_dir(const char *name, int layout, char **out)
{
	char		*enc = NULL, *res = NULL, *p;
	const char	*c, *e;
	size_t		 len, n;
	int		 r;

	*out = NULL;
	if (name == NULL || !names_valid(name, strlen(name)))
		return MSYNC_ERR_BADNAME;
	if (strcmp(name, "INBOX") == 0) {
		if ((*out = strdup("")) == NULL)
			return MSYNC_ERR_NOMEM;
		return 0;
	}
	if ((r = names_to_mutf7(name, &enc)) != 0)
		goto out;
	len = strlen(enc);
	if (len >= MSYNC_PATH_MAX) {
		r = MSYNC_ERR_TOOBIG;
		goto out;
	}
	if (layout == LAYOUT_MAILDIRPP) {
		if (strchr(enc, '.') != NULL || len + 1 > 255) {
			r = MSYNC_ERR_BADNAME;
			goto out;
		}
		if ((res = malloc(len + 2)) == NULL) {
			r = MSYNC_ERR_NOMEM;
			goto out;
		}
		res[0] = '.';
		memcpy(res + 1, enc, len + 1);
		for (p = res + 1; *p != '\0'; p++)
			if (*p == '/')
				*p = '.';
	} else if (layout == LAYOUT_FS) {
		for (c = enc; ; c = e + 1) {
			e = strchr(c, '/');
			n = e != NULL ? (size_t)(e - c) : strlen(c);
			if (n > 255 || fs_reserved(c, n)) {
				r = MSYNC_ERR_BADNAME;
				goto out;
			}
			if (e == NULL)
				break;
		}
		res = enc;
		enc = NULL;	/* transferred */
	} else {
		r = MSYNC_ERR_INTERNAL;
		goto out;
	}
	*out = res;
	res = NULL;	/* transferred */
	r = 0;
out:
	free(enc);
	free(res);
	return r;
}

/*
 * Maildir++ directory entry (".A.B") -> internal name ("A/B").  Refuses
 * "." and "..", names not starting with '.', empty components, invalid
 * modified UTF-7, and ".INBOX" (ambiguous with the root).  *out is owned
 * by the caller.  Returns 0, MSYNC_ERR_BADNAME or MSYNC_ERR_NOMEM.
 */
int
names_from_maildirpp(const char *dirent, char **out)
{
	char	*tmp = NULL, *dec = NULL, *p;
	size_t	 len;
	int	 r = MSYNC_ERR_BADNAME;

	*out = NULL;
	len = strlen(dirent);
	if (len < 2 || len > 255 || dirent[0] != '.' ||
	    strcmp(dirent, "..") == 0)
		return MSYNC_ERR_BADNAME;
	if ((tmp = strdup(dirent + 1)) == NULL)
		return MSYNC_ERR_NOMEM;
	/* A '/' on disk would read as a separator: refuse it. */
	if (strchr(tmp, '/') != NULL)
		goto out;
	for (p = tmp; *p != '\0'; p++)
		if (*p == '.')
			*p = '/';
	if ((r = names_from_mutf7(tmp, &dec)) != 0) {
		if (r != MSYNC_ERR_NOMEM)
			r = MSYNC_ERR_BADNAME;
		goto out;
	}
	r = MSYNC_ERR_BADNAME;
	if (!names_valid(dec, strlen(dec)) || strcmp(dec, "INBOX") == 0)
		goto out;
	*out = dec;
	dec = NULL;	/* transferred */
	r = 0;
out:
	free(tmp);
	free(dec);
	return r;
}

/*
 * Shell-style match: '*' matches any run of bytes, '%' any run without
 * '/', everything else itself.  Dynamic programming over the pattern, so
 * no pattern can take exponential time.  Returns 1 on a match, else 0.
 */
int
names_match(const char *pattern, const char *name)
{
	size_t	 pl = strlen(pattern), nl = strlen(name), i, j;
	char	*prev = NULL, *cur = NULL, *t;
	int	 m = 0;

	if (pl > MSYNC_PATH_MAX || nl > MSYNC_PATH_MAX)
		return 0;
	if ((prev = calloc(nl + 1, 1)) == NULL ||
	    (cur = calloc(nl + 1, 1)) == NULL)
		goto out;
	/* prev[j]: pattern[0..i) matches name[0..j). */
	prev[0] = 1;
	for (i = 0; i < pl; i++) {
		cur[0] = prev[0] && (pattern[i] == '*' || pattern[i] == '%');
		for (j = 1; j <= nl; j++) {
			if (pattern[i] == '*')
				cur[j] = prev[j] || cur[j - 1];
			else if (pattern[i] == '%')
				cur[j] = prev[j] ||
				    (cur[j - 1] && name[j - 1] != '/');
			else
				cur[j] = prev[j - 1] &&
				    pattern[i] == name[j - 1];
		}
		t = prev;
		prev = cur;
		cur = t;
	}
	m = prev[nl];
out:
	free(prev);
	free(cur);
	return m;
}
