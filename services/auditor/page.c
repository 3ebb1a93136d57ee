/* The page for people: look up a request or message id and see its timeline, latency
 * histograms per stage drawn as SVG on the server, and open gaps. No scripts, no external
 * resources; the token travels in an HttpOnly cookie set by the login form. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "hl/httpd.h"
#include "hl/util.h"

#define PAGE_CAP (512 * 1024) /* the page never grows past this; lists are capped below */

typedef struct {
    char *buf;
    size_t len, cap;
} out_t;

static void put(out_t *o, const char *fmt, ...) HL_PRINTF(2, 3);
static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    if (o->len >= o->cap) return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0) o->len = o->len + (size_t)n < o->cap ? o->len + (size_t)n : o->cap - 1;
}

/* HTML-escapes s. */
static void esc(out_t *o, const char *s)
{
    for (; s && *s && o->len + 8 < o->cap; s++) {
        switch (*s) {
        case '<': put(o, "&lt;"); break;
        case '>': put(o, "&gt;"); break;
        case '&': put(o, "&amp;"); break;
        case '"': put(o, "&quot;"); break;
        case '\'': put(o, "&#39;"); break;
        default: o->buf[o->len++] = *s; o->buf[o->len] = '\0';
        }
    }
}

static void head(out_t *o, const char *title)
{
    put(o, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    esc(o, title);
    put(o, "</title><style>body{font-family:sans-serif;margin:1.5em;color:#222}"
           "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
           "padding:.25em .5em;font-size:.9em;text-align:left}th{background:#eee}"
           ".bad{color:#b00}.ok{color:#070}svg{background:#fafafa;border:1px solid #ddd;"
           "margin:.25em}.hist{display:flex;flex-wrap:wrap}figure{margin:.5em;width:370px}</style></head><body>");
}

static void send_page(hl_req_t *r, int status, out_t *o, const char *extra)
{
    hl_http_send(r->conn, status, "text/html; charset=utf-8", r->rid, extra, o->buf, o->len);
    free(o->buf);
}

int hl_h_page_login(hl_req_t *r, const char *note)
{
    out_t o = {hl_xmalloc(8192), 0, 8192};
    o.buf[0] = '\0';
    head(&o, "hookline auditor: sign in");
    put(&o, "<h1>hookline auditor</h1>");
    if (note) {
        put(&o, "<p class=\"bad\" id=\"note\">");
        esc(&o, note);
        put(&o, "</p>");
    }
    /* After signing in, come back to the page that was asked for. */
    const char *qs = mg_get_request_info(r->conn)->query_string;
    put(&o, "<form method=\"post\" action=\"/login\"><label>Token <input type=\"password\""
            " name=\"token\" autocomplete=\"off\"></label>");
    if (qs && strlen(qs) < 256 && strcmp(r->path, "/") == 0) {
        put(&o, "<input type=\"hidden\" name=\"next\" value=\"/?");
        esc(&o, qs);
        put(&o, "\">");
    }
    put(&o, " <button>Sign in</button></form></body></html>");
    send_page(r, 401, &o, "Cache-Control: no-store\r\n");
    return 401;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* An integer member, or a dash when the record did not carry it. */
static void num(out_t *o, json_t *row, const char *k)
{
    json_t *v = json_object_get(row, k);
    if (json_is_integer(v))
        put(o, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        put(o, "–");
}

static void timeline(out_t *o, json_t *rows)
{
    size_t i;
    json_t *row;
    put(o, "<table id=\"timeline\"><tr><th>time (UTC)</th><th>stage</th><th>request id</th>"
           "<th>source</th><th>message id</th><th>event type</th><th>status</th>"
           "<th>error</th><th>partition/offset</th><th>latency µs</th><th>chain/seq</th></tr>");
    json_array_foreach(rows, i, row)
    {
        int64_t ts = json_integer_value(json_object_get(row, "ts_us"));
        time_t secs = (time_t)(ts / 1000000);
        struct tm tm;
        char when[40];
        gmtime_r(&secs, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        put(o, "<tr class=\"stage-%s\"><td>%s.%06" PRId64 "</td><td>", jstr(row, "stage"), when,
            ts % 1000000);
        esc(o, jstr(row, "stage"));
        put(o, "</td><td>");
        esc(o, jstr(row, "request_id"));
        put(o, "</td><td>");
        esc(o, jstr(row, "source"));
        put(o, "</td><td>");
        esc(o, jstr(row, "message_id"));
        put(o, "</td><td>");
        esc(o, jstr(row, "event_type"));
        put(o, "</td><td>");
        num(o, row, "status");
        put(o, "</td><td class=\"bad\">");
        esc(o, jstr(row, "error_code"));
        put(o, "</td><td>");
        num(o, row, "partition");
        put(o, "/");
        num(o, row, "offset");
        put(o, "</td><td>");
        num(o, row, "latency_us");
        put(o, "</td><td>");
        num(o, row, "chain");
        put(o, "/");
        num(o, row, "seq");
        put(o, "</td></tr>");
    }
    put(o, "</table>");
}

typedef struct {
    int64_t lo[64], hi[64];
    uint64_t n[64];
    int k;
    uint64_t max;
} bars_t;

static void bar_cb(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    bars_t *b = arg;
    /* Many fine buckets are folded into at most 64 bars for drawing. */
    if (b->k == 64) {
        b->hi[63] = hi;
        b->n[63] += count;
    } else {
        b->lo[b->k] = lo;
        b->hi[b->k] = hi;
        b->n[b->k++] = count;
    }
}

/* One stage's histogram as an inline SVG bar chart, with its percentiles underneath. */
static void svg_hist(out_t *o, const char *stage, const hl_hist_t *h)
{
    bars_t b;
    memset(&b, 0, sizeof b);
    hl_hist_foreach(h, bar_cb, &b);
    for (int i = 0; i < b.k; i++)
        if (b.n[i] > b.max) b.max = b.n[i];
    put(o, "<figure id=\"hist-%s\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"360\""
           " height=\"170\" role=\"img\" aria-label=\"%s latency histogram\">",
        stage, stage);
    put(o, "<text x=\"8\" y=\"16\" font-size=\"13\">%s: %" PRIu64 " samples</text>", stage,
        hl_hist_count(h));
    int w = b.k > 0 ? 340 / b.k : 340;
    for (int i = 0; i < b.k; i++) {
        int bh = b.max ? (int)(120.0 * (double)b.n[i] / (double)b.max) : 0;
        if (bh < 1) bh = 1;
        put(o, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#4a7ebb\">"
               "<title>%" PRId64 "–%" PRId64 " µs: %" PRIu64 "</title></rect>",
            10 + i * w, 150 - bh, w > 2 ? w - 1 : 1, bh, b.lo[i], b.hi[i], b.n[i]);
    }
    if (b.k > 0)
        put(o, "<text x=\"10\" y=\"165\" font-size=\"10\">%" PRId64 " µs</text><text x=\"290\""
               " y=\"165\" font-size=\"10\">%" PRId64 " µs</text>",
            b.lo[0], b.hi[b.k - 1]);
    put(o, "</svg><figcaption>p50 %" PRId64 " · p90 %" PRId64 " · p95 %" PRId64 " · p99 %" PRId64
           " · p99.9 %" PRId64 " · max %" PRId64 " µs</figcaption></figure>",
        hl_hist_percentile(h, 50), hl_hist_percentile(h, 90), hl_hist_percentile(h, 95),
        hl_hist_percentile(h, 99), hl_hist_percentile(h, 99.9), hl_hist_max(h));
}

static void gaps_table(out_t *o, json_t *gaps)
{
    size_t i;
    json_t *g;
    put(o, "<h2>Open gaps</h2><table id=\"gaps\"><tr><th>request id</th><th>source</th>"
           "<th>message id</th><th>received (µs)</th></tr>");
    json_array_foreach(gaps, i, g)
    {
        put(o, "<tr><td><a href=\"/?id=");
        esc(o, jstr(g, "request_id"));
        put(o, "\">");
        esc(o, jstr(g, "request_id"));
        put(o, "</a></td><td>");
        esc(o, jstr(g, "source"));
        put(o, "</td><td>");
        esc(o, jstr(g, "message_id"));
        put(o, "</td><td>%" JSON_INTEGER_FORMAT "</td></tr>",
            json_integer_value(json_object_get(g, "ts_us")));
    }
    if (json_array_size(gaps) == 0) put(o, "<tr><td colspan=\"4\" class=\"ok\">none</td></tr>");
    put(o, "</table>");
}

/* The history's status, as GET /v1/verify says it (held to the checkpoint topic), with the
 * first bad row of each chain that fails. Returns 1 when the database could not be read. */
/* A whole verification that began after this page was asked for: pages loading together
 * share one walk (it costs seconds at a few hundred thousand rows) instead of each running
 * its own, and none shows a status older than itself. NULL on a database error. */
static json_t *history_status(hl_req_t *r, PGconn *c)
{
    char err[512];
    hl_auditor_t *a = r->a;
    json_t *v = NULL;
    int64_t asked = hl_now_us();
    pthread_mutex_lock(&a->status_mu);
    if (a->status && a->status_us >= asked) {
        v = json_incref(a->status);
    } else {
        v = json_object();
        if (hl_verify_report(a, c, -1, v, err, sizeof err) != 0) {
            json_decref(v);
            v = NULL;
        } else {
            json_decref(a->status);
            a->status = json_incref(v);
            a->status_us = asked;
        }
    }
    pthread_mutex_unlock(&a->status_mu);
    return v;
}

static int chain_status(out_t *o, hl_req_t *r, PGconn *c)
{
    json_t *v = history_status(r, c);
    if (!v) return 1;
    int ok = json_is_true(json_object_get(v, "ok"));
    json_t *outside = json_object_get(v, "checkpoints_outside"), *ch;
    put(o, "<h2>History</h2><p id=\"chain-status\" class=\"");
    put(o, ok ? "ok\">verified: every chain walks clean and holds to the checkpoint topic"
              : "bad\">NOT VERIFIED");
    put(o, "</p><ul id=\"chain-problems\">");
    if (!json_is_true(json_object_get(outside, "read"))) {
        put(o, "<li class=\"bad\">checkpoint topic not read: ");
        esc(o, json_string_value(json_object_get(outside, "error")));
        put(o, "</li>");
    }
    if (json_integer_value(json_object_get(outside, "refused")) > 0)
        put(o, "<li class=\"bad\">checkpoint topic holds records no known key signed</li>");
    size_t i;
    json_array_foreach(json_object_get(v, "chains"), i, ch) {
        json_t *b = json_object_get(ch, "first_bad");
        if (!json_is_object(b)) continue;
        put(o, "<li class=\"bad\">chain %lld: first bad row id %lld, seq %lld: ",
            (long long)json_integer_value(json_object_get(ch, "chain")),
            (long long)json_integer_value(json_object_get(b, "id")),
            (long long)json_integer_value(json_object_get(b, "seq")));
        esc(o, json_string_value(json_object_get(b, "reason")));
        put(o, "</li>");
    }
    put(o, "</ul>");
    json_decref(v);
    return 0;
}

int hl_h_page(hl_req_t *r)
{
    static const char *const allowed[] = {"id", NULL};
    char err[512];
    const char *id = hl_req_param(r, "id");
    if (hl_req_only(r, allowed)) return 400;
    if (id && !hl_id_valid(id, 256))
        return hl_reply_error(r, 400, "invalid_id", "id must be 1..256 printable bytes");
    PGconn *c = hl_req_db(r);
    if (!c) return 503;
    out_t o = {hl_xmalloc(PAGE_CAP), 0, PAGE_CAP};
    o.buf[0] = '\0';
    head(&o, "hookline auditor");
    put(&o, "<h1>hookline auditor</h1><form method=\"get\" action=\"/\"><label>Request or message"
            " id <input name=\"id\" size=\"50\" value=\"");
    esc(&o, id);
    put(&o, "\"></label> <button>Look up</button></form>"
            "<form method=\"post\" action=\"/logout\"><button>Sign out</button></form>");
    int failed = 0;
    if (id) {
        json_t *rows = strlen(id) <= 36 ? hl_q_request(c, id, err, sizeof err) : json_array();
        hl_cursor_t start = {0, 0};
        if (rows && json_array_size(rows) == 0) {
            json_t *m = hl_q_message(c, id, NULL, 200, start, err, sizeof err);
            json_decref(rows);
            rows = m ? json_incref(json_object_get(m, "lineage")) : NULL;
            json_decref(m);
        }
        put(&o, "<h2>Timeline of ");
        esc(&o, id);
        put(&o, "</h2>");
        if (!rows)
            failed = 1, put(&o, "<p class=\"bad\">database query failed</p>");
        else if (json_array_size(rows) == 0)
            put(&o, "<p id=\"notfound\" class=\"bad\">No lineage for this id.</p>");
        else
            timeline(&o, rows);
        json_decref(rows);
    }
    put(&o, "<h2>Latency, last hour</h2><div class=\"hist\">");
    int64_t now = hl_now_us();
    for (int s = 0; s < HL_LAT_N && !failed; s++) {
        hl_hist_t *h = hl_hist_new();
        if (hl_q_latency(c, (hl_lat_t)s, NULL, NULL, now - INT64_C(3600000000), now + 1, h, err,
                         sizeof err) != 0)
            failed = 1;
        else
            svg_hist(&o, hl_lat_name((hl_lat_t)s), h);
        hl_hist_free(h);
    }
    put(&o, "</div>");
    hl_cursor_t start = {0, 0};
    json_t *gaps = failed ? NULL
                          : hl_q_gaps(c, (int64_t)r->a->cfg->gap_grace_s * 1000000, "open",
                                      now - INT64_C(86400000000), now + 1, 100, start, err,
                                      sizeof err);
    if (gaps)
        gaps_table(&o, json_object_get(gaps, "gaps"));
    else
        failed = 1;
    json_decref(gaps);
    if (!failed) failed = chain_status(&o, r, c);
    put(&o, "</body></html>");
    hl_req_db_done(r, c, failed);
    send_page(r, failed ? 503 : 200, &o,
              "Cache-Control: no-store\r\nContent-Security-Policy: default-src 'none'; "
              "style-src 'unsafe-inline'; img-src 'self'; form-action 'self'\r\n"
              "X-Frame-Options: DENY\r\n");
    return failed ? 503 : 200;
}

/* Reads the form body (token=…&next=…) of at most 1 KiB. */
int hl_h_login(hl_req_t *r)
{
    char body[1025], tok[HL_TOKEN_MAX + 2], next[300];
    const struct mg_request_info *ri = mg_get_request_info(r->conn);
    if (ri->content_length <= 0 || ri->content_length > 1024)
        return hl_h_page_login(r, "Sign-in form missing or too large.");
    size_t got = 0;
    int64_t deadline = hl_mono_us() + (int64_t)r->a->cfg->http.request_timeout_ms * 1000;
    int rc = hl_http_read_body(r->conn, body, (size_t)ri->content_length, deadline, &got);
    if (rc == HL_ETIMEDOUT)
        return hl_reply_error(r, 408, "request_timeout", "the form did not arrive in time");
    if (rc != HL_OK) return hl_h_page_login(r, "Sign-in form not received.");
    body[got] = '\0';
    int n = mg_get_var(body, got, "token", tok, sizeof tok);
    unsigned roles = n > 0 && n <= HL_TOKEN_MAX
                         ? hl_tokens_roles(&r->a->tokens, tok, (size_t)n)
                         : 0;
    if (!(roles & (HL_ROLE_AUDITOR | HL_ROLE_ADMIN)))
        return hl_h_page_login(r, "That token is not valid for the page.");
    /* Only a local page path may follow the sign-in (no open redirect). */
    int nl = mg_get_var(body, got, "next", next, sizeof next);
    const char *dest = "/";
    if (nl > 1 && next[0] == '/' && next[1] == '?' && hl_id_valid(next, sizeof next - 1) &&
        !strpbrk(next, "\\ "))
        dest = next;
    /* A page that moves on by itself rather than a 303: the next request then comes from this
     * site, so the SameSite=Strict cookie goes with it even when the form was posted from
     * elsewhere. */
    char hdr[HL_TOKEN_MAX + 256];
    snprintf(hdr, sizeof hdr,
             "Set-Cookie: hl_token=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200\r\n"
             "Cache-Control: no-store\r\n",
             tok);
    out_t o = {hl_xmalloc(4096), 0, 4096};
    o.buf[0] = '\0';
    put(&o, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\""
            " content=\"0;url=");
    esc(&o, dest);
    put(&o, "\"><title>signed in</title></head><body><a href=\"");
    esc(&o, dest);
    put(&o, "\">continue</a></body></html>");
    send_page(r, 200, &o, hdr);
    return 200;
}

int hl_h_logout(hl_req_t *r)
{
    hl_http_send(r->conn, 303, "text/plain", r->rid,
                 "Set-Cookie: hl_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0\r\n"
                 "Location: /\r\n",
                 "signed out\n", 11);
    return 303;
}
