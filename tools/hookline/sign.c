/* Signing of outgoing webhooks with OpenSSL: HMAC-SHA256 for the shared-secret schemes,
 * Ed25519 for standard-webhooks v1a and ECDSA P-256 for the SendGrid scheme. */
#include "sign.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/util.h"

#define SECRET_CAP 8192

struct hl_signer {
    hl_sign_opts_t opts;
    char header[128];        /* HL_SIGN_HMAC header name (copied) */
    char prefix[64];         /* HL_SIGN_HMAC prefix (copied) */
    unsigned char *key;      /* HMAC key or bearer token */
    size_t key_len;
    EVP_PKEY *pkey;          /* Ed25519 or EC private key */
    EVP_MAC *mac;            /* HMAC implementation, fetched once */
    EVP_MAC_CTX *keyed;      /* HMAC-SHA256 keyed once; each signature works on a copy */
};

static const struct {
    const char *name;
    hl_sign_scheme_t scheme;
} schemes[] = {
    {"none", HL_SIGN_NONE},
    {"standard-webhooks", HL_SIGN_STANDARD},
    {"standard-webhooks-v1a", HL_SIGN_STANDARD_V1A},
    {"stripe", HL_SIGN_STRIPE},
    {"hmac-sha256", HL_SIGN_HMAC},
    {"bearer", HL_SIGN_BEARER},
    {"sendgrid", HL_SIGN_SENDGRID},
};

int hl_sign_scheme_parse(const char *s, hl_sign_scheme_t *out)
{
    for (size_t i = 0; s && i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strcmp(s, schemes[i].name) == 0) {
            *out = schemes[i].scheme;
            return 0;
        }
    return HL_EINVAL;
}

const char *hl_sign_scheme_name(hl_sign_scheme_t s)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (schemes[i].scheme == s) return schemes[i].name;
    return "unknown";
}

static int fail(char *errbuf, size_t errcap, const char *msg)
{
    snprintf(errbuf, errcap, "%s", msg);
    return HL_EINVAL;
}

static int load_b64_key(hl_signer_t *s, const char *secret, size_t len, const char *pfx)
{
    size_t pl = strlen(pfx);
    if (len > pl && memcmp(secret, pfx, pl) == 0) {
        secret += pl;
        len -= pl;
    }
    s->key = hl_xmalloc(len + 1);
    int n = hl_base64_decode_loose(secret, len, s->key, len + 1);
    if (n <= 0) return HL_EINVAL;
    s->key_len = (size_t)n;
    return 0;
}

static int load_ec_key(hl_signer_t *s, const char *secret, size_t len)
{
    BIO *bio = BIO_new_mem_buf(secret, (int)len);
    if (!bio) return HL_EINVAL;
    s->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!s->pkey) {
        unsigned char *der = hl_xmalloc(len + 1);
        int n = hl_base64_decode_loose(secret, len, der, len + 1);
        if (n > 0) {
            const unsigned char *p = der;
            s->pkey = d2i_AutoPrivateKey(NULL, &p, n);
        }
        free(der);
    }
    if (!s->pkey || EVP_PKEY_get_base_id(s->pkey) != EVP_PKEY_EC) return HL_EINVAL;
    return 0;
}

