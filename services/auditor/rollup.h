/* Latency per stage (ack, queue, persist, e2e) and source: derived from lineage records in
 * each batch, kept live in memory and added to per-minute rollups in the batch transaction. */
#ifndef HL_AUDITOR_ROLLUP_H
#define HL_AUDITOR_ROLLUP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/hist.h"
#include "record.h"

typedef enum { HL_LAT_ACK = 0, HL_LAT_QUEUE, HL_LAT_PERSIST, HL_LAT_E2E, HL_LAT_N } hl_lat_t;

const char *hl_lat_name(hl_lat_t s);

/* The outcome class a sample is kept under (latency_rollups.outcome, proto/sql/009): the
 * ingress's answer was 2xx, or it was not. Queue, persist and e2e samples are all accepted. */
typedef enum { HL_OUT_ACCEPTED = 0, HL_OUT_REJECTED, HL_OUT_N } hl_outcome_t;
const char *hl_outcome_name(hl_outcome_t o);
/* Returns 0 and sets *out, or HL_EINVAL for an unknown stage name. */
int hl_lat_parse(const char *s, hl_lat_t *out) HL_MUST_CHECK;

/* One latency sample taken from the lineage. */
typedef struct {
    hl_lat_t stage;
    int64_t minute_us; /* start of the minute the request was received in */
    int64_t value_us;
    char source[65];
    hl_outcome_t outcome;
} hl_sample_t;

/* What the pairing needs to remember of one event's records: a request's, or one element's of
 * a split batch (which share the request id). Every stage is counted per event: a batch of n
 * events yields n ack samples (each element's ingress record carries the request's answer
 * time), n queue, n persist and n e2e samples. */
#define HL_PAIR_KEY_LEN 56 /* request id, '/', 16 hex digits of the element's digest */
typedef struct {
    char key[HL_PAIR_KEY_LEN];
    char source[65];
    int64_t answered_us, received_us; /* from the ingress record; HL_REC_ABSENT if unseen */
    int64_t consumed_us;              /* from the persisted record; HL_REC_ABSENT if unseen */
    int used;
} hl_pair_t;

/* A fixed-size open-addressing map event key -> hl_pair_t, sized for one batch (plus what
 * the database returned for it). */
typedef struct {
    hl_pair_t *slots;
    size_t cap;
} hl_pairs_t;

void hl_pairs_init(hl_pairs_t *p, size_t expected);
void hl_pairs_deinit(hl_pairs_t *p);
hl_pair_t *hl_pairs_get(hl_pairs_t *p, const char *key); /* finds or inserts */

/* Appends the samples record r yields to out (at most 3; *n counts them), using and updating
 * the pair state of its request. Queue latency needs both the ingress record (answered time)
 * and the persisted one (consumed time), whichever comes second yields it. */
void hl_samples_from_record(hl_pairs_t *pairs, const hl_record_t *r, hl_sample_t *out, size_t *n);

/* Live histograms per stage and source (at most HL_LIVE_SOURCES sources; further sources are
 * counted under "_other"). Thread-safe. */
#define HL_LIVE_SOURCES 64
typedef struct hl_live hl_live_t;
hl_live_t *hl_live_new(void);
void hl_live_free(hl_live_t *l);
void hl_live_record(hl_live_t *l, const hl_sample_t *s);
/* Merges the histogram of `stage` for `source` (NULL: every source) into dst. */
void hl_live_merge(hl_live_t *l, hl_lat_t stage, const char *source, hl_hist_t *dst);

#endif
