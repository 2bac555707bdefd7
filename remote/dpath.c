/*
 * dpath.c — a daemon connection's store path, confined to its module's
 * root (see dpath.h).  Privileges are already dropped when this runs, so
 * it only has to keep a client within what the daemon's user may reach
 * through the module: the checks are lexical first, then one lstat(2)
 * per existing component, so a symbolic link planted in a per-user root
 * ("/srv/mail/%u" -> /etc) is refused rather than followed.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msync.h"
#include "dpath.h"

/* Lexical checks on the asked path: relative, clean, printable. */
static int
dpath_lexical(const char *a)
{
	const char	*c;
	size_t		 len, i;

	if (strlen(a) > MSYNC_PATH_MAX || a[0] == '/' || a[0] == '~')
		return MSYNC_ERR_BADNAME;
	for (i = 0; a[i] != '\0'; i++)
		if ((unsigned char)a[i] < 0x20 || a[i] == 0x7f)
			return MSYNC_ERR_BADNAME;
	for (c = a; *c != '\0'; c += len) {
		if (*c == '/')
			c++;
		len = strcspn(c, "/");
		if (len == 0 && *c == '/')
			return MSYNC_ERR_BADNAME;	/* "a//b" */
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return MSYNC_ERR_BADNAME;
	}
	return 0;
}

/* The path p (of at least len bytes) cut at len must be a real dir. */
static int
dpath_check(char *p, size_t len)
{
	struct stat	 st;
	char		 save = p[len];
	int		 r = 0;

	p[len] = '\0';
	if (lstat(p, &st) == -1) {
		if (errno != ENOENT)
			r = MSYNC_ERR_IO;
	} else if (!S_ISDIR(st.st_mode))
		r = MSYNC_ERR_BADNAME;	/* a link, or not a directory */
	p[len] = save;
	return r;
}

int
dpath_resolve(const char *root, const char *asked, char **out)
{
	char	*p;
	size_t	 rl, i, plen;
	int	 r;

	*out = NULL;
	if (asked == NULL || strcmp(asked, ".") == 0)
		asked = "";
	if ((r = dpath_lexical(asked)) != 0)
		return r;
	if (asprintf(&p, "%s%s%s", root, *asked != '\0' ? "/" : "",
	    asked) < 0)
		return MSYNC_ERR_NOMEM;
	/* The root (without a trailing '/'), then each prefix below it. */
	rl = strlen(root);
	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	plen = strlen(p);
	if ((r = dpath_check(p, rl)) != 0)
		goto fail;
	for (i = rl + 1; i < plen; i++)
		if (p[i] == '/' && (r = dpath_check(p, i)) != 0)
			goto fail;
	if (plen > rl + 1 && (r = dpath_check(p, plen)) != 0)
		goto fail;
	*out = p;
	return 0;
fail:
	free(p);
	return r;
}
