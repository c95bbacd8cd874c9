/*
 * frame_test.c - refcounted frames and the one-per-worker message framing
 * (envelope JSON for every payload class, raw delivery).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "envelope.h"
#include "frame.h"

#define S(lit) lit, sizeof(lit) - 1

static struct bus_msg
msg(const char *to, enum payload_class cls, const char *data, size_t len)
{
	struct bus_msg m;

	memset(&m, 0, sizeof(m));
	m.epoch = 1;
	m.seq = 1;
	m.to.p = to;
	m.to.len = (uint32_t)strlen(to);
	m.cls = cls;
	m.data.p = data;
	m.data.len = (uint32_t)len;
	return m;
}

/* Parses the frame as JSON; the caller decrefs. */
static json_t *
parse(const struct frame *f)
{
	json_error_t err;
	json_t *j = json_loadb((const char *)f->buf + LWS_PRE, f->len, 0, &err);

	assert_non_null(j);
	return j;
}

static void
frames_are_refcounted_with_headroom(void **state)
{
	struct frame *f = frame_new_copy(S("hello"), false);

	assert_non_null(f);
	assert_int_equal(f->refs, 1);
	assert_int_equal(f->len, 5);
	assert_false(f->binary);
	assert_ptr_equal(frame_data(f), f->buf + LWS_PRE);
	assert_memory_equal(frame_data(f), "hello", 5);
	assert_ptr_equal(frame_ref(f), f);
	assert_int_equal(f->refs, 2);
	frame_unref(f);
	assert_int_equal(f->refs, 1);
	frame_unref(f);
	frame_unref(NULL);
}

static void
a_json_payload_is_embedded_as_is(void **state)
{
	struct bus_msg m = msg(
	    "user:42", PAYLOAD_JSON, S("{\"order\":1001,\"status\":\"paid\"}"));
	struct frame *f = frame_build_msg(&m, false);

	assert_non_null(f);
	assert_false(f->binary);
	assert_int_equal(f->len,
	    strlen(
		"{\"op\":\"msg\",\"to\":\"user:42\",\"data\":{\"order\":1001,"
		"\"status\":\"paid\"}}"));
	assert_memory_equal(frame_data(f),
	    "{\"op\":\"msg\",\"to\":\"user:42\",\"data\":{\"order\":1001,"
	    "\"status\":\"paid\"}}",
	    f->len);
	frame_unref(f);
}

static void
text_is_a_json_string_with_escapes(void **state)
{
	struct bus_msg m = msg(
	    "channel:a\"b", PAYLOAD_TEXT, S("line\n\"q\" \\ \x01 \xc3\xa9"));
	struct frame *f = frame_build_msg(&m, false);
	json_t *j;

	assert_non_null(f);
	j = parse(f);
	assert_string_equal(json_string_value(json_object_get(j, "op")), "msg");
	assert_string_equal(
	    json_string_value(json_object_get(j, "to")), "channel:a\"b");
	assert_string_equal(json_string_value(json_object_get(j, "data")),
	    "line\n\"q\" \\ \x01 \xc3\xa9");
	assert_null(json_object_get(j, "from"));
	assert_null(json_object_get(j, "id"));
	json_decref(j);
	frame_unref(f);
}

static void
binary_is_base64_in_data_b64(void **state)
{
	struct bus_msg m = msg("all", PAYLOAD_BINARY, S("\xff\xfe bin"));
	struct frame *f = frame_build_msg(&m, false);
	json_t *j;

	assert_non_null(f);
	j = parse(f);
	assert_null(json_object_get(j, "data"));
	assert_string_equal(
	    json_string_value(json_object_get(j, "data_b64")), "//4gYmlu");
	json_decref(j);
	frame_unref(f);
}

static void
from_and_id_appear_only_when_present_and_valid(void **state)
{
	struct bus_msg m = msg("channel:news", PAYLOAD_JSON, S("[1,2]"));
	struct frame *f;
	json_t *j;

	m.from.p = "7";
	m.from.len = 1;
	m.id.p = "m-1";
	m.id.len = 3;
	f = frame_build_msg(&m, false);
	j = parse(f);
	assert_string_equal(json_string_value(json_object_get(j, "from")), "7");
	assert_string_equal(json_string_value(json_object_get(j, "id")), "m-1");
	assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
	json_decref(j);
	frame_unref(f);

	m.from.p = "\xff";
	f = frame_build_msg(&m, false);
	j = parse(f);
	assert_null(json_object_get(j, "from"));
	json_decref(j);
	frame_unref(f);
}

static void
an_empty_json_payload_becomes_an_empty_string(void **state)
{
	struct bus_msg m = msg("all", PAYLOAD_JSON, "", 0);
	struct frame *f = frame_build_msg(&m, false);
	json_t *j = parse(f);

	assert_string_equal(json_string_value(json_object_get(j, "data")), "");
	json_decref(j);
	frame_unref(f);
}

static void
raw_delivery_sends_the_payload_bytes(void **state)
{
	struct bus_msg m = msg("user:1", PAYLOAD_TEXT, S("plain"));
	struct frame *f = frame_build_msg(&m, true);

	assert_int_equal(f->len, 5);
	assert_false(f->binary);
	assert_memory_equal(frame_data(f), "plain", 5);
	frame_unref(f);

	m = msg("user:1", PAYLOAD_BINARY, S("\x00\xff"));
	f = frame_build_msg(&m, true);
	assert_int_equal(f->len, 2);
	assert_true(f->binary);
	frame_unref(f);
}

static void
large_text_frames_are_trimmed_to_size(void **state)
{
	static char big[20000];
	struct bus_msg m;
	struct frame *f;
	json_t *j;

	memset(big, 'x', sizeof(big));
	m = msg("all", PAYLOAD_TEXT, big, sizeof(big));
	f = frame_build_msg(&m, false);
	assert_non_null(f);
	assert_int_equal(f->cap, f->len);
	j = parse(f);
	assert_int_equal(
	    json_string_length(json_object_get(j, "data")), sizeof(big));
	json_decref(j);
	frame_unref(f);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(frames_are_refcounted_with_headroom),
	    cmocka_unit_test(a_json_payload_is_embedded_as_is),
	    cmocka_unit_test(text_is_a_json_string_with_escapes),
	    cmocka_unit_test(binary_is_base64_in_data_b64),
	    cmocka_unit_test(from_and_id_appear_only_when_present_and_valid),
	    cmocka_unit_test(an_empty_json_payload_becomes_an_empty_string),
	    cmocka_unit_test(raw_delivery_sends_the_payload_bytes),
	    cmocka_unit_test(large_text_frames_are_trimmed_to_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
