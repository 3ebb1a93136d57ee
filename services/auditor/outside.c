/* The checkpoint topic: publishing signed checkpoints, and reading them back. */
#include "outside.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"

struct aud_ckpub {
    rd_kafka_t *rk;
    char *topic;
};

/* One delivery waited for; the report may come on any thread that polls the handle. */
typedef struct {
    atomic_int done; /* 0 waiting, 1 delivered, 2 failed */
    rd_kafka_resp_err_t err;
} delivery_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivery_t *d = m->_private;
    if (!d) return;
    d->err = hl_kafka_delivery_err(m);
    atomic_store(&d->done, d->err ? 2 : 1);
}

aud_ckpub_t *aud_ckpub_new(const hl_kafka_config_t *k, const char *topic, char *errbuf,
                           size_t errcap)
{
    static const char *const defaults[] = {"acks", "all", "enable.idempotence", "true", "linger.ms",
                                           "0",    NULL};
    rd_kafka_conf_t *conf = hl_kafka_conf(k, defaults, errbuf, errcap);
    if (!conf) return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = hl_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errcap);
    if (!rk) return NULL;
    aud_ckpub_t *p = hl_xcalloc(1, sizeof *p);
    p->rk = rk;
    p->topic = hl_xstrdup(topic);
    return p;
}

void aud_ckpub_free(aud_ckpub_t *p)
{
    if (!p) return;
    (void)rd_kafka_flush(p->rk, 5000);
    rd_kafka_destroy(p->rk);
    free(p->topic);
    free(p);
}

int aud_ckpub_send(aud_ckpub_t *p, const aud_checkpoint_t *cp, int timeout_ms, char *errbuf,
                   size_t errcap)
{
    char json[512], key[16];
    delivery_t *d = hl_xcalloc(1, sizeof *d);
    int n = aud_checkpoint_json(cp, json, sizeof json);
    snprintf(key, sizeof key, "%" PRId32, cp->chain);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(p->topic), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE(json, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (err) {
        snprintf(errbuf, errcap, "checkpoint topic %s: %s", p->topic, rd_kafka_err2str(err));
        free(d);
        return HL_EIO;
    }
    int64_t until = hl_mono_us() + (int64_t)timeout_ms * 1000;
    while (atomic_load(&d->done) == 0 && hl_mono_us() < until) rd_kafka_poll(p->rk, 50);
    int state = atomic_load(&d->done);
    if (state == 0) {
        /* The report may still come; the record stays the handle's to deliver, so the state
         * it points at stays allocated (a few bytes per timed-out checkpoint). */
        snprintf(errbuf, errcap, "checkpoint topic %s: no acknowledgement in %d ms", p->topic,
                 timeout_ms);
        return HL_ETIMEDOUT;
    }
    int rc = state == 1 ? 0 : HL_EIO;
    if (rc) snprintf(errbuf, errcap, "checkpoint topic %s: %s", p->topic, rd_kafka_err2str(d->err));
    free(d);
    return rc;
}

/* One config entry's value checked against what it must be; appends to why when it differs. */
static void want(const rd_kafka_ConfigEntry_t *const *e, size_t n, const char *name,
                 const char *value, bool absent_ok, char *why, size_t cap, int *bad)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rd_kafka_ConfigEntry_name(e[i]), name) != 0) continue;
        const char *v = rd_kafka_ConfigEntry_value(e[i]);
        if (v && strcmp(v, value) == 0) return;
        size_t l = strlen(why);
        snprintf(why + l, cap - l, "%s%s is %s, must be %s", *bad ? "; " : "", name,
                 v ? v : "(unset)", value);
        (*bad)++;
        return;
    }
    if (absent_ok) return;
    size_t l = strlen(why);
    snprintf(why + l, cap - l, "%s%s not reported, must be %s", *bad ? "; " : "", name, value);
    (*bad)++;
}

int aud_ckpub_check_topic(aud_ckpub_t *p, int timeout_ms, char *why, size_t cap)
{
    const rd_kafka_metadata_t *md = NULL;
    int bad = 0, rc = HL_EIO;
    why[0] = '\0';
    rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, p->topic, NULL);
    rd_kafka_resp_err_t err =
        t ? rd_kafka_metadata(p->rk, 0, t, &md, timeout_ms) : RD_KAFKA_RESP_ERR__INVALID_ARG;
    if (!err && (md->topic_cnt != 1 || md->topics[0].err))
        err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (err) {
        snprintf(why, cap, "checkpoint topic %s: %s", p->topic, rd_kafka_err2str(err));
        goto out;
    }
    if (md->topics[0].partition_cnt != 1) {
        snprintf(why, cap, "partitions is %d, must be 1", md->topics[0].partition_cnt);
        bad++;
    }
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, p->topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(p->rk);
    rd_kafka_DescribeConfigs(p->rk, &res, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms);
    const rd_kafka_DescribeConfigs_result_t *result =
        ev ? rd_kafka_event_DescribeConfigs_result(ev) : NULL;
    size_t nres = 0, n = 0;
    const rd_kafka_ConfigResource_t **rs =
        result ? rd_kafka_DescribeConfigs_result_resources(result, &nres) : NULL;
    if (!ev || rd_kafka_event_error(ev) || nres != 1 || rd_kafka_ConfigResource_error(rs[0])) {
        size_t l = strlen(why);
        snprintf(why + l, cap - l, "%scannot describe its configuration: %s", bad ? "; " : "",
                 !ev                        ? "no answer in time"
                 : rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev)
                 : nres == 1                ? rd_kafka_ConfigResource_error_string(rs[0])
                                            : "no resource in the answer");
    } else {
        const rd_kafka_ConfigEntry_t **e = rd_kafka_ConfigResource_configs(rs[0], &n);
        want(e, n, "retention.ms", "-1", false, why, cap, &bad);
        want(e, n, "cleanup.policy", "delete", false, why, cap, &bad);
        rc = bad ? HL_EINVAL : 0;
    }
    if (bad) rc = HL_EINVAL;
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
out:
    if (md) rd_kafka_metadata_destroy(md);
    if (t) rd_kafka_topic_destroy(t);
    return rc;
}

