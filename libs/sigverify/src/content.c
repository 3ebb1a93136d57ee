/* The signed content of each scheme and the OpenSSL primitives over it: HMAC-SHA256, SHA-256,
 * Ed25519 and ECDSA P-256, for verifying (sigverify.c) and for signing (hookline). The HMAC and
 * SHA-256 implementations are fetched once: an implicit fetch per call looks them up under the
 * provider store's lock, which every worker thread would contend for. */
#include "hl/sigcontent.h"

#include <openssl/core_names.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"

static EVP_MAC *g_hmac;
static pthread_once_t g_hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    g_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (g_hmac == NULL) hl_die("openssl: HMAC unavailable");
}

static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

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

int hl_sig_content_standard(const char *id, size_t idlen, const char *ts, size_t tslen,
                            const void *body, size_t blen, hl_sig_part_t parts[HL_SIG_MAX_PARTS])
{
    parts[0] = (hl_sig_part_t){id, idlen};
    parts[1] = (hl_sig_part_t){".", 1};
    parts[2] = (hl_sig_part_t){ts, tslen};
    parts[3] = (hl_sig_part_t){".", 1};
    parts[4] = (hl_sig_part_t){body, blen};
    return 5;
}

int hl_sig_content_stripe(const char *ts, size_t tslen, const void *body, size_t blen,
                          hl_sig_part_t parts[HL_SIG_MAX_PARTS])
{
    parts[0] = (hl_sig_part_t){ts, tslen};
    parts[1] = (hl_sig_part_t){".", 1};
    parts[2] = (hl_sig_part_t){body, blen};
    return 3;
}

int hl_sig_content_sendgrid(const char *ts, size_t tslen, const void *body, size_t blen,
                            hl_sig_part_t parts[HL_SIG_MAX_PARTS])
{
    parts[0] = (hl_sig_part_t){ts, tslen};
    parts[1] = (hl_sig_part_t){body, blen};
    return 2;
}

/* One HMAC context per thread, its digest set once and keyed afresh at each use: a context
 * per call cost an allocation, and naming the digest at each init fetched SHA-256 again under
 * the provider store's lock. Freed when the thread ends. */
static pthread_key_t g_mac_key;
static pthread_once_t g_mac_key_once = PTHREAD_ONCE_INIT;

static void mac_ctx_free(void *ctx)
{
    EVP_MAC_CTX_free(ctx);
}

static void mac_key_make(void)
{
    if (pthread_key_create(&g_mac_key, mac_ctx_free) != 0) hl_die("hmac: no thread key");
}

static EVP_MAC_CTX *thread_mac(void)
{
    pthread_once(&g_hmac_once, hmac_fetch);
    pthread_once(&g_mac_key_once, mac_key_make);
    EVP_MAC_CTX *ctx = pthread_getspecific(g_mac_key);
    if (ctx != NULL) return ctx;
    ctx = EVP_MAC_CTX_new(g_hmac);
    if (ctx == NULL) return NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(ctx, params) != 1 || pthread_setspecific(g_mac_key, ctx) != 0) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int hl_sig_hmac_sha256(const unsigned char *key, size_t klen, const hl_sig_part_t *parts,
                       int nparts, unsigned char out[HL_SIG_SHA256_LEN])
{
    /* A NULL key would make EVP_MAC_init keep the thread's previous one. */
    if (key == NULL) return HL_EAUTH;
    EVP_MAC_CTX *ctx = thread_mac();
    size_t outl = 0;
    if (ctx == NULL || EVP_MAC_init(ctx, key, klen, NULL) != 1) return HL_EAUTH;
    for (int i = 0; i < nparts; i++)
        if (EVP_MAC_update(ctx, parts[i].p, parts[i].n) != 1) return HL_EAUTH;
    if (EVP_MAC_final(ctx, out, &outl, HL_SIG_SHA256_LEN) != 1 || outl != HL_SIG_SHA256_LEN)
        return HL_EAUTH;
    return 0;
}

int hl_sig_sha256(const void *p, size_t n, unsigned char out[HL_SIG_SHA256_LEN])
{
    unsigned int l = 0;
    return EVP_Digest(p, n, out, &l, sha256_md(), NULL) == 1 && l == HL_SIG_SHA256_LEN ? 0
                                                                                       : HL_EAUTH;
}

int hl_sig_sha256_parts(const hl_sig_part_t *parts, int nparts,
                        unsigned char out[HL_SIG_SHA256_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int l = 0;
    int rc = HL_EAUTH;
    if (md == NULL || EVP_DigestInit_ex(md, sha256_md(), NULL) != 1) goto out;
    for (int i = 0; i < nparts; i++)
        if (EVP_DigestUpdate(md, parts[i].p, parts[i].n) != 1) goto out;
    if (EVP_DigestFinal_ex(md, out, &l) == 1 && l == HL_SIG_SHA256_LEN) rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

unsigned char *hl_sig_content_flat(const hl_sig_part_t *parts, int nparts, size_t *len)
{
    size_t n = 0, o = 0;
    for (int i = 0; i < nparts; i++) n += parts[i].n;
    unsigned char *buf = hl_xmalloc(n ? n : 1);
    for (int i = 0; i < nparts; i++) {
        if (parts[i].n) memcpy(buf + o, parts[i].p, parts[i].n);
        o += parts[i].n;
    }
    *len = n;
    return buf;
}

int hl_sig_pkey_sign(EVP_PKEY *pk, const hl_sig_part_t *parts, int nparts, unsigned char *sig,
                     size_t *siglen)
{
    int ed = EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519;
    size_t len = 0;
    unsigned char *msg = hl_sig_content_flat(parts, nparts, &len);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, ed ? NULL : sha256_md(), NULL, pk) == 1 &&
             EVP_DigestSign(ctx, sig, siglen, msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    free(msg);
    return ok ? 0 : HL_EIO;
}

int hl_sig_ed25519_verify(EVP_PKEY *pk, const unsigned char *sig, const unsigned char *msg,
                          size_t n)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
             EVP_DigestVerify(ctx, sig, HL_SIG_ED25519_LEN, msg, n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

int hl_sig_ecdsa_verify(EVP_PKEY *pk, const unsigned char *sig, size_t slen,
                        const hl_sig_part_t *parts, int nparts)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, sha256_md(), NULL, pk) == 1;
    for (int i = 0; ok && i < nparts; i++)
        ok = EVP_DigestVerifyUpdate(ctx, parts[i].p, parts[i].n) == 1;
    ok = ok && EVP_DigestVerifyFinal(ctx, sig, slen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}
