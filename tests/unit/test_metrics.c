/* Unit tests for hl_metrics: exact exposition text, grouping, label validation, concurrent
 * updates during rendering, and the text through an external parser (required). */
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hl/metrics.h"

static int64_t lag_fn(void *arg)
{
    return *(int64_t *)arg;
}

static const char expected_small[] =
    "# HELP hl_requests_total Requests received.\n"
    "# TYPE hl_requests_total counter\n"
    "hl_requests_total{source=\"stripe\",status=\"202\"} 3\n"
    "hl_requests_total{source=\"github\",status=\"401\"} 1\n"
    "# HELP hl_queue_depth Messages waiting.\\nSecond line \\\\ backslash\n"
    "# TYPE hl_queue_depth gauge\n"
    "hl_queue_depth -2\n"
    "hl_queue_depth{shard=\"b\"} 17\n"
    "# HELP hl_latency_seconds Request latency.\n"
    "# TYPE hl_latency_seconds histogram\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.0001\"} 2\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.00025\"} 3\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.0005\"} 3\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.001\"} 3\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.0025\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.005\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.01\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.025\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.05\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.1\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.25\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"0.5\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"1\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"2.5\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"5\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"10\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"30\"} 4\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"60\"} 5\n"
    "hl_latency_seconds_bucket{stage=\"ingress\",le=\"+Inf\"} 6\n"
    "hl_latency_seconds_sum{stage=\"ingress\"} 120.001452\n"
    "hl_latency_seconds_count{stage=\"ingress\"} 6\n"
    "hl_latency_seconds_bucket{stage=\"persist\",le=\"0.0001\"} 0\n";

/* Builds the small registry whose rendering the tests compare byte for byte. */
static hl_metrics_t *small_registry(int64_t *lag)
{
    hl_metrics_t *m = hl_metrics_new();
    hl_counter_t *c1 = hl_metrics_counter(m, "hl_requests_total", "Requests received.",
                                          "source=\"stripe\",status=\"202\"");
    hl_gauge_t *g =
        hl_metrics_gauge(m, "hl_queue_depth", "Messages waiting.\nSecond line \\ backslash", NULL);
    hl_counter_t *c2 = hl_metrics_counter(m, "hl_requests_total", "a second help is ignored",
                                          "source=\"github\",status=\"401\"");
    hl_histogram_metric_t *h =
        hl_metrics_histogram(m, "hl_latency_seconds", "Request latency.", "stage=\"ingress\"");
    hl_metrics_gauge_fn(m, "hl_queue_depth", "ignored", "shard=\"b\"", lag_fn, lag);
    hl_metrics_histogram(m, "hl_latency_seconds", "ignored", "stage=\"persist\"");
    hl_metrics_histogram(m, "hl_batch_seconds", "Batch time.", NULL);
    hl_counter_add(c1, 2);
    hl_counter_inc(c1);
    hl_counter_inc(c2);
    hl_gauge_set(g, 5);
    hl_gauge_add(g, -7);
    hl_histogram_observe_us(h, 100);      /* le 0.0001: bounds are inclusive */
    hl_histogram_observe_us(h, 101);      /* le 0.00025 */
    hl_histogram_observe_us(h, 1250);     /* le 0.0025 */
    hl_histogram_observe_us(h, 60000000); /* le 60 */
    hl_histogram_observe_us(h, 60000001); /* +Inf only */
    hl_histogram_observe_us(h, -5);       /* counted as 0 */
    return m;
}

