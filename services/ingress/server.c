/* The HTTP side of the ingress, served through libs/httpd: the server's state and metrics,
 * each worker's body buffer, the health probes, draining and the swap of sources on reload.
 * The webhook requests are in webhook.c, the per-address limits in admission.c. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hl/log.h"
#include "server_impl.h"

/* A request worker starts: its body buffer is mapped once (pages are only backed as bodies
 * touch them). Only request workers read bodies. */
static void *worker_start(void *arg)
{
    ing_server_t *s = arg;
    worker_t *w = hl_xcalloc(1, sizeof(*w));
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    w->cap = s->body_buf_max + 1;
    w->map_len = (w->cap + page - 1) / page * page;
    void *m = mmap(NULL, w->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        hl_error("out of memory: cannot map a %zu-byte body buffer", w->map_len);
        abort();
    }
    w->body = m;
    return w;
}

static void worker_stop(void *arg, void *data)
{
    worker_t *w = data;
    munmap(w->body, w->map_len);
    free(w);
}

/* /healthz: 503 kafka_fatal between a fatal producer error and the producer's replacement. */
static bool live(void *arg, hl_probe_t *p)
{
    ing_server_t *s = arg;
    if (!ing_producer_fatal(s->producer)) return true;
    p->status = "kafka_fatal";
    return false;
}

/* /readyz: ready when the broker answers and the server is not draining; says which. */
static bool ready(void *arg, hl_probe_t *p)
{
    ing_server_t *s = arg;
    bool kafka = ing_producer_ready(s->producer), draining = atomic_load(&s->draining);
    snprintf(p->detail, sizeof(p->detail), "\"kafka\":%s,\"draining\":%s", kafka ? "true" : "false",
             draining ? "true" : "false");
    return kafka && !draining;
}

static void register_metrics(ing_server_t *s, hl_metrics_t *metrics)
{
    s->table_full_total = hl_metrics_counter(
        metrics, "hookline_ingress_clients_table_full_total",
        "Connections closed at once: their address found no slot in the client table", NULL);
    s->body_per_client_total = hl_metrics_counter(
        metrics, "hookline_ingress_body_memory_per_client_refused_total",
        "Requests answered 503: their address's bodies in flight were at its share of "
        "max_body_memory_mb",
        NULL);
    s->refused_total = hl_metrics_counter(metrics, "hookline_ingress_connections_refused_total",
                                          "Connections closed at once: their address was at "
                                          "max_connections_per_client",
                                          NULL);
    s->body_bytes_g = hl_metrics_gauge(metrics, "hookline_ingress_body_bytes_in_flight",
                                       "Bytes reserved by the bodies being handled", NULL);
    s->in_flight_g = hl_metrics_gauge(metrics, "hookline_ingress_in_flight",
                                      "Webhook requests being handled", NULL);
    s->draining_g =
        hl_metrics_gauge(metrics, "hookline_ingress_draining", "1 while draining", NULL);
    s->duration = hl_metrics_histogram(metrics, "hookline_ingress_request_duration_seconds",
                                       "Request received to answer decided", NULL);
}

/* The server's state before it listens; sources' reference not taken yet. */
static ing_server_t *server_new(const ing_config_t *cfg, ing_sources_t *sources,
                                ing_producer_t *producer, hl_metrics_t *metrics)
{
    ing_server_t *s = hl_xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    pthread_mutex_init(&s->sources_lock, NULL);
    s->sources = sources;
    s->unknown = sources->unknown;
    s->body_buf_max = sources->max_body;
    s->producer = producer;
    s->metrics = metrics;
    s->fast = strcmp(cfg->ack_mode, "fast") == 0;
    atomic_init(&s->in_flight, 0);
    atomic_init(&s->draining, false);
    atomic_init(&s->body_bytes, 0);
    atomic_init(&s->request_info_offset, ING_REQUEST_INFO_OFFSET_UNKNOWN);
    s->body_cap = (int64_t)cfg->max_body_memory_mb * 1024 * 1024;
    s->body_cap_per_client = (uint64_t)s->body_cap * cfg->max_body_memory_per_client_pct / 100;
    if (s->body_cap_per_client < s->body_buf_max) s->body_cap_per_client = s->body_buf_max;
    register_metrics(s, metrics);
    s->rejected_lineage = ing_lineage_budget_new(cfg->lineage_rejected_per_s,
                                                 cfg->lineage_rejected_per_client_per_s, metrics);
    ing_clients_init(&s->clients, cfg->failed_auth_rate_per_client,
                     cfg->failed_auth_burst_per_client, cfg->failed_auth_rate,
                     cfg->failed_auth_burst);
    return s;
}

ing_server_t *ing_server_start(const ing_config_t *cfg, ing_sources_t *sources,
                               ing_producer_t *producer, hl_metrics_t *metrics, char *errbuf,
                               size_t errcap)
{
    ing_server_t *s = server_new(cfg, sources, producer, metrics);
    hl_httpd_opts_t o = {
        .metrics_listen = cfg->metrics_listen,
        .keep_alive_ms = cfg->keep_alive_timeout_ms,
        .max_header_bytes = cfg->max_header_bytes,
        .raw_uri = true, /* the webhook handler decodes the source name itself */
        .live = live,
        .ready = ready,
        .arg = s,
        .worker_start = worker_start,
        .worker_stop = worker_stop,
        .conn_open = ing_conn_open,
        .request_begin = ing_request_begin,
        .conn_close = ing_conn_close,
        .refuse = ing_refuse,
    };
    s->http = hl_httpd_start_with(&cfg->http, metrics, &o, errbuf, errcap);
    if (s->http == NULL) {
        s->sources = NULL; /* not taken on failure */
        ing_server_stop(s);
        return NULL;
    }
    hl_httpd_handle(s->http, "/v1/webhooks/", ing_webhook_handler, s);
    hl_httpd_handle(s->http, "/api/webhooks$", ing_webhook_handler, s);
    hl_httpd_handle(s->http, "/", ing_not_found_handler, s);
    return s;
}

int ing_server_drain(ing_server_t *s, int timeout_ms)
{
    atomic_store(&s->draining, true);
    hl_gauge_set(s->draining_g, 1);
    int64_t deadline = hl_mono_us() + (int64_t)timeout_ms * 1000;
    while (atomic_load(&s->in_flight) > 0 && hl_mono_us() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&s->in_flight);
}

void ing_server_stop(ing_server_t *s)
{
    if (s == NULL) return;
    hl_httpd_stop(s->http);
    ing_lineage_budget_free(s->rejected_lineage);
    ing_clients_deinit(&s->clients);
    ing_sources_unref(s->sources);
    pthread_mutex_destroy(&s->sources_lock);
    free(s);
}

void ing_server_swap_sources(ing_server_t *s, ing_sources_t *next)
{
    pthread_mutex_lock(&s->sources_lock);
    ing_sources_t *old = s->sources;
    s->sources = next;
    pthread_mutex_unlock(&s->sources_lock);
    ing_sources_unref(old); /* freed here, or by the last request still using it */
}
