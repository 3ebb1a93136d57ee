/* Header lookup and timestamp parsing, shared by the signature schemes. */
#include "codec.h"

#include <string.h>
#include <strings.h>

const char *ing_header_get(const ing_headers_t *h, const char *name, int *count)
{
    const char *found = NULL;
    int c = 0;
    for (size_t i = 0; h != NULL && i < h->n; i++) {
        if (h->v[i].name != NULL && strcasecmp(h->v[i].name, name) == 0) {
            if (found == NULL) found = h->v[i].value;
            c++;
        }
    }
    if (count != NULL) *count = c;
    return found;
}

int ing_parse_unix_s(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 12) return HL_EPARSE;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return HL_EPARSE;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}
