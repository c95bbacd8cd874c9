/*
 * history.c - command arguments for the wspush function library and the
 * parsing of its replies (see history.h). No I/O, no globals but the
 * embedded library text.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "history.h"
#include "keys.h"
#include "payload.h"

static const char conf_start[] = "local CONF = ";
static const char conf_end[] = " -- CONF";

void
history_conf_from(struct history_conf *h, const struct conf *c)
{
	h->version = HISTORY_LIB_VERSION;
	h->size = c->history_size;
	h->ttl_s = c->history_ttl_s;
	h->user_size =
	    c->history_user_size != 0 ? c->history_user_size : c->history_size;
	h->user_ttl_s = c->history_user_ttl_s;
	h->sharded = c->redis_cluster;
}

int
history_conf_str(const struct history_conf *h, char *buf, size_t len)
{
	int n = snprintf(buf, len,
	    "v=%u size=%u ttl_s=%u user_size=%u user_ttl_s=%u sharded=%d",
	    h->version, h->size, h->ttl_s, h->user_size, h->user_ttl_s,
	    h->sharded ? 1 : 0);

	return n < 0 || (size_t)n >= len ? -1 : n;
}

/* Finds the CONF line: [*start, *end) is "local CONF = ... -- CONF". */
static int
find_conf_line(const char *text, size_t len, size_t *start, size_t *end)
{
	size_t ls = 0;

	while (ls < len) {
		const char *nl = memchr(text + ls, '\n', len - ls);
		size_t le = nl != NULL ? (size_t)(nl - text) : len;
		size_t sl = sizeof(conf_start) - 1, el = sizeof(conf_end) - 1;

		if (le - ls >= sl + el &&
		    memcmp(text + ls, conf_start, sl) == 0 &&
		    memcmp(text + le - el, conf_end, el) == 0) {
			*start = ls;
			*end = le;
			return 0;
		}
		ls = le + 1;
	}
	return -1;
}

char *
history_library(const struct history_conf *h, size_t *len)
{
	char line[256];
	size_t start, end, total;
	char *out;
	int n;

	if (find_conf_line(history_lua, history_lua_len, &start, &end) != 0)
		return NULL;
	/* The same line the integration test writes (keep in step). */
	n = snprintf(line, sizeof(line),
	    "local CONF = {version = %u, size = %u, ttl_s = %u, user_size = "
	    "%u, user_ttl_s = %u, sharded = %s} -- CONF",
	    h->version, h->size, h->ttl_s, h->user_size, h->user_ttl_s,
	    h->sharded ? "true" : "false");
	if (n < 0 || (size_t)n >= sizeof(line))
		return NULL;
	total = start + (size_t)n + (history_lua_len - end);
	out = malloc(total + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, history_lua, start);
	memcpy(out + start, line, (size_t)n);
	memcpy(
	    out + start + (size_t)n, history_lua + end, history_lua_len - end);
	out[total] = '\0';
	*len = total;
	return out;
}

static void
arg(struct history_argv *a, const void *p, size_t len)
{
	a->argv[a->argc] = p;
	a->lens[a->argc] = len;
	a->argc++;
}

#define ARG(a, lit) arg((a), (lit), sizeof(lit) - 1)

void
history_load_argv(struct history_argv *a, const char *text, size_t text_len)
{
	a->argc = 0;
	ARG(a, "FUNCTION");
	ARG(a, "LOAD");
	ARG(a, "REPLACE");
	arg(a, text, text_len);
}

void
history_config_argv(struct history_argv *a)
{
	a->argc = 0;
	ARG(a, "FCALL_RO");
	ARG(a, "wspush_config");
	ARG(a, "0");
}

void
history_publish_argv(struct history_argv *a, const char *key, size_t key_len,
    const void *payload, size_t payload_len, const char *from, size_t from_len,
    bool json)
{
	a->argc = 0;
	ARG(a, "FCALL");
	ARG(a, "wspush_publish");
	ARG(a, "1");
	arg(a, key, key_len);
	arg(a, payload, payload_len);
	if (from != NULL || json) {
		if (from != NULL)
			arg(a, from, from_len);
		else
			ARG(a, "");
	}
	if (json)
		ARG(a, "json");
}

