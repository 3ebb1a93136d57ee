/* The tail since the newest outside checkpoint, held to the lineage topic (vouch.h). */
#include "vouch.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/util.h"
#include "hl/lineage_record.h"
#include "store.h"
#include "verify.h"

#define VOUCH_PAGE "5000"

typedef struct {
    rd_kafka_t *rk;
    int64_t until_us;
    int64_t hi; /* the partition's end offset when opened */
} reader_t;

static int reader_open(reader_t *rd, const hl_kafka_config_t *k, const char *topic, int32_t chain,
                       int64_t start, int timeout_ms, int64_t *lo, char *errbuf, size_t errcap)
{
    static const char *const defaults[] = {
        "enable.auto.commit",     "false", "enable.partition.eof", "false", "group.id",
        "hookline-auditor-vouch", NULL};
    int64_t hi = 0;
    rd->hi = 0;
    rd->until_us = hl_mono_us() + (int64_t)timeout_ms * 1000;
    rd_kafka_conf_t *conf = hl_kafka_conf(k, defaults, errbuf, errcap);
    if (!conf) return HL_EIO;
    rd_kafka_conf_set_log_cb(conf, hl_kafka_log_debug);
    rd->rk = hl_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errcap);
    if (!rd->rk) return HL_EIO;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rd->rk, topic, chain, lo, &hi, timeout_ms);
    rd->hi = hi;
    if (!err) {
        rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, chain)->offset = start;
        err = rd_kafka_assign(rd->rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
    }
    if (err) {
        snprintf(errbuf, errcap, "lineage topic %s [%d]: %s", topic, chain, rd_kafka_err2str(err));
        return HL_EIO;
    }
    return 0;
}

static void reader_close(reader_t *rd)
{
    if (!rd->rk) return;
    (void)rd_kafka_consumer_close(rd->rk);
    rd_kafka_destroy(rd->rk);
    rd->rk = NULL;
}

/* The next record, NULL when none came in time or on an error. */
static rd_kafka_message_t *reader_next(reader_t *rd)
{
    while (hl_mono_us() < rd->until_us) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rd->rk, 100);
        if (!m) continue;
        if (!m->err) return m;
        hl_warn("vouch: lineage topic: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return NULL;
}

/* A record the writer stores no row for: refused by validation, or an outcome naming its
 * Kafka record (a repeat of one stored is skipped). */
static bool makes_no_row(const rd_kafka_message_t *m)
{
    hl_lineage_rec_t rec;
    const char *why;
    if (hl_lineage_parse(m->payload, m->len, &rec, &why) != 0) return true;
    return (rec.stage == HL_STAGE_PERSISTED || rec.stage == HL_STAGE_DEAD_LETTERED) &&
           rec.partition != HL_LINEAGE_ABSENT && rec.offset != HL_LINEAGE_ABSENT;
}

static void bad(aud_vouch_t *out, int64_t seq, const char *reason, int64_t offset)
{
    out->bad_seq = seq;
    out->reason = reason;
    out->offset = offset;
}

/* Reads one page of rows (seq, lineage_offset, record) after `after`. NULL on error. */
static PGresult *rows_after(PGconn *c, int32_t chain, int64_t after, int64_t head_seq, char *errbuf,
                            size_t errcap)
{
    char ch[16], a[24], h[24];
    const char *p[3] = {ch, a, h};
    snprintf(ch, sizeof ch, "%" PRId32, chain);
    snprintf(a, sizeof a, "%" PRId64, after);
    snprintf(h, sizeof h, "%" PRId64, head_seq);
    return hl_pg_select(c,
                        "SELECT seq, lineage_offset, record FROM lineage"
                        " WHERE chain = $1::int AND seq > $2::bigint AND seq <= $3::bigint"
                        " ORDER BY seq LIMIT " VOUCH_PAGE,
                        3, p, "vouch", errbuf, errcap);
}

