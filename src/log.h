/*
 * log.h — messages for the user.  In a client they go to stderr; in server
 * mode a hook sends them to the peer as REC_LOG records so they reach the
 * user's terminal prefixed with the host.
 *
 * Levels: 0 error, 1 warning/notice (shown unless -q), 2 info (-v),
 * 3 and 4 debug (-vv, -vvv).
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

extern int log_verbosity;	/* messages above this level are dropped */

/* Optional sink (server mode); when set, messages go there instead. */
typedef void (*log_sink_fn)(int level, const char *text, void *arg);
void	 log_set_sink(log_sink_fn, void *arg);
void	 log_set_prefix(const char *);	/* "msync" by default */

/* error: text, errno appended */
void	 ERR(const char *, ...) __attribute__((format(printf, 1, 2)));
/* error: text */
void	 ERRX(const char *, ...) __attribute__((format(printf, 1, 2)));
/* error: text, msync_strerror(code) appended (errno when code is IO) */
void	 ERRC(int code, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* warning: text */
void	 WARNX(const char *, ...) __attribute__((format(printf, 1, 2)));
/* warning: text, errno appended */
void	 WARN(const char *, ...) __attribute__((format(printf, 1, 2)));
/* level 1..4: plain lines */
void	 LOG(int level, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
#define LOG1(...)	LOG(1, __VA_ARGS__)
#define LOG2(...)	LOG(2, __VA_ARGS__)
#define LOG3(...)	LOG(3, __VA_ARGS__)
#define LOG4(...)	LOG(4, __VA_ARGS__)

/*
 * Escapes bytes for printing (vis-style: \n, \x1b, ...) and truncates to
 * max bytes of input.  Returns a static buffer, valid until the fourth
 * call after it (so one message may use up to four).
 */
const char *log_esc(const char *s, size_t max);

#endif /* LOG_H */
