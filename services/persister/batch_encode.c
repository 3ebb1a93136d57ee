/* Rows into what Postgres reads: one binary array per column for the statements, binary COPY
 * data for the COPY way, and the offsets of a batch. The wire encodings are libs/pg's. */
#include "batch_writer_impl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "batch_sql.h"
#include "hl/codec.h"
#include "hl/log.h"

/* The record parser lets through only rows whose request id is a UUID and whose texts are
 * UTF-8 without NUL bytes (pst_record_parse), so the encoders cannot refuse them: a refusal is
 * a bug, not a record to dead-letter. */
static void must(int rc, const char *what)
{
    if (rc != 0) hl_die("persister: the row's %s was refused by the encoder", what);
}

static void enc_text(hl_buf_t *b, const char *s, size_t n)
{
    must(hl_pg_enc_text(b, s, n), "text");
}

/* The eleven columns of a row, column c into out[c]: the arrays give one buffer per column,
 * COPY the same buffer eleven times, so both carry the same wire encodings. */
static void enc_columns(hl_buf_t *const out[NCOLS], const pst_row_t *r)
{
    unsigned char d[32];
    enc_text(out[0], r->source, strlen(r->source));
    enc_text(out[1], r->message_id, r->message_id_len);
    enc_text(out[2], r->event_type, strlen(r->event_type));
    must(hl_pg_enc_uuid(out[3], r->request_id), "request id");
    hl_pg_enc_timestamptz(out[4], r->received_us);
    hl_pg_enc_int4(out[5], r->partition);
    hl_pg_enc_int8(out[6], r->offset);
    must(hl_pg_enc_jsonb(out[7], r->payload, r->payload_len), "payload");
    /* The body's digest as 32 bytes (NULL when the row has none), the raw body, and the
     * signature headers (NULL when absent). */
    if (r->body_sha256[0] != '\0' && hl_hex_decode(r->body_sha256, 64, d, sizeof(d)) == 32)
        hl_pg_enc_bytea(out[8], d, sizeof(d));
    else
        hl_pg_enc_null(out[8]);
    hl_pg_enc_bytea(out[9], r->payload, r->payload_len);
    if (r->signed_json != NULL)
        must(hl_pg_enc_jsonb(out[10], r->signed_json, r->signed_json_len), "signature headers");
    else
        hl_pg_enc_null(out[10]);
}

void pst_bw_encode_rows(pst_batch_writer_t *bw, pst_row_t **rows, size_t n)
{
    static const uint32_t oids[NCOLS] = {HL_PG_OID_TEXT,  HL_PG_OID_TEXT,        HL_PG_OID_TEXT,
                                         HL_PG_OID_UUID,  HL_PG_OID_TIMESTAMPTZ, HL_PG_OID_INT4,
                                         HL_PG_OID_INT8,  HL_PG_OID_JSONB,       HL_PG_OID_BYTEA,
                                         HL_PG_OID_BYTEA, HL_PG_OID_JSONB};
    hl_buf_t *out[NCOLS];
    for (int c = 0; c < NCOLS; c++) {
        hl_pg_array_begin(&bw->col[c], oids[c], n);
        out[c] = &bw->col[c];
    }
    for (size_t i = 0; i < n; i++) enc_columns(out, rows[i]);
}

void pst_bw_encode_offsets(pst_batch_writer_t *bw, pst_row_t **rows, size_t n)
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
    hl_pg_array_begin(&bw->parts, HL_PG_OID_INT4, np);
    hl_pg_array_begin(&bw->nexts, HL_PG_OID_INT8, np);
    hl_pg_array_begin(&bw->lins, HL_PG_OID_INT8, np);
    for (size_t k = 0; k < np; k++) {
        int64_t lin = bw->lineage_fn ? bw->lineage_fn(bw->lineage_arg, parts[k]) : -1;
        if (lin < 0) lin = first[k];
        first[k] = lin < next[k] ? lin : next[k];
        hl_pg_put32(&bw->parts, 4);
        hl_pg_put32(&bw->parts, (uint32_t)parts[k]);
        hl_pg_put32(&bw->nexts, 8);
        hl_pg_put64(&bw->nexts, next[k]);
        hl_pg_put32(&bw->lins, 8);
        hl_pg_put64(&bw->lins, lin);
    }
}

void pst_bw_encode_keys(pst_batch_writer_t *bw, pst_row_t **rows, size_t n)
{
    for (int c = 0; c < 3; c++) hl_pg_array_begin(&bw->col[c], HL_PG_OID_TEXT, n);
    for (size_t i = 0; i < n; i++) {
        enc_text(&bw->col[0], rows[i]->source, strlen(rows[i]->source));
        enc_text(&bw->col[1], rows[i]->message_id, rows[i]->message_id_len);
        enc_text(&bw->col[2], rows[i]->event_type, strlen(rows[i]->event_type));
    }
}

int pst_bw_insert_params(pst_batch_writer_t *bw, pst_row_t **rows, size_t n, int with_offsets,
                         const char **vals, int *lens, int *fmts)
{
    pst_bw_encode_rows(bw, rows, n);
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

/* The rows marked inserted by the probe in COPY's binary format (header, one tuple of twelve
 * fields each: the id taken from the sequence, then the columns; trailer). */
void pst_bw_encode_copy(pst_batch_writer_t *bw, pst_row_t **good, size_t ng)
{
    hl_buf_t *b = &bw->copy;
    hl_buf_t *const out[NCOLS] = {b, b, b, b, b, b, b, b, b, b, b};
    hl_pg_copy_begin(b);
    for (size_t i = 0; i < ng; i++) {
        if (good[i]->duplicate) continue;
        hl_pg_copy_tuple(b, NCOLS + 1);
        hl_pg_enc_int8(b, good[i]->row_id);
        enc_columns(out, good[i]);
    }
    hl_pg_copy_end(b);
}

void pst_bw_encode_copy_query(pst_batch_writer_t *bw)
{
    hl_buf_t *q = &bw->sql;
    q->len = 0;
    hl_buf_put(q, PST_SQL_COPY, strlen(PST_SQL_COPY));
    hl_buf_put(q, PST_SQL_COPY_OFFSETS, strlen(PST_SQL_COPY_OFFSETS));
    /* The partitions of the batch with their next and lineage offsets, from
     * pst_bw_encode_offsets. */
    for (size_t k = 0; k < bw->nparts; k++)
        put_text(q, "%s(%s, %s, %" PRId32 ", %" PRId64 ", %" PRId64 ")", k ? ", " : "",
                 bw->group_lit, bw->topic_lit, bw->part_ids[k], bw->part_next[k],
                 bw->part_first[k]);
    hl_buf_put(q, PST_SQL_COPY_END, strlen(PST_SQL_COPY_END) + 1); /* with its NUL */
}

void pst_bw_encode_partitions(pst_batch_writer_t *bw, const pst_bw_offsets_t *offs, size_t n)
{
    hl_pg_array_begin(&bw->parts, HL_PG_OID_INT4, n);
    for (size_t i = 0; i < n; i++) {
        hl_pg_put32(&bw->parts, 4);
        hl_pg_put32(&bw->parts, (uint32_t)offs[i].partition);
    }
}
