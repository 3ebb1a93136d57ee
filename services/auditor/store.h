/* The auditor's lineage store: the batch writer that appends lineage rows to their hash chains
 * with rollups and offsets in one transaction, and the chain heads it resumes from. */
#ifndef AUD_STORE_H
#define AUD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "hl/config.h"
#include "hl/pg.h"
#include "hl/lineage_record.h"
#include "rollup.h"

/* ---- chain heads (writer thread) ---- */
typedef struct {
    bool loaded;
    int64_t seq;
    unsigned char hash[AUD_CHAIN_HASH_LEN];
    int64_t next_offset; /* first lineage offset not yet stored; -1 when none stored */
} aud_head_t;

/* Loads the head (last seq and hash) of `chain` and the next offset to read: the stored next
 * offset of `topic` partition `chain` for `group` (consumer_offsets), but never beyond the head
 * row's hashed lineage_offset + 1, and -1 (from the beginning) when the chain has no row.
 * Returns 0 or HL_EPG with errbuf filled. */
int aud_store_load_head(PGconn *c, const char *group, const char *topic, int32_t chain,
                        aud_head_t *out, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* One lineage record taken from Kafka. `text` is owned by the batch. valid=false records
 * are not stored but still advance the stored offset. */
typedef struct {
    int32_t partition;
    int64_t offset;
    char *text;
    size_t len;
    bool valid;
    hl_lineage_rec_t rec;
} aud_item_t;

typedef struct {
    size_t rows;    /* lineage rows inserted */
    size_t samples; /* latency samples added to rollups */
    size_t repeats; /* outcome records skipped: their Kafka record already had one */
} aud_write_stats_t;

/* Writes items (ordered by partition, then offset) in one transaction: chained lineage rows,
 * rollup counts and the next offsets of every partition present. An outcome record (persisted
 * or dead_lettered) repeating the outcome of a Kafka record already stored, or met earlier in
 * the batch, is skipped (stats->repeats), its offset still advancing. heads[] (indexed by chain)
 * are updated only when the transaction commits; on failure they are untouched and the
 * caller reloads them before retrying. Latency samples go to `live` after the commit.
 * Returns 0, or HL_EPG with errbuf filled (transient or not: the caller retries). */
int aud_store_write_batch(PGconn *c, aud_head_t *heads, const aud_item_t *items, size_t n,
                          const char *group, const char *topic, aud_live_t *live,
                          aud_write_stats_t *stats, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* Batch rows a fold's round moves at most. */
#define AUD_FOLD_ROWS 2000

/* Folds latency_rollup_batches rows into latency_rollups: rounds of at most AUD_FOLD_ROWS rows,
 * each one statement in a transaction of its own (call it outside a batch), while rounds come
 * back full and budget_us has not passed since the call began; rows another fold holds are
 * left to it. *moved: batch rows folded, *keys: rollup rows added to or made (both counting
 * the rounds committed before a failure), *more: stopped by the budget after a full round
 * (rows may be left).
 * Returns 0, or HL_EPG with errbuf filled; a failed round moves nothing. */
int aud_store_fold_rollups(PGconn *c, int64_t budget_us, long *moved, long *keys, bool *more,
                           char *errbuf, size_t errcap) HL_MUST_CHECK;

#endif
