/* The batch transaction. New rows go by COPY in binary format, after a probe of the unique
 * index that skips keys already stored and takes their ids from the sequence; the offsets
 * upsert and COMMIT follow in the same simple query, so a batch costs a probe, one query and
 * one transaction (README.md, "Why COPY"). The one-statement form (INSERT ... SELECT from
 * binary array parameters, offsets as a data-modifying CTE) serves batches with nothing new
 * and every fallback: a concurrent writer (23505) and the isolation of refused rows. */
#include "batch_writer.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/codec.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/util.h"

/* Type oids fixed by Postgres (pg_type.dat). */
#define OID_INT4 23
#define OID_INT8 20
#define OID_TEXT 25
#define OID_TIMESTAMPTZ 1184
#define OID_UUID 2950
#define OID_JSONB 3802
#define OID_BYTEA 17

/* Microseconds between 1970-01-01 and 2000-01-01, the epoch of binary timestamps. */
#define PG_EPOCH_US 946684800000000LL

#define NCOLS 11
#define NPARAMS (NCOLS + 5) /* the columns, then the offsets upsert */

#define INSERT_COLS                                                                             \
    "INSERT INTO webhook_events (source, message_id, event_type, request_id, received_at,"      \
    " kafka_partition, kafka_offset, payload, body_sha256, raw_body, signature_headers)"
/* The arrays are unnested in the select list (a ProjectSet walks them in step) rather than in
 * FROM: a function scan would first copy every value into a tuplestore per array. */
#define UNNEST_ROWS                                                                             \
    " SELECT * FROM (SELECT unnest($1::text[]) AS s, unnest($2::text[]) AS m,"                  \
    " unnest($3::text[]) AS e, unnest($4::uuid[]) AS r, unnest($5::timestamptz[]) AS ra,"       \
    " unnest($6::int4[]) AS p, unnest($7::int8[]) AS o, unnest($8::jsonb[]) AS j,"             \
    " unnest($9::bytea[]) AS d, unnest($10::bytea[]) AS b, unnest($11::jsonb[]) AS h) AS t"
#define RETURN_ROWS " RETURNING id, kafka_partition, kafka_offset"

/* Insert-or-skip with ON CONFLICT: safe against any concurrent writer of the same keys. */
#define INSERT_ROWS                                                                             \
    INSERT_COLS UNNEST_ROWS " ON CONFLICT ON CONSTRAINT webhook_events_key DO NOTHING" RETURN_ROWS

/* The same with an anti-join instead of ON CONFLICT: a plain insert skips speculative insertion
 * and its extra WAL record per row, about a quarter of the statement's server CPU measured here
 * (services/persister/README.md). Only a concurrent writer of the same new key can make it fail
 * (23505); the batch is then run again with INSERT_ROWS. Duplicates inside one batch are
 * removed before sending (hl_rows_mark_batch_duplicates), since the anti-join cannot see them. */
#define INSERT_ROWS_ANTI                                                                        \
    INSERT_COLS UNNEST_ROWS                                                                     \
    " WHERE NOT EXISTS (SELECT 1 FROM webhook_events w"                                         \
    " WHERE w.source = t.s AND w.message_id = t.m AND w.event_type = t.e)" RETURN_ROWS

/* Both offsets move forward only. lineage_offset (proto/sql/004) is where the lineage known
 * delivered ends; it never passes next_offset. */
#define UPSERT_OFFSETS(g, t, p, o, l)                                                           \
    "INSERT INTO consumer_offsets AS c (consumer_group, topic, kafka_partition, next_offset,"   \
    " lineage_offset)"                                                                          \
    " SELECT " g ", " t ", u.p, u.o, LEAST(u.l, u.o)"                                           \
    " FROM unnest(" p "::int4[], " o "::int8[], " l "::int8[]) AS u(p, o, l)"                   \
    " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE"                           \
    " SET next_offset = GREATEST(c.next_offset, EXCLUDED.next_offset),"                         \
    " lineage_offset = GREATEST(c.lineage_offset, EXCLUDED.lineage_offset),"                    \
    " updated_at = clock_timestamp()"

static const char SQL_BATCH_FAST[] = "WITH ins AS (" INSERT_ROWS_ANTI "), off AS ("
    UPSERT_OFFSETS("$12::text", "$13::text", "$14", "$15", "$16") ") SELECT * FROM ins";
static const char SQL_BATCH[] = "WITH ins AS (" INSERT_ROWS "), off AS ("
    UPSERT_OFFSETS("$12::text", "$13::text", "$14", "$15", "$16") ") SELECT * FROM ins";
static const char SQL_ROWS[] = INSERT_ROWS;
static const char SQL_OFFSETS[] = UPSERT_OFFSETS("$1::text", "$2::text", "$3", "$4", "$5");
/* Moves lineage_offset alone (after the last batch, at a revocation or shutdown). It leaves
 * updated_at alone: that stays the time of the partition's last batch commit. */
static const char SQL_LINEAGE[] =
    "UPDATE consumer_offsets AS c SET lineage_offset = LEAST(u.l, c.next_offset)"
    " FROM unnest($3::int4[], $4::int8[]) AS u(p, l)"
    " WHERE c.consumer_group = $1 AND c.topic = $2 AND c.kafka_partition = u.p"
    " AND (c.lineage_offset IS NULL OR c.lineage_offset < LEAST(u.l, c.next_offset))";
/* What Postgres holds for records committed before a restart: the stored row of each key, with
 * its position and insert time (binary timestamptz). */
static const char SQL_RECOVER[] =
    "SELECT k.i, w.id, w.kafka_partition, w.kafka_offset, w.persisted_at"
    " FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(s, m, e, i)"
    " JOIN webhook_events w ON w.source = k.s AND w.message_id = k.m AND w.event_type = k.e";
/* The stored row of each given key, to tell "duplicate" from "inserted by an earlier attempt
 * whose commit we never heard about" after a retry. */
static const char SQL_LOOKUP[] =
    "SELECT w.id, w.kafka_partition, w.kafka_offset"
    " FROM unnest($1::text[], $2::text[], $3::text[]) AS k(s, m, e)"
    " JOIN webhook_events w ON w.source = k.s AND w.message_id = k.m AND w.event_type = k.e";
/* The COPY path's probe: the keys of a batch (with their positions $4) that no row holds yet,
 * each with a fresh id from the table's sequence, which the COPY gives the row. The anti-join
 * form matters: written as a per-row EXISTS in the select list, the generic plan hashed the
 * whole table once per batch instead of probing the unique index. */
