/* The API's strict parsers that need no server: times and ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "request.h"

static void test_times(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(aud_parse_time("1700000000000000", &t), 0);
    assert_int_equal(t, INT64_C(1700000000000000));
    assert_int_equal(aud_parse_time("2023-11-14T22:13:20Z", &t), 0);
    assert_int_equal(t, INT64_C(1700000000000000));
    assert_int_equal(aud_parse_time("2023-11-14T22:13:20.5Z", &t), 0);
    assert_int_equal(t, INT64_C(1700000000500000));
    assert_int_equal(aud_parse_time("2023-11-14T22:13:20.000001Z", &t), 0);
    assert_int_equal(t, INT64_C(1700000000000001));
    const char *bad[] = {"",
                         "x",
                         "-5",
                         "+5",
                         "2023-11-14",
                         "2023-11-14T22:13:20",
                         "2023-11-14T22:13:20+01:00",
                         "2023-13-14T22:13:20Z",
                         "2023-11-14T25:13:20Z",
                         "2023-11-14T22:13:20.Z",
                         "2023-11-14T22:13:20.1234567Z",
                         "2023-11-14 22:13:20Z",
                         "99999999999999999999",
                         "2023-11-14T22:13:20ZZ",
                         "2023-1-14T22:13:20Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (aud_parse_time(bad[i], &t) == 0) fail_msg("accepted time '%s'", bad[i]);
}

static void test_ids(void **state)
{
    (void)state;
    assert_true(aud_id_valid("abc", 36));
    assert_false(aud_id_valid("", 36));
    assert_false(aud_id_valid("a\nb", 36));
    assert_false(aud_id_valid("a\x7f", 36));
    assert_false(aud_id_valid("0123456789012345678901234567890123456", 36));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