/* Matches the rows after seq `after` against the records from offset `start` on. */
static int match(PGconn *c, reader_t *rd, int32_t chain, int64_t after, int64_t head_seq,
                 int64_t start, aud_vouch_t *out, char *errbuf, size_t errcap)
{
    int64_t expect = start;
    while (after < head_seq) {
        PGresult *r = rows_after(c, chain, after, head_seq, errbuf, errcap);
        if (!r) return HL_EPG;
        int n = PQntuples(r);
        for (int i = 0; i < n && !out->bad_seq; i++) {
            int64_t seq = 0, off = 0;
            if (hl_parse_i64(PQgetvalue(r, i, 0), 1, INT64_MAX, &seq) ||
                hl_parse_i64(PQgetvalue(r, i, 1), 0, INT64_MAX, &off)) {
                bad(out, after + 1, "offset_order", -1);
                break;
            }
            after = seq;
            if (off < expect) {
                bad(out, seq, "offset_order", off);
                break;
            }
            if (off >= rd->hi) { /* the topic never held a record there */
                bad(out, seq, "record_not_found", off);
                break;
            }
            for (;;) {
                rd_kafka_message_t *m = reader_next(rd);
                if (!m) {
                    bad(out, seq, "topic_unreadable", expect);
                    break;
                }
                int64_t mo = m->offset;
                if (mo < off) {
                    bool skip_ok = makes_no_row(m);
                    rd_kafka_message_destroy(m);
                    if (!skip_ok) {
                        bad(out, seq, "row_missing", mo);
                        break;
                    }
                    continue;
                }
                size_t len = (size_t)PQgetlength(r, i, 2);
                bool same =
                    mo == off && m->len == len && memcmp(m->payload, PQgetvalue(r, i, 2), len) == 0;
                rd_kafka_message_destroy(m);
                if (mo != off)
                    bad(out, seq, "record_not_found", off);
                else if (!same)
                    bad(out, seq, "record_mismatch", off);
                expect = off + 1;
                break;
            }
        }
        PQclear(r);
        if (n == 0 || out->bad_seq) break;
    }
    return 0;
}

int aud_vouch_tail(PGconn *c, const hl_kafka_config_t *k, const char *topic, int32_t chain,
                   const aud_checkpoint_t *from, int64_t head_seq, int timeout_ms, aud_vouch_t *out,
                   char *errbuf, size_t errcap)
{
    int64_t from_seq = from ? from->seq : 0;
    memset(out, 0, sizeof *out);
    out->offset = -1;
    if (head_seq <= from_seq) return 0;
    aud_walk_t w = {0};
    aud_verify_t v;
    w.upto = head_seq;
    if (from) {
        w.from_seq = from->seq;
        memcpy(w.from_hash, from->hash, AUD_CHAIN_HASH_LEN);
    }
    int rc = aud_verify_walk(c, chain, &w, &v, errbuf, errcap);
    if (rc) return rc;
    if (!v.ok) {
        /* The checkpoint's own row altered (bad_seq == from_seq) is named as well. */
        bad(out, v.bad_seq >= from_seq && v.bad_seq > 0 ? v.bad_seq : 1, "walk", -1);
        return 0;
    }
    return aud_vouch_range(c, k, topic, chain, from, head_seq, timeout_ms, out, errbuf, errcap);
}

int aud_vouch_range(PGconn *c, const hl_kafka_config_t *k, const char *topic, int32_t chain,
                    const aud_checkpoint_t *from, int64_t head_seq, int timeout_ms,
                    aud_vouch_t *out, char *errbuf, size_t errcap)
{
    int64_t start = 0, lo = 0, from_seq = from ? from->seq : 0, id;
    int rc;
    memset(out, 0, sizeof *out);
    out->offset = -1;
    if (head_seq <= from_seq) return 0;
    if (from_seq > 0) {
        /* Where the topic's records begin is the offset the checkpoint's hash binds, read from
         * the row that hashes to it: never a column no hash covers. */
        rc = aud_verify_sealed_row(c, chain, from_seq, from->hash, &id, &start, errbuf, errcap);
        if (rc < 0) return rc;
        if (rc != 1) {
            bad(out, from_seq, "walk", -1);
            return 0;
        }
        start++;
    }
    reader_t rd = {NULL, 0, 0};
    char kerr[256];
    if (reader_open(&rd, k, topic, chain, start, timeout_ms, &lo, kerr, sizeof kerr) != 0) {
        hl_warn("vouch: chain %" PRId32 ": %s", chain, kerr);
        reader_close(&rd);
        bad(out, from_seq + 1, "topic_unreadable", start);
        return 0;
    }
    if (lo > start) {
        reader_close(&rd);
        bad(out, from_seq + 1, "not_retained", start);
        return 0;
    }
    rc = match(c, &rd, chain, from_seq, head_seq, start, out, errbuf, errcap);
    reader_close(&rd);
    return rc;
}