static const char SQL_PROBE[] =
    "SELECT k.i, nextval('webhook_events_id_seq'::regclass)"
    " FROM (SELECT unnest($4::int4[]) AS i, unnest($1::text[]) AS s, unnest($2::text[]) AS m,"
    " unnest($3::text[]) AS e) AS k"
    " WHERE NOT EXISTS (SELECT 1 FROM webhook_events w"
    " WHERE w.source = k.s AND w.message_id = k.m AND w.event_type = k.e)";
/* The rest of the COPY path, sent as one simple query: the offsets upsert and COMMIT run as
 * soon as the rows are in, in the same transaction, with no further round trip. */
static const char SQL_COPY[] =
    "BEGIN; COPY webhook_events (id, source, message_id, event_type, request_id, received_at,"
    " kafka_partition, kafka_offset, payload, body_sha256, raw_body, signature_headers)"
    " FROM STDIN (FORMAT binary);";
static const char SQL_COPY_OFFSETS[] =
    " INSERT INTO consumer_offsets AS c (consumer_group, topic, kafka_partition, next_offset,"
    " lineage_offset) VALUES ";
static const char SQL_COPY_END[] =
    " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE"
    " SET next_offset = GREATEST(c.next_offset, EXCLUDED.next_offset),"
    " lineage_offset = GREATEST(c.lineage_offset, EXCLUDED.lineage_offset),"
    " updated_at = clock_timestamp(); COMMIT";

static const char SQL_LOAD[] =
    "SELECT kafka_partition, next_offset, lineage_offset,"
    " (extract(epoch FROM updated_at) * 1000000)::int8 FROM consumer_offsets"
    " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3::int4[])";

/* Its buffers keep their capacity between batches, so steady state allocates nothing; their
 * size is bounded by max_rows x max_record_bytes through the caller's caps. */
struct hl_batch_writer {
    const hl_pg_config_t *pg; /* borrowed */
    const char *group;        /* borrowed */
    const char *topic;        /* borrowed */
    size_t max_rows;
    PGconn *conn;             /* NULL when not connected */
    hl_buf_t col[NCOLS];      /* one binary array per column */
    hl_buf_t parts, nexts, lins; /* offsets arrays: partition, next_offset, lineage_offset */
    hl_bw_lineage_fn lineage_fn; /* where each partition's lineage_offset comes from */
    void *lineage_arg;
    hl_row_t **good;          /* rows with status OK, in batch order (max_rows) */
    hl_row_t **by_pos;        /* the same sorted by (partition, offset), for RETURNING */
    hl_row_t **dead;          /* rows to dead-letter (max_rows) */
    hl_row_t **scratch;       /* rows stored late while isolating refused ones (max_rows) */
    int32_t *part_ids;        /* partitions of the batch (max_rows slots) */
    int64_t *part_next;       /* their next offsets */
    int64_t *part_first;      /* their lowest offsets in the batch, then their lineage offsets */
    size_t nparts;            /* partitions of the batch */
    char err[512];
    hl_bw_stats_t stats;
    /* The batch statement in flight (sent, result not yet read); NULL when none. */
    hl_row_t **sent_rows;
    size_t sent_n, sent_good;
    hl_bw_dead_letter_fn sent_dl;
    void *sent_dl_arg;
    bool sent_copy;           /* the batch in flight went the COPY way */
    hl_buf_t copy, sql;       /* COPY data and statement text of the COPY way */
    char *group_lit, *topic_lit; /* group and topic as SQL literals (for the connection) */
    /* Connections made so far, and the one on which the offsets were last loaded: writing is
     * refused while they differ (see hl_bw_stale). */
    uint64_t generation, synced;
};

static void put32(hl_buf_t *b, uint32_t v)
{
    hl_buf_reserve(b, 4);
    v = htonl(v);
    memcpy(b->p + b->len, &v, 4);
    b->len += 4;
}

static void put64(hl_buf_t *b, int64_t v)
{
    put32(b, (uint32_t)((uint64_t)v >> 32));
    put32(b, (uint32_t)((uint64_t)v & 0xffffffffu));
}

/* Starts a one-dimensional binary array of n elements of type oid (the wire format of
 * array_recv: ndim, has-null flag, element type, then size and lower bound per dimension). */
static void array_begin(hl_buf_t *b, uint32_t oid, size_t n)
{
    b->len = 0;
    put32(b, n ? 1 : 0);
    put32(b, 0);
    put32(b, oid);
    if (n) {
        put32(b, (uint32_t)n);
        put32(b, 1);
    }
}

static void elem_bytes(hl_buf_t *b, const void *p, size_t n)
{
    put32(b, (uint32_t)n);
    hl_buf_put(b, p, n);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
}

/* The 16 bytes of a UUID text already checked by hl_uuid_valid. */
static void elem_uuid(hl_buf_t *b, const char *s)
{
    unsigned char u[16];
    size_t k = 0;
    for (const char *p = s; *p && k < 16; p++) {
        if (*p == '-') continue;
        u[k++] = (unsigned char)(hexval(p[0]) << 4 | hexval(p[1]));
        p++;
    }
    elem_bytes(b, u, 16);
}

hl_batch_writer_t *hl_bw_new(const hl_pg_config_t *pg, const char *group, const char *topic,
                             size_t max_rows)
{
    hl_batch_writer_t *bw = hl_xcalloc(1, sizeof(*bw));
    bw->pg = pg;
    bw->group = group;
    bw->topic = topic;
    bw->max_rows = max_rows;
    bw->good = hl_xcalloc(max_rows, sizeof(*bw->good));
    bw->by_pos = hl_xcalloc(max_rows, sizeof(*bw->by_pos));
    bw->dead = hl_xcalloc(max_rows, sizeof(*bw->dead));
    bw->scratch = hl_xcalloc(max_rows, sizeof(*bw->scratch));
    bw->part_ids = hl_xcalloc(max_rows, sizeof(*bw->part_ids));
    bw->part_next = hl_xcalloc(max_rows, sizeof(*bw->part_next));
    bw->part_first = hl_xcalloc(max_rows, sizeof(*bw->part_first));
    return bw;
}

void hl_bw_set_lineage_fn(hl_batch_writer_t *bw, hl_bw_lineage_fn fn, void *arg)
{
    bw->lineage_fn = fn;
    bw->lineage_arg = arg;
}

static void disconnect(hl_batch_writer_t *bw)
{
    if (bw->conn) PQfinish(bw->conn);
    bw->conn = NULL;
    PQfreemem(bw->group_lit);
    PQfreemem(bw->topic_lit);
    bw->group_lit = bw->topic_lit = NULL;
}

