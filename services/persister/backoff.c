/* Full jitter spreads the retries of many persisters over the whole window instead of letting
 * them hit a recovering Postgres in lockstep. */
#include "backoff.h"

#include "hl/util.h"

void pst_backoff_init(pst_backoff_t *b, uint32_t base_ms, uint32_t cap_ms, uint64_t seed)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
    b->attempt = 0;
    if (seed == 0) seed = (uint64_t)hl_mono_us() * 0x9e3779b97f4a7c15ULL;
    b->rng = seed ? seed : 0x2545f4914f6cdd1dULL;
}

uint32_t pst_backoff_ceiling(const pst_backoff_t *b, uint32_t n)
{
    uint64_t c = b->base_ms;
    for (uint32_t i = 0; i < n && c < b->cap_ms; i++) c <<= 1;
    return c > b->cap_ms ? b->cap_ms : (uint32_t)c;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

uint32_t pst_backoff_next(pst_backoff_t *b)
{
    uint32_t ceil = pst_backoff_ceiling(b, b->attempt);
    if (b->attempt < UINT32_MAX) b->attempt++;
    return (uint32_t)(xorshift(&b->rng) % ((uint64_t)ceil + 1));
}

void pst_backoff_reset(pst_backoff_t *b)
{
    b->attempt = 0;
}
