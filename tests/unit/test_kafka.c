/* Unit tests for hl_kafka: configuration layering and errors, readiness against librdkafka's
 * in-process mock cluster, a produced and consumed record with headers, header caps and
 * delivery outcomes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hl/kafka.h"
/* After rdkafka.h, as the mock header requires. */
#include <librdkafka/rdkafka_mock.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void expect_conf_value(rd_kafka_conf_t *conf, const char *key, const char *want)
{
    char got[256];
    size_t len = sizeof got;
    assert_int_equal(rd_kafka_conf_get(conf, key, got, &len), RD_KAFKA_CONF_OK);
    assert_string_equal(got, want);
}

static void test_conf_layers(void **state)
{
    char *props[] = {"linger.ms=7", "queue.buffering.max.messages=1000"};
    hl_kafka_config_t k = {.brokers = "b1:9092,b2:9092",
                           .client_id = "unit-svc",
                           .properties = props,
                           .properties_count = 2};
    const char *const defaults[] = {"linger.ms", "5", "enable.idempotence", "true", NULL};
    char err[512] = "";
    rd_kafka_conf_t *conf = hl_kafka_conf(&k, defaults, err, sizeof err);
    assert_non_null(conf);
    expect_conf_value(conf, "bootstrap.servers", "b1:9092,b2:9092");
    expect_conf_value(conf, "client.id", "unit-svc");
    expect_conf_value(conf, "enable.idempotence", "true");
    expect_conf_value(conf, "linger.ms", "7"); /* operator property beats hookline's default */
    expect_conf_value(conf, "queue.buffering.max.messages", "1000");
    rd_kafka_conf_destroy(conf);

    /* No defaults and no properties is fine too. */
    hl_kafka_config_t plain = {.brokers = "b1:9092"};
    conf = hl_kafka_conf(&plain, NULL, err, sizeof err);
    assert_non_null(conf);
    rd_kafka_conf_destroy(conf);
}

static void expect_conf_error(const char *prop, const char *name_in_error, const char *absent)
{
    char *props[] = {(char *)prop};
    hl_kafka_config_t k = {.brokers = "b1:9092", .properties = props, .properties_count = 1};
    char err[512] = "";
    assert_null(hl_kafka_conf(&k, NULL, err, sizeof err));
    if (strstr(err, name_in_error) == NULL) fail_msg("'%s' not named in: %s", name_in_error, err);
    if (absent && strstr(err, absent) != NULL) fail_msg("'%s' leaked in: %s", absent, err);
}

static void test_conf_errors(void **state)
{
    expect_conf_error("no.such.property=1", "'no.such.property'", NULL);
    expect_conf_error("linger.ms=soon", "'linger.ms'", NULL);
    expect_conf_error("acks=maybe", "'acks'", NULL);
    expect_conf_error("compression.type=zip", "'compression.type'", NULL);
    expect_conf_error("linger.ms", "'linger.ms'", NULL);     /* no '=' */
    expect_conf_error("=5", "expected \"key=value\"", NULL); /* empty key */
    expect_conf_error("sasl.password.typo=hunter2", "'sasl.password.typo'", "hunter2");

    /* A bad default names the default's key. */
    hl_kafka_config_t k = {.brokers = "b1:9092"};
    const char *const bad[] = {"message.max.bytes", "-3", NULL};
    char err[512] = "";
    assert_null(hl_kafka_conf(&k, bad, err, sizeof err));
    assert_non_null(strstr(err, "'message.max.bytes'"));
    const char *const odd[] = {"linger.ms", NULL};
    assert_null(hl_kafka_conf(&k, odd, err, sizeof err));
    assert_non_null(strstr(err, "'linger.ms'"));
}

/* sasl.password from the environment or a private file, never from a shared file unless
 * allowed, and never echoed. */
