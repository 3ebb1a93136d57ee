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
#include "hl/kafka.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/util.h"
#include "rollup.h"
#include "store.h"
#include "verify.h"
#include "vouch.h"

typedef struct {
    aud_state_t *a;
    rd_kafka_t *rk;
    PGconn *pg;
    aud_head_t heads[AUD_MAX_CHAINS];
    bool assigned[AUD_MAX_CHAINS];
    aud_item_t *items;
    size_t n;
    bool had_pg; /* a connection was made before */
    bool resync; /* a new connection since the heads were positioned: resync before writing */
} consumer_t;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int ensure_pg(consumer_t *c)
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

/* Loads the head and stored offset of chain p into c->heads[p], retrying until stop (then
 * HL_ESTATE). */
static int load_head_retrying(consumer_t *c, int32_t p)
{
    char err[512];
    for (int backoff = 100;; backoff = backoff < 5000 ? backoff * 2 : 5000) {
        if (atomic_load(&c->a->stop)) return HL_ESTATE;
        err[0] = '\0';
        if (ensure_pg(c) == 0 &&
            aud_store_load_head(c->pg, c->a->cfg->group_id, c->a->cfg->kafka.lineage_topic, p,
                                &c->heads[p], err, sizeof err) == 0)
            return 0;
        hl_warn("consumer: loading chain %d: %s", p, err);
        sleep_ms(backoff);
    }
}

