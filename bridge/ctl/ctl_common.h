/*
 * ctl_common.h - what every wspushctl command shares: the program name in
 * messages, exit codes and the --timeout option.
 *
 * Exit codes of every command: CTL_EXIT_OK, CTL_EXIT_FAIL (the command
 * failed, including a peer that did not answer within --timeout, or a
 * negative answer such as "not online"), CTL_EXIT_USAGE (bad usage).
 */
#ifndef WSP_CTL_COMMON_H
#define WSP_CTL_COMMON_H

#define CTL_PROG "wspushctl"

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1
#define CTL_EXIT_USAGE 2

/*
 * How long a command waits for the bridge's stats socket or for Redis:
 * short, because an operator (or a monitoring script) asking a hung
 * bridge wants to hear so, not to wait.
 */
#define CTL_TIMEOUT_DEFAULT_MS 2000
#define CTL_TIMEOUT_MAX_MS (3600 * 1000)

/*
 * Parses the SECONDS of `cmd --timeout SECONDS` (a decimal number, more
 * than 0, at most an hour) into *ms. Returns 0, or -1 after printing why
 * to stderr.
 */
int ctl_common_timeout(const char *cmd, const char *arg, int *ms);

/* Prints "usage: wspushctl <usage>" to stderr; returns CTL_EXIT_USAGE. */
int ctl_common_usage(const char *usage);

#endif
