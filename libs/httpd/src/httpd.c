/* civetweb setup shared by the services: options from hl_http_config_t, TLS 1.2+ with strong
 * ciphers, JSON answers with X-Request-Id, and the /healthz, /readyz and /metrics endpoints. */
#include "hl/httpd.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "hl/log.h"
#include "deadline.h"
#include "hl/util.h"
#include "tls_compat.h"

/* Cap on the request line plus headers; bodies are capped by each handler. */
#define MAX_HEADER_BYTES 16384
#define KEEP_ALIVE_MS 5000
/* Forward secrecy and AEAD only (TLS 1.2 list; TLS 1.3 suites are all strong already). */
#define STRONG_CIPHERS                                                                             \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* Health answers are never cached by a proxy between the prober and us. */
#define NO_STORE "Cache-Control: no-store\r\n"
/* Longest error message copied into an error body before escaping. */
#define MAX_ERROR_MESSAGE 512
/* Most listening sockets one server has (http.listen's and the metrics port's). */
#define MAX_LISTENERS 16

/* A listening socket: its descriptor, and the inode that tells it from a later socket given
 * the same number. */
typedef struct {
    int fd;
    ino_t ino;
} listener_t;

struct hl_httpd {
    struct mg_context *ctx;        /* civetweb server, owned */
    hl_metrics_t *metrics;         /* borrowed; NULL means no /metrics */
    hl_httpd_opts_t o;             /* the service's probes, limits and hooks (strings not kept) */
    hl_ready_fn ready;             /* hl_httpd_start's callback, behind o.ready */
    void *ready_arg;               /* borrowed, passed to ready */
    int metrics_port;              /* the port of o.metrics_listen, 0 without one */
    struct mg_callbacks deadlines; /* hl_http_header_deadlines' callbacks, which ours wrap */
    const char *tls_cert;          /* borrowed from the config during start only */
    const char *tls_key;           /* idem; NULL: key is in tls_cert */
    char tls_err[256];             /* why the TLS setup callback failed */
    bool tls;                      /* whether mg_init_library was asked for TLS */
    listener_t listeners[MAX_LISTENERS]; /* civetweb's listening sockets, found at start */
    int nlisteners;
};

static int allow_get(struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    hl_http_close_if_body(c); /* none of these endpoints reads a body */
    if (strcmp(ri->request_method, "GET") == 0 || strcmp(ri->request_method, "HEAD") == 0) return 1;
    hl_http_error(c, 405, "method_not_allowed", "use GET", NULL, "Allow: GET, HEAD\r\n");
    return 0;
}

/* Answers a probe: 200 {"status":ok_word} or 503 with the probe's word (fail_word when it
 * names none), and its detail members. */
static int probe_answer(struct mg_connection *c, hl_probe_fn fn, void *arg, const char *ok_word,
                        const char *fail_word, const char *fail_headers)
{
    hl_probe_t p;
    memset(&p, 0, sizeof p);
    bool ok = fn == NULL || fn(arg, &p);
    const char *word = ok ? ok_word : p.status ? p.status : fail_word;
    p.detail[sizeof p.detail - 1] = '\0';
    char body[64 + sizeof p.detail], rid[HL_UUID_STR_LEN + 1];
    int n = snprintf(body, sizeof body, "{\"status\":\"%s\"%s%s}", word, p.detail[0] ? "," : "",
                     p.detail);
    if (n < 0 || (size_t)n >= sizeof body) n = 0;
    hl_uuid7(rid);
    int status = ok ? 200 : 503;
    hl_http_send(c, status, "application/json", rid, ok ? NO_STORE : fail_headers, body, (size_t)n);
    return status;
}

static int healthz(struct mg_connection *c, void *arg)
{
    hl_httpd_t *s = arg;
    if (!allow_get(c)) return 405;
    return probe_answer(c, s->o.live, s->o.arg, "ok", "unhealthy", NO_STORE);
}

static int readyz(struct mg_connection *c, void *arg)
{
    hl_httpd_t *s = arg;
    if (!allow_get(c)) return 405;
    return probe_answer(c, s->o.ready, s->o.arg, "ready", "not_ready",
                        NO_STORE "Retry-After: 1\r\n");
}

/* hl_httpd_start's readiness callback as a probe. */
static bool ready_probe(void *arg, hl_probe_t *p)
{
    hl_httpd_t *s = arg;
    (void)p;
    return s->ready(s->ready_arg);
}

