/*
 * resp_conn_test.c - bridge/resp_conn.c against a hand-driven server
 * socket on loopback (no Redis): the dispatch of RESP2 pub/sub pushes and
 * replies, errors refusing a subscription, unexpected replies, freeing
 * from inside a callback, the backoff, and that starting never calls the
 * owner back from inside the call. Behaviour against a real redis-server
 * is in tests/integration/test_resp_conn.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "resp_conn.h"

struct seen {
	char log[4096]; /* one line per event */
	int ups, downs;
	char why[256];
	struct resp_conn *free_me_on_push;
	uint64_t down_at[8];
	struct loop *loop;
};

static void logf_(struct seen *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
logf_(struct seen *s, const char *fmt, ...)
{
	size_t n = strlen(s->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->log + n, sizeof(s->log) - n, fmt, ap);
	va_end(ap);
}

/* A reply as text: strings, integers, arrays, errors as -... */
static void
describe(struct seen *s, const redisReply *r)
{
	if (r == NULL) {
		logf_(s, "NULL");
		return;
	}
	switch (r->type) {
	case REDIS_REPLY_ARRAY:
		logf_(s, "[");
		for (size_t i = 0; i < r->elements; i++) {
			if (i > 0)
				logf_(s, ",");
			describe(s, r->element[i]);
		}
		logf_(s, "]");
		break;
	case REDIS_REPLY_INTEGER:
		logf_(s, "%lld", r->integer);
		break;
	case REDIS_REPLY_ERROR:
		logf_(s, "-%s", r->str);
		break;
	case REDIS_REPLY_STATUS:
		logf_(s, "+%s", r->str);
		break;
	default:
		logf_(s, "%s", r->str != NULL ? r->str : "?");
	}
}

static void
on_push(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct seen *s = arg;

	logf_(s, "push ");
	describe(s, r);
	logf_(s, "\n");
	if (s->free_me_on_push == rc) {
		s->free_me_on_push = NULL;
		resp_conn_free(rc);
	}
}

static void
on_state(struct resp_conn *rc, bool up, const char *why, void *arg)
{
	struct seen *s = arg;

	if (up) {
		s->ups++;
	} else {
		if (s->downs < 8)
			s->down_at[s->downs] = loop_now(s->loop);
		s->downs++;
		snprintf(s->why, sizeof(s->why), "%s", why);
	}
}

/* Callback args carrying an index: &slots[i] points at the seen struct. */
static struct seen *slots[8];

static void
on_reply_i(struct resp_conn *rc, const redisReply *r, void *arg)
{
	struct seen **p = arg;

	logf_(*p, "reply%d ", (int)(p - slots));
	describe(*p, r);
	logf_(*p, "\n");
}

static int
listener(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Runs the loop until cond holds, at most ~2 s. */
#define RUN_UNTIL(l, cond)                                  \
	do {                                                \
		for (int i_ = 0; i_ < 200 && !(cond); i_++) \
			loop_once((l), 10);                 \
		assert_true(cond);                          \
	} while (0)

struct fixture {
	struct loop *l;
	struct seen s;
	struct resp_conn *rc;
	int lfd, sfd;
	uint16_t port;
};

static void
setup_conn(struct fixture *f, bool pubsub)
{
	struct resp_conn_opts o = {.name = "test", .host = "127.0.0.1"};

	memset(f, 0, sizeof(*f));
	f->l = loop_new();
	assert_non_null(f->l);
	f->s.loop = f->l;
	f->lfd = listener(&f->port);
	o.port = f->port;
	o.pubsub = pubsub;
	o.on_push = on_push;
	o.on_state = on_state;
	o.arg = &f->s;
	f->rc = resp_conn_new(f->l, &o);
	assert_non_null(f->rc);
	resp_conn_start(f->rc);
	RUN_UNTIL(f->l, f->s.ups == 1);
	f->sfd = accept(f->lfd, NULL, NULL);
	assert_true(f->sfd >= 0);
	for (int i = 0; i < 8; i++)
		slots[i] = &f->s;
}

static void
teardown_conn(struct fixture *f)
{
	resp_conn_free(f->rc);
	close(f->sfd);
	close(f->lfd);
	loop_free(f->l);
}

static void
server_says(struct fixture *f, const char *resp)
{
	assert_int_equal(
	    write(f->sfd, resp, strlen(resp)), (ssize_t)strlen(resp));
}

/* Reads what the client wrote (after the loop flushed it). */
static void
server_reads(struct fixture *f, const char *want)
{
	char buf[1024];
	size_t got = 0, n = strlen(want);

	for (int i = 0; i < 200 && got < n; i++) {
		loop_once(f->l, 10);
		ssize_t r = recv(
		    f->sfd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
		if (r > 0)
			got += (size_t)r;
	}
	buf[got] = '\0';
	assert_string_equal(buf, want);
}

static void
confirmations_are_pushes_and_one_reply_ends_the_command(void **state)
{
	struct fixture f;

	setup_conn(&f, true);
	assert_int_equal(resp_conn_cmd(f.rc, on_reply_i, &slots[1],
			     "SSUBSCRIBE", "a", "b", NULL),
	    0);
	assert_int_equal(
	    resp_conn_cmd(f.rc, on_reply_i, &slots[2], "PING", NULL), 0);
	assert_int_equal(resp_conn_pending(f.rc), 2);
	server_reads(&f, "*3\r\n$10\r\nSSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n"
			 "*1\r\n$4\r\nPING\r\n");
	/* A message between the two confirmations, in odd chunks. */
	server_says(
	    &f, "*3\r\n$10\r\nssubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$8\r");
	server_says(&f, "\nsmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"
			"*3\r\n$10\r\nssubscribe\r\n$1\r\nb\r\n:2\r\n"
			"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
			"*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:1\r\n");
	RUN_UNTIL(f.l, strstr(f.s.log, "sunsubscribe") != NULL);
	assert_string_equal(f.s.log,
	    "push [ssubscribe,a,1]\n"
	    "push [smessage,a,hi]\n"
	    "push [ssubscribe,b,2]\n"
	    "reply1 [ssubscribe,b,2]\n"
	    "reply2 [pong,]\n"
	    /* Redis' own, after a slot moved: a push, no command. */
	    "push [sunsubscribe,a,1]\n");
	assert_int_equal(resp_conn_pending(f.rc), 0);
	assert_int_equal(f.s.downs, 0);
	teardown_conn(&f);
}

static void
an_error_refuses_the_whole_subscription(void **state)
{
	struct fixture f;

	setup_conn(&f, true);
	assert_int_equal(resp_conn_cmd(f.rc, on_reply_i, &slots[1],
			     "SSUBSCRIBE", "x", "y", NULL),
	    0);
	server_reads(&f, "*3\r\n$10\r\nSSUBSCRIBE\r\n$1\r\nx\r\n$1\r\ny\r\n");
	server_says(&f, "-CROSSSLOT Keys in request don't hash to the same "
			"slot\r\n");
	RUN_UNTIL(f.l, f.s.log[0] != '\0');
	assert_string_equal(f.s.log, "reply1 -CROSSSLOT Keys in request don't "
				     "hash to the same slot\n");
	assert_int_equal(resp_conn_pending(f.rc), 0);
	/* The argument-less form is refused up front. */
	assert_int_equal(
	    resp_conn_cmd(f.rc, NULL, NULL, "SUNSUBSCRIBE", NULL), -1);
	teardown_conn(&f);
}

static void
a_reply_nobody_asked_for_drops_the_link(void **state)
{
	struct fixture f;

	setup_conn(&f, false);
	server_says(&f, "+OK\r\n");
	RUN_UNTIL(f.l, f.s.downs == 1);
	assert_string_equal(f.s.why, "a reply nobody asked for (type 5)");
	assert_false(resp_conn_is_up(f.rc));
	assert_int_equal(resp_conn_cmd(f.rc, NULL, NULL, "PING", NULL), -1);
	teardown_conn(&f);
}

static void
pending_commands_fail_once_when_the_link_is_lost(void **state)
{
	struct fixture f;

	setup_conn(&f, false);
	assert_int_equal(
	    resp_conn_cmd(f.rc, on_reply_i, &slots[1], "GET", "k", NULL), 0);
	assert_int_equal(
	    resp_conn_cmd(f.rc, on_reply_i, &slots[2], "GET", "j", NULL), 0);
	server_reads(&f, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1"
			 "\r\nj\r\n");
	server_says(&f, "$1\r\nv\r\n");
	close(f.sfd);
	f.sfd = -1;
	RUN_UNTIL(f.l, f.s.downs == 1);
	assert_string_equal(f.s.log, "reply1 v\nreply2 NULL\n");
	assert_string_equal(f.s.why, "server closed the connection");
	assert_string_equal(resp_conn_state_str(f.rc), "backoff");
	assert_string_equal(
	    resp_conn_last_error(f.rc), "server closed the connection");
	resp_conn_free(f.rc);
	close(f.lfd);
	loop_free(f.l);
}

static void
freeing_from_a_push_stops_everything_at_once(void **state)
{
	struct fixture f;

	setup_conn(&f, true);
	assert_int_equal(
	    resp_conn_cmd(f.rc, on_reply_i, &slots[1], "SUBSCRIBE", "c", NULL),
	    0);
	server_reads(&f, "*2\r\n$9\r\nSUBSCRIBE\r\n$1\r\nc\r\n");
	f.s.free_me_on_push = f.rc;
	server_says(&f, "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
			"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
	RUN_UNTIL(f.l, f.s.free_me_on_push == NULL);
	for (int i = 0; i < 5; i++)
		loop_once(f.l, 5);
	/* Nothing after the free: not the reply, not the message. */
	assert_string_equal(f.s.log, "push [subscribe,c,1]\n");
	assert_int_equal(f.s.downs, 0);
	close(f.sfd);
	close(f.lfd);
	loop_free(f.l);
}

static void
start_never_calls_back_from_inside_the_call(void **state)
{
	struct loop *l = loop_new();
	struct seen s = {.loop = l};
	/* A name with spaces: the lookup fails at once, without DNS. An
	 * owner that creates links while iterating its tables must not be
	 * re-entered from resp_conn_start(). */
	struct resp_conn_opts o = {.name = "t",
	    .host = "no such host",
	    .port = 6379,
	    .on_state = on_state,
	    .arg = &s};
	struct resp_conn *rc = resp_conn_new(l, &o);

	assert_non_null(rc);
	resp_conn_start(rc);
	assert_int_equal(s.downs, 0);
	RUN_UNTIL(l, s.downs == 1);
	assert_true(strncmp(s.why, "resolve no such host: ", 22) == 0);
	resp_conn_free(rc);
	loop_free(l);
}

static void
a_refused_connect_retries_with_backoff(void **state)
{
	struct loop *l = loop_new();
	struct seen s = {.loop = l};
	uint16_t port;
	int lfd = listener(&port);
	struct resp_conn_opts o = {.name = "t",
	    .host = "127.0.0.1",
	    .backoff_min_ms = 20,
	    .backoff_max_ms = 80,
	    .on_state = on_state,
	    .arg = &s};
	struct resp_conn *rc;

	close(lfd); /* a port nobody listens on: refused at once */
	o.port = port;
	rc = resp_conn_new(l, &o);
	assert_non_null(rc);
	resp_conn_start(rc);
	assert_int_equal(s.downs, 0);
	for (int i = 0; i < 300 && s.downs < 6; i++)
		loop_once(l, 10);
	assert_int_equal(s.downs, 6);
	assert_true(strstr(s.why, "Connection refused") != NULL);
	/* Delays: equal jitter over 20, 40, 80, 80, 80 ms. */
	static const uint64_t base[] = {20, 40, 80, 80, 80};
	for (int i = 0; i < 5; i++) {
		uint64_t d = s.down_at[i + 1] - s.down_at[i];

		assert_true(d + 2 >= base[i] / 2);
		assert_true(d <= base[i] + 15);
	}
	assert_int_equal(resp_conn_stats(rc)->failures, 6);
	assert_int_equal(resp_conn_stats(rc)->connects, 0);
	resp_conn_free(rc);
	loop_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
		confirmations_are_pushes_and_one_reply_ends_the_command),
	    cmocka_unit_test(an_error_refuses_the_whole_subscription),
	    cmocka_unit_test(a_reply_nobody_asked_for_drops_the_link),
	    cmocka_unit_test(pending_commands_fail_once_when_the_link_is_lost),
	    cmocka_unit_test(freeing_from_a_push_stops_everything_at_once),
	    cmocka_unit_test(start_never_calls_back_from_inside_the_call),
	    cmocka_unit_test(a_refused_connect_retries_with_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
