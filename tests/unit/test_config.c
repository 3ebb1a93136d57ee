/* Unit tests for hl_config: loading a sample service schema built from the shared field
 * arrays, every load failure, environment overrides, validation messages and secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hl/config.h"

#ifndef HL_TEST_DATA
#error "HL_TEST_DATA must point at tests/unit/data/config"
#endif
#define DATA(name) HL_TEST_DATA "/" name

/* A small service configuration in the shape every service uses. */
typedef struct {
    char *name;
    uint32_t workers;
    bool debug;
    int64_t offset;
    hl_kafka_config_t kafka;
    hl_pg_config_t pg;
    hl_http_config_t http;
} svc_config_t;

static const cyaml_schema_field_t svc_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_DEFAULT, svc_config_t, name, 1, 64),
    CYAML_FIELD_UINT("workers", CYAML_FLAG_OPTIONAL, svc_config_t, workers),
    CYAML_FIELD_BOOL("debug", CYAML_FLAG_OPTIONAL, svc_config_t, debug),
    CYAML_FIELD_INT("offset", CYAML_FLAG_OPTIONAL, svc_config_t, offset),
    CYAML_FIELD_MAPPING("kafka", CYAML_FLAG_OPTIONAL, svc_config_t, kafka, hl_kafka_fields),
    CYAML_FIELD_MAPPING("postgres", CYAML_FLAG_OPTIONAL, svc_config_t, pg, hl_pg_fields),
    CYAML_FIELD_MAPPING("http", CYAML_FLAG_OPTIONAL, svc_config_t, http, hl_http_fields),
    CYAML_FIELD_END,
};

static const cyaml_schema_value_t svc_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, svc_config_t, svc_fields),
};

static const hl_env_override_t svc_env[] = {
    {"HLTEST_KAFKA_BROKERS", HL_ENV_STR, offsetof(svc_config_t, kafka.brokers)},
    {"HLTEST_WORKERS", HL_ENV_U32, offsetof(svc_config_t, workers)},
    {"HLTEST_DEBUG", HL_ENV_BOOL, offsetof(svc_config_t, debug)},
    {"HLTEST_OFFSET", HL_ENV_I64, offsetof(svc_config_t, offset)},
    {"HLTEST_HTTP_THREADS", HL_ENV_U32, offsetof(svc_config_t, http.threads)},
};
#define NENV (sizeof svc_env / sizeof svc_env[0])

/* What a service does at start: load, defaults, overrides, checks. */
static int svc_load(const char *path, svc_config_t **out, char *errbuf, size_t cap)
{
    void *raw = NULL;
    int rc = hl_config_load(path, &svc_schema, &raw, errbuf, cap);
    if (rc != 0) return rc;
    svc_config_t *c = raw;
    hl_config_kafka_defaults(&c->kafka, "sample");
    hl_config_pg_defaults(&c->pg);
    hl_config_http_defaults(&c->http, "127.0.0.1:8080");
    rc = hl_config_env(c, svc_env, NENV, errbuf, cap);
    if (rc == 0) rc = hl_config_kafka_check("kafka", &c->kafka, errbuf, cap);
    if (rc == 0) rc = hl_config_http_check("http", &c->http, errbuf, cap);
    if (rc == 0) rc = hl_config_check_u32("workers", c->workers, 0, 64, errbuf, cap);
    if (rc != 0) {
        hl_config_free(&svc_schema, c);
        return rc;
    }
    *out = c;
    return 0;
}

static void clear_env(void)
{
    for (size_t i = 0; i < NENV; i++) unsetenv(svc_env[i].var);
    unsetenv("HLTEST_SECRET");
}

static int setup(void **state)
{
    clear_env();
    return 0;
}

