/*
 * pairs.c — running named pairs: selection from the command line, one
 * child msync per sync, -j N of them at once, the pair's name before
 * every line they print, the exit status of the whole run, and the last
 * result of each pair (for --pairs).
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "msync.h"
#include "pairs.h"
#include "report.h"
#include "watch.h"

#define JOB_OUT_MAX	(1024 * 1024)	/* bytes of a child's stdout kept */

/* 1 if a word may be a location rather than a name: it has '/' or ':'. */
static int
looks_like_location(const char *s)
{
	return strchr(s, '/') != NULL || strchr(s, ':') != NULL;
}

/* Prints the configured names, as a hint after an unknown one. */
static void
hint_names(const struct config *c)
{
	char	 list[512];
	size_t	 len = 0;

	list[0] = '\0';
	for (size_t i = 0; c != NULL && i < c->npair + c->ngroup; i++) {
		const char *n = i < c->npair ? c->pair[i].name :
		    c->group[i - c->npair].name;
		int	 w = snprintf(list + len, sizeof(list) - len, "%s%s",
		    len > 0 ? ", " : "", n);

		if (w < 0 || (size_t)w >= sizeof(list) - len) {
			len = sizeof(list) - 1;
			break;
		}
		len += (size_t)w;
	}
	if (len > 0)
		LOG1("hint: the configured pairs are: %s", list);
	else if (c != NULL)
		LOG1("hint: '%s' defines no pair", c->path);
	LOG1("hint: a location needs a '/' or a ':' (write ./NAME for a "
	    "directory here)");
}

/* Loads the config named by the options; NULL with *status on failure. */
static struct config *
load(const struct pairs_opts *o, int must_exist, int *status)
{
	struct config	*c = NULL;
	char		*path = NULL, *why = NULL;
	int		 r;

	*status = 0;
	if (o->config_path != NULL)
		path = strdup(o->config_path);
	else
		path = config_default_path();
	if (path == NULL) {
		ERRX("cannot find the config file: no HOME");
		*status = EXIT_USAGE;
		return NULL;
	}
	r = config_load(path, &c, &why);
	if (r == MSYNC_ERR_NOTFOUND) {
		if (must_exist || o->config_path != NULL) {
			ERRX("no config file '%s' (see msync(5))", path);
			*status = EXIT_USAGE;
		}
	} else if (r != 0) {
		ERRX("%s", why != NULL ? why : msync_strerror(r));
		*status = r == MSYNC_ERR_NOMEM ? EXIT_ERROR : EXIT_USAGE;
	}
	free(why);
	free(path);
	return c;
}

int
pairs_wanted(const struct pairs_opts *o, int argc, char **argv,
    struct config **cfg)
{
	struct config	*c;
	int		 st, found = 0, locs = 0;

	*cfg = NULL;
	for (int i = 0; i < argc; i++)
		if (looks_like_location(argv[i]))
			locs++;
	if (o->all || o->list) {
		if (argc != 0) {
			ERRX("--all and --pairs take no names or locations");
			return -EXIT_USAGE;
		}
		if ((c = load(o, 1, &st)) == NULL)
			return -st;
		*cfg = c;
		return 1;
	}
	/* A watch of two locations: an unnamed pair. */
	if (o->watch && argc == 2 && locs > 0)
		return 1;
	if (argc == 0 || locs == argc) {
		if (o->watch) {
			ERRX("--watch needs pair names or two locations");
			return -EXIT_USAGE;
		}
		return 0;
	}
	if ((c = load(o, 0, &st)) == NULL && st != 0)
		return -st;
	/* No config file: the words are locations, as they always were. */
	if (c == NULL) {
		if (argc == 1)
			LOG1("hint: '%s' is no location (no '/' or ':') and "
			    "there is no config file to name a pair",
			    log_esc(argv[0], 80));
		return 0;
	}
	for (int i = 0; i < argc; i++)
		if (!looks_like_location(argv[i]) && config_has(c, argv[i]))
			found++;
	if (found == argc) {
		*cfg = c;
		return 1;
	}
	if (found == 0 && argc == 2 && !o->watch) {
		config_free(c);
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		if (looks_like_location(argv[i]) || config_has(c, argv[i]))
			continue;
		ERRX("no pair named '%s'%s%s", log_esc(argv[i], 80),
		    c != NULL ? " in " : " (no config file)",
		    c != NULL ? c->path : "");
		break;
	}
	if (locs > 0 && found > 0)
		ERRX("pair names and locations cannot be mixed");
	hint_names(c);
	config_free(c);
	return -EXIT_USAGE;
}

