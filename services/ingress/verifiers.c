/* Re-verification keys from an ingress configuration file: the ingress's own loader and source
 * builder, with a metrics registry nobody serves. */
#include "verifiers.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hl/metrics.h"
#include "hl/util.h"
#include "sources.h"

struct ing_verifiers {
    ing_config_t *cfg;
    hl_metrics_t *metrics; /* the sources register counters; never served */
    ing_sources_t sources;
};

ing_verifiers_t *ing_verifiers_load(const char *path, char *errbuf, size_t errcap)
{
    ing_verifiers_t *v = hl_xcalloc(1, sizeof *v);
    if (ing_config_load(path, &v->cfg, errbuf, errcap) != 0) {
        free(v);
        return NULL;
    }
    v->metrics = hl_metrics_new();
    if (ing_sources_init(&v->sources, v->cfg, v->metrics, errbuf, errcap) != 0) {
        hl_metrics_free(v->metrics);
        ing_config_free(v->cfg);
        free(v);
        return NULL;
    }
    return v;
}

const hl_sig_t *ing_verifiers_find(const ing_verifiers_t *v, const char *name)
{
    if (v == NULL || name == NULL) return NULL;
    const ing_source_t *s = ing_sources_find(&v->sources, name, strlen(name));
    return s ? &s->auth : NULL;
}

bool ing_verifiers_signed_id(const ing_verifiers_t *v, const char *name)
{
    if (v == NULL || name == NULL) return false;
    const ing_source_t *s = ing_sources_find(&v->sources, name, strlen(name));
    return s != NULL && s->signed_id;
}

void ing_verifiers_free(ing_verifiers_t *v)
{
    if (v == NULL) return;
    ing_sources_deinit(&v->sources);
    hl_metrics_free(v->metrics);
    ing_config_free(v->cfg);
    free(v);
}
