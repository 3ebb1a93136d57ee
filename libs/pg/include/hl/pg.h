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

/* ---- connection pool (libs/pg/src/pool.c) ----
 * At most `size` connections to one server, lent to one thread at a time. Thread-safe: every
 * function but new and free may be called from any thread. */
typedef struct hl_pg_pool hl_pg_pool_t;
/* pg is borrowed and must outlive the pool. Connects lazily (nothing happens here). */
hl_pg_pool_t *hl_pg_pool_new(const hl_pg_config_t *pg, size_t size);
/* Closes the idle connections. NULL: nothing. Only once no connection is lent. */
void hl_pg_pool_free(hl_pg_pool_t *p);
/* Borrows a healthy connection (connecting if needed), waiting at most 5 s for one when all
 * are lent. NULL on failure or once closed. Give it back with hl_pg_pool_put. */
PGconn *hl_pg_pool_get(hl_pg_pool_t *p);
/* Gives c (borrowed from p; NULL gives back just the slot) back. It is closed instead of kept
 * when `broken`, the pool is closed, the server is read-only or a transaction is open. */
void hl_pg_pool_put(hl_pg_pool_t *p, PGconn *c, bool broken);
/* At shutdown: lends nothing more and asks the server to cancel what the lent connections are
 * running, so no query outlives the process (a backend whose client is gone keeps running,
 * and holding its locks, until it next writes to that client). */
void hl_pg_pool_close(hl_pg_pool_t *p);

#endif