static int metrics(struct mg_connection *c, void *arg)
{
    hl_httpd_t *s = arg;
    if (s->metrics_port != 0 && !hl_httpd_on_metrics_port(s, c)) {
        char rid[HL_UUID_STR_LEN + 1];
        hl_uuid7(rid);
        hl_http_close_if_body(c); /* a body nobody reads */
        hl_http_error(c, 404, "not_found", "no such endpoint", rid, NO_STORE);
        return 404;
    }
    if (!allow_get(c)) return 405;
    size_t len = 0;
    char *text = hl_metrics_render(s->metrics, &len);
    if (text == NULL) {
        hl_http_error(c, 500, "internal", "metrics unavailable", NULL, NULL);
        return 500;
    }
    hl_http_send(c, 200, "text/plain; version=0.0.4", NULL, NULL, text, len);
    free(text);
    return 200;
}

bool hl_httpd_on_metrics_port(const hl_httpd_t *s, const struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    return s->metrics_port != 0 && ri != NULL && ri->server_port == s->metrics_port;
}

/* The TLS settings of every hookline server, applied in civetweb's init_ssl callback: TLS 1.2
 * or later, forward-secret AEAD ciphers only, server cipher preference, no renegotiation, the
 * certificate chain from cert and the key from key (NULL or empty: from cert). ssl_ctx is
 * civetweb's SSL_CTX, borrowed. Returns 1, or -1 with errbuf naming the step that failed and
 * OpenSSL's reason (the value the callback returns to civetweb). */
static int tls_setup(void *ssl_ctx, const char *cert, const char *key, char *errbuf, size_t errcap)
{
    SSL_CTX *ctx = ssl_ctx;
    const char *key_file = key && key[0] ? key : cert;
    const char *step = NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        step = "cannot require TLS 1.2";
    else if (SSL_CTX_set_cipher_list(ctx, STRONG_CIPHERS) != 1)
        step = "cannot set cipher list";
    else if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        step = "cannot load tls_cert";
    else if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
        step = "cannot load tls_key";
    else if (SSL_CTX_check_private_key(ctx) != 1)
        step = "tls_key does not match tls_cert";
    if (step == NULL) {
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
        return 1;
    }
    char why[160];
    ERR_error_string_n(ERR_get_error(), why, sizeof why);
    ERR_clear_error();
    snprintf(errbuf, errcap, "%s: %s", step, why);
    return -1;
}

/* civetweb calls this while creating its SSL_CTX. Doing the whole setup here (and returning
 * 1) means the protocol floor, the cipher list and a separate key file are all applied by us,
 * whatever civetweb's own handling of its options would be. */
static int init_tls(void *ssl_ctx, void *user_data)
{
    hl_httpd_t *s = user_data;
    return tls_setup(ssl_ctx, s->tls_cert, s->tls_key, s->tls_err, sizeof s->tls_err);
}

/* The names civetweb's TLS loading passes to dlopen (its SSL_LIB and CRYPTO_LIB). */
static const char *const TLS_LIBRARIES[] = {"libssl.so", "libcrypto.so"};

/* Initialises civetweb for one server (mg_init_library), with its TLS support when tls is
 * set. civetweb loads OpenSSL only then, at run time, and a server asked for TLS without it
 * would never listen: that is an error here. Returns 0, or HL_ESTATE with errbuf naming what
 * could not be loaded. Each success is paired with mg_exit_library(). */
static int init_library(bool tls, char *errbuf, size_t errcap)
{
    if (!tls) {
        mg_init_library(0);
        return 0;
    }
    /* Must be loaded before civetweb opens libssl.so; the call keeps the dependency. */
    if (hl_tls_compat_loaded() != 1) {
        snprintf(errbuf, errcap, "http: TLS compatibility shim missing");
        return HL_ESTATE;
    }
    if (!mg_check_feature(MG_FEATURES_TLS)) {
        snprintf(errbuf, errcap, "http: TLS configured, but this civetweb has no TLS support");
        return HL_ESTATE;
    }
    if (mg_init_library(MG_FEATURES_TLS) & MG_FEATURES_TLS) return 0;
    mg_exit_library();
    /* civetweb keeps the reason to itself: open the same names to find it. */
    const char *why = "OpenSSL did not initialise";
    for (size_t i = 0; i < sizeof TLS_LIBRARIES / sizeof TLS_LIBRARIES[0]; i++) {
        void *lib = dlopen(TLS_LIBRARIES[i], RTLD_LAZY);
        if (lib == NULL) {
            const char *e = dlerror();
            why = e ? e : TLS_LIBRARIES[i];
            break;
        }
        dlclose(lib);
    }
    snprintf(errbuf, errcap,
             "http: TLS configured, but civetweb cannot load OpenSSL: %s (it opens libssl.so "
             "and libcrypto.so by these names at run time; Debian's libssl-dev provides them)",
             why);
    return HL_ESTATE;
}

