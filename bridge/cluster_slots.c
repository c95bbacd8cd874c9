/*
 * cluster_slots.c - Redis Cluster key slots, the slot map read from
 * CLUSTER SHARDS / CLUSTER SLOTS replies, and MOVED / ASK parsing.
 * See cluster_slots.h; CLUSTER-NOTES.md in this directory has the reply shapes.
 */
#include "cluster_slots.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint16_t
cluster_crc16(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint16_t crc = 0;

	/* Bitwise: a few dozen bytes per channel name, computed when interest
	 * changes, not per message; a 512-byte table would buy nothing. */
	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
					     : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned
cluster_keyslot(const void *key, size_t len)
{
	const char *k = key;
	const char *open = memchr(k, '{', len);

	if (open != NULL) {
		size_t start = (size_t)(open - k) + 1;
		const char *close = memchr(open + 1, '}', len - start);

		if (close != NULL && close > open + 1)
			return cluster_crc16(
				   open + 1, (size_t)(close - open - 1)) &
			       (CLUSTER_SLOTS - 1);
	}
	return cluster_crc16(k, len) & (CLUSTER_SLOTS - 1);
}

void
cluster_map_init(struct cluster_map *m)
{
	m->shards = NULL;
	m->nshards = 0;
	for (size_t i = 0; i < CLUSTER_SLOTS; i++)
		m->owner[i] = CLUSTER_NO_SHARD;
}

void
cluster_map_fini(struct cluster_map *m)
{
	free(m->shards);
	cluster_map_init(m);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool
is_str(const redisReply *r)
{
	return r != NULL &&
	       (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool
str_eq(const redisReply *r, const char *s)
{
	return is_str(r) && r->len == strlen(s) &&
	       memcmp(r->str, s, r->len) == 0;
}

/* Finds or adds the shard host:port; CLUSTER_NO_SHARD on failure. */
static unsigned
shard_add(struct cluster_map *m, const char *host, size_t hostlen,
    uint16_t port, const char *id, size_t idlen)
{
	struct cluster_shard *s;

	if (hostlen >= CLUSTER_HOST_MAX)
		return CLUSTER_NO_SHARD;
	for (size_t i = 0; i < m->nshards; i++) {
		s = &m->shards[i];
		if (s->port == port && strlen(s->host) == hostlen &&
		    memcmp(s->host, host, hostlen) == 0)
			return (unsigned)i;
	}
	if (m->nshards >= CLUSTER_NO_SHARD)
		return CLUSTER_NO_SHARD;
	s = realloc(m->shards, (m->nshards + 1) * sizeof(*s));
	if (s == NULL)
		return CLUSTER_NO_SHARD;
	m->shards = s;
	s = &m->shards[m->nshards];
	memcpy(s->host, host, hostlen);
	s->host[hostlen] = '\0';
	s->port = port;
	s->id[0] = '\0';
	if (id != NULL && idlen < sizeof(s->id)) {
		memcpy(s->id, id, idlen);
		s->id[idlen] = '\0';
	}
	return (unsigned)m->nshards++;
}

/* An endpoint as Redis reports it: "" or "?" mean "the node you asked". */
static void
endpoint(const char *host, size_t len, const char *default_host,
    const char **out, size_t *outlen)
{
	if (len == 0 || (len == 1 && host[0] == '?')) {
		*out = default_host != NULL ? default_host : "";
		*outlen = strlen(*out);
	} else {
		*out = host;
		*outlen = len;
	}
}

static int
assign(struct cluster_map *m, long long lo, long long hi, unsigned shard,
    char *err, size_t errlen)
{
	if (lo < 0 || hi >= CLUSTER_SLOTS || lo > hi) {
		seterr(
		    err, errlen, "slot range %lld-%lld out of 0-16383", lo, hi);
		return -1;
	}
	for (long long s = lo; s <= hi; s++)
		m->owner[s] = (uint16_t)shard;
	return 0;
}

static int
port_of(const redisReply *r, uint16_t *port)
{
	if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer <= 0 ||
	    r->integer > 65535)
		return -1;
	*port = (uint16_t)r->integer;
	return 0;
}

/* The value of key in a flat [k, v, k, v, ...] array, or NULL. */
static const redisReply *
field(const redisReply *kv, const char *key)
{
	if (kv == NULL || kv->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < kv->elements; i += 2)
		if (str_eq(kv->element[i], key))
			return kv->element[i + 1];
	return NULL;
}

int
cluster_map_from_shards(struct cluster_map *m, const redisReply *r,
    const char *default_host, char *err, size_t errlen)
{
	cluster_map_fini(m);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		seterr(err, errlen, "CLUSTER SHARDS: not an array");
		return -1;
	}
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *slots = field(r->element[i], "slots");
		const redisReply *nodes = field(r->element[i], "nodes");
		const redisReply *master = NULL;

		if (slots == NULL || slots->type != REDIS_REPLY_ARRAY ||
		    slots->elements % 2 != 0 || nodes == NULL ||
		    nodes->type != REDIS_REPLY_ARRAY) {
			seterr(err, errlen,
			    "CLUSTER SHARDS: shard %zu lacks slots/nodes", i);
			goto fail;
		}
		if (slots->elements == 0)
			continue; /* a shard without slots (e.g. being added) */
		for (size_t j = 0; j < nodes->elements; j++) {
			const redisReply *n = nodes->element[j];

			if (str_eq(field(n, "role"), "master") &&
			    str_eq(field(n, "health"), "online")) {
				master = n;
				break;
			}
		}
		if (master == NULL)
			continue; /* its slots stay uncovered until a failover
				   */
		const redisReply *ipr = field(master, "ip");
		const redisReply *ep = field(master, "endpoint");
		const redisReply *id = field(master, "id");
		const char *host;
		size_t hostlen;
		uint16_t port;

		if (!is_str(ipr))
			ipr = ep;
		if (!is_str(ipr) ||
		    port_of(field(master, "port"), &port) == -1) {
			seterr(err, errlen,
			    "CLUSTER SHARDS: shard %zu: master without ip/port",
			    i);
			goto fail;
		}
		endpoint(ipr->str, ipr->len, default_host, &host, &hostlen);
		unsigned sh = shard_add(m, host, hostlen, port,
		    is_str(id) ? id->str : NULL, is_str(id) ? id->len : 0);
		if (sh == CLUSTER_NO_SHARD) {
			seterr(err, errlen,
			    "CLUSTER SHARDS: shard %zu: bad or "
			    "too many endpoints",
			    i);
			goto fail;
		}
		for (size_t j = 0; j < slots->elements; j += 2) {
			const redisReply *lo = slots->element[j];
			const redisReply *hi = slots->element[j + 1];

			if (lo->type != REDIS_REPLY_INTEGER ||
			    hi->type != REDIS_REPLY_INTEGER) {
				seterr(err, errlen,
				    "CLUSTER SHARDS: non-integer slot");
				goto fail;
			}
			if (assign(m, lo->integer, hi->integer, sh, err,
				errlen) == -1)
				goto fail;
		}
	}
	return 0;
fail:
	cluster_map_fini(m);
	return -1;
}

int
cluster_map_from_slots(struct cluster_map *m, const redisReply *r,
    const char *default_host, char *err, size_t errlen)
{
	cluster_map_fini(m);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		seterr(err, errlen, "CLUSTER SLOTS: not an array");
		return -1;
	}
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		const redisReply *n;
		const char *host;
		size_t hostlen;
		uint16_t port;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER ||
		    e->element[2]->type != REDIS_REPLY_ARRAY ||
		    e->element[2]->elements < 2) {
			seterr(err, errlen, "CLUSTER SLOTS: bad entry %zu", i);
			goto fail;
		}
		n = e->element[2];
		if (!is_str(n->element[0]) ||
		    port_of(n->element[1], &port) == -1) {
			seterr(err, errlen,
			    "CLUSTER SLOTS: entry %zu: bad master endpoint", i);
			goto fail;
		}
		endpoint(n->element[0]->str, n->element[0]->len, default_host,
		    &host, &hostlen);
		bool has_id = n->elements > 2 && is_str(n->element[2]);
		unsigned sh = shard_add(m, host, hostlen, port,
		    has_id ? n->element[2]->str : NULL,
		    has_id ? n->element[2]->len : 0);
		if (sh == CLUSTER_NO_SHARD) {
			seterr(err, errlen,
			    "CLUSTER SLOTS: entry %zu: bad or too many "
			    "endpoints",
			    i);
			goto fail;
		}
		if (assign(m, e->element[0]->integer, e->element[1]->integer,
			sh, err, errlen) == -1)
			goto fail;
	}
	return 0;
