/* Content check and signature re-verification. The lineage records are parsed here rather than
 * cast by the database, and each raw body is hashed here: a database that lies about a digest
 * it computes would otherwise be believed. */
#include "content.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "handlers.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/proto.h"
#include "hl/sigverify.h"
#include "hl/util.h"
#include "verifiers.h"

#define PAGE 500

static const char SQL_PAGE[] = "SELECT id, request_id, record FROM lineage"
                               " WHERE stage = '" HL_STAGE_PERSISTED_NAME
                               "' AND id > $1::int8 ORDER BY id LIMIT 500"; /* PAGE */
static const char SQL_ROWS[] =
    "SELECT id, source, message_id, event_type, body_sha256, raw_body, request_id::text,"
    " kafka_partition, kafka_offset, (extract(epoch FROM received_at) * 1000000)::int8"
    " FROM webhook_events WHERE id = ANY($1::int8[])";
/* The reverse walk: every row no persisted record named (the ids are those the walk found), in
 * one hash anti-join. A row stored in the last LINEAGE_GRACE seconds may be one whose lineage
 * record the auditor has not consumed yet: counted as pending, not as bad. A forger can only
 * delay its report so long (a persisted_at in the future is not pending). */
#define LINEAGE_GRACE "120"
static const char SQL_UNNAMED[] =
    "WITH u AS (SELECT w.id, w.source, w.message_id, w.event_type,"
    " w.persisted_at BETWEEN now() - interval '" LINEAGE_GRACE " s' AND now() AS pending"
    " FROM webhook_events w"
    " WHERE NOT EXISTS (SELECT 1 FROM unnest($1::int8[]) AS n(id) WHERE n.id = w.id))"
    " SELECT id, source, message_id, event_type, pending,"
    " count(*) FILTER (WHERE NOT pending) OVER (), count(*) FILTER (WHERE pending) OVER ()"
    " FROM u ORDER BY pending, id LIMIT 100"; /* AUD_CONTENT_MAX_LISTED */
/* Only for rows whose raw body matched its digest: that body is the one the persister checked
 * to be JSON Postgres accepts, so the cast cannot fail. */
static const char SQL_PAYLOAD[] =
    "SELECT id FROM webhook_events WHERE id = ANY($1::int8[])"
    " AND payload IS DISTINCT FROM convert_from(raw_body, 'UTF8')::jsonb";

/* One persisted record of a page and what was found for it. */
typedef struct {
    int64_t lineage_id, row_id;
    char request_id[40];
    char source[HL_SOURCE_MAX + 1], message_id[HL_MESSAGE_ID_MAX + 1],
        event_type[HL_EVENT_TYPE_MAX + 1];
    char want[65]; /* body_sha256 of the record, "" when it has none */
    char rec_request_id[40];
    int64_t partition, offset, received_us; /* received_us 0: the record has none */
    unsigned bad;                           /* REASON_* bits */
    unsigned fields;   /* FIELD_* bits of the columns that differ from the record */
    bool digest_ok;    /* raw body and column both match want: payload is checked */
    int64_t named_row; /* rewritten: the row id the record names (missing, or another event's) */
    bool rewritten;    /* the same Kafka record is stored under another id: row_id is that id */
} item_t;

enum {
    ROW_MISSING = 1,
    ROW_KEY = 2,
    RAW_BODY = 4,
    DIGEST = 8,
    PAYLOAD = 16,
    ROW_FIELD = 32,
    NREASONS = 6,
};

static const char *const reason_names[] = {"row_missing",       "row_key_mismatch",
                                           "raw_body_mismatch", "digest_mismatch",
                                           "payload_mismatch",  "row_field_mismatch"};

enum { F_REQUEST_ID = 1, F_PARTITION = 2, F_OFFSET = 4, F_RECEIVED = 8, NFIELDS = 4 };
static const char *const field_names[] = {"request_id", "kafka_partition", "kafka_offset",
                                          "received_at"};

