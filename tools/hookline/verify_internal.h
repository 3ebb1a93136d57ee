/* Helpers shared by the two halves of verification (verify.c: events; lineage.c: lineage). */
#ifndef HL_CLI_VERIFY_INTERNAL_H
#define HL_CLI_VERIFY_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>

#include "http_client.h"
#include "verify.h"

/* Connects with o->conninfo and sets search_path to o->schema; NULL with errbuf filled. */
PGconn *hl_verify_pg_open(const hl_verify_opts_t *o, char *errbuf, size_t errcap);
/* Appends item (taken) to a report list unless it holds HL_VERIFY_REPORT_CAP entries. */
void hl_verify_detail(json_t *list, json_t *item);
void hl_verify_sleep_ms(int ms);

/* Lineage coverage, sample lineages, auditor gaps and error budget into r. Returns 0, HL_EIO
 * (auditor unreachable), HL_EAUTH (token refused) or HL_EPG. */
int hl_lineage_checks(const hl_verify_opts_t *o, const hl_workload_t *w, hl_verify_report_t *r,
                      char *errbuf, size_t errcap);

#endif
