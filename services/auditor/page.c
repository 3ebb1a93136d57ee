/* The page for people: look up a request or message id and see each request's stages and its
 * end-to-end time, the history's verification status and newest checkpoint, latency
 * distributions per stage drawn as SVG on the server, and open gaps. No scripts, no external
 * resources; the token travels in an HttpOnly cookie set by the login form. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chart.h"
#include "handlers.h"
#include "history.h"
#include "hl/httpd.h"
#include "hl/util.h"
#include "html.h"
#include "page_html.h"
#include "query.h"
#include "hl/lineage_record.h"

#define PAGE_CAP (1024 * 1024) /* the page never grows past this; lists are capped below */

typedef aud_html_t out_t;
#define put aud_put
#define esc aud_esc

/* An integer of the row's lineage record (what the hash covers), HL_LINEAGE_ABSENT if absent. */
static int64_t rec_int(json_t *row, const char *k)
{
    json_t *v = json_object_get(json_object_get(row, "record"), k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : HL_LINEAGE_ABSENT;
}

/* ---- the lineage of an id, one block per request ---- */

typedef struct {
    json_t *row;     /* borrowed from the rows array */
    const char *rid; /* its request id */
    int rank;        /* stage order: ingress, persisted, dead_lettered, anything else */
    int64_t ts, id;
    int64_t first; /* the earliest ts of its request (grouping pass) */
} row_ref_t;

static int stage_rank(const char *s)
{
    hl_stage_t st;
    return hl_stage_parse(s, &st) == 0 ? (int)st : HL_STAGE_COUNT;
}

static int by_request(const void *x, const void *y)
{
    const row_ref_t *a = x, *b = y;
    int c = strcmp(a->rid, b->rid);
    if (c) return c;
    if (a->rank != b->rank) return a->rank - b->rank;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int by_first_seen(const void *x, const void *y)
{
    const row_ref_t *a = x, *b = y;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    return by_request(x, y);
}

/* When the request reached the ingress: its received_us, from the ingress record or else the
 * persisted one; HL_LINEAGE_ABSENT when neither says. */
static int64_t received_of(const row_ref_t *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t v = rec_int(g[i].row, "received_us");
        if (v != HL_LINEAGE_ABSENT) return v;
    }
    return HL_LINEAGE_ABSENT;
}

/* The block's headline: who sent it, what the ingress answered, and its end-to-end time
 * (received → committed by the persister) or why there is none. */
static void request_head(out_t *o, const row_ref_t *g, size_t n, int64_t recv)
{
    json_t *ing = g[0].rank == 0 ? g[0].row : NULL, *done = NULL, *dead = NULL;
    for (size_t i = 0; i < n; i++) {
        if (g[i].rank == 1 && !done) done = g[i].row;
        if (g[i].rank == 2 && !dead) dead = g[i].row;
    }
    put(o, "<h3>request <code>");
    esc(o, g[0].rid);
    put(o, "</code> · source <b>");
    esc(o, aud_page_jstr(g[0].row, "source"));
    put(o, "</b> · message id <code>");
    esc(o, aud_page_jstr(g[0].row, "message_id"));
    put(o, "</code>");
    if (ing) {
        int64_t st = rec_int(ing, "status");
        put(o, " · answered <span class=\"%s\">", st >= 200 && st <= 299 ? "ok" : "bad");
        aud_page_num(o, ing, "status");
        put(o, "</span>");
    }
    int64_t committed = done ? rec_int(done, "committed_us") : HL_LINEAGE_ABSENT;
    if (committed != HL_LINEAGE_ABSENT && recv != HL_LINEAGE_ABSENT) {
        put(o, " · <span class=\"e2e\" data-e2e-us=\"%" PRId64 "\">end to end <b>",
            committed - recv);
        aud_page_ms(o, committed - recv);
        put(o, "</b></span>");
    } else {
        int64_t st = ing ? rec_int(ing, "status") : HL_LINEAGE_ABSENT;
        put(o, " · <span class=\"e2e muted\">%s</span>",
            dead                                                ? "dead-lettered, not stored"
            : st != HL_LINEAGE_ABSENT && (st < 200 || st > 299) ? "rejected: nothing to store"
                                                                : "not persisted yet");
    }
    put(o, "</h3>");
}

static void stage_row(out_t *o, json_t *row, int64_t recv)
{
    int64_t ts = json_integer_value(json_object_get(row, "ts_us"));
    put(o, "<tr class=\"stage-");
    esc(o, aud_page_jstr(row, "stage"));
    put(o, "\"><td>");
    esc(o, aud_page_jstr(row, "stage"));
    put(o, "</td><td>");
    aud_page_when(o, ts);
    put(o, "</td><td class=\"n\">");
    if (recv != HL_LINEAGE_ABSENT)
        put(o, "+"), aud_page_ms(o, ts - recv);
    else
        put(o, "–");
    put(o, "</td><td>");
    aud_page_num(o, row, "status");
    put(o, "</td><td class=\"bad\">");
    esc(o, aud_page_jstr(row, "error_code"));
    put(o, "</td><td>");
    esc(o, aud_page_jstr(row, "event_type"));
    put(o, "</td><td>");
    aud_page_num(o, row, "partition");
    put(o, "/");
    aud_page_num(o, row, "offset");
    put(o, "</td><td class=\"n\">");
    int64_t lat = rec_int(row, "latency_us");
    if (lat != HL_LINEAGE_ABSENT)
        aud_page_ms(o, lat);
    else
        put(o, "–");
    put(o, "</td><td>");
    aud_page_num(o, row, "chain");
    put(o, "/");
    aud_page_num(o, row, "seq");
    put(o, "</td></tr>");
}

static void request_block(out_t *o, const row_ref_t *g, size_t n)
{
    int64_t recv = received_of(g, n);
    put(o, "<section class=\"req\" data-request-id=\"");
    esc(o, g[0].rid);
    put(o, "\">");
    request_head(o, g, n, recv);
    put(o, "<table class=\"stages\"><tr><th>stage</th><th>time (UTC)</th><th>since received</th>"
           "<th>status</th><th>error</th><th>event type</th><th>partition/offset</th>"
           "<th>answered in</th><th>chain/seq</th></tr>");
    for (size_t i = 0; i < n; i++) stage_row(o, g[i].row, recv);
    put(o, "</table></section>");
}

/* Every row of `rows` (at most a thousand), one block per request id, blocks in the order their
 * requests were first seen, each request's stages in order. */
static void timeline(out_t *o, json_t *rows)
{
    size_t n = json_array_size(rows), i, j;
    row_ref_t *v = hl_xcalloc(n ? n : 1, sizeof *v);
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        v[i] = (row_ref_t){row,
                           aud_page_jstr(row, "request_id"),
                           stage_rank(aud_page_jstr(row, "stage")),
                           json_integer_value(json_object_get(row, "ts_us")),
                           json_integer_value(json_object_get(row, "id")),
                           0};
    }
    qsort(v, n, sizeof *v, by_request);
    for (i = 0; i < n; i = j) {
        int64_t first = v[i].ts;
        for (j = i; j < n && strcmp(v[j].rid, v[i].rid) == 0; j++)
            if (v[j].ts < first) first = v[j].ts;
        for (size_t k = i; k < j; k++) v[k].first = first;
    }
    qsort(v, n, sizeof *v, by_first_seen);
    put(o, "<div id=\"timeline\">");
    for (i = 0; i < n; i = j) {
        for (j = i; j < n && strcmp(v[j].rid, v[i].rid) == 0; j++) {
        }
        request_block(o, v + i, j - i);
    }
    put(o, "</div>");
    free(v);
}

