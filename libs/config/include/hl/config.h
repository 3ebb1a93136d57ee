/* Configuration loading shared by every service: YAML parsed with libcyaml against the
 * service's own schema, then HOOKLINE_* environment overrides, then validation. Errors name
 * the field, the value and the rule; services exit with HL_CONFIG_EXIT (2) on any of them. */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include <cyaml/cyaml.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

#define HL_CONFIG_EXIT 2
#define HL_CONFIG_ERRBUF 512

/* A secret librdkafka property: its value read like any secret (hl_secret_load), never written
 * in the YAML. */
typedef struct {
    char *name; /* "sasl.password", "ssl.key.password", ... */
    char *env;  /* environment variable holding the value, or NULL */
    char *file; /* file holding it (trailing newline dropped), or NULL */
} hl_secret_property_t;

/* Sections every service shares; services embed them in their own config struct and use the
 * HL_CONFIG_*_FIELDS schema helpers below (defaults applied by hl_config_*_defaults). */
typedef struct {
    char *brokers;       /* "127.0.0.1:9092" */
    char *events_topic;  /* "hookline.events" */
    char *lineage_topic; /* "hookline.lineage" */
    char *dlq_topic;     /* "hookline.dlq" */
    char *client_id;     /* defaults to the service name */
    /* Extra librdkafka properties: "key=value" strings applied after hookline's own. */
    char **properties;
    unsigned properties_count;
    /* Properties whose values are secrets (SASL passwords, TLS key passwords), applied after
     * `properties`. */
    hl_secret_property_t *secret_properties;
    unsigned secret_properties_count;
    /* Accept secret files readable by group or others (set by the service from its own key,
     * not read from the kafka section). */
    bool secret_files_shared;
} hl_kafka_config_t;

typedef struct {
    char *conninfo; /* libpq connection string; "" means the PG* environment */
    char *schema;   /* search_path schema for hookline tables, default "public" */
    uint32_t connect_timeout_ms;
    /* Password for this connection, over PGPASSWORD and the passfile; never read from YAML
     * (a service sets it from its environment). NULL: libpq's own sources. Borrowed. */
    const char *password;
} hl_pg_config_t;

typedef struct {
    char *listen;     /* "127.0.0.1:8080"; civetweb listening_ports syntax ("s" suffix = TLS) */
    uint32_t threads; /* worker threads */
    char *tls_cert;   /* PEM file with certificate (and key if tls_key empty); optional */
    char *tls_key;
    uint32_t request_timeout_ms;
} hl_http_config_t;

/* Reads a service's command line: --config FILE (or --config=FILE), the one option every
 * service takes. Returns 0 with *path set (borrowed from argv), 1 when --help or -h asks for
 * the usage, -1 on anything else or when no file is named; the words are read in order and
 * the first that decides, decides. The caller prints its own usage. */
int hl_config_args(int argc, char **argv, const char **path);

/* Loads `path` with `schema` (a libcyaml top-level mapping schema) into a new struct owned by
 * the caller (release with hl_config_free with the same schema). On failure fills errbuf
 * with "config PATH: <reason>" and returns HL_ECONFIG (or HL_EIO if the file cannot be read). */
int hl_config_load(const char *path, const cyaml_schema_value_t *schema, void **out, char *errbuf,
                   size_t errcap) HL_MUST_CHECK;
void hl_config_free(const cyaml_schema_value_t *schema, void *cfg);

/* Environment overrides: one table row per overridable scalar. Applied after loading,
 * before validation. For every row whose variable is set: strings replace (old freed),
 * numbers and booleans are parsed strictly (error names variable, value and rule). */
typedef enum { HL_ENV_STR, HL_ENV_U32, HL_ENV_I64, HL_ENV_BOOL } hl_env_type_t;
typedef struct {
    const char *var; /* "HOOKLINE_KAFKA_BROKERS" */
    hl_env_type_t type;
    size_t offset; /* offsetof(the service config struct, field) */
} hl_env_override_t;
/* One row of a service's table: HL_ENV_ROW(struct type, "HOOKLINE_X", HL_ENV_STR, a.b). */
#define HL_ENV_ROW(T, var, type, field)                                                            \
    {                                                                                              \
        (var), (type), offsetof(T, field)                                                          \
    }

