/* Unit tests for the persister's record parsing: every required part missing or malformed,
 * size caps, and a JSON validator that agrees with what Postgres jsonb accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hl/sigverify.h"
#include "event_record.h"

#define RID "0190f5a2-7b3c-7def-8a12-3456789abcde"
#define BODY "{\"id\":\"m1\",\"type\":\"created\"}"

/* Headers as the ingress writes them; `skip` leaves one out, `over`/`with` replaces one. */
static rd_kafka_headers_t *headers(const char *skip, const char *over, const char *with)
{
    static const char *const names[] = {"hl-request-id", "hl-source", "hl-event-type",
                                        "hl-received-us", "content-type"};
    static const char *const values[] = {RID, "stripe", "invoice.paid", "1700000000000000",
                                         "application/json"};
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    for (size_t i = 0; i < 5; i++) {
        if (skip && strcmp(skip, names[i]) == 0) continue;
        const char *v = over && strcmp(over, names[i]) == 0 ? with : values[i];
        rd_kafka_header_add(h, names[i], -1, v, -1);
    }
    return h;
}

static pst_row_t parse(const char *key, const char *body, rd_kafka_headers_t *h, size_t cap)
{
    pst_row_t r;
    memset(&r, 0, sizeof(r));
    pst_record_parse(&r, key, key ? strlen(key) : 0, body, body ? strlen(body) : 0, h, cap);
    if (h) rd_kafka_headers_destroy(h);
    return r;
}

static void test_good_record(void **state)
{
    pst_row_t r = parse("m1", BODY, headers(NULL, NULL, NULL), 1024);
    assert_int_equal(r.status, PST_REC_OK);
    assert_string_equal(r.message_id, "m1");
    assert_int_equal(r.message_id_len, 2);
    assert_string_equal(r.source, "stripe");
    assert_string_equal(r.event_type, "invoice.paid");
    assert_string_equal(r.request_id, RID);
    assert_true(r.received_us == 1700000000000000LL);
    assert_int_equal(r.payload_len, strlen(BODY));
    assert_int_equal(r.row_id, -1);
}

static void test_key_missing_or_bad(void **state)
{
    assert_int_equal(parse(NULL, BODY, headers(NULL, NULL, NULL), 1024).status,
                     PST_REC_MISSING_KEY);
    assert_int_equal(parse("", BODY, headers(NULL, NULL, NULL), 1024).status, PST_REC_MISSING_KEY);
    char long_key[300];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    pst_row_t r = parse(long_key, BODY, headers(NULL, NULL, NULL), 1024);
    assert_int_equal(r.status, PST_REC_BAD_KEY);
    assert_string_equal(r.message_id, ""); /* never a truncated id */
    assert_int_equal(parse("bad\xff", BODY, headers(NULL, NULL, NULL), 1024).status,
                     PST_REC_BAD_KEY);
    /* 256 bytes exactly is the cap and fits. */
    long_key[256] = '\0';
    assert_int_equal(parse(long_key, BODY, headers(NULL, NULL, NULL), 1024).status, PST_REC_OK);
}

static void test_each_header_missing(void **state)
{
    const char *names[] = {"hl-request-id", "hl-source", "hl-event-type", "hl-received-us"};
    for (size_t i = 0; i < 4; i++) {
        pst_row_t r = parse("m1", BODY, headers(names[i], NULL, NULL), 1024);
        assert_int_equal(r.status, PST_REC_MISSING_HEADER);
        assert_non_null(strstr(r.detail, names[i]));
    }
    assert_int_equal(parse("m1", BODY, NULL, 1024).status, PST_REC_MISSING_HEADER);
    /* content-type is not needed to store the row */
    assert_int_equal(parse("m1", BODY, headers("content-type", NULL, NULL), 1024).status,
                     PST_REC_OK);
}

static void test_header_values_bad(void **state)
{
    assert_int_equal(parse("m1", BODY, headers(NULL, "hl-request-id", "nope"), 1024).status,
                     PST_REC_BAD_HEADER);
    assert_int_equal(parse("m1", BODY, headers(NULL, "hl-received-us", "12x"), 1024).status,
                     PST_REC_BAD_HEADER);
    assert_int_equal(parse("m1", BODY, headers(NULL, "hl-received-us", "-5"), 1024).status,
                     PST_REC_BAD_HEADER);
    assert_int_equal(
        parse("m1", BODY, headers(NULL, "hl-received-us", "99999999999999999999"), 1024).status,
        PST_REC_BAD_HEADER);
    char src[100];
    memset(src, 's', sizeof(src) - 1);
    src[sizeof(src) - 1] = '\0';
    assert_int_equal(parse("m1", BODY, headers(NULL, "hl-source", src), 1024).status,
                     PST_REC_BAD_HEADER);
    assert_int_equal(parse("m1", BODY, headers(NULL, "hl-event-type", "a\xc3"), 1024).status,
                     PST_REC_BAD_HEADER);
    assert_int_equal(parse("m1", BODY, headers(NULL, "hl-event-type", ""), 1024).status,
                     PST_REC_MISSING_HEADER);
}

