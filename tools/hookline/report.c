/* Run reports. The chart bins the histogram's buckets onto a logarithmic axis because
 * latencies span three or four decades and the tail is what matters. */
#include "report.h"

#include <math.h>
#include <string.h>

static const char *verdict_name(cli_gate_verdict_t v)
{
    return v == CLI_GATE_PASS ? "PASS" : v == CLI_GATE_FAIL ? "FAIL" : "SKIP";
}

void cli_report_table(FILE *out, const cli_results_t *r, const cli_gate_t *g)
{
    fprintf(out,
            "\n  sent %llu (%llu duplicates)  accepted %llu  rejected %llu  errors %llu  "
            "retries %llu\n",
            (unsigned long long)r->sent, (unsigned long long)r->duplicates_sent,
            (unsigned long long)r->accepted, (unsigned long long)r->rejected,
            (unsigned long long)r->errors, (unsigned long long)r->retries);
    if (r->concurrency > 0 && r->rate_rps > 0)
        fprintf(out,
                "  load        open-loop at %.0f req/s on %u connections; latency from each "
                "request's scheduled send time\n",
                r->rate_rps, r->concurrency);
    else if (r->concurrency > 0)
        fprintf(out,
                "  load        closed-loop on %u connections, each sending as soon as its "
                "answer came\n",
                r->concurrency);
    fprintf(out,
            "  latency ms  p50 %.2f  p95 %.2f  p99 %.2f  p99.9 %.2f  max %.2f   "
            "throughput %.0f req/s over %.1f s\n\n",
            r->p50_ms, r->p95_ms, r->p99_ms, r->p999_ms, r->max_ms, r->throughput_rps,
            r->duration_s);
    fprintf(out, "  %-24s %-16s %-16s %s\n", "criterion", "measured", "limit", "result");
    fprintf(out, "  %-24s %-16s %-16s %s\n", "------------------------", "----------------",
            "----------------", "------");
    for (size_t i = 0; i < g->nrows; i++) {
        const cli_gate_row_t *row = &g->rows[i];
        fprintf(out, "  %-24s %-16s %-16s %s%s%s%s\n", row->label, row->value, row->limit,
                verdict_name(row->verdict), row->note ? "  (" : "", row->note ? row->note : "",
                row->note ? ")" : "");
    }
    fprintf(out, "\n  gate: %s\n", g->pass ? "PASS" : "FAIL");
}

typedef struct {
    FILE *out;
    uint64_t total, cum;
} csv_ctx_t;

static void csv_row(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    csv_ctx_t *c = arg;
    c->cum += count;
    fprintf(c->out, "%lld,%lld,%llu,%.6f\n", (long long)lo, (long long)hi,
            (unsigned long long)count, c->total ? (double)c->cum / (double)c->total : 0.0);
}

void cli_report_csv(FILE *out, const hl_hist_t *h)
{
    csv_ctx_t c = {out, hl_hist_count(h), 0};
    fprintf(out, "lo_us,hi_us,count,cumulative\n");
    hl_hist_foreach(h, csv_row, &c);
}

#define SVG_W 900
#define SVG_H 420
#define PAD_L 70
#define PAD_R 20
#define PAD_T 40
#define PAD_B 50
#define BINS 80

typedef struct {
    double lmin, lmax; /* log10 of the axis range in µs */
    uint64_t bins[BINS];
} bin_ctx_t;

static void bin_row(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    bin_ctx_t *b = arg;
    double mid = log10((double)(lo + hi) / 2.0 + 1.0);
    int i = (int)((mid - b->lmin) / (b->lmax - b->lmin) * BINS);
    if (i < 0) i = 0;
    if (i >= BINS) i = BINS - 1;
    b->bins[i] += count;
}

static double x_of(const bin_ctx_t *b, double us)
{
    double l = log10(us + 1.0);
    return PAD_L + (l - b->lmin) / (b->lmax - b->lmin) * (SVG_W - PAD_L - PAD_R);
}

static void marker(FILE *out, const bin_ctx_t *b, const char *name, int64_t us, const char *color,
                   int row)
{
    double x = x_of(b, (double)us);
    fprintf(out,
            "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-dasharray=\"4 "
            "3\"/>\n"
            "<text x=\"%.1f\" y=\"%d\" fill=\"%s\" font-size=\"11\">%s %.2f ms</text>\n",
            x, PAD_T, x, SVG_H - PAD_B, color, x + 3, PAD_T + 12 + row * 13, color, name,
            (double)us / 1000.0);
}

void cli_report_svg(FILE *out, const hl_hist_t *h, const char *title)
{
    bin_ctx_t b;
    memset(&b, 0, sizeof(b));
    int64_t mn = hl_hist_min(h), mx = hl_hist_max(h);
    b.lmin = floor(log10((double)(mn > 0 ? mn : 1) + 1.0));
    b.lmax = ceil(log10((double)(mx > 0 ? mx : 1) + 1.0));
    if (b.lmax <= b.lmin) b.lmax = b.lmin + 1;
    hl_hist_foreach(h, bin_row, &b);
    uint64_t top = 1;
    for (int i = 0; i < BINS; i++)
        if (b.bins[i] > top) top = b.bins[i];
    fprintf(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
        "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
        SVG_W, SVG_H);
    fprintf(out, "<text x=\"%d\" y=\"22\" font-size=\"15\">%s (%llu requests)</text>\n", PAD_L,
            title ? title : "latency", (unsigned long long)hl_hist_count(h));
    double pw = (double)(SVG_W - PAD_L - PAD_R) / BINS, ph = SVG_H - PAD_T - PAD_B;
    for (int i = 0; i < BINS; i++) {
        if (!b.bins[i]) continue;
        /* Square-root scale keeps the few slow requests of the tail visible. */
        double hgt = sqrt((double)b.bins[i] / (double)top) * ph;
        fprintf(out,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4a7ab5\">"
                "<title>%llu</title></rect>\n",
                PAD_L + i * pw, SVG_H - PAD_B - hgt, pw * 0.9, hgt, (unsigned long long)b.bins[i]);
    }
    fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", PAD_L,
            SVG_H - PAD_B, SVG_W - PAD_R, SVG_H - PAD_B);
    for (double d = b.lmin; d <= b.lmax + 1e-9; d += 1) {
        double us = pow(10, d);
        double x = x_of(&b, us - 1.0);
        const char *unit = us >= 1e6 ? "s" : us >= 1e3 ? "ms" : "µs";
        double v = us >= 1e6 ? us / 1e6 : us >= 1e3 ? us / 1e3 : us;
        fprintf(out,
                "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%g %s</text>\n",
                x, SVG_H - PAD_B + 16, v, unit);
    }
    fprintf(out,
            "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">latency "
            "(log scale); bar height = sqrt(count)</text>\n",
            (SVG_W + PAD_L) / 2, SVG_H - 12);
    if (hl_hist_count(h)) {
        marker(out, &b, "p50", hl_hist_percentile(h, 50), "#2a8a2a", 0);
        marker(out, &b, "p95", hl_hist_percentile(h, 95), "#c08000", 1);
        marker(out, &b, "p99", hl_hist_percentile(h, 99), "#c03030", 2);
        marker(out, &b, "max", mx, "#602080", 3);
    }
    fprintf(out, "</svg>\n");
}
