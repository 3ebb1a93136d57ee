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

/* ---- Binary wire encoding: COPY ... (FORMAT binary) and binary array parameters ----
 * Every field is a 32-bit big-endian length (-1: NULL) followed by that many bytes, so text
 * goes verbatim: tabs, newlines, backslashes and carriage returns need no escape, and
 * non-ASCII bytes pass as they are (the server checks them against the client encoding). A
 * NUL byte is the one thing a text value cannot hold: the encoders refuse it. All of them
 * append to b (growing it; abort on out-of-memory like hl_buf_reserve). */
#include "hl/util.h"

/* Type oids fixed by Postgres (pg_type.dat). */
#define HL_PG_OID_BYTEA 17
#define HL_PG_OID_INT8 20
#define HL_PG_OID_INT4 23
#define HL_PG_OID_TEXT 25
#define HL_PG_OID_TIMESTAMPTZ 1184
#define HL_PG_OID_UUID 2950
#define HL_PG_OID_JSONB 3802

/* Microseconds between 1970-01-01 and 2000-01-01, the epoch of binary timestamps. */
#define HL_PG_EPOCH_US 946684800000000LL

/* Big-endian integers, as the wire carries them (no length word). */
void hl_pg_put16(hl_buf_t *b, uint16_t v);
void hl_pg_put32(hl_buf_t *b, uint32_t v);
void hl_pg_put64(hl_buf_t *b, int64_t v);
/* Reads the big-endian integers of a binary result column. */
uint32_t hl_pg_get32(const char *p);
int64_t hl_pg_get64(const char *p);

/* One field (or array element) each, length word included. */
void hl_pg_enc_null(hl_buf_t *b);
void hl_pg_enc_bytea(hl_buf_t *b, const void *p, size_t n);
void hl_pg_enc_int4(hl_buf_t *b, int32_t v);
void hl_pg_enc_int8(hl_buf_t *b, int64_t v);
/* unix_us: microseconds since 1970 (moved to the 2000 epoch here). */
void hl_pg_enc_timestamptz(hl_buf_t *b, int64_t unix_us);
/* text s[0..n): HL_EINVAL (nothing appended) when it holds a NUL byte. */
int hl_pg_enc_text(hl_buf_t *b, const char *s, size_t n) HL_MUST_CHECK;
/* jsonb from its text s[0..n) (the server parses it): HL_EINVAL on a NUL byte. */
int hl_pg_enc_jsonb(hl_buf_t *b, const char *s, size_t n) HL_MUST_CHECK;
/* uuid from its 36-character text form: HL_EINVAL (nothing appended) when not one. */
int hl_pg_enc_uuid(hl_buf_t *b, const char *s) HL_MUST_CHECK;

/* Empties b and starts a one-dimensional array of n elements of type oid (array_recv's format:
 * ndim, has-null flag, element type, then size and lower bound); n elements follow. */
void hl_pg_array_begin(hl_buf_t *b, uint32_t oid, size_t n);

/* Empties b and writes the COPY header (signature, flags, extension length). */
void hl_pg_copy_begin(hl_buf_t *b);
/* Starts a tuple of nfields fields; exactly that many fields follow. */
void hl_pg_copy_tuple(hl_buf_t *b, uint16_t nfields);
/* The trailer that ends the COPY data. */
void hl_pg_copy_end(hl_buf_t *b);

/* ---- consumer_offsets: where a consumer group stands in a topic ----
 * A service keeping its Kafka positions in Postgres moves them in the transaction of its rows,
 * with one upsert whose offsets only move forward: a retried or late batch never moves a
 * partition back. The pieces, for statements that take their rows from anywhere (parameters,
 * VALUES, a JSON recordset) and alias the table as c: */
#define HL_PG_OFFSETS_INSERT(cols)                                                                 \
    "INSERT INTO consumer_offsets AS c (consumer_group, topic, kafka_partition, next_offset" cols  \
    ")"
#define HL_PG_OFFSETS_CONFLICT(sets)                                                               \
    " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE"                              \
    " SET next_offset = GREATEST(c.next_offset, EXCLUDED.next_offset)," sets                       \
    " updated_at = clock_timestamp()"
/* The column and the update of a consumer that also tracks where its delivered lineage ends. */
#define HL_PG_OFFSETS_LINEAGE_COL ", lineage_offset"
#define HL_PG_OFFSETS_LINEAGE_SET                                                                  \
    " lineage_offset = GREATEST(c.lineage_offset, EXCLUDED.lineage_offset),"

/* The upsert for n partitions of (group, topic): parts[i] moves to next[i], and, when lineage is
 * not NULL, its lineage_offset to min(lineage[i], next[i]). One statement with binary array
 * parameters, inside the caller's transaction when one is open. Returns its result as
 * PQexecParams does (owned by the caller: PQclear; PGRES_COMMAND_OK on success). */
PGresult *hl_pg_offsets_upsert(PGconn *c, const char *group, const char *topic,
                               const int32_t *parts, const int64_t *next, const int64_t *lineage,
                               size_t n);

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

/* ---- Chunked queries over a list of text values (libs/pg/src/query.c) ---- */
/* Runs sql with n text parameters (borrowed) and expects rows (PGRES_TUPLES_OK). Returns the
 * result, owned by the caller (PQclear), or NULL with errbuf filled as hl_pg_error writes it,
 * naming `what`; a caller that fails then returns HL_EPG. */
PGresult *hl_pg_select(PGconn *c, const char *sql, int n, const char *const *params,
                       const char *what, char *errbuf, size_t errcap);

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