int hl_signer_new(const hl_sign_opts_t *opts, const char *secret, size_t secret_len,
                  hl_signer_t **out, char *errbuf, size_t errcap)
{
    *out = NULL;
    if (secret_len > SECRET_CAP) return fail(errbuf, errcap, "secret over 8 KiB");
    hl_signer_t *s = hl_xcalloc(1, sizeof(*s));
    s->opts = *opts;
    /* One scheme name for both standard-webhooks versions: the key says which. */
    if (opts->scheme == HL_SIGN_STANDARD && secret_len > 5 && memcmp(secret, "whsk_", 5) == 0)
        s->opts.scheme = HL_SIGN_STANDARD_V1A;
    int rc = 0;
    switch (s->opts.scheme) {
    case HL_SIGN_NONE:
        break;
    case HL_SIGN_STANDARD:
        if (load_b64_key(s, secret, secret_len, "whsec_"))
            rc = fail(errbuf, errcap, "standard-webhooks secret must be whsec_<base64>");
        break;
    case HL_SIGN_STANDARD_V1A:
        if (load_b64_key(s, secret, secret_len, "whsk_") ||
            (s->key_len != 32 && s->key_len != 64)) {
            rc = fail(errbuf, errcap, "v1a key must be whsk_<base64 of a 32- or 64-byte Ed25519 key>");
            break;
        }
        s->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, s->key, 32);
        if (!s->pkey) rc = fail(errbuf, errcap, "v1a key is not a valid Ed25519 key");
        break;
    case HL_SIGN_STRIPE:
    case HL_SIGN_HMAC:
    case HL_SIGN_BEARER:
        if (secret_len == 0) {
            rc = fail(errbuf, errcap, "empty secret");
            break;
        }
        s->key = hl_xmalloc(secret_len + 1);
        memcpy(s->key, secret, secret_len);
        s->key[secret_len] = '\0';
        s->key_len = secret_len;
        break;
    case HL_SIGN_SENDGRID:
        if (load_ec_key(s, secret, secret_len))
            rc = fail(errbuf, errcap, "sendgrid key must be a PEM or base64 DER EC private key");
        break;
    default:
        rc = fail(errbuf, errcap, "unknown scheme");
    }
    if (!rc && (opts->scheme == HL_SIGN_HMAC || opts->scheme == HL_SIGN_BEARER)) {
        const char *dflt = opts->scheme == HL_SIGN_HMAC ? "X-Signature-256" : "Authorization";
        const char *h = opts->header && *opts->header ? opts->header : dflt;
        const char *p = opts->prefix ? opts->prefix : "";
        if (hl_strlcpy(s->header, h, sizeof(s->header)) || hl_strlcpy(s->prefix, p, sizeof(s->prefix)))
            rc = fail(errbuf, errcap, "hmac header name or prefix too long");
        s->opts.header = s->header;
        s->opts.prefix = s->prefix;
    }
    if (!rc && s->key && !s->pkey) {
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                               OSSL_PARAM_construct_end()};
        s->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        s->keyed = s->mac ? EVP_MAC_CTX_new(s->mac) : NULL;
        if (!s->keyed || !EVP_MAC_init(s->keyed, s->key, s->key_len, params))
            rc = fail(errbuf, errcap, "HMAC-SHA256 unavailable in this OpenSSL");
    }
    if (rc) {
        hl_signer_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void hl_signer_free(hl_signer_t *s)
{
    if (!s) return;
    if (s->key) OPENSSL_cleanse(s->key, s->key_len);
    free(s->key);
    EVP_PKEY_free(s->pkey);
    EVP_MAC_CTX_free(s->keyed);
    EVP_MAC_free(s->mac);
    free(s);
}

/* HMAC-SHA256 over the concatenation of two parts (b may be empty). Each call works on a copy
 * of the keyed context, so one signer serves every replay thread without locks or key setup. */
static int hmac2(const hl_signer_t *s, const char *a, size_t al, const char *b, size_t bl,
                 unsigned char mac[32])
{
    EVP_MAC_CTX *ctx = s->keyed ? EVP_MAC_CTX_dup(s->keyed) : NULL;
    size_t outl = 0;
    int ok = ctx && EVP_MAC_update(ctx, (const unsigned char *)a, al) &&
             (!bl || EVP_MAC_update(ctx, (const unsigned char *)b, bl)) &&
             EVP_MAC_final(ctx, mac, &outl, 32) && outl == 32;
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : HL_EIO;
}

/* One-shot signature of msg with the signer's private key (Ed25519 signs the message itself;
 * ECDSA hashes it with SHA-256 first). */
static int pkey_sign(const hl_signer_t *s, const unsigned char *msg, size_t len, unsigned char *sig,
                     size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL;
    const EVP_MD *md = EVP_PKEY_get_base_id(s->pkey) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    ok = ok && EVP_DigestSignInit(ctx, NULL, md, NULL, s->pkey) == 1;
    ok = ok && EVP_DigestSign(ctx, sig, siglen, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : HL_EIO;
}

static void add(hl_sign_headers_t *o, const char *name, const char *value)
{
    o->name[o->n] = name;
    (void)hl_strlcpy(o->value[o->n], value, HL_SIGN_VALUE_CAP);
    o->n++;
}

static int sign_standard(const hl_signer_t *s, const char *id, int64_t ts, const char *body,
                         size_t len, hl_sign_headers_t *out)
{
    char tsb[24], b64[128], val[160];
    snprintf(tsb, sizeof(tsb), "%lld", (long long)ts);
    size_t il = strlen(id), tl = strlen(tsb);
    /* The signed content is "id.timestamp.body". */
    size_t pl = il + tl + 2;
    char *prefix = hl_xmalloc(pl + 1);
    snprintf(prefix, pl + 1, "%s.%s.", id, tsb);
    int rc;
    if (s->opts.scheme == HL_SIGN_STANDARD) {
        unsigned char mac[32];
        rc = hmac2(s, prefix, pl, body, len, mac);
        if (!rc && hl_base64_encode(mac, 32, b64, sizeof(b64)) < 0) rc = HL_EIO;
        if (!rc) snprintf(val, sizeof(val), "v1,%s", b64);
    } else {
        unsigned char *msg = hl_xmalloc(pl + len + 1);
        unsigned char sig[64];
        size_t sl = sizeof(sig);
        memcpy(msg, prefix, pl);
        if (len) memcpy(msg + pl, body, len);
        rc = pkey_sign(s, msg, pl + len, sig, &sl);
        free(msg);
        if (!rc && hl_base64_encode(sig, sl, b64, sizeof(b64)) < 0) rc = HL_EIO;
        if (!rc) snprintf(val, sizeof(val), "v1a,%s", b64);
    }
    free(prefix);
    if (rc) return rc;
    add(out, "webhook-id", id);
    add(out, "webhook-timestamp", tsb);
    add(out, "webhook-signature", val);
    return 0;
}

static int sign_stripe(const hl_signer_t *s, int64_t ts, const char *body, size_t len,
                       hl_sign_headers_t *out)
{
    char tsb[32], hex[65], val[128];
    unsigned char mac[32];
    int n = snprintf(tsb, sizeof(tsb), "%lld.", (long long)ts);
    int rc = hmac2(s, tsb, (size_t)n, body, len, mac);
    if (rc) return rc;
    hl_hex(hex, mac, 32);
    snprintf(val, sizeof(val), "t=%lld,v1=%s", (long long)ts, hex);
    add(out, "Stripe-Signature", val);
    return 0;
}

static int sign_hmac(const hl_signer_t *s, const char *body, size_t len, hl_sign_headers_t *out)
{
    unsigned char mac[32];
    char enc[72], val[160];
    int rc = hmac2(s, body, len, NULL, 0, mac);
    if (rc) return rc;
    if (!s->opts.base64)
        hl_hex(enc, mac, 32);
    else if (hl_base64_encode(mac, 32, enc, sizeof(enc)) < 0)
        return HL_EIO;
    snprintf(val, sizeof(val), "%s%s", s->prefix, enc);
    add(out, s->header, val);
    return 0;
}

static int sign_sendgrid(const hl_signer_t *s, int64_t ts, const char *body, size_t len,
                         hl_sign_headers_t *out)
{
    char tsb[24], b64[160];
    int tl = snprintf(tsb, sizeof(tsb), "%lld", (long long)ts);
    unsigned char *msg = hl_xmalloc((size_t)tl + len + 1);
    unsigned char sig[80];
    size_t sl = sizeof(sig);
    memcpy(msg, tsb, (size_t)tl);
    if (len) memcpy(msg + tl, body, len);
    int rc = pkey_sign(s, msg, (size_t)tl + len, sig, &sl);
    free(msg);
    if (rc) return rc;
    if (hl_base64_encode(sig, sl, b64, sizeof(b64)) < 0) return HL_EIO;
    add(out, "X-Twilio-Email-Event-Webhook-Signature", b64);
    add(out, "X-Twilio-Email-Event-Webhook-Timestamp", tsb);
    return 0;
}

int hl_sign(const hl_signer_t *s, const char *id, int64_t ts, const char *body, size_t len,
            hl_sign_headers_t *out)
{
    out->n = 0;
    if (!id) id = "";
    if (strlen(id) >= HL_SIGN_VALUE_CAP - 8) return HL_ETOOBIG;
    switch (s->opts.scheme) {
    case HL_SIGN_NONE:
        return 0;
    case HL_SIGN_STANDARD:
    case HL_SIGN_STANDARD_V1A:
        return sign_standard(s, id, ts, body, len, out);
    case HL_SIGN_STRIPE:
        return sign_stripe(s, ts, body, len, out);
    case HL_SIGN_HMAC:
        return sign_hmac(s, body, len, out);
    case HL_SIGN_BEARER: {
        char val[HL_SIGN_VALUE_CAP];
        if (s->key_len + 8 >= sizeof(val)) return HL_ETOOBIG;
        snprintf(val, sizeof(val), "Bearer %s", (const char *)s->key);
        add(out, s->header, val);
        return 0;
    }
    case HL_SIGN_SENDGRID:
        return sign_sendgrid(s, ts, body, len, out);
    }
    return HL_EINVAL;
}