static void __attribute__((format(printf, 3, 4)))
say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* At most 200 bytes of a Redis error in a log line. */
#define CUT(len) (int)((len) > 200 ? 200 : (len))

enum history_load
history_load_parse(const redisReply *r, char *why, size_t whylen)
{
	if (whylen > 0)
		why[0] = '\0';
	if (r == NULL) {
		say(why, whylen, "the command link was lost");
		return HISTORY_LOAD_LOST;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		/* Redis before 7.0: "ERR unknown command 'FUNCTION', ..." */
		if (r->len >= 19 &&
		    strncasecmp(r->str, "ERR unknown command", 19) == 0) {
			say(why, whylen,
			    "Redis 7.0 or newer is needed for history "
			    "(FUNCTION LOAD: %.*s)",
			    CUT(r->len), r->str);
			return HISTORY_LOAD_OLD_REDIS;
		}
		say(why, whylen,
		    "FUNCTION LOAD of the wspush library refused: %.*s",
		    CUT(r->len), r->str);
		return HISTORY_LOAD_REFUSED;
	}
	if ((r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
	    r->len == 6 && memcmp(r->str, "wspush", 6) == 0)
		return HISTORY_LOAD_OK;
	say(why, whylen,
	    "FUNCTION LOAD answered something else than the library name");
	return HISTORY_LOAD_REFUSED;
}

static bool
reply_u32(const redisReply *r, uint32_t *v)
{
	if (r->type != REDIS_REPLY_INTEGER || r->integer < 0 ||
	    r->integer > UINT32_MAX)
		return false;
	*v = (uint32_t)r->integer;
	return true;
}

enum history_loaded
history_config_parse(const redisReply *r, const struct history_conf *mine,
    struct history_conf *loaded)
{
	struct history_conf h;
	uint32_t sharded;

	if (r == NULL)
		return HISTORY_LOADED_ERROR;
	if (r->type == REDIS_REPLY_ERROR) {
		/* "ERR Function not found" (7.0); Redis < 7.0 says unknown
		 * command, which FUNCTION LOAD will report. */
		if (strstr(r->str, "not found") != NULL ||
		    strstr(r->str, "unknown command") != NULL)
			return HISTORY_LOADED_NONE;
		return HISTORY_LOADED_ERROR;
	}
	/* A newer library may append values: read the ones we know. */
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 6 ||
	    !reply_u32(r->element[0], &h.version) ||
	    !reply_u32(r->element[1], &h.size) ||
	    !reply_u32(r->element[2], &h.ttl_s) ||
	    !reply_u32(r->element[3], &h.user_size) ||
	    !reply_u32(r->element[4], &h.user_ttl_s) ||
	    !reply_u32(r->element[5], &sharded) || sharded > 1)
		return HISTORY_LOADED_ERROR;
	h.sharded = sharded == 1;
	*loaded = h;
	return h.version == mine->version && h.size == mine->size &&
		       h.ttl_s == mine->ttl_s &&
		       h.user_size == mine->user_size &&
		       h.user_ttl_s == mine->user_ttl_s &&
		       h.sharded == mine->sharded
		   ? HISTORY_LOADED_SAME
		   : HISTORY_LOADED_OTHER;
}

struct env_str
history_publish_id(const redisReply *r)
{
	struct env_sid sid;

	if (r == NULL || r->type != REDIS_REPLY_STRING ||
	    env_sid_parse(r->str, r->len, &sid) != 0)
		return (struct env_str){NULL, 0};
	return (struct env_str){r->str, (uint32_t)r->len};
}

