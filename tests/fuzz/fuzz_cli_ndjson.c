/* Fuzzes the CLI's captured-request reader (workload.c, cli_wl_read_ndjson): replay input files
 * come from wherever a user captured them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workload.h"

static char g_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 262144) return 0;
    if (g_path[0] == '\0')
        snprintf(g_path, sizeof g_path, "/tmp/hl-fuzz-ndjson-%ld", (long)getpid());
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    /* Alternate between the body pointer and the header as the message id's origin. */
    cli_wl_input_opts_t o = {"/messageId", (size & 1) ? "webhook-id" : NULL, "/eventType"};
    cli_workload_t w;
    memset(&w, 0, sizeof w);
    char err[256];
    if (cli_wl_read_ndjson(g_path, &o, &w, err, sizeof err) == 0) {
        size_t total = 0;
        for (size_t i = 0; i < w.nmsgs; i++) total += w.msgs[i].nreqs;
        if (total != w.nreqs) abort();
    }
    cli_wl_free(&w);
    unlink(g_path);
    return 0;
}
