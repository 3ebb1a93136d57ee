/* The auditor's shared state: configuration, keys, metrics and the threads' stop flags. */
#ifndef HL_AUDITOR_H
#define HL_AUDITOR_H

#include <stdatomic.h>
#include <stdbool.h>

#include "auth.h"
#include "checkpoint.h"
#include "config.h"
#include "hl/metrics.h"
#include "rollup.h"
#include "store.h"

typedef struct {
    const hl_auditor_config_t *cfg; /* borrowed, immutable */
    hl_tokens_t tokens;
    hl_signer_t *signer;
    hl_metrics_t *metrics;
    hl_pool_t *pool;                /* API connections */
    hl_live_t *live;                /* live latency histograms */
    atomic_bool stop;               /* set on SIGTERM */
    atomic_bool db_ok;              /* the writer's last Postgres round trip worked */
    atomic_bool consumer_up;        /* the consumer joined its group */
    atomic_bool kafka_fatal;        /* the consumer's handle is fatal: the process exits 1 */
    /* metrics */
    hl_counter_t *m_records, *m_invalid, *m_rows, *m_batches, *m_batch_errors;
    hl_counter_t *m_checkpoints, *m_repeats;
    hl_gauge_t *m_lag, *m_gaps_open, *m_gaps_closed;
    hl_histogram_metric_t *m_batch_latency;
    hl_counter_t *m_http[6];        /* by status class / kind, see api.c */
} hl_auditor_t;

/* The consumer thread: joins the group, writes batches until stop. arg is hl_auditor_t *. */
void *hl_consumer_main(void *arg);
/* The housekeeping thread: gap counts and checkpoints on their intervals, until stop. */
void *hl_housekeeping_main(void *arg);

/* Registers the HTTP handlers (api.c, page.c) on a started server. */
struct hl_httpd;
void hl_api_register(struct hl_httpd *s, hl_auditor_t *a);

#endif
