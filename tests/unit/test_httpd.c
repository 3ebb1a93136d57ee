/* Unit tests for hl_httpd over real sockets: the built-in endpoints, registered handlers, JSON
 * errors, header and body deadlines, header caps, start failures, and the hooks of
 * hl_httpd_start_with. The TLS floor is in test_httpd_tls.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hl/httpd.h"
#include "hl/util.h"
#include "http_client.h"

/* ---- the server under test ---- */

static atomic_bool ready_flag;

static bool is_ready(void *arg)
{
    return atomic_load(&ready_flag);
}

static int echo_handler(struct mg_connection *c, void *arg)
{
    static const char body[] = "{\"echo\":true}";
    hl_http_send(c, 202, "application/json", "rid-echo", "X-Extra: 1\r\n", body, sizeof body - 1);
    return 202;
}

static int error_handler(struct mg_connection *c, void *arg)
{
    hl_http_error(c, 400, "invalid_json", "bad \"quote\"\n\x01 end", "rid-err",
                  "Retry-After: 3\r\n");
    return 400;
}

static int injection_handler(struct mg_connection *c, void *arg)
{
    hl_http_error(c, 401, "bad_signature", "no", "evil\r\nSet-Cookie: x=1", NULL);
    return 401;
}

/* Reads the body with hl_http_read_body (64-byte buffer, 500 ms deadline) and answers what
 * it returned: {"rc":"OK","len":N}. */
#define BODY_CAP 64
#define BODY_DEADLINE_MS 500
static int body_handler(struct mg_connection *c, void *arg)
{
    char buf[BODY_CAP], out[128];
    size_t len = 99;
    int rc = hl_http_read_body(c, buf, sizeof buf, hl_mono_us() + BODY_DEADLINE_MS * 1000, &len);
    int n = snprintf(out, sizeof out, "{\"rc\":\"%s\",\"len\":%zu}",
                     rc == HL_OK ? "OK" : hl_errname(rc), len);
    hl_http_send(c, 200, "application/json", NULL, NULL, out, (size_t)n);
    return 200;
}

typedef struct {
    hl_httpd_t *srv;
    hl_metrics_t *metrics;
    int port;
} fixture_t;

static int start_plain(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->metrics = hl_metrics_new();
    hl_counter_add(hl_metrics_counter(f->metrics, "unit_requests_total", "Requests.", NULL), 3);
    char listen[32];
    f->port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", f->port);
    hl_http_config_t h = {.listen = listen, .threads = 4, .request_timeout_ms = 2000};
    char err[256] = "";
    f->srv = hl_httpd_start(&h, f->metrics, is_ready, NULL, err, sizeof err);
    if (f->srv == NULL) fail_msg("start: %s", err);
    hl_httpd_handle(f->srv, "/echo$", echo_handler, NULL);
    hl_httpd_handle(f->srv, "/fail$", error_handler, NULL);
    hl_httpd_handle(f->srv, "/inject$", injection_handler, NULL);
    hl_httpd_handle(f->srv, "/body$", body_handler, NULL);
    assert_non_null(hl_httpd_ctx(f->srv));
    *state = f;
    return 0;
}

static int stop_plain(void **state)
{
    fixture_t *f = *state;
    hl_httpd_stop(f->srv);
    hl_metrics_free(f->metrics);
    free(f);
    return 0;
}

static void test_healthz(void **state)
{
    fixture_t *f = *state;
    static resp_t r;
    get(f->port, "GET", "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    assert_int_equal(r.content_length, (long)r.body_len);
    char ct[64];
    assert_true(resp_header(&r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "application/json");
    get(f->port, "POST", "/healthz", &r);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.body, "method_not_allowed"));
}

