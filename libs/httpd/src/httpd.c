/* civetweb setup shared by the services: options from hl_http_config_t, TLS 1.2+ with strong
 * ciphers, JSON answers with X-Request-Id, and the /healthz, /readyz and /metrics endpoints. */
#include "hl/httpd.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* civetweb calls this while creating its SSL_CTX. Doing the whole setup here (and returning
 * 1) means the protocol floor, the cipher list and a separate key file are all applied by us,
 * whatever civetweb's own handling of its options would be. */
static int init_tls(void *ssl_ctx, void *user_data)
{
    hl_httpd_t *s = user_data;
    SSL_CTX *ctx = ssl_ctx;
    const char *key = s->tls_key && s->tls_key[0] ? s->tls_key : s->tls_cert;
    const char *step = NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        step = "cannot require TLS 1.2";
    else if (SSL_CTX_set_cipher_list(ctx, STRONG_CIPHERS) != 1)
        step = "cannot set cipher list";
    else if (SSL_CTX_use_certificate_chain_file(ctx, s->tls_cert) != 1)
        step = "cannot load tls_cert";
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
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
    snprintf(s->tls_err, sizeof s->tls_err, "%s: %s", step, why);
    return -1;
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
    /* Must be loaded before civetweb opens libssl.so; the call keeps the dependency. */
    if (s->tls && hl_tls_compat_loaded() != 1) {
        snprintf(errbuf, errcap, "http: TLS compatibility shim missing");
        free(s);
        return NULL;
    }
    mg_init_library(s->tls ? MG_FEATURES_TLS : 0);
    if (s->tls && !mg_check_feature(MG_FEATURES_TLS)) {
        snprintf(errbuf, errcap, "http: this civetweb has no TLS support");
        mg_exit_library();
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
    if (s->tls) {
        opts[n++] = "ssl_certificate", opts[n++] = h->tls_cert;
        opts[n++] = "ssl_protocol_version", opts[n++] = "4";
        opts[n++] = "ssl_cipher_list", opts[n++] = STRONG_CIPHERS;
    }
    opts[n] = NULL;

    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
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
