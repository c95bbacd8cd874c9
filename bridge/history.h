/*
 * history.h - the Redis side of history, as pure functions over command
 * arguments and hiredis replies (no I/O: the broker sends and receives).
 *
 * With [history] size > 0 the bridge keeps every address's messages in a
 * Redis stream named like the address's channel ("<prefix>:<address>", so
 * key and channel share a Redis Cluster slot). Writing and reading go
 * through the function library "wspush" (bridge/wspush.lua, embedded at
 * build time):
 *   FCALL wspush_publish 1 <key> <payload> [<from> [json]]   -> id
 *   FCALL_RO wspush_range 1 <key> <since> <count>            -> facts
 *   FCALL_RO wspush_config 0                                 -> loaded conf
 *
 * Loading, at start and after every reconnect of the command link (a
 * restarted Redis without persistence has no functions):
 *   1. FCALL_RO wspush_config 0 -> history_config_parse(): not loaded yet,
 *      the same, or another [history] configuration (another node sharing
 *      the Redis with other values: log it; the last loader wins).
 *   2. FUNCTION LOAD REPLACE <history_library()> -> history_load_parse():
 *      Redis older than 7.0 and refusals (ACL, OOM) are reported with a
 *      sentence for the log, /healthz and stats; delivery goes on.
 *
 * A recovery ("since" on subscribe/auth) or a history read ("history" op):
 * history_range_argv() builds the wspush_range call; the function reads
 * atomically, in one round trip, whether the stream exists, its first id,
 * its length and entries ever added, and the entries; history_range_parse()
 * turns that into entries and the contract's `recovered`:
 *   since "<id>": true iff the stream exists and its first entry is at or
 *       before <id> (trimming and expiry only remove from the head, so then
 *       nothing after <id> is gone), and no more than `limit` entries
 *       follow it. Trimming does not move the stream's max-deleted-entry-id,
 *       so that cannot be used instead.
 *   since "0": true iff the stream exists, never lost an entry (entries
 *       added == length) and all of it fits in `limit`.
 *   since NULL (the history op: the newest `limit` entries): the same rule
 *       as "0", i.e. the answer is all there ever was.
 * With more than `limit` entries after <id>, the oldest `limit` are
 * returned and recovered is false. A stream deleted and re-created is
 * told by its first id, which is later than anything of the old stream,
 * unless someone DELs the key by hand and publishes again within the same
 * millisecond (expiry cannot: it follows ttl_s without messages).
 *
 * Stream entries have the fields data, and optionally from and json ("1":
 * data is a client message's JSON text).
 */
#ifndef WSP_HISTORY_H
#define WSP_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "conf.h"
#include "envelope.h"

/* Bumped when the library's calls or replies change shape. */
#define HISTORY_LIB_VERSION 1

/* What the library is loaded with; user_size is resolved (never 0). */
struct history_conf {
	uint32_t version; /* HISTORY_LIB_VERSION for ours */
	uint32_t size, ttl_s, user_size, user_ttl_s;
	bool sharded; /* SPUBLISH instead of PUBLISH (Redis Cluster) */
};

/* From the [history] section (and [redis] cluster). */
void history_conf_from(struct history_conf *h, const struct conf *c);

/* The embedded bridge/wspush.lua as shipped (generated at build time). */
extern const char history_lua[];
extern const size_t history_lua_len;

/*
 * The library text for h: bridge/wspush.lua with its "local CONF = ...
 * -- CONF" line rewritten. Returns a malloc'd NUL-terminated string (its
 * length in *len), or NULL on allocation failure or if the embedded text
 * has no CONF line.
 */
char *history_library(const struct history_conf *h, size_t *len);

/* Arguments of one Redis command, pointing into the caller's strings and
 * the struct's own number buffer: pass argc/argv/lens to
 * redisAsyncCommandArgv(). Valid while the struct and the strings live. */
struct history_argv {
	int argc;
	const char *argv[7];
	size_t lens[7];
	char num[24];
};

