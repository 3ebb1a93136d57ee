/* The lineage writer: by hand into a bounded buffer, no printf and no JSON tree, since both the
 * ingress (per request) and the persister (per stored row) write one record per event. */
#include <stdbool.h>
#include <string.h>

#include "hl/lineage_record.h"
#include "hl/log.h"
#include "hl/util.h"
#include "lineage_fields.h"

/* The fields of each stage's record in the order they are written: the order is part of the
 * bytes the auditor hashes, so it never changes for an existing field. */
static const unsigned char stage_fields[HL_STAGE_COUNT][F_COUNT + 1] = {
    [HL_STAGE_INGRESS] = {F_V, F_STAGE, F_REQUEST_ID, F_TS_US, F_SOURCE, F_MESSAGE_ID, F_EVENT_TYPE,
                          F_RECEIVED_US, F_STATUS, F_ERROR_CODE, F_PARTITION, F_OFFSET,
                          F_LATENCY_US, F_SUPPRESSED, F_BODY_SHA256, F_COUNT},
    [HL_STAGE_PERSISTED] = {F_V, F_STAGE, F_REQUEST_ID, F_TS_US, F_SOURCE, F_MESSAGE_ID,
                            F_EVENT_TYPE, F_RECEIVED_US, F_PARTITION, F_OFFSET, F_CONSUMED_US,
                            F_COMMITTED_US, F_ROW_ID, F_DUPLICATE, F_BODY_SHA256, F_COUNT},
    [HL_STAGE_DEAD_LETTERED] = {F_V, F_STAGE, F_REQUEST_ID, F_TS_US, F_SOURCE, F_MESSAGE_ID,
                                F_EVENT_TYPE, F_RECEIVED_US, F_PARTITION, F_OFFSET, F_CONSUMED_US,
                                F_ERROR_CODE, F_ATTEMPTS, F_BODY_SHA256, F_COUNT},
};

void hl_lineage_rec_init(hl_lineage_rec_t *r, hl_stage_t stage)
{
    memset(r, 0, sizeof *r);
    r->stage = stage;
    r->ts_us = r->received_us = r->status = r->partition = r->offset = HL_LINEAGE_ABSENT;
    r->latency_us = r->consumed_us = r->committed_us = r->row_id = r->attempts = r->suppressed =
        HL_LINEAGE_ABSENT;
    r->duplicate = -1;
}

void hl_lineage_rec_str(char *dst, size_t cap, bool *has, const char *src)
{
    *has = src != NULL;
    hl_strlcpy(dst, src ? src : "", cap);
}

/* The output so far; `over` once anything did not fit (then nothing more is written). */
typedef struct {
    char *p;
    size_t len, cap;
    bool over;
} jw_t;

static void jw_raw(jw_t *w, const char *s, size_t n)
{
    if (w->over || n >= w->cap - w->len) {
        w->over = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void jw_lit(jw_t *w, const char *s)
{
    jw_raw(w, s, strlen(s));
}

static void jw_int(jw_t *w, int64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    jw_raw(w, tmp + i, sizeof(tmp) - i);
}

/* A JSON string of s's first max bytes: copied as is when nothing in it needs escaping (the
 * usual case), else escaped first (6 bytes per byte at worst), so a record that fits is never
 * refused for the escape's worst case. */
static void jw_str(jw_t *w, const char *s, size_t max)
{
    char esc[6 * HL_MESSAGE_ID_MAX + 1];
    size_t n = strnlen(s, max), i = 0;
    while (i < n && (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f && s[i] != '"' &&
           s[i] != '\\')
        i++;
    jw_raw(w, "\"", 1);
    if (i == n)
        jw_raw(w, s, n);
    else
        jw_raw(w, esc, hl_json_escape(esc, sizeof esc, s, n));
    jw_raw(w, "\"", 1);
}

/* True when field f of r is written: there, or written as null when not. */
static bool present(const hl_lineage_rec_t *r, const lf_field_t *f)
{
    const char *at = (const char *)r + f->off;
    int64_t v;
    switch (f->kind) {
    case LF_STR: return *((const bool *)((const char *)r + f->has_off));
    case LF_HEX: return at[0] != '\0';
    case LF_INT: memcpy(&v, at, sizeof v); return v != HL_LINEAGE_ABSENT;
    case LF_BOOL: return r->duplicate >= 0;
    default: return true;
    }
}

static void write_value(jw_t *w, const hl_lineage_rec_t *r, const lf_field_t *f)
{
    const char *at = (const char *)r + f->off;
    int64_t v;
    switch (f->kind) {
    case LF_VERSION: jw_lit(w, "1"); break;
    case LF_STAGE: jw_str(w, hl_stage_name(r->stage), 64); break;
    case LF_STR_NULL:
        if (!*((const bool *)((const char *)r + f->has_off))) {
            jw_lit(w, "null");
            break;
        }
        /* fall through */
    case LF_ID:
    case LF_STR:
    case LF_HEX: jw_str(w, at, f->max); break;
    case LF_INT:
    case LF_INT_NULL:
        memcpy(&v, at, sizeof v);
        if (v == HL_LINEAGE_ABSENT)
            jw_lit(w, "null");
        else
            jw_int(w, v);
        break;
    case LF_BOOL: jw_lit(w, r->duplicate ? "true" : "false"); break;
    }
}

int hl_lineage_write(const hl_lineage_rec_t *r, char *buf, size_t cap)
{
    if ((unsigned)r->stage >= HL_STAGE_COUNT) return HL_EINVAL;
    jw_t w = {buf, 0, cap, cap == 0};
    const unsigned char *order = stage_fields[r->stage];
    for (size_t i = 0; order[i] != F_COUNT; i++) {
        const lf_field_t *f = &hl_lineage_fields[order[i]];
        if (!present(r, f)) continue;
        jw_lit(&w, i == 0 ? "{\"" : ",\"");
        jw_lit(&w, f->name);
        jw_lit(&w, "\":");
        write_value(&w, r, f);
    }
    jw_lit(&w, "}");
    if (w.over) return HL_ETOOBIG;
    buf[w.len] = '\0';
    return (int)w.len;
}
