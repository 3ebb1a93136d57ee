/* The delivery-waiter state machine against librdkafka's mock cluster: a worker that gives up
 * at its deadline abandons its waiter, the late delivery report returns it to the pool, and a
 * pool emptied by abandoned waiters refuses at once instead of queueing. (The mock cluster is
 * no evidence of durability; the integration tests use a real broker for that.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hl/metrics.h"
#include "hl/util.h"
#include "producer.h"

#define POOL 4

static char *props[] = {"test.mock.num.brokers=1"};

static ing_config_t make_config(void)
{
    ing_config_t c;
    memset(&c, 0, sizeof(c));
    c.kafka.brokers = "127.0.0.1:1";
    c.kafka.events_topic = "events";
    c.kafka.lineage_topic = "lineage";
    c.kafka.client_id = "test-ingress";
    c.kafka.properties = props;
    c.kafka.properties_count = 1;
    c.ack_timeout_ms = 400;
    c.max_in_flight = POOL;
    c.queue_max_messages = 1000;
    c.linger_ms = 1;
    c.lineage_timeout_ms = 60000;
    c.lineage_linger_ms = 5;
    return c;
}

/* The producer's health thread may have made the mock cluster auto-create a topic already. */
static void mock_topic(rd_kafka_mock_cluster_t *mc, const char *name, int partitions)
{
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, partitions, 1);
    assert_true(err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS);
}

static void send_one(ing_producer_t *p, int deadline_ms, ing_ack_t *ack)
{
    static const char body[] = "{\"messageId\":\"m\",\"eventType\":\"e\"}";
    ing_event_t ev = {
        .key = "m", .key_len = 1, .value = body, .value_len = sizeof(body) - 1, .nheaders = 1};
    ev.headers[0] = (ing_kv_t){"hl-source", "test", 4};
    ing_producer_send(p, &ev, true, hl_mono_us() + (int64_t)deadline_ms * 1000, ack);
}

static void *send_thread(void *arg)
{
    ing_ack_t *ack = arg;
    send_one(*(ing_producer_t **)(ack + 1), 3000, ack);
    return NULL;
}

/* POOL concurrent sends: each needs a waiter, so all being stored shows every waiter is back
 * in the pool. */
static void expect_pool_stored(ing_producer_t *p)
{
    struct {
        ing_ack_t ack;
        ing_producer_t *p;
    } slots[POOL];
    pthread_t th[POOL];
    for (int i = 0; i < POOL; i++) {
        slots[i].p = p;
        pthread_create(&th[i], NULL, send_thread, &slots[i].ack);
    }
    for (int i = 0; i < POOL; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(slots[i].ack.err, 0);
    }
}

static void test_abandoned_waiters_return(void **state)
{
    ing_config_t cfg = make_config();
    hl_metrics_t *m = hl_metrics_new();
    char err[256] = "";
    ing_producer_t *p = ing_producer_new(&cfg, m, err, sizeof(err));
    if (p == NULL) fail_msg("%s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(ing_producer_handle(p));
    assert_non_null(mc);
    mock_topic(mc, "events", 2);

    ing_ack_t ack;
    int64_t until = hl_mono_us() + 10 * 1000000;
    do send_one(p, 2000, &ack);
    while (ack.err != 0 && hl_mono_us() < until);
    assert_int_equal(ack.err, 0);
    assert_true(ack.partition >= 0 && ack.offset >= 0);

    /* A slow broker: every worker gives up at its 100 ms deadline, abandoning its waiter. */
    rd_kafka_mock_broker_set_rtt(mc, 1, 1500);
    for (int i = 0; i < POOL; i++) {
        int64_t t0 = hl_mono_us();
        send_one(p, 100, &ack);
        assert_int_equal(ack.err, HL_ETIMEDOUT);
        assert_true(hl_mono_us() - t0 < 300000);
    }
    /* Every waiter is abandoned and not yet reported: refused at once. */
    int64_t t0 = hl_mono_us();
    send_one(p, 1000, &ack);
    assert_int_equal(ack.err, HL_EAGAIN);
    assert_true(hl_mono_us() - t0 < 50000);

    /* The broker recovers; the late reports return every waiter, so POOL concurrent sends
     * all get a waiter again. */
    rd_kafka_mock_broker_set_rtt(mc, 1, 0);
    usleep(2500 * 1000);
    expect_pool_stored(p);
    assert_int_equal(ing_producer_flush(p, 5000), 0);
    ing_producer_free(p);
    hl_metrics_free(m);
}

static void test_fast_mode_and_lineage(void **state)
{
    ing_config_t cfg = make_config();
    hl_metrics_t *m = hl_metrics_new();
    char err[256] = "";
    ing_producer_t *p = ing_producer_new(&cfg, m, err, sizeof(err));
    assert_non_null(p);
    /* Each handle has a mock cluster of its own: lineage goes through the second one. */
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(ing_producer_handle(p));
    rd_kafka_mock_cluster_t *lmc = rd_kafka_handle_mock_cluster(ing_producer_lineage_handle(p));
    assert_non_null(lmc);
    assert_ptr_not_equal(mc, lmc);
    mock_topic(mc, "events", 2);
    mock_topic(lmc, "lineage", 1);
    ing_event_t ev = {.key = "k", .key_len = 1, .value = "{}", .value_len = 2, .nheaders = 0};
    ing_ack_t ack;
    ing_producer_send(p, &ev, false, 0, &ack);
    assert_int_equal(ack.err, 0);
    assert_int_equal(ack.partition, -1); /* fast mode knows no offset */
    ing_producer_lineage(p, "01890a5d-ac96-774b-bcce-b302099a8057", "{}", 2);
    assert_int_equal(ing_producer_flush(p, 5000), 0);
    ing_producer_free(p);
    hl_metrics_free(m);
}

static void expect_compression(rd_kafka_t *rk, const char *want)
{
    char v[32];
    size_t n = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(rd_kafka_conf(rk), "compression.type", v, &n),
                     RD_KAFKA_CONF_OK);
    assert_string_equal(v, want);
}

