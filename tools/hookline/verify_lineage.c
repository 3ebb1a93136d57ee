/* The lineage half of verification: coverage (every request id with its stages), ten sample
 * lineages, and the auditor's own gap and error-budget answers. Coverage is read either from
 * the auditor's lineage table (proto/sql/003_lineage.sql: one query per 2,000 ids) or through
 * its HTTP API (one call per message), which is slower but needs no database access. */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "hl/pg.h"
#include "hl/proto.h"
#include "hl/util.h"
#include "verify_lineage.h"

#define IDS_PER_QUERY 2000

unsigned cli_lineage_stages(json_t *j)
{
    unsigned bits = 0;
    if (json_is_object(j)) {
        /* Bit 1 << stage: ingress 1, persisted 2, dead_lettered 4. */
        hl_stage_t st;
        if (hl_stage_parse(json_string_value(json_object_get(j, "stage")), &st) == 0)
            bits |= 1u << st;
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) bits |= cli_lineage_stages(v);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) bits |= cli_lineage_stages(v);
    }
    return bits;
}

/* The auditor half. Lineage is read per message (GET /v1/messages/{id}: every stage of every
 * request of that message in one answer), so a run costs one call per message; a request
 * refused before its message id was known is looked up by its own id. */
typedef struct {
    const cli_wl_msg_t *msg;
    size_t first;    /* index of the message's first request in the done array */
    atomic_int done; /* 1 once every request of the message is complete */
} lin_item_t;

typedef struct {
    const cli_verify_opts_t *o;
    lin_item_t *items;
    size_t n;
    atomic_uchar *rdone; /* per request: 1 = complete (or no request id to look up) */
    int *rstatus;        /* per request: the auditor's last HTTP status for it */
    unsigned index, stride;
    int reached;
    int fatal; /* 401/403: the token is wrong; no use asking again */
} lin_worker_t;

static int auditor_get(cli_http_conn_t *c, const cli_verify_opts_t *o, const char *path,
                       cli_http_response_t *resp)
{
    char auth[600];
    snprintf(auth, sizeof(auth), "Bearer %s", o->auditor_token ? o->auditor_token : "");
    cli_http_header_t h[] = {{"Authorization", auth}, {"Accept", "application/json"}};
    return cli_http_request(c, "GET", path, h, 2, NULL, 0, resp);
}

/* Percent-encodes s into out (cap bytes); 0, or HL_ETOOBIG. */
static int url_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (o + (plain ? 1 : 3) >= cap) return HL_ETOOBIG;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

static unsigned need_of(const cli_wl_req_t *rq)
{
    return rq->out.status == 202 ? 3u : 1u;
}

static int complete(unsigned stages, const cli_wl_req_t *rq)
{
    /* Every request: its ingress record; an accepted one also its commit (or dead letter). */
    return (stages & 1) && (need_of(rq) == 1 || (stages & 6));
}

/* Marks the requests of one message whose lineage rows are in `rows`. */
static void mark_rows(lin_worker_t *lw, lin_item_t *it, json_t *rows)
{
    const cli_wl_msg_t *m = it->msg;
    for (size_t i = 0; i < m->nreqs; i++) {
        const cli_wl_req_t *rq = &m->reqs[i];
        if (atomic_load(&lw->rdone[it->first + i])) continue;
        unsigned st = 0;
        size_t k;
        json_t *row;
        json_array_foreach(rows, k, row)
        {
            const char *rid = json_string_value(json_object_get(row, "request_id"));
            if (rid && strcmp(rid, rq->out.request_id) == 0) st |= cli_lineage_stages(row);
        }
        if (complete(st, rq)) atomic_store(&lw->rdone[it->first + i], 1);
    }
}

