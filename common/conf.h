/*
 * conf.h - the one INI file both programs read (-c /etc/wspush/wspush.conf).
 *
 * Every key of the README's Configuration table is one row of a table in conf.c
 * (section, key, type, offset, default, range). Unknown keys, bad values
 * and values this build does not implement stop the program with
 * "file:line: section.key: reason". The master parses and validates before
 * forking; workers only ever see a const struct conf.
 */
#ifndef WSP_CONF_H
#define WSP_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum conf_routing { CONF_ROUTING_INTEREST, CONF_ROUTING_BROADCAST };
enum conf_delivery { CONF_DELIVERY_ENVELOPE, CONF_DELIVERY_RAW };
enum conf_client_publish {
	CONF_PUBLISH_OFF,
	CONF_PUBLISH_CHANNELS,
	CONF_PUBLISH_USERS,
	CONF_PUBLISH_ALL,
};
enum conf_slow_client { CONF_SLOW_CLOSE, CONF_SLOW_DROP_OLDEST };
enum conf_event_loop { CONF_LOOP_EPOLL, CONF_LOOP_POLL };
enum conf_auth_mode { CONF_AUTH_JWT, CONF_AUTH_NONE };
enum conf_jwt_alg { CONF_JWT_HS256, CONF_JWT_RS256, CONF_JWT_ES256 };
enum conf_redis_kind { CONF_REDIS_TCP, CONF_REDIS_UNIX };
enum conf_broker_kind { CONF_BROKER_REDIS, CONF_BROKER_AMQP };

#define CONF_NODE_ID_MAX 64
#define CONF_PREFIX_MAX 64
/* runtime_dir + "/stats.ipc" must fit sun_path (108 bytes with the NUL). */
#define CONF_RUNTIME_DIR_MAX 96
#define CONF_PATH_MAX 512
#define CONF_ORIGINS_MAX 32
/* AMQP 0-9-1 short strings (exchange and queue names) hold 255 bytes. */
#define CONF_AMQP_NAME_MAX 256

/* A parsed "host:port" (IPv4, [IPv6] or a name resolved at bind time). */
struct conf_hostport {
	char host[256];
	uint16_t port;
};

struct conf {
	char file[CONF_PATH_MAX]; /* the file this was read from */

	/* [node] */
	char node_id[CONF_NODE_ID_MAX]; /* "auto": the bridge picks one */
	char runtime_dir[CONF_RUNTIME_DIR_MAX];
	int log_level; /* syslog level */

	/* [redis] */
	char redis_url[CONF_PATH_MAX];
	enum conf_redis_kind redis_kind;
	char redis_host[256]; /* TCP */
	uint16_t redis_port;
	char redis_unix_path[108]; /* unix:///path */
	char redis_user[256];      /* ACL user; empty: AUTH <password> only */
	char redis_password[256];  /* empty: no AUTH */
	char prefix[CONF_PREFIX_MAX];
	bool redis_cluster; /* Redis Cluster with sharded pub/sub */

	/* [broker] */
	enum conf_broker_kind broker_kind;
	enum conf_routing routing; /* also set by the alias [redis] routing */
	/* Line of the deprecated [redis] routing in the file (0: not used),
	 * so that the programs can warn about it once they log. */
	int routing_alias_line;

	/* [amqp] (broker.kind = amqp) */
	char amqp_url[CONF_PATH_MAX];
	char amqp_exchange[CONF_AMQP_NAME_MAX];        /* direct */
	char amqp_fanout_exchange[CONF_AMQP_NAME_MAX]; /* empty: none */
	char amqp_inbound_queue[CONF_AMQP_NAME_MAX];
	char amqp_events_exchange[CONF_AMQP_NAME_MAX];

	/* [history] (size 0: off) */
	uint32_t history_size;
	uint32_t history_ttl_s;
	uint32_t history_user_size; /* 0: history_size */
	uint32_t history_user_ttl_s;
	uint32_t history_max_recover;

	/* [gateway] */
	struct conf_hostport listen;
	uint32_t workers; /* 0 = auto (one per core) */
	char path[256];
	enum conf_delivery delivery;
	enum conf_client_publish client_publish;
	uint32_t max_message_bytes;
	uint64_t max_queued_bytes;
	enum conf_slow_client slow_client;
	enum conf_event_loop event_loop; /* workers' lws loop backend */
	uint32_t max_connections;        /* per worker, 0 = fd limit */
	uint32_t max_subscriptions;
	uint32_t rate_limit_per_s;
	uint32_t rate_burst;
	uint32_t ping_interval_s;
	uint32_t idle_timeout_s;
	uint32_t handshake_timeout_s;
	uint32_t drain_timeout_s;
	/* allowed_origins: "*" (any), or exact origins and "*.example.com" */
	char allowed_origins_raw[1024];
	uint32_t n_allowed_origins; /* 0 means "*" */
	char allowed_origins[CONF_ORIGINS_MAX][128];
	bool demo_page;
	uint64_t inbound_maxlen;

	/* [auth] */
	enum conf_auth_mode auth_mode;
	enum conf_jwt_alg jwt_alg;
	char jwt_secret_file[CONF_PATH_MAX];
	char jwt_public_key_file[CONF_PATH_MAX];
	uint32_t leeway_s;
	uint32_t auth_timeout_s;

	/* [bridge] */
	struct conf_hostport metrics_listen;
	uint32_t heartbeat_ms;
	uint32_t coalesce_ms;
};

/* Fills c with the documented defaults (c->file is left empty). */
void conf_defaults(struct conf *c);

/*
 * Reads and validates the file at path into c (defaults first). Returns 0,
 * or -1 with "path:line: section.key: reason" in err. On failure *c is
 * unspecified; callers keep their previous config in a separate struct.
 * Not thread-safe (inih's options are process globals): load in the master.
 */
int conf_load(struct conf *c, const char *path, char *err, size_t errlen);

/* Same, from a string; name stands in for the file name in messages. */
int conf_load_string(struct conf *c, const char *name, const char *text,
    char *err, size_t errlen);

/* Logs what the file uses that still works but should change (old key
 * names), one warning each. */
void conf_log_warnings(const struct conf *c);

/* Prints every effective value as INI (what -t shows). */
void conf_print(const struct conf *c, FILE *f);

/* Worker count to run: c->workers, or the number of online CPUs for auto. */
uint32_t conf_workers(const struct conf *c);

/* Paths of the node's ipc endpoints: "ipc://<runtime_dir>/bus.ipc" etc. */
void conf_bus_url(const struct conf *c, char *buf, size_t len);
void conf_up_url(const struct conf *c, char *buf, size_t len);
void conf_stats_url(const struct conf *c, char *buf, size_t len);

/*
 * True if origin matches gateway.allowed_origins ("*" allows all). Entries
 * compare case-insensitively: an exact origin ("https://app.example.com")
 * matches whole; a wildcard host matches one or more labels before the
 * domain, never the bare domain ("*.example.com" matches a.example.com and
 * a.b.example.com, not example.com). A wildcard with a scheme (https://
 * then *.example.com, optionally :port) also requires that scheme and
 * port; a bare "*.example.com" allows any scheme but no explicit port.
 */
bool conf_origin_allowed(const struct conf *c, const char *origin);

#endif
