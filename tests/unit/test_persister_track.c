/* Unit tests for the persister's lineage watermark: a partition's mark moves only when every
 * batch up to it had all its lineage delivered, in commit order, never backwards, and a lost
 * record holds its partitions (not the others) until the mark is set again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lineage_track.h"

/* A closed batch covering one partition up to next, with `records` reports awaited. */
static hl_ltrack_batch_t *batch(hl_ltrack_t *t, int32_t p, int64_t next, int records)
{
    hl_ltrack_batch_t *b = hl_ltrack_open(t);
    hl_ltrack_cover(t, b, p, next);
    for (int i = 0; i < records; i++) hl_ltrack_expect(b);
    hl_ltrack_close(t, b);
    return b;
}

static void test_unknown_until_set_or_delivered(void **state)
{
    hl_ltrack_t *t = hl_ltrack_new();
    assert_true(hl_ltrack_upto(t, 0) == -1);
    hl_ltrack_set(t, 0, 40);
    assert_true(hl_ltrack_upto(t, 0) == 40);
    hl_ltrack_batch_t *b = batch(t, 0, 50, 2);
    assert_true(hl_ltrack_upto(t, 0) == 40); /* nothing delivered yet */
    hl_ltrack_report(t, b, true);
    assert_true(hl_ltrack_upto(t, 0) == 40); /* one of two */
    hl_ltrack_report(t, b, true);
    assert_true(hl_ltrack_upto(t, 0) == 50);
    assert_int_equal(hl_ltrack_pending(t), 0);
    hl_ltrack_free(t);
    hl_ltrack_free(NULL);
}

static void test_later_batch_waits_for_earlier(void **state)
{
    hl_ltrack_t *t = hl_ltrack_new();
    hl_ltrack_set(t, 3, 0);
    hl_ltrack_batch_t *a = batch(t, 3, 10, 1);
    hl_ltrack_batch_t *b = batch(t, 3, 20, 1);
    hl_ltrack_report(t, b, true); /* reports arrive out of order across lineage partitions */
    assert_true(hl_ltrack_upto(t, 3) == 0);
    assert_int_equal(hl_ltrack_pending(t), 2);
    hl_ltrack_report(t, a, true);
    assert_true(hl_ltrack_upto(t, 3) == 20);
    assert_int_equal(hl_ltrack_pending(t), 0);
    hl_ltrack_free(t);
}

static void test_open_batch_does_not_retire(void **state)
{
    hl_ltrack_t *t = hl_ltrack_new();
    hl_ltrack_set(t, 1, 5);
    hl_ltrack_batch_t *b = hl_ltrack_open(t);
    hl_ltrack_cover(t, b, 1, 9);
    hl_ltrack_expect(b);
    hl_ltrack_report(t, b, true); /* delivered before the batch's last record was queued */
    assert_true(hl_ltrack_upto(t, 1) == 5);
    hl_ltrack_cover(t, b, 1, 12); /* a second cover keeps the higher value */
    hl_ltrack_cover(t, b, 1, 7);
    hl_ltrack_close(t, b);
    assert_true(hl_ltrack_upto(t, 1) == 12);
    /* A batch with nothing to report retires when closed. */
    b = hl_ltrack_open(t);
    hl_ltrack_cover(t, b, 1, 15);
    hl_ltrack_close(t, b);
    assert_true(hl_ltrack_upto(t, 1) == 15);
    hl_ltrack_free(t);
}

static void test_lost_record_holds_its_partitions_only(void **state)
{
    hl_ltrack_t *t = hl_ltrack_new();
    hl_ltrack_set(t, 0, 0);
    hl_ltrack_set(t, 1, 0);
    hl_ltrack_batch_t *a = hl_ltrack_open(t);
    hl_ltrack_cover(t, a, 0, 10);
    hl_ltrack_expect(a);
    hl_ltrack_close(t, a);
    hl_ltrack_report(t, a, false);
    assert_true(hl_ltrack_upto(t, 0) == 0);
    hl_ltrack_batch_t *b = hl_ltrack_open(t);
    hl_ltrack_cover(t, b, 0, 20);
    hl_ltrack_cover(t, b, 1, 30);
    hl_ltrack_expect(b);
    hl_ltrack_close(t, b);
    hl_ltrack_report(t, b, true);
    assert_true(hl_ltrack_upto(t, 0) == 0);  /* stuck below the lost record */
    assert_true(hl_ltrack_upto(t, 1) == 30); /* unaffected */
    /* A new assignment sets the mark from Postgres and lets it move again. */
    hl_ltrack_set(t, 0, 0);
    b = batch(t, 0, 40, 1);
    hl_ltrack_report(t, b, true);
    assert_true(hl_ltrack_upto(t, 0) == 40);
    hl_ltrack_free(t);
}

static void test_batches_before_set_do_not_count(void **state)
{
    hl_ltrack_t *t = hl_ltrack_new();
    hl_ltrack_set(t, 2, 100);
    hl_ltrack_batch_t *old = batch(t, 2, 150, 1);
    /* Revoked and assigned again before the old batch's report: the stored mark (100) is set,
     * and the records from 100 are recovered; the old report must not claim 150. */
    hl_ltrack_set(t, 2, 100);
    hl_ltrack_report(t, old, true);
    assert_true(hl_ltrack_upto(t, 2) == 100);
    /* Nor may an old failure hold the new assignment. */
    old = batch(t, 2, 160, 1);
    hl_ltrack_set(t, 2, 100);
    hl_ltrack_report(t, old, false);
    hl_ltrack_batch_t *b = batch(t, 2, 170, 1);
    hl_ltrack_report(t, b, true);
    assert_true(hl_ltrack_upto(t, 2) == 170);
    hl_ltrack_free(t);
}

static void test_many_partitions_and_pending_freed(void **state)
{
    hl_ltrack_t *t = hl_ltrack_new();
    hl_ltrack_batch_t *b = hl_ltrack_open(t);
    for (int32_t p = 0; p < 40; p++) {
        hl_ltrack_set(t, p, p);
        hl_ltrack_cover(t, b, p, 1000 + p); /* past the inline cover slots */
    }
    hl_ltrack_expect(b);
    hl_ltrack_close(t, b);
    hl_ltrack_report(t, b, true);
    for (int32_t p = 0; p < 40; p++) assert_true(hl_ltrack_upto(t, p) == 1000 + p);
    /* Batches never delivered are freed with the tracker (ASan checks). */
    for (int i = 0; i < 5; i++) (void)batch(t, 1, 2000 + i, 3);
    assert_int_equal(hl_ltrack_pending(t), 5);
    hl_ltrack_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_until_set_or_delivered),
        cmocka_unit_test(test_later_batch_waits_for_earlier),
        cmocka_unit_test(test_open_batch_does_not_retire),
        cmocka_unit_test(test_lost_record_holds_its_partitions_only),
        cmocka_unit_test(test_batches_before_set_do_not_count),
        cmocka_unit_test(test_many_partitions_and_pending_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
