/* The persister's producer: `persisted` and `dead_lettered` lineage records on the lineage
 * topic, and poison records on the DLQ topic. Runs on the thread that polls the consumer. */
#ifndef HL_PERSISTER_LINEAGE_H
#define HL_PERSISTER_LINEAGE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hl/error.h"
#include "hl/lineage_record.h"
#include "hl/metrics.h"
#include "lineage_track.h"
#include "record.h"

typedef struct hl_lineage hl_lineage_t;

/* A producer for cfg's lineage and DLQ topics (cfg borrowed, outlives it): acks=all and
 * idempotence, because the DLQ is where a record goes instead of the table. NULL with errbuf
 * filled on a configuration error. */
hl_lineage_t *hl_lineage_new(const hl_persister_config_t *cfg, char *errbuf, size_t errcap);
/* Counts each replacement of a fatal producer handle in `restarts` (borrowed, outlives l). */
void hl_lineage_count_restarts(hl_lineage_t *l, hl_counter_t *restarts);

/* Test hook: makes librdkafka raise a fatal idempotent-producer error (out of order sequence
 * number) on the current handle, as a broker failover can; the next poll replaces it.
 * Polling thread. */
void hl_lineage_inject_fatal(hl_lineage_t *l, const char *reason);

/* Flushes for at most timeout_ms, then frees. NULL-safe. */
void hl_lineage_free(hl_lineage_t *l, int timeout_ms);

/* Produces rows[0..n) to the DLQ (original key, value and headers plus hl-error,
 * hl-attempts, hl-failed-us, hl-error-detail) and waits up to timeout_ms for every
 * acknowledgement; sets dlq_sent on each acknowledged row. Returns 0 when all were
 * acknowledged, HL_EKAFKA otherwise (the unacknowledged ones are sent again next try). */
int hl_lineage_dead_letter(hl_lineage_t *l, hl_row_t **rows, size_t n, int attempts,
                           int timeout_ms) HL_MUST_CHECK;

/* The tracker of delivered lineage (owned by l; it lives as long as l). */
hl_ltrack_t *hl_lineage_track(hl_lineage_t *l);

/* Queues the lineage record of one committed row: `persisted` for a stored or duplicate row,
 * `dead_lettered` for a row that went to the DLQ, as part of tracked batch tb (borrowed; the
 * record is expected by it and reported to it on delivery). ts_us is the record's time (0:
 * now); attempts <= 0 leaves the field out. Never blocks longer than it takes the queue to
 * drain below its cap; a record that cannot be queued is counted, logged and reported to tb
 * as not delivered. A record whose delivery times out is produced again once. */
void hl_lineage_row(hl_lineage_t *l, hl_ltrack_batch_t *tb, const hl_row_t *row, int64_t ts_us,
                    int64_t committed_us, int attempts);

/* Serves delivery reports until every lineage record queued so far has its report, for at
 * most timeout_ms. Returns true when none is left in flight. */
bool hl_lineage_flush(hl_lineage_t *l, int timeout_ms);

/* Waits until no DLQ record awaits its delivery report (bounded by message.timeout.ms), so rows
 * may be released safely after a failed hl_lineage_dead_letter. */
void hl_lineage_settle(hl_lineage_t *l);

/* Serves delivery reports, replacing a handle librdkafka declared fatal; call often from the
 * polling thread. */
void hl_lineage_poll(hl_lineage_t *l);

/* Counters for metrics (read from any thread without a lock; approximate). */
uint64_t hl_lineage_failed(const hl_lineage_t *l);
int64_t hl_lineage_queue_len(void *l);

/* Formats the lineage JSON of one row into buf (cap bytes) with the contract library's writer.
 * Returns the length or HL_ETOOBIG. consumed_us is left out when the row's is 0 (a record
 * recovered after a restart: the first consumption time is not known), attempts when <= 0.
 * HL_LINEAGE_MAX bytes always suffice. Exposed for tests. */
#define HL_LINEAGE_MAX HL_LINEAGE_WRITE_MAX
int hl_lineage_format(char *buf, size_t cap, const hl_row_t *row, int64_t ts_us,
                      int64_t committed_us, int attempts);

#endif
