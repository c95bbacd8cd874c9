/*
 * hmap_test.c - put/get/del, replacement, growth to 100k keys, iteration
 * with deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hmap.h"

static int vals[4];

static void
fnv1a_matches_the_reference_vectors(void **state)
{
	assert_int_equal(hmap_hash("", 0), 0x811c9dc5u);
	assert_int_equal(hmap_hash("a", 1), 0xe40c292cu);
	assert_int_equal(hmap_hash("foobar", 6), 0xbf9cf968u);
}

static void
a_new_map_is_empty_and_free_accepts_null(void **state)
{
	struct hmap *h = hmap_new();

	assert_non_null(h);
	assert_int_equal(hmap_count(h), 0);
	assert_null(hmap_get(h, "x", 1));
	assert_null(hmap_del(h, "x", 1));
	hmap_free(h);
	hmap_free(NULL);
}

static void
put_get_and_del_work_on_byte_keys(void **state)
{
	struct hmap *h = hmap_new();
	char key[64];

	assert_int_equal(hmap_put(h, "user:1", 6, &vals[0]), 0);
	assert_int_equal(hmap_put(h, "user:2", 6, &vals[1]), 0);
	/* Keys are byte strings: embedded NULs and prefixes are distinct. */
	assert_int_equal(hmap_put(h, "a\0b", 3, &vals[2]), 0);
	assert_int_equal(hmap_put(h, "a", 1, &vals[3]), 0);
	assert_int_equal(hmap_count(h), 4);
	/* The map copies the key: the caller's buffer may change. */
	strcpy(key, "user:1");
	assert_ptr_equal(hmap_get(h, key, 6), &vals[0]);
	key[5] = '9';
	assert_null(hmap_get(h, key, 6));
	assert_ptr_equal(hmap_get(h, "a\0b", 3), &vals[2]);
	assert_ptr_equal(hmap_get(h, "a", 1), &vals[3]);
	assert_null(hmap_get(h, "user:", 5));
	assert_ptr_equal(hmap_del(h, "user:1", 6), &vals[0]);
	assert_null(hmap_get(h, "user:1", 6));
	assert_null(hmap_del(h, "user:1", 6));
	assert_int_equal(hmap_count(h), 3);
	hmap_free(h);
}

static void
put_replaces_an_existing_value(void **state)
{
	struct hmap *h = hmap_new();

	assert_int_equal(hmap_put(h, "k", 1, &vals[0]), 0);
	assert_int_equal(hmap_put(h, "k", 1, &vals[1]), 0);
	assert_int_equal(hmap_count(h), 1);
	assert_ptr_equal(hmap_get(h, "k", 1), &vals[1]);
	hmap_free(h);
}

static void
an_empty_key_is_a_valid_key(void **state)
{
	struct hmap *h = hmap_new();

	assert_int_equal(hmap_put(h, "", 0, &vals[0]), 0);
	assert_ptr_equal(hmap_get(h, NULL, 0), &vals[0]);
	assert_ptr_equal(hmap_del(h, "", 0), &vals[0]);
	assert_int_equal(hmap_count(h), 0);
	hmap_free(h);
}

static void
null_values_are_refused(void **state)
{
	struct hmap *h = hmap_new();

	assert_int_equal(hmap_put(h, "k", 1, NULL), -1);
	assert_int_equal(hmap_count(h), 0);
	hmap_free(h);
}

#define MANY 100000

static void
the_map_grows_to_100k_keys_and_shrinks_back(void **state)
{
	struct hmap *h = hmap_new();
	char key[32];
	size_t i;
	int n;

	for (i = 0; i < MANY; i++) {
		n = snprintf(key, sizeof(key), "channel:%zu", i);
		assert_int_equal(
		    hmap_put(h, key, (size_t)n, (void *)(i + 1)), 0);
	}
	assert_int_equal(hmap_count(h), MANY);
	for (i = 0; i < MANY; i++) {
		n = snprintf(key, sizeof(key), "channel:%zu", i);
		assert_ptr_equal(hmap_get(h, key, (size_t)n), (void *)(i + 1));
	}
	for (i = 0; i < MANY; i += 2) {
		n = snprintf(key, sizeof(key), "channel:%zu", i);
		assert_ptr_equal(hmap_del(h, key, (size_t)n), (void *)(i + 1));
	}
	assert_int_equal(hmap_count(h), MANY / 2);
	for (i = 0; i < MANY; i++) {
		n = snprintf(key, sizeof(key), "channel:%zu", i);
		if (i % 2 == 0)
			assert_null(hmap_get(h, key, (size_t)n));
		else
			assert_ptr_equal(
			    hmap_get(h, key, (size_t)n), (void *)(i + 1));
	}
	hmap_free(h); /* frees the remaining key copies (ASan checks) */
}

