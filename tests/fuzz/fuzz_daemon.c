/*
 * fuzz_daemon.c — libFuzzer target for what the daemon parses: the
 * client's greeting (dhello_parse, the first bytes a stranger sends after
 * the TLS handshake), msyncd.conf and the secrets file (dconf.c), and a
 * client's store path against a module root (dpath_resolve, lexical part:
 * the root does not exist, so no lstat succeeds).
 *
 * The first byte picks the parser: 'G' greeting (two lines split at the
 * first '\n'), 'C' config, 'S' secrets, 'P' a store path, 'R' the
 * server-to-server RUN line (s2s_parse); anything else goes to all of
 * them.  Seeds: tests/fuzz/seeds/fuzz_daemon/.
 *
 * Checks beyond the sanitizers: a parsed config has at least one module
 * and each module a path and users; a greeting that parses has names
 * that dconf_name_ok accepts; a resolved path has no ".." component; a
 * RUN line that parses encodes again and parses to the same options.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dconf.h"
#include "dpath.h"
#include "msync.h"
#include "s2s.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_greeting(const char *s)
{
	struct dhello	 h;
	char		*copy, *nl;

	if ((copy = strdup(s)) == NULL)
		return;
	if ((nl = strchr(copy, '\n')) != NULL)
		*nl++ = '\0';
	else
		nl = copy + strlen(copy);
	if (dhello_parse(copy, nl, &h) == 0 &&
	    (!dconf_name_ok(h.module) || !dconf_name_ok(h.user)))
		abort();
	free(copy);
}

static void
fuzz_config(const char *s, size_t len)
{
	struct dconf	 c;
	char		 err[256];
	size_t		 i;

	if (dconf_parse(s, len, &c, err, sizeof(err)) != 0)
		return;
	if (c.nmods == 0)
		abort();
	for (i = 0; i < c.nmods; i++)
		if (c.mods[i].path == NULL || c.mods[i].nusers == 0)
			abort();
	dconf_free(&c);
}

static void
fuzz_secrets(const char *s, size_t len)
{
	struct dconf	 c;
	char		 err[256];

	dconf_init(&c);
	(void)dconf_parse_secrets(s, len, &c, err, sizeof(err));
	dconf_free(&c);
}

static void
fuzz_path(const char *s)
{
	char	*out = NULL;

	if (dpath_resolve("/nonexistent-msync-fuzz-root", s, &out) == 0) {
		if (strstr(out, "/../") != NULL ||
		    (strlen(out) >= 3 &&
		    strcmp(out + strlen(out) - 3, "/..") == 0))
			abort();
		free(out);
	}
}

static void
fuzz_run(const char *s)
{
	struct s2s_run	 r, again;
	char		*line = NULL;

	if (s2s_parse(s, &r) != 0)
		return;
	if (r.mode < 0 || r.mode > 2 || r.verbose > 2 ||
	    r.ninclude > S2S_PATTERNS_MAX || r.nexclude > S2S_PATTERNS_MAX)
		abort();
	/* A long line of short escapes may not fit again: that is fine. */
	if (s2s_encode(&r, &line) == 0) {
		if (s2s_parse(line, &again) != 0 ||
		    strcmp(again.path_a, r.path_a) != 0 ||
		    strcmp(again.other, r.other) != 0 ||
		    again.ninclude != r.ninclude || again.mode != r.mode ||
		    again.bwlimit != r.bwlimit)
			abort();
		s2s_free(&again);
		free(line);
	}
	s2s_free(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	*s;

	if (size == 0 || size > 64 * 1024)
		return 0;
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0]) {
	case 'G':
		fuzz_greeting(s);
		break;
	case 'C':
		fuzz_config(s, size - 1);
		break;
	case 'S':
		fuzz_secrets(s, size - 1);
		break;
	case 'P':
		fuzz_path(s);
		break;
	case 'R':
		fuzz_run(s);
		break;
	default:
		fuzz_greeting(s);
		fuzz_config(s, size - 1);
		fuzz_secrets(s, size - 1);
		fuzz_path(s);
		fuzz_run(s);
	}
	free(s);
	return 0;
}