void hl_bw_reset(hl_batch_writer_t *bw)
{
    /* A statement abandoned in flight may still commit; dropping the connection is the only
     * way to stop waiting for it, and its outcome is recorded in consumer_offsets anyway. */
    if (bw->sent_rows) disconnect(bw);
    bw->sent_rows = NULL;
}

void hl_bw_free(hl_batch_writer_t *bw)
{
    if (!bw) return;
    disconnect(bw);
    for (int i = 0; i < NCOLS; i++) free(bw->col[i].p);
    free(bw->parts.p);
    free(bw->nexts.p);
    free(bw->lins.p);
    free(bw->copy.p);
    free(bw->sql.p);
    free(bw->good);
    free(bw->by_pos);
    free(bw->dead);
    free(bw->scratch);
    free(bw->part_ids);
    free(bw->part_next);
    free(bw->part_first);
    free(bw);
}

const char *hl_bw_last_error(const hl_batch_writer_t *bw) { return bw->err; }

void hl_bw_stats(const hl_batch_writer_t *bw, hl_bw_stats_t *out) { *out = bw->stats; }

/* Records the error of res (or of the connection) in bw->err; drops a broken connection.
 * Returns HL_EAGAIN for a transient failure, HL_EPG for one that will repeat. */
static int pg_fail(hl_batch_writer_t *bw, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg) msg = PQerrorMessage(bw->conn);
    snprintf(bw->err, sizeof(bw->err), "%s: %s%s%s", what, state ? state : "", state ? " " : "",
             msg ? msg : "");
    size_t l = strlen(bw->err);
    while (l && (bw->err[l - 1] == '\n' || bw->err[l - 1] == ' ')) bw->err[--l] = '\0';
    bool transient = hl_pg_transient(bw->conn, res) || PQstatus(bw->conn) != CONNECTION_OK;
    /* A statement the server cannot even plan (a missing table, a revoked right) is no fault of
     * any one row, and an operator can fix it: it is retried like an outage, never skipped. */
    if (state && (strncmp(state, "42", 2) == 0 || strncmp(state, "3F", 2) == 0)) transient = true;
    /* A broken connection, or a read-only server (25006: a standby, or a primary demoted or
     * set read-only), is dropped: the next attempt connects again through the conninfo's host
     * list, which with target_session_attrs=read-write reaches the new primary. The failed
     * transaction stored nothing, and its rows are not refused (25006 is transient): the batch
     * is retried whole. */
    if (hl_pg_reconnect_needed(bw->conn, res)) disconnect(bw);
    return transient ? HL_EAGAIN : HL_EPG;
}

static int prepare(hl_batch_writer_t *bw, const char *name, const char *sql)
{
    PGresult *res = PQprepare(bw->conn, name, sql, 0, NULL);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_fail(bw, res, name);
    PQclear(res);
    return rc;
}

int hl_bw_connect(hl_batch_writer_t *bw)
{
    if (bw->conn && PQstatus(bw->conn) == CONNECTION_OK) return 0;
    disconnect(bw);
    if (hl_pg_connect(bw->pg, 0, &bw->conn, bw->err, sizeof(bw->err)) != 0) {
        bw->conn = NULL;
        return HL_EAGAIN;
    }
    /* Binary text parameters are converted from the client encoding: make it the one Kafka
     * records are checked against. */
    if (PQsetClientEncoding(bw->conn, "UTF8") != 0 || prepare(bw, "hl_batch", SQL_BATCH) ||
        prepare(bw, "hl_batch_fast", SQL_BATCH_FAST) ||
        prepare(bw, "hl_rows", SQL_ROWS) || prepare(bw, "hl_offsets", SQL_OFFSETS) ||
        prepare(bw, "hl_load", SQL_LOAD) || prepare(bw, "hl_lookup", SQL_LOOKUP) ||
        prepare(bw, "hl_lineage", SQL_LINEAGE) || prepare(bw, "hl_recover", SQL_RECOVER) ||
        prepare(bw, "hl_probe", SQL_PROBE) ||
        !(bw->group_lit = PQescapeLiteral(bw->conn, bw->group, strlen(bw->group))) ||
        !(bw->topic_lit = PQescapeLiteral(bw->conn, bw->topic, strlen(bw->topic)))) {
        if (!bw->err[0]) snprintf(bw->err, sizeof(bw->err), "connect: %s", PQerrorMessage(bw->conn));
        disconnect(bw);
        return HL_EAGAIN;
    }
    bw->generation++;
    return 0;
}

bool hl_bw_stale(const hl_batch_writer_t *bw) { return bw->generation != bw->synced; }

/* hl_bw_connect for the statements that write, or that rely on the offsets the caller holds:
 * refused (HL_ESTATE) on a connection the offsets were not loaded on. */
static int connect_synced(hl_batch_writer_t *bw)
{
    if (hl_bw_connect(bw) != 0) return HL_EAGAIN;
    if (!hl_bw_stale(bw)) return 0;
    snprintf(bw->err, sizeof(bw->err),
             "new Postgres connection: the offsets must be loaded again before writing");
    return HL_ESTATE;
}

