/* Unit tests of the gate: crafted results where each criterion fails alone, "not measured"
 * and skipped criteria, criteria YAML (good and bad), and results.json read back. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gate.h"
#include "report.h"
#include "results.h"

static cli_results_t good(void)
{
    return (cli_results_t){.sent = 31500,
                           .accepted = 31500,
                           .acceptance_ratio = 1.0,
                           .error_rate = 0.0,
                           .p50_ms = 1.0,
                           .p95_ms = 3.0,
                           .p99_ms = 6.0,
                           .p999_ms = 20.0,
                           .max_ms = 40.0,
                           .throughput_rps = 5000,
                           .idempotency_violations = 0,
                           .ordering_violations = 0,
                           .gaps = 0,
                           .lineage_coverage = 1.0,
                           .chains_failed = 0};
}

static const cli_gate_row_t *row(const cli_gate_t *g, const char *key)
{
    for (size_t i = 0; i < g->nrows; i++)
        if (strcmp(g->rows[i].key, key) == 0) return &g->rows[i];
    return NULL;
}

/* Exactly the named criterion fails; every other row passes. */
static void expect_only(const cli_results_t *r, const char *key)
{
    cli_criteria_t c;
    cli_criteria_defaults(&c);
    cli_gate_t g;
    cli_gate_eval(&c, r, &g);
    assert_false(g.pass);
    for (size_t i = 0; i < g.nrows; i++) {
        int is = strcmp(g.rows[i].key, key) == 0;
        if (is && g.rows[i].verdict != CLI_GATE_FAIL) fail_msg("%s should FAIL", key);
        if (!is && g.rows[i].verdict != CLI_GATE_PASS)
            fail_msg("%s failed with %s", g.rows[i].key, key);
    }
}

static void test_defaults_pass(void **state)
{
    (void)state;
    cli_criteria_t c;
    cli_criteria_defaults(&c);
    cli_results_t r = good();
    cli_gate_t g;
    cli_gate_eval(&c, &r, &g);
    assert_true(g.pass);
    assert_int_equal(g.nrows, 9);
    /* Exactly at the limits still passes. */
    r.p95_ms = 120;
    r.p99_ms = 200;
    r.acceptance_ratio = 0.999;
    r.error_rate = 0.001;
    cli_gate_eval(&c, &r, &g);
    assert_true(g.pass);
}

static void test_each_criterion_fails_alone(void **state)
{
    (void)state;
    cli_results_t r = good();
    r.p95_ms = 120.01;
    expect_only(&r, "p95_ms_max");
    r = good();
    r.p99_ms = 200.5;
    expect_only(&r, "p99_ms_max");
    r = good();
    r.acceptance_ratio = 0.9989;
    expect_only(&r, "acceptance_min");
    r = good();
    r.error_rate = 0.0011;
    expect_only(&r, "error_rate_max");
    r = good();
    r.idempotency_violations = 1;
    expect_only(&r, "idempotency_violations_max");
    r = good();
    r.ordering_violations = 1;
    expect_only(&r, "ordering_violations_max");
    r = good();
    r.lineage_coverage = 0.9999;
    expect_only(&r, "lineage_coverage_min");
    r = good();
    r.gaps = 1; /* the default gate fails on any gap */
    expect_only(&r, "gaps_max");
    r = good();
    r.chains_failed = 1;
    expect_only(&r, "chain_failures_max");
    r = good();
    r.chains_failed = -1; /* the auditor did not answer its verification */
    expect_only(&r, "chain_failures_max");
}

