/*
 * ctl_publish.c - `wspushctl publish`. With [history] size > 0 (and no
 * --plain): FCALL wspush_publish <prefix>:<address> MESSAGE [FROM], the
 * bridge's function that stores the message and publishes it with its id;
 * prints the id. Otherwise: PUBLISH <prefix>:<address> with the message as
 * it is, or wrapped in a wspush envelope (proto/wspenv.h) when --from or
 * --id is given; prints the number of Redis receivers.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "amqp_ctl.h"
#include "clock.h"
#include "ctl_common.h"
#include "ctl_publish.h"
#include "ctl_redis.h"
#include "keys.h"
#include "wspenv.h"

/* The largest message read from standard input. */
#define CTL_PUBLISH_STDIN_MAX (64u * 1024 * 1024)

const char ctl_publish_usage[] =
    "[-c FILE] publish (--user ID | --channel NAME | --all) [--from ID]\n"
    "                 [--id ID] [--plain] [--timeout S] MESSAGE\n"
    "                 MESSAGE \"-\" reads stdin. [history] size > 0: "
    "FCALL\n"
    "                 wspush_publish (stored), prints the id; else or "
    "--plain:\n"
    "                 PUBLISH <prefix>:<address> (an envelope with --from "
    "or --id),\n"
    "                 prints the receiver count\n";

struct ctl_publish_args {
	int kind; /* 'u', 'C' or 'a' */
	const char *target, *from, *id, *message;
	int timeout_ms;
	bool plain; /* PUBLISH even with history on */
};

