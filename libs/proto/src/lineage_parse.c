/* The lineage parser: strict, since every record on hookline.lineage is untrusted until it has
 * passed here; anything off the schema is refused, never guessed.
 *
 * One pass over the bytes straight into the record, with no allocation for any record the
 * writer makes (the auditor parses two records per request, and checks every stored one again
 * when it verifies a chain). The JSON it reads is RFC 8259 with the limits of the general
 * parser the other services use (jansson with JSON_REJECT_DUPLICATES): strings valid UTF-8
 * with no \u0000, no duplicate key in any object, integers within 64 bits, reals finite,
 * values nested at most MAX_DEPTH deep. A document it refuses is "not JSON"; a field of the
 * wrong type is refused with that field's reason, the first such field in the document.
 * tests/fuzz/fuzz_lineage_record.c holds it to jansson's reading, byte for byte. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hl/lineage_record.h"
#include "hl/util.h"
#include "lineage_fields.h"

#define MAX_DEPTH 2048 /* values nested deeper are refused (the top-level object is 1) */
#define KEYS_INLINE 1024
#define ENTRIES_INLINE 32
/* Past this many keys open, duplicates are found through a hash index instead of a scan, so a
 * hostile record of thousands of keys costs linear time. A 16 KiB record holds at most 3,277
 * keys ("":0,), so the index's buckets outnumber them. */
#define INDEX_FROM 32
#define INDEX_BUCKETS 4096 /* a power of two */
#define NO_ENTRY UINT32_MAX
#define NOT_JSON (-1) /* the document is not JSON (HL_E* codes are all below it) */

typedef enum { J_STRING, J_INT, J_REAL, J_TRUE, J_FALSE, J_NULL, J_ARRAY, J_OBJECT } jkind_t;

/* One key of an object still open, for the duplicate check: its decoded bytes in keys. */
typedef struct {
    uint64_t hash;
    uint32_t off, len;
    uint32_t next; /* the entry below it in its index bucket, NO_ENTRY at the bottom */
} key_ent_t;

typedef struct {
    const unsigned char *p, *end;
    /* The decoded keys of every object still open (a stack: an object's keys are dropped when
     * it closes). Inline for a record of the schema; grown on the heap for anything nested. */
    char *keys;
    size_t nkeys, keys_cap;
    key_ent_t *ents;
    size_t nents, ents_cap;
    /* The index: per bucket the top entry, whose chain runs down through next. Entries come
     * and go as a stack, so the entry dropped is always its bucket's top. NULL until built. */
    uint32_t *heads;
    char keys_inline[KEYS_INLINE];
    key_ent_t ents_inline[ENTRIES_INLINE];
} rd_t;

