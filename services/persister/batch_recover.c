/* Recovery: isolating the rows Postgres refuses (bisection under savepoints), telling a lost
 * answer from a duplicate after a retry, and finding out after a restart or a failover what
 * became of records already committed. */
#include "batch_writer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs a row insert for rows[0..n) and waits for its result (owned by the caller). */
static PGresult *run_insert(pst_batch_writer_t *bw, pst_row_t **rows, size_t n)
{
    const char *vals[NPARAMS];
    int lens[NPARAMS], fmts[NPARAMS];
    int np = pst_bw_insert_params(bw, rows, n, 0, vals, lens, fmts);
    bw->stats.statements++;
    return PQexecPrepared(bw->conn, "hl_rows", np, vals, lens, fmts, 1);
}

/* Inside an open transaction: inserts rows[0..n) under a savepoint; on a data error splits the
 * range in two and recurses, so k refused rows among n cost O(k log n) statements and every
 * other row is still inserted, in order. Refused single rows are marked PG_REJECTED. */
static int bisect(pst_batch_writer_t *bw, pst_row_t **rows, size_t n)
{
    if (n == 0) return 0;
    int rc = pst_bw_exec(bw, "SAVEPOINT hl_bisect");
    if (rc) return rc;
    bw->stats.bisect_steps++;
    PGresult *res = run_insert(bw, rows, n);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        pst_bw_mark_results(bw, rows, n, res);
        PQclear(res);
        return pst_bw_exec(bw, "RELEASE SAVEPOINT hl_bisect");
    }
    rc = pst_bw_fail(bw, res, "insert");
    PQclear(res);
    if (rc != HL_EPG) return rc;
    if (n == 1) {
        rows[0]->status = PST_REC_PG_REJECTED;
        (void)hl_strlcpy(rows[0]->detail, bw->err, sizeof(rows[0]->detail));
    }
    rc = pst_bw_exec(bw, "ROLLBACK TO SAVEPOINT hl_bisect");
    if (rc == 0) rc = pst_bw_exec(bw, "RELEASE SAVEPOINT hl_bisect");
    if (rc || n == 1) return rc;
    rc = bisect(bw, rows, n / 2);
    return rc ? rc : bisect(bw, rows + n / 2, n - n / 2);
}

/* The slow path after the one-statement attempt hit a data error. */
int pst_bw_write_isolating(pst_batch_writer_t *bw, pst_row_t **rows, size_t n,
                           pst_bw_dead_letter_fn dead_letter, void *dl_arg)
{
    size_t ng = pst_bw_collect_good(bw, rows, n);
    int rc = pst_bw_exec(bw, "BEGIN");
    if (rc == 0) rc = bisect(bw, bw->good, ng);
    /* A refused record no longer hides later copies of its key in this batch: store the first
     * of those instead, and again if that one is refused too. */
    while (rc == 0) {
        size_t nr = 0, nn = 0;
        for (size_t i = 0; i < n; i++)
            if (rows[i]->status == PST_REC_OK && rows[i]->dup_in_batch) bw->scratch[nr++] = rows[i];
        pst_rows_mark_batch_duplicates(rows, n);
        for (size_t i = 0; i < nr; i++)
            if (!bw->scratch[i]->dup_in_batch) bw->scratch[nn++] = bw->scratch[i];
        if (nn == 0) break;
        rc = bisect(bw, bw->scratch, nn);
    }
    if (rc == 0) rc = pst_bw_dead_letter_pending(bw, rows, n, dead_letter, dl_arg);
    if (rc == 0) {
        /* The batch's partitions, next and lineage offsets, from pst_bw_encode_offsets. */
        PGresult *res = hl_pg_offsets_upsert(bw->conn, bw->group, bw->topic, bw->part_ids,
                                             bw->part_next, bw->part_first, bw->nparts);
        rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : pst_bw_fail(bw, res, "offsets");
        PQclear(res);
    }
    if (rc == 0) rc = pst_bw_exec(bw, "COMMIT");
    if (rc != 0 && bw->conn) (void)pst_bw_exec(bw, "ROLLBACK");
    /* Whatever went wrong inside the transaction left nothing behind: retry it whole. */
    return rc == 0 ? 0 : HL_EAGAIN;
}

/* After a retried batch committed: a row reported as duplicate may in fact have been inserted
 * by the attempt whose COMMIT was lost with the connection. Its stored (partition, offset) is
 * then its own, so it is marked inserted with that row id. Best effort: on failure the rows
 * stay marked duplicate (the table is right either way; only the lineage flag differs). */
