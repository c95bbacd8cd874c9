/*
 * jwtauth_test.c - JWT verification (gateway/jwtauth.c): signatures per
 * algorithm, the alg-confusion attack, exp/nbf with leeway, sub, subs/pubs
 * grants and patterns, key files, limits and garbage.
 *
 * Tokens are made with libjwt, or by hand for malformed ones; the RS256 and
 * ES256 fixtures at the end were signed by the openssl CLI, not libjwt.
 * The keys below are TEST ONLY, generated once for this file with
 * `openssl genpkey`; they protect nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jwt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jwtauth.h"

#define NOW ((time_t)1700000000)
#define LEEWAY 30

/* 40 bytes: above the 32-byte HS256 minimum. */
#define SECRET "test-only-hs256-secret-0123456789abcdef"

static const char RSA_PRIV[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCm8vat0L4DYM6Z\n"
    "NzctwbqM0I1bcu2lY74b0kVA+Cm/yVfZidenS1f8A2nSZVyE1hVnh18/s/vRd4IU\n"
    "MEuF+wVRGbI2M/mYydU+U2fur6JvKD9Ta088MfGuRfFsNUerWfppiCuOETg8AOri\n"
    "2TQ8W7+YICNxdaEsE391hiyGJx4HW/XM7PUXUAu8tHcxFLricNL0A5z7oSwRBuEg\n"
    "BvQBPDvjMjucvKOM8rwRb2thXjDSs8b6iP9a+GKfmVJYCveHkbW4ZgVhNht7Ce10\n"
    "XW0HqGi3lTPP5AaB554vfr3mbia6rVN5oYf5u2sm33YTeogOP4mLSYfsU4YK5yOS\n"
    "Y6AiP0rXAgMBAAECggEACAO1oU9aMh+bK2k4vQwF8r/A2Xkqhfwx9OH1HpLmr1K6\n"
    "G6Cki8y5JUlJzjjheJHkuN928Pbx92BxwuPHNYSlkx+L9VJ2SbPaLUHtMu8pjBes\n"
    "9gDxgPgg0wlbG8e6cFixBcejjn33s9iTbhXhRRPwwtKpShCn/IRoP01dgGPBxpIE\n"
    "W10XSi4IxBe8KVRvKi09nHJw16jd0ivmobVEAajf8s7I70r+ty4yW+PPrWjKF0bQ\n"
    "HE5Td5lPkHLbSIg2seV/JO/cBmV/Fy4Y9IMqdW3TVrdYuIxqvYexl19ft2bAcdJR\n"
    "I+XCBcVHFUVDq1aaOcDO0WFauQG6wulzClHD9x4WmQKBgQDjyJCckpKdR8MkgOQm\n"
    "zI2k+3haLBx2BWJ0vmnMj8HOZeD8Jn16evRrVZRJqpFNkyB9bd5lvPMA5DrLarJ3\n"
    "0LNZ72cD7/64dTkwdBkCMrppM0t2CKBx3yUPvncnsO29yluqFMRerOQVERYfbth+\n"
    "HZIiBrq+lCffHCaVH8xadisnbQKBgQC7oTpWmgtFh30wJb5Rl3/PUSyjvJszIWnv\n"
    "SkTqJ6ahr0/B+OKkhEowb0j7F5SV9xg2qX5pYgX2GYOtNXrgX0+iFoSGQFQ4wpm7\n"
    "rzOoVWOSma3QPwRbNHIeXfr6lzkemg1HkghCP8wwXc4Y/1OBmw/0V2gskvyykBFE\n"
    "aJknxcl80wKBgQC6G2LcKn2T99AfARhoAvUv+S6KLkRKwXeB/xmeQ06L/n1mR2R6\n"
    "L/+HuvJfhfcWNMF0+dGdulWpQtAu50xNzLzdHFdExk+OEmjZh+HvA9d+oKRlGgNN\n"
    "Ro6XYH0mds6oJK/kNPeEiyoHdGBo6j4EPNDq8CigEZjKF8wGR2bF+oqjuQKBgQCU\n"
    "E/hApK5En1tzhjYfmpsp+Pxr9MvfnH1IdqrQyZ4+eGdPxKbKBAWxGALW95Myj6Iy\n"
    "ca3saYoe4aAEMPLa5R2p5G+OrHJLoXlGoEz6ivlcl6CPe0xq1odB5BXRc0uHFTlp\n"
    "xJxz/HmfqkiffdJftQrwYZM7qn14Ry75eDt3IieUNQKBgE17MqCN7Y3M3QF2pXBc\n"
    "FNE7NRizpGx0oTgtAG2bMpDsiQ8aZpMoN9ry3s2Oi3QEO4MWxLz5EFbu8vA6yBdE\n"
    "oO+if01eeZfJptPsw2Veo0LdMVlspSPYpYQcCzYV1GnWS+P6vngqPsHtoTm6PhkF\n"
    "zw3/vhKvgv0hbES0/bm6TgUV\n"
    "-----END PRIVATE KEY-----\n";

static const char RSA_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApvL2rdC+A2DOmTc3LcG6\n"
    "jNCNW3LtpWO+G9JFQPgpv8lX2YnXp0tX/ANp0mVchNYVZ4dfP7P70XeCFDBLhfsF\n"
    "URmyNjP5mMnVPlNn7q+ibyg/U2tPPDHxrkXxbDVHq1n6aYgrjhE4PADq4tk0PFu/\n"
    "mCAjcXWhLBN/dYYshiceB1v1zOz1F1ALvLR3MRS64nDS9AOc+6EsEQbhIAb0ATw7\n"
    "4zI7nLyjjPK8EW9rYV4w0rPG+oj/Wvhin5lSWAr3h5G1uGYFYTYbewntdF1tB6ho\n"
    "t5Uzz+QGgeeeL3695m4muq1TeaGH+btrJt92E3qIDj+Ji0mH7FOGCucjkmOgIj9K\n"
    "1wIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char EC_PRIV[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgERRdimSvfp8Uryo3\n"
    "q90536JKSBqLG+sbqAQXlIVMfGuhRANCAAR83frghz3uhtodTiQS3whPu7ZakHhY\n"
    "s5gHu4m8gJx3mTt2rRsbCdZTk38LP9HHvdHcRkcLqAi36E7MHKfoQMwU\n"
    "-----END PRIVATE KEY-----\n";

static const char EC_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfN364Ic97obaHU4kEt8IT7u2WpB4\n"
    "WLOYB7uJvICcd5k7dq0bGwnWU5N/Cz/Rx73R3EZHC6gIt+hOzByn6EDMFA==\n"
    "-----END PUBLIC KEY-----\n";

/* Signed with the keys above by `openssl dgst -sha256 -sign` (ES256: DER
 * converted to R||S); payload {"sub":"u1","exp":4102444800,"subs":["news"]}. */
static const char OPENSSL_RS256[] =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSIsImV4cCI6NDEwMjQ0N"
    "DgwMCwic3VicyI6WyJuZXdzIl19.EaKlmdrFV3sBpA1_C-n592Yw71xe04p_9aBmTJJidu"
    "3jZ6LhA4O8WQ19Ik5S0Htr2YZkCiBG4Ay-d21ECm6uVlFRRkKXXGbgI7S830HpBGYVDV0G"
    "HlpKPDc2SnN8IGbJ1WLwVU4Plmj7N0-ErRiGRtmEja50gGRnD4Rlm7dUVrU8oS0bBGz8D6"
    "9K62bcExp0NI8rZozqS9GLrX-P31LCqP4ihIJ_xUHsWdm2DY0Wj7vaSFozKwdmTsfjdra-"
    "xnevKEFhjerVUB27oxPg7qR0EPtapfwo2g40GgT1DIkRQz0DyynRNK4E81pE1B7TeshHAs"
    "3gvaP9_eM4Luh45gWHKg";
static const char OPENSSL_ES256[] =
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSIsImV4cCI6NDEwMjQ0N"
    "DgwMCwic3VicyI6WyJuZXdzIl19.T6usCnTAMFP5HksBfs5R66Lg2SwaXNTnLRhp49Yt7Y"
    "qZlb5HBLYrGGOrRtPuuVGaKmnQ41zSdvxRgFuXr9u9Ig";

static char tmpdir[64];

static int
group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/jwtauth_test.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes data to tmpdir/name; returns the path (static buffer). */
static const char *
write_file(const char *name, const void *data, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* A token signed by libjwt; grants is a JSON object of claims. */
/* Far in the future: tokens need an exp, most tests are not about it. */
#define LATER ((long)NOW + 3600)

/* A signed token with these claims, plus exp = LATER unless add_exp is
 * false or the claims name an exp. */
static char *
make_token_exp(jwt_alg_t alg, const void *key, size_t keylen,
    const char *grants, bool add_exp)
{
	jwt_t *j = NULL;
	char *tok;

	assert_int_equal(jwt_new(&j), 0);
	assert_int_equal(jwt_add_grants_json(j, grants), 0);
	if (add_exp && strstr(grants, "\"exp\"") == NULL)
		assert_int_equal(jwt_add_grant_int(j, "exp", LATER), 0);
	assert_int_equal(
	    jwt_set_alg(j, alg, (const unsigned char *)key, (int)keylen), 0);
	tok = jwt_encode_str(j);
	assert_non_null(tok);
	jwt_free(j);
	return tok;
}

static char *
make_token(jwt_alg_t alg, const void *key, size_t keylen, const char *grants)
{
	return make_token_exp(alg, key, keylen, grants, true);
}

static char *
hs_token(const char *grants)
{
	return make_token(JWT_ALG_HS256, SECRET, strlen(SECRET), grants);
}

static void
b64url(const char *in, size_t len, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = (const unsigned char *)in;
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		out[o++] = tab[p[i] >> 2];
		out[o++] = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[o++] = tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		out[o++] = tab[p[i + 2] & 63];
	}
	if (len - i == 1) {
		out[o++] = tab[p[i] >> 2];
		out[o++] = tab[(p[i] & 3) << 4];
	} else if (len - i == 2) {
		out[o++] = tab[p[i] >> 2];
		out[o++] = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[o++] = tab[(p[i + 1] & 15) << 2];
	}
	out[o] = '\0';
}

/* A hand-made token: base64url(header).base64url(payload).sig. */
static char *
raw_token(const char *header, const char *payload, const char *sig)
{
	size_t n = (strlen(header) + strlen(payload)) * 2 + strlen(sig) + 8;
	char *tok = malloc(n);

	assert_non_null(tok);
	b64url(header, strlen(header), tok);
	strcat(tok, ".");
	b64url(payload, strlen(payload), tok + strlen(tok));
	strcat(tok, ".");
	strcat(tok, sig);
	return tok;
}

static struct jwtauth *
verifier(enum conf_jwt_alg alg, const char *key, uint32_t leeway)
{
	char err[256] = "";
	struct jwtauth *v =
	    jwtauth_new_key(alg, key, strlen(key), leeway, err, sizeof(err));

	if (v == NULL)
		fail_msg("jwtauth_new_key: %s", err);
	return v;
}

/* Verifies tok at now; returns the reason, frees any claims. */
static enum jwtauth_reject
check_at(const struct jwtauth *v, const char *tok, time_t now)
{
	struct jwtauth_claims *c = NULL;
	enum jwtauth_reject why = JWTAUTH_REJECT_COUNT;
	int rc = jwtauth_verify(v, tok, strlen(tok), now, &c, &why);

	assert_int_equal(rc, why == JWTAUTH_REJECT_NONE ? 0 : -1);
	assert_true(rc == 0 ? c != NULL : c == NULL);
	jwtauth_claims_free(c);
	return why;
}

static enum jwtauth_reject
check(const struct jwtauth *v, const char *tok)
{
	return check_at(v, tok, NOW);
}

/* An HS256 token with these claims, checked by a default verifier. */
static enum jwtauth_reject
check_hs_claims(const char *grants)
{
	struct jwtauth *v = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	char *tok = hs_token(grants);
	enum jwtauth_reject r = check(v, tok);

	free(tok);
	jwtauth_free(v);
	return r;
}

/* Claims of an accepted HS256 token (caller frees). */
static struct jwtauth_claims *
hs_claims(const char *grants)
{
	struct jwtauth *v = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	char *tok = hs_token(grants);
	struct jwtauth_claims *c = NULL;
	enum jwtauth_reject why;

	if (jwtauth_verify(v, tok, strlen(tok), NOW, &c, &why) != 0)
		fail_msg("rejected: %s", jwtauth_reject_str(why));
	free(tok);
	jwtauth_free(v);
	return c;
}

static void
an_hs256_token_with_the_right_secret_is_accepted(void **state)
{
	struct jwtauth_claims *c =
	    hs_claims("{\"sub\":\"42\",\"exp\":1700000100}");

	assert_string_equal(c->user, "42");
	assert_int_equal(c->user_len, 2);
	assert_int_equal(c->exp, 1700000100);
	jwtauth_claims_free(c);
}

static void
an_hs256_token_signed_with_another_secret_is_a_bad_signature(void **state)
{
	static const char other[] = "another-test-secret-0123456789abcdef";
	struct jwtauth *v = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	char *tok =
	    make_token(JWT_ALG_HS256, other, strlen(other), "{\"sub\":\"42\"}");

	assert_int_equal(check(v, tok), JWTAUTH_REJECT_BAD_SIGNATURE);
	free(tok);
	jwtauth_free(v);
}

static void
a_payload_changed_after_signing_is_a_bad_signature(void **state)
{
	struct jwtauth *v = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	char *tok = hs_token("{\"sub\":\"42\"}");
	char *forged = raw_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
	    "{\"sub\":\"1\"}", strrchr(tok, '.') + 1);

	assert_int_equal(check(v, tok), JWTAUTH_REJECT_NONE);
	assert_int_equal(check(v, forged), JWTAUTH_REJECT_BAD_SIGNATURE);
	free(forged);
	free(tok);
	jwtauth_free(v);
}

