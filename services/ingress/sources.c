/* Turns the configuration's sources into ready verifiers and counters. */
#include "sources.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl/util.h"

static const int k_statuses[] = {
#define ING_ST(s) s,
    ING_STATUSES(ING_ST)
#undef ING_ST
};

int ing_status_index(int status)
{
    int other = 0;
    for (int i = 0; i < ING_STATUS_COUNT; i++) {
        if (k_statuses[i] == status) return i;
        if (k_statuses[i] == 500) other = i;
    }
    return other;
}

void ing_count_status(ing_status_counters_t *c, int status)
{
    hl_counter_t *n = c->by_status[ing_status_index(status)];
    if (n != NULL) hl_counter_inc(n);
}

/* Answers that only a configured source can get: accepted, or refused by its authentication.
 * The counters of requests that named no source leave them out rather than export a series
 * that can never count. */
static bool needs_source(int status)
{
    return status == 202 || status == 401;
}

static void register_counters(ing_status_counters_t *c, hl_metrics_t *m, const char *source,
                              bool known)
{
    for (int i = 0; i < ING_STATUS_COUNT; i++) {
        char labels[128];
        if (!known && needs_source(k_statuses[i])) continue;
        snprintf(labels, sizeof(labels), "source=\"%s\",status=\"%d\"", source, k_statuses[i]);
        c->by_status[i] =
            hl_metrics_counter(m, "hookline_ingress_requests_total",
                               "Requests answered, by source and HTTP status", labels);
    }
}

/* Shortest HMAC secret or bearer token accepted: below it a secret can be guessed offline
 * from one signed request. (whsec_ secrets have the same floor, checked on the decoded bytes.) */
#define MIN_SECRET_LEN 16

/* Fills errbuf with "config: source 'NAME' secret K (env E, file F): WHY". */
static int secret_fail(const ing_source_cfg_t *c, unsigned k, const char *why, char *errbuf,
                       size_t errcap)
{
    snprintf(errbuf, errcap, "config: source '%s' secret %u (env %s, file %s): %s", c->name, k,
             c->secrets[k].env ? c->secrets[k].env : "-",
             c->secrets[k].file ? c->secrets[k].file : "-", why);
    return HL_ECONFIG;
}

static int load_keys(ing_source_t *src, bool shared_ok, char *errbuf, size_t errcap)
{
    const ing_source_cfg_t *c = src->cfg;
    char why[160];
    bool raw = src->auth.scheme == HL_SIG_SCHEME_STRIPE || src->auth.scheme == HL_SIG_SCHEME_HMAC ||
               src->auth.scheme == HL_SIG_SCHEME_BEARER;
    for (unsigned k = 0; k < c->secrets_count; k++) {
        char *val = NULL;
        size_t len = 0;
        /* An empty variable is a mistake (a missing Kubernetes secret key, an unset shell
         * variable exported), never a secret: refused, rather than taken over the file. */
        const char *ev = c->secrets[k].env != NULL ? getenv(c->secrets[k].env) : NULL;
        if (ev != NULL && ev[0] == '\0')
            return secret_fail(c, k,
                               "environment variable set but empty (unset it, or give it "
                               "the secret)",
                               errbuf, errcap);
        int rc = hl_secret_load(c->secrets[k].env, c->secrets[k].file, shared_ok, &val, &len);
        if (rc == HL_EPARSE) return secret_fail(c, k, "contains a NUL byte", errbuf, errcap);
        if (rc == HL_EINVAL)
            return secret_fail(c, k,
                               "file readable by group or others (chmod 600, or "
                               "secret_files_shared: true for a mounted Kubernetes secret)",
                               errbuf, errcap);
        if (rc == HL_ESTATE)
            return secret_fail(c, k, "not a regular file (a named pipe, a device?)", errbuf,
                               errcap);
        if (rc != 0) return secret_fail(c, k, hl_strerror(rc), errbuf, errcap);
        if (raw && len < MIN_SECRET_LEN) {
            OPENSSL_cleanse(val, len);
            free(val);
            return secret_fail(c, k, "shorter than 16 bytes", errbuf, errcap);
        }
        rc = hl_sig_add_key(&src->auth, val, len, why, sizeof(why));
        OPENSSL_cleanse(val, len);
        free(val);
        if (rc != 0) {
            snprintf(errbuf, errcap, "config: source '%s' secret %u: %s", c->name, k, why);
            return HL_ECONFIG;
        }
    }
    for (unsigned k = 0; k < c->public_keys_count; k++) {
        const char *pk = c->public_keys[k];
        if (hl_sig_add_key(&src->auth, pk, strlen(pk), why, sizeof(why)) != 0) {
            snprintf(errbuf, errcap, "config: source '%s' public_keys[%u]: %s", c->name, k, why);
            return HL_ECONFIG;
        }
    }
    return 0;
}

/* The limiter of the source named like c in prev when its rate and burst are unchanged (one
 * more reference taken), else a new one. */
