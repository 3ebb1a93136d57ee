/* The `ingress` lineage record: one per request, accepted or rejected, sent to the lineage
 * topic without delaying the answer (proto/lineage.schema.json). */
#ifndef ING_LINEAGE_H
#define ING_LINEAGE_H

#include <stddef.h>
#include <stdint.h>

#include "hl/lineage_record.h"
#include "hl/metrics.h"
#include "producer.h"

#define ING_LINEAGE_MAX HL_LINEAGE_WRITE_MAX

/* The name every request for a source that is not configured is recorded under: whatever
 * name the client chose never reaches the lineage (or the auditor's rollups). */
#define ING_UNKNOWN_SOURCE HL_UNKNOWN_SOURCE

/* One request's outcome (all strings borrowed; NULL ones are omitted, error_code NULL is
 * written as null; strings are cut to their limits in hl/proto.h). */
typedef struct {
    const char *request_id;
    const char *source; /* written cut to HL_SOURCE_MAX bytes */
    const char *message_id;
    const char *event_type;
    int64_t received_us;
    int64_t ts_us; /* when the answer was decided */
    int status;
    const char *error_code;
    int32_t partition; /* -1 = unknown */
    int64_t offset;    /* -1 = unknown */
    int64_t latency_us;
    uint64_t suppressed;     /* rejected requests not recorded just before this one (0: none) */
    const char *body_sha256; /* 64 hex digits: SHA-256 of the body produced; NULL when none was */
} ing_lineage_t;

/* The budget of rejected requests' lineage: an unauthenticated client must not be able to
 * grow the append-only history without bound. Accepted requests (202) are never limited. */
typedef struct ing_lineage_budget ing_lineage_budget_t;

/* per_s in total and per_client_per_s for each client address (the 4,096 most recently
 * seen). Both at least 1. Registers hookline_ingress_lineage_suppressed_total. */
ing_lineage_budget_t *ing_lineage_budget_new(uint32_t per_s, uint32_t per_client_per_s,
                                             hl_metrics_t *metrics);
void ing_lineage_budget_free(ing_lineage_budget_t *b);

/* Writes the JSON record into buf (cap bytes, NUL-terminated) with the contract library's
 * writer. Returns its length or HL_ETOOBIG. */
int ing_lineage_format(const ing_lineage_t *l, char *buf, size_t cap) HL_MUST_CHECK;

/* Formats and queues the record (key = request id). Never blocks. Any thread. A rejection
 * (status other than 202) is recorded only within the budget b (NULL: no limit) for its
 * client address; one over it is counted instead, and the next rejection recorded carries
 * that count as "suppressed". */
void ing_lineage_emit(ing_producer_t *p, ing_lineage_budget_t *b, const char *client,
                      ing_lineage_t *l);

#endif