/* "~/x" is $HOME/x, as the shell would have made it. */
static char *
expand_home(const char *s)
{
	const char	*h = getenv("HOME");
	char		*r = NULL;

	if (strncmp(s, "~/", 2) == 0 && h != NULL && h[0] == '/') {
		if (asprintf(&r, "%s/%s", h, s + 2) < 0)
			return NULL;
		return r;
	}
	return strdup(s);
}

/* An argv under construction; every string owned. */
struct args {
	char	**v;
	size_t	 n;
	int	 nomem;
};

static void
args_add(struct args *a, const char *s)
{
	char	**v;

	if (a->nomem)
		return;
	if (s == NULL || (v = reallocarray(a->v, a->n + 2, sizeof(*v))) ==
	    NULL) {
		a->nomem = 1;
		return;
	}
	a->v = v;
	if ((a->v[a->n] = strdup(s)) == NULL) {
		a->nomem = 1;
		return;
	}
	a->v[++a->n] = NULL;
}

static void
args_add2(struct args *a, const char *opt, const char *val)
{
	char	*s = NULL;

	if (asprintf(&s, "%s=%s", opt, val) < 0) {
		a->nomem = 1;
		return;
	}
	args_add(a, s);
	free(s);
}

static void
args_free(struct args *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

/*
 * The child's command line: the pair's keys as options, then the
 * command line's own options (later ones win in getopt, and -b/-1/-m/-x
 * given there replace the file's), then the two locations.
 */
static int
build_argv(const struct pairs_opts *o, const struct pair *p, struct args *a)
{
	char	 num[32], *loc;

	args_add(a, o->self);
	if (!o->cl_mode && p->mode == MODE_BACKUP)
		args_add(a, "--backup");
	if (!o->cl_mode && p->mode == MODE_ONEWAY)
		args_add(a, "--one-way");
	for (size_t i = 0; !o->cl_mailbox && i < p->nmailbox; i++)
		args_add2(a, "--mailbox", p->mailbox[i]);
	for (size_t i = 0; !o->cl_exclude && i < p->nexclude; i++)
		args_add2(a, "--exclude", p->exclude[i]);
	if (p->rsh != NULL)
		args_add2(a, "--rsh", p->rsh);
	if (p->ssh != NULL)
		args_add2(a, "--ssh", p->ssh);
	if (p->remote_msync != NULL)
		args_add2(a, "--remote-msync", p->remote_msync);
	if (p->state_dir != NULL) {
		loc = expand_home(p->state_dir);
		args_add2(a, "--state-dir", loc);
		free(loc);
	}
	if (p->bwlimit != NULL)
		args_add2(a, "--bwlimit", p->bwlimit);
	if (p->compress == 1)
		args_add(a, "--compress");
	if (p->compress == 0)
		args_add(a, "--no-compress");
	if (p->force_deletes == 1)
		args_add(a, "--force-deletes");
	if (p->full == 1)
		args_add(a, "--full");
	if (p->lock_wait >= 0) {
		snprintf(num, sizeof(num), "%d", p->lock_wait);
		args_add2(a, "--lock-wait", num);
	}
	/* The IMAP store (another engineer's) takes the password command. */
	if (p->passcmd != NULL && (strncmp(p->a, "imap", 4) == 0 ||
	    strncmp(p->b, "imap", 4) == 0))
		args_add2(a, "--passcmd", p->passcmd);
	if (o->json)
		args_add(a, "--json");
	for (size_t i = 0; i < o->nfwd; i++)
		args_add(a, o->fwd[i]);
	args_add(a, "--");
	loc = expand_home(p->a);
	args_add(a, loc);
	free(loc);
	loc = expand_home(p->b);
	args_add(a, loc);
	free(loc);
	return a->nomem ? -1 : 0;
}

char *
pairs_state_file(const struct pair *p, const char *suffix, int mkdirs)
{
	const char	*x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
	char		*dir = NULL, *path = NULL;

	if (p->state_dir != NULL)
		dir = expand_home(p->state_dir);
	else if (x != NULL && x[0] == '/') {
		if (asprintf(&dir, "%s/msync", x) < 0)
			dir = NULL;
	} else if (h != NULL && h[0] == '/') {
		if (asprintf(&dir, "%s/.local/state/msync", h) < 0)
			dir = NULL;
	}
	if (dir == NULL)
		return NULL;
	if (asprintf(&path, "%s/pairs/%s.%s", dir, p->name, suffix) < 0)
		path = NULL;
	if (mkdirs && path != NULL) {
		char	*sub = NULL;

		if (asprintf(&sub, "%s/pairs", dir) >= 0) {
			/* Parents too: the state dir may not exist yet. */
			for (char *s = sub + 1; *s != '\0'; s++) {
				if (*s != '/')
					continue;
				*s = '\0';
				(void)mkdir(sub, 0700);
				*s = '/';
			}
			(void)mkdir(sub, 0700);
			free(sub);
		}
	}
	free(dir);
	return path;
}

/* Records a finished run: "END_EPOCH STATUS DURATION_MS". */
static void
record_last(const struct job *j)
{
	char	*path, *tmp = NULL;
	FILE	*f;

	if ((path = pairs_state_file(j->pair, "last", 1)) == NULL)
		return;
	if (asprintf(&tmp, "%s.tmp", path) >= 0 &&
	    (f = fopen(tmp, "w")) != NULL) {
		fprintf(f, "%lld %d %lld\n", (long long)time(NULL),
		    j->status, msync_now_ms() - j->started_ms);
		if (fclose(f) == 0)
			(void)rename(tmp, path);
		else
			(void)unlink(tmp);
	}
	free(tmp);
	free(path);
}

int
job_start(const struct pairs_opts *o, const struct pair *p, struct job *j)
{
	struct args	 a;
	int		 po[2] = { -1, -1 }, pe[2] = { -1, -1 };
	pid_t		 pid;

	memset(j, 0, sizeof(*j));
	memset(&a, 0, sizeof(a));
	j->pair = p;
	j->out = j->err = -1;
	if (build_argv(o, p, &a) != 0) {
		ERRX("%s: out of memory", p->name);
		goto fail;
	}
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
		ERR("%s: pipe", p->name);
		goto fail;
	}
	LOG2("%s: running %s %s", p->name, a.v[a.n - 2], a.v[a.n - 1]);
	j->started_ms = msync_now_ms();
	if ((pid = fork()) < 0) {
		ERR("%s: fork", p->name);
		goto fail;
	}
	if (pid == 0) {
		if (dup2(po[1], STDOUT_FILENO) < 0 ||
		    dup2(pe[1], STDERR_FILENO) < 0)
			_exit(EXIT_ERROR);
		signal(SIGPIPE, SIG_DFL);
		execv(a.v[0], a.v);
		dprintf(STDERR_FILENO, "msync: error: cannot run '%s': %s\n",
		    a.v[0], strerror(errno));
		_exit(EXIT_ERROR);
	}
	close(po[1]);
	close(pe[1]);
	j->pid = pid;
	j->out = po[0];
	j->err = pe[0];
	args_free(&a);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	args_free(&a);
	return -1;
}

