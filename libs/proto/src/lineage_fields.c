/* The table of lineage record fields (lineage_fields.h). */
#include "lineage_fields.h"

#include <stdint.h>
#include <string.h>

#define AT(f) offsetof(hl_lineage_rec_t, f), sizeof(((hl_lineage_rec_t *)0)->f)
#define HAS(f) offsetof(hl_lineage_rec_t, has_##f)
#define INT(E, f) [F_##E] = {#f, LF_INT, 0, AT(f), 0, #f " must be an integer", NULL}
#define STR(E, f, max)                                                                             \
    [F_##E] = {#f, LF_STR, max, AT(f), HAS(f), #f " must be a plain string", #f " too long"}

const lf_field_t hl_lineage_fields[F_COUNT] = {
    [F_V] = {"v", LF_VERSION, 0, 0, 0, 0, "v must be 1", NULL},
    [F_STAGE] = {"stage", LF_STAGE, 0, AT(stage), 0, "unknown stage", NULL},
    [F_REQUEST_ID] = {"request_id", LF_ID, HL_REQUEST_ID_MAX, AT(request_id), 0,
                      "request_id must be a plain string", "request_id too long"},
    INT(TS_US, ts_us),
    STR(SOURCE, source, HL_SOURCE_MAX),
    STR(MESSAGE_ID, message_id, HL_MESSAGE_ID_MAX),
    STR(EVENT_TYPE, event_type, HL_EVENT_TYPE_MAX),
    INT(RECEIVED_US, received_us),
    INT(STATUS, status),
    [F_ERROR_CODE] = {"error_code", LF_STR_NULL, HL_ERROR_CODE_MAX, AT(error_code), HAS(error_code),
                      "error_code must be a short string or null",
                      "error_code must be a short string or null"},
    INT(PARTITION, partition),
    INT(OFFSET, offset),
    INT(LATENCY_US, latency_us),
    INT(CONSUMED_US, consumed_us),
    INT(COMMITTED_US, committed_us),
    [F_ROW_ID] = {"row_id", LF_INT_NULL, 0, AT(row_id), 0, "row_id must be an integer or null",
                  NULL},
    [F_DUPLICATE] = {"duplicate", LF_BOOL, 0, AT(duplicate), 0, "duplicate must be a boolean",
                     NULL},
    INT(ATTEMPTS, attempts),
    INT(SUPPRESSED, suppressed),
    [F_BODY_SHA256] = {"body_sha256", LF_HEX, HL_SHA256_HEX_LEN, AT(body_sha256), 0,
                       "body_sha256 must be 64 lowercase hex digits", NULL},
};

const lf_field_t *hl_lineage_field(const char *name)
{
    for (size_t i = 0; i < F_COUNT; i++)
        if (strcmp(hl_lineage_fields[i].name, name) == 0) return &hl_lineage_fields[i];
    return NULL;
}

int hl_lineage_check_required(const hl_lineage_rec_t *r, bool has_v, const char **why)
{
    if (!has_v)
        *why = "v missing";
    else if ((int)r->stage < 0)
        *why = "stage missing";
    else if (r->request_id[0] == '\0')
        *why = "request_id missing";
    else if (r->ts_us == HL_LINEAGE_ABSENT)
        *why = "ts_us missing";
    else if (r->ts_us < 0 || r->ts_us > INT64_C(4102444800000000))
        *why = "ts_us out of range";
    else
        return 0;
    return HL_EPARSE;
}
