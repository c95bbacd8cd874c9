/*
 * clientmsg.c - strict parsing of client messages and JSON control replies
 * (see clientmsg.h). Runs once per client message; the fan-out path never
 * comes here.
 */
#include "clientmsg.h"
#include "envelope.h"
#include "payload.h"

#include <stdlib.h>
#include <string.h>

#define FALLTHROUGH __attribute__((fallthrough))

static const char *const cmsg_err_names[] = {
    [CMSG_OK] = "ok",
    [CMSG_E_BAD_REQUEST] = "bad_request",
    [CMSG_E_UNKNOWN_OP] = "unknown_op",
    [CMSG_E_FORBIDDEN] = "forbidden",
    [CMSG_E_INVALID_CHANNEL] = "invalid_channel",
    [CMSG_E_TOO_MANY_SUBSCRIPTIONS] = "too_many_subscriptions",
    [CMSG_E_NOT_SUBSCRIBED] = "not_subscribed",
    [CMSG_E_RATE_LIMITED] = "rate_limited",
    [CMSG_E_TOO_LARGE] = "too_large",
    [CMSG_E_UNAVAILABLE] = "unavailable",
    [CMSG_E_INTERNAL] = "internal",
};

static const struct {
	const char *name;
	enum cmsg_op op;
} cmsg_ops[] = {
    {"auth", CMSG_AUTH},
    {"subscribe", CMSG_SUBSCRIBE},
    {"unsubscribe", CMSG_UNSUBSCRIBE},
    {"publish", CMSG_PUBLISH},
    {"send", CMSG_SEND},
    {"ping", CMSG_PING},
    {"history", CMSG_HISTORY},
};

const char *
cmsg_err_str(enum cmsg_err e)
{
	if ((size_t)e >= sizeof(cmsg_err_names) / sizeof(cmsg_err_names[0]))
		return "internal";
	return cmsg_err_names[e];
}

const char *
cmsg_op_str(enum cmsg_op op)
{
	size_t i;

	for (i = 0; i < sizeof(cmsg_ops) / sizeof(cmsg_ops[0]); i++)
		if (cmsg_ops[i].op == op)
			return cmsg_ops[i].name;
	return "?";
}

