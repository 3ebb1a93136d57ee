/* Metrics registry: families of labelled series registered under a mutex, updated with relaxed
 * atomics, rendered in the Prometheus text exposition format 0.0.4. */
#include "hl/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"

#define NAME_CAP 200    /* longest metric name accepted */
#define LABELS_CAP 1024 /* longest label set accepted */

/* Classic bucket bounds in microseconds and as rendered (seconds). */
static const int64_t le_us[] = {100,     250,     500,     1000,     2500,     5000,
                                10000,   25000,   50000,   100000,   250000,   500000,
                                1000000, 2500000, 5000000, 10000000, 30000000, 60000000};
static const char *const le_text[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                      "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                                      "1",      "2.5",     "5",      "10",    "30",     "60"};
#define LE_COUNT (sizeof(le_us) / sizeof(le_us[0]))
_Static_assert(sizeof(le_us) / sizeof(le_us[0]) == sizeof(le_text) / sizeof(le_text[0]),
               "bounds and their text must match");
/* Bounds of a count histogram (records per batch and the like), as many as the latency ones. */
static const int64_t le_count[] = {1,    2,    5,    10,    25,    50,    100,    250,    500,
                                   1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000};
static const char *const le_count_text[] = {
    "1",    "2",    "5",    "10",    "25",    "50",    "100",    "250",    "500",
    "1000", "2500", "5000", "10000", "25000", "50000", "100000", "250000", "500000"};
_Static_assert(sizeof(le_count) / sizeof(le_count[0]) == LE_COUNT &&
                   sizeof(le_count_text) / sizeof(le_count_text[0]) == LE_COUNT,
               "count bounds: one per latency bound");

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_GAUGE_FN, KIND_HISTOGRAM } metric_kind_t;

struct hl_counter {
    _Atomic uint64_t value;
};

struct hl_gauge {
    _Atomic int64_t value;
};

struct hl_histogram_metric {
    hl_hist_t *hist;                     /* full resolution, for percentiles and _sum */
    bool counts;                         /* plain numbers (le_count), not microseconds */
    _Atomic uint64_t bins[LE_COUNT + 1]; /* non-cumulative count per le bound; last is +Inf */
};

typedef struct series {
    struct series *next;
    char *labels; /* "" when the series has none */
    metric_kind_t kind;
    union {
        hl_counter_t counter;
        hl_gauge_t gauge;
        hl_histogram_metric_t histogram;
        struct {
            int64_t (*fn)(void *arg);
            void *arg;
        } gauge_fn;
    } u;
} series_t;

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    metric_kind_t kind; /* KIND_GAUGE_FN shares a family with KIND_GAUGE */
    series_t *head, *tail;
} family_t;

struct hl_metrics {
    pthread_mutex_t lock; /* guards the family and series lists, not the values */
    family_t *head, *tail;
};

