/* The batch writer: lineage rows chained per partition, rollups and offsets in one transaction. */
#include "store.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/log.h"
#include "hl/pg.h"
#include "hl/util.h"

int hl_store_fail(PGconn *c, PGresult *res, const char *what, char *errbuf, size_t errcap)
{
    const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(c);
    snprintf(errbuf, errcap, "%s: %s", what, m && m[0] ? m : "connection lost");
    size_t l = strlen(errbuf);
    while (l > 0 && (errbuf[l - 1] == '\n' || errbuf[l - 1] == ' ')) errbuf[--l] = '\0';
    return HL_EPG;
}

/* ---- pool ---- */
struct hl_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const hl_pg_config_t *pg;
    PGconn **idle;
    size_t nidle, size, out;
};

hl_pool_t *hl_pool_new(const hl_pg_config_t *pg, size_t size)
{
    hl_pool_t *p = hl_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->pg = pg;
    p->size = size;
    p->idle = hl_xcalloc(size, sizeof *p->idle);
    return p;
}

void hl_pool_free(hl_pool_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nidle; i++) PQfinish(p->idle[i]);
    free(p->idle);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

PGconn *hl_pool_get(hl_pool_t *p)
{
    struct timespec until;
    PGconn *c = NULL;
    char err[256];
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->out >= p->size)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0) break;
    if (p->nidle > 0) {
        c = p->idle[--p->nidle];
        p->out++;
    } else if (p->out < p->size) {
        p->out++;
    } else {
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    if (!c && hl_pg_connect(p->pg, 0, &c, err, sizeof err) != 0) {
        hl_warn("api: cannot connect to postgres: %s", err);
        hl_pool_put(p, NULL, true);
        return NULL;
    }
    return c;
}

void hl_pool_put(hl_pool_t *p, PGconn *c, bool broken)
{
    if (c && (broken || PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE)) {
        PQfinish(c);
        c = NULL;
    }
    pthread_mutex_lock(&p->mu);
    p->out--;
    if (c) p->idle[p->nidle++] = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* ---- heads ---- */
int hl_store_load_head(PGconn *c, const char *group, const char *topic, int32_t chain,
                       hl_head_t *h, char *errbuf, size_t errcap)
{
    char ch[16];
    const char *p1[1] = {ch};
    const char *p3[3] = {group, topic, ch};
    PGresult *r;
    snprintf(ch, sizeof ch, "%" PRId32, chain);
    memset(h, 0, sizeof *h);
    h->next_offset = -1;
    r = PQexecParams(c,
                     "SELECT seq, encode(hash, 'hex') FROM lineage WHERE chain = $1::int "
                     "ORDER BY seq DESC LIMIT 1",
                     1, NULL, p1, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = hl_store_fail(c, r, "load chain head", errbuf, errcap);
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 1) {
        if (hl_parse_i64(PQgetvalue(r, 0, 0), 1, INT64_MAX, &h->seq) != 0 ||
            hl_chain_unhex(PQgetvalue(r, 0, 1), h->hash) != 0) {
            PQclear(r);
            snprintf(errbuf, errcap, "chain %d: unreadable head row", chain);
            return HL_EPG;
        }
    }
    PQclear(r);
    r = PQexecParams(c,
                     "SELECT next_offset FROM consumer_offsets WHERE consumer_group = $1 "
                     "AND topic = $2 AND kafka_partition = $3::int",
                     3, NULL, p3, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = hl_store_fail(c, r, "load offset", errbuf, errcap);
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 1 &&
        hl_parse_i64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &h->next_offset) != 0) {
        PQclear(r);
        snprintf(errbuf, errcap, "chain %d: unreadable offset", chain);
        return HL_EPG;
    }
    PQclear(r);
    h->loaded = true;
    return 0;
}

/* ---- batch ---- */
static const char insert_rows_sql[] =
    "INSERT INTO lineage (chain, seq, lineage_offset, request_id, stage, ts_us, ts, source,"
    " message_id, event_type, status, error_code, kafka_partition, kafka_offset, latency_us,"
    " record, prev_hash, hash)"
    " SELECT r.chain, r.seq, r.lo, r.rid, r.stage, r.ts_us,"
    " timestamptz 'epoch' + r.ts_us * interval '1 microsecond', r.source, r.mid, r.et,"
    " r.status, r.ec, r.kp, r.ko, r.lat, r.rec, decode(r.prev, 'hex'), decode(r.hash, 'hex')"
    " FROM json_to_recordset($1::json) AS r(chain int, seq bigint, lo bigint, rid text,"
    " stage text, ts_us bigint, source text, mid text, et text, status int, ec text, kp int,"
    " ko bigint, lat bigint, rec text, prev text, hash text)";

