/* Strict lineage record validation: good records in, everything off-schema refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hl/lineage_record.h"

static int parse(const char *s, hl_lineage_rec_t *r)
{
    const char *why;
    return hl_lineage_parse(s, strlen(s), r, &why);
}

static void test_good(void **state)
{
    (void)state;
    hl_lineage_rec_t r;
    assert_int_equal(parse("{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"abc\",\"ts_us\":5,"
                           "\"source\":\"stripe\",\"status\":401,\"error_code\":\"bad_signature\","
                           "\"latency_us\":12,\"message_id\":\"m\\n1\"}",
                           &r),
                     0);
    assert_int_equal(r.stage, HL_STAGE_INGRESS);
    assert_string_equal(r.request_id, "abc");
    assert_int_equal(r.status, 401);
    assert_true(r.has_error_code);
    assert_string_equal(r.error_code, "bad_signature");
    assert_string_equal(r.message_id, "m\n1");
    assert_int_equal(r.offset, HL_LINEAGE_ABSENT);
    assert_int_equal(parse("{\"v\":1,\"stage\":\"persisted\",\"request_id\":\"a\",\"ts_us\":1,"
                           "\"row_id\":null,\"duplicate\":true,\"error_code\":null}",
                           &r),
                     0);
    assert_int_equal(r.duplicate, 1);
    assert_false(r.has_error_code);
    assert_string_equal(r.body_sha256, "");
    assert_int_equal(
        parse("{\"v\":1,\"stage\":\"persisted\",\"request_id\":\"a\",\"ts_us\":1,"
              "\"body_sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
              "f20015ad\"}",
              &r),
        0);
    assert_string_equal(r.body_sha256,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_bad(void **state)
{
    (void)state;
    hl_lineage_rec_t r;
    const char *bad[] = {
        "",
        "null",
        "[]",
        "{",
        "{\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1}",
        "{\"v\":2,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"nope\",\"request_id\":\"a\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\"}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":\"1\"}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":-1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\\nb\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"0123456789012345678901234567890123456\","
        "\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"extra\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"status\":1.5}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"duplicate\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"source\":null}",
        "{\"v\":1,\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\\u0000\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"\xff\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"body_sha256\":\"ab\"}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"body_sha256\":"
        "\"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\"}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"body_sha256\":null}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], &r) == 0) fail_msg("accepted bad record %zu: %s", i, bad[i]);
    }
    /* Over-long source (65 bytes) and over the record cap. */
    char big[HL_LINEAGE_READ_MAX + 64];
    const char *why;
    snprintf(
        big, sizeof big,
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"source\":\"%065d\"}", 0);
    assert_int_not_equal(parse(big, &r), 0);
    memset(big, ' ', sizeof big);
    assert_int_equal(hl_lineage_parse(big, sizeof big, &r, &why), HL_ETOOBIG);
    /* Embedded NUL inside the length. */
    assert_int_equal(hl_lineage_parse("{\"v\":1}\0x", 9, &r, &why), HL_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