int
job_pollfds(const struct job *j, struct pollfd *pfd)
{
	int	 n = 0;

	if (j->out >= 0) {
		pfd[n].fd = j->out;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	if (j->err >= 0) {
		pfd[n].fd = j->err;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	return n;
}

/* Prints one of the child's lines, prefixed with the pair's name. */
static void
relay_line(struct job *j, const char *line, size_t len, FILE *to)
{
	const char	*e;

	if (!j->mute || to != stderr)
		fprintf(to, "%s: %.*s\n", j->pair->name, (int)len, line);
	/* The first error, for a report the child could not write. */
	if (j->first_error == NULL && (e = memmem(line, len, "error: ", 7)) !=
	    NULL && (j->first_error = strndup(e + 7, len -
	    (size_t)(e + 7 - line))) == NULL)
		return;
}

/* Reads stderr; whole lines are relayed.  Returns 1 at EOF. */
static int
read_err(struct job *j)
{
	ssize_t	 n;
	char	*nl;

	n = read(j->err, j->ebuf + j->elen, sizeof(j->ebuf) - j->elen);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (n == 0) {
		if (j->elen > 0)
			relay_line(j, j->ebuf, j->elen, stderr);
		j->elen = 0;
		return 1;
	}
	j->elen += (size_t)n;
	while ((nl = memchr(j->ebuf, '\n', j->elen)) != NULL) {
		size_t	 len = (size_t)(nl - j->ebuf);

		relay_line(j, j->ebuf, len, stderr);
		memmove(j->ebuf, nl + 1, j->elen - len - 1);
		j->elen -= len + 1;
	}
	/* A line longer than the buffer goes out in pieces. */
	if (j->elen == sizeof(j->ebuf)) {
		relay_line(j, j->ebuf, j->elen, stderr);
		j->elen = 0;
	}
	return 0;
}

/* Reads stdout into obuf (bounded).  Returns 1 at EOF. */
static int
read_out(struct job *j)
{
	char	 tmp[4096];
	ssize_t	 n;
	char	*v;

	n = read(j->out, tmp, sizeof(tmp));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : 1;
	if (n == 0)
		return 1;
	if (j->olen + (size_t)n > JOB_OUT_MAX)
		return 0;	/* dropped: a report cannot be this big */
	if ((v = realloc(j->obuf, j->olen + (size_t)n + 1)) == NULL)
		return 0;
	j->obuf = v;
	memcpy(j->obuf + j->olen, tmp, (size_t)n);
	j->olen += (size_t)n;
	j->obuf[j->olen] = '\0';
	return 0;
}

/* Writes what the child printed on stdout: its report, or its lines. */
static void
job_output(const struct pairs_opts *o, struct job *j)
{
	if (o->json) {
		report_pair(stdout, j->pair, j->obuf, j->olen,
		    j->status, msync_now_ms() - j->started_ms,
		    j->first_error);
		fflush(stdout);
		return;
	}
	for (size_t i = 0; i < j->olen;) {
		char	*nl = memchr(j->obuf + i, '\n', j->olen - i);
		size_t	 len = nl != NULL ? (size_t)(nl - j->obuf) - i :
		    j->olen - i;

		relay_line(j, j->obuf + i, len, stdout);
		i += len + 1;
	}
	fflush(stdout);
}

int
job_step(const struct pairs_opts *o, struct job *j)
{
	struct pollfd	 pfd[2];
	int		 n, ws;
	pid_t		 w;

	n = job_pollfds(j, pfd);
	if (n > 0 && poll(pfd, (nfds_t)n, 0) > 0) {
		for (int i = 0; i < n; i++) {
			if (pfd[i].revents == 0)
				continue;
			if (pfd[i].fd == j->err && read_err(j)) {
				close(j->err);
				j->err = -1;
			} else if (pfd[i].fd == j->out && read_out(j)) {
				close(j->out);
				j->out = -1;
			}
		}
	}
	if (!j->reaped) {
		w = waitpid(j->pid, &ws, j->out < 0 && j->err < 0 ? 0 :
		    WNOHANG);
		if (w == j->pid) {
			j->reaped = 1;
			if (WIFEXITED(ws))
				j->status = WEXITSTATUS(ws);
			else {
				ERRX("%s: msync was killed by signal %d",
				    j->pair->name, WTERMSIG(ws));
				j->status = EXIT_ERROR;
			}
		} else if (w < 0 && errno != EINTR) {
			j->reaped = 1;
			j->status = EXIT_ERROR;
		}
	}
	/*
	 * The child is gone but a grandchild (ssh) may hold the pipes:
	 * they close when it exits, as the child reaped it.
	 */
	if (!j->reaped || j->out >= 0 || j->err >= 0)
		return 0;
	j->pid = 0;
	job_output(o, j);
	record_last(j);
	return 1;
}

void
job_clear(struct job *j)
{
	if (j->out >= 0)
		close(j->out);
	if (j->err >= 0)
		close(j->err);
	free(j->obuf);
	free(j->first_error);
	memset(j, 0, sizeof(*j));
	j->out = j->err = -1;
}

/* Folds a pair's status into the run's (see pairs_main). */
static void
fold_status(int *worst, int st)
{
	if (*worst != 0 && *worst != EXIT_CHANGED)
		return;
	if (st != 0)
		*worst = st;
}

/* Runs the pairs, at most o->jobs at once.  Returns the exit status. */
static int
run_all(const struct pairs_opts *o, const struct pair **list, size_t n)
{
	struct job	*jobs;
	struct pollfd	*pfd;
	int		*st, worst = 0, maxj = o->jobs > 0 ? o->jobs : 1;
	size_t		 next = 0, running = 0;

	jobs = calloc(n, sizeof(*jobs));
	st = calloc(n, sizeof(*st));
	pfd = calloc((size_t)maxj * 2 + 1, sizeof(*pfd));
	if (jobs == NULL || st == NULL || pfd == NULL) {
		ERR("calloc");
		free(jobs);
		free(st);
		free(pfd);
		return EXIT_ERROR;
	}
	while (next < n || running > 0) {
		int	 np = 0;

		while (next < n && running < (size_t)maxj) {
			if (job_start(o, list[next], &jobs[next]) != 0) {
				st[next] = EXIT_ERROR;
				jobs[next].pid = 0;
			} else
				running++;
			next++;
		}
		for (size_t i = 0; i < next; i++)
			if (jobs[i].pid != 0)
				np += job_pollfds(&jobs[i], pfd + np);
		/* Bounded: a child that exits without closing wakes us. */
		if (np > 0)
			(void)poll(pfd, (nfds_t)np, 200);
		for (size_t i = 0; i < next; i++) {
			if (jobs[i].pid == 0 || !job_step(o, &jobs[i]))
				continue;
			st[i] = jobs[i].status;
			job_clear(&jobs[i]);
			running--;
		}
	}
	/* In the order given, whatever order they finished in. */
	for (size_t i = 0; i < n; i++)
		fold_status(&worst, st[i]);
	free(jobs);
	free(st);
	free(pfd);
	return worst;
}

static const char *
mode_name(int mode)
{
	return mode == MODE_BACKUP ? "backup" : mode == MODE_ONEWAY ?
	    "one-way" : "two-way";
}

/* --pairs: one line per pair with its last result. */
static int
list_pairs(const struct pairs_opts *o, const struct config *c)
{
	for (size_t i = 0; i < c->npair; i++) {
		const struct pair *p = &c->pair[i];
		char		*path = pairs_state_file(p, "last", 0), when[32] = "never";
		long long	 end = 0, ms = 0;
		int		 status = -1;
		FILE		*f;

		if (path != NULL && (f = fopen(path, "r")) != NULL) {
			if (fscanf(f, "%lld %d %lld", &end, &status, &ms) !=
			    3)
				status = -1;
			fclose(f);
		}
		free(path);
		if (status >= 0) {
			time_t		 t = (time_t)end;
			struct tm	 tm;

			if (gmtime_r(&t, &tm) != NULL)
				strftime(when, sizeof(when),
				    "%Y-%m-%dT%H:%M:%SZ", &tm);
		}
		if (o->json)
			report_pair_line(stdout, p, status >= 0 ? when : NULL,
			    status, ms);
		else if (status >= 0)
			printf("%-16s %-8s %s %s  last: %s status %d\n",
			    p->name, mode_name(p->mode), p->a, p->b, when,
			    status);
		else
			printf("%-16s %-8s %s %s  last: never\n", p->name,
			    mode_name(p->mode), p->a, p->b);
	}
	for (size_t i = 0; !o->json && i < c->ngroup; i++) {
		printf("%-16s group   ", c->group[i].name);
		for (size_t k = 0; k < c->group[i].nmember; k++)
			printf(" %s", c->group[i].member[k]);
		printf("\n");
	}
	return 0;
}

int
pairs_main(const struct pairs_opts *o, struct config **cfg, int argc,
    char **argv)
{
	struct config	*c = *cfg;
	const struct pair **list = NULL;
	struct pair	 adhoc;
	size_t		 n = 0;
	char		*why = NULL;
	int		 r, status;

	memset(&adhoc, 0, sizeof(adhoc));
	if (o->list) {
		status = list_pairs(o, c);
		goto out;
	}
	if (c == NULL) {
		/* msync --watch A B: a pair with no name but its own. */
		adhoc.name = (char *)"watch";
		adhoc.a = argv[0];
		adhoc.b = argv[1];
		adhoc.mode = adhoc.compress = adhoc.force_deletes = -1;
		adhoc.full = adhoc.lock_wait = adhoc.every = -1;
		adhoc.debounce_ms = -1;
		if ((list = calloc(1, sizeof(*list))) == NULL) {
			status = EXIT_ERROR;
			goto out;
		}
		list[n++] = &adhoc;
	} else if (o->all) {
		for (size_t i = 0; i < c->npair; i++) {
			const struct pair **v = reallocarray(list, n + 1,
			    sizeof(*v));

			if (v == NULL) {
				status = EXIT_ERROR;
				goto out;
			}
			list = v;
			list[n++] = &c->pair[i];
		}
	} else {
		for (int i = 0; i < argc; i++) {
			if ((r = config_select(c, argv[i], &list, &n,
			    &why)) != 0) {
				ERRX("%s", why != NULL ? why :
				    msync_strerror(r));
				status = r == MSYNC_ERR_NOMEM ? EXIT_ERROR :
				    EXIT_USAGE;
				goto out;
			}
		}
	}
	if (n == 0) {
		LOG1("no pairs to run");
		status = 0;
		goto out;
	}
	if (o->watch)
		status = watch_main(o, cfg, list, n);
	else
		status = run_all(o, list, n);
out:
	free(why);
	free(list);
	return status;
}
