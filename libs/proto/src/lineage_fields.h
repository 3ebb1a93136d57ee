/* The fields of a lineage record: name, kind, limit and place in hl_lineage_rec_t. The writer
 * and the parser both work from this table, so a field is added or changed here once. */
#ifndef HL_LINEAGE_FIELDS_H
#define HL_LINEAGE_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

#include "hl/lineage_record.h"

typedef enum {
    LF_VERSION,  /* "v": the constant 1 */
    LF_STAGE,    /* the stage's name */
    LF_ID,       /* request_id: a string always there, no control characters */
    LF_STR,      /* a string with a has_ flag */
    LF_STR_NULL, /* error_code: a string with a has_ flag, null when not there */
    LF_HEX,      /* body_sha256: 64 lowercase hex digits, "" when not there */
    LF_INT,      /* an integer, HL_LINEAGE_ABSENT when not there */
    LF_INT_NULL, /* row_id: an integer, null when not there */
    LF_BOOL,     /* duplicate: -1 when not there */
} lf_kind_t;

typedef struct {
    const char *name;
    lf_kind_t kind;
    size_t max;           /* strings: bytes written at most */
    size_t off, size;     /* the value in hl_lineage_rec_t */
    size_t has_off;       /* LF_STR, LF_STR_NULL: the has_ flag */
    const char *why;      /* the parser's reason for a value of the wrong type */
    const char *why_long; /* strings: the parser's reason for one over size - 1 bytes */
} lf_field_t;

enum {
    F_V,
    F_STAGE,
    F_REQUEST_ID,
    F_TS_US,
    F_SOURCE,
    F_MESSAGE_ID,
    F_EVENT_TYPE,
    F_RECEIVED_US,
    F_STATUS,
    F_ERROR_CODE,
    F_PARTITION,
    F_OFFSET,
    F_LATENCY_US,
    F_CONSUMED_US,
    F_COMMITTED_US,
    F_ROW_ID,
    F_DUPLICATE,
    F_ATTEMPTS,
    F_SUPPRESSED,
    F_BODY_SHA256,
    F_COUNT
};

extern const lf_field_t hl_lineage_fields[F_COUNT];

/* The field called name, or NULL. */
const lf_field_t *hl_lineage_field(const char *name);

/* The fields every record has, checked once all are read (has_v: "v" was there). Returns 0,
 * or HL_EPARSE with *why set. */
int hl_lineage_check_required(const hl_lineage_rec_t *r, bool has_v, const char **why);

#endif
