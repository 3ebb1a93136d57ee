/* Time, UUIDv7 request ids, checked allocation and strict parsing shared by every binary. */
#include "hl/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hl/log.h"

int64_t hl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t hl_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* UUIDv7 state (RFC 9562 section 6.2, method 1): a 42-bit counter spans rand_a (12 bits) and
 * the top 30 bits of rand_b. It restarts from a random value with its top bit clear at each new
 * millisecond, so it has room to count up; the low 32 bits of rand_b are fresh random. Ids are
 * strictly increasing in (ms, counter) under the lock, hence monotonic across threads. */
#define UUID_CTR_BITS 42
#define UUID_POOL 512

static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t uuid_last_ms;
static uint64_t uuid_ctr;
static unsigned char uuid_pool[UUID_POOL]; /* buffered getrandom() bytes, under uuid_lock */
static size_t uuid_pool_left;
static pthread_once_t uuid_once = PTHREAD_ONCE_INIT;

/* A forked child must not replay its parent's buffered random bytes or counter, and must not
 * inherit a lock another parent thread held at the fork. */
static void uuid_atfork_child(void)
{
    pthread_mutex_init(&uuid_lock, NULL);
    uuid_pool_left = 0;
    memset(uuid_pool, 0, sizeof(uuid_pool));
    uuid_ctr = 0;
    if (uuid_last_ms > 0) uuid_last_ms--; /* the next id re-seeds its counter at random */
}

static void uuid_setup(void)
{
    pthread_atfork(NULL, NULL, uuid_atfork_child);
}

static void fill_random(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            hl_die("getrandom failed: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
}

/* Takes n random bytes from the pool; caller holds uuid_lock. */
static void take_random(unsigned char *out, size_t n)
{
    if (uuid_pool_left < n) {
        fill_random(uuid_pool, sizeof(uuid_pool));
        uuid_pool_left = sizeof(uuid_pool);
    }
    memcpy(out, uuid_pool + sizeof(uuid_pool) - uuid_pool_left, n);
    memset(uuid_pool + sizeof(uuid_pool) - uuid_pool_left, 0, n);
    uuid_pool_left -= n;
}

static uint64_t bytes_to_u64(const unsigned char *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = (v << 8) | b[i];
    return v;
}

void hl_uuid7(char out[HL_UUID_STR_LEN + 1])
{
    unsigned char rnd[10];
    unsigned char u[16];
    uint64_t ms, ctr, low;

    pthread_once(&uuid_once, uuid_setup);
    pthread_mutex_lock(&uuid_lock);
    take_random(rnd, sizeof(rnd));
    ms = (uint64_t)hl_now_us() / 1000;
    if (ms > uuid_last_ms) {
        uuid_last_ms = ms;
        uuid_ctr = bytes_to_u64(rnd, 6) & ((UINT64_C(1) << (UUID_CTR_BITS - 1)) - 1);
    } else if (++uuid_ctr >> UUID_CTR_BITS) {
        /* Counter exhausted (or clock stepped back): borrow the next millisecond. */
        uuid_last_ms++;
        uuid_ctr = bytes_to_u64(rnd, 6) & ((UINT64_C(1) << (UUID_CTR_BITS - 1)) - 1);
    }
    ms = uuid_last_ms;
    ctr = uuid_ctr;
    pthread_mutex_unlock(&uuid_lock);
    low = bytes_to_u64(rnd + 6, 4);

    for (int i = 0; i < 6; i++) u[i] = (unsigned char)(ms >> (40 - 8 * i));
    u[6] = (unsigned char)(0x70 | ((ctr >> 38) & 0x0f)); /* version 7 + rand_a high nibble */
    u[7] = (unsigned char)(ctr >> 30);                   /* rand_a low byte */
    u[8] = (unsigned char)(0x80 | ((ctr >> 24) & 0x3f)); /* variant 10 + 6 counter bits */
    u[9] = (unsigned char)(ctr >> 16);
    u[10] = (unsigned char)(ctr >> 8);
    u[11] = (unsigned char)ctr;
    for (int i = 0; i < 4; i++) u[12 + i] = (unsigned char)(low >> (24 - 8 * i));

    static const char hexd[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hexd[u[i] >> 4];
        out[o++] = hexd[u[i] & 15];
    }
    out[o] = '\0';
}

void hl_random_bytes(void *out, size_t n)
{
    if (n > 64) {
        fill_random(out, n);
        return;
    }
    pthread_once(&uuid_once, uuid_setup);
    pthread_mutex_lock(&uuid_lock);
    take_random(out, n);
    pthread_mutex_unlock(&uuid_lock);
}

size_t hl_random_buffered(void)
{
    pthread_once(&uuid_once, uuid_setup);
    pthread_mutex_lock(&uuid_lock);
    size_t n = uuid_pool_left;
    pthread_mutex_unlock(&uuid_lock);
    return n;
}

int hl_uuid_valid(const char *s)
{
    int lower = 0, upper = 0;
    if (s == NULL) return 0;
    for (size_t i = 0; i < HL_UUID_STR_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return 0;
        } else if (c >= 'a' && c <= 'f') {
            lower = 1;
        } else if (c >= 'A' && c <= 'F') {
            upper = 1;
        } else if (c < '0' || c > '9') {
            return 0; /* also catches a NUL before 36 characters */
        }
    }
    return s[HL_UUID_STR_LEN] == '\0' && !(lower && upper);
}

