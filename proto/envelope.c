/*
 * envelope.c - msgpack encoding and decoding of the node-internal
 * envelopes: bus (bridge -> workers) and upstream (worker -> bridge).
 * Encoders append to the caller's sbuffer and never leave half an envelope.
 * Decoders first walk each envelope with env_scan() (bounds, limits, no
 * allocation), then let msgpack unpack exactly that many bytes into the
 * reader's zone and check every field against proto/PROTOCOL.md.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "envelope.h"

_Static_assert(ENV_ADDR_MAX == ADDR_MAX, "ENV_ADDR_MAX follows addr.h");
_Static_assert(ENV_ID_MAX == ADDR_ID_MAX, "ENV_ID_MAX follows addr.h");

#define CASE(x) \
	case x: \
		return #x

/* ---- encoding ---- */

/* One envelope being appended; the first failure sticks and makes
 * enc_end() cut the buffer back to where the envelope started. */
struct enc {
	msgpack_packer pk;
	msgpack_sbuffer *sb;
	size_t start;
	int rc;
};

static void
enc_init(struct enc *e, msgpack_sbuffer *sb)
{
	msgpack_packer_init(&e->pk, sb, msgpack_sbuffer_write);
	e->sb = sb;
	e->start = sb->size;
	e->rc = 0;
}

static int
enc_end(struct enc *e)
{
	if (e->rc != 0) {
		e->sb->size = e->start;
		return -1;
	}
	return 0;
}

static void
enc_array(struct enc *e, size_t n)
{
	if (e->rc == 0)
		e->rc = msgpack_pack_array(&e->pk, n);
}

static void
enc_map(struct enc *e, size_t n)
{
	if (e->rc == 0)
		e->rc = msgpack_pack_map(&e->pk, n);
}

static void
enc_u64(struct enc *e, uint64_t v)
{
	if (e->rc == 0)
		e->rc = msgpack_pack_uint64(&e->pk, v);
}

static void
enc_bool(struct enc *e, bool v)
{
	if (e->rc == 0)
		e->rc =
		    v ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk);
}

/* The envelope header: [version, kind, ... (n elements in all). */
static void
enc_head(struct enc *e, size_t n, unsigned kind)
{
	enc_array(e, n);
	enc_u64(e, ENV_VERSION);
	enc_u64(e, kind);
}

static void
enc_str(struct enc *e, const struct env_str *s, uint32_t max, bool optional)
{
	if (e->rc != 0)
		return;
	if (s->len > max || (s->p == NULL && s->len != 0)) {
		e->rc = -1;
		return;
	}
	if (s->p == NULL && optional)
		e->rc = msgpack_pack_nil(&e->pk);
	else
		e->rc = msgpack_pack_str_with_body(&e->pk, s->p, s->len);
}

static void
enc_data(struct enc *e, const struct env_str *s)
{
	if (e->rc != 0)
		return;
	if (s->len > ENV_DATA_MAX || (s->p == NULL && s->len != 0)) {
		e->rc = -1;
		return;
	}
	e->rc = msgpack_pack_bin_with_body(&e->pk, s->p, s->len);
}

/* {name: value, ...}; items may be NULL only when n is 0. */
static void
enc_counters(struct enc *e, uint32_t n, const struct up_counter *items)
{
	if (n > ENV_ARRAY_MAX || (items == NULL && n != 0)) {
		e->rc = -1;
		return;
	}
	enc_map(e, n);
	for (uint32_t i = 0; i < n && e->rc == 0; i++) {
		enc_str(e, &items[i].name, ENV_ID_MAX, false);
		enc_u64(e, items[i].value);
	}
}

static void
enc_worker(
    struct enc *e, size_t n, enum up_kind kind, const struct up_worker *w)
{
	enc_head(e, n, kind);
	enc_u64(e, w->slot);
	enc_u64(e, w->gen);
	enc_u64(e, w->pid);
}

