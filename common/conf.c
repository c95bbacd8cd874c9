/*
 * conf.c - read and validate wspush.conf (one INI file for both programs).
 *
 * One table row per key (Redis static_configs[] shape) gives section, key,
 * type, field offset, default text and range; defaults go through the same
 * parser as the file, so the table is the single source of truth. inih
 * splits lines; a reader wrapper counts lines (Debian's inih 55 does not
 * pass line numbers to handlers), rejects over-long lines and unknown
 * sections. The first error stops loading with "file:line: section.key:
 * reason". Not thread-safe: inih's options are process globals; load in
 * the master before forking.
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"

/* Longest line accepted (inih's line buffer, on its stack). */
#define CONF_LINE_MAX 2048
/* Largest config file conf_load() reads. */
#define CONF_FILE_MAX (1024 * 1024)

enum conf_type {
	CONF_T_STR,       /* char[size], checked by check() */
	CONF_T_U32,       /* uint32_t in min..max */
	CONF_T_U64,       /* uint64_t in min..max */
	CONF_T_BOOL,      /* bool: on/off/true/false/yes/no/1/0 */
	CONF_T_ENUM,      /* enum stored as int; names[value] */
	CONF_T_LOGLEVEL,  /* int syslog level */
	CONF_T_U32_AUTO,  /* uint32_t: "auto" (0) or min..max */
	CONF_T_HOSTPORT,  /* struct conf_hostport */
	CONF_T_REDIS_URL, /* redis_url and the fields parsed from it */
	CONF_T_ORIGINS,   /* allowed_origins_raw and the parsed list */
};

/* Checks a string value; on failure writes the reason into why. */
typedef int conf_check_fn(const char *v, char *why, size_t whylen);

struct conf_key {
	const char *section;
	const char *key;
	enum conf_type type;
	size_t off;
	size_t size; /* of the field, checked against the type */
	const char *def;
	uint64_t min, max;
	const char *const *names; /* CONF_T_ENUM, NULL-terminated */
	conf_check_fn *check;     /* CONF_T_STR, may be NULL */
	bool alias; /* another name of a key printed elsewhere: not printed */
};

static conf_check_fn conf_check_node_id, conf_check_runtime_dir,
    conf_check_prefix, conf_check_path, conf_check_file, conf_check_amqp_url,
    conf_check_amqp_name, conf_check_amqp_name_opt;

static const char *const conf_routing_names[] = {"interest", "broadcast", NULL};
static const char *const conf_delivery_names[] = {"envelope", "raw", NULL};
static const char *const conf_publish_names[] = {
    "off", "channels", "users", "all", NULL};
static const char *const conf_slow_names[] = {"close", "drop_oldest", NULL};
static const char *const conf_loop_names[] = {"epoll", "poll", NULL};
static const char *const conf_auth_names[] = {"jwt", "none", NULL};
static const char *const conf_alg_names[] = {"HS256", "RS256", "ES256", NULL};
static const char *const conf_broker_names[] = {"redis", "amqp", NULL};

#define FIELD_SIZE(f) sizeof(((struct conf *)0)->f)
#define ROW(sec, key, type, f, def, min, max, names, check)                   \
	{                                                                     \
		sec, key, type, offsetof(struct conf, f), FIELD_SIZE(f), def, \
		    min, max, names, check, false                             \
	}
#define STR(sec, key, f, def, check) \
	ROW(sec, key, CONF_T_STR, f, def, 0, 0, NULL, check)
#define U32(sec, key, f, def, min, max) \
	ROW(sec, key, CONF_T_U32, f, def, min, max, NULL, NULL)
#define U64(sec, key, f, def, min, max) \
	ROW(sec, key, CONF_T_U64, f, def, min, max, NULL, NULL)
#define ENUM(sec, key, f, def, names) \
	ROW(sec, key, CONF_T_ENUM, f, def, 0, 0, names, NULL)
/* An enum key under an old name: sets the same field, never printed. */
#define ENUM_ALIAS(sec, key, f, def, names)                      \
	{                                                        \
		sec, key, CONF_T_ENUM, offsetof(struct conf, f), \
		    FIELD_SIZE(f), def, 0, 0, names, NULL, true  \
	}

