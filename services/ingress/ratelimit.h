/* Per-source rate limit: a token bucket (rate_per_sec, burst) kept as one atomic
 * "theoretical arrival time" (GCRA), so workers never take a lock to be admitted. */
#ifndef ING_RATELIMIT_H
#define ING_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t interval_ns; /* 1e9 / rate_per_sec; 0 = no limit */
    int64_t burst_ns;    /* burst * interval_ns: how far the TAT may run ahead of now */
    _Atomic int64_t tat; /* theoretical arrival time of the next request, monotonic ns */
} ing_ratelimit_t;

/* rate_per_sec == 0 disables the limit. burst is raised to at least 1. Cannot fail. */
void ing_ratelimit_init(ing_ratelimit_t *r, uint32_t rate_per_sec, uint32_t burst);

/* Takes one token at monotonic time now_ns. Returns true when admitted; otherwise false
 * and *retry_after_s (if non-NULL) holds whole seconds until a token is free (>= 1).
 * Lock-free; any thread. */
bool ing_ratelimit_take(ing_ratelimit_t *r, int64_t now_ns, int *retry_after_s);

/* As ing_ratelimit_take, but admits as if `pending` tokens taken earlier had been given back
 * already (they are still charged until they are: the TAT may then run up to `pending`
 * intervals past the burst). */
bool ing_ratelimit_take_pending(ing_ratelimit_t *r, int64_t now_ns, unsigned pending,
                                int *retry_after_s);

/* As ing_ratelimit_take, but takes nothing: would a request be admitted now? */
bool ing_ratelimit_check(ing_ratelimit_t *r, int64_t now_ns, int *retry_after_s);
/* As ing_ratelimit_check, with `pending` tokens counted as given back. */
bool ing_ratelimit_check_pending(ing_ratelimit_t *r, int64_t now_ns, unsigned pending,
                                 int *retry_after_s);

/* Gives back one token ing_ratelimit_take took (the request it was taken for is not to be
 * charged after all). Lock-free; any thread. */
void ing_ratelimit_refund(ing_ratelimit_t *r);

/* True when the bucket is full again at now_ns (no request left a trace in it). */
bool ing_ratelimit_idle(ing_ratelimit_t *r, int64_t now_ns);

#endif
