/* Unit tests for hl_hist: bucket layout, accuracy against exact percentiles, merge,
 * concurrent recording, JSON exchange and edge values. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hl/hist.h"

/* splitmix64: a tiny seeded generator, so every run draws the same samples. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 1.0) / 9007199254740992.0;
}

static double rng_normal(double mean, double sd)
{
    return mean + sd * sqrt(-2.0 * log(rng_unit())) * cos(2.0 * M_PI * rng_unit());
}

#define US_MIN 1.0
#define US_MAX 60e6 /* 60 s */

static int64_t clamp_us(double v)
{
    if (v < US_MIN) v = US_MIN;
    if (v > US_MAX) v = US_MAX;
    return (int64_t)llround(v);
}

static int64_t draw_log_uniform(void)
{
    return clamp_us(exp(log(US_MIN) + rng_unit() * (log(US_MAX) - log(US_MIN))));
}

static int64_t draw_exponential(void)
{
    return clamp_us(-log(rng_unit()) * 50000.0); /* mean 50 ms */
}

static int64_t draw_bimodal(void)
{
    /* 70% fast around 2 ms, 30% slow around 800 ms. */
    return rng_unit() < 0.7 ? clamp_us(rng_normal(2000.0, 300.0))
                            : clamp_us(rng_normal(800000.0, 100000.0));
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Exact percentile from sorted samples: the value at 1-based rank ceil(q/100 * n), with q in
 * tenths of a percent so the rank is computed in integers. */
static int64_t exact_percentile(const int64_t *sorted, size_t n, unsigned q_tenths)
{
    size_t rank = ((size_t)q_tenths * n + 999) / 1000;
    if (rank < 1) rank = 1;
    return sorted[rank - 1];
}

static void test_bucket_layout(void **state)
{
    (void)state;
    size_t n = hl_hist_bucket_count();
    int64_t prev_hi = -1;
    assert_true(n > 256 && n < 8192);
    for (size_t i = 0; i < n; i++) {
        int64_t lo, hi;
        hl_hist_bucket_bounds(i, &lo, &hi);
        assert_int_equal(lo, prev_hi + 1); /* contiguous, no gaps, no overlap */
        assert_true(hi >= lo);
        assert_int_equal(hl_hist_bucket_index(lo), i);
        assert_int_equal(hl_hist_bucket_index(hi), i);
        if (lo < 256) assert_int_equal(lo, hi); /* exact below 2^SUB_BITS */
        /* Width relative to the lowest value is at most 2^-(SUB_BITS-1). */
        assert_true((double)(hi - lo) <= (double)lo / 128.0);
        prev_hi = hi;
    }
    assert_int_equal(prev_hi, HL_HIST_MAX_VALUE);
    assert_int_equal(hl_hist_bucket_index(-5), 0);
    assert_int_equal(hl_hist_bucket_index(INT64_MAX), n - 1);
}

#define SAMPLES 100000

typedef struct {
    const char *name;
    int64_t (*draw)(void);
} dist_t;

static void test_accuracy_against_exact(void **state)
{
    (void)state;
    const dist_t dists[] = {{"log-uniform 1us..60s", draw_log_uniform},
                            {"exponential mean 50ms", draw_exponential},
                            {"bimodal 2ms/800ms", draw_bimodal}};
    const unsigned qs[] = {500, 900, 990, 999, 1000};
    const char *qnames[] = {"p50", "p90", "p99", "p99.9", "max"};
    int64_t *v = malloc(SAMPLES * sizeof(*v));
    assert_non_null(v);
    double worst_all = 0;
    for (size_t d = 0; d < sizeof(dists) / sizeof(dists[0]); d++) {
        hl_hist_t *h = hl_hist_new();
        uint64_t sum = 0;
        rng_state = 0x5eed0000 + d;
        for (size_t i = 0; i < SAMPLES; i++) {
            v[i] = dists[d].draw();
            sum += (uint64_t)v[i];
            hl_hist_record(h, v[i]);
        }
        qsort(v, SAMPLES, sizeof(*v), cmp_i64);
        assert_int_equal(hl_hist_count(h), SAMPLES);
        assert_int_equal(hl_hist_sum(h), sum);
        assert_int_equal(hl_hist_min(h), v[0]);
        assert_int_equal(hl_hist_max(h), v[SAMPLES - 1]);
        assert_true(fabs(hl_hist_mean(h) - (double)sum / SAMPLES) < 1e-6);
        char line[256];
        size_t len = (size_t)snprintf(line, sizeof(line), "%-22s", dists[d].name);
        for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
            int64_t exact = exact_percentile(v, SAMPLES, qs[k]);
            int64_t got = hl_hist_percentile(h, qs[k] / 10.0);
            double rel = fabs((double)(got - exact)) / (double)exact;
            if (rel > 0.01)
                fail_msg("%s %s: got %lld, exact %lld, relative error %.4f%%", dists[d].name,
                         qnames[k], (long long)got, (long long)exact, rel * 100);
            /* The highest equivalent value never under-reports. */
            assert_true(got >= exact);
            if (rel > worst_all) worst_all = rel;
            len += (size_t)snprintf(line + len, sizeof(line) - len, " %s=%.3f%%", qnames[k],
                                    rel * 100);
        }
        print_message("relative error %s\n", line);
        hl_hist_free(h);
    }
    print_message("worst relative error over all percentiles: %.3f%% (bound 0.78%%)\n",
                  worst_all * 100);
    free(v);
}

