/*
 * fuzz_payload.c - libFuzzer target for payload classification, JSON string
 * escaping and base64. Classification must be consistent (strict JSON is
 * also JSON for json_any, JSON is UTF-8) and agree with jansson; escaped
 * text must parse back to the input; base64 must have the announced length
 * and alphabet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "addr.h"
#include "payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum payload_class strict, any;
	bool utf8 = utf8_valid(data, size);
	char *out;
	size_t n;

	strict = payload_classify(data, size, false);
	any = payload_classify(data, size, true);
	if (strict == PAYLOAD_JSON && any != PAYLOAD_JSON)
		abort();
	if ((strict == PAYLOAD_BINARY) != !utf8 ||
	    (any == PAYLOAD_BINARY) != !utf8)
		abort();
	if (utf8) {
		/* Differential against jansson, which refuses a little more
		 * (numbers beyond a double, \u0000 in keys). */
		json_error_t err;
		json_t *j = json_loadb((const char *)data, size,
		    JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
		    &err);
		size_t i = 0;

		/* jansson 2.14 accepts a raw NUL after a number ("[1\0]"). */
		if (j != NULL && any != PAYLOAD_JSON &&
		    memchr(data, '\0', size) == NULL)
			abort();
		if (j == NULL && any == PAYLOAD_JSON &&
		    strstr(err.text, "overflow") == NULL &&
		    strstr(err.text, "NUL byte in object key") == NULL)
			abort();
		json_decref(j);
		while (i < size && (data[i] == ' ' || data[i] == '\t' ||
				       data[i] == '\n' || data[i] == '\r'))
			i++;
		if ((strict == PAYLOAD_JSON) !=
		    (any == PAYLOAD_JSON && i < size &&
			(data[i] == '{' || data[i] == '[')))
			abort();
	}

	if (utf8) {
		json_error_t err;
		json_t *j;

		out = malloc(json_escaped_max(size));
		if (out == NULL)
			abort();
		n = json_escape_str(out, data, size);
		if (n > json_escaped_max(size))
			abort();
		j = json_loadb(out, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
		if (j == NULL || !json_is_string(j) ||
		    json_string_length(j) != size ||
		    memcmp(json_string_value(j), data, size) != 0)
			abort();
		json_decref(j);
		free(out);
	}

	out = malloc(base64_len(size) + 1);
	if (out == NULL)
		abort();
	n = base64_encode(out, data, size);
	if (n != base64_len(size) || n % 4 != 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (out[i] == '\0' || (strchr(b64, out[i]) == NULL &&
					  !(out[i] == '=' && i + 2 >= n)))
			abort();
	free(out);
	return 0;
}
