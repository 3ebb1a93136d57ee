/* Unit tests for the read deadlines' signalling (libs/httpd/src/deadline.c) without a server:
 * worker threads arm and disarm their deadlines in a tight loop through the same calls civetweb
 * makes, racing the watchdog that signals them, and check that a deadline interrupts the wait it
 * covers and never one after it is disarmed. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "deadline.h"
#include "hl/httpd.h"
#include "hl/util.h"

#define WORKERS 4
#define ROUNDS 1500

typedef struct {
    int pipe_rd;     /* never written: a poll() on it ends by timeout or by a signal */
    unsigned seed;   /* the worker's own rand_r state */
    int interrupted; /* waits the deadline ended, as it should */
    int stray;       /* waits after the disarm that a signal ended: the defect */
} worker_t;

static struct mg_callbacks deadlines;

/* Waits on the pipe up to ms; returns poll()'s result, -2 for EINTR. */
static int wait_pipe(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc = poll(&p, 1, ms);
    return rc < 0 && errno == EINTR ? -2 : rc;
}

static void spin_us(int64_t us)
{
    int64_t until = hl_mono_us() + us;
    while (hl_mono_us() < until) {
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        /* A refused connection's deadline: now, repeated until disarmed. */
        hl_http_expire_headers(NULL);
        if (i % 10 == 0) {
            /* Covered: the wait must end by the deadline's signal, well before 2 s. */
            if (wait_pipe(w->pipe_rd, 2000) == -2) w->interrupted++;
        } else {
            /* Race the watchdog: disarm a few µs after arming, around when it signals. */
            spin_us(rand_r(&w->seed) % 80);
        }
        deadlines.begin_request(NULL); /* the headers are in: disarmed */
        /* Not covered: nothing may interrupt this wait (it outlasts the 20 ms repeat). */
        int rc = wait_pipe(w->pipe_rd, i % 50 == 0 ? 30 : 1);
        if (rc == -2) w->stray++;
    }
    deadlines.connection_close(NULL);
    return NULL;
}

static void test_deadlines_interrupt_only_armed_waits(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    hl_http_header_deadlines(&deadlines);
    pthread_t t[WORKERS];
    worker_t w[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (worker_t){.pipe_rd = fds[0], .seed = 7u + (unsigned)i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    int interrupted = 0, stray = 0;
    for (int i = 0; i < WORKERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        interrupted += w[i].interrupted;
        stray += w[i].stray;
    }
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(interrupted, WORKERS * (ROUNDS / 10));
    assert_int_equal(stray, 0);
}

static void *arm_and_exit(void *arg)
{
    (void)arg;
    hl_http_expire_headers(NULL); /* armed, repeating, as the thread exits */
    spin_us(rand() % 50);
    return NULL;
}

/* Threads that exit with a deadline armed take their slot with them: the watchdog, firing every
 * 20 ms at the armed ones, never reads a freed slot (the sanitizer build checks this) or
 * signals a thread id that may since belong to another thread, such as this one. */
static void test_exiting_threads_leave_no_deadline(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    for (int round = 0; round < 20; round++) {
        pthread_t t[16];
        for (int i = 0; i < 16; i++)
            assert_int_equal(pthread_create(&t[i], NULL, arm_and_exit, NULL), 0);
        for (int i = 0; i < 16; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    /* This thread has no deadline; over several of the watchdog's repeats nothing ends its
     * wait early. */
    int64_t t0 = hl_mono_us();
    assert_int_equal(wait_pipe(fds[0], 100), 0);
    assert_true(hl_mono_us() - t0 >= 90 * 1000);
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadlines_interrupt_only_armed_waits),
        cmocka_unit_test(test_exiting_threads_leave_no_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
