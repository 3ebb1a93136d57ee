/* The consume -> batch -> transaction -> lineage loop, with rebalances and outages.
 *
 * Correctness rests on Postgres: consumer_offsets advances in the batch's own transaction, and
 * on assignment every partition starts from the offset stored there. Kafka's committed offsets
 * follow only for lag monitoring and never run ahead of the table. Lineage is produced after
 * the commit; its delivery moves lineage_offset (with the next batch, or alone when idle, at a
 * revocation and at shutdown), and on assignment the records between lineage_offset and
 * next_offset are read again and their lineage produced from what Postgres holds, without
 * writing them again. Everything here runs on the thread inside hl_consumer_run (rebalance
 * callbacks and delivery reports too, since they fire inside poll).
 *
 * A new Postgres connection (after any reconnect) may reach a promoted asynchronous standby
 * that lacks the last commits the old primary confirmed, rows and offsets alike. The batch
 * writer refuses to write on such a connection until the offsets are loaded again
 * (hl_bw_stale); resync() then drops every record held and seeks each assigned partition back
 * to what Postgres holds, so a lost batch is consumed and written again. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "consumer.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backoff.h"
#include "batch_writer.h"
#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"
#include "lineage.h"
#include "record.h"

/* Context of the DLQ callback for one batch. */
typedef struct {
    hl_consumer_t *c;
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
    hl_row_t *rows;          /* batch_max slots */
    hl_row_t **ptrs;         /* rows sorted for the write */
    size_t n;                /* records held */
    int64_t first_mono_us;   /* when the first record arrived */
    int64_t sent_mono_us;    /* when the write began */
    dl_ctx_t dl;
} batch_t;

struct hl_consumer {
    const hl_persister_config_t *cfg;  /* borrowed */
    hl_persister_metrics_t *pm;        /* borrowed */
    volatile sig_atomic_t *stop;       /* borrowed, set by the signal handler */
    rd_kafka_t *rk;                    /* owned consumer */
    hl_lineage_t *lin;                 /* owned producer for lineage and the DLQ */
    hl_batch_writer_t *bw;             /* owned */
    /* Three batches: b[cur] fills while b[flight] may be in flight in Postgres, and b[due], just
     * committed, waits for its lineage to be produced (rotate() sends the next batch first),
     * so records held never exceed 3 x batch_max. Batches commit strictly in the order they
     * were sent. */
    batch_t b[3];
    int cur, flight;
    int due;                           /* committed, lineage not produced yet; -1 when none */
    bool inflight;                     /* b[flight] was sent and awaits its result */
    batch_t rb;                        /* records being recovered (below a recover_end) */
    rd_kafka_topic_partition_list_t *assigned; /* offset field = next offset in Postgres */
    part_t *parts;                     /* one per assigned partition */
    size_t nparts;
    int64_t crash_after, commits;      /* the CRASH_ENV test hook; commits counted */
    int64_t fatal_after;               /* the FATAL_ENV test hook */
    bool kafka_fatal;                  /* the consumer's handle is fatal: stop, exit non-zero */
    int64_t next_lineage_us;           /* when lineage offsets are stored alone next */
    hl_backoff_t backoff;
    bool paused;                       /* partitions paused for an outage */
    bool in_retry;                     /* inside retry_batch (it polls, so callbacks run) */
    bool sync_commit;                  /* commit Kafka offsets synchronously (revoke, shutdown) */
    bool abandon;                      /* a revocation asked retry_batch to give up */
    bool reseek;                       /* resync() loaded the offsets but could not seek */
    atomic_bool ready;
    int64_t stop_deadline_mono_us;     /* set when *stop is first seen */
};

void hl_persister_metrics_deinit(hl_persister_metrics_t *pm)
{
    pm->batch_size = NULL; /* owned by the registry */
}

void hl_persister_metrics_register(hl_metrics_t *m, hl_persister_metrics_t *pm)
{
    pm->rows = hl_metrics_counter(m, "hookline_persister_rows_total",
                                  "Rows inserted into webhook_events", NULL);
    pm->duplicates = hl_metrics_counter(m, "hookline_persister_duplicates_total",
                                        "Records skipped because their key was stored", NULL);
    pm->dead_letters = hl_metrics_counter(m, "hookline_persister_dead_letters_total",
                                          "Records produced to the dead-letter topic", NULL);
    pm->batches = hl_metrics_counter(m, "hookline_persister_batches_total",
                                     "Batch transactions committed", NULL);
    pm->retries = hl_metrics_counter(m, "hookline_persister_retries_total",
                                     "Batch attempts that failed and were retried", NULL);
    pm->abandoned = hl_metrics_counter(m, "hookline_persister_abandoned_batches_total",
                                       "Batches given up at a rebalance or shutdown", NULL);
    pm->batch_size = hl_metrics_count_histogram(m, "hookline_persister_batch_size",
                                                "Records per committed batch", NULL);
    pm->commit_latency = hl_metrics_histogram(m, "hookline_persister_commit_seconds",
                                              "Batch write start to Postgres commit", NULL);
    pm->e2e_latency = hl_metrics_histogram(m, "hookline_persister_end_to_end_seconds",
                                           "Ingress receive to Postgres commit", NULL);
    pm->lag = hl_metrics_gauge(m, "hookline_persister_consumer_lag",
                               "High watermark minus committed offset, summed", NULL);
    pm->paused = hl_metrics_gauge(m, "hookline_persister_paused",
                                  "1 while consumption is paused for a Postgres outage", NULL);
    pm->assigned = hl_metrics_gauge(m, "hookline_persister_assigned_partitions",
                                    "Partitions assigned to this member", NULL);
    pm->recovered = hl_metrics_counter(m, "hookline_persister_lineage_recovered_total",
                                       "Lineage records produced again for records committed"
                                       " before a restart or rebalance", NULL);
    pm->producer_restarts =
        hl_metrics_counter(m, "hookline_persister_kafka_producer_restarts_total",
                           "Producers replaced after a fatal librdkafka error", NULL);
}

