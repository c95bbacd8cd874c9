/*
 * ctl_sock.c - one request to the bridge's stats socket, bounded in time.
 *
 * A stopped or hung bridge still accepts connections on its socket (the
 * kernel queues them), so a blocking nng_dial() would wait for nng's own
 * IPC handshake timeout (10 s in nng 1.5.2) before the request's own
 * timeout even starts. Instead the dial is non-blocking and one deadline
 * covers the connection, the send and the reply. Whether a connection
 * was ever set up tells the operator which of the two did not happen.
 *
 * The socket file is checked with stat() first, not with a trial
 * connect(): a bare connect()+close() makes nng 1.5.2's listener stop
 * attaching connections until the bridge's self-check recreates it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "clock.h"
#include "ctl_common.h"
#include "ctl_sock.h"

/* The largest reply accepted (a node with many workers and counters). */
#define CTL_SOCK_REPLY_MAX (64u * 1024 * 1024)

/* nng thread: a connection to the bridge was set up. */
static void
ctl_sock_attached_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	atomic_bool *attached = arg;

	atomic_store(attached, true);
}

/* Checks that the socket file exists; prints why not. */
static int
ctl_sock_exists(const char *cmd, const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		fprintf(stderr,
		    "%s: %s: %s: %s (is wspush-bridge running, with this "
		    "runtime_dir?)\n",
		    CTL_PROG, cmd, path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		fprintf(
		    stderr, "%s: %s: %s: not a socket\n", CTL_PROG, cmd, path);
		return -1;
	}
	return 0;
}

static void
ctl_sock_timed_out(
    const char *cmd, const char *path, int timeout_ms, bool attached)
{
	fprintf(stderr, "%s: %s: %s did not answer within %g s (%s)\n",
	    CTL_PROG, cmd, path, timeout_ms / 1000.0,
	    attached ? "connected, no reply: the bridge is busy or hung"
		     : "no connection: the bridge is stopped, hung or not "
		       "running");
}

/* Parses a reply; NULL after printing why. */
static json_t *
ctl_sock_parse(const char *cmd, nng_msg *m)
{
	json_error_t je;
	json_t *j = json_loadb(nng_msg_body(m), nng_msg_len(m), 0, &je);

	if (j == NULL || !json_is_object(j)) {
		fprintf(stderr, "%s: %s: unreadable reply: %s\n", CTL_PROG, cmd,
		    j == NULL ? je.text : "not a JSON object");
		json_decref(j);
		return NULL;
	}
	if (json_is_string(json_object_get(j, "error"))) {
		fprintf(stderr, "%s: %s: the bridge refused: %s\n", CTL_PROG,
		    cmd, json_string_value(json_object_get(j, "error")));
		json_decref(j);
		return NULL;
	}
	return j;
}

json_t *
ctl_sock_request(
    const struct conf *c, const char *cmd, const char *request, int timeout_ms)
{
	char url[CONF_RUNTIME_DIR_MAX + 32];
	const char *path = url + strlen("ipc://");
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms, now;
	atomic_bool attached = false;
	nng_socket s;
	nng_msg *m = NULL;
	json_t *j = NULL;
	int rv;

	conf_stats_url(c, url, sizeof(url));
	if (ctl_sock_exists(cmd, path) == -1)
		return NULL;
	if ((rv = nng_req0_open(&s)) != 0) {
		fprintf(stderr, "%s: %s: nng_req0_open: %s\n", CTL_PROG, cmd,
		    nng_strerror(rv));
		return NULL;
	}
	(void)nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, CTL_SOCK_REPLY_MAX);
	(void)nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
	if ((rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, ctl_sock_attached_cb,
		 &attached)) != 0 ||
	    (rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK)) != 0 ||
	    (rv = nng_send(s, (void *)request, strlen(request), 0)) != 0)
		goto fail;
	/* The rest of the one deadline is for the reply. */
	now = clock_mono_ms();
	if (now >= deadline) {
		rv = NNG_ETIMEDOUT;
		goto fail;
	}
	(void)nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (int)(deadline - now));
	if ((rv = nng_recvmsg(s, &m, 0)) != 0)
		goto fail;
	j = ctl_sock_parse(cmd, m);
	nng_msg_free(m);
	nng_close(s);
	return j;
fail:
	if (rv == NNG_ETIMEDOUT)
		ctl_sock_timed_out(
		    cmd, url, timeout_ms, atomic_load(&attached));
	else
		fprintf(stderr, "%s: %s: %s: %s\n", CTL_PROG, cmd, url,
		    nng_strerror(rv));
	nng_close(s);
	return NULL;
}