/* Error text: "config: env 'VAR' = 'VALUE': RULE" (string values are never echoed). Accepted
 * booleans: true/false, 1/0, yes/no, on/off. Numbers: plain decimal, no sign for U32, no
 * blanks, no hex. */
int hl_config_env(void *cfg, const hl_env_override_t *rows, size_t nrows, char *errbuf,
                  size_t errcap) HL_MUST_CHECK;

/* Validation helpers: return 0, or fill errbuf with
 * "config: field 'FIELD' = VALUE: RULE" and return HL_ECONFIG. VALUE is echoed (at most 64
 * bytes, control bytes as '?', NULL as "(unset)"): never pass a secret, pass NULL instead. */
int hl_config_check_u32(const char *field, uint32_t v, uint32_t min, uint32_t max, char *errbuf,
                        size_t errcap) HL_MUST_CHECK;
int hl_config_check_str(const char *field, const char *v, size_t min_len, size_t max_len,
                        char *errbuf, size_t errcap) HL_MUST_CHECK;
int hl_config_fail(char *errbuf, size_t errcap, const char *field, const char *value,
                   const char *rule) HL_MUST_CHECK;

/* Defaults for the shared sections (only fields still NULL/0 are set; strings are
 * heap-allocated so hl_config_free releases them uniformly). */
void hl_config_kafka_defaults(hl_kafka_config_t *k, const char *client_id);
void hl_config_pg_defaults(hl_pg_config_t *p);
void hl_config_http_defaults(hl_http_config_t *h, const char *listen);

/* Default helpers for service sections: set *slot (a heap copy of value for strings, so
 * hl_config_free releases it) only while it is still NULL / 0. Abort on out-of-memory. */
void hl_config_default_str(char **slot, const char *value);
void hl_config_default_u32(uint32_t *slot, uint32_t value);

/* Validates the shared sections. */
int hl_config_kafka_check(const char *prefix, const hl_kafka_config_t *k, char *errbuf,
                          size_t errcap) HL_MUST_CHECK;
int hl_config_http_check(const char *prefix, const hl_http_config_t *h, char *errbuf,
                         size_t errcap) HL_MUST_CHECK;

/* libcyaml field lists for the shared sections, for use inside a service schema:
 *   CYAML_FIELD_MAPPING_PTR("kafka", CYAML_FLAG_OPTIONAL, struct svc, kafka, hl_kafka_fields)
 * (services embed by value: CYAML_FIELD_MAPPING). */
extern const cyaml_schema_field_t hl_kafka_fields[];
extern const cyaml_schema_field_t hl_pg_fields[];
extern const cyaml_schema_field_t hl_http_fields[];

/* Reads a secret: from the environment variable `env` if non-NULL and set, else from `file`
 * (trailing newline stripped) if non-NULL. Result owned by the caller (free()): exactly *len
 * bytes followed by a NUL. Returns 0, HL_ENOTFOUND (neither available), HL_EPARSE (the file
 * holds a NUL byte: a secret is text), HL_ESTATE (a named pipe, device or socket: refused
 * rather than waited on), HL_EIO, or HL_EINVAL when the file may be read by its
 * group or by others and `shared_ok` is false (a mounted Kubernetes secret, whose mode the
 * operator sets, is the reason to pass true). Never logs the value. */
int hl_secret_load(const char *env, const char *file, bool shared_ok, char **out,
                   size_t *len) HL_MUST_CHECK;

/* HL_EINVAL when the file at path may be read by its group or by others, HL_EIO when it cannot
 * be examined, else 0. For key files read by a library (TLS keys). */
int hl_secret_file_private(const char *path) HL_MUST_CHECK;

/* The libcyaml configuration used by hl_config_load (errors to a buffer, not stderr). */
const cyaml_config_t *hl_cyaml_config(void);