static void test_not_measured_and_skipped(void **state)
{
    (void)state;
    cli_criteria_t c;
    cli_criteria_defaults(&c);
    cli_results_t r = good();
    r.idempotency_violations = -1;
    cli_gate_t g;
    cli_gate_eval(&c, &r, &g);
    assert_false(g.pass);
    assert_string_equal(row(&g, "idempotency_violations_max")->value, "not measured");
    r = good();
    r.lineage_coverage = -1;
    r.chains_failed = -1;
    r.auditor_skipped = 1;
    cli_gate_eval(&c, &r, &g);
    assert_true(g.pass);
    assert_int_equal(row(&g, "chain_failures_max")->verdict, CLI_GATE_SKIP);
    assert_int_equal(row(&g, "lineage_coverage_min")->verdict, CLI_GATE_SKIP);
    assert_non_null(strstr(row(&g, "lineage_coverage_min")->note, "no-auditor"));
    /* Nothing sent is never a pass. */
    r = (cli_results_t){
        .idempotency_violations = 0, .ordering_violations = 0, .gaps = 0, .lineage_coverage = 1};
    cli_gate_eval(&c, &r, &g);
    assert_false(g.pass);
}

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/hl-cli-gate-XXXXXX");
    int fd = mkstemp(path);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_criteria_yaml(void **state)
{
    (void)state;
    cli_criteria_t c;
    char err[512];
    char *p = write_tmp("p95_ms_max: 5\np99_ms_max: 10\ngaps_max: 0\nlineage_coverage_min: -1\n");
    assert_int_equal(cli_criteria_load(p, &c, err, sizeof(err)), 0);
    unlink(p);
    assert_true(c.p95_ms_max == 5 && c.p99_ms_max == 10);
    assert_true(c.acceptance_min == 0.999); /* absent keys keep their defaults */
    assert_int_equal(c.gaps_max, 0);
    cli_results_t r = good();
    r.gaps = 2;
    r.idempotency_violations = 0;
    cli_gate_t g;
    cli_gate_eval(&c, &r, &g);
    assert_false(g.pass);
    assert_int_equal(row(&g, "gaps_max")->verdict, CLI_GATE_FAIL);
    assert_null(row(&g, "lineage_coverage_min")); /* switched off */

    p = write_tmp("p95_ms_max: 5\nbogus_key: 1\n");
    assert_int_equal(cli_criteria_load(p, &c, err, sizeof(err)), HL_ECONFIG);
    assert_non_null(strstr(err, "bogus_key"));
    unlink(p);
    p = write_tmp("acceptance_min: 1.5\n");
    assert_int_equal(cli_criteria_load(p, &c, err, sizeof(err)), HL_ECONFIG);
    assert_non_null(strstr(err, "acceptance_min"));
    unlink(p);
    p = write_tmp("p99_ms_max: fast\n");
    assert_int_equal(cli_criteria_load(p, &c, err, sizeof(err)), HL_ECONFIG);
    unlink(p);
    p = write_tmp("- a\n- b\n");
    assert_int_equal(cli_criteria_load(p, &c, err, sizeof(err)), HL_ECONFIG);
    unlink(p);
    assert_int_equal(cli_criteria_load("/nonexistent.yaml", &c, err, sizeof(err)), HL_EIO);
}

static void test_results_roundtrip(void **state)
{
    (void)state;
    cli_criteria_t c;
    cli_criteria_defaults(&c);
    cli_results_t r = good(), back;
    r.ordering_violations = 3;
    cli_gate_t g;
    cli_gate_eval(&c, &r, &g);
    json_t *j = cli_results_json(&r, &g, &c, NULL);
    const char *need[] = {"sent",
                          "accepted",
                          "acceptance_ratio",
                          "error_rate",
                          "retries",
                          "p50_ms",
                          "p95_ms",
                          "p99_ms",
                          "p999_ms",
                          "max_ms",
                          "throughput_rps",
                          "idempotency_violations",
                          "ordering_violations",
                          "gaps",
                          "lineage_coverage",
                          "gate",
                          "criteria"};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (!json_object_get(j, need[i])) fail_msg("results.json lacks %s", need[i]);
    assert_string_equal(json_string_value(json_object_get(j, "gate")), "FAIL");
    char *s = json_dumps(j, 0);
    assert_int_equal(cli_results_parse(s, strlen(s), &back), 0);
    assert_int_equal(back.sent, 31500);
    assert_int_equal(back.ordering_violations, 3);
    assert_true(back.p99_ms == 6.0);
    assert_int_equal(back.concurrency, 0); /* not recorded: no load line */
    free(s);
    json_decref(j);
    /* The load (open- or closed-loop) goes to results.json, comes back, and is printed. */
    r.concurrency = 50;
    r.rate_rps = 1000;
    j = cli_results_json(&r, &g, &c, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "mode")), "open-loop");
    s = json_dumps(j, 0);
    assert_int_equal(cli_results_parse(s, strlen(s), &back), 0);
    assert_int_equal(back.concurrency, 50);
    assert_true(back.rate_rps == 1000);
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    cli_report_table(f, &back, &g);
    fclose(f);
    assert_non_null(strstr(text, "open-loop at 1000 req/s on 50 connections"));
    free(text);
    free(s);
    json_decref(j);
    r.rate_rps = 0;
    f = open_memstream(&text, &tlen);
    cli_report_table(f, &r, &g);
    fclose(f);
    assert_non_null(strstr(text, "closed-loop on 50 connections"));
    free(text);
    assert_int_equal(cli_results_parse("[1]", 3, &back), HL_EPARSE);
    assert_int_equal(cli_results_parse("{\"x\":1}", 7, &back), HL_EPARSE);
    assert_int_equal(cli_results_parse("{", 1, &back), HL_EPARSE);
    /* Missing measurements read back as "not measured" and fail the gate. */
    const char *partial = "{\"sent\":10,\"accepted\":10,\"acceptance_ratio\":1,\"error_rate\":0,"
                          "\"p95_ms\":1,\"p99_ms\":2}";
    assert_int_equal(cli_results_parse(partial, strlen(partial), &back), 0);
    cli_gate_eval(&c, &back, &g);
    assert_false(g.pass);
    assert_int_equal(row(&g, "p95_ms_max")->verdict, CLI_GATE_PASS);
    assert_int_equal(row(&g, "ordering_violations_max")->verdict, CLI_GATE_FAIL);
}

