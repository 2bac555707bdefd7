/*
 * watch.c — watch mode: run each pair once, then again whenever one of
 * its sides changes, until SIGTERM or SIGINT.
 *
 * One process watches all the pairs it was given.  A sync is the same
 * child msync a one-shot run starts (pairs.c's jobs), so a watched sync
 * takes the same locks, keeps the same state and exits with the same
 * statuses; a pair never has two syncs at once because the loop starts
 * a pair's job only when its last one has been reaped.
 *
 * What to watch is each store's to say (the watchers[] table): a local
 * Maildir is watched with inotify (every folder directory for folders
 * coming and going, new/ and cur/ for messages); a side no watcher
 * claims (a remote host, and for now mbox and IMAP) is polled every
 * `every` (default WATCH_EVERY_DEFAULT).  A change starts a sync once the
 * pair has been quiet for `debounce` (a burst of deliveries is one sync),
 * but no later than WATCH_DEBOUNCE_CAP after the first change.  A failed
 * sync is retried after growing delays, said once, not at every retry.
 *
 * Events caused by the pair's own sync arrive while it runs; they (and
 * any real change in that window) cost one more sync, which then finds
 * nothing to do and writes nothing to new/ or cur/, so the loop settles.
 */
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "msync.h"
#include "names.h"
#include "pairs.h"
#include "secret.h"
#include "store.h"
#include "imap/conn.h"
#include "imap/url.h"
#include "transport.h"
#include "watch.h"

#define WATCH_DEBOUNCE_DEFAULT	1000		/* ms of quiet before a sync */
#define WATCH_DEBOUNCE_CAP	30000		/* ms: a steady stream still syncs */
#define WATCH_EVERY_DEFAULT	300		/* s: polling of unwatched sides */
#define WATCH_BACKOFF_MIN	5000		/* ms after the first failure */
#define WATCH_BACKOFF_MAX	(30 * 60 * 1000) /* ms: at most half an hour */
#define WATCH_STOP_GRACE	10000		/* ms a running sync may finish */
#define WATCH_DIRS_MAX		(MSYNC_MBOX_MAX * 2) /* watches per pair */
#define WATCH_DEPTH_MAX		(MSYNC_NAME_DEPTH + 1)
/* RFC 2177: a client re-issues IDLE at least every 29 minutes. */
#define IDLE_RENEW_MS		(25 * 60 * 1000)
#define IDLER_EXIT_NOIDLE	3	/* the server has no IDLE */
#define IDLER_LINE_MAX		512	/* one line from an idler */

/* Directory masks: folders come and go; messages arrive and change. */
#define MASK_FOLDER	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
	    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define MASK_MSGS	(MASK_FOLDER | IN_CLOSE_WRITE | IN_ATTRIB)
/*
 * An mbox is appended to in place (IN_CLOSE_WRITE once the writer is
 * done) and rewritten by rename (IN_MOVED_TO), so its directory is
 * watched, not the file: a watch on the file would follow the old inode
 * away after the first rewrite.
 */
#define MASK_MBOX	(MASK_FOLDER | IN_CLOSE_WRITE)

/* What a watched directory is. */
enum wkind {
	WD_FOLDER = 0,	/* a Maildir folder directory: only folders count */
	WD_MSGS,	/* a Maildir new/ or cur/: every event counts */
	WD_MBOXDIR,	/* a directory of mbox files: every mail file */
	WD_MBOXFILE	/* the directory of one mbox file: that name only */
};

/* One watched directory of a pair. */
struct wdir {
	int	 wd;		/* inotify watch descriptor */
	enum wkind kind;
	char	*only;		/* owned; WD_MBOXFILE: the file's name */
};

/*
 * The IDLE connection of an IMAP side: a forked child (idler_main) that
 * holds it and writes one line per event to a pipe: "r" when IDLE runs,
 * "c" for a change, "e REASON" before it gives up.
 */
enum idler_state {
	IDLER_NONE = 0,	/* not an IMAP side, or not started */
	IDLER_RUNNING,	/* pid != 0 */
	IDLER_WAITING,	/* lost; restarted at restart_at */
	IDLER_NOIDLE	/* the server has no IDLE: the side is polled */
};

struct idler {
	enum idler_state state;
	pid_t		 pid;
	int		 fd;		/* the pipe's read end, -1 none */
	char		 line[IDLER_LINE_MAX];	/* a partial line */
	size_t		 len;
	char		*why;		/* owned; its last "e" line */
	int		 fails;		/* lost connections in a row */
	int		 ready;		/* IDLE ran since the last start */
	long long	 restart_at;	/* IDLER_WAITING */
};

/* A pair under watch. */
struct wpair {
	const struct pair *p;		/* borrowed from the config */
	struct job	 job;		/* job.pid != 0 while a sync runs */
	struct wdir	*dirs;		/* owned */
	size_t		 ndirs;
	int		 polled;	/* a side is not watched: poll it */
	int		 every_ms;	/* 0: no polling */
	int		 debounce_ms;
	long long	 due;		/* start a sync at this time; 0 none */
	long long	 first_change;	/* of the pending burst; 0 none */
	long long	 next_poll;	/* 0 none */
	int		 changed_during; /* events while its sync ran */
	int		 rewatch;	/* rebuild the watches after the sync */
	int		 fails;		/* failures in a row */
	int		 last_status;	/* of the last failure, said once */
	int		 dead;		/* cannot be watched any more */
	unsigned long	 syncs;		/* started, for -v */
	/* IMAP IDLE: [s * CONFIG_IDLE_MAX + f], side s, folder f. */
	struct idler	 idle[2 * CONFIG_IDLE_MAX];
};

