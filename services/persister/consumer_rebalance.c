/* Assignments and revocations, and the resync after a new Postgres connection: every
 * partition starts from the offsets Postgres holds, never from Kafka's. */
#include "consumer_impl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"

/* librdkafka's list destructor does not accept NULL. */
void pst_cons_list_free(rd_kafka_topic_partition_list_t *l)
{
    if (l) rd_kafka_topic_partition_list_destroy(l);
}

/* Sets up one assigned partition from its stored offsets and returns where to start reading:
 * at next_offset, or at lineage_offset when the lineage of the records between the two has to
 * be produced again. */
static int64_t start_partition(pst_consumer_t *c, part_t *pt, const pst_bw_offsets_t *o)
{
    pst_ltrack_t *track = pst_lineage_track(c->lin);
    pt->partition = o->partition;
    pt->recover_end = -1;
    pt->last_commit_us = o->updated_us;
    pt->stored_lineage = o->lineage;
    if (o->next < 0) {
        /* Nothing committed yet: the mark is set by the first record taken. */
        pst_ltrack_set(track, o->partition, -1);
        hl_info("assigned partition %d from the beginning (no offset stored)", o->partition);
        return RD_KAFKA_OFFSET_BEGINNING;
    }
    if (o->lineage >= 0 && o->lineage < o->next) {
        pt->recover_end = o->next;
        pst_ltrack_set(track, o->partition, o->lineage);
        hl_info("assigned partition %d from offset %" PRId64 "; lineage of offsets %" PRId64
                "..%" PRId64 " to be produced again",
                o->partition, o->next, o->lineage, o->next - 1);
        return o->lineage;
    }
    /* Without a stored lineage_offset (a row older than the column) nothing is recovered. */
    pst_ltrack_set(track, o->partition, o->next);
    pt->stored_lineage = o->next;
    hl_info("assigned partition %d from offset %" PRId64, o->partition, o->next);
    return o->next;
}

