/*
 * fuzz_clientmsg.c - libFuzzer target for the client message parser (the
 * JSON text frames clients send). Any bytes: no crash, no leak; a message
 * that parses has the fields its op promises, and the reply frames built
 * from it (error and control replies echo the client's ref) are valid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "clientmsg.h"
#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* publish and send forward the client's data as compact JSON text. */
static void
check_data_text(const struct cmsg *m)
{
	size_t len;
	char *text;

	if (m->data == NULL || (text = cmsg_data_text(m, &len)) == NULL)
		abort();
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmsg m;
	const char *msg = NULL;
	enum cmsg_err err;
	struct frame *f;

	err = cmsg_parse((const char *)data, size, &m, &msg);
	if (err != CMSG_OK) {
		/* The error reply must build for every rejection. */
		f = cmsg_error_frame(err, msg != NULL ? msg : "", m.ref);
		if (f == NULL)
			abort();
		frame_unref(f);
		cmsg_fini(&m); /* owed on every path, errors included */
		return 0;
	}
	switch (m.op) {
	case CMSG_SUBSCRIBE:
	case CMSG_UNSUBSCRIBE:
		if (m.channel == NULL ||
		    !addr_id_valid(m.channel, m.channel_len))
			abort();
		f = cmsg_reply_frame(
		    "subscribed", m.channel, m.channel_len, m.ref);
		if (f == NULL)
			abort();
		frame_unref(f);
		break;
	case CMSG_PUBLISH:
		if (m.to_text == NULL)
			abort();
		check_data_text(&m);
		break;
	case CMSG_SEND:
		check_data_text(&m);
		break;
	case CMSG_AUTH:
		if (m.token == NULL)
			abort();
		break;
	case CMSG_PING:
		break;
	case CMSG_HISTORY:
		/* A valid address and a limit of 1..2^32-1 (50 when absent). */
		if (m.to_text == NULL || m.limit == 0 ||
		    addr_parse(m.to_text, m.to_len, &m.to) != 0)
			abort();
		break;
	}
	/* since, when given, is a stream id. */
	if (m.since != NULL) {
		struct env_sid sid;

		if ((m.op != CMSG_SUBSCRIBE && m.op != CMSG_AUTH) ||
		    env_sid_parse(m.since, m.since_len, &sid) != 0)
			abort();
	}
	cmsg_fini(&m);
	return 0;
}
