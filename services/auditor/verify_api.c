/* The /v1 endpoints that hold the history to its checkpoints: a verification (of every chain,
 * one, or a checkpoint given in the body), the checkpoints signed, and signed evidence. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "handlers.h"
#include "history.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/util.h"
#include "verify.h"

static int verify_checkpoint(aud_req_t *r, PGconn *c, const aud_checkpoint_t *cp, json_t *out,
                             char *err, size_t errcap)
{
    aud_verify_t v;
    unsigned char h[AUD_CHAIN_HASH_LEN];
    int sig_ok = aud_keyring_verify(&r->a->ring, cp) == 0;
    int rc = aud_verify_chain(c, cp->chain, cp->seq, &v, err, errcap);
    if (rc) return rc;
    rc = aud_verify_hash_at(c, cp->chain, cp->seq, h, err, errcap);
    if (rc && rc != HL_ENOTFOUND) return rc;
    int present = rc == 0, matches = present && memcmp(h, cp->hash, sizeof h) == 0;
    json_t *k = json_object();
    json_object_set_new(k, "chain", json_integer(cp->chain));
    json_object_set_new(k, "seq", json_integer(cp->seq));
    json_object_set_new(k, "signature_valid", json_boolean(sig_ok));
    json_object_set_new(k, "row_present", json_boolean(present));
    json_object_set_new(k, "hash_matches", json_boolean(matches));
    json_object_set_new(out, "checkpoint", k);
    json_object_set_new(out, "chain", aud_history_chain_json(&v));
    json_object_set_new(out, "chain_ok", json_boolean(sig_ok && matches && v.ok));
    json_object_set_new(out, "ok", json_boolean(sig_ok && matches && v.ok));
    return aud_history_with_content(c, out, err, errcap);
}

int aud_h_verify(aud_req_t *r)
{
    static const char *const allowed[] = {"chain", NULL};
    char err[512], body[2048];
    int64_t chain;
    aud_checkpoint_t cp;
    int post = strcmp(r->method, "POST") == 0;
    if (aud_req_only(r, allowed) || aud_param_int(r, "chain", 0, AUD_MAX_CHAINS - 1, -1, &chain))
        return 400;
    if (post) {
        int n = aud_req_read_body(r, body, sizeof body);
        if (n == -2) return aud_reply_error(r, 408, "request_timeout", "body not received in time");
        if (n < 0) return aud_reply_error(r, 400, "bad_body", "a checkpoint JSON body is needed");
        if (aud_checkpoint_parse(body, (size_t)n, &cp) != 0)
            return aud_reply_error(r, 400, "bad_checkpoint",
                                   "body must be a checkpoint as served by /v1/checkpoints");
    }
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    json_t *o = json_object();
    int64_t t0 = hl_mono_us(), began = hl_now_us();
    if (post) {
        if (verify_checkpoint(r, c, &cp, o, err, sizeof err) != 0) {
            json_decref(o);
            return aud_req_db_fail(r, c, err);
        }
    } else if (aud_history_report(r->a, c, (int32_t)chain, o, err, sizeof err) != 0) {
        json_decref(o);
        return aud_req_db_fail(r, c, err);
    } else if (chain < 0) {
        /* A whole verification is news for the page too. */
        aud_history_offer(r->a, o, began, hl_mono_us() - t0);
    }
    aud_req_db_done(r, c, 0);
    json_object_set_new(o, "elapsed_us", json_integer(hl_mono_us() - t0));
    return aud_reply_json(r, 200, o);
}

/* The newest checkpoint of each chain in seals, as JSON objects into arr and as the lines of
 * the evidence message ("chain seq hash ts_us key_id signature\n") into msg. */
static void newest_per_chain(const aud_seals_t *seals, json_t *arr, hl_buf_t *msg)
{
    for (size_t i = 0; i < seals->n; i++) {
        const aud_checkpoint_t *cp = &seals->cps[i];
        if (i + 1 < seals->n && seals->cps[i + 1].chain == cp->chain) continue;
        char json[512], hash[65], sig[2 * AUD_SIG_LEN + 1], line[320];
        int n = aud_checkpoint_json(cp, json, sizeof json);
        json_array_append_new(arr, json_loadb(json, (size_t)n, 0, NULL));
        aud_chain_hex(cp->hash, hash);
        hl_hex(sig, cp->sig, AUD_SIG_LEN);
        n = snprintf(line, sizeof line, "%" PRId32 " %" PRId64 " %s %" PRId64 " %s %s\n", cp->chain,
                     cp->seq, hash, cp->ts_us, cp->key_id, sig);
        hl_buf_put(msg, line, (size_t)n);
    }
}

/* POST /v1/evidence {"manifest_sha256": hex}: signs the heads that moved (end of the run), then
 * signs the manifest digest together with the newest checkpoint of every chain from the
 * checkpoint topic, so a bundle carries the history's state it was made against. */
