/*
 * counters.c - the worker counter list of counters.h as a table.
 */
#include <string.h>

#include "counters.h"

const struct counter_info worker_counter_info[WC_COUNT] = {
#define WC_ROW(name, kind, family, label, help) \
	[WC_##name] = {#name, COUNTER_KIND_##kind, family, label, help},
    WORKER_COUNTERS(WC_ROW)
#undef WC_ROW
};

const struct counter_info *
counter_info_find(const char *name)
{
	/* About fifty rows, looked up once per counter per stats request:
	 * a linear scan is cheaper than keeping an index. */
	for (size_t i = 0; i < WC_COUNT; i++)
		if (strcmp(worker_counter_info[i].name, name) == 0)
			return &worker_counter_info[i];
	return NULL;
}
