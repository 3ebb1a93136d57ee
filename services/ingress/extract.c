/* Body validation and field extraction: body fields through the shared RFC 6901 resolver
 * (hl/jsonptr.h), header sources, content type and traceparent checks. */
#include "extract.h"

#include <string.h>
#include <strings.h>

#include "hl/jsonptr.h"
#include "hl/jsonscan.h"
#include "hl/log.h"
#include "hl/util.h"

const char *ing_ex_code(ing_ex_result_t r)
{
    switch (r) {
    case ING_EX_OK: return NULL;
    case ING_EX_INVALID_JSON: return "invalid_json";
    case ING_EX_MISSING: return "missing_field";
    case ING_EX_TOO_LONG: return "field_too_long";
    default: return "invalid_field";
    }
}

bool ing_json_depth_ok(const unsigned char *s, size_t n, int max_depth)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) return false;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return true;
}

ing_ex_result_t ing_json_parse(const unsigned char *body, size_t n, json_t **out)
{
    *out = NULL;
    if (n == 0 || !ing_json_depth_ok(body, n, ING_JSON_MAX_DEPTH)) return ING_EX_INVALID_JSON;
    json_error_t err;
    json_t *root = json_loadb((const char *)body, n, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) return ING_EX_INVALID_JSON;
    *out = root;
    return ING_EX_OK;
}

static ing_ex_result_t copy_field(const char *v, size_t n, size_t max_len, char *out, size_t cap)
{
    if (n == 0 || memchr(v, '\0', n) != NULL) return ING_EX_INVALID;
    if (n > max_len || n + 1 > cap) return ING_EX_TOO_LONG;
    memcpy(out, v, n);
    out[n] = '\0';
    return ING_EX_OK;
}

static ing_ex_result_t header_field(const ing_field_src_t *src, const hl_sig_headers_t *h,
                                    char *out, size_t cap)
{
    int count = 0;
    const char *v = hl_sig_header_get(h, src->header, &count);
    if (v == NULL) return ING_EX_MISSING;
    if (count > 1) return ING_EX_INVALID;
    return copy_field(v, strlen(v), src->max_len, out, cap);
}

ing_ex_result_t ing_field_get(const ing_field_src_t *src, json_t *root, const hl_sig_headers_t *h,
                              char *out, size_t cap)
{
    if (src->header != NULL) return header_field(src, h, out, cap);
    json_t *v = root ? hl_jsonptr_get(root, src->pointer) : NULL;
    if (v == NULL || json_is_null(v)) return ING_EX_MISSING;
    if (!json_is_string(v)) return ING_EX_INVALID; /* strings only: numbers are ambiguous */
    return copy_field(json_string_value(v), json_string_length(v), src->max_len, out, cap);
}

/* ing_field_get's rules over what the scan found for src's pointer. */
static ing_ex_result_t scanned_field(const ing_field_src_t *src, const hl_jscan_found_t *f,
                                     char *out, size_t cap)
{
    if (f->kind == HL_JSCAN_NONE || f->kind == HL_JSCAN_NULL) return ING_EX_MISSING;
    if (f->kind != HL_JSCAN_STRING) return ING_EX_INVALID;
    size_t room = cap < src->max_len + 1 ? cap : src->max_len + 1;
    ssize_t n = hl_json_unescape(f->raw, f->raw_len, out, room);
    if (n < 0) {
        if (cap > 0) out[0] = '\0';
        return ING_EX_TOO_LONG;
    }
    /* The scan refuses \u0000, so a NUL cannot be in it; checked as copy_field does all the
     * same. */
    if (n == 0 || memchr(out, '\0', (size_t)n) != NULL) return ING_EX_INVALID;
    return ING_EX_OK;
}

ing_ex_result_t ing_extract_fields(const unsigned char *body, size_t n, const ing_field_src_t *mid,
                                   const ing_field_src_t *type, const hl_sig_headers_t *h,
                                   char *mid_out, size_t mid_cap, char *type_out, size_t type_cap)
{
    const char *ptrs[2];
    hl_jscan_found_t found[2];
    size_t np = 0, mi = 0, ti = 0;
    if (mid->header == NULL) mi = np, ptrs[np++] = mid->pointer;
    if (type->header == NULL) ti = np, ptrs[np++] = type->pointer;
    /* The linear depth check first, as ing_json_parse does: a body nested past the cap is
     * refused before the scan recurses into it. */
    if (n == 0 || !ing_json_depth_ok(body, n, ING_JSON_MAX_DEPTH) ||
        hl_json_scan(body, n, ING_JSON_MAX_DEPTH, ptrs, np, found) != 0)
        return ING_EX_INVALID_JSON;
    ing_ex_result_t x = mid->header != NULL ? header_field(mid, h, mid_out, mid_cap)
                                            : scanned_field(mid, &found[mi], mid_out, mid_cap);
    if (x != ING_EX_OK) return x;
    return type->header != NULL ? header_field(type, h, type_out, type_cap)
                                : scanned_field(type, &found[ti], type_out, type_cap);
}

bool ing_content_type_json(const char *ct)
{
    if (ct == NULL) return false;
    while (*ct == ' ') ct++;
    size_t n = strcspn(ct, "; ");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return true;
    /* application/<subtype>+json, e.g. application/cloudevents+json */
    if (n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
        strncasecmp(ct + n - 5, "+json", 5) == 0)
        return true;
    return false;
}

static bool lower_hex(const char *s, size_t n, bool *nonzero)
{
    *nonzero = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        if (c != '0') *nonzero = true;
    }
    return true;
}

bool ing_traceparent_valid(const char *tp)
{
    bool nz1, nz2, nz3;
    if (tp == NULL || strlen(tp) != ING_TRACEPARENT_LEN) return false;
    if (tp[0] != '0' || tp[1] != '0' || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return false;
    return lower_hex(tp + 3, 32, &nz1) && nz1 && lower_hex(tp + 36, 16, &nz2) && nz2 &&
           lower_hex(tp + 53, 2, &nz3);
}

void ing_traceparent_new(char out[ING_TRACEPARENT_LEN + 1])
{
    unsigned char r[24];
    /* Not OpenSSL's RAND_bytes: its generator checks for a fork with getpid() on every call,
     * a system call per request. */
    hl_random_bytes(r, sizeof(r));
    r[0] |= 1; /* never all zeros */
    r[16] |= 1;
    memcpy(out, "00-", 3);
    hl_hex(out + 3, r, 16);
    out[35] = '-';
    hl_hex(out + 36, r + 16, 8);
    memcpy(out + 52, "-01", 4);
}
