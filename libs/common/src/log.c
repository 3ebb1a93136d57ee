/* Structured logging: each call builds one JSON object on the stack and emits it with one
 * write(2), so concurrent lines never interleave and logging never allocates. */
#include "hl/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hl/util.h"

#define LOG_MSG_CAP 2048     /* raw message bytes kept; the rest is cut */
#define LOG_FIELD_CAP 256    /* raw bytes kept of request id, topic and kv string values */
#define LOG_KV_CAP 2048      /* caller's pre-escaped kv members; longer ones are dropped */
#define LOG_MSG_ESC_CAP 8192 /* escaped message bytes kept (escaping can grow 6x) */
#define LOG_LINE_CAP 16384   /* escaped message, context fields and kv all fit */

volatile int hl_log_threshold = HL_LOG_INFO;
static const char *log_service = "hookline";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hl_log_init(const char *service, hl_log_level_t level)
{
    if (service != NULL) log_service = service;
    hl_log_threshold = (int)level;
}

int hl_log_level_parse(const char *s, hl_log_level_t *out)
{
    static const struct {
        const char *name;
        hl_log_level_t level;
    } names[] = {{"debug", HL_LOG_DEBUG},  {"info", HL_LOG_INFO},   {"warn", HL_LOG_WARN},
                 {"warning", HL_LOG_WARN}, {"error", HL_LOG_ERROR}, {"off", HL_LOG_OFF}};
    if (s == NULL || out == NULL) return HL_EINVAL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return HL_EINVAL;
}

size_t hl_json_escape(char *out, size_t cap, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    if (cap == 0) return 0;
    for (size_t i = 0; i < n;) {
        char esc[7];
        size_t elen = 0;
        const unsigned char *src = NULL;
        unsigned char c = u[i];
        size_t step = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, elen = 2;
        } else if (c == '\n') {
            esc[0] = '\\', esc[1] = 'n', elen = 2;
        } else if (c == '\r') {
            esc[0] = '\\', esc[1] = 'r', elen = 2;
        } else if (c == '\t') {
            esc[0] = '\\', esc[1] = 't', elen = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            src = u + i, elen = 1;
        } else if (c >= 0x80 && (step = hl_utf8_seq_len(u + i, n - i)) > 0) {
            src = u + i, elen = step;
        } else {
            /* Control bytes, DEL and every byte of invalid UTF-8 become \u00XX. */
            memcpy(esc, "\\u00", 4);
            esc[4] = hexd[c >> 4], esc[5] = hexd[c & 15], elen = 6;
            step = 1;
        }
        if (o + elen + 1 > cap) break; /* never split an escape or a multi-byte character */
        memcpy(out + o, src != NULL ? (const char *)src : esc, elen);
        o += elen;
        i += step;
    }
    out[o] = '\0';
    return o;
}

/* Appends a formatted fragment to buf at *len; stops quietly at cap (keeps NUL-termination). */
HL_PRINTF(4, 5)
static void buf_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

/* Appends "key":"escaped value" (value cut to max_raw bytes) to buf; all or nothing, so a full
 * buffer never leaves half a member behind. */
static void append_str_member(char *buf, size_t cap, size_t *len, bool comma, const char *key,
                              const char *value, size_t max_raw)
{
    char tmp[LOG_FIELD_CAP * 6 + 256];
    size_t t = 0;
    size_t vlen = strnlen(value, max_raw);
    if (comma) tmp[t++] = ',';
    tmp[t++] = '"';
    t += hl_json_escape(tmp + t, 200, key, strnlen(key, 200));
    tmp[t++] = '"', tmp[t++] = ':', tmp[t++] = '"';
    t += hl_json_escape(tmp + t, sizeof(tmp) - t - 2, value, vlen);
    tmp[t++] = '"';
    if (*len + t + 1 > cap) return;
    memcpy(buf + *len, tmp, t);
    *len += t;
    buf[*len] = '\0';
}

