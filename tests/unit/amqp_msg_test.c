/*
 * amqp_msg_test.c - which address an AMQP delivery is for
 * (bridge/amqp_msg.c): routing key on the direct exchange, `all` or the
 * wspush-to header on the fanout exchange, malformed headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "amqp_msg.h"

static amqp_bytes_t
B(const char *s)
{
	return amqp_cstring_bytes(s);
}

static enum amqp_msg_why
route(bool fanout, enum amqp_msg_hdr h, const char *hv, const char *key,
    char *out)
{
	const char *p = NULL;
	size_t len = 0;
	enum amqp_msg_why w =
	    amqp_msg_address(fanout, h, B(hv), B(key), &p, &len);

	if (w == AMQP_MSG_OK) {
		memcpy(out, p, len);
		out[len] = '\0';
	}
	return w;
}

static void
the_direct_exchange_routes_by_key(void **state)
{
	char a[600];

	assert_int_equal(
	    route(false, AMQP_MSG_HDR_ABSENT, "", "user:42", a), AMQP_MSG_OK);
	assert_string_equal(a, "user:42");
	assert_int_equal(
	    route(false, AMQP_MSG_HDR_STRING, "user:7", "channel:news", a),
	    AMQP_MSG_OK);
	assert_string_equal(a, "channel:news"); /* the header is ignored */
	assert_int_equal(
	    route(false, AMQP_MSG_HDR_ABSENT, "", "all", a), AMQP_MSG_OK);
}

static void
a_bad_routing_key_is_refused(void **state)
{
	char a[600];

	assert_int_equal(
	    route(false, AMQP_MSG_HDR_ABSENT, "", "", a), AMQP_MSG_BAD_KEY);
	assert_int_equal(route(false, AMQP_MSG_HDR_ABSENT, "", "order.paid", a),
	    AMQP_MSG_BAD_KEY);
	assert_int_equal(route(false, AMQP_MSG_HDR_ABSENT, "", "user:", a),
	    AMQP_MSG_BAD_KEY);
	assert_int_equal(route(false, AMQP_MSG_HDR_ABSENT, "", "user:a b", a),
	    AMQP_MSG_BAD_KEY);
}

static void
the_fanout_exchange_goes_to_all_without_a_header(void **state)
{
	char a[600];

	assert_int_equal(
	    route(true, AMQP_MSG_HDR_ABSENT, "", "", a), AMQP_MSG_OK);
	assert_string_equal(a, "all");
	/* Whatever routing key the publisher used does not matter. */
	assert_int_equal(
	    route(true, AMQP_MSG_HDR_ABSENT, "", "user:1", a), AMQP_MSG_OK);
	assert_string_equal(a, "all");
}

static void
the_fanout_exchange_honours_wspush_to(void **state)
{
	char a[600];

	assert_int_equal(
	    route(true, AMQP_MSG_HDR_STRING, "user:auth0|123", "", a),
	    AMQP_MSG_OK);
	assert_string_equal(a, "user:auth0|123");
	assert_int_equal(route(true, AMQP_MSG_HDR_STRING, "nobody", "", a),
	    AMQP_MSG_BAD_HEADER);
	assert_int_equal(
	    route(true, AMQP_MSG_HDR_STRING, "", "", a), AMQP_MSG_BAD_HEADER);
	assert_int_equal(
	    route(true, AMQP_MSG_HDR_BAD, "", "", a), AMQP_MSG_BAD_HEADER);
}

static void
header_lookup_takes_strings_and_flags_other_types(void **state)
{
	amqp_table_entry_t e[3];
	amqp_table_t t = {3, e};
	amqp_bytes_t v;

	e[0].key = B("x-other");
	e[0].value.kind = AMQP_FIELD_KIND_UTF8;
	e[0].value.value.bytes = B("nope");
	e[1].key = B("wspush-to");
	e[1].value.kind = AMQP_FIELD_KIND_UTF8;
	e[1].value.value.bytes = B("user:9");
	e[2].key = B("n");
	e[2].value.kind = AMQP_FIELD_KIND_I32;
	e[2].value.value.i32 = 5;
	assert_int_equal(
	    amqp_msg_header(&t, "wspush-to", &v), AMQP_MSG_HDR_STRING);
	assert_int_equal(v.len, 6);
	assert_memory_equal(v.bytes, "user:9", 6);
	assert_int_equal(amqp_msg_header(&t, "n", &v), AMQP_MSG_HDR_BAD);
	assert_int_equal(
	    amqp_msg_header(&t, "wspush", &v), AMQP_MSG_HDR_ABSENT);
	assert_int_equal(
	    amqp_msg_header(NULL, "wspush-to", &v), AMQP_MSG_HDR_ABSENT);
	e[1].value.kind = AMQP_FIELD_KIND_BYTES;
	assert_int_equal(
	    amqp_msg_header(&t, "wspush-to", &v), AMQP_MSG_HDR_STRING);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_direct_exchange_routes_by_key),
	    cmocka_unit_test(a_bad_routing_key_is_refused),
	    cmocka_unit_test(the_fanout_exchange_goes_to_all_without_a_header),
	    cmocka_unit_test(the_fanout_exchange_honours_wspush_to),
	    cmocka_unit_test(header_lookup_takes_strings_and_flags_other_types),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
