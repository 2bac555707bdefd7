/*
 * server.h — msync --server: the brain on stdin/stdout, confined to one
 * store root.
 */
#ifndef SERVER_H
#define SERVER_H

struct server_opts;

/*
 * Resolves the store root the client asked for: "~" and "~/x" are under
 * $HOME, a relative path is under the working directory (the home
 * directory, under ssh).  With restrict_dir set, the root is always
 * restrict_dir, whatever was asked.  The path is resolved once, here;
 * the store then works only beneath it.  *out is owned by the caller.
 * Returns 0 on success, negative MSYNC_ERR_* on failure.
 */
int	 server_root(const char *asked, const char *restrict_dir, char **out);

/* The --server entry point: returns the process exit status. */
int	 server_main(const struct server_opts *);

#endif /* SERVER_H */