/* A required string member; returns 0 with *s and *len set, or -1. */
static int
cmsg_get_string(json_t *root, const char *key, const char **s, size_t *len)
{
	json_t *v = json_object_get(root, key);

	if (v == NULL || !json_is_string(v))
		return -1;
	*s = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

/* The optional "since" member: absent, or a message id (stream id). */
static enum cmsg_err
cmsg_get_since(struct cmsg *m, const char **msg)
{
	struct env_sid sid;

	if (json_object_get(m->root, "since") == NULL)
		return CMSG_OK;
	if (cmsg_get_string(m->root, "since", &m->since, &m->since_len) ||
	    env_sid_parse(m->since, m->since_len, &sid) != 0) {
		m->since = NULL;
		*msg = "since must be a message id";
		return CMSG_E_BAD_REQUEST;
	}
	return CMSG_OK;
}

/* The fields m->op needs, checked; CMSG_OK or an error with *msg set. */
static enum cmsg_err
cmsg_parse_fields(struct cmsg *m, const char **msg)
{
	switch (m->op) {
	case CMSG_AUTH:
		if (cmsg_get_string(
			m->root, "token", &m->token, &m->token_len)) {
			*msg = "token must be a string";
			return CMSG_E_BAD_REQUEST;
		}
		if (cmsg_get_since(m, msg) != CMSG_OK)
			return CMSG_E_BAD_REQUEST;
		break;
	case CMSG_SUBSCRIBE:
	case CMSG_UNSUBSCRIBE:
		if (cmsg_get_string(
			m->root, "channel", &m->channel, &m->channel_len)) {
			*msg = "channel must be a string";
			return CMSG_E_BAD_REQUEST;
		}
		if (!addr_id_valid(m->channel, m->channel_len)) {
			*msg = "invalid channel name";
			return CMSG_E_INVALID_CHANNEL;
		}
		if (m->op == CMSG_SUBSCRIBE &&
		    cmsg_get_since(m, msg) != CMSG_OK)
			return CMSG_E_BAD_REQUEST;
		break;
	case CMSG_PUBLISH:
		if (cmsg_get_string(m->root, "to", &m->to_text, &m->to_len)) {
			*msg = "to must be a string";
			return CMSG_E_BAD_REQUEST;
		}
		if (addr_parse(m->to_text, m->to_len, &m->to) == -1) {
			*msg = "to must be user:<id>, channel:<name> or all";
			return CMSG_E_BAD_REQUEST;
		}
		FALLTHROUGH;
	case CMSG_SEND:
		m->data = json_object_get(m->root, "data");
		if (m->data == NULL) {
			*msg = "data is missing";
			return CMSG_E_BAD_REQUEST;
		}
		break;
	case CMSG_PING:
		break;
	case CMSG_HISTORY: {
		json_t *l = json_object_get(m->root, "limit");

		if (cmsg_get_string(m->root, "to", &m->to_text, &m->to_len) ||
		    addr_parse(m->to_text, m->to_len, &m->to) == -1) {
			*msg = "to must be user:<id>, channel:<name> or all";
			return CMSG_E_BAD_REQUEST;
		}
		m->limit = CMSG_HISTORY_LIMIT;
		if (l != NULL) {
			if (!json_is_integer(l) || json_integer_value(l) < 1 ||
			    json_integer_value(l) > UINT32_MAX) {
				*msg = "limit must be a positive integer";
				return CMSG_E_BAD_REQUEST;
			}
			m->limit = (uint32_t)json_integer_value(l);
		}
		break;
	}
	}
	*msg = NULL;
	return CMSG_OK;
}

enum cmsg_err
cmsg_parse(const char *text, size_t len, struct cmsg *m, const char **msg)
{
	json_error_t jerr;
	json_t *op, *ref;
	const char *opname;
	size_t i;

	memset(m, 0, sizeof(*m));
	/* JSON_ALLOW_NUL is not given: "\u0000" in a string is rejected. */
	m->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (m->root == NULL) {
		*msg = "malformed JSON";
		return CMSG_E_BAD_REQUEST;
	}
	if (!json_is_object(m->root)) {
		*msg = "expected a JSON object";
		return CMSG_E_BAD_REQUEST;
	}
	ref = json_object_get(m->root, "ref");
	if (ref != NULL) {
		if (json_is_object(ref) || json_is_array(ref)) {
			*msg = "ref must be a string, number, boolean or null";
			return CMSG_E_BAD_REQUEST;
		}
		m->ref = ref;
	}
	op = json_object_get(m->root, "op");
	if (op == NULL || !json_is_string(op)) {
		*msg = "op must be a string";
		return CMSG_E_BAD_REQUEST;
	}
	opname = json_string_value(op);
	for (i = 0; i < sizeof(cmsg_ops) / sizeof(cmsg_ops[0]); i++)
		if (strcmp(opname, cmsg_ops[i].name) == 0)
			break;
	if (i == sizeof(cmsg_ops) / sizeof(cmsg_ops[0]) ||
	    strlen(opname) != json_string_length(op)) {
		*msg = "unknown op";
		return CMSG_E_UNKNOWN_OP;
	}
	m->op = cmsg_ops[i].op;
	return cmsg_parse_fields(m, msg);
}

void
cmsg_fini(struct cmsg *m)
{
	json_decref(m->root);
	memset(m, 0, sizeof(*m));
}

char *
cmsg_data_text(const struct cmsg *m, size_t *len)
{
	char *s;

	if (m->data == NULL)
		return NULL;
	s = json_dumps(m->data, JSON_COMPACT | JSON_ENCODE_ANY);
	if (s == NULL)
		return NULL;
	*len = strlen(s);
	return s;
}

/* Serialises obj (consumed) into a new text frame. */
static struct frame *
cmsg_frame_from_json(json_t *obj)
{
	struct frame *f = NULL;
	size_t n;

	if (obj == NULL)
		return NULL;
	n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	if (n > 0 && (f = frame_new(n, false)) != NULL) {
		f->len = (uint32_t)json_dumpb(
		    obj, (char *)frame_data(f), n, JSON_COMPACT);
		if (f->len != n) {
			frame_unref(f);
			f = NULL;
		}
	}
	json_decref(obj);
	return f;
}

/* Adds "ref" (a copy of ref) to obj; returns -1 on allocation failure. */
static int
cmsg_add_ref(json_t *obj, const json_t *ref)
{
	if (ref == NULL)
		return 0;
	return json_object_set_new(obj, "ref", json_deep_copy(ref));
}

struct frame *
cmsg_error_frame(enum cmsg_err code, const char *msg, const json_t *ref)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "op", json_string("error")) == -1 ||
	    json_object_set_new(o, "code", json_string(cmsg_err_str(code))) ==
		-1 ||
	    (msg != NULL &&
		json_object_set_new(o, "msg", json_string(msg)) == -1) ||
	    cmsg_add_ref(o, ref) == -1) {
		json_decref(o);
		return NULL;
	}
	return cmsg_frame_from_json(o);
}