hl_metrics_t *hl_metrics_new(void)
{
    hl_metrics_t *m = hl_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void hl_metrics_free(hl_metrics_t *m)
{
    if (m == NULL) return;
    for (family_t *f = m->head, *fn; f != NULL; f = fn) {
        fn = f->next;
        for (series_t *s = f->head, *sn; s != NULL; s = sn) {
            sn = s->next;
            if (s->kind == KIND_HISTOGRAM) hl_hist_free(s->u.histogram.hist);
            free(s->labels);
            free(s);
        }
        free(f->name);
        free(f->help);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool name_char(char c, bool first, bool colon_ok)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
    if (c == ':') return colon_ok;
    return !first && c >= '0' && c <= '9';
}

static bool valid_metric_name(const char *s)
{
    size_t n = s != NULL ? strnlen(s, NAME_CAP + 1) : 0;
    if (n == 0 || n > NAME_CAP) return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(s[i], i == 0, true)) return false;
    return true;
}

/* Checks `name="value"(,name="value")*` with only \\, \" and \n escapes in values. A
 * histogram's labels may not use `le`, which its buckets add. */
static bool valid_labels(const char *s, bool histogram)
{
    size_t n = strnlen(s, LABELS_CAP + 1), i = 0;
    if (n > LABELS_CAP) return false;
    while (i < n) {
        size_t start = i;
        while (i < n && name_char(s[i], i == start, false)) i++;
        if (i == start || i + 1 >= n || s[i] != '=' || s[i + 1] != '"') return false;
        if (histogram && i - start == 2 && strncmp(s + start, "le", 2) == 0) return false;
        if (i - start >= 2 && strncmp(s + start, "__", 2) == 0) return false; /* reserved */
        for (i += 2; i < n && s[i] != '"'; i++) {
            if (s[i] == '\n') return false;
            if (s[i] == '\\') {
                if (i + 1 >= n || (s[i + 1] != '\\' && s[i + 1] != '"' && s[i + 1] != 'n'))
                    return false;
                i++;
            }
        }
        if (i >= n) return false; /* unterminated value */
        i++;
        if (i < n && (s[i] != ',' || ++i == n)) return false;
    }
    return true;
}

static const char *kind_type(metric_kind_t k)
{
    switch (k) {
    case KIND_COUNTER: return "counter";
    case KIND_HISTOGRAM: return "histogram";
    default: return "gauge";
    }
}

/* Finds or creates the series (name, labels) of `kind`; dies on a programming error (bad name,
 * bad labels, or a name reused with another type), since registration happens at start. */
static series_t *register_series(hl_metrics_t *m, const char *name, const char *help,
                                 const char *labels, metric_kind_t kind, int64_t (*fn)(void *arg),
                                 void *arg)
{
    family_t *f;
    series_t *s;
    metric_kind_t fkind = kind == KIND_GAUGE_FN ? KIND_GAUGE : kind;

    if (labels == NULL) labels = "";
    if (m == NULL || !valid_metric_name(name))
        hl_die("metrics: invalid metric name '%.*s'", NAME_CAP, name != NULL ? name : "(null)");
    if (!valid_labels(labels, kind == KIND_HISTOGRAM))
        hl_die("metrics: invalid label set '%.*s' for %s", LABELS_CAP, labels, name);
    pthread_mutex_lock(&m->lock);
    for (f = m->head; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0) break;
    if (f == NULL) {
        f = hl_xcalloc(1, sizeof(*f));
        f->name = hl_xstrdup(name);
        f->help = hl_xstrdup(help != NULL ? help : "");
        f->kind = fkind;
        if (m->tail != NULL)
            m->tail->next = f;
        else
            m->head = f;
        m->tail = f;
    } else if (f->kind != fkind) {
        pthread_mutex_unlock(&m->lock);
        hl_die("metrics: %s registered as %s and as %s", name, kind_type(f->kind),
               kind_type(fkind));
    }
    for (s = f->head; s != NULL; s = s->next) {
        if (strcmp(s->labels, labels) != 0) continue;
        if (s->kind != kind || kind == KIND_GAUGE_FN) {
            pthread_mutex_unlock(&m->lock);
            hl_die("metrics: %s{%s} registered twice", name, labels);
        }
        pthread_mutex_unlock(&m->lock);
        return s; /* registering the same series again yields the same handle */
    }
    s = hl_xcalloc(1, sizeof(*s));
    s->labels = hl_xstrdup(labels);
    s->kind = kind;
    if (kind == KIND_HISTOGRAM) s->u.histogram.hist = hl_hist_new();
    if (kind == KIND_GAUGE_FN) {
        /* Set under the lock: a concurrent render must never see a series without its fn. */
        s->u.gauge_fn.fn = fn;
        s->u.gauge_fn.arg = arg;
    }
    if (f->tail != NULL)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
    pthread_mutex_unlock(&m->lock);
    return s;
}

hl_counter_t *hl_metrics_counter(hl_metrics_t *m, const char *name, const char *help,
                                 const char *labels)
{
    return &register_series(m, name, help, labels, KIND_COUNTER, NULL, NULL)->u.counter;
}

hl_gauge_t *hl_metrics_gauge(hl_metrics_t *m, const char *name, const char *help,
                             const char *labels)
{
    return &register_series(m, name, help, labels, KIND_GAUGE, NULL, NULL)->u.gauge;
}

hl_histogram_metric_t *hl_metrics_histogram(hl_metrics_t *m, const char *name, const char *help,
                                            const char *labels)
{
    return &register_series(m, name, help, labels, KIND_HISTOGRAM, NULL, NULL)->u.histogram;
}

hl_histogram_metric_t *hl_metrics_count_histogram(hl_metrics_t *m, const char *name,
                                                  const char *help, const char *labels)
{
    series_t *s = register_series(m, name, help, labels, KIND_HISTOGRAM, NULL, NULL);
    s->u.histogram.counts = true; /* registration precedes the first render */
    return &s->u.histogram;
}

void hl_metrics_gauge_fn(hl_metrics_t *m, const char *name, const char *help, const char *labels,
                         int64_t (*fn)(void *arg), void *arg)
{
    if (fn == NULL) hl_die("metrics: gauge function for %s is NULL", name ? name : "(null)");
    register_series(m, name, help, labels, KIND_GAUGE_FN, fn, arg);
}

void hl_counter_add(hl_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t hl_counter_get(const hl_counter_t *c)
{
    return atomic_load_explicit(&c->value, memory_order_relaxed);
}

void hl_gauge_set(hl_gauge_t *g, int64_t v)
{
    atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

void hl_gauge_add(hl_gauge_t *g, int64_t delta)
{
    atomic_fetch_add_explicit(&g->value, delta, memory_order_relaxed);
}

int64_t hl_gauge_get(const hl_gauge_t *g)
{
    return atomic_load_explicit(&g->value, memory_order_relaxed);
}

void hl_histogram_observe_us(hl_histogram_metric_t *h, int64_t us)
{
    const int64_t *le = h->counts ? le_count : le_us;
    size_t i = 0;
    if (us < 0) us = 0;
    while (i < LE_COUNT && us > le[i]) i++;
    atomic_fetch_add_explicit(&h->bins[i], 1, memory_order_relaxed);
    hl_hist_record(h->hist, us);
}

hl_hist_t *hl_metrics_histogram_hist(hl_histogram_metric_t *h)
{
    return h->hist;
}

/* A growing output buffer; its size is bounded by what was registered at start. */
typedef struct {
    char *p;
    size_t len, cap;
} outbuf_t;

HL_PRINTF(2, 3)
static void out_printf(outbuf_t *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) hl_die("metrics: format error");
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        o->cap = o->cap * 2 + (size_t)n;
        o->p = hl_xrealloc(o->p, o->cap);
    }
}

/* HELP text escapes backslash and newline (exposition format 0.0.4). */
static void out_help(outbuf_t *o, const char *help)
{
    for (const char *c = help; *c != '\0'; c++) {
        if (*c == '\\')
            out_printf(o, "\\\\");
        else if (*c == '\n')
            out_printf(o, "\\n");
        else
            out_printf(o, "%c", *c);
    }
}

/* Microseconds as seconds with no trailing zeros: 1250 -> "0.00125", 2000000 -> "2". */
static void format_seconds(char out[40], uint64_t us)
{
    int n = snprintf(out, 40, "%llu.%06llu", (unsigned long long)(us / 1000000),
                     (unsigned long long)(us % 1000000));
    while (n > 0 && out[n - 1] == '0') out[--n] = '\0';
    if (n > 0 && out[n - 1] == '.') out[--n] = '\0';
}

static void render_histogram(outbuf_t *o, const char *name, const series_t *s)
{
    const hl_histogram_metric_t *h = &s->u.histogram;
    const char *sep = s->labels[0] != '\0' ? "," : "";
    const char *const *text = h->counts ? le_count_text : le_text;
    uint64_t cum = 0;
    char secs[40];
    for (size_t i = 0; i < LE_COUNT; i++) {
        cum += atomic_load_explicit(&h->bins[i], memory_order_relaxed);
        out_printf(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, s->labels, sep, text[i],
                   (unsigned long long)cum);
    }
    /* _count is the +Inf bucket from the same snapshot, so the two always agree. */
    cum += atomic_load_explicit(&h->bins[LE_COUNT], memory_order_relaxed);
    out_printf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, s->labels, sep,
               (unsigned long long)cum);
    if (h->counts)
        snprintf(secs, sizeof(secs), "%llu", (unsigned long long)hl_hist_sum(h->hist));
    else
        format_seconds(secs, hl_hist_sum(h->hist));
    if (s->labels[0] != '\0') {
        out_printf(o, "%s_sum{%s} %s\n%s_count{%s} %llu\n", name, s->labels, secs, name, s->labels,
                   (unsigned long long)cum);
    } else {
        out_printf(o, "%s_sum %s\n%s_count %llu\n", name, secs, name, (unsigned long long)cum);
    }
}