/* Lineage (JSON, batched for lineage_linger_ms) is compressed; events go as received, unless
 * kafka.properties says otherwise, for both. */
static void test_compression(void **state)
{
    (void)state;
    ing_config_t cfg = make_config();
    hl_metrics_t *m = hl_metrics_new();
    char err[256] = "";
    ing_producer_t *p = ing_producer_new(&cfg, m, err, sizeof(err));
    assert_non_null(p);
    expect_compression(ing_producer_handle(p), "none");
    expect_compression(ing_producer_lineage_handle(p), "lz4");
    ing_producer_free(p);
    hl_metrics_free(m);

    char *own[] = {"test.mock.num.brokers=1", "compression.type=zstd"};
    cfg.kafka.properties = own;
    cfg.kafka.properties_count = 2;
    m = hl_metrics_new();
    p = ing_producer_new(&cfg, m, err, sizeof(err));
    assert_non_null(p);
    expect_compression(ing_producer_handle(p), "zstd");
    expect_compression(ing_producer_lineage_handle(p), "zstd");
    ing_producer_free(p);
    hl_metrics_free(m);
}

/* The value of an unlabelled counter in the rendered metrics. */
static long long counter_value(hl_metrics_t *m, const char *name)
{
    size_t len = 0;
    char *text = hl_metrics_render(m, &len);
    char needle[128];
    snprintf(needle, sizeof(needle), "\n%s ", name);
    const char *at = strstr(text, needle);
    long long v = at ? strtoll(at + strlen(needle), NULL, 10) : -1;
    free(text);
    return v;
}

/* A broker outage longer than ack_timeout_ms: the event waiting for its ack is failed (503),
 * but the lineage records queued meanwhile are held and delivered once the broker is back,
 * not dropped with the event's timeout. */