static void
an_rs256_token_is_accepted_with_the_public_key(void **state)
{
	struct jwtauth *v = verifier(CONF_JWT_RS256, RSA_PUB, LEEWAY);
	char *tok = make_token(
	    JWT_ALG_RS256, RSA_PRIV, strlen(RSA_PRIV), "{\"sub\":\"u1\"}");

	assert_int_equal(check(v, tok), JWTAUTH_REJECT_NONE);
	free(tok);
	jwtauth_free(v);
}

static void
an_es256_token_is_accepted_with_the_public_key(void **state)
{
	struct jwtauth *v = verifier(CONF_JWT_ES256, EC_PUB, LEEWAY);
	char *tok = make_token(
	    JWT_ALG_ES256, EC_PRIV, strlen(EC_PRIV), "{\"sub\":\"u1\"}");
	char *p;

	assert_int_equal(check(v, tok), JWTAUTH_REJECT_NONE);
	/* Change one signature character in the middle: no longer valid. */
	p = strrchr(tok, '.') + 10;
	*p = *p == 'A' ? 'B' : 'A';
	assert_int_equal(check(v, tok), JWTAUTH_REJECT_BAD_SIGNATURE);
	free(tok);
	jwtauth_free(v);
}

static void
tokens_signed_by_openssl_are_accepted(void **state)
{
	struct jwtauth *rs = verifier(CONF_JWT_RS256, RSA_PUB, LEEWAY);
	struct jwtauth *es = verifier(CONF_JWT_ES256, EC_PUB, LEEWAY);
	struct jwtauth_claims *c = NULL;
	enum jwtauth_reject why;

	assert_int_equal(jwtauth_verify(rs, OPENSSL_RS256,
			     strlen(OPENSSL_RS256), NOW, &c, &why),
	    0);
	assert_string_equal(c->user, "u1");
	assert_true(jwtauth_claims_may_subscribe(c, "news", 4));
	jwtauth_claims_free(c);
	assert_int_equal(check(es, OPENSSL_ES256), JWTAUTH_REJECT_NONE);
	/* And each one only with its own algorithm. */
	assert_int_equal(check(rs, OPENSSL_ES256), JWTAUTH_REJECT_WRONG_ALG);
	assert_int_equal(check(es, OPENSSL_RS256), JWTAUTH_REJECT_WRONG_ALG);
	jwtauth_free(rs);
	jwtauth_free(es);
}

