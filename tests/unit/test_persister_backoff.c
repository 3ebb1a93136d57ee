/* Unit tests for the persister's backoff: ceilings double from the base up to the cap without
 * overflow, and full jitter spreads delays over the whole window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

static void test_ceiling_doubles_then_caps(void **state)
{
    pst_backoff_t b;
    pst_backoff_init(&b, 100, 5000, 42);
    assert_int_equal(pst_backoff_ceiling(&b, 0), 100);
    assert_int_equal(pst_backoff_ceiling(&b, 1), 200);
    assert_int_equal(pst_backoff_ceiling(&b, 5), 3200);
    assert_int_equal(pst_backoff_ceiling(&b, 6), 5000);
    assert_int_equal(pst_backoff_ceiling(&b, 1000000), 5000);
    assert_int_equal(pst_backoff_ceiling(&b, UINT32_MAX), 5000);
}

static void test_odd_bounds(void **state)
{
    pst_backoff_t b;
    pst_backoff_init(&b, 0, 0, 1); /* base 0 becomes 1; cap below base becomes base */
    assert_int_equal(pst_backoff_ceiling(&b, 0), 1);
    assert_int_equal(pst_backoff_ceiling(&b, 40), 1);
    pst_backoff_init(&b, 3000000000u, UINT32_MAX, 1);
    assert_int_equal(pst_backoff_ceiling(&b, 1), UINT32_MAX);
    for (int i = 0; i < 100; i++) assert_true(pst_backoff_next(&b) <= UINT32_MAX);
}

static void test_full_jitter_spread(void **state)
{
    pst_backoff_t b;
    pst_backoff_init(&b, 100, 5000, 7);
    /* At the cap: every delay within [0, 5000], and the draws cover the whole window. */
    unsigned seen_low = 0, seen_high = 0;
    uint64_t sum = 0;
    const unsigned n = 20000;
    for (unsigned i = 0; i < n; i++) {
        b.attempt = 10;
        uint32_t d = pst_backoff_next(&b);
        assert_true(d <= 5000);
        if (d < 500) seen_low++;
        if (d > 4500) seen_high++;
        sum += d;
    }
    assert_true(seen_low > n / 20 && seen_high > n / 20);
    double mean = (double)sum / n;
    assert_true(mean > 2300 && mean < 2700);
}

static void test_attempts_advance_and_reset(void **state)
{
    pst_backoff_t b;
    pst_backoff_init(&b, 10, 1000, 3);
    for (uint32_t i = 0; i < 12; i++) {
        uint32_t ceil = pst_backoff_ceiling(&b, b.attempt);
        assert_true(pst_backoff_next(&b) <= ceil);
        assert_int_equal(b.attempt, i + 1);
    }
    pst_backoff_reset(&b);
    assert_int_equal(b.attempt, 0);
    assert_true(pst_backoff_next(&b) <= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_then_caps),
        cmocka_unit_test(test_odd_bounds),
        cmocka_unit_test(test_full_jitter_spread),
        cmocka_unit_test(test_attempts_advance_and_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
