/* Human-facing output of a run: the gate as a table, the latency histogram as CSV and as an
 * SVG chart. */
#ifndef CLI_REPORT_H
#define CLI_REPORT_H

#include <stdio.h>

#include "gate.h"
#include "hl/hist.h"

/* Prints the run summary and one row per criterion, then the verdict line. */
void cli_report_table(FILE *out, const cli_results_t *r, const cli_gate_t *g);

/* "lo_us,hi_us,count,cumulative" rows of the non-empty buckets, lowest first. */
void cli_report_csv(FILE *out, const hl_hist_t *h);

/* A standalone SVG: the count per latency bin on a logarithmic time axis, with p50, p95, p99
 * and max marked. */
void cli_report_svg(FILE *out, const hl_hist_t *h, const char *title);

#endif
