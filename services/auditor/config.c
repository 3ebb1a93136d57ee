/* The auditor's configuration table: every key, its default, its override and its rule. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "auth.h"
#include "chain.h"
#include "checkpoint.h"
#include "hl/codec.h"
#include "hl/log.h"
#include "hl/proto.h"
#include "hl/util.h"

#define T aud_config_t

static const cyaml_strval_t role_names[] = {
    {"auditor", AUD_ROLE_AUDITOR},
    {"admin", AUD_ROLE_ADMIN},
    {"metrics", AUD_ROLE_METRICS},
};

static const cyaml_schema_field_t token_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, aud_token_cfg_t, name, 1, 63),
    CYAML_FIELD_STRING_PTR("sha256", CYAML_FLAG_POINTER, aud_token_cfg_t, sha256, 64, 64),
    CYAML_FIELD_FLAGS("roles", CYAML_FLAG_DEFAULT, aud_token_cfg_t, roles, role_names,
                      sizeof role_names / sizeof role_names[0]),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t token_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, aud_token_cfg_t, token_fields),
};

static const cyaml_schema_value_t public_key_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 64, 64),
};

/* X(kind, key, default, min, max, env, doc): the scalar keys of each section, declared once.
 * The schema, the defaults, the HOOKLINE_* overrides and the range checks are expanded from
 * them; the keys that are not plain numbers or strings with a default (key_file, the lists,
 * slo.target) are written out below. */
#define AUD_CONFIG_KEYS(X)                                                                         \
    X(STR, group_id, "hookline-auditor", 1, 200, "HOOKLINE_AUDITOR_GROUP_ID",                      \
      "consumer group of the lineage topic, also the consumer_offsets key")                        \
    X(STR, log_level, "info", 1, 16, "HOOKLINE_LOG_LEVEL", "debug | info | warn | error")          \
    X(U32, batch_max, 2000, 1, 20000, "HOOKLINE_AUDITOR_BATCH_MAX",                                \
      "lineage records per transaction")                                                           \
    X(U32, batch_linger_ms, 200, 1, 10000, NULL, "longest wait to fill a batch")                   \
    X(U32, rollup_fold_ms, 5000, 100, 600000, NULL,                                                \
      "how often the batches' latency counts are folded into latency_rollups")                     \
    X(U32, gap_grace_s, 60, 1, 86400, "HOOKLINE_AUDITOR_GAP_GRACE_S",                              \
      "an accepted request without commit after this is a gap")                                    \
    X(U32, gap_scan_interval_s, 10, 1, 3600, NULL, "how often the open gaps are counted")          \
    X(U32, gap_scan_pending_max, 500000, 100, 5000000, NULL,                                       \
      "accepted requests awaiting an outcome the gap count follows one by one (~200 B each)")      \
    X(U32, page_limit_max, 1000, 1, 10000, NULL, "cap on ?limit=")                                 \
    X(U32, shutdown_timeout_ms, 15000, 1, UINT32_MAX, NULL,                                        \
      "on SIGTERM, longest wait for the threads to finish")
#define AUD_CHECKPOINT_KEYS(X)                                                                     \
    X(U32, interval_s, 60, 1, 86400, NULL, "how often each chain head is signed")                  \
    X(STR, topic, HL_TOPIC_CHECKPOINTS, 1, 249, "HOOKLINE_AUDITOR_CHECKPOINT_TOPIC",               \
      "Kafka topic the signed checkpoints are also published to")
#define AUD_SLO_KEYS(X)                                                                            \
    X(U32, ack_ms, 250, 1, 600000, NULL, "an accepted request answered within this is good")       \
    X(U32, e2e_ms, 2000, 1, 3600000, NULL, "end-to-end latency objective")

/* One table for every section: a section's keys are named "section.key" in errors. */
#define KEY_ROW(...) HL_CONFIG_KEY(T, __VA_ARGS__)
#define CP_ROW(kind, key, ...) HL_CONFIG_KEY(T, kind, checkpoint.key, __VA_ARGS__)
#define SLO_ROW(kind, key, ...) HL_CONFIG_KEY(T, kind, slo.key, __VA_ARGS__)
static const hl_config_key_t keys[] = {AUD_CONFIG_KEYS(KEY_ROW) AUD_CHECKPOINT_KEYS(CP_ROW)
                                           AUD_SLO_KEYS(SLO_ROW)};
#define NKEYS (sizeof keys / sizeof keys[0])

