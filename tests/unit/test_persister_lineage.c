/* The persister's lineage records byte for byte: the auditor hashes each record into its chain,
 * so the bytes written for a given row must never change unnoticed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hl/error.h"
#include "lineage.h"

#define SHA "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define RID "0190f5a2-7b3c-7def-8a12-3456789abcde"

/* The records of test_bytes, in order: stored; a duplicate; recovered after a restart (no
 * request id, consumption or receipt time, no digest); dead-lettered with escapes; extreme
 * integers; negative times, which are left out like unknown ones. */
static const char *const expected[] = {
    /* 341 bytes */
    "{\"v\":1,\"stage\":\"persisted\",\"request_id\":\"0190f5a2-7b3c-7def-8a12-3456789abc"
    "de\",\"ts_us\":300,\"source\":\"stripe\",\"message_id\":\"m\\\"1\303\251\",\"event_t"
    "ype\":\"paid\",\"received_us\":50,\"partition\":2,\"offset\":77,\"consumed_us\":100,"
    "\"committed_us\":200,\"row_id\":9,\"duplicate\":false,\"body_sha256\":\"ba7816bf8f01"
    "cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
    /* 343 bytes */
    "{\"v\":1,\"stage\":\"persisted\",\"request_id\":\"0190f5a2-7b3c-7def-8a12-3456789abc"
    "de\",\"ts_us\":301,\"source\":\"stripe\",\"message_id\":\"m\\\"1\303\251\",\"event_t"
    "ype\":\"paid\",\"received_us\":50,\"partition\":2,\"offset\":77,\"consumed_us\":100,"
    "\"committed_us\":201,\"row_id\":null,\"duplicate\":true,\"body_sha256\":\"ba7816bf8f"
    "01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
    /* 172 bytes */
    "{\"v\":1,\"stage\":\"persisted\",\"request_id\":\"\",\"ts_us\":1,\"source\":\"s\",\""
    "message_id\":\"m1\",\"event_type\":\"t\",\"partition\":0,\"offset\":5,\"committed_us"
    "\":2,\"row_id\":3,\"duplicate\":false}",
    /* 343 bytes */
    "{\"v\":1,\"stage\":\"dead_lettered\",\"request_id\":\"0190f5a2-7b3c-7def-8a12-345678"
    "9abcde\",\"ts_us\":10,\"source\":\"gh\",\"message_id\":\"a\\u0001\\\\b\\u00ff\\n\","
    "\"event_type\":\"push\\t\",\"received_us\":6,\"partition\":1,\"offset\":8,\"consumed"
    "_us\":7,\"error_code\":\"invalid_json\",\"attempts\":3,\"body_sha256\":\"ba7816bf8f0"
    "1cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
    /* 199 bytes */
    "{\"v\":1,\"stage\":\"dead_lettered\",\"request_id\":\"\",\"ts_us\":92233720368547758"
    "07,\"source\":\"\",\"message_id\":\"\",\"event_type\":\"\",\"partition\":-2147483648"
    ",\"offset\":9223372036854775807,\"error_code\":\"pg_rejected\"}",
    /* 164 bytes */
    "{\"v\":1,\"stage\":\"dead_lettered\",\"request_id\":\"\",\"ts_us\":0,\"source\":\"\""
    ",\"message_id\":\"\",\"event_type\":\"\",\"partition\":-1,\"offset\":-2,\"error_code"
    "\":\"body_digest_mismatch\"}",
};

/* One row's outcome and the arguments it is formatted with. */
typedef struct {
    pst_row_t row;
    int64_t ts_us, committed_us;
    int attempts;
} case_t;

static void check(const case_t *c, size_t i)
{
    char buf[PST_LINEAGE_MAX];
    int n = pst_lineage_format(buf, sizeof buf, &c->row, c->ts_us, c->committed_us, c->attempts);
    if (n < 0 || (size_t)n != strlen(expected[i]) || memcmp(buf, expected[i], (size_t)n) != 0)
        fail_msg("record %zu differs:\n got  %.*s\n want %s", i, n < 0 ? 0 : n, buf, expected[i]);
    assert_int_equal(buf[n], '\0');
}

static void test_bytes(void **state)
{
    static const case_t cases[] = {
        {{.request_id = RID,
          .source = "stripe",
          .message_id = "m\"1\xc3\xa9",
          .event_type = "paid",
          .partition = 2,
          .offset = 77,
          .received_us = 50,
          .consumed_us = 100,
          .row_id = 9,
          .body_sha256 = SHA},
         300,
         200,
         1},
        {{.request_id = RID,
          .source = "stripe",
          .message_id = "m\"1\xc3\xa9",
          .event_type = "paid",
          .partition = 2,
          .offset = 77,
          .received_us = 50,
          .consumed_us = 100,
          .row_id = -1,
          .duplicate = 1,
          .body_sha256 = SHA},
         301,
         201,
         0},
        {{.source = "s", .message_id = "m1", .event_type = "t", .offset = 5, .row_id = 3}, 1, 2, 0},
        {{.request_id = RID,
          .source = "gh",
          .message_id = "a\x01\\b\xff\n",
          .event_type = "push\t",
          .status = PST_REC_INVALID_JSON,
          .partition = 1,
          .offset = 8,
          .consumed_us = 7,
          .received_us = 6,
          .body_sha256 = SHA},
         10,
         0,
         3},
        {{.status = PST_REC_PG_REJECTED, .partition = INT32_MIN, .offset = INT64_MAX},
         INT64_MAX,
         0,
         0},
        {{.status = PST_REC_BODY_DIGEST,
          .partition = -1,
          .offset = -2,
          .received_us = -5,
          .consumed_us = -1},
         0,
         0,
         -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check(&cases[i], i);
}

/* A buffer too small for the record is refused whole, never cut. */
static void test_too_small(void **state)
{
    pst_row_t r = {.request_id = RID, .source = "s", .message_id = "m\"", .event_type = "t"};
    char buf[PST_LINEAGE_MAX];
    int n = pst_lineage_format(buf, sizeof buf, &r, 1, 1, 1);
    assert_true(n > 0);
    assert_int_equal(pst_lineage_format(buf, (size_t)n, &r, 1, 1, 1), HL_ETOOBIG);
    assert_int_equal(pst_lineage_format(buf, (size_t)n + 1, &r, 1, 1, 1), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