static void test_body_bad_or_too_large(void **state)
{
    assert_int_equal(parse("m1", "{\"a\":", headers(NULL, NULL, NULL), 1024).status,
                     PST_REC_INVALID_JSON);
    assert_int_equal(parse("m1", NULL, headers(NULL, NULL, NULL), 1024).status,
                     PST_REC_INVALID_JSON);
    assert_int_equal(parse("m1", BODY, headers(NULL, NULL, NULL), 10).status, PST_REC_TOO_LARGE);
    assert_int_equal(parse("m1", BODY, headers(NULL, NULL, NULL), strlen(BODY)).status, PST_REC_OK);
    /* The first reason found is kept, and the other fields are still filled for the DLQ. */
    pst_row_t r = parse("m1", "nope", headers("hl-source", NULL, NULL), 1024);
    assert_int_equal(r.status, PST_REC_MISSING_HEADER);
    assert_string_equal(r.event_type, "invoice.paid");
    assert_string_equal(pst_rec_status_code(PST_REC_INVALID_JSON), "invalid_json");
    assert_string_equal(pst_rec_status_code((pst_rec_status_t)99), "unknown");
}

static rd_kafka_headers_t *with_content(const char *digest, const char *signed_json)
{
    rd_kafka_headers_t *h = headers(NULL, NULL, NULL);
    if (digest) rd_kafka_header_add(h, "hl-body-sha256", -1, digest, -1);
    if (signed_json) rd_kafka_header_add(h, "hl-signature-headers", -1, signed_json, -1);
    return h;
}

/* The body's digest: the header's when it matches the body; a mismatch or a malformed digest
 * is dead-lettered with the header's claim kept; computed when the record carries none. */
static void test_body_digest(void **state)
{
    char want[65];
    hl_sig_sha256_hex(BODY, strlen(BODY), want);
    pst_row_t r =
        parse("m1", BODY, with_content(want, "{\"stripe-signature\":\"t=1,v1=ab\"}"), 1024);
    assert_int_equal(r.status, PST_REC_OK);
    assert_string_equal(r.body_sha256, want);
    assert_int_equal(r.signed_json_len, strlen("{\"stripe-signature\":\"t=1,v1=ab\"}"));
    r = parse("m1", BODY, with_content(NULL, NULL), 1024);
    assert_int_equal(r.status, PST_REC_OK);
    assert_string_equal(r.body_sha256, want);
    assert_null(r.signed_json);
    char other[65];
    memcpy(other, want, sizeof(other));
    other[0] = other[0] == '0' ? '1' : '0';
    r = parse("m1", BODY, with_content(other, NULL), 1024);
    assert_int_equal(r.status, PST_REC_BODY_DIGEST);
    assert_string_equal(r.body_sha256, other);
    assert_string_equal(pst_rec_status_code(r.status), "body_digest_mismatch");
    r = parse("m1", BODY, with_content("ABCDEF", NULL), 1024);
    assert_int_equal(r.status, PST_REC_BAD_HEADER);
    assert_string_equal(r.body_sha256, want);
    char upper[65];
    for (int i = 0; i < 65; i++) upper[i] = (char)(want[i] >= 'a' ? want[i] - 32 : want[i]);
    assert_int_equal(parse("m1", BODY, with_content(upper, NULL), 1024).status, PST_REC_BAD_HEADER);
    /* Signature headers must be one JSON object. */
    assert_int_equal(parse("m1", BODY, with_content(want, "[1]"), 1024).status, PST_REC_BAD_HEADER);
    assert_int_equal(parse("m1", BODY, with_content(want, "{\"a\":"), 1024).status,
                     PST_REC_BAD_HEADER);
    assert_int_equal(parse("m1", BODY, with_content(want, ""), 1024).status, PST_REC_BAD_HEADER);
}

static int valid(const char *s)
{
    return pst_json_valid(s, strlen(s));
}

static void test_json_accepts(void **state)
{
    const char *ok[] = {"{}",
                        "[]",
                        "0",
                        "-0.5e+10",
                        "\"x\"",
                        "true",
                        "null",
                        " { \"a\" : [1, 2, {\"b\": null}] } ",
                        "{\"u\":\"\\u00e9\\ud83d\\ude00\"}",
                        "{\"s\":\"caf\xc3\xa9\"}",
                        "[[[[]]]]",
                        "{\"a\":1,\"b\":[true,false]}",
                        "1E5",
                        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!valid(ok[i])) fail_msg("rejected valid JSON: %s", ok[i]);
    }
}