/* FUNCTION LOAD REPLACE <text>. */
void history_load_argv(
    struct history_argv *a, const char *text, size_t text_len);
/* FCALL_RO wspush_config 0. */
void history_config_argv(struct history_argv *a);

enum history_load {
	HISTORY_LOAD_OK = 0,
	HISTORY_LOAD_OLD_REDIS = 1, /* no FUNCTION command: Redis < 7.0 */
	HISTORY_LOAD_REFUSED = 2,   /* any other error (ACL, OOM, syntax) */
	HISTORY_LOAD_LOST = 3,      /* no reply: the link died */
};

/* The reply to FUNCTION LOAD; why gets a sentence for the log (always
 * NUL-terminated when whylen > 0). */
enum history_load history_load_parse(
    const redisReply *r, char *why, size_t whylen);

enum history_loaded {
	HISTORY_LOADED_NONE = 0,  /* no wspush library (or no functions) */
	HISTORY_LOADED_SAME = 1,  /* ours, with our configuration */
	HISTORY_LOADED_OTHER = 2, /* another version or configuration */
	HISTORY_LOADED_ERROR = 3, /* an error reply or an unexpected shape */
};

/* The reply to FCALL_RO wspush_config 0, compared with mine; *loaded gets
 * the values found (for the log) when the result is SAME or OTHER. */
enum history_loaded history_config_parse(const redisReply *r,
    const struct history_conf *mine, struct history_conf *loaded);

/* Writes "size=.. ttl_s=.. user_size=.. user_ttl_s=.. sharded=.. v=.." */
int history_conf_str(const struct history_conf *h, char *buf, size_t len);

/*
 * FCALL wspush_publish 1 <key> <payload> [<from> [json]]: from may be
 * NULL (no sender); json says the payload is a client message's JSON text.
 */
void history_publish_argv(struct history_argv *a, const char *key,
    size_t key_len, const void *payload, size_t payload_len, const char *from,
    size_t from_len, bool json);

/* The id a wspush_publish call returned, or {NULL, 0} for an error or
 * anything that is not a stream id. */
struct env_str history_publish_id(const redisReply *r);

/*
 * FCALL_RO wspush_range 1 <key> <since> <count> for a recovery after since
 * (a stream id or "0"; checked with env_sid_parse() by the caller, or
 * here: -1 if invalid) or, since NULL, the newest `limit` entries. limit
 * is at least 1 (the caller bounds it by max_recover). Returns 0 or -1.
 */
int history_range_argv(struct history_argv *a, const char *key, size_t key_len,
    const char *since, size_t since_len, uint32_t limit);

struct history_entry {
	struct env_str id;
	struct env_str data;
	struct env_str from; /* {NULL, 0} when absent */
	bool json;
};

struct history_range {
	bool exists;      /* the stream key exists */
	bool recovered;   /* the contract's promise (see the top of the file) */
	bool more;        /* entries beyond limit were left out */
	uint32_t n;       /* entries[0..n), oldest first, at most limit */
	uint32_t skipped; /* entries without a data field, left out */
	uint64_t length, added;
	struct env_str first_id; /* {NULL, 0} for an empty or missing stream */
	struct history_entry *entries; /* malloc'd; history_range_free() */
};

enum history_range_rc {
	HISTORY_RANGE_OK = 0,
	HISTORY_RANGE_ERROR = -1,     /* an error reply: why says which */
	HISTORY_RANGE_MALFORMED = -2, /* not the shape wspush_range returns */
	HISTORY_RANGE_NOMEM = -3,
	HISTORY_RANGE_LOST = -4, /* no reply: the link died */
};

/*
 * Parses the reply to the call history_range_argv() built with the same
 * since and limit. Strings point into r, which must outlive *out. On
 * anything but HISTORY_RANGE_OK, *out holds no allocation. why gets the
 * error reply's text or what was wrong (NUL-terminated when whylen > 0).
 */
int history_range_parse(const redisReply *r, const char *since,
    size_t since_len, uint32_t limit, struct history_range *out, char *why,
    size_t whylen);
