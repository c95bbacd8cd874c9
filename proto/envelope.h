/*
 * envelope.h - the node-internal wire formats, msgpack over nng ipc.
 *
 * Bus (bridge -> workers, nng PUB/SUB, one stream per slot): MSG, HEARTBEAT and
 * ACK envelopes. Upstream (worker -> bridge, nng PUSH/PULL on up.ipc):
 * interest changes, client publishes, inbound sends, connection events and
 * counters, each stamped with the worker's (slot, generation).
 *
 * Every envelope is one msgpack array whose first two elements are the
 * format version and the kind; one nng message holds one or more envelopes
 * back to back (the bridge batches under load). Decoders accept extra
 * trailing array elements (a newer minor peer) and reject anything else
 * that does not match the schema. Decoded strings and payloads point into
 * the input buffer, which must outlive the decoded struct. The schema and
 * the versioning rule are in proto/PROTOCOL.md.
 */
#ifndef WSP_ENVELOPE_H
#define WSP_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define ENV_VERSION 1

/*
 * Field limits, enforced by the encoders (they fail) and the decoders
 * (ENV_MALFORMED): addresses ("to", "addr") and ids (from, id, user, conn,
 * node, type, reason, counter and sync user names) in bytes, payloads in
 * bytes, and entries of one msgpack array or map (sync and counters; any
 * container inside an envelope, trailing extras included). A reader also
 * refuses containers nested deeper than ENV_DEPTH_MAX and envelopes of more
 * than ENV_OBJECTS_MAX msgpack objects, so that a few hostile bytes cannot
 * make msgpack allocate much.
 */
#define ENV_ADDR_MAX 264 /* ADDR_MAX of addr.h */
#define ENV_ID_MAX 256   /* ADDR_ID_MAX of addr.h */
#define ENV_DATA_MAX (16u * 1024 * 1024)
#define ENV_ARRAY_MAX 1000000u
#define ENV_DEPTH_MAX 16
#define ENV_OBJECTS_MAX 3000064u

/* A borrowed byte string (not NUL-terminated). p is NULL when absent. */
struct env_str {
	const char *p;
	uint32_t len;
};

/*
 * A Redis stream id, the message id of history: "<ms>-<seq>", or "<ms>"
 * alone (seq 0), each part 1..20 decimal digits within 64 bits. "0" is
 * the id before every message. Ids travel as strings (two 64-bit numbers
 * do not fit a JSON number); this is how the bridge checks a client's
 * `since` and how a worker orders replayed and live messages.
 */
struct env_sid {
	uint64_t ms, seq;
};

#define ENV_SID_MAX 41 /* 20 + 1 + 20 */

/* Returns 0 and fills *out, or -1 if s[0..len) is not a stream id. */
int env_sid_parse(const char *s, size_t len, struct env_sid *out);
/* <0, 0, >0 as a is before, equal to, after b. */
int env_sid_cmp(const struct env_sid *a, const struct env_sid *b);

/* How the bridge classified a payload, once, for every worker. */
enum payload_class {
	PAYLOAD_JSON = 0,   /* a JSON object or array: embedded as is */
	PAYLOAD_TEXT = 1,   /* other UTF-8: sent as a JSON string */
	PAYLOAD_BINARY = 2, /* not UTF-8: sent as data_b64 */
};

/* ---- bus: bridge -> workers ---- */

enum bus_kind {
	BUS_MSG = 1,
	BUS_HEARTBEAT = 2,
	BUS_ACK = 3,
};
/* History's answer (below). Not an enumerator yet: the worker's bus code
 * switches over bus_kind without a default, so the enumerator comes
 * together with its case when recovery is wired in. */
#define BUS_RANGE ((enum bus_kind)4)

/* One message for the address `to` ("user:42", "channel:news", "all"). */
struct bus_msg {
	uint64_t epoch; /* the bridge's epoch: random per bridge start */
	uint64_t seq;   /* 1, 2, 3 ... per MSG within an epoch */
	struct env_str to;
	enum payload_class cls;
	struct env_str data;
	struct env_str from; /* optional: sender's authenticated id */
	struct env_str id;   /* optional: message id */
	uint64_t ts;         /* optional: ms since the epoch, 0 if absent */
};

/* Sent every bridge.heartbeat_ms: lets an idle worker see a new bridge
 * (epoch change) or a lost tail (last_seq beyond what it received). */
struct bus_heartbeat {
	uint64_t epoch;
	uint64_t last_seq;   /* seq of the last MSG published, 0 if none */
	struct env_str node; /* the node id (resolves node.id = auto) */
	bool redis_up;       /* the subscriber link is connected */
};

enum ack_status {
	ACK_OK = 0,     /* Redis confirmed the subscription */
	ACK_FAILED = 1, /* it cannot be made (invalid address, Redis error) */
};

/* Addressed to one worker: its interest request req_id is in effect. */
struct bus_ack {
	uint64_t epoch;
	uint32_t slot, gen; /* the worker the ack is for */
	uint64_t req_id;
	enum ack_status status;
	struct env_str node;
};

