/* What producer.c and producer_gen.c share: the producer's state, its delivery waiters and
 * the generations of its librdkafka handles. Not for use outside them. */
#ifndef ING_PRODUCER_IMPL_H
#define ING_PRODUCER_IMPL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "producer.h"

/* How long a retired generation may take to hand back its delivery reports. */
#define RETIRE_TIMEOUT_US (10 * 1000000LL)
/* Lineage records held while the lineage handle is fatal and not yet replaced; past it they
 * are dropped (counted). */
#define PARK_MAX 20000

enum { W_FREE = 0, W_WAITING, W_DONE, W_ABANDONED };

/* A worker waits on `state` itself (a futex word), not on a mutex and a condition: after a
 * condition wait glibc leaves the mutex marked contended, so every answer paid a futex wake on
 * the worker's unlock that woke nobody. The report moves WAITING to DONE, the worker at its
 * deadline moves WAITING to ABANDONED; whoever moves it first decides, and the fields below
 * are written before DONE and read after it. */
typedef struct waiter {
    _Atomic int state; /* W_* */
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
    int64_t produced_us; /* monotonic, for the ack latency histogram */
    struct waiter *next; /* freelist link, under the pool lock */
} waiter_t;

/* Opaque markers for records nobody waits for (their addresses only). */
extern char ing_lineage_tag, ing_fast_tag;

struct slot;

/* One librdkafka handle and the thread serving its callbacks. */
typedef struct gen {
    struct slot *slot; /* borrowed: the slot it serves */
    rd_kafka_t *rk;    /* owned */
    rd_kafka_topic_t *topic;
    pthread_t poll_thread;
    bool poll_started;
    unsigned number;   /* 1 for the first handle of the slot, +1 per replacement */
    atomic_bool stop;  /* ends the poll thread */
    atomic_bool fatal; /* librdkafka raised a fatal error: it will never deliver again */
    atomic_int users;  /* request threads inside a call on rk (see gen_get) */
} gen_t;

/* A replaceable handle: events (answers wait for it) or lineage (nobody waits). */
typedef struct slot {
    ing_producer_t *p; /* borrowed: the owner */
    const char *name;  /* "events" | "lineage" */
    bool lineage;
    pthread_mutex_t mu; /* guards cur */
    gen_t *cur;         /* owned; replaced by the supervisor thread only */
    hl_counter_t *restarts;
} slot_t;

/* A lineage record produced while the lineage handle was fatal, waiting for its successor. */
typedef struct parked {
    struct parked *next;
    size_t klen, len;
    char data[]; /* key then value */
} parked_t;

struct ing_producer {
    const ing_config_t *cfg;
    slot_t ev, lin;
    pthread_mutex_t park_mu; /* guards the parked list */
    parked_t *parked;        /* newest first; sent by the supervisor after a replacement */
    atomic_size_t nparked;   /* written under park_mu */
    waiter_t *waiters;       /* max_in_flight of them */
    waiter_t *free_list;     /* under pool_mu */
    size_t nfree;            /* waiters on free_list, under pool_mu */
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv; /* a waiter went back to the pool (a batch may wait for it) */
    pthread_t supervisor;
    bool supervisor_started;
    atomic_bool stop;
    atomic_bool up;          /* last health check reached the broker */
    pthread_mutex_t stop_mu; /* wakes the supervisor on shutdown or a fatal error */
    pthread_cond_t stop_cv;
    hl_counter_t *delivery_errors;
    hl_counter_t *lineage_drops;
    hl_histogram_metric_t *ack_latency;
};

/* ---- producer.c ---- */

/* Returns a waiter to the pool and wakes a batch waiting for one. Any thread. */
void ing_waiter_put(ing_producer_t *p, waiter_t *w);
/* The delivery report of w's record: hands the result to its worker and wakes it, or returns w
 * to the pool when the worker gave up waiting. */
void ing_waiter_report(ing_producer_t *p, waiter_t *w, rd_kafka_resp_err_t err, int32_t partition,
                       int64_t offset);

/* ---- producer_gen.c: the generations of a handle ---- */

/* The slot's current generation with its use count raised: the handle stays alive until
 * ing_gen_put, because the supervisor retires a generation only once its count is back at 0
 * and no longer current (so the count can only fall). Any thread. */
gen_t *ing_gen_get(slot_t *s);
void ing_gen_put(gen_t *g);
/* A new generation for slot s with its poll thread running; NULL with errbuf filled. */
gen_t *ing_gen_new(slot_t *s, unsigned number, char *errbuf, size_t errcap);
/* Stops the poll thread, fails what is left and destroys the handle. NULL-safe. Supervisor
 * or main thread, once no request thread can reach the generation. */
void ing_gen_free(gen_t *g);
/* Keeps a copy of a lineage record that met a fatal handle, for its successor (at most
 * PARK_MAX; past it the record is counted as dropped). Any thread. */
void ing_park_lineage(ing_producer_t *p, const void *key, size_t klen, const void *json,
                      size_t len);
/* Produces the parked lineage records on the current lineage handle. Supervisor or main
 * thread. */
void ing_unpark_lineage(ing_producer_t *p);
/* The supervisor thread (arg is the producer): replaces fatal handles, sends parked lineage
 * records and checks the broker once a second until p->stop. */
void *ing_supervisor_main(void *arg);

#endif