static void
an_hs256_token_signed_with_the_rs256_public_key_text_is_rejected(void **state)
{
	char err[256] = "", path[256];
	struct jwtauth *v, *vf;
	struct conf c;
	jwt_t *j = NULL;
	char *tok, *tok2;

	/* The attack: use the public key, which is public, as an HMAC
	 * secret. libjwt alone accepts it, since it verifies with whatever
	 * alg the token names. */
	tok = make_token(JWT_ALG_HS256, RSA_PUB, strlen(RSA_PUB),
	    "{\"sub\":\"admin\",\"pubs\":[\"*\"]}");
	assert_int_equal(jwt_decode(&j, tok, (const unsigned char *)RSA_PUB,
			     (int)strlen(RSA_PUB)),
	    0);
	assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
	jwt_free(j);

	v = verifier(CONF_JWT_RS256, RSA_PUB, LEEWAY);
	assert_int_equal(check(v, tok), JWTAUTH_REJECT_WRONG_ALG);

	/* Same with the key loaded from a file (stored without its final
	 * newline): signed with the exact bytes the verifier holds. */
	conf_defaults(&c);
	c.jwt_alg = CONF_JWT_RS256;
	snprintf(path, sizeof(path), "%s",
	    write_file("attack.pub", RSA_PUB, strlen(RSA_PUB)));
	snprintf(
	    c.jwt_public_key_file, sizeof(c.jwt_public_key_file), "%s", path);
	vf = jwtauth_new(&c, err, sizeof(err));
	assert_non_null(vf);
	tok2 = make_token(
	    JWT_ALG_HS256, RSA_PUB, strlen(RSA_PUB) - 1, "{\"sub\":\"admin\"}");
	assert_int_equal(check(vf, tok), JWTAUTH_REJECT_WRONG_ALG);
	assert_int_equal(check(vf, tok2), JWTAUTH_REJECT_WRONG_ALG);
	free(tok);
	free(tok2);
	jwtauth_free(v);
	jwtauth_free(vf);
}

