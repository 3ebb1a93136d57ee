/* The ingress configuration: one declarative table of keys (schema, defaults, limits,
 * environment overrides and documentation in one place), loaded with libcyaml and validated
 * once at start into an immutable struct. */
#ifndef ING_CONFIG_H
#define ING_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "hl/config.h"

/* X(key, default, min, max, env, doc): top-level unsigned keys. */
#define ING_CONFIG_KNOBS(X)                                                                        \
    X(ack_timeout_ms, 5000, 50, 120000, "HOOKLINE_ACK_TIMEOUT_MS",                                 \
      "longest wait for the broker's acknowledgement before answering 503")                        \
    X(max_in_flight, 1024, 1, 1000000, "HOOKLINE_MAX_IN_FLIGHT",                                   \
      "requests waiting for an acknowledgement at once; past it, 503 at once")                     \
    X(queue_max_messages, 100000, 100, 10000000, "HOOKLINE_QUEUE_MAX_MESSAGES",                    \
      "producer queue cap (queue.buffering.max.messages); past it, 503 at once")                   \
    X(linger_ms, 2, 0, 1000, "HOOKLINE_LINGER_MS", "producer linger.ms (batching delay)")          \
    X(lineage_linger_ms, 100, 0, 5000, "HOOKLINE_LINEAGE_LINGER_MS",                               \
      "the lineage producer's linger.ms: lineage records are batched this long")                   \
    X(max_header_bytes, 16384, 1024, 1048576, "HOOKLINE_MAX_HEADER_BYTES",                         \
      "largest request line plus headers; larger requests are refused by the HTTP server")         \
    X(retry_after_s, 1, 1, 3600, "HOOKLINE_RETRY_AFTER_S", "Retry-After sent with 503")            \
    X(drain_timeout_ms, 15000, 0, 600000, "HOOKLINE_DRAIN_TIMEOUT_MS",                             \
      "on SIGTERM, longest wait for requests in flight and the producer flush")                    \
    X(keep_alive_timeout_ms, 5000, 0, 600000, "HOOKLINE_KEEP_ALIVE_TIMEOUT_MS",                    \
      "idle time before a keep-alive connection is closed")                                        \
    X(max_connections_per_client, 128, 1, 1000000, "HOOKLINE_MAX_CONNECTIONS_PER_CLIENT",          \
      "connections one client address may hold open; more are closed at once")                     \
    X(max_body_memory_mb, 256, 1, 4096, "HOOKLINE_MAX_BODY_MEMORY_MB",                             \
      "bodies being read, all requests together (Content-Length, or max_body when chunked); "      \
      "past it, 503")                                                                              \
    X(max_body_memory_per_client_pct, 25, 1, 100, "HOOKLINE_MAX_BODY_MEMORY_PER_CLIENT_PCT",       \
      "share of max_body_memory_mb the bodies of one client address may hold (at least the "       \
      "largest max_body); past it, 503")                                                           \
    X(reload_poll_ms, 2000, 100, 3600000, "HOOKLINE_RELOAD_POLL_MS",                               \
      "how often the config file and the secret files it names are checked for a change, "         \
      "which reloads them as SIGHUP does")                                                         \
    X(lineage_timeout_ms, 300000, 1000, 3600000, "HOOKLINE_LINEAGE_TIMEOUT_MS",                    \
      "longest wait for the broker to store a lineage record before it is dropped (counted)")      \
    X(lineage_rejected_per_s, 200, 1, 1000000, "HOOKLINE_LINEAGE_REJECTED_PER_S",                  \
      "rejected requests recorded in lineage per second in total (burst as many); the rest "       \
      "are counted")                                                                               \
    X(lineage_rejected_per_client_per_s, 20, 1, 1000000,                                           \
      "HOOKLINE_LINEAGE_REJECTED_PER_CLIENT_PER_S",                                                \
      "rejected requests recorded in lineage per second per client address (burst as many)")       \
    X(failed_auth_rate_per_client, 5, 1, 1000000, "HOOKLINE_FAILED_AUTH_RATE_PER_CLIENT",          \
      "failed authentications a second one client address may make, sustained")                    \
    X(failed_auth_burst_per_client, 20, 1, 1000000, "HOOKLINE_FAILED_AUTH_BURST_PER_CLIENT",       \
      "failed authentications one client address may make at once; past its budget, its "          \
      "requests get 429 before their body is read")                                                \
    X(failed_auth_rate, 100, 1, 1000000, "HOOKLINE_FAILED_AUTH_RATE",                              \
      "failed authentications a second of all client addresses together, sustained")               \
    X(failed_auth_burst, 400, 1, 1000000, "HOOKLINE_FAILED_AUTH_BURST",                            \
      "failed authentications of all client addresses at once; past it, every request not yet "    \
      "authenticated gets 429 before its body is read")                                            \
    X(test_fault_signals, 0, 0, 1, "HOOKLINE_TEST_FAULT_SIGNALS",                                  \
      "test hook, never in production: SIGUSR1/SIGUSR2 fail the events/lineage producer")