#define CP_FIELD(...) HL_CONFIG_FIELD(aud_checkpoint_cfg_t, __VA_ARGS__)
static const cyaml_schema_field_t checkpoint_fields[] = {
    CYAML_FIELD_STRING_PTR("key_file", CYAML_FLAG_OPTIONAL, aud_checkpoint_cfg_t, key_file, 1,
                           4096),
    CYAML_FIELD_BOOL("generate_if_missing", CYAML_FLAG_OPTIONAL, aud_checkpoint_cfg_t,
                     generate_if_missing),
    AUD_CHECKPOINT_KEYS(CP_FIELD) CYAML_FIELD_SEQUENCE(
        "public_keys", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, aud_checkpoint_cfg_t, public_keys,
        &public_key_entry, 0, AUD_KEYRING_MAX - 1),
    CYAML_FIELD_END,
};

#define SLO_FIELD(...) HL_CONFIG_FIELD(aud_slo_cfg_t, __VA_ARGS__)
static const cyaml_schema_field_t slo_fields[] = {
    AUD_SLO_KEYS(SLO_FIELD) CYAML_FIELD_FLOAT("target", CYAML_FLAG_OPTIONAL, aud_slo_cfg_t, target),
    CYAML_FIELD_END,
};

/* hl_pg_fields' keys (in aud_pg_cfg_t.w) and the API's own conninfo. */
static const cyaml_schema_field_t pg_fields[] = {
    CYAML_FIELD_STRING_PTR("conninfo", CYAML_FLAG_OPTIONAL, aud_pg_cfg_t, w.conninfo, 0, 4096),
    CYAML_FIELD_STRING_PTR("read_conninfo", CYAML_FLAG_OPTIONAL, aud_pg_cfg_t, read_conninfo, 0,
                           4096),
    CYAML_FIELD_STRING_PTR("schema", CYAML_FLAG_OPTIONAL, aud_pg_cfg_t, w.schema, 1, 63),
    CYAML_FIELD_UINT("connect_timeout_ms", CYAML_FLAG_OPTIONAL, aud_pg_cfg_t, w.connect_timeout_ms),
    CYAML_FIELD_END,
};

#define KEY_FIELD(...) HL_CONFIG_FIELD(T, __VA_ARGS__)
static const cyaml_schema_field_t fields[] = {
    CYAML_FIELD_MAPPING("kafka", CYAML_FLAG_OPTIONAL, T, kafka, hl_kafka_fields),
    CYAML_FIELD_MAPPING("postgres", CYAML_FLAG_OPTIONAL, T, postgres, pg_fields),
    CYAML_FIELD_MAPPING("http", CYAML_FLAG_OPTIONAL, T, http, hl_http_fields),
    AUD_CONFIG_KEYS(KEY_FIELD)
        CYAML_FIELD_MAPPING("checkpoint", CYAML_FLAG_OPTIONAL, T, checkpoint, checkpoint_fields),
    CYAML_FIELD_MAPPING("slo", CYAML_FLAG_OPTIONAL, T, slo, slo_fields),
    CYAML_FIELD_SEQUENCE("tokens", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, T, tokens,
                         &token_entry, 0, 256),
    CYAML_FIELD_BOOL("secret_files_shared", CYAML_FLAG_OPTIONAL, T, secret_files_shared),
    CYAML_FIELD_STRING_PTR("signature_sources", CYAML_FLAG_OPTIONAL, T, signature_sources, 1, 4096),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, T, fields),
};

/* The shared sections' overrides and the keys outside the table; the table's keys carry
 * theirs. */
#define ENV(...) HL_ENV_ROW(T, __VA_ARGS__)
static const hl_env_override_t env_rows[] = {
    ENV("HOOKLINE_KAFKA_BROKERS", HL_ENV_STR, kafka.brokers),
    ENV("HOOKLINE_KAFKA_LINEAGE_TOPIC", HL_ENV_STR, kafka.lineage_topic),
    ENV("HOOKLINE_POSTGRES_CONNINFO", HL_ENV_STR, postgres.w.conninfo),
    ENV("HOOKLINE_POSTGRES_READ_CONNINFO", HL_ENV_STR, postgres.read_conninfo),
    ENV("HOOKLINE_POSTGRES_SCHEMA", HL_ENV_STR, postgres.w.schema),
    ENV("HOOKLINE_HTTP_LISTEN", HL_ENV_STR, http.listen),
    ENV("HOOKLINE_AUDITOR_CHECKPOINT_KEY_FILE", HL_ENV_STR, checkpoint.key_file),
    ENV("HOOKLINE_SECRET_FILES_SHARED", HL_ENV_BOOL, secret_files_shared),
    ENV("HOOKLINE_AUDITOR_SIGNATURE_SOURCES", HL_ENV_STR, signature_sources),
};