/* Simple statement without parameters; returns 0, HL_EAGAIN or HL_EPG. */
static int exec(hl_batch_writer_t *bw, const char *sql)
{
    PGresult *res = PQexec(bw->conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_fail(bw, res, sql);
    PQclear(res);
    return rc;
}

/* Fills bw->parts with the partitions of offs[0..n). */
static void partitions_array(hl_batch_writer_t *bw, const hl_bw_offsets_t *offs, size_t n)
{
    array_begin(&bw->parts, OID_INT4, n);
    for (size_t i = 0; i < n; i++) {
        put32(&bw->parts, 4);
        put32(&bw->parts, (uint32_t)offs[i].partition);
    }
}

int hl_bw_load_offsets(hl_batch_writer_t *bw, hl_bw_offsets_t *offs, size_t n)
{
    if (bw->sent_rows) return HL_ESTATE;
    if (hl_bw_connect(bw) != 0) return HL_EAGAIN;
    for (size_t i = 0; i < n; i++) offs[i].next = offs[i].lineage = offs[i].updated_us = -1;
    partitions_array(bw, offs, n);
    const char *vals[3] = {bw->group, bw->topic, bw->parts.p};
    int lens[3] = {(int)strlen(bw->group), (int)strlen(bw->topic), (int)bw->parts.len};
    int fmts[3] = {1, 1, 1};
    PGresult *res = PQexecPrepared(bw->conn, "hl_load", 3, vals, lens, fmts, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = pg_fail(bw, res, "load offsets");
        PQclear(res);
        return rc == HL_EPG ? HL_EPG : HL_EAGAIN;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        int64_t p = 0, o = 0, lin = -1, upd = -1;
        if (hl_parse_i64(PQgetvalue(res, r, 0), 0, INT32_MAX, &p) != 0 ||
            hl_parse_i64(PQgetvalue(res, r, 1), 0, INT64_MAX, &o) != 0)
            continue;
        /* NULL: a row from before lineage_offset existed, whose lineage is not tracked. */
        if (!PQgetisnull(res, r, 2) && hl_parse_i64(PQgetvalue(res, r, 2), 0, INT64_MAX, &lin) != 0)
            lin = -1;
        if (hl_parse_i64(PQgetvalue(res, r, 3), 0, INT64_MAX, &upd) != 0) upd = -1;
        for (size_t i = 0; i < n; i++)
            if (offs[i].partition == (int32_t)p) {
                offs[i].next = o;
                offs[i].lineage = lin;
                offs[i].updated_us = upd;
            }
    }
    PQclear(res);
    bw->synced = bw->generation;
    return 0;
}

int hl_bw_store_lineage(hl_batch_writer_t *bw, const hl_bw_offsets_t *offs, size_t n)
{
    if (bw->sent_rows) return HL_ESTATE;
    if (n == 0) return 0;
    int rc = connect_synced(bw);
    if (rc) return rc;
    partitions_array(bw, offs, n);
    array_begin(&bw->lins, OID_INT8, n);
    for (size_t i = 0; i < n; i++) {
        put32(&bw->lins, 8);
        put64(&bw->lins, offs[i].lineage);
    }
    const char *vals[4] = {bw->group, bw->topic, bw->parts.p, bw->lins.p};
    int lens[4] = {(int)strlen(bw->group), (int)strlen(bw->topic), (int)bw->parts.len,
                   (int)bw->lins.len};
    int fmts[4] = {1, 1, 1, 1};
    PGresult *res = PQexecPrepared(bw->conn, "hl_lineage", 4, vals, lens, fmts, 0);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_fail(bw, res, "store lineage offset");
    PQclear(res);
    return rc == 0 ? 0 : HL_EAGAIN;
}

/* The body's digest as 32 bytes (NULL when the row has none), the raw body, and the signature
 * headers (jsonb, NULL when absent): the same wire encodings in arrays and in COPY. */
static void put_content(hl_buf_t *digest, hl_buf_t *raw, hl_buf_t *sig, const hl_row_t *r)
{
    static const char jsonb_version = 1;
    unsigned char d[32];
    if (r->body_sha256[0] != '\0' && hl_hex_decode(r->body_sha256, 64, d, sizeof(d)) == 32) {
        elem_bytes(digest, d, sizeof(d));
    } else {
        put32(digest, UINT32_MAX); /* -1: NULL */
    }
    elem_bytes(raw, r->payload, r->payload_len);
    if (r->signed_json != NULL) {
        put32(sig, (uint32_t)(r->signed_json_len + 1));
        hl_buf_put(sig, &jsonb_version, 1);
        hl_buf_put(sig, r->signed_json, r->signed_json_len);
    } else {
        put32(sig, UINT32_MAX);
    }
}

/* Fills the column arrays from rows[0..n). */
static void build_rows(hl_batch_writer_t *bw, hl_row_t **rows, size_t n)
{
    static const uint32_t oids[NCOLS] = {OID_TEXT,  OID_TEXT,  OID_TEXT, OID_UUID,
                                         OID_TIMESTAMPTZ, OID_INT4, OID_INT8, OID_JSONB,
                                         OID_BYTEA, OID_BYTEA, OID_JSONB};
    for (int c = 0; c < NCOLS; c++) array_begin(&bw->col[c], oids[c], n);
    static const char jsonb_version = 1;
    for (size_t i = 0; i < n; i++) {
        const hl_row_t *r = rows[i];
        elem_bytes(&bw->col[0], r->source, strlen(r->source));
        elem_bytes(&bw->col[1], r->message_id, r->message_id_len);
        elem_bytes(&bw->col[2], r->event_type, strlen(r->event_type));
        elem_uuid(&bw->col[3], r->request_id);
        put32(&bw->col[4], 8);
        put64(&bw->col[4], r->received_us - PG_EPOCH_US);
        put32(&bw->col[5], 4);
        put32(&bw->col[5], (uint32_t)r->partition);
        put32(&bw->col[6], 8);
        put64(&bw->col[6], r->offset);
        put32(&bw->col[7], (uint32_t)(r->payload_len + 1));
        hl_buf_put(&bw->col[7], &jsonb_version, 1);
        hl_buf_put(&bw->col[7], r->payload, r->payload_len);
        put_content(&bw->col[8], &bw->col[9], &bw->col[10], r);
    }
}

/* Fills the offsets arrays: for each partition in rows, highest offset + 1, and the lineage
 * offset from the lineage function (the batch's lowest offset of the partition when it has
 * none: nothing below was ever committed by this group then). */
static void build_offsets(hl_batch_writer_t *bw, hl_row_t **rows, size_t n)
{
    /* A batch spans few partitions; a linear scan over those seen is cheaper than a map.
     * There are never more partitions than rows, so the max_rows slots always suffice. */
    int32_t *parts = bw->part_ids;
    int64_t *next = bw->part_next, *first = bw->part_first;
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < np && parts[k] != rows[i]->partition) k++;
        if (k == np) {
            parts[np] = rows[i]->partition;
            first[np] = rows[i]->offset;
            next[np++] = rows[i]->offset + 1;
        } else if (rows[i]->offset + 1 > next[k]) {
            next[k] = rows[i]->offset + 1;
        } else if (rows[i]->offset < first[k]) {
            first[k] = rows[i]->offset;
        }
    }
    bw->nparts = np;
    array_begin(&bw->parts, OID_INT4, np);
    array_begin(&bw->nexts, OID_INT8, np);
    array_begin(&bw->lins, OID_INT8, np);
    for (size_t k = 0; k < np; k++) {
        int64_t lin = bw->lineage_fn ? bw->lineage_fn(bw->lineage_arg, parts[k]) : -1;
        if (lin < 0) lin = first[k];
        first[k] = lin < next[k] ? lin : next[k];
        put32(&bw->parts, 4);
        put32(&bw->parts, (uint32_t)parts[k]);
        put32(&bw->nexts, 8);
        put64(&bw->nexts, next[k]);
        put32(&bw->lins, 8);
        put64(&bw->lins, lin);
    }
}

