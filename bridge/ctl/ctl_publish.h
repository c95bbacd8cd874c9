/*
 * ctl_publish.h - `wspushctl publish`: PUBLISH a message to an address
 * through Redis, as a backend would.
 */
#ifndef WSP_CTL_PUBLISH_H
#define WSP_CTL_PUBLISH_H

#include "conf.h"

/* The command's usage lines (also part of wspushctl's help). */
extern const char ctl_publish_usage[];

/* argv[0] is "publish". Returns the exit status (ctl_common.h). */
int ctl_publish(const struct conf *c, int argc, char **argv);

#endif
