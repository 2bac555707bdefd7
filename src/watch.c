/*
 * watch.c — watch mode.
 */
#include <stddef.h>

#include "log.h"
#include "msync.h"
#include "watch.h"

int
watch_main(const struct pairs_opts *o, struct config *c,
    const struct pair **list, size_t n)
{
	ERRX("--watch is not there yet");
	return EXIT_USAGE;
}
