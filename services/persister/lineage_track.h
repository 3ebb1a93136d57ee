/* Which records of each hookline.events partition have had all their lineage delivered: the
 * `lineage_offset` the persister stores beside `next_offset`. Committed batches are tracked in
 * commit order; a batch retires once every lineage record it produced was acknowledged, and
 * only retiring batches move a partition's mark, so the mark never passes an offset whose
 * lineage is still in flight or was lost. Runs on the thread that polls the consumer (delivery
 * reports included); not thread-safe. */
#ifndef PST_LINEAGE_TRACK_H
#define PST_LINEAGE_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pst_ltrack pst_ltrack_t;
typedef struct pst_ltrack_batch pst_ltrack_batch_t;

pst_ltrack_t *pst_ltrack_new(void);
/* Frees the tracker and every batch not yet retired. NULL-safe. */
void pst_ltrack_free(pst_ltrack_t *t);

/* Appends a batch (owned by the tracker, valid until it retires). Batches retire in the order
 * they were opened. */
pst_ltrack_batch_t *pst_ltrack_open(pst_ltrack_t *t);
/* The batch holds records of `partition` below `next` (called once per partition; a second
 * call keeps the higher value). */
void pst_ltrack_cover(pst_ltrack_t *t, pst_ltrack_batch_t *b, int32_t partition, int64_t next);
/* One more lineage record of the batch awaits its delivery report. */
void pst_ltrack_expect(pst_ltrack_batch_t *b);
/* The report of one expected record: ok false when it was not delivered (the batch's partitions
 * then stop moving until pst_ltrack_set; their range is recovered at the next assignment). */
void pst_ltrack_report(pst_ltrack_t *t, pst_ltrack_batch_t *b, bool ok);
/* No more records will be expected for the batch; it may retire at once. */
void pst_ltrack_close(pst_ltrack_t *t, pst_ltrack_batch_t *b);

/* Offset below which every record of `partition` has its lineage delivered; -1 when unknown. */
int64_t pst_ltrack_upto(const pst_ltrack_t *t, int32_t partition);
/* Sets the mark of `partition` (at assignment, from Postgres) and lets it move again. Batches
 * covering the partition before this call no longer move its mark when they retire: what they
 * delivered is already counted in the value set (or will be recovered). */
void pst_ltrack_set(pst_ltrack_t *t, int32_t partition, int64_t upto);
/* Batches opened and not yet retired. */
size_t pst_ltrack_pending(const pst_ltrack_t *t);

#endif
