/* Unit tests of the CLI's argument checks: why a request id is refused (each reason, every
 * position, truncation of the message) and the token lookup's order, ending at the local
 * stack's demo token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"

static const char good_id[] = "0190f0f0-aaaa-7bbb-8ccc-ddddeeeeffff";

static void expect_problem(const char *id, const char *want)
{
    char why[256] = "";
    assert_int_not_equal(cli_request_id_problem(id, why, sizeof(why)), 0);
    if (strstr(why, want) == NULL) fail_msg("'%s': got '%s', want '%s'", id, why, want);
}

static void test_request_id_reasons(void **state)
{
    (void)state;
    char why[256] = "untouched";
    assert_int_equal(cli_request_id_problem(good_id, why, sizeof(why)), 0);
    assert_int_equal(
        cli_request_id_problem("0190F0F0-AAAA-7BBB-8CCC-DDDDEEEEFFFF", why, sizeof(why)), 0);
    expect_problem("", "it has 0 characters, not 36");
    expect_problem("0190f0f0-aaaa-7bbb-8ccc-ddddeeeeffff0", "it has 37 characters");
    expect_problem("0190f0f0aaaaa7bbb-8ccc-ddddeeeeffff", "it has 35 characters");
    expect_problem("0190f0f0-aaaa-7bbb-8ccc-ddddeeeeff f", "character 35 (' ') is not a hex digit");
    expect_problem("0190F0F0-aaaa-7bbb-8ccc-ddddeeeeffff", "mixes upper- and lower-case");
    /* A dash missing at each of its four places, and a dash where a digit belongs. */
    static const size_t dashes[] = {8, 13, 18, 23};
    for (size_t k = 0; k < 4; k++) {
        char id[sizeof(good_id)], want[64];
        memcpy(id, good_id, sizeof(good_id));
        id[dashes[k]] = 'a';
        snprintf(want, sizeof(want), "character %zu should be '-'", dashes[k] + 1);
        expect_problem(id, want);
    }
    expect_problem("-190f0f0-aaaa-7bbb-8ccc-ddddeeeeffff", "character 1 ('-') is not a hex digit");
    /* A short buffer gets a truncated, terminated message. */
    char small[8];
    assert_int_not_equal(cli_request_id_problem("x", small, sizeof(small)), 0);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_token_lookup_order(void **state)
{
    (void)state;
    char dir[] = "/tmp/hl-cli-args-XXXXXX", old[4096];
    assert_non_null(mkdtemp(dir));
    assert_non_null(getcwd(old, sizeof(old)));
    assert_int_equal(chdir(dir), 0);
    unsetenv("HL_TEST_NO_SUCH_TOKEN_VAR");
    cli_conn_opts_t c;

    /* Nothing anywhere: an empty token and no source. */
    cli_conn_opts_defaults(&c);
    c.auditor_token_env = "HL_TEST_NO_SUCH_TOKEN_VAR";
    assert_int_equal(cli_conn_opts_finish(&c), 0);
    assert_string_equal(c.auditor_token, "");
    assert_string_equal(c.token_from, "");
    cli_conn_opts_free(&c);

    /* The local stack's demo token. */
    assert_int_equal(mkdir("deploy", 0700), 0);
    assert_int_equal(mkdir("deploy/local", 0700), 0);
    assert_int_equal(mkdir("deploy/local/secrets", 0700), 0);
    write_file(CLI_DEMO_TOKEN_FILE, "demo-token\n");
    cli_conn_opts_defaults(&c);
    c.auditor_token_env = "HL_TEST_NO_SUCH_TOKEN_VAR";
    assert_int_equal(cli_conn_opts_finish(&c), 0);
    assert_string_equal(c.auditor_token, "demo-token");
    assert_non_null(strstr(c.token_from, CLI_DEMO_TOKEN_FILE));
    cli_conn_opts_free(&c);

    /* .hookline/auditor-token comes first, the variable before it. */
    assert_int_equal(mkdir(".hookline", 0700), 0);
    write_file(".hookline/auditor-token", "state-token\n");
    cli_conn_opts_defaults(&c);
    c.auditor_token_env = "HL_TEST_NO_SUCH_TOKEN_VAR";
    assert_int_equal(cli_conn_opts_finish(&c), 0);
    assert_string_equal(c.auditor_token, "state-token");
    cli_conn_opts_free(&c);
    setenv("HL_TEST_NO_SUCH_TOKEN_VAR", "env-token", 1);
    cli_conn_opts_defaults(&c);
    c.auditor_token_env = "HL_TEST_NO_SUCH_TOKEN_VAR";
    assert_int_equal(cli_conn_opts_finish(&c), 0);
    assert_string_equal(c.auditor_token, "env-token");
    assert_string_equal(c.token_from, "$HL_TEST_NO_SUCH_TOKEN_VAR");
    cli_conn_opts_free(&c);
    unsetenv("HL_TEST_NO_SUCH_TOKEN_VAR");

    /* A token of two lines is refused. */
    write_file(".hookline/auditor-token", "a\nb\n");
    cli_conn_opts_defaults(&c);
    c.auditor_token_env = "HL_TEST_NO_SUCH_TOKEN_VAR";
    assert_int_equal(cli_conn_opts_finish(&c), CLI_EXIT_USAGE);
    cli_conn_opts_free(&c);

    unlink(".hookline/auditor-token");
    rmdir(".hookline");
    unlink(CLI_DEMO_TOKEN_FILE);
    rmdir("deploy/local/secrets");
    rmdir("deploy/local");
    rmdir("deploy");
    assert_int_equal(chdir(old), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id_reasons),
        cmocka_unit_test(test_token_lookup_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
