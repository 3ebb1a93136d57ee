/* The /v1 handlers: each reads its parameters strictly, runs its query and answers JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "hl/httpd.h"
#include "hl/log.h"
#include "hl/util.h"
#include "verify.h"
#include "vouch.h"

#define HOUR_US INT64_C(3600000000)
#define DAY_US (24 * HOUR_US)

static int db_error(hl_req_t *r, PGconn *c, const char *err)
{
    hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
    HL_LOG(HL_LOG_ERROR, &ctx, NULL, "api: %s", err);
    hl_req_db_done(r, c, 1);
    return hl_reply_error(r, 503, "unavailable", "database query failed, retry later");
}

int hl_h_request(hl_req_t *r, const char *id)
{
    static const char *const allowed[] = {NULL};
    char err[512];
    if (hl_req_only(r, allowed)) return 400;
    if (!hl_id_valid(id, 36) || strchr(id, '/'))
        return hl_reply_error(r, 400, "invalid_id", "request id must be 1..36 printable bytes");
    PGconn *c = hl_req_db(r);
    if (!c) return 503;
    json_t *rows = hl_q_request(c, id, err, sizeof err);
    if (!rows) return db_error(r, c, err);
    hl_req_db_done(r, c, 0);
    if (json_array_size(rows) == 0) {
        json_decref(rows);
        return hl_reply_error(r, 404, "not_found", "no lineage for this request id");
    }
    json_t *o = json_object();
    json_object_set_new(o, "request_id", json_string(id));
    json_object_set_new(o, "lineage", rows);
    return hl_reply_json(r, 200, o);
}

int hl_h_message(hl_req_t *r, const char *id)
{
    static const char *const allowed[] = {"source", "limit", "cursor", NULL};
    char err[512];
    const char *source;
    int limit;
    hl_cursor_t cur;
    if (hl_req_only(r, allowed) || hl_param_source(r, &source) || hl_param_limit(r, &limit) ||
        hl_param_cursor(r, &cur))
        return 400;
    if (!hl_id_valid(id, 256))
        return hl_reply_error(r, 400, "invalid_id", "message id must be 1..256 printable bytes");
    PGconn *c = hl_req_db(r);
    if (!c) return 503;
    json_t *o = hl_q_message(c, id, source, limit, cur, err, sizeof err);
    if (!o) return db_error(r, c, err);
    hl_req_db_done(r, c, 0);
    if (json_array_size(json_object_get(o, "lineage")) == 0 &&
        json_array_size(json_object_get(o, "events")) == 0 && cur.id == 0) {
        json_decref(o);
        return hl_reply_error(r, 404, "not_found", "nothing known about this message id");
    }
    return hl_reply_json(r, 200, o);
}

/* from/to with defaults [now - span, now]; to must follow from. */
static int range(hl_req_t *r, int64_t span, int64_t *from, int64_t *to)
{
    int64_t now = hl_now_us();
    if (hl_param_time(r, "from", now - span, from) || hl_param_time(r, "to", now + 1, to))
        return -1;
    if (*to <= *from) {
        hl_reply_error(r, 400, "bad_range", "'to' must be after 'from'");
        return -1;
    }
    return 0;
}

int hl_h_requests(hl_req_t *r)
{
    static const char *const allowed[] = {"from", "to", "source", "status", "limit", "cursor",
                                          NULL};
    char err[512];
    const char *source;
    int64_t from, to, status;
    int limit;
    hl_cursor_t cur;
    if (hl_req_only(r, allowed) || range(r, HOUR_US, &from, &to) ||
        hl_param_source(r, &source) || hl_param_int(r, "status", 100, 599, 0, &status) ||
        hl_param_limit(r, &limit) || hl_param_cursor(r, &cur))
        return 400;
    PGconn *c = hl_req_db(r);
    if (!c) return 503;
    json_t *o = hl_q_requests(c, from, to, source, (int)status, limit, cur, err, sizeof err);
    if (!o) return db_error(r, c, err);
    hl_req_db_done(r, c, 0);
    return hl_reply_json(r, 200, o);
}

