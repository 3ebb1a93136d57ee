/* The persister's configuration: one declarative libcyaml table, defaults, HOOKLINE_* overrides
 * and validation, parsed once into an immutable struct. */
#ifndef PST_CONFIG_H
#define PST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "hl/config.h"
#include "hl/error.h"

typedef struct {
    hl_kafka_config_t kafka;      /* brokers and the three topic names */
    hl_pg_config_t postgres;      /* conninfo and schema (search_path) */
    hl_http_config_t http;        /* /healthz, /readyz, /metrics; default 127.0.0.1:8081 */
    char *group_id;               /* consumer group, also the consumer_offsets key */
    char *log_level;              /* debug | info | warn | error */
    uint32_t batch_max;           /* records per transaction at most */
    uint32_t batch_linger_ms;     /* a batch is written at the latest this long after its first */
    uint32_t max_record_bytes;    /* a value over this is dead-lettered as too_large */
    uint32_t retry_base_ms;       /* first backoff ceiling after a transient failure */
    uint32_t retry_cap_ms;        /* backoff ceiling never exceeds this */
    uint32_t dlq_timeout_ms;      /* wait for the DLQ acknowledgement before giving up a try */
    uint32_t shutdown_timeout_ms; /* SIGTERM: longest wait to finish the batch in hand */
} pst_config_t;

/* Defaults, chosen by measurement (README.md, "Configuration"). */
#define PST_BATCH_MAX 2000
#define PST_BATCH_LINGER_MS 50
#define PST_MAX_RECORD_BYTES (1024 * 1024)

/* Loads `path`, applies HOOKLINE_* overrides and defaults, validates. On success *out is owned by
 * the caller (pst_config_free). On failure errbuf names the field, the value and the
 * rule and the result is HL_ECONFIG or HL_EIO. */
int pst_config_load(const char *path, pst_config_t **out, char *errbuf,
                    size_t errcap) HL_MUST_CHECK;

/* Applies defaults and validates an already loaded struct (used by the loader and the tests). */
int pst_config_finish(pst_config_t *c, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* NULL-safe. */
void pst_config_free(pst_config_t *c);

/* The schema, for tests and for generating documentation of the keys. */
extern const cyaml_schema_value_t pst_config_schema;

/* The service's own scalar keys (the shared kafka/postgres/http sections aside): name, default,
 * limits, override and documentation, one row each; README.md's table is checked against it. */
extern const hl_config_key_t pst_config_keys[];
extern const size_t pst_config_nkeys;

#endif