/* The loop's state. */
struct watch {
	const struct pairs_opts *o;
	struct wpair	*wp;		/* owned */
	size_t		 n;
	int		 ino;		/* inotify fd, -1 if none */
	int		 ino_full;	/* the watch limit was reached */
	size_t		 nwatches;	/* inotify watches held */
	long		 test_max;	/* MSYNC_TEST_INOTIFY_MAX, -1 none */
};

static int	 sigpipe_fd[2] = { -1, -1 };
static volatile sig_atomic_t got_stop, got_hup;

static void
on_signal(int sig)
{
	int	 saved = errno;
	char	 c = (char)sig;

	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig != SIGCHLD)
		got_stop++;
	(void)write(sigpipe_fd[1], &c, 1);
	errno = saved;
}

/*
 * Adds one inotify watch of kind k for pair w (only: the file name a
 * WD_MBOXFILE watch reports, copied).  Returns 0, or -1 (polled now).
 * MSYNC_TEST_INOTIFY_MAX=N makes the watch after the Nth fail as the
 * kernel's limit does, for the tests: the real limit is system-wide and
 * shared by every user of the machine.
 */
static int
add_watch(struct watch *ws, struct wpair *w, const char *path, enum wkind k,
    const char *only)
{
	static const uint32_t mask[] = { MASK_FOLDER, MASK_MSGS, MASK_MBOX,
	    MASK_MBOX };
	struct wdir	*v;
	char		*o = NULL;
	int		 wd;

	if (ws->ino < 0 || w->ndirs >= WATCH_DIRS_MAX)
		return -1;
	if (ws->test_max >= 0 && ws->nwatches >= (size_t)ws->test_max) {
		wd = -1;
		errno = ENOSPC;
	} else
		wd = inotify_add_watch(ws->ino, path, mask[k]);
	if (wd < 0) {
		if (errno == ENOSPC && !ws->ino_full) {
			WARNX("%s: the inotify watch limit is reached "
			    "(fs.inotify.max_user_watches): polling instead",
			    w->p->name);
			ws->ino_full = 1;
		}
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	}
	if ((only != NULL && (o = strdup(only)) == NULL) ||
	    (v = reallocarray(w->dirs, w->ndirs + 1, sizeof(*v))) == NULL) {
		free(o);
		(void)inotify_rm_watch(ws->ino, wd);
		return -1;
	}
	w->dirs = v;
	w->dirs[w->ndirs].wd = wd;
	w->dirs[w->ndirs].kind = k;
	w->dirs[w->ndirs].only = o;
	w->ndirs++;
	ws->nwatches++;
	return 0;
}

/*
 * The Maildir watcher: every directory of the tree (new folders appear
 * in them, in either layout) and every folder's new/ and cur/.  tmp/ is
 * left alone: a delivery counts when it is renamed into new/.
 */
static int
watch_maildir(struct watch *ws, struct wpair *w, const char *dir, int depth)
{
	DIR		*d;
	struct dirent	*de;
	char		 sub[PATH_MAX];
	int		 r = 0;

	if (depth > WATCH_DEPTH_MAX || add_watch(ws, w, dir, WD_FOLDER,
	    NULL) != 0)
		return -1;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, "tmp") == 0)
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir,
		    de->d_name) >= sizeof(sub))
			continue;
		if (strcmp(de->d_name, "new") == 0 ||
		    strcmp(de->d_name, "cur") == 0)
			r = add_watch(ws, w, sub, WD_MSGS, NULL);
		else {
			struct stat st;

			if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
				r = watch_maildir(ws, w, sub, depth + 1);
		}
	}
	closedir(d);
	return r;
}

/* 1 if a name in an mbox directory is never a mail file (mbox.c's rule). */
static int
mbox_ignored(const char *name)
{
	size_t	 len = strlen(name);

	return name[0] == '.' || (len > 5 && strcmp(name + len - 5,
	    ".lock") == 0);
}

/*
 * The mbox watcher for a directory of mbox files: every directory of the
 * tree (Thunderbird's "Name.sbd/" too), where every mail file counts.
 */
static int
watch_mbox_dir(struct watch *ws, struct wpair *w, const char *dir, int depth)
{
	DIR		*d;
	struct dirent	*de;
	char		 sub[PATH_MAX];
	struct stat	 st;
	int		 r = 0;

	if (depth > WATCH_DEPTH_MAX ||
	    add_watch(ws, w, dir, WD_MBOXDIR, NULL) != 0)
		return -1;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (mbox_ignored(de->d_name) ||
		    (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir,
		    de->d_name) >= sizeof(sub))
			continue;
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			r = watch_mbox_dir(ws, w, sub, depth + 1);
	}
	closedir(d);
	return r;
}

/*
 * What watches a kind of store.  A store format that can be watched adds
 * a line: match says whether a location is its kind, watch adds its
 * inotify watches or starts its helper for side s (0, or -1 to fall back
 * to polling).  A location no line claims is polled.
 */
static int
is_imap(const struct loc *l)
{
	return l->layout == LAYOUT_IMAP;
}

