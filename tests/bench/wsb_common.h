/*
 * Shared by the benchmark programs: the clock, the payload's phase/sequence
 * encoding and the latency histogram's buckets (bench.py decodes the same
 * buckets when it merges the clients' reports).
 */
#ifndef WSB_COMMON_H
#define WSB_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* "s" in a payload is phase * WSB_PHASE_MUL + sequence within the phase. */
#define WSB_PHASE_MUL 1000000000ull

/*
 * Latency histogram in microseconds: values below 32 exactly, then 16
 * buckets per power of two (6 % resolution) up to 2^40 us.
 */
#define WSB_HIST_BUCKETS (32 + 36 * 16)

/* Microseconds on CLOCK_MONOTONIC: one clock for every process here. */
static inline int64_t
wsb_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int
wsb_hist_bucket(uint64_t v)
{
	int e;

	if (v < 32)
		return (int)v;
	e = 63 - __builtin_clzll(v);
	if (e > 40)
		return WSB_HIST_BUCKETS - 1;
	int b = 32 + (e - 5) * 16 + (int)((v >> (e - 4)) & 15);
	return b < WSB_HIST_BUCKETS ? b : WSB_HIST_BUCKETS - 1;
}

/* The middle of bucket b in microseconds (bench.py's bucket_mid). */
static inline double
wsb_hist_mid(int b)
{
	if (b < 32)
		return b + 0.5;
	int e = 5 + (b - 32) / 16, m = (b - 32) % 16;
	double lo = (double)((uint64_t)(16 + m) << (e - 4));
	return lo + (double)((uint64_t)1 << (e - 4)) / 2;
}

/* The q-quantile (0..1) of hist in microseconds, -1 when it is empty. */
static inline double
wsb_hist_quantile(const uint64_t *hist, double q)
{
	uint64_t total = 0, acc = 0;

	for (int b = 0; b < WSB_HIST_BUCKETS; b++)
		total += hist[b];
	if (total == 0)
		return -1;
	for (int b = 0; b < WSB_HIST_BUCKETS; b++) {
		acc += hist[b];
		if ((double)acc >= q * (double)total)
			return wsb_hist_mid(b);
	}
	return wsb_hist_mid(WSB_HIST_BUCKETS - 1);
}

/* Parses a decimal option value in [lo, hi] or exits with a message. */
static inline long long
wsb_parse_num(const char *s, long long lo, long long hi, const char *what)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "bad %s '%s' (expected %lld..%lld)\n", what, s,
		    lo, hi);
		exit(2);
	}
	return v;
}

#endif
