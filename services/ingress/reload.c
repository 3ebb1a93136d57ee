/* Reload: a fingerprint of the watched files, the comparison of what needs a restart, and the
 * build of the next sources snapshot. */
#include "reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hl/util.h"

struct ing_reload {
    const char *path;            /* the config file (borrowed) */
    const ing_config_t *running; /* what the process started with (borrowed) */
    size_t body_buf_max;         /* the largest max_body at start */
    char **files;                /* secret files of the last configuration loaded (owned) */
    size_t nfiles;
    uint64_t fingerprint;  /* of path and files at the last look */
    hl_metrics_t *metrics; /* borrowed: the new sources' counters are registered there */
    hl_counter_t *ok, *refused;
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Mixes what stat() says of the file path resolves to, or that it is missing. stat follows
 * symlinks: a Kubernetes secret update (a new ..data directory) yields another inode. */
static uint64_t mix_file(uint64_t h, const char *path)
{
    struct stat st;
    int64_t v[7] = {0};
    if (stat(path, &st) == 0) {
        v[0] = (int64_t)st.st_dev, v[1] = (int64_t)st.st_ino, v[2] = (int64_t)st.st_size;
        v[3] = (int64_t)st.st_mtim.tv_sec, v[4] = st.st_mtim.tv_nsec;
        v[5] = (int64_t)st.st_ctim.tv_sec, v[6] = st.st_ctim.tv_nsec;
    }
    return mix(mix(h, path, strlen(path) + 1), v, sizeof(v));
}

#define FNV_BASIS 1469598103934665603ull

/* Continues h, the fingerprint of the config file, with the watched secret files. */
static uint64_t fingerprint_files(const ing_reload_t *r, uint64_t h)
{
    for (size_t i = 0; i < r->nfiles; i++) h = mix_file(h, r->files[i]);
    return h;
}

static uint64_t fingerprint(const ing_reload_t *r)
{
    return fingerprint_files(r, mix_file(FNV_BASIS, r->path));
}

static void free_files(ing_reload_t *r)
{
    for (size_t i = 0; i < r->nfiles; i++) free(r->files[i]);
    free(r->files);
    r->files = NULL;
    r->nfiles = 0;
}

/* Watches the secret files cfg names from now on. */
static void watch_files(ing_reload_t *r, const ing_config_t *cfg)
{
    free_files(r);
    size_t n = 0;
    for (unsigned i = 0; i < cfg->sources_count; i++) n += cfg->sources[i].secrets_count;
    r->files = hl_xcalloc(n + 1, sizeof(char *));
    for (unsigned i = 0; i < cfg->sources_count; i++)
        for (unsigned k = 0; k < cfg->sources[i].secrets_count; k++)
            if (cfg->sources[i].secrets[k].file != NULL)
                r->files[r->nfiles++] = hl_xstrdup(cfg->sources[i].secrets[k].file);
}

ing_reload_t *ing_reload_new(const char *path, const ing_config_t *running, hl_metrics_t *m)
{
    ing_reload_t *r = hl_xcalloc(1, sizeof(*r));
    r->path = path;
    r->running = running;
    for (unsigned i = 0; i < running->sources_count; i++)
        if (running->sources[i].max_body > r->body_buf_max)
            r->body_buf_max = running->sources[i].max_body;
    r->metrics = m;
    static const char help[] = "Configuration reloads (SIGHUP or a changed file), by outcome";
    r->ok = hl_metrics_counter(m, "hookline_ingress_config_reloads_total", help, "result=\"ok\"");
    r->refused =
        hl_metrics_counter(m, "hookline_ingress_config_reloads_total", help, "result=\"refused\"");
    watch_files(r, running);
    r->fingerprint = fingerprint(r);
    return r;
}

void ing_reload_free(ing_reload_t *r)
{
    if (r == NULL) return;
    free_files(r);
    free(r);
}

bool ing_reload_changed(ing_reload_t *r)
{
    uint64_t f = fingerprint(r);
    if (f == r->fingerprint) return false;
    r->fingerprint = f;
    return true;
}

static bool str_differ(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

static bool kafka_differ(const hl_kafka_config_t *a, const hl_kafka_config_t *b)
{
    if (str_differ(a->brokers, b->brokers) || str_differ(a->events_topic, b->events_topic) ||
        str_differ(a->lineage_topic, b->lineage_topic) || str_differ(a->dlq_topic, b->dlq_topic) ||
        str_differ(a->client_id, b->client_id) || a->properties_count != b->properties_count ||
        a->secret_properties_count != b->secret_properties_count)
        return true;
    for (unsigned i = 0; i < a->properties_count; i++)
        if (str_differ(a->properties[i], b->properties[i])) return true;
    for (unsigned i = 0; i < a->secret_properties_count; i++) {
        const hl_secret_property_t *x = &a->secret_properties[i], *y = &b->secret_properties[i];
        if (str_differ(x->name, y->name) || str_differ(x->env, y->env) ||
            str_differ(x->file, y->file))
            return true;
    }
    return false;
}

const char *ing_reload_restart_key(const ing_config_t *a, const ing_config_t *b)
{
    if (str_differ(a->http.listen, b->http.listen)) return "http.listen";
    if (a->http.threads != b->http.threads) return "http.threads";
    if (str_differ(a->http.tls_cert, b->http.tls_cert)) return "http.tls_cert";
    if (str_differ(a->http.tls_key, b->http.tls_key)) return "http.tls_key";
    if (a->http.request_timeout_ms != b->http.request_timeout_ms) return "http.request_timeout_ms";
    if (kafka_differ(&a->kafka, &b->kafka)) return "kafka";
    if (str_differ(a->log_level, b->log_level)) return "log_level";
    if (str_differ(a->ack_mode, b->ack_mode)) return "ack_mode";
    if (str_differ(a->metrics_listen, b->metrics_listen)) return "metrics_listen";
    if (a->secret_files_shared != b->secret_files_shared) return "secret_files_shared";
#define KNOB_SAME(key, def, min, max, env, doc)                                                    \
    if (a->key != b->key) return #key;
    ING_CONFIG_KNOBS(KNOB_SAME)
#undef KNOB_SAME
    return NULL;
}

/* Fills errbuf when cfg asks what only a restart can give; 0 when it does not. */
static int check_live(const ing_reload_t *r, const ing_config_t *cfg, char *errbuf, size_t errcap)
{
    const char *key = ing_reload_restart_key(r->running, cfg);
    if (key != NULL) {
        snprintf(errbuf, errcap, "config: '%s' changed; it takes effect only on a restart", key);
        return HL_ECONFIG;
    }
    for (unsigned i = 0; i < cfg->sources_count; i++)
        if (cfg->sources[i].max_body > r->body_buf_max) {
            snprintf(errbuf, errcap,
                     "config: sources[%u].max_body = %u: above the largest at start (%zu), the "
                     "size of the workers' body buffers; raising it takes a restart",
                     i, cfg->sources[i].max_body, r->body_buf_max);
            return HL_ECONFIG;
        }
    return 0;
}

ing_sources_t *ing_reload_build(ing_reload_t *r, const ing_sources_t *current, char *errbuf,
                                size_t errcap)
{
    ing_config_t *cfg = NULL;
    ing_sources_t *next = NULL;
    /* Each file's part is taken before it is read: a change while it is read is seen at the
     * next look. */
    uint64_t h = mix_file(FNV_BASIS, r->path);
    r->fingerprint = fingerprint_files(r, h);
    if (ing_config_load(r->path, &cfg, errbuf, errcap) != 0) goto out;
    watch_files(r, cfg); /* a secret file named but missing is reloaded once it appears */
    r->fingerprint = fingerprint_files(r, h);
    if (check_live(r, cfg, errbuf, errcap) != 0) goto out;
    next = ing_sources_new(cfg, cfg, current, r->metrics, errbuf, errcap);
    if (next != NULL) cfg = NULL; /* taken */
out:
    ing_config_free(cfg);
    hl_counter_inc(next != NULL ? r->ok : r->refused);
    return next;
}