/* ---- latency ---- */

static const struct {
    aud_lat_t stage;
    const char *outcome; /* latency_rollups.outcome, NULL: every class */
    const char *id, *title;
    int only_if_any; /* drawn only when it holds samples */
} charts[] = {
    {AUD_LAT_ACK, "accepted", "ack-accepted", "ack · accepted requests (2xx)", 0},
    {AUD_LAT_ACK, "rejected", "ack-rejected", "ack · rejected requests", 0},
    {AUD_LAT_E2E, NULL, "e2e", "end to end · received → committed", 0},
    {AUD_LAT_QUEUE, NULL, "queue", "queue · answered → consumed", 0},
    {AUD_LAT_PERSIST, NULL, "persist", "persist · consumed → committed", 0},
    {AUD_LAT_ACK, "unsplit", "ack-unsplit", "ack · counted before outcomes were kept", 1},
};

/* Returns 1 when the database could not be read. */
static int latency(out_t *o, PGconn *c)
{
    char err[512];
    int64_t now = hl_now_us();
    put(o, "<h2>Latency, last hour</h2><p class=\"muted\">Bars: samples per log-spaced bin "
           "(about 1.33× wider each); dashed lines: percentiles.</p><div class=\"hist\">");
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++) {
        hl_hist_t *h = hl_hist_new();
        int rc = aud_q_latency(c, charts[i].stage, NULL, charts[i].outcome,
                               now - INT64_C(3600000000), now + 1, h, err, sizeof err);
        if (rc == 0 && (!charts[i].only_if_any || hl_hist_count(h) > 0))
            aud_chart_figure(o, charts[i].id, charts[i].title, h);
        hl_hist_free(h);
        if (rc != 0) return 1;
    }
    put(o, "</div>");
    return 0;
}

