/* What the files of the ingress's HTTP side share: the server's state, a worker's body buffer,
 * one request's record, and the functions they call across files (answer.c, webhook.c,
 * admission.c, server.c). Not for use outside them. */
#ifndef ING_SERVER_IMPL_H
#define ING_SERVER_IMPL_H

#include <civetweb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clients.h"
#include "extract.h"
#include "hl/httpd.h"
#include "hl/metrics.h"
#include "hl/sigverify.h"
#include "hl/util.h"
#include "lineage.h"
#include "server.h"
#include "split.h"

struct ing_server {
    const ing_config_t *cfg;
    hl_httpd_t *http;             /* the server of libs/httpd we run in, owned */
    pthread_mutex_t sources_lock; /* guards the pointer `sources` (not what it points to) */
    ing_sources_t *sources;       /* the running snapshot; one reference held (swapped on reload) */
    ing_status_counters_t unknown; /* requests that named no configured source */
    size_t body_buf_max;           /* the largest max_body at start: the workers' buffers hold it */
    ing_producer_t *producer;
    hl_metrics_t *metrics;
    ing_clients_t clients;           /* failed-authentication budgets per client address */
    int refused;                     /* its address marks a connection over its address's cap */
    int table_full;                  /* its address marks one whose address found no client slot */
    atomic_long request_info_offset; /* of the request info in a connection, or < 0 */
    atomic_llong body_bytes;         /* bytes reserved by the bodies being read or handled */
    int64_t body_cap;                /* max_body_memory_mb in bytes */
    uint64_t body_cap_per_client; /* max_body_memory_per_client_pct of it, at least body_buf_max */
    hl_counter_t *refused_total;
    hl_counter_t *table_full_total;
    hl_counter_t *body_per_client_total;
    hl_gauge_t *body_bytes_g;
    atomic_int in_flight; /* webhook requests being handled */
    atomic_bool draining;
    bool fast; /* ack_mode: fast */
    hl_gauge_t *in_flight_g;
    hl_gauge_t *draining_g;
    hl_histogram_metric_t *duration;
    ing_lineage_budget_t *rejected_lineage; /* rejections recorded per client and in total */
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
    int64_t t0;             /* monotonic start */
    ing_sources_t *sources; /* the snapshot the request was started with (one reference) */
    ing_source_t *src;      /* NULL until resolved; lives in `sources` */
    char source[65];        /* the name asked for (truncated), for logs and lineage */
    char message_id[ING_MAX_MESSAGE_ID + 1];
    char event_type[ING_MAX_EVENT_TYPE + 1];
    int status;
    const char *code; /* error.code, NULL when accepted */
    const char *message;
    int retry_after;      /* seconds, 0 = no header */
    size_t body_reserved; /* bytes of s->body_bytes this request holds */
    ing_client_t *client; /* the slot of its address: body_reserved charged to it too */
    const char *allow;    /* Allow header for 405 */
    bool close;           /* end the connection after answering (unread body, draining) */
    int32_t partition;
    int64_t offset;
    ing_split_elem_t *elems; /* a split batch's elements (owned), NULL otherwise */
    ing_ack_t *acks;         /* and what became of each (owned) */
    size_t nelems;
    char body_sha256[HL_SIG_SHA256_HEX + 1]; /* of the body as received, "" until produced */
} req_t;

/* ---- answer.c: a request's record and its answer ---- */

/* A fresh record: a new request id, the times of its arrival. */
void ing_req_init(req_t *r);
/* Sets r's outcome to an error answer (code and message are static strings). */
void ing_reject(req_t *r, int status, const char *code, const char *message);
/* ing_reject with 503 unavailable and the configured Retry-After. */
void ing_unavailable(const ing_server_t *s, req_t *r, const char *message);
/* Writes r's answer: 202 with its ids, or its error; closes after it when r->close. Worker
 * thread. */
void ing_answer(struct mg_connection *c, const req_t *r);

/* ---- webhook.c: the webhook requests ---- */

/* The handler of /v1/webhooks/{source} and /api/webhooks; arg is the server. */
int ing_webhook_handler(struct mg_connection *c, void *arg);
/* 404 not_found for any other path; arg is the server. */
int ing_not_found_handler(struct mg_connection *c, void *arg);

/* ---- admission.c: connections and bodies counted per client address ---- */

/* The hooks of hl_httpd_opts_t (arg is the server): a connection counted against its
 * address's cap as it opens and at its first request, released as it closes, and civetweb's
 * own refusals answered in the ingress's JSON shape. Worker thread. */
void ing_conn_open(void *arg, const struct mg_connection *c, void **conn_data);
int ing_request_begin(void *arg, struct mg_connection *c);
void ing_conn_close(void *arg, const struct mg_connection *c);
int ing_refuse(void *arg, struct mg_connection *c, int status);
/* Reserves the memory the body of r may take against max_body_memory_mb and its address's
 * share of it. False with r answered 503 past either. */
bool ing_body_reserve(ing_server_t *s, struct mg_connection *c, req_t *r, long long content_length);
/* Gives back what ing_body_reserve reserved for r (nothing when it reserved nothing). */
void ing_body_release(ing_server_t *s, req_t *r);
/* The request info's offset in a connection, before any is learnt. */
#define ING_REQUEST_INFO_OFFSET_UNKNOWN (-1)

#endif
