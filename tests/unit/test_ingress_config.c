/* Ingress configuration: defaults, rules and their errors, environment overrides, source
 * secrets (files, environment, floors, file modes), source names, the local stack's file,
 * and the README's coverage of every configuration key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "hl/metrics.h"
#include "hl/util.h"
#include "source_name.h"
#include "sources.h"

static char tmpdir[] = "/tmp/hl-ingress-test-XXXXXX";

static const char *write_tmp(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0); /* secret files must be private */
    return path;
}

static int load_text(const char *yaml, ing_config_t **cfg, char *err, size_t cap)
{
    return ing_config_load(write_tmp("c.yaml", yaml), cfg, err, cap);
}

static void test_config_defaults(void **state)
{
    ing_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "";
    int rc = load_text(
        "sources:\n  - name: gh\n    scheme: hmac-sha256\n    header: X-Hub-Signature-256\n"
        "    prefix: \"sha256=\"\n    secrets: [{env: HL_TEST_GH}]\n",
        &c, err, sizeof(err));
    if (rc != 0) fail_msg("%s", err);
    assert_int_equal(c->ack_timeout_ms, 5000);
    assert_int_equal(c->test_fault_signals, 0); /* the test hook is off unless asked for */
    assert_int_equal(c->http.threads, 1024);
    assert_string_equal(c->ack_mode, "durable");
    assert_string_equal(c->default_source, "gh");
    assert_string_equal(c->sources[0].message_id, "/messageId");
    assert_string_equal(c->sources[0].event_type, "/eventType");
    assert_int_equal(c->sources[0].max_body, 1048576);
    assert_int_equal(c->sources[0].timestamp_tolerance_s, 300);
    assert_int_equal(c->sources[0].rate_per_sec, 0);
    ing_config_free(c);
}

static void expect_error(const char *yaml, const char *needle)
{
    ing_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "";
    int rc = load_text(yaml, &c, err, sizeof(err));
    if (rc == 0) fail_msg("accepted: %s", yaml);
    assert_null(c);
    if (strstr(err, needle) == NULL) fail_msg("error '%s' does not mention '%s'", err, needle);
}

#define SRC "sources:\n  - name: s\n    scheme: stripe\n    secrets: [{env: X}]\n"

static void test_config_errors(void **state)
{
    expect_error("sources: []\n", "sources");
    expect_error("sources:\n  - name: s\n    scheme: nope\n    secrets: [{env: X}]\n", "scheme");
    expect_error("sources:\n  - name: S!\n    scheme: stripe\n    secrets: [{env: X}]\n", "name");
    expect_error("sources:\n  - name: s\n    scheme: stripe\n", "secrets");
    expect_error("sources:\n  - name: s\n    scheme: stripe\n    secrets: [{}]\n", "secrets");
    expect_error("sources:\n  - name: s\n    scheme: hmac-sha256\n    secrets: [{env: X}]\n",
                 "header");
    expect_error(SRC "    message_id: nopointer\n", "message_id");
    expect_error(SRC "    message_id: /a\n    message_id_header: webhook-id\n", "message_id");
    expect_error(SRC "    encoding: base32\n", "encoding");
    /* A batch's elements each need an id of their own: a header, or none, will not do. */
    expect_error(SRC "    split: true\n    message_id_header: x-id\n", "split");
    expect_error("sources:\n  - name: s\n    scheme: standard-webhooks\n    secrets: [{env: X}]\n"
                 "    split: true\n",
                 "split");
    expect_error(SRC "    max_body: 999999999\n", "max_body");
    /* A body its source admits that the memory cap never could: 503 on every retry. */
    expect_error(SRC "    max_body: 2097152\nmax_body_memory_mb: 1\n", "sources[0].max_body");
    expect_error(SRC "ack_mode: fastest\n", "ack_mode");
    expect_error(SRC "ack_timeout_ms: 10\n", "ack_timeout_ms");
    expect_error(SRC "log_level: loud\n", "log_level");
    expect_error(SRC "default_source: other\n", "default_source");
    expect_error(SRC "  - name: s\n    scheme: stripe\n    secrets: [{env: X}]\n", "unique");
    expect_error(SRC "bogus_key: 1\n", "bogus_key");
    /* The test hook is a switch: anything but 0 or 1 is refused, and it is off by default. */
    expect_error(SRC "test_fault_signals: 2\n", "test_fault_signals");
    expect_error(SRC "test_fault_signals: yes\n", "test_fault_signals");
    expect_error(SRC "http: {listen: \"127.0.0.1:8443\", tls_cert: /x.pem}\n", "http.listen");
    expect_error(SRC "http: {listen: \"127.0.0.1:8443s\"}\n", "http.listen");
    expect_error(SRC "metrics_listen: \"127.0.0.1:8080\"\n", "metrics_listen");
    expect_error(SRC "metrics_listen: \"127.0.0.1:9464s\"\n", "metrics_listen");
    expect_error(SRC "metrics_listen: \"127.0.0.1:9464,127.0.0.1:9465\"\n", "metrics_listen");
}

