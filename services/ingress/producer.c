/* Idempotent producer with per-request delivery waiters. A waiter lives in a preallocated
 * pool, never on a worker's stack: when a worker gives up at its deadline it marks the
 * waiter abandoned and the delivery report, arriving later on the poll thread, returns it to
 * the pool. Whoever comes second frees it.
 *
 * Lineage records go through a second librdkafka handle of their own, which lingers
 * (lineage_linger_ms): nobody waits for them, so a hundred of them can share one produce
 * request. On the events' handle they doubled the broker round trips and the wake-ups on the
 * answer path (the demo's replay at 1,000 req/s: p95 14.5 -> 7.7 ms, p99 31 -> 17 ms with
 * them moved here; services/ingress/README.md). */
#include "producer.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"

enum { W_FREE = 0, W_WAITING, W_DONE, W_ABANDONED };

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* signalled by the poll thread when the report arrives */
    int state;           /* W_*, under mu */
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
    int64_t produced_us; /* monotonic, for the ack latency histogram */
    struct waiter *next; /* freelist link, under the pool lock */
} waiter_t;

/* Opaque markers for records nobody waits for. */
static char LINEAGE_TAG, FAST_TAG;

struct ing_producer {
    const ing_config_t *cfg;
    rd_kafka_t *rk;             /* events: answers wait for its delivery reports */
    rd_kafka_t *lrk;            /* lineage: batched, nobody waits */
    rd_kafka_topic_t *events;
    rd_kafka_topic_t *lineage;  /* on lrk */
    waiter_t *waiters;          /* max_in_flight of them */
    waiter_t *free_list;        /* under pool_mu */
    pthread_mutex_t pool_mu;
    pthread_t poll_thread, lineage_poll_thread, health_thread;
    bool threads_started;
    atomic_bool stop;
    atomic_bool up;             /* last health check reached the broker */
    atomic_bool fatal;
    pthread_mutex_t stop_mu;    /* wakes the health thread early on shutdown */
    pthread_cond_t stop_cv;
    hl_counter_t *delivery_errors;
    hl_counter_t *lineage_drops;
    hl_histogram_metric_t *ack_latency;
};

static waiter_t *waiter_get(ing_producer_t *p)
{
    pthread_mutex_lock(&p->pool_mu);
    waiter_t *w = p->free_list;
    if (w != NULL) p->free_list = w->next;
    pthread_mutex_unlock(&p->pool_mu);
    return w;
}

static void waiter_put(ing_producer_t *p, waiter_t *w)
{
    w->state = W_FREE;
    pthread_mutex_lock(&p->pool_mu);
    w->next = p->free_list;
    p->free_list = w;
    pthread_mutex_unlock(&p->pool_mu);
}

/* Runs on whichever thread serves rd_kafka_poll/flush (the poll thread, or main at flush). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ing_producer_t *p = opaque;
    void *tag = m->_private;
    if (tag == &LINEAGE_TAG) {
        if (m->err) hl_counter_inc(p->lineage_drops);
        return;
    }
    if (m->err) hl_counter_inc(p->delivery_errors);
    if (tag == &FAST_TAG || tag == NULL) return;
    waiter_t *w = tag;
    pthread_mutex_lock(&w->mu);
    if (w->state == W_WAITING) {
        w->err = m->err;
        w->partition = m->partition;
        w->offset = m->offset;
        w->state = W_DONE;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        return;
    }
    /* The worker already answered 503: this report is the last user of the waiter. */
    pthread_mutex_unlock(&w->mu);
    waiter_put(p, w);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ing_producer_t *p = opaque;
    char kv[384];
    size_t len = 0;
    kv[0] = '\0';
    hl_log_kv_str(kv, sizeof(kv), &len, "kafka_error", rd_kafka_err2name(err));
    hl_log_kv_str(kv, sizeof(kv), &len, "reason", reason);
    if (rk != p->rk) {
        /* The lineage handle: its failures are counted per record as lineage drops, and the
         * events' handle alone decides readiness. Its connection errors repeat the events'
         * handle's (same broker), so they are logged at debug level; a fatal one is not. */
        hl_log_kv_str(kv, sizeof(kv), &len, "producer", "lineage");
        HL_LOG(err == RD_KAFKA_RESP_ERR__FATAL ? HL_LOG_ERROR : HL_LOG_DEBUG, NULL, kv,
               "kafka lineage producer error");
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fbuf[256];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fbuf, sizeof(fbuf));
        hl_log_kv_str(kv, sizeof(kv), &len, "fatal", rd_kafka_err2name(ferr));
        atomic_store(&p->fatal, true);
        HL_LOG(HL_LOG_ERROR, NULL, kv, "kafka producer fatal error; refusing traffic");
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) atomic_store(&p->up, false);
    HL_LOG(HL_LOG_WARN, NULL, kv, "kafka client error");
}

