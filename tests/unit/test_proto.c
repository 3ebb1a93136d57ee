/* The contract library against the contract files: proto/lineage.schema.json (fields, types,
 * limits, stages) and proto/topics.yaml (topic and header names), read at test time; then the
 * lineage writer and parser against each other and against bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "hl/lineage_record.h"
#include "hl/proto.h"
#include "hl/util.h"
#include "lineage_ref.h"

#define SHA "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static json_t *schema;

static int load_schema(void **state)
{
    json_error_t e;
    schema = json_load_file(HL_PROTO_SCHEMA, JSON_REJECT_DUPLICATES, &e);
    if (!schema) fprintf(stderr, "%s: %s\n", HL_PROTO_SCHEMA, e.text);
    return schema ? 0 : -1;
}

static int free_schema(void **state)
{
    json_decref(schema);
    return 0;
}

static json_t *prop(const char *name)
{
    return json_object_get(json_object_get(schema, "properties"), name);
}

static void test_stages_are_the_schemas(void **state)
{
    static const char *const names[HL_STAGE_COUNT] = {
        HL_STAGE_INGRESS_NAME, HL_STAGE_PERSISTED_NAME, HL_STAGE_DEAD_LETTERED_NAME};
    json_t *e = json_object_get(prop("stage"), "enum");
    assert_int_equal(json_array_size(e), HL_STAGE_COUNT);
    for (int i = 0; i < HL_STAGE_COUNT; i++) {
        hl_stage_t st;
        assert_string_equal(hl_stage_name((hl_stage_t)i), json_string_value(json_array_get(e, i)));
        assert_string_equal(names[i], json_string_value(json_array_get(e, i)));
        assert_int_equal(hl_stage_parse(json_string_value(json_array_get(e, i)), &st), 0);
        assert_int_equal(st, i);
    }
    hl_stage_t st;
    assert_int_equal(hl_stage_parse("Ingress", &st), HL_EINVAL);
    assert_int_equal(hl_stage_parse(NULL, &st), HL_EINVAL);
    assert_string_equal(hl_stage_name((hl_stage_t)HL_STAGE_COUNT), "unknown");
}

static void test_limits_are_the_schemas(void **state)
{
    static const struct {
        const char *field;
        int max;
        const char *text;
    } lim[] = {{"request_id", HL_REQUEST_ID_MAX, HL_PROTO_STR(HL_REQUEST_ID_MAX)},
               {"source", HL_SOURCE_MAX, HL_PROTO_STR(HL_SOURCE_MAX)},
               {"message_id", HL_MESSAGE_ID_MAX, HL_PROTO_STR(HL_MESSAGE_ID_MAX)},
               {"event_type", HL_EVENT_TYPE_MAX, HL_PROTO_STR(HL_EVENT_TYPE_MAX)}};
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
        json_t *m = json_object_get(prop(lim[i].field), "maxLength");
        if (!json_is_integer(m) || json_integer_value(m) != lim[i].max)
            fail_msg("%s: schema maxLength is not %d", lim[i].field, lim[i].max);
        char num[16]; /* the text messages quote is the number itself */
        snprintf(num, sizeof num, "%d", lim[i].max);
        assert_string_equal(lim[i].text, num);
    }
    char pattern[32];
    snprintf(pattern, sizeof pattern, "^[0-9a-f]{%d}$", HL_SHA256_HEX_LEN);
    assert_string_equal(json_string_value(json_object_get(prop("body_sha256"), "pattern")),
                        pattern);
}