/* Reads every page of one message's lineage into a single array (owned by the caller). */
static json_t *message_lineage(cli_http_conn_t *c, lin_worker_t *lw, const char *mid, int *status)
{
    char emid[3 * CLI_WL_MAX_ID + 1], esrc[200], path[1200], cursor[128] = "";
    json_t *all = json_array();
    *status = 0;
    if (url_encode(mid, emid, sizeof(emid)) || url_encode(lw->o->source, esrc, sizeof(esrc)))
        return all;
    for (int page = 0; page < 20; page++) {
        snprintf(path, sizeof(path), "%s%s?source=%s%s%s", lw->o->message_path, emid, esrc,
                 cursor[0] ? "&cursor=" : "", cursor);
        cli_http_response_t resp;
        if (auditor_get(c, lw->o, path, &resp) != 0) break;
        lw->reached = 1;
        *status = resp.status;
        if (resp.status == 401 || resp.status == 403) lw->fatal = 1;
        if (resp.status != 200) break;
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        json_array_extend(all, json_object_get(j, "lineage"));
        const char *next = json_string_value(json_object_get(j, "next_cursor"));
        int more = next && *next && url_encode(next, cursor, sizeof(cursor)) == 0;
        json_decref(j);
        if (!more) break;
    }
    return all;
}

static void *lin_main(void *arg)
{
    lin_worker_t *lw = arg;
    cli_http_conn_t *c =
        cli_http_conn_new(lw->o->auditor_host, lw->o->auditor_port, 4u << 20, 5000);
    for (size_t i = lw->index; i < lw->n && !lw->fatal; i += lw->stride) {
        lin_item_t *it = &lw->items[i];
        if (atomic_load(&it->done)) continue;
        int st;
        json_t *rows = message_lineage(c, lw, it->msg->message_id, &st);
        mark_rows(lw, it, rows);
        json_decref(rows);
        int all = 1;
        for (size_t r = 0; r < it->msg->nreqs; r++) {
            const cli_wl_req_t *rq = &it->msg->reqs[r];
            if (atomic_load(&lw->rdone[it->first + r])) continue;
            lw->rstatus[it->first + r] = st;
            /* A refused request may carry no message id in its lineage: ask by its own id. */
            if (rq->out.status != 202 && !lw->fatal) {
                char path[256];
                cli_http_response_t resp;
                snprintf(path, sizeof(path), "%s%s", lw->o->lineage_path, rq->out.request_id);
                if (auditor_get(c, lw->o, path, &resp) == 0) {
                    lw->rstatus[it->first + r] = resp.status;
                    json_t *j =
                        resp.status == 200 ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
                    if (complete(cli_lineage_stages(j), rq))
                        atomic_store(&lw->rdone[it->first + r], 1);
                    json_decref(j);
                }
            }
            if (!atomic_load(&lw->rdone[it->first + r])) all = 0;
        }
        if (all) atomic_store(&it->done, 1);
    }
    cli_http_conn_free(c);
    return NULL;
}

static int lineage_pass(const cli_verify_opts_t *o, lin_item_t *items, size_t n,
                        atomic_uchar *rdone, int *rstatus, int *fatal)
{
    unsigned t = o->auditor_concurrency ? o->auditor_concurrency : 4;
    lin_worker_t *lw = hl_xcalloc(t, sizeof(*lw));
    pthread_t *th = hl_xcalloc(t, sizeof(*th));
    int reached = 0;
    unsigned started = 0;
    for (; started < t; started++) {
        lw[started] = (lin_worker_t){.o = o,
                                     .items = items,
                                     .n = n,
                                     .rdone = rdone,
                                     .rstatus = rstatus,
                                     .index = started,
                                     .stride = t};
        if (pthread_create(&th[started], NULL, lin_main, &lw[started]) != 0) break;
    }
    /* A thread that did not start leaves its share to the next pass. */
    for (unsigned i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        reached |= lw[i].reached;
        *fatal |= lw[i].fatal;
    }
    free(lw);
    free(th);
    return reached;
}

static json_t *auditor_json(const cli_verify_opts_t *o, const char *path, int timeout_ms,
                            int *status)
{
    cli_http_conn_t *c = cli_http_conn_new(o->auditor_host, o->auditor_port, 4 << 20, timeout_ms);
    cli_http_response_t resp;
    json_t *j = NULL;
    *status = 0;
    if (auditor_get(c, o, path, &resp) == 0) {
        *status = resp.status;
        if (resp.status == 200) j = json_loadb(resp.body, resp.body_len, 0, NULL);
    }
    cli_http_conn_free(c);
    return j;
}

