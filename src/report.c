/*
 * report.c — JSON reports for --json (schema: docs/REPORT.md).  Every
 * string is escaped here: locations and messages may hold any byte, and
 * bytes that are not UTF-8 become U+FFFD, so a report always parses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brain.h"
#include "config.h"
#include "log.h"
#include "msync.h"
#include "report.h"

#define REPORT_MSGS_MAX	50	/* errors (and warnings) kept per run */

/* Messages collected from the log, when report_collect was called. */
static char	*errors[REPORT_MSGS_MAX];
static size_t	 nerrors;
static char	*warnings[REPORT_MSGS_MAX];
static size_t	 nwarnings;

/* Length of the UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t	 len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong three- and four-byte forms, surrogates, > U+10FFFF. */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return len;
}

/* Writes s as a JSON string (NULL as null). */
static void
jstr(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t		 n, len;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	len = strlen(s);
	fputc('"', f);
	for (size_t i = 0; i < len; i += n) {
		n = 1;
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] == '\n')
			fputs("\\n", f);
		else if (p[i] == '\t')
			fputs("\\t", f);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fprintf(f, "\\u%04x", p[i]);
		else if ((n = utf8_len(p + i, len - i)) == 0) {
			fputs("\\ufffd", f);
			n = 1;
		} else
			fwrite(p + i, 1, n, f);
	}
	fputc('"', f);
}

const char *
report_status_text(int status)
{
	switch (status) {
	case EXIT_INSYNC:	return "in sync";
	case EXIT_ERROR:	return "error";
	case EXIT_CHANGED:	return "changed during the run";
	case EXIT_USAGE:	return "usage";
	case EXIT_DATAERR:	return "bad data";
	case EXIT_UNREACH:	return "peer unreachable";
	case EXIT_TEMPFAIL:	return "temporary failure";
	case EXIT_PROTOCOL:	return "protocol error";
	case EXIT_NOPERM:	return "login refused";
	default:		return "unknown";
	}
}

/*
 * The log sink while collecting: print as log.c would, keep errors and
 * warnings (levels 0 and 1; the text starts with its tag).
 */
static void
collect_sink(int level, const char *text, void *arg)
{
	char	*s;

	fprintf(stderr, "msync: %s\n", text);
	if (level > 1)
		return;
	if (strncmp(text, "error: ", 7) == 0 && nerrors < REPORT_MSGS_MAX &&
	    (s = strdup(text + 7)) != NULL)
		errors[nerrors++] = s;
	else if (strncmp(text, "warning: ", 9) == 0 &&
	    nwarnings < REPORT_MSGS_MAX && (s = strdup(text + 9)) != NULL)
		warnings[nwarnings++] = s;
}

void
report_collect(void)
{
	log_set_sink(collect_sink, NULL);
}

static void
jtime(FILE *f, int64_t t)
{
	time_t		 tt = (time_t)t;
	struct tm	 tm;
	char		 buf[32];

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		fputs("null", f);
		return;
	}
	jstr(f, buf);
}

static void
jside(FILE *f, const struct brain_result *r, int s)
{
	fprintf(f, "{\"copied\":%llu,\"copied_bytes\":%llu,\"local\":%llu,"
	    "\"flags\":%llu,\"expunged\":%llu,\"mailboxes_created\":%llu,"
	    "\"mailboxes_renamed\":%llu,\"mailboxes_deleted\":%llu}",
	    (unsigned long long)r->st.copied[s],
	    (unsigned long long)r->st.copied_bytes[s],
	    (unsigned long long)r->st.local[s], (unsigned long long)r->st.flags[s],
	    (unsigned long long)r->st.expunged[s],
	    (unsigned long long)r->st.mb_created[s],
	    (unsigned long long)r->st.mb_renamed[s],
	    (unsigned long long)r->st.mb_deleted[s]);
}

static void
jlist(FILE *f, char **v, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			fputc(',', f);
		jstr(f, v[i]);
	}
	fputc(']', f);
}

