/* Unit tests of the replay's request signing: published vectors where they exist, otherwise
 * verification with the matching public key or an independent HMAC, and bad secrets. */
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hl/util.h"
#include "sign.h"

static cli_signer_t *signer(cli_sign_scheme_t scheme, const char *secret)
{
    cli_sign_opts_t o = {.scheme = scheme};
    cli_signer_t *s = NULL;
    char err[256];
    assert_int_equal(cli_signer_new(&o, secret, strlen(secret), &s, err, sizeof(err)), 0);
    return s;
}

static const char *header(const cli_sign_headers_t *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->name[i], name) == 0) return h->value[i];
    return NULL;
}

/* The example of the Standard Webhooks specification. */
static void test_standard_v1_vector(void **state)
{
    (void)state;
    cli_signer_t *s = signer(CLI_SIGN_STANDARD, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    const char *body = "{\"test\": 2432232314}";
    cli_sign_headers_t h;
    assert_int_equal(
        cli_sign(s, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, strlen(body), &h), 0);
    assert_string_equal(header(&h, "webhook-signature"),
                        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_string_equal(header(&h, "webhook-id"), "msg_p5jXN8AQM9LWM0D4loKWxJek");
    assert_string_equal(header(&h, "webhook-timestamp"), "1614265330");
    /* A different body must change the signature. */
    assert_int_equal(cli_sign(s, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{}", 2, &h), 0);
    assert_string_not_equal(header(&h, "webhook-signature"),
                            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    cli_signer_free(s);
}

static void hmac_hex(const char *key, const char *msg, char out[65])
{
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, strlen(msg), mac, &ml);
    hl_hex(out, mac, 32);
}

static void test_stripe(void **state)
{
    (void)state;
    cli_signer_t *s = signer(CLI_SIGN_STRIPE, "whsec_stripe_test");
    const char *body = "{\"id\":\"evt_1\"}";
    cli_sign_headers_t h;
    assert_int_equal(cli_sign(s, "ignored", 1700000000, body, strlen(body), &h), 0);
    char hex[65], want[128];
    hmac_hex("whsec_stripe_test", "1700000000.{\"id\":\"evt_1\"}", hex);
    snprintf(want, sizeof(want), "t=1700000000,v1=%s", hex);
    assert_string_equal(header(&h, "Stripe-Signature"), want);
    cli_signer_free(s);
}

static void test_hmac_hex_prefix_and_base64(void **state)
{
    (void)state;
    const char *body = "{\"a\":1}";
    char err[128], hex[65], want[128];
    cli_signer_t *s = NULL;
    cli_sign_opts_t o = {
        .scheme = CLI_SIGN_HMAC, .header = "X-Hub-Signature-256", .prefix = "sha256="};
    assert_int_equal(cli_signer_new(&o, "topsecret", 9, &s, err, sizeof(err)), 0);
    cli_sign_headers_t h;
    assert_int_equal(cli_sign(s, NULL, 0, body, strlen(body), &h), 0);
    hmac_hex("topsecret", body, hex);
    snprintf(want, sizeof(want), "sha256=%s", hex);
    assert_int_equal(h.n, 1);
    assert_string_equal(header(&h, "X-Hub-Signature-256"), want);
    cli_signer_free(s);

    cli_sign_opts_t b = {.scheme = CLI_SIGN_HMAC, .header = "X-Shopify-Hmac-Sha256", .base64 = 1};
    assert_int_equal(cli_signer_new(&b, "topsecret", 9, &s, err, sizeof(err)), 0);
    assert_int_equal(cli_sign(s, NULL, 0, body, strlen(body), &h), 0);
    unsigned char mac[32], dec[64];
    unsigned int ml;
    HMAC(EVP_sha256(), "topsecret", 9, (const unsigned char *)body, strlen(body), mac, &ml);
    const char *v = header(&h, "X-Shopify-Hmac-Sha256");
    assert_non_null(v);
    assert_int_equal(hl_base64_decode_loose(v, strlen(v), dec, sizeof(dec)), 32);
    assert_memory_equal(dec, mac, 32);
    cli_signer_free(s);
}

static void test_bearer(void **state)
{
    (void)state;
    cli_signer_t *s = signer(CLI_SIGN_BEARER, "tok-123");
    cli_sign_headers_t h;
    assert_int_equal(cli_sign(s, NULL, 0, "{}", 2, &h), 0);
    assert_string_equal(header(&h, "Authorization"), "Bearer tok-123");
    cli_signer_free(s);
}

static void test_v1a_ed25519_verifies(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    unsigned char seed[32];
    size_t sl = sizeof(seed);
    assert_int_equal(EVP_PKEY_get_raw_private_key(k, seed, &sl), 1);
    char b64[64], secret[80];
    assert_int_equal(hl_base64_encode(seed, 32, b64, sizeof(b64)), 44);
    snprintf(secret, sizeof(secret), "whsk_%s", b64);
    /* The standard-webhooks scheme name with a whsk_ key selects v1a. */
    cli_signer_t *s = signer(CLI_SIGN_STANDARD, secret);
    const char *body = "{\"type\":\"x\"}";
    cli_sign_headers_t h;
    assert_int_equal(cli_sign(s, "msg_1", 1700000000, body, strlen(body), &h), 0);
    const char *v = header(&h, "webhook-signature");
    assert_non_null(v);
    assert_memory_equal(v, "v1a,", 4);
    unsigned char sig[80];
    assert_int_equal(hl_base64_decode_loose(v + 4, strlen(v + 4), sig, sizeof(sig)), 64);
    const char *content = "msg_1.1700000000.{\"type\":\"x\"}";
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k), 1);
    assert_int_equal(
        EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)content, strlen(content)), 1);
    /* A tampered body does not verify. */
    EVP_MD_CTX_free(ctx);
    ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k), 1);
    assert_int_not_equal(
        EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)"msg_1.1700000000.{}", 19), 1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    cli_signer_free(s);
}

