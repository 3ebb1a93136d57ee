/* The webhook requests of the ingress. One worker thread serves one request at a time: it
 * reads the body into its own buffer (capped by the source's max_body), authenticates,
 * validates, produces and, in durable mode, blocks until the broker acknowledges or the
 * deadline passes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hl/log.h"
#include "hl/proto.h"
#include "server_impl.h"
#include "source_name.h"

/* One reference of the running sources snapshot, for one request: it keeps the table it
 * started with across a reload. Worker thread. */
static ing_sources_t *sources_acquire(ing_server_t *s)
{
    pthread_mutex_lock(&s->sources_lock);
    ing_sources_t *src = ing_sources_ref(s->sources);
    pthread_mutex_unlock(&s->sources_lock);
    return src;
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
        ing_reject(r, 404, "unknown_source", "no such source");
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
        ing_reject(r, 413, "body_too_large", "body over the source's limit");
        return -1;
    }
    int64_t deadline = r->t0 + (int64_t)s->cfg->http.request_timeout_ms * 1000;
    int rc = hl_http_read_body(c, w->body, max + 1 < w->cap ? max + 1 : w->cap, deadline, &got);
    w->used = got;
    if (rc == HL_ETOOBIG || got > max) {
        ing_reject(r, 413, "body_too_large", "body over the source's limit");
        return -1;
    }
    if (rc == HL_ETIMEDOUT) {
        ing_reject(r, 408, "request_timeout", "body not received in time");
        return -1;
    }
    if (rc != HL_OK) {
        ing_reject(r, 400, "bad_request", "body could not be read");
        return -1;
    }
    r->close = false;
    return (long)got;
}

static hl_sig_headers_t collect_headers(const struct mg_request_info *ri, hl_sig_header_t *hv,
                                        size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < ri->num_headers && n < cap; i++)
        hv[n++] = (hl_sig_header_t){ri->http_headers[i].name, ri->http_headers[i].value};
    return (hl_sig_headers_t){hv, n};
}

