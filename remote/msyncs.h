/*
 * msyncs.h — msyncs:// locations and their transport (remote/msyncs.c):
 * a TLS connection to an msync daemon.  loc.c calls the msyncs_loc_*
 * functions for a location that starts with "msyncs://"; transport.c
 * calls msyncs_start for a location that has l->daemon set.
 */
#ifndef MSYNCS_H
#define MSYNCS_H

#include "transport.h"

/* What an msyncs:// location has beyond host and path; owned by loc. */
struct dloc {
	char		*module;	/* the daemon module */
	char		*secret_file;	/* ;secret-file=, or NULL */
	char		*cert;		/* ;cert=, or NULL */
	char		*key;		/* ;key=, or NULL (then cert) */
	unsigned char	 fp[32];	/* ;fingerprint=sha256: */
	int		 have_fp;
};

void	 dloc_free(struct dloc *);
/*
 * Cuts the ";param=value" list off s (just after "msyncs://") and keeps
 * what it says in a new l->daemon.  MSYNC_ERR_USAGE for an unknown or
 * repeated parameter or a malformed fingerprint.
 */
int	 msyncs_loc_params(char *s, struct loc *l);
/* Splits l->path "/module[/path]" into the module and the path (".") */
int	 msyncs_loc_module(struct loc *l);
/* l->text: "msyncs://[user@]host[:port]/module[/path][;layout=fs]" */
int	 msyncs_loc_text(struct loc *l, int v6);

#endif /* MSYNCS_H */
