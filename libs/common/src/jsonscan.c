/* JSON validated in one pass and pointers resolved on the text itself (hl/jsonscan.h). Each rule
 * below is one jansson applies when it loads a text with JSON_REJECT_DUPLICATES; the decoded
 * keys of every object are kept in a hash table of the calling thread, reused from one scan to
 * the next (up to SCRATCH_KEEP bytes of it), so a scan of an ordinary body allocates nothing.
 * The table's hash is SipHash-1-3 under a key drawn at start: a sender who cannot know the key
 * cannot choose keys that all land in one slot (with an unkeyed hash, 80,000 such keys in a
 * 4.5 MB body took 8 s to scan against 0.15 s for jansson). */
#include "hl/jsonscan.h"

#include <errno.h>
#include <math.h> /* HUGE_VAL */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl/jsonptr.h"
#include "hl/util.h"

/* ---- the thread's scratch: decoded keys and the table that finds repeated ones ---- */

typedef struct {
    uint32_t scan; /* the scan it was filled in; any other: empty */
    uint32_t obj;  /* the object (its number in the scan) */
    uint32_t off, len;
} kslot_t;

typedef struct {
    char *keys; /* decoded keys, one after the other */
    size_t kcap;
    kslot_t *slots; /* a power of two of them */
    size_t scap;
    uint32_t scan; /* scans so far, wrapping past 0 */
} scratch_t;

/* What a thread keeps between scans; a bigger table or key buffer is freed after its scan. */
#define SCRATCH_KEEP (256 * 1024)

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_ok;
static uint64_t sip_k0, sip_k1; /* the hash key, drawn once */

static void scratch_free(void *p)
{
    scratch_t *s = p;
    free(s->keys);
    free(s->slots);
    free(s);
}

static void scratch_make(void)
{
    uint64_t k[2];
    hl_random_bytes(k, sizeof k);
    sip_k0 = k[0];
    sip_k1 = k[1];
    scratch_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* Frees the thread's scratch when a big text grew it past SCRATCH_KEEP. */
static void scratch_trim(scratch_t *s)
{
    if (s->scap * sizeof *s->slots + s->kcap <= SCRATCH_KEEP) return;
    free(s->keys);
    free(s->slots);
    s->keys = NULL;
    s->slots = NULL;
    s->kcap = s->scap = 0;
}

/* ---- SipHash-1-3 (Aumasson and Bernstein), keyed per object ---- */

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);                                  \
        v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);                                  \
    } while (0)

static uint64_t siphash13(uint64_t k0, uint64_t k1, const unsigned char *p, size_t n)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = 0;
        for (int b = 0; b < 8; b++) m |= (uint64_t)p[i + b] << (8 * b);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)n << 56;
    for (int b = 0; i + b < n; b++) last |= (uint64_t)p[i + b] << (8 * b);
    v3 ^= last;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The thread's scratch with room for the keys of an n-byte text, or NULL without memory. */
static scratch_t *scratch_for(size_t n)
{
    pthread_once(&scratch_once, scratch_make);
    if (!scratch_ok) return NULL;
    scratch_t *s = pthread_getspecific(scratch_key);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL || pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    /* Every key takes at least its own 3 bytes ("":), so there are at most n / 3 of them, and
     * the table stays at most half full. */
    size_t want = 16;
    while (want < 2 * (n / 3 + 2)) want *= 2;
    if (s->scap < want) {
        kslot_t *t = calloc(want, sizeof *t);
        if (t == NULL) return NULL;
        free(s->slots);
        s->slots = t;
        s->scap = want;
        s->scan = 0;
    }
    if (s->kcap < n + 1) {
        char *k = malloc(n + 1);
        if (k == NULL) return NULL;
        free(s->keys);
        s->keys = k;
        s->kcap = n + 1;
    }
    if (++s->scan == 0) { /* wrapped: every slot could look filled */
        memset(s->slots, 0, s->scap * sizeof *s->slots);
        s->scan = 1;
    }
    return s;
}

/* ---- pointers ---- */

#define MAX_TOKENS 16 /* per pointer held on the stack; a longer pointer is decoded on the heap */

