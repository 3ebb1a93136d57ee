/* Log-linear histogram: one fixed array of relaxed atomic counters indexed by a few shifts,
 * so recording is O(1), lock-free and never allocates. */
#include "hl/hist.h"

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/util.h"

/* Values below SUB_COUNT have a bucket each. Above, the power of two [2^k, 2^(k+1)) for
 * k >= SUB_BITS is split into HALF_COUNT buckets of width 2^(k-SUB_BITS+1). */
#define SUB_COUNT (1 << HL_HIST_SUB_BITS)
#define HALF_COUNT (SUB_COUNT / 2)
#define MAX_EXP 36 /* log2(HL_HIST_MAX_VALUE) */
_Static_assert(HL_HIST_MAX_VALUE == (int64_t)1 << MAX_EXP, "MAX_EXP must match the max value");
/* The last bucket holds only HL_HIST_MAX_VALUE itself, where clamped values land. */
#define BUCKETS (SUB_COUNT + (MAX_EXP - HL_HIST_SUB_BITS) * HALF_COUNT + 1)
#define JSON_PARSE_CAP (1 << 20) /* a histogram's JSON never needs more than ~100 KiB */

struct hl_hist {
    _Atomic uint64_t total;    /* number of recorded values */
    _Atomic uint64_t sum;      /* exact sum of recorded (clamped) values */
    _Atomic uint64_t overflow; /* values that were above HL_HIST_MAX_VALUE */
    _Atomic int64_t min;       /* INT64_MAX when empty */
    _Atomic int64_t max;       /* -1 when empty */
    _Atomic uint64_t counts[BUCKETS];
};

size_t hl_hist_bucket_count(void)
{
    return BUCKETS;
}

size_t hl_hist_bucket_index(int64_t value)
{
    if (value < SUB_COUNT) return value < 0 ? 0 : (size_t)value;
    if (value > HL_HIST_MAX_VALUE) value = HL_HIST_MAX_VALUE;
    int k = 63 - __builtin_clzll((unsigned long long)value); /* k >= SUB_BITS */
    int shift = k - HL_HIST_SUB_BITS + 1;
    size_t sub = (size_t)(value >> shift) - HALF_COUNT;
    return SUB_COUNT + (size_t)(k - HL_HIST_SUB_BITS) * HALF_COUNT + sub;
}

void hl_hist_bucket_bounds(size_t i, int64_t *lo, int64_t *hi)
{
    int64_t l, h;
    if (i >= BUCKETS) i = BUCKETS - 1;
    if (i < SUB_COUNT) {
        l = h = (int64_t)i;
    } else {
        size_t g = (i - SUB_COUNT) / HALF_COUNT, sub = (i - SUB_COUNT) % HALF_COUNT;
        int shift = (int)g + 1;
        l = (int64_t)(HALF_COUNT + sub) << shift;
        h = l + ((int64_t)1 << shift) - 1;
        if (h > HL_HIST_MAX_VALUE) h = HL_HIST_MAX_VALUE;
    }
    if (lo != NULL) *lo = l;
    if (hi != NULL) *hi = h;
}

static void hist_clear(hl_hist_t *h)
{
    for (size_t i = 0; i < BUCKETS; i++)
        atomic_store_explicit(&h->counts[i], 0, memory_order_relaxed);
    atomic_store_explicit(&h->total, 0, memory_order_relaxed);
    atomic_store_explicit(&h->sum, 0, memory_order_relaxed);
    atomic_store_explicit(&h->overflow, 0, memory_order_relaxed);
    atomic_store_explicit(&h->min, INT64_MAX, memory_order_relaxed);
    atomic_store_explicit(&h->max, -1, memory_order_relaxed);
}

hl_hist_t *hl_hist_new(void)
{
    hl_hist_t *h = hl_xmalloc(sizeof(*h));
    hist_clear(h);
    return h;
}

void hl_hist_free(hl_hist_t *h)
{
    free(h);
}

void hl_hist_reset(hl_hist_t *h)
{
    hist_clear(h);
}

/* Lowers *a to v unless it already is at most v; a CAS loop that usually exits on the first
 * relaxed load, since extremes are rarely beaten. */
