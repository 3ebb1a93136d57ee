/* The persister's main loop: a librdkafka consumer group member that gathers records into
 * batches, writes each batch in one Postgres transaction (with the offsets it advances), then
 * publishes lineage and commits the Kafka offsets for lag monitoring. Runs on one thread (the
 * one that calls pst_consumer_run); only the metrics and the ready flag are read elsewhere. */
#ifndef PST_CONSUMER_H
#define PST_CONSUMER_H

#include <signal.h>
#include <stdbool.h>

#include "config.h"
#include "hl/error.h"
#include "hl/metrics.h"

/* Handles into the metrics registry (owned by it). */
typedef struct {
    hl_counter_t *rows;                    /* rows inserted */
    hl_counter_t *duplicates;              /* records whose key was already stored */
    hl_counter_t *dead_letters;            /* records sent to the DLQ */
    hl_counter_t *batches;                 /* transactions committed */
    hl_counter_t *retries;                 /* failed batch attempts retried */
    hl_counter_t *abandoned;               /* batches given up at a rebalance or shutdown */
    hl_histogram_metric_t *batch_size;     /* records per committed batch (a count histogram) */
    hl_histogram_metric_t *commit_latency; /* write start -> Postgres commit, µs */
    hl_histogram_metric_t *e2e_latency;    /* received_us -> commit, µs */
    hl_gauge_t *lag;                 /* sum over assigned partitions of high watermark - next */
    hl_gauge_t *paused;              /* 1 while partitions are paused for an outage */
    hl_gauge_t *assigned;            /* partitions assigned */
    hl_counter_t *recovered;         /* lineage records produced again after a restart */
    hl_counter_t *producer_restarts; /* producer handles replaced after a fatal error */
} pst_metrics_t;

/* Registers every persister metric in m; every handle is owned by the registry
 * (pst_metrics_deinit only forgets them). */
void pst_metrics_register(hl_metrics_t *m, pst_metrics_t *pm);
void pst_metrics_deinit(pst_metrics_t *pm);

typedef struct pst_consumer pst_consumer_t;

/* A consumer for cfg (borrowed, must outlive it). `stop` is set by the signal handler. NULL
 * with errbuf filled on a Kafka configuration error. */
pst_consumer_t *pst_consumer_new(const pst_config_t *cfg, pst_metrics_t *pm,
                                 volatile sig_atomic_t *stop, char *errbuf, size_t errcap);

/* Runs until *stop, then finishes the batch in hand (at most shutdown_timeout_ms), commits it,
 * leaves the group. Returns 0, or an HL_E* code if the consumer could not run. */
int pst_consumer_run(pst_consumer_t *c) HL_MUST_CHECK;

/* True once the consumer has an assignment or has joined the group, and Postgres answered the
 * last write; read from the HTTP thread. */
bool pst_consumer_ready(void *c);

/* NULL-safe. */
void pst_consumer_free(pst_consumer_t *c);

#endif