static int pos_cmp(const void *a, const void *b)
{
    const hl_row_t *x = *(const hl_row_t *const *)a, *y = *(const hl_row_t *const *)b;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static uint32_t get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

static int64_t get64(const char *p) { return (int64_t)((uint64_t)get32(p) << 32 | get32(p + 4)); }

/* Marks rows[0..n) from a RETURNING (id, partition, offset) result in binary format: returned
 * rows were inserted, the others were duplicates. */
static void mark_results(hl_batch_writer_t *bw, hl_row_t **rows, size_t n, PGresult *res)
{
    memcpy(bw->by_pos, rows, n * sizeof(*rows));
    qsort(bw->by_pos, n, sizeof(*rows), pos_cmp);
    for (size_t i = 0; i < n; i++) {
        rows[i]->duplicate = 1;
        rows[i]->row_id = -1;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        hl_row_t key, *kp = &key;
        key.partition = (int32_t)get32(PQgetvalue(res, r, 1));
        key.offset = get64(PQgetvalue(res, r, 2));
        hl_row_t **hit = bsearch(&kp, bw->by_pos, n, sizeof(*rows), pos_cmp);
        if (!hit) continue;
        (*hit)->duplicate = 0;
        (*hit)->row_id = get64(PQgetvalue(res, r, 0));
    }
}

/* Fills the parameters of a row insert (or of the whole batch statement when with_offsets) for
 * rows[0..n); returns the parameter count. The pointers stay valid until the next build. */
static int insert_params(hl_batch_writer_t *bw, hl_row_t **rows, size_t n, int with_offsets,
                         const char **vals, int *lens, int *fmts)
{
    build_rows(bw, rows, n);
    for (int c = 0; c < NCOLS; c++) {
        vals[c] = bw->col[c].p;
        lens[c] = (int)bw->col[c].len;
        fmts[c] = 1;
    }
    if (!with_offsets) return NCOLS;
    vals[NCOLS] = bw->group;
    lens[NCOLS] = (int)strlen(bw->group);
    vals[NCOLS + 1] = bw->topic;
    lens[NCOLS + 1] = (int)strlen(bw->topic);
    vals[NCOLS + 2] = bw->parts.p;
    lens[NCOLS + 2] = (int)bw->parts.len;
    vals[NCOLS + 3] = bw->nexts.p;
    lens[NCOLS + 3] = (int)bw->nexts.len;
    vals[NCOLS + 4] = bw->lins.p;
    lens[NCOLS + 4] = (int)bw->lins.len;
    for (int i = NCOLS; i < NPARAMS; i++) fmts[i] = 1;
    return NPARAMS;
}

/* Runs a row insert for rows[0..n) and waits for its result (owned by the caller). */
static PGresult *run_insert(hl_batch_writer_t *bw, hl_row_t **rows, size_t n)
{
    const char *vals[NPARAMS];
    int lens[NPARAMS], fmts[NPARAMS];
    int np = insert_params(bw, rows, n, 0, vals, lens, fmts);
    bw->stats.statements++;
    return PQexecPrepared(bw->conn, "hl_rows", np, vals, lens, fmts, 1);
}

/* Inside an open transaction: inserts rows[0..n) under a savepoint; on a data error splits the
 * range in two and recurses, so k refused rows among n cost O(k log n) statements and every
 * other row is still inserted, in order. Refused single rows are marked PG_REJECTED. */
static int bisect(hl_batch_writer_t *bw, hl_row_t **rows, size_t n)
{
    if (n == 0) return 0;
    int rc = exec(bw, "SAVEPOINT hl_bisect");
    if (rc) return rc;
    bw->stats.bisect_steps++;
    PGresult *res = run_insert(bw, rows, n);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        mark_results(bw, rows, n, res);
        PQclear(res);
        return exec(bw, "RELEASE SAVEPOINT hl_bisect");
    }
    rc = pg_fail(bw, res, "insert");
    PQclear(res);
    if (rc != HL_EPG) return rc;
    if (n == 1) {
        rows[0]->status = HL_REC_PG_REJECTED;
        (void)hl_strlcpy(rows[0]->detail, bw->err, sizeof(rows[0]->detail));
    }
    rc = exec(bw, "ROLLBACK TO SAVEPOINT hl_bisect");
    if (rc == 0) rc = exec(bw, "RELEASE SAVEPOINT hl_bisect");
    if (rc || n == 1) return rc;
    rc = bisect(bw, rows, n / 2);
    return rc ? rc : bisect(bw, rows + n / 2, n - n / 2);
}

/* Collects rows that will not be stored and have not reached the DLQ, and hands them over. */
static int dead_letter_pending(hl_batch_writer_t *bw, hl_row_t **rows, size_t n,
                               hl_bw_dead_letter_fn fn, void *arg)
{
    size_t nd = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i]->status != HL_REC_OK && !rows[i]->dlq_sent) bw->dead[nd++] = rows[i];
    if (nd == 0) return 0;
    if (fn(arg, bw->dead, nd) != 0) {
        snprintf(bw->err, sizeof(bw->err), "dead-letter queue did not acknowledge");
        return HL_EAGAIN;
    }
    return 0;
}

static size_t collect_good(hl_batch_writer_t *bw, hl_row_t **rows, size_t n)
{
    size_t ng = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i]->status == HL_REC_OK && !rows[i]->dup_in_batch) bw->good[ng++] = rows[i];
    return ng;
}

/* The slow path after the one-statement attempt hit a data error. */
static int write_isolating(hl_batch_writer_t *bw, hl_row_t **rows, size_t n,
                           hl_bw_dead_letter_fn dead_letter, void *dl_arg)
{
    size_t ng = collect_good(bw, rows, n);
    int rc = exec(bw, "BEGIN");
    if (rc == 0) rc = bisect(bw, bw->good, ng);
    /* A refused record no longer hides later copies of its key in this batch: store the first
     * of those instead, and again if that one is refused too. */
    while (rc == 0) {
        size_t nr = 0, nn = 0;
        for (size_t i = 0; i < n; i++)
            if (rows[i]->status == HL_REC_OK && rows[i]->dup_in_batch) bw->scratch[nr++] = rows[i];
        hl_rows_mark_batch_duplicates(rows, n);
        for (size_t i = 0; i < nr; i++)
            if (!bw->scratch[i]->dup_in_batch) bw->scratch[nn++] = bw->scratch[i];
        if (nn == 0) break;
        rc = bisect(bw, bw->scratch, nn);
    }
    if (rc == 0) rc = dead_letter_pending(bw, rows, n, dead_letter, dl_arg);
    if (rc == 0) {
        const char *vals[5] = {bw->group, bw->topic, bw->parts.p, bw->nexts.p, bw->lins.p};
        int lens[5] = {(int)strlen(bw->group), (int)strlen(bw->topic), (int)bw->parts.len,
                       (int)bw->nexts.len, (int)bw->lins.len};
        int fmts[5] = {1, 1, 1, 1, 1};
        PGresult *res = PQexecPrepared(bw->conn, "hl_offsets", 5, vals, lens, fmts, 0);
        rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pg_fail(bw, res, "offsets");
        PQclear(res);
    }
    if (rc == 0) rc = exec(bw, "COMMIT");
    if (rc != 0 && bw->conn) (void)exec(bw, "ROLLBACK");
    /* Whatever went wrong inside the transaction left nothing behind: retry it whole. */
    return rc == 0 ? 0 : HL_EAGAIN;
}

