/* The lineage hash definition: fixed vectors (computed independently) and sensitivity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "chain.h"

static const char *rec1 = "{\"v\":1}";
static const char *rec2 = "{\"x\":\"\n\"}";

static void hash_of(const unsigned char *prev, const aud_chain_row_t *row, char *hex)
{
    unsigned char h[AUD_CHAIN_HASH_LEN];
    assert_int_equal(aud_chain_hash(prev, row, h), 0);
    aud_chain_hex(h, hex);
}

static void test_vectors(void **state)
{
    (void)state;
    unsigned char zero[AUD_CHAIN_HASH_LEN] = {0}, h1[AUD_CHAIN_HASH_LEN];
    char hex[65];
    aud_chain_row_t r1 = {2,         1,
                          17,        "0190a0a0-0000-7000-8000-000000000001",
                          "ingress", INT64_C(1700000000000000),
                          rec1,      strlen(rec1)};
    hash_of(zero, &r1, hex);
    assert_string_equal(hex, "3964e72ad718a9a0c5f18ba2b686002fbe5f7e4d414aeb703062b896369d61c0");
    assert_int_equal(aud_chain_unhex(hex, h1), 0);
    aud_chain_row_t r2 = {2,    2,           18, "r2", "persisted", INT64_C(1700000000000001),
                          rec2, strlen(rec2)};
    hash_of(h1, &r2, hex);
    assert_string_equal(hex, "9bea97e9f00410f0dcff0a5b4fb3422b83063ed2ce58ba6211363e533d8fe6f5");
}

static void test_every_field_counts(void **state)
{
    (void)state;
    unsigned char zero[AUD_CHAIN_HASH_LEN] = {0}, other[AUD_CHAIN_HASH_LEN] = {1};
    char base[65], hex[65];
    aud_chain_row_t r = {0, 5, 9, "rid", "ingress", 42, rec1, strlen(rec1)};
    hash_of(zero, &r, base);
    aud_chain_row_t v[] = {
        {1, 5, 9, "rid", "ingress", 42, rec1, strlen(rec1)},
        {0, 6, 9, "rid", "ingress", 42, rec1, strlen(rec1)},
        {0, 5, 10, "rid", "ingress", 42, rec1, strlen(rec1)},
        {0, 5, 9, "riD", "ingress", 42, rec1, strlen(rec1)},
        {0, 5, 9, "rid", "persisted", 42, rec1, strlen(rec1)},
        {0, 5, 9, "rid", "ingress", 43, rec1, strlen(rec1)},
        {0, 5, 9, "rid", "ingress", 42, rec2, strlen(rec2)},
        {0, 5, 9, "rid", "ingress", 42, rec1, strlen(rec1) - 1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hash_of(zero, &v[i], hex);
        assert_string_not_equal(hex, base);
    }
    hash_of(other, &r, hex);
    assert_string_not_equal(hex, base);
}

static void test_unhex_rejects(void **state)
{
    (void)state;
    unsigned char h[AUD_CHAIN_HASH_LEN];
    char ok[65];
    memset(ok, 'a', 64);
    ok[64] = '\0';
    assert_int_equal(aud_chain_unhex(ok, h), 0);
    ok[10] = 'g';
    assert_int_equal(aud_chain_unhex(ok, h), HL_EPARSE);
    assert_int_equal(aud_chain_unhex("abcd", h), HL_EPARSE);
    assert_int_equal(aud_chain_unhex(NULL, h), HL_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_every_field_counts),
        cmocka_unit_test(test_unhex_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
