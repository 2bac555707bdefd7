/*
 * mdname.c — parse and build Maildir message file names (see mdname.h).
 */
#include <stdint.h>
#include <string.h>

#include "msync.h"
#include "mdname.h"

static const char flag_letters[] = "DFPRST";	/* FLAG_* bit order */

/* The FLAG_* bit of letter c, or 0 (a switch: this runs per letter of
 * every name of every scan and listing). */
static uint8_t
flag_of(char c)
{
	switch (c) {
	case 'D': return 1u << 0;
	case 'F': return 1u << 1;
	case 'P': return 1u << 2;
	case 'R': return 1u << 3;
	case 'S': return 1u << 4;
	case 'T': return 1u << 5;
	default: return 0;
	}
}

/*
 * Bytes that end the scan of a name: NUL, ':' and every byte a name must
 * not hold (control characters, '/', 0x7f and above).
 */
static const unsigned char name_stop[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x00 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x10 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,	/* 0x20 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0,	/* 0x30 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x40 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x50 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* 0x60 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,	/* 0x70 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x80 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0x90 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xa0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xb0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xc0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xd0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xe0 */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,	/* 0xf0 */
};

/*
 * Parses the decimal number in s[0..len) after a ",X=" field marker up
 * to the next ',' or the end.  Returns 1 and sets *v if there is one.
 */
