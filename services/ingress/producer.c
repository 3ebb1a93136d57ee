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
 * Each handle lives in a generation. An idempotent producer that librdkafka declares fatal
 * (a leader change can desynchronise its sequence numbers) never delivers again, so the
 * supervisor thread builds a new generation, makes it current, and retires the old one: it
 * waits until no request thread is inside a call on the old handle (each holds a use count
 * while it produces), purges it so every outstanding delivery report arrives as a failure,
 * lets its poll thread serve those reports, and only then destroys it. Request threads never
 * wait for any of that; they see the old generation's fatal flag and answer 503 until the new
 * one is current. */
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

/* How long a retired generation may take to hand back its delivery reports. */
#define RETIRE_TIMEOUT_US (10 * 1000000LL)
/* Lineage records held while the lineage handle is fatal and not yet replaced; past it they
 * are dropped (counted). */
#define PARK_MAX 20000

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

struct slot;

/* One librdkafka handle and the thread serving its callbacks. */
typedef struct gen {
    struct slot *slot;      /* borrowed: the slot it serves */
    rd_kafka_t *rk;         /* owned */
    rd_kafka_topic_t *topic;
    pthread_t poll_thread;
    bool poll_started;
    unsigned number;        /* 1 for the first handle of the slot, +1 per replacement */
    atomic_bool stop;       /* ends the poll thread */
    atomic_bool fatal;      /* librdkafka raised a fatal error: it will never deliver again */
    atomic_int users;       /* request threads inside a call on rk (see gen_get) */
} gen_t;

/* A replaceable handle: events (answers wait for it) or lineage (nobody waits). */
typedef struct slot {
    ing_producer_t *p;      /* borrowed: the owner */
    const char *name;       /* "events" | "lineage" */
    bool lineage;
    pthread_mutex_t mu;     /* guards cur */
    gen_t *cur;             /* owned; replaced by the supervisor thread only */
    hl_counter_t *restarts;
} slot_t;

/* A lineage record produced while the lineage handle was fatal, waiting for its successor. */
typedef struct parked {
    struct parked *next;
    size_t klen, len;
    char data[]; /* key then value */
} parked_t;

