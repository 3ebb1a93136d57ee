/* The shared RFC 6901 resolver (libs/common/src/jsonptr.c): the examples of the RFC, and the
 * pointers it refuses (a leading zero, "~2", no leading '/', an index out of range, "-"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "hl/jsonptr.h"

static json_t *doc_new(void)
{
    /* The document of RFC 6901 section 5. */
    json_t *doc = json_loads("{\"foo\":[\"bar\",\"baz\"],\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,"
                             "\"g|h\":4,\"i\\\\j\":5,\"k\\\"l\":6,\" \":7,\"m~n\":8}",
                             JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(doc);
    return doc;
}

static void test_rfc_examples(void **state)
{
    (void)state;
    json_t *doc = doc_new();
    assert_ptr_equal(hl_jsonptr_get(doc, ""), doc);
    assert_string_equal(json_string_value(hl_jsonptr_get(doc, "/foo/0")), "bar");
    assert_string_equal(json_string_value(hl_jsonptr_get(doc, "/foo/1")), "baz");
    assert_int_equal(json_integer_value(hl_jsonptr_get(doc, "/")), 0);
    assert_int_equal(json_integer_value(hl_jsonptr_get(doc, "/a~1b")), 1);
    assert_int_equal(json_integer_value(hl_jsonptr_get(doc, "/c%d")), 2);
    assert_int_equal(json_integer_value(hl_jsonptr_get(doc, "/i\\j")), 5);
    assert_int_equal(json_integer_value(hl_jsonptr_get(doc, "/k\"l")), 6);
    assert_int_equal(json_integer_value(hl_jsonptr_get(doc, "/ ")), 7);
    assert_int_equal(json_integer_value(hl_jsonptr_get(doc, "/m~0n")), 8);
    json_decref(doc);
}

static void test_nested(void **state)
{
    (void)state;
    json_t *j = json_loads("{\"a\":{\"b/c\":[10,{\"m~n\":\"v\"}]},\"\":1}", 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(hl_jsonptr_get(j, "/a/b~1c/1/m~0n")), "v");
    assert_int_equal(json_integer_value(hl_jsonptr_get(j, "/a/b~1c/0")), 10);
    assert_null(hl_jsonptr_get(j, "/a/b~1c/x"));
    assert_null(hl_jsonptr_get(j, "/missing"));
    json_decref(j);
}

static void test_bad_pointers(void **state)
{
    (void)state;
    json_t *doc = doc_new();
    assert_null(hl_jsonptr_get(doc, "/foo/01")); /* leading zero */
    assert_null(hl_jsonptr_get(doc, "/foo/00"));
    assert_null(hl_jsonptr_get(doc, "/foo/+1")); /* sign */
    assert_null(hl_jsonptr_get(doc, "/foo/ 1"));
    assert_null(hl_jsonptr_get(doc, "/foo/2")); /* out of range */
    assert_null(hl_jsonptr_get(doc, "/foo/4294967296"));
    assert_null(hl_jsonptr_get(doc, "/foo/-"));   /* the element after the last */
    assert_null(hl_jsonptr_get(doc, "/foo/"));    /* empty index */
    assert_null(hl_jsonptr_get(doc, "/foo/0/x")); /* through a string */
    assert_null(hl_jsonptr_get(doc, "/nope"));
    assert_null(hl_jsonptr_get(doc, "/m~2n")); /* "~2" is no escape */
    assert_null(hl_jsonptr_get(doc, "/m~"));
    assert_null(hl_jsonptr_get(doc, "foo")); /* no leading '/' */
    assert_null(hl_jsonptr_get(doc, NULL));
    assert_null(hl_jsonptr_get(NULL, "/foo"));
    json_decref(doc);
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(hl_jsonptr_valid(""));
    assert_true(hl_jsonptr_valid("/"));
    assert_true(hl_jsonptr_valid("/a~0~1"));
    assert_false(hl_jsonptr_valid(NULL));
    assert_false(hl_jsonptr_valid("a"));
    assert_false(hl_jsonptr_valid("/a~"));
    assert_false(hl_jsonptr_valid("/a~2"));
    assert_false(hl_jsonptr_valid("/a~/b"));
}

static void test_token_cap(void **state)
{
    (void)state;
    /* A key of exactly the cap resolves; one byte more resolves to nothing. */
    char key[HL_JSONPTR_MAX_TOKEN + 2], ptr[HL_JSONPTR_MAX_TOKEN + 3];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    json_t *o = json_object();
    json_object_set_new(o, key, json_integer(2));
    key[HL_JSONPTR_MAX_TOKEN] = '\0';
    json_object_set_new(o, key, json_integer(1));
    ptr[0] = '/';
    memcpy(ptr + 1, key, HL_JSONPTR_MAX_TOKEN + 1);
    assert_int_equal(json_integer_value(hl_jsonptr_get(o, ptr)), 1);
    ptr[HL_JSONPTR_MAX_TOKEN + 1] = 'k';
    ptr[HL_JSONPTR_MAX_TOKEN + 2] = '\0';
    assert_null(hl_jsonptr_get(o, ptr));
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples), cmocka_unit_test(test_nested),
        cmocka_unit_test(test_bad_pointers), cmocka_unit_test(test_valid),
        cmocka_unit_test(test_token_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