static void
alg_none_is_rejected_with_or_without_a_signature(void **state)
{
	struct jwtauth *hs = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	struct jwtauth *rs = verifier(CONF_JWT_RS256, RSA_PUB, LEEWAY);
	static const char *const algs[] = {"{\"alg\":\"none\"}",
	    "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
	    "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"\"}"};
	size_t i;

	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		char *unsigned_tok = raw_token(algs[i], "{\"sub\":\"1\"}", "");
		char *signed_tok =
		    raw_token(algs[i], "{\"sub\":\"1\"}", "AAAA");

		assert_int_equal(
		    check(hs, unsigned_tok), JWTAUTH_REJECT_WRONG_ALG);
		assert_int_equal(
		    check(rs, unsigned_tok), JWTAUTH_REJECT_WRONG_ALG);
		assert_int_equal(
		    check(hs, signed_tok), JWTAUTH_REJECT_WRONG_ALG);
		free(unsigned_tok);
		free(signed_tok);
	}
	jwtauth_free(hs);
	jwtauth_free(rs);
}

static void
a_token_of_another_algorithm_is_rejected(void **state)
{
	struct jwtauth *hs = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	struct jwtauth *es = verifier(CONF_JWT_ES256, EC_PUB, LEEWAY);
	char *hs384 = make_token(
	    JWT_ALG_HS384, SECRET, strlen(SECRET), "{\"sub\":\"1\"}");
	char *rs256 = make_token(
	    JWT_ALG_RS256, RSA_PRIV, strlen(RSA_PRIV), "{\"sub\":\"1\"}");
	char *es256 = make_token(
	    JWT_ALG_ES256, EC_PRIV, strlen(EC_PRIV), "{\"sub\":\"1\"}");

	assert_int_equal(check(hs, hs384), JWTAUTH_REJECT_WRONG_ALG);
	assert_int_equal(check(hs, rs256), JWTAUTH_REJECT_WRONG_ALG);
	assert_int_equal(check(hs, es256), JWTAUTH_REJECT_WRONG_ALG);
	assert_int_equal(check(es, rs256), JWTAUTH_REJECT_WRONG_ALG);
	free(hs384);
	free(rs256);
	free(es256);
	jwtauth_free(hs);
	jwtauth_free(es);
}

static void
an_expired_token_beyond_the_leeway_is_rejected(void **state)
{
	/* Valid while now < exp + leeway. */
	assert_int_equal(check_hs_claims("{\"sub\":\"1\",\"exp\":1699999969}"),
	    JWTAUTH_REJECT_EXPIRED);
	assert_int_equal(check_hs_claims("{\"sub\":\"1\",\"exp\":1699999970}"),
	    JWTAUTH_REJECT_EXPIRED);
	assert_int_equal(check_hs_claims("{\"sub\":\"1\",\"exp\":0}"),
	    JWTAUTH_REJECT_EXPIRED);
	assert_int_equal(check_hs_claims("{\"sub\":\"1\",\"exp\":-5}"),
	    JWTAUTH_REJECT_EXPIRED);
}

static void
an_expired_token_within_the_leeway_is_accepted(void **state)
{
	struct jwtauth *v0 = verifier(CONF_JWT_HS256, SECRET, 0);
	char *tok = hs_token("{\"sub\":\"1\",\"exp\":1700000000}");

	assert_int_equal(check_hs_claims("{\"sub\":\"1\",\"exp\":1699999971}"),
	    JWTAUTH_REJECT_NONE);
	/* A fractional NumericDate is allowed (RFC 7519 2). */
	assert_int_equal(
	    check_hs_claims("{\"sub\":\"1\",\"exp\":1699999971.5}"),
	    JWTAUTH_REJECT_NONE);
	/* Without leeway the token dies at exp exactly. */
	assert_int_equal(check_at(v0, tok, NOW - 1), JWTAUTH_REJECT_NONE);
	assert_int_equal(check_at(v0, tok, NOW), JWTAUTH_REJECT_EXPIRED);
	free(tok);
	jwtauth_free(v0);
}

static void
a_token_without_exp_is_refused_as_no_exp(void **state)
{
	/* It would never expire: exp is required. */
	struct jwtauth *v = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	char *tok = make_token_exp(
	    JWT_ALG_HS256, SECRET, strlen(SECRET), "{\"sub\":\"1\"}", false);
	char *nbf_only = make_token_exp(JWT_ALG_HS256, SECRET, strlen(SECRET),
	    "{\"sub\":\"1\",\"nbf\":1}", false);

	assert_int_equal(check(v, tok), JWTAUTH_REJECT_NO_EXP);
	assert_int_equal(check(v, nbf_only), JWTAUTH_REJECT_NO_EXP);
	assert_string_equal(
	    jwtauth_reject_str(JWTAUTH_REJECT_NO_EXP), "no_exp");
	free(tok);
	free(nbf_only);
	jwtauth_free(v);
}

