/* The history held to its checkpoints, with what this process knows besides the table: the
 * whole verification report, the checkpoints read from the topic, the signing round, and the
 * last whole verification kept for the page. */
#include "history.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/pg.h"
#include "hl/util.h"
#include "content.h"
#include "verify.h"
#include "vouch.h"

/* A page shows the last whole verification while it is younger than this (a walk costs
 * seconds at a few hundred thousand rows); ?verify=1 asks for a fresh one. */
#define STATUS_MAX_AGE_US (60 * INT64_C(1000000))

json_t *aud_history_chain_json(const aud_verify_t *v)
{
    char hex[65];
    json_t *o = json_object();
    aud_chain_hex(v->head_hash, hex);
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

/* Fails v with `reason` (static) at the first row of its chain from seq `from` on, when there is
 * one, the row having been expected to hold seq `expected`. Returns 1 (found), 0 or HL_EPG. */
static int first_forged(PGconn *c, aud_verify_t *v, int64_t from, int64_t expected,
                        const char *reason, char *err, size_t errcap)
{
    int64_t id, seq;
    int found = aud_verify_first_from(c, v->chain, from, &id, &seq, err, errcap);
    if (found == 1) {
        v->ok = false;
        v->reason = reason;
        v->bad_id = id;
        v->bad_seq = seq;
        v->expected_seq = expected;
    }
    return found;
}

/* Rows beyond what this process wrote to a chain it owns: with written_mu held no write
 * transaction of its own is open, so the table must end exactly where it wrote, and a row
 * after that (even one hashed correctly onto the head) was put there by someone else. Also the
 * first such row the consumer met (foreign_seq). Returns n or HL_EPG. */
static int unwritten_rows(aud_state_t *a, PGconn *c, aud_verify_t *vs, int n, char *err,
                          size_t errcap)
{
    int rc = n, parts = atomic_load(&a->lineage_partitions);
    pthread_mutex_lock(&a->written_mu);
    for (int i = 0; i < n && rc >= 0; i++) {
        int32_t p = vs[i].chain;
        if (p >= 0 && p < AUD_MAX_CHAINS && a->deleted_seq[p] &&
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
        if (vs[i].ok && p >= 0 && p < AUD_MAX_CHAINS && parts > 0 && p >= parts) {
            /* No partition of the lineage topic feeds this chain: every row of it is forged. */
            int found = first_forged(c, &vs[i], INT64_MIN + 1, 1, "no_partition", err, errcap);
            if (found < 0) rc = found;
            continue;
        }
        if (!vs[i].ok || p < 0 || p >= AUD_MAX_CHAINS || !a->owned[p]) continue;
        int64_t from = a->foreign_seq[p] ? a->foreign_seq[p] : a->written[p].seq + 1;
        int found = first_forged(c, &vs[i], from, from, "unwritten_row", err, errcap);
        if (found < 0) rc = found;
    }
    pthread_mutex_unlock(&a->written_mu);
    return rc;
}

/* After a checkpoint_mismatch the edit lies after the last seq a checkpoint confirmed and at
 * or before the one that failed: the first row in between whose record is not the lineage
 * topic's record at its offset is named instead of the row at the checkpoint's seq, while the
 * topic still holds those records (otherwise the row at the checkpoint's seq stays named).
 * Returns 0 or HL_EPG. */
static int locate_edit(aud_state_t *a, PGconn *c, aud_verify_t *v, char *err, size_t errcap)
{
    static const char *const found_by[] = {"record_mismatch", "record_not_found", "row_missing",
                                           "offset_order", NULL};
    aud_vouch_t vr;
    aud_checkpoint_t from;
    int64_t id, seq;
    memset(&from, 0, sizeof from);
    from.chain = v->chain;
    from.seq = v->matched_seq;
    memcpy(from.hash, v->matched_hash, sizeof from.hash);
    int rc = aud_vouch_range(c, &a->cfg->kafka, a->cfg->kafka.lineage_topic, v->chain,
                             v->matched_seq ? &from : NULL, v->sealed_seq, 5000, &vr, err, errcap);
    if (rc || vr.bad_seq <= v->matched_seq || vr.bad_seq > v->sealed_seq) return rc;
    bool named = false;
    for (int i = 0; found_by[i] && !named; i++) named = strcmp(vr.reason, found_by[i]) == 0;
    if (!named) return 0;
    int found = aud_verify_first_from(c, v->chain, vr.bad_seq, &id, &seq, err, errcap);
    if (found < 0) return found;
    if (found == 1 && seq == vr.bad_seq) {
        v->bad_id = id;
        v->bad_seq = v->expected_seq = seq;
        v->topic_check = vr.reason;
    }
    return 0;
}

int aud_history_report(aud_state_t *a, PGconn *c, int32_t only, json_t *o, char *err, size_t errcap)
{
    aud_seals_t seals;
    char why[512];
    int have = aud_history_seals(a, &seals, why, sizeof why) == 0;
    aud_verify_t *vs = hl_xcalloc(2 * AUD_MAX_CHAINS, sizeof *vs);
    int n = aud_verify_all(c, have ? &seals : NULL, only, vs, 2 * AUD_MAX_CHAINS, err, errcap);
    int64_t refused = have ? seals.refused : 0;
    if (have) aud_seals_free(&seals);
    if (n >= 0) n = unwritten_rows(a, c, vs, n, err, errcap);
    for (int i = 0; i < n; i++)
        if (!vs[i].ok && strcmp(vs[i].reason, "checkpoint_mismatch") == 0 &&
            vs[i].sealed_seq > vs[i].matched_seq && vs[i].chain >= 0 &&
            vs[i].chain < AUD_MAX_CHAINS) {
            int rc = locate_edit(a, c, &vs[i], err, errcap);
            if (rc < 0) n = rc;
        }
    int64_t stray = 0;
    int no_chain = n >= 0 && only < 0 ? aud_verify_no_chain(c, &stray, err, errcap) : 0;
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
        json_array_append_new(arr, aud_history_chain_json(&vs[i]));
    }
    free(vs);
    /* Without the outside copy nothing tells a consistent rewrite or a cut tail: not ok. */
    json_object_set_new(outside, "topic", json_string(a->cfg->checkpoint.topic));
    json_object_set_new(outside, "read", json_boolean(have));
    json_object_set_new(outside, "refused", json_integer(refused));
    if (!have) json_object_set_new(outside, "error", json_string(why));
    int shape = atomic_load(&a->cp_topic_state);
    json_object_set_new(outside, "topic_shape",
                        json_string(shape > 0   ? "ok"
                                    : shape < 0 ? "wrong"
                                                : "unchecked"));
    if (shape < 0) json_object_set_new(outside, "topic_shape_error", json_string(a->cp_topic_why));
    json_object_set_new(o, "chain_ok", json_boolean(all_ok));
    json_object_set_new(o, "checkpoints_outside", outside);
    json_object_set_new(o, "chains", arr);
    json_object_set_new(o, "ok", json_boolean(all_ok));
    return only < 0 ? aud_history_with_content(c, o, err, errcap) : 0;
}

int aud_history_with_content(PGconn *c, json_t *o, char *err, size_t errcap)
{
    json_t *k = json_object();
    int64_t t0 = hl_mono_us();
    int rc = aud_content_check(c, k, err, errcap);
    if (rc) {
        json_decref(k);
        return rc;
    }
    json_object_set_new(k, "elapsed_us", json_integer(hl_mono_us() - t0));
    if (!json_is_true(json_object_get(k, "ok"))) json_object_set_new(o, "ok", json_false());
    json_object_set_new(o, "content", k);
    return 0;
}

int aud_history_seals(aud_state_t *a, aud_seals_t *out, char *errbuf, size_t errcap)
{
    int rc = aud_seals_read(&a->cfg->kafka, a->cfg->checkpoint.topic, &a->ring, 10000, out, errbuf,
                            errcap);
    if (rc) return rc;
    pthread_mutex_lock(&a->written_mu);
    for (int32_t p = 0; p < AUD_MAX_CHAINS; p++)
        if (a->written[p].seq > 0) aud_seals_add(out, &a->written[p]);
    pthread_mutex_unlock(&a->written_mu);
    return 0;
}

int aud_history_sign(aud_state_t *a, char *errbuf, size_t errcap)
{
    aud_seals_t seals;
    PGconn *c = hl_pg_pool_get(a->wpool);
    if (!c) {
        snprintf(errbuf, errcap, "checkpoints: no connection as the writer's role");
        hl_counter_add(a->m_cp_errors, 1);
        return HL_EPG;
    }
    aud_checkpoint_t *vouched = hl_xcalloc(AUD_MAX_CHAINS, sizeof *vouched);
    aud_signing_t sg = {a->signer, a->ckpub, vouched, atomic_load(&a->lineage_partitions)};
    /* The seals first: they hold the heads this process wrote as they were when read, and the
     * walk ends at the head vouched for, so that head is read after them. Read the other way
     * round, a batch stored in between put a written head past the walk's end and every head
     * signed while rows arrived was refused as a cut tail. */
    int refused = 0, n = aud_history_seals(a, &seals, errbuf, errcap);
    pthread_mutex_lock(&a->written_mu);
    for (int32_t p = 0; p < AUD_MAX_CHAINS; p++) {
        vouched[p] = a->written[p];
        if (!a->owned[p])
            vouched[p].seq = AUD_VOUCH_NOT_MINE;
        else if (a->foreign_seq[p])
            vouched[p].seq = AUD_VOUCH_FOREIGN;
    }
    pthread_mutex_unlock(&a->written_mu);
    if (n == 0) {
        n = aud_checkpoint_run(c, &sg, &seals, &refused, errbuf, errcap);
        aud_seals_free(&seals);
    }
    hl_pg_pool_put(a->wpool, c, n == HL_EPG && PQstatus(c) != CONNECTION_OK);
    free(vouched);
    if (n < 0) hl_counter_add(a->m_cp_errors, 1);
    if (n > 0) hl_counter_add(a->m_checkpoints, (uint64_t)n);
    if (refused > 0) hl_counter_add(a->m_cp_refused, (uint64_t)refused);
    return n;
}

void aud_history_offer(aud_state_t *a, json_t *report, int64_t began_us, int64_t took_us)
{
    pthread_mutex_lock(&a->status_mu);
    if (!a->status || a->status_us < began_us) {
        json_t *v = json_deep_copy(report);
        json_object_set_new(v, "took_us", json_integer(took_us));
        json_decref(a->status);
        a->status = v;
        a->status_us = began_us;
    }
    pthread_mutex_unlock(&a->status_mu);
}

/* The last whole verification (the page's own or GET /v1/verify's) while it is younger than
 * STATUS_MAX_AGE_US, else (or when `fresh`) a new one that began after this page was asked
 * for: pages loading together share one walk instead of each running its own. Sets *when_us
 * to when it began. NULL on a database error. */
json_t *aud_history_status(aud_state_t *a, PGconn *c, bool fresh, int64_t *when_us)
{
    char err[512];
    json_t *v = NULL;
    int64_t asked = hl_now_us();
    pthread_mutex_lock(&a->status_mu);
    if (a->status && (fresh ? a->status_us >= asked : asked - a->status_us < STATUS_MAX_AGE_US)) {
        v = json_incref(a->status);
        *when_us = a->status_us;
    } else {
        int64_t t0 = hl_mono_us();
        v = json_object();
        if (aud_history_report(a, c, -1, v, err, sizeof err) != 0) {
            json_decref(v);
            v = NULL;
        } else {
            json_object_set_new(v, "took_us", json_integer(hl_mono_us() - t0));
            json_decref(a->status);
            a->status = json_incref(v);
            a->status_us = *when_us = asked;
        }
    }
    pthread_mutex_unlock(&a->status_mu);
    return v;
}
