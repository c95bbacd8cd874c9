/*
 * ctl_history.h - `wspushctl history`: what the history of an address
 * holds, read from its Redis stream.
 */
#ifndef WSP_CTL_HISTORY_H
#define WSP_CTL_HISTORY_H

#include "conf.h"

/* The command's usage lines (also part of wspushctl's help). */
extern const char ctl_history_usage[];

/* argv[0] is "history". Returns the exit status (ctl_common.h). */
int ctl_history(const struct conf *c, int argc, char **argv);

#endif
