/*
 * clientmsg_test.c - strict parsing of client messages (every op, every
 * error class, ref echo) and the JSON control replies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clientmsg.h"

/* Parses s; returns the error code; m must be cmsg_fini'ed. */
static enum cmsg_err
parse(const char *s, struct cmsg *m)
{
	const char *msg = NULL;
	enum cmsg_err e = cmsg_parse(s, strlen(s), m, &msg);

	if (e != CMSG_OK)
		assert_non_null(msg);
	return e;
}

/* The frame's text, NUL-terminated (static buffer). */
static const char *
text(struct frame *f)
{
	static char buf[1024];

	assert_non_null(f);
	assert_true(f->len < sizeof(buf));
	memcpy(buf, frame_data(f), f->len);
	buf[f->len] = '\0';
	frame_unref(f);
	return buf;
}

static void
subscribe_and_unsubscribe_carry_a_valid_channel(void **state)
{
	struct cmsg m;

	assert_int_equal(
	    parse("{\"op\":\"subscribe\",\"channel\":\"news\",\"ref\":1}", &m),
	    CMSG_OK);
	assert_int_equal(m.op, CMSG_SUBSCRIBE);
	assert_int_equal(m.channel_len, 4);
	assert_memory_equal(m.channel, "news", 4);
	assert_true(json_is_integer(m.ref));
	cmsg_fini(&m);

	assert_int_equal(
	    parse("{\"channel\":\"chat:room:7\",\"op\":\"unsubscribe\"}", &m),
	    CMSG_OK);
	assert_int_equal(m.op, CMSG_UNSUBSCRIBE);
	assert_null(m.ref);
	cmsg_fini(&m);

	assert_int_equal(
	    parse("{\"op\":\"subscribe\",\"channel\":\"a b\"}", &m),
	    CMSG_E_INVALID_CHANNEL);
	cmsg_fini(&m);
	assert_int_equal(parse("{\"op\":\"subscribe\",\"channel\":\"a*\"}", &m),
	    CMSG_E_INVALID_CHANNEL);
	cmsg_fini(&m);
	assert_int_equal(parse("{\"op\":\"subscribe\",\"channel\":\"\"}", &m),
	    CMSG_E_INVALID_CHANNEL);
	cmsg_fini(&m);
	assert_int_equal(parse("{\"op\":\"subscribe\",\"channel\":7}", &m),
	    CMSG_E_BAD_REQUEST);
	cmsg_fini(&m);
	assert_int_equal(
	    parse("{\"op\":\"subscribe\"}", &m), CMSG_E_BAD_REQUEST);
	cmsg_fini(&m);
}

static void
publish_needs_an_address_and_data(void **state)
{
	struct cmsg m;
	size_t len;
	char *d;

	assert_int_equal(parse("{\"op\":\"publish\",\"to\":\"user:7\","
			       "\"data\":{\"a\": [1, 2.5, \"\\u00e9\"]}}",
			     &m),
	    CMSG_OK);
	assert_int_equal(m.op, CMSG_PUBLISH);
	assert_int_equal(m.to.kind, ADDR_USER);
	assert_int_equal(m.to_len, 6);
	d = cmsg_data_text(&m, &len);
	assert_string_equal(d, "{\"a\":[1,2.5,\"\xc3\xa9\"]}");
	assert_int_equal(len, strlen(d));
	free(d);
	cmsg_fini(&m);

	assert_int_equal(
	    parse("{\"op\":\"publish\",\"to\":\"all\",\"data\":3}", &m),
	    CMSG_OK);
	d = cmsg_data_text(&m, &len);
	assert_string_equal(d, "3");
	free(d);
	cmsg_fini(&m);

	assert_int_equal(parse("{\"op\":\"publish\",\"to\":\"bogus:1\","
			       "\"data\":1}",
			     &m),
	    CMSG_E_BAD_REQUEST);
	cmsg_fini(&m);
	assert_int_equal(parse("{\"op\":\"publish\",\"to\":\"user:7\"}", &m),
	    CMSG_E_BAD_REQUEST);
	cmsg_fini(&m);
}

static void
send_ping_and_auth_parse(void **state)
{
	struct cmsg m;

	assert_int_equal(parse("{\"op\":\"send\",\"data\":null}", &m), CMSG_OK);
	assert_int_equal(m.op, CMSG_SEND);
	assert_true(json_is_null(m.data));
	cmsg_fini(&m);
	assert_int_equal(parse("{\"op\":\"send\"}", &m), CMSG_E_BAD_REQUEST);
	cmsg_fini(&m);
	assert_int_equal(parse("{\"op\":\"ping\",\"ref\":\"x\"}", &m), CMSG_OK);
	assert_int_equal(m.op, CMSG_PING);
	cmsg_fini(&m);
	assert_int_equal(
	    parse("{\"op\":\"auth\",\"token\":\"t\"}", &m), CMSG_OK);
	assert_int_equal(m.token_len, 1);
	cmsg_fini(&m);
	assert_int_equal(parse("{\"op\":\"auth\"}", &m), CMSG_E_BAD_REQUEST);
	cmsg_fini(&m);
}

