/* civetweb handlers of the ingress. One worker thread serves one request at a time: it reads
 * the body into its own buffer (capped by the source's max_body), authenticates, validates,
 * produces and, in durable mode, blocks until the broker acknowledges or the deadline passes. */
#include "server.h"

#include <civetweb.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clients.h"
#include "extract.h"
#include "hl/httpd.h"
#include "hl/log.h"
#include "hl/util.h"
#include "lineage.h"
#include "source_name.h"
#include "split.h"

struct ing_server {
    const ing_config_t *cfg;
    pthread_mutex_t sources_lock; /* guards the pointer `sources` (not what it points to) */
    ing_sources_t *sources;   /* the running snapshot; one reference held (swapped on reload) */
    ing_status_counters_t unknown; /* requests that named no configured source */
    size_t body_buf_max;      /* the largest max_body at start: the workers' buffers hold it */
    ing_producer_t *producer;
    hl_metrics_t *metrics;
    struct mg_context *ctx;
    ing_clients_t clients;    /* failed-authentication budgets per client address */
    int metrics_port;         /* the port of metrics_listen: /metrics there and only there */
    int refused;              /* its address marks a connection over its address's cap */
    int table_full;           /* its address marks one whose address found no client slot */
    atomic_long request_info_offset; /* of the request info in a connection, or < 0 */
    atomic_llong body_bytes;  /* bytes reserved by the bodies being read or handled */
    int64_t body_cap;         /* max_body_memory_mb in bytes */
    uint64_t body_cap_per_client; /* max_body_memory_per_client_pct of it, at least body_buf_max */
    hl_counter_t *refused_total;
    hl_counter_t *table_full_total;
    hl_counter_t *body_per_client_total;
    hl_gauge_t *body_bytes_g;
    /* The header-deadline callbacks of libs/httpd, which ours wrap. */
    int (*next_init_connection)(const struct mg_connection *, void **);
    int (*next_begin_request)(struct mg_connection *);
    void (*next_connection_close)(const struct mg_connection *);
    atomic_int in_flight;     /* webhook requests being handled */
    atomic_bool draining;
    bool fast;                /* ack_mode: fast */
    hl_gauge_t *in_flight_g;
    hl_gauge_t *draining_g;
    hl_histogram_metric_t *duration;
    ing_lineage_budget_t *rejected_lineage; /* rejections recorded per client and in total */
    char tls_err[256];        /* why the TLS setup callback failed */
};

/* Bodies up to this size keep their pages; after a larger one the rest of the buffer is given
 * back, so a thousand idle workers do not each hold the largest body they ever read. */
#define BODY_KEEP_BYTES (64 * 1024)

/* Per worker thread: the body buffer, mapped once when civetweb starts the thread (pages are
 * only backed as bodies touch them). */
typedef struct {
    unsigned char *body;
    size_t cap;     /* largest max_body + 1, so an over-long chunked body is detected */
    size_t map_len; /* cap rounded up to whole pages: the mapping's length */
    size_t used;    /* bytes the current request's body wrote into body */
} worker_t;

/* What one request accumulates for its answer, its log line and its lineage record. */
typedef struct {
    char rid[HL_UUID_STR_LEN + 1];
    int64_t received_us;
    int64_t t0;                /* monotonic start */
    ing_sources_t *sources;    /* the snapshot the request was started with (one reference) */
    ing_source_t *src;         /* NULL until resolved; lives in `sources` */
    char source[65];           /* the name asked for (truncated), for logs and lineage */
    char message_id[ING_MAX_MESSAGE_ID + 1];
    char event_type[ING_MAX_EVENT_TYPE + 1];
    int status;
    const char *code;          /* error.code, NULL when accepted */
    const char *message;
    int retry_after;           /* seconds, 0 = no header */
    size_t body_reserved;      /* bytes of s->body_bytes this request holds */
    ing_client_t *client;      /* the slot of its address: body_reserved charged to it too */
    const char *allow;         /* Allow header for 405 */
    bool close;                /* end the connection after answering (unread body, draining) */
    int32_t partition;
    int64_t offset;
    ing_split_elem_t *elems;   /* a split batch's elements (owned), NULL otherwise */
    ing_ack_t *acks;           /* and what became of each (owned) */
    size_t nelems;
    char body_sha256[HL_SIG_SHA256_HEX + 1]; /* of the body as received, "" until produced */
} req_t;

static void reject(req_t *r, int status, const char *code, const char *message)
{
    r->status = status;
    r->code = code;
    r->message = message;
}

/* Writes the whole answer (status line, headers, body) with one mg_write: civetweb's
 * mg_response_header_* calls send every header line separately, which cost several TCP
 * segments and most of the ingress's CPU per request in profiles. The handler returns the
 * status, so civetweb still logs and counts it. */
static void send_answer(struct mg_connection *c, const req_t *r, const char *body, size_t len)
{
    char out[4096 + 1024 + 6 * ING_MAX_MESSAGE_ID];
    if (r->close) mg_disable_keep_alive(c);
    const char *reason = mg_get_response_code_text(c, r->status);
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "X-Request-Id: %s\r\nCache-Control: no-store\r\n",
                     r->status, reason ? reason : "", len, r->rid);
    if (n > 0 && r->retry_after > 0 && (size_t)n < sizeof(out))
        n += snprintf(out + n, sizeof(out) - (size_t)n, "Retry-After: %d\r\n", r->retry_after);
    if (n > 0 && r->allow != NULL && (size_t)n < sizeof(out))
        n += snprintf(out + n, sizeof(out) - (size_t)n, "Allow: %s\r\n", r->allow);
    if (n > 0 && (size_t)n < sizeof(out))
        n += snprintf(out + n, sizeof(out) - (size_t)n, "Connection: %s\r\n\r\n",
                      r->close ? "close" : "keep-alive");
    if (n < 0 || (size_t)n + len > sizeof(out)) { /* cannot happen with our bodies; stay safe */
        mg_disable_keep_alive(c);
        return;
    }
    memcpy(out + n, body, len);
    mg_write(c, out, (size_t)n + len);
}