void
report_write(FILE *f, const struct report_info *ri)
{
	const struct brain_result *r = ri->result;

	fprintf(f, "{\"schema\":\"%s\",\"a\":", REPORT_SCHEMA);
	jstr(f, ri->a);
	fputs(",\"b\":", f);
	jstr(f, ri->b);
	fputs(",\"mode\":", f);
	jstr(f, ri->mode);
	fprintf(f, ",\"dry_run\":%s,\"status\":%d,\"status_text\":",
	    ri->dry_run ? "true" : "false", ri->status);
	jstr(f, report_status_text(ri->status));
	fputs(",\"started\":", f);
	jtime(f, ri->started);
	fprintf(f, ",\"duration_ms\":%lld,\"changes\":",
	    (long long)ri->duration_ms);
	if (r != NULL && r->ran) {
		fputs("{\"a\":", f);
		jside(f, r, SIDE_A);
		fputs(",\"b\":", f);
		jside(f, r, SIDE_B);
		fprintf(f, "},\"wire\":{\"sent\":%llu,\"sent_raw\":%llu,"
		    "\"received\":%llu,\"received_raw\":%llu,"
		    "\"compressed\":%s}", (unsigned long long)r->wire_out,
		    (unsigned long long)r->raw_out,
		    (unsigned long long)r->wire_in,
		    (unsigned long long)r->raw_in,
		    r->compressed ? "true" : "false");
	} else
		fputs("null,\"wire\":null", f);
	fputs(",\"errors\":", f);
	jlist(f, errors, nerrors);
	fputs(",\"warnings\":", f);
	jlist(f, warnings, nwarnings);
	fputs("}\n", f);
	fflush(f);
	for (size_t i = 0; i < nerrors; i++)
		free(errors[i]);
	for (size_t i = 0; i < nwarnings; i++)
		free(warnings[i]);
	nerrors = nwarnings = 0;
}

static const char *
mode_text(int mode)
{
	return mode == MODE_BACKUP ? "backup" : mode == MODE_ONEWAY ?
	    "one-way" : "two-way";
}

void
report_pair(FILE *f, const struct pair *p, const char *buf, size_t len,
    int status, int64_t duration_ms, const char *error)
{
	struct report_info ri;
	char		*e = NULL;

	/* The child's report is one object on one line: add the name. */
	if (buf != NULL && len > 2 && buf[0] == '{' && buf[len - 1] == '\n' &&
	    memchr(buf, '\n', len) == buf + len - 1) {
		fputs("{\"pair\":", f);
		jstr(f, p->name);
		fprintf(f, ",%.*s", (int)(len - 1), buf + 1);
		return;
	}
	memset(&ri, 0, sizeof(ri));
	ri.a = p->a;
	ri.b = p->b;
	ri.mode = mode_text(p->mode);
	ri.status = status;
	ri.started = (int64_t)time(NULL) - duration_ms / 1000;
	ri.duration_ms = duration_ms;
	if (error == NULL && asprintf(&e, "msync exited with status %d "
	    "without a report", status) >= 0)
		error = e;
	if (error != NULL && (errors[0] = strdup(error)) != NULL)
		nerrors = 1;
	fputs("{\"pair\":", f);
	jstr(f, p->name);
	fputc(',', f);
	/* report_write's object, without its opening brace. */
	{
		char	*s = NULL;
		size_t	 sl = 0;
		FILE	*m = open_memstream(&s, &sl);

		if (m != NULL) {
			report_write(m, &ri);
			fclose(m);
			if (s != NULL && sl > 1)
				fputs(s + 1, f);
			free(s);
		}
	}
	free(e);
}

void
report_pair_line(FILE *f, const struct pair *p, const char *last,
    int status, int64_t last_ms)
{
	fputs("{\"schema\":\"msync-pairs/1\",\"pair\":", f);
	jstr(f, p->name);
	fputs(",\"mode\":", f);
	jstr(f, mode_text(p->mode));
	fputs(",\"a\":", f);
	jstr(f, p->a);
	fputs(",\"b\":", f);
	jstr(f, p->b);
	if (p->every > 0)
		fprintf(f, ",\"every_s\":%d", p->every);
	else
		fputs(",\"every_s\":null", f);
	fputs(",\"last\":", f);
	if (last != NULL) {
		fputs("{\"finished\":", f);
		jstr(f, last);
		fprintf(f, ",\"status\":%d,\"status_text\":", status);
		jstr(f, report_status_text(status));
		fprintf(f, ",\"duration_ms\":%lld}", (long long)last_ms);
	} else
		fputs("null", f);
	fputs("}\n", f);
}
