/* Body validation and field extraction: RFC 6901 pointers, depth cap, duplicate keys, field
 * caps, header sources, content types and traceparent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "extract.h"

static json_t *parse(const char *s)
{
    json_t *root = NULL;
    assert_int_equal(ing_json_parse((const unsigned char *)s, strlen(s), &root), ING_EX_OK);
    return root;
}

static void test_pointer(void **state)
{
    (void)state;
    /* The resolver is hl/jsonptr.h's (tests/unit/test_jsonptr.c); here the configuration's
     * syntax check, which must agree with it. */
    assert_false(ing_pointer_valid("a"));
    assert_false(ing_pointer_valid("/a~"));
    assert_true(ing_pointer_valid("/a~0~1"));
}

static void test_json_rejects(void **state)
{
    json_t *root = NULL;
    const char *bad[] = {"",
                         "{",
                         "{\"a\":1,\"a\":2}",
                         "not json",
                         "{\"a\":\"\xff\"}",
                         "{} {}",
                         "{\"a\":\"x\\u0000y\"}",
                         "\"scalar\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ing_json_parse((const unsigned char *)bad[i], strlen(bad[i]), &root),
                         ING_EX_INVALID_JSON);
        assert_null(root);
    }
    /* Depth: 64 levels pass, 65 do not; brackets inside strings do not count. */
    char deep[256];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    assert_int_equal(ing_json_parse((const unsigned char *)deep, 130, &root), ING_EX_INVALID_JSON);
    assert_int_equal(ing_json_parse((const unsigned char *)deep + 1, 128, &root), ING_EX_OK);
    json_decref(root);
    const char *str =
        "{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}";
    assert_true(ing_json_depth_ok((const unsigned char *)str, strlen(str), 2));
}

static void test_fields(void **state)
{
    json_t *doc =
        parse("{\"messageId\":\"m-1\",\"eventType\":\"a.b\",\"n\":5,\"e\":\"\",\"z\":null,"
              "\"data\":{\"id\":\"inner\"}}");
    char out[ING_MAX_MESSAGE_ID + 1];
    ing_field_src_t f = {"/messageId", NULL, ING_MAX_MESSAGE_ID};
    assert_int_equal(ing_field_get(&f, doc, NULL, out, sizeof(out)), ING_EX_OK);
    assert_string_equal(out, "m-1");
    f.pointer = "/data/id";
    assert_int_equal(ing_field_get(&f, doc, NULL, out, sizeof(out)), ING_EX_OK);
    assert_string_equal(out, "inner");
    f.pointer = "/n";
    assert_int_equal(ing_field_get(&f, doc, NULL, out, sizeof(out)), ING_EX_INVALID);
    f.pointer = "/e";
    assert_int_equal(ing_field_get(&f, doc, NULL, out, sizeof(out)), ING_EX_INVALID);
    f.pointer = "/z";
    assert_int_equal(ing_field_get(&f, doc, NULL, out, sizeof(out)), ING_EX_MISSING);
    f.pointer = "/absent";
    assert_int_equal(ing_field_get(&f, doc, NULL, out, sizeof(out)), ING_EX_MISSING);
    json_decref(doc);

    /* Length caps: exactly at the cap passes, one byte more is refused. */
    char body[600], id[300];
    memset(id, 'x', 257);
    id[256] = '\0';
    snprintf(body, sizeof(body), "{\"messageId\":\"%s\"}", id);
    doc = parse(body);
    f.pointer = "/messageId";
    assert_int_equal(ing_field_get(&f, doc, NULL, out, sizeof(out)), ING_EX_OK);
    json_decref(doc);
    id[256] = 'x';
    id[257] = '\0';
    snprintf(body, sizeof(body), "{\"messageId\":\"%s\"}", id);
    doc = parse(body);
    assert_int_equal(ing_field_get(&f, doc, NULL, out, sizeof(out)), ING_EX_TOO_LONG);
    json_decref(doc);

    /* Header sources. */
    hl_sig_header_t hv[] = {
        {"Webhook-Id", "msg_1"}, {"X-Twice", "a"}, {"x-twice", "b"}, {"X-Empty", ""}};
    hl_sig_headers_t h = {hv, 4};
    ing_field_src_t hf = {NULL, "webhook-id", ING_MAX_MESSAGE_ID};
    assert_int_equal(ing_field_get(&hf, NULL, &h, out, sizeof(out)), ING_EX_OK);
    assert_string_equal(out, "msg_1");
    hf.header = "x-twice";
    assert_int_equal(ing_field_get(&hf, NULL, &h, out, sizeof(out)), ING_EX_INVALID);
    hf.header = "x-empty";
    assert_int_equal(ing_field_get(&hf, NULL, &h, out, sizeof(out)), ING_EX_INVALID);
    hf.header = "x-none";
    assert_int_equal(ing_field_get(&hf, NULL, &h, out, sizeof(out)), ING_EX_MISSING);
    assert_string_equal(ing_ex_code(ING_EX_MISSING), "missing_field");
    assert_string_equal(ing_ex_code(ING_EX_INVALID_JSON), "invalid_json");
}

static void test_content_type(void **state)
{
    assert_true(ing_content_type_json("application/json"));
    assert_true(ing_content_type_json("Application/JSON; charset=utf-8"));
    assert_true(ing_content_type_json("application/cloudevents+json"));
    assert_false(ing_content_type_json("application/jsonx"));
    assert_false(ing_content_type_json("text/plain"));
    assert_false(ing_content_type_json("application/x-www-form-urlencoded"));
    assert_false(ing_content_type_json("application/+json"));
    assert_false(ing_content_type_json(""));
    assert_false(ing_content_type_json(NULL));
}

static void test_traceparent(void **state)
{
    assert_true(ing_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_false(ing_traceparent_valid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
    assert_false(ing_traceparent_valid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_false(ing_traceparent_valid("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    assert_false(ing_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    assert_false(ing_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"));
    assert_false(
        ing_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"));
    assert_false(ing_traceparent_valid(NULL));
    char tp[ING_TRACEPARENT_LEN + 1], tp2[ING_TRACEPARENT_LEN + 1];
    ing_traceparent_new(tp);
    ing_traceparent_new(tp2);
    assert_true(ing_traceparent_valid(tp));
    assert_string_not_equal(tp, tp2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pointer),     cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_fields),      cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_traceparent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
