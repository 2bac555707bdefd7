/*
 * fuzz_config.c — libFuzzer target for the config file parser.
 *
 * The input is a config file.  Beyond the sanitizers it checks: a file
 * that parses has every pair with both locations and a valid name, and
 * every name selects without error (groups have no loops); a file that
 * does not parse gives a message starting with "fuzz:LINE:COL: ".
 * Seeds: tests/fuzz/seeds/fuzz_config/ and examples/config.
 *
 *   make fuzz && tests/fuzz/run.sh 60 config
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "msync.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*c = NULL;
	const struct pair **list = NULL;
	char		*why = NULL;
	size_t		 n = 0;
	int		 r;

	r = config_parse("fuzz", (const char *)data, size, &c, &why);
	if (r != 0) {
		if (r == MSYNC_ERR_USAGE && (why == NULL ||
		    strncmp(why, "fuzz:", 5) != 0))
			abort();
		free(why);
		return 0;
	}
	for (size_t i = 0; i < c->npair; i++) {
		if (c->pair[i].a == NULL || c->pair[i].b == NULL ||
		    !config_name_valid(c->pair[i].name))
			abort();
		if (config_select(c, c->pair[i].name, &list, &n, &why) != 0)
			abort();
	}
	for (size_t i = 0; i < c->ngroup; i++)
		if (config_select(c, c->group[i].name, &list, &n, &why) != 0)
			abort();
	if (n > c->npair)
		abort();	/* each pair once */
	free(list);
	config_free(c);
	return 0;
}