static void answer(struct mg_connection *c, const req_t *r)
{
    char body[1024 + 6 * ING_MAX_MESSAGE_ID];
    int n;
    if (r->status == 202) {
        char esc[6 * ING_MAX_MESSAGE_ID + 1];
        hl_json_escape(esc, sizeof(esc), r->message_id, strlen(r->message_id));
        n = snprintf(body, sizeof(body),
                     "{\"status\":\"accepted\",\"request_id\":\"%s\",\"message_id\":\"%s\"", r->rid,
                     esc);
        if (n > 0 && (size_t)n < sizeof(body) && r->nelems > 0)
            n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"elements\":%zu", r->nelems);
        if (n > 0 && (size_t)n < sizeof(body))
            n += snprintf(body + n, sizeof(body) - (size_t)n, "}");
    } else {
        n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"},\"request_id\":\"%s\"}",
                     r->code, r->message, r->rid);
    }
    if (n < 0 || (size_t)n >= sizeof(body)) n = 0;
    send_answer(c, r, body, (size_t)n);
}

/* One reference of the running sources snapshot, for one request: it keeps the table it
 * started with across a reload. Worker thread. */
static ing_sources_t *sources_acquire(ing_server_t *s)
{
    pthread_mutex_lock(&s->sources_lock);
    ing_sources_t *src = ing_sources_ref(s->sources);
    pthread_mutex_unlock(&s->sources_lock);
    return src;
}

static void req_init(req_t *r)
{
    memset(r, 0, sizeof(*r));
    hl_uuid7(r->rid);
    r->received_us = hl_now_us();
    r->t0 = hl_mono_us();
    r->partition = -1;
    r->offset = -1;
}

static void unavailable(ing_server_t *s, req_t *r, const char *message)
{
    reject(r, 503, "unavailable", message);
    r->retry_after = (int)s->cfg->retry_after_s;
}

/* Resolves the source from the URI as it arrived (civetweb's URL decoding is off, see
 * ing_server_start): /v1/webhooks/{name} or the /api/webhooks alias. The name is decoded here,
 * and only a whole name of [a-z0-9_-] counts: decoded by civetweb, "sw%00x" would end at the
 * NUL and "x/%2e%2e/sw" would be normalised, both into "sw". */
static bool resolve_source(ing_server_t *s, const struct mg_request_info *ri, req_t *r)
{
    static const char prefix[] = "/v1/webhooks/";
    const char *uri = ri->local_uri_raw ? ri->local_uri_raw : "";
    if (strcmp(uri, "/api/webhooks") == 0) {
        r->src = r->sources->default_source;
    } else if (strncmp(uri, prefix, sizeof(prefix) - 1) == 0) {
        const char *raw = uri + sizeof(prefix) - 1;
        char name[ING_SOURCE_NAME_MAX + 1];
        hl_strlcpy(r->source, raw, sizeof(r->source));
        int n = ing_source_name_decode(raw, strlen(raw), name);
        if (n > 0) r->src = ing_sources_find(r->sources, name, (size_t)n);
    }
    if (r->src == NULL) {
        reject(r, 404, "unknown_source", "no such source");
        return false;
    }
    hl_strlcpy(r->source, r->src->cfg->name, sizeof(r->source));
    return true;
}

/* After a body larger than BODY_KEEP_BYTES, gives the pages of w's buffer past that size back
 * to the system (the mapping stays; the pages come back zeroed when touched again). Called
 * once the request is answered: the producer copied the body, nothing reads it any more. */
static void release_body_pages(worker_t *w)
{
    if (w->used > BODY_KEEP_BYTES && w->cap > BODY_KEEP_BYTES)
        (void)madvise(w->body + BODY_KEEP_BYTES, w->cap - BODY_KEEP_BYTES, MADV_DONTNEED);
    w->used = 0;
}

/* Reads the whole body into the worker's buffer within request_timeout_ms of the handler's
 * start, however the client paces it. Returns the length, or -1 with r rejected. */
static long read_body(ing_server_t *s, struct mg_connection *c, worker_t *w, req_t *r,
                      long long content_length)
{
    size_t max = r->src->cfg->max_body, got = 0;
    if (content_length > (long long)max) {
        reject(r, 413, "body_too_large", "body over the source's limit");
        return -1;
    }
    int64_t deadline = r->t0 + (int64_t)s->cfg->http.request_timeout_ms * 1000;
    int rc = hl_http_read_body(c, w->body, max + 1 < w->cap ? max + 1 : w->cap, deadline, &got);
    w->used = got;
    if (rc == HL_ETOOBIG || got > max) {
        reject(r, 413, "body_too_large", "body over the source's limit");
        return -1;
    }
    if (rc == HL_ETIMEDOUT) {
        reject(r, 408, "request_timeout", "body not received in time");
        return -1;
    }
    if (rc != HL_OK) {
        reject(r, 400, "bad_request", "body could not be read");
        return -1;
    }
    r->close = false;
    return (long)got;
}