int
bus_encode_msg(msgpack_sbuffer *out, const struct bus_msg *m)
{
	struct enc e;

	if ((unsigned)m->cls > PAYLOAD_BINARY)
		return -1;
	enc_init(&e, out);
	enc_head(&e, 10, BUS_MSG);
	enc_u64(&e, m->epoch);
	enc_u64(&e, m->seq);
	enc_str(&e, &m->to, ENV_ADDR_MAX, false);
	enc_u64(&e, (unsigned)m->cls);
	enc_data(&e, &m->data);
	enc_str(&e, &m->from, ENV_ID_MAX, true);
	enc_str(&e, &m->id, ENV_ID_MAX, true);
	enc_u64(&e, m->ts);
	return enc_end(&e);
}

int
bus_encode_heartbeat(msgpack_sbuffer *out, const struct bus_heartbeat *h)
{
	struct enc e;

	enc_init(&e, out);
	enc_head(&e, 6, BUS_HEARTBEAT);
	enc_u64(&e, h->epoch);
	enc_u64(&e, h->last_seq);
	enc_str(&e, &h->node, ENV_ID_MAX, false);
	enc_bool(&e, h->redis_up);
	return enc_end(&e);
}

int
bus_encode_ack(msgpack_sbuffer *out, const struct bus_ack *a)
{
	struct enc e;

	if ((unsigned)a->status > ACK_FAILED)
		return -1;
	enc_init(&e, out);
	enc_head(&e, 8, BUS_ACK);
	enc_u64(&e, a->epoch);
	enc_u64(&e, a->slot);
	enc_u64(&e, a->gen);
	enc_u64(&e, a->req_id);
	enc_u64(&e, (unsigned)a->status);
	enc_str(&e, &a->node, ENV_ID_MAX, false);
	return enc_end(&e);
}

static bool
sid_ok(const struct env_str *id)
{
	struct env_sid sid;

	return id->p != NULL && env_sid_parse(id->p, id->len, &sid) == 0;
}

int
bus_encode_range(msgpack_sbuffer *out, const struct bus_range *r)
{
	struct enc e;

	if ((unsigned)r->status > RANGE_BAD_REQUEST || r->n > ENV_ARRAY_MAX ||
	    (r->entries == NULL && r->n != 0))
		return -1;
	for (uint32_t i = 0; i < r->n; i++)
		if ((unsigned)r->entries[i].cls > PAYLOAD_BINARY ||
		    !sid_ok(&r->entries[i].id))
			return -1;
	enc_init(&e, out);
	enc_head(&e, 12, BUS_RANGE);
	enc_u64(&e, r->epoch);
	enc_u64(&e, r->slot);
	enc_u64(&e, r->gen);
	enc_u64(&e, r->req_id);
	enc_u64(&e, (unsigned)r->status);
	enc_u64(&e, r->chunk);
	enc_bool(&e, r->last);
	enc_bool(&e, r->recovered);
	enc_str(&e, &r->to, ENV_ADDR_MAX, false);
	enc_array(&e, r->n);
	for (uint32_t i = 0; i < r->n && e.rc == 0; i++) {
		const struct bus_range_entry *x = &r->entries[i];

		enc_array(&e, 5);
		enc_str(&e, &x->id, ENV_SID_MAX, false);
		enc_u64(&e, (unsigned)x->cls);
		enc_data(&e, &x->data);
		enc_str(&e, &x->from, ENV_ID_MAX, true);
		enc_u64(&e, x->ts);
	}
	return enc_end(&e);
}

uint32_t
bus_range_chunk(const struct bus_range_entry *e, uint32_t n, size_t max_bytes)
{
	size_t total = 64; /* the envelope's head */
	uint32_t i;

	for (i = 0; i < n; i++) {
		/* array, id, cls, data and from headers, ts: < 40 bytes */
		size_t one =
		    (size_t)e[i].id.len + e[i].data.len + e[i].from.len + 40;

		if (i > 0 && total + one > max_bytes)
			break;
		total += one;
	}
	return i;
}

int
up_encode_interest(msgpack_sbuffer *out, const struct up_worker *w,
    enum up_kind kind, const struct up_interest *i)
{
	struct enc e;

