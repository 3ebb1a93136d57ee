/* Streaming chain verification and checkpoint storage. */
#include "verify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/codec.h"
#include "hl/log.h"
#include "hl/util.h"
#include "hl/lineage_record.h"
#include "store.h"

/* Rows per page of a walk. HOOKLINE_AUDITOR_VERIFY_PAGE_ROWS (2..5000) makes pages small, for
 * tests of what happens at their edges. */
#define PAGE_ROWS 5000

static int page_rows(void)
{
    const char *e = getenv("HOOKLINE_AUDITOR_VERIFY_PAGE_ROWS");
    int64_t n = 0;
    if (e && hl_parse_i64(e, 2, PAGE_ROWS, &n) == 0) return (int)n;
    return PAGE_ROWS;
}

/* The columns a walk reads: the hashed fields (0-8), then every column derived from `record`
 * (9-17), which the hash does not cover and which the verifier therefore re-derives. */
#define WALK_COLUMNS                                                                               \
    "id, seq, lineage_offset, request_id, stage, ts_us, record, encode(prev_hash, 'hex'),"         \
    " encode(hash, 'hex'), CASE WHEN abs(extract(epoch FROM ts)) < 9e12"                           \
    " THEN (extract(epoch FROM ts) * 1000000)::bigint END, source, message_id, event_type,"        \
    " status, error_code, kafka_partition, kafka_offset, latency_us"

static bool str_differs(const PGresult *r, int i, int col, bool has, const char *v)
{
    if (PQgetisnull(r, i, col)) return has;
    return !has || strcmp(PQgetvalue(r, i, col), v) != 0;
}

static bool int_differs(const PGresult *r, int i, int col, int64_t v)
{
    int64_t got;
    if (PQgetisnull(r, i, col)) return v != HL_LINEAGE_ABSENT;
    return v == HL_LINEAGE_ABSENT ||
           hl_parse_i64(PQgetvalue(r, i, col), INT64_MIN + 1, INT64_MAX, &got) != 0 || got != v;
}

/* Re-derives the row's columns from its record, as the writer (store.c row_copy) does, and
 * names the first one that differs, or NULL when all agree. */
static const char *derived_mismatch(const PGresult *r, int i, int64_t ts_us)
{
    hl_lineage_rec_t rec;
    const char *why;
    if (hl_lineage_parse(PQgetvalue(r, i, 6), (size_t)PQgetlength(r, i, 6), &rec, &why) != 0)
        return "record";
    if (strcmp(rec.request_id, PQgetvalue(r, i, 3)) != 0) return "request_id";
    if (strcmp(hl_stage_name(rec.stage), PQgetvalue(r, i, 4)) != 0) return "stage";
    if (rec.ts_us != ts_us) return "ts_us";
    if (int_differs(r, i, 9, rec.ts_us)) return "ts";
    if (str_differs(r, i, 10, rec.has_source, rec.source)) return "source";
    if (str_differs(r, i, 11, rec.has_message_id, rec.message_id)) return "message_id";
    if (str_differs(r, i, 12, rec.has_event_type, rec.event_type)) return "event_type";
    if (int_differs(r, i, 13, rec.status)) return "status";
    if (str_differs(r, i, 14, rec.has_error_code, rec.error_code)) return "error_code";
    if (int_differs(r, i, 15, rec.partition)) return "kafka_partition";
    if (int_differs(r, i, 16, rec.offset)) return "kafka_offset";
    if (int_differs(r, i, 17, rec.latency_us)) return "latency_us";
    return NULL;
}

/* True when a checkpoint from outside the database seals this seq with another hash. Walks
 * meet the seals in seq order, so the cursor only moves forward. */
