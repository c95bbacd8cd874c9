/*
 * resp_probe.c - drives one resp_conn (bridge/resp_conn.h) on the bridge
 * loop from stdin lines and prints what it sees as JSON lines, so that
 * integration tests can put the module in front of a real redis-server or
 * Redis Cluster and kill, restart or reshard it underneath.
 *
 *   resp_probe [--pubsub] [--user U] [--password P] [--ping MS]
 *              [--connect-timeout MS] [--backoff MIN,MAX] HOST PORT
 *
 * stdin, one per line (arguments split on single spaces, %XX decoded):
 *   cmd ARG...    queue a command     -> {"t":"queued","id":N} or "refused"
 *   map | slots   CLUSTER SHARDS / CLUSTER SLOTS into the slot map
 *   owner NAME... the slot and owning master of each name in the map
 *   reset         drop the link (it reconnects); stats; quit (or EOF)
 * stdout: {"t":"state","up":...}, {"t":"reply","id":N,"r":...},
 *   {"t":"push","r":...}, {"t":"map",...}, {"t":"owner",...},
 *   {"t":"stats",...}. Errors are {"error":"..."} (plus "redirect" for
 *   MOVED / ASK), status replies {"status":"..."}.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster_slots.h"
#include "log.h"
#include "loop.h"
#include "resp_conn.h"

struct probe {
	struct loop *loop;
	struct resp_conn *rc;
	struct cluster_map map;
	char line[65536];
	size_t len;
	unsigned long next_id;
};

static void
put_str(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void
put_cstr(const char *s)
{
	put_str(s, strlen(s));
}

static void
put_reply(const redisReply *r)
{
	struct cluster_redirect rd;

	if (r == NULL) {
		fputs("null", stdout);
		return;
	}
	switch (r->type) {
	case REDIS_REPLY_STRING:
		put_str(r->str, r->len);
		break;
	case REDIS_REPLY_STATUS:
		fputs("{\"status\":", stdout);
		put_str(r->str, r->len);
		putchar('}');
		break;
	case REDIS_REPLY_ERROR:
		fputs("{\"error\":", stdout);
		put_str(r->str, r->len);
		if (cluster_redirect_parse(r->str, r->len, &rd) !=
		    CLUSTER_REDIRECT_NONE) {
			printf(",\"redirect\":{\"kind\":\"%s\",\"slot\":%u,"
			       "\"host\":",
			    rd.kind == CLUSTER_REDIRECT_MOVED ? "moved" : "ask",
			    rd.slot);
			put_cstr(rd.host);
			printf(",\"port\":%u}", rd.port);
		}
		putchar('}');
		break;
	case REDIS_REPLY_INTEGER:
		printf("%lld", r->integer);
		break;
	case REDIS_REPLY_NIL:
		fputs("null", stdout);
		break;
	case REDIS_REPLY_ARRAY:
		putchar('[');
		for (size_t i = 0; i < r->elements; i++) {
			if (i > 0)
				putchar(',');
			put_reply(r->element[i]);
		}
		putchar(']');
		break;
	default:
		printf("{\"type\":%d}", r->type);
	}
}

static void
on_reply(struct resp_conn *rc, const redisReply *r, void *arg)
{
	printf("{\"t\":\"reply\",\"id\":%lu,\"r\":",
	    (unsigned long)(uintptr_t)arg);
	put_reply(r);
	puts("}");
	fflush(stdout);
}

static void
on_push(struct resp_conn *rc, const redisReply *r, void *arg)
{
	fputs("{\"t\":\"push\",\"r\":", stdout);
	put_reply(r);
	puts("}");
	fflush(stdout);
}

static void
on_state(struct resp_conn *rc, bool up, const char *why, void *arg)
{
	printf("{\"t\":\"state\",\"up\":%s", up ? "true" : "false");
	if (why != NULL) {
		fputs(",\"why\":", stdout);
		put_cstr(why);
	}
	puts("}");
	fflush(stdout);
}

static struct probe *map_probe; /* the probe whose map a reply fills */

static void
on_map(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct probe *p = map_probe;
	char err[256] = "";
	int rv;
	bool shards = arg != NULL;

	if (r == NULL)
		rv = -1, snprintf(err, sizeof(err), "link lost");
	else if (shards)
		rv = cluster_map_from_shards(
		    &p->map, r, resp_conn_host(rc), err, sizeof(err));
	else
		rv = cluster_map_from_slots(
		    &p->map, r, resp_conn_host(rc), err, sizeof(err));
	if (rv == -1) {
		fputs("{\"t\":\"map\",\"error\":", stdout);
		put_cstr(err);
		puts("}");
	} else {
		printf("{\"t\":\"map\",\"uncovered\":%u,\"shards\":[",
		    cluster_map_uncovered(&p->map));
		for (size_t i = 0; i < p->map.nshards; i++) {
			unsigned n = 0;

			for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
				n += cluster_map_owner(&p->map, s) == i;
			printf("%s{\"host\":", i ? "," : "");
			put_cstr(p->map.shards[i].host);
			printf(",\"port\":%u,\"id\":", p->map.shards[i].port);
			put_cstr(p->map.shards[i].id);
			printf(",\"slots\":%u}", n);
		}
		puts("]}");
	}
	fflush(stdout);
}

