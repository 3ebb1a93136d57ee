/* What the consumer's files share: its state and the steps one file takes for another.
 * consumer.c holds the handle's life and the poll loop, consumer_batch.c the way of a batch
 * (send, finish, retry, recover, lineage and Kafka commits after), consumer_rebalance.c the
 * assignments, revocations and the resync after a new Postgres connection. Calls go one way
 * only: consumer.c -> rebalance -> batch. Everything runs on the thread inside
 * pst_consumer_run. */
#ifndef PST_CONSUMER_IMPL_H
#define PST_CONSUMER_IMPL_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"
#include "batch_writer.h"
#include "consumer.h"
#include "lineage.h"
#include "event_record.h"

/* Context of the DLQ callback for one batch. */
typedef struct {
    pst_consumer_t *c;
    int attempts; /* write attempts of the batch so far */
} dl_ctx_t;

/* Longest wait for outstanding lineage reports before lineage_offset is stored at a revocation
 * or shutdown; what is still in flight then is recovered by the next owner instead. */
#define LINEAGE_SETTLE_MS 5000

/* Test hook (tests/integration/test_persister_lineage_crash.py): when this environment variable
 * holds N > 0, the process kills itself with SIGKILL right after its N-th batch commit, before
 * any lineage of that batch is produced: the worst moment for lineage. Never set in service. */
#define CRASH_ENV "HOOKLINE_PERSISTER_CRASH_AFTER_COMMITS"

/* Test hook (tests/integration/test_persister_failover.py): when this environment variable
 * holds N > 0, librdkafka is made to raise a fatal error in the producer right after the N-th
 * batch commit, as a broker failover can. Never set in service. */
#define FATAL_ENV "HOOKLINE_PERSISTER_PRODUCER_FATAL_AFTER_COMMITS"

/* An assigned partition. */
typedef struct {
    int32_t partition;
    int64_t recover_end;    /* records below were committed before this assignment: their
                             * lineage is produced again, nothing is written; -1 when none */
    int64_t last_commit_us; /* updated_at at assignment: the commit time given to recovered
                             * records that left no row of their own */
    int64_t stored_lineage; /* lineage_offset as last stored by this member; -1 unknown */
} part_t;

/* One batch: records in arrival order, pointers in write order. */
typedef struct {
    pst_row_t *rows;       /* batch_max slots */
    pst_row_t **ptrs;      /* rows sorted for the write */
    size_t n;              /* records held */
    int64_t first_mono_us; /* when the first record arrived */
    int64_t sent_mono_us;  /* when the write began */
    dl_ctx_t dl;
} batch_t;

struct pst_consumer {
    const pst_config_t *cfg;     /* borrowed */
    pst_metrics_t *pm;           /* borrowed */
    volatile sig_atomic_t *stop; /* borrowed, set by the signal handler */
    rd_kafka_t *rk;              /* owned consumer */
    pst_lineage_t *lin;          /* owned producer for lineage and the DLQ */
    pst_batch_writer_t *bw;      /* owned */
    /* Three batches: b[cur] fills while b[flight] may be in flight in Postgres, and b[due], just
     * committed, waits for its lineage to be produced (rotate() sends the next batch first),
     * so records held never exceed 3 x batch_max. Batches commit strictly in the order they
     * were sent. */
    batch_t b[3];
    int cur, flight;
    int due;       /* committed, lineage not produced yet; -1 when none */
    bool inflight; /* b[flight] was sent and awaits its result */
    batch_t rb;    /* records being recovered (below a recover_end) */
    rd_kafka_topic_partition_list_t *assigned; /* offset field = next offset in Postgres */
    part_t *parts;                             /* one per assigned partition */
    size_t nparts;
    int64_t crash_after, commits; /* the CRASH_ENV test hook; commits counted */
    int64_t fatal_after;          /* the FATAL_ENV test hook */
    bool kafka_fatal;             /* the consumer's handle is fatal: stop, exit non-zero */
    int64_t next_lineage_us;      /* when lineage offsets are stored alone next */
    pst_backoff_t backoff;
    bool paused;      /* partitions paused for an outage */
    bool in_retry;    /* inside retry_batch (it polls, so callbacks run) */
    bool sync_commit; /* commit Kafka offsets synchronously (revoke, shutdown) */
    bool abandon;     /* a revocation asked retry_batch to give up */
    bool reseek;      /* resync() loaded the offsets but could not seek */
    atomic_bool ready;
    int64_t stop_deadline_mono_us; /* set when *stop is first seen */
};

/* consumer_batch.c */

/* True once *stop is set and shutdown_timeout_ms has passed since it was first seen. */
bool pst_cons_stopping_past_deadline(pst_consumer_t *c);
/* Releases the records of b (their messages too) and empties it. */
void pst_cons_release_batch(batch_t *b);
/* Pauses or resumes every assigned partition (an outage, a resync). */
void pst_cons_set_paused(pst_consumer_t *c, bool pause);
/* The assigned partition `partition`, or NULL. */
part_t *pst_cons_part_of(pst_consumer_t *c, int32_t partition);
/* The lineage offset each batch stores: where delivered lineage ends (pst_bw_lineage_fn). */
int64_t pst_cons_lineage_upto(void *arg, int32_t partition);
/* Stores lineage_offset for every assigned partition whose delivered lineage moved past what
 * was stored, after waiting up to wait_ms for reports in flight. Postgres must be idle. */
void pst_cons_store_lineage(pst_consumer_t *c, int wait_ms);
/* The same at most once a second, and only between statements. */
void pst_cons_maybe_store_lineage(pst_consumer_t *c);
/* Polls the consumer for delay_ms without taking records (partitions are paused), so the
 * member stays in the group and rebalances are served. */
void pst_cons_wait_polling(pst_consumer_t *c, uint32_t delay_ms);
/* The partitions are gone (a revocation during an outage): every record held is theirs. */
void pst_cons_abandon_all(pst_consumer_t *c);
/* Waits for the batch in flight and finishes it, retrying if needed; true when committed. */
bool pst_cons_complete_inflight(pst_consumer_t *c, bool once);
/* Recovers the records held in c->rb (their lineage from what Postgres holds). */
void pst_cons_recover_batch(pst_consumer_t *c, bool once);
/* The filling batch is due: sends it, finishing the one in flight first. */
void pst_cons_rotate(pst_consumer_t *c);
/* Writes everything held and waits for it: at a revocation (once) and at shutdown. */
void pst_cons_drain(pst_consumer_t *c, bool once);

/* consumer_rebalance.c */

/* librdkafka's list destructor does not accept NULL. */
void pst_cons_list_free(rd_kafka_topic_partition_list_t *l);

/* After a new Postgres connection or a failed seek: drops every record held and consumes
 * again from the offsets Postgres holds. */
void pst_cons_resync(pst_consumer_t *c);
/* librdkafka's rebalance callback (opaque: the consumer). */
void pst_cons_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque);

#endif