static bool seal_mismatch(aud_verify_t *v, int64_t seq, const unsigned char *hash)
{
    const aud_walk_t *w = v->walk;
    while (v->next_seal < w->nseals && w->seals[v->next_seal].seq < seq) v->next_seal++;
    for (; v->next_seal < w->nseals && w->seals[v->next_seal].seq == seq; v->next_seal++) {
        if (memcmp(w->seals[v->next_seal].hash, hash, AUD_CHAIN_HASH_LEN) != 0) {
            v->sealed_seq = seq;
            return true;
        }
        v->matched_seq = seq;
        memcpy(v->matched_hash, hash, AUD_CHAIN_HASH_LEN);
    }
    return false;
}

static int check_page(PGresult *r, aud_verify_t *v, int64_t *last_seq, int64_t *last_id)
{
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        int64_t id = 0, seq = 0, lo = 0, ts = 0;
        unsigned char prev[AUD_CHAIN_HASH_LEN], hash[AUD_CHAIN_HASH_LEN], calc[AUD_CHAIN_HASH_LEN];
        if (hl_parse_i64(PQgetvalue(r, i, 0), 1, INT64_MAX, &id) ||
            hl_parse_i64(PQgetvalue(r, i, 1), INT64_MIN + 1, INT64_MAX, &seq))
            return HL_EPARSE;
        *last_seq = seq;
        *last_id = id;
        v->bad_id = id;
        v->bad_seq = seq;
        v->expected_seq = v->head_seq + 1;
        /* A NULL where the hash needs a value (NOT NULL dropped by the owner) names its row. */
        bool null = false;
        for (int col = 2; col <= 8; col++) null |= PQgetisnull(r, i, col) != 0;
        if (null || hl_parse_i64(PQgetvalue(r, i, 2), INT64_MIN + 1, INT64_MAX, &lo) ||
            hl_parse_i64(PQgetvalue(r, i, 5), INT64_MIN + 1, INT64_MAX, &ts)) {
            v->reason = "unreadable_row";
            return 1;
        }
        if (seq != v->head_seq + 1) {
            v->reason = seq == v->head_seq && v->rows > 0 ? "duplicate_seq" : "seq_gap";
            return 1;
        }
        if (aud_chain_unhex(PQgetvalue(r, i, 7), prev) ||
            aud_chain_unhex(PQgetvalue(r, i, 8), hash)) {
            v->reason = "hash_unreadable";
            return 1;
        }
        if (memcmp(prev, v->head_hash, sizeof prev) != 0) {
            v->reason = "prev_hash_mismatch";
            return 1;
        }
        aud_chain_row_t row = {v->chain,
                               seq,
                               lo,
                               PQgetvalue(r, i, 3),
                               PQgetvalue(r, i, 4),
                               ts,
                               PQgetvalue(r, i, 6),
                               (size_t)PQgetlength(r, i, 6)};
        if (aud_chain_hash(prev, &row, calc) != 0) return HL_EIO;
        if (memcmp(calc, hash, sizeof calc) != 0) {
            v->reason = "hash_mismatch";
            return 1;
        }
        if ((v->column = derived_mismatch(r, i, ts)) != NULL) {
            v->reason = "column_mismatch";
            return 1;
        }
        if (seal_mismatch(v, seq, hash)) {
            v->reason = "checkpoint_mismatch";
            return 1;
        }
        v->rows++;
        v->head_seq = seq;
        memcpy(v->head_hash, hash, sizeof hash);
    }
    return 0;
}

/* The (id, seq) of the first row `sql` finds for ($1 chain, $2 arg): 1, 0 when none, HL_EPG. */
static int first_row(PGconn *c, const char *sql, int32_t chain, int64_t arg, int64_t *id,
                     int64_t *seq, char *errbuf, size_t errcap)
{
    char ch[16], a[24];
    const char *p[2] = {ch, a};
    snprintf(ch, sizeof ch, "%" PRId32, chain);
    snprintf(a, sizeof a, "%" PRId64, arg);
    PGresult *r = hl_pg_select(c, sql, 2, p, "verify", errbuf, errcap);
    if (!r) return HL_EPG;
    int rc = PQntuples(r) == 1 &&
             hl_parse_i64(PQgetvalue(r, 0, 0), INT64_MIN + 1, INT64_MAX, id) == 0 &&
             hl_parse_i64(PQgetvalue(r, 0, 1), INT64_MIN + 1, INT64_MAX, seq) == 0;
    PQclear(r);
    return rc;
}

