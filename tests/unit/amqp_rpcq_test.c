/*
 * amqp_rpcq_test.c - replies owed by an AMQP channel (bridge/amqp_rpcq.c):
 * matched in request order, a reply of the wrong method refused, the
 * routing key kept with its bind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "amqp_rpcq.h"

enum { K_SETUP, K_BIND, K_UNBIND };

static struct amqp_rpcq Q;

static int
setup(void **state)
{
	amqp_rpcq_init(&Q);
	return 0;
}

static int
teardown(void **state)
{
	amqp_rpcq_clear(&Q);
	return 0;
}

static void
pop_expect(amqp_method_number_t id, int kind, const char *key)
{
	struct amqp_rpcq_entry *e = amqp_rpcq_pop(&Q, id);

	assert_non_null(e);
	assert_int_equal(e->kind, kind);
	assert_int_equal(e->keylen, strlen(key));
	assert_string_equal(e->key, key);
	free(e);
}

static void
replies_are_matched_in_request_order(void **state)
{
	assert_int_equal(amqp_rpcq_push(&Q, AMQP_QUEUE_BIND_OK_METHOD, K_BIND,
			     "bind", "user:1", 6),
	    0);
	assert_int_equal(amqp_rpcq_push(&Q, AMQP_QUEUE_UNBIND_OK_METHOD,
			     K_UNBIND, "unbind", "channel:a", 9),
	    0);
	assert_int_equal(amqp_rpcq_push(&Q, AMQP_QUEUE_BIND_OK_METHOD, K_BIND,
			     "bind", "all", 3),
	    0);
	assert_int_equal(Q.n, 3);
	/* bind-ok carries no key: the FIFO says it was user:1's. */
	pop_expect(AMQP_QUEUE_BIND_OK_METHOD, K_BIND, "user:1");
	pop_expect(AMQP_QUEUE_UNBIND_OK_METHOD, K_UNBIND, "channel:a");
	pop_expect(AMQP_QUEUE_BIND_OK_METHOD, K_BIND, "all");
	assert_int_equal(Q.n, 0);
	assert_null(amqp_rpcq_head(&Q));
}

static void
a_reply_of_another_method_is_refused_and_changes_nothing(void **state)
{
	const struct amqp_rpcq_entry *h;

	(void)amqp_rpcq_push(&Q, AMQP_EXCHANGE_DECLARE_OK_METHOD, K_SETUP,
	    "[amqp] exchange", NULL, 0);
	(void)amqp_rpcq_push(
	    &Q, AMQP_QUEUE_BIND_OK_METHOD, K_BIND, "bind", "user:2", 6);
	assert_null(amqp_rpcq_pop(&Q, AMQP_QUEUE_BIND_OK_METHOD));
	assert_int_equal(Q.n, 2);
	h = amqp_rpcq_head(&Q);
	assert_non_null(h);
	assert_int_equal(h->expect, AMQP_EXCHANGE_DECLARE_OK_METHOD);
	/* The head names what a refusal (channel.close) was about. */
	assert_string_equal(h->what, "[amqp] exchange");
	pop_expect(AMQP_EXCHANGE_DECLARE_OK_METHOD, K_SETUP, "");
	pop_expect(AMQP_QUEUE_BIND_OK_METHOD, K_BIND, "user:2");
}

static void
a_reply_when_nothing_was_asked_is_refused(void **state)
{
	assert_null(amqp_rpcq_pop(&Q, AMQP_QUEUE_BIND_OK_METHOD));
	assert_null(amqp_rpcq_head(&Q));
}

static void
clearing_forgets_every_open_request(void **state)
{
	for (int i = 0; i < 100; i++)
		(void)amqp_rpcq_push(
		    &Q, AMQP_QUEUE_BIND_OK_METHOD, K_BIND, "bind", "all", 3);
	amqp_rpcq_clear(&Q);
	assert_int_equal(Q.n, 0);
	assert_null(amqp_rpcq_pop(&Q, AMQP_QUEUE_BIND_OK_METHOD));
	/* Usable again after a reconnect. */
	(void)amqp_rpcq_push(
	    &Q, AMQP_CHANNEL_OPEN_OK_METHOD, K_SETUP, "channel", NULL, 0);
	pop_expect(AMQP_CHANNEL_OPEN_OK_METHOD, K_SETUP, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		replies_are_matched_in_request_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_reply_of_another_method_is_refused_and_changes_nothing, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		a_reply_when_nothing_was_asked_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		clearing_forgets_every_open_request, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
