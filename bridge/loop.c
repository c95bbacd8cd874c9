/*
 * loop.c - poll()-based event loop with timers and before-sleep hooks.
 *
 * The bridge watches a handful of descriptors and fewer than ten timers, so
 * both live in plain lists: the pollfd array is rebuilt every iteration and
 * the next deadline is a linear scan. Watchers and timers removed while the
 * loop dispatches are only flagged and freed at the end of the iteration,
 * so callbacks may remove anything, themselves included.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "clock.h"
#include "dlist.h"
#include "loop.h"

struct loop_fd {
	struct dlist_node node;
	struct loop *loop;
	int fd;
	int events;
	bool deleted;
	loop_fd_fn *fn;
	void *arg;
	uint32_t coalesce_ms; /* loop_fd_coalesce() */
	uint64_t last_in_ms;  /* when fn last ran for POLLIN */
	uint64_t rest_until;  /* POLLIN not watched before this */
};

struct loop_timer {
	struct dlist_node node;
	uint64_t id;
	uint64_t when; /* monotonic ms */
	uint64_t period;
	bool deleted;
	loop_timer_fn *fn;
	void *arg;
};

struct loop_hook {
	struct dlist_node node;
	loop_hook_fn *fn;
	void *arg;
};

struct loop {
	struct dlist fds;     /* struct loop_fd, live and deleted */
	struct dlist timers;  /* struct loop_timer, live and deleted */
	struct dlist hooks;   /* struct loop_hook */
	struct pollfd *pfds;  /* rebuilt each iteration */
	struct loop_fd **pws; /* the watcher of each pfds[i] */
	size_t npfd_cap;
	uint64_t next_timer_id;
	uint64_t now;
	uint64_t rest_until; /* earliest end of a resting fd's rest, or 0 */
	bool stop;
};

struct loop *
loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	dlist_init(&l->fds);
	dlist_init(&l->timers);
	dlist_init(&l->hooks);
	l->next_timer_id = 1;
	l->now = clock_mono_ms();
	return l;
}

void
loop_free(struct loop *l)
{
	struct dlist_node *n, *tmp;

	if (l == NULL)
		return;
	DLIST_FOREACH_SAFE(n, tmp, &l->fds) {
		dlist_remove(n);
		free(DLIST_ENTRY(n, struct loop_fd, node));
	}
	DLIST_FOREACH_SAFE(n, tmp, &l->timers) {
		dlist_remove(n);
		free(DLIST_ENTRY(n, struct loop_timer, node));
	}
	DLIST_FOREACH_SAFE(n, tmp, &l->hooks) {
		dlist_remove(n);
		free(DLIST_ENTRY(n, struct loop_hook, node));
	}
	free(l->pfds);
	free(l->pws);
	free(l);
}

uint64_t
loop_now(const struct loop *l)
{
	return l->now;
}

struct loop_fd *
loop_fd_add(struct loop *l, int fd, int events, loop_fd_fn *fn, void *arg)
{
	struct loop_fd *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->loop = l;
	w->fd = fd;
	w->events = events;
	w->fn = fn;
	w->arg = arg;
	dlist_insert_tail(&l->fds, &w->node);
	return w;
}

void
loop_fd_set(struct loop_fd *w, int events)
{
	w->events = events;
}

int
loop_fd_events(const struct loop_fd *w)
{
	return w->events;
}

void
loop_fd_coalesce(struct loop_fd *w, uint32_t ms)
{
	w->coalesce_ms = ms;
	w->rest_until = 0;
}

/* After w's callback ran for POLLIN at now: rest if the flow is dense. */
static void
loop_fd_after_input(struct loop_fd *w, uint64_t now)
{
	int unread = 0;
	bool dense = now - w->last_in_ms < 2 * (uint64_t)w->coalesce_ms;

	w->last_in_ms = now;
	if (!dense || w->deleted)
		return;
	if (ioctl(w->fd, FIONREAD, &unread) == 0 && unread == 0)
		w->rest_until = now + w->coalesce_ms;
}

void
loop_fd_del(struct loop_fd *w)
{
	/* Freed by loop_sweep() at the end of the iteration. */
	w->deleted = true;
	w->events = 0;
}

uint64_t
loop_timer_add(struct loop *l, uint64_t delay_ms, uint64_t period_ms,
    loop_timer_fn *fn, void *arg)
{
	struct loop_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return 0;
	t->id = l->next_timer_id++;
	t->when = clock_mono_ms() + delay_ms;
	t->period = period_ms;
	t->fn = fn;
	t->arg = arg;
	dlist_insert_tail(&l->timers, &t->node);
	return t->id;
}

int
loop_timer_del(struct loop *l, uint64_t id)
{
	struct dlist_node *n;

	DLIST_FOREACH(n, &l->timers) {
		struct loop_timer *t = DLIST_ENTRY(n, struct loop_timer, node);

		if (t->id == id && !t->deleted) {
			t->deleted = true;
			return 0;
		}
	}
	return -1;
}

int
loop_hook_add(struct loop *l, loop_hook_fn *fn, void *arg)
{
	struct loop_hook *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return -1;
	h->fn = fn;
	h->arg = arg;
	dlist_insert_tail(&l->hooks, &h->node);
	return 0;
}

void
loop_hook_del(struct loop *l, loop_hook_fn *fn, void *arg)
{
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &l->hooks) {
		struct loop_hook *h = DLIST_ENTRY(n, struct loop_hook, node);

		if (h->fn == fn && h->arg == arg) {
			dlist_remove(n);
			free(h);
		}
	}
}

