/*
 * ctl_history.c - `wspushctl history ADDRESS [--since ID] [--limit N]`:
 * the stored messages of an address, oldest first, one a line:
 *
 *   <id> [from=<sender>] <data>
 *
 * read with XRANGE / XREVRANGE on the stream <prefix>:<address> (the key
 * wspush_publish appends to). Plain stream reads rather than the bridge's
 * FCALL_RO wspush_range: they work whether or not the function library
 * is loaded, and need only +xrange/+xrevrange in an ACL. Without --since:
 * the last N messages; with --since ID: the first N after ID ("0": from
 * the oldest). Bytes of data that would break the line (control bytes,
 * DEL, backslash) are printed as \xNN.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "ctl_common.h"
#include "ctl_history.h"
#include "ctl_redis.h"
#include "envelope.h"
#include "keys.h"

#define CTL_HISTORY_LIMIT_DEFAULT 50
#define CTL_HISTORY_LIMIT_MAX 1000000

const char ctl_history_usage[] =
    "[-c FILE] history ADDRESS [--since ID] [--limit N] [--timeout S]\n"
    "                 the stored messages of ADDRESS (user:ID, "
    "channel:NAME, all),\n"
    "                 oldest first: \"<id> [from=<sender>] <data>\"; the "
    "last N\n"
    "                 (default 50), or the first N after --since ID (\"0\": "
    "all)\n";

struct ctl_history_args {
	const char *addr, *since;
	long limit;
	int timeout_ms;
};

static int
ctl_history_parse(int argc, char **argv, struct ctl_history_args *a)
{
	static const struct option opts[] = {
	    {"since", required_argument, NULL, 's'},
	    {"limit", required_argument, NULL, 'l'},
	    {"timeout", required_argument, NULL, 't'},
	    {NULL, 0, NULL, 0},
	};
	struct env_sid sid;
	struct addr ad;
	char *end;
	int opt;

	memset(a, 0, sizeof(*a));
	a->limit = CTL_HISTORY_LIMIT_DEFAULT;
	a->timeout_ms = CTL_TIMEOUT_DEFAULT_MS;
	optind = 1;
	/* Options may come before or after ADDRESS. */
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			a->since = optarg;
			break;
		case 'l':
			a->limit = strtol(optarg, &end, 10);
			if (end == optarg || *end != '\0' || a->limit < 1 ||
			    a->limit > CTL_HISTORY_LIMIT_MAX) {
				fprintf(stderr,
				    "%s: history: --limit wants 1..%d, not "
				    "\"%s\"\n",
				    CTL_PROG, CTL_HISTORY_LIMIT_MAX, optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 't':
			if (ctl_common_timeout(
				"history", optarg, &a->timeout_ms) == -1)
				return CTL_EXIT_USAGE;
			break;
		default:
			return ctl_common_usage(ctl_history_usage);
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "%s: history: needs one ADDRESS\n", CTL_PROG);
		return ctl_common_usage(ctl_history_usage);
	}
	a->addr = argv[optind];
	if (addr_parse(a->addr, strlen(a->addr), &ad) != 0) {
		fprintf(stderr,
		    "%s: history: invalid address \"%s\" (user:ID, "
		    "channel:NAME or all)\n",
		    CTL_PROG, a->addr);
		return CTL_EXIT_USAGE;
	}
	if (a->since != NULL && strcmp(a->since, "0") != 0 &&
	    env_sid_parse(a->since, strlen(a->since), &sid) != 0) {
		fprintf(stderr,
		    "%s: history: --since \"%s\" is not a stream id "
		    "(<ms>-<seq>, or 0)\n",
		    CTL_PROG, a->since);
		return CTL_EXIT_USAGE;
	}
	return 0;
}

/* Data with the bytes that would break a line escaped. */
static void
ctl_history_put(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch < 0x20 || ch == 0x7f || ch == '\\')
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
}

/* A field's value in an entry's [k, v, k, v ...] array, or NULL. */
static const redisReply *
ctl_history_field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i];

		if (k->type == REDIS_REPLY_STRING &&
		    strcmp(k->str, name) == 0 &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING)
			return fields->element[i + 1];
	}
	return NULL;
}

/* One [id, [fields]] entry as a line; -1 if it has not that shape. */
static int
ctl_history_entry(const redisReply *e)
{
	const redisReply *data, *from;

	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[1]->type != REDIS_REPLY_ARRAY)
		return -1;
	data = ctl_history_field(e->element[1], "data");
	from = ctl_history_field(e->element[1], "from");
	printf("%s", e->element[0]->str);
	if (from != NULL) {
		printf(" from=");
		ctl_history_put(from->str, from->len);
	}
	putchar(' ');
	if (data != NULL)
		ctl_history_put(data->str, data->len);
	putchar('\n');
	return 0;
}

int
ctl_history(const struct conf *c, int argc, char **argv)
{
	struct ctl_history_args a;
	struct ctl_redis r;
	char key[KEYS_MAX], from[ENV_SID_MAX + 2], count[24];
	const char *av[6];
	size_t lens[6];
	redisReply *reply = NULL;
	bool rev;
	int rc;

	if ((rc = ctl_history_parse(argc, argv, &a)) != 0)
		return rc;
	if (keys_channel(key, sizeof(key), c->prefix, a.addr, strlen(a.addr)) ==
	    -1) {
		fprintf(stderr, "%s: history: address too long\n", CTL_PROG);
		return CTL_EXIT_USAGE;
	}
	snprintf(count, sizeof(count), "%ld", a.limit);
	/* The last N: XREVRANGE, printed backwards. After since: XRANGE
	 * from "(since" (exclusive); "0": from the first entry. */
	rev = a.since == NULL;
	if (rev) {
		av[0] = "XREVRANGE";
		av[2] = "+";
		av[3] = "-";
	} else {
		if (strcmp(a.since, "0") == 0)
			snprintf(from, sizeof(from), "-");
		else
			snprintf(from, sizeof(from), "(%s", a.since);
		av[0] = "XRANGE";
		av[2] = from;
		av[3] = "+";
	}
	av[1] = key;
	av[4] = "COUNT";
	av[5] = count;
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(av[i]);
	rc = CTL_EXIT_FAIL;
	if (ctl_redis_open(&r, c, "history", a.timeout_ms) == 0 &&
	    (reply = ctl_redis_command(&r, 6, av, lens)) != NULL &&
	    reply->type == REDIS_REPLY_ARRAY) {
		rc = CTL_EXIT_OK;
		for (size_t i = 0; i < reply->elements; i++) {
			size_t k = rev ? reply->elements - 1 - i : i;

			if (ctl_history_entry(reply->element[k]) == -1) {
				fprintf(stderr,
				    "%s: history: %s: not a stream entry\n",
				    CTL_PROG, key);
				rc = CTL_EXIT_FAIL;
				break;
			}
		}
	}
	if (reply != NULL)
		freeReplyObject(reply);
	ctl_redis_close(&r);
	if (fflush(stdout) != 0)
		rc = CTL_EXIT_FAIL;
	return rc;
}