/* Returns 0, or an exit status after printing why. */
static int
ctl_publish_parse(
    const struct conf *c, int argc, char **argv, struct ctl_publish_args *a)
{
	static const struct option opts[] = {
	    {"user", required_argument, NULL, 'u'},
	    {"channel", required_argument, NULL, 'C'},
	    {"all", no_argument, NULL, 'a'},
	    {"from", required_argument, NULL, 'f'},
	    {"id", required_argument, NULL, 'i'},
	    {"timeout", required_argument, NULL, 't'},
	    {"plain", no_argument, NULL, 'p'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	memset(a, 0, sizeof(*a));
	a->timeout_ms = CTL_TIMEOUT_DEFAULT_MS;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (opt) {
		case 'u':
		case 'C':
		case 'a':
			if (a->kind != 0) {
				fprintf(stderr,
				    "%s: publish: one of --user, --channel, "
				    "--all\n",
				    CTL_PROG);
				return ctl_common_usage(ctl_publish_usage);
			}
			a->kind = opt;
			a->target = optarg;
			break;
		case 'f':
			a->from = optarg;
			break;
		case 'i':
			a->id = optarg;
			break;
		case 'p':
			a->plain = true;
			break;
		case 't':
			if (ctl_common_timeout(
				"publish", optarg, &a->timeout_ms) == -1)
				return CTL_EXIT_USAGE;
			break;
		default:
			return ctl_common_usage(ctl_publish_usage);
		}
	}
	if (a->kind == 0 || optind != argc - 1) {
		fprintf(stderr, "%s: publish: needs a target and one MESSAGE\n",
		    CTL_PROG);
		return ctl_common_usage(ctl_publish_usage);
	}
	a->message = argv[optind];
	if (a->id != NULL && !a->plain && c->history_size > 0) {
		/* The function gives every stored message its own id. */
		fprintf(stderr,
		    "%s: publish: --id needs --plain while [history] is on "
		    "(stored messages get their id from Redis)\n",
		    CTL_PROG);
		return CTL_EXIT_USAGE;
	}
	if (a->target != NULL && !addr_id_valid(a->target, strlen(a->target))) {
		fprintf(stderr, "%s: publish: invalid %s \"%s\"\n", CTL_PROG,
		    a->kind == 'u' ? "user id" : "channel name", a->target);
		return CTL_EXIT_USAGE;
	}
	if (a->from != NULL && !addr_id_valid(a->from, strlen(a->from))) {
		fprintf(stderr, "%s: publish: invalid --from \"%s\"\n",
		    CTL_PROG, a->from);
		return CTL_EXIT_USAGE;
	}
	return 0;
}

static char *
ctl_publish_read_stdin(size_t *lenp)
{
	size_t cap = 4096, len = 0, n;
	char *buf = malloc(cap), *nb;

	if (buf == NULL)
		return NULL;
	while ((n = fread(buf + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len < cap)
			continue;
		if (cap >= CTL_PUBLISH_STDIN_MAX) {
			fprintf(stderr, "%s: publish: stdin: over %u bytes\n",
			    CTL_PROG, CTL_PUBLISH_STDIN_MAX);
			free(buf);
			return NULL;
		}
		if ((nb = realloc(buf, cap * 2)) == NULL) {
			free(buf);
			return NULL;
		}
		buf = nb;
		cap *= 2;
	}
	if (ferror(stdin)) {
		fprintf(stderr, "%s: publish: stdin: %s\n", CTL_PROG,
		    strerror(errno));
		free(buf);
		return NULL;
	}
	*lenp = len;
	return buf;
}

/* The channel of the target address; -1 if it does not fit. */
static int
ctl_publish_channel(const struct conf *c, const struct ctl_publish_args *a,
    char *buf, size_t len)
{
	char address[ADDR_MAX + 16];
	int n = snprintf(address, sizeof(address), "%s%s",
	    a->kind == 'u'   ? "user:"
	    : a->kind == 'C' ? "channel:"
			     : "all",
	    a->target != NULL ? a->target : "");

	if (n < 0 || (size_t)n >= sizeof(address))
		return -1;
	return keys_channel(buf, len, c->prefix, address, (size_t)n);
}

/* FCALL wspush_publish: stores and publishes; prints the id. */
static int
ctl_publish_fcall(const struct conf *c, const struct ctl_publish_args *a,
    const char *chan, const char *msg, size_t len)
{
	struct ctl_redis r;
	const char *av[6] = {
	    "FCALL", "wspush_publish", "1", chan, msg, a->from};
	size_t lens[6] = {
	    5, 14, 1, strlen(chan), len, a->from != NULL ? strlen(a->from) : 0};
	redisReply *reply;
	int rc = CTL_EXIT_FAIL;

	if (ctl_redis_open(&r, c, "publish", a->timeout_ms) == 0 &&
	    (reply = ctl_redis_command(
		 &r, a->from != NULL ? 6 : 5, av, lens)) != NULL) {
		if (reply->type == REDIS_REPLY_STRING) {
			printf("%s\n", reply->str);
			rc = CTL_EXIT_OK;
		}
		freeReplyObject(reply);
	}
	ctl_redis_close(&r);
	return rc;
}

/* PUBLISHes the payload (the message or its envelope); prints the
 * receiver count. */
static int
ctl_publish_send(const struct conf *c, const struct ctl_publish_args *a,
    const char *chan, const char *payload, size_t len)
{
	struct ctl_redis r;
	const char *av[3] = {"PUBLISH", chan, payload};
	size_t lens[3] = {7, strlen(chan), len};
	redisReply *reply;
	int rc = CTL_EXIT_FAIL;

	if (c->broker_kind == CONF_BROKER_AMQP) {
		/* Through RabbitMQ, as a backend would: prints 1 if a node's
		 * queue took it, 0 if no node wants the address. */
		size_t pl = strlen(c->prefix) + 1;
		char err[256];
		int n = amqp_ctl_publish(c, chan + pl, strlen(chan) - pl,
		    payload, len, a->timeout_ms, err, sizeof(err));

		if (n < 0) {
			fprintf(stderr, "%s: publish: %s\n", CTL_PROG, err);
			return CTL_EXIT_FAIL;
		}
		printf("%d\n", n);
		return CTL_EXIT_OK;
	}
	if (ctl_redis_open(&r, c, "publish", a->timeout_ms) == 0 &&
	    (reply = ctl_redis_command(&r, 3, av, lens)) != NULL) {
		if (reply->type == REDIS_REPLY_INTEGER) {
			printf("%lld\n", reply->integer);
			rc = CTL_EXIT_OK;
		}
		freeReplyObject(reply);
	}
	ctl_redis_close(&r);
	return rc;
}

int
ctl_publish(const struct conf *c, int argc, char **argv)
{
	struct ctl_publish_args a;
	char chan[KEYS_MAX];
	char *msg;
	size_t msglen = 0;
	msgpack_sbuffer sb;
	int rc;

	if ((rc = ctl_publish_parse(c, argc, argv, &a)) != 0)
		return rc;
	if (ctl_publish_channel(c, &a, chan, sizeof(chan)) == -1) {
		fprintf(stderr, "%s: publish: address too long\n", CTL_PROG);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(a.message, "-") == 0)
		msg = ctl_publish_read_stdin(&msglen);
	else if ((msg = strdup(a.message)) != NULL)
		msglen = strlen(msg);
	if (msg == NULL)
		return CTL_EXIT_FAIL;
	if (c->history_size > 0 && !a.plain) {
		rc = ctl_publish_fcall(c, &a, chan, msg, msglen);
		free(msg);
		return rc;
	}
	msgpack_sbuffer_init(&sb);
	if (a.from != NULL || a.id != NULL) {
		struct wspenv e = {
		    .data = {msg, (uint32_t)msglen},
		    .from = {a.from,
			a.from != NULL ? (uint32_t)strlen(a.from) : 0},
		    .id = {a.id, a.id != NULL ? (uint32_t)strlen(a.id) : 0},
		    .ts = clock_wall_ms(),
		};

		if (msglen > UINT32_MAX || wspenv_encode(&sb, &e) == -1) {
			fprintf(stderr,
			    "%s: publish: cannot encode the envelope\n",
			    CTL_PROG);
			rc = CTL_EXIT_FAIL;
			goto out;
		}
	}
	rc = sb.size > 0 ? ctl_publish_send(c, &a, chan, sb.data, sb.size)
			 : ctl_publish_send(c, &a, chan, msg, msglen);
out:
	msgpack_sbuffer_destroy(&sb);
	free(msg);
	return rc;
}
