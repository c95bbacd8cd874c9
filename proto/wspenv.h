/*
 * wspenv.h - the Redis envelope: a PUBLISHed payload that begins with the
 * four bytes "\xC1WSP" followed by a msgpack map
 *   {"v": 1, "data": bin, "from"?: str, "id"?: str, "ts"?: int,
 *    "json"?: bool}
 * wspush uses it for client-originated messages so the sender's identity
 * travels between nodes. "json": true says data is JSON text (the client's
 * `data` value) to be embedded as is after validation; it is an addition to
 * the README's key list that old readers ignore. Unknown keys are ignored.
 */
#ifndef WSP_WSPENV_H
#define WSP_WSPENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "envelope.h"

#define WSPENV_MAGIC "\xC1WSP"
#define WSPENV_MAGIC_LEN 4
#define WSPENV_VERSION 1

struct wspenv {
	struct env_str data;
	struct env_str from; /* optional */
	struct env_str id;   /* optional */
	uint64_t ts;         /* optional, 0 if absent */
	bool json;
};

/* True if buf starts with the magic (it may still fail to decode). */
bool wspenv_is(const void *buf, size_t len);

/*
 * Decodes buf[0..len) including the magic; fields point into buf.
 * Returns 0, or -1 if malformed, of another version, or with trailing
 * bytes. zone is caller-owned scratch (msgpack_zone_init'ed), cleared at
 * the start of each call. Rules (proto/PROTOCOL.md): data bin or str;
 * from/id UTF-8 str <= ENV_ID_MAX or nil; ts uint or nil; json bool or
 * nil; a known key twice is malformed; other keys are ignored. *out is
 * written only on success; an absent from/id has p == NULL.
 */
int wspenv_decode(
    const void *buf, size_t len, msgpack_zone *zone, struct wspenv *out);

/* Appends magic + map to out: from/id only when p is set, ts only when
 * non-zero, json only when true. Returns 0, or -1 (out unchanged) on
 * allocation failure or a field the decoder would refuse. */
int wspenv_encode(msgpack_sbuffer *out, const struct wspenv *e);

#endif
