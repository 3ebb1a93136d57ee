/* Unit test of hl_pg_offsets_upsert against the real server HL_TEST_PG_CONNINFO names, on a
 * temporary consumer_offsets of the session (it shadows any permanent one, and goes with the
 * connection): offsets move forward only, lineage_offset never passes next_offset, and a
 * consumer without lineage leaves that column alone. Unset, the test fails rather than pass
 * having checked nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hl/pg.h"

static PGconn *connect_temp(void)
{
    const char *conninfo = getenv("HL_TEST_PG_CONNINFO");
    if (conninfo == NULL || *conninfo == '\0')
        fail_msg("HL_TEST_PG_CONNINFO is not set: this test needs a Postgres (tests/run sets it)");
    hl_pg_config_t p = {.conninfo = (char *)conninfo, .schema = "", .connect_timeout_ms = 2000};
    char err[512] = "";
    PGconn *c = NULL;
    if (hl_pg_connect(&p, 5000, &c, err, sizeof err) != 0) fail_msg("connect: %s", err);
    if (hl_pg_exec(c,
                   "CREATE TEMP TABLE consumer_offsets (consumer_group text, topic text,"
                   " kafka_partition int, next_offset bigint NOT NULL, lineage_offset bigint,"
                   " updated_at timestamptz NOT NULL DEFAULT now(),"
                   " PRIMARY KEY (consumer_group, topic, kafka_partition))",
                   err, sizeof err) != 0)
        fail_msg("temp table: %s", err);
    return c;
}

static void upsert(PGconn *c, const char *group, const int32_t *parts, const int64_t *next,
                   const int64_t *lineage, size_t n)
{
    PGresult *r = hl_pg_offsets_upsert(c, group, "t", parts, next, lineage, n);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("upsert: %s", PQresultErrorMessage(r));
    PQclear(r);
}

/* "next/lineage" of (group, "t", partition), lineage "-" when NULL. */
static void expect_row(PGconn *c, const char *group, int partition, const char *want)
{
    char part[12];
    snprintf(part, sizeof part, "%d", partition);
    const char *vals[2] = {group, part};
    PGresult *r = PQexecParams(c,
                               "SELECT next_offset || '/' || coalesce(lineage_offset::text, '-')"
                               " FROM consumer_offsets WHERE consumer_group = $1 AND topic = 't'"
                               " AND kafka_partition = $2::int",
                               2, NULL, vals, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), want);
    PQclear(r);
}

static void test_offsets_move_forward(void **state)
{
    PGconn *c = connect_temp();
    int32_t parts[2] = {0, 3};
    int64_t next[2] = {10, 5}, lin[2] = {4, 9}; /* 9 > 5: capped at next_offset */
    upsert(c, "g", parts, next, lin, 2);
    expect_row(c, "g", 0, "10/4");
    expect_row(c, "g", 3, "5/5");
    /* A late batch never moves a partition back; a later one moves it forward. */
    int64_t older[2] = {7, 8}, lin_old[2] = {2, 8};
    upsert(c, "g", parts, older, lin_old, 2);
    expect_row(c, "g", 0, "10/4");
    expect_row(c, "g", 3, "8/8");
    /* Without lineage (a consumer that does not track it) the column stays as it was. */
    int64_t later[1] = {12};
    upsert(c, "g", parts, later, NULL, 1);
    expect_row(c, "g", 0, "12/4");
    upsert(c, "other", parts, later, NULL, 1);
    expect_row(c, "other", 0, "12/-");
    /* A group name that is not UTF-8 is refused by the server, and nothing moves. */
    int64_t zero[1] = {0};
    PGresult *r = hl_pg_offsets_upsert(c, "g\xff", "t", parts, zero, NULL, 1);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22021");
    PQclear(r);
    expect_row(c, "g", 0, "12/4");
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets_move_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
