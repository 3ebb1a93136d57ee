/* Fuzzes the W3C traceparent check and the content-type check (extract.c), both of which read
 * request headers as they arrive. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    if (ing_traceparent_valid(s) && strlen(s) != ING_TRACEPARENT_LEN) abort();
    (void)ing_content_type_json(s);
    free(s);
    return 0;
}
