/*
 * conf_test.c - wspush.conf: defaults, every error class with its exact
 * "file:line: section.key: reason" text, Redis URL forms, origin matching,
 * the conf_print round trip, and file loading.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

/* auth.mode = jwt is the default and needs a key file. */
#define NONE "[auth]\nmode = none\n"

static struct conf c;
static char err[512];

static int
load(const char *text)
{
	err[0] = '\0';
	return conf_load_string(&c, "wspush.conf", text, err, sizeof(err));
}

static void
load_ok(const char *text)
{
	if (load(text) != 0)
		fail_msg("rejected: %s", err);
}

static void
defaults_are_those_of_the_design(void **state)
{
	conf_defaults(&c);
	assert_string_equal(c.file, "");
	assert_string_equal(c.node_id, "auto");
	assert_string_equal(c.runtime_dir, "/run/wspush");
	assert_int_equal(c.log_level, LOG_INFO);
	assert_string_equal(c.redis_url, "redis://127.0.0.1:6379");
	assert_int_equal(c.redis_kind, CONF_REDIS_TCP);
	assert_string_equal(c.redis_host, "127.0.0.1");
	assert_int_equal(c.redis_port, 6379);
	assert_string_equal(c.redis_password, "");
	assert_string_equal(c.prefix, "wspush");
	assert_int_equal(c.routing, CONF_ROUTING_INTEREST);
	assert_string_equal(c.listen.host, "0.0.0.0");
	assert_int_equal(c.listen.port, 8080);
	assert_int_equal(c.workers, 0);
	assert_string_equal(c.path, "/ws");
	assert_int_equal(c.delivery, CONF_DELIVERY_ENVELOPE);
	assert_int_equal(c.client_publish, CONF_PUBLISH_CHANNELS);
	assert_int_equal(c.max_message_bytes, 65536);
	assert_int_equal(c.max_queued_bytes, 1048576);
	assert_int_equal(c.slow_client, CONF_SLOW_CLOSE);
	assert_int_equal(c.max_connections, 0);
	assert_int_equal(c.max_subscriptions, 128);
	assert_int_equal(c.rate_limit_per_s, 50);
	assert_int_equal(c.rate_burst, 100);
	assert_int_equal(c.ping_interval_s, 25);
	assert_int_equal(c.idle_timeout_s, 60);
	assert_int_equal(c.handshake_timeout_s, 10);
	assert_int_equal(c.drain_timeout_s, 10);
	assert_int_equal(c.n_allowed_origins, 0);
	assert_false(c.demo_page);
	assert_int_equal(c.inbound_maxlen, 100000);
	assert_int_equal(c.auth_mode, CONF_AUTH_JWT);
	assert_int_equal(c.jwt_alg, CONF_JWT_HS256);
	assert_string_equal(c.jwt_secret_file, "");
	assert_string_equal(c.jwt_public_key_file, "");
	assert_int_equal(c.leeway_s, 30);
	assert_int_equal(c.auth_timeout_s, 10);
	assert_string_equal(c.metrics_listen.host, "127.0.0.1");
	assert_int_equal(c.metrics_listen.port, 9480);
	assert_int_equal(c.heartbeat_ms, 1000);
	assert_int_equal(c.coalesce_ms, 2);
}

static void
a_file_saying_only_mode_none_loads_the_defaults(void **state)
{
	load_ok(NONE);
	assert_string_equal(c.file, "wspush.conf");
	assert_int_equal(c.auth_mode, CONF_AUTH_NONE);
	assert_int_equal(c.listen.port, 8080);
	assert_int_equal(c.max_message_bytes, 65536);
}

