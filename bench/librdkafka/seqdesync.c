/* Reproduces the idempotent producer's "sequence desynchronization" fatal error against
 * librdkafka's mock cluster: records in flight when the leader's connection drops (a
 * possibly-persisted outcome), then the broker answers NOT_ENOUGH_REPLICAS and
 * OUT_OF_ORDER_SEQUENCE_NUMBER, as a leader failover makes a real cluster do. Prints the
 * library version and whether the producer became fatal; exit 1 when it did. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int delivered, failed;

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o)
{
    (void)rk, (void)o;
    if (m->err)
        failed++;
    else
        delivered++;
}

static void send_n(rd_kafka_t *rk, int n)
{
    for (int i = 0; i < n; i++)
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("t"), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_END);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[] = {"test.mock.num.brokers",
                        "1",
                        "enable.idempotence",
                        "true",
                        "batch.num.messages",
                        "1",
                        "linger.ms",
                        "0",
                        "log_level",
                        "0",
                        NULL};
    for (int i = 0; kv[i]; i += 2) rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(conf, dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
    rd_kafka_mock_topic_create(mc, "t", 1, 1);
    send_n(rk, 5);
    rd_kafka_flush(rk, 10000);
    for (int i = 0; i < n; i++) /* answered late: the connection drops first */
        rd_kafka_mock_broker_push_request_error_rtts(mc, 1, 0 /* Produce */, 1,
                                                     RD_KAFKA_RESP_ERR_NO_ERROR, 750);
    rd_kafka_mock_broker_push_request_error_rtts(mc, 1, 0, 1, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                                 750);
    for (int i = 0; i < 4; i++)
        rd_kafka_mock_broker_push_request_error_rtts(
            mc, 1, 0, 1, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, 1);
    send_n(rk, n);
    rd_kafka_poll(rk, 250);
    rd_kafka_mock_broker_set_down(mc, 1);
    rd_kafka_poll(rk, 250);
    send_n(rk, 5 - n);
    rd_kafka_mock_broker_set_up(mc, 1);
    rd_kafka_flush(rk, 15000);
    char why[512] = "";
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(rk, why, sizeof why);
    printf("librdkafka %s, n=%d: delivered %d, failed %d, fatal: %s%s%s\n", rd_kafka_version_str(),
           n, delivered, failed, fe ? rd_kafka_err2name(fe) : "none", fe ? " - " : "", why);
    rd_kafka_destroy(rk);
    return fe ? 1 : 0;
}
