/* The HTTP/1.1 client of the hl_httpd tests: byte-wise head reads so that nothing past the
 * head is consumed, then exactly Content-Length bytes of body. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_client.h"

static int conn_read(conn_t *c, char *buf, size_t n)
{
    if (c->ssl) return SSL_read(c->ssl, buf, (int)n);
    return (int)read(c->fd, buf, n);
}

static int conn_write(conn_t *c, const char *buf, size_t n)
{
    if (c->ssl) return SSL_write(c->ssl, buf, (int)n);
    return (int)write(c->fd, buf, n);
}

/* Finds a header (case-insensitive name) in r->head; copies its value into out. */
bool resp_header(const resp_t *r, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ') v++;
            const char *e = strstr(v, "\r\n");
            size_t vlen = e ? (size_t)(e - v) : strlen(v);
            if (vlen >= cap) vlen = cap - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return true;
        }
    }
    return false;
}

int read_response(conn_t *c, resp_t *r)
{
    return read_response_ex(c, r, false);
}

int read_response_ex(conn_t *c, resp_t *r, bool head_only)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    size_t have = 0;
    char *end = NULL;
    while (end == NULL) {
        if (have + 1 >= sizeof r->head) return -1;
        int n = conn_read(c, r->head + have, 1); /* byte-wise: never reads past the head */
        if (n <= 0) return -1;
        have += (size_t)n;
        r->head[have] = '\0';
        end = strstr(r->head, "\r\n\r\n");
    }
    end[2] = '\0'; /* keep the last header's CRLF for resp_header */
    /* HTTP/1.0 when civetweb refuses a request whose version it never read. */
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) return -1;
    char cl[32];
    if (resp_header(r, "Content-Length", cl, sizeof cl)) {
        char *end_num = NULL;
        r->content_length = strtol(cl, &end_num, 10);
        if (end_num == cl || *end_num != '\0' || r->content_length < 0) return -1;
    }
    size_t want = r->content_length >= 0 ? (size_t)r->content_length : sizeof r->body - 1;
    if (head_only) want = 0;
    while (r->body_len < want) {
        int n = conn_read(c, r->body + r->body_len, want - r->body_len);
        if (n <= 0) break;
        r->body_len += (size_t)n;
    }
    r->body[r->body_len] = '\0';
    return 0;
}

int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0}; /* a hung server fails the test instead of hanging it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

int request_on(conn_t *c, const char *method, const char *path, const char *extra, bool keep_alive,
               resp_t *r)
{
    char req[1024];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: %s\r\n\r\n",
                 method, path, extra ? extra : "", keep_alive ? "keep-alive" : "close");
    assert_int_equal(conn_write(c, req, (size_t)n), n);
    return read_response_ex(c, r, strcmp(method, "HEAD") == 0);
}

void get(int port, const char *method, const char *path, resp_t *r)
{
    conn_t c = {.fd = tcp_connect(port)};
    assert_int_equal(request_on(&c, method, path, NULL, false, r), 0);
    /* With Connection: close the server ends the stream right after the body: nothing may
     * follow what Content-Length announced. */
    char extra;
    assert_int_equal(read(c.fd, &extra, 1), 0);
    close(c.fd);
}

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