static int
field_num(const char *s, size_t len, uint64_t *v)
{
	uint64_t	n = 0;
	size_t		i;

	for (i = 0; i < len && s[i] != ','; i++) {
		if (s[i] < '0' || s[i] > '9' || n > (UINT64_MAX - 9) / 10)
			return 0;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return 0;
	*v = n;
	return 1;
}

#define ONES	0x0101010101010101ull
#define HIGHS	0x8080808080808080ull

/*
 * Non-zero if one of the 8 bytes of x is a name_stop byte: below 0x20
 * (NUL and control characters), '/', ':', or 0x7f and above.  Each test
 * is exact about whether such a byte exists (it may also flag a byte
 * next to one, which only sends the word to the byte loop):
 * (x - n) & ~x & HIGHS finds a byte below n (n <= 0x80), with n = 1 a
 * zero byte of x ^ c (a byte equal to c), and (x + 1) | x with HIGHS a
 * byte of 0x7f and above.
 */
static uint64_t
word_stops(uint64_t x)
{
	uint64_t	 sl = x ^ (ONES * '/'), co = x ^ (ONES * ':');

	return (((x - ONES * 0x20) & ~x) | ((sl - ONES) & ~sl) |
	    ((co - ONES) & ~co) | (x + ONES) | x) & HIGHS;
}

/*
 * Checks the bytes of name, up to a NUL or its len-th byte, whichever
 * comes first: *outlen gets the length, *colon the first ':' or NULL.
 * One pass checks the bytes, measures and finds the first ':' (every
 * name of every scan, load and listing comes through here): a table
 * sends every byte but the common ones out of the loop, and with a
 * known length (len != SIZE_MAX) 8 bytes at a time are checked first
 * (an index load checks every name of a changed folder).
 * Returns 0 or MSYNC_ERR_BADNAME.
 */
static int
name_bytes(const char *name, size_t len, size_t *outlen, const char **colon)
{
	size_t		 i, wlen = len == SIZE_MAX ? 0 : len;
	uint64_t	 w;

	*colon = NULL;
	for (i = 0;; i++) {
		/* Never past len: without one, NUL ends the name. */
		while (i + 8 <= wlen) {
			memcpy(&w, name + i, 8);
			if (word_stops(w))
				break;
			i += 8;
		}
		while (i < len && !name_stop[(unsigned char)name[i]])
			i++;
		if (i == len || name[i] == '\0')
			break;
		if (name[i] != ':' || i >= MDNAME_MAX)
			return MSYNC_ERR_BADNAME;
		if (*colon == NULL)
			*colon = name + i;
	}
	if (i > MDNAME_MAX || i == 0 || name[0] == '.' || *colon == name)
		return MSYNC_ERR_BADNAME;
	*outlen = i;
	return 0;
}

/* Checks a name of len bytes as mdname_parse does; see mdname.h. */
int
mdname_check(const char *name, size_t len)
{
	const char	*colon;
	size_t		 n;

	if (name_bytes(name, len, &n, &colon) != 0 || n != len)
		return MSYNC_ERR_BADNAME;	/* n < len: a NUL */
	return 0;
}

/* Parses a Maildir file name; see mdname.h. */
int
mdname_parse(const char *name, struct mdname *out)
{
	const char	*colon, *p;
	size_t		 len;
	uint8_t		 f;

	memset(out, 0, sizeof(*out));
	if (name_bytes(name, SIZE_MAX, &len, &colon) != 0)
		return MSYNC_ERR_BADNAME;
	out->base_len = colon != NULL ? (size_t)(colon - name) : len;
	for (p = name; (p = memchr(p, ',', out->base_len - (p - name))) != NULL;
	    p++) {
		size_t	rest = out->base_len - (size_t)(p - name);

		if (rest > 3 && p[1] == 'S' && p[2] == '=')
			out->has_size = field_num(p + 3, rest - 3, &out->size);
		else if (rest > 3 && p[1] == 'W' && p[2] == '=')
			out->has_vsize = field_num(p + 3, rest - 3,
			    &out->vsize);
		if (rest == 1)
			break;
	}
	if (colon == NULL || strncmp(colon, ":2,", 3) != 0)
		return 0;	/* no info, or an old ":1," one: no flags */
	out->has_info = 1;
	for (p = colon + 3; *p != '\0'; p++) {
		if ((f = flag_of(*p)) != 0)
			out->flags |= f;
		else if (*p >= 'a' && *p <= 'z')
			out->kwbits |= 1u << (*p - 'a');
	}
	return 0;
}

/* The flags of a checked name; see mdname.h. */
void
mdname_info(const char *name, uint8_t *flags, uint32_t *kwbits)
{
	const char	*p = strchr(name, ':');
	uint8_t		 f;

	*flags = 0;
	*kwbits = 0;
	if (p == NULL || strncmp(p, ":2,", 3) != 0)
		return;
	for (p += 3; *p != '\0'; p++) {
		if ((f = flag_of(*p)) != 0)
			*flags |= f;
		else if (*p >= 'a' && *p <= 'z')
			*kwbits |= 1u << (*p - 'a');
	}
}

/* Writes the letters of flags, in order, NUL-terminated. */
void
mdname_flagstr(uint8_t flags, char out[7])
{
	size_t	i, o = 0;

	for (i = 0; i < 6; i++)
		if (flags & (1u << i))
			out[o++] = flag_letters[i];
	out[o] = '\0';
}

/* Builds the cur/ name of old with new flags and keywords; see mdname.h. */
int
mdname_build(const char *old, uint8_t flags, uint32_t kwbits, char *out,
    size_t outsz)
{
	struct mdname	 md;
	unsigned char	 have[128];
	const char	*p;
	size_t		 o, c;
	int		 r;

	if ((r = mdname_parse(old, &md)) != 0)
		return r;
	memset(have, 0, sizeof(have));
	for (c = 0; c < 6; c++)
		if (flags & (1u << c))
			have[(unsigned char)flag_letters[c]] = 1;
	for (c = 0; c < 26; c++)
		if (kwbits & (1u << c))
			have['a' + c] = 1;
	/* Keep what else the old info carried (another program's letters). */
	if (md.has_info)
		for (p = old + md.base_len + 3; *p != '\0'; p++)
			if (flag_of(*p) == 0 && !(*p >= 'a' && *p <= 'z') &&
			    *p != ',')
				have[(unsigned char)*p] = 1;
	if (md.base_len + 3 >= outsz)
		return MSYNC_ERR_TOOBIG;
	memcpy(out, old, md.base_len);
	memcpy(out + md.base_len, ":2,", 3);
	o = md.base_len + 3;
	for (c = 0x21; c < 0x7f; c++) {
		if (!have[c])
			continue;
		if (o + 1 >= outsz)
			return MSYNC_ERR_TOOBIG;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	if (o > MDNAME_MAX)
		return MSYNC_ERR_TOOBIG;
	return 0;
}
