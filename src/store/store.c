/*
 * src/store/store.c — the dispatch behind store.h: picks a driver from
 * the store's layout, then routes every call through its table.  Nothing
 * here knows a format; what a bare path is (store_detect) is decided by
 * the few bytes any mail reader would look at.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msync.h"
#include "fprint.h"
#include "store.h"

/* The driver for a layout, or NULL. */
static const struct store_driver *
driver_of(enum store_layout layout)
{
	switch (layout) {
	case LAYOUT_MAILDIRPP:
	case LAYOUT_FS:
		return &store_maildir_driver;
	case LAYOUT_MBOX:
	case LAYOUT_MBOX_TB:
		return &store_mbox_driver;
	case LAYOUT_IMAP:
		return &store_imap_driver;
	}
	return NULL;
}

/*
 * 1 if the regular file at dfd/name starts with "From " (an mbox), 0 if
 * not, -1 if it cannot be read.
 */
static int
starts_with_from(int dfd, const char *name)
{
	char	 b[5];
	ssize_t	 n;
	int	 fd;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK)) == -1)
		return -1;
	do
		n = read(fd, b, sizeof(b));
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0)
		return -1;
	return n == (ssize_t)sizeof(b) && memcmp(b, "From ", 5) == 0;
}

/*
 * Looks at a directory: 1 if it has Maildir parts (cur/, new/, tmp/ or
 * a ".X" folder with cur/), 2 if it has none but holds an mbox file, 0
 * otherwise (empty, or a store in the fs layout).
 */
static int
dir_kind(const char *path)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 sb;
	char		 sub[NAME_MAX + 8];
	int		 kind = 0, n = 0;

	if ((d = opendir(path)) == NULL)
		return 0;
	/* Bounded: a look at the first entries is enough to decide. */
	while (kind != 1 && n++ < 4096 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, "cur") == 0 ||
		    strcmp(de->d_name, "new") == 0 ||
		    strcmp(de->d_name, "tmp") == 0) {
			kind = 1;
			break;
		}
		if (de->d_name[0] == '.' && strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0) {
			snprintf(sub, sizeof(sub), "%s/cur", de->d_name);
			if (fstatat(dirfd(d), sub, &sb, 0) == 0 &&
			    S_ISDIR(sb.st_mode))
				kind = 1;
			continue;
		}
		if (kind == 0 && fstatat(dirfd(d), de->d_name, &sb,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
		    sb.st_size > 0 && starts_with_from(dirfd(d), de->d_name) == 1)
			kind = 2;
	}
	closedir(d);
	return kind;
}

int
store_detect(const char *path, int *layout)
{
	struct stat	 sb;
	int		 r;

	if (stat(path, &sb) == -1)
		return errno == ENOENT ? 0 : MSYNC_ERR_IO;
	if (S_ISDIR(sb.st_mode))
		return dir_kind(path) == 2 ? MSYNC_ERR_USAGE : 0;
	if (!S_ISREG(sb.st_mode))
		return MSYNC_ERR_USAGE;
	if ((r = starts_with_from(AT_FDCWD, path)) < 0)
		return MSYNC_ERR_IO;
	if (r == 0)
		return MSYNC_ERR_USAGE;
	*layout = LAYOUT_MBOX;
	return 0;
}

int
store_open(const struct store_opts *o, struct store **out, char **holder)
{
	const struct store_driver	*drv;

	*out = NULL;
	if (holder != NULL)
		*holder = NULL;
	if ((drv = driver_of(o->layout)) == NULL)
		return MSYNC_ERR_USAGE;
	return drv->open(o, out, holder);
}

int
store_close(struct store *st)
{
	if (st == NULL)
		return 0;
	return st->drv->close(st);
}

const char *
store_kind(const struct store *st)
{
	return st->drv->name;
}

int
store_list_mailboxes(struct store *st, struct store_mailbox **out,
    size_t *n)
{
	return st->drv->list_mailboxes(st, out, n);
}

