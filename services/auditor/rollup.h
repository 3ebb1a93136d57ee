/* Latency per stage (ack, queue, persist, e2e) and source: derived from lineage records in
 * each batch, kept live in memory and added to per-minute rollups in the batch transaction. */
#ifndef AUD_ROLLUP_H
#define AUD_ROLLUP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/hist.h"
#include "hl/lineage_record.h"

typedef enum { AUD_LAT_ACK = 0, AUD_LAT_QUEUE, AUD_LAT_PERSIST, AUD_LAT_E2E, AUD_LAT_N } aud_lat_t;

const char *aud_lat_name(aud_lat_t s);

/* The outcome class a sample is kept under (latency_rollups.outcome, proto/sql/009): the
 * ingress's answer was 2xx, or it was not. Queue, persist and e2e samples are all accepted. */
typedef enum { AUD_OUT_ACCEPTED = 0, AUD_OUT_REJECTED, AUD_OUT_N } aud_outcome_t;
const char *aud_outcome_name(aud_outcome_t o);
/* Returns 0 and sets *out, or HL_EINVAL for an unknown stage name. */
int aud_lat_parse(const char *s, aud_lat_t *out) HL_MUST_CHECK;

/* One latency sample taken from the lineage. */
typedef struct {
    aud_lat_t stage;
    int64_t minute_us; /* start of the minute the request was received in */
    int64_t value_us;
    char source[HL_SOURCE_MAX + 1];
    aud_outcome_t outcome;
} aud_sample_t;

/* What the pairing needs to remember of one event's records: a request's, or one element's of
 * a split batch (which share the request id). Every stage is counted per event: a batch of n
 * events yields n ack samples (each element's ingress record carries the request's answer
 * time), n queue, n persist and n e2e samples. */
#define AUD_PAIR_KEY_LEN 56 /* request id, '/', 16 hex digits of the element's digest */
typedef struct {
    char key[AUD_PAIR_KEY_LEN];
    char source[HL_SOURCE_MAX + 1];
    int64_t answered_us, received_us; /* from the ingress record; HL_LINEAGE_ABSENT if unseen */
    int64_t consumed_us;              /* from the persisted record; HL_LINEAGE_ABSENT if unseen */
    int used;
} aud_pair_t;

/* A fixed-size open-addressing map event key -> aud_pair_t, sized for one batch (plus what
 * the database returned for it). */
typedef struct {
    aud_pair_t *slots;
    size_t cap;
} aud_pairs_t;

void aud_pairs_init(aud_pairs_t *p, size_t expected);
void aud_pairs_deinit(aud_pairs_t *p);
aud_pair_t *aud_pairs_get(aud_pairs_t *p, const char *key); /* finds or inserts */

/* Appends the samples record r yields to out (at most 3; *n counts them), using and updating
 * the pair state of its request. Queue latency needs both the ingress record (answered time)
 * and the persisted one (consumed time), whichever comes second yields it. */
void aud_samples_from_record(aud_pairs_t *pairs, const hl_lineage_rec_t *r, aud_sample_t *out,
                             size_t *n);

/* Live histograms per stage and source (at most AUD_LIVE_SOURCES sources; further sources are
 * counted under "_other"). Thread-safe. */
#define AUD_LIVE_SOURCES 64
typedef struct aud_live aud_live_t;
aud_live_t *aud_live_new(void);
void aud_live_free(aud_live_t *l);
void aud_live_record(aud_live_t *l, const aud_sample_t *s);
/* Merges the histogram of `stage` for `source` (NULL: every source) into dst. */
void aud_live_merge(aud_live_t *l, aud_lat_t stage, const char *source, hl_hist_t *dst);

#endif
