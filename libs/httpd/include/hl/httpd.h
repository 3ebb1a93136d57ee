/* A thin layer over civetweb shared by the services: start a server from hl_http_config_t,
 * write JSON and error answers with X-Request-Id, and serve /healthz, /readyz and /metrics. */
#ifndef HL_HTTPD_H
#define HL_HTTPD_H

#include <civetweb.h>
#include <stdbool.h>
#include <stddef.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/metrics.h"

typedef struct hl_httpd hl_httpd_t;

/* Readiness callback: returns true when the service can take traffic. Runs on a civetweb
 * worker thread. */
typedef bool (*hl_ready_fn)(void *arg);

/* Starts civetweb with h's listen address, threads, timeouts and TLS (TLS 1.2+, strong
 * ciphers only, when tls_cert is set), and registers /healthz, /readyz (ready(arg)) and
 * /metrics (metrics, may be NULL). Returns NULL with errbuf filled on failure. The server and
 * its threads are owned by the caller: hl_httpd_stop.
 * Answers: GET/HEAD /healthz 200 {"status":"ok"}; /readyz 200 {"status":"ready"} or 503
 * {"status":"not_ready"} with Retry-After: 1; /metrics 200 text/plain; version=0.0.4 (404 when
 * metrics is NULL); other methods on these paths 405. Request line plus headers are capped at
 * 16 KiB. With tls_cert set every port in listen becomes a TLS port ("s" suffix added); the
 * key is read from tls_key, or from tls_cert when tls_key is NULL/empty. `h` is only read
 * during the call. */
hl_httpd_t *hl_httpd_start(const hl_http_config_t *h, hl_metrics_t *metrics, hl_ready_fn ready,
                           void *ready_arg, char *errbuf, size_t errcap);
/* Adds a handler for uri (civetweb pattern syntax). Call before traffic. */
void hl_httpd_handle(hl_httpd_t *s, const char *uri, mg_request_handler fn, void *arg);
struct mg_context *hl_httpd_ctx(hl_httpd_t *s);
/* Stops accepting, waits for workers, frees. NULL-safe. Takes up to about 2 s: civetweb's
 * accept loop only notices the stop at the end of its poll interval. */
void hl_httpd_stop(hl_httpd_t *s);

/* Sends a full response: status, Content-Type, Content-Length, X-Request-Id (if non-NULL),
 * `extra_headers` (NULL or "Name: value\r\n" lines), and body. Returns 0 or HL_EIO. */
int hl_http_send(struct mg_connection *c, int status, const char *content_type,
                 const char *request_id, const char *extra_headers, const char *body,
                 size_t body_len);
/* Sends {"error":{"code":CODE,"message":MSG},"request_id":RID} with status. */
int hl_http_error(struct mg_connection *c, int status, const char *code, const char *message,
                  const char *request_id, const char *extra_headers);

#endif
