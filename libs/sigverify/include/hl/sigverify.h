/* Webhook signature verification: the signature schemes a source can use, each checked in
 * constant time against every key configured for the source (several at once, for rotation).
 * Shared by the ingress (at arrival) and by whoever re-verifies a stored event later. */
#ifndef HL_SIG_H
#define HL_SIG_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/codec.h"
#include "hl/error.h"

/* One request header as civetweb hands it over (both borrowed, NUL-terminated). */
typedef struct {
    const char *name;
    const char *value;
} hl_sig_header_t;

typedef struct {
    const hl_sig_header_t *v; /* borrowed array */
    size_t n;
} hl_sig_headers_t;

/* Finds header `name` (case-insensitive). Returns its value (borrowed), or NULL when absent.
 * *count (if non-NULL) receives how many times it occurs: callers that need one value refuse
 * a repeated header instead of guessing which copy counts. */
const char *hl_sig_header_get(const hl_sig_headers_t *h, const char *name, int *count);

/* Parses a Unix timestamp in seconds: 1 to 12 ASCII digits, nothing else. Returns 0 or
 * HL_EPARSE. */
int hl_sig_parse_unix_s(const char *s, size_t n, int64_t *out) HL_MUST_CHECK;

typedef enum {
    HL_SIG_SCHEME_NONE = 0,
    HL_SIG_SCHEME_STANDARD, /* Standard Webhooks (and Svix header names): v1 HMAC, v1a Ed25519 */
    HL_SIG_SCHEME_STRIPE,   /* Stripe-Signature: t=…,v1=… */
    HL_SIG_SCHEME_HMAC,     /* HMAC-SHA256 of the body in a configured header (GitHub, Shopify) */
    HL_SIG_SCHEME_BEARER,   /* Authorization: Bearer <token> */
    HL_SIG_SCHEME_SENDGRID, /* SendGrid signed event webhook: ECDSA P-256 over timestamp + body */
} hl_sig_scheme_t;

typedef enum { HL_SIG_ENC_HEX = 0, HL_SIG_ENC_BASE64 } hl_sig_encoding_t;

typedef enum {
    HL_SIG_OK = 0,
    HL_SIG_MISSING,   /* a required header is absent: "missing_signature" */
    HL_SIG_MALFORMED, /* present but unparseable, repeated or over its cap: "malformed_signature" */
    HL_SIG_BAD,       /* well-formed, matches no key: "bad_signature" */
    HL_SIG_STALE,     /* authentic but timestamp outside tolerance: "stale_timestamp" */
} hl_sig_result_t;

#define HL_SIG_MAX_KEYS 8
#define HL_SIG_MAX_HEADER 4096 /* longest signature header value examined */
#define HL_SIG_MAX_SIGS 16     /* signatures examined per request */
/* Ed25519 (v1a) signatures examined per request: each is verified against every public key
 * over the whole body, so more than this (two cover a rotation) is refused as malformed. */
#define HL_SIG_MAX_ED25519_SIGS 2

typedef struct {
    unsigned char *secret; /* symmetric key bytes (owned), NULL for a public key */
    size_t secret_len;
    EVP_PKEY *pkey; /* public key (owned), NULL for a secret */
} hl_sig_key_t;

/* One source's verifier: immutable after configuration, shared by every worker thread. */
typedef struct {
    hl_sig_scheme_t scheme;
    char header[64];            /* hmac-sha256 / bearer: header carrying the signature or token */
    char prefix[32];            /* hmac-sha256: required prefix of the value ("sha256="), or "" */
    hl_sig_encoding_t encoding; /* hmac-sha256: encoding of the digest */
    int64_t tolerance_s;        /* timestamped schemes: accepted |now - timestamp| */
    hl_sig_key_t keys[HL_SIG_MAX_KEYS];
    size_t nkeys;
} hl_sig_t;

/* Parses a scheme name ("standard-webhooks", "stripe", "hmac-sha256", "bearer", "sendgrid").
 * Returns HL_SIG_SCHEME_NONE for anything else. */