static void test_percentile_semantics(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new();
    for (int i = 1; i <= 100; i++) hl_hist_record(h, i);
    assert_int_equal(hl_hist_percentile(h, 0), 1);
    assert_int_equal(hl_hist_percentile(h, 1), 1);
    assert_int_equal(hl_hist_percentile(h, 50), 50);
    assert_int_equal(hl_hist_percentile(h, 50.5), 51);
    assert_int_equal(hl_hist_percentile(h, 99), 99);
    assert_int_equal(hl_hist_percentile(h, 100), 100);
    assert_int_equal(hl_hist_percentile(h, 250), 100);
    assert_int_equal(hl_hist_percentile(h, -3), 1);
    assert_int_equal(hl_hist_percentile(h, NAN), 1);
    /* Above 256 the bucket's highest value is reported, clamped to the exact max. */
    hl_hist_reset(h);
    hl_hist_record(h, 1000);
    int64_t lo, hi;
    hl_hist_bucket_bounds(hl_hist_bucket_index(1000), &lo, &hi);
    assert_true(hi > 1000);
    assert_int_equal(hl_hist_percentile(h, 50), 1000);
    hl_hist_record(h, 5000);
    hl_hist_bucket_bounds(hl_hist_bucket_index(1000), &lo, &hi);
    assert_int_equal(hl_hist_percentile(h, 50), hi);
    assert_int_equal(hl_hist_percentile(h, 100), 5000);
    hl_hist_free(h);
}

static void test_merge_equals_union(void **state)
{
    (void)state;
    hl_hist_t *a = hl_hist_new(), *b = hl_hist_new(), *u = hl_hist_new(), *m = hl_hist_new();
    rng_state = 42;
    for (int i = 0; i < 20000; i++) {
        int64_t x = draw_log_uniform(), y = draw_bimodal();
        hl_hist_record(a, x);
        hl_hist_record(b, y);
        hl_hist_record(u, x);
        hl_hist_record(u, y);
    }
    hl_hist_record(b, HL_HIST_MAX_VALUE + 10); /* overflow travels too */
    hl_hist_record(u, HL_HIST_MAX_VALUE + 10);
    hl_hist_merge(m, a);
    hl_hist_merge(m, b);
    for (size_t i = 0; i < hl_hist_bucket_count(); i++)
        assert_int_equal(hl_hist_bucket_get(m, i), hl_hist_bucket_get(u, i));
    assert_int_equal(hl_hist_count(m), hl_hist_count(u));
    assert_int_equal(hl_hist_sum(m), hl_hist_sum(u));
    assert_int_equal(hl_hist_min(m), hl_hist_min(u));
    assert_int_equal(hl_hist_max(m), hl_hist_max(u));
    assert_int_equal(hl_hist_overflow(m), 1);
    const double qs[] = {0, 25, 50, 90, 99, 99.9, 100};
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++)
        assert_int_equal(hl_hist_percentile(m, qs[k]), hl_hist_percentile(u, qs[k]));
    /* Merging an empty histogram changes nothing, min included. */
    hl_hist_t *e = hl_hist_new();
    hl_hist_merge(m, e);
    assert_int_equal(hl_hist_count(m), hl_hist_count(u));
    assert_int_equal(hl_hist_min(m), hl_hist_min(u));
    hl_hist_merge(e, m);
    assert_int_equal(hl_hist_max(e), hl_hist_max(u));
    hl_hist_free(a);
    hl_hist_free(b);
    hl_hist_free(u);
    hl_hist_free(m);
    hl_hist_free(e);
}

#define REC_THREADS 4
#define REC_PER_THREAD 200000