int hl_h_gaps(hl_req_t *r)
{
    static const char *const allowed[] = {"from", "to", "state", "limit", "cursor", NULL};
    char err[512];
    int64_t from, to;
    int limit;
    hl_cursor_t cur;
    const char *state = hl_req_param(r, "state");
    if (hl_req_only(r, allowed) || range(r, DAY_US, &from, &to) || hl_param_limit(r, &limit) ||
        hl_param_cursor(r, &cur))
        return 400;
    if (!state) state = "open";
    if (strcmp(state, "open") && strcmp(state, "closed") && strcmp(state, "all"))
        return hl_reply_error(r, 400, "bad_state", "state must be open, closed or all");
    PGconn *c = hl_req_db(r);
    if (!c) return 503;
    int64_t grace = (int64_t)r->a->cfg->gap_grace_s * 1000000;
    json_t *o = hl_q_gaps(c, grace, state, from, to, limit, cur, err, sizeof err);
    if (!o) return db_error(r, c, err);
    hl_req_db_done(r, c, 0);
    json_object_set_new(o, "grace_s", json_integer(r->a->cfg->gap_grace_s));
    return hl_reply_json(r, 200, o);
}

int hl_h_latency(hl_req_t *r)
{
    static const char *const allowed[] = {"from", "to", "stage", "source", "live", "buckets",
                                          NULL};
    char err[512];
    const char *source, *st = hl_req_param(r, "stage");
    int64_t from, to, live, buckets;
    hl_lat_t only = HL_LAT_N;
    if (hl_req_only(r, allowed) || range(r, HOUR_US, &from, &to) ||
        hl_param_source(r, &source) || hl_param_int(r, "live", 0, 1, 0, &live) ||
        hl_param_int(r, "buckets", 0, 1, 1, &buckets))
        return 400;
    if (st && hl_lat_parse(st, &only) != 0)
        return hl_reply_error(r, 400, "bad_stage", "stage must be ack, queue, persist or e2e");
    PGconn *c = NULL;
    if (!live && !(c = hl_req_db(r))) return 503;
    json_t *stages = json_object();
    for (int s = 0; s < HL_LAT_N; s++) {
        if (only != HL_LAT_N && s != (int)only) continue;
        hl_hist_t *h = hl_hist_new();
        if (live)
            hl_live_merge(r->a->live, (hl_lat_t)s, source, h);
        else if (hl_q_latency(c, (hl_lat_t)s, source, NULL, from, to, h, err, sizeof err) != 0) {
            hl_hist_free(h);
            json_decref(stages);
            return db_error(r, c, err);
        }
        json_object_set_new(stages, hl_lat_name((hl_lat_t)s), hl_hist_summary(h, (int)buckets));
        hl_hist_free(h);
    }
    if (c) hl_req_db_done(r, c, 0);
    json_t *o = json_object();
    json_object_set_new(o, "unit", json_string("us"));
    json_object_set_new(o, "source", source ? json_string(source) : json_null());
    json_object_set_new(o, "live", json_boolean(live));
    if (!live) {
        json_object_set_new(o, "from_us", json_integer(from - from % 60000000));
        json_object_set_new(o, "to_us", json_integer(to));
    }
    json_object_set_new(o, "stages", stages);
    return hl_reply_json(r, 200, o);
}

int hl_h_budget(hl_req_t *r)
{
    static const char *const allowed[] = {"from", "to", "source", NULL};
    char err[512];
    const char *source;
    int64_t from, to;
    const hl_auditor_config_t *cfg = r->a->cfg;
    if (hl_req_only(r, allowed) || range(r, HOUR_US, &from, &to) || hl_param_source(r, &source))
        return 400;
    PGconn *c = hl_req_db(r);
    if (!c) return 503;
    json_t *o = hl_q_budget(c, from, to, source, cfg->slo.ack_ms, cfg->slo.e2e_ms,
                            cfg->slo.target, err, sizeof err);
    if (!o) return db_error(r, c, err);
    hl_req_db_done(r, c, 0);
    return hl_reply_json(r, 200, o);
}