static hl_sig_headers_t collect_headers(const struct mg_request_info *ri, hl_sig_header_t *hv, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < ri->num_headers && n < cap; i++)
        hv[n++] = (hl_sig_header_t){ri->http_headers[i].name, ri->http_headers[i].value};
    return (hl_sig_headers_t){hv, n};
}

static bool extract_fields(req_t *r, const unsigned char *body, size_t len, const hl_sig_headers_t *h)
{
    json_t *root = NULL;
    ing_ex_result_t x = ing_json_parse(body, len, &root);
    ing_field_src_t mid = ing_sources_message_id(r->src, h);
    if (x == ING_EX_OK) x = ing_field_get(&mid, root, h, r->message_id, sizeof(r->message_id));
    if (x == ING_EX_OK)
        x = ing_field_get(&r->src->event_type, root, h, r->event_type, sizeof(r->event_type));
    json_decref(root);
    if (x == ING_EX_OK) return true;
    r->message_id[0] = r->event_type[0] = '\0';
    reject(r, 400, ing_ex_code(x),
           x == ING_EX_INVALID_JSON ? "body is not valid JSON" : "message id or event type unusable");
    return false;
}

/* What every event of one request carries besides its key, type, value and digest:
 * hl-signature-headers keeps what authenticated the body (left out when the scheme signs with
 * no header, a value could not be kept exactly, or the request is a split batch, whose
 * elements are not the bytes the provider signed). */
typedef struct {
    char received[24];
    char traceparent[ING_TRACEPARENT_LEN + 1];
    const char *ct;
    char signed_json[HL_SIG_SIGNED_JSON_MAX];
    int signed_len; /* > 0 when signed_json is sent */
} ev_common_t;

static void ev_common(const req_t *r, const hl_sig_headers_t *h, bool keep_signature,
                      ev_common_t *c)
{
    const char *tp = hl_sig_header_get(h, "traceparent", NULL);
    if (ing_traceparent_valid(tp)) memcpy(c->traceparent, tp, sizeof(c->traceparent));
    else ing_traceparent_new(c->traceparent);
    snprintf(c->received, sizeof(c->received), "%" PRId64, r->received_us);
    c->ct = hl_sig_header_get(h, "content-type", NULL);
    c->signed_len = keep_signature ? hl_sig_signed_json(&r->src->auth, h, c->signed_json,
                                                        sizeof(c->signed_json))
                                   : 0;
}

/* One event of r: borrows every argument. hl-body-sha256 (of value, as sent to Kafka) binds the
 * bytes to the lineage. */
static ing_event_t make_event(const req_t *r, const ev_common_t *c, const char *key,
                              const char *type, const void *value, size_t len, const char *sha)
{
    ing_event_t ev = {.key = key, .key_len = strlen(key), .value = value, .value_len = len,
                      .nheaders = ING_EVENT_HEADERS - 1};
    ev.headers[0] = (ing_kv_t){"hl-request-id", r->rid, strlen(r->rid)};
    ev.headers[1] = (ing_kv_t){"hl-source", r->source, strlen(r->source)};
    ev.headers[2] = (ing_kv_t){"hl-event-type", type, strlen(type)};
    ev.headers[3] = (ing_kv_t){"hl-received-us", c->received, strlen(c->received)};
    ev.headers[4] = (ing_kv_t){"content-type", c->ct, strnlen(c->ct, 256)};
    ev.headers[5] = (ing_kv_t){"traceparent", c->traceparent, ING_TRACEPARENT_LEN};
    ev.headers[6] = (ing_kv_t){"hl-body-sha256", sha, HL_SIG_SHA256_HEX};
    if (c->signed_len > 0)
        ev.headers[ev.nheaders++] =
            (ing_kv_t){"hl-signature-headers", c->signed_json, (size_t)c->signed_len};
    return ev;
}

/* Answers r from the ack of its (first failed) record. */
static void ack_outcome(ing_server_t *s, req_t *r, const ing_ack_t *ack)
{
    if (ack->err == 0) {
        r->status = 202;
        r->partition = ack->partition;
        r->offset = ack->offset;
    } else if (ack->err == HL_ETIMEDOUT) {
        unavailable(s, r, "kafka did not acknowledge in time");
    } else if (ack->err == HL_EAGAIN) {
        unavailable(s, r, "producer queue full");
    } else {
        unavailable(s, r, "kafka refused the record");
    }
}

static void produce_event(ing_server_t *s, req_t *r, const unsigned char *body, size_t len,
                          const hl_sig_headers_t *h)
{
    ev_common_t c;
    ev_common(r, h, true, &c);
    hl_sig_sha256_hex(body, len, r->body_sha256);
    ing_event_t ev = make_event(r, &c, r->message_id, r->event_type, body, len, r->body_sha256);
    ing_ack_t ack;
    int64_t deadline = hl_mono_us() + (int64_t)s->cfg->ack_timeout_ms * 1000;
    ing_producer_send(s->producer, &ev, !s->fast, deadline, &ack);
    ack_outcome(s, r, &ack);
}

static const char *split_message(ing_split_result_t sr)
{
    switch (sr) {
    case ING_SPLIT_NOT_ARRAY: return "a batch source takes a JSON array";
    case ING_SPLIT_EMPTY: return "the batch holds no element";
    case ING_SPLIT_TOO_MANY: return "the batch holds more than 1000 elements";
    default: return "an element's message id or event type is unusable";
    }
}

/* A split source's body: one record per element, 202 only when every one is stored (in
 * durable mode), else 503 for the whole batch (its retry is stored once per element: the
 * persister keeps one row per source, message id and event type). */
