/* A minimal HTTP/1.1 client over one keep-alive TCP connection: blocking sockets bounded by
 * poll() timeouts, Content-Length and chunked bodies, and a hard cap on every response. */
#ifndef CLI_HTTP_CLIENT_H
#define CLI_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

#define CLI_HTTP_MAX_HEAD 16384         /* status line + headers of one response */
#define CLI_HTTP_DEFAULT_BODY_CAP 65536 /* response body cap unless the caller asks for more */

/* One header of a request; both strings borrowed for the duration of the call. */
typedef struct {
    const char *name;
    const char *value;
} cli_http_header_t;

/* A parsed response. Strings point into the connection's buffers and stay valid until the
 * next request on the same connection. */
typedef struct {
    int status;            /* e.g. 202 */
    int64_t retry_after_s; /* Retry-After in seconds, -1 when absent or not a number */
    char request_id[64];   /* X-Request-Id, "" when absent */
    const char *body;      /* NUL-terminated body (may contain NULs for binary data) */
    size_t body_len;
} cli_http_response_t;

typedef struct cli_http_conn cli_http_conn_t;

/* A connection to host:port (numeric IPv4/IPv6 or a name), not yet opened: the first request
 * connects. body_cap bounds a response body (0 = CLI_HTTP_DEFAULT_BODY_CAP); timeout_ms bounds
 * each connect, write and read. Owned by the caller; aborts on out-of-memory. */
cli_http_conn_t *cli_http_conn_new(const char *host, int port, size_t body_cap, int timeout_ms);
/* Closes the socket; NULL-safe. */
void cli_http_conn_free(cli_http_conn_t *c);

/* Sends one request and reads its response. A request that fails on a reused keep-alive
 * connection before any response byte arrived (the server closed it while idle) is sent once
 * more on a fresh connection. Returns 0, HL_ETIMEDOUT, HL_EIO (connect/reset), HL_EPARSE
 * (malformed response) or HL_ETOOBIG (response over its caps); after an error the connection
 * is closed and the next request reconnects. Headers and body are borrowed. Not thread-safe:
 * one connection belongs to one thread. */
int cli_http_request(cli_http_conn_t *c, const char *method, const char *path,
                     const cli_http_header_t *headers, size_t nheaders, const char *body,
                     size_t body_len, cli_http_response_t *resp) HL_MUST_CHECK;

/* Number of TCP connections this object has opened so far (for tests of keep-alive). */
unsigned cli_http_conn_opens(const cli_http_conn_t *c);

/* Splits "http://host:port" or "host:port" (default port 80) into host (cap bytes) and port.
 * Returns 0 or HL_EINVAL. */
int cli_http_parse_url(const char *url, char *host, size_t cap, int *port) HL_MUST_CHECK;

#endif
