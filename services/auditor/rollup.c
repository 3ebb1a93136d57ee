/* Latency samples from lineage records, the batch pairing map and the live histograms. */
#include "rollup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/util.h"

static const char *const lat_names[AUD_LAT_N] = {"ack", "queue", "persist", "e2e"};

const char *aud_lat_name(aud_lat_t s)
{
    return (unsigned)s < AUD_LAT_N ? lat_names[s] : "unknown";
}

static const char *const outcome_names[AUD_OUT_N] = {"accepted", "rejected"};

const char *aud_outcome_name(aud_outcome_t o)
{
    return (unsigned)o < AUD_OUT_N ? outcome_names[o] : "unknown";
}

int aud_lat_parse(const char *s, aud_lat_t *out)
{
    for (int i = 0; i < AUD_LAT_N; i++)
        if (s && strcmp(s, lat_names[i]) == 0) {
            *out = (aud_lat_t)i;
            return 0;
        }
    return HL_EINVAL;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

void aud_pairs_init(aud_pairs_t *p, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    p->slots = hl_xcalloc(cap, sizeof *p->slots);
    p->cap = cap;
}

void aud_pairs_deinit(aud_pairs_t *p)
{
    free(p->slots);
    p->slots = NULL;
    p->cap = 0;
}

aud_pair_t *aud_pairs_get(aud_pairs_t *p, const char *id)
{
    size_t i = (size_t)fnv1a(id) & (p->cap - 1);
    /* The map is sized at twice the records it can see, so a free slot always exists. */
    for (;; i = (i + 1) & (p->cap - 1)) {
        aud_pair_t *s = &p->slots[i];
        if (!s->used) {
            s->used = 1;
            hl_strlcpy(s->key, id, sizeof s->key);
            s->answered_us = s->received_us = s->consumed_us = HL_LINEAGE_ABSENT;
            return s;
        }
        if (strcmp(s->key, id) == 0) return s;
    }
}

static int64_t minute_of(int64_t us)
{
    return us - (us % 60000000);
}

static void add(aud_sample_t *out, size_t *n, aud_lat_t st, int64_t when, int64_t v,
                const char *source)
{
    if (v < 0) v = 0; /* clocks of two hosts may disagree slightly */
    aud_sample_t *s = &out[(*n)++];
    s->stage = st;
    s->outcome = AUD_OUT_ACCEPTED;
    s->minute_us = minute_of(when);
    s->value_us = v;
    hl_strlcpy(s->source, source && source[0] ? source : "unknown", sizeof s->source);
}

/* The pairing key of r's event: its request id and a digest of its message id and event type,
 * so that the elements of a split batch (one request id) pair each with its own outcome. */
static void element_key(const hl_lineage_rec_t *r, char key[AUD_PAIR_KEY_LEN])
{
    char elem[sizeof r->message_id + sizeof r->event_type + 2];
    snprintf(elem, sizeof elem, "%s\n%s", r->has_message_id ? r->message_id : "",
             r->has_event_type ? r->event_type : "");
    snprintf(key, AUD_PAIR_KEY_LEN, "%s/%016" PRIx64, r->request_id, fnv1a(elem));
}

void aud_samples_from_record(aud_pairs_t *pairs, const hl_lineage_rec_t *r, aud_sample_t *out,
                             size_t *n)
{
    char key[AUD_PAIR_KEY_LEN];
    element_key(r, key);
    aud_pair_t *p = aud_pairs_get(pairs, key);
    const char *src;
    if (r->has_source && !p->source[0]) hl_strlcpy(p->source, r->source, sizeof p->source);
    src = r->has_source ? r->source : p->source;
    if (r->stage == HL_STAGE_INGRESS) {
        int64_t recv = r->received_us != HL_LINEAGE_ABSENT ? r->received_us : r->ts_us;
        bool first = p->answered_us == HL_LINEAGE_ABSENT;
        p->answered_us = r->ts_us;
        p->received_us = recv;
        if (r->latency_us != HL_LINEAGE_ABSENT) {
            add(out, n, AUD_LAT_ACK, recv, r->latency_us, src);
            if (r->status != HL_LINEAGE_ABSENT && (r->status < 200 || r->status > 299))
                out[*n - 1].outcome = AUD_OUT_REJECTED;
        }
        if (first && p->consumed_us != HL_LINEAGE_ABSENT)
            add(out, n, AUD_LAT_QUEUE, recv, p->consumed_us - p->answered_us, src);
    } else if (r->stage == HL_STAGE_PERSISTED) {
        int64_t recv = r->received_us != HL_LINEAGE_ABSENT ? r->received_us : p->received_us;
        bool first = p->consumed_us == HL_LINEAGE_ABSENT;
        int64_t when = recv != HL_LINEAGE_ABSENT ? recv : r->ts_us;
        if (r->consumed_us == HL_LINEAGE_ABSENT) return;
        p->consumed_us = r->consumed_us;
        if (first && p->answered_us != HL_LINEAGE_ABSENT)
            add(out, n, AUD_LAT_QUEUE, when, p->consumed_us - p->answered_us, src);
        if (r->committed_us != HL_LINEAGE_ABSENT) {
            add(out, n, AUD_LAT_PERSIST, when, r->committed_us - r->consumed_us, src);
            if (recv != HL_LINEAGE_ABSENT)
                add(out, n, AUD_LAT_E2E, when, r->committed_us - recv, src);
        }
    }
}

typedef struct {
    char source[HL_SOURCE_MAX + 1];
    hl_hist_t *h[AUD_LAT_N];
} live_entry_t;

struct aud_live {
    pthread_mutex_t mu;
    live_entry_t e[AUD_LIVE_SOURCES + 1];
    size_t n;
};

aud_live_t *aud_live_new(void)
{
    aud_live_t *l = hl_xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void aud_live_free(aud_live_t *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++)
        for (int s = 0; s < AUD_LAT_N; s++) hl_hist_free(l->e[i].h[s]);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static live_entry_t *entry(aud_live_t *l, const char *source)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].source, source) == 0) return &l->e[i];
    if (l->n >= AUD_LIVE_SOURCES) source = "_other";
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].source, source) == 0) return &l->e[i];
    live_entry_t *e = &l->e[l->n++];
    hl_strlcpy(e->source, source, sizeof e->source);
    for (int s = 0; s < AUD_LAT_N; s++) e->h[s] = hl_hist_new();
    return e;
}

void aud_live_record(aud_live_t *l, const aud_sample_t *s)
{
    pthread_mutex_lock(&l->mu);
    hl_hist_record(entry(l, s->source)->h[s->stage], s->value_us);
    pthread_mutex_unlock(&l->mu);
}

void aud_live_merge(aud_live_t *l, aud_lat_t stage, const char *source, hl_hist_t *dst)
{
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n; i++)
        if (!source || strcmp(l->e[i].source, source) == 0) hl_hist_merge(dst, l->e[i].h[stage]);
    pthread_mutex_unlock(&l->mu);
}