static void skip_ws(rd_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const unsigned char *p, const unsigned char *end, uint32_t *out)
{
    if (end - p < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* Appends one byte of a decoded string: kept while it fits in cap, counted always. */
static inline void put(char *dst, size_t cap, size_t *n, unsigned char c)
{
    if (*n < cap) dst[*n] = (char)c;
    (*n)++;
}

/* Reads the string whose opening quote is at r->p and decodes it into dst (cap bytes; what
 * does not fit is counted in *n but not kept; dst may be NULL with cap 0). False when it is
 * not a JSON string the schema's reader takes: a raw control character, an unknown escape, a
 * lone surrogate, invalid UTF-8, \u0000 or no closing quote. */
static bool read_string(rd_t *r, char *dst, size_t cap, size_t *n)
{
    *n = 0;
    r->p++; /* the opening quote */
    while (r->p < r->end) {
        unsigned char c = *r->p;
        if (c == '"') {
            r->p++;
            return true;
        }
        if (c < 0x20) return false;
        if (c >= 0x80) {
            size_t k = hl_utf8_seq_len(r->p, (size_t)(r->end - r->p));
            if (k == 0) return false;
            for (size_t i = 0; i < k; i++) put(dst, cap, n, r->p[i]);
            r->p += k;
            continue;
        }
        if (c != '\\') {
            put(dst, cap, n, c);
            r->p++;
            continue;
        }
        if (r->end - r->p < 2) return false;
        c = r->p[1];
        r->p += 2;
        static const char simple[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
        const char *at = c ? strchr(simple, c) : NULL;
        if (at != NULL) {
            put(dst, cap, n, (unsigned char)decoded[at - simple]);
            continue;
        }
        uint32_t cp, lo;
        if (c != 'u' || hex4(r->p, r->end, &cp) != 0) return false;
        r->p += 4;
        if (cp >= 0xdc00 && cp <= 0xdfff) return false;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
                hex4(r->p + 2, r->end, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                return false;
            r->p += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0) return false;
        if (cp < 0x80) {
            put(dst, cap, n, (unsigned char)cp);
        } else if (cp < 0x800) {
            put(dst, cap, n, (unsigned char)(0xc0 | cp >> 6));
            put(dst, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
        } else if (cp < 0x10000) {
            put(dst, cap, n, (unsigned char)(0xe0 | cp >> 12));
            put(dst, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3f)));
            put(dst, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
        } else {
            put(dst, cap, n, (unsigned char)(0xf0 | cp >> 18));
            put(dst, cap, n, (unsigned char)(0x80 | (cp >> 12 & 0x3f)));
            put(dst, cap, n, (unsigned char)(0x80 | (cp >> 6 & 0x3f)));
            put(dst, cap, n, (unsigned char)(0x80 | (cp & 0x3f)));
        }
    }
    return false;
}

static bool is_digit(const rd_t *r)
{
    return r->p < r->end && *r->p >= '0' && *r->p <= '9';
}

/* Reads a number: J_INT with its value in *i, J_REAL, or -1 when it is not a JSON number, an
 * integer outside 64 bits or a real too large for a double. */
static int read_number(rd_t *r, int64_t *i)
{
    const unsigned char *start = r->p;
    bool neg = r->p < r->end && *r->p == '-';
    if (neg) r->p++;
    if (!is_digit(r)) return -1;
    if (*r->p == '0') {
        r->p++;
        if (is_digit(r)) return -1; /* no leading zeros */
    } else {
        while (is_digit(r)) r->p++;
    }
    bool real = false;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!is_digit(r)) return -1;
        while (is_digit(r)) r->p++;
        real = true;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
        if (!is_digit(r)) return -1;
        while (is_digit(r)) r->p++;
        real = true;
    }
    if (!real) {
        uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (const unsigned char *d = start + neg; d < r->p; d++) {
            uint64_t digit = (uint64_t)(*d - '0');
            if (v > (limit - digit) / 10) return -1;
            v = v * 10 + digit;
        }
        *i = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
        return J_INT;
    }
    /* Only whether it overflows a double matters: the schema has no real field. */
    size_t len = (size_t)(r->p - start);
    char small[64], *text = len < sizeof small ? small : hl_xmalloc(len + 1);
    memcpy(text, start, len);
    text[len] = '\0';
    errno = 0;
    double d = strtod(text, NULL);
    bool overflow = errno == ERANGE && isinf(d);
    if (text != small) free(text);
    return overflow ? -1 : J_REAL;
}

/* Reads true, false or null; any other run of letters is not JSON. */
static int read_literal(rd_t *r)
{
    const unsigned char *start = r->p;
    while (r->p < r->end && ((*r->p >= 'a' && *r->p <= 'z') || (*r->p >= 'A' && *r->p <= 'Z')))
        r->p++;
    size_t len = (size_t)(r->p - start);
    if (len == 4 && memcmp(start, "true", 4) == 0) return J_TRUE;
    if (len == 5 && memcmp(start, "false", 5) == 0) return J_FALSE;
    if (len == 4 && memcmp(start, "null", 4) == 0) return J_NULL;
    return -1;
}

/* Makes room for need more bytes of keys and one more entry. */
static void keys_reserve(rd_t *r, size_t need)
{
    if (r->nkeys + need > r->keys_cap) {
        size_t cap = r->keys_cap * 2 > r->nkeys + need ? r->keys_cap * 2 : r->nkeys + need;
        char *k = hl_xmalloc(cap);
        memcpy(k, r->keys, r->nkeys);
        if (r->keys != r->keys_inline) free(r->keys);
        r->keys = k;
        r->keys_cap = cap;
    }
    if (r->nents == r->ents_cap) {
        key_ent_t *e = hl_xmalloc(r->ents_cap * 2 * sizeof *e);
        memcpy(e, r->ents, r->nents * sizeof *e);
        if (r->ents != r->ents_inline) free(r->ents);
        r->ents = e;
        r->ents_cap *= 2;
    }
}

/* Reads an object's key (r->p at its quote) onto the key stack, refusing one the object
 * (whose keys start at entry first) already has. On success *key is the decoded key, NUL-
 * terminated (a key holds no NUL: \u0000 is refused), valid until the object closes. */
static bool read_key(rd_t *r, size_t first, const char **key)
{
    if (r->p >= r->end || *r->p != '"') return false;
    /* A key decodes to no more bytes than it takes in the document. */
    const unsigned char *q = r->p + 1;
    while (q < r->end && *q != '"') q += *q == '\\' && q + 1 < r->end ? 2 : 1;
    keys_reserve(r, (size_t)(q - r->p) + 1);
    char *dst = r->keys + r->nkeys;
    size_t n;
    if (!read_string(r, dst, r->keys_cap - r->nkeys - 1, &n)) return false;
    dst[n] = '\0';
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)dst[i]) * 1099511628211ULL;
    if (r->heads == NULL && r->nents >= INDEX_FROM) {
        r->heads = hl_xmalloc(INDEX_BUCKETS * sizeof *r->heads);
        memset(r->heads, 0xff, INDEX_BUCKETS * sizeof *r->heads);
        for (size_t e = 0; e < r->nents; e++) {
            uint32_t *head = &r->heads[r->ents[e].hash & (INDEX_BUCKETS - 1)];
            r->ents[e].next = *head;
            *head = (uint32_t)e;
        }
    }
    /* The entries of this object are those from first up: a chain holds them above any
     * enclosing object's. */
    uint32_t e = r->heads ? r->heads[h & (INDEX_BUCKETS - 1)]
                          : (r->nents > first ? (uint32_t)(r->nents - 1) : NO_ENTRY);
    for (; e != NO_ENTRY && e >= first; e = r->heads ? r->ents[e].next : e - 1) {
        if (r->ents[e].hash == h && r->ents[e].len == n &&
            memcmp(r->keys + r->ents[e].off, dst, n) == 0)
            return false;
        if (!r->heads && e == first) break;
    }
    key_ent_t *ent = &r->ents[r->nents];
    *ent = (key_ent_t){h, (uint32_t)r->nkeys, (uint32_t)n, NO_ENTRY};
    if (r->heads) {
        ent->next = r->heads[h & (INDEX_BUCKETS - 1)];
        r->heads[h & (INDEX_BUCKETS - 1)] = (uint32_t)r->nents;
    }
    r->nents++;
    r->nkeys += n + 1;
    *key = dst;
    return true;
}