hl_sig_scheme_t hl_sig_scheme_parse(const char *name);
const char *hl_sig_scheme_name(hl_sig_scheme_t s);

/* Initialises a verifier for `scheme` with no keys (cannot fail). */
void hl_sig_init(hl_sig_t *a, hl_sig_scheme_t scheme, int64_t tolerance_s);
/* Frees the keys. NULL-safe. */
void hl_sig_deinit(hl_sig_t *a);

/* Adds one key given as text (borrowed; copied/decoded). Interpretation by scheme:
 *   standard-webhooks: "whsec_<base64>" (HMAC secret) or "whpk_<base64 32 bytes>" (Ed25519);
 *   stripe, hmac-sha256, bearer: the bytes as they are;
 *   sendgrid: base64 DER SubjectPublicKeyInfo of a P-256 key.
 * Returns 0, or HL_ECONFIG / HL_ERANGE (too many keys) with the reason (never the value) in
 * errbuf. */
int hl_sig_add_key(hl_sig_t *a, const char *text, size_t len, char *errbuf,
                   size_t errcap) HL_MUST_CHECK;

/* Verifies one request. `now_s` is the current Unix time (injected so tests can fix it).
 * Runs on any thread; `a` is read-only. Never logs. */
hl_sig_result_t hl_sig_verify(const hl_sig_t *a, const hl_sig_headers_t *h,
                              const unsigned char *body, size_t body_len, int64_t now_s);

/* Verifies a stored request again, later: the same check as hl_sig_verify except that no
 * timestamp tolerance applies (the event is old by design). *signed_ts (if non-NULL) receives
 * the timestamp the signature covers once a signature matched, else -1 (also for schemes
 * that sign none: hmac-sha256, bearer). Never HL_SIG_STALE. Any thread; `a` read-only. */
hl_sig_result_t hl_sig_reverify(const hl_sig_t *a, const hl_sig_headers_t *h,
                                const unsigned char *body, size_t body_len, int64_t *signed_ts);

#define HL_SIG_MAX_SIGNED_HEADERS 3

/* The names of the headers a's scheme reads to authenticate a request like h (static or
 * borrowed from a): what must be kept to verify it again. Bearer has none: a token is a
 * credential and is never kept. Returns how many were written into names. */
size_t hl_sig_signed_headers(const hl_sig_t *a, const hl_sig_headers_t *h,
                             const char *names[HL_SIG_MAX_SIGNED_HEADERS]);

/* Longest text hl_sig_signed_json writes: every signed header at its cap, fully escaped. */
#define HL_SIG_SIGNED_JSON_MAX (HL_SIG_MAX_SIGNED_HEADERS * (2 * HL_SIG_MAX_HEADER + 80) + 4)

/* Writes the signed headers of an authenticated request h as one JSON object of lowercase
 * header name -> value ({"stripe-signature":"t=…"}) into buf (cap bytes, NUL-terminated), in
 * the order of hl_sig_signed_headers; a header absent from h is left out. Returns the length,
 * 0 when the scheme signs with no header (bearer: nothing is written), or HL_ERANGE when a
 * value holds a byte outside printable ASCII (it could not be kept exactly as JSON text) or the
 * text would not fit (never with HL_SIG_SIGNED_JSON_MAX bytes). */
int hl_sig_signed_json(const hl_sig_t *a, const hl_sig_headers_t *h, char *buf,
                       size_t cap) HL_MUST_CHECK;

#define HL_SIG_SHA256_HEX 64

/* SHA-256 of n bytes at p as 64 lowercase hex digits into out (NUL-terminated): the digest
 * under which a body is bound to its lineage. */
void hl_sig_sha256_hex(const void *p, size_t n, char out[HL_SIG_SHA256_HEX + 1]);

/* hl_sig_reverify of a stored event: `signed_json` (len bytes) is the object
 * hl_sig_signed_json wrote ({"name":"value",…}), body the raw body as received. Returns 0 with
 * *result (and *signed_ts as hl_sig_reverify gives it), or HL_EPARSE when signed_json is not
 * an object of at most HL_SIG_MAX_SIGNED_HEADERS string values. Any thread. */