/* ---- Declarative key tables ----
 * One row per scalar key of a service: its YAML name, type, default, limits, HOOKLINE_*
 * override and documentation, in one place. A service lists its keys once in an X-macro
 * X(kind, key, default, min, max, env, doc) with kind U32 or STR, and expands it twice:
 * with HL_CONFIG_FIELD into its libcyaml field list and with HL_CONFIG_KEY into its key table,
 * which the three walkers below apply in the order load -> env -> defaults -> checks. */
typedef enum { HL_CONFIG_U32, HL_CONFIG_STR } hl_config_kind_t;
typedef struct {
    const char *name;      /* YAML key, and the field named in errors */
    hl_config_kind_t kind; /* U32: a uint32_t field; STR: a char * field (heap, cyaml-owned) */
    size_t offset;         /* offsetof(the service config struct, field) */
    uint32_t def_u32;      /* U32 default, applied while the field is 0 */
    const char *def_str;   /* STR default, applied while the field is NULL */
    uint32_t min, max;     /* U32: the value's range; STR: the length's range */
    const char *env;       /* HOOKLINE_* variable overriding the key, or NULL */
    const char *doc;       /* one line for the generated documentation of the keys */
} hl_config_key_t;

/* A row of the key table for struct type T (expand the service's X-macro with it). */
#define HL_CONFIG_KEY(T, kind, key, def, lo, hi, envvar, text)                                     \
    HL_CONFIG_KEY_##kind(T, key, def, lo, hi, envvar, text)
#define HL_CONFIG_KEY_U32(T, key, def, lo, hi, envvar, text)                                       \
    {#key, HL_CONFIG_U32, offsetof(T, key), (def), NULL, (lo), (hi), (envvar), (text)},
#define HL_CONFIG_KEY_STR(T, key, def, lo, hi, envvar, text)                                       \
    {#key, HL_CONFIG_STR, offsetof(T, key), 0, (def), (lo), (hi), (envvar), (text)},
/* The libcyaml field of the same key (optional in the YAML: the default fills it). */
#define HL_CONFIG_FIELD(T, kind, key, def, lo, hi, envvar, text)                                   \
    HL_CONFIG_FIELD_##kind(T, key, lo, hi)
#define HL_CONFIG_FIELD_U32(T, key, lo, hi) CYAML_FIELD_UINT(#key, CYAML_FLAG_OPTIONAL, T, key),
#define HL_CONFIG_FIELD_STR(T, key, lo, hi)                                                        \
    CYAML_FIELD_STRING_PTR(#key, CYAML_FLAG_OPTIONAL, T, key, lo, hi),

/* Applies the override of every key with an env variable that is set (hl_config_env rules). */
int hl_config_keys_env(void *cfg, const hl_config_key_t *keys, size_t n, char *errbuf,
                       size_t errcap) HL_MUST_CHECK;
/* Sets every key still unset (0 / NULL) to its default (strings as heap copies). */
void hl_config_keys_defaults(void *cfg, const hl_config_key_t *keys, size_t n);
/* Checks every key against its limits in table order; the first failure fills errbuf as
 * hl_config_check_u32 / hl_config_check_str do and returns HL_ECONFIG. */
int hl_config_keys_check(const void *cfg, const hl_config_key_t *keys, size_t n, char *errbuf,
                         size_t errcap) HL_MUST_CHECK;

/* What a service's configuration is made of: the loading steps below are the same for every
 * service, only these parts differ. All borrowed, static in practice. */
typedef struct {
    const cyaml_schema_value_t *schema; /* top-level mapping of the service struct */
    const hl_env_override_t *env;       /* overrides of the shared sections */
    size_t nenv;
    const hl_config_key_t *keys; /* the service's key table */
    size_t nkeys;
    /* Defaults and checks after the overrides; fills errbuf and returns non-zero on failure. */
    int (*finish)(void *cfg, char *errbuf, size_t errcap);
} hl_config_spec_t;

/* Loads `path` with spec->schema, applies spec->env then the keys' overrides, then
 * spec->finish. On success *out is owned by the caller (hl_config_free with spec->schema); on
 * failure *out is NULL, errbuf says why and the return is that of the step that failed. */
int hl_config_load_spec(const char *path, const hl_config_spec_t *spec, void **out, char *errbuf,
                        size_t errcap) HL_MUST_CHECK;

#endif