static void *record_worker(void *arg)
{
    hl_hist_t *h = arg;
    for (int i = 0; i < REC_PER_THREAD; i++) hl_hist_record(h, i % 5000 + 1);
    return NULL;
}

static void test_concurrent_recording(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new(), *snap = hl_hist_new();
    pthread_t t[REC_THREADS];
    for (int i = 0; i < REC_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, record_worker, h), 0);
    /* Readers run meanwhile: a merged snapshot is always self-consistent. */
    for (int r = 0; r < 20; r++) {
        hl_hist_reset(snap);
        hl_hist_merge(snap, h);
        uint64_t n = 0;
        for (size_t i = 0; i < hl_hist_bucket_count(); i++) n += hl_hist_bucket_get(snap, i);
        assert_int_equal(n, hl_hist_count(snap));
        (void)hl_hist_percentile(h, 99);
    }
    for (int i = 0; i < REC_THREADS; i++) pthread_join(t[i], NULL);
    uint64_t per_thread_sum = 0, n = 0;
    for (int i = 0; i < REC_PER_THREAD; i++) per_thread_sum += (uint64_t)(i % 5000 + 1);
    for (size_t i = 0; i < hl_hist_bucket_count(); i++) n += hl_hist_bucket_get(h, i);
    assert_int_equal(n, (uint64_t)REC_THREADS * REC_PER_THREAD);
    assert_int_equal(hl_hist_count(h), (uint64_t)REC_THREADS * REC_PER_THREAD);
    assert_int_equal(hl_hist_sum(h), REC_THREADS * per_thread_sum);
    assert_int_equal(hl_hist_min(h), 1);
    assert_int_equal(hl_hist_max(h), 5000);
    assert_int_equal(hl_hist_bucket_get(h, hl_hist_bucket_index(7)),
                     (uint64_t)REC_THREADS * (REC_PER_THREAD / 5000));
    hl_hist_free(h);
    hl_hist_free(snap);
}

static void expect_same(const hl_hist_t *a, const hl_hist_t *b)
{
    for (size_t i = 0; i < hl_hist_bucket_count(); i++)
        assert_int_equal(hl_hist_bucket_get(a, i), hl_hist_bucket_get(b, i));
    assert_int_equal(hl_hist_count(a), hl_hist_count(b));
    assert_int_equal(hl_hist_sum(a), hl_hist_sum(b));
    assert_int_equal(hl_hist_min(a), hl_hist_min(b));
    assert_int_equal(hl_hist_max(a), hl_hist_max(b));
    assert_int_equal(hl_hist_overflow(a), hl_hist_overflow(b));
}

static void test_json_round_trip(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new(), *back = hl_hist_new();
    rng_state = 7;
    for (int i = 0; i < 5000; i++) hl_hist_record(h, draw_exponential());
    hl_hist_record(h, 0);
    hl_hist_record(h, HL_HIST_MAX_VALUE * 2);
    static char buf[65536];
    int n = hl_hist_to_json(h, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(buf));
    /* The document is valid JSON with the summary fields. */
    json_t *j = json_loadb(buf, (size_t)n, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "count")), 5002);
    assert_int_equal(json_integer_value(json_object_get(j, "p99")), hl_hist_percentile(h, 99));
    assert_int_equal(json_integer_value(json_object_get(j, "p999")), hl_hist_percentile(h, 99.9));
    assert_int_equal(json_integer_value(json_object_get(j, "max")), HL_HIST_MAX_VALUE);
    assert_true(fabs(json_real_value(json_object_get(j, "mean")) - hl_hist_mean(h)) < 0.001);
    assert_int_equal(json_array_size(json_object_get(j, "buckets")),
                     hl_hist_foreach(h, NULL, NULL));
    json_decref(j);
    assert_int_equal(hl_hist_from_json(back, buf, (size_t)n), 0);
    expect_same(h, back);
    /* Without sum/overflow the sum is estimated from bucket midpoints. */
    hl_hist_t *small = hl_hist_new(), *est = hl_hist_new();
    const char *doc = "{\"count\":3,\"min\":5,\"max\":300,\"buckets\":[[5,5,2],[300,301,1]]}";
    assert_int_equal(hl_hist_from_json(small, doc, strlen(doc)), 0);
    assert_int_equal(hl_hist_count(small), 3);
    assert_int_equal(hl_hist_sum(small), 5 + 5 + 300);
    assert_int_equal(hl_hist_percentile(small, 100), 300);
    hl_hist_record(est, 5);
    hl_hist_record(est, 5);
    hl_hist_record(est, 300);
    n = hl_hist_to_json(est, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"buckets\":[[5,5,2],[300,301,1]]"));
    hl_hist_free(small);
    hl_hist_free(est);
    /* A cap too small is refused, never cut. */
    assert_int_equal(hl_hist_to_json(h, buf, 100), HL_ETOOBIG);
    assert_int_equal(hl_hist_to_json(h, buf, (size_t)hl_hist_to_json(h, buf, sizeof(buf))),
                     HL_ETOOBIG);
    hl_hist_free(h);
    hl_hist_free(back);
}

