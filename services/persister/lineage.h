/* The persister's producer: `persisted` and `dead_lettered` lineage records on the lineage
 * topic, and poison records on the DLQ topic. Runs on the thread that polls the consumer. */
#ifndef PST_LINEAGE_H
#define PST_LINEAGE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hl/error.h"
#include "hl/lineage_record.h"
#include "hl/metrics.h"
#include "lineage_track.h"
#include "event_record.h"

typedef struct pst_lineage pst_lineage_t;

/* A producer for cfg's lineage and DLQ topics (cfg borrowed, outlives it): acks=all and
 * idempotence, because the DLQ is where a record goes instead of the table. NULL with errbuf
 * filled on a configuration error. */
pst_lineage_t *pst_lineage_new(const pst_config_t *cfg, char *errbuf, size_t errcap);
/* Counts each replacement of a fatal producer handle in `restarts` (borrowed, outlives l). */
void pst_lineage_count_restarts(pst_lineage_t *l, hl_counter_t *restarts);

/* Test hook: makes librdkafka raise a fatal idempotent-producer error (out of order sequence
 * number) on the current handle, as a broker failover can; the next poll replaces it.
 * Polling thread. */
void pst_lineage_inject_fatal(pst_lineage_t *l, const char *reason);

/* Flushes for at most timeout_ms, then frees. NULL-safe. */
void pst_lineage_free(pst_lineage_t *l, int timeout_ms);

/* Produces rows[0..n) to the DLQ (original key, value and headers plus hl-error,
 * hl-attempts, hl-failed-us, hl-error-detail) and waits up to timeout_ms for every
 * acknowledgement; sets dlq_sent on each acknowledged row. Returns 0 when all were
 * acknowledged, HL_EKAFKA otherwise (the unacknowledged ones are sent again next try). */
int pst_lineage_dead_letter(pst_lineage_t *l, pst_row_t **rows, size_t n, int attempts,
                            int timeout_ms) HL_MUST_CHECK;

/* The tracker of delivered lineage (owned by l; it lives as long as l). */
pst_ltrack_t *pst_lineage_track(pst_lineage_t *l);

/* Queues the lineage record of one committed row: `persisted` for a stored or duplicate row,
 * `dead_lettered` for a row that went to the DLQ, as part of tracked batch tb (borrowed; the
 * record is expected by it and reported to it on delivery). ts_us is the record's time (0:
 * now); attempts <= 0 leaves the field out. Never blocks longer than it takes the queue to
 * drain below its cap; a record that cannot be queued is counted, logged and reported to tb
 * as not delivered. A record whose delivery times out is produced again once. */
void pst_lineage_row(pst_lineage_t *l, pst_ltrack_batch_t *tb, const pst_row_t *row, int64_t ts_us,
                     int64_t committed_us, int attempts);

/* Serves delivery reports until every lineage record queued so far has its report, for at
 * most timeout_ms. Returns true when none is left in flight. */
bool pst_lineage_flush(pst_lineage_t *l, int timeout_ms);

/* Waits until no DLQ record awaits its delivery report (bounded by message.timeout.ms), so rows
 * may be released safely after a failed pst_lineage_dead_letter. */
void pst_lineage_settle(pst_lineage_t *l);

/* Serves delivery reports, replacing a handle librdkafka declared fatal; call often from the
 * polling thread. */
void pst_lineage_poll(pst_lineage_t *l);

/* Counters for metrics (read from any thread without a lock; approximate). */
uint64_t pst_lineage_failed(const pst_lineage_t *l);
int64_t pst_lineage_queue_len(void *l);

/* Formats the lineage JSON of one row into buf (cap bytes) with the contract library's writer.
 * Returns the length or HL_ETOOBIG. consumed_us is left out when the row's is 0 (a record
 * recovered after a restart: the first consumption time is not known), attempts when <= 0.
 * PST_LINEAGE_MAX bytes always suffice. Exposed for tests. */
#define PST_LINEAGE_MAX HL_LINEAGE_WRITE_MAX
int pst_lineage_format(char *buf, size_t cap, const pst_row_t *row, int64_t ts_us,
                       int64_t committed_us, int attempts);

#endif
