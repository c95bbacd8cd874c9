/*
 * loop.h - the bridge's event loop: poll() over a few file descriptors,
 * monotonic millisecond timers and "before sleep" hooks (Redis ae.h shape).
 *
 * The bridge owns its loop because nng cannot watch foreign descriptors:
 * the hiredis sockets, the nng RECVFDs and a signalfd are all watched here.
 * Hooks run once per iteration just before poll() sleeps; the hub uses one
 * to send the bus batch, so batching never adds latency. Single-threaded:
 * every function must be called from the loop's thread.
 */
#ifndef WSP_LOOP_H
#define WSP_LOOP_H

#include <poll.h>
#include <stdint.h>

struct loop;
struct loop_fd;

/* revents are poll() bits (POLLIN, POLLOUT, POLLERR, POLLHUP, ...). */
typedef void loop_fd_fn(struct loop *l, int fd, int revents, void *arg);
typedef void loop_timer_fn(struct loop *l, uint64_t id, void *arg);
typedef void loop_hook_fn(struct loop *l, void *arg);

/* Returns a new loop, or NULL on allocation failure. Free with loop_free(). */
struct loop *loop_new(void);

/* Frees the loop and its watchers, timers and hooks (not their fds). */
void loop_free(struct loop *l);

/*
 * Watches fd for events (POLLIN and/or POLLOUT; 0 keeps it registered but
 * idle). fn is called with the poll() revents. The loop never closes fd.
 * Returns the watcher (owned by the loop until loop_fd_del()), or NULL on
 * allocation failure.
 */
struct loop_fd *loop_fd_add(
    struct loop *l, int fd, int events, loop_fd_fn *fn, void *arg);

/* Replaces the watched events. */
void loop_fd_set(struct loop_fd *w, int events);
int loop_fd_events(const struct loop_fd *w);

/*
 * Input coalescing for a stream socket that carries a flow of small
 * messages (the broker's subscriber connection): once w's callback has run
 * for POLLIN twice within 2 * ms and left nothing unread (FIONREAD), w
 * rests for ms: POLLIN is not watched, so what arrives meanwhile waits in
 * the kernel and the next callback reads it all at once. Under sustained
 * traffic the callback therefore runs about once per ms instead of once
 * per message (each wakeup costs a context switch, the bridge's largest
 * per-message cost), and everything it reads leaves in one bus batch per
 * worker. The first message after a quiet spell is read at once; none
 * waits longer than ms; a backlog is drained without resting. 0 (the
 * default) turns it off.
 */
void loop_fd_coalesce(struct loop_fd *w, uint32_t ms);

/*
 * Stops watching and releases w. Safe from any callback, including w's own:
 * events already polled for w are not delivered after this.
 */
void loop_fd_del(struct loop_fd *w);

/*
 * Calls fn after delay_ms, then every period_ms if period_ms > 0 (a one-shot
 * timer is removed after it fires). Returns the timer id (never 0), or 0 on
 * allocation failure.
 */
uint64_t loop_timer_add(struct loop *l, uint64_t delay_ms, uint64_t period_ms,
    loop_timer_fn *fn, void *arg);

/* Cancels a timer; returns 0, or -1 if the id is unknown (already fired). */
int loop_timer_del(struct loop *l, uint64_t id);

/* Runs fn before every poll() sleep. Returns 0, or -1 on allocation
 * failure. */
int loop_hook_add(struct loop *l, loop_hook_fn *fn, void *arg);

/* Removes the hook(s) registered with fn and arg. Not from a hook. */
void loop_hook_del(struct loop *l, loop_hook_fn *fn, void *arg);

/*
 * One iteration: hooks, poll() for at most max_wait_ms (-1: until the next
 * timer or event), fd callbacks, due timers. Returns 0, or -1 if poll()
 * failed with something other than EINTR.
 */
int loop_once(struct loop *l, int max_wait_ms);

/* Iterates until loop_stop(). Returns 0, or -1 on a poll() failure. */
int loop_run(struct loop *l);

/* Makes loop_run() return after the current iteration. */
void loop_stop(struct loop *l);

/* The monotonic clock in ms, cached once per iteration. */
uint64_t loop_now(const struct loop *l);

#endif