/* A record of the stage with every field it can carry at its longest. */
static void full_record(hl_lineage_rec_t *r, hl_stage_t st, char fill)
{
    char s[HL_MESSAGE_ID_MAX + 1];
    hl_lineage_rec_init(r, st);
    memset(s, fill, sizeof s - 1);
    s[sizeof s - 1] = '\0';
    hl_strlcpy(r->request_id, s, sizeof r->request_id);
    HL_LINEAGE_SET(r, source, s);
    HL_LINEAGE_SET(r, message_id, s);
    HL_LINEAGE_SET(r, event_type, s);
    HL_LINEAGE_SET(r, error_code, s + HL_MESSAGE_ID_MAX - HL_ERROR_CODE_MAX);
    r->ts_us = r->received_us = r->consumed_us = r->committed_us = INT64_C(4102444800000000);
    r->status = r->attempts = r->suppressed = INT32_MAX;
    r->partition = INT32_MIN;
    r->offset = r->row_id = r->latency_us = INT64_MAX;
    r->duplicate = 0;
    memcpy(r->body_sha256, SHA, sizeof r->body_sha256);
}

static bool has_type(json_t *def, json_t *v)
{
    static const struct {
        const char *name;
        int type;
    } types[] = {{"string", JSON_STRING},
                 {"integer", JSON_INTEGER},
                 {"boolean", JSON_TRUE},
                 {"boolean", JSON_FALSE},
                 {"null", JSON_NULL}};
    json_t *t = json_object_get(def, "type");
    if (t == NULL) return true; /* const or enum: checked by value */
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if ((int)json_typeof(v) != types[i].type) continue;
        if (json_is_string(t)) return strcmp(json_string_value(t), types[i].name) == 0;
        size_t k;
        json_t *n;
        json_array_foreach(t, k, n)
        {
            if (strcmp(json_string_value(n), types[i].name) == 0) return true;
        }
    }
    return false;
}

/* One field of a written record against its schema definition. */
static void check_field(const char *key, json_t *v)
{
    json_t *def = prop(key);
    if (def == NULL) fail_msg("%s is written but not in the schema", key);
    if (!has_type(def, v)) fail_msg("%s is written with the wrong type", key);
    json_t *c = json_object_get(def, "const"), *max = json_object_get(def, "maxLength");
    if (c && !json_equal(c, v)) fail_msg("%s is not the schema's constant", key);
    if (max && json_is_string(v) && json_string_length(v) > (size_t)json_integer_value(max))
        fail_msg("%s is written over its maxLength", key);
    json_t *min = json_object_get(def, "minimum"), *top = json_object_get(def, "maximum");
    if (min && json_is_integer(v) && json_integer_value(v) < json_integer_value(min))
        fail_msg("%s is written under its minimum", key);
    if (top && json_is_integer(v) && json_integer_value(v) > json_integer_value(top))
        fail_msg("%s is written over its maximum", key);
}

/* Writes r, checks it against the schema and adds its fields to seen. */
static void check_written(const hl_lineage_rec_t *r, json_t *seen)
{
    char buf[HL_LINEAGE_WRITE_MAX];
    int n = hl_lineage_write(r, buf, sizeof buf);
    assert_true(n > 0);
    json_error_t e;
    json_t *j = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &e);
    if (!j) fail_msg("not JSON (%s): %s", e.text, buf);
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        check_field(key, v);
        json_object_set_new(seen, key, json_true());
    }
    size_t i;
    json_array_foreach(json_object_get(schema, "required"), i, v)
    {
        if (!json_object_get(j, json_string_value(v)))
            fail_msg("required %s not written", json_string_value(v));
    }
    json_decref(j);
}

static void test_writer_is_the_schemas(void **state)
{
    json_t *seen = json_object();
    hl_lineage_rec_t r;
    for (int st = 0; st < HL_STAGE_COUNT; st++) {
        full_record(&r, (hl_stage_t)st, '\x01'); /* every byte escaped: the longest record */
        check_written(&r, seen);
        r.has_error_code = false; /* null where the stage writes it */
        r.row_id = HL_LINEAGE_ABSENT;
        r.duplicate = 1;
        check_written(&r, seen);
    }
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(schema, "properties"), key, v)
    {
        if (!json_object_get(seen, key)) fail_msg("schema field %s is never written", key);
    }
    json_decref(seen);
}

