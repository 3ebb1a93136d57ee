/* The auditor's shared state: configuration, keys, metrics and the threads' stop flags. */
#ifndef AUD_STATE_H
#define AUD_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <stdint.h>

#include "auth.h"
#include "chain.h"
#include "checkpoint.h"
#include "config.h"
#include "hl/metrics.h"

struct aud_ckpub;
struct aud_live;
struct hl_pg_pool;
struct ing_verifiers;
struct json_t;

typedef struct {
    const aud_config_t *cfg; /* borrowed, immutable */
    /* Keys of the sources whose stored events GET /v1/events/…/signature checks again (from
     * signature_sources), NULL when none is configured. Read-only once started. */
    const struct ing_verifiers *verifiers;
    aud_tokens_t tokens;
    aud_signer_t *signer;
    aud_keyring_t ring;      /* public keys checkpoints may carry: ours and earlier ones */
    struct aud_ckpub *ckpub; /* producer of the checkpoint topic */
    /* The head of each chain as this process last wrote (or loaded) it: verification holds the
     * table to it as to a checkpoint, so rows removed since the last signature are named too.
     * key_id is empty: these are not signed. */
    pthread_mutex_t written_mu;
    aud_checkpoint_t written[AUD_MAX_CHAINS];
    /* Chains this process writes now (assigned), and the first seq of a row found there that it
     * did not write (0: none). The consumer holds written_mu across each write transaction, so
     * with the lock held a chain it owns ends exactly at written[]. */
    bool owned[AUD_MAX_CHAINS];
    int64_t foreign_seq[AUD_MAX_CHAINS];
    /* The first seq found missing at assignment below the chain's newest outside checkpoint
     * (rows deleted): stays set, and named by verify, for as long as the process runs. */
    int64_t deleted_seq[AUD_MAX_CHAINS];
    atomic_int lineage_partitions; /* of the lineage topic, learnt at assignment; 0: unknown */
    /* The checkpoint topic's shape (aud_ckpub_check_topic), checked by housekeeping until it
     * could be asked once: 0 not yet known, 1 as promised, -1 not (cp_topic_why says how;
     * written once, before the state). */
    atomic_int cp_topic_state;
    char cp_topic_why[256];
    /* The page's history status: the last whole verification and when it began; pages that
     * load while one runs wait for it and share it (page.c). */
    pthread_mutex_t status_mu;
    struct json_t *status;
    int64_t status_us;
    hl_metrics_t *metrics;
    struct hl_pg_pool *pool;  /* API connections: the read-only role (postgres_read) */
    struct hl_pg_pool *wpool; /* the writer's role, for signing checkpoints */
    struct aud_live *live;    /* live latency histograms */
    atomic_bool stop;         /* set on SIGTERM */
    atomic_bool db_ok;        /* the writer's last Postgres round trip worked */
    atomic_bool consumer_up;  /* the consumer joined its group */
    atomic_bool kafka_fatal;  /* the consumer's handle is fatal: the process exits 1 */
    /* metrics */
    hl_counter_t *m_records, *m_invalid, *m_rows, *m_batches, *m_batch_errors, *m_fold_errors;
    hl_counter_t *m_checkpoints, *m_repeats, *m_cp_refused, *m_cp_errors, *m_foreign;
    hl_counter_t *m_deleted, *m_gap_full_counts;
    hl_gauge_t *m_lag, *m_gaps_open, *m_gaps_closed, *m_cp_topic_ok;
    hl_histogram_metric_t *m_batch_latency;
    hl_counter_t *m_http[6]; /* by status class / kind, see api.c */
} aud_state_t;

#endif
