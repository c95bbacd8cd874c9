/*
 * ctl_main.c - wspushctl, the operator's tool: picks the command and reads
 * the config; each command lives in its own ctl_<command>.c.
 *
 *   publish   publish to an address through Redis        (ctl_publish.c)
 *   history   the stored messages of an address          (ctl_history.c)
 *   online    live nodes, or where a user is connected    (ctl_online.c)
 *   stats     the node's figures from the stats socket    (ctl_stats.c)
 *   listen    a WebSocket client that prints what arrives (ctl_listen.c)
 *
 * Every command but listen reads the daemons' config file (the Redis URL,
 * password and prefix; the runtime_dir of the bridge's stats socket).
 * Commands that talk to Redis or the stats socket wait at most --timeout
 * seconds (default 2) for an answer, then fail naming what did not answer.
 * Exit status: 0 success, 1 failure (including no answer within --timeout,
 * and `online --user` for a user connected nowhere), 2 bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "ctl_common.h"
#include "ctl_history.h"
#include "ctl_listen.h"
#include "ctl_online.h"
#include "ctl_publish.h"
#include "ctl_stats.h"
#include "log.h"

#define CTL_MAIN_CONF_DEFAULT "/etc/wspush/wspush.conf"

typedef int ctl_main_cmd_fn(const struct conf *c, int argc, char **argv);

/* The commands that read the config, in the order of the help text. */
static const struct {
	const char *name;
	ctl_main_cmd_fn *fn;
	const char *usage;
} ctl_main_cmds[] = {
    {"publish", ctl_publish, ctl_publish_usage},
    {"history", ctl_history, ctl_history_usage},
    {"online", ctl_online, ctl_online_usage},
    {"stats", ctl_stats, ctl_stats_usage},
};
#define CTL_MAIN_NCMDS (sizeof(ctl_main_cmds) / sizeof(ctl_main_cmds[0]))

static int
ctl_main_usage(FILE *f, int rc)
{
	fprintf(f, "usage: %s [-c FILE] <command> [options]\n", CTL_PROG);
	for (size_t i = 0; i < CTL_MAIN_NCMDS; i++)
		fprintf(f, "  %s", ctl_main_cmds[i].usage);
	fprintf(f, "  %s", ctl_listen_usage);
	fprintf(f,
	    "--timeout S: how long to wait for Redis or the bridge's stats "
	    "socket (default %d)\n"
	    "config: -c FILE, else $WSPUSH_CONF, else " CTL_MAIN_CONF_DEFAULT
	    "\n"
	    "exit: 0 ok, 1 failure (or no answer within --timeout), 2 bad "
	    "usage\n",
	    CTL_TIMEOUT_DEFAULT_MS / 1000);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *path = getenv("WSPUSH_CONF");
	static struct conf conf;
	char err[1024];
	int i = 1;

	if (path == NULL || path[0] == '\0')
		path = CTL_MAIN_CONF_DEFAULT;
	log_init(CTL_PROG, LOG_WARNING);
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)
			return ctl_main_usage(stdout, CTL_EXIT_OK);
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2]) {
			path = argv[i] + 2;
			i++;
		} else {
			return ctl_main_usage(stderr, CTL_EXIT_USAGE);
		}
	}
	if (i >= argc)
		return ctl_main_usage(stderr, CTL_EXIT_USAGE);
	if (strcmp(argv[i], "listen") == 0)
		return ctl_listen(argc - i, argv + i);
	for (size_t k = 0; k < CTL_MAIN_NCMDS; k++) {
		if (strcmp(argv[i], ctl_main_cmds[k].name) != 0)
			continue;
		if (conf_load(&conf, path, err, sizeof(err)) == -1) {
			fprintf(stderr, "%s: %s\n", CTL_PROG, err);
			return CTL_EXIT_FAIL;
		}
		return ctl_main_cmds[k].fn(&conf, argc - i, argv + i);
	}
	fprintf(stderr, "%s: unknown command \"%s\"\n", CTL_PROG, argv[i]);
	return ctl_main_usage(stderr, CTL_EXIT_USAGE);
}
