/*
 * fuzz_jwtauth.c - libFuzzer target for the JWT path (gateway/jwtauth.c).
 *
 * The first byte picks a mode. Even: the rest is a token, as a client
 * would send it, checked by a fixed HS256 verifier. Odd: the rest is a
 * claims object that libjwt signs with the verifier's secret, so the
 * checks after the signature (exp, nbf, sub, subs, pubs) see arbitrary
 * input too. Either way jwtauth_verify() must not crash or leak, and
 * accepted claims must be consistent (valid user, each grant matches what
 * it names, an exp that has not passed: a token without exp is refused).
 */
#include <jwt.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwtauth.h"

#define FUZZ_SECRET "fuzz-only-hs256-secret-0123456789abcdef"
#define FUZZ_NOW ((time_t)1700000000)
#define FUZZ_LEEWAY 30

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct jwtauth *verifier;

/* A grant must match the name it spells (without its '*'). */
static void
check_grants(const struct jwtauth_claims *c)
{
	size_t i;

	if (!addr_id_valid(c->user, c->user_len) ||
	    strlen(c->user) != c->user_len)
		abort();
	/* Every accepted session ends: exp is set and still ahead. */
	if (c->exp <= 0 || FUZZ_NOW >= c->exp + FUZZ_LEEWAY)
		abort();
	for (i = 0; i < c->n_subs; i++) {
		const struct jwtauth_grant *g = &c->subs[i];
		size_t n = g->len;

		if (strlen(g->text) != n)
			abort();
		if (n > 0 && g->text[n - 1] == '*')
			n--;
		if (!jwtauth_claims_may_subscribe(c, g->text, n))
			abort();
	}
	for (i = 0; i < c->n_pubs; i++) {
		const struct jwtauth_grant *g = &c->pubs[i];
		size_t n = g->len;

		if (strlen(g->text) != n)
			abort();
		if (n > 0 && g->text[n - 1] == '*')
			n--;
		if (!jwtauth_claims_may_publish(c, g->text, n))
			abort();
	}
	(void)jwtauth_claims_may_subscribe(c, "news", 4);
	(void)jwtauth_claims_may_publish(c, "all", 3);
	(void)jwtauth_claims_may_publish(c, "user:1", 6);
}

static void
verify(const char *token, size_t len)
{
	struct jwtauth_claims *c = NULL;
	enum jwtauth_reject why = JWTAUTH_REJECT_COUNT;

	if (jwtauth_verify(verifier, token, len, FUZZ_NOW, &c, &why) == 0) {
		if (c == NULL || why != JWTAUTH_REJECT_NONE)
			abort();
		check_grants(c);
		jwtauth_claims_free(c);
	} else if (c != NULL || why == JWTAUTH_REJECT_NONE ||
		   why >= JWTAUTH_REJECT_COUNT) {
		abort();
	}
}

/* Signs the claims object json with the verifier's secret, then checks. */
static void
sign_and_verify(const char *json)
{
	jwt_t *j = NULL;
	char *tok;

	if (jwt_new(&j) != 0)
		return;
	if (jwt_add_grants_json(j, json) == 0 &&
	    jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)FUZZ_SECRET,
		(int)strlen(FUZZ_SECRET)) == 0) {
		tok = jwt_encode_str(j);
		if (tok != NULL) {
			verify(tok, strlen(tok));
			free(tok);
		}
	}
	jwt_free(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	char *text;

	if (verifier == NULL) {
		verifier = jwtauth_new_key(CONF_JWT_HS256, FUZZ_SECRET,
		    strlen(FUZZ_SECRET), FUZZ_LEEWAY, err, sizeof(err));
		if (verifier == NULL)
			abort();
	}
	if (size == 0 || size > 2 * JWTAUTH_TOKEN_MAX)
		return 0;
	if ((data[0] & 1) == 0) {
		/* No NUL terminator: jwtauth_verify() must honour len. */
		text = malloc(size);
		if (text == NULL)
			return 0;
		memcpy(text, data + 1, size - 1);
		verify(text, size - 1);
	} else {
		text = malloc(size);
		if (text == NULL)
			return 0;
		memcpy(text, data + 1, size - 1);
		text[size - 1] = '\0';
		sign_and_verify(text);
	}
	free(text);
	return 0;
}
