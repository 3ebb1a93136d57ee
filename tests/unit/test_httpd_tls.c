/* Unit tests for hl_httpd over TLS: the protocol floor (1.1 refused, 1.2 accepted with a
 * forward-secret AEAD suite, 1.3 accepted), certificate and key in one file, and a key that
 * does not match its certificate, with a self-signed certificate made here. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hl/httpd.h"
#include "http_client.h"

/* ---- TLS: a self-signed certificate made here, clients pinned to one protocol version ---- */

typedef struct {
    char dir[64];
    char cert[96];
    char key[96];
    char combined[96];
} tls_files_t;

static tls_files_t tls_files;

static void write_pem(const char *path, X509 *x, EVP_PKEY *k)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    if (x) assert_int_equal(PEM_write_X509(fp, x), 1);
    if (k) assert_int_equal(PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
}

static int tls_setup(void **state)
{
    snprintf(tls_files.dir, sizeof tls_files.dir, "/tmp/hl-httpd-tls-XXXXXX");
    assert_non_null(mkdtemp(tls_files.dir));
    snprintf(tls_files.cert, sizeof tls_files.cert, "%s/cert.pem", tls_files.dir);
    snprintf(tls_files.key, sizeof tls_files.key, "%s/key.pem", tls_files.dir);
    snprintf(tls_files.combined, sizeof tls_files.combined, "%s/both.pem", tls_files.dir);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    write_pem(tls_files.cert, x, NULL);
    write_pem(tls_files.key, NULL, key);
    write_pem(tls_files.combined, x, key);
    X509_free(x);
    EVP_PKEY_free(key);
    return 0;
}

static int tls_teardown(void **state)
{
    unlink(tls_files.cert);
    unlink(tls_files.key);
    unlink(tls_files.combined);
    rmdir(tls_files.dir);
    return 0;
}

/* Handshakes with exactly one protocol version (and optionally one cipher list). SECLEVEL 0
 * lets the client offer TLS 1.1 at all, so a refusal can only come from the server. Returns
 * the connection or NULL when the handshake failed. */
static SSL *tls_client(int port, int version, const char *ciphers, SSL_CTX **ctx_out, int *fd_out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    assert_int_equal(SSL_CTX_set_cipher_list(ctx, ciphers ? ciphers : "DEFAULT:@SECLEVEL=0"), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* self-signed */
    int fd = tcp_connect(port);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    if (SSL_connect(ssl) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        close(fd);
        return NULL;
    }
    *ctx_out = ctx;
    *fd_out = fd;
    return ssl;
}

static void tls_close(SSL *ssl, SSL_CTX *ctx, int fd)
{
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
}

static hl_httpd_t *start_tls(const char *cert, const char *key, int *port)
{
    static char listen[32];
    *port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", *port);
    hl_http_config_t h = {.listen = listen,
                          .threads = 2,
                          .request_timeout_ms = 2000,
                          .tls_cert = (char *)cert,
                          .tls_key = (char *)key};
    char err[256] = "";
    hl_httpd_t *s = hl_httpd_start(&h, NULL, NULL, NULL, err, sizeof err);
    if (s == NULL) fail_msg("tls start: %s", err);
    return s;
}

static void test_tls_floor(void **state)
{
    int port = 0, fd = -1;
    SSL_CTX *ctx = NULL;
    hl_httpd_t *s = start_tls(tls_files.cert, tls_files.key, &port);

    assert_null(tls_client(port, TLS1_1_VERSION, NULL, &ctx, &fd));
    assert_null(tls_client(port, TLS1_VERSION, NULL, &ctx, &fd));
    /* TLS 1.2 with only a weak (non-forward-secret, CBC) suite on offer is refused too. */
    assert_null(tls_client(port, TLS1_2_VERSION, "AES128-SHA:@SECLEVEL=0", &ctx, &fd));

    SSL *ssl = tls_client(port, TLS1_2_VERSION, NULL, &ctx, &fd);
    assert_non_null(ssl);
    const char *cipher = SSL_get_cipher_name(ssl);
    assert_non_null(strstr(cipher, "ECDHE-ECDSA"));
    assert_true(strstr(cipher, "GCM") != NULL || strstr(cipher, "CHACHA20") != NULL);
    conn_t c = {.fd = fd, .ssl = ssl};
    static resp_t r;
    assert_int_equal(request_on(&c, "GET", "/healthz", NULL, true, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    /* This server was started without a registry: no /metrics. */
    assert_int_equal(request_on(&c, "GET", "/metrics", NULL, false, &r), 0);
    assert_int_equal(r.status, 404);
    tls_close(ssl, ctx, fd);

    ssl = tls_client(port, TLS1_3_VERSION, "DEFAULT", &ctx, &fd);
    assert_non_null(ssl);
    tls_close(ssl, ctx, fd);
    /* Plain HTTP on the TLS port gets no HTTP answer. */
    conn_t plain = {.fd = tcp_connect(port)};
    assert_int_not_equal(
        request_on(&plain, "GET", "/healthz", NULL, false, &r) == 0 && r.status == 200, 1);
    close(plain.fd);
    hl_httpd_stop(s);

    /* Certificate and key in one file, tls_key unset. */
    s = start_tls(tls_files.combined, NULL, &port);
    ssl = tls_client(port, TLS1_2_VERSION, NULL, &ctx, &fd);
    assert_non_null(ssl);
    tls_close(ssl, ctx, fd);
    hl_httpd_stop(s);

    /* A key that does not belong to the certificate is refused at start. */
    EVP_PKEY *other = EVP_EC_gen("P-256");
    char wrong[128];
    snprintf(wrong, sizeof wrong, "%s/wrong.pem", tls_files.dir);
    write_pem(wrong, NULL, other);
    EVP_PKEY_free(other);
    char listen[32], err[256] = "";
    snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
    hl_http_config_t h = {
        .listen = listen, .threads = 2, .tls_cert = tls_files.cert, .tls_key = wrong};
    assert_null(hl_httpd_start(&h, NULL, NULL, NULL, err, sizeof err));
    assert_non_null(strstr(err, "tls"));
    unlink(wrong);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls_floor, tls_setup, tls_teardown),
    };
    return cmocka_run_group_tests_name("tls", tests, NULL, NULL);
}