static void apply_defaults(T *c)
{
    hl_config_kafka_defaults(&c->kafka, "hookline-auditor");
    hl_config_pg_defaults(&c->postgres.w);
    const char *rc = c->postgres.read_conninfo;
    c->postgres_read = c->postgres.w;
    if (rc && rc[0]) {
        c->postgres_read.conninfo = c->postgres.read_conninfo;
        const char *pw = getenv("HOOKLINE_POSTGRES_READ_PASSWORD");
        c->postgres_read.password = pw && pw[0] ? pw : NULL;
    }
    hl_config_http_defaults(&c->http, "127.0.0.1:8090");
    /* A worker is held by every connection, slow or idle ones included, until its timeout:
     * enough of them that a few hundred slow clients leave room for the API. */
    if (c->http.threads == 16) c->http.threads = 1024;
    hl_config_keys_defaults(c, keys, NKEYS);
    if (c->slo.target == 0) c->slo.target = 0.999;
}

static int check_tokens(const T *c, char *errbuf, size_t errcap)
{
    unsigned char d[AUD_CHAIN_HASH_LEN];
    for (unsigned i = 0; i < c->tokens_count; i++) {
        const aud_token_cfg_t *t = &c->tokens[i];
        if (aud_chain_unhex(t->sha256, d) != 0)
            return hl_config_fail(errbuf, errcap, "tokens[].sha256", t->name,
                                  "must be 64 hex digits (sha256sum of the token)");
        if (t->roles == 0)
            return hl_config_fail(errbuf, errcap, "tokens[].roles", t->name,
                                  "must list at least one of auditor, admin, metrics");
    }
    return 0;
}

/* A connection string libpq cannot parse would never connect: refused at start. Its text is
 * never echoed, nor libpq's message about it (either may carry a password). */
static int check_conninfo(const char *field, const char *s, char *errbuf, size_t errcap)
{
    if (s == NULL || s[0] == '\0') return 0;
    char *perr = NULL;
    PQconninfoOption *o = PQconninfoParse(s, &perr);
    PQfreemem(perr);
    if (o != NULL) {
        PQconninfoFree(o);
        return 0;
    }
    return hl_config_fail(errbuf, errcap, field, NULL,
                          "is not a libpq connection string (key=value pairs or a "
                          "postgresql:// URI)");
}

int aud_config_finish(T *c, char *errbuf, size_t errcap)
{
    hl_log_level_t lvl;
    char num[32];
    apply_defaults(c);
    c->kafka.secret_files_shared = c->secret_files_shared;
    int rc = hl_config_kafka_check("kafka", &c->kafka, errbuf, errcap);
    if (rc == 0) rc = hl_config_http_check("http", &c->http, errbuf, errcap);
    if (rc == 0)
        rc = check_conninfo("postgres.read_conninfo", c->postgres.read_conninfo, errbuf, errcap);
    if (rc == 0 && (c->checkpoint.key_file == NULL || c->checkpoint.key_file[0] == '\0'))
        rc = hl_config_fail(errbuf, errcap, "checkpoint.key_file", "(empty)",
                            "is required: checkpoints are signed with it");
    if (rc == 0) rc = hl_config_keys_check(c, keys, NKEYS, errbuf, errcap);
    if (rc == 0 && hl_log_level_parse(c->log_level, &lvl) != 0)
        rc = hl_config_fail(errbuf, errcap, "log_level", c->log_level,
                            "must be debug, info, warn or error");
    if (rc == 0 && !(c->slo.target > 0 && c->slo.target < 1)) {
        snprintf(num, sizeof num, "%g", c->slo.target);
        rc = hl_config_fail(errbuf, errcap, "slo.target", num, "must be between 0 and 1");
    }
    if (rc == 0 && c->tokens_count == 0)
        rc = hl_config_fail(errbuf, errcap, "tokens", "(none)",
                            "at least one token is needed: every endpoint but health needs one");
    if (rc == 0) rc = check_tokens(c, errbuf, errcap);
    for (unsigned i = 0; rc == 0 && i < c->checkpoint.public_keys_count; i++) {
        unsigned char pub[32];
        if (hl_hex_decode(c->checkpoint.public_keys[i], 64, pub, 32) != 32)
            rc = hl_config_fail(errbuf, errcap, "checkpoint.public_keys[]",
                                c->checkpoint.public_keys[i],
                                "must be 64 hex digits (a raw Ed25519 public key)");
    }
    return rc;
}

static int finish(void *c, char *errbuf, size_t errcap)
{
    return aud_config_finish(c, errbuf, errcap);
}

#define NENV (sizeof env_rows / sizeof env_rows[0])
static const hl_config_spec_t spec = {&schema, env_rows, NENV, keys, NKEYS, finish};

int aud_config_load(const char *path, T **out, char *errbuf, size_t errcap)
{
    void *c = NULL;
    int rc = hl_config_load_spec(path, &spec, &c, errbuf, errcap);
    *out = c;
    return rc;
}

void aud_config_free(T *c)
{
    if (c) hl_config_free(&schema, c);
}
