/*
 * fuzz_conf.c - libFuzzer target for the config parser.
 *
 * Any input must load or fail with a message, never crash. A config that
 * loads must survive the -t round trip: conf_print() output loads again
 * and prints identically.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *
print_to_string(const struct conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		abort();
	conf_print(c, f);
	if (fclose(f) != 0)
		abort();
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct conf c, c2;
	char err[512], *text, *first, *second;

	if (size > 64 * 1024)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (conf_load_string(&c, "fuzz.conf", text, err, sizeof(err)) == 0) {
		(void)conf_origin_allowed(&c, "https://a.example.com");
		(void)conf_origin_allowed(&c, "http://b.a.example.com:8080");
		first = print_to_string(&c);
		if (conf_load_string(
			&c2, "fuzz.conf", first, err, sizeof(err)) != 0) {
			fprintf(
			    stderr, "round trip rejected: %s\n%s", err, first);
			abort();
		}
		second = print_to_string(&c2);
		if (strcmp(first, second) != 0) {
			fprintf(stderr, "round trip differs:\n%s\n---\n%s",
			    first, second);
			abort();
		}
		free(first);
		free(second);
	} else if (err[0] == '\0' || strncmp(err, "fuzz.conf", 9) != 0) {
		abort(); /* every failure names the file */
	}
	free(text);
	return 0;
}
