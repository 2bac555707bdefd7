/*
 * report.h — JSON reports (--json): one object per pair sync on stdout,
 * schema "msync-report/1" (docs/REPORT.md, docs/report.schema.json),
 * while the human messages stay on stderr.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef REPORT_H
#define REPORT_H

#include <stdint.h>
#include <stdio.h>

#define REPORT_SCHEMA	"msync-report/1"

struct brain_result;
struct pair;

/* What one run did, for report_write.  Pointers are borrowed. */
struct report_info {
	const char	*a;		/* first location, as given */
	const char	*b;
	const char	*mode;		/* "two-way", "backup", "one-way" */
	int		 dry_run;
	int		 status;	/* exit status */
	int64_t		 started;	/* epoch seconds */
	int64_t		 duration_ms;
	const struct brain_result *result; /* NULL: the sync never ran */
};

/*
 * Starts collecting this process's error and warning messages for the
 * report; they are still printed on stderr as before.
 */
void	 report_collect(void);

/* Writes one report line (an object and a newline) to f. */
void	 report_write(FILE *f, const struct report_info *);

/*
 * Writes a pair's report: the child's own report (buf, len: what it
 * printed on stdout) with "pair" added, or when it printed none (it
 * could not start, or died) a report made from its exit status and its
 * first error line.
 */
void	 report_pair(FILE *f, const struct pair *, const char *buf,
	    size_t len, int status, int64_t duration_ms, const char *error);

/* --pairs --json: one object per configured pair. */
void	 report_pair_line(FILE *f, const struct pair *, const char *last,
	    int status, int64_t last_ms);

/* The words for an exit status ("in sync", "error", ...). */
const char *report_status_text(int status);

#endif /* REPORT_H */
