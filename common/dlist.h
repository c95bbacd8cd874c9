/*
 * dlist.h - intrusive circular doubly linked list (nng nni_list shape).
 *
 * Embed a struct dlist_node in the element; the list head is a
 * struct dlist. Removal is O(1) and safe to call on an unlinked node
 * (dlist_node_init() or a removed node), so owners need not track
 * membership separately.
 */
#ifndef WSP_DLIST_H
#define WSP_DLIST_H

#include <stddef.h>

struct dlist_node {
	struct dlist_node *next, *prev;
};

struct dlist {
	struct dlist_node head;
};

#define DLIST_ENTRY(node, type, member) \
	((type *)(void *)((char *)(node)-offsetof(type, member)))

static inline void
dlist_init(struct dlist *l)
{
	l->head.next = l->head.prev = &l->head;
}

static inline void
dlist_node_init(struct dlist_node *n)
{
	n->next = n->prev = n;
}

static inline int
dlist_empty(const struct dlist *l)
{
	return l->head.next == &l->head;
}

static inline int
dlist_node_linked(const struct dlist_node *n)
{
	return n->next != n;
}

static inline void
dlist_insert_tail(struct dlist *l, struct dlist_node *n)
{
	n->prev = l->head.prev;
	n->next = &l->head;
	l->head.prev->next = n;
	l->head.prev = n;
}

static inline void
dlist_insert_head(struct dlist *l, struct dlist_node *n)
{
	n->next = l->head.next;
	n->prev = &l->head;
	l->head.next->prev = n;
	l->head.next = n;
}

static inline void
dlist_remove(struct dlist_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

static inline struct dlist_node *
dlist_first(const struct dlist *l)
{
	return dlist_empty(l) ? NULL : l->head.next;
}

/* Iterate nodes; `n` is a struct dlist_node *. Do not remove `n` here. */
#define DLIST_FOREACH(n, l) \
	for ((n) = (l)->head.next; (n) != &(l)->head; (n) = (n)->next)

/* Iterate nodes while `n` may be removed; `tmp` holds the successor. */
#define DLIST_FOREACH_SAFE(n, tmp, l)                                    \
	for ((n) = (l)->head.next, (tmp) = (n)->next; (n) != &(l)->head; \
	     (n) = (tmp), (tmp) = (n)->next)

#endif