static int
is_mbox(const struct loc *l)
{
	int	 layout = l->layout;

	if (layout == LAYOUT_IMAP)
		return 0;
	if (LAYOUT_IS_MBOX(layout))
		return 1;
	if (store_detect(l->path, &layout) != 0)
		return 0;
	return LAYOUT_IS_MBOX(layout);
}

static int
is_maildir(const struct loc *l)
{
	int	 layout = l->layout;

	if (layout == LAYOUT_IMAP || LAYOUT_IS_MBOX(layout))
		return 0;
	if (store_detect(l->path, &layout) != 0)
		return 0;
	return !LAYOUT_IS_MBOX(layout);
}

static int
watch_maildir_root(struct watch *ws, struct wpair *w, const struct loc *l,
    int s)
{
	return watch_maildir(ws, w, l->path, 0);
}

/*
 * An mbox location is a directory of mbox files, or one file (which may
 * not exist yet: it appears in its directory).
 */
static int
watch_mbox(struct watch *ws, struct wpair *w, const struct loc *l, int s)
{
	struct stat	 st;
	char		*dir, *slash;
	int		 r;

	if (stat(l->path, &st) == 0 && S_ISDIR(st.st_mode))
		return watch_mbox_dir(ws, w, l->path, 0);
	if ((dir = strdup(l->path)) == NULL)
		return -1;
	if ((slash = strrchr(dir, '/')) == NULL)
		r = add_watch(ws, w, ".", WD_MBOXFILE, dir);
	else if (slash[1] == '\0')
		r = -1;
	else {
		*slash = '\0';
		r = add_watch(ws, w, slash == dir ? "/" : dir, WD_MBOXFILE,
		    slash + 1);
	}
	free(dir);
	return r;
}

static int	 idler_start(struct watch *, struct wpair *, int);

/* The IMAP folders idled on: the pair's `idle` list, or INBOX. */
static size_t
idle_nfolders(const struct wpair *w)
{
	return w->p->nidle == 0 ? 1 : w->p->nidle < CONFIG_IDLE_MAX ?
	    w->p->nidle : CONFIG_IDLE_MAX;
}

static const char *
idle_folder(const struct wpair *w, int k)
{
	return w->p->nidle == 0 ? "INBOX" : w->p->idle[k % CONFIG_IDLE_MAX];
}
static long long backoff_ms(int);

/* An IMAP side: an IDLE connection in a child, unless the server has none. */
static int
watch_imap(struct watch *ws, struct wpair *w, const struct loc *l, int s)
{
	for (size_t f = 0; f < idle_nfolders(w); f++) {
		int	 k = s * CONFIG_IDLE_MAX + (int)f;

		switch (w->idle[k].state) {
		case IDLER_NOIDLE:
			return -1;	/* the server's: poll the side */
		case IDLER_NONE:
			if (idler_start(ws, w, k) != 0)
				return -1;
			break;
		default:
			break;	/* running, or restarted after its backoff */
		}
	}
	return 0;
}

static const struct watcher {
	int	(*match)(const struct loc *);
	int	(*watch)(struct watch *, struct wpair *, const struct loc *,
		    int);
} watchers[] = {
	{ is_imap, watch_imap },
	{ is_mbox, watch_mbox },
	{ is_maildir, watch_maildir_root },
};

/* Drops a pair's inotify watches (not its idlers). */
static void
unwatch(struct watch *ws, struct wpair *w)
{
	for (size_t i = 0; i < w->ndirs; i++) {
		(void)inotify_rm_watch(ws->ino, w->dirs[i].wd);
		free(w->dirs[i].only);
	}
	ws->nwatches -= w->ndirs < ws->nwatches ? w->ndirs : ws->nwatches;
	free(w->dirs);
	w->dirs = NULL;
	w->ndirs = 0;
}

/* The location of side s of w, with "~/" expanded, parsed into *l. */
static int
side_loc(const struct wpair *w, int s, struct loc *l)
{
	const char	*side = s == 0 ? w->p->a : w->p->b;
	const char	*h = getenv("HOME");
	char		*path = NULL;
	int		 r;

	memset(l, 0, sizeof(*l));
	if (strncmp(side, "~/", 2) == 0 && h != NULL &&
	    asprintf(&path, "%s/%s", h, side + 2) < 0)
		path = NULL;
	r = loc_parse(path != NULL ? path : side, l);
	free(path);
	return r;
}

/* (Re)builds a pair's watches; sets w->polled for a side not watched. */
static void
setup_watches(struct watch *ws, struct wpair *w)
{
	int		 was_polled = w->polled;

	unwatch(ws, w);
	w->polled = 0;
	for (int s = 0; s < 2; s++) {
		struct loc	 l;
		size_t		 i;
		int		 ok = 0;

		if (side_loc(w, s, &l) == 0 && l.host == NULL) {
			for (i = 0; i < sizeof(watchers) / sizeof(watchers[0]);
			    i++)
				if (watchers[i].match(&l)) {
					ok = watchers[i].watch(ws, w, &l,
					    s) == 0;
					break;
				}
		}
		if (!ok)
			w->polled = 1;
		loc_free(&l);
	}
	w->every_ms = w->p->every > 0 ? w->p->every * 1000 :
	    w->polled ? WATCH_EVERY_DEFAULT * 1000 : 0;
	if (w->polled && !was_polled)
		LOG1("%s: a side cannot be watched for changes: looking "
		    "every %d s", w->p->name, w->every_ms / 1000);
	if (w->polled && w->every_ms > 0 && w->next_poll == 0 &&
	    w->job.pid == 0)
		w->next_poll = msync_now_ms() + w->every_ms;
	LOG2("%s: %zu directories watched", w->p->name, w->ndirs);
}