static void
a_token_used_before_nbf_beyond_the_leeway_is_rejected(void **state)
{
	assert_int_equal(check_hs_claims("{\"sub\":\"1\",\"nbf\":1700000031}"),
	    JWTAUTH_REJECT_NOT_YET_VALID);
	assert_int_equal(check_hs_claims("{\"sub\":\"1\",\"nbf\":1700000030}"),
	    JWTAUTH_REJECT_NONE);
	assert_int_equal(
	    check_hs_claims("{\"sub\":\"1\",\"nbf\":1}"), JWTAUTH_REJECT_NONE);
}

static void
exp_or_nbf_that_is_not_a_number_is_bad_claims(void **state)
{
	static const char *const bad[] = {
	    "{\"sub\":\"1\",\"exp\":\"1800000000\"}",
	    "{\"sub\":\"1\",\"exp\":null}",
	    "{\"sub\":\"1\",\"exp\":true}",
	    "{\"sub\":\"1\",\"exp\":[1800000000]}",
	    "{\"sub\":\"1\",\"exp\":1e300}",
	    "{\"sub\":\"1\",\"exp\":9223372036854775807}",
	    "{\"sub\":\"1\",\"nbf\":\"0\"}",
	    "{\"sub\":\"1\",\"nbf\":-1e300}",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    check_hs_claims(bad[i]), JWTAUTH_REJECT_BAD_CLAIMS);
}

static void
a_token_without_sub_is_rejected(void **state)
{
	assert_int_equal(
	    check_hs_claims("{\"exp\":1800000000}"), JWTAUTH_REJECT_NO_SUB);
	assert_int_equal(check_hs_claims("{}"), JWTAUTH_REJECT_NO_SUB);
}

static void
a_sub_that_is_not_a_valid_user_id_is_rejected(void **state)
{
	static const char *const bad[] = {
	    "{\"sub\":\"\"}",
	    "{\"sub\":\"a b\"}",
	    "{\"sub\":\"a*\"}",
	    "{\"sub\":\"a\\tb\"}",
	    "{\"sub\":\"a\\u0085b\"}",
	    "{\"sub\":42}",
	    "{\"sub\":null}",
	    "{\"sub\":[\"1\"]}",
	};
	char big[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		    check_hs_claims(bad[i]), JWTAUTH_REJECT_BAD_SUB);

	/* 256 bytes is the longest id. */
	snprintf(big, sizeof(big), "{\"sub\":\"%0256d\"}", 7);
	assert_int_equal(check_hs_claims(big), JWTAUTH_REJECT_NONE);
	snprintf(big, sizeof(big), "{\"sub\":\"%0257d\"}", 7);
	assert_int_equal(check_hs_claims(big), JWTAUTH_REJECT_BAD_SUB);
	/* Ids from real issuers. */
	assert_int_equal(
	    check_hs_claims("{\"sub\":\"auth0|123\"}"), JWTAUTH_REJECT_NONE);
	assert_int_equal(check_hs_claims("{\"sub\":\"a+b@example.com\"}"),
	    JWTAUTH_REJECT_NONE);
	assert_int_equal(
	    check_hs_claims("{\"sub\":\"J\\u00fcrgen\"}"), JWTAUTH_REJECT_NONE);
}

static void
subs_grant_exact_channels_and_trailing_star_prefixes(void **state)
{
	struct jwtauth_claims *c =
	    hs_claims("{\"sub\":\"1\",\"subs\":[\"news\",\"chat.*\"]}");

	assert_int_equal(c->n_subs, 2);
	assert_string_equal(c->subs[1].text, "chat.*");
	assert_true(jwtauth_claims_may_subscribe(c, "news", 4));
	assert_false(jwtauth_claims_may_subscribe(c, "news2", 5));
	assert_false(jwtauth_claims_may_subscribe(c, "new", 3));
	assert_false(jwtauth_claims_may_subscribe(c, "News", 4));
	/* Lengths are honoured: no NUL needed. */
	assert_true(jwtauth_claims_may_subscribe(c, "newsroom", 4));
	assert_true(jwtauth_claims_may_subscribe(c, "chat.x", 6));
	assert_true(jwtauth_claims_may_subscribe(c, "chat.a.b", 8));
	assert_true(jwtauth_claims_may_subscribe(c, "chat.", 5));
	assert_false(jwtauth_claims_may_subscribe(c, "chat", 4));
	assert_false(jwtauth_claims_may_subscribe(c, "chatx", 5));
	assert_false(jwtauth_claims_may_subscribe(c, "xchat.a", 7));
	/* A channel named "chat.*" cannot exist; as a name it matches as
	 * any other string would. */
	assert_false(jwtauth_claims_may_publish(c, "channel:news", 12));
	jwtauth_claims_free(c);

	c = hs_claims("{\"sub\":\"1\",\"subs\":[\"*\"]}");
	assert_true(jwtauth_claims_may_subscribe(c, "anything", 8));
	assert_true(jwtauth_claims_may_subscribe(c, "a", 1));
	jwtauth_claims_free(c);
}

static void
pubs_grant_exact_addresses_and_trailing_star_prefixes(void **state)
{
	struct jwtauth_claims *c =
	    hs_claims("{\"sub\":\"1\",\"pubs\":"
		      "[\"user:7\",\"channel:chat.*\"]}");

	assert_int_equal(c->n_pubs, 2);
	assert_int_equal(c->n_subs, 0);
	assert_true(jwtauth_claims_may_publish(c, "user:7", 6));
	assert_false(jwtauth_claims_may_publish(c, "user:77", 7));
	assert_false(jwtauth_claims_may_publish(c, "user:8", 6));
	assert_true(jwtauth_claims_may_publish(c, "channel:chat.room", 17));
	assert_false(jwtauth_claims_may_publish(c, "channel:chat", 12));
	assert_false(jwtauth_claims_may_publish(c, "channel:news", 12));
	assert_false(jwtauth_claims_may_publish(c, "all", 3));
	/* pubs grant publishing, not subscribing. */
	assert_false(jwtauth_claims_may_subscribe(c, "chat.room", 9));
	jwtauth_claims_free(c);

	c = hs_claims("{\"sub\":\"1\",\"pubs\":[\"user:*\",\"all\"]}");
	assert_true(jwtauth_claims_may_publish(c, "user:9", 6));
	assert_true(jwtauth_claims_may_publish(c, "all", 3));
	assert_false(jwtauth_claims_may_publish(c, "channel:x", 9));
	jwtauth_claims_free(c);

	c = hs_claims("{\"sub\":\"1\",\"pubs\":[\"*\"]}");
	assert_true(jwtauth_claims_may_publish(c, "all", 3));
	assert_true(jwtauth_claims_may_publish(c, "channel:x", 9));
	assert_true(jwtauth_claims_may_publish(c, "user:1", 6));
	jwtauth_claims_free(c);
}