static bool extract_fields(req_t *r, const unsigned char *body, size_t len,
                           const hl_sig_headers_t *h)
{
    ing_field_src_t mid = ing_sources_message_id(r->src, h);
    ing_ex_result_t x =
        ing_extract_fields(body, len, &mid, &r->src->event_type, h, r->message_id,
                           sizeof(r->message_id), r->event_type, sizeof(r->event_type));
    if (x == ING_EX_OK) return true;
    r->message_id[0] = r->event_type[0] = '\0';
    ing_reject(r, 400, ing_ex_code(x),
               x == ING_EX_INVALID_JSON ? "body is not valid JSON"
                                        : "message id or event type unusable");
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
    if (ing_traceparent_valid(tp))
        memcpy(c->traceparent, tp, sizeof(c->traceparent));
    else
        ing_traceparent_new(c->traceparent);
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
    ing_event_t ev = {.key = key,
                      .key_len = strlen(key),
                      .value = value,
                      .value_len = len,
                      .nheaders = ING_EVENT_HEADERS - 1};
    ev.headers[0] = (ing_kv_t){HL_HDR_REQUEST_ID, r->rid, strlen(r->rid)};
    ev.headers[1] = (ing_kv_t){HL_HDR_SOURCE, r->source, strlen(r->source)};
    ev.headers[2] = (ing_kv_t){HL_HDR_EVENT_TYPE, type, strlen(type)};
    ev.headers[3] = (ing_kv_t){HL_HDR_RECEIVED_US, c->received, strlen(c->received)};
    ev.headers[4] = (ing_kv_t){HL_HDR_CONTENT_TYPE, c->ct, strnlen(c->ct, 256)};
    ev.headers[5] = (ing_kv_t){HL_HDR_TRACEPARENT, c->traceparent, ING_TRACEPARENT_LEN};
    ev.headers[6] = (ing_kv_t){HL_HDR_BODY_SHA256, sha, HL_SIG_SHA256_HEX};
    if (c->signed_len > 0)
        ev.headers[ev.nheaders++] =
            (ing_kv_t){HL_HDR_SIGNATURE_HEADERS, c->signed_json, (size_t)c->signed_len};
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
        ing_unavailable(s, r, "kafka did not acknowledge in time");
    } else if (ack->err == HL_EAGAIN) {
        ing_unavailable(s, r, "producer queue full");
    } else {
        ing_unavailable(s, r, "kafka refused the record");
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
        ing_reject(r, 400, ing_ex_code(x), "body is not valid JSON");
        return;
    }
    size_t bad = 0;
    ing_split_result_t sr = ing_split(root, &r->src->message_id, &r->src->event_type, h, &r->elems,
                                      &r->nelems, &field, &bad);
    json_decref(root);
    if (sr != ING_SPLIT_OK) {
        ing_reject(r, sr == ING_SPLIT_TOO_MANY ? 413 : 400, ing_split_code(sr, field),
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

/* The pipeline of one webhook request; leaves the outcome in r. */
static void handle_webhook(ing_server_t *s, struct mg_connection *c, req_t *r)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    worker_t *w = mg_get_thread_pointer(c);
    r->close = ri->content_length != 0; /* an unread body would poison the next request */
    if (atomic_load(&s->draining)) {
        r->close = true;
        ing_unavailable(s, r, "draining");
        return;
    }
    if (!resolve_source(s, ri, r)) return;
    if (strcmp(ri->request_method, "POST") != 0) {
        r->allow = "POST";
        ing_reject(r, 405, "method_not_allowed", "use POST");
        return;
    }
    if (atomic_load(&s->in_flight) > (int)s->cfg->max_in_flight) {
        ing_unavailable(s, r, "too many requests in flight");
        return;
    }
    /* Unauthenticated traffic spends its own budget, never the source's: the source's is
     * charged below, once the request has proved authentic. */
    if (!ing_clients_auth_allowed(&s->clients, ri->remote_addr, hl_mono_us() * 1000,
                                  &r->retry_after)) {
        ing_reject(r, 429, "auth_rate_limited", "too many failed authentications");
        return;
    }
    if (!ing_content_type_json(mg_get_header(c, "Content-Type"))) {
        ing_reject(r, 415, "unsupported_media_type", "Content-Type must be application/json");
        return;
    }
    if (w == NULL || w->body == NULL) {
        ing_reject(r, 500, "internal", "no worker buffer");
        return;
    }
    if (!ing_body_reserve(s, c, r, ri->content_length)) return;
    long len = read_body(s, c, w, r, ri->content_length);
    if (len < 0) return;
    hl_sig_header_t hv[64];
    hl_sig_headers_t h = collect_headers(ri, hv, 64);
    /* Charged as a failure before the signatures are computed, given back when authentic:
     * the requests that passed the check above together cannot all spend the CPU. */
    ing_auth_charge_t charge;
    if (!ing_clients_auth_take(&s->clients, ri->remote_addr, hl_mono_us() * 1000, &r->retry_after,
                               &charge)) {
        ing_reject(r, 429, "auth_rate_limited", "too many failed authentications");
        return;
    }
    hl_sig_result_t a =
        hl_sig_verify(&r->src->auth, &h, w->body, (size_t)len, hl_now_us() / 1000000);
    if (a != HL_SIG_OK) {
        ing_clients_auth_failed(&s->clients, &charge);
        ing_reject(r, 401, hl_sig_code(a), "authentication failed");
        return;
    }
    ing_clients_auth_refund(&s->clients, &charge, hl_mono_us() * 1000);
    if (!ing_ratelimit_take(&r->src->limit->rl, hl_mono_us() * 1000, &r->retry_after)) {
        ing_reject(r, 429, "rate_limited", "over the source's rate limit");
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

int ing_webhook_handler(struct mg_connection *c, void *arg)
{
    ing_server_t *s = arg;
    if (hl_httpd_on_metrics_port(s->http, c)) return ing_not_found_handler(c, arg);
    req_t r;
    ing_req_init(&r);
    atomic_fetch_add(&s->in_flight, 1);
    hl_gauge_add(s->in_flight_g, 1);
    r.sources = sources_acquire(s);
    handle_webhook(s, c, &r);
    /* Released before the answer: the body is no longer read (the producer holds its own
     * copy), and a client that has its answer may send the next body at once. */
    ing_body_release(s, &r);
    ing_answer(c, &r);
    int64_t latency = hl_mono_us() - r.t0;
    ing_count_status(r.src ? &r.src->counters : &s->unknown, r.status);
    hl_histogram_observe_us(s->duration, latency);
    /* A source that is not configured is recorded under one fixed name, never the client's. */
    const char *lsrc = r.src ? r.source : r.source[0] ? ING_UNKNOWN_SOURCE : NULL;
    ing_lineage_t l = {r.rid,
                       lsrc,
                       r.message_id[0] ? r.message_id : NULL,
                       r.event_type[0] ? r.event_type : NULL,
                       r.received_us,
                       hl_now_us(),
                       r.status,
                       r.code,
                       r.partition,
                       r.offset,
                       latency,
                       0,
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

int ing_not_found_handler(struct mg_connection *c, void *arg)
{
    req_t r;
    ing_req_init(&r);
    ing_reject(&r, 404, "not_found", "no such endpoint");
    r.close = hl_http_has_body(c); /* a body nobody reads */
    ing_answer(c, &r);
    return 404;
}
