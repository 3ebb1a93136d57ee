/* Deadlines for a civetweb worker's reads: a timer per worker thread that interrupts the wait
 * for a request's headers or body, so a client pacing its bytes cannot hold a worker past the
 * request's timeout. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "hl/httpd.h"
#include "hl/log.h"
#include "hl/util.h"

/* After the body deadline the timer fires again at this interval until the read returns: a
 * signal that lands while the worker is not waiting in poll() interrupts nothing. */
#define DEADLINE_REPEAT_NS (20 * 1000 * 1000)

/* One per civetweb worker thread: a timer that signals that thread alone, armed while the
 * thread waits for a request's headers or reads its body. */
typedef struct {
    timer_t timer;
    bool ok;                 /* timer_create succeeded */
    int64_t header_deadline; /* hl_mono_us by which the awaited headers must be in; 0: none */
    int64_t request_us;      /* the server's request_timeout_ms, in µs (0 until known) */
    int64_t keep_alive_us;   /* its keep_alive_timeout_ms, in µs */
} deadline_timer_t;

static pthread_once_t deadline_once = PTHREAD_ONCE_INIT;
static pthread_key_t deadline_key; /* the thread's deadline_timer_t, deleted at thread exit */
static bool deadline_ready;        /* key created and signal handler installed */

/* Does nothing: delivering the signal is what interrupts the worker's poll() with EINTR,
 * which civetweb's read treats as the end of the read. */
static void deadline_signal(int sig)
{
    (void)sig;
}

static void deadline_timer_free(void *p)
{
    deadline_timer_t *t = p;
    if (t->ok) timer_delete(t->timer);
    free(t);
}

static void deadline_setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = deadline_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the interrupted poll() must return */
    if (pthread_key_create(&deadline_key, deadline_timer_free) != 0) {
        hl_warn("http: read deadlines off: no thread key");
        return;
    }
    if (sigaction(HL_HTTP_DEADLINE_SIGNAL, &sa, NULL) != 0) {
        hl_warn("http: read deadlines off: sigaction: %s", strerror(errno));
        return;
    }
    deadline_ready = true;
}

/* The calling thread's timer, made on first use; NULL when none can be had (the read is then
 * bounded by civetweb's per-wait timeout only, and the deadline is checked between reads). */
static deadline_timer_t *thread_timer(void)
{
    pthread_once(&deadline_once, deadline_setup);
    if (!deadline_ready) return NULL;
    deadline_timer_t *t = pthread_getspecific(deadline_key);
    if (t != NULL) return t->ok ? t : NULL;
    t = hl_xcalloc(1, sizeof *t);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = HL_HTTP_DEADLINE_SIGNAL;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    t->ok = timer_create(CLOCK_MONOTONIC, &sev, &t->timer) == 0;
    if (t->ok) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, HL_HTTP_DEADLINE_SIGNAL);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    } else {
        hl_warn("http: no read deadline timer on this thread: %s", strerror(errno));
    }
    pthread_setspecific(deadline_key, t);
    return t->ok ? t : NULL;
}

/* Arms t to fire in_us from now, and then every DEADLINE_REPEAT_NS when repeat is set;
 * in_us <= 0 disarms. */
static void timer_arm(deadline_timer_t *t, int64_t in_us, bool repeat)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (in_us > 0) {
        its.it_value.tv_sec = (time_t)(in_us / 1000000);
        its.it_value.tv_nsec = (long)(in_us % 1000000) * 1000;
        if (repeat) its.it_interval.tv_nsec = DEADLINE_REPEAT_NS;
    }
    timer_settime(t->timer, 0, &its, NULL);
}

/* ---- header deadlines: civetweb callbacks, all on the worker thread ---- */

static int64_t option_us(const struct mg_connection *c, const char *name)
{
    const char *v = mg_get_option(mg_get_context(c), name);
    char *end = NULL;
    long long ms = v ? strtoll(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && ms > 0 ? (int64_t)ms * 1000 : 0;
}

/* Arms the thread's timer for headers due within in_us (0: no deadline, timer off). */
static void await_headers(const struct mg_connection *c, bool kept_alive)
{
    deadline_timer_t *t = thread_timer();
    if (t == NULL) return;
    if (t->request_us == 0) {
        t->request_us = option_us(c, "request_timeout_ms");
        t->keep_alive_us = option_us(c, "keep_alive_timeout_ms");
    }
    int64_t in_us = kept_alive ? t->keep_alive_us : t->request_us;
    t->header_deadline = in_us > 0 ? hl_mono_us() + in_us : 0;
    /* Once only: what follows a timeout is civetweb's error answer, which a signal repeated
     * every 20 ms would interrupt too. Should the one signal land outside the poll() (a
     * narrow window), civetweb's own check after its next read still ends the wait. */
    timer_arm(t, in_us, false);
}

/* The calling thread's timer if it has one already (never makes one). */
static deadline_timer_t *existing_timer(void)
{
    pthread_once(&deadline_once, deadline_setup);
    deadline_timer_t *t = deadline_ready ? pthread_getspecific(deadline_key) : NULL;
    return t != NULL && t->ok ? t : NULL;
}

static void headers_done(void)
{
    deadline_timer_t *t = existing_timer();
    if (t == NULL) return;
    t->header_deadline = 0;
    timer_arm(t, 0, false);
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
    deadline_timer_t *t = thread_timer();
    if (t == NULL) return;
    t->header_deadline = hl_mono_us();
    /* Repeated: the worker has not entered its poll() yet, the first signal may come early. */
    timer_arm(t, 1, true);
}

bool hl_http_headers_timed_out(const struct mg_connection *c)
{
    const deadline_timer_t *t = existing_timer();
    return t != NULL && t->header_deadline != 0 && hl_mono_us() >= t->header_deadline;
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
    deadline_timer_t *t = thread_timer();
    if (t != NULL) timer_arm(t, deadline_us - now, true);
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
    if (t != NULL) timer_arm(t, 0, false);
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
