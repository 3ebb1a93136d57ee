/* Fuzzes the lineage record parser (libs/proto): every record on hookline.lineage is untrusted
 * until it has been validated there. It must read every input as jansson does (the reference in
 * tests/unit/lineage_ref.c: same result, same reason, same record), and a record it accepts
 * must also go through the writer: what the writer makes of it parses again and is written
 * again to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl/lineage_record.h"
#include "lineage_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes r, parses the bytes and writes them again: the two writes must agree. */
static void write_twice(const hl_lineage_rec_t *r)
{
    static char first[HL_LINEAGE_WRITE_MAX], second[HL_LINEAGE_WRITE_MAX];
    hl_lineage_rec_t back;
    const char *why = NULL;
    int n = hl_lineage_write(r, first, sizeof first);
    if (n <= 0) abort(); /* HL_LINEAGE_WRITE_MAX suffices for any record the parser accepts */
    if (hl_lineage_parse(first, (size_t)n, &back, &why) != 0) abort();
    if (hl_lineage_write(&back, second, sizeof second) != n || memcmp(first, second, (size_t)n))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly size bytes, not NUL-terminated: the parser promises never to read past len. */
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    hl_lineage_rec_t r;
    const char *why = NULL;
    int rc = hl_lineage_parse(copy, size, &r, &why);
    const char *what;
    if (!lineage_ref_agrees(copy, size, &what)) abort();
    if (rc == 0) {
        if (strlen(r.request_id) >= sizeof r.request_id || strlen(r.message_id) > 256 ||
            strlen(r.source) > 64 || strlen(r.event_type) > 128)
            abort();
        hl_stage_t st;
        if (hl_stage_parse(hl_stage_name(r.stage), &st) != 0 || st != r.stage) abort();
        /* An error code longer than the writer's limit is cut, maybe inside a character, and
         * the cut is not written again the same way: the writer never makes such a record. */
        if (strlen(r.error_code) <= HL_ERROR_CODE_MAX) write_twice(&r);
    } else if (why == NULL) {
        abort();
    }
    free(copy);
    return 0;
}