static void produce_split(ing_server_t *s, req_t *r, const unsigned char *body, size_t len,
                          const hl_sig_headers_t *h)
{
    json_t *root = NULL;
    ing_ex_result_t x = ing_json_parse(body, len, &root), field = ING_EX_OK;
    if (x != ING_EX_OK) {
        reject(r, 400, ing_ex_code(x), "body is not valid JSON");
        return;
    }
    size_t bad = 0;
    ing_split_result_t sr = ing_split(root, &r->src->message_id, &r->src->event_type, h,
                                      &r->elems, &r->nelems, &field, &bad);
    json_decref(root);
    if (sr != ING_SPLIT_OK) {
        reject(r, sr == ING_SPLIT_TOO_MANY ? 413 : 400, ing_split_code(sr, field),
               split_message(sr));
        return;
    }
    ev_common_t c;
    ev_common(r, h, false, &c);
    ing_event_t *evs = hl_xcalloc(r->nelems, sizeof(*evs));
    for (size_t i = 0; i < r->nelems; i++) {
        ing_split_elem_t *e = &r->elems[i];
        hl_sig_sha256_hex((const unsigned char *)e->json, e->len, e->body_sha256);
        evs[i] = make_event(r, &c, e->message_id, e->event_type, e->json, e->len, e->body_sha256);
    }
    r->acks = hl_xcalloc(r->nelems, sizeof(*r->acks));
    int64_t deadline = hl_mono_us() + (int64_t)s->cfg->ack_timeout_ms * 1000;
    ing_producer_send_many(s->producer, evs, r->nelems, !s->fast, deadline, r->acks);
    free(evs);
    size_t i = 0;
    while (i + 1 < r->nelems && r->acks[i].err == 0) i++;
    hl_strlcpy(r->message_id, r->elems[0].message_id, sizeof(r->message_id));
    hl_strlcpy(r->event_type, r->elems[0].event_type, sizeof(r->event_type));
    ack_outcome(s, r, &r->acks[r->acks[i].err != 0 ? i : 0]);
}

/* Is c's connection data a slot of the client table (not a refusal mark)? */
static ing_client_t *client_slot(const ing_server_t *s, const struct mg_connection *c)
{
    void *data = mg_get_user_connection_data(c);
    return data == &s->refused || data == &s->table_full ? NULL : data;
}

/* Reserves the memory the body may take (its Content-Length, or max_body when chunked) against
 * max_body_memory_mb, for all requests together, and against its address's share of it
 * (max_body_memory_per_client_pct): a few addresses sending slowly cannot hold the whole cap
 * for request_timeout_ms. False with r answered 503 past either. */
static bool reserve_body(ing_server_t *s, struct mg_connection *c, req_t *r,
                         long long content_length)
{
    size_t max = r->src->cfg->max_body;
    size_t want = content_length >= 0 && (size_t)content_length < max ? (size_t)content_length : max;
    ing_client_t *slot = client_slot(s, c);
    if (slot != NULL && !ing_clients_body_reserve(&s->clients, slot, want, s->body_cap_per_client)) {
        hl_counter_inc(s->body_per_client_total);
        unavailable(s, r, "this address's bodies in flight over its share of the memory cap");
        return false;
    }
    if (atomic_fetch_add(&s->body_bytes, (long long)want) + (long long)want > s->body_cap) {
        atomic_fetch_sub(&s->body_bytes, (long long)want);
        if (slot != NULL) ing_clients_body_release(&s->clients, slot, want);
        unavailable(s, r, "bodies in flight over the memory cap");
        return false;
    }
    r->body_reserved = want;
    r->client = slot;
    hl_gauge_add(s->body_bytes_g, (int64_t)want);
    return true;
}

/* The pipeline of one webhook request; leaves the outcome in r. */
static void handle_webhook(ing_server_t *s, struct mg_connection *c, req_t *r)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    worker_t *w = mg_get_thread_pointer(c);
    r->close = ri->content_length != 0; /* an unread body would poison the next request */
    if (atomic_load(&s->draining)) {
        r->close = true;
        unavailable(s, r, "draining");
        return;
    }
    if (!resolve_source(s, ri, r)) return;
    if (strcmp(ri->request_method, "POST") != 0) {
        r->allow = "POST";
        reject(r, 405, "method_not_allowed", "use POST");
        return;
    }
    if (atomic_load(&s->in_flight) > (int)s->cfg->max_in_flight) {
        unavailable(s, r, "too many requests in flight");
        return;
    }
    /* Unauthenticated traffic spends its own budget, never the source's: the source's is
     * charged below, once the request has proved authentic. */
    if (!ing_clients_auth_allowed(&s->clients, ri->remote_addr, hl_mono_us() * 1000,
                                  &r->retry_after)) {
        reject(r, 429, "auth_rate_limited", "too many failed authentications");
        return;
    }
    if (!ing_content_type_json(mg_get_header(c, "Content-Type"))) {
        reject(r, 415, "unsupported_media_type", "Content-Type must be application/json");
        return;
    }
    if (w == NULL || w->body == NULL) {
        reject(r, 500, "internal", "no worker buffer");
        return;
    }
    if (!reserve_body(s, c, r, ri->content_length)) return;
    long len = read_body(s, c, w, r, ri->content_length);
    if (len < 0) return;
    hl_sig_header_t hv[64];
    hl_sig_headers_t h = collect_headers(ri, hv, 64);
    /* Charged as a failure before the signatures are computed, given back when authentic:
     * the requests that passed the check above together cannot all spend the CPU. */
    if (!ing_clients_auth_take(&s->clients, ri->remote_addr, hl_mono_us() * 1000,
                               &r->retry_after)) {
        reject(r, 429, "auth_rate_limited", "too many failed authentications");
        return;
    }
    hl_sig_result_t a =
        hl_sig_verify(&r->src->auth, &h, w->body, (size_t)len, hl_now_us() / 1000000);
    if (a != HL_SIG_OK) {
        reject(r, 401, hl_sig_code(a), "authentication failed");
        return;
    }
    ing_clients_auth_refund(&s->clients, ri->remote_addr, hl_mono_us() * 1000);
    if (!ing_ratelimit_take(&r->src->limit->rl, hl_mono_us() * 1000, &r->retry_after)) {
        reject(r, 429, "rate_limited", "over the source's rate limit");
        return;
    }
    if (r->src->cfg->split) {
        produce_split(s, r, w->body, (size_t)len, &h);
        return;
    }
    if (!extract_fields(r, w->body, (size_t)len, &h)) return;
    produce_event(s, r, w->body, (size_t)len, &h);
}