static void test_valid_sample(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("valid.yaml"), &c, err, sizeof err), 0);
    assert_string_equal(c->name, "sample");
    assert_int_equal(c->workers, 4);
    assert_true(c->debug);
    assert_string_equal(c->kafka.brokers, "10.0.0.1:9092,10.0.0.2:9092");
    assert_string_equal(c->kafka.events_topic, "test.events");
    assert_string_equal(c->kafka.lineage_topic, "test.lineage");
    assert_string_equal(c->kafka.dlq_topic, "test.dlq");
    assert_string_equal(c->kafka.client_id, "sample-svc");
    assert_int_equal(c->kafka.properties_count, 2);
    assert_string_equal(c->kafka.properties[0], "linger.ms=5");
    assert_string_equal(c->kafka.properties[1], "compression.type=lz4");
    assert_string_equal(c->pg.conninfo, "host=127.0.0.1 port=55432 dbname=hookline user=hookline");
    assert_string_equal(c->pg.schema, "audit");
    assert_int_equal(c->pg.connect_timeout_ms, 2500);
    assert_string_equal(c->http.listen, "0.0.0.0:9000");
    assert_int_equal(c->http.threads, 8);
    assert_int_equal(c->http.request_timeout_ms, 3000);
    assert_null(c->http.tls_cert);
    hl_config_free(&svc_schema, c);
}

static void test_defaults(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("minimal.yaml"), &c, err, sizeof err), 0);
    assert_string_equal(c->kafka.brokers, "127.0.0.1:9092");
    assert_string_equal(c->kafka.events_topic, "hookline.events");
    assert_string_equal(c->kafka.lineage_topic, "hookline.lineage");
    assert_string_equal(c->kafka.dlq_topic, "hookline.dlq");
    assert_string_equal(c->kafka.client_id, "sample");
    assert_int_equal(c->kafka.properties_count, 0);
    assert_string_equal(c->pg.conninfo, "");
    assert_string_equal(c->pg.schema, "public");
    assert_int_equal(c->pg.connect_timeout_ms, 5000);
    assert_string_equal(c->http.listen, "127.0.0.1:8080");
    assert_true(c->http.threads > 0);
    assert_true(c->http.request_timeout_ms > 0);
    hl_config_free(&svc_schema, c);
}

static void test_missing_file(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("no-such-file.yaml"), &c, err, sizeof err), HL_EIO);
    assert_null(c);
    assert_non_null(strstr(err, "no-such-file.yaml"));
    assert_non_null(strstr(err, "No such file"));
}