static void test_json_bad_input(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "not json",
        "[]",
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5,1]]",  /* truncated */
        "{\"min\":5,\"max\":5,\"buckets\":[[5,5,1]]}",             /* no count */
        "{\"count\":1,\"max\":5,\"buckets\":[[5,5,1]]}",           /* no min */
        "{\"count\":1,\"min\":5,\"max\":5}",                       /* no buckets */
        "{\"count\":2,\"min\":5,\"max\":5,\"buckets\":[[5,5,1]]}", /* counts do not add up */
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5,2]]}",
        "{\"count\":1,\"min\":300,\"max\":300,\"buckets\":[[301,301,1]]}", /* not a bucket start */
        "{\"count\":1,\"min\":300,\"max\":300,\"buckets\":[[300,305,1]]}", /* wrong upper bound */
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5,-1]]}",
        "{\"count\":0,\"min\":5,\"max\":5,\"buckets\":[[5,5,0]]}",
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5,\"1\"]]}",
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5,1.5]]}",
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5]]}",
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5,1,0]]}",
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[5]}",
        "{\"count\":2,\"min\":5,\"max\":6,\"buckets\":[[6,6,1],[5,5,1]]}", /* descending */
        "{\"count\":2,\"min\":5,\"max\":5,\"buckets\":[[5,5,1],[5,5,1]]}", /* repeated */
        "{\"count\":1,\"min\":4,\"max\":5,\"buckets\":[[5,5,1]]}",         /* min outside */
        "{\"count\":1,\"min\":5,\"max\":6,\"buckets\":[[5,5,1]]}",         /* max outside */
        "{\"count\":1,\"min\":6,\"max\":5,\"buckets\":[[5,5,1]]}",
        "{\"count\":-1,\"min\":5,\"max\":5,\"buckets\":[[5,5,1]]}",
        "{\"count\":1,\"min\":-5,\"max\":5,\"buckets\":[[5,5,1]]}",
        "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[-5,5,1]]}",
        "{\"count\":1,\"min\":5,\"max\":5,\"overflow\":2,\"buckets\":[[5,5,1]]}",
        "{\"count\":1,\"min\":5,\"max\":5,\"sum\":\"5\",\"buckets\":[[5,5,1]]}",
        "{\"count\":1,\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5,1]]}", /* duplicate key */
        "{\"count\":1,\"min\":99999999999,\"max\":99999999999,\"buckets\":[[99999999999,"
        "99999999999,1]]}",
        "{\"count\":1,\"min\":0,\"max\":0,\"buckets\":[]}",
        "{\"count\":9223372036854775807,\"min\":5,\"max\":6,\"buckets\":[[5,5,9223372036854775807],"
        "[6,6,9223372036854775807]]}",
    };
    hl_hist_t *h = hl_hist_new();
    hl_hist_record(h, 77);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (hl_hist_from_json(h, bad[i], strlen(bad[i])) != HL_EPARSE)
            fail_msg("accepted bad input #%zu: %s", i, bad[i]);
        /* A refused document leaves the histogram untouched. */
        assert_int_equal(hl_hist_count(h), 1);
        assert_int_equal(hl_hist_max(h), 77);
    }
    /* The declared length bounds the parse: a valid prefix followed by junk is fine, a cut is not.
     */
    const char *good = "{\"count\":1,\"min\":5,\"max\":5,\"buckets\":[[5,5,1]]}garbage";
    assert_int_equal(hl_hist_from_json(h, good, strlen(good) - 7), 0);
    assert_int_equal(hl_hist_from_json(h, good, 20), HL_EPARSE);
    assert_int_equal(hl_hist_from_json(h, NULL, 0), HL_EPARSE);
    /* Oversized input is refused before parsing. */
    size_t big = (2u << 20);
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    memcpy(huge, "{\"count\":0,\"min\":0,\"max\":0,\"buckets\":[]}", 41);
    assert_int_equal(hl_hist_from_json(h, huge, big), HL_EPARSE);
    free(huge);
    assert_int_equal(hl_hist_count(h), 2);
    hl_hist_free(h);
}

