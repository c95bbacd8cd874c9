/*
 * keys.c - Redis key and channel names (see keys.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"

static int keys_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
keys_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -1 : n;
}

/* Appends prefix to buf with the glob characters of SCAN/PSUBSCRIBE
 * patterns escaped, then tail. */
static int
keys_pattern(char *buf, size_t len, const char *prefix, const char *tail)
{
	size_t j = 0;

	for (const char *p = prefix; *p != '\0'; p++) {
		if (j + 2 >= len)
			return -1;
		if (strchr("?*[]\\", *p) != NULL)
			buf[j++] = '\\';
		buf[j++] = *p;
	}
	return keys_fmt(buf + j, len - j, "%s", tail) == -1
		   ? -1
		   : (int)(j + strlen(tail));
}

int
keys_channel(char *buf, size_t len, const char *prefix, const char *address,
    size_t address_len)
{
	if (address_len > 0x7fffffff)
		return -1;
	return keys_fmt(buf, len, "%s:%.*s", prefix, (int)address_len, address);
}

int
keys_hb_channel(char *buf, size_t len, const char *prefix, const char *node)
{
	return keys_fmt(buf, len, "%s:_hb:%s", prefix, node);
}

int
keys_hb_prefix(char *buf, size_t len, const char *prefix)
{
	return keys_fmt(buf, len, "%s:_hb:", prefix);
}

int
keys_inbound(char *buf, size_t len, const char *prefix)
{
	return keys_fmt(buf, len, "%s:inbound", prefix);
}

int
keys_events(char *buf, size_t len, const char *prefix)
{
	return keys_fmt(buf, len, "%s:events", prefix);
}

int
keys_node(char *buf, size_t len, const char *prefix, const char *node)
{
	return keys_fmt(buf, len, "%s:node:%s", prefix, node);
}

int
keys_presence(char *buf, size_t len, const char *prefix, const char *node)
{
	return keys_fmt(buf, len, "%s:presence:%s", prefix, node);
}

int
keys_node_pattern(char *buf, size_t len, const char *prefix)
{
	return keys_pattern(buf, len, prefix, ":node:*");
}

int
keys_presence_pattern(char *buf, size_t len, const char *prefix)
{
	return keys_pattern(buf, len, prefix, ":presence:*");
}

int
keys_all_pattern(char *buf, size_t len, const char *prefix)
{
	return keys_pattern(buf, len, prefix, ":*");
}