/* After a retried batch committed: a row reported as duplicate may in fact have been inserted
 * by the attempt whose COMMIT was lost with the connection. Its stored (partition, offset) is
 * then its own, so it is marked inserted with that row id. Best effort: on failure the rows
 * stay marked duplicate (the table is right either way; only the lineage flag differs). */
static void recheck_duplicates(hl_batch_writer_t *bw, hl_row_t **good, size_t ng)
{
    size_t nd = 0;
    for (size_t i = 0; i < ng; i++)
        if (good[i]->duplicate) bw->dead[nd++] = good[i];
    if (nd == 0) return;
    array_begin(&bw->col[0], OID_TEXT, nd);
    array_begin(&bw->col[1], OID_TEXT, nd);
    array_begin(&bw->col[2], OID_TEXT, nd);
    for (size_t i = 0; i < nd; i++) {
        elem_bytes(&bw->col[0], bw->dead[i]->source, strlen(bw->dead[i]->source));
        elem_bytes(&bw->col[1], bw->dead[i]->message_id, bw->dead[i]->message_id_len);
        elem_bytes(&bw->col[2], bw->dead[i]->event_type, strlen(bw->dead[i]->event_type));
    }
    const char *vals[3] = {bw->col[0].p, bw->col[1].p, bw->col[2].p};
    int lens[3] = {(int)bw->col[0].len, (int)bw->col[1].len, (int)bw->col[2].len};
    int fmts[3] = {1, 1, 1};
    PGresult *res = PQexecPrepared(bw->conn, "hl_lookup", 3, vals, lens, fmts, 1);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        memcpy(bw->by_pos, good, ng * sizeof(*good));
        qsort(bw->by_pos, ng, sizeof(*good), pos_cmp);
        for (int r = 0; r < PQntuples(res); r++) {
            hl_row_t key, *kp = &key;
            key.partition = (int32_t)get32(PQgetvalue(res, r, 1));
            key.offset = get64(PQgetvalue(res, r, 2));
            hl_row_t **hit = bsearch(&kp, bw->by_pos, ng, sizeof(*good), pos_cmp);
            if (hit && (*hit)->duplicate) {
                (*hit)->duplicate = 0;
                (*hit)->row_id = get64(PQgetvalue(res, r, 0));
            }
        }
    } else {
        (void)pg_fail(bw, res, "recheck duplicates");
    }
    PQclear(res);
}

/* Fills col[0..2] with the (source, message id, event type) keys of rows[0..n). */
static void build_keys(hl_batch_writer_t *bw, hl_row_t **rows, size_t n);

/* The COPY way, step one: asks which keys of good[0..ng) are stored already (those are marked
 * duplicate) and takes an id from the sequence for each of the others (marked inserted with
 * it; *nnew counts them). A key stored by a concurrent writer after this makes the COPY fail
 * with 23505, and the batch goes the ON CONFLICT way then. */
static int probe(hl_batch_writer_t *bw, hl_row_t **good, size_t ng, size_t *nnew)
{
    *nnew = 0;
    if (ng == 0) return 0;
    build_keys(bw, good, ng);
    array_begin(&bw->col[3], OID_INT4, ng);
    for (size_t i = 0; i < ng; i++) {
        put32(&bw->col[3], 4);
        put32(&bw->col[3], (uint32_t)(i + 1));
    }
    const char *vals[4] = {bw->col[0].p, bw->col[1].p, bw->col[2].p, bw->col[3].p};
    int lens[4] = {(int)bw->col[0].len, (int)bw->col[1].len, (int)bw->col[2].len,
                   (int)bw->col[3].len};
    int fmts[4] = {1, 1, 1, 1};
    bw->stats.statements++;
    PGresult *res = PQexecPrepared(bw->conn, "hl_probe", 4, vals, lens, fmts, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) > ng) {
        int rc = pg_fail(bw, res, "probe keys");
        PQclear(res);
        return rc == HL_EPG ? HL_EPG : HL_EAGAIN;
    }
    for (size_t i = 0; i < ng; i++) {
        good[i]->duplicate = 1;
        good[i]->row_id = -1;
    }
    for (int t = 0; t < PQntuples(res); t++) {
        int64_t i = (int64_t)get32(PQgetvalue(res, t, 0)) - 1;
        if (i < 0 || (size_t)i >= ng) continue;
        good[i]->duplicate = 0;
        good[i]->row_id = get64(PQgetvalue(res, t, 1));
        (*nnew)++;
    }
    PQclear(res);
    return 0;
}

static void put16(hl_buf_t *b, uint16_t v)
{
    v = htons(v);
    hl_buf_put(b, &v, 2);
}

