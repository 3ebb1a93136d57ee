/* Sending a batch and finishing it: the probe of the keys, the COPY way (or the one-statement
 * way when nothing is new), then the commit collected in pst_bw_finish, with the fallbacks a
 * concurrent writer or a refused row calls for (README.md, "Why COPY"). */
#include "batch_writer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/log.h"

/* The COPY way, step one: asks which keys of good[0..ng) are stored already (those are marked
 * duplicate) and takes an id from the sequence for each of the others (marked inserted with
 * it; *nnew counts them). A key stored by a concurrent writer after this makes the COPY fail
 * with 23505, and the batch goes the ON CONFLICT way then. */
static int probe(pst_batch_writer_t *bw, pst_row_t **good, size_t ng, size_t *nnew)
{
    *nnew = 0;
    if (ng == 0) return 0;
    pst_bw_encode_keys(bw, good, ng);
    hl_pg_array_begin(&bw->col[3], HL_PG_OID_INT4, ng);
    for (size_t i = 0; i < ng; i++) {
        hl_pg_put32(&bw->col[3], 4);
        hl_pg_put32(&bw->col[3], (uint32_t)(i + 1));
    }
    const char *vals[4] = {bw->col[0].p, bw->col[1].p, bw->col[2].p, bw->col[3].p};
    int lens[4] = {(int)bw->col[0].len, (int)bw->col[1].len, (int)bw->col[2].len,
                   (int)bw->col[3].len};
    int fmts[4] = {1, 1, 1, 1};
    bw->stats.statements++;
    PGresult *res = PQexecPrepared(bw->conn, "hl_probe", 4, vals, lens, fmts, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) > ng) {
        int rc = pst_bw_fail(bw, res, "probe keys");
        PQclear(res);
        return rc == HL_EPG ? HL_EPG : HL_EAGAIN;
    }
    for (size_t i = 0; i < ng; i++) {
        good[i]->duplicate = 1;
        good[i]->row_id = -1;
    }
    for (int t = 0; t < PQntuples(res); t++) {
        int64_t i = (int64_t)hl_pg_get32(PQgetvalue(res, t, 0)) - 1;
        if (i < 0 || (size_t)i >= ng) continue;
        good[i]->duplicate = 0;
        good[i]->row_id = hl_pg_get64(PQgetvalue(res, t, 1));
        (*nnew)++;
    }
    PQclear(res);
    return 0;
}

/* The COPY way, step two: BEGIN, COPY of the new rows, the offsets upsert and COMMIT as one
 * simple query; waits until the server takes the data, sends it and returns without waiting
 * for the commit (pst_bw_finish collects it). */
static int send_copy(pst_batch_writer_t *bw, pst_row_t **good, size_t ng)
{
    pst_bw_encode_copy(bw, good, ng);
    pst_bw_encode_copy_query(bw);
    bw->stats.statements++;
    if (!PQsendQuery(bw->conn, bw->sql.p)) {
        (void)pst_bw_fail(bw, NULL, "send copy");
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
            int rc = pst_bw_fail(bw, res, "begin copy");
            PQclear(res);
            while (bw->conn && (res = PQgetResult(bw->conn)) != NULL) PQclear(res);
            if (bw->conn && PQtransactionStatus(bw->conn) != PQTRANS_IDLE)
                (void)pst_bw_exec(bw, "ROLLBACK");
            return rc == HL_EPG ? HL_EPG : HL_EAGAIN;
        }
        PQclear(res);
    }
    if (st != PGRES_COPY_IN || PQputCopyData(bw->conn, bw->copy.p, (int)bw->copy.len) != 1 ||
        PQputCopyEnd(bw->conn, NULL) != 1) {
        (void)pst_bw_fail(bw, NULL, "copy");
        pst_bw_disconnect(bw);
        return HL_EAGAIN;
    }
    return 0;
}