struct ing_producer {
    const ing_config_t *cfg;
    slot_t ev, lin;
    pthread_mutex_t park_mu;    /* guards the parked list */
    parked_t *parked;           /* newest first; sent by the supervisor after a replacement */
    atomic_size_t nparked;      /* written under park_mu */
    waiter_t *waiters;          /* max_in_flight of them */
    waiter_t *free_list;        /* under pool_mu */
    pthread_mutex_t pool_mu;
    pthread_t supervisor;
    bool supervisor_started;
    atomic_bool stop;
    atomic_bool up;             /* last health check reached the broker */
    pthread_mutex_t stop_mu;    /* wakes the supervisor on shutdown or a fatal error */
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

/* The slot's current generation with its use count raised: the handle stays alive until
 * gen_put, because the supervisor retires a generation only once its count is back at 0 and
 * no longer current (so the count can only fall). Any thread. */
static gen_t *gen_get(slot_t *s)
{
    pthread_mutex_lock(&s->mu);
    gen_t *g = s->cur;
    atomic_fetch_add(&g->users, 1);
    pthread_mutex_unlock(&s->mu);
    return g;
}

static void gen_put(gen_t *g)
{
    atomic_fetch_sub(&g->users, 1);
}

static void wake_supervisor(ing_producer_t *p)
{
    pthread_mutex_lock(&p->stop_mu);
    pthread_cond_broadcast(&p->stop_cv);
    pthread_mutex_unlock(&p->stop_mu);
}

/* True once the generation's handle is fatal. librdkafka may serve the reports of the records
 * it failed before the error callback that says so (librdkafka 2.8 does), so the handle itself
 * is asked too; whoever notices first marks the generation and wakes the supervisor. Runs on
 * the generation's poll thread. */
static bool gen_fatal(gen_t *g)
{
    if (atomic_load(&g->fatal)) return true;
    char one[1];
    if (rd_kafka_fatal_error(g->rk, one, sizeof(one)) == RD_KAFKA_RESP_ERR_NO_ERROR) return false;
    atomic_store(&g->fatal, true);
    wake_supervisor(g->slot->p);
    return true;
}

/* Keeps a copy of a lineage record that met a fatal handle, for its successor. Any thread;
 * allocates, but only between a fatal error and the replacement. */
static void lineage_park(ing_producer_t *p, const void *key, size_t klen, const void *json,
                         size_t len)
{
    parked_t *r = NULL;
    pthread_mutex_lock(&p->park_mu);
    if (atomic_load(&p->nparked) < PARK_MAX) {
        r = hl_xmalloc(sizeof(*r) + klen + len);
        r->klen = klen;
        r->len = len;
        memcpy(r->data, key, klen);
        memcpy(r->data + klen, json, len);
        r->next = p->parked;
        p->parked = r;
        atomic_store(&p->nparked, atomic_load(&p->nparked) + 1);
    }
    pthread_mutex_unlock(&p->park_mu);
    if (r == NULL) hl_counter_inc(p->lineage_drops);
}

/* Produces the parked records on the current lineage handle once it is healthy (order among
 * lineage records does not matter: each is keyed by its own request). What a full queue
 * refuses stays parked for the next round. Supervisor or main thread. */
static void lineage_unpark(ing_producer_t *p)
{
    pthread_mutex_lock(&p->park_mu);
    parked_t *r = p->parked;
    p->parked = NULL;
    atomic_store(&p->nparked, 0);
    pthread_mutex_unlock(&p->park_mu);
    gen_t *g = gen_get(&p->lin);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    while (r != NULL && err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        err = atomic_load(&g->fatal) ? RD_KAFKA_RESP_ERR__FATAL
              : rd_kafka_producev(g->rk, RD_KAFKA_V_RKT(g->topic), RD_KAFKA_V_KEY(r->data, r->klen),
                                  RD_KAFKA_V_VALUE(r->data + r->klen, r->len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_OPAQUE(&LINEAGE_TAG), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) hl_counter_inc(p->lineage_drops);
        parked_t *next = r->next;
        free(r);
        r = next;
    }
    gen_put(g);
    size_t left = 0;
    parked_t *last = NULL;
    for (parked_t *x = r; x != NULL; x = x->next, left++) last = x;
    if (last == NULL) return;
    pthread_mutex_lock(&p->park_mu);
    last->next = p->parked;
    p->parked = r;
    atomic_store(&p->nparked, atomic_load(&p->nparked) + left);
    pthread_mutex_unlock(&p->park_mu);
}

/* Runs on whichever thread serves rd_kafka_poll/flush of the generation (its poll thread,
 * or main at flush). A report served after the generation turned fatal is a failure even if
 * the broker stored the record: the request is answered 503 and its retry is stored once. So
 * is a success without an offset (hl_kafka_delivery_err: a new producer, a partition created
 * a moment ago or a leader moving can leave such a record in no log). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    gen_t *g = opaque;
    ing_producer_t *p = g->slot->p;
    void *tag = m->_private;
    bool fatal = m->err ? gen_fatal(g) : atomic_load(&g->fatal);
    rd_kafka_resp_err_t delivered = hl_kafka_delivery_err(m);
    if (tag == &LINEAGE_TAG) {
        if (m->err && fatal) lineage_park(p, m->key, m->key_len, m->payload, m->len);
        else if (delivered) hl_counter_inc(p->lineage_drops);
        return;
    }
    rd_kafka_resp_err_t err = m->err ? m->err : fatal ? RD_KAFKA_RESP_ERR__FATAL : delivered;
    if (err) hl_counter_inc(p->delivery_errors);
    if (tag == &FAST_TAG || tag == NULL) return;
    waiter_t *w = tag;
    pthread_mutex_lock(&w->mu);
    if (w->state == W_WAITING) {
        w->err = err;
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
    gen_t *g = opaque;
    ing_producer_t *p = g->slot->p;
    char kv[512];
    size_t len = 0;
    kv[0] = '\0';
    hl_log_kv_str(kv, sizeof(kv), &len, "kafka_error", rd_kafka_err2name(err));
    hl_log_kv_str(kv, sizeof(kv), &len, "reason", reason);
    hl_log_kv_str(kv, sizeof(kv), &len, "producer", g->slot->name);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fbuf[256];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fbuf, sizeof(fbuf));
        hl_log_kv_str(kv, sizeof(kv), &len, "fatal", rd_kafka_err2name(ferr));
        hl_log_kv_int(kv, sizeof(kv), &len, "generation", (long long)g->number);
        atomic_store(&g->fatal, true);
        HL_LOG(HL_LOG_ERROR, NULL, kv, "kafka producer fatal error; replacing the producer");
        wake_supervisor(p);
        return;
    }
    if (g->slot->lineage) {
        /* Its failures are counted per record as lineage drops, and the events' handle alone
         * decides readiness. Its connection errors repeat the events' handle's (same broker),
         * so they are logged at debug level. */
        HL_LOG(HL_LOG_DEBUG, NULL, kv, "kafka lineage producer error");
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) atomic_store(&p->up, false);
    HL_LOG(HL_LOG_WARN, NULL, kv, "kafka client error");
}

