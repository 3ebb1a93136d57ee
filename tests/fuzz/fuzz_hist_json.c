/* Fuzzes hl_hist_from_json (libs/hist): histograms arrive from other processes. A parsed
 * histogram must serialise and parse back to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl/hist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    hl_hist_t *h = hl_hist_new();
    if (hl_hist_from_json(h, copy, size) == 0) {
        static char a[65536], b[65536];
        int n = hl_hist_to_json(h, a, sizeof a);
        if (n < 0) abort();
        hl_hist_t *h2 = hl_hist_new();
        if (hl_hist_from_json(h2, a, (size_t)n) != 0) abort();
        int m = hl_hist_to_json(h2, b, sizeof b);
        if (m != n || memcmp(a, b, (size_t)n) != 0) abort();
        hl_hist_free(h2);
    }
    hl_hist_free(h);
    free(copy);
    return 0;
}