static void gaps_table(out_t *o, json_t *gaps)
{
    size_t i;
    json_t *g;
    put(o, "<h2>Open gaps</h2><table id=\"gaps\"><tr><th>request id</th><th>source</th>"
           "<th>message id</th><th>received (UTC)</th></tr>");
    json_array_foreach(gaps, i, g)
    {
        put(o, "<tr><td><a href=\"/?id=");
        esc(o, aud_page_jstr(g, "request_id"));
        put(o, "\">");
        esc(o, aud_page_jstr(g, "request_id"));
        put(o, "</a></td><td>");
        esc(o, aud_page_jstr(g, "source"));
        put(o, "</td><td>");
        esc(o, aud_page_jstr(g, "message_id"));
        put(o, "</td><td>");
        aud_page_when(o, json_integer_value(json_object_get(g, "ts_us")));
        put(o, "</td></tr>");
    }
    if (json_array_size(gaps) == 0) put(o, "<tr><td colspan=\"4\" class=\"ok\">none</td></tr>");
    put(o, "</table>");
}

/* ---- the history's status ---- */

static void status_line(out_t *o, json_t *v, int64_t when_us)
{
    size_t i;
    json_t *ch;
    int64_t rows = 0, age = (hl_now_us() - when_us) / 1000000;
    json_array_foreach(json_object_get(v, "chains"), i, ch)
    {
        rows += json_integer_value(json_object_get(ch, "rows"));
    }
    put(o, "<p id=\"verified-at\" data-verified-us=\"%" PRId64 "\">last verified ", when_us);
    aud_page_when(o, when_us);
    put(o, " UTC (%" PRId64 " s ago): %zu chain%s, %" PRId64 " rows walked in ", age < 0 ? 0 : age,
        json_array_size(json_object_get(v, "chains")),
        json_array_size(json_object_get(v, "chains")) == 1 ? "" : "s", rows);
    aud_page_ms(o, json_integer_value(json_object_get(v, "took_us")));
    put(o, " · <a href=\"/?verify=1\">verify now</a></p>");
}

/* The content check's first bad stored event, when there is one. */
static void content_problem(out_t *o, json_t *k)
{
    json_t *b = json_object_get(k, "first_bad"), *why;
    size_t i;
    if (!json_is_object(b)) return;
    put(o, "<li class=\"bad\" id=\"content-problem\">%lld bad stored event%s; first: source ",
        (long long)json_integer_value(json_object_get(k, "bad")),
        json_integer_value(json_object_get(k, "bad")) == 1 ? "" : "s");
    esc(o, aud_page_jstr(b, "source"));
    put(o, ", message id ");
    esc(o, aud_page_jstr(b, "message_id"));
    put(o, ", row %lld:", (long long)json_integer_value(json_object_get(b, "row_id")));
    json_array_foreach(json_object_get(b, "reasons"), i, why)
    {
        put(o, " ");
        esc(o, json_string_value(why));
    }
    put(o, "</li>");
}

