/* Verification of a replay against the system of record: every accepted event stored exactly
 * once in Postgres, in per-message order, and every request id with a lineage at the auditor. */
#ifndef CLI_VERIFY_H
#define CLI_VERIFY_H

#include <jansson.h>
#include <stdint.h>
#include <time.h>

#include "hl/error.h"
#include "workload.h"

typedef struct {
    const char *conninfo;  /* libpq connection string */
    const char *schema;    /* search_path schema, NULL/"" = the server's default */
    const char *source;    /* webhook_events.source of the replay */
    int settle_timeout_ms; /* how long to wait for rows and lineages to arrive */
    int no_auditor;        /* 1 = skip the lineage checks (and say so) */
    const char *auditor_host;
    int auditor_port;
    const char *auditor_token; /* bearer token, borrowed */
    const char *lineage_path;  /* "/v1/requests/": the request id is appended */
    const char *message_path;  /* "/v1/messages/": the message id is appended */
    int lineage_via_api;       /* 1 = coverage through the auditor's API, 0 = its table */
    unsigned auditor_concurrency;
    uint64_t seed;   /* picks the sample lineages */
    unsigned sample; /* full lineages to keep (10) */
    int progress;    /* a progress line on stderr while waiting (a terminal) */
} cli_verify_opts_t;

#define CLI_VERIFY_REPORT_CAP 1000 /* detail entries kept per report; counts are always exact */

typedef struct {
    int64_t expected_events;        /* distinct events answered 202 */
    int64_t stored_events;          /* of those, found in webhook_events */
    int64_t missing_rows;           /* accepted, never stored (also counted as gaps) */
    int64_t duplicate_rows;         /* rows beyond the first for one event */
    int64_t idempotency_violations; /* missing_rows + duplicate_rows */
    int64_t ordering_violations;    /* consecutive accepted events stored out of order */
    int64_t gaps;                   /* = missing_rows */
    int64_t lineage_checked;        /* request ids looked up (-1 when skipped) */
    int64_t lineage_complete;       /* with ingress (and, if accepted, a commit) stage */
    double lineage_coverage;        /* complete / checked, -1 when skipped */
    int64_t auditor_gaps;           /* what the auditor's /v1/gaps reports, -1 unknown */
    int64_t chains_failed;          /* chains the auditor's GET /v1/verify (held to the
                                     * checkpoint topic) finds bad, plus 1 when the topic could
                                     * not be read or holds unverifiable records; -1 unknown */
    json_t *chain_verify;           /* that answer (owned), or null */
    int64_t content_bad;            /* persisted events whose row the auditor's GET
                                     * /v1/verify/content finds gone or edited; -1 unknown */
    json_t *content_verify;         /* that answer (owned), or null */
    json_t *idempotency;            /* report objects (owned; cli_verify_report_free) */
    json_t *ordering;
    json_t *lineage_missing;
    json_t *lineage_sample;
    json_t *auditor_error_budget; /* the auditor's /v1/error-budget answer, or null */
    double pg_seconds;            /* time spent on the Postgres checks (waiting included) */
    double auditor_seconds;       /* time spent on the lineage checks */
} cli_verify_report_t;

/* Runs every check. Returns 0 (violations are counted, not errors), HL_EPG when Postgres
 * cannot be queried, HL_EIO when the auditor cannot be reached (unless no_auditor); errbuf
 * says which. Starts and joins auditor_concurrency threads. */
int cli_verify_run(const cli_verify_opts_t *o, const cli_workload_t *w, cli_verify_report_t *r,
                   char *errbuf, size_t errcap) HL_MUST_CHECK;
void cli_verify_report_free(cli_verify_report_t *r);

/* The stage names found anywhere in a lineage answer (objects with a "stage" string),
 * as bits: 1 = ingress, 2 = persisted, 4 = dead_lettered. */
unsigned cli_lineage_stages(json_t *answer);

/* Appends item (taken) to a report list unless it holds CLI_VERIFY_REPORT_CAP entries. */
static inline void cli_verify_detail(json_t *list, json_t *item)
{
    if (json_array_size(list) < CLI_VERIFY_REPORT_CAP)
        json_array_append_new(list, item);
    else
        json_decref(item);
}

/* The pause between two looks while rows and lineages settle. */
static inline void cli_verify_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