static void
malformed_input_is_a_bad_request(void **state)
{
	static const char *const bad[] = {
	    "", "{", "ping", "[]", "\"op\"", "3", "{\"op\":1}", "{}",
	    "{\"op\":\"ping\",\"op\":\"ping\"}", /* duplicate key */
	    "{\"op\":\"ping\"} x",               /* trailing bytes */
	    "{\"op\":\"ping\",\"ref\":[1]}",     /* ref not a scalar */
	    "{\"op\":\"ping\",\"ref\":{}}",      /* ref not a scalar */
	    "{\"op\":\"sub\\u0000scribe\"}",     /* NUL in a string */
	    "{\"op\":\"ping\",\"x\":\"\xff\"}",  /* invalid UTF-8 */
	};
	struct cmsg m;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &m), CMSG_E_BAD_REQUEST);
		cmsg_fini(&m);
	}
}

static void
an_unknown_op_is_reported_with_its_ref(void **state)
{
	struct cmsg m;

	assert_int_equal(
	    parse("{\"op\":\"nope\",\"ref\":\"r1\"}", &m), CMSG_E_UNKNOWN_OP);
	assert_string_equal(json_string_value(m.ref), "r1");
	cmsg_fini(&m);
}

static void
unknown_fields_are_ignored(void **state)
{
	struct cmsg m;

	assert_int_equal(
	    parse("{\"op\":\"ping\",\"future\":{\"x\":[1]}}", &m), CMSG_OK);
	cmsg_fini(&m);
}

static void
replies_echo_the_ref_verbatim(void **state)
{
	struct cmsg m;

	assert_int_equal(parse("{\"op\":\"ping\",\"ref\":4.5}", &m), CMSG_OK);
	assert_string_equal(text(cmsg_reply_frame("pong", NULL, 0, m.ref)),
	    "{\"op\":\"pong\",\"ref\":4.5}");
	cmsg_fini(&m);
	assert_int_equal(parse("{\"op\":\"ping\",\"ref\":null}", &m), CMSG_OK);
	assert_string_equal(text(cmsg_reply_frame("pong", NULL, 0, m.ref)),
	    "{\"op\":\"pong\",\"ref\":null}");
	cmsg_fini(&m);
	assert_string_equal(
	    text(cmsg_reply_frame("pong", NULL, 0, NULL)), "{\"op\":\"pong\"}");
}

static void
reply_frames_have_the_documented_shape(void **state)
{
	json_t *ref = json_integer(3);

	assert_string_equal(
	    text(cmsg_reply_frame("subscribed", "news", 4, ref)),
	    "{\"op\":\"subscribed\",\"channel\":\"news\",\"ref\":3}");
	assert_string_equal(text(cmsg_error_frame(CMSG_E_FORBIDDEN, "no", ref)),
	    "{\"op\":\"error\",\"code\":\"forbidden\",\"msg\":\"no\",\"ref\":"
	    "3}");
	assert_string_equal(
	    text(cmsg_welcome_frame("42", "node-a", 2, "node-a.2.1.17")),
	    "{\"op\":\"welcome\",\"user\":\"42\",\"node\":\"node-a\","
	    "\"worker\":2,\"conn\":\"node-a.2.1.17\"}");
	json_decref(ref);
}

static void
error_codes_have_wire_names(void **state)
{
	assert_string_equal(cmsg_err_str(CMSG_E_BAD_REQUEST), "bad_request");
	assert_string_equal(cmsg_err_str(CMSG_E_UNKNOWN_OP), "unknown_op");
	assert_string_equal(cmsg_err_str(CMSG_E_TOO_MANY_SUBSCRIPTIONS),
	    "too_many_subscriptions");
	assert_string_equal(
	    cmsg_err_str(CMSG_E_NOT_SUBSCRIBED), "not_subscribed");
	assert_string_equal(cmsg_err_str(CMSG_E_RATE_LIMITED), "rate_limited");
	assert_string_equal(cmsg_err_str(CMSG_E_TOO_LARGE), "too_large");
	assert_string_equal(
	    cmsg_err_str(CMSG_E_INVALID_CHANNEL), "invalid_channel");
	assert_string_equal(cmsg_err_str((enum cmsg_err)999), "internal");
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(subscribe_and_unsubscribe_carry_a_valid_channel),
	    cmocka_unit_test(publish_needs_an_address_and_data),
	    cmocka_unit_test(send_ping_and_auth_parse),
	    cmocka_unit_test(malformed_input_is_a_bad_request),
	    cmocka_unit_test(an_unknown_op_is_reported_with_its_ref),
	    cmocka_unit_test(unknown_fields_are_ignored),
	    cmocka_unit_test(replies_echo_the_ref_verbatim),
	    cmocka_unit_test(reply_frames_have_the_documented_shape),
	    cmocka_unit_test(error_codes_have_wire_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