static int64_t int_of(json_t *rec, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(rec, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static int pg_err(PGconn *c, PGresult *res, const char *what, char *err, size_t errcap)
{
    char w[96];
    snprintf(w, sizeof w, "content check: %s", what);
    int rc = hl_pg_error(c, res, w, err, errcap);
    PQclear(res);
    return rc;
}

static void copy_str(json_t *rec, const char *key, char *dst, size_t cap)
{
    const char *s = json_string_value(json_object_get(rec, key));
    hl_strlcpy(dst, s ? s : "", cap);
}

/* Fills items from one page of lineage rows; returns how many name a row. */
static size_t take_page(PGresult *res, item_t *items, int64_t *last_id)
{
    size_t n = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        *last_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        const char *text = PQgetvalue(res, i, 2);
        json_t *rec = json_loadb(text, (size_t)PQgetlength(res, i, 2), 0, NULL);
        json_t *rid = json_object_get(rec, "row_id");
        if (json_is_integer(rid)) {
            item_t *it = &items[n++];
            memset(it, 0, sizeof *it);
            it->lineage_id = *last_id;
            it->row_id = (int64_t)json_integer_value(rid);
            hl_strlcpy(it->request_id, PQgetvalue(res, i, 1), sizeof it->request_id);
            copy_str(rec, "source", it->source, sizeof it->source);
            copy_str(rec, "message_id", it->message_id, sizeof it->message_id);
            copy_str(rec, "event_type", it->event_type, sizeof it->event_type);
            copy_str(rec, "body_sha256", it->want, sizeof it->want);
            copy_str(rec, "request_id", it->rec_request_id, sizeof it->rec_request_id);
            it->partition = int_of(rec, "partition", -1);
            it->offset = int_of(rec, "offset", -1);
            it->received_us = int_of(rec, "received_us", 0);
        }
        json_decref(rec);
    }
    return n;
}

/* "{1,2,3}": the row ids of items (only those whose digests matched, when asked). */
static char *id_array(const item_t *items, size_t n, bool only_digest_ok)
{
    size_t cap = n * 22 + 3, o = 0;
    char *s = hl_xmalloc(cap);
    s[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (only_digest_ok && !items[i].digest_ok) continue;
        o += (size_t)snprintf(s + o, cap - o, "%s%" PRId64, o > 1 ? "," : "", items[i].row_id);
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

/* Checks one found row against every item that names it. */
static void judge_row(PGresult *res, int t, item_t *items, size_t n)
{
    int64_t id = strtoll(PQgetvalue(res, t, 0), NULL, 10);
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (it->row_id != id) continue;
        it->bad &= ~(unsigned)ROW_MISSING;
        if (strcmp(PQgetvalue(res, t, 1), it->source) != 0 ||
            strcmp(PQgetvalue(res, t, 2), it->message_id) != 0 ||
            strcmp(PQgetvalue(res, t, 3), it->event_type) != 0)
            it->bad |= ROW_KEY;
        /* The rest of the row's identity: the request and the Kafka record it was stored from. */
        if (strcasecmp(PQgetvalue(res, t, 6), it->rec_request_id) != 0) it->fields |= F_REQUEST_ID;
        if (strtoll(PQgetvalue(res, t, 7), NULL, 10) != it->partition) it->fields |= F_PARTITION;
        if (strtoll(PQgetvalue(res, t, 8), NULL, 10) != it->offset) it->fields |= F_OFFSET;
        if (it->received_us > 0 && strtoll(PQgetvalue(res, t, 9), NULL, 10) != it->received_us)
            it->fields |= F_RECEIVED;
        if (it->fields) it->bad |= ROW_FIELD;
        if (it->want[0] == '\0') continue; /* written before the digest existed */
        char got[HL_SIG_SHA256_HEX + 1] = "";
        if (!PQgetisnull(res, t, 5)) {
            size_t blen = 0;
            unsigned char *body =
                PQunescapeBytea((const unsigned char *)PQgetvalue(res, t, 5), &blen);
            if (body) hl_sig_sha256_hex(body, blen, got);
            PQfreemem(body);
        }
        if (strcmp(got, it->want) != 0) it->bad |= RAW_BODY;
        /* The column in text form is "\x" and 64 hex digits. */
        const char *col = PQgetisnull(res, t, 4) ? "" : PQgetvalue(res, t, 4);
        if (strncmp(col, "\\x", 2) != 0 || strcmp(col + 2, it->want) != 0) it->bad |= DIGEST;
        it->digest_ok = !(it->bad & (RAW_BODY | DIGEST));
    }
}

/* Lists e (a reference taken) as the bad-th bad event, the first of them as first_bad. */
static void add_bad(json_t *o, json_t *e, int64_t *bad)
{
    if (*bad == 0) json_object_set(o, "first_bad", e);
    if (*bad < AUD_CONTENT_MAX_LISTED) json_array_append(json_object_get(o, "bad_events"), e);
    json_decref(e);
    (*bad)++;
}

static void report_bad(json_t *o, const item_t *it, int64_t *bad)
{
    json_t *reasons = json_array();
    for (unsigned b = 0; b < NREASONS; b++)
        if (it->bad & (1u << b)) json_array_append_new(reasons, json_string(reason_names[b]));
    json_t *e = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:o}", "lineage_id", (json_int_t)it->lineage_id,
                          "request_id", it->request_id, "source", it->source, "message_id",
                          it->message_id, "event_type", it->event_type, "row_id",
                          (json_int_t)it->row_id, "reasons", reasons);
    if (it->rewritten) json_object_set_new(e, "named_row_id", json_integer(it->named_row));
    if (it->fields) {
        json_t *f = json_array();
        for (unsigned b = 0; b < NFIELDS; b++)
            if (it->fields & (1u << b)) json_array_append_new(f, json_string(field_names[b]));
        json_object_set_new(e, "fields", f);
    }
    add_bad(o, e, bad);
}

