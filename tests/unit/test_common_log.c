/* Unit tests for the logging of hl_common: JSON log lines (fields, threshold, escaping, caps,
 * threads) read back from a redirected stderr, and the fatal paths (hl_die, out of memory). */
#define _GNU_SOURCE /* strptime, timegm */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hl/codec.h"
#include "hl/error.h"
#include "hl/log.h"
#include "hl/util.h"

/* ---- logging: stderr is pointed at a temporary file and read back ---- */

typedef struct {
    int saved_fd;
    char path[64];
} capture_t;

static void capture_start(capture_t *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/hl_test_log_XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    c->saved_fd = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* Restores stderr and returns what was written (caller frees). */
static char *capture_end(capture_t *c, size_t *len)
{
    char *text = NULL;
    size_t n = 0;
    dup2(c->saved_fd, STDERR_FILENO);
    close(c->saved_fd);
    assert_int_equal(hl_read_file(c->path, 16 << 20, &text, &n), 0);
    unlink(c->path);
    if (len != NULL) *len = n;
    return text;
}

/* Parses one JSON line; fails the test if it is not an object. */
static json_t *parse_line(const char *line, size_t n)
{
    json_error_t err;
    json_t *j = json_loadb(line, n, 0, &err);
    if (j == NULL) fail_msg("not JSON (%s): %.*s", err.text, (int)n, line);
    assert_true(json_is_object(j));
    return j;
}

static void test_log_line_fields(void **state)
{
    (void)state;
    capture_t c;
    hl_log_init("unit-svc", HL_LOG_INFO);
    hl_log_ctx_t ctx = {"0190a0b0-0000-7000-8000-000000000001", "hookline.events", 3, 42};
    char kv[256];
    size_t kvlen = 0;
    hl_log_kv_int(kv, sizeof(kv), &kvlen, "status", 401);
    hl_log_kv_str(kv, sizeof(kv), &kvlen, "source", "str\"ipe");
    capture_start(&c);
    hl_log_write(HL_LOG_WARN, &ctx, kv, "hello %s %d", "world", 7);
    hl_log_write(HL_LOG_ERROR, &HL_LOG_CTX_NONE, NULL, "plain");
    size_t n;
    char *text = capture_end(&c, &n);
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    json_t *j = parse_line(text, (size_t)(nl - text));
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "svc")), "unit-svc");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "hello world 7");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), ctx.request_id);
    assert_string_equal(json_string_value(json_object_get(j, "topic")), "hookline.events");
    assert_int_equal(json_integer_value(json_object_get(j, "partition")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "offset")), 42);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 401);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "str\"ipe");
    /* ts: 2026-01-02T03:04:05.678Z, and close to now. */
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    struct tm tm = {0};
    assert_non_null(strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm));
    long long diff = (long long)timegm(&tm) - (long long)time(NULL);
    assert_true(diff >= -5 && diff <= 5);
    json_decref(j);

    /* The second line omits every absent context field. */
    char *second = nl + 1;
    char *nl2 = strchr(second, '\n');
    assert_non_null(nl2);
    assert_int_equal(nl2 + 1 - text, (long)n);
    j = parse_line(second, (size_t)(nl2 - second));
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    assert_null(json_object_get(j, "request_id"));
    assert_null(json_object_get(j, "topic"));
    assert_null(json_object_get(j, "partition"));
    assert_null(json_object_get(j, "offset"));
    assert_int_equal(json_object_size(j), 4);
    json_decref(j);
    free(text);
}

static int side_effects;
static int bump(void)
{
    return ++side_effects;
}

static void test_log_threshold(void **state)
{
    (void)state;
    capture_t c;
    hl_log_init("unit-svc", HL_LOG_WARN);
    side_effects = 0;
    capture_start(&c);
    hl_debug("debug %d", bump());
    hl_info("info %d", bump());
    hl_log_write(HL_LOG_INFO, NULL, NULL, "direct info");
    hl_warn("warn %d", bump());
    hl_log_init("unit-svc", HL_LOG_OFF);
    hl_error("error %d", bump());
    hl_log_init("unit-svc", HL_LOG_INFO);
    size_t n;
    char *text = capture_end(&c, &n);
    /* Disabled levels never evaluate their arguments: the check precedes formatting. */
    assert_int_equal(side_effects, 1);
    assert_non_null(strstr(text, "\"msg\":\"warn 1\""));
    assert_null(strstr(text, "info"));
    assert_null(strstr(text, "error"));
    free(text);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    hl_log_level_t l = HL_LOG_OFF;
    assert_int_equal(hl_log_level_parse("debug", &l), 0);
    assert_int_equal(l, HL_LOG_DEBUG);
    assert_int_equal(hl_log_level_parse("INFO", &l), 0);
    assert_int_equal(l, HL_LOG_INFO);
    assert_int_equal(hl_log_level_parse("warn", &l), 0);
    assert_int_equal(l, HL_LOG_WARN);
    assert_int_equal(hl_log_level_parse("error", &l), 0);
    assert_int_equal(l, HL_LOG_ERROR);
    assert_int_equal(hl_log_level_parse("off", &l), 0);
    assert_int_equal(l, HL_LOG_OFF);
    l = HL_LOG_INFO;
    assert_int_equal(hl_log_level_parse("verbose", &l), HL_EINVAL);
    assert_int_equal(hl_log_level_parse("", &l), HL_EINVAL);
    assert_int_equal(hl_log_level_parse("info ", &l), HL_EINVAL);
    assert_int_equal(hl_log_level_parse(NULL, &l), HL_EINVAL);
    assert_int_equal(l, HL_LOG_INFO);
}

