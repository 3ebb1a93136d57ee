/* Lineage and dead letters. The DLQ is produced synchronously (the caller waits for the
 * acknowledgement before committing offsets past a poison record); lineage is asynchronous:
 * each record belongs to a tracked batch (lineage_track.h) whose delivery moves the partition's
 * lineage_offset, so what a crash or a lost record leaves undelivered is produced again from
 * Postgres at the next assignment instead of stalling the persister now.
 *
 * A handle that librdkafka declares fatal (a broker failover can desynchronise an idempotent
 * producer's sequence numbers) is replaced on the polling thread, the only one using it: a
 * new handle becomes current, the old one is purged and its reports served, its lineage
 * records produced again on the new handle and its DLQ records counted as not acknowledged
 * (the batch is retried and sends them again), then it is destroyed. */
#include "lineage.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/kafka.h"
#include "hl/lineage_record.h"
#include "hl/log.h"
#include "hl/util.h"

struct pst_lineage {
    const pst_config_t *cfg;     /* borrowed */
    rd_kafka_t *rk;              /* owned producer; replaced when fatal (renew) */
    hl_counter_t *restarts;      /* borrowed, may be NULL: handles replaced */
    pst_ltrack_t *track;         /* owned: batches whose lineage is in flight */
    size_t in_flight;            /* lineage records awaiting their report */
    atomic_uint_fast64_t failed; /* lineage records not delivered */
    size_t dlq_pending;          /* DLQ records awaiting their report */
    size_t dlq_failed;           /* DLQ records refused in the current wait */
};

/* A lineage record whose delivery timed out (the broker was away for message.timeout.ms) is
 * produced again from the report's own copy, as often as it takes: the count in flight stays
 * the same, and its batch keeps the partition's mark until it is delivered. */
static bool produce_again(pst_lineage_t *l, rd_kafka_t *from, const rd_kafka_message_t *m,
                          rd_kafka_resp_err_t why, pst_ltrack_batch_t *tb)
{
    /* A report from a replaced handle (renew) fails whatever it held: the current one sends it.
     * So is a record reported stored without an offset (hl_kafka_delivery_err). */
    if (why != RD_KAFKA_RESP_ERR__MSG_TIMED_OUT && why != RD_KAFKA_RESP_ERR__INCONSISTENT &&
        from == l->rk)
        return false;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        l->rk, RD_KAFKA_V_TOPIC(l->cfg->kafka.lineage_topic), RD_KAFKA_V_KEY(m->key, m->key_len),
        RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(tb), RD_KAFKA_V_END);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Delivery reports run inside rd_kafka_poll/flush on the polling thread. DLQ records carry
 * their row as opaque, lineage records their tracked batch; the topic tells them apart (the
 * configuration keeps the two topics distinct). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    pst_lineage_t *l = opaque;
    if (strcmp(rd_kafka_topic_name(m->rkt), l->cfg->kafka.dlq_topic) == 0) {
        pst_row_t *row = m->_private;
        rd_kafka_resp_err_t err = hl_kafka_delivery_err(m);
        l->dlq_pending--;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            row->dlq_sent = 1;
        else
            l->dlq_failed++;
        if (err) hl_error("dead-letter produce failed: %s", rd_kafka_err2str(err));
        return;
    }
    pst_ltrack_batch_t *tb = m->_private;
    rd_kafka_resp_err_t err = hl_kafka_delivery_err(m);
    if (err) {
        hl_warn("lineage produce failed: %s", rd_kafka_err2str(err));
        if (produce_again(l, rk, m, err, tb)) return;
        atomic_fetch_add(&l->failed, 1);
    }
    l->in_flight--;
    pst_ltrack_report(l->track, tb, err == RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* A new producer handle for l; NULL with errbuf filled. */
static rd_kafka_t *new_handle(pst_lineage_t *l, char *errbuf, size_t errcap)
{
    static const char *const defaults[] = {
        "acks",
        "all",
        "enable.idempotence",
        "true",
        "linger.ms",
        "5",
        "compression.type",
        "lz4",
        /* The ingress's partitioner: every lineage record of a request, keyed by its request id,
         * lands in one partition, so in one chain of the auditor's (which counts a request's
         * outcome only in the request's own chain). */
        "partitioner",
        "murmur2_random",
        /* Bounded: a stalled broker makes queueing wait instead of growing memory. */
        "queue.buffering.max.kbytes",
        "65536",
        "message.timeout.ms",
        "60000",
        NULL,
    };
    rd_kafka_conf_t *conf = hl_kafka_conf(&l->cfg->kafka, defaults, errbuf, errcap);
    if (!conf) return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, l);
    return hl_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errcap);
}

