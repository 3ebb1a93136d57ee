/* A tiny HTTP/1.1 client for the hl_httpd tests (test_httpd.c, test_httpd_tls.c): one
 * request, one response, Content-Length framing, over a plain socket or an OpenSSL stream. */
#ifndef HL_TEST_HTTP_CLIENT_H
#define HL_TEST_HTTP_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#define RESP_CAP (64 * 1024)

typedef struct {
    int fd;
    SSL *ssl; /* NULL for plain sockets */
} conn_t;

typedef struct {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char body[RESP_CAP];
    size_t body_len;
    long content_length; /* -1 when absent */
} resp_t;

/* Finds a header (case-insensitive name) in r->head; copies its value into out. */
bool resp_header(const resp_t *r, const char *name, char *out, size_t cap);

/* Reads one response; returns 0, or -1 when the peer closed before a full response. With
 * head_only (an answer to HEAD) no body is read. */
int read_response_ex(conn_t *c, resp_t *r, bool head_only);
int read_response(conn_t *c, resp_t *r);

/* Connects to 127.0.0.1:port with a 5 s receive timeout; fails the running test if it cannot. */
int tcp_connect(int port);

/* Sends one request on c (extra: more header lines, each ending in CRLF, or NULL) and reads its
 * answer into r; returns what read_response_ex returned. */
int request_on(conn_t *c, const char *method, const char *path, const char *extra, bool keep_alive,
               resp_t *r);

/* One request on a fresh connection with Connection: close; fails the running test when
 * anything follows the announced body. */
void get(int port, const char *method, const char *path, resp_t *r);

/* A loopback port that was free a moment ago. */
int free_port(void);

#endif
