/* The configuration sections every service shares (kafka, postgres, http): their libcyaml
 * schema, their defaults and their validation, kept together so they cannot drift apart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/config.h"
#include "hl/proto.h"
#include "hl/util.h"

/* Caps on what a configuration file may hold; real values are far below them. */
#define MAX_ADDR 1024     /* broker lists, listen specs */
#define MAX_NAME 249      /* Kafka's own limit for topic names */
#define MAX_PATH_LEN 4096 /* file names */
#define MAX_PROPS 128     /* extra librdkafka properties */
#define MAX_PROP_LEN 4096

static const cyaml_schema_value_t property_entry = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 3, MAX_PROP_LEN),
};

static const cyaml_schema_field_t secret_property_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, hl_secret_property_t, name, 1, 255),
    CYAML_FIELD_STRING_PTR("env", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, hl_secret_property_t,
                           env, 1, 256),
    CYAML_FIELD_STRING_PTR("file", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, hl_secret_property_t,
                           file, 1, MAX_PATH_LEN),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t secret_property_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, hl_secret_property_t, secret_property_fields),
};

const cyaml_schema_field_t hl_kafka_fields[] = {
    CYAML_FIELD_STRING_PTR("brokers", CYAML_FLAG_OPTIONAL, hl_kafka_config_t, brokers, 1, MAX_ADDR),
    CYAML_FIELD_STRING_PTR("events_topic", CYAML_FLAG_OPTIONAL, hl_kafka_config_t, events_topic, 1,
                           MAX_NAME),
    CYAML_FIELD_STRING_PTR("lineage_topic", CYAML_FLAG_OPTIONAL, hl_kafka_config_t, lineage_topic,
                           1, MAX_NAME),
    CYAML_FIELD_STRING_PTR("dlq_topic", CYAML_FLAG_OPTIONAL, hl_kafka_config_t, dlq_topic, 1,
                           MAX_NAME),
    CYAML_FIELD_STRING_PTR("client_id", CYAML_FLAG_OPTIONAL, hl_kafka_config_t, client_id, 1,
                           MAX_NAME),
    CYAML_FIELD_SEQUENCE("properties", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, hl_kafka_config_t,
                         properties, &property_entry, 0, MAX_PROPS),
    CYAML_FIELD_SEQUENCE("secret_properties", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         hl_kafka_config_t, secret_properties, &secret_property_entry, 0,
                         MAX_PROPS),
    CYAML_FIELD_END,
};

const cyaml_schema_field_t hl_pg_fields[] = {
    CYAML_FIELD_STRING_PTR("conninfo", CYAML_FLAG_OPTIONAL, hl_pg_config_t, conninfo, 0,
                           MAX_PATH_LEN),
    CYAML_FIELD_STRING_PTR("schema", CYAML_FLAG_OPTIONAL, hl_pg_config_t, schema, 1, 63),
    CYAML_FIELD_UINT("connect_timeout_ms", CYAML_FLAG_OPTIONAL, hl_pg_config_t, connect_timeout_ms),
    CYAML_FIELD_END,
};

const cyaml_schema_field_t hl_http_fields[] = {
    CYAML_FIELD_STRING_PTR("listen", CYAML_FLAG_OPTIONAL, hl_http_config_t, listen, 1, MAX_ADDR),
    CYAML_FIELD_UINT("threads", CYAML_FLAG_OPTIONAL, hl_http_config_t, threads),
    CYAML_FIELD_STRING_PTR("tls_cert", CYAML_FLAG_OPTIONAL, hl_http_config_t, tls_cert, 0,
                           MAX_PATH_LEN),
    CYAML_FIELD_STRING_PTR("tls_key", CYAML_FLAG_OPTIONAL, hl_http_config_t, tls_key, 0,
                           MAX_PATH_LEN),
    CYAML_FIELD_UINT("request_timeout_ms", CYAML_FLAG_OPTIONAL, hl_http_config_t,
                     request_timeout_ms),
    CYAML_FIELD_END,
};

void hl_config_default_str(char **slot, const char *value)
{
    if (*slot == NULL && value != NULL) *slot = hl_xstrdup(value);
}

void hl_config_default_u32(uint32_t *slot, uint32_t value)
{
    if (*slot == 0) *slot = value;
}

void hl_config_kafka_defaults(hl_kafka_config_t *k, const char *client_id)
{
    hl_config_default_str(&k->brokers, "127.0.0.1:9092");
    hl_config_default_str(&k->events_topic, HL_TOPIC_EVENTS);
    hl_config_default_str(&k->lineage_topic, HL_TOPIC_LINEAGE);
    hl_config_default_str(&k->dlq_topic, HL_TOPIC_DLQ);
    hl_config_default_str(&k->client_id, client_id ? client_id : "hookline");
}

