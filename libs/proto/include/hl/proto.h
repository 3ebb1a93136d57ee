/* The contracts between hookline's services, in one place: Kafka topic and header names
 * (proto/topics.yaml), the size limits of ids and names, and the lineage stages
 * (proto/lineage.schema.json). tests/unit/test_proto.c holds these to the files in proto/. */
#ifndef HL_PROTO_H
#define HL_PROTO_H

#include "hl/error.h"

/* Default topic names (proto/topics.yaml). */
#define HL_TOPIC_EVENTS "hookline.events"
#define HL_TOPIC_LINEAGE "hookline.lineage"
#define HL_TOPIC_DLQ "hookline.dlq"
#define HL_TOPIC_CHECKPOINTS "hookline.checkpoints"

/* Headers of a hookline.events record, in the order the ingress writes them. */
#define HL_HDR_REQUEST_ID "hl-request-id"
#define HL_HDR_SOURCE "hl-source"
#define HL_HDR_EVENT_TYPE "hl-event-type"
#define HL_HDR_RECEIVED_US "hl-received-us"
#define HL_HDR_CONTENT_TYPE "content-type"
#define HL_HDR_TRACEPARENT "traceparent"
#define HL_HDR_BODY_SHA256 "hl-body-sha256"
#define HL_HDR_SIGNATURE_HEADERS "hl-signature-headers"

/* Headers a hookline.dlq record carries on top of the original ones. */
#define HL_HDR_ERROR "hl-error"
#define HL_HDR_ERROR_DETAIL "hl-error-detail"
#define HL_HDR_ATTEMPTS "hl-attempts"
#define HL_HDR_FAILED_US "hl-failed-us"

/* Size limits in bytes: a value over its limit is refused (ids) or cut (names in lineage). */
#define HL_REQUEST_ID_MAX 36  /* UUIDv7 text */
#define HL_SOURCE_MAX 64      /* a source name */
#define HL_MESSAGE_ID_MAX 256 /* a message id, the hookline.events key */
#define HL_EVENT_TYPE_MAX 128 /* an event type */
#define HL_ERROR_CODE_MAX 64  /* an error code as a lineage record is written with it */
#define HL_SHA256_HEX_LEN 64  /* a body digest: lowercase hex */

/* A limit as a string literal, for the messages that name it ("256"). */
#define HL_PROTO_STR(limit) HL_PROTO_STR_(limit)
#define HL_PROTO_STR_(limit) #limit

/* The source every request for a source that is not configured is recorded under; source
 * names are [a-z0-9_-], so no configured source can take it. */
#define HL_UNKNOWN_SOURCE ".unknown"

/* The stages of a request's lineage, in the order they happen. */
typedef enum {
    HL_STAGE_INGRESS = 0,  /* the ingress answered the request */
    HL_STAGE_PERSISTED,    /* the persister committed its row (or found it stored) */
    HL_STAGE_DEAD_LETTERED /* the persister sent it to the DLQ instead */
} hl_stage_t;

#define HL_STAGE_COUNT 3

/* The stages' names as string literals, for SQL and messages built at compile time. */
#define HL_STAGE_INGRESS_NAME "ingress"
#define HL_STAGE_PERSISTED_NAME "persisted"
#define HL_STAGE_DEAD_LETTERED_NAME "dead_lettered"

/* The stage's name as the lineage record spells it; "unknown" for a value out of range. */
const char *hl_stage_name(hl_stage_t s);
/* Parses a stage name (s may be NULL). Returns 0 or HL_EINVAL. */
int hl_stage_parse(const char *s, hl_stage_t *out) HL_MUST_CHECK;

#endif
