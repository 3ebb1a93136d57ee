/* The CLI's Postgres connection: libs/pg's connect (one attempt) with the search_path a
 * command was given. */
#ifndef CLI_DB_H
#define CLI_DB_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects with conninfo ("" or NULL: the PG* environment) and sets search_path to schema
 * when it is neither NULL nor "". Returns the connection (owned by the caller, PQfinish), or
 * NULL with errbuf naming what failed (never a password). */
PGconn *cli_db_open(const char *conninfo, const char *schema, char *errbuf, size_t errcap);

#endif
