/* Verification of a replay: the Postgres half (exactly once, order, gaps) reads the run's rows
 * in one sorted pass; the auditor half looks every request id up over keep-alive connections
 * from a few threads, re-asking for the ones not complete yet until the settle time is over. */
#include "verify.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "hl/pg.h"
#include "hl/util.h"
#include "verify_lineage.h"

#define IDS_PER_QUERY 2000

/* One accepted event of one message, in the order the 202s arrived. */
typedef struct {
    const char *type;
    const char *request_id;
    int count; /* rows found */
    int32_t partition;
    int64_t offset;
    int64_t persisted_us;
    char xmin[16]; /* inserting transaction: rows of one transaction commit together */
} ev_state_t;

typedef struct {
    const cli_wl_msg_t *msg;
    ev_state_t *ev;
    size_t nev;
} msg_state_t;

/* Builds the per-message accepted-event lists. Returns the number of accepted events. */
static int64_t collect(const cli_workload_t *w, msg_state_t *ms)
{
    int64_t total = 0;
    for (size_t m = 0; m < w->nmsgs; m++) {
        const cli_wl_msg_t *msg = &w->msgs[m];
        ms[m].msg = msg;
        ms[m].ev = hl_xcalloc(msg->nreqs ? msg->nreqs : 1, sizeof(ev_state_t));
        for (size_t i = 0; i < msg->nreqs; i++) {
            const cli_wl_req_t *rq = &msg->reqs[i];
            if (rq->out.status != 202) continue;
            int seen = 0;
            for (size_t e = 0; e < ms[m].nev; e++)
                if (strcmp(ms[m].ev[e].type, rq->event_type) == 0) seen = 1;
            if (seen) continue; /* a duplicate of an event already accepted */
            ms[m].ev[ms[m].nev++] =
                (ev_state_t){.type = rq->event_type, .request_id = rq->out.request_id};
            total++;
        }
    }
    return total;
}

typedef struct {
    char **ids; /* message ids with at least one accepted event */
    size_t n;
    size_t *midx; /* their message index */
} idset_t;

static const char SQL_COUNT[] = "SELECT count(*) FROM webhook_events WHERE source = $1 "
                                "AND message_id = ANY($2::text[])";

static int add_count(const PGresult *r, size_t off, size_t n, void *arg)
{
    *(int64_t *)arg += strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    return 0;
}

static int64_t count_rows(PGconn *c, const char *source, const idset_t *ids, char *errbuf,
                          size_t errcap)
{
    int64_t total = 0;
    const hl_pg_chunked_t q = {SQL_COUNT, &source, 2, IDS_PER_QUERY, "count rows"};
    int rc = hl_pg_query_chunked(c, &q, (const char *const *)ids->ids, ids->n, add_count, &total,
                                 errbuf, errcap);
    return rc ? rc : total;
}

static ev_state_t *find_ev(msg_state_t *s, const char *type)
{
    for (size_t e = 0; e < s->nev; e++)
        if (strcmp(s->ev[e].type, type) == 0) return &s->ev[e];
    return NULL;
}

static const char SQL_ROWS[] =
    "SELECT message_id, event_type, kafka_partition, kafka_offset,"
    " (extract(epoch FROM persisted_at) * 1000000)::bigint, request_id::text, xmin::text"
    " FROM webhook_events WHERE source = $1 AND message_id = ANY($2::text[])"
    /* Byte order, as strcmp sorts the ledger's ids for the merge: the column's collation (a
     * database made with a locale such as en_US.UTF-8) would interleave them otherwise. */
    " ORDER BY message_id::text COLLATE \"C\", kafka_partition, kafka_offset";

typedef struct {
    const idset_t *ids;
    msg_state_t *ms;
    cli_verify_report_t *rep;
} rows_t;