static void test_write_then_parse(void **state)
{
    hl_lineage_rec_t r, back;
    char buf[HL_LINEAGE_WRITE_MAX];
    const char *why;
    for (int st = 0; st < HL_STAGE_COUNT; st++) {
        full_record(&r, (hl_stage_t)st, 'a');
        /* Only the stage's own fields are written, so the parsed record is written again to
         * compare, with a few fields checked directly. */
        int n = hl_lineage_write(&r, buf, sizeof buf);
        assert_true(n > 0);
        assert_int_equal(hl_lineage_parse(buf, (size_t)n, &back, &why), 0);
        char again[HL_LINEAGE_WRITE_MAX];
        assert_int_equal(hl_lineage_write(&back, again, sizeof again), n);
        assert_memory_equal(buf, again, (size_t)n);
        assert_int_equal(back.stage, st);
        assert_string_equal(back.message_id, r.message_id);
        assert_int_equal(back.partition, INT32_MIN);
    }
}

static void test_writer_cuts_and_refuses(void **state)
{
    hl_lineage_rec_t r;
    char buf[HL_LINEAGE_WRITE_MAX];
    const char *why;
    full_record(&r, HL_STAGE_INGRESS, 'x');
    int n = hl_lineage_write(&r, buf, sizeof buf);
    hl_lineage_rec_t back;
    assert_int_equal(hl_lineage_parse(buf, (size_t)n, &back, &why), 0);
    assert_int_equal(strlen(back.error_code), HL_ERROR_CODE_MAX); /* cut at the write limit */
    assert_int_equal(hl_lineage_write(&r, buf, (size_t)n), HL_ETOOBIG);
    assert_int_equal(hl_lineage_write(&r, buf, 0), HL_ETOOBIG);
    r.stage = (hl_stage_t)HL_STAGE_COUNT;
    assert_int_equal(hl_lineage_write(&r, buf, sizeof buf), HL_EINVAL);
    /* The longest record of each stage: every byte escaped, every integer at its widest. */
    for (int st = 0; st < HL_STAGE_COUNT; st++) {
        full_record(&r, (hl_stage_t)st, '\x01');
        r.ts_us = r.received_us = r.status = r.partition = r.offset = r.latency_us = r.consumed_us =
            r.committed_us = r.row_id = r.attempts = r.suppressed = INT64_MIN + 1;
        assert_true(hl_lineage_write(&r, buf, sizeof buf) > 0);
    }
}

static void test_parse_refuses(void **state)
{
    static const char *const bad[] = {
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"row_id\":\"1\"}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"offset\":"
        "-9223372036854775808}",
        "{\"v\":1,\"stage\":\"persisted\",\"request_id\":\"a\",\"ts_us\":4102444800000001}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,\"error_code\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\x7f\",\"ts_us\":1}",
    };
    static const char *const reason[] = {
        "row_id must be an integer or null",
        "offset must be an integer",
        "ts_us out of range",
        "error_code must be a short string or null",
        "request_id must be a plain string",
    };
    hl_lineage_rec_t r;
    const char *why;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_true(hl_lineage_parse(bad[i], strlen(bad[i]), &r, &why) < 0);
        assert_string_equal(why, reason[i]);
    }
    char code[300];
    snprintf(code, sizeof code,
             "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"a\",\"ts_us\":1,"
             "\"error_code\":\"%0129d\"}",
             0);
    assert_int_equal(hl_lineage_parse(code, strlen(code), &r, &why), HL_ETOOBIG);
}

/* Fails the test when the parser and the reference reading (jansson) differ on len bytes. */
static void agrees(const char *json, size_t len)
{
    const char *what;
    if (!lineage_ref_agrees(json, len, &what))
        fail_msg("the parser and jansson differ (%s) on %zu bytes: %.*s", what, len, (int)len,
                 json);
}

