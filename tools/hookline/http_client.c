/* A minimal HTTP/1.1 keep-alive client: enough of the protocol to drive the ingress and the
 * auditor, with poll()-bounded I/O and capped responses so a misbehaving server cannot make
 * the client hang or grow without limit. */
#include "http_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hl/util.h"

struct cli_http_conn {
    char host[256]; /* as given */
    int port;
    int fd;          /* -1 when closed */
    int timeout_ms;  /* per connect / write / read wait */
    unsigned opens;  /* connections opened so far */
    size_t body_cap; /* cap on one response body */
    char *buf;       /* read buffer: head + body, CLI_HTTP_MAX_HEAD + body_cap + 1 bytes */
    size_t buf_cap;
    size_t buf_len; /* bytes held in buf */
    char *body;     /* decoded body of the last response (body_cap + 1 bytes) */
    char *out;      /* request being written (grown to the largest request sent) */
    size_t out_cap;
};

cli_http_conn_t *cli_http_conn_new(const char *host, int port, size_t body_cap, int timeout_ms)
{
    cli_http_conn_t *c = hl_xcalloc(1, sizeof(*c));
    (void)hl_strlcpy(c->host, host, sizeof(c->host));
    c->port = port;
    c->fd = -1;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    c->body_cap = body_cap ? body_cap : CLI_HTTP_DEFAULT_BODY_CAP;
    c->buf_cap = CLI_HTTP_MAX_HEAD + c->body_cap + 1;
    c->buf = hl_xmalloc(c->buf_cap);
    c->body = hl_xmalloc(c->body_cap + 1);
    return c;
}

static void conn_close(cli_http_conn_t *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->buf_len = 0;
}

void cli_http_conn_free(cli_http_conn_t *c)
{
    if (!c) return;
    conn_close(c);
    free(c->buf);
    free(c->body);
    free(c->out);
    free(c);
}

unsigned cli_http_conn_opens(const cli_http_conn_t *c)
{
    return c->opens;
}

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n > 0) return 0;
        if (n == 0) return HL_ETIMEDOUT;
        if (errno != EINTR) return HL_EIO;
    }
}

/* Non-blocking connect bounded by the timeout. The socket stays non-blocking: every wait
 * for it goes through poll() with the connection's timeout. */
static int conn_open(cli_http_conn_t *c)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", c->port);
    if (getaddrinfo(c->host, port, &hints, &res) != 0 || !res) return HL_EIO;
    int rc = HL_EIO;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            r = wait_fd(fd, POLLOUT, c->timeout_ms);
            if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
                r = 0;
            else
                r = r == HL_ETIMEDOUT ? HL_ETIMEDOUT : HL_EIO;
        } else if (r < 0) {
            r = HL_EIO;
        }
        if (r == 0) {
            int one = 1;
            /* Small requests must leave at once: Nagle would add up to 40 ms per request. */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            c->fd = fd;
            c->opens++;
            rc = 0;
            break;
        }
        close(fd);
        rc = r;
    }
    freeaddrinfo(res);
    return rc;
}

/* Sends head and body with one sendmsg() per attempt: one syscall and, for a small request,
 * one TCP segment instead of two. */
static int send_all(cli_http_conn_t *c, const char *head, size_t hn, const char *body, size_t bn)
{
    struct iovec iov[2] = {{(void *)head, hn}, {(void *)body, bn}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = bn ? 2 : 1};
    while (msg.msg_iovlen > 0) {
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(c->fd, POLLOUT, c->timeout_ms);
            if (r) return r;
            continue;
        }
        if (w <= 0) return HL_EIO;
        size_t left = (size_t)w;
        while (msg.msg_iovlen > 0 && left >= msg.msg_iov[0].iov_len) {
            left -= msg.msg_iov[0].iov_len;
            msg.msg_iov++;
            msg.msg_iovlen--;
        }
        if (msg.msg_iovlen > 0) {
            msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + left;
            msg.msg_iov[0].iov_len -= left;
        }
    }
    return 0;
}

/* Reads more bytes into buf. Returns bytes read (>0), 0 on orderly close, or an error. */
static long fill(cli_http_conn_t *c)
{
    if (c->buf_len >= c->buf_cap - 1) return HL_ETOOBIG;
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->buf_len, c->buf_cap - 1 - c->buf_len, 0);
        if (r > 0) {
            c->buf_len += (size_t)r;
            c->buf[c->buf_len] = '\0';
            return (long)r;
        }
        if (r == 0) return 0;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(c->fd, POLLIN, c->timeout_ms);
            if (w) return w;
            continue;
        }
        return HL_EIO;
    }
}

static const char *find_crlf2(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n') return s + i;
    return NULL;
}

