/* The lineage half of verification (verify_lineage.c): coverage, sample lineages, the
 * auditor's gaps and error budget. verify.c runs it after the Postgres half. */
#ifndef CLI_VERIFY_LINEAGE_H
#define CLI_VERIFY_LINEAGE_H

#include "verify.h"

/* Lineage coverage, sample lineages, auditor gaps and error budget into r. Returns 0, HL_EIO
 * (auditor unreachable), HL_EAUTH (token refused) or HL_EPG. */
int cli_lineage_checks(const cli_verify_opts_t *o, const cli_workload_t *w, cli_verify_report_t *r,
                       char *errbuf, size_t errcap);

#endif
