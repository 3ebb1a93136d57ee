/* libs/sigverify beyond what the ingress exercises: re-verification of a stored event (every
 * provider vector, with no timestamp tolerance and the signed timestamp reported) and the
 * names of the headers each scheme signs with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "hl/sigverify.h"
#include "sig_vectors.h"

/* The timestamp a vector's headers carry for its scheme, or -1. */
static int64_t vector_ts(const hl_sig_headers_t *h, hl_sig_scheme_t s)
{
    const char *v = NULL;
    int64_t t = -1;
    if (s == HL_SIG_SCHEME_STANDARD) {
        v = hl_sig_header_get(h, "webhook-timestamp", NULL);
        if (v == NULL) v = hl_sig_header_get(h, "svix-timestamp", NULL);
    } else if (s == HL_SIG_SCHEME_SENDGRID) {
        v = hl_sig_header_get(h, "x-twilio-email-event-webhook-timestamp", NULL);
    } else if (s == HL_SIG_SCHEME_STRIPE) {
        v = hl_sig_header_get(h, "stripe-signature", NULL);
        if (v != NULL && strncmp(v, "t=", 2) == 0) {
            v += 2;
            return hl_sig_parse_unix_s(v, strcspn(v, ","), &t) == 0 ? t : -1;
        }
        return -1;
    }
    if (v == NULL || hl_sig_parse_unix_s(v, strlen(v), &t) != 0) return -1;
    return t;
}

/* Every vector: a signature that verified, or verified but was stale, re-verifies (years
 * later, with no tolerance) and reports the timestamp it signed; any other result is the
 * same as at arrival. A body changed by one byte never re-verifies. */
static void test_reverify_vectors(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *root = json_load_file(HL_VECTORS_FILE, 0, &jerr);
    if (root == NULL) fail_msg("cannot read %s: %s", HL_VECTORS_FILE, jerr.text);
    int64_t now = json_integer_value(json_object_get(root, "now"));
    size_t i, stale = 0, ok = 0;
    json_t *v;
    json_array_foreach(json_object_get(root, "vectors"), i, v)
    {
        hl_sig_t a;
        sig_vector_load(&a, v, 300);
        hl_sig_header_t hv[8];
        size_t nh = 0, j;
        json_t *pair;
        json_array_foreach(json_object_get(v, "headers"), j, pair)
        {
            assert_true(nh < 8);
            hv[nh++] = (hl_sig_header_t){json_string_value(json_array_get(pair, 0)),
                                         json_string_value(json_array_get(pair, 1))};
        }
        hl_sig_headers_t h = {hv, nh};
        const char *body = json_string_value(json_object_get(v, "body"));
        size_t blen = strlen(body);
        json_t *vnow = json_object_get(v, "now");
        hl_sig_result_t at = hl_sig_verify(&a, &h, (const unsigned char *)body, blen,
                                           vnow ? json_integer_value(vnow) : now);
        int64_t ts = -2;
        hl_sig_result_t again = hl_sig_reverify(&a, &h, (const unsigned char *)body, blen, &ts);
        const char *name = json_string_value(json_object_get(v, "name"));
        if (at == HL_SIG_OK || at == HL_SIG_STALE) {
            if (again != HL_SIG_OK) fail_msg("vector '%s': does not re-verify", name);
            if (ts != vector_ts(&h, a.scheme))
                fail_msg("vector '%s': signed ts %lld", name, (long long)ts);
            stale += at == HL_SIG_STALE;
            ok++;
            if (blen > 0 && a.scheme != HL_SIG_SCHEME_BEARER) {
                char edited[4096];
                assert_true(blen < sizeof(edited));
                memcpy(edited, body, blen);
                edited[blen - 1] ^= 1;
                assert_int_equal(hl_sig_reverify(&a, &h, (const unsigned char *)edited, blen, &ts),
                                 HL_SIG_BAD);
                assert_int_equal(ts, -1);
            }
        } else if (again != at) {
            fail_msg("vector '%s': %s at arrival, %s again", name, hl_sig_code(at),
                     hl_sig_code(again));
        }
        hl_sig_deinit(&a);
    }
    assert_true(stale >= 4);
    assert_true(ok >= 15);
    json_decref(root);
}

