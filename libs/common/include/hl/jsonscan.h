/* One pass over a JSON text without building it: validates it as jansson's json_loadb does with
 * JSON_REJECT_DUPLICATES (an object or an array at the top and nothing after it but
 * whitespace, UTF-8 only, no \u0000, no lone surrogates, no integer outside int64_t, no number
 * that overflows a double, no key twice in one object), and finds what RFC 6901 pointers
 * resolve to there, as hl_jsonptr_get would in the parsed value. The ingress reads a body's
 * message id and event type with it: a parse into jansson values cost about half of what its
 * handler executes per request. tests/unit/test_jsonscan.c and the fuzz target
 * fuzz_ingress_extract hold it to jansson and hl_jsonptr_get. */
#ifndef HL_JSONSCAN_H
#define HL_JSONSCAN_H

#include <stddef.h>
#include <sys/types.h>

#include "hl/error.h"

/* Pointers one scan resolves at most. */
#define HL_JSCAN_MAX_PTRS 4

/* What a pointer resolved to. */
typedef enum {
    HL_JSCAN_NONE = 0, /* nothing (or the pointer is not valid) */
    HL_JSCAN_NULL,
    HL_JSCAN_STRING,
    HL_JSCAN_OTHER, /* a number, true, false, an object or an array */
} hl_jscan_kind_t;

typedef struct {
    hl_jscan_kind_t kind;
    const unsigned char *raw; /* HL_JSCAN_STRING: its bytes between the quotes, escapes as sent */
    size_t raw_len;
} hl_jscan_found_t;

/* Scans s (n bytes) with at most max_depth nested objects and arrays (deeper is invalid) and
 * fills found[i] for ptrs[i] (i < nptrs). Returns 0; HL_EPARSE when the text is not valid (or
 * memory for its keys ran out), found[] then undefined; HL_EINVAL for more than
 * HL_JSCAN_MAX_PTRS pointers or a text over 2 GiB. */
int hl_json_scan(const unsigned char *s, size_t n, int max_depth, const char *const *ptrs,
                 size_t nptrs, hl_jscan_found_t *found) HL_MUST_CHECK;

/* Decodes the raw bytes of a string hl_json_scan found into out, NUL-terminated as jansson
 * would hold it. Returns the decoded length, or -1 when it needs more than cap - 1 bytes or the
 * bytes hold an escape no scan accepts (cut short, unknown, a lone surrogate half). */
ssize_t hl_json_unescape(const unsigned char *raw, size_t len, char *out, size_t cap);

#endif