static void log_outcome(const struct mg_request_info *ri, const req_t *r, int64_t latency)
{
    hl_log_level_t lvl = r->status == 202 ? HL_LOG_DEBUG : HL_LOG_INFO;
    if (!hl_log_enabled(lvl)) return;
    char kv[1024];
    size_t n = 0;
    kv[0] = '\0';
    hl_log_kv_str(kv, sizeof(kv), &n, "source", r->source);
    hl_log_kv_int(kv, sizeof(kv), &n, "status", r->status);
    if (r->code) hl_log_kv_str(kv, sizeof(kv), &n, "code", r->code);
    if (r->message_id[0]) hl_log_kv_str(kv, sizeof(kv), &n, "message_id", r->message_id);
    hl_log_kv_str(kv, sizeof(kv), &n, "method", ri->request_method);
    hl_log_kv_str(kv, sizeof(kv), &n, "remote", ri->remote_addr);
    hl_log_kv_int(kv, sizeof(kv), &n, "latency_us", latency);
    hl_log_ctx_t ctx = {r->rid, NULL, r->partition, r->offset};
    hl_log_write(lvl, &ctx, kv, r->status == 202 ? "accepted" : "rejected");
}

/* Did c arrive on the metrics listener? */
static bool on_metrics_port(const ing_server_t *s, const struct mg_connection *c)
{
    return mg_get_request_info(c)->server_port == s->metrics_port;
}

static int not_found_handler(struct mg_connection *c, void *arg);

static int webhook_handler(struct mg_connection *c, void *arg)
{
    ing_server_t *s = arg;
    if (on_metrics_port(s, c)) return not_found_handler(c, arg);
    req_t r;
    req_init(&r);
    atomic_fetch_add(&s->in_flight, 1);
    hl_gauge_add(s->in_flight_g, 1);
    r.sources = sources_acquire(s);
    handle_webhook(s, c, &r);
    /* Released before the answer: the body is no longer read (the producer holds its own
     * copy), and a client that has its answer may send the next body at once. */
    atomic_fetch_sub(&s->body_bytes, (long long)r.body_reserved);
    if (r.client != NULL) ing_clients_body_release(&s->clients, r.client, r.body_reserved);
    hl_gauge_add(s->body_bytes_g, -(int64_t)r.body_reserved);
    answer(c, &r);
    int64_t latency = hl_mono_us() - r.t0;
    ing_count_status(r.src ? &r.src->counters : &s->unknown, r.status);
    hl_histogram_observe_us(s->duration, latency);
    /* A source that is not configured is recorded under one fixed name, never the client's. */
    const char *lsrc = r.src ? r.source : r.source[0] ? ING_UNKNOWN_SOURCE : NULL;
    ing_lineage_t l = {r.rid, lsrc, r.message_id[0] ? r.message_id : NULL,
                       r.event_type[0] ? r.event_type : NULL, r.received_us, hl_now_us(), r.status,
                       r.code, r.partition, r.offset, latency, 0,
                       r.body_sha256[0] ? r.body_sha256 : NULL};
    /* A split batch: one record per element, each with its own id, and the offset where Kafka
     * stored it when it did. Elements of a refused batch may be stored all the same (the
     * provider's retry is deduplicated downstream), so each keeps the batch's answer and none
     * reaches the table unnamed: a stored element's record is never held to the rejections'
     * budget, the others are. */
    for (size_t i = 0; r.acks != NULL && i < r.nelems; i++) {
        bool stored = r.acks[i].err == 0;
        ing_lineage_t e = l;
        e.message_id = r.elems[i].message_id;
        e.event_type = r.elems[i].event_type;
        e.partition = stored ? r.acks[i].partition : -1;
        e.offset = stored ? r.acks[i].offset : -1;
        e.body_sha256 = stored ? r.elems[i].body_sha256 : NULL;
        ing_lineage_emit(s->producer, stored ? NULL : s->rejected_lineage,
                         mg_get_request_info(c)->remote_addr, &e);
    }
    if (r.acks == NULL)
        ing_lineage_emit(s->producer, s->rejected_lineage, mg_get_request_info(c)->remote_addr, &l);
    ing_split_free(r.elems, r.nelems);
    free(r.acks);
    log_outcome(mg_get_request_info(c), &r, latency);
    worker_t *w = mg_get_thread_pointer(c);
    if (w != NULL) release_body_pages(w);
    ing_sources_unref(r.sources); /* r.src is not used past here */
    hl_gauge_add(s->in_flight_g, -1);
    atomic_fetch_sub(&s->in_flight, 1);
    return r.status;
}

static void simple_json(struct mg_connection *c, int status, const char *body)
{
    req_t r;
    memset(&r, 0, sizeof(r));
    hl_uuid7(r.rid);
    r.status = status;
    r.close = hl_http_has_body(c); /* a body nobody reads */
    send_answer(c, &r, body, strlen(body));
}

