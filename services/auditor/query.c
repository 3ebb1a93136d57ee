/* Read-side SQL: Postgres builds the JSON of each list, C adds paging and percentiles. */
#include "query.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hl/util.h"
#include "store.h"

/* What a report shows of a lineage row comes from `record`, which the hash covers, never from
 * the columns derived from it (those serve the filters and indexes; verify compares them with
 * the record). Only rows inside a chain's range are shown: the verifier walks no others. */
#define ROW_COLUMNS                                                                                \
    "l.id, l.chain, l.seq, l.stage, l.ts_us, l.request_id, l.record::json->>'source' AS source,"   \
    " l.record::json->>'message_id' AS message_id,"                                                \
    " l.record::json->>'event_type' AS event_type, (l.record::json->>'status')::int AS status,"    \
    " l.record::json->>'error_code' AS error_code,"                                                \
    " (l.record::json->>'partition')::int AS partition,"                                           \
    " (l.record::json->>'offset')::bigint AS \"offset\","                                          \
    " (l.record::json->>'latency_us')::bigint AS latency_us, l.lineage_offset,"                    \
    " encode(l.hash, 'hex') AS hash, l.record::json AS record"
#define IN_CHAIN(t) " " t ".chain >= 0 AND " t ".chain < 256 AND " t ".seq >= 1"
/* The same test written so that no index can serve it: inside a per-row lookup by request id,
 * a planner without statistics (a table never analyzed) otherwise scans the (chain, seq) index
 * over the whole range once per outer row, which took minutes at 100,000 requests. */
#define IN_CHAIN_FILTER(t) " " t ".chain + 0 >= 0 AND " t ".chain + 0 < 256 AND " t ".seq + 0 >= 1"

/* Runs a query whose single cell is JSON text and parses it. */
static json_t *json_query(PGconn *c, const char *sql, int n, const char *const *params,
                          char *errbuf, size_t errcap)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    json_t *out = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        hl_pg_error(c, r, "query", errbuf, errcap);
    } else {
        json_error_t e;
        out = json_loadb(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), 0, &e);
        if (!out) snprintf(errbuf, errcap, "query: unreadable JSON from postgres: %s", e.text);
    }
    PQclear(r);
    return out;
}

/* Cuts an array fetched with limit+1 rows to limit and says where the next page starts. */
static json_t *paged(json_t *rows, int limit, const char *key)
{
    json_t *o = json_object();
    json_t *next = json_null();
    if (json_array_size(rows) > (size_t)limit) {
        json_array_remove(rows, (size_t)limit);
        json_t *last = json_array_get(rows, (size_t)limit - 1);
        char buf[64];
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(last, "ts_us")),
                 json_integer_value(json_object_get(last, "id")));
        next = json_string(buf);
    }
    json_object_set_new(o, key, rows);
    json_object_set_new(o, "next_cursor", next);
    return o;
}

json_t *aud_q_request(PGconn *c, const char *id, char *errbuf, size_t errcap)
{
    const char *p[1] = {id};
    return json_query(
        c,
        "SELECT coalesce(json_agg(x ORDER BY x.ts_us, x.id), '[]') FROM (SELECT " ROW_COLUMNS
        " FROM lineage l WHERE l.request_id = $1 AND" IN_CHAIN("l") " LIMIT 1000) x",
        1, p, errbuf, errcap);
}

json_t *aud_q_message(PGconn *c, const char *mid, const char *source, int limit, aud_cursor_t after,
                      char *errbuf, size_t errcap)
{
    char ts[24], id[24], lim[16];
    snprintf(ts, sizeof ts, "%" PRId64, after.ts_us);
    snprintf(id, sizeof id, "%" PRId64, after.id);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[5] = {mid, source, ts, id, lim};
    json_t *events = json_query(
        c,
        "SELECT coalesce(json_agg(x ORDER BY x.kafka_partition, x.kafka_offset), '[]') FROM"
        " (SELECT e.id, e.source, e.message_id, e.event_type, e.request_id::text, e.received_at,"
        " e.kafka_partition, e.kafka_offset, e.persisted_at FROM webhook_events e"
        " WHERE e.message_id = $1 AND ($2::text IS NULL OR e.source = $2) LIMIT 1000) x",
        2, p, errbuf, errcap);
    if (!events) return NULL;
    json_t *rows = json_query(
        c,
        "SELECT coalesce(json_agg(x ORDER BY x.ts_us, x.id), '[]') FROM (SELECT " ROW_COLUMNS
        " FROM lineage l WHERE l.message_id = $1 AND ($2::text IS NULL OR l.source = $2) "
        "AND" IN_CHAIN("l") " AND (l.ts_us, l.id) > ($3::bigint, $4::bigint) ORDER BY l.ts_us, l.id"
                            " LIMIT $5::int) x",
        5, p, errbuf, errcap);
    if (!rows) {
        json_decref(events);
        return NULL;
    }
    json_t *o = paged(rows, limit, "lineage");
    json_object_set_new(o, "message_id", json_string(mid));
    json_object_set_new(o, "events", events);
    return o;
}

