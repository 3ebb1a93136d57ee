/* Deadlines for a civetweb worker's reads: a signal aimed at the worker thread interrupts its
 * wait for a request's headers or body at the deadline, so a client pacing its bytes cannot
 * hold a worker past the request's timeout.
 *
 * A worker arms and disarms its deadline four times a request; a kernel timer per worker made
 * each of those a system call (timer_settime). Here a worker only stores its deadline in its
 * slot, and one watchdog thread per process sleeps until the earliest deadline of all slots and
 * signals the workers whose deadline has passed (tgkill). A worker wakes the watchdog only when
 * its deadline comes before the watchdog's next wake (a refused connection's immediate one). */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "hl/httpd.h"
#include "hl/log.h"
#include "hl/util.h"

/* After a repeating deadline the worker is signalled again at this interval until it disarms:
 * a signal that lands while the worker is not waiting in poll() interrupts nothing. */
#define DEADLINE_REPEAT_US (20 * 1000)
/* The watchdog's longest sleep, with no deadline sooner. */
#define WATCHDOG_IDLE_US (1000 * 1000)

/* A slot's `due`: 0 none; otherwise (deadline << 1) | repeat, deadline in hl_mono_us. */
#define DUE_NONE 0
#define DUE_FIRING INT64_MIN /* the watchdog is signalling this thread; the worker waits */

/* One per civetweb worker thread, made at its first deadline and freed when it exits. `due`
 * and `sent` are shared with the watchdog; the rest is the worker's alone. */
typedef struct deadline_slot {
    _Atomic int64_t due;        /* see DUE_*; stored by the worker, claimed by the watchdog */
    _Atomic uint64_t sent;      /* signals the watchdog sent this thread */
    uint64_t sent_seen;         /* `sent` when the worker last took its signals */
    pid_t tid;                  /* the worker's thread id */
    int64_t header_deadline;    /* hl_mono_us by which the awaited headers must be in; 0: none */
    int64_t request_us;         /* the server's request_timeout_ms, in µs (0 until known) */
    int64_t keep_alive_us;      /* its keep_alive_timeout_ms, in µs */
    struct deadline_slot *next; /* in the registry, under reg_lock */
} deadline_slot_t;

static pthread_once_t deadline_once = PTHREAD_ONCE_INIT;
static pthread_key_t deadline_key; /* the thread's deadline_slot_t, unlinked at thread exit */
static bool deadline_ready;        /* key, signal handler and watchdog in place */

/* Every live slot. The watchdog holds reg_lock while it signals, so a thread that exits
 * (unlinking its slot under the same lock) is never signalled after its id may be reused. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static deadline_slot_t *reg_head;
static pid_t reg_pid;

/* The watchdog's next wake (hl_mono_us), the earliest deadline armed since its last scan
 * began (it may have passed that slot already), the word it sleeps on, and its scans (for the
 * tests). */
static _Atomic int64_t watchdog_next = INT64_MAX;
static _Atomic int64_t armed_min = INT64_MAX;
static _Atomic uint32_t watchdog_word;
static _Atomic uint64_t watchdog_scans;

/* Does nothing: delivering the signal is what interrupts the worker's poll() with EINTR,
 * which civetweb's read treats as the end of the read. */
static void deadline_signal(int sig)
{
    (void)sig;
}

