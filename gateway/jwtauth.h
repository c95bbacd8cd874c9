/*
 * jwtauth.h - JWT verification for auth.mode = jwt (README "Client
 * protocol" and "Security"): checks a client's token and returns its claims
 * (user id, exp, the subs and pubs grants) and answers "may this user subscribe
 * to / publish to X". A pure module: no I/O after jwtauth_new(), no logging
 * (tokens never reach a log through it), no lws. The gateway's auth code
 * calls it for ?token=, Authorization: Bearer and {"op":"auth"}.
 *
 * Named jwtauth, not jwt: a "jwt.h" in gateway/ would shadow libjwt's
 * <jwt.h> for every file compiled with -I gateway.
 */
#ifndef WSP_JWTAUTH_H
#define WSP_JWTAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "addr.h"
#include "conf.h"

/* Longest token accepted; longer ones are JWTAUTH_REJECT_TOO_LONG. */
#define JWTAUTH_TOKEN_MAX 8192
/* Largest secret or public key file read. */
#define JWTAUTH_KEY_FILE_MAX (64 * 1024)
/* RFC 7518 3.2: an HS256 key must be at least as long as the hash. */
#define JWTAUTH_HS256_SECRET_MIN 32

/* Why a token was refused; 0 = accepted. Names for counters: _str(). */
enum jwtauth_reject {
	JWTAUTH_REJECT_NONE = 0,      /* "none": accepted */
	JWTAUTH_REJECT_MALFORMED,     /* not header.payload.signature JSON */
	JWTAUTH_REJECT_BAD_SIGNATURE, /* signature does not verify */
	JWTAUTH_REJECT_WRONG_ALG,     /* header alg != auth.jwt_alg, "none" */
	JWTAUTH_REJECT_EXPIRED,       /* now >= exp + leeway */
	JWTAUTH_REJECT_NOT_YET_VALID, /* now + leeway < nbf */
	JWTAUTH_REJECT_NO_SUB,        /* no "sub" claim */
	JWTAUTH_REJECT_BAD_SUB,       /* "sub" not a valid user id string */
	JWTAUTH_REJECT_BAD_CLAIMS,    /* exp/nbf/subs/pubs of a wrong type */
	JWTAUTH_REJECT_TOO_LONG,      /* over JWTAUTH_TOKEN_MAX bytes */
	JWTAUTH_REJECT_INTERNAL,      /* out of memory */
	JWTAUTH_REJECT_NO_EXP,        /* no "exp" claim: never expires */
	JWTAUTH_REJECT_COUNT
};

/* One entry of a subs or pubs claim, exactly as in the token. */
struct jwtauth_grant {
	const char *text; /* NUL-terminated; a trailing '*' = prefix pattern */
	size_t len;       /* strlen(text) */
};

/*
 * The verified claims of one token. Read-only for callers; one allocation,
 * owned by whoever got it from jwtauth_verify(), freed with
 * jwtauth_claims_free().
 */
struct jwtauth_claims {
	char user[ADDR_ID_MAX + 1]; /* "sub": a valid id (addr_id_valid) */
	size_t user_len;
	time_t exp; /* "exp" (seconds since the epoch); always > 0 */
	size_t n_subs;
	const struct jwtauth_grant *subs; /* channel names or "prefix*" */
	size_t n_pubs;
	const struct jwtauth_grant *pubs; /* addresses or "prefix*" */
};

struct jwtauth;

/*
 * Builds a verifier from c's [auth] section: auth.jwt_alg, and for HS256
 * the secret in auth.jwt_secret_file, for RS256/ES256 the PEM public key in
 * auth.jwt_public_key_file; either file is read whole, less one trailing
 * newline ("\n"). The secret must be at least JWTAUTH_HS256_SECRET_MIN
 * bytes; a key file holding a private key or a certificate is refused
 * with a hint. Reads the file now (call in the master, before fork, and
 * before dropping privileges); c is borrowed for the call.
 * Returns a new verifier (free with jwtauth_free()), or NULL with a
 * message naming the config key and the file in err, e.g.
 * "wspush.conf: auth.jwt_secret_file: /etc/wspush/jwt.key: No such file
 * or directory".
 */
