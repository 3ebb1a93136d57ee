/* The auditor's configuration table: defaults, section keys named "section.key" in errors,
 * and HOOKLINE_* overrides of the table's keys, good and bad. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "config.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static char path[64];

#define KEY_FILE "checkpoint:\n  key_file: /tmp/k.pem\n"

/* Writes a configuration of `extra` (YAML lines, with a checkpoint section) and one token to
 * a temporary file. */
static void write_config(const char *extra)
{
    snprintf(path, sizeof path, "/tmp/hl_aud_cfg_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "%stokens:\n  - name: a\n    sha256: " SHA_A "\n    roles: [auditor]\n", extra);
    fclose(f);
}

static int load(const char *extra, aud_config_t **c, char *err, size_t cap)
{
    write_config(extra);
    int rc = aud_config_load(path, c, err, cap);
    unlink(path);
    return rc;
}

static void test_defaults_from_table(void **state)
{
    aud_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "";
    if (load(KEY_FILE, &c, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(c->group_id, "hookline-auditor");
    assert_string_equal(c->log_level, "info");
    assert_int_equal(c->batch_max, 2000);
    assert_int_equal(c->gap_scan_interval_s, 10);
    assert_int_equal(c->gap_scan_pending_max, 500000);
    assert_int_equal(c->rollup_fold_ms, 5000);
    assert_int_equal(c->shutdown_timeout_ms, 15000);
    assert_int_equal(c->checkpoint.interval_s, 60);
    assert_string_equal(c->checkpoint.topic, "hookline.checkpoints");
    assert_int_equal(c->slo.ack_ms, 250);
    assert_int_equal(c->slo.e2e_ms, 2000);
    aud_config_free(c);
}

/* A section's key out of range is named with its section. */
static void test_section_keys_named(void **state)
{
    static const struct {
        const char *yaml, *field;
    } cases[] = {
        {KEY_FILE "  interval_s: 90000\n", "'checkpoint.interval_s'"},
        {KEY_FILE "slo:\n  e2e_ms: 3600001\n", "'slo.e2e_ms'"},
        {KEY_FILE "page_limit_max: 10001\n", "'page_limit_max'"},
        {KEY_FILE "gap_scan_interval_s: 3601\n", "'gap_scan_interval_s'"},
        {KEY_FILE "gap_scan_pending_max: 5000001\n", "'gap_scan_pending_max'"},
        {KEY_FILE "gap_scan_pending_max: 99\n", "'gap_scan_pending_max'"},
        {KEY_FILE "rollup_fold_ms: 99\n", "'rollup_fold_ms'"},
        {KEY_FILE "rollup_fold_ms: 600001\n", "'rollup_fold_ms'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        aud_config_t *c = NULL;
        char err[HL_CONFIG_ERRBUF] = "";
        assert_int_equal(load(cases[i].yaml, &c, err, sizeof err), HL_ECONFIG);
        assert_null(c);
        if (!strstr(err, cases[i].field)) fail_msg("'%s' does not name %s", err, cases[i].field);
    }
}

/* The table's overrides apply, and a bad one is refused naming its variable. */
static void test_overrides(void **state)
{
    aud_config_t *c = NULL;
    char err[HL_CONFIG_ERRBUF] = "";
    setenv("HOOKLINE_AUDITOR_BATCH_MAX", "7", 1);
    setenv("HOOKLINE_AUDITOR_CHECKPOINT_TOPIC", "elsewhere", 1);
    int rc = load(KEY_FILE "batch_max: 9\n", &c, err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    assert_int_equal(c->batch_max, 7);
    assert_string_equal(c->checkpoint.topic, "elsewhere");
    aud_config_free(c);
    setenv("HOOKLINE_AUDITOR_BATCH_MAX", "many", 1);
    assert_int_equal(load(KEY_FILE, &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "HOOKLINE_AUDITOR_BATCH_MAX"));
    setenv("HOOKLINE_AUDITOR_BATCH_MAX", "20001", 1);
    assert_int_equal(load(KEY_FILE, &c, err, sizeof err), HL_ECONFIG);
    assert_non_null(strstr(err, "'batch_max'"));
    unsetenv("HOOKLINE_AUDITOR_BATCH_MAX");
    unsetenv("HOOKLINE_AUDITOR_CHECKPOINT_TOPIC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_from_table),
        cmocka_unit_test(test_section_keys_named),
        cmocka_unit_test(test_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