static void test_syntax_error(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("syntax_error.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(err, "syntax_error.yaml"));
    assert_true(strlen(err) > strlen(DATA("syntax_error.yaml")) + 10);
    assert_non_null(strstr(err, "libyaml"));
    assert_non_null(strstr(err, "line: 3"));
    assert_null(strchr(err, '\n')); /* one line */
}

static void test_oversized_and_unreadable(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    /* A directory exists but is not a readable file. */
    assert_int_equal(svc_load(HL_TEST_DATA, &c, err, sizeof err), HL_EIO);
    /* Over the 1 MiB cap: refused before parsing. */
    char path[] = "/tmp/hl-config-big-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static char chunk[64 * 1024];
    memset(chunk, '#', sizeof chunk);
    for (int i = 0; i < 17; i++) assert_int_equal(write(fd, chunk, sizeof chunk), sizeof chunk);
    close(fd);
    assert_int_equal(svc_load(path, &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "larger than"));
    unlink(path);
    /* An integer that does not fit the field's 32 bits. */
    assert_int_equal(svc_load(DATA("int_overflow.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "threads"));
    assert_null(c);
}

static void test_unknown_key(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("unknown_key.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "Unexpected key: bootstrap"));
    assert_non_null(strstr(err, "'kafka'"));
}

static void test_wrong_type(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("wrong_type.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "'many'"));
    assert_non_null(strstr(err, "'threads'"));
}

static void test_out_of_range(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("out_of_range.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_string_equal(err, "config: field 'http.threads' = 5000: must be in [1, 1024]");
}

static void test_bad_topic_and_empty(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("bad_topic.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "field 'kafka.events_topic' = events topic with spaces"));
    assert_int_equal(svc_load(DATA("empty.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_null(c);
    assert_int_equal(svc_load(DATA("alias.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "lias"));
    assert_null(c);
}

static void test_env_overrides(void **state)
{
    setenv("HLTEST_KAFKA_BROKERS", "broker-a:9092", 1);
    setenv("HLTEST_WORKERS", "12", 1);
    setenv("HLTEST_DEBUG", "false", 1);
    setenv("HLTEST_OFFSET", "-42", 1);
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("valid.yaml"), &c, err, sizeof err), 0);
    assert_string_equal(c->kafka.brokers, "broker-a:9092");
    assert_int_equal(c->workers, 12);
    assert_false(c->debug);
    assert_int_equal(c->offset, -42);
    hl_config_free(&svc_schema, c);
    clear_env();
}

/* Each bad value must be refused with the variable, the value and the rule in the message. */
static void expect_env_error(const char *var, const char *value, const char *rule_part)
{
    clear_env();
    setenv(var, value, 1);
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("valid.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(err, var));
    char quoted[128];
    snprintf(quoted, sizeof quoted, "'%s'", value);
    assert_non_null(strstr(err, quoted));
    assert_non_null(strstr(err, rule_part));
    clear_env();
}

static void test_env_bad_values(void **state)
{
    expect_env_error("HLTEST_WORKERS", "abc", "decimal integer in [0, 4294967295]");
    expect_env_error("HLTEST_WORKERS", "-1", "decimal integer");
    expect_env_error("HLTEST_WORKERS", "4294967296", "decimal integer");
    expect_env_error("HLTEST_WORKERS", " 5", "decimal integer");
    expect_env_error("HLTEST_WORKERS", "+5", "decimal integer");
    expect_env_error("HLTEST_WORKERS", "0x10", "decimal integer");
    expect_env_error("HLTEST_WORKERS", "", "decimal integer");
    expect_env_error("HLTEST_DEBUG", "maybe", "must be one of true, false");
    expect_env_error("HLTEST_DEBUG", "TRUEISH", "must be one of");
    expect_env_error("HLTEST_OFFSET", "12x", "64-bit decimal integer");
    expect_env_error("HLTEST_OFFSET", "99999999999999999999", "64-bit decimal integer");
}

static void test_env_huge_string_not_echoed(void **state)
{
    static char huge[70 * 1024];
    memset(huge, 'k', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    setenv("HLTEST_KAFKA_BROKERS", huge, 1);
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("valid.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "HLTEST_KAFKA_BROKERS"));
    assert_non_null(strstr(err, "longer than"));
    assert_null(strstr(err, "kkkk"));
    clear_env();
}

static void test_env_value_passes_parse_but_fails_check(void **state)
{
    setenv("HLTEST_HTTP_THREADS", "0", 1);
    char err[HL_CONFIG_ERRBUF] = "";
    svc_config_t *c = NULL;
    assert_int_equal(svc_load(DATA("valid.yaml"), &c, err, sizeof err), HL_ECONFIG);
    assert_string_equal(err, "config: field 'http.threads' = 0: must be in [1, 1024]");
    clear_env();
}

static void test_check_helpers(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    assert_int_equal(hl_config_check_u32("a.b", 5, 1, 10, err, sizeof err), 0);
    assert_int_equal(hl_config_check_u32("a.b", 11, 1, 10, err, sizeof err), HL_ECONFIG);
    assert_string_equal(err, "config: field 'a.b' = 11: must be in [1, 10]");
    assert_int_equal(hl_config_check_str("s", "abc", 1, 3, err, sizeof err), 0);
    assert_int_equal(hl_config_check_str("s", "abcd", 1, 3, err, sizeof err), HL_ECONFIG);
    assert_string_equal(err, "config: field 's' = abcd: length must be in [1, 3] bytes");
    assert_int_equal(hl_config_check_str("s", NULL, 1, 3, err, sizeof err), HL_ECONFIG);
    assert_string_equal(err, "config: field 's' = (unset): must be set");
    assert_int_equal(hl_config_fail(err, sizeof err, "f", "v\nx", "rule"), HL_ECONFIG);
    assert_string_equal(err, "config: field 'f' = v?x: rule");
    /* A long value is shortened, and a tiny errbuf is still NUL-terminated. */
    char longv[300];
    memset(longv, 'z', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(hl_config_fail(err, sizeof err, "f", longv, "rule"), HL_ECONFIG);
    assert_true(strlen(err) < 120);
    char tiny[8];
    assert_int_equal(hl_config_fail(tiny, sizeof tiny, "f", "v", "rule"), HL_ECONFIG);
    assert_int_equal(strlen(tiny), 7);
}

static void test_shared_checks(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    hl_http_config_t h = {0};
    hl_config_http_defaults(&h, "127.0.0.1:1");
    assert_int_equal(hl_config_http_check("http", &h, err, sizeof err), 0);
    h.tls_key = "key.pem";
    assert_int_equal(hl_config_http_check("http", &h, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "'http.tls_cert'"));
    h.tls_key = NULL;
    free(h.listen);

    hl_kafka_config_t k = {0};
    hl_config_kafka_defaults(&k, NULL);
    char *props[] = {"=value-only"};
    k.properties = props;
    k.properties_count = 1;
    assert_int_equal(hl_config_kafka_check("kafka", &k, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "'kafka.properties'"));
    assert_null(strstr(err, "value-only"));
    k.properties_count = 0;
    assert_int_equal(hl_config_kafka_check("kafka", &k, err, sizeof err), 0);
    assert_string_equal(k.client_id, "hookline");
    free(k.brokers);
    free(k.events_topic);
    free(k.lineage_topic);
    free(k.dlq_topic);
    free(k.client_id);
}

static void test_secret_env_and_file(void **state)
{
    char *s = NULL;
    size_t len = 0;
    setenv("HLTEST_SECRET", "from-env", 1);
    assert_int_equal(hl_secret_load("HLTEST_SECRET", DATA("secret.txt"), true, &s, &len), 0);
    assert_string_equal(s, "from-env");
    assert_int_equal(len, 8);
    free(s);
    unsetenv("HLTEST_SECRET");
    assert_int_equal(hl_secret_load("HLTEST_SECRET", DATA("secret.txt"), true, &s, &len), 0);
    assert_string_equal(s, "s3cr3t-from-file"); /* trailing newline stripped */
    assert_int_equal(len, 16);
    free(s);
    assert_int_equal(hl_secret_load(NULL, DATA("secret.txt"), true, &s, NULL), 0);
    free(s);
}

static void test_secret_missing(void **state)
{
    char *s = (char *)1;
    size_t len = 99;
    assert_int_equal(hl_secret_load("HLTEST_SECRET", NULL, false, &s, &len), HL_ENOTFOUND);
    assert_null(s);
    assert_int_equal(hl_secret_load("HLTEST_SECRET", DATA("absent.txt"), false, &s, &len),
                     HL_ENOTFOUND);
    assert_int_equal(hl_secret_load(NULL, NULL, false, &s, &len), HL_ENOTFOUND);
    /* A directory is there but cannot be read as a file. */
    assert_int_equal(hl_secret_load(NULL, HL_TEST_DATA, true, &s, &len), HL_EIO);
    assert_null(s);
}

/* Writes n bytes to a new temporary file; its path is left in path (a mkstemp template). */
static void write_bytes(char *path, const char *bytes, size_t n)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, n), (ssize_t)n);
    close(fd);
}

static void test_secret_nul_refused(void **state)
{
    /* A NUL inside the file: the string would end at it while the file length goes on. */
    static const char with_nul[] = "abcdefgh\0ijklmnopqrstuvwxyz\n";
    char path[] = "/tmp/hl-config-secret-XXXXXX";
    write_bytes(path, with_nul, sizeof with_nul - 1);
    char *s = (char *)1;
    size_t len = 99;
    int rc = hl_secret_load(NULL, path, false, &s, &len);
    if (rc == 0) {
        memset(s, 0, len); /* what every caller does after use: must stay inside the copy */
        free(s);
    }
    unlink(path);
    assert_int_equal(rc, HL_EPARSE);
    assert_null(s);
    /* A clean secret: exactly len bytes and a terminating NUL, all writable. */
    static const char clean[] = "0123456789abcdef\r\n";
    char path2[] = "/tmp/hl-config-secret-XXXXXX";
    write_bytes(path2, clean, sizeof clean - 1);
    assert_int_equal(hl_secret_load(NULL, path2, false, &s, &len), 0);
    unlink(path2);
    assert_int_equal(len, 16);
    assert_int_equal(s[len], '\0');
    assert_memory_equal(s, "0123456789abcdef", 16);
    memset(s, 0, len + 1);
    free(s);
}

/* A named pipe where a secret or the configuration should be: refused at once, never waited
 * on (the ingress reads them on the thread that answers SIGTERM). Before the check, each call
 * blocked in open() until a writer came: the alarm then fails the test. */
static void test_named_pipe_refused(void **state)
{
    char dir[] = "/tmp/hl-config-fifo-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/p", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(5);
    char *s = (char *)1;
    size_t len = 99;
    int rc = hl_secret_load(NULL, path, false, &s, &len);
    char errbuf[HL_CONFIG_ERRBUF] = "";
    svc_config_t *cfg = NULL;
    int crc = svc_load(path, &cfg, errbuf, sizeof errbuf);
    alarm(0);
    unlink(path);
    rmdir(dir);
    assert_int_equal(rc, HL_ESTATE);
    assert_null(s);
    assert_int_not_equal(crc, 0);
    assert_null(cfg);
    assert_non_null(strstr(errbuf, "not a regular file"));
}

static void test_secret_file_mode(void **state)
{
    static const char secret[] = "0123456789abcdef\n";
    char path[] = "/tmp/hl-config-secret-XXXXXX";
    write_bytes(path, secret, sizeof secret - 1); /* mkstemp: 0600 */
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(hl_secret_file_private(path), 0);
    assert_int_equal(hl_secret_load(NULL, path, false, &s, &len), 0);
    free(s);
    /* Readable by the group, or by others: refused unless shared files are accepted. */
    static const mode_t modes[] = {0640, 0604, 0660, 0644};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        assert_int_equal(chmod(path, modes[i]), 0);
        assert_int_equal(hl_secret_file_private(path), HL_EINVAL);
        s = (char *)1;
        assert_int_equal(hl_secret_load(NULL, path, false, &s, &len), HL_EINVAL);
        assert_null(s);
        assert_int_equal(hl_secret_load(NULL, path, true, &s, &len), 0);
        assert_memory_equal(s, "0123456789abcdef", 16);
        free(s);
    }
    /* The environment is not a file: no mode to check. */
    setenv("HLTEST_SECRET", "from-env", 1);
    assert_int_equal(hl_secret_load("HLTEST_SECRET", path, false, &s, &len), 0);
    free(s);
    unsetenv("HLTEST_SECRET");
    unlink(path);
    assert_int_equal(hl_secret_file_private(path), HL_ENOTFOUND);
}

static void test_cyaml_config_quiet(void **state)
{
    const cyaml_config_t *cfg = hl_cyaml_config();
    assert_non_null(cfg);
    assert_non_null(cfg->log_fn);
    assert_ptr_not_equal(cfg->log_fn, cyaml_log); /* errors go to errbuf, not stderr */
    assert_int_equal(cfg->flags & CYAML_CFG_IGNORE_UNKNOWN_KEYS, 0);
}

/* A key table in the shape a service declares: each key once, with default, limits and env. */
typedef struct {
    char *label;
    uint32_t depth;
    uint32_t width;
} keyed_config_t;

#define KEYED_KEYS(X)                                                                              \
    X(STR, label, "plain", 1, 8, "HLTEST_LABEL", "a short label")                                  \
    X(U32, depth, 3, 1, 10, "HLTEST_DEPTH", "how deep")                                            \
    X(U32, width, 7, 2, 9, NULL, "how wide, no override")
#define KEYED_ROW(...) HL_CONFIG_KEY(keyed_config_t, __VA_ARGS__)
static const hl_config_key_t keyed_keys[] = {KEYED_KEYS(KEYED_ROW)};
#define KEYED_FIELD(...) HL_CONFIG_FIELD(keyed_config_t, __VA_ARGS__)
static const cyaml_schema_field_t keyed_fields[] = {KEYED_KEYS(KEYED_FIELD) CYAML_FIELD_END};
#define NKEYED (sizeof keyed_keys / sizeof keyed_keys[0])

static void test_key_table(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    keyed_config_t c = {NULL, 0, 5};
    assert_string_equal(keyed_fields[1].key, "depth");
    assert_int_equal(keyed_fields[2].data_offset, offsetof(keyed_config_t, width));
    setenv("HLTEST_DEPTH", "4", 1);
    assert_int_equal(hl_config_keys_env(&c, keyed_keys, NKEYED, err, sizeof err), 0);
    hl_config_keys_defaults(&c, keyed_keys, NKEYED);
    assert_string_equal(c.label, "plain");
    assert_int_equal(c.depth, 4); /* the override wins over the default */
    assert_int_equal(c.width, 5); /* a value set stays */
    assert_int_equal(hl_config_keys_check(&c, keyed_keys, NKEYED, err, sizeof err), 0);
    c.width = 10;
    assert_int_equal(hl_config_keys_check(&c, keyed_keys, NKEYED, err, sizeof err), HL_ECONFIG);
    assert_string_equal(err, "config: field 'width' = 10: must be in [2, 9]");
    c.width = 5;
    setenv("HLTEST_LABEL", "far-too-long", 1);
    assert_int_equal(hl_config_keys_env(&c, keyed_keys, NKEYED, err, sizeof err), 0);
    assert_int_equal(hl_config_keys_check(&c, keyed_keys, NKEYED, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "'label'"));
    setenv("HLTEST_DEPTH", "x", 1);
    assert_int_equal(hl_config_keys_env(&c, keyed_keys, NKEYED, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "HLTEST_DEPTH"));
    unsetenv("HLTEST_DEPTH");
    unsetenv("HLTEST_LABEL");
    free(c.label);
}

/* The command line every service reads: a file named either way, help, and every bad form. */
static void test_service_args(void **state)
{
    (void)state;
    const char *path = "stale";
    char *two[] = {"svc", "--config", "a.yaml", NULL};
    assert_int_equal(hl_config_args(3, two, &path), 0);
    assert_string_equal(path, "a.yaml");
    char *eq[] = {"svc", "--config=b.yaml", NULL};
    assert_int_equal(hl_config_args(2, eq, &path), 0);
    assert_string_equal(path, "b.yaml");
    char *help[] = {"svc", "--config", "a.yaml", "-h", "--bogus", NULL};
    assert_int_equal(hl_config_args(5, help, &path), 1);
    char *bad[] = {"svc", "--bogus", "--help", NULL};
    assert_int_equal(hl_config_args(3, bad, &path), -1);
    char *none[] = {"svc", NULL};
    assert_int_equal(hl_config_args(1, none, &path), -1);
    assert_null(path);
    char *dangling[] = {"svc", "--config", NULL};
    assert_int_equal(hl_config_args(2, dangling, &path), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_valid_sample, setup),
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_missing_file, setup),
        cmocka_unit_test_setup(test_syntax_error, setup),
        cmocka_unit_test_setup(test_oversized_and_unreadable, setup),
        cmocka_unit_test_setup(test_unknown_key, setup),
        cmocka_unit_test_setup(test_wrong_type, setup),
        cmocka_unit_test_setup(test_out_of_range, setup),
        cmocka_unit_test_setup(test_bad_topic_and_empty, setup),
        cmocka_unit_test_setup(test_env_overrides, setup),
        cmocka_unit_test_setup(test_env_bad_values, setup),
        cmocka_unit_test_setup(test_env_huge_string_not_echoed, setup),
        cmocka_unit_test_setup(test_env_value_passes_parse_but_fails_check, setup),
        cmocka_unit_test_setup(test_check_helpers, setup),
        cmocka_unit_test_setup(test_shared_checks, setup),
        cmocka_unit_test_setup(test_secret_env_and_file, setup),
        cmocka_unit_test_setup(test_secret_missing, setup),
        cmocka_unit_test_setup(test_secret_nul_refused, setup),
        cmocka_unit_test_setup(test_secret_file_mode, setup),
        cmocka_unit_test_setup(test_named_pipe_refused, setup),
        cmocka_unit_test_setup(test_cyaml_config_quiet, setup),
        cmocka_unit_test_setup(test_key_table, setup),
        cmocka_unit_test_setup(test_service_args, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
