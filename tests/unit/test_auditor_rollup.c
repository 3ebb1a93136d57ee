/* Latency samples from lineage records: which stage each record yields, in either order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rollup.h"

static hl_lineage_rec_t ingress(const char *rid, int64_t recv, int64_t lat)
{
    hl_lineage_rec_t r;
    memset(&r, 0, sizeof r);
    r.stage = HL_STAGE_INGRESS;
    snprintf(r.request_id, sizeof r.request_id, "%s", rid);
    snprintf(r.source, sizeof r.source, "%s", "stripe");
    r.has_source = true;
    r.received_us = recv;
    r.latency_us = lat;
    r.ts_us = recv + lat;
    r.consumed_us = r.committed_us = HL_LINEAGE_ABSENT;
    return r;
}

static hl_lineage_rec_t persisted(const char *rid, int64_t recv, int64_t consumed,
                                  int64_t committed)
{
    hl_lineage_rec_t r;
    memset(&r, 0, sizeof r);
    r.stage = HL_STAGE_PERSISTED;
    snprintf(r.request_id, sizeof r.request_id, "%s", rid);
    r.received_us = recv;
    r.consumed_us = consumed;
    r.committed_us = committed;
    r.ts_us = committed;
    r.latency_us = HL_LINEAGE_ABSENT;
    return r;
}

static int64_t find(const aud_sample_t *s, size_t n, aud_lat_t st)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].stage == st) return s[i].value_us;
    return -1;
}

static void test_in_order(void **state)
{
    (void)state;
    aud_pairs_t p;
    aud_sample_t s[8];
    size_t n = 0;
    aud_pairs_init(&p, 4);
    hl_lineage_rec_t a = ingress("r1", 120000000, 1000),
                     b = persisted("r1", 120000000, 120004000, 120006000);
    aud_samples_from_record(&p, &a, s, &n);
    assert_int_equal(n, 1);
    assert_int_equal(find(s, n, AUD_LAT_ACK), 1000);
    assert_int_equal(s[0].minute_us, 120000000);
    assert_string_equal(s[0].source, "stripe");
    n = 0;
    aud_samples_from_record(&p, &b, s, &n);
    assert_int_equal(n, 3);
    assert_int_equal(find(s, n, AUD_LAT_QUEUE), 3000);
    assert_int_equal(find(s, n, AUD_LAT_PERSIST), 2000);
    assert_int_equal(find(s, n, AUD_LAT_E2E), 6000);
    assert_string_equal(s[0].source, "stripe"); /* taken from the ingress record */
    /* A second persisted record (a redelivery) adds no second queue sample. */
    n = 0;
    aud_samples_from_record(&p, &b, s, &n);
    assert_int_equal(find(s, n, AUD_LAT_QUEUE), -1);
    aud_pairs_deinit(&p);
}

static void test_out_of_order(void **state)
{
    (void)state;
    aud_pairs_t p;
    aud_sample_t s[8];
    size_t n = 0;
    aud_pairs_init(&p, 4);
    hl_lineage_rec_t a = ingress("r2", 1000, 500), b = persisted("r2", 1000, 1700, 1900);
    aud_samples_from_record(&p, &b, s, &n);
    assert_int_equal(find(s, n, AUD_LAT_QUEUE), -1);
    n = 0;
    aud_samples_from_record(&p, &a, s, &n);
    assert_int_equal(find(s, n, AUD_LAT_QUEUE), 200);
    assert_int_equal(find(s, n, AUD_LAT_ACK), 500);
    aud_pairs_deinit(&p);
}

/* The ack sample is kept under the class of the ingress's answer; the later stages exist only
 * for accepted requests. */
static void test_outcome_class(void **state)
{
    (void)state;
    static const struct {
        int64_t status;
        aud_outcome_t want;
    } cases[] = {
        {202, AUD_OUT_ACCEPTED}, {200, AUD_OUT_ACCEPTED}, {299, AUD_OUT_ACCEPTED},
        {401, AUD_OUT_REJECTED}, {400, AUD_OUT_REJECTED}, {503, AUD_OUT_REJECTED},
        {199, AUD_OUT_REJECTED}, {300, AUD_OUT_REJECTED}, {HL_LINEAGE_ABSENT, AUD_OUT_ACCEPTED}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aud_pairs_t p;
        aud_sample_t s[8];
        size_t n = 0;
        aud_pairs_init(&p, 4);
        hl_lineage_rec_t a = ingress("r9", 120000000, 1000);
        a.status = cases[i].status;
        aud_samples_from_record(&p, &a, s, &n);
        assert_int_equal(n, 1);
        assert_int_equal(s[0].stage, AUD_LAT_ACK);
        assert_int_equal(s[0].outcome, cases[i].want);
        hl_lineage_rec_t b = persisted("r9", 120000000, 120004000, 120006000);
        n = 0;
        aud_samples_from_record(&p, &b, s, &n);
        assert_int_equal(n, 3);
        for (size_t k = 0; k < n; k++) assert_int_equal(s[k].outcome, AUD_OUT_ACCEPTED);
        aud_pairs_deinit(&p);
    }
    assert_string_equal(aud_outcome_name(AUD_OUT_ACCEPTED), "accepted");
    assert_string_equal(aud_outcome_name(AUD_OUT_REJECTED), "rejected");
    assert_string_equal(aud_outcome_name(AUD_OUT_N), "unknown");
}

static void test_map_many(void **state)
{
    (void)state;
    aud_pairs_t p;
    char id[37];
    aud_pairs_init(&p, 500);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "req-%d", i);
        aud_pairs_get(&p, id)->answered_us = i;
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "req-%d", i);
        assert_int_equal(aud_pairs_get(&p, id)->answered_us, i);
    }
    aud_pairs_deinit(&p);
}

static void test_live_and_names(void **state)
{
    (void)state;
    aud_live_t *l = aud_live_new();
    aud_sample_t s = {AUD_LAT_ACK, 0, 100, "a", AUD_OUT_ACCEPTED};
    hl_hist_t *h = hl_hist_new();
    aud_lat_t st;
    for (int i = 0; i < AUD_LIVE_SOURCES + 10; i++) {
        snprintf(s.source, sizeof s.source, "src-%d", i);
        aud_live_record(l, &s);
    }
    aud_live_merge(l, AUD_LAT_ACK, NULL, h);
    assert_int_equal(hl_hist_count(h), AUD_LIVE_SOURCES + 10);
    hl_hist_reset(h);
    aud_live_merge(l, AUD_LAT_ACK, "_other", h);
    assert_int_equal(hl_hist_count(h), 10);
    assert_int_equal(aud_lat_parse("e2e", &st), 0);
    assert_int_equal(st, AUD_LAT_E2E);
    assert_int_equal(aud_lat_parse("E2E", &st), HL_EINVAL);
    hl_hist_free(h);
    aud_live_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),       cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_outcome_class),  cmocka_unit_test(test_map_many),
        cmocka_unit_test(test_live_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
