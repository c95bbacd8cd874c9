/*
 * amqp_msg.c - routing key / wspush-to header -> address.
 */
#include <string.h>

#include "addr.h"
#include "amqp_msg.h"

enum amqp_msg_hdr
amqp_msg_header(const amqp_table_t *t, const char *name, amqp_bytes_t *out)
{
	size_t n = strlen(name);

	if (t == NULL)
		return AMQP_MSG_HDR_ABSENT;
	for (int i = 0; i < t->num_entries; i++) {
		const amqp_table_entry_t *e = &t->entries[i];

		if (e->key.len != n || memcmp(e->key.bytes, name, n) != 0)
			continue;
		/* Publishers differ: pika sends str as a long string ('S'),
		 * some clients send bytes ('x'). Both carry text. */
		if (e->value.kind == AMQP_FIELD_KIND_UTF8 ||
		    e->value.kind == AMQP_FIELD_KIND_BYTES) {
			*out = e->value.value.bytes;
			return AMQP_MSG_HDR_STRING;
		}
		return AMQP_MSG_HDR_BAD;
	}
	return AMQP_MSG_HDR_ABSENT;
}

static bool
valid(amqp_bytes_t b)
{
	struct addr a;

	return b.len > 0 && addr_parse(b.bytes, b.len, &a) == 0;
}

enum amqp_msg_why
amqp_msg_address(bool from_fanout, enum amqp_msg_hdr hdr, amqp_bytes_t hval,
    amqp_bytes_t key, const char **p, size_t *len)
{
	if (from_fanout) {
		if (hdr == AMQP_MSG_HDR_ABSENT) {
			*p = "all";
			*len = 3;
			return AMQP_MSG_OK;
		}
		if (hdr == AMQP_MSG_HDR_BAD || !valid(hval))
			return AMQP_MSG_BAD_HEADER;
		*p = hval.bytes;
		*len = hval.len;
		return AMQP_MSG_OK;
	}
	if (!valid(key))
		return AMQP_MSG_BAD_KEY;
	*p = key.bytes;
	*len = key.len;
	return AMQP_MSG_OK;
}