static void render_series(outbuf_t *o, const char *name, const series_t *s)
{
    const char *lb = s->labels[0] != '\0' ? "{" : "", *rb = s->labels[0] != '\0' ? "}" : "";
    switch (s->kind) {
    case KIND_COUNTER:
        out_printf(o, "%s%s%s%s %llu\n", name, lb, s->labels, rb,
                   (unsigned long long)hl_counter_get(&s->u.counter));
        break;
    case KIND_GAUGE:
        out_printf(o, "%s%s%s%s %lld\n", name, lb, s->labels, rb,
                   (long long)hl_gauge_get(&s->u.gauge));
        break;
    case KIND_GAUGE_FN:
        out_printf(o, "%s%s%s%s %lld\n", name, lb, s->labels, rb,
                   (long long)s->u.gauge_fn.fn(s->u.gauge_fn.arg));
        break;
    case KIND_HISTOGRAM: render_histogram(o, name, s); break;
    }
}

char *hl_metrics_render(hl_metrics_t *m, size_t *len)
{
    outbuf_t o = {hl_xmalloc(4096), 0, 4096};
    o.p[0] = '\0';
    if (m == NULL) {
        if (len != NULL) *len = 0;
        return o.p;
    }
    /* The lock keeps the lists stable and serialises gauge functions; values stay lock-free. */
    pthread_mutex_lock(&m->lock);
    for (const family_t *f = m->head; f != NULL; f = f->next) {
        out_printf(&o, "# HELP %s ", f->name);
        out_help(&o, f->help);
        out_printf(&o, "\n# TYPE %s %s\n", f->name, kind_type(f->kind));
        for (const series_t *s = f->head; s != NULL; s = s->next) render_series(&o, f->name, s);
    }
    pthread_mutex_unlock(&m->lock);
    if (len != NULL) *len = o.len;
    return o.p;
}