int aud_h_evidence(aud_req_t *r)
{
    char body[512], err[512];
    unsigned char digest[32], sig[AUD_SIG_LEN];
    static const char *const none[] = {NULL};
    if (aud_req_only(r, none)) return 400;
    int n = aud_req_read_body(r, body, sizeof body);
    if (n == -2) return aud_reply_error(r, 408, "request_timeout", "body not received in time");
    json_t *in = n < 0 ? NULL : json_loadb(body, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    const char *hex = json_string_value(json_object_get(in, "manifest_sha256"));
    if (!json_is_object(in) || json_object_size(in) != 1 || !hex ||
        aud_chain_unhex(hex, digest) != 0) {
        json_decref(in);
        return aud_reply_error(r, 400, "bad_body",
                               "body must be {\"manifest_sha256\": 64 lowercase hex digits}");
    }
    char manifest[65];
    aud_chain_hex(digest, manifest);
    json_decref(in);
    int rc = aud_history_sign(r->a, err, sizeof err);
    if (rc == HL_EPG) {
        hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
        HL_LOG(HL_LOG_ERROR, &ctx, NULL, "api: %s", err);
        return aud_reply_error(r, 503, "unavailable", "database query failed, retry later");
    }
    aud_seals_t seals;
    if (rc < 0 || aud_history_seals(r->a, &seals, err, sizeof err) != 0)
        return aud_reply_error(r, 503, "checkpoint_topic", err);
    json_t *cps = json_array(), *keys = json_array();
    hl_buf_t msg = {NULL, 0, 0};
    static const char tag[] = "hookline-evidence-v1\n";
    hl_buf_put(&msg, tag, sizeof tag - 1);
    hl_buf_put(&msg, manifest, 64);
    hl_buf_put(&msg, "\n", 1);
    newest_per_chain(&seals, cps, &msg);
    aud_seals_free(&seals);
    rc = aud_signer_sign(r->a->signer, msg.p, msg.len, sig);
    free(msg.p);
    if (rc != 0) {
        json_decref(cps);
        json_decref(keys);
        return aud_reply_error(r, 500, "internal", "signing failed");
    }
    for (size_t i = 0; i < r->a->ring.n; i++) {
        char pub[65];
        hl_hex(pub, r->a->ring.pub[i], 32);
        json_array_append_new(keys, json_string(pub));
    }
    char sighex[2 * AUD_SIG_LEN + 1];
    hl_hex(sighex, sig, AUD_SIG_LEN);
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("hookline-evidence-v1"));
    json_object_set_new(o, "algorithm", json_string("ed25519"));
    json_object_set_new(o, "key_id", json_string(aud_signer_key_id(r->a->signer)));
    json_object_set_new(o, "public_key", json_string(aud_signer_public_hex(r->a->signer)));
    json_object_set_new(o, "public_keys", keys);
    json_object_set_new(o, "manifest_sha256", json_string(manifest));
    json_object_set_new(o, "checkpoints", cps);
    json_object_set_new(o, "signature", json_string(sighex));
    return aud_reply_json(r, 200, o);
}

static int64_t cell_int(const PGresult *res, int row, int col)
{
    int64_t v = 0;
    return hl_parse_i64(PQgetvalue(res, row, col), INT64_MIN + 1, INT64_MAX, &v) == 0 ? v : 0;
}

int aud_h_checkpoints(aud_req_t *r)
{
    static const char *const allowed[] = {"chain", NULL};
    char err[512];
    int64_t chain;
    if (aud_req_only(r, allowed) || aud_param_int(r, "chain", 0, AUD_MAX_CHAINS - 1, -1, &chain))
        return 400;
    int signed_n = 0;
    if (strcmp(r->method, "POST") == 0) {
        signed_n = aud_history_sign(r->a, err, sizeof err);
        if (signed_n == HL_EPG) {
            hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
            HL_LOG(HL_LOG_ERROR, &ctx, NULL, "api: %s", err);
            return aud_reply_error(r, 503, "unavailable", "database query failed, retry later");
        }
        if (signed_n < 0) return aud_reply_error(r, 503, "checkpoint_topic", err);
    }
    PGconn *c = aud_req_db(r);
    if (!c) return 503;
    char ch[16];
    snprintf(ch, sizeof ch, "%" PRId64, chain);
    const char *p[1] = {chain >= 0 ? ch : NULL};
    PGresult *res = PQexecParams(
        c,
        "SELECT DISTINCT ON (chain) chain, seq, encode(hash, 'hex'), ts_us, key_id,"
        " encode(signature, 'hex') FROM lineage_checkpoints"
        " WHERE ($1::int IS NULL OR chain = $1::int) ORDER BY chain, seq DESC, id DESC",
        1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        hl_pg_error(c, res, "checkpoints", err, sizeof err);
        PQclear(res);
        return aud_req_db_fail(r, c, err);
    }
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *k = json_object();
        json_object_set_new(k, "chain", json_integer(cell_int(res, i, 0)));
        json_object_set_new(k, "seq", json_integer(cell_int(res, i, 1)));
        json_object_set_new(k, "hash", json_string(PQgetvalue(res, i, 2)));
        json_object_set_new(k, "ts_us", json_integer(cell_int(res, i, 3)));
        json_object_set_new(k, "key_id", json_string(PQgetvalue(res, i, 4)));
        json_object_set_new(k, "signature", json_string(PQgetvalue(res, i, 5)));
        json_array_append_new(arr, k);
    }
    PQclear(res);
    aud_req_db_done(r, c, 0);
    json_t *o = json_object();
    json_object_set_new(o, "key_id", json_string(aud_signer_key_id(r->a->signer)));
    json_object_set_new(o, "public_key", json_string(aud_signer_public_hex(r->a->signer)));
    json_object_set_new(o, "algorithm", json_string("ed25519"));
    json_object_set_new(o, "signed_now", json_integer(signed_n));
    json_object_set_new(o, "checkpoints", arr);
    return aud_reply_json(r, strcmp(r->method, "POST") == 0 ? 201 : 200, o);
}
