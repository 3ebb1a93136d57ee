/* Numbers of JSON text as strings of their exact value (exact_numbers.h). */
#include "exact_numbers.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EXP_MAX INT64_C(1000000000)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the run of digits at in[i..len). */
static size_t digits(const char *in, size_t len, size_t i)
{
    size_t n = 0;
    while (i + n < len && is_digit(in[i + n])) n++;
    return n;
}

/* Parses the exponent's digits at in[i..i+n) into *e (capped: HL_EPARSE beyond EXP_MAX). */
static int exponent(const char *in, size_t i, size_t n, bool neg, int64_t *e)
{
    int64_t v = 0;
    for (size_t k = 0; k < n; k++) {
        v = v * 10 + (in[i + k] - '0');
        if (v > EXP_MAX) return HL_EPARSE;
    }
    *e = neg ? -v : v;
    return 0;
}

/* The k-th digit of the run int_part (ni digits) then frac. */
static char digit_at(const char *int_part, size_t ni, const char *frac, size_t k)
{
    return k < ni ? int_part[k] : frac[k - ni];
}

/* Writes the value of the digits int_part (ni) . frac (nf) times 10^e, signed by neg: the
 * digits as one run without its leading and trailing zeros, and the exponent of its last. */
static void put_value(hl_buf_t *out, bool neg, const char *int_part, size_t ni, const char *frac,
                      size_t nf, int64_t e)
{
    char tail[32];
    size_t first = 0, n = ni + nf;
    while (first < n && digit_at(int_part, ni, frac, first) == '0') first++;
    while (n > first && digit_at(int_part, ni, frac, n - 1) == '0') {
        n--;
        e++;
    }
    hl_buf_put(out, "\"\\u0000", 7);
    if (first == n) {
        hl_buf_put(out, "0\"", 2);
        return;
    }
    if (neg) hl_buf_put(out, "-", 1);
    for (size_t k = first; k < n; k++) {
        char c = digit_at(int_part, ni, frac, k);
        hl_buf_put(out, &c, 1);
    }
    int len = snprintf(tail, sizeof tail, "e%" PRId64 "\"", e - (int64_t)nf);
    hl_buf_put(out, tail, (size_t)len);
}

/* The number at in[*i..len): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? written as its
 * value; *i moves past it. */
static int number(const char *in, size_t len, size_t *i, hl_buf_t *out)
{
    size_t p = *i, nf = 0;
    int64_t e = 0;
    bool neg = in[p] == '-';
    p += neg;
    size_t ni = digits(in, len, p);
    if (ni == 0 || (ni > 1 && in[p] == '0')) return HL_EPARSE;
    const char *int_part = in + p, *frac = "";
    p += ni;
    if (p < len && in[p] == '.') {
        nf = digits(in, len, p + 1);
        if (nf == 0) return HL_EPARSE;
        frac = in + p + 1;
        p += 1 + nf;
    }
    if (p < len && (in[p] == 'e' || in[p] == 'E')) {
        bool eneg = p + 1 < len && in[p + 1] == '-';
        size_t at = p + 1 + (p + 1 < len && (in[p + 1] == '-' || in[p + 1] == '+'));
        size_t ne = digits(in, len, at);
        if (ne == 0 || exponent(in, at, ne, eneg, &e) != 0) return HL_EPARSE;
        p = at + ne;
    }
    put_value(out, neg, int_part, ni, frac, nf, e);
    *i = p;
    return 0;
}

/* The string at in[*i..len) (opening quote included), copied; *i moves past it. */
static int string(const char *in, size_t len, size_t *i, hl_buf_t *out)
{
    size_t p = *i + 1;
    while (p < len && in[p] != '"') {
        if (in[p] == '\\' && p + 1 < len) {
            if (in[p + 1] == 'u' && p + 5 < len && memcmp(in + p + 2, "0000", 4) == 0)
                return HL_EPARSE;
            p++;
        }
        p++;
    }
    p += p < len;
    hl_buf_put(out, in + *i, p - *i);
    *i = p;
    return 0;
}

int hl_sig_exact_numbers(const char *in, size_t len, hl_buf_t *out)
{
    size_t i = 0;
    while (i < len) {
        int rc = 0;
        if (in[i] == '"')
            rc = string(in, len, &i, out);
        else if (in[i] == '-' || is_digit(in[i]))
            rc = number(in, len, &i, out);
        else
            hl_buf_put(out, in + i++, 1);
        if (rc) return rc;
    }
    return 0;
}