/* The rows no persisted record names (named: the n row ids the walk found). */
static int check_unnamed(PGconn *c, json_t *o, const int64_t *named, size_t n, int64_t *bad,
                         char *err, size_t errcap)
{
    size_t cap = n * 21 + 3, at = 0;
    char *arr = hl_xmalloc(cap);
    arr[at++] = '{';
    for (size_t i = 0; i < n; i++)
        at += (size_t)snprintf(arr + at, cap - at, "%s%" PRId64, i ? "," : "", named[i]);
    arr[at++] = '}';
    arr[at] = '\0';
    const char *p[1] = {arr};
    PGresult *res = PQexecParams(c, SQL_UNNAMED, 1, NULL, p, NULL, NULL, 0);
    free(arr);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) return pg_err(c, res, "unnamed rows", err, errcap);
    int64_t unnamed = 0, pending = 0, listed = 0;
    for (int t = 0; t < PQntuples(res); t++) {
        unnamed = strtoll(PQgetvalue(res, t, 5), NULL, 10);
        pending = strtoll(PQgetvalue(res, t, 6), NULL, 10);
        if (strcmp(PQgetvalue(res, t, 4), "t") == 0) continue;
        json_t *e = json_pack("{s:n,s:n,s:s,s:s,s:s,s:I,s:[s]}", "lineage_id", "request_id",
                              "source", PQgetvalue(res, t, 1), "message_id", PQgetvalue(res, t, 2),
                              "event_type", PQgetvalue(res, t, 3), "row_id",
                              (json_int_t)strtoll(PQgetvalue(res, t, 0), NULL, 10), "reasons",
                              "row_without_lineage");
        add_bad(o, e, bad);
        listed++;
    }
    PQclear(res);
    *bad += unnamed - listed; /* beyond the rows listed, only counted */
    json_object_set_new(o, "rows_without_lineage", json_integer(unnamed));
    json_object_set_new(o, "rows_pending_lineage", json_integer(pending));
    return 0;
}

