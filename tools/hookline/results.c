/* Results, the error-budget ledger and the evidence folder. */
#include "results.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence.h"
#include "ledger.h"
#include "report.h"

static double ms(int64_t us)
{
    return (double)us / 1000.0;
}

void cli_results_fill(cli_results_t *r, const cli_replay_results_t *rep, const cli_workload_t *w,
                      const cli_verify_report_t *v, int auditor_skipped)
{
    memset(r, 0, sizeof(*r));
    const hl_hist_t *h = rep->latency_us;
    r->sent = rep->sent;
    r->accepted = rep->accepted;
    r->rejected = rep->rejected;
    r->errors = rep->errors;
    r->retries = rep->retries;
    r->skipped = rep->skipped;
    r->duplicates_sent = 0;
    for (size_t m = 0; m < w->nmsgs; m++)
        for (size_t i = 0; i < w->msgs[m].nreqs; i++)
            if (w->msgs[m].reqs[i].dup_of >= 0 && w->msgs[m].reqs[i].out.status != 0)
                r->duplicates_sent++;
    /* Requests never sent because an earlier event of their message failed count against
     * acceptance: a provider would have had to give up on them. */
    uint64_t denom = rep->sent + rep->skipped;
    r->acceptance_ratio = denom ? (double)rep->accepted / (double)denom : 0;
    r->error_rate = rep->sent ? (double)rep->errors / (double)rep->sent : 0;
    r->p50_ms = ms(hl_hist_percentile(h, 50));
    r->p95_ms = ms(hl_hist_percentile(h, 95));
    r->p99_ms = ms(hl_hist_percentile(h, 99));
    r->p999_ms = ms(hl_hist_percentile(h, 99.9));
    r->max_ms = ms(hl_hist_max(h));
    r->throughput_rps = rep->throughput_rps;
    r->duration_s = rep->duration_s;
    r->idempotency_violations = v ? v->idempotency_violations : -1;
    r->ordering_violations = v ? v->ordering_violations : -1;
    r->gaps = v ? v->gaps : -1;
    r->lineage_coverage = v && !auditor_skipped ? v->lineage_coverage : -1;
    r->chains_failed = v && !auditor_skipped ? v->chains_failed : -1;
    r->auditor_skipped = auditor_skipped;
}

static json_t *measured_int(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}
static json_t *measured_real(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

json_t *cli_results_json(const cli_results_t *r, const cli_gate_t *g, const cli_criteria_t *c,
                         json_t *extra)
{
    json_t *o = json_object();
    json_object_set_new(o, "sent", json_integer((json_int_t)r->sent));
    json_object_set_new(o, "accepted", json_integer((json_int_t)r->accepted));
    json_object_set_new(o, "rejected", json_integer((json_int_t)r->rejected));
    json_object_set_new(o, "errors", json_integer((json_int_t)r->errors));
    json_object_set_new(o, "skipped", json_integer((json_int_t)r->skipped));
    json_object_set_new(o, "duplicates_sent", json_integer((json_int_t)r->duplicates_sent));
    json_object_set_new(o, "acceptance_ratio", json_real(r->acceptance_ratio));
    json_object_set_new(o, "error_rate", json_real(r->error_rate));
    json_object_set_new(o, "retries", json_integer((json_int_t)r->retries));
    json_object_set_new(o, "p50_ms", json_real(r->p50_ms));
    json_object_set_new(o, "p95_ms", json_real(r->p95_ms));
    json_object_set_new(o, "p99_ms", json_real(r->p99_ms));
    json_object_set_new(o, "p999_ms", json_real(r->p999_ms));
    json_object_set_new(o, "max_ms", json_real(r->max_ms));
    json_object_set_new(o, "throughput_rps", json_real(r->throughput_rps));
    json_object_set_new(o, "duration_s", json_real(r->duration_s));
    json_object_set_new(o, "idempotency_violations", measured_int(r->idempotency_violations));
    json_object_set_new(o, "ordering_violations", measured_int(r->ordering_violations));
    json_object_set_new(o, "gaps", measured_int(r->gaps));
    json_object_set_new(o, "lineage_coverage", measured_real(r->lineage_coverage));
    json_object_set_new(o, "chain_failures", measured_int(r->chains_failed));
    json_object_set_new(o, "auditor_skipped", json_boolean(r->auditor_skipped));
    if (r->concurrency > 0) {
        json_object_set_new(o, "mode", json_string(r->rate_rps > 0 ? "open-loop" : "closed-loop"));
        json_object_set_new(o, "concurrency", json_integer((json_int_t)r->concurrency));
        json_object_set_new(o, "rate", json_real(r->rate_rps));
    }
    json_object_set_new(o, "gate", json_string(g->pass ? "PASS" : "FAIL"));
    char *cj = cli_criteria_json(c);
    json_object_set_new(o, "criteria", json_loads(cj, 0, NULL));
    free(cj);
    json_t *rows = json_array();
    for (size_t i = 0; i < g->nrows; i++) {
        const cli_gate_row_t *row = &g->rows[i];
        json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:s}", "criterion", row->key,
                                              "measured", row->value, "limit", row->limit, "result",
                                              row->verdict == CLI_GATE_PASS   ? "PASS"
                                              : row->verdict == CLI_GATE_FAIL ? "FAIL"
                                                                              : "SKIP"));
    }
    json_object_set_new(o, "gate_rows", rows);
    if (extra) json_object_update(o, extra);
    return o;
}

