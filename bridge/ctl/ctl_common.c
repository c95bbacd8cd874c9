/*
 * ctl_common.c - options and messages shared by the wspushctl commands.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl_common.h"

int
ctl_common_timeout(const char *cmd, const char *arg, int *ms)
{
	char *end;
	double s = strtod(arg, &end);

	/* !(s > 0) also refuses NaN. */
	if (end == arg || *end != '\0' || !(s > 0) ||
	    s * 1000 > CTL_TIMEOUT_MAX_MS) {
		fprintf(stderr,
		    "%s: %s: bad --timeout \"%s\" (seconds, more than 0, at "
		    "most %d)\n",
		    CTL_PROG, cmd, arg, CTL_TIMEOUT_MAX_MS / 1000);
		return -1;
	}
	*ms = (int)ceil(s * 1000);
	return 0;
}

int
ctl_common_usage(const char *usage)
{
	fprintf(stderr, "usage: %s %s", CTL_PROG, usage);
	return CTL_EXIT_USAGE;
}
