/* Gate criteria: one declarative table maps YAML keys to fields, defaults and rules; the
 * evaluation walks the same criteria in a fixed order so the report reads the same each run. */
#include "gate.h"

#include <cyaml/cyaml.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/util.h"

void cli_criteria_defaults(cli_criteria_t *c)
{
    *c = (cli_criteria_t){.p95_ms_max = 120,
                          .p99_ms_max = 200,
                          .p999_ms_max = -1,
                          .acceptance_min = 0.999,
                          .error_rate_max = 0.001,
                          .idempotency_violations_max = 0,
                          .ordering_violations_max = 0,
                          .gaps_max = 0,
                          .lineage_coverage_min = 1.0,
                          .chain_failures_max = 0};
}

/* The YAML form: every key optional (pointer fields stay NULL when absent). */
typedef struct {
    double *p95_ms_max, *p99_ms_max, *p999_ms_max, *acceptance_min, *error_rate_max;
    int64_t *idempotency_violations_max, *ordering_violations_max, *gaps_max, *chain_failures_max;
    double *lineage_coverage_min;
} criteria_yaml_t;

static const cyaml_schema_field_t criteria_fields[] = {
    CYAML_FIELD_FLOAT_PTR("p95_ms_max", CYAML_FLAG_OPTIONAL, criteria_yaml_t, p95_ms_max),
    CYAML_FIELD_FLOAT_PTR("p99_ms_max", CYAML_FLAG_OPTIONAL, criteria_yaml_t, p99_ms_max),
    CYAML_FIELD_FLOAT_PTR("p999_ms_max", CYAML_FLAG_OPTIONAL, criteria_yaml_t, p999_ms_max),
    CYAML_FIELD_FLOAT_PTR("acceptance_min", CYAML_FLAG_OPTIONAL, criteria_yaml_t, acceptance_min),
    CYAML_FIELD_FLOAT_PTR("error_rate_max", CYAML_FLAG_OPTIONAL, criteria_yaml_t, error_rate_max),
    CYAML_FIELD_INT_PTR("idempotency_violations_max", CYAML_FLAG_OPTIONAL, criteria_yaml_t,
                        idempotency_violations_max),
    CYAML_FIELD_INT_PTR("ordering_violations_max", CYAML_FLAG_OPTIONAL, criteria_yaml_t,
                        ordering_violations_max),
    CYAML_FIELD_INT_PTR("gaps_max", CYAML_FLAG_OPTIONAL, criteria_yaml_t, gaps_max),
    CYAML_FIELD_FLOAT_PTR("lineage_coverage_min", CYAML_FLAG_OPTIONAL, criteria_yaml_t,
                          lineage_coverage_min),
    CYAML_FIELD_INT_PTR("chain_failures_max", CYAML_FLAG_OPTIONAL, criteria_yaml_t,
                        chain_failures_max),
    CYAML_FIELD_END};
static const cyaml_schema_value_t criteria_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, criteria_yaml_t, criteria_fields)};

typedef struct {
    char *buf;
    size_t cap;
} log_sink_t;

/* Collects libcyaml's error lines (the reason, then the backtrace naming the field) into
 * one bounded line. */
static void cyaml_to_buf(cyaml_log_t level, void *ctx, const char *fmt, va_list args)
{
    log_sink_t *s = ctx;
    if (level < CYAML_LOG_ERROR || !s) return;
    size_t n = strlen(s->buf);
    if (n + 4 >= s->cap) return;
    if (n) {
        memcpy(s->buf + n, "; ", 3);
        n += 2;
    }
    vsnprintf(s->buf + n, s->cap - n, fmt, args);
    for (char *p = s->buf + n; *p; p++)
        if (*p == '\n' || *p == '\t') *p = ' ';
    n = strlen(s->buf);
    while (n && s->buf[n - 1] == ' ') s->buf[--n] = '\0';
}

static int check_range(const char *key, double v, double lo, double hi, char *errbuf, size_t errcap)
{
    if (isfinite(v) && ((v >= lo && v <= hi) || v < 0)) return 0;
    snprintf(errbuf, errcap,
             "criteria: '%s' = %g: must be in [%g, %g] (or negative to switch it off)", key, v, lo,
             hi);
    return HL_ECONFIG;
}

