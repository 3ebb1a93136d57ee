/* A bounded pool of Postgres connections shared by threads: a connection is lent to one
 * thread at a time, kept for the next while healthy, and cancelled on the server at shutdown. */
#include "hl/pg.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "hl/log.h"
#include "hl/util.h"

#define POOL_WAIT_S 5 /* longest wait for a connection when all are lent */

struct hl_pg_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const hl_pg_config_t *pg; /* borrowed */
    PGconn **idle;
    size_t nidle, size, out;
    /* The connections lent out, each with its cancel request made by the borrowing thread:
     * hl_pg_pool_close cancels what they still run on the server. */
    PGconn **lent;
    PGcancel **cancels;
    bool closed;
};

hl_pg_pool_t *hl_pg_pool_new(const hl_pg_config_t *pg, size_t size)
{
    hl_pg_pool_t *p = hl_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->pg = pg;
    p->size = size;
    p->idle = hl_xcalloc(size, sizeof *p->idle);
    p->lent = hl_xcalloc(size, sizeof *p->lent);
    p->cancels = hl_xcalloc(size, sizeof *p->cancels);
    return p;
}

/* Records c as lent (with a cancel request for it) unless the pool is closed: then c is
 * closed and NULL returned. */
static PGconn *lend(hl_pg_pool_t *p, PGconn *c)
{
    PGcancel *cancel = PQgetCancel(c);
    pthread_mutex_lock(&p->mu);
    bool closed = p->closed;
    for (size_t i = 0; !closed && i < p->size; i++)
        if (!p->lent[i]) {
            p->lent[i] = c;
            p->cancels[i] = cancel;
            cancel = NULL;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    PQfreeCancel(cancel); /* still here only when the pool is closed */
    if (!closed) return c;
    PQfinish(c);
    hl_pg_pool_put(p, NULL, true);
    return NULL;
}

void hl_pg_pool_close(hl_pg_pool_t *p)
{
    char err[256];
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    for (size_t i = 0; i < p->size; i++)
        if (p->cancels[i] && !PQcancel(p->cancels[i], err, sizeof err))
            hl_warn("shutdown: cancelling a running query: %s", err);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void hl_pg_pool_free(hl_pg_pool_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nidle; i++) PQfinish(p->idle[i]);
    for (size_t i = 0; i < p->size; i++) PQfreeCancel(p->cancels[i]);
    free(p->idle);
    free(p->lent);
    free(p->cancels);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Takes an idle connection or a free slot, waiting until `until` for one. Returns 0 with
 * *c an idle connection or NULL (a slot to connect in), or -1 when closed or timed out. */
static int take_slot(hl_pg_pool_t *p, const struct timespec *until, PGconn **c)
{
    int rc = 0;
    *c = NULL;
    pthread_mutex_lock(&p->mu);
    while (!p->closed && p->nidle == 0 && p->out >= p->size)
        if (pthread_cond_timedwait(&p->cv, &p->mu, until) != 0) break;
    if (p->closed || (p->nidle == 0 && p->out >= p->size))
        rc = -1;
    else if (p->nidle > 0)
        *c = p->idle[--p->nidle];
    if (rc == 0) p->out++;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

PGconn *hl_pg_pool_get(hl_pg_pool_t *p)
{
    struct timespec until;
    PGconn *c = NULL;
    char err[256];
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += POOL_WAIT_S;
    if (take_slot(p, &until, &c) != 0) return NULL;
    if (c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    if (!c && hl_pg_connect(p->pg, 0, &c, err, sizeof err) != 0) {
        hl_warn("pool: cannot connect to postgres: %s", err);
        hl_pg_pool_put(p, NULL, true);
        return NULL;
    }
    return lend(p, c);
}

void hl_pg_pool_put(hl_pg_pool_t *p, PGconn *c, bool broken)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; c && i < p->size; i++)
        if (p->lent[i] == c) {
            PQfreeCancel(p->cancels[i]);
            p->lent[i] = NULL;
            p->cancels[i] = NULL;
        }
    bool closed = p->closed;
    pthread_mutex_unlock(&p->mu);
    /* A connection to a read-only server is not kept: after a failover a writer needs the
     * new primary. */
    if (c && (broken || closed || hl_pg_reconnect_needed(c, NULL) ||
              PQtransactionStatus(c) != PQTRANS_IDLE)) {
        PQfinish(c);
        c = NULL;
    }
    pthread_mutex_lock(&p->mu);
    p->out--;
    if (c) p->idle[p->nidle++] = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