static void test_json_refuses(void **state)
{
    const char *bad[] = {"",
                         " ",
                         "{",
                         "}",
                         "[1,]",
                         "{\"a\"}",
                         "{\"a\":}",
                         "{a:1}",
                         "01",
                         "1.",
                         ".5",
                         "1e",
                         "-",
                         "+1",
                         "\"abc",
                         "\"a\\x\"",
                         "\"\\u12\"",
                         "\"\\u0000\"",
                         "\"\\udc00\"",
                         "\"\\ud800\"",
                         "\"\\ud800\\u0041\"",
                         "tru",
                         "nul",
                         "{} {}",
                         "[1 2]",
                         "{\"a\":1,}",
                         "\"a\tb\"",
                         "\"\xff\"",
                         "\"\xc0\xaf\"",
                         "\"\xed\xa0\x80\"",
                         "[1]]",
                         "{\"a\":1]",
                         "NaN",
                         "[\"a\",]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i])) fail_msg("accepted invalid JSON #%zu: %s", i, bad[i]);
    }
    /* A NUL byte inside the body is never valid. */
    assert_false(pst_json_valid("{\"a\":\"\0\"}", 8));
}

static void test_json_nesting_cap(void **state)
{
    char deep[2000];
    size_t d = 600;
    for (size_t i = 0; i < d; i++) deep[i] = '[';
    for (size_t i = 0; i < d; i++) deep[d + i] = ']';
    assert_false(pst_json_valid(deep, 2 * d));
    assert_true(pst_json_valid(deep + 100, 2 * d - 200)); /* 500 levels fit */
}

static void test_utf8(void **state)
{
    assert_true(pst_utf8_valid("abc\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 12));
    assert_false(pst_utf8_valid("a\0b", 3));
    assert_false(pst_utf8_valid("\xe2\x82", 2));
    assert_false(pst_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(pst_utf8_valid("\xe0\x80\x80", 3));     /* overlong */
}

/* The validators skip plain ASCII eight bytes at a time: whatever they must stop at is found at
 * every position of a long string, across the word boundaries. */
static void test_long_strings_every_position(void **state)
{
    char doc[64], txt[40];
    for (size_t at = 0; at < 30; at++) {
        /* {"k":"<30 bytes with one special byte at `at`>"} */
        memset(txt, 'a', 30);
        txt[30] = '\0';
        size_t n;
        txt[at] = '\x01'; /* a control byte: refused */
        n = (size_t)snprintf(doc, sizeof(doc), "{\"k\":\"%s\"}", txt);
        assert_false(pst_json_valid(doc, n));
        txt[at] = '"'; /* ends the string early: what follows is not JSON */
        n = (size_t)snprintf(doc, sizeof(doc), "{\"k\":\"%s\"}", txt);
        assert_false(pst_json_valid(doc, n));
        txt[at] = '\xff'; /* not UTF-8 */
        n = (size_t)snprintf(doc, sizeof(doc), "{\"k\":\"%s\"}", txt);
        assert_false(pst_json_valid(doc, n));
        assert_false(pst_utf8_valid(txt, 30));
        txt[at] = '\0'; /* NUL inside */
        assert_false(pst_utf8_valid(txt, 30));
        txt[at] = '\\'; /* an escape: "\\a" is not one */
        n = (size_t)snprintf(doc, sizeof(doc), "{\"k\":\"%s\"}", txt);
        assert_false(pst_json_valid(doc, n));
        if (at < 28) { /* "é" (2 bytes) is fine */
            txt[at] = '\xc3';
            txt[at + 1] = '\xa9';
            n = (size_t)snprintf(doc, sizeof(doc), "{\"k\":\"%s\"}", txt);
            assert_true(pst_json_valid(doc, n));
            assert_true(pst_utf8_valid(txt, 30));
        }
    }
    memset(txt, 'b', 30);
    txt[30] = '\0';
    size_t n = (size_t)snprintf(doc, sizeof(doc), "{\"k\":\"%s\"}", txt);
    assert_true(pst_json_valid(doc, n));
    assert_false(pst_json_valid(doc, n - 3)); /* cut inside the string */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_record),
        cmocka_unit_test(test_key_missing_or_bad),
        cmocka_unit_test(test_each_header_missing),
        cmocka_unit_test(test_header_values_bad),
        cmocka_unit_test(test_body_bad_or_too_large),
        cmocka_unit_test(test_json_accepts),
        cmocka_unit_test(test_body_digest),
        cmocka_unit_test(test_json_refuses),
        cmocka_unit_test(test_json_nesting_cap),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_long_strings_every_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