/* Rows of the chain the walk never reads: seq NULL, below 1 or beyond the head it reached, or any
 * row at all of a chain outside 0 .. AUD_MAX_CHAINS-1. The constraints of
 * proto/sql/005_lineage_bounds.sql refuse them, but whoever owns the database can drop those. */
static int find_stray(PGconn *c, aud_verify_t *v, char *errbuf, size_t errcap)
{
    bool chain_ok = v->chain >= 0 && v->chain < AUD_MAX_CHAINS;
    int rc = first_row(c,
                       "SELECT id, coalesce(seq, 0) FROM lineage WHERE chain = $1::int"
                       " AND (seq IS NULL OR seq < 1 OR seq > $2::bigint)"
                       " ORDER BY seq NULLS FIRST, id LIMIT 1",
                       v->chain, chain_ok ? v->head_seq : INT64_MIN, &v->bad_id, &v->bad_seq,
                       errbuf, errcap);
    if (rc == 1) {
        v->ok = false;
        v->expected_seq = v->head_seq + 1;
        v->reason = chain_ok ? "outside_chain" : "chain_out_of_range";
    }
    return rc < 0 ? rc : 0;
}

/* Checkpoints from outside the database that the walk did not reach: the chain lost rows at
 * its end (or all of them). Names the first missing seq. */
static void seals_beyond(aud_verify_t *v, const aud_walk_t *w)
{
    for (size_t k = 0; k < w->nseals; k++)
        if (w->seals[k].seq > v->head_seq) {
            v->ok = false;
            v->bad_id = 0;
            v->bad_seq = v->expected_seq = v->head_seq + 1;
            v->reason = "checkpoint_beyond_head";
            v->sealed_seq = w->seals[k].seq;
            return;
        }
}

/* True when row i of r (id, lineage_offset, request_id, stage, ts_us, record, prev_hash hex,
 * hash hex) at (chain, seq) hashes, by the formula, to `hash` and stores that hash; *offset is
 * then its lineage_offset, which the hash binds. */
static bool row_seals(const PGresult *r, int32_t chain, int64_t seq,
                      const unsigned char hash[AUD_CHAIN_HASH_LEN], int64_t *offset)
{
    unsigned char prev[AUD_CHAIN_HASH_LEN], stored[AUD_CHAIN_HASH_LEN], calc[AUD_CHAIN_HASH_LEN];
    int64_t lo, ts;
    for (int col = 1; col <= 7; col++)
        if (PQgetisnull(r, 0, col)) return false;
    if (hl_parse_i64(PQgetvalue(r, 0, 1), 0, INT64_MAX, &lo) ||
        hl_parse_i64(PQgetvalue(r, 0, 4), INT64_MIN + 1, INT64_MAX, &ts) ||
        aud_chain_unhex(PQgetvalue(r, 0, 6), prev) || aud_chain_unhex(PQgetvalue(r, 0, 7), stored))
        return false;
    aud_chain_row_t row = {chain,
                           seq,
                           lo,
                           PQgetvalue(r, 0, 2),
                           PQgetvalue(r, 0, 3),
                           ts,
                           PQgetvalue(r, 0, 5),
                           (size_t)PQgetlength(r, 0, 5)};
    if (aud_chain_hash(prev, &row, calc) != 0 || memcmp(calc, hash, sizeof calc) != 0 ||
        memcmp(stored, hash, sizeof stored) != 0)
        return false;
    *offset = lo;
    return true;
}