static int healthz_handler(struct mg_connection *c, void *arg)
{
    ing_server_t *s = arg;
    bool ok = !ing_producer_fatal(s->producer);
    simple_json(c, ok ? 200 : 503, ok ? "{\"status\":\"ok\"}" : "{\"status\":\"kafka_fatal\"}");
    return ok ? 200 : 503;
}

static int readyz_handler(struct mg_connection *c, void *arg)
{
    ing_server_t *s = arg;
    bool kafka = ing_producer_ready(s->producer), draining = atomic_load(&s->draining);
    char body[128];
    snprintf(body, sizeof(body), "{\"status\":\"%s\",\"kafka\":%s,\"draining\":%s}",
             kafka && !draining ? "ready" : "not_ready", kafka ? "true" : "false",
             draining ? "true" : "false");
    int status = kafka && !draining ? 200 : 503;
    simple_json(c, status, body);
    return status;
}

static int metrics_handler(struct mg_connection *c, void *arg)
{
    ing_server_t *s = arg;
    if (!on_metrics_port(s, c)) return not_found_handler(c, arg);
    size_t len = 0;
    char *text = hl_metrics_render(s->metrics, &len);
    hl_http_close_if_body(c);
    mg_response_header_start(c, 200);
    mg_response_header_add(c, "Content-Type", "text/plain; version=0.0.4", -1);
    char num[32];
    snprintf(num, sizeof(num), "%zu", len);
    mg_response_header_add(c, "Content-Length", num, -1);
    mg_response_header_send(c);
    mg_write(c, text, len);
    free(text);
    return 200;
}

static int not_found_handler(struct mg_connection *c, void *arg)
{
    req_t r;
    req_init(&r);
    reject(&r, 404, "not_found", "no such endpoint");
    r.close = hl_http_has_body(c); /* a body nobody reads */
    answer(c, &r);
    return 404;
}

/* civetweb calls this while creating its SSL_CTX: the settings every hookline server uses. */
static int init_tls_cb(void *ssl_ctx, void *user_data)
{
    ing_server_t *s = user_data;
    return hl_httpd_tls_setup(ssl_ctx, s->cfg->http.tls_cert, s->cfg->http.tls_key, s->tls_err,
                              sizeof(s->tls_err));
}

static int log_message_cb(const struct mg_connection *c, const char *message)
{
    hl_info("civetweb: %s", message);
    return 1;
}

static void *init_thread_cb(const struct mg_context *ctx, int thread_type)
{
    if (thread_type != 1) return NULL; /* only request workers read bodies */
    ing_server_t *s = mg_get_user_data(ctx);
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

static void exit_thread_cb(const struct mg_context *ctx, int thread_type, void *ptr)
{
    worker_t *w = ptr;
    if (w == NULL) return;
    munmap(w->body, w->map_len);
    free(w);
}

/* Was c turned away for its address's connection cap? */
static bool conn_refused(const ing_server_t *s, const struct mg_connection *c)
{
    return mg_get_user_connection_data(c) == &s->refused;
}

/* Counts a connection from addr against max_connections_per_client. Returns what its
 * connection data is to be: its address's slot, &s->refused over the cap, or &s->table_full
 * when the address found no slot in the client table. Worker thread. */
static void *count_connection(ing_server_t *s, const char *addr)
{
    bool full = false;
    ing_client_t *slot = ing_clients_connect(&s->clients, addr, s->cfg->max_connections_per_client,
                                             hl_mono_us() * 1000, &full);
    if (slot != NULL) return slot;
    if (full) {
        hl_counter_inc(s->table_full_total);
        return &s->table_full;
    }
    hl_counter_inc(s->refused_total);
    return &s->refused;
}

/* Was c turned away, for its address's cap or a full client table? */
static bool conn_turned_away(const ing_server_t *s, const struct mg_connection *c)
{
    return conn_refused(s, c) || mg_get_user_connection_data(c) == &s->table_full;
}

/* The 503 a connection turned away gets when its request arrived before its read was cut. */
static void turned_away(ing_server_t *s, const struct mg_connection *c, req_t *r)
{
    unavailable(s, r, conn_refused(s, c) ? "too many connections from this address"
                                         : "too many client addresses at once");
    r->code = conn_refused(s, c) ? "too_many_connections" : "too_many_clients";
}

/* The request info's offset in a connection is believed only within this bound, and no longer
 * once a request finds its info elsewhere or its address differs from the one counted. */
#define REQUEST_INFO_OFFSET_MAX (64 * 1024)
#define REQUEST_INFO_OFFSET_UNKNOWN (-1)
#define REQUEST_INFO_OFFSET_DISTRUSTED (-2)

/* A connection taken by a worker, before any request: counted against its address's cap, and
 * one over it gets no wait for its headers (hl_http_expire_headers), so it frees the worker at
 * once instead of holding it for request_timeout_ms. civetweb gives no request info before
 * the first request (mg_get_request_info is NULL, and no other call of its API names the peer),
 * though the address is known: it is read where the request info lies within the connection,
 * an offset learnt from civetweb itself at the first request (begin_request_cb), which checks
 * every later request against it. Connections that come before it, or after it was found
 * wrong, are counted there. */
static int init_connection_cb(const struct mg_connection *c, void **conn_data)
{
    ing_server_t *s = mg_get_user_data(mg_get_context(c));
    int rc = s->next_init_connection(c, conn_data);
    long off = atomic_load(&s->request_info_offset);
    if (off < 0) return rc;
    const struct mg_request_info *ri = (const void *)((const char *)c + off);
    if (memchr(ri->remote_addr, '\0', sizeof(ri->remote_addr)) == NULL || !ri->remote_addr[0])
        return rc;
    *conn_data = count_connection(s, ri->remote_addr); /* civetweb stores it after we return */
    if (*conn_data == &s->refused || *conn_data == &s->table_full) hl_http_expire_headers(c);
    return rc;
}

/* Checks what init_connection_cb relied on against c's first request: the request info at the
 * learnt offset, and the address counted being the request's. Learns the offset the first time.
 * On any mismatch the offset is never read again, and a connection counted under another
 * address is counted anew under its own. */
static void check_request_info(ing_server_t *s, struct mg_connection *c,
                               const struct mg_request_info *ri)
{
    long off = (long)((const char *)ri - (const char *)c);
    bool inside = off >= 0 && off <= REQUEST_INFO_OFFSET_MAX;
    long want = REQUEST_INFO_OFFSET_UNKNOWN;
    if (atomic_compare_exchange_strong(&s->request_info_offset, &want,
                                       inside ? off : REQUEST_INFO_OFFSET_DISTRUSTED))
        return;
    ing_client_t *slot = client_slot(s, c);
    bool same_addr = slot == NULL || strcmp(slot->addr, ri->remote_addr) == 0;
    if (want == off && same_addr) return;
    if (want >= 0) {
        atomic_store(&s->request_info_offset, REQUEST_INFO_OFFSET_DISTRUSTED);
        hl_warn("civetweb's request info is not where it was learnt: connections are counted "
                "from their first request on");
    }
    if (!same_addr) {
        ing_clients_disconnect(&s->clients, slot);
        mg_set_user_connection_data(c, NULL);
    }
}

/* A request's headers are in: checks the request info's offset, counts a connection that was
 * not counted at its start, and answers 503 to a refused connection whose request arrived
 * before its read was cut. */
static int begin_request_cb(struct mg_connection *c)
{
    ing_server_t *s = mg_get_user_data(mg_get_context(c));
    int rc = s->next_begin_request(c);
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri != NULL && atomic_load(&s->request_info_offset) != REQUEST_INFO_OFFSET_DISTRUSTED)
        check_request_info(s, c, ri);
    if (ri != NULL && mg_get_user_connection_data(c) == NULL)
        mg_set_user_connection_data(c, count_connection(s, ri->remote_addr));
    if (!conn_turned_away(s, c)) return rc;
    req_t r;
    req_init(&r);
    turned_away(s, c, &r);
    r.close = true;
    answer(c, &r);
    ing_count_status(&s->unknown, r.status);
    return r.status;
}

