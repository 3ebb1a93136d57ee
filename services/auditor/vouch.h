/* What the auditor takes on at start: a chain's rows written since its newest outside
 * checkpoint are held to the lineage topic's records before they count as its own. */
#ifndef AUD_VOUCH_H
#define AUD_VOUCH_H

#include <libpq-fe.h>
#include <stdint.h>

#include "checkpoint.h"
#include "hl/config.h"

typedef struct {
    int64_t bad_seq;    /* first seq not vouched for, 0: every row is */
    const char *reason; /* static, when bad_seq: "walk" (the chain walk from the checkpoint
                         * failed), "not_retained" (the records are gone from the topic),
                         * "offset_order", "record_mismatch" (the row's record is not the
                         * topic's at its offset), "record_not_found", "row_missing" (a record
                         * that makes a row has none), "topic_unreadable" */
    int64_t offset;     /* the lineage offset concerned, -1: none */
} aud_vouch_t;

/* Holds the rows of `chain` after seq from->seq (from NULL: all of them) up to head_seq to the
 * records of partition `chain` of the lineage topic: the walk from the checkpoint must pass,
 * each row's record must be the topic's record at the row's lineage_offset, offsets ascending,
 * and every record between them must be one that makes no row (refused by validation, or an
 * outcome record, which may repeat a stored one). Returns 0 (out says what was found) or
 * HL_EPG with errbuf filled. */
int aud_vouch_tail(PGconn *c, const hl_kafka_config_t *k, const char *topic, int32_t chain,
                   const aud_checkpoint_t *from, int64_t head_seq, int timeout_ms, aud_vouch_t *out,
                   char *errbuf, size_t errcap) HL_MUST_CHECK;

/* aud_vouch_tail without the walk: holds the rows after from (borrowed; NULL: from the start)
 * up to head_seq to the topic's records as they are (after a walk that failed, to find the
 * first row that differs). The records start after the lineage offset of the row at from->seq
 * that hashes to from->hash (aud_verify_sealed_row); without such a row, bad_seq is from->seq
 * ("walk"). */
int aud_vouch_range(PGconn *c, const hl_kafka_config_t *k, const char *topic, int32_t chain,
                    const aud_checkpoint_t *from, int64_t head_seq, int timeout_ms,
                    aud_vouch_t *out, char *errbuf, size_t errcap) HL_MUST_CHECK;

#endif
