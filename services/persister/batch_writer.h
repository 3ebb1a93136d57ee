/* Writes one batch of records to Postgres in one transaction: the rows (each key once, telling
 * inserted from duplicate per record) and the consumer offsets they advance, so the table and
 * the offsets can never disagree. Runs on the thread that polls the consumer; the
 * writer owns its connection and is not thread-safe. */
#ifndef PST_BATCH_WRITER_H
#define PST_BATCH_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/config.h"
#include "hl/error.h"
#include "event_record.h"

typedef struct pst_batch_writer pst_batch_writer_t;

/* Called inside the transaction, before COMMIT, with every record of the batch that will not be
 * stored and has dlq_sent == 0. It must produce them to the DLQ, wait for the acknowledgement and
 * set dlq_sent; returning non-zero rolls the transaction back (retried later as transient). This
 * order means a record is never passed by the committed offsets before the DLQ holds it. */
typedef int (*pst_bw_dead_letter_fn)(void *arg, pst_row_t **rows, size_t n);

/* A writer for `group` consuming `topic`, connecting lazily with `pg` (all borrowed, must
 * outlive the writer). max_rows caps a batch. Never fails (the connection is made on first use). */
pst_batch_writer_t *pst_bw_new(const hl_pg_config_t *pg, const char *group, const char *topic,
                               size_t max_rows);
/* Closes the connection and frees. NULL-safe. */
void pst_bw_free(pst_batch_writer_t *bw);

/* Connects (one try) and prepares the statements when not connected. Returns 0 or HL_EAGAIN. */
int pst_bw_connect(pst_batch_writer_t *bw) HL_MUST_CHECK;

/* True when the connection is not the one the offsets were last loaded on (pst_bw_load_offsets):
 * a reconnect happened, for whatever reason, or nothing was loaded yet. The server reached
 * may have lost commits it confirmed before (a promoted asynchronous standby), so the caller's
 * positions may run ahead of consumer_offsets. While stale, every call that writes or trusts
 * the loaded offsets (pst_bw_send, pst_bw_write, pst_bw_store_lineage, pst_bw_recover) writes
 * nothing and returns HL_ESTATE: the caller drops what it holds, loads the offsets of every
 * partition it owns, and consumes again from there. */
bool pst_bw_stale(const pst_batch_writer_t *bw);

/* Where one partition of the topic stands in consumer_offsets. */
typedef struct {
    int32_t partition;  /* set by the caller */
    int64_t next;       /* next_offset: every record below it is committed; -1 when none stored */
    int64_t lineage;    /* lineage_offset: every record below it has its lineage delivered; -1
                         * when not stored (no row, or a row written before it existed) */
    int64_t updated_us; /* updated_at: the partition's last batch commit; -1 when none stored */
} pst_bw_offsets_t;

/* Reads the stored offsets of offs[0..n) (partition set by the caller; the rest is filled) and
 * ends the stale state: offs must hold every partition the caller owns. Returns 0, or
 * HL_EAGAIN when Postgres cannot answer now. */
int pst_bw_load_offsets(pst_batch_writer_t *bw, pst_bw_offsets_t *offs, size_t n) HL_MUST_CHECK;

/* Moves lineage_offset of offs[i].partition forward to offs[i].lineage (never past next_offset,
 * never backwards; next_offset and updated_at are left alone). Returns 0 or HL_EAGAIN. */
int pst_bw_store_lineage(pst_batch_writer_t *bw, const pst_bw_offsets_t *offs,
                         size_t n) HL_MUST_CHECK;

/* The lineage offset to store for `partition` with the next batch (-1: unknown). Called on the
 * writer's thread while a batch is built. */
typedef int64_t (*pst_bw_lineage_fn)(void *arg, int32_t partition);
/* Sets where batches take their lineage offsets from (fn and arg borrowed). Without one, or
 * when it answers -1, a batch stores its own lowest offset of the partition (right only for a
 * partition nothing was committed in before). */
void pst_bw_set_lineage_fn(pst_batch_writer_t *bw, pst_bw_lineage_fn fn, void *arg);

/* For records already committed before a restart (below next_offset): tells from what Postgres
 * holds what became of each, without writing anything. A record whose key is stored at its own
 * partition and offset was inserted (row_id, committed_us = the row's persisted_at); at
 * another position, a duplicate, unless it is a later offset of the same partition, which
 * means this record was refused; without a row, refused too (both: status
 * PST_REC_PG_REJECTED). Records with status != OK keep theirs. Returns 0, or HL_EAGAIN. */
int pst_bw_recover(pst_batch_writer_t *bw, pst_row_t **rows, size_t n) HL_MUST_CHECK;

/* Writes rows[0..n) (sorted with pst_rows_sort; records with status != OK included so their
 * offsets are passed) in one transaction, and for every partition present advances
 * consumer_offsets to (highest offset + 1), never backwards, and its lineage_offset to what
 * the lineage function answers. Rows Postgres refuses for their
 * content are found by bisection with savepoints (only after a failure), marked
 * PST_REC_PG_REJECTED, and dead-lettered with the others through `dead_letter` before COMMIT.
 * On success every OK row has row_id (or duplicate = 1), *committed_us is the commit time and
 * the result is 0. Meant for retries: it also rechecks rows found duplicate, since the attempt
 * before may have committed without the answer arriving. HL_EAGAIN means nothing was committed
 * (Postgres unavailable, a transient error, or the DLQ callback failed): retry the same batch
 * later. */
int pst_bw_write(pst_batch_writer_t *bw, pst_row_t **rows, size_t n,
                 pst_bw_dead_letter_fn dead_letter, void *dl_arg,
                 int64_t *committed_us) HL_MUST_CHECK;

/* The same in two steps, so the thread can gather the next batch while Postgres works on this
 * one: pst_bw_send dead-letters what was refused before Postgres, probes the keys (waiting for
 * that answer) and sends the rows; pst_bw_finish waits for the commit (and falls back to the
 * one-statement form, or isolates refused rows, if needed). rows must stay
 * valid until pst_bw_finish returns. One batch at most is in flight (HL_ESTATE otherwise). */
int pst_bw_send(pst_batch_writer_t *bw, pst_row_t **rows, size_t n,
                pst_bw_dead_letter_fn dead_letter, void *dl_arg) HL_MUST_CHECK;
int pst_bw_finish(pst_batch_writer_t *bw, int64_t *committed_us) HL_MUST_CHECK;
/* True while a sent batch awaits pst_bw_finish. */
bool pst_bw_pending(const pst_batch_writer_t *bw);
/* True when pst_bw_finish would not block (or nothing is in flight). */
bool pst_bw_ready(pst_batch_writer_t *bw);
/* Forgets a batch in flight without waiting (its outcome is whatever Postgres decided). */
void pst_bw_reset(pst_batch_writer_t *bw);

/* The last error text (for logs), never NULL. */
const char *pst_bw_last_error(const pst_batch_writer_t *bw);

/* Number of rows inserted and found duplicate by this writer so far (for tests and metrics). */
typedef struct {
    uint64_t statements;   /* batch statements run */
    uint64_t bisect_steps; /* savepoint statements run while isolating refused rows */
} pst_bw_stats_t;
void pst_bw_stats(const pst_batch_writer_t *bw, pst_bw_stats_t *out);

#endif
