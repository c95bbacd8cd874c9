/*
 * worker_fixture.h - unit tests' stand-in for the worker registry: the
 * struct worker of (slot, gen), on which interest.c and presence.c keep
 * their per-worker tables. Include after <cmocka.h>.
 */
#ifndef WSP_WORKER_FIXTURE_H
#define WSP_WORKER_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "workers.h"

static struct worker *
W(uint32_t slot, uint32_t gen)
{
	static struct worker ws[32];
	static size_t n;

	for (size_t i = 0; i < n; i++) {
		if (ws[i].slot == slot && ws[i].gen == gen)
			return &ws[i];
	}
	assert_true(n < 32);
	ws[n].slot = slot;
	ws[n].gen = gen;
	return &ws[n++];
}

#endif
