/* Log-linear latency histogram (HdrHistogram-style): constant memory, bounded relative error,
 * O(1) lock-free recording, mergeable, percentile queries, JSON and Prometheus output. */
#ifndef HL_HIST_H
#define HL_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

/* Values are integers in a caller-chosen unit (microseconds for latencies). Buckets: values
 * below 2^HL_HIST_SUB_BITS are exact; above, each power of two is split into
 * 2^(HL_HIST_SUB_BITS-1) linear sub-buckets, so the relative error of any reported value is at
 * most 2^-(HL_HIST_SUB_BITS-1) (< 1% with 8 bits: 0.78%). Values above HL_HIST_MAX_VALUE
 * are clamped to it and counted in `overflow`. */
#define HL_HIST_SUB_BITS 8
#define HL_HIST_MAX_VALUE ((int64_t)1 << 36) /* ~19 h in µs, well past 60 s */

typedef struct hl_hist hl_hist_t;

/* A new empty histogram, owned by the caller; aborts on out-of-memory. */
hl_hist_t *hl_hist_new(void);
/* NULL-safe. */
void hl_hist_free(hl_hist_t *h);

/* Records one value (negative values count as 0). Lock-free (relaxed atomics): safe from any
 * number of threads at once while others read. */
void hl_hist_record(hl_hist_t *h, int64_t value);
void hl_hist_record_n(hl_hist_t *h, int64_t value, uint64_t count);

/* Adds every count of src into dst. Safe while src is being recorded (a snapshot). */
void hl_hist_merge(hl_hist_t *dst, const hl_hist_t *src);
/* Zeroes all counts (not atomic as a whole with concurrent recording). */
void hl_hist_reset(hl_hist_t *h);

uint64_t hl_hist_count(const hl_hist_t *h);
int64_t hl_hist_min(const hl_hist_t *h); /* 0 when empty */
int64_t hl_hist_max(const hl_hist_t *h); /* 0 when empty; exact */
double hl_hist_mean(const hl_hist_t *h);
uint64_t hl_hist_sum(const hl_hist_t *h); /* exact sum of recorded values */
/* How many recorded values were above HL_HIST_MAX_VALUE (and clamped to it). */
uint64_t hl_hist_overflow(const hl_hist_t *h);

/* The value at percentile q (0..100): the smallest bucket whose cumulative count reaches
 * ceil(q/100 * count), reported as that bucket's highest equivalent value (clamped to max).
 * 0 when empty. */
int64_t hl_hist_percentile(const hl_hist_t *h, double q);

/* Iteration over non-empty buckets, lowest first. Returns the number of buckets visited. */
typedef void (*hl_hist_bucket_fn)(int64_t lo, int64_t hi, uint64_t count, void *arg);
size_t hl_hist_foreach(const hl_hist_t *h, hl_hist_bucket_fn fn, void *arg);

/* Total number of internal buckets and the bounds of bucket i (for storage as rollups). */
size_t hl_hist_bucket_count(void);
void hl_hist_bucket_bounds(size_t i, int64_t *lo, int64_t *hi);
size_t hl_hist_bucket_index(int64_t value);
uint64_t hl_hist_bucket_get(const hl_hist_t *h, size_t i);

/* Writes {"count":…,"min":…,"max":…,"mean":…,"sum":…,"overflow":…,"p50":…,"p90":…,"p95":…,
 * "p99":…,"p999":…,"buckets":[[lo,hi,count],…]} into buf (cap bytes, NUL-terminated).
 * Returns bytes written (without NUL), or HL_ETOOBIG. 64 KiB always suffices (at most
 * hl_hist_bucket_count() buckets); a typical latency histogram needs 2-8 KiB. */
int hl_hist_to_json(const hl_hist_t *h, char *buf, size_t cap);

/* Parses what hl_hist_to_json wrote back into an empty histogram (for exchange across
 * processes); a non-empty h receives the parsed counts added to its own. Only "count", "min",
 * "max" and "buckets" are required ("sum" and "overflow" default to the bucket midpoints and 0);
 * the percentiles and mean are ignored. Every bucket must be one of ours, counts must add up,
 * min/max must sit in the first/last bucket. Returns 0 or HL_EPARSE (h unchanged). */
int hl_hist_from_json(hl_hist_t *h, const char *json, size_t len) HL_MUST_CHECK;

#endif