json_t *aud_q_requests(PGconn *c, int64_t from, int64_t to, const char *source, int status,
                       int limit, aud_cursor_t after, char *errbuf, size_t errcap)
{
    char f[24], t[24], st[16], ts[24], id[24], lim[16];
    snprintf(f, sizeof f, "%" PRId64, from);
    snprintf(t, sizeof t, "%" PRId64, to);
    snprintf(st, sizeof st, "%d", status);
    snprintf(ts, sizeof ts, "%" PRId64, after.ts_us);
    snprintf(id, sizeof id, "%" PRId64, after.id);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[7] = {f, t, source, status > 0 ? st : NULL, ts, id, lim};
    json_t *rows = json_query(
        c,
        "SELECT coalesce(json_agg(x ORDER BY x.ts_us, x.id), '[]') FROM (SELECT " ROW_COLUMNS
        " FROM lineage l WHERE l.stage = " SQL_STAGE_INGRESS " AND" IN_CHAIN(
            "l") " AND l.ts >= timestamptz 'epoch' + $1::bigint * interval '1 microsecond'"
                 " AND l.ts < timestamptz 'epoch' + $2::bigint * interval '1 microsecond'"
                 " AND ($3::text IS NULL OR l.source = $3) AND ($4::int IS NULL OR l.status = $4)"
                 " AND (l.ts_us, l.id) > ($5::bigint, $6::bigint) ORDER BY l.ts_us, l.id LIMIT "
                 "$7::int) x",
        7, p, errbuf, errcap);
    return rows ? paged(rows, limit, "requests") : NULL;
}

/* A gap: an accepted ingress record with no persisted/dead_lettered record within the grace
 * period. It is "closed" when such a record came later, "open" while none has. The closing
 * record counts only in the request's own chain: every lineage record of a request is keyed
 * by its request id, so all of them land in one partition, and an outcome found in another
 * chain is not this request's (a row put there to hide the gap). It must also be the outcome of
 * the same event: the elements of a split batch share their request id, and one element's
 * outcome closes no other's (ELEMENT_OF, query.h). */
#define GAPS_FROM                                                                                  \
    " FROM lineage l LEFT JOIN LATERAL (SELECT k.stage, k.ts_us FROM lineage k"                    \
    " WHERE k.request_id = l.request_id AND k.stage IN " SQL_STAGE_OUTCOMES " AND"                 \
    " k.chain + 0 = l.chain AND" ELEMENT_OF("k", "l") " AND" IN_CHAIN_FILTER(                      \
        "k") " ORDER BY k.ts_us LIMIT 1) k ON true"                                                \
             " WHERE l.stage = " SQL_STAGE_INGRESS " AND l.status = 202 AND" IN_CHAIN(             \
                 "l") " AND l.ts >= timestamptz 'epoch' + $2::bigint * interval '1 microsecond'"   \
                      " AND l.ts < timestamptz 'epoch' + $3::bigint * interval '1 microsecond'"    \
                      " AND l.ts_us + $1::bigint < (extract(epoch from clock_timestamp()) * "      \
                      "1000000)::bigint"                                                           \
                      " AND (k.ts_us IS NULL OR k.ts_us > l.ts_us + $1::bigint)"

json_t *aud_q_gaps(PGconn *c, int64_t grace, const char *state, int64_t from, int64_t to, int limit,
                   aud_cursor_t after, char *errbuf, size_t errcap)
{
    char g[24], f[24], t[24], ts[24], id[24], lim[16];
    snprintf(g, sizeof g, "%" PRId64, grace);
    snprintf(f, sizeof f, "%" PRId64, from);
    snprintf(t, sizeof t, "%" PRId64, to);
    snprintf(ts, sizeof ts, "%" PRId64, after.ts_us);
    snprintf(id, sizeof id, "%" PRId64, after.id);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *p[7] = {g, f, t, state, ts, id, lim};
    json_t *rows =
        json_query(c,
                   "SELECT coalesce(json_agg(x ORDER BY x.ts_us, x.id), '[]') FROM (SELECT l.id,"
                   " l.request_id, l.record::json->>'source' AS source,"
                   " l.record::json->>'message_id' AS message_id,"
                   " l.record::json->>'event_type' AS event_type, l.ts_us, l.chain, l.seq,"
                   " CASE WHEN k.stage IS NULL THEN 'open' ELSE 'closed' END AS state,"
                   " k.stage AS closed_by, k.ts_us AS closed_us" GAPS_FROM
                   " AND ($4 = 'all' OR ($4 = 'open') = (k.stage IS NULL))"
                   " AND (l.ts_us, l.id) > ($5::bigint, $6::bigint) ORDER BY l.ts_us, l.id"
                   " LIMIT $7::int) x",
                   7, p, errbuf, errcap);
    return rows ? paged(rows, limit, "gaps") : NULL;
}

