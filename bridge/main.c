/*
 * main.c - wspush-bridge: the node's Redis sidecar.
 *
 * Reads the config, picks the node id and epoch, binds the bus and upstream
 * ipc sockets, tells systemd READY=1 (and feeds its watchdog from the
 * loop) and runs the loop until SIGTERM or SIGINT, then flushes pending
 * writes to Redis (bounded) and exits 0.
 * Signals arrive through a signalfd in the loop; they are blocked before
 * nng starts its threads, so no thread ever runs a handler.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>

#include "bridge.h"
#include "conf.h"
#include "log.h"
#include "loop.h"
#include "sanitize.h"
#include "stats.h"
#include "systemd.h"

#ifdef WSP_ASAN
/*
 * LeakSanitizer, sanitizer builds only: nng 1.5.2 loses a bus message that
 * nng_sendmsg() accepted when PUB hands it to a pipe closing at that very
 * moment (a worker exiting or killed). bus_flush() is the only place such a
 * message is allocated, and it frees it itself whenever nng refuses it.
 * And a listener recreated after nng bug #1518 (ipc_listener.c) keeps its
 * stuck pipes when closed; they hang off the listener that
 * ipc_listener_start() created (the stats listener, stats_lsn_start(),
 * has the same bug and cure). These suppressions hide nothing of ours.
 */
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:bus_flush\n"
	       "leak:ipc_listener_start\n"
	       "leak:stats_lsn_start\n";
}
#endif

static void
main_usage(void)
{
	fprintf(stderr,
	    "usage: wspush-bridge [-c FILE] [-t]\n"
	    "  -c FILE  configuration (default $WSPUSH_CONF or "
	    "/etc/wspush/wspush.conf)\n"
	    "  -t       check the configuration, print the effective "
	    "values and exit\n");
	exit(2);
}

static uint64_t
main_random_u64(void)
{
	uint64_t v = 0;

	while (getrandom(&v, sizeof(v), 0) == -1) {
		if (errno != EINTR)
			fatal("getrandom");
	}
	return v;
}

/* "auto": <short hostname>-<8 hex>, new per start, valid as a node id. */
static void
main_node_id_auto(char *out, size_t outlen)
{
	char host[256];
	size_t n = 0;

	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "node");
	host[sizeof(host) - 1] = '\0';
	/* Short name, only [A-Za-z0-9_-]; room for "-xxxxxxxx". */
	for (const char *p = host; *p != '\0' && *p != '.'; p++) {
		char ch = *p;

		if (n + 10 >= outlen)
			break;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			(ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			ch = '-';
		out[n++] = ch;
	}
	if (n == 0) {
		memcpy(out, "node", 4);
		n = 4;
	}
	snprintf(out + n, outlen - n, "-%08" PRIx32,
	    (uint32_t)(main_random_u64() & 0xffffffffu));
}

/* mkdir -p with mode for the missing components. */
static int
main_mkdir_p(const char *path, mode_t mode)
{
	char buf[CONF_RUNTIME_DIR_MAX + 1];
	size_t len = strlen(path);

	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char saved = buf[i];

		buf[i] = '\0';
		if (mkdir(buf, mode) == -1 && errno != EEXIST)
			return -1;
		buf[i] = saved;
	}
	return 0;
}

struct sigctx {
	struct bridge *bridge;
	struct loop *loop;
};

static void
main_signal_cb(struct loop *l, int fd, int revents, void *arg)
{
	struct sigctx *sc = arg;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_notice("signal=%s: graceful stop",
			    si.ssi_signo == SIGTERM ? "TERM" : "INT");
			systemd_stopping();
			bridge_stop(sc->bridge);
			break;
		case SIGHUP:
			log_notice("signal=HUP: nothing to reload (the "
				   "bridge's settings apply at start)");
			break;
		default:
			break;
		}
	}
}

/* -c FILE and -t; exits with usage on anything else. */
static void
main_args(int argc, char **argv, const char **path, bool *check)
{
	int opt;

	*path = getenv("WSPUSH_CONF");
	if (*path == NULL || (*path)[0] == '\0')
		*path = "/etc/wspush/wspush.conf";
	while ((opt = getopt(argc, argv, "c:th")) != -1) {
		switch (opt) {
		case 'c':
			*path = optarg;
			break;
		case 't':
			*check = true;
			break;
		default:
			main_usage();
		}
	}
	if (optind != argc)
		main_usage();
}

/* Before any thread exists (nng): signals only via the signalfd, whose
 * descriptor is returned. */
static int
main_signals(void)
{
	sigset_t set;
	int sfd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		fatal("sigprocmask");
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd == -1)
		fatal("signalfd");
	return sfd;
}

/* The node id ("auto" resolved) and a fresh, non-zero epoch. */
static uint64_t
main_identity(const struct conf *c, char *node, size_t len)
{
	uint64_t epoch;

	if (strcmp(c->node_id, "auto") == 0)
		main_node_id_auto(node, len);
	else
		snprintf(node, len, "%s", c->node_id);
	do
		epoch = main_random_u64();
	while (epoch == 0);
	srandom((unsigned)(epoch >> 32) ^ (unsigned)getpid());
	return epoch;
}

int
main(int argc, char **argv)
{
	const char *path;
	bool check = false;
	static struct conf conf; /* large: keep it off the stack */
	char err[1024], node[CONF_NODE_ID_MAX];
	int sfd;
	uint64_t epoch;
	struct loop *loop;
	struct sigctx sc;
	struct loop_fd *sw;
	struct stats *stats;
	int rc;

	main_args(argc, argv, &path, &check);
	log_init("wspush-bridge", LOG_INFO);
	if (conf_load(&conf, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "wspush-bridge: %s\n", err);
		return 1;
	}
	if (check) {
		conf_print(&conf, stdout);
		fprintf(stderr, "wspush-bridge: %s: configuration ok\n", path);
		return 0;
	}
	log_set_level(conf.log_level);
	conf_log_warnings(&conf);
	sfd = main_signals();
	epoch = main_identity(&conf, node, sizeof(node));
	if (main_mkdir_p(conf.runtime_dir, 0750) == -1)
		fatal("mkdir(%s)", conf.runtime_dir);

	loop = loop_new();
	if (loop == NULL)
		fatalx("out of memory");
	sc.loop = loop;
	sc.bridge = bridge_new(loop, &conf, node, epoch, err, sizeof(err));
	if (sc.bridge == NULL)
		fatalx("%s", err);
	stats =
	    stats_open(loop, sc.bridge, &conf, node, epoch, err, sizeof(err));
	if (stats == NULL)
		fatalx("%s", err);
	sw = loop_fd_add(loop, sfd, POLLIN, main_signal_cb, &sc);
	if (sw == NULL)
		fatalx("out of memory");
	/* The ipc listeners are bound: workers can attach, Redis or not. */
	systemd_ready();
	if (systemd_watchdog_start(loop) == -1)
		fatalx("out of memory");
	log_notice("ready node=%s pid=%ld", node, (long)getpid());

	if (loop_run(loop) == -1)
		log_err("poll");
	stats_close(stats);
	rc = bridge_failed(sc.bridge) ? 1 : 0;
	bridge_free(sc.bridge);
	loop_fd_del(sw);
	loop_free(loop);
	close(sfd);
	/* Waits for nng's reaper: messages still queued to closing pipes are
	 * freed before exit (and leak checkers stay quiet). */
	nng_fini();
	log_notice("stopped");
	return rc;
}
