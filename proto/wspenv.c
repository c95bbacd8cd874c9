/*
 * wspenv.c - the wspush Redis envelope: "\xC1WSP" + one msgpack map. The
 * bridge decodes it for every PUBLISHed payload that starts with the magic
 * and encodes it for client publishes. Decoding is strict about the keys
 * it knows (type, single occurrence) and ignores the others.
 */
#include <string.h>

#include "addr.h"
#include "wspenv.h"

bool
wspenv_is(const void *buf, size_t len)
{
	return len >= WSPENV_MAGIC_LEN &&
	       memcmp(buf, WSPENV_MAGIC, WSPENV_MAGIC_LEN) == 0;
}

static bool
key_is(const msgpack_object *k, const char *name, size_t len)
{
	return k->via.str.size == len && memcmp(k->via.str.ptr, name, len) == 0;
}

/* str, or nil for absent; an empty one gets a non-NULL "". It must be
 * UTF-8: workers put from and id in JSON text frames. */
static bool
get_ostr(const msgpack_object *o, struct env_str *s)
{
	if (o->type == MSGPACK_OBJECT_NIL) {
		s->p = NULL;
		s->len = 0;
		return true;
	}
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > ENV_ID_MAX ||
	    !utf8_valid(o->via.str.ptr, o->via.str.size))
		return false;
	s->p = o->via.str.size != 0 ? o->via.str.ptr : "";
	s->len = o->via.str.size;
	return true;
}

enum {
	SEEN_V = 1 << 0,
	SEEN_DATA = 1 << 1,
	SEEN_FROM = 1 << 2,
	SEEN_ID = 1 << 3,
	SEEN_TS = 1 << 4,
	SEEN_JSON = 1 << 5,
};

int
wspenv_decode(
    const void *buf, size_t len, msgpack_zone *zone, struct wspenv *out)
{
	const char *p = buf;
	struct wspenv e = {0};
	msgpack_object obj;
	size_t end, off = WSPENV_MAGIC_LEN;
	unsigned seen = 0;

	if (!wspenv_is(buf, len))
		return -1;
	/* env_scan() bounds what msgpack allocates; end must be len. */
	if (env_scan(p, len, off, &end) != ENV_OK || end != len)
		return -1;
	msgpack_zone_clear(zone);
	if (msgpack_unpack(p, len, &off, zone, &obj) !=
		MSGPACK_UNPACK_SUCCESS ||
	    off != len || obj.type != MSGPACK_OBJECT_MAP)
		return -1;
	for (uint32_t i = 0; i < obj.via.map.size; i++) {
		const msgpack_object *k = &obj.via.map.ptr[i].key;
		const msgpack_object *v = &obj.via.map.ptr[i].val;
		unsigned bit;
		bool ok;

		if (k->type != MSGPACK_OBJECT_STR)
			continue; /* not a key we know */
		if (key_is(k, "v", 1)) {
			bit = SEEN_V;
			ok = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
			     v->via.u64 == WSPENV_VERSION;
		} else if (key_is(k, "data", 4)) {
			bit = SEEN_DATA;
			if (v->type == MSGPACK_OBJECT_BIN) {
				e.data.p = v->via.bin.ptr;
				e.data.len = v->via.bin.size;
				ok = v->via.bin.size <= ENV_DATA_MAX;
			} else if (v->type == MSGPACK_OBJECT_STR) {
				e.data.p = v->via.str.ptr;
				e.data.len = v->via.str.size;
				ok = v->via.str.size <= ENV_DATA_MAX;
			} else {
				ok = false;
			}
			if (e.data.len == 0)
				e.data.p = "";
		} else if (key_is(k, "from", 4)) {
			bit = SEEN_FROM;
			ok = get_ostr(v, &e.from);
		} else if (key_is(k, "id", 2)) {
			bit = SEEN_ID;
			ok = get_ostr(v, &e.id);
		} else if (key_is(k, "ts", 2)) {
			bit = SEEN_TS;
			ok = v->type == MSGPACK_OBJECT_NIL ||
			     v->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
			if (ok && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				e.ts = v->via.u64;
		} else if (key_is(k, "json", 4)) {
			bit = SEEN_JSON;
			ok = v->type == MSGPACK_OBJECT_NIL ||
			     v->type == MSGPACK_OBJECT_BOOLEAN;
			if (ok && v->type == MSGPACK_OBJECT_BOOLEAN)
				e.json = v->via.boolean;
		} else {
			continue;
		}
		/* A known key twice is ambiguous (which one would another
		 * reader take?), so it is malformed. */
		if (!ok || (seen & bit) != 0)
			return -1;
		seen |= bit;
	}
	if ((seen & (SEEN_V | SEEN_DATA)) != (SEEN_V | SEEN_DATA))
		return -1;
	*out = e;
	return 0;
}

static int
pack_key(msgpack_packer *pk, const char *k, size_t len)
{
	return msgpack_pack_str_with_body(pk, k, len);
}

int
wspenv_encode(msgpack_sbuffer *out, const struct wspenv *e)
{
	msgpack_packer pk;
	size_t start = out->size;
	size_t n = 2;
	int rc;

	if (e->data.len > ENV_DATA_MAX || e->from.len > ENV_ID_MAX ||
	    e->id.len > ENV_ID_MAX || (e->data.p == NULL && e->data.len != 0) ||
	    (e->from.p == NULL && e->from.len != 0) ||
	    (e->id.p == NULL && e->id.len != 0) ||
	    !utf8_valid(e->from.p, e->from.len) ||
	    !utf8_valid(e->id.p, e->id.len))
		return -1;
	n += e->from.p != NULL;
	n += e->id.p != NULL;
	n += e->ts != 0;
	n += e->json;
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	rc = msgpack_sbuffer_write(out, WSPENV_MAGIC, WSPENV_MAGIC_LEN);
	rc = rc != 0 ? rc : msgpack_pack_map(&pk, n);
	rc = rc != 0 ? rc : pack_key(&pk, "v", 1);
	rc = rc != 0 ? rc : msgpack_pack_uint64(&pk, WSPENV_VERSION);
	rc = rc != 0 ? rc : pack_key(&pk, "data", 4);
	rc = rc != 0 ? rc
		     : msgpack_pack_bin_with_body(&pk, e->data.p, e->data.len);
	if (e->from.p != NULL) {
		rc = rc != 0 ? rc : pack_key(&pk, "from", 4);
		rc = rc != 0 ? rc
			     : msgpack_pack_str_with_body(
				   &pk, e->from.p, e->from.len);
	}
	if (e->id.p != NULL) {
		rc = rc != 0 ? rc : pack_key(&pk, "id", 2);
		rc = rc != 0
			 ? rc
			 : msgpack_pack_str_with_body(&pk, e->id.p, e->id.len);
	}
	if (e->ts != 0) {
		rc = rc != 0 ? rc : pack_key(&pk, "ts", 2);
		rc = rc != 0 ? rc : msgpack_pack_uint64(&pk, e->ts);
	}
	if (e->json) {
		rc = rc != 0 ? rc : pack_key(&pk, "json", 4);
		rc = rc != 0 ? rc : msgpack_pack_true(&pk);
	}
	if (rc != 0) {
		out->size = start;
		return -1;
	}
	return 0;
}