static void test_json_escape(void **state)
{
    (void)state;
    char out[256];
    size_t n = hl_json_escape(out, sizeof(out), "a\"b\\c\nd\te\r", 10);
    assert_string_equal(out, "a\\\"b\\\\c\\nd\\te\\r");
    assert_int_equal(n, strlen(out));
    /* Control bytes, DEL and NUL inside the span. */
    n = hl_json_escape(out, sizeof(out), "\x01\x1f\x7f\0x", 5);
    assert_string_equal(out, "\\u0001\\u001f\\u007f\\u0000x");
    /* Valid UTF-8 passes through: é (2 bytes), € (3 bytes), 😀 (4 bytes). */
    const char *utf = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    hl_json_escape(out, sizeof(out), utf, strlen(utf));
    assert_string_equal(out, utf);
    /* Invalid UTF-8: stray continuation, 0xff, overlong '/', surrogate, cut sequence, >U+10FFFF. */
    hl_json_escape(out, sizeof(out), "\x80", 1);
    assert_string_equal(out, "\\u0080");
    hl_json_escape(out, sizeof(out),
                   "a\xff"
                   "b",
                   3);
    assert_string_equal(out, "a\\u00ffb");
    hl_json_escape(out, sizeof(out), "\xc0\xaf", 2);
    assert_string_equal(out, "\\u00c0\\u00af");
    hl_json_escape(out, sizeof(out), "\xed\xa0\x80", 3);
    assert_string_equal(out, "\\u00ed\\u00a0\\u0080");
    hl_json_escape(out, sizeof(out), "\xe2\x82", 2);
    assert_string_equal(out, "\\u00e2\\u0082");
    hl_json_escape(out, sizeof(out), "\xf4\x90\x80\x80", 4);
    assert_string_equal(out, "\\u00f4\\u0090\\u0080\\u0080");
    /* Whatever comes out is valid JSON string content. */
    unsigned char all[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
    char big[256 * 6 + 3];
    big[0] = '"';
    n = hl_json_escape(big + 1, sizeof(big) - 2, (const char *)all, sizeof(all));
    big[n + 1] = '"';
    json_t *j = json_loadb(big, n + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(j);
    assert_true(json_is_string(j));
    json_decref(j);
    /* The cap never splits an escape or a character, and always NUL-terminates. */
    n = hl_json_escape(out, 4, "ab\n", 3);
    assert_string_equal(out, "ab");
    assert_int_equal(n, 2);
    n = hl_json_escape(out, 3, "\xc3\xa9\xc3\xa9", 4);
    assert_string_equal(out, "\xc3\xa9");
    n = hl_json_escape(out, 1, "abc", 3);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
    out[0] = 'x';
    assert_int_equal(hl_json_escape(out, 0, "abc", 3), 0);
    assert_int_equal(out[0], 'x');
}

static void test_log_kv(void **state)
{
    (void)state;
    char buf[64];
    size_t len = 0;
    buf[0] = '\0';
    hl_log_kv_str(buf, sizeof(buf), &len, "a", "x\ty");
    assert_string_equal(buf, "\"a\":\"x\\ty\"");
    hl_log_kv_int(buf, sizeof(buf), &len, "n", -12);
    assert_string_equal(buf, "\"a\":\"x\\ty\",\"n\":-12");
    assert_int_equal(len, strlen(buf));
    /* A member that does not fit is left out whole, so the kv string stays valid JSON. */
    size_t before = len;
    hl_log_kv_str(buf, sizeof(buf), &len, "long", "0123456789012345678901234567890123456789");
    assert_int_equal(len, before);
    assert_string_equal(buf, "\"a\":\"x\\ty\",\"n\":-12");
    hl_log_kv_int(buf, 24, &len, "bignumber", 1234567890);
    assert_int_equal(len, before);
    /* Values are cut to 256 bytes. */
    char value[1000], big[2048];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    len = 0;
    hl_log_kv_str(big, sizeof(big), &len, "k", value);
    assert_int_equal(len, strlen("\"k\":\"\"") + 256);
    hl_log_kv_str(big, sizeof(big), &len, "nul", NULL);
    assert_non_null(strstr(big, ",\"nul\":\"\""));
}

static void test_log_message_cap(void **state)
{
    (void)state;
    capture_t c;
    char msg[5000];
    memset(msg, 'm', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = '\0';
    char kv[4096];
    memset(kv, 'k', sizeof(kv) - 1);
    kv[sizeof(kv) - 1] = '\0';
    hl_log_init("unit-svc", HL_LOG_INFO);
    capture_start(&c);
    hl_log_write(HL_LOG_INFO, NULL, NULL, "%s", msg);
    hl_log_write(HL_LOG_INFO, NULL, kv, "oversized kv"); /* not JSON; too long, so dropped */
    char ctl[3000];
    memset(ctl, 1, sizeof(ctl) - 1); /* worst case for escaping: every byte becomes \u0001 */
    ctl[sizeof(ctl) - 1] = '\0';
    hl_log_write(HL_LOG_INFO, NULL, NULL, "%s", ctl);
    /* Invalid UTF-8 in the message and in context fields still yields a valid line. */
    hl_log_ctx_t ctx = {"id\xff\"", "to\xc3\x28pic", -1, -1};
    hl_log_write(HL_LOG_INFO, &ctx, NULL, "bad \xc3\x28 utf8 \xed\xa0\x80 \x01");
    size_t n;
    char *text = capture_end(&c, &n);
    char *line = text;
    for (int i = 0; i < 4; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(nl - line < 16384);
        json_t *j = parse_line(line, (size_t)(nl - line));
        const char *m = json_string_value(json_object_get(j, "msg"));
        if (i == 0) {
            assert_int_equal(strlen(m), 2048);
            assert_true(json_is_true(json_object_get(j, "msg_truncated")));
        } else if (i == 1) {
            assert_true(json_is_true(json_object_get(j, "kv_dropped")));
        } else if (i == 2) {
            assert_true(strlen(m) > 1000 && strlen(m) <= 2048);
        } else {
            assert_string_equal(m, "bad \xc3\x83( utf8 \xc3\xad\xc2\xa0\xc2\x80 \x01");
            assert_string_equal(json_string_value(json_object_get(j, "request_id")),
                                "id\xc3\xbf\"");
            assert_non_null(strstr(line, "\"topic\":\"to\\u00c3(pic\""));
        }
        json_decref(j);
        line = nl + 1;
    }
    free(text);
}

#define LOG_THREADS 4
#define LOG_LINES 300

static void *log_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[600];
    memset(pad, 'a' + id, sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < LOG_LINES; i++)
        hl_log_write(HL_LOG_INFO, NULL, NULL, "t%d %d %s", id, i, pad);
    return NULL;
}

static void test_log_threads_do_not_interleave(void **state)
{
    (void)state;
    capture_t c;
    pthread_t t[LOG_THREADS];
    int seen[LOG_THREADS] = {0};
    hl_log_init("unit-svc", HL_LOG_INFO);
    capture_start(&c);
    for (int i = 0; i < LOG_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_worker, (void *)(intptr_t)i), 0);
    for (int i = 0; i < LOG_THREADS; i++) pthread_join(t[i], NULL);
    size_t n;
    char *text = capture_end(&c, &n);
    int lines = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        json_t *j = parse_line(line, (size_t)(nl - line));
        int id, i;
        assert_int_equal(sscanf(json_string_value(json_object_get(j, "msg")), "t%d %d", &id, &i),
                         2);
        assert_true(id >= 0 && id < LOG_THREADS);
        assert_int_equal(i, seen[id]); /* each thread's lines arrive whole and in order */
        seen[id]++;
        lines++;
        json_decref(j);
    }
    assert_int_equal(lines, LOG_THREADS * LOG_LINES);
    free(text);
}

