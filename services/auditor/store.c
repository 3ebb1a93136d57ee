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
#include "hl/proto.h"
#include "hl/util.h"

/* ---- heads ---- */
/* A chain's head row, and where the auditor's group stands in the lineage topic's partition. */
#define SQL_HEAD                                                                                   \
    "SELECT seq, encode(hash, 'hex'), lineage_offset FROM lineage"                                 \
    " WHERE chain = $1::int AND seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
#define SQL_OFFSET                                                                                 \
    "SELECT next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2"            \
    " AND kafka_partition = $3::int"

int aud_store_load_head(PGconn *c, const char *group, const char *topic, int32_t chain,
                        aud_head_t *h, char *errbuf, size_t errcap)
{
    char ch[16];
    const char *p1[1] = {ch};
    const char *p3[3] = {group, topic, ch};
    PGresult *r;
    snprintf(ch, sizeof ch, "%" PRId32, chain);
    memset(h, 0, sizeof *h);
    h->next_offset = -1;
    r = hl_pg_select(c, SQL_HEAD, 1, p1, "load chain head", errbuf, errcap);
    if (!r) return HL_EPG;
    int64_t head_offset = -1;
    if (PQntuples(r) == 1) {
        if (hl_parse_i64(PQgetvalue(r, 0, 0), 1, INT64_MAX, &h->seq) != 0 ||
            aud_chain_unhex(PQgetvalue(r, 0, 1), h->hash) != 0 ||
            hl_parse_i64(PQgetvalue(r, 0, 2), 0, INT64_MAX, &head_offset) != 0) {
            PQclear(r);
            snprintf(errbuf, errcap, "chain %d: unreadable head row", chain);
            return HL_EPG;
        }
    }
    PQclear(r);
    r = hl_pg_select(c, SQL_OFFSET, 3, p3, "load offset", errbuf, errcap);
    if (!r) return HL_EPG;
    int64_t stored = -1;
    if (PQntuples(r) == 1 && hl_parse_i64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &stored) != 0) {
        PQclear(r);
        snprintf(errbuf, errcap, "chain %d: unreadable offset", chain);
        return HL_EPG;
    }
    PQclear(r);
    /* The table's offset is not covered by the chain: whoever owns the database could move it
     * past records to have them skipped. So it counts only up to the position the chain itself
     * hashes, just after the head row's lineage record (and not at all for a chain without
     * rows: read from the beginning). Records between the two made no row (refused, or
     * repeated outcomes) and are skipped again when read again. The smaller of the two, so a
     * row forged onto the head with a far offset does not have records skipped either. */
    h->next_offset = head_offset >= 0 ? head_offset + 1 : -1;
    if (stored >= 0 && h->next_offset >= 0 && stored < h->next_offset) h->next_offset = stored;
    if (stored != h->next_offset)
        hl_debug("chain %d: stored offset %" PRId64
                 ", resuming after the head row's record at %" PRId64,
                 chain, stored, h->next_offset);
    h->loaded = true;
    return 0;
}

/* ---- batch ---- */
/* Rows go by COPY in binary format, and the auditor builds no JSON for them. Measured on one
 * machine: Postgres spent about half the CPU on a 634-row COPY (text format) that it spent on
 * the same rows through INSERT ... SELECT FROM json_to_recordset (same table and indexes,
 * 300,000 rows in it, batches alternating); in the running auditor, with the six indexes and
 * the WAL, the median batch's hashing and storing went from 42-55 ms to 29-38 ms. The binary
 * format then spares the server parsing each row's numbers, timestamp and hashes. */
static const char copy_rows_sql[] =
    "COPY lineage (chain, seq, lineage_offset, request_id, stage, ts_us, ts, source,"
    " message_id, event_type, status, error_code, kafka_partition, kafka_offset, latency_us,"
    " record, prev_hash, hash) FROM STDIN (FORMAT binary)";

/* The batch's latency counts: one row per (minute, stage, source, outcome) with the buckets it
 * touched (proto/sql/011). Folded into latency_rollups by aud_store_fold_rollups. */
static const char insert_rollups_sql[] =
    "INSERT INTO latency_rollup_batches (minute, stage, source, outcome, buckets, counts)"
    " SELECT timestamptz 'epoch' + r.m * interval '1 microsecond', r.st, r.src, r.o, r.b, r.c"
    " FROM json_to_recordset($1::json) AS r(m bigint, st text, src text, o text, b int[],"
    " c bigint[])";