	enc_init(&e, out);
	if (kind == UP_INTEREST_ADD) {
		enc_worker(&e, 7, kind, w);
		enc_u64(&e, i->req_id);
	} else if (kind == UP_INTEREST_DEL) {
		enc_worker(&e, 6, kind, w);
	} else {
		return -1;
	}
	enc_str(&e, &i->addr, ENV_ADDR_MAX, false);
	return enc_end(&e);
}

int
up_encode_sync(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_sync *s)
{
	struct enc e;

	if (s->n_addrs > ENV_ARRAY_MAX || (s->addrs == NULL && s->n_addrs != 0))
		return -1;
	enc_init(&e, out);
	enc_worker(&e, 8, UP_INTEREST_SYNC, w);
	enc_u64(&e, s->epoch);
	enc_array(&e, s->n_addrs);
	for (uint32_t i = 0; i < s->n_addrs && e.rc == 0; i++)
		enc_str(&e, &s->addrs[i], ENV_ADDR_MAX, false);
	enc_counters(&e, s->n_users, s->users);
	return enc_end(&e);
}

int
up_encode_publish(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_publish *p)
{
	struct enc e;

	enc_init(&e, out);
	enc_worker(&e, 9, UP_PUBLISH, w);
	enc_str(&e, &p->to, ENV_ADDR_MAX, false);
	enc_str(&e, &p->from, ENV_ID_MAX, true);
	enc_data(&e, &p->data);
	enc_str(&e, &p->id, ENV_ID_MAX, true);
	return enc_end(&e);
}

int
up_encode_send(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_send *s)
{
	struct enc e;

	enc_init(&e, out);
	enc_worker(&e, 8, UP_SEND, w);
	enc_str(&e, &s->user, ENV_ID_MAX, false);
	enc_str(&e, &s->conn, ENV_ID_MAX, false);
	enc_data(&e, &s->data);
	return enc_end(&e);
}

int
up_encode_event(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_event *ev)
{
	struct enc e;

	enc_init(&e, out);
	enc_worker(&e, 9, UP_EVENT, w);
	enc_str(&e, &ev->type, ENV_ID_MAX, false);
	enc_str(&e, &ev->user, ENV_ID_MAX, false);
	enc_str(&e, &ev->conn, ENV_ID_MAX, false);
	enc_str(&e, &ev->reason, ENV_ID_MAX, true);
	return enc_end(&e);
}

int
up_encode_counters(msgpack_sbuffer *out, const struct up_worker *w,
    const struct up_counters *c)
{
	struct enc e;

	enc_init(&e, out);
	enc_worker(&e, 6, UP_COUNTERS, w);
	enc_counters(&e, c->n, c->items);
	return enc_end(&e);
}

int
up_encode_bye(msgpack_sbuffer *out, const struct up_worker *w)
{
	struct enc e;

	enc_init(&e, out);
	enc_worker(&e, 5, UP_BYE, w);
	return enc_end(&e);
}

int
up_encode_range(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_range *r)
{
	struct enc e;

	enc_init(&e, out);
	enc_worker(&e, 9, UP_RANGE_REQ, w);
	enc_u64(&e, r->req_id);
	enc_str(&e, &r->addr, ENV_ADDR_MAX, false);
	enc_str(&e, &r->since, ENV_ID_MAX, true);
	enc_u64(&e, r->limit);
	return enc_end(&e);
}

/* ---- scanning ---- */

