/* Idempotent producer with per-request delivery waiters. A waiter lives in a preallocated
 * pool, never on a worker's stack: when a worker gives up at its deadline it marks the
 * waiter abandoned and the delivery report, arriving later on the poll thread, returns it to
 * the pool. Whoever comes second frees it.
 *
 * Lineage records go through a second librdkafka handle of their own, which lingers
 * (lineage_linger_ms): nobody waits for them, so a hundred of them can share one produce
 * request. On the events' handle they doubled the broker round trips and the wake-ups on the
 * answer path (the demo's replay at 1,000 req/s: p95 14.5 -> 7.7 ms, p99 31 -> 17 ms with
 * them moved here; services/ingress/README.md).
 *
 * Each handle lives in a generation that the supervisor replaces when librdkafka declares it
 * fatal (producer_gen.c). */
#include "producer.h"

#include <errno.h>
#include <linux/futex.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"
#include "producer_impl.h"

_Static_assert(sizeof(_Atomic int) == 4, "a futex word is 32 bits");

static waiter_t *waiter_get(ing_producer_t *p)
{
    pthread_mutex_lock(&p->pool_mu);
    waiter_t *w = p->free_list;
    if (w != NULL) {
        p->free_list = w->next;
        p->nfree--;
    }
    pthread_mutex_unlock(&p->pool_mu);
    return w;
}

void ing_waiter_put(ing_producer_t *p, waiter_t *w)
{
    atomic_store(&w->state, W_FREE);
    pthread_mutex_lock(&p->pool_mu);
    w->next = p->free_list;
    p->free_list = w;
    p->nfree++;
    pthread_cond_broadcast(&p->pool_cv);
    pthread_mutex_unlock(&p->pool_mu);
}

static int init_waiters(ing_producer_t *p)
{
    size_t n = p->cfg->max_in_flight;
    p->waiters = hl_xcalloc(n, sizeof(waiter_t));
    for (size_t i = 0; i < n; i++) {
        waiter_t *w = &p->waiters[i];
        atomic_init(&w->state, W_FREE);
        w->next = p->free_list;
        p->free_list = w;
    }
    p->nfree = n;
    return 0;
}

static int64_t queue_depth(void *arg)
{
    ing_producer_t *p = arg;
    gen_t *e = ing_gen_get(&p->ev), *l = ing_gen_get(&p->lin);
    int64_t n = (int64_t)rd_kafka_outq_len(e->rk) + rd_kafka_outq_len(l->rk);
    ing_gen_put(l);
    ing_gen_put(e);
    return n;
}

static int64_t kafka_up(void *arg)
{
    return ing_producer_ready(arg) ? 1 : 0;
}

static void register_metrics(ing_producer_t *p, hl_metrics_t *m)
{
    p->delivery_errors = hl_metrics_counter(m, "hookline_ingress_delivery_errors_total",
                                            "Events Kafka failed to store", NULL);
    p->lineage_drops =
        hl_metrics_counter(m, "hookline_ingress_lineage_dropped_total",
                           "Lineage records that could not be queued or delivered", NULL);
    p->ack_latency = hl_metrics_histogram(m, "hookline_ingress_ack_latency_seconds",
                                          "Produce to broker acknowledgement", NULL);
    static const char help[] = "Producers replaced after a fatal librdkafka error";
    p->ev.restarts = hl_metrics_counter(m, "hookline_ingress_kafka_producer_restarts_total", help,
                                        "producer=\"events\"");
    p->lin.restarts = hl_metrics_counter(m, "hookline_ingress_kafka_producer_restarts_total", help,
                                         "producer=\"lineage\"");
}

static void register_gauges(ing_producer_t *p, hl_metrics_t *m)
{
    hl_metrics_gauge_fn(m, "hookline_ingress_producer_queue_depth",
                        "Records waiting in the producer (events and lineage)", NULL, queue_depth,
                        p);
    hl_metrics_gauge_fn(m, "hookline_ingress_kafka_up", "1 when the broker answered the last check",
                        NULL, kafka_up, p);
}

static void slot_init(slot_t *s, ing_producer_t *p, const char *name, bool lineage)
{
    s->p = p;
    s->name = name;
    s->lineage = lineage;
    pthread_mutex_init(&s->mu, NULL);
}

