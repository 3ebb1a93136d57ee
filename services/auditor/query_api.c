/* The /v1 lineage queries and /metrics: each reads its parameters strictly, runs its query
 * and answers JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "hl/httpd.h"
#include "hl/metrics.h"
#include "hl/proto.h"
#include "hl/util.h"
#include "query.h"
#include "rollup.h"

#define HOUR_US INT64_C(3600000000)
#define DAY_US (24 * HOUR_US)

int aud_h_request(aud_req_t *r, const char *id)
{
    static const char *const allowed[] = {NULL};
    char err[512];
    if (aud_req_only(r, allowed)) return 400;
    if (!aud_id_valid(id, HL_REQUEST_ID_MAX) || strchr(id, '/'))
        return aud_reply_error(
            r, 400, "invalid_id",
            "request id must be 1.." HL_PROTO_STR(HL_REQUEST_ID_MAX) " printable bytes");
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    json_t *rows = aud_q_request(c, id, err, sizeof err);
    if (!rows) return aud_req_db_fail(r, c, err);
    aud_req_db_done(r, c, 0);
    if (json_array_size(rows) == 0) {
        json_decref(rows);
        return aud_reply_error(r, 404, "not_found", "no lineage for this request id");
    }
    json_t *o = json_object();
    json_object_set_new(o, "request_id", json_string(id));
    json_object_set_new(o, "lineage", rows);
    return aud_reply_json(r, 200, o);
}

int aud_h_message(aud_req_t *r, const char *id)
{
    static const char *const allowed[] = {"source", "limit", "cursor", NULL};
    char err[512];
    const char *source;
    int limit;
    aud_cursor_t cur;
    if (aud_req_only(r, allowed) || aud_param_source(r, &source) || aud_param_limit(r, &limit) ||
        aud_param_cursor(r, &cur))
        return 400;
    if (!aud_id_valid(id, HL_MESSAGE_ID_MAX))
        return aud_reply_error(
            r, 400, "invalid_id",
            "message id must be 1.." HL_PROTO_STR(HL_MESSAGE_ID_MAX) " printable bytes");
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    json_t *o = aud_q_message(c, id, source, limit, cur, err, sizeof err);
    if (!o) return aud_req_db_fail(r, c, err);
    aud_req_db_done(r, c, 0);
    if (json_array_size(json_object_get(o, "lineage")) == 0 &&
        json_array_size(json_object_get(o, "events")) == 0 && cur.id == 0) {
        json_decref(o);
        return aud_reply_error(r, 404, "not_found", "nothing known about this message id");
    }
    return aud_reply_json(r, 200, o);
}

/* from/to with defaults [now - span, now]; to must follow from. */
static int range(aud_req_t *r, int64_t span, int64_t *from, int64_t *to)
{
    int64_t now = hl_now_us();
    if (aud_param_time(r, "from", now - span, from) || aud_param_time(r, "to", now + 1, to))
        return -1;
    if (*to <= *from) {
        aud_reply_error(r, 400, "bad_range", "'to' must be after 'from'");
        return -1;
    }
    return 0;
}

int aud_h_requests(aud_req_t *r)
{
    static const char *const allowed[] = {"from",  "to",     "source", "status",
                                          "limit", "cursor", NULL};
    char err[512];
    const char *source;
    int64_t from, to, status;
    int limit;
    aud_cursor_t cur;
    if (aud_req_only(r, allowed) || range(r, HOUR_US, &from, &to) || aud_param_source(r, &source) ||
        aud_param_int(r, "status", 100, 599, 0, &status) || aud_param_limit(r, &limit) ||
        aud_param_cursor(r, &cur))
        return 400;
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    json_t *o = aud_q_requests(c, from, to, source, (int)status, limit, cur, err, sizeof err);
    if (!o) return aud_req_db_fail(r, c, err);
    aud_req_db_done(r, c, 0);
    return aud_reply_json(r, 200, o);
}

