/* The batch writer's SQL texts (batch_sql.c): the prepared statements by name, and the COPY
 * way's simple query in three pieces around the offsets it lists. */
#ifndef PST_BATCH_SQL_H
#define PST_BATCH_SQL_H

/* A statement prepared on every new connection under `name`. */
typedef struct {
    const char *name;
    const char *sql;
} pst_bw_statement_t;

/* Every prepared statement, ended by a {NULL, NULL} row. */
extern const pst_bw_statement_t pst_bw_statements[];

/* BEGIN and the COPY of the new rows; then the offsets upsert's head, its VALUES (one tuple
 * per partition, written by the caller) and its tail with COMMIT. */
extern const char PST_SQL_COPY[];
extern const char PST_SQL_COPY_OFFSETS[];
extern const char PST_SQL_COPY_END[];

#endif