bool hl_consumer_ready(void *arg)
{
    hl_consumer_t *c = arg;
    return atomic_load(&c->ready) && !*c->stop;
}

/* librdkafka's list destructor does not accept NULL. */
static void list_free(rd_kafka_topic_partition_list_t *l)
{
    if (l) rd_kafka_topic_partition_list_destroy(l);
}

static bool stopping_past_deadline(hl_consumer_t *c)
{
    if (!*c->stop) return false;
    if (c->stop_deadline_mono_us == 0)
        c->stop_deadline_mono_us = hl_mono_us() + (int64_t)c->cfg->shutdown_timeout_ms * 1000;
    return hl_mono_us() > c->stop_deadline_mono_us;
}

static void release_batch(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) hl_row_release(&b->rows[i]);
    b->n = 0;
}

static void set_paused(hl_consumer_t *c, bool pause)
{
    if (c->paused == pause || !c->assigned || c->assigned->cnt == 0) {
        c->paused = pause && c->assigned && c->assigned->cnt > 0 ? true : (pause && c->paused);
        return;
    }
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(c->rk, c->assigned)
                                    : rd_kafka_resume_partitions(c->rk, c->assigned);
    if (err) hl_warn("%s partitions: %s", pause ? "pause" : "resume", rd_kafka_err2str(err));
    c->paused = pause;
    hl_gauge_set(c->pm->paused, pause ? 1 : 0);
    hl_info("%s %d partitions", pause ? "paused" : "resumed", c->assigned->cnt);
}

static part_t *part_of(hl_consumer_t *c, int32_t partition)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == partition) return &c->parts[i];
    return NULL;
}

/* The lineage offset each batch stores: where delivered lineage ends (hl_bw_lineage_fn). */
static int64_t lineage_upto(void *arg, int32_t partition)
{
    hl_consumer_t *c = arg;
    return hl_ltrack_upto(hl_lineage_track(c->lin), partition);
}

static void crash_hook(hl_consumer_t *c)
{
    c->commits++;
    if (c->fatal_after > 0 && c->commits == c->fatal_after) {
        hl_warn("%s=%" PRId64 " reached: failing the producer", FATAL_ENV, c->fatal_after);
        hl_lineage_inject_fatal(c->lin, "test hook " FATAL_ENV);
    }
    if (c->crash_after > 0 && c->commits == c->crash_after) {
        hl_warn("%s=%" PRId64 " reached: killing the process after the commit", CRASH_ENV,
                c->crash_after);
        raise(SIGKILL);
    }
}

/* Stores lineage_offset for every assigned partition whose delivered lineage moved past what
 * was stored, after waiting up to wait_ms for reports in flight. Postgres must be idle. */
static void store_lineage(hl_consumer_t *c, int wait_ms)
{
    if (c->nparts == 0 || c->inflight) return;
    if (wait_ms > 0 && !hl_lineage_flush(c->lin, wait_ms))
        hl_warn("lineage still in flight after %d ms; the next assignment recovers it", wait_ms);
    hl_bw_offsets_t *offs = hl_xcalloc(c->nparts, sizeof(*offs));
    size_t n = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        int64_t upto = hl_ltrack_upto(hl_lineage_track(c->lin), c->parts[i].partition);
        if (upto > c->parts[i].stored_lineage)
            offs[n++] = (hl_bw_offsets_t){c->parts[i].partition, -1, upto, -1};
    }
    if (n > 0 && hl_bw_store_lineage(c->bw, offs, n) == 0) {
        for (size_t i = 0; i < n; i++) part_of(c, offs[i].partition)->stored_lineage = offs[i].lineage;
    } else if (n > 0) {
        hl_debug("storing lineage offsets: %s", hl_bw_last_error(c->bw));
    }
    free(offs);
}

/* Stores the lineage offsets that moved, at most once a second and only between statements: a
 * partition without batches of its own (drained, or idle) would keep an old lineage_offset, and
 * a restart would produce more lineage again than it needs to. */
static void maybe_store_lineage(hl_consumer_t *c)
{
    if (c->inflight || hl_mono_us() < c->next_lineage_us) return;
    c->next_lineage_us = hl_mono_us() + 1000000;
    store_lineage(c, 0);
}

/* Produces the lineage of a committed batch (tracked, so its delivery moves lineage_offset;
 * into tb when the caller opened its tracked batch already, else a new one), updates the
 * committed position of the assigned partitions and commits them to Kafka. */
