/* The ingress configuration table: libcyaml schema, defaults, limits and HOOKLINE_*
 * overrides are all generated from ING_CONFIG_KNOBS / ING_SOURCE_KNOBS in config.h. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "hl/sigverify.h"
#include "extract.h"
#include "hl/log.h"
#include "hl/util.h"
#include "source_name.h"

static const cyaml_schema_field_t secret_fields[] = {
    CYAML_FIELD_STRING_PTR("env", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, ing_secret_ref_t, env,
                           1, 256),
    CYAML_FIELD_STRING_PTR("file", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, ing_secret_ref_t, file,
                           1, 4096),
    CYAML_FIELD_END};

static const cyaml_schema_value_t secret_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, ing_secret_ref_t, secret_fields)};

static const cyaml_schema_value_t key_string_schema = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, 4096)};

#define OPT_STR(key, max)                                                                          \
    CYAML_FIELD_STRING_PTR(#key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, ing_source_cfg_t, key,  \
                           0, max)
#define SRC_UINT(key, def, min, max, doc)                                                          \
    CYAML_FIELD_UINT(#key, CYAML_FLAG_OPTIONAL, ing_source_cfg_t, key),

static const cyaml_schema_field_t source_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER, ing_source_cfg_t, name, 1,
                           ING_SOURCE_NAME_MAX),
    CYAML_FIELD_STRING_PTR("scheme", CYAML_FLAG_POINTER, ing_source_cfg_t, scheme, 1, 32),
    CYAML_FIELD_SEQUENCE("secrets", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, ing_source_cfg_t,
                         secrets, &secret_schema, 0, HL_SIG_MAX_KEYS),
    CYAML_FIELD_SEQUENCE("public_keys", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, ing_source_cfg_t,
                         public_keys, &key_string_schema, 0, HL_SIG_MAX_KEYS),
    OPT_STR(header, 63),
    OPT_STR(prefix, 31),
    OPT_STR(encoding, 16),
    OPT_STR(message_id, 256),
    OPT_STR(message_id_header, 63),
    OPT_STR(event_type, 256),
    OPT_STR(event_type_header, 63),
    CYAML_FIELD_BOOL("split", CYAML_FLAG_OPTIONAL, ing_source_cfg_t, split),
    ING_SOURCE_KNOBS(SRC_UINT) CYAML_FIELD_END};

static const cyaml_schema_value_t source_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, ing_source_cfg_t, source_fields)};

#define TOP_STR(key, max)                                                                          \
    CYAML_FIELD_STRING_PTR(#key, CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL, ing_config_t, key, 1,   \
                           max)
#define TOP_UINT(key, def, min, max, env, doc)                                                     \
    CYAML_FIELD_UINT(#key, CYAML_FLAG_OPTIONAL, ing_config_t, key),

static const cyaml_schema_field_t top_fields[] = {
    CYAML_FIELD_MAPPING("http", CYAML_FLAG_OPTIONAL, ing_config_t, http, hl_http_fields),
    CYAML_FIELD_MAPPING("kafka", CYAML_FLAG_OPTIONAL, ing_config_t, kafka, hl_kafka_fields),
    TOP_STR(log_level, 16),
    TOP_STR(ack_mode, 16),
    TOP_STR(default_source, ING_SOURCE_NAME_MAX),
    TOP_STR(metrics_listen, 256),
    CYAML_FIELD_BOOL("secret_files_shared", CYAML_FLAG_OPTIONAL, ing_config_t, secret_files_shared),
    ING_CONFIG_KNOBS(TOP_UINT) CYAML_FIELD_SEQUENCE("sources", CYAML_FLAG_POINTER, ing_config_t,
                                                    sources, &source_schema, 1, ING_MAX_SOURCES),
    CYAML_FIELD_END};

const cyaml_schema_value_t ing_config_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, ing_config_t, top_fields)};

#define ENV_ROW(key, def, min, max, env, doc) {env, HL_ENV_U32, offsetof(ing_config_t, key)},
static const hl_env_override_t env_rows[] = {
    {"HOOKLINE_KAFKA_BROKERS", HL_ENV_STR, offsetof(ing_config_t, kafka.brokers)},
    {"HOOKLINE_EVENTS_TOPIC", HL_ENV_STR, offsetof(ing_config_t, kafka.events_topic)},
    {"HOOKLINE_LINEAGE_TOPIC", HL_ENV_STR, offsetof(ing_config_t, kafka.lineage_topic)},
    {"HOOKLINE_HTTP_LISTEN", HL_ENV_STR, offsetof(ing_config_t, http.listen)},
    {"HOOKLINE_HTTP_THREADS", HL_ENV_U32, offsetof(ing_config_t, http.threads)},
    {"HOOKLINE_LOG_LEVEL", HL_ENV_STR, offsetof(ing_config_t, log_level)},
    {"HOOKLINE_ACK_MODE", HL_ENV_STR, offsetof(ing_config_t, ack_mode)},
    {"HOOKLINE_METRICS_LISTEN", HL_ENV_STR, offsetof(ing_config_t, metrics_listen)},
    {"HOOKLINE_SECRET_FILES_SHARED", HL_ENV_BOOL, offsetof(ing_config_t, secret_files_shared)},
    ING_CONFIG_KNOBS(ENV_ROW)};

static void set_str_default(char **field, const char *def)
{
    if (*field == NULL) *field = hl_xstrdup(def);
}

static int finish_knobs(ing_config_t *c, char *errbuf, size_t errcap)
{
#define KNOB_CHECK(key, def, min, max, env, doc)                                                   \
    if (c->key == 0) c->key = (def);                                                               \
    if (hl_config_check_u32(#key, c->key, (min), (max), errbuf, errcap) != 0) return HL_ECONFIG;
    ING_CONFIG_KNOBS(KNOB_CHECK)
#undef KNOB_CHECK
    return 0;
}

/* The rule the request path is held to, without its percent escapes: a configured name is
 * written as it is. */
