/* Latency distributions for people: a histogram's fine buckets merged into log-spaced display
 * bins over its whole range, drawn as an inline SVG bar chart with its percentiles marked. */
#ifndef AUD_CHART_H
#define AUD_CHART_H

#include <stddef.h>
#include <stdint.h>

#include "hl/hist.h"
#include "html.h"

#define AUD_CHART_PER_DECADE 8 /* bins per factor of ten: each ~1.33 times as wide as the last */
#define AUD_CHART_MIN_BINS 16  /* a narrow distribution still gets two decades of context */
#define AUD_CHART_MAX_BINS 96  /* 1 µs .. 2^36 µs (hist's ceiling) needs 88 */

/* One display bin: the values lo..hi (µs, inclusive) and how many samples fell there. */
typedef struct {
    int64_t lo, hi;
    uint64_t count;
} aud_bin_t;

/* The bins of one histogram. Bin i starts at the grid edge 10^((k0 + i) / AUD_CHART_PER_DECADE)
 * µs (or just after bin i-1 where a fine bucket straddled that edge), consecutive bins touch,
 * the first holds the smallest sample and the last the largest. */
typedef struct {
    aud_bin_t bin[AUD_CHART_MAX_BINS];
    int n;          /* bins in use; 0 for an empty histogram */
    int k0;         /* grid index of bin 0 */
    uint64_t total; /* samples in all bins */
    uint64_t most;  /* samples in the fullest bin */
} aud_bins_t;

/* Merges every fine bucket of h into out (which needs no initialisation). */
void aud_bins_from_hist(const hl_hist_t *h, aud_bins_t *out);

/* A latency in µs as milliseconds (seconds from 1 s on) with three significant digits:
 * "0.250 ms", "12.3 ms", "437 ms", "5.00 s". Always NUL-terminates buf. */
void aud_fmt_ms(int64_t us, char *buf, size_t cap);

/* Writes <figure id="hist-{id}"> with the SVG chart of h and a caption of its percentiles
 * (p50, p95, p99, p99.9, max). id is markup-safe ([a-z0-9-]); title is escaped. Every bar
 * carries data-lo-us, data-hi-us and data-count, every percentile marker data-p and data-us. */
void aud_chart_figure(aud_html_t *o, const char *id, const char *title, const hl_hist_t *h);

#endif
