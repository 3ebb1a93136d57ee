/* A source's verifier: scheme names, result codes, and the keys as configured (secrets copied,
 * bearer tokens kept as digests, public keys parsed and checked). */
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/sigcontent.h"
#include "hl/sigverify.h"
#include "hl/util.h"

#define ED25519_KEY_LEN 32
#define MAX_SECRET_LEN 1024

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
    if (pk == NULL || p != der + len) goto bad;
    char group[64] = "";
    size_t glen = 0;
    if (!EVP_PKEY_is_a(pk, "EC") || EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1 ||
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
        unsigned char d[HL_SIG_SHA256_LEN];
        if (hl_sig_sha256(text, len, d) != 0) return key_fail(errbuf, errcap, "sha256 failed");
        return add_secret(a, d, sizeof(d));
    }
    case HL_SIG_SCHEME_STRIPE:
    case HL_SIG_SCHEME_HMAC: return add_secret(a, (const unsigned char *)text, len);
    default: return key_fail(errbuf, errcap, "unknown scheme");
    }
}