static void
absent_or_empty_claims_grant_nothing(void **state)
{
	static const char *const tokens[] = {
	    "{\"sub\":\"1\"}", "{\"sub\":\"1\",\"subs\":[],\"pubs\":[]}"};
	size_t i;

	for (i = 0; i < 2; i++) {
		struct jwtauth_claims *c = hs_claims(tokens[i]);

		assert_int_equal(c->n_subs, 0);
		assert_int_equal(c->n_pubs, 0);
		assert_false(jwtauth_claims_may_subscribe(c, "news", 4));
		assert_false(jwtauth_claims_may_subscribe(c, "*", 1));
		assert_false(jwtauth_claims_may_subscribe(c, "", 0));
		assert_false(jwtauth_claims_may_publish(c, "user:1", 6));
		assert_false(jwtauth_claims_may_publish(c, "all", 3));
		jwtauth_claims_free(c);
	}
	assert_false(jwtauth_claims_may_subscribe(NULL, "news", 4));
	assert_false(jwtauth_claims_may_publish(NULL, "all", 3));
}

static void
subs_or_pubs_of_the_wrong_shape_are_bad_claims(void **state)
{
	static const char *const bad[] = {
	    "{\"sub\":\"1\",\"subs\":\"news\"}",
	    "{\"sub\":\"1\",\"subs\":null}",
	    "{\"sub\":\"1\",\"subs\":{\"news\":true}}",
	    "{\"sub\":\"1\",\"subs\":[1]}",
	    "{\"sub\":\"1\",\"subs\":[\"news\",null]}",
	    "{\"sub\":\"1\",\"subs\":[\"\"]}",
	    "{\"sub\":\"1\",\"subs\":[\"a b\"]}",
	    "{\"sub\":\"1\",\"subs\":[\"a*b\"]}",
	    "{\"sub\":\"1\",\"subs\":[\"*a\"]}",
	    "{\"sub\":\"1\",\"subs\":[\"**\"]}",
	    "{\"sub\":\"1\",\"pubs\":\"all\"}",
	    "{\"sub\":\"1\",\"pubs\":[\"news\"]}",
	    "{\"sub\":\"1\",\"pubs\":[\"foo:x\"]}",
	    "{\"sub\":\"1\",\"pubs\":[\"user:\"]}",
	    "{\"sub\":\"1\",\"pubs\":[\"chan*\"]}",
	    "{\"sub\":\"1\",\"pubs\":[\"all*\"]}",
	    "{\"sub\":\"1\",\"pubs\":[\"user:a*b*\"]}",
	    "{\"sub\":\"1\",\"pubs\":[[\"user:1\"]]}",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum jwtauth_reject r = check_hs_claims(bad[i]);

		if (r != JWTAUTH_REJECT_BAD_CLAIMS)
			fail_msg("%s: %s", bad[i], jwtauth_reject_str(r));
	}
	/* Other claims are ignored, whatever their type. */
	assert_int_equal(
	    check_hs_claims("{\"sub\":\"1\",\"iss\":5,\"aud\":[\"x\"],"
			    "\"extra\":{\"subs\":1}}"),
	    JWTAUTH_REJECT_NONE);
}

static struct jwtauth *
file_verifier(enum conf_jwt_alg alg, const char *contents, size_t len,
    char *err, size_t errlen)
{
	struct conf c;
	const char *path = write_file("key", contents, len);

	conf_defaults(&c);
	snprintf(c.file, sizeof(c.file), "wspush.conf");
	c.jwt_alg = alg;
	if (alg == CONF_JWT_HS256)
		snprintf(
		    c.jwt_secret_file, sizeof(c.jwt_secret_file), "%s", path);
	else
		snprintf(c.jwt_public_key_file, sizeof(c.jwt_public_key_file),
		    "%s", path);
	err[0] = '\0';
	return jwtauth_new(&c, err, errlen);
}

static void
the_secret_file_loses_exactly_one_trailing_newline(void **state)
{
	char *plain = hs_token("{\"sub\":\"1\"}");
	char *with_nl = make_token(
	    JWT_ALG_HS256, SECRET "\n", strlen(SECRET) + 1, "{\"sub\":\"1\"}");
	char err[512];
	struct jwtauth *v;

	v = file_verifier(
	    CONF_JWT_HS256, SECRET "\n", strlen(SECRET) + 1, err, sizeof(err));
	assert_non_null(v);
	assert_int_equal(check(v, plain), JWTAUTH_REJECT_NONE);
	assert_int_equal(check(v, with_nl), JWTAUTH_REJECT_BAD_SIGNATURE);
	jwtauth_free(v);

	v = file_verifier(
	    CONF_JWT_HS256, SECRET, strlen(SECRET), err, sizeof(err));
	assert_non_null(v);
	assert_int_equal(check(v, plain), JWTAUTH_REJECT_NONE);
	jwtauth_free(v);

	/* Only one: the second newline is part of the secret. */
	v = file_verifier(CONF_JWT_HS256, SECRET "\n\n", strlen(SECRET) + 2,
	    err, sizeof(err));
	assert_non_null(v);
	assert_int_equal(check(v, plain), JWTAUTH_REJECT_BAD_SIGNATURE);
	assert_int_equal(check(v, with_nl), JWTAUTH_REJECT_NONE);
	jwtauth_free(v);

	/* A public key file works with or without its final newline. */
	v = file_verifier(
	    CONF_JWT_ES256, EC_PUB, strlen(EC_PUB) - 1, err, sizeof(err));
	assert_non_null(v);
	assert_int_equal(check(v, OPENSSL_ES256), JWTAUTH_REJECT_NONE);
	jwtauth_free(v);
	free(plain);
	free(with_nl);
}

