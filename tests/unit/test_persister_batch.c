/* Unit tests for the persister's batch pieces: the (message id, partition, offset) order, the
 * binary array parameters sent to Postgres, and the lineage JSON of each outcome. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "batch_writer_impl.h"

#include "lineage.h"

static void set_row(pst_row_t *r, const char *mid, int32_t part, int64_t off)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->message_id, sizeof(r->message_id), "%s", mid);
    r->message_id_len = strlen(mid);
    r->partition = part;
    r->offset = off;
}

static void test_sort_by_key_then_offset(void **state)
{
    pst_row_t rows[7];
    set_row(&rows[0], "b", 1, 9);
    set_row(&rows[1], "a", 2, 5);
    set_row(&rows[2], "b", 1, 3);
    set_row(&rows[3], "ab", 0, 1);
    set_row(&rows[4], "a", 2, 4);
    set_row(&rows[5], "b", 0, 7); /* same key on another partition (after a repartition) */
    set_row(&rows[6], "", 3, 0);
    pst_row_t *p[7];
    for (int i = 0; i < 7; i++) p[i] = &rows[i];
    pst_rows_sort(p, 7);
    const char *want_key[] = {"", "a", "a", "ab", "b", "b", "b"};
    int64_t want_off[] = {0, 4, 5, 1, 7, 3, 9};
    for (int i = 0; i < 7; i++) {
        assert_string_equal(p[i]->message_id, want_key[i]);
        assert_true(p[i]->offset == want_off[i]);
    }
    pst_rows_sort(p, 0); /* no-op */
}

static void test_sort_many_keeps_offsets_ascending(void **state)
{
    enum { N = 5000 };
    pst_row_t *rows = calloc(N, sizeof(*rows));
    pst_row_t **p = calloc(N, sizeof(*p));
    unsigned x = 12345;
    for (int i = 0; i < N; i++) {
        char k[16];
        x = x * 1103515245u + 12345u;
        snprintf(k, sizeof(k), "k%u", (x >> 16) % 97);
        set_row(&rows[i], k, 0, N - i); /* offsets descending on input */
        p[i] = &rows[i];
    }
    pst_rows_sort(p, N);
    for (int i = 1; i < N; i++) {
        int c = strcmp(p[i - 1]->message_id, p[i]->message_id);
        assert_true(c < 0 || (c == 0 && p[i - 1]->offset < p[i]->offset));
    }
    free(rows);
    free(p);
}

static void test_batch_duplicates_first_wins(void **state)
{
    pst_row_t rows[6];
    set_row(&rows[0], "m1", 0, 1);
    set_row(&rows[1], "m1", 0, 2);
    set_row(&rows[2], "m1", 0, 3);
    set_row(&rows[3], "m2", 1, 4);
    set_row(&rows[4], "m1", 0, 5);
    set_row(&rows[5], "m2", 1, 6);
    const char *types[] = {"a", "b", "a", "a", "a", "a"};
    for (int i = 0; i < 6; i++) {
        snprintf(rows[i].source, sizeof(rows[i].source), "s");
        snprintf(rows[i].event_type, sizeof(rows[i].event_type), "%s", types[i]);
    }
    rows[2].status = PST_REC_INVALID_JSON; /* a poison copy hides nothing */
    pst_row_t *p[6];
    for (int i = 0; i < 6; i++) p[i] = &rows[i];
    pst_rows_sort(p, 6);
    pst_rows_mark_batch_duplicates(p, 6);
    int want[6] = {0, 0, 0, 0, 1, 1}; /* by original index */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(rows[i].dup_in_batch, want[i]);
        if (want[i]) assert_true(rows[i].duplicate == 1 && rows[i].row_id == -1);
    }
    /* Once the first copy is refused, the next one is the first delivery. */
    rows[0].status = PST_REC_PG_REJECTED;
    pst_rows_mark_batch_duplicates(p, 6);
    assert_int_equal(rows[4].dup_in_batch, 0);
    assert_int_equal(rows[5].dup_in_batch, 1);
    /* Same key from another source is another event. */
    snprintf(rows[5].source, sizeof(rows[5].source), "t");
    pst_rows_mark_batch_duplicates(p, 6);
    assert_int_equal(rows[5].dup_in_batch, 0);
}

static uint32_t rd32(const char *p)
{
    return hl_pg_get32(p);
}

static int64_t fixed_lineage(void *arg, int32_t partition)
{
    (void)arg;
    return partition == 3 ? 7 : -1;
}

