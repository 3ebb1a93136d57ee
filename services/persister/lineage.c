/* Lineage and dead letters. The DLQ is produced synchronously (the caller waits for the
 * acknowledgement before committing offsets past a poison record); lineage is asynchronous and
 * its delivery failures are counted, because the auditor reports a missing commit record as a
 * gap rather than the persister stalling on it. */
#include "lineage.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"

struct hl_lineage {
    const hl_persister_config_t *cfg; /* borrowed */
    rd_kafka_t *rk;                   /* owned producer */
    atomic_uint_fast64_t failed;      /* lineage records not delivered */
    size_t dlq_pending;               /* DLQ records awaiting their report */
    size_t dlq_failed;                /* DLQ records refused in the current wait */
};

/* Delivery reports run inside rd_kafka_poll/flush on the polling thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    hl_lineage_t *l = opaque;
    hl_row_t *row = m->_private; /* set for DLQ records only */
    if (row) {
        l->dlq_pending--;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) row->dlq_sent = 1;
        else l->dlq_failed++;
        if (m->err)
            hl_error("dead-letter produce failed: %s", rd_kafka_err2str(m->err));
        return;
    }
    if (m->err) {
        atomic_fetch_add(&l->failed, 1);
        hl_warn("lineage produce failed: %s", rd_kafka_err2str(m->err));
    }
}

hl_lineage_t *hl_lineage_new(const hl_persister_config_t *cfg, char *errbuf, size_t errcap)
{
    static const char *const defaults[] = {
        "acks", "all",
        "enable.idempotence", "true",
        "linger.ms", "5",
        "compression.type", "lz4",
        /* Bounded: a stalled broker makes queueing wait instead of growing memory. */
        "queue.buffering.max.kbytes", "65536",
        "message.timeout.ms", "60000",
        NULL,
    };
    rd_kafka_conf_t *conf = hl_kafka_conf(&cfg->kafka, defaults, errbuf, errcap);
    if (!conf) return NULL;
    hl_lineage_t *l = hl_xcalloc(1, sizeof(*l));
    l->cfg = cfg;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, l);
    l->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errcap);
    if (!l->rk) {
        rd_kafka_conf_destroy(conf);
        free(l);
        return NULL;
    }
    return l;
}

void hl_lineage_free(hl_lineage_t *l, int timeout_ms)
{
    if (!l) return;
    if (rd_kafka_flush(l->rk, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hl_warn("lineage: %d records still queued at exit", rd_kafka_outq_len(l->rk));
    rd_kafka_destroy(l->rk);
    free(l);
}

void hl_lineage_poll(hl_lineage_t *l) { rd_kafka_poll(l->rk, 0); }

void hl_lineage_settle(hl_lineage_t *l)
{
    while (l->dlq_pending > 0) rd_kafka_poll(l->rk, 100);
}

uint64_t hl_lineage_failed(const hl_lineage_t *l) { return atomic_load(&l->failed); }

int64_t hl_lineage_queue_len(void *l) { return rd_kafka_outq_len(((hl_lineage_t *)l)->rk); }

/* Appends `,"key":"escaped value"` to buf. */
static size_t put_str(char *buf, size_t cap, size_t len, const char *key, const char *v)
{
    if (len >= cap) return len;
    int n = snprintf(buf + len, cap - len, ",\"%s\":\"", key);
    if (n < 0 || (size_t)n >= cap - len) return cap;
    len += (size_t)n;
    len += hl_json_escape(buf + len, cap - len, v, strlen(v));
    if (len + 1 >= cap) return cap;
    buf[len++] = '"';
    buf[len] = '\0';
    return len;
}

static size_t put_int(char *buf, size_t cap, size_t len, const char *key, int64_t v)
{
    if (len >= cap) return len;
    int n = snprintf(buf + len, cap - len, ",\"%s\":%" PRId64, key, v);
    return (n < 0 || (size_t)n >= cap - len) ? cap : len + (size_t)n;
}

static size_t put_raw(char *buf, size_t cap, size_t len, const char *text)
{
    if (len >= cap) return len;
    int n = snprintf(buf + len, cap - len, "%s", text);
    return (n < 0 || (size_t)n >= cap - len) ? cap : len + (size_t)n;
}

int hl_lineage_format(char *buf, size_t cap, const hl_row_t *r, int64_t ts_us,
                      int64_t committed_us, int attempts)
{
    int stored = r->status == HL_REC_OK;
    size_t len = put_raw(buf, cap, 0, stored ? "{\"v\":1,\"stage\":\"persisted\""
                                             : "{\"v\":1,\"stage\":\"dead_lettered\"");
    len = put_str(buf, cap, len, "request_id", r->request_id);
    len = put_int(buf, cap, len, "ts_us", ts_us);
    len = put_str(buf, cap, len, "source", r->source);
    len = put_str(buf, cap, len, "message_id", r->message_id);
    len = put_str(buf, cap, len, "event_type", r->event_type);
    if (r->received_us > 0) len = put_int(buf, cap, len, "received_us", r->received_us);
    len = put_int(buf, cap, len, "partition", r->partition);
    len = put_int(buf, cap, len, "offset", r->offset);
    len = put_int(buf, cap, len, "consumed_us", r->consumed_us);
    if (stored) {
        len = put_int(buf, cap, len, "committed_us", committed_us);
        if (r->duplicate) len = put_raw(buf, cap, len, ",\"row_id\":null,\"duplicate\":true");
        else {
            len = put_int(buf, cap, len, "row_id", r->row_id);
            len = put_raw(buf, cap, len, ",\"duplicate\":false");
        }
    } else {
        len = put_str(buf, cap, len, "error_code", hl_rec_status_code(r->status));
        len = put_int(buf, cap, len, "attempts", attempts);
    }
    len = put_raw(buf, cap, len, "}");
    return len >= cap ? HL_ETOOBIG : (int)len;
}

/* Produces one record, waiting (serving reports) while the local queue is full. */
static rd_kafka_resp_err_t produce(hl_lineage_t *l, const char *topic, const void *key,
                                   size_t klen, const void *val, size_t vlen,
                                   rd_kafka_headers_t *hdrs, void *opaque)
{
    for (int tries = 0;; tries++) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            l->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
            RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= 100) return err;
        rd_kafka_poll(l->rk, 100);
    }
}