int
history_range_argv(struct history_argv *a, const char *key, size_t key_len,
    const char *since, size_t since_len, uint32_t limit)
{
	struct env_sid sid;
	/* One more than asked after since, to see that more follow. */
	uint64_t count = (uint64_t)limit + (since != NULL ? 1 : 0);

	if (limit == 0 ||
	    (since != NULL && env_sid_parse(since, since_len, &sid) != 0))
		return -1;
	a->argc = 0;
	ARG(a, "FCALL_RO");
	ARG(a, "wspush_range");
	ARG(a, "1");
	arg(a, key, key_len);
	if (since != NULL)
		arg(a, since, since_len);
	else
		ARG(a, "");
	snprintf(a->num, sizeof(a->num), "%llu", (unsigned long long)count);
	arg(a, a->num, strlen(a->num));
	return 0;
}

static bool
reply_str(const redisReply *r, struct env_str *s)
{
	if (r->type != REDIS_REPLY_STRING || r->len > UINT32_MAX)
		return false;
	s->p = r->len != 0 ? r->str : "";
	s->len = (uint32_t)r->len;
	return true;
}

static bool
reply_u64(const redisReply *r, uint64_t *v)
{
	if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
		return false;
	*v = (uint64_t)r->integer;
	return true;
}

static bool
field_is(const struct env_str *k, const char *name)
{
	size_t n = strlen(name);

	return k->len == n && memcmp(k->p, name, n) == 0;
}

/* One XRANGE entry [id, [field, value, ...]]: false if malformed; *has_data
 * false for an entry without a data field (written by someone else). */
static bool
parse_entry(const redisReply *r, struct history_entry *e, bool *has_data)
{
	const redisReply *f;
	struct env_sid sid;

	*has_data = false;
	memset(e, 0, sizeof(*e));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    !reply_str(r->element[0], &e->id) ||
	    env_sid_parse(e->id.p, e->id.len, &sid) != 0)
		return false;
	f = r->element[1];
	if (f->type != REDIS_REPLY_ARRAY || f->elements % 2 != 0)
		return false;
	for (size_t i = 0; i < f->elements; i += 2) {
		struct env_str k, v;

		if (!reply_str(f->element[i], &k) ||
		    !reply_str(f->element[i + 1], &v))
			return false;
		/* Unknown fields are ignored; a known one twice keeps the
		 * first (XADD writes them in order). */
		if (field_is(&k, "data") && !*has_data) {
			e->data = v;
			*has_data = true;
		} else if (field_is(&k, "from") && e->from.p == NULL) {
			e->from = v;
		} else if (field_is(&k, "json")) {
			e->json = v.len == 1 && v.p[0] == '1';
		}
	}
	/* A from that a frame could not carry is left out, not the entry. */
	if (e->from.p != NULL && (e->from.len == 0 || e->from.len > ENV_ID_MAX))
		e->from = (struct env_str){NULL, 0};
	return true;
}

static int
range_fail(int rc, char *why, size_t whylen, const char *s, size_t len)
{
	say(why, whylen, "%.*s", CUT(len), s);
	return rc;
}

#define FAIL(rc, lit) range_fail((rc), why, whylen, (lit), sizeof(lit) - 1)

