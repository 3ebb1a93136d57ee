/* Signature schemes for incoming webhooks. Every check fails closed: anything missing,
 * repeated, over its cap or undecodable is refused, and digests are compared with
 * CRYPTO_memcmp so timing says nothing about how much of a signature matched. */
#include "hl/sigverify.h"

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl/sigcontent.h"
#include "hl/util.h"
#include "exact_numbers.h"

#define SHA256_LEN HL_SIG_SHA256_LEN
#define ED25519_SIG_LEN HL_SIG_ED25519_LEN
#define MAX_ID_LEN 256
#define MAX_DER_SIG 160

/* Does the HMAC of parts under any symmetric key equal one of the n candidate MACs? One HMAC
 * per key, compared with every candidate (all pairs, in constant time): the body is hashed
 * once per key however many candidates a request lists. */
static int hmac_matches_any(const hl_sig_t *a, const hl_sig_part_t *parts, int nparts,
                            const unsigned char (*macs)[SHA256_LEN], int n)
{
    int match = 0;
    for (size_t k = 0; k < a->nkeys; k++) {
        unsigned char want[SHA256_LEN];
        if (a->keys[k].secret == NULL) continue;
        if (hl_sig_hmac_sha256(a->keys[k].secret, a->keys[k].secret_len, parts, nparts, want) != 0)
            continue;
        for (int i = 0; i < n; i++) match |= CRYPTO_memcmp(want, macs[i], SHA256_LEN) == 0;
    }
    return match;
}

/* now_s of a re-verification: the timestamp is reported, never judged. */
#define NO_TIME INT64_MIN

/* Is ts within the tolerance of now_s? Always, when no time is checked (NO_TIME). */
static int ts_fresh(const hl_sig_t *a, int64_t ts, int64_t now_s)
{
    if (now_s == NO_TIME) return 1;
    int64_t d = now_s - ts;
    if (d < 0) d = -d;
    return d <= a->tolerance_s;
}

const char *hl_sig_header_get(const hl_sig_headers_t *h, const char *name, int *count)
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

int hl_sig_parse_unix_s(const char *s, size_t n, int64_t *out)
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

/* Fetches exactly one copy of a header no longer than HL_SIG_MAX_HEADER. Returns
 * HL_SIG_OK with *out set, HL_SIG_MISSING or HL_SIG_MALFORMED. */
static hl_sig_result_t one_header(const hl_sig_headers_t *h, const char *name, const char **out)
{
    int count = 0;
    const char *v = hl_sig_header_get(h, name, &count);
    if (v == NULL) return HL_SIG_MISSING;
    if (count > 1 || strlen(v) > HL_SIG_MAX_HEADER) return HL_SIG_MALFORMED;
    *out = v;
    return HL_SIG_OK;
}

/* Does any v1a signature verify under any Ed25519 key? Ed25519 hashes the whole content for
 * each (signature, key) pair, which is why the candidates are capped at
 * HL_SIG_MAX_ED25519_SIGS. The content is built once, only when there is a candidate. */
static int ed25519_matches_any(const hl_sig_t *a, const hl_sig_part_t *parts, int nparts,
                               const unsigned char (*sigs)[ED25519_SIG_LEN], int n)
{
    size_t clen = 0;
    unsigned char *content = hl_sig_content_flat(parts, nparts, &clen);
    int match = 0;
    for (int i = 0; i < n && !match; i++)
        for (size_t k = 0; k < a->nkeys && !match; k++)
            if (a->keys[k].pkey != NULL)
                match = hl_sig_ed25519_verify(a->keys[k].pkey, sigs[i], content, clen);
    free(content);
    return match;
}

/* The candidates of a Standard Webhooks signature header, decoded. */
typedef struct {
    unsigned char v1[HL_SIG_MAX_SIGS][SHA256_LEN];
    unsigned char v1a[HL_SIG_MAX_ED25519_SIGS][ED25519_SIG_LEN];
    int n1, n1a;
} std_sigs_t;