/* Matches one chunk's rows (ids[off .. off + n)) to the accepted events. */
static int match_rows(const PGresult *r, size_t off, size_t n, void *arg)
{
    const rows_t *a = arg;
    /* ids->ids[off..] are sorted like the rows, so one merge pass pairs them. */
    size_t k = off;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *mid = PQgetvalue(r, i, 0);
        while (k < off + n && strcmp(a->ids->ids[k], mid) < 0) k++;
        if (k >= off + n || strcmp(a->ids->ids[k], mid) != 0) continue;
        msg_state_t *s = &a->ms[a->ids->midx[k]];
        ev_state_t *ev = find_ev(s, PQgetvalue(r, i, 1));
        if (!ev) continue; /* stored although never answered 202: allowed (a retried 503) */
        if (++ev->count > 1) {
            a->rep->duplicate_rows++;
            cli_verify_detail(a->rep->idempotency,
                              json_pack("{s:s,s:s,s:s,s:s}", "kind", "duplicate_row", "message_id",
                                        mid, "event_type", ev->type, "request_id",
                                        PQgetvalue(r, i, 5)));
            continue;
        }
        ev->partition = (int32_t)strtol(PQgetvalue(r, i, 2), NULL, 10);
        ev->offset = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        ev->persisted_us = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        (void)hl_strlcpy(ev->xmin, PQgetvalue(r, i, 6), sizeof(ev->xmin));
    }
    return 0;
}

/* Reads the run's rows and matches them to the accepted events. */
static int fetch_rows(PGconn *c, const char *source, const idset_t *ids, msg_state_t *ms,
                      cli_verify_report_t *rep, char *errbuf, size_t errcap)
{
    rows_t a = {ids, ms, rep};
    const hl_pg_chunked_t q = {SQL_ROWS, &source, 2, IDS_PER_QUERY, "read rows"};
    return hl_pg_query_chunked(c, &q, (const char *const *)ids->ids, ids->n, match_rows, &a, errbuf,
                               errcap);
}

/* Exactly once and order, message by message. */
static void judge(msg_state_t *ms, size_t nmsgs, cli_verify_report_t *rep)
{
    for (size_t m = 0; m < nmsgs; m++) {
        const ev_state_t *prev = NULL;
        for (size_t e = 0; e < ms[m].nev; e++) {
            ev_state_t *ev = &ms[m].ev[e];
            if (ev->count == 0) {
                rep->missing_rows++;
                cli_verify_detail(rep->idempotency,
                                  json_pack("{s:s,s:s,s:s,s:s}", "kind", "missing_row",
                                            "message_id", ms[m].msg->message_id, "event_type",
                                            ev->type, "request_id", ev->request_id));
                continue;
            }
            rep->stored_events++;
            if (prev) {
                const char *why = NULL;
                if (ev->partition != prev->partition)
                    why = "different partitions";
                else if (ev->offset <= prev->offset)
                    why = "offset not after the previous event's";
                else if (strcmp(ev->xmin, prev->xmin) != 0 && ev->persisted_us < prev->persisted_us)
                    /* Rows of one transaction commit together, whatever order the statement
                     * inserted them in; across transactions the later event must come later. */
                    why = "committed before the previous event";
                if (why) {
                    rep->ordering_violations++;
                    cli_verify_detail(rep->ordering,
                                      json_pack("{s:s,s:s,s:s,s:s,s:[i,I],s:[i,I]}", "message_id",
                                                ms[m].msg->message_id, "event_type", ev->type,
                                                "after", prev->type, "why", why, "position",
                                                ev->partition, (json_int_t)ev->offset, "previous",
                                                prev->partition, (json_int_t)prev->offset));
                }
            }
            prev = ev;
        }
    }
    rep->gaps = rep->missing_rows;
    rep->idempotency_violations = rep->missing_rows + rep->duplicate_rows;
}

static int cmp_idx(const void *a, const void *b, void *arg)
{
    char **ids = arg;
    return strcmp(ids[*(const size_t *)a], ids[*(const size_t *)b]);
}

