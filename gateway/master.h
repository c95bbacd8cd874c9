/*
 * master.h - the gateway master: opens the one listening socket, forks
 * and supervises the workers (respawn with backoff, hung-worker kill),
 * rolls them on SIGHUP, drains them on SIGTERM and talks to systemd.
 * The master never uses nng or libwebsockets (neither survives a fork).
 */
#ifndef WSP_MASTER_H
#define WSP_MASTER_H

#include "conf.h"

/*
 * Runs the master until SIGTERM/SIGINT; returns the process exit status.
 * Takes ownership of conf (heap-allocated; replaced on reload). conf_path
 * is re-read on SIGHUP.
 */
int master_run(struct conf *conf, const char *conf_path);

/* Opens the listening socket of conf->listen (SO_REUSEADDR, backlog 4096,
 * non-blocking). Returns the fd, or -1 with the reason in err. */
int master_listen(const struct conf *conf, char *err, size_t errlen);

#endif
