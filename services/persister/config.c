/* The persister's configuration table: every key, its default, its override and its rule. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"

#define T pst_config_t

/* X(kind, key, default, min, max, env, doc): every scalar key, declared once. The schema, the
 * defaults, the HOOKLINE_* overrides and the range checks are all expanded from it. */
#define PST_CONFIG_KEYS(X)                                                                         \
    X(STR, group_id, "hookline-persister", 1, 200, "HOOKLINE_PERSISTER_GROUP_ID",                  \
      "consumer group, also the consumer_offsets key")                                             \
    X(STR, log_level, "info", 1, 16, "HOOKLINE_LOG_LEVEL", "debug | info | warn | error")          \
    /* 65,535 rows would still fit the protocol (arrays are one parameter each); the cap keeps     \
     * a batch's memory and its transaction's lock set modest. */                                  \
    X(U32, batch_max, PST_BATCH_MAX, 1, 50000, "HOOKLINE_PERSISTER_BATCH_MAX",                     \
      "records per transaction at most")                                                           \
    X(U32, batch_linger_ms, PST_BATCH_LINGER_MS, 1, 60000, "HOOKLINE_PERSISTER_BATCH_LINGER_MS",   \
      "a batch is written at the latest this long after its first record")                         \
    /* Kafka's default message.max.bytes is 1 MiB; more than 64 MiB per row is never a             \
     * webhook. */                                                                                 \
    X(U32, max_record_bytes, PST_MAX_RECORD_BYTES, 2, 64u << 20,                                   \
      "HOOKLINE_PERSISTER_MAX_RECORD_BYTES", "a value over this is dead-lettered as too_large")    \
    X(U32, retry_base_ms, 100, 1, 60000, "HOOKLINE_PERSISTER_RETRY_BASE_MS",                       \
      "first backoff ceiling after a transient failure")                                           \
    X(U32, retry_cap_ms, 5000, 1, 600000, "HOOKLINE_PERSISTER_RETRY_CAP_MS",                       \
      "backoff ceiling never exceeds this (at least retry_base_ms)")                               \
    X(U32, dlq_timeout_ms, 10000, 100, 600000, NULL,                                               \
      "wait for the DLQ acknowledgement before giving up a try")                                   \
    X(U32, shutdown_timeout_ms, 15000, 100, 600000, NULL,                                          \
      "on SIGTERM, longest wait to finish the batch in hand")

#define KEY_ROW(...) HL_CONFIG_KEY(T, __VA_ARGS__)
const hl_config_key_t pst_config_keys[] = {PST_CONFIG_KEYS(KEY_ROW)};
const size_t pst_config_nkeys = sizeof(pst_config_keys) / sizeof(pst_config_keys[0]);
#define keys pst_config_keys
#define NKEYS (sizeof keys / sizeof keys[0])

#define KEY_FIELD(...) HL_CONFIG_FIELD(T, __VA_ARGS__)
static const cyaml_schema_field_t fields[] = {
    CYAML_FIELD_MAPPING("kafka", CYAML_FLAG_OPTIONAL, T, kafka, hl_kafka_fields),
    CYAML_FIELD_MAPPING("postgres", CYAML_FLAG_OPTIONAL, T, postgres, hl_pg_fields),
    CYAML_FIELD_MAPPING("http", CYAML_FLAG_OPTIONAL, T, http, hl_http_fields),
    PST_CONFIG_KEYS(KEY_FIELD) CYAML_FIELD_END,
};

const cyaml_schema_value_t pst_config_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, T, fields),
};

/* The shared sections' overrides; the service's own keys carry theirs in the table. */
#define ENV(...) HL_ENV_ROW(T, __VA_ARGS__)
static const hl_env_override_t env_rows[] = {
    ENV("HOOKLINE_KAFKA_BROKERS", HL_ENV_STR, kafka.brokers),
    ENV("HOOKLINE_KAFKA_EVENTS_TOPIC", HL_ENV_STR, kafka.events_topic),
    ENV("HOOKLINE_KAFKA_LINEAGE_TOPIC", HL_ENV_STR, kafka.lineage_topic),
    ENV("HOOKLINE_KAFKA_DLQ_TOPIC", HL_ENV_STR, kafka.dlq_topic),
    ENV("HOOKLINE_POSTGRES_CONNINFO", HL_ENV_STR, postgres.conninfo),
    ENV("HOOKLINE_POSTGRES_SCHEMA", HL_ENV_STR, postgres.schema),
    ENV("HOOKLINE_HTTP_LISTEN", HL_ENV_STR, http.listen),
};

static void apply_defaults(T *c)
{
    hl_config_kafka_defaults(&c->kafka, "hookline-persister");
    hl_config_pg_defaults(&c->postgres);
    hl_config_http_defaults(&c->http, "127.0.0.1:8081");
    if (c->http.threads == 16) c->http.threads = 2; /* three endpoints, scraped rarely */
    hl_config_keys_defaults(c, keys, NKEYS);
}

int pst_config_finish(T *c, char *errbuf, size_t errcap)
{
    hl_log_level_t lvl;
    char num[24];
    apply_defaults(c);
    int rc = hl_config_kafka_check("kafka", &c->kafka, errbuf, errcap);
    if (rc == 0) rc = hl_config_http_check("http", &c->http, errbuf, errcap);
    /* Delivery reports tell DLQ records from lineage records by their topic. */
    if (rc == 0 && strcmp(c->kafka.dlq_topic, c->kafka.lineage_topic) == 0)
        rc = hl_config_fail(errbuf, errcap, "kafka.dlq_topic", c->kafka.dlq_topic,
                            "must differ from kafka.lineage_topic");
    if (rc == 0) rc = hl_config_keys_check(c, keys, NKEYS, errbuf, errcap);
    if (rc == 0 && hl_log_level_parse(c->log_level, &lvl) != 0)
        rc = hl_config_fail(errbuf, errcap, "log_level", c->log_level,
                            "must be debug, info, warn or error");
    if (rc == 0 && c->retry_cap_ms < c->retry_base_ms) {
        snprintf(num, sizeof num, "%u", c->retry_cap_ms);
        rc = hl_config_fail(errbuf, errcap, "retry_cap_ms", num, "must be >= retry_base_ms");
    }
    return rc;
}

static int finish(void *c, char *errbuf, size_t errcap)
{
    return pst_config_finish(c, errbuf, errcap);
}

#define NENV (sizeof env_rows / sizeof env_rows[0])
static const hl_config_spec_t spec = {&pst_config_schema, env_rows, NENV, keys, NKEYS, finish};

void pst_config_free(T *c)
{
    hl_config_free(&pst_config_schema, c);
}

int pst_config_load(const char *path, T **out, char *errbuf, size_t errcap)
{
    void *c = NULL;
    int rc = hl_config_load_spec(path, &spec, &c, errbuf, errcap);
    *out = c;
    return rc;
}