int pst_bw_send(pst_batch_writer_t *bw, pst_row_t **rows, size_t n,
                pst_bw_dead_letter_fn dead_letter, void *dl_arg)
{
    bw->err[0] = '\0';
    if (bw->sent_rows) return HL_ESTATE;
    if (n > bw->max_rows) return HL_EINVAL;
    int rc = pst_bw_connect_synced(bw);
    if (rc) return rc;
    pst_bw_encode_offsets(bw, rows, n);
    /* Records refused before Postgres reach the DLQ first: the statement below commits offsets
     * past them. */
    rc = pst_bw_dead_letter_pending(bw, rows, n, dead_letter, dl_arg);
    if (rc) return rc;
    pst_rows_mark_batch_duplicates(rows, n);
    size_t ng = pst_bw_collect_good(bw, rows, n);
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
        int np = pst_bw_insert_params(bw, bw->good, ng, 1, vals, lens, fmts);
        bw->stats.statements++;
        if (!PQsendQueryPrepared(bw->conn, "hl_batch_fast", np, vals, lens, fmts, 1)) {
            (void)pst_bw_fail(bw, NULL, "send batch");
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

bool pst_bw_pending(const pst_batch_writer_t *bw)
{
    return bw->sent_rows != NULL;
}

bool pst_bw_ready(pst_batch_writer_t *bw)
{
    if (!bw->sent_rows || !bw->conn) return true;
    if (!PQconsumeInput(bw->conn)) return true; /* the error surfaces in pst_bw_finish */
    return !PQisBusy(bw->conn);
}

/* Waits for every result of the statement in flight; returns the first one (owned by the
 * caller; NULL when the connection gave none). */
static PGresult *collect(pst_batch_writer_t *bw)
{
    PGresult *first = NULL, *r;
    while (bw->conn && (r = PQgetResult(bw->conn)) != NULL) {
        if (!first)
            first = r;
        else
            PQclear(r);
    }
    return first;
}

/* The batch again through ON CONFLICT, with the parameters built for the send (a concurrent
 * writer stored one of its keys first). The result is owned by the caller. */
static PGresult *run_on_conflict(pst_batch_writer_t *bw, size_t ng)
{
    const char *vals[NPARAMS];
    int lens[NPARAMS], fmts[NPARAMS];
    int np = pst_bw_insert_params(bw, bw->good, ng, 1, vals, lens, fmts);
    bw->stats.statements++;
    return PQexecPrepared(bw->conn, "hl_batch", np, vals, lens, fmts, 1);
}

/* After Postgres refused the batch for its content: the refused rows are isolated. */
static int isolate(pst_batch_writer_t *bw, pst_row_t **rows, size_t n)
{
    hl_warn("batch refused (%s); isolating the refused rows", bw->err);
    return pst_bw_write_isolating(bw, rows, n, bw->sent_dl, bw->sent_dl_arg);
}

/* Concludes a batch statement from its result res (taken): the rows are marked when it
 * succeeded, isolated when it was refused for its content. */
static int conclude(pst_batch_writer_t *bw, PGresult *res, pst_row_t **rows, size_t n, size_t ng)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        pst_bw_mark_results(bw, bw->good, ng, res);
        PQclear(res);
        return 0;
    }
    int rc = pst_bw_fail(bw, res, "batch");
    PQclear(res);
    return rc == HL_EPG ? isolate(bw, rows, n) : HL_EAGAIN;
}

/* Collects the results of the COPY way. The rows were marked by probe(); if anything failed
 * the transaction is rolled back and the batch goes the statement way: ON CONFLICT after a
 * 23505 (a concurrent writer), isolation of the refused rows after a data error. */
static int finish_copy(pst_batch_writer_t *bw, pst_row_t **rows, size_t n, size_t ng)
{
    PGresult *res, *bad = NULL;
    while (bw->conn && (res = PQgetResult(bw->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (!bad && st != PGRES_COMMAND_OK)
            bad = res;
        else
            PQclear(res);
    }
    if (!bw->conn) return HL_EAGAIN;
    if (!bad) return 0;
    const char *state = PQresultErrorField(bad, PG_DIAG_SQLSTATE);
    bool unique = state && strcmp(state, "23505") == 0;
    int rc = pst_bw_fail(bw, bad, "copy batch");
    PQclear(bad);
    if (bw->conn && PQtransactionStatus(bw->conn) != PQTRANS_IDLE)
        (void)pst_bw_exec(bw, "ROLLBACK");
    if (!bw->conn) return HL_EAGAIN;
    if (unique) {
        hl_info("a concurrent writer stored some keys of the batch first (%s); writing it with"
                " ON CONFLICT",
                bw->err);
        return conclude(bw, run_on_conflict(bw, ng), rows, n, ng);
    }
    return rc == HL_EPG ? isolate(bw, rows, n) : HL_EAGAIN;
}

int pst_bw_finish(pst_batch_writer_t *bw, int64_t *committed_us)
{
    if (!bw->sent_rows) return HL_ESTATE;
    pst_row_t **rows = bw->sent_rows;
    size_t n = bw->sent_n, ng = bw->sent_good;
    bw->sent_rows = NULL;
    int rc;
    if (bw->sent_copy) {
        rc = finish_copy(bw, rows, n, ng);
    } else {
        PGresult *res = collect(bw);
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        if (state && strcmp(state, "23505") == 0 && bw->conn) {
            /* Another writer inserted one of these keys meanwhile: the parameters built for
             * the send are still in place, run them through ON CONFLICT instead. */
            PQclear(res);
            res = run_on_conflict(bw, ng);
        }
        rc = conclude(bw, res, rows, n, ng);
    }
    if (rc == 0) *committed_us = hl_now_us();
    return rc;
}

int pst_bw_write(pst_batch_writer_t *bw, pst_row_t **rows, size_t n,
                 pst_bw_dead_letter_fn dead_letter, void *dl_arg, int64_t *committed_us)
{
    int rc = pst_bw_send(bw, rows, n, dead_letter, dl_arg);
    if (rc == 0) rc = pst_bw_finish(bw, committed_us);
    if (rc == 0 && bw->conn)
        pst_bw_recheck_duplicates(bw, bw->good, pst_bw_collect_good(bw, rows, n));
    return rc;
}
