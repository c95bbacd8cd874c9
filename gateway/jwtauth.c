/*
 * jwtauth.c - JWT verification with libjwt 1.10.2 and jansson.
 *
 * libjwt 1.10.2 checks only the signature, with whatever alg the token's
 * header names, and validates no claim. So we parse the token ourselves
 * first (strict: three base64url segments, JSON objects, no duplicate
 * keys), refuse a header alg other than auth.jwt_alg before libjwt sees
 * the token, let jwt_decode() verify the signature, and then check
 * exp/nbf/sub/subs/pubs on the payload we parsed (the same signed bytes).
 * Nothing here logs: callers count by jwtauth_reject_str().
 */
#include "jwtauth.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct jwtauth {
	enum conf_jwt_alg alg;
	jwt_alg_t lib_alg;    /* the same, as libjwt names it */
	const char *alg_name; /* "HS256", as in a token header */
	uint32_t leeway_s;
	size_t keylen;
	unsigned char key[]; /* keylen bytes and a NUL */
};

#define JWTAUTH_NOW_MAX (INT64_C(1) << 62)

/* One parsed and validated list claim, before it is copied out. */
struct jwtauth_list {
	json_t *arr; /* borrowed from the payload; NULL if absent */
	size_t n;
	size_t textlen; /* sum of entry lengths plus a NUL each */
};

static const char *
jwtauth_alg_name(enum conf_jwt_alg alg)
{
	switch (alg) {
	case CONF_JWT_HS256:
		return "HS256";
	case CONF_JWT_RS256:
		return "RS256";
	case CONF_JWT_ES256:
		return "ES256";
	}
	return NULL;
}

static jwt_alg_t
jwtauth_lib_alg(enum conf_jwt_alg alg)
{
	switch (alg) {
	case CONF_JWT_HS256:
		return JWT_ALG_HS256;
	case CONF_JWT_RS256:
		return JWT_ALG_RS256;
	case CONF_JWT_ES256:
		return JWT_ALG_ES256;
	}
	return JWT_ALG_INVAL;
}

const char *
jwtauth_reject_str(enum jwtauth_reject r)
{
	switch (r) {
	case JWTAUTH_REJECT_NONE:
		return "none";
	case JWTAUTH_REJECT_MALFORMED:
		return "malformed";
	case JWTAUTH_REJECT_BAD_SIGNATURE:
		return "bad_signature";
	case JWTAUTH_REJECT_WRONG_ALG:
		return "wrong_alg";
	case JWTAUTH_REJECT_EXPIRED:
		return "expired";
	case JWTAUTH_REJECT_NOT_YET_VALID:
		return "not_yet_valid";
	case JWTAUTH_REJECT_NO_SUB:
		return "no_sub";
	case JWTAUTH_REJECT_BAD_SUB:
		return "bad_sub";
	case JWTAUTH_REJECT_BAD_CLAIMS:
		return "bad_claims";
	case JWTAUTH_REJECT_TOO_LONG:
		return "too_long";
	case JWTAUTH_REJECT_INTERNAL:
		return "internal";
	case JWTAUTH_REJECT_NO_EXP:
		return "no_exp";
	case JWTAUTH_REJECT_COUNT:
		break;
	}
	return "unknown";
}

/*
 * Checks a key already in memory and builds the verifier. what names the
 * key's origin in messages ("auth.jwt_secret_file: /path" or "key").
 */