/* The corners of JSON the parser reads by itself, each as jansson reads it. */
static void test_parse_is_jansson_at_the_edges(void **state)
{
#define REC(x) "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"r\",\"ts_us\":1" x "}"
    static const char *const cases[] = {
        REC(""),
        " \t\r\n" REC("") " \n",
        REC(",\"source\":\"a\\u00e9\\ud83d\\ude00\\n\""),
        "{\"\\u0076\":1,\"stage\":\"ingress\",\"request_id\":\"r\",\"ts_us\":1}",
        REC(",\"source\":\"\\ud83d\""),
        REC(",\"source\":\"\\ude00\""),
        REC(",\"source\":\"\\ud83d\\u0041\""),
        REC(",\"source\":\"\\u0000\""),
        REC(",\"sou\\u0000rce\":1"),
        REC(",\"source\":\"\\x\""),
        REC(",\"source\":\"\\u12\""),
        REC(",\"source\":\"\xc3\xa9\""),
        REC(",\"source\":\"\xc0\x80\""),
        REC(",\"source\":\"\xed\xa0\x80\""),
        REC(",\"source\":\"\xf4\x90\x80\x80\""),
        REC(",\"source\":\"\xf0\x9f\x98\""),
        REC(",\"source\":\"\xe2\x82\""),
        REC(",\"source\":\"\x80\""),
        REC(",\"source\":\"\xf5\x80\x80\x80\""),
        REC(",\"source\":\"a\tb\""),
        REC(",\"source\":\"a\x7f\""),
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"r\\n\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingr\\u0065ss\",\"request_id\":\"r\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingressingressingress\",\"request_id\":\"r\",\"ts_us\":1}",
        REC(",\"offset\":01"),
        REC(",\"offset\":-"),
        REC(",\"offset\":-0"),
        REC(",\"offset\":1."),
        REC(",\"offset\":1.5"),
        REC(",\"offset\":1e"),
        REC(",\"offset\":1e+"),
        REC(",\"offset\":1E2"),
        REC(",\"offset\":1e400"),
        REC(",\"offset\":-1e400"),
        REC(",\"offset\":1e-400"),
        REC(",\"offset\":9223372036854775807"),
        REC(",\"offset\":9223372036854775808"),
        REC(",\"offset\":-9223372036854775808"),
        REC(",\"offset\":-9223372036854775809"),
        REC(",\"offset\":+1"),
        REC(",\"offset\":.5"),
        REC(",\"offset\":12abc"),
        REC(",\"offset\":true"),
        REC(",\"offset\":null"),
        REC(",\"row_id\":null"),
        REC(",\"row_id\":nul"),
        REC(",\"row_id\":nulls"),
        REC(",\"duplicate\":true"),
        REC(",\"duplicate\":False"),
        REC(",\"duplicate\":0"),
        REC(",\"error_code\":null"),
        REC(",\"error_code\":[]"),
        REC(",\"error_code\":{}"),
        REC(",\"body_sha256\":"
            "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\""),
        REC(",\"body_sha256\":"
            "\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\""),
        REC(",\"body_sha256\":\"0123\""),
        REC(",\"body_sha256\":1"),
        REC(",\"source\":\"a\",\"source\":\"b\""),
        REC(",\"x\":1,\"x\":2"),
        REC(",\"x\":1"),
        REC(",\"x\":{\"a\":1,\"a\":2}"),
        REC(",\"x\":{\"a\":1,\"b\":{\"a\":2}}"),
        REC(",\"x\":{\"a\":[1,2,{\"c\":\"d\"}],\"b\":null}"),
        REC(",\"x\":[1,]"),
        REC(",\"x\":{\"a\":1,}"),
        REC(",\"x\":[1 2]"),
        REC(",\"x\":{\"a\" 1}"),
        REC(",\"x\":{1:2}"),
        REC(","),
        REC(",,\"x\":1"),
        "{\"v\":1 \"stage\":\"ingress\"}",
        "{}",
        "[]",
        "[1,{\"a\":1}]",
        "\"v\"",
        "1",
        "null",
        "{",
        "{\"v\":1",
        REC("") "x",
        REC("") "{}",
        "\xef\xbb\xbf" REC(""),
        "{\"v\":2,\"stage\":\"ingress\",\"request_id\":\"r\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"r\"}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"\",\"ts_us\":1}",
        "{\"stage\":\"ingress\",\"request_id\":\"r\",\"ts_us\":1}",
        "{\"v\":1,\"request_id\":\"r\",\"ts_us\":1}",
        "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"r\",\"ts_us\":-1}",
        "{\"v\":true,\"stage\":1,\"request_id\":2,\"ts_us\":\"3\"}",
    };
#undef REC
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) agrees(cases[i], strlen(cases[i]));
    /* Nesting: jansson stops at 2048 values deep, the top-level object being the first. */
    static char deep[HL_LINEAGE_READ_MAX];
    for (int depth = 2045; depth <= 2050; depth++) {
        for (int inner = 0; inner < 2; inner++) {
            size_t n = (size_t)snprintf(deep, sizeof deep, "{\"v\":1,\"x\":");
            for (int d = 2; d < depth; d++) deep[n++] = '[';
            if (inner) deep[n++] = '1';
            for (int d = 2; d < depth; d++) deep[n++] = ']';
            deep[n++] = '}';
            agrees(deep, n);
        }
    }
    /* Many keys in one object, and in nested ones: the duplicate check past its inline room. */
    size_t n = (size_t)snprintf(deep, sizeof deep, "{\"v\":1,\"x\":{");
    for (int k = 0; k < 900; k++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "\"k%d\":{\"a\":%d},", k, k);
    n += (size_t)snprintf(deep + n, sizeof deep - n, "\"k17\":0}}");
    agrees(deep, n);
    deep[n - 9] = '9', deep[n - 8] = '9', deep[n - 7] = '9';
    agrees(deep, n);
    /* The same at the top level, and keys a closed object had, met again by the one around it
     * (the index drops them when the object closes). */
    n = (size_t)snprintf(deep, sizeof deep, "{\"v\":1");
    for (int k = 0; k < 900; k++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, ",\"k%d\":%d", k, k);
    n += (size_t)snprintf(deep + n, sizeof deep - n, ",\"k17\":0}");
    agrees(deep, n);
    n = (size_t)snprintf(deep, sizeof deep, "{\"v\":1,\"x\":{");
    for (int k = 0; k < 100; k++) n += (size_t)snprintf(deep + n, sizeof deep - n, "\"k%d\":0,", k);
    n += (size_t)snprintf(deep + n, sizeof deep - n, "\"y\":0}");
    for (int k = 0; k < 100; k++) n += (size_t)snprintf(deep + n, sizeof deep - n, ",\"k%d\":0", k);
    n += (size_t)snprintf(deep + n, sizeof deep - n, "}");
    agrees(deep, n);
    deep[n - 2] = '1'; /* k99 again, now k91 twice at the top */
    agrees(deep, n);
}

