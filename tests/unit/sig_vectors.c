/* The loader of a signature vector into a verifier, shared by the tests of the vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sig_vectors.h"

void sig_vector_load(hl_sig_t *a, json_t *v, int64_t tolerance)
{
    const char *scheme = json_string_value(json_object_get(v, "scheme"));
    hl_sig_init(a, hl_sig_scheme_parse(scheme), tolerance);
    assert_int_not_equal(a->scheme, HL_SIG_SCHEME_NONE);
    json_t *cfg = json_object_get(v, "config");
    if (cfg != NULL) {
        snprintf(a->header, sizeof(a->header), "%s",
                 json_string_value(json_object_get(cfg, "header")));
        snprintf(a->prefix, sizeof(a->prefix), "%s",
                 json_string_value(json_object_get(cfg, "prefix")));
        const char *enc = json_string_value(json_object_get(cfg, "encoding"));
        a->encoding = strcmp(enc, "base64") == 0 ? HL_SIG_ENC_BASE64 : HL_SIG_ENC_HEX;
    }
    if (a->scheme == HL_SIG_SCHEME_BEARER) snprintf(a->header, sizeof(a->header), "Authorization");
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(v, "keys"), i, k)
    {
        char err[128] = "";
        const char *s = json_string_value(k);
        int rc = hl_sig_add_key(a, s, strlen(s), err, sizeof(err));
        if (rc != 0)
            fail_msg("%s: key %zu refused: %s", json_string_value(json_object_get(v, "name")), i,
                     err);
    }
}
