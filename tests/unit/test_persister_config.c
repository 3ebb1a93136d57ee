/* Unit tests of the persister's key table: README.md's configuration table agrees with it
 * (default and override of every key), and the loader applies defaults, overrides and limits
 * from it, refusing a bad value with the key's name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#ifndef PST_README
#error "PST_README must name services/persister/README.md"
#endif

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    static char buf[256 * 1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The README row of `key` ("| `key` | default | env | rule |"), copied into row. */
static void readme_row(const char *readme, const char *key, char *row, size_t cap)
{
    char head[96];
    snprintf(head, sizeof head, "| `%s` |", key);
    const char *p = strstr(readme, head);
    if (!p) fail_msg("README.md has no row for key %s", key);
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= cap) n = cap - 1;
    memcpy(row, p, n);
    row[n] = '\0';
}

static void test_readme_matches_table(void **state)
{
    const char *readme = slurp(PST_README);
    for (size_t i = 0; i < pst_config_nkeys; i++) {
        const hl_config_key_t *k = &pst_config_keys[i];
        char row[1024], cell[128];
        readme_row(readme, k->name, row, sizeof row);
        if (k->kind == HL_CONFIG_U32)
            snprintf(cell, sizeof cell, "| %u |", k->def_u32);
        else
            snprintf(cell, sizeof cell, "| `%s` |", k->def_str);
        if (!strstr(row, cell)) fail_msg("README.md: %s should show default %s", k->name, cell);
        snprintf(cell, sizeof cell, "| `%s` |", k->env ? k->env : "");
        if (k->env ? !strstr(row, cell) : strstr(row, "`HOOKLINE_") != NULL)
            fail_msg("README.md: %s should show override %s", k->name, k->env ? k->env : "none");
    }
}

static void test_finish_applies_table(void **state)
{
    char err[HL_CONFIG_ERRBUF] = "";
    pst_config_t *c = calloc(1, sizeof(*c));
    assert_int_equal(pst_config_finish(c, err, sizeof err), 0);
    assert_string_equal(c->group_id, "hookline-persister");
    assert_int_equal(c->batch_max, PST_BATCH_MAX);
    assert_int_equal(c->shutdown_timeout_ms, 15000);
    c->batch_max = 50001;
    assert_int_equal(pst_config_finish(c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "'batch_max'"));
    c->batch_max = 10;
    c->retry_base_ms = 500;
    c->retry_cap_ms = 100;
    assert_int_equal(pst_config_finish(c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "'retry_cap_ms'"));
    pst_config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme_matches_table),
        cmocka_unit_test(test_finish_applies_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
