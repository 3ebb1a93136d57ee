/* The lineage record as jansson reads it: the reference the contract library's own parser
 * (libs/proto/src/lineage_parse.c) is held to, by test_proto.c and by the fuzz target
 * fuzz_lineage_record. It parses the whole document with jansson (JSON_REJECT_DUPLICATES) and
 * then takes the fields in the document's order through the field table. */
#ifndef HL_TEST_LINEAGE_REF_H
#define HL_TEST_LINEAGE_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "hl/lineage_record.h"

/* hl_lineage_parse's contract, read through jansson. */
int lineage_ref_parse(const char *json, size_t len, hl_lineage_rec_t *r, const char **why);

/* True when the two readings of len bytes agree: the same result and reason, and on success
 * the same record field by field. *what names the first difference. */
bool lineage_ref_agrees(const char *json, size_t len, const char **what);

#endif
