/* What the batch writer's files share and nothing else sees: the writer's state and the steps
 * one file does for another. batch_writer.c holds the connection and the offsets,
 * batch_encode.c turns rows into binary arrays and COPY data, batch_send.c sends a batch and
 * finishes it, batch_recover.c recovers after a failure, a lost answer or a restart. Calls go
 * one way only: send -> recover -> writer and encode, writer -> encode. */
#ifndef PST_BATCH_WRITER_IMPL_H
#define PST_BATCH_WRITER_IMPL_H

#include <libpq-fe.h>

#include "batch_writer.h"
#include "hl/pg.h"
#include "hl/util.h"

#define NCOLS 11
#define NPARAMS (NCOLS + 5) /* the columns, then the offsets upsert */

/* Its buffers keep their capacity between batches, so steady state allocates nothing; their
 * size is bounded by max_rows x max_record_bytes through the caller's caps. */
struct pst_batch_writer {
    const hl_pg_config_t *pg; /* borrowed */
    const char *group;        /* borrowed */
    const char *topic;        /* borrowed */
    size_t max_rows;
    PGconn *conn;                 /* NULL when not connected */
    hl_buf_t col[NCOLS];          /* one binary array per column */
    hl_buf_t parts, nexts, lins;  /* offsets arrays: partition, next_offset, lineage_offset */
    pst_bw_lineage_fn lineage_fn; /* where each partition's lineage_offset comes from */
    void *lineage_arg;
    pst_row_t **good;    /* rows with status OK, in batch order (max_rows) */
    pst_row_t **by_pos;  /* the same sorted by (partition, offset), for RETURNING */
    pst_row_t **dead;    /* rows to dead-letter (max_rows) */
    pst_row_t **scratch; /* rows stored late while isolating refused ones (max_rows) */
    int32_t *part_ids;   /* partitions of the batch (max_rows slots) */
    int64_t *part_next;  /* their next offsets */
    int64_t *part_first; /* their lowest offsets in the batch, then their lineage offsets */
    size_t nparts;       /* partitions of the batch */
    char err[512];
    pst_bw_stats_t stats;
    /* The batch statement in flight (sent, result not yet read); NULL when none. */
    pst_row_t **sent_rows;
    size_t sent_n, sent_good;
    pst_bw_dead_letter_fn sent_dl;
    void *sent_dl_arg;
    bool sent_copy;              /* the batch in flight went the COPY way */
    hl_buf_t copy, sql;          /* COPY data and statement text of the COPY way */
    char *group_lit, *topic_lit; /* group and topic as SQL literals (for the connection) */
    /* Connections made so far, and the one on which the offsets were last loaded: writing is
     * refused while they differ (see pst_bw_stale). */
    uint64_t generation, synced;
};

/* batch_writer.c: the connection. */

/* Records the error of res (or of the connection) in bw->err; drops a broken connection.
 * Returns HL_EAGAIN for a transient failure, HL_EPG for one that will repeat. */
int pst_bw_fail(pst_batch_writer_t *bw, PGresult *res, const char *what);
/* Closes the connection (NULL-safe) and forgets what belonged to it. */
void pst_bw_disconnect(pst_batch_writer_t *bw);
/* pst_bw_connect for the statements that write, or that rely on the offsets the caller holds:
 * refused (HL_ESTATE) on a connection the offsets were not loaded on. */
int pst_bw_connect_synced(pst_batch_writer_t *bw);
/* Simple statement without parameters; returns 0, HL_EAGAIN or HL_EPG. */
int pst_bw_exec(pst_batch_writer_t *bw, const char *sql);

/* batch_writer.c: the steps every way of a batch shares. */

/* Orders rows by (partition, offset), the key of RETURNING results. */
int pst_bw_pos_cmp(const void *a, const void *b);
/* Marks rows[0..n) from a RETURNING (id, partition, offset) result in binary format: returned
 * rows were inserted, the others were duplicates. */
void pst_bw_mark_results(pst_batch_writer_t *bw, pst_row_t **rows, size_t n, PGresult *res);
/* Collects rows that will not be stored and have not reached the DLQ, and hands them over. */
int pst_bw_dead_letter_pending(pst_batch_writer_t *bw, pst_row_t **rows, size_t n,
                               pst_bw_dead_letter_fn fn, void *arg);
/* Puts the rows to store (status OK, first of their key in the batch) into bw->good. */
size_t pst_bw_collect_good(pst_batch_writer_t *bw, pst_row_t **rows, size_t n);

/* batch_encode.c: rows into the binary parameters and the COPY data (bw's buffers). */

/* Fills the column arrays bw->col from rows[0..n). */
void pst_bw_encode_rows(pst_batch_writer_t *bw, pst_row_t **rows, size_t n);
/* Fills the offsets arrays (and part_ids / part_next / part_first): for each partition in rows,
 * highest offset + 1, and the lineage offset from the lineage function (the batch's lowest
 * offset of the partition when it has none: nothing below was ever committed by this group
 * then). */
void pst_bw_encode_offsets(pst_batch_writer_t *bw, pst_row_t **rows, size_t n);
/* Fills col[0..2] with the (source, message id, event type) keys of rows[0..n). */
void pst_bw_encode_keys(pst_batch_writer_t *bw, pst_row_t **rows, size_t n);
/* Fills bw->parts with the partitions of offs[0..n). */
void pst_bw_encode_partitions(pst_batch_writer_t *bw, const pst_bw_offsets_t *offs, size_t n);
/* The rows marked inserted by the probe, in COPY's binary format, into bw->copy. */
void pst_bw_encode_copy(pst_batch_writer_t *bw, pst_row_t **good, size_t ng);
/* The COPY way's simple query (BEGIN, COPY, offsets upsert, COMMIT) into bw->sql, NUL ended. */
void pst_bw_encode_copy_query(pst_batch_writer_t *bw);
/* Fills the parameters of a row insert (or of the whole batch statement when with_offsets) for
 * rows[0..n); returns the parameter count. The pointers stay valid until the next build. */
int pst_bw_insert_params(pst_batch_writer_t *bw, pst_row_t **rows, size_t n, int with_offsets,
                         const char **vals, int *lens, int *fmts);

/* batch_recover.c: after a failure. */

/* The slow path after the one-statement attempt hit a data error: isolates the refused rows
 * in one transaction. 0, or HL_EAGAIN (nothing committed). */
int pst_bw_write_isolating(pst_batch_writer_t *bw, pst_row_t **rows, size_t n,
                           pst_bw_dead_letter_fn dead_letter, void *dl_arg);
/* After a retried batch committed: rows reported duplicate that the lost attempt inserted. */
void pst_bw_recheck_duplicates(pst_batch_writer_t *bw, pst_row_t **good, size_t ng);
/* Marks one recovered record from the row Postgres holds for its key. */
void pst_bw_mark_recovered(pst_row_t *r, int64_t id, int32_t part, int64_t off, int64_t at_us);

#endif
