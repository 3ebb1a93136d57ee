/* Parsing and validating one hookline.events record before it goes near Postgres, so that every
 * record Postgres could refuse for its content is found here, cheaply and without a round trip. */
#include "event_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/kafka.h"
#include "hl/proto.h"
#include "hl/sigverify.h"
#include "hl/util.h"

#define JSON_MAX_DEPTH 512

static const char *const status_codes[] = {
    [PST_REC_OK] = "ok",
    [PST_REC_MISSING_KEY] = "missing_key",
    [PST_REC_BAD_KEY] = "bad_key",
    [PST_REC_MISSING_HEADER] = "missing_header",
    [PST_REC_BAD_HEADER] = "bad_header",
    [PST_REC_TOO_LARGE] = "too_large",
    [PST_REC_INVALID_JSON] = "invalid_json",
    [PST_REC_PG_REJECTED] = "pg_rejected",
    [PST_REC_BODY_DIGEST] = "body_digest_mismatch",
};

const char *pst_rec_status_code(pst_rec_status_t st)
{
    if ((unsigned)st >= sizeof(status_codes) / sizeof(status_codes[0])) return "unknown";
    return status_codes[st];
}

/* Eight bytes at a time (SWAR): a byte equal to zero, or below n (n <= 0x80, meaningful when
 * no high bit is set), makes the result non-zero. They may flag the wrong byte of the eight,
 * never miss one, which is all a "skip these eight" test needs. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
static uint64_t has_zero(uint64_t x)
{
    return (x - ONES) & ~x & HIGHS;
}
static uint64_t has_below(uint64_t x, unsigned n)
{
    return (x - ONES * n) & ~x & HIGHS;
}

static uint64_t load8(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

/* True when p[0..8) is ASCII without NUL. */
static int ascii8(const unsigned char *p)
{
    uint64_t x = load8(p);
    return !((x & HIGHS) | has_zero(x));
}

/* True when p[0..8) holds nothing a JSON string scan must stop at: no quote, backslash,
 * control byte or non-ASCII byte. */
static int plain8(const unsigned char *p)
{
    uint64_t x = load8(p);
    return !((x & HIGHS) | has_zero(x ^ (ONES * '"')) | has_zero(x ^ (ONES * '\\')) |
             has_below(x, 0x20));
}

int pst_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        while (end - p >= 8 && ascii8(p)) p += 8;
        if (p == end) break;
        unsigned c = *p;
        if (c == 0) return 0;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t len = hl_utf8_seq_len(p, (size_t)(end - p));
        if (len == 0) return 0;
        p += len;
    }
    return 1;
}

/* ---- an allocation-free JSON validator (RFC 8259 plus the jsonb rules on \u escapes) ---- */

typedef struct {
    const char *p, *end;
} jcur_t;

static void skip_ws(jcur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* A string starting at the opening quote. jsonb refuses \u0000 and unpaired surrogates. */
static int parse_string(jcur_t *c)
{
    c->p++;
    const char *run = c->p;
    unsigned char seen = 0; /* OR of the run's bytes: UTF-8 is checked only if one is >= 0x80 */
    while (c->p < c->end) {
        while (c->end - c->p >= 8 && plain8((const unsigned char *)c->p)) c->p += 8;
        if (c->p >= c->end) break;
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            if ((seen & 0x80) && !pst_utf8_valid(run, (size_t)(c->p - run))) return 0;
            c->p++;
            return 1;
        }
        if (ch < 0x20) return 0;
        if (ch != '\\') {
            seen |= ch;
            c->p++;
            continue;
        }
        if ((seen & 0x80) && !pst_utf8_valid(run, (size_t)(c->p - run))) return 0;
        seen = 0;
        if (c->end - c->p < 2) return 0;
        char e = c->p[1];
        c->p += 2;
        if (e == 'u') {
            unsigned u, lo;
            if (c->end - c->p < 4 || !hex4(c->p, &u) || u == 0) return 0;
            c->p += 4;
            if (u >= 0xdc00 && u <= 0xdfff) return 0;
            if (u >= 0xd800 && u <= 0xdbff) {
                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' ||
                    !hex4(c->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return 0;
                c->p += 6;
            }
        } else if (!strchr("\"\\/bfnrt", e) || e == 0) {
            return 0;
        }
        run = c->p;
    }
    return 0;
}

static int is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int parse_number(jcur_t *c)
{
    if (c->p < c->end && *c->p == '-') c->p++;
    if (c->p >= c->end) return 0;
    if (*c->p == '0')
        c->p++;
    else if (is_digit(*c->p))
        while (c->p < c->end && is_digit(*c->p)) c->p++;
    else
        return 0;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (c->p >= c->end || !is_digit(*c->p)) return 0;
        while (c->p < c->end && is_digit(*c->p)) c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
        if (c->p >= c->end || !is_digit(*c->p)) return 0;
        while (c->p < c->end && is_digit(*c->p)) c->p++;
    }
    return 1;
}

