/* The walkers of a service's declarative key table: overrides, defaults and checks driven by
 * one row per key, so a key is declared once instead of in four places. */
#include <string.h>

#include "hl/config.h"

static void *field_at(void *cfg, const hl_config_key_t *k)
{
    return (char *)cfg + k->offset;
}

static const void *cfield_at(const void *cfg, const hl_config_key_t *k)
{
    return (const char *)cfg + k->offset;
}

int hl_config_keys_env(void *cfg, const hl_config_key_t *keys, size_t n, char *errbuf,
                       size_t errcap)
{
    for (size_t i = 0; i < n; i++) {
        if (keys[i].env == NULL) continue;
        hl_env_override_t row = {
            keys[i].env, keys[i].kind == HL_CONFIG_U32 ? HL_ENV_U32 : HL_ENV_STR, keys[i].offset};
        int rc = hl_config_env(cfg, &row, 1, errbuf, errcap);
        if (rc != 0) return rc;
    }
    return 0;
}

void hl_config_keys_defaults(void *cfg, const hl_config_key_t *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (keys[i].kind == HL_CONFIG_U32)
            hl_config_default_u32(field_at(cfg, &keys[i]), keys[i].def_u32);
        else if (keys[i].def_str != NULL)
            hl_config_default_str(field_at(cfg, &keys[i]), keys[i].def_str);
    }
}

int hl_config_keys_check(const void *cfg, const hl_config_key_t *keys, size_t n, char *errbuf,
                         size_t errcap)
{
    for (size_t i = 0; i < n; i++) {
        const hl_config_key_t *k = &keys[i];
        int rc;
        if (k->kind == HL_CONFIG_U32) {
            uint32_t v;
            memcpy(&v, cfield_at(cfg, k), sizeof(v));
            rc = hl_config_check_u32(k->name, v, k->min, k->max, errbuf, errcap);
        } else {
            const char *v;
            memcpy(&v, cfield_at(cfg, k), sizeof(v));
            rc = hl_config_check_str(k->name, v, k->min, k->max, errbuf, errcap);
        }
        if (rc != 0) return rc;
    }
    return 0;
}

int hl_config_load_spec(const char *path, const hl_config_spec_t *spec, void **out, char *errbuf,
                        size_t errcap)
{
    void *cfg = NULL;
    *out = NULL;
    int rc = hl_config_load(path, spec->schema, &cfg, errbuf, errcap);
    if (rc != 0) return rc;
    rc = hl_config_env(cfg, spec->env, spec->nenv, errbuf, errcap);
    if (rc == 0) rc = hl_config_keys_env(cfg, spec->keys, spec->nkeys, errbuf, errcap);
    if (rc == 0) rc = spec->finish(cfg, errbuf, errcap);
    if (rc != 0) {
        hl_config_free(spec->schema, cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}
