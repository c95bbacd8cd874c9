/*
 * hmap.h - a byte-string keyed hash map to void * values.
 *
 * Used for address -> local connections in the workers and channel ->
 * refcounts in the bridge: every targeted lookup on the hot path is one
 * hash and, on average, one key compare. Keys are copied into the map;
 * values are borrowed (the map never frees them). Open hashing with
 * power-of-two buckets that grow at load factor 1. Not thread-safe.
 */
#ifndef WSP_HMAP_H
#define WSP_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap;

/* Returns a new empty map, or NULL on allocation failure. */
struct hmap *hmap_new(void);

/* Frees the map and its key copies; values are not touched. NULL is ok. */
void hmap_free(struct hmap *h);

/* Frees every value with free_value, then the map: for maps that own
 * their values. NULL is ok. */
void hmap_free_with(struct hmap *h, void (*free_value)(void *val));

size_t hmap_count(const struct hmap *h);

/* Returns the value stored under key, or NULL. */
void *hmap_get(const struct hmap *h, const void *key, size_t keylen);

/*
 * Stores val under key, replacing an existing value. Returns 0, or -1 on
 * allocation failure (the map is unchanged). val must not be NULL.
 */
int hmap_put(struct hmap *h, const void *key, size_t keylen, void *val);

/* Removes key; returns the value it had, or NULL if absent. */
void *hmap_del(struct hmap *h, const void *key, size_t keylen);

/*
 * Iteration: `struct hmap_iter it; hmap_iter_init(h, &it); while
 * (hmap_iter_next(&it, &k, &klen, &v)) ...`. The map must not be modified
 * during an iteration, except by hmap_iter_del() of the current entry.
 */
struct hmap_iter {
	struct hmap *h;
	size_t bucket;
	void *cur;  /* entry returned last */
	void *next; /* entry to return next */
};
void hmap_iter_init(struct hmap *h, struct hmap_iter *it);
int hmap_iter_next(
    struct hmap_iter *it, const void **key, size_t *keylen, void **val);
/* Removes the entry hmap_iter_next() returned last. */
void hmap_iter_del(struct hmap_iter *it);

/* The hash hmap uses (FNV-1a, 32 bit); exported for tests. */
uint32_t hmap_hash(const void *key, size_t len);

#endif