int cli_criteria_load(const char *path, cli_criteria_t *c, char *errbuf, size_t errcap)
{
    char *text = NULL;
    size_t len = 0;
    char detail[384] = "";
    cli_criteria_defaults(c);
    if (hl_read_file(path, 1 << 16, &text, &len) != 0) {
        snprintf(errbuf, errcap, "criteria %s: cannot read (or over 64 KiB)", path);
        return HL_EIO;
    }
    log_sink_t sink = {detail, sizeof(detail)};
    cyaml_config_t cfg = {.log_fn = cyaml_to_buf,
                          .log_ctx = &sink,
                          .mem_fn = cyaml_mem,
                          .log_level = CYAML_LOG_ERROR,
                          .flags = CYAML_CFG_DEFAULT};
    criteria_yaml_t *y = NULL;
    cyaml_err_t e = cyaml_load_data((const uint8_t *)text, len, &cfg, &criteria_schema,
                                    (cyaml_data_t **)&y, NULL);
    free(text);
    if (e != CYAML_OK) {
        snprintf(errbuf, errcap, "criteria %s: %s%s%s", path, cyaml_strerror(e),
                 detail[0] ? ": " : "", detail);
        return HL_ECONFIG;
    }
    int rc = 0;
    if (!y) return 0; /* an empty document keeps the defaults */
#define TAKE(f)                                                                                    \
    if (y->f) c->f = *y->f
    TAKE(p95_ms_max);
    TAKE(p99_ms_max);
    TAKE(p999_ms_max);
    TAKE(acceptance_min);
    TAKE(error_rate_max);
    TAKE(idempotency_violations_max);
    TAKE(ordering_violations_max);
    TAKE(gaps_max);
    TAKE(lineage_coverage_min);
    TAKE(chain_failures_max);
#undef TAKE
    cyaml_free(&cfg, &criteria_schema, y, 0);
    rc = check_range("p95_ms_max", c->p95_ms_max, 0, 3.6e6, errbuf, errcap);
    if (!rc) rc = check_range("p99_ms_max", c->p99_ms_max, 0, 3.6e6, errbuf, errcap);
    if (!rc) rc = check_range("p999_ms_max", c->p999_ms_max, 0, 3.6e6, errbuf, errcap);
    if (!rc) rc = check_range("acceptance_min", c->acceptance_min, 0, 1, errbuf, errcap);
    if (!rc) rc = check_range("error_rate_max", c->error_rate_max, 0, 1, errbuf, errcap);
    if (!rc)
        rc = check_range("lineage_coverage_min", c->lineage_coverage_min, 0, 1, errbuf, errcap);
    return rc;
}

/* Appends the row of a criterion. One not measured fails and says so; a measured one's value
 * and verdict are the caller's to write. */
static cli_gate_row_t *row_add(cli_gate_t *g, const char *key, const char *label, int measured)
{
    cli_gate_row_t *r = &g->rows[g->nrows++];
    *r = (cli_gate_row_t){.key = key, .label = label};
    if (!measured) {
        snprintf(r->value, sizeof(r->value), "not measured");
        r->verdict = CLI_GATE_FAIL;
    }
    return r;
}

static void row_max_ms(cli_gate_t *g, const char *key, const char *label, double v, double lim)
{
    if (lim < 0) return;
    cli_gate_row_t *r = row_add(g, key, label, 1);
    snprintf(r->value, sizeof(r->value), "%.2f ms", v);
    snprintf(r->limit, sizeof(r->limit), "<= %g ms", lim);
    r->verdict = v <= lim ? CLI_GATE_PASS : CLI_GATE_FAIL;
}

static void row_ratio(cli_gate_t *g, const char *key, const char *label, double v, double lim,
                      int at_least)
{
    if (lim < 0) return;
    cli_gate_row_t *r = row_add(g, key, label, v >= 0);
    if (v >= 0) {
        snprintf(r->value, sizeof(r->value), "%.3f %%", v * 100.0);
        r->verdict = (at_least ? v >= lim : v <= lim) ? CLI_GATE_PASS : CLI_GATE_FAIL;
    }
    snprintf(r->limit, sizeof(r->limit), "%s %g %%", at_least ? ">=" : "<=", lim * 100.0);
}

static void row_count(cli_gate_t *g, const char *key, const char *label, int64_t v, int64_t lim)
{
    if (lim < 0) return;
    cli_gate_row_t *r = row_add(g, key, label, v >= 0);
    if (v >= 0) {
        snprintf(r->value, sizeof(r->value), "%lld", (long long)v);
        r->verdict = v <= lim ? CLI_GATE_PASS : CLI_GATE_FAIL;
    }
    snprintf(r->limit, sizeof(r->limit), "<= %lld", (long long)lim);
}

/* A criterion the auditor answers, skipped with --no-auditor; the caller writes its limit. */
static cli_gate_row_t *row_skip(cli_gate_t *g, const char *key, const char *label)
{
    cli_gate_row_t *r = &g->rows[g->nrows++];
    *r = (cli_gate_row_t){
        .key = key, .label = label, .verdict = CLI_GATE_SKIP, .note = "not checked: --no-auditor"};
    snprintf(r->value, sizeof(r->value), "skipped");
    return r;
}

