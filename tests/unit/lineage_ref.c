/* The reference reading of a lineage record through jansson (lineage_ref.h). */
#include "lineage_ref.h"

#include <jansson.h>
#include <string.h>

#include "lineage_fields.h"

/* Copies a JSON string of at most cap - 1 bytes. Only the request id (a line of the auditor's
 * hash encoding) must be free of control characters; NUL is refused by jansson. */
static int take_str(json_t *v, char *dst, size_t cap, bool plain)
{
    if (!json_is_string(v)) return HL_EPARSE;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n >= cap) return HL_ETOOBIG;
    for (size_t i = 0; i < n && plain; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return HL_EPARSE;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int take_int(json_t *v, void *dst)
{
    if (!json_is_integer(v)) return HL_EPARSE;
    int64_t i = (int64_t)json_integer_value(v);
    memcpy(dst, &i, sizeof i);
    return i == HL_LINEAGE_ABSENT ? HL_ERANGE : 0;
}

static bool is_hex64(json_t *v)
{
    return json_is_string(v) && json_string_length(v) == HL_SHA256_HEX_LEN &&
           strspn(json_string_value(v), "0123456789abcdef") == HL_SHA256_HEX_LEN;
}

/* Takes the value of one field into r. Returns 0 or an error with *why set. */
static int take_field(hl_lineage_rec_t *r, const lf_field_t *f, json_t *v, const char **why)
{
    char *at = (char *)r + f->off;
    int rc = HL_EPARSE;
    switch (f->kind) {
    case LF_VERSION: rc = json_is_integer(v) && json_integer_value(v) == 1 ? 0 : HL_EPARSE; break;
    case LF_STAGE:
        rc = json_is_string(v) && hl_stage_parse(json_string_value(v), &r->stage) == 0 ? 0
                                                                                       : HL_EPARSE;
        break;
    case LF_ID: rc = take_str(v, at, f->size, true); break;
    case LF_STR_NULL:
        if (json_is_null(v)) return 0;
        /* fall through */
    case LF_STR:
        rc = take_str(v, at, f->size, false);
        if (rc == 0) *(bool *)((char *)r + f->has_off) = true;
        break;
    case LF_HEX:
        if (!is_hex64(v)) break;
        memcpy(at, json_string_value(v), HL_SHA256_HEX_LEN + 1);
        rc = 0;
        break;
    case LF_INT_NULL:
        if (json_is_null(v)) return 0;
        /* fall through */
    case LF_INT: rc = take_int(v, at); break;
    case LF_BOOL:
        if (!json_is_boolean(v)) break;
        r->duplicate = json_is_true(v);
        rc = 0;
        break;
    }
    if (rc) *why = rc == HL_ETOOBIG ? f->why_long : f->why;
    return rc;
}

/* Parses the object's fields into r. Returns 0 or an error with *why set. */
static int take_fields(hl_lineage_rec_t *r, json_t *root, const char **why)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        const lf_field_t *f = hl_lineage_field(key);
        if (!f) {
            *why = "unknown field";
            return HL_EPARSE;
        }
        int rc = take_field(r, f, v, why);
        if (rc) return rc < 0 ? rc : HL_EPARSE;
    }
    return 0;
}

int lineage_ref_parse(const char *json, size_t len, hl_lineage_rec_t *r, const char **why)
{
    *why = "ok";
    hl_lineage_rec_init(r, (hl_stage_t)-1);
    if (len > HL_LINEAGE_READ_MAX) {
        *why = "record too large";
        return HL_ETOOBIG;
    }
    if (!json || len == 0 || memchr(json, '\0', len)) {
        *why = "empty or NUL in record";
        return HL_EPARSE;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        *why = root ? "record is not an object" : "record is not JSON";
        json_decref(root);
        return HL_EPARSE;
    }
    bool has_v = json_object_get(root, "v") != NULL;
    int rc = take_fields(r, root, why);
    json_decref(root);
    return rc ? rc : hl_lineage_check_required(r, has_v, why);
}

/* Field by field: strings up to their NUL, integers, flags. */
static const char *record_differs(const hl_lineage_rec_t *a, const hl_lineage_rec_t *b)
{
#define STR_SAME(f)                                                                                \
    if (strcmp(a->f, b->f) != 0) return #f
#define INT_SAME(f)                                                                                \
    if (a->f != b->f) return #f
    INT_SAME(stage);
    STR_SAME(request_id);
    INT_SAME(ts_us);
    STR_SAME(source);
    STR_SAME(message_id);
    STR_SAME(event_type);
    STR_SAME(error_code);
    INT_SAME(has_source);
    INT_SAME(has_message_id);
    INT_SAME(has_event_type);
    INT_SAME(has_error_code);
    INT_SAME(received_us);
    INT_SAME(status);
    INT_SAME(partition);
    INT_SAME(offset);
    INT_SAME(latency_us);
    INT_SAME(consumed_us);
    INT_SAME(committed_us);
    INT_SAME(row_id);
    INT_SAME(attempts);
    INT_SAME(suppressed);
    STR_SAME(body_sha256);
    INT_SAME(duplicate);
#undef STR_SAME
#undef INT_SAME
    return NULL;
}

bool lineage_ref_agrees(const char *json, size_t len, const char **what)
{
    hl_lineage_rec_t mine, ref;
    const char *why_mine = NULL, *why_ref = NULL;
    int rc_mine = hl_lineage_parse(json, len, &mine, &why_mine);
    int rc_ref = lineage_ref_parse(json, len, &ref, &why_ref);
    *what = NULL;
    if (rc_mine != rc_ref)
        *what = "result";
    else if (strcmp(why_mine, why_ref) != 0)
        *what = "reason";
    else if (rc_mine == 0)
        *what = record_differs(&mine, &ref);
    return *what == NULL;
}
