/*
 * hsgate_test.c - the handshake gate's request head check (hsgate_check):
 * what passes, what waits for more, and what is refused with which status,
 * including heads that arrive a byte at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsgate.h"

#define UPGRADE                                           \
	"Upgrade: websocket\r\nConnection: Upgrade\r\n"   \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
	"Sec-WebSocket-Version: 13\r\n"
#define GOOD "GET /ws?user=42 HTTP/1.1\r\nHost: x\r\n" UPGRADE "\r\n"

static enum hsgate_verdict
check(const char *s, unsigned int *status)
{
	struct hsgate_result r;
	enum hsgate_verdict v = hsgate_check(s, strlen(s), &r);

	*status = r.status;
	if (v == HSGATE_REFUSE)
		assert_non_null(r.why);
	return v;
}

/* The verdict must be a refusal with this status. */
static void
refused(const char *s, unsigned int want)
{
	unsigned int st = 0;

	if (check(s, &st) != HSGATE_REFUSE)
		fail_msg("not refused: %.80s", s);
	assert_int_equal(st, want);
}

static void
a_good_upgrade_and_a_plain_get_pass(void **state)
{
	unsigned int st;

	(void)state;
	assert_int_equal(check(GOOD, &st), HSGATE_PASS);
	assert_int_equal(
	    check("GET /healthz HTTP/1.0\r\n\r\n", &st), HSGATE_PASS);
	assert_int_equal(check("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &st),
	    HSGATE_PASS);
	/* Pipelined bytes after the head are lws' business. */
	assert_int_equal(check(GOOD "\x81\x85", &st), HSGATE_PASS);
	/* Escapes of printable bytes and UTF-8 are fine. */
	assert_int_equal(
	    check("GET /ws?user=a%2Bb%C3%BC HTTP/1.1\r\n\r\n", &st),
	    HSGATE_PASS);
	/* obs-text and HTAB in a value. */
	assert_int_equal(
	    check("GET / HTTP/1.1\r\nX-A: \xc3\xbc\tz\r\n\r\n", &st),
	    HSGATE_PASS);
}

static void
every_prefix_of_a_good_head_waits_for_more(void **state)
{
	const char *g = GOOD;
	struct hsgate_result r;

	(void)state;
	for (size_t n = 0; n < strlen(g); n++)
		if (hsgate_check(g, n, &r) != HSGATE_MORE)
			fail_msg("prefix of %zu bytes: not MORE", n);
	assert_int_equal(hsgate_check(g, strlen(g), &r), HSGATE_PASS);
}

static void
control_characters_in_the_target_are_refused_with_400(void **state)
{
	(void)state;
	refused("GET /ws?user=a%0d%0ab HTTP/1.1\r\n\r\n", 400);
	refused("GET /ws?user=a%0ab HTTP/1.1\r\n\r\n", 400);
	refused("GET /ws?user=a%00b HTTP/1.1\r\n\r\n", 400);
	refused("GET /ws?user=a%7f HTTP/1.1\r\n\r\n", 400);
	refused("GET /ws?user=a%1F HTTP/1.1\r\n\r\n", 400);
	/* Broken escapes. */
	refused("GET /ws?user=a%zz HTTP/1.1\r\n\r\n", 400);
	refused("GET /ws?user=a% HTTP/1.1\r\n\r\n", 400);
	refused("GET /ws?user=a%4 HTTP/1.1\r\n\r\n", 400);
	/* Raw bytes outside printable ASCII. */
	refused("GET /ws?user=\xc3\xbc HTTP/1.1\r\n\r\n", 400);
	/* Not origin-form. */
	refused("GET http://x/ws HTTP/1.1\r\n\r\n", 400);
	refused("GET * HTTP/1.1\r\n\r\n", 400);
}

static void
bad_request_lines_are_refused_with_400(void **state)
{
	(void)state;
	refused("GET /ws HTTP/2.0\r\n\r\n", 400);
	refused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400);
	refused("GET /ws HTTP/1.1 x\r\n\r\n", 400);
	refused("GET  /ws HTTP/1.1\r\n\r\n", 400);
	refused("G(T /ws HTTP/1.1\r\n\r\n", 400);
	refused(" GET /ws HTTP/1.1\r\n\r\n", 400);
	refused("GET /ws HTTP/1.1\n\n", 400);
	/* A TLS ClientHello: refused at its first byte. */
	refused("\x16\x03\x01\x02", 400);
	refused("GETXXXXXXXXXXXXXXXXXXXXX /ws HTTP/1.1\r\n\r\n", 400);
}