/* civetweb reports headers that did not arrive in time as a malformed message (400); those get
 * 408 request_timeout, everything else civetweb's own answer, unless the service's refuse hook
 * answers first. */
static int http_error(struct mg_connection *c, int status, const char *msg)
{
    hl_httpd_t *s = mg_get_user_data(mg_get_context(c));
    if (s->o.refuse != NULL && s->o.refuse(s->o.arg, c, status) == 0) return 0;
    if (status != 400 || !hl_http_headers_timed_out(c)) return 1;
    mg_disable_keep_alive(c);
    hl_http_error(c, 408, "request_timeout", "headers not received in time", NULL, NULL);
    return 0;
}

/* Routes civetweb's own diagnostics to our log instead of stderr. */
static int log_message(const struct mg_connection *c, const char *message)
{
    hl_info("civetweb: %s", message);
    return 1;
}

/* ---- the service's hooks, each after the header deadlines' own callback ---- */

static hl_httpd_t *server_of(const struct mg_connection *c)
{
    return mg_get_user_data(mg_get_context(c));
}

static int on_init_connection(const struct mg_connection *c, void **conn_data)
{
    hl_httpd_t *s = server_of(c);
    int rc = s->deadlines.init_connection(c, conn_data);
    if (s->o.conn_open != NULL) s->o.conn_open(s->o.arg, c, conn_data);
    return rc;
}

static int on_begin_request(struct mg_connection *c)
{
    hl_httpd_t *s = server_of(c);
    int rc = s->deadlines.begin_request(c);
    return rc == 0 && s->o.request_begin != NULL ? s->o.request_begin(s->o.arg, c) : rc;
}

static void on_connection_close(const struct mg_connection *c)
{
    hl_httpd_t *s = server_of(c);
    s->deadlines.connection_close(c);
    if (s->o.conn_close != NULL) s->o.conn_close(s->o.arg, c);
}

/* Request workers (thread_type 1) get the service's per-thread data. */
static void *on_init_thread(const struct mg_context *ctx, int thread_type)
{
    hl_httpd_t *s = mg_get_user_data(ctx);
    return thread_type == 1 && s->o.worker_start != NULL ? s->o.worker_start(s->o.arg) : NULL;
}

static void on_exit_thread(const struct mg_context *ctx, int thread_type, void *data)
{
    hl_httpd_t *s = mg_get_user_data(ctx);
    if (data != NULL && s->o.worker_stop != NULL) s->o.worker_stop(s->o.arg, data);
}

static void set_callbacks(hl_httpd_t *s, struct mg_callbacks *cb)
{
    memset(cb, 0, sizeof *cb);
    cb->log_message = log_message;
    cb->http_error = http_error;
    hl_http_header_deadlines(&s->deadlines);
    hl_http_header_deadlines(cb); /* end_request stays theirs; the rest wrapped below */
    cb->init_connection = on_init_connection;
    cb->begin_request = on_begin_request;
    cb->connection_close = on_connection_close;
    cb->init_thread = on_init_thread;
    cb->exit_thread = on_exit_thread;
    if (s->tls) cb->init_ssl = init_tls;
}

/* With TLS configured every port of listen gets civetweb's "s" suffix, so a cert alone turns a
 * plain listen address into a TLS one; a metrics listener follows, as it is. */
static char *ports_spec(const char *listen, bool tls, const char *metrics_listen)
{
    size_t n = strlen(listen), ml = metrics_listen ? strlen(metrics_listen) : 0;
    char *out = hl_xmalloc(2 * n + ml + 3);
    size_t o = 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = listen[i];
        if (tls && (ch == ',' || ch == '\0') && o > 0) {
            size_t e = o;
            while (e > 0 && out[e - 1] == ' ') e--;
            char last = e > 0 ? out[e - 1] : '\0';
            if (last >= '0' && last <= '9') out[o++] = 's';
        }
        out[o++] = ch;
    }
    if (ml > 0) snprintf(out + o - 1, ml + 2, ",%s", metrics_listen);
    return out;
}

