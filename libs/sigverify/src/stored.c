/* Stored events: which headers a scheme signs with and their JSON form kept beside the body,
 * and the checks of a stored event against them (signature again, signed id, payload). */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "exact_numbers.h"
#include "hl/log.h"
#include "hl/sigcontent.h"
#include "hl/sigverify.h"
#include "hl/util.h"

size_t hl_sig_signed_headers(const hl_sig_t *a, const hl_sig_headers_t *h,
                             const char *names[HL_SIG_MAX_SIGNED_HEADERS])
{
    switch (a->scheme) {
    case HL_SIG_SCHEME_STANDARD:
        if (strcmp(hl_sig_standard_id_header(h), "webhook-id") == 0) {
            names[0] = "webhook-id";
            names[1] = "webhook-timestamp";
            names[2] = "webhook-signature";
        } else {
            names[0] = "svix-id";
            names[1] = "svix-timestamp";
            names[2] = "svix-signature";
        }
        return 3;
    case HL_SIG_SCHEME_STRIPE: names[0] = "stripe-signature"; return 1;
    case HL_SIG_SCHEME_HMAC: names[0] = a->header; return 1;
    case HL_SIG_SCHEME_SENDGRID:
        names[0] = "x-twilio-email-event-webhook-signature";
        names[1] = "x-twilio-email-event-webhook-timestamp";
        return 2;
    default: return 0; /* bearer: the token is a credential, never kept */
    }
}

/* Appends s (n bytes, printable ASCII) as a JSON string; false when it does not fit or holds
 * another byte. */
static bool put_json_str(char *buf, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o + 2 > cap) return false;
    buf[(*o)++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f) return false;
        if (*o + 3 > cap) return false;
        if (ch == '"' || ch == '\\') buf[(*o)++] = '\\';
        buf[(*o)++] = (char)ch;
    }
    buf[(*o)++] = '"';
    return true;
}

int hl_sig_signed_json(const hl_sig_t *a, const hl_sig_headers_t *h, char *buf, size_t cap)
{
    const char *names[HL_SIG_MAX_SIGNED_HEADERS];
    size_t n = hl_sig_signed_headers(a, h, names), o = 0, kept = 0;
    if (cap > 0) buf[0] = '\0';
    if (n == 0) return 0;
    if (cap < 3) return HL_ERANGE;
    buf[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        const char *v = hl_sig_header_get(h, names[i], NULL);
        if (v == NULL) continue;
        char lower[sizeof(a->header)];
        size_t nl = strnlen(names[i], sizeof(lower) - 1);
        for (size_t k = 0; k < nl; k++)
            lower[k] =
                (char)(names[i][k] >= 'A' && names[i][k] <= 'Z' ? names[i][k] + 32 : names[i][k]);
        if (kept++ > 0) {
            if (o + 1 > cap) return HL_ERANGE;
            buf[o++] = ',';
        }
        if (!put_json_str(buf, cap, &o, lower, nl) || o + 1 > cap) return HL_ERANGE;
        buf[o++] = ':';
        if (!put_json_str(buf, cap, &o, v, strlen(v))) return HL_ERANGE;
    }
    if (o + 2 > cap) return HL_ERANGE;
    buf[o++] = '}';
    buf[o] = '\0';
    return (int)o;
}

void hl_sig_sha256_hex(const void *p, size_t n, char out[HL_SIG_SHA256_HEX + 1])
{
    unsigned char d[HL_SIG_SHA256_LEN];
    if (hl_sig_sha256(p, n, d) != 0) hl_die("openssl: SHA-256 failed");
    hl_hex(out, d, HL_SIG_SHA256_LEN);
}

/* Parses a stored signed-headers object into hv (names and values borrowed from *o, which the
 * caller frees). Returns the count, or HL_EPARSE. */
static int stored_headers(const char *signed_json, size_t len, json_t **o,
                          hl_sig_header_t hv[HL_SIG_MAX_SIGNED_HEADERS])
{
    *o = signed_json ? json_loadb(signed_json, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(*o) || json_object_size(*o) > HL_SIG_MAX_SIGNED_HEADERS) return HL_EPARSE;
    int n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(*o, k, v)
    {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return HL_EPARSE;
        hv[n++] = (hl_sig_header_t){k, json_string_value(v)};
    }
    return n;
}

