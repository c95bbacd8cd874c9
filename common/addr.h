/*
 * addr.h - the one address syntax of wspush: "user:<id>",
 * "channel:<name>" and "all".
 *
 * An id or name is 1..256 bytes of printable UTF-8 with no whitespace, no
 * control characters and no '*'; the address splits at the first ':', so
 * "channel:chat:room:7" names channel "chat:room:7". Parsing borrows the
 * input; nothing is allocated.
 */
#ifndef WSP_ADDR_H
#define WSP_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_ID_MAX 256
/* Longest textual address: "channel:" + id. */
#define ADDR_MAX (8 + ADDR_ID_MAX)

enum addr_kind {
	ADDR_USER,
	ADDR_CHANNEL,
	ADDR_ALL,
};

struct addr {
	enum addr_kind kind;
	const char *id; /* points into the parsed text; NULL for ADDR_ALL */
	size_t idlen;
};

/* Returns true if id[0..len) is a valid user id or channel name. */
bool addr_id_valid(const char *id, size_t len);

/* Parses s[0..len); returns 0 and fills *out, or -1 if invalid. */
int addr_parse(const char *s, size_t len, struct addr *out);

/*
 * Writes the textual form ("user:42") into buf, NUL-terminated. Returns the
 * length, or -1 if buf is too small.
 */
int addr_format(const struct addr *a, char *buf, size_t buflen);

const char *addr_kind_str(enum addr_kind k);

/* True if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const void *s, size_t len);

#endif
