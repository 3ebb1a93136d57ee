/* The least an ingress built on civetweb and librdkafka can do per request, for measuring what
 * the design itself costs: read the body, and either answer 202 at once (civetweb alone) or
 * produce the body keyed by a fresh id with the ingress's producer settings (acks=all,
 * idempotence, linger 2 ms), wait for its delivery report and answer 202 (or 503). No
 * signature, no parsing, no lineage, no metrics, no logging: not a server for anything but
 * bench/floor.
 *
 * Usage: floor-server PORT THREADS [BROKERS TOPIC]
 * Runs until SIGINT or SIGTERM. */
#include <civetweb.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define USAGE "usage: floor-server PORT THREADS [BROKERS TOPIC]\n"
#define BODY_MAX (1 << 20)

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    rd_kafka_resp_err_t err;
} waiter_t;

static rd_kafka_t *rk;
static rd_kafka_topic_t *topic;
static atomic_bool stop, stop_polling;
static atomic_uint_fast64_t next_key;

static void on_delivery(rd_kafka_t *k, const rd_kafka_message_t *m, void *opaque)
{
    (void)k, (void)opaque;
    waiter_t *w = m->_private;
    pthread_mutex_lock(&w->mu);
    w->err = m->err;
    w->done = true;
    pthread_mutex_unlock(&w->mu);
    /* After the unlock, as the ingress does: the waiter belongs to its worker thread for the
     * thread's whole life, so a signal that comes late finds it alive. */
    pthread_cond_signal(&w->cv);
}

static void *poll_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_polling)) rd_kafka_poll(rk, 100);
    return NULL;
}

/* The calling worker's waiter, made on its first request and never freed (the program ends
 * with its threads). */
static waiter_t *thread_waiter(void)
{
    static __thread waiter_t *w;
    if (w == NULL && (w = calloc(1, sizeof *w)) != NULL) {
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
    }
    return w;
}

/* Produces the body and waits for its report; true when the broker has it. */
static bool produce_and_wait(const char *body, size_t len)
{
    waiter_t *w = thread_waiter();
    if (w == NULL) return false;
    pthread_mutex_lock(&w->mu);
    w->done = false;
    pthread_mutex_unlock(&w->mu);
    char key[24];
    int klen =
        snprintf(key, sizeof key, "%llu", (unsigned long long)atomic_fetch_add(&next_key, 1));
    if (rd_kafka_produce(topic, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)body, len, key,
                         (size_t)klen, w) != 0)
        return false;
    pthread_mutex_lock(&w->mu);
    while (!w->done) pthread_cond_wait(&w->cv, &w->mu);
    bool ok = w->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

static int handler(struct mg_connection *c, void *arg)
{
    (void)arg;
    static __thread char *buf;
    if (buf == NULL && (buf = malloc(BODY_MAX)) == NULL) return 500;
    size_t len = 0;
    int n;
    while (len < BODY_MAX && (n = mg_read(c, buf + len, BODY_MAX - len)) > 0) len += (size_t)n;
    bool ok = rk == NULL || produce_and_wait(buf, len);
    static const char ok_answer[] = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    static const char bad_answer[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    if (ok)
        mg_write(c, ok_answer, sizeof ok_answer - 1);
    else
        mg_write(c, bad_answer, sizeof bad_answer - 1);
    return ok ? 202 : 503;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, true);
}

static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) return false;
    *out = v;
    return true;
}

static rd_kafka_t *make_producer(const char *brokers, char *err, size_t cap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[] = {"bootstrap.servers",
                        brokers,
                        "enable.idempotence",
                        "true",
                        "acks",
                        "all",
                        "linger.ms",
                        "2",
                        "socket.nagle.disable",
                        "true",
                        "partitioner",
                        "murmur2_random",
                        NULL};
    for (int i = 0; kv[i]; i += 2)
        if (rd_kafka_conf_set(conf, kv[i], kv[i + 1], err, cap) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    return rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, cap);
}

int main(int argc, char **argv)
{
    unsigned long port, threads;
    if ((argc != 3 && argc != 5) || !parse_uint(argv[1], 1, 65535, &port) ||
        !parse_uint(argv[2], 1, 4096, &threads)) {
        fputs(USAGE, stderr);
        return 2;
    }
    pthread_t poller;
    if (argc == 5) {
        char err[512];
        rk = make_producer(argv[3], err, sizeof err);
        if (rk == NULL) {
            fprintf(stderr, "floor-server: kafka: %s\n", err);
            return 2;
        }
        topic = rd_kafka_topic_new(rk, argv[4], NULL);
        if (topic == NULL) {
            fprintf(stderr, "floor-server: kafka: topic %s: %s\n", argv[4],
                    rd_kafka_err2str(rd_kafka_last_error()));
            return 2;
        }
        if (pthread_create(&poller, NULL, poll_main, NULL) != 0) {
            fputs("floor-server: cannot start the poll thread\n", stderr);
            return 1;
        }
    }
    char ports[32], nthreads[16];
    snprintf(ports, sizeof ports, "127.0.0.1:%lu", port);
    snprintf(nthreads, sizeof nthreads, "%lu", threads);
    const char *opts[] = {"listening_ports",   ports,  "num_threads", nthreads,
                          "enable_keep_alive", "yes",  "tcp_nodelay", "1",
                          "listen_backlog",    "1024", NULL};
    mg_init_library(0);
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    struct mg_context *ctx = mg_start(&cb, NULL, opts);
    if (ctx == NULL) {
        fprintf(stderr, "floor-server: cannot listen on %s\n", ports);
        return 1;
    }
    mg_set_request_handler(ctx, "/", handler, NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("floor-server: listening on %s%s\n", ports, rk ? " (producing)" : "");
    fflush(stdout);
    while (!atomic_load(&stop)) sleep(1);
    mg_stop(ctx); /* waits for the workers, whose reports the poll thread still serves */
    if (rk != NULL) {
        atomic_store(&stop_polling, true);
        pthread_join(poller, NULL);
        rd_kafka_flush(rk, 10000);
        rd_kafka_topic_destroy(topic);
        rd_kafka_destroy(rk);
    }
    mg_exit_library();
    return 0;
}