static int pg_checks(const cli_verify_opts_t *o, const cli_workload_t *w, cli_verify_report_t *rep,
                     char *errbuf, size_t errcap)
{
    msg_state_t *ms = hl_xcalloc(w->nmsgs ? w->nmsgs : 1, sizeof(*ms));
    rep->expected_events = collect(w, ms);
    idset_t ids = {0};
    char **tmp = hl_xcalloc(w->nmsgs + 1, sizeof(char *));
    size_t *order = hl_xcalloc(w->nmsgs + 1, sizeof(size_t));
    size_t n = 0;
    for (size_t m = 0; m < w->nmsgs; m++)
        if (ms[m].nev) {
            tmp[m] = w->msgs[m].message_id;
            order[n++] = m;
        }
    qsort_r(order, n, sizeof(size_t), cmp_idx, tmp);
    ids.ids = hl_xcalloc(n + 1, sizeof(char *));
    ids.midx = order;
    ids.n = n;
    for (size_t i = 0; i < n; i++) ids.ids[i] = tmp[order[i]];
    int rc = 0;
    PGconn *c = cli_db_open(o->conninfo, o->schema, errbuf, errcap);
    if (!c) rc = HL_EPG;
    /* Rows arrive after the 202 (the persister batches): wait until all are there or the
     * settle time is over; what is still missing then is a gap. */
    int64_t deadline = hl_mono_us() + (int64_t)o->settle_timeout_ms * 1000;
    while (!rc) {
        int64_t have = count_rows(c, o->source, &ids, errbuf, errcap);
        if (have < 0) rc = (int)have;
        if (o->progress && !rc)
            fprintf(stderr, "\r  postgres: %lld of %lld accepted events stored   ", (long long)have,
                    (long long)rep->expected_events);
        if (rc || have >= rep->expected_events || hl_mono_us() >= deadline) break;
        cli_verify_sleep_ms(200);
    }
    if (o->progress) fprintf(stderr, "\r%*s\r", 60, "");
    if (!rc) rc = fetch_rows(c, o->source, &ids, ms, rep, errbuf, errcap);
    if (!rc) judge(ms, w->nmsgs, rep);
    PQfinish(c);
    for (size_t m = 0; m < w->nmsgs; m++) free(ms[m].ev);
    free(ms);
    free(tmp);
    free(order);
    free(ids.ids);
    return rc;
}

int cli_verify_run(const cli_verify_opts_t *o, const cli_workload_t *w, cli_verify_report_t *r,
                   char *errbuf, size_t errcap)
{
    memset(r, 0, sizeof(*r));
    r->idempotency = json_array();
    r->ordering = json_array();
    r->lineage_missing = json_array();
    r->lineage_sample = json_array();
    r->auditor_error_budget = json_null();
    r->lineage_checked = -1;
    r->lineage_coverage = -1;
    r->auditor_gaps = -1;
    r->chains_failed = -1;
    r->chain_verify = json_null();
    r->content_bad = -1;
    r->content_verify = json_null();
    int64_t t0 = hl_mono_us();
    int rc = pg_checks(o, w, r, errbuf, errcap);
    int64_t t1 = hl_mono_us();
    r->pg_seconds = (double)(t1 - t0) / 1e6;
    if (rc || o->no_auditor) return rc;
    rc = cli_lineage_checks(o, w, r, errbuf, errcap);
    r->auditor_seconds = (double)(hl_mono_us() - t1) / 1e6;
    return rc;
}

void cli_verify_report_free(cli_verify_report_t *r)
{
    json_decref(r->idempotency);
    json_decref(r->ordering);
    json_decref(r->lineage_missing);
    json_decref(r->lineage_sample);
    json_decref(r->auditor_error_budget);
    json_decref(r->chain_verify);
    json_decref(r->content_verify);
    memset(r, 0, sizeof(*r));
}
