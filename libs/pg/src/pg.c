/* libpq glue shared by the services: a connect that retries with capped backoff inside a
 * deadline, a checked statement runner, and the transient/permanent split of errors. */
#include "hl/pg.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_CAP_MS 2000
#define ATTEMPT_DEFAULT_MS 5000

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
    if (ms <= 0) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Copies a libpq message into errbuf as one line (libpq ends messages with newlines and
 * sometimes spreads them over several lines). */
static void put_message(char *errbuf, size_t errcap, const char *prefix, const char *msg)
{
    int n = snprintf(errbuf, errcap, "%s%s", prefix, msg && msg[0] ? msg : "unknown error");
    if (n < 0 || errcap == 0) return;
    size_t len = strnlen(errbuf, errcap);
    while (len > 0 && (errbuf[len - 1] == '\n' || errbuf[len - 1] == ' ')) errbuf[--len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (errbuf[i] == '\n' || errbuf[i] == '\t') errbuf[i] = ' ';
}

/* Drives one non-blocking connection attempt until it succeeds, fails, or attempt_deadline
 * (monotonic ms) passes. Returns the connection (possibly CONNECTION_BAD; never NULL except
 * on out-of-memory) and sets *timed_out when the clock ran out. */
static PGconn *connect_once(const char *conninfo, const char *password, long long attempt_deadline,
                            bool *timed_out)
{
    *timed_out = false;
    /* The password after the expanded conninfo overrides any given there. */
    const char *const keys[] = {"dbname", "password", NULL};
    const char *const vals[] = {conninfo, password, NULL};
    PGconn *c = password ? PQconnectStartParams(keys, vals, 1) : PQconnectStart(conninfo);
    if (c == NULL || PQstatus(c) == CONNECTION_BAD) return c;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        long long left = attempt_deadline - mono_ms();
        if (left <= 0) {
            *timed_out = true;
            return c;
        }
        struct pollfd pfd = {.fd = PQsocket(c),
                             .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int pr = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (pr < 0 && errno != EINTR) return c;
        if (pr > 0) st = PQconnectPoll(c);
    }
    return c;
}

static int set_search_path(PGconn *c, const char *schema, char *errbuf, size_t errcap)
{
    char *ident = PQescapeIdentifier(c, schema, strlen(schema));
    if (ident == NULL) {
        put_message(errbuf, errcap, "postgres: cannot quote schema name: ", PQerrorMessage(c));
        return HL_EPG;
    }
    size_t cap = strlen(ident) + 32;
    char *sql = malloc(cap);
    if (sql == NULL) {
        PQfreemem(ident);
        return HL_ENOMEM;
    }
    snprintf(sql, cap, "SET search_path TO %s", ident);
    PQfreemem(ident);
    int rc = hl_pg_exec(c, sql, errbuf, errcap);
    free(sql);
    return rc;
}

/* The number of hosts in a parsed conninfo ("host=a,b,c" or a URI with several hosts;
 * hostaddr when host is absent): libpq tries them in order within one connection attempt. */
static int host_count(const PQconninfoOption *opts)
{
    const char *list = NULL;
    for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0') continue;
        if (strcmp(o->keyword, "host") == 0)
            list = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0 && list == NULL)
            list = o->val;
    }
    int n = 1;
    for (const char *c = list; c != NULL && *c != '\0'; c++)
        if (*c == ',') n++;
    return n;
}

