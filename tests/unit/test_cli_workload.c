/* Unit tests of the replay workload: determinism of the synthetic generator, its shape and
 * caps, the ndjson reader with good and bad input (its pointers: test_cli_message_id.c). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ledger.h"
#include "workload.h"

static cli_wl_synth_opts_t base(void)
{
    return (cli_wl_synth_opts_t){.seed = 7,
                                 .count = 30,
                                 .events_per_message = 3,
                                 .duplicate_ratio = 0.2,
                                 .payload_bytes = 300,
                                 .run_id = "t"};
}

static void test_same_seed_same_bytes(void **state)
{
    (void)state;
    cli_wl_synth_opts_t o = base();
    cli_workload_t a = {0}, b = {0}, c = {0};
    char err[256];
    assert_int_equal(cli_wl_synth(&o, &a, err, sizeof(err)), 0);
    assert_int_equal(cli_wl_synth(&o, &b, err, sizeof(err)), 0);
    o.seed = 8;
    assert_int_equal(cli_wl_synth(&o, &c, err, sizeof(err)), 0);
    assert_int_equal(a.nreqs, b.nreqs);
    int differs = 0;
    for (size_t m = 0; m < a.nmsgs; m++) {
        assert_string_equal(a.msgs[m].message_id, b.msgs[m].message_id);
        assert_int_equal(a.msgs[m].nreqs, b.msgs[m].nreqs);
        for (size_t i = 0; i < a.msgs[m].nreqs; i++) {
            assert_int_equal(a.msgs[m].reqs[i].body_len, b.msgs[m].reqs[i].body_len);
            assert_memory_equal(a.msgs[m].reqs[i].body, b.msgs[m].reqs[i].body,
                                a.msgs[m].reqs[i].body_len);
        }
        if (strcmp(a.msgs[m].reqs[0].body, c.msgs[m].reqs[0].body) != 0) differs = 1;
    }
    assert_true(differs);
    cli_wl_free(&a);
    cli_wl_free(&b);
    cli_wl_free(&c);
}

static void test_shape(void **state)
{
    (void)state;
    cli_wl_synth_opts_t o = base();
    o.count = 10;
    o.duplicate_ratio = 0;
    cli_workload_t w = {0};
    char err[256];
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), 0);
    assert_int_equal(w.nmsgs, 4); /* 3 + 3 + 3 + 1 */
    assert_int_equal(w.nreqs, 10);
    assert_int_equal(w.ndups, 0);
    assert_int_equal(w.msgs[3].nreqs, 1);
    const char *order[] = {"processed", "delivered", "open"};
    for (size_t m = 0; m < 3; m++)
        for (size_t i = 0; i < 3; i++) {
            cli_wl_req_t *r = &w.msgs[m].reqs[i];
            assert_string_equal(r->event_type, order[i]);
            assert_int_equal(r->body_len, 300);
            assert_string_equal(r->delivery_id, w.msgs[m].message_id);
            json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
            assert_non_null(j);
            assert_string_equal(json_string_value(json_object_get(j, "messageId")),
                                w.msgs[m].message_id);
            assert_string_equal(json_string_value(json_object_get(j, "eventType")), order[i]);
            assert_string_equal(json_string_value(json_object_get(j, "type")), order[i]);
            json_decref(j);
        }
    assert_string_equal(w.msgs[0].message_id, "t-7-m0");
    cli_wl_free(&w);
}

static void test_duplicates(void **state)
{
    (void)state;
    cli_wl_synth_opts_t o = base();
    o.duplicate_ratio = 1.0;
    cli_workload_t w = {0};
    char err[256];
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), 0);
    assert_int_equal(w.ndups, 30);
    /* Each duplicate directly follows its original and shares its bytes and delivery id. */
    for (size_t i = 0; i < w.msgs[0].nreqs; i += 2) {
        cli_wl_req_t *a = &w.msgs[0].reqs[i], *d = &w.msgs[0].reqs[i + 1];
        assert_int_equal(a->dup_of, -1);
        assert_int_equal(d->dup_of, (int)i);
        assert_ptr_equal(a->body, d->body);
        assert_string_equal(a->event_type, d->event_type);
    }
    cli_wl_free(&w);
    o.count = 30000;
    o.payload_bytes = 0;
    o.duplicate_ratio = 0.05;
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), 0);
    assert_in_range(w.ndups, 1300, 1700);
    assert_int_equal(w.nmsgs, 10000);
    cli_wl_free(&w);
}

