/* The one-pass scan (libs/common/src/jsonscan.c) held to jansson (json_loadb with
 * JSON_REJECT_DUPLICATES) and hl_jsonptr_get: the same texts refused, and every pointer resolved
 * to the same thing, for hand-picked edge cases and for mutations of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/jsonptr.h"
#include "hl/jsonscan.h"

#define DEPTH 64

static const char *const pointers[] = {
    "",   "/",  "/a",        "/a/0", "/a/2/b", "/b",       "/c",    "/x~1y", "/x~0y", "/01",
    "/1", "/-", "/\xc3\xa9", "/a/b", "/id",    "/data/id", "/type", "a",     "/~2"};
#define NPTRS (sizeof pointers / sizeof pointers[0])

/* What jansson and hl_jsonptr_get make of text and pointer p: -1 refused, else the kind, with
 * a string's value in str. */
static int reference(const unsigned char *s, size_t n, const char *p, char *str, size_t cap)
{
    json_t *root = json_loadb((const char *)s, n, JSON_REJECT_DUPLICATES, NULL);
    if (root == NULL) return -1;
    json_t *v = hl_jsonptr_get(root, p);
    int kind = HL_JSCAN_OTHER;
    if (v == NULL)
        kind = HL_JSCAN_NONE;
    else if (json_is_null(v))
        kind = HL_JSCAN_NULL;
    else if (json_is_string(v)) {
        kind = HL_JSCAN_STRING;
        snprintf(str, cap, "%s", json_string_value(v));
    }
    json_decref(root);
    return kind;
}

/* Fails with the text when the scan and the reference disagree on it for any pointer. */
static void same(const unsigned char *s, size_t n)
{
    char want[4096], got[4096];
    for (size_t k = 0; k < NPTRS; k += HL_JSCAN_MAX_PTRS) {
        const char *ps[HL_JSCAN_MAX_PTRS];
        size_t np = 0;
        for (; np < HL_JSCAN_MAX_PTRS && k + np < NPTRS; np++) ps[np] = pointers[k + np];
        hl_jscan_found_t f[HL_JSCAN_MAX_PTRS];
        int rc = hl_json_scan(s, n, DEPTH, ps, np, f);
        for (size_t j = 0; j < np; j++) {
            int ref = reference(s, n, ps[j], want, sizeof want);
            if ((ref < 0) != (rc != 0))
                fail_msg("%.*s: jansson %s, the scan %s", (int)n, (const char *)s,
                         ref < 0 ? "refuses" : "accepts", rc ? "refuses" : "accepts");
            if (ref < 0) continue;
            if ((int)f[j].kind != ref)
                fail_msg("%.*s: pointer '%s': kind %d, jansson %d", (int)n, (const char *)s, ps[j],
                         (int)f[j].kind, ref);
            if (ref == HL_JSCAN_STRING) {
                ssize_t l = hl_json_unescape(f[j].raw, f[j].raw_len, got, sizeof got);
                assert_true(l >= 0);
                if (strcmp(got, want) != 0)
                    fail_msg("%.*s: pointer '%s': '%s', jansson '%s'", (int)n, (const char *)s,
                             ps[j], got, want);
            }
        }
    }
}

