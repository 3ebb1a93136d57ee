/* Ed25519 checkpoints of chain heads. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hl/codec.h"
#include "hl/util.h"

struct aud_signer {
    EVP_PKEY *key;
    char key_id[AUD_KEY_ID_LEN + 1];
    char pub_hex[65];
};

static void ssl_err(char *errbuf, size_t cap, const char *what, const char *path)
{
    char e[256];
    ERR_error_string_n(ERR_get_error(), e, sizeof e);
    snprintf(errbuf, cap, "%s %s: %s", what, path, e);
}

static int write_new_key(const char *path, char *errbuf, size_t cap)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    int fd, rc = HL_EIO;
    FILE *f = NULL;
    if (!k) {
        ssl_err(errbuf, cap, "cannot generate key for", path);
        return HL_EIO;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        snprintf(errbuf, cap, "cannot create key file %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        goto out;
    }
    if (PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1)
        ssl_err(errbuf, cap, "cannot write key file", path);
    else
        rc = 0;
    if (fclose(f) != 0) rc = HL_EIO;
out:
    EVP_PKEY_free(k);
    return rc;
}

static void key_id_of(const unsigned char pub[32], char out[AUD_KEY_ID_LEN + 1])
{
    unsigned char d[32];
    SHA256(pub, 32, d);
    hl_hex(out, d, AUD_KEY_ID_LEN / 2);
}

aud_signer_t *aud_signer_load(const char *path, bool generate, char *errbuf, size_t cap)
{
    aud_signer_t *s = NULL;
    unsigned char pub[32];
    size_t publen = sizeof pub;
    FILE *f;

    if (access(path, F_OK) != 0 && errno == ENOENT && generate &&
        write_new_key(path, errbuf, cap) != 0)
        return NULL;
    f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, cap, "cannot open key file %s: %s", path, strerror(errno));
        return NULL;
    }
    s = hl_xcalloc(1, sizeof *s);
    s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!s->key || EVP_PKEY_get_base_id(s->key) != EVP_PKEY_ED25519) {
        snprintf(errbuf, cap, "key file %s: not a PEM Ed25519 private key", path);
        aud_signer_free(s);
        return NULL;
    }
    if (EVP_PKEY_get_raw_public_key(s->key, pub, &publen) != 1 || publen != 32) {
        ssl_err(errbuf, cap, "cannot read public key of", path);
        aud_signer_free(s);
        return NULL;
    }
    hl_hex(s->pub_hex, pub, 32);
    key_id_of(pub, s->key_id);
    return s;
}

void aud_signer_free(aud_signer_t *s)
{
    if (!s) return;
    EVP_PKEY_free(s->key);
    free(s);
}

const char *aud_signer_key_id(const aud_signer_t *s)
{
    return s->key_id;
}
const char *aud_signer_public_hex(const aud_signer_t *s)
{
    return s->pub_hex;
}

static size_t message(const aud_checkpoint_t *cp, char *buf, size_t cap)
{
    char hex[65];
    aud_chain_hex(cp->hash, hex);
    int n = snprintf(buf, cap, "hookline-checkpoint-v1\n%" PRId32 "\n%" PRId64 "\n%s\n%" PRId64,
                     cp->chain, cp->seq, hex, cp->ts_us);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int aud_signer_sign(const aud_signer_t *s, const void *msg, size_t n,
                    unsigned char sig[AUD_SIG_LEN])
{
    size_t siglen = AUD_SIG_LEN;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = HL_EIO;
    if (md && EVP_DigestSignInit(md, NULL, NULL, NULL, s->key) == 1 &&
        EVP_DigestSign(md, sig, &siglen, msg, n) == 1 && siglen == AUD_SIG_LEN)
        rc = 0;
    EVP_MD_CTX_free(md);
    return rc;
}

int aud_checkpoint_sign(const aud_signer_t *s, aud_checkpoint_t *cp)
{
    char msg[256];
    size_t n = message(cp, msg, sizeof msg);
    if (n == 0) return HL_EIO;
    memcpy(cp->key_id, s->key_id, sizeof cp->key_id);
    return aud_signer_sign(s, msg, n, cp->sig);
}

int aud_checkpoint_verify(const aud_signer_t *s, const aud_checkpoint_t *cp)
{
    char msg[256];
    size_t n = message(cp, msg, sizeof msg);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = HL_EAUTH;
    if (!md || n == 0) goto out;
    if (strcmp(cp->key_id, s->key_id) != 0) goto out;
    if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, s->key) == 1 &&
        EVP_DigestVerify(md, cp->sig, AUD_SIG_LEN, (const unsigned char *)msg, n) == 1)
        rc = 0;
out:
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return rc;
}

void aud_keyring_init(aud_keyring_t *ring, const aud_signer_t *s)
{
    memset(ring, 0, sizeof *ring);
    if (aud_keyring_add_hex(ring, s->pub_hex) != 0) ring->n = 0; /* cannot happen: 64 hex */
}

