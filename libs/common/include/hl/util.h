/* Small helpers shared by every service: time, UUIDv7 request ids, checked allocation. */
#ifndef HL_UTIL_H
#define HL_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t hl_now_us(void);
/* Monotonic microseconds (CLOCK_MONOTONIC), for measuring durations. */
int64_t hl_mono_us(void);

#define HL_UUID_STR_LEN 36
/* Writes a new UUIDv7 (RFC 9562: 48-bit ms timestamp, random rest, monotonic within a
 * process) as 36 lowercase characters plus NUL into out[37]. Thread-safe. */
void hl_uuid7(char out[HL_UUID_STR_LEN + 1]);
/* Fills out with n random bytes from the kernel's generator (getrandom), taken from the same
 * per-process buffer as hl_uuid7's for n <= 64, so most calls make no system call. A forked
 * child never replays its parent's bytes. Thread-safe. */
void hl_random_bytes(void *out, size_t n);
/* How many bytes of that buffer are not handed out yet (what a forked child must not see). */
size_t hl_random_buffered(void);
/* Returns 1 when s (NUL-terminated) is a canonical lowercase or uppercase UUID text. */
int hl_uuid_valid(const char *s);

/* Length of the valid UTF-8 sequence starting at s (n > 0 bytes available): 2 to 4, or 0
 * when the bytes there are ASCII or not valid UTF-8 (overlong forms, surrogates and code
 * points past U+10FFFF included). */
size_t hl_utf8_seq_len(const unsigned char *s, size_t n);

/* Allocation that aborts with a message on out-of-memory (services never thread OOM). */
void *hl_xmalloc(size_t n);
void *hl_xcalloc(size_t n, size_t size);
void *hl_xrealloc(void *p, size_t n);
char *hl_xstrdup(const char *s);
char *hl_xstrndup(const char *s, size_t n);

/* Makes malloc keep what is freed for reuse, up to trim_bytes at the top of each heap, and
 * serve blocks below mmap_bytes from the heap: a service that allocates and frees large
 * buffers over and over (fetched batches, query results) otherwise maps, faults in and gives
 * back the same pages each time. Call once at start, before any thread. */
void hl_malloc_recycle(size_t mmap_bytes, size_t trim_bytes);

/* A growable byte buffer that keeps its capacity when reused (len = 0); free(p) releases it. */
typedef struct {
    char *p;
    size_t len, cap;
} hl_buf_t;

/* Makes room for `more` bytes after len (aborts on out-of-memory, like hl_xrealloc). */
void hl_buf_reserve(hl_buf_t *b, size_t more);
/* Appends n bytes. */
void hl_buf_put(hl_buf_t *b, const void *p, size_t n);

/* Bounded copy: copies at most cap-1 bytes and NUL-terminates. Returns HL_ETOOBIG when src
 * did not fit (dst then holds the truncated prefix). */
int hl_strlcpy(char *dst, const char *src, size_t cap);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void hl_hex(char *out, const unsigned char *in, size_t n);

/* Parses a decimal integer in [min, max] that spans all of s. Returns 0, HL_EPARSE or HL_ERANGE. */
int hl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) HL_MUST_CHECK;

/* Reads a whole file of at most `cap` bytes into a new NUL-terminated buffer (owned by the
 * caller, free()). Returns 0, HL_EIO (errno kept) or HL_ETOOBIG. */
int hl_read_file(const char *path, size_t cap, char **out, size_t *len) HL_MUST_CHECK;

#endif
