/* Unit tests for hl_pg that need no server: the transient/permanent classification and
 * connects that must fail within their deadline with a clear message and no password. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hl/pg.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Binds 127.0.0.1:0 and returns the socket; *port receives the kernel's choice. */
static int bind_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_sqlstate_table(void **state)
{
    static const struct {
        const char *code;
        bool transient;
    } table[] = {
        {"40001", true},  {"40P01", true},   {"57P01", true},  {"57P02", true},  {"57P03", true},
        {"53300", true},  {"08000", true},   {"08003", true},  {"08006", true},  {"08001", true},
        {"08P01", true},  {"23505", false},  {"23502", false}, {"22P02", false}, {"42P01", false},
        {"42601", false}, {"42501", false},  {"53100", false}, {"57014", false}, {"XX000", false},
        {"0800", false},  {"080000", false}, {"", false},      {"40002", false}, {"25006", true},
        {"25001", false}, {"25P02", false},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (hl_pg_sqlstate_transient(table[i].code) != table[i].transient)
            fail_msg("SQLSTATE '%s' should be %s", table[i].code,
                     table[i].transient ? "transient" : "permanent");
    }
    assert_false(hl_pg_sqlstate_transient(NULL));
}

static void test_transient_results(void **state)
{
    /* No result at all: libpq could not even send. */
    assert_true(hl_pg_transient(NULL, NULL));
    /* A failure made by libpq itself carries no SQLSTATE (lost connection). */
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
    assert_non_null(r);
    assert_true(hl_pg_transient(NULL, r));
    PQclear(r);
    r = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    assert_false(hl_pg_transient(NULL, r));
    PQclear(r);
    r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_false(hl_pg_transient(NULL, r));
    PQclear(r);
}

static void test_connect_refused_within_deadline(void **state)
{
    int port = 0;
    int fd = bind_any(&port);
    close(fd); /* nothing listens there now */
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d dbname=hookline user=hookline password=hunter2", port);
    hl_pg_config_t p = {.conninfo = conninfo, .schema = "public", .connect_timeout_ms = 500};
    char err[512] = "";
    PGconn *c = (PGconn *)1;
    long long t0 = now_ms();
    assert_int_equal(hl_pg_connect(&p, 1200, &c, err, sizeof err), HL_ETIMEDOUT);
    long long took = now_ms() - t0;
    assert_null(c);
    assert_true(took >= 1000);
    assert_true(took < 2500);
    assert_non_null(strstr(err, "refused"));
    assert_non_null(strstr(err, "attempts")); /* it retried */
    assert_null(strstr(err, "hunter2"));
    assert_null(strchr(err, '\n'));

    /* deadline 0: exactly one try, no waiting, HL_EPG. */
    t0 = now_ms();
    assert_int_equal(hl_pg_connect(&p, 0, &c, err, sizeof err), HL_EPG);
    assert_true(now_ms() - t0 < 500);
    assert_non_null(strstr(err, "after 1 attempt "));
    assert_null(strstr(err, "hunter2"));
}

static void test_connect_silent_server_times_out(void **state)
{
    /* A listener that never accepts: TCP connects, the startup packet is never answered, so
     * only our per-attempt and overall clocks end the wait. */
    int port = 0;
    int fd = bind_any(&port);
    assert_int_equal(listen(fd, 16), 0);
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d sslmode=disable", port);
    hl_pg_config_t p = {.conninfo = conninfo, .connect_timeout_ms = 300};
    char err[512] = "";
    PGconn *c = NULL;
    long long t0 = now_ms();
    assert_int_equal(hl_pg_connect(&p, 1000, &c, err, sizeof err), HL_ETIMEDOUT);
    long long took = now_ms() - t0;
    assert_true(took >= 900);
    assert_true(took < 2000);
    assert_non_null(strstr(err, "timed out"));
    close(fd);
}

static void test_bad_conninfo(void **state)
{
    hl_pg_config_t p = {.conninfo = "host=127.0.0.1 bogus_option=1 password=hunter2"};
    char err[512] = "";
    PGconn *c = NULL;
    long long t0 = now_ms();
    assert_int_equal(hl_pg_connect(&p, 5000, &c, err, sizeof err), HL_EPG);
    assert_true(now_ms() - t0 < 200); /* never retried */
    assert_non_null(strstr(err, "bogus_option"));
    assert_null(strstr(err, "hunter2"));
}

static void test_exec_on_broken_connection(void **state)
{
    int port = 0;
    int fd = bind_any(&port);
    close(fd);
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d connect_timeout=1", port);
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    char err[512] = "";
    assert_int_equal(hl_pg_exec(c, "SELECT 1", err, sizeof err), HL_EPG);
    assert_true(strlen(err) > 10);
    assert_true(hl_pg_transient(c, NULL));
    /* The connection's own message, on one line, named; without any connection, says so. */
    assert_int_equal(hl_pg_error(c, NULL, "connect", err, sizeof err), HL_EPG);
    assert_true(strncmp(err, "connect: postgres [client]: ", 28) == 0 && strlen(err) > 30);
    assert_null(strchr(err, '\n'));
    assert_int_equal(hl_pg_error(NULL, NULL, "read", err, sizeof err), HL_EPG);
    assert_string_equal(err, "read: postgres [client]: no connection");
    PQfinish(c);
}