static void test_reverify_no_key(void **state)
{
    (void)state;
    hl_sig_t a;
    hl_sig_init(&a, HL_SIG_SCHEME_STRIPE, 300);
    hl_sig_headers_t h = {NULL, 0};
    int64_t ts = 7;
    assert_int_equal(hl_sig_reverify(&a, &h, (const unsigned char *)"{}", 2, &ts), HL_SIG_BAD);
    assert_int_equal(ts, -1);
    assert_int_equal(hl_sig_reverify(&a, &h, (const unsigned char *)"{}", 2, NULL), HL_SIG_BAD);
    hl_sig_deinit(&a);
}

static void test_signed_headers(void **state)
{
    (void)state;
    const char *names[HL_SIG_MAX_SIGNED_HEADERS];
    hl_sig_t a;
    hl_sig_header_t svix[] = {{"svix-signature", "v1,x"}};
    hl_sig_header_t std[] = {{"webhook-signature", "v1,x"}};
    hl_sig_headers_t hs = {svix, 1}, hw = {std, 1};
    hl_sig_init(&a, HL_SIG_SCHEME_STANDARD, 300);
    assert_int_equal(hl_sig_signed_headers(&a, &hw, names), 3);
    assert_string_equal(names[0], "webhook-id");
    assert_string_equal(names[1], "webhook-timestamp");
    assert_string_equal(names[2], "webhook-signature");
    assert_int_equal(hl_sig_signed_headers(&a, &hs, names), 3);
    assert_string_equal(names[2], "svix-signature");
    a.scheme = HL_SIG_SCHEME_STRIPE;
    assert_int_equal(hl_sig_signed_headers(&a, &hw, names), 1);
    assert_string_equal(names[0], "stripe-signature");
    a.scheme = HL_SIG_SCHEME_HMAC;
    snprintf(a.header, sizeof(a.header), "x-hub-signature-256");
    assert_int_equal(hl_sig_signed_headers(&a, &hw, names), 1);
    assert_string_equal(names[0], "x-hub-signature-256");
    a.scheme = HL_SIG_SCHEME_SENDGRID;
    assert_int_equal(hl_sig_signed_headers(&a, &hw, names), 2);
    assert_string_equal(names[1], "x-twilio-email-event-webhook-timestamp");
    /* A bearer token is a credential: nothing of it is ever kept. */
    a.scheme = HL_SIG_SCHEME_BEARER;
    snprintf(a.header, sizeof(a.header), "Authorization");
    assert_int_equal(hl_sig_signed_headers(&a, &hw, names), 0);
    hl_sig_deinit(&a);
}