typedef struct {
    const char *p; /* decoded */
    size_t len;
    int64_t idx; /* as an array index: canonical decimal, at most 9 digits; else -1 */
} tok_t;

typedef struct {
    tok_t *t;
    size_t ntok;
    size_t matched; /* tokens matched by the path to the value being scanned */
    bool live;      /* valid, every token short enough */
    hl_jscan_found_t *out;
} ptr_t;

/* Splits and decodes pointer p into toks (cap of them) over buf; returns the number of tokens,
 * or -1 when there are more than cap, or -2 when one is longer than hl_jsonptr_get resolves. */
static long ptr_tokens(const char *p, tok_t *toks, size_t cap, char *buf)
{
    size_t nt = 0, o = 0;
    while (*p == '/') {
        p++;
        if (nt == cap) return -1;
        tok_t *t = &toks[nt++];
        t->p = buf + o;
        size_t start = o;
        for (; *p != '\0' && *p != '/'; p++) {
            char c = *p;
            if (c == '~') c = *++p == '1' ? '/' : '~'; /* hl_jsonptr_valid: ~ then 0 or 1 */
            buf[o++] = c;
        }
        t->len = o - start;
        if (t->len > HL_JSONPTR_MAX_TOKEN) return -2;
        t->idx = -1;
        if (t->len > 0 && t->len <= 9 && (t->len == 1 || t->p[0] != '0')) {
            int64_t v = 0;
            size_t i = 0;
            for (; i < t->len && t->p[i] >= '0' && t->p[i] <= '9'; i++)
                v = v * 10 + (t->p[i] - '0');
            if (i == t->len) t->idx = v;
        }
    }
    return (long)nt;
}

/* ---- the scan ---- */

typedef struct {
    const unsigned char *s;
    size_t n, i;
    int max_depth, depth;
    ptr_t *ptrs;
    size_t nptrs;
    scratch_t *sc;
    size_t kused;
    uint32_t objects;
} scan_t;

static void skip_ws(scan_t *c)
{
    while (c->i < c->n) {
        unsigned char b = c->s[c->i];
        if (b != ' ' && b != '\t' && b != '\n' && b != '\r') return;
        c->i++;
    }
}

static int hexval(unsigned char b)
{
    if (b >= '0' && b <= '9') return b - '0';
    if (b >= 'a' && b <= 'f') return b - 'a' + 10;
    if (b >= 'A' && b <= 'F') return b - 'A' + 10;
    return -1;
}