static void *poll_main(void *arg)
{
    gen_t *g = arg;
    while (!atomic_load(&g->stop)) rd_kafka_poll(g->rk, 100);
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
static rd_kafka_conf_t *make_conf(const ing_config_t *cfg, bool lineage, char *errbuf,
                                  size_t errcap)
{
    char linger[16], timeout[16], qmax[16];
    snprintf(linger, sizeof(linger), "%u", lineage ? cfg->lineage_linger_ms : cfg->linger_ms);
    snprintf(timeout, sizeof(timeout), "%u",
             lineage ? cfg->lineage_timeout_ms : cfg->ack_timeout_ms);
    snprintf(qmax, sizeof(qmax), "%u", cfg->queue_max_messages);
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
    rd_kafka_conf_t *conf = hl_kafka_conf(&cfg->kafka, defaults, errbuf, errcap);
    if (conf == NULL) return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    /* The lineage handle talks to the same broker: its librdkafka lines repeat the events'. */
    if (lineage) rd_kafka_conf_set_log_cb(conf, hl_kafka_log_debug);
    return conf;
}

/* Stops the poll thread, fails what is left and destroys the handle. NULL-safe. Supervisor
 * or main thread, once no request thread can reach the generation. */
static void gen_free(gen_t *g)
{
    if (g == NULL) return;
    if (g->poll_started) {
        atomic_store(&g->stop, true);
        pthread_join(g->poll_thread, NULL);
    }
    if (g->topic) rd_kafka_topic_destroy(g->topic);
    if (g->rk) {
        /* Reports for abandoned waiters are served here, so the pool outlives the handle. */
        rd_kafka_purge(g->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(g->rk, 0);
        rd_kafka_destroy(g->rk);
    }
    free(g);
}

/* A new generation for slot s with its poll thread running; NULL with errbuf filled. */
static gen_t *gen_new(slot_t *s, unsigned number, char *errbuf, size_t errcap)
{
    const ing_config_t *cfg = s->p->cfg;
    gen_t *g = hl_xcalloc(1, sizeof(*g));
    g->slot = s;
    g->number = number;
    atomic_init(&g->stop, false);
    atomic_init(&g->fatal, false);
    atomic_init(&g->users, 0);
    rd_kafka_conf_t *conf = make_conf(cfg, s->lineage, errbuf, errcap);
    if (conf == NULL) goto fail;
    rd_kafka_conf_set_opaque(conf, g);
    char rkerr[256];
    g->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (g->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(errbuf, errcap, "kafka: %s", rkerr);
        goto fail;
    }
    g->topic = rd_kafka_topic_new(g->rk, s->lineage ? cfg->kafka.lineage_topic
                                                    : cfg->kafka.events_topic, NULL);
    if (g->topic == NULL) {
        snprintf(errbuf, errcap, "kafka: cannot create the %s topic handle", s->name);
        goto fail;
    }
    if (pthread_create(&g->poll_thread, NULL, poll_main, g) != 0) {
        snprintf(errbuf, errcap, "producer: cannot start the %s poll thread", s->name);
        goto fail;
    }
    g->poll_started = true;
    return g;
fail:
    gen_free(g);
    return NULL;
}

/* Takes a generation that is no longer current: waits for the request threads still inside
 * a call on it, fails everything it holds, lets its poll thread serve the failed reports
 * (503 for every waiter, lineage records handed to the new handle), then destroys it.
 * Supervisor thread. */
static void gen_retire(gen_t *g)
{
    struct timespec ms = {0, 1000000L};
    while (atomic_load(&g->users) > 0) nanosleep(&ms, NULL);
    rd_kafka_purge(g->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    int64_t deadline = hl_mono_us() + RETIRE_TIMEOUT_US;
    while (rd_kafka_outq_len(g->rk) > 0 && hl_mono_us() < deadline) nanosleep(&ms, NULL);
    if (rd_kafka_outq_len(g->rk) > 0)
        hl_warn("retired %s producer still holds %d records; destroying it", g->slot->name,
                rd_kafka_outq_len(g->rk));
    gen_free(g);
}

/* Replaces a fatal generation. When no new handle can be built the old one stays current
 * (requests keep getting 503) and the next round tries again. Supervisor thread. */
static void replace(slot_t *s)
{
    gen_t *old = s->cur;
    char err[256] = "";
    gen_t *g = gen_new(s, old->number + 1, err, sizeof(err));
    if (g == NULL) {
        hl_error("cannot replace the fatal %s producer: %s", s->name, err);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->cur = g;
    pthread_mutex_unlock(&s->mu);
    hl_counter_inc(s->restarts);
    char kv[128];
    size_t len = 0;
    kv[0] = '\0';
    hl_log_kv_str(kv, sizeof(kv), &len, "producer", s->name);
    hl_log_kv_int(kv, sizeof(kv), &len, "generation", (long long)g->number);
    HL_LOG(HL_LOG_WARN, NULL, kv, "kafka producer replaced; the failed one's records answered 503");
    gen_retire(old);
}

/* Asks the cluster for the events topic's metadata, so /readyz reflects the broker without
 * any request paying for the check. Supervisor thread (the only one replacing generations,
 * so cur is stable here). */
static void health_check(ing_producer_t *p)
{
    gen_t *g = p->ev.cur;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(g->rk, 0, g->topic, &md, 1000);
    bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md != NULL && md->topic_cnt == 1 &&
              md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (md != NULL) rd_kafka_metadata_destroy(md);
    if (ok != atomic_load(&p->up)) {
        if (ok) hl_info("kafka reachable");
        else hl_warn("kafka unreachable or events topic missing");
    }
    atomic_store(&p->up, ok);
}

/* Replaces fatal handles as soon as the error callback wakes it, and checks the broker once
 * a second. */
static void *supervisor_main(void *arg)
{
    ing_producer_t *p = arg;
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->ev.cur->fatal)) replace(&p->ev);
        if (atomic_load(&p->lin.cur->fatal)) replace(&p->lin);
        if (!atomic_load(&p->lin.cur->fatal) && atomic_load(&p->nparked) > 0) lineage_unpark(p);
        if (!atomic_load(&p->ev.cur->fatal)) health_check(p);
        /* Parked lineage records that a full queue refused are tried again soon. */
        long wait_ns = atomic_load(&p->nparked) > 0 ? 100000000L : 1000000000L;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += wait_ns;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_mutex_lock(&p->stop_mu);
        if (!atomic_load(&p->stop) && !atomic_load(&p->ev.cur->fatal) &&
            !atomic_load(&p->lin.cur->fatal))
            pthread_cond_timedwait(&p->stop_cv, &p->stop_mu, &ts);
        pthread_mutex_unlock(&p->stop_mu);
    }
    return NULL;
}

static int64_t queue_depth(void *arg)
{
    ing_producer_t *p = arg;
    gen_t *e = gen_get(&p->ev), *l = gen_get(&p->lin);
    int64_t n = (int64_t)rd_kafka_outq_len(e->rk) + rd_kafka_outq_len(l->rk);
    gen_put(l);
    gen_put(e);
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
    p->lineage_drops = hl_metrics_counter(m, "hookline_ingress_lineage_dropped_total",
                                          "Lineage records that could not be queued or delivered",
                                          NULL);
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
                        "Records waiting in the producer (events and lineage)", NULL, queue_depth, p);
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
    p->ev.cur = gen_new(&p->ev, 1, errbuf, errcap);
    if (p->ev.cur == NULL) goto fail;
    p->lin.cur = gen_new(&p->lin, 1, errbuf, errcap);
    if (p->lin.cur == NULL) goto fail;
    if (pthread_create(&p->supervisor, NULL, supervisor_main, p) != 0) goto fail;
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
    rd_kafka_resp_err_t err = rd_kafka_producev(
        g->rk, RD_KAFKA_V_RKT(g->topic), RD_KAFKA_V_KEY(ev->key, ev->key_len),
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

/* Queues the event on the current events handle, refusing when it is fatal. The use count
 * covers the call only: the report reaches the waiter through the pool, not the handle. */
static int produce_current(ing_producer_t *p, const ing_event_t *ev, void *opaque)
{
    gen_t *g = gen_get(&p->ev);
    int rc = atomic_load(&g->fatal) ? HL_EAGAIN : produce(g, ev, opaque);
    gen_put(g);
    return rc;
}

void ing_producer_send(ing_producer_t *p, const ing_event_t *ev, bool wait, int64_t deadline_us,
                       ing_ack_t *ack)
{
    ack->partition = -1;
    ack->offset = -1;
    if (!wait) {
        ack->err = produce_current(p, ev, &FAST_TAG);
        return;
    }
    waiter_t *w = waiter_get(p);
    if (w == NULL) { /* every waiter busy or abandoned: refuse rather than queue */
        ack->err = HL_EAGAIN;
        return;
    }
    w->state = W_WAITING;
    w->produced_us = hl_mono_us();
    int rc = produce_current(p, ev, w);
    if (rc != 0) {
        waiter_put(p, w);
        ack->err = rc;
        return;
    }
    wait_ack(p, w, deadline_us, ack);
}

/* Takes n waiters, all or none; true when all were taken. */
static bool waiters_get(ing_producer_t *p, waiter_t **ws, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ws[i] = waiter_get(p);
        if (ws[i] != NULL) continue;
        while (i > 0) waiter_put(p, ws[--i]);
        return false;
    }
    return true;
}

void ing_producer_send_many(ing_producer_t *p, const ing_event_t *evs, size_t n, bool wait,
                            int64_t deadline_us, ing_ack_t *acks)
{
    for (size_t i = 0; i < n; i++) acks[i] = (ing_ack_t){HL_EAGAIN, -1, -1};
    if (!wait) {
        for (size_t i = 0; i < n; i++) acks[i].err = produce_current(p, &evs[i], &FAST_TAG);
        return;
    }
    waiter_t **ws = hl_xcalloc(n, sizeof(*ws));
    if (!waiters_get(p, ws, n)) {
        free(ws);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ws[i]->state = W_WAITING;
        ws[i]->produced_us = hl_mono_us();
        acks[i].err = produce_current(p, &evs[i], ws[i]);
        if (acks[i].err != 0) {
            waiter_put(p, ws[i]);
            ws[i] = NULL;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (ws[i] != NULL) wait_ack(p, ws[i], deadline_us, &acks[i]);
    free(ws);
}

void ing_producer_lineage(ing_producer_t *p, const char *key, const char *json, size_t len)
{
    gen_t *g = gen_get(&p->lin);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__FATAL;
    if (!atomic_load(&g->fatal))
        err = rd_kafka_producev(g->rk, RD_KAFKA_V_RKT(g->topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE((void *)json, len),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(&LINEAGE_TAG), RD_KAFKA_V_END);
    gen_put(g);
    if (err == RD_KAFKA_RESP_ERR__FATAL) lineage_park(p, key, strlen(key), json, len);
    else if (err != RD_KAFKA_RESP_ERR_NO_ERROR) hl_counter_inc(p->lineage_drops);
}

bool ing_producer_ready(const ing_producer_t *p)
{
    return atomic_load(&p->up) && !ing_producer_fatal(p);
}

bool ing_producer_fatal(const ing_producer_t *p)
{
    gen_t *g = gen_get((slot_t *)&p->ev);
    bool fatal = atomic_load(&g->fatal);
    gen_put(g);
    return fatal;
}

void ing_producer_inject_fatal(ing_producer_t *p, bool lineage, const char *reason)
{
    gen_t *g = gen_get(lineage ? &p->lin : &p->ev);
    rd_kafka_test_fatal_error(g->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason);
    gen_put(g);
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
    lineage_unpark(p);
    gen_t *e = gen_get(&p->ev);
    bool ok = rd_kafka_flush(e->rk, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
    gen_put(e);
    int left = timeout_ms - (int)((hl_mono_us() - t0) / 1000);
    gen_t *l = gen_get(&p->lin);
    ok = rd_kafka_flush(l->rk, left > 1000 ? left : 1000) == RD_KAFKA_RESP_ERR_NO_ERROR && ok;
    gen_put(l);
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
    if (p->lin.cur) lineage_unpark(p);
    for (parked_t *r = p->parked, *next; r != NULL; r = next) { /* no handle took them */
        next = r->next;
        hl_counter_inc(p->lineage_drops);
        free(r);
    }
    gen_free(p->lin.cur);
    /* Destroying the handle fails whatever is still queued; reports for abandoned waiters
     * are served during gen_free, so the pool is freed only afterwards. */
    gen_free(p->ev.cur);
    for (size_t i = 0; p->waiters && i < p->cfg->max_in_flight; i++) {
        pthread_mutex_destroy(&p->waiters[i].mu);
        pthread_cond_destroy(&p->waiters[i].cv);
    }
    free(p->waiters);
    pthread_mutex_destroy(&p->ev.mu);
    pthread_mutex_destroy(&p->lin.mu);
    pthread_mutex_destroy(&p->pool_mu);
    pthread_mutex_destroy(&p->park_mu);
    pthread_mutex_destroy(&p->stop_mu);
    pthread_cond_destroy(&p->stop_cv);
    free(p);
}
