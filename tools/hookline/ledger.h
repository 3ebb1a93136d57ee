/* The request ledger (requests.ndjson in the evidence folder): one line per request sent, so
 * that `hookline verify` can check a run again later without the replay's memory. */
#ifndef CLI_LEDGER_H
#define CLI_LEDGER_H

#include <stdio.h>

#include "hl/error.h"
#include "workload.h"

/* Writes one JSON line per request of w, messages in order. Returns 0 or HL_EIO. */
int cli_ledger_write(FILE *out, const cli_workload_t *w) HL_MUST_CHECK;

/* Reads a ledger back into *w (zeroed by the caller): message ids, event types, statuses and
 * request ids (no bodies). Lines are capped at 64 KiB and the file at CLI_WL_MAX_COUNT lines.
 * Returns 0, HL_EIO, HL_EPARSE or HL_ETOOBIG with errbuf naming the line. */
int cli_ledger_read(const char *path, cli_workload_t *w, char *errbuf, size_t errcap) HL_MUST_CHECK;

#endif
