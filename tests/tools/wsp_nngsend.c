/*
 * wsp_nngsend - sends raw bytes over nng, for tests that feed the bridge
 * and the workers envelopes no real peer would send.
 *
 *   wsp_nngsend --push URL [options] HEX...   dial URL as PUSH (e.g. the
 *                                            bridge's up.ipc) and send
 *   wsp_nngsend --pub URL [options] HEX...    listen on URL as PUB (e.g. a
 *                                            stopped bridge's bus.ipc) and
 *                                            send once subscribers are in
 *
 * Each HEX argument is one nng message, given in hex ("" or "-" as the
 * only argument: one message read raw from stdin). Options:
 *   --peers N      wait for N pipes before sending (default 1)
 *   --wait-ms MS   how long to wait for them (default 10000; exit 2)
 *   --linger-ms MS stay up this long after the last send so nng can
 *                  flush it (default 500)
 *   --repeat N     send the whole list N times (default 1)
 *
 * Exit status: 0 sent, 1 usage or nng error, 2 no peers in time.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/supplemental/util/platform.h>

static atomic_int n_pipes;

/* nng thread: counts attached pipes. */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)arg;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&n_pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&n_pipes, 1);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: wsp_nngsend --push|--pub URL [--peers N] [--wait-ms MS] "
	    "[--linger-ms MS] [--repeat N] HEX... | -\n");
	exit(1);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes hex into a new nng message; NULL on bad hex (reported). */
static nng_msg *
msg_from_hex(const char *hex)
{
	size_t n = strlen(hex);
	nng_msg *m;

	if (n % 2 != 0) {
		fprintf(stderr, "wsp_nngsend: odd hex length: %s\n", hex);
		return NULL;
	}
	if (nng_msg_alloc(&m, 0) != 0)
		return NULL;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);
		unsigned char b;

		if (hi < 0 || lo < 0) {
			fprintf(stderr, "wsp_nngsend: bad hex: %s\n", hex);
			nng_msg_free(m);
			return NULL;
		}
		b = (unsigned char)(hi << 4 | lo);
		if (nng_msg_append(m, &b, 1) != 0) {
			nng_msg_free(m);
			return NULL;
		}
	}
	return m;
}

static nng_msg *
msg_from_stdin(void)
{
	unsigned char buf[65536];
	nng_msg *m;
	size_t r;

	if (nng_msg_alloc(&m, 0) != 0)
		return NULL;
	while ((r = fread(buf, 1, sizeof(buf), stdin)) > 0) {
		if (nng_msg_append(m, buf, r) != 0) {
			nng_msg_free(m);
			return NULL;
		}
	}
	return m;
}

int
main(int argc, char **argv)
{
	const char *url = NULL;
	bool pub = false;
	int peers = 1, wait_ms = 10000, linger_ms = 500, repeat = 1;
	int i, rv, first;
	nng_socket s;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--push") == 0 ||
		    strcmp(argv[i], "--pub") == 0) {
			pub = strcmp(argv[i], "--pub") == 0;
			url = argv[++i];
		} else if (strcmp(argv[i], "--peers") == 0) {
			peers = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--wait-ms") == 0) {
			wait_ms = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--linger-ms") == 0) {
			linger_ms = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--repeat") == 0) {
			repeat = atoi(argv[++i]);
		} else {
			usage();
		}
	}
	if (url == NULL || i >= argc)
		usage();
	first = i;

	rv = pub ? nng_pub0_open(&s) : nng_push0_open(&s);
	if (rv != 0) {
		fprintf(stderr, "wsp_nngsend: open: %s\n", nng_strerror(rv));
		return 1;
	}
	nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, pipe_cb, NULL);
	nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, pipe_cb, NULL);
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 200);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, wait_ms);
	if (pub) {
		/* A stale socket file of a killed bridge is in the way. */
		if (strncmp(url, "ipc://", 6) == 0)
			unlink(url + 6);
		rv = nng_listen(s, url, NULL, 0);
	} else {
		rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
	}
	if (rv != 0) {
		fprintf(stderr, "wsp_nngsend: %s %s: %s\n",
		    pub ? "listen" : "dial", url, nng_strerror(rv));
		nng_close(s);
		return 1;
	}
	for (int waited = 0; atomic_load(&n_pipes) < peers; waited += 10) {
		if (waited >= wait_ms) {
			fprintf(stderr,
			    "wsp_nngsend: %d of %d peers after %d ms\n",
			    atomic_load(&n_pipes), peers, wait_ms);
			nng_close(s);
			return 2;
		}
		nng_msleep(10);
	}
	for (int r = 0; r < repeat; r++) {
		for (i = first; i < argc; i++) {
			bool from_stdin =
			    argc - first == 1 &&
			    (argv[i][0] == '\0' || strcmp(argv[i], "-") == 0);
			nng_msg *m = from_stdin ? msg_from_stdin()
						: msg_from_hex(argv[i]);

			if (m == NULL) {
				nng_close(s);
				return 1;
			}
			/* On success nng owns m. */
			if ((rv = nng_sendmsg(s, m, 0)) != 0) {
				fprintf(stderr, "wsp_nngsend: send: %s\n",
				    nng_strerror(rv));
				nng_msg_free(m);
				nng_close(s);
				return 1;
			}
			if (from_stdin)
				break;
		}
	}
	/* nng 1.5 has no linger: give its threads time to write. */
	nng_msleep(linger_ms);
	printf("sent to %d peers\n", atomic_load(&n_pipes));
	nng_close(s);
	return 0;
}
