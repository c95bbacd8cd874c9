/*
 * master.c - prefork supervision (see master.h), in the shape of nginx's
 * ngx_process_cycle.c: signals only set flags, and one loop (ppoll with
 * the signals unblocked only while waiting) reaps children, reads their
 * ready/heartbeat pipes, runs timers and drives start, respawn, rolling
 * reload and shutdown.
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "clock.h"
#include "log.h"
#include "mfig.h"
#include "worker.h"

#define MASTER_BACKLOG 4096
#define MASTER_MAX_SLOTS 256
/* During a rolling reload old and new workers coexist. */
#define MASTER_MAX_PROCS (2 * MASTER_MAX_SLOTS + 8)
#define MASTER_POLL_MS 250
#define RESPAWN_MIN_MS 100
#define RESPAWN_MAX_MS 10000
/* A worker that lived this long resets its slot's backoff. */
#define RESPAWN_HEALTHY_MS 30000
/* More than CRASH_LOOP_DEATHS deaths of a slot within this: a crash loop. */
#define CRASH_LOOP_WINDOW_MS 60000
#define CRASH_LOOP_DEATHS 5
/* A worker silent (no heartbeat byte) this long is hung: SIGKILL. */
#define HUNG_MS 30000
/*
 * systemd's watchdog is petted only while every worker the master runs
 * has written to its pipe within this (they write every second), and at
 * least one is ready: a hung master loop, a hung worker or no worker at
 * all stops WATCHDOG=1, and systemd restarts the service WatchdogSec
 * after the last one. Shorter than HUNG_MS on purpose: under a watchdog
 * a hung worker is systemd's to act on.
 */
#define WATCHDOG_SILENT_MS 5000
/* While the watchdog is held back, why is said this often. */
#define WATCHDOG_LOG_MS 5000
/* Between stopping two old workers of a reload: the clients the first one
 * drained have time to reconnect (to the new workers) before the next
 * batch is closed, so a reload never drops everyone at once. */
#define RELOAD_STAGGER_MS 1000

/* New workers of a reload get this long to report ready. */
#define RELOAD_READY_MS 30000
/* Beyond drain_timeout_s, a stopping worker gets this much more. */
#define STOP_GRACE_MS 5000

enum proc_state {
	PROC_STARTING, /* forked, not ready yet */
	PROC_READY,    /* reported ready */
	PROC_STOPPING, /* sent SIGTERM; not respawned */
};

struct proc {
	pid_t pid; /* 0: free entry */
	uint32_t slot, gen;
	int fd; /* read end of its pipe, -1 once closed */
	enum proc_state state;
	bool old;            /* of the configuration before a reload */
	bool accept_stopped; /* SIGUSR1 sent: it no longer accepts */
	uint64_t started_ms, last_hb_ms, stop_ms;
	uint64_t heard_ms; /* last byte read (last_hb_ms is reset on kill) */
};

struct slot {
	uint32_t backoff_ms;
	uint64_t respawn_at;                    /* 0: nothing scheduled */
	uint64_t deaths[CRASH_LOOP_DEATHS + 1]; /* ring of death times */
	uint32_t ndeaths;
	uint64_t loop_logged_ms;
};

enum master_phase {
	PHASE_START,  /* initial workers starting: READY=1 when all are */
	PHASE_RUN,    /* steady state */
	PHASE_RELOAD, /* new workers starting, then old ones stopped */
	PHASE_STOP,   /* draining everything, then exit */
};

struct master {
	struct conf *conf;
	struct jwtauth *jwt; /* auth.mode = jwt: built from conf; else NULL */
	struct mfig *fig;    /* shared with the workers; NULL if unmapped */
	const char *conf_path;
	int listen_fd;
	uint32_t nslots;
	struct slot slots[MASTER_MAX_SLOTS + 1]; /* 1..nslots */
	struct proc procs[MASTER_MAX_PROCS];
	uint32_t next_gen;
	enum master_phase phase;
	uint64_t phase_deadline;
	bool reload_wanted;
	uint64_t reload_next_stop_ms; /* stop no old worker before this */
	uint64_t watchdog_usec, watchdog_next;
	struct log_limit watchdog_log;
};