/* Keeps `sample` full lineages of accepted requests picked by the seed. */
static void sample_lineages(const cli_verify_opts_t *o, const cli_workload_t *w,
                            cli_verify_report_t *rep)
{
    size_t n = 0;
    for (size_t m = 0; m < w->nmsgs; m++)
        for (size_t i = 0; i < w->msgs[m].nreqs; i++)
            n += w->msgs[m].reqs[i].out.request_id[0] != 0;
    uint64_t rng = o->seed ^ 0x5eed;
    size_t want = o->sample < n ? o->sample : n;
    for (size_t k = 0, tries = 0; k < want && tries < want * 50; tries++) {
        size_t pick = cli_wl_mix64(&rng) % n, seen = 0;
        const cli_wl_req_t *rq = NULL;
        const char *mid = NULL;
        for (size_t m = 0; m < w->nmsgs && !rq; m++)
            for (size_t i = 0; i < w->msgs[m].nreqs && !rq; i++)
                if (w->msgs[m].reqs[i].out.request_id[0] && seen++ == pick) {
                    rq = &w->msgs[m].reqs[i];
                    mid = w->msgs[m].message_id;
                }
        int dup = 0;
        size_t i;
        json_t *v;
        json_array_foreach(rep->lineage_sample, i,
                           v) if (strcmp(json_string_value(json_object_get(v, "request_id")),
                                         rq->out.request_id) == 0) dup = 1;
        if (dup) continue;
        char path[256];
        snprintf(path, sizeof(path), "%s%s", o->lineage_path, rq->out.request_id);
        int st;
        json_t *j = auditor_json(o, path, 5000, &st);
        json_array_append_new(rep->lineage_sample,
                              json_pack("{s:s,s:s,s:s,s:i,s:o}", "request_id", rq->out.request_id,
                                        "message_id", mid, "event_type", rq->event_type,
                                        "http_status", rq->out.status, "lineage",
                                        j ? j : json_null()));
        k++;
    }
}

/* Per-request state of the coverage check; requests without a request id count as done. */
typedef struct {
    const cli_wl_req_t **req; /* every request, in workload order */
    const char **mid;         /* its message id */
    atomic_uchar *done;
    int *status; /* the auditor's last answer for it (API mode) */
    size_t n, checked;
} cover_t;

static void cover_init(cover_t *c, const cli_workload_t *w)
{
    memset(c, 0, sizeof(*c));
    c->req = hl_xcalloc(w->nreqs + 1, sizeof(*c->req));
    c->mid = hl_xcalloc(w->nreqs + 1, sizeof(*c->mid));
    c->done = hl_xcalloc(w->nreqs + 1, sizeof(*c->done));
    c->status = hl_xcalloc(w->nreqs + 1, sizeof(int));
    for (size_t m = 0; m < w->nmsgs; m++)
        for (size_t i = 0; i < w->msgs[m].nreqs; i++) {
            const cli_wl_req_t *rq = &w->msgs[m].reqs[i];
            c->req[c->n] = rq;
            c->mid[c->n] = w->msgs[m].message_id;
            int has = rq->out.request_id[0] != 0;
            atomic_init(&c->done[c->n], has ? 0 : 1);
            c->checked += (size_t)has;
            c->n++;
        }
}

static void cover_free(cover_t *c)
{
    free(c->req);
    free(c->mid);
    free(c->done);
    free(c->status);
}

static size_t cover_done(const cover_t *c)
{
    size_t d = 0;
    for (size_t i = 0; i < c->n; i++) d += c->req[i]->out.request_id[0] && atomic_load(&c->done[i]);
    return d;
}

/* One pass over the auditor's API for every message not complete yet. */
static int api_pass(const cli_verify_opts_t *o, const cli_workload_t *w, cover_t *cv, char *errbuf,
                    size_t errcap)
{
    lin_item_t *items = hl_xcalloc(w->nmsgs + 1, sizeof(*items));
    size_t n = 0, first = 0;
    for (size_t m = 0; m < w->nmsgs; first += w->msgs[m].nreqs, m++) {
        int open = 0;
        for (size_t i = 0; i < w->msgs[m].nreqs; i++) open |= !atomic_load(&cv->done[first + i]);
        if (!open) continue;
        items[n].msg = &w->msgs[m];
        items[n].first = first;
        n++;
    }
    int fatal = 0, rc = 0;
    if (n > 0 && !lineage_pass(o, items, n, cv->done, cv->status, &fatal)) {
        snprintf(errbuf, errcap,
                 "auditor not reachable at http://%s:%d: is the stack up? deploy/local/stack"
                 " status (or --no-auditor to skip the lineage checks)",
                 o->auditor_host, o->auditor_port);
        rc = HL_EIO;
    } else if (fatal) {
        snprintf(errbuf, errcap,
                 "auditor refused the token (401/403): pass one with the auditor"
                 " role (--auditor-token-file FILE or $HOOKLINE_AUDITOR_TOKEN)");
        rc = HL_EAUTH;
    }
    free(items);
    return rc;
}