static uint64_t
load_be(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

int
env_scan(const void *buf, size_t len, size_t off, size_t *end)
{
	const unsigned char *p = buf;
	uint32_t
	    left[ENV_DEPTH_MAX]; /* elements still due per open container */
	unsigned depth = 0;
	uint64_t objects = 0;

	for (;;) {
		unsigned char b;
		unsigned lenw = 0;  /* width of the length or count field */
		uint64_t body = 0;  /* bytes after it */
		uint64_t extra = 0; /* the type byte of an ext */
		uint64_t items = 0; /* msgpack objects a container holds */
		int cont = 0;       /* 1 array, 2 map */

		if (off >= len)
			return ENV_TRUNCATED;
		b = p[off++];
		if (b <= 0x7f || b >= 0xe0) {
			/* fixint */
		} else if (b <= 0x8f) {
			cont = 2;
			items = b & 0x0f;
		} else if (b <= 0x9f) {
			cont = 1;
			items = b & 0x0f;
		} else if (b <= 0xbf) {
			body = b & 0x1f;
		} else {
			switch (b) {
			case 0xc0: /* nil, false, true */
			case 0xc2:
			case 0xc3:
				break;
			case 0xc4: /* bin, str */
			case 0xd9:
				lenw = 1;
				break;
			case 0xc5:
			case 0xda:
				lenw = 2;
				break;
			case 0xc6:
			case 0xdb:
				lenw = 4;
				break;
			case 0xc7: /* ext */
			case 0xc8:
			case 0xc9:
				lenw = 1u << (b - 0xc7);
				extra = 1;
				break;
			case 0xca: /* float 32, 64 */
				body = 4;
				break;
			case 0xcb:
				body = 8;
				break;
			case 0xcc: /* uint, int 8..64 */
			case 0xcd:
			case 0xce:
			case 0xcf:
				body = 1u << (b - 0xcc);
				break;
			case 0xd0:
			case 0xd1:
			case 0xd2:
			case 0xd3:
				body = 1u << (b - 0xd0);
				break;
			case 0xd4: /* fixext 1..16 */
			case 0xd5:
			case 0xd6:
			case 0xd7:
			case 0xd8:
				body = (1u << (b - 0xd4)) + 1;
				break;
			case 0xdc: /* array 16, 32 */
			case 0xdd:
				cont = 1;
				lenw = b == 0xdc ? 2 : 4;
				break;
			case 0xde: /* map 16, 32 */
			case 0xdf:
				cont = 2;
				lenw = b == 0xde ? 2 : 4;
				break;
			default: /* 0xc1: never used */
				return ENV_MALFORMED;
			}
		}
		if (lenw != 0) {
			uint64_t n;

			if (len - off < lenw)
				return ENV_TRUNCATED;
			n = load_be(p + off, lenw);
			off += lenw;
			if (cont != 0)
				items = n;
			else
				body = n + extra;
		}
		if (body > len - off)
			return ENV_TRUNCATED;
		off += body;
		if (cont != 0) {
			if (items > ENV_ARRAY_MAX)
				return ENV_MALFORMED;
			if (cont == 2)
				items *= 2;
			objects += items;
			if (objects > ENV_OBJECTS_MAX)
				return ENV_MALFORMED;
			/* Every element takes at least one byte. */
			if (items > len - off)
				return ENV_TRUNCATED;
			if (items > 0) {
				if (depth == ENV_DEPTH_MAX)
					return ENV_MALFORMED;
				left[depth++] = (uint32_t)items;
				continue;
			}
		}
		/* An object is complete: close the containers it completes. */
		for (;;) {
			if (depth == 0) {
				*end = off;
				return ENV_OK;
			}
			if (--left[depth - 1] > 0)
				break;
			depth--;
		}
	}
}

/* ---- decoding ---- */

void
env_reader_init(struct env_reader *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
	r->zone_ok = msgpack_zone_init(&r->zone, 1024);
}

void
env_reader_reset(struct env_reader *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->off = 0;
	if (r->zone_ok)
		msgpack_zone_clear(&r->zone);
}

void
env_reader_fini(struct env_reader *r)
{
	if (r->zone_ok)
		msgpack_zone_destroy(&r->zone);
	r->zone_ok = false;
	r->buf = NULL;
	r->len = r->off = 0;
}

/* Stops the reader: the rest of the buffer is skipped. */
static int
reader_stop(struct env_reader *r, int err)
{
	r->off = r->len;
	return err;
}

/*
 * Unpacks the next envelope and checks its [version, kind] head. Returns
 * ENV_OK with the array's elements (at least 2) and the kind, or what
 * bus/up_reader_next() must return.
 */
static int
reader_open(
    struct env_reader *r, const msgpack_object **f, uint32_t *n, uint64_t *kind)
{
	msgpack_object obj;
	msgpack_unpack_return ur;
	size_t end, off;
	int rc;

	if (r->off >= r->len)
		return ENV_END;
	if (!r->zone_ok)
		return reader_stop(r, ENV_NOMEM);
	rc = env_scan(r->buf, r->len, r->off, &end);
	if (rc != ENV_OK)
		return reader_stop(r, rc);
	msgpack_zone_clear(&r->zone);
	off = r->off;
	ur = msgpack_unpack(r->buf, end, &off, &r->zone, &obj);
	if (ur != MSGPACK_UNPACK_SUCCESS || off != end)
		return reader_stop(r, ur == MSGPACK_UNPACK_NOMEM_ERROR
					  ? ENV_NOMEM
					  : ENV_MALFORMED);
	r->off = end;
	if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size < 1 ||
	    obj.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return reader_stop(r, ENV_MALFORMED);
	if (obj.via.array.ptr[0].via.u64 != ENV_VERSION)
		return ENV_VERSION_UNKNOWN;
	if (obj.via.array.size < 2 ||
	    obj.via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return reader_stop(r, ENV_MALFORMED);
	*f = obj.via.array.ptr;
	*n = obj.via.array.size;
	*kind = obj.via.array.ptr[1].via.u64;
	return ENV_OK;
}

static bool
dec_u64(const msgpack_object *o, uint64_t *v)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return false;
	*v = o->via.u64;
	return true;
}

static bool
dec_u32(const msgpack_object *o, uint32_t *v)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.u64 > UINT32_MAX)
		return false;
	*v = (uint32_t)o->via.u64;
	return true;
}