typedef struct {
    int64_t limit_us;
    uint64_t over;
} over_ctx_t;

static void count_over(int64_t lo, int64_t hi, uint64_t count, void *arg)
{
    over_ctx_t *c = arg;
    (void)hi;
    if (lo > c->limit_us) c->over += count;
}

static json_t *budget(const char *criterion, const char *what, double allowed, double spent)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:b}", "criterion", criterion, "what", what, "allowed",
                     (json_int_t)floor(allowed), "spent", (json_int_t)spent, "remaining",
                     (json_int_t)(floor(allowed) - spent), "within", spent <= floor(allowed));
}

json_t *cli_error_budget_json(const cli_results_t *r, const cli_criteria_t *c, const hl_hist_t *h,
                              json_t *auditor)
{
    json_t *rows = json_array();
    double sent = (double)r->sent, all = (double)(r->sent + r->skipped);
    if (c->acceptance_min >= 0)
        json_array_append_new(rows,
                              budget("acceptance_min", "requests not accepted",
                                     (1.0 - c->acceptance_min) * all, all - (double)r->accepted));
    if (c->error_rate_max >= 0)
        json_array_append_new(rows, budget("error_rate_max", "requests ending in an error",
                                           c->error_rate_max * sent, (double)r->errors));
    const struct {
        const char *key;
        double limit_ms, share;
    } lat[] = {{"p95_ms_max", c->p95_ms_max, 0.05},
               {"p99_ms_max", c->p99_ms_max, 0.01},
               {"p999_ms_max", c->p999_ms_max, 0.001}};
    for (size_t i = 0; h && i < sizeof(lat) / sizeof(lat[0]); i++) {
        if (lat[i].limit_ms < 0) continue;
        over_ctx_t oc = {(int64_t)(lat[i].limit_ms * 1000.0), 0};
        hl_hist_foreach(h, count_over, &oc);
        char what[96];
        snprintf(what, sizeof(what), "requests slower than %g ms", lat[i].limit_ms);
        json_array_append_new(rows, budget(lat[i].key, what, lat[i].share * sent, (double)oc.over));
    }
    return json_pack("{s:o,s:O}", "ledger", rows, "auditor", auditor ? auditor : json_null());
}

