/*
 * fuzz_hsgate.c - libFuzzer target for the handshake gate's request head
 * check (gateway/hsgate.c), the first code that sees a client's bytes.
 *
 * The input is the first bytes of a connection. hsgate_check() must not
 * crash or read past len, a refusal must carry a status and a reason,
 * and it must refuse early only when sure: if the whole input is
 * acceptable so far (MORE or PASS), so is every prefix of it, since the
 * gate checks each prefix as the bytes trickle in.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsgate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_one(const char *buf, size_t len, enum hsgate_verdict *v)
{
	struct hsgate_result r;

	*v = hsgate_check(buf, len, &r);
	if (*v == HSGATE_REFUSE &&
	    (r.why == NULL || r.reason == HSGATE_R_NONE ||
		(r.status != 400 && r.status != 414 && r.status != 431)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum hsgate_verdict whole, part;
	char *buf;

	if (size > HSGATE_HEAD_MAX + 1)
		return 0;
	/* An exact-size copy: ASan sees any read past len. */
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	check_one(buf, size, &whole);
	if (whole != HSGATE_REFUSE) {
		for (size_t n = size / 2; n > 0; n /= 2) {
			check_one(buf, n, &part);
			if (part == HSGATE_REFUSE)
				abort();
		}
	}
	free(buf);
	return 0;
}