static void after_commit(hl_consumer_t *c, batch_t *b, int64_t committed_us,
                         hl_ltrack_batch_t *tb)
{
    crash_hook(c);
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(8);
    uint64_t ins = 0, dup = 0, dead = 0;
    hl_ltrack_t *track = hl_lineage_track(c->lin);
    if (!tb) tb = hl_ltrack_open(track);
    for (size_t i = 0; i < b->n; i++) {
        const hl_row_t *r = &b->rows[i];
        hl_lineage_row(c->lin, tb, r, 0, committed_us, b->dl.attempts);
        if (r->status != HL_REC_OK) dead++;
        else if (r->duplicate) dup++;
        else {
            ins++;
            if (r->received_us > 0) hl_histogram_observe_us(c->pm->e2e_latency, committed_us - r->received_us);
        }
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offs, c->cfg->kafka.events_topic, r->partition);
        if (!p) p = rd_kafka_topic_partition_list_add(offs, c->cfg->kafka.events_topic, r->partition);
        if (r->offset + 1 > p->offset) p->offset = r->offset + 1;
    }
    for (int i = 0; i < offs->cnt; i++)
        hl_ltrack_cover(track, tb, offs->elems[i].partition, offs->elems[i].offset);
    hl_ltrack_close(track, tb);
    for (int i = 0; i < offs->cnt; i++) {
        rd_kafka_topic_partition_t *a = c->assigned ? rd_kafka_topic_partition_list_find(
                                            c->assigned, offs->elems[i].topic,
                                            offs->elems[i].partition)
                                                    : NULL;
        if (a && offs->elems[i].offset > a->offset) a->offset = offs->elems[i].offset;
    }
    /* Asynchronous: only for lag monitoring; Postgres holds the offsets that count. At a
     * revocation or shutdown it is synchronous, so no commit is still in flight when the
     * group is left (librdkafka 2.0 could then hang in rd_kafka_destroy). */
    if (offs->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, offs, c->sync_commit ? 0 : 1);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            hl_debug("kafka offset commit: %s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(offs);
    hl_counter_add(c->pm->rows, ins);
    hl_counter_add(c->pm->duplicates, dup);
    hl_counter_add(c->pm->dead_letters, dead);
    hl_counter_inc(c->pm->batches);
    hl_histogram_observe_us(c->pm->batch_size, (int64_t)b->n); /* a count histogram */
    hl_histogram_observe_us(c->pm->commit_latency, hl_mono_us() - b->sent_mono_us);
    hl_debug("batch committed: %zu records, %" PRIu64 " inserted, %" PRIu64 " duplicates, %" PRIu64
             " dead-lettered, %" PRId64 " us since sent", b->n, ins, dup, dead,
             hl_mono_us() - b->sent_mono_us);
}

static int dead_letter(void *arg, hl_row_t **rows, size_t n)
{
    dl_ctx_t *d = arg;
    for (size_t i = 0; i < n; i++) {
        hl_log_ctx_t ctx = {rows[i]->request_id[0] ? rows[i]->request_id : NULL,
                            d->c->cfg->kafka.events_topic, rows[i]->partition, rows[i]->offset};
        char kv[256];
        size_t len = 0;
        kv[0] = '\0';
        hl_log_kv_str(kv, sizeof(kv), &len, "error_code", hl_rec_status_code(rows[i]->status));
        HL_LOG(HL_LOG_WARN, &ctx, kv, "dead-lettering record: %s", rows[i]->detail);
    }
    return hl_lineage_dead_letter(d->c->lin, rows, n, d->attempts, (int)d->c->cfg->dlq_timeout_ms);
}

/* Polls the consumer for delay_ms without taking records (partitions are paused), so the
 * member stays in the group and rebalances are served. */
static void wait_polling(hl_consumer_t *c, uint32_t delay_ms)
{
    int64_t until = hl_mono_us() + (int64_t)delay_ms * 1000;
    while (!c->abandon && hl_mono_us() < until && !stopping_past_deadline(c)) {
        int64_t left = (until - hl_mono_us()) / 1000;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, left > 100 ? 100 : (int)(left > 0 ? left : 0));
        hl_lineage_poll(c->lin);
        if (!m) continue;
        if (!m->err) {
            /* A partition assigned during the outage was not paused: rewind it to this record
             * and pause it, so nothing is skipped and memory stays bounded. */
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
                m->offset;
            (void)rd_kafka_pause_partitions(c->rk, l);
            rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 2000);
            if (e) {
                hl_warn("rewind during outage: %s", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
            rd_kafka_topic_partition_list_destroy(l);
        }
        rd_kafka_message_destroy(m);
    }
}

/* The partitions are gone (a revocation during an outage): every record held is theirs. */
static void abandon_all(hl_consumer_t *c)
{
    for (int i = 0; i < 3; i++)
        if (i != c->due) release_batch(&c->b[i]); /* committed: its lineage is still due */
    release_batch(&c->rb);
    c->inflight = false;
}

/* After a failed attempt: retries batch b with backoff while the partitions are paused, until it
 * commits, a revocation abandons it, or shutdown runs out of time. `once` (inside a revocation)
 * gives up at once. Releases b (and, when abandoned, the other batch too: records not
 * committed are consumed again from Postgres' offsets by whoever owns the partitions next).
 * Returns true when committed. */
