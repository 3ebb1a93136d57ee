/* Sources at run time: each configured source with its verifier (secrets loaded), field
 * extractors, rate limiter and per-status request counters. A table is built at start and
 * anew on each reload, then read-only apart from the atomic rate limiters and counters; the
 * running table is an immutable, reference-counted snapshot (ing_sources_new), so a request
 * keeps the table it started with while a reload swaps in the next one. */
#ifndef ING_SOURCES_H
#define ING_SOURCES_H

#include <stdatomic.h>
#include <stddef.h>

#include "hl/sigverify.h"
#include "config.h"
#include "extract.h"
#include "hl/metrics.h"
#include "ratelimit.h"

/* The statuses the ingress answers with; one request counter per (source, status). */
#define ING_STATUSES(X) X(202) X(400) X(401) X(404) X(405) X(408) X(413) X(415) X(429) X(500) X(503)
#define ING_STATUS_COUNT 11

typedef struct {
    hl_counter_t *by_status[ING_STATUS_COUNT];
} ing_status_counters_t;

/* A source's rate limiter, shared by the tables of successive reloads while the source keeps
 * its name, rate and burst: what its senders spent survives a reload. */
typedef struct {
    ing_ratelimit_t rl;
    atomic_int refs;      /* tables holding it */
    uint32_t rate, burst; /* as configured when it was made */
} ing_shared_limit_t;

typedef struct {
    const ing_source_cfg_t *cfg; /* borrowed from the configuration */
    hl_sig_t auth;
    ing_field_src_t message_id;
    bool signed_id; /* standard-webhooks: the message id is the signed id header of the family
                       the request uses (webhook-id or svix-id), see ing_sources_message_id */
    ing_field_src_t event_type;
    ing_shared_limit_t *limit; /* one reference held */
    ing_status_counters_t counters;
} ing_source_t;

typedef struct {
    atomic_int refs;         /* snapshots only (ing_sources_new): holders of the table */
    ing_config_t *owned_cfg; /* snapshots only: the configuration it was built from, when
                                it owns it (a reload's), freed with the table */
    ing_source_t *v;
    size_t n;
    ing_source_t *default_source;  /* behind /api/webhooks */
    ing_status_counters_t unknown; /* requests that named no configured source (no 202 or 401
                                      counter: those answers need a source) */
    size_t max_body;               /* largest max_body of any source */
} ing_sources_t;

/* Builds every source: loads each secret (hl_secret_load; never logged) and key. Returns 0,
 * or HL_ECONFIG with errbuf naming the source and the reason. `cfg` and `m` are borrowed and
 * must outlive the result. On failure nothing needs freeing. */
int ing_sources_init(ing_sources_t *s, const ing_config_t *cfg, hl_metrics_t *m, char *errbuf,
                     size_t errcap) HL_MUST_CHECK;
void ing_sources_deinit(ing_sources_t *s);

/* Builds a heap snapshot of the sources of cfg with one reference, held by the caller. A
 * source of `prev` (borrowed, may be NULL) with the same name, rate and burst lends the new
 * one its rate limiter. With `owned` non-NULL (it must be cfg) the snapshot takes it on
 * success and frees it with itself; on failure the caller keeps it. NULL with errbuf filled
 * when a secret or key cannot be loaded. Any thread. */
ing_sources_t *ing_sources_new(const ing_config_t *cfg, ing_config_t *owned,
                               const ing_sources_t *prev, hl_metrics_t *m, char *errbuf,
                               size_t errcap);
/* Takes one more reference of snapshot s; returns s. */
ing_sources_t *ing_sources_ref(ing_sources_t *s);
/* Drops one reference; the last frees the snapshot: its secrets are wiped before their
 * memory is given back. NULL-safe. Any thread. */
void ing_sources_unref(ing_sources_t *s);

/* Finds a source by name (n bytes). NULL when unknown. */
ing_source_t *ing_sources_find(const ing_sources_t *s, const char *name, size_t n);

/* Where the message id of a request to src comes from: src->message_id, or for a source
 * with signed_id the id header of the family h is signed with. Worker thread; the result
 * borrows from src and static strings. */
ing_field_src_t ing_sources_message_id(const ing_source_t *src, const hl_sig_headers_t *h);

/* Index of an HTTP status in ING_STATUSES, or the index of 500 for any other. */
int ing_status_index(int status);

void ing_count_status(ing_status_counters_t *c, int status);

#endif
