/* The lineage hash chain: one definition shared by the batch writer and the verifier. */
#ifndef AUD_CHAIN_H
#define AUD_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

#define AUD_CHAIN_HASH_LEN 32
#define AUD_CHAIN_TAG "hl-lineage-v1"
#define AUD_MAX_CHAINS 256 /* chains (lineage partitions) supported */

/* The fields of one lineage row that the hash covers. All borrowed. */
typedef struct {
    int32_t chain;          /* lineage partition */
    int64_t seq;            /* 1, 2, 3 … per chain, gapless */
    int64_t lineage_offset; /* Kafka offset of the lineage record */
    const char *request_id; /* never contains '\n' (validated on input) */
    const char *stage;
    int64_t ts_us;
    const char *record; /* the record text as stored; may contain anything but NUL */
    size_t record_len;
} aud_chain_row_t;

/* hash = SHA-256(prev || "hl-lineage-v1\n<chain>\n<seq>\n<lineage_offset>\n<request_id>\n
 *                       <stage>\n<ts_us>\n<record>") with decimal integers. Every field but the
 * last is free of '\n', so the encoding is unambiguous; it is what the SQL view
 * lineage_hash_check computes. prev is 32 zero bytes for seq 1. Returns 0 or HL_EIO. */
int aud_chain_hash(const unsigned char prev[AUD_CHAIN_HASH_LEN], const aud_chain_row_t *row,
                   unsigned char out[AUD_CHAIN_HASH_LEN]) HL_MUST_CHECK;

/* Lowercase hex <-> 32 bytes. aud_chain_unhex returns 0 or HL_EPARSE. */
void aud_chain_hex(const unsigned char h[AUD_CHAIN_HASH_LEN], char out[2 * AUD_CHAIN_HASH_LEN + 1]);
int aud_chain_unhex(const char *hex, unsigned char out[AUD_CHAIN_HASH_LEN]) HL_MUST_CHECK;

#endif