int aud_verify_sealed_row(PGconn *c, int32_t chain, int64_t seq,
                          const unsigned char hash[AUD_CHAIN_HASH_LEN], int64_t *id,
                          int64_t *offset, char *errbuf, size_t errcap)
{
    char ch[16], sq[24];
    const char *p[2] = {ch, sq};
    snprintf(ch, sizeof ch, "%" PRId32, chain);
    snprintf(sq, sizeof sq, "%" PRId64, seq);
    /* Every row at the seq (a second one, with the (chain, seq) key dropped, must not stand in
     * for the first): the hashed fields are read, never the stored hash alone. */
    PGresult *r = hl_pg_select(c,
                               "SELECT id, lineage_offset, request_id, stage, ts_us, record,"
                               " encode(prev_hash, 'hex'), encode(hash, 'hex') FROM lineage"
                               " WHERE chain = $1::int AND seq = $2::bigint ORDER BY id",
                               2, p, "verify start", errbuf, errcap);
    if (!r) return HL_EPG;
    int n = PQntuples(r), rc = n == 0 ? 0 : 2;
    *id = 0;
    if (n > 0 && hl_parse_i64(PQgetvalue(r, 0, 0), INT64_MIN + 1, INT64_MAX, id) != 0) *id = 0;
    if (n == 1 && row_seals(r, chain, seq, hash, offset)) rc = 1;
    PQclear(r);
    return rc;
}

/* A walk from a checkpoint starts with the row it sealed: still there, alone at its seq, and
 * hashing (recomputed from its prev_hash and fields) to the checkpoint's hash. */
static int check_start(PGconn *c, aud_verify_t *v, const aud_walk_t *w, char *errbuf, size_t errcap)
{
    int64_t off = 0;
    int rc = aud_verify_sealed_row(c, v->chain, w->from_seq, w->from_hash, &v->bad_id, &off, errbuf,
                                   errcap);
    if (rc < 0) return rc;
    v->bad_seq = v->expected_seq = v->sealed_seq = w->from_seq;
    if (rc == 0) {
        v->ok = false;
        v->reason = "checkpoint_beyond_head";
    } else if (rc == 2) {
        v->ok = false;
        v->reason = "checkpoint_mismatch";
    } else {
        v->bad_id = v->bad_seq = v->expected_seq = v->sealed_seq = 0;
        v->matched_seq = w->from_seq;
        memcpy(v->matched_hash, w->from_hash, AUD_CHAIN_HASH_LEN);
    }
    return 0;
}

int aud_verify_walk(PGconn *c, int32_t chain, const aud_walk_t *w, aud_verify_t *v, char *errbuf,
                    size_t errcap)
{
    static const aud_walk_t whole = {0};
    char ch[16], after[24], after_id[24], lim[24], rows[16];
    const char *params[5] = {ch, after, lim, after_id, rows};
    if (!w) w = &whole;
    int64_t last = w->from_seq, last_id = INT64_MAX; /* the first page: every seq after it */
    const int64_t page = page_rows(), upto = w->upto > 0 ? w->upto : INT64_MAX;
    snprintf(rows, sizeof rows, "%" PRId64, page);
    memset(v, 0, sizeof *v);
    v->chain = chain;
    v->ok = true;
    v->walk = w;
    v->head_seq = w->from_seq;
    if (w->from_seq > 0) memcpy(v->head_hash, w->from_hash, sizeof v->head_hash);
    snprintf(ch, sizeof ch, "%" PRId32, chain);
    if (chain < 0 || chain >= AUD_MAX_CHAINS) return find_stray(c, v, errbuf, errcap);
    if (w->from_seq > 0) {
        int rc = check_start(c, v, w, errbuf, errcap);
        if (rc || !v->ok) {
            v->walk = NULL;
            return rc;
        }
    }
    for (;;) {
        snprintf(after, sizeof after, "%" PRId64, last);
        snprintf(after_id, sizeof after_id, "%" PRId64, last_id);
        /* Keyset paging on the (chain, seq) unique index: constant memory at any length. The
         * key is (seq, id), not seq alone: should an owner drop the index and store two rows
         * with one seq, the second is the next page's first row, not skipped with the first.
         * A page asks for the seqs of one page only: with the walk's end as the only bound,
         * Postgres read every row up to it and sorted them for each page (on 60,000 rows, 22
         * against 8 us a row). Should a page find nothing (seqs missing over a page's width),
         * the same query up to the end finds the row after the gap. */
        int64_t bound = last < upto - page ? last + page : upto;
        PGresult *r = NULL;
        for (bool wide = false;; wide = true) {
            snprintf(lim, sizeof lim, "%" PRId64, wide ? upto : bound);
            r = hl_pg_select(c,
                             "SELECT " WALK_COLUMNS " FROM lineage WHERE chain = $1::int"
                             " AND seq >= $2::bigint AND (seq, id) > ($2::bigint,"
                             " $4::bigint) AND seq <= $3::bigint"
                             " ORDER BY seq, id LIMIT $5::int",
                             5, params, "verify", errbuf, errcap);
            if (!r) return HL_EPG;
            if (PQntuples(r) > 0 || wide || bound >= upto) break;
            PQclear(r);
        }
        int n = PQntuples(r), rc = check_page(r, v, &last, &last_id);
        PQclear(r);
        if (rc < 0) {
            snprintf(errbuf, errcap, "verify: unreadable row");
            return rc;
        }
        if (rc == 1) {
            v->ok = false;
            v->walk = NULL;
            return 0;
        }
        if (n == 0) break;
    }
    v->bad_id = v->bad_seq = v->expected_seq = 0;
    seals_beyond(v, w);
    v->walk = NULL;
    if (v->ok && w->from_seq == 0 && w->upto == 0) return find_stray(c, v, errbuf, errcap);
    return 0;
}