enum range_status {
	RANGE_OK = 0,          /* entries follow (possibly none) */
	RANGE_FAILED = 1,      /* Redis refused or the link is down: retry */
	RANGE_UNAVAILABLE = 2, /* no history here (off, broker without it,
				  or the function library not loaded) */
	RANGE_BAD_REQUEST = 3, /* the address or since is not valid */
};

/* One stored message of a history range. */
struct bus_range_entry {
	struct env_str id; /* the stream id, "<ms>-<seq>" */
	enum payload_class cls;
	struct env_str data;
	struct env_str from; /* optional */
	uint64_t ts;         /* ms, 0 if unknown (the id's time part) */
};

/*
 * Addressed to one worker, like ACK: one chunk of the answer to its
 * UP_RANGE_REQ req_id. A range is sent as chunks 0, 1, ... of bounded size
 * (bus_range_chunk()), the one with `last` set closing it; every chunk
 * repeats status, recovered and to. A worker that sees a chunk out of
 * order, or no last chunk in time, treats the request as failed. RANGE
 * does not consume a MSG seq (other workers would count a gap).
 */
struct bus_range {
	uint64_t epoch;
	uint32_t slot, gen; /* the worker the answer is for */
	uint64_t req_id;
	enum range_status status;
	uint32_t chunk; /* 0, 1, ... */
	bool last;      /* no chunk follows */
	bool recovered; /* nothing after since can be missing (see up_range) */
	struct env_str to;
	uint32_t n;
	const struct bus_range_entry *entries; /* decode: in the reader's
						  zone */
};

struct bus_env {
	enum bus_kind kind;
	union {
		struct bus_msg msg;
		struct bus_heartbeat hb;
		struct bus_ack ack;
		struct bus_range range;
	} u;
};

/*
 * Encoders append one envelope to out (which may already hold others).
 * They return 0, or -1 on allocation failure, a field over its limit or an
 * out-of-range enum; on -1, out is left as it was (no half envelope).
 * An optional string with p == NULL is sent as nil; a required one as "".
 * Borrow everything for the call.
 */
int bus_encode_msg(msgpack_sbuffer *out, const struct bus_msg *m);
int bus_encode_heartbeat(msgpack_sbuffer *out, const struct bus_heartbeat *h);
int bus_encode_ack(msgpack_sbuffer *out, const struct bus_ack *a);
int bus_encode_range(msgpack_sbuffer *out, const struct bus_range *r);

/*
 * How many of the n entries from e on go into one RANGE chunk of at most
 * max_bytes (an estimate including msgpack overhead): at least 1 when n >
 * 0, so an entry bigger than max_bytes travels alone.
 */
uint32_t bus_range_chunk(
    const struct bus_range_entry *e, uint32_t n, size_t max_bytes);

/*
 * The bus stream of one worker slot: bus_url is the node's
 * "ipc://<dir>/bus.ipc" (conf_bus_url()), the result
 * "ipc://<dir>/bus<slot>.ipc" (no dot before the number: with the longest
 * runtime_dir and a 3-digit slot it still fits a unix socket path). Returns 0,
 * or -1 if bus_url does not end in "bus.ipc" or buf is too small.
 */
int bus_slot_url(const char *bus_url, uint32_t slot, char *buf, size_t len);

/* ---- upstream: worker -> bridge ---- */

enum up_kind {
	UP_INTEREST_ADD = 1,  /* start wanting an address; acked by req_id */
	UP_INTEREST_DEL = 2,  /* stop wanting it */
	UP_INTEREST_SYNC = 3, /* the worker's whole interest set, replacing */
	UP_PUBLISH = 4,       /* a client publish, to be PUBLISHed to Redis */
	UP_SEND = 5,          /* a client send: XADD <prefix>:inbound */
	UP_EVENT = 6,         /* connect / disconnect: XADD <prefix>:events */
	UP_COUNTERS = 7,      /* periodic worker counters for stats */
	UP_BYE = 8,           /* the worker is leaving; drop its interest */
};
/* Read history, answered by BUS_RANGE; an enumerator once the bridge's
 * upstream switch has its case (as BUS_RANGE). */
#define UP_RANGE_REQ ((enum up_kind)9)

/* The sender of every upstream envelope. gen is unique per fork on a node,
 * so a restarted worker in the same slot is never taken for the old one. */
struct up_worker {
	uint32_t slot; /* 1..workers */
	uint32_t gen;  /* 1, 2, ... per fork, from the master */
	uint32_t pid;
};

struct up_interest {     /* ADD and DEL */
	uint64_t req_id; /* 0 for DEL */
	struct env_str addr;
};

struct up_counter {
	struct env_str name;
	uint64_t value;
};

/* Everything the bridge must know of a worker after it lost its state: the
 * addresses the worker holds in effect and its connections per user (for
 * presence). Arrays are allocated in the reader's zone. */
struct up_sync {
	uint64_t epoch; /* the bridge epoch the worker is syncing to */
	uint32_t n_addrs;
	const struct env_str *addrs;
	uint32_t n_users;
	const struct up_counter *users; /* name = user id, value = conns */
};

