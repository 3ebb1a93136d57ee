/* The auditor's configuration: one table of keys, defaults, overrides and rules (config.c). */
#ifndef AUD_CONFIG_H
#define AUD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "hl/config.h"

typedef struct {
    char *name;     /* who holds it, for logs */
    char *sha256;   /* 64 hex digits: SHA-256 of the token text (never the token itself) */
    unsigned roles; /* AUD_ROLE_* bits from the "roles" list */
} aud_token_cfg_t;

typedef struct {
    char *key_file;           /* PEM Ed25519 private key */
    bool generate_if_missing; /* demo only: create key_file when absent */
    uint32_t interval_s;      /* how often each chain head is signed */
    char *topic;              /* Kafka topic the signed checkpoints are also published to */
    char **public_keys;       /* raw Ed25519 public keys (64 hex) of earlier signing keys */
    unsigned public_keys_count;
} aud_checkpoint_cfg_t;

typedef struct {
    uint32_t ack_ms; /* an accepted request answered within this is "good" */
    uint32_t e2e_ms; /* end-to-end latency objective (received → committed) */
    double target;   /* share of good requests promised, e.g. 0.999 */
} aud_slo_cfg_t;

/* The postgres section: the writer's connection (the shared keys) and the API's. */
typedef struct {
    hl_pg_config_t w;    /* first: conninfo, schema, connect_timeout_ms as in every service */
    char *read_conninfo; /* the API's read-only role; NULL or "": the writer's conninfo */
} aud_pg_cfg_t;

typedef struct {
    hl_kafka_config_t kafka;
    aud_pg_cfg_t postgres;
    /* The API's connections: read_conninfo (else conninfo), the writer's schema and timeout,
     * the password of HOOKLINE_POSTGRES_READ_PASSWORD (else PGPASSWORD or the passfile).
     * Derived by aud_config_finish; its strings are borrowed. */
    hl_pg_config_t postgres_read;
    hl_http_config_t http;
    char *group_id;
    char *log_level;
    uint32_t batch_max;       /* lineage records per transaction */
    uint32_t batch_linger_ms; /* longest wait to fill a batch */
    uint32_t rollup_fold_ms;  /* how often the latency_rollup_batches rows are folded */
    uint32_t gap_grace_s;     /* an accepted request without commit after this is a gap */
    uint32_t gap_scan_interval_s;
    uint32_t gap_scan_pending_max; /* past it, gaps are counted by the full query */
    uint32_t page_limit_max;       /* cap on ?limit= */
    uint32_t shutdown_timeout_ms;
    aud_checkpoint_cfg_t checkpoint;
    aud_slo_cfg_t slo;
    aud_token_cfg_t *tokens;
    unsigned tokens_count;
    /* Accept the checkpoint key and secret files readable by group or others (Kubernetes
     * Secret volumes); otherwise such a file stops the start. */
    bool secret_files_shared;
    char *signature_sources; /* an ingress configuration file whose sources' keys re-verify
                                stored events (GET /v1/events/…/signature); NULL: none */
} aud_config_t;

/* Loads, applies HOOKLINE_* overrides and defaults, validates. Returns 0 or HL_ECONFIG /
 * HL_EIO with errbuf naming the field, value and rule. *out owned by the caller. */
int aud_config_load(const char *path, aud_config_t **out, char *errbuf,
                    size_t errcap) HL_MUST_CHECK;
/* Defaults and validation alone (for tests that build a struct in memory). */
int aud_config_finish(aud_config_t *c, char *errbuf, size_t errcap) HL_MUST_CHECK;
void aud_config_free(aud_config_t *c);

#endif