void hl_lineage_row(hl_lineage_t *l, const hl_row_t *row, int64_t committed_us, int attempts)
{
    char buf[2048];
    int64_t now = hl_now_us();
    int n = hl_lineage_format(buf, sizeof(buf), row, now, committed_us, attempts);
    if (n < 0) {
        atomic_fetch_add(&l->failed, 1);
        return;
    }
    const char *key = row->request_id[0] ? row->request_id : NULL;
    rd_kafka_resp_err_t err = produce(l, l->cfg->kafka.lineage_topic, key, key ? strlen(key) : 0,
                                      buf, (size_t)n, NULL, NULL);
    if (err) {
        atomic_fetch_add(&l->failed, 1);
        hl_warn("lineage produce failed: %s", rd_kafka_err2str(err));
    }
}

/* The original headers plus the error headers of DESIGN.md, owned by the caller. */
static rd_kafka_headers_t *dlq_headers(const hl_row_t *r, int attempts)
{
    rd_kafka_headers_t *src = NULL, *h;
    if (r->msg && rd_kafka_message_headers(r->msg, &src) == RD_KAFKA_RESP_ERR_NO_ERROR)
        h = rd_kafka_headers_copy(src);
    else
        h = rd_kafka_headers_new(6);
    char num[24];
    rd_kafka_header_add(h, "hl-error", -1, hl_rec_status_code(r->status), -1);
    rd_kafka_header_add(h, "hl-error-detail", -1, r->detail, -1);
    snprintf(num, sizeof(num), "%d", attempts);
    rd_kafka_header_add(h, "hl-attempts", -1, num, -1);
    snprintf(num, sizeof(num), "%" PRId64, hl_now_us());
    rd_kafka_header_add(h, "hl-failed-us", -1, num, -1);
    return h;
}

int hl_lineage_dead_letter(hl_lineage_t *l, hl_row_t **rows, size_t n, int attempts,
                           int timeout_ms)
{
    l->dlq_failed = 0;
    for (size_t i = 0; i < n; i++) {
        hl_row_t *r = rows[i];
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
    while (l->dlq_pending > 0 && hl_mono_us() < deadline) rd_kafka_poll(l->rk, 50);
    if (l->dlq_pending > 0) {
        /* Reports may still arrive later and set dlq_sent on rows of this batch; the batch
         * is retried (not released) while pending, so the pointers stay valid. */
        return HL_EKAFKA;
    }
    return l->dlq_failed ? HL_EKAFKA : 0;
}
