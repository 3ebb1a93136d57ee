/* What the ingress reads out of a request besides its signature: the JSON body (validated,
 * depth-capped), the message id and event type (RFC 6901 pointer or header), the content
 * type and the W3C trace context. */
#ifndef ING_EXTRACT_H
#define ING_EXTRACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "hl/sigverify.h"
#include "hl/error.h"
#include "hl/proto.h"
#include "hl/jsonptr.h"

#define ING_MAX_MESSAGE_ID HL_MESSAGE_ID_MAX
#define ING_MAX_EVENT_TYPE HL_EVENT_TYPE_MAX
#define ING_JSON_MAX_DEPTH 64
#define ING_TRACEPARENT_LEN 55

/* Where one field comes from: a JSON pointer into the body, or a request header. */
typedef struct {
    char *pointer; /* RFC 6901 pointer ("/messageId"), or NULL when `header` is used */
    char *header;  /* header name ("webhook-id"), or NULL */
    size_t max_len;
} ing_field_src_t;

/* Why a body or field was refused; each maps to a stable error code. */
typedef enum {
    ING_EX_OK = 0,
    ING_EX_INVALID_JSON, /* "invalid_json": not JSON, duplicate keys, too deep, bad UTF-8 */
    ING_EX_MISSING,      /* "missing_field": pointer/header resolves to nothing */
    ING_EX_INVALID,      /* "invalid_field": not a string, empty, or holds a NUL */
    ING_EX_TOO_LONG,     /* "field_too_long" */
} ing_ex_result_t;

const char *ing_ex_code(ing_ex_result_t r);

/* The configuration's check of a pointer: the shared resolver's syntax rule (hl_jsonptr_valid),
 * so that a pointer the configuration accepts is one the resolver reads. */
static inline bool ing_pointer_valid(const char *p)
{
    return hl_jsonptr_valid(p);
}

/* Returns true when the nesting depth of the JSON text never exceeds max_depth (strings are
 * skipped, so brackets inside them do not count). A linear pre-scan, so a hostile body
 * cannot make the parser recurse deeply. */
bool ing_json_depth_ok(const unsigned char *s, size_t n, int max_depth);

/* Parses a body: depth check, then jansson with duplicate keys refused. On success *out is
 * a new reference owned by the caller (json_decref). */
ing_ex_result_t ing_json_parse(const unsigned char *body, size_t n, json_t **out);

/* Extracts one field as a NUL-terminated string into out (cap >= src->max_len + 1). `root`
 * may be NULL when the field comes from a header. */
ing_ex_result_t ing_field_get(const ing_field_src_t *src, json_t *root, const hl_sig_headers_t *h,
                              char *out, size_t cap);

/* A request's message id and event type (each from a pointer into the body or from a header)
 * in one pass over the body without parsing it into values (hl/jsonscan.h): the same answers
 * as ing_json_parse and ing_field_get, the message id's refusal before the event type's. */
ing_ex_result_t ing_extract_fields(const unsigned char *body, size_t n, const ing_field_src_t *mid,
                                   const ing_field_src_t *type, const hl_sig_headers_t *h,
                                   char *mid_out, size_t mid_cap, char *type_out, size_t type_cap);

/* Returns true for "application/json" or "application/<x>+json", any case, optional
 * parameters ("; charset=utf-8"). NULL is false. */
bool ing_content_type_json(const char *ct);

/* Returns true when `tp` is a valid W3C traceparent of version 00: "00-<32 hex>-<16 hex>-<2
 * hex>", lowercase, trace id and parent id not all zeros. */
bool ing_traceparent_valid(const char *tp);

/* Writes a new traceparent "00-<random trace id>-<random span id>-01" into out[56]. */
void ing_traceparent_new(char out[ING_TRACEPARENT_LEN + 1]);

#endif
