/* Chain verification (streaming, with the definition of chain.c) and checkpoint storage. */
#ifndef HL_AUDITOR_VERIFY_H
#define HL_AUDITOR_VERIFY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "chain.h"
#include "checkpoint.h"

typedef struct {
    int32_t chain;
    int64_t rows;          /* rows checked */
    bool ok;
    int64_t head_seq;      /* last good seq */
    unsigned char head_hash[HL_CHAIN_HASH_LEN];
    /* first bad row, when !ok */
    int64_t bad_id, bad_seq, expected_seq;
    const char *reason;    /* "hash_mismatch", "prev_hash_mismatch", "seq_gap" (static) */
} hl_verify_t;

/* Walks chain `chain` in seq order (pages of 5,000 rows) up to `upto_seq` (0: the end), and
 * stops at the first bad row. Returns 0 (the result says ok or not) or HL_EPG. */
int hl_verify_chain(PGconn *c, int32_t chain, int64_t upto_seq, hl_verify_t *out, char *errbuf,
                    size_t errcap) HL_MUST_CHECK;

/* Lists the chains present (loose index scan). Returns the count (<= cap) or HL_EPG. */
int hl_verify_chains(PGconn *c, int32_t *out, int cap, char *errbuf, size_t errcap);

/* Reads the stored hash at (chain, seq). Returns 0, HL_ENOTFOUND or HL_EPG. */
int hl_verify_hash_at(PGconn *c, int32_t chain, int64_t seq, unsigned char out[HL_CHAIN_HASH_LEN],
                      char *errbuf, size_t errcap) HL_MUST_CHECK;

/* Signs the current head of every chain that moved since its last checkpoint and stores the
 * checkpoints. Returns the number signed or a negative HL_E* code. */
int hl_checkpoint_run(PGconn *c, const hl_signer_t *s, char *errbuf, size_t errcap);

#endif
