/* Latency distributions for people: log-spaced display bins and their SVG chart. */
#include "chart.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* The grid edge k: the smallest whole µs at or above 10^(k / AUD_CHART_PER_DECADE). */
static int64_t edge(int k)
{
    return (int64_t)ceil(pow(10.0, (double)k / AUD_CHART_PER_DECADE) - 1e-9);
}

/* The grid index whose bin holds v: the largest k with edge(k) <= v (0 for v < 1). */
static int grid_of(int64_t v)
{
    if (v < 1) return 0;
    int k = (int)floor(log10((double)v) * AUD_CHART_PER_DECADE);
    while (k > 0 && edge(k) > v) k--;
    while (edge(k + 1) <= v) k++;
    return k;
}

static void add_bucket(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    aud_bins_t *b = arg;
    int i = grid_of(lo) - b->k0;
    if (i < 0) i = 0;
    if (i >= b->n) i = b->n - 1;
    aud_bin_t *x = &b->bin[i];
    if (lo < x->lo) x->lo = lo;
    if (hi > x->hi) x->hi = hi;
    x->count += count;
    b->total += count;
}

void aud_bins_from_hist(const hl_hist_t *h, aud_bins_t *out)
{
    memset(out, 0, sizeof *out);
    if (hl_hist_count(h) == 0) return;
    int k0 = grid_of(hl_hist_min(h)), k1 = grid_of(hl_hist_max(h)) + 1;
    while (k1 - k0 < AUD_CHART_MIN_BINS) {
        if (k0 > 0) k0--;
        if (k1 - k0 < AUD_CHART_MIN_BINS) k1++;
    }
    if (k1 - k0 > AUD_CHART_MAX_BINS) k0 = k1 - AUD_CHART_MAX_BINS; /* not reached: see .h */
    out->k0 = k0;
    out->n = k1 - k0;
    for (int i = 0; i < out->n; i++) {
        out->bin[i].lo = edge(k0 + i);
        out->bin[i].hi = edge(k0 + i + 1) - 1;
    }
    hl_hist_foreach(h, add_bucket, out);
    /* A fine bucket straddling a grid edge went whole to the lower bin: the next bin starts
     * after it. Below ~10 µs whole-µs edges repeat; such a bin is one value wide. */
    for (int i = 1; i < out->n; i++) {
        if (out->bin[i].lo <= out->bin[i - 1].hi) out->bin[i].lo = out->bin[i - 1].hi + 1;
        if (out->bin[i].hi < out->bin[i].lo) out->bin[i].hi = out->bin[i].lo;
    }
    for (int i = 0; i < out->n; i++)
        if (out->bin[i].count > out->most) out->most = out->bin[i].count;
}

void aud_fmt_ms(int64_t us, char *buf, size_t cap)
{
    double ms = (double)us / 1000.0;
    if (us < 1000)
        snprintf(buf, cap, "%.3f ms", ms);
    else if (us < 10000)
        snprintf(buf, cap, "%.2f ms", ms);
    else if (us < 100000)
        snprintf(buf, cap, "%.1f ms", ms);
    else if (us < 999500)
        snprintf(buf, cap, "%.0f ms", ms);
    else if (us < 9995000)
        snprintf(buf, cap, "%.2f s", ms / 1000.0);
    else if (us < 99950000)
        snprintf(buf, cap, "%.1f s", ms / 1000.0);
    else
        snprintf(buf, cap, "%.0f s", ms / 1000.0);
}

/* Geometry of the drawing (SVG user units). */
enum { W = 600, H = 250, X0 = 56, X1 = 588, TOP = 76, BASE = 200 };

/* Where value v lies on the log axis of b. */
static double x_of(const aud_bins_t *b, int64_t v)
{
    double g = v < 1 ? 0.0 : log10((double)v) * AUD_CHART_PER_DECADE;
    double x = X0 + (g - b->k0) * (X1 - X0) / b->n;
    return x < X0 ? X0 : x > X1 ? X1 : x;
}

static void axis(aud_html_t *o, const aud_bins_t *b)
{
    char t[32];
    int64_t lo = edge(b->k0), hi = edge(b->k0 + b->n);
    aud_put(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#555\"/>", X0, BASE, X1,
            BASE);
    /* Ticks at 1, 2 and 5 times each power of ten; labels at the powers of ten only. */
    for (int64_t d = 1; d <= hi && d <= INT64_C(1) << 40; d *= 10) {
        static const int mul[3] = {1, 2, 5};
        for (int m = 0; m < 3; m++) {
            int64_t v = d * mul[m];
            if (v < lo || v > hi) continue;
            double x = x_of(b, v);
            aud_put(o, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#555\"/>", x,
                    BASE, x, BASE + (m == 0 ? 6 : 3));
            if (m == 0) {
                aud_fmt_ms(v, t, sizeof t);
                aud_put(o,
                        "<text class=\"tick\" x=\"%.1f\" y=\"%d\" font-size=\"11\""
                        " text-anchor=\"middle\">%s</text>",
                        x, BASE + 18, t);
            }
        }
    }
    aud_put(o,
            "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">"
            "latency (log scale)</text>",
            (X0 + X1) / 2, BASE + 36);
    aud_put(o,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#bbb\"/>"
            "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%" PRIu64 "</text>"
            "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">0</text>",
            X0, TOP, X0, BASE, X0 - 4, TOP + 4, b->most, X0 - 4, BASE);
}

