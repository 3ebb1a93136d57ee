/* Formats `ingress` lineage records by hand into a bounded buffer: the fields are few and
 * fixed, and the request path should not build a jansson tree per request. */
#include "lineage.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
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

typedef struct {
    char *buf;
    size_t cap, len;
    int overflow;
} out_t;

static void put(out_t *o, const char *fmt, ...) HL_PRINTF(2, 3);
static void put(out_t *o, const char *fmt, ...)
{
    if (o->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    o->len += (size_t)n;
}

static void put_str(out_t *o, const char *key, const char *v, size_t max)
{
    if (v == NULL || o->overflow) return;
    size_t n = strnlen(v, max);
    char esc[6 * 256 + 1];
    if (n > 256) n = 256;
    hl_json_escape(esc, sizeof(esc), v, n);
    put(o, ",\"%s\":\"%s\"", key, esc);
}

int ing_lineage_format(const ing_lineage_t *l, char *buf, size_t cap)
{
    out_t o = {buf, cap, 0, 0};
    put(&o, "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"%s\",\"ts_us\":%" PRId64,
        l->request_id, l->ts_us);
    put_str(&o, "source", l->source, 64);
    put_str(&o, "message_id", l->message_id, 256);
    put_str(&o, "event_type", l->event_type, 128);
    put(&o, ",\"received_us\":%" PRId64 ",\"status\":%d", l->received_us, l->status);
    if (l->error_code != NULL) put_str(&o, "error_code", l->error_code, 64);
    else put(&o, ",\"error_code\":null");
    if (l->partition >= 0) put(&o, ",\"partition\":%d", (int)l->partition);
    if (l->offset >= 0) put(&o, ",\"offset\":%" PRId64, l->offset);
    put(&o, ",\"latency_us\":%" PRId64, l->latency_us);
    if (l->suppressed > 0) put(&o, ",\"suppressed\":%" PRIu64, l->suppressed);
    if (l->body_sha256 != NULL) put_str(&o, "body_sha256", l->body_sha256, 64);
    put(&o, "}");
    return o.overflow ? HL_ETOOBIG : (int)o.len;
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