/* An optional integer: nil reads as 0. */
static bool
dec_ou64(const msgpack_object *o, uint64_t *v)
{
	if (o->type == MSGPACK_OBJECT_NIL) {
		*v = 0;
		return true;
	}
	return dec_u64(o, v);
}

/* A required str. msgpack leaves ptr NULL or stale for an empty one, so
 * that gets a static "" instead. */
static bool
dec_str(const msgpack_object *o, uint32_t max, struct env_str *s)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
		return false;
	s->p = o->via.str.size != 0 ? o->via.str.ptr : "";
	s->len = o->via.str.size;
	return true;
}

/* An optional str: nil reads as { NULL, 0 }. */
static bool
dec_ostr(const msgpack_object *o, uint32_t max, struct env_str *s)
{
	if (o->type == MSGPACK_OBJECT_NIL) {
		s->p = NULL;
		s->len = 0;
		return true;
	}
	return dec_str(o, max, s);
}

/* A payload: bin, or str from a lenient peer. */
static bool
dec_data(const msgpack_object *o, struct env_str *s)
{
	if (o->type == MSGPACK_OBJECT_STR)
		return dec_str(o, ENV_DATA_MAX, s);
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > ENV_DATA_MAX)
		return false;
	s->p = o->via.bin.size != 0 ? o->via.bin.ptr : "";
	s->len = o->via.bin.size;
	return true;
}

static bool
dec_bool(const msgpack_object *o, bool *v)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return false;
	*v = o->via.boolean;
	return true;
}

/* {str: u64, ...} into an array allocated in the reader's zone. The zone
 * failing is reported through *nomem. */
static bool
dec_counters(struct env_reader *r, const msgpack_object *o, uint32_t *n,
    const struct up_counter **items, bool *nomem)
{
	struct up_counter *a = NULL;
	uint32_t size;

	if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > ENV_ARRAY_MAX)
		return false;
	size = o->via.map.size;
	if (size != 0) {
		a = msgpack_zone_malloc(&r->zone, size * sizeof(*a));
		if (a == NULL) {
			*nomem = true;
			return false;
		}
	}
	for (uint32_t i = 0; i < size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];

		if (!dec_str(&kv->key, ENV_ID_MAX, &a[i].name) ||
		    !dec_u64(&kv->val, &a[i].value))
			return false;
	}
	*n = size;
	*items = a;
	return true;
}

