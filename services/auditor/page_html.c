/* The page's shared pieces: its head and style, sending it, and the cells every section
 * writes (JSON members, times in UTC, durations). */
#include "page_html.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "chart.h"
#include "hl/httpd.h"
#include "hl/util.h"

void aud_page_head(aud_html_t *o, const char *title)
{
    aud_put(o, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    aud_esc(o, title);
    aud_put(o, "</title><style>body{font-family:sans-serif;margin:1.5em;color:#222;"
               "max-width:1260px}"
               "table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ccc;"
               "padding:.2em .5em;font-size:.9em;text-align:left}th{background:#eee}"
               "td.n{text-align:right;font-variant-numeric:tabular-nums}"
               ".bad{color:#b00}.ok{color:#070}.muted{color:#666}svg{background:#fff;"
               "border:1px solid #ddd}.hist{display:flex;flex-wrap:wrap}"
               "figure{margin:.4em;width:602px}figcaption{font-size:.9em;margin:.2em 0 0 .3em}"
               "section.req{border:1px solid #ccc;border-radius:4px;padding:.2em .8em;"
               "margin:.6em 0}section.req h3{font-size:1em;margin:.4em 0}code{font-size:.95em}"
               "form{display:inline-block;margin-right:1em}</style></head><body>");
}

void aud_page_send(aud_req_t *r, int status, aud_html_t *o, const char *extra)
{
    hl_http_send(r->conn, status, "text/html; charset=utf-8", r->rid, extra, o->buf, o->len);
    free(o->buf);
}

const char *aud_page_jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

void aud_page_num(aud_html_t *o, json_t *row, const char *k)
{
    json_t *v = json_object_get(row, k);
    if (json_is_integer(v))
        aud_put(o, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        aud_put(o, "–");
}

void aud_page_when(aud_html_t *o, int64_t ts_us)
{
    time_t secs = (time_t)(ts_us / 1000000);
    struct tm tm;
    char when[40];
    gmtime_r(&secs, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    aud_put(o, "%s.%03" PRId64, when, (ts_us % 1000000) / 1000);
}

void aud_page_ms(aud_html_t *o, int64_t us)
{
    char t[32];
    aud_fmt_ms(us, t, sizeof t);
    aud_put(o, "%s", t);
}
