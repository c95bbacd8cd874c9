/*
 * main.c - wspush-gateway: `wspush-gateway -c FILE [-t]`. Reads and
 * validates the configuration, then hands over to the master (master.c),
 * which forks the workers (worker.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "jwtauth.h"
#include "log.h"
#include "master.h"
#include "sanitize.h"

#ifdef WSP_ASAN
/*
 * LeakSanitizer, sanitizer builds only: nng 1.5.2 loses a message that
 * nng_sendmsg() accepted when PUSH hands it to a pipe closing at that very
 * moment; the worker closes its upstream dialer on purpose when the bridge
 * stops answering (uptx_redial()). uptx_submit() is the only
 * place an upstream message is allocated, and it frees it itself whenever
 * nng refuses it, so this hides nothing of ours (the bridge has the twin
 * suppression for its bus, bridge/main.c).
 */
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:uptx_submit\n";
}
#endif

static void
usage(void)
{
	fprintf(stderr, "usage: wspush-gateway -c FILE [-t]\n"
			"  -c FILE  configuration (INI, shared with "
			"wspush-bridge)\n"
			"  -t       check the configuration, print the "
			"effective values and exit\n"
			"  -V       print the version and exit\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	struct conf *c;
	char err[1024];
	int ch, test = 0;

	log_init("wspush-gateway", LOG_INFO);
	while ((ch = getopt(argc, argv, "c:thV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			printf("wspush-gateway %s\n", WSPUSH_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (path == NULL || optind != argc)
		usage();

	c = malloc(sizeof(*c));
	if (c == NULL)
		fatalx("out of memory");
	if (conf_load(c, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "wspush-gateway: %s\n", err);
		free(c);
		return 1;
	}
	if (test) {
		if (c->auth_mode == CONF_AUTH_JWT) {
			struct jwtauth *v = jwtauth_new(c, err, sizeof(err));

			if (v == NULL) {
				fprintf(stderr, "wspush-gateway: %s\n", err);
				free(c);
				return 1;
			}
			jwtauth_free(v);
		}
		conf_print(c, stdout);
		fprintf(stderr, "wspush-gateway: %s: configuration ok\n", path);
		free(c);
		return 0;
	}
	log_set_level(c->log_level);
	return master_run(c, path);
}