static bool name_ok(const char *s)
{
    char decoded[ING_SOURCE_NAME_MAX + 1];
    return strchr(s, '%') == NULL && ing_source_name_decode(s, strlen(s), decoded) > 0;
}

static int source_field_fail(char *errbuf, size_t errcap, unsigned i, const char *key,
                             const char *value, const char *rule)
{
    char field[96];
    snprintf(field, sizeof(field), "sources[%u].%s", i, key);
    return hl_config_fail(errbuf, errcap, field, value ? value : "(unset)", rule);
}

static int finish_pointer(char **ptr, const char *hdr, const char *def, unsigned i, const char *key,
                          char *errbuf, size_t errcap)
{
    if (hdr != NULL && *ptr != NULL)
        return source_field_fail(errbuf, errcap, i, key, *ptr,
                                 "set either the pointer or the header");
    if (hdr != NULL || (*ptr == NULL && def == NULL)) return 0;
    set_str_default(ptr, def);
    if (**ptr == '\0' || !ing_pointer_valid(*ptr))
        return source_field_fail(errbuf, errcap, i, key, *ptr,
                                 "must be an RFC 6901 pointer like /a/b");
    return 0;
}

static int finish_source(ing_source_cfg_t *s, unsigned i, char *errbuf, size_t errcap)
{
    char field[96];
    if (!name_ok(s->name))
        return source_field_fail(errbuf, errcap, i, "name", s->name, "only a-z 0-9 _ -");
    hl_sig_scheme_t sch = hl_sig_scheme_parse(s->scheme);
    if (sch == HL_SIG_SCHEME_NONE)
        return source_field_fail(errbuf, errcap, i, "scheme", s->scheme,
                                 "standard-webhooks|stripe|hmac-sha256|bearer|sendgrid");
#define SRC_CHECK(key, def, min, max, doc)                                                         \
    if (s->key == 0) s->key = (def);                                                               \
    snprintf(field, sizeof(field), "sources[%u]." #key, i);                                        \
    if (hl_config_check_u32(field, s->key, (min), (max), errbuf, errcap) != 0) return HL_ECONFIG;
    ING_SOURCE_KNOBS(SRC_CHECK)
#undef SRC_CHECK
    if (s->burst == 0) s->burst = s->rate_per_sec;
    if (sch == HL_SIG_SCHEME_HMAC && (s->header == NULL || *s->header == '\0'))
        return source_field_fail(errbuf, errcap, i, "header", s->header,
                                 "required for hmac-sha256");
    if (sch == HL_SIG_SCHEME_BEARER) set_str_default(&s->header, "Authorization");
    set_str_default(&s->encoding, "hex");
    if (strcmp(s->encoding, "hex") != 0 && strcmp(s->encoding, "base64") != 0)
        return source_field_fail(errbuf, errcap, i, "encoding", s->encoding, "hex|base64");
    set_str_default(&s->prefix, "");
    if (s->secrets_count + s->public_keys_count == 0)
        return source_field_fail(errbuf, errcap, i, "secrets", NULL, "at least one secret or key");
    if (s->public_keys_count > 0 && sch != HL_SIG_SCHEME_SENDGRID && sch != HL_SIG_SCHEME_STANDARD)
        return source_field_fail(errbuf, errcap, i, "public_keys", s->public_keys[0],
                                 "only for sendgrid and standard-webhooks (whpk_)");
    for (unsigned k = 0; k < s->secrets_count; k++)
        if (s->secrets[k].env == NULL && s->secrets[k].file == NULL)
            return source_field_fail(errbuf, errcap, i, "secrets", NULL, "each needs env or file");
    /* Standard Webhooks signs a message id of its own: without a pointer or header it is
     * the one taken (see ing_sources_message_id). */
    const char *mid = sch == HL_SIG_SCHEME_STANDARD ? NULL : "/messageId";
    if (finish_pointer(&s->message_id, s->message_id_header, mid, i, "message_id", errbuf,
                       errcap) != 0 ||
        finish_pointer(&s->event_type, s->event_type_header, "/eventType", i, "event_type", errbuf,
                       errcap) != 0)
        return HL_ECONFIG;
    /* Each element of a batch needs an id of its own, read from the element. */
    if (s->split && s->message_id == NULL)
        return source_field_fail(errbuf, errcap, i, "split", "true",
                                 "needs message_id, a JSON pointer into each element");
    return 0;
}

int ing_config_finish(ing_config_t *c, char *errbuf, size_t errcap)
{
    if (c->http.threads == 0) c->http.threads = 1024;
    if (c->http.request_timeout_ms == 0) c->http.request_timeout_ms = 10000;
    hl_config_http_defaults(&c->http, "127.0.0.1:8080");
    hl_config_kafka_defaults(&c->kafka, "hookline-ingress");
    if (hl_config_http_check("http", &c->http, errbuf, errcap) != 0 ||
        hl_config_kafka_check("kafka", &c->kafka, errbuf, errcap) != 0 ||
        finish_knobs(c, errbuf, errcap) != 0)
        return HL_ECONFIG;
    /* civetweb serves TLS only on ports marked with an "s" suffix. */
    bool tls = c->http.tls_cert != NULL && c->http.tls_cert[0] != '\0';
    size_t ll = strlen(c->http.listen);
    if (tls != (ll > 0 && c->http.listen[ll - 1] == 's'))
        return hl_config_fail(
            errbuf, errcap, "http.listen", c->http.listen,
            "must end in 's' (e.g. 127.0.0.1:8443s) exactly when tls_cert is set");
    c->kafka.secret_files_shared = c->secret_files_shared;
    if (tls && !c->secret_files_shared) {
        /* The TLS key is read by OpenSSL at start: its file is held to the secrets' rule. */
        const char *key =
            c->http.tls_key && c->http.tls_key[0] ? c->http.tls_key : c->http.tls_cert;
        if (hl_secret_file_private(key) == HL_EINVAL)
            return hl_config_fail(
                errbuf, errcap,
                c->http.tls_key && c->http.tls_key[0] ? "http.tls_key" : "http.tls_cert", key,
                "readable by group or others (chmod 600, or secret_files_shared: true)");
    }
    /* One plain address of its own: /metrics tells anyone who can reach it what each source
     * receives, so it is never served on the webhook port (checked again at start). */
    set_str_default(&c->metrics_listen, "127.0.0.1:9464");
    ll = strlen(c->metrics_listen);
    if (ll == 0 || strchr(c->metrics_listen, ',') != NULL || c->metrics_listen[ll - 1] == 's' ||
        strcmp(c->metrics_listen, c->http.listen) == 0)
        return hl_config_fail(errbuf, errcap, "metrics_listen", c->metrics_listen,
                              "one plain host:port, not http.listen's");
    hl_log_level_t lvl;
    set_str_default(&c->log_level, "info");
    if (hl_log_level_parse(c->log_level, &lvl) != 0)
        return hl_config_fail(errbuf, errcap, "log_level", c->log_level, "debug|info|warn|error");
    set_str_default(&c->ack_mode, "durable");
    if (strcmp(c->ack_mode, "durable") != 0 && strcmp(c->ack_mode, "fast") != 0)
        return hl_config_fail(errbuf, errcap, "ack_mode", c->ack_mode, "durable|fast");
    if (c->sources_count == 0)
        return hl_config_fail(errbuf, errcap, "sources", "(empty)", "at least one source");
    for (unsigned i = 0; i < c->sources_count; i++) {
        if (finish_source(&c->sources[i], i, errbuf, errcap) != 0) return HL_ECONFIG;
        /* A body reserves its max_body (chunked) or Content-Length against max_body_memory_mb:
         * one the cap cannot hold would be answered 503 on every retry, never accepted. */
        if ((uint64_t)c->sources[i].max_body > (uint64_t)c->max_body_memory_mb * 1024 * 1024) {
            char v[24];
            snprintf(v, sizeof(v), "%u", c->sources[i].max_body);
            return source_field_fail(errbuf, errcap, i, "max_body", v,
                                     "at most max_body_memory_mb (in bytes)");
        }
        for (unsigned j = 0; j < i; j++)
            if (strcmp(c->sources[i].name, c->sources[j].name) == 0)
                return source_field_fail(errbuf, errcap, i, "name", c->sources[i].name,
                                         "names must be unique");
    }
    set_str_default(&c->default_source, c->sources[0].name);
    for (unsigned i = 0; i < c->sources_count; i++)
        if (strcmp(c->sources[i].name, c->default_source) == 0) return 0;
    return hl_config_fail(errbuf, errcap, "default_source", c->default_source,
                          "must name a configured source");
}

int ing_config_load(const char *path, ing_config_t **out, char *errbuf, size_t errcap)
{
    void *raw = NULL;
    *out = NULL;
    int rc = hl_config_load(path, &ing_config_schema, &raw, errbuf, errcap);
    if (rc != 0) return rc;
    ing_config_t *c = raw;
    if (hl_config_env(c, env_rows, sizeof(env_rows) / sizeof(env_rows[0]), errbuf, errcap) != 0 ||
        ing_config_finish(c, errbuf, errcap) != 0) {
        ing_config_free(c);
        return HL_ECONFIG;
    }
    *out = c;
    return 0;
}

void ing_config_free(ing_config_t *cfg)
{
    if (cfg != NULL) hl_config_free(&ing_config_schema, cfg);
}