static bool retry_batch(hl_consumer_t *c, batch_t *b, bool once)
{
    bool ok = false;
    atomic_store(&c->ready, false);
    c->in_retry = true;
    for (;;) {
        hl_counter_inc(c->pm->retries);
        if (once || c->abandon || hl_bw_stale(c->bw) || stopping_past_deadline(c)) break;
        set_paused(c, true);
        uint32_t delay = hl_backoff_next(&c->backoff);
        hl_warn("batch of %zu not committed (%s); attempt %d, retrying in %u ms", b->n,
                hl_bw_last_error(c->bw), b->dl.attempts, delay);
        wait_polling(c, delay);
        if (c->abandon || stopping_past_deadline(c)) break;
        int64_t committed_us = 0;
        b->dl.attempts++;
        if (hl_bw_write(c->bw, b->ptrs, b->n, dead_letter, &b->dl, &committed_us) == 0) {
            after_commit(c, b, committed_us, NULL);
            ok = true;
            break;
        }
        if (hl_bw_stale(c->bw)) break; /* reconnected: resync() reads the batch again */
    }
    c->in_retry = false;
    if (ok) {
        hl_backoff_reset(&c->backoff);
        atomic_store(&c->ready, true);
        release_batch(b);
        set_paused(c, false);
        return true;
    }
    hl_counter_inc(c->pm->abandoned);
    hl_warn("batch of %zu records abandoned uncommitted; it will be consumed again", b->n);
    hl_lineage_settle(c->lin); /* no delivery report may touch the rows once released */
    release_batch(b);
    if (c->abandon) abandon_all(c);
    c->abandon = false;
    return false;
}

/* Waits for the batch in flight and finishes it (lineage, Kafka offsets), retrying if needed. */
static bool complete_inflight(hl_consumer_t *c, bool once)
{
    if (!c->inflight) return true;
    batch_t *b = &c->b[c->flight];
    c->inflight = false;
    int64_t committed_us = 0;
    if (hl_bw_finish(c->bw, &committed_us) == 0) {
        atomic_store(&c->ready, true);
        hl_backoff_reset(&c->backoff);
        after_commit(c, b, committed_us, NULL);
        release_batch(b);
        return true;
    }
    return retry_batch(c, b, once);
}

/* Produces the lineage of recovered records (marked by hl_bw_recover) as one tracked batch. */
static void recovered_lineage(hl_consumer_t *c, batch_t *rb)
{
    hl_ltrack_t *track = hl_lineage_track(c->lin);
    hl_ltrack_batch_t *tb = hl_ltrack_open(track);
    for (size_t i = 0; i < rb->n; i++) {
        const hl_row_t *r = &rb->rows[i];
        const part_t *pt = part_of(c, r->partition);
        int64_t at = r->committed_us > 0 ? r->committed_us
                     : pt && pt->last_commit_us > 0 ? pt->last_commit_us : hl_now_us();
        hl_lineage_row(c->lin, tb, r, at, at, 0);
        hl_ltrack_cover(track, tb, r->partition, r->offset + 1);
    }
    hl_ltrack_close(track, tb);
    hl_counter_add(c->pm->recovered, rb->n);
    hl_info("lineage produced again for %zu records committed before this assignment", rb->n);
}

/* Recovers the records held in c->rb: waits for the batch in flight (the connection answers one
 * statement at a time), asks Postgres what became of them, produces their lineage. Retries
 * with backoff while Postgres is away, except when `once` (then the records are dropped: the
 * next owner recovers them, since lineage_offset did not move). */
static void recover_batch(hl_consumer_t *c, bool once)
{
    batch_t *rb = &c->rb;
    if (rb->n == 0) return;
    (void)complete_inflight(c, once);
    if (rb->n == 0) return; /* abandoned by a revocation meanwhile */
    for (size_t i = 0; i < rb->n; i++) rb->ptrs[i] = &rb->rows[i];
    hl_backoff_t bo;
    hl_backoff_init(&bo, c->cfg->retry_base_ms, c->cfg->retry_cap_ms, 0);
    int rc;
    while ((rc = hl_bw_recover(c->bw, rb->ptrs, rb->n)) != 0) {
        if (once || c->abandon || hl_bw_stale(c->bw) || stopping_past_deadline(c)) break;
        atomic_store(&c->ready, false);
        set_paused(c, true);
        uint32_t delay = hl_backoff_next(&bo);
        hl_warn("recovering the lineage of %zu records failed (%s); retrying in %u ms", rb->n,
                hl_bw_last_error(c->bw), delay);
        c->in_retry = true;
        wait_polling(c, delay);
        c->in_retry = false;
    }
    if (c->abandon) {
        abandon_all(c);
        c->abandon = false;
        return;
    }
    if (c->paused) set_paused(c, false);
    if (rc != 0) {
        hl_warn("lineage of %zu records not recovered now (%s); the next assignment will", rb->n,
                hl_bw_last_error(c->bw));
    } else {
        atomic_store(&c->ready, true);
        recovered_lineage(c, rb);
    }
    release_batch(rb);
}

/* Sends the filling batch to Postgres without waiting (any batch in flight must have been
 * completed); the other buffer becomes the filling one. Recovered records go first: their
 * tracked lineage must come before that of the later records of their partitions. */
static void send_batch(hl_consumer_t *c, bool once)
{
    recover_batch(c, once);
    batch_t *b = &c->b[c->cur];
    if (b->n == 0) return;
    maybe_store_lineage(c);
    for (size_t i = 0; i < b->n; i++) b->ptrs[i] = &b->rows[i];
    hl_rows_sort(b->ptrs, b->n);
    b->dl = (dl_ctx_t){c, 1};
    b->sent_mono_us = hl_mono_us();
    if (hl_bw_send(c->bw, b->ptrs, b->n, dead_letter, &b->dl) == 0) {
        c->inflight = true;
        c->flight = c->cur;
        c->cur = -1;
        for (int i = 0; i < 3 && c->cur < 0; i++)
            if (i != c->flight && i != c->due && c->b[i].n == 0) c->cur = i;
        if (c->cur < 0) hl_die("persister: no free batch buffer"); /* cannot happen */
        return;
    }
    (void)retry_batch(c, b, once);
}

