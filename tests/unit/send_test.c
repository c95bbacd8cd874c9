/*
 * send_test.c - the write path's pure parts: server frame headers (2, 4
 * and 10 bytes at the length boundaries) and send coalescing (how many
 * queued frames go into one send: bounded by SEND_COALESCE_MAX with their
 * headers and by the frame budget, a frame too large to copy on its own)
 * and the bytes a coalesced send carries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "connq.h"
#include "send.h"

static struct frame *
mk(size_t len, char fill, bool binary)
{
	struct frame *f = frame_new(len ? len : 1, binary);

	assert_non_null(f);
	memset(frame_data(f), fill, len);
	f->len = (uint32_t)len;
	return f;
}

static void
push(struct connq *q, size_t len, char fill)
{
	struct frame *f = mk(len, fill, false);

	assert_int_equal(connq_push(q, f), 0);
	frame_unref(f);
}

static void
headers_use_the_shortest_length_form(void **state)
{
	unsigned char h[10];

	assert_int_equal(send_header(h, 0, false), 2);
	assert_int_equal(h[0], 0x81);
	assert_int_equal(h[1], 0);
	assert_int_equal(send_header(h, 125, true), 2);
	assert_int_equal(h[0], 0x82);
	assert_int_equal(h[1], 125);
	assert_int_equal(send_header(h, 126, false), 4);
	assert_int_equal(h[1], 126);
	assert_int_equal(h[2], 0);
	assert_int_equal(h[3], 126);
	assert_int_equal(send_header(h, 65535, false), 4);
	assert_int_equal(h[2], 0xff);
	assert_int_equal(h[3], 0xff);
	assert_int_equal(send_header(h, 65536, false), 10);
	assert_int_equal(h[1], 127);
	assert_int_equal(h[7], 1);
	assert_int_equal(h[8], 0);
	assert_int_equal(h[9], 0);
	assert_int_equal(send_header_len(125), 2);
	assert_int_equal(send_header_len(126), 4);
	assert_int_equal(send_header_len(65536), 10);
}

static void
small_frames_are_coalesced_into_one_send(void **state)
{
	struct connq q;
	unsigned char buf[64];
	size_t wire;
	uint64_t payload;

	connq_init(&q, 1 << 20);
	push(&q, 3, 'a');
	push(&q, 0, 'b');
	push(&q, 2, 'c');
	assert_int_equal(send_pack(&q, SEND_BATCH, &wire, &payload), 3);
	assert_int_equal(wire, 5 + 2 + 4);
	assert_int_equal(payload, 5);
	assert_int_equal(send_copy(&q, 3, buf), wire);
	assert_memory_equal(buf,
	    "\x81\x03"
	    "aaa"
	    "\x81\x00"
	    "\x81\x02"
	    "cc",
	    wire);
	connq_fini(&q);
}

static void
coalescing_stops_at_the_size_cap_and_the_frame_budget(void **state)
{
	struct connq q;
	size_t wire, each = 1000 + send_header_len(1000);
	uint64_t payload;
	uint32_t fit = SEND_COALESCE_MAX / each, i;

	connq_init(&q, 1 << 24);
	for (i = 0; i < fit + 5; i++)
		push(&q, 1000, 'x');
	assert_int_equal(send_pack(&q, SEND_BATCH, &wire, &payload), fit);
	assert_int_equal(wire, fit * each);
	assert_true(wire <= SEND_COALESCE_MAX);
	assert_int_equal(payload, (uint64_t)fit * 1000);
	/* The caller's budget bounds it too. */
	assert_int_equal(send_pack(&q, 3, &wire, &payload), 3);
	assert_int_equal(wire, 3 * each);
	connq_fini(&q);
}

static void
a_frame_too_large_to_copy_goes_alone(void **state)
{
	struct connq q;
	size_t wire;
	uint64_t payload;

	connq_init(&q, 1 << 24);
	push(&q, SEND_COALESCE_MAX, 'L');
	push(&q, 10, 's');
	assert_int_equal(send_pack(&q, SEND_BATCH, &wire, &payload), 1);
	assert_int_equal(
	    wire, SEND_COALESCE_MAX + send_header_len(SEND_COALESCE_MAX));
	assert_int_equal(payload, SEND_COALESCE_MAX);
	/* A small frame followed by a large one: the small one alone. */
	frame_unref(connq_pop(&q));
	push(&q, 100000, 'L');
	assert_int_equal(send_pack(&q, SEND_BATCH, &wire, &payload), 1);
	assert_int_equal(wire, 12);
	connq_fini(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(headers_use_the_shortest_length_form),
	    cmocka_unit_test(small_frames_are_coalesced_into_one_send),
	    cmocka_unit_test(
		coalescing_stops_at_the_size_cap_and_the_frame_budget),
	    cmocka_unit_test(a_frame_too_large_to_copy_goes_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