static void problems(out_t *o, json_t *v)
{
    json_t *outside = json_object_get(v, "checkpoints_outside"), *ch;
    put(o, "<ul id=\"chain-problems\">");
    if (!json_is_true(json_object_get(outside, "read"))) {
        put(o, "<li class=\"bad\">checkpoint topic not read: ");
        esc(o, json_string_value(json_object_get(outside, "error")));
        put(o, "</li>");
    }
    if (json_integer_value(json_object_get(outside, "refused")) > 0)
        put(o, "<li class=\"bad\">checkpoint topic holds records no known key signed</li>");
    size_t i;
    json_array_foreach(json_object_get(v, "chains"), i, ch)
    {
        json_t *b = json_object_get(ch, "first_bad");
        if (!json_is_object(b)) continue;
        put(o, "<li class=\"bad\">chain %lld: first bad row id %lld, seq %lld: ",
            (long long)json_integer_value(json_object_get(ch, "chain")),
            (long long)json_integer_value(json_object_get(b, "id")),
            (long long)json_integer_value(json_object_get(b, "seq")));
        esc(o, json_string_value(json_object_get(b, "reason")));
        if (json_is_string(json_object_get(b, "column"))) {
            put(o, " (");
            esc(o, json_string_value(json_object_get(b, "column")));
            put(o, ")");
        }
        put(o, "</li>");
    }
    content_problem(o, json_object_get(v, "content"));
    put(o, "</ul>");
}

/* The newest signed checkpoint in the database and whether the last verification met it. */
static int newest_checkpoint(out_t *o, PGconn *c, json_t *v, int64_t when_us)
{
    char err[512];
    json_t *cps = aud_q_newest_checkpoint(c, err, sizeof err), *cp, *ch;
    if (!cps) return 1;
    cp = json_array_get(cps, 0);
    if (!cp) {
        put(o, "<p id=\"checkpoint\" class=\"muted\">no checkpoint signed yet</p>");
        json_decref(cps);
        return 0;
    }
    int64_t chain = json_integer_value(json_object_get(cp, "chain"));
    int64_t seq = json_integer_value(json_object_get(cp, "seq"));
    int64_t ts = json_integer_value(json_object_get(cp, "ts_us"));
    const char *state = "bad\">the last verification did not meet it", *cls;
    size_t i;
    if (ts > when_us) state = "muted\">signed after the last verification";
    json_array_foreach(json_object_get(v, "chains"), i, ch)
    {
        if (json_integer_value(json_object_get(ch, "chain")) == chain && ts <= when_us &&
            json_is_true(json_object_get(ch, "ok")) &&
            json_integer_value(json_object_get(ch, "checkpoint_seq")) >= seq)
            state = "ok\">the last verification met it";
    }
    cls = state;
    put(o,
        "<p id=\"checkpoint\" data-chain=\"%" PRId64 "\" data-seq=\"%" PRId64 "\">newest"
        " checkpoint: chain %" PRId64 " seq %" PRId64 ", signed ",
        chain, seq, chain, seq);
    aud_page_when(o, ts);
    put(o, " UTC by key <code>");
    esc(o, aud_page_jstr(cp, "key_id"));
    put(o, "</code> · <span id=\"checkpoint-state\" class=\"%s</span></p>", cls);
    json_decref(cps);
    return 0;
}

static void chains_table(out_t *o, json_t *v)
{
    size_t i;
    json_t *ch;
    put(o, "<table id=\"chains\"><tr><th>chain</th><th>rows walked</th><th>head seq</th>"
           "<th>newest checkpoint seq</th><th>state</th></tr>");
    json_array_foreach(json_object_get(v, "chains"), i, ch)
    {
        int ok = json_is_true(json_object_get(ch, "ok"));
        put(o, "<tr><td>");
        aud_page_num(o, ch, "chain");
        put(o, "</td><td class=\"n\">");
        aud_page_num(o, ch, "rows");
        put(o, "</td><td class=\"n\">");
        aud_page_num(o, ch, "head_seq");
        put(o, "</td><td class=\"n\">");
        aud_page_num(o, ch, "checkpoint_seq");
        put(o, "</td><td class=\"%s\">%s</td></tr>", ok ? "ok" : "bad", ok ? "ok" : "FAILED");
    }
    put(o, "</table>");
}

