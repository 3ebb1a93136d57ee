/* Read-side queries shared by the JSON API and the page. Each returns a jansson value owned
 * by the caller, or NULL with errbuf filled (a Postgres failure). */
#ifndef AUD_QUERY_H
#define AUD_QUERY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "hl/hist.h"
#include "hl/proto.h"
#include "rollup.h"

/* SQL literals of the stages the gap checks read, from the contract's names. */
#define SQL_STAGE_INGRESS "'" HL_STAGE_INGRESS_NAME "'"
#define SQL_STAGE_OUTCOMES "('" HL_STAGE_PERSISTED_NAME "', '" HL_STAGE_DEAD_LETTERED_NAME "')"

/* SQL: lineage row `o` (an outcome) is of the same event as row `i` (an accepted ingress
 * record): its message id and event type as well, not only its request id, which the elements
 * of a split batch share. An outcome that names no event type (a dead-lettered record whose
 * event-type header was lost; the message id is the Kafka key, always there) is taken by its
 * message id. The columns are derived from the hashed record (verify checks them). */
#define ELEMENT_OF(o, i)                                                                           \
    " " o ".message_id IS NOT DISTINCT FROM " i ".message_id AND (coalesce(" o ".event_type,"      \
    " '') = '' OR " o ".event_type = " i ".event_type)"
/* SQL: the gap scan's key of a lineage row `t`'s event: chain, request, message id, type. */
#define ELEMENT_KEY(t)                                                                             \
    " json_build_array(" t ".chain, " t ".request_id, " t ".message_id, " t ".event_type)::text"

/* A page position: rows strictly after (ts_us, id). {0, 0} is the start. */
typedef struct {
    int64_t ts_us;
    int64_t id;
} aud_cursor_t;

/* Every lineage row of a request, oldest first (array, empty when unknown). */
json_t *aud_q_request(PGconn *c, const char *request_id, char *errbuf, size_t errcap);

/* {"events":[webhook_events rows], "lineage":[rows], "next_cursor":…} for a message id,
 * optionally of one source; lineage paged by (ts_us, id). */
json_t *aud_q_message(PGconn *c, const char *message_id, const char *source, int limit,
                      aud_cursor_t after, char *errbuf, size_t errcap);

/* Ingress rows in [from, to) with optional source and status filters, paged. */
json_t *aud_q_requests(PGconn *c, int64_t from_us, int64_t to_us, const char *source, int status,
                       int limit, aud_cursor_t after, char *errbuf, size_t errcap);

/* Gaps among accepted requests received in [from, to): state "open", "closed" or "all". */
json_t *aud_q_gaps(PGconn *c, int64_t grace_us, const char *state, int64_t from_us, int64_t to_us,
                   int limit, aud_cursor_t after, char *errbuf, size_t errcap);
/* Counts of open and closed gaps in [from, now). Returns 0 or HL_EPG. */
int aud_q_gap_counts(PGconn *c, int64_t grace_us, int64_t from_us, int64_t *open, int64_t *closed,
                     char *errbuf, size_t errcap) HL_MUST_CHECK;

/* Adds the rollup bucket counts of `stage` (optionally one source, optionally one outcome
 * class: "accepted", "rejected" or "unsplit", NULL for all) in the minutes of [from, to) into
 * h. Returns 0 or HL_EPG. */
int aud_q_latency(PGconn *c, aud_lat_t stage, const char *source, const char *outcome,
                  int64_t from_us, int64_t to_us, hl_hist_t *h, char *errbuf,
                  size_t errcap) HL_MUST_CHECK;

/* [{"chain", "seq", "ts_us", "key_id"}] of the newest checkpoint stored in
 * lineage_checkpoints, or [] when none was signed yet. */
json_t *aud_q_newest_checkpoint(PGconn *c, char *errbuf, size_t errcap);

/* Percentile summary of h: count, p50, p90, p95, p99, p99.9, max and (if buckets) the
 * non-empty buckets as [lo, hi, count]. */
json_t *aud_hist_summary(const hl_hist_t *h, int with_buckets);

/* The error-budget report for [from, to). */
json_t *aud_q_budget(PGconn *c, int64_t from_us, int64_t to_us, const char *source, uint32_t ack_ms,
                     uint32_t e2e_ms, double target, char *errbuf, size_t errcap);

#endif
