/* Unit tests of the HTTP client and the replay engine against a small scripted server in a
 * thread: keep-alive, chunked bodies, caps, timeouts, reconnects, then per-message order,
 * retries after 503 and the skipping of a failed message's later events. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_client.h"
#include "replay.h"

typedef enum {
    MODE_OK,        /* 202 with Content-Length, keep-alive */
    MODE_CHUNKED,   /* 200 chunked */
    MODE_CLOSE,     /* 200 with Connection: close */
    MODE_BIG,       /* a body over the client's cap */
    MODE_GARBAGE,   /* not HTTP */
    MODE_SILENT,    /* never answers */
    MODE_DROP_IDLE, /* answers, then closes the connection without saying so */
    MODE_REPLAY,    /* the replay script: see reply_replay */
} mode_t_;

typedef struct {
    int lfd, port;
    pthread_t th;
    mode_t_ mode;
    atomic_int stop;
    atomic_int requests;
    pthread_mutex_t mu;
    char log[64][128]; /* "message_id event_type" per request, in arrival order */
    int nlog;
    atomic_int retry_seen; /* replay: 503s sent */
} server_t;

static server_t srv;

typedef struct {
    server_t *s;
    int fd;
} conn_arg_t;

static void json_field(const char *body, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = strstr(body, pat);
    out[0] = '\0';
    if (!p) return;
    p += strlen(pat);
    size_t n = 0;
    while (p[n] && p[n] != '"' && n + 1 < cap) n++;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The replay script: the first attempt of every "delivered" event gets 503 Retry-After: 0;
 * the "processed" event of message m1 gets 400; everything else 202. */
static int reply_replay(server_t *s, const char *body, char *out, size_t cap)
{
    char mid[64], type[32];
    json_field(body, "messageId", mid, sizeof(mid));
    json_field(body, "eventType", type, sizeof(type));
    pthread_mutex_lock(&s->mu);
    int seen_before = 0;
    for (int i = 0; i < s->nlog; i++) {
        char e[128];
        snprintf(e, sizeof(e), "%s %s", mid, type);
        if (strcmp(s->log[i], e) == 0) seen_before = 1;
    }
    if (s->nlog < 64) snprintf(s->log[s->nlog++], sizeof(s->log[0]), "%s %s", mid, type);
    pthread_mutex_unlock(&s->mu);
    const char *tail = strrchr(mid, 'm');
    if (strcmp(type, "processed") == 0 && tail && strcmp(tail, "m1") == 0)
        return snprintf(out, cap, "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}");
    if (strcmp(type, "delivered") == 0 && !seen_before) {
        atomic_fetch_add(&s->retry_seen, 1);
        return snprintf(
            out, cap, "HTTP/1.1 503 Unavailable\r\nRetry-After: 0\r\nContent-Length: 2\r\n\r\n{}");
    }
    return snprintf(
        out, cap,
        "HTTP/1.1 202 Accepted\r\nX-Request-Id: 0190a0b0-0000-7000-8000-00000000000%d\r\n"
        "Content-Length: 21\r\n\r\n{\"status\":\"accepted\"}",
        atomic_load(&s->requests) % 10);
}

static void *conn_main(void *arg)
{
    conn_arg_t *ca = arg;
    server_t *s = ca->s;
    char buf[65536];
    size_t have = 0;
    for (;;) {
        ssize_t r = recv(ca->fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0) break;
        have += (size_t)r;
        buf[have] = '\0';
        char *end;
        while ((end = strstr(buf, "\r\n\r\n"))) {
            size_t hl = (size_t)(end - buf) + 4;
            const char *cl = strcasestr(buf, "content-length:");
            size_t bl = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
            if (have < hl + bl) break;
            char body[8192];
            size_t cp = bl < sizeof(body) - 1 ? bl : sizeof(body) - 1;
            memcpy(body, buf + hl, cp);
            body[cp] = '\0';
            atomic_fetch_add(&s->requests, 1);
            char out[65536 + 4096];
            int n = 0, close_after = 0;
            switch (s->mode) {
            case MODE_OK:
                n = snprintf(out, sizeof(out),
                             "HTTP/1.1 202 Accepted\r\nX-Request-Id: abc-1\r\nRetry-After: 7\r\n"
                             "Content-Length: 5\r\n\r\nhello");
                break;
            case MODE_CHUNKED:
                n = snprintf(out, sizeof(out),
                             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
                break;
            case MODE_CLOSE:
                n = snprintf(out, sizeof(out),
                             "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                             "Content-Length: 2\r\n\r\nok");
                close_after = 1;
                break;
            case MODE_BIG:
                n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n");
                memset(out + n, 'x', 60000);
                n += 60000;
                break;
            case MODE_GARBAGE: n = snprintf(out, sizeof(out), "SMTP ready\r\n\r\n"); break;
            case MODE_SILENT: n = 0; break;
            case MODE_DROP_IDLE:
                n = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                close_after = 1;
                break;
            case MODE_REPLAY: n = reply_replay(s, body, out, sizeof(out)); break;
            }
            if (n > 0 && send(ca->fd, out, (size_t)n, MSG_NOSIGNAL) < 0) close_after = 1;
            memmove(buf, buf + hl + bl, have - hl - bl);
            have -= hl + bl;
            buf[have] = '\0';
            if (close_after) goto done;
        }
    }
done:
    close(ca->fd);
    free(ca);
    return NULL;
}

static void *accept_main(void *arg)
{
    server_t *s = arg;
    while (!atomic_load(&s->stop)) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        if (atomic_load(&s->stop)) {
            close(fd);
            break;
        }
        conn_arg_t *ca = malloc(sizeof(*ca));
        ca->s = s;
        ca->fd = fd;
        pthread_t t;
        pthread_create(&t, NULL, conn_main, ca);
        pthread_detach(t);
    }
    return NULL;
}

static int start(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    pthread_mutex_init(&srv.mu, NULL);
    srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(srv.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(srv.lfd, 64) != 0) return -1;
    socklen_t al = sizeof(a);
    getsockname(srv.lfd, (struct sockaddr *)&a, &al);
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.th, NULL, accept_main, &srv);
}

static int stop(void **state)
{
    (void)state;
    atomic_store(&srv.stop, 1);
    /* Wake accept() with one last connection. */
    cli_http_conn_t *c = cli_http_conn_new("127.0.0.1", srv.port, 0, 200);
    cli_http_response_t r;
    int rc = cli_http_request(c, "GET", "/", NULL, 0, NULL, 0, &r);
    (void)rc; /* only the accept() wake-up matters */
    cli_http_conn_free(c);
    pthread_join(srv.th, NULL);
    close(srv.lfd);
    return 0;
}

static void test_keepalive(void **state)
{
    (void)state;
    srv.mode = MODE_OK;
    cli_http_conn_t *c = cli_http_conn_new("127.0.0.1", srv.port, 0, 2000);
    cli_http_header_t h[] = {{"Content-Type", "application/json"}};
    for (int i = 0; i < 3; i++) {
        cli_http_response_t r;
        assert_int_equal(cli_http_request(c, "POST", "/x", h, 1, "{}", 2, &r), 0);
        assert_int_equal(r.status, 202);
        assert_string_equal(r.request_id, "abc-1");
        assert_int_equal(r.retry_after_s, 7);
        assert_int_equal(r.body_len, 5);
        assert_string_equal(r.body, "hello");
    }
    assert_int_equal(cli_http_conn_opens(c), 1);
    cli_http_conn_free(c);
}

static void test_chunked_and_close(void **state)
{
    (void)state;
    cli_http_conn_t *c = cli_http_conn_new("127.0.0.1", srv.port, 0, 2000);
    cli_http_response_t r;
    srv.mode = MODE_CHUNKED;
    assert_int_equal(cli_http_request(c, "GET", "/", NULL, 0, NULL, 0, &r), 0);
    assert_string_equal(r.body, "hello world");
    assert_int_equal(r.retry_after_s, -1);
    srv.mode = MODE_CLOSE;
    assert_int_equal(cli_http_request(c, "GET", "/", NULL, 0, NULL, 0, &r), 0);
    assert_int_equal(cli_http_request(c, "GET", "/", NULL, 0, NULL, 0, &r), 0);
    assert_string_equal(r.body, "ok");
    assert_int_equal(cli_http_conn_opens(c), 2);
    cli_http_conn_free(c);
}

static void test_caps_and_errors(void **state)
{
    (void)state;
    cli_http_response_t r;
    cli_http_conn_t *c = cli_http_conn_new("127.0.0.1", srv.port, 65536, 300);
    srv.mode = MODE_BIG;
    assert_int_equal(cli_http_request(c, "GET", "/", NULL, 0, NULL, 0, &r), HL_ETOOBIG);
    srv.mode = MODE_GARBAGE;
    assert_int_equal(cli_http_request(c, "GET", "/", NULL, 0, NULL, 0, &r), HL_EPARSE);
    srv.mode = MODE_SILENT;
    assert_int_equal(cli_http_request(c, "GET", "/", NULL, 0, NULL, 0, &r), HL_ETIMEDOUT);
    cli_http_conn_free(c);
    /* A refused connection. */
    c = cli_http_conn_new("127.0.0.1", 1, 0, 300);
    assert_int_equal(cli_http_request(c, "GET", "/", NULL, 0, NULL, 0, &r), HL_EIO);
    cli_http_conn_free(c);
}

static void test_idle_close_is_retried(void **state)
{
    (void)state;
    srv.mode = MODE_DROP_IDLE;
    cli_http_conn_t *c = cli_http_conn_new("127.0.0.1", srv.port, 0, 2000);
    cli_http_response_t r;
    assert_int_equal(cli_http_request(c, "POST", "/", NULL, 0, "a", 1, &r), 0);
    usleep(50000); /* the server has closed by now */
    assert_int_equal(cli_http_request(c, "POST", "/", NULL, 0, "b", 1, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(cli_http_conn_opens(c), 2);
    cli_http_conn_free(c);
}

static void test_parse_url(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(cli_http_parse_url("http://127.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(cli_http_parse_url("localhost", host, sizeof(host), &port), 0);
    assert_int_equal(port, 80);
    assert_int_equal(cli_http_parse_url("http://[::1]:9/x", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9);
    assert_int_equal(cli_http_parse_url("https://a:1", host, sizeof(host), &port), HL_EINVAL);
    assert_int_equal(cli_http_parse_url("a:0", host, sizeof(host), &port), HL_EINVAL);
    assert_int_equal(cli_http_parse_url("a:99999", host, sizeof(host), &port), HL_EINVAL);
    assert_int_equal(cli_http_parse_url("a:x", host, sizeof(host), &port), HL_EINVAL);
    assert_int_equal(cli_http_parse_url(":80", host, sizeof(host), &port), HL_EINVAL);
    assert_int_equal(cli_http_parse_url("", host, sizeof(host), &port), HL_EINVAL);
}

static void test_replay_order_retry_skip(void **state)
{
    (void)state;
    srv.mode = MODE_REPLAY;
    cli_wl_synth_opts_t so = {.seed = 3, .count = 12, .events_per_message = 3, .run_id = "u"};
    cli_workload_t w = {0};
    char err[128];
    assert_int_equal(cli_wl_synth(&so, &w, err, sizeof(err)), 0);
    cli_replay_opts_t ro = {.host = "127.0.0.1",
                            .port = srv.port,
                            .path = "/v1/webhooks/demo",
                            .content_type = "application/json",
                            .concurrency = 2,
                            .max_retries = 3,
                            .max_retry_wait_ms = 1000,
                            .timeout_ms = 2000};
    cli_replay_results_t r;
    assert_int_equal(cli_replay_run(&ro, &w, &r), 0);
    /* m1: processed refused (400), its delivered and open never sent. */
    assert_int_equal(r.rejected, 1);
    assert_int_equal(r.skipped, 2);
    assert_int_equal(w.msgs[1].reqs[1].out.status, 0);
    /* Three other messages each had their delivered event retried once after a 503. */
    assert_int_equal(r.retries, 3);
    assert_int_equal(atomic_load(&srv.retry_seen), 3);
    assert_int_equal(r.accepted, 9);
    assert_int_equal(r.sent, 10);
    assert_int_equal(w.msgs[0].reqs[1].out.attempts, 2);
    assert_int_equal(w.msgs[0].reqs[1].out.status, 202);
    assert_true(w.msgs[0].reqs[1].out.request_id[0] != '\0');
    assert_int_equal(hl_hist_count(r.latency_us), 10);
    /* Per message, the server saw processed, delivered (twice), open in that order. */
    for (size_t m = 0; m < w.nmsgs; m++) {
        if (m == 1) continue;
        int last = -1;
        for (int i = 0; i < srv.nlog; i++) {
            if (strncmp(srv.log[i], w.msgs[m].message_id, strlen(w.msgs[m].message_id)) != 0 ||
                srv.log[i][strlen(w.msgs[m].message_id)] != ' ')
                continue;
            const char *type = srv.log[i] + strlen(w.msgs[m].message_id) + 1;
            int idx = strcmp(type, "processed") == 0 ? 0 : strcmp(type, "delivered") == 0 ? 1 : 2;
            assert_true(idx >= last);
            last = idx;
        }
        assert_int_equal(last, 2);
    }
    cli_replay_results_free(&r);
    cli_wl_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keepalive, start, stop),
        cmocka_unit_test_setup_teardown(test_chunked_and_close, start, stop),
        cmocka_unit_test_setup_teardown(test_caps_and_errors, start, stop),
        cmocka_unit_test_setup_teardown(test_idle_close_is_retried, start, stop),
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test_setup_teardown(test_replay_order_retry_skip, start, stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
