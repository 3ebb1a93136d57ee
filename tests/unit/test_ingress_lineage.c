/* The ingress's lineage records byte for byte: the auditor hashes each record into its chain, so
 * the bytes written for a given request must never change unnoticed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hl/error.h"
#include "lineage.h"

#define SHA "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define RID "01890a5d-ac96-774b-bcce-b302099a8057"

/* The records of test_bytes, in order: accepted; rejected over the budget before, with a
 * source name past its cap; a split element refused (long ids, a UTF-8 character cut by the
 * cap, received_us 0, a negative latency); control bytes, invalid UTF-8, an empty event type. */
static const char *const expected[] = {
    /* 350 bytes */
    "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"01890a5d-ac96-774b-bcce-b302099a8057"
    "\",\"ts_us\":1700000000001000,\"source\":\"demo\",\"message_id\":\"m\\\"1\\n\303\251"
    "\\\\\",\"event_type\":\"a.b\",\"received_us\":1700000000000000,\"status\":202,\"erro"
    "r_code\":null,\"partition\":3,\"offset\":42,\"latency_us\":1000,\"body_sha256\":\"ba"
    "7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
    /* 252 bytes */
    "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"01890a5d-ac96-774b-bcce-b302099a8057"
    "\",\"ts_us\":2,\"source\":\"ssssssssssssssssssssssssssssssssssssssssssssssssssssssss"
    "ssssssss\",\"received_us\":1,\"status\":404,\"error_code\":\"unknown_source\",\"late"
    "ncy_us\":5,\"suppressed\":7}",
    /* 675 bytes */
    "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"01890a5d-ac96-774b-bcce-b302099a8057"
    "\",\"ts_us\":9,\"source\":\"batch\",\"message_id\":\"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
    "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
    "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
    "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm\\u00c3\",\"event_type\":\"e"
    "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
    "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\",\"received_us\":0,\"status\":400,\"err"
    "or_code\":\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\",\"par"
    "tition\":0,\"offset\":0,\"latency_us\":-3}",
    /* 358 bytes */
    "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"01890a5d-ac96-774b-bcce-b302099a8057"
    "\",\"ts_us\":6,\"source\":\"x\\u0001\\u00ff\\tq\",\"message_id\":\"\\u007f\",\"event"
    "_type\":\"\",\"received_us\":5,\"status\":503,\"error_code\":\"kafka_unavailable\","
    "\"partition\":5,\"latency_us\":0,\"suppressed\":9223372036854775807,\"body_sha256\""
    ":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}",
};

static void check(const ing_lineage_t *l, size_t i)
{
    char buf[ING_LINEAGE_MAX];
    int n = ing_lineage_format(l, buf, sizeof buf);
    if (n < 0 || (size_t)n != strlen(expected[i]) || memcmp(buf, expected[i], (size_t)n) != 0)
        fail_msg("record %zu differs:\n got  %.*s\n want %s", i, n < 0 ? 0 : n, buf, expected[i]);
    assert_int_equal(buf[n], '\0');
}

static void test_bytes(void **state)
{
    char longsrc[200], mid[300], et[140], code[80];
    memset(longsrc, 's', sizeof longsrc - 1);
    longsrc[sizeof longsrc - 1] = '\0';
    memset(mid, 'm', sizeof mid - 1);
    mid[sizeof mid - 1] = '\0';
    memcpy(mid + 255, "\xc3\xa9\xc3\xa9", 4);
    memset(et, 'e', sizeof et - 1);
    et[sizeof et - 1] = '\0';
    memset(code, 'c', sizeof code - 1);
    code[sizeof code - 1] = '\0';
    ing_lineage_t l[] = {
        {.request_id = RID,
         .source = "demo",
         .message_id = "m\"1\n\xc3\xa9\\",
         .event_type = "a.b",
         .received_us = 1700000000000000,
         .ts_us = 1700000000001000,
         .status = 202,
         .partition = 3,
         .offset = 42,
         .latency_us = 1000,
         .body_sha256 = SHA},
        {.request_id = RID,
         .source = longsrc,
         .received_us = 1,
         .ts_us = 2,
         .status = 404,
         .error_code = "unknown_source",
         .partition = -1,
         .offset = -1,
         .latency_us = 5,
         .suppressed = 7},
        {.request_id = RID,
         .source = "batch",
         .message_id = mid,
         .event_type = et,
         .received_us = 0,
         .ts_us = 9,
         .status = 400,
         .error_code = code,
         .partition = 0,
         .offset = 0,
         .latency_us = -3},
        {.request_id = RID,
         .source = "x\x01\xff\tq",
         .message_id = "\x7f",
         .event_type = "",
         .received_us = 5,
         .ts_us = 6,
         .status = 503,
         .error_code = "kafka_unavailable",
         .partition = 5,
         .offset = -1,
         .latency_us = 0,
         .suppressed = INT64_MAX,
         .body_sha256 = SHA},
    };
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++) check(&l[i], i);
}

/* A buffer too small for the record is refused whole, never cut. */
static void test_too_small(void **state)
{
    ing_lineage_t l = {.request_id = RID,
                       .source = "demo",
                       .ts_us = 1,
                       .status = 202,
                       .partition = -1,
                       .offset = -1};
    char buf[ING_LINEAGE_MAX];
    int n = ing_lineage_format(&l, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(ing_lineage_format(&l, buf, (size_t)n), HL_ETOOBIG);
    assert_int_equal(ing_lineage_format(&l, buf, (size_t)n + 1), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
