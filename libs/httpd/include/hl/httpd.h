/* A thin layer over civetweb shared by the services: start a server from hl_http_config_t,
 * write JSON and error answers with X-Request-Id, and serve /healthz, /readyz and /metrics. */
#ifndef HL_HTTPD_H
#define HL_HTTPD_H

#include <civetweb.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/metrics.h"

typedef struct hl_httpd hl_httpd_t;

/* Readiness callback: returns true when the service can take traffic. Runs on a civetweb
 * worker thread. */
typedef bool (*hl_ready_fn)(void *arg);

/* What a health probe tells beyond yes or no. */
typedef struct {
    const char *status; /* the "status" word when the probe says no (static string); NULL:
                           "unhealthy" for /healthz, "not_ready" for /readyz */
    char detail[192];   /* further JSON members of the answer ("\"kafka\":true"), "" for none */
} hl_probe_t;
/* A health probe: true when live (/healthz) or ready (/readyz); may fill p (zeroed before).
 * Runs on a civetweb worker thread. */
typedef bool (*hl_probe_fn)(void *arg, hl_probe_t *p);

/* What a service adds to the server of hl_httpd_start_with; zero for what it does not use.
 * Every hook is optional, runs on a civetweb thread and gets `arg` (borrowed; it must outlive
 * the server). The connection hooks run after the header deadlines' own callbacks (below), so
 * a hook may cut a connection short with hl_http_expire_headers. */
typedef struct {
    const char *metrics_listen; /* a plain listener of its own for /metrics (never TLS): /metrics
                                   is then answered there only (elsewhere 404 not_found); NULL:
                                   /metrics on every port */
    unsigned keep_alive_ms;     /* idle limit of a kept-alive connection; 0: 5000 */
    unsigned max_header_bytes;  /* cap on the request line plus headers; 0: 16384 */
    bool raw_uri;               /* leave percent escapes in the URI (civetweb's decode_url) */
    hl_probe_fn live;           /* /healthz: NULL means always live */
    hl_probe_fn ready;          /* /readyz: NULL means always ready */
    void *arg;
    /* A request worker starts: what it returns is that thread's mg_get_thread_pointer(). */
    void *(*worker_start)(void *arg);
    /* The worker ends (only when worker_start returned non-NULL data). */
    void (*worker_stop)(void *arg, void *data);
    /* A worker took a new connection, before its first request (civetweb's init_connection:
     * *conn_data becomes its mg_get_user_connection_data). */
    void (*conn_open)(void *arg, const struct mg_connection *c, void **conn_data);
    /* A request's headers are in: 0 to go on to the handlers, or the status of an answer the
     * hook sent itself. */
    int (*request_begin)(void *arg, struct mg_connection *c);
    /* The connection closes. */
    void (*conn_close)(void *arg, const struct mg_connection *c);
    /* civetweb refuses a request with status (too large, malformed, headers late: see
     * hl_http_headers_timed_out): 0 when the hook answered, 1 for the server's own answer. */
    int (*refuse)(void *arg, struct mg_connection *c, int status);
} hl_httpd_opts_t;

/* Starts civetweb with h's listen address, threads, timeouts and TLS (TLS 1.2+, strong
 * ciphers only, when tls_cert is set), and registers /healthz, /readyz and /metrics (metrics,
 * may be NULL) with o's probes, limits and hooks (o may be NULL: none). Returns NULL with
 * errbuf filled on failure. The server and its threads are owned by the caller:
 * hl_httpd_stop.
 * Answers, each with X-Request-Id and Cache-Control: no-store: GET/HEAD /healthz 200
 * {"status":"ok"} or 503 {"status":"unhealthy"} (o->live); /readyz 200 {"status":"ready"} or
 * 503 {"status":"not_ready"} with Retry-After: 1 (o->ready), either with the probe's status
 * word and detail members; /metrics 200 text/plain; version=0.0.4 (404 when metrics is NULL);
 * other methods on these paths 405 (a request to them that carries a body has its connection
 * closed after the answer). Request line plus headers are capped (16 KiB by default) and must
 * arrive within h->request_timeout_ms as a whole (the header deadlines; late: 408); a kept-alive
 * connection idles 5 s at most by default. With tls_cert set every port in listen becomes a
 * TLS port ("s" suffix added); the key is read from tls_key, or from tls_cert when tls_key is
 * NULL/empty. `h` and `o` are only read during the call (o->arg is kept). */
hl_httpd_t *hl_httpd_start_with(const hl_http_config_t *h, hl_metrics_t *metrics,
                                const hl_httpd_opts_t *o, char *errbuf, size_t errcap);