static void
every_key_can_be_set(void **state)
{
	load_ok("; a comment\n# another\n"
		"[node]\nid = node-7\nruntime_dir = /tmp/w\nlog_level = debug\n"
		"[redis]\nurl = redis://:s3cret@redis.local:6380\n"
		"prefix = app1\nrouting = broadcast\n"
		"[gateway]\nlisten = [::1]:9000\nworkers = 3\npath = /push\n"
		"delivery = raw\nclient_publish = all\n"
		"max_message_bytes = 1000\nmax_queued_bytes = 5000\n"
		"slow_client = drop_oldest\nmax_connections = 10\n"
		"max_subscriptions = 5\nrate_limit_per_s = 7\nrate_burst = 8\n"
		"ping_interval_s = 5\nidle_timeout_s = 11\n"
		"handshake_timeout_s = 3\ndrain_timeout_s = 0\n"
		"allowed_origins = https://a.example.com, *.b.example\n"
		"demo_page = yes\ninbound_maxlen = 42\n"
		"[auth]\nmode = none\njwt_alg = ES256\n"
		"jwt_secret_file = /etc/s\njwt_public_key_file = k.pem\n"
		"leeway_s = 0\ntimeout_s = 4\n"
		"[bridge]\nmetrics_listen = localhost:1\nheartbeat_ms = 250\n");
	assert_string_equal(c.node_id, "node-7");
	assert_string_equal(c.runtime_dir, "/tmp/w");
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_string_equal(c.redis_host, "redis.local");
	assert_int_equal(c.redis_port, 6380);
	assert_string_equal(c.redis_password, "s3cret");
	assert_string_equal(c.prefix, "app1");
	assert_int_equal(c.routing, CONF_ROUTING_BROADCAST);
	assert_string_equal(c.listen.host, "::1");
	assert_int_equal(c.listen.port, 9000);
	assert_int_equal(c.workers, 3);
	assert_string_equal(c.path, "/push");
	assert_int_equal(c.delivery, CONF_DELIVERY_RAW);
	assert_int_equal(c.client_publish, CONF_PUBLISH_ALL);
	assert_int_equal(c.max_message_bytes, 1000);
	assert_int_equal(c.max_queued_bytes, 5000);
	assert_int_equal(c.slow_client, CONF_SLOW_DROP_OLDEST);
	assert_int_equal(c.max_connections, 10);
	assert_int_equal(c.max_subscriptions, 5);
	assert_int_equal(c.rate_limit_per_s, 7);
	assert_int_equal(c.rate_burst, 8);
	assert_int_equal(c.ping_interval_s, 5);
	assert_int_equal(c.idle_timeout_s, 11);
	assert_int_equal(c.handshake_timeout_s, 3);
	assert_int_equal(c.drain_timeout_s, 0);
	assert_int_equal(c.n_allowed_origins, 2);
	assert_string_equal(c.allowed_origins[0], "https://a.example.com");
	assert_string_equal(c.allowed_origins[1], "*.b.example");
	assert_true(c.demo_page);
	assert_int_equal(c.inbound_maxlen, 42);
	assert_int_equal(c.auth_mode, CONF_AUTH_NONE);
	assert_int_equal(c.jwt_alg, CONF_JWT_ES256);
	assert_string_equal(c.jwt_secret_file, "/etc/s");
	assert_string_equal(c.jwt_public_key_file, "k.pem");
	assert_int_equal(c.leeway_s, 0);
	assert_int_equal(c.auth_timeout_s, 4);
	assert_string_equal(c.metrics_listen.host, "localhost");
	assert_int_equal(c.metrics_listen.port, 1);
	assert_int_equal(c.heartbeat_ms, 250);
}

static void
the_last_of_duplicate_keys_wins(void **state)
{
	load_ok(NONE "[gateway]\nworkers = 2\nworkers = 4\n[gateway]\n"
		     "path = /a\n[gateway]\npath = /b\n");
	assert_int_equal(c.workers, 4);
	assert_string_equal(c.path, "/b");
}

static void
syntax_variants_are_accepted(void **state)
{
	/* BOM, CRLF, indentation, inline comments, name: value, auto. */
	load_ok("\xef\xbb\xbf[auth]\r\nmode = none ; inline comment\r\n"
		"  [gateway]  \n\tworkers: auto\n  demo_page=TRUE\n"
		"[ bridge ]\nheartbeat_ms=100\n\n\n");
	assert_int_equal(c.workers, 0);
	assert_true(c.demo_page);
	assert_int_equal(c.heartbeat_ms, 100);
}

static void
booleans_accept_the_usual_spellings(void **state)
{
	static const char *const t[] = {"on", "true", "yes", "1", "ON", "Yes"};
	static const char *const f[] = {"off", "false", "no", "0", "OFF"};
	char text[128];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(
		    text, sizeof(text), NONE "[gateway]\ndemo_page=%s\n", t[i]);
		load_ok(text);
		assert_true(c.demo_page);
	}
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		snprintf(
		    text, sizeof(text), NONE "[gateway]\ndemo_page=%s\n", f[i]);
		load_ok(text);
		assert_false(c.demo_page);
	}
}

