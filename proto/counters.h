/*
 * counters.h - the one list of the counters a worker reports upstream.
 *
 * Every worker counter is declared once, below, with the Prometheus family
 * it is exported under. The worker's COUNTERS envelope (gateway), the
 * stats JSON, /metrics (bridge) and the columns of `wspushctl stats` are
 * all generated from this list, so a counter cannot exist in one of them
 * and be missing from another. Names travel on the wire (proto/PROTOCOL.md,
 * "COUNTERS"): rename one only with a protocol version bump.
 *
 * X(name, kind, family, label, help):
 *   name    the counter's wire name and the C identifier WC_<name>
 *   kind    COUNTER (monotonic) or GAUGE
 *   family  the Prometheus metric family; several counters may share one,
 *           told apart by label
 *   label   an extra label `k="v"`, or NULL
 *   help    the family's HELP text (the first row of a family carries it)
 */
#ifndef WSP_COUNTERS_H
#define WSP_COUNTERS_H

#include <stddef.h>

enum counter_kind { COUNTER_KIND_COUNTER, COUNTER_KIND_GAUGE };

/* clang-format off */
#define WORKER_COUNTERS(X) \
	X(bus_attached, GAUGE, "wspush_worker_bus_attached", NULL, \
	    "1 while the worker receives the bridge's heartbeats on the bus.") \
	X(connections, GAUGE, "wspush_connections", NULL, \
	    "Open WebSocket connections.") \
	X(users, GAUGE, "wspush_users", NULL, "Distinct users connected.") \
	X(subscriptions, GAUGE, "wspush_worker_subscriptions", NULL, \
	    "Channel subscriptions held by clients.") \
	X(msgs_in, COUNTER, "wspush_bus_messages_in_total", NULL, \
	    "Messages received from the node bus.") \
	X(bus_targets, COUNTER, "wspush_bus_targets_total", NULL, \
	    "Bus messages times their target connections (to be delivered " \
	    "or dropped).") \
	X(replies, COUNTER, "wspush_replies_total", NULL, \
	    "Protocol frames queued to clients (welcome, subscribed, ...).") \
	X(frames_out, COUNTER, "wspush_frames_delivered_total", NULL, \
	    "Frames delivered to clients.") \
	X(bytes_out, COUNTER, "wspush_bytes_out_total", NULL, \
	    "Bytes written to clients.") \
	X(drop_queue_full, COUNTER, "wspush_drops_total", \
	    "reason=\"queue_full\"", "Messages dropped, by reason.") \
	X(drop_slow_closed, COUNTER, "wspush_drops_total", \
	    "reason=\"slow_closed\"", NULL) \
	X(drop_closed, COUNTER, "wspush_drops_total", "reason=\"closed\"", \
	    NULL) \
	X(drop_too_large, COUNTER, "wspush_drops_total", \
	    "reason=\"too_large\"", NULL) \
	X(drop_bus_gap, COUNTER, "wspush_drops_total", "reason=\"bus_gap\"", \
	    NULL) \
	X(drop_bad_envelope, COUNTER, "wspush_drops_total", \
	    "reason=\"bad_envelope\"", NULL) \
	X(drop_up_queue, COUNTER, "wspush_drops_total", "reason=\"up_queue\"", \
	    NULL) \
	X(queue_bytes, GAUGE, "wspush_queue_bytes", NULL, \
	    "Bytes queued to clients.") \
	X(queue_frames, GAUGE, "wspush_queue_frames", NULL, \
	    "Frames queued to clients.") \
	X(queue_hwm, GAUGE, "wspush_queue_hwm_bytes", NULL, \
	    "High-water mark of one client's queue.") \
	X(hs_accepted, COUNTER, "wspush_handshakes_accepted_total", NULL, \
	    "WebSocket handshakes accepted.") \
	X(hs_rejected_auth, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"auth\"", "WebSocket handshakes refused, by reason.") \
	X(hs_rejected_origin, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"origin\"", NULL) \
	X(hs_rejected_limit, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"limit\"", NULL) \
	X(hs_rejected_draining, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"draining\"", NULL) \
	X(hs_rejected_path, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"path\"", NULL) \
	X(hs_rejected_version, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"version\"", NULL) \
	X(hs_rejected_slow, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"slow\"", NULL) \
	X(hs_rejected_too_large, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"too_large\"", NULL) \
	X(hs_rejected_malformed, COUNTER, "wspush_handshakes_rejected_total", \
	    "reason=\"malformed\"", NULL) \
	X(hs_pending, GAUGE, "wspush_handshakes_pending", NULL, \
	    "Connections still sending their request head.") \
	X(closed_slow, COUNTER, "wspush_closed_total", "reason=\"slow\"", \
	    "Connections closed by the server, by reason.") \
	X(closed_abuse, COUNTER, "wspush_closed_total", "reason=\"abuse\"", \
	    NULL) \
	X(closed_too_big, COUNTER, "wspush_closed_total", \
	    "reason=\"too_big\"", NULL) \
	X(closed_auth, COUNTER, "wspush_closed_total", "reason=\"auth\"", \
	    NULL) \
	X(closed_protocol, COUNTER, "wspush_closed_total", \
	    "reason=\"protocol\"", NULL) \
	X(closed_msg_timeout, COUNTER, "wspush_closed_total", \
	    "reason=\"msg_timeout\"", NULL) \
	X(closed_auth_timeout, COUNTER, "wspush_auth_closed_total", \
	    "reason=\"timeout\"", \
	    "Connections closed with 4001, by cause (subset of closed).") \
	X(closed_auth_expired, COUNTER, "wspush_auth_closed_total", \
	    "reason=\"expired\"", NULL) \
	X(auth_ok, COUNTER, "wspush_auth_accepted_total", NULL, \
	    "Tokens accepted (handshake and auth messages).") \
	X(auth_user_mismatch, COUNTER, "wspush_auth_user_mismatch_total", NULL, \
	    "Later auth messages refused because sub named another user.") \
	X(auth_rejected_malformed, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"malformed\"", "Tokens refused, by reason.") \
	X(auth_rejected_bad_signature, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"bad_signature\"", NULL) \
	X(auth_rejected_wrong_alg, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"wrong_alg\"", NULL) \
	X(auth_rejected_expired, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"expired\"", NULL) \
	X(auth_rejected_not_yet_valid, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"not_yet_valid\"", NULL) \
	X(auth_rejected_no_sub, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"no_sub\"", NULL) \
	X(auth_rejected_bad_sub, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"bad_sub\"", NULL) \
	X(auth_rejected_bad_claims, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"bad_claims\"", NULL) \
	X(auth_rejected_too_long, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"too_long\"", NULL) \
	X(auth_rejected_internal, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"internal\"", NULL) \
	X(auth_rejected_no_exp, COUNTER, "wspush_auth_rejected_total", \
	    "reason=\"no_exp\"", NULL) \
	X(interest_pending, GAUGE, "wspush_interest_pending", NULL, \
	    "Addresses waiting for their broker subscription.") \
	X(master_restarts, COUNTER, "wspush_master_worker_restarts_total", \
	    NULL, "Workers the gateway master respawned after they died.") \
	X(master_reloads, COUNTER, "wspush_master_reloads_total", NULL, \
	    "Rolling reloads (SIGHUP) the gateway master started.") \
	X(master_crash_loops, COUNTER, "wspush_master_crash_loops_total", NULL, \
	    "Crash loops the gateway master detected.") \
	X(recoveries_full, COUNTER, "wspush_recoveries_total", \
	    "result=\"full\"", \
	    "History recoveries answered, by result (full: recovered true; " \
	    "partial: recovered false).") \
	X(recoveries_partial, COUNTER, "wspush_recoveries_total", \
	    "result=\"partial\"", NULL) \
	X(replayed, COUNTER, "wspush_replayed_messages_total", NULL, \
	    "Stored messages replayed by recoveries (delivery targets, " \
	    "like bus messages).") \
	X(history_reads, COUNTER, "wspush_history_reads_total", \
	    "result=\"ok\"", \
	    "history requests of clients sent to the bridge, by result.") \
	X(history_read_errors, COUNTER, "wspush_history_reads_total", \
	    "result=\"error\"", NULL)
/* clang-format on */

enum worker_counter {
#define WC_ENUM(name, kind, family, label, help) WC_##name,
	WORKER_COUNTERS(WC_ENUM)
#undef WC_ENUM
	    WC_COUNT
};

/* One row of the list above, for code that walks it at run time. */
struct counter_info {
	const char *name;
	enum counter_kind kind;
	const char *family;
	const char *label; /* NULL: none */
	const char *help;  /* NULL: the family's first row has it */
};

/* The rows, indexed by enum worker_counter. */
extern const struct counter_info worker_counter_info[WC_COUNT];

/* The row of a wire name, or NULL if this build does not know it. */
const struct counter_info *counter_info_find(const char *name);

/* True for the master's figures (reported by every worker; the largest
 * value is the master's, not a sum). */
static inline int
counter_is_master(enum worker_counter c)
{
	return c >= WC_master_restarts && c <= WC_master_crash_loops;
}

#endif