/* A change was seen for w: (re)start its quiet period. */
static void
changed(struct wpair *w, long long now)
{
	if (w->job.pid != 0) {
		w->changed_during = 1;
		return;
	}
	if (w->fails > 0)
		return;		/* the backoff decides when */
	if (w->first_change == 0)
		w->first_change = now;
	w->due = now + w->debounce_ms;
	if (w->due > w->first_change + WATCH_DEBOUNCE_CAP)
		w->due = w->first_change + WATCH_DEBOUNCE_CAP;
}

/* Reads the inotify events and marks their pairs. */
static void
read_events(struct watch *ws, long long now)
{
	char		 buf[16384] __attribute__((aligned(8)));
	ssize_t		 len;
	const uint32_t	 self = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED;

	while ((len = read(ws->ino, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const void *)p;
			const char	*name;

			if ((size_t)(buf + len - p) < sizeof(*ev) ||
			    ev->len > (size_t)(buf + len - p) - sizeof(*ev))
				break;
			p += sizeof(*ev) + ev->len;
			/* The kernel pads the name with NULs; len may be 0. */
			name = ev->len > 0 && memchr(ev->name, '\0', ev->len) !=
			    NULL ? ev->name : "";
			if (ev->mask & IN_Q_OVERFLOW) {
				for (size_t i = 0; i < ws->n; i++)
					changed(&ws->wp[i], now);
				continue;
			}
			for (size_t i = 0; i < ws->n; i++) {
				struct wpair *w = &ws->wp[i];
				struct wdir *d = NULL;

				for (size_t k = 0; k < w->ndirs; k++)
					if (w->dirs[k].wd == ev->wd) {
						d = &w->dirs[k];
						break;
					}
				if (d == NULL)
					continue;
				if (ev->mask & (IN_ISDIR | self))
					w->rewatch = 1;
				switch (d->kind) {
				case WD_FOLDER:
					/* A folder directory: only folders. */
					if (!(ev->mask & (IN_ISDIR | self)))
						continue;
					break;
				case WD_MSGS:
					break;
				case WD_MBOXDIR:
					if (!(ev->mask & (IN_ISDIR | self)) &&
					    mbox_ignored(name))
						continue;
					break;
				case WD_MBOXFILE:
					if (!(ev->mask & self) &&
					    strcmp(name, d->only) != 0)
						continue;
					break;
				}
				if (!(ev->mask & IN_IGNORED))
					changed(w, now);
			}
		}
	}
}

/* ---- IMAP IDLE -------------------------------------------------------- */

/* The child's report to the watcher: one line.  Failures are ignored. */
static void
idler_say(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
idler_say(int fd, const char *fmt, ...)
{
	char	 line[IDLER_LINE_MAX];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(fd, line, (size_t)n) < 0 && errno == EPIPE)
		_exit(0);	/* the watcher is gone */
}

/*
 * A store's mailbox name (UTF-8, '/' between levels) as the server names
 * it: modified UTF-7, its separator, under the URL's root; INBOX is the
 * server's own when there is no root.  The same rule as the IMAP
 * store's, kept here so that the watcher needs no store.
 */
static int
idle_raw_name(const struct imap_url *u, char sep, const char *name,
    char **out)
{
	char	*m = NULL, *full = NULL;
	int	 r;

	*out = NULL;
	if (strcmp(name, "INBOX") == 0 && u->root[0] == '\0')
		return (*out = strdup("INBOX")) == NULL ? MSYNC_ERR_NOMEM : 0;
	if ((r = names_to_mutf7(name, &m)) != 0)
		return r;
	for (char *p = m; *p != '\0'; p++) {
		if (*p == sep && sep != '/') {
			free(m);
			return MSYNC_ERR_BADNAME;
		}
		if (*p == '/')
			*p = sep;
	}
	if (u->root[0] != '\0') {
		if (asprintf(&full, "%s%c%s", u->root, sep, m) < 0)
			full = NULL;
		free(m);
		if (full == NULL)
			return MSYNC_ERR_NOMEM;
		m = full;
	}
	*out = m;
	return 0;
}

/*
 * The idler child: connects to the IMAP location url (the password from
 * passcmd, ~/.netrc, as a sync would get it; never the terminal, which
 * the watcher may not have), examines folder and idles there,
 * reporting on fd.  Returns the exit status: IDLER_EXIT_NOIDLE when the
 * server refuses IDLE, else 1 after a failure.  One folder per child
 * (IDLE watches the selected mailbox only): the pair's `idle` list, by
 * default INBOX, where deliveries land.
 */
