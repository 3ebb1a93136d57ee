/* Pieces shared by the hookline subcommands: exit codes, the connection options every
 * subcommand that talks to Postgres or the auditor accepts, and the subcommand entry points. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "replay.h"
#include "verify.h"

enum { CLI_EXIT_PASS = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Where Postgres and the auditor are, shared by replay, verify and lineage. */
typedef struct {
    const char *pg; /* libpq conninfo */
    const char *pg_schema;
    const char *source;
    const char *auditor_url;
    const char *auditor_token_file;
    const char *auditor_token_env;
    const char *lineage_path;
    int settle_timeout_ms;
    int no_auditor;
    int lineage_via_api;  /* --lineage-via api */
    char *auditor_token;  /* loaded token (owned) */
    char token_from[300]; /* where the token came from, for messages; "" when none */
    char auditor_host[256];
    int auditor_port;
} cli_conn_opts_t;

/* The local stack's demo token (deploy/local/auditor.yaml), read when nothing else names one. */
#define CLI_DEMO_TOKEN_FILE "deploy/local/secrets/auditor-demo.token"
/* What to do when a service of the local stack does not answer. */
#define CLI_STACK_HINT "is the stack up? deploy/local/stack status"

void cli_conn_opts_defaults(cli_conn_opts_t *c);
/* Handles one long option of the connection group; returns 1 if it was one, 0 if not, -1 on a
 * bad value (message printed). */
int cli_conn_opt(cli_conn_opts_t *c, int ch, const char *arg);
/* Loads the auditor token and splits the URL. Returns 0 or CLI_EXIT_USAGE (message printed). */
int cli_conn_opts_finish(cli_conn_opts_t *c);
void cli_conn_opts_free(cli_conn_opts_t *c);
/* Fills a verify configuration from the connection options. */
void cli_conn_verify_opts(const cli_conn_opts_t *c, cli_verify_opts_t *v, uint64_t seed);
/* Prints what to do about a 401/403 from the auditor: which token was sent, or where none was
 * found. */
void cli_conn_token_advice(const cli_conn_opts_t *c, FILE *out);

/* Why s is not a request id (a UUID as the ingress gives it), written into why (cap bytes);
 * returns 0 when it is one. */
int cli_request_id_problem(const char *s, char *why, size_t cap);

/* Option codes of the connection group (above the single-letter range). */
enum {
    OPT_PG = 1000,
    OPT_PG_SCHEMA,
    OPT_SOURCE,
    OPT_AUDITOR,
    OPT_AUDITOR_TOKEN_FILE,
    OPT_AUDITOR_TOKEN_ENV,
    OPT_LINEAGE_PATH,
    OPT_SETTLE,
    OPT_NO_AUDITOR,
    OPT_LINEAGE_VIA,
    OPT_CONN_LAST_
};
/* The auditor's address and token: all that `lineage` takes. */
#define CLI_AUDITOR_LONG_OPTIONS                                                                   \
    {"auditor", required_argument, NULL, OPT_AUDITOR},                                             \
        {"auditor-token-file", required_argument, NULL, OPT_AUDITOR_TOKEN_FILE},                   \
        {"auditor-token-env", required_argument, NULL, OPT_AUDITOR_TOKEN_ENV},                     \
    {                                                                                              \
        "lineage-path", required_argument, NULL, OPT_LINEAGE_PATH                                  \
    }
/* Postgres and the auditor: replay and verify. */
#define CLI_CONN_LONG_OPTIONS                                                                      \
    CLI_AUDITOR_LONG_OPTIONS, {"pg", required_argument, NULL, OPT_PG},                             \
        {"pg-schema", required_argument, NULL, OPT_PG_SCHEMA},                                     \
        {"source", required_argument, NULL, OPT_SOURCE},                                           \
        {"settle-timeout-ms", required_argument, NULL, OPT_SETTLE},                                \
        {"no-auditor", no_argument, NULL, OPT_NO_AUDITOR},                                         \
    {                                                                                              \
        "lineage-via", required_argument, NULL, OPT_LINEAGE_VIA                                    \
    }

#define CLI_AUDITOR_HELP                                                                           \
    "  --auditor URL              auditor [http://127.0.0.1:8090]\n"                               \
    "  --auditor-token-file FILE  bearer token file; or --auditor-token-env VAR\n"                 \
    "                             [$HOOKLINE_AUDITOR_TOKEN, then .hookline/auditor-token,\n"       \
    "                             then the local stack's " CLI_DEMO_TOKEN_FILE "]\n"               \
    "  --lineage-path PREFIX      auditor lineage path, request id appended [/v1/requests/]\n"

#define CLI_CONN_HELP                                                                              \
    "  --source NAME              ingress source (webhook_events.source) [demo]\n"                 \
    "  --pg CONNINFO              Postgres [host=127.0.0.1 port=55432 dbname=hookline "            \
    "user=hookline]\n"                                                                             \
    "  --pg-schema NAME           schema holding webhook_events [server default]\n"                \
    "  --settle-timeout-ms N      wait for rows and lineages to arrive [60000]\n"                  \
    "  --lineage-via db|api       lineage coverage from the auditor's table (one query per\n"      \
    "                             2,000 ids) or its API (one call per message) [db]\n"             \
    "  --no-auditor               skip lineage checks (reported as skipped)\n" CLI_AUDITOR_HELP

int cli_cmd_replay(int argc, char **argv);
int cli_cmd_verify(int argc, char **argv);
int cli_cmd_lineage(int argc, char **argv);
int cli_cmd_dlq(int argc, char **argv);
int cli_cmd_reverify(int argc, char **argv); /* reverify.c */

/* Parses an integer option value within [min, max]; prints a message naming the option. */
int cli_opt_i64(const char *name, const char *arg, int64_t min, int64_t max, int64_t *out);
int cli_opt_double(const char *name, const char *arg, double min, double max, double *out);

#endif