static ing_shared_limit_t *limit_for(const ing_source_cfg_t *c, const ing_sources_t *prev)
{
    const ing_source_t *old = prev ? ing_sources_find(prev, c->name, strlen(c->name)) : NULL;
    if (old != NULL && old->limit->rate == c->rate_per_sec && old->limit->burst == c->burst) {
        atomic_fetch_add(&old->limit->refs, 1);
        return old->limit;
    }
    ing_shared_limit_t *l = hl_xcalloc(1, sizeof(*l));
    ing_ratelimit_init(&l->rl, c->rate_per_sec, c->burst);
    atomic_init(&l->refs, 1);
    l->rate = c->rate_per_sec;
    l->burst = c->burst;
    return l;
}

static void limit_unref(ing_shared_limit_t *l)
{
    if (l != NULL && atomic_fetch_sub(&l->refs, 1) == 1) free(l);
}

static int init_source(ing_source_t *src, const ing_source_cfg_t *c, bool shared_ok,
                       const ing_sources_t *prev, hl_metrics_t *m, char *errbuf, size_t errcap)
{
    src->cfg = c;
    hl_sig_init(&src->auth, hl_sig_scheme_parse(c->scheme), c->timestamp_tolerance_s);
    if (c->header != NULL) hl_strlcpy(src->auth.header, c->header, sizeof(src->auth.header));
    if (c->prefix != NULL) hl_strlcpy(src->auth.prefix, c->prefix, sizeof(src->auth.prefix));
    src->auth.encoding = strcmp(c->encoding, "base64") == 0 ? HL_SIG_ENC_BASE64 : HL_SIG_ENC_HEX;
    src->message_id = (ing_field_src_t){c->message_id_header ? NULL : c->message_id,
                                        c->message_id_header, ING_MAX_MESSAGE_ID};
    src->event_type = (ing_field_src_t){c->event_type_header ? NULL : c->event_type,
                                        c->event_type_header, ING_MAX_EVENT_TYPE};
    const char *idh = c->message_id_header;
    src->signed_id =
        src->auth.scheme == HL_SIG_SCHEME_STANDARD &&
        (idh != NULL ? strcasecmp(idh, "webhook-id") == 0 || strcasecmp(idh, "svix-id") == 0
                     : c->message_id == NULL);
    src->limit = limit_for(c, prev);
    if (load_keys(src, shared_ok, errbuf, errcap) != 0) return HL_ECONFIG;
    register_counters(&src->counters, m, c->name, true);
    return 0;
}

static int sources_build(ing_sources_t *s, const ing_config_t *cfg, const ing_sources_t *prev,
                         hl_metrics_t *m, char *errbuf, size_t errcap)
{
    memset(s, 0, sizeof(*s));
    s->v = hl_xcalloc(cfg->sources_count, sizeof(ing_source_t));
    s->n = cfg->sources_count;
    for (size_t i = 0; i < s->n; i++) {
        if (init_source(&s->v[i], &cfg->sources[i], cfg->secret_files_shared, prev, m, errbuf,
                        errcap) != 0) {
            ing_sources_deinit(s);
            return HL_ECONFIG;
        }
        if (cfg->sources[i].max_body > s->max_body) s->max_body = cfg->sources[i].max_body;
    }
    s->default_source = ing_sources_find(s, cfg->default_source, strlen(cfg->default_source));
    register_counters(&s->unknown, m, "_unknown", false);
    return 0;
}

int ing_sources_init(ing_sources_t *s, const ing_config_t *cfg, hl_metrics_t *m, char *errbuf,
                     size_t errcap)
{
    return sources_build(s, cfg, NULL, m, errbuf, errcap);
}

void ing_sources_deinit(ing_sources_t *s)
{
    if (s == NULL) return;
    for (size_t i = 0; s->v != NULL && i < s->n; i++) {
        hl_sig_deinit(&s->v[i].auth); /* wipes the secrets */
        limit_unref(s->v[i].limit);
    }
    free(s->v);
    ing_config_free(s->owned_cfg);
    memset(s, 0, sizeof(*s));
}

ing_sources_t *ing_sources_new(const ing_config_t *cfg, ing_config_t *owned,
                               const ing_sources_t *prev, hl_metrics_t *m, char *errbuf,
                               size_t errcap)
{
    ing_sources_t *s = hl_xcalloc(1, sizeof(*s));
    if (sources_build(s, cfg, prev, m, errbuf, errcap) != 0) {
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->owned_cfg = owned;
    return s;
}

ing_sources_t *ing_sources_ref(ing_sources_t *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void ing_sources_unref(ing_sources_t *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) return;
    ing_sources_deinit(s);
    free(s);
}

ing_source_t *ing_sources_find(const ing_sources_t *s, const char *name, size_t n)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i].cfg->name) == n && memcmp(s->v[i].cfg->name, name, n) == 0)
            return &s->v[i];
    return NULL;
}

ing_field_src_t ing_sources_message_id(const ing_source_t *src, const hl_sig_headers_t *h)
{
    if (!src->signed_id) return src->message_id;
    return (ing_field_src_t){NULL, (char *)hl_sig_standard_id_header(h), ING_MAX_MESSAGE_ID};
}