static volatile sig_atomic_t sig_chld, sig_term, sig_hup;

static void
master_on_signal(int sig)
{
	switch (sig) {
	case SIGCHLD:
		sig_chld = 1;
		break;
	case SIGHUP:
		sig_hup = 1;
		break;
	default:
		sig_term = 1;
		break;
	}
}

int
master_listen(const struct conf *conf, char *err, size_t errlen)
{
	struct addrinfo hints, *res, *ai;
	char port[8];
	const char *host = conf->listen.host;
	int fd = -1, one = 1, rv, saved = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%u", conf->listen.port);
	if (host[0] == '\0' || strcmp(host, "*") == 0)
		host = NULL;
	rv = getaddrinfo(host, port, &hints, &res);
	if (rv != 0) {
		snprintf(err, errlen, "gateway.listen %s:%u: %s",
		    conf->listen.host, conf->listen.port, gai_strerror(rv));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		/* Workers inherit it through fork(), so CLOEXEC is harmless
		 * (nothing is exec'ed) and keeps it out of other programs. */
		fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1) {
			saved = errno;
			continue;
		}
		if (setsockopt(
			fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, MASTER_BACKLOG) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		snprintf(err, errlen, "gateway.listen %s:%u: %s",
		    conf->listen.host, conf->listen.port, strerror(saved));
	return fd;
}

static void
master_notify(const char *state)
{
	/* 0: keep NOTIFY_SOCKET for later WATCHDOG=1 (gateway/NOTES.md). */
	sd_notify(0, state);
}

static uint32_t
master_live(const struct master *m, bool old)
{
	uint32_t i, n = 0;

	for (i = 0; i < MASTER_MAX_PROCS; i++)
		if (m->procs[i].pid != 0 && m->procs[i].old == old)
			n++;
	return n;
}

static struct proc *
master_find(struct master *m, pid_t pid)
{
	uint32_t i;

	for (i = 0; i < MASTER_MAX_PROCS; i++)
		if (m->procs[i].pid == pid)
			return &m->procs[i];
	return NULL;
}

static void
master_spawn(struct master *m, uint32_t slot)
{
	struct proc *p = master_find(m, 0);
	int pfd[2];
	uint32_t i, gen;
	pid_t pid;

	m->slots[slot].respawn_at = 0;
	if (p == NULL) {
		log_errx("no process slot left for worker w%" PRIu32, slot);
		return;
	}
	if (pipe2(pfd, O_NONBLOCK | O_CLOEXEC) == -1) {
		log_err("pipe2");
		m->slots[slot].respawn_at = clock_mono_ms() + RESPAWN_MAX_MS;
		return;
	}
	gen = ++m->next_gen;
	pid = fork();
	if (pid == -1) {
		log_err("fork");
		close(pfd[0]);
		close(pfd[1]);
		m->slots[slot].respawn_at = clock_mono_ms() + RESPAWN_MAX_MS;
		return;
	}
	if (pid == 0) {
		struct sigaction sa;
		int rc;

		close(pfd[0]);
		for (i = 0; i < MASTER_MAX_PROCS; i++)
			if (m->procs[i].pid != 0 && m->procs[i].fd != -1)
				close(m->procs[i].fd);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGCHLD, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		rc = worker_main(
		    m->conf, m->jwt, m->fig, slot, gen, m->listen_fd, pfd[1]);
		exit(rc);
	}
	close(pfd[1]);
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->slot = slot;
	p->gen = gen;
	p->fd = pfd[0];
	p->state = PROC_STARTING;
	p->started_ms = p->last_hb_ms = p->heard_ms = clock_mono_ms();
	log_info("worker w%" PRIu32 " started pid=%d gen=%" PRIu32, slot,
	    (int)pid, gen);
}

static void
master_stop_proc(struct proc *p)
{
	if (p->state == PROC_STOPPING)
		return;
	p->state = PROC_STOPPING;
	p->stop_ms = clock_mono_ms();
	kill(p->pid, SIGTERM);
}

/* A child is gone: account for it and maybe schedule its respawn. */
static void
master_reaped(struct master *m, struct proc *p, int status)
{
	uint64_t now = clock_mono_ms();
	struct slot *s;
	bool expected = p->state == PROC_STOPPING;
	uint32_t i, recent = 0;

	if (WIFSIGNALED(status))
		log_errx("worker w%" PRIu32 " pid=%d gen=%" PRIu32
			 " killed by signal %d%s",
		    p->slot, (int)p->pid, p->gen, WTERMSIG(status),
		    WCOREDUMP(status) ? " (core dumped)" : "");
	else if (WEXITSTATUS(status) != 0 || !expected)
		log_warnx("worker w%" PRIu32 " pid=%d gen=%" PRIu32
			  " exited with status %d%s",
		    p->slot, (int)p->pid, p->gen, WEXITSTATUS(status),
		    expected ? "" : " unexpectedly");
	else
		log_info("worker w%" PRIu32 " pid=%d gen=%" PRIu32 " stopped",
		    p->slot, (int)p->pid, p->gen);
	if (p->fd != -1)
		close(p->fd);
	p->fd = -1;
	p->pid = 0;

	if (expected || p->old || m->phase == PHASE_STOP || p->slot > m->nslots)
		return;
	s = &m->slots[p->slot];
	if (now - p->started_ms >= RESPAWN_HEALTHY_MS || s->backoff_ms == 0)
		s->backoff_ms = RESPAWN_MIN_MS;
	else if (s->backoff_ms < RESPAWN_MAX_MS)
		s->backoff_ms = s->backoff_ms * 2 > RESPAWN_MAX_MS
				    ? RESPAWN_MAX_MS
				    : s->backoff_ms * 2;
	s->respawn_at = now + s->backoff_ms;
	mfig_add(m->fig, MFIG_RESTARTS);
	s->deaths[s->ndeaths++ % (CRASH_LOOP_DEATHS + 1)] = now;
	for (i = 0; i < CRASH_LOOP_DEATHS + 1 && i < s->ndeaths; i++)
		if (now - s->deaths[i] <= CRASH_LOOP_WINDOW_MS)
			recent++;
	if (recent > CRASH_LOOP_DEATHS &&
	    now - s->loop_logged_ms >= CRASH_LOOP_WINDOW_MS) {
		s->loop_logged_ms = now;
		mfig_add(m->fig, MFIG_CRASH_LOOPS);
		log_errx("worker w%" PRIu32 " is crash-looping: %" PRIu32
			 " deaths in %d s; respawning every %" PRIu32 " ms",
		    p->slot, recent, CRASH_LOOP_WINDOW_MS / 1000,
		    s->backoff_ms);
	}
	log_info("worker w%" PRIu32 " respawn in %" PRIu32 " ms", p->slot,
	    s->backoff_ms);
}

static void
master_reap(struct master *m)
{
	struct proc *p;
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		p = master_find(m, pid);
		if (p != NULL)
			master_reaped(m, p, status);
	}
}

