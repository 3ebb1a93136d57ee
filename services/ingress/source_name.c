/* The decoding of the source name in a request path. */
#include "source_name.h"

#include <stdbool.h>

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int ing_source_name_decode(const char *raw, size_t n, char out[ING_SOURCE_NAME_MAX + 1])
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)raw[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_digit(raw[i + 1]) : -1;
            int lo = i + 2 < n ? hex_digit(raw[i + 2]) : -1;
            if (hi < 0 || lo < 0) return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        if (!ok || o == ING_SOURCE_NAME_MAX) return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return o == 0 ? -1 : (int)o;
}
