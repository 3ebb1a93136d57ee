/* The way of a batch: sent to Postgres while the next one fills, finished, retried through
 * an outage with the partitions paused, and after the commit its lineage produced and the
 * Kafka offsets committed (for lag monitoring only: Postgres holds the offsets that count).
 * Records committed before an assignment get their lineage again from what Postgres holds. */
#include "consumer_impl.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"

bool pst_cons_stopping_past_deadline(pst_consumer_t *c)
{
    if (!*c->stop) return false;
    if (c->stop_deadline_mono_us == 0)
        c->stop_deadline_mono_us = hl_mono_us() + (int64_t)c->cfg->shutdown_timeout_ms * 1000;
    return hl_mono_us() > c->stop_deadline_mono_us;
}

void pst_cons_release_batch(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) pst_row_release(&b->rows[i]);
    b->n = 0;
}

void pst_cons_set_paused(pst_consumer_t *c, bool pause)
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

part_t *pst_cons_part_of(pst_consumer_t *c, int32_t partition)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == partition) return &c->parts[i];
    return NULL;
}

/* The lineage offset each batch stores: where delivered lineage ends (pst_bw_lineage_fn). */
int64_t pst_cons_lineage_upto(void *arg, int32_t partition)
{
    pst_consumer_t *c = arg;
    return pst_ltrack_upto(pst_lineage_track(c->lin), partition);
}

static void crash_hook(pst_consumer_t *c)
{
    c->commits++;
    if (c->fatal_after > 0 && c->commits == c->fatal_after) {
        hl_warn("%s=%" PRId64 " reached: failing the producer", FATAL_ENV, c->fatal_after);
        pst_lineage_inject_fatal(c->lin, "test hook " FATAL_ENV);
    }
    if (c->crash_after > 0 && c->commits == c->crash_after) {
        hl_warn("%s=%" PRId64 " reached: killing the process after the commit", CRASH_ENV,
                c->crash_after);
        raise(SIGKILL);
    }
}

/* Stores lineage_offset for every assigned partition whose delivered lineage moved past what
 * was stored, after waiting up to wait_ms for reports in flight. Postgres must be idle. */
void pst_cons_store_lineage(pst_consumer_t *c, int wait_ms)
{
    if (c->nparts == 0 || c->inflight) return;
    if (wait_ms > 0 && !pst_lineage_flush(c->lin, wait_ms))
        hl_warn("lineage still in flight after %d ms; the next assignment recovers it", wait_ms);
    pst_bw_offsets_t *offs = hl_xcalloc(c->nparts, sizeof(*offs));
    size_t n = 0;
    for (size_t i = 0; i < c->nparts; i++) {
        int64_t upto = pst_ltrack_upto(pst_lineage_track(c->lin), c->parts[i].partition);
        if (upto > c->parts[i].stored_lineage)
            offs[n++] = (pst_bw_offsets_t){c->parts[i].partition, -1, upto, -1};
    }
    if (n > 0 && pst_bw_store_lineage(c->bw, offs, n) == 0) {
        for (size_t i = 0; i < n; i++)
            pst_cons_part_of(c, offs[i].partition)->stored_lineage = offs[i].lineage;
    } else if (n > 0) {
        hl_debug("storing lineage offsets: %s", pst_bw_last_error(c->bw));
    }
    free(offs);
}

/* Stores the lineage offsets that moved, at most once a second and only between statements: a
 * partition without batches of its own (drained, or idle) would keep an old lineage_offset, and
 * a restart would produce more lineage again than it needs to. */
void pst_cons_maybe_store_lineage(pst_consumer_t *c)
{
    if (c->inflight || hl_mono_us() < c->next_lineage_us) return;
    c->next_lineage_us = hl_mono_us() + 1000000;
    pst_cons_store_lineage(c, 0);
}

/* Produces the lineage of a committed batch (tracked, so its delivery moves lineage_offset;
 * into tb when the caller opened its tracked batch already, else a new one), updates the
 * committed position of the assigned partitions and commits them to Kafka. */
