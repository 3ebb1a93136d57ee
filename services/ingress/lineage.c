/* The `ingress` lineage record of each request, written by the contract library (libs/proto),
 * and the budget that bounds how many rejections are recorded. */
#include "lineage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"
#include "ratelimit.h"

#define CLIENT_SLOTS 4096 /* a power of two */
#define CLIENT_PROBE 8

typedef struct {
    char addr[48];
    int64_t seen_ns;
    ing_ratelimit_t limit;
} client_t;

struct ing_lineage_budget {
    pthread_mutex_t mu; /* the client table; only rejections take it */
    ing_ratelimit_t total;
    uint32_t per_client;
    client_t *clients;
    atomic_uint_fast64_t pending; /* suppressed since the last recorded rejection */
    hl_counter_t *suppressed;
};

ing_lineage_budget_t *ing_lineage_budget_new(uint32_t per_s, uint32_t per_client_per_s,
                                             hl_metrics_t *metrics)
{
    ing_lineage_budget_t *b = hl_xcalloc(1, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    ing_ratelimit_init(&b->total, per_s ? per_s : 1, per_s ? per_s : 1);
    b->per_client = per_client_per_s ? per_client_per_s : 1;
    b->clients = hl_xcalloc(CLIENT_SLOTS, sizeof *b->clients);
    atomic_init(&b->pending, 0);
    b->suppressed = hl_metrics_counter(
        metrics, "hookline_ingress_lineage_suppressed_total",
        "Rejected requests whose lineage was not recorded: over the rejection budget", NULL);
    return b;
}

void ing_lineage_budget_free(ing_lineage_budget_t *b)
{
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b->clients);
    free(b);
}

/* The client's own bucket: found among CLIENT_PROBE slots from its hash, else the least
 * recently seen of them is given to it (so a client with many addresses only meets the
 * total budget sooner). Called with mu held. */
static client_t *client_slot(ing_lineage_budget_t *b, const char *addr)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = addr; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    client_t *oldest = NULL;
    for (unsigned i = 0; i < CLIENT_PROBE; i++) {
        client_t *c = &b->clients[(h + i) & (CLIENT_SLOTS - 1)];
        if (c->seen_ns && strcmp(c->addr, addr) == 0) return c;
        if (!oldest || c->seen_ns < oldest->seen_ns) oldest = c;
    }
    hl_strlcpy(oldest->addr, addr, sizeof oldest->addr);
    ing_ratelimit_init(&oldest->limit, b->per_client, b->per_client);
    return oldest;
}

/* True when a rejection from addr may be recorded now. */
static bool budget_take(ing_lineage_budget_t *b, const char *addr)
{
    int64_t now = hl_mono_us() * 1000;
    pthread_mutex_lock(&b->mu);
    client_t *c = client_slot(b, addr ? addr : "");
    c->seen_ns = now;
    /* The client's token first: a client over its own budget spends none of the total. */
    bool ok = ing_ratelimit_take(&c->limit, now, NULL) && ing_ratelimit_take(&b->total, now, NULL);
    pthread_mutex_unlock(&b->mu);
    return ok;
}

int ing_lineage_format(const ing_lineage_t *l, char *buf, size_t cap)
{
    hl_lineage_rec_t r;
    hl_lineage_rec_init(&r, HL_STAGE_INGRESS);
    hl_strlcpy(r.request_id, l->request_id ? l->request_id : "", sizeof r.request_id);
    r.ts_us = l->ts_us;
    HL_LINEAGE_SET(&r, source, l->source);
    HL_LINEAGE_SET(&r, message_id, l->message_id);
    HL_LINEAGE_SET(&r, event_type, l->event_type);
    r.received_us = l->received_us;
    r.status = l->status;
    HL_LINEAGE_SET(&r, error_code, l->error_code);
    if (l->partition >= 0) r.partition = l->partition;
    if (l->offset >= 0) r.offset = l->offset;
    r.latency_us = l->latency_us;
    /* The record's integers are signed: a count past INT64_MAX (never reached) stays there. */
    if (l->suppressed > 0)
        r.suppressed = l->suppressed > INT64_MAX ? INT64_MAX : (int64_t)l->suppressed;
    if (l->body_sha256 != NULL) hl_strlcpy(r.body_sha256, l->body_sha256, sizeof r.body_sha256);
    return hl_lineage_write(&r, buf, cap);
}

void ing_lineage_emit(ing_producer_t *p, ing_lineage_budget_t *b, const char *client,
                      ing_lineage_t *l)
{
    char buf[ING_LINEAGE_MAX];
    if (b && l->status != 202) {
        if (!budget_take(b, client)) {
            atomic_fetch_add(&b->pending, 1);
            hl_counter_add(b->suppressed, 1);
            return;
        }
        l->suppressed = atomic_exchange(&b->pending, 0);
    }
    int n = ing_lineage_format(l, buf, sizeof(buf));
    if (n < 0) {
        hl_warn("lineage record over %d bytes, dropped", ING_LINEAGE_MAX);
        return;
    }
    ing_producer_lineage(p, l->request_id, buf, (size_t)n);
}