static json_t *verify_json(const hl_verify_t *v)
{
    char hex[65];
    json_t *o = json_object();
    hl_chain_hex(v->head_hash, hex);
    json_object_set_new(o, "chain", json_integer(v->chain));
    json_object_set_new(o, "ok", json_boolean(v->ok));
    json_object_set_new(o, "rows", json_integer(v->rows));
    json_object_set_new(o, "head_seq", json_integer(v->head_seq));
    json_object_set_new(o, "head_hash", v->head_seq ? json_string(hex) : json_null());
    json_object_set_new(o, "checkpoint_seq", json_integer(v->newest_seal));
    if (v->ok) {
        json_object_set_new(o, "first_bad", json_null());
    } else {
        json_t *b = json_object();
        json_object_set_new(b, "id", json_integer(v->bad_id));
        json_object_set_new(b, "seq", json_integer(v->bad_seq));
        json_object_set_new(b, "expected_seq", json_integer(v->expected_seq));
        json_object_set_new(b, "reason", json_string(v->reason));
        if (v->column) json_object_set_new(b, "column", json_string(v->column));
        if (v->topic_check) json_object_set_new(b, "topic_check", json_string(v->topic_check));
        if (v->sealed_seq) {
            /* The edit lies after the last checkpoint met intact and at or before this one. */
            json_object_set_new(b, "checkpoint_seq", json_integer(v->sealed_seq));
            json_object_set_new(b, "intact_through_seq", json_integer(v->matched_seq));
        }
        json_object_set_new(o, "first_bad", b);
    }
    return o;
}

/* Reads a small request body (checkpoints are ~300 bytes) within http.request_timeout_ms,
 * however slowly it comes. Returns length, -1, or -2 when it did not arrive in time. */
static int read_body(hl_req_t *r, char *buf, size_t cap)
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

static int verify_checkpoint(hl_req_t *r, PGconn *c, const hl_checkpoint_t *cp, json_t *out,
                             char *err, size_t errcap)
{
    hl_verify_t v;
    unsigned char h[HL_CHAIN_HASH_LEN];
    int sig_ok = hl_keyring_verify(&r->a->ring, cp) == 0;
    int rc = hl_verify_chain(c, cp->chain, cp->seq, &v, err, errcap);
    if (rc) return rc;
    rc = hl_verify_hash_at(c, cp->chain, cp->seq, h, err, errcap);
    if (rc && rc != HL_ENOTFOUND) return rc;
    int present = rc == 0, matches = present && memcmp(h, cp->hash, sizeof h) == 0;
    json_t *k = json_object();
    json_object_set_new(k, "chain", json_integer(cp->chain));
    json_object_set_new(k, "seq", json_integer(cp->seq));
    json_object_set_new(k, "signature_valid", json_boolean(sig_ok));
    json_object_set_new(k, "row_present", json_boolean(present));
    json_object_set_new(k, "hash_matches", json_boolean(matches));
    json_object_set_new(out, "checkpoint", k);
    json_object_set_new(out, "chain", verify_json(&v));
    json_object_set_new(out, "ok", json_boolean(sig_ok && matches && v.ok));
    return 0;
}

int hl_h_verify(hl_req_t *r)
{
    static const char *const allowed[] = {"chain", NULL};
    char err[512], body[2048];
    int64_t chain;
    hl_checkpoint_t cp;
    int post = strcmp(r->method, "POST") == 0;
    if (hl_req_only(r, allowed) || hl_param_int(r, "chain", 0, HL_MAX_CHAINS - 1, -1, &chain))
        return 400;
    if (post) {
        int n = read_body(r, body, sizeof body);
        if (n == -2) return hl_reply_error(r, 408, "request_timeout", "body not received in time");
        if (n < 0) return hl_reply_error(r, 400, "bad_body", "a checkpoint JSON body is needed");
        if (hl_checkpoint_parse(body, (size_t)n, &cp) != 0)
            return hl_reply_error(r, 400, "bad_checkpoint",
                                  "body must be a checkpoint as served by /v1/checkpoints");
    }
    PGconn *c = hl_req_db(r);
    if (!c) return 503;
    json_t *o = json_object();
    int64_t t0 = hl_mono_us(), began = hl_now_us();
    if (post) {
        if (verify_checkpoint(r, c, &cp, o, err, sizeof err) != 0) {
            json_decref(o);
            return db_error(r, c, err);
        }
    } else if (hl_verify_report(r->a, c, (int32_t)chain, o, err, sizeof err) != 0) {
        json_decref(o);
        return db_error(r, c, err);
    } else if (chain < 0) {
        /* A whole verification is news for the page too. */
        hl_page_status_offer(r->a, o, began, hl_mono_us() - t0);
    }
    hl_req_db_done(r, c, 0);
    json_object_set_new(o, "elapsed_us", json_integer(hl_mono_us() - t0));
    return hl_reply_json(r, 200, o);
}

