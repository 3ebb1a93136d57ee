/* Unit tests for hl_pg's connection pool against the real server HL_TEST_PG_CONNINFO names:
 * reuse of healthy connections, the ones it must not keep, the wait when all are lent, and
 * the cancel at shutdown. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hl/pg.h"

static hl_pg_config_t cfg;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    const char *conninfo = getenv("HL_TEST_PG_CONNINFO");
    if (conninfo == NULL || *conninfo == '\0')
        fail_msg("HL_TEST_PG_CONNINFO is not set: this test needs a Postgres (tests/run sets it)");
    cfg = (hl_pg_config_t){.conninfo = (char *)conninfo, .connect_timeout_ms = 2000};
    return 0;
}

static void run_ok(PGconn *c, const char *sql)
{
    char err[256];
    if (hl_pg_exec(c, sql, err, sizeof err) != 0) fail_msg("%s: %s", sql, err);
}

/* Gives c back and borrows again; returns the connection lent, asserting whether it is the
 * same backend (kept) or a new one (closed). */
static PGconn *give_and_take(hl_pg_pool_t *p, PGconn *c, bool broken, bool kept)
{
    int pid = PQbackendPID(c);
    hl_pg_pool_put(p, c, broken);
    c = hl_pg_pool_get(p);
    assert_non_null(c);
    if ((PQbackendPID(c) == pid) != kept)
        fail_msg("backend %d %s, expected it %s", pid, kept ? "closed" : "kept",
                 kept ? "kept" : "closed");
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    return c;
}

/* A connection given back healthy is lent again; one given back broken, inside a transaction
 * or to a read-only server is closed and the next borrower gets a new backend. */
static void test_keeps_only_healthy(void **state)
{
    hl_pg_pool_t *p = hl_pg_pool_new(&cfg, 2);
    PGconn *c = hl_pg_pool_get(p);
    assert_non_null(c);
    c = give_and_take(p, c, false, true);
    c = give_and_take(p, c, true, false);
    run_ok(c, "BEGIN");
    c = give_and_take(p, c, false, false);
    run_ok(c, "SET default_transaction_read_only = on");
    c = give_and_take(p, c, false, false);
    hl_pg_pool_put(p, c, false);
    hl_pg_pool_free(p);
}

typedef struct {
    hl_pg_pool_t *p;
    PGconn *c;
    int delay_ms;
} give_back_t;

static void *give_back_later(void *arg)
{
    give_back_t *g = arg;
    usleep((useconds_t)g->delay_ms * 1000);
    hl_pg_pool_put(g->p, g->c, false);
    return NULL;
}

/* With every connection lent, a borrower waits for one to come back, and no longer than 5 s
 * when none does. */
static void test_waits_when_all_lent(void **state)
{
    hl_pg_pool_t *p = hl_pg_pool_new(&cfg, 1);
    PGconn *c = hl_pg_pool_get(p);
    assert_non_null(c);
    long long t0 = now_ms();
    assert_null(hl_pg_pool_get(p));
    long long waited = now_ms() - t0;
    if (waited < 4500 || waited > 8000) fail_msg("waited %lld ms, expected about 5000", waited);
    give_back_t g = {p, c, 300};
    pthread_t t;
    pthread_create(&t, NULL, give_back_later, &g);
    PGconn *again = hl_pg_pool_get(p);
    pthread_join(t, NULL);
    assert_ptr_equal(again, c);
    hl_pg_pool_put(p, again, false);
    hl_pg_pool_free(p);
}

/* A server that cannot be reached: NULL at once, and the slot is given back (a second try
 * does not wait for the first). */
static void test_unreachable_server(void **state)
{
    hl_pg_config_t bad = {.conninfo = "host=127.0.0.1 port=1 connect_timeout=1",
                          .connect_timeout_ms = 500};
    hl_pg_pool_t *p = hl_pg_pool_new(&bad, 1);
    long long t0 = now_ms();
    assert_null(hl_pg_pool_get(p));
    assert_null(hl_pg_pool_get(p));
    if (now_ms() - t0 > 3000) fail_msg("a failed connect kept its slot");
    hl_pg_pool_free(p);
}

typedef struct {
    PGconn *c;
    char sqlstate[8];
} sleeper_t;

static void *sleep_query(void *arg)
{
    sleeper_t *s = arg;
    PGresult *r = PQexec(s->c, "SELECT pg_sleep(30)");
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(s->sqlstate, sizeof s->sqlstate, "%s", st ? st : "none");
    PQclear(r);
    return NULL;
}

/* Close cancels what a lent connection runs on the server and lends nothing more. */
static void test_close_cancels_running_query(void **state)
{
    hl_pg_pool_t *p = hl_pg_pool_new(&cfg, 2);
    sleeper_t s = {hl_pg_pool_get(p), ""};
    assert_non_null(s.c);
    pthread_t t;
    long long t0 = now_ms();
    pthread_create(&t, NULL, sleep_query, &s);
    usleep(300 * 1000);
    hl_pg_pool_close(p);
    pthread_join(t, NULL);
    if (now_ms() - t0 > 10000) fail_msg("the query ran on after close");
    assert_string_equal(s.sqlstate, "57014"); /* query_canceled */
    assert_null(hl_pg_pool_get(p));
    hl_pg_pool_put(p, s.c, false);
    hl_pg_pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeps_only_healthy),
        cmocka_unit_test(test_waits_when_all_lent),
        cmocka_unit_test(test_unreachable_server),
        cmocka_unit_test(test_close_cancels_running_query),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
