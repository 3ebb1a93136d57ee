/* The consumer thread's state and what its files share (consumer.c: polling and batches;
 * consumer_heads.c: taking chains on at assignment). Consumer thread only. */
#ifndef AUD_CONSUMER_IMPL_H
#define AUD_CONSUMER_IMPL_H

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "auditor.h"
#include "store.h"

typedef struct {
    aud_state_t *a;
    rd_kafka_t *rk;
    PGconn *pg;
    aud_head_t heads[AUD_MAX_CHAINS];
    bool assigned[AUD_MAX_CHAINS];
    aud_item_t *items;
    size_t n;
    bool had_pg;       /* a connection was made before */
    bool resync;       /* a new connection since the heads were positioned: resync before writing */
    bool unfolded;     /* counts may wait to be folded: a batch wrote some since the last fold */
    int64_t folded_us; /* the last fold tried (hl_mono_us) */
} consumer_t;

void aud_cons_sleep_ms(int ms);
/* A connection in c->pg, made when there is none (0), else HL_EPG (db_ok cleared). A new
 * connection after an earlier one sets c->resync. */
int aud_cons_ensure_pg(consumer_t *c);
/* Loads heads and stored offsets for newly assigned partitions (their .offset set to where
 * reading resumes) and vouches for each chain's tail, retrying until stop. 0, HL_ERANGE (a
 * partition beyond the chains supported) or HL_ESTATE (stopped). */
int aud_cons_load_heads(consumer_t *c, rd_kafka_topic_partition_list_t *parts);

#endif
