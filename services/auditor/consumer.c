/* The lineage consumer: one thread polls hookline.lineage, groups records into batches and
 * writes each batch (rows, rollups, offsets) in one transaction. Offsets live in Postgres, so
 * Kafka's own offset commits are off and a restart resumes exactly after the last batch.
 *
 * A new Postgres connection after an earlier one may reach a promoted asynchronous standby that
 * lacks the last batches the old primary confirmed: their rows and their offsets alike, and so
 * the chain heads too (a head is the chain's last row). Before anything is written on it the
 * heads are loaded again, the records held are dropped, and every assigned partition is sought
 * back to its stored offset (resync). The lost records are then written again onto the heads
 * that survived: the same seqs and, since a row's hash covers only the previous hash, its
 * position and the record, the same hashes as the rows that were lost. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auditor.h"
#include "consumer.h"
#include "consumer_impl.h"
#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/util.h"
#include "rollup.h"
#include "store.h"
#include "verify.h"
#include "vouch.h"

void aud_cons_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int aud_cons_ensure_pg(consumer_t *c)
{
    char err[512];
    /* A read-only server (a standby, or a primary demoted or set read-only) refuses every
     * batch: drop the connection so the next one goes through the conninfo's host list again
     * (with target_session_attrs=read-write, to the new primary). */
    if (c->pg && !hl_pg_reconnect_needed(c->pg, NULL)) return 0;
    if (hl_pg_read_only(c->pg)) hl_warn("consumer: postgres server is read-only; reconnecting");
    PQfinish(c->pg);
    c->pg = NULL;
    if (hl_pg_connect(&c->a->cfg->postgres.w, 0, &c->pg, err, sizeof err) != 0) {
        atomic_store(&c->a->db_ok, false);
        hl_warn("consumer: postgres: %s", err);
        return HL_EPG;
    }
    if (c->had_pg) c->resync = true;
    c->had_pg = true;
    return 0;
}

static void drop_partition_items(consumer_t *c, int32_t p)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->items[i].partition == p)
            free(c->items[i].text);
        else
            c->items[k++] = c->items[i];
    }
    c->n = k;
}

static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (aud_cons_load_heads(c, parts) != 0) {
            rd_kafka_assign(rk, NULL);
            return;
        }
        rd_kafka_assign(rk, parts);
        atomic_store(&c->a->consumer_up, true);
    } else {
        /* Pending records of revoked partitions are dropped, not written: their stored offset
         * is unchanged, so the next owner reads them again. */
        for (int i = 0; i < parts->cnt; i++) {
            int32_t p = parts->elems[i].partition;
            if (p >= 0 && p < AUD_MAX_CHAINS) {
                drop_partition_items(c, p);
                c->assigned[p] = false;
                pthread_mutex_lock(&c->a->written_mu);
                c->a->owned[p] = false;
                pthread_mutex_unlock(&c->a->written_mu);
                c->heads[p].loaded = false;
            }
        }
        rd_kafka_assign(rk, NULL);
    }
}

