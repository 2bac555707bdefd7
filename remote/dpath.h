/*
 * dpath.h — confining a daemon connection to its module's root: the
 * store path a client asks for is a relative path beneath the root,
 * with no "..", no absolute path, and no symbolic link on the way.
 */
#ifndef DPATH_H
#define DPATH_H

/*
 * Joins root and asked ("" or "." is the root itself) into *out (owned
 * by the caller), after checking asked's components and that neither
 * the root nor any existing component below it is a symbolic link or
 * other than a directory.  Returns 0, MSYNC_ERR_BADNAME (refused),
 * MSYNC_ERR_NOMEM or MSYNC_ERR_IO.
 */
int	 dpath_resolve(const char *root, const char *asked, char **out);

#endif /* DPATH_H */
