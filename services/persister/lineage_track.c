/* The lineage watermark per partition: a FIFO of committed batches and their pending reports. */
#include "lineage_track.h"

#include <stdlib.h>

#include "hl/util.h"

/* Partitions one batch can hold without growing its cover list. */
#define INLINE_COVERS 8

typedef struct {
    int32_t partition;
    int64_t next; /* the batch's records of this partition are all below it */
    uint64_t gen; /* the partition's mark generation when covered */
} cover_t;

struct pst_ltrack_batch {
    pst_ltrack_batch_t *next_batch; /* the batch opened after this one */
    size_t pending;                 /* reports still awaited */
    bool closed;                    /* no more records will be expected */
    bool failed;                    /* a record of the batch was not delivered */
    size_t ncovers, cap;
    cover_t *covers; /* inline or heap */
    cover_t inline_covers[INLINE_COVERS];
};

typedef struct {
    int32_t partition;
    int64_t upto; /* -1: unknown */
    bool stuck;   /* a lineage record of a retired batch was lost: upto stays put */
    uint64_t gen; /* bumped by pst_ltrack_set: batches covered before it no longer count */
} mark_t;

struct pst_ltrack {
    pst_ltrack_batch_t *head, *tail; /* oldest and newest batch not yet retired */
    size_t nbatches;
    mark_t *marks; /* one per partition seen; a topic has few */
    size_t nmarks, mcap;
};

pst_ltrack_t *pst_ltrack_new(void)
{
    return hl_xcalloc(1, sizeof(pst_ltrack_t));
}

static void batch_free(pst_ltrack_batch_t *b)
{
    if (b->covers != b->inline_covers) free(b->covers);
    free(b);
}

void pst_ltrack_free(pst_ltrack_t *t)
{
    if (!t) return;
    while (t->head) {
        pst_ltrack_batch_t *b = t->head;
        t->head = b->next_batch;
        batch_free(b);
    }
    free(t->marks);
    free(t);
}

pst_ltrack_batch_t *pst_ltrack_open(pst_ltrack_t *t)
{
    pst_ltrack_batch_t *b = hl_xcalloc(1, sizeof(*b));
    b->covers = b->inline_covers;
    b->cap = INLINE_COVERS;
    if (t->tail)
        t->tail->next_batch = b;
    else
        t->head = b;
    t->tail = b;
    t->nbatches++;
    return b;
}

static mark_t *mark_of(pst_ltrack_t *t, int32_t partition)
{
    for (size_t i = 0; i < t->nmarks; i++)
        if (t->marks[i].partition == partition) return &t->marks[i];
    if (t->nmarks == t->mcap) {
        t->mcap = t->mcap ? t->mcap * 2 : 8;
        t->marks = hl_xrealloc(t->marks, t->mcap * sizeof(*t->marks));
    }
    t->marks[t->nmarks] = (mark_t){partition, -1, false, 0};
    return &t->marks[t->nmarks++];
}

void pst_ltrack_cover(pst_ltrack_t *t, pst_ltrack_batch_t *b, int32_t partition, int64_t next)
{
    uint64_t gen = mark_of(t, partition)->gen;
    for (size_t i = 0; i < b->ncovers; i++)
        if (b->covers[i].partition == partition) {
            if (next > b->covers[i].next) b->covers[i].next = next;
            b->covers[i].gen = gen;
            return;
        }
    if (b->ncovers == b->cap) {
        cover_t *grown = hl_xcalloc(b->cap * 2, sizeof(*grown));
        for (size_t i = 0; i < b->ncovers; i++) grown[i] = b->covers[i];
        if (b->covers != b->inline_covers) free(b->covers);
        b->covers = grown;
        b->cap *= 2;
    }
    b->covers[b->ncovers++] = (cover_t){partition, next, gen};
}

void pst_ltrack_expect(pst_ltrack_batch_t *b)
{
    b->pending++;
}

/* Retires the oldest batches whose every report arrived, moving their partitions' marks. */
static void retire(pst_ltrack_t *t)
{
    while (t->head && t->head->closed && t->head->pending == 0) {
        pst_ltrack_batch_t *b = t->head;
        for (size_t i = 0; i < b->ncovers; i++) {
            mark_t *m = mark_of(t, b->covers[i].partition);
            if (b->covers[i].gen != m->gen) continue; /* from before the mark was last set */
            if (b->failed)
                m->stuck = true;
            else if (!m->stuck && b->covers[i].next > m->upto)
                m->upto = b->covers[i].next;
        }
        t->head = b->next_batch;
        if (!t->head) t->tail = NULL;
        t->nbatches--;
        batch_free(b);
    }
}

void pst_ltrack_report(pst_ltrack_t *t, pst_ltrack_batch_t *b, bool ok)
{
    if (!ok) b->failed = true;
    if (b->pending > 0) b->pending--;
    retire(t);
}

void pst_ltrack_close(pst_ltrack_t *t, pst_ltrack_batch_t *b)
{
    b->closed = true;
    retire(t);
}

int64_t pst_ltrack_upto(const pst_ltrack_t *t, int32_t partition)
{
    for (size_t i = 0; i < t->nmarks; i++)
        if (t->marks[i].partition == partition) return t->marks[i].upto;
    return -1;
}

void pst_ltrack_set(pst_ltrack_t *t, int32_t partition, int64_t upto)
{
    mark_t *m = mark_of(t, partition);
    m->upto = upto;
    m->stuck = false;
    m->gen++;
}

size_t pst_ltrack_pending(const pst_ltrack_t *t)
{
    return t->nbatches;
}