int aud_verify_chain(PGconn *c, int32_t chain, int64_t upto, aud_verify_t *v, char *errbuf,
                     size_t errcap)
{
    aud_walk_t w = {0};
    w.upto = upto;
    return aud_verify_walk(c, chain, &w, v, errbuf, errcap);
}

int aud_verify_first_from(PGconn *c, int32_t chain, int64_t from_seq, int64_t *id, int64_t *seq,
                          char *errbuf, size_t errcap)
{
    return first_row(c,
                     "SELECT id, seq FROM lineage WHERE chain = $1::int AND seq >= $2::bigint"
                     " ORDER BY seq, id LIMIT 1",
                     chain, from_seq, id, seq, errbuf, errcap);
}

/* A loose index scan: one index probe per chain, not a pass over every row. */
#define SQL_CHAINS                                                                                 \
    "WITH RECURSIVE c(chain) AS ( SELECT min(chain) FROM lineage"                                  \
    " UNION ALL SELECT (SELECT min(l.chain) FROM lineage l"                                        \
    " WHERE l.chain > c.chain) FROM c WHERE c.chain IS NOT NULL)"                                  \
    " SELECT chain FROM c WHERE chain IS NOT NULL ORDER BY chain"

int aud_verify_chains(PGconn *c, int32_t *out, int cap, char *errbuf, size_t errcap)
{
    PGresult *r = hl_pg_select(c, SQL_CHAINS, 0, NULL, "list chains", errbuf, errcap);
    if (!r) return HL_EPG;
    int n = 0;
    for (int i = 0; i < PQntuples(r) && n < cap; i++) {
        int64_t v;
        if (hl_parse_i64(PQgetvalue(r, i, 0), INT32_MIN, INT32_MAX, &v) == 0)
            out[n++] = (int32_t)v; /* negative ones too: verify names their rows */
    }
    PQclear(r);
    return n;
}

int aud_verify_no_chain(PGconn *c, int64_t *id, char *errbuf, size_t errcap)
{
    PGresult *r = hl_pg_select(c, "SELECT id FROM lineage WHERE chain IS NULL ORDER BY id LIMIT 1",
                               0, NULL, "verify", errbuf, errcap);
    if (!r) return HL_EPG;
    int rc =
        PQntuples(r) == 1 && hl_parse_i64(PQgetvalue(r, 0, 0), INT64_MIN + 1, INT64_MAX, id) == 0;
    PQclear(r);
    return rc;
}