static int cmp_items(const void *x, const void *y)
{
    const aud_item_t *a = x, *b = y;
    if (a->partition != b->partition) return a->partition < b->partition ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static bool fits_int4(int64_t v)
{
    return v == HL_LINEAGE_ABSENT || (v >= INT32_MIN && v <= INT32_MAX);
}

static void take(consumer_t *c, rd_kafka_message_t *m)
{
    int32_t p = m->partition;
    const char *why = "";
    hl_log_ctx_t ctx = {NULL, c->a->cfg->kafka.lineage_topic, p, m->offset};
    if (p < 0 || p >= AUD_MAX_CHAINS || !c->assigned[p]) return;
    /* Already stored (redelivered after a restart or rebalance): skip. */
    if (m->offset < c->heads[p].next_offset) return;
    aud_item_t *it = &c->items[c->n++];
    memset(it, 0, sizeof *it);
    it->partition = p;
    it->offset = m->offset;
    hl_counter_inc(c->a->m_records);
    int rc = hl_lineage_parse(m->payload, m->len, &it->rec, &why);
    /* status and partition are stored in integer columns: a value past 32 bits cannot be, and
     * would fail every batch that held it. */
    if (rc == 0 && !fits_int4(it->rec.status)) rc = HL_ERANGE, why = "status out of range";
    if (rc == 0 && !fits_int4(it->rec.partition)) rc = HL_ERANGE, why = "partition out of range";
    if (rc != 0) {
        char kv[160];
        size_t kl = 0;
        hl_log_kv_str(kv, sizeof kv, &kl, "reason", why);
        HL_LOG(HL_LOG_WARN, &ctx, kv, "lineage record refused, skipped");
        hl_counter_inc(c->a->m_invalid);
        return;
    }
    it->text = hl_xstrndup(m->payload, m->len);
    it->len = m->len;
    it->valid = true;
}

static void update_lag(consumer_t *c)
{
    int64_t lag = 0;
    for (int32_t p = 0; p < AUD_MAX_CHAINS; p++) {
        int64_t lo, hi;
        if (!c->assigned[p]) continue;
        if (rd_kafka_get_watermark_offsets(c->rk, c->a->cfg->kafka.lineage_topic, p, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue;
        int64_t next = c->heads[p].next_offset >= 0 ? c->heads[p].next_offset : lo;
        if (hi > next) lag += hi - next;
    }
    hl_gauge_set(c->a->m_lag, lag);
}

/* Publishes the heads just committed to the verifier (aud_state_t.written); written_mu
 * held. */
static void note_written(consumer_t *c)
{
    for (int32_t p = 0; p < AUD_MAX_CHAINS; p++) {
        if (!c->heads[p].loaded || c->heads[p].seq <= c->a->written[p].seq) continue;
        aud_checkpoint_t *w = &c->a->written[p];
        memset(w, 0, sizeof *w);
        w->chain = p;
        w->seq = c->heads[p].seq;
        memcpy(w->hash, c->heads[p].hash, sizeof w->hash);
    }
}

/* True when every row of chain p after seq `after` is a record of the batch still in c->items,
 * its offset and its text: the batch did commit, only its answer was lost. */
static bool rows_are_the_batch(consumer_t *c, int32_t p, int64_t after)
{
    char ch[16], sq[24];
    const char *params[2] = {ch, sq};
    snprintf(ch, sizeof ch, "%" PRId32, p);
    snprintf(sq, sizeof sq, "%" PRId64, after);
    PGresult *r = PQexecParams(c->pg,
                               "SELECT lineage_offset, record FROM lineage WHERE chain = $1::int"
                               " AND seq > $2::bigint LIMIT 20001",
                               2, NULL, params, NULL, NULL, 0);
    bool ours = PQresultStatus(r) == PGRES_TUPLES_OK;
    for (int i = 0; ours && i < PQntuples(r); i++) {
        int64_t off = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        bool found = false;
        size_t len = (size_t)PQgetlength(r, i, 1);
        for (size_t k = 0; k < c->n && !found; k++)
            found = c->items[k].partition == p && c->items[k].offset == off &&
                    c->items[k].len == len &&
                    memcmp(c->items[k].text, PQgetvalue(r, i, 1), len) == 0;
        ours = found;
    }
    PQclear(r);
    return ours;
}

/* After a failed batch the heads are reloaded from the table. A chain this process owns that
 * grew beyond what it wrote, by rows that are not the failed batch's own (committed, the answer
 * lost), holds rows someone else put there: an ALARM, and verify names the first of them
 * (aud_history_report) for as long as this process runs. written_mu held. */
static void note_reloaded(consumer_t *c, int32_t p)
{
    aud_checkpoint_t *w = &c->a->written[p];
    if (c->a->owned[p] && c->heads[p].loaded && c->heads[p].seq > w->seq &&
        c->a->foreign_seq[p] == 0) {
        if (rows_are_the_batch(c, p, w->seq)) {
            w->seq = c->heads[p].seq;
            memcpy(w->hash, c->heads[p].hash, sizeof w->hash);
        } else {
            c->a->foreign_seq[p] = w->seq + 1;
            hl_counter_inc(c->a->m_foreign);
            hl_error("ALARM chain %d holds rows this auditor did not write, from seq %" PRId64, p,
                     c->a->foreign_seq[p]);
        }
    }
}

/* After a new connection: loads the head of every assigned chain again (with the records held
 * still there, so a batch that committed without its answer is known as this auditor's own),
 * drops the records held and seeks each assigned partition to its stored offset (what
 * librdkafka fetched and not handed out yet is discarded by the seek), so whatever the server
 * reached lacks is read and written again before anything later. When Postgres does not answer
 * or a seek fails, resync stays set (nothing is written meanwhile) and runs again after a
 * pause. */
static void resync(consumer_t *c)
{
    char err[512];
    bool ok = true;
    hl_warn("consumer: new postgres connection: loading the chain heads again; %zu records"
            " held are dropped and read again",
            c->n);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(AUD_MAX_CHAINS);
    pthread_mutex_lock(&c->a->written_mu);
    c->resync = false;
    for (int32_t p = 0; ok && p < AUD_MAX_CHAINS; p++) {
        if (!c->assigned[p]) continue;
        err[0] = '\0';
        ok = aud_cons_ensure_pg(c) == 0 &&
             aud_store_load_head(c->pg, c->a->cfg->group_id, c->a->cfg->kafka.lineage_topic, p,
                                 &c->heads[p], err, sizeof err) == 0;
        if (!ok) {
            hl_warn("consumer: loading chain %d: %s", p, err);
            break;
        }
        note_reloaded(c, p);
        rd_kafka_topic_partition_list_add(l, c->a->cfg->kafka.lineage_topic, p)->offset =
            c->heads[p].next_offset >= 0 ? c->heads[p].next_offset : RD_KAFKA_OFFSET_BEGINNING;
        hl_info("consumer: chain %d at seq %" PRId64 ", reading again from offset %" PRId64, p,
                c->heads[p].seq, c->heads[p].next_offset);
    }
    /* Another new connection meanwhile: the heads loaded before it may be from another server. */
    ok = ok && !c->resync;
    pthread_mutex_unlock(&c->a->written_mu);
    for (size_t i = 0; i < c->n; i++) free(c->items[i].text);
    c->n = 0;
    if (ok && hl_kafka_seek(c->rk, l, 10000, "the lineage chains after a reconnect") != 0)
        ok = false;
    rd_kafka_topic_partition_list_destroy(l);
    if (!ok) {
        c->resync = true;
        aud_cons_sleep_ms(500);
    }
}

/* Writes the pending batch, retrying with backoff (reloading heads) until it lands or stop. */
static void flush(consumer_t *c)
{
    char err[1024];
    aud_write_stats_t st;
    int backoff = 100;
    qsort(c->items, c->n, sizeof *c->items, cmp_items);
    while (c->n > 0) {
        int64_t t0 = hl_mono_us();
        if (aud_cons_ensure_pg(c) == 0 && c->resync) {
            resync(c);
            break;
        }
        pthread_mutex_lock(&c->a->written_mu);
        int wrote = aud_cons_ensure_pg(c) == 0 && !c->resync &&
                    aud_store_write_batch(c->pg, c->heads, c->items, c->n, c->a->cfg->group_id,
                                          c->a->cfg->kafka.lineage_topic, c->a->live, &st, err,
                                          sizeof err) == 0;
        if (wrote) {
            note_written(c);
            pthread_mutex_unlock(&c->a->written_mu);
            atomic_store(&c->a->db_ok, true);
            hl_counter_inc(c->a->m_batches);
            hl_counter_add(c->a->m_rows, st.rows);
            hl_counter_add(c->a->m_repeats, st.repeats);
            hl_histogram_observe_us(c->a->m_batch_latency, hl_mono_us() - t0);
            hl_debug("consumer: batch of %zu records, %zu rows, %zu samples", c->n, st.rows,
                     st.samples);
            if (st.samples > 0) c->unfolded = true;
            break;
        }
        hl_counter_inc(c->a->m_batch_errors);
        hl_warn("consumer: batch of %zu records failed (retrying in %d ms): %s", c->n, backoff,
                err);
        if (atomic_load(&c->a->stop)) { /* not stored: read again after restart */
            pthread_mutex_unlock(&c->a->written_mu);
            break;
        }
        /* The lock stays held until the heads are reloaded: a batch that did commit (its answer
         * lost) is not taken by verify for rows someone else wrote meanwhile. */
        aud_cons_sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
        /* Another writer may have moved on, or the failed transaction changed nothing: reload
         * what the database holds and drop what it already has. */
        for (int32_t p = 0; p < AUD_MAX_CHAINS; p++) {
            if (!c->assigned[p] || aud_cons_ensure_pg(c) != 0) continue;
            if (aud_store_load_head(c->pg, c->a->cfg->group_id, c->a->cfg->kafka.lineage_topic, p,
                                    &c->heads[p], err, sizeof err) != 0)
                hl_warn("consumer: reloading chain %d: %s", p, err);
            else
                note_reloaded(c, p);
        }
        pthread_mutex_unlock(&c->a->written_mu);
        size_t k = 0;
        for (size_t i = 0; i < c->n; i++) {
            aud_item_t *it = &c->items[i];
            if (it->offset < c->heads[it->partition].next_offset || !c->heads[it->partition].loaded)
                free(it->text);
            else
                c->items[k++] = *it;
        }
        c->n = k;
    }
    for (size_t i = 0; i < c->n; i++) free(c->items[i].text);
    c->n = 0;
    update_lag(c);
}

/* librdkafka's consumer is fatal only when a static member (group.instance.id) was fenced by
 * another one of the same id; a new handle here would fence that one in turn. The process
 * ends instead, exit code 1, once the records in hand are written (offsets live in Postgres,
 * so its supervisor's restart resumes exactly after them). Consumer thread. */
static void consumer_fatal(consumer_t *c)
{
    char why[256];
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(c->rk, why, sizeof why);
    hl_error("consumer: kafka consumer fatal error (%s: %s); writing the batch in hand and"
             " exiting",
             rd_kafka_err2name(fe), why);
    atomic_store(&c->a->kafka_fatal, true);
    kill(getpid(), SIGTERM); /* main drains and exits as on SIGTERM, then returns 1 */
}

static rd_kafka_t *make_consumer(consumer_t *c)
{
    char err[512];
    const aud_config_t *cfg = c->a->cfg;
    static const char *const defaults[] = {
        "enable.auto.commit", "false", "enable.auto.offset.store", "false", "auto.offset.reset",
        "earliest", "enable.partition.eof", "false", "partition.assignment.strategy",
        "range,roundrobin",
        /* Lineage is not on anyone's answer path: fetch in large, unhurried pieces. */
        "fetch.min.bytes", "65536", "fetch.wait.max.ms", "200",
        /* A crashed auditor's partitions move to a live one (or to itself, restarted) after
         * 10 s instead of librdkafka's default 45 s. */
        "session.timeout.ms", "10000", "heartbeat.interval.ms", "1000", NULL};
    rd_kafka_conf_t *conf = hl_kafka_conf(&cfg->kafka, defaults, err, sizeof err);
    if (!conf) {
        hl_error("consumer: %s", err);
        return NULL;
    }
    if (rd_kafka_conf_set(conf, "group.id", cfg->group_id, err, sizeof err) != RD_KAFKA_CONF_OK) {
        hl_error("consumer: group.id: %s", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_t *rk = hl_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        hl_error("consumer: %s", err);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Folds the batches' latency counts into latency_rollups (aud_store_fold_rollups) when counts
 * may wait (this process's batches wrote some since its last fold, or it has just started and
 * an earlier run may have left some) and rollup_fold_ms has passed since the last fold ended.
 * A fold starts no new round after half an interval (a second at most), since this thread
 * also stores lineage; one stopped that way with its last round full goes on after as long
 * again, so a backlog takes about half of the thread. A failed fold leaves its round's rows
 * where latency_counts reads them, and the next try comes ten intervals later, or as long
 * after as the failed fold took. */
static void fold_rollups(consumer_t *c)
{
    int64_t interval = (int64_t)c->a->cfg->rollup_fold_ms * 1000;
    int64_t start = hl_mono_us();
    if (!c->unfolded || start - c->folded_us < interval) return;
    char err[512];
    long moved = 0, keys = 0;
    bool more = false;
    c->folded_us = start;
    if (aud_cons_ensure_pg(c) != 0) return;
    int64_t budget = interval / 2 < 1000000 ? interval / 2 : 1000000;
    int rc = aud_store_fold_rollups(c->pg, budget, &moved, &keys, &more, err, sizeof err);
    int64_t end = hl_mono_us();
    if (rc != 0) {
        /* Ten intervals, or as long as the failed fold took if that was longer. */
        int64_t pause = end - start > 10 * interval ? end - start : 10 * interval;
        c->folded_us = end - interval + pause;
        hl_counter_inc(c->a->m_fold_errors);
        hl_warn("consumer: folding the latency counts failed after %ld batch rows folded (next "
                "try in %lld ms): %s",
                moved, (long long)(pause / 1000), err);
        return;
    }
    c->unfolded = more;
    c->folded_us = more ? end - interval + (end - start) : end;
    hl_debug("consumer: latency counts of %ld batch rows folded into %ld rollup rows in %lld us%s",
             moved, keys, (long long)(end - start), more ? " (more to fold)" : "");
}

void *aud_consumer_main(void *arg)
{
    consumer_t c;
    rd_kafka_topic_partition_list_t *topics;
    const aud_config_t *cfg;
    memset(&c, 0, sizeof c);
    c.a = arg;
    cfg = c.a->cfg;
    c.items = hl_xcalloc(cfg->batch_max, sizeof *c.items);
    c.folded_us = hl_mono_us();
    c.unfolded = true; /* what an earlier run left, folded once the first interval is up */
    if (aud_cons_ensure_pg(&c) == 0) atomic_store(&c.a->db_ok, true);
    c.rk = make_consumer(&c);
    if (!c.rk) hl_die("consumer: cannot create the Kafka consumer");
    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, cfg->kafka.lineage_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c.rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) hl_die("consumer: subscribe: %s", rd_kafka_err2str(e));

    int64_t first_us = 0, last_lag_us = 0;
    while (!atomic_load(&c.a->stop)) {
        if (c.resync) resync(&c);
        int wait = 100;
        if (c.n > 0) {
            int64_t left = (int64_t)cfg->batch_linger_ms * 1000 - (hl_mono_us() - first_us);
            wait = left > 0 ? (int)(left / 1000) + 1 : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c.rk, wait);
        if (m && m->err == RD_KAFKA_RESP_ERR__FATAL) {
            consumer_fatal(&c);
            rd_kafka_message_destroy(m);
            break;
        }
        if (m) {
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (c.n == 0) first_us = hl_mono_us();
                take(&c, m);
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                hl_warn("consumer: %s", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
        if (c.n >= cfg->batch_max ||
            (c.n > 0 && hl_mono_us() - first_us >= (int64_t)cfg->batch_linger_ms * 1000))
            flush(&c);
        fold_rollups(&c);
        if (hl_mono_us() - last_lag_us > 1000000) {
            update_lag(&c);
            last_lag_us = hl_mono_us();
        }
    }
    /* Draining: write what was taken, then leave the group (a fatal handle cannot). */
    if (c.n > 0) flush(&c);
    if (!atomic_load(&c.a->kafka_fatal)) rd_kafka_consumer_close(c.rk);
    rd_kafka_destroy(c.rk);
    PQfinish(c.pg);
    free(c.items);
    hl_info("consumer: stopped");
    return NULL;
}
