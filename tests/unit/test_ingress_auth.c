/* Signature schemes: every vector made by the providers' SDKs (tests/vectors/signatures.json)
 * with a fixed clock, then malformed headers for each parser. */
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
#include "source_name.h"

#define STD_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define STD_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define STD_TS "1614265330"
#define STD_BODY "{\"test\": 2432232314}"
#define STD_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define STD_NOW 1614265330

static void test_vectors(void **state)
{
    json_error_t jerr;
    json_t *root = json_load_file(HL_VECTORS_FILE, 0, &jerr);
    if (root == NULL) fail_msg("cannot read %s: %s", HL_VECTORS_FILE, jerr.text);
    int64_t now = json_integer_value(json_object_get(root, "now"));
    int64_t tol = json_integer_value(json_object_get(root, "tolerance_s"));
    json_t *vectors = json_object_get(root, "vectors");
    size_t i, checked = 0, valid = 0;
    json_t *v;
    json_array_foreach(vectors, i, v)
    {
        hl_sig_t a;
        sig_vector_load(&a, v, tol);
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
        json_t *vnow = json_object_get(v, "now");
        hl_sig_result_t r = hl_sig_verify(&a, &h, (const unsigned char *)body, strlen(body),
                                          vnow ? json_integer_value(vnow) : now);
        const char *got = r == HL_SIG_OK ? "ok" : hl_sig_code(r);
        const char *want = json_string_value(json_object_get(v, "expect"));
        if (strcmp(got, want) != 0)
            fail_msg("vector '%s': got %s, want %s", json_string_value(json_object_get(v, "name")),
                     got, want);
        valid += r == HL_SIG_OK;
        checked++;
        hl_sig_deinit(&a);
    }
    assert_true(checked >= 30);
    assert_true(valid >= 10);
    json_decref(root);
}

/* Runs the standard-webhooks verifier on the published example with one header replaced
 * (or added when `extra` is set). */
static hl_sig_result_t std_with(const char *name, const char *value, int extra)
{
    hl_sig_t a;
    char err[128];
    hl_sig_init(&a, HL_SIG_SCHEME_STANDARD, 300);
    assert_int_equal(hl_sig_add_key(&a, STD_SECRET, strlen(STD_SECRET), err, sizeof(err)), 0);
    hl_sig_header_t hv[4] = {
        {"webhook-id", STD_ID}, {"webhook-timestamp", STD_TS}, {"webhook-signature", STD_SIG}};
    size_t n = 3;
    if (extra)
        hv[n++] = (hl_sig_header_t){name, value};
    else
        for (size_t i = 0; i < 3; i++)
            if (strcmp(hv[i].name, name) == 0) hv[i].value = value;
    hl_sig_headers_t h = {hv, n};
    hl_sig_result_t r =
        hl_sig_verify(&a, &h, (const unsigned char *)STD_BODY, strlen(STD_BODY), STD_NOW);
    hl_sig_deinit(&a);
    return r;
}

static char huge[8192];