static int parse_literal(jcur_t *c, const char *lit, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return 0;
    c->p += n;
    return 1;
}

/* A scalar value (not a container). */
static int parse_scalar(jcur_t *c)
{
    switch (*c->p) {
    case '"': return parse_string(c);
    case 't': return parse_literal(c, "true", 4);
    case 'f': return parse_literal(c, "false", 5);
    case 'n': return parse_literal(c, "null", 4);
    default: return parse_number(c);
    }
}

int pst_json_valid(const char *s, size_t n)
{
    /* Iterative, with the open containers on a fixed stack, so hostile nesting costs nothing. */
    char stack[JSON_MAX_DEPTH];
    int depth = 0;
    jcur_t c = {s, s + n};
    int want_value = 1; /* a value is expected next (else a ',' or a closer) */
    for (;;) {
        skip_ws(&c);
        if (c.p >= c.end) return 0;
        if (want_value) {
            char ch = *c.p;
            if (ch == '{' || ch == '[') {
                if (depth == JSON_MAX_DEPTH) return 0;
                stack[depth++] = ch;
                c.p++;
                skip_ws(&c);
                if (c.p >= c.end) return 0;
                if (*c.p == (ch == '{' ? '}' : ']')) {
                    c.p++;
                    depth--;
                    want_value = 0;
                } else if (ch == '{' && *c.p != '"')
                    return 0;
                else if (ch == '{') {
                    if (!parse_string(&c)) return 0;
                    skip_ws(&c);
                    if (c.p >= c.end || *c.p != ':') return 0;
                    c.p++;
                }
            } else {
                if (!parse_scalar(&c)) return 0;
                want_value = 0;
            }
        } else {
            if (depth == 0) break;
            char ch = *c.p++;
            char top = stack[depth - 1];
            if (ch == ',') {
                want_value = 1;
                if (top == '{') {
                    skip_ws(&c);
                    if (c.p >= c.end || *c.p != '"' || !parse_string(&c)) return 0;
                    skip_ws(&c);
                    if (c.p >= c.end || *c.p != ':') return 0;
                    c.p++;
                }
            } else if ((ch == '}' && top == '{') || (ch == ']' && top == '[')) {
                depth--;
            } else {
                return 0;
            }
        }
        if (!want_value && depth == 0) break;
    }
    skip_ws(&c);
    return c.p == c.end;
}

/* ---- one record ---- */

static void fail(pst_row_t *row, pst_rec_status_t st, const char *detail)
{
    if (row->status != PST_REC_OK) return; /* keep the first reason */
    row->status = st;
    (void)hl_strlcpy(row->detail, detail, sizeof(row->detail));
}

/* Copies header `name` into buf (cap bytes, NUL-terminated). Returns 0, or sets the status:
 * absent, null or empty is missing; too long, a NUL byte or not UTF-8 is bad. */