pst_lineage_t *pst_lineage_new(const pst_config_t *cfg, char *errbuf, size_t errcap)
{
    pst_lineage_t *l = hl_xcalloc(1, sizeof(*l));
    l->cfg = cfg;
    l->rk = new_handle(l, errbuf, errcap);
    if (!l->rk) {
        free(l);
        return NULL;
    }
    l->track = pst_ltrack_new();
    return l;
}

void pst_lineage_count_restarts(pst_lineage_t *l, hl_counter_t *restarts)
{
    l->restarts = restarts;
}

/* Replaces the handle when librdkafka has declared it fatal; a new one that cannot be built
 * is tried again at the next poll (meanwhile produce calls fail and are counted as before).
 * Polling thread. */
static void renew(pst_lineage_t *l)
{
    char why[256], err[256] = "";
    rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(l->rk, why, sizeof(why));
    if (fatal == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    rd_kafka_t *fresh = new_handle(l, err, sizeof(err));
    if (!fresh) {
        hl_error("kafka producer fatal (%s: %s) and no new one: %s", rd_kafka_err2name(fatal), why,
                 err);
        return;
    }
    rd_kafka_t *old = l->rk;
    l->rk = fresh;
    if (l->restarts) hl_counter_inc(l->restarts);
    hl_warn("kafka producer fatal error (%s: %s); replaced, its records sent again",
            rd_kafka_err2name(fatal), why);
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    int64_t deadline = hl_mono_us() + 10 * 1000000LL;
    while (rd_kafka_outq_len(old) > 0 && hl_mono_us() < deadline) rd_kafka_poll(old, 50);
    rd_kafka_destroy(old);
}

/* Serves the current handle's reports for up to ms, replacing it first if it is fatal. */
static void poll_ms(pst_lineage_t *l, int ms)
{
    renew(l);
    rd_kafka_poll(l->rk, ms);
}

void pst_lineage_inject_fatal(pst_lineage_t *l, const char *reason)
{
    rd_kafka_test_fatal_error(l->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, reason);
}

void pst_lineage_free(pst_lineage_t *l, int timeout_ms)
{
    if (!l) return;
    renew(l);
    if (rd_kafka_flush(l->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hl_warn("lineage: %d records still queued at exit", rd_kafka_outq_len(l->rk));
    rd_kafka_destroy(l->rk);
    pst_ltrack_free(l->track); /* after the last report */
    free(l);
}

pst_ltrack_t *pst_lineage_track(pst_lineage_t *l)
{
    return l->track;
}

void pst_lineage_poll(pst_lineage_t *l)
{
    poll_ms(l, 0);
}

bool pst_lineage_flush(pst_lineage_t *l, int timeout_ms)
{
    int64_t deadline = hl_mono_us() + (int64_t)timeout_ms * 1000;
    while (l->in_flight > 0 && hl_mono_us() < deadline) poll_ms(l, 20);
    return l->in_flight == 0;
}

void pst_lineage_settle(pst_lineage_t *l)
{
    while (l->dlq_pending > 0) poll_ms(l, 100);
}

uint64_t pst_lineage_failed(const pst_lineage_t *l)
{
    return atomic_load(&l->failed);
}

int64_t pst_lineage_queue_len(void *l)
{
    return rd_kafka_outq_len(((pst_lineage_t *)l)->rk);
}

int pst_lineage_format(char *buf, size_t cap, const pst_row_t *r, int64_t ts_us,
                       int64_t committed_us, int attempts)
{
    bool stored = r->status == PST_REC_OK;
    hl_lineage_rec_t l;
    hl_lineage_rec_init(&l, stored ? HL_STAGE_PERSISTED : HL_STAGE_DEAD_LETTERED);
    hl_strlcpy(l.request_id, r->request_id, sizeof l.request_id);
    l.ts_us = ts_us;
    HL_LINEAGE_SET(&l, source, r->source);
    HL_LINEAGE_SET(&l, message_id, r->message_id);
    HL_LINEAGE_SET(&l, event_type, r->event_type);
    if (r->received_us > 0) l.received_us = r->received_us;
    l.partition = r->partition;
    l.offset = r->offset;
    if (r->consumed_us > 0) l.consumed_us = r->consumed_us;
    if (stored) {
        l.committed_us = committed_us;
        l.duplicate = r->duplicate ? 1 : 0;
        if (!r->duplicate) l.row_id = r->row_id; /* a duplicate's is null */
    } else {
        HL_LINEAGE_SET(&l, error_code, pst_rec_status_code(r->status));
        if (attempts > 0) l.attempts = attempts;
    }
    memcpy(l.body_sha256, r->body_sha256, sizeof l.body_sha256);
    return hl_lineage_write(&l, buf, cap);
}

/* Produces one record, waiting (serving reports) while the local queue is full. */
static rd_kafka_resp_err_t produce(pst_lineage_t *l, const char *topic, const void *key,
                                   size_t klen, const void *val, size_t vlen,
                                   rd_kafka_headers_t *hdrs, void *opaque)
{
    for (int tries = 0;; tries++) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            l->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
            RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__FATAL && tries == 0) {
            renew(l); /* the handle failed since the last poll: once more on its successor */
            continue;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= 100) return err;
        poll_ms(l, 100);
    }
}

void pst_lineage_row(pst_lineage_t *l, pst_ltrack_batch_t *tb, const pst_row_t *row, int64_t ts_us,
                     int64_t committed_us, int attempts)
{
    char buf[PST_LINEAGE_MAX];
    int n = pst_lineage_format(buf, sizeof(buf), row, ts_us > 0 ? ts_us : hl_now_us(), committed_us,
                               attempts);
    pst_ltrack_expect(tb);
    if (n < 0) {
        /* Cannot happen within PST_LINEAGE_MAX; a record that can never be written must not hold
         * the partition's mark back either, so it counts as delivered. */
        atomic_fetch_add(&l->failed, 1);
        pst_ltrack_report(l->track, tb, true);
        return;
    }
    const char *key = row->request_id[0] ? row->request_id : NULL;
    rd_kafka_resp_err_t err = produce(l, l->cfg->kafka.lineage_topic, key, key ? strlen(key) : 0,
                                      buf, (size_t)n, NULL, tb);
    if (err) {
        atomic_fetch_add(&l->failed, 1);
        hl_warn("lineage produce failed: %s", rd_kafka_err2str(err));
        pst_ltrack_report(l->track, tb, false);
        return;
    }
    l->in_flight++;
}

/* The original headers plus the error headers of DESIGN.md, owned by the caller. */
static rd_kafka_headers_t *dlq_headers(const pst_row_t *r, int attempts)
{
    rd_kafka_headers_t *src = NULL, *h;
    if (r->msg && rd_kafka_message_headers(r->msg, &src) == RD_KAFKA_RESP_ERR_NO_ERROR)
        h = rd_kafka_headers_copy(src);
    else
        h = rd_kafka_headers_new(6);
    char num[24];
    rd_kafka_header_add(h, HL_HDR_ERROR, -1, pst_rec_status_code(r->status), -1);
    rd_kafka_header_add(h, HL_HDR_ERROR_DETAIL, -1, r->detail, -1);
    snprintf(num, sizeof(num), "%d", attempts);
    rd_kafka_header_add(h, HL_HDR_ATTEMPTS, -1, num, -1);
    snprintf(num, sizeof(num), "%" PRId64, hl_now_us());
    rd_kafka_header_add(h, HL_HDR_FAILED_US, -1, num, -1);
    return h;
}

int pst_lineage_dead_letter(pst_lineage_t *l, pst_row_t **rows, size_t n, int attempts,
                            int timeout_ms)
{
    l->dlq_failed = 0;
    for (size_t i = 0; i < n; i++) {
        pst_row_t *r = rows[i];
        if (r->dlq_sent) continue;
        rd_kafka_headers_t *h = dlq_headers(r, attempts);
        const rd_kafka_message_t *m = r->msg;
        rd_kafka_resp_err_t err =
            produce(l, l->cfg->kafka.dlq_topic, m ? m->key : NULL, m ? m->key_len : 0,
                    m ? m->payload : NULL, m ? m->len : 0, h, r);
        if (err) {
            rd_kafka_headers_destroy(h); /* not taken on failure */
            hl_error("dead-letter produce failed: %s", rd_kafka_err2str(err));
            l->dlq_failed++;
            continue;
        }
        l->dlq_pending++;
    }
    int64_t deadline = hl_mono_us() + (int64_t)timeout_ms * 1000;
    while (l->dlq_pending > 0 && hl_mono_us() < deadline) poll_ms(l, 50);
    if (l->dlq_pending > 0) {
        /* Reports may still arrive later and set dlq_sent on rows of this batch; the batch
         * is retried (not released) while pending, so the pointers stay valid. */
        return HL_EKAFKA;
    }
    return l->dlq_failed ? HL_EKAFKA : 0;
}
