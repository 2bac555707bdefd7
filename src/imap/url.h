/*
 * url.h — IMAP locations as the command line gives them:
 *
 *   imaps://[user@]host[:port][/root][;option=value...]   TLS, port 993
 *   imap://[user@]host[:port][/root][;option=value...]    STARTTLS, 143
 *
 * user may hold '@' written as %40 (or the last '@' separates it); an
 * IPv6 host is written in brackets.  A password in the URL
 * (user:password@) is refused: secrets never come from argv.
 * Options: tls=none (imap:// only: no TLS at all), fingerprint=sha256:HEX
 * (pin the server's certificate), auth=plain|login|xoauth2|oauthbearer.
 * root is a folder on the server under which the mailboxes are synced.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef IMAP_URL_H
#define IMAP_URL_H

#include "imap/conn.h"

struct imap_url {
	char		*user;		/* owned; $USER if not given */
	char		*host;		/* owned; without brackets */
	int		 port;		/* the default filled in */
	char		*root;		/* owned; "" for none, no '/' at the ends */
	enum imap_tls	 tls;
	char		*fingerprint;	/* owned; NULL or "sha256:..." */
	char		*auth;		/* owned; NULL or the mechanism */
};

/*
 * Parses s; 1 if s starts with imap:// or imaps:// (case-insensitive),
 * for imap_url_parse's callers to decide which parser applies.
 */
int	 imap_url_is(const char *s);
/* MSYNC_ERR_USAGE with a reason in *why for a bad URL. */
int	 imap_url_parse(const char *s, struct imap_url *out, char **why);
void	 imap_url_free(struct imap_url *);

#endif /* IMAP_URL_H */
