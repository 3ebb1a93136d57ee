/* The binary wire encoding of values, shared by COPY ... (FORMAT binary) and binary array
 * parameters: one length-prefixed field per value, so nothing is ever escaped. */
#include <arpa/inet.h>
#include <string.h>

#include "hl/pg.h"

void hl_pg_put16(hl_buf_t *b, uint16_t v)
{
    v = htons(v);
    hl_buf_put(b, &v, 2);
}

void hl_pg_put32(hl_buf_t *b, uint32_t v)
{
    v = htonl(v);
    hl_buf_put(b, &v, 4);
}

void hl_pg_put64(hl_buf_t *b, int64_t v)
{
    hl_pg_put32(b, (uint32_t)((uint64_t)v >> 32));
    hl_pg_put32(b, (uint32_t)((uint64_t)v & 0xffffffffu));
}

uint32_t hl_pg_get32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return ntohl(v);
}

int64_t hl_pg_get64(const char *p)
{
    return (int64_t)((uint64_t)hl_pg_get32(p) << 32 | hl_pg_get32(p + 4));
}

void hl_pg_enc_null(hl_buf_t *b)
{
    hl_pg_put32(b, UINT32_MAX); /* -1 */
}

void hl_pg_enc_bytea(hl_buf_t *b, const void *p, size_t n)
{
    hl_pg_put32(b, (uint32_t)n);
    hl_buf_put(b, p, n);
}

void hl_pg_enc_int4(hl_buf_t *b, int32_t v)
{
    hl_pg_put32(b, 4);
    hl_pg_put32(b, (uint32_t)v);
}

void hl_pg_enc_int8(hl_buf_t *b, int64_t v)
{
    hl_pg_put32(b, 8);
    hl_pg_put64(b, v);
}

void hl_pg_enc_timestamptz(hl_buf_t *b, int64_t unix_us)
{
    hl_pg_enc_int8(b, unix_us - HL_PG_EPOCH_US);
}

/* Postgres stores no NUL in text or jsonb (22021): refused here rather than by the server. */
int hl_pg_enc_text(hl_buf_t *b, const char *s, size_t n)
{
    if (n > 0 && memchr(s, '\0', n) != NULL) return HL_EINVAL;
    hl_pg_enc_bytea(b, s, n);
    return 0;
}

int hl_pg_enc_jsonb(hl_buf_t *b, const char *s, size_t n)
{
    static const char jsonb_version = 1;
    if (n > 0 && memchr(s, '\0', n) != NULL) return HL_EINVAL;
    hl_pg_put32(b, (uint32_t)(n + 1));
    hl_buf_put(b, &jsonb_version, 1);
    hl_buf_put(b, s, n);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int hl_pg_enc_uuid(hl_buf_t *b, const char *s)
{
    unsigned char u[16];
    size_t k = 0, i = 0;
    for (; s[i] != '\0' && i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-')) return HL_EINVAL;
        if (dash) continue;
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) return HL_EINVAL;
        u[k++] = (unsigned char)(hi << 4 | lo);
        i++;
    }
    if (i != 36 || s[i] != '\0' || k != 16) return HL_EINVAL;
    hl_pg_enc_bytea(b, u, sizeof(u));
    return 0;
}

void hl_pg_array_begin(hl_buf_t *b, uint32_t oid, size_t n)
{
    b->len = 0;
    hl_pg_put32(b, n ? 1 : 0);
    hl_pg_put32(b, 0);
    hl_pg_put32(b, oid);
    if (n) {
        hl_pg_put32(b, (uint32_t)n);
        hl_pg_put32(b, 1);
    }
}

void hl_pg_copy_begin(hl_buf_t *b)
{
    static const char sig[11] = "PGCOPY\n\377\r\n";
    b->len = 0;
    hl_buf_put(b, sig, sizeof(sig));
    hl_pg_put32(b, 0); /* flags */
    hl_pg_put32(b, 0); /* header extension */
}

void hl_pg_copy_tuple(hl_buf_t *b, uint16_t nfields)
{
    hl_pg_put16(b, nfields);
}

void hl_pg_copy_end(hl_buf_t *b)
{
    hl_pg_put16(b, 0xffff); /* -1 */
}