void
loop_stop(struct loop *l)
{
	l->stop = true;
}

static void
loop_sweep(struct loop *l)
{
	struct dlist_node *n, *tmp;

	DLIST_FOREACH_SAFE(n, tmp, &l->fds) {
		struct loop_fd *w = DLIST_ENTRY(n, struct loop_fd, node);

		if (w->deleted) {
			dlist_remove(n);
			free(w);
		}
	}
	DLIST_FOREACH_SAFE(n, tmp, &l->timers) {
		struct loop_timer *t = DLIST_ENTRY(n, struct loop_timer, node);

		if (t->deleted) {
			dlist_remove(n);
			free(t);
		}
	}
}

/* Milliseconds until the earliest live timer, or -1 if there is none. */
static int
loop_next_timeout(struct loop *l)
{
	struct dlist_node *n;
	uint64_t best = UINT64_MAX;

	DLIST_FOREACH(n, &l->timers) {
		struct loop_timer *t = DLIST_ENTRY(n, struct loop_timer, node);

		if (!t->deleted && t->when < best)
			best = t->when;
	}
	if (best == UINT64_MAX)
		return -1;
	if (best <= l->now)
		return 0;
	if (best - l->now > INT_MAX)
		return INT_MAX;
	return (int)(best - l->now);
}

static int
loop_build_pollset(struct loop *l)
{
	struct dlist_node *n;
	size_t count = 0, i = 0;

	DLIST_FOREACH(n, &l->fds) {
		count++;
	}
	if (count > l->npfd_cap) {
		size_t cap = count < 16 ? 16 : count * 2;
		struct pollfd *p = realloc(l->pfds, cap * sizeof(*p));

		if (p == NULL)
			return -1;
		l->pfds = p;
		struct loop_fd **w = realloc(l->pws, cap * sizeof(*w));
		if (w == NULL)
			return -1;
		l->pws = w;
		l->npfd_cap = cap;
	}
	l->rest_until = 0;
	DLIST_FOREACH(n, &l->fds) {
		struct loop_fd *w = DLIST_ENTRY(n, struct loop_fd, node);
		int events = w->events;

		if (w->deleted || events == 0)
			continue;
		if (w->rest_until > l->now && (events & POLLIN)) {
			/* Still polled with what is left: errors and hang-ups
			 * are reported whatever the events. */
			events &= ~POLLIN;
			if (l->rest_until == 0 || w->rest_until < l->rest_until)
				l->rest_until = w->rest_until;
		}
		l->pfds[i].fd = w->fd;
		l->pfds[i].events = (short)events;
		l->pfds[i].revents = 0;
		l->pws[i] = w;
		i++;
	}
	return (int)i;
}

static void
loop_run_timers(struct loop *l)
{
	struct dlist_node *n;
	/* Timers added by a callback wait for the next iteration. */
	uint64_t last_id = l->next_timer_id;

	DLIST_FOREACH(n, &l->timers) {
		struct loop_timer *t = DLIST_ENTRY(n, struct loop_timer, node);

		if (t->deleted || t->id >= last_id || t->when > l->now)
			continue;
		if (t->period > 0) {
			t->when += t->period;
			if (t->when <= l->now)
				t->when = l->now + t->period;
		} else {
			t->deleted = true;
		}
		t->fn(l, t->id, t->arg);
	}
}

int
loop_once(struct loop *l, int max_wait_ms)
{
	struct dlist_node *n;
	int npfd, timeout, rc;

	l->now = clock_mono_ms();
	DLIST_FOREACH(n, &l->hooks) {
		struct loop_hook *h = DLIST_ENTRY(n, struct loop_hook, node);

		h->fn(l, h->arg);
	}
	loop_sweep(l);
	l->now = clock_mono_ms(); /* the hooks took time: rests may be over */
	npfd = loop_build_pollset(l);
	if (npfd == -1)
		return -1;
	l->now = clock_mono_ms();
	timeout = loop_next_timeout(l);
	if (l->rest_until != 0) {
		/* A resting fd left out of the set: wake when its rest ends
		 * (it may have ended since the set was built: then at once). */
		uint64_t left =
		    l->rest_until > l->now ? l->rest_until - l->now : 0;

		if (timeout == -1 || (uint64_t)timeout > left)
			timeout = (int)left;
	}
	if (max_wait_ms >= 0 && (timeout == -1 || timeout > max_wait_ms))
		timeout = max_wait_ms;
	if (l->stop)
		timeout = 0;
	rc = poll(l->pfds, (nfds_t)npfd, timeout);
	if (rc == -1 && errno != EINTR)
		return -1;
	l->now = clock_mono_ms();
	for (int i = 0; rc > 0 && i < npfd; i++) {
		struct loop_fd *w = l->pws[i];

		if (l->pfds[i].revents == 0 || w->deleted)
			continue;
		w->fn(l, w->fd, l->pfds[i].revents, w->arg);
		if (w->coalesce_ms != 0 && (l->pfds[i].revents & POLLIN))
			loop_fd_after_input(w, clock_mono_ms());
	}
	l->now = clock_mono_ms();
	loop_run_timers(l);
	loop_sweep(l);
	return 0;
}

int
loop_run(struct loop *l)
{
	l->stop = false;
	while (!l->stop) {
		if (loop_once(l, -1) == -1)
			return -1;
	}
	return 0;
}