static int header(pst_row_t *row, rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t cap)
{
    char detail[PST_REC_MAX_DETAIL];
    int rc = hl_kafka_header(hdrs, name, buf, cap);
    if (rc == HL_ENOTFOUND || (rc == 0 && buf[0] == '\0')) {
        snprintf(detail, sizeof(detail), "header %s missing", name);
        fail(row, PST_REC_MISSING_HEADER, detail);
        buf[0] = '\0';
        return -1;
    }
    if (rc != 0 || !pst_utf8_valid(buf, strlen(buf))) {
        snprintf(detail, sizeof(detail), "header %s %s", name,
                 rc == HL_ETOOBIG ? "too long" : "not UTF-8");
        fail(row, PST_REC_BAD_HEADER, detail);
        buf[0] = '\0';
        return -1;
    }
    return 0;
}

static int hex64(const char *s, size_t n)
{
    if (n != HL_SIG_SHA256_HEX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* hl-body-sha256 checked against the value, or the value's digest when the record has none
 * (an older ingress). A dead letter keeps the header's claim, so its lineage names it. */
static void body_digest(pst_row_t *row, rd_kafka_headers_t *hdrs)
{
    const void *v = NULL;
    size_t len = 0;
    char got[HL_SIG_SHA256_HEX + 1];
    row->body_sha256[0] = '\0';
    if (row->payload)
        hl_sig_sha256_hex(row->payload, row->payload_len, got);
    else
        got[0] = '\0';
    if (!hdrs ||
        rd_kafka_header_get_last(hdrs, HL_HDR_BODY_SHA256, &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        !v) {
        memcpy(row->body_sha256, got, sizeof(got));
        return;
    }
    if (!hex64(v, len)) {
        fail(row, PST_REC_BAD_HEADER, "header " HL_HDR_BODY_SHA256 " not 64 lowercase hex digits");
        memcpy(row->body_sha256, got, sizeof(got));
        return;
    }
    memcpy(row->body_sha256, v, HL_SIG_SHA256_HEX);
    row->body_sha256[HL_SIG_SHA256_HEX] = '\0';
    if (memcmp(got, row->body_sha256, HL_SIG_SHA256_HEX) != 0)
        fail(row, PST_REC_BODY_DIGEST,
             "header " HL_HDR_BODY_SHA256 " is not the SHA-256 of the value");
}

/* hl-signature-headers: one JSON object, kept as it is; absent for bearer sources. */
static void signed_headers(pst_row_t *row, rd_kafka_headers_t *hdrs)
{
    const void *v = NULL;
    size_t len = 0;
    row->signed_json = NULL;
    row->signed_json_len = 0;
    if (!hdrs ||
        rd_kafka_header_get_last(hdrs, HL_HDR_SIGNATURE_HEADERS, &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        !v)
        return;
    const char *s = v;
    if (len == 0 || len > PST_REC_MAX_SIGNED_JSON || s[0] != '{' || !pst_json_valid(s, len)) {
        fail(row, PST_REC_BAD_HEADER, "header " HL_HDR_SIGNATURE_HEADERS " not a JSON object");
        return;
    }
    row->signed_json = s;
    row->signed_json_len = len;
}

void pst_record_parse(pst_row_t *row, const void *key, size_t key_len, const void *value,
                      size_t value_len, rd_kafka_headers_t *hdrs, size_t max_value_bytes)
{
    char num[32];
    row->status = PST_REC_OK;
    row->detail[0] = '\0';
    row->row_id = -1;
    row->duplicate = 0;
    row->message_id[0] = '\0';
    row->message_id_len = 0;
    row->payload = value;
    row->payload_len = value ? value_len : 0;

    if (!key || key_len == 0) {
        fail(row, PST_REC_MISSING_KEY, "record has no key (message id)");
    } else if (key_len > PST_REC_MAX_MESSAGE_ID || !pst_utf8_valid(key, key_len)) {
        fail(row, PST_REC_BAD_KEY,
             key_len > PST_REC_MAX_MESSAGE_ID ? "key over " HL_PROTO_STR(HL_MESSAGE_ID_MAX) " bytes"
                                              : "key not UTF-8");
    } else {
        memcpy(row->message_id, key, key_len);
        row->message_id[key_len] = '\0';
        row->message_id_len = key_len;
    }
    (void)header(row, hdrs, HL_HDR_SOURCE, row->source, sizeof(row->source));
    (void)header(row, hdrs, HL_HDR_EVENT_TYPE, row->event_type, sizeof(row->event_type));
    if (header(row, hdrs, HL_HDR_REQUEST_ID, row->request_id, sizeof(row->request_id)) == 0 &&
        !hl_uuid_valid(row->request_id)) {
        fail(row, PST_REC_BAD_HEADER, "header " HL_HDR_REQUEST_ID " not a UUID");
        row->request_id[0] = '\0';
    }
    row->received_us = 0;
    if (header(row, hdrs, HL_HDR_RECEIVED_US, num, sizeof(num)) == 0 &&
        hl_parse_i64(num, 0, INT64_MAX / 2, &row->received_us) != 0)
        fail(row, PST_REC_BAD_HEADER, "header " HL_HDR_RECEIVED_US " not a non-negative integer");

    signed_headers(row, hdrs);
    if (row->payload_len > max_value_bytes)
        fail(row, PST_REC_TOO_LARGE, "value over max_record_bytes");
    else if (!value || !pst_json_valid(value, value_len))
        fail(row, PST_REC_INVALID_JSON, "value is not valid JSON");
    body_digest(row, hdrs);
}

void pst_record_from_message(pst_row_t *row, rd_kafka_message_t *msg, size_t max_value_bytes)
{
    rd_kafka_headers_t *hdrs = NULL;
    row->msg = msg;
    row->partition = msg->partition;
    row->offset = msg->offset;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) hdrs = NULL;
    pst_record_parse(row, msg->key, msg->key_len, msg->payload, msg->len, hdrs, max_value_bytes);
}

void pst_row_release(pst_row_t *row)
{
    if (!row) return;
    if (row->msg) rd_kafka_message_destroy(row->msg);
    row->msg = NULL;
    row->payload = NULL;
    row->payload_len = 0;
}

static int row_cmp(const void *a, const void *b)
{
    const pst_row_t *x = *(const pst_row_t *const *)a, *y = *(const pst_row_t *const *)b;
    size_t n = x->message_id_len < y->message_id_len ? x->message_id_len : y->message_id_len;
    int c = memcmp(x->message_id, y->message_id, n);
    if (c) return c;
    if (x->message_id_len != y->message_id_len)
        return x->message_id_len < y->message_id_len ? -1 : 1;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return 0;
}

void pst_rows_sort(pst_row_t **rows, size_t n)
{
    /* (message id, partition, offset) is unique per record, so qsort's instability is moot. */
    if (n > 1) qsort(rows, n, sizeof(*rows), row_cmp);
}

void pst_rows_mark_batch_duplicates(pst_row_t **rows, size_t n)
{
    size_t run = 0; /* first row of the current run of equal message ids */
    for (size_t j = 0; j < n; j++) {
        pst_row_t *r = rows[j];
        r->dup_in_batch = 0;
        if (j > 0 && (rows[j - 1]->message_id_len != r->message_id_len ||
                      memcmp(rows[j - 1]->message_id, r->message_id, r->message_id_len) != 0))
            run = j;
        if (r->status != PST_REC_OK) continue;
        for (size_t i = run; i < j; i++) {
            const pst_row_t *q = rows[i];
            if (q->status == PST_REC_OK && !q->dup_in_batch && strcmp(q->source, r->source) == 0 &&
                strcmp(q->event_type, r->event_type) == 0) {
                r->dup_in_batch = 1;
                r->duplicate = 1;
                r->row_id = -1;
                break;
            }
        }
    }
}