/* Rows beyond what this process wrote to a chain it owns: with written_mu held no write
 * transaction of its own is open, so the table must end exactly where it wrote, and a row
 * after that (even one hashed correctly onto the head) was put there by someone else. Also the
 * first such row the consumer met (foreign_seq). Returns n or HL_EPG. */
static int unwritten_rows(hl_auditor_t *a, PGconn *c, hl_verify_t *vs, int n, char *err,
                          size_t errcap)
{
    int rc = n, parts = atomic_load(&a->lineage_partitions);
    pthread_mutex_lock(&a->written_mu);
    for (int i = 0; i < n && rc >= 0; i++) {
        int32_t p = vs[i].chain;
        if (p >= 0 && p < HL_MAX_CHAINS && a->deleted_seq[p] &&
            (vs[i].ok || strcmp(vs[i].reason, "checkpoint_beyond_head") == 0)) {
            /* Rows deleted below a checkpoint, found at assignment (consumer.c): even once
             * stored again, the deletion is named. */
            vs[i].ok = false;
            vs[i].reason = "rows_deleted_below_checkpoint";
            vs[i].bad_id = vs[i].sealed_seq = vs[i].matched_seq = 0;
            vs[i].column = NULL;
            vs[i].bad_seq = vs[i].expected_seq = a->deleted_seq[p];
            continue;
        }
        if (vs[i].ok && p >= 0 && p < HL_MAX_CHAINS && parts > 0 && p >= parts) {
            /* No partition of the lineage topic feeds this chain: every row of it is forged. */
            int64_t id, seq;
            int found = hl_verify_first_from(c, p, INT64_MIN + 1, &id, &seq, err, errcap);
            if (found < 0) rc = found;
            if (found == 1) {
                vs[i].ok = false;
                vs[i].reason = "no_partition";
                vs[i].bad_id = id;
                vs[i].bad_seq = seq;
                vs[i].expected_seq = 1;
            }
            continue;
        }
        if (!vs[i].ok || p < 0 || p >= HL_MAX_CHAINS || !a->owned[p]) continue;
        int64_t from = a->foreign_seq[p] ? a->foreign_seq[p] : a->written[p].seq + 1, id, seq;
        int found = hl_verify_first_from(c, p, from, &id, &seq, err, errcap);
        if (found < 0) rc = found;
        if (found == 1) {
            vs[i].ok = false;
            vs[i].reason = "unwritten_row";
            vs[i].bad_id = id;
            vs[i].bad_seq = seq;
            vs[i].expected_seq = from;
        }
    }
    pthread_mutex_unlock(&a->written_mu);
    return rc;
}

/* After a checkpoint_mismatch the edit lies after the last seq a checkpoint confirmed and at
 * or before the one that failed: the first row in between whose record is not the lineage
 * topic's record at its offset is named instead of the row at the checkpoint's seq, while the
 * topic still holds those records (otherwise the row at the checkpoint's seq stays named).
 * Returns 0 or HL_EPG. */
static int locate_edit(hl_auditor_t *a, PGconn *c, hl_verify_t *v, char *err, size_t errcap)
{
    static const char *const found_by[] = {"record_mismatch", "record_not_found", "row_missing",
                                           "offset_order", NULL};
    hl_vouch_t vr;
    int64_t id, seq;
    int rc = hl_vouch_range(c, &a->cfg->kafka, a->cfg->kafka.lineage_topic, v->chain,
                            v->matched_seq, v->sealed_seq, 5000, &vr, err, errcap);
    if (rc || vr.bad_seq <= v->matched_seq || vr.bad_seq > v->sealed_seq) return rc;
    bool named = false;
    for (int i = 0; found_by[i] && !named; i++) named = strcmp(vr.reason, found_by[i]) == 0;
    if (!named) return 0;
    int found = hl_verify_first_from(c, v->chain, vr.bad_seq, &id, &seq, err, errcap);
    if (found < 0) return found;
    if (found == 1 && seq == vr.bad_seq) {
        v->bad_id = id;
        v->bad_seq = v->expected_seq = seq;
        v->topic_check = vr.reason;
    }
    return 0;
}

