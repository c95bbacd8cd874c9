/*
 * ctl_sock.h - the client side of the bridge's stats socket
 * (ipc://<runtime_dir>/stats.ipc: nng REQ/REP, one JSON object each way;
 * the requests and replies are described in proto/PROTOCOL.md).
 */
#ifndef WSP_CTL_SOCK_H
#define WSP_CTL_SOCK_H

#include <jansson.h>

#include "conf.h"

/*
 * Sends the request (a JSON object's text) to c's stats socket and waits
 * at most timeout_ms in all for the reply. Returns the reply object (new
 * reference; the caller decrefs it), or NULL after printing to stderr,
 * prefixed with "wspushctl: <cmd>: ", what went wrong: no such socket, the
 * socket (named by its path) did not answer within the timeout, an
 * unreadable reply, or an "error" the bridge answered.
 */
json_t *ctl_sock_request(
    const struct conf *c, const char *cmd, const char *request, int timeout_ms);

#endif
