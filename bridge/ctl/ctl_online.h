/*
 * ctl_online.h - `wspushctl online`: the live nodes and their figures, or
 * where one user is connected, from the presence hashes in Redis.
 */
#ifndef WSP_CTL_ONLINE_H
#define WSP_CTL_ONLINE_H

#include "conf.h"

/* The command's usage lines (also part of wspushctl's help). */
extern const char ctl_online_usage[];

/* argv[0] is "online". Returns the exit status (ctl_common.h); 1 also
 * when --user is connected nowhere. */
int ctl_online(const struct conf *c, int argc, char **argv);

#endif
