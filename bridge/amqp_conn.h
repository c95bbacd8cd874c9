/*
 * amqp_conn.h - one AMQP 0-9-1 connection (rabbitmq-c 0.11) driven by the
 * bridge loop: no thread and no blocking call, the handshake included.
 *
 * The connection runs one channel. Once logged in it declares the
 * exchanges and the inbound queue, the node's own queue (server-named,
 * exclusive, auto-delete, bounded on the broker side), binds it to the
 * fanout exchange if one is configured, puts the channel in confirm mode
 * and consumes without acks. Every method is sent with amqp_send_method()
 * and its reply matched in order (replies on a channel come in the order
 * of the requests) by the frame dispatcher here, which also assembles
 * deliveries (method, header, body frames), settles publisher confirms,
 * counts returned messages and serves heartbeats from a timer.
 *
 * Nothing waits: the TCP connect is non-blocking and watched by the
 * loop, and the AMQP handshake (start/start-ok, tune/tune-ok, open) is
 * answered by the same dispatcher, so a broker that accepts TCP but never
 * answers costs nothing but the attempt timeout (AMQP_CONN_ATTEMPT_MS).
 * The broker's host name is resolved with getaddrinfo() at each attempt
 * (an IP address or an /etc/hosts name does not block). Publishes go out
 * only while the socket can take them without blocking (rabbitmq-c writes
 * with no deadline); otherwise the owner keeps them (see NOTES.md).
 *
 * After any loss it reconnects with capped exponential backoff (100 ms
 * doubling to 5 s, +-25% jitter) and declares everything again; the owner
 * re-binds its addresses from the up callback. Loop thread only.
 */
#ifndef WSP_AMQP_CONN_H
#define WSP_AMQP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "amqp_msg.h"
#include "loop.h"

/* From the TCP connect to consuming: an attempt that takes longer fails. */
#define AMQP_CONN_ATTEMPT_MS 5000
#define AMQP_CONN_FRAME_MAX 131072
#define AMQP_CONN_BACKOFF_MIN_MS 100
#define AMQP_CONN_BACKOFF_MAX_MS 5000
/* Heartbeat we ask for, in seconds: a silent peer is dropped after two. */
#define AMQP_CONN_HEARTBEAT_S 5
/* Frames handled per loop callback before yielding to the loop. */
#define AMQP_CONN_FRAMES_PER_PASS 1024

struct amqp_conn_conf {
	const char *url;      /* amqp://user:pass@host:port/vhost */
	const char *exchange; /* direct, durable: routing key = address */
	const char *fanout_exchange; /* "" = none */
	const char *inbound_queue;   /* "" = none */
	const char *events_exchange; /* "" = none */
	const char *name;            /* connection_name shown by the broker */
	uint32_t queue_max_length;   /* x-max-length of the node's queue */
	uint64_t queue_max_bytes;    /* its x-max-length-bytes */
	uint32_t max_body;           /* larger deliveries are skipped */
	uint32_t coalesce_ms;        /* input coalescing (loop_fd_coalesce()) */
};

/* One delivery; everything is borrowed for the callback only. */
struct amqp_delivery {
	amqp_bytes_t exchange, key;
	bool from_fanout;      /* it came through fanout_exchange */
	enum amqp_msg_hdr hdr; /* the wspush-to header */
	amqp_bytes_t to;       /* its value if AMQP_MSG_HDR_STRING */
	const void *body;
	size_t len;
};

struct amqp_conn_cbs {
	/* Declared, consuming, confirm mode on: binds may be sent. */
	void (*up)(void *arg);
	/* Was up and is lost: the broker has dropped the queue with its
	 * bindings (exclusive); open confirms were counted lost. */
	void (*down)(void *arg);
	/* queue.bind-ok (bind true) or queue.unbind-ok for key. */
	void (*bound)(void *arg, bool bind, const char *key, size_t len);
	void (*delivery)(void *arg, const struct amqp_delivery *d);
	/*
	 * The broker refused a declaration (an existing exchange or queue
	 * of another type or durability). msg names the key and quotes the
	 * broker. The connection retries after the backoff; the owner may
	 * rather stop.
	 */
	void (*refused)(void *arg, const char *msg);
	void *arg;
};

struct amqp_conn_stats {
	bool up, blocked;
	uint64_t connects;            /* successful setups */
	uint64_t connect_failures;    /* attempts that did not reach up */
	uint64_t outages;             /* up -> down transitions */
	uint64_t deliveries;          /* complete deliveries handed out */
	uint64_t oversize;            /* deliveries over max_body, skipped */
	uint64_t publishes;           /* basic.publish sent */
	uint64_t returned;            /* basic.return (mandatory, unroutable) */
	uint64_t acked, nacked, lost; /* publisher confirms */
	uint64_t unconfirmed;         /* open confirms right now */
	uint64_t binds_inflight;      /* bind/unbind sent, not answered */
	uint64_t heartbeat_timeouts;
};

struct amqp_conn;

/*
 * Returns a new idle connection (the strings of cf are copied), or NULL
 * with a message in err (bad URL, out of memory). Free with
 * amqp_conn_free().
 */
struct amqp_conn *amqp_conn_new(struct loop *loop,
    const struct amqp_conn_conf *cf, const struct amqp_conn_cbs *cbs, char *err,
    size_t errlen);

/* Starts connecting (now) and reconnecting after every loss. */
void amqp_conn_start(struct amqp_conn *c);

/* Closes the connection and stops reconnecting; frees c. NULL ok. */
void amqp_conn_free(struct amqp_conn *c);

bool amqp_conn_is_up(const struct amqp_conn *c);

/* Why the last attempt failed or the connection was lost ("" if never). */
const char *amqp_conn_last_error(const struct amqp_conn *c);

/* The broker-assigned name of the node's queue ("" while down). */
const char *amqp_conn_queue(const struct amqp_conn *c);

/*
 * Sends queue.bind (bind true) or queue.unbind of the node's queue to the
 * direct exchange with routing key key[0..len). The bound callback
 * follows. Returns 0, or -1 if the connection is not up (or went down
 * sending).
 */
int amqp_conn_bind(struct amqp_conn *c, bool bind, const char *key, size_t len);

/* True if a publish of about len bytes would go out now: up, not blocked
 * by the broker, confirm window not full, and room in the socket for a
 * write that cannot block (see NOTES.md). */
bool amqp_conn_can_publish(const struct amqp_conn *c, size_t len);

/* A message to publish; headers are string-valued. */
struct amqp_pub {
	const char *exchange; /* "" = the default exchange (key = queue) */
	amqp_bytes_t key;
	bool mandatory;   /* unroutable: returned, counted */
	bool persistent;  /* delivery_mode 2 */
	const char *type; /* basic.type, NULL = none */
	size_t n_headers;
	const char *const *hnames;
	const amqp_bytes_t *hvalues;
	amqp_bytes_t body;
};

/*
 * Publishes with a confirm to follow. Returns 0, or -1 if it cannot go out
 * now (see amqp_conn_can_publish(); the connection may have gone down).
 */
int amqp_conn_publish(struct amqp_conn *c, const struct amqp_pub *p);

void amqp_conn_stats(const struct amqp_conn *c, struct amqp_conn_stats *out);

#endif