/* Checks one page of items against their rows. */
static int check_items(PGconn *c, item_t *items, size_t n, char *err, size_t errcap)
{
    for (size_t i = 0; i < n; i++) {
        items[i].bad = ROW_MISSING;
        items[i].fields = 0;
        items[i].digest_ok = false;
    }
    char *arr = id_array(items, n, false);
    const char *p[1] = {arr};
    PGresult *res = PQexecParams(c, SQL_ROWS, 1, NULL, p, NULL, NULL, 0);
    free(arr);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) return pg_err(c, res, "rows", err, errcap);
    for (int t = 0; t < PQntuples(res); t++) judge_row(res, t, items, n);
    PQclear(res);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) ok += items[i].digest_ok;
    if (ok == 0) return 0;
    arr = id_array(items, n, true);
    p[0] = arr;
    res = PQexecParams(c, SQL_PAYLOAD, 1, NULL, p, NULL, NULL, 0);
    free(arr);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) return pg_err(c, res, "payload", err, errcap);
    for (int t = 0; t < PQntuples(res); t++) {
        int64_t id = strtoll(PQgetvalue(res, t, 0), NULL, 10);
        for (size_t i = 0; i < n; i++)
            if (items[i].row_id == id && items[i].digest_ok) items[i].bad |= PAYLOAD;
    }
    PQclear(res);
    return 0;
}

/* A commit a Postgres failover lost (replication is asynchronous: the old primary confirmed it,
 * the promoted standby never had it) is written again from Kafka under new row ids, and the
 * persisted records of the lost commit name rows the promoted database never had; the
 * persister's second records for the same Kafka records are repeats the auditor does not store
 * (one Kafka record, one outcome). The standby lost the sequence's advance with the rows, so
 * the promoted database gives the lost ids again, to whichever records it writes first: a
 * record's named id may then hold another event. Such a record is not a deletion when the very
 * Kafka record it names (source, message id, event type, request id, partition, offset) is
 * stored under another id: that row is then held to the record like any other, and counted as
 * rewritten. A row put back under another id by hand is judged the same way: it passes only as
 * an exact copy of the Kafka record the history names, body included, and is listed either way;
 * the event its named id holds is judged by that event's own record. */
static const char SQL_BY_KEY[] =
    "SELECT w.id, w.source, w.message_id, w.event_type, w.request_id::text, w.kafka_partition,"
    " w.kafka_offset FROM webhook_events w JOIN json_to_recordset($1::json) AS k(s text, m text,"
    " e text) ON w.source = k.s AND w.message_id = k.m AND w.event_type = k.e";

/* Whether the item's named row is gone or holds another event (another key): only then can its
 * Kafka record be elsewhere, the key being unique. */
static bool named_row_lost(const item_t *it)
{
    return it->bad == ROW_MISSING || (it->bad & ROW_KEY);
}

/* Finds, for the items of a page whose named row is lost, the same Kafka record stored under
 * another id, and judges that row in its place. */
static int find_rewritten(PGconn *c, item_t *items, size_t n, char *err, size_t errcap)
{
    json_t *keys = json_array();
    for (size_t i = 0; i < n; i++)
        if (named_row_lost(&items[i]))
            json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "s", items[i].source, "m",
                                                  items[i].message_id, "e", items[i].event_type));
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        return 0;
    }
    char *arr = json_dumps(keys, JSON_COMPACT);
    json_decref(keys);
    const char *p[1] = {arr};
    PGresult *res = PQexecParams(c, SQL_BY_KEY, 1, NULL, p, NULL, NULL, 0);
    free(arr);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) return pg_err(c, res, "rows by key", err, errcap);
    item_t *again = hl_xcalloc(n, sizeof *again);
    size_t k = 0, *from = hl_xcalloc(n, sizeof *from);
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        if (!named_row_lost(it)) continue;
        for (int t = 0; t < PQntuples(res); t++) {
            int64_t id = strtoll(PQgetvalue(res, t, 0), NULL, 10);
            if (id == it->row_id || strcmp(PQgetvalue(res, t, 1), it->source) != 0 ||
                strcmp(PQgetvalue(res, t, 2), it->message_id) != 0 ||
                strcmp(PQgetvalue(res, t, 3), it->event_type) != 0 ||
                strcasecmp(PQgetvalue(res, t, 4), it->rec_request_id) != 0 ||
                strtoll(PQgetvalue(res, t, 5), NULL, 10) != it->partition ||
                strtoll(PQgetvalue(res, t, 6), NULL, 10) != it->offset)
                continue;
            again[k] = *it;
            again[k].named_row = it->row_id;
            again[k].row_id = id;
            again[k].rewritten = true;
            from[k++] = i;
            break;
        }
    }
    PQclear(res);
    int rc = k > 0 ? check_items(c, again, k, err, errcap) : 0;
    for (size_t j = 0; rc == 0 && j < k; j++) items[from[j]] = again[j];
    free(again);
    free(from);
    return rc;
}

