/*
 * hmap.c - byte-string keyed hash map (FNV-1a, chained buckets).
 *
 * Each entry is one allocation holding the entry and its key copy. The
 * bucket array is a power of two and doubles when count exceeds it (load
 * factor 1). Growth failure is not an error: the map keeps working with
 * longer chains.
 */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

#define HMAP_MIN_BUCKETS 16

struct hmap_entry {
	struct hmap_entry *next;
	void *val;
	uint32_t hash;
	size_t keylen;
	unsigned char key[]; /* keylen bytes, owned by the entry */
};

struct hmap {
	struct hmap_entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
};

uint32_t
hmap_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

struct hmap *
hmap_new(void)
{
	struct hmap *h;

	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	h->buckets = calloc(HMAP_MIN_BUCKETS, sizeof(*h->buckets));
	if (h->buckets == NULL) {
		free(h);
		return NULL;
	}
	h->nbuckets = HMAP_MIN_BUCKETS;
	return h;
}

void
hmap_free(struct hmap *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->nbuckets; i++) {
		struct hmap_entry *e = h->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(h->buckets);
	free(h);
}

void
hmap_free_with(struct hmap *h, void (*free_value)(void *val))
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->nbuckets; i++)
		for (struct hmap_entry *e = h->buckets[i]; e != NULL;
		     e = e->next)
			free_value(e->val);
	hmap_free(h);
}

size_t
hmap_count(const struct hmap *h)
{
	return h->count;
}

static struct hmap_entry **
hmap_find(const struct hmap *h, const void *key, size_t keylen, uint32_t hash)
{
	struct hmap_entry **pp = &h->buckets[hash & (h->nbuckets - 1)];

	for (; *pp != NULL; pp = &(*pp)->next) {
		struct hmap_entry *e = *pp;
		if (e->hash == hash && e->keylen == keylen &&
		    (keylen == 0 || memcmp(e->key, key, keylen) == 0))
			return pp;
	}
	return pp;
}

void *
hmap_get(const struct hmap *h, const void *key, size_t keylen)
{
	struct hmap_entry **pp;

	pp = hmap_find(h, key, keylen, hmap_hash(key, keylen));
	return *pp != NULL ? (*pp)->val : NULL;
}

/* Doubles the bucket array; on allocation failure leaves it as it is. */
static void
hmap_grow(struct hmap *h)
{
	struct hmap_entry **nb;
	size_t n, i;

	if (h->nbuckets > ((size_t)-1 / 2) / sizeof(*nb))
		return;
	n = h->nbuckets * 2;
	nb = calloc(n, sizeof(*nb));
	if (nb == NULL)
		return;
	for (i = 0; i < h->nbuckets; i++) {
		struct hmap_entry *e = h->buckets[i], *next;
		for (; e != NULL; e = next) {
			size_t b = e->hash & (n - 1);
			next = e->next;
			e->next = nb[b];
			nb[b] = e;
		}
	}
	free(h->buckets);
	h->buckets = nb;
	h->nbuckets = n;
}

int
hmap_put(struct hmap *h, const void *key, size_t keylen, void *val)
{
	uint32_t hash = hmap_hash(key, keylen);
	struct hmap_entry **pp, *e;

	if (val == NULL)
		return -1;
	pp = hmap_find(h, key, keylen, hash);
	if (*pp != NULL) {
		(*pp)->val = val;
		return 0;
	}
	if (keylen > (size_t)-1 - sizeof(*e))
		return -1;
	e = malloc(sizeof(*e) + keylen);
	if (e == NULL)
		return -1;
	e->next = NULL;
	e->val = val;
	e->hash = hash;
	e->keylen = keylen;
	if (keylen > 0)
		memcpy(e->key, key, keylen);
	*pp = e; /* append at the chain's tail */
	h->count++;
	if (h->count > h->nbuckets)
		hmap_grow(h);
	return 0;
}

void *
hmap_del(struct hmap *h, const void *key, size_t keylen)
{
	struct hmap_entry **pp, *e;
	void *val;

	pp = hmap_find(h, key, keylen, hmap_hash(key, keylen));
	e = *pp;
	if (e == NULL)
		return NULL;
	*pp = e->next;
	val = e->val;
	free(e);
	h->count--;
	return val;
}

/*
 * The iterator keeps the entry it returned last (cur) and its successor
 * (next, looked up before cur is handed out), so deleting cur never touches
 * freed memory and never skips an entry.
 */
void
hmap_iter_init(struct hmap *h, struct hmap_iter *it)
{
	it->h = h;
	it->bucket = 0;
	it->cur = NULL;
	it->next = NULL;
	while (it->bucket < h->nbuckets) {
		if (h->buckets[it->bucket] != NULL) {
			it->next = h->buckets[it->bucket];
			break;
		}
		it->bucket++;
	}
}

int
hmap_iter_next(
    struct hmap_iter *it, const void **key, size_t *keylen, void **val)
{
	struct hmap_entry *e = it->next;
	struct hmap *h = it->h;

	it->cur = e;
	if (e == NULL)
		return 0;
	if (e->next != NULL) {
		it->next = e->next;
	} else {
		it->next = NULL;
		while (++it->bucket < h->nbuckets) {
			if (h->buckets[it->bucket] != NULL) {
				it->next = h->buckets[it->bucket];
				break;
			}
		}
	}
	if (key != NULL)
		*key = e->key;
	if (keylen != NULL)
		*keylen = e->keylen;
	if (val != NULL)
		*val = e->val;
	return 1;
}

void
hmap_iter_del(struct hmap_iter *it)
{
	struct hmap_entry *e = it->cur, **pp;
	struct hmap *h = it->h;

	if (e == NULL)
		return;
	pp = &h->buckets[e->hash & (h->nbuckets - 1)];
	while (*pp != NULL && *pp != e)
		pp = &(*pp)->next;
	if (*pp == NULL)
		return;
	*pp = e->next;
	free(e);
	h->count--;
	it->cur = NULL;
}
