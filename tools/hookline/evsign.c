/* The evidence folder's signature: the auditor signs the manifest's digest together with the
 * newest checkpoint of every lineage chain (services/auditor/README.md, "Evidence"), and
 * `hookline evidence verify` checks both with the public keys the signature file carries (or
 * the one it is pinned to). */
#include "evidence.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/codec.h"
#include "hl/util.h"
#include "http_client.h"

#define EVIDENCE_TAG "hookline-evidence-v1\n"

int cli_evidence_sign(const char *dir, const char *host, int port, const char *token, char *errbuf,
                      size_t errcap)
{
    char path[4096], hex[65], body[128], auth[600];
    snprintf(path, sizeof path, "%s/%s", dir, CLI_EVIDENCE_MANIFEST);
    if (cli_sha256_file(path, hex) != 0) {
        snprintf(errbuf, errcap, "evidence %s: cannot read %s", dir, CLI_EVIDENCE_MANIFEST);
        return HL_EIO;
    }
    int n = snprintf(body, sizeof body, "{\"manifest_sha256\":\"%s\"}", hex);
    snprintf(auth, sizeof auth, "Bearer %s", token ? token : "");
    cli_http_header_t h[] = {{"Authorization", auth}, {"Content-Type", "application/json"}};
    cli_http_conn_t *c = cli_http_conn_new(host, port, 1 << 20, 120000);
    cli_http_response_t resp;
    int rc = cli_http_request(c, "POST", "/v1/evidence", h, 2, body, (size_t)n, &resp);
    if (rc == 0 && resp.status != 200) {
        snprintf(errbuf, errcap, "auditor answered %d to POST /v1/evidence: %.200s", resp.status,
                 resp.body);
        rc = HL_EIO;
    } else if (rc != 0) {
        snprintf(errbuf, errcap,
                 "auditor not reachable at http://%s:%d (%s) to sign the evidence: is the stack"
                 " up? deploy/local/stack status",
                 host, port, rc == HL_ETIMEDOUT ? "no answer in time" : "no connection");
    } else if ((rc = cli_evidence_write(dir, CLI_EVIDENCE_SIGNATURE, resp.body, resp.body_len))) {
        snprintf(errbuf, errcap, "evidence %s: cannot write %s", dir, CLI_EVIDENCE_SIGNATURE);
    }
    cli_http_conn_free(c);
    return rc;
}

static int ed25519_ok(const unsigned char pub[32], const void *msg, size_t n, const char *sighex)
{
    unsigned char sig[64];
    if (!sighex || strlen(sighex) != 128 || hl_hex_decode(sighex, 128, sig, 64) != 64) return 0;
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = k && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(md, sig, 64, msg, n) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

static int pub_of(const char *hex, unsigned char pub[32])
{
    return hex && strlen(hex) == 64 && hl_hex_decode(hex, 64, pub, 32) == 32;
}

/* The key of the ring whose id (first 16 hex digits of its SHA-256) is kid. */
static int ring_key(json_t *keys, const char *kid, unsigned char pub[32])
{
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        unsigned char d[32];
        char id[17];
        if (!pub_of(json_string_value(k), pub)) continue;
        SHA256(pub, 32, d);
        hl_hex(id, d, 8);
        if (kid && strcmp(id, kid) == 0) return 1;
    }
    return 0;
}

