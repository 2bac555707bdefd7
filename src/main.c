/*
 * main.c — the command line: parse options and locations, pick the mode
 * (sync, --list, --server), start the transport, map results to exit
 * statuses.  Only this file and remote/server.c know which side is the
 * server.
 */
#include <sys/resource.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "brain.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "mboxfmt.h"
#include "msync.h"
#include "pairs.h"
#include "proto.h"
#include "report.h"
#include "s2s.h"
#include "server.h"
#include "state.h"
#include "store.h"
#include "transport.h"

enum {
	OPT_STATS = 256, OPT_PROGRESS, OPT_FORCE_DELETES, OPT_STATE_DIR,
	OPT_LIST, OPT_SERVER, OPT_RESTRICT, OPT_READ_ONLY, OPT_REMOTE_MSYNC,
	OPT_SSH, OPT_ACCEPT_NEW, OPT_NO_COMPRESS, OPT_BWLIMIT, OPT_LOCK_WAIT,
	OPT_ALL, OPT_PAIRS, OPT_JSON, OPT_WATCH, OPT_PASSCMD,
	OPT_DAEMON, OPT_TIMEOUT
};

static const struct option longopts[] = {
	{ "backup",		no_argument,		NULL, 'b' },
	{ "one-way",		no_argument,		NULL, '1' },
	{ "dry-run",		no_argument,		NULL, 'n' },
	{ "full",		no_argument,		NULL, 'f' },
	{ "mailbox",		required_argument,	NULL, 'm' },
	{ "exclude",		required_argument,	NULL, 'x' },
	{ "verbose",		no_argument,		NULL, 'v' },
	{ "quiet",		no_argument,		NULL, 'q' },
	{ "stats",		no_argument,		NULL, OPT_STATS },
	{ "progress",		no_argument,		NULL, OPT_PROGRESS },
	{ "force-deletes",	no_argument,		NULL, OPT_FORCE_DELETES },
	{ "state-dir",		required_argument,	NULL, OPT_STATE_DIR },
	{ "list",		no_argument,		NULL, OPT_LIST },
	{ "server",		no_argument,		NULL, OPT_SERVER },
	{ "daemon",		no_argument,		NULL, OPT_DAEMON },
	{ "restrict",		required_argument,	NULL, OPT_RESTRICT },
	{ "read-only",		no_argument,		NULL, OPT_READ_ONLY },
	{ "rsh",		required_argument,	NULL, 'e' },
	{ "remote-msync",	required_argument,	NULL, OPT_REMOTE_MSYNC },
	{ "ssh",		required_argument,	NULL, OPT_SSH },
	{ "accept-new-host-key", no_argument,		NULL, OPT_ACCEPT_NEW },
	{ "compress",		no_argument,		NULL, 'z' },
	{ "no-compress",	no_argument,		NULL, OPT_NO_COMPRESS },
	{ "bwlimit",		required_argument,	NULL, OPT_BWLIMIT },
	{ "timeout",		required_argument,	NULL, OPT_TIMEOUT },
	{ "lock-wait",		required_argument,	NULL, OPT_LOCK_WAIT },
	{ "config",		required_argument,	NULL, 'F' },
	{ "all",		no_argument,		NULL, OPT_ALL },
	{ "pairs",		no_argument,		NULL, OPT_PAIRS },
	{ "jobs",		required_argument,	NULL, 'j' },
	{ "json",		no_argument,		NULL, OPT_JSON },
	{ "watch",		no_argument,		NULL, OPT_WATCH },
	{ "passcmd",		required_argument,	NULL, OPT_PASSCMD },
	{ "help",		no_argument,		NULL, 'h' },
	{ "version",		no_argument,		NULL, 'V' },
	{ NULL,			0,			NULL, 0 }
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: msync [options] A B                  two-way sync\n"
"       msync --backup [options] SRC DST     make DST identical to SRC\n"
"       msync --one-way [options] SRC DST    merge SRC's changes into DST\n"
"       msync --list [-v] LOCATION           list mailboxes (and messages)\n"
"       msync [options] PAIR...              run pairs from the config file\n"
"       msync --all | --pairs | --watch PAIR...\n"
"       msync --daemon [--config FILE]    serve msyncd.conf's modules\n"
"\n"
"A location is PATH, maildir:PATH, maildir:PATH;layout=fs, mbox:PATH,\n"
"mbox:PATH;inbox=FILE, mbox:PATH;format=mboxo, [user@]host:PATH[;layout=mbox]\n"
"ssh://[user@]host[:port]/PATH, or an IMAP account:\n"
"imaps://[user@]host[:port][/ROOT][;fingerprint=sha256:..][;auth=xoauth2]\n"
"or imap://... (STARTTLS; ;tls=none for none),\n"
"or msyncs://[user@]host[:port]/MODULE[/PATH] (an msync daemon;\n"
"A and B may both be daemons: then msync only relays between them).\n"
"\n"
"  -b, --backup            one-way mirror: DST := SRC, SRC untouched\n"
"  -1, --one-way           SRC's changes into DST, nothing deleted\n"
"  -n, --dry-run           print what would be done, change nothing\n"
"  -f, --full              ignore change tokens, read every folder\n"
"  -m, --mailbox NAME      only this mailbox (repeatable, * and %% match)\n"
"  -x, --exclude PATTERN   leave these mailboxes out (repeatable)\n"
"  -v, --verbose           say more (repeat for debug output)\n"
"  -q, --quiet             only errors\n"
"      --stats             what moved each way, bytes on the wire\n"
"      --progress          counts, bytes, rate, time left (plain lines if no tty)\n"
"      --force-deletes     allow deleting most of a mailbox\n"
"      --state-dir DIR     where sync state lives ($XDG_STATE_HOME/msync)\n"
"      --lock-wait SECS    wait this long for a locked store (10)\n"
"      --passcmd CMD       IMAP: the password (or token) is CMD's output\n"
"  -e, --rsh CMD           remote shell command (default ssh, $MSYNC_RSH)\n"
"      --remote-msync PATH msync's path on the remote host\n"
"      --ssh=libssh        use the built-in ssh client\n"
"      --accept-new-host-key  libssh: trust and record an unknown host key\n"
"  -z, --compress          compress the stream (default over ssh)\n"
"      --no-compress       do not compress\n"
"      --bwlimit RATE      cap bytes per second each way (K, M suffixes)\n"
"      --timeout SECS      give up when the peer is silent that long\n"
"                          (default 300, 0 = never)\n"
"  -F, --config FILE       the config file ($XDG_CONFIG_HOME/msync/config)\n"
"      --all               run every configured pair\n"
"      --pairs             list the configured pairs and their last result\n"
"  -j, --jobs N            run N pairs at once (1)\n"
"      --json              one JSON report per pair on stdout\n"
"      --watch             stay running; sync again when a side changes\n"
"  -h, --help              this text\n"
"  -V, --version           the version\n"
"\n"
"Exit status: 0 in sync, 1 error, 2 a store changed during the run (run\n"
"again), 64 usage, 65 bad data, 69 peer unreachable, 75 temporary\n"
"failure (lock held, connection lost), 76 protocol error.\n");
}

