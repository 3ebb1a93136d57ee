/* Fuzzes the auditor's lineage record parser (record.c): every record on hookline.lineage is
 * untrusted until it has been validated here. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exactly size bytes, not NUL-terminated: the parser promises never to read past len. */
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    hl_record_t r;
    const char *why = NULL;
    int rc = hl_record_parse(copy, size, &r, &why);
    if (rc == 0) {
        if (strlen(r.request_id) >= sizeof r.request_id || strlen(r.message_id) > 256 ||
            strlen(r.source) > 64 || strlen(r.event_type) > 128)
            abort();
        hl_stage_t st;
        if (hl_stage_parse(hl_stage_name(r.stage), &st) != 0 || st != r.stage) abort();
    } else if (why == NULL) {
        abort();
    }
    free(copy);
    return 0;
}