int aud_keyring_add_hex(aud_keyring_t *ring, const char *hex)
{
    unsigned char pub[32];
    char kid[AUD_KEY_ID_LEN + 1];
    if (!hex || strlen(hex) != 64 || hl_hex_decode(hex, 64, pub, 32) != 32) return HL_EPARSE;
    key_id_of(pub, kid);
    for (size_t i = 0; i < ring->n; i++)
        if (strcmp(ring->key_id[i], kid) == 0) return 0;
    if (ring->n >= AUD_KEYRING_MAX) return HL_ETOOBIG;
    memcpy(ring->pub[ring->n], pub, 32);
    memcpy(ring->key_id[ring->n], kid, sizeof kid);
    ring->n++;
    return 0;
}

int aud_keyring_verify(const aud_keyring_t *ring, const aud_checkpoint_t *cp)
{
    char msg[256];
    size_t n = message(cp, msg, sizeof msg);
    int rc = HL_EAUTH;
    for (size_t i = 0; i < ring->n && n > 0; i++) {
        if (strcmp(ring->key_id[i], cp->key_id) != 0) continue;
        EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, ring->pub[i], 32);
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (k && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
            EVP_DigestVerify(md, cp->sig, AUD_SIG_LEN, (const unsigned char *)msg, n) == 1)
            rc = 0;
        EVP_MD_CTX_free(md);
        EVP_PKEY_free(k);
        break;
    }
    ERR_clear_error();
    return rc;
}

int aud_checkpoint_json(const aud_checkpoint_t *cp, char *buf, size_t cap)
{
    char hex[65], sig[2 * AUD_SIG_LEN + 1];
    aud_chain_hex(cp->hash, hex);
    hl_hex(sig, cp->sig, AUD_SIG_LEN);
    int n = snprintf(buf, cap,
                     "{\"chain\":%" PRId32 ",\"seq\":%" PRId64 ",\"hash\":\"%s\",\"ts_us\":%" PRId64
                     ",\"key_id\":\"%s\",\"signature\":\"%s\"}",
                     cp->chain, cp->seq, hex, cp->ts_us, cp->key_id, sig);
    return n > 0 && (size_t)n < cap ? n : HL_ETOOBIG;
}

static int get_int(json_t *o, const char *k, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v)) return HL_EPARSE;
    *out = (int64_t)json_integer_value(v);
    return *out >= min && *out <= max ? 0 : HL_EPARSE;
}

static int unhex_n(const char *hex, unsigned char *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n) return HL_EPARSE;
    return hl_hex_decode(hex, 2 * n, out, n) == (int)n ? 0 : HL_EPARSE;
}

int aud_checkpoint_parse(const char *json, size_t len, aud_checkpoint_t *cp)
{
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    int64_t chain = 0;
    int rc = HL_EPARSE;
    const char *kid;
    memset(cp, 0, sizeof *cp);
    if (!json_is_object(o)) goto out;
    /* A checkpoint may arrive wrapped as {"checkpoint": {...}}. */
    if (json_object_get(o, "checkpoint")) {
        json_t *inner = json_incref(json_object_get(o, "checkpoint"));
        json_decref(o);
        o = inner;
        if (!json_is_object(o)) goto out;
    }
    kid = json_string_value(json_object_get(o, "key_id"));
    if (get_int(o, "chain", 0, INT32_MAX, &chain) || get_int(o, "seq", 1, INT64_MAX, &cp->seq) ||
        get_int(o, "ts_us", 0, INT64_MAX, &cp->ts_us) || !kid || strlen(kid) != AUD_KEY_ID_LEN ||
        aud_chain_unhex(json_string_value(json_object_get(o, "hash")), cp->hash) ||
        unhex_n(json_string_value(json_object_get(o, "signature")), cp->sig, AUD_SIG_LEN))
        goto out;
    cp->chain = (int32_t)chain;
    memcpy(cp->key_id, kid, AUD_KEY_ID_LEN + 1);
    rc = 0;
out:
    json_decref(o);
    return rc;
}