static void
iteration_visits_every_entry_once(void **state)
{
	struct hmap *h = hmap_new();
	struct hmap_iter it;
	const void *k;
	size_t klen, i, seen = 0;
	unsigned char *hits = calloc(1000, 1);
	char key[16];
	void *v;
	int n;

	assert_non_null(hits);
	for (i = 0; i < 1000; i++) {
		n = snprintf(key, sizeof(key), "%zu", i);
		assert_int_equal(
		    hmap_put(h, key, (size_t)n, (void *)(i + 1)), 0);
	}
	hmap_iter_init(h, &it);
	while (hmap_iter_next(&it, &k, &klen, &v)) {
		size_t idx = (size_t)v - 1;

		assert_true(idx < 1000);
		n = snprintf(key, sizeof(key), "%zu", idx);
		assert_int_equal(klen, (size_t)n);
		assert_memory_equal(k, key, klen);
		hits[idx]++;
		seen++;
	}
	assert_int_equal(seen, 1000);
	for (i = 0; i < 1000; i++)
		assert_int_equal(hits[i], 1);
	free(hits);
	hmap_free(h);
}

static void
iter_del_removes_entries_during_iteration(void **state)
{
	struct hmap *h = hmap_new();
	struct hmap_iter it;
	size_t i, seen = 0, left = 0;
	char key[16];
	void *v;
	int n;

	for (i = 0; i < 5000; i++) {
		n = snprintf(key, sizeof(key), "%zu", i);
		assert_int_equal(
		    hmap_put(h, key, (size_t)n, (void *)(i + 1)), 0);
	}
	hmap_iter_init(h, &it);
	while (hmap_iter_next(&it, NULL, NULL, &v)) {
		seen++;
		if (((size_t)v - 1) % 3 != 0) {
			hmap_iter_del(&it);
			hmap_iter_del(&it); /* a second call is a no-op */
		}
	}
	assert_int_equal(seen, 5000);
	hmap_iter_init(h, &it);
	while (hmap_iter_next(&it, NULL, NULL, &v)) {
		assert_int_equal(((size_t)v - 1) % 3, 0);
		left++;
	}
	assert_int_equal(left, hmap_count(h));
	assert_int_equal(left, (5000 + 2) / 3);
	/* Deleting everything through the iterator empties the map. */
	hmap_iter_init(h, &it);
	while (hmap_iter_next(&it, NULL, NULL, NULL))
		hmap_iter_del(&it);
	assert_int_equal(hmap_count(h), 0);
	hmap_iter_init(h, &it);
	assert_int_equal(hmap_iter_next(&it, NULL, NULL, NULL), 0);
	hmap_free(h);
}

static int freed;

static void
count_and_free(void *v)
{
	freed++;
	free(v);
}

static void
free_with_frees_every_value_once(void **state)
{
	struct hmap *h = hmap_new();
	char key[16];

	assert_non_null(h);
	for (int i = 0; i < 100; i++) {
		int *v = malloc(sizeof(*v));

		assert_non_null(v);
		*v = i;
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(hmap_put(h, key, strlen(key), v), 0);
	}
	freed = 0;
	hmap_free_with(h, count_and_free); /* leaks show under ASan */
	assert_int_equal(freed, 100);
	hmap_free_with(NULL, count_and_free);
	assert_int_equal(freed, 100);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fnv1a_matches_the_reference_vectors),
	    cmocka_unit_test(a_new_map_is_empty_and_free_accepts_null),
	    cmocka_unit_test(put_get_and_del_work_on_byte_keys),
	    cmocka_unit_test(put_replaces_an_existing_value),
	    cmocka_unit_test(an_empty_key_is_a_valid_key),
	    cmocka_unit_test(null_values_are_refused),
	    cmocka_unit_test(the_map_grows_to_100k_keys_and_shrinks_back),
	    cmocka_unit_test(iteration_visits_every_entry_once),
	    cmocka_unit_test(iter_del_removes_entries_during_iteration),
	    cmocka_unit_test(free_with_frees_every_value_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