/* The batch in flight is done and the filling one is due: sends the filling one as soon as the
 * first has committed, and only then produces the first one's lineage, so Postgres does not sit
 * idle while it is produced. The first's tracked batch is opened before the send, so its
 * lineage still counts ahead of the next batch's even if that one is retried (and committed)
 * inside send_batch. */
static void rotate(hl_consumer_t *c)
{
    if (!c->inflight) {
        send_batch(c, false);
        return;
    }
    int done = c->flight;
    int64_t committed_us = 0;
    c->inflight = false;
    if (hl_bw_finish(c->bw, &committed_us) != 0) {
        (void)retry_batch(c, &c->b[done], false);
        send_batch(c, false);
        return;
    }
    atomic_store(&c->ready, true);
    hl_backoff_reset(&c->backoff);
    hl_ltrack_batch_t *tb = hl_ltrack_open(hl_lineage_track(c->lin));
    c->due = done;
    send_batch(c, false);
    c->due = -1;
    if (hl_bw_stale(c->bw)) {
        /* Reconnected while sending the next batch: the server reached may not hold this one
         * (a failover that lost its commit). Its lineage is left to resync(): recovered from
         * what Postgres holds, or produced when the batch is written again. */
        hl_ltrack_close(hl_lineage_track(c->lin), tb);
        release_batch(&c->b[done]);
        return;
    }
    after_commit(c, &c->b[done], committed_us, tb);
    release_batch(&c->b[done]);
}

/* Writes everything held and waits for it: used at a revocation (once) and at shutdown. */
static void drain(hl_consumer_t *c, bool once)
{
    (void)complete_inflight(c, once);
    send_batch(c, once);
    (void)complete_inflight(c, once);
}

/* Sets up one assigned partition from its stored offsets and returns where to start reading:
 * at next_offset, or at lineage_offset when the lineage of the records between the two has to
 * be produced again. */
static int64_t start_partition(hl_consumer_t *c, part_t *pt, const hl_bw_offsets_t *o)
{
    hl_ltrack_t *track = hl_lineage_track(c->lin);
    pt->partition = o->partition;
    pt->recover_end = -1;
    pt->last_commit_us = o->updated_us;
    pt->stored_lineage = o->lineage;
    if (o->next < 0) {
        /* Nothing committed yet: the mark is set by the first record taken. */
        hl_ltrack_set(track, o->partition, -1);
        hl_info("assigned partition %d from the beginning (no offset stored)", o->partition);
        return RD_KAFKA_OFFSET_BEGINNING;
    }
    if (o->lineage >= 0 && o->lineage < o->next) {
        pt->recover_end = o->next;
        hl_ltrack_set(track, o->partition, o->lineage);
        hl_info("assigned partition %d from offset %" PRId64 "; lineage of offsets %" PRId64
                "..%" PRId64 " to be produced again", o->partition, o->next, o->lineage,
                o->next - 1);
        return o->lineage;
    }
    /* Without a stored lineage_offset (a row older than the column) nothing is recovered. */
    hl_ltrack_set(track, o->partition, o->next);
    pt->stored_lineage = o->next;
    hl_info("assigned partition %d from offset %" PRId64, o->partition, o->next);
    return o->next;
}