/* The error-budget ledger counts slow requests from the histogram and errors from the
 * results; the CSV's cumulative column ends at 1; the SVG marks the percentiles. */
static void test_budget_csv_svg(void **state)
{
    (void)state;
    hl_hist_t *h = hl_hist_new();
    hl_hist_record_n(h, 1000, 980);  /* 1 ms */
    hl_hist_record_n(h, 150000, 15); /* 150 ms: over p95's 120 ms */
    hl_hist_record_n(h, 300000, 5);  /* 300 ms: over both */
    cli_results_t r = good();
    r.sent = 1000;
    r.accepted = 990;
    r.errors = 2;
    cli_criteria_t c;
    cli_criteria_defaults(&c);
    json_t *b = cli_error_budget_json(&r, &c, h, NULL);
    json_t *rows = json_object_get(b, "ledger");
    int seen = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *k = json_string_value(json_object_get(row, "criterion"));
        json_int_t allowed = json_integer_value(json_object_get(row, "allowed"));
        json_int_t spent = json_integer_value(json_object_get(row, "spent"));
        if (strcmp(k, "p95_ms_max") == 0) {
            assert_int_equal(allowed, 50);
            assert_int_equal(spent, 20);
            seen++;
        } else if (strcmp(k, "p99_ms_max") == 0) {
            assert_int_equal(allowed, 10);
            assert_int_equal(spent, 5);
            seen++;
        } else if (strcmp(k, "error_rate_max") == 0) {
            assert_int_equal(allowed, 1);
            assert_int_equal(spent, 2);
            assert_false(json_is_true(json_object_get(row, "within")));
            seen++;
        } else if (strcmp(k, "acceptance_min") == 0) {
            assert_int_equal(spent, 10);
            seen++;
        }
    }
    assert_int_equal(seen, 4);
    json_decref(b);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_report_csv(f, h);
    fclose(f);
    assert_non_null(strstr(buf, "lo_us,hi_us,count,cumulative\n"));
    assert_non_null(strstr(buf, ",980,0.980000\n"));
    assert_non_null(strstr(buf, ",1.000000\n"));
    free(buf);
    f = open_memstream(&buf, &len);
    cli_report_svg(f, h, "t");
    fclose(f);
    assert_memory_equal(buf, "<svg", 4);
    assert_non_null(strstr(buf, "p99 "));
    assert_non_null(strstr(buf, "</svg>"));
    free(buf);
    hl_hist_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_pass),
        cmocka_unit_test(test_each_criterion_fails_alone),
        cmocka_unit_test(test_not_measured_and_skipped),
        cmocka_unit_test(test_criteria_yaml),
        cmocka_unit_test(test_results_roundtrip),
        cmocka_unit_test(test_budget_csv_svg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