/* Drops the keys of the object whose entries start at first. */
static void keys_pop(rd_t *r, size_t first)
{
    for (size_t e = r->nents; r->heads && e-- > first;)
        r->heads[r->ents[e].hash & (INDEX_BUCKETS - 1)] = r->ents[e].next;
    r->nkeys = first < r->nents ? r->ents[first].off : r->nkeys;
    r->nents = first;
}

static int read_value(rd_t *r, int depth, int64_t *i);

/* Reads the members of an object (r->p just past '{') or the elements of an array (just past
 * '['), checking every value. False when it is not JSON. */
static bool read_container(rd_t *r, int depth, bool object)
{
    size_t first = r->nents;
    char close = object ? '}' : ']';
    int64_t ignored;
    skip_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return true;
    }
    for (;;) {
        if (object) {
            const char *key;
            if (!read_key(r, first, &key)) return false;
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':') return false;
            r->p++;
            skip_ws(r);
        }
        if (read_value(r, depth + 1, &ignored) < 0) return false;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            skip_ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == close) break;
        return false;
    }
    r->p++;
    if (object) keys_pop(r, first);
    return true;
}

/* Reads any value at r->p (white space skipped before it), nested depth deep; a string is
 * checked, not kept. Its kind, with an integer's value in *i, or -1 when it is not JSON. */
static int read_value(rd_t *r, int depth, int64_t *i)
{
    if (depth > MAX_DEPTH || r->p >= r->end) return -1;
    size_t n;
    switch (*r->p) {
    case '"': return read_string(r, NULL, 0, &n) ? J_STRING : -1;
    case '{': r->p++; return read_container(r, depth, true) ? J_OBJECT : -1;
    case '[': r->p++; return read_container(r, depth, false) ? J_ARRAY : -1;
    default:
        if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')) return read_number(r, i);
        return read_literal(r);
    }
}

/* The string value of field f (r->p at its quote), decoded into dst (cap bytes). 0, HL_ETOOBIG
 * when it does not fit with its NUL, HL_EPARSE when plain and it holds a control character;
 * NOT_JSON. */
static int take_string(rd_t *r, char *dst, size_t cap, bool plain, size_t *n)
{
    if (!read_string(r, dst, cap, n)) return NOT_JSON;
    if (*n >= cap) return HL_ETOOBIG;
    dst[*n] = '\0';
    for (size_t k = 0; k < *n && plain; k++)
        if ((unsigned char)dst[k] < 0x20 || dst[k] == 0x7f) return HL_EPARSE;
    return 0;
}

/* Reads the value of field f into rec. Returns 0, a field error (HL_EPARSE, HL_ETOOBIG,
 * HL_ERANGE) or NOT_JSON. */
