/*
 * fuzz_wspenv.c - libFuzzer target for the Redis envelope decoder. Any
 * bytes: no crash; what decodes re-encodes and decodes to the same fields.
 */
#include "fuzz_env.h"
#include "wspenv.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static msgpack_zone zone, zone2;
	static int inited;
	struct wspenv e, back;
	msgpack_sbuffer sb;

	if (!inited) {
		if (!msgpack_zone_init(&zone, 1024) ||
		    !msgpack_zone_init(&zone2, 1024))
			abort();
		inited = 1;
	}
	if (wspenv_decode(data, size, &zone, &e) != 0)
		return 0;
	if (!wspenv_is(data, size) || e.data.p == NULL)
		abort();
	msgpack_sbuffer_init(&sb);
	if (wspenv_encode(&sb, &e) != 0)
		abort();
	if (wspenv_decode(sb.data, sb.size, &zone2, &back) != 0)
		abort();
	fuzz_same_str(e.data, back.data);
	fuzz_same_str(e.from, back.from);
	fuzz_same_str(e.id, back.id);
	if (e.ts != back.ts || e.json != back.json)
		abort();
	msgpack_sbuffer_destroy(&sb);
	return 0;
}