/* Returns 1 when the database could not be read. */
static int chain_status(out_t *o, aud_req_t *r, PGconn *c, int fresh)
{
    int64_t when_us = 0;
    json_t *v = aud_history_status(r->a, c, fresh, &when_us);
    if (!v) return 1;
    int ok = json_is_true(json_object_get(v, "ok"));
    json_t *k = json_object_get(v, "content");
    /* The status is the chain's and the stored events' together; data-chain-ok keeps the
     * chain part's own verdict. */
    put(o, "<h2>History</h2><p id=\"chain-status\" data-chain-ok=\"%s\" class=\"",
        json_is_true(json_object_get(v, "chain_ok")) ? "true" : "false");
    put(o, ok ? "ok\">verified: every chain walks clean and holds to the checkpoint topic, and"
                " every stored event matches its lineage"
              : "bad\">NOT VERIFIED");
    put(o,
        "</p><p id=\"content-status\" class=\"%s\">stored events: %lld checked against their"
        " lineage, %lld bad</p>",
        json_is_true(json_object_get(k, "ok")) ? "ok" : "bad",
        (long long)json_integer_value(json_object_get(k, "events_checked")),
        (long long)json_integer_value(json_object_get(k, "bad")));
    status_line(o, v, when_us);
    problems(o, v);
    int failed = newest_checkpoint(o, c, v, when_us);
    chains_table(o, v);
    json_decref(v);
    return failed;
}

/* The lineage of `id`: a request id, else a message id. Returns 1 when the database could not
 * be read. */
static int lookup(out_t *o, PGconn *c, const char *id)
{
    char err[512];
    json_t *rows =
        strlen(id) <= HL_REQUEST_ID_MAX ? aud_q_request(c, id, err, sizeof err) : json_array();
    aud_cursor_t start = {0, 0};
    int failed = 0;
    if (rows && json_array_size(rows) == 0) {
        json_t *m = aud_q_message(c, id, NULL, 200, start, err, sizeof err);
        json_decref(rows);
        rows = m ? json_incref(json_object_get(m, "lineage")) : NULL;
        json_decref(m);
    }
    put(o, "<h2>Lineage of <code>");
    esc(o, id);
    put(o, "</code></h2>");
    if (!rows)
        failed = 1, put(o, "<p class=\"bad\">database query failed</p>");
    else if (json_array_size(rows) == 0)
        put(o, "<p id=\"notfound\" class=\"bad\">No lineage for this id.</p>");
    else
        timeline(o, rows);
    json_decref(rows);
    return failed;
}

int aud_h_page(aud_req_t *r)
{
    static const char *const allowed[] = {"id", "verify", NULL};
    char err[512];
    const char *id = aud_req_param(r, "id");
    int64_t fresh;
    if (aud_req_only(r, allowed) || aud_param_int(r, "verify", 0, 1, 0, &fresh)) return 400;
    if (id && !aud_id_valid(id, HL_MESSAGE_ID_MAX))
        return aud_reply_error(r, 400, "invalid_id",
                               "id must be 1.." HL_PROTO_STR(HL_MESSAGE_ID_MAX) " printable bytes");
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    out_t o = {hl_xmalloc(PAGE_CAP), 0, PAGE_CAP};
    o.buf[0] = '\0';
    aud_page_head(&o, "hookline auditor");
    put(&o, "<h1>hookline auditor</h1><form method=\"get\" action=\"/\"><label>Request or message"
            " id <input name=\"id\" size=\"50\" value=\"");
    esc(&o, id);
    put(&o, "\"></label> <button>Look up</button></form>"
            "<form method=\"post\" action=\"/logout\"><button>Sign out</button></form>");
    int failed = id ? lookup(&o, c, id) : 0;
    if (!failed) failed = chain_status(&o, r, c, (int)fresh);
    if (!failed) failed = latency(&o, c);
    aud_cursor_t start = {0, 0};
    int64_t now = hl_now_us();
    json_t *gaps =
        failed ? NULL
               : aud_q_gaps(c, (int64_t)r->a->cfg->gap_grace_s * 1000000, "open",
                            now - INT64_C(86400000000), now + 1, 100, start, err, sizeof err);
    if (gaps)
        gaps_table(&o, json_object_get(gaps, "gaps"));
    else
        failed = 1;
    json_decref(gaps);
    put(&o, "</body></html>");
    aud_req_db_done(r, c, failed);
    aud_page_send(r, failed ? 503 : 200, &o,
                  "Cache-Control: no-store\r\nContent-Security-Policy: default-src 'none'; "
                  "style-src 'unsafe-inline'; img-src 'self'; form-action 'self'\r\n"
                  "X-Frame-Options: DENY\r\n");
    return failed ? 503 : 200;
}