void
store_mailboxes_free(struct store_mailbox *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

int
store_list_messages(struct store *st, const char *name, struct msglist *out)
{
	return st->drv->list_messages(st, name, out);
}

int
store_rescan(struct store *st, const char *name, struct store_mailbox *m)
{
	return st->drv->rescan(st, name, m);
}

int
store_msg_open(struct store *st, const char *name, uint32_t uid,
    struct store_msg **out, uint64_t *size, int64_t *date)
{
	uint64_t	 sz = 0;
	int64_t		 dt = 0;
	int		 r;

	*out = NULL;
	r = st->drv->msg_open(st, name, uid, out, &sz, &dt);
	if (size != NULL)
		*size = sz;
	if (date != NULL)
		*date = dt;
	return r;
}

int
store_msg_read(struct store_msg *m, void *buf, size_t cap, size_t *got)
{
	return m->st->drv->msg_read(m, buf, cap, got);
}

void
store_msg_close(struct store_msg *m)
{
	if (m != NULL)
		m->st->drv->msg_close(m);
}

int
store_save_begin(struct store *st, const char *name, struct store_save **out)
{
	*out = NULL;
	return st->drv->save_begin(st, name, out);
}

int
store_save_write(struct store_save *s, const void *p, size_t len)
{
	return s->st->drv->save_write(s, p, len);
}

int
store_save_commit(struct store_save *s, uint8_t flags, const char *kw,
    int64_t date, const struct guid *expect, uint32_t *uid)
{
	return s->st->drv->save_commit(s, flags, kw, date, expect, uid);
}

void
store_save_abort(struct store_save *s)
{
	if (s != NULL)
		s->st->drv->save_abort(s);
}

int
store_set_flags(struct store *st, const char *name, uint32_t uid,
    uint8_t flags, const char *kw)
{
	return st->drv->set_flags(st, name, uid, flags, kw);
}

int
store_update_flags(struct store *st, const char *name, uint32_t uid,
    uint8_t old_flags, const char *old_kw, uint8_t flags, const char *kw)
{
	return st->drv->update_flags(st, name, uid, old_flags, old_kw, flags,
	    kw);
}

int
store_expunge(struct store *st, const char *name, uint32_t uid)
{
	return st->drv->expunge(st, name, uid);
}

int
store_expunge_guid(struct store *st, const char *name, uint32_t uid,
    const struct guid *expect)
{
	return st->drv->expunge_guid(st, name, uid, expect);
}

int
store_has_copy(const struct store *st)
{
	return st->drv->copy != NULL;
}

int
store_copy(struct store *st, const char *from, const char *to, int move,
    struct store_copy *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		v[i].done = v[i].moved = 0;
		v[i].status = 0;
		v[i].new_uid = 0;
	}
	if (st->drv->copy == NULL || n == 0)
		return 0;
	return st->drv->copy(st, from, to, move, v, n);
}

int
store_create_mailbox(struct store *st, const char *name,
    const struct guid *guid)
{
	return st->drv->create_mailbox(st, name, guid);
}

int
store_rename_mailbox(struct store *st, const char *from, const char *to)
{
	return st->drv->rename_mailbox(st, from, to);
}

int
store_delete_mailbox(struct store *st, const char *name)
{
	return st->drv->delete_mailbox(st, name);
}

int
store_set_mailbox_guid(struct store *st, const char *name,
    const struct guid *guid)
{
	return st->drv->set_mailbox_guid(st, name, guid);
}

int
store_flush(struct store *st)
{
	return st->drv->flush(st);
}

int
store_done(struct store *st, const char *name)
{
	return st->drv->done != NULL ? st->drv->done(st, name) : 0;
}

int
store_prefetch(struct store *st, char *const *names, size_t n)
{
	return st->drv->prefetch != NULL ? st->drv->prefetch(st, names, n) : 0;
}

int
store_fingerprint(struct store *st, const char *name, uint32_t uid,
    struct guid *fp)
{
	struct store_msg	*m = NULL;
	struct fprint_ctx	*c;
	char			 buf[16384];
	size_t			 got;
	int			 r;

	/* A fingerprint is worth less than the download it would cost. */
	if (st->drv->msg_local != NULL && !st->drv->msg_local(st, name, uid))
		return MSYNC_ERR_NOTFOUND;
	if ((c = malloc(sizeof(*c))) == NULL)
		return MSYNC_ERR_NOMEM;
	fprint_init(c);
	if ((r = store_msg_open(st, name, uid, &m, NULL, NULL)) != 0)
		goto out;
	while ((r = store_msg_read(m, buf, sizeof(buf), &got)) == 0 &&
	    got > 0)
		fprint_update(c, buf, got);
	if (r == 0)
		r = fprint_final(c, fp);
out:
	store_msg_close(m);
	free(c);
	return r;
}

int
store_hints(struct store *st, const char *name, const struct store_hint *v,
    size_t n)
{
	if (st->drv->hints == NULL)
		return 0;
	return st->drv->hints(st, name, v, n);
}
