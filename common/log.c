/*
 * log.c - one-line logging to stderr: "tag: level: text".
 *
 * journald stamps the time, so lines carry none. Every call preserves errno
 * so callers can log and then still inspect or report it. Lines are built in
 * one buffer and written with one write(2) so that lines of concurrent
 * processes sharing stderr do not interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int log_level_cur = LOG_INFO;

static char log_tag[64] = "wspush";

void
log_init(const char *tag, int level)
{
	log_set_tag(tag);
	log_set_level(level);
}

/* Copies tag (truncated to 63 bytes); NULL keeps "wspush". */
void
log_set_tag(const char *tag)
{
	if (tag == NULL)
		tag = "wspush";
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

/* Clamps level into LOG_EMERG..LOG_DEBUG. */
void
log_set_level(int level)
{
	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_level_cur = level;
}

static const struct {
	const char *name;
	int level;
} log_levels[] = {
    {"error", LOG_ERR},
    {"warn", LOG_WARNING},
    {"notice", LOG_NOTICE},
    {"info", LOG_INFO},
    {"debug", LOG_DEBUG},
};

int
log_level_parse(const char *name)
{
	size_t i;

	if (name == NULL)
		return -1;
	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
		if (strcasecmp(name, log_levels[i].name) == 0)
			return log_levels[i].level;
	}
	return -1;
}

/* The name of a syslog level as it appears in log lines. */
const char *
log_level_str(int level)
{
	switch (level) {
	case LOG_EMERG:
		return "emerg";
	case LOG_ALERT:
		return "alert";
	case LOG_CRIT:
		return "crit";
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warn";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	case LOG_DEBUG:
		return "debug";
	default:
		return "unknown";
	}
}

/*
 * Formats and writes one line. Over-long messages are truncated (marked with
 * "..."); newlines and other control characters in the text are replaced so
 * one call is always exactly one line.
 */
void
log_vemit(int level, int with_errno, const char *fmt, va_list ap)
{
	char buf[2048];
	int saved = errno;
	size_t len, i, start;
	int n;

	n = snprintf(
	    buf, sizeof(buf), "%s: %s: ", log_tag, log_level_str(level));
	if (n < 0)
		n = 0;
	start = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
	len = start;
	n = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n;
	if (with_errno && len < sizeof(buf)) {
		n = snprintf(
		    buf + len, sizeof(buf) - len, ": %s", strerror(saved));
		if (n > 0)
			len += (size_t)n;
	}
	/* Keep room for "...\n". */
	if (len > sizeof(buf) - 5) {
		len = sizeof(buf) - 5;
		memcpy(buf + len, "...", 3);
		len += 3;
	}
	for (i = start; i < len; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch < 0x20 || ch == 0x7f)
			buf[i] = ' ';
	}
	buf[len++] = '\n';
	{
		const char *p = buf;
		size_t left = len;
		int tries = 0;

		/* Bounded: stderr may be a pipe that is full or closed. */
		while (left > 0 && tries++ < 8) {
			ssize_t w = write(STDERR_FILENO, p, left);
			if (w == -1) {
				if (errno == EINTR)
					continue;
				break;
			}
			p += w;
			left -= (size_t)w;
		}
	}
	errno = saved;
}

void
log_emit(int level, int with_errno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(level, with_errno, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

bool
log_limit_pass(struct log_limit *ll, uint64_t now_ms, uint64_t interval_ms,
    uint64_t *suppressed)
{
	if (now_ms < ll->next_ms) {
		ll->suppressed++;
		return false;
	}
	*suppressed = ll->suppressed;
	ll->suppressed = 0;
	ll->next_ms = now_ms + interval_ms;
	return true;
}