static const char insert_rollups_sql[] =
    "INSERT INTO latency_rollups (minute, stage, source, bucket, count)"
    " SELECT timestamptz 'epoch' + r.m * interval '1 microsecond', r.st, r.src, r.b, sum(r.c)"
    " FROM json_to_recordset($1::json) AS r(m bigint, st text, src text, b int, c bigint)"
    " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    " ON CONFLICT (minute, stage, source, bucket)"
    " DO UPDATE SET count = latency_rollups.count + excluded.count";

static const char upsert_offsets_sql[] =
    "INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset)"
    " SELECT $1, $2, r.p, r.o FROM json_to_recordset($3::json) AS r(p int, o bigint)"
    " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE"
    " SET next_offset = GREATEST(consumer_offsets.next_offset, excluded.next_offset),"
    " updated_at = clock_timestamp()";

/* Request ids of this batch whose other stages may already be stored: their stored ingress
 * and persisted records feed the pairing (queue latency needs both), their stored outcomes
 * (persisted, dead_lettered) tell a repeated outcome record from a new one. */
static const char pairs_sql[] =
    "SELECT record FROM lineage WHERE request_id IN"
    " (SELECT json_array_elements_text($1::json))"
    " AND stage IN ('ingress', 'persisted', 'dead_lettered')";

/* ---- outcomes already stored ----
 * One hookline.events record has one outcome: the persister's `persisted` or `dead_lettered`
 * record naming its (partition, offset). The persister produces the outcome records of its last
 * batches again after a crash (it cannot know which were delivered), so a record whose
 * (request id, partition, offset) already has an outcome is a repeat: it is not stored again,
 * which would show the request with two outcomes and count its latency twice. A request
 * redriven from the DLQ is another Kafka record (another offset), so its outcome still counts. */
typedef struct {
    char request_id[37];
    int64_t partition, offset;
    bool used;
} outcome_t;

typedef struct {
    outcome_t *slots;
    size_t cap; /* a power of two, at least twice the outcomes it can be given */
} outcomes_t;

static void outcomes_init(outcomes_t *s, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    s->slots = hl_xcalloc(cap, sizeof *s->slots);
    s->cap = cap;
}

static void outcomes_deinit(outcomes_t *s)
{
    free(s->slots);
    s->slots = NULL;
}

static bool is_outcome(const hl_record_t *r)
{
    return (r->stage == HL_STAGE_PERSISTED || r->stage == HL_STAGE_DEAD_LETTERED) &&
           r->partition != HL_REC_ABSENT && r->offset != HL_REC_ABSENT;
}

/* Adds the outcome of r (is_outcome(r) holds); returns false when it was already there. */
static bool outcomes_add(outcomes_t *s, const hl_record_t *r)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = r->request_id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ (uint64_t)r->partition) * 1099511628211ULL;
    h = (h ^ (uint64_t)r->offset) * 1099511628211ULL;
    for (size_t i = (size_t)h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        outcome_t *o = &s->slots[i];
        if (!o->used) {
            o->used = true;
            hl_strlcpy(o->request_id, r->request_id, sizeof o->request_id);
            o->partition = r->partition;
            o->offset = r->offset;
            return true;
        }
        if (o->partition == r->partition && o->offset == r->offset &&
            strcmp(o->request_id, r->request_id) == 0)
            return false;
    }
}

static void set_opt_str(json_t *o, const char *k, bool has, const char *v)
{
    json_object_set_new(o, k, has ? json_string(v) : json_null());
}

static void set_opt_int(json_t *o, const char *k, int64_t v)
{
    json_object_set_new(o, k, v == HL_REC_ABSENT ? json_null() : json_integer(v));
}

