/*
 * server.c — msync --server: runs brain B on stdin/stdout.  Everything
 * about the store comes from the client inside the protocol; the command
 * line only carries fixed options (--restrict, --read-only, -v), so an
 * authorized_keys forced command can pin them.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brain.h"
#include "log.h"
#include "msync.h"
#include "server.h"

int
server_root(const char *asked, const char *restrict_dir, char **out)
{
	const char	*home;

	*out = NULL;
	if (restrict_dir != NULL) {
		if ((*out = strdup(restrict_dir)) == NULL)
			return MSYNC_ERR_NOMEM;
		return 0;
	}
	if (asked == NULL || *asked == '\0' ||
	    strlen(asked) > MSYNC_PATH_MAX)
		return MSYNC_ERR_BADNAME;
	if (asked[0] == '~' && (asked[1] == '\0' || asked[1] == '/')) {
		if ((home = getenv("HOME")) == NULL || *home == '\0')
			return MSYNC_ERR_BADNAME;
		if (asprintf(out, "%s%s", home, asked + 1) < 0) {
			*out = NULL;
			return MSYNC_ERR_NOMEM;
		}
		return 0;
	}
	if ((*out = strdup(asked)) == NULL)
		return MSYNC_ERR_NOMEM;
	return 0;
}

int
server_main(const struct server_opts *so)
{
	/* A dead client must not kill us mid-write with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	log_set_prefix("msync[server]");
	return brain_server(so, STDIN_FILENO, STDOUT_FILENO);
}
