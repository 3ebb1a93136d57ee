/* The consume -> batch -> transaction -> lineage loop, with rebalances and outages.
 *
 * Correctness rests on Postgres: consumer_offsets advances in the batch's own transaction, and
 * on assignment every partition starts from the offset stored there. Kafka's committed offsets
 * follow only for lag monitoring and never run ahead of the table. Lineage is produced after
 * the commit; its delivery moves lineage_offset (with the next batch, or alone when idle, at a
 * revocation and at shutdown), and on assignment the records between lineage_offset and
 * next_offset are read again and their lineage produced from what Postgres holds, without
 * writing them again. Everything here runs on the thread inside pst_consumer_run (rebalance
 * callbacks and delivery reports too, since they fire inside poll).
 *
 * A new Postgres connection (after any reconnect) may reach a promoted asynchronous standby
 * that lacks the last commits the old primary confirmed, rows and offsets alike. The batch
 * writer refuses to write on such a connection until the offsets are loaded again
 * (pst_bw_stale); pst_cons_resync() then drops every record held and seeks each assigned
 * partition back to what Postgres holds, so a lost batch is consumed and written again. */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "consumer_impl.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"

void pst_metrics_deinit(pst_metrics_t *pm)
{
    pm->batch_size = NULL; /* owned by the registry */
}

void pst_metrics_register(hl_metrics_t *m, pst_metrics_t *pm)
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
                                       " before a restart or rebalance",
                                       NULL);
    pm->producer_restarts =
        hl_metrics_counter(m, "hookline_persister_kafka_producer_restarts_total",
                           "Producers replaced after a fatal librdkafka error", NULL);
}

bool pst_consumer_ready(void *arg)
{
    pst_consumer_t *c = arg;
    return atomic_load(&c->ready) && !*c->stop;
}

/* Reads a test hook's count N > 0 from environment variable `name` into *n (left 0 when
 * unset or empty). Returns 0, or HL_ECONFIG with errbuf filled for anything but N > 0. */
static int test_hook(const char *name, const char *what, int64_t *n, char *errbuf, size_t errcap)
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