/* Records of every stage, cut and changed byte by byte in a fixed pseudo-random sequence: the
 * parser reads each as jansson does. */
static void test_parse_is_jansson_under_mutation(void **state)
{
    static const char alphabet[] =
        "{}[]:,\"\\ 0123456789-+.eEtrufalsn\x01\x7f\xc3\xa9\xed\xf0\x80u";
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    char base[HL_LINEAGE_WRITE_MAX], buf[HL_LINEAGE_WRITE_MAX + 64];
    hl_lineage_rec_t r;
    size_t checked = 0, accepted = 0;
    for (int st = 0; st < HL_STAGE_COUNT; st++) {
        full_record(&r, (hl_stage_t)st, 'a');
        int blen = hl_lineage_write(&r, base, sizeof base);
        assert_true(blen > 0);
        for (int round = 0; round < 20000; round++) {
            size_t n = (size_t)blen;
            memcpy(buf, base, n);
            int edits = 1 + (int)(x % 3);
            for (int e = 0; e < edits; e++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t at = (size_t)(x >> 8) % n;
                char c = alphabet[(x >> 40) % (sizeof alphabet - 1)];
                switch (x % 4) {
                case 0: buf[at] = c; break;                                      /* replace */
                case 1: memmove(buf + at, buf + at + 1, n - at - 1), n--; break; /* delete */
                case 2:                                                          /* insert */
                    memmove(buf + at + 1, buf + at, n - at), buf[at] = c, n++;
                    break;
                default: n = at + 1; break; /* cut */
                }
                if (n == 0 || n >= sizeof buf - 1) break;
            }
            agrees(buf, n);
            checked++;
            hl_lineage_rec_t back;
            const char *why;
            accepted += hl_lineage_parse(buf, n, &back, &why) == 0;
        }
    }
    assert_int_equal(checked, (size_t)HL_STAGE_COUNT * 20000);
    /* Both ways, many times: a sweep that only met refusals would say little. */
    print_message("%zu of %zu changed records accepted\n", accepted, checked);
    assert_true(accepted > checked / 20 && accepted < checked - checked / 20);
}