int hl_verify_report(hl_auditor_t *a, PGconn *c, int32_t only, json_t *o, char *err,
                     size_t errcap)
{
    hl_seals_t seals;
    char why[512];
    int have = hl_auditor_seals(a, &seals, why, sizeof why) == 0;
    hl_verify_t *vs = hl_xcalloc(2 * HL_MAX_CHAINS, sizeof *vs);
    int n = hl_verify_all(c, have ? &seals : NULL, only, vs, 2 * HL_MAX_CHAINS, err, errcap);
    int64_t refused = have ? seals.refused : 0;
    if (have) hl_seals_free(&seals);
    if (n >= 0) n = unwritten_rows(a, c, vs, n, err, errcap);
    for (int i = 0; i < n; i++)
        if (!vs[i].ok && strcmp(vs[i].reason, "checkpoint_mismatch") == 0 &&
            vs[i].sealed_seq > vs[i].matched_seq && vs[i].chain >= 0 &&
            vs[i].chain < HL_MAX_CHAINS) {
            int rc = locate_edit(a, c, &vs[i], err, errcap);
            if (rc < 0) n = rc;
        }
    int64_t stray = 0;
    int no_chain = n >= 0 && only < 0 ? hl_verify_no_chain(c, &stray, err, errcap) : 0;
    if (no_chain < 0) n = no_chain;
    if (n < 0) {
        free(vs);
        return n;
    }
    json_t *arr = json_array(), *outside = json_object();
    int all_ok = have && refused == 0 && !no_chain; /* an unverifiable record there is news too */
    if (no_chain) {
        /* A row with no chain at all: no chain's walk reads it. */
        json_t *b = json_object();
        json_object_set_new(b, "id", json_integer(stray));
        json_object_set_new(b, "reason", json_string("no_chain"));
        json_object_set_new(o, "stray_row", b);
    }
    for (int i = 0; i < n; i++) {
        all_ok &= vs[i].ok;
        json_array_append_new(arr, verify_json(&vs[i]));
    }
    free(vs);
    /* Without the outside copy nothing tells a consistent rewrite or a cut tail: not ok. */
    json_object_set_new(outside, "topic", json_string(a->cfg->checkpoint.topic));
    json_object_set_new(outside, "read", json_boolean(have));
    json_object_set_new(outside, "refused", json_integer(refused));
    if (!have) json_object_set_new(outside, "error", json_string(why));
    int shape = atomic_load(&a->cp_topic_state);
    json_object_set_new(outside, "topic_shape",
                        json_string(shape > 0 ? "ok" : shape < 0 ? "wrong" : "unchecked"));
    if (shape < 0) json_object_set_new(outside, "topic_shape_error", json_string(a->cp_topic_why));
    json_object_set_new(o, "ok", json_boolean(all_ok));
    json_object_set_new(o, "checkpoints_outside", outside);
    json_object_set_new(o, "chains", arr);
    return 0;
}

/* The newest checkpoint of each chain in seals, as JSON objects into arr and as the lines of
 * the evidence message ("chain seq hash ts_us key_id signature\n") into msg. */
static void newest_per_chain(const hl_seals_t *seals, json_t *arr, hl_buf_t *msg)
{
    for (size_t i = 0; i < seals->n; i++) {
        const hl_checkpoint_t *cp = &seals->cps[i];
        if (i + 1 < seals->n && seals->cps[i + 1].chain == cp->chain) continue;
        char json[512], hash[65], sig[2 * HL_SIG_LEN + 1], line[320];
        int n = hl_checkpoint_json(cp, json, sizeof json);
        json_array_append_new(arr, json_loadb(json, (size_t)n, 0, NULL));
        hl_chain_hex(cp->hash, hash);
        hl_hex(sig, cp->sig, HL_SIG_LEN);
        n = snprintf(line, sizeof line, "%" PRId32 " %" PRId64 " %s %" PRId64 " %s %s\n",
                     cp->chain, cp->seq, hash, cp->ts_us, cp->key_id, sig);
        hl_buf_put(msg, line, (size_t)n);
    }
}

/* POST /v1/evidence {"manifest_sha256": hex}: signs the heads that moved (end of the run), then
 * signs the manifest digest together with the newest checkpoint of every chain from the
 * checkpoint topic, so a bundle carries the history's state it was made against. */