static int seal_cmp(const void *x, const void *y)
{
    const aud_checkpoint_t *a = x, *b = y;
    if (a->chain != b->chain) return a->chain < b->chain ? -1 : 1;
    if (a->seq != b->seq) return a->seq < b->seq ? -1 : 1;
    return 0;
}

void aud_seals_add(aud_seals_t *s, const aud_checkpoint_t *cp)
{
    size_t at = s->n;
    while (at > 0 && seal_cmp(&s->cps[at - 1], cp) > 0) at--;
    if (at > 0 && seal_cmp(&s->cps[at - 1], cp) == 0) return; /* that seq is sealed already */
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->cps = hl_xrealloc(s->cps, s->cap * sizeof *s->cps);
    }
    memmove(&s->cps[at + 1], &s->cps[at], (s->n - at) * sizeof *s->cps);
    s->cps[at] = *cp;
    s->n++;
}

void aud_seals_free(aud_seals_t *s)
{
    free(s->cps);
    memset(s, 0, sizeof *s);
}

const aud_checkpoint_t *aud_seals_chain(const aud_seals_t *s, int32_t chain, size_t *n)
{
    size_t i = 0, j;
    while (i < s->n && s->cps[i].chain < chain) i++;
    for (j = i; j < s->n && s->cps[j].chain == chain; j++) {
    }
    *n = j - i;
    return *n ? &s->cps[i] : NULL;
}

static void take(aud_seals_t *s, const aud_keyring_t *ring, const rd_kafka_message_t *m)
{
    aud_checkpoint_t cp;
    if (aud_checkpoint_parse(m->payload, m->len, &cp) != 0 || aud_keyring_verify(ring, &cp) != 0) {
        s->refused++;
        hl_warn("checkpoint topic: offset %" PRId64 " is not a checkpoint signed by a known key",
                m->offset);
        return;
    }
    aud_seals_add(s, &cp);
}

int aud_seals_read(const hl_kafka_config_t *k, const char *topic, const aud_keyring_t *ring,
                   int timeout_ms, aud_seals_t *out, char *errbuf, size_t errcap)
{
    static const char *const defaults[] = {
        "enable.auto.commit",           "false", "enable.partition.eof", "true", "group.id",
        "hookline-auditor-checkpoints", NULL};
    int64_t lo = 0, hi = 0, until = hl_mono_us() + (int64_t)timeout_ms * 1000;
    int rc = 0;
    memset(out, 0, sizeof *out);
    rd_kafka_conf_t *conf = hl_kafka_conf(k, defaults, errbuf, errcap);
    if (!conf) return HL_EIO;
    rd_kafka_conf_set_log_cb(conf, hl_kafka_log_debug);
    rd_kafka_t *rk = hl_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errcap);
    if (!rk) return HL_EIO;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, timeout_ms);
    if (err) {
        snprintf(errbuf, errcap, "checkpoint topic %s: %s", topic, rd_kafka_err2str(err));
        rc = err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? HL_ENOTFOUND : HL_EIO;
        goto out;
    }
    if (hi <= lo) goto out;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset =
        hi - lo > AUD_SEALS_WINDOW ? hi - AUD_SEALS_WINDOW : lo;
    err = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        snprintf(errbuf, errcap, "checkpoint topic %s: %s", topic, rd_kafka_err2str(err));
        rc = HL_EIO;
        goto out;
    }
    for (int64_t next = 0; next < hi;) {
        if (hl_mono_us() >= until) {
            snprintf(errbuf, errcap,
                     "checkpoint topic %s: not read to its end (%" PRId64 ") in %d ms", topic, hi,
                     timeout_ms);
            rc = HL_ETIMEDOUT;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            next = m->offset;
        } else if (m->err) {
            snprintf(errbuf, errcap, "checkpoint topic %s: %s", topic, rd_kafka_message_errstr(m));
            rc = HL_EIO;
            next = hi;
        } else {
            take(out, ring, m);
            next = m->offset + 1;
        }
        rd_kafka_message_destroy(m);
    }
out:
    (void)rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (rc) aud_seals_free(out);
    return rc;
}
