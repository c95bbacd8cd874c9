/*
 * ctl_listen.h - `wspushctl listen URL`: a WebSocket client that prints
 * what arrives (see ctl_listen.c for the options and exit codes).
 */
#ifndef WSP_CTL_LISTEN_H
#define WSP_CTL_LISTEN_H

/* The command's usage lines (also part of wspushctl's help). */
extern const char ctl_listen_usage[];

/* argv[0] is "listen". Returns the exit status (ctl_common.h). */
int ctl_listen(int argc, char **argv);

#endif
