/* Incremental gap counts (gapscan.h). */
#include "gapscan.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"
#include "query.h"
#include "store.h"

#define MINUTE_US INT64_C(60000000)
#define TEXT_OF_(x) #x
#define TEXT_OF(x) TEXT_OF_(x) /* a macro's value as a string literal */

/* Ids lo..hi, none read yet (see "ids not there yet" below). */
typedef struct hole {
    int64_t lo, hi;
    int64_t noticed_us; /* the database's clock when first missed */
} hole_t;

struct aud_gapscan {
    int64_t grace_us, window_us;
    int64_t pending_max, open_max; /* followed one by one up to these (gapscan.h) */
    int counting;                  /* past them: counted with the full query */
    int64_t pause_us;              /* the shortest time between two full counts */
    int64_t count_next_mono;       /* no full count before this (hl_mono_us) */
    int64_t wm;                    /* every row with id <= wm has been read; -1: not started */
    json_t *open;       /* element key -> event type key -> [ts_us, stored_us, looked up] */
    size_t nopen;       /* elements in open: awaiting an outcome, open gaps among them */
    int64_t last_open;  /* the open gaps the last pass counted */
    json_t *early;      /* element key -> event type ("": any) -> ts_us of an outcome read
                         * before its element (closing nothing then) */
    size_t nearly;      /* entries put in early since it was last emptied */
    int64_t lag_us;     /* rows are read once stored this long ago (at most grace_us) */
    struct hole *holes; /* ids missing below wm, to read again (AUD_GAPSCAN_HOLES_MAX) */
    size_t nholes;
    size_t nslots;        /* closed gaps per minute of receipt, a ring over the window */
    int64_t *slot_minute; /* which minute each slot counts (-1: none) */
    int64_t *slot_count;
    int caught_up;
};

aud_gapscan_t *aud_gapscan_new(int64_t grace_us, int64_t window_us, int64_t pending_max,
                               int64_t pause_us)
{
    aud_gapscan_t *g = hl_xcalloc(1, sizeof(*g));
    g->grace_us = grace_us;
    g->window_us = window_us;
    g->pending_max = pending_max;
    g->open_max = g->pending_max * 2 / 5;
    g->pause_us = pause_us;
    g->wm = -1;
    g->lag_us = grace_us < AUD_GAPSCAN_LAG_US ? grace_us : AUD_GAPSCAN_LAG_US;
    g->holes = hl_xcalloc(AUD_GAPSCAN_HOLES_MAX, sizeof *g->holes);
    g->open = json_object();
    g->early = json_object();
    if (!g->open || !g->early) hl_die("out of memory");
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
    json_decref(g->early);
    free(g->holes);
    free(g->slot_minute);
    free(g->slot_count);
    free(g);
}

