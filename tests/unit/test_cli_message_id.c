/* The replay computes the message id the ingress will compute: for the same body and pointer,
 * hookline's ndjson reader (tools/hookline/workload.c) and the ingress's field extraction
 * (services/ingress/extract.c) agree on the id, and both refuse the same pointers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extract.h"
#include "workload.h"

/* The body every case reads: an array where a leading zero would alias index 1. */
static const char body[] = "{\"ids\":[\"first\",\"second\"],\"a/b\":{\"m~n\":\"escaped\"},"
                           "\"nested\":{\"messageId\":\"deep\"},\"n\":7,\"empty\":\"\"}";

/* The replay's id for pointer ptr, or NULL when the reader refuses the line (caller frees). */
static char *replay_id(const char *ptr)
{
    char path[] = "/tmp/hl-cli-mid-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    json_t *line = json_pack("{s:s}", "body", body);
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    free(text);
    close(fd);
    cli_workload_t w = {0};
    char err[256];
    cli_wl_input_opts_t io = {.msg_ptr = ptr, .type_ptr = "/eventType"};
    int rc = cli_wl_read_ndjson(path, &io, &w, err, sizeof(err));
    unlink(path);
    if (rc != 0) {
        assert_int_equal(rc, HL_EPARSE);
        assert_non_null(strstr(err, "no message id at the pointer"));
        return NULL;
    }
    assert_int_equal(w.nmsgs, 1);
    char *id = strdup(w.msgs[0].message_id);
    cli_wl_free(&w);
    return id;
}

/* The ingress's id for pointer ptr, or NULL when it answers missing_field / invalid_field. */
static char *ingress_id(const char *ptr)
{
    json_t *root = NULL;
    assert_int_equal(ing_json_parse((const unsigned char *)body, strlen(body), &root), ING_EX_OK);
    ing_field_src_t src = {(char *)ptr, NULL, ING_MAX_MESSAGE_ID};
    char out[ING_MAX_MESSAGE_ID + 1];
    ing_ex_result_t r = ing_field_get(&src, root, NULL, out, sizeof(out));
    json_decref(root);
    return r == ING_EX_OK ? strdup(out) : NULL;
}

static void same_id(const char *ptr, const char *want)
{
    char *a = replay_id(ptr), *b = ingress_id(ptr);
    if (want == NULL) {
        if (a != NULL || b != NULL)
            fail_msg("%s: replay '%s', ingress '%s', want both refused", ptr, a ? a : "(none)",
                     b ? b : "(none)");
    } else {
        if (a == NULL || b == NULL || strcmp(a, want) != 0 || strcmp(b, want) != 0)
            fail_msg("%s: replay '%s', ingress '%s', want '%s'", ptr, a ? a : "(none)",
                     b ? b : "(none)", want);
    }
    free(a);
    free(b);
}

static void test_same_id(void **state)
{
    (void)state;
    same_id("/ids/0", "first");
    same_id("/ids/1", "second");
    same_id("/a~1b/m~0n", "escaped");
    same_id("/nested/messageId", "deep");
}

static void test_both_refuse(void **state)
{
    (void)state;
    same_id("/ids/01", NULL); /* a leading zero is not index 1 */
    same_id("/ids/-", NULL);
    same_id("/ids/2", NULL);
    same_id("/ids/+1", NULL);
    same_id("/a~2b/m~0n", NULL);
    same_id("ids/0", NULL);
    same_id("/n", NULL); /* a number is not an id */
    same_id("/empty", NULL);
    same_id("/missing", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_id),
        cmocka_unit_test(test_both_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
