/*
 * log.h - one-line, key=value logging to stderr for every wspush process.
 *
 * Levels are syslog's (LOG_ERR .. LOG_DEBUG from <syslog.h>); journald adds
 * the time, so lines carry only "tag: level: text". A macro tests the level
 * before any formatting is done, so disabled debug lines cost one compare.
 * Logging preserves errno. Payloads and tokens are never logged above debug.
 */
#ifndef WSP_LOG_H
#define WSP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

extern int log_level_cur; /* read by the macros; set with log_set_level() */

/* Sets the process tag ("wspush-gateway[w3]") and the level. Copies tag. */
void log_init(const char *tag, int level);
void log_set_tag(const char *tag);
void log_set_level(int level);

/* "error", "warn", "notice", "info", "debug" -> syslog level; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_str(int level);

/* with_errno: append ": strerror(errno)". Use the macros below. */
void log_emit(int level, int with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vemit(int level, int with_errno, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define LOG_AT(lvl, e, ...)                                \
	do {                                               \
		if ((lvl) <= log_level_cur)                \
			log_emit((lvl), (e), __VA_ARGS__); \
	} while (0)

#define log_debug(...) LOG_AT(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) LOG_AT(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARNING, 1, __VA_ARGS__)
#define log_warnx(...) LOG_AT(LOG_WARNING, 0, __VA_ARGS__)
#define log_err(...) LOG_AT(LOG_ERR, 1, __VA_ARGS__)
#define log_errx(...) LOG_AT(LOG_ERR, 0, __VA_ARGS__)

/*
 * A rate limit for one kind of log line (a flood of bad frames, a link that
 * keeps failing): at most one line per interval_ms. log_limit_pass() says
 * whether a line may be written now and, if so, sets *suppressed to how
 * many were held back since the last one (to be mentioned in that line).
 * Embed one per kind of line; zero-initialised is ready to use.
 */
struct log_limit {
	uint64_t next_ms;    /* monotonic: the earliest next line */
	uint64_t suppressed; /* lines held back since the last one */
};

bool log_limit_pass(struct log_limit *ll, uint64_t now_ms, uint64_t interval_ms,
    uint64_t *suppressed);

/* Log at LOG_CRIT and exit(1). Only before an event loop runs. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