struct frame *
cmsg_reply_frame(
    const char *op, const char *channel, size_t channel_len, const json_t *ref)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "op", json_string(op)) == -1 ||
	    (channel != NULL &&
		json_object_set_new(
		    o, "channel", json_stringn(channel, channel_len)) == -1) ||
	    cmsg_add_ref(o, ref) == -1) {
		json_decref(o);
		return NULL;
	}
	return cmsg_frame_from_json(o);
}

struct frame *
cmsg_subscribed_frame(
    const char *channel, size_t channel_len, const json_t *ref, int recovered)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "op", json_string("subscribed")) == -1 ||
	    json_object_set_new(
		o, "channel", json_stringn(channel, channel_len)) == -1 ||
	    cmsg_add_ref(o, ref) == -1 ||
	    (recovered >= 0 && json_object_set_new(o, "recovered",
				   json_boolean(recovered)) == -1)) {
		json_decref(o);
		return NULL;
	}
	return cmsg_frame_from_json(o);
}

json_t *
cmsg_history_entry(const struct bus_range_entry *x)
{
	json_t *o = json_object(), *d = NULL;
	const char *key = "data";

	if (o == NULL)
		return NULL;
	switch (x->cls) {
	case PAYLOAD_JSON:
		d = json_loadb(x->data.p, x->data.len, JSON_DECODE_ANY, NULL);
		break;
	case PAYLOAD_TEXT:
		d = json_stringn(x->data.p, x->data.len);
		break;
	case PAYLOAD_BINARY: {
		char *b = malloc(base64_len(x->data.len) + 1);

		if (b != NULL) {
			d = json_stringn(
			    b, base64_encode(b, x->data.p, x->data.len));
			free(b);
		}
		key = "data_b64";
		break;
	}
	}
	if (d == NULL ||
	    json_object_set_new(o, "id", json_stringn(x->id.p, x->id.len)) ==
		-1 ||
	    json_object_set_new(o, key, d) == -1 ||
	    (x->from.p != NULL &&
		json_object_set_new(
		    o, "from", json_stringn(x->from.p, x->from.len)) == -1)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

struct frame *
cmsg_history_frame(
    const char *to, size_t to_len, const json_t *ref, json_t *messages)
{
	json_t *o = json_object();

	if (o == NULL) {
		json_decref(messages);
		return NULL;
	}
	if (json_object_set_new(o, "op", json_string("history")) == -1 ||
	    json_object_set_new(o, "to", json_stringn(to, to_len)) == -1 ||
	    cmsg_add_ref(o, ref) == -1 ||
	    json_object_set_new(o, "messages", messages) == -1) {
		json_decref(o);
		return NULL;
	}
	return cmsg_frame_from_json(o);
}

struct frame *
cmsg_welcome_recovered_frame(const char *user, const char *node,
    uint32_t worker, const char *conn, int recovered)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	if (json_object_set_new(o, "op", json_string("welcome")) == -1 ||
	    json_object_set_new(o, "user", json_string(user)) == -1 ||
	    json_object_set_new(o, "node", json_string(node)) == -1 ||
	    json_object_set_new(o, "worker", json_integer(worker)) == -1 ||
	    json_object_set_new(o, "conn", json_string(conn)) == -1 ||
	    (recovered >= 0 && json_object_set_new(o, "recovered",
				   json_boolean(recovered)) == -1)) {
		json_decref(o);
		return NULL;
	}
	return cmsg_frame_from_json(o);
}

struct frame *
cmsg_welcome_frame(
    const char *user, const char *node, uint32_t worker, const char *conn)
{
	return cmsg_welcome_recovered_frame(user, node, worker, conn, -1);
}
