/*
 * cluster_slots.h - Redis Cluster key slots and the slot map: which shard
 * master owns the slot of a channel or key, read from CLUSTER SHARDS or
 * CLUSTER SLOTS, and the MOVED / ASK redirections that correct it.
 *
 * Pure functions over parsed replies (hiredis redisReply trees): no I/O,
 * so the bridge's cluster links and the unit tests share them.
 */
#ifndef WSP_CLUSTER_SLOTS_H
#define WSP_CLUSTER_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define CLUSTER_SLOTS 16384
#define CLUSTER_NO_SHARD UINT16_MAX
/* Room for an IPv6 address or a host name as Redis reports it. */
#define CLUSTER_HOST_MAX 256

/* CRC16-CCITT (XModem): polynomial 0x1021, initial value 0, no reflection.
 * The checksum Redis Cluster hashes keys with ("123456789" -> 0x31C3). */
uint16_t cluster_crc16(const void *buf, size_t len);

/*
 * The slot (0..16383) of a key or sharded channel name: CRC16 of the
 * whole name, or only of the part between the first '{' and the first '}'
 * after it when that part is not empty (a hash tag).
 */
unsigned cluster_keyslot(const void *key, size_t len);

/* One shard: its master's endpoint. */
struct cluster_shard {
	char host[CLUSTER_HOST_MAX];
	uint16_t port;
	char id[48]; /* node id (40 hex digits), "" if not reported */
};

/* A slot map: up to nshards masters; owner[slot] indexes shards. */
struct cluster_map {
	struct cluster_shard *shards;
	size_t nshards;
	uint16_t owner[CLUSTER_SLOTS]; /* CLUSTER_NO_SHARD: uncovered */
};

/* Empties m (no shard, every slot uncovered). */
void cluster_map_init(struct cluster_map *m);
void cluster_map_fini(struct cluster_map *m);

/*
 * Parses a CLUSTER SHARDS reply (RESP2: an array of [key, value, ...]
 * arrays with "slots" and "nodes") into m, replacing its contents. Only
 * masters reported healthy ("online") own slots; replicas are ignored. A
 * node reporting no "ip" but an "endpoint" uses that. default_host replaces
 * an empty or "?" endpoint (the node we asked). Returns 0, or -1 with a
 * reason in err (m is then left empty).
 */
int cluster_map_from_shards(struct cluster_map *m, const redisReply *r,
    const char *default_host, char *err, size_t errlen);

/*
 * Parses a CLUSTER SLOTS reply ([[start, end, [host, port, id?, ...],
 * replicas...], ...]) into m, as cluster_map_from_shards().
 */
int cluster_map_from_slots(struct cluster_map *m, const redisReply *r,
    const char *default_host, char *err, size_t errlen);

/* The shard index owning slot, or CLUSTER_NO_SHARD. */
unsigned cluster_map_owner(const struct cluster_map *m, unsigned slot);

/* The shard index with that endpoint, or CLUSTER_NO_SHARD. */
unsigned cluster_map_find(
    const struct cluster_map *m, const char *host, uint16_t port);

/* Number of slots without an owner (a full cluster has 0). */
unsigned cluster_map_uncovered(const struct cluster_map *m);

enum cluster_redirect_kind {
	CLUSTER_REDIRECT_NONE = 0, /* not a redirection */
	CLUSTER_REDIRECT_MOVED, /* the slot lives there now: update the map */
	CLUSTER_REDIRECT_ASK    /* this one command: ASKING, then retry */
};

struct cluster_redirect {
	enum cluster_redirect_kind kind;
	unsigned slot;
	char host[CLUSTER_HOST_MAX]; /* "" = the node that answered */
	uint16_t port;
};

/*
 * Reads an error reply text ("MOVED 3999 127.0.0.1:6381", "ASK 12182
 * [::1]:7002" or "ASK 12182 ::1:7002") into out. Returns the kind; out is
 * written only for MOVED/ASK. Anything else (other errors, a malformed
 * redirection) is CLUSTER_REDIRECT_NONE.
 */
enum cluster_redirect_kind cluster_redirect_parse(
    const char *err, size_t len, struct cluster_redirect *out);

/*
 * Applies a MOVED redirection to m: slot now belongs to host:port, a shard
 * added to m if it is new. Returns the shard index, or CLUSTER_NO_SHARD on
 * allocation failure.
 */
unsigned cluster_map_move(
    struct cluster_map *m, unsigned slot, const char *host, uint16_t port);

#endif