static void test_lineage_outlives_outage(void **state)
{
    ing_config_t cfg = make_config();
    hl_metrics_t *m = hl_metrics_new();
    char err[256] = "";
    ing_producer_t *p = ing_producer_new(&cfg, m, err, sizeof(err));
    if (p == NULL) fail_msg("%s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(ing_producer_handle(p));
    rd_kafka_mock_cluster_t *lmc = rd_kafka_handle_mock_cluster(ing_producer_lineage_handle(p));
    mock_topic(mc, "events", 2);
    mock_topic(lmc, "lineage", 1);
    ing_ack_t ack;
    int64_t until = hl_mono_us() + 10 * 1000000;
    do send_one(p, 2000, &ack);
    while (ack.err != 0 && hl_mono_us() < until);
    assert_int_equal(ack.err, 0);

    rd_kafka_mock_broker_set_down(mc, 1);
    rd_kafka_mock_broker_set_down(lmc, 1);
    for (int i = 0; i < 3; i++)
        ing_producer_lineage(p, "01890a5d-ac96-774b-bcce-b302099a8057", "{}", 2);
    send_one(p, 2000, &ack); /* waits past the 400 ms message timeout of events */
    assert_int_not_equal(ack.err, 0);
    usleep(1000 * 1000); /* the lineage records are older than ack_timeout_ms now */
    rd_kafka_mock_broker_set_up(mc, 1);
    rd_kafka_mock_broker_set_up(lmc, 1);
    assert_int_equal(ing_producer_flush(p, 20000), 0);
    assert_int_equal(counter_value(m, "hookline_ingress_lineage_dropped_total"), 0);
    assert_true(counter_value(m, "hookline_ingress_delivery_errors_total") >= 1);
    ing_producer_free(p);
    hl_metrics_free(m);
}

/* The value of a counter with one label set, e.g. producer="events". */
static long long labelled_value(hl_metrics_t *m, const char *name, const char *labels)
{
    char full[192];
    snprintf(full, sizeof(full), "%s{%s}", name, labels);
    return counter_value(m, full);
}

/* Sends until one is acknowledged or budget_ms passes; returns the time it took in ms. */
static long long send_until_stored(ing_producer_t *p, int budget_ms, ing_ack_t *ack)
{
    int64_t t0 = hl_mono_us(), until = t0 + (int64_t)budget_ms * 1000;
    do {
        send_one(p, 1000, ack);
        if (ack->err != 0) usleep(20 * 1000);
    } while (ack->err != 0 && hl_mono_us() < until);
    return (long long)((hl_mono_us() - t0) / 1000);
}

/* A fatal idempotent-producer error while requests wait for their acks: each of them is
 * answered as failed (503) by the retired handle's purge, long before its deadline and never
 * as stored; a new handle replaces the fatal one by itself, acknowledgements resume, the
 * replacement is counted, and every waiter came back to the pool. */
static void test_fatal_error_replaces_producer(void **state)
{
    ing_config_t cfg = make_config();
    cfg.ack_timeout_ms = 20000; /* only the fatal error can fail the waiting records */
    hl_metrics_t *m = hl_metrics_new();
    char err[256] = "";
    ing_producer_t *p = ing_producer_new(&cfg, m, err, sizeof(err));
    if (p == NULL) fail_msg("%s", err);
    rd_kafka_t *first = ing_producer_handle(p);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(first);
    mock_topic(mc, "events", 2);
    ing_ack_t ack;
    send_until_stored(p, 10000, &ack);
    assert_int_equal(ack.err, 0);

    /* A slow broker keeps POOL records in flight when the error strikes. */
    rd_kafka_mock_broker_set_rtt(mc, 1, 3000);
    struct {
        ing_ack_t ack;
        ing_producer_t *p;
    } slots[POOL];
    pthread_t th[POOL];
    int64_t t0 = hl_mono_us();
    for (int i = 0; i < POOL; i++) {
        slots[i].p = p;
        pthread_create(&th[i], NULL, send_thread, &slots[i].ack);
    }
    usleep(300 * 1000);
    ing_producer_inject_fatal(p, false, "test: sequence desynchronization");
    for (int i = 0; i < POOL; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(slots[i].ack.err, HL_EKAFKA);
    }
    /* send_thread waits 3 s at most: the failures came from the purge, not the deadline. */
    assert_true(hl_mono_us() - t0 < 2500 * 1000);

    long long ms = send_until_stored(p, 10000, &ack);
    assert_int_equal(ack.err, 0);
    print_message("acknowledgements resumed %lld ms after the failures were answered\n", ms);
    assert_ptr_not_equal(ing_producer_handle(p), first);
    assert_false(ing_producer_fatal(p));
    assert_int_equal(
        labelled_value(m, "hookline_ingress_kafka_producer_restarts_total", "producer=\"events\""),
        1);
    assert_int_equal(
        labelled_value(m, "hookline_ingress_kafka_producer_restarts_total", "producer=\"lineage\""),
        0);
    expect_pool_stored(p);
    assert_int_equal(ing_producer_flush(p, 5000), 0);
    ing_producer_free(p);
    hl_metrics_free(m);
}

/* Lineage records held by a lineage handle that turns fatal move to its replacement instead
 * of being dropped. */
static void test_fatal_lineage_records_move_on(void **state)
{
    ing_config_t cfg = make_config();
    hl_metrics_t *m = hl_metrics_new();
    char err[256] = "";
    ing_producer_t *p = ing_producer_new(&cfg, m, err, sizeof(err));
    if (p == NULL) fail_msg("%s", err);
    rd_kafka_t *first = ing_producer_lineage_handle(p);
    rd_kafka_mock_cluster_t *lmc = rd_kafka_handle_mock_cluster(first);
    mock_topic(lmc, "lineage", 1);
    rd_kafka_mock_broker_set_down(lmc, 1);
    for (int i = 0; i < 5; i++)
        ing_producer_lineage(p, "01890a5d-ac96-774b-bcce-b302099a8057", "{}", 2);
    usleep(200 * 1000);
    ing_producer_inject_fatal(p, true, "test: sequence desynchronization");
    int64_t until = hl_mono_us() + 10 * 1000000;
    while (ing_producer_lineage_handle(p) == first && hl_mono_us() < until) usleep(10 * 1000);
    assert_ptr_not_equal(ing_producer_lineage_handle(p), first);
    assert_int_equal(ing_producer_flush(p, 10000), 0);
    assert_int_equal(counter_value(m, "hookline_ingress_lineage_dropped_total"), 0);
    assert_int_equal(
        labelled_value(m, "hookline_ingress_kafka_producer_restarts_total", "producer=\"lineage\""),
        1);
    ing_producer_free(p);
    hl_metrics_free(m);
}

#define SENDERS 8
#define INJECTIONS 5

typedef struct {
    ing_producer_t *p;
    atomic_bool *stop;
    long stored, failed;
} sender_t;

static void *sender_main(void *arg)
{
    sender_t *s = arg;
    while (!atomic_load(s->stop)) {
        ing_ack_t ack;
        send_one(s->p, 2000, &ack);
        if (ack.err == 0)
            s->stored++;
        else
            s->failed++;
        ing_producer_lineage(s->p, "01890a5d-ac96-774b-bcce-b302099a8057", "{}", 2);
        if (ack.err != 0) usleep(1000); /* a provider's retry is not instant either */
    }
    return NULL;
}

/* Handles replaced again and again under concurrent senders: no request touches a destroyed
 * handle (the sanitizer build runs this too), every replacement is counted, the last handle
 * acknowledges, and no lineage record is lost on the way. */
static void test_replacements_under_load(void **state)
{
    ing_config_t cfg = make_config();
    cfg.max_in_flight = 64;
    cfg.queue_max_messages = 100000; /* the default: the lineage of every failed send fits */
    hl_metrics_t *m = hl_metrics_new();
    char err[256] = "";
    ing_producer_t *p = ing_producer_new(&cfg, m, err, sizeof(err));
    if (p == NULL) fail_msg("%s", err);
    mock_topic(rd_kafka_handle_mock_cluster(ing_producer_handle(p)), "events", 2);
    ing_ack_t ack;
    send_until_stored(p, 10000, &ack);
    assert_int_equal(ack.err, 0);
    atomic_bool stop = false;
    sender_t senders[SENDERS];
    pthread_t th[SENDERS];
    for (int i = 0; i < SENDERS; i++) {
        senders[i] = (sender_t){.p = p, .stop = &stop};
        pthread_create(&th[i], NULL, sender_main, &senders[i]);
    }
    for (int i = 0; i < INJECTIONS; i++) {
        usleep(300 * 1000);
        rd_kafka_t *before = ing_producer_handle(p);
        ing_producer_inject_fatal(p, i % 2 == 1, "test: sequence desynchronization");
        int64_t until = hl_mono_us() + 10 * 1000000;
        while (i % 2 == 0 && ing_producer_handle(p) == before && hl_mono_us() < until)
            usleep(5 * 1000);
    }
    usleep(300 * 1000);
    atomic_store(&stop, true);
    long failed = 0;
    for (int i = 0; i < SENDERS; i++) {
        pthread_join(th[i], NULL);
        failed += senders[i].failed;
    }
    assert_true(failed > 0);
    long long ev =
        labelled_value(m, "hookline_ingress_kafka_producer_restarts_total", "producer=\"events\"");
    long long lin =
        labelled_value(m, "hookline_ingress_kafka_producer_restarts_total", "producer=\"lineage\"");
    assert_int_equal(ev, (INJECTIONS + 1) / 2);
    int64_t until = hl_mono_us() + 10 * 1000000;
    while (lin < INJECTIONS / 2 && hl_mono_us() < until) {
        usleep(10 * 1000);
        lin = labelled_value(m, "hookline_ingress_kafka_producer_restarts_total",
                             "producer=\"lineage\"");
    }
    assert_int_equal(lin, INJECTIONS / 2);
    send_until_stored(p, 10000, &ack);
    assert_int_equal(ack.err, 0);
    assert_int_equal(ing_producer_flush(p, 10000), 0);
    /* Lineage queued while its handle was fatal was held for the next one, none dropped. */
    assert_int_equal(counter_value(m, "hookline_ingress_lineage_dropped_total"), 0);
    ing_producer_free(p);
    hl_metrics_free(m);
}

/* The values stored in partition `part` of the events topic of mock cluster mc, in order,
 * joined by ' ' into out. */
static void stored_values(rd_kafka_mock_cluster_t *mc, int32_t part, char *out, size_t cap)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       rd_kafka_mock_cluster_bootstraps(mc), errstr,
                                       sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "reader", errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr)),
        RD_KAFKA_CONF_OK);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(c);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, "events", part)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, tp), 0);
    rd_kafka_topic_partition_list_destroy(tp);
    size_t len = 0;
    out[0] = '\0';
    int64_t until = hl_mono_us() + 10 * 1000000;
    for (bool eof = false; !eof && hl_mono_us() < until;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (m == NULL) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eof = true;
        else if (m->err == 0 && len + m->len + 2 < cap) {
            memcpy(out + len, m->payload, m->len);
            len += m->len;
            out[len++] = ' ';
            out[len] = '\0';
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

typedef struct {
    ing_producer_t *p;
    const char *value;
    ing_ack_t ack;
} valued_send_t;

static void *valued_send_main(void *arg)
{
    valued_send_t *s = arg;
    ing_event_t ev = {
        .key = "m", .key_len = 1, .value = s->value, .value_len = strlen(s->value), .nheaders = 0};
    ing_producer_send(s->p, &ev, true, hl_mono_us() + 5000 * 1000, &s->ack);
    return NULL;
}

/* A new producer's first request to a partition fails with a retriable error while its second
 * request is in flight, and the broker stores the second one (a broker keeps no sequence for
 * a producer id it has not seen on that partition, so it takes any first sequence: a partition
 * not yet created, a leader moving). librdkafka then reports the first request's records as
 * delivered without their ever being stored. Such a report carries no offset: the waiting
 * request is not answered as stored. */
static void test_unstored_record_not_acknowledged(void **state)
{
    ing_config_t cfg = make_config();
    cfg.ack_timeout_ms = 5000;
    hl_metrics_t *m = hl_metrics_new();
    char err[256] = "";
    ing_producer_t *p = ing_producer_new(&cfg, m, err, sizeof(err));
    if (p == NULL) fail_msg("%s", err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(ing_producer_handle(p));
    mock_topic(mc, "events", 2);
    /* The first produce request is refused, its answer arriving after the second request went
     * out. */
    rd_kafka_mock_broker_push_request_error_rtts(mc, 1, 0 /* Produce */, 1,
                                                 RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 500);
    valued_send_t a = {.p = p, .value = "first"}, b = {.p = p, .value = "second"};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, valued_send_main, &a);
    usleep(200 * 1000);
    pthread_create(&tb, NULL, valued_send_main, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(ing_producer_flush(p, 5000), 0);
    char stored[256];
    stored_values(mc, b.ack.partition >= 0 ? b.ack.partition : 0, stored, sizeof(stored));
    print_message("first: err %d offset %lld; second: err %d offset %lld; stored: %s\n", a.ack.err,
                  (long long)a.ack.offset, b.ack.err, (long long)b.ack.offset, stored);
    /* What answers 202 is in the log; the second request was, so the broker took it. */
    assert_int_equal(b.ack.err, 0);
    assert_non_null(strstr(stored, "second "));
    if (a.ack.err == 0) {
        assert_true(a.ack.offset >= 0);
        assert_non_null(strstr(stored, "first "));
    }
    ing_producer_free(p);
    hl_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abandoned_waiters_return),
        cmocka_unit_test(test_fast_mode_and_lineage),
        cmocka_unit_test(test_compression),
        cmocka_unit_test(test_lineage_outlives_outage),
        cmocka_unit_test(test_fatal_error_replaces_producer),
        cmocka_unit_test(test_fatal_lineage_records_move_on),
        cmocka_unit_test(test_replacements_under_load),
        cmocka_unit_test(test_unstored_record_not_acknowledged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
