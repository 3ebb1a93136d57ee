/* Unit tests of the batch splitter (services/ingress/split.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "split.h"

static ing_field_src_t k_mid = {"/sg_event_id", NULL, ING_MAX_MESSAGE_ID};
static ing_field_src_t k_type = {"/event", NULL, ING_MAX_EVENT_TYPE};

/* Splits text; returns the result, with the elements in *e (freed by the caller). */
static ing_split_result_t split_text(const char *text, ing_split_elem_t **e, size_t *n,
                                     ing_ex_result_t *field, size_t *bad)
{
    json_t *root = NULL;
    assert_int_equal(ing_json_parse((const unsigned char *)text, strlen(text), &root), ING_EX_OK);
    ing_split_result_t r = ing_split(root, &k_mid, &k_type, NULL, e, n, field, bad);
    json_decref(root);
    return r;
}

static void test_split_elements(void **state)
{
    ing_split_elem_t *e = NULL;
    size_t n = 0, bad = 0;
    ing_ex_result_t field = ING_EX_OK;
    const char *text = "[{\"sg_event_id\":\"a\",\"event\":\"open\",\"z\":1,\"b\":[true,null]},"
                       "{\"event\":\"click\",\"sg_event_id\":\"b\"}]";
    assert_int_equal(split_text(text, &e, &n, &field, &bad), ING_SPLIT_OK);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].message_id, "a");
    assert_string_equal(e[0].event_type, "open");
    assert_string_equal(e[0].json,
                        "{\"sg_event_id\":\"a\",\"event\":\"open\",\"z\":1,\"b\":[true,null]}");
    assert_int_equal(e[0].len, strlen(e[0].json));
    assert_string_equal(e[1].message_id, "b");
    assert_string_equal(e[1].json, "{\"event\":\"click\",\"sg_event_id\":\"b\"}");
    ing_split_free(e, n);
    ing_split_free(NULL, 0); /* NULL-safe */
}

static void test_split_refusals(void **state)
{
    ing_split_elem_t *e = NULL;
    size_t n = 0, bad = 0;
    ing_ex_result_t field = ING_EX_OK;
    assert_int_equal(split_text("{\"sg_event_id\":\"a\",\"event\":\"e\"}", &e, &n, &field, &bad),
                     ING_SPLIT_NOT_ARRAY);
    assert_null(e);
    assert_string_equal(ing_split_code(ING_SPLIT_NOT_ARRAY, field), "not_an_array");
    assert_int_equal(split_text("[]", &e, &n, &field, &bad), ING_SPLIT_EMPTY);
    assert_string_equal(ing_split_code(ING_SPLIT_EMPTY, field), "empty_batch");
    assert_int_equal(split_text("[{\"sg_event_id\":\"a\",\"event\":\"e\"},{\"event\":\"e\"}]", &e,
                                &n, &field, &bad),
                     ING_SPLIT_FIELD);
    assert_null(e);
    assert_int_equal(n, 0);
    assert_int_equal(bad, 1);
    assert_int_equal(field, ING_EX_MISSING);
    assert_string_equal(ing_split_code(ING_SPLIT_FIELD, field), "missing_field");
    assert_int_equal(split_text("[{\"sg_event_id\":\"a\"}]", &e, &n, &field, &bad),
                     ING_SPLIT_FIELD);
    assert_int_equal(bad, 0);
    assert_null(ing_split_code(ING_SPLIT_OK, ING_EX_OK));
}

/* ING_SPLIT_MAX elements are taken, one more is refused before any element is read. */
static void test_split_bound(void **state)
{
    size_t cap = (ING_SPLIT_MAX + 1) * 40 + 8;
    char *text = malloc(cap);
    size_t o = 0;
    text[o++] = '[';
    for (int i = 0; i < ING_SPLIT_MAX; i++)
        o += (size_t)snprintf(text + o, cap - o, "%s{\"sg_event_id\":\"%d\",\"event\":\"e\"}",
                              i ? "," : "", i);
    text[o] = ']';
    text[o + 1] = '\0';
    ing_split_elem_t *e = NULL;
    size_t n = 0, bad = 0;
    ing_ex_result_t field = ING_EX_OK;
    assert_int_equal(split_text(text, &e, &n, &field, &bad), ING_SPLIT_OK);
    assert_int_equal(n, ING_SPLIT_MAX);
    assert_string_equal(e[ING_SPLIT_MAX - 1].message_id, "999");
    ing_split_free(e, n);
    snprintf(text + o, cap - o, ",{}]");
    assert_int_equal(split_text(text, &e, &n, &field, &bad), ING_SPLIT_TOO_MANY);
    assert_null(e);
    assert_string_equal(ing_split_code(ING_SPLIT_TOO_MANY, field), "too_many_elements");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_elements),
        cmocka_unit_test(test_split_refusals),
        cmocka_unit_test(test_split_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