static void test_render_exact(void **state)
{
    (void)state;
    int64_t lag = 17;
    hl_metrics_t *m = small_registry(&lag);
    size_t len = 0;
    char *text = hl_metrics_render(m, &len);
    assert_int_equal(len, strlen(text));
    /* Compare the fully specified head; the rest is checked structurally below. */
    if (strncmp(text, expected_small, strlen(expected_small)) != 0)
        fail_msg("rendered text differs:\n%s\n--- expected prefix ---\n%s", text, expected_small);
    /* One HELP and one TYPE line per name, even with several label sets. */
    assert_null(strstr(strstr(text, "# TYPE hl_requests_total") + 1, "# TYPE hl_requests_total"));
    assert_null(
        strstr(strstr(text, "# HELP hl_latency_seconds ") + 1, "# HELP hl_latency_seconds "));
    assert_null(strstr(text, "ignored"));
    /* The unlabelled histogram has no leading comma and renders an empty sum as 0. */
    assert_non_null(strstr(text, "\nhl_batch_seconds_bucket{le=\"0.0001\"} 0\n"));
    assert_non_null(strstr(text, "\nhl_batch_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert_non_null(strstr(text, "\nhl_batch_seconds_sum 0\nhl_batch_seconds_count 0\n"));
    assert_non_null(strstr(text, "\nhl_latency_seconds_count{stage=\"persist\"} 0\n"));
    free(text);
    /* The gauge function is called at render time. */
    lag = -40;
    text = hl_metrics_render(m, NULL);
    assert_non_null(strstr(text, "\nhl_queue_depth{shard=\"b\"} -40\n"));
    free(text);
    hl_metrics_free(m);
    hl_metrics_free(NULL);
}

/* A count histogram: its bounds are plain numbers, its sum an integer; latency ones unchanged. */
static void test_count_histogram(void **state)
{
    (void)state;
    hl_metrics_t *m = hl_metrics_new();
    hl_histogram_metric_t *h =
        hl_metrics_count_histogram(m, "hl_batch_size", "Records per batch.", NULL);
    hl_histogram_metric_t *l = hl_metrics_histogram(m, "hl_write_seconds", "Write time.", NULL);
    hl_histogram_observe_us(h, 1);      /* le 1: bounds are inclusive */
    hl_histogram_observe_us(h, 3);      /* le 5 */
    hl_histogram_observe_us(h, 500);    /* le 500 */
    hl_histogram_observe_us(h, 600000); /* +Inf only */
    hl_histogram_observe_us(l, 3);
    char *text = hl_metrics_render(m, NULL);
    assert_non_null(strstr(text, "# TYPE hl_batch_size histogram\n"));
    assert_non_null(strstr(text, "\nhl_batch_size_bucket{le=\"1\"} 1\n"));
    assert_non_null(strstr(text, "\nhl_batch_size_bucket{le=\"2\"} 1\n"));
    assert_non_null(strstr(text, "\nhl_batch_size_bucket{le=\"5\"} 2\n"));
    assert_non_null(strstr(text, "\nhl_batch_size_bucket{le=\"500\"} 3\n"));
    assert_non_null(strstr(text, "\nhl_batch_size_bucket{le=\"500000\"} 3\n"));
    assert_non_null(strstr(text, "\nhl_batch_size_bucket{le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "\nhl_batch_size_sum 600504\nhl_batch_size_count 4\n"));
    assert_null(strstr(text, "hl_batch_size_bucket{le=\"0.0001\"}"));
    assert_non_null(strstr(text, "\nhl_write_seconds_bucket{le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(text, "\nhl_write_seconds_sum 0.000003\n"));
    free(text);
    hl_metrics_free(m);
}

static void test_handles_and_values(void **state)
{
    (void)state;
    hl_metrics_t *m = hl_metrics_new();
    hl_counter_t *a = hl_metrics_counter(m, "x_total", "X.", "k=\"v\"");
    hl_counter_t *b = hl_metrics_counter(m, "x_total", "X.", "k=\"v\"");
    hl_counter_t *c = hl_metrics_counter(m, "x_total", "X.", NULL);
    assert_ptr_equal(a, b); /* same series, same handle */
    assert_ptr_not_equal(a, c);
    hl_counter_add(a, 10);
    hl_counter_inc(b);
    assert_int_equal(hl_counter_get(a), 11);
    assert_int_equal(hl_counter_get(c), 0);
    hl_gauge_t *g = hl_metrics_gauge(m, "g", "G.", "");
    hl_gauge_set(g, INT64_MIN);
    assert_true(hl_gauge_get(g) == INT64_MIN);
    hl_histogram_metric_t *h = hl_metrics_histogram(m, "lat_seconds", "L.", NULL);
    hl_histogram_observe_us(h, 1500);
    hl_histogram_observe_us(h, 2500);
    hl_hist_t *hist = hl_metrics_histogram_hist(h);
    assert_int_equal(hl_hist_count(hist), 2);
    assert_int_equal(hl_hist_max(hist), 2500);
    assert_int_equal(hl_hist_sum(hist), 4000);
    char *text = hl_metrics_render(m, NULL);
    assert_non_null(strstr(text, "\nx_total{k=\"v\"} 11\nx_total 0\n"));
    assert_non_null(strstr(text, "\ng -9223372036854775808\n"));
    assert_non_null(strstr(
        text, "\nlat_seconds_bucket{le=\"0.001\"} 0\nlat_seconds_bucket{le=\"0.0025\"} 2\n"));
    assert_non_null(strstr(text, "\nlat_seconds_sum 0.004\n"));
    free(text);
    hl_metrics_free(m);
    size_t len = 99;
    text = hl_metrics_render(NULL, &len);
    assert_string_equal(text, "");
    assert_int_equal(len, 0);
    free(text);
}

/* Each bad registration is a programming error that must stop the process at start. */
typedef struct {
    const char *what;
    int kind; /* 0 counter, 1 gauge, 2 histogram, 3 gauge_fn */
    const char *name;
    const char *labels;
} bad_reg_t;

static const bad_reg_t bad_regs[] = {
    {"empty name", 0, "", NULL},
    {"NULL name", 0, NULL, NULL},
    {"leading digit", 0, "1abc", NULL},
    {"dash", 1, "a-b", NULL},
    {"space", 1, "a b", NULL},
    {"unquoted value", 0, "ok_total", "a=b"},
    {"unterminated value", 0, "ok_total", "a=\"b"},
    {"trailing comma", 0, "ok_total", "a=\"b\","},
    {"empty label name", 0, "ok_total", "=\"b\""},
    {"bad escape", 0, "ok_total", "a=\"b\\x\""},
    {"raw newline", 0, "ok_total", "a=\"b\nc\""},
    {"reserved label", 0, "ok_total", "__name__=\"x\""},
    {"braces", 0, "ok_total", "{a=\"b\"}"},
    {"le on histogram", 2, "ok_seconds", "le=\"1\""},
    {"colon in label", 0, "ok_total", "a:b=\"c\""},
    {"type clash", -1, "clash", NULL},
    {"gauge_fn twice", -2, "twice", NULL},
};

static int64_t zero_fn(void *arg)
{
    (void)arg;
    return 0;
}

static void register_one(hl_metrics_t *m, int kind, const char *name, const char *labels)
{
    switch (kind) {
    case 0: hl_metrics_counter(m, name, "h", labels); break;
    case 1: hl_metrics_gauge(m, name, "h", labels); break;
    case 2: hl_metrics_histogram(m, name, "h", labels); break;
    default: hl_metrics_gauge_fn(m, name, "h", labels, zero_fn, NULL); break;
    }
}

static void test_bad_registration_aborts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_regs) / sizeof(bad_regs[0]); i++) {
        const bad_reg_t *b = &bad_regs[i];
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            dup2(devnull, STDERR_FILENO);
            hl_metrics_t *m = hl_metrics_new();
            if (b->kind == -1) {
                register_one(m, 0, b->name, NULL);
                register_one(m, 1, b->name, NULL);
            } else if (b->kind == -2) {
                register_one(m, 3, b->name, NULL);
                register_one(m, 3, b->name, NULL);
            } else {
                register_one(m, b->kind, b->name, b->labels);
            }
            _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) fail_msg("accepted: %s", b->what);
    }
    /* And the good forms of the same shapes are accepted. */
    hl_metrics_t *m = hl_metrics_new();
    hl_metrics_counter(m, "ok:sub_total", "h", "a=\"b\\\"q\\\\\\n\",_c2=\"\"");
    hl_metrics_histogram(m, "ok_seconds", "h", "len=\"1\"");
    char *text = hl_metrics_render(m, NULL);
    assert_non_null(strstr(text, "ok:sub_total{a=\"b\\\"q\\\\\\n\",_c2=\"\"} 0\n"));
    assert_non_null(strstr(text, "ok_seconds_bucket{len=\"1\",le=\"0.0001\"} 0\n"));
    free(text);
    hl_metrics_free(m);
}

#define UPD_THREADS 4
#define UPD_PER_THREAD 100000

typedef struct {
    hl_counter_t *c;
    hl_gauge_t *g;
    hl_histogram_metric_t *h;
} upd_t;

static void *update_worker(void *arg)
{
    upd_t *u = arg;
    for (int i = 0; i < UPD_PER_THREAD; i++) {
        hl_counter_inc(u->c);
        hl_gauge_add(u->g, 1);
        hl_histogram_observe_us(u->h, (int64_t)(i % 2000) * 100);
    }
    return NULL;
}

/* Reads "<prefix><number>\n" from text. */
static unsigned long long value_after(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    if (p == NULL) fail_msg("missing %s", prefix);
    return strtoull(p + strlen(prefix), NULL, 10);
}

static void test_concurrent_updates_while_rendering(void **state)
{
    (void)state;
    hl_metrics_t *m = hl_metrics_new();
    upd_t u = {hl_metrics_counter(m, "c_total", "C.", NULL), hl_metrics_gauge(m, "g", "G.", NULL),
               hl_metrics_histogram(m, "h_seconds", "H.", NULL)};
    pthread_t t[UPD_THREADS];
    for (int i = 0; i < UPD_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, update_worker, &u), 0);
    for (int r = 0; r < 30; r++) {
        char *text = hl_metrics_render(m, NULL);
        /* Within one rendering the buckets never decrease and +Inf equals _count. */
        unsigned long long prev = 0;
        for (const char *p = text; (p = strstr(p, "h_seconds_bucket{le=\"")) != NULL; p++) {
            unsigned long long v = strtoull(strchr(p, '}') + 2, NULL, 10);
            assert_true(v >= prev);
            prev = v;
        }
        assert_int_equal(prev, value_after(text, "\nh_seconds_count "));
        free(text);
    }
    for (int i = 0; i < UPD_THREADS; i++) pthread_join(t[i], NULL);
    char *text = hl_metrics_render(m, NULL);
    const unsigned long long total = UPD_THREADS * UPD_PER_THREAD;
    assert_int_equal(value_after(text, "\nc_total "), total);
    assert_int_equal(value_after(text, "\ng "), total);
    assert_int_equal(value_after(text, "\nh_seconds_count "), total);
    /* 0 and 100 us fall in le=0.0001: two of every 2000 values. */
    assert_int_equal(value_after(text, "h_seconds_bucket{le=\"0.0001\"} "), total / 1000);
    /* Values up to 100 ms are i % 2000 <= 1000: 1001 of every 2000; all are below 250 ms. */
    assert_int_equal(value_after(text, "h_seconds_bucket{le=\"0.1\"} "), total / 2000 * 1001);
    assert_int_equal(value_after(text, "h_seconds_bucket{le=\"0.25\"} "), total);
    free(text);
    hl_metrics_free(m);
}

/* Every line is a comment or `name{labels} value`. */
static void test_render_line_syntax(void **state)
{
    (void)state;
    int64_t lag = 3;
    hl_metrics_t *m = small_registry(&lag);
    char *text = hl_metrics_render(m, NULL);
    regex_t sample, comment;
    assert_int_equal(
        regcomp(
            &sample,
            "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\\})? "
            "-?[0-9]+(\\.[0-9]+)?$",
            REG_EXTENDED | REG_NOSUB),
        0);
    assert_int_equal(
        regcomp(&comment, "^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$", REG_EXTENDED | REG_NOSUB),
        0);
    int lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        lines++;
        if (regexec(&sample, line, 0, NULL, 0) != 0 && regexec(&comment, line, 0, NULL, 0) != 0)
            fail_msg("bad exposition line: %s", line);
    }
    assert_true(lines > 50);
    regfree(&sample);
    regfree(&comment);
    free(text);
    hl_metrics_free(m);
}

