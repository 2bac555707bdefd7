/*
 * dconf.h — the daemon's configuration (msyncd.conf, see msync(5)) and
 * its secrets file, parsed into plain structs; and the greeting line a
 * client sends once TLS is up.  Pure: text in, structs out; no sockets.
 *
 * msyncd.conf is rsyncd.conf-like: "key = value" lines, '#' or ';'
 * comments, global keys first, then one "[module]" section per module.
 * The secrets file has "user:secret" lines, as rsyncd.secrets.
 *
 * All memory belongs to the struct that holds it; dconf_free() frees a
 * whole configuration.  Functions return 0 or a negative MSYNC_ERR_*,
 * and on a parse error put a one-line reason with the line number into
 * err (of errlen bytes).
 */
#ifndef DCONF_H
#define DCONF_H

#include <stddef.h>
#include <stdint.h>

#define DCONF_MAX_BYTES		(1024 * 1024)	/* config or secrets file */
#define DCONF_MAX_MODULES	1024
#define DCONF_MAX_USERS		4096		/* per module, and secrets */
#define DCONF_NAME_MAX		64		/* module and user names */
#define DCONF_SECRET_MAX	256		/* bytes of a secret */
#define DCONF_HELLO_MAX		512		/* bytes of a greeting line */

/* How a module's users prove who they are (a bit set). */
#define DAUTH_SECRET	0x1
#define DAUTH_CERT	0x2

struct dmodule {
	char	 *name;		/* [name]; DCONF_NAME_MAX, dconf_name_ok */
	char	 *path;		/* store root; may hold one "%u" */
	int	  read_only;	/* the store can only be a source */
	int	  auth;		/* DAUTH_* bits; default DAUTH_SECRET */
	char	**users;	/* who may use it; "*" is anyone authenticated */
	size_t	  nusers;
	char	 *comment;
};

struct dsecret {
	char	*user;
	char	*secret;
};

struct dconf {
	char		*address;	/* listen address; default "0.0.0.0" */
	int		 port;		/* default DCONF_PORT */
	char		*user;		/* Unix user to run as (root only) */
	char		*group;		/* its group; default the user's */
	char		*cert;		/* server certificate chain (PEM) */
	char		*key;		/* its private key (PEM) */
	char		*client_ca;	/* CAs for client certificates */
	char		*secrets_file;
	char		*cache_dir;	/* indexes of read-only stores */
	int		 max_conn;	/* connections at once */
	int		 max_per_addr;	/* ... from one address */
	uint64_t	 max_memory;	/* bytes of address space per conn */
	int		 timeout;	/* idle seconds, after the handshake */
	int		 handshake_timeout;	/* seconds for TLS + greeting */
	int		 auth_delay_ms;	/* a failed login waits this long */
	int		 max_auth_fail;	/* failures per address ... */
	int		 fail_window;	/* ... within this many seconds */
	int		 syslog;	/* log to syslog, not stderr */
	struct dmodule	*mods;
	size_t		 nmods;
	struct dsecret	*secrets;	/* loaded by dconf_load_secrets */
	size_t		 nsecrets;
};

#define DCONF_PORT	8730

/* Sets c to the defaults (no modules). */
void	 dconf_init(struct dconf *c);
/* Parses len bytes of msyncd.conf text into c (initialised here). */
int	 dconf_parse(const char *text, size_t len, struct dconf *c,
	    char *err, size_t errlen);
/* Parses secrets file text into c->secrets. */
int	 dconf_parse_secrets(const char *text, size_t len, struct dconf *c,
	    char *err, size_t errlen);
/*
 * Reads and parses the config file at path, then its secrets file.
 * Refuses a secrets file that others may read or write, or that is not
 * owned by root or by us.
 */
int	 dconf_load(const char *path, struct dconf *c, char *err,
	    size_t errlen);
void	 dconf_free(struct dconf *c);

/* A module or user name: [A-Za-z0-9_.+-@], not starting with '.'/'-'. */
int	 dconf_name_ok(const char *s);
const struct dmodule *dconf_module(const struct dconf *, const char *name);
/* 1 when user is listed in m (or m lists "*"). */
int	 dconf_user_allowed(const struct dmodule *m, const char *user);
/* The secret for user, or NULL. */
const char *dconf_secret(const struct dconf *, const char *user);
/* m->path with "%u" replaced by user, in *out (caller frees). */
int	 dconf_module_root(const struct dmodule *m, const char *user,
	    char **out);

/*
 * The greeting, the first bytes a client sends inside TLS:
 *   "MSYNCD/1 MODULE USER[ RUN]\n" then "SECRET TEXT\n" or "CERT\n"
 * and with RUN a third line, the run's options (s2s.h).
 * The server answers "OK\n" or "ERR TEXT\n"; then the brains' protocol
 * runs.  dhello_parse takes the two lines (without their '\n', NUL'd)
 * and fills the fields with pointers into them.
 */
struct dhello {
	char	module[DCONF_NAME_MAX + 1];
	char	user[DCONF_NAME_MAX + 1];
	char	secret[DCONF_SECRET_MAX + 1];	/* "" for CERT */
	int	cert;				/* CERT was sent */
	int	run;				/* "RUN": server to server */
};
int	 dhello_parse(const char *line1, const char *line2, struct dhello *h);

#endif /* DCONF_H */