static void count_bucket(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    (void)lo;
    (void)hi;
    *(uint64_t *)arg += count;
}

static void test_empty(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new();
    uint64_t seen = 0;
    assert_int_equal(hl_hist_count(h), 0);
    assert_int_equal(hl_hist_min(h), 0);
    assert_int_equal(hl_hist_max(h), 0);
    assert_int_equal(hl_hist_sum(h), 0);
    assert_true(hl_hist_mean(h) == 0.0);
    assert_int_equal(hl_hist_percentile(h, 50), 0);
    assert_int_equal(hl_hist_percentile(h, 100), 0);
    assert_int_equal(hl_hist_foreach(h, count_bucket, &seen), 0);
    char buf[512];
    int n = hl_hist_to_json(h, buf, sizeof(buf));
    assert_true(n > 0);
    assert_non_null(strstr(buf, "\"count\":0"));
    assert_non_null(strstr(buf, "\"buckets\":[]"));
    hl_hist_t *back = hl_hist_new();
    assert_int_equal(hl_hist_from_json(back, buf, (size_t)n), 0);
    assert_int_equal(hl_hist_count(back), 0);
    assert_int_equal(hl_hist_min(back), 0);
    hl_hist_free(back);
    hl_hist_free(h);
    hl_hist_free(NULL);
}

static void test_edge_values(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new();
    hl_hist_record(h, 0);
    assert_int_equal(hl_hist_count(h), 1);
    assert_int_equal(hl_hist_min(h), 0);
    assert_int_equal(hl_hist_max(h), 0);
    assert_int_equal(hl_hist_percentile(h, 50), 0);
    assert_int_equal(hl_hist_bucket_get(h, 0), 1);
    hl_hist_record(h, -123); /* counted as 0 */
    assert_int_equal(hl_hist_bucket_get(h, 0), 2);
    assert_int_equal(hl_hist_min(h), 0);
    assert_int_equal(hl_hist_sum(h), 0);
    hl_hist_record(h, INT64_MIN);
    assert_int_equal(hl_hist_bucket_get(h, 0), 3);
    assert_int_equal(hl_hist_overflow(h), 0);
    hl_hist_record(h, HL_HIST_MAX_VALUE); /* at the limit: not an overflow */
    assert_int_equal(hl_hist_overflow(h), 0);
    hl_hist_record(h, HL_HIST_MAX_VALUE + 1);
    hl_hist_record(h, INT64_MAX);
    assert_int_equal(hl_hist_overflow(h), 2);
    assert_int_equal(hl_hist_max(h), HL_HIST_MAX_VALUE);
    assert_int_equal(hl_hist_sum(h), 3 * (uint64_t)HL_HIST_MAX_VALUE);
    assert_int_equal(hl_hist_percentile(h, 100), HL_HIST_MAX_VALUE);
    assert_int_equal(hl_hist_bucket_get(h, hl_hist_bucket_count() - 1), 3);
    /* record_n counts n at once; n = 0 records nothing. */
    hl_hist_record_n(h, 1000, 10);
    hl_hist_record_n(h, 5, 0);
    assert_int_equal(hl_hist_count(h), 16);
    assert_int_equal(hl_hist_bucket_get(h, hl_hist_bucket_index(1000)), 10);
    assert_int_equal(hl_hist_min(h), 0);
    hl_hist_reset(h);
    assert_int_equal(hl_hist_count(h), 0);
    assert_int_equal(hl_hist_overflow(h), 0);
    assert_int_equal(hl_hist_max(h), 0);
    hl_hist_record(h, 9);
    assert_int_equal(hl_hist_min(h), 9);
    assert_int_equal(hl_hist_max(h), 9);
    hl_hist_free(h);
}

/* Reports the cost of one record; informational only, nothing is asserted about speed. */
static void test_record_cost(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new();
    const int n = 5000000;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) hl_hist_record(h, (int64_t)((unsigned)i * 2654435761u % 60000000u));
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n;
    print_message("hl_hist_record: %.1f ns/op over %d values (single thread)\n", ns, n);
    assert_int_equal(hl_hist_count(h), (uint64_t)n);
    hl_hist_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_layout),        cmocka_unit_test(test_accuracy_against_exact),
        cmocka_unit_test(test_percentile_semantics), cmocka_unit_test(test_merge_equals_union),
        cmocka_unit_test(test_concurrent_recording), cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_bad_input),       cmocka_unit_test(test_empty),
        cmocka_unit_test(test_edge_values),          cmocka_unit_test(test_record_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
