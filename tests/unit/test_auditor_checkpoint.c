/* Ed25519 checkpoints: key generation on demand, sign/verify, tamper detection, JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", "/tmp/hl-cp-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/key.pem", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/junk.pem", dir);
    unlink(p);
    return rmdir(dir);
}

static void test_generate_sign_verify(void **state)
{
    (void)state;
    char path[128], err[256], json[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/key.pem", dir);
    assert_null(aud_signer_load(path, false, err, sizeof err)); /* absent, no generation */
    aud_signer_t *s = aud_signer_load(path, true, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    aud_signer_t *again = aud_signer_load(path, true, err, sizeof err); /* same key, reloaded */
    assert_string_equal(aud_signer_key_id(s), aud_signer_key_id(again));

    aud_checkpoint_t cp, parsed;
    memset(&cp, 0, sizeof cp);
    cp.chain = 2;
    cp.seq = 1234;
    memset(cp.hash, 0xab, sizeof cp.hash);
    cp.ts_us = 1700000000000000;
    assert_int_equal(aud_checkpoint_sign(s, &cp), 0);
    assert_int_equal(aud_checkpoint_verify(again, &cp), 0);

    int n = aud_checkpoint_json(&cp, json, sizeof json);
    assert_true(n > 0);
    assert_int_equal(aud_checkpoint_parse(json, (size_t)n, &parsed), 0);
    assert_int_equal(aud_checkpoint_verify(s, &parsed), 0);

    aud_checkpoint_t t = cp;
    t.seq++;
    assert_int_equal(aud_checkpoint_verify(s, &t), HL_EAUTH);
    t = cp;
    t.hash[0] ^= 1;
    assert_int_equal(aud_checkpoint_verify(s, &t), HL_EAUTH);
    t = cp;
    t.sig[10] ^= 1;
    assert_int_equal(aud_checkpoint_verify(s, &t), HL_EAUTH);
    t = cp;
    t.key_id[0] = t.key_id[0] == '0' ? '1' : '0';
    assert_int_equal(aud_checkpoint_verify(s, &t), HL_EAUTH);
    aud_signer_free(s);
    aud_signer_free(again);
    aud_signer_free(NULL);
}

static void test_bad_key_file(void **state)
{
    (void)state;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/junk.pem", dir);
    FILE *f = fopen(path, "w");
    fputs("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    assert_null(aud_signer_load(path, true, err, sizeof err));
    assert_non_null(strstr(err, "junk.pem"));
}

static void test_parse_rejects(void **state)
{
    (void)state;
    aud_checkpoint_t cp;
    const char *bad[] = {
        "",
        "{}",
        "[]",
        "{\"chain\":0}",
        "{\"chain\":-1,\"seq\":1,\"hash\":\"" /* negative chain */
        "0000000000000000000000000000000000000000000000000000000000000000\",\"ts_us\":1,"
        "\"key_id\":\"0000000000000000\",\"signature\":\"00\"}",
        "{\"chain\":0,\"seq\":0,\"hash\":\"00\",\"ts_us\":1,\"key_id\":\"x\",\"signature\":\"00\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(aud_checkpoint_parse(bad[i], strlen(bad[i]), &cp), HL_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_sign_verify),
        cmocka_unit_test(test_bad_key_file),
        cmocka_unit_test(test_parse_rejects),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