static void
master_read(struct master *m, struct proc *p)
{
	char buf[256];
	ssize_t n, i;

	for (;;) {
		n = read(p->fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return; /* EAGAIN */
		if (n == 0) {
			close(p->fd); /* the worker is exiting; reap follows */
			p->fd = -1;
			return;
		}
		p->last_hb_ms = p->heard_ms = clock_mono_ms();
		for (i = 0; i < n; i++)
			if (buf[i] == 'R' && p->state == PROC_STARTING) {
				p->state = PROC_READY;
				log_info("worker w%" PRIu32 " pid=%d ready",
				    p->slot, (int)p->pid);
			}
	}
}

static bool
master_all_ready(const struct master *m)
{
	uint32_t i, n = 0;

	for (i = 0; i < MASTER_MAX_PROCS; i++) {
		const struct proc *p = &m->procs[i];

		if (p->pid == 0 || p->old)
			continue;
		if (p->state != PROC_READY)
			return false;
		n++;
	}
	return n >= m->nslots;
}

static void
master_status(const struct master *m)
{
	char buf[384];

	snprintf(buf, sizeof(buf),
	    "READY=1\nSTATUS=%" PRIu32 " workers on %s:%u", m->nslots,
	    m->conf->listen.host, m->conf->listen.port);
	master_notify(buf);
}

static void
master_start_reload(struct master *m)
{
	struct conf *nc = malloc(sizeof(*nc));
	struct jwtauth *nj = NULL;
	char err[1024];
	uint32_t i, n;

	if (nc == NULL) {
		log_errx("reload: out of memory");
		return;
	}
	if (conf_load(nc, m->conf_path, err, sizeof(err)) == -1) {
		log_errx("reload: %s: keeping the running configuration", err);
		free(nc);
		return;
	}
	/* Key files are read again: a rotated key takes effect. */
	if (nc->auth_mode == CONF_AUTH_JWT &&
	    (nj = jwtauth_new(nc, err, sizeof(err))) == NULL) {
		log_errx("reload: %s: keeping the running configuration", err);
		free(nc);
		return;
	}
	if (strcmp(nc->listen.host, m->conf->listen.host) != 0 ||
	    nc->listen.port != m->conf->listen.port)
		log_warnx("reload: gateway.listen changed: needs a restart; "
			  "keeping %s:%u",
		    m->conf->listen.host, m->conf->listen.port);
	/* The listening socket stays; everything else is the new file's. */
	nc->listen = m->conf->listen;
	n = conf_workers(nc);
	if (n > MASTER_MAX_SLOTS)
		n = MASTER_MAX_SLOTS;
	master_notify("RELOADING=1");
	mfig_add(m->fig, MFIG_RELOADS);
	log_notice("reload: starting %" PRIu32 " new workers", n);
	log_set_level(nc->log_level);
	free(m->conf);
	m->conf = nc;
	/* Running workers have their own copy (fork). */
	jwtauth_free(m->jwt);
	m->jwt = nj;
	for (i = 0; i < MASTER_MAX_PROCS; i++)
		if (m->procs[i].pid != 0)
			m->procs[i].old = true;
	memset(m->slots, 0, sizeof(m->slots));
	m->nslots = n;
	for (i = 1; i <= n; i++)
		master_spawn(m, i);
	m->phase = PHASE_RELOAD;
	m->phase_deadline = clock_mono_ms() + RELOAD_READY_MS;
}

/* Reload, second half: once the new workers are ready (or their time is
 * up), stop the old ones one by one. */
static void
master_reload_step(struct master *m, uint64_t now)
{
	uint32_t i;

	if (!master_all_ready(m) && now < m->phase_deadline)
		return;
	/* The new workers take every new connection from now on, so that the
	 * clients of the old worker drained next reconnect to a new one. */
	for (i = 0; i < MASTER_MAX_PROCS; i++) {
		struct proc *p = &m->procs[i];

		if (p->pid != 0 && p->old && !p->accept_stopped) {
			kill(p->pid, SIGUSR1);
			p->accept_stopped = true;
		}
	}
	for (i = 0; i < MASTER_MAX_PROCS; i++) {
		struct proc *p = &m->procs[i];

		if (p->pid != 0 && p->old && p->state == PROC_STOPPING)
			return; /* wait for it */
	}
	if (now < m->reload_next_stop_ms)
		return;
	for (i = 0; i < MASTER_MAX_PROCS; i++) {
		struct proc *p = &m->procs[i];

		if (p->pid != 0 && p->old) {
			log_info("reload: stopping old worker w%" PRIu32
				 " pid=%d gen=%" PRIu32,
			    p->slot, (int)p->pid, p->gen);
			master_stop_proc(p);
			m->reload_next_stop_ms = now + RELOAD_STAGGER_MS;
			return;
		}
	}
	log_notice("reload: done, %" PRIu32 " workers", m->nslots);
	m->phase = PHASE_RUN;
	master_status(m);
}

/*
 * The workers are healthy for systemd's watchdog: none the master runs
 * (starting, ready, or old ones of a reload; not those it is stopping)
 * has been silent on its pipe for WATCHDOG_SILENT_MS, and one at least is
 * ready. Otherwise returns false with the reason in why.
 */
static bool
master_healthy(const struct master *m, uint64_t now, char *why, size_t len)
{
	uint32_t i, ready = 0;

	for (i = 0; i < MASTER_MAX_PROCS; i++) {
		const struct proc *p = &m->procs[i];

		if (p->pid == 0 || p->state == PROC_STOPPING)
			continue;
		if (now > p->heard_ms &&
		    now - p->heard_ms >= WATCHDOG_SILENT_MS) {
			snprintf(why, len,
			    "worker w%" PRIu32 " pid=%d silent for %" PRIu64
			    " ms",
			    p->slot, (int)p->pid, now - p->heard_ms);
			return false;
		}
		if (p->state == PROC_READY)
			ready++;
	}
	if (ready == 0)
		snprintf(why, len, "no worker ready");
	return ready > 0;
}

/* WATCHDOG=1 every half period while the workers are healthy. */
static void
master_watchdog(struct master *m, uint64_t now)
{
	char why[128];
	uint64_t held, interval;

	if (m->watchdog_usec == 0 || m->phase == PHASE_STOP ||
	    now < m->watchdog_next)
		return;
	if (!master_healthy(m, now, why, sizeof(why))) {
		if (m->phase != PHASE_START && log_limit_pass(&m->watchdog_log,
						   now, WATCHDOG_LOG_MS, &held))
			log_errx("watchdog: not sending WATCHDOG=1: %s "
				 "(systemd restarts the service after "
				 "WatchdogSec)",
			    why);
		return;
	}
	master_notify("WATCHDOG=1");
	/* Half a period, less the loop's poll interval, so that no gap
	 * between two pets exceeds half a period. */
	interval = m->watchdog_usec / 2000;
	interval = interval > 2 * MASTER_POLL_MS ? interval - MASTER_POLL_MS
						 : interval / 2;
	m->watchdog_next = now + interval;
}

static void
master_timers(struct master *m, uint64_t now)
{
	uint64_t stop_ms =
	    (uint64_t)m->conf->drain_timeout_s * 1000 + STOP_GRACE_MS;
	uint32_t i;

	for (i = 0; i < MASTER_MAX_PROCS; i++) {
		struct proc *p = &m->procs[i];

		if (p->pid == 0)
			continue;
		/* Times set after `now` was read (a spawn in this turn) are
		 * not in the past: compare without underflow. */
		if (p->state == PROC_STOPPING) {
			if (now > p->stop_ms && now - p->stop_ms >= stop_ms) {
				log_warnx("worker w%" PRIu32 " pid=%d did not "
					  "stop in time: SIGKILL",
				    p->slot, (int)p->pid);
				kill(p->pid, SIGKILL);
				p->stop_ms = now; /* once per period */
			}
		} else if (now > p->last_hb_ms &&
			   now - p->last_hb_ms >= HUNG_MS) {
			log_errx("worker w%" PRIu32 " pid=%d silent for %d s: "
				 "SIGKILL",
			    p->slot, (int)p->pid, HUNG_MS / 1000);
			kill(p->pid, SIGKILL);
			p->last_hb_ms = now;
		}
	}
	if (m->phase != PHASE_STOP)
		for (i = 1; i <= m->nslots; i++)
			if (m->slots[i].respawn_at != 0 &&
			    now >= m->slots[i].respawn_at)
				master_spawn(m, i);
	master_watchdog(m, now);
}

static void
master_loop(struct master *m)
{
	struct pollfd pfds[MASTER_MAX_PROCS];
	struct proc *owners[MASTER_MAX_PROCS];
	struct timespec ts;
	sigset_t none;
	uint64_t now;
	uint32_t i;
	int nfds, n;

	sigemptyset(&none);
	for (;;) {
		nfds = 0;
		for (i = 0; i < MASTER_MAX_PROCS; i++) {
			if (m->procs[i].pid == 0 || m->procs[i].fd == -1)
				continue;
			pfds[nfds].fd = m->procs[i].fd;
			pfds[nfds].events = POLLIN;
			pfds[nfds].revents = 0;
			owners[nfds++] = &m->procs[i];
		}
		ts.tv_sec = 0;
		ts.tv_nsec = MASTER_POLL_MS * 1000000L;
		/* Signals are delivered only inside ppoll: no lost wakeup. */
		n = ppoll(pfds, (nfds_t)nfds, &ts, &none);
		if (n == -1 && errno != EINTR)
			log_err("ppoll");
		for (i = 0; n > 0 && i < (uint32_t)nfds; i++)
			if (pfds[i].revents != 0 && owners[i]->fd != -1)
				master_read(m, owners[i]);

		sig_chld = 0;
		master_reap(m); /* every turn: cheap, and no SIGCHLD is lost */
		now = clock_mono_ms();

		if (sig_term && m->phase != PHASE_STOP) {
			sig_term = 0;
			log_notice("shutting down: draining %" PRIu32
				   " workers",
			    master_live(m, false) + master_live(m, true));
			master_notify("STOPPING=1");
			m->phase = PHASE_STOP;
			for (i = 0; i < MASTER_MAX_PROCS; i++)
				if (m->procs[i].pid != 0)
					master_stop_proc(&m->procs[i]);
		}
		if (sig_hup) {
			sig_hup = 0;
			m->reload_wanted = true;
		}
		if (m->phase == PHASE_STOP) {
			if (master_live(m, false) + master_live(m, true) == 0)
				return;
		} else if (m->phase == PHASE_START) {
			if (master_all_ready(m)) {
				log_notice(
				    "all %" PRIu32 " workers ready", m->nslots);
				master_status(m);
				m->phase = PHASE_RUN;
			}
		} else if (m->phase == PHASE_RELOAD) {
			master_reload_step(m, now);
		}
		if (m->reload_wanted && m->phase == PHASE_RUN) {
			m->reload_wanted = false;
			master_start_reload(m);
		}
		master_timers(m, now);
	}
}

int
master_run(struct conf *conf, const char *conf_path)
{
	static struct master ms;
	struct master *m = &ms;
	struct sigaction sa;
	sigset_t block;
	char err[512];
	uint64_t usec = 0;
	uint32_t i;

	memset(m, 0, sizeof(*m));
	m->conf = conf;
	m->conf_path = conf_path;
	if (conf->auth_mode == CONF_AUTH_NONE)
		log_warnx("auth.mode = none: clients choose their identity "
			  "with ?user= (development only)");
	if (conf->auth_mode == CONF_AUTH_JWT) {
		/* Before the fork, and before any privilege drop. */
		m->jwt = jwtauth_new(conf, err, sizeof(err));
		if (m->jwt == NULL) {
			log_errx("%s", err);
			free(conf);
			return 1;
		}
	}
	m->listen_fd = master_listen(conf, err, sizeof(err));
	if (m->listen_fd == -1) {
		log_errx("%s", err);
		jwtauth_free(m->jwt);
		free(conf);
		return 1;
	}
	m->nslots = conf_workers(conf);
	if (m->nslots > MASTER_MAX_SLOTS)
		m->nslots = MASTER_MAX_SLOTS;
	/* Before the first fork: every worker inherits the mapping. */
	if ((m->fig = mfig_map()) == NULL)
		log_warn("mmap(master figures): restarts, reloads and crash "
			 "loops will not be reported");

	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = master_on_signal;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		m->watchdog_usec = usec;

	log_notice("listening on %s:%u, %" PRIu32 " workers, version %s",
	    conf->listen.host, conf->listen.port, m->nslots, WSPUSH_VERSION);
	m->phase = PHASE_START;
	for (i = 1; i <= m->nslots; i++)
		master_spawn(m, i);
	master_loop(m);

	log_notice("all workers stopped: exiting");
	close(m->listen_fd);
	jwtauth_free(m->jwt);
	mfig_unmap(m->fig);
	free(m->conf);
	return 0;
}
