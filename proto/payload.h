/*
 * payload.h - classification of a published payload, done once per message
 * by the bridge so that no worker repeats it: a JSON object or array is
 * embedded in the client frame as is, other UTF-8 becomes a JSON string,
 * anything else is base64. Also the two encoders the workers use to frame
 * text and binary payloads into JSON.
 */
#ifndef WSP_PAYLOAD_H
#define WSP_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

/*
 * Classifies p[0..len). With json_any (the payload came in a wspenv with
 * "json": true), any valid JSON text is PAYLOAD_JSON; otherwise only a JSON
 * object or array (surrounding whitespace allowed) is.
 */
enum payload_class payload_classify(const void *p, size_t len, bool json_any);

/* Bytes json_escape_str() needs at most for len input bytes (quotes incl). */
size_t json_escaped_max(size_t len);
/* Writes "..." (quoted, escaped per RFC 8259) of UTF-8 text; returns bytes
 * written. out must hold json_escaped_max(len). */
size_t json_escape_str(char *out, const void *s, size_t len);

size_t base64_len(size_t len);
/* Standard alphabet with padding, no NUL; returns bytes written. */
size_t base64_encode(char *out, const void *s, size_t len);

#endif
