/* The batch writer's base: its life, connecting (with every statement prepared), error
 * handling with failover in mind, loading and moving the stored offsets, and the steps every
 * way of a batch shares (choosing its rows, reading what Postgres returned). The batch itself
 * goes through batch_send.c. */
#include "batch_writer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch_sql.h"

pst_batch_writer_t *pst_bw_new(const hl_pg_config_t *pg, const char *group, const char *topic,
                               size_t max_rows)
{
    pst_batch_writer_t *bw = hl_xcalloc(1, sizeof(*bw));
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

void pst_bw_set_lineage_fn(pst_batch_writer_t *bw, pst_bw_lineage_fn fn, void *arg)
{
    bw->lineage_fn = fn;
    bw->lineage_arg = arg;
}

void pst_bw_disconnect(pst_batch_writer_t *bw)
{
    if (bw->conn) PQfinish(bw->conn);
    bw->conn = NULL;
    PQfreemem(bw->group_lit);
    PQfreemem(bw->topic_lit);
    bw->group_lit = bw->topic_lit = NULL;
}

void pst_bw_reset(pst_batch_writer_t *bw)
{
    /* A statement abandoned in flight may still commit; dropping the connection is the only
     * way to stop waiting for it, and its outcome is recorded in consumer_offsets anyway. */
    if (bw->sent_rows) pst_bw_disconnect(bw);
    bw->sent_rows = NULL;
}

void pst_bw_free(pst_batch_writer_t *bw)
{
    if (!bw) return;
    pst_bw_disconnect(bw);
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

const char *pst_bw_last_error(const pst_batch_writer_t *bw)
{
    return bw->err;
}

void pst_bw_stats(const pst_batch_writer_t *bw, pst_bw_stats_t *out)
{
    *out = bw->stats;
}

int pst_bw_fail(pst_batch_writer_t *bw, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    (void)hl_pg_error(bw->conn, res, what, bw->err, sizeof(bw->err));
    bool transient = hl_pg_transient(bw->conn, res) || PQstatus(bw->conn) != CONNECTION_OK;
    /* A statement the server cannot even plan (a missing table, a revoked right) is no fault of
     * any one row, and an operator can fix it: it is retried like an outage, never skipped. */
    if (state && (strncmp(state, "42", 2) == 0 || strncmp(state, "3F", 2) == 0)) transient = true;
    /* A broken connection, or a read-only server (25006: a standby, or a primary demoted or
     * set read-only), is dropped: the next attempt connects again through the conninfo's host
     * list, which with target_session_attrs=read-write reaches the new primary. The failed
     * transaction stored nothing, and its rows are not refused (25006 is transient): the batch
     * is retried whole. */
    if (hl_pg_reconnect_needed(bw->conn, res)) pst_bw_disconnect(bw);
    return transient ? HL_EAGAIN : HL_EPG;
}

static int prepare(pst_batch_writer_t *bw, const char *name, const char *sql)
{
    PGresult *res = PQprepare(bw->conn, name, sql, 0, NULL);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pst_bw_fail(bw, res, name);
    PQclear(res);
    return rc;
}

static int prepare_all(pst_batch_writer_t *bw)
{
    for (const pst_bw_statement_t *s = pst_bw_statements; s->name; s++)
        if (prepare(bw, s->name, s->sql) != 0) return -1;
    return 0;
}

int pst_bw_connect(pst_batch_writer_t *bw)
{
    if (bw->conn && PQstatus(bw->conn) == CONNECTION_OK) return 0;
    pst_bw_disconnect(bw);
    if (hl_pg_connect(bw->pg, 0, &bw->conn, bw->err, sizeof(bw->err)) != 0) {
        bw->conn = NULL;
        return HL_EAGAIN;
    }
    /* Binary text parameters are converted from the client encoding: make it the one Kafka
     * records are checked against. */
    if (PQsetClientEncoding(bw->conn, "UTF8") != 0 || prepare_all(bw) ||
        !(bw->group_lit = PQescapeLiteral(bw->conn, bw->group, strlen(bw->group))) ||
        !(bw->topic_lit = PQescapeLiteral(bw->conn, bw->topic, strlen(bw->topic)))) {
        if (!bw->err[0]) (void)hl_pg_error(bw->conn, NULL, "connect", bw->err, sizeof(bw->err));
        pst_bw_disconnect(bw);
        return HL_EAGAIN;
    }
    bw->generation++;
    return 0;
}

bool pst_bw_stale(const pst_batch_writer_t *bw)
{
    return bw->generation != bw->synced;
}

int pst_bw_connect_synced(pst_batch_writer_t *bw)
{
    if (pst_bw_connect(bw) != 0) return HL_EAGAIN;
    if (!pst_bw_stale(bw)) return 0;
    snprintf(bw->err, sizeof(bw->err),
             "new Postgres connection: the offsets must be loaded again before writing");
    return HL_ESTATE;
}

int pst_bw_exec(pst_batch_writer_t *bw, const char *sql)
{
    PGresult *res = PQexec(bw->conn, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pst_bw_fail(bw, res, sql);
    PQclear(res);
    return rc;
}

int pst_bw_load_offsets(pst_batch_writer_t *bw, pst_bw_offsets_t *offs, size_t n)
{
    if (bw->sent_rows) return HL_ESTATE;
    if (pst_bw_connect(bw) != 0) return HL_EAGAIN;
    for (size_t i = 0; i < n; i++) offs[i].next = offs[i].lineage = offs[i].updated_us = -1;
    pst_bw_encode_partitions(bw, offs, n);
    const char *vals[3] = {bw->group, bw->topic, bw->parts.p};
    int lens[3] = {(int)strlen(bw->group), (int)strlen(bw->topic), (int)bw->parts.len};
    int fmts[3] = {1, 1, 1};
    PGresult *res = PQexecPrepared(bw->conn, "hl_load", 3, vals, lens, fmts, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = pst_bw_fail(bw, res, "load offsets");
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

int pst_bw_store_lineage(pst_batch_writer_t *bw, const pst_bw_offsets_t *offs, size_t n)
{
    if (bw->sent_rows) return HL_ESTATE;
    if (n == 0) return 0;
    int rc = pst_bw_connect_synced(bw);
    if (rc) return rc;
    pst_bw_encode_partitions(bw, offs, n);
    hl_pg_array_begin(&bw->lins, HL_PG_OID_INT8, n);
    for (size_t i = 0; i < n; i++) {
        hl_pg_put32(&bw->lins, 8);
        hl_pg_put64(&bw->lins, offs[i].lineage);
    }
    const char *vals[4] = {bw->group, bw->topic, bw->parts.p, bw->lins.p};
    int lens[4] = {(int)strlen(bw->group), (int)strlen(bw->topic), (int)bw->parts.len,
                   (int)bw->lins.len};
    int fmts[4] = {1, 1, 1, 1};
    PGresult *res = PQexecPrepared(bw->conn, "pst_lineage", 4, vals, lens, fmts, 0);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pst_bw_fail(bw, res, "store lineage offset");
    PQclear(res);
    return rc == 0 ? 0 : HL_EAGAIN;
}

int pst_bw_pos_cmp(const void *a, const void *b)
{
    const pst_row_t *x = *(const pst_row_t *const *)a, *y = *(const pst_row_t *const *)b;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

void pst_bw_mark_results(pst_batch_writer_t *bw, pst_row_t **rows, size_t n, PGresult *res)
{
    memcpy(bw->by_pos, rows, n * sizeof(*rows));
    qsort(bw->by_pos, n, sizeof(*rows), pst_bw_pos_cmp);
    for (size_t i = 0; i < n; i++) {
        rows[i]->duplicate = 1;
        rows[i]->row_id = -1;
    }
    for (int r = 0; r < PQntuples(res); r++) {
        pst_row_t key, *kp = &key;
        key.partition = (int32_t)hl_pg_get32(PQgetvalue(res, r, 1));
        key.offset = hl_pg_get64(PQgetvalue(res, r, 2));
        pst_row_t **hit = bsearch(&kp, bw->by_pos, n, sizeof(*rows), pst_bw_pos_cmp);
        if (!hit) continue;
        (*hit)->duplicate = 0;
        (*hit)->row_id = hl_pg_get64(PQgetvalue(res, r, 0));
    }
}

int pst_bw_dead_letter_pending(pst_batch_writer_t *bw, pst_row_t **rows, size_t n,
                               pst_bw_dead_letter_fn fn, void *arg)
{
    size_t nd = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i]->status != PST_REC_OK && !rows[i]->dlq_sent) bw->dead[nd++] = rows[i];
    if (nd == 0) return 0;
    if (fn(arg, bw->dead, nd) != 0) {
        snprintf(bw->err, sizeof(bw->err), "dead-letter queue did not acknowledge");
        return HL_EAGAIN;
    }
    return 0;
}

size_t pst_bw_collect_good(pst_batch_writer_t *bw, pst_row_t **rows, size_t n)
{
    size_t ng = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i]->status == PST_REC_OK && !rows[i]->dup_in_batch) bw->good[ng++] = rows[i];
    return ng;
}
