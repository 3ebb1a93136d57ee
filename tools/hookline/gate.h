/* The gate: criteria (defaults = the production gate, or a YAML file) evaluated against a
 * run's results, criterion by criterion, into PASS or FAIL. */
#ifndef CLI_GATE_H
#define CLI_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

/* What a run measured. A count of -1 or a coverage < 0 means "not measured". */
typedef struct {
    uint64_t sent, accepted, rejected, errors, retries, skipped, duplicates_sent;
    double acceptance_ratio; /* accepted / sent */
    double error_rate;       /* errors / sent */
    double p50_ms, p95_ms, p99_ms, p999_ms, max_ms;
    double throughput_rps;
    double duration_s;
    int64_t idempotency_violations;
    int64_t ordering_violations;
    int64_t gaps;
    double lineage_coverage; /* 0..1 */
    int64_t chains_failed;   /* chains failing the auditor's verification, -1 unknown */
    int auditor_skipped;     /* 1 when --no-auditor was given: lineage not checked */
    unsigned concurrency;    /* connections used; 0 = not recorded */
    double rate_rps;         /* open-loop target rate; 0 = closed-loop */
} cli_results_t;

/* Limits; a negative limit switches its criterion off. */
typedef struct {
    double p95_ms_max;                  /* 120 */
    double p99_ms_max;                  /* 200 */
    double p999_ms_max;                 /* off */
    double acceptance_min;              /* 0.999 */
    double error_rate_max;              /* 0.001 */
    int64_t idempotency_violations_max; /* 0 */
    int64_t ordering_violations_max;    /* 0 */
    int64_t gaps_max;                   /* 0: any gap fails the gate */
    double lineage_coverage_min;        /* 1.0 */
    int64_t chain_failures_max;         /* 0: every chain verifies against the checkpoint topic */
} cli_criteria_t;

void cli_criteria_defaults(cli_criteria_t *c);

/* Loads criteria from YAML: a mapping with any of the keys above (the struct's field names);
 * absent keys keep their defaults, unknown keys are refused. Returns 0, HL_EIO or HL_ECONFIG
 * with errbuf naming the problem. */
int cli_criteria_load(const char *path, cli_criteria_t *c, char *errbuf,
                      size_t errcap) HL_MUST_CHECK;

typedef enum { CLI_GATE_PASS = 0, CLI_GATE_FAIL = 1, CLI_GATE_SKIP = 2 } cli_gate_verdict_t;

#define CLI_GATE_MAX_ROWS 10
typedef struct {
    const char *key;   /* criterion key, e.g. "p95_ms_max" */
    const char *label; /* human label, e.g. "p95 latency" */
    char value[48];    /* measured, formatted */
    char limit[48];    /* e.g. "<= 120 ms" */
    cli_gate_verdict_t verdict;
    const char *note; /* why SKIP / not measured, or NULL */
} cli_gate_row_t;

typedef struct {
    cli_gate_row_t rows[CLI_GATE_MAX_ROWS];
    size_t nrows;
    int pass; /* 1 = every row PASS or SKIP */
} cli_gate_t;

/* Evaluates every enabled criterion. A criterion whose value was not measured FAILs, except
 * lineage coverage when r->auditor_skipped (SKIP, and the report says so). */
void cli_gate_eval(const cli_criteria_t *c, const cli_results_t *r, cli_gate_t *g);

/* The criteria as a JSON object text (for results.json); caller frees. */
char *cli_criteria_json(const cli_criteria_t *c);

/* Reads the results fields back from a results.json document (text of len bytes). Missing
 * measured fields become "not measured". Returns 0 or HL_EPARSE. */
int cli_results_parse(const char *json, size_t len, cli_results_t *r) HL_MUST_CHECK;

#endif