int aud_h_gaps(aud_req_t *r)
{
    static const char *const allowed[] = {"from", "to", "state", "limit", "cursor", NULL};
    char err[512];
    int64_t from, to;
    int limit;
    aud_cursor_t cur;
    const char *state = aud_req_param(r, "state");
    if (aud_req_only(r, allowed) || range(r, DAY_US, &from, &to) || aud_param_limit(r, &limit) ||
        aud_param_cursor(r, &cur))
        return 400;
    if (!state) state = "open";
    if (strcmp(state, "open") && strcmp(state, "closed") && strcmp(state, "all"))
        return aud_reply_error(r, 400, "bad_state", "state must be open, closed or all");
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    int64_t grace = (int64_t)r->a->cfg->gap_grace_s * 1000000;
    json_t *o = aud_q_gaps(c, grace, state, from, to, limit, cur, err, sizeof err);
    if (!o) return aud_req_db_fail(r, c, err);
    aud_req_db_done(r, c, 0);
    json_object_set_new(o, "grace_s", json_integer(r->a->cfg->gap_grace_s));
    return aud_reply_json(r, 200, o);
}

int aud_h_latency(aud_req_t *r)
{
    static const char *const allowed[] = {"from", "to", "stage", "source", "live", "buckets", NULL};
    char err[512];
    const char *source, *st = aud_req_param(r, "stage");
    int64_t from, to, live, buckets;
    aud_lat_t only = AUD_LAT_N;
    if (aud_req_only(r, allowed) || range(r, HOUR_US, &from, &to) || aud_param_source(r, &source) ||
        aud_param_int(r, "live", 0, 1, 0, &live) || aud_param_int(r, "buckets", 0, 1, 1, &buckets))
        return 400;
    if (st && aud_lat_parse(st, &only) != 0)
        return aud_reply_error(r, 400, "bad_stage", "stage must be ack, queue, persist or e2e");
    PGconn *c = NULL;
    if (!live && !(c = aud_req_db(r))) return 503;
    json_t *stages = json_object();
    for (int s = 0; s < AUD_LAT_N; s++) {
        if (only != AUD_LAT_N && s != (int)only) continue;
        hl_hist_t *h = hl_hist_new();
        if (live)
            aud_live_merge(r->a->live, (aud_lat_t)s, source, h);
        else if (aud_q_latency(c, (aud_lat_t)s, source, NULL, from, to, h, err, sizeof err) != 0) {
            hl_hist_free(h);
            json_decref(stages);
            return aud_req_db_fail(r, c, err);
        }
        json_object_set_new(stages, aud_lat_name((aud_lat_t)s), aud_hist_summary(h, (int)buckets));
        hl_hist_free(h);
    }
    if (c) aud_req_db_done(r, c, 0);
    json_t *o = json_object();
    json_object_set_new(o, "unit", json_string("us"));
    json_object_set_new(o, "source", source ? json_string(source) : json_null());
    json_object_set_new(o, "live", json_boolean(live));
    if (!live) {
        json_object_set_new(o, "from_us", json_integer(from - from % 60000000));
        json_object_set_new(o, "to_us", json_integer(to));
    }
    json_object_set_new(o, "stages", stages);
    return aud_reply_json(r, 200, o);
}

int aud_h_budget(aud_req_t *r)
{
    static const char *const allowed[] = {"from", "to", "source", NULL};
    char err[512];
    const char *source;
    int64_t from, to;
    const aud_config_t *cfg = r->a->cfg;
    if (aud_req_only(r, allowed) || range(r, HOUR_US, &from, &to) || aud_param_source(r, &source))
        return 400;
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    json_t *o = aud_q_budget(c, from, to, source, cfg->slo.ack_ms, cfg->slo.e2e_ms, cfg->slo.target,
                             err, sizeof err);
    if (!o) return aud_req_db_fail(r, c, err);
    aud_req_db_done(r, c, 0);
    return aud_reply_json(r, 200, o);
}

int aud_h_metrics(aud_req_t *r)
{
    size_t len;
    char *text = hl_metrics_render(r->a->metrics, &len);
    hl_http_send(r->conn, 200, "text/plain; version=0.0.4", r->rid, NULL, text, len);
    free(text);
    return 200;
}