typedef struct {
    long long content_length; /* -1 when absent */
    int chunked;
    int close;
} head_info_t;

/* Parses the status line and the headers this client cares about. */
static int parse_head(const char *head, size_t len, cli_http_response_t *resp, head_info_t *hi)
{
    hi->content_length = -1;
    hi->chunked = 0;
    hi->close = 0;
    resp->retry_after_s = -1;
    resp->request_id[0] = '\0';
    if (len < 12 || strncmp(head, "HTTP/1.", 7) != 0) return HL_EPARSE;
    if (head[8] != ' ') return HL_EPARSE;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9') return HL_EPARSE;
        st = st * 10 + (head[i] - '0');
    }
    resp->status = st;
    if (head[7] == '0') hi->close = 1; /* HTTP/1.0 closes unless told otherwise */
    const char *p = memchr(head, '\n', len);
    const char *end = head + len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) nl = end;
        size_t ll = (size_t)(nl - line);
        if (ll && line[ll - 1] == '\r') ll--;
        const char *colon = memchr(line, ':', ll);
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < line + ll && (*v == ' ' || *v == '\t')) v++;
            size_t vlen = (size_t)(line + ll - v);
            char val[128];
            size_t cp = vlen < sizeof(val) - 1 ? vlen : sizeof(val) - 1;
            memcpy(val, v, cp);
            val[cp] = '\0';
            if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
                int64_t n;
                if (hl_parse_i64(val, 0, INT64_MAX / 2, &n) != 0) return HL_EPARSE;
                hi->content_length = n;
            } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
                if (strcasestr(val, "chunked")) hi->chunked = 1;
            } else if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
                if (strcasestr(val, "close")) hi->close = 1;
                if (strcasestr(val, "keep-alive")) hi->close = 0;
            } else if (nlen == 11 && strncasecmp(line, "retry-after", 11) == 0) {
                int64_t n;
                if (hl_parse_i64(val, 0, 86400, &n) == 0) resp->retry_after_s = n;
            } else if (nlen == 12 && strncasecmp(line, "x-request-id", 12) == 0) {
                (void)hl_strlcpy(resp->request_id, val, sizeof(resp->request_id));
            }
        }
        p = nl < end ? nl : NULL;
    }
    return 0;
}

/* Decodes a chunked body that starts at buf+off, reading more as needed. On success *used is
 * the offset just past the final CRLF. */
static int read_chunked(cli_http_conn_t *c, size_t off, size_t *out_len, size_t *used)
{
    size_t blen = 0;
    for (;;) {
        char *nl;
        while (!(nl = memchr(c->buf + off, '\n', c->buf_len - off))) {
            long r = fill(c);
            if (r <= 0) return r == 0 ? HL_EIO : (int)r;
        }
        char *ep;
        unsigned long long sz = strtoull(c->buf + off, &ep, 16);
        if (ep == c->buf + off) return HL_EPARSE;
        off = (size_t)(nl - c->buf) + 1;
        if (sz == 0) {
            /* Trailers (none expected) end with an empty line. */
            for (;;) {
                while (!(nl = memchr(c->buf + off, '\n', c->buf_len - off))) {
                    long r = fill(c);
                    if (r <= 0) return r == 0 ? HL_EIO : (int)r;
                }
                int empty = (nl == c->buf + off) || (nl == c->buf + off + 1 && c->buf[off] == '\r');
                off = (size_t)(nl - c->buf) + 1;
                if (empty) break;
            }
            *out_len = blen;
            *used = off;
            return 0;
        }
        if (sz > c->body_cap - blen) return HL_ETOOBIG;
        while (c->buf_len - off < sz + 2) {
            long r = fill(c);
            if (r <= 0) return r == 0 ? HL_EIO : (int)r;
        }
        memcpy(c->body + blen, c->buf + off, sz);
        blen += sz;
        off += sz + 2;
    }
}