static int take_value(rd_t *r, hl_lineage_rec_t *rec, const lf_field_t *f, int depth)
{
    char *at = (char *)rec + f->off;
    size_t n = 0;
    int64_t i = 0;
    int kind;
    if (r->p < r->end && *r->p == '"') {
        int rc;
        char stage[16], hex[HL_SHA256_HEX_LEN + 1];
        switch (f->kind) {
        case LF_STAGE:
            rc = take_string(r, stage, sizeof stage, false, &n);
            if (rc == NOT_JSON) return NOT_JSON;
            return rc == 0 && hl_stage_parse(stage, &rec->stage) == 0 ? 0 : HL_EPARSE;
        case LF_ID: return take_string(r, at, f->size, true, &n);
        case LF_STR:
        case LF_STR_NULL:
            rc = take_string(r, at, f->size, false, &n);
            if (rc == 0) *(bool *)((char *)rec + f->has_off) = true;
            return rc;
        case LF_HEX:
            rc = take_string(r, hex, sizeof hex, false, &n);
            if (rc == NOT_JSON) return NOT_JSON;
            if (rc != 0 || n != HL_SHA256_HEX_LEN ||
                strspn(hex, "0123456789abcdef") != HL_SHA256_HEX_LEN)
                return HL_EPARSE;
            memcpy(at, hex, sizeof hex);
            return 0;
        default: return read_string(r, NULL, 0, &n) ? HL_EPARSE : NOT_JSON;
        }
    }
    kind = read_value(r, depth, &i);
    if (kind < 0) return NOT_JSON;
    switch (f->kind) {
    case LF_VERSION: return kind == J_INT && i == 1 ? 0 : HL_EPARSE;
    case LF_STR_NULL: return kind == J_NULL ? 0 : HL_EPARSE;
    case LF_INT_NULL:
        if (kind == J_NULL) return 0;
        /* fall through */
    case LF_INT:
        if (kind != J_INT) return HL_EPARSE;
        memcpy(at, &i, sizeof i);
        return i == HL_LINEAGE_ABSENT ? HL_ERANGE : 0;
    case LF_BOOL:
        if (kind != J_TRUE && kind != J_FALSE) return HL_EPARSE;
        rec->duplicate = kind == J_TRUE;
        return 0;
    default: return HL_EPARSE;
    }
}

/* Reads the top-level object's members into rec (r->p just past '{'). Returns false when the
 * document is not JSON; otherwise *err is the first field's error (0: none), with *why. */
static bool read_record(rd_t *r, hl_lineage_rec_t *rec, bool *has_v, int *err, const char **why)
{
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return true;
    }
    for (;;) {
        const char *key;
        if (!read_key(r, 0, &key)) return false;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':') return false;
        r->p++;
        skip_ws(r);
        const lf_field_t *f = hl_lineage_field(key);
        int rc;
        if (f == NULL) {
            int64_t ignored;
            if (read_value(r, 2, &ignored) < 0) return false;
            if (*err == 0) *err = HL_EPARSE, *why = "unknown field";
        } else {
            if (f->kind == LF_VERSION) *has_v = true;
            /* After a field's error the rest is only checked to be JSON. */
            hl_lineage_rec_t spare;
            rc = take_value(r, *err == 0 ? rec : &spare, f, 2);
            if (rc == NOT_JSON) return false;
            if (rc != 0 && *err == 0) *err = rc, *why = rc == HL_ETOOBIG ? f->why_long : f->why;
        }
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            skip_ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == '}') break;
        return false;
    }
    r->p++;
    return true;
}

int hl_lineage_parse(const char *json, size_t len, hl_lineage_rec_t *rec, const char **why)
{
    *why = "ok";
    hl_lineage_rec_init(rec, (hl_stage_t)-1);
    if (len > HL_LINEAGE_READ_MAX) {
        *why = "record too large";
        return HL_ETOOBIG;
    }
    if (!json || len == 0 || memchr(json, '\0', len)) {
        *why = "empty or NUL in record";
        return HL_EPARSE;
    }
    rd_t *r = &(rd_t){0};
    r->p = (const unsigned char *)json;
    r->end = r->p + len;
    r->keys = r->keys_inline;
    r->keys_cap = sizeof r->keys_inline;
    r->ents = r->ents_inline;
    r->ents_cap = ENTRIES_INLINE;
    bool has_v = false, object = false, ok;
    int err = 0;
    const char *field_why = NULL;
    skip_ws(r);
    if (r->p < r->end && *r->p == '{') {
        r->p++;
        object = true;
        ok = read_record(r, rec, &has_v, &err, &field_why);
    } else if (r->p < r->end && *r->p == '[') {
        r->p++;
        ok = read_container(r, 1, false);
    } else {
        ok = false;
    }
    skip_ws(r);
    ok = ok && r->p == r->end;
    if (r->keys != r->keys_inline) free(r->keys);
    if (r->ents != r->ents_inline) free(r->ents);
    free(r->heads);
    if (!ok || !object) {
        *why = ok ? "record is not an object" : "record is not JSON";
        return HL_EPARSE;
    }
    if (err) {
        *why = field_why;
        return err;
    }
    return hl_lineage_check_required(rec, has_v, why);
}