static const struct conf_key conf_keys[] = {
    STR("node", "id", node_id, "auto", conf_check_node_id),
    STR("node", "runtime_dir", runtime_dir, "/run/wspush",
	conf_check_runtime_dir),
    ROW("node", "log_level", CONF_T_LOGLEVEL, log_level, "info", 0, 0, NULL,
	NULL),

    ROW("redis", "url", CONF_T_REDIS_URL, redis_url, "redis://127.0.0.1:6379",
	0, 0, NULL, NULL),
    STR("redis", "prefix", prefix, "wspush", conf_check_prefix),
    ENUM_ALIAS("redis", "routing", routing, "interest", conf_routing_names),
    ROW("redis", "cluster", CONF_T_BOOL, redis_cluster, "off", 0, 0, NULL,
	NULL),

    ENUM("broker", "kind", broker_kind, "redis", conf_broker_names),
    ENUM("broker", "routing", routing, "interest", conf_routing_names),

    STR("amqp", "url", amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f",
	conf_check_amqp_url),
    STR("amqp", "exchange", amqp_exchange, "wspush", conf_check_amqp_name),
    STR("amqp", "fanout_exchange", amqp_fanout_exchange, "",
	conf_check_amqp_name_opt),
    STR("amqp", "inbound_queue", amqp_inbound_queue, "wspush.inbound",
	conf_check_amqp_name),
    STR("amqp", "events_exchange", amqp_events_exchange, "wspush.events",
	conf_check_amqp_name),

    U32("history", "size", history_size, "0", 0, 1000000),
    U32("history", "ttl_s", history_ttl_s, "300", 1, 365u * 86400),
    U32("history", "user_size", history_user_size, "0", 0, 1000000),
    U32("history", "user_ttl_s", history_user_ttl_s, "86400", 1, 365u * 86400),
    U32("history", "max_recover", history_max_recover, "1000", 1, 100000),

    ROW("gateway", "listen", CONF_T_HOSTPORT, listen, "0.0.0.0:8080", 0, 0,
	NULL, NULL),
    ROW("gateway", "workers", CONF_T_U32_AUTO, workers, "auto", 1, 256, NULL,
	NULL),
    STR("gateway", "path", path, "/ws", conf_check_path),
    ENUM("gateway", "delivery", delivery, "envelope", conf_delivery_names),
    ENUM("gateway", "client_publish", client_publish, "channels",
	conf_publish_names),
    U32("gateway", "max_message_bytes", max_message_bytes, "65536", 1,
	16u * 1024 * 1024),
    U64("gateway", "max_queued_bytes", max_queued_bytes, "1048576", 1,
	(uint64_t)1 << 40),
    ENUM("gateway", "slow_client", slow_client, "close", conf_slow_names),
    ENUM("gateway", "event_loop", event_loop, "epoll", conf_loop_names),
    U32("gateway", "max_connections", max_connections, "0", 0, 10000000),
    U32("gateway", "max_subscriptions", max_subscriptions, "128", 1, 1000000),
    U32("gateway", "rate_limit_per_s", rate_limit_per_s, "50", 1, 1000000),
    U32("gateway", "rate_burst", rate_burst, "100", 1, 1000000),
    U32("gateway", "ping_interval_s", ping_interval_s, "25", 1, 3600),
    U32("gateway", "idle_timeout_s", idle_timeout_s, "60", 1, 86400),
    U32("gateway", "handshake_timeout_s", handshake_timeout_s, "10", 1, 3600),
    U32("gateway", "drain_timeout_s", drain_timeout_s, "10", 0, 3600),
    ROW("gateway", "allowed_origins", CONF_T_ORIGINS, allowed_origins_raw, "*",
	0, 0, NULL, NULL),
    ROW("gateway", "demo_page", CONF_T_BOOL, demo_page, "off", 0, 0, NULL,
	NULL),
    U64("gateway", "inbound_maxlen", inbound_maxlen, "100000", 1, UINT32_MAX),

    ENUM("auth", "mode", auth_mode, "jwt", conf_auth_names),
    ENUM("auth", "jwt_alg", jwt_alg, "HS256", conf_alg_names),
    STR("auth", "jwt_secret_file", jwt_secret_file, "", conf_check_file),
    STR("auth", "jwt_public_key_file", jwt_public_key_file, "",
	conf_check_file),
    U32("auth", "leeway_s", leeway_s, "30", 0, 3600),
    U32("auth", "timeout_s", auth_timeout_s, "10", 1, 3600),

    ROW("bridge", "metrics_listen", CONF_T_HOSTPORT, metrics_listen,
	"127.0.0.1:9480", 0, 0, NULL, NULL),
    U32("bridge", "heartbeat_ms", heartbeat_ms, "1000", 100, 60000),
    U32("bridge", "coalesce_ms", coalesce_ms, "2", 0, 50),
};

#define CONF_NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

static const char *const conf_sections[] = {
    "node", "redis", "broker", "amqp", "history", "gateway", "auth", "bridge"};
#define CONF_NSECTIONS (sizeof(conf_sections) / sizeof(conf_sections[0]))

/* State of one load: the reader's position and the first error. */
struct conf_ctx {
	struct conf *c;
	const char *name; /* file name for messages */
	const char *text;
	size_t len, pos;
	int lineno;            /* of the line inih handles now */
	int lines[CONF_NKEYS]; /* line that set each key; 0 = default */
	int failed;
	int fail_line; /* line of the recorded error */
	char *err;
	size_t errlen;
};

