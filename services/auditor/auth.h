/* Bearer tokens (kept as SHA-256 hashes), roles, and the endpoint × role matrix. */
#ifndef AUD_AUTH_H
#define AUD_AUTH_H

#include <stddef.h>

#include "hl/error.h"

enum { AUD_ROLE_AUDITOR = 1, AUD_ROLE_ADMIN = 2, AUD_ROLE_METRICS = 4 };

#define AUD_TOKEN_MAX 256 /* longest bearer token accepted */

typedef struct {
    unsigned char sha256[32];
    unsigned roles;
    char name[64];
} aud_token_entry_t;

typedef struct {
    aud_token_entry_t *entries; /* owned */
    size_t n;
} aud_tokens_t;

/* Parses "auditor", "admin", "metrics" into a role bit; 0 when unknown. */
unsigned aud_role_parse(const char *s);

/* Adds a token given as a 64-hex-digit SHA-256 of the token text. Returns 0 or HL_EINVAL. */
int aud_tokens_add(aud_tokens_t *t, const char *name, const char *sha256_hex,
                   unsigned roles) HL_MUST_CHECK;
void aud_tokens_free(aud_tokens_t *t);

/* Extracts the token from an Authorization header value ("Bearer <token>"). Returns 0 with
 * a pointer/length into `header`, or HL_EAUTH for a missing or malformed header. */
int aud_auth_bearer(const char *header, const char **tok, size_t *len) HL_MUST_CHECK;

/* Looks a token up (constant time in the token's content across all entries). Returns the
 * roles of the matching entry, 0 when none matches. */
unsigned aud_tokens_roles(const aud_tokens_t *t, const char *tok, size_t len);

/* The role matrix: which roles may call `method` on `path` (path without query). Returns
 * the role mask, or 0 for a path that needs no token (/healthz, /readyz). Sets *known to 0
 * for a path/method the auditor does not serve. */
unsigned aud_auth_required(const char *method, const char *path, int *known);

#endif