/* Parses "100", "64K", "2M" (bytes per second).  -1 if invalid. */
static long long
parse_rate(const char *s)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || v < 0)
		return -1;
	switch (*end) {
	case '\0':
		return v;
	case 'k': case 'K':
		v *= 1024;
		break;
	case 'm': case 'M':
		v *= 1024 * 1024;
		break;
	case 'g': case 'G':
		v *= 1024LL * 1024 * 1024;
		break;
	default:
		return -1;
	}
	return end[1] == '\0' ? v : -1;
}

/* Parses --timeout SECS: 0..86400 (a day), else -1. */
static long long
parse_secs(const char *s)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 86400)
		return -1;
	return v;
}

/*
 * Parses -T test switches: crash=N (exit 100 after the Nth durable write
 * of this process) and crash-server=N (passed to a local or remote
 * server).  Returns 0 or -1.
 */
static int
parse_test_opt(const char *s, int *crash, char **server_arg)
{
	if (strncmp(s, "crash=", 6) == 0) {
		*crash = atoi(s + 6);
		return 0;
	}
	if (strncmp(s, "crash-server=", 13) == 0) {
		free(*server_arg);
		if (asprintf(server_arg, "-Tcrash=%d", atoi(s + 13)) < 0)
			*server_arg = NULL;
		return 0;
	}
	return -1;
}

/*
 * Keeps an option for the children of a pair run, spelled out long, so
 * that each child sees the command line's options after the file's.
 */
