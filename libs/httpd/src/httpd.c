/* civetweb setup shared by the services: options from hl_http_config_t, TLS 1.2+ with strong
 * ciphers, JSON answers with X-Request-Id, and the /healthz, /readyz and /metrics endpoints. */
#include "hl/httpd.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hl/log.h"
#include "hl/util.h"
#include "tls_compat.h"

/* Cap on the request line plus headers; bodies are capped by each handler. */
#define MAX_HEADER_BYTES "16384"
#define KEEP_ALIVE_MS "5000"
/* Forward secrecy and AEAD only (TLS 1.2 list; TLS 1.3 suites are all strong already). */
#define STRONG_CIPHERS                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* Longest error message copied into an error body before escaping. */
#define MAX_ERROR_MESSAGE 512
/* After the body deadline the timer fires again at this interval until the read returns: a
 * signal that lands while the worker is not waiting in poll() interrupts nothing. */
#define DEADLINE_REPEAT_NS (20 * 1000 * 1000)

struct hl_httpd {
    struct mg_context *ctx;  /* civetweb server, owned */
    hl_metrics_t *metrics;   /* borrowed; NULL means no /metrics */
    hl_ready_fn ready;       /* NULL means always ready */
    void *ready_arg;         /* borrowed, passed to ready */
    const char *tls_cert;    /* borrowed from the config during start only */
    const char *tls_key;     /* idem; NULL: key is in tls_cert */
    char tls_err[256];       /* why the TLS setup callback failed */
    bool tls;                /* whether mg_init_library was asked for TLS */
};

static int allow_get(struct mg_connection *c)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    hl_http_close_if_body(c); /* none of these endpoints reads a body */
    if (strcmp(ri->request_method, "GET") == 0 || strcmp(ri->request_method, "HEAD") == 0)
        return 1;
    hl_http_error(c, 405, "method_not_allowed", "use GET", NULL, "Allow: GET, HEAD\r\n");
    return 0;
}

static int healthz(struct mg_connection *c, void *arg)
{
    if (!allow_get(c)) return 405;
    static const char body[] = "{\"status\":\"ok\"}";
    hl_http_send(c, 200, "application/json", NULL, NULL, body, sizeof body - 1);
    return 200;
}

static int readyz(struct mg_connection *c, void *arg)
{
    hl_httpd_t *s = arg;
    if (!allow_get(c)) return 405;
    if (s->ready == NULL || s->ready(s->ready_arg)) {
        static const char body[] = "{\"status\":\"ready\"}";
        hl_http_send(c, 200, "application/json", NULL, NULL, body, sizeof body - 1);
        return 200;
    }
    static const char body[] = "{\"status\":\"not_ready\"}";
    hl_http_send(c, 503, "application/json", NULL, "Retry-After: 1\r\n", body, sizeof body - 1);
    return 503;
}

static int metrics(struct mg_connection *c, void *arg)
{
    hl_httpd_t *s = arg;
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

int hl_httpd_tls_setup(void *ssl_ctx, const char *cert, const char *key, char *errbuf,
                       size_t errcap)
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
    return hl_httpd_tls_setup(ssl_ctx, s->tls_cert, s->tls_key, s->tls_err, sizeof s->tls_err);
}

/* The names civetweb's TLS loading passes to dlopen (its SSL_LIB and CRYPTO_LIB). */
static const char *const TLS_LIBRARIES[] = {"libssl.so", "libcrypto.so"};

int hl_httpd_init_library(bool tls, char *errbuf, size_t errcap)
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
 * 408 request_timeout, everything else civetweb's own answer. */
