/* Bearer parsing, token lookup by hash, and the role matrix table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

/* sha256("tok-a") */
#define TOK_A_HASH "4f66a4283f8bc9768c3cb97fd06d267b79315aee941c9c1727b9354509242ffe"

static void test_bearer(void **state)
{
    (void)state;
    const char *t;
    size_t n;
    assert_int_equal(aud_auth_bearer("Bearer abc.DEF-_~+/=", &t, &n), 0);
    assert_int_equal(n, 13);
    assert_int_equal(aud_auth_bearer("bearer xyz", &t, &n), 0);
    const char *bad[] = {NULL,        "",           "Bearer",     "Bearer ",
                         "Basic abc", "Bearer a b", "Bearer a;b", "Bearer \xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(aud_auth_bearer(bad[i], &t, &n), HL_EAUTH);
    char longtok[AUD_TOKEN_MAX + 16] = "Bearer ";
    memset(longtok + 7, 'a', AUD_TOKEN_MAX + 1);
    longtok[7 + AUD_TOKEN_MAX + 1] = '\0';
    assert_int_equal(aud_auth_bearer(longtok, &t, &n), HL_EAUTH);
}

static void test_tokens(void **state)
{
    (void)state;
    aud_tokens_t t = {NULL, 0};
    assert_int_equal(aud_tokens_add(&t, "a", TOK_A_HASH, AUD_ROLE_AUDITOR), 0);
    assert_int_equal(aud_tokens_add(&t, "bad", "xyz", AUD_ROLE_ADMIN), HL_EINVAL);
    assert_int_equal(aud_tokens_add(&t, "noroles", TOK_A_HASH, 0), HL_EINVAL);
    assert_int_equal(aud_tokens_roles(&t, "tok-a", 5), AUD_ROLE_AUDITOR);
    assert_int_equal(aud_tokens_roles(&t, "tok-b", 5), 0u);
    aud_tokens_free(&t);
}

static void test_lookup_real_hash(void **state)
{
    (void)state;
    aud_tokens_t t = {NULL, 0};
    /* sha256("hello") */
    assert_int_equal(
        aud_tokens_add(&t, "h", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                       AUD_ROLE_ADMIN | AUD_ROLE_METRICS),
        0);
    assert_int_equal(aud_tokens_roles(&t, "hello", 5), AUD_ROLE_ADMIN | AUD_ROLE_METRICS);
    assert_int_equal(aud_tokens_roles(&t, "hellO", 5), 0u);
    assert_int_equal(aud_tokens_roles(&t, "hell", 4), 0u);
    aud_tokens_free(&t);
    aud_tokens_free(NULL);
}

static void test_matrix(void **state)
{
    (void)state;
    int known;
    assert_int_equal(aud_auth_required("GET", "/healthz", &known), 0u);
    assert_true(known);
    assert_int_equal(aud_auth_required("POST", "/v1/checkpoints", &known), AUD_ROLE_ADMIN);
    assert_int_equal(aud_auth_required("GET", "/v1/checkpoints", &known),
                     AUD_ROLE_ADMIN | AUD_ROLE_AUDITOR);
    assert_int_equal(aud_auth_required("GET", "/metrics", &known),
                     AUD_ROLE_ADMIN | AUD_ROLE_METRICS);
    assert_int_equal(aud_auth_required("GET", "/v1/requests/abc", &known),
                     AUD_ROLE_ADMIN | AUD_ROLE_AUDITOR);
    (void)aud_auth_required("GET", "/v1/requests/", &known);
    assert_false(known);
    (void)aud_auth_required("DELETE", "/v1/gaps", &known);
    assert_false(known);
    assert_int_equal(aud_role_parse("admin"), AUD_ROLE_ADMIN);
    assert_int_equal(aud_role_parse("root"), 0u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_lookup_real_hash),
        cmocka_unit_test(test_matrix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