/* Splits the space-separated "version,base64" entries of sig into out. Entries of other
 * versions or lengths are skipped. Returns HL_SIG_MALFORMED when there are more than
 * HL_SIG_MAX_SIGS entries, more than HL_SIG_MAX_ED25519_SIGS v1a ones, or no usable one. */
static hl_sig_result_t parse_standard_sigs(const char *sig, std_sigs_t *out)
{
    int nsig = 0;
    out->n1 = out->n1a = 0;
    for (const char *p = sig; *p != '\0';) {
        while (*p == ' ') p++;
        if (*p == '\0') break;
        const char *end = strchr(p, ' ');
        size_t tl = end ? (size_t)(end - p) : strlen(p);
        const char *comma = memchr(p, ',', tl);
        if (++nsig > HL_SIG_MAX_SIGS) return HL_SIG_MALFORMED;
        if (comma != NULL) {
            size_t vl = (size_t)(comma - p), sl = tl - vl - 1;
            unsigned char raw[ED25519_SIG_LEN + 3];
            int n = hl_base64_decode(comma + 1, sl, raw, sizeof(raw));
            if (vl == 2 && memcmp(p, "v1", 2) == 0 && n == SHA256_LEN) {
                memcpy(out->v1[out->n1++], raw, SHA256_LEN);
            } else if (vl == 3 && memcmp(p, "v1a", 3) == 0 && n == ED25519_SIG_LEN) {
                if (out->n1a == HL_SIG_MAX_ED25519_SIGS) return HL_SIG_MALFORMED;
                memcpy(out->v1a[out->n1a++], raw, ED25519_SIG_LEN);
            }
        }
        p += tl;
    }
    return out->n1 + out->n1a > 0 ? HL_SIG_OK : HL_SIG_MALFORMED;
}

/* The header family a Standard Webhooks request is signed with: webhook-* when it carries a
 * webhook-signature, else the svix-* names of the Svix SDKs. One family per request. */
static const char *standard_family(const hl_sig_headers_t *h)
{
    return hl_sig_header_get(h, "webhook-signature", NULL) != NULL ? "webhook" : "svix";
}

const char *hl_sig_standard_id_header(const hl_sig_headers_t *h)
{
    return strcmp(standard_family(h), "webhook") == 0 ? "webhook-id" : "svix-id";
}

/* Standard Webhooks: content "id.timestamp.body"; the signature header holds space-separated
 * "version,base64" entries, of which v1 (HMAC-SHA256) and v1a (Ed25519) are understood. */
static hl_sig_result_t verify_standard(const hl_sig_t *a, const hl_sig_headers_t *h,
                                       const unsigned char *body, size_t blen, int64_t now_s,
                                       int64_t *signed_ts)
{
    const char *pfx = standard_family(h);
    char name[32];
    const char *id = NULL, *ts = NULL, *sig = NULL;
    hl_sig_result_t r;
    snprintf(name, sizeof(name), "%s-signature", pfx);
    if ((r = one_header(h, name, &sig)) != HL_SIG_OK) return r;
    snprintf(name, sizeof(name), "%s-id", pfx);
    if ((r = one_header(h, name, &id)) != HL_SIG_OK) return r;
    snprintf(name, sizeof(name), "%s-timestamp", pfx);
    if ((r = one_header(h, name, &ts)) != HL_SIG_OK) return r;
    size_t idlen = strlen(id), tslen = strlen(ts);
    int64_t t;
    if (idlen == 0 || idlen > MAX_ID_LEN || hl_sig_parse_unix_s(ts, tslen, &t) != 0)
        return HL_SIG_MALFORMED;
    std_sigs_t sigs;
    if ((r = parse_standard_sigs(sig, &sigs)) != HL_SIG_OK) return r;
    hl_sig_part_t parts[HL_SIG_MAX_PARTS];
    int np = hl_sig_content_standard(id, idlen, ts, tslen, body, blen, parts);
    int match = sigs.n1 > 0 && hmac_matches_any(a, parts, np, sigs.v1, sigs.n1);
    if (!match && sigs.n1a > 0) match = ed25519_matches_any(a, parts, np, sigs.v1a, sigs.n1a);
    if (!match) return HL_SIG_BAD;
    *signed_ts = t;
    return ts_fresh(a, t, now_s) ? HL_SIG_OK : HL_SIG_STALE;
}

