/* Signing of outgoing webhooks: the keys as a sender holds them (secrets, private keys) and the
 * headers each scheme sends. The signed content and the HMAC-SHA256, Ed25519 and ECDSA P-256
 * primitives are libs/sigverify's (hl/sigcontent.h), the ones the ingress verifies with. */
#include "sign.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/sigcontent.h"
#include "hl/util.h"

#define SECRET_CAP 8192

struct cli_signer {
    cli_sign_opts_t opts;
    char header[128];   /* CLI_SIGN_HMAC header name (copied) */
    char prefix[64];    /* CLI_SIGN_HMAC prefix (copied) */
    unsigned char *key; /* HMAC key or bearer token */
    size_t key_len;
    EVP_PKEY *pkey; /* Ed25519 or EC private key */
};

static const struct {
    const char *name;
    cli_sign_scheme_t scheme;
} schemes[] = {
    {"none", CLI_SIGN_NONE},
    {"standard-webhooks", CLI_SIGN_STANDARD},
    {"standard-webhooks-v1a", CLI_SIGN_STANDARD_V1A},
    {"stripe", CLI_SIGN_STRIPE},
    {"hmac-sha256", CLI_SIGN_HMAC},
    {"bearer", CLI_SIGN_BEARER},
    {"sendgrid", CLI_SIGN_SENDGRID},
};

int cli_sign_scheme_parse(const char *s, cli_sign_scheme_t *out)
{
    for (size_t i = 0; s && i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strcmp(s, schemes[i].name) == 0) {
            *out = schemes[i].scheme;
            return 0;
        }
    return HL_EINVAL;
}

const char *cli_sign_scheme_name(cli_sign_scheme_t s)
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

static int load_b64_key(cli_signer_t *s, const char *secret, size_t len, const char *pfx)
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

static int load_ec_key(cli_signer_t *s, const char *secret, size_t len)
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