/* Against the real server HL_TEST_PG_CONNINFO names (for example
 * "host=127.0.0.1 port=55432 dbname=hookline user=hookline" with the local stack up; tests/run
 * sets it). Unset, the test fails rather than pass having checked nothing. It creates nothing:
 * search_path may name a schema that does not exist. */
static void test_real_server(void **state)
{
    const char *conninfo = getenv("HL_TEST_PG_CONNINFO");
    if (conninfo == NULL || *conninfo == '\0')
        fail_msg("HL_TEST_PG_CONNINFO is not set: this test needs a Postgres (tests/run sets it)");
    hl_pg_config_t p = {.conninfo = (char *)conninfo,
                        .schema = "unit \"we'ird\"; DROP",
                        .connect_timeout_ms = 2000};
    char err[512] = "";
    PGconn *c = NULL;
    if (hl_pg_connect(&p, 5000, &c, err, sizeof err) != 0) fail_msg("connect: %s", err);
    PGresult *r = PQexec(c, "SHOW search_path");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "\"unit \"\"we'ird\"\"; DROP\"");
    PQclear(r);
    assert_int_equal(hl_pg_exec(c, "SELECT 1", err, sizeof err), 0);
    assert_int_equal(hl_pg_exec(c, "SELECT 1/0", err, sizeof err), HL_EPG);
    assert_string_equal(err, "postgres [22012]: division by zero");
    r = PQexec(c, "SELECT 1/0");
    assert_int_equal(hl_pg_error(c, r, "totals", err, sizeof err), HL_EPG);
    assert_string_equal(err, "totals: postgres [22012]: division by zero");
    assert_false(hl_pg_transient(c, r)); /* a data error fails the same way again */
    assert_false(hl_pg_reconnect_needed(c, r));
    PQclear(r);
    /* A read-only session, as on a standby or a demoted primary: the write is refused with
     * 25006 (creating nothing), and both the result and the server's report say reconnect. */
    assert_false(hl_pg_read_only(c));
    assert_int_equal(hl_pg_exec(c, "SET default_transaction_read_only = on", err, sizeof err), 0);
    assert_true(hl_pg_read_only(c));
    r = PQexec(c, "CREATE TABLE hl_unit_never_created (a int)");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "25006");
    assert_true(hl_pg_transient(c, r));
    assert_true(hl_pg_reconnect_needed(c, r));
    PQclear(r);
    assert_int_equal(hl_pg_exec(c, "SET default_transaction_read_only = off", err, sizeof err), 0);
    assert_false(hl_pg_reconnect_needed(c, NULL));
    r = PQexec(c, "SELECT pg_terminate_backend(pg_backend_pid())");
    PQclear(r);
    r = PQexec(c, "SELECT 1");
    assert_true(hl_pg_transient(c, r)); /* the connection is gone: worth a retry */
    assert_true(hl_pg_reconnect_needed(c, r));
    PQclear(r);
    PQfinish(c);
}

/* One silent listener per host; returns the time one attempt (deadline 0) took, in ms. */
static long long one_attempt_ms(int hosts, int *fds)
{
    char conninfo[256], hostlist[128] = "", ports[128] = "";
    for (int i = 0; i < hosts; i++) {
        int port = 0;
        fds[i] = bind_any(&port);
        assert_int_equal(listen(fds[i], 16), 0);
        size_t hl = strlen(hostlist), pl = strlen(ports);
        snprintf(hostlist + hl, sizeof hostlist - hl, "%s127.0.0.1", i ? "," : "");
        snprintf(ports + pl, sizeof ports - pl, "%s%d", i ? "," : "", port);
    }
    snprintf(conninfo, sizeof conninfo, "host=%s port=%s sslmode=disable", hostlist, ports);
    hl_pg_config_t p = {.conninfo = conninfo, .connect_timeout_ms = 300};
    char err[512] = "";
    PGconn *c = NULL;
    long long t0 = now_ms();
    assert_int_equal(hl_pg_connect(&p, 0, &c, err, sizeof err), HL_ETIMEDOUT);
    long long took = now_ms() - t0;
    for (int i = 0; i < hosts; i++) close(fds[i]);
    return took;
}

/* A multi-host conninfo (failover: libpq walks the list within one attempt) gives each host
 * the whole connect_timeout_ms, so a dead first host cannot use up the attempt of the
 * second: one attempt over three silent hosts lasts about three times one over one host. */
static void test_multi_host_attempt_covers_every_host(void **state)
{
    int fds[3];
    long long one = one_attempt_ms(1, fds);
    long long three = one_attempt_ms(3, fds);
    if (three < 2 * one) fail_msg("3 hosts: %lld ms, 1 host: %lld ms", three, one);
}

static void test_reconnect_needed_without_connection(void **state)
{
    assert_true(hl_pg_reconnect_needed(NULL, NULL));
    assert_false(hl_pg_read_only(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlstate_table),
        cmocka_unit_test(test_transient_results),
        cmocka_unit_test(test_connect_refused_within_deadline),
        cmocka_unit_test(test_connect_silent_server_times_out),
        cmocka_unit_test(test_bad_conninfo),
        cmocka_unit_test(test_exec_on_broken_connection),
        cmocka_unit_test(test_real_server),
        cmocka_unit_test(test_multi_host_attempt_covers_every_host),
        cmocka_unit_test(test_reconnect_needed_without_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
