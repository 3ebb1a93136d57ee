/* A small metrics registry that writes the Prometheus text exposition format 0.0.4. */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"
#include "hl/hist.h"

typedef struct hl_metrics hl_metrics_t;
typedef struct hl_counter hl_counter_t;
typedef struct hl_gauge hl_gauge_t;
typedef struct hl_histogram_metric hl_histogram_metric_t;

/* Registry lifecycle. Registration happens at start on one thread; updates are lock-free
 * from any thread afterwards; hl_metrics_render may run concurrently with updates. */
hl_metrics_t *hl_metrics_new(void);
void hl_metrics_free(hl_metrics_t *m); /* NULL-safe; frees every metric it holds */

/* Registers a metric. name/help are copied. `labels` is NULL or a fixed label set in
 * Prometheus syntax without braces, e.g. "source=\"stripe\",status=\"202\"" (copied). The same
 * name may be registered several times with different label sets (one HELP/TYPE block). The
 * returned handle is owned by the registry. Aborts on out-of-memory. */
hl_counter_t *hl_metrics_counter(hl_metrics_t *m, const char *name, const char *help,
                                 const char *labels);
hl_gauge_t *hl_metrics_gauge(hl_metrics_t *m, const char *name, const char *help,
                             const char *labels);
/* A latency histogram exported in seconds: values recorded in microseconds, rendered as
 * classic _bucket{le=…} (fixed bounds from 100 µs to 60 s plus +Inf), _sum and _count. The
 * underlying hl_hist_t keeps full resolution for percentiles (hl_metrics_histogram_hist). */
hl_histogram_metric_t *hl_metrics_histogram(hl_metrics_t *m, const char *name, const char *help,
                                            const char *labels);

/* A histogram of plain counts (records per batch and the like): values recorded as they are,
 * rendered with the bounds 1, 2, 5, 10, 25, … 500000 plus +Inf, _sum and _count. Observed with
 * hl_histogram_observe_us, whose value is then a count, not microseconds. */
hl_histogram_metric_t *hl_metrics_count_histogram(hl_metrics_t *m, const char *name,
                                                  const char *help, const char *labels);

void hl_counter_add(hl_counter_t *c, uint64_t n);
#define hl_counter_inc(c) hl_counter_add((c), 1)
uint64_t hl_counter_get(const hl_counter_t *c);
void hl_gauge_set(hl_gauge_t *g, int64_t v);
void hl_gauge_add(hl_gauge_t *g, int64_t delta);
int64_t hl_gauge_get(const hl_gauge_t *g);
void hl_histogram_observe_us(hl_histogram_metric_t *h, int64_t us);
hl_hist_t *hl_metrics_histogram_hist(hl_histogram_metric_t *h);

/* A gauge whose value is computed at render time by fn(arg) (e.g. producer queue depth). */
void hl_metrics_gauge_fn(hl_metrics_t *m, const char *name, const char *help, const char *labels,
                         int64_t (*fn)(void *arg), void *arg);

/* Renders every metric into a new NUL-terminated buffer owned by the caller (free()).
 * Content type: text/plain; version=0.0.4. */
char *hl_metrics_render(hl_metrics_t *m, size_t *len);

#endif