int aud_q_gap_counts(PGconn *c, int64_t grace, int64_t from, int64_t *open, int64_t *closed,
                     char *errbuf, size_t errcap)
{
    char g[24], f[24], t[24];
    snprintf(g, sizeof g, "%" PRId64, grace);
    snprintf(f, sizeof f, "%" PRId64, from);
    snprintf(t, sizeof t, "%" PRId64, INT64_C(4102444800000000));
    const char *p[3] = {g, f, t};
    json_t *o =
        json_query(c,
                   "SELECT json_build_object('open', count(*) FILTER (WHERE k.stage IS"
                   " NULL), 'closed', count(*) FILTER (WHERE k.stage IS NOT NULL))" GAPS_FROM,
                   3, p, errbuf, errcap);
    if (!o) return HL_EPG;
    *open = json_integer_value(json_object_get(o, "open"));
    *closed = json_integer_value(json_object_get(o, "closed"));
    json_decref(o);
    return 0;
}

int aud_q_latency(PGconn *c, aud_lat_t stage, const char *source, const char *outcome, int64_t from,
                  int64_t to, hl_hist_t *h, char *errbuf, size_t errcap)
{
    char f[24], t[24];
    snprintf(f, sizeof f, "%" PRId64, from - from % 60000000);
    snprintf(t, sizeof t, "%" PRId64, to);
    const char *p[5] = {aud_lat_name(stage), source, f, t, outcome};
    PGresult *r =
        hl_pg_select(c,
                     "SELECT bucket, sum(count) FROM latency_counts WHERE stage = $1"
                     " AND ($2::text IS NULL OR source = $2)"
                     " AND minute >= timestamptz 'epoch' + $3::bigint * interval '1 microsecond'"
                     " AND minute < timestamptz 'epoch' + $4::bigint * interval '1 microsecond'"
                     " AND ($5::text IS NULL OR outcome = $5) GROUP BY bucket",
                     5, p, "latency", errbuf, errcap);
    if (!r) return HL_EPG;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t b, n, lo, hi;
        if (hl_parse_i64(PQgetvalue(r, i, 0), 0, (int64_t)hl_hist_bucket_count() - 1, &b) ||
            hl_parse_i64(PQgetvalue(r, i, 1), 0, INT64_MAX, &n))
            continue;
        hl_hist_bucket_bounds((size_t)b, &lo, &hi);
        /* The middle of the bucket: the rollup kept only which bucket a sample fell in. */
        hl_hist_record_n(h, lo + (hi - lo) / 2, (uint64_t)n);
    }
    PQclear(r);
    return 0;
}

json_t *aud_q_newest_checkpoint(PGconn *c, char *errbuf, size_t errcap)
{
    return json_query(c,
                      "SELECT coalesce(json_agg(x), '[]') FROM (SELECT chain, seq, ts_us, key_id"
                      " FROM lineage_checkpoints ORDER BY id DESC LIMIT 1) x",
                      0, NULL, errbuf, errcap);
}

static void bucket_cb(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    json_t *a = json_array();
    json_array_append_new(a, json_integer(lo));
    json_array_append_new(a, json_integer(hi));
    json_array_append_new(a, json_integer((json_int_t)count));
    json_array_append_new(arg, a);
}

json_t *aud_hist_summary(const hl_hist_t *h, int with_buckets)
{
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)hl_hist_count(h)));
    json_object_set_new(o, "p50", json_integer(hl_hist_percentile(h, 50)));
    json_object_set_new(o, "p90", json_integer(hl_hist_percentile(h, 90)));
    json_object_set_new(o, "p95", json_integer(hl_hist_percentile(h, 95)));
    json_object_set_new(o, "p99", json_integer(hl_hist_percentile(h, 99)));
    json_object_set_new(o, "p99_9", json_integer(hl_hist_percentile(h, 99.9)));
    json_object_set_new(o, "max", json_integer(hl_hist_max(h)));
    if (with_buckets) {
        json_t *b = json_array();
        hl_hist_foreach(h, bucket_cb, b);
        json_object_set_new(o, "buckets", b);
    }
    return o;
}

