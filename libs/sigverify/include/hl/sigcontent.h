/* The content each signature scheme signs, and the primitives that sign and check it: one
 * definition for the ingress's verifier (hl/sigverify.h) and for hookline's signer, so that
 * what is signed for a replay is byte for byte what the ingress checks. */
#ifndef HL_SIGCONTENT_H
#define HL_SIGCONTENT_H

#include <openssl/evp.h>
#include <stddef.h>

#include "hl/error.h"

#define HL_SIG_SHA256_LEN 32
#define HL_SIG_ED25519_LEN 64 /* an Ed25519 signature */

/* One contiguous piece of a signed content (borrowed). */
typedef struct {
    const void *p;
    size_t n;
} hl_sig_part_t;

#define HL_SIG_MAX_PARTS 5

/* Standard Webhooks (v1 and v1a): "id.timestamp.body". Writes the parts (borrowing every
 * argument) and returns how many. */
int hl_sig_content_standard(const char *id, size_t idlen, const char *ts, size_t tslen,
                            const void *body, size_t blen, hl_sig_part_t parts[HL_SIG_MAX_PARTS]);

/* Stripe: "timestamp.body". */
int hl_sig_content_stripe(const char *ts, size_t tslen, const void *body, size_t blen,
                          hl_sig_part_t parts[HL_SIG_MAX_PARTS]);

/* SendGrid: the timestamp immediately followed by the body. */
int hl_sig_content_sendgrid(const char *ts, size_t tslen, const void *body, size_t blen,
                            hl_sig_part_t parts[HL_SIG_MAX_PARTS]);

/* The parts as one buffer of *len bytes, owned by the caller (free): Ed25519 takes its
 * message in one piece. Aborts on out-of-memory. */
unsigned char *hl_sig_content_flat(const hl_sig_part_t *parts, int nparts, size_t *len);

/* HMAC-SHA256 under key (klen bytes, borrowed) of the concatenated parts. Any thread. Returns
 * 0 or HL_EAUTH (an OpenSSL failure). */
int hl_sig_hmac_sha256(const unsigned char *key, size_t klen, const hl_sig_part_t *parts,
                       int nparts, unsigned char out[HL_SIG_SHA256_LEN]) HL_MUST_CHECK;

/* SHA-256 of n bytes at p. Returns 0 or HL_EAUTH. */
int hl_sig_sha256(const void *p, size_t n, unsigned char out[HL_SIG_SHA256_LEN]) HL_MUST_CHECK;
/* SHA-256 of the concatenated parts (nparts of them, any number; borrowed). Any thread. Returns
 * 0 or HL_EAUTH. */
int hl_sig_sha256_parts(const hl_sig_part_t *parts, int nparts,
                        unsigned char out[HL_SIG_SHA256_LEN]) HL_MUST_CHECK;

/* Signs the concatenated parts with private key pk (borrowed): Ed25519 signs the content
 * itself (64 bytes), an EC key signs its SHA-256 (DER ECDSA-Sig-Value). sig holds *siglen
 * bytes on entry and the signature's length on return. Any thread. Returns 0 or HL_EIO. */
int hl_sig_pkey_sign(EVP_PKEY *pk, const hl_sig_part_t *parts, int nparts, unsigned char *sig,
                     size_t *siglen) HL_MUST_CHECK;

/* 1 when the Ed25519 signature sig (HL_SIG_ED25519_LEN bytes) of msg (n bytes) verifies under
 * public key pk, else 0. */
int hl_sig_ed25519_verify(EVP_PKEY *pk, const unsigned char *sig, const unsigned char *msg,
                          size_t n);

/* 1 when the DER ECDSA signature sig (slen bytes) of the concatenated parts' SHA-256 verifies
 * under public key pk, else 0. */
int hl_sig_ecdsa_verify(EVP_PKEY *pk, const unsigned char *sig, size_t slen,
                        const hl_sig_part_t *parts, int nparts);

#endif
