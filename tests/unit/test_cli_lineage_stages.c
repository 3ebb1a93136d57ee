/* The CLI's reading of stage names in the auditor's lineage answers: the stages found anywhere
 * in an answer, as bits, and nothing for what is not a stage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "verify_lineage.h"

static unsigned stages_of(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    unsigned bits = cli_lineage_stages(j);
    json_decref(j);
    return bits;
}

static void test_stages(void **state)
{
    assert_int_equal(stages_of("{\"stage\":\"ingress\"}"), 1);
    assert_int_equal(stages_of("{\"lineage\":[{\"stage\":\"persisted\"},{\"x\":{\"stage\":"
                               "\"dead_lettered\"}}]}"),
                     6);
    assert_int_equal(stages_of("[{\"stage\":\"ingress\"},{\"stage\":\"persisted\"}]"), 3);
}

static void test_not_stages(void **state)
{
    assert_int_equal(stages_of("{\"stage\":\"Ingress\"}"), 0);
    assert_int_equal(stages_of("{\"stage\":1,\"status\":\"persisted\"}"), 0);
    assert_int_equal(stages_of("[\"ingress\",null,{\"stage\":null}]"), 0);
    assert_int_equal(cli_lineage_stages(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stages),
        cmocka_unit_test(test_not_stages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