/* Moves up to AUD_FOLD_ROWS batch rows into latency_rollups in one statement: the rows it
 * deletes are the rows it sums, so a count is in one table or the other at any snapshot. Rows
 * another fold (another auditor) has locked are skipped, never waited for; keys go in order, so
 * two folds take the rollup rows' locks in the same order. Answers (batch rows moved, rollup
 * rows added to or made). */
#define FOLD_LIMIT " LIMIT " HL_PROTO_STR(AUD_FOLD_ROWS)
static const char fold_rollups_sql[] =
    "WITH moved AS (DELETE FROM latency_rollup_batches WHERE id = ANY(ARRAY(SELECT id"
    " FROM latency_rollup_batches" FOLD_LIMIT " FOR UPDATE SKIP LOCKED))"
    " RETURNING minute, stage, source, outcome, buckets, counts),"
    " ins AS (INSERT INTO latency_rollups (minute, stage, source, outcome, bucket, count)"
    " SELECT m.minute, m.stage, m.source, m.outcome, u.b, sum(u.c)"
    " FROM moved m, unnest(m.buckets, m.counts) AS u(b, c)"
    " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    " ON CONFLICT (minute, stage, source, outcome, bucket)"
    " DO UPDATE SET count = latency_rollups.count + excluded.count RETURNING 1)"
    " SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM ins)";

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
    " AND stage IN ('" HL_STAGE_INGRESS_NAME "', '" HL_STAGE_PERSISTED_NAME
    "', '" HL_STAGE_DEAD_LETTERED_NAME "')";

/* ---- outcomes already stored ----
 * One hookline.events record has one outcome: the persister's `persisted` or `dead_lettered`
 * record naming its (partition, offset). The persister produces the outcome records of its last
 * batches again after a crash (it cannot know which were delivered), so a record whose
 * (request id, partition, offset) already has an outcome is a repeat: it is not stored again,
 * which would show the request with two outcomes and count its latency twice. A request
 * redriven from the DLQ is another Kafka record (another offset), so its outcome still counts. */