static void test_conf_secret_properties(void **state)
{
    char path[] = "/tmp/hl-kafka-secret-XXXXXX";
    int fd = mkstemp(path); /* 0600 */
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "from-file-pw\n", 13), 13);
    close(fd);
    hl_secret_property_t sp = {.name = "sasl.password", .env = "HLTEST_KAFKA_PW", .file = path};
    hl_kafka_config_t k = {
        .brokers = "b1:9092", .secret_properties = &sp, .secret_properties_count = 1};
    char err[512] = "", got[64];
    size_t n = sizeof got;
    setenv("HLTEST_KAFKA_PW", "from-env-pw", 1);
    rd_kafka_conf_t *conf = hl_kafka_conf(&k, NULL, err, sizeof err);
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_get(conf, "sasl.password", got, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(got, "from-env-pw");
    rd_kafka_conf_destroy(conf);
    /* Set but empty: refused, neither an empty password nor the file's. */
    setenv("HLTEST_KAFKA_PW", "", 1);
    assert_null(hl_kafka_conf(&k, NULL, err, sizeof err));
    assert_non_null(strstr(err, "'sasl.password'"));
    assert_non_null(strstr(err, "set but empty"));
    unsetenv("HLTEST_KAFKA_PW");
    conf = hl_kafka_conf(&k, NULL, err, sizeof err);
    assert_non_null(conf);
    n = sizeof got;
    assert_int_equal(rd_kafka_conf_get(conf, "sasl.password", got, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(got, "from-file-pw");
    rd_kafka_conf_destroy(conf);
    assert_int_equal(chmod(path, 0644), 0);
    assert_null(hl_kafka_conf(&k, NULL, err, sizeof err));
    assert_non_null(strstr(err, "'sasl.password'"));
    assert_non_null(strstr(err, "group or others"));
    assert_null(strstr(err, "from-file-pw"));
    k.secret_files_shared = true;
    conf = hl_kafka_conf(&k, NULL, err, sizeof err);
    assert_non_null(conf);
    rd_kafka_conf_destroy(conf);
    /* A value librdkafka refuses is not quoted back. */
    sp.name = "linger.ms";
    assert_null(hl_kafka_conf(&k, NULL, err, sizeof err));
    assert_non_null(strstr(err, "'linger.ms'"));
    assert_null(strstr(err, "from-file-pw"));
    unlink(path);
    sp.name = "sasl.password";
    assert_null(hl_kafka_conf(&k, NULL, err, sizeof err)); /* file gone, env unset */
    assert_non_null(strstr(err, "HLTEST_KAFKA_PW"));
}

static rd_kafka_t *mock_producer(void)
{
    char *props[] = {"test.mock.num.brokers=1"};
    hl_kafka_config_t k = {
        .brokers = "", .client_id = "unit-producer", .properties = props, .properties_count = 1};
    const char *const defaults[] = {"linger.ms", "0", "log_level", "3", NULL};
    char err[512] = "";
    rd_kafka_conf_t *conf = hl_kafka_conf(&k, defaults, err, sizeof err);
    assert_non_null(conf);
    rd_kafka_t *rk = hl_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    return rk;
}

/* A conf rd_kafka_new refuses: hl_kafka_new destroys it (the sanitized build would report the
 * leak otherwise) and passes librdkafka's reason on. */
static void test_new_refused(void **state)
{
    (void)state;
    hl_kafka_config_t k = {.brokers = "127.0.0.1:1"};
    const char *const defaults[] = {"enable.idempotence", "true", "acks", "1", NULL};
    char err[512] = "";
    rd_kafka_conf_t *conf = hl_kafka_conf(&k, defaults, err, sizeof err);
    assert_non_null(conf);
    assert_null(hl_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err));
    assert_non_null(strstr(err, "acks"));
}

static void test_wait_ready_mock(void **state)
{
    rd_kafka_t *rk = mock_producer();
    long long t0 = now_ms();
    assert_int_equal(hl_kafka_wait_ready(rk, 10000), 0);
    assert_true(now_ms() - t0 < 10000);
    rd_kafka_destroy(rk);
}

static void test_wait_ready_timeout(void **state)
{
    /* Reserve a port, then free it: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    char brokers[64];
    snprintf(brokers, sizeof brokers, "127.0.0.1:%d", ntohs(a.sin_port));
    hl_kafka_config_t k = {.brokers = brokers};
    const char *const quiet[] = {"log_level", "0", NULL};
    char err[512] = "";
    rd_kafka_conf_t *conf = hl_kafka_conf(&k, quiet, err, sizeof err);
    assert_non_null(conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    long long t0 = now_ms();
    assert_int_equal(hl_kafka_wait_ready(rk, 700), HL_ETIMEDOUT);
    long long took = now_ms() - t0;
    assert_true(took >= 650);
    assert_true(took < 2000);
    assert_int_equal(hl_kafka_wait_ready(rk, 0), HL_ETIMEDOUT);
    rd_kafka_destroy(rk);
}

static void test_produce_consume_headers(void **state)
{
    rd_kafka_t *p = mock_producer();
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(p);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "unit.events", 1, 1), 0);
    assert_int_equal(hl_kafka_wait_ready(p, 10000), 0);

    rd_kafka_resp_err_t err = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC("unit.events"), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY("m-1", 3),
        RD_KAFKA_V_VALUE("{\"a\":1}", 7), RD_KAFKA_V_HEADER("hl-request-id", "req-123", -1),
        RD_KAFKA_V_HEADER("hl-source", "stripe", -1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(p, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);

    char *props[] = {"group.id=unit-group", "auto.offset.reset=earliest"};
    hl_kafka_config_t k = {.brokers = (char *)rd_kafka_mock_cluster_bootstraps(mc),
                           .client_id = "unit-consumer",
                           .properties = props,
                           .properties_count = 2};
    char errbuf[512] = "";
    rd_kafka_conf_t *conf = hl_kafka_conf(&k, NULL, errbuf, sizeof errbuf);
    assert_non_null(conf);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, sizeof errbuf);
    assert_non_null(c);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, "unit.events", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);

    rd_kafka_message_t *m = NULL;
    long long deadline = now_ms() + 15000;
    while (now_ms() < deadline) {
        m = rd_kafka_consumer_poll(c, 200);
        if (m == NULL) continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        rd_kafka_message_destroy(m);
        m = NULL;
    }
    assert_non_null(m);
    assert_int_equal(m->len, 7);
    rd_kafka_headers_t *hdrs = NULL;
    assert_int_equal(rd_kafka_message_headers(m, &hdrs), RD_KAFKA_RESP_ERR_NO_ERROR);
    char buf[64];
    assert_int_equal(hl_kafka_header(hdrs, "hl-request-id", buf, sizeof buf), 0);
    assert_string_equal(buf, "req-123");
    assert_int_equal(hl_kafka_header(hdrs, "hl-source", buf, sizeof buf), 0);
    assert_string_equal(buf, "stripe");
    assert_int_equal(hl_kafka_header(hdrs, "hl-absent", buf, sizeof buf), HL_ENOTFOUND);
    assert_int_equal(hl_kafka_header(hdrs, "hl-request-id", buf, 7), HL_ETOOBIG);
    assert_int_equal(hl_kafka_header(hdrs, "hl-request-id", buf, 8), 0);
    rd_kafka_message_destroy(m);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
}

static void test_header_edges(void **state)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "dup", -1, "first", -1);
    rd_kafka_header_add(h, "dup", -1, "second", -1);
    rd_kafka_header_add(h, "nul", -1, "a\0b", 3);
    rd_kafka_header_add(h, "null", -1, NULL, 0);
    rd_kafka_header_add(h, "empty", -1, "", 0);
    char buf[16] = "junk";
    assert_int_equal(hl_kafka_header(h, "dup", buf, sizeof buf), 0);
    assert_string_equal(buf, "second"); /* the last value wins */
    assert_int_equal(hl_kafka_header(h, "nul", buf, sizeof buf), HL_EPARSE);
    assert_int_equal(hl_kafka_header(h, "null", buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(hl_kafka_header(h, "empty", buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(hl_kafka_header(h, "empty", buf, 0), HL_ETOOBIG);
    assert_int_equal(hl_kafka_header(h, "DUP", buf, sizeof buf), HL_ENOTFOUND);
    assert_int_equal(hl_kafka_header(NULL, "dup", buf, sizeof buf), HL_ENOTFOUND);
    rd_kafka_headers_destroy(h);
}

/* ---- librdkafka's log lines: JSON like the service's, never librdkafka's own "%3|…" form ---- */

/* A success without an offset is not a delivery; an error stays itself; an offset is. */
static void test_delivery_err(void **state)
{
    (void)state;
    rd_kafka_message_t m = {.err = RD_KAFKA_RESP_ERR_NO_ERROR, .offset = 41};
    assert_int_equal(hl_kafka_delivery_err(&m), RD_KAFKA_RESP_ERR_NO_ERROR);
    m.offset = 0;
    assert_int_equal(hl_kafka_delivery_err(&m), RD_KAFKA_RESP_ERR_NO_ERROR);
    m.offset = RD_KAFKA_OFFSET_INVALID;
    assert_int_equal(hl_kafka_delivery_err(&m), RD_KAFKA_RESP_ERR__INCONSISTENT);
    m.offset = -1;
    assert_int_equal(hl_kafka_delivery_err(&m), RD_KAFKA_RESP_ERR__INCONSISTENT);
    m.err = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
    assert_int_equal(hl_kafka_delivery_err(&m), RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
}

/* Nothing to seek is success; a partition the consumer was never assigned is a failure. */
static void test_seek(void **state)
{
    (void)state;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof err),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "group.id", "hl-test-seek", err, sizeof err),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, hl_kafka_log_debug);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    assert_int_equal(hl_kafka_seek(rk, l, 1000, "nothing"), 0);
    rd_kafka_topic_partition_list_add(l, "hl-test-seek", 0)->offset = 5;
    assert_int_equal(hl_kafka_seek(rk, l, 1000, "an unassigned partition"), HL_EKAFKA);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

static void test_log_levels(void **state)
{
    (void)state;
    assert_int_equal(hl_kafka_log_level(0), HL_LOG_ERROR);
    assert_int_equal(hl_kafka_log_level(3), HL_LOG_ERROR);
    assert_int_equal(hl_kafka_log_level(4), HL_LOG_WARN);
    assert_int_equal(hl_kafka_log_level(5), HL_LOG_INFO);
    assert_int_equal(hl_kafka_log_level(6), HL_LOG_INFO);
    assert_int_equal(hl_kafka_log_level(7), HL_LOG_DEBUG);
}

/* Runs a producer against a port nobody listens on for about a second with stderr in a file;
 * returns what was written (caller frees). `debug_cb` installs hl_kafka_log_debug instead. */
static char *refused_producer_log(hl_log_level_t threshold, bool debug_cb)
{
    char path[] = "/tmp/hl_test_kafka_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    hl_log_init("unit-kafka", threshold);

    /* A port just bound and closed again: connecting to it is refused. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    close(s);
    char brokers[64];
    snprintf(brokers, sizeof brokers, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    hl_kafka_config_t k = {.brokers = brokers, .client_id = "unit-log"};
    char err[512] = "";
    rd_kafka_conf_t *conf = hl_kafka_conf(&k, NULL, err, sizeof err);
    assert_non_null(conf);
    if (debug_cb) rd_kafka_conf_set_log_cb(conf, hl_kafka_log_debug);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    long long until = now_ms() + 1500;
    while (now_ms() < until) rd_kafka_poll(rk, 100);
    rd_kafka_destroy(rk);

    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    hl_log_init("unit-kafka", HL_LOG_INFO);
    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)size, 0), size);
    close(fd);
    unlink(path);
    return text;
}

static void test_log_lines_are_json(void **state)
{
    (void)state;
    char *text = refused_producer_log(HL_LOG_DEBUG, false);
    int lines = 0, refused = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        lines++;
        if (line[0] != '{' || strstr(line, "\"component\":\"librdkafka\"") == NULL)
            fail_msg("not a hookline JSON line: %s", line);
        assert_non_null(strstr(line, "\"svc\":\"unit-kafka\""));
        assert_non_null(strstr(line, "\"client\":\"unit-log#producer-"));
        if (strstr(line, "\"level\":\"error\"") != NULL && strstr(line, "\"facility\":\"FAIL\"") &&
            strstr(line, "refused") != NULL)
            refused++;
    }
    assert_true(lines > 0);
    assert_true(refused > 0); /* librdkafka's level 3 stays an error */
    free(text);

    /* The same at the info threshold: the error lines are still there, debug ones are not. */
    text = refused_producer_log(HL_LOG_INFO, false);
    assert_non_null(strstr(text, "\"facility\":\"FAIL\""));
    assert_null(strstr(text, "\"level\":\"debug\""));
    free(text);

    /* The quiet callback: every line at debug, so nothing at the info threshold. */
    text = refused_producer_log(HL_LOG_INFO, true);
    assert_string_equal(text, "");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_layers),
        cmocka_unit_test(test_conf_errors),
        cmocka_unit_test(test_conf_secret_properties),
        cmocka_unit_test(test_new_refused),
        cmocka_unit_test(test_wait_ready_mock),
        cmocka_unit_test(test_wait_ready_timeout),
        cmocka_unit_test(test_produce_consume_headers),
        cmocka_unit_test(test_header_edges),
        cmocka_unit_test(test_delivery_err),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_log_lines_are_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