static void test_caps(void **state)
{
    (void)state;
    cli_workload_t w = {0};
    char err[256];
    cli_wl_synth_opts_t o = base();
    o.count = 0;
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), HL_EINVAL);
    o = base();
    o.events_per_message = 65;
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), HL_EINVAL);
    o = base();
    o.duplicate_ratio = 1.5;
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), HL_EINVAL);
    o = base();
    o.payload_bytes = (1u << 20) + 1;
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), HL_ETOOBIG);
    o = base();
    o.count = 5000000;
    o.payload_bytes = 1u << 20;
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), HL_ETOOBIG);
    assert_non_null(strstr(err, "1 GiB"));
    assert_null(w.msgs);
}

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/hl-cli-wl-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void test_ndjson_good(void **state)
{
    (void)state;
    const char *text = "{\"headers\":{\"Content-Type\":\"application/json\",\"webhook-id\":\"d1\"},"
                       "\"body\":\"{\\\"messageId\\\":\\\"a\\\",\\\"eventType\\\":\\\"x\\\"}\"}\n"
                       "\n"
                       "{\"body\":{\"messageId\":\"b\",\"eventType\":\"y\"}}\n"
                       "{\"headers\":{\"Content-Length\":\"99\"},\"body\":{\"messageId\":\"a\","
                       "\"eventType\":\"z\"}}\n";
    char *p = write_tmp(text);
    cli_workload_t w = {0};
    char err[256];
    cli_wl_input_opts_t io = {.msg_ptr = "/messageId", .type_ptr = "/eventType"};
    assert_int_equal(cli_wl_read_ndjson(p, &io, &w, err, sizeof(err)), 0);
    assert_int_equal(w.nmsgs, 2);
    assert_int_equal(w.nreqs, 3);
    assert_string_equal(w.msgs[0].message_id, "a");
    assert_int_equal(w.msgs[0].nreqs, 2);
    assert_string_equal(w.msgs[0].reqs[0].event_type, "x");
    assert_string_equal(w.msgs[0].reqs[1].event_type, "z");
    assert_string_equal(w.msgs[0].reqs[0].delivery_id, "d1");
    assert_string_equal(w.msgs[1].reqs[0].delivery_id, "b");
    /* The body string is sent byte for byte; Content-Length is dropped from captured headers. */
    assert_string_equal(w.msgs[0].reqs[0].body, "{\"messageId\":\"a\",\"eventType\":\"x\"}");
    assert_int_equal(w.msgs[0].reqs[0].nheaders, 2);
    assert_int_equal(w.msgs[0].reqs[1].nheaders, 0);
    cli_wl_free(&w);
    /* The message id may come from a header instead. */
    io.msg_header = "webhook-id";
    assert_int_equal(cli_wl_read_ndjson(p, &io, &w, err, sizeof(err)), HL_EPARSE);
    assert_non_null(strstr(err, "line 3"));
    unlink(p);
}

#define LEDGER_TEMPLATE "/tmp/hl-cli-ledger-XXXXXX"

/* Marks w's first request accepted under request_id, writes w's ledger into a new file made
 * from path (a LEDGER_TEMPLATE buffer, left holding the file's name) and reads it back. */
static void ledger_through_file(cli_workload_t *w, const char *request_id, char *path,
                                cli_workload_t *back)
{
    char err[256] = "";
    w->msgs[0].reqs[0].out.status = 202;
    snprintf(w->msgs[0].reqs[0].out.request_id, sizeof(w->msgs[0].reqs[0].out.request_id), "%s",
             request_id);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_int_equal(cli_ledger_write(f, w), 0);
    fclose(f);
    if (cli_ledger_read(path, back, err, sizeof(err)) != 0) fail_msg("ledger read: %s", err);
}

/* A message id of exactly the contract's 256 bytes is one the ingress takes: the replay reads
 * it, and its ledger (what `hookline verify` reads back) keeps it. */
static void test_message_id_of_the_full_length(void **state)
{
    (void)state;
    char id[HL_MESSAGE_ID_MAX + 1], line[1024];
    memset(id, 'm', HL_MESSAGE_ID_MAX);
    id[HL_MESSAGE_ID_MAX] = '\0';
    snprintf(line, sizeof(line), "{\"body\":{\"messageId\":\"%s\",\"eventType\":\"x\"}}\n", id);
    char *p = write_tmp(line);
    cli_workload_t w = {0}, back = {0};
    char err[256] = "";
    cli_wl_input_opts_t io = {.msg_ptr = "/messageId", .type_ptr = "/eventType"};
    assert_int_equal(cli_wl_read_ndjson(p, &io, &w, err, sizeof(err)), 0);
    unlink(p);
    assert_int_equal(w.nmsgs, 1);
    assert_string_equal(w.msgs[0].message_id, id);
    char path[] = LEDGER_TEMPLATE;
    ledger_through_file(&w, "0190a0b0-0000-7000-8000-000000000002", path, &back);
    unlink(path);
    assert_int_equal(back.nmsgs, 1);
    assert_string_equal(back.msgs[0].message_id, id);
    cli_wl_free(&w);
    cli_wl_free(&back);
}

