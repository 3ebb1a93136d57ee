/* Checkpoints outside the database: each signed checkpoint is also published to a Kafka topic
 * of its own (proto/topics.yaml, unlimited retention), and verification reads them back from
 * there, so whoever owns Postgres cannot rewrite or remove them along with the chain. */
#ifndef AUD_OUTSIDE_H
#define AUD_OUTSIDE_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "hl/config.h"

/* Records read back from the end of the topic: enough for every chain's newest checkpoints
 * (at one per chain and interval, 3 chains signed each minute fill it in 5.5 days; older
 * ones are not needed, a walk only has to meet the newest). */
#define AUD_SEALS_WINDOW 24000

typedef struct aud_ckpub aud_ckpub_t;

/* A producer (acks=all, idempotent) for the checkpoint topic. NULL with errbuf filled. */
aud_ckpub_t *aud_ckpub_new(const hl_kafka_config_t *k, const char *topic, char *errbuf,
                           size_t errcap);
void aud_ckpub_free(aud_ckpub_t *p);
/* Publishes one checkpoint (key: the chain, value: aud_checkpoint_json) and waits until Kafka
 * acknowledged it, at most timeout_ms. Returns 0 or HL_EIO / HL_ETIMEDOUT with errbuf filled. */
int aud_ckpub_send(aud_ckpub_t *p, const aud_checkpoint_t *cp, int timeout_ms, char *errbuf,
                   size_t errcap) HL_MUST_CHECK;

/* Checks that the topic keeps what the outside copy promises: one partition, records never
 * removed by age (retention.ms -1) nor by key (cleanup.policy delete, no compaction). Not
 * checked: retention.bytes (a broker's default size limit applies to it too). Returns 0,
 * HL_EINVAL (why says what differs) or HL_EIO (could not ask; why says why), at most
 * timeout_ms. */
int aud_ckpub_check_topic(aud_ckpub_t *p, int timeout_ms, char *why, size_t cap) HL_MUST_CHECK;

/* The signature-checked checkpoints found in the topic, sorted by (chain, seq), one per
 * (chain, seq). `refused` counts records that did not parse or whose signature no key of the
 * ring accepts (they are left out and logged). */
typedef struct {
    aud_checkpoint_t *cps;
    size_t n, cap;
    int64_t refused;
} aud_seals_t;

/* Reads the last AUD_SEALS_WINDOW records of `topic` (partition 0) up to its end, at most
 * timeout_ms. Returns 0 or HL_EIO / HL_ETIMEDOUT / HL_ENOTFOUND (no such topic) with errbuf
 * filled; *out is then empty. Free with aud_seals_free. */
int aud_seals_read(const hl_kafka_config_t *k, const char *topic, const aud_keyring_t *ring,
                   int timeout_ms, aud_seals_t *out, char *errbuf, size_t errcap) HL_MUST_CHECK;
void aud_seals_free(aud_seals_t *s);
/* Adds one checkpoint (already verified) keeping the order. */
void aud_seals_add(aud_seals_t *s, const aud_checkpoint_t *cp);
/* The checkpoints of one chain, ascending seq (*n of them, possibly 0). */
const aud_checkpoint_t *aud_seals_chain(const aud_seals_t *s, int32_t chain, size_t *n);

#endif