typedef struct {
    char request_id[HL_REQUEST_ID_MAX + 1];
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

static bool is_outcome(const hl_lineage_rec_t *r)
{
    return (r->stage == HL_STAGE_PERSISTED || r->stage == HL_STAGE_DEAD_LETTERED) &&
           r->partition != HL_LINEAGE_ABSENT && r->offset != HL_LINEAGE_ABSENT;
}

/* Adds the outcome of r (is_outcome(r) holds); returns false when it was already there. */
static bool outcomes_add(outcomes_t *s, const hl_lineage_rec_t *r)
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

/* One batch's rows in COPY's binary format (libs/pg's encoders): no escaping, and the server
 * parses no numbers, timestamps or hex. */
typedef struct {
    hl_buf_t b;
    size_t rows;
} copybuf_t;

#define ROW_FIELDS 18

static int cb_str(copybuf_t *b, const char *v)
{
    return hl_pg_enc_text(&b->b, v, strlen(v));
}

static int cb_opt_str(copybuf_t *b, bool has, const char *v)
{
    if (!has) {
        hl_pg_enc_null(&b->b);
        return 0;
    }
    return cb_str(b, v);
}

/* An integer column: NULL when the record has no such field. int4 columns take what
 * take_record (consumer.c) let through, which it keeps within 32 bits. */
static void cb_opt_int4(copybuf_t *b, int64_t v)
{
    if (v == HL_LINEAGE_ABSENT)
        hl_pg_enc_null(&b->b);
    else
        hl_pg_enc_int4(&b->b, (int32_t)v);
}

static void cb_opt_int8(copybuf_t *b, int64_t v)
{
    if (v == HL_LINEAGE_ABSENT)
        hl_pg_enc_null(&b->b);
    else
        hl_pg_enc_int8(&b->b, v);
}

/* Appends one row; HL_EINVAL (the row half written: the batch fails) for a text holding a NUL
 * byte, which no parsed record has. */
static int row_copy(copybuf_t *b, const aud_item_t *it, int64_t seq, const unsigned char *prev,
                    const unsigned char *hash)
{
    const hl_lineage_rec_t *r = &it->rec;
    if (b->b.len == 0) hl_pg_copy_begin(&b->b);
    hl_pg_copy_tuple(&b->b, ROW_FIELDS);
    hl_pg_enc_int4(&b->b, it->partition);
    hl_pg_enc_int8(&b->b, seq);
    hl_pg_enc_int8(&b->b, it->offset);
    int rc = cb_str(b, r->request_id);
    if (rc == 0) rc = cb_str(b, hl_stage_name(r->stage));
    if (rc != 0) return rc;
    hl_pg_enc_int8(&b->b, r->ts_us);
    hl_pg_enc_timestamptz(&b->b, r->ts_us);
    rc = cb_opt_str(b, r->has_source, r->source);
    if (rc == 0) rc = cb_opt_str(b, r->has_message_id, r->message_id);
    if (rc == 0) rc = cb_opt_str(b, r->has_event_type, r->event_type);
    if (rc != 0) return rc;
    cb_opt_int4(b, r->status);
    rc = cb_opt_str(b, r->has_error_code, r->error_code);
    if (rc != 0) return rc;
    cb_opt_int4(b, r->partition);
    cb_opt_int8(b, r->offset);
    cb_opt_int8(b, r->latency_us);
    rc = hl_pg_enc_text(&b->b, it->text, it->len);
    if (rc != 0) return rc;
    hl_pg_enc_bytea(&b->b, prev, AUD_CHAIN_HASH_LEN);
    hl_pg_enc_bytea(&b->b, hash, AUD_CHAIN_HASH_LEN);
    b->rows++;
    return 0;
}

/* Sends the rows with COPY inside the open transaction, in pieces of at most 1 MiB. */
static int copy_rows(PGconn *c, const copybuf_t *b, char *errbuf, size_t errcap)
{
    PGresult *r = PQexec(c, copy_rows_sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        int rc = hl_pg_error(c, r, "insert lineage", errbuf, errcap);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    int ok = 1;
    for (size_t at = 0; ok == 1 && at < b->b.len; at += 1u << 20) {
        size_t n = b->b.len - at < (1u << 20) ? b->b.len - at : (1u << 20);
        ok = PQputCopyData(c, b->b.p + at, (int)n);
    }
    if (ok == 1) ok = PQputCopyEnd(c, NULL);
    int rc = 0;
    if (ok != 1) rc = hl_pg_error(c, NULL, "insert lineage", errbuf, errcap);
    while ((r = PQgetResult(c)) != NULL) {
        if (rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = hl_pg_error(c, r, "insert lineage", errbuf, errcap);
        PQclear(r);
    }
    return rc;
}

/* One sample's rollup key: (minute, stage, source, outcome, bucket). */
typedef struct {
    int64_t minute_us;
    int stage, outcome, bucket;
    const char *source;
} rollup_key_t;

/* Bucket last, so the keys of one (minute, stage, outcome, source) are adjacent. */
static int rollup_key_cmp(const void *x, const void *y)
{
    const rollup_key_t *a = x, *b = y;
    if (a->minute_us != b->minute_us) return a->minute_us < b->minute_us ? -1 : 1;
    if (a->stage != b->stage) return a->stage < b->stage ? -1 : 1;
    if (a->outcome != b->outcome) return a->outcome < b->outcome ? -1 : 1;
    int s = strcmp(a->source, b->source);
    if (s != 0) return s;
    return a->bucket < b->bucket ? -1 : a->bucket > b->bucket;
}

static bool same_series(const rollup_key_t *a, const rollup_key_t *b)
{
    return a->minute_us == b->minute_us && a->stage == b->stage && a->outcome == b->outcome &&
           strcmp(a->source, b->source) == 0;
}

/* The batch's samples counted per bucket here, one row per (minute, stage, source, outcome)
 * with its buckets and counts: a batch of 2,000 lineage rows touches about a thousand buckets,
 * but only a few such series. */
static void rollup_rows(const aud_sample_t *samples, size_t n, json_t *out)
{
    if (n == 0) return;
    rollup_key_t *k = hl_xcalloc(n, sizeof *k);
    for (size_t i = 0; i < n; i++)
        k[i] = (rollup_key_t){samples[i].minute_us, (int)samples[i].stage, (int)samples[i].outcome,
                              (int)hl_hist_bucket_index(samples[i].value_us), samples[i].source};
    qsort(k, n, sizeof *k, rollup_key_cmp);
    json_t *o = NULL, *buckets = NULL, *counts = NULL;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && rollup_key_cmp(&k[i], &k[j]) == 0) j++;
        if (o == NULL || !same_series(&k[i], &k[i - 1])) {
            o = json_object();
            buckets = json_array();
            counts = json_array();
            json_object_set_new(o, "m", json_integer(k[i].minute_us));
            json_object_set_new(o, "st", json_string(aud_lat_name((aud_lat_t)k[i].stage)));
            json_object_set_new(o, "src", json_string(k[i].source));
            json_object_set_new(o, "o", json_string(aud_outcome_name((aud_outcome_t)k[i].outcome)));
            json_object_set_new(o, "b", buckets);
            json_object_set_new(o, "c", counts);
            json_array_append_new(out, o);
        }
        json_array_append_new(buckets, json_integer(k[i].bucket));
        json_array_append_new(counts, json_integer((json_int_t)(j - i)));
        i = j;
    }
    free(k);
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
        rc = hl_pg_error(c, r, what, errbuf, errcap);
    free(text);
    if (keep && rc == 0)
        *keep = r;
    else
        PQclear(r);
    return rc;
}

/* Seeds the pairing map and the stored outcomes (outcomes_init'ed here, for the stored ones
 * and the batch's own) with the stored records of this batch's request ids. */
static int seed_pairs(PGconn *c, const aud_item_t *items, size_t n, aud_pairs_t *pairs,
                      outcomes_t *outcomes, char *errbuf, size_t errcap)
{
    json_t *ids = json_array();
    PGresult *r = NULL;
    aud_sample_t scratch[4];
    int rc = 0;
    /* Only an accepted request pairs with a persisted record, and only outcomes can repeat;
     * rejections need no look-up. */
    for (size_t i = 0; i < n; i++) {
        const hl_lineage_rec_t *rec = &items[i].rec;
        if (items[i].valid &&
            (rec->stage == HL_STAGE_PERSISTED || rec->stage == HL_STAGE_DEAD_LETTERED ||
             (rec->stage == HL_STAGE_INGRESS && rec->status == 202)))
            json_array_append_new(ids, json_string(rec->request_id));
    }
    if (json_array_size(ids) > 0)
        rc = exec_json(c, pairs_sql, 0, NULL, ids, "pairing lookup", errbuf, errcap, &r);
    json_decref(ids);
    outcomes_init(outcomes, n + (r ? (size_t)PQntuples(r) : 0));
    if (rc || !r) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        hl_lineage_rec_t rec;
        const char *why;
        size_t k = 0;
        if (hl_lineage_parse(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), &rec, &why) != 0)
            continue;
        aud_samples_from_record(pairs, &rec, scratch, &k); /* state only; samples dropped */
        if (is_outcome(&rec)) (void)outcomes_add(outcomes, &rec);
    }
    PQclear(r);
    return 0;
}