static int read_response(cli_http_conn_t *c, const char *method, cli_http_response_t *resp,
                         int *got_any)
{
    const char *hend;
    c->buf_len = 0;
    while (!(hend = find_crlf2(c->buf, c->buf_len))) {
        if (c->buf_len >= CLI_HTTP_MAX_HEAD) return HL_ETOOBIG;
        long r = fill(c);
        if (r == 0) return HL_EIO;
        if (r < 0) return (int)r;
        *got_any = 1;
    }
    size_t hlen = (size_t)(hend - c->buf) + 4;
    head_info_t hi;
    int rc = parse_head(c->buf, hlen, resp, &hi);
    if (rc) return rc;
    size_t blen = 0, used = hlen;
    int no_body = strcmp(method, "HEAD") == 0 || resp->status == 204 || resp->status == 304 ||
                  resp->status / 100 == 1;
    if (no_body) {
        /* nothing */
    } else if (hi.chunked) {
        rc = read_chunked(c, hlen, &blen, &used);
        if (rc) return rc;
    } else if (hi.content_length >= 0) {
        if ((unsigned long long)hi.content_length > c->body_cap) return HL_ETOOBIG;
        blen = (size_t)hi.content_length;
        while (c->buf_len - hlen < blen) {
            long r = fill(c);
            if (r == 0) return HL_EIO;
            if (r < 0) return (int)r;
        }
        memcpy(c->body, c->buf + hlen, blen);
        used = hlen + blen;
    } else {
        /* Body delimited by close. */
        for (;;) {
            long r = fill(c);
            if (r == 0) break;
            if (r < 0) return r == HL_ETOOBIG ? HL_ETOOBIG : (int)r;
        }
        blen = c->buf_len - hlen;
        if (blen > c->body_cap) return HL_ETOOBIG;
        memcpy(c->body, c->buf + hlen, blen);
        hi.close = 1;
        used = c->buf_len;
    }
    (void)used;
    c->body[blen] = '\0';
    resp->body = c->body;
    resp->body_len = blen;
    if (hi.close) conn_close(c);
    return 0;
}

static int build_request(cli_http_conn_t *c, const char *method, const char *path,
                         const cli_http_header_t *h, size_t nh, size_t body_len, size_t *len)
{
    size_t need = strlen(method) + strlen(path) + strlen(c->host) + 128;
    for (size_t i = 0; i < nh; i++) need += strlen(h[i].name) + strlen(h[i].value) + 4;
    if (need > c->out_cap) {
        c->out = hl_xrealloc(c->out, need);
        c->out_cap = need;
    }
    int n = snprintf(c->out, c->out_cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %zu\r\n",
                     method, path, c->host, c->port, body_len);
    if (n < 0 || (size_t)n >= c->out_cap) return HL_ETOOBIG;
    size_t off = (size_t)n;
    for (size_t i = 0; i < nh; i++) {
        n = snprintf(c->out + off, c->out_cap - off, "%s: %s\r\n", h[i].name, h[i].value);
        if (n < 0 || (size_t)n >= c->out_cap - off) return HL_ETOOBIG;
        off += (size_t)n;
    }
    if (off + 3 > c->out_cap) return HL_ETOOBIG;
    memcpy(c->out + off, "\r\n", 3);
    *len = off + 2;
    return 0;
}

int cli_http_request(cli_http_conn_t *c, const char *method, const char *path,
                     const cli_http_header_t *headers, size_t nheaders, const char *body,
                     size_t body_len, cli_http_response_t *resp)
{
    size_t hlen;
    int rc = build_request(c, method, path, headers, nheaders, body_len, &hlen);
    if (rc) return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = c->fd >= 0;
        if (!reused) {
            rc = conn_open(c);
            if (rc) return rc;
        }
        int got_any = 0;
        rc = send_all(c, c->out, hlen, body, body_len);
        if (!rc) rc = read_response(c, method, resp, &got_any);
        if (!rc) return 0;
        conn_close(c);
        /* Only an idle keep-alive connection closed under us earns a second try. */
        if (!(reused && !got_any && rc == HL_EIO)) return rc;
    }
    return rc;
}

int cli_http_parse_url(const char *url, char *host, size_t cap, int *port)
{
    if (!url || !*url) return HL_EINVAL;
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    else if (strstr(url, "://"))
        return HL_EINVAL; /* TLS and other schemes are not spoken here */
    const char *slash = strchr(url, '/');
    size_t n = slash ? (size_t)(slash - url) : strlen(url);
    const char *hs = url, *colon = NULL;
    size_t hn;
    if (n && url[0] == '[') {
        const char *rb = memchr(url, ']', n);
        if (!rb) return HL_EINVAL;
        hs = url + 1;
        hn = (size_t)(rb - url - 1);
        colon = (rb + 1 < url + n && rb[1] == ':') ? rb + 1 : NULL;
    } else {
        colon = memchr(url, ':', n);
        hn = colon ? (size_t)(colon - url) : n;
    }
    if (hn == 0 || hn >= cap) return HL_EINVAL;
    memcpy(host, hs, hn);
    host[hn] = '\0';
    *port = 80;
    if (colon) {
        char pb[8];
        size_t pl = (size_t)(url + n - colon - 1);
        if (pl == 0 || pl >= sizeof(pb)) return HL_EINVAL;
        memcpy(pb, colon + 1, pl);
        pb[pl] = '\0';
        int64_t p;
        if (hl_parse_i64(pb, 1, 65535, &p) != 0) return HL_EINVAL;
        *port = (int)p;
    }
    return 0;
}
