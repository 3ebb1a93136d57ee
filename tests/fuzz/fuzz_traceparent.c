/* Fuzzes the W3C traceparent check and the content-type check (extract.c), both of which read
 * request headers as they arrive, and the decoding of the source name in a request path
 * (source_name.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "source_name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    if (ing_traceparent_valid(s) && strlen(s) != ING_TRACEPARENT_LEN) abort();
    (void)ing_content_type_json(s);
    char name[ING_SOURCE_NAME_MAX + 1];
    int n = ing_source_name_decode((const char *)data, size, name);
    if (n != -1 && (n < 1 || n > ING_SOURCE_NAME_MAX || strlen(name) != (size_t)n)) abort();
    for (int i = 0; i < n; i++)
        if (strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", name[i]) == NULL) abort();
    free(s);
    return 0;
}
