/*
 * ctl_stats.h - `wspushctl stats`: the node's figures from the bridge's
 * stats socket, as a table or as the raw JSON reply.
 */
#ifndef WSP_CTL_STATS_H
#define WSP_CTL_STATS_H

#include "conf.h"

/* The command's usage lines (also part of wspushctl's help). */
extern const char ctl_stats_usage[];

/* argv[0] is "stats". Returns the exit status (ctl_common.h). */
int ctl_stats(const struct conf *c, int argc, char **argv);

#endif