static void test_binary_arrays(void **state)
{
    pst_batch_writer_t *bw = pst_bw_new(NULL, "g", "t", 4);
    pst_row_t rows[2];
    set_row(&rows[0], "m1", 3, 10);
    set_row(&rows[1], "m2", 3, 11);
    for (int i = 0; i < 2; i++) {
        snprintf(rows[i].source, sizeof(rows[i].source), "stripe");
        snprintf(rows[i].event_type, sizeof(rows[i].event_type), "paid");
        snprintf(rows[i].request_id, sizeof(rows[i].request_id),
                 "0190f5a2-7b3c-7def-8a12-3456789abcd%d", i);
        rows[i].received_us = HL_PG_EPOCH_US + 5;
        rows[i].payload = "{}";
        rows[i].payload_len = 2;
    }
    pst_row_t *p[2] = {&rows[0], &rows[1]};
    pst_bw_encode_rows(bw, p, 2);
    /* text[] header: ndim 1, no nulls, oid 25, 2 elements from 1 */
    const char *t = bw->col[1].p;
    assert_int_equal(rd32(t), 1);
    assert_int_equal(rd32(t + 4), 0);
    assert_int_equal(rd32(t + 8), HL_PG_OID_TEXT);
    assert_int_equal(rd32(t + 12), 2);
    assert_int_equal(rd32(t + 16), 1);
    assert_int_equal(rd32(t + 20), 2);
    assert_memory_equal(t + 24, "m1", 2);
    assert_int_equal(bw->col[1].len, 20 + 2 * (4 + 2));
    /* uuid[]: 16 bytes per element, parsed from the text */
    const unsigned char *u = (const unsigned char *)bw->col[3].p + 20;
    assert_int_equal(rd32((const char *)u), 16);
    assert_int_equal(u[4], 0x01);
    assert_int_equal(u[5], 0x90);
    assert_int_equal(u[19], 0xd0);
    /* timestamptz[]: microseconds since 2000-01-01 */
    assert_true(hl_pg_get64(bw->col[4].p + 24) == 5);
    /* jsonb[]: version byte 1, then the text */
    const char *j = bw->col[7].p + 20;
    assert_int_equal(rd32(j), 3);
    assert_int_equal(j[4], 1);
    assert_memory_equal(j + 5, "{}", 2);
    /* offsets: one partition, next = highest + 1 */
    pst_bw_encode_offsets(bw, p, 2);
    assert_int_equal(rd32(bw->parts.p + 12), 1);
    assert_int_equal(rd32(bw->parts.p + 24), 3);
    assert_true(hl_pg_get64(bw->nexts.p + 24) == 12);
    /* lineage offsets: without a lineage function, the batch's lowest offset */
    assert_int_equal(rd32(bw->lins.p + 8), HL_PG_OID_INT8);
    assert_true(hl_pg_get64(bw->lins.p + 24) == 10);
    pst_bw_set_lineage_fn(bw, fixed_lineage, NULL);
    pst_bw_encode_offsets(bw, p, 2);
    assert_true(hl_pg_get64(bw->lins.p + 24) == 7);
    /* An empty batch is a zero-dimension array. */
    pst_bw_encode_rows(bw, p, 0);
    assert_int_equal(rd32(bw->col[0].p), 0);
    assert_int_equal(bw->col[0].len, 12);
    pst_bw_free(bw);
    pst_bw_free(NULL);
}