static int run(PGconn *c, const char *sql, char *errbuf, size_t errcap)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : hl_pg_error(c, r, sql, errbuf, errcap);
    PQclear(r);
    return rc;
}

int aud_store_write_batch(PGconn *c, aud_head_t *heads, const aud_item_t *items, size_t n,
                          const char *group, const char *topic, aud_live_t *live,
                          aud_write_stats_t *stats, char *errbuf, size_t errcap)
{
    aud_head_t next[AUD_MAX_CHAINS];
    bool touched[AUD_MAX_CHAINS] = {false};
    copybuf_t rows = {{NULL, 0, 0}, 0};
    json_t *rollups = json_array(), *offsets = json_array();
    aud_sample_t *samples = hl_xcalloc(3 * n + 1, sizeof *samples);
    size_t nsamples = 0;
    aud_pairs_t pairs;
    outcomes_t outcomes = {NULL, 0};
    const char *fixed[2] = {group, topic};
    int rc;

    int64_t t0 = hl_mono_us(), t_pairs = 0, t_rows = 0, t_rollups = 0;
    memset(stats, 0, sizeof *stats);
    aud_pairs_init(&pairs, 2 * n + 1);
    rc = run(c, "BEGIN", errbuf, errcap);
    if (rc == 0) rc = seed_pairs(c, items, n, &pairs, &outcomes, errbuf, errcap);
    t_pairs = hl_mono_us();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const aud_item_t *it = &items[i];
        int32_t ch = it->partition;
        if (ch < 0 || ch >= AUD_MAX_CHAINS || !heads[ch].loaded) {
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
        aud_chain_row_t row = {ch,
                               next[ch].seq + 1,
                               it->offset,
                               it->rec.request_id,
                               hl_stage_name(it->rec.stage),
                               it->rec.ts_us,
                               it->text,
                               it->len};
        unsigned char h[AUD_CHAIN_HASH_LEN];
        if (aud_chain_hash(next[ch].hash, &row, h) != 0) {
            snprintf(errbuf, errcap, "sha256 failed");
            rc = HL_EIO;
            break;
        }
        if (row_copy(&rows, it, row.seq, next[ch].hash, h) != 0) {
            snprintf(errbuf, errcap, "lineage record at %d/%" PRId64 " holds a NUL byte",
                     it->partition, it->offset);
            rc = HL_EINVAL;
            break;
        }
        next[ch].seq = row.seq;
        memcpy(next[ch].hash, h, sizeof h);
        aud_samples_from_record(&pairs, &it->rec, samples, &nsamples);
    }
    if (rc == 0) rollup_rows(samples, nsamples, rollups);
    for (int ch = 0; rc == 0 && ch < AUD_MAX_CHAINS; ch++)
        if (touched[ch]) {
            json_t *o = json_object();
            json_object_set_new(o, "p", json_integer(ch));
            json_object_set_new(o, "o", json_integer(next[ch].next_offset));
            json_array_append_new(offsets, o);
        }
    if (rc == 0 && rows.rows > 0) {
        hl_pg_copy_end(&rows.b);
        rc = copy_rows(c, &rows, errbuf, errcap);
    }
    t_rows = hl_mono_us();
    if (rc == 0 && json_array_size(rollups) > 0)
        rc = exec_json(c, insert_rollups_sql, 0, NULL, rollups, "insert rollups", errbuf, errcap,
                       NULL);
    t_rollups = hl_mono_us();
    if (rc == 0 && json_array_size(offsets) > 0)
        rc = exec_json(c, upsert_offsets_sql, 2, fixed, offsets, "store offsets", errbuf, errcap,
                       NULL);
    if (rc == 0) rc = run(c, "COMMIT", errbuf, errcap);
    if (rc == 0) {
        for (int ch = 0; ch < AUD_MAX_CHAINS; ch++)
            if (touched[ch]) heads[ch] = next[ch];
        for (size_t i = 0; i < nsamples; i++) aud_live_record(live, &samples[i]);
        stats->rows = rows.rows;
        stats->samples = nsamples;
        hl_debug("batch: %zu rows, pairing %lld us, hashing+rows %lld us, rollups %lld us, "
                 "offsets+commit %lld us",
                 stats->rows, (long long)(t_pairs - t0), (long long)(t_rows - t_pairs),
                 (long long)(t_rollups - t_rows), (long long)(hl_mono_us() - t_rollups));
    } else if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        char ignore[64];
        (void)run(c, "ROLLBACK", ignore, sizeof ignore);
    }
    free(rows.b.p);
    json_decref(rollups);
    json_decref(offsets);
    aud_pairs_deinit(&pairs);
    outcomes_deinit(&outcomes);
    free(samples);
    return rc;
}

