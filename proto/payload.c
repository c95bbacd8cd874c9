/*
 * payload.c - classifies a published payload once, in the bridge, as JSON
 * (embedded as is), UTF-8 text (sent as a JSON string) or binary (base64),
 * and the two encoders the workers frame text and binary payloads with.
 * JSON is checked by a small validator rather than a parser: it allocates
 * nothing (jansson would build a tree, tens of bytes per value: hundreds
 * of MB for 16 MiB of "[0,0,...") and accepts every RFC 8259 number (jansson
 * fails on numbers beyond a double).
 * Both encoders run once per worker per message: they copy runs of plain
 * bytes with memcpy and use lookup tables.
 */
#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "payload.h"

static bool
json_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Could c start a JSON text? Only then is the validator worth running. */
static bool
json_start(unsigned char c, bool any)
{
	if (c == '{' || c == '[')
		return true;
	if (!any)
		return false;
	return c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' ||
	       c == 'f' || c == 'n';
}

static const unsigned char *
skip_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && json_ws(*p))
		p++;
	return p;
}

static bool
is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

static const unsigned char *
skip_digits(const unsigned char *p, const unsigned char *end)
{
	while (is_digit(p, end))
		p++;
	return p;
}

/* RFC 8259 number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static const unsigned char *
json_number(const unsigned char *p, const unsigned char *end)
{
	if (p < end && *p == '-')
		p++;
	if (!is_digit(p, end))
		return NULL;
	p = *p == '0' ? p + 1 : skip_digits(p, end);
	if (p < end && *p == '.') {
		if (!is_digit(++p, end))
			return NULL;
		p = skip_digits(p, end);
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!is_digit(p, end))
			return NULL;
		p = skip_digits(p, end);
	}
	return p;
}

static bool
hex4(const unsigned char *p, const unsigned char *end, unsigned *u)
{
	unsigned v = 0;

	if (end - p < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		unsigned char c = p[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (unsigned)(c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v = v << 4 | (unsigned)((c | 0x20) - 'a' + 10);
		else
			return false;
	}
	*u = v;
	return true;
}

/*
 * A string's body, p just after the opening quote; returns the position
 * after the closing one, or NULL. The input is known to be UTF-8. A \u
 * escape of a UTF-16 surrogate must be a proper pair: some clients' JSON
 * parsers (Rust's serde_json, jansson) reject a lone one, and one bad frame
 * would cost them the connection.
 */
static const unsigned char *
json_string(const unsigned char *p, const unsigned char *end)
{
	while (p < end) {
		unsigned char c = *p++;
		unsigned u;

		if (c == '"')
			return p;
		if (c < 0x20)
			return NULL;
		if (c != '\\')
			continue;
		if (p == end)
			return NULL;
		switch (*p++) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			break;
		case 'u':
			if (!hex4(p, end, &u) || (u >= 0xdc00 && u <= 0xdfff))
				return NULL;
			p += 4;
			if (u >= 0xd800 && u <= 0xdbff) {
				if (end - p < 2 || p[0] != '\\' ||
				    p[1] != 'u' || !hex4(p + 2, end, &u) ||
				    u < 0xdc00 || u > 0xdfff)
					return NULL;
				p += 6;
			}
			break;
		default:
			return NULL;
		}
	}
	return NULL;
}

static const unsigned char *
json_literal(const unsigned char *p, const unsigned char *end, const char *lit,
    size_t len)
{
	if ((size_t)(end - p) < len || memcmp(p, lit, len) != 0)
		return NULL;
	return p + len;
}

#define JSON_DEPTH_MAX 2048 /* as jansson's parser */

/*
 * Is p[0..end) exactly one JSON value (RFC 8259), surrounding whitespace
 * allowed? Iterative, no allocation: one bit per open container says
 * object or array.
 */