static int
forward_opt(struct pairs_opts *po, int c, const char *arg)
{
	const struct option *lo;
	char		**v, *s = NULL;
	int		 r = -1;

	for (lo = longopts; lo->name != NULL && lo->val != c; lo++)
		;
	if (c == 'T')
		r = asprintf(&s, "-T%s", arg);
	else if (lo->name != NULL && lo->has_arg)
		r = asprintf(&s, "--%s=%s", lo->name, arg);
	else if (lo->name != NULL)
		r = asprintf(&s, "--%s", lo->name);
	if (r < 0 || (v = reallocarray(po->fwd, po->nfwd + 1,
	    sizeof(*v))) == NULL) {
		free(s);
		return -1;
	}
	po->fwd = v;
	po->fwd[po->nfwd++] = s;
	return 0;
}

/* The absolute path of this binary, for re-executing it. */
static char *
self_path(const char *argv0)
{
	char	 buf[PATH_MAX];
	ssize_t	 n;

	n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = '\0';
		return strdup(buf);
	}
	return realpath(argv0, NULL);
}

/*
 * Raises the soft limit on open files to the hard one (issue 16): a
 * run needs a few dozen descriptors at most (man/msync.1, "Open
 * files"), and a shell's low soft limit should not make it fail.  When
 * the hard limit is low too, the store reports the mailboxes it cannot
 * open as errors; nothing is taken for empty.
 */
static void
raise_nofile(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
}