/* Appends printf-style text to b. */
static void __attribute__((format(printf, 2, 3))) put_text(hl_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    hl_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    (void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* The rows marked inserted by probe() in COPY's binary format (header, one tuple of twelve fields
 * each, trailer): the same wire encodings as the array elements. */
static void build_copy(hl_batch_writer_t *bw, hl_row_t **good, size_t ng)
{
    static const char sig[11] = "PGCOPY\n\377\r\n";
    static const char jsonb_version = 1;
    hl_buf_t *b = &bw->copy;
    b->len = 0;
    hl_buf_put(b, sig, sizeof(sig));
    put32(b, 0); /* flags */
    put32(b, 0); /* header extension */
    for (size_t i = 0; i < ng; i++) {
        const hl_row_t *r = good[i];
        if (r->duplicate) continue;
        put16(b, 12);
        put32(b, 8);
        put64(b, r->row_id);
        elem_bytes(b, r->source, strlen(r->source));
        elem_bytes(b, r->message_id, r->message_id_len);
        elem_bytes(b, r->event_type, strlen(r->event_type));
        elem_uuid(b, r->request_id);
        put32(b, 8);
        put64(b, r->received_us - PG_EPOCH_US);
        put32(b, 4);
        put32(b, (uint32_t)r->partition);
        put32(b, 8);
        put64(b, r->offset);
        put32(b, (uint32_t)(r->payload_len + 1));
        hl_buf_put(b, &jsonb_version, 1);
        hl_buf_put(b, r->payload, r->payload_len);
        put_content(b, b, b, r);
    }
    put16(b, 0xffff); /* trailer: -1 */
}

/* The COPY way, step two: BEGIN, COPY of the new rows, the offsets upsert and COMMIT as one
 * simple query; waits until the server takes the data, sends it and returns without waiting
 * for the commit (hl_bw_finish collects it). */
static int send_copy(hl_batch_writer_t *bw, hl_row_t **good, size_t ng)
{
    build_copy(bw, good, ng);
    hl_buf_t *q = &bw->sql;
    q->len = 0;
    hl_buf_put(q, SQL_COPY, sizeof(SQL_COPY) - 1);
    hl_buf_put(q, SQL_COPY_OFFSETS, sizeof(SQL_COPY_OFFSETS) - 1);
    /* The partitions of the batch with their next and lineage offsets, from build_offsets. */
    for (size_t k = 0; k < bw->nparts; k++)
        put_text(q, "%s(%s, %s, %" PRId32 ", %" PRId64 ", %" PRId64 ")", k ? ", " : "",
                 bw->group_lit, bw->topic_lit, bw->part_ids[k], bw->part_next[k],
                 bw->part_first[k]);
    hl_buf_put(q, SQL_COPY_END, sizeof(SQL_COPY_END));
    bw->stats.statements++;
    if (!PQsendQuery(bw->conn, q->p)) {
        (void)pg_fail(bw, NULL, "send copy");
        return HL_EAGAIN;
    }
    PGresult *res;
    ExecStatusType st = PGRES_FATAL_ERROR;
    while ((res = PQgetResult(bw->conn)) != NULL) {
        st = PQresultStatus(res);
        if (st == PGRES_COPY_IN) {
            PQclear(res);
            break;
        }
        if (st != PGRES_COMMAND_OK) {
            int rc = pg_fail(bw, res, "begin copy");
            PQclear(res);
            while (bw->conn && (res = PQgetResult(bw->conn)) != NULL) PQclear(res);
            if (bw->conn && PQtransactionStatus(bw->conn) != PQTRANS_IDLE) (void)exec(bw, "ROLLBACK");
            return rc == HL_EPG ? HL_EPG : HL_EAGAIN;
        }
        PQclear(res);
    }
    if (st != PGRES_COPY_IN || PQputCopyData(bw->conn, bw->copy.p, (int)bw->copy.len) != 1 ||
        PQputCopyEnd(bw->conn, NULL) != 1) {
        (void)pg_fail(bw, NULL, "copy");
        disconnect(bw);
        return HL_EAGAIN;
    }
    return 0;
}

int hl_bw_send(hl_batch_writer_t *bw, hl_row_t **rows, size_t n, hl_bw_dead_letter_fn dead_letter,
               void *dl_arg)
{
    bw->err[0] = '\0';
    if (bw->sent_rows) return HL_ESTATE;
    if (n > bw->max_rows) return HL_EINVAL;
    int rc = connect_synced(bw);
    if (rc) return rc;
    build_offsets(bw, rows, n);
    /* Records refused before Postgres reach the DLQ first: the statement below commits offsets
     * past them. */
    rc = dead_letter_pending(bw, rows, n, dead_letter, dl_arg);
    if (rc) return rc;
    hl_rows_mark_batch_duplicates(rows, n);
    size_t ng = collect_good(bw, rows, n);
    size_t nnew = 0;
    rc = probe(bw, bw->good, ng, &nnew);
    if (rc) return rc;
    bw->sent_copy = nnew > 0;
    if (bw->sent_copy) {
        rc = send_copy(bw, bw->good, ng);
        if (rc) return rc;
    } else {
        /* Nothing new to insert: the one-statement way stores the offsets. */
        const char *vals[NPARAMS];
        int lens[NPARAMS], fmts[NPARAMS];
        int np = insert_params(bw, bw->good, ng, 1, vals, lens, fmts);
        bw->stats.statements++;
        if (!PQsendQueryPrepared(bw->conn, "hl_batch_fast", np, vals, lens, fmts, 1)) {
            (void)pg_fail(bw, NULL, "send batch");
            return HL_EAGAIN;
        }
    }
    bw->sent_rows = rows;
    bw->sent_n = n;
    bw->sent_good = ng;
    bw->sent_dl = dead_letter;
    bw->sent_dl_arg = dl_arg;
    return 0;
}

bool hl_bw_pending(const hl_batch_writer_t *bw) { return bw->sent_rows != NULL; }

bool hl_bw_ready(hl_batch_writer_t *bw)
{
    if (!bw->sent_rows || !bw->conn) return true;
    if (!PQconsumeInput(bw->conn)) return true; /* the error surfaces in hl_bw_finish */
    return !PQisBusy(bw->conn);
}

/* Waits for every result of the statement in flight; returns the first one (owned by the
 * caller; NULL when the connection gave none). */
static PGresult *collect(hl_batch_writer_t *bw)
{
    PGresult *first = NULL, *r;
    while (bw->conn && (r = PQgetResult(bw->conn)) != NULL) {
        if (!first) first = r;
        else PQclear(r);
    }
    return first;
}

static int write_isolating(hl_batch_writer_t *bw, hl_row_t **rows, size_t n,
                           hl_bw_dead_letter_fn dead_letter, void *dl_arg);

/* Collects the results of the COPY way. The rows were marked by probe(); if anything failed
 * the transaction is rolled back and the batch goes the statement way: ON CONFLICT after a
 * 23505 (a concurrent writer), isolation of the refused rows after a data error. */
static int finish_copy(hl_batch_writer_t *bw, hl_row_t **rows, size_t n, size_t ng)
{
    PGresult *res, *bad = NULL;
    while (bw->conn && (res = PQgetResult(bw->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (!bad && st != PGRES_COMMAND_OK) bad = res;
        else PQclear(res);
    }
    if (!bw->conn) return HL_EAGAIN;
    if (!bad) return 0;
    const char *state = PQresultErrorField(bad, PG_DIAG_SQLSTATE);
    bool unique = state && strcmp(state, "23505") == 0;
    int rc = pg_fail(bw, bad, "copy batch");
    PQclear(bad);
    if (bw->conn && PQtransactionStatus(bw->conn) != PQTRANS_IDLE) (void)exec(bw, "ROLLBACK");
    if (!bw->conn) return HL_EAGAIN;
    if (unique) {
        hl_info("a concurrent writer stored some keys of the batch first (%s); writing it with"
                " ON CONFLICT", bw->err);
        const char *vals[NPARAMS];
        int lens[NPARAMS], fmts[NPARAMS];
        int np = insert_params(bw, bw->good, ng, 1, vals, lens, fmts);
        bw->stats.statements++;
        res = PQexecPrepared(bw->conn, "hl_batch", np, vals, lens, fmts, 1);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            mark_results(bw, bw->good, ng, res);
            PQclear(res);
            return 0;
        }
        rc = pg_fail(bw, res, "batch");
        PQclear(res);
    }
    if (rc != HL_EPG) return HL_EAGAIN;
    hl_warn("batch refused (%s); isolating the refused rows", bw->err);
    return write_isolating(bw, rows, n, bw->sent_dl, bw->sent_dl_arg);
}

int hl_bw_finish(hl_batch_writer_t *bw, int64_t *committed_us)
{
    if (!bw->sent_rows) return HL_ESTATE;
    hl_row_t **rows = bw->sent_rows;
    size_t n = bw->sent_n, ng = bw->sent_good;
    bw->sent_rows = NULL;
    if (bw->sent_copy) {
        int rc = finish_copy(bw, rows, n, ng);
        if (rc == 0) *committed_us = hl_now_us();
        return rc;
    }
    PGresult *res = collect(bw);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "23505") == 0 && bw->conn) {
        /* Another writer inserted one of these keys meanwhile: the parameters built for the
         * send are still in place, run them through ON CONFLICT instead. */
        PQclear(res);
        const char *vals[NPARAMS];
        int lens[NPARAMS], fmts[NPARAMS];
        int np = insert_params(bw, bw->good, ng, 1, vals, lens, fmts);
        bw->stats.statements++;
        res = PQexecPrepared(bw->conn, "hl_batch", np, vals, lens, fmts, 1);
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        *committed_us = hl_now_us();
        mark_results(bw, bw->good, ng, res);
        PQclear(res);
        return 0;
    }
    int rc = pg_fail(bw, res, "batch");
    PQclear(res);
    if (rc != HL_EPG) return HL_EAGAIN;
    hl_warn("batch refused (%s); isolating the refused rows", bw->err);
    rc = write_isolating(bw, rows, n, bw->sent_dl, bw->sent_dl_arg);
    if (rc == 0) *committed_us = hl_now_us();
    return rc;
}