fail:
	cluster_map_fini(m);
	return -1;
}

unsigned
cluster_map_owner(const struct cluster_map *m, unsigned slot)
{
	if (slot >= CLUSTER_SLOTS)
		return CLUSTER_NO_SHARD;
	return m->owner[slot];
}

unsigned
cluster_map_find(const struct cluster_map *m, const char *host, uint16_t port)
{
	for (size_t i = 0; i < m->nshards; i++)
		if (m->shards[i].port == port &&
		    strcmp(m->shards[i].host, host) == 0)
			return (unsigned)i;
	return CLUSTER_NO_SHARD;
}

unsigned
cluster_map_uncovered(const struct cluster_map *m)
{
	unsigned n = 0;

	for (size_t i = 0; i < CLUSTER_SLOTS; i++)
		n += m->owner[i] == CLUSTER_NO_SHARD;
	return n;
}

enum cluster_redirect_kind
cluster_redirect_parse(
    const char *err, size_t len, struct cluster_redirect *out)
{
	enum cluster_redirect_kind kind;
	char buf[CLUSTER_HOST_MAX + 64];
	char *p, *end, *colon;
	unsigned long slot, port;

	if (len >= 6 && memcmp(err, "MOVED ", 6) == 0)
		kind = CLUSTER_REDIRECT_MOVED;
	else if (len >= 4 && memcmp(err, "ASK ", 4) == 0)
		kind = CLUSTER_REDIRECT_ASK;
	else
		return CLUSTER_REDIRECT_NONE;
	if (len >= sizeof(buf))
		return CLUSTER_REDIRECT_NONE;
	memcpy(buf, err, len);
	buf[len] = '\0';
	p = buf + (kind == CLUSTER_REDIRECT_MOVED ? 6 : 4);
	if (*p < '0' || *p > '9')
		return CLUSTER_REDIRECT_NONE;
	errno = 0;
	slot = strtoul(p, &end, 10);
	if (errno != 0 || *end != ' ' || slot >= CLUSTER_SLOTS)
		return CLUSTER_REDIRECT_NONE;
	p = end + 1;
	/* host:port, where host may be empty (the node that answered), an
	 * IPv6 address with or without brackets, or a name: the port is
	 * after the last colon. */
	colon = strrchr(p, ':');
	if (colon == NULL || colon[1] < '0' || colon[1] > '9')
		return CLUSTER_REDIRECT_NONE;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port == 0 || port > 65535)
		return CLUSTER_REDIRECT_NONE;
	*colon = '\0';
	if (p[0] == '[') {
		size_t hl = strlen(p);

		if (hl < 2 || p[hl - 1] != ']')
			return CLUSTER_REDIRECT_NONE;
		p[hl - 1] = '\0';
		p++;
	}
	if (strchr(p, ' ') != NULL)
		return CLUSTER_REDIRECT_NONE;
	out->kind = kind;
	out->slot = (unsigned)slot;
	snprintf(out->host, sizeof(out->host), "%s", p);
	out->port = (uint16_t)port;
	return kind;
}

unsigned
cluster_map_move(
    struct cluster_map *m, unsigned slot, const char *host, uint16_t port)
{
	unsigned sh;

	if (slot >= CLUSTER_SLOTS)
		return CLUSTER_NO_SHARD;
	sh = shard_add(m, host, strlen(host), port, NULL, 0);
	if (sh != CLUSTER_NO_SHARD)
		m->owner[slot] = (uint16_t)sh;
	return sh;
}