static void *poll_main(void *arg)
{
    ing_producer_t *p = arg;
    while (!atomic_load(&p->stop)) rd_kafka_poll(p->rk, 100);
    return NULL;
}

static void *lineage_poll_main(void *arg)
{
    ing_producer_t *p = arg;
    while (!atomic_load(&p->stop)) rd_kafka_poll(p->lrk, 100);
    return NULL;
}

/* Asks the cluster for the events topic's metadata once a second, so /readyz reflects the
 * broker without any request paying for the check. */
static void *health_main(void *arg)
{
    ing_producer_t *p = arg;
    while (!atomic_load(&p->stop)) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, p->events, &md, 1000);
        bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md != NULL && md->topic_cnt == 1 &&
                  md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (md != NULL) rd_kafka_metadata_destroy(md);
        if (ok != atomic_load(&p->up)) {
            if (ok) hl_info("kafka reachable");
            else hl_warn("kafka unreachable or events topic missing");
        }
        atomic_store(&p->up, ok);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_mutex_lock(&p->stop_mu);
        if (!atomic_load(&p->stop)) pthread_cond_timedwait(&p->stop_cv, &p->stop_mu, &ts);
        pthread_mutex_unlock(&p->stop_mu);
    }
    return NULL;
}

static int init_waiters(ing_producer_t *p)
{
    size_t n = p->cfg->max_in_flight;
    p->waiters = hl_xcalloc(n, sizeof(waiter_t));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (size_t i = 0; i < n; i++) {
        waiter_t *w = &p->waiters[i];
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, &ca);
        w->next = p->free_list;
        p->free_list = w;
    }
    pthread_condattr_destroy(&ca);
    return 0;
}

/* The settings of both handles; they differ in linger and delivery timeout only. The
 * configured kafka.properties apply to both. */
static rd_kafka_conf_t *make_conf(ing_producer_t *p, unsigned linger_ms, unsigned timeout_ms,
                                  char *errbuf, size_t errcap)
{
    char linger[16], timeout[16], qmax[16];
    snprintf(linger, sizeof(linger), "%u", linger_ms);
    snprintf(timeout, sizeof(timeout), "%u", timeout_ms);
    snprintf(qmax, sizeof(qmax), "%u", p->cfg->queue_max_messages);
    const char *const defaults[] = {
        "enable.idempotence", "true",
        "acks", "all",
        "linger.ms", linger,
        /* An event not acknowledged by the deadline is failed, so abandoned waiters return. */
        "message.timeout.ms", timeout,
        "queue.buffering.max.messages", qmax,
        "socket.nagle.disable", "true",
        "partitioner", "murmur2_random",
        "reconnect.backoff.ms", "50",
        "reconnect.backoff.max.ms", "1000",
        NULL};
    rd_kafka_conf_t *conf = hl_kafka_conf(&p->cfg->kafka, defaults, errbuf, errcap);
    if (conf == NULL) return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, p);
    return conf;
}

/* Creates one librdkafka handle; NULL (errbuf set) on failure. */
static rd_kafka_t *new_handle(ing_producer_t *p, unsigned linger_ms, unsigned timeout_ms,
                              bool lineage, char *errbuf, size_t errcap)
{
    rd_kafka_conf_t *conf = make_conf(p, linger_ms, timeout_ms, errbuf, errcap);
    if (conf == NULL) return NULL;
    /* The lineage handle talks to the same broker: its librdkafka lines repeat the events'. */
    if (lineage) rd_kafka_conf_set_log_cb(conf, hl_kafka_log_debug);
    char rkerr[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(errbuf, errcap, "kafka: %s", rkerr);
    }
    return rk;
}

static int64_t queue_depth(void *arg)
{
    ing_producer_t *p = arg;
    return (p->rk ? rd_kafka_outq_len(p->rk) : 0) + (p->lrk ? rd_kafka_outq_len(p->lrk) : 0);
}