/* Stripe: "t=TS,v1=HEX[,v1=HEX…][,v0=…]"; content "TS.body" under the raw secret. */
static hl_sig_result_t verify_stripe(const hl_sig_t *a, const hl_sig_headers_t *h,
                                     const unsigned char *body, size_t blen, int64_t now_s,
                                     int64_t *signed_ts)
{
    const char *sig = NULL;
    hl_sig_result_t r = one_header(h, "stripe-signature", &sig);
    if (r != HL_SIG_OK) return r;
    const char *ts = NULL;
    size_t tslen = 0;
    unsigned char macs[HL_SIG_MAX_SIGS][SHA256_LEN];
    int nmac = 0, nitems = 0;
    const char *p = sig;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t il = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', il);
        if (eq == NULL || ++nitems > 2 * HL_SIG_MAX_SIGS) return HL_SIG_MALFORMED;
        size_t kl = (size_t)(eq - p), vl = il - kl - 1;
        if (kl == 1 && p[0] == 't') {
            if (ts != NULL) return HL_SIG_MALFORMED; /* which t would count? refuse */
            ts = eq + 1;
            tslen = vl;
        } else if (kl == 2 && memcmp(p, "v1", 2) == 0) {
            if (nmac < HL_SIG_MAX_SIGS &&
                hl_hex_decode(eq + 1, vl, macs[nmac], SHA256_LEN) == SHA256_LEN)
                nmac++;
        }
        p += il;
        if (*p == ',') p++;
    }
    int64_t t;
    if (ts == NULL || hl_sig_parse_unix_s(ts, tslen, &t) != 0 || nmac == 0) return HL_SIG_MALFORMED;
    hl_sig_part_t parts[HL_SIG_MAX_PARTS];
    int np = hl_sig_content_stripe(ts, tslen, body, blen, parts);
    if (!hmac_matches_any(a, parts, np, macs, nmac)) return HL_SIG_BAD;
    *signed_ts = t;
    return ts_fresh(a, t, now_s) ? HL_SIG_OK : HL_SIG_STALE;
}

/* Plain HMAC-SHA256 of the body in a configured header, hex or base64, optional prefix. */
static hl_sig_result_t verify_hmac(const hl_sig_t *a, const hl_sig_headers_t *h,
                                   const unsigned char *body, size_t blen)
{
    const char *v = NULL;
    hl_sig_result_t r = one_header(h, a->header, &v);
    if (r != HL_SIG_OK) return r;
    size_t pl = strlen(a->prefix), vl = strlen(v);
    if (vl < pl || strncmp(v, a->prefix, pl) != 0) return HL_SIG_MALFORMED;
    unsigned char raw[SHA256_LEN + 3], mac[1][SHA256_LEN];
    int n = a->encoding == HL_SIG_ENC_HEX ? hl_hex_decode(v + pl, vl - pl, raw, sizeof(raw))
                                          : hl_base64_decode(v + pl, vl - pl, raw, sizeof(raw));
    if (n != SHA256_LEN) return HL_SIG_MALFORMED;
    memcpy(mac[0], raw, SHA256_LEN);
    const hl_sig_part_t parts[] = {{body, blen}};
    return hmac_matches_any(a, parts, 1, mac, 1) ? HL_SIG_OK : HL_SIG_BAD;
}