static void on_assign(hl_consumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    /* Eager rebalancing revokes (and drains) before it assigns; this only guards the rule that
     * the connection answers one statement at a time. */
    if (c->inflight && !c->in_retry) (void)complete_inflight(c, true);
    size_t n = (size_t)parts->cnt;
    hl_bw_offsets_t *offs = hl_xcalloc(n + 1, sizeof(*offs));
    for (size_t i = 0; i < n; i++) offs[i].partition = parts->elems[i].partition;
    hl_backoff_t b;
    hl_backoff_init(&b, c->cfg->retry_base_ms, c->cfg->retry_cap_ms, 0);
    /* The starting offsets must come from Postgres: without them the member cannot consume. */
    while (hl_bw_load_offsets(c->bw, offs, n) != 0) {
        atomic_store(&c->ready, false);
        if (*c->stop) break;
        uint32_t d = hl_backoff_next(&b);
        hl_warn("loading offsets from Postgres failed (%s); retrying in %u ms",
                hl_bw_last_error(c->bw), d);
        struct timespec ts = {d / 1000, (long)(d % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (*c->stop) {
        /* Offsets unknown: consume nothing, leave. */
        free(offs);
        rd_kafka_assign(c->rk, NULL);
        return;
    }
    free(c->parts);
    c->parts = hl_xcalloc(n + 1, sizeof(*c->parts));
    c->nparts = n;
    list_free(c->assigned);
    c->assigned = rd_kafka_topic_partition_list_copy(parts);
    for (size_t i = 0; i < n; i++) {
        parts->elems[i].offset = start_partition(c, &c->parts[i], &offs[i]);
        /* The committed position (lag, Kafka commits) is next_offset, whatever is re-read. */
        c->assigned->elems[i].offset = offs[i].next >= 0 ? offs[i].next : 0;
    }
    free(offs);
    rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, parts);
    if (err) hl_error("assign: %s", rd_kafka_err2str(err));
    c->paused = false;
    hl_gauge_set(c->pm->paused, 0);
    hl_gauge_set(c->pm->assigned, c->assigned->cnt);
    atomic_store(&c->ready, true);
}

static void on_revoke(hl_consumer_t *c)
{
    if (c->in_retry) {
        /* Inside an outage's retry loop: abandon; the new owner starts from Postgres' offsets. */
        c->abandon = true;
    } else {
        /* Finish the batches in hand if Postgres takes them at once, else leave them. */
        bool was = c->sync_commit;
        c->sync_commit = true;
        drain(c, true);
        c->sync_commit = was;
        /* So that the next owner does not produce this lineage again. */
        store_lineage(c, LINEAGE_SETTLE_MS);
    }
    release_batch(&c->rb);
    rd_kafka_assign(c->rk, NULL);
    list_free(c->assigned);
    c->assigned = NULL;
    free(c->parts);
    c->parts = NULL;
    c->nparts = 0;
    c->paused = false;
    hl_gauge_set(c->pm->assigned, 0);
    hl_gauge_set(c->pm->paused, 0);
    hl_info("partitions revoked");
}

/* Longest wait for librdkafka to reposition the partitions in resync(). */
#define SEEK_TIMEOUT_MS 10000

/* Seeks every assigned partition to where start_partition() says, from offs (one per
 * c->parts entry). Returns false when a partition could not be positioned. Seeking discards
 * what librdkafka fetched for the partition and not yet handed out, fetch responses still on
 * the way included (they carry the version from before the seek and are dropped). */
static bool seek_all(hl_consumer_t *c, hl_bw_offsets_t *offs)
{
    hl_ltrack_t *track = hl_lineage_track(c->lin);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->nparts + 1);
    for (size_t i = 0; i < c->nparts; i++) {
        /* Lineage this member saw delivered for records Postgres still counts as committed
         * need not be produced again, though lineage_offset was not stored yet. */
        int64_t upto = hl_ltrack_upto(track, offs[i].partition);
        if (offs[i].lineage >= 0 && upto > offs[i].lineage)
            offs[i].lineage = upto < offs[i].next ? upto : offs[i].next;
        int64_t from = start_partition(c, &c->parts[i], &offs[i]);
        rd_kafka_topic_partition_list_add(l, c->cfg->kafka.events_topic, offs[i].partition)
            ->offset = from;
        rd_kafka_topic_partition_t *a = rd_kafka_topic_partition_list_find(
            c->assigned, c->cfg->kafka.events_topic, offs[i].partition);
        if (a) a->offset = offs[i].next >= 0 ? offs[i].next : 0;
    }
    bool ok = hl_kafka_seek(c->rk, l, SEEK_TIMEOUT_MS, "the events after a reconnect") == 0;
    rd_kafka_topic_partition_list_destroy(l);
    return ok;
}

/* After a new Postgres connection (hl_bw_stale) or a failed seek: drops every record held
 * (nothing is in flight: a stale writer sends nothing), loads the offsets of every assigned
 * partition from Postgres and seeks each there, so whatever the server reached lacks is
 * consumed and written again (the unique key makes records it holds harmless) before anything
 * later is written. Partitions stay paused until then; Postgres away means retrying with
 * backoff while polling, as an outage does. */
static void resync(hl_consumer_t *c)
{
    size_t held = c->b[0].n + c->b[1].n + c->b[2].n + c->rb.n;
    if (c->inflight) hl_bw_reset(c->bw); /* cannot happen: nothing is sent while stale */
    c->inflight = false;
    /* No delivery report may touch the rows once released; and what is delivered by now need
     * not be produced again (seek_all). */
    if (!hl_lineage_flush(c->lin, LINEAGE_SETTLE_MS))
        hl_warn("lineage still in flight after %d ms; it is produced again", LINEAGE_SETTLE_MS);
    hl_lineage_settle(c->lin);
    for (int i = 0; i < 3; i++) release_batch(&c->b[i]);
    release_batch(&c->rb);
    c->reseek = true;
    set_paused(c, true);
    if (c->nparts > 0)
        hl_warn("new Postgres connection: reading the offsets of %zu partitions again; %zu"
                " records held are dropped and consumed again", c->nparts, held);
    hl_backoff_t bo;
    hl_backoff_init(&bo, c->cfg->retry_base_ms, c->cfg->retry_cap_ms, 0);
    for (;;) {
        size_t n = c->nparts;
        hl_bw_offsets_t *offs = hl_xcalloc(n + 1, sizeof(*offs));
        for (size_t i = 0; i < n; i++) offs[i].partition = c->parts[i].partition;
        bool done = hl_bw_load_offsets(c->bw, offs, n) == 0 && seek_all(c, offs);
        free(offs);
        if (done) break;
        if (*c->stop) return; /* nothing held: whoever consumes next starts from Postgres */
        atomic_store(&c->ready, false);
        uint32_t delay = hl_backoff_next(&bo);
        hl_warn("repositioning after a reconnect failed (%s); retrying in %u ms",
                hl_bw_last_error(c->bw), delay);
        c->in_retry = true;
        wait_polling(c, delay);
        c->in_retry = false;
        if (c->abandon) {
            /* Revoked meanwhile (and perhaps assigned again, from Postgres' offsets). */
            c->abandon = false;
            abandon_all(c);
            if (!hl_bw_stale(c->bw)) break;
        }
    }
    c->reseek = false;
    set_paused(c, false);
    hl_backoff_reset(&c->backoff);
    atomic_store(&c->ready, true);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    hl_consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) on_assign(c, parts);
    else on_revoke(c);
}

