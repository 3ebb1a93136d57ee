/* Webhook authentication: the signature schemes a source can use, each checked in constant
 * time against every key configured for the source (several at once, for rotation). */
#ifndef ING_AUTH_H
#define ING_AUTH_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "hl/error.h"

typedef enum {
    ING_SCHEME_NONE = 0,
    ING_SCHEME_STANDARD,  /* Standard Webhooks (and Svix header names): v1 HMAC, v1a Ed25519 */
    ING_SCHEME_STRIPE,    /* Stripe-Signature: t=…,v1=… */
    ING_SCHEME_HMAC,      /* HMAC-SHA256 of the body in a configured header (GitHub, Shopify) */
    ING_SCHEME_BEARER,    /* Authorization: Bearer <token> */
    ING_SCHEME_SENDGRID,  /* SendGrid signed event webhook: ECDSA P-256 over timestamp + body */
} ing_scheme_t;

typedef enum { ING_ENC_HEX = 0, ING_ENC_BASE64 } ing_encoding_t;

typedef enum {
    ING_AUTH_OK = 0,
    ING_AUTH_MISSING,   /* a required header is absent: "missing_signature" */
    ING_AUTH_MALFORMED, /* present but unparseable, repeated or over its cap: "malformed_signature" */
    ING_AUTH_BAD,       /* well-formed, matches no key: "bad_signature" */
    ING_AUTH_STALE,     /* authentic but timestamp outside tolerance: "stale_timestamp" */
} ing_auth_result_t;

#define ING_AUTH_MAX_KEYS 8
#define ING_AUTH_MAX_HEADER 4096 /* longest signature header value examined */
#define ING_AUTH_MAX_SIGS 16     /* signatures examined per request */
/* Ed25519 (v1a) signatures examined per request: each is verified against every public key
 * over the whole body, so more than this (two cover a rotation) is refused as malformed. */
#define ING_AUTH_MAX_ED25519_SIGS 2

typedef struct {
    unsigned char *secret; /* symmetric key bytes (owned), NULL for a public key */
    size_t secret_len;
    EVP_PKEY *pkey;        /* public key (owned), NULL for a secret */
} ing_key_t;

/* One source's verifier: immutable after configuration, shared by every worker thread. */
typedef struct {
    ing_scheme_t scheme;
    char header[64];        /* hmac-sha256 / bearer: header carrying the signature or token */
    char prefix[32];        /* hmac-sha256: required prefix of the value ("sha256="), or "" */
    ing_encoding_t encoding;/* hmac-sha256: encoding of the digest */
    int64_t tolerance_s;    /* timestamped schemes: accepted |now - timestamp| */
    ing_key_t keys[ING_AUTH_MAX_KEYS];
    size_t nkeys;
} ing_auth_t;

/* Parses a scheme name ("standard-webhooks", "stripe", "hmac-sha256", "bearer", "sendgrid").
 * Returns ING_SCHEME_NONE for anything else. */
ing_scheme_t ing_scheme_parse(const char *name);
const char *ing_scheme_name(ing_scheme_t s);

/* Initialises a verifier for `scheme` with no keys (cannot fail). */
void ing_auth_init(ing_auth_t *a, ing_scheme_t scheme, int64_t tolerance_s);
/* Frees the keys. NULL-safe. */
void ing_auth_deinit(ing_auth_t *a);

/* Adds one key given as text (borrowed; copied/decoded). Interpretation by scheme:
 *   standard-webhooks: "whsec_<base64>" (HMAC secret) or "whpk_<base64 32 bytes>" (Ed25519);
 *   stripe, hmac-sha256, bearer: the bytes as they are;
 *   sendgrid: base64 DER SubjectPublicKeyInfo of a P-256 key.
 * Returns 0, or HL_ECONFIG / HL_ERANGE (too many keys) with the reason (never the value) in
 * errbuf. */
int ing_auth_add_key(ing_auth_t *a, const char *text, size_t len, char *errbuf,
                     size_t errcap) HL_MUST_CHECK;

/* Verifies one request. `now_s` is the current Unix time (injected so tests can fix it).
 * Runs on any thread; `a` is read-only. Never logs. */
ing_auth_result_t ing_auth_verify(const ing_auth_t *a, const ing_headers_t *h,
                                  const unsigned char *body, size_t body_len, int64_t now_s);

/* Standard Webhooks: the name of the signed id header of the family h uses, "webhook-id" or
 * "svix-id" (static). */
const char *ing_auth_standard_id_header(const ing_headers_t *h);

/* The stable error code of a result ("bad_signature", …); NULL for ING_AUTH_OK. */
const char *ing_auth_code(ing_auth_result_t r);

#endif
