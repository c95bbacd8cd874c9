/*
 * amqp_confirm_test.c - publisher-confirm bookkeeping (bridge/amqp_confirm.c):
 * single and `multiple` acks, nacks, unknown tags, the window, loss on a
 * channel reset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "amqp_confirm.h"

static struct amqp_confirm C;

static int
setup(void **state)
{
	amqp_confirm_init(&C);
	return 0;
}

static void
send_n(int n)
{
	for (int i = 0; i < n; i++)
		assert_int_not_equal(amqp_confirm_sent(&C), 0);
}

static void
tags_start_at_one_and_count_up(void **state)
{
	assert_int_equal(amqp_confirm_sent(&C), 1);
	assert_int_equal(amqp_confirm_sent(&C), 2);
	assert_int_equal(amqp_confirm_open(&C), 2);
}

static void
a_single_ack_settles_only_its_tag(void **state)
{
	send_n(3);
	assert_int_equal(amqp_confirm_settle(&C, 2, false, false), 1);
	assert_int_equal(amqp_confirm_open(&C), 2);
	assert_int_equal(C.acked, 1);
	assert_int_equal(amqp_confirm_settle(&C, 1, false, false), 1);
	assert_int_equal(amqp_confirm_settle(&C, 3, false, false), 1);
	assert_int_equal(amqp_confirm_open(&C), 0);
	assert_int_equal(C.acked, 3);
}

static void
a_multiple_ack_settles_everything_up_to_its_tag(void **state)
{
	send_n(5);
	assert_int_equal(amqp_confirm_settle(&C, 2, false, false), 1);
	/* 1, 3, 4 open; multiple ack of 4 settles those three, not 2 again */
	assert_int_equal(amqp_confirm_settle(&C, 4, true, false), 3);
	assert_int_equal(amqp_confirm_open(&C), 1);
	assert_int_equal(C.acked, 4);
}

static void
a_multiple_nack_is_counted_as_nacked(void **state)
{
	send_n(4);
	assert_int_equal(amqp_confirm_settle(&C, 3, true, true), 3);
	assert_int_equal(C.nacked, 3);
	assert_int_equal(C.acked, 0);
	assert_int_equal(amqp_confirm_settle(&C, 4, false, false), 1);
	assert_int_equal(C.acked, 1);
}

static void
unknown_and_repeated_tags_settle_nothing(void **state)
{
	send_n(2);
	assert_int_equal(amqp_confirm_settle(&C, 7, false, false), 0);
	assert_int_equal(amqp_confirm_settle(&C, 0, true, false), 0);
	assert_int_equal(amqp_confirm_settle(&C, 1, false, false), 1);
	assert_int_equal(amqp_confirm_settle(&C, 1, false, false), 0);
	assert_int_equal(C.unknown, 3);
	assert_int_equal(amqp_confirm_open(&C), 1);
}

static void
the_window_fills_and_frees(void **state)
{
	send_n(AMQP_CONFIRM_WINDOW);
	assert_false(amqp_confirm_room(&C));
	assert_int_equal(amqp_confirm_sent(&C), 0);
	/* The oldest settled frees one slot; a settled tag in the middle
	 * does not (the window is counted from the oldest open tag). */
	assert_int_equal(amqp_confirm_settle(&C, 5, false, false), 1);
	assert_false(amqp_confirm_room(&C));
	assert_int_equal(amqp_confirm_settle(&C, 1, false, false), 1);
	assert_true(amqp_confirm_room(&C));
	assert_int_equal(amqp_confirm_sent(&C), AMQP_CONFIRM_WINDOW + 1);
	/* Around the ring: a multiple ack across the wrap. */
	assert_int_equal(
	    amqp_confirm_settle(&C, AMQP_CONFIRM_WINDOW + 1, true, false),
	    AMQP_CONFIRM_WINDOW - 1);
	assert_int_equal(amqp_confirm_open(&C), 0);
	assert_int_equal(C.acked, AMQP_CONFIRM_WINDOW + 1);
}

static void
losing_the_channel_counts_open_publishes_and_restarts_at_one(void **state)
{
	send_n(3);
	(void)amqp_confirm_settle(&C, 1, false, false);
	assert_int_equal(amqp_confirm_lose(&C), 2);
	assert_int_equal(C.lost, 2);
	assert_int_equal(amqp_confirm_open(&C), 0);
	assert_int_equal(amqp_confirm_sent(&C), 1);
	assert_int_equal(C.acked, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(tags_start_at_one_and_count_up, setup),
	    cmocka_unit_test_setup(a_single_ack_settles_only_its_tag, setup),
	    cmocka_unit_test_setup(
		a_multiple_ack_settles_everything_up_to_its_tag, setup),
	    cmocka_unit_test_setup(a_multiple_nack_is_counted_as_nacked, setup),
	    cmocka_unit_test_setup(
		unknown_and_repeated_tags_settle_nothing, setup),
	    cmocka_unit_test_setup(the_window_fills_and_frees, setup),
	    cmocka_unit_test_setup(
		losing_the_channel_counts_open_publishes_and_restarts_at_one,
		setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
