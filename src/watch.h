/*
 * watch.h — watch mode (--watch): sync pairs again whenever one of their
 * sides changes.  See watch.c.
 */
#ifndef WATCH_H
#define WATCH_H

#include <stddef.h>

#include "config.h"
#include "pairs.h"

/*
 * Runs the pairs once, then again after each change, until SIGTERM or
 * SIGINT.  SIGHUP reads *cfg's file again (then *cfg is replaced: the
 * caller frees whatever *cfg is at the end; list's pointers are only
 * used until then).  Returns the exit status: 0 after a signal, else the
 * status that made watching impossible.
 */
int	 watch_main(const struct pairs_opts *, struct config **cfg,
	    const struct pair **list, size_t n);

#endif /* WATCH_H */
