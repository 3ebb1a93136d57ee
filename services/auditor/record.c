/* Strict validation of lineage records: anything off the schema is refused, never guessed. */
#include "record.h"

#include <jansson.h>
#include <string.h>

static const char *const stage_names[] = {"ingress", "persisted", "dead_lettered"};

const char *hl_stage_name(hl_stage_t s)
{
    return (unsigned)s < 3 ? stage_names[s] : "unknown";
}

int hl_stage_parse(const char *s, hl_stage_t *out)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, stage_names[i]) == 0) {
            *out = (hl_stage_t)i;
            return 0;
        }
    return HL_EINVAL;
}

/* Copies a JSON string of at most cap-1 bytes. Only the request id (a line of the hash
 * encoding, see chain.h) must be free of control characters; NUL is refused by jansson. */
static int take_str(json_t *v, char *dst, size_t cap, bool *has)
{
    if (!json_is_string(v)) return HL_EPARSE;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n >= cap) return HL_ETOOBIG;
    for (size_t i = 0; i < n && !has; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return HL_EPARSE;
    memcpy(dst, s, n);
    dst[n] = '\0';
    if (has) *has = true;
    return 0;
}

static int take_int(json_t *v, int64_t *dst)
{
    if (!json_is_integer(v)) return HL_EPARSE;
    *dst = (int64_t)json_integer_value(v);
    if (*dst == HL_REC_ABSENT) return HL_ERANGE;
    return 0;
}

static int take_field(hl_record_t *r, const char *key, json_t *v, const char **why)
{
    int rc;
#define STR(name, has)                                                                   \
    if (strcmp(key, #name) == 0) {                                                       \
        rc = take_str(v, r->name, sizeof r->name, has);                                  \
        *why = rc == HL_ETOOBIG ? #name " too long" : #name " must be a plain string";   \
        return rc;                                                                       \
    }
#define INT(name)                                                                        \
    if (strcmp(key, #name) == 0) {                                                       \
        *why = #name " must be an integer";                                              \
        return take_int(v, &r->name);                                                    \
    }
    STR(request_id, NULL)
    STR(source, &r->has_source)
    STR(message_id, &r->has_message_id)
    STR(event_type, &r->has_event_type)
    INT(ts_us)
    INT(received_us)
    INT(status)
    INT(partition)
    INT(offset)
    INT(latency_us)
    INT(consumed_us)
    INT(committed_us)
    INT(attempts)
    INT(suppressed)
#undef STR
#undef INT
    if (strcmp(key, "error_code") == 0) {
        if (json_is_null(v)) return 0;
        rc = take_str(v, r->error_code, sizeof r->error_code, &r->has_error_code);
        *why = "error_code must be a short string or null";
        return rc;
    }
    if (strcmp(key, "body_sha256") == 0) {
        *why = "body_sha256 must be 64 lowercase hex digits";
        if (!json_is_string(v) || json_string_length(v) != 64 ||
            strspn(json_string_value(v), "0123456789abcdef") != 64)
            return HL_EPARSE;
        memcpy(r->body_sha256, json_string_value(v), 65);
        return 0;
    }
    if (strcmp(key, "row_id") == 0) {
        if (json_is_null(v)) return 0;
        *why = "row_id must be an integer or null";
        return take_int(v, &r->row_id);
    }
    if (strcmp(key, "duplicate") == 0) {
        *why = "duplicate must be a boolean";
        if (!json_is_boolean(v)) return HL_EPARSE;
        r->duplicate = json_is_true(v);
        return 0;
    }
    if (strcmp(key, "v") == 0) {
        *why = "v must be 1";
        return json_is_integer(v) && json_integer_value(v) == 1 ? 0 : HL_EPARSE;
    }
    if (strcmp(key, "stage") == 0) {
        *why = "unknown stage";
        return json_is_string(v) && hl_stage_parse(json_string_value(v), &r->stage) == 0
                   ? 0
                   : HL_EPARSE;
    }
    *why = "unknown field";
    return HL_EPARSE;
}

int hl_record_parse(const char *json, size_t len, hl_record_t *r, const char **why)
{
    json_error_t jerr;
    json_t *root, *v;
    const char *key;
    int rc = 0;
    bool has_v;

    *why = "ok";
    if (len > HL_REC_MAX_BYTES) {
        *why = "record too large";
        return HL_ETOOBIG;
    }
    memset(r, 0, sizeof *r);
    r->stage = (hl_stage_t)-1;
    r->ts_us = r->received_us = r->status = r->partition = r->offset = HL_REC_ABSENT;
    r->latency_us = r->consumed_us = r->committed_us = r->row_id = r->attempts = r->suppressed =
        HL_REC_ABSENT;
    r->duplicate = -1;
    if (!json || len == 0 || memchr(json, '\0', len)) {
        *why = "empty or NUL in record";
        return HL_EPARSE;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        *why = root ? "record is not an object" : "record is not JSON";
        json_decref(root);
        return HL_EPARSE;
    }
    has_v = json_object_get(root, "v") != NULL;
    json_object_foreach(root, key, v)
    {
        rc = take_field(r, key, v, why);
        if (rc) break;
    }
    json_decref(root);
    if (rc) return rc < 0 ? rc : HL_EPARSE;
    if (!has_v) *why = "v missing";
    else if ((int)r->stage < 0) *why = "stage missing";
    else if (r->request_id[0] == '\0') *why = "request_id missing";
    else if (r->ts_us == HL_REC_ABSENT) *why = "ts_us missing";
    else if (r->ts_us < 0 || r->ts_us > INT64_C(4102444800000000)) *why = "ts_us out of range";
    else return 0;
    return HL_EPARSE;
}