int
history_range_parse(const redisReply *r, const char *since, size_t since_len,
    uint32_t limit, struct history_range *out, char *why, size_t whylen)
{
	struct history_range h;
	const redisReply *ents;
	struct env_sid want, first;
	bool from_start;

	memset(out, 0, sizeof(*out));
	if (whylen > 0)
		why[0] = '\0';
	if (r == NULL)
		return FAIL(HISTORY_RANGE_LOST, "the command link was lost");
	if (r->type == REDIS_REPLY_ERROR)
		return range_fail(
		    HISTORY_RANGE_ERROR, why, whylen, r->str, r->len);
	memset(&h, 0, sizeof(h));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 5 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    (r->element[0]->integer != 0 && r->element[0]->integer != 1) ||
	    !reply_str(r->element[1], &h.first_id) ||
	    !reply_u64(r->element[2], &h.length) ||
	    !reply_u64(r->element[3], &h.added) ||
	    r->element[4]->type != REDIS_REPLY_ARRAY)
		return FAIL(HISTORY_RANGE_MALFORMED,
		    "wspush_range answered an unexpected shape");
	h.exists = r->element[0]->integer == 1;
	if (h.first_id.len == 0)
		h.first_id = (struct env_str){NULL, 0};
	else if (env_sid_parse(h.first_id.p, h.first_id.len, &first) != 0)
		return FAIL(HISTORY_RANGE_MALFORMED,
		    "wspush_range answered a first id that is no stream id");
	from_start = since == NULL || (since_len == 1 && since[0] == '0');
	if (!from_start && env_sid_parse(since, since_len, &want) != 0)
		return FAIL(
		    HISTORY_RANGE_MALFORMED, "since is not a stream id");
	ents = r->element[4];
	if (ents->elements > (size_t)limit + 1)
		return FAIL(HISTORY_RANGE_MALFORMED,
		    "wspush_range answered more entries than asked");
	if (ents->elements > 0) {
		h.entries = calloc(ents->elements, sizeof(*h.entries));
		if (h.entries == NULL)
			return FAIL(HISTORY_RANGE_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < ents->elements; i++) {
		bool has_data;

		if (!parse_entry(
			ents->element[i], &h.entries[h.n], &has_data)) {
			free(h.entries);
			return FAIL(HISTORY_RANGE_MALFORMED,
			    "wspush_range answered a malformed entry");
		}
		if (!has_data)
			h.skipped++;
		else
			h.n++;
	}
	/* Asked for limit + 1 after since: the last one only says "more".
	 * Only whole entries count (a skipped one still was one). */
	if (since != NULL && ents->elements == (size_t)limit + 1) {
		h.more = true;
		if (h.n > limit)
			h.n = limit;
	}
	if (!h.exists)
		h.recovered = false;
	else if (from_start)
		h.recovered = h.added == h.length && !h.more &&
			      (since != NULL || h.length <= limit);
	else
		h.recovered = h.first_id.p != NULL &&
			      env_sid_cmp(&first, &want) <= 0 && !h.more;
	if (h.skipped > 0)
		h.recovered = false;
	if (h.n == 0) {
		free(h.entries);
		h.entries = NULL;
	}
	*out = h;
	return HISTORY_RANGE_OK;
}

void
history_range_free(struct history_range *out)
{
	free(out->entries);
	out->entries = NULL;
	out->n = 0;
}

enum range_status
history_request(const struct up_range *q, const char *prefix,
    uint32_t max_recover, char *key, size_t keylen, uint32_t *limit)
{
	struct addr a;
	struct env_sid sid;

	if (q->addr.p == NULL || addr_parse(q->addr.p, q->addr.len, &a) != 0 ||
	    (q->since.p != NULL &&
		env_sid_parse(q->since.p, q->since.len, &sid) != 0) ||
	    q->limit == 0 ||
	    keys_channel(key, keylen, prefix, q->addr.p, q->addr.len) < 0)
		return RANGE_BAD_REQUEST;
	*limit = q->limit < max_recover ? q->limit : max_recover;
	return RANGE_OK;
}

int
history_range_emit(const struct bus_range *head, const struct history_range *h,
    enum range_status status, size_t chunk_bytes, history_emit_fn *emit,
    void *arg)
{
	struct bus_range r = *head;
	struct bus_range_entry *e = NULL;
	uint32_t n = h != NULL ? h->n : 0, done = 0;
	int rc = 0;

	if (n > 0) {
		e = calloc(n, sizeof(*e));
		if (e == NULL)
			return -1;
	}
	bool complete = h != NULL && h->recovered;
	uint32_t k = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct history_entry *x = &h->entries[i];
		struct env_sid sid;

		/* Larger than the bus carries (stored by FCALL, which has no
		 * such bound): left out, so the answer cannot be complete. */
		if (x->data.len > ENV_DATA_MAX) {
			complete = false;
			continue;
		}
		e[k].id = x->id;
		e[k].data = x->data;
		e[k].from = x->from;
		e[k].cls = payload_classify(x->data.p, x->data.len, x->json);
		/* history_range_parse() checked every id. */
		e[k].ts =
		    env_sid_parse(x->id.p, x->id.len, &sid) == 0 ? sid.ms : 0;
		k++;
	}
	n = k;
	r.status = h != NULL ? RANGE_OK : status;
	r.recovered = complete;
	for (r.chunk = 0; rc == 0; r.chunk++) {
		r.entries = e + done;
		r.n = bus_range_chunk(r.entries, n - done, chunk_bytes);
		done += r.n;
		r.last = done == n;
		rc = emit(arg, &r);
		if (r.last)
			break;
	}
	free(e);
	return rc;
}

