/* Signed checkpoints of chain heads (Ed25519 via OpenSSL). The key stays in the auditor's
 * configuration; the database only ever sees signatures. */
#ifndef AUD_CHECKPOINT_H
#define AUD_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "hl/error.h"

#define AUD_SIG_LEN 64
#define AUD_KEY_ID_LEN 16 /* hex characters */

typedef struct aud_signer aud_signer_t;

typedef struct {
    int32_t chain;
    int64_t seq;
    unsigned char hash[AUD_CHAIN_HASH_LEN];
    int64_t ts_us;
    char key_id[AUD_KEY_ID_LEN + 1];
    unsigned char sig[AUD_SIG_LEN];
} aud_checkpoint_t;

/* Loads a PEM Ed25519 private key from `path`. When the file does not exist and `generate`
 * is true, makes a new key and writes it there (mode 0600) first. Returns NULL with errbuf
 * filled on failure. Owned by the caller (aud_signer_free). */
aud_signer_t *aud_signer_load(const char *path, bool generate, char *errbuf, size_t errcap);
void aud_signer_free(aud_signer_t *s);
/* The key id: first 16 hex digits of SHA-256 of the raw public key. Borrowed. */
const char *aud_signer_key_id(const aud_signer_t *s);
/* Raw public key as 64 hex digits (for the checkpoints endpoint). Borrowed. */
const char *aud_signer_public_hex(const aud_signer_t *s);

/* The signed message: "hookline-checkpoint-v1\n<chain>\n<seq>\n<hash hex>\n<ts_us>". */
int aud_checkpoint_sign(const aud_signer_t *s, aud_checkpoint_t *cp) HL_MUST_CHECK;
/* Signs n bytes of msg with the key (Ed25519). Returns 0 or HL_EIO. */
int aud_signer_sign(const aud_signer_t *s, const void *msg, size_t n,
                    unsigned char sig[AUD_SIG_LEN]) HL_MUST_CHECK;
/* Returns 0 when cp's signature is valid for this key and its key id matches, HL_EAUTH
 * otherwise. */
int aud_checkpoint_verify(const aud_signer_t *s, const aud_checkpoint_t *cp) HL_MUST_CHECK;

/* The public keys checkpoints may be signed with: the configured key's and those of earlier
 * keys (checkpoint.public_keys), so checkpoints signed before a key rotation still verify. */
#define AUD_KEYRING_MAX 16
typedef struct {
    size_t n;
    char key_id[AUD_KEYRING_MAX][AUD_KEY_ID_LEN + 1];
    unsigned char pub[AUD_KEYRING_MAX][32];
} aud_keyring_t;

/* Fills the ring with the signer's own public key. */
void aud_keyring_init(aud_keyring_t *ring, const aud_signer_t *s);
/* Adds a raw Ed25519 public key given as 64 hex digits. Returns 0, HL_EPARSE, or HL_ETOOBIG
 * when the ring is full. A key already present is not added twice. */
int aud_keyring_add_hex(aud_keyring_t *ring, const char *hex) HL_MUST_CHECK;
/* Returns 0 when cp is signed by the ring's key of cp->key_id, HL_EAUTH otherwise. */
int aud_keyring_verify(const aud_keyring_t *ring, const aud_checkpoint_t *cp) HL_MUST_CHECK;

/* Writes the checkpoint as JSON
 * {"chain":…,"seq":…,"hash":"hex","ts_us":…,"key_id":"…","signature":"hex"} into buf.
 * Returns bytes written or HL_ETOOBIG. */
int aud_checkpoint_json(const aud_checkpoint_t *cp, char *buf, size_t cap);
/* Parses that JSON strictly (len bytes). Returns 0 or HL_EPARSE. */
int aud_checkpoint_parse(const char *json, size_t len, aud_checkpoint_t *cp) HL_MUST_CHECK;

#endif