static void on_assign(pst_consumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    /* Eager rebalancing revokes (and drains) before it assigns; this only guards the rule that
     * the connection answers one statement at a time. */
    if (c->inflight && !c->in_retry) (void)pst_cons_complete_inflight(c, true);
    size_t n = (size_t)parts->cnt;
    pst_bw_offsets_t *offs = hl_xcalloc(n + 1, sizeof(*offs));
    for (size_t i = 0; i < n; i++) offs[i].partition = parts->elems[i].partition;
    pst_backoff_t b;
    pst_backoff_init(&b, c->cfg->retry_base_ms, c->cfg->retry_cap_ms, 0);
    /* The starting offsets must come from Postgres: without them the member cannot consume. */
    while (pst_bw_load_offsets(c->bw, offs, n) != 0) {
        atomic_store(&c->ready, false);
        if (*c->stop) break;
        uint32_t d = pst_backoff_next(&b);
        hl_warn("loading offsets from Postgres failed (%s); retrying in %u ms",
                pst_bw_last_error(c->bw), d);
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
    pst_cons_list_free(c->assigned);
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

static void on_revoke(pst_consumer_t *c)
{
    if (c->in_retry) {
        /* Inside an outage's retry loop: abandon; the new owner starts from Postgres' offsets. */
        c->abandon = true;
    } else {
        /* Finish the batches in hand if Postgres takes them at once, else leave them. */
        bool was = c->sync_commit;
        c->sync_commit = true;
        pst_cons_drain(c, true);
        c->sync_commit = was;
        /* So that the next owner does not produce this lineage again. */
        pst_cons_store_lineage(c, LINEAGE_SETTLE_MS);
    }
    pst_cons_release_batch(&c->rb);
    rd_kafka_assign(c->rk, NULL);
    pst_cons_list_free(c->assigned);
    c->assigned = NULL;
    free(c->parts);
    c->parts = NULL;
    c->nparts = 0;
    c->paused = false;
    hl_gauge_set(c->pm->assigned, 0);
    hl_gauge_set(c->pm->paused, 0);
    hl_info("partitions revoked");
}

/* Longest wait for librdkafka to reposition the partitions in pst_cons_resync(). */
#define SEEK_TIMEOUT_MS 10000

/* Seeks every assigned partition to where start_partition() says, from offs (one per
 * c->parts entry). Returns false when a partition could not be positioned. Seeking discards
 * what librdkafka fetched for the partition and not yet handed out, fetch responses still on
 * the way included (they carry the version from before the seek and are dropped). */
static bool seek_all(pst_consumer_t *c, pst_bw_offsets_t *offs)
{
    pst_ltrack_t *track = pst_lineage_track(c->lin);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->nparts + 1);
    for (size_t i = 0; i < c->nparts; i++) {
        /* Lineage this member saw delivered for records Postgres still counts as committed
         * need not be produced again, though lineage_offset was not stored yet. */
        int64_t upto = pst_ltrack_upto(track, offs[i].partition);
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

/* After a new Postgres connection (pst_bw_stale) or a failed seek: drops every record held
 * (nothing is in flight: a stale writer sends nothing), loads the offsets of every assigned
 * partition from Postgres and seeks each there, so whatever the server reached lacks is
 * consumed and written again (the unique key makes records it holds harmless) before anything
 * later is written. Partitions stay paused until then; Postgres away means retrying with
 * backoff while polling, as an outage does. */
void pst_cons_resync(pst_consumer_t *c)
{
    size_t held = c->b[0].n + c->b[1].n + c->b[2].n + c->rb.n;
    if (c->inflight) pst_bw_reset(c->bw); /* cannot happen: nothing is sent while stale */
    c->inflight = false;
    /* No delivery report may touch the rows once released; and what is delivered by now need
     * not be produced again (seek_all). */
    if (!pst_lineage_flush(c->lin, LINEAGE_SETTLE_MS))
        hl_warn("lineage still in flight after %d ms; it is produced again", LINEAGE_SETTLE_MS);
    pst_lineage_settle(c->lin);
    for (int i = 0; i < 3; i++) pst_cons_release_batch(&c->b[i]);
    pst_cons_release_batch(&c->rb);
    c->reseek = true;
    pst_cons_set_paused(c, true);
    if (c->nparts > 0)
        hl_warn("new Postgres connection: reading the offsets of %zu partitions again; %zu"
                " records held are dropped and consumed again",
                c->nparts, held);
    pst_backoff_t bo;
    pst_backoff_init(&bo, c->cfg->retry_base_ms, c->cfg->retry_cap_ms, 0);
    for (;;) {
        size_t n = c->nparts;
        pst_bw_offsets_t *offs = hl_xcalloc(n + 1, sizeof(*offs));
        for (size_t i = 0; i < n; i++) offs[i].partition = c->parts[i].partition;
        bool done = pst_bw_load_offsets(c->bw, offs, n) == 0 && seek_all(c, offs);
        free(offs);
        if (done) break;
        if (*c->stop) return; /* nothing held: whoever consumes next starts from Postgres */
        atomic_store(&c->ready, false);
        uint32_t delay = pst_backoff_next(&bo);
        hl_warn("repositioning after a reconnect failed (%s); retrying in %u ms",
                pst_bw_last_error(c->bw), delay);
        c->in_retry = true;
        pst_cons_wait_polling(c, delay);
        c->in_retry = false;
        if (c->abandon) {
            /* Revoked meanwhile (and perhaps assigned again, from Postgres' offsets). */
            c->abandon = false;
            pst_cons_abandon_all(c);
            if (!pst_bw_stale(c->bw)) break;
        }
    }
    c->reseek = false;
    pst_cons_set_paused(c, false);
    pst_backoff_reset(&c->backoff);
    atomic_store(&c->ready, true);
}

void pst_cons_on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    pst_consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        on_assign(c, parts);
    else
        on_revoke(c);
}
