/* Unit tests for hl_common: error table, UUIDv7, base64 and hex, and the small helpers. The
 * JSON log lines and the fatal paths are in test_common_log.c. */
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

/* ---- error table ---- */

static void test_error_table(void **state)
{
    (void)state;
    assert_string_equal(hl_strerror(HL_OK), "success");
    assert_string_equal(hl_strerror(HL_EINVAL), "invalid argument");
    assert_string_equal(hl_strerror(HL_ESTATE), "operation not valid in this state");
    assert_string_equal(hl_errname(HL_EINVAL), "EINVAL");
    assert_string_equal(hl_errname(HL_ETOOBIG), "ETOOBIG");
    assert_string_equal(hl_errname(HL_ESTATE), "ESTATE");
    /* Every code in the table has its own message and name. */
    for (int e = HL_ERR_FIRST_ + 1; e < HL_ERR_LAST_; e++) {
        assert_true(e < 0);
        assert_string_not_equal(hl_strerror(e), "unknown error");
        assert_string_not_equal(hl_errname(e), "EUNKNOWN");
        assert_int_equal(hl_errname(e)[0], 'E');
        for (int f = e + 1; f < HL_ERR_LAST_; f++)
            assert_string_not_equal(hl_errname(e), hl_errname(f));
    }
    assert_string_equal(hl_strerror(HL_ERR_FIRST_), "unknown error");
    assert_string_equal(hl_strerror(HL_ERR_LAST_), "unknown error");
    assert_string_equal(hl_strerror(-1), "unknown error");
    assert_string_equal(hl_strerror(7), "unknown error");
    assert_string_equal(hl_errname(-5000), "EUNKNOWN");
}

/* ---- util ---- */

static void test_time(void **state)
{
    (void)state;
    int64_t now = hl_now_us();
    assert_true(llabs(now / 1000000 - (int64_t)time(NULL)) <= 2);
    int64_t a = hl_mono_us();
    usleep(2000);
    int64_t b = hl_mono_us();
    assert_true(b - a >= 2000);
    assert_true(b - a < 2000000);
}