static struct jwtauth *
jwtauth_build(enum conf_jwt_alg alg, const void *key, size_t keylen,
    uint32_t leeway_s, const char *what, char *err, size_t errlen)
{
	const char *name = jwtauth_alg_name(alg);
	struct jwtauth *v;

	if (name == NULL) {
		snprintf(err, errlen, "auth.jwt_alg: unsupported algorithm");
		return NULL;
	}
	if (keylen > JWTAUTH_KEY_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", what,
		    JWTAUTH_KEY_FILE_MAX);
		return NULL;
	}
	if (keylen == 0 || memchr(key, '\0', keylen) != NULL) {
		snprintf(err, errlen, "%s: %s", what,
		    keylen == 0 ? "empty" : "contains a NUL byte");
		return NULL;
	}
	if (alg == CONF_JWT_HS256 && keylen < JWTAUTH_HS256_SECRET_MIN) {
		snprintf(err, errlen,
		    "%s: secret is %zu bytes; HS256 needs at least %d "
		    "(RFC 7518 3.2)",
		    what, keylen, JWTAUTH_HS256_SECRET_MIN);
		return NULL;
	}
	if (alg != CONF_JWT_HS256) {
		/* libjwt only says "bad signature" for every token when the
		 * key is unusable: name the usual mistakes at start instead. */
		if (memmem(key, keylen, "PRIVATE KEY", 11) != NULL) {
			snprintf(err, errlen,
			    "%s: holds a private key; give the public key "
			    "(openssl pkey -in KEY -pubout)",
			    what);
			return NULL;
		}
		if (memmem(key, keylen, "-----BEGIN CERTIFICATE", 22) != NULL) {
			snprintf(err, errlen,
			    "%s: is a certificate; give its public key "
			    "(openssl x509 -in CERT -pubkey -noout)",
			    what);
			return NULL;
		}
		if (memmem(key, keylen, "-----BEGIN PUBLIC KEY-----", 26) ==
			NULL &&
		    (alg != CONF_JWT_RS256 ||
			memmem(key, keylen, "-----BEGIN RSA PUBLIC KEY-----",
			    30) == NULL)) {
			snprintf(err, errlen,
			    "%s: not a PEM public key "
			    "(-----BEGIN PUBLIC KEY-----) for %s",
			    what, name);
			return NULL;
		}
	}
	v = malloc(sizeof(*v) + keylen + 1);
	if (v == NULL) {
		snprintf(err, errlen, "%s: out of memory", what);
		return NULL;
	}
	v->alg = alg;
	v->lib_alg = jwtauth_lib_alg(alg);
	v->alg_name = name;
	v->leeway_s = leeway_s;
	v->keylen = keylen;
	memcpy(v->key, key, keylen);
	v->key[keylen] = '\0';
	return v;
}

/*
 * Reads the whole regular file at path into a new buffer (*lenp bytes,
 * NUL-terminated). Returns NULL with errno set; EFBIG if over the cap.
 */
static char *
jwtauth_read_file(const char *path, size_t *lenp)
{
	struct stat st;
	size_t len = 0;
	char *buf;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1)
		goto fail_fd;
	if (!S_ISREG(st.st_mode)) {
		errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		goto fail_fd;
	}
	buf = malloc(JWTAUTH_KEY_FILE_MAX + 2);
	if (buf == NULL)
		goto fail_fd;
	/* Read up to one byte over the cap to detect a larger file. */
	while (len < JWTAUTH_KEY_FILE_MAX + 2) {
		ssize_t n = read(fd, buf + len, JWTAUTH_KEY_FILE_MAX + 2 - len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail_buf;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > JWTAUTH_KEY_FILE_MAX) {
		errno = EFBIG;
		goto fail_buf;
	}
	close(fd);
	buf[len] = '\0';
	*lenp = len;
	return buf;

fail_buf:
	saved = errno;
	explicit_bzero(buf, JWTAUTH_KEY_FILE_MAX + 2);
	free(buf);
	errno = saved;
fail_fd:
	saved = errno;
	close(fd);
	errno = saved;
	return NULL;
}

struct jwtauth *
jwtauth_new(const struct conf *c, char *err, size_t errlen)
{
	const char *key = "auth.jwt_public_key_file", *path;
	char what[sizeof(c->file) + CONF_PATH_MAX + 64];
	struct jwtauth *v;
	size_t len;
	char *buf;

	path = c->jwt_public_key_file;
	if (c->jwt_alg == CONF_JWT_HS256) {
		key = "auth.jwt_secret_file";
		path = c->jwt_secret_file;
	}
	snprintf(what, sizeof(what), "%s%s%s: %s", c->file,
	    c->file[0] != '\0' ? ": " : "", key, path);
	if (path[0] == '\0') {
		snprintf(err, errlen, "%s%s%s: required for auth.jwt_alg = %s",
		    c->file, c->file[0] != '\0' ? ": " : "", key,
		    jwtauth_alg_name(c->jwt_alg) != NULL
			? jwtauth_alg_name(c->jwt_alg)
			: "?");
		return NULL;
	}
	buf = jwtauth_read_file(path, &len);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: %s", what,
		    errno == EFBIG ? "file too large" : strerror(errno));
		return NULL;
	}
	/* Secret and key files are read whole, less one trailing newline
	 * (README "Configuration"): `echo secret > file` works. */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	v = jwtauth_build(c->jwt_alg, buf, len, c->leeway_s, what, err, errlen);
	explicit_bzero(buf, len);
	free(buf);
	return v;
}