void history_range_free(struct history_range *out);

/* ---- the bridge's side of the bus: UP_RANGE_REQ in, BUS_RANGE out ---- */

/* Chunks of a RANGE answer are cut near this many bytes (one nng message
 * each; the workers' receive buffer holds messages, not bytes). */
#define HISTORY_CHUNK_BYTES (256u * 1024)

/*
 * Checks one UP_RANGE_REQ: addr a valid address, since absent or a stream
 * id, limit >= 1. Writes the stream key "<prefix>:<addr>" (NUL-terminated)
 * and the limit capped at max_recover. Returns RANGE_OK or
 * RANGE_BAD_REQUEST (key and limit are then unspecified).
 */
enum range_status history_request(const struct up_range *q, const char *prefix,
    uint32_t max_recover, char *key, size_t keylen, uint32_t *limit);

/* Receives one chunk (borrowed for the call; the bus encodes it);
 * non-zero stops the answer. */
typedef int history_emit_fn(void *arg, const struct bus_range *chunk);

/*
 * Cuts the answer to a request into BUS_RANGE chunks of about chunk_bytes
 * (bus_range_chunk()) and hands each to emit, in order, the last one
 * flagged. head gives epoch, slot, gen, req_id and to; h the entries and
 * recovered (status RANGE_OK), or h NULL for an answer without entries
 * with the given status (RANGE_FAILED, RANGE_UNAVAILABLE,
 * RANGE_BAD_REQUEST). Each entry's payload is classified (payload.h) and
 * its ts is the id's time part; an entry over ENV_DATA_MAX is left out
 * (recovered false). Returns 0, -1 on allocation failure, or what emit
 * returned.
 */
int history_range_emit(const struct bus_range *head,
    const struct history_range *h, enum range_status status, size_t chunk_bytes,
    history_emit_fn *emit, void *arg);

/* ---- loading, per command-link connection ---- */

enum history_state {
	HISTORY_OFF = 0,         /* [history] size = 0 */
	HISTORY_LOADING = 1,     /* link down, or FUNCTION LOAD not answered */
	HISTORY_READY = 2,       /* the library is loaded: FCALL works */
	HISTORY_UNAVAILABLE = 3, /* Redis < 7.0 or the load refused: err */
};

#define HISTORY_ERR_MAX 200

/*
 * The bridge's history state for one broker. Use: history_init() once;
 * whenever the command link connects, history_connected() gives the two
 * commands to send first (the config check, then FUNCTION LOAD), their
 * replies go to history_on_config() and history_on_load(), which return a
 * line for the log (NULL: nothing to say); history_lost() when the link
 * goes down. While READY, publishes go through FCALL wspush_publish and
 * range requests are served; while UNAVAILABLE, publishes fall back to
 * PUBLISH (delivery goes on, without ids) and ranges are answered
 * RANGE_UNAVAILABLE; while LOADING, RANGE_FAILED (retry).
 */
struct history {
	struct history_conf conf;
	enum history_state state;
	char *text; /* the library text, built once */
	size_t text_len;
	char err[HISTORY_ERR_MAX]; /* why UNAVAILABLE; "" otherwise */
	uint64_t loads;            /* successful FUNCTION LOADs */
	uint64_t load_failures;    /* refused or failed ones */
	bool other_config;         /* the last check found other values */
};

/* Returns 0, or -1 (allocation; or the embedded text has no CONF line). */
int history_init(struct history *h, const struct conf *c);
void history_fini(struct history *h);
void history_connected(
    struct history *h, struct history_argv *check, struct history_argv *load);
const char *history_on_config(
    struct history *h, const redisReply *r, char *line, size_t len);
const char *history_on_load(
    struct history *h, const redisReply *r, char *line, size_t len);
void history_lost(struct history *h);
/* The status a range request gets in the current state (RANGE_OK: serve
 * it). */
enum range_status history_range_status(const struct history *h);
const char *history_state_str(enum history_state s);

#endif