int hl_sig_reverify_stored(const hl_sig_t *a, const char *signed_json, size_t len,
                           const unsigned char *body, size_t body_len, hl_sig_result_t *result,
                           int64_t *signed_ts) HL_MUST_CHECK;

/* The message id a stored event's signature covers: for a scheme that signs one (Standard
 * Webhooks: webhook-id or svix-id, of the family the stored headers use), its value from
 * `signed_json` (as for hl_sig_reverify_stored) into out (cap bytes, NUL-terminated, cut to
 * fit). Returns 1 with out set, 0 when the scheme signs no id or the headers hold none, or
 * HL_EPARSE when signed_json is not such an object. */
int hl_sig_stored_signed_id(const hl_sig_t *a, const char *signed_json, size_t len, char *out,
                            size_t cap) HL_MUST_CHECK;

/* Whether a stored event's parsed payload (payload_len bytes of JSON text, as the jsonb column
 * gives it) is still the parse of its raw body (body_len bytes): the same structure, strings
 * and literals, and numbers of exactly the same decimal value (however spelled: jsonb writes
 * 1e2 as 100, -0 as 0, 1e400 in full; 12345678901234567890 and ...891 differ). Returns 1 when
 * it is, 0 when it differs (or payload is NULL or not JSON), HL_EPARSE when the raw body itself
 * cannot be read as JSON here (an exponent beyond +-10^9, a string holding \u0000, which jsonb
 * refuses): not compared. */
int hl_sig_stored_payload_matches(const unsigned char *body, size_t body_len, const char *payload,
                                  size_t payload_len) HL_MUST_CHECK;

/* A stored event as its row holds it (all borrowed). */
typedef struct {
    const unsigned char *body; /* the raw body as received */
    size_t body_len;
    const char *signed_json; /* the signature headers hl_sig_signed_json wrote */
    const char *body_sha256; /* the digest column, lowercase hex */
    const char *payload;     /* the payload column as JSON text, NULL when null */
} hl_sig_stored_event_t;

#define HL_SIG_MAX_SIGNED_ID 256

/* What checking a stored event again found. */
typedef struct {
    int headers_ok;                          /* 0: the stored signature headers are unreadable */
    hl_sig_result_t signature;               /* checked again, no tolerance (BAD if unreadable) */
    int64_t signed_ts;                       /* the timestamp it signs, -1 for none */
    char body_sha256[HL_SIG_SHA256_HEX + 1]; /* the raw body's digest */
    int digest_matches;                      /* 1: equal to the digest column */
    int payload_matches;                     /* as hl_sig_stored_payload_matches: 1, 0, HL_EPARSE */
    int has_signed_id;                       /* 1: the signature covers signed_id */
    char signed_id[HL_SIG_MAX_SIGNED_ID + 1];
    int signed_id_matches; /* 1: signed_id equals the message id */
} hl_sig_stored_check_t;

/* Checks stored event ev again with verifier a: its signature (hl_sig_reverify_stored), its raw
 * body against the digest column and against the payload column and, when check_id (the
 * source's message id is the one its signature covers), the signed id against message id mid.
 * Fills *out. Any thread. */
void hl_sig_check_stored(const hl_sig_t *a, const hl_sig_stored_event_t *ev, const char *mid,
                         bool check_id, hl_sig_stored_check_t *out);

/* True when everything *r checked holds: the signature is good, the digest matches, the payload
 * does not differ (not comparable counts as no difference) and a signed id is the message id. */
bool hl_sig_stored_ok(const hl_sig_stored_check_t *r);

/* Standard Webhooks: the name of the signed id header of the family h uses, "webhook-id" or
 * "svix-id" (static). */
const char *hl_sig_standard_id_header(const hl_sig_headers_t *h);

/* The stable error code of a result ("bad_signature", …); NULL for HL_SIG_OK. */
const char *hl_sig_code(hl_sig_result_t r);

#endif
