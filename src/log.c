/*
 * log.c — messages for the user: stderr in a client; a sink (REC_LOG
 * records to the peer) in server mode.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msync.h"

int log_verbosity = 1;

static log_sink_fn	 sink;
static void		*sink_arg;
static const char	*prefix = "msync";
/*
 * One line at a time: the listing's read-ahead threads (src/readahead.c)
 * and the keepalive thread may log while the main thread does, and a
 * sink (a record to the peer, a report's list) is not reentrant.
 * Recursive, as a sink's own failure may log.
 */
static pthread_mutex_t	 emit_mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

void
log_set_sink(log_sink_fn fn, void *arg)
{
	sink = fn;
	sink_arg = arg;
}

void
log_set_prefix(const char *p)
{
	prefix = p;
}

/*
 * Formats and emits one line at level.  tag is "error: ", "warning: " or
 * "", tail an optional text appended after ": ".
 */
static void
emit(int level, const char *tag, const char *tail, const char *fmt,
    va_list ap)
{
	char	 text[2048];
	int	 n;

	if (level > log_verbosity && level > 0)
		return;
	n = vsnprintf(text, sizeof(text), fmt, ap);
	if (n < 0)
		return;
	if (tail != NULL && (size_t)n < sizeof(text))
		snprintf(text + n, sizeof(text) - (size_t)n, ": %s", tail);
	pthread_mutex_lock(&emit_mu);
	if (sink != NULL) {
		char	 line[2200];

		snprintf(line, sizeof(line), "%s%s", tag, text);
		sink(level, line, sink_arg);
	} else
		fprintf(stderr, "%s: %s%s\n", prefix, tag, text);
	pthread_mutex_unlock(&emit_mu);
}

void
ERR(const char *fmt, ...)
{
	va_list	 ap;
	char	 e[256];

	snprintf(e, sizeof(e), "%s", strerror(errno));
	va_start(ap, fmt);
	emit(0, "error: ", e, fmt, ap);
	va_end(ap);
}

void
ERRX(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	emit(0, "error: ", NULL, fmt, ap);
	va_end(ap);
}

void
ERRC(int code, const char *fmt, ...)
{
	va_list	 ap;
	char	 e[256];

	if (code == MSYNC_ERR_IO)
		snprintf(e, sizeof(e), "%s", strerror(errno));
	else
		snprintf(e, sizeof(e), "%s", msync_strerror(code));
	va_start(ap, fmt);
	emit(0, "error: ", e, fmt, ap);
	va_end(ap);
}

void
WARNX(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	emit(1, "warning: ", NULL, fmt, ap);
	va_end(ap);
}

void
WARN(const char *fmt, ...)
{
	va_list	 ap;
	char	 e[256];

	snprintf(e, sizeof(e), "%s", strerror(errno));
	va_start(ap, fmt);
	emit(1, "warning: ", e, fmt, ap);
	va_end(ap);
}

void
LOG(int level, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	emit(level, "", NULL, fmt, ap);
	va_end(ap);
}

/*
 * Escapes s for a terminal: printable ASCII and UTF-8 sequences pass,
 * other bytes become \n, \t, \\ or \xHH.  At most max input bytes are
 * read; a cut is marked with "...".  Returns one of four static
 * buffers, so up to four results can appear in one message.
 */
const char *
log_esc(const char *s, size_t max)
{
	static char	 bufs[4][1024];
	static unsigned	 next;
	char		*buf = bufs[next++ % 4];
	size_t		 o = 0, i;

	if (s == NULL)
		return "(null)";
	for (i = 0; s[i] != '\0' && i < max && o + 8 < sizeof(bufs[0]); i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\') {
			buf[o++] = '\\';
			buf[o++] = '\\';
		} else if (c == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else if (c == '\t') {
			buf[o++] = '\\';
			buf[o++] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(buf + o, sizeof(bufs[0]) - o,
			    "\\x%02x", c);
		} else
			buf[o++] = (char)c;
	}
	if (s[i] != '\0' && o + 4 < sizeof(bufs[0])) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}