static void atomic_min_i64(_Atomic int64_t *a, int64_t v)
{
    int64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v < cur && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

static void atomic_max_i64(_Atomic int64_t *a, int64_t v)
{
    int64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

void hl_hist_record_n(hl_hist_t *h, int64_t value, uint64_t count)
{
    if (count == 0) return;
    if (value < 0) value = 0;
    if (value > HL_HIST_MAX_VALUE) {
        value = HL_HIST_MAX_VALUE;
        atomic_fetch_add_explicit(&h->overflow, count, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&h->counts[hl_hist_bucket_index(value)], count, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->total, count, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, (uint64_t)value * count, memory_order_relaxed);
    atomic_min_i64(&h->min, value);
    atomic_max_i64(&h->max, value);
}

void hl_hist_record(hl_hist_t *h, int64_t value)
{
    hl_hist_record_n(h, value, 1);
}

uint64_t hl_hist_bucket_get(const hl_hist_t *h, size_t i)
{
    if (i >= BUCKETS) return 0;
    return atomic_load_explicit(&h->counts[i], memory_order_relaxed);
}

void hl_hist_merge(hl_hist_t *dst, const hl_hist_t *src)
{
    uint64_t added = 0;
    if (dst == NULL || src == NULL || dst == src) return;
    for (size_t i = 0; i < BUCKETS; i++) {
        uint64_t c = atomic_load_explicit(&src->counts[i], memory_order_relaxed);
        if (c == 0) continue;
        atomic_fetch_add_explicit(&dst->counts[i], c, memory_order_relaxed);
        added += c;
    }
    if (added == 0) return;
    /* The total follows the buckets actually copied, so dst stays self-consistent even when
     * src is being recorded into meanwhile. */
    atomic_fetch_add_explicit(&dst->total, added, memory_order_relaxed);
    atomic_fetch_add_explicit(&dst->sum, atomic_load_explicit(&src->sum, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&dst->overflow,
                              atomic_load_explicit(&src->overflow, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_min_i64(&dst->min, atomic_load_explicit(&src->min, memory_order_relaxed));
    atomic_max_i64(&dst->max, atomic_load_explicit(&src->max, memory_order_relaxed));
}

uint64_t hl_hist_count(const hl_hist_t *h)
{
    return atomic_load_explicit(&h->total, memory_order_relaxed);
}

int64_t hl_hist_min(const hl_hist_t *h)
{
    int64_t v = atomic_load_explicit(&h->min, memory_order_relaxed);
    return v == INT64_MAX ? 0 : v;
}

int64_t hl_hist_max(const hl_hist_t *h)
{
    int64_t v = atomic_load_explicit(&h->max, memory_order_relaxed);
    return v < 0 ? 0 : v;
}

uint64_t hl_hist_sum(const hl_hist_t *h)
{
    return atomic_load_explicit(&h->sum, memory_order_relaxed);
}

uint64_t hl_hist_overflow(const hl_hist_t *h)
{
    return atomic_load_explicit(&h->overflow, memory_order_relaxed);
}

double hl_hist_mean(const hl_hist_t *h)
{
    uint64_t n = hl_hist_count(h);
    return n == 0 ? 0.0 : (double)hl_hist_sum(h) / (double)n;
}

/* The 1-based rank of percentile q among n values: ceil(q/100 * n), at least 1. The small
 * tolerance keeps 99.9% of 100000 at rank 99900 although 99.9/100*100000 is 99900.00000000001
 * in binary floating point. */
static uint64_t percentile_rank(double q, uint64_t n)
{
    if (!(q > 0)) return 1; /* also catches NaN */
    if (q >= 100) return n;
    double r = q / 100.0 * (double)n;
    uint64_t rank = (uint64_t)ceil(r - r * 1e-12);
    return rank < 1 ? 1 : (rank > n ? n : rank);
}

int64_t hl_hist_percentile(const hl_hist_t *h, double q)
{
    uint64_t n = 0, seen = 0;
    /* The rank comes from the bucket counts rather than the separate total, and the second
     * pass sees counts at least as large as the first (they only grow), so concurrent
     * recording cannot push the rank past the last bucket. Two passes keep the stack small. */
    for (size_t i = 0; i < BUCKETS; i++)
        n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    if (n == 0) return 0;
    uint64_t rank = percentile_rank(q, n);
    int64_t max = hl_hist_max(h);
    for (size_t i = 0; i < BUCKETS; i++) {
        seen += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (seen >= rank) {
            int64_t hi;
            hl_hist_bucket_bounds(i, NULL, &hi);
            return hi < max ? hi : max;
        }
    }
    return max; /* only after a concurrent reset */
}

size_t hl_hist_foreach(const hl_hist_t *h, hl_hist_bucket_fn fn, void *arg)
{
    size_t visited = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        uint64_t c = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (c == 0) continue;
        int64_t lo, hi;
        hl_hist_bucket_bounds(i, &lo, &hi);
        if (fn != NULL) fn(lo, hi, c, arg);
        visited++;
    }
    return visited;
}

/* snprintf into buf at *len; false once the cap is reached. */
HL_PRINTF(4, 5)
static bool json_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    if (*len >= cap) return false;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len) return false;
    *len += (size_t)n;
    return true;
}

int hl_hist_to_json(const hl_hist_t *h, char *buf, size_t cap)
{
    size_t len = 0;
    bool ok, first = true;
    if (h == NULL || buf == NULL) return HL_EINVAL;
    ok =
        json_appendf(buf, cap, &len,
                     "{\"count\":%llu,\"min\":%lld,\"max\":%lld,\"mean\":%.3f,\"sum\":%llu,"
                     "\"overflow\":%llu,\"p50\":%lld,\"p90\":%lld,\"p95\":%lld,\"p99\":%lld,"
                     "\"p999\":%lld,\"buckets\":[",
                     (unsigned long long)hl_hist_count(h), (long long)hl_hist_min(h),
                     (long long)hl_hist_max(h), hl_hist_mean(h), (unsigned long long)hl_hist_sum(h),
                     (unsigned long long)hl_hist_overflow(h), (long long)hl_hist_percentile(h, 50),
                     (long long)hl_hist_percentile(h, 90), (long long)hl_hist_percentile(h, 95),
                     (long long)hl_hist_percentile(h, 99), (long long)hl_hist_percentile(h, 99.9));
    for (size_t i = 0; ok && i < BUCKETS; i++) {
        uint64_t c = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (c == 0) continue;
        int64_t lo, hi;
        hl_hist_bucket_bounds(i, &lo, &hi);
        ok = json_appendf(buf, cap, &len, "%s[%lld,%lld,%llu]", first ? "" : ",", (long long)lo,
                          (long long)hi, (unsigned long long)c);
        first = false;
    }
    ok = ok && json_appendf(buf, cap, &len, "]}");
    if (!ok) {
        if (cap > 0) buf[0] = '\0';
        return HL_ETOOBIG;
    }
    return (int)len;
}

/* A non-negative JSON integer member, or false. */
static bool json_get_u64(json_t *obj, const char *key, bool required, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) return !required;
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Fills tmp from the parsed document; false on anything we would not have written. */
static bool hist_from_doc(hl_hist_t *tmp, json_t *doc)
{
    uint64_t count = 0, min = 0, max = 0, sum = 0, overflow = 0, seen = 0, mid_sum = 0;
    json_t *buckets = json_object_get(doc, "buckets");
    size_t n, prev = 0;
    bool has_sum = json_object_get(doc, "sum") != NULL;

    if (!json_is_object(doc) || !json_is_array(buckets)) return false;
    if (!json_get_u64(doc, "count", true, &count) || !json_get_u64(doc, "min", true, &min) ||
        !json_get_u64(doc, "max", true, &max) || !json_get_u64(doc, "sum", false, &sum) ||
        !json_get_u64(doc, "overflow", false, &overflow))
        return false;
    n = json_array_size(buckets);
    if (n > BUCKETS || (n == 0) != (count == 0) || max > (uint64_t)HL_HIST_MAX_VALUE || min > max ||
        overflow > count)
        return false;
    for (size_t j = 0; j < n; j++) {
        json_t *b = json_array_get(buckets, j);
        if (!json_is_array(b) || json_array_size(b) != 3) return false;
        json_t *jlo = json_array_get(b, 0), *jhi = json_array_get(b, 1), *jc = json_array_get(b, 2);
        if (!json_is_integer(jlo) || !json_is_integer(jhi) || !json_is_integer(jc)) return false;
        json_int_t lo = json_integer_value(jlo), hi = json_integer_value(jhi);
        json_int_t c = json_integer_value(jc);
        if (lo < 0 || lo > HL_HIST_MAX_VALUE || c <= 0) return false;
        size_t i = hl_hist_bucket_index(lo);
        int64_t blo, bhi;
        hl_hist_bucket_bounds(i, &blo, &bhi);
        /* Buckets must be ours, strictly ascending, and counts must not overflow. */
        if (blo != lo || bhi != hi || (j > 0 && i <= prev)) return false;
        if ((uint64_t)c > count - seen) return false;
        if (j == 0 && ((int64_t)min < blo || (int64_t)min > bhi)) return false;
        if (j == n - 1 && ((int64_t)max < blo || (int64_t)max > bhi)) return false;
        atomic_store_explicit(&tmp->counts[i], (uint64_t)c, memory_order_relaxed);
        mid_sum += (uint64_t)(lo + (hi - lo) / 2) * (uint64_t)c;
        seen += (uint64_t)c;
        prev = i;
    }
    if (seen != count) return false;
    atomic_store_explicit(&tmp->total, count, memory_order_relaxed);
    atomic_store_explicit(&tmp->sum, has_sum ? sum : mid_sum, memory_order_relaxed);
    atomic_store_explicit(&tmp->overflow, overflow, memory_order_relaxed);
    if (count > 0) {
        atomic_store_explicit(&tmp->min, (int64_t)min, memory_order_relaxed);
        atomic_store_explicit(&tmp->max, (int64_t)max, memory_order_relaxed);
    }
    return true;
}

int hl_hist_from_json(hl_hist_t *h, const char *json, size_t len)
{
    json_error_t jerr;
    json_t *doc = NULL;
    hl_hist_t *tmp = NULL;
    int rc = HL_EPARSE;

    if (h == NULL || json == NULL || len > JSON_PARSE_CAP) return HL_EPARSE;
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) goto out;
    tmp = hl_hist_new();
    if (!hist_from_doc(tmp, doc)) goto out;
    hl_hist_merge(h, tmp);
    rc = 0;
out:
    hl_hist_free(tmp);
    json_decref(doc);
    return rc;
}