static void test_uuid_format(void **state)
{
    (void)state;
    char id[HL_UUID_STR_LEN + 1];
    int64_t before = hl_now_us() / 1000;
    hl_uuid7(id);
    int64_t after = hl_now_us() / 1000;
    assert_int_equal(strlen(id), 36);
    assert_true(hl_uuid_valid(id));
    assert_int_equal(id[14], '7');           /* version */
    assert_non_null(strchr("89ab", id[19])); /* variant 10xx */
    for (const char *p = id; *p; p++)
        assert_true(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    /* The first 48 bits are the Unix time in milliseconds. */
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    long long ms = strtoll(hex, NULL, 16);
    assert_true(ms >= before && ms <= after + 1);
}

#define UUID_THREADS 4
#define UUID_PER_THREAD 20000

typedef struct {
    char ids[UUID_PER_THREAD][HL_UUID_STR_LEN + 1];
} uuid_batch_t;

static void *uuid_worker(void *arg)
{
    uuid_batch_t *b = arg;
    for (int i = 0; i < UUID_PER_THREAD; i++) hl_uuid7(b->ids[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uuid_monotonic_threads(void **state)
{
    (void)state;
    pthread_t t[UUID_THREADS];
    uuid_batch_t *b = calloc(UUID_THREADS, sizeof(*b));
    assert_non_null(b);
    for (int i = 0; i < UUID_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, uuid_worker, &b[i]), 0);
    for (int i = 0; i < UUID_THREADS; i++) pthread_join(t[i], NULL);
    /* Many ids share a millisecond; each thread still sees strictly increasing ids. */
    for (int i = 0; i < UUID_THREADS; i++)
        for (int k = 1; k < UUID_PER_THREAD; k++) {
            assert_true(hl_uuid_valid(b[i].ids[k]));
            if (strcmp(b[i].ids[k - 1], b[i].ids[k]) >= 0)
                fail_msg("not increasing: %s then %s", b[i].ids[k - 1], b[i].ids[k]);
        }
    /* And all of them are distinct. */
    char(*all)[HL_UUID_STR_LEN + 1] = (void *)b;
    size_t total = (size_t)UUID_THREADS * UUID_PER_THREAD;
    qsort(all, total, sizeof(all[0]), cmp_id);
    for (size_t k = 1; k < total; k++) assert_true(strcmp(all[k - 1], all[k]) < 0);
    /* A later id sorts after every earlier one, across threads. */
    char later[HL_UUID_STR_LEN + 1];
    hl_uuid7(later);
    assert_true(strcmp(all[total - 1], later) < 0);
    free(b);
}

/* Random bytes from the buffer and past it: never the same twice, every byte value seen, and a
 * forked child's bytes are not its parent's next ones (the buffer is dropped at the fork). */
static void test_random_bytes(void **state)
{
    (void)state;
    unsigned char a[24], b[24], big[300], seen[256] = {0};
    hl_random_bytes(a, sizeof a);
    hl_random_bytes(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
    for (int round = 0; round < 200; round++) {
        hl_random_bytes(big, sizeof big);
        for (size_t i = 0; i < sizeof big; i++) seen[big[i]] = 1;
    }
    for (int v = 0; v < 256; v++) assert_true(seen[v]);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    /* The buffer must hold the bytes a child could replay: a draw larger than what is left
     * refills it. */
    if (hl_random_buffered() < sizeof b) hl_random_bytes(a, sizeof b);
    assert_true(hl_random_buffered() >= sizeof b);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        hl_random_bytes(b, sizeof b);
        _exit(write(fds[1], b, sizeof b) == (ssize_t)sizeof b ? 0 : 1);
    }
    hl_random_bytes(a, sizeof a);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(read(fds[0], b, sizeof b), (ssize_t)sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
    unsigned char zero[sizeof b] = {0};
    assert_memory_not_equal(b, zero, sizeof b); /* fresh bytes, not a wiped buffer */
    close(fds[0]);
    close(fds[1]);
}

static void test_uuid_valid(void **state)
{
    (void)state;
    assert_true(hl_uuid_valid("0190a0b0-1234-7abc-9def-0123456789ab"));
    assert_true(hl_uuid_valid("0190A0B0-1234-7ABC-9DEF-0123456789AB"));
    assert_true(hl_uuid_valid("00000000-0000-0000-0000-000000000000"));
    assert_false(hl_uuid_valid("0190a0b0-1234-7ABC-9def-0123456789ab"));  /* mixed case */
    assert_false(hl_uuid_valid("0190a0b0-1234-7abc-9def-0123456789a"));   /* short */
    assert_false(hl_uuid_valid("0190a0b0-1234-7abc-9def-0123456789abc")); /* long */
    assert_false(hl_uuid_valid("0190a0b0x1234-7abc-9def-0123456789ab"));
    assert_false(hl_uuid_valid("0190a0b01-234-7abc-9def-0123456789ab"));
    assert_false(hl_uuid_valid("0190a0b0-1234-7abc-9def-0123456789ag"));
    assert_false(hl_uuid_valid("{190a0b0-1234-7abc-9def-0123456789ab"));
    assert_false(hl_uuid_valid(""));
    assert_false(hl_uuid_valid(NULL));
}

static void test_xalloc(void **state)
{
    (void)state;
    char *p = hl_xmalloc(0);
    assert_non_null(p);
    free(p);
    int *z = hl_xcalloc(16, sizeof(int));
    for (int i = 0; i < 16; i++) assert_int_equal(z[i], 0);
    z = hl_xrealloc(z, 64 * sizeof(int));
    assert_int_equal(z[15], 0);
    free(z);
    char *s = hl_xstrdup("hookline");
    assert_string_equal(s, "hookline");
    free(s);
    s = hl_xstrndup("hookline", 4);
    assert_string_equal(s, "hook");
    free(s);
    s = hl_xstrndup("ab", 10);
    assert_string_equal(s, "ab");
    free(s);
}

static void test_strlcpy(void **state)
{
    (void)state;
    char buf[8];
    assert_int_equal(hl_strlcpy(buf, "abc", sizeof(buf)), 0);
    assert_string_equal(buf, "abc");
    assert_int_equal(hl_strlcpy(buf, "1234567", sizeof(buf)), 0); /* exactly fits */
    assert_string_equal(buf, "1234567");
    assert_int_equal(hl_strlcpy(buf, "12345678", sizeof(buf)), HL_ETOOBIG);
    assert_string_equal(buf, "1234567");
    assert_int_equal(hl_strlcpy(buf, "", sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(hl_strlcpy(buf, "x", 1), HL_ETOOBIG);
    assert_string_equal(buf, "");
    buf[0] = 'q';
    assert_int_equal(hl_strlcpy(buf, "x", 0), HL_ETOOBIG);
    assert_int_equal(buf[0], 'q');
    assert_int_equal(hl_strlcpy(buf, NULL, sizeof(buf)), HL_EINVAL);
}

static void test_hex(void **state)
{
    (void)state;
    char out[9];
    const unsigned char in[] = {0x00, 0x7f, 0xa5, 0xff};
    hl_hex(out, in, 4);
    assert_string_equal(out, "007fa5ff");
    hl_hex(out, in, 0);
    assert_string_equal(out, "");
}

static void test_parse_i64(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(hl_parse_i64("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(hl_parse_i64("-0", -1, 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(hl_parse_i64("007", 0, 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(hl_parse_i64("-42", INT64_MIN, INT64_MAX, &v), 0);
    assert_int_equal(v, -42);
    assert_int_equal(hl_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(hl_parse_i64("-9223372036854775808", INT64_MIN, INT64_MAX, &v), 0);
    assert_true(v == INT64_MIN);
    v = 99;
    assert_int_equal(hl_parse_i64("9223372036854775808", INT64_MIN, INT64_MAX, &v), HL_ERANGE);
    assert_int_equal(hl_parse_i64("-9223372036854775809", INT64_MIN, INT64_MAX, &v), HL_ERANGE);
    assert_int_equal(hl_parse_i64("99999999999999999999999", INT64_MIN, INT64_MAX, &v), HL_ERANGE);
    assert_int_equal(hl_parse_i64("11", 0, 10, &v), HL_ERANGE);
    assert_int_equal(hl_parse_i64("-1", 0, 10, &v), HL_ERANGE);
    const char *bad[] = {
        "",    "-", "+1", " 1", "1 ", "1x", "0x10", "1.0", "--1", "1e3", "99999999999999999999999x",
        "\n1", "١"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hl_parse_i64(bad[i], INT64_MIN, INT64_MAX, &v), HL_EPARSE);
    assert_int_equal(hl_parse_i64(NULL, 0, 1, &v), HL_EPARSE);
    assert_int_equal(v, 99); /* untouched by every failure */
}

static void test_read_file(void **state)
{
    (void)state;
    char path[] = "/tmp/hl_test_read_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char body[] = "line one\nline two\n";
    assert_int_equal(write(fd, body, sizeof(body) - 1), (ssize_t)(sizeof(body) - 1));
    close(fd);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(hl_read_file(path, 1024, &out, &len), 0);
    assert_int_equal(len, sizeof(body) - 1);
    assert_string_equal(out, body);
    free(out);
    assert_int_equal(hl_read_file(path, sizeof(body) - 1, &out, &len), 0); /* exactly the cap */
    free(out);
    out = NULL;
    assert_int_equal(hl_read_file(path, sizeof(body) - 2, &out, &len), HL_ETOOBIG);
    assert_null(out);
    assert_int_equal(hl_read_file(path, 0, &out, &len), HL_ETOOBIG);
    unlink(path);
    errno = 0;
    assert_int_equal(hl_read_file(path, 1024, &out, &len), HL_EIO);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(hl_read_file("/tmp", 1024, &out, &len), HL_EIO);
    assert_int_equal(errno, EISDIR);
    /* procfs reports size 0; the content is still read, and still capped. */
    assert_int_equal(hl_read_file("/proc/self/status", 1 << 20, &out, &len), 0);
    assert_true(len > 100);
    assert_non_null(strstr(out, "Name:"));
    assert_int_equal(strlen(out), len);
    free(out);
    out = NULL;
    assert_int_equal(hl_read_file("/proc/self/status", 50, &out, &len), HL_ETOOBIG);
    assert_null(out);
    /* An empty file is an empty string. */
    char epath[] = "/tmp/hl_test_empty_XXXXXX";
    fd = mkstemp(epath);
    close(fd);
    assert_int_equal(hl_read_file(epath, 10, &out, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    free(out);
    unlink(epath);
}

/* ---- base64 and hex ---- */

static void test_codec(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(hl_base64_decode("aGk=", 4, out, sizeof(out)), 2);
    assert_memory_equal(out, "hi", 2);
    assert_int_equal(hl_base64_decode("aGk", 3, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode("aGl=", 4, out, sizeof(out)), HL_EPARSE); /* non-canonical */
    assert_int_equal(hl_base64_decode("a=k=", 4, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode("====", 4, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode("", 0, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode("AAAAAAAAAAAAAAAAAAAAAAAA", 24, out, sizeof(out)),
                     HL_ETOOBIG);
    char enc[16];
    assert_int_equal(hl_base64_encode((const unsigned char *)"hi", 2, enc, sizeof(enc)), 4);
    assert_string_equal(enc, "aGk=");
    assert_int_equal(hl_hex_decode("0aFf", 4, out, sizeof(out)), 2);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(hl_hex_decode("0aF", 3, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_hex_decode("0g", 2, out, sizeof(out)), HL_EPARSE);
    /* Loose: padding optional, everything else as strict. */
    assert_int_equal(hl_base64_decode_loose("aGVsbG8=", 8, out, sizeof(out)), 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(hl_base64_decode_loose("aGVsbG8", 7, out, sizeof(out)), 5); /* unpadded */
    assert_int_equal(hl_base64_decode_loose("aGV$bG8=", 8, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode_loose("a", 1, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode_loose("aGVsbG8gd29ybGQgaGVsbG8=", 24, out, 4), HL_ETOOBIG);
    char small[8];
    assert_int_equal(hl_base64_encode((const unsigned char *)"hello", 5, small, sizeof(small)),
                     HL_ETOOBIG);
    assert_int_equal(hl_base64_decode_loose("aGk", 3, out, sizeof(out)), 2);
    assert_memory_equal(out, "hi", 2);
    assert_int_equal(hl_base64_decode_loose("aGVsbG8gd29ybGQ", 15, out, sizeof(out)), 11);
    assert_memory_equal(out, "hello world", 11);
    assert_int_equal(hl_base64_decode_loose("aGl", 3, out, sizeof(out)), HL_EPARSE); /* bits */
    assert_int_equal(hl_base64_decode_loose("aG$", 3, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode_loose("aGk=aGk", 7, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode_loose("aG=", 3, out, sizeof(out)), HL_EPARSE);
    assert_int_equal(hl_base64_decode_loose("aGVsbG8gd29ybGQ", 15, out, 9), HL_ETOOBIG);
    assert_int_equal(hl_base64_decode_loose("aGVsbG8gd29ybGQ", 15, out, 8), HL_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_codec),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_uuid_format),
        cmocka_unit_test(test_uuid_monotonic_threads),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_xalloc),
        cmocka_unit_test(test_strlcpy),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_parse_i64),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