static json_t *row_json(const hl_item_t *it, int64_t seq, const unsigned char *prev,
                        const unsigned char *hash)
{
    char ph[65], hh[65];
    const hl_record_t *r = &it->rec;
    json_t *o = json_object();
    hl_chain_hex(prev, ph);
    hl_chain_hex(hash, hh);
    json_object_set_new(o, "chain", json_integer(it->partition));
    json_object_set_new(o, "seq", json_integer(seq));
    json_object_set_new(o, "lo", json_integer(it->offset));
    json_object_set_new(o, "rid", json_string(r->request_id));
    json_object_set_new(o, "stage", json_string(hl_stage_name(r->stage)));
    json_object_set_new(o, "ts_us", json_integer(r->ts_us));
    set_opt_str(o, "source", r->has_source, r->source);
    set_opt_str(o, "mid", r->has_message_id, r->message_id);
    set_opt_str(o, "et", r->has_event_type, r->event_type);
    set_opt_int(o, "status", r->status);
    set_opt_str(o, "ec", r->has_error_code, r->error_code);
    set_opt_int(o, "kp", r->partition);
    set_opt_int(o, "ko", r->offset);
    set_opt_int(o, "lat", r->latency_us);
    json_object_set_new(o, "rec", json_stringn(it->text, it->len));
    json_object_set_new(o, "prev", json_string(ph));
    json_object_set_new(o, "hash", json_string(hh));
    return o;
}

static int exec_json(PGconn *c, const char *sql, int nfixed, const char *const *fixed, json_t *arr,
                     const char *what, char *errbuf, size_t errcap, PGresult **keep)
{
    const char *params[4];
    char *text = json_dumps(arr, JSON_COMPACT);
    PGresult *r;
    int rc = 0;
    if (!text) hl_die("out of memory serialising a batch");
    for (int i = 0; i < nfixed; i++) params[i] = fixed[i];
    params[nfixed] = text;
    r = PQexecParams(c, sql, nfixed + 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = hl_store_fail(c, r, what, errbuf, errcap);
    free(text);
    if (keep && rc == 0)
        *keep = r;
    else
        PQclear(r);
    return rc;
}

/* Seeds the pairing map and the stored outcomes (outcomes_init'ed here, for the stored ones
 * and the batch's own) with the stored records of this batch's request ids. */
static int seed_pairs(PGconn *c, const hl_item_t *items, size_t n, hl_pairs_t *pairs,
                      outcomes_t *outcomes, char *errbuf, size_t errcap)
{
    json_t *ids = json_array();
    PGresult *r = NULL;
    hl_sample_t scratch[4];
    int rc = 0;
    /* Only an accepted request pairs with a persisted record, and only outcomes can repeat;
     * rejections need no look-up. */
    for (size_t i = 0; i < n; i++) {
        const hl_record_t *rec = &items[i].rec;
        if (items[i].valid && (rec->stage == HL_STAGE_PERSISTED ||
                               rec->stage == HL_STAGE_DEAD_LETTERED ||
                               (rec->stage == HL_STAGE_INGRESS && rec->status == 202)))
            json_array_append_new(ids, json_string(rec->request_id));
    }
    if (json_array_size(ids) > 0)
        rc = exec_json(c, pairs_sql, 0, NULL, ids, "pairing lookup", errbuf, errcap, &r);
    json_decref(ids);
    outcomes_init(outcomes, n + (r ? (size_t)PQntuples(r) : 0));
    if (rc || !r) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        hl_record_t rec;
        const char *why;
        size_t k = 0;
        if (hl_record_parse(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), &rec, &why) != 0)
            continue;
        hl_samples_from_record(pairs, &rec, scratch, &k); /* state only; samples dropped */
        if (is_outcome(&rec)) (void)outcomes_add(outcomes, &rec);
    }
    PQclear(r);
    return 0;
}

static int run(PGconn *c, const char *sql, char *errbuf, size_t errcap)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : hl_store_fail(c, r, sql, errbuf, errcap);
    PQclear(r);
    return rc;
}