static void reset(aud_gapscan_t *g)
{
    g->wm = -1;
    g->caught_up = 0;
    json_object_clear(g->open);
    json_object_clear(g->early);
    g->nopen = g->nearly = g->nholes = 0;
    g->last_open = 0;
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

/* An open element: [received ts_us, stored_at in µs, looked up (0/1)]. */
enum { OPEN_RECEIVED, OPEN_STORED, OPEN_LOOKED_UP };

static int64_t open_at(json_t *v, size_t i)
{
    return json_integer_value(json_array_get(v, i));
}

/* The columns of a row the scan reads (SCAN_COLUMNS below). */
enum { COL_ID, COL_KIND, COL_CHAIN, COL_REQ, COL_MID, COL_TYPE, COL_TS, COL_STORED };

static void expire_open(aud_gapscan_t *g, int64_t from_us)
{
    const char *key, *type;
    json_t *types, *v;
    void *tmp, *tmp2;
    json_object_foreach_safe(g->open, tmp, key, types)
    {
        json_object_foreach_safe(types, tmp2, type, v)
        {
            if (open_at(v, OPEN_RECEIVED) >= from_us) continue;
            json_object_del(types, type);
            g->nopen--;
        }
        if (json_object_size(types) == 0) json_object_del(g->open, key);
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

/* ---- elements in memory ----
 * An element (ELEMENT_OF, query.h) is keyed in two levels: its chain, request id and message id
 * (elem_key), then its event type (type_key). An outcome that names no event type is the
 * outcome of every element under its first-level key. */

/* Chain, request id (length first) and message id (last, NULL apart): no two differ alike.
 * Allocated; the caller frees it. */
static char *elem_key(const PGresult *r, int row)
{
    const char *chain = PQgetvalue(r, row, COL_CHAIN), *req = PQgetvalue(r, row, COL_REQ);
    bool null_mid = PQgetisnull(r, row, COL_MID);
    const char *mid = null_mid ? "" : PQgetvalue(r, row, COL_MID);
    size_t cap = strlen(chain) + 2 * strlen(req) + strlen(mid) + 32;
    char *k = hl_xcalloc(1, cap);
    snprintf(k, cap, "%s:%zu:%s:%c%s", chain, strlen(req), req, null_mid ? 'n' : 'v', mid);
    return k;
}

/* An event type as an object key: NULL is apart from every text ("" included). */
static const char *type_key(const PGresult *r, int row)
{
    return PQgetisnull(r, row, COL_TYPE) ? "\x01" : PQgetvalue(r, row, COL_TYPE);
}

static bool typeless(const PGresult *r, int row)
{
    return PQgetisnull(r, row, COL_TYPE) || PQgetvalue(r, row, COL_TYPE)[0] == '\0';
}

/* The earliest ts_us under key/type of map (-1: none), type NULL meaning any type. */
static int64_t earliest(json_t *map, const char *key, const char *type)
{
    json_t *types = json_object_get(map, key), *v;
    const char *t;
    int64_t best = -1;
    if (!types) return -1;
    if (type) {
        v = json_object_get(types, type);
        return v ? json_integer_value(v) : -1;
    }
    json_object_foreach(types, t, v)
    {
        int64_t x = json_integer_value(v);
        if (best < 0 || x < best) best = x;
    }
    return best;
}

/* Sets map[key][type] to ts_us unless an earlier one is there. */
static void put_earliest(json_t *map, const char *key, const char *type, int64_t ts_us)
{
    json_t *types = json_object_get(map, key);
    if (!types) {
        types = json_object();
        if (!types || json_object_set_new_nocheck(map, key, types) != 0) hl_die("out of memory");
    }
    json_t *v = json_object_get(types, type);
    if (!v || json_integer_value(v) > ts_us)
        if (json_object_set_new_nocheck(types, type, json_integer(ts_us)) != 0)
            hl_die("out of memory");
}

/* An accepted element received at received_us, whose first outcome came at done_us. */
static void judge(aud_gapscan_t *g, int64_t received_us, int64_t done_us)
{
    if (done_us > received_us + g->grace_us) count_closed(g, received_us); /* else no gap */
}

/* An outcome row (ts done_us) closes the open elements it is the outcome of (type NULL: every
 * type); returns how many. */
static size_t close_open(aud_gapscan_t *g, const char *key, const char *type, int64_t done_us)
{
    json_t *types = json_object_get(g->open, key), *v;
    const char *t;
    void *tmp;
    size_t n = 0;
    if (!types) return 0;
    json_object_foreach_safe(types, tmp, t, v)
    {
        if (type && strcmp(t, type) != 0) continue;
        judge(g, open_at(v, OPEN_RECEIVED), done_us);
        json_object_del(types, t);
        g->nopen--;
        n++;
    }
    if (json_object_size(types) == 0) json_object_del(g->open, key);
    return n;
}

/* ---- ids not there yet ----
 * Ids are taken when rows are inserted and seen when their transaction commits, so a row can
 * appear below ids already read: the scanner reads only rows stored AUD_GAPSCAN_LAG_US ago or
 * more, and remembers the ids missing in what it read (a transaction rolled back, or one still
 * open) to look at them again until they are grace_us old. */

static void hole_add(aud_gapscan_t *g, int64_t lo, int64_t hi, int64_t noticed_us)
{
    if (lo > hi) return;
    if (g->nholes == AUD_GAPSCAN_HOLES_MAX) { /* the oldest goes: its rows, if any, unread */
        memmove(g->holes, g->holes + 1, (g->nholes - 1) * sizeof *g->holes);
        g->nholes--;
    }
    g->holes[g->nholes++] = (hole_t){lo, hi, noticed_us};
}

/* ---- one pass ---- */

/* The columns the scan reads of a row: kind 'i' an accepted ingress record, 'o' an outcome,
 * '-' anything else (its id only). */
#define SCAN_COLUMNS                                                                               \
    "SELECT l.id, CASE WHEN l.stage IN " SQL_STAGE_OUTCOMES " THEN 'o'"                            \
    " WHEN l.stage = " SQL_STAGE_INGRESS " AND l.status = 202 THEN 'i' ELSE '-' END,"              \
    " l.chain, l.request_id, l.message_id, l.event_type, l.ts_us,"                                 \
    " (extract(epoch FROM greatest(least(l.stored_at, clock_timestamp()), timestamptz 'epoch'))"   \
    " * 1000000)::int8 FROM lineage l"

/* The rows of one answer of SCAN_COLUMNS, in id order. */
static void read_rows(aud_gapscan_t *g, const PGresult *rows, int64_t from_us)
{
    for (int i = 0; i < PQntuples(rows); i++) {
        int64_t ts, stored;
        char kind = PQgetvalue(rows, i, COL_KIND)[0];
        if (kind == '-' || !i64_cell(rows, i, COL_TS, &ts) ||
            !i64_cell(rows, i, COL_STORED, &stored))
            continue;
        char *key = elem_key(rows, i);
        if (kind == 'i') {
            const char *type = type_key(rows, i);
            int64_t a = earliest(g->early, key, type), b = earliest(g->early, key, "");
            int64_t done = a < 0 ? b : b < 0 ? a : a < b ? a : b;
            json_t *types = json_object_get(g->open, key);
            if (ts < from_us) {
                /* older than the window: not counted */
            } else if (done >= 0) {
                judge(g, ts, done);
            } else if (!types || !json_object_get(types, type)) { /* else the same again */
                if (!types) {
                    types = json_object();
                    if (!types || json_object_set_new_nocheck(g->open, key, types) != 0)
                        hl_die("out of memory");
                }
                json_t *v = json_pack("[I, I, i]", (json_int_t)ts, (json_int_t)stored, 0);
                if (!v || json_object_set_new_nocheck(types, type, v) != 0) hl_die("out of memory");
                g->nopen++;
            }
        } else {
            const char *type = typeless(rows, i) ? NULL : PQgetvalue(rows, i, COL_TYPE);
            if (close_open(g, key, type, ts) == 0) {
                put_earliest(g->early, key, type ? type : "", ts);
                g->nearly++;
            }
        }
        free(key);
    }
}

/* Rows now in the holes: read, and the holes narrowed to the ids still missing; holes older
 * than the grace are given up. Returns 0 or HL_EPG (nothing changed then). */
static int reread_holes(aud_gapscan_t *g, PGconn *c, int64_t db_now_us, int64_t from_us,
                        char *errbuf, size_t errcap)
{
    if (g->nholes == 0) return 0;
    hl_buf_t lo = {NULL, 0, 0}, hi = {NULL, 0, 0};
    hl_buf_put(&lo, "{", 1);
    hl_buf_put(&hi, "{", 1);
    for (size_t i = 0; i < g->nholes; i++) {
        char n[32];
        int k = snprintf(n, sizeof n, "%s%" PRId64, i ? "," : "", g->holes[i].lo);
        hl_buf_put(&lo, n, (size_t)k);
        k = snprintf(n, sizeof n, "%s%" PRId64, i ? "," : "", g->holes[i].hi);
        hl_buf_put(&hi, n, (size_t)k);
    }
    hl_buf_put(&lo, "}", 2); /* with the terminating NUL */
    hl_buf_put(&hi, "}", 2);
    const char *p[2] = {lo.p, hi.p};
    PGresult *rows = hl_pg_select(c,
                                  SCAN_COLUMNS " JOIN unnest($1::int8[], $2::int8[]) AS h(lo, hi)"
                                               " ON l.id BETWEEN h.lo AND h.hi ORDER BY l.id"
                                               " LIMIT " TEXT_OF(AUD_GAPSCAN_CHUNK),
                                  2, p, "gap scan holes", errbuf, errcap);
    free(lo.p);
    free(hi.p);
    if (!rows) return HL_EPG;
    read_rows(g, rows, from_us);
    /* What is left of each hole: the ids between the rows found in it. */
    hole_t old[AUD_GAPSCAN_HOLES_MAX];
    size_t nold = g->nholes;
    memcpy(old, g->holes, nold * sizeof *old);
    g->nholes = 0;
    int r = 0, nrows = PQntuples(rows);
    for (size_t h = 0; h < nold; h++) {
        if (old[h].noticed_us < db_now_us - g->grace_us) continue; /* given up */
        int64_t next = old[h].lo, id;
        for (; r < nrows && i64_cell(rows, r, COL_ID, &id) && id <= old[h].hi; r++) {
            if (id < old[h].lo) continue;
            hole_add(g, next, id - 1, old[h].noticed_us);
            next = id + 1;
        }
        hole_add(g, next, old[h].hi, old[h].noticed_us);
    }
    PQclear(rows);
    return 0;
}

/* Reads the ids (wm, upto], where upto stops before the first row stored less than
 * AUD_GAPSCAN_LAG_US ago, and matches accepted elements with outcomes in memory: each row is
 * read once, as a range of the primary key, while its page is still likely in Postgres' cache.
 * An outcome read before its element (the two records come from different producers) is kept
 * a while in `early`. Returns 1 when this reached the end of what can be read now, 0 when
 * there is more, HL_EPG (nothing changed then). */
static int chunk(aud_gapscan_t *g, PGconn *c, int64_t from_us, int64_t *db_now_us, char *errbuf,
                 size_t errcap)
{
    char wm[24], n[24], lag[24], upto_s[24];
    snprintf(wm, sizeof wm, "%" PRId64, g->wm);
    snprintf(n, sizeof n, "%d", AUD_GAPSCAN_CHUNK);
    snprintf(lag, sizeof lag, "%" PRId64, g->lag_us);
    const char *pb[3] = {wm, n, lag};
    PGresult *r =
        hl_pg_select(c,
                     "SELECT coalesce((SELECT min(id) - 1 FROM lineage WHERE id > $1::bigint"
                     " AND id <= hi.v AND stored_at >= clock_timestamp()"
                     " - $3::bigint * interval '1 microsecond'), hi.v), hi.v,"
                     " (extract(epoch FROM clock_timestamp()) * 1000000)::int8"
                     " FROM (SELECT least($1::bigint + $2::bigint,"
                     " (SELECT coalesce(max(id), 0) FROM lineage)) AS v) hi",
                     3, pb, "gap scan bounds", errbuf, errcap);
    if (!r) return HL_EPG;
    int64_t upto = 0, hi = 0;
    int ok = PQntuples(r) == 1 && i64_cell(r, 0, 0, &upto) && i64_cell(r, 0, 1, &hi) &&
             i64_cell(r, 0, 2, db_now_us);
    PQclear(r);
    if (!ok) {
        snprintf(errbuf, errcap, "gap scan bounds: unexpected answer");
        return HL_EPG;
    }
    if (upto <= g->wm) return 1;
    snprintf(upto_s, sizeof upto_s, "%" PRId64, upto);
    const char *pr[2] = {wm, upto_s};
    PGresult *rows = hl_pg_select(c,
                                  SCAN_COLUMNS " WHERE l.id > $1::bigint AND l.id <= $2::bigint"
                                               " ORDER BY l.id",
                                  2, pr, "gap scan", errbuf, errcap);
    if (!rows) return HL_EPG;
    read_rows(g, rows, from_us);
    int64_t next = g->wm + 1, id;
    for (int i = 0; i < PQntuples(rows); i++)
        if (i64_cell(rows, i, COL_ID, &id)) {
            hole_add(g, next, id - 1, *db_now_us);
            next = id + 1;
        }
    /* The ids above the last row read may belong to a transaction that began just before the
     * first row too recent to read: noticed as if a lag later, like the ids below a row read. */
    hole_add(g, next, upto, *db_now_us + g->lag_us);
    PQclear(rows);
    /* Outcomes kept for elements not read yet: the two records of a request are stored close
     * together; an element whose outcome was dropped is looked up instead (settle). */
    if (g->nearly > AUD_GAPSCAN_EARLY_MAX) {
        json_object_clear(g->early);
        g->nearly = 0;
    }
    int64_t asked_to = g->wm + AUD_GAPSCAN_CHUNK;
    g->wm = upto;
    return upto < hi || hi < asked_to; /* stopped at a row too recent, or at the last one */
}

/* An element's columns again from its keys (elem_key, type_key), as the lookup wants them:
 * {i: at, c: chain, r: request id, m: message id or null, t: event type or null}; NULL when
 * they cannot be put in JSON (text that is not UTF-8). */
static json_t *element_of(const char *key, const char *type, size_t at)
{
    char *end;
    long chain = strtol(key, &end, 10);
    size_t req_len = (size_t)strtoul(end + 1, &end, 10);
    const char *req = end + 1, *mid = req + req_len + 1;
    return json_pack("{s:I, s:i, s:s%, s:s?, s:s?}", "i", (json_int_t)at, "c", (int)chain, "r", req,
                     req_len, "m", *mid == 'v' ? mid + 1 : NULL, "t",
                     strcmp(type, "\x01") == 0 ? NULL : type);
}

typedef struct {
    char *key, *type;
} wanted_t;

/* Open elements stored grace_us ago or more that no outcome read has closed are looked up
 * once in the whole table (an outcome stored before the scan's memory of outcomes, or before
 * the window); those with none are the open gaps. Returns their count, or HL_EPG (nothing
 * changed then). */
static int64_t settle(aud_gapscan_t *g, PGconn *c, int64_t db_now_us, char *errbuf, size_t errcap)
{
    json_t *ask = json_array();
    const char *key, *type;
    json_t *types, *v;
    int64_t settled = 0;
    wanted_t *want = NULL;
    size_t nwant = 0, capwant = 0;
    if (!ask) hl_die("out of memory");
    json_object_foreach(g->open, key, types)
    {
        json_object_foreach(types, type, v)
        {
            if (open_at(v, OPEN_STORED) > db_now_us - g->grace_us) continue;
            settled++;
            if (open_at(v, OPEN_LOOKED_UP)) continue;
            json_t *e = element_of(key, type, nwant);
            if (!e) continue; /* not to be asked about: stays open, asked again next time */
            if (json_array_append_new(ask, e) != 0) hl_die("out of memory");
            if (nwant == capwant) {
                capwant = capwant ? 2 * capwant : 64;
                want = hl_xrealloc(want, capwant * sizeof *want);
            }
            want[nwant++] = (wanted_t){hl_xstrdup(key), hl_xstrdup(type)};
        }
    }
    int rc = 0;
    PGresult *r = NULL;
    if (nwant > 0) {
        char *text = json_dumps(ask, JSON_COMPACT);
        if (!text) hl_die("out of memory");
        const char *p[1] = {text};
        r = hl_pg_select(c,
                         "SELECT u.i, (SELECT min(k.ts_us) FROM lineage k WHERE k.request_id = u.r"
                         " AND k.chain + 0 = u.c AND k.message_id IS NOT DISTINCT FROM u.m"
                         " AND (coalesce(k.event_type, '') = '' OR k.event_type = u.t)"
                         " AND k.stage IN " SQL_STAGE_OUTCOMES ") FROM json_to_recordset($1::json)"
                         " AS u(i int8, c int, r text, m text, t text)",
                         1, p, "gap scan outcomes", errbuf, errcap);
        free(text);
        if (!r) rc = HL_EPG;
    }
    for (int i = 0; r && i < PQntuples(r); i++) {
        int64_t at, done;
        if (!i64_cell(r, i, 0, &at) || at < 0 || (size_t)at >= nwant) continue;
        types = json_object_get(g->open, want[at].key);
        if (!types || !(v = json_object_get(types, want[at].type))) continue;
        if (!i64_cell(r, i, 1, &done)) {
            json_array_set_new(v, OPEN_LOOKED_UP, json_integer(1)); /* none: open */
            continue;
        }
        judge(g, open_at(v, OPEN_RECEIVED), done);
        json_object_del(types, want[at].type);
        g->nopen--;
        settled--;
        if (json_object_size(types) == 0) json_object_del(g->open, want[at].key);
    }
    PQclear(r);
    json_decref(ask);
    for (size_t i = 0; i < nwant; i++) {
        free(want[i].key);
        free(want[i].type);
    }
    free(want);
    return rc ? rc : settled;
}

/* Too many to follow one by one: the set is dropped and the window counted with the full query,
 * with pauses (gapscan.h), until the open gaps are few enough to follow. */
static int count_all(aud_gapscan_t *g, PGconn *c, int64_t from, int64_t *open, int64_t *closed,
                     char *errbuf, size_t errcap)
{
    if (!g->counting) {
        hl_warn("gap count: more than %" PRId64 " accepted requests awaiting an outcome or %" PRId64
                " open gaps; counting them with the full query from now on",
                g->pending_max, g->open_max);
        reset(g);
        g->counting = 1;
    }
    int64_t t0 = hl_mono_us();
    if (t0 < g->count_next_mono) return 0;
    int rc = aud_q_gap_counts(c, g->grace_us, from, open, closed, errbuf, errcap);
    /* A count that failed (a failover mid-query) pauses as well, as long as it took. */
    int64_t took = hl_mono_us() - t0;
    int64_t pause = took * AUD_GAPSCAN_COUNT_PAUSE;
    if (pause < g->pause_us) pause = g->pause_us;
    if (pause > g->pause_us * AUD_GAPSCAN_PAUSE_CAP) pause = g->pause_us * AUD_GAPSCAN_PAUSE_CAP;
    g->count_next_mono = t0 + pause;
    if (rc != 0) return HL_EPG;
    if (*open <= g->pending_max / 5) g->counting = 0;
    char next[64] = "few enough open gaps: following them one by one again";
    if (g->counting) snprintf(next, sizeof next, "the next in %" PRId64 " s", pause / 1000000);
    hl_info("gap count: full query: %" PRId64 " open, %" PRId64 " closed in %" PRId64 " ms; %s",
            *open, *closed, took / 1000, next);
    return 2;
}

int aud_gapscan_run(aud_gapscan_t *g, PGconn *c, int64_t now_us, int64_t budget_us, int64_t *open,
                    int64_t *closed, char *errbuf, size_t errcap)
{
    int64_t from = now_us - g->window_us, t0 = hl_mono_us(), db_now = 0;
    if (g->counting || g->last_open > g->open_max || (int64_t)g->nopen > g->pending_max)
        return count_all(g, c, from, open, closed, errbuf, errcap);
    if (g->wm < 0 && start(g, c, from, errbuf, errcap) != 0) return HL_EPG;
    for (;;) {
        int rc = chunk(g, c, from, &db_now, errbuf, errcap);
        if (rc < 0) return rc;
        if (rc == 1) {
            g->caught_up = 1;
            break;
        }
        if (hl_mono_us() - t0 >= budget_us || (int64_t)g->nopen > g->pending_max) break;
    }
    if (reread_holes(g, c, db_now, from, errbuf, errcap) != 0) return HL_EPG;
    expire_open(g, from);
    if (!g->caught_up) return 0;
    int64_t n = settle(g, c, db_now, errbuf, errcap);
    if (n < 0) return HL_EPG;
    g->last_open = n;
    *open = n;
    *closed = closed_since(g, from);
    return 1;
}
