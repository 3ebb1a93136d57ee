/* The generations of the producer's librdkafka handles. An idempotent producer that
 * librdkafka declares fatal (a leader change can desynchronise its sequence numbers) never
 * delivers again, so the supervisor thread builds a new generation, makes it current, and
 * retires the old one: it waits until no request thread is inside a call on the old handle
 * (each holds a use count while it produces), purges it so every outstanding delivery report
 * arrives as a failure, lets its poll thread serve those reports, and only then destroys it.
 * Request threads never wait for any of that; they see the old generation's fatal flag and
 * answer 503 until the new one is current. Lineage records that meet a fatal handle are
 * parked for its successor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"
#include "producer_impl.h"

char ing_lineage_tag, ing_fast_tag;

gen_t *ing_gen_get(slot_t *s)
{
    pthread_mutex_lock(&s->mu);
    gen_t *g = s->cur;
    atomic_fetch_add(&g->users, 1);
    pthread_mutex_unlock(&s->mu);
    return g;
}

void ing_gen_put(gen_t *g)
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
void ing_park_lineage(ing_producer_t *p, const void *key, size_t klen, const void *json, size_t len)
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
void ing_unpark_lineage(ing_producer_t *p)
{
    pthread_mutex_lock(&p->park_mu);
    parked_t *r = p->parked;
    p->parked = NULL;
    atomic_store(&p->nparked, 0);
    pthread_mutex_unlock(&p->park_mu);
    gen_t *g = ing_gen_get(&p->lin);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    while (r != NULL && err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        err = atomic_load(&g->fatal)
                  ? RD_KAFKA_RESP_ERR__FATAL
                  : rd_kafka_producev(g->rk, RD_KAFKA_V_RKT(g->topic),
                                      RD_KAFKA_V_KEY(r->data, r->klen),
                                      RD_KAFKA_V_VALUE(r->data + r->klen, r->len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_OPAQUE(&ing_lineage_tag), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) hl_counter_inc(p->lineage_drops);
        parked_t *next = r->next;
        free(r);
        r = next;
    }
    ing_gen_put(g);
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
    if (tag == &ing_lineage_tag) {
        if (m->err && fatal)
            ing_park_lineage(p, m->key, m->key_len, m->payload, m->len);
        else if (delivered)
            hl_counter_inc(p->lineage_drops);
        return;
    }
    rd_kafka_resp_err_t err = m->err ? m->err : fatal ? RD_KAFKA_RESP_ERR__FATAL : delivered;
    if (err) hl_counter_inc(p->delivery_errors);
    if (tag == &ing_fast_tag || tag == NULL) return;
    ing_waiter_report(p, tag, err, m->partition, m->offset);
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

/* The settings of both handles; they differ in linger, delivery timeout and compression. The
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
        "enable.idempotence", "true", "acks", "all", "linger.ms", linger,
        /* An event not acknowledged by the deadline is failed, so abandoned waiters return. */
        "message.timeout.ms", timeout, "queue.buffering.max.messages", qmax, "socket.nagle.disable",
        "true", "partitioner", "murmur2_random", "reconnect.backoff.ms", "50",
        "reconnect.backoff.max.ms", "1000",
        /* Lineage batches are JSON, 100 ms of it per produce request: lz4 shrinks what the
         * broker appends and replicates and what the auditor fetches. Events stay as received:
         * compressing them would add to the answer path. */
        "compression.type", lineage ? "lz4" : "none", NULL};
    rd_kafka_conf_t *conf = hl_kafka_conf(&cfg->kafka, defaults, errbuf, errcap);
    if (conf == NULL) return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    /* The lineage handle talks to the same broker: its librdkafka lines repeat the events'. */
    if (lineage) rd_kafka_conf_set_log_cb(conf, hl_kafka_log_debug);
    return conf;
}

void ing_gen_free(gen_t *g)
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

gen_t *ing_gen_new(slot_t *s, unsigned number, char *errbuf, size_t errcap)
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
    g->rk = hl_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (g->rk == NULL) {
        snprintf(errbuf, errcap, "kafka: %s", rkerr);
        goto fail;
    }
    g->topic = rd_kafka_topic_new(
        g->rk, s->lineage ? cfg->kafka.lineage_topic : cfg->kafka.events_topic, NULL);
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
    ing_gen_free(g);
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
    ing_gen_free(g);
}

/* Replaces a fatal generation. When no new handle can be built the old one stays current
 * (requests keep getting 503) and the next round tries again. Supervisor thread. */
static void replace(slot_t *s)
{
    gen_t *old = s->cur;
    char err[256] = "";
    gen_t *g = ing_gen_new(s, old->number + 1, err, sizeof(err));
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
        if (ok)
            hl_info("kafka reachable");
        else
            hl_warn("kafka unreachable or events topic missing");
    }
    atomic_store(&p->up, ok);
}

/* Replaces fatal handles as soon as the error callback wakes it, and checks the broker once
 * a second. */
void *ing_supervisor_main(void *arg)
{
    ing_producer_t *p = arg;
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->ev.cur->fatal)) replace(&p->ev);
        if (atomic_load(&p->lin.cur->fatal)) replace(&p->lin);
        if (!atomic_load(&p->lin.cur->fatal) && atomic_load(&p->nparked) > 0) ing_unpark_lineage(p);
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