static void test_standard_malformed(void **state)
{
    assert_int_equal(std_with("webhook-signature", STD_SIG, 0), HL_SIG_OK);
    assert_int_equal(std_with("webhook-signature", "", 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-signature", "v1,", 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVl", 0),
                     HL_SIG_MALFORMED);
    assert_int_equal(
        std_with("webhook-signature", "v1,g0hM9SsE*OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 0),
        HL_SIG_MALFORMED);
    assert_int_equal(
        std_with("webhook-signature", "v1 g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", 0),
        HL_SIG_MALFORMED);
    assert_int_equal(
        std_with("webhook-signature", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0),
        HL_SIG_BAD);
    memset(huge, 'A', sizeof(huge) - 1);
    memcpy(huge, "v1,", 3);
    assert_int_equal(std_with("webhook-signature", huge, 0), HL_SIG_MALFORMED);
    /* Seventeen well-formed wrong signatures before the right one: over the cap, refused. */
    char many[2048];
    size_t used = 0;
    for (int i = 0; i < 17; i++)
        used += (size_t)snprintf(many + used, sizeof(many) - used, "%s",
                                 "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ");
    snprintf(many + used, sizeof(many) - used, "%s", STD_SIG);
    assert_int_equal(std_with("webhook-signature", many, 0), HL_SIG_MALFORMED);
    /* The right one among sixteen, in any position: each candidate is compared. */
    used = 0;
    for (int i = 0; i < 15; i++)
        used += (size_t)snprintf(many + used, sizeof(many) - used, "%s",
                                 "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= ");
    snprintf(many + used, sizeof(many) - used, "%s", STD_SIG);
    assert_int_equal(std_with("webhook-signature", many, 0), HL_SIG_OK);
    /* More than two Ed25519 candidates: each costs a pass over the body per key, refused. */
    char v1a[4 + 88 + 2] = "v1a,"; /* 64 zero bytes: 86 base64 digits and "==" */
    memset(v1a + 4, 'A', 86);
    memcpy(v1a + 90, "== ", 4);
    snprintf(many, sizeof(many), "%s%s%s", v1a, v1a, STD_SIG);
    assert_int_equal(std_with("webhook-signature", many, 0), HL_SIG_OK);
    snprintf(many, sizeof(many), "%s%s%s%s", v1a, v1a, v1a, STD_SIG);
    assert_int_equal(std_with("webhook-signature", many, 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-signature", STD_SIG, 1), HL_SIG_MALFORMED); /* repeated */
    assert_int_equal(std_with("webhook-id", STD_ID, 1), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-timestamp", "16142653x0", 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-timestamp", "", 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-timestamp", "1614265330000", 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-timestamp", "-1614265330", 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-id", "", 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-id", huge, 0), HL_SIG_MALFORMED);
    assert_int_equal(std_with("webhook-timestamp", "1614265331", 0), HL_SIG_BAD);
}

static void test_standard_missing(void **state)
{
    hl_sig_t a;
    char err[128];
    hl_sig_init(&a, HL_SIG_SCHEME_STANDARD, 300);
    assert_int_equal(hl_sig_add_key(&a, STD_SECRET, strlen(STD_SECRET), err, sizeof(err)), 0);
    hl_sig_header_t only_sig[] = {{"webhook-signature", STD_SIG}};
    hl_sig_headers_t h = {only_sig, 1};
    const unsigned char *b = (const unsigned char *)STD_BODY;
    assert_int_equal(hl_sig_verify(&a, &h, b, strlen(STD_BODY), STD_NOW), HL_SIG_MISSING);
    h.n = 0;
    assert_int_equal(hl_sig_verify(&a, &h, b, strlen(STD_BODY), STD_NOW), HL_SIG_MISSING);
    /* Mixed prefixes do not combine: webhook-signature with svix-id is missing webhook-id. */
    hl_sig_header_t mixed[] = {
        {"svix-id", STD_ID}, {"webhook-timestamp", STD_TS}, {"webhook-signature", STD_SIG}};
    h = (hl_sig_headers_t){mixed, 3};
    assert_int_equal(hl_sig_verify(&a, &h, b, strlen(STD_BODY), STD_NOW), HL_SIG_MISSING);
    hl_sig_deinit(&a);
}

static hl_sig_result_t stripe_with(const char *value, int twice)
{
    hl_sig_t a;
    char err[128];
    hl_sig_init(&a, HL_SIG_SCHEME_STRIPE, 300);
    assert_int_equal(hl_sig_add_key(&a, "whsec_test", 10, err, sizeof(err)), 0);
    hl_sig_header_t hv[2] = {{"Stripe-Signature", value}, {"stripe-signature", value}};
    hl_sig_headers_t h = {hv, twice ? 2 : 1};
    hl_sig_result_t r = hl_sig_verify(&a, &h, (const unsigned char *)"{}", 2, 1700000000);
    hl_sig_deinit(&a);
    return r;
}

#define HEX64 "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"

static void test_stripe_malformed(void **state)
{
    assert_int_equal(stripe_with("", 0), HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("t=", 0), HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("t=1700000000", 0), HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("v1=" HEX64, 0), HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("t=1700000000,t=1700000001,v1=" HEX64, 0), HL_SIG_MALFORMED);
    assert_int_equal(
        stripe_with(
            "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8b", 0),
        HL_SIG_MALFORMED);
    assert_int_equal(
        stripe_with(
            "t=1700000000,v1=zz57a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd", 0),
        HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("t=1700000000,v1", 0), HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("t=1700000000,,v1=" HEX64, 0), HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("t=abc,v1=" HEX64, 0), HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("t=1700000000,v1=" HEX64, 1), HL_SIG_MALFORMED);
    assert_int_equal(stripe_with("t=1700000000,v1=" HEX64, 0), HL_SIG_BAD);
    memset(huge, '1', sizeof(huge) - 1);
    memcpy(huge, "t=", 2);
    assert_int_equal(stripe_with(huge, 0), HL_SIG_MALFORMED);
}

static hl_sig_result_t hmac_with(const char *header, const char *value, hl_sig_encoding_t enc,
                                 const char *prefix)
{
    hl_sig_t a;
    char err[128];
    hl_sig_init(&a, HL_SIG_SCHEME_HMAC, 300);
    snprintf(a.header, sizeof(a.header), "X-Hub-Signature-256");
    snprintf(a.prefix, sizeof(a.prefix), "%s", prefix);
    a.encoding = enc;
    const char *secret = "It's a Secret to Everybody";
    assert_int_equal(hl_sig_add_key(&a, secret, strlen(secret), err, sizeof(err)), 0);
    hl_sig_header_t hv[2] = {{header, value}, {"X-Other", "1"}};
    hl_sig_headers_t h = {hv, 2};
    hl_sig_result_t r = hl_sig_verify(&a, &h, (const unsigned char *)"Hello, World!", 13, 0);
    hl_sig_deinit(&a);
    return r;
}

#define GH_HEX "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
#define GH_B64 "dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc="

static void test_hmac_malformed(void **state)
{
    assert_int_equal(hmac_with("X-Hub-Signature-256", "sha256=" GH_HEX, HL_SIG_ENC_HEX, "sha256="),
                     HL_SIG_OK);
    assert_int_equal(hmac_with("x-hub-signature-256", "sha256=" GH_HEX, HL_SIG_ENC_HEX, "sha256="),
                     HL_SIG_OK);
    assert_int_equal(hmac_with("X-Hub-Signature-256", GH_B64, HL_SIG_ENC_BASE64, ""), HL_SIG_OK);
    assert_int_equal(hmac_with("X-Hub-Signature-256", "sha256=" GH_HEX, HL_SIG_ENC_HEX, ""),
                     HL_SIG_MALFORMED);
    assert_int_equal(hmac_with("X-Hub-Signature-256", GH_HEX, HL_SIG_ENC_HEX, "sha256="),
                     HL_SIG_MALFORMED);
    assert_int_equal(hmac_with("X-Hub-Signature-256", "", HL_SIG_ENC_HEX, ""), HL_SIG_MALFORMED);
    assert_int_equal(hmac_with("X-Hub-Signature-256", "sha256=", HL_SIG_ENC_HEX, "sha256="),
                     HL_SIG_MALFORMED);
    assert_int_equal(hmac_with("X-Hub-Signature-256",
                               "sha256="
                               "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
                               HL_SIG_ENC_HEX, "sha256="),
                     HL_SIG_MALFORMED);
    assert_int_equal(hmac_with("X-Hub-Signature-256", "dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc",
                               HL_SIG_ENC_BASE64, ""),
                     HL_SIG_MALFORMED);
    assert_int_equal(hmac_with("X-Hub-Signature-256",
                               "dXEH6g6yUJ_CESIczphLijdXC211hsIsRvQ3nIsEPhc=", HL_SIG_ENC_BASE64,
                               ""),
                     HL_SIG_MALFORMED);
    assert_int_equal(hmac_with("X-Hub-Signature-256",
                               "sha256="
                               "857107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                               HL_SIG_ENC_HEX, "sha256="),
                     HL_SIG_BAD);
    assert_int_equal(hmac_with("X-Other-Header", "sha256=" GH_HEX, HL_SIG_ENC_HEX, "sha256="),
                     HL_SIG_MISSING);
    memset(huge, 'a', sizeof(huge) - 1);
    assert_int_equal(hmac_with("X-Hub-Signature-256", huge, HL_SIG_ENC_HEX, ""), HL_SIG_MALFORMED);
}

static hl_sig_result_t bearer_with(const char *value, int twice)
{
    hl_sig_t a;
    char err[128];
    hl_sig_init(&a, HL_SIG_SCHEME_BEARER, 300);
    snprintf(a.header, sizeof(a.header), "Authorization");
    assert_int_equal(hl_sig_add_key(&a, "tok-123", 7, err, sizeof(err)), 0);
    assert_int_equal(hl_sig_add_key(&a, "tok-456", 7, err, sizeof(err)), 0);
    hl_sig_header_t hv[2] = {{"Authorization", value}, {"authorization", value}};
    hl_sig_headers_t h = {hv, twice ? 2 : 1};
    hl_sig_result_t r = hl_sig_verify(&a, &h, (const unsigned char *)"{}", 2, 0);
    hl_sig_deinit(&a);
    return r;
}

static void test_bearer_malformed(void **state)
{
    assert_int_equal(bearer_with("Bearer tok-456", 0), HL_SIG_OK);
    assert_int_equal(bearer_with("bearer tok-123", 0), HL_SIG_OK);
    assert_int_equal(bearer_with("Bearer tok-12", 0), HL_SIG_BAD);
    assert_int_equal(bearer_with("Bearer tok-1234", 0), HL_SIG_BAD);
    assert_int_equal(bearer_with("Bearer ", 0), HL_SIG_MALFORMED);
    assert_int_equal(bearer_with("", 0), HL_SIG_MALFORMED);
    assert_int_equal(bearer_with("Basic dG9rLTEyMw==", 0), HL_SIG_MALFORMED);
    assert_int_equal(bearer_with("tok-123", 0), HL_SIG_MALFORMED);
    assert_int_equal(bearer_with("Bearer tok-123", 1), HL_SIG_MALFORMED);
}

/* A real P-256 key and signature from the vectors file, so the malformed cases are one edit
 * away from a valid request. */
static void test_sendgrid_malformed(void **state)
{
    json_error_t jerr;
    json_t *root = json_load_file(HL_VECTORS_FILE, 0, &jerr);
    assert_non_null(root);
    json_t *v = NULL, *it;
    size_t i;
    json_array_foreach(json_object_get(root, "vectors"), i,
                       it) if (strcmp(json_string_value(json_object_get(it, "name")),
                                      "sendgrid valid") == 0) v = it;
    assert_non_null(v);
    hl_sig_t a;
    sig_vector_load(&a, v, 300);
    json_t *hs = json_object_get(v, "headers");
    const char *sig = json_string_value(json_array_get(json_array_get(hs, 0), 1));
    const char *ts = json_string_value(json_array_get(json_array_get(hs, 1), 1));
    const char *body = json_string_value(json_object_get(v, "body"));
    const unsigned char *b = (const unsigned char *)body;
    size_t bl = strlen(body);
    int64_t now = json_integer_value(json_object_get(root, "now"));
    char trunc[256];
    snprintf(trunc, sizeof(trunc), "%.*s", (int)strlen(sig) - 8, sig);
    struct {
        const char *sig, *ts;
        int nsig;
        hl_sig_result_t want;
    } cases[] = {
        {sig, ts, 1, HL_SIG_OK},
        {"", ts, 1, HL_SIG_MALFORMED},
        {"!!!!", ts, 1, HL_SIG_MALFORMED},
        {"AAAAAAAAAAAAAAAA", ts, 1, HL_SIG_MALFORMED}, /* base64, but not DER */
        {"MAYCAQECAQE=", ts, 1, HL_SIG_BAD},           /* DER (r=1, s=1), but wrong */
        {trunc, ts, 1, HL_SIG_MALFORMED},
        {sig, "", 1, HL_SIG_MALFORMED},
        {sig, "17OOOOOOOO", 1, HL_SIG_MALFORMED},
        {sig, NULL, 1, HL_SIG_MISSING},
        {sig, ts, 2, HL_SIG_MALFORMED},
        {huge, ts, 1, HL_SIG_MALFORMED},
    };
    memset(huge, 'A', sizeof(huge) - 1);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        hl_sig_header_t hv[3] = {{"X-Twilio-Email-Event-Webhook-Signature", cases[c].sig},
                                 {"X-Twilio-Email-Event-Webhook-Timestamp", cases[c].ts},
                                 {"X-Twilio-Email-Event-Webhook-Signature", cases[c].sig}};
        hl_sig_headers_t h = {hv, cases[c].ts ? 2 : 1};
        if (cases[c].nsig == 2)
            hv[1] = hv[2], hv[2] = (hl_sig_header_t){"X-Twilio-Email-Event-Webhook-Timestamp", ts},
            h.n = 3;
        hl_sig_result_t r = hl_sig_verify(&a, &h, b, bl, now);
        if (r != cases[c].want) fail_msg("sendgrid case %zu: got %d want %d", c, r, cases[c].want);
    }
    hl_sig_deinit(&a);
    json_decref(root);
}

static void test_key_loading(void **state)
{
    hl_sig_t a;
    char err[128];
    hl_sig_init(&a, HL_SIG_SCHEME_STANDARD, 300);
    assert_int_equal(hl_sig_add_key(&a, "whsec_!!!", 9, err, sizeof(err)), HL_ECONFIG);
    assert_int_equal(hl_sig_add_key(&a, "whsec_AAAA", 10, err, sizeof(err)),
                     HL_ECONFIG); /* 3 bytes */
    assert_int_equal(hl_sig_add_key(&a, "whpk_AAAA", 9, err, sizeof(err)), HL_ECONFIG);
    assert_null(strstr(err, "AAAA")); /* the reason never repeats the value */
    for (int i = 0; i < HL_SIG_MAX_KEYS; i++)
        assert_int_equal(hl_sig_add_key(&a, STD_SECRET, strlen(STD_SECRET), err, sizeof(err)), 0);
    assert_int_equal(hl_sig_add_key(&a, STD_SECRET, strlen(STD_SECRET), err, sizeof(err)),
                     HL_ERANGE);
    hl_sig_deinit(&a);
    hl_sig_init(&a, HL_SIG_SCHEME_SENDGRID, 300);
    assert_int_equal(hl_sig_add_key(&a, "bm90IGEga2V5", 12, err, sizeof(err)), HL_ECONFIG);
    /* An Ed25519 SubjectPublicKeyInfo is DER, but not P-256. */
    const char *ed = "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=";
    assert_int_equal(hl_sig_add_key(&a, ed, strlen(ed), err, sizeof(err)), HL_ECONFIG);
    hl_sig_deinit(&a);
    /* No key at all fails closed. */
    hl_sig_init(&a, HL_SIG_SCHEME_BEARER, 300);
    hl_sig_header_t hv[] = {{"Authorization", "Bearer x"}};
    hl_sig_headers_t h = {hv, 1};
    assert_int_equal(hl_sig_verify(&a, &h, (const unsigned char *)"{}", 2, 0), HL_SIG_BAD);
    hl_sig_deinit(&a);
}

static void test_parse_unix_s(void **state)
{
    int64_t t;
    assert_int_equal(hl_sig_parse_unix_s("1700000000", 10, &t), 0);
    assert_true(t == 1700000000);
    assert_int_equal(hl_sig_parse_unix_s("17000000000000", 14, &t), HL_EPARSE);
    assert_int_equal(hl_sig_parse_unix_s("+1", 2, &t), HL_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_standard_malformed),
        cmocka_unit_test(test_standard_missing),
        cmocka_unit_test(test_stripe_malformed),
        cmocka_unit_test(test_hmac_malformed),
        cmocka_unit_test(test_bearer_malformed),
        cmocka_unit_test(test_sendgrid_malformed),
        cmocka_unit_test(test_key_loading),
        cmocka_unit_test(test_parse_unix_s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
