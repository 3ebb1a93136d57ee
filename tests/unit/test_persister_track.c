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
static pst_ltrack_batch_t *batch(pst_ltrack_t *t, int32_t p, int64_t next, int records)
{
    pst_ltrack_batch_t *b = pst_ltrack_open(t);
    pst_ltrack_cover(t, b, p, next);
    for (int i = 0; i < records; i++) pst_ltrack_expect(b);
    pst_ltrack_close(t, b);
    return b;
}

static void test_unknown_until_set_or_delivered(void **state)
{
    pst_ltrack_t *t = pst_ltrack_new();
    assert_true(pst_ltrack_upto(t, 0) == -1);
    pst_ltrack_set(t, 0, 40);
    assert_true(pst_ltrack_upto(t, 0) == 40);
    pst_ltrack_batch_t *b = batch(t, 0, 50, 2);
    assert_true(pst_ltrack_upto(t, 0) == 40); /* nothing delivered yet */
    pst_ltrack_report(t, b, true);
    assert_true(pst_ltrack_upto(t, 0) == 40); /* one of two */
    pst_ltrack_report(t, b, true);
    assert_true(pst_ltrack_upto(t, 0) == 50);
    assert_int_equal(pst_ltrack_pending(t), 0);
    pst_ltrack_free(t);
    pst_ltrack_free(NULL);
}

static void test_later_batch_waits_for_earlier(void **state)
{
    pst_ltrack_t *t = pst_ltrack_new();
    pst_ltrack_set(t, 3, 0);
    pst_ltrack_batch_t *a = batch(t, 3, 10, 1);
    pst_ltrack_batch_t *b = batch(t, 3, 20, 1);
    pst_ltrack_report(t, b, true); /* reports arrive out of order across lineage partitions */
    assert_true(pst_ltrack_upto(t, 3) == 0);
    assert_int_equal(pst_ltrack_pending(t), 2);
    pst_ltrack_report(t, a, true);
    assert_true(pst_ltrack_upto(t, 3) == 20);
    assert_int_equal(pst_ltrack_pending(t), 0);
    pst_ltrack_free(t);
}

static void test_open_batch_does_not_retire(void **state)
{
    pst_ltrack_t *t = pst_ltrack_new();
    pst_ltrack_set(t, 1, 5);
    pst_ltrack_batch_t *b = pst_ltrack_open(t);
    pst_ltrack_cover(t, b, 1, 9);
    pst_ltrack_expect(b);
    pst_ltrack_report(t, b, true); /* delivered before the batch's last record was queued */
    assert_true(pst_ltrack_upto(t, 1) == 5);
    pst_ltrack_cover(t, b, 1, 12); /* a second cover keeps the higher value */
    pst_ltrack_cover(t, b, 1, 7);
    pst_ltrack_close(t, b);
    assert_true(pst_ltrack_upto(t, 1) == 12);
    /* A batch with nothing to report retires when closed. */
    b = pst_ltrack_open(t);
    pst_ltrack_cover(t, b, 1, 15);
    pst_ltrack_close(t, b);
    assert_true(pst_ltrack_upto(t, 1) == 15);
    pst_ltrack_free(t);
}

static void test_lost_record_holds_its_partitions_only(void **state)
{
    pst_ltrack_t *t = pst_ltrack_new();
    pst_ltrack_set(t, 0, 0);
    pst_ltrack_set(t, 1, 0);
    pst_ltrack_batch_t *a = pst_ltrack_open(t);
    pst_ltrack_cover(t, a, 0, 10);
    pst_ltrack_expect(a);
    pst_ltrack_close(t, a);
    pst_ltrack_report(t, a, false);
    assert_true(pst_ltrack_upto(t, 0) == 0);
    pst_ltrack_batch_t *b = pst_ltrack_open(t);
    pst_ltrack_cover(t, b, 0, 20);
    pst_ltrack_cover(t, b, 1, 30);
    pst_ltrack_expect(b);
    pst_ltrack_close(t, b);
    pst_ltrack_report(t, b, true);
    assert_true(pst_ltrack_upto(t, 0) == 0);  /* stuck below the lost record */
    assert_true(pst_ltrack_upto(t, 1) == 30); /* unaffected */
    /* A new assignment sets the mark from Postgres and lets it move again. */
    pst_ltrack_set(t, 0, 0);
    b = batch(t, 0, 40, 1);
    pst_ltrack_report(t, b, true);
    assert_true(pst_ltrack_upto(t, 0) == 40);
    pst_ltrack_free(t);
}

static void test_batches_before_set_do_not_count(void **state)
{
    pst_ltrack_t *t = pst_ltrack_new();
    pst_ltrack_set(t, 2, 100);
    pst_ltrack_batch_t *old = batch(t, 2, 150, 1);
    /* Revoked and assigned again before the old batch's report: the stored mark (100) is set,
     * and the records from 100 are recovered; the old report must not claim 150. */
    pst_ltrack_set(t, 2, 100);
    pst_ltrack_report(t, old, true);
    assert_true(pst_ltrack_upto(t, 2) == 100);
    /* Nor may an old failure hold the new assignment. */
    old = batch(t, 2, 160, 1);
    pst_ltrack_set(t, 2, 100);
    pst_ltrack_report(t, old, false);
    pst_ltrack_batch_t *b = batch(t, 2, 170, 1);
    pst_ltrack_report(t, b, true);
    assert_true(pst_ltrack_upto(t, 2) == 170);
    pst_ltrack_free(t);
}

static void test_many_partitions_and_pending_freed(void **state)
{
    pst_ltrack_t *t = pst_ltrack_new();
    pst_ltrack_batch_t *b = pst_ltrack_open(t);
    for (int32_t p = 0; p < 40; p++) {
        pst_ltrack_set(t, p, p);
        pst_ltrack_cover(t, b, p, 1000 + p); /* past the inline cover slots */
    }
    pst_ltrack_expect(b);
    pst_ltrack_close(t, b);
    pst_ltrack_report(t, b, true);
    for (int32_t p = 0; p < 40; p++) assert_true(pst_ltrack_upto(t, p) == 1000 + p);
    /* Batches never delivered are freed with the tracker (ASan checks). */
    for (int i = 0; i < 5; i++) (void)batch(t, 1, 2000 + i, 3);
    assert_int_equal(pst_ltrack_pending(t), 5);
    pst_ltrack_free(t);
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