struct up_publish {
	struct env_str to;   /* "user:7", "channel:news" */
	struct env_str from; /* stamped by the worker from the auth identity;
				optional (nil) */
	struct env_str data; /* the client's `data` as JSON text */
	struct env_str id;   /* optional */
};

struct up_send {
	struct env_str user, conn;
	struct env_str data; /* the client's `data` as JSON text */
};

struct up_event {
	struct env_str type; /* "connect" | "disconnect" */
	struct env_str user, conn;
	struct env_str reason; /* optional (nil), e.g. for connect */
};

/*
 * A history read for one of the worker's connections. since: a stream id,
 * or "0" (everything kept), for a recovery; absent (p NULL) for the newest
 * `limit` messages (the client's history op). The bridge caps limit at
 * history.max_recover.
 */
struct up_range {
	uint64_t req_id; /* unique per worker while outstanding */
	struct env_str addr;
	struct env_str since; /* optional */
	uint32_t limit;       /* >= 1 */
};

struct up_counters {
	uint32_t n;
	const struct up_counter *items; /* allocated in the reader's zone */
};

struct up_env {
	enum up_kind kind;
	struct up_worker w;
	union {
		struct up_interest interest;
		struct up_sync sync;
		struct up_publish publish;
		struct up_send send;
		struct up_event event;
		struct up_counters counters;
		struct up_range range;
	} u;
};

int up_encode_interest(msgpack_sbuffer *out, const struct up_worker *w,
    enum up_kind kind, const struct up_interest *i);
int up_encode_sync(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_sync *s);
int up_encode_publish(msgpack_sbuffer *out, const struct up_worker *w,
    const struct up_publish *p);
int up_encode_send(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_send *s);
int up_encode_event(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_event *e);
int up_encode_counters(msgpack_sbuffer *out, const struct up_worker *w,
    const struct up_counters *c);
int up_encode_bye(msgpack_sbuffer *out, const struct up_worker *w);
int up_encode_range(
    msgpack_sbuffer *out, const struct up_worker *w, const struct up_range *r);

/* ---- decoding: a reader walks the envelopes of one nng message ---- */

enum env_err {
	ENV_OK = 0,
	ENV_END = 1,        /* no more envelopes in the buffer */
	ENV_TRUNCATED = -1, /* the buffer ends inside an envelope */
	ENV_MALFORMED = -2, /* not msgpack, or not our schema */
	ENV_VERSION_UNKNOWN = -3,
	ENV_KIND_UNKNOWN = -4,
	ENV_NOMEM = -5, /* allocation failed; the rest is skipped */
};

const char *env_strerror(int err);

struct env_reader {
	const char *buf;
	size_t len, off;
	msgpack_zone zone; /* arrays of the last decoded envelope */
	bool zone_ok;      /* msgpack_zone_init succeeded */
};

/* Borrows buf for the reader's life (until fini or reset). Allocates the
 * zone's first chunk; if that fails, the first next() returns ENV_NOMEM. */
void env_reader_init(struct env_reader *r, const void *buf, size_t len);
void env_reader_fini(struct env_reader *r);
/* Points an initialised reader at a new buffer, keeping its zone (no
 * allocation): lets a receive loop reuse one reader for every message.
 * Decoded structs of the previous buffer become invalid. */
void env_reader_reset(struct env_reader *r, const void *buf, size_t len);

/*
 * Decode the next envelope. Returns ENV_OK and fills *out (valid until the
 * next call, reset or fini), ENV_END at the end, or a negative env_err.
 * After ENV_TRUNCATED, ENV_MALFORMED or ENV_NOMEM the rest of the buffer is
 * skipped (the next call returns ENV_END); after ENV_VERSION_UNKNOWN or
 * ENV_KIND_UNKNOWN of a well-formed array, reading continues after it.
 * Required strings decode with a non-NULL p (possibly len 0); optional ones
 * that are nil decode as { NULL, 0 }. *out is undefined on error.
 */
int bus_reader_next(struct env_reader *r, struct bus_env *out);
int up_reader_next(struct env_reader *r, struct up_env *out);

/*
 * Finds the end of the one msgpack object that starts at buf[off] without
 * allocating, enforcing ENV_ARRAY_MAX, ENV_DEPTH_MAX and ENV_OBJECTS_MAX.
 * Returns ENV_OK and sets *end (one past the object), ENV_TRUNCATED if buf
 * ends inside it, or ENV_MALFORMED (0xc1, or over a limit). Both readers and
 * wspenv_decode() run it before msgpack_unpack(), which trusts its input's
 * counts (a 5-byte array header makes it allocate n * 24 bytes).
 */
int env_scan(const void *buf, size_t len, size_t off, size_t *end);

const char *bus_kind_str(enum bus_kind k);
const char *up_kind_str(enum up_kind k);
const char *payload_class_str(enum payload_class c);
const char *range_status_str(enum range_status s);

#endif
