/* Fuzzes the ingress configuration loader (config.c through libcyaml and hl_config): YAML
 * written to a private temp file, then loaded, overridden, defaulted and validated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char g_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    if (g_path[0] == '\0') {
        snprintf(g_path, sizeof g_path, "/tmp/hl-fuzz-config-%ld.yaml", (long)getpid());
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    ing_config_t *cfg = NULL;
    char err[512];
    int rc = ing_config_load(g_path, &cfg, err, sizeof err);
    if (rc == 0) {
        if (cfg->sources_count < 1 || cfg->sources_count > ING_MAX_SOURCES) abort();
        ing_config_free(cfg);
    } else if (cfg != NULL || memchr(err, '\0', sizeof err) == NULL) {
        abort();
    }
    unlink(g_path);
    return 0;
}