static void test_copy_binary_rows(void **state)
{
    pst_batch_writer_t *bw = pst_bw_new(NULL, "g", "t", 4);
    pst_row_t rows[2];
    set_row(&rows[0], "m1", 3, 10);
    set_row(&rows[1], "m2", 3, 11);
    for (int i = 0; i < 2; i++) {
        snprintf(rows[i].source, sizeof(rows[i].source), "s");
        snprintf(rows[i].event_type, sizeof(rows[i].event_type), "e");
        snprintf(rows[i].request_id, sizeof(rows[i].request_id),
                 "0190f5a2-7b3c-7def-8a12-3456789abcd%d", i);
        rows[i].received_us = HL_PG_EPOCH_US + 7;
        rows[i].payload = "{}";
        rows[i].payload_len = 2;
        rows[i].signed_json = NULL;
    }
    /* SHA-256 of "{}" */
    snprintf(rows[0].body_sha256, sizeof(rows[0].body_sha256), "%s",
             "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    rows[0].signed_json = "{\"x\":\"1\"}";
    rows[0].signed_json_len = 9;
    rows[0].row_id = 42;
    rows[1].duplicate = 1; /* found stored by the probe: not copied */
    pst_row_t *p[2] = {&rows[0], &rows[1]};
    pst_bw_encode_copy(bw, p, 2);
    const char *b = bw->copy.p;
    assert_memory_equal(b, "PGCOPY\n\377\r\n\0", 11);
    assert_int_equal(rd32(b + 11), 0);
    assert_int_equal(rd32(b + 15), 0);
    const char *t = b + 19;
    assert_int_equal((unsigned char)t[0] << 8 | (unsigned char)t[1], 12); /* twelve fields */
    assert_int_equal(rd32(t + 2), 8);
    assert_true(hl_pg_get64(t + 6) == 42); /* id */
    assert_int_equal(rd32(t + 14), 1);
    assert_memory_equal(t + 18, "s", 1); /* source */
    assert_int_equal(rd32(t + 19), 2);
    assert_memory_equal(t + 23, "m1", 2); /* message id */
    assert_int_equal(rd32(t + 25), 1);    /* event type */
    assert_int_equal(rd32(t + 30), 16);   /* request id */
    assert_int_equal(rd32(t + 50), 8);
    assert_true(hl_pg_get64(t + 54) == 7); /* received_at */
    assert_int_equal(rd32(t + 62), 4);
    assert_int_equal(rd32(t + 66), 3);      /* partition */
    assert_true(hl_pg_get64(t + 74) == 10); /* offset */
    assert_int_equal(rd32(t + 82), 3);
    assert_int_equal(t[86], 1); /* jsonb version */
    assert_memory_equal(t + 87, "{}", 2);
    assert_int_equal(rd32(t + 89), 32); /* body_sha256 */
    assert_int_equal((unsigned char)t[93], 0x44);
    assert_int_equal((unsigned char)t[93 + 31], 0x8a);
    assert_int_equal(rd32(t + 125), 2); /* raw_body */
    assert_memory_equal(t + 129, "{}", 2);
    assert_int_equal(rd32(t + 131), 10); /* signature_headers */
    assert_int_equal(t[135], 1);
    assert_memory_equal(t + 136, "{\"x\":\"1\"}", 9);
    /* One tuple only, then the trailer (-1). */
    assert_int_equal((size_t)(t + 145 + 2 - b), bw->copy.len);
    assert_int_equal((unsigned char)t[145], 0xff);
    assert_int_equal((unsigned char)t[146], 0xff);
    pst_bw_free(bw);
}

static json_t *format(const pst_row_t *r, int attempts)
{
    char buf[2048];
    int n = pst_lineage_format(buf, sizeof(buf), r, 300, 200, attempts);
    assert_true(n > 0);
    json_error_t e;
    json_t *j = json_loadb(buf, (size_t)n, 0, &e);
    if (!j) fail_msg("lineage not JSON: %s: %.*s", e.text, n, buf);
    return j;
}

static void test_lineage_persisted_and_duplicate(void **state)
{
    pst_row_t r;
    set_row(&r, "m\"1", 2, 77);
    snprintf(r.request_id, sizeof(r.request_id), "0190f5a2-7b3c-7def-8a12-3456789abcde");
    snprintf(r.source, sizeof(r.source), "stripe");
    snprintf(r.event_type, sizeof(r.event_type), "paid");
    r.received_us = 50;
    r.consumed_us = 100;
    r.row_id = 9;
    json_t *j = format(&r, 1);
    assert_string_equal(json_string_value(json_object_get(j, "stage")), "persisted");
    assert_int_equal(json_integer_value(json_object_get(j, "v")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "message_id")), "m\"1");
    assert_int_equal(json_integer_value(json_object_get(j, "row_id")), 9);
    assert_true(json_is_false(json_object_get(j, "duplicate")));
    assert_int_equal(json_integer_value(json_object_get(j, "offset")), 77);
    assert_int_equal(json_integer_value(json_object_get(j, "committed_us")), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "ts_us")), 300);
    assert_null(json_object_get(j, "error_code"));
    json_decref(j);
    r.duplicate = 1;
    r.row_id = -1;
    j = format(&r, 1);
    assert_true(json_is_null(json_object_get(j, "row_id")));
    assert_true(json_is_true(json_object_get(j, "duplicate")));
    json_decref(j);
}

