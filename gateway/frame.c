/*
 * frame.c - refcounted frames with LWS_PRE headroom (see frame.h).
 */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "envelope.h"
#include "payload.h"

/* A frame wasting more than this after building is trimmed. */
#define FRAME_TRIM_SLACK 4096

struct frame *
frame_new(size_t cap, bool binary)
{
	struct frame *f;

	if (cap > UINT32_MAX - LWS_PRE)
		return NULL;
	f = malloc(sizeof(*f) + LWS_PRE + cap);
	if (f == NULL)
		return NULL;
	f->refs = 1;
	f->len = 0;
	f->cap = (uint32_t)cap;
	f->binary = binary;
	return f;
}

struct frame *
frame_new_copy(const void *p, size_t len, bool binary)
{
	struct frame *f = frame_new(len, binary);

	if (f == NULL)
		return NULL;
	if (len > 0)
		memcpy(frame_data(f), p, len);
	f->len = (uint32_t)len;
	return f;
}

void
frame_unref(struct frame *f)
{
	if (f == NULL)
		return;
	if (--f->refs == 0)
		free(f);
}

static char *
put(char *p, const char *s, size_t len)
{
	memcpy(p, s, len);
	return p + len;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static bool
str_present(const struct env_str *s)
{
	return s->p != NULL && utf8_valid(s->p, s->len);
}

struct frame *
frame_build_msg(const struct bus_msg *m, bool raw)
{
	bool has_from = str_present(&m->from), has_id = str_present(&m->id);
	size_t need, dlen = m->data.len;
	enum payload_class cls = m->cls;
	struct frame *f, *t;
	char *start, *p;

	if (raw)
		return frame_new_copy(m->data.p, dlen, cls == PAYLOAD_BINARY);
	if (cls == PAYLOAD_JSON && dlen == 0)
		cls = PAYLOAD_TEXT; /* nothing to embed: send "" */

	/* Overflow is impossible: every length is a uint32_t. */
	need = sizeof("{\"op\":\"msg\",\"to\":") + json_escaped_max(m->to.len) +
	       sizeof(",\"data_b64\":") + 2 + 1;
	if (has_from)
		need += sizeof(",\"from\":") + json_escaped_max(m->from.len);
	if (has_id)
		need += sizeof(",\"id\":") + json_escaped_max(m->id.len);
	switch (cls) {
	case PAYLOAD_JSON:
		need += dlen;
		break;
	case PAYLOAD_TEXT:
		need += json_escaped_max(dlen);
		break;
	default:
		need += base64_len(dlen);
		break;
	}

	f = frame_new(need, false);
	if (f == NULL)
		return NULL;
	start = p = (char *)frame_data(f);
	p = PUT_LIT(p, "{\"op\":\"msg\",\"to\":");
	p += json_escape_str(p, m->to.p, m->to.len);
	if (has_from) {
		p = PUT_LIT(p, ",\"from\":");
		p += json_escape_str(p, m->from.p, m->from.len);
	}
	if (has_id) {
		p = PUT_LIT(p, ",\"id\":");
		p += json_escape_str(p, m->id.p, m->id.len);
	}
	switch (cls) {
	case PAYLOAD_JSON:
		p = PUT_LIT(p, ",\"data\":");
		if (dlen > 0)
			p = put(p, m->data.p, dlen);
		break;
	case PAYLOAD_TEXT:
		p = PUT_LIT(p, ",\"data\":");
		p += json_escape_str(p, m->data.p, dlen);
		break;
	default:
		p = PUT_LIT(p, ",\"data_b64\":\"");
		p += base64_encode(p, m->data.p, dlen);
		*p++ = '"';
		break;
	}
	*p++ = '}';
	f->len = (uint32_t)(p - start);
	if (f->cap - f->len > FRAME_TRIM_SLACK) {
		/* Text is sized for the worst escaping; give back the rest, as
		 * the frame may sit in many queues for a while. */
		t = realloc(f, sizeof(*f) + LWS_PRE + f->len);
		if (t != NULL) {
			f = t;
			f->cap = f->len;
		}
	}
	return f;
}