static int
idler_main(const char *url, const char *folder, const char *passcmd, int fd)
{
	struct imap_url		 u;
	struct imap_conn_opts	 co;
	struct imap_conn	*c = NULL;
	struct imap_done	 d;
	char			*secret = NULL, *why = NULL, *q = NULL;
	char			*raw = NULL;
	const char		*x;
	int			 r, ch, max_ms = IDLE_RENEW_MS, st = 1;

	memset(&u, 0, sizeof(u));
	if ((x = getenv("MSYNC_TEST_IDLE_MS")) != NULL && atoi(x) > 0)
		max_ms = atoi(x);
	if ((r = imap_url_parse(url, &u, &why)) != 0)
		goto out;
	if (passcmd == NULL && secret_from_netrc(u.host, u.user, &secret,
	    &why) != 0) {
		free(why);
		why = strdup("no password: give the pair a passcmd");
		r = MSYNC_ERR_USAGE;
		goto out;
	}
	if (passcmd != NULL &&
	    (r = secret_from_cmd(passcmd, &secret, &why)) != 0)
		goto out;
	memset(&co, 0, sizeof(co));
	co.host = u.host;
	co.port = u.port;
	co.user = u.user;
	co.tls = u.tls;
	co.fingerprint = u.fingerprint;
	co.auth = u.auth;
	co.secret = secret;
	if ((x = getenv("MSYNC_IMAP_TIMEOUT")) != NULL && atoi(x) > 0)
		co.timeout_ms = atoi(x) * 1000;
	co.no_compress = getenv("MSYNC_IMAP_NO_COMPRESS") != NULL;
	co.loopback_compress = getenv("MSYNC_IMAP_COMPRESS") != NULL;
	r = imap_connect(&co, &c, &why);
	secret_free(secret);
	secret = NULL;
	if (r != 0)
		goto out;
	/* The store's name on the server, as src/store/imap.c makes it. */
	if ((r = idle_raw_name(&u, imap_conn_sep(c), folder, &raw)) != 0 ||
	    (r = imap_quote(raw, &q)) != 0) {
		if (r == MSYNC_ERR_BADNAME && asprintf(&why, "'%s' cannot be "
		    "a folder on this server", log_esc(folder, 200)) < 0)
			why = NULL;
		goto out;
	}
	if ((r = imap_cmd(c, &d, "EXAMINE %s", q)) != 0)
		goto out;
	if (d.status != IMAP_OK) {
		if (asprintf(&why, "cannot examine '%s': %s", raw,
		    log_esc(d.text, 200)) < 0)
			why = NULL;
		r = MSYNC_ERR_NOTFOUND;
		goto out;
	}
	for (int first = 1;; first = 0) {
		if (getenv("MSYNC_TEST_NO_IDLE") != NULL)
			r = MSYNC_ERR_NOTFOUND;
		else
			r = imap_idle(c, first ? 0 : max_ms, &ch);
		if (r == MSYNC_ERR_NOTFOUND) {
			st = IDLER_EXIT_NOIDLE;
			goto out;
		}
		if (r != 0)
			goto out;
		/* The first round only proves IDLE is there. */
		if (first)
			idler_say(fd, "r");
		else if (ch)
			idler_say(fd, "c");
	}
out:
	if (st != IDLER_EXIT_NOIDLE)
		idler_say(fd, "e %s", why != NULL ? why : c != NULL &&
		    imap_why(c)[0] != '\0' ? imap_why(c) : msync_strerror(r));
	imap_close(c);
	secret_free(secret);
	imap_url_free(&u);
	free(raw);
	free(q);
	free(why);
	return st;
}

/*
 * Starts the idler of side s of w (a forked child, see idler_main).
 * Returns 0, or -1 (the side is polled).
 */
