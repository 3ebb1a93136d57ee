/* Formats `ingress` lineage records by hand into a bounded buffer: the fields are few and
 * fixed, and the request path should not build a jansson tree per request. */
#include "lineage.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hl/log.h"

typedef struct {
    char *buf;
    size_t cap, len;
    int overflow;
} out_t;

static void put(out_t *o, const char *fmt, ...) HL_PRINTF(2, 3);
static void put(out_t *o, const char *fmt, ...)
{
    if (o->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    o->len += (size_t)n;
}

static void put_str(out_t *o, const char *key, const char *v, size_t max)
{
    if (v == NULL || o->overflow) return;
    size_t n = strnlen(v, max);
    char esc[6 * 256 + 1];
    if (n > 256) n = 256;
    hl_json_escape(esc, sizeof(esc), v, n);
    put(o, ",\"%s\":\"%s\"", key, esc);
}

int ing_lineage_format(const ing_lineage_t *l, char *buf, size_t cap)
{
    out_t o = {buf, cap, 0, 0};
    put(&o, "{\"v\":1,\"stage\":\"ingress\",\"request_id\":\"%s\",\"ts_us\":%" PRId64,
        l->request_id, l->ts_us);
    put_str(&o, "source", l->source, 64);
    put_str(&o, "message_id", l->message_id, 256);
    put_str(&o, "event_type", l->event_type, 128);
    put(&o, ",\"received_us\":%" PRId64 ",\"status\":%d", l->received_us, l->status);
    if (l->error_code != NULL) put_str(&o, "error_code", l->error_code, 64);
    else put(&o, ",\"error_code\":null");
    if (l->partition >= 0) put(&o, ",\"partition\":%d", (int)l->partition);
    if (l->offset >= 0) put(&o, ",\"offset\":%" PRId64, l->offset);
    put(&o, ",\"latency_us\":%" PRId64 "}", l->latency_us);
    return o.overflow ? HL_ETOOBIG : (int)o.len;
}

void ing_lineage_emit(ing_producer_t *p, const ing_lineage_t *l)
{
    char buf[ING_LINEAGE_MAX];
    int n = ing_lineage_format(l, buf, sizeof(buf));
    if (n < 0) {
        hl_warn("lineage record over %d bytes, dropped", ING_LINEAGE_MAX);
        return;
    }
    ing_producer_lineage(p, l->request_id, buf, (size_t)n);
}
