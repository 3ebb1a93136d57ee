/* The one RFC 6901 resolver: the ingress extracts message ids and event types with it, and the
 * replay computes the same ids with it before sending. */
#include "hl/jsonptr.h"

#include <stddef.h>
#include <string.h>

bool hl_jsonptr_valid(const char *p)
{
    if (p == NULL) return false;
    if (*p == '\0') return true;
    if (*p != '/') return false;
    for (; *p != '\0'; p++)
        if (*p == '~' && p[1] != '0' && p[1] != '1') return false;
    return true;
}

/* Decodes one reference token (n bytes, already validated) into tok (cap bytes): "~1" → "/",
 * "~0" → "~". Returns its length, or -1 when it does not fit. */
static int decode_token(const char *p, size_t n, char *tok, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '~' && i + 1 < n) {
            c = p[i + 1] == '1' ? '/' : '~';
            i++;
        }
        if (o + 1 >= cap) return -1;
        tok[o++] = c;
    }
    tok[o] = '\0';
    return (int)o;
}

/* One array step: only a canonical index counts, so "01" and "+1" never alias "1". */
static json_t *array_step(json_t *arr, const char *tok, size_t n)
{
    if (n == 0 || n > 9 || (n > 1 && tok[0] == '0')) return NULL;
    size_t idx = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9') return NULL;
        idx = idx * 10 + (size_t)(tok[i] - '0');
    }
    return json_array_get(arr, idx);
}

json_t *hl_jsonptr_get(json_t *root, const char *p)
{
    json_t *cur = root;
    if (!hl_jsonptr_valid(p)) return NULL;
    while (cur != NULL && *p == '/') {
        p++;
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char tok[HL_JSONPTR_MAX_TOKEN + 1];
        int tl = decode_token(p, n, tok, sizeof(tok));
        if (tl < 0) return NULL;
        if (json_is_object(cur))
            cur = json_object_getn(cur, tok, (size_t)tl);
        else if (json_is_array(cur))
            cur = array_step(cur, tok, (size_t)tl);
        else
            cur = NULL;
        p += n;
    }
    return cur;
}
