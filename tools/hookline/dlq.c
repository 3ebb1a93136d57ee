/* `hookline dlq list | redrive`: a thin Kafka client of the dead-letter topic. `list` reads
 * every partition from its start to the high watermark seen at start, without joining a group
 * or committing anything; `redrive` produces the chosen records back onto the events topic
 * (same key, same bytes, the original headers without the dead-letter ones), acks=all. */
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hl/kafka.h"
#include "hl/proto.h"
#include "hl/util.h"

#define DLQ_MAX_PARTITIONS 256
#define DLQ_MAX_RECORDS 100000

typedef struct {
    const char *brokers, *topic, *events_topic, *request_id;
    int64_t limit;
    int all, redrive;
} dlq_args_t;

/* librdkafka's own log lines are not printed: the last one is kept (with a count) and shown in
 * one summary line when something fails. Called from librdkafka's threads. */
static struct {
    pthread_mutex_t lock;
    char last[512];
    long count;
} klog = {PTHREAD_MUTEX_INITIALIZER, "", 0};

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level > 4) return; /* warnings and worse */
    /* "[thrd:…]: host:port/bootstrap: Connect to … failed: …" → "Connect to … failed: …" */
    if (buf[0] == '[' && strstr(buf, "]: ")) buf = strstr(buf, "]: ") + 3;
    const char *colon = strstr(buf, ": ");
    size_t head = colon ? (size_t)(colon - buf) : 0;
    if (colon && memchr(buf, '/', head) && !memchr(buf, ' ', head)) buf = colon + 2;
    size_t n = strcspn(buf, "(");
    while (n > 0 && buf[n - 1] == ' ') n--;
    pthread_mutex_lock(&klog.lock);
    snprintf(klog.last, sizeof(klog.last), "%.*s", (int)n, buf);
    (void)fac;
    klog.count++;
    pthread_mutex_unlock(&klog.lock);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    log_cb(rk, 3, rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* One line on what the broker said, when it said anything. */
static void print_kafka_log(void)
{
    pthread_mutex_lock(&klog.lock);
    if (klog.count)
        fprintf(stderr, "  the client's last complaint: %s (%ld in all)\n", klog.last, klog.count);
    pthread_mutex_unlock(&klog.lock);
}

static rd_kafka_t *make_client(rd_kafka_type_t type, const dlq_args_t *a, char *err, size_t cap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    int ok =
        rd_kafka_conf_set(conf, "bootstrap.servers", a->brokers, err, cap) == RD_KAFKA_CONF_OK &&
        rd_kafka_conf_set(conf, "client.id", "hookline-cli", err, cap) == RD_KAFKA_CONF_OK;
    if (ok && type == RD_KAFKA_CONSUMER)
        ok =
            rd_kafka_conf_set(conf, "group.id", "hookline-cli-dlq", err, cap) == RD_KAFKA_CONF_OK &&
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, cap) == RD_KAFKA_CONF_OK &&
            rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, cap) == RD_KAFKA_CONF_OK;
    if (ok && type == RD_KAFKA_PRODUCER)
        ok = rd_kafka_conf_set(conf, "acks", "all", err, cap) == RD_KAFKA_CONF_OK &&
             rd_kafka_conf_set(conf, "enable.idempotence", "true", err, cap) == RD_KAFKA_CONF_OK;
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return hl_kafka_new(type, conf, err, cap);
}

static void print_record(const rd_kafka_message_t *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "key", m->key ? json_stringn(m->key, m->key_len) : json_null());
    json_object_set_new(o, "bytes", json_integer((json_int_t)m->len));
    rd_kafka_headers_t *hdrs = NULL;
    json_t *h = json_object();
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t vl;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &val, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
            json_object_set_new(h, name, val ? json_stringn(val, vl) : json_null());
    }
    json_object_set_new(o, "headers", h);
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(o);
}

