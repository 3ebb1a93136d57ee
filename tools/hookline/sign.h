/* Signing of outgoing webhooks for every scheme the ingress verifies, written from the
 * providers' published descriptions so that the integration test can prove both sides agree. */
#ifndef CLI_SIGN_H
#define CLI_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "hl/codec.h"
#include "hl/error.h"

typedef enum {
    CLI_SIGN_NONE = 0,     /* no authentication headers */
    CLI_SIGN_STANDARD,     /* standard-webhooks v1: HMAC-SHA256, whsec_ base64 secret */
    CLI_SIGN_STANDARD_V1A, /* standard-webhooks v1a: Ed25519, whsk_ base64 private key */
    CLI_SIGN_STRIPE,       /* Stripe-Signature: t=…,v1=hex(HMAC(secret, "t.body")) */
    CLI_SIGN_HMAC,         /* HMAC-SHA256 of the body in one header, hex or base64, prefix */
    CLI_SIGN_BEARER,       /* Authorization: Bearer <token> */
    CLI_SIGN_SENDGRID,     /* ECDSA P-256 over timestamp||body, DER, base64 */
} cli_sign_scheme_t;

/* Parses a scheme name as the ingress configuration spells it ("standard-webhooks",
 * "standard-webhooks-v1a", "stripe", "hmac-sha256", "bearer", "sendgrid", "none"). */
int cli_sign_scheme_parse(const char *s, cli_sign_scheme_t *out) HL_MUST_CHECK;
const char *cli_sign_scheme_name(cli_sign_scheme_t s);

typedef struct {
    cli_sign_scheme_t scheme;
    const char *header; /* HMAC: header, default "X-Signature-256"; bearer: "Authorization" */
    int base64;         /* CLI_SIGN_HMAC: 1 = base64, 0 = lowercase hex */
    const char *prefix; /* CLI_SIGN_HMAC: prefix before the digest, e.g. "sha256=", or NULL */
} cli_sign_opts_t;

typedef struct cli_signer cli_signer_t;

/* A signer for `opts` with `secret` (secret_len bytes, borrowed; copied). The secret's form
 * per scheme: standard-webhooks "whsec_<base64>" (or bare base64) for v1, or a "whsk_" key,
 * which selects v1a; v1a "whsk_<base64 of the
 * 32-byte Ed25519 seed or 64-byte seed||public>"; sendgrid a PEM EC private key or the base64
 * of its DER; the others the raw secret or token. Returns 0 or HL_EINVAL with errbuf filled;
 * *out owned by the caller. */
int cli_signer_new(const cli_sign_opts_t *opts, const char *secret, size_t secret_len,
                   cli_signer_t **out, char *errbuf, size_t errcap) HL_MUST_CHECK;
void cli_signer_free(cli_signer_t *s);

#define CLI_SIGN_MAX_HEADERS 3
#define CLI_SIGN_VALUE_CAP 512

/* Headers to add to one request; names are static strings or the signer's, values stored here. */
typedef struct {
    size_t n;
    const char *name[CLI_SIGN_MAX_HEADERS];
    char value[CLI_SIGN_MAX_HEADERS][CLI_SIGN_VALUE_CAP];
} cli_sign_headers_t;

/* Signs one request. `id` is the delivery id (webhook-id for standard-webhooks; unused by the
 * others), `ts` the Unix time in seconds. Thread-safe for one signer from many threads.
 * Returns 0, HL_ETOOBIG (id too long) or HL_EIO (crypto failure). */
int cli_sign(const cli_signer_t *s, const char *id, int64_t ts, const char *body, size_t len,
             cli_sign_headers_t *out) HL_MUST_CHECK;

#endif