static void test_sendgrid_ecdsa_verifies(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
    char *pem = NULL;
    long pl = BIO_get_mem_data(bio, &pem);
    cli_sign_opts_t o = {.scheme = CLI_SIGN_SENDGRID};
    cli_signer_t *s = NULL;
    char err[128];
    assert_int_equal(cli_signer_new(&o, pem, (size_t)pl, &s, err, sizeof(err)), 0);
    BIO_free(bio);
    const char *body = "[{\"event\":\"open\"}]";
    cli_sign_headers_t h;
    assert_int_equal(cli_sign(s, NULL, 1700000123, body, strlen(body), &h), 0);
    assert_string_equal(header(&h, "X-Twilio-Email-Event-Webhook-Timestamp"), "1700000123");
    const char *v = header(&h, "X-Twilio-Email-Event-Webhook-Signature");
    unsigned char der[128];
    int dl = hl_base64_decode_loose(v, strlen(v), der, sizeof(der));
    assert_true(dl > 60);
    const char *content = "1700000123[{\"event\":\"open\"}]";
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(
        EVP_DigestVerify(ctx, der, (size_t)dl, (const unsigned char *)content, strlen(content)), 1);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    cli_signer_free(s);
}

static void test_bad_secrets(void **state)
{
    (void)state;
    char err[256];
    cli_signer_t *s = (cli_signer_t *)1;
    cli_sign_opts_t std = {.scheme = CLI_SIGN_STANDARD};
    assert_int_equal(cli_signer_new(&std, "whsec_!!!", 9, &s, err, sizeof(err)), HL_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, "whsec_"));
    cli_sign_opts_t v1a = {.scheme = CLI_SIGN_STANDARD_V1A};
    assert_int_equal(cli_signer_new(&v1a, "whsk_AAAA", 9, &s, err, sizeof(err)), HL_EINVAL);
    cli_sign_opts_t sg = {.scheme = CLI_SIGN_SENDGRID};
    assert_int_equal(cli_signer_new(&sg, "not a key", 9, &s, err, sizeof(err)), HL_EINVAL);
    cli_sign_opts_t st = {.scheme = CLI_SIGN_STRIPE};
    assert_int_equal(cli_signer_new(&st, "", 0, &s, err, sizeof(err)), HL_EINVAL);
    /* An Ed25519 key is not an EC key for SendGrid. */
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, ed, NULL, NULL, 0, NULL, NULL), 1);
    char *pem = NULL;
    long pl = BIO_get_mem_data(bio, &pem);
    assert_int_equal(cli_signer_new(&sg, pem, (size_t)pl, &s, err, sizeof(err)), HL_EINVAL);
    BIO_free(bio);
    EVP_PKEY_free(ed);
    /* Secrets over 8 KiB are refused before any parsing. */
    char *big = calloc(9000, 1);
    memset(big, 'a', 8999);
    assert_int_equal(cli_signer_new(&st, big, 8999, &s, err, sizeof(err)), HL_EINVAL);
    free(big);
    cli_sign_scheme_t sc;
    assert_int_equal(cli_sign_scheme_parse("md5", &sc), HL_EINVAL);
    assert_int_equal(cli_sign_scheme_parse(NULL, &sc), HL_EINVAL);
    assert_int_equal(cli_sign_scheme_parse("sendgrid", &sc), 0);
    assert_int_equal(sc, CLI_SIGN_SENDGRID);
}

static void test_id_too_long(void **state)
{
    (void)state;
    cli_signer_t *s = signer(CLI_SIGN_STANDARD, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    char id[600];
    memset(id, 'x', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    cli_sign_headers_t h;
    assert_int_equal(cli_sign(s, id, 1, "{}", 2, &h), HL_ETOOBIG);
    cli_signer_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_v1_vector),
        cmocka_unit_test(test_stripe),
        cmocka_unit_test(test_hmac_hex_prefix_and_base64),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_v1a_ed25519_verifies),
        cmocka_unit_test(test_sendgrid_ecdsa_verifies),
        cmocka_unit_test(test_bad_secrets),
        cmocka_unit_test(test_id_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