static void test_config_env(void **state)
{
    ing_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "";
    setenv("HOOKLINE_ACK_TIMEOUT_MS", "750", 1);
    setenv("HOOKLINE_ACK_MODE", "fast", 1);
    int rc = load_text(SRC, &c, err, sizeof(err));
    unsetenv("HOOKLINE_ACK_TIMEOUT_MS");
    unsetenv("HOOKLINE_ACK_MODE");
    if (rc != 0) fail_msg("%s", err);
    assert_int_equal(c->ack_timeout_ms, 750);
    assert_string_equal(c->ack_mode, "fast");
    ing_config_free(c);
    setenv("HOOKLINE_MAX_IN_FLIGHT", "many", 1);
    expect_error(SRC, "HOOKLINE_MAX_IN_FLIGHT");
    unsetenv("HOOKLINE_MAX_IN_FLIGHT");
}

static void test_sources_secrets(void **state)
{
    ing_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "", yaml[1024];
    write_tmp("s.secret", "whsec_ZGVtby1vbmx5LW5vdC1hLXNlY3JldCEh\n");
    snprintf(yaml, sizeof(yaml),
             "sources:\n  - name: a\n    scheme: standard-webhooks\n    secrets:\n"
             "      - {file: %s/s.secret}\n      - {env: HL_TEST_ROTATED}\n",
             tmpdir);
    setenv("HL_TEST_ROTATED", "whsec_c2Vjb25kLWRlbW8tc2VjcmV0LXZhbHVl", 1);
    assert_int_equal(load_text(yaml, &c, err, sizeof(err)), 0);
    hl_metrics_t *m = hl_metrics_new();
    ing_sources_t s;
    int rc = ing_sources_init(&s, c, m, err, sizeof(err));
    if (rc != 0) fail_msg("%s", err);
    assert_int_equal(s.v[0].auth.nkeys, 2);
    assert_ptr_equal(ing_sources_find(&s, "a", 1), &s.v[0]);
    assert_null(ing_sources_find(&s, "ab", 2));
    ing_sources_deinit(&s);
    /* A secret that is not a whsec_ value is refused, and the message does not quote it. */
    setenv("HL_TEST_ROTATED", "hunter2hunter2", 1);
    rc = ing_sources_init(&s, c, m, err, sizeof(err));
    assert_int_equal(rc, HL_ECONFIG);
    assert_null(strstr(err, "hunter2"));
    assert_non_null(strstr(err, "'a'"));
    unsetenv("HL_TEST_ROTATED");
    rc = ing_sources_init(&s, c, m, err, sizeof(err));
    assert_int_equal(rc, HL_ECONFIG);
    assert_non_null(strstr(err, "HL_TEST_ROTATED"));
    hl_metrics_free(m);
    ing_config_free(c);
}

static int decode_name(const char *raw, char *out)
{
    return ing_source_name_decode(raw, strlen(raw), out);
}

