/* The gap counts behind the hookline_auditor_gaps metric, kept up to date incrementally.
 *
 * A gap is an accepted request (ingress row, status 202) of the last `window_us` whose first
 * outcome (persisted or dead_lettered) is missing `grace_us` after it was received ("open"),
 * or arrived later than that ("closed"). Recounting that over the whole window on every scan
 * costs a join per accepted request of the window, every few seconds, whatever the traffic:
 * this scanner reads each lineage row once instead, by id, a bounded chunk at a time, a few
 * seconds after it was stored (AUD_GAPSCAN_LAG_US, while its page is likely still in Postgres'
 * cache), and pairs elements with their outcomes in memory. An element is counted open once it
 * was stored `grace_us` ago with no outcome read; it is then looked up once in the whole table
 * (an outcome the scan's memory does not hold) before it counts. Ids missing below what was read
 * (a transaction still open, or rolled back) are read again until they are `grace_us` old.
 * Closed gaps are counted per minute of receipt, so both counts forget requests older than the
 * window.
 *
 * More than pending_max elements awaiting an outcome, or 2/5 of that open gaps (a long outage
 * downstream), would make the set too big to keep: the scanner then drops it and counts with
 * one full query (exact, slow: a join per accepted request of the window). It goes on counting
 * so, each count pause_us after the last began or AUD_GAPSCAN_COUNT_PAUSE times its own
 * duration, whichever is longer but no more than AUD_GAPSCAN_PAUSE_CAP times pause_us (a count
 * made slow by a lock must not leave the metric stale for hours), a failed count included
 * (the calls in between set no counts), until a count finds at most a fifth of pending_max open
 * gaps; the next call then starts over, one by one. */
#ifndef AUD_GAPSCAN_H
#define AUD_GAPSCAN_H

#include <libpq-fe.h>
#include <stdint.h>

#include "hl/error.h"

#define AUD_GAPSCAN_CHUNK 50000             /* lineage ids read per query */
#define AUD_GAPSCAN_COUNT_PAUSE 10          /* full counts take at most 1/10 of the time */
#define AUD_GAPSCAN_PAUSE_CAP 10            /* ... but one comes at least every 10 pause_us */
#define AUD_GAPSCAN_EARLY_MAX 100000        /* outcomes kept for elements not read yet */
#define AUD_GAPSCAN_LAG_US INT64_C(5000000) /* rows are read once stored this long ago */
#define AUD_GAPSCAN_HOLES_MAX 1024          /* missing id ranges looked at again */

typedef struct aud_gapscan aud_gapscan_t;

/* pending_max: elements awaiting an outcome the scanner follows one by one;
 * pause_us: the shortest time between two full counts. */
aud_gapscan_t *aud_gapscan_new(int64_t grace_us, int64_t window_us, int64_t pending_max,
                               int64_t pause_us);
void aud_gapscan_free(aud_gapscan_t *g);

/* Reads what was stored since the last call (chunks for at most budget_us; the rest waits for
 * the next call) and sets *open and *closed as of now_us. Returns 1 when the counts are
 * current, 2 when they are and came from the full query, 0 while the first pass over the
 * window is still under way or a full count waits its turn (counts not set), or HL_EPG with
 * errbuf filled. A chunk is taken whole or not at all, so after an error the next
 * call goes on where this one stopped. A transaction that stays open longer than
 * AUD_GAPSCAN_LAG_US plus grace_us (or more than AUD_GAPSCAN_HOLES_MAX id ranges missing at
 * once), or one open while the scanner starts, can have its rows passed over. */
int aud_gapscan_run(aud_gapscan_t *g, PGconn *c, int64_t now_us, int64_t budget_us, int64_t *open,
                    int64_t *closed, char *errbuf, size_t errcap) HL_MUST_CHECK;

#endif