static void report_rewritten(json_t *o, const item_t *it, int64_t *rewritten)
{
    if (*rewritten < AUD_CONTENT_MAX_LISTED)
        json_array_append_new(
            json_object_get(o, "rewritten_events"),
            json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I}", "lineage_id", (json_int_t)it->lineage_id,
                      "request_id", it->request_id, "source", it->source, "message_id",
                      it->message_id, "event_type", it->event_type, "named_row_id",
                      (json_int_t)it->named_row, "row_id", (json_int_t)it->row_id));
    (*rewritten)++;
}

int aud_content_check(PGconn *c, json_t *o, char *err, size_t errcap)
{
    item_t *items = hl_xcalloc(PAGE, sizeof *items);
    int64_t last = 0, checked = 0, bound = 0, bad = 0, rewritten = 0;
    size_t nnamed = 0, named_cap = PAGE;
    int64_t *named = hl_xmalloc(named_cap * sizeof *named);
    int rc = 0;
    json_object_set_new(o, "first_bad", json_null());
    json_object_set_new(o, "bad_events", json_array());
    json_object_set_new(o, "rewritten_events", json_array());
    for (;;) {
        char after[24];
        snprintf(after, sizeof after, "%" PRId64, last);
        const char *p[1] = {after};
        PGresult *res = PQexecParams(c, SQL_PAGE, 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            rc = pg_err(c, res, "lineage", err, errcap);
            break;
        }
        int rows = PQntuples(res);
        size_t n = take_page(res, items, &last);
        PQclear(res);
        if (n > 0 && (rc = check_items(c, items, n, err, errcap)) != 0) break;
        if (n > 0 && (rc = find_rewritten(c, items, n, err, errcap)) != 0) break;
        for (size_t i = 0; i < n; i++) {
            checked++;
            bound += items[i].want[0] != '\0';
            if (items[i].bad) report_bad(o, &items[i], &bad);
            if (items[i].rewritten && !items[i].bad) report_rewritten(o, &items[i], &rewritten);
            if (items[i].bad & ROW_MISSING) continue;
            if (nnamed == named_cap) named = hl_xrealloc(named, (named_cap *= 2) * sizeof *named);
            named[nnamed++] = items[i].row_id;
        }
        if (rows < PAGE) break;
    }
    free(items);
    if (rc == 0) rc = check_unnamed(c, o, named, nnamed, &bad, err, errcap);
    free(named);
    if (rc) return rc;
    json_object_set_new(o, "ok", json_boolean(bad == 0));
    json_object_set_new(o, "events_checked", json_integer(checked));
    json_object_set_new(o, "bound", json_integer(bound));
    json_object_set_new(o, "bad", json_integer(bad));
    json_object_set_new(o, "rows_rewritten", json_integer(rewritten));
    return 0;
}

int aud_h_verify_content(aud_req_t *r)
{
    static const char *const allowed[] = {NULL};
    char err[512];
    if (aud_req_only(r, allowed)) return 400;
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    json_t *o = json_object();
    int64_t t0 = hl_mono_us();
    if (aud_content_check(c, o, err, sizeof err) != 0) {
        hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
        HL_LOG(HL_LOG_ERROR, &ctx, NULL, "api: %s", err);
        aud_req_db_done(r, c, 1);
        json_decref(o);
        return aud_reply_error(r, 503, "unavailable", "database query failed, retry later");
    }
    aud_req_db_done(r, c, 0);
    json_object_set_new(o, "elapsed_us", json_integer(hl_mono_us() - t0));
    return aud_reply_json(r, 200, o);
}