static void test_source_name_decode(void **state)
{
    char out[ING_SOURCE_NAME_MAX + 1];
    assert_int_equal(decode_name("sw", out), 2);
    assert_string_equal(out, "sw");
    assert_int_equal(decode_name("%73w_1-x", out), 6); /* encoded letters are letters */
    assert_string_equal(out, "sw_1-x");
    char longest[ING_SOURCE_NAME_MAX + 2];
    memset(longest, 'a', sizeof(longest) - 1);
    longest[ING_SOURCE_NAME_MAX + 1] = '\0';
    assert_int_equal(decode_name(longest, out), -1); /* 65 bytes */
    longest[ING_SOURCE_NAME_MAX] = '\0';
    assert_int_equal(decode_name(longest, out), ING_SOURCE_NAME_MAX);
    static const char *const refused[] = {
        "",      "sw%00x",  "sw%00", "%00",   "sw%2Fx", "sw%2fx",     "sw/x",    "x/%2e%2e/sw",
        "../sw", "sw.",     "sw%2e", "SW",    "sw%53",  "sw%",        "sw%0",    "sw%zz",
        "sw%g0", "sw%2500", "sw x",  "sw%20", "sw;x",   "sw\xc3\xa9", "sw%C3%A9"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (decode_name(refused[i], out) != -1) fail_msg("accepted '%s'", refused[i]);
    /* The length given counts, not a NUL inside it. */
    assert_int_equal(ing_source_name_decode("sw\0x", 4, out), -1);
}

/* Builds the sources of `yaml` and expects a refusal whose message holds every needle. */
static void expect_sources_error(const char *yaml, const char *const *needles, size_t n)
{
    ing_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "";
    if (load_text(yaml, &c, err, sizeof(err)) != 0) fail_msg("%s", err);
    hl_metrics_t *m = hl_metrics_new();
    ing_sources_t s;
    int rc = ing_sources_init(&s, c, m, err, sizeof(err));
    if (rc == 0) ing_sources_deinit(&s);
    hl_metrics_free(m);
    ing_config_free(c);
    assert_int_equal(rc, HL_ECONFIG);
    for (size_t i = 0; i < n; i++)
        if (strstr(err, needles[i]) == NULL) fail_msg("'%s' does not name '%s'", err, needles[i]);
}

/* Builds the sources of `yaml` and expects them to load. */
static void expect_sources_ok(const char *yaml)
{
    ing_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "";
    if (load_text(yaml, &c, err, sizeof(err)) != 0) fail_msg("%s", err);
    hl_metrics_t *m = hl_metrics_new();
    ing_sources_t s;
    if (ing_sources_init(&s, c, m, err, sizeof(err)) != 0) fail_msg("%s", err);
    ing_sources_deinit(&s);
    hl_metrics_free(m);
    ing_config_free(c);
}

static void test_sources_secret_floor(void **state)
{
    char yaml[1024];
    /* 15 bytes: one short of the floor, for each raw-secret scheme; the value is not echoed. */
    static const char *const schemes[] = {"stripe", "bearer", "hmac-sha256\n    header: X-Sig"};
    setenv("HL_TEST_SHORT", "fifteen-bytes-x", 1);
    for (size_t i = 0; i < 3; i++) {
        snprintf(
            yaml, sizeof(yaml),
            "sources:\n  - name: shorty\n    scheme: %s\n    secrets: [{env: HL_TEST_SHORT}]\n",
            schemes[i]);
        const char *const needles[] = {"'shorty'", "HL_TEST_SHORT", "16 bytes"};
        expect_sources_error(yaml, needles, 3);
    }
    /* Sixteen bytes are enough. */
    setenv("HL_TEST_SHORT", "sixteen-bytes-xx", 1);
    expect_sources_ok(
        "sources:\n  - name: ok\n    scheme: bearer\n    secrets: [{env: HL_TEST_SHORT}]\n");
    unsetenv("HL_TEST_SHORT");
    /* A file with a NUL byte is refused by name, whatever the scheme. */
    char path[512];
    snprintf(path, sizeof(path), "%s/nul.secret", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("0123456789\0abcdefghijkl\n", 1, 24, f);
    fclose(f);
    assert_int_equal(chmod(path, 0600), 0);
    snprintf(yaml, sizeof(yaml),
             "sources:\n  - name: nully\n    scheme: stripe\n    secrets: [{file: %s}]\n", path);
    const char *const needles[] = {"'nully'", "nul.secret", "NUL byte"};
    expect_sources_error(yaml, needles, 3);
}

static void test_sources_secret_file_mode(void **state)
{
    char yaml[1024], path[512];
    snprintf(path, sizeof(path), "%s",
             write_tmp("m.secret", "whsec_ZGVtby1vbmx5LW5vdC1hLXNlY3JldCEh\n"));
    assert_int_equal(chmod(path, 0640), 0);
    snprintf(
        yaml, sizeof(yaml),
        "sources:\n  - name: moded\n    scheme: standard-webhooks\n    secrets: [{file: %s}]\n",
        path);
    const char *const needles[] = {"'moded'", "m.secret", "group or others"};
    expect_sources_error(yaml, needles, 3);
    /* The opt-out for mounted Kubernetes secrets. */
    char shared[1100];
    snprintf(shared, sizeof(shared), "secret_files_shared: true\n%s", yaml);
    expect_sources_ok(shared);
    /* A TLS key file readable by others stops the configuration too. */
    snprintf(yaml, sizeof(yaml),
             "http: {listen: \"127.0.0.1:8443s\", tls_cert: %s/cert.pem, tls_key: %s}\n" SRC,
             tmpdir, path);
    expect_error(yaml, "http.tls_key");
}

/* The README documents every key of the configuration table. */
static void test_readme_covers_keys(void **state)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(hl_read_file(HL_INGRESS_README, 1 << 20, &text, &len), 0);
    const char *keys[] = {
#define K(key, ...) #key,
        ING_CONFIG_KNOBS(K) ING_SOURCE_KNOBS(K)
#undef K
            "log_level",
        "ack_mode",
        "default_source",
        "sources",
        "name",
        "scheme",
        "secrets",
        "public_keys",
        "header",
        "prefix",
        "encoding",
        "message_id",
        "message_id_header",
        "event_type",
        "event_type_header",
        "listen",
        "threads",
        "request_timeout_ms",
        "brokers",
        "events_topic",
        "lineage_topic",
        "properties",
        "metrics_listen",
        "secret_files_shared",
        "secret_properties",
        "split"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char needle[80];
        snprintf(needle, sizeof(needle), "`%s`", keys[i]);
        if (strstr(text, needle) == NULL) fail_msg("README does not document %s", needle);
    }
    free(text);
}

/* deploy/local/ingress.yaml loads and its demo secret file resolves from the repo root. */
static void test_local_config(void **state)
{
    ing_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "";
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(HL_SOURCE_DIR), 0);
    int rc = ing_config_load(HL_INGRESS_LOCAL_CONFIG, &c, err, sizeof(err));
    if (rc != 0) fail_msg("%s", err);
    hl_metrics_t *m = hl_metrics_new();
    ing_sources_t s;
    rc = ing_sources_init(&s, c, m, err, sizeof(err));
    if (rc != 0) fail_msg("%s", err);
    assert_string_equal(c->http.listen, "127.0.0.1:8080");
    assert_string_equal(c->ack_mode, "durable");
    ing_sources_deinit(&s);
    hl_metrics_free(m);
    ing_config_free(c);
    assert_int_equal(chdir(cwd), 0);
}

static int setup(void **state)
{
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char path[600];
    const char *names[] = {"c.yaml", "s.secret"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_env),
        cmocka_unit_test(test_sources_secrets),
        cmocka_unit_test(test_sources_secret_floor),
        cmocka_unit_test(test_source_name_decode),
        cmocka_unit_test(test_sources_secret_file_mode),
        cmocka_unit_test(test_readme_covers_keys),
        cmocka_unit_test(test_local_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