static const char *const cases[] = {
    "{}",
    "[]",
    " \t\r\n{}\n",
    "{\"a\":1}",
    "{\"a\":\"b\"}",
    "{\"a\":[1,2,{\"b\":\"c\"}]}",
    "{\"a\":-0}",
    "{\"a\":1.5e-400}",
    "{\"a\":9223372036854775807}",
    "{\"a\":-9223372036854775808}",
    "{\"a\":9223372036854775808}",
    "{\"a\":-9223372036854775809}",
    "{\"a\":123456789012345678}",
    "{\"a\":1e400}",
    "{\"a\":-1e400}",
    "{\"a\":1.7976931348623157e308}",
    "{\"a\":1.7976931348623159e308}",
    "{\"a\":0.000000000000000000000000000001}",
    "{\"a\":1E+2,\"b\":1e-2,\"c\":-1.0E2}",
    "{\"\\u00e9\":1,\"\xc3\xa9\":2}",
    "{\"\\u00e9\":\"x\"}",
    "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\ud83d\\ude00\"}",
    "{\"a\":\"\xf0\x9f\x98\x80\"}",
    "{\"a\":true,\"b\":false,\"c\":null}",
    "{\"x/y\":\"s\",\"x~y\":\"t\",\"01\":\"u\"}",
    "{\"a\":[\"p\",\"q\"],\"1\":\"r\",\"-\":\"s\"}",
    "[\"a\",{\"a\":\"b\"}]",
    "",
    " ",
    "\"s\"",
    "1",
    "null",
    "{",
    "}",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\":1,}",
    "[1,]",
    "[01]",
    "[1.]",
    "[.5]",
    "[1e]",
    "[1e+]",
    "[-]",
    "[+1]",
    "[-01]",
    "{\"a\":1}{}",
    "{\"a\":1} x",
    "{\"a\":\"\\u0000\"}",
    "{\"\\u0000\":1}",
    "{\"a\":\"\\ud800\"}",
    "{\"a\":\"\\udc00\"}",
    "{\"a\":\"\\ud800\\u0041\"}",
    "{\"a\":\"\\ud800\\n\"}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\u00g0\"}",
    "{\"a\":\"\\u00e\"}",
    "{\"a\":\"\x01\"}",
    "{\"a\":\"\x7f\"}",
    "{\"a\":\"\xc0\x80\"}",
    "{\"a\":\"\xed\xa0\x80\"}",
    "{\"a\":\"\xf4\x90\x80\x80\"}",
    "{\"a\":\"\xf5\x80\x80\x80\"}",
    "{\"a\":\"\x80\"}",
    "{\"a\":\"\xe2\x82\"}",
    "{\"a\":\"\xe2\x82\xac\"}",
    "{\"a\":\"\xe0\x9f\xbf\"}",
    "{\"a\":\"\xf0\x8f\xbf\xbf\"}",
    "{\"a\":1,\"a\":2}",
    "{\"a\":1,\"\\u0061\":2}",
    "{\"x\":{\"a\":1},\"a\":2}",
    "{\"a\":{\"a\":{\"a\":\"deep\"}}}",
    "[truex]",
    "[nul]",
    "[nulll]",
    "[true false]",
    "{\"a\":1 \"b\":2}",
    "[1 2]",
    "\xef\xbb\xbf{}",
    "{\"a\":\"b\"\"c\"}",
    "{\"a\"  :  \"b\"  ,  \"c\"  :  [  ]  }",
    "[[[[[[[[[[[[[[[[[[[[\"deep\"]]]]]]]]]]]]]]]]]]]]",
    "{\"a\":\"unterminated",
    "{\"a\":\"x\\",
    "{'a':1}",
    "{\"a\":1.5}",
    "{\"a\":[]}",
    "{\"a\":{}}",
    "{\"\":\"empty key\",\"a\":\"\"}",
    "{\"a\":NaN}",
    "{\"a\":Infinity}",
    "[-0.0e-0]",
    "{\"id\":\"m-1\",\"type\":\"t.x\",\"data\":{\"id\":\"inner\"}}"};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        same((const unsigned char *)cases[i], strlen(cases[i]));
    /* A NUL byte inside the text, which strlen would hide. */
    same((const unsigned char *)"{\"a\":\"x\0y\"}", 11);
    same((const unsigned char *)"{\"a\":1}\0", 8);
    same((const unsigned char *)"{\"a\":13\0}", 9);
    same((const unsigned char *)"[true\0,null\0,1.5\0]", 19);
    same((const unsigned char *)"[1\0\0]", 6);
    same((const unsigned char *)"{\"a\":\"s\"\0}", 10);
    /* Depth: DEPTH nested arrays pass, one more does not. */
    char deep[2 * DEPTH + 3];
    memset(deep, '[', DEPTH + 1);
    memset(deep + DEPTH + 1, ']', DEPTH + 1);
    hl_jscan_found_t f[1];
    const char *root = "";
    assert_int_equal(hl_json_scan((const unsigned char *)deep + 1, 2 * DEPTH, DEPTH, &root, 1, f),
                     0);
    assert_int_equal(hl_json_scan((const unsigned char *)deep, 2 * DEPTH + 2, DEPTH, &root, 1, f),
                     HL_EPARSE);
    /* A token longer than the resolver reads resolves to nothing, even where the key is. */
    char body[1200], ptr[600];
    memset(ptr, 'k', sizeof ptr);
    ptr[0] = '/';
    ptr[513] = '\0';
    snprintf(body, sizeof body, "{\"%s\":\"v\"}", ptr + 1);
    const char *pp = ptr;
    assert_int_equal(hl_json_scan((const unsigned char *)body, strlen(body), DEPTH, &pp, 1, f), 0);
    assert_int_equal(f[0].kind, HL_JSCAN_NONE);
    ptr[512] = '\0'; /* 511 bytes: read */
    snprintf(body, sizeof body, "{\"%s\":\"v\"}", ptr + 1);
    assert_int_equal(hl_json_scan((const unsigned char *)body, strlen(body), DEPTH, &pp, 1, f), 0);
    assert_int_equal(f[0].kind, HL_JSCAN_STRING);
    /* Many keys in one object, one repeated at the end: refused; without it: read. */
    size_t cap = 200000, len = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    big[len++] = '{';
    for (int i = 0; i < 10000; i++)
        len += (size_t)snprintf(big + len, cap - len, "\"k%d\":%d,", i, i);
    len += (size_t)snprintf(big + len, cap - len, "\"id\":\"last\"");
    size_t base = len;
    len += (size_t)snprintf(big + base, cap - base, ",\"k77\":0}");
    same((const unsigned char *)big, len);
    assert_int_equal(hl_json_scan((const unsigned char *)big, len, DEPTH, &root, 1, f), HL_EPARSE);
    len = base + (size_t)snprintf(big + base, cap - base, ",\"k-1\":0}");
    same((const unsigned char *)big, len);
    assert_int_equal(hl_json_scan((const unsigned char *)big, len, DEPTH, &root, 1, f), 0);
    free(big);
}

