/*
 * uptx_test.c - the upstream watchdog's view of the PUSH socket: how long
 * it has been without a pipe to the bridge (uptx_pipeless()), through real
 * nng pipes over ipc:// in a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>

#include "clock.h"
#include "conf.h"
#include "uptx.h"
#include "worker.h"

/* Polls cond (a uptx_pipeless() answer wanted) for up to 5 s. */
static bool
pipeless_becomes(struct uptx *u, bool want)
{
	uint64_t t0 = clock_mono_ms();

	while (clock_mono_ms() - t0 < 5000) {
		/* for_ms 0: true exactly while there is no pipe. */
		if (uptx_pipeless(u, clock_mono_ms(), 0) == want)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static void
no_pipe_is_timed_from_when_it_went(void **state)
{
	static struct worker w;
	static struct conf c;
	char dir[] = "/tmp/wsp-uptx-XXXXXX", url[CONF_RUNTIME_DIR_MAX + 32];
	struct uptx *u;
	nng_socket pull;
	nng_listener l;
	uint64_t t;

	assert_non_null(mkdtemp(dir));
	conf_defaults(&c);
	snprintf(c.runtime_dir, sizeof(c.runtime_dir), "%s", dir);
	w.conf = &c;
	w.slot = w.gen = 1;
	w.pid = getpid();
	u = uptx_new(&w); /* dials a path nobody listens on yet */
	assert_non_null(u);

	/* Never connected: timed from the first look. */
	assert_false(uptx_pipeless(u, 1000, 2000));
	assert_false(uptx_pipeless(u, 2999, 2000));
	assert_true(uptx_pipeless(u, 3000, 2000));

	/* A bridge appears: the pipe comes and the clock stops. */
	conf_up_url(&c, url, sizeof(url));
	assert_int_equal(nng_pull0_open(&pull), 0);
	assert_int_equal(nng_listen(pull, url, &l, 0), 0);
	assert_true(pipeless_becomes(u, false));
	assert_false(uptx_pipeless(u, 1000000, 2000));

	/* The bridge goes: timed again from the first look after. */
	nng_close(pull);
	assert_true(pipeless_becomes(u, true));
	t = clock_mono_ms(); /* the clock started at most ~10 ms ago */
	assert_false(uptx_pipeless(u, t, 2000));
	assert_true(uptx_pipeless(u, t + 2000, 2000));

	uptx_free(u);
	char sock[sizeof(dir) + 16];
	snprintf(sock, sizeof(sock), "%s/up.ipc", dir);
	unlink(sock);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(no_pipe_is_timed_from_when_it_went),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