/* Runs the rendered text through the Python Prometheus parser (python3-prometheus-client, which
 * deploy/local/install-deps installs: without it the test fails), and through promtool too when
 * one is installed. */
static void test_external_parsers(void **state)
{
    (void)state;
    int64_t lag = 3;
    hl_metrics_t *m = small_registry(&lag);
    size_t len;
    char *text = hl_metrics_render(m, &len);
    char path[] = "/tmp/hl_test_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[512];
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
        assert_int_equal(system(cmd), 0);
    }
    if (system("/usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1") != 0) {
        unlink(path);
        free(text);
        hl_metrics_free(m);
        fail_msg("python3-prometheus-client is not installed (deploy/local/install-deps)");
    }
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 -c 'import sys; from prometheus_client.parser import "
             "text_string_to_metric_families as p; f = list(p(open(sys.argv[1]).read())); "
             "t = {x.name: x.type for x in f}; "
             "sys.exit(0 if t == {\"hl_requests\": \"counter\", \"hl_queue_depth\": \"gauge\", "
             "\"hl_latency_seconds\": \"histogram\", \"hl_batch_seconds\": \"histogram\"} "
             "else print(t) or 1)' %s",
             path);
    assert_int_equal(system(cmd), 0);
    unlink(path);
    free(text);
    hl_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_count_histogram),
        cmocka_unit_test(test_handles_and_values),
        cmocka_unit_test(test_bad_registration_aborts),
        cmocka_unit_test(test_concurrent_updates_while_rendering),
        cmocka_unit_test(test_render_line_syntax),
        cmocka_unit_test(test_external_parsers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