static void conf_fail(struct conf_ctx *x, int line, const char *what,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Records the first error as "name:line: what: reason"; line 0 is written
 * "(default)", and a negative line leaves the line out.
 */
static void
conf_fail(struct conf_ctx *x, int line, const char *what, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (x->failed)
		return;
	x->failed = 1;
	x->fail_line = line;
	if (x->err == NULL || x->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(x->err, x->errlen, "%s:%d: %s: %s", x->name, line,
		    what, why);
	else if (line == 0)
		snprintf(x->err, x->errlen, "%s:(default): %s: %s", x->name,
		    what, why);
	else
		snprintf(x->err, x->errlen, "%s: %s: %s", x->name, what, why);
}

static void
conf_fail_key(
    struct conf_ctx *x, int line, const struct conf_key *k, const char *why)
{
	char what[128];

	snprintf(what, sizeof(what), "%s.%s", k->section, k->key);
	conf_fail(x, line, what, "%s", why);
}

/* Strict unsigned decimal: digits only, no sign, no spaces, no overflow. */
static int
conf_parse_u64(const char *v, uint64_t *out)
{
	unsigned long long n;
	char *end;

	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno == ERANGE || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

static int
conf_parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* True if s has a byte below 0x20 or DEL. */
static bool
conf_has_ctl(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static int
conf_check_node_id(const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);

	if (strcmp(v, "auto") == 0)
		return 0;
	if (len == 0 || len >= CONF_NODE_ID_MAX || !addr_id_valid(v, len) ||
	    strpbrk(v, ".:") != NULL) {
		snprintf(why, whylen,
		    "expected \"auto\" or 1..%d printable characters without "
		    "whitespace, '.', ':' or '*'",
		    CONF_NODE_ID_MAX - 1);
		return -1;
	}
	return 0;
}

static int
conf_check_runtime_dir(const char *v, char *why, size_t whylen)
{
	if (v[0] != '/' || conf_has_ctl(v)) {
		snprintf(why, whylen, "expected an absolute directory path");
		return -1;
	}
	return 0;
}

/* The length of v's leading run of printable ASCII other than space and
 * the bytes in reject. */
static size_t
conf_span_graph(const char *v, const char *reject)
{
	size_t i;

	for (i = 0; v[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch <= 0x20 || ch >= 0x7f || strchr(reject, ch) != NULL)
			break;
	}
	return i;
}

static int
conf_check_prefix(const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v);

	if (len == 0 || len >= CONF_PREFIX_MAX ||
	    conf_span_graph(v, ":*") < len) {
		snprintf(why, whylen,
		    "expected 1..%d printable ASCII characters without "
		    "whitespace, ':' or '*'",
		    CONF_PREFIX_MAX - 1);
		return -1;
	}
	return 0;
}

static int
conf_check_path(const char *v, char *why, size_t whylen)
{
	if (v[0] != '/' || v[conf_span_graph(v, "?#")] != '\0') {
		snprintf(why, whylen,
		    "expected a URL path starting with '/' (printable ASCII, "
		    "no whitespace, '?' or '#')");
		return -1;
	}
	return 0;
}

static int
conf_check_file(const char *v, char *why, size_t whylen)
{
	if (conf_has_ctl(v)) {
		snprintf(why, whylen, "expected a file path");
		return -1;
	}
	return 0;
}

static int
conf_check_amqp_url(const char *v, char *why, size_t whylen)
{
	/* librabbitmq parses the rest (amqp_parse_url) when it connects;
	 * the scheme is checked here so a Redis URL pasted by mistake is
	 * caught at start. */
	if (conf_has_ctl(v) ||
	    (strncmp(v, "amqp://", 7) != 0 && strncmp(v, "amqps://", 8) != 0)) {
		snprintf(why, whylen,
		    "expected amqp://user:password@host:port/vhost");
		return -1;
	}
	if (strncmp(v, "amqps://", 8) == 0) {
		snprintf(why, whylen, "TLS (amqps://) is not supported yet");
		return -1;
	}
	return 0;
}

/* AMQP exchange and queue names: 1..255 of letters, digits, '-', '_',
 * '.' and ':' (RabbitMQ's own rule for names a client may declare). */
static int
conf_check_amqp_name(const char *v, char *why, size_t whylen)
{
	size_t len = strlen(v), i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (!isalnum(ch) && ch != '-' && ch != '_' && ch != '.' &&
		    ch != ':')
			break;
	}
	if (len == 0 || len >= CONF_AMQP_NAME_MAX || i < len ||
	    strncmp(v, "amq.", 4) == 0) {
		snprintf(why, whylen,
		    "expected 1..%d letters, digits, '-', '_', '.' or ':' "
		    "(not starting with \"amq.\", which RabbitMQ reserves)",
		    CONF_AMQP_NAME_MAX - 1);
		return -1;
	}
	return 0;
}

static int
conf_check_amqp_name_opt(const char *v, char *why, size_t whylen)
{
	return v[0] == '\0' ? 0 : conf_check_amqp_name(v, why, whylen);
}

/*
 * Loose IPv6 literal check (inet_pton at bind time is the real one): hex
 * digits, ':' and '.', at least one ':', then an optional "%zone".
 */
static bool
conf_v6_ok(const char *s, size_t len)
{
	size_t i;
	bool colon = false;

	for (i = 0; i < len && s[i] != '%'; i++) {
		if (s[i] == ':')
			colon = true;
		else if (!isxdigit((unsigned char)s[i]) && s[i] != '.')
			return false;
	}
	if (i < len) {
		if (i + 1 == len)
			return false;
		for (i++; i < len; i++) {
			if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
			    s[i] != '_' && s[i] != '.')
				return false;
		}
	}
	return colon;
}

/*
 * Parses "host:port", "[v6]:port"; host is a name, IPv4 or IPv6 address
 * (resolved at bind time), port 1..65535.
 */
static int
conf_parse_hostport(const char *v, struct conf_hostport *hp)
{
	const char *host, *colon, *p;
	size_t hlen;
	uint64_t port;

	if (v[0] == '[') {
		const char *rb = strchr(v, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		host = v + 1;
		hlen = (size_t)(rb - host);
		colon = rb + 1;
		if (!conf_v6_ok(host, hlen))
			return -1;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL)
			return -1;
		host = v;
		hlen = (size_t)(colon - v);
		for (p = host; p < colon; p++) {
			if (!isalnum((unsigned char)*p) && *p != '.' &&
			    *p != '-' && *p != '_')
				return -1;
		}
	}
	if (hlen == 0 || hlen >= sizeof(hp->host))
		return -1;
	if (conf_parse_u64(colon + 1, &port) == -1 || port < 1 || port > 65535)
		return -1;
	memset(hp->host, 0, sizeof(hp->host));
	memcpy(hp->host, host, hlen);
	hp->port = (uint16_t)port;
	return 0;
}

