/* Incremental gap counts (gapscan.h). */
#include "gapscan.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "hl/log.h"
#include "hl/util.h"
#include "query.h"
#include "store.h"

#define MINUTE_US INT64_C(60000000)

struct aud_gapscan {
    int64_t grace_us, window_us;
    int64_t wm;           /* every row with id <= wm has been read; -1: not started */
    json_t *open;         /* "chain/request id" -> ts_us of the ingress row, for open gaps */
    size_t nslots;        /* closed gaps per minute of receipt, a ring over the window */
    int64_t *slot_minute; /* which minute each slot counts (-1: none) */
    int64_t *slot_count;
    int caught_up;
};

aud_gapscan_t *aud_gapscan_new(int64_t grace_us, int64_t window_us)
{
    aud_gapscan_t *g = hl_xcalloc(1, sizeof(*g));
    g->grace_us = grace_us;
    g->window_us = window_us;
    g->wm = -1;
    g->open = json_object();
    if (!g->open) hl_die("out of memory");
    g->nslots = (size_t)(window_us / MINUTE_US) + 2;
    g->slot_minute = hl_xcalloc(g->nslots, sizeof(int64_t));
    g->slot_count = hl_xcalloc(g->nslots, sizeof(int64_t));
    for (size_t i = 0; i < g->nslots; i++) g->slot_minute[i] = -1;
    return g;
}

void aud_gapscan_free(aud_gapscan_t *g)
{
    if (!g) return;
    json_decref(g->open);
    free(g->slot_minute);
    free(g->slot_count);
    free(g);
}

static void reset(aud_gapscan_t *g)
{
    g->wm = -1;
    g->caught_up = 0;
    json_object_clear(g->open);
    for (size_t i = 0; i < g->nslots; i++) {
        g->slot_minute[i] = -1;
        g->slot_count[i] = 0;
    }
}

static void count_closed(aud_gapscan_t *g, int64_t received_us)
{
    if (received_us < 0) return;
    int64_t m = received_us / MINUTE_US;
    size_t s = (size_t)(m % (int64_t)g->nslots);
    if (g->slot_minute[s] != m) {
        if (g->slot_minute[s] > m) return; /* older than anything the ring still holds */
        g->slot_minute[s] = m;
        g->slot_count[s] = 0;
    }
    g->slot_count[s]++;
}

static int64_t closed_since(const aud_gapscan_t *g, int64_t from_us)
{
    int64_t first = from_us / MINUTE_US, n = 0;
    for (size_t i = 0; i < g->nslots; i++)
        if (g->slot_minute[i] >= first) n += g->slot_count[i];
    return n;
}

static void expire_open(aud_gapscan_t *g, int64_t from_us)
{
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(g->open, tmp, key, v)
    {
        if (json_integer_value(v) < from_us) json_object_del(g->open, key);
    }
}

static int i64_cell(const PGresult *r, int row, int col, int64_t *out)
{
    if (PQgetisnull(r, row, col)) return 0;
    return hl_parse_i64(PQgetvalue(r, row, col), INT64_MIN, INT64_MAX, out) == 0;
}

/* The first id to read: the smallest of the accepted requests in the window. */
static int start(aud_gapscan_t *g, PGconn *c, int64_t from_us, char *errbuf, size_t errcap)
{
    char f[24];
    snprintf(f, sizeof f, "%" PRId64, from_us);
    const char *p[1] = {f};
    PGresult *r =
        hl_pg_select(c,
                     "SELECT coalesce((SELECT min(id) FROM lineage WHERE stage = " SQL_STAGE_INGRESS
                     " AND ts >= timestamptz 'epoch' + $1::bigint * interval '1 microsecond'),"
                     " (SELECT coalesce(max(id), 0) FROM lineage) + 1) - 1",
                     1, p, "gap scan start", errbuf, errcap);
    if (!r) return HL_EPG;
    int64_t wm;
    int ok = PQntuples(r) == 1 && i64_cell(r, 0, 0, &wm);
    PQclear(r);
    if (!ok) {
        snprintf(errbuf, errcap, "gap scan start: unexpected answer");
        return HL_EPG;
    }
    g->wm = wm;
    return 0;
}

/* Reads the ids (wm, upto] where upto stops before the first row stored less than grace ago.
 * Returns 1 when this reached the settled end of the table, 0 when there is more, HL_EPG. */