/* The partition count of the lineage topic, for the signer (a chain beyond it has no writer). */
static void learn_partitions(consumer_t *c)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(c->rk, c->a->cfg->kafka.lineage_topic, NULL);
    if (t && rd_kafka_metadata(c->rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
        atomic_store(&c->a->lineage_partitions, md->topics[0].partition_cnt);
    if (md) rd_kafka_metadata_destroy(md);
    if (t) rd_kafka_topic_destroy(t);
}

/* The newest checkpoints of the checkpoint topic (signature-checked), a few tries; on failure
 * out is empty and every chain's whole history is held to the lineage topic instead. */
static void read_seals(consumer_t *c, aud_seals_t *out)
{
    char err[512];
    for (int i = 0; i < 3 && !atomic_load(&c->a->stop); i++) {
        int rc = aud_seals_read(&c->a->cfg->kafka, c->a->cfg->checkpoint.topic, &c->a->ring, 10000,
                                out, err, sizeof err);
        if (rc == 0 || rc == HL_ENOTFOUND) return;
        hl_warn("consumer: reading the checkpoint topic: %s", err);
        sleep_ms(1000);
    }
    memset(out, 0, sizeof *out);
}

/* What vouching found for one chain, to be taken on under written_mu. */
typedef struct {
    aud_vouch_t vr;
    int64_t from_seq;      /* the newest signed checkpoint's seq, 0: none */
    int64_t sealed_seq;    /* the newest checkpoint's seq in the topic, 0: none */
    aud_checkpoint_t head; /* the head this process takes as its own */
} vouched_t;

/* Holds chain p's rows after the newest signed checkpoint to the lineage topic (vouch.c): reads
 * Postgres and Kafka, for up to minutes with a slow broker, so it runs without written_mu.
 * Consumer thread (the rebalance callback): c->heads and c->pg are this thread's alone. */
static void vouch_head(consumer_t *c, int32_t p, const aud_seals_t *seals, vouched_t *out)
{
    char err[512];
    size_t n = 0;
    const aud_checkpoint_t *cps = aud_seals_chain(seals, p, &n), *from = NULL;
    for (size_t k = n; k-- > 0 && !from;)
        if (cps[k].key_id[0]) from = &cps[k];
    memset(out, 0, sizeof *out);
    out->vr = (aud_vouch_t){0, NULL, -1};
    out->from_seq = from ? from->seq : 0;
    out->sealed_seq = n > 0 ? cps[n - 1].seq : 0;
    out->head.chain = p;
    out->head.seq = c->heads[p].seq;
    memcpy(out->head.hash, c->heads[p].hash, AUD_CHAIN_HASH_LEN);
    int rc = HL_EPG;
    for (int i = 0; i < 3 && rc != 0 && !atomic_load(&c->a->stop); i++) {
        rc = ensure_pg(c) == 0
                 ? aud_vouch_tail(c->pg, &c->a->cfg->kafka, c->a->cfg->kafka.lineage_topic, p, from,
                                  c->heads[p].seq, 60000, &out->vr, err, sizeof err)
                 : HL_EPG;
        if (rc) {
            hl_warn("consumer: chain %d: checking the rows since its checkpoint: %s", p, err);
            sleep_ms(500);
        }
    }
    if (rc) out->vr = (aud_vouch_t){out->from_seq + 1, "postgres", -1};
    if (out->vr.bad_seq == 0) return;
    /* The head vouched for ends before the first row that is not. */
    out->head.seq = out->vr.bad_seq - 1;
    memset(out->head.hash, 0, sizeof out->head.hash);
    if (out->head.seq > 0 &&
        (ensure_pg(c) != 0 ||
         aud_verify_hash_at(c->pg, p, out->head.seq, out->head.hash, err, sizeof err) != 0))
        out->head.seq = 0;
}

/* Takes chain p's head as this process's own only as far as vouch_head could vouch for it.
 * From the first row it could not, the chain counts as holding foreign rows: ALARM, verify
 * names that row, nothing of the chain is signed while this process runs. Until this runs the
 * chain is not owned[p], so neither signing nor verify's unwritten_row check takes a head not
 * yet vouched for. written_mu held. */
static void adopt_head(consumer_t *c, int32_t p, const vouched_t *v)
{
    c->a->written[p] = v->head;
    c->a->foreign_seq[p] = 0;
    c->a->owned[p] = true;
    /* A head below the newest outside checkpoint: rows it sealed were deleted. Their records
     * are read and stored again (the same rows, the same hashes: the walk holds them to the
     * checkpoint), but the deletion stays named. */
    if (v->sealed_seq > 0 && c->heads[p].seq < v->sealed_seq &&
        (c->a->deleted_seq[p] == 0 || c->heads[p].seq + 1 < c->a->deleted_seq[p])) {
        c->a->deleted_seq[p] = c->heads[p].seq + 1;
        hl_counter_inc(c->a->m_deleted);
        hl_error("ALARM chain %d lost rows below its checkpoint: first missing seq %" PRId64
                 " (checkpoint seq %" PRId64 "); read and stored again from the lineage topic,"
                 " verify names the deletion",
                 p, c->a->deleted_seq[p], v->sealed_seq);
    }
    if (v->vr.bad_seq == 0) {
        if (c->heads[p].seq > v->from_seq)
            hl_info("consumer: chain %d: rows %" PRId64 "..%" PRId64 " since the newest"
                    " checkpoint match the lineage topic",
                    p, v->from_seq + 1, c->heads[p].seq);
        return;
    }
    c->a->foreign_seq[p] = v->vr.bad_seq;
    hl_counter_inc(c->a->m_foreign);
    hl_error("ALARM chain %d holds rows this auditor cannot vouch for, from seq %" PRId64
             " (%s, lineage offset %" PRId64 "): not signed; verify names them",
             p, v->vr.bad_seq, v->vr.reason, v->vr.offset);
}

/* Loads heads and stored offsets for newly assigned partitions, retrying until stop. */
static int load_heads(consumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    aud_seals_t seals;
    learn_partitions(c);
    read_seals(c, &seals);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p < 0 || p >= AUD_MAX_CHAINS) {
            hl_error("consumer: partition %d beyond the %d chains supported", p, AUD_MAX_CHAINS);
            aud_seals_free(&seals);
            return HL_ERANGE;
        }
        if (load_head_retrying(c, p) != 0) {
            aud_seals_free(&seals);
            return HL_ESTATE;
        }
        c->assigned[p] = true;
        /* Kafka and Postgres are read without written_mu: verify and signing (which take it)
         * do not wait for a slow broker, and see the chain as not owned until it is adopted. */
        vouched_t v;
        vouch_head(c, p, &seals, &v);
        pthread_mutex_lock(&c->a->written_mu);
        adopt_head(c, p, &v);
        pthread_mutex_unlock(&c->a->written_mu);
        parts->elems[i].offset =
            c->heads[p].next_offset >= 0 ? c->heads[p].next_offset : RD_KAFKA_OFFSET_BEGINNING;
        hl_info("consumer: chain %d assigned at seq %" PRId64 ", offset %" PRId64, p,
                c->heads[p].seq, c->heads[p].next_offset);
    }
    aud_seals_free(&seals);
    atomic_store(&c->a->db_ok, true);
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
        if (load_heads(c, parts) != 0) {
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
    if (hl_lineage_parse(m->payload, m->len, &it->rec, &why) != 0) {
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
        ok = ensure_pg(c) == 0 &&
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
        sleep_ms(500);
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
        if (ensure_pg(c) == 0 && c->resync) {
            resync(c);
            break;
        }
        pthread_mutex_lock(&c->a->written_mu);
        int wrote = ensure_pg(c) == 0 && !c->resync &&
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
        sleep_ms(backoff);
        backoff = backoff < 5000 ? backoff * 2 : 5000;
        /* Another writer may have moved on, or the failed transaction changed nothing: reload
         * what the database holds and drop what it already has. */
        for (int32_t p = 0; p < AUD_MAX_CHAINS; p++) {
            if (!c->assigned[p] || ensure_pg(c) != 0) continue;
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

void *aud_consumer_main(void *arg)
{
    consumer_t c;
    rd_kafka_topic_partition_list_t *topics;
    const aud_config_t *cfg;
    memset(&c, 0, sizeof c);
    c.a = arg;
    cfg = c.a->cfg;
    c.items = hl_xcalloc(cfg->batch_max, sizeof *c.items);
    if (ensure_pg(&c) == 0) atomic_store(&c.a->db_ok, true);
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