static void bars(aud_html_t *o, const aud_bins_t *b)
{
    double w = (double)(X1 - X0) / b->n;
    char lo[32], hi[32];
    for (int i = 0; i < b->n; i++) {
        const aud_bin_t *x = &b->bin[i];
        double bh = b->most ? (double)(BASE - TOP) * (double)x->count / (double)b->most : 0;
        if (x->count > 0 && bh < 3) bh = 3; /* a lone sample stays visible */
        aud_fmt_ms(x->lo, lo, sizeof lo);
        aud_fmt_ms(x->hi, hi, sizeof hi);
        aud_put(o,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a7ebb\""
                " data-lo-us=\"%" PRId64 "\" data-hi-us=\"%" PRId64 "\" data-count=\"%" PRIu64
                "\"><title>%s – %s: %" PRIu64 " (%.1f %%)</title></rect>",
                X0 + i * w + 0.5, BASE - bh, w > 2 ? w - 1 : w, bh, x->lo, x->hi, x->count, lo, hi,
                x->count, b->total ? 100.0 * (double)x->count / (double)b->total : 0.0);
    }
}

static const struct {
    const char *name;
    double q;
    const char *colour;
} marks[] = {{"p50", 50, "#1b7837"},
             {"p95", 95, "#d95f02"},
             {"p99", 99, "#c51b7d"},
             {"p99.9", 99.9, "#542788"}};

/* A dashed line at each percentile, its label on a row of its own above the bars. */
static void markers(aud_html_t *o, const aud_bins_t *b, const hl_hist_t *h)
{
    char t[32];
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        int64_t v = hl_hist_percentile(h, marks[i].q);
        double x = x_of(b, v);
        int y = 32 + 12 * (int)i;
        aud_fmt_ms(v, t, sizeof t);
        aud_put(o,
                "<g class=\"pct\" data-p=\"%s\" data-us=\"%" PRId64 "\"><line x1=\"%.1f\""
                " y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-dasharray=\"3,2\"/>"
                "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"%s\" text-anchor=\"%s\">"
                "%s %s</text></g>",
                marks[i].name, v, x, y + 2, x, BASE, marks[i].colour, x > X1 - 110 ? x - 3 : x + 3,
                y, marks[i].colour, x > X1 - 110 ? "end" : "start", marks[i].name, t);
    }
}

void aud_chart_figure(aud_html_t *o, const char *id, const char *title, const hl_hist_t *h)
{
    static aud_bins_t zero;
    aud_bins_t *b = hl_hist_count(h) ? NULL : &zero, bins;
    if (!b) {
        aud_bins_from_hist(h, &bins);
        b = &bins;
    }
    aud_put(o,
            "<figure id=\"hist-%s\" data-samples=\"%" PRIu64 "\"><svg xmlns=\"http://www.w3.org"
            "/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\""
            " aria-label=\"",
            id, hl_hist_count(h), W, H, W, H);
    aud_esc(o, title);
    aud_put(o, " latency histogram\"><text x=\"8\" y=\"18\" font-size=\"14\""
               " font-weight=\"bold\">");
    aud_esc(o, title);
    aud_put(o,
            "</text><text x=\"%d\" y=\"18\" font-size=\"12\" text-anchor=\"end\">"
            "%" PRIu64 " samples</text>",
            W - 10, hl_hist_count(h));
    if (b->n == 0) {
        aud_put(o,
                "<text x=\"%d\" y=\"%d\" font-size=\"13\" fill=\"#777\" text-anchor=\"middle\">"
                "no samples in the last hour</text></svg><figcaption>no samples"
                "</figcaption></figure>",
                W / 2, (TOP + BASE) / 2);
        return;
    }
    axis(o, b);
    bars(o, b);
    markers(o, b, h);
    aud_put(o, "</svg><figcaption>");
    char t[32];
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        aud_fmt_ms(hl_hist_percentile(h, marks[i].q), t, sizeof t);
        aud_put(o, "<span data-p=\"%s\">%s <b>%s</b></span> · ", marks[i].name, marks[i].name, t);
    }
    aud_fmt_ms(hl_hist_max(h), t, sizeof t);
    aud_put(o, "<span data-p=\"max\">max <b>%s</b></span></figcaption></figure>", t);
}
