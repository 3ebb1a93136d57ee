/* Fuzzes the signature header parsers and verification (libs/sigverify), and
 * re-verification from the stored signature headers. Input:
 * byte 0 picks the scheme, then "name: value" header lines up to an empty line, then the body.
 * Every scheme has real keys, so well-formed but wrong signatures reach the comparison. */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/sigverify.h"
#include "hl/codec.h"

#define MAX_HEADERS 32
#define NOW_S 1767225600 /* fixed clock: 2026-01-01 */

static hl_sig_t g_auth[5];
static int g_ready;

static void add(hl_sig_t *a, const char *k)
{
    char err[128];
    if (hl_sig_add_key(a, k, strlen(k), err, sizeof err) != 0) abort();
}

static void setup(void)
{
    hl_sig_init(&g_auth[0], HL_SIG_SCHEME_STANDARD, 300);
    add(&g_auth[0], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    add(&g_auth[0], "whpk_11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    hl_sig_init(&g_auth[1], HL_SIG_SCHEME_STRIPE, 300);
    add(&g_auth[1], "whsec_stripe_fuzz_secret");
    hl_sig_init(&g_auth[2], HL_SIG_SCHEME_HMAC, 300);
    snprintf(g_auth[2].header, sizeof g_auth[2].header, "%s", "X-Hub-Signature-256");
    snprintf(g_auth[2].prefix, sizeof g_auth[2].prefix, "%s", "sha256=");
    add(&g_auth[2], "github-fuzz-secret");
    hl_sig_init(&g_auth[3], HL_SIG_SCHEME_BEARER, 300);
    snprintf(g_auth[3].header, sizeof g_auth[3].header, "%s", "Authorization");
    add(&g_auth[3], "token-fuzz-1");
    hl_sig_init(&g_auth[4], HL_SIG_SCHEME_SENDGRID, 300);
    /* A fresh P-256 key each run: only the parsing and the failing comparison are exercised. */
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    unsigned char *der = NULL;
    int dl = pk ? i2d_PUBKEY(pk, &der) : -1;
    char b64[512];
    if (dl <= 0 || hl_base64_encode(der, (size_t)dl, b64, sizeof b64) < 0) abort();
    add(&g_auth[4], b64);
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    g_ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ready) setup();
    if (size < 1) return 0;
    const hl_sig_t *a = &g_auth[data[0] % 5];
    char *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    size_t n = size - 1;
    hl_sig_header_t hv[MAX_HEADERS];
    hl_sig_headers_t h = {hv, 0};
    size_t i = 0;
    /* Header lines: split in place; values may hold any byte but NUL and newline. */
    while (i < n && buf[i] != '\n' && h.n < MAX_HEADERS) {
        char *line = buf + i;
        char *nl = memchr(line, '\n', n - i);
        size_t ll = nl ? (size_t)(nl - line) : n - i;
        line[ll] = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            if (*v == ' ') v++;
            hv[h.n].name = line;
            hv[h.n].value = v;
            h.n++;
        }
        i += ll + 1;
    }
    if (i < n && buf[i] == '\n') i++;
    const unsigned char *body = (const unsigned char *)buf + (i < n ? i : n);
    size_t blen = i < n ? n - i : 0;
    hl_sig_result_t r = hl_sig_verify(a, &h, body, blen, NOW_S);
    if (r != HL_SIG_OK && hl_sig_code(r) == NULL) abort();
    /* What verified at arrival verifies again later, from the headers as they are stored. */
    int64_t ts;
    hl_sig_result_t again = hl_sig_reverify(a, &h, body, blen, &ts);
    if (again == HL_SIG_STALE || (r == HL_SIG_OK && again != HL_SIG_OK)) abort();
    static char sj[HL_SIG_SIGNED_JSON_MAX];
    int sl = hl_sig_signed_json(a, &h, sj, sizeof sj);
    hl_sig_result_t stored = HL_SIG_BAD;
    if (sl > 0 && hl_sig_reverify_stored(a, sj, (size_t)sl, body, blen, &stored, &ts) != 0) abort();
    if (sl > 0 && r == HL_SIG_OK && stored != HL_SIG_OK) abort();
    free(buf);
    return 0;
}