int aud_verify_hash_at(PGconn *c, int32_t chain, int64_t seq, unsigned char out[AUD_CHAIN_HASH_LEN],
                       char *errbuf, size_t errcap)
{
    char ch[16], sq[24];
    const char *params[2] = {ch, sq};
    int rc = HL_ENOTFOUND;
    snprintf(ch, sizeof ch, "%" PRId32, chain);
    snprintf(sq, sizeof sq, "%" PRId64, seq);
    PGresult *r = hl_pg_select(c,
                               "SELECT encode(hash, 'hex') FROM lineage WHERE chain = $1::int"
                               " AND seq = $2::bigint",
                               2, params, "read hash", errbuf, errcap);
    if (!r) return HL_EPG;
    if (PQntuples(r) == 1 && aud_chain_unhex(PQgetvalue(r, 0, 0), out) == 0) rc = 0;
    PQclear(r);
    return rc;
}

static int cmp_chain(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return a < b ? -1 : a > b;
}

int aud_verify_all(PGconn *c, const aud_seals_t *seals, int32_t only, aud_verify_t *out, int cap,
                   char *errbuf, size_t errcap)
{
    int32_t chains[2 * AUD_MAX_CHAINS];
    int n = 0;
    if (only >= 0) {
        chains[n++] = only;
    } else {
        n = aud_verify_chains(c, chains, AUD_MAX_CHAINS, errbuf, errcap);
        if (n < 0) return n;
        /* A chain sealed outside but gone from the table is walked too: it lost every row. */
        for (size_t i = 0; seals && i < seals->n; i++) {
            bool have = false;
            for (int j = 0; j < n && !have; j++) have = chains[j] == seals->cps[i].chain;
            if (!have && n < 2 * AUD_MAX_CHAINS) chains[n++] = seals->cps[i].chain;
        }
        qsort(chains, (size_t)n, sizeof chains[0], cmp_chain);
    }
    if (n > cap) n = cap;
    for (int i = 0; i < n; i++) {
        aud_walk_t w = {0};
        if (seals) w.seals = aud_seals_chain(seals, chains[i], &w.nseals);
        int rc = aud_verify_walk(c, chains[i], &w, &out[i], errbuf, errcap);
        if (rc) return rc;
        out[i].newest_seal = w.nseals ? w.seals[w.nseals - 1].seq : 0;
    }
    return n;
}

/* Signs the head of `chain` once the walk from its newest outside checkpoint (or from seq 1
 * when it has none) to the head found nothing wrong, publishes the checkpoint and only then
 * stores it. Returns 1 when signed, 0 when there was nothing new, 2 when refused (v says why),
 * or a negative HL_E* code. */
