/*
 * ipc_listener.h - an nng ipc:// listener that repairs itself.
 *
 * nng 1.5.2 stops accepting on a listener for good once a peer disconnects
 * during the SP handshake (nanomsg/nng#1518, fixed after 1.5.2): a plain
 * connect()+close() to the socket, or a second bridge probing a stale
 * path, is enough. So every IPC_LISTENER_CHECK_MS the listener connects to
 * its own socket, does the SP handshake as a peer would, and recreates
 * the nng listener if that connection is not attached to the socket
 * (NNG_PIPE_EV_ADD_POST) within IPC_LISTENER_CHECK_TIMEOUT_MS: with the bug
 * the transport still answers the handshake, but the pipe never reaches
 * the socket. Recreating closes the listener's pipes: peers redial.
 *
 * A socket that sends (PUB) must not lose the check connection while a
 * message is on its way to it (nng 1.5.2 leaks a message handed to a pipe
 * closing at that moment): its owner reports sends with
 * ipc_listener_sent() and calls ipc_listener_idle() after them, and the
 * connection is closed only once the socket has been quiet for
 * IPC_LISTENER_QUIET_MS. Loop thread only, except the nng pipe callback.
 */
#ifndef WSP_IPC_LISTENER_H
#define WSP_IPC_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "loop.h"

#define IPC_LISTENER_CHECK_MS 2000
#define IPC_LISTENER_CHECK_TIMEOUT_MS 1000
#define IPC_LISTENER_QUIET_MS 20
#define IPC_LISTENER_QUIET_MAX_MS 10000

/* SP protocol numbers of the peers we serve (the check speaks them). */
#define IPC_LISTENER_PEER_SUB 0x21  /* for a PUB socket */
#define IPC_LISTENER_PEER_PUSH 0x50 /* for a PULL socket */
#define IPC_LISTENER_PEER_REQ 0x30  /* for a REP socket */

struct ipc_listener;

/*
 * Listens on url (ipc://..., mode 0660) for sock and checks it from loop.
 * peer_proto is the SP protocol a peer of sock speaks; sends says that
 * sock sends (see above); what names it in logs ("bus", "stats"). Takes
 * sock's NNG_PIPE_EV_ADD_POST notification (nng allows one per event).
 * Returns the listener, or NULL with a message naming the failing call in
 * err. sock must stay open until ipc_listener_free().
 */
struct ipc_listener *ipc_listener_new(struct loop *loop, nng_socket sock,
    const char *url, uint16_t peer_proto, bool sends, const char *what,
    char *err, size_t errlen);

/*
 * Stops checking and frees l. Call it after nng_close(sock): nng may run
 * the pipe callback until then. NULL ok.
 */
void ipc_listener_free(struct ipc_listener *l);

/* The socket handed a message to nng at now_ms (sending sockets). */
void ipc_listener_sent(struct ipc_listener *l, uint64_t now_ms);

/* A quiet moment may have come: closes a judged check connection. */
void ipc_listener_idle(struct ipc_listener *l, uint64_t now_ms);

/* How often the listener was recreated. */
uint64_t ipc_listener_restarts(const struct ipc_listener *l);

#endif