void pst_bw_recheck_duplicates(pst_batch_writer_t *bw, pst_row_t **good, size_t ng)
{
    size_t nd = 0;
    for (size_t i = 0; i < ng; i++)
        if (good[i]->duplicate) bw->dead[nd++] = good[i];
    if (nd == 0) return;
    hl_pg_array_begin(&bw->col[0], HL_PG_OID_TEXT, nd);
    hl_pg_array_begin(&bw->col[1], HL_PG_OID_TEXT, nd);
    hl_pg_array_begin(&bw->col[2], HL_PG_OID_TEXT, nd);
    for (size_t i = 0; i < nd; i++) {
        hl_pg_enc_bytea(&bw->col[0], bw->dead[i]->source, strlen(bw->dead[i]->source));
        hl_pg_enc_bytea(&bw->col[1], bw->dead[i]->message_id, bw->dead[i]->message_id_len);
        hl_pg_enc_bytea(&bw->col[2], bw->dead[i]->event_type, strlen(bw->dead[i]->event_type));
    }
    const char *vals[3] = {bw->col[0].p, bw->col[1].p, bw->col[2].p};
    int lens[3] = {(int)bw->col[0].len, (int)bw->col[1].len, (int)bw->col[2].len};
    int fmts[3] = {1, 1, 1};
    PGresult *res = PQexecPrepared(bw->conn, "hl_lookup", 3, vals, lens, fmts, 1);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        memcpy(bw->by_pos, good, ng * sizeof(*good));
        qsort(bw->by_pos, ng, sizeof(*good), pst_bw_pos_cmp);
        for (int r = 0; r < PQntuples(res); r++) {
            pst_row_t key, *kp = &key;
            key.partition = (int32_t)hl_pg_get32(PQgetvalue(res, r, 1));
            key.offset = hl_pg_get64(PQgetvalue(res, r, 2));
            pst_row_t **hit = bsearch(&kp, bw->by_pos, ng, sizeof(*good), pst_bw_pos_cmp);
            if (hit && (*hit)->duplicate) {
                (*hit)->duplicate = 0;
                (*hit)->row_id = hl_pg_get64(PQgetvalue(res, r, 0));
            }
        }
    } else {
        (void)pst_bw_fail(bw, res, "recheck duplicates");
    }
    PQclear(res);
}

/* Marks one recovered record from the row Postgres holds for its key. The first delivery of a
 * key in a partition is the one stored unless Postgres refused it, so a stored row at a later
 * offset of the same partition means this record was refused and dead-lettered. */
void pst_bw_mark_recovered(pst_row_t *r, int64_t id, int32_t part, int64_t off, int64_t at_us)
{
    if (part == r->partition && off == r->offset) {
        r->row_id = id;
        r->committed_us = at_us;
    } else if (part == r->partition && off > r->offset) {
        r->status = PST_REC_PG_REJECTED;
        (void)hl_strlcpy(r->detail, "refused by Postgres (found again after a restart)",
                         sizeof(r->detail));
    } else {
        r->duplicate = 1;
    }
}

int pst_bw_recover(pst_batch_writer_t *bw, pst_row_t **rows, size_t n)
{
    bw->err[0] = '\0';
    if (bw->sent_rows) return HL_ESTATE;
    if (n > bw->max_rows) return HL_EINVAL;
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        rows[i]->row_id = -1;
        rows[i]->duplicate = 0;
        rows[i]->committed_us = 0;
        if (rows[i]->status == PST_REC_OK) bw->scratch[nk++] = rows[i];
    }
    if (nk == 0) return 0;
    /* Recovery trusts next_offset as loaded: a new connection may reach a server that lacks
     * commits the loaded value counts. */
    int rc = pst_bw_connect_synced(bw);
    if (rc) return rc;
    pst_bw_encode_keys(bw, bw->scratch, nk);
    const char *vals[3] = {bw->col[0].p, bw->col[1].p, bw->col[2].p};
    int lens[3] = {(int)bw->col[0].len, (int)bw->col[1].len, (int)bw->col[2].len};
    int fmts[3] = {1, 1, 1};
    PGresult *res = PQexecPrepared(bw->conn, "hl_recover", 3, vals, lens, fmts, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        (void)pst_bw_fail(bw, res, "recover lineage");
        PQclear(res);
        return HL_EAGAIN;
    }
    bool *found = hl_xcalloc(nk, sizeof(*found));
    for (int t = 0; t < PQntuples(res); t++) {
        int64_t i = hl_pg_get64(PQgetvalue(res, t, 0)) - 1;
        if (i < 0 || (size_t)i >= nk) continue;
        found[i] = true;
        pst_bw_mark_recovered(bw->scratch[i], hl_pg_get64(PQgetvalue(res, t, 1)),
                              (int32_t)hl_pg_get32(PQgetvalue(res, t, 2)),
                              hl_pg_get64(PQgetvalue(res, t, 3)),
                              hl_pg_get64(PQgetvalue(res, t, 4)) + HL_PG_EPOCH_US);
    }
    PQclear(res);
    /* Every record here was committed (next_offset is past it): without a row of its key, it
     * was refused and dead-lettered. */
    for (size_t i = 0; i < nk; i++)
        if (!found[i]) {
            bw->scratch[i]->status = PST_REC_PG_REJECTED;
            (void)hl_strlcpy(bw->scratch[i]->detail, "not stored (found again after a restart)",
                             sizeof(bw->scratch[i]->detail));
        }
    free(found);
    return 0;
}