static bool
dec_addrs(struct env_reader *r, const msgpack_object *o, struct up_sync *s,
    bool *nomem)
{
	struct env_str *a = NULL;
	uint32_t size;

	if (o->type != MSGPACK_OBJECT_ARRAY ||
	    o->via.array.size > ENV_ARRAY_MAX)
		return false;
	size = o->via.array.size;
	if (size != 0) {
		a = msgpack_zone_malloc(&r->zone, size * sizeof(*a));
		if (a == NULL) {
			*nomem = true;
			return false;
		}
	}
	for (uint32_t i = 0; i < size; i++)
		if (!dec_str(&o->via.array.ptr[i], ENV_ADDR_MAX, &a[i]))
			return false;
	s->n_addrs = size;
	s->addrs = a;
	return true;
}

/* The entries of a RANGE, in the reader's zone. */
static bool
dec_range_entries(struct env_reader *r, const msgpack_object *o,
    struct bus_range *g, bool *nomem)
{
	struct bus_range_entry *a = NULL;
	uint32_t size;

	if (o->type != MSGPACK_OBJECT_ARRAY ||
	    o->via.array.size > ENV_ARRAY_MAX)
		return false;
	size = o->via.array.size;
	if (size != 0) {
		a = msgpack_zone_malloc(&r->zone, size * sizeof(*a));
		if (a == NULL) {
			*nomem = true;
			return false;
		}
	}
	for (uint32_t i = 0; i < size; i++) {
		const msgpack_object *x = &o->via.array.ptr[i];
		const msgpack_object *f;
		uint64_t cls;

		if (x->type != MSGPACK_OBJECT_ARRAY || x->via.array.size < 5)
			return false;
		f = x->via.array.ptr;
		if (!dec_str(&f[0], ENV_SID_MAX, &a[i].id) ||
		    !sid_ok(&a[i].id) || !dec_u64(&f[1], &cls) ||
		    cls > PAYLOAD_BINARY || !dec_data(&f[2], &a[i].data) ||
		    !dec_ostr(&f[3], ENV_ID_MAX, &a[i].from) ||
		    !dec_ou64(&f[4], &a[i].ts))
			return false;
		a[i].cls = (enum payload_class)cls;
	}
	g->n = size;
	g->entries = a;
	return true;
}

int
bus_reader_next(struct env_reader *r, struct bus_env *out)
{
	const msgpack_object *f;
	uint32_t n;
	uint64_t kind, v;
	bool ok, nomem = false;
	int rc;

	rc = reader_open(r, &f, &n, &kind);
	if (rc != ENV_OK)
		return rc;
	switch (kind) {
	case BUS_MSG: {
		struct bus_msg *m = &out->u.msg;

		ok = n >= 10 && dec_u64(&f[2], &m->epoch) &&
		     dec_u64(&f[3], &m->seq) &&
		     dec_str(&f[4], ENV_ADDR_MAX, &m->to) &&
		     dec_u64(&f[5], &v) && v <= PAYLOAD_BINARY &&
		     dec_data(&f[6], &m->data) &&
		     dec_ostr(&f[7], ENV_ID_MAX, &m->from) &&
		     dec_ostr(&f[8], ENV_ID_MAX, &m->id) &&
		     dec_ou64(&f[9], &m->ts);
		if (ok)
			m->cls = (enum payload_class)v;
		break;
	}
	case BUS_HEARTBEAT: {
		struct bus_heartbeat *h = &out->u.hb;

		ok = n >= 6 && dec_u64(&f[2], &h->epoch) &&
		     dec_u64(&f[3], &h->last_seq) &&
		     dec_str(&f[4], ENV_ID_MAX, &h->node) &&
		     dec_bool(&f[5], &h->redis_up);
		break;
	}
	case BUS_ACK: {
		struct bus_ack *a = &out->u.ack;

		ok = n >= 8 && dec_u64(&f[2], &a->epoch) &&
		     dec_u32(&f[3], &a->slot) && dec_u32(&f[4], &a->gen) &&
		     dec_u64(&f[5], &a->req_id) && dec_u64(&f[6], &v) &&
		     v <= ACK_FAILED && dec_str(&f[7], ENV_ID_MAX, &a->node);
		if (ok)
			a->status = (enum ack_status)v;
		break;
	}
	case BUS_RANGE: {
		struct bus_range *g = &out->u.range;

		ok = n >= 12 && dec_u64(&f[2], &g->epoch) &&
		     dec_u32(&f[3], &g->slot) && dec_u32(&f[4], &g->gen) &&
		     dec_u64(&f[5], &g->req_id) && dec_u64(&f[6], &v) &&
		     v <= RANGE_BAD_REQUEST && dec_u32(&f[7], &g->chunk) &&
		     dec_bool(&f[8], &g->last) &&
		     dec_bool(&f[9], &g->recovered) &&
		     dec_str(&f[10], ENV_ADDR_MAX, &g->to) &&
		     dec_range_entries(r, &f[11], g, &nomem);
		if (ok)
			g->status = (enum range_status)v;
		break;
	}
	default:
		return ENV_KIND_UNKNOWN;
	}
	if (!ok)
		return reader_stop(r, nomem ? ENV_NOMEM : ENV_MALFORMED);
	out->kind = (enum bus_kind)kind;
	return ENV_OK;
}

