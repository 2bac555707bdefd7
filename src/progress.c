/*
 * progress.c — the --progress line; see progress.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "msync.h"
#include "progress.h"

/* Bytes in human units ("512 B", "1.5 KiB", "3.2 MiB", ...). */
static void
human(uint64_t v, char *out, size_t n)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB" };
	double		 d = (double)v;
	int		 u = -1;

	if (v < 1024) {
		snprintf(out, n, "%" PRIu64 " B", v);
		return;
	}
	while (d >= 1024 && u < 3) {
		d /= 1024;
		u++;
	}
	snprintf(out, n, "%.1f %s", d, unit[u]);
}

/*
 * Seconds left, or -1 when there is nothing to go on yet.  *rough: the
 * estimate comes from message counts (some sizes are not known).
 */
static long long
eta_s(const struct progress *p, long long elapsed, int *rough)
{
	*rough = p->unknown > 0;
	if (elapsed <= 0)
		return -1;
	if (!*rough) {
		if (p->bytes == 0)
			return p->bytes_total == 0 && p->msgs > 0 ? 0 : -1;
		if (p->bytes >= p->bytes_total)
			return 0;
		return (long long)((double)(p->bytes_total - p->bytes) *
		    (double)elapsed / (double)p->bytes / 1000.0 + 0.5);
	}
	if (p->msgs == 0)
		return -1;
	if (p->msgs >= p->msgs_total)
		return 0;
	return (long long)((double)(p->msgs_total - p->msgs) *
	    (double)elapsed / (double)p->msgs / 1000.0 + 0.5);
}

size_t
progress_format(const struct progress *p, long long now_ms, int tty,
    int final, char *buf, size_t n)
{
	long long	 elapsed = now_ms - p->start_ms, eta;
	uint64_t	 rate;
	char		 e[32], d[32], t[32], r[32];
	int		 rough, len;

	if (n == 0)
		return 0;
	rate = elapsed > 0 ? (uint64_t)((double)p->bytes * 1000.0 /
	    (double)elapsed) : 0;
	eta = final ? 0 : eta_s(p, elapsed, &rough);
	if (final)
		rough = 0;
	if (!tty) {
		if (eta < 0)
			snprintf(e, sizeof(e), "?");
		else
			snprintf(e, sizeof(e), "%s%lld s", rough ? "~" : "",
			    eta);
		len = snprintf(buf, n, "progress: messages %" PRIu64 "/%"
		    PRIu64 " bytes %" PRIu64 "/%" PRIu64 "%s rate %" PRIu64
		    " B/s eta %s%s", p->msgs, p->msgs_total, p->bytes,
		    p->bytes_total, p->unknown > 0 ? "+" : "", rate, e,
		    final ? " done" : "");
	} else {
		if (final)
			snprintf(e, sizeof(e), "done");
		else if (eta < 0)
			snprintf(e, sizeof(e), "--:-- left");
		else if (eta >= 3600)
			snprintf(e, sizeof(e), "%s%lld:%02lld:%02lld left",
			    rough ? "~" : "", eta / 3600, eta / 60 % 60,
			    eta % 60);
		else
			snprintf(e, sizeof(e), "%s%lld:%02lld left",
			    rough ? "~" : "", eta / 60, eta % 60);
		human(p->bytes, d, sizeof(d));
		human(p->bytes_total, t, sizeof(t));
		human(rate, r, sizeof(r));
		len = snprintf(buf, n, "%" PRIu64 "/%" PRIu64 " messages, "
		    "%s/%s%s, %s/s, %s", p->msgs, p->msgs_total, d, t,
		    p->unknown > 0 ? "+" : "", r, e);
	}
	if (len < 0) {
		buf[0] = '\0';
		return 0;
	}
	return (size_t)len < n ? (size_t)len : n - 1;
}

void
progress_start(struct progress *p, FILE *f, int tty, uint64_t msgs_total,
    uint64_t bytes_total, uint64_t unknown)
{
	memset(p, 0, sizeof(*p));
	p->f = f;
	p->tty = tty;
	p->msgs_total = msgs_total;
	p->bytes_total = bytes_total;
	p->unknown = unknown;
	p->start_ms = msync_now_ms();
	progress_show(p, 0);
}

void
progress_size(struct progress *p, int known, uint64_t est, uint64_t size)
{
	if (known)
		p->bytes_total -= est < p->bytes_total ? est : p->bytes_total;
	else if (p->unknown > 0)
		p->unknown--;
	p->bytes_total += size;
}

void
progress_show(struct progress *p, int final)
{
	char		 line[256];
	long long	 now;
	size_t		 len;

	if (p->f == NULL)
		return;
	now = msync_now_ms();
	if (!final && p->last_ms != 0 && now - p->last_ms <
	    (p->tty ? PROGRESS_TTY_MS : PROGRESS_PLAIN_MS))
		return;
	p->last_ms = now;
	len = progress_format(p, now, p->tty, final, line, sizeof(line));
	if (p->tty) {
		/* Spaces over what is left of a longer previous line. */
		fprintf(p->f, "\rmsync: %s%*s", line, p->width > len ?
		    (int)(p->width - len) : 0, "");
		p->width = len;
		if (final)
			fputc('\n', p->f);
	} else
		fprintf(p->f, "msync: %s\n", line);
	fflush(p->f);
	if (final)
		p->f = NULL;
}
