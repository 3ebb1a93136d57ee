/* Signature schemes for incoming webhooks. Every check fails closed: anything missing,
 * repeated, over its cap or undecodable is refused, and digests are compared with
 * CRYPTO_memcmp so timing says nothing about how much of a signature matched. */
#include "hl/sigverify.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl/log.h"
#include "hl/util.h"
#include "exact_numbers.h"

#define SHA256_LEN 32
#define ED25519_SIG_LEN 64
#define ED25519_KEY_LEN 32
#define MAX_ID_LEN 256
#define MAX_SECRET_LEN 1024
#define MAX_DER_SIG 160

static EVP_MAC *g_hmac;
static pthread_once_t g_hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (g_hmac == NULL) hl_die("openssl: HMAC unavailable");
}

/* One contiguous piece of the signed content. */
typedef struct {
    const void *p;
    size_t n;
} part_t;

/* HMAC-SHA256 over the concatenation of parts. Returns 0 or HL_EAUTH (OpenSSL failure). */
static int hmac_sha256(const unsigned char *key, size_t klen, const part_t *parts, int nparts,
                       unsigned char out[SHA256_LEN])
{
    pthread_once(&g_hmac_once, hmac_fetch);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(g_hmac);
    if (ctx == NULL) return HL_EAUTH;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    int rc = HL_EAUTH;
    size_t outl = 0;
    if (EVP_MAC_init(ctx, key, klen, params) != 1) goto out;
    for (int i = 0; i < nparts; i++)
        if (EVP_MAC_update(ctx, parts[i].p, parts[i].n) != 1) goto out;
    if (EVP_MAC_final(ctx, out, &outl, SHA256_LEN) != 1 || outl != SHA256_LEN) goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

/* Fetched once: an implicit fetch (EVP_sha256()) per digest looks the implementation up under
 * the provider store's lock on every call, which every worker thread would contend for. */
static void sha256_fetch(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (g_sha256 == NULL) hl_die("openssl: SHA-256 unavailable");
}

static const EVP_MD *sha256_md(void)
{
    pthread_once(&g_sha256_once, sha256_fetch);
    return g_sha256;
}

static int sha256(const void *p, size_t n, unsigned char out[SHA256_LEN])
{
    unsigned int l = 0;
    return EVP_Digest(p, n, out, &l, sha256_md(), NULL) == 1 && l == SHA256_LEN ? 0 : HL_EAUTH;
}

/* Does the HMAC of parts under any symmetric key equal one of the n candidate MACs? One HMAC
 * per key, compared with every candidate (all pairs, in constant time): the body is hashed
 * once per key however many candidates a request lists. */
static int hmac_matches_any(const hl_sig_t *a, const part_t *parts, int nparts,
                            const unsigned char (*macs)[SHA256_LEN], int n)
{
    int match = 0;
    for (size_t k = 0; k < a->nkeys; k++) {
        unsigned char want[SHA256_LEN];
        if (a->keys[k].secret == NULL) continue;
        if (hmac_sha256(a->keys[k].secret, a->keys[k].secret_len, parts, nparts, want) != 0)
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

hl_sig_scheme_t hl_sig_scheme_parse(const char *name)
{
    if (name == NULL) return HL_SIG_SCHEME_NONE;
    if (strcmp(name, "standard-webhooks") == 0) return HL_SIG_SCHEME_STANDARD;
    if (strcmp(name, "stripe") == 0) return HL_SIG_SCHEME_STRIPE;
    if (strcmp(name, "hmac-sha256") == 0) return HL_SIG_SCHEME_HMAC;
    if (strcmp(name, "bearer") == 0) return HL_SIG_SCHEME_BEARER;
    if (strcmp(name, "sendgrid") == 0) return HL_SIG_SCHEME_SENDGRID;
    return HL_SIG_SCHEME_NONE;
}

const char *hl_sig_scheme_name(hl_sig_scheme_t s)
{
    switch (s) {
    case HL_SIG_SCHEME_STANDARD: return "standard-webhooks";
    case HL_SIG_SCHEME_STRIPE: return "stripe";
    case HL_SIG_SCHEME_HMAC: return "hmac-sha256";
    case HL_SIG_SCHEME_BEARER: return "bearer";
    case HL_SIG_SCHEME_SENDGRID: return "sendgrid";
    default: return "none";
    }
}

const char *hl_sig_code(hl_sig_result_t r)
{
    switch (r) {
    case HL_SIG_OK: return NULL;
    case HL_SIG_MISSING: return "missing_signature";
    case HL_SIG_MALFORMED: return "malformed_signature";
    case HL_SIG_STALE: return "stale_timestamp";
    default: return "bad_signature";
    }
}

void hl_sig_init(hl_sig_t *a, hl_sig_scheme_t scheme, int64_t tolerance_s)
{
    memset(a, 0, sizeof(*a));
    a->scheme = scheme;
    a->tolerance_s = tolerance_s;
    a->encoding = HL_SIG_ENC_HEX;
}

void hl_sig_deinit(hl_sig_t *a)
{
    if (a == NULL) return;
    for (size_t i = 0; i < a->nkeys; i++) {
        if (a->keys[i].secret != NULL) {
            OPENSSL_cleanse(a->keys[i].secret, a->keys[i].secret_len);
            free(a->keys[i].secret);
        }
        EVP_PKEY_free(a->keys[i].pkey);
    }
    a->nkeys = 0;
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

static int key_fail(char *errbuf, size_t errcap, const char *why)
{
    snprintf(errbuf, errcap, "%s", why);
    return HL_ECONFIG;
}

static int add_secret(hl_sig_t *a, const unsigned char *p, size_t n)
{
    hl_sig_key_t *k = &a->keys[a->nkeys++];
    k->secret = hl_xmalloc(n ? n : 1);
    memcpy(k->secret, p, n);
    k->secret_len = n;
    return 0;
}

static int add_standard_key(hl_sig_t *a, const char *t, size_t n, char *errbuf, size_t errcap)
{
    unsigned char buf[MAX_SECRET_LEN];
    if (n > 5 && strncmp(t, "whpk_", 5) == 0) {
        if (hl_base64_decode(t + 5, n - 5, buf, sizeof(buf)) != ED25519_KEY_LEN)
            return key_fail(errbuf, errcap, "whpk_ key is not base64 of a 32-byte Ed25519 key");
        EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, buf, ED25519_KEY_LEN);
        if (pk == NULL) return key_fail(errbuf, errcap, "whpk_ key refused by OpenSSL");
        a->keys[a->nkeys++].pkey = pk;
        return 0;
    }
    if (n > 6 && strncmp(t, "whsec_", 6) == 0) {
        t += 6;
        n -= 6;
    }
    int len = hl_base64_decode(t, n, buf, sizeof(buf));
    if (len < 16) return key_fail(errbuf, errcap, "whsec_ secret must be base64 of 16+ bytes");
    int rc = add_secret(a, buf, (size_t)len);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

static int add_sendgrid_key(hl_sig_t *a, const char *t, size_t n, char *errbuf, size_t errcap)
{
    unsigned char der[MAX_SECRET_LEN];
    int len = hl_base64_decode(t, n, der, sizeof(der));
    if (len <= 0) return key_fail(errbuf, errcap, "public key must be base64 DER");
    const unsigned char *p = der;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, len);
    if (pk == NULL || p != der + len)
        goto bad;
    char group[64] = "";
    size_t glen = 0;
    if (!EVP_PKEY_is_a(pk, "EC") ||
        EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1 ||
        (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0))
        goto bad;
    a->keys[a->nkeys++].pkey = pk;
    return 0;
bad:
    EVP_PKEY_free(pk);
    return key_fail(errbuf, errcap, "public key is not a P-256 SubjectPublicKeyInfo");
}

int hl_sig_add_key(hl_sig_t *a, const char *text, size_t len, char *errbuf, size_t errcap)
{
    if (a->nkeys >= HL_SIG_MAX_KEYS) {
        snprintf(errbuf, errcap, "at most %d keys per source", HL_SIG_MAX_KEYS);
        return HL_ERANGE;
    }
    if (len == 0 || len > MAX_SECRET_LEN)
        return key_fail(errbuf, errcap, "key must be 1 to 1024 bytes");
    switch (a->scheme) {
    case HL_SIG_SCHEME_STANDARD: return add_standard_key(a, text, len, errbuf, errcap);
    case HL_SIG_SCHEME_SENDGRID: return add_sendgrid_key(a, text, len, errbuf, errcap);
    case HL_SIG_SCHEME_BEARER: {
        /* Tokens are kept as digests so the comparison is fixed-length and constant-time. */
        unsigned char d[SHA256_LEN];
        if (sha256(text, len, d) != 0) return key_fail(errbuf, errcap, "sha256 failed");
        return add_secret(a, d, sizeof(d));
    }
    case HL_SIG_SCHEME_STRIPE:
    case HL_SIG_SCHEME_HMAC: return add_secret(a, (const unsigned char *)text, len);
    default: return key_fail(errbuf, errcap, "unknown scheme");
    }
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

static int ed25519_verify(EVP_PKEY *pk, const unsigned char *sig, const unsigned char *msg,
                          size_t n)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
             EVP_DigestVerify(ctx, sig, ED25519_SIG_LEN, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Does any v1a signature verify under any Ed25519 key? Ed25519 hashes the whole content for
 * each (signature, key) pair, which is why the candidates are capped at
 * HL_SIG_MAX_ED25519_SIGS. The content is built once, only when there is a candidate. */
static int ed25519_matches_any(const hl_sig_t *a, const part_t *parts, int nparts,
                               const unsigned char (*sigs)[ED25519_SIG_LEN], int n)
{
    size_t clen = 0, o = 0;
    for (int i = 0; i < nparts; i++) clen += parts[i].n;
    unsigned char *content = hl_xmalloc(clen ? clen : 1);
    for (int i = 0; i < nparts; i++) {
        memcpy(content + o, parts[i].p, parts[i].n);
        o += parts[i].n;
    }
    int match = 0;
    for (int i = 0; i < n && !match; i++)
        for (size_t k = 0; k < a->nkeys && !match; k++)
            if (a->keys[k].pkey != NULL)
                match = ed25519_verify(a->keys[k].pkey, sigs[i], content, clen);
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
    const part_t parts[] = {{id, idlen}, {".", 1}, {ts, tslen}, {".", 1}, {body, blen}};
    int match = sigs.n1 > 0 && hmac_matches_any(a, parts, 5, sigs.v1, sigs.n1);
    if (!match && sigs.n1a > 0) match = ed25519_matches_any(a, parts, 5, sigs.v1a, sigs.n1a);
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
    if (ts == NULL || hl_sig_parse_unix_s(ts, tslen, &t) != 0 || nmac == 0)
        return HL_SIG_MALFORMED;
    const part_t parts[] = {{ts, tslen}, {".", 1}, {body, blen}};
    if (!hmac_matches_any(a, parts, 3, macs, nmac)) return HL_SIG_BAD;
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
    const part_t parts[] = {{body, blen}};
    return hmac_matches_any(a, parts, 1, mac, 1) ? HL_SIG_OK : HL_SIG_BAD;
}

static hl_sig_result_t verify_bearer(const hl_sig_t *a, const hl_sig_headers_t *h)
{
    const char *v = NULL;
    hl_sig_result_t r = one_header(h, a->header, &v);
    if (r != HL_SIG_OK) return r;
    if (strncasecmp(v, "Bearer ", 7) != 0 || v[7] == '\0') return HL_SIG_MALFORMED;
    unsigned char d[SHA256_LEN];
    if (sha256(v + 7, strlen(v + 7), d) != 0) return HL_SIG_BAD;
    int match = 0;
    for (size_t k = 0; k < a->nkeys; k++)
        match |= a->keys[k].secret != NULL && CRYPTO_memcmp(a->keys[k].secret, d, SHA256_LEN) == 0;
    return match ? HL_SIG_OK : HL_SIG_BAD;
}

static int ecdsa_verify(EVP_PKEY *pk, const unsigned char *sig, size_t slen, const char *ts,
                        size_t tslen, const unsigned char *body, size_t blen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, sha256_md(), NULL, pk) == 1 &&
             EVP_DigestVerifyUpdate(ctx, ts, tslen) == 1 &&
             EVP_DigestVerifyUpdate(ctx, body, blen) == 1 &&
             EVP_DigestVerifyFinal(ctx, sig, slen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
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
    int match = 0;
    for (size_t k = 0; k < a->nkeys && !match; k++)
        if (a->keys[k].pkey != NULL)
            match = ecdsa_verify(a->keys[k].pkey, der, (size_t)n, ts, tslen, body, blen);
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

size_t hl_sig_signed_headers(const hl_sig_t *a, const hl_sig_headers_t *h,
                             const char *names[HL_SIG_MAX_SIGNED_HEADERS])
{
    switch (a->scheme) {
    case HL_SIG_SCHEME_STANDARD:
        if (strcmp(standard_family(h), "webhook") == 0) {
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

hl_sig_result_t hl_sig_verify(const hl_sig_t *a, const hl_sig_headers_t *h,
                              const unsigned char *body, size_t body_len, int64_t now_s)
{
    int64_t ts;
    return verify_at(a, h, body, body_len, now_s, &ts);
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
            lower[k] = (char)(names[i][k] >= 'A' && names[i][k] <= 'Z' ? names[i][k] + 32
                                                                        : names[i][k]);
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
    unsigned char d[SHA256_LEN];
    if (sha256(p, n, d) != 0) hl_die("openssl: SHA-256 failed");
    hl_hex(out, d, SHA256_LEN);
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