static void expect_bad(const char *text, int rc, const char *needle)
{
    char *p = write_tmp(text);
    cli_workload_t w = {0};
    char err[256] = "";
    cli_wl_input_opts_t io = {.msg_ptr = "/messageId", .type_ptr = "/eventType"};
    assert_int_equal(cli_wl_read_ndjson(p, &io, &w, err, sizeof(err)), rc);
    if (needle && !strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);
    assert_null(w.msgs);
    unlink(p);
}

static void test_ndjson_bad(void **state)
{
    (void)state;
    expect_bad("not json\n", HL_EPARSE, "line 1");
    expect_bad("{\"headers\":{}}\n", HL_EPARSE, "body");
    expect_bad("{\"body\":{\"eventType\":\"x\"}}\n", HL_EPARSE, "message id");
    expect_bad("{\"body\":42}\n", HL_EPARSE, "string or an object");
    expect_bad("{\"body\":{\"messageId\":\"a\"},\"headers\":[1]}\n", HL_EPARSE, "headers");
    expect_bad("{\"body\":{\"messageId\":\"a\"},\"headers\":{\"X\":1}}\n", HL_EPARSE, "strings");
    expect_bad("{\"body\":{\"messageId\":\"a\"},\"headers\":{\"X\":\"a\\r\\nEvil: 1\"}}\n",
               HL_EPARSE, "line break");
    expect_bad("\n\n", HL_EPARSE, "no requests");
    /* Over 32 headers. */
    char big[4096];
    size_t bl = (size_t)snprintf(big, sizeof(big), "{\"body\":{\"messageId\":\"a\"},\"headers\":{");
    for (int i = 0; i < 33; i++)
        bl += (size_t)snprintf(big + bl, sizeof(big) - bl, "%s\"H%d\":\"v\"", i ? "," : "", i);
    snprintf(big + bl, sizeof(big) - bl, "}}\n");
    expect_bad(big, HL_ETOOBIG, "32 headers");
    /* A message id over the contract's 256 bytes (one byte over). */
    char longid[1024];
    char id[HL_MESSAGE_ID_MAX + 2];
    memset(id, 'x', HL_MESSAGE_ID_MAX + 1);
    id[HL_MESSAGE_ID_MAX + 1] = '\0';
    snprintf(longid, sizeof(longid), "{\"body\":{\"messageId\":\"%s\"}}\n", id);
    expect_bad(longid, HL_ETOOBIG, "over 256 bytes");
    /* A line over 2 MiB. */
    size_t n = (2u << 20) + 64;
    char *huge = malloc(n + 1);
    memset(huge, ' ', n);
    memcpy(huge, "{\"body\":\"", 9);
    huge[n - 3] = '"';
    huge[n - 2] = '}';
    huge[n - 1] = '\n';
    huge[n] = '\0';
    expect_bad(huge, HL_ETOOBIG, "2 MiB");
    free(huge);
    cli_workload_t w = {0};
    char err[128];
    cli_wl_input_opts_t io = {.msg_ptr = "/messageId", .type_ptr = "/eventType"};
    assert_int_equal(cli_wl_read_ndjson("/nonexistent/x.ndjson", &io, &w, err, sizeof(err)),
                     HL_EIO);
}

static void test_ledger_roundtrip(void **state)
{
    (void)state;
    cli_wl_synth_opts_t o = base();
    cli_workload_t w = {0}, back = {0};
    char err[256];
    assert_int_equal(cli_wl_synth(&o, &w, err, sizeof(err)), 0);
    char path[] = LEDGER_TEMPLATE;
    ledger_through_file(&w, "0190a0b0-0000-7000-8000-000000000001", path, &back);
    assert_int_equal(back.nmsgs, w.nmsgs);
    assert_int_equal(back.nreqs, w.nreqs);
    assert_int_equal(back.ndups, w.ndups);
    assert_int_equal(back.msgs[0].reqs[0].out.status, 202);
    assert_string_equal(back.msgs[0].reqs[0].out.request_id,
                        "0190a0b0-0000-7000-8000-000000000001");
    assert_string_equal(back.msgs[2].message_id, w.msgs[2].message_id);
    cli_wl_free(&back);
    /* A line without the required fields names its line. */
    FILE *f = fopen(path, "a");
    fputs("{\"message_id\":\"x\"}\n", f);
    fclose(f);
    assert_int_equal(cli_ledger_read(path, &back, err, sizeof(err)), HL_EPARSE);
    assert_non_null(strstr(err, "ledger line"));
    assert_null(back.msgs);
    unlink(path);
    cli_wl_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_ndjson_good),
        cmocka_unit_test(test_ndjson_bad),
        cmocka_unit_test(test_message_id_of_the_full_length),
        cmocka_unit_test(test_ledger_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
