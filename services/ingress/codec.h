/* A bounded header lookup over the request's header list and timestamp parsing; base64 and
 * hex come from hl/codec.h. */
#ifndef ING_CODEC_H
#define ING_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "hl/codec.h"
#include "hl/error.h"

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

/* Longest source name: the {source} of /v1/webhooks/{source}. */
#define ING_SOURCE_NAME_MAX 64

/* Decodes a source name as it arrived in the request path (n bytes at raw, percent escapes
 * still encoded) into out, NUL-terminated. Returns its length, or -1 when the name is empty,
 * decodes to more than ING_SOURCE_NAME_MAX bytes, holds an escape that is not '%' and two hex
 * digits, or decodes to any byte outside [a-z0-9_-] (so an escaped NUL, '/' or '.' is refused
 * rather than cut at or normalised away). Also the rule for names in the configuration. */
int ing_source_name_decode(const char *raw, size_t n, char out[ING_SOURCE_NAME_MAX + 1]);

/* Parses a Unix timestamp in seconds: 1 to 12 ASCII digits, nothing else. Returns 0 or
 * HL_EPARSE. */
int ing_parse_unix_s(const char *s, size_t n, int64_t *out) HL_MUST_CHECK;

#endif