/* Runs fn in a child with stderr to a file; returns the child's output and its wait status. */
static char *run_in_child(void (*fn)(void), int *status)
{
    capture_t c;
    fflush(NULL);
    capture_start(&c);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    assert_int_equal(waitpid(pid, status, 0), pid);
    return capture_end(&c, NULL);
}

static void die_child(void)
{
    hl_log_init("unit-svc", HL_LOG_OFF); /* fatal lines ignore the threshold */
    hl_die("disk on fire: %d", 42);
}

static void test_die(void **state)
{
    (void)state;
    int status;
    char *text = run_in_child(die_child, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    json_t *j = parse_line(text, strcspn(text, "\n"));
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "fatal: disk on fire: 42");
    json_decref(j);
    free(text);
}

/* Sanitizers intercept huge allocations themselves, so this runs only in plain builds. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define TEST_OOM 1
#endif

#ifdef TEST_OOM
static void oom_child(void)
{
    void *volatile p = hl_xmalloc(SIZE_MAX - 4096);
    (void)p;
}

static void test_xmalloc_oom_aborts(void **state)
{
    (void)state;
    int status;
    char *text = run_in_child(oom_child, &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(text, "fatal: out of memory"));
    free(text);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_line_fields),
        cmocka_unit_test(test_log_threshold),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_log_kv),
        cmocka_unit_test(test_log_message_cap),
        cmocka_unit_test(test_log_threads_do_not_interleave),
        cmocka_unit_test(test_die),
#ifdef TEST_OOM
        cmocka_unit_test(test_xmalloc_oom_aborts),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