void cli_gate_eval(const cli_criteria_t *c, const cli_results_t *res, cli_gate_t *g)
{
    memset(g, 0, sizeof(*g));
    int measured = res->sent > 0;
    row_max_ms(g, "p95_ms_max", "p95 latency", res->p95_ms, c->p95_ms_max);
    row_max_ms(g, "p99_ms_max", "p99 latency", res->p99_ms, c->p99_ms_max);
    row_max_ms(g, "p999_ms_max", "p99.9 latency", res->p999_ms, c->p999_ms_max);
    row_ratio(g, "acceptance_min", "acceptance", measured ? res->acceptance_ratio : -1,
              c->acceptance_min, 1);
    row_ratio(g, "error_rate_max", "error rate", measured ? res->error_rate : -1, c->error_rate_max,
              0);
    row_count(g, "idempotency_violations_max", "idempotency violations",
              res->idempotency_violations, c->idempotency_violations_max);
    row_count(g, "ordering_violations_max", "ordering violations", res->ordering_violations,
              c->ordering_violations_max);
    row_count(g, "gaps_max", "gaps", res->gaps, c->gaps_max);
    if (c->lineage_coverage_min >= 0 && res->auditor_skipped) {
        snprintf(row_skip(g, "lineage_coverage_min", "lineage coverage")->limit, 48, ">= %g %%",
                 c->lineage_coverage_min * 100.0);
    } else {
        row_ratio(g, "lineage_coverage_min", "lineage coverage", res->lineage_coverage,
                  c->lineage_coverage_min, 1);
    }
    if (c->chain_failures_max >= 0 && res->auditor_skipped) {
        snprintf(row_skip(g, "chain_failures_max", "chain verification")->limit, 48, "<= %lld",
                 (long long)c->chain_failures_max);
    } else {
        row_count(g, "chain_failures_max", "chain verification", res->chains_failed,
                  c->chain_failures_max);
    }
    if (!measured && g->nrows) {
        /* Latency of nothing is not a pass. */
        for (size_t i = 0; i < g->nrows; i++)
            if (strstr(g->rows[i].key, "_ms_max")) {
                g->rows[i].verdict = CLI_GATE_FAIL;
                g->rows[i].note = "nothing was sent";
            }
    }
    g->pass = 1;
    for (size_t i = 0; i < g->nrows; i++)
        if (g->rows[i].verdict == CLI_GATE_FAIL) g->pass = 0;
}

char *cli_criteria_json(const cli_criteria_t *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "p95_ms_max", json_real(c->p95_ms_max));
    json_object_set_new(o, "p99_ms_max", json_real(c->p99_ms_max));
    json_object_set_new(o, "p999_ms_max", json_real(c->p999_ms_max));
    json_object_set_new(o, "acceptance_min", json_real(c->acceptance_min));
    json_object_set_new(o, "error_rate_max", json_real(c->error_rate_max));
    json_object_set_new(o, "idempotency_violations_max",
                        json_integer(c->idempotency_violations_max));
    json_object_set_new(o, "ordering_violations_max", json_integer(c->ordering_violations_max));
    json_object_set_new(o, "gaps_max", json_integer(c->gaps_max));
    json_object_set_new(o, "lineage_coverage_min", json_real(c->lineage_coverage_min));
    json_object_set_new(o, "chain_failures_max", json_integer(c->chain_failures_max));
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_INDENT(2));
    json_decref(o);
    return s;
}

static double num(json_t *o, const char *k, double dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

int cli_results_parse(const char *text, size_t len, cli_results_t *r)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return HL_EPARSE;
    }
    memset(r, 0, sizeof(*r));
    if (!json_is_number(json_object_get(o, "sent"))) {
        json_decref(o);
        return HL_EPARSE;
    }
    r->sent = (uint64_t)num(o, "sent", 0);
    r->accepted = (uint64_t)num(o, "accepted", 0);
    r->rejected = (uint64_t)num(o, "rejected", 0);
    r->errors = (uint64_t)num(o, "errors", 0);
    r->retries = (uint64_t)num(o, "retries", 0);
    r->skipped = (uint64_t)num(o, "skipped", 0);
    r->acceptance_ratio = num(o, "acceptance_ratio", -1);
    r->error_rate = num(o, "error_rate", -1);
    r->p50_ms = num(o, "p50_ms", INFINITY);
    r->p95_ms = num(o, "p95_ms", INFINITY);
    r->p99_ms = num(o, "p99_ms", INFINITY);
    r->p999_ms = num(o, "p999_ms", INFINITY);
    r->max_ms = num(o, "max_ms", INFINITY);
    r->throughput_rps = num(o, "throughput_rps", 0);
    r->duration_s = num(o, "duration_s", 0);
    r->idempotency_violations = (int64_t)num(o, "idempotency_violations", -1);
    r->ordering_violations = (int64_t)num(o, "ordering_violations", -1);
    r->gaps = (int64_t)num(o, "gaps", -1);
    r->lineage_coverage = num(o, "lineage_coverage", -1);
    r->chains_failed = (int64_t)num(o, "chain_failures", -1);
    r->auditor_skipped = json_is_true(json_object_get(o, "auditor_skipped"));
    double conc = num(o, "concurrency", 0), rate = num(o, "rate", 0);
    r->concurrency = conc >= 1 && conc <= 1e6 ? (unsigned)conc : 0;
    r->rate_rps = rate > 0 && isfinite(rate) ? rate : 0;
    json_decref(o);
    return 0;
}