/* hl_httpd_start_with with no options but a readiness callback (NULL: always ready). */
hl_httpd_t *hl_httpd_start(const hl_http_config_t *h, hl_metrics_t *metrics, hl_ready_fn ready,
                           void *ready_arg, char *errbuf, size_t errcap);
/* Did c arrive on the server's metrics_listen port? (false without one) */
bool hl_httpd_on_metrics_port(const hl_httpd_t *s, const struct mg_connection *c);
/* Adds a handler for uri (civetweb pattern syntax). Call before traffic. */
void hl_httpd_handle(hl_httpd_t *s, const char *uri, mg_request_handler fn, void *arg);
struct mg_context *hl_httpd_ctx(hl_httpd_t *s);
/* Stops accepting, waits for workers, frees. NULL-safe. Takes up to about 2 s: civetweb's
 * accept loop only notices the stop at the end of its poll interval. */
void hl_httpd_stop(hl_httpd_t *s);

/* Moves the deadline of the headers c awaits to now: the worker is signalled at once (and
 * every 20 ms until the connection closes), civetweb's read is interrupted and the connection
 * closed, answered only if part of a request had come (see hl_http_headers_timed_out). For a
 * server that turns a connection away as it opens (hl_httpd_opts_t's conn_open). Worker
 * thread. */
void hl_http_expire_headers(const struct mg_connection *c);
/* The header deadlines of hl_httpd_start's servers: a request's line and headers must come
 * within request_timeout_ms on a new connection, within the keep-alive timeout on a kept-alive
 * one, as a whole (civetweb alone bounds each read only); at the deadline a signal aimed at the
 * worker thread interrupts the read and civetweb closes the connection.
 * True on a worker thread whose awaited headers ran past their deadline: for an http_error
 * callback to tell a timeout, which civetweb
 * reports as a malformed message (400), from bad bytes. hl_httpd_start's servers answer it with
 * 408 request_timeout. */
bool hl_http_headers_timed_out(const struct mg_connection *c);

/* Reads the request body of c into buf until the body ends, cap bytes are held, or the
 * monotonic clock (hl_mono_us) reaches deadline_us, whichever comes first; *len is what was
 * read. civetweb bounds each wait for data by request_timeout_ms, not the whole body: a client
 * sending a byte a second keeps one mg_read busy for as long as its Content-Length lasts. Here
 * a signal aimed at the calling thread interrupts that wait at the deadline (see
 * HL_HTTP_DEADLINE_SIGNAL), so the body costs the worker at most until deadline_us.
 * Returns HL_OK when the body ended (Content-Length reached or the last chunk read),
 * HL_ETOOBIG when buf is full and the body goes on, HL_ETIMEDOUT when the deadline passed
 * first, HL_EIO when the connection failed or closed early. After anything but HL_OK the
 * connection is marked to close after the answer (the rest of the body stays unread).
 * Thread: a civetweb worker, inside a request handler. The first deadline of a thread gives it a
 * slot that the process's deadline watchdog thread (made with the first slot) reads, freed
 * when the thread exits; arming and disarming make no system call. */
int hl_http_read_body(struct mg_connection *c, void *buf, size_t cap, int64_t deadline_us,
                      size_t *len) HL_MUST_CHECK;
/* True when the request carries a body: a Content-Length above 0, or a Transfer-Encoding. */
bool hl_http_has_body(const struct mg_connection *c);
/* Closes c after its answer when the request carries a body (hl_http_has_body). Whatever
 * body a handler leaves unread, civetweb reads and discards after the handler returns, at the
 * pace the client sends it: a body trickled a byte a second would hold the worker long after
 * the answer. Call before answering; for services whose requests rarely carry bodies the
 * closed connection costs nothing. Worker thread. */
void hl_http_close_if_body(struct mg_connection *c);
/* The real-time signal the body deadline is delivered with; its handler does nothing, it only
 * interrupts the worker's poll(). Installed (without SA_RESTART) at the first body read. */
#define HL_HTTP_DEADLINE_SIGNAL (SIGRTMIN + 3)

/* Sends a full response: status, Content-Type, Content-Length, X-Request-Id (if non-NULL),
 * `extra_headers` (NULL or "Name: value\r\n" lines), and body. Returns 0 or HL_EIO. */
int hl_http_send(struct mg_connection *c, int status, const char *content_type,
                 const char *request_id, const char *extra_headers, const char *body,
                 size_t body_len);
/* Sends {"error":{"code":CODE,"message":MSG},"request_id":RID} with status. */
int hl_http_error(struct mg_connection *c, int status, const char *code, const char *message,
                  const char *request_id, const char *extra_headers);

#endif
