/* GCRA token bucket: admitting a request moves the theoretical arrival time (TAT) forward
 * by one interval; a request is refused when that would put the TAT more than `burst`
 * intervals ahead of now (the TAT less `pending` intervals, for the _pending variants: tokens
 * taken and not settled yet are judged as given back, and stay charged until they are). One
 * compare-and-swap per request. */
#include "ratelimit.h"

#include <stddef.h>

void ing_ratelimit_init(ing_ratelimit_t *r, uint32_t rate_per_sec, uint32_t burst)
{
    r->interval_ns = rate_per_sec ? (int64_t)1000000000 / rate_per_sec : 0;
    if (r->interval_ns == 0 && rate_per_sec) r->interval_ns = 1;
    r->burst_ns = (int64_t)(burst ? burst : 1) * r->interval_ns;
    atomic_init(&r->tat, 0);
}

/* The admission rule, with `pending` tokens counted as given back; with take false nothing
 * changes. */
static bool admit(ing_ratelimit_t *r, int64_t now_ns, unsigned pending, int *retry_after_s,
                  bool take)
{
    if (r->interval_ns == 0) return true;
    int64_t tat = atomic_load_explicit(&r->tat, memory_order_relaxed);
    for (;;) {
        int64_t base = tat > now_ns ? tat : now_ns;
        int64_t next = base + r->interval_ns;
        int64_t settled = tat - (int64_t)pending * r->interval_ns;
        int64_t admitted = (settled > now_ns ? settled : now_ns) + r->interval_ns;
        if (admitted - now_ns > r->burst_ns) {
            if (retry_after_s != NULL) {
                int64_t wait = admitted - now_ns - r->burst_ns;
                int64_t s = (wait + 999999999) / 1000000000;
                *retry_after_s = s < 1 ? 1 : (int)s;
            }
            return false;
        }
        if (!take) return true;
        if (atomic_compare_exchange_weak_explicit(&r->tat, &tat, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

bool ing_ratelimit_take(ing_ratelimit_t *r, int64_t now_ns, int *retry_after_s)
{
    return admit(r, now_ns, 0, retry_after_s, true);
}

bool ing_ratelimit_take_pending(ing_ratelimit_t *r, int64_t now_ns, unsigned pending,
                                int *retry_after_s)
{
    return admit(r, now_ns, pending, retry_after_s, true);
}

bool ing_ratelimit_check(ing_ratelimit_t *r, int64_t now_ns, int *retry_after_s)
{
    return admit(r, now_ns, 0, retry_after_s, false);
}

bool ing_ratelimit_check_pending(ing_ratelimit_t *r, int64_t now_ns, unsigned pending,
                                 int *retry_after_s)
{
    return admit(r, now_ns, pending, retry_after_s, false);
}

bool ing_ratelimit_idle(ing_ratelimit_t *r, int64_t now_ns)
{
    return atomic_load_explicit(&r->tat, memory_order_relaxed) <= now_ns;
}

void ing_ratelimit_refund(ing_ratelimit_t *r)
{
    atomic_fetch_sub_explicit(&r->tat, r->interval_ns, memory_order_relaxed);
}