static int sign_chain(PGconn *c, const aud_signing_t *sg, int32_t chain, aud_seals_t *seals,
                      aud_verify_t *v, char *errbuf, size_t errcap)
{
    char ch[16], sq[24], hh[65], ts[24], sig[2 * AUD_SIG_LEN + 1];
    aud_checkpoint_t cp;
    aud_walk_t w = {0};
    const aud_checkpoint_t *mine =
        chain >= 0 && chain < AUD_MAX_CHAINS ? &sg->vouched[chain] : NULL;
    memset(v, 0, sizeof *v);
    if (!mine) {
        hl_error("ALARM checkpoint refused: chain %" PRId32 " is outside 0..%d; not signed", chain,
                 AUD_MAX_CHAINS - 1);
        return 2;
    }
    if (mine->seq == AUD_VOUCH_FOREIGN) {
        hl_error("ALARM checkpoint refused: chain %" PRId32 " holds rows this auditor cannot"
                 " vouch for; head not signed",
                 chain);
        return 2;
    }
    if (mine->seq == AUD_VOUCH_NOT_MINE) {
        if (sg->partitions <= 0 || chain < sg->partitions) return 0; /* its writer signs it */
        hl_error("ALARM checkpoint refused: chain %" PRId32 " is no partition of the lineage"
                 " topic (%d partitions): rows no auditor wrote; not signed",
                 chain, sg->partitions);
        return 2;
    }
    w.seals = aud_seals_chain(seals, chain, &w.nseals);
    /* From the newest signed checkpoint: the heads this process wrote (unsigned) are checked
     * on the way, but the walk must cover every row since the last signature. */
    for (size_t k = w.nseals; k-- > 0;)
        if (w.seals[k].key_id[0]) {
            w.from_seq = w.seals[k].seq;
            memcpy(w.from_hash, w.seals[k].hash, AUD_CHAIN_HASH_LEN);
            break;
        }
    /* Only as far as the vouched head: rows past it are not this process's to sign. */
    if (mine->seq <= w.from_seq) return 0; /* nothing new since the newest checkpoint */
    w.upto = mine->seq;
    int rc = aud_verify_walk(c, chain, &w, v, errbuf, errcap);
    if (rc) return rc;
    if (v->ok &&
        (v->head_seq != mine->seq || memcmp(v->head_hash, mine->hash, AUD_CHAIN_HASH_LEN) != 0)) {
        v->ok = false;
        v->bad_seq = v->expected_seq = v->head_seq + 1;
        v->reason = v->head_seq < mine->seq ? "checkpoint_beyond_head" : "checkpoint_mismatch";
    }
    if (!v->ok) {
        hl_error("ALARM checkpoint refused: chain %" PRId32 " fails its walk from seq %" PRId64
                 ": first bad row id %" PRId64 " seq %" PRId64 " (%s%s%s); head not signed",
                 chain, w.from_seq, v->bad_id, v->bad_seq, v->reason, v->column ? " " : "",
                 v->column ? v->column : "");
        return 2;
    }
    memset(&cp, 0, sizeof cp);
    cp.chain = chain;
    cp.seq = v->head_seq;
    memcpy(cp.hash, v->head_hash, sizeof cp.hash);
    cp.ts_us = hl_now_us();
    if (aud_checkpoint_sign(sg->signer, &cp) != 0) {
        snprintf(errbuf, errcap, "checkpoint: signing failed");
        return HL_EIO;
    }
    /* Outside first: a checkpoint the database holds was always published. */
    rc = aud_ckpub_send(sg->pub, &cp, 10000, errbuf, errcap);
    if (rc) return rc;
    aud_seals_add(seals, &cp);
    snprintf(ch, sizeof ch, "%" PRId32, chain);
    snprintf(sq, sizeof sq, "%" PRId64, cp.seq);
    snprintf(ts, sizeof ts, "%" PRId64, cp.ts_us);
    aud_chain_hex(cp.hash, hh);
    hl_hex(sig, cp.sig, AUD_SIG_LEN);
    const char *p6[6] = {ch, sq, hh, ts, cp.key_id, sig};
    PGresult *r =
        PQexecParams(c,
                     "INSERT INTO lineage_checkpoints (chain, seq, hash, ts_us, key_id, signature)"
                     " VALUES ($1::int, $2::bigint, decode($3, 'hex'), $4::bigint, $5,"
                     " decode($6, 'hex'))",
                     6, NULL, p6, NULL, NULL, 0);
    rc = PQresultStatus(r) == PGRES_COMMAND_OK
             ? 1
             : hl_pg_error(c, r, "store checkpoint", errbuf, errcap);
    PQclear(r);
    return rc;
}

int aud_checkpoint_run(PGconn *c, const aud_signing_t *sg, aud_seals_t *seals, int *refused,
                       char *errbuf, size_t errcap)
{
    int32_t chains[AUD_MAX_CHAINS];
    int n = aud_verify_chains(c, chains, AUD_MAX_CHAINS, errbuf, errcap), signed_n = 0;
    *refused = 0;
    if (n < 0) return n;
    for (int i = 0; i < n; i++) {
        aud_verify_t v;
        int rc = sign_chain(c, sg, chains[i], seals, &v, errbuf, errcap);
        if (rc < 0) return rc;
        *refused += rc == 2;
        signed_n += rc == 1;
    }
    return signed_n;
}