/* Four hex digits at s[i] (i + 4 <= n checked by the caller) as a code unit, or -1. */
static long hex4(const unsigned char *s)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(s[k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* A string at s[i] == '"': on success its contents are s[start + 1, c->i - 1) (start the
 * index it was called at) and c->i is past the closing quote. No out-parameters: a scan
 * recurses once per nesting level on a worker's stack, and what a frame takes counts 64 times
 * (under AddressSanitizer an address-taken local takes its redzones with it). */
static int scan_string(scan_t *c)
{
    const unsigned char *s = c->s;
    size_t i = c->i + 1, n = c->n;
    while (i < n) {
        unsigned char b = s[i];
        if (b == '"') {
            c->i = i + 1;
            return 0;
        }
        if (b < 0x20) return HL_EPARSE;
        if (b == '\\') {
            if (i + 1 >= n) return HL_EPARSE;
            unsigned char e = s[i + 1];
            if (e == 'u') {
                if (n - i < 6) return HL_EPARSE;
                long u = hex4(s + i + 2);
                if (u < 0 || u == 0 || (u >= 0xDC00 && u <= 0xDFFF)) return HL_EPARSE;
                i += 6;
                if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate: its low half next */
                    if (n - i < 6 || s[i] != '\\' || s[i + 1] != 'u') return HL_EPARSE;
                    long lo = hex4(s + i + 2);
                    if (lo < 0xDC00 || lo > 0xDFFF) return HL_EPARSE;
                    i += 6;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0') return HL_EPARSE;
            i += 2;
            continue;
        }
        if (b < 0x80) {
            i++;
            continue;
        }
        /* jansson's stream reads UTF-8 by the rules hl_utf8_seq_len applies. */
        size_t l = hl_utf8_seq_len(s + i, n - i);
        if (l == 0) return HL_EPARSE;
        i += l;
    }
    return HL_EPARSE; /* no closing quote */
}

ssize_t hl_json_unescape(const unsigned char *raw, size_t len, char *out, size_t cap)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char b = raw[i];
        unsigned char enc[4];
        size_t el = 1;
        const char *e;
        if (b != '\\') {
            enc[0] = b;
            i++;
        } else if (i + 1 < len && raw[i + 1] != 'u' && raw[i + 1] != '\0' &&
                   (e = strchr(from, raw[i + 1])) != NULL) {
            enc[0] = (unsigned char)to[e - from];
            i += 2;
        } else {
            /* \uXXXX, and its low half after a high surrogate; anything else was not found by
             * a scan. */
            long u = len - i >= 6 && raw[i + 1] == 'u' ? hex4(raw + i + 2) : -1;
            if (u <= 0 || (u >= 0xDC00 && u <= 0xDFFF)) return -1; /* \u0000, a lone low half */
            i += 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                long lo =
                    len - i >= 6 && raw[i] == '\\' && raw[i + 1] == 'u' ? hex4(raw + i + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return -1;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            if (u < 0x80) {
                enc[0] = (unsigned char)u;
            } else if (u < 0x800) {
                enc[0] = (unsigned char)(0xC0 | (u >> 6));
                enc[1] = (unsigned char)(0x80 | (u & 0x3F));
                el = 2;
            } else if (u < 0x10000) {
                enc[0] = (unsigned char)(0xE0 | (u >> 12));
                enc[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
                enc[2] = (unsigned char)(0x80 | (u & 0x3F));
                el = 3;
            } else {
                enc[0] = (unsigned char)(0xF0 | (u >> 18));
                enc[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
                enc[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
                enc[3] = (unsigned char)(0x80 | (u & 0x3F));
                el = 4;
            }
        }
        if (cap == 0 || o + el > cap - 1) return -1;
        memcpy(out + o, enc, el);
        o += el;
    }
    if (cap == 0) return -1;
    out[o] = '\0';
    return (ssize_t)o;
}

/* jansson reads one character past a number or a literal and puts it back; a NUL put back
 * reads as its stream's end of buffer, so that one NUL is skipped ([1\0] is [1]). */
static void skip_put_back_nul(scan_t *c)
{
    if (c->i < c->n && c->s[c->i] == '\0') c->i++;
}

/* A number at s[i]: the JSON grammar, then jansson's ranges: an integer (no fraction, no
 * exponent) must fit int64_t, any other must not overflow a double. */
static int scan_number(scan_t *c)
{
    const unsigned char *s = c->s;
    size_t i = c->i, n = c->n, start = i;
    bool integer = true;
    if (s[i] == '-') i++;
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    } else {
        return HL_EPARSE;
    }
    if (i < n && s[i] == '.') {
        integer = false;
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return HL_EPARSE;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        integer = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || s[i] < '0' || s[i] > '9') return HL_EPARSE;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < n && s[i] >= '0' && s[i] <= '9') return HL_EPARSE; /* "01" */
    c->i = i;
    skip_put_back_nul(c);
    /* Short integers cannot overflow: 18 digits stay below 2^63. */
    size_t len = i - start;
    if (integer && len <= 18) return 0;
    char small[64], *text = len < sizeof small ? small : malloc(len + 1);
    if (text == NULL) return HL_EPARSE;
    memcpy(text, s + start, len);
    text[len] = '\0';
    int rc = 0;
    errno = 0;
    if (integer) {
        (void)strtoll(text, NULL, 10);
        if (errno == ERANGE) rc = HL_EPARSE;
    } else {
        double d = strtod(text, NULL);
        if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE) rc = HL_EPARSE;
    }
    if (text != small) free(text);
    return rc;
}

static int scan_value(scan_t *c, size_t pd);

/* Records the value about to be scanned for every pointer that ends at it. */
static void found_here(scan_t *c, size_t pd, hl_jscan_kind_t kind)
{
    for (size_t k = 0; k < c->nptrs; k++) {
        ptr_t *p = &c->ptrs[k];
        if (p->live && p->matched == pd && p->ntok == pd) p->out->kind = kind;
    }
}

/* Adds key (decoded at c->sc->keys + off, len bytes) to object obj; HL_EPARSE if it is there. */
static int key_add(scan_t *c, uint32_t obj, size_t off, size_t len)
{
    scratch_t *sc = c->sc;
    const char *key = sc->keys + off;
    uint64_t h = siphash13(sip_k0, sip_k1 ^ obj, (const unsigned char *)key, len);
    for (size_t i = (size_t)h & (sc->scap - 1);; i = (i + 1) & (sc->scap - 1)) {
        kslot_t *e = &sc->slots[i];
        if (e->scan != sc->scan) {
            *e = (kslot_t){sc->scan, obj, (uint32_t)off, (uint32_t)len};
            return 0;
        }
        if (e->obj == obj && e->len == len && memcmp(sc->keys + e->off, key, len) == 0)
            return HL_EPARSE;
    }
}

/* One member's value, an object's (key, klen) or an array's (key NULL, index idx), with every
 * pointer that names it matched one token further while it is scanned. */
static int scan_member(scan_t *c, size_t pd, const char *key, size_t klen, int64_t idx)
{
    for (size_t k = 0; k < c->nptrs; k++) {
        ptr_t *p = &c->ptrs[k];
        if (!p->live || p->matched != pd || pd >= p->ntok) continue;
        const tok_t *t = &p->t[pd];
        if (key != NULL ? t->len == klen && memcmp(t->p, key, klen) == 0 : t->idx == idx)
            p->matched = pd + 1;
    }
    int rc = scan_value(c, pd + 1);
    /* In a container whose path is pd tokens long no pointer has matched more than pd: what
     * this member added is taken back (deeper members took back their own). */
    for (size_t k = 0; k < c->nptrs; k++)
        if (c->ptrs[k].matched > pd) c->ptrs[k].matched = pd;
    return rc;
}

/* After a member: 1 at the container's end (consumed), 0 after a comma, HL_EPARSE else. */
static int next_member(scan_t *c, unsigned char close)
{
    skip_ws(c);
    if (c->i >= c->n) return HL_EPARSE;
    if (c->s[c->i] == close) {
        c->i++;
        return 1;
    }
    if (c->s[c->i] != ',') return HL_EPARSE;
    c->i++;
    return 0;
}

static int scan_object(scan_t *c, size_t pd)
{
    uint32_t obj = ++c->objects;
    c->i++;
    skip_ws(c);
    if (c->i < c->n && c->s[c->i] == '}') {
        c->i++;
        return 0;
    }
    for (;;) {
        skip_ws(c);
        if (c->i >= c->n || c->s[c->i] != '"') return HL_EPARSE;
        size_t start = c->i;
        if (scan_string(c) != 0) return HL_EPARSE;
        const unsigned char *raw = c->s + start + 1;
        size_t rlen = c->i - start - 2;
        size_t off = c->kused;
        const char *key = c->sc->keys + off;
        ssize_t klen = hl_json_unescape(raw, rlen, c->sc->keys + off, c->sc->kcap - off);
        if (klen < 0 || key_add(c, obj, off, (size_t)klen) != 0) return HL_EPARSE;
        c->kused += (size_t)klen;
        skip_ws(c);
        if (c->i >= c->n || c->s[c->i] != ':') return HL_EPARSE;
        c->i++;
        int rc = scan_member(c, pd, key, (size_t)klen, -1);
        if (rc == 0) rc = next_member(c, '}');
        if (rc != 0) return rc < 0 ? rc : 0;
    }
}

static int scan_array(scan_t *c, size_t pd)
{
    c->i++;
    skip_ws(c);
    if (c->i < c->n && c->s[c->i] == ']') {
        c->i++;
        return 0;
    }
    for (int64_t idx = 0;; idx++) {
        int rc = scan_member(c, pd, NULL, 0, idx);
        if (rc == 0) rc = next_member(c, ']');
        if (rc != 0) return rc < 0 ? rc : 0;
    }
}

static int literal(scan_t *c, const char *word, size_t len)
{
    if (c->n - c->i < len || memcmp(c->s + c->i, word, len) != 0) return HL_EPARSE;
    c->i += len;
    skip_put_back_nul(c);
    return 0;
}

/* The value at c->i (after whitespace), the path to it pd tokens long. */
static int scan_value(scan_t *c, size_t pd)
{
    skip_ws(c);
    if (c->i >= c->n) return HL_EPARSE;
    unsigned char b = c->s[c->i];
    int rc;
    switch (b) {
    case '{':
    case '[':
        if (++c->depth > c->max_depth) return HL_EPARSE;
        found_here(c, pd, HL_JSCAN_OTHER);
        rc = b == '{' ? scan_object(c, pd) : scan_array(c, pd);
        c->depth--;
        return rc;
    case '"': {
        size_t start = c->i;
        if (scan_string(c) != 0) return HL_EPARSE;
        for (size_t k = 0; k < c->nptrs; k++) {
            ptr_t *p = &c->ptrs[k];
            if (p->live && p->matched == pd && p->ntok == pd)
                *p->out = (hl_jscan_found_t){HL_JSCAN_STRING, c->s + start + 1, c->i - start - 2};
        }
        return 0;
    }
    case 't': found_here(c, pd, HL_JSCAN_OTHER); return literal(c, "true", 4);
    case 'f': found_here(c, pd, HL_JSCAN_OTHER); return literal(c, "false", 5);
    case 'n': found_here(c, pd, HL_JSCAN_NULL); return literal(c, "null", 4);
    default:
        if (b != '-' && (b < '0' || b > '9')) return HL_EPARSE;
        found_here(c, pd, HL_JSCAN_OTHER);
        return scan_number(c);
    }
}

int hl_json_scan(const unsigned char *s, size_t n, int max_depth, const char *const *ptrs,
                 size_t nptrs, hl_jscan_found_t *found)
{
    if (nptrs > HL_JSCAN_MAX_PTRS || n > UINT32_MAX / 2) return HL_EINVAL; /* kslot_t's fields */
    tok_t stack_toks[HL_JSCAN_MAX_PTRS][MAX_TOKENS];
    char stack_buf[HL_JSCAN_MAX_PTRS][128];
    tok_t *heap_toks[HL_JSCAN_MAX_PTRS] = {NULL};
    char *heap_buf[HL_JSCAN_MAX_PTRS] = {NULL};
    ptr_t pv[HL_JSCAN_MAX_PTRS];
    scan_t c = {0};
    int rc = HL_EPARSE;
    for (size_t k = 0; k < nptrs; k++) {
        found[k] = (hl_jscan_found_t){HL_JSCAN_NONE, NULL, 0};
        pv[k] = (ptr_t){NULL, 0, 0, false, &found[k]};
        if (!hl_jsonptr_valid(ptrs[k])) continue;
        size_t plen = strlen(ptrs[k]), slashes = 0;
        for (const char *q = ptrs[k]; *q; q++) slashes += *q == '/';
        tok_t *toks = stack_toks[k];
        char *buf = stack_buf[k];
        size_t cap = MAX_TOKENS;
        if (plen >= sizeof stack_buf[k] || slashes > MAX_TOKENS) {
            cap = slashes; /* one token per '/' */
            toks = heap_toks[k] = malloc(cap * sizeof *toks);
            buf = heap_buf[k] = malloc(plen + 1);
            if (toks == NULL || buf == NULL) goto out;
        }
        long nt = ptr_tokens(ptrs[k], toks, cap, buf);
        if (nt < 0) continue; /* a token too long: resolves to nothing */
        pv[k] = (ptr_t){toks, (size_t)nt, 0, true, &found[k]};
    }
    c = (scan_t){s, n, 0, max_depth, 0, pv, nptrs, scratch_for(n), 0, 0};
    if (c.sc == NULL) goto out;
    skip_ws(&c);
    if (c.i >= n || (s[c.i] != '{' && s[c.i] != '[')) goto out;
    if (scan_value(&c, 0) != 0) goto out;
    skip_ws(&c);
    if (c.i != n) goto out;
    rc = 0;
out:
    if (c.sc != NULL) scratch_trim(c.sc);
    for (size_t k = 0; k < nptrs; k++) {
        free(heap_toks[k]);
        free(heap_buf[k]);
    }
    return rc;
}
