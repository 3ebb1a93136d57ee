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

/* Formats the error of `res` (or, when res is NULL, of the connection c; c may be NULL too) into
 * errbuf as "WHAT: postgres [SQLSTATE]: primary message" ("client" for an error without a
 * SQLSTATE; no "WHAT: " when what is NULL), on one line. The primary message only: DETAIL
 * lines can quote row values. Returns HL_EPG, so callers can `return hl_pg_error(...)`. */
int hl_pg_error(PGconn *c, const PGresult *res, const char *what, char *errbuf, size_t errcap);

/* Executes sql (no parameters) and expects PGRES_COMMAND_OK or PGRES_TUPLES_OK. Returns 0 or
 * HL_EPG with errbuf filled. */
int hl_pg_exec(PGconn *c, const char *sql, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* True when the error of `res` (or a broken connection) is transient: connection failure,
 * serialization failure 40001, deadlock 40P01, admin shutdown 57P01..57P03, too many
 * connections 53300, 08xxx, and a write refused by a read-only server 25006 (a standby, or
 * a primary demoted or set read-only: after a failover the writable server is another
 * connection away). False for data errors that will fail again the same way. */
bool hl_pg_transient(PGconn *c, const PGresult *res);

/* The SQLSTATE half of hl_pg_transient, for callers that already hold the five-character
 * code (e.g. from PQresultErrorField(res, PG_DIAG_SQLSTATE)). NULL or malformed: false. */
bool hl_pg_sqlstate_transient(const char *sqlstate);

/* True when the server behind c is read-only as far as the last exchange told: it reports
 * in_hot_standby=on (a standby) or default_transaction_read_only=on (PostgreSQL 14 and later
 * report both to the client whenever they change). False for NULL or a broken connection. */
bool hl_pg_read_only(const PGconn *c);

/* True when c must be closed and made again before the next try: the connection is broken
 * (terminated by the server, 57P01, or lost), `res` failed with 25006 read_only_sql_transaction,
 * or the server is read-only (hl_pg_read_only). A new connection goes through the conninfo's
 * host list again, so with target_session_attrs=read-write it reaches the new primary. res
 * may be NULL. */
bool hl_pg_reconnect_needed(const PGconn *c, const PGresult *res);


/* ---- Chunked queries over a list of text values (libs/pg/src/query.c) ---- */
/* The Postgres text-array literal of n strings ({"a","b\"c"}: quotes and backslashes escaped),
 * owned by the caller (free). items borrowed. Aborts on out-of-memory. */
char *hl_pg_text_array(const char *const *items, size_t n);

#define HL_PG_CHUNKED_MAX_PARAMS 8

/* One statement run per chunk: its last parameter ($nparams) is the chunk as a text[]. */
typedef struct {
    const char *sql;           /* the statement, e.g. "... WHERE id = ANY($2::text[])" */
    const char *const *params; /* the nparams - 1 parameters before the chunk (borrowed) */
    int nparams;               /* 1..HL_PG_CHUNKED_MAX_PARAMS, the chunk included */
    size_t chunk;              /* values per statement (> 0) */
    const char *what;          /* names the query in errors ("count rows") */
} hl_pg_chunked_t;

/* Receives the rows of one chunk (res borrowed, cleared after the call) holding items[off ..
 * off + n). Returns 0 to go on, anything else to stop: hl_pg_query_chunked returns it. */
typedef int (*hl_pg_chunk_fn)(const PGresult *res, size_t off, size_t n, void *arg);

/* Runs q over items[0 .. n) (borrowed) in order, at most q->chunk values per statement, and
 * hands each answer to fn. Returns 0, fn's non-zero return, HL_EINVAL (a bad q) or HL_EPG
 * when a statement fails (errbuf as hl_pg_error writes it, with q->what). No statement when
 * n is 0. */
int hl_pg_query_chunked(PGconn *c, const hl_pg_chunked_t *q, const char *const *items, size_t n,
                        hl_pg_chunk_fn fn, void *arg, char *errbuf, size_t errcap) HL_MUST_CHECK;

#endif