int cli_signer_new(const cli_sign_opts_t *opts, const char *secret, size_t secret_len,
                   cli_signer_t **out, char *errbuf, size_t errcap)
{
    *out = NULL;
    if (secret_len > SECRET_CAP) return fail(errbuf, errcap, "secret over 8 KiB");
    cli_signer_t *s = hl_xcalloc(1, sizeof(*s));
    s->opts = *opts;
    /* One scheme name for both standard-webhooks versions: the key says which. */
    if (opts->scheme == CLI_SIGN_STANDARD && secret_len > 5 && memcmp(secret, "whsk_", 5) == 0)
        s->opts.scheme = CLI_SIGN_STANDARD_V1A;
    int rc = 0;
    switch (s->opts.scheme) {
    case CLI_SIGN_NONE: break;
    case CLI_SIGN_STANDARD:
        if (load_b64_key(s, secret, secret_len, "whsec_"))
            rc = fail(errbuf, errcap, "standard-webhooks secret must be whsec_<base64>");
        break;
    case CLI_SIGN_STANDARD_V1A:
        if (load_b64_key(s, secret, secret_len, "whsk_") ||
            (s->key_len != 32 && s->key_len != 64)) {
            rc = fail(errbuf, errcap,
                      "v1a key must be whsk_<base64 of a 32- or 64-byte Ed25519 key>");
            break;
        }
        s->pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, s->key, 32);
        if (!s->pkey) rc = fail(errbuf, errcap, "v1a key is not a valid Ed25519 key");
        break;
    case CLI_SIGN_STRIPE:
    case CLI_SIGN_HMAC:
    case CLI_SIGN_BEARER:
        if (secret_len == 0) {
            rc = fail(errbuf, errcap, "empty secret");
            break;
        }
        s->key = hl_xmalloc(secret_len + 1);
        memcpy(s->key, secret, secret_len);
        s->key[secret_len] = '\0';
        s->key_len = secret_len;
        break;
    case CLI_SIGN_SENDGRID:
        if (load_ec_key(s, secret, secret_len))
            rc = fail(errbuf, errcap, "sendgrid key must be a PEM or base64 DER EC private key");
        break;
    default: rc = fail(errbuf, errcap, "unknown scheme");
    }
    if (!rc && (opts->scheme == CLI_SIGN_HMAC || opts->scheme == CLI_SIGN_BEARER)) {
        const char *dflt = opts->scheme == CLI_SIGN_HMAC ? "X-Signature-256" : "Authorization";
        const char *h = opts->header && *opts->header ? opts->header : dflt;
        const char *p = opts->prefix ? opts->prefix : "";
        if (hl_strlcpy(s->header, h, sizeof(s->header)) ||
            hl_strlcpy(s->prefix, p, sizeof(s->prefix)))
            rc = fail(errbuf, errcap, "hmac header name or prefix too long");
        s->opts.header = s->header;
        s->opts.prefix = s->prefix;
    }
    if (rc) {
        cli_signer_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void cli_signer_free(cli_signer_t *s)
{
    if (!s) return;
    if (s->key) OPENSSL_cleanse(s->key, s->key_len);
    free(s->key);
    EVP_PKEY_free(s->pkey);
    free(s);
}

/* The MAC or signature of a scheme's content under the signer's key, base64 into b64. */
static int hmac_b64(const cli_signer_t *s, const hl_sig_part_t *parts, int n, char *b64, size_t cap)
{
    unsigned char mac[HL_SIG_SHA256_LEN];
    if (hl_sig_hmac_sha256(s->key, s->key_len, parts, n, mac) != 0) return HL_EIO;
    return hl_base64_encode(mac, sizeof(mac), b64, cap) < 0 ? HL_EIO : 0;
}

static int pkey_b64(const cli_signer_t *s, const hl_sig_part_t *parts, int n, char *b64, size_t cap)
{
    unsigned char sig[80];
    size_t sl = sizeof(sig);
    if (hl_sig_pkey_sign(s->pkey, parts, n, sig, &sl) != 0) return HL_EIO;
    return hl_base64_encode(sig, sl, b64, cap) < 0 ? HL_EIO : 0;
}

static void add(cli_sign_headers_t *o, const char *name, const char *value)
{
    o->name[o->n] = name;
    (void)hl_strlcpy(o->value[o->n], value, CLI_SIGN_VALUE_CAP);
    o->n++;
}

static int sign_standard(const cli_signer_t *s, const char *id, int64_t ts, const char *body,
                         size_t len, cli_sign_headers_t *out)
{
    char tsb[24], b64[128], val[160];
    int tl = snprintf(tsb, sizeof(tsb), "%lld", (long long)ts);
    hl_sig_part_t parts[HL_SIG_MAX_PARTS];
    int n = hl_sig_content_standard(id, strlen(id), tsb, (size_t)tl, body, len, parts);
    int v1 = s->opts.scheme == CLI_SIGN_STANDARD;
    int rc = v1 ? hmac_b64(s, parts, n, b64, sizeof(b64)) : pkey_b64(s, parts, n, b64, sizeof(b64));
    if (rc) return rc;
    snprintf(val, sizeof(val), "%s,%s", v1 ? "v1" : "v1a", b64);
    add(out, "webhook-id", id);
    add(out, "webhook-timestamp", tsb);
    add(out, "webhook-signature", val);
    return 0;
}

static int sign_stripe(const cli_signer_t *s, int64_t ts, const char *body, size_t len,
                       cli_sign_headers_t *out)
{
    char tsb[24], hex[65], val[128];
    unsigned char mac[HL_SIG_SHA256_LEN];
    int tl = snprintf(tsb, sizeof(tsb), "%lld", (long long)ts);
    hl_sig_part_t parts[HL_SIG_MAX_PARTS];
    int n = hl_sig_content_stripe(tsb, (size_t)tl, body, len, parts);
    if (hl_sig_hmac_sha256(s->key, s->key_len, parts, n, mac) != 0) return HL_EIO;
    hl_hex(hex, mac, sizeof(mac));
    snprintf(val, sizeof(val), "t=%s,v1=%s", tsb, hex);
    add(out, "Stripe-Signature", val);
    return 0;
}

static int sign_hmac(const cli_signer_t *s, const char *body, size_t len, cli_sign_headers_t *out)
{
    unsigned char mac[HL_SIG_SHA256_LEN];
    char enc[72], val[160];
    const hl_sig_part_t parts[] = {{body, len}};
    if (hl_sig_hmac_sha256(s->key, s->key_len, parts, 1, mac) != 0) return HL_EIO;
    if (!s->opts.base64)
        hl_hex(enc, mac, sizeof(mac));
    else if (hl_base64_encode(mac, sizeof(mac), enc, sizeof(enc)) < 0)
        return HL_EIO;
    snprintf(val, sizeof(val), "%s%s", s->prefix, enc);
    add(out, s->header, val);
    return 0;
}

static int sign_sendgrid(const cli_signer_t *s, int64_t ts, const char *body, size_t len,
                         cli_sign_headers_t *out)
{
    char tsb[24], b64[160];
    int tl = snprintf(tsb, sizeof(tsb), "%lld", (long long)ts);
    hl_sig_part_t parts[HL_SIG_MAX_PARTS];
    int n = hl_sig_content_sendgrid(tsb, (size_t)tl, body, len, parts);
    int rc = pkey_b64(s, parts, n, b64, sizeof(b64));
    if (rc) return rc;
    add(out, "X-Twilio-Email-Event-Webhook-Signature", b64);
    add(out, "X-Twilio-Email-Event-Webhook-Timestamp", tsb);
    return 0;
}

int cli_sign(const cli_signer_t *s, const char *id, int64_t ts, const char *body, size_t len,
             cli_sign_headers_t *out)
{
    out->n = 0;
    if (!id) id = "";
    if (strlen(id) >= CLI_SIGN_VALUE_CAP - 8) return HL_ETOOBIG;
    switch (s->opts.scheme) {
    case CLI_SIGN_NONE: return 0;
    case CLI_SIGN_STANDARD:
    case CLI_SIGN_STANDARD_V1A: return sign_standard(s, id, ts, body, len, out);
    case CLI_SIGN_STRIPE: return sign_stripe(s, ts, body, len, out);
    case CLI_SIGN_HMAC: return sign_hmac(s, body, len, out);
    case CLI_SIGN_BEARER: {
        char val[CLI_SIGN_VALUE_CAP];
        if (s->key_len + 8 >= sizeof(val)) return HL_ETOOBIG;
        snprintf(val, sizeof(val), "Bearer %s", (const char *)s->key);
        add(out, s->header, val);
        return 0;
    }
    case CLI_SIGN_SENDGRID: return sign_sendgrid(s, ts, body, len, out);
    }
    return HL_EINVAL;
}
