/* Strict parsing of one hookline.lineage record (proto/lineage.schema.json). */
#ifndef HL_AUDITOR_RECORD_H
#define HL_AUDITOR_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

#define HL_REC_MAX_BYTES 16384 /* a lineage record is a few hundred bytes; refuse more */
#define HL_REC_ABSENT INT64_MIN

typedef enum { HL_STAGE_INGRESS = 0, HL_STAGE_PERSISTED, HL_STAGE_DEAD_LETTERED } hl_stage_t;

/* One validated record. Strings are NUL-terminated copies inside the struct; an absent
 * string is "" with its has_ flag false, an absent integer is HL_REC_ABSENT. */
typedef struct {
    hl_stage_t stage;
    char request_id[37];
    int64_t ts_us;
    char source[65];
    char message_id[257];
    char event_type[129];
    bool has_source, has_message_id, has_event_type, has_error_code;
    char error_code[129];
    int64_t received_us, status, partition, offset, latency_us, consumed_us, committed_us;
    int64_t row_id, attempts;
    int64_t suppressed; /* ingress: rejections not recorded just before this one */
    char body_sha256[65]; /* SHA-256 of the body (64 lowercase hex), "" when absent */
    int duplicate; /* -1 absent, 0, 1 */
} hl_record_t;

/* Parses and validates `len` bytes of JSON. Returns 0, or HL_EPARSE / HL_ETOOBIG with a short
 * reason (static string) in *why. Never reads past len; the input need not be NUL-terminated. */
int hl_record_parse(const char *json, size_t len, hl_record_t *out, const char **why) HL_MUST_CHECK;

const char *hl_stage_name(hl_stage_t s);
/* Parses a stage name; returns 0 or HL_EINVAL. */
int hl_stage_parse(const char *s, hl_stage_t *out) HL_MUST_CHECK;

#endif