static int
conf_hex(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Percent-decodes [p, end) into out (outlen bytes with the NUL). %00 is
 * refused: the value goes into a C string. Returns 0, or -1.
 */
static int
conf_percent_decode(const char *p, const char *end, char *out, size_t outlen)
{
	size_t o = 0;

	for (; p < end; p++) {
		int ch = (unsigned char)*p;

		if (ch == '%') {
			int hi, lo;

			if (end - p < 3)
				return -1;
			hi = conf_hex((unsigned char)p[1]);
			lo = conf_hex((unsigned char)p[2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			ch = hi * 16 + lo;
			p += 2;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

/*
 * The credentials of redis://[[user]:password@]...: [auth, at) holds
 * "user:password" or ":password", each percent-encoded. A user without a
 * password cannot log in (AUTH needs one) and is refused.
 */
static int
conf_parse_redis_auth(const char *auth, const char *at, char *user, size_t ulen,
    char *pass, size_t plen)
{
	const char *colon = memchr(auth, ':', (size_t)(at - auth));

	if (colon == NULL || colon + 1 == at)
		return -1;
	if (conf_percent_decode(auth, colon, user, ulen) == -1 ||
	    conf_percent_decode(colon + 1, at, pass, plen) == -1)
		return -1;
	return 0;
}

/* "host", "[v6]" then an optional ":port", in [hp, end). */
static int
conf_parse_redis_host(
    const char *hp, const char *end, char *host, size_t hostlen, uint64_t *port)
{
	const char *p;
	size_t n;

	if (hp[0] == '[') {
		const char *rb = memchr(hp, ']', (size_t)(end - hp));
		if (rb == NULL)
			return -1;
		n = (size_t)(rb - hp - 1);
		if (n == 0 || n >= hostlen)
			return -1;
		memcpy(host, hp + 1, n);
		host[n] = '\0';
		if (!conf_v6_ok(host, n))
			return -1;
		p = rb + 1;
	} else {
		p = hp;
		while (p < end && *p != ':')
			p++;
		n = (size_t)(p - hp);
		if (n == 0 || n >= hostlen)
			return -1;
		memcpy(host, hp, n);
		host[n] = '\0';
		for (const char *q = host; *q != '\0'; q++) {
			if (!isalnum((unsigned char)*q) && *q != '.' &&
			    *q != '-' && *q != '_')
				return -1;
		}
	}
	if (p < end) {
		char num[8];

		if (*p != ':' || (size_t)(end - p - 1) >= sizeof(num))
			return -1;
		n = (size_t)(end - p - 1);
		memcpy(num, p + 1, n);
		num[n] = '\0';
		if (conf_parse_u64(num, port) == -1 || *port < 1 ||
		    *port > 65535)
			return -1;
	}
	return 0;
}

/*
 * Parses redis://[[user]:password@]host[:port][/db] and unix:///path into
 * c. User and password may be percent-encoded. Only database 0 is
 * accepted: streams live in one database and wspush never sends SELECT.
 */
static int
conf_parse_redis_url(struct conf *c, const char *v, char *why, size_t whylen)
{
	char host[256] = "", user[256] = "", pass[256] = "", upath[108] = "";
	const char *auth, *at, *end, *p;
	uint64_t port = 6379;
	size_t n;

	if (conf_has_ctl(v))
		goto bad;
	if (strncasecmp(v, "rediss://", 9) == 0) {
		snprintf(why, whylen,
		    "TLS (rediss://) is not supported with hiredis 0.14");
		return -1;
	}
	if (strncmp(v, "unix://", 7) == 0) {
		p = v + 7;
		n = strlen(p);
		if (p[0] != '/' || n >= sizeof(upath) || conf_has_ctl(p)) {
			snprintf(why, whylen,
			    "expected unix:///absolute/path (at most %zu "
			    "bytes)",
			    sizeof(upath) - 1);
			return -1;
		}
		memcpy(upath, p, n + 1);
		c->redis_kind = CONF_REDIS_UNIX;
		goto commit;
	}
	if (strncmp(v, "redis://", 8) != 0)
		goto bad;
	auth = v + 8;
	end = auth + strcspn(auth, "/");
	/* The password may contain '@'; the host part follows the last. */
	at = NULL;
	for (p = auth; p < end; p++) {
		if (*p == '@')
			at = p;
	}
	if (at != NULL && conf_parse_redis_auth(auth, at, user, sizeof(user),
			      pass, sizeof(pass)) == -1)
		goto bad;
	if (conf_parse_redis_host(at != NULL ? at + 1 : auth, end, host,
		sizeof(host), &port) == -1)
		goto bad;
	if (*end == '/' && end[1] != '\0') {
		uint64_t db;
		if (conf_parse_u64(end + 1, &db) == -1)
			goto bad;
		if (db != 0) {
			snprintf(why, whylen,
			    "only database 0 is supported (wspush never "
			    "sends SELECT)");
			return -1;
		}
	}
	c->redis_kind = CONF_REDIS_TCP;
commit:
	if (strlen(v) >= sizeof(c->redis_url)) {
		snprintf(why, whylen, "too long (at most %zu bytes)",
		    sizeof(c->redis_url) - 1);
		return -1;
	}
	memset(c->redis_url, 0, sizeof(c->redis_url));
	memcpy(c->redis_url, v, strlen(v));
	memcpy(c->redis_host, host, sizeof(c->redis_host));
	c->redis_port = (uint16_t)(c->redis_kind == CONF_REDIS_TCP ? port : 0);
	memcpy(c->redis_unix_path, upath, sizeof(c->redis_unix_path));
	memcpy(c->redis_user, user, sizeof(c->redis_user));
	memcpy(c->redis_password, pass, sizeof(c->redis_password));
	return 0;
bad:
	snprintf(why, whylen,
	    "expected redis://[[user]:password@]host[:port][/0] or "
	    "unix:///path");
	return -1;
}

/* Host name characters of an origin: letters, digits, '-', '.', '_'. */
static bool
conf_host_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_')
			return false;
		if (ch == '.' && s[i + 1] == '.')
			return false;
	}
	return true;
}

/*
 * Validates one allowed_origins entry: "scheme://host[:port]" (exact), a
 * wildcard host "*.domain" after "scheme://" (with an optional port), or a
 * bare "*.domain" (any scheme, no port).
 */
static bool
conf_origin_entry_ok(const char *e)
{
	const char *sep = strstr(e, "://"), *h, *colon, *p;
	uint64_t port;

	if (sep == NULL)
		return strncmp(e, "*.", 2) == 0 &&
		       conf_host_ok(e + 2, strlen(e + 2));
	if (sep == e)
		return false;
	for (p = e; p < sep; p++) {
		if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' &&
		    *p != '.')
			return false;
	}
	h = sep + 3;
	if (strncmp(h, "*.", 2) == 0)
		h += 2;
	colon = strchr(h, ':');
	if (colon != NULL) {
		if (conf_parse_u64(colon + 1, &port) == -1 || port < 1 ||
		    port > 65535)
			return false;
	} else {
		colon = h + strlen(h);
	}
	/* IPv6 literal origins are not supported as entries. */
	return conf_host_ok(h, (size_t)(colon - h));
}

static int
conf_parse_origins(struct conf *c, const char *v, char *why, size_t whylen)
{
	char list[CONF_ORIGINS_MAX][128];
	uint32_t n = 0;
	bool any = false;
	const char *p = v;

	if (strlen(v) >= sizeof(c->allowed_origins_raw)) {
		snprintf(why, whylen, "too long (at most %zu bytes)",
		    sizeof(c->allowed_origins_raw) - 1);
		return -1;
	}
	memset(list, 0, sizeof(list));
	for (;;) {
		size_t len;

		p += strspn(p, ", \t");
		if (*p == '\0')
			break;
		len = strcspn(p, ", \t");
		if (len == 1 && p[0] == '*') {
			any = true;
		} else {
			if (n == CONF_ORIGINS_MAX) {
				snprintf(why, whylen,
				    "too many origins (at most %d)",
				    CONF_ORIGINS_MAX);
				return -1;
			}
			if (len >= sizeof(list[0])) {
				snprintf(why, whylen,
				    "origin too long (at most %zu bytes)",
				    sizeof(list[0]) - 1);
				return -1;
			}
			memcpy(list[n], p, len);
			list[n][len] = '\0';
			for (size_t i = 0; i < len; i++)
				list[n][i] =
				    (char)tolower((unsigned char)list[n][i]);
			if (!conf_origin_entry_ok(list[n])) {
				snprintf(why, whylen,
				    "expected \"*\" or origins like "
				    "https://app.example.com, "
				    "https://*.example.com or *.example.com");
				return -1;
			}
			n++;
		}
		p += len;
	}
	if ((any && n > 0) || (!any && n == 0)) {
		snprintf(why, whylen,
		    any ? "\"*\" must be the only entry"
			: "expected \"*\" or a list of origins");
		return -1;
	}
	memset(c->allowed_origins_raw, 0, sizeof(c->allowed_origins_raw));
	memcpy(c->allowed_origins_raw, v, strlen(v));
	memcpy(c->allowed_origins, list, sizeof(list));
	c->n_allowed_origins = n;
	return 0;
}

/* "one of a, b or c" for enum errors. */
static void
conf_enum_expected(const char *const *names, char *why, size_t whylen)
{
	size_t o, i, n = 0;
	int w;

	while (names[n] != NULL)
		n++;
	w = snprintf(why, whylen, "expected");
	o = w > 0 ? (size_t)w : 0;
	for (i = 0; i < n && o < whylen; i++) {
		const char *sep = i == 0 ? " " : i + 1 == n ? " or " : ", ";
		w = snprintf(why + o, whylen - o, "%s\"%s\"", sep, names[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

/* Sets the field of k in c from the text v. */
static int
conf_set(struct conf *c, const struct conf_key *k, const char *v, char *why,
    size_t whylen)
{
	void *field = (char *)c + k->off;
	uint64_t n;
	size_t len;
	bool b;
	int i;

	switch (k->type) {
	case CONF_T_STR:
		len = strlen(v);
		if (len >= k->size) {
			snprintf(why, whylen, "too long (at most %zu bytes)",
			    k->size - 1);
			return -1;
		}
		/*
		 * inih reads "key =;x" as ";x" but "key = ;x" as empty, so
		 * such a value could not be printed back by conf_print().
		 */
		if (v[0] == ';') {
			snprintf(why, whylen,
			    "must not start with ';' (it starts a comment)");
			return -1;
		}
		if (k->check != NULL && k->check(v, why, whylen) == -1)
			return -1;
		memset(field, 0, k->size);
		memcpy(field, v, len);
		return 0;
	case CONF_T_U32:
	case CONF_T_U64:
		if (conf_parse_u64(v, &n) == -1 || n < k->min || n > k->max) {
			snprintf(why, whylen,
			    "expected an integer in %llu..%llu",
			    (unsigned long long)k->min,
			    (unsigned long long)k->max);
			return -1;
		}
		if (k->type == CONF_T_U32)
			*(uint32_t *)field = (uint32_t)n;
		else
			*(uint64_t *)field = n;
		return 0;
	case CONF_T_U32_AUTO:
		if (strcmp(v, "auto") == 0) {
			*(uint32_t *)field = 0;
			return 0;
		}
		if (conf_parse_u64(v, &n) == -1 || n < k->min || n > k->max) {
			snprintf(why, whylen, "expected %llu..%llu or \"auto\"",
			    (unsigned long long)k->min,
			    (unsigned long long)k->max);
			return -1;
		}
		*(uint32_t *)field = (uint32_t)n;
		return 0;
	case CONF_T_BOOL:
		if (conf_parse_bool(v, &b) == -1) {
			snprintf(why, whylen, "expected on or off");
			return -1;
		}
		*(bool *)field = b;
		return 0;
	case CONF_T_ENUM:
		for (i = 0; k->names[i] != NULL; i++) {
			if (strcasecmp(v, k->names[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		}
		conf_enum_expected(k->names, why, whylen);
		return -1;
	case CONF_T_LOGLEVEL:
		i = log_level_parse(v);
		if (i == -1) {
			snprintf(why, whylen,
			    "expected \"error\", \"warn\", \"notice\", "
			    "\"info\" or \"debug\"");
			return -1;
		}
		*(int *)field = i;
		return 0;
	case CONF_T_HOSTPORT:
		if (conf_parse_hostport(v, field) == -1) {
			snprintf(why, whylen,
			    "expected host:port or [ipv6]:port (port "
			    "1..65535)");
			return -1;
		}
		return 0;
	case CONF_T_REDIS_URL:
		return conf_parse_redis_url(c, v, why, whylen);
	case CONF_T_ORIGINS:
		return conf_parse_origins(c, v, why, whylen);
	}
	snprintf(why, whylen, "internal error: bad key type");
	return -1;
}

static const struct conf_key *
conf_key_find(const char *section, const char *key, size_t *idx)
{
	size_t i;

	for (i = 0; i < CONF_NKEYS; i++) {
		if (strcmp(conf_keys[i].section, section) == 0 &&
		    strcmp(conf_keys[i].key, key) == 0) {
			*idx = i;
			return &conf_keys[i];
		}
	}
	return NULL;
}

static size_t
conf_key_index(const char *section, const char *key)
{
	size_t i = 0;

	if (conf_key_find(section, key, &i) == NULL)
		abort(); /* programmer error: a key the table lacks */
	return i;
}

static bool
conf_section_known(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < CONF_NSECTIONS; i++) {
		if (strlen(conf_sections[i]) == len &&
		    memcmp(conf_sections[i], s, len) == 0)
			return true;
	}
	return false;
}

/* Field sizes must match the row types; checked once, abort if not. */
static void
conf_table_check(void)
{
	size_t i;

	for (i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];
		size_t want = 0;

		switch (k->type) {
		case CONF_T_U32:
		case CONF_T_U32_AUTO:
			want = sizeof(uint32_t);
			break;
		case CONF_T_U64:
			want = sizeof(uint64_t);
			break;
		case CONF_T_BOOL:
			want = sizeof(bool);
			break;
		case CONF_T_ENUM:
		case CONF_T_LOGLEVEL:
			want = sizeof(int);
			break;
		case CONF_T_HOSTPORT:
			want = sizeof(struct conf_hostport);
			break;
		default:
			want = k->size;
			break;
		}
		if (want != k->size)
			abort();
	}
}

void
conf_defaults(struct conf *c)
{
	char why[256];
	size_t i;

	conf_table_check();
	memset(c, 0, sizeof(*c));
	for (i = 0; i < CONF_NKEYS; i++) {
		if (conf_set(c, &conf_keys[i], conf_keys[i].def, why,
			sizeof(why)) == -1)
			abort(); /* a default the parser rejects */
	}
}

/*
 * inih reader over x->text (fgets semantics). Counts lines, and handles
 * what inih would get wrong: a line longer than its buffer (inih would
 * parse the rest as a new line) and unknown sections (inih does not call
 * the handler for a section without keys).
 */
static char *
conf_reader(char *str, int num, void *stream)
{
	struct conf_ctx *x = stream;
	size_t n = 0, max;
	const char *s;

	if (x->pos >= x->len || num < 2)
		return NULL;
	x->lineno++;
	max = (size_t)num - 1;
	while (x->pos < x->len && n < max) {
		char ch = x->text[x->pos++];
		str[n++] = ch;
		if (ch == '\n')
			break;
	}
	str[n] = '\0';
	if (n == max && str[n - 1] != '\n' && x->pos < x->len) {
		if (x->text[x->pos] == '\n') {
			x->pos++; /* the line fits without its newline */
		} else {
			conf_fail(x, x->lineno, "line",
			    "too long (at most %d bytes)", num - 2);
			while (x->pos < x->len && x->text[x->pos++] != '\n')
				;
			str[0] = '\0';
			return str;
		}
	}
	s = str;
	if (x->lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	s += strspn(s, " \t\r\n\v\f");
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (rb != NULL) {
			const char *b = s + 1;
			size_t len;

			b += strspn(b, " \t");
			len = (size_t)(rb - b);
			while (len > 0 &&
			       (b[len - 1] == ' ' || b[len - 1] == '\t'))
				len--;
			if (!conf_section_known(b, len)) {
				char what[80];

				snprintf(what, sizeof(what), "[%.*s]",
				    (int)(len > 64 ? 64 : len), b);
				conf_fail(
				    x, x->lineno, what, "unknown section");
			}
		}
	}
	return str;
}

static int
conf_handler(
    void *user, const char *section, const char *name, const char *value)
{
	struct conf_ctx *x = user;
	const struct conf_key *k;
	char why[256];
	size_t i;

	char sec[64];
	const char *sp;
	size_t sl;

	if (x->failed)
		return 1;
	/* "[ gateway ]" names [gateway], as the reader decided. */
	sp = section + strspn(section, " \t");
	sl = strlen(sp);
	while (sl > 0 && (sp[sl - 1] == ' ' || sp[sl - 1] == '\t'))
		sl--;
	if (sl >= sizeof(sec))
		sl = sizeof(sec) - 1;
	memcpy(sec, sp, sl);
	sec[sl] = '\0';
	section = sec;
	if (section[0] == '\0') {
		conf_fail(x, x->lineno, name, "key outside of a [section]");
		return 1;
	}
	k = conf_key_find(section, name, &i);
	if (k == NULL) {
		char what[128];

		snprintf(what, sizeof(what), "%s.%s", section, name);
		conf_fail(x, x->lineno, what, "unknown key");
		return 1;
	}
	if (conf_set(x->c, k, value, why, sizeof(why)) == -1) {
		conf_fail_key(x, x->lineno, k, why);
		return 1;
	}
	x->lines[i] = x->lineno;
	return 1;
}

/* Line of the later of two keys, and which one it is. */
static size_t
conf_later(const struct conf_ctx *x, size_t a, size_t b)
{
	return x->lines[b] > x->lines[a] ? b : a;
}

/* Checks that relate several keys; the later key is blamed. */
static void
conf_check_cross(struct conf_ctx *x)
{
	const struct conf *c = x->c;
	size_t ping = conf_key_index("gateway", "ping_interval_s");
	size_t idle = conf_key_index("gateway", "idle_timeout_s");
	size_t msg = conf_key_index("gateway", "max_message_bytes");
	size_t queued = conf_key_index("gateway", "max_queued_bytes");
	size_t burst = conf_key_index("gateway", "rate_burst");
	size_t k;
	char why[256];

	if (c->idle_timeout_s <= c->ping_interval_s) {
		k = conf_later(x, ping, idle);
		snprintf(why, sizeof(why),
		    "gateway.idle_timeout_s (%u) must be greater than "
		    "gateway.ping_interval_s (%u)",
		    c->idle_timeout_s, c->ping_interval_s);
		conf_fail_key(x, x->lines[k], &conf_keys[k], why);
	}
	if (c->rate_burst < 1)
		conf_fail_key(x, x->lines[burst], &conf_keys[burst],
		    "must be at least 1");
	if (c->max_message_bytes < 1 ||
	    c->max_message_bytes > 16u * 1024 * 1024)
		conf_fail_key(x, x->lines[msg], &conf_keys[msg],
		    "expected an integer in 1..16777216");
	if (c->max_queued_bytes < c->max_message_bytes) {
		k = conf_later(x, msg, queued);
		snprintf(why, sizeof(why),
		    "gateway.max_queued_bytes (%llu) must be at least "
		    "gateway.max_message_bytes (%u)",
		    (unsigned long long)c->max_queued_bytes,
		    c->max_message_bytes);
		conf_fail_key(x, x->lines[k], &conf_keys[k], why);
	}
}

/* Checks of the auth keys for auth.mode = jwt. */
static void
conf_check_auth(struct conf_ctx *x)
{
	const struct conf *c = x->c;
	size_t mode = conf_key_index("auth", "mode");
	size_t alg = conf_key_index("auth", "jwt_alg");
	size_t k;

	if (c->auth_mode != CONF_AUTH_JWT)
		return;
	k = conf_later(x, mode, alg);
	if (c->jwt_alg == CONF_JWT_HS256 && c->jwt_secret_file[0] == '\0')
		conf_fail_key(x, x->lines[k], &conf_keys[k],
		    "jwt_alg HS256 needs auth.jwt_secret_file");
	else if (c->jwt_alg != CONF_JWT_HS256 &&
		 c->jwt_public_key_file[0] == '\0')
		conf_fail_key(x, x->lines[k], &conf_keys[k],
		    "jwt_alg RS256 and ES256 need auth.jwt_public_key_file");
}

/*
 * Checks of the broker keys: the routing alias, what Redis Cluster and
 * RabbitMQ cannot do, and what this build does not implement yet.
 */
static void
conf_check_broker(struct conf_ctx *x)
{
	struct conf *c = x->c;
	size_t alias = conf_key_index("redis", "routing");
	size_t routing = conf_key_index("broker", "routing");
	size_t kind = conf_key_index("broker", "kind");
	size_t cluster = conf_key_index("redis", "cluster");
	size_t size = conf_key_index("history", "size");
	size_t k;

	c->routing_alias_line = x->lines[alias];
	if (x->lines[alias] > 0 && x->lines[routing] > 0) {
		k = conf_later(x, alias, routing);
		conf_fail_key(x, x->lines[k], &conf_keys[k],
		    "broker.routing is also set: keep only [broker] routing "
		    "(redis.routing is its old name)");
		return;
	}
	k = x->lines[alias] > 0 ? alias : routing;
	if (c->redis_cluster && c->routing == CONF_ROUTING_BROADCAST) {
		conf_fail_key(x, x->lines[k], &conf_keys[k],
		    "broadcast routing is not possible with redis.cluster = "
		    "on (sharded pub/sub has no pattern subscriptions)");
		return;
	}
	if (c->broker_kind == CONF_BROKER_AMQP && c->history_size > 0) {
		k = conf_later(x, kind, size);
		conf_fail_key(x, x->lines[k], &conf_keys[k],
		    "history is not available with broker.kind = amqp (it "
		    "is kept in Redis streams)");
		return;
	}
	if (c->broker_kind == CONF_BROKER_AMQP && c->redis_cluster) {
		k = conf_later(x, kind, cluster);
		conf_fail_key(x, x->lines[k], &conf_keys[k],
		    "redis.cluster applies only to broker.kind = redis");
		return;
	}
}

/* Parses len bytes of text (NUL-terminated at len) into c. */
static int
conf_load_text(struct conf *c, const char *name, const char *text, size_t len,
    char *err, size_t errlen)
{
	struct conf_ctx x;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	conf_defaults(c);
	snprintf(c->file, sizeof(c->file), "%s", name);
	memset(&x, 0, sizeof(x));
	x.c = c;
	x.name = name;
	x.text = text;
	x.len = len;
	x.err = err;
	x.errlen = errlen;

	/* Process-global inih options (see the file comment). */
	ini_allow_multiline = false;
	ini_allow_inline_comments = true;
	ini_allow_no_value = false;
	ini_allow_bom = true;
	ini_use_stack = true;
	ini_max_line = CONF_LINE_MAX;
	ini_stop_on_first_error = false;

	rc = ini_parse_stream(conf_reader, &x, conf_handler, &x);
	if (rc == -2) {
		conf_fail(&x, -1, "read", "out of memory");
	} else if (rc > 0) {
		/* inih reports syntax errors only at the end: keep order. */
		if (x.failed && x.fail_line > rc)
			x.failed = 0;
		conf_fail(&x, rc, "syntax",
		    "expected \"key = value\", \"[section]\" or a comment");
	} else if (rc != 0) {
		conf_fail(&x, -1, "read", "cannot parse");
	}
	if (!x.failed)
		conf_check_cross(&x);
	if (!x.failed)
		conf_check_auth(&x);
	if (!x.failed)
		conf_check_broker(&x);
	return x.failed ? -1 : 0;
}

int
conf_load_string(struct conf *c, const char *name, const char *text, char *err,
    size_t errlen)
{
	if (name == NULL)
		name = "(string)";
	if (text == NULL)
		text = "";
	return conf_load_text(c, name, text, strlen(text), err, errlen);
}

int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
	char *buf = NULL, dummy[1];
	size_t len = 0, cap = 0;
	FILE *f;
	int rc;

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (strlen(path) >= sizeof(c->file)) {
		snprintf(err, errlen, "%.64s...: path too long", path);
		return -1;
	}
	f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		size_t r;

		if (len + 1 >= cap) {
			char *nb;

			if (cap >= CONF_FILE_MAX) {
				snprintf(err, errlen,
				    "%s: file too large (at most %d bytes)",
				    path, CONF_FILE_MAX);
				goto fail;
			}
			cap = cap == 0 ? 8192 : cap * 2;
			nb = realloc(buf, cap + 1);
			if (nb == NULL) {
				snprintf(
				    err, errlen, "%s: out of memory", path);
				goto fail;
			}
			buf = nb;
		}
		r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0) {
			if (ferror(f)) {
				snprintf(err, errlen, "%s: read: %s", path,
				    strerror(errno));
				goto fail;
			}
			break;
		}
	}
	fclose(f);
	f = NULL;
	if (buf == NULL)
		buf = calloc(1, 1);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		int line = 1;
		const char *p;

		for (p = buf; *p != '\0'; p++)
			line += *p == '\n';
		snprintf(err, errlen, "%s:%d: file: contains a NUL byte", path,
		    line);
		free(buf);
		return -1;
	}
	rc = conf_load_text(c, path, buf, len, err, errlen);
	free(buf);
	return rc;
fail:
	free(buf);
	if (f != NULL)
		fclose(f);
	return -1;
}

static void
conf_print_value(const struct conf *c, const struct conf_key *k, FILE *f)
{
	const void *field = (const char *)c + k->off;
	const struct conf_hostport *hp;
	uint32_t u;
	int i;

	switch (k->type) {
	case CONF_T_STR:
	case CONF_T_REDIS_URL:
		fputs(field, f);
		break;
	case CONF_T_U32:
		fprintf(f, "%u", *(const uint32_t *)field);
		break;
	case CONF_T_U64:
		fprintf(
		    f, "%llu", (unsigned long long)*(const uint64_t *)field);
		break;
	case CONF_T_U32_AUTO:
		u = *(const uint32_t *)field;
		if (u == 0)
			fputs("auto", f);
		else
			fprintf(f, "%u", u);
		break;
	case CONF_T_BOOL:
		fputs(*(const bool *)field ? "on" : "off", f);
		break;
	case CONF_T_ENUM:
		i = *(const int *)field;
		fputs(k->names[i], f);
		break;
	case CONF_T_LOGLEVEL:
		fputs(log_level_str(*(const int *)field), f);
		break;
	case CONF_T_HOSTPORT:
		hp = field;
		if (strchr(hp->host, ':') != NULL)
			fprintf(f, "[%s]:%u", hp->host, hp->port);
		else
			fprintf(f, "%s:%u", hp->host, hp->port);
		break;
	case CONF_T_ORIGINS:
		if (c->n_allowed_origins == 0)
			fputs("*", f);
		for (u = 0; u < c->n_allowed_origins; u++)
			fprintf(f, "%s%s", u > 0 ? ", " : "",
			    c->allowed_origins[u]);
		break;
	}
}

void
conf_print(const struct conf *c, FILE *f)
{
	const char *section = NULL;
	size_t i;

	if (c->file[0] != '\0' && !conf_has_ctl(c->file))
		fprintf(f, "# effective configuration of %s\n", c->file);
	else
		fprintf(f, "# effective configuration\n");
	for (i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->alias)
			continue;
		if (section == NULL || strcmp(section, k->section) != 0) {
			fprintf(f, "%s[%s]\n", section == NULL ? "" : "\n",
			    k->section);
			section = k->section;
		}
		/* No trailing blank for empty values (file paths). */
		if (k->type == CONF_T_STR &&
		    *((const char *)c + k->off) == '\0') {
			fprintf(f, "%s =\n", k->key);
			continue;
		}
		fprintf(f, "%s = ", k->key);
		conf_print_value(c, k, f);
		fputc('\n', f);
	}
}

void
conf_log_warnings(const struct conf *c)
{
	if (c->routing_alias_line > 0)
		log_warnx("%s:%d: redis.routing is the old name of "
			  "broker.routing: move it to [broker]",
		    c->file, c->routing_alias_line);
}

uint32_t
conf_workers(const struct conf *c)
{
	long n;

	if (c->workers > 0)
		return c->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	if (n > 256)
		return 256;
	return (uint32_t)n;
}

static void
conf_ipc_url(const struct conf *c, const char *file, char *buf, size_t len)
{
	const char *dir = c->runtime_dir;
	size_t dl = strlen(dir);

	/* "/run/wspush/" and "/run/wspush" give the same URL. */
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	if (dl == 1 && dir[0] == '/')
		dl = 0;
	snprintf(buf, len, "ipc://%.*s/%s", (int)dl, dir, file);
}

void
conf_bus_url(const struct conf *c, char *buf, size_t len)
{
	conf_ipc_url(c, "bus.ipc", buf, len);
}

void
conf_up_url(const struct conf *c, char *buf, size_t len)
{
	conf_ipc_url(c, "up.ipc", buf, len);
}

void
conf_stats_url(const struct conf *c, char *buf, size_t len)
{
	conf_ipc_url(c, "stats.ipc", buf, len);
}

/*
 * Matches an Origin header against the list. Exact entries compare whole
 * (case-insensitively). A wildcard "*.example.com" matches hosts with one or
 * more labels before ".example.com" ("a.example.com", "a.b.example.com"),
 * never "example.com" itself. With a scheme (https:// then *.example.com,
 * optionally :port) the scheme and port must match too; without one any
 * scheme matches but the origin must carry no port.
 */
bool
conf_origin_allowed(const struct conf *c, const char *origin)
{
	const char *sep, *host, *port;
	size_t slen, hlen, i;

	if (c->n_allowed_origins == 0)
		return true;
	if (origin == NULL)
		return false;
	sep = strstr(origin, "://");
	if (sep == NULL)
		return false;
	slen = (size_t)(sep - origin);
	host = sep + 3;
	port = strchr(host, ':');
	hlen = port != NULL ? (size_t)(port - host) : strlen(host);
	if (!conf_host_ok(host, hlen))
		return false;
	for (i = 0; i < c->n_allowed_origins && i < CONF_ORIGINS_MAX; i++) {
		const char *e = c->allowed_origins[i], *esep, *eh, *eport;
		size_t dlen, ehlen;

		if (strcasecmp(e, origin) == 0)
			return true;
		esep = strstr(e, "://");
		if (esep != NULL) {
			if ((size_t)(esep - e) != slen ||
			    strncasecmp(e, origin, slen) != 0)
				continue;
			eh = esep + 3;
		} else {
			eh = e;
		}
		if (strncmp(eh, "*.", 2) != 0)
			continue;
		eh += 1; /* keep the dot: ".example.com" */
		eport = strchr(eh, ':');
		ehlen = eport != NULL ? (size_t)(eport - eh) : strlen(eh);
		/* Ports: both absent, or equal. */
		if ((eport == NULL) != (port == NULL))
			continue;
		if (eport != NULL && strcasecmp(eport, port) != 0)
			continue;
		dlen = ehlen;
		if (hlen <= dlen)
			continue; /* the bare domain or shorter */
		if (strncasecmp(host + hlen - dlen, eh, dlen) != 0)
			continue;
		return true;
	}
	return false;
}
