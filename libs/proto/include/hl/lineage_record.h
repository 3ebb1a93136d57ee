/* One hookline.lineage record (proto/lineage.schema.json): the struct every service fills or
 * reads, the one writer that turns it into the bytes on the topic, and the one strict parser.
 * The auditor hashes each record's bytes into its chain, so the writer's output for a given
 * record is part of the contract: fields in a fixed order per stage, no spaces. */
#ifndef HL_LINEAGE_RECORD_H
#define HL_LINEAGE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"
#include "hl/proto.h"

#define HL_LINEAGE_ABSENT INT64_MIN /* an integer field that is not there */
#define HL_LINEAGE_WRITE_MAX 4096   /* bytes the writer needs for the longest record */
#define HL_LINEAGE_READ_MAX 16384   /* a record is a few hundred bytes; the parser refuses more */
#define HL_LINEAGE_ERROR_CODE_READ_MAX 128 /* error codes accepted by the parser */

/* One record. Strings are NUL-terminated copies inside the struct; a string that is not there
 * is "" with its has_ flag false (request_id is always there; body_sha256 is there when not
 * ""); an integer that is not there is HL_LINEAGE_ABSENT. */
typedef struct {
    hl_stage_t stage;
    char request_id[HL_REQUEST_ID_MAX + 1];
    int64_t ts_us;
    char source[HL_SOURCE_MAX + 1];
    char message_id[HL_MESSAGE_ID_MAX + 1];
    char event_type[HL_EVENT_TYPE_MAX + 1];
    bool has_source, has_message_id, has_event_type, has_error_code;
    char error_code[HL_LINEAGE_ERROR_CODE_READ_MAX + 1];
    int64_t received_us, status, partition, offset, latency_us, consumed_us, committed_us;
    int64_t row_id, attempts;
    int64_t suppressed;                      /* ingress: rejections not recorded before this one */
    char body_sha256[HL_SHA256_HEX_LEN + 1]; /* SHA-256 of the body, "" when not there */
    int duplicate;                           /* -1 not there, 0, 1 */
} hl_lineage_rec_t;

/* An empty record of the given stage: every field not there. */
void hl_lineage_rec_init(hl_lineage_rec_t *r, hl_stage_t stage);

/* Copies src (borrowed; NULL: the field is not there) into one of r's string fields, cut to
 * the field's size. dst is r->source, r->message_id, r->event_type or r->error_code and has
 * its has_ flag. */
void hl_lineage_rec_str(char *dst, size_t cap, bool *has, const char *src);
#define HL_LINEAGE_SET(r, field, src)                                                              \
    hl_lineage_rec_str((r)->field, sizeof(r)->field, &(r)->has_##field, (src))

/* Writes r into buf (cap bytes, NUL-terminated) as the fields of r's stage that are there, in
 * the stage's order; strings are cut to their limit (HL_*_MAX) and JSON-escaped; error_code of
 * an ingress record and row_id are written as null when not there. Returns the length,
 * HL_ETOOBIG when the record does not fit (HL_LINEAGE_WRITE_MAX always suffices), HL_EINVAL
 * for a stage out of range. */
int hl_lineage_write(const hl_lineage_rec_t *r, char *buf, size_t cap) HL_MUST_CHECK;

/* Parses and validates len bytes of JSON (need not be NUL-terminated; never read past len):
 * anything off the schema is refused, never guessed. Returns 0, or HL_EPARSE / HL_ETOOBIG /
 * HL_ERANGE with a short reason (a static string) in *why; *out is then partly written and not
 * to be read. */
int hl_lineage_parse(const char *json, size_t len, hl_lineage_rec_t *out,
                     const char **why) HL_MUST_CHECK;

#endif
