/* Batches: a source with `split` receives a JSON array (SendGrid posts its events so) and
 * each element becomes its own event, with its own message id and event type read from the
 * element by the source's pointers. */
#ifndef ING_SPLIT_H
#define ING_SPLIT_H

#include <jansson.h>
#include <stddef.h>

#include "extract.h"

/* Most elements one body may hold; more are refused (413 too_many_elements). */
#define ING_SPLIT_MAX 1000

typedef struct {
    char message_id[ING_MAX_MESSAGE_ID + 1];
    char event_type[ING_MAX_EVENT_TYPE + 1];
    char *json; /* the element serialised compactly, keys in their order (owned) */
    size_t len;
    char body_sha256[HL_SIG_SHA256_HEX + 1]; /* of json, once it is produced */
} ing_split_elem_t;

/* What ing_split refuses besides the field errors of ing_field_get. */
typedef enum {
    ING_SPLIT_OK = 0,
    ING_SPLIT_NOT_ARRAY, /* 400 "not_an_array" */
    ING_SPLIT_EMPTY,     /* 400 "empty_batch" */
    ING_SPLIT_TOO_MANY,  /* 413 "too_many_elements" */
    ING_SPLIT_FIELD,     /* 400: *field says why, *bad which element */
} ing_split_result_t;

/* Splits root (borrowed) into at most ING_SPLIT_MAX elements; message id and event type of
 * each come from mid and type (pointers into the element; a header source reads h, the same
 * for every element). On ING_SPLIT_OK *out is a new array of *n elements owned by the caller
 * (ing_split_free); otherwise *out is NULL and, for ING_SPLIT_FIELD, *field and *bad (the
 * element's index) say why. Aborts on out-of-memory. Any thread. */
ing_split_result_t ing_split(json_t *root, const ing_field_src_t *mid, const ing_field_src_t *type,
                             const hl_sig_headers_t *h, ing_split_elem_t **out, size_t *n,
                             ing_ex_result_t *field, size_t *bad);

/* Frees what ing_split returned. NULL-safe. */
void ing_split_free(ing_split_elem_t *e, size_t n);

/* The error code of a refusal ("not_an_array", ...), NULL for ING_SPLIT_OK. */
const char *ing_split_code(ing_split_result_t r, ing_ex_result_t field);

#endif