static void test_signed_json(void **state)
{
    (void)state;
    char buf[HL_SIG_SIGNED_JSON_MAX];
    hl_sig_t a;
    hl_sig_init(&a, HL_SIG_SCHEME_STANDARD, 300);
    hl_sig_header_t hv[] = {{"Webhook-Id", "msg_1"},
                            {"Authorization", "Bearer secret"},
                            {"webhook-signature", "v1,a\"b\\c"},
                            {"webhook-timestamp", "1700000000"}};
    hl_sig_headers_t h = {hv, 4};
    int n = hl_sig_signed_json(&a, &h, buf, sizeof(buf));
    assert_string_equal(buf, "{\"webhook-id\":\"msg_1\",\"webhook-timestamp\":\"1700000000\","
                             "\"webhook-signature\":\"v1,a\\\"b\\\\c\"}");
    assert_int_equal(n, (int)strlen(buf));
    json_t *j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "webhook-signature")), "v1,a\"b\\c");
    assert_null(json_object_get(j, "authorization"));
    json_decref(j);
    /* Not printable ASCII: refused rather than kept differently. */
    hv[2].value = "v1,\x01";
    assert_int_equal(hl_sig_signed_json(&a, &h, buf, sizeof(buf)), HL_ERANGE);
    hv[2].value = "v1,\xc3\xa9";
    assert_int_equal(hl_sig_signed_json(&a, &h, buf, sizeof(buf)), HL_ERANGE);
    hv[2].value = "v1,x";
    assert_int_equal(hl_sig_signed_json(&a, &h, buf, 20), HL_ERANGE);
    /* The largest values fit the documented cap. */
    static char big[HL_SIG_MAX_HEADER + 1];
    memset(big, '"', HL_SIG_MAX_HEADER);
    hv[0].value = hv[2].value = hv[3].value = big;
    assert_true(hl_sig_signed_json(&a, &h, buf, sizeof(buf)) > 3 * 2 * HL_SIG_MAX_HEADER);
    /* Bearer: nothing. */
    a.scheme = HL_SIG_SCHEME_BEARER;
    snprintf(a.header, sizeof(a.header), "Authorization");
    assert_int_equal(hl_sig_signed_json(&a, &h, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    hl_sig_deinit(&a);
}

/* A stored event: the JSON hl_sig_signed_json kept, verified again years later. */
static void test_reverify_stored(void **state)
{
    (void)state;
    static const char body[] = "{\"test\": 2432232314}";
    static const char secret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    hl_sig_t a;
    char err[128], buf[HL_SIG_SIGNED_JSON_MAX];
    hl_sig_init(&a, HL_SIG_SCHEME_STANDARD, 300);
    assert_int_equal(hl_sig_add_key(&a, secret, strlen(secret), err, sizeof(err)), 0);
    hl_sig_header_t hv[] = {
        {"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"},
        {"webhook-timestamp", "1614265330"},
        {"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
    hl_sig_headers_t h = {hv, 3};
    int n = hl_sig_signed_json(&a, &h, buf, sizeof(buf));
    assert_true(n > 0);
    hl_sig_result_t res = HL_SIG_BAD;
    int64_t ts = 0;
    assert_int_equal(hl_sig_reverify_stored(&a, buf, (size_t)n, (const unsigned char *)body,
                                            strlen(body), &res, &ts),
                     0);
    assert_int_equal(res, HL_SIG_OK);
    assert_true(ts == 1614265330);
    /* Stale at arrival time now, yet authentic. */
    assert_int_equal(hl_sig_verify(&a, &h, (const unsigned char *)body, strlen(body), 1714265330),
                     HL_SIG_STALE);
    assert_int_equal(
        hl_sig_reverify_stored(&a, buf, (size_t)n, (const unsigned char *)"{}", 2, &res, &ts), 0);
    assert_int_equal(res, HL_SIG_BAD);
    static const char *const bad[] = {"",
                                      "[]",
                                      "{\"a\":1}",
                                      "{\"a\":\"1\",\"a\":\"2\"}",
                                      "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}",
                                      "{\"a\":\"x\\u0000y\"}",
                                      "{"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(hl_sig_reverify_stored(&a, bad[i], strlen(bad[i]),
                                                (const unsigned char *)body, strlen(body), &res,
                                                &ts),
                         HL_EPARSE);
    assert_int_equal(
        hl_sig_reverify_stored(&a, NULL, 0, (const unsigned char *)body, strlen(body), &res, &ts),
        HL_EPARSE);
    hl_sig_deinit(&a);
}

/* The whole check of a stored event (hl_sig_check_stored), as `hookline reverify` and the
 * auditor run it: one good event, then each of its parts spoiled in turn. */
static void test_check_stored(void **state)
{
    (void)state;
    static const char body[] = "{\"test\": 2432232314}";
    static const char secret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    static const char mid[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    hl_sig_t a;
    char err[128], sj[HL_SIG_SIGNED_JSON_MAX], digest[HL_SIG_SHA256_HEX + 1];
    hl_sig_init(&a, HL_SIG_SCHEME_STANDARD, 300);
    assert_int_equal(hl_sig_add_key(&a, secret, strlen(secret), err, sizeof(err)), 0);
    hl_sig_header_t hv[] = {
        {"webhook-id", mid},
        {"webhook-timestamp", "1614265330"},
        {"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}};
    hl_sig_headers_t h = {hv, 3};
    assert_true(hl_sig_signed_json(&a, &h, sj, sizeof(sj)) > 0);
    hl_sig_sha256_hex(body, strlen(body), digest);
    hl_sig_stored_event_t ev = {(const unsigned char *)body, strlen(body), sj, digest,
                                "{\"test\": 2432232314}"};
    hl_sig_stored_check_t r;
    hl_sig_check_stored(&a, &ev, mid, true, &r);
    assert_true(r.headers_ok && r.signature == HL_SIG_OK && r.digest_matches);
    assert_true(r.signed_ts == 1614265330);
    assert_string_equal(r.body_sha256, digest);
    assert_int_equal(r.payload_matches, 1);
    assert_true(r.has_signed_id && r.signed_id_matches);
    assert_string_equal(r.signed_id, mid);
    assert_true(hl_sig_stored_ok(&r));
    /* The signed id is not the row's message id. */
    hl_sig_check_stored(&a, &ev, "msg_other", true, &r);
    assert_true(r.has_signed_id && !r.signed_id_matches && !hl_sig_stored_ok(&r));
    /* Not checked when the source's message id is not the signed one. */
    hl_sig_check_stored(&a, &ev, "msg_other", false, &r);
    assert_true(!r.has_signed_id && hl_sig_stored_ok(&r));
    /* The digest column edited. */
    ev.body_sha256 = "00";
    hl_sig_check_stored(&a, &ev, mid, true, &r);
    assert_true(!r.digest_matches && !hl_sig_stored_ok(&r));
    ev.body_sha256 = digest;
    /* The payload column edited; a null payload differs too. */
    ev.payload = "{\"test\": 1}";
    hl_sig_check_stored(&a, &ev, mid, true, &r);
    assert_true(r.payload_matches == 0 && !hl_sig_stored_ok(&r));
    ev.payload = NULL;
    hl_sig_check_stored(&a, &ev, mid, true, &r);
    assert_true(r.payload_matches == 0 && !hl_sig_stored_ok(&r));
    ev.payload = body;
    /* Headers that cannot be read. */
    ev.signed_json = "{";
    hl_sig_check_stored(&a, &ev, mid, true, &r);
    assert_true(!r.headers_ok && r.signature == HL_SIG_BAD && r.signed_ts == -1);
    assert_false(hl_sig_stored_ok(&r));
    hl_sig_deinit(&a);
}

/* The signed id of a stored event: the Standard Webhooks id of the family the headers use;
 * nothing for a scheme that signs no id; malformed headers refused. */
static void test_stored_signed_id(void **state)
{
    (void)state;
    hl_sig_t a;
    char id[32];
    hl_sig_init(&a, HL_SIG_SCHEME_STANDARD, 300);
    static const char web[] = "{\"webhook-id\":\"msg_1\",\"webhook-timestamp\":\"1\","
                              "\"webhook-signature\":\"v1,x\"}";
    static const char svix[] = "{\"svix-id\":\"msg_2\",\"svix-timestamp\":\"1\","
                               "\"svix-signature\":\"v1,x\"}";
    assert_int_equal(hl_sig_stored_signed_id(&a, web, strlen(web), id, sizeof id), 1);
    assert_string_equal(id, "msg_1");
    assert_int_equal(hl_sig_stored_signed_id(&a, svix, strlen(svix), id, sizeof id), 1);
    assert_string_equal(id, "msg_2");
    static const char none[] = "{\"webhook-signature\":\"v1,x\"}";
    assert_int_equal(hl_sig_stored_signed_id(&a, none, strlen(none), id, sizeof id), 0);
    assert_int_equal(hl_sig_stored_signed_id(&a, "{", 1, id, sizeof id), HL_EPARSE);
    assert_int_equal(hl_sig_stored_signed_id(&a, NULL, 0, id, sizeof id), HL_EPARSE);
    hl_sig_deinit(&a);
    hl_sig_init(&a, HL_SIG_SCHEME_STRIPE, 300);
    static const char stripe[] = "{\"stripe-signature\":\"t=1,v1=ab\"}";
    assert_int_equal(hl_sig_stored_signed_id(&a, stripe, strlen(stripe), id, sizeof id), 0);
    hl_sig_deinit(&a);
}

/* A payload column against the raw body it was parsed from, as jsonb writes it back. */
static void test_stored_payload_matches(void **state)
{
    (void)state;
    static const char raw[] = "{\"n\": 1e2, \"a\": [1, 2.50, \"caf\u00e9\"],"
                              " \"big\": 123456789012345678901}\n";
    const unsigned char *b = (const unsigned char *)raw;
    static const char same[] = "{\"a\": [1, 2.50, \"caf\u00e9\"], \"n\": 100,"
                               " \"big\": 123456789012345678901}";
    static const char edited[] = "{\"a\": [1, 2.50, \"caf\u00e9\"], \"n\": 99,"
                                 " \"big\": 123456789012345678901}";
    assert_int_equal(hl_sig_stored_payload_matches(b, strlen(raw), same, strlen(same)), 1);
    assert_int_equal(hl_sig_stored_payload_matches(b, strlen(raw), edited, strlen(edited)), 0);
    assert_int_equal(hl_sig_stored_payload_matches(b, strlen(raw), "{", 1), 0);
    assert_int_equal(hl_sig_stored_payload_matches(b, strlen(raw), NULL, 0), 0);
    assert_int_equal(
        hl_sig_stored_payload_matches((const unsigned char *)"{\"x\":", 5, same, strlen(same)),
        HL_EPARSE);
}

static int payload_matches(const char *body, const char *payload)
{
    return hl_sig_stored_payload_matches((const unsigned char *)body, strlen(body), payload,
                                         strlen(payload));
}

/* Numbers by exact value: integers past 2^53 and past 64 bits keep every digit, as jsonb
 * writes them, and jsonb's own spellings (1e400 in full, -0 as 0, 2.50e1 as 25.0) match. */
static void test_stored_payload_numbers_exact(void **state)
{
    (void)state;
    assert_int_equal(
        payload_matches("{\"n\": 12345678901234567890}", "{\"n\": 12345678901234567891}"), 0);
    assert_int_equal(payload_matches("[9007199254740993]", "[9007199254740992]"), 0);
    assert_int_equal(payload_matches("[9007199254740993]", "[9007199254740993]"), 1);
    assert_int_equal(payload_matches("[-9223372036854775809]", "[-9223372036854775809]"), 1);
    assert_int_equal(payload_matches("[0.1]", "[0.10000000000000001]"), 0);
    char full[404] = "[1";
    memset(full + 2, '0', 400);
    memcpy(full + 402, "]", 2);
    assert_int_equal(payload_matches("[1e400]", full), 1);
    assert_int_equal(payload_matches("[1e401]", full), 0);
    assert_int_equal(payload_matches("[1e400]", "[1e401]"), 0);
    assert_int_equal(payload_matches("[-0, -0.0, 1.0, 2.50e1, 1e-5, 1.5E+3, 0e9, -1e-2]",
                                     "[0, 0.0, 1.0, 25.0, 0.00001, 1500, 0, -0.01]"),
                     1);
    assert_int_equal(payload_matches("[1.0]", "[1]"), 1);   /* one value, two spellings */
    assert_int_equal(payload_matches("[1]", "[\"1\"]"), 0); /* a number is no string */
    assert_int_equal(payload_matches("[-1]", "[1]"), 0);
    assert_int_equal(payload_matches("[10]", "[1]"), 0);
    assert_int_equal(payload_matches("[0.01]", "[0.1]"), 0);
    /* Bad input: numbers outside JSON's grammar, an exponent past the cap, a NUL string. */
    assert_int_equal(payload_matches("[01]", "[1]"), HL_EPARSE);
    assert_int_equal(payload_matches("[1.]", "[1]"), HL_EPARSE);
    assert_int_equal(payload_matches("[-]", "[1]"), HL_EPARSE);
    assert_int_equal(payload_matches("[1e]", "[1]"), HL_EPARSE);
    assert_int_equal(payload_matches("[1e9999999999]", "[1]"), HL_EPARSE);
    assert_int_equal(payload_matches("[\"\\u0000n1e0\"]", "[1]"), HL_EPARSE);
    assert_int_equal(payload_matches("[1 2]", "[1]"), HL_EPARSE);
    assert_int_equal(payload_matches("[1]", "[\"\\u00001e0\"]"), 0);
}

static void test_sha256_hex(void **state)
{
    (void)state;
    char out[HL_SIG_SHA256_HEX + 1];
    hl_sig_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hl_sig_sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reverify_vectors),
        cmocka_unit_test(test_reverify_no_key),
        cmocka_unit_test(test_signed_headers),
        cmocka_unit_test(test_signed_json),
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_reverify_stored),
        cmocka_unit_test(test_stored_signed_id),
        cmocka_unit_test(test_stored_payload_matches),
        cmocka_unit_test(test_stored_payload_numbers_exact),
        cmocka_unit_test(test_check_stored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