int hl_pg_connect(const hl_pg_config_t *p, int deadline_ms, PGconn **out, char *errbuf,
                  size_t errcap)
{
    *out = NULL;
    const char *conninfo = p->conninfo ? p->conninfo : "";
    /* A malformed string will never connect: say so at once instead of retrying. libpq's
     * parse message names the bad option, never its value. */
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (opts == NULL) {
        put_message(errbuf, errcap, "postgres: bad conninfo: ", perr);
        PQfreemem(perr);
        return HL_EPG;
    }
    int hosts = host_count(opts);
    PQconninfoFree(opts);

    long long start = mono_ms();
    long long deadline = start + (deadline_ms > 0 ? deadline_ms : 0);
    /* One attempt walks the whole host list (libpq tries each in turn, and with
     * target_session_attrs skips those that do not qualify): each host gets the full time. */
    long long per_try =
        (p->connect_timeout_ms ? p->connect_timeout_ms : ATTEMPT_DEFAULT_MS) * hosts;
    long long backoff = BACKOFF_FIRST_MS;
    int attempts = 0;
    for (;;) {
        attempts++;
        long long attempt_deadline = mono_ms() + per_try;
        if (deadline_ms > 0 && attempt_deadline > deadline) attempt_deadline = deadline;
        bool timed_out = false;
        PGconn *c = connect_once(conninfo, p->password, attempt_deadline, &timed_out);
        if (c == NULL) return HL_ENOMEM;
        if (!timed_out && PQstatus(c) == CONNECTION_OK) {
            int rc = 0;
            if (p->schema && p->schema[0]) rc = set_search_path(c, p->schema, errbuf, errcap);
            if (rc != 0) {
                PQfinish(c);
                return rc;
            }
            *out = c;
            return 0;
        }
        char prefix[128];
        snprintf(prefix, sizeof prefix,
                 "postgres: connect failed after %d attempt%s in %lld ms: ", attempts,
                 attempts == 1 ? "" : "s", mono_ms() - start);
        put_message(errbuf, errcap, prefix,
                    timed_out ? "connection attempt timed out" : PQerrorMessage(c));
        PQfinish(c);
        long long left = deadline - mono_ms();
        if (deadline_ms <= 0) return timed_out ? HL_ETIMEDOUT : HL_EPG;
        if (left <= 0) return HL_ETIMEDOUT;
        sleep_ms(backoff < left ? backoff : left);
        if (deadline - mono_ms() <= 0) return HL_ETIMEDOUT;
        backoff = backoff * 2 > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : backoff * 2;
    }
}

int hl_pg_error(PGconn *c, const PGresult *res, const char *what, char *errbuf, size_t errcap)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s%spostgres [%s]: ", what ? what : "", what ? ": " : "",
             state ? state : "client");
    /* The primary message only: DETAIL lines can quote row values. */
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *msg = primary ? primary
                      : res   ? PQresultErrorMessage(res)
                      : c     ? PQerrorMessage(c)
                              : "no connection";
    put_message(errbuf, errcap, prefix, msg);
    return HL_EPG;
}

int hl_pg_exec(PGconn *c, const char *sql, char *errbuf, size_t errcap)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(res);
        return 0;
    }
    int rc = hl_pg_error(c, res, NULL, errbuf, errcap);
    PQclear(res);
    return rc;
}

bool hl_pg_sqlstate_transient(const char *sqlstate)
{
    if (sqlstate == NULL || strlen(sqlstate) != 5) return false;
    /* Class 08: connection exceptions; the next connection may well work. */
    if (strncmp(sqlstate, "08", 2) == 0) return true;
    static const char *const codes[] = {
        "40001", /* serialization_failure: retry the transaction */
        "40P01", /* deadlock_detected: one side was chosen to lose, retry it */
        "57P01", /* admin_shutdown */
        "57P02", /* crash_shutdown */
        "57P03", /* cannot_connect_now: starting up or in recovery */
        "53300", /* too_many_connections */
        "25006", /* read_only_sql_transaction: a standby or a read-only primary; reconnect */
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(sqlstate, codes[i]) == 0) return true;
    return false;
}

bool hl_pg_transient(PGconn *c, const PGresult *res)
{
    if (c != NULL && PQstatus(c) == CONNECTION_BAD) return true;
    /* No result at all: libpq could not send or allocate; worth another try. */
    if (res == NULL) return true;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_FATAL_ERROR && st != PGRES_NONFATAL_ERROR) return false;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* libpq's own failures (lost connection, out of memory) carry no SQLSTATE. */
    if (state == NULL) return true;
    return hl_pg_sqlstate_transient(state);
}

bool hl_pg_read_only(const PGconn *c)
{
    if (c == NULL || PQstatus(c) != CONNECTION_OK) return false;
    const char *standby = PQparameterStatus(c, "in_hot_standby");
    const char *ro = PQparameterStatus(c, "default_transaction_read_only");
    return (standby && strcmp(standby, "on") == 0) || (ro && strcmp(ro, "on") == 0);
}

bool hl_pg_reconnect_needed(const PGconn *c, const PGresult *res)
{
    if (c == NULL || PQstatus(c) != CONNECTION_OK) return true;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "25006") == 0) return true;
    return hl_pg_read_only(c);
}
