/*
 * addr.c - parse, validate and format "user:<id>", "channel:<name>", "all".
 *
 * Validation is strict because ids become Redis key parts, log fields and
 * JSON strings: well-formed UTF-8, no control characters (C0, DEL, C1), no
 * Unicode White_Space and no '*' (reserved for patterns). Nothing here
 * allocates; parsed addresses point into the caller's text.
 */
#include "addr.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * Decodes one UTF-8 sequence at s[0..len). Returns its length and stores the
 * code point, or returns 0 if the sequence is malformed: truncated, a bad
 * continuation byte, overlong, a surrogate or above U+10FFFF.
 */
static size_t
utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c;
	size_t n, i;

	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0; /* continuation byte, 0xc0/0xc1 or 0xf5.. */
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000))
		return 0; /* overlong */
	if (c >= 0xd800 && c <= 0xdfff)
		return 0; /* surrogate */
	if (c > 0x10ffff)
		return 0;
	*cp = c;
	return n;
}

bool
utf8_valid(const void *s, size_t len)
{
	const unsigned char *p = s;
	size_t off = 0;
	uint32_t cp;

	while (off < len) {
		size_t n;

		/* Fast path for ASCII runs. */
		if (p[off] < 0x80) {
			off++;
			continue;
		}
		n = utf8_decode(p + off, len - off, &cp);
		if (n == 0)
			return false;
		off += n;
	}
	return true;
}

/* Control characters and Unicode White_Space: not allowed in ids. */
static bool
addr_cp_forbidden(uint32_t c)
{
	if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f))
		return true; /* C0, DEL, C1 (includes U+0085) */
	switch (c) {
	case ' ':
	case '*':
	case 0xa0:
	case 0x1680:
	case 0x2028:
	case 0x2029:
	case 0x202f:
	case 0x205f:
	case 0x3000:
		return true;
	default:
		break;
	}
	return c >= 0x2000 && c <= 0x200a;
}

bool
addr_id_valid(const char *id, size_t len)
{
	const unsigned char *p = (const unsigned char *)id;
	size_t off = 0;

	if (id == NULL || len == 0 || len > ADDR_ID_MAX)
		return false;
	while (off < len) {
		uint32_t cp;
		size_t n = utf8_decode(p + off, len - off, &cp);

		if (n == 0 || addr_cp_forbidden(cp))
			return false;
		off += n;
	}
	return true;
}

int
addr_parse(const char *s, size_t len, struct addr *out)
{
	const char *colon;
	struct addr a;
	size_t plen;

	if (s == NULL || out == NULL)
		return -1;
	if (len == 3 && memcmp(s, "all", 3) == 0) {
		out->kind = ADDR_ALL;
		out->id = NULL;
		out->idlen = 0;
		return 0;
	}
	colon = memchr(s, ':', len);
	if (colon == NULL)
		return -1;
	plen = (size_t)(colon - s);
	if (plen == 4 && memcmp(s, "user", 4) == 0)
		a.kind = ADDR_USER;
	else if (plen == 7 && memcmp(s, "channel", 7) == 0)
		a.kind = ADDR_CHANNEL;
	else
		return -1;
	a.id = colon + 1;
	a.idlen = len - plen - 1;
	if (!addr_id_valid(a.id, a.idlen))
		return -1;
	*out = a;
	return 0;
}

int
addr_format(const struct addr *a, char *buf, size_t buflen)
{
	int n;

	if (a == NULL || buf == NULL || buflen == 0)
		return -1;
	if (a->kind == ADDR_ALL) {
		n = snprintf(buf, buflen, "all");
	} else if (a->kind == ADDR_USER || a->kind == ADDR_CHANNEL) {
		if (a->id == NULL || a->idlen > ADDR_ID_MAX)
			return -1;
		n = snprintf(buf, buflen, "%s:%.*s", addr_kind_str(a->kind),
		    (int)a->idlen, a->id);
	} else {
		return -1;
	}
	if (n < 0 || (size_t)n >= buflen) {
		buf[0] = '\0';
		return -1;
	}
	return n;
}

const char *
addr_kind_str(enum addr_kind k)
{
	switch (k) {
	case ADDR_USER:
		return "user";
	case ADDR_CHANNEL:
		return "channel";
	case ADDR_ALL:
		return "all";
	}
	return "unknown";
}