static bool
json_valid(const unsigned char *p, const unsigned char *end)
{
	unsigned char obj[JSON_DEPTH_MAX / 8];
	size_t depth = 0;
	enum { VALUE, KEY, AFTER } st = VALUE;

	for (;;) {
		p = skip_ws(p, end);
		switch (st) {
		case VALUE:
			if (p == end)
				return false;
			st = AFTER;
			switch (*p) {
			case '{':
			case '[': {
				bool is_obj = *p == '{';

				p = skip_ws(p + 1, end);
				if (p < end && *p == (is_obj ? '}' : ']')) {
					p++;
					break;
				}
				if (depth == JSON_DEPTH_MAX)
					return false;
				if (is_obj)
					obj[depth / 8] |= 1u << (depth % 8);
				else
					obj[depth / 8] &= ~(1u << (depth % 8));
				depth++;
				st = is_obj ? KEY : VALUE;
				break;
			}
			case '"':
				p = json_string(p + 1, end);
				break;
			case 't':
				p = json_literal(p, end, "true", 4);
				break;
			case 'f':
				p = json_literal(p, end, "false", 5);
				break;
			case 'n':
				p = json_literal(p, end, "null", 4);
				break;
			default:
				p = json_number(p, end);
				break;
			}
			if (p == NULL)
				return false;
			break;
		case KEY:
			if (p == end || *p != '"')
				return false;
			p = json_string(p + 1, end);
			if (p == NULL)
				return false;
			p = skip_ws(p, end);
			if (p == end || *p != ':')
				return false;
			p++;
			st = VALUE;
			break;
		case AFTER: {
			bool in_obj;

			if (depth == 0)
				return p == end;
			if (p == end)
				return false;
			in_obj =
			    (obj[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
			if (*p == ',') {
				p++;
				st = in_obj ? KEY : VALUE;
			} else if (*p == (in_obj ? '}' : ']')) {
				p++;
				depth--;
			} else {
				return false;
			}
			break;
		}
		}
	}
}

enum payload_class
payload_classify(const void *p, size_t len, bool json_any)
{
	const unsigned char *s = p, *end, *first;

	if (len == 0) /* p may be NULL */
		return PAYLOAD_TEXT;
	/* JSON is UTF-8 (RFC 8259 section 8.1), so check that first. */
	if (!utf8_valid(p, len))
		return PAYLOAD_BINARY;
	end = s + len;
	first = skip_ws(s, end);
	if (first < end && json_start(*first, json_any) &&
	    json_valid(first, end))
		return PAYLOAD_JSON;
	return PAYLOAD_TEXT;
}

size_t
json_escaped_max(size_t len)
{
	if (len > (SIZE_MAX - 2) / 6)
		return SIZE_MAX;
	return 2 + 6 * len;
}

/*
 * What each byte becomes: 0 copied as is, 'u' \u00XX, another letter a
 * two-byte escape (\n ...), 'E' for 0xE2, which may start U+2028 or U+2029.
 * Those two are valid in JSON strings but end a line in JavaScript, so they
 * are escaped too.
 */
static const unsigned char esc_tab[256] = {
    ['\0'] = 'u',
    [0x01] = 'u',
    [0x02] = 'u',
    [0x03] = 'u',
    [0x04] = 'u',
    [0x05] = 'u',
    [0x06] = 'u',
    [0x07] = 'u',
    ['\b'] = 'b',
    ['\t'] = 't',
    ['\n'] = 'n',
    [0x0b] = 'u',
    ['\f'] = 'f',
    ['\r'] = 'r',
    [0x0e] = 'u',
    [0x0f] = 'u',
    [0x10] = 'u',
    [0x11] = 'u',
    [0x12] = 'u',
    [0x13] = 'u',
    [0x14] = 'u',
    [0x15] = 'u',
    [0x16] = 'u',
    [0x17] = 'u',
    [0x18] = 'u',
    [0x19] = 'u',
    [0x1a] = 'u',
    [0x1b] = 'u',
    [0x1c] = 'u',
    [0x1d] = 'u',
    [0x1e] = 'u',
    [0x1f] = 'u',
    ['"'] = '"',
    ['\\'] = '\\',
    [0xe2] = 'E',
};

static const char hex_digits[16] = "0123456789abcdef";

/*
 * True if none of the 8 bytes of x needs a look: no byte < 0x20, '"', '\\'
 * or 0xE2 (the classic SWAR "has zero byte" / "has byte less than" tests,
 * exact for "any").
 */
static bool
plain8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101u, high = ones * 0x80;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
	uint64_t e = x ^ (ones * 0xe2);
	uint64_t hit = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) |
		       ((b - ones) & ~b) | ((e - ones) & ~e);

	return (hit & high) == 0;
}

size_t
json_escape_str(char *out, const void *s, size_t len)
{
	const unsigned char *in = s;
	char *o = out;
	size_t run = 0; /* start of the pending run of plain bytes */
	size_t i = 0;

	*o++ = '"';
	while (i < len) {
		unsigned char c, t;

		if (len - i >= 8) {
			uint64_t w;

			memcpy(&w, in + i, 8);
			if (plain8(w)) {
				i += 8;
				continue;
			}
		}
		c = in[i];
		t = esc_tab[c];
		if (t == 0 || (t == 'E' && (len - i < 3 || in[i + 1] != 0x80 ||
					       (in[i + 2] != 0xa8 &&
						   in[i + 2] != 0xa9)))) {
			i++;
			continue;
		}
		memcpy(o, in + run, i - run);
		o += i - run;
		if (t == 'E') {
			memcpy(o, in[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
			o += 6;
			i += 3;
		} else if (t == 'u') {
			memcpy(o, "\\u00", 4);
			o[4] = hex_digits[c >> 4];
			o[5] = hex_digits[c & 0x0f];
			o += 6;
			i++;
		} else {
			o[0] = '\\';
			o[1] = (char)t;
			o += 2;
			i++;
		}
		run = i;
	}
	if (len > run) { /* s may be NULL when len is 0 */
		memcpy(o, in + run, len - run);
		o += len - run;
	}
	*o++ = '"';
	return (size_t)(o - out);
}

size_t
base64_len(size_t len)
{
	return (len + 2) / 3 * 4;
}

static const char b64_digits[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
base64_encode(char *out, const void *s, size_t len)
{
	const unsigned char *in = s;
	char *o = out;
	size_t i = 0;

	for (; len - i >= 3; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];

		o[0] = b64_digits[v >> 18];
		o[1] = b64_digits[(v >> 12) & 0x3f];
		o[2] = b64_digits[(v >> 6) & 0x3f];
		o[3] = b64_digits[v & 0x3f];
		o += 4;
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		o[0] = b64_digits[v >> 18];
		o[1] = b64_digits[(v >> 12) & 0x3f];
		o[2] = '=';
		o[3] = '=';
		o += 4;
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		o[0] = b64_digits[v >> 18];
		o[1] = b64_digits[(v >> 12) & 0x3f];
		o[2] = b64_digits[(v >> 6) & 0x3f];
		o[3] = '=';
		o += 4;
	}
	return (size_t)(o - out);
}