static void test_lineage_dead_lettered(void **state)
{
    pst_row_t r;
    set_row(&r, "m1", 0, 1);
    r.status = PST_REC_INVALID_JSON;
    json_t *j = format(&r, 3);
    assert_string_equal(json_string_value(json_object_get(j, "stage")), "dead_lettered");
    assert_string_equal(json_string_value(json_object_get(j, "error_code")), "invalid_json");
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 3);
    assert_null(json_object_get(j, "row_id"));
    assert_null(json_object_get(j, "received_us")); /* unknown, so absent */
    json_decref(j);
    char tiny[16];
    assert_int_equal(pst_lineage_format(tiny, sizeof(tiny), &r, 1, 1, 1), HL_ETOOBIG);
}

static void test_lineage_of_recovered_record(void **state)
{
    pst_row_t r;
    set_row(&r, "m1", 0, 5);
    r.consumed_us = 0; /* unknown after a restart: left out */
    r.row_id = 3;
    json_t *j = format(&r, 0);
    assert_null(json_object_get(j, "consumed_us"));
    assert_int_equal(json_integer_value(json_object_get(j, "committed_us")), 200);
    json_decref(j);
    r.status = PST_REC_PG_REJECTED;
    j = format(&r, 0); /* attempts unknown: left out */
    assert_null(json_object_get(j, "attempts"));
    assert_string_equal(json_string_value(json_object_get(j, "error_code")), "pg_rejected");
    json_decref(j);
    /* The longest record fits PST_LINEAGE_MAX: every string at its cap, all escaped. */
    memset(r.message_id, 1, PST_REC_MAX_MESSAGE_ID);
    r.message_id[PST_REC_MAX_MESSAGE_ID] = '\0';
    memset(r.source, 2, PST_REC_MAX_SOURCE);
    r.source[PST_REC_MAX_SOURCE] = '\0';
    memset(r.event_type, 3, PST_REC_MAX_EVENT_TYPE);
    r.event_type[PST_REC_MAX_EVENT_TYPE] = '\0';
    snprintf(r.request_id, sizeof(r.request_id), "0190f5a2-7b3c-7def-8a12-3456789abcde");
    r.received_us = r.consumed_us = INT64_MAX;
    r.offset = INT64_MAX;
    r.partition = INT32_MIN;
    char buf[PST_LINEAGE_MAX];
    for (int st = PST_REC_OK; st <= PST_REC_PG_REJECTED; st++) {
        r.status = (pst_rec_status_t)st;
        assert_true(pst_lineage_format(buf, sizeof(buf), &r, INT64_MAX, INT64_MAX, INT32_MAX) > 0);
    }
}

static void test_recovered_outcomes(void **state)
{
    pst_row_t r;
    set_row(&r, "m1", 2, 50);
    r.row_id = -1;
    pst_bw_mark_recovered(&r, 9, 2, 50, 1234); /* the stored row is this record's: inserted */
    assert_true(r.row_id == 9 && !r.duplicate && r.committed_us == 1234);
    assert_int_equal(r.status, PST_REC_OK);
    set_row(&r, "m1", 2, 50);
    r.row_id = -1;
    pst_bw_mark_recovered(&r, 9, 2, 40, 1234); /* stored from an earlier offset: a duplicate */
    assert_true(r.row_id == -1 && r.duplicate && r.committed_us == 0);
    set_row(&r, "m1", 2, 50);
    r.row_id = -1;
    pst_bw_mark_recovered(&r, 9, 4, 70, 1234); /* from another partition: a duplicate too */
    assert_true(r.duplicate && r.status == PST_REC_OK);
    set_row(&r, "m1", 2, 50);
    r.row_id = -1;
    pst_bw_mark_recovered(&r, 9, 2, 60, 1234); /* a later copy stored: this one was refused */
    assert_int_equal(r.status, PST_REC_PG_REJECTED);
    assert_true(r.row_id == -1 && !r.duplicate);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_by_key_then_offset),
        cmocka_unit_test(test_sort_many_keeps_offsets_ascending),
        cmocka_unit_test(test_batch_duplicates_first_wins),
        cmocka_unit_test(test_binary_arrays),
        cmocka_unit_test(test_copy_binary_rows),
        cmocka_unit_test(test_lineage_persisted_and_duplicate),
        cmocka_unit_test(test_lineage_dead_lettered),
        cmocka_unit_test(test_lineage_of_recovered_record),
        cmocka_unit_test(test_recovered_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