static void connection_close_cb(const struct mg_connection *c)
{
    ing_server_t *s = mg_get_user_data(mg_get_context(c));
    s->next_connection_close(c);
    ing_clients_disconnect(&s->clients, client_slot(s, c));
}

/* civetweb's own refusals (headers too large, malformed request line, …) get the same JSON
 * error shape and a request id. Headers that did not arrive in time, which civetweb reports as
 * a malformed message, get 408. */
static int http_error_cb(struct mg_connection *c, int status, const char *msg)
{
    ing_server_t *s = mg_get_user_data(mg_get_context(c));
    req_t r;
    req_init(&r);
    if (conn_turned_away(s, c)) {
        turned_away(s, c, &r);
    } else if (status == 400 && hl_http_headers_timed_out(c)) {
        reject(&r, 408, "request_timeout", "headers not received in time");
    } else {
        const char *code = status == 413 || status == 431 ? "headers_too_large"
                           : status == 408              ? "request_timeout"
                                                        : "bad_request";
        reject(&r, status, code, "request refused by the HTTP server");
    }
    r.close = true;
    answer(c, &r);
    ing_count_status(&s->unknown, r.status);
    return 0;
}

/* Finds the port of metrics_listen, the last listening port, and refuses one that a webhook
 * address also uses: requests are told apart by the port they arrived on. */
static int metrics_port_of(ing_server_t *s, char *errbuf, size_t errcap)
{
    struct mg_server_port ports[16];
    int n = mg_get_server_ports(s->ctx, 16, ports);
    if (n < 2) {
        snprintf(errbuf, errcap, "http: cannot read the listening ports");
        return HL_ECONFIG;
    }
    s->metrics_port = ports[n - 1].port;
    for (int i = 0; i < n - 1; i++)
        if (ports[i].port == s->metrics_port) {
            snprintf(errbuf, errcap, "config: field 'metrics_listen' = %s: port also in http.listen",
                     s->cfg->metrics_listen);
            return HL_ECONFIG;
        }
    return 0;
}