static void
assert_err(const char *err, const char *part)
{
	if (strstr(err, part) == NULL)
		fail_msg("\"%s\" lacks \"%s\"", err, part);
}

static void
key_file_errors_name_the_key_and_the_file(void **state)
{
	static const char cert[] = "-----BEGIN CERTIFICATE-----\nMII\n"
				   "-----END CERTIFICATE-----\n";
	char err[1024], dir[128];
	struct conf c;

	assert_null(
	    file_verifier(CONF_JWT_HS256, "short\n", 6, err, sizeof(err)));
	assert_err(err, "wspush.conf: auth.jwt_secret_file: ");
	assert_err(err, tmpdir);
	assert_err(err, "secret is 5 bytes; HS256 needs at least 32");

	assert_null(file_verifier(CONF_JWT_HS256, "\n", 1, err, sizeof(err)));
	assert_err(err, "auth.jwt_secret_file");
	assert_err(err, "empty");

	assert_null(file_verifier(
	    CONF_JWT_RS256, RSA_PRIV, strlen(RSA_PRIV), err, sizeof(err)));
	assert_err(err, "wspush.conf: auth.jwt_public_key_file: ");
	assert_err(err, "private key");

	assert_null(file_verifier(
	    CONF_JWT_RS256, cert, strlen(cert), err, sizeof(err)));
	assert_err(err, "certificate");

	assert_null(file_verifier(
	    CONF_JWT_ES256, SECRET, strlen(SECRET), err, sizeof(err)));
	assert_err(err, "not a PEM public key");

	conf_defaults(&c);
	snprintf(c.jwt_secret_file, sizeof(c.jwt_secret_file),
	    "%s/does-not-exist", tmpdir);
	assert_null(jwtauth_new(&c, err, sizeof(err)));
	assert_err(err, "auth.jwt_secret_file: ");
	assert_err(err, "/does-not-exist: No such file or directory");

	snprintf(dir, sizeof(dir), "%s", tmpdir);
	snprintf(c.jwt_secret_file, sizeof(c.jwt_secret_file), "%s", dir);
	assert_null(jwtauth_new(&c, err, sizeof(err)));
	assert_err(err, "Is a directory");

	conf_defaults(&c);
	c.jwt_alg = CONF_JWT_ES256;
	assert_null(jwtauth_new(&c, err, sizeof(err)));
	assert_err(err, "auth.jwt_public_key_file: required for "
			"auth.jwt_alg = ES256");

	assert_null(
	    jwtauth_new_key(CONF_JWT_HS256, NULL, 0, 0, err, sizeof(err)));
	assert_err(err, "empty");
	jwtauth_free(NULL);
	jwtauth_claims_free(NULL);
}

static void
a_token_over_8_kib_is_too_long(void **state)
{
	struct jwtauth *v = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	char *grants = malloc(JWTAUTH_TOKEN_MAX);
	char *garbage = malloc(JWTAUTH_TOKEN_MAX + 2);
	char *tok;
	size_t pad;

	assert_non_null(grants);
	assert_non_null(garbage);
	/* A real token just under the cap is fine... */
	for (pad = 5900;; pad++) {
		snprintf(grants, JWTAUTH_TOKEN_MAX,
		    "{\"sub\":\"1\",\"pad\":\"%0*d\"}", (int)pad, 0);
		tok = hs_token(grants);
		if (strlen(tok) > JWTAUTH_TOKEN_MAX - 4)
			break;
		free(tok);
	}
	assert_true(strlen(tok) <= JWTAUTH_TOKEN_MAX);
	assert_int_equal(check(v, tok), JWTAUTH_REJECT_NONE);
	free(tok);
	/* ...one over it is refused before any parsing. */
	for (;; pad++) {
		snprintf(grants, JWTAUTH_TOKEN_MAX,
		    "{\"sub\":\"1\",\"pad\":\"%0*d\"}", (int)pad, 0);
		tok = hs_token(grants);
		if (strlen(tok) > JWTAUTH_TOKEN_MAX)
			break;
		free(tok);
	}
	assert_int_equal(check(v, tok), JWTAUTH_REJECT_TOO_LONG);
	free(tok);
	memset(garbage, 'a', JWTAUTH_TOKEN_MAX + 1);
	garbage[JWTAUTH_TOKEN_MAX + 1] = '\0';
	assert_int_equal(check(v, garbage), JWTAUTH_REJECT_TOO_LONG);
	garbage[JWTAUTH_TOKEN_MAX] = '\0';
	assert_int_equal(check(v, garbage), JWTAUTH_REJECT_MALFORMED);
	free(garbage);
	free(grants);
	jwtauth_free(v);
}