json_t *aud_q_budget(PGconn *c, int64_t from, int64_t to, const char *source, uint32_t ack_ms,
                     uint32_t e2e_ms, double target, char *errbuf, size_t errcap)
{
    char f[24], t[24], ack[24];
    snprintf(f, sizeof f, "%" PRId64, from);
    snprintf(t, sizeof t, "%" PRId64, to);
    snprintf(ack, sizeof ack, "%" PRId64, (int64_t)ack_ms * 1000);
    const char *p[4] = {f, t, source, ack};
    /* Good: answered below 500 (a client error is the client's) within the ack objective. */
    json_t *o = json_query(
        c,
        "WITH r AS (SELECT (record::json->>'status')::int AS status,"
        " record::json->>'error_code' AS error_code,"
        " (record::json->>'latency_us')::bigint AS latency_us FROM lineage l"
        " WHERE stage = " SQL_STAGE_INGRESS " AND" IN_CHAIN(
            "l") " AND ts >= timestamptz 'epoch' + $1::bigint * interval '1 microsecond'"
                 " AND ts < timestamptz 'epoch' + $2::bigint * interval '1 microsecond'"
                 " AND ($3::text IS NULL OR source = $3))"
                 " SELECT json_build_object('total', (SELECT count(*) FROM r),"
                 " 'good', (SELECT count(*) FROM r WHERE coalesce(status, 0) < 500"
                 "   AND coalesce(latency_us, 0) <= $4::bigint),"
                 " 'by_status', (SELECT coalesce(json_object_agg(s, n), '{}') FROM (SELECT"
                 "   coalesce(status::text, 'none') AS s, count(*) AS n FROM r GROUP BY 1) a),"
                 " 'by_error_code', (SELECT coalesce(json_object_agg(e, n), '{}') FROM (SELECT"
                 "   error_code AS e, count(*) AS n FROM r WHERE error_code IS NOT NULL GROUP BY "
                 "1) b))",
        4, p, errbuf, errcap);
    if (!o) return NULL;
    json_int_t total = json_integer_value(json_object_get(o, "total"));
    json_int_t good = json_integer_value(json_object_get(o, "good"));
    double allowed = (1.0 - target) * (double)total;
    json_t *slo = json_object();
    json_object_set_new(slo, "target", json_real(target));
    json_object_set_new(slo, "ack_ms", json_integer(ack_ms));
    json_object_set_new(slo, "e2e_ms", json_integer(e2e_ms));
    json_object_set_new(slo, "good", json_integer(good));
    json_object_set_new(slo, "bad", json_integer(total - good));
    json_object_set_new(slo, "good_share",
                        total ? json_real((double)good / (double)total) : json_null());
    json_object_set_new(slo, "met", json_boolean(!total || (double)good / (double)total >= target));
    json_object_set_new(slo, "budget_allowed_bad", json_real(allowed));
    json_object_set_new(slo, "budget_remaining",
                        allowed > 0 ? json_real(1.0 - (double)(total - good) / allowed)
                                    : json_null());
    /* End-to-end objective from the rollups: share of e2e samples within e2e_ms. */
    hl_hist_t *h = hl_hist_new();
    if (aud_q_latency(c, AUD_LAT_E2E, source, NULL, from, to, h, errbuf, errcap) != 0) {
        hl_hist_free(h);
        json_decref(slo);
        json_decref(o);
        return NULL;
    }
    uint64_t n = hl_hist_count(h), within = 0;
    int64_t limit = (int64_t)e2e_ms * 1000;
    for (size_t i = 0; i < hl_hist_bucket_count(); i++) {
        int64_t lo, hi;
        uint64_t k = hl_hist_bucket_get(h, i);
        if (!k) continue;
        hl_hist_bucket_bounds(i, &lo, &hi);
        if (hi <= limit) within += k;
    }
    hl_hist_free(h);
    json_object_set_new(slo, "e2e_count", json_integer((json_int_t)n));
    json_object_set_new(slo, "e2e_within", json_integer((json_int_t)within));
    json_object_set_new(slo, "e2e_share", n ? json_real((double)within / (double)n) : json_null());
    json_object_set_new(o, "slo", slo);
    json_object_set_new(o, "from_us", json_integer(from));
    json_object_set_new(o, "to_us", json_integer(to));
    return o;
}