static int chunk(aud_gapscan_t *g, PGconn *c, int64_t from_us, char *errbuf, size_t errcap)
{
    char wm[24], n[24], grace[24], from[24], upto_s[24];
    snprintf(wm, sizeof wm, "%" PRId64, g->wm);
    snprintf(n, sizeof n, "%d", AUD_GAPSCAN_CHUNK);
    snprintf(grace, sizeof grace, "%" PRId64, g->grace_us);
    snprintf(from, sizeof from, "%" PRId64, from_us);
    const char *pb[3] = {wm, n, grace};
    PGresult *r =
        hl_pg_select(c,
                     "SELECT coalesce((SELECT min(id) - 1 FROM lineage WHERE id > $1::bigint"
                     " AND id <= hi.v AND stored_at >= clock_timestamp()"
                     " - $3::bigint * interval '1 microsecond'), hi.v), hi.v"
                     " FROM (SELECT least($1::bigint + $2::bigint,"
                     " (SELECT coalesce(max(id), 0) FROM lineage)) AS v) hi",
                     3, pb, "gap scan bounds", errbuf, errcap);
    if (!r) return HL_EPG;
    int64_t upto = 0, hi = 0;
    int ok = PQntuples(r) == 1 && i64_cell(r, 0, 0, &upto) && i64_cell(r, 0, 1, &hi);
    PQclear(r);
    if (!ok) {
        snprintf(errbuf, errcap, "gap scan bounds: unexpected answer");
        return HL_EPG;
    }
    if (upto <= g->wm) return 1;
    snprintf(upto_s, sizeof upto_s, "%" PRId64, upto);

    /* Outcomes stored in the range, for the requests already open. */
    PGresult *outcomes = NULL;
    if (json_object_size(g->open) > 0) {
        const char *po[2] = {wm, upto_s};
        outcomes = hl_pg_select(
            c,
            /* Keyed by the accepted element each closes (ELEMENT_OF). */
            "SELECT" ELEMENT_KEY(
                "i") ", k.ts_us FROM lineage k JOIN lineage i"
                     " ON i.request_id = k.request_id AND i.chain + 0 = k.chain"
                     " AND i.stage = " SQL_STAGE_INGRESS " AND i.status = 202 AND" ELEMENT_OF(
                         "k", "i") " WHERE k.id > $1::bigint AND k.id <= $2::bigint"
                                   " AND k.stage IN " SQL_STAGE_OUTCOMES,
            2, po, "gap scan outcomes", errbuf, errcap);
        if (!outcomes) return HL_EPG;
    }
    /* Accepted requests stored in the range that are gaps: no outcome, or a late one. */
    const char *pg[4] = {wm, upto_s, from, grace};
    PGresult *gaps = hl_pg_select(
        c,
        "SELECT" ELEMENT_KEY(
            "l") ", l.ts_us, k.ts_us FROM lineage l"
                 " LEFT JOIN LATERAL (SELECT k.ts_us FROM lineage k WHERE k.request_id = "
                 "l.request_id"
                 " AND k.chain + 0 = l.chain AND" ELEMENT_OF(
                     "k", "l") " AND k.stage IN " SQL_STAGE_OUTCOMES
                               " ORDER BY k.ts_us LIMIT 1) k ON true"
                               " WHERE l.id > $1::bigint AND l.id <= $2::bigint AND l.stage "
                               "= " SQL_STAGE_INGRESS
                               " AND l.status = 202 AND l.ts_us >= $3::bigint"
                               " AND (k.ts_us IS NULL OR k.ts_us > l.ts_us + $4::bigint)",
        4, pg, "gap scan", errbuf, errcap);
    if (!gaps) {
        PQclear(outcomes);
        return HL_EPG;
    }
    for (int i = 0; outcomes && i < PQntuples(outcomes); i++) {
        json_t *v = json_object_get(g->open, PQgetvalue(outcomes, i, 0));
        int64_t done;
        if (!v || !i64_cell(outcomes, i, 1, &done)) continue;
        int64_t received = json_integer_value(v);
        if (done > received + g->grace_us) count_closed(g, received); /* else: no gap at all */
        json_object_del(g->open, PQgetvalue(outcomes, i, 0));
    }
    for (int i = 0; i < PQntuples(gaps); i++) {
        int64_t received;
        if (!i64_cell(gaps, i, 1, &received)) continue;
        if (PQgetisnull(gaps, i, 2))
            json_object_set_new(g->open, PQgetvalue(gaps, i, 0), json_integer(received));
        else
            count_closed(g, received);
    }
    PQclear(outcomes);
    PQclear(gaps);
    int64_t asked_to = g->wm + AUD_GAPSCAN_CHUNK;
    g->wm = upto;
    return upto < hi || hi < asked_to; /* stopped at a row too recent, or at the last one */
}

int aud_gapscan_run(aud_gapscan_t *g, PGconn *c, int64_t now_us, int64_t budget_us, int64_t *open,
                    int64_t *closed, char *errbuf, size_t errcap)
{
    int64_t from = now_us - g->window_us, t0 = hl_mono_us();
    if (json_object_size(g->open) > AUD_GAPSCAN_OPEN_MAX) {
        /* Too many to follow one by one: count them all, and start over next time. */
        reset(g);
        return aud_q_gap_counts(c, g->grace_us, from, open, closed, errbuf, errcap) == 0 ? 1
                                                                                         : HL_EPG;
    }
    if (g->wm < 0 && start(g, c, from, errbuf, errcap) != 0) return HL_EPG;
    for (;;) {
        int rc = chunk(g, c, from, errbuf, errcap);
        if (rc < 0) return rc;
        if (rc == 1) {
            g->caught_up = 1;
            break;
        }
        if (hl_mono_us() - t0 >= budget_us) break;
    }
    expire_open(g, from);
    if (!g->caught_up) return 0;
    *open = (int64_t)json_object_size(g->open);
    *closed = closed_since(g, from);
    return 1;
}