static const struct {
	const char *text;
	const char *err;
} bad_configs[] = {
    /* Unknown things. */
    {NONE "[gatway]\nworkers = 2\n",
	"wspush.conf:3: [gatway]: unknown section"},
    {NONE "\n[empty_unknown]\n",
	"wspush.conf:4: [empty_unknown]: unknown section"},
    {NONE "[gateway]\nwrokers = 2\n",
	"wspush.conf:4: gateway.wrokers: unknown key"},
    {"workers = 2\n", "wspush.conf:1: workers: key outside of a [section]"},
    /* Syntax. */
    {NONE "[gateway\n",
	"wspush.conf:3: syntax: expected \"key = value\", \"[section]\" or "
	"a comment"},
    {NONE "[gateway]\njust words\n",
	"wspush.conf:4: syntax: expected \"key = value\", \"[section]\" or "
	"a comment"},
    {NONE "[gateway]\n  continued = x\n  more\n",
	"wspush.conf:4: gateway.continued: unknown key"},
    /* Numbers: strict decimal with range. */
    {NONE "[gateway]\nworkers = 0\n",
	"wspush.conf:4: gateway.workers: expected 1..256 or \"auto\""},
    {NONE "[gateway]\nworkers = 257\n",
	"wspush.conf:4: gateway.workers: expected 1..256 or \"auto\""},
    {NONE "[gateway]\nworkers = 4x\n",
	"wspush.conf:4: gateway.workers: expected 1..256 or \"auto\""},
    {NONE "[gateway]\nworkers = Auto\n",
	"wspush.conf:4: gateway.workers: expected 1..256 or \"auto\""},
    {NONE "[gateway]\nmax_subscriptions = -1\n",
	"wspush.conf:4: gateway.max_subscriptions: expected an integer in "
	"1..1000000"},
    {NONE "[gateway]\nmax_subscriptions = +5\n",
	"wspush.conf:4: gateway.max_subscriptions: expected an integer in "
	"1..1000000"},
    {NONE "[gateway]\nmax_subscriptions = 0x10\n",
	"wspush.conf:4: gateway.max_subscriptions: expected an integer in "
	"1..1000000"},
    {NONE "[gateway]\nmax_subscriptions =\n",
	"wspush.conf:4: gateway.max_subscriptions: expected an integer in "
	"1..1000000"},
    {NONE "[gateway]\nmax_queued_bytes = 99999999999999999999999\n",
	"wspush.conf:4: gateway.max_queued_bytes: expected an integer in "
	"1..1099511627776"},
    {NONE "[gateway]\nmax_message_bytes = 16777217\n",
	"wspush.conf:4: gateway.max_message_bytes: expected an integer in "
	"1..16777216"},
    {NONE "[gateway]\nrate_burst = 0\n",
	"wspush.conf:4: gateway.rate_burst: expected an integer in "
	"1..1000000"},
    {NONE "[bridge]\nheartbeat_ms = 99\n",
	"wspush.conf:4: bridge.heartbeat_ms: expected an integer in "
	"100..60000"},
    /* Enums, booleans, levels. */
    {NONE "[redis]\nrouting = fanout\n",
	"wspush.conf:4: redis.routing: expected \"interest\" or "
	"\"broadcast\""},
    {NONE "[gateway]\nclient_publish = some\n",
	"wspush.conf:4: gateway.client_publish: expected \"off\", "
	"\"channels\", \"users\" or \"all\""},
    {NONE "[gateway]\ndemo_page = maybe\n",
	"wspush.conf:4: gateway.demo_page: expected on or off"},
    {NONE "[node]\nlog_level = warning\n",
	"wspush.conf:4: node.log_level: expected \"error\", \"warn\", "
	"\"notice\", \"info\" or \"debug\""},
    {NONE "[auth]\njwt_alg = none\n",
	"wspush.conf:4: auth.jwt_alg: expected \"HS256\", \"RS256\" or "
	"\"ES256\""},
    /* Strings with a syntax. */
    {NONE "[node]\nid = a.b\n",
	"wspush.conf:4: node.id: expected \"auto\" or 1..63 printable "
	"characters without whitespace, '.', ':' or '*'"},
    {NONE "[node]\nid = a:b\n",
	"wspush.conf:4: node.id: expected \"auto\" or 1..63 printable "
	"characters without whitespace, '.', ':' or '*'"},
    {NONE "[node]\nid = a b\n",
	"wspush.conf:4: node.id: expected \"auto\" or 1..63 printable "
	"characters without whitespace, '.', ':' or '*'"},
    {NONE "[node]\nid = "
	  "0123456789012345678901234567890123456789012345678901234567890123"
	  "\n",
	"wspush.conf:4: node.id: too long (at most 63 bytes)"},
    {NONE "[node]\nruntime_dir = run/wspush\n",
	"wspush.conf:4: node.runtime_dir: expected an absolute directory "
	"path"},
    {NONE "[node]\nruntime_dir = /"
	  "123456789012345678901234567890123456789012345678901234567890123"
	  "456789012345678901234567890123456\n",
	"wspush.conf:4: node.runtime_dir: too long (at most 95 bytes)"},
    {NONE "[redis]\nprefix = a:b\n",
	"wspush.conf:4: redis.prefix: expected 1..63 printable ASCII "
	"characters without whitespace, ':' or '*'"},
    {NONE "[redis]\nprefix =\n",
	"wspush.conf:4: redis.prefix: expected 1..63 printable ASCII "
	"characters without whitespace, ':' or '*'"},
    {NONE "[gateway]\npath = ws\n",
	"wspush.conf:4: gateway.path: expected a URL path starting with '/' "
	"(printable ASCII, no whitespace, '?' or '#')"},
    {NONE "[gateway]\nlisten = 8080\n",
	"wspush.conf:4: gateway.listen: expected host:port or [ipv6]:port "
	"(port 1..65535)"},
    {NONE "[gateway]\nlisten = ::1:8080\n",
	"wspush.conf:4: gateway.listen: expected host:port or [ipv6]:port "
	"(port 1..65535)"},
    {NONE "[bridge]\nmetrics_listen = 127.0.0.1:0\n",
	"wspush.conf:4: bridge.metrics_listen: expected host:port or "
	"[ipv6]:port (port 1..65535)"},
    {NONE "[bridge]\nmetrics_listen = 127.0.0.1:65536\n",
	"wspush.conf:4: bridge.metrics_listen: expected host:port or "
	"[ipv6]:port (port 1..65535)"},
    {NONE "[auth]\njwt_secret_file =;x\n",
	"wspush.conf:4: auth.jwt_secret_file: must not start with ';' (it "
	"starts a comment)"},
    /* Redis URLs. */
    {NONE "[redis]\nurl = rediss://h:6379\n",
	"wspush.conf:4: redis.url: TLS (rediss://) is not supported with "
	"hiredis 0.14"},
    {NONE "[redis]\nurl = http://h:6379\n",
	"wspush.conf:4: redis.url: expected "
	"redis://[[user]:password@]host[:port][/0] or unix:///path"},
    /* A user name without a password cannot AUTH. */
    {NONE "[redis]\nurl = redis://user@h\n",
	"wspush.conf:4: redis.url: expected "
	"redis://[[user]:password@]host[:port][/0] or unix:///path"},
    {NONE "[redis]\nurl = redis://user:@h\n",
	"wspush.conf:4: redis.url: expected "
	"redis://[[user]:password@]host[:port][/0] or unix:///path"},
    {NONE "[redis]\nurl = redis://us%00er:pw@h\n",
	"wspush.conf:4: redis.url: expected "
	"redis://[[user]:password@]host[:port][/0] or unix:///path"},
    {NONE "[redis]\nurl = redis://h/2\n",
	"wspush.conf:4: redis.url: only database 0 is supported (wspush "
	"never sends SELECT)"},
    {NONE "[redis]\nurl = unix://relative\n",
	"wspush.conf:4: redis.url: expected unix:///absolute/path (at most "
	"107 bytes)"},
    /* Origins. */
    {NONE "[gateway]\nallowed_origins = *, https://a.example\n",
	"wspush.conf:4: gateway.allowed_origins: \"*\" must be the only "
	"entry"},
    {NONE "[gateway]\nallowed_origins = example.com\n",
	"wspush.conf:4: gateway.allowed_origins: expected \"*\" or origins "
	"like https://app.example.com, https://*.example.com or "
	"*.example.com"},
    {NONE "[gateway]\nallowed_origins = https://a.example/path\n",
	"wspush.conf:4: gateway.allowed_origins: expected \"*\" or origins "
	"like https://app.example.com, https://*.example.com or "
	"*.example.com"},
    {NONE "[gateway]\nallowed_origins = ,\n",
	"wspush.conf:4: gateway.allowed_origins: expected \"*\" or a list "
	"of origins"},
    /* Cross-key checks blame the later key. */
    {NONE "[gateway]\nidle_timeout_s = 30\nping_interval_s = 30\n",
	"wspush.conf:5: gateway.ping_interval_s: gateway.idle_timeout_s (30) "
	"must be greater than gateway.ping_interval_s (30)"},
    {NONE "[gateway]\nping_interval_s = 90\nidle_timeout_s = 60\n",
	"wspush.conf:5: gateway.idle_timeout_s: gateway.idle_timeout_s (60) "
	"must be greater than gateway.ping_interval_s (90)"},
    {NONE "[gateway]\nmax_queued_bytes = 1000\n",
	"wspush.conf:4: gateway.max_queued_bytes: gateway.max_queued_bytes "
	"(1000) must be at least gateway.max_message_bytes (65536)"},
    /* Broker, cluster and history keys. */
    {NONE "[broker]\nkind = kafka\n",
	"wspush.conf:4: broker.kind: expected \"redis\" or \"amqp\""},
    {NONE "[redis]\nrouting = broadcast\n[broker]\nrouting = interest\n",
	"wspush.conf:6: broker.routing: broker.routing is also set: keep "
	"only [broker] routing (redis.routing is its old name)"},
    {NONE "[redis]\ncluster = on\n[broker]\nrouting = broadcast\n",
	"wspush.conf:6: broker.routing: broadcast routing is not possible "
	"with redis.cluster = on (sharded pub/sub has no pattern "
	"subscriptions)"},
    {NONE "[redis]\nrouting = broadcast\ncluster = on\n",
	"wspush.conf:4: redis.routing: broadcast routing is not possible "
	"with redis.cluster = on (sharded pub/sub has no pattern "
	"subscriptions)"},
    {NONE "[history]\nsize = 100\n[broker]\nkind = amqp\n",
	"wspush.conf:6: broker.kind: history is not available with "
	"broker.kind = amqp (it is kept in Redis streams)"},
    {NONE "[amqp]\nurl = redis://h\n", "wspush.conf:4: amqp.url: expected "
				       "amqp://user:password@host:port/vhost"},
    {NONE "[amqp]\nexchange = amq.direct\n",
	"wspush.conf:4: amqp.exchange: expected 1..255 letters, digits, "
	"'-', '_', '.' or ':' (not starting with \"amq.\", which RabbitMQ "
	"reserves)"},
    {NONE "[amqp]\ninbound_queue = a b\n",
	"wspush.conf:4: amqp.inbound_queue: expected 1..255 letters, "
	"digits, '-', '_', '.' or ':' (not starting with \"amq.\", which "
	"RabbitMQ reserves)"},
    {NONE "[history]\nmax_recover = 0\n",
	"wspush.conf:4: history.max_recover: expected an integer in "
	"1..100000"},
    /* auth.mode = jwt (the default) needs its key file. */
    {"", "wspush.conf:(default): auth.mode: jwt_alg HS256 needs "
	 "auth.jwt_secret_file"},
    {"[node]\nid = x\n[auth]\nmode = jwt\n",
	"wspush.conf:4: auth.mode: jwt_alg HS256 needs auth.jwt_secret_file"},
    {"[auth]\nmode = jwt\njwt_alg = RS256\n",
	"wspush.conf:3: auth.jwt_alg: jwt_alg RS256 and ES256 need "
	"auth.jwt_public_key_file"},
};

