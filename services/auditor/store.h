/* Postgres side of the auditor: a small connection pool for the API, and the batch writer
 * that appends lineage rows to their hash chains with rollups and offsets in one transaction. */
#ifndef HL_AUDITOR_STORE_H
#define HL_AUDITOR_STORE_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain.h"
#include "hl/config.h"
#include "record.h"
#include "rollup.h"

/* ---- connection pool (API threads) ---- */
typedef struct hl_pool hl_pool_t;
hl_pool_t *hl_pool_new(const hl_pg_config_t *pg, size_t size);
void hl_pool_free(hl_pool_t *p);
/* Borrows a healthy connection (connecting if needed), waiting at most 5 s. NULL on failure.
 * Give it back with hl_pool_put; `broken` closes it. */
PGconn *hl_pool_get(hl_pool_t *p);
void hl_pool_put(hl_pool_t *p, PGconn *c, bool broken);
/* At shutdown: lends nothing more and asks the server to cancel what the lent connections are
 * running, so no query outlives the process (a backend whose client is gone keeps running,
 * and holding its locks, until it next writes to that client). */
void hl_pool_close(hl_pool_t *p);

/* ---- chain heads (writer thread) ---- */
#define HL_MAX_CHAINS 256 /* lineage partitions supported */
typedef struct {
    bool loaded;
    int64_t seq;
    unsigned char hash[HL_CHAIN_HASH_LEN];
    int64_t next_offset; /* first lineage offset not yet stored; -1 when none stored */
} hl_head_t;

/* Loads the head (last seq and hash) of `chain` and the next offset to read: the stored next
 * offset of `topic` partition `chain` for `group` (consumer_offsets), but never beyond the head
 * row's hashed lineage_offset + 1, and -1 (from the beginning) when the chain has no row.
 * Returns 0 or HL_EPG with errbuf filled. */
int hl_store_load_head(PGconn *c, const char *group, const char *topic, int32_t chain,
                       hl_head_t *out, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* One lineage record taken from Kafka. `text` is owned by the batch. valid=false records
 * are not stored but still advance the stored offset. */
typedef struct {
    int32_t partition;
    int64_t offset;
    char *text;
    size_t len;
    bool valid;
    hl_record_t rec;
} hl_item_t;

typedef struct {
    size_t rows;      /* lineage rows inserted */
    size_t samples;   /* latency samples added to rollups */
    size_t repeats;   /* outcome records skipped: their Kafka record already had one */
} hl_write_stats_t;

/* Writes items (ordered by partition, then offset) in one transaction: chained lineage rows,
 * rollup counts and the next offsets of every partition present. An outcome record (persisted
 * or dead_lettered) repeating the outcome of a Kafka record already stored, or met earlier in
 * the batch, is skipped (stats->repeats), its offset still advancing. heads[] (indexed by chain)
 * are updated only when the transaction commits; on failure they are untouched and the
 * caller reloads them before retrying. Latency samples go to `live` after the commit.
 * Returns 0, or HL_EPG with errbuf filled (transient or not: the caller retries). */
int hl_store_write_batch(PGconn *c, hl_head_t *heads, const hl_item_t *items, size_t n,
                         const char *group, const char *topic, hl_live_t *live,
                         hl_write_stats_t *stats, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* Fills errbuf with the libpq error of res (or the connection) and returns HL_EPG. */
int hl_store_fail(PGconn *c, PGresult *res, const char *what, char *errbuf, size_t errcap);

#endif