static size_t
unpercent(char *s)
{
	char *w = s;

	for (char *r = s; *r != '\0'; r++) {
		if (r[0] == '%' && r[1] != '\0' && r[2] != '\0') {
			char hex[3] = {r[1], r[2], '\0'};

			*w++ = (char)strtol(hex, NULL, 16);
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return (size_t)(w - s);
}

static void
do_line(struct probe *p, char *line)
{
	const char *argv[512];
	size_t lens[512];
	int argc = 0;
	char *save = NULL;
	char *verb = strtok_r(line, " ", &save);

	if (verb == NULL)
		return;
	if (strcmp(verb, "quit") == 0) {
		loop_stop(p->loop);
		return;
	}
	if (strcmp(verb, "reset") == 0) {
		resp_conn_reset(p->rc, "reset by the probe");
		return;
	}
	if (strcmp(verb, "stats") == 0) {
		const struct resp_conn_stats *st = resp_conn_stats(p->rc);

		printf(
		    "{\"t\":\"stats\",\"up\":%s,\"connects\":%llu,"
		    "\"failures\":%llu,\"disconnects\":%llu,\"replies\":%llu,"
		    "\"pushes\":%llu,\"pending\":%zu}\n",
		    resp_conn_is_up(p->rc) ? "true" : "false",
		    (unsigned long long)st->connects,
		    (unsigned long long)st->failures,
		    (unsigned long long)st->disconnects,
		    (unsigned long long)st->replies,
		    (unsigned long long)st->pushes, resp_conn_pending(p->rc));
		fflush(stdout);
		return;
	}
	if (strcmp(verb, "owner") == 0) {
		char *name;

		while ((name = strtok_r(NULL, " ", &save)) != NULL) {
			size_t n = unpercent(name);
			unsigned slot = cluster_keyslot(name, n);
			unsigned sh = cluster_map_owner(&p->map, slot);

			fputs("{\"t\":\"owner\",\"name\":", stdout);
			put_str(name, n);
			printf(",\"slot\":%u", slot);
			if (sh != CLUSTER_NO_SHARD) {
				fputs(",\"host\":", stdout);
				put_cstr(p->map.shards[sh].host);
				printf(",\"port\":%u", p->map.shards[sh].port);
			}
			puts("}");
		}
		fflush(stdout);
		return;
	}
	if (strcmp(verb, "map") == 0 || strcmp(verb, "slots") == 0) {
		bool shards = strcmp(verb, "map") == 0;
		map_probe = p;
		if (resp_conn_cmd(p->rc, on_map, shards ? (void *)1 : NULL,
			"CLUSTER", shards ? "SHARDS" : "SLOTS", NULL) == -1) {
			puts("{\"t\":\"refused\"}");
			fflush(stdout);
		}
		return;
	}
	if (strcmp(verb, "cmd") != 0) {
		printf("{\"t\":\"bad\",\"verb\":");
		put_cstr(verb);
		puts("}");
		fflush(stdout);
		return;
	}
	char *a;
	while ((a = strtok_r(NULL, " ", &save)) != NULL && argc < 512) {
		lens[argc] = unpercent(a);
		argv[argc++] = a;
	}
	unsigned long id = ++p->next_id;
	if (resp_conn_command(
		p->rc, argc, argv, lens, on_reply, (void *)(uintptr_t)id) == -1)
		puts("{\"t\":\"refused\"}");
	else
		printf("{\"t\":\"queued\",\"id\":%lu}\n", id);
	fflush(stdout);
}

static void
stdin_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct probe *p = arg;
	ssize_t n = read(fd, p->line + p->len, sizeof(p->line) - 1 - p->len);

	if (n <= 0) {
		if (n == -1 && errno == EINTR)
			return;
		loop_stop(l);
		return;
	}
	p->len += (size_t)n;
	for (;;) {
		char *nl = memchr(p->line, '\n', p->len);

		if (nl == NULL)
			break;
		*nl = '\0';
		do_line(p, p->line);
		size_t used = (size_t)(nl - p->line) + 1;
		memmove(p->line, p->line + used, p->len - used);
		p->len -= used;
	}
	if (p->len == sizeof(p->line) - 1)
		p->len = 0; /* an overlong line is dropped */
}

int
main(int argc, char **argv)
{
	struct resp_conn_opts o = {.name = "probe"};
	struct probe p = {0};
	int i;

	for (i = 1; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--pubsub") == 0) {
			o.pubsub = true;
			continue;
		}
		if (i + 2 >= argc)
			break;
		if (strcmp(argv[i], "--user") == 0)
			o.user = argv[++i];
		else if (strcmp(argv[i], "--password") == 0)
			o.password = argv[++i];
		else if (strcmp(argv[i], "--ping") == 0)
			o.ping_interval_ms =
			    (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--connect-timeout") == 0)
			o.connect_timeout_ms =
			    (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--backoff") == 0) {
			char *end;
			o.backoff_min_ms =
			    (uint32_t)strtoul(argv[++i], &end, 10);
			if (*end == ',')
				o.backoff_max_ms =
				    (uint32_t)strtoul(end + 1, NULL, 10);
		} else
			break;
	}
	if (argc - i != 2) {
		fprintf(stderr,
		    "usage: resp_probe [--pubsub] [--user U] [--password P] "
		    "[--ping MS] [--connect-timeout MS] [--backoff MIN,MAX] "
		    "HOST PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	log_init("resp_probe", LOG_DEBUG);
	o.host = argv[i];
	o.port = (uint16_t)strtoul(argv[i + 1], NULL, 10);
	o.on_push = on_push;
	o.on_state = on_state;
	cluster_map_init(&p.map);
	p.loop = loop_new();
	if (p.loop == NULL || (p.rc = resp_conn_new(p.loop, &o)) == NULL ||
	    loop_fd_add(p.loop, 0, POLLIN, stdin_cb, &p) == NULL) {
		fprintf(stderr, "resp_probe: out of memory\n");
		return 1;
	}
	resp_conn_start(p.rc);
	loop_run(p.loop);
	resp_conn_free(p.rc);
	cluster_map_fini(&p.map);
	loop_free(p.loop);
	return 0;
}