/* Splits "{source}/{message_id}/signature" (civetweb has percent-decoded it: an id holding
 * '/' arrives as %2F and is everything between the source and the last "/signature") into a
 * source of [a-z0-9_-] and a message id of 1..256 bytes without control characters. Returns
 * 0, or the status of the 400/404 it answered. */
static int event_path(aud_req_t *r, const char *rest, char *source, size_t scap, char *mid,
                      size_t mcap)
{
    static const char bad_mid[] = "message id must be 1.." HL_PROTO_STR(
        HL_MESSAGE_ID_MAX) " bytes (percent-encoded) without control characters";
    const char *slash = strchr(rest, '/');
    size_t sl = slash ? (size_t)(slash - rest) : 0;
    static const char suffix[] = "/signature";
    size_t rl = strlen(rest), xl = sizeof suffix - 1;
    if (!slash || rl < xl || strcmp(rest + rl - xl, suffix) != 0 || slash + 1 > rest + rl - xl)
        return aud_reply_error(r, 404, "not_found",
                               "use /v1/events/{source}/{message_id}/signature");
    if (sl == 0 || sl >= scap || strspn(rest, "abcdefghijklmnopqrstuvwxyz0123456789_-") < sl)
        return aud_reply_error(r, 400, "bad_source",
                               "source must be 1.." HL_PROTO_STR(HL_SOURCE_MAX) " of [a-z0-9_-]");
    memcpy(source, rest, sl);
    source[sl] = '\0';
    const char *m = slash + 1;
    size_t ml = (size_t)(rest + rl - xl - m);
    if (ml >= mcap) ml = mcap - 1; /* over 256 bytes: refused below */
    memcpy(mid, m, ml);
    mid[ml] = '\0';
    if (ml == 0 || (size_t)(rest + rl - xl - m) > HL_MESSAGE_ID_MAX ||
        !aud_id_valid(mid, HL_MESSAGE_ID_MAX))
        return aud_reply_error(r, 400, "bad_message_id", bad_mid);
    return 0;
}

static const char SQL_EVENT[] =
    "SELECT id, event_type, request_id, raw_body, signature_headers::text,"
    " encode(body_sha256, 'hex'), payload::text FROM webhook_events"
    " WHERE source = $1 AND message_id = $2 AND ($3::text IS NULL OR event_type = $3)"
    " ORDER BY id LIMIT 64";

/* One stored event checked again: its raw body against the digest column, against the
 * signature headers kept with it and against its payload column; the signed id against its
 * message id mid when the source's message id is the signed one (signed_id). */
static json_t *event_result(const hl_sig_t *v, PGresult *res, int t, const char *mid,
                            bool signed_id)
{
    json_t *e = json_pack("{s:I,s:s,s:s,s:s}", "row_id",
                          (json_int_t)strtoll(PQgetvalue(res, t, 0), NULL, 10), "event_type",
                          PQgetvalue(res, t, 1), "request_id", PQgetvalue(res, t, 2), "scheme",
                          hl_sig_scheme_name(v->scheme));
    size_t blen = 0;
    unsigned char *body =
        PQgetisnull(res, t, 3)
            ? NULL
            : PQunescapeBytea((const unsigned char *)PQgetvalue(res, t, 3), &blen);
    const char *why = NULL;
    if (body == NULL)
        why = "stored without its raw body (written before migration 006)";
    else if (PQgetisnull(res, t, 4))
        why = "stored without signature headers (a bearer source, "
              "or written before migration 006)";
    if (why) {
        json_object_set_new(e, "signature", json_string("not_reverifiable"));
        json_object_set_new(e, "detail", json_string(why));
    } else {
        hl_sig_result_t sr = HL_SIG_BAD;
        int64_t ts = -1;
        const char *sj = PQgetvalue(res, t, 4);
        int rc = hl_sig_reverify_stored(v, sj, strlen(sj), body, blen, &sr, &ts);
        json_object_set_new(e, "signature",
                            json_string(rc != 0           ? "malformed_signature"
                                        : sr == HL_SIG_OK ? "ok"
                                                          : hl_sig_code(sr)));
        json_object_set_new(e, "signed_timestamp", ts >= 0 ? json_integer(ts) : json_null());
        char d[HL_SIG_SHA256_HEX + 1];
        hl_sig_sha256_hex(body, blen, d);
        json_object_set_new(e, "body_sha256", json_string(d));
        json_object_set_new(e, "body_sha256_matches_column",
                            json_boolean(strcmp(d, PQgetvalue(res, t, 5)) == 0));
        const char *pl = PQgetisnull(res, t, 6) ? NULL : PQgetvalue(res, t, 6);
        int pm = hl_sig_stored_payload_matches(body, blen, pl, pl ? strlen(pl) : 0);
        json_object_set_new(e, "payload_matches_raw_body", pm < 0 ? json_null() : json_boolean(pm));
        char sid[HL_MESSAGE_ID_MAX + 1];
        int si = signed_id ? hl_sig_stored_signed_id(v, sj, strlen(sj), sid, sizeof sid) : 0;
        json_object_set_new(e, "signed_message_id", si == 1 ? json_string(sid) : json_null());
        json_object_set_new(e, "message_id_matches_signed_id",
                            si == 1 ? json_boolean(strcmp(sid, mid) == 0) : json_null());
    }
    PQfreemem(body);
    return e;
}