/* The option strings of one start; opts points into it. */
typedef struct {
    char threads[16], timeout[16], keep_alive[16], max_header[16];
    char *ports; /* owned */
    const char *opts[32];
} options_t;

static void set_options(const hl_httpd_t *s, const hl_http_config_t *h, options_t *b)
{
    const hl_httpd_opts_t *o = &s->o;
    snprintf(b->threads, sizeof b->threads, "%u", h->threads ? h->threads : 16);
    snprintf(b->timeout, sizeof b->timeout, "%u",
             h->request_timeout_ms ? h->request_timeout_ms : 10000);
    snprintf(b->keep_alive, sizeof b->keep_alive, "%u",
             o->keep_alive_ms ? o->keep_alive_ms : KEEP_ALIVE_MS);
    snprintf(b->max_header, sizeof b->max_header, "%u",
             o->max_header_bytes ? o->max_header_bytes : MAX_HEADER_BYTES);
    b->ports = ports_spec(h->listen, s->tls, o->metrics_listen);
    const char **opts = b->opts;
    size_t n = 0;
    opts[n++] = "listening_ports", opts[n++] = b->ports;
    opts[n++] = "num_threads", opts[n++] = b->threads;
    opts[n++] = "request_timeout_ms", opts[n++] = b->timeout;
    opts[n++] = "enable_keep_alive", opts[n++] = "yes";
    opts[n++] = "keep_alive_timeout_ms", opts[n++] = b->keep_alive;
    opts[n++] = "max_request_size", opts[n++] = b->max_header;
    /* Answers are small and written in two pieces (head, body): without this, Nagle's
     * algorithm and delayed ACKs add tens of milliseconds per keep-alive request. */
    opts[n++] = "tcp_nodelay", opts[n++] = "1";
    /* Connections beyond the busy workers wait here (after civetweb's own queue of 20). */
    opts[n++] = "listen_backlog", opts[n++] = "1024";
    if (o->raw_uri) opts[n++] = "decode_url", opts[n++] = "no";
    if (s->tls) {
        opts[n++] = "ssl_certificate", opts[n++] = h->tls_cert;
        opts[n++] = "ssl_protocol_version", opts[n++] = "4";
        opts[n++] = "ssl_cipher_list", opts[n++] = STRONG_CIPHERS;
    }
    opts[n] = NULL;
}

/* Finds the port of metrics_listen, the last listening port, and refuses one that listen also
 * uses: /metrics is told apart by the port a request arrived on. */
static int find_metrics_port(hl_httpd_t *s, const char *metrics_listen, char *errbuf, size_t errcap)
{
    struct mg_server_port ports[16];
    int n = mg_get_server_ports(s->ctx, 16, ports);
    if (n < 2) {
        snprintf(errbuf, errcap, "http: cannot read the listening ports");
        return HL_ECONFIG;
    }
    s->metrics_port = ports[n - 1].port;
    for (int i = 0; i < n - 1; i++)
        if (ports[i].port == s->metrics_port) {
            snprintf(errbuf, errcap,
                     "config: field 'metrics_listen' = %s: port also in http.listen",
                     metrics_listen);
            return HL_ECONFIG;
        }
    return 0;
}

static int authorize_all(struct mg_connection *c, void *arg)
{
    (void)c;
    (void)arg;
    return 1;
}

