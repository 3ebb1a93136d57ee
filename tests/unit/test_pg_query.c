/* libs/pg's chunked queries (query.c): the text-array literal, and a statement run chunk by
 * chunk against the real server HL_TEST_PG_CONNINFO names (unset: the test fails rather than
 * pass having checked nothing). It creates nothing: the values go through unnest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hl/pg.h"

static void test_text_array(void **state)
{
    (void)state;
    const char *items[] = {"a", "b\"c", "d\\e", "", "f,g{}"};
    char *s = hl_pg_text_array(items, 5);
    assert_string_equal(s, "{\"a\",\"b\\\"c\",\"d\\\\e\",\"\",\"f,g{}\"}");
    free(s);
    s = hl_pg_text_array(NULL, 0);
    assert_string_equal(s, "{}");
    free(s);
}

typedef struct {
    size_t calls, rows, next_off;
    char seen[64][16];
} got_t;

/* Keeps every value the server gave back, checking the chunks come in order. */
static int keep(const PGresult *r, size_t off, size_t n, void *arg)
{
    got_t *g = arg;
    assert_int_equal(off, g->next_off);
    g->next_off = off + n;
    g->calls++;
    assert_int_equal(PQntuples(r), (int)n);
    for (int i = 0; i < PQntuples(r); i++) {
        assert_true(g->rows < 64);
        snprintf(g->seen[g->rows++], sizeof g->seen[0], "%s", PQgetvalue(r, i, 0));
    }
    return 0;
}

static int stop_at_second(const PGresult *r, size_t off, size_t n, void *arg)
{
    return ++*(int *)arg == 2 ? 42 : 0;
}

static PGconn *connect_or_fail(void)
{
    const char *conninfo = getenv("HL_TEST_PG_CONNINFO");
    if (conninfo == NULL || *conninfo == '\0')
        fail_msg("HL_TEST_PG_CONNINFO is not set: this test needs a Postgres (tests/run sets it)");
    hl_pg_config_t p = {.conninfo = (char *)conninfo, .connect_timeout_ms = 2000};
    char err[512] = "";
    PGconn *c = NULL;
    if (hl_pg_connect(&p, 5000, &c, err, sizeof err) != 0) fail_msg("connect: %s", err);
    return c;
}

static void test_chunked(void **state)
{
    (void)state;
    PGconn *c = connect_or_fail();
    const char *items[] = {"one", "t\"wo", "th\\ree", "four", "five", "six", "seven"};
    const char *prefix = "x-";
    /* The prefix parameter comes first, the chunk last ($2). */
    const hl_pg_chunked_t q = {"SELECT $1 || v FROM unnest($2::text[]) WITH ORDINALITY AS t(v, i)"
                               " ORDER BY i",
                               &prefix, 2, 3, "unit"};
    got_t g = {0};
    char err[512] = "";
    assert_int_equal(hl_pg_query_chunked(c, &q, items, 7, keep, &g, err, sizeof err), 0);
    assert_int_equal(g.calls, 3); /* 3 + 3 + 1 */
    assert_int_equal(g.rows, 7);
    for (size_t i = 0; i < 7; i++) {
        char want[16];
        snprintf(want, sizeof want, "x-%s", items[i]);
        assert_string_equal(g.seen[i], want);
    }
    /* No values: no statement. */
    memset(&g, 0, sizeof g);
    assert_int_equal(hl_pg_query_chunked(c, &q, items, 0, keep, &g, err, sizeof err), 0);
    assert_int_equal(g.calls, 0);
    /* The callback stops the walk with its own code. */
    int calls = 0;
    assert_int_equal(hl_pg_query_chunked(c, &q, items, 7, stop_at_second, &calls, err, sizeof err),
                     42);
    assert_int_equal(calls, 2);
    PQfinish(c);
}

static void test_chunked_errors(void **state)
{
    (void)state;
    PGconn *c = connect_or_fail();
    const char *items[] = {"1", "0"};
    char err[512] = "";
    got_t g = {0};
    const hl_pg_chunked_t bad = {"SELECT 1 / v::int FROM unnest($1::text[]) AS t(v)", NULL, 1, 1,
                                 "divide"};
    assert_int_equal(hl_pg_query_chunked(c, &bad, items, 2, keep, &g, err, sizeof err), HL_EPG);
    assert_string_equal(err, "divide: postgres [22012]: division by zero");
    assert_int_equal(g.calls, 1); /* the first chunk answered before the second failed */
    const hl_pg_chunked_t no_chunk = {"SELECT 1", NULL, 1, 0, "zero"};
    assert_int_equal(hl_pg_query_chunked(c, &no_chunk, items, 2, keep, &g, err, sizeof err),
                     HL_EINVAL);
    const hl_pg_chunked_t no_param = {"SELECT 1", NULL, 0, 5, "none"};
    assert_int_equal(hl_pg_query_chunked(c, &no_param, items, 2, keep, &g, err, sizeof err),
                     HL_EINVAL);
    PQfinish(c);
}

static void test_select(void **state)
{
    (void)state;
    PGconn *c = connect_or_fail();
    const char *p[1] = {"4"};
    char err[512] = "";
    PGresult *r = hl_pg_select(c, "SELECT 10 / $1::int", 1, p, "divide", err, sizeof err);
    assert_non_null(r);
    assert_string_equal(PQgetvalue(r, 0, 0), "2");
    PQclear(r);
    p[0] = "0";
    assert_null(hl_pg_select(c, "SELECT 10 / $1::int", 1, p, "divide", err, sizeof err));
    assert_string_equal(err, "divide: postgres [22012]: division by zero");
    /* A statement that answers without rows is not a select. */
    assert_null(hl_pg_select(c, "SET search_path TO public", 0, NULL, "set", err, sizeof err));
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_array),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_errors),
        cmocka_unit_test(test_select),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