struct jwtauth *jwtauth_new(const struct conf *c, char *err, size_t errlen);

/*
 * Same from key bytes already in memory (tests, fuzzing): key[0..keylen)
 * is the HS256 secret or the PEM public key text, used as given (no
 * newline stripping). Same checks and ownership as jwtauth_new(); key is
 * copied.
 */
struct jwtauth *jwtauth_new_key(enum conf_jwt_alg alg, const void *key,
    size_t keylen, uint32_t leeway_s, char *err, size_t errlen);

/* Frees v and scrubs its key; NULL is a no-op. */
void jwtauth_free(struct jwtauth *v);

/*
 * Verifies token[0..len) (no NUL needed, not kept) at time now (seconds
 * since the epoch, e.g. time(NULL)). In order:
 *  - len over JWTAUTH_TOKEN_MAX: TOO_LONG;
 *  - three base64url segments, header and payload JSON objects without
 *    duplicate keys, a header "alg" string, no "crit", "typ" absent or
 *    "JWT": else MALFORMED;
 *  - header alg equal to auth.jwt_alg, checked BEFORE the signature (an
 *    HS256 token "signed" with the RS256 public key text, or alg "none",
 *    is WRONG_ALG);
 *  - the signature (libjwt): BAD_SIGNATURE;
 *  - exp: required (NO_EXP: a token without it would never expire), a
 *    number (BAD_CLAIMS), and now < exp + leeway_s, else EXPIRED (an exp
 *    of 0 or before is expired); nbf: optional, if present
 *    nbf <= now + leeway_s, else NOT_YET_VALID;
 *  - sub: required (NO_SUB), a string that is a valid id (BAD_SUB);
 *  - subs, pubs: optional arrays of strings; absent grants nothing. Each
 *    subs entry is a channel name or "prefix*"; each pubs entry an address
 *    ("user:7", "channel:x", "all") or "prefix*" where prefix is empty,
 *    "user:", "channel:" or one of those plus the start of an id
 *    ("channel:chat.*"). Anything else is BAD_CLAIMS (the whole token is
 *    refused, so issuers see their mistakes). Other claims are ignored.
 * Returns 0 with *out set to new claims (caller frees) and *why =
 * JWTAUTH_REJECT_NONE, or -1 with *why set and *out untouched. The token
 * and the reason are never logged here; count by jwtauth_reject_str().
 */
int jwtauth_verify(const struct jwtauth *v, const char *token, size_t len,
    time_t now, struct jwtauth_claims **out, enum jwtauth_reject *why);

/* Frees claims from jwtauth_verify(); NULL is a no-op. */
void jwtauth_claims_free(struct jwtauth_claims *c);

/*
 * True if the subs claim grants channel[0..len) (the bare name, "news"):
 * an entry equal to it, or an entry "p*" with p a byte prefix of it ("p*"
 * also matches "p" itself; "*" matches every channel). Only a trailing '*'
 * is a wildcard. False for NULL claims.
 */
bool jwtauth_claims_may_subscribe(
    const struct jwtauth_claims *c, const char *channel, size_t len);

/*
 * True if the pubs claim grants the address addr[0..len) in its textual
 * form ("user:7", "channel:chat.x", "all"), matched as in
 * jwtauth_claims_may_subscribe(): "user:*" grants every user, "*" every
 * address including "all". gateway.client_publish still applies on top.
 */
bool jwtauth_claims_may_publish(
    const struct jwtauth_claims *c, const char *addr, size_t len);

/* "none", "malformed", "bad_signature", "wrong_alg", "expired",
 * "not_yet_valid", "no_sub", "bad_sub", "bad_claims", "too_long",
 * "internal", "no_exp"; "unknown" out of range. */
const char *jwtauth_reject_str(enum jwtauth_reject r);

#endif