int
main(int argc, char **argv)
{
	struct brain_opts	 bo;
	struct server_opts	 so;
	struct transport_opts	 to;
	struct transport	 t;
	struct loc		 loc[2];
	const char		*state_dir = NULL;
	char			*state_file = NULL, *why = NULL, *self = NULL;
	char			*server_arg = NULL;
	char			**include = NULL, **exclude = NULL;
	size_t			 ninclude = 0, nexclude = 0;
	int			 c, server = 0, list = 0, verbose = 1;
	int			 backup = 0, oneway = 0, status, child = 0, r;
	int			 a_is, started = 0, a_open_failed = 0;
	int			 daemon_mode = 0;
	long long		 rate;
	struct pairs_opts	 po;
	struct config		*cfg = NULL;
	struct brain_result	 res;
	struct report_info	 ri;
	long long		 t0 = msync_now_ms();

	memset(&bo, 0, sizeof(bo));
	memset(&so, 0, sizeof(so));
	memset(&to, 0, sizeof(to));
	memset(loc, 0, sizeof(loc));
	memset(&t, 0, sizeof(t));
	memset(&po, 0, sizeof(po));
	memset(&res, 0, sizeof(res));
	memset(&ri, 0, sizeof(ri));
	ri.started = (int64_t)time(NULL);
	po.jobs = 1;
	bo.compress = -1;
	bo.lock_wait = so.lock_wait = 10;
	bo.timeout = so.timeout = MSYNC_TIMEOUT_DEFAULT;
	if (getenv("MSYNC_TEST_CRASH") != NULL)
		bo.crash_after = so.crash_after =
		    atoi(getenv("MSYNC_TEST_CRASH"));

	while ((c = getopt_long(argc, argv, "b1nfm:x:vqe:zhVT:F:j:", longopts,
	    NULL)) != -1) {
		/* Pair runs hand the other options on to each child. */
		if (c != 'F' && c != 'j' && c != OPT_ALL && c != OPT_PAIRS &&
		    c != OPT_JSON && c != OPT_WATCH && c != '?' &&
		    forward_opt(&po, c, optarg) != 0)
			err(1, NULL);
		switch (c) {
		case 'F':
			po.config_path = optarg;
			break;
		case 'j':
			po.jobs = atoi(optarg);
			if (po.jobs < 1 || po.jobs > 64) {
				ERRX("-j takes 1 to 64");
				status = EXIT_USAGE;
				goto out;
			}
			break;
		case OPT_ALL:
			po.all = 1;
			break;
		case OPT_PAIRS:
			po.list = 1;
			break;
		case OPT_JSON:
			po.json = 1;
			break;
		case OPT_WATCH:
			po.watch = 1;
			break;
		case 'b':
			backup = 1;
			break;
		case '1':
			oneway = 1;
			break;
		case 'n':
			bo.dry_run = 1;
			break;
		case 'f':
			bo.full = 1;
			break;
		case 'm':
		case 'x':
			if (c == 'm') {
				include = reallocarray(include, ninclude + 1,
				    sizeof(*include));
				if (include == NULL)
					err(1, NULL);
				include[ninclude++] = optarg;
			} else {
				exclude = reallocarray(exclude, nexclude + 1,
				    sizeof(*exclude));
				if (exclude == NULL)
					err(1, NULL);
				exclude[nexclude++] = optarg;
			}
			break;
		case 'v':
			verbose++;
			break;
		case 'q':
			verbose = 0;
			break;
		case OPT_STATS:
			bo.stats = 1;
			break;
		case OPT_PROGRESS:
			bo.progress = 1;
			break;
		case OPT_FORCE_DELETES:
			bo.force_deletes = 1;
			break;
		case OPT_STATE_DIR:
			state_dir = optarg;
			break;
		case OPT_LIST:
			list = 1;
			break;
		case OPT_SERVER:
			server = 1;
			break;
		case OPT_DAEMON:
			daemon_mode = 1;
			break;
		case OPT_RESTRICT:
			so.restrict_dir = optarg;
			break;
		case OPT_READ_ONLY:
			so.read_only = 1;
			break;
		case 'e':
			to.rsh = optarg;
			break;
		case OPT_REMOTE_MSYNC:
			to.remote_msync = optarg;
			break;
		case OPT_SSH:
			if (strcmp(optarg, "libssh") == 0)
				to.use_libssh = 1;
			else if (strcmp(optarg, "openssh") == 0)
				to.use_libssh = 0;
			else {
				ERRX("--ssh takes openssh or libssh");
				status = EXIT_USAGE;
				goto out;
			}
			break;
		case OPT_ACCEPT_NEW:
			to.accept_new_host_key = 1;
			break;
		case 'z':
			bo.compress = 1;
			break;
		case OPT_NO_COMPRESS:
			bo.compress = 0;
			break;
		case OPT_BWLIMIT:
			if ((rate = parse_rate(optarg)) < 0) {
				ERRX("invalid --bwlimit '%s'",
				    log_esc(optarg, 64));
				status = EXIT_USAGE;
				goto out;
			}
			bo.bwlimit = so.bwlimit = (uint64_t)rate;
			break;
		case OPT_LOCK_WAIT:
			bo.lock_wait = so.lock_wait = atoi(optarg);
			break;
		case OPT_TIMEOUT:
			if ((rate = parse_secs(optarg)) < 0) {
				ERRX("invalid --timeout '%s'",
				    log_esc(optarg, 64));
				status = EXIT_USAGE;
				goto out;	/* frees the forwarded options */
			}
			bo.timeout = so.timeout = (int)rate;
			break;
		case OPT_PASSCMD:
			/*
			 * The IMAP store reads it from the environment, so
			 * that it also reaches a forked local server brain.
			 */
			if (setenv("MSYNC_PASSCMD", optarg, 1) != 0)
				err(1, "setenv");
			break;
		case 'T':
			if (parse_test_opt(optarg, &bo.crash_after,
			    &server_arg) != 0) {
				ERRX("unknown test option '%s'",
				    log_esc(optarg, 64));
				status = EXIT_USAGE;
				goto out;
			}
			so.crash_after = bo.crash_after;
			break;
		case 'h':
			usage(stdout);
			status = 0;
			goto out;
		case 'V':
			printf("msync %s (protocol %d)\n", MSYNC_VERSION,
			    PROTO_VERSION_MAX);
			status = 0;
			goto out;
		default:
			usage(stderr);
			status = EXIT_USAGE;
			goto out;
		}
	}
	argc -= optind;
	argv += optind;
	log_verbosity = verbose;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	if (daemon_mode) {
		if (argc != 0 || server) {
			ERRX("--daemon takes no locations");
			status = EXIT_USAGE;
		} else	/* --config (-F) names msyncd.conf here. */
			status = daemon_main(po.config_path != NULL ?
			    po.config_path : "/etc/msync/msyncd.conf");
		bo.result = NULL;	/* the daemon writes no --json report */
		goto out;
	}
	if (server) {
		if (argc != 0) {
			ERRX("--server takes no locations");
			status = EXIT_USAGE;
			goto out;
		}
		/* Through the clean-up: it frees the forwarded options. */
		status = server_main(&so);
		bo.result = NULL;
		goto out;
	}
	po.verbose = verbose;
	po.cl_mode = backup || oneway;
	po.cl_mailbox = ninclude > 0;
	po.cl_exclude = nexclude > 0;
	if (!list && (r = pairs_wanted(&po, argc, argv, &cfg)) != 0) {
		if (r < 0)
			status = -r;
		else if ((self = self_path(argv[-optind])) == NULL) {
			ERR("cannot find this program's path");
			status = EXIT_ERROR;
		} else {
			po.self = self;
			status = pairs_main(&po, &cfg, argc, argv);
		}
		goto out;
	}
	if (po.json && !list) {
		report_collect();
		bo.result = &res;
	}
	if (backup + oneway > 1 || (list && argc != 1) ||
	    (!list && argc != 2)) {
		usage(stderr);
		bo.result = NULL;
		status = EXIT_USAGE;
		goto out;
	}
	for (int i = 0; i < argc; i++) {
		if ((r = loc_parse(argv[i], &loc[i])) != 0) {
			ERRX("invalid location '%s'", log_esc(argv[i], 200));
			status = EXIT_USAGE;
			goto out;
		}
	}
	if (list && loc[0].host == NULL) {
		status = brain_list_local(loc[0].path, loc[0].layout,
		    loc[0].inbox, loc[0].format, verbose > 1, bo.lock_wait);
		goto out;
	}
	if (list) {
		/* The listed store is side B; side A has no store. */
		loc[1] = loc[0];
		memset(&loc[0], 0, sizeof(loc[0]));
		a_is = 1;
	} else if (loc[0].daemon != NULL && loc[1].daemon != NULL) {
		/*
		 * Server to server: the first daemon runs side A, we only
		 * relay (remote/s2s.c).  No local store, no local state.
		 */
		struct s2s_run	 run;

		memset(&run, 0, sizeof(run));
		run.mode = backup ? MODE_BACKUP : oneway ? MODE_ONEWAY :
		    MODE_TWOWAY;
		run.dry_run = bo.dry_run;
		run.force_deletes = bo.force_deletes;
		run.full = bo.full;
		run.stats = bo.stats;
		run.verbose = verbose;
		run.compress = bo.compress != 0;
		run.timeout = bo.timeout;
		run.lock_wait = bo.lock_wait < 0 ? 0 : bo.lock_wait > 600 ?
		    600 : bo.lock_wait;
		run.bwlimit = bo.bwlimit;
		run.include = include;
		run.ninclude = ninclude;
		run.exclude = exclude;
		run.nexclude = nexclude;
		if (bo.progress)
			WARNX("--progress is not shown between two daemons");
		status = s2s_client(&to, loc, &run, bo.result);
		/* The report at out: gets daemon 1's counts. */
		ri.result = bo.result;
		goto out;
	} else if (loc[0].host != NULL && loc[1].host != NULL) {
		ERRX("both locations are remote; one must be on this machine, "
		    "or both msync daemons (msyncs://)");
		status = EXIT_USAGE;
		goto out;
	} else if (loc[0].host != NULL || (loc[1].inbox != NULL &&
	    loc[1].host == NULL)) {
		/*
		 * The local store is always side A (the initiator's); so is
		 * an mbox with ";inbox=", which does not travel to side B.
		 * (";format=" does: HELLO_MBOXO.)
		 */
		if (loc[0].inbox != NULL) {
			ERRX("only one location may have ;inbox=");
			status = EXIT_USAGE;
			goto out;
		}
		struct loc tmp = loc[0];

		loc[0] = loc[1];
		loc[1] = tmp;
		a_is = 1;
	} else if (loc[0].layout != LAYOUT_IMAP &&
	    loc[1].layout == LAYOUT_IMAP) {
		/*
		 * An IMAP store runs in this process, as side A: its
		 * password prompt and its errors are the user's own.
		 */
		struct loc tmp = loc[0];

		loc[0] = loc[1];
		loc[1] = tmp;
		a_is = 1;
	} else
		a_is = 0;

	bo.list = list;
	bo.list_verbose = verbose > 1;
	bo.mode = backup ? MODE_BACKUP : oneway ? MODE_ONEWAY : MODE_TWOWAY;
	/* The source is the first location given. */
	bo.src = a_is == 0 ? SIDE_A : SIDE_B;
	bo.include = include;
	bo.ninclude = ninclude;
	bo.exclude = exclude;
	bo.nexclude = nexclude;
	bo.path[SIDE_A] = loc[0].path;
	bo.path[SIDE_B] = loc[1].path;
	bo.layout[SIDE_A] = loc[0].layout;
	bo.layout[SIDE_B] = loc[1].layout;
	bo.inbox = loc[0].inbox;
	bo.mbox_format = loc[0].format;
	bo.mbox_format_b = loc[1].format;
	if (bo.compress < 0)
		bo.compress = loc[1].host != NULL;
	if (!list) {
		if ((r = state_path(state_dir, loc[0].text, loc[1].text,
		    &state_file)) != 0) {
			ERRC(r, "cannot find a place for the sync state");
			status = EXIT_ERROR;
			goto out;
		}
		bo.state_path = state_file;
	}

	if ((self = self_path(argv[-optind])) == NULL) {
		ERR("cannot find this program's path");
		status = EXIT_ERROR;
		goto out;
	}
	to.self = self;
	to.verbose = verbose > 2 ? verbose - 1 : 0;
	/*
	 * The server paces what it sends too: --bwlimit caps both ways.
	 * It also gives up on a quiet client after the same --timeout.
	 */
	if (bo.bwlimit > 0 || bo.timeout != MSYNC_TIMEOUT_DEFAULT) {
		char	*args = NULL, bw[64] = "", tmo[32] = "";

		if (bo.bwlimit > 0)
			snprintf(bw, sizeof(bw), " --bwlimit=%llu",
			    (unsigned long long)bo.bwlimit);
		if (bo.timeout != MSYNC_TIMEOUT_DEFAULT)
			snprintf(tmo, sizeof(tmo), " --timeout=%d",
			    bo.timeout);
		if (asprintf(&args, "%s%s%s", server_arg != NULL ?
		    server_arg : "", bw, tmo) < 0) {
			ERR("asprintf");
			status = EXIT_ERROR;
			goto out;
		}
		free(server_arg);
		server_arg = args;
	}
	to.server_args = server_arg;
	if ((r = transport_start(&to, &loc[1], &t, &why)) != 0) {
		ERRX("%s", why != NULL ? why : msync_strerror(r));
		status = r == MSYNC_ERR_USAGE ? EXIT_USAGE : EXIT_UNREACH;
		goto out;
	}
	started = 1;
	bo.a_open_failed = &a_open_failed;
	status = brain_client(&bo, t.rfd, t.wfd);
	free(why);
	why = NULL;
	r = transport_finish(&t, 10000, &child, &why);
	started = 0;
	/*
	 * The peer never spoke: what went wrong is the transport's to say
	 * (ssh could not connect, msync missing on the remote host).  A
	 * connection lost later was already reported by the brain, and the
	 * remote's own last words were relayed as they came.
	 */
	if (status == EXIT_UNREACH && !a_open_failed)
		ERRX("%s", why != NULL ? why :
		    "the peer closed the connection before its handshake");
	/* A daemon that refused the login: a person must act, not a retry. */
	if (status == EXIT_UNREACH && !a_open_failed && r == MSYNC_ERR_AUTH)
		status = EXIT_NOPERM;
	if (bo.result != NULL) {
		ri.a = argv[0];
		ri.b = argv[1];
		ri.mode = backup ? "backup" : oneway ? "one-way" : "two-way";
		ri.dry_run = bo.dry_run;
		ri.status = status;
		ri.duration_ms = msync_now_ms() - t0;
		ri.result = &res;
		report_write(stdout, &ri);
		bo.result = NULL;
	}
out:
	if (bo.result != NULL) {
		/* A run that failed before its sync still reports. */
		ri.a = argv[0];
		ri.b = argc > 1 ? argv[1] : NULL;
		ri.mode = backup ? "backup" : oneway ? "one-way" : "two-way";
		ri.dry_run = bo.dry_run;
		ri.status = status;
		ri.duration_ms = msync_now_ms() - t0;
		report_write(stdout, &ri);
	}
	if (started)
		(void)transport_finish(&t, 10000, &child, NULL);
	free(why);
	free(self);
	free(state_file);
	free(server_arg);
	free(include);
	free(exclude);
	for (size_t i = 0; i < po.nfwd; i++)
		free(po.fwd[i]);
	free(po.fwd);
	config_free(cfg);
	loc_free(&loc[0]);
	loc_free(&loc[1]);
	return status;
}