static void
garbage_tokens_are_malformed(void **state)
{
	struct jwtauth *v = verifier(CONF_JWT_HS256, SECRET, LEEWAY);
	char *good = hs_token("{\"sub\":\"1\"}");
	char buf[1024];
	static const char *const bad[] = {"", "a", ".", "..", "...", "a.b",
	    "a.b.c", "a.b.c.d", "eyJ.eyJ.x", "\xff\xfe.\x01.\x02",
	    "Bearer abc.def.ghi"};
	static const char *const hdrs[] = {
	    "[]",
	    "\"HS256\"",
	    "{\"alg\":\"HS256\"",
	    "{\"alg\":5}",
	    "{\"typ\":\"JWT\"}",
	    "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
	    "{\"alg\":\"HS256\",\"typ\":\"foo\"}",
	    "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
	};
	static const char *const payloads[] = {
	    "[]",
	    "\"x\"",
	    "{\"sub\":\"1\",\"sub\":\"2\"}",
	    "{",
	    "",
	    "{\"sub\":\"a\\u0000b\"}",
	};
	struct jwtauth_claims *c = NULL;
	enum jwtauth_reject why;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check(v, bad[i]), JWTAUTH_REJECT_MALFORMED);
	for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		char *t = raw_token(hdrs[i], "{\"sub\":\"1\"}", "AAAA");

		if (check(v, t) != JWTAUTH_REJECT_MALFORMED)
			fail_msg("header %s accepted", hdrs[i]);
		free(t);
	}
	for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		char *t = raw_token("{\"alg\":\"HS256\"}", payloads[i], "AAAA");

		if (check(v, t) != JWTAUTH_REJECT_MALFORMED)
			fail_msg("payload %s accepted", payloads[i]);
		free(t);
	}
	/* A good token with anything around or inside it. */
	snprintf(buf, sizeof(buf), "%s\n", good);
	assert_int_equal(check(v, buf), JWTAUTH_REJECT_MALFORMED);
	snprintf(buf, sizeof(buf), " %s", good);
	assert_int_equal(check(v, buf), JWTAUTH_REJECT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s=", good);
	assert_int_equal(check(v, buf), JWTAUTH_REJECT_MALFORMED);
	snprintf(buf, sizeof(buf), "%s.", good);
	assert_int_equal(check(v, buf), JWTAUTH_REJECT_MALFORMED);
	/* An embedded NUL: len covers the whole token. */
	snprintf(buf, sizeof(buf), "%s", good);
	buf[strlen(good) - 3] = '\0';
	assert_int_equal(
	    jwtauth_verify(v, buf, strlen(good), NOW, &c, &why), -1);
	assert_int_equal(why, JWTAUTH_REJECT_MALFORMED);
	assert_null(c);
	/* A header-only 5-part JWE. */
	snprintf(buf, sizeof(buf), "%s.a.b", good);
	assert_int_equal(check(v, buf), JWTAUTH_REJECT_MALFORMED);
	/* NULL token or verifier. */
	assert_int_equal(jwtauth_verify(v, NULL, 0, NOW, &c, &why), -1);
	assert_int_equal(why, JWTAUTH_REJECT_MALFORMED);
	assert_int_equal(
	    jwtauth_verify(NULL, good, strlen(good), NOW, &c, &why), -1);
	assert_int_equal(why, JWTAUTH_REJECT_INTERNAL);
	/* And the good one still passes. */
	assert_int_equal(check(v, good), JWTAUTH_REJECT_NONE);
	free(good);
	jwtauth_free(v);
}

static void
every_reason_has_a_distinct_counter_name(void **state)
{
	int i, j;

	assert_string_equal(jwtauth_reject_str(JWTAUTH_REJECT_NONE), "none");
	assert_string_equal(
	    jwtauth_reject_str(JWTAUTH_REJECT_EXPIRED), "expired");
	assert_string_equal(
	    jwtauth_reject_str(JWTAUTH_REJECT_BAD_SIGNATURE), "bad_signature");
	assert_string_equal(
	    jwtauth_reject_str(JWTAUTH_REJECT_COUNT), "unknown");
	for (i = 0; i < JWTAUTH_REJECT_COUNT; i++) {
		const char *s = jwtauth_reject_str(i);

		assert_string_not_equal(s, "unknown");
		for (j = 0; j < i; j++)
			assert_string_not_equal(s, jwtauth_reject_str(j));
	}
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(an_hs256_token_with_the_right_secret_is_accepted),
	    cmocka_unit_test(
		an_hs256_token_signed_with_another_secret_is_a_bad_signature),
	    cmocka_unit_test(
		a_payload_changed_after_signing_is_a_bad_signature),
	    cmocka_unit_test(an_rs256_token_is_accepted_with_the_public_key),
	    cmocka_unit_test(an_es256_token_is_accepted_with_the_public_key),
	    cmocka_unit_test(tokens_signed_by_openssl_are_accepted),
	    cmocka_unit_test(
		an_hs256_token_signed_with_the_rs256_public_key_text_is_rejected),
	    cmocka_unit_test(alg_none_is_rejected_with_or_without_a_signature),
	    cmocka_unit_test(a_token_of_another_algorithm_is_rejected),
	    cmocka_unit_test(an_expired_token_beyond_the_leeway_is_rejected),
	    cmocka_unit_test(an_expired_token_within_the_leeway_is_accepted),
	    cmocka_unit_test(a_token_without_exp_is_refused_as_no_exp),
	    cmocka_unit_test(
		a_token_used_before_nbf_beyond_the_leeway_is_rejected),
	    cmocka_unit_test(exp_or_nbf_that_is_not_a_number_is_bad_claims),
	    cmocka_unit_test(a_token_without_sub_is_rejected),
	    cmocka_unit_test(a_sub_that_is_not_a_valid_user_id_is_rejected),
	    cmocka_unit_test(
		subs_grant_exact_channels_and_trailing_star_prefixes),
	    cmocka_unit_test(
		pubs_grant_exact_addresses_and_trailing_star_prefixes),
	    cmocka_unit_test(absent_or_empty_claims_grant_nothing),
	    cmocka_unit_test(subs_or_pubs_of_the_wrong_shape_are_bad_claims),
	    cmocka_unit_test(
		the_secret_file_loses_exactly_one_trailing_newline),
	    cmocka_unit_test(key_file_errors_name_the_key_and_the_file),
	    cmocka_unit_test(a_token_over_8_kib_is_too_long),
	    cmocka_unit_test(garbage_tokens_are_malformed),
	    cmocka_unit_test(every_reason_has_a_distinct_counter_name),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