static const char SQL_STAGES[] =
    "SELECT request_id, bit_or(CASE stage WHEN '" HL_STAGE_INGRESS_NAME
    "' THEN 1 WHEN '" HL_STAGE_PERSISTED_NAME "' THEN 2 ELSE 4 END) FROM lineage"
    " WHERE request_id = ANY($1::text[]) GROUP BY request_id";

typedef struct {
    cover_t *cv;
    const char **ids; /* the request ids asked for */
    size_t *idx;      /* their request index */
} pending_t;

/* Marks the requests of one chunk (ids[off .. off + n)) whose stages are complete. */
static int mark_complete(const PGresult *r, size_t off, size_t n, void *arg)
{
    const pending_t *p = arg;
    for (int t = 0; t < PQntuples(r); t++) {
        const char *rid = PQgetvalue(r, t, 0);
        unsigned st = (unsigned)strtoul(PQgetvalue(r, t, 1), NULL, 10);
        /* The chunk is small: a linear match keeps this free of another index. */
        for (size_t j = off; j < off + n; j++)
            if (strcmp(p->ids[j], rid) == 0 && complete(st, p->cv->req[p->idx[j]]))
                atomic_store(&p->cv->done[p->idx[j]], 1);
    }
    return 0;
}

/* One pass over the lineage table for every request not complete yet. */
static int db_pass(PGconn *c, cover_t *cv, char *errbuf, size_t errcap)
{
    pending_t p = {cv, hl_xcalloc(cv->n + 1, sizeof(char *)),
                   hl_xcalloc(cv->n + 1, sizeof(size_t))};
    size_t k = 0;
    for (size_t i = 0; i < cv->n; i++)
        if (!atomic_load(&cv->done[i])) {
            p.idx[k] = i;
            p.ids[k++] = cv->req[i]->out.request_id;
        }
    const hl_pg_chunked_t q = {SQL_STAGES, NULL, 1, IDS_PER_QUERY, "lineage table"};
    int rc = hl_pg_query_chunked(c, &q, p.ids, k, mark_complete, &p, errbuf, errcap);
    free(p.ids);
    free(p.idx);
    return rc;
}

/* Takes a content check's answer k (borrowed) into rep when it is one. */
static void take_content(json_t *k, cli_verify_report_t *rep)
{
    json_t *bad = json_object_get(k, "bad");
    if (!json_is_integer(bad) || !json_is_boolean(json_object_get(k, "ok"))) return; /* unknown */
    rep->content_bad = (int64_t)json_integer_value(bad);
    json_decref(rep->content_verify);
    rep->content_verify = json_incref(k);
}

/* The auditor's whole-chain verification, which holds each chain to the checkpoint topic: the
 * run's lineage is only evidence if the history it sits in is intact. A walk of a few hundred
 * thousand rows takes seconds, hence the long timeout. */
static void chain_check(const cli_verify_opts_t *o, cli_verify_report_t *rep)
{
    int st;
    json_t *j = auditor_json(o, "/v1/verify", 300000, &st);
    json_t *chains = json_object_get(j, "chains"), *out = json_object_get(j, "checkpoints_outside");
    if (!json_is_array(chains) || !json_is_boolean(json_object_get(j, "ok"))) {
        json_decref(j);
        return; /* unknown: the gate fails it as not measured */
    }
    int64_t bad = 0;
    size_t i;
    json_t *ch;
    json_array_foreach(chains, i, ch) bad += !json_is_true(json_object_get(ch, "ok"));
    if (!json_is_true(json_object_get(out, "read")) ||
        json_integer_value(json_object_get(out, "refused")) != 0)
        bad++;
    /* The chain part's own verdict (an auditor before "chain_ok" gave only "ok"); the content
     * part, when the answer carries it, is the content check's. */
    json_t *chain_ok = json_object_get(j, "chain_ok");
    if (bad == 0 && !json_is_true(chain_ok ? chain_ok : json_object_get(j, "ok"))) bad = 1;
    rep->chains_failed = bad;
    json_decref(rep->chain_verify);
    rep->chain_verify = j;
    take_content(json_object_get(j, "content"), rep);
}

