/* Fuzzes the persister's own validators (services/persister/event_record.c): pst_utf8_valid decides
 * whether a Kafka key can be a message id, pst_json_valid whether a body goes to Postgres as
 * jsonb or to the dead-letter topic. Both read eight bytes at a time, so besides memory errors
 * the target checks what they answer:
 * - pst_utf8_valid agrees with a byte-at-a-time decoder written here (no NUL, no overlong form,
 *   no surrogate, nothing past U+10FFFF, no cut-off sequence);
 * - a document pst_json_valid accepts is valid UTF-8 by that decoder;
 * - whitespace around a document never changes pst_json_valid's answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int utf8_one_by_one(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], cp, min;
        size_t len;
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            len = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            len = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so a read past the end is a heap overflow ASan reports. */
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    int utf8 = pst_utf8_valid(copy, size);
    if (utf8 != utf8_one_by_one((const unsigned char *)copy, size)) abort();
    int json = pst_json_valid(copy, size);
    if (json && !utf8) abort();
    char *padded = malloc(size + 4);
    memcpy(padded, " \t", 2);
    memcpy(padded + 2, copy, size);
    memcpy(padded + 2 + size, "\r\n", 2);
    if (pst_json_valid(padded, size + 4) != json) abort();
    free(padded);
    free(copy);
    return 0;
}