/* hl_json_unescape given bytes no scan found: refused, never read past them. */
static void test_unescape_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {"\\",  "a\\u12",   "\\ud800",       "\\ud800\\u0041",
                                      "\\q", "\\udc00x", "\\ud800\\ud800"};
    char out[32];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        unsigned char *heap = malloc(n); /* exactly n bytes: ASan sees a read past them */
        assert_non_null(heap);
        memcpy(heap, bad[i], n);
        assert_int_equal(hl_json_unescape(heap, n, out, sizeof out), -1);
        free(heap);
    }
    const unsigned char nul[] = {'\\', '\0'};
    assert_int_equal(hl_json_unescape(nul, 2, out, sizeof out), -1);
    assert_int_equal(hl_json_unescape((const unsigned char *)"ab\\n", 4, out, sizeof out), 3);
    assert_string_equal(out, "ab\n");
    assert_int_equal(hl_json_unescape((const unsigned char *)"abc", 3, out, 3), -1);
}

/* Mutations of the cases, the same every run: bytes replaced, inserted and removed. */
static void test_mutations(void **state)
{
    (void)state;
    static const unsigned char alphabet[] = "{}[]\":,\\u0123456789abcdefABCDEF-+.eEtrunlsx \t\n\x80"
                                            "\xc3\xa9\xed\xa0\xf0\x9f";
    uint64_t r = 0x9E3779B97F4A7C15ULL;
    unsigned char buf[512];
    size_t ncases = sizeof cases / sizeof cases[0];
    for (int round = 0; round < 40000; round++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        const char *c = cases[r % ncases];
        size_t n = strlen(c);
        memcpy(buf, c, n);
        int edits = 1 + (int)((r >> 8) % 3);
        for (int e = 0; e < edits; e++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            size_t at = n ? (size_t)(r >> 16) % (n + 1) : 0;
            unsigned char b = alphabet[(r >> 40) % (sizeof alphabet - 1)];
            switch ((r >> 4) % 3) {
            case 0:
                if (at < n) buf[at] = b;
                break;
            case 1:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = b;
                    n++;
                }
                break;
            default:
                if (at < n) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        same(buf, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_unescape_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