int hl_h_evidence(hl_req_t *r)
{
    char body[512], err[512];
    unsigned char digest[32], sig[HL_SIG_LEN];
    static const char *const none[] = {NULL};
    if (hl_req_only(r, none)) return 400;
    int n = read_body(r, body, sizeof body);
    if (n == -2) return hl_reply_error(r, 408, "request_timeout", "body not received in time");
    json_t *in = n < 0 ? NULL : json_loadb(body, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    const char *hex = json_string_value(json_object_get(in, "manifest_sha256"));
    if (!json_is_object(in) || json_object_size(in) != 1 || !hex ||
        hl_chain_unhex(hex, digest) != 0) {
        json_decref(in);
        return hl_reply_error(r, 400, "bad_body",
                              "body must be {\"manifest_sha256\": 64 lowercase hex digits}");
    }
    char manifest[65];
    hl_chain_hex(digest, manifest);
    json_decref(in);
    int rc = hl_auditor_sign(r->a, err, sizeof err);
    if (rc == HL_EPG) {
        hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
        HL_LOG(HL_LOG_ERROR, &ctx, NULL, "api: %s", err);
        return hl_reply_error(r, 503, "unavailable", "database query failed, retry later");
    }
    hl_seals_t seals;
    if (rc < 0 || hl_auditor_seals(r->a, &seals, err, sizeof err) != 0)
        return hl_reply_error(r, 503, "checkpoint_topic", err);
    json_t *cps = json_array(), *keys = json_array();
    hl_buf_t msg = {NULL, 0, 0};
    static const char tag[] = "hookline-evidence-v1\n";
    hl_buf_put(&msg, tag, sizeof tag - 1);
    hl_buf_put(&msg, manifest, 64);
    hl_buf_put(&msg, "\n", 1);
    newest_per_chain(&seals, cps, &msg);
    hl_seals_free(&seals);
    rc = hl_signer_sign(r->a->signer, msg.p, msg.len, sig);
    free(msg.p);
    if (rc != 0) {
        json_decref(cps);
        json_decref(keys);
        return hl_reply_error(r, 500, "internal", "signing failed");
    }
    for (size_t i = 0; i < r->a->ring.n; i++) {
        char pub[65];
        hl_hex(pub, r->a->ring.pub[i], 32);
        json_array_append_new(keys, json_string(pub));
    }
    char sighex[2 * HL_SIG_LEN + 1];
    hl_hex(sighex, sig, HL_SIG_LEN);
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("hookline-evidence-v1"));
    json_object_set_new(o, "algorithm", json_string("ed25519"));
    json_object_set_new(o, "key_id", json_string(hl_signer_key_id(r->a->signer)));
    json_object_set_new(o, "public_key", json_string(hl_signer_public_hex(r->a->signer)));
    json_object_set_new(o, "public_keys", keys);
    json_object_set_new(o, "manifest_sha256", json_string(manifest));
    json_object_set_new(o, "checkpoints", cps);
    json_object_set_new(o, "signature", json_string(sighex));
    return hl_reply_json(r, 200, o);
}

int hl_auditor_seals(hl_auditor_t *a, hl_seals_t *out, char *errbuf, size_t errcap)
{
    int rc = hl_seals_read(&a->cfg->kafka, a->cfg->checkpoint.topic, &a->ring, 10000, out,
                           errbuf, errcap);
    if (rc) return rc;
    pthread_mutex_lock(&a->written_mu);
    for (int32_t p = 0; p < HL_MAX_CHAINS; p++)
        if (a->written[p].seq > 0) hl_seals_add(out, &a->written[p]);
    pthread_mutex_unlock(&a->written_mu);
    return 0;
}