static int matches(const rd_kafka_message_t *m, const dlq_args_t *a)
{
    if (a->all || !a->request_id) return 1;
    rd_kafka_headers_t *hdrs = NULL;
    const void *v;
    size_t vl;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    if (rd_kafka_header_get_last(hdrs, HL_HDR_REQUEST_ID, &v, &vl) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    return vl == strlen(a->request_id) && memcmp(v, a->request_id, vl) == 0;
}

/* Produces one dead letter back onto the events topic. */
static int redrive_one(rd_kafka_t *p, const rd_kafka_message_t *m, const dlq_args_t *a)
{
    rd_kafka_headers_t *in = NULL, *out = rd_kafka_headers_new(8);
    if (rd_kafka_message_headers(m, &in) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t vl;
        for (size_t i = 0;
             rd_kafka_header_get_all(in, i, &name, &val, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
            /* The dead letter's own headers go: the record is an event again. */
            if (!strcmp(name, HL_HDR_ERROR) || !strcmp(name, HL_HDR_ERROR_DETAIL) ||
                !strcmp(name, HL_HDR_ATTEMPTS) || !strcmp(name, HL_HDR_FAILED_US))
                continue;
            rd_kafka_header_add(out, name, -1, val, (ssize_t)vl);
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(a->events_topic), RD_KAFKA_V_KEY(m->key, m->key_len),
        RD_KAFKA_V_VALUE(m->payload, m->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(out), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(out); /* only taken on success */
        fprintf(stderr, "hookline: redrive %d/%lld: %s\n", m->partition, (long long)m->offset,
                rd_kafka_err2str(e));
        return -1;
    }
    rd_kafka_poll(p, 0);
    return 0;
}

static int run(const dlq_args_t *a)
{
    char err[512];
    rd_kafka_t *c = make_client(RD_KAFKA_CONSUMER, a, err, sizeof(err));
    rd_kafka_t *p = a->redrive ? make_client(RD_KAFKA_PRODUCER, a, err, sizeof(err)) : NULL;
    rd_kafka_topic_partition_list_t *tpl = NULL;
    const rd_kafka_metadata_t *md = NULL;
    int code = CLI_EXIT_USAGE;
    long long seen = 0, chosen = 0, failed = 0;
    if (!c || (a->redrive && !p)) {
        fprintf(stderr, "hookline: kafka: %s\n", err);
        goto out;
    }
    rd_kafka_topic_t *t = rd_kafka_topic_new(c, a->topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(c, 0, t, &md, 5000);
    rd_kafka_topic_destroy(t);
    if (e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__TIMED_OUT ||
        e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        fprintf(stderr,
                "hookline: Kafka broker not reachable at %s (%s): " CLI_STACK_HINT
                " (or --brokers HOST:PORT)\n",
                a->brokers, rd_kafka_err2str(e));
        print_kafka_log();
        goto out;
    }
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "hookline: kafka %s: topic %s: %s\n", a->brokers, a->topic,
                rd_kafka_err2str(e ? e : md->topics[0].err));
        print_kafka_log();
        goto out;
    }
    int np = md->topics[0].partition_cnt;
    if (np > DLQ_MAX_PARTITIONS) np = DLQ_MAX_PARTITIONS;
    int64_t high[DLQ_MAX_PARTITIONS];
    int open = 0;
    tpl = rd_kafka_topic_partition_list_new(np);
    for (int i = 0; i < np; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(c, a->topic, i, &lo, &hi, 10000)) {
            fprintf(stderr, "hookline: kafka: watermarks of %s/%d unavailable\n", a->topic, i);
            goto out;
        }
        high[i] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(tpl, a->topic, i)->offset = lo;
            open++;
        }
    }
    if (open && rd_kafka_assign(c, tpl)) {
        fprintf(stderr, "hookline: kafka: cannot assign %s\n", a->topic);
        goto out;
    }
    int64_t deadline = hl_mono_us() + 30000000;
    while (open > 0 && seen < a->limit && hl_mono_us() < deadline && !cli_replay_stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            open--;
        } else if (!m->err && m->partition < np && m->offset < high[m->partition]) {
            seen++;
            if (matches(m, a)) {
                chosen++;
                if (a->redrive)
                    failed += redrive_one(p, m, a) != 0;
                else
                    print_record(m);
            }
            if (m->offset + 1 >= high[m->partition]) open--;
        } else if (m->err) {
            fprintf(stderr, "hookline: kafka: %s\n", rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    if (p && rd_kafka_flush(p, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) failed = chosen;
    if (a->redrive)
        printf("redriven %lld of %lld dead letters to %s%s\n", chosen - failed, seen,
               a->events_topic, failed ? " (some failed)" : "");
    else
        fprintf(stderr, "%lld dead letters listed\n", chosen);
    code = failed                                     ? CLI_EXIT_USAGE
           : (a->redrive && a->request_id && !chosen) ? CLI_EXIT_FAIL
                                                      : CLI_EXIT_PASS;
out:
    if (md) rd_kafka_metadata_destroy(md);
    if (tpl) rd_kafka_topic_partition_list_destroy(tpl);
    if (c) {
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
    }
    if (p) rd_kafka_destroy(p);
    return code;
}

int cli_cmd_dlq(int argc, char **argv)
{
    static const struct option opts[] = {{"brokers", required_argument, NULL, 'b'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"events-topic", required_argument, NULL, 'e'},
                                         {"request-id", required_argument, NULL, 'r'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    dlq_args_t a = {.brokers = "127.0.0.1:9092",
                    .topic = HL_TOPIC_DLQ,
                    .events_topic = HL_TOPIC_EVENTS,
                    .limit = 1000};
    const char *usage =
        "usage: hookline dlq list [--limit N] [--request-id ID] [options]\n"
        "       hookline dlq redrive (--request-id ID | --all) [options]\n"
        "list: print each dead letter (partition, offset, key, headers) as one JSON line, from\n"
        "the topic's start, without joining a group; redrive: produce the chosen dead letters\n"
        "back onto the events topic (same key and bytes, acks=all)\n"
        "  --limit N                  list: at most N records [1000]\n"
        "  --request-id ID            only the dead letter of this request id (a UUID)\n"
        "  --all                      redrive: every dead letter\n"
        "  --brokers HOST:PORT,...    Kafka [127.0.0.1:9092]\n"
        "  --topic NAME               the dead-letter topic [" HL_TOPIC_DLQ "]\n"
        "  --events-topic NAME        where redrive sends [" HL_TOPIC_EVENTS "]\n";
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2 || (strcmp(argv[1], "list") && strcmp(argv[1], "redrive"))) {
        fprintf(stderr, "hookline dlq: %s\n%s",
                argc < 2 ? "which action? list or redrive" : "unknown action (list or redrive)",
                usage);
        return CLI_EXIT_USAGE;
    }
    a.redrive = strcmp(argv[1], "redrive") == 0;
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'b': a.brokers = optarg; break;
        case 't': a.topic = optarg; break;
        case 'e': a.events_topic = optarg; break;
        case 'r': a.request_id = optarg; break;
        case 'a': a.all = 1; break;
        case 'l':
            if (cli_opt_i64("limit", optarg, 1, DLQ_MAX_RECORDS, &a.limit)) return CLI_EXIT_USAGE;
            break;
        default: fputs(usage, ch == 'h' ? stdout : stderr); return ch == 'h' ? 0 : CLI_EXIT_USAGE;
        }
    }
    char why[256];
    if (optind != argc) {
        fprintf(stderr, "hookline dlq: unexpected argument '%s'\n%s", argv[optind], usage);
        return CLI_EXIT_USAGE;
    }
    if (a.redrive && !a.all == !a.request_id) {
        fprintf(stderr, "hookline dlq redrive: give --request-id ID or --all (one of them)\n");
        return CLI_EXIT_USAGE;
    }
    if (!a.redrive && a.all) {
        fprintf(stderr, "hookline dlq list: --all is redrive's option (list shows every one)\n");
        return CLI_EXIT_USAGE;
    }
    if (a.request_id && cli_request_id_problem(a.request_id, why, sizeof(why)) != 0) {
        fprintf(stderr, "hookline dlq: --request-id '%s' is not a request id: %s\n", a.request_id,
                why);
        return CLI_EXIT_USAGE;
    }
    if (a.redrive) a.limit = DLQ_MAX_RECORDS;
    return run(&a);
}