static void after_commit(pst_consumer_t *c, batch_t *b, int64_t committed_us,
                         pst_ltrack_batch_t *tb)
{
    crash_hook(c);
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(8);
    uint64_t ins = 0, dup = 0, dead = 0;
    pst_ltrack_t *track = pst_lineage_track(c->lin);
    if (!tb) tb = pst_ltrack_open(track);
    for (size_t i = 0; i < b->n; i++) {
        const pst_row_t *r = &b->rows[i];
        pst_lineage_row(c->lin, tb, r, 0, committed_us, b->dl.attempts);
        if (r->status != PST_REC_OK)
            dead++;
        else if (r->duplicate)
            dup++;
        else {
            ins++;
            if (r->received_us > 0)
                hl_histogram_observe_us(c->pm->e2e_latency, committed_us - r->received_us);
        }
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(offs, c->cfg->kafka.events_topic, r->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(offs, c->cfg->kafka.events_topic, r->partition);
        if (r->offset + 1 > p->offset) p->offset = r->offset + 1;
    }
    for (int i = 0; i < offs->cnt; i++)
        pst_ltrack_cover(track, tb, offs->elems[i].partition, offs->elems[i].offset);
    pst_ltrack_close(track, tb);
    for (int i = 0; i < offs->cnt; i++) {
        rd_kafka_topic_partition_t *a =
            c->assigned ? rd_kafka_topic_partition_list_find(c->assigned, offs->elems[i].topic,
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
             " dead-lettered, %" PRId64 " us since sent",
             b->n, ins, dup, dead, hl_mono_us() - b->sent_mono_us);
}

static int dead_letter(void *arg, pst_row_t **rows, size_t n)
{
    dl_ctx_t *d = arg;
    for (size_t i = 0; i < n; i++) {
        hl_log_ctx_t ctx = {rows[i]->request_id[0] ? rows[i]->request_id : NULL,
                            d->c->cfg->kafka.events_topic, rows[i]->partition, rows[i]->offset};
        char kv[256];
        size_t len = 0;
        kv[0] = '\0';
        hl_log_kv_str(kv, sizeof(kv), &len, "error_code", pst_rec_status_code(rows[i]->status));
        HL_LOG(HL_LOG_WARN, &ctx, kv, "dead-lettering record: %s", rows[i]->detail);
    }
    return pst_lineage_dead_letter(d->c->lin, rows, n, d->attempts, (int)d->c->cfg->dlq_timeout_ms);
}

/* Polls the consumer for delay_ms without taking records (partitions are paused), so the
 * member stays in the group and rebalances are served. */
void pst_cons_wait_polling(pst_consumer_t *c, uint32_t delay_ms)
{
    int64_t until = hl_mono_us() + (int64_t)delay_ms * 1000;
    while (!c->abandon && hl_mono_us() < until && !pst_cons_stopping_past_deadline(c)) {
        int64_t left = (until - hl_mono_us()) / 1000;
        int wait_ms = left > 100 ? 100 : (int)(left > 0 ? left : 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait_ms);
        pst_lineage_poll(c->lin);
        if (!m) continue;
        if (!m->err) {
            /* A partition assigned during the outage was not paused: rewind it to this record
             * and pause it, so nothing is skipped and memory stays bounded. */
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)
                ->offset = m->offset;
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
void pst_cons_abandon_all(pst_consumer_t *c)
{
    for (int i = 0; i < 3; i++)
        if (i != c->due) pst_cons_release_batch(&c->b[i]); /* committed: its lineage is still due */
    pst_cons_release_batch(&c->rb);
    c->inflight = false;
}

/* After a failed attempt: retries batch b with backoff while the partitions are paused, until it
 * commits, a revocation abandons it, or shutdown runs out of time. `once` (inside a revocation)
 * gives up at once. Releases b (and, when abandoned, the other batch too: records not
 * committed are consumed again from Postgres' offsets by whoever owns the partitions next).
 * Returns true when committed. */
static bool retry_batch(pst_consumer_t *c, batch_t *b, bool once)
{
    bool ok = false;
    atomic_store(&c->ready, false);
    c->in_retry = true;
    for (;;) {
        hl_counter_inc(c->pm->retries);
        if (once || c->abandon || pst_bw_stale(c->bw) || pst_cons_stopping_past_deadline(c)) break;
        pst_cons_set_paused(c, true);
        uint32_t delay = pst_backoff_next(&c->backoff);
        hl_warn("batch of %zu not committed (%s); attempt %d, retrying in %u ms", b->n,
                pst_bw_last_error(c->bw), b->dl.attempts, delay);
        pst_cons_wait_polling(c, delay);
        if (c->abandon || pst_cons_stopping_past_deadline(c)) break;
        int64_t committed_us = 0;
        b->dl.attempts++;
        if (pst_bw_write(c->bw, b->ptrs, b->n, dead_letter, &b->dl, &committed_us) == 0) {
            after_commit(c, b, committed_us, NULL);
            ok = true;
            break;
        }
        if (pst_bw_stale(c->bw)) break; /* reconnected: the resync reads the batch again */
    }
    c->in_retry = false;
    if (ok) {
        pst_backoff_reset(&c->backoff);
        atomic_store(&c->ready, true);
        pst_cons_release_batch(b);
        pst_cons_set_paused(c, false);
        return true;
    }
    hl_counter_inc(c->pm->abandoned);
    hl_warn("batch of %zu records abandoned uncommitted; it will be consumed again", b->n);
    pst_lineage_settle(c->lin); /* no delivery report may touch the rows once released */
    pst_cons_release_batch(b);
    if (c->abandon) pst_cons_abandon_all(c);
    c->abandon = false;
    return false;
}

/* Waits for the batch in flight and finishes it (lineage, Kafka offsets), retrying if needed. */
bool pst_cons_complete_inflight(pst_consumer_t *c, bool once)
{
    if (!c->inflight) return true;
    batch_t *b = &c->b[c->flight];
    c->inflight = false;
    int64_t committed_us = 0;
    if (pst_bw_finish(c->bw, &committed_us) == 0) {
        atomic_store(&c->ready, true);
        pst_backoff_reset(&c->backoff);
        after_commit(c, b, committed_us, NULL);
        pst_cons_release_batch(b);
        return true;
    }
    return retry_batch(c, b, once);
}

/* Produces the lineage of recovered records (marked by pst_bw_recover) as one tracked batch. */
static void recovered_lineage(pst_consumer_t *c, batch_t *rb)
{
    pst_ltrack_t *track = pst_lineage_track(c->lin);
    pst_ltrack_batch_t *tb = pst_ltrack_open(track);
    for (size_t i = 0; i < rb->n; i++) {
        const pst_row_t *r = &rb->rows[i];
        const part_t *pt = pst_cons_part_of(c, r->partition);
        int64_t at = r->committed_us > 0            ? r->committed_us
                     : pt && pt->last_commit_us > 0 ? pt->last_commit_us
                                                    : hl_now_us();
        pst_lineage_row(c->lin, tb, r, at, at, 0);
        pst_ltrack_cover(track, tb, r->partition, r->offset + 1);
    }
    pst_ltrack_close(track, tb);
    hl_counter_add(c->pm->recovered, rb->n);
    hl_info("lineage produced again for %zu records committed before this assignment", rb->n);
}

/* Recovers the records held in c->rb: waits for the batch in flight (the connection answers one
 * statement at a time), asks Postgres what became of them, produces their lineage. Retries
 * with backoff while Postgres is away, except when `once` (then the records are dropped: the
 * next owner recovers them, since lineage_offset did not move). */
void pst_cons_recover_batch(pst_consumer_t *c, bool once)
{
    batch_t *rb = &c->rb;
    if (rb->n == 0) return;
    (void)pst_cons_complete_inflight(c, once);
    if (rb->n == 0) return; /* abandoned by a revocation meanwhile */
    for (size_t i = 0; i < rb->n; i++) rb->ptrs[i] = &rb->rows[i];
    pst_backoff_t bo;
    pst_backoff_init(&bo, c->cfg->retry_base_ms, c->cfg->retry_cap_ms, 0);
    int rc;
    while ((rc = pst_bw_recover(c->bw, rb->ptrs, rb->n)) != 0) {
        if (once || c->abandon || pst_bw_stale(c->bw) || pst_cons_stopping_past_deadline(c)) break;
        atomic_store(&c->ready, false);
        pst_cons_set_paused(c, true);
        uint32_t delay = pst_backoff_next(&bo);
        hl_warn("recovering the lineage of %zu records failed (%s); retrying in %u ms", rb->n,
                pst_bw_last_error(c->bw), delay);
        c->in_retry = true;
        pst_cons_wait_polling(c, delay);
        c->in_retry = false;
    }
    if (c->abandon) {
        pst_cons_abandon_all(c);
        c->abandon = false;
        return;
    }
    if (c->paused) pst_cons_set_paused(c, false);
    if (rc != 0) {
        hl_warn("lineage of %zu records not recovered now (%s); the next assignment will", rb->n,
                pst_bw_last_error(c->bw));
    } else {
        atomic_store(&c->ready, true);
        recovered_lineage(c, rb);
    }
    pst_cons_release_batch(rb);
}

/* Sends the filling batch to Postgres without waiting (any batch in flight must have been
 * completed); the other buffer becomes the filling one. Recovered records go first: their
 * tracked lineage must come before that of the later records of their partitions. */
static void send_batch(pst_consumer_t *c, bool once)
{
    pst_cons_recover_batch(c, once);
    batch_t *b = &c->b[c->cur];
    if (b->n == 0) return;
    pst_cons_maybe_store_lineage(c);
    for (size_t i = 0; i < b->n; i++) b->ptrs[i] = &b->rows[i];
    pst_rows_sort(b->ptrs, b->n);
    b->dl = (dl_ctx_t){c, 1};
    b->sent_mono_us = hl_mono_us();
    if (pst_bw_send(c->bw, b->ptrs, b->n, dead_letter, &b->dl) == 0) {
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
void pst_cons_rotate(pst_consumer_t *c)
{
    if (!c->inflight) {
        send_batch(c, false);
        return;
    }
    int done = c->flight;
    int64_t committed_us = 0;
    c->inflight = false;
    if (pst_bw_finish(c->bw, &committed_us) != 0) {
        (void)retry_batch(c, &c->b[done], false);
        send_batch(c, false);
        return;
    }
    atomic_store(&c->ready, true);
    pst_backoff_reset(&c->backoff);
    pst_ltrack_batch_t *tb = pst_ltrack_open(pst_lineage_track(c->lin));
    c->due = done;
    send_batch(c, false);
    c->due = -1;
    if (pst_bw_stale(c->bw)) {
        /* Reconnected while sending the next batch: the server reached may not hold this one
         * (a failover that lost its commit). Its lineage is left to the resync: recovered
         * from what Postgres holds, or produced when the batch is written again. */
        pst_ltrack_close(pst_lineage_track(c->lin), tb);
        pst_cons_release_batch(&c->b[done]);
        return;
    }
    after_commit(c, &c->b[done], committed_us, tb);
    pst_cons_release_batch(&c->b[done]);
}

/* Writes everything held and waits for it: used at a revocation (once) and at shutdown. */
void pst_cons_drain(pst_consumer_t *c, bool once)
{
    (void)pst_cons_complete_inflight(c, once);
    send_batch(c, once);
    (void)pst_cons_complete_inflight(c, once);
}