/* Reads a test hook's count N > 0 from environment variable `name` into *n (left 0 when
 * unset or empty). Returns 0, or HL_ECONFIG with errbuf filled for anything but N > 0. */
static int test_hook(const char *name, const char *what, int64_t *n, char *errbuf,
                     size_t errcap)
{
    const char *v = getenv(name);
    if (!v || !v[0]) return 0;
    if (hl_parse_i64(v, 1, INT64_MAX, n) != 0) {
        snprintf(errbuf, errcap, "%s: '%s' is not a positive integer", name, v);
        return HL_ECONFIG;
    }
    hl_warn("%s=%" PRId64 ": test hook armed, %s", name, *n, what);
    return 0;
}

hl_consumer_t *hl_consumer_new(const hl_persister_config_t *cfg, hl_persister_metrics_t *pm,
                               volatile sig_atomic_t *stop, char *errbuf, size_t errcap)
{
    static const char *const defaults[] = {
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest",
        "partition.assignment.strategy", "range,roundrobin",
        /* Bounds what librdkafka prefetches, so memory stays bounded while paused. */
        "queued.max.messages.kbytes", "16384",
        /* A fetch answers once 64 KiB are there or after 100 ms: at moderate rates the broker
         * serves ~10 fetches a second instead of one per produce request, which on a small
         * host is CPU taken from the ingress path (bench/README.md, "CPU on a shared host"). */
        "fetch.min.bytes", "65536",
        "fetch.wait.max.ms", "100",
        "session.timeout.ms", "10000",
        "heartbeat.interval.ms", "1000",
        "isolation.level", "read_committed",
        NULL,
    };
    hl_consumer_t *c = hl_xcalloc(1, sizeof(*c));
    c->cfg = cfg;
    c->pm = pm;
    c->stop = stop;
    rd_kafka_conf_t *conf = hl_kafka_conf(&cfg->kafka, defaults, errbuf, errcap);
    if (!conf) goto fail;
    char why[256];
    if (rd_kafka_conf_set(conf, "group.id", cfg->group_id, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errcap, "kafka: group.id: %s", why);
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errcap);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_poll_set_consumer(c->rk);
    c->lin = hl_lineage_new(cfg, errbuf, errcap);
    if (!c->lin) goto fail;
    hl_lineage_count_restarts(c->lin, pm->producer_restarts);
    c->bw = hl_bw_new(&cfg->postgres, cfg->group_id, cfg->kafka.events_topic, cfg->batch_max);
    hl_bw_set_lineage_fn(c->bw, lineage_upto, c);
    c->due = -1;
    for (int i = 0; i < 3; i++) {
        c->b[i].rows = hl_xcalloc(cfg->batch_max, sizeof(*c->b[i].rows));
        c->b[i].ptrs = hl_xcalloc(cfg->batch_max, sizeof(*c->b[i].ptrs));
    }
    c->rb.rows = hl_xcalloc(cfg->batch_max, sizeof(*c->rb.rows));
    c->rb.ptrs = hl_xcalloc(cfg->batch_max, sizeof(*c->rb.ptrs));
    if (test_hook(CRASH_ENV, "the process will kill itself", &c->crash_after, errbuf, errcap) ||
        test_hook(FATAL_ENV, "the producer will be failed", &c->fatal_after, errbuf, errcap))
        goto fail;
    hl_backoff_init(&c->backoff, cfg->retry_base_ms, cfg->retry_cap_ms, 0);
    return c;
fail:
    hl_consumer_free(c);
    return NULL;
}

static void *destroy_main(void *rk)
{
    rd_kafka_destroy(rk);
    return NULL;
}

/* rd_kafka_destroy with a deadline: everything that matters (Postgres, the group) is settled
 * before it runs, so a librdkafka thread that never finishes must not keep the process from
 * exiting. Returns false when it did not finish in time (the handle is then left behind). */