static hl_sig_result_t verify_bearer(const hl_sig_t *a, const hl_sig_headers_t *h)
{
    const char *v = NULL;
    hl_sig_result_t r = one_header(h, a->header, &v);
    if (r != HL_SIG_OK) return r;
    if (strncasecmp(v, "Bearer ", 7) != 0 || v[7] == '\0') return HL_SIG_MALFORMED;
    unsigned char d[SHA256_LEN];
    if (hl_sig_sha256(v + 7, strlen(v + 7), d) != 0) return HL_SIG_BAD;
    int match = 0;
    for (size_t k = 0; k < a->nkeys; k++)
        match |= a->keys[k].secret != NULL && CRYPTO_memcmp(a->keys[k].secret, d, SHA256_LEN) == 0;
    return match ? HL_SIG_OK : HL_SIG_BAD;
}

/* SendGrid: base64 DER ECDSA P-256/SHA-256 signature over timestamp + body. */
static hl_sig_result_t verify_sendgrid(const hl_sig_t *a, const hl_sig_headers_t *h,
                                       const unsigned char *body, size_t blen, int64_t now_s,
                                       int64_t *signed_ts)
{
    const char *sig = NULL, *ts = NULL;
    hl_sig_result_t r = one_header(h, "x-twilio-email-event-webhook-signature", &sig);
    if (r != HL_SIG_OK) return r;
    if ((r = one_header(h, "x-twilio-email-event-webhook-timestamp", &ts)) != HL_SIG_OK) return r;
    size_t tslen = strlen(ts);
    int64_t t;
    unsigned char der[MAX_DER_SIG];
    int n = hl_base64_decode(sig, strlen(sig), der, sizeof(der));
    if (hl_sig_parse_unix_s(ts, tslen, &t) != 0 || n < 8) return HL_SIG_MALFORMED;
    /* Only a complete DER ECDSA-Sig-Value counts as a signature at all. */
    const unsigned char *dp = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, n);
    ECDSA_SIG_free(es);
    if (es == NULL || dp != der + n) return HL_SIG_MALFORMED;
    hl_sig_part_t parts[HL_SIG_MAX_PARTS];
    int np = hl_sig_content_sendgrid(ts, tslen, body, blen, parts), match = 0;
    for (size_t k = 0; k < a->nkeys && !match; k++)
        if (a->keys[k].pkey != NULL)
            match = hl_sig_ecdsa_verify(a->keys[k].pkey, der, (size_t)n, parts, np);
    if (!match) return HL_SIG_BAD;
    *signed_ts = t;
    return ts_fresh(a, t, now_s) ? HL_SIG_OK : HL_SIG_STALE;
}

/* The one dispatch of every scheme; now_s NO_TIME checks no time. */
static hl_sig_result_t verify_at(const hl_sig_t *a, const hl_sig_headers_t *h,
                                 const unsigned char *body, size_t body_len, int64_t now_s,
                                 int64_t *signed_ts)
{
    *signed_ts = -1;
    if (a == NULL || a->nkeys == 0) return HL_SIG_BAD; /* no key configured: fail closed */
    switch (a->scheme) {
    case HL_SIG_SCHEME_STANDARD: return verify_standard(a, h, body, body_len, now_s, signed_ts);
    case HL_SIG_SCHEME_STRIPE: return verify_stripe(a, h, body, body_len, now_s, signed_ts);
    case HL_SIG_SCHEME_HMAC: return verify_hmac(a, h, body, body_len);
    case HL_SIG_SCHEME_BEARER: return verify_bearer(a, h);
    case HL_SIG_SCHEME_SENDGRID: return verify_sendgrid(a, h, body, body_len, now_s, signed_ts);
    default: return HL_SIG_BAD;
    }
}

hl_sig_result_t hl_sig_reverify(const hl_sig_t *a, const hl_sig_headers_t *h,
                                const unsigned char *body, size_t body_len, int64_t *signed_ts)
{
    int64_t ts;
    hl_sig_result_t r = verify_at(a, h, body, body_len, NO_TIME, &ts);
    if (signed_ts != NULL) *signed_ts = ts;
    return r;
}

hl_sig_result_t hl_sig_verify(const hl_sig_t *a, const hl_sig_headers_t *h,
                              const unsigned char *body, size_t body_len, int64_t now_s)
{
    int64_t ts;
    return verify_at(a, h, body, body_len, now_s, &ts);
}