struct jwtauth *
jwtauth_new_key(enum conf_jwt_alg alg, const void *key, size_t keylen,
    uint32_t leeway_s, char *err, size_t errlen)
{
	if (key == NULL)
		keylen = 0;
	return jwtauth_build(
	    alg, key != NULL ? key : "", keylen, leeway_s, "key", err, errlen);
}

void
jwtauth_free(struct jwtauth *v)
{
	if (v == NULL)
		return;
	explicit_bzero(v->key, v->keylen);
	free(v);
}

void
jwtauth_claims_free(struct jwtauth_claims *c)
{
	free(c);
}

static int
jwtauth_b64_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/*
 * Decodes base64url without padding, s[0..len) into out (room for len * 3
 * / 4 bytes). Returns the decoded length or -1 on a bad character or a
 * length no encoder produces.
 */
static long
jwtauth_b64url_decode(const char *s, size_t len, unsigned char *out)
{
	uint32_t acc = 0;
	size_t i, n = 0;
	int bits = 0;

	if (len % 4 == 1)
		return -1;
	for (i = 0; i < len; i++) {
		int d = jwtauth_b64_val((unsigned char)s[i]);

		if (d < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (long)n;
}

/* Decodes one segment and parses it as a JSON object; NULL if it is not. */
static json_t *
jwtauth_segment_json(const char *s, size_t len)
{
	unsigned char buf[JWTAUTH_TOKEN_MAX];
	json_error_t jerr;
	json_t *j;
	long n;

	if (len == 0)
		return NULL;
	n = jwtauth_b64url_decode(s, len, buf);
	if (n <= 0)
		return NULL;
	j = json_loadb(
	    (const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	explicit_bzero(buf, (size_t)n);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The header checks that come before the signature. */
static enum jwtauth_reject
jwtauth_check_header(const struct jwtauth *v, const json_t *hdr)
{
	const json_t *alg = json_object_get(hdr, "alg");
	const json_t *typ = json_object_get(hdr, "typ");

	if (!json_is_string(alg))
		return JWTAUTH_REJECT_MALFORMED;
	/* RFC 7515 4.1.11: we understand no extension, so none may be
	 * critical. libjwt 1.10.2 would ignore "crit". */
	if (json_object_get(hdr, "crit") != NULL)
		return JWTAUTH_REJECT_MALFORMED;
	/* libjwt 1.10.2 refuses any other typ; say so as malformed rather
	 * than let it look like a bad signature. */
	if (typ != NULL &&
	    (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT")))
		return JWTAUTH_REJECT_MALFORMED;
	/* Exact, case-sensitive, before any key is used: an HS256 token
	 * "signed" with our RS256 public key text, or "none", stops here. */
	if (json_string_length(alg) != strlen(v->alg_name) ||
	    memcmp(json_string_value(alg), v->alg_name, strlen(v->alg_name)) !=
		0)
		return JWTAUTH_REJECT_WRONG_ALG;
	return JWTAUTH_REJECT_NONE;
}

/*
 * Reads a NumericDate claim (RFC 7519 2: a JSON number, possibly with a
 * fraction, truncated here). Returns 0 with *t, 1 if absent, -1 if it is
 * not a number or out of any sane range.
 */
static int
jwtauth_numeric_date(const json_t *payload, const char *name, int64_t *t)
{
	const json_t *j = json_object_get(payload, name);
	/* Year ~33658: far beyond any real token, far from overflow. */
	const int64_t max = INT64_C(1) << 40;
	double d;

	if (j == NULL)
		return 1;
	if (json_is_integer(j)) {
		json_int_t i = json_integer_value(j);

		if (i < -max || i > max)
			return -1;
		*t = (int64_t)i;
		return 0;
	}
	if (!json_is_real(j))
		return -1;
	d = json_real_value(j);
	if (!(d >= (double)-max && d <= (double)max))
		return -1;
	*t = (int64_t)d;
	return 0;
}

/* A prefix with '*' removed: empty, or a valid id start. */
static bool
jwtauth_prefix_valid(const char *p, size_t len)
{
	return len == 0 || addr_id_valid(p, len);
}

static bool
jwtauth_sub_entry_valid(const char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '*')
		return jwtauth_prefix_valid(s, len - 1);
	return addr_id_valid(s, len);
}

static bool
jwtauth_pub_entry_valid(const char *s, size_t len)
{
	struct addr a;
	size_t plen;

	if (len == 0 || s[len - 1] != '*')
		return addr_parse(s, len, &a) == 0;
	plen = len - 1;
	if (plen == 0)
		return true; /* "*": every address */
	if (plen >= 5 && memcmp(s, "user:", 5) == 0)
		return jwtauth_prefix_valid(s + 5, plen - 5);
	if (plen >= 8 && memcmp(s, "channel:", 8) == 0)
		return jwtauth_prefix_valid(s + 8, plen - 8);
	return false;
}

/* Validates a list claim; fills l. Returns false if it is BAD_CLAIMS. */
static bool
jwtauth_list_check(const json_t *payload, const char *name,
    bool (*valid)(const char *, size_t), struct jwtauth_list *l)
{
	json_t *arr = json_object_get(payload, name);
	size_t i;

	l->arr = NULL;
	l->n = 0;
	l->textlen = 0;
	if (arr == NULL)
		return true; /* absent: grants nothing */
	if (!json_is_array(arr))
		return false;
	for (i = 0; i < json_array_size(arr); i++) {
		const json_t *e = json_array_get(arr, i);

		if (!json_is_string(e) ||
		    !valid(json_string_value(e), json_string_length(e)))
			return false;
		l->textlen += json_string_length(e) + 1;
	}
	l->arr = arr;
	l->n = json_array_size(arr);
	return true;
}

/* Copies a checked list into grants[] and text; returns the text end. */
static char *
jwtauth_list_copy(
    const struct jwtauth_list *l, struct jwtauth_grant *grants, char *text)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		const json_t *e = json_array_get(l->arr, i);
		size_t len = json_string_length(e);

		memcpy(text, json_string_value(e), len);
		text[len] = '\0';
		grants[i].text = text;
		grants[i].len = len;
		text += len + 1;
	}
	return text;
}

/* The claim checks that come after the signature. */
static enum jwtauth_reject
jwtauth_claims_build(const struct jwtauth *v, const json_t *payload, time_t now,
    struct jwtauth_claims **out)
{
	struct jwtauth_list subs, pubs;
	struct jwtauth_grant *grants;
	struct jwtauth_claims *c;
	int64_t exp = 0, nbf = 0, t = (int64_t)now;
	const json_t *sub;
	int has_exp, has_nbf;
	char *text;

	/* Claims are within +-2^40 (jwtauth_numeric_date); clamping now
	 * keeps the sums below from overflowing whatever the caller passes. */
	if (t > JWTAUTH_NOW_MAX)
		t = JWTAUTH_NOW_MAX;
	else if (t < -JWTAUTH_NOW_MAX)
		t = -JWTAUTH_NOW_MAX;
	has_exp = jwtauth_numeric_date(payload, "exp", &exp);
	has_nbf = jwtauth_numeric_date(payload, "nbf", &nbf);
	if (has_exp < 0 || has_nbf < 0)
		return JWTAUTH_REJECT_BAD_CLAIMS;
	/* A session lives until its token's exp: without one it would
	 * live for ever, so exp is required (RFC 7519 leaves it optional). */
	if (has_exp != 0)
		return JWTAUTH_REJECT_NO_EXP;
	/* RFC 7519 4.1.4: valid while now < exp; the leeway absorbs clock
	 * skew. exp <= 0 is 1970 or before: expired. */
	if (exp <= 0 || t >= exp + (int64_t)v->leeway_s)
		return JWTAUTH_REJECT_EXPIRED;
	if (has_nbf == 0 && t + (int64_t)v->leeway_s < nbf)
		return JWTAUTH_REJECT_NOT_YET_VALID;

	sub = json_object_get(payload, "sub");
	if (sub == NULL)
		return JWTAUTH_REJECT_NO_SUB;
	if (!json_is_string(sub) ||
	    !addr_id_valid(json_string_value(sub), json_string_length(sub)))
		return JWTAUTH_REJECT_BAD_SUB;

	if (!jwtauth_list_check(
		payload, "subs", jwtauth_sub_entry_valid, &subs) ||
	    !jwtauth_list_check(
		payload, "pubs", jwtauth_pub_entry_valid, &pubs))
		return JWTAUTH_REJECT_BAD_CLAIMS;

	/* One block: the struct, both grant arrays, then their text. */
	c = malloc(sizeof(*c) + (subs.n + pubs.n) * sizeof(*grants) +
		   subs.textlen + pubs.textlen);
	if (c == NULL)
		return JWTAUTH_REJECT_INTERNAL;
	memcpy(c->user, json_string_value(sub), json_string_length(sub));
	c->user[json_string_length(sub)] = '\0';
	c->user_len = json_string_length(sub);
	c->exp = (time_t)exp;
	grants = (struct jwtauth_grant *)(c + 1);
	text = (char *)(grants + subs.n + pubs.n);
	c->subs = grants;
	c->n_subs = subs.n;
	text = jwtauth_list_copy(&subs, grants, text);
	c->pubs = grants + subs.n;
	c->n_pubs = pubs.n;
	jwtauth_list_copy(&pubs, grants + subs.n, text);
	*out = c;
	return JWTAUTH_REJECT_NONE;
}

/* Everything but the bookkeeping of jwtauth_verify(). */
static enum jwtauth_reject
jwtauth_check(const struct jwtauth *v, const char *token, size_t len,
    time_t now, struct jwtauth_claims **out)
{
	char buf[JWTAUTH_TOKEN_MAX + 1];
	const char *dot1, *dot2;
	json_t *hdr = NULL, *payload = NULL;
	enum jwtauth_reject r;
	jwt_t *jwt = NULL;
	int rc;

	if (len > JWTAUTH_TOKEN_MAX)
		return JWTAUTH_REJECT_TOO_LONG;
	if (token == NULL || len == 0)
		return JWTAUTH_REJECT_MALFORMED;
	dot1 = memchr(token, '.', len);
	if (dot1 == NULL)
		return JWTAUTH_REJECT_MALFORMED;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (dot2 == NULL ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return JWTAUTH_REJECT_MALFORMED; /* not 3 parts (JWE has 5) */

	hdr = jwtauth_segment_json(token, (size_t)(dot1 - token));
	if (hdr == NULL)
		return JWTAUTH_REJECT_MALFORMED;
	r = jwtauth_check_header(v, hdr);
	json_decref(hdr);
	if (r != JWTAUTH_REJECT_NONE)
		return r;
	/* After the alg check, so that an unsigned alg "none" token counts
	 * as wrong_alg. */
	if (dot2 + 1 == token + len)
		return JWTAUTH_REJECT_MALFORMED;
	payload = jwtauth_segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (payload == NULL)
		return JWTAUTH_REJECT_MALFORMED;
	/* The signature segment must be base64url too; libjwt is lax. */
	for (const char *p = dot2 + 1; p < token + len; p++) {
		if (jwtauth_b64_val((unsigned char)*p) < 0) {
			r = JWTAUTH_REJECT_MALFORMED;
			goto out;
		}
	}

	memcpy(buf, token, len);
	buf[len] = '\0';
	rc = jwt_decode(&jwt, buf, v->key, (int)v->keylen);
	explicit_bzero(buf, len);
	if (rc != 0) {
		r = rc == ENOMEM ? JWTAUTH_REJECT_INTERNAL
				 : JWTAUTH_REJECT_BAD_SIGNATURE;
		goto out;
	}
	/* Belt and braces: libjwt verified with the alg we required. */
	if (jwt_get_alg(jwt) != v->lib_alg) {
		r = JWTAUTH_REJECT_WRONG_ALG;
		goto out;
	}
	r = jwtauth_claims_build(v, payload, now, out);
out:
	jwt_free(jwt);
	json_decref(payload);
	return r;
}

int
jwtauth_verify(const struct jwtauth *v, const char *token, size_t len,
    time_t now, struct jwtauth_claims **out, enum jwtauth_reject *why)
{
	struct jwtauth_claims *c = NULL;
	enum jwtauth_reject r;

	if (v == NULL || out == NULL)
		r = JWTAUTH_REJECT_INTERNAL;
	else
		r = jwtauth_check(v, token, len, now, &c);
	if (why != NULL)
		*why = r;
	if (r != JWTAUTH_REJECT_NONE)
		return -1;
	*out = c;
	return 0;
}

/* Exact entry, or "p*" with p a prefix of s[0..len). */
static bool
jwtauth_grants_match(
    const struct jwtauth_grant *g, size_t n, const char *s, size_t len)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < n; i++) {
		size_t glen = g[i].len;

		if (glen > 0 && g[i].text[glen - 1] == '*') {
			if (len >= glen - 1 &&
			    memcmp(s, g[i].text, glen - 1) == 0)
				return true;
		} else if (len == glen && memcmp(s, g[i].text, glen) == 0) {
			return true;
		}
	}
	return false;
}

bool
jwtauth_claims_may_subscribe(
    const struct jwtauth_claims *c, const char *channel, size_t len)
{
	return c != NULL &&
	       jwtauth_grants_match(c->subs, c->n_subs, channel, len);
}

bool
jwtauth_claims_may_publish(
    const struct jwtauth_claims *c, const char *addr, size_t len)
{
	return c != NULL && jwtauth_grants_match(c->pubs, c->n_pubs, addr, len);
}