int hl_store_write_batch(PGconn *c, hl_head_t *heads, const hl_item_t *items, size_t n,
                         const char *group, const char *topic, hl_live_t *live,
                         hl_write_stats_t *stats, char *errbuf, size_t errcap)
{
    hl_head_t next[HL_MAX_CHAINS];
    bool touched[HL_MAX_CHAINS] = {false};
    json_t *rows = json_array(), *rollups = json_array(), *offsets = json_array();
    hl_sample_t *samples = hl_xcalloc(3 * n + 1, sizeof *samples);
    size_t nsamples = 0;
    hl_pairs_t pairs;
    outcomes_t outcomes = {NULL, 0};
    const char *fixed[2] = {group, topic};
    int rc;

    int64_t t0 = hl_mono_us(), t_pairs = 0, t_rows = 0, t_rollups = 0;
    memset(stats, 0, sizeof *stats);
    hl_pairs_init(&pairs, 2 * n + 1);
    rc = run(c, "BEGIN", errbuf, errcap);
    if (rc == 0) rc = seed_pairs(c, items, n, &pairs, &outcomes, errbuf, errcap);
    t_pairs = hl_mono_us();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const hl_item_t *it = &items[i];
        int32_t ch = it->partition;
        if (ch < 0 || ch >= HL_MAX_CHAINS || !heads[ch].loaded) {
            snprintf(errbuf, errcap, "partition %d has no loaded chain head", ch);
            rc = HL_ESTATE;
            break;
        }
        if (!touched[ch]) next[ch] = heads[ch], touched[ch] = true;
        next[ch].next_offset = it->offset + 1;
        if (!it->valid) continue;
        if (is_outcome(&it->rec) && !outcomes_add(&outcomes, &it->rec)) {
            stats->repeats++; /* its offset still advances */
            continue;
        }
        hl_chain_row_t row = {ch, next[ch].seq + 1, it->offset, it->rec.request_id,
                              hl_stage_name(it->rec.stage), it->rec.ts_us, it->text, it->len};
        unsigned char h[HL_CHAIN_HASH_LEN];
        if (hl_chain_hash(next[ch].hash, &row, h) != 0) {
            snprintf(errbuf, errcap, "sha256 failed");
            rc = HL_EIO;
            break;
        }
        json_array_append_new(rows, row_json(it, row.seq, next[ch].hash, h));
        next[ch].seq = row.seq;
        memcpy(next[ch].hash, h, sizeof h);
        hl_samples_from_record(&pairs, &it->rec, samples, &nsamples);
    }
    for (size_t i = 0; rc == 0 && i < nsamples; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "m", json_integer(samples[i].minute_us));
        json_object_set_new(o, "st", json_string(hl_lat_name(samples[i].stage)));
        json_object_set_new(o, "src", json_string(samples[i].source));
        json_object_set_new(o, "b", json_integer((json_int_t)hl_hist_bucket_index(samples[i].value_us)));
        json_object_set_new(o, "c", json_integer(1));
        json_array_append_new(rollups, o);
    }
    for (int ch = 0; rc == 0 && ch < HL_MAX_CHAINS; ch++)
        if (touched[ch]) {
            json_t *o = json_object();
            json_object_set_new(o, "p", json_integer(ch));
            json_object_set_new(o, "o", json_integer(next[ch].next_offset));
            json_array_append_new(offsets, o);
        }
    if (rc == 0 && json_array_size(rows) > 0)
        rc = exec_json(c, insert_rows_sql, 0, NULL, rows, "insert lineage", errbuf, errcap, NULL);
    t_rows = hl_mono_us();
    if (rc == 0 && json_array_size(rollups) > 0)
        rc = exec_json(c, insert_rollups_sql, 0, NULL, rollups, "upsert rollups", errbuf, errcap,
                       NULL);
    t_rollups = hl_mono_us();
    if (rc == 0 && json_array_size(offsets) > 0)
        rc = exec_json(c, upsert_offsets_sql, 2, fixed, offsets, "store offsets", errbuf, errcap,
                       NULL);
    if (rc == 0) rc = run(c, "COMMIT", errbuf, errcap);
    if (rc == 0) {
        for (int ch = 0; ch < HL_MAX_CHAINS; ch++)
            if (touched[ch]) heads[ch] = next[ch];
        for (size_t i = 0; i < nsamples; i++) hl_live_record(live, &samples[i]);
        stats->rows = json_array_size(rows);
        stats->samples = nsamples;
        hl_debug("batch: %zu rows, pairing %lld us, hashing+rows %lld us, rollups %lld us, "
                 "offsets+commit %lld us",
                 stats->rows, (long long)(t_pairs - t0), (long long)(t_rows - t_pairs),
                 (long long)(t_rollups - t_rows), (long long)(hl_mono_us() - t_rollups));
    } else if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        char ignore[64];
        (void)run(c, "ROLLBACK", ignore, sizeof ignore);
    }
    json_decref(rows);
    json_decref(rollups);
    json_decref(offsets);
    hl_pairs_deinit(&pairs);
    outcomes_deinit(&outcomes);
    free(samples);
    return rc;
}
