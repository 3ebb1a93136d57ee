/* One request of the auditor's HTTP API: its query string split and read strictly, its
 * answers (JSON, errors), and the database connection it borrows. */
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl/httpd.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/proto.h"
#include "hl/util.h"

const char *aud_req_param(const aud_req_t *r, const char *key)
{
    for (int i = 0; i < r->nparams; i++)
        if (strcmp(r->keys[i], key) == 0) return r->vals[i];
    return NULL;
}

int aud_req_only(aud_req_t *r, const char *const *allowed)
{
    for (int i = 0; i < r->nparams; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, r->keys[i]) == 0;
        if (!ok) {
            char msg[96];
            snprintf(msg, sizeof msg, "unknown query parameter '%.40s'", r->keys[i]);
            aud_reply_error(r, 400, "unknown_parameter", msg);
            return -1;
        }
    }
    return 0;
}

int aud_req_parse_query(aud_req_t *r, const char *qs)
{
    while (qs && *qs) {
        const char *amp = strchr(qs, '&'), *end = amp ? amp : qs + strlen(qs);
        const char *eq = memchr(qs, '=', (size_t)(end - qs));
        const char *kend = eq ? eq : end;
        if (end == qs) {
            qs = amp ? amp + 1 : end;
            continue;
        }
        if (r->nparams == AUD_API_MAX_PARAMS)
            return aud_reply_error(r, 400, "too_many_parameters", "at most 16 parameters"), -1;
        int kl = mg_url_decode(qs, (int)(kend - qs), r->keys[r->nparams], 32, 1);
        int vl = eq ? mg_url_decode(eq + 1, (int)(end - eq - 1), r->vals[r->nparams],
                                    AUD_API_MAX_VALUE, 1)
                    : 0;
        if (!eq) r->vals[r->nparams][0] = '\0';
        if (kl <= 0 || vl < 0 || (size_t)kl != strlen(r->keys[r->nparams]) ||
            (size_t)vl != strlen(r->vals[r->nparams]))
            return aud_reply_error(r, 400, "bad_parameter",
                                   "parameter too long, empty or with a NUL byte"),
                   -1;
        if (aud_req_param(r, r->keys[r->nparams]))
            return aud_reply_error(r, 400, "duplicate_parameter", "a parameter was repeated"), -1;
        r->nparams++;
        qs = amp ? amp + 1 : end;
    }
    return 0;
}

int aud_parse_time(const char *s, int64_t *out)
{
    struct tm tm;
    int64_t frac = 0;
    char tail[16];
    size_t n = strlen(s);
    if (n > 0 && strspn(s, "0123456789") == n)
        return hl_parse_i64(s, 0, INT64_C(4102444800000000), out) == 0 ? 0 : -1;
    memset(&tm, 0, sizeof tm);
    int used = 0;
    if (n < 20 || n > 27 ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6 ||
        used != 19)
        return -1;
    for (int i = 0; i < 19; i++)
        if ((i == 4 || i == 7)     ? s[i] != '-'
            : i == 10              ? s[i] != 'T'
            : (i == 13 || i == 16) ? s[i] != ':'
                                   : (s[i] < '0' || s[i] > '9'))
            return -1;
    const char *p = s + 19;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 6) frac = frac * 10 + (*p - '0');
        if (digits == 0 || digits > 6) return -1;
        for (; digits < 6; digits++) frac *= 10;
    }
    if (hl_strlcpy(tail, p, sizeof tail) != 0 || strcmp(tail, "Z") != 0) return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970 || tm.tm_year > 2099)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t < 0) return -1;
    *out = (int64_t)t * 1000000 + frac;
    return 0;
}

int aud_param_time(aud_req_t *r, const char *key, int64_t def, int64_t *out)
{
    const char *v = aud_req_param(r, key);
    *out = def;
    if (!v) return 0;
    if (aud_parse_time(v, out) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "'%s' must be RFC 3339 UTC (…Z) or epoch microseconds", key);
        aud_reply_error(r, 400, "bad_time", msg);
        return -1;
    }
    return 0;
}

int aud_param_int(aud_req_t *r, const char *key, int64_t min, int64_t max, int64_t def,
                  int64_t *out)
{
    const char *v = aud_req_param(r, key);
    *out = def;
    if (!v) return 0;
    if (hl_parse_i64(v, min, max, out) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "'%s' must be an integer in [%lld, %lld]", key, (long long)min,
                 (long long)max);
        aud_reply_error(r, 400, "bad_integer", msg);
        return -1;
    }
    return 0;
}

