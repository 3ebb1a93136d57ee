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
    ing_event_t ev = {.key = "m", .key_len = 1, .value = body, .value_len = sizeof(body) - 1,
                      .nheaders = 1};
    ev.headers[0] = (ing_kv_t){"hl-source", "test", 4};
    ing_producer_send(p, &ev, true, hl_mono_us() + (int64_t)deadline_ms * 1000, ack);
}

static void *send_thread(void *arg)
{
    ing_ack_t *ack = arg;
    send_one(*(ing_producer_t **)(ack + 1), 3000, ack);
    return NULL;
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
    usleep(1000 * 1000);     /* the lineage records are older than ack_timeout_ms now */
    rd_kafka_mock_broker_set_up(mc, 1);
    rd_kafka_mock_broker_set_up(lmc, 1);
    assert_int_equal(ing_producer_flush(p, 20000), 0);
    assert_int_equal(counter_value(m, "hookline_ingress_lineage_dropped_total"), 0);
    assert_true(counter_value(m, "hookline_ingress_delivery_errors_total") >= 1);
    ing_producer_free(p);
    hl_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abandoned_waiters_return),
        cmocka_unit_test(test_fast_mode_and_lineage),
        cmocka_unit_test(test_lineage_outlives_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