static void test_readyz_both_states(void **state)
{
    fixture_t *f = *state;
    static resp_t r;
    atomic_store(&ready_flag, true);
    get(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    atomic_store(&ready_flag, false);
    get(f->port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 503);
    char v[16];
    assert_true(resp_header(&r, "Retry-After", v, sizeof v));
    assert_int_equal(r.content_length, (long)r.body_len);
    atomic_store(&ready_flag, true);
}

static void test_metrics(void **state)
{
    fixture_t *f = *state;
    static resp_t r;
    get(f->port, "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    char ct[64];
    assert_true(resp_header(&r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "text/plain; version=0.0.4");
    assert_non_null(strstr(r.body, "unit_requests_total 3"));
    assert_int_equal(r.content_length, (long)r.body_len);
}

static void test_handler_and_keep_alive(void **state)
{
    fixture_t *f = *state;
    static resp_t r;
    conn_t c = {.fd = tcp_connect(f->port)};
    /* Two requests on one connection: framing by Content-Length must be exact. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(request_on(&c, "POST", "/echo", "Content-Length: 0\r\n", true, &r), 0);
        assert_int_equal(r.status, 202);
        assert_string_equal(r.body, "{\"echo\":true}");
        char v[64];
        assert_true(resp_header(&r, "X-Request-Id", v, sizeof v));
        assert_string_equal(v, "rid-echo");
        assert_true(resp_header(&r, "X-Extra", v, sizeof v));
        assert_string_equal(v, "1");
    }
    /* HEAD announces the length but sends no body: the next answer must start cleanly. */
    assert_int_equal(request_on(&c, "HEAD", "/healthz", NULL, true, &r) == 0 ? r.status : -1, 200);
    assert_int_equal(r.content_length, 15);
    assert_int_equal(request_on(&c, "GET", "/healthz", NULL, true, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    close(c.fd);
}

static void test_error_answer(void **state)
{
    fixture_t *f = *state;
    static resp_t r;
    get(f->port, "GET", "/fail", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"error\":{\"code\":\"invalid_json\",\"message\":\"bad "
                                "\\\"quote\\\"\\n\\u0001 end\"},\"request_id\":\"rid-err\"}");
    assert_int_equal(r.content_length, (long)r.body_len);
    char v[64];
    assert_true(resp_header(&r, "X-Request-Id", v, sizeof v));
    assert_string_equal(v, "rid-err");
    assert_true(resp_header(&r, "Retry-After", v, sizeof v));
    assert_string_equal(v, "3");
    /* A request id carrying CR/LF is not echoed into the headers. */
    get(f->port, "GET", "/inject", &r);
    assert_int_equal(r.status, 401);
    assert_false(resp_header(&r, "Set-Cookie", v, sizeof v));
    assert_false(resp_header(&r, "X-Request-Id", v, sizeof v));
    /* Unknown paths get civetweb's 404 (no document root is served). */
    get(f->port, "GET", "/etc/passwd", &r);
    assert_int_equal(r.status, 404);
}

/* Sends GET /healthz with one extra header of `size` bytes; returns the status or -1 when the
 * server closed (or reset) the connection without an answer. */
static int get_with_header(int port, size_t size)
{
    static char req[40 * 1024];
    static resp_t r;
    assert_true(size + 128 < sizeof req);
    int n = snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'a', size);
    n += (int)size;
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\nConnection: close\r\n\r\n");
    conn_t c = {.fd = tcp_connect(port)};
    /* The server may stop reading early; a short write or a reset is part of the answer. */
    ssize_t w = send(c.fd, req, (size_t)n, MSG_NOSIGNAL);
    (void)w;
    int rc = read_response(&c, &r);
    close(c.fd);
    return rc == 0 ? r.status : -1;
}

static void test_header_cap(void **state)
{
    fixture_t *f = *state;
    /* Well under the 16 KiB cap on request line plus headers: served. */
    assert_int_equal(get_with_header(f->port, 8 * 1024), 200);
    /* Over it: refused, never served. */
    int status = get_with_header(f->port, 24 * 1024);
    assert_true(status == -1 || status >= 400);
}

/* Sends head, then body one byte every gap_ms (all at once when gap_ms is 0), stopping early
 * when the server answers; then reads the answer. Returns the ms from the head to the answer. */
static long post_body(int port, const char *head, const char *body, int gap_ms, bool half_close,
                      resp_t *r)
{
    conn_t c = {.fd = tcp_connect(port)};
    int64_t t0 = hl_mono_us();
    assert_int_equal(send(c.fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    size_t blen = strlen(body);
    if (gap_ms == 0) {
        assert_int_equal(send(c.fd, body, blen, MSG_NOSIGNAL), (ssize_t)blen);
    } else {
        for (size_t i = 0; i < blen; i++) {
            if (send(c.fd, body + i, 1, MSG_NOSIGNAL) != 1) break;
            struct pollfd p = {.fd = c.fd, .events = POLLIN};
            if (poll(&p, 1, gap_ms) > 0) break; /* answered (or closed) */
        }
    }
    if (half_close) shutdown(c.fd, SHUT_WR);
    assert_int_equal(read_response(&c, r), 0);
    long ms = (long)((hl_mono_us() - t0) / 1000);
    close(c.fd);
    return ms;
}

static void test_body_read_deadline(void **state)
{
    fixture_t *f = *state;
    static resp_t r;
    static const char head10[] = "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
    post_body(f->port, head10, "0123456789", 0, false, &r);
    assert_string_equal(r.body, "{\"rc\":\"OK\",\"len\":10}");

    /* 60 bytes at one every 100 ms would take 6 s; each wait is far below the server's 2 s
     * request_timeout_ms, so only the deadline (500 ms) ends the read, and the answer comes long
     * before the client would have finished. */
    static const char head60[] = "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n";
    char slow[61];
    memset(slow, 'a', 60);
    slow[60] = '\0';
    long ms = post_body(f->port, head60, slow, 100, false, &r);
    assert_non_null(strstr(r.body, "\"rc\":\"ETIMEDOUT\""));
    assert_true(ms < 4000);
    int len = -1;
    assert_int_equal(sscanf(strstr(r.body, "\"len\":"), "\"len\":%d", &len), 1);
    assert_true(len >= 1 && len < 60);

    /* Larger than the buffer: stops at the cap. */
    static const char head100[] = "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    char big[101];
    memset(big, 'b', 100);
    big[100] = '\0';
    post_body(f->port, head100, big, 0, false, &r);
    assert_string_equal(r.body, "{\"rc\":\"ETOOBIG\",\"len\":64}");

    /* A chunked body ends with its last chunk. */
    static const char chunked[] =
        "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    post_body(f->port, chunked, "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n", 0, false, &r);
    assert_string_equal(r.body, "{\"rc\":\"OK\",\"len\":8}");

    /* The client gives up half way: an I/O error, not a timeout. */
    post_body(f->port, head10, "01234", 0, true, &r);
    assert_string_equal(r.body, "{\"rc\":\"EIO\",\"len\":5}");

    /* The same worker threads still serve ordinary requests afterwards. */
    post_body(f->port, head10, "abcdefghij", 0, false, &r);
    assert_string_equal(r.body, "{\"rc\":\"OK\",\"len\":10}");
}

/* The headers are due within request_timeout_ms (2 s here) as a whole. A client that sends a
 * last piece just before then and stops gets 408 at the deadline, not one more full wait
 * (civetweb alone would wait up to 2 s after that last piece). */
static void test_header_deadline(void **state)
{
    fixture_t *f = *state;
    static resp_t r;
    conn_t c = {.fd = tcp_connect(f->port)};
    int64_t t0 = hl_mono_us();
    static const char line[] = "GET /healthz HTTP/1.1\r\n", host[] = "Host: x\r\n";
    assert_int_equal(send(c.fd, line, sizeof line - 1, MSG_NOSIGNAL), (ssize_t)sizeof line - 1);
    struct timespec nap = {1, 800 * 1000 * 1000};
    nanosleep(&nap, NULL);
    assert_int_equal(send(c.fd, host, sizeof host - 1, MSG_NOSIGNAL), (ssize_t)sizeof host - 1);
    assert_int_equal(read_response(&c, &r), 0);
    long ms = (long)((hl_mono_us() - t0) / 1000);
    assert_int_equal(r.status, 408);
    assert_non_null(strstr(r.body, "request_timeout"));
    char v[32];
    assert_true(resp_header(&r, "Connection", v, sizeof v));
    assert_string_equal(v, "close");
    char byte;
    assert_true(read(c.fd, &byte, 1) <= 0);
    close(c.fd);
    assert_true(ms >= 1900 && ms < 3300);
    /* The worker is free again. */
    get(f->port, "GET", "/healthz", &r);
    assert_int_equal(r.status, 200);
}

/* A body the handler never reads must not keep the worker: the answer comes at once and the
 * connection closes, although the client goes on trickling the body it announced. */
static void test_unread_body_closes(void **state)
{
    fixture_t *f = *state;
    static resp_t r;
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\na";
    conn_t c = {.fd = tcp_connect(f->port)};
    assert_int_equal(send(c.fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    assert_int_equal(read_response(&c, &r), 0);
    assert_int_equal(r.status, 200);
    char v[32];
    assert_true(resp_header(&r, "Connection", v, sizeof v));
    assert_string_equal(v, "close");
    /* Keep trickling (one byte every 100 ms, 5 s for the whole body): the server must end the
     * connection without waiting for it. */
    bool eof = false;
    int64_t t0 = hl_mono_us();
    while (!eof && hl_mono_us() - t0 < 3000000) {
        if (send(c.fd, "b", 1, MSG_NOSIGNAL) != 1) {
            eof = true; /* reset: closed as well */
            break;
        }
        struct pollfd p = {.fd = c.fd, .events = POLLIN};
        char byte;
        if (poll(&p, 1, 100) > 0) eof = read(c.fd, &byte, 1) <= 0;
    }
    close(c.fd);
    assert_true(eof);
    assert_true(hl_mono_us() - t0 < 1500000);
}

static void test_start_failures(void **state)
{
    char err[256] = "";
    /* Port already taken by someone else. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    char listen_spec[32];
    snprintf(listen_spec, sizeof listen_spec, "127.0.0.1:%d", ntohs(a.sin_port));
    hl_http_config_t h = {.listen = listen_spec, .threads = 2, .request_timeout_ms = 1000};
    assert_null(hl_httpd_start(&h, NULL, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, listen_spec));
    close(fd);
    /* Empty listen address. */
    hl_http_config_t empty = {.listen = "", .threads = 2};
    assert_null(hl_httpd_start(&empty, NULL, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "listen"));
    /* Missing certificate file. */
    snprintf(listen_spec, sizeof listen_spec, "127.0.0.1:%d", free_port());
    hl_http_config_t tls = {.listen = listen_spec, .threads = 2, .tls_cert = "/nonexistent.pem"};
    assert_null(hl_httpd_start(&tls, NULL, NULL, NULL, err, sizeof err));
    assert_true(strlen(err) > 0);
    hl_httpd_stop(NULL);
}

/* A TCP socket on addr:port: listening when listen_too, else connected (-1 when refused). */
static int tcp_on(const char *addr, int port, bool listen_too)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    assert_int_equal(inet_pton(AF_INET, addr, &a.sin_addr), 1);
    int rc = listen_too ? bind(fd, (struct sockaddr *)&a, sizeof a) : 0;
    if (rc == 0) rc = listen_too ? listen(fd, 4) : connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A stop with nobody connecting: civetweb's accepting thread waits in poll() for up to 2 s
 * before it sees the stop, unless the stop wakes it (by shutting its listening sockets down).
 * Generous bound: an idle stop takes a few milliseconds; one that waits out the poll takes
 * well over a second. Afterwards the server's port takes no connection, and another listener
 * of the process on the same port (another address) still does: the stop touches only the
 * server's own sockets. */
static void test_stop_is_prompt(void **state)
{
    (void)state;
    char err[256], listen_spec[32];
    for (int round = 0; round < 3; round++) {
        int port = free_port();
        int other = tcp_on("127.0.0.3", port, true);
        assert_true(other >= 0);
        snprintf(listen_spec, sizeof listen_spec, "127.0.0.1:%d", port);
        hl_http_config_t h = {.listen = listen_spec, .threads = 2, .request_timeout_ms = 1000};
        hl_httpd_t *s = hl_httpd_start(&h, NULL, NULL, NULL, err, sizeof err);
        assert_non_null(s);
        struct timespec idle = {0, 200 * 1000 * 1000}; /* the acceptor is in its poll() */
        nanosleep(&idle, NULL);
        int64_t t0 = hl_mono_us();
        hl_httpd_stop(s);
        int64_t took = hl_mono_us() - t0;
        if (took >= 1000000) fail_msg("stop %d took %lld us", round, (long long)took);
        assert_int_equal(tcp_on("127.0.0.1", port, false), -1);
        int c = tcp_on("127.0.0.3", port, false);
        assert_true(c >= 0);
        int in = accept(other, NULL, NULL);
        assert_true(in >= 0);
        close(in);
        close(c);
        close(other);
    }
}

/* ---- hl_httpd_start_with: probes that say why, a metrics listener, and the hooks ---- */

typedef struct {
    atomic_bool live, ready;
    atomic_int workers; /* worker_start calls less worker_stop calls */
    atomic_int opened;  /* conn_open calls */
    atomic_int refused; /* refuse calls */
} hooks_t;

static bool probe_live(void *arg, hl_probe_t *p)
{
    hooks_t *h = arg;
    p->status = "broken";
    return atomic_load(&h->live);
}

static bool probe_ready(void *arg, hl_probe_t *p)
{
    hooks_t *h = arg;
    snprintf(p->detail, sizeof p->detail, "\"why\":%s", atomic_load(&h->ready) ? "1" : "0");
    return atomic_load(&h->ready);
}

static int worker_token; /* what each worker's data points to */

static void *hook_worker_start(void *arg)
{
    atomic_fetch_add(&((hooks_t *)arg)->workers, 1);
    return &worker_token;
}

static void hook_worker_stop(void *arg, void *data)
{
    assert_ptr_equal(data, &worker_token);
    atomic_fetch_sub(&((hooks_t *)arg)->workers, 1);
}

static void hook_conn_open(void *arg, const struct mg_connection *c, void **conn_data)
{
    atomic_fetch_add(&((hooks_t *)arg)->opened, 1);
}

static int hook_refuse(void *arg, struct mg_connection *c, int status)
{
    atomic_fetch_add(&((hooks_t *)arg)->refused, 1);
    hl_http_error(c, status, "refused_by_hook", "refused", "rid-hook", NULL);
    return 0;
}

/* Answers whether the calling worker carries the hook's data. */
static int worker_handler(struct mg_connection *c, void *arg)
{
    bool mine = mg_get_thread_pointer(c) == &worker_token;
    hl_http_send(c, 200, "text/plain", NULL, NULL, mine ? "mine" : "none", 4);
    return 200;
}

static void test_start_with_hooks(void **state)
{
    static hooks_t hk;
    static resp_t r;
    atomic_store(&hk.live, true);
    atomic_store(&hk.ready, false);
    hl_metrics_t *m = hl_metrics_new();
    char listen[32], mlisten[32], err[256] = "", v[64];
    int port = 0, mport = 0;
    hl_http_config_t h = {.listen = listen, .threads = 2, .request_timeout_ms = 2000};
    hl_httpd_opts_t o = {.metrics_listen = mlisten,
                         .max_header_bytes = 2048,
                         .live = probe_live,
                         .ready = probe_ready,
                         .arg = &hk,
                         .worker_start = hook_worker_start,
                         .worker_stop = hook_worker_stop,
                         .conn_open = hook_conn_open,
                         .refuse = hook_refuse};
    /* Two ports free a moment ago: the second may be the first one again, and another process
     * may take either before the server binds them, so a failed start is tried again with new
     * ones; the last try's error is the one reported. */
    hl_httpd_t *s = NULL;
    for (int attempt = 0; s == NULL && attempt < 5; attempt++) {
        port = free_port();
        do mport = free_port();
        while (mport == port);
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        snprintf(mlisten, sizeof mlisten, "127.0.0.1:%d", mport);
        s = hl_httpd_start_with(&h, m, &o, err, sizeof err);
    }
    if (s == NULL) fail_msg("start: %s", err);
    hl_httpd_handle(s, "/worker$", worker_handler, NULL);
    get(port, "GET", "/worker", &r);
    assert_string_equal(r.body, "mine");
    assert_true(atomic_load(&hk.workers) >= 1);
    assert_true(atomic_load(&hk.opened) >= 1);
    get(port, "GET", "/healthz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    assert_true(resp_header(&r, "X-Request-Id", v, sizeof v));
    assert_true(resp_header(&r, "Cache-Control", v, sizeof v));
    assert_string_equal(v, "no-store");
    atomic_store(&hk.live, false);
    get(port, "GET", "/healthz", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"status\":\"broken\"}");
    get(mport, "GET", "/readyz", &r); /* the probes answer on the metrics port too */
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"status\":\"not_ready\",\"why\":0}");
    assert_true(resp_header(&r, "Retry-After", v, sizeof v));
    atomic_store(&hk.ready, true);
    get(port, "GET", "/readyz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\",\"why\":1}");
    /* /metrics on its own port only. */
    get(port, "GET", "/metrics", &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"not_found\""));
    get(mport, "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    /* civetweb's own refusal (headers over max_header_bytes) goes to the hook. */
    conn_t c = {.fd = tcp_connect(port)};
    static const char bad[] = "GET /healthz HTTP/1.1\r\nNo colon in this line\r\n\r\n";
    assert_int_equal(send(c.fd, bad, sizeof bad - 1, MSG_NOSIGNAL), (ssize_t)(sizeof bad - 1));
    assert_int_equal(read_response(&c, &r), 0);
    close(c.fd);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "refused_by_hook"));
    assert_int_equal(atomic_load(&hk.refused), 1);
    hl_httpd_stop(s);
    assert_int_equal(atomic_load(&hk.workers), 0);
    /* A metrics port that listen also uses, on another address, is refused. */
    snprintf(mlisten, sizeof mlisten, "127.0.0.2:%d", port);
    hl_httpd_opts_t clash = {.metrics_listen = mlisten};
    assert_null(hl_httpd_start_with(&h, m, &clash, err, sizeof err));
    assert_non_null(strstr(err, "port also in http.listen"));
    hl_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_readyz_both_states),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_handler_and_keep_alive),
        cmocka_unit_test(test_error_answer),
        cmocka_unit_test(test_header_cap),
        cmocka_unit_test(test_body_read_deadline),
        cmocka_unit_test(test_unread_body_closes),
        cmocka_unit_test(test_header_deadline),
    };
    const struct CMUnitTest standalone[] = {
        cmocka_unit_test(test_start_failures),
        cmocka_unit_test(test_start_with_hooks),
        cmocka_unit_test(test_stop_is_prompt),
    };
    int failed = cmocka_run_group_tests_name("plain", tests, start_plain, stop_plain);
    failed += cmocka_run_group_tests_name("standalone", standalone, NULL, NULL);
    return failed;
}
