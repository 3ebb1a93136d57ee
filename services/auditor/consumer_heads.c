/* Taking chains on at assignment: each assigned chain's head and stored offset loaded from
 * Postgres, and the rows after its newest signed checkpoint vouched for against the lineage
 * topic (vouch.c) before this process signs anything of it. Consumer thread only. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditor.h"
#include "consumer_impl.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/util.h"
#include "store.h"
#include "verify.h"
#include "vouch.h"

/* Loads the head and stored offset of chain p into c->heads[p], retrying until stop (then
 * HL_ESTATE). */
static int load_head_retrying(consumer_t *c, int32_t p)
{
    char err[512];
    for (int backoff = 100;; backoff = backoff < 5000 ? backoff * 2 : 5000) {
        if (atomic_load(&c->a->stop)) return HL_ESTATE;
        err[0] = '\0';
        if (aud_cons_ensure_pg(c) == 0 &&
            aud_store_load_head(c->pg, c->a->cfg->group_id, c->a->cfg->kafka.lineage_topic, p,
                                &c->heads[p], err, sizeof err) == 0)
            return 0;
        hl_warn("consumer: loading chain %d: %s", p, err);
        aud_cons_sleep_ms(backoff);
    }
}

/* The partition count of the lineage topic, for the signer (a chain beyond it has no writer). */
static void learn_partitions(consumer_t *c)
{
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(c->rk, c->a->cfg->kafka.lineage_topic, NULL);
    if (t && rd_kafka_metadata(c->rk, 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
        atomic_store(&c->a->lineage_partitions, md->topics[0].partition_cnt);
    if (md) rd_kafka_metadata_destroy(md);
    if (t) rd_kafka_topic_destroy(t);
}

/* The newest checkpoints of the checkpoint topic (signature-checked), a few tries; on failure
 * out is empty and every chain's whole history is held to the lineage topic instead. */
static void read_seals(consumer_t *c, aud_seals_t *out)
{
    char err[512];
    for (int i = 0; i < 3 && !atomic_load(&c->a->stop); i++) {
        int rc = aud_seals_read(&c->a->cfg->kafka, c->a->cfg->checkpoint.topic, &c->a->ring, 10000,
                                out, err, sizeof err);
        if (rc == 0 || rc == HL_ENOTFOUND) return;
        hl_warn("consumer: reading the checkpoint topic: %s", err);
        aud_cons_sleep_ms(1000);
    }
    memset(out, 0, sizeof *out);
}

/* What vouching found for one chain, to be taken on under written_mu. */
typedef struct {
    aud_vouch_t vr;
    int64_t from_seq;      /* the newest signed checkpoint's seq, 0: none */
    int64_t sealed_seq;    /* the newest checkpoint's seq in the topic, 0: none */
    aud_checkpoint_t head; /* the head this process takes as its own */
} vouched_t;

/* Holds chain p's rows after the newest signed checkpoint to the lineage topic (vouch.c): reads
 * Postgres and Kafka, for up to minutes with a slow broker, so it runs without written_mu.
 * Consumer thread (the rebalance callback): c->heads and c->pg are this thread's alone. */
static void vouch_head(consumer_t *c, int32_t p, const aud_seals_t *seals, vouched_t *out)
{
    char err[512];
    size_t n = 0;
    const aud_checkpoint_t *cps = aud_seals_chain(seals, p, &n), *from = NULL;
    for (size_t k = n; k-- > 0 && !from;)
        if (cps[k].key_id[0]) from = &cps[k];
    memset(out, 0, sizeof *out);
    out->vr = (aud_vouch_t){0, NULL, -1};
    out->from_seq = from ? from->seq : 0;
    out->sealed_seq = n > 0 ? cps[n - 1].seq : 0;
    out->head.chain = p;
    out->head.seq = c->heads[p].seq;
    memcpy(out->head.hash, c->heads[p].hash, AUD_CHAIN_HASH_LEN);
    int rc = HL_EPG;
    for (int i = 0; i < 3 && rc != 0 && !atomic_load(&c->a->stop); i++) {
        rc = aud_cons_ensure_pg(c) == 0
                 ? aud_vouch_tail(c->pg, &c->a->cfg->kafka, c->a->cfg->kafka.lineage_topic, p, from,
                                  c->heads[p].seq, 60000, &out->vr, err, sizeof err)
                 : HL_EPG;
        if (rc) {
            hl_warn("consumer: chain %d: checking the rows since its checkpoint: %s", p, err);
            aud_cons_sleep_ms(500);
        }
    }
    if (rc) out->vr = (aud_vouch_t){out->from_seq + 1, "postgres", -1};
    if (out->vr.bad_seq == 0) return;
    /* The head vouched for ends before the first row that is not. */
    out->head.seq = out->vr.bad_seq - 1;
    memset(out->head.hash, 0, sizeof out->head.hash);
    if (out->head.seq > 0 &&
        (aud_cons_ensure_pg(c) != 0 ||
         aud_verify_hash_at(c->pg, p, out->head.seq, out->head.hash, err, sizeof err) != 0))
        out->head.seq = 0;
}

/* Takes chain p's head as this process's own only as far as vouch_head could vouch for it.
 * From the first row it could not, the chain counts as holding foreign rows: ALARM, verify
 * names that row, nothing of the chain is signed while this process runs. Until this runs the
 * chain is not owned[p], so neither signing nor verify's unwritten_row check takes a head not
 * yet vouched for. written_mu held. */
static void adopt_head(consumer_t *c, int32_t p, const vouched_t *v)
{
    c->a->written[p] = v->head;
    c->a->foreign_seq[p] = 0;
    c->a->owned[p] = true;
    /* A head below the newest outside checkpoint: rows it sealed were deleted. Their records
     * are read and stored again (the same rows, the same hashes: the walk holds them to the
     * checkpoint), but the deletion stays named. */
    if (v->sealed_seq > 0 && c->heads[p].seq < v->sealed_seq &&
        (c->a->deleted_seq[p] == 0 || c->heads[p].seq + 1 < c->a->deleted_seq[p])) {
        c->a->deleted_seq[p] = c->heads[p].seq + 1;
        hl_counter_inc(c->a->m_deleted);
        hl_error("ALARM chain %d lost rows below its checkpoint: first missing seq %" PRId64
                 " (checkpoint seq %" PRId64 "); read and stored again from the lineage topic,"
                 " verify names the deletion",
                 p, c->a->deleted_seq[p], v->sealed_seq);
    }
    if (v->vr.bad_seq == 0) {
        if (c->heads[p].seq > v->from_seq)
            hl_info("consumer: chain %d: rows %" PRId64 "..%" PRId64 " since the newest"
                    " checkpoint match the lineage topic",
                    p, v->from_seq + 1, c->heads[p].seq);
        return;
    }
    c->a->foreign_seq[p] = v->vr.bad_seq;
    hl_counter_inc(c->a->m_foreign);
    hl_error("ALARM chain %d holds rows this auditor cannot vouch for, from seq %" PRId64
             " (%s, lineage offset %" PRId64 "): not signed; verify names them",
             p, v->vr.bad_seq, v->vr.reason, v->vr.offset);
}

/* Loads heads and stored offsets for newly assigned partitions, retrying until stop. */
int aud_cons_load_heads(consumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    aud_seals_t seals;
    learn_partitions(c);
    read_seals(c, &seals);
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (p < 0 || p >= AUD_MAX_CHAINS) {
            hl_error("consumer: partition %d beyond the %d chains supported", p, AUD_MAX_CHAINS);
            aud_seals_free(&seals);
            return HL_ERANGE;
        }
        if (load_head_retrying(c, p) != 0) {
            aud_seals_free(&seals);
            return HL_ESTATE;
        }
        c->assigned[p] = true;
        /* Kafka and Postgres are read without written_mu: verify and signing (which take it)
         * do not wait for a slow broker, and see the chain as not owned until it is adopted. */
        vouched_t v;
        vouch_head(c, p, &seals, &v);
        pthread_mutex_lock(&c->a->written_mu);
        adopt_head(c, p, &v);
        pthread_mutex_unlock(&c->a->written_mu);
        parts->elems[i].offset =
            c->heads[p].next_offset >= 0 ? c->heads[p].next_offset : RD_KAFKA_OFFSET_BEGINNING;
        hl_info("consumer: chain %d assigned at seq %" PRId64 ", offset %" PRId64, p,
                c->heads[p].seq, c->heads[p].next_offset);
    }
    aud_seals_free(&seals);
    atomic_store(&c->a->db_ok, true);
    return 0;
}