static int http_error(struct mg_connection *c, int status, const char *msg)
{
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

/* With TLS configured every listening port gets civetweb's "s" suffix, so a cert alone turns a
 * plain listen address into a TLS one. */
static char *ports_spec(const char *listen, bool tls)
{
    size_t n = strlen(listen);
    char *out = hl_xmalloc(2 * n + 2);
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
    return out;
}

hl_httpd_t *hl_httpd_start(const hl_http_config_t *h, hl_metrics_t *m, hl_ready_fn ready,
                           void *ready_arg, char *errbuf, size_t errcap)
{
    if (h->listen == NULL || h->listen[0] == '\0') {
        snprintf(errbuf, errcap, "http: listen address is empty");
        return NULL;
    }
    hl_httpd_t *s = hl_xcalloc(1, sizeof *s);
    s->metrics = m;
    s->ready = ready;
    s->ready_arg = ready_arg;
    s->tls = h->tls_cert != NULL && h->tls_cert[0] != '\0';
    s->tls_cert = h->tls_cert;
    s->tls_key = h->tls_key;
    if (hl_httpd_init_library(s->tls, errbuf, errcap) != 0) {
        free(s);
        return NULL;
    }

    char threads[16], timeout[16];
    snprintf(threads, sizeof threads, "%u", h->threads ? h->threads : 16);
    snprintf(timeout, sizeof timeout, "%u", h->request_timeout_ms ? h->request_timeout_ms : 10000);
    char *ports = ports_spec(h->listen, s->tls);
    const char *opts[32];
    size_t n = 0;
    opts[n++] = "listening_ports", opts[n++] = ports;
    opts[n++] = "num_threads", opts[n++] = threads;
    opts[n++] = "request_timeout_ms", opts[n++] = timeout;
    opts[n++] = "enable_keep_alive", opts[n++] = "yes";
    opts[n++] = "keep_alive_timeout_ms", opts[n++] = KEEP_ALIVE_MS;
    opts[n++] = "max_request_size", opts[n++] = MAX_HEADER_BYTES;
    /* Answers are small and written in two pieces (head, body): without this, Nagle's
     * algorithm and delayed ACKs add tens of milliseconds per keep-alive request. */
    opts[n++] = "tcp_nodelay", opts[n++] = "1";
    /* Connections beyond the busy workers wait here (after civetweb's own queue of 20). */
    opts[n++] = "listen_backlog", opts[n++] = "1024";
    if (s->tls) {
        opts[n++] = "ssl_certificate", opts[n++] = h->tls_cert;
        opts[n++] = "ssl_protocol_version", opts[n++] = "4";
        opts[n++] = "ssl_cipher_list", opts[n++] = STRONG_CIPHERS;
    }
    opts[n] = NULL;

    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    cb.http_error = http_error;
    hl_http_header_deadlines(&cb);
    if (s->tls) cb.init_ssl = init_tls;
    struct mg_init_data init = {.callbacks = &cb, .user_data = s, .configuration_options = opts};
    char why[256] = "";
    unsigned code = 0;
    struct mg_error_data err = {.code = &code, .text = why, .text_buffer_size = sizeof why};
    s->ctx = mg_start2(&init, &err);
    free(ports);
    s->tls_cert = s->tls_key = NULL; /* the config may be freed after start */
    if (s->ctx == NULL) {
        snprintf(errbuf, errcap, "http: cannot start on %s: %s%s%s", h->listen,
                 why[0] ? why : "civetweb failed", s->tls_err[0] ? ": " : "", s->tls_err);
        mg_exit_library();
        free(s);
        return NULL;
    }
    mg_set_request_handler(s->ctx, "/healthz$", healthz, s);
    mg_set_request_handler(s->ctx, "/readyz$", readyz, s);
    if (m != NULL) mg_set_request_handler(s->ctx, "/metrics$", metrics, s);
    return s;
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
    return hl_http_send(c, status, "application/json", request_id, extra_headers, body,
                        (size_t)n);
}

/* ---- deadlines: a timer per worker thread that interrupts its reads ---- */

/* One per civetweb worker thread: a timer that signals that thread alone, armed while the
 * thread waits for a request's headers or reads its body. */
typedef struct {
    timer_t timer;
    bool ok;                 /* timer_create succeeded */
    int64_t header_deadline; /* hl_mono_us by which the awaited headers must be in; 0: none */
    int64_t request_us;      /* the server's request_timeout_ms, in µs (0 until known) */
    int64_t keep_alive_us;   /* its keep_alive_timeout_ms, in µs */
} deadline_timer_t;

static pthread_once_t deadline_once = PTHREAD_ONCE_INIT;
static pthread_key_t deadline_key; /* the thread's deadline_timer_t, deleted at thread exit */
static bool deadline_ready;        /* key created and signal handler installed */

/* Does nothing: delivering the signal is what interrupts the worker's poll() with EINTR,
 * which civetweb's read treats as the end of the read. */
static void deadline_signal(int sig)
{
    (void)sig;
}

static void deadline_timer_free(void *p)
{
    deadline_timer_t *t = p;
    if (t->ok) timer_delete(t->timer);
    free(t);
}

static void deadline_setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = deadline_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the interrupted poll() must return */
    if (pthread_key_create(&deadline_key, deadline_timer_free) != 0) {
        hl_warn("http: read deadlines off: no thread key");
        return;
    }
    if (sigaction(HL_HTTP_DEADLINE_SIGNAL, &sa, NULL) != 0) {
        hl_warn("http: read deadlines off: sigaction: %s", strerror(errno));
        return;
    }
    deadline_ready = true;
}