int
up_reader_next(struct env_reader *r, struct up_env *out)
{
	const msgpack_object *f;
	uint32_t n;
	uint64_t kind;
	bool ok, nomem = false;
	int rc;

	rc = reader_open(r, &f, &n, &kind);
	if (rc != ENV_OK)
		return rc;
	if (kind < UP_INTEREST_ADD || kind > UP_RANGE_REQ)
		return ENV_KIND_UNKNOWN;
	if (n < 5 || !dec_u32(&f[2], &out->w.slot) ||
	    !dec_u32(&f[3], &out->w.gen) || !dec_u32(&f[4], &out->w.pid))
		return reader_stop(r, ENV_MALFORMED);
	f += 5;
	n -= 5;
	switch (kind) {
	case UP_INTEREST_ADD:
		ok = n >= 2 && dec_u64(&f[0], &out->u.interest.req_id) &&
		     dec_str(&f[1], ENV_ADDR_MAX, &out->u.interest.addr);
		break;
	case UP_INTEREST_DEL:
		out->u.interest.req_id = 0;
		ok = n >= 1 &&
		     dec_str(&f[0], ENV_ADDR_MAX, &out->u.interest.addr);
		break;
	case UP_INTEREST_SYNC: {
		struct up_sync *s = &out->u.sync;

		ok = n >= 3 && dec_u64(&f[0], &s->epoch) &&
		     dec_addrs(r, &f[1], s, &nomem) &&
		     dec_counters(r, &f[2], &s->n_users, &s->users, &nomem);
		break;
	}
	case UP_PUBLISH: {
		struct up_publish *p = &out->u.publish;

		ok = n >= 4 && dec_str(&f[0], ENV_ADDR_MAX, &p->to) &&
		     dec_ostr(&f[1], ENV_ID_MAX, &p->from) &&
		     dec_data(&f[2], &p->data) &&
		     dec_ostr(&f[3], ENV_ID_MAX, &p->id);
		break;
	}
	case UP_SEND: {
		struct up_send *s = &out->u.send;

		ok = n >= 3 && dec_str(&f[0], ENV_ID_MAX, &s->user) &&
		     dec_str(&f[1], ENV_ID_MAX, &s->conn) &&
		     dec_data(&f[2], &s->data);
		break;
	}
	case UP_EVENT: {
		struct up_event *e = &out->u.event;

		ok = n >= 4 && dec_str(&f[0], ENV_ID_MAX, &e->type) &&
		     dec_str(&f[1], ENV_ID_MAX, &e->user) &&
		     dec_str(&f[2], ENV_ID_MAX, &e->conn) &&
		     dec_ostr(&f[3], ENV_ID_MAX, &e->reason);
		break;
	}
	case UP_COUNTERS:
		ok = n >= 1 && dec_counters(r, &f[0], &out->u.counters.n,
				   &out->u.counters.items, &nomem);
		break;
	case UP_RANGE_REQ: {
		struct up_range *g = &out->u.range;

		ok = n >= 4 && dec_u64(&f[0], &g->req_id) &&
		     dec_str(&f[1], ENV_ADDR_MAX, &g->addr) &&
		     dec_ostr(&f[2], ENV_ID_MAX, &g->since) &&
		     dec_u32(&f[3], &g->limit);
		break;
	}
	default: /* UP_BYE */
		ok = true;
		break;
	}
	if (!ok)
		return reader_stop(r, nomem ? ENV_NOMEM : ENV_MALFORMED);
	out->kind = (enum up_kind)kind;
	return ENV_OK;
}

