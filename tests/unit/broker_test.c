/*
 * broker_test.c - the outage bookkeeping every broker shares
 * (bridge/broker.c): outages are counted where the state changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker.h"

static void
a_first_connection_is_no_outage(void **state)
{
	struct broker_outage o = {0};

	broker_outage_note(&o, false, false, 100);
	assert_int_equal(broker_outage_down_for(&o, 150), 50);
	broker_outage_note(&o, true, false, 200);
	assert_int_equal(o.outages, 0);
	assert_int_equal(broker_outage_down_for(&o, 300), 0);
}

static void
a_first_connection_after_failures_is_an_outage(void **state)
{
	struct broker_outage o = {0};

	broker_outage_note(&o, false, false, 100);
	broker_outage_note(&o, true, true, 1100);
	assert_int_equal(o.outages, 1);
	assert_int_equal(o.last_outage_ms, 1000);
}

static void
a_loss_and_return_is_one_outage(void **state)
{
	struct broker_outage o = {0};

	broker_outage_note(&o, true, false, 10);
	broker_outage_note(&o, false, false, 500);
	broker_outage_note(&o, false, false, 700); /* still down: same one */
	assert_int_equal(broker_outage_down_for(&o, 800), 300);
	broker_outage_note(&o, true, false, 900);
	assert_int_equal(o.outages, 1);
	assert_int_equal(o.last_outage_ms, 400);
	broker_outage_note(&o, true, false, 950);
	assert_int_equal(o.outages, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_first_connection_is_no_outage),
	    cmocka_unit_test(a_first_connection_after_failures_is_an_outage),
	    cmocka_unit_test(a_loss_and_return_is_one_outage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
