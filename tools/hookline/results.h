/* A run's results: assembled from the replay and the verification, written as results.json
 * and, with --evidence, as the whole sealed evidence folder. */
#ifndef CLI_RESULTS_H
#define CLI_RESULTS_H

#include <jansson.h>

#include "gate.h"
#include "replay.h"
#include "verify.h"

/* Fills r from the replay (and the verification when v is non-NULL; NULL = not verified). */
void cli_results_fill(cli_results_t *r, const cli_replay_results_t *rep, const cli_workload_t *w,
                      const cli_verify_report_t *v, int auditor_skipped);

/* results.json as a new jansson object (owned by the caller): every field of r, the gate's
 * verdict and rows, and the criteria. `extra` (borrowed, may be NULL) is merged in. */
json_t *cli_results_json(const cli_results_t *r, const cli_gate_t *g, const cli_criteria_t *c,
                         json_t *extra);

/* The error-budget ledger: per criterion what the run was allowed to spend and what it spent. */
json_t *cli_error_budget_json(const cli_results_t *r, const cli_criteria_t *c, const hl_hist_t *h,
                              json_t *auditor);

/* Everything needed to write an evidence folder. All borrowed. */
typedef struct {
    const char *dir;
    json_t *results;          /* results.json */
    json_t *config;           /* config.json (secrets already redacted) */
    const hl_hist_t *latency; /* latency.csv, latency.svg */
    json_t *error_budget;     /* error_budget.json */
    const cli_verify_report_t
        *verify;             /* idempotency.json, ordering.json, lineages.json; may be NULL */
    const cli_workload_t *w; /* requests.ndjson */
    const char *report_text; /* report.txt: the table as printed */
} cli_evidence_t;

/* Writes every file, then SHA256SUMS. Returns 0 or HL_EIO with errbuf naming the file. */
int cli_evidence_write_all(const cli_evidence_t *e, char *errbuf, size_t errcap) HL_MUST_CHECK;

#endif