/* The calling thread's timer, made on first use; NULL when none can be had (the read is then
 * bounded by civetweb's per-wait timeout only, and the deadline is checked between reads). */
static deadline_timer_t *thread_timer(void)
{
    pthread_once(&deadline_once, deadline_setup);
    if (!deadline_ready) return NULL;
    deadline_timer_t *t = pthread_getspecific(deadline_key);
    if (t != NULL) return t->ok ? t : NULL;
    t = hl_xcalloc(1, sizeof *t);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = HL_HTTP_DEADLINE_SIGNAL;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    t->ok = timer_create(CLOCK_MONOTONIC, &sev, &t->timer) == 0;
    if (t->ok) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, HL_HTTP_DEADLINE_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    } else {
        hl_warn("http: no read deadline timer on this thread: %s", strerror(errno));
    }
    pthread_setspecific(deadline_key, t);
    return t->ok ? t : NULL;
}

/* Arms t to fire in_us from now, and then every DEADLINE_REPEAT_NS when repeat is set;
 * in_us <= 0 disarms. */
static void timer_arm(deadline_timer_t *t, int64_t in_us, bool repeat)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (in_us > 0) {
        its.it_value.tv_sec = (time_t)(in_us / 1000000);
        its.it_value.tv_nsec = (long)(in_us % 1000000) * 1000;
        if (repeat) its.it_interval.tv_nsec = DEADLINE_REPEAT_NS;
    }
    timer_settime(t->timer, 0, &its, NULL);
}

/* ---- header deadlines: civetweb callbacks, all on the worker thread ---- */