static int64_t kafka_up(void *arg)
{
    return ing_producer_ready(arg) ? 1 : 0;
}

static void register_gauges(ing_producer_t *p, hl_metrics_t *m)
{
    hl_metrics_gauge_fn(m, "hookline_ingress_producer_queue_depth",
                        "Records waiting in the producer (events and lineage)", NULL, queue_depth, p);
    hl_metrics_gauge_fn(m, "hookline_ingress_kafka_up", "1 when the broker answered the last check",
                        NULL, kafka_up, p);
}

ing_producer_t *ing_producer_new(const ing_config_t *cfg, hl_metrics_t *m, char *errbuf,
                                 size_t errcap)
{
    ing_producer_t *p = hl_xcalloc(1, sizeof(*p));
    p->cfg = cfg;
    pthread_mutex_init(&p->pool_mu, NULL);
    pthread_mutex_init(&p->stop_mu, NULL);
    pthread_cond_init(&p->stop_cv, NULL);
    atomic_init(&p->stop, false);
    atomic_init(&p->up, false);
    atomic_init(&p->fatal, false);
    p->delivery_errors = hl_metrics_counter(m, "hookline_ingress_delivery_errors_total",
                                            "Events Kafka failed to store", NULL);
    p->lineage_drops = hl_metrics_counter(m, "hookline_ingress_lineage_dropped_total",
                                          "Lineage records that could not be queued or delivered",
                                          NULL);
    p->ack_latency = hl_metrics_histogram(m, "hookline_ingress_ack_latency_seconds",
                                          "Produce to broker acknowledgement", NULL);
    if (init_waiters(p) != 0) goto fail;
    /* Lineage records are produced after their answers, so nobody waits for them: held
     * through a broker outage for lineage_timeout_ms, not failed after the events'
     * ack_timeout_ms, which would lose the trace of every request answered in the seconds
     * before the outage and of every 503 answered during it. */
    p->rk = new_handle(p, cfg->linger_ms, cfg->ack_timeout_ms, false, errbuf, errcap);
    if (p->rk == NULL) goto fail;
    p->lrk = new_handle(p, cfg->lineage_linger_ms, cfg->lineage_timeout_ms, true, errbuf,
                        errcap);
    if (p->lrk == NULL) goto fail;
    p->events = rd_kafka_topic_new(p->rk, cfg->kafka.events_topic, NULL);
    p->lineage = rd_kafka_topic_new(p->lrk, cfg->kafka.lineage_topic, NULL);
    if (p->events == NULL || p->lineage == NULL) {
        snprintf(errbuf, errcap, "kafka: cannot create topic handles");
        goto fail;
    }
    if (pthread_create(&p->poll_thread, NULL, poll_main, p) != 0) goto fail;
    if (pthread_create(&p->lineage_poll_thread, NULL, lineage_poll_main, p) != 0) {
        atomic_store(&p->stop, true);
        pthread_join(p->poll_thread, NULL);
        goto fail;
    }
    if (pthread_create(&p->health_thread, NULL, health_main, p) != 0) {
        atomic_store(&p->stop, true);
        pthread_join(p->poll_thread, NULL);
        pthread_join(p->lineage_poll_thread, NULL);
        goto fail;
    }
    p->threads_started = true;
    register_gauges(p, m);
    return p;
fail:
    if (errbuf[0] == '\0') snprintf(errbuf, errcap, "producer: cannot start");
    ing_producer_free(p);
    return NULL;
}

static int produce(ing_producer_t *p, rd_kafka_topic_t *t, const ing_event_t *ev, void *opaque)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(ev->nheaders);
    for (size_t i = 0; i < ev->nheaders; i++)
        rd_kafka_header_add(h, ev->headers[i].name, -1, ev->headers[i].value,
                            (ssize_t)ev->headers[i].len);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_RKT(t), RD_KAFKA_V_KEY(ev->key, ev->key_len),
        RD_KAFKA_V_VALUE((void *)ev->value, ev->value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return 0; /* headers now owned by the message */
    rd_kafka_headers_destroy(h);
    return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? HL_EAGAIN : HL_EKAFKA;
}