static bool destroy_bounded(rd_kafka_t *rk, int timeout_ms)
{
    pthread_t t;
    if (pthread_create(&t, NULL, destroy_main, rk) != 0) {
        rd_kafka_destroy(rk);
        return true;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    if (pthread_timedjoin_np(t, NULL, &ts) == 0) return true;
    pthread_detach(t);
    return false;
}

void hl_consumer_free(hl_consumer_t *c)
{
    if (!c) return;
    if (c->bw) hl_bw_reset(c->bw);
    for (int i = 0; i < 3; i++)
        if (c->b[i].rows) release_batch(&c->b[i]);
    if (c->rb.rows) release_batch(&c->rb);
    list_free(c->assigned);
    c->assigned = NULL;
    if (c->rk && !destroy_bounded(c->rk, 10000))
        hl_warn("kafka consumer did not shut down within 10 s; exiting without it");
    hl_lineage_free(c->lin, 10000);
    hl_bw_free(c->bw);
    list_free(c->assigned);
    for (int i = 0; i < 3; i++) {
        free(c->b[i].rows);
        free(c->b[i].ptrs);
    }
    free(c->rb.rows);
    free(c->rb.ptrs);
    free(c->parts);
    free(c);
}

/* Sums high watermark minus committed offset over the assigned partitions (cached watermarks,
 * no broker round trip). */
static void update_lag(hl_consumer_t *c)
{
    int64_t lag = 0;
    for (int i = 0; c->assigned && i < c->assigned->cnt; i++) {
        int64_t lo = 0, hi = 0;
        const rd_kafka_topic_partition_t *p = &c->assigned->elems[i];
        if (rd_kafka_get_watermark_offsets(c->rk, p->topic, p->partition, &lo, &hi) ||
            hi < 0)
            continue;
        int64_t from = p->offset > lo ? p->offset : lo;
        if (hi > from) lag += hi - from;
    }
    hl_gauge_set(c->pm->lag, lag);
}

static void take(hl_consumer_t *c, rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        /* librdkafka's consumer is fatal only when a static member (group.instance.id) was
         * fenced by another one of the same id. A new handle in this process would fence that
         * other one in turn; the process ends instead, non-zero, once the batches in hand are
         * committed, and its supervisor decides. Offsets live in Postgres: a restart resumes
         * exactly after the last commit. */
        char why[256];
        rd_kafka_resp_err_t fe = rd_kafka_fatal_error(c->rk, why, sizeof(why));
        hl_error("kafka consumer fatal error (%s: %s); finishing the batches in hand and exiting",
                 rd_kafka_err2name(fe), why);
        c->kafka_fatal = true;
        rd_kafka_message_destroy(m);
        return;
    }
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            hl_warn("consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    const part_t *pt = part_of(c, m->partition);
    /* The first record of a partition nothing was committed in is where its lineage starts. */
    if (pt && hl_ltrack_upto(hl_lineage_track(c->lin), m->partition) < 0)
        hl_ltrack_set(hl_lineage_track(c->lin), m->partition, m->offset);
    batch_t *b = pt && m->offset < pt->recover_end ? &c->rb : &c->b[c->cur];
    hl_row_t *r = &b->rows[b->n++];
    memset(r, 0, sizeof(*r));
    r->consumed_us = b == &c->rb ? 0 : hl_now_us(); /* a recovered record's first is unknown */
    hl_record_from_message(r, m, c->cfg->max_record_bytes);
    if (b->n == 1) b->first_mono_us = hl_mono_us();
}

int hl_consumer_run(hl_consumer_t *c)
{
    const hl_persister_config_t *cfg = c->cfg;
    if (hl_bw_connect(c->bw) != 0)
        hl_warn("Postgres not reachable yet (%s); will retry", hl_bw_last_error(c->bw));
    else
        atomic_store(&c->ready, true);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, cfg->kafka.events_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err) {
        hl_error("subscribe %s: %s", cfg->kafka.events_topic, rd_kafka_err2str(err));
        return HL_EKAFKA;
    }
    hl_info("consuming %s as group %s (batch_max %u, linger %u ms)", cfg->kafka.events_topic,
            cfg->group_id, cfg->batch_max, cfg->batch_linger_ms);
    int64_t linger_us = (int64_t)cfg->batch_linger_ms * 1000, next_lag = 0;
    while (!*c->stop && !c->kafka_fatal) {
        if (c->reseek || hl_bw_stale(c->bw)) resync(c);
        batch_t *b = &c->b[c->cur];
        int timeout = 100;
        if (b->n > 0) {
            int64_t left = b->first_mono_us + linger_us - hl_mono_us();
            timeout = left > 0 ? (int)((left + 999) / 1000) : 0;
        }
        /* With a batch in flight, look at Postgres often so its lineage is not delayed. */
        if (c->inflight && timeout > 2) timeout = 2;
        rd_kafka_message_t *m = NULL;
        if (b->n < cfg->batch_max && c->rb.n < cfg->batch_max &&
            (m = rd_kafka_consumer_poll(c->rk, timeout)) != NULL)
            take(c, m);
        /* Drain what is already fetched without waiting, up to the batch cap. */
        while (b->n < cfg->batch_max && c->rb.n < cfg->batch_max &&
               (m = rd_kafka_consumer_poll(c->rk, 0)) != NULL)
            take(c, m);
        hl_lineage_poll(c->lin);
        if (c->rb.n > 0 && (c->rb.n >= cfg->batch_max ||
                            hl_mono_us() - c->rb.first_mono_us >= linger_us))
            recover_batch(c, false);
        b = &c->b[c->cur];
        bool due = b->n > 0 &&
                   (b->n >= cfg->batch_max || hl_mono_us() - b->first_mono_us >= linger_us);
        if (due) rotate(c);
        else if (c->inflight && hl_bw_ready(c->bw)) (void)complete_inflight(c, false);
        if (hl_mono_us() >= next_lag) {
            update_lag(c);
            maybe_store_lineage(c);
            next_lag = hl_mono_us() + 1000000;
        }
    }
    hl_info("stopping: finishing the batches in hand (%zu records)",
            c->b[0].n + c->b[1].n + c->b[2].n);
    (void)stopping_past_deadline(c);
    c->sync_commit = true;
    drain(c, false);
    store_lineage(c, LINEAGE_SETTLE_MS);
    if (c->kafka_fatal) return HL_EKAFKA; /* a fatal handle cannot leave the group */
    rd_kafka_resp_err_t cerr = rd_kafka_consumer_close(c->rk);
    if (cerr) hl_warn("leaving the group: %s", rd_kafka_err2str(cerr));
    hl_info("left the group");
    return 0;
}