void hl_log_kv_str(char *buf, size_t cap, size_t *len, const char *key, const char *value)
{
    if (buf == NULL || len == NULL || key == NULL || cap == 0 || *len >= cap) return;
    append_str_member(buf, cap, len, *len > 0, key, value != NULL ? value : "", LOG_FIELD_CAP);
}

void hl_log_kv_int(char *buf, size_t cap, size_t *len, const char *key, long long value)
{
    char tmp[300];
    size_t t = 0;
    if (buf == NULL || len == NULL || key == NULL || cap == 0 || *len >= cap) return;
    if (*len > 0) tmp[t++] = ',';
    tmp[t++] = '"';
    t += hl_json_escape(tmp + t, 200, key, strnlen(key, 200));
    t += (size_t)snprintf(tmp + t, sizeof(tmp) - t, "\":%lld", value);
    if (*len + t + 1 > cap) return;
    memcpy(buf + *len, tmp, t);
    *len += t;
    buf[*len] = '\0';
}

/* ISO-8601 UTC with milliseconds, e.g. 2026-01-02T03:04:05.678Z (24 chars + NUL). */
static void format_ts(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return; /* nowhere left to report a failing log sink */
        }
        p += w;
        n -= (size_t)w;
    }
}

HL_PRINTF(4, 0)
static void log_vwrite(const char *level, const hl_log_ctx_t *ctx, const char *kv, const char *fmt,
                       va_list ap)
{
    char msg[LOG_MSG_CAP + 1];
    char line[LOG_LINE_CAP];
    char ts[32];
    size_t len = 0;
    int saved_errno = errno; /* logging must not disturb the caller's errno */

    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t mlen = m < 0 ? 0 : ((size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1);
    format_ts(ts);
    buf_appendf(line, sizeof(line), &len, "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"", ts, level);
    len += hl_json_escape(line + len, 256, log_service, strnlen(log_service, 128));
    buf_appendf(line, sizeof(line), &len, "\",\"msg\":\"");
    len += hl_json_escape(line + len, LOG_MSG_ESC_CAP, msg, mlen);
    buf_appendf(line, sizeof(line), &len, "\"");
    if (m >= (int)sizeof(msg)) buf_appendf(line, sizeof(line), &len, ",\"msg_truncated\":true");
    if (ctx != NULL) {
        if (ctx->request_id != NULL)
            append_str_member(line, sizeof(line), &len, true, "request_id", ctx->request_id,
                              LOG_FIELD_CAP);
        if (ctx->topic != NULL)
            append_str_member(line, sizeof(line), &len, true, "topic", ctx->topic, LOG_FIELD_CAP);
        if (ctx->partition >= 0)
            buf_appendf(line, sizeof(line), &len, ",\"partition\":%d", (int)ctx->partition);
        if (ctx->offset >= 0)
            buf_appendf(line, sizeof(line), &len, ",\"offset\":%lld", (long long)ctx->offset);
    }
    if (kv != NULL && kv[0] != '\0') {
        size_t kvlen = strnlen(kv, LOG_KV_CAP + 1);
        /* kv is pre-escaped JSON: cutting it would break the line, so drop it whole. */
        if (kvlen <= LOG_KV_CAP && len + kvlen + 8 < sizeof(line)) {
            line[len++] = ',';
            memcpy(line + len, kv, kvlen);
            len += kvlen;
            line[len] = '\0';
        } else {
            buf_appendf(line, sizeof(line), &len, ",\"kv_dropped\":true");
        }
    }
    line[len++] = '}';
    line[len++] = '\n';
    write_all(STDERR_FILENO, line, len);
    errno = saved_errno;
}

HL_PRINTF(2, 3)
static void log_line(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void hl_log_write(hl_log_level_t level, const hl_log_ctx_t *ctx, const char *kv, const char *fmt,
                  ...)
{
    if (!hl_log_enabled(level) || level >= HL_LOG_OFF || (int)level < 0) return;
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level_names[level], ctx, kv, fmt, ap);
    va_end(ap);
}

void hl_die(const char *fmt, ...)
{
    char msg[LOG_MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Fatal lines bypass the threshold: the reason for an abort must always be visible. */
    log_line("error", "fatal: %s", msg);
    abort();
}