ing_producer_t *ing_producer_new(const ing_config_t *cfg, hl_metrics_t *m, char *errbuf,
                                 size_t errcap)
{
    ing_producer_t *p = hl_xcalloc(1, sizeof(*p));
    p->cfg = cfg;
    pthread_mutex_init(&p->pool_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines are hl_mono_us */
    pthread_cond_init(&p->pool_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->park_mu, NULL);
    pthread_mutex_init(&p->stop_mu, NULL);
    pthread_cond_init(&p->stop_cv, NULL);
    atomic_init(&p->stop, false);
    atomic_init(&p->up, false);
    slot_init(&p->ev, p, "events", false);
    slot_init(&p->lin, p, "lineage", true);
    register_metrics(p, m);
    if (init_waiters(p) != 0) goto fail;
    /* Lineage records are produced after their answers, so nobody waits for them: held
     * through a broker outage for lineage_timeout_ms, not failed after the events'
     * ack_timeout_ms, which would lose the trace of every request answered in the seconds
     * before the outage and of every 503 answered during it. */
    p->ev.cur = ing_gen_new(&p->ev, 1, errbuf, errcap);
    if (p->ev.cur == NULL) goto fail;
    p->lin.cur = ing_gen_new(&p->lin, 1, errbuf, errcap);
    if (p->lin.cur == NULL) goto fail;
    if (pthread_create(&p->supervisor, NULL, ing_supervisor_main, p) != 0) goto fail;
    p->supervisor_started = true;
    register_gauges(p, m);
    return p;
fail:
    if (errbuf[0] == '\0') snprintf(errbuf, errcap, "producer: cannot start");
    ing_producer_free(p);
    return NULL;
}

static int produce(gen_t *g, const ing_event_t *ev, void *opaque)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(ev->nheaders);
    for (size_t i = 0; i < ev->nheaders; i++)
        rd_kafka_header_add(h, ev->headers[i].name, -1, ev->headers[i].value,
                            (ssize_t)ev->headers[i].len);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(g->rk, RD_KAFKA_V_RKT(g->topic), RD_KAFKA_V_KEY(ev->key, ev->key_len),
                          RD_KAFKA_V_VALUE((void *)ev->value, ev->value_len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return 0; /* headers now owned by the message */
    rd_kafka_headers_destroy(h);
    return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? HL_EAGAIN : HL_EKAFKA;
}

/* A monotonic deadline in µs (hl_mono_us) as the pool's and the waiters' conditions take it. */
static struct timespec deadline_ts(int64_t deadline_us)
{
    return (struct timespec){.tv_sec = deadline_us / 1000000,
                             .tv_nsec = (deadline_us % 1000000) * 1000};
}

/* Sleeps while w->state is W_WAITING, until woken or monotonic deadline_us (an absolute
 * CLOCK_MONOTONIC time: FUTEX_WAIT_BITSET's timeout is absolute). Returns at once when the
 * state is no longer W_WAITING, and early on a signal or a spurious wake: callers loop. */
static void waiter_sleep(waiter_t *w, int64_t deadline_us)
{
    struct timespec ts = deadline_ts(deadline_us);
    if (syscall(SYS_futex, &w->state, FUTEX_WAIT_BITSET_PRIVATE, W_WAITING, &ts, NULL,
                FUTEX_BITSET_MATCH_ANY) != 0 &&
        errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT) {
        /* No futex (a filter refusing the call): poll the state instead of spinning on it. */
        struct timespec nap = {0, 200 * 1000};
        nanosleep(&nap, NULL);
    }
}

void ing_waiter_report(ing_producer_t *p, waiter_t *w, rd_kafka_resp_err_t err, int32_t partition,
                       int64_t offset)
{
    /* The worker reads these only after it sees W_DONE; a worker that gave up reads nothing. */
    w->err = err;
    w->partition = partition;
    w->offset = offset;
    int expect = W_WAITING;
    if (atomic_compare_exchange_strong(&w->state, &expect, W_DONE)) {
        /* The waiter is never freed (the pool outlives the handles), so a wake that comes
         * after the worker took its result and the waiter went to another request wakes that
         * request once, and its wait loop sleeps again. */
        (void)syscall(SYS_futex, &w->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        return;
    }
    /* The worker already answered 503: this report is the last user of the waiter. */
    ing_waiter_put(p, w);
}

static void wait_ack(ing_producer_t *p, waiter_t *w, int64_t deadline_us, ing_ack_t *ack)
{
    for (;;) {
        if (atomic_load(&w->state) != W_WAITING) break;
        if (hl_mono_us() >= deadline_us) {
            int expect = W_WAITING;
            if (atomic_compare_exchange_strong(&w->state, &expect, W_ABANDONED)) {
                ack->err = HL_ETIMEDOUT; /* the delivery report will return it to the pool */
                return;
            }
            break; /* the report came first */
        }
        waiter_sleep(w, deadline_us);
    }
    hl_histogram_observe_us(p->ack_latency, hl_mono_us() - w->produced_us);
    ack->err = w->err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : HL_EKAFKA;
    ack->partition = w->err ? -1 : w->partition;
    ack->offset = w->err ? -1 : w->offset;
    ing_waiter_put(p, w);
}

/* Queues the event on the current events handle, refusing when it is fatal. The use count
 * covers the call only: the report reaches the waiter through the pool, not the handle. */
static int produce_current(ing_producer_t *p, const ing_event_t *ev, void *opaque)
{
    gen_t *g = ing_gen_get(&p->ev);
    int rc = atomic_load(&g->fatal) ? HL_EAGAIN : produce(g, ev, opaque);
    ing_gen_put(g);
    return rc;
}

void ing_producer_send(ing_producer_t *p, const ing_event_t *ev, bool wait, int64_t deadline_us,
                       ing_ack_t *ack)
{
    ack->partition = -1;
    ack->offset = -1;
    if (!wait) {
        ack->err = produce_current(p, ev, &ing_fast_tag);
        return;
    }
    waiter_t *w = waiter_get(p);
    if (w == NULL) { /* every waiter busy or abandoned: refuse rather than queue */
        ack->err = HL_EAGAIN;
        return;
    }
    atomic_store(&w->state, W_WAITING);
    w->produced_us = hl_mono_us();
    int rc = produce_current(p, ev, w);
    if (rc != 0) {
        ing_waiter_put(p, w);
        ack->err = rc;
        return;
    }
    wait_ack(p, w, deadline_us, ack);
}

/* Takes n waiters, all or none, waiting until monotonic deadline_us for the pool to hold that
 * many: batches that arrive together take turns, each holding its waiters only until its
 * records are acknowledged, instead of all but one being refused. Nothing is held while it
 * waits, so two batches cannot block each other. False at the deadline, or at once when n is
 * more than the whole pool. */
static bool waiters_get(ing_producer_t *p, waiter_t **ws, size_t n, int64_t deadline_us)
{
    if (n > p->cfg->max_in_flight) return false;
    struct timespec ts = deadline_ts(deadline_us);
    pthread_mutex_lock(&p->pool_mu);
    while (p->nfree < n)
        if (pthread_cond_timedwait(&p->pool_cv, &p->pool_mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->pool_mu);
            return false;
        }
    for (size_t i = 0; i < n; i++) {
        ws[i] = p->free_list;
        p->free_list = ws[i]->next;
    }
    p->nfree -= n;
    pthread_mutex_unlock(&p->pool_mu);
    return true;
}

void ing_producer_send_many(ing_producer_t *p, const ing_event_t *evs, size_t n, bool wait,
                            int64_t deadline_us, ing_ack_t *acks)
{
    for (size_t i = 0; i < n; i++) acks[i] = (ing_ack_t){HL_EAGAIN, -1, -1};
    if (!wait) {
        for (size_t i = 0; i < n; i++) acks[i].err = produce_current(p, &evs[i], &ing_fast_tag);
        return;
    }
    waiter_t **ws = hl_xcalloc(n, sizeof(*ws));
    if (!waiters_get(p, ws, n, deadline_us)) {
        free(ws);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        atomic_store(&ws[i]->state, W_WAITING);
        ws[i]->produced_us = hl_mono_us();
        acks[i].err = produce_current(p, &evs[i], ws[i]);
        if (acks[i].err != 0) {
            ing_waiter_put(p, ws[i]);
            ws[i] = NULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (ws[i] != NULL) wait_ack(p, ws[i], deadline_us, &acks[i]);
    free(ws);
}

void ing_producer_lineage(ing_producer_t *p, const char *key, const char *json, size_t len)
{
    gen_t *g = ing_gen_get(&p->lin);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__FATAL;
    if (!atomic_load(&g->fatal))
        err = rd_kafka_producev(g->rk, RD_KAFKA_V_RKT(g->topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE((void *)json, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(&ing_lineage_tag), RD_KAFKA_V_END);
    ing_gen_put(g);
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        ing_park_lineage(p, key, strlen(key), json, len);
    else if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        hl_counter_inc(p->lineage_drops);
}

bool ing_producer_ready(const ing_producer_t *p)
{
    return atomic_load(&p->up) && !ing_producer_fatal(p);
}

bool ing_producer_fatal(const ing_producer_t *p)
{
    gen_t *g = ing_gen_get((slot_t *)&p->ev);
    bool fatal = atomic_load(&g->fatal);
    ing_gen_put(g);
    return fatal;
}

void ing_producer_inject_fatal(ing_producer_t *p, bool lineage, const char *reason)
{
    gen_t *g = ing_gen_get(lineage ? &p->lin : &p->ev);
    rd_kafka_test_fatal_error(g->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason);
    ing_gen_put(g);
}

static rd_kafka_t *current_handle(slot_t *s)
{
    pthread_mutex_lock(&s->mu);
    rd_kafka_t *rk = s->cur->rk;
    pthread_mutex_unlock(&s->mu);
    return rk;
}

rd_kafka_t *ing_producer_handle(ing_producer_t *p)
{
    return current_handle(&p->ev);
}

rd_kafka_t *ing_producer_lineage_handle(ing_producer_t *p)
{
    return current_handle(&p->lin);
}

/* Events first: they are what answered requests promised. Lineage gets what is left of the
 * budget, and at least a second. (librdkafka sends at once during a flush, linger or not.)
 * Main thread, after the server stopped: no request holds a generation any more. */
int ing_producer_flush(ing_producer_t *p, int timeout_ms)
{
    int64_t t0 = hl_mono_us();
    ing_unpark_lineage(p);
    gen_t *e = ing_gen_get(&p->ev);
    bool ok = rd_kafka_flush(e->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
    ing_gen_put(e);
    int left = timeout_ms - (int)((hl_mono_us() - t0) / 1000);
    gen_t *l = ing_gen_get(&p->lin);
    ok = rd_kafka_flush(l->rk, left > 1000 ? left : 1000) == RD_KAFKA_RESP_ERR_NO_ERROR && ok;
    ing_gen_put(l);
    return ok ? 0 : HL_ETIMEDOUT;
}

void ing_producer_free(ing_producer_t *p)
{
    if (p == NULL) return;
    if (p->supervisor_started) {
        pthread_mutex_lock(&p->stop_mu);
        atomic_store(&p->stop, true);
        pthread_cond_broadcast(&p->stop_cv);
        pthread_mutex_unlock(&p->stop_mu);
        pthread_join(p->supervisor, NULL);
    }
    if (p->lin.cur) ing_unpark_lineage(p);
    for (parked_t *r = p->parked, *next; r != NULL; r = next) { /* no handle took them */
        next = r->next;
        hl_counter_inc(p->lineage_drops);
        free(r);
    }
    ing_gen_free(p->lin.cur);
    /* Destroying the handle fails whatever is still queued; reports for abandoned waiters
     * are served during gen_free, so the pool is freed only afterwards. */
    ing_gen_free(p->ev.cur);
    free(p->waiters);
    pthread_mutex_destroy(&p->ev.mu);
    pthread_mutex_destroy(&p->lin.mu);
    pthread_mutex_destroy(&p->pool_mu);
    pthread_cond_destroy(&p->pool_cv);
    pthread_mutex_destroy(&p->park_mu);
    pthread_mutex_destroy(&p->stop_mu);
    pthread_cond_destroy(&p->stop_cv);
    free(p);
}