/* The listening TCP sockets of the process (at most cap), with the port each is bound to. */
static int listening_sockets(listener_t *out, int *port, int cap)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return 0;
    int n = 0;
    struct dirent *e;
    while (n < cap && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || fd < 0 || fd > INT_MAX || fd == dirfd(d)) continue;
        int on = 0;
        socklen_t len = sizeof on;
        struct stat st;
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on ||
            fstat((int)fd, &st) != 0 || getsockname((int)fd, (struct sockaddr *)&ss, &sslen) != 0)
            continue;
        if (ss.ss_family == AF_INET)
            port[n] = ntohs(((const struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            port[n] = ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
        else
            continue;
        out[n++] = (listener_t){(int)fd, st.st_ino};
    }
    closedir(d);
    return n;
}

/* Keeps the listening sockets that mg_start made: there after it and not before, on a port
 * civetweb reports. Nothing else in the process is ever touched by wake_acceptor. */
static void find_listeners(hl_httpd_t *s, const listener_t *before, int nbefore)
{
    listener_t now[4 * MAX_LISTENERS];
    int port[4 * MAX_LISTENERS];
    struct mg_server_port ports[MAX_LISTENERS];
    int nports = mg_get_server_ports(s->ctx, MAX_LISTENERS, ports);
    int n = listening_sockets(now, port, 4 * MAX_LISTENERS);
    for (int i = 0; i < n && s->nlisteners < MAX_LISTENERS; i++) {
        bool old = false, ours = false;
        for (int j = 0; j < nbefore && !old; j++)
            old = before[j].fd == now[i].fd && before[j].ino == now[i].ino;
        for (int j = 0; j < nports && !ours; j++) ours = ports[j].port == port[i];
        if (!old && ours) s->listeners[s->nlisteners++] = now[i];
    }
}

/* civetweb's accepting thread sees a stop only when its poll() of the listening sockets
 * returns, which with nobody connecting is after its full timeout (up to 2 s measured: every
 * stop of a service paid it). Shutting its listening sockets down wakes that poll() at once,
 * and from then on a new connection is refused rather than left waiting; civetweb still
 * closes them itself, after the stop. Each is checked to be the same socket still. */
static void wake_acceptor(hl_httpd_t *s)
{
    for (int i = 0; i < s->nlisteners; i++) {
        struct stat st;
        int on = 0;
        socklen_t len = sizeof on;
        const listener_t *l = &s->listeners[i];
        if (fstat(l->fd, &st) == 0 && st.st_ino == l->ino &&
            getsockopt(l->fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on)
            (void)shutdown(l->fd, SHUT_RDWR);
    }
}

static hl_httpd_t *start(hl_httpd_t *s, const hl_http_config_t *h, char *errbuf, size_t errcap)
{
    s->tls = h->tls_cert != NULL && h->tls_cert[0] != '\0';
    s->tls_cert = h->tls_cert;
    s->tls_key = h->tls_key;
    if (init_library(s->tls, errbuf, errcap) != 0) {
        free(s);
        return NULL;
    }
    options_t b;
    set_options(s, h, &b);
    struct mg_callbacks cb;
    set_callbacks(s, &cb);
    struct mg_init_data init = {.callbacks = &cb, .user_data = s, .configuration_options = b.opts};
    char why[256] = "";
    unsigned code = 0;
    struct mg_error_data err = {.code = &code, .text = why, .text_buffer_size = sizeof why};
    listener_t before[4 * MAX_LISTENERS];
    int before_port[4 * MAX_LISTENERS];
    int nbefore = listening_sockets(before, before_port, 4 * MAX_LISTENERS);
    s->ctx = mg_start2(&init, &err);
    if (s->ctx != NULL) find_listeners(s, before, nbefore);
    free(b.ports);
    s->tls_cert = s->tls_key = NULL; /* the config may be freed after start */
    if (s->ctx == NULL) {
        snprintf(errbuf, errcap, "http: cannot start on %s: %s%s%s", h->listen,
                 why[0] ? why : "civetweb failed", s->tls_err[0] ? ": " : "", s->tls_err);
        mg_exit_library();
        free(s);
        return NULL;
    }
    /* Every handler does its own authentication; without an authorization handler civetweb
     * looks for a .htpasswd file for each request (a failed stat() per request). */
    mg_set_auth_handler(s->ctx, "/", authorize_all, NULL);
    mg_set_request_handler(s->ctx, "/healthz$", healthz, s);
    mg_set_request_handler(s->ctx, "/readyz$", readyz, s);
    if (s->metrics != NULL) mg_set_request_handler(s->ctx, "/metrics$", metrics, s);
    return s;
}

/* A server not started yet, or NULL with errbuf filled when listen is empty. */
static hl_httpd_t *server_new(const hl_http_config_t *h, hl_metrics_t *m, char *errbuf,
                              size_t errcap)
{
    if (h->listen == NULL || h->listen[0] == '\0') {
        snprintf(errbuf, errcap, "http: listen address is empty");
        return NULL;
    }
    hl_httpd_t *s = hl_xcalloc(1, sizeof *s);
    s->metrics = m;
    return s;
}

hl_httpd_t *hl_httpd_start_with(const hl_http_config_t *h, hl_metrics_t *m,
                                const hl_httpd_opts_t *o, char *errbuf, size_t errcap)
{
    hl_httpd_t *s = server_new(h, m, errbuf, errcap);
    if (s == NULL) return NULL;
    if (o != NULL) s->o = *o;
    const char *metrics_listen = s->o.metrics_listen;
    if (metrics_listen != NULL && metrics_listen[0] == '\0') metrics_listen = NULL;
    s->o.metrics_listen = metrics_listen;
    s = start(s, h, errbuf, errcap);
    if (s == NULL) return NULL;
    s->o.metrics_listen = NULL; /* borrowed during start only */
    if (metrics_listen != NULL && find_metrics_port(s, metrics_listen, errbuf, errcap) != 0) {
        hl_httpd_stop(s);
        return NULL;
    }
    return s;
}

hl_httpd_t *hl_httpd_start(const hl_http_config_t *h, hl_metrics_t *m, hl_ready_fn ready,
                           void *ready_arg, char *errbuf, size_t errcap)
{
    hl_httpd_t *s = server_new(h, m, errbuf, errcap);
    if (s == NULL) return NULL;
    s->ready = ready;
    s->ready_arg = ready_arg;
    if (ready != NULL) {
        s->o.ready = ready_probe;
        s->o.arg = s;
    }
    return start(s, h, errbuf, errcap);
}

void hl_httpd_handle(hl_httpd_t *s, const char *uri, mg_request_handler fn, void *arg)
{
    mg_set_request_handler(s->ctx, uri, fn, arg);
}

struct mg_context *hl_httpd_ctx(hl_httpd_t *s)
{
    return s ? s->ctx : NULL;
}

void hl_httpd_stop(hl_httpd_t *s)
{
    if (s == NULL) return;
    wake_acceptor(s);
    mg_stop(s->ctx);
    mg_exit_library();
    free(s);
}

/* A value echoed into a header must not carry CR/LF (header injection) or be unbounded. */
static bool header_safe(const char *v)
{
    size_t i = 0;
    for (; v[i] && i < 128; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) return false;
    return v[i] == '\0';
}

int hl_http_send(struct mg_connection *c, int status, const char *content_type,
                 const char *request_id, const char *extra_headers, const char *body,
                 size_t body_len)
{
    char clen[24];
    snprintf(clen, sizeof clen, "%zu", body_len);
    if (mg_response_header_start(c, status) < 0) return HL_EIO;
    if (content_type) mg_response_header_add(c, "Content-Type", content_type, -1);
    mg_response_header_add(c, "Content-Length", clen, -1);
    if (request_id && header_safe(request_id))
        mg_response_header_add(c, "X-Request-Id", request_id, -1);
    if (extra_headers && mg_response_header_add_lines(c, extra_headers) < 0) return HL_EIO;
    if (mg_response_header_send(c) < 0) return HL_EIO;
    const struct mg_request_info *ri = mg_get_request_info(c);
    bool head = ri && ri->request_method && strcmp(ri->request_method, "HEAD") == 0;
    if (body_len > 0 && !head && mg_write(c, body, body_len) != (int)body_len) return HL_EIO;
    return 0;
}

int hl_http_error(struct mg_connection *c, int status, const char *code, const char *message,
                  const char *request_id, const char *extra_headers)
{
    /* Escaping can grow a byte to six ("\u00XX"). */
    char code_esc[6 * 64 + 1], msg_esc[6 * MAX_ERROR_MESSAGE + 1], rid_esc[6 * 64 + 1];
    const char *msg = message ? message : "";
    hl_json_escape(code_esc, sizeof code_esc, code ? code : "error",
                   strnlen(code ? code : "error", 64));
    hl_json_escape(msg_esc, sizeof msg_esc, msg, strnlen(msg, MAX_ERROR_MESSAGE));
    char body[sizeof code_esc + sizeof msg_esc + sizeof rid_esc + 64];
    int n;
    if (request_id) {
        hl_json_escape(rid_esc, sizeof rid_esc, request_id, strnlen(request_id, 64));
        n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"},\"request_id\":\"%s\"}",
                     code_esc, msg_esc, rid_esc);
    } else {
        n = snprintf(body, sizeof body,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"},\"request_id\":null}",
                     code_esc, msg_esc);
    }
    if (n < 0 || (size_t)n >= sizeof body) return HL_EIO;
    return hl_http_send(c, status, "application/json", request_id, extra_headers, body, (size_t)n);
}