/* The headers: line of a topic in topics.yaml, or "" (line-based: the file is ours and flat). */
static void topic_line(const char *topic, const char *key, char *out, size_t cap)
{
    FILE *f = fopen(HL_PROTO_TOPICS, "r");
    assert_non_null(f);
    char line[1024], want[128];
    snprintf(want, sizeof want, "- name: %s\n", topic);
    bool in = false;
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        const char *t = line + strspn(line, " ");
        if (strncmp(t, "- name:", 7) == 0) in = strcmp(t, want) == 0;
        if (in && strncmp(t, key, strlen(key)) == 0) hl_strlcpy(out, t + strlen(key), cap);
    }
    fclose(f);
}

static void test_topics_are_the_yamls(void **state)
{
    static const char *const topics[] = {HL_TOPIC_EVENTS, HL_TOPIC_LINEAGE, HL_TOPIC_DLQ,
                                         HL_TOPIC_CHECKPOINTS};
    char line[1024];
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        topic_line(topics[i], "partitions:", line, sizeof line);
        if (line[0] == '\0') fail_msg("topic %s not in topics.yaml", topics[i]);
    }
    topic_line(HL_TOPIC_EVENTS, "headers:", line, sizeof line);
    assert_string_equal(line,
                        " [" HL_HDR_REQUEST_ID ", " HL_HDR_SOURCE ", " HL_HDR_EVENT_TYPE
                        ", " HL_HDR_RECEIVED_US ", " HL_HDR_CONTENT_TYPE ", " HL_HDR_TRACEPARENT
                        ", " HL_HDR_BODY_SHA256 ", " HL_HDR_SIGNATURE_HEADERS "]\n");
    topic_line(HL_TOPIC_DLQ, "value:", line, sizeof line);
    assert_non_null(strstr(line, " headers plus " HL_HDR_ERROR ", " HL_HDR_ERROR_DETAIL
                                 ", " HL_HDR_ATTEMPTS ", " HL_HDR_FAILED_US "\n"));
    topic_line("hookline.nope", "partitions:", line, sizeof line);
    assert_string_equal(line, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stages_are_the_schemas),
        cmocka_unit_test(test_limits_are_the_schemas),
        cmocka_unit_test(test_writer_is_the_schemas),
        cmocka_unit_test(test_write_then_parse),
        cmocka_unit_test(test_writer_cuts_and_refuses),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_parse_is_jansson_at_the_edges),
        cmocka_unit_test(test_parse_is_jansson_under_mutation),
        cmocka_unit_test(test_topics_are_the_yamls),
    };
    return cmocka_run_group_tests(tests, load_schema, free_schema);
}