ing_server_t *ing_server_start(const ing_config_t *cfg, ing_sources_t *sources,
                               ing_producer_t *producer, hl_metrics_t *metrics, char *errbuf,
                               size_t errcap)
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
    atomic_init(&s->body_bytes, 0);
    atomic_init(&s->request_info_offset, REQUEST_INFO_OFFSET_UNKNOWN);
    s->body_cap = (int64_t)cfg->max_body_memory_mb * 1024 * 1024;
    s->body_cap_per_client = (uint64_t)s->body_cap * cfg->max_body_memory_per_client_pct / 100;
    if (s->body_cap_per_client < s->body_buf_max) s->body_cap_per_client = s->body_buf_max;
    s->table_full_total = hl_metrics_counter(
        metrics, "hookline_ingress_clients_table_full_total",
        "Connections closed at once: their address found no slot in the client table", NULL);
    s->body_per_client_total = hl_metrics_counter(
        metrics, "hookline_ingress_body_memory_per_client_refused_total",
        "Requests answered 503: their address's bodies in flight were at its share of "
        "max_body_memory_mb", NULL);
    s->refused_total = hl_metrics_counter(metrics, "hookline_ingress_connections_refused_total",
                                          "Connections closed at once: their address was at "
                                          "max_connections_per_client", NULL);
    s->body_bytes_g = hl_metrics_gauge(metrics, "hookline_ingress_body_bytes_in_flight",
                                       "Bytes reserved by the bodies being handled", NULL);
    atomic_init(&s->draining, false);
    s->in_flight_g = hl_metrics_gauge(metrics, "hookline_ingress_in_flight",
                                      "Webhook requests being handled", NULL);
    s->draining_g = hl_metrics_gauge(metrics, "hookline_ingress_draining", "1 while draining", NULL);
    s->duration = hl_metrics_histogram(metrics, "hookline_ingress_request_duration_seconds",
                                       "Request received to answer decided", NULL);
    s->rejected_lineage = ing_lineage_budget_new(cfg->lineage_rejected_per_s,
                                                 cfg->lineage_rejected_per_client_per_s, metrics);
    char threads[16], timeout[16], keepalive[16], maxreq[16];
    snprintf(threads, sizeof(threads), "%u", cfg->http.threads);
    snprintf(timeout, sizeof(timeout), "%u", cfg->http.request_timeout_ms);
    snprintf(keepalive, sizeof(keepalive), "%u", cfg->keep_alive_timeout_ms);
    snprintf(maxreq, sizeof(maxreq), "%u", cfg->max_header_bytes);
    char ports[2 * 1024 + 2]; /* http.listen and metrics_listen, each at most 1024 bytes */
    snprintf(ports, sizeof(ports), "%s,%s", cfg->http.listen, cfg->metrics_listen);
    const char *opts[32];
    int n = 0;
    opts[n++] = "listening_ports", opts[n++] = ports;
    opts[n++] = "num_threads", opts[n++] = threads;
    opts[n++] = "request_timeout_ms", opts[n++] = timeout;
    opts[n++] = "keep_alive_timeout_ms", opts[n++] = keepalive;
    opts[n++] = "enable_keep_alive", opts[n++] = "yes";
    opts[n++] = "max_request_size", opts[n++] = maxreq;
    opts[n++] = "tcp_nodelay", opts[n++] = "1";
    opts[n++] = "listen_backlog", opts[n++] = "1024";
    opts[n++] = "decode_url", opts[n++] = "no"; /* resolve_source decodes the source name */
    bool tls = cfg->http.tls_cert != NULL && cfg->http.tls_cert[0] != '\0';
    if (tls) {
        opts[n++] = "ssl_certificate", opts[n++] = cfg->http.tls_cert;
        opts[n++] = "ssl_protocol_version", opts[n++] = "4";
    }
    opts[n] = NULL;
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    if (tls) cb.init_ssl = init_tls_cb;
    /* civetweb loads its TLS functions only when the library is initialised asking for TLS;
     * without this a TLS connection calls a null function. */
    if (hl_httpd_init_library(tls, errbuf, errcap) != 0) {
        ing_lineage_budget_free(s->rejected_lineage);
        pthread_mutex_destroy(&s->sources_lock);
        free(s);
        return NULL;
    }
    cb.log_message = log_message_cb;
    cb.init_thread = init_thread_cb;
    cb.exit_thread = exit_thread_cb;
    hl_http_header_deadlines(&cb); /* headers due within request/keep-alive timeout, whole */
    s->next_init_connection = cb.init_connection;
    s->next_begin_request = cb.begin_request;
    s->next_connection_close = cb.connection_close;
    cb.init_connection = init_connection_cb;
    cb.begin_request = begin_request_cb;
    cb.connection_close = connection_close_cb;
    cb.http_error = http_error_cb;
    struct mg_init_data init = {.callbacks = &cb, .user_data = s, .configuration_options = opts};
    char why[256] = "";
    struct mg_error_data err = {.text = why, .text_buffer_size = sizeof(why)};
    ing_clients_init(&s->clients, cfg->failed_auth_rate_per_client,
                     cfg->failed_auth_burst_per_client, cfg->failed_auth_rate,
                     cfg->failed_auth_burst);
    s->ctx = mg_start2(&init, &err);
    if (s->ctx == NULL) {
        ing_clients_deinit(&s->clients);
        ing_lineage_budget_free(s->rejected_lineage);
        mg_exit_library();
        snprintf(errbuf, errcap, "http: cannot start on %s: %s%s%s", cfg->http.listen,
                 why[0] ? why : "civetweb failed", s->tls_err[0] ? ": " : "", s->tls_err);
        pthread_mutex_destroy(&s->sources_lock);
        free(s);
        return NULL;
    }
    if (metrics_port_of(s, errbuf, errcap) != 0) {
        s->sources = NULL; /* not taken on failure */
        ing_server_stop(s);
        return NULL;
    }
    mg_set_request_handler(s->ctx, "/v1/webhooks/", webhook_handler, s);
    mg_set_request_handler(s->ctx, "/api/webhooks$", webhook_handler, s);
    mg_set_request_handler(s->ctx, "/healthz$", healthz_handler, s);
    mg_set_request_handler(s->ctx, "/readyz$", readyz_handler, s);
    mg_set_request_handler(s->ctx, "/metrics$", metrics_handler, s);
    mg_set_request_handler(s->ctx, "/", not_found_handler, s);
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
    mg_stop(s->ctx);
    mg_exit_library();
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
