/* Unit tests of the evidence manifest: an intact folder verifies; a changed byte, a removed
 * file, an added file and a broken manifest are each reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "evidence.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/hl-cli-ev-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    char sub[96];
    snprintf(sub, sizeof(sub), "%s/run", dir);
    if (cli_evidence_mkdir(sub) != 0) return -1;
    snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/run");
    if (cli_evidence_write(dir, "results.json", "{\"gate\":\"PASS\"}", 15) != 0) return -1;
    if (cli_evidence_write(dir, "latency.csv", "lo_us,hi_us,count\n1,1,5\n", 24) != 0) return -1;
    if (cli_evidence_write(dir, "empty.txt", "", 0) != 0) return -1;
    return cli_evidence_seal(dir) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%.*s'", (int)(strlen(dir) - 4), dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs verify and returns its report text (static buffer). */
static const char *verify(int *problems)
{
    static char buf[4096];
    FILE *f = fmemopen(buf, sizeof(buf), "w");
    *problems = cli_evidence_verify(dir, f);
    fclose(f);
    return buf;
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void test_intact(void **state)
{
    (void)state;
    int n;
    verify(&n);
    assert_int_equal(n, 0);
    /* The manifest is in sha256sum's format and sorted. */
    char p[128], line[256];
    path_of(p, sizeof(p), "SHA256SUMS");
    FILE *f = fopen(p, "r");
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "  empty.txt\n"));
    assert_int_equal(strlen(line), 64 + 2 + 9 + 1);
    fclose(f);
}

static void test_changed_byte(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof(p), "results.json");
    FILE *f = fopen(p, "r+");
    fseek(f, 9, SEEK_SET);
    fputc('F', f); /* "PASS" -> "FASS" */
    fclose(f);
    int n;
    const char *rep = verify(&n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(rep, "modified: results.json"));
}

static void test_removed_file(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof(p), "latency.csv");
    assert_int_equal(unlink(p), 0);
    int n;
    const char *rep = verify(&n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(rep, "missing: latency.csv"));
}

static void test_added_file(void **state)
{
    (void)state;
    assert_int_equal(cli_evidence_write(dir, "extra.json", "{}", 2), 0);
    int n;
    const char *rep = verify(&n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(rep, "unlisted: extra.json"));
}

static void test_broken_manifest(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof(p), "SHA256SUMS");
    FILE *f = fopen(p, "a");
    fputs("zz  not-a-hash\n", f);
    fclose(f);
    int n;
    const char *rep = verify(&n);
    assert_int_equal(n, 1);
    assert_non_null(strstr(rep, "malformed manifest line 4"));
    /* A manifest entry pointing outside the folder is refused too. */
    f = fopen(p, "w");
    fputs("0000000000000000000000000000000000000000000000000000000000000000  ../etc\n", f);
    fclose(f);
    rep = verify(&n);
    assert_true(n >= 1);
    assert_non_null(strstr(rep, "malformed manifest line 1"));
    assert_int_equal(unlink(p), 0);
    rep = verify(&n);
    assert_int_equal(n, HL_EIO);
}

static void test_seal_refuses_subfolders_and_bad_names(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof(p), "sub");
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_not_equal(cli_evidence_seal(dir), 0);
    rmdir(p);
    assert_int_equal(cli_evidence_write(dir, "../escape", "x", 1), HL_EINVAL);
    assert_int_equal(cli_evidence_write(dir, "", "x", 1), HL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_added_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_refuses_subfolders_and_bad_names, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
