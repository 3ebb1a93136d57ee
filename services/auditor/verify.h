/* Chain verification (streaming, with the definition of chain.c) and checkpoint storage. */
#ifndef AUD_VERIFY_H
#define AUD_VERIFY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "chain.h"
#include "checkpoint.h"
#include "outside.h"

/* What one walk checks, beyond the chain itself. */
typedef struct {
    int64_t upto;     /* last seq to walk, 0 = the end */
    int64_t from_seq; /* start after this seq, whose hash is from_hash (0: seq 1) */
    unsigned char from_hash[AUD_CHAIN_HASH_LEN];
    const aud_checkpoint_t *seals; /* signature-checked checkpoints of this chain from outside
                                    * the database, ascending seq; the walk must meet each one's
                                    * hash at its seq, and reach the last one */
    size_t nseals;
} aud_walk_t;

typedef struct {
    int32_t chain;
    int64_t rows; /* rows checked */
    bool ok;
    int64_t head_seq; /* last good seq */
    unsigned char head_hash[AUD_CHAIN_HASH_LEN];
    /* first bad row, when !ok */
    int64_t bad_id, bad_seq, expected_seq;
    const char *reason;  /* static: "hash_mismatch", "prev_hash_mismatch", "seq_gap",
                          * "duplicate_seq" (a second row with the previous row's seq),
                          * "column_mismatch" (see column), "outside_chain" (a row with seq
                          * < 1 or beyond the head), "chain_out_of_range", "checkpoint_mismatch"
                          * (the row at a sealed seq has another hash), "checkpoint_beyond_head"
                          * (sealed rows are gone), "hash_unreadable", "unreadable_row" (a
                          * column the walk needs is NULL or unreadable),
                          * "rows_deleted_below_checkpoint" (aud_history_report: see README) */
    const char *column;  /* column_mismatch: the first column that differs from its record */
    int64_t matched_seq; /* last seq whose hash an outside checkpoint confirmed, 0: none */
    unsigned char matched_hash[AUD_CHAIN_HASH_LEN]; /* that checkpoint's hash */
    int64_t sealed_seq;      /* the checkpoint's seq that failed, when one did */
    int64_t newest_seal;     /* aud_verify_all: seq of the chain's newest outside checkpoint */
    const char *topic_check; /* static: after a checkpoint_mismatch, how the row named was
                              * found by the lineage topic (aud_vouch_t reason), NULL: not */
    const aud_walk_t *walk;  /* borrowed during the walk */
    size_t next_seal;
} aud_verify_t;

/* Walks chain `chain` in (seq, id) order (pages of 5,000 rows) as w says (NULL: the whole
 * chain, no seals) and stops at the first bad row: broken links, a column that differs from
 * what its record says, a sealed hash not met, a seq met twice. A whole walk (from the start to the
 * end) then looks for rows the walk could not read (seq < 1, beyond the head, chain out of range).
 * Returns 0 (the result says ok or not) or HL_EPG. */
int aud_verify_walk(PGconn *c, int32_t chain, const aud_walk_t *w, aud_verify_t *out, char *errbuf,
                    size_t errcap) HL_MUST_CHECK;
/* aud_verify_walk of the whole chain up to `upto_seq` (0: the end), without seals. */
int aud_verify_chain(PGconn *c, int32_t chain, int64_t upto_seq, aud_verify_t *out, char *errbuf,
                     size_t errcap) HL_MUST_CHECK;

/* Walks every chain (only < 0) or chain `only` against the outside checkpoints in seals
 * (NULL: none): the chains in the table, negative ones included, and every chain sealed
 * outside. Fills out[] (at most cap, ascending chain) and returns how many, or HL_EPG. */
int aud_verify_all(PGconn *c, const aud_seals_t *seals, int32_t only, aud_verify_t *out, int cap,
                   char *errbuf, size_t errcap);

/* The first row of `chain` with seq >= from_seq: returns 1 with *id and *seq, 0 when there is
 * none, or HL_EPG. */
int aud_verify_first_from(PGconn *c, int32_t chain, int64_t from_seq, int64_t *id, int64_t *seq,
                          char *errbuf, size_t errcap);

/* Lists the chains present (loose index scan). Returns the count (<= cap) or HL_EPG. */
int aud_verify_chains(PGconn *c, int32_t *out, int cap, char *errbuf, size_t errcap);

/* The first row whose chain is NULL (NOT NULL dropped): no walk reads it. Returns 1 with *id,
 * 0 when there is none, or HL_EPG. */
int aud_verify_no_chain(PGconn *c, int64_t *id, char *errbuf, size_t errcap);

/* The row a checkpoint sealed at (chain, seq), held to `hash` (borrowed) by recomputing its
 * hash from its prev_hash and hashed fields: returns 1 when it is the only row at that seq and
 * hashes (and stores) `hash`, with *id and *offset (its lineage_offset, bound by the hash); 2
 * when a row is there but is not that one (*id: the first); 0 when none is; or HL_EPG. */
int aud_verify_sealed_row(PGconn *c, int32_t chain, int64_t seq,
                          const unsigned char hash[AUD_CHAIN_HASH_LEN], int64_t *id,
                          int64_t *offset, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* Reads the stored hash at (chain, seq). Returns 0, HL_ENOTFOUND or HL_EPG. */
int aud_verify_hash_at(PGconn *c, int32_t chain, int64_t seq, unsigned char out[AUD_CHAIN_HASH_LEN],
                       char *errbuf, size_t errcap) HL_MUST_CHECK;

/* A chain's entry in aud_signing_t.vouched that is no head: */
#define AUD_VOUCH_NOT_MINE (-1) /* another process writes the chain, or none does */
#define AUD_VOUCH_FOREIGN (-2)  /* the chain holds rows this process cannot vouch for */

/* What signing needs: the key, the producer of the checkpoint topic, and per chain the head
 * this process vouches for: one it wrote itself, or found at start where its newest outside
 * checkpoint and the lineage topic's records say it is (seq 0: an empty chain; or
 * AUD_VOUCH_*). */
typedef struct {
    const aud_signer_t *signer;
    aud_ckpub_t *pub;
    const aud_checkpoint_t *vouched; /* AUD_MAX_CHAINS entries */
    int partitions;                  /* of the lineage topic; 0: not known yet */
} aud_signing_t;

/* For every chain in the table: walks it from its newest checkpoint in `seals` (read from the
 * checkpoint topic; from seq 1 when it has none) to the head this process vouches for, and when
 * the walk finds nothing wrong, ends exactly on that head and the head moved, signs it,
 * publishes the checkpoint (waiting for Kafka) and stores it in lineage_checkpoints, adding it
 * to seals. Only vouched heads are signed: a chain whose walk fails, that holds rows this
 * process did not write, or that no partition of the lineage topic feeds (a chain invented in
 * the table) is not signed: it is logged as an ALARM and counted in *refused. A chain another
 * process writes is left to it. Returns the number signed or a negative HL_E* code. */
int aud_checkpoint_run(PGconn *c, const aud_signing_t *sg, aud_seals_t *seals, int *refused,
                       char *errbuf, size_t errcap);

#endif
