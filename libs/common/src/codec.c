/* Text encodings of binary values: strict base64 and hex. */
#include "hl/codec.h"

#include <string.h>

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int hl_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    if (n == 0 || n % 4 != 0) return HL_EPARSE;
    size_t pad = 0;
    if (in[n - 1] == '=') pad++;
    if (in[n - 2] == '=') pad++;
    size_t outlen = n / 4 * 3 - pad;
    if (outlen > cap) return HL_ETOOBIG;
    if (outlen > INT32_MAX) return HL_ETOOBIG;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int last = (i + 4 == n);
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && last && (size_t)k >= 4 - pad) {
                v[k] = 0;
                continue;
            }
            v[k] = b64_value(c);
            if (v[k] < 0) return HL_EPARSE;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* Canonical encodings only: the bits dropped by padding must be zero. */
        if (last && pad == 1 && (w & 0xff) != 0) return HL_EPARSE;
        if (last && pad == 2 && (w & 0xffff) != 0) return HL_EPARSE;
        unsigned char bytes[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8),
                                  (unsigned char)w};
        size_t take = last ? 3 - pad : 3;
        memcpy(out + o, bytes, take);
        o += take;
    }
    return (int)o;
}

int hl_base64_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t need = (n + 2) / 3 * 4;
    if (need + 1 > cap || need > INT32_MAX) return HL_ETOOBIG;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16;
        if (i + 1 < n) w |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) w |= in[i + 2];
        out[o++] = tab[(w >> 18) & 63];
        out[o++] = tab[(w >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[w & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int hl_hex_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    if (n == 0 || n % 2 != 0) return HL_EPARSE;
    if (n / 2 > cap || n / 2 > INT32_MAX) return HL_ETOOBIG;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value((unsigned char)in[i]), lo = hex_value((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0) return HL_EPARSE;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return (int)(n / 2);
}

int hl_base64_decode_loose(const char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t tail = n % 4;
    if (tail == 1) return HL_EPARSE;
    if (tail == 0) return hl_base64_decode(in, n, out, cap);
    /* The last, unpadded group is decoded with its padding put back. */
    int head = 0;
    if (n > tail) {
        if (in[n - tail - 1] == '=') return HL_EPARSE; /* padding is only ever at the end */
        head = hl_base64_decode(in, n - tail, out, cap);
        if (head < 0) return head;
    }
    char last[4] = {'=', '=', '=', '='};
    memcpy(last, in + n - tail, tail);
    if (memchr(last, '=', tail) != NULL) return HL_EPARSE;
    int rest = hl_base64_decode(last, 4, out + head, cap - (size_t)head);
    return rest < 0 ? rest : head + rest;
}