static void wait_ack(ing_producer_t *p, waiter_t *w, int64_t deadline_us, ing_ack_t *ack)
{
    struct timespec ts = {.tv_sec = deadline_us / 1000000, .tv_nsec = (deadline_us % 1000000) * 1000};
    pthread_mutex_lock(&w->mu);
    while (w->state == W_WAITING)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
    if (w->state == W_DONE) {
        pthread_mutex_unlock(&w->mu);
        hl_histogram_observe_us(p->ack_latency, hl_mono_us() - w->produced_us);
        ack->err = w->err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : HL_EKAFKA;
        ack->partition = w->err ? -1 : w->partition;
        ack->offset = w->err ? -1 : w->offset;
        waiter_put(p, w);
        return;
    }
    w->state = W_ABANDONED; /* the delivery report will return it to the pool */
    pthread_mutex_unlock(&w->mu);
    ack->err = HL_ETIMEDOUT;
}

void ing_producer_send(ing_producer_t *p, const ing_event_t *ev, bool wait, int64_t deadline_us,
                       ing_ack_t *ack)
{
    ack->partition = -1;
    ack->offset = -1;
    if (atomic_load(&p->fatal)) {
        ack->err = HL_EAGAIN;
        return;
    }
    if (!wait) {
        ack->err = produce(p, p->events, ev, &FAST_TAG);
        return;
    }
    waiter_t *w = waiter_get(p);
    if (w == NULL) { /* every waiter busy or abandoned: refuse rather than queue */
        ack->err = HL_EAGAIN;
        return;
    }
    w->state = W_WAITING;
    w->produced_us = hl_mono_us();
    int rc = produce(p, p->events, ev, w);
    if (rc != 0) {
        waiter_put(p, w);
        ack->err = rc;
        return;
    }
    wait_ack(p, w, deadline_us, ack);
}

void ing_producer_lineage(ing_producer_t *p, const char *key, const char *json, size_t len)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->lrk, RD_KAFKA_V_RKT(p->lineage), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)json, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(&LINEAGE_TAG), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) hl_counter_inc(p->lineage_drops);
}

bool ing_producer_ready(const ing_producer_t *p)
{
    return atomic_load(&p->up) && !atomic_load(&p->fatal);
}

bool ing_producer_fatal(const ing_producer_t *p)
{
    return atomic_load(&p->fatal);
}

rd_kafka_t *ing_producer_handle(ing_producer_t *p)
{
    return p->rk;
}

rd_kafka_t *ing_producer_lineage_handle(ing_producer_t *p)
{
    return p->lrk;
}

/* Events first: they are what answered requests promised. Lineage gets what is left of the
 * budget, and at least a second. (librdkafka sends at once during a flush, linger or not.) */
int ing_producer_flush(ing_producer_t *p, int timeout_ms)
{
    int64_t t0 = hl_mono_us();
    bool ok = rd_kafka_flush(p->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
    int left = timeout_ms - (int)((hl_mono_us() - t0) / 1000);
    ok = rd_kafka_flush(p->lrk, left > 1000 ? left : 1000) == RD_KAFKA_RESP_ERR_NO_ERROR && ok;
    return ok ? 0 : HL_ETIMEDOUT;
}

void ing_producer_free(ing_producer_t *p)
{
    if (p == NULL) return;
    if (p->threads_started) {
        pthread_mutex_lock(&p->stop_mu);
        atomic_store(&p->stop, true);
        pthread_cond_broadcast(&p->stop_cv);
        pthread_mutex_unlock(&p->stop_mu);
        pthread_join(p->health_thread, NULL);
        pthread_join(p->poll_thread, NULL);
        pthread_join(p->lineage_poll_thread, NULL);
    }
    if (p->events) rd_kafka_topic_destroy(p->events);
    if (p->lineage) rd_kafka_topic_destroy(p->lineage);
    if (p->lrk) {
        rd_kafka_purge(p->lrk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->lrk, 0);
        rd_kafka_destroy(p->lrk);
    }
    /* Destroying the handle fails whatever is still queued; reports for abandoned waiters
     * are served during destroy, so the pool is freed only afterwards. */
    if (p->rk) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->rk, 0);
        rd_kafka_destroy(p->rk);
    }
    for (size_t i = 0; p->waiters && i < p->cfg->max_in_flight; i++) {
        pthread_mutex_destroy(&p->waiters[i].mu);
        pthread_cond_destroy(&p->waiters[i].cv);
    }
    free(p->waiters);
    pthread_mutex_destroy(&p->pool_mu);
    pthread_mutex_destroy(&p->stop_mu);
    pthread_cond_destroy(&p->stop_cv);
    free(p);
}