int hl_bw_write(hl_batch_writer_t *bw, hl_row_t **rows, size_t n, hl_bw_dead_letter_fn dead_letter,
                void *dl_arg, int64_t *committed_us)
{
    int rc = hl_bw_send(bw, rows, n, dead_letter, dl_arg);
    if (rc == 0) rc = hl_bw_finish(bw, committed_us);
    if (rc == 0 && bw->conn) recheck_duplicates(bw, bw->good, collect_good(bw, rows, n));
    return rc;
}

/* Fills col[0..2] with the (source, message id, event type) keys of rows[0..n). */
static void build_keys(hl_batch_writer_t *bw, hl_row_t **rows, size_t n)
{
    for (int c = 0; c < 3; c++) array_begin(&bw->col[c], OID_TEXT, n);
    for (size_t i = 0; i < n; i++) {
        elem_bytes(&bw->col[0], rows[i]->source, strlen(rows[i]->source));
        elem_bytes(&bw->col[1], rows[i]->message_id, rows[i]->message_id_len);
        elem_bytes(&bw->col[2], rows[i]->event_type, strlen(rows[i]->event_type));
    }
}

/* Marks one recovered record from the row Postgres holds for its key. The first delivery of a
 * key in a partition is the one stored unless Postgres refused it, so a stored row at a later
 * offset of the same partition means this record was refused and dead-lettered. */
static void mark_recovered(hl_row_t *r, int64_t id, int32_t part, int64_t off, int64_t at_us)
{
    if (part == r->partition && off == r->offset) {
        r->row_id = id;
        r->committed_us = at_us;
    } else if (part == r->partition && off > r->offset) {
        r->status = HL_REC_PG_REJECTED;
        (void)hl_strlcpy(r->detail, "refused by Postgres (found again after a restart)",
                         sizeof(r->detail));
    } else {
        r->duplicate = 1;
    }
}

int hl_bw_recover(hl_batch_writer_t *bw, hl_row_t **rows, size_t n)
{
    bw->err[0] = '\0';
    if (bw->sent_rows) return HL_ESTATE;
    if (n > bw->max_rows) return HL_EINVAL;
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        rows[i]->row_id = -1;
        rows[i]->duplicate = 0;
        rows[i]->committed_us = 0;
        if (rows[i]->status == HL_REC_OK) bw->scratch[nk++] = rows[i];
    }
    if (nk == 0) return 0;
    /* Recovery trusts next_offset as loaded: a new connection may reach a server that lacks
     * commits the loaded value counts. */
    int rc = connect_synced(bw);
    if (rc) return rc;
    build_keys(bw, bw->scratch, nk);
    const char *vals[3] = {bw->col[0].p, bw->col[1].p, bw->col[2].p};
    int lens[3] = {(int)bw->col[0].len, (int)bw->col[1].len, (int)bw->col[2].len};
    int fmts[3] = {1, 1, 1};
    PGresult *res = PQexecPrepared(bw->conn, "hl_recover", 3, vals, lens, fmts, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        (void)pg_fail(bw, res, "recover lineage");
        PQclear(res);
        return HL_EAGAIN;
    }
    bool *found = hl_xcalloc(nk, sizeof(*found));
    for (int t = 0; t < PQntuples(res); t++) {
        int64_t i = get64(PQgetvalue(res, t, 0)) - 1;
        if (i < 0 || (size_t)i >= nk) continue;
        found[i] = true;
        mark_recovered(bw->scratch[i], get64(PQgetvalue(res, t, 1)),
                       (int32_t)get32(PQgetvalue(res, t, 2)), get64(PQgetvalue(res, t, 3)),
                       get64(PQgetvalue(res, t, 4)) + PG_EPOCH_US);
    }
    PQclear(res);
    /* Every record here was committed (next_offset is past it): without a row of its key, it
     * was refused and dead-lettered. */
    for (size_t i = 0; i < nk; i++)
        if (!found[i]) {
            bw->scratch[i]->status = HL_REC_PG_REJECTED;
            (void)hl_strlcpy(bw->scratch[i]->detail, "not stored (found again after a restart)",
                             sizeof(bw->scratch[i]->detail));
        }
    free(found);
    return 0;
}
