/*
 * fuzz_index.c — libFuzzer target for the per-folder index file parser
 * (index_decode) and the Maildir name parser (mdname_parse).
 *
 * The input is an index file without its checksum line: the harness
 * puts the right XXH3 in its head line and appends the checksum line, so
 * that the fuzzer reaches the fields (the input as is is decoded too).
 * After a line "==", the rest is a journal whose end lines get their
 * hashes from the harness too (see seal).
 * Beyond the sanitizers it checks: a file
 * that decodes encodes again to bytes that decode to the same entries,
 * and every entry's name parses, with mdname_info (the listing's
 * shortcut) giving the same flags as mdname_parse.  The input's first
 * line, as a file name, goes through mdname_parse too.
 * Seeds: tests/fuzz/seeds/fuzz_index/.
 *
 *   make fuzz && tests/fuzz/run.sh 60 index
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "index.h"
#include "mdname.h"
#include "msync.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_name(const char *name)
{
	struct mdname	md;
	uint32_t	kw;
	uint8_t		flags;

	if (mdname_parse(name, &md) != 0)
		return;
	if (md.base_len == 0 || md.base_len > strlen(name))
		abort();
	mdname_info(name, &flags, &kw);
	if (flags != md.flags || kw != md.kwbits)
		abort();
}

/*
 * data with a correct head hash and a checksum line, in *out (owned).
 * A line "==" ends the base: what follows is a journal (format 3),
 * whose "end ..." lines get their two hashes appended (the batch's
 * records seeded with the previous hash, then the line itself), so that
 * the fuzzer reaches the replay of the records.
 */
static size_t
seal(const uint8_t *data, size_t size, char **out)
{
	char		*b, *h, hex[17];
	const char	*j, *nl, *end = (const char *)data + size;
	size_t		 o, bsize = size, ends = 0, batch, ll;
	unsigned long long prev, line;

	if ((j = memmem(data, size, "\n==\n", 4)) != NULL) {
		bsize = (size_t)(j - (const char *)data) + 1;
		j += 4;
		for (nl = j; nl < end && (nl = memmem(nl, (size_t)(end - nl),
		    "end ", 4)) != NULL; nl += 4)
			ends++;
	}
	if ((b = malloc(size + 27 + 34 * ends + 1)) == NULL)
		abort();
	memcpy(b, data, bsize);
	o = bsize;
	if ((h = memmem(b, bsize, "\nhead ", 6)) != NULL &&
	    (size_t)(h - b) + 6 + 16 <= bsize) {
		snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)
		    XXH3_64bits(b, (size_t)(h - b) + 1));
		memcpy(h + 6, hex, 16);
	}
	prev = (unsigned long long)XXH3_64bits(b, o);
	snprintf(b + o, 27, "checksum %016llx\n", prev);
	o += 26;
	batch = o;
	for (; j != NULL && j < end; j = nl + 1) {
		if ((nl = memchr(j, '\n', (size_t)(end - j))) == NULL) {
			/* A torn last line: as it is. */
			memcpy(b + o, j, (size_t)(end - j));
			o += (size_t)(end - j);
			break;
		}
		ll = (size_t)(nl - j);
		memcpy(b + o, j, ll);
		if (ll >= 4 && memcmp(j, "end ", 4) == 0) {
			snprintf(b + o + ll, 19, " %016llx ",
			    (unsigned long long)XXH3_64bits_withSeed(b + batch,
			    o - batch, prev));
			line = (unsigned long long)XXH3_64bits(b + o, ll + 18);
			snprintf(b + o + ll + 18, 17, "%016llx", line);
			ll += 34;
			prev = line;
			batch = o + ll + 1;
		}
		o += ll;
		b[o++] = '\n';
	}
	*out = b;
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct index	*ix = NULL, *iy = NULL;
	char		 line[300], *buf = NULL, *sealed;
	size_t		 len = 0, i, n, slen;

	for (n = 0; n < size && n < sizeof(line) - 1 && data[n] != '\n'; n++)
		line[n] = (char)data[n];
	line[n] = '\0';
	check_name(line);

	if (index_decode((const char *)data, size, &ix) == 0)
		index_free(ix);
	ix = NULL;
	slen = seal(data, size, &sealed);
	i = index_decode(sealed, slen, &ix) != 0;
	free(sealed);
	if (i)
		return 0;
	for (i = 0; i < ix->n; i++) {
		const char *name = index_name(ix, &ix->v[i]);

		if (ix->v[i].name == INDEX_NAME_DEAD)
			continue;
		if (strncmp(name, "cur/", 4) != 0 &&
		    strncmp(name, "new/", 4) != 0)
			abort();
		check_name(name + 4);
	}
	if (index_encode(ix, &buf, &len) != 0 ||
	    index_decode(buf, len, &iy) != 0 || iy->live != ix->live ||
	    iy->uidnext != ix->uidnext || iy->modseq != ix->modseq)
		abort();
	for (i = n = 0; i < ix->n; i++) {
		if (ix->v[i].name == INDEX_NAME_DEAD)
			continue;
		while (n < iy->n && iy->v[n].name == INDEX_NAME_DEAD)
			n++;
		if (n == iy->n || iy->v[n].uid != ix->v[i].uid ||
		    iy->v[n].size != ix->v[i].size ||
		    iy->v[n].date != ix->v[i].date ||
		    memcmp(&iy->v[n].guid, &ix->v[i].guid,
		    sizeof(ix->v[i].guid)) != 0 ||
		    strcmp(index_name(iy, &iy->v[n]),
		    index_name(ix, &ix->v[i])) != 0)
			abort();
		n++;
	}
	free(buf);
	index_free(ix);
	index_free(iy);
	return 0;
}