static void
bad_header_lines_are_refused_with_400(void **state)
{
	(void)state;
	refused("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nHost x\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\n: x\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nA: b\r\n\tc", 400); /* before its end */
	refused("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400);
	refused("GET / HTTP/1.1\r\nA: b\n\r\n", 400);
}

static void
an_http_1_0_upgrade_is_refused_with_400(void **state)
{
	(void)state;
	refused("GET /ws?user=1 HTTP/1.0\r\nHost: x\r\n" UPGRADE "\r\n", 400);
	refused("GET /ws HTTP/1.0\r\nupgrade: websocket\r\n\r\n", 400);
}

static void
an_upgrade_must_be_a_websocket_get_with_connection_upgrade(void **state)
{
	unsigned int st;

	(void)state;
	/* lws would drop this one without a status. */
	refused("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 400);
	refused("POST /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\n\r\n",
	    400);
	refused("GET /ws HTTP/1.1\r\nUpgrade: h2c\r\n"
		"Connection: Upgrade, HTTP2-Settings\r\n\r\n",
	    400);
	assert_int_equal(check("GET /ws HTTP/1.1\r\nUpgrade: WebSocket \r\n"
			       "Connection: keep-alive, Upgrade\r\n\r\n",
			     &st),
	    HSGATE_PASS);
}

static void
sizes_and_counts_are_bounded(void **state)
{
	size_t n = HSGATE_HEAD_MAX + 4096;
	char *b = malloc(n + 1);
	struct hsgate_result r;
	int len;

	(void)state;
	assert_non_null(b);
	/* A 20 KB target: 414, even before its line ends. */
	len = snprintf(b, n, "GET /ws?x=");
	memset(b + len, 'a', HSGATE_URI_MAX + 100);
	b[len + HSGATE_URI_MAX + 100] = '\0';
	refused(b, 414);
	strcat(b, " HTTP/1.1\r\n\r\n");
	refused(b, 414);
	/* A target of exactly the limit passes. */
	len = snprintf(b, n, "GET /");
	memset(b + len, 'a', HSGATE_URI_MAX - 1);
	strcpy(b + len + HSGATE_URI_MAX - 1, " HTTP/1.1\r\n\r\n");
	assert_int_equal(hsgate_check(b, strlen(b), &r), HSGATE_PASS);
	/* A header block over the limit: 431, whatever follows. */
	len = snprintf(b, n, "GET / HTTP/1.1\r\nX-Big: ");
	memset(b + len, 'a', n - (size_t)len);
	assert_int_equal(
	    hsgate_check(b, HSGATE_HEAD_MAX + 1, &r), HSGATE_REFUSE);
	assert_int_equal(r.status, 431);
	assert_int_equal(r.reason, HSGATE_R_TOO_LARGE);
	/* ... but up to the limit it waits for more. */
	assert_int_equal(hsgate_check(b, HSGATE_HEAD_MAX, &r), HSGATE_MORE);
	/* Too many header lines: 431 at the first one over. */
	len = snprintf(b, n, "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= HSGATE_HEADERS_MAX; i++)
		len += snprintf(b + len, n - (size_t)len, "A: %d\r\n", i);
	refused(b, 431);
	/* Too many arguments: 400. */
	len = snprintf(b, n, "GET /ws?a=1");
	for (int i = 0; i < HSGATE_ARGS_MAX; i++)
		len += snprintf(b + len, n - (size_t)len, "&a=1");
	strcpy(b + len, " HTTP/1.1\r\n\r\n");
	refused(b, 400);
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_good_upgrade_and_a_plain_get_pass),
	    cmocka_unit_test(every_prefix_of_a_good_head_waits_for_more),
	    cmocka_unit_test(
		control_characters_in_the_target_are_refused_with_400),
	    cmocka_unit_test(bad_request_lines_are_refused_with_400),
	    cmocka_unit_test(bad_header_lines_are_refused_with_400),
	    cmocka_unit_test(an_http_1_0_upgrade_is_refused_with_400),
	    cmocka_unit_test(
		an_upgrade_must_be_a_websocket_get_with_connection_upgrade),
	    cmocka_unit_test(sizes_and_counts_are_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
