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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "deadline.h"
#include "hl/httpd.h"
#include "hl/util.h"

#define WORKERS 4
#define ROUNDS 1500

typedef struct {
    int pipe_rd;        /* never written: a poll() on it ends by timeout or by a signal */
    unsigned seed;      /* the worker's own rand_r state */
    int interrupted;    /* waits the deadline ended, as it should */
    int64_t slowest_us; /* the longest of those waits */
    int stray;          /* waits after the disarm that a signal ended: the defect */
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
            /* Covered: the wait must end by the deadline's signal, well before 2 s (and before
             * the watchdog's idle wake, 1 s: the arm itself woke it). */
            int64_t t0 = hl_mono_us();
            if (wait_pipe(w->pipe_rd, 2000) == -2) w->interrupted++;
            if (hl_mono_us() - t0 > w->slowest_us) w->slowest_us = hl_mono_us() - t0;
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
    int64_t slowest = 0;
    for (int i = 0; i < WORKERS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        interrupted += w[i].interrupted;
        stray += w[i].stray;
        if (w[i].slowest_us > slowest) slowest = w[i].slowest_us;
    }
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(interrupted, WORKERS * (ROUNDS / 10));
    assert_int_equal(stray, 0);
    assert_true(slowest < 500 * 1000);
}

typedef struct {
    int pipe_rd;
    int64_t in_us;   /* the deadline, from when the thread arms it */
    int64_t lead_us; /* how long the thread waits before arming */
    int64_t took_us; /* from arming to the end of the wait */
    int rc;          /* wait_pipe's result */
} timed_t;

static void *timed_main(void *arg)
{
    timed_t *t = arg;
    struct timespec nap = {0, (long)t->lead_us * 1000};
    nanosleep(&nap, NULL);
    int64_t t0 = hl_mono_us();
    hl_http_deadline_arm(t0 + t->in_us, false);
    t->rc = wait_pipe(t->pipe_rd, 3000);
    t->took_us = hl_mono_us() - t0;
    hl_http_deadline_arm(0, false);
    return NULL;
}

/* While the watchdog sleeps towards one thread's deadline (400 ms), another arms one that
 * comes first (30 ms): it wakes the watchdog and is signalled on time, and the first one still
 * is at its own deadline. */
static void test_an_earlier_deadline_wakes_the_watchdog(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    timed_t late = {fds[0], 400 * 1000, 0, 0, 0}, early = {fds[0], 30 * 1000, 100 * 1000, 0, 0};
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, timed_main, &late), 0);
    assert_int_equal(pthread_create(&b, NULL, timed_main, &early), 0);
    assert_int_equal(pthread_join(a, NULL), 0);
    assert_int_equal(pthread_join(b, NULL), 0);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(early.rc, -2);
    assert_true(early.took_us >= 29 * 1000 && early.took_us < 300 * 1000);
    assert_int_equal(late.rc, -2);
    assert_true(late.took_us >= 399 * 1000 && late.took_us < 1000 * 1000);
}

static atomic_bool arming;

static void *arm_in_a_loop(void *arg)
{
    (void)arg;
    while (atomic_load(&arming)) {
        hl_http_deadline_arm(hl_mono_us() + 10 * 1000 * 1000, false); /* 10 s away */
        hl_http_deadline_arm(0, false);
    }
    return NULL;
}

static atomic_bool parked_go;

/* A worker with a slot and nothing armed, as most of a server's are: it makes the scans long. */
static void *park(void *arg)
{
    (void)arg;
    hl_http_deadline_arm(0, false);
    while (!atomic_load(&parked_go)) {
        struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    return NULL;
}

/* Deadlines later than the watchdog's next wake do not wake it, arming while it scans
 * included: with 256 slots to scan and workers arming and disarming as fast as they can (a
 * server under load), it keeps to about one scan a second (its idle wake). */
static void test_arming_under_load_leaves_the_watchdog_asleep(void **state)
{
    enum { PARKED = 256 };
    pthread_t parked[PARKED], t[WORKERS];
    atomic_store(&parked_go, false);
    for (int i = 0; i < PARKED; i++)
        assert_int_equal(pthread_create(&parked[i], NULL, park, NULL), 0);
    uint64_t before = hl_http_deadline_scans();
    atomic_store(&arming, true);
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, arm_in_a_loop, NULL), 0);
    struct timespec run = {2, 500 * 1000 * 1000}; /* two idle wakes of the watchdog at least */
    nanosleep(&run, NULL);
    atomic_store(&arming, false);
    for (int i = 0; i < WORKERS; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    uint64_t scans = hl_http_deadline_scans() - before;
    atomic_store(&parked_go, true);
    for (int i = 0; i < PARKED; i++) assert_int_equal(pthread_join(parked[i], NULL), 0);
    print_message("watchdog scans in 2.5 s of arming: %llu\n", (unsigned long long)scans);
    assert_true(scans >= 1 && scans <= 10);
}

static void *arm_and_exit(void *arg)
{
    (void)arg;
    hl_http_expire_headers(NULL); /* armed, repeating, as the thread exits */
    spin_us(rand() % 50);
    return NULL;
}

/* Threads that exit with a deadline armed take their slot with them: the watchdog, firing every
 * 20 ms at the armed ones, never reads a freed slot (only the sanitizer build catches that) and
 * signals no other thread of the process, such as this one, once they are gone. That a reused
 * thread id is never signalled rests on the unlink under the watchdog's lock: the kernel hands a
 * freed id out again only after all others, so no test here can make it happen. */
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
        cmocka_unit_test(test_an_earlier_deadline_wakes_the_watchdog),
        cmocka_unit_test(test_arming_under_load_leaves_the_watchdog_asleep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