void hl_config_pg_defaults(hl_pg_config_t *p)
{
    hl_config_default_str(&p->conninfo, ""); /* empty: libpq reads PGHOST, PGDATABASE, ... */
    hl_config_default_str(&p->schema, "public");
    if (p->connect_timeout_ms == 0) p->connect_timeout_ms = 5000;
}

void hl_config_http_defaults(hl_http_config_t *h, const char *listen)
{
    hl_config_default_str(&h->listen, listen ? listen : "127.0.0.1:8080");
    if (h->threads == 0) h->threads = 16;
    if (h->request_timeout_ms == 0) h->request_timeout_ms = 10000;
    /* tls_cert and tls_key stay NULL: plain HTTP unless configured. */
}

/* Writes "prefix.name" into buf so messages name the field as it appears in the file. */
static const char *field_name(char *buf, size_t cap, const char *prefix, const char *name)
{
    if (prefix == NULL || prefix[0] == '\0')
        snprintf(buf, cap, "%s", name);
    else
        snprintf(buf, cap, "%s.%s", prefix, name);
    return buf;
}

static int check_topic(const char *prefix, const char *name, const char *topic, char *errbuf,
                       size_t errcap)
{
    char f[128];
    field_name(f, sizeof f, prefix, name);
    int rc = hl_config_check_str(f, topic, 1, MAX_NAME, errbuf, errcap);
    if (rc != 0) return rc;
    for (const char *p = topic; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return hl_config_fail(errbuf, errcap, f, topic,
                                  "may only contain letters, digits, '.', '_' and '-'");
    }
    return 0;
}

int hl_config_kafka_check(const char *prefix, const hl_kafka_config_t *k, char *errbuf,
                          size_t errcap)
{
    char f[128];
    int rc = hl_config_check_str(field_name(f, sizeof f, prefix, "brokers"), k->brokers, 1,
                                 MAX_ADDR, errbuf, errcap);
    if (rc == 0) rc = check_topic(prefix, "events_topic", k->events_topic, errbuf, errcap);
    if (rc == 0) rc = check_topic(prefix, "lineage_topic", k->lineage_topic, errbuf, errcap);
    if (rc == 0) rc = check_topic(prefix, "dlq_topic", k->dlq_topic, errbuf, errcap);
    if (rc == 0)
        rc = hl_config_check_str(field_name(f, sizeof f, prefix, "client_id"), k->client_id, 1,
                                 MAX_NAME, errbuf, errcap);
    if (rc != 0) return rc;
    for (unsigned i = 0; i < k->properties_count; i++) {
        const char *p = k->properties[i];
        const char *eq = p ? strchr(p, '=') : NULL;
        if (eq == NULL || eq == p) {
            /* Only the key part is echoed: the value may be a password. */
            char key[64];
            snprintf(key, sizeof key, "%.*s", eq ? 0 : 40, p ? p : "");
            return hl_config_fail(errbuf, errcap, field_name(f, sizeof f, prefix, "properties"),
                                  key, "each entry must be \"key=value\" with a non-empty key");
        }
    }
    for (unsigned i = 0; i < k->secret_properties_count; i++)
        if (k->secret_properties[i].env == NULL && k->secret_properties[i].file == NULL)
            return hl_config_fail(errbuf, errcap,
                                  field_name(f, sizeof f, prefix, "secret_properties"),
                                  k->secret_properties[i].name, "each needs env or file");
    return 0;
}

int hl_config_http_check(const char *prefix, const hl_http_config_t *h, char *errbuf, size_t errcap)
{
    char f[128];
    int rc = hl_config_check_str(field_name(f, sizeof f, prefix, "listen"), h->listen, 1, MAX_ADDR,
                                 errbuf, errcap);
    if (rc == 0)
        rc = hl_config_check_u32(field_name(f, sizeof f, prefix, "threads"), h->threads, 1, 1024,
                                 errbuf, errcap);
    if (rc == 0)
        rc = hl_config_check_u32(field_name(f, sizeof f, prefix, "request_timeout_ms"),
                                 h->request_timeout_ms, 100, 600000, errbuf, errcap);
    if (rc != 0) return rc;
    bool has_cert = h->tls_cert && h->tls_cert[0];
    bool has_key = h->tls_key && h->tls_key[0];
    if (has_key && !has_cert)
        return hl_config_fail(errbuf, errcap, field_name(f, sizeof f, prefix, "tls_cert"), NULL,
                              "must be set when tls_key is set");
    return 0;
}
