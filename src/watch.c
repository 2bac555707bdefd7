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
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "msync.h"
#include "pairs.h"
#include "store.h"
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

/* Directory masks: folders come and go; messages arrive and change. */
#define MASK_FOLDER	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
	    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define MASK_MSGS	(MASK_FOLDER | IN_CLOSE_WRITE | IN_ATTRIB)

/* One watched directory of a pair. */
struct wdir {
	int	 wd;		/* inotify watch descriptor */
	int	 msgs;		/* new/ or cur/: every event counts */
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
};

/* The loop's state. */
struct watch {
	const struct pairs_opts *o;
	struct wpair	*wp;		/* owned */
	size_t		 n;
	int		 ino;		/* inotify fd, -1 if none */
	int		 ino_full;	/* the watch limit was reached */
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

/* Adds one inotify watch for pair w.  Returns 0, or -1 (polled now). */
static int
add_watch(struct watch *ws, struct wpair *w, const char *path, int msgs)
{
	struct wdir	*v;
	int		 wd;

	if (ws->ino < 0 || w->ndirs >= WATCH_DIRS_MAX)
		return -1;
	wd = inotify_add_watch(ws->ino, path, msgs ? MASK_MSGS : MASK_FOLDER);
	if (wd < 0) {
		if (errno == ENOSPC && !ws->ino_full) {
			WARNX("%s: the inotify watch limit is reached "
			    "(fs.inotify.max_user_watches): polling instead",
			    w->p->name);
			ws->ino_full = 1;
		}
		return errno == ENOENT || errno == ENOTDIR ? 0 : -1;
	}
	if ((v = reallocarray(w->dirs, w->ndirs + 1, sizeof(*v))) == NULL) {
		(void)inotify_rm_watch(ws->ino, wd);
		return -1;
	}
	w->dirs = v;
	w->dirs[w->ndirs].wd = wd;
	w->dirs[w->ndirs].msgs = msgs;
	w->ndirs++;
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

	if (depth > WATCH_DEPTH_MAX || add_watch(ws, w, dir, 0) != 0)
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
			r = add_watch(ws, w, sub, 1);
		else {
			struct stat st;

			if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
				r = watch_maildir(ws, w, sub, depth + 1);
		}
	}
	closedir(d);
	return r;
}

/*
 * What watches a kind of store.  A store format that can be watched adds
 * a line: match says whether a (local) location is its kind, watch adds
 * its inotify watches (0, or -1 to fall back to polling).  A location no
 * line claims is polled.
 */
static int
is_maildir(const struct loc *l)
{
	int	 layout = l->layout;

	if (LAYOUT_IS_MBOX(layout))
		return 0;
	if (store_detect(l->path, &layout) != 0)
		return 0;
	return !LAYOUT_IS_MBOX(layout);
}

static int
watch_maildir_root(struct watch *ws, struct wpair *w, const struct loc *l)
{
	return watch_maildir(ws, w, l->path, 0);
}

static const struct watcher {
	int	(*match)(const struct loc *);
	int	(*watch)(struct watch *, struct wpair *, const struct loc *);
} watchers[] = {
	{ is_maildir, watch_maildir_root },
	/* mbox (i12), IMAP IDLE (i13): add lines here. */
};

/* Drops a pair's watches. */
static void
unwatch(struct watch *ws, struct wpair *w)
{
	for (size_t i = 0; i < w->ndirs; i++)
		(void)inotify_rm_watch(ws->ino, w->dirs[i].wd);
	free(w->dirs);
	w->dirs = NULL;
	w->ndirs = 0;
}

/* (Re)builds a pair's watches; sets w->polled for a side not watched. */
static void
setup_watches(struct watch *ws, struct wpair *w)
{
	const char	*side[2] = { w->p->a, w->p->b };
	int		 was_polled = w->polled;

	unwatch(ws, w);
	w->polled = 0;
	for (int s = 0; s < 2; s++) {
		struct loc	 l;
		char		*path = NULL;
		const char	*h = getenv("HOME");
		size_t		 i;
		int		 ok = 0;

		memset(&l, 0, sizeof(l));
		if (strncmp(side[s], "~/", 2) == 0 && h != NULL &&
		    asprintf(&path, "%s/%s", h, side[s] + 2) < 0)
			path = NULL;
		if (loc_parse(path != NULL ? path : side[s], &l) == 0 &&
		    l.host == NULL) {
			for (i = 0; i < sizeof(watchers) / sizeof(watchers[0]);
			    i++)
				if (watchers[i].match(&l)) {
					ok = watchers[i].watch(ws, w, &l) == 0;
					break;
				}
		}
		if (!ok)
			w->polled = 1;
		loc_free(&l);
		free(path);
	}
	w->every_ms = w->p->every > 0 ? w->p->every * 1000 :
	    w->polled ? WATCH_EVERY_DEFAULT * 1000 : 0;
	if (w->polled && !was_polled)
		LOG1("%s: a side cannot be watched for changes: looking "
		    "every %d s", w->p->name, w->every_ms / 1000);
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

	while ((len = read(ws->ino, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const void *)p;

			if ((size_t)(buf + len - p) < sizeof(*ev) ||
			    ev->len > (size_t)(buf + len - p) - sizeof(*ev))
				break;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				for (size_t i = 0; i < ws->n; i++)
					changed(&ws->wp[i], now);
				continue;
			}
			for (size_t i = 0; i < ws->n; i++) {
				struct wpair *w = &ws->wp[i];

				for (size_t k = 0; k < w->ndirs; k++) {
					if (w->dirs[k].wd != ev->wd)
						continue;
					/* A folder directory: only folders. */
					if (!w->dirs[k].msgs &&
					    !(ev->mask & (IN_ISDIR |
					    IN_DELETE_SELF | IN_MOVE_SELF |
					    IN_IGNORED)))
						break;
					if (ev->mask & (IN_ISDIR |
					    IN_DELETE_SELF | IN_MOVE_SELF |
					    IN_IGNORED))
						w->rewatch = 1;
					if (!(ev->mask & IN_IGNORED))
						changed(w, now);
					break;
				}
			}
		}
	}
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
	now = pairs_now_ms();
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

		now = pairs_now_ms();
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
		if ((pfd = calloc(2 + ws.n * 2, sizeof(*pfd))) == NULL) {
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
		now = pairs_now_ms();
		if (ws.ino >= 0)
			read_events(&ws, now);
		for (size_t i = 0; i < ws.n; i++) {
			struct wpair *w = &ws.wp[i];
			int	 st;

			if (w->job.pid == 0 || !job_step(o, &w->job))
				continue;
			st = w->job.status;
			finished(&ws, w, st, w->job.first_error,
			    pairs_now_ms());
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
