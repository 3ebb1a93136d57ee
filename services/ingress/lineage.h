/* The `ingress` lineage record: one per request, accepted or rejected, sent to the lineage
 * topic without delaying the answer (proto/lineage.schema.json). */
#ifndef ING_LINEAGE_H
#define ING_LINEAGE_H

#include <stddef.h>
#include <stdint.h>

#include "producer.h"

#define ING_LINEAGE_MAX 4096

/* One request's outcome (all strings borrowed; NULL ones are omitted, error_code NULL is
 * written as null). */
typedef struct {
    const char *request_id;
    const char *source;     /* written truncated to 64 bytes */
    const char *message_id;
    const char *event_type;
    int64_t received_us;
    int64_t ts_us;          /* when the answer was decided */
    int status;
    const char *error_code;
    int32_t partition;      /* -1 = unknown */
    int64_t offset;         /* -1 = unknown */
    int64_t latency_us;
} ing_lineage_t;

/* Writes the JSON record into buf (cap bytes, NUL-terminated). Returns its length or
 * HL_ETOOBIG. */
int ing_lineage_format(const ing_lineage_t *l, char *buf, size_t cap) HL_MUST_CHECK;

/* Formats and queues the record (key = request id). Never blocks. Any thread. */
void ing_lineage_emit(ing_producer_t *p, const ing_lineage_t *l);

#endif