static int write_json(const char *dir, const char *name, json_t *j, char *errbuf, size_t errcap)
{
    char *s = json_dumps(j ? j : json_null(), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    int rc = s ? cli_evidence_write(dir, name, s, strlen(s)) : HL_EIO;
    free(s);
    if (rc) snprintf(errbuf, errcap, "evidence %s/%s: cannot write", dir, name);
    return rc;
}

static int write_with(const char *dir, const char *name, void (*fn)(FILE *, const void *),
                      const void *arg, char *errbuf, size_t errcap)
{
    FILE *f = cli_evidence_open(dir, name);
    if (!f) {
        snprintf(errbuf, errcap, "evidence %s/%s: cannot create", dir, name);
        return HL_EIO;
    }
    fn(f, arg);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        snprintf(errbuf, errcap, "evidence %s/%s: write failed", dir, name);
        return HL_EIO;
    }
    return 0;
}

static void csv_fn(FILE *f, const void *h)
{
    cli_report_csv(f, h);
}
static void svg_fn(FILE *f, const void *h)
{
    cli_report_svg(f, h, "hookline replay latency");
}
static void ledger_fn(FILE *f, const void *w)
{
    if (cli_ledger_write(f, w) != 0) fputs("\n!ledger incomplete\n", f);
}

int cli_evidence_write_all(const cli_evidence_t *e, char *errbuf, size_t errcap)
{
    int rc = cli_evidence_mkdir(e->dir);
    if (rc) {
        snprintf(errbuf, errcap, "evidence %s: cannot create the folder", e->dir);
        return rc;
    }
    const cli_verify_report_t *v = e->verify;
    json_t *idem =
        v ? json_pack("{s:I,s:I,s:I,s:I,s:I,s:O}", "expected_events",
                      (json_int_t)v->expected_events, "stored_events", (json_int_t)v->stored_events,
                      "missing_rows", (json_int_t)v->missing_rows, "duplicate_rows",
                      (json_int_t)v->duplicate_rows, "violations",
                      (json_int_t)v->idempotency_violations, "details", v->idempotency)
          : json_pack("{s:s}", "status", "not verified");
    json_t *ord = v ? json_pack("{s:I,s:O}", "violations", (json_int_t)v->ordering_violations,
                                "details", v->ordering)
                    : json_pack("{s:s}", "status", "not verified");
    json_t *lin =
        v ? json_pack("{s:I,s:I,s:o,s:I,s:O,s:O}", "checked", (json_int_t)v->lineage_checked,
                      "complete", (json_int_t)v->lineage_complete, "coverage",
                      v->lineage_coverage < 0 ? json_null() : json_real(v->lineage_coverage),
                      "auditor_gaps", (json_int_t)v->auditor_gaps, "missing", v->lineage_missing,
                      "sample", v->lineage_sample)
          : json_pack("{s:s}", "status", "not verified");
    rc = write_json(e->dir, "results.json", e->results, errbuf, errcap);
    if (!rc) rc = write_json(e->dir, "config.json", e->config, errbuf, errcap);
    if (!rc) rc = write_json(e->dir, "error_budget.json", e->error_budget, errbuf, errcap);
    if (!rc) rc = write_json(e->dir, "idempotency.json", idem, errbuf, errcap);
    if (!rc) rc = write_json(e->dir, "ordering.json", ord, errbuf, errcap);
    if (!rc) rc = write_json(e->dir, "lineages.json", lin, errbuf, errcap);
    if (!rc) rc = write_with(e->dir, "latency.csv", csv_fn, e->latency, errbuf, errcap);
    if (!rc) rc = write_with(e->dir, "latency.svg", svg_fn, e->latency, errbuf, errcap);
    if (!rc) rc = write_with(e->dir, "requests.ndjson", ledger_fn, e->w, errbuf, errcap);
    if (!rc && e->report_text)
        rc = cli_evidence_write(e->dir, "report.txt", e->report_text, strlen(e->report_text));
    json_decref(idem);
    json_decref(ord);
    json_decref(lin);
    if (!rc && (rc = cli_evidence_seal(e->dir)) != 0)
        snprintf(errbuf, errcap, "evidence %s: cannot write %s", e->dir, CLI_EVIDENCE_MANIFEST);
    return rc;
}