static void
every_error_class_names_file_line_and_key(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		if (load(bad_configs[i].text) != -1)
			fail_msg("case %zu accepted", i);
		if (strcmp(err, bad_configs[i].err) != 0)
			fail_msg("case %zu:\n got: %s\nwant: %s", i, err,
			    bad_configs[i].err);
	}
}

static void
the_first_error_is_the_one_reported(void **state)
{
	assert_int_equal(load("[gateway]\nworkers = x\n[nope]\nfoo = 1\n"), -1);
	assert_string_equal(
	    err, "wspush.conf:2: gateway.workers: expected 1..256 or \"auto\"");
	/* inih reports syntax errors after parsing; the order still holds. */
	assert_int_equal(load("[gateway]\nno value here\nworkers = x\n"), -1);
	assert_string_equal(err, "wspush.conf:2: syntax: expected \"key = "
				 "value\", \"[section]\" or a comment");
	assert_int_equal(load("[gateway]\nworkers = x\nno value here\n"), -1);
	assert_string_equal(
	    err, "wspush.conf:2: gateway.workers: expected 1..256 or \"auto\"");
}

static void
over_long_lines_are_an_error_not_a_new_line(void **state)
{
	char *text = malloc(4096);
	size_t n;

	assert_non_null(text);
	n = (size_t)snprintf(text, 4096, NONE "[gateway]\npath = /");
	memset(text + n, 'a', 3000);
	strcpy(text + n + 3000, "\n");
	assert_int_equal(load(text), -1);
	assert_string_equal(err, "wspush.conf:4: line: too long (at most 2046 "
				 "bytes)");
	free(text);
}