/* X(key, default, min, max, doc): unsigned keys of each source. */
#define ING_SOURCE_KNOBS(X)                                                                        \
    X(timestamp_tolerance_s, 300, 1, 86400, "accepted |now - signed timestamp|, seconds")          \
    X(max_body, 1048576, 1, 67108864, "largest body in bytes (413 above)")                         \
    X(rate_per_sec, 0, 0, 1000000, "sustained requests per second; 0 = no limit")                  \
    X(burst, 0, 0, 1000000, "requests allowed at once above the rate; 0 = rate_per_sec")

/* One secret: read from the environment variable `env` when set, else from `file`. */
typedef struct {
    char *env;
    char *file;
} ing_secret_ref_t;

typedef struct {
    char *name;   /* [a-z0-9_-], 1..64: the {source} of the URL */
    char *scheme; /* standard-webhooks | stripe | hmac-sha256 | bearer | sendgrid */
    ing_secret_ref_t *secrets;
    unsigned secrets_count;
    char **public_keys; /* sendgrid: base64 DER; standard-webhooks: whpk_… (not secret) */
    unsigned public_keys_count;
    char *header;            /* hmac-sha256 (required) / bearer (default Authorization) */
    char *prefix;            /* hmac-sha256: e.g. "sha256=" */
    char *encoding;          /* hmac-sha256: hex (default) | base64 */
    char *message_id;        /* JSON pointer, default "/messageId" */
    char *message_id_header; /* instead of the pointer, e.g. "webhook-id" */
    char *event_type;        /* JSON pointer, default "/eventType" */
    char *event_type_header;
    bool split; /* the body is a JSON array: one event per element (split.h) */
#define ING_SRC_FIELD(key, def, min, max, doc) uint32_t key;
    ING_SOURCE_KNOBS(ING_SRC_FIELD)
#undef ING_SRC_FIELD
} ing_source_cfg_t;

typedef struct {
    hl_http_config_t http;
    hl_kafka_config_t kafka;
    char *log_level;          /* debug | info (default) | warn | error */
    char *ack_mode;           /* durable (default) | fast */
    char *default_source;     /* the source behind /api/webhooks; default: the first one */
    char *metrics_listen;     /* the one address /metrics is served on, plain HTTP; never the
                                 webhook port (default 127.0.0.1:9464) */
    bool secret_files_shared; /* accept secret and key files readable by group or others */
#define ING_CFG_FIELD(key, def, min, max, env, doc) uint32_t key;
    ING_CONFIG_KNOBS(ING_CFG_FIELD)
#undef ING_CFG_FIELD
    ing_source_cfg_t *sources;
    unsigned sources_count;
} ing_config_t;

#define ING_MAX_SOURCES 256

/* Loads, applies HOOKLINE_* overrides and defaults, validates. On success *out is owned by
 * the caller (ing_config_free). On failure errbuf names field, value and rule; returns
 * HL_ECONFIG or HL_EIO. */
int ing_config_load(const char *path, ing_config_t **out, char *errbuf,
                    size_t errcap) HL_MUST_CHECK;
void ing_config_free(ing_config_t *cfg);

/* Applies defaults and validates an already parsed struct (split out for tests). */
int ing_config_finish(ing_config_t *cfg, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* The top-level schema (for tests and documentation checks). */
extern const cyaml_schema_value_t ing_config_schema;

#endif