static int64_t option_us(const struct mg_connection *c, const char *name)
{
    const char *v = mg_get_option(mg_get_context(c), name);
    char *end = NULL;
    long long ms = v ? strtoll(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && ms > 0 ? (int64_t)ms * 1000 : 0;
}

/* Arms the thread's timer for headers due within in_us (0: no deadline, timer off). */
static void await_headers(const struct mg_connection *c, bool kept_alive)
{
    deadline_timer_t *t = thread_timer();
    if (t == NULL) return;
    if (t->request_us == 0) {
        t->request_us = option_us(c, "request_timeout_ms");
        t->keep_alive_us = option_us(c, "keep_alive_timeout_ms");
    }
    int64_t in_us = kept_alive ? t->keep_alive_us : t->request_us;
    t->header_deadline = in_us > 0 ? hl_mono_us() + in_us : 0;
    /* Once only: what follows a timeout is civetweb's error answer, which a signal repeated
     * every 20 ms would interrupt too. Should the one signal land outside the poll() (a
     * narrow window), civetweb's own check after its next read still ends the wait. */
    timer_arm(t, in_us, false);
}

/* The calling thread's timer if it has one already (never makes one). */
static deadline_timer_t *existing_timer(void)
{
    pthread_once(&deadline_once, deadline_setup);
    deadline_timer_t *t = deadline_ready ? pthread_getspecific(deadline_key) : NULL;
    return t != NULL && t->ok ? t : NULL;
}

static void headers_done(void)
{
    deadline_timer_t *t = existing_timer();
    if (t == NULL) return;
    t->header_deadline = 0;
    timer_arm(t, 0, false);
}

/* A new connection: its first request's headers are due within request_timeout_ms. */
static int on_init_connection(const struct mg_connection *c, void **conn_data)
{
    await_headers(c, false);
    return 0;
}

/* The headers are in (civetweb goes on to the handler). */
static int on_begin_request(struct mg_connection *c)
{
    headers_done();
    return 0;
}

/* Answered: on a kept-alive connection the next headers are due within keep_alive_timeout_ms
 * (if the connection closes instead, on_connection_close disarms at once). */
static void on_end_request(const struct mg_connection *c, int status)
{
    await_headers(c, true);
}

static void on_connection_close(const struct mg_connection *c)
{
    headers_done();
}

void hl_http_header_deadlines(struct mg_callbacks *cb)
{
    cb->init_connection = on_init_connection;
    cb->begin_request = on_begin_request;
    cb->end_request = on_end_request;
    cb->connection_close = on_connection_close;
}

void hl_http_expire_headers(const struct mg_connection *c)
{
    (void)c;
    deadline_timer_t *t = thread_timer();
    if (t == NULL) return;
    t->header_deadline = hl_mono_us();
    /* Repeated: the worker has not entered its poll() yet, the first signal may come early. */
    timer_arm(t, 1, true);
}

bool hl_http_headers_timed_out(const struct mg_connection *c)
{
    const deadline_timer_t *t = existing_timer();
    return t != NULL && t->header_deadline != 0 && hl_mono_us() >= t->header_deadline;
}

int hl_http_read_body(struct mg_connection *c, void *buf, size_t cap, int64_t deadline_us,
                      size_t *len)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    long long content_length = ri ? ri->content_length : -1;
    unsigned char *p = buf;
    size_t got = 0;
    int rc = HL_OK;
    *len = 0;
    int64_t now = hl_mono_us();
    if (now >= deadline_us) return HL_ETIMEDOUT;
    deadline_timer_t *t = thread_timer();
    if (t != NULL) timer_arm(t, deadline_us - now, true);
    for (;;) {
        if (content_length >= 0 && got == (size_t)content_length) break; /* all there */
        if (got == cap) {
            rc = HL_ETOOBIG;
            break;
        }
        size_t want = cap - got < INT_MAX ? cap - got : INT_MAX;
        int n = mg_read(c, p + got, want);
        if (n > 0) got += (size_t)n;
        bool late = hl_mono_us() >= deadline_us;
        if (n == 0) {
            /* The end of the body, or (short of Content-Length) civetweb's own timeout: no
             * data for request_timeout_ms. */
            if (content_length >= 0 && got < (size_t)content_length) rc = HL_ETIMEDOUT;
            break;
        }
        if (late || n < 0) {
            rc = late ? HL_ETIMEDOUT : HL_EIO;
            break;
        }
    }
    if (t != NULL) timer_arm(t, 0, false);
    if (rc != HL_OK) mg_disable_keep_alive(c);
    *len = got;
    return rc;
}

bool hl_http_has_body(const struct mg_connection *c)
{
    /* civetweb reports -1 both without a body and for a chunked one. */
    const struct mg_request_info *ri = mg_get_request_info(c);
    return ri != NULL && (ri->content_length > 0 || mg_get_header(c, "Transfer-Encoding") != NULL);
}

void hl_http_close_if_body(struct mg_connection *c)
{
    if (hl_http_has_body(c)) mg_disable_keep_alive(c);
}