void *hl_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) hl_die("out of memory allocating %zu bytes", n);
    return p;
}

void hl_malloc_recycle(size_t mmap_bytes, size_t trim_bytes)
{
    mallopt(M_MMAP_THRESHOLD, mmap_bytes > INT_MAX ? INT_MAX : (int)mmap_bytes);
    mallopt(M_TRIM_THRESHOLD, trim_bytes > INT_MAX ? INT_MAX : (int)trim_bytes);
}

void *hl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) hl_die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *hl_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) hl_die("out of memory reallocating %zu bytes", n);
    return q;
}

void hl_buf_reserve(hl_buf_t *b, size_t more)
{
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    b->p = hl_xrealloc(b->p, cap);
    b->cap = cap;
}

void hl_buf_put(hl_buf_t *b, const void *p, size_t n)
{
    hl_buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

char *hl_xstrdup(const char *s)
{
    return hl_xstrndup(s, strlen(s));
}

char *hl_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = hl_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

int hl_strlcpy(char *dst, const char *src, size_t cap)
{
    if (dst == NULL || src == NULL) return HL_EINVAL;
    if (cap == 0) return HL_ETOOBIG; /* not even room for the NUL */
    size_t len = strnlen(src, cap);
    if (len == cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return HL_ETOOBIG;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

void hl_hex(char *out, const unsigned char *in, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[in[i] >> 4];
        out[2 * i + 1] = hexd[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int hl_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    /* Accumulate as a negative number so INT64_MIN parses without overflow. */
    int64_t acc = 0;
    int neg = 0;
    if (s == NULL || out == NULL) return HL_EPARSE;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    if (*s == '\0') return HL_EPARSE;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') return HL_EPARSE;
        int d = *s - '0';
        if (acc < (INT64_MIN + d) / 10) {
            /* Overflow: keep validating the syntax so "9999x" is still a parse error. */
            for (s++; *s != '\0'; s++)
                if (*s < '0' || *s > '9') return HL_EPARSE;
            return HL_ERANGE;
        }
        acc = acc * 10 - d;
    }
    if (!neg) {
        if (acc == INT64_MIN) return HL_ERANGE;
        acc = -acc;
    }
    if (acc < min || acc > max) return HL_ERANGE;
    *out = acc;
    return 0;
}

int hl_read_file(const char *path, size_t cap, char **out, size_t *len)
{
    struct stat st;
    char *buf = NULL;
    size_t size = 0, used = 0;
    int rc = 0, fd;

    if (path == NULL || out == NULL) return HL_EINVAL;
    if (cap > SIZE_MAX / 4) cap = SIZE_MAX / 4; /* keeps cap + 1 and doubling from wrapping */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return HL_EIO;
    /* st_size is only a hint (procfs reports 0); the cap is what bounds the buffer. */
    size = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    if (size > cap + 1) size = cap + 1;
    buf = hl_xmalloc(size + 1);
    for (;;) {
        if (used == size) {
            if (size == cap + 1) {
                rc = HL_ETOOBIG;
                goto out;
            }
            size = size > (cap + 1) / 2 ? cap + 1 : size * 2;
            buf = hl_xrealloc(buf, size + 1);
        }
        ssize_t r = read(fd, buf + used, size - used);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = HL_EIO;
            goto out;
        }
        if (r == 0) break;
        used += (size_t)r;
        if (used > cap) {
            rc = HL_ETOOBIG;
            goto out;
        }
    }
    buf[used] = '\0';
    *out = buf;
    if (len != NULL) *len = used;
    buf = NULL;
out : {
    int saved = errno; /* the contract keeps read()'s errno on HL_EIO */
    free(buf);
    close(fd);
    errno = saved;
}
    return rc;
}

size_t hl_utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned int cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) return 0;
    if (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) return 0;
    return len;
}