int aud_h_event_signature(aud_req_t *r, const char *rest)
{
    static const char *const allowed[] = {"event_type", NULL};
    char source[HL_SOURCE_MAX + 1], mid[HL_MESSAGE_ID_MAX + 1], err[512];
    if (aud_req_only(r, allowed)) return 400;
    int st = event_path(r, rest, source, sizeof source, mid, sizeof mid);
    if (st != 0) return st;
    const char *et = aud_req_param(r, "event_type");
    if (et && !aud_id_valid(et, HL_EVENT_TYPE_MAX))
        return aud_reply_error(r, 400, "bad_event_type",
                               "event_type must be 1.." HL_PROTO_STR(HL_EVENT_TYPE_MAX) " bytes");
    if (!r->a->verifiers)
        return aud_reply_error(r, 409, "no_keys",
                               "no signature_sources configured: the auditor holds no keys");
    const hl_sig_t *v = ing_verifiers_find(r->a->verifiers, source);
    if (!v) return aud_reply_error(r, 404, "unknown_source", "source not in signature_sources");
    if (v->scheme == HL_SIG_SCHEME_BEARER)
        return aud_reply_error(r, 409, "not_reverifiable",
                               "a bearer source's events carry no signature");
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    const char *p[3] = {source, mid, et};
    PGresult *res = PQexecParams(c, SQL_EVENT, 3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        (void)hl_pg_error(c, res, "event signature", err, sizeof err);
        PQclear(res);
        hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
        HL_LOG(HL_LOG_ERROR, &ctx, NULL, "api: %s", err);
        aud_req_db_done(r, c, 1);
        return aud_reply_error(r, 503, "unavailable", "database query failed, retry later");
    }
    aud_req_db_done(r, c, 0);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return aud_reply_error(r, 404, "not_found", "no stored event with this source and id");
    }
    json_t *events = json_array();
    int all_ok = 1;
    for (int t = 0; t < PQntuples(res); t++) {
        json_t *e = event_result(v, res, t, mid, ing_verifiers_signed_id(r->a->verifiers, source));
        all_ok &= strcmp(json_string_value(json_object_get(e, "signature")), "ok") == 0 &&
                  json_is_true(json_object_get(e, "body_sha256_matches_column")) &&
                  !json_is_false(json_object_get(e, "payload_matches_raw_body")) &&
                  !json_is_false(json_object_get(e, "message_id_matches_signed_id"));
        json_array_append_new(events, e);
    }
    PQclear(res);
    return aud_reply_json(r, 200,
                          json_pack("{s:s,s:s,s:b,s:o}", "source", source, "message_id", mid, "ok",
                                    all_ok, "events", events));
}
