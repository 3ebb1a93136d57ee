/* Strict decoders for the text encodings signatures arrive in (base64, hex) and a bounded
 * header lookup over the request's header list. */
#ifndef ING_CODEC_H
#define ING_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

/* Decodes standard base64 (RFC 4648 §4, '=' padding required when the length is not a
 * multiple of 4) from n bytes of `in` into out (cap bytes). Any other byte, bad padding or
 * non-zero trailing bits is refused. Returns the decoded length, HL_EPARSE or HL_ETOOBIG. */
int ing_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap) HL_MUST_CHECK;

/* Encodes n bytes as standard padded base64 into out (cap bytes, NUL-terminated).
 * Returns the text length or HL_ETOOBIG. */
int ing_base64_encode(const unsigned char *in, size_t n, char *out, size_t cap) HL_MUST_CHECK;

/* Decodes hex (either case, even length) into out (cap bytes). Returns length, HL_EPARSE
 * or HL_ETOOBIG. */
int ing_hex_decode(const char *in, size_t n, unsigned char *out, size_t cap) HL_MUST_CHECK;

/* One request header as civetweb hands it over (both borrowed, NUL-terminated). */
typedef struct {
    const char *name;
    const char *value;
} ing_header_t;

typedef struct {
    const ing_header_t *v; /* borrowed array */
    size_t n;
} ing_headers_t;

/* Finds header `name` (case-insensitive). Returns its value (borrowed), or NULL when absent.
 * *count (if non-NULL) receives how many times it occurs: callers that need one value refuse
 * a repeated header instead of guessing which copy counts. */
const char *ing_header_get(const ing_headers_t *h, const char *name, int *count);

/* Parses a Unix timestamp in seconds: 1 to 12 ASCII digits, nothing else. Returns 0 or
 * HL_EPARSE. */
int ing_parse_unix_s(const char *s, size_t n, int64_t *out) HL_MUST_CHECK;

#endif
