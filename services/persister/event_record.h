/* Turning one Kafka record of hookline.events into a row of webhook_events, or into a reason why
 * it can never be stored (the record is then dead-lettered). */
#ifndef PST_EVENT_RECORD_H
#define PST_EVENT_RECORD_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"
#include "hl/proto.h"

/* Caps that come from the contracts (proto/lineage.schema.json and DESIGN.md). */
#define PST_REC_MAX_SOURCE HL_SOURCE_MAX
#define PST_REC_MAX_MESSAGE_ID HL_MESSAGE_ID_MAX
#define PST_REC_MAX_EVENT_TYPE HL_EVENT_TYPE_MAX
#define PST_REC_MAX_DETAIL 160

/* Stable reasons a record cannot be stored; the code text goes into the hl-error DLQ header and
 * the error_code of the dead_lettered lineage record. */
typedef enum {
    PST_REC_OK = 0,
    PST_REC_MISSING_KEY,    /* no key, so no message id */
    PST_REC_BAD_KEY,        /* key too long, not UTF-8, or holds NUL */
    PST_REC_MISSING_HEADER, /* a required hl-* header is absent */
    PST_REC_BAD_HEADER,     /* a header value is malformed or over its cap */
    PST_REC_TOO_LARGE,      /* value over max_record_bytes */
    PST_REC_INVALID_JSON,   /* value is not a JSON document Postgres jsonb would accept */
    PST_REC_PG_REJECTED,    /* Postgres refused the row with a non-transient error */
    PST_REC_BODY_DIGEST,    /* hl-body-sha256 is not the SHA-256 of the value received */
} pst_rec_status_t;

/* Longest hl-signature-headers value taken (the ingress writes at most
 * HL_SIG_SIGNED_JSON_MAX bytes). */
#define PST_REC_MAX_SIGNED_JSON (32 * 1024)

/* The text of a status ("invalid_json"), never NULL. */
const char *pst_rec_status_code(pst_rec_status_t st);

/* One record in a batch. The payload points into the Kafka message `msg`; the other strings are
 * inline copies; the row is valid while `msg` is alive. `msg` is owned by the row's batch and
 * destroyed by pst_row_release. */
typedef struct {
    rd_kafka_message_t *msg; /* owned: the consumed message (key, value, headers) */
    int32_t partition;       /* hookline.events partition */
    int64_t offset;          /* hookline.events offset */
    int64_t consumed_us;     /* when the record was taken from Kafka */
    char message_id[PST_REC_MAX_MESSAGE_ID + 1]; /* = key, NUL-terminated; "" when unusable */
    size_t message_id_len;
    char source[PST_REC_MAX_SOURCE + 1];
    char event_type[PST_REC_MAX_EVENT_TYPE + 1];
    char request_id[HL_REQUEST_ID_MAX + 1]; /* UUID text; "" when the header was absent or bad */
    int64_t received_us;
    const char *payload; /* borrowed from msg: the body, byte for byte */
    size_t payload_len;
    /* SHA-256 of the body, 64 lowercase hex: hl-body-sha256 when the record carries it (checked
     * against the body: PST_REC_BODY_DIGEST otherwise, and the header's claim is what the dead
     * letter's lineage names), else computed here (records of an older ingress); "" only for
     * a record without a value. */
    char body_sha256[HL_SHA256_HEX_LEN + 1];
    const char *signed_json; /* borrowed from msg: hl-signature-headers, NULL when absent */
    size_t signed_json_len;
    pst_rec_status_t status;         /* PST_REC_OK or why it will be dead-lettered */
    char detail[PST_REC_MAX_DETAIL]; /* human detail for status != OK */
    /* Filled by the batch writer after commit. */
    int64_t row_id;   /* webhook_events.id, or -1 for a duplicate */
    int duplicate;    /* 1 when the unique key was already stored */
    int dup_in_batch; /* 1 when an earlier record of the same batch has the same key */
    int dlq_sent;     /* 1 once the DLQ acknowledged this record (never sent twice) */
    /* Filled by pst_bw_recover for a record committed before a restart: its commit time as far
     * as Postgres knows it (the row's persisted_at, or the partition's last commit). */
    int64_t committed_us;
} pst_row_t;

/* Parses the parts of one record into `row` (which must be zeroed or reused after
 * pst_row_release). key/value/headers are borrowed and must outlive the row (they live in the
 * message). Never fails as a function: an unusable record gets row->status != PST_REC_OK and a
 * detail; every field that could be read is still filled so the DLQ and lineage can name it.
 * max_value_bytes caps the body. */
void pst_record_parse(pst_row_t *row, const void *key, size_t key_len, const void *value,
                      size_t value_len, rd_kafka_headers_t *hdrs, size_t max_value_bytes);

/* Takes ownership of `msg` into a row and parses it (consumed_us is set by the caller). */
void pst_record_from_message(pst_row_t *row, rd_kafka_message_t *msg, size_t max_value_bytes);

/* Destroys the owned message (NULL-safe) and clears the row. */
void pst_row_release(pst_row_t *row);

/* Returns 1 when s[0..n) is well-formed UTF-8 without NUL bytes. */
int pst_utf8_valid(const char *s, size_t n);

/* Returns 1 when s[0..n) is one JSON document Postgres jsonb accepts (valid UTF-8, no \u0000,
 * nesting under a depth cap). Allocation-free. */
int pst_json_valid(const char *s, size_t n);

/* Sorts pointers to rows by (message_id, partition, offset), the lock and per-message order of
 * one batch. Stable for equal keys by offset. */
void pst_rows_sort(pst_row_t **rows, size_t n);

/* In rows sorted by pst_rows_sort, marks every OK record whose (source, message id, event type)
 * an earlier record of the same batch already has (dup_in_batch = 1, duplicate = 1, row_id
 * -1): the first delivery is the one stored. Linear in n for the few events of one message. */
void pst_rows_mark_batch_duplicates(pst_row_t **rows, size_t n);

#endif
