/* Structured logging: one JSON object per line on stderr, level checked before formatting. */
#ifndef HL_LOG_H
#define HL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

typedef enum {
    HL_LOG_DEBUG = 0,
    HL_LOG_INFO,
    HL_LOG_WARN,
    HL_LOG_ERROR,
    HL_LOG_OFF
} hl_log_level_t;

/* The current threshold; read without a lock (a relaxed atomic). */
extern volatile int hl_log_threshold;

/* Sets the process-wide service name written as "svc" in every line (borrowed; must outlive
 * logging, a string literal is typical) and the threshold. Call once at start. */
void hl_log_init(const char *service, hl_log_level_t level);

/* Parses "debug", "info", "warn", "error", "off". Returns 0 or HL_EINVAL. */
int hl_log_level_parse(const char *s, hl_log_level_t *out) HL_MUST_CHECK;

/* Optional context fields for one line. Any NULL / negative field is omitted. All borrowed. */
typedef struct {
    const char *request_id; /* UUIDv7 text of the request */
    const char *topic;      /* Kafka topic */
    int32_t partition;      /* Kafka partition, -1 if none */
    int64_t offset;         /* Kafka offset, -1 if none */
} hl_log_ctx_t;

#define HL_LOG_CTX_NONE ((hl_log_ctx_t){NULL, NULL, -1, -1})

/* Writes {"ts":"…","level":"…","svc":"…","msg":"…",<ctx>,<kv>} as one line with one write(2),
 * so lines from several threads never interleave. `kv` is either NULL or a string of extra
 * JSON members already escaped by the caller via hl_log_kv*, e.g. "\"status\":401". Thread-safe.
 * Never pass a secret, a signature or a whole body. */
void hl_log_write(hl_log_level_t level, const hl_log_ctx_t *ctx, const char *kv, const char *fmt,
                  ...) HL_PRINTF(4, 5);

#define hl_log_enabled(level) ((int)(level) >= hl_log_threshold)
#define HL_LOG(level, ctx, kv, ...)                                                                \
    do {                                                                                           \
        if (hl_log_enabled(level)) hl_log_write((level), (ctx), (kv), __VA_ARGS__);                \
    } while (0)
#define hl_debug(...) HL_LOG(HL_LOG_DEBUG, NULL, NULL, __VA_ARGS__)
#define hl_info(...) HL_LOG(HL_LOG_INFO, NULL, NULL, __VA_ARGS__)
#define hl_warn(...) HL_LOG(HL_LOG_WARN, NULL, NULL, __VA_ARGS__)
#define hl_error(...) HL_LOG(HL_LOG_ERROR, NULL, NULL, __VA_ARGS__)

/* Appends `"key":"value"` (JSON-escaped, value truncated to 256 bytes) or `"key":num` to the
 * caller's buffer `buf` of `cap` bytes at *len, with a leading comma when *len > 0. Truncates
 * silently at cap (always NUL-terminated). */
void hl_log_kv_str(char *buf, size_t cap, size_t *len, const char *key, const char *value);
void hl_log_kv_int(char *buf, size_t cap, size_t *len, const char *key, long long value);

/* JSON-escapes `n` bytes of `s` into `out` (cap bytes, NUL-terminated). Invalid UTF-8 and
 * control bytes become \u00XX escapes. Returns bytes written (without NUL). */
size_t hl_json_escape(char *out, size_t cap, const char *s, size_t n);

/* Prints "fatal: <msg>" as a log line and aborts. Used on out-of-memory. */
void hl_die(const char *fmt, ...) HL_PRINTF(1, 2) __attribute__((noreturn));

#endif