static int
idler_start(struct watch *ws, struct wpair *w, int k)
{
	struct idler	*id = &w->idle[k];
	int		 s = k / CONFIG_IDLE_MAX;
	const char	*passcmd = w->p->passcmd != NULL ? w->p->passcmd :
	    getenv("MSYNC_PASSCMD");
	int		 p[2];
	pid_t		 pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	fflush(stderr);
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		struct sigaction sa;
		long	 maxfd = sysconf(_SC_OPEN_MAX);

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		(void)sigaction(SIGTERM, &sa, NULL);
		(void)sigaction(SIGINT, &sa, NULL);
		(void)sigaction(SIGHUP, &sa, NULL);
		(void)sigaction(SIGCHLD, &sa, NULL);
		sa.sa_handler = SIG_IGN;
		(void)sigaction(SIGPIPE, &sa, NULL);
		/* Never outlive the watcher, nor hold its locks. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(0);
		if (maxfd < 0 || maxfd > 65536)
			maxfd = 65536;
		for (int fd = 3; fd < maxfd; fd++)
			if (fd != p[1])
				(void)close(fd);
		_exit(idler_main(s == 0 ? w->p->a : w->p->b,
		    idle_folder(w, k), passcmd, p[1]));
	}
	close(p[1]);
	(void)fcntl(p[0], F_SETFL, O_NONBLOCK);
	id->state = IDLER_RUNNING;
	id->pid = pid;
	id->fd = p[0];
	id->len = 0;
	id->ready = 0;
	LOG2("%s: IDLE helper %ld started for side %c, '%s'", w->p->name,
	    (long)pid, s == 0 ? 'A' : 'B', log_esc(idle_folder(w, k), 200));
	return 0;
}

/* Ends an idler (the watcher stops, or its pair is dropped). */
static void
idler_stop(struct idler *id)
{
	if (id->pid != 0) {
		(void)kill(id->pid, SIGTERM);
		while (waitpid(id->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (id->fd >= 0)
		close(id->fd);
	free(id->why);
	memset(id, 0, sizeof(*id));
	id->fd = -1;
}

static void	 setup_watches(struct watch *, struct wpair *);

/*
 * Reads side s's idler's lines; at its end, decides: a server without
 * IDLE makes the side polled (said once), a lost connection is
 * restarted with the retry delays (said when it first fails, and when it
 * is back).
 */
static void
idler_read(struct watch *ws, struct wpair *w, int k, long long now)
{
	struct idler	*id = &w->idle[k];
	int		 s = k / CONFIG_IDLE_MAX;
	ssize_t		 n;
	int		 st;
	char		*nl;

	for (;;) {
		n = read(id->fd, id->line + id->len, sizeof(id->line) - 1 -
		    id->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;		/* EAGAIN: more later */
		if (n == 0)
			break;
		id->len += (size_t)n;
		id->line[id->len] = '\0';
		while ((nl = memchr(id->line, '\n', id->len)) != NULL) {
			*nl = '\0';
			if (strcmp(id->line, "r") == 0) {
				if (id->fails > 0) {
					LOG1("%s: IDLE on side %c works "
					    "again ('%s')", w->p->name,
					    s == 0 ? 'A' : 'B', log_esc(
					    idle_folder(w, k), 200));
					/* Changes while it was away. */
					changed(w, now);
				}
				id->fails = 0;
				id->ready = 1;
			} else if (strcmp(id->line, "c") == 0) {
				LOG2("%s: IDLE: side %c changed ('%s')",
				    w->p->name, s == 0 ? 'A' : 'B',
				    log_esc(idle_folder(w, k), 200));
				changed(w, now);
			} else if (strncmp(id->line, "e ", 2) == 0) {
				free(id->why);
				id->why = strdup(id->line + 2);
			}
			id->len -= (size_t)(nl + 1 - id->line);
			memmove(id->line, nl + 1, id->len);
		}
		if (id->len == sizeof(id->line) - 1)
			id->len = 0;	/* a line too long: not ours */
	}
	close(id->fd);
	id->fd = -1;
	while (waitpid(id->pid, &st, 0) < 0 && errno == EINTR)
		;
	id->pid = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == IDLER_EXIT_NOIDLE) {
		int	 said = 0;

		/* The server's answer, the same for every folder: said once. */
		for (int f = 0; f < CONFIG_IDLE_MAX; f++)
			said |= w->idle[s * CONFIG_IDLE_MAX + f].state ==
			    IDLER_NOIDLE;
		id->state = IDLER_NOIDLE;
		if (!said)
			WARNX("%s: the IMAP server of side %c offers no IDLE: "
			    "looking for changes every %d s instead",
			    w->p->name, s == 0 ? 'A' : 'B', w->p->every > 0 ?
			    w->p->every : WATCH_EVERY_DEFAULT);
		setup_watches(ws, w);
		return;
	}
	id->fails++;
	id->state = IDLER_WAITING;
	id->restart_at = now + backoff_ms(id->fails);
	if (id->fails == 1)
		WARNX("%s: IDLE connection of side %c lost ('%s': %s); "
		    "reconnecting in %lld s, then less often while it fails, "
		    "quietly", w->p->name, s == 0 ? 'A' : 'B',
		    log_esc(idle_folder(w, k), 100), id->why != NULL ?
		    log_esc(id->why, 200) : "it ended", backoff_ms(1) / 1000);
	else
		LOG2("%s: IDLE reconnect failed again (%s)", w->p->name,
		    id->why != NULL ? log_esc(id->why, 200) : "it ended");
}

/* The delay before retry number fails (1, 2, ...): doubling, capped. */
static long long
backoff_ms(int fails)
{
	long long	 d = WATCH_BACKOFF_MIN;

	for (int i = 1; i < fails && d < WATCH_BACKOFF_MAX; i++)
		d *= 2;
	return d < WATCH_BACKOFF_MAX ? d : WATCH_BACKOFF_MAX;
}

/*
 * A pair's sync ended with status st (and its first error line, or
 * NULL): plan the next one.
 */
static void
finished(struct watch *ws, struct wpair *w, int st, const char *error,
    long long now)
{
	if (st == 0 || st == EXIT_CHANGED) {
		if (w->fails > 0)
			LOG1("%s: in sync again after %d failed attempts",
			    w->p->name, w->fails);
		w->fails = 0;
		w->last_status = 0;
		/* 2: a store changed during the run; run again soon. */
		if (st == EXIT_CHANGED || w->changed_during) {
			w->first_change = now;
			w->due = now + w->debounce_ms;
		}
	} else if (st == EXIT_USAGE && w->syncs == 1) {
		/* The pair's command line is wrong: retrying cannot help. */
		ERRX("%s: cannot be synced (usage error): no longer watched",
		    w->p->name);
		w->dead = 1;
		unwatch(ws, w);
		for (int k = 0; k < 2 * CONFIG_IDLE_MAX; k++)
			idler_stop(&w->idle[k]);
	} else {
		w->fails++;
		w->due = now + backoff_ms(w->fails);
		if (st != w->last_status)
			WARNX("%s: sync failed (status %d%s%s); retrying in "
			    "%lld s, then less often while it fails, quietly",
			    w->p->name, st, error != NULL ? ": " : "",
			    error != NULL ? log_esc(error, 200) : "",
			    backoff_ms(w->fails) / 1000);
		else
			LOG2("%s: sync failed again (status %d); next try in "
			    "%lld s", w->p->name, st, backoff_ms(w->fails) /
			    1000);
		w->last_status = st;
	}
	w->changed_during = 0;
	if (w->rewatch && !w->dead) {
		w->rewatch = 0;
		setup_watches(ws, w);
	}
	if (w->every_ms > 0)
		w->next_poll = now + w->every_ms;
}

/*
 * Holds an exclusive lock on the pair's watch lock file for the life of
 * the process, so that a second `msync --watch` of the pair refuses to
 * start.  Returns the fd, or -1 (printed).
 */
static int
lock_pair(const struct pair *p)
{
	char	*path;
	int	 fd;

	if ((path = pairs_state_file(p, "watch.lock", 1)) == NULL) {
		ERRX("%s: no place for the watch lock (HOME?)", p->name);
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ERR("%s: cannot open '%s'", p->name, path);
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ERRX("%s: another msync --watch already watches this pair "
		    "('%s' is locked)", p->name, path);
		close(fd);
		free(path);
		return -1;
	}
	free(path);
	return fd;
}

/* Sets up a pair's state (not its watches). */
static void
wpair_init(struct wpair *w, const struct pair *p, long long now)
{
	memset(w, 0, sizeof(*w));
	w->p = p;
	w->job.out = w->job.err = -1;
	for (int k = 0; k < 2 * CONFIG_IDLE_MAX; k++)
		w->idle[k].fd = -1;
	w->debounce_ms = p->debounce_ms >= 0 ? p->debounce_ms :
	    WATCH_DEBOUNCE_DEFAULT;
	w->due = now;	/* the first sync: at once */
}

/*
 * SIGHUP: reads the config again and takes the same names from it.  On
 * any error the old config stays in force.  Only called with no sync
 * running (the pairs' pointers point into the config).
 */
static void
reload(struct watch *ws, struct config **cfg, long long now)
{
	struct config	*nc = NULL;
	const struct pair **list = NULL;
	struct wpair	*nw;
	char		*why = NULL;
	size_t		 n = 0;
	int		 r;

	if (*cfg == NULL)
		return;		/* `--watch A B`: nothing to read */
	r = config_load((*cfg)->path, &nc, &why);
	for (size_t i = 0; r == 0 && i < ws->n; i++)
		r = config_select(nc, ws->wp[i].p->name, &list, &n, &why);
	if (r != 0 || (nw = calloc(n, sizeof(*nw))) == NULL) {
		ERRX("SIGHUP: %s; keeping the old configuration", why != NULL ?
		    why : r == MSYNC_ERR_NOTFOUND ? "a watched pair is gone" :
		    msync_strerror(r != 0 ? r : MSYNC_ERR_NOMEM));
		free(why);
		free(list);
		config_free(nc);
		return;
	}
	for (size_t i = 0; i < ws->n; i++) {
		unwatch(ws, &ws->wp[i]);
		for (int k = 0; k < 2 * CONFIG_IDLE_MAX; k++)
			idler_stop(&ws->wp[i].idle[k]);
		job_clear(&ws->wp[i].job);
	}
	free(ws->wp);
	ws->wp = nw;
	ws->n = n;
	for (size_t i = 0; i < n; i++) {
		wpair_init(&ws->wp[i], list[i], now);
		setup_watches(ws, &ws->wp[i]);
	}
	config_free(*cfg);
	*cfg = nc;
	free(list);
	LOG1("configuration '%s' read again: %zu pairs watched", nc->path, n);
}

int
watch_main(const struct pairs_opts *o, struct config **cfg,
    const struct pair **list, size_t n)
{
	struct watch	 ws;
	struct sigaction sa;
	struct pollfd	*pfd = NULL;
	int		*locks = NULL, status = 0;
	long long	 now, stop_at = 0;
	size_t		 alive;

	memset(&ws, 0, sizeof(ws));
	ws.o = o;
	ws.ino = -1;
	ws.test_max = getenv("MSYNC_TEST_INOTIFY_MAX") != NULL ?
	    atol(getenv("MSYNC_TEST_INOTIFY_MAX")) : -1;
	if (pipe2(sigpipe_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
		ERR("pipe");
		return EXIT_ERROR;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGCHLD, &sa, NULL);

	if ((ws.wp = calloc(n, sizeof(*ws.wp))) == NULL ||
	    (locks = calloc(n, sizeof(*locks))) == NULL) {
		status = EXIT_ERROR;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		locks[i] = -1;
	for (size_t i = 0; i < n; i++)
		if ((locks[i] = lock_pair(list[i])) < 0) {
			status = EXIT_TEMPFAIL;
			goto out;
		}
	if ((ws.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0)
		WARN("inotify: polling every side instead");
	now = msync_now_ms();
	ws.n = n;
	for (size_t i = 0; i < n; i++) {
		wpair_init(&ws.wp[i], list[i], now);
		setup_watches(&ws, &ws.wp[i]);
	}
	LOG1("watching %zu pair%s", n, n == 1 ? "" : "s");

	for (;;) {
		long long	 wake = -1;
		int		 np = 0, timeout;
		char		 sigbuf[64];

		now = msync_now_ms();
		if (got_stop && stop_at == 0) {
			LOG1("stopping: letting a running sync finish");
			stop_at = now + WATCH_STOP_GRACE;
		}
		/* Past the grace time, or a second signal: abandon. */
		for (size_t i = 0; stop_at != 0 && i < ws.n; i++)
			if (ws.wp[i].job.pid != 0 && (now >= stop_at ||
			    got_stop > 1))
				(void)kill(ws.wp[i].job.pid, SIGTERM);
		alive = 0;
		for (size_t i = 0; i < ws.n; i++) {
			struct wpair *w = &ws.wp[i];

			if (w->job.pid != 0) {
				alive++;
				continue;
			}
			if (w->dead || stop_at != 0)
				continue;
			alive++;
			if (w->next_poll != 0 && now >= w->next_poll &&
			    w->due == 0) {
				w->due = now;
				w->next_poll = 0;
			}
			if (w->due != 0 && now >= w->due) {
				w->due = 0;
				w->first_change = 0;
				w->changed_during = 0;
				w->syncs++;
				LOG2("%s: sync %lu", w->p->name, w->syncs);
				if (job_start(o, w->p, &w->job) != 0)
					finished(&ws, w, EXIT_ERROR, NULL,
					    now);
				/* A retry of a failing pair: said once. */
				w->job.mute = w->fails > 0 &&
				    log_verbosity < 2;
			}
		}
		if (stop_at != 0 && alive == 0)
			break;
		if (alive == 0) {
			ERRX("no pair can be watched");
			status = EXIT_USAGE;
			break;
		}
		/* SIGHUP: once no sync runs (jobs point into the config). */
		if (got_hup) {
			int	 busy = 0;

			for (size_t i = 0; i < ws.n; i++)
				busy |= ws.wp[i].job.pid != 0;
			if (!busy) {
				got_hup = 0;
				reload(&ws, cfg, now);
				continue;
			}
		}

		free(pfd);
		if ((pfd = calloc(2 + ws.n * 4, sizeof(*pfd))) == NULL) {
			status = EXIT_ERROR;
			break;
		}
		pfd[np].fd = sigpipe_fd[0];
		pfd[np++].events = POLLIN;
		if (ws.ino >= 0) {
			pfd[np].fd = ws.ino;
			pfd[np++].events = POLLIN;
		}
		for (size_t i = 0; i < ws.n; i++) {
			struct wpair *w = &ws.wp[i];

			for (int k = 0; k < 2 * CONFIG_IDLE_MAX; k++) {
				struct idler *id = &w->idle[k];

				if (id->fd >= 0) {
					pfd[np].fd = id->fd;
					pfd[np++].events = POLLIN;
				} else if (id->state == IDLER_WAITING &&
				    !w->dead && stop_at == 0 &&
				    (wake < 0 || id->restart_at < wake))
					wake = id->restart_at;
			}
			if (w->job.pid != 0) {
				np += job_pollfds(&w->job, pfd + np);
				/* A child may exit with its pipes held. */
				if (wake < 0 || now + 200 < wake)
					wake = now + 200;
				continue;
			}
			if (w->dead)
				continue;
			if (w->due != 0 && (wake < 0 || w->due < wake))
				wake = w->due;
			if (w->next_poll != 0 && (wake < 0 ||
			    w->next_poll < wake))
				wake = w->next_poll;
		}
		if (stop_at != 0 && (wake < 0 || stop_at < wake))
			wake = stop_at;
		timeout = wake < 0 ? -1 : wake <= now ? 0 :
		    wake - now > INT_MAX ? INT_MAX : (int)(wake - now);
		if (poll(pfd, (nfds_t)np, timeout) < 0 && errno != EINTR) {
			ERR("poll");
			status = EXIT_ERROR;
			break;
		}
		while (read(sigpipe_fd[0], sigbuf, sizeof(sigbuf)) > 0)
			;
		now = msync_now_ms();
		if (ws.ino >= 0)
			read_events(&ws, now);
		for (size_t i = 0; i < ws.n; i++)
			for (int k = 0; k < 2 * CONFIG_IDLE_MAX; k++) {
				struct wpair *w = &ws.wp[i];
				struct idler *id = &w->idle[k];

				if (id->fd >= 0)
					idler_read(&ws, w, k, now);
				else if (id->state == IDLER_WAITING &&
				    !w->dead && stop_at == 0 &&
				    now >= id->restart_at &&
				    idler_start(&ws, w, k) != 0)
					id->restart_at = now +
					    backoff_ms(++id->fails);
			}
		for (size_t i = 0; i < ws.n; i++) {
			struct wpair *w = &ws.wp[i];
			int	 st;

			if (w->job.pid == 0 || !job_step(o, &w->job))
				continue;
			st = w->job.status;
			finished(&ws, w, st, w->job.first_error,
			    msync_now_ms());
			job_clear(&w->job);
		}
	}
out:
	for (size_t i = 0; ws.wp != NULL && i < ws.n; i++) {
		/* A child still running after a failure: end it. */
		if (ws.wp[i].job.pid != 0) {
			(void)kill(ws.wp[i].job.pid, SIGTERM);
			(void)waitpid(ws.wp[i].job.pid, NULL, 0);
		}
		unwatch(&ws, &ws.wp[i]);
		for (int k = 0; k < 2 * CONFIG_IDLE_MAX; k++)
			idler_stop(&ws.wp[i].idle[k]);
		job_clear(&ws.wp[i].job);
	}
	for (size_t i = 0; locks != NULL && i < n; i++)
		if (locks[i] >= 0)
			close(locks[i]);
	free(locks);
	free(pfd);
	free(ws.wp);
	if (ws.ino >= 0)
		close(ws.ino);
	close(sigpipe_fd[0]);
	close(sigpipe_fd[1]);
	sigpipe_fd[0] = sigpipe_fd[1] = -1;
	return status;
}
