/* One way for every command to reach Postgres: through libs/pg, so that the errors read the
 * same as the services'. */
#include "db.h"

#include "hl/config.h"
#include "hl/pg.h"

PGconn *cli_db_open(const char *conninfo, const char *schema, char *errbuf, size_t errcap)
{
    hl_pg_config_t p = {.conninfo = (char *)(conninfo ? conninfo : ""),
                        .schema = (char *)(schema ? schema : "")};
    PGconn *c = NULL;
    /* No retry: a command run by hand reports a database that is down at once. */
    if (hl_pg_connect(&p, 0, &c, errbuf, errcap) != 0) return NULL;
    return c;
}
