/* Bearer token checks and the role matrix; the matrix is one table so a test can walk it. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chain.h"
#include "hl/util.h"

unsigned aud_role_parse(const char *s)
{
    if (!s) return 0;
    if (strcmp(s, "auditor") == 0) return AUD_ROLE_AUDITOR;
    if (strcmp(s, "admin") == 0) return AUD_ROLE_ADMIN;
    if (strcmp(s, "metrics") == 0) return AUD_ROLE_METRICS;
    return 0;
}

int aud_tokens_add(aud_tokens_t *t, const char *name, const char *sha256_hex, unsigned roles)
{
    aud_token_entry_t e;
    memset(&e, 0, sizeof e);
    if (!sha256_hex || aud_chain_unhex(sha256_hex, e.sha256) != 0 || roles == 0) return HL_EINVAL;
    if (hl_strlcpy(e.name, name ? name : "", sizeof e.name) != 0) return HL_EINVAL;
    e.roles = roles;
    t->entries = hl_xrealloc(t->entries, (t->n + 1) * sizeof *t->entries);
    t->entries[t->n++] = e;
    return 0;
}

void aud_tokens_free(aud_tokens_t *t)
{
    if (!t) return;
    free(t->entries);
    t->entries = NULL;
    t->n = 0;
}

/* RFC 6750 b64token characters. */
static int token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

int aud_auth_bearer(const char *h, const char **tok, size_t *len)
{
    size_t n = 0;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return HL_EAUTH;
    h += 7;
    while (*h == ' ') h++;
    while (h[n] && token_char((unsigned char)h[n])) n++;
    if (n == 0 || n > AUD_TOKEN_MAX) return HL_EAUTH;
    for (size_t i = n; h[i]; i++)
        if (h[i] != ' ') return HL_EAUTH;
    *tok = h;
    *len = n;
    return 0;
}

unsigned aud_tokens_roles(const aud_tokens_t *t, const char *tok, size_t len)
{
    unsigned char d[32];
    unsigned roles = 0;
    SHA256((const unsigned char *)tok, len, d);
    /* Every entry is compared, so timing does not tell which one (or whether one) matched. */
    for (size_t i = 0; i < t->n; i++)
        if (CRYPTO_memcmp(d, t->entries[i].sha256, sizeof d) == 0) roles |= t->entries[i].roles;
    return roles;
}

#define R_READ (AUD_ROLE_AUDITOR | AUD_ROLE_ADMIN)

/* method, path pattern ('*' ends a prefix match), roles. First match wins. */
static const struct {
    const char *method;
    const char *pattern;
    unsigned roles;
} matrix[] = {
    {"GET", "/healthz", 0},
    {"GET", "/readyz", 0},
    {"GET", "/metrics", AUD_ROLE_METRICS | AUD_ROLE_ADMIN},
    {"GET", "/", R_READ},
    {"POST", "/login", 0}, /* checks the posted token itself */
    {"POST", "/logout", 0},
    {"GET", "/v1/requests", R_READ},
    {"GET", "/v1/requests/*", R_READ},
    {"GET", "/v1/messages/*", R_READ},
    {"GET", "/v1/gaps", R_READ},
    {"GET", "/v1/latency", R_READ},
    {"GET", "/v1/error-budget", R_READ},
    {"GET", "/v1/verify", R_READ},
    {"POST", "/v1/verify", R_READ},
    {"GET", "/v1/verify/content", R_READ},
    {"GET", "/v1/events/*", R_READ},
    {"GET", "/v1/checkpoints", R_READ},
    {"POST", "/v1/checkpoints", AUD_ROLE_ADMIN},
    {"POST", "/v1/evidence", R_READ},
};

static int matches(const char *pattern, const char *path)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*') return strncmp(pattern, path, n - 1) == 0 && path[n - 1];
    return strcmp(pattern, path) == 0;
}

unsigned aud_auth_required(const char *method, const char *path, int *known)
{
    *known = 0;
    for (size_t i = 0; i < sizeof matrix / sizeof matrix[0]; i++)
        if (matches(matrix[i].pattern, path) && strcmp(matrix[i].method, method) == 0) {
            *known = 1;
            return matrix[i].roles;
        }
    return 0;
}