static void watchdog_wake(void)
{
    atomic_fetch_add(&watchdog_word, 1);
    (void)syscall(SYS_futex, &watchdog_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* One pass: signals every slot whose deadline has passed; returns the earliest deadline left. */
static int64_t watchdog_scan(int64_t now)
{
    int64_t next = now + WATCHDOG_IDLE_US;
    pthread_mutex_lock(&reg_lock);
    for (deadline_slot_t *s = reg_head; s != NULL; s = s->next) {
        int64_t due = atomic_load(&s->due);
        if (due <= DUE_NONE) continue;
        int64_t at = due >> 1;
        if (at > now) {
            if (at < next) next = at;
            continue;
        }
        if (!atomic_compare_exchange_strong(&s->due, &due, DUE_FIRING)) continue; /* re-armed */
        int64_t again = now + DEADLINE_REPEAT_US;
        /* A real-time signal can be refused (EAGAIN: the user's queued signals are at their
         * limit): the deadline is kept and tried again, a one-shot one too. */
        bool sent = syscall(SYS_tgkill, reg_pid, s->tid, HL_HTTP_DEADLINE_SIGNAL) == 0;
        if (sent) atomic_fetch_add(&s->sent, 1);
        bool keep = (due & 1) || !sent;
        atomic_store(&s->due, keep ? (again << 1) | (due & 1) : DUE_NONE);
        if (keep && again < next) next = again;
    }
    pthread_mutex_unlock(&reg_lock);
    return next;
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t word = atomic_load(&watchdog_word);
        /* A deadline armed from here on is in armed_min, whether or not the scan reads its
         * slot; one armed after the check below sees the published wake and wakes us if it
         * comes before it (slot_arm). All sequentially consistent. */
        atomic_store(&armed_min, INT64_MAX);
        int64_t now = hl_mono_us();
        int64_t next = watchdog_scan(now);
        atomic_fetch_add(&watchdog_scans, 1);
        atomic_store(&watchdog_next, next);
        int64_t armed = atomic_load(&armed_min);
        if (armed < next) {
            next = armed;
            atomic_store(&watchdog_next, next);
        }
        int64_t in_us = next - hl_mono_us();
        if (in_us <= 0) continue;
        struct timespec ts = {.tv_sec = (time_t)(in_us / 1000000),
                              .tv_nsec = (long)(in_us % 1000000) * 1000};
        if (syscall(SYS_futex, &watchdog_word, FUTEX_WAIT_PRIVATE, word, &ts, NULL, 0) != 0 &&
            errno != EAGAIN && errno != EINTR && errno != ETIMEDOUT) {
            struct timespec nap = {0, 1000 * 1000}; /* never spin on a refused wait */
            nanosleep(&nap, NULL);
        }
    }
    return NULL;
}

static void deadline_slot_free(void *p)
{
    deadline_slot_t *s = p;
    pthread_mutex_lock(&reg_lock);
    for (deadline_slot_t **at = &reg_head; *at != NULL; at = &(*at)->next) {
        if (*at == s) {
            *at = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    free(s);
}

static void deadline_setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = deadline_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the interrupted poll() must return */
    if (pthread_key_create(&deadline_key, deadline_slot_free) != 0) {
        hl_warn("http: read deadlines off: no thread key");
        return;
    }
    if (sigaction(HL_HTTP_DEADLINE_SIGNAL, &sa, NULL) != 0) {
        hl_warn("http: read deadlines off: sigaction: %s", strerror(errno));
        return;
    }
    reg_pid = getpid();
    /* The watchdog takes no signal of the process's: all blocked while it is made. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, watchdog_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        hl_warn("http: read deadlines off: no watchdog thread: %s", strerror(rc));
        return;
    }
    pthread_setname_np(tid, "hl-deadlines");
    deadline_ready = true;
}

/* The calling thread's slot, made on first use; NULL when deadlines are off (the read is then
 * bounded by civetweb's per-wait timeout only, and the deadline is checked between reads). */
static deadline_slot_t *thread_slot(void)
{
    pthread_once(&deadline_once, deadline_setup);
    if (!deadline_ready) return NULL;
    deadline_slot_t *s = pthread_getspecific(deadline_key);
    if (s != NULL) return s;
    s = hl_xcalloc(1, sizeof *s);
    s->tid = (pid_t)syscall(SYS_gettid);
    if (pthread_setspecific(deadline_key, s) != 0) {
        free(s);
        return NULL;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, HL_HTTP_DEADLINE_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    pthread_mutex_lock(&reg_lock);
    s->next = reg_head;
    reg_head = s;
    pthread_mutex_unlock(&reg_lock);
    return s;
}

/* Sets s to signal its thread at `at` (hl_mono_us), and then every DEADLINE_REPEAT_US when
 * repeat is set; at 0 disarms. A signal the watchdog sent for the deadline replaced is taken
 * here (delivered as a system call returns, its handler doing nothing), so it cannot interrupt
 * a wait this deadline does not cover. */
static void slot_arm(deadline_slot_t *s, int64_t at, bool repeat)
{
    int64_t due = at > 0 ? (at << 1) | (repeat ? 1 : 0) : DUE_NONE;
    int64_t old = atomic_load(&s->due);
    for (;;) {
        if (old == DUE_FIRING) { /* the watchdog is inside its tgkill: a moment */
            sched_yield();
            old = atomic_load(&s->due);
            continue;
        }
        if (atomic_compare_exchange_weak(&s->due, &old, due)) break;
    }
    uint64_t sent = atomic_load(&s->sent);
    if (sent != s->sent_seen) {
        s->sent_seen = sent;
        (void)syscall(SYS_getpid); /* the pending signal is handled as this returns */
    }
    if (due == DUE_NONE) return;
    /* The watchdog sleeps until watchdog_next: a deadline before that wakes it. One armed
     * while it scans is taken from armed_min after the scan (see watchdog_main), so arming
     * during a scan does not wake it again: under load the watchdog still sleeps until the
     * earliest deadline. */
    int64_t m = atomic_load(&armed_min);
    while (at < m && !atomic_compare_exchange_weak(&armed_min, &m, at)) {
    }
    if (at < atomic_load(&watchdog_next)) watchdog_wake();
}

/* ---- header deadlines: civetweb callbacks, all on the worker thread ---- */

static int64_t option_us(const struct mg_connection *c, const char *name)
{
    const char *v = mg_get_option(mg_get_context(c), name);
    char *end = NULL;
    long long ms = v ? strtoll(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && ms > 0 ? (int64_t)ms * 1000 : 0;
}

/* Arms the thread's deadline for headers due within the connection's timeout (none when the
 * option is 0). */
static void await_headers(const struct mg_connection *c, bool kept_alive)
{
    deadline_slot_t *s = thread_slot();
    if (s == NULL) return;
    if (s->request_us == 0) {
        s->request_us = option_us(c, "request_timeout_ms");
        s->keep_alive_us = option_us(c, "keep_alive_timeout_ms");
    }
    int64_t in_us = kept_alive ? s->keep_alive_us : s->request_us;
    s->header_deadline = in_us > 0 ? hl_mono_us() + in_us : 0;
    /* Once only: what follows a timeout is civetweb's error answer, which a signal repeated
     * every 20 ms would interrupt too. Should the one signal land outside the poll() (a
     * narrow window), civetweb's own check after its next read still ends the wait. */
    slot_arm(s, s->header_deadline, false);
}

/* The calling thread's slot if it has one already (never makes one). */
static deadline_slot_t *existing_slot(void)
{
    pthread_once(&deadline_once, deadline_setup);
    return deadline_ready ? pthread_getspecific(deadline_key) : NULL;
}

static void headers_done(void)
{
    deadline_slot_t *s = existing_slot();
    if (s == NULL) return;
    s->header_deadline = 0;
    slot_arm(s, 0, false);
}

/* A new connection: its first request's headers are due within request_timeout_ms. */
static int on_init_connection(const struct mg_connection *c, void **conn_data)
{
    await_headers(c, false);
    return 0;
}

/* The headers are in (civetweb goes on to the handler). */
static int on_begin_request(struct mg_connection *c)
{
    headers_done();
    return 0;
}

/* Answered: on a kept-alive connection the next headers are due within keep_alive_timeout_ms
 * (if the connection closes instead, on_connection_close disarms at once). */
static void on_end_request(const struct mg_connection *c, int status)
{
    await_headers(c, true);
}

static void on_connection_close(const struct mg_connection *c)
{
    headers_done();
}

void hl_http_header_deadlines(struct mg_callbacks *cb)
{
    cb->init_connection = on_init_connection;
    cb->begin_request = on_begin_request;
    cb->end_request = on_end_request;
    cb->connection_close = on_connection_close;
}

void hl_http_expire_headers(const struct mg_connection *c)
{
    (void)c;
    deadline_slot_t *s = thread_slot();
    if (s == NULL) return;
    s->header_deadline = hl_mono_us();
    /* Repeated: the worker has not entered its poll() yet, the first signal may come early. */
    slot_arm(s, s->header_deadline, true);
}

bool hl_http_headers_timed_out(const struct mg_connection *c)
{
    const deadline_slot_t *s = existing_slot();
    return s != NULL && s->header_deadline != 0 && hl_mono_us() >= s->header_deadline;
}

int hl_http_read_body(struct mg_connection *c, void *buf, size_t cap, int64_t deadline_us,
                      size_t *len)
{
    const struct mg_request_info *ri = mg_get_request_info(c);
    long long content_length = ri ? ri->content_length : -1;
    unsigned char *p = buf;
    size_t got = 0;
    int rc = HL_OK;
    *len = 0;
    int64_t now = hl_mono_us();
    if (now >= deadline_us) return HL_ETIMEDOUT;
    deadline_slot_t *s = thread_slot();
    if (s != NULL) slot_arm(s, deadline_us, true);
    for (;;) {
        if (content_length >= 0 && got == (size_t)content_length) break; /* all there */
        if (got == cap) {
            rc = HL_ETOOBIG;
            break;
        }
        size_t want = cap - got < INT_MAX ? cap - got : INT_MAX;
        int n = mg_read(c, p + got, want);
        if (n > 0) got += (size_t)n;
        bool late = hl_mono_us() >= deadline_us;
        if (n == 0) {
            /* The end of the body, or (short of Content-Length) civetweb's own timeout: no
             * data for request_timeout_ms. */
            if (content_length >= 0 && got < (size_t)content_length) rc = HL_ETIMEDOUT;
            break;
        }
        if (late || n < 0) {
            rc = late ? HL_ETIMEDOUT : HL_EIO;
            break;
        }
    }
    if (s != NULL) slot_arm(s, 0, false);
    if (rc != HL_OK) mg_disable_keep_alive(c);
    *len = got;
    return rc;
}

bool hl_http_has_body(const struct mg_connection *c)
{
    /* civetweb reports -1 both without a body and for a chunked one. */
    const struct mg_request_info *ri = mg_get_request_info(c);
    return ri != NULL && (ri->content_length > 0 || mg_get_header(c, "Transfer-Encoding") != NULL);
}

void hl_http_close_if_body(struct mg_connection *c)
{
    if (hl_http_has_body(c)) mg_disable_keep_alive(c);
}

uint64_t hl_http_deadline_scans(void)
{
    return atomic_load(&watchdog_scans);
}

void hl_http_deadline_arm(int64_t at_us, bool repeat)
{
    deadline_slot_t *s = thread_slot();
    if (s != NULL) slot_arm(s, at_us, repeat);
}