/* The auditor's content check: every stored event held to the body digest in its hash-chained
 * lineage (raw body, digest column, payload), and every persisted row still there. GET
 * /v1/verify carries it (chain_check); an auditor whose answer did not is asked for it alone. */
static void content_check(const cli_verify_opts_t *o, cli_verify_report_t *rep)
{
    int st;
    if (rep->content_bad >= 0) return; /* carried by GET /v1/verify */
    json_t *j = auditor_json(o, "/v1/verify/content", 300000, &st);
    take_content(j, rep);
    json_decref(j);
}

static void auditor_extras(const cli_verify_opts_t *o, const cli_workload_t *w,
                           cli_verify_report_t *rep)
{
    if (o->sample) sample_lineages(o, w, rep);
    int st;
    json_t *g = auditor_json(o, "/v1/gaps", 5000, &st);
    json_t *list = json_is_array(g) ? g : json_object_get(g, "gaps");
    json_t *cnt = json_object_get(g, "count");
    rep->auditor_gaps = json_is_integer(cnt)  ? (int64_t)json_integer_value(cnt)
                        : json_is_array(list) ? (int64_t)json_array_size(list)
                                              : -1;
    json_decref(g);
    chain_check(o, rep);
    content_check(o, rep);
    json_t *eb = auditor_json(o, "/v1/error-budget", 5000, &st);
    json_decref(rep->auditor_error_budget);
    rep->auditor_error_budget = eb ? eb : json_null();
}

int cli_lineage_checks(const cli_verify_opts_t *o, const cli_workload_t *w,
                       cli_verify_report_t *rep, char *errbuf, size_t errcap)
{
    /* The auditor must answer even when coverage is read from its table: the sample lineages,
     * gaps and error budget come from its API, and a dead auditor is worth failing loudly. */
    cli_http_conn_t *probe = cli_http_conn_new(o->auditor_host, o->auditor_port, 1 << 16, 3000);
    cli_http_response_t resp;
    int rc = cli_http_request(probe, "GET", "/healthz", NULL, 0, NULL, 0, &resp);
    cli_http_conn_free(probe);
    if (rc) {
        snprintf(errbuf, errcap,
                 "auditor not reachable at http://%s:%d: is the stack up? deploy/local/stack"
                 " status (or --no-auditor to skip the lineage checks)",
                 o->auditor_host, o->auditor_port);
        return HL_EIO;
    }
    cover_t cv;
    cover_init(&cv, w);
    PGconn *c = NULL;
    if (!o->lineage_via_api && !(c = cli_db_open(o->conninfo, o->schema, errbuf, errcap)))
        rc = HL_EPG;
    int64_t deadline = hl_mono_us() + (int64_t)o->settle_timeout_ms * 1000;
    size_t done = 0;
    while (!rc) {
        rc = o->lineage_via_api ? api_pass(o, w, &cv, errbuf, errcap)
                                : db_pass(c, &cv, errbuf, errcap);
        done = cover_done(&cv);
        if (o->progress)
            fprintf(stderr, "\r  lineage: %zu of %zu request ids complete   ", done, cv.checked);
        if (rc || done == cv.checked || hl_mono_us() >= deadline) break;
        cli_verify_sleep_ms(500);
    }
    if (o->progress) fprintf(stderr, "\r%*s\r", 60, "");
    PQfinish(c);
    rep->lineage_checked = (int64_t)cv.checked;
    rep->lineage_complete = (int64_t)done;
    rep->lineage_coverage = cv.checked ? (double)done / (double)cv.checked : 1.0;
    for (size_t i = 0; !rc && i < cv.n; i++) {
        if (atomic_load(&cv.done[i])) continue;
        const cli_wl_req_t *rq = cv.req[i];
        cli_verify_detail(rep->lineage_missing,
                          json_pack("{s:s,s:s,s:s,s:i,s:i}", "request_id", rq->out.request_id,
                                    "message_id", cv.mid[i], "event_type", rq->event_type,
                                    "http_status", rq->out.status, "auditor_status", cv.status[i]));
    }
    if (!rc && cv.checked) auditor_extras(o, w, rep);
    cover_free(&cv);
    return rc;
}
