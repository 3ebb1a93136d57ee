/* Capped exponential backoff with full jitter, for retrying Postgres and Kafka during outages. */
#ifndef PST_BACKOFF_H
#define PST_BACKOFF_H

#include <stdint.h>

typedef struct {
    uint32_t base_ms; /* ceiling of the first delay */
    uint32_t cap_ms;  /* no ceiling grows past this */
    uint32_t attempt; /* failures so far */
    uint64_t rng;     /* xorshift state, never 0 */
} pst_backoff_t;

/* Sets up a backoff; `seed` 0 picks one from the clock. Cannot fail. */
void pst_backoff_init(pst_backoff_t *b, uint32_t base_ms, uint32_t cap_ms, uint64_t seed);

/* The ceiling for attempt n: min(cap, base * 2^n), without overflow for any n. */
uint32_t pst_backoff_ceiling(const pst_backoff_t *b, uint32_t n);

/* The next delay: uniform in [0, ceiling(attempt)] ("full jitter"), then attempt++. */
uint32_t pst_backoff_next(pst_backoff_t *b);

/* Back to the first attempt after a success. */
void pst_backoff_reset(pst_backoff_t *b);

#endif