/* ---- stream ids ---- */

static int
sid_part(const char *s, size_t len, uint64_t *v)
{
	uint64_t n = 0;

	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*v = n;
	return 0;
}

int
env_sid_parse(const char *s, size_t len, struct env_sid *out)
{
	const char *dash;
	struct env_sid id = {0, 0};

	if (s == NULL || len > ENV_SID_MAX)
		return -1;
	dash = memchr(s, '-', len);
	if (dash == NULL) {
		if (sid_part(s, len, &id.ms) != 0)
			return -1;
	} else if (sid_part(s, (size_t)(dash - s), &id.ms) != 0 ||
		   sid_part(dash + 1, len - (size_t)(dash - s) - 1, &id.seq) !=
		       0) {
		return -1;
	}
	*out = id;
	return 0;
}

int
env_sid_cmp(const struct env_sid *a, const struct env_sid *b)
{
	if (a->ms != b->ms)
		return a->ms < b->ms ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

/* ---- names ---- */

const char *
env_strerror(int err)
{
	switch (err) {
	case ENV_OK:
		return "ok";
	case ENV_END:
		return "end of message";
	case ENV_TRUNCATED:
		return "truncated envelope";
	case ENV_MALFORMED:
		return "malformed envelope";
	case ENV_VERSION_UNKNOWN:
		return "unknown envelope version";
	case ENV_KIND_UNKNOWN:
		return "unknown envelope kind";
	case ENV_NOMEM:
		return "out of memory decoding envelope";
	}
	return "unknown envelope error";
}

const char *
bus_kind_str(enum bus_kind k)
{
	if (k == BUS_RANGE)
		return "BUS_RANGE";
	switch (k) {
		CASE(BUS_MSG);
		CASE(BUS_HEARTBEAT);
		CASE(BUS_ACK);
	}
	return "BUS_UNKNOWN";
}

const char *
up_kind_str(enum up_kind k)
{
	if (k == UP_RANGE_REQ)
		return "UP_RANGE_REQ";
	switch (k) {
		CASE(UP_INTEREST_ADD);
		CASE(UP_INTEREST_DEL);
		CASE(UP_INTEREST_SYNC);
		CASE(UP_PUBLISH);
		CASE(UP_SEND);
		CASE(UP_EVENT);
		CASE(UP_COUNTERS);
		CASE(UP_BYE);
	}
	return "UP_UNKNOWN";
}

const char *
payload_class_str(enum payload_class c)
{
	switch (c) {
		CASE(PAYLOAD_JSON);
		CASE(PAYLOAD_TEXT);
		CASE(PAYLOAD_BINARY);
	}
	return "PAYLOAD_UNKNOWN";
}

const char *
range_status_str(enum range_status s)
{
	switch (s) {
		CASE(RANGE_OK);
		CASE(RANGE_FAILED);
		CASE(RANGE_UNAVAILABLE);
		CASE(RANGE_BAD_REQUEST);
	}
	return "RANGE_UNKNOWN";
}

int
bus_slot_url(const char *bus_url, uint32_t slot, char *buf, size_t len)
{
	static const char tail[] = "bus.ipc";
	size_t n = strlen(bus_url), tl = sizeof(tail) - 1;
	int w;

	if (n < tl || strcmp(bus_url + n - tl, tail) != 0)
		return -1;
	w = snprintf(
	    buf, len, "%.*sbus%" PRIu32 ".ipc", (int)(n - tl), bus_url, slot);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}