pst_consumer_t *pst_consumer_new(const pst_config_t *cfg, pst_metrics_t *pm,
                                 volatile sig_atomic_t *stop, char *errbuf, size_t errcap)
{
    static const char *const defaults[] = {
        "enable.auto.commit",
        "false",
        "enable.auto.offset.store",
        "false",
        "auto.offset.reset",
        "earliest",
        "partition.assignment.strategy",
        "range,roundrobin",
        /* Bounds what librdkafka prefetches, so memory stays bounded while paused. */
        "queued.max.messages.kbytes",
        "16384",
        /* A fetch answers once 64 KiB are there or after 100 ms: at moderate rates the broker
         * serves ~10 fetches a second instead of one per produce request, which on a small
         * host is CPU taken from the ingress path (bench/README.md, "CPU on a shared host"). */
        "fetch.min.bytes",
        "65536",
        "fetch.wait.max.ms",
        "100",
        "session.timeout.ms",
        "10000",
        "heartbeat.interval.ms",
        "1000",
        "isolation.level",
        "read_committed",
        NULL,
    };
    pst_consumer_t *c = hl_xcalloc(1, sizeof(*c));
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
    rd_kafka_conf_set_rebalance_cb(conf, pst_cons_on_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = hl_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errcap);
    if (!c->rk) goto fail;
    rd_kafka_poll_set_consumer(c->rk);
    c->lin = pst_lineage_new(cfg, errbuf, errcap);
    if (!c->lin) goto fail;
    pst_lineage_count_restarts(c->lin, pm->producer_restarts);
    c->bw = pst_bw_new(&cfg->postgres, cfg->group_id, cfg->kafka.events_topic, cfg->batch_max);
    pst_bw_set_lineage_fn(c->bw, pst_cons_lineage_upto, c);
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
    pst_backoff_init(&c->backoff, cfg->retry_base_ms, cfg->retry_cap_ms, 0);
    return c;
fail:
    pst_consumer_free(c);
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

void pst_consumer_free(pst_consumer_t *c)
{
    if (!c) return;
    if (c->bw) pst_bw_reset(c->bw);
    for (int i = 0; i < 3; i++)
        if (c->b[i].rows) pst_cons_release_batch(&c->b[i]);
    if (c->rb.rows) pst_cons_release_batch(&c->rb);
    pst_cons_list_free(c->assigned);
    c->assigned = NULL;
    if (c->rk && !destroy_bounded(c->rk, 10000))
        hl_warn("kafka consumer did not shut down within 10 s; exiting without it");
    pst_lineage_free(c->lin, 10000);
    pst_bw_free(c->bw);
    pst_cons_list_free(c->assigned);
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
static void update_lag(pst_consumer_t *c)
{
    int64_t lag = 0;
    for (int i = 0; c->assigned && i < c->assigned->cnt; i++) {
        int64_t lo = 0, hi = 0;
        const rd_kafka_topic_partition_t *p = &c->assigned->elems[i];
        if (rd_kafka_get_watermark_offsets(c->rk, p->topic, p->partition, &lo, &hi) || hi < 0)
            continue;
        int64_t from = p->offset > lo ? p->offset : lo;
        if (hi > from) lag += hi - from;
    }
    hl_gauge_set(c->pm->lag, lag);
}

static void take(pst_consumer_t *c, rd_kafka_message_t *m)
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
    const part_t *pt = pst_cons_part_of(c, m->partition);
    /* The first record of a partition nothing was committed in is where its lineage starts. */
    if (pt && pst_ltrack_upto(pst_lineage_track(c->lin), m->partition) < 0)
        pst_ltrack_set(pst_lineage_track(c->lin), m->partition, m->offset);
    batch_t *b = pt && m->offset < pt->recover_end ? &c->rb : &c->b[c->cur];
    pst_row_t *r = &b->rows[b->n++];
    memset(r, 0, sizeof(*r));
    r->consumed_us = b == &c->rb ? 0 : hl_now_us(); /* a recovered record's first is unknown */
    pst_record_from_message(r, m, c->cfg->max_record_bytes);
    if (b->n == 1) b->first_mono_us = hl_mono_us();
}

int pst_consumer_run(pst_consumer_t *c)
{
    const pst_config_t *cfg = c->cfg;
    if (pst_bw_connect(c->bw) != 0)
        hl_warn("Postgres not reachable yet (%s); will retry", pst_bw_last_error(c->bw));
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
        if (c->reseek || pst_bw_stale(c->bw)) pst_cons_resync(c);
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
        pst_lineage_poll(c->lin);
        if (c->rb.n > 0 &&
            (c->rb.n >= cfg->batch_max || hl_mono_us() - c->rb.first_mono_us >= linger_us))
            pst_cons_recover_batch(c, false);
        b = &c->b[c->cur];
        bool due =
            b->n > 0 && (b->n >= cfg->batch_max || hl_mono_us() - b->first_mono_us >= linger_us);
        if (due)
            pst_cons_rotate(c);
        else if (c->inflight && pst_bw_ready(c->bw))
            (void)pst_cons_complete_inflight(c, false);
        if (hl_mono_us() >= next_lag) {
            update_lag(c);
            pst_cons_maybe_store_lineage(c);
            next_lag = hl_mono_us() + 1000000;
        }
    }
    hl_info("stopping: finishing the batches in hand (%zu records)",
            c->b[0].n + c->b[1].n + c->b[2].n);
    (void)pst_cons_stopping_past_deadline(c);
    c->sync_commit = true;
    pst_cons_drain(c, false);
    pst_cons_store_lineage(c, LINEAGE_SETTLE_MS);
    if (c->kafka_fatal) return HL_EKAFKA; /* a fatal handle cannot leave the group */
    rd_kafka_resp_err_t cerr = rd_kafka_consumer_close(c->rk);
    if (cerr) hl_warn("leaving the group: %s", rd_kafka_err2str(cerr));
    hl_info("left the group");
    return 0;
}
