/*
 * fuzz_env.h - what the envelope fuzz targets (bus, up, wspenv) share: the
 * field comparison and, for the two stream readers, the whole target.
 * Header-only so that each target stays one translation unit, as
 * tests/fuzz/CMakeLists.txt builds them.
 */
#ifndef FUZZ_ENV_H
#define FUZZ_ENV_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless a and b hold the same bytes (absent and empty differ). */
static inline void
fuzz_same_str(struct env_str a, struct env_str b)
{
	if ((a.p == NULL) != (b.p == NULL) || a.len != b.len ||
	    (a.len != 0 && memcmp(a.p, b.p, a.len) != 0))
		abort();
}

/*
 * The target for a stream reader: NEXT (bus_reader_next, up_reader_next)
 * reads struct ENV_T values; ENCODE(sb, e) writes one back (0 on success)
 * and SAME(a, b) aborts unless two agree. Arbitrary bytes must never crash
 * or loop, only earn a decoder error; every envelope that decodes must
 * re-encode (what decodes is within every limit) and decode to the same
 * fields. A macro, not a function taking pointers, because the readers take
 * distinct envelope types.
 */
#define FUZZ_ENV_READER_TARGET(ENV_T, NEXT, ENCODE, SAME)                      \
	static void fuzz_round_trip(const struct ENV_T *e)                     \
	{                                                                      \
		msgpack_sbuffer sb;                                            \
		struct env_reader r;                                           \
		struct ENV_T back;                                             \
                                                                               \
		msgpack_sbuffer_init(&sb);                                     \
		if (ENCODE(&sb, e) != 0)                                       \
			abort();                                               \
		env_reader_init(&r, sb.data, sb.size);                         \
		if (NEXT(&r, &back) != ENV_OK)                                 \
			abort();                                               \
		SAME(e, &back);                                                \
		if (NEXT(&r, &back) != ENV_END)                                \
			abort();                                               \
		env_reader_fini(&r);                                           \
		msgpack_sbuffer_destroy(&sb);                                  \
	}                                                                      \
                                                                               \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)           \
	{                                                                      \
		struct env_reader r;                                           \
		struct ENV_T e;                                                \
		size_t calls = 0;                                              \
		int rc;                                                        \
                                                                               \
		env_reader_init(&r, data, size);                               \
		while ((rc = NEXT(&r, &e)) != ENV_END) {                       \
			/* Every call but the last consumes a byte. */         \
			if (++calls > size + 1)                                \
				abort();                                       \
			if (rc == ENV_OK)                                      \
				fuzz_round_trip(&e);                           \
			else if (rc != ENV_TRUNCATED && rc != ENV_MALFORMED && \
				 rc != ENV_VERSION_UNKNOWN &&                  \
				 rc != ENV_KIND_UNKNOWN && rc != ENV_NOMEM)    \
				abort();                                       \
		}                                                              \
		env_reader_fini(&r);                                           \
		return 0;                                                      \
	}

#endif