/* ---- loading ---- */

int
history_init(struct history *h, const struct conf *c)
{
	memset(h, 0, sizeof(*h));
	history_conf_from(&h->conf, c);
	if (h->conf.size == 0)
		return 0; /* HISTORY_OFF */
	h->text = history_library(&h->conf, &h->text_len);
	if (h->text == NULL)
		return -1;
	h->state = HISTORY_LOADING;
	return 0;
}

void
history_fini(struct history *h)
{
	free(h->text);
	h->text = NULL;
}

void
history_connected(
    struct history *h, struct history_argv *check, struct history_argv *load)
{
	if (h->state == HISTORY_OFF)
		return;
	h->state = HISTORY_LOADING;
	history_config_argv(check);
	history_load_argv(load, h->text, h->text_len);
}

const char *
history_on_config(
    struct history *h, const redisReply *r, char *line, size_t len)
{
	struct history_conf loaded;
	char mine[128], theirs[128];

	if (h->state == HISTORY_OFF)
		return NULL;
	h->other_config = false;
	if (history_config_parse(r, &h->conf, &loaded) != HISTORY_LOADED_OTHER)
		return NULL; /* none, ours, or an error FUNCTION LOAD reports */
	h->other_config = true;
	if (history_conf_str(&loaded, theirs, sizeof(theirs)) < 0 ||
	    history_conf_str(&h->conf, mine, sizeof(mine)) < 0)
		return NULL;
	snprintf(line, len,
	    "history: Redis has the wspush function library loaded with "
	    "other values (%s) than ours (%s): replacing it; nodes sharing a "
	    "Redis must use the same [history] values",
	    theirs, mine);
	return line;
}

const char *
history_on_load(struct history *h, const redisReply *r, char *line, size_t len)
{
	char why[HISTORY_ERR_MAX];
	char mine[128];

	if (h->state == HISTORY_OFF)
		return NULL;
	switch (history_load_parse(r, why, sizeof(why))) {
	case HISTORY_LOAD_OK:
		h->state = HISTORY_READY;
		h->err[0] = '\0';
		h->loads++;
		if (history_conf_str(&h->conf, mine, sizeof(mine)) < 0)
			mine[0] = '\0';
		snprintf(line, len,
		    "history: function library wspush loaded (%s)", mine);
		return line;
	case HISTORY_LOAD_LOST:
		h->state = HISTORY_LOADING; /* again at the next connect */
		return NULL;
	case HISTORY_LOAD_OLD_REDIS:
	case HISTORY_LOAD_REFUSED:
		break;
	}
	h->state = HISTORY_UNAVAILABLE;
	h->load_failures++;
	snprintf(h->err, sizeof(h->err), "%s", why);
	snprintf(line, len,
	    "history requested but unavailable: %s; messages are delivered "
	    "without history",
	    why);
	return line;
}

void
history_lost(struct history *h)
{
	if (h->state != HISTORY_OFF)
		h->state = HISTORY_LOADING;
}

enum range_status
history_range_status(const struct history *h)
{
	switch (h->state) {
	case HISTORY_READY:
		return RANGE_OK;
	case HISTORY_LOADING:
		return RANGE_FAILED;
	case HISTORY_OFF:
	case HISTORY_UNAVAILABLE:
		break;
	}
	return RANGE_UNAVAILABLE;
}

const char *
history_state_str(enum history_state s)
{
	switch (s) {
	case HISTORY_OFF:
		return "off";
	case HISTORY_LOADING:
		return "loading";
	case HISTORY_READY:
		return "ready";
	case HISTORY_UNAVAILABLE:
		return "unavailable";
	}
	return "unknown";
}
