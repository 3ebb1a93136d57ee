/* Log-spaced display bins of a latency histogram, their SVG and the millisecond labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chart.h"

/* A latency-like sample: most near 300 µs, a long thin tail up to ~5 s, a few zeros. */
static int64_t sample(unsigned i)
{
    if (i % 500 == 0) return 0;
    if (i % 97 == 0) return 5000000 - (int64_t)(i % 13) * 1000;
    if (i % 11 == 0) return 2000 + (int64_t)(i % 3000) * 37;
    return 180 + (int64_t)(i % 400);
}

enum { N = 20000 };

static void test_bins_cover_and_count_exactly(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new();
    int64_t *v = malloc(N * sizeof *v);
    for (unsigned i = 0; i < N; i++) hl_hist_record(h, v[i] = sample(i));
    aud_bins_t b;
    aud_bins_from_hist(h, &b);
    assert_true(b.n >= AUD_CHART_MIN_BINS && b.n <= AUD_CHART_MAX_BINS);
    assert_int_equal(b.total, N);
    assert_true(b.bin[0].lo <= 0);
    assert_true(b.bin[b.n - 1].hi >= 5000000);
    uint64_t sum = 0, most = 0;
    for (int i = 0; i < b.n; i++) {
        const aud_bin_t *x = &b.bin[i];
        if (i > 0) assert_int_equal(x->lo, b.bin[i - 1].hi + 1); /* they touch */
        assert_true(x->lo <= x->hi);
        /* Fine buckets go whole into one bin, so a bin holds exactly the samples in its range. */
        uint64_t want = 0;
        for (unsigned k = 0; k < N; k++) want += v[k] >= x->lo && v[k] <= x->hi;
        assert_int_equal(x->count, want);
        /* Log-spaced: above the whole-µs steps each bin is ~10^(1/8) (1.334) times the last. */
        if (x->lo >= 1000 && i + 1 < b.n) {
            double r = (double)(x->hi + 1) / (double)x->lo;
            assert_true(r > 1.30 && r < 1.37);
        }
        sum += x->count;
        if (x->count > most) most = x->count;
    }
    assert_int_equal(sum, N);
    assert_int_equal(b.most, most);
    /* The 5 s tail sits in its own bin at the right, not folded into its neighbours. */
    assert_true(b.bin[b.n - 1].count > 0 && b.bin[b.n - 1].count < N / 50);
    free(v);
    hl_hist_free(h);
}

static void test_narrow_and_empty(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new();
    aud_bins_t b;
    aud_bins_from_hist(h, &b);
    assert_int_equal(b.n, 0);
    hl_hist_record_n(h, 1234, 10);
    aud_bins_from_hist(h, &b);
    assert_int_equal(b.n, AUD_CHART_MIN_BINS); /* two decades around one value */
    int hits = 0;
    for (int i = 0; i < b.n; i++)
        if (b.bin[i].count) {
            hits++;
            assert_true(b.bin[i].lo <= 1234 && 1234 <= b.bin[i].hi);
        }
    assert_int_equal(hits, 1);
    hl_hist_record(h, HL_HIST_MAX_VALUE * 2); /* clamped at the ceiling: still within bins */
    aud_bins_from_hist(h, &b);
    assert_true(b.n <= AUD_CHART_MAX_BINS && b.bin[b.n - 1].hi >= HL_HIST_MAX_VALUE);
    hl_hist_free(h);
}

static void test_fmt_ms(void **state)
{
    (void)state;
    static const struct {
        int64_t us;
        const char *want;
    } cases[] = {{0, "0.000 ms"},      {250, "0.250 ms"},   {999, "0.999 ms"},  {1234, "1.23 ms"},
                 {12345, "12.3 ms"},   {437000, "437 ms"},  {999400, "999 ms"}, {4997119, "5.00 s"},
                 {12345678, "12.3 s"}, {123456789, "123 s"}};
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aud_fmt_ms(cases[i].us, buf, sizeof buf);
        assert_string_equal(buf, cases[i].want);
    }
    aud_fmt_ms(123456789, buf, 4);
    assert_string_equal(buf, "123");
}

static size_t count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void test_figure(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new();
    for (unsigned i = 0; i < N; i++) hl_hist_record(h, sample(i));
    aud_bins_t b;
    aud_bins_from_hist(h, &b);
    aud_html_t o = {malloc(256 * 1024), 0, 256 * 1024};
    o.buf[0] = '\0';
    aud_chart_figure(&o, "ack-accepted", "ack <script>\"x\"&'", h);
    assert_true(o.len + 1 < o.cap);
    assert_null(strstr(o.buf, "<script"));
    assert_non_null(strstr(o.buf, "ack &lt;script&gt;&quot;x&quot;&amp;&#39;"));
    assert_non_null(strstr(o.buf, "id=\"hist-ack-accepted\" data-samples=\"20000\""));
    assert_int_equal(count_of(o.buf, "<rect "), (size_t)b.n);
    assert_int_equal(count_of(o.buf, "class=\"pct\""), 4);
    char want[64];
    snprintf(want, sizeof want, "data-p=\"p99\" data-us=\"%lld\"",
             (long long)hl_hist_percentile(h, 99));
    assert_non_null(strstr(o.buf, want));
    assert_non_null(strstr(o.buf, "max <b>5.00 s</b>"));
    /* A capped buffer is cut, never overrun. */
    aud_html_t small = {malloc(300), 0, 300};
    small.buf[0] = '\0';
    aud_chart_figure(&small, "e2e", "e2e", h);
    assert_true(small.len < 300 && strlen(small.buf) == small.len);
    /* No samples: a chart that says so. */
    hl_hist_t *none = hl_hist_new();
    o.len = 0;
    aud_chart_figure(&o, "queue", "queue", none);
    assert_non_null(strstr(o.buf, "no samples"));
    assert_int_equal(count_of(o.buf, "<rect "), 0);
    free(small.buf);
    free(o.buf);
    hl_hist_free(none);
    hl_hist_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bins_cover_and_count_exactly),
        cmocka_unit_test(test_narrow_and_empty),
        cmocka_unit_test(test_fmt_ms),
        cmocka_unit_test(test_figure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