int aud_param_limit(aud_req_t *r, int *out)
{
    int64_t v;
    if (aud_param_int(r, "limit", 1, r->a->cfg->page_limit_max, 100, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

int aud_param_cursor(aud_req_t *r, aud_cursor_t *out)
{
    const char *v = aud_req_param(r, "cursor");
    char a[24], b[24];
    out->ts_us = out->id = 0;
    if (!v) return 0;
    const char *dot = strchr(v, '.');
    if (!dot || (size_t)(dot - v) >= sizeof a || strlen(dot + 1) >= sizeof b) goto bad;
    memcpy(a, v, (size_t)(dot - v));
    a[dot - v] = '\0';
    hl_strlcpy(b, dot + 1, sizeof b);
    if (hl_parse_i64(a, 0, INT64_MAX, &out->ts_us) == 0 &&
        hl_parse_i64(b, 0, INT64_MAX, &out->id) == 0 && a[0] != '+' && b[0] != '+')
        return 0;
bad:
    aud_reply_error(r, 400, "bad_cursor",
                    "cursor must be a next_cursor value from a previous page");
    return -1;
}

int aud_param_source(aud_req_t *r, const char **out)
{
    const char *v = aud_req_param(r, "source");
    *out = v;
    if (!v) return 0;
    size_t n = strlen(v);
    if (n >= 1 && n <= HL_SOURCE_MAX &&
        strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n)
        return 0;
    aud_reply_error(r, 400, "bad_source",
                    "source must be 1.." HL_PROTO_STR(HL_SOURCE_MAX) " of [A-Za-z0-9_.-]");
    return -1;
}

int aud_id_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

static void count_status(aud_req_t *r, int status)
{
    int k = status / 100;
    if (k >= 1 && k <= 5 && r->a->m_http[k]) hl_counter_inc(r->a->m_http[k]);
}

int aud_reply_json(aud_req_t *r, int status, json_t *body)
{
    size_t n = json_dumpb(body, NULL, 0, JSON_COMPACT);
    char *buf = hl_xmalloc(n + 1);
    n = json_dumpb(body, buf, n, JSON_COMPACT);
    json_decref(body);
    count_status(r, status);
    hl_http_send(r->conn, status, "application/json", r->rid, "Cache-Control: no-store\r\n", buf,
                 n);
    free(buf);
    return status;
}

int aud_reply_error(aud_req_t *r, int status, const char *code, const char *msg)
{
    count_status(r, status);
    hl_http_error(r->conn, status, code, msg, r->rid,
                  status == 401 ? "WWW-Authenticate: Bearer realm=\"hookline-auditor\"\r\n" : NULL);
    return status;
}

PGconn *aud_req_db(aud_req_t *r)
{
    PGconn *c = hl_pg_pool_get(r->a->pool);
    if (!c) aud_reply_error(r, 503, "unavailable", "database unavailable, retry later");
    return c;
}

void aud_req_db_done(aud_req_t *r, PGconn *c, int failed)
{
    hl_pg_pool_put(r->a->pool, c, failed && PQstatus(c) != CONNECTION_OK);
}

int aud_req_db_fail(aud_req_t *r, PGconn *c, const char *err)
{
    hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
    HL_LOG(HL_LOG_ERROR, &ctx, NULL, "api: %s", err);
    aud_req_db_done(r, c, 1);
    return aud_reply_error(r, 503, "unavailable", "database query failed, retry later");
}

int aud_req_read_body(aud_req_t *r, char *buf, size_t cap)
{
    const struct mg_request_info *ri = mg_get_request_info(r->conn);
    if (ri->content_length < 0 || (size_t)ri->content_length >= cap) return -1;
    size_t got = 0;
    int64_t deadline = hl_mono_us() + (int64_t)r->a->cfg->http.request_timeout_ms * 1000;
    int rc = hl_http_read_body(r->conn, buf, (size_t)ri->content_length, deadline, &got);
    if (rc != HL_OK) return rc == HL_ETIMEDOUT ? -2 : -1;
    buf[got] = '\0';
    return (int)got;
}