static void
a_long_allowed_origins_line_fits(void **state)
{
	char text[2048];
	size_t i, n;

	n = (size_t)snprintf(
	    text, sizeof(text), NONE "[gateway]\nallowed_origins =");
	for (i = 0; i < CONF_ORIGINS_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    " https://h%02zu.example.com", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	load_ok(text);
	assert_int_equal(c.n_allowed_origins, CONF_ORIGINS_MAX);
	assert_string_equal(c.allowed_origins[31], "https://h31.example.com");
	strcpy(text + n, " https://one-too-many.example\n");
	assert_int_equal(load(text), -1);
	assert_string_equal(err, "wspush.conf:4: gateway.allowed_origins: too "
				 "many origins (at most 32)");
}

static void
broker_routing_alias_and_new_sections_load(void **state)
{
	load_ok(NONE);
	assert_int_equal(c.broker_kind, CONF_BROKER_REDIS);
	assert_int_equal(c.routing, CONF_ROUTING_INTEREST);
	assert_int_equal(c.routing_alias_line, 0);
	assert_false(c.redis_cluster);
	assert_string_equal(c.amqp_exchange, "wspush");
	assert_string_equal(c.amqp_fanout_exchange, "");
	assert_string_equal(c.amqp_inbound_queue, "wspush.inbound");
	assert_string_equal(c.amqp_events_exchange, "wspush.events");
	assert_int_equal(c.history_size, 0);
	assert_int_equal(c.history_ttl_s, 300);
	assert_int_equal(c.history_user_ttl_s, 86400);
	assert_int_equal(c.history_max_recover, 1000);

	/* The old name still works, and says where it was used. */
	load_ok(NONE "[redis]\nrouting = broadcast\n");
	assert_int_equal(c.routing, CONF_ROUTING_BROADCAST);
	assert_int_equal(c.routing_alias_line, 4);
	load_ok(NONE "[broker]\nrouting = broadcast\n");
	assert_int_equal(c.routing, CONF_ROUTING_BROADCAST);
	assert_int_equal(c.routing_alias_line, 0);
}

static void
redis_urls_of_every_form_parse(void **state)
{
	load_ok(NONE "[redis]\nurl = redis://example.org\n");
	assert_int_equal(c.redis_kind, CONF_REDIS_TCP);
	assert_string_equal(c.redis_host, "example.org");
	assert_int_equal(c.redis_port, 6379);
	assert_string_equal(c.redis_password, "");

	load_ok(NONE "[redis]\nurl = redis://:p@ss%3Bw0rd@10.0.0.2:7000/0\n");
	assert_string_equal(c.redis_host, "10.0.0.2");
	assert_int_equal(c.redis_port, 7000);
	assert_string_equal(c.redis_password, "p@ss;w0rd");
	assert_string_equal(
	    c.redis_url, "redis://:p@ss%3Bw0rd@10.0.0.2:7000/0");

	/* Redis 6 ACL users: AUTH <user> <password>. */
	load_ok(NONE "[redis]\nurl = redis://wspush:s%40cret%3A1@h:6400\n");
	assert_string_equal(c.redis_user, "wspush");
	assert_string_equal(c.redis_password, "s@cret:1");
	assert_string_equal(c.redis_host, "h");
	assert_int_equal(c.redis_port, 6400);
	load_ok(NONE "[redis]\nurl = redis://a%2Bb:pw@h\n");
	assert_string_equal(c.redis_user, "a+b");
	/* A later URL without a user clears it. */
	load_ok(NONE "[redis]\nurl = redis://u:p@h\nurl = redis://:p@h\n");
	assert_string_equal(c.redis_user, "");
	assert_string_equal(c.redis_password, "p");

	load_ok(NONE "[redis]\nurl = redis://[::1]:6390/\n");
	assert_string_equal(c.redis_host, "::1");
	assert_int_equal(c.redis_port, 6390);

	load_ok(NONE "[redis]\nurl = unix:///run/redis/redis.sock\n");
	assert_int_equal(c.redis_kind, CONF_REDIS_UNIX);
	assert_string_equal(c.redis_unix_path, "/run/redis/redis.sock");
	assert_string_equal(c.redis_host, "");
	assert_int_equal(c.redis_port, 0);

	/* A later TCP URL clears the unix path. */
	load_ok(NONE "[redis]\nurl = unix:///a\nurl = redis://b\n");
	assert_int_equal(c.redis_kind, CONF_REDIS_TCP);
	assert_string_equal(c.redis_unix_path, "");
	assert_string_equal(c.redis_host, "b");
}

static void
malformed_redis_urls_are_rejected(void **state)
{
	static const char *const bad[] = {"redis://", "redis://:6379",
	    "redis://h:0", "redis://h:65536", "redis://h:x",
	    "redis://h:", "redis://:pw@", "redis://[::1", "redis://[]:1",
	    "redis://h h", "redis://:%zz@h", "redis://:%00@h", "redis://h/x",
	    "unix://", "REDIS://h", "redis:/h"};
	char text[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(
		    text, sizeof(text), NONE "[redis]\nurl = %s\n", bad[i]);
		if (load(text) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(err, "wspush.conf:4: redis.url: "));
	}
}

static int
allowed(const char *list, const char *origin)
{
	char text[512];

	snprintf(
	    text, sizeof(text), NONE "[gateway]\nallowed_origins = %s\n", list);
	load_ok(text);
	return conf_origin_allowed(&c, origin);
}

static void
star_allows_every_origin(void **state)
{
	assert_true(allowed("*", "https://anything.example"));
	assert_true(allowed("*", NULL));
	assert_true(allowed("*", ""));
}

static void
exact_origins_match_whole_and_case_insensitively(void **state)
{
	const char *l = "https://app.example.com http://localhost:3000";

	assert_true(allowed(l, "https://app.example.com"));
	assert_true(allowed(l, "HTTPS://App.Example.COM"));
	assert_true(allowed(l, "http://localhost:3000"));
	assert_false(allowed(l, "http://app.example.com"));
	assert_false(allowed(l, "https://app.example.com:443"));
	assert_false(allowed(l, "https://app.example.com.evil.net"));
	assert_false(allowed(l, "https://xapp.example.com"));
	assert_false(allowed(l, "http://localhost:30000"));
	assert_false(allowed(l, "http://localhost"));
	assert_false(allowed(l, "null"));
	assert_false(allowed(l, ""));
	assert_false(allowed(l, NULL));
}

static void
wildcards_match_one_or_more_labels_but_not_the_domain(void **state)
{
	const char *l = "https://*.example.com";

	assert_true(allowed(l, "https://a.example.com"));
	assert_true(allowed(l, "https://a.b.example.com"));
	assert_false(allowed(l, "https://example.com"));
	assert_false(allowed(l, "https://.example.com"));
	assert_false(allowed(l, "https://aexample.com"));
	assert_false(allowed(l, "http://a.example.com"));
	assert_false(allowed(l, "https://a.example.com:8443"));
	assert_false(allowed(l, "https://a.example.com.evil"));
	assert_false(allowed(l, "https://a..example.com"));

	l = "*.example.com";
	assert_true(allowed(l, "https://a.example.com"));
	assert_true(allowed(l, "http://a.example.com"));
	assert_false(allowed(l, "http://a.example.com:80"));
	assert_false(allowed(l, "http://example.com"));

	l = "https://*.example.com:8443";
	assert_true(allowed(l, "https://a.example.com:8443"));
	assert_false(allowed(l, "https://a.example.com"));
	assert_false(allowed(l, "https://a.example.com:443"));
}

static char *
print_to_string(const struct conf *cf)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	conf_print(cf, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void
conf_print_output_loads_back_to_the_same_config(void **state)
{
	static const char *const texts[] = {
	    NONE,
	    "[node]\nid = n1\nlog_level = error\n[redis]\n"
	    "url = redis://:pw@[fe80::1%eth0]:1/\nrouting = broadcast\n"
	    "[gateway]\nlisten = [::]:1\nworkers = 256\n"
	    "allowed_origins = https://x.y,*.z.w ,http://q:1\n"
	    "max_queued_bytes = 1099511627776\ndemo_page = 1\n"
	    "[auth]\nmode = none\njwt_alg = rs256\n"
	    "jwt_public_key_file = /k\n",
	};
	size_t i;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *first, *second;

		load_ok(texts[i]);
		first = print_to_string(&c);
		load_ok(first);
		second = print_to_string(&c);
		assert_string_equal(first, second);
		free(first);
		free(second);
	}
	load_ok(texts[1]);
	assert_string_equal(c.redis_host, "fe80::1%eth0");
	assert_int_equal(c.jwt_alg, CONF_JWT_RS256);
	{
		char *out = print_to_string(&c);

		assert_non_null(strstr(out, "\n[gateway]\nlisten = [::]:1\n"));
		assert_non_null(strstr(out, "\nallowed_origins = https://x.y, "
					    "*.z.w, http://q:1\n"));
		assert_non_null(strstr(out, "\njwt_alg = RS256\n"));
		assert_non_null(strstr(out, "\njwt_secret_file =\n"));
		free(out);
	}
}

static void
files_load_and_missing_files_say_why(void **state)
{
	char path[] = "/tmp/conf_test.XXXXXX";
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd != -1);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(NONE "[gateway]\nworkers = 5\n", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(conf_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.workers, 5);
	assert_string_equal(c.file, path);

	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(NONE "\0\n", 1, sizeof(NONE) + 1, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(conf_load(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":3: file: contains a NUL byte"));

	unlink(path);
	assert_int_equal(conf_load(&c, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ": No such file or directory"));
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
}

static void
ipc_urls_live_in_the_runtime_dir(void **state)
{
	char buf[CONF_RUNTIME_DIR_MAX + 32];

	load_ok(NONE "[node]\nruntime_dir = /tmp/x/\n");
	conf_bus_url(&c, buf, sizeof(buf));
	assert_string_equal(buf, "ipc:///tmp/x/bus.ipc");
	conf_up_url(&c, buf, sizeof(buf));
	assert_string_equal(buf, "ipc:///tmp/x/up.ipc");
	conf_stats_url(&c, buf, sizeof(buf));
	assert_string_equal(buf, "ipc:///tmp/x/stats.ipc");
	load_ok(NONE);
	conf_bus_url(&c, buf, sizeof(buf));
	assert_string_equal(buf, "ipc:///run/wspush/bus.ipc");
}

static void
auto_workers_means_one_per_online_cpu(void **state)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	load_ok(NONE);
	assert_int_equal(conf_workers(&c), n > 256 ? 256 : n < 1 ? 1 : n);
	load_ok(NONE "[gateway]\nworkers = 7\n");
	assert_int_equal(conf_workers(&c), 7);
}

static void
a_null_or_tiny_error_buffer_is_safe(void **state)
{
	char tiny[8];

	assert_int_equal(conf_load_string(&c, "x", "[", NULL, 0), -1);
	assert_int_equal(
	    conf_load_string(&c, "x", "[", tiny, sizeof(tiny)), -1);
	assert_string_equal(tiny, "x:1: sy");
	assert_int_equal(
	    conf_load_string(&c, NULL, NULL, tiny, sizeof(tiny)), -1);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_are_those_of_the_design),
	    cmocka_unit_test(a_file_saying_only_mode_none_loads_the_defaults),
	    cmocka_unit_test(every_key_can_be_set),
	    cmocka_unit_test(the_last_of_duplicate_keys_wins),
	    cmocka_unit_test(syntax_variants_are_accepted),
	    cmocka_unit_test(booleans_accept_the_usual_spellings),
	    cmocka_unit_test(every_error_class_names_file_line_and_key),
	    cmocka_unit_test(the_first_error_is_the_one_reported),
	    cmocka_unit_test(over_long_lines_are_an_error_not_a_new_line),
	    cmocka_unit_test(a_long_allowed_origins_line_fits),
	    cmocka_unit_test(redis_urls_of_every_form_parse),
	    cmocka_unit_test(malformed_redis_urls_are_rejected),
	    cmocka_unit_test(star_allows_every_origin),
	    cmocka_unit_test(exact_origins_match_whole_and_case_insensitively),
	    cmocka_unit_test(
		wildcards_match_one_or_more_labels_but_not_the_domain),
	    cmocka_unit_test(conf_print_output_loads_back_to_the_same_config),
	    cmocka_unit_test(files_load_and_missing_files_say_why),
	    cmocka_unit_test(ipc_urls_live_in_the_runtime_dir),
	    cmocka_unit_test(auto_workers_means_one_per_online_cpu),
	    cmocka_unit_test(a_null_or_tiny_error_buffer_is_safe),
	    cmocka_unit_test(broker_routing_alias_and_new_sections_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