/* Checks one checkpoint's own signature and adds its line to the evidence message. */
static int take_checkpoint(json_t *cp, json_t *keys, hl_buf_t *msg)
{
    char line[400], cmsg[256];
    unsigned char pub[32];
    json_int_t chain = json_integer_value(json_object_get(cp, "chain"));
    json_int_t seq = json_integer_value(json_object_get(cp, "seq"));
    json_int_t ts = json_integer_value(json_object_get(cp, "ts_us"));
    const char *hash = json_string_value(json_object_get(cp, "hash"));
    const char *kid = json_string_value(json_object_get(cp, "key_id"));
    const char *sig = json_string_value(json_object_get(cp, "signature"));
    if (!hash || !kid || !sig || strlen(hash) != 64) return 0;
    int n = snprintf(line, sizeof line,
                     "%" JSON_INTEGER_FORMAT " %" JSON_INTEGER_FORMAT " %s %" JSON_INTEGER_FORMAT
                     " %s %s\n",
                     chain, seq, hash, ts, kid, sig);
    if (n <= 0 || (size_t)n >= sizeof line) return 0;
    hl_buf_put(msg, line, (size_t)n);
    n = snprintf(cmsg, sizeof cmsg,
                 "hookline-checkpoint-v1\n%" JSON_INTEGER_FORMAT "\n%" JSON_INTEGER_FORMAT
                 "\n%s\n%" JSON_INTEGER_FORMAT,
                 chain, seq, hash, ts);
    return ring_key(keys, kid, pub) && ed25519_ok(pub, cmsg, (size_t)n, sig);
}

int cli_evidence_check_signature(const char *dir, const char *pin, FILE *report)
{
    char path[4096], hex[65];
    char *text = NULL;
    size_t len = 0;
    unsigned char pub[32];
    int problems = 0;
    snprintf(path, sizeof path, "%s/%s", dir, CLI_EVIDENCE_SIGNATURE);
    if (hl_read_file(path, 1 << 20, &text, &len) != 0) {
        /* A run without the auditor leaves none; with a key to hold it to, that is a failure. */
        fprintf(report, "unsigned: no %s%s\n", CLI_EVIDENCE_SIGNATURE,
                pin ? ""
                    : " (the manifest alone shows the files are as listed, not who made them)");
        return pin ? 1 : 0;
    }
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    free(text);
    json_t *cps = json_object_get(o, "checkpoints"), *keys = json_object_get(o, "public_keys");
    const char *pubhex = json_string_value(json_object_get(o, "public_key"));
    const char *manifest = json_string_value(json_object_get(o, "manifest_sha256"));
    if (!json_is_array(cps) || !json_is_array(keys) || !pub_of(pubhex, pub) || !manifest ||
        strlen(manifest) != 64) {
        fprintf(report, "signature: %s is not a signature file\n", CLI_EVIDENCE_SIGNATURE);
        json_decref(o);
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, CLI_EVIDENCE_MANIFEST);
    if (cli_sha256_file(path, hex) != 0 || strcmp(hex, manifest) != 0) {
        fprintf(report, "signature: signed for another %s\n", CLI_EVIDENCE_MANIFEST);
        problems++;
    }
    if (pin && strcmp(pin, pubhex) != 0) {
        fprintf(report, "signature: made with key %.16s…, not the expected %.16s…\n", pubhex, pin);
        problems++;
    }
    hl_buf_t msg = {NULL, 0, 0};
    hl_buf_put(&msg, EVIDENCE_TAG, strlen(EVIDENCE_TAG));
    hl_buf_put(&msg, manifest, 64);
    hl_buf_put(&msg, "\n", 1);
    size_t i;
    json_t *cp;
    json_array_foreach(cps, i, cp)
    {
        if (!take_checkpoint(cp, keys, &msg)) {
            fprintf(report,
                    "checkpoint: chain %" JSON_INTEGER_FORMAT
                    " is not signed by a key of the signature file\n",
                    json_integer_value(json_object_get(cp, "chain")));
            problems++;
        }
    }
    if (!ed25519_ok(pub, msg.p, msg.len, json_string_value(json_object_get(o, "signature")))) {
        fprintf(report, "signature: does not verify\n");
        problems++;
    } else if (problems == 0) {
        fprintf(report, "signed: key %.16s…, %zu chain checkpoint%s\n", pubhex,
                json_array_size(cps), json_array_size(cps) == 1 ? "" : "s");
    }
    free(msg.p);
    json_decref(o);
    return problems;
}
