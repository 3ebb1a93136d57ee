/* The auditor reads lineage records with the contract library's parser (libs/proto); these are
 * the names the auditor's modules know it and its record by. */
#ifndef HL_AUDITOR_RECORD_H
#define HL_AUDITOR_RECORD_H

#include <stddef.h>

#include "hl/lineage_record.h"

#define HL_REC_MAX_BYTES HL_LINEAGE_READ_MAX
#define HL_REC_ABSENT HL_LINEAGE_ABSENT

typedef hl_lineage_rec_t hl_record_t;

/* hl_lineage_parse: 0, or HL_EPARSE / HL_ETOOBIG / HL_ERANGE with the reason in *why. */
static inline HL_MUST_CHECK int hl_record_parse(const char *json, size_t len, hl_record_t *out,
                                                const char **why)
{
    return hl_lineage_parse(json, len, out, why);
}

#endif
