/* The persister's producer: `persisted` and `dead_lettered` lineage records on the lineage
 * topic, and poison records on the DLQ topic. Runs on the thread that polls the consumer. */
#ifndef HL_PERSISTER_LINEAGE_H
#define HL_PERSISTER_LINEAGE_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hl/error.h"
#include "record.h"

typedef struct hl_lineage hl_lineage_t;

/* A producer for cfg's lineage and DLQ topics (cfg borrowed, outlives it): acks=all and
 * idempotence, because the DLQ is where a record goes instead of the table. NULL with errbuf
 * filled on a configuration error. */
hl_lineage_t *hl_lineage_new(const hl_persister_config_t *cfg, char *errbuf, size_t errcap);
/* Flushes for at most timeout_ms, then frees. NULL-safe. */
void hl_lineage_free(hl_lineage_t *l, int timeout_ms);

/* Produces rows[0..n) to the DLQ (original key, value and headers plus hl-error,
 * hl-attempts, hl-failed-us, hl-error-detail) and waits up to timeout_ms for every
 * acknowledgement; sets dlq_sent on each acknowledged row. Returns 0 when all were
 * acknowledged, HL_EKAFKA otherwise (the unacknowledged ones are sent again next try). */
int hl_lineage_dead_letter(hl_lineage_t *l, hl_row_t **rows, size_t n, int attempts,
                           int timeout_ms) HL_MUST_CHECK;

/* Queues the lineage record of one committed row: `persisted` for a stored or duplicate row,
 * `dead_lettered` for a row that went to the DLQ. Never blocks longer than it takes the queue
 * to drain below its cap; a record that cannot be queued is counted and logged. */
void hl_lineage_row(hl_lineage_t *l, const hl_row_t *row, int64_t committed_us, int attempts);

/* Waits until no DLQ record awaits its delivery report (bounded by message.timeout.ms), so rows
 * may be released safely after a failed hl_lineage_dead_letter. */
void hl_lineage_settle(hl_lineage_t *l);

/* Serves delivery reports; call often from the polling thread. */
void hl_lineage_poll(hl_lineage_t *l);

/* Counters for metrics (read from any thread without a lock; approximate). */
uint64_t hl_lineage_failed(const hl_lineage_t *l);
int64_t hl_lineage_queue_len(void *l);

/* Formats the lineage JSON of one row into buf (cap bytes). Returns the length or HL_ETOOBIG.
 * Exposed for tests. */
int hl_lineage_format(char *buf, size_t cap, const hl_row_t *row, int64_t ts_us,
                      int64_t committed_us, int attempts);

#endif
