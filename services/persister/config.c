/* The persister's configuration table: every key, its default, its override and its rule. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"

#define T hl_persister_config_t

static const cyaml_schema_field_t fields[] = {
    CYAML_FIELD_MAPPING("kafka", CYAML_FLAG_OPTIONAL, T, kafka, hl_kafka_fields),
    CYAML_FIELD_MAPPING("postgres", CYAML_FLAG_OPTIONAL, T, postgres, hl_pg_fields),
    CYAML_FIELD_MAPPING("http", CYAML_FLAG_OPTIONAL, T, http, hl_http_fields),
    CYAML_FIELD_STRING_PTR("group_id", CYAML_FLAG_OPTIONAL, T, group_id, 1, 200),
    CYAML_FIELD_STRING_PTR("log_level", CYAML_FLAG_OPTIONAL, T, log_level, 1, 16),
    CYAML_FIELD_UINT("batch_max", CYAML_FLAG_OPTIONAL, T, batch_max),
    CYAML_FIELD_UINT("batch_linger_ms", CYAML_FLAG_OPTIONAL, T, batch_linger_ms),
    CYAML_FIELD_UINT("max_record_bytes", CYAML_FLAG_OPTIONAL, T, max_record_bytes),
    CYAML_FIELD_UINT("retry_base_ms", CYAML_FLAG_OPTIONAL, T, retry_base_ms),
    CYAML_FIELD_UINT("retry_cap_ms", CYAML_FLAG_OPTIONAL, T, retry_cap_ms),
    CYAML_FIELD_UINT("dlq_timeout_ms", CYAML_FLAG_OPTIONAL, T, dlq_timeout_ms),
    CYAML_FIELD_UINT("shutdown_timeout_ms", CYAML_FLAG_OPTIONAL, T, shutdown_timeout_ms),
    CYAML_FIELD_END,
};

const cyaml_schema_value_t hl_persister_config_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, T, fields),
};

#define ENV(var, type, field) {var, type, offsetof(T, field)}
static const hl_env_override_t env_rows[] = {
    ENV("HOOKLINE_KAFKA_BROKERS", HL_ENV_STR, kafka.brokers),
    ENV("HOOKLINE_KAFKA_EVENTS_TOPIC", HL_ENV_STR, kafka.events_topic),
    ENV("HOOKLINE_KAFKA_LINEAGE_TOPIC", HL_ENV_STR, kafka.lineage_topic),
    ENV("HOOKLINE_KAFKA_DLQ_TOPIC", HL_ENV_STR, kafka.dlq_topic),
    ENV("HOOKLINE_POSTGRES_CONNINFO", HL_ENV_STR, postgres.conninfo),
    ENV("HOOKLINE_POSTGRES_SCHEMA", HL_ENV_STR, postgres.schema),
    ENV("HOOKLINE_HTTP_LISTEN", HL_ENV_STR, http.listen),
    ENV("HOOKLINE_PERSISTER_GROUP_ID", HL_ENV_STR, group_id),
    ENV("HOOKLINE_LOG_LEVEL", HL_ENV_STR, log_level),
    ENV("HOOKLINE_PERSISTER_BATCH_MAX", HL_ENV_U32, batch_max),
    ENV("HOOKLINE_PERSISTER_BATCH_LINGER_MS", HL_ENV_U32, batch_linger_ms),
    ENV("HOOKLINE_PERSISTER_MAX_RECORD_BYTES", HL_ENV_U32, max_record_bytes),
    ENV("HOOKLINE_PERSISTER_RETRY_BASE_MS", HL_ENV_U32, retry_base_ms),
    ENV("HOOKLINE_PERSISTER_RETRY_CAP_MS", HL_ENV_U32, retry_cap_ms),
};

static void apply_defaults(T *c)
{
    hl_config_kafka_defaults(&c->kafka, "hookline-persister");
    hl_config_pg_defaults(&c->postgres);
    hl_config_http_defaults(&c->http, "127.0.0.1:8081");
    if (c->http.threads == 16) c->http.threads = 2; /* three endpoints, scraped rarely */
    hl_config_default_str(&c->group_id, "hookline-persister");
    hl_config_default_str(&c->log_level, "info");
    hl_config_default_u32(&c->batch_max, HL_PERSISTER_BATCH_MAX);
    hl_config_default_u32(&c->batch_linger_ms, HL_PERSISTER_BATCH_LINGER_MS);
    hl_config_default_u32(&c->max_record_bytes, HL_PERSISTER_MAX_RECORD_BYTES);
    hl_config_default_u32(&c->retry_base_ms, 100);
    hl_config_default_u32(&c->retry_cap_ms, 5000);
    hl_config_default_u32(&c->dlq_timeout_ms, 10000);
    hl_config_default_u32(&c->shutdown_timeout_ms, 15000);
}

int hl_persister_config_finish(T *c, char *errbuf, size_t errcap)
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
    if (rc == 0) rc = hl_config_check_str("group_id", c->group_id, 1, 200, errbuf, errcap);
    if (rc == 0 && hl_log_level_parse(c->log_level, &lvl) != 0)
        rc = hl_config_fail(errbuf, errcap, "log_level", c->log_level,
                            "must be debug, info, warn or error");
    /* 65,535 rows would still fit the protocol (arrays are one parameter each); the cap keeps a
     * batch's memory and its transaction's lock set modest. */
    if (rc == 0) rc = hl_config_check_u32("batch_max", c->batch_max, 1, 50000, errbuf, errcap);
    if (rc == 0)
        rc = hl_config_check_u32("batch_linger_ms", c->batch_linger_ms, 1, 60000, errbuf, errcap);
    /* Kafka's default message.max.bytes is 1 MiB; more than 64 MiB per row is never a webhook. */
    if (rc == 0)
        rc = hl_config_check_u32("max_record_bytes", c->max_record_bytes, 2, 64u << 20, errbuf,
                                 errcap);
    if (rc == 0)
        rc = hl_config_check_u32("retry_base_ms", c->retry_base_ms, 1, 60000, errbuf, errcap);
    if (rc == 0)
        rc = hl_config_check_u32("retry_cap_ms", c->retry_cap_ms, 1, 600000, errbuf, errcap);
    if (rc == 0 && c->retry_cap_ms < c->retry_base_ms) {
        snprintf(num, sizeof num, "%u", c->retry_cap_ms);
        rc = hl_config_fail(errbuf, errcap, "retry_cap_ms", num, "must be >= retry_base_ms");
    }
    if (rc == 0)
        rc = hl_config_check_u32("dlq_timeout_ms", c->dlq_timeout_ms, 100, 600000, errbuf, errcap);
    if (rc == 0)
        rc = hl_config_check_u32("shutdown_timeout_ms", c->shutdown_timeout_ms, 100, 600000,
                                 errbuf, errcap);
    return rc;
}

int hl_persister_config_load(const char *path, T **out, char *errbuf, size_t errcap)
{
    void *raw = NULL;
    *out = NULL;
    int rc = hl_config_load(path, &hl_persister_config_schema, &raw, errbuf, errcap);
    if (rc != 0) return rc;
    T *c = raw;
    rc = hl_config_env(c, env_rows, sizeof(env_rows) / sizeof(env_rows[0]), errbuf, errcap);
    if (rc == 0) rc = hl_persister_config_finish(c, errbuf, errcap);
    if (rc != 0) {
        hl_persister_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void hl_persister_config_free(T *c)
{
    hl_config_free(&hl_persister_config_schema, c);
}