int hl_sig_reverify_stored(const hl_sig_t *a, const char *signed_json, size_t len,
                           const unsigned char *body, size_t body_len, hl_sig_result_t *result,
                           int64_t *signed_ts)
{
    json_t *o = NULL;
    hl_sig_header_t hv[HL_SIG_MAX_SIGNED_HEADERS];
    int n = stored_headers(signed_json, len, &o, hv);
    if (n >= 0) {
        hl_sig_headers_t h = {hv, (size_t)n};
        *result = hl_sig_reverify(a, &h, body, body_len, signed_ts);
    }
    json_decref(o);
    return n < 0 ? n : 0;
}

int hl_sig_stored_signed_id(const hl_sig_t *a, const char *signed_json, size_t len, char *out,
                            size_t cap)
{
    json_t *o = NULL;
    hl_sig_header_t hv[HL_SIG_MAX_SIGNED_HEADERS];
    int n = stored_headers(signed_json, len, &o, hv);
    int rc = n < 0 ? n : 0;
    if (n >= 0 && a->scheme == HL_SIG_SCHEME_STANDARD) {
        hl_sig_headers_t h = {hv, (size_t)n};
        const char *id = hl_sig_header_get(&h, hl_sig_standard_id_header(&h), NULL);
        if (id != NULL) {
            hl_strlcpy(out, id, cap);
            rc = 1;
        }
    }
    json_decref(o);
    return rc;
}

/* The parse of JSON text with its numbers as strings of their exact values (exact_numbers.h),
 * or NULL. */
static json_t *load_exact(const char *text, size_t len)
{
    hl_buf_t b = {NULL, 0, 0};
    json_t *j = NULL;
    if (hl_sig_exact_numbers(text, len, &b) == 0)
        j = json_loadb(b.p ? b.p : "", b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(b.p);
    return j;
}

int hl_sig_stored_payload_matches(const unsigned char *body, size_t body_len, const char *payload,
                                  size_t payload_len)
{
    /* Numbers compared by exact value, never as doubles: jsonb writes 1e2 as 100 and -0 as 0,
     * and an integer past 2^53 (or past 64 bits) keeps every digit. */
    json_t *b = load_exact((const char *)body, body_len);
    if (b == NULL) return HL_EPARSE;
    json_t *p = payload ? load_exact(payload, payload_len) : NULL;
    int same = p != NULL && json_equal(b, p);
    json_decref(b);
    json_decref(p);
    return same;
}

void hl_sig_check_stored(const hl_sig_t *a, const hl_sig_stored_event_t *ev, const char *mid,
                         bool check_id, hl_sig_stored_check_t *out)
{
    const char *sj = ev->signed_json;
    memset(out, 0, sizeof *out);
    out->signature = HL_SIG_BAD;
    out->signed_ts = -1;
    out->headers_ok = hl_sig_reverify_stored(a, sj, strlen(sj), ev->body, ev->body_len,
                                             &out->signature, &out->signed_ts) == 0;
    hl_sig_sha256_hex(ev->body, ev->body_len, out->body_sha256);
    out->digest_matches = strcmp(out->body_sha256, ev->body_sha256) == 0;
    out->payload_matches = hl_sig_stored_payload_matches(ev->body, ev->body_len, ev->payload,
                                                         ev->payload ? strlen(ev->payload) : 0);
    if (check_id)
        out->has_signed_id =
            hl_sig_stored_signed_id(a, sj, strlen(sj), out->signed_id, sizeof out->signed_id) == 1;
    out->signed_id_matches = out->has_signed_id && strcmp(out->signed_id, mid) == 0;
}

bool hl_sig_stored_ok(const hl_sig_stored_check_t *r)
{
    return r->headers_ok && r->signature == HL_SIG_OK && r->digest_matches &&
           r->payload_matches != 0 && (!r->has_signed_id || r->signed_id_matches);
}