/* One bounded fold in a transaction that waits at most a second for any one lock (an older
 * auditor's batch, another fold) and runs each statement at most five seconds, so the
 * consumer thread is never held long. */
static int fold_once(PGconn *c, long *moved, long *keys, char *errbuf, size_t errcap)
{
    int rc = run(c, "BEGIN", errbuf, errcap);
    if (rc == 0)
        rc = run(c, "SET LOCAL lock_timeout = '1s'; SET LOCAL statement_timeout = '5s'", errbuf,
                 errcap);
    if (rc == 0) {
        PGresult *r = PQexec(c, fold_rollups_sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            rc = hl_pg_error(c, r, "fold rollups", errbuf, errcap);
        else {
            *moved = strtol(PQgetvalue(r, 0, 0), NULL, 10);
            *keys = strtol(PQgetvalue(r, 0, 1), NULL, 10);
        }
        PQclear(r);
    }
    if (rc == 0) rc = run(c, "COMMIT", errbuf, errcap);
    if (rc != 0 && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        char ignore[64];
        (void)run(c, "ROLLBACK", ignore, sizeof ignore);
    }
    return rc;
}

int aud_store_fold_rollups(PGconn *c, int64_t budget_us, long *moved, long *keys, bool *more,
                           char *errbuf, size_t errcap)
{
    int64_t start = hl_mono_us();
    long n = AUD_FOLD_ROWS, k = 0;
    *moved = *keys = 0;
    *more = false;
    while (n == AUD_FOLD_ROWS) {
        if (hl_mono_us() - start >= budget_us) {
            *more = true;
            break;
        }
        int rc = fold_once(c, &n, &k, errbuf, errcap);
        if (rc != 0) return rc;
        *moved += n;
        *keys += k;
    }
    return 0;
}
