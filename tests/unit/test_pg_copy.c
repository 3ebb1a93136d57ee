/* Unit tests for hl_pg's binary wire encoding: every value length-prefixed and verbatim (no
 * escapes), NULL as -1, the COPY header and trailer, array headers, and the values a text or
 * uuid field cannot hold refused without a byte appended. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hl/pg.h"

static void test_text_goes_verbatim(void **state)
{
    /* Tab, newline, backslash and carriage return are what text COPY would escape. */
    static const char s[] = "a\tb\nc\\d\re";
    hl_buf_t b = {0};
    assert_int_equal(hl_pg_enc_text(&b, s, sizeof(s) - 1), 0);
    assert_int_equal(b.len, 4 + sizeof(s) - 1);
    assert_int_equal(hl_pg_get32(b.p), sizeof(s) - 1);
    assert_memory_equal(b.p + 4, s, sizeof(s) - 1);
    /* Non-ASCII bytes pass as they are: the server checks them against the client encoding. */
    static const char u[] = "caf\xc3\xa9 \xe2\x82\xac";
    b.len = 0;
    assert_int_equal(hl_pg_enc_text(&b, u, sizeof(u) - 1), 0);
    assert_memory_equal(b.p + 4, u, sizeof(u) - 1);
    /* The empty string is a zero-length value, not NULL. */
    b.len = 0;
    assert_int_equal(hl_pg_enc_text(&b, "", 0), 0);
    assert_int_equal(b.len, 4);
    assert_int_equal(hl_pg_get32(b.p), 0);
    free(b.p);
}

static void test_nul_byte_refused(void **state)
{
    hl_buf_t b = {0};
    hl_pg_put32(&b, 7);
    assert_int_equal(hl_pg_enc_text(&b, "ab\0cd", 5), HL_EINVAL);
    assert_int_equal(hl_pg_enc_jsonb(&b, "{\"a\":\0}", 7), HL_EINVAL);
    assert_int_equal(b.len, 4); /* nothing appended */
    free(b.p);
}

static void test_null_bytea_and_numbers(void **state)
{
    hl_buf_t b = {0};
    hl_pg_enc_null(&b);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.p, "\xff\xff\xff\xff", 4);
    /* bytea holds any byte, NUL and 0xff included. */
    b.len = 0;
    hl_pg_enc_bytea(&b, "\0\xff\0", 3);
    assert_int_equal(hl_pg_get32(b.p), 3);
    assert_memory_equal(b.p + 4, "\0\xff\0", 3);
    b.len = 0;
    hl_pg_enc_int4(&b, -2);
    assert_int_equal(hl_pg_get32(b.p), 4);
    assert_memory_equal(b.p + 4, "\xff\xff\xff\xfe", 4);
    b.len = 0;
    hl_pg_enc_int8(&b, 0x0102030405060708LL);
    assert_int_equal(hl_pg_get32(b.p), 8);
    assert_true(hl_pg_get64(b.p + 4) == 0x0102030405060708LL);
    b.len = 0;
    hl_pg_enc_timestamptz(&b, HL_PG_EPOCH_US - 1); /* a microsecond before 2000 */
    assert_true(hl_pg_get64(b.p + 4) == -1);
    free(b.p);
}

static void test_jsonb_version_byte(void **state)
{
    hl_buf_t b = {0};
    assert_int_equal(hl_pg_enc_jsonb(&b, "{}", 2), 0);
    assert_int_equal(hl_pg_get32(b.p), 3);
    assert_int_equal(b.p[4], 1);
    assert_memory_equal(b.p + 5, "{}", 2);
    free(b.p);
}

static void test_uuid(void **state)
{
    hl_buf_t b = {0};
    assert_int_equal(hl_pg_enc_uuid(&b, "0190F5a2-7b3c-7def-8a12-3456789abcd0"), 0);
    assert_int_equal(hl_pg_get32(b.p), 16);
    const unsigned char *u = (const unsigned char *)b.p + 4;
    assert_int_equal(u[0], 0x01);
    assert_int_equal(u[1], 0x90);
    assert_int_equal(u[2], 0xf5);
    assert_int_equal(u[15], 0xd0);
    static const char *const bad[] = {
        "",
        "0190f5a2-7b3c-7def-8a12-3456789abcd",   /* short */
        "0190f5a2-7b3c-7def-8a12-3456789abcd00", /* long */
        "0190f5a2x7b3c-7def-8a12-3456789abcd0",  /* no dash */
        "0190f5a2-7b3c-7def-8a12-3456789abcdg",  /* not hex */
        "0190f5a2-7b3c-7def-8a1-23456789abcd0",  /* dash misplaced */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b.len = 0;
        if (hl_pg_enc_uuid(&b, bad[i]) != HL_EINVAL || b.len != 0)
            fail_msg("uuid '%s' should be refused", bad[i]);
    }
    free(b.p);
}

static void test_array_header(void **state)
{
    hl_buf_t b = {0};
    hl_pg_put32(&b, 99); /* starting an array empties the buffer */
    hl_pg_array_begin(&b, HL_PG_OID_INT4, 2);
    assert_int_equal(b.len, 20);
    assert_int_equal(hl_pg_get32(b.p), 1);     /* one dimension */
    assert_int_equal(hl_pg_get32(b.p + 4), 0); /* has-null flag */
    assert_int_equal(hl_pg_get32(b.p + 8), HL_PG_OID_INT4);
    assert_int_equal(hl_pg_get32(b.p + 12), 2); /* elements */
    assert_int_equal(hl_pg_get32(b.p + 16), 1); /* lower bound */
    hl_pg_array_begin(&b, HL_PG_OID_TEXT, 0);
    assert_int_equal(b.len, 12); /* empty: zero dimensions, no bounds */
    assert_int_equal(hl_pg_get32(b.p), 0);
    free(b.p);
}

static void test_copy_frame(void **state)
{
    hl_buf_t b = {0};
    hl_pg_copy_begin(&b);
    assert_int_equal(b.len, 19);
    assert_memory_equal(b.p, "PGCOPY\n\377\r\n\0", 11);
    assert_int_equal(hl_pg_get32(b.p + 11), 0);
    assert_int_equal(hl_pg_get32(b.p + 15), 0);
    hl_pg_copy_tuple(&b, 2);
    hl_pg_enc_null(&b);
    assert_int_equal(hl_pg_enc_text(&b, "x", 1), 0);
    hl_pg_copy_end(&b);
    assert_int_equal(b.len, 19 + 2 + 4 + 5 + 2);
    assert_memory_equal(b.p + 19, "\0\2", 2);
    assert_memory_equal(b.p + b.len - 2, "\xff\xff", 2);
    /* Beginning again starts a fresh stream in the same buffer. */
    hl_pg_copy_begin(&b);
    assert_int_equal(b.len, 19);
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_goes_verbatim),
        cmocka_unit_test(test_nul_byte_refused),
        cmocka_unit_test(test_null_bytea_and_numbers),
        cmocka_unit_test(test_jsonb_version_byte),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_array_header),
        cmocka_unit_test(test_copy_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