int hl_auditor_sign(hl_auditor_t *a, char *errbuf, size_t errcap)
{
    hl_seals_t seals;
    PGconn *c = hl_pg_pool_get(a->wpool);
    if (!c) {
        snprintf(errbuf, errcap, "checkpoints: no connection as the writer's role");
        hl_counter_add(a->m_cp_errors, 1);
        return HL_EPG;
    }
    hl_checkpoint_t *vouched = hl_xcalloc(HL_MAX_CHAINS, sizeof *vouched);
    hl_signing_t sg = {a->signer, a->ckpub, vouched, atomic_load(&a->lineage_partitions)};
    pthread_mutex_lock(&a->written_mu);
    for (int32_t p = 0; p < HL_MAX_CHAINS; p++) {
        vouched[p] = a->written[p];
        if (!a->owned[p]) vouched[p].seq = HL_VOUCH_NOT_MINE;
        else if (a->foreign_seq[p]) vouched[p].seq = HL_VOUCH_FOREIGN;
    }
    pthread_mutex_unlock(&a->written_mu);
    int refused = 0, n = hl_auditor_seals(a, &seals, errbuf, errcap);
    if (n == 0) {
        n = hl_checkpoint_run(c, &sg, &seals, &refused, errbuf, errcap);
        hl_seals_free(&seals);
    }
    hl_pg_pool_put(a->wpool, c, n == HL_EPG && PQstatus(c) != CONNECTION_OK);
    free(vouched);
    if (n < 0) hl_counter_add(a->m_cp_errors, 1);
    if (n > 0) hl_counter_add(a->m_checkpoints, (uint64_t)n);
    if (refused > 0) hl_counter_add(a->m_cp_refused, (uint64_t)refused);
    return n;
}

static int64_t cell_int(const PGresult *res, int row, int col)
{
    int64_t v = 0;
    return hl_parse_i64(PQgetvalue(res, row, col), INT64_MIN + 1, INT64_MAX, &v) == 0 ? v : 0;
}

int hl_h_checkpoints(hl_req_t *r)
{
    static const char *const allowed[] = {"chain", NULL};
    char err[512];
    int64_t chain;
    if (hl_req_only(r, allowed) || hl_param_int(r, "chain", 0, HL_MAX_CHAINS - 1, -1, &chain))
        return 400;
    int signed_n = 0;
    if (strcmp(r->method, "POST") == 0) {
        signed_n = hl_auditor_sign(r->a, err, sizeof err);
        if (signed_n == HL_EPG) {
            hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
            HL_LOG(HL_LOG_ERROR, &ctx, NULL, "api: %s", err);
            return hl_reply_error(r, 503, "unavailable", "database query failed, retry later");
        }
        if (signed_n < 0) return hl_reply_error(r, 503, "checkpoint_topic", err);
    }
    PGconn *c = hl_req_db(r);
    if (!c) return 503;
    char ch[16];
    snprintf(ch, sizeof ch, "%" PRId64, chain);
    const char *p[1] = {chain >= 0 ? ch : NULL};
    PGresult *res = PQexecParams(
        c,
        "SELECT DISTINCT ON (chain) chain, seq, encode(hash, 'hex'), ts_us, key_id,"
        " encode(signature, 'hex') FROM lineage_checkpoints"
        " WHERE ($1::int IS NULL OR chain = $1::int) ORDER BY chain, seq DESC, id DESC",
        1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        hl_pg_error(c, res, "checkpoints", err, sizeof err);
        PQclear(res);
        return db_error(r, c, err);
    }
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *k = json_object();
        json_object_set_new(k, "chain", json_integer(cell_int(res, i, 0)));
        json_object_set_new(k, "seq", json_integer(cell_int(res, i, 1)));
        json_object_set_new(k, "hash", json_string(PQgetvalue(res, i, 2)));
        json_object_set_new(k, "ts_us", json_integer(cell_int(res, i, 3)));
        json_object_set_new(k, "key_id", json_string(PQgetvalue(res, i, 4)));
        json_object_set_new(k, "signature", json_string(PQgetvalue(res, i, 5)));
        json_array_append_new(arr, k);
    }
    PQclear(res);
    hl_req_db_done(r, c, 0);
    json_t *o = json_object();
    json_object_set_new(o, "key_id", json_string(hl_signer_key_id(r->a->signer)));
    json_object_set_new(o, "public_key", json_string(hl_signer_public_hex(r->a->signer)));
    json_object_set_new(o, "algorithm", json_string("ed25519"));
    json_object_set_new(o, "signed_now", json_integer(signed_n));
    json_object_set_new(o, "checkpoints", arr);
    return hl_reply_json(r, strcmp(r->method, "POST") == 0 ? 201 : 200, o);
}

int hl_h_metrics(hl_req_t *r)
{
    size_t len;
    char *text = hl_metrics_render(r->a->metrics, &len);
    hl_http_send(r->conn, 200, "text/plain; version=0.0.4", r->rid, NULL, text, len);
    free(text);
    return 200;
}
