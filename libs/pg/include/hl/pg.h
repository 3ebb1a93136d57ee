/* Postgres helpers: connect with retry, run a statement and check its result, classify errors. */
#ifndef HL_PG_H
#define HL_PG_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "hl/config.h"
#include "hl/error.h"

/* Connects with p->conninfo, retrying with capped exponential backoff until deadline_ms has
 * passed (0: one try). Sets search_path to p->schema when non-empty. On success *out is a
 * connection owned by the caller (PQfinish). On failure fills errbuf with libpq's message
 * (passwords are never in it) and returns HL_EPG or HL_ETIMEDOUT. */
int hl_pg_connect(const hl_pg_config_t *p, int deadline_ms, PGconn **out, char *errbuf,
                  size_t errcap) HL_MUST_CHECK;

/* Executes sql (no parameters) and expects PGRES_COMMAND_OK or PGRES_TUPLES_OK. Returns 0 or
 * HL_EPG with errbuf filled. */
int hl_pg_exec(PGconn *c, const char *sql, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* True when the error of `res` (or a broken connection) is transient: connection failure,
 * serialization failure 40001, deadlock 40P01, admin shutdown 57P01..57P03, too many
 * connections 53300, 08xxx. False for data errors that will fail again the same way. */
bool hl_pg_transient(PGconn *c, const PGresult *res);

/* The SQLSTATE half of hl_pg_transient, for callers that already hold the five-character
 * code (e.g. from PQresultErrorField(res, PG_DIAG_SQLSTATE)). NULL or malformed: false. */
bool hl_pg_sqlstate_transient(const char *sqlstate);

#endif
