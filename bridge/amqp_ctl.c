/*
 * amqp_ctl.c - one confirmed publish with rabbitmq-c's blocking API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "amqp_ctl.h"
#include "amqp_msg.h"
#include "clock.h"

static struct timeval
tv_ms(long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	return tv;
}

/* Fills err from a failed RPC reply; returns -1. */
static int
rpc_err(amqp_rpc_reply_t r, const char *what, char *err, size_t errlen)
{
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		snprintf(err, errlen, "%s: %s", what,
		    amqp_error_string2(r.library_error));
	} else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
		   r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_t *m = r.reply.decoded;

		snprintf(err, errlen, "%s: %.*s", what, (int)m->reply_text.len,
		    (const char *)m->reply_text.bytes);
	} else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
		   r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *m = r.reply.decoded;

		snprintf(err, errlen, "%s: %.*s", what, (int)m->reply_text.len,
		    (const char *)m->reply_text.bytes);
	} else {
		snprintf(err, errlen, "%s: unexpected reply", what);
	}
	return -1;
}

/* After the publish: basic.return (unroutable) comes before the ack. */
static int
wait_confirm(
    amqp_connection_state_t conn, int timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	int routed = 1;

	for (;;) {
		uint64_t now = clock_mono_ms();
		struct timeval tv;
		amqp_frame_t f;
		int rc;

		if (now >= deadline) {
			snprintf(err, errlen,
			    "publish: no confirm within %d ms", timeout_ms);
			return -1;
		}
		tv = tv_ms((long)(deadline - now));
		rc = amqp_simple_wait_frame_noblock(conn, &f, &tv);
		if (rc != AMQP_STATUS_OK) {
			snprintf(
			    err, errlen, "publish: %s", amqp_error_string2(rc));
			return -1;
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue; /* the returned message's content */
		switch (f.payload.method.id) {
		case AMQP_BASIC_RETURN_METHOD:
			routed = 0;
			break;
		case AMQP_BASIC_ACK_METHOD:
			return routed;
		case AMQP_BASIC_NACK_METHOD:
			snprintf(err, errlen, "publish: nacked by the broker");
			return -1;
		case AMQP_CHANNEL_CLOSE_METHOD:
		case AMQP_CONNECTION_CLOSE_METHOD: {
			amqp_channel_close_t *m = f.payload.method.decoded;

			snprintf(err, errlen, "publish: %.*s",
			    (int)m->reply_text.len,
			    (const char *)m->reply_text.bytes);
			return -1;
		}
		default:
			break;
		}
	}
}

int
amqp_ctl_publish(const struct conf *c, const char *addr, size_t addr_len,
    const void *body, size_t len, int timeout_ms, char *err, size_t errlen)
{
	struct amqp_connection_info ci;
	struct timeval tv = tv_ms(timeout_ms);
	amqp_connection_state_t conn = NULL;
	amqp_socket_t *sock;
	amqp_rpc_reply_t r;
	amqp_basic_properties_t props = {0};
	amqp_table_entry_t h;
	bool broadcast = c->routing == CONF_ROUTING_BROADCAST;
	char *url = strdup(c->amqp_url);
	int rc = -1, st;

	if (url == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	amqp_default_connection_info(&ci);
	if (amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
		snprintf(err, errlen, "amqp.url: cannot parse");
		goto out;
	}
	conn = amqp_new_connection();
	sock = conn != NULL ? amqp_tcp_socket_new(conn) : NULL;
	if (sock == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	st = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
	if (st != AMQP_STATUS_OK) {
		snprintf(err, errlen, "connect %s:%d: %s", ci.host, ci.port,
		    amqp_error_string2(st));
		goto out;
	}
	(void)amqp_set_handshake_timeout(conn, &tv);
	(void)amqp_set_rpc_timeout(conn, &tv);
	r = amqp_login(conn, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
	    ci.user, ci.password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		rc = rpc_err(r, "login", err, errlen);
		goto out;
	}
	amqp_channel_open(conn, 1);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		rc = rpc_err(r, "channel.open", err, errlen);
		goto out;
	}
	amqp_confirm_select(conn, 1);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		rc = rpc_err(r, "confirm.select", err, errlen);
		goto out;
	}
	if (addr_len > 255) {
		/* Longer than a routing key can be: only the fanout exchange
		 * with a wspush-to header carries it. */
		if (c->amqp_fanout_exchange[0] == '\0') {
			snprintf(err, errlen,
			    "the address is longer than an AMQP routing key "
			    "(255 bytes) and amqp.fanout_exchange is not set");
			goto out;
		}
		broadcast = true;
	}
	if (broadcast && !(addr_len == 3 && memcmp(addr, "all", 3) == 0)) {
		h.key = amqp_cstring_bytes(AMQP_MSG_TO_HEADER);
		h.value.kind = AMQP_FIELD_KIND_UTF8;
		h.value.value.bytes.bytes = (void *)(uintptr_t)addr;
		h.value.value.bytes.len = addr_len;
		props._flags = AMQP_BASIC_HEADERS_FLAG;
		props.headers.num_entries = 1;
		props.headers.entries = &h;
	}
	st = amqp_basic_publish(conn, 1,
	    amqp_cstring_bytes(
		broadcast ? c->amqp_fanout_exchange : c->amqp_exchange),
	    broadcast ? amqp_empty_bytes
		      : (amqp_bytes_t){addr_len, (void *)(uintptr_t)addr},
	    1, 0, &props, (amqp_bytes_t){len, (void *)(uintptr_t)body});
	if (st != AMQP_STATUS_OK) {
		snprintf(err, errlen, "publish: %s", amqp_error_string2(st));
		goto out;
	}
	rc = wait_confirm(conn, timeout_ms, err, errlen);
	if (rc >= 0)
		(void)amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
out:
	if (conn != NULL)
		amqp_destroy_connection(conn);
	free(url);
	return rc;
}
