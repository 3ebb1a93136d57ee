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

/* Parses a Unix timestamp in seconds: 1 to 12 ASCII digits, nothing else. Returns 0 or
 * HL_EPARSE. */
int ing_parse_unix_s(const char *s, size_t n, int64_t *out) HL_MUST_CHECK;

#endif
