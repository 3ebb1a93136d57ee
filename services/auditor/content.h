/* The content of stored events held to the hash-chained history (GET /v1/verify/content), and
 * a stored event's provider signature checked again (GET /v1/events/{source}/{message_id}/
 * signature). */
#ifndef AUD_CONTENT_H
#define AUD_CONTENT_H

#include <jansson.h>
#include <libpq-fe.h>

#include "hl/error.h"

/* Bad events listed in an answer; the count is always exact. */
#define AUD_CONTENT_MAX_LISTED 100

/* Walks every `persisted` lineage record that names a row (in lineage id order, pages of 500)
 * and checks the row against it: the row exists with the record's (source, message id, event
 * type); and, when the record carries body_sha256, SHA-256 of raw_body (computed here, not by
 * the database) and the body_sha256 column equal it, and payload equals the parse of raw_body.
 * Fills o with "ok", "events_checked", "bound" (records with a digest), "bad", "first_bad" and
 * "bad_events" (each: lineage_id, request_id, source, message_id, event_type, row_id,
 * reasons[] of "row_missing", "row_key_mismatch", "raw_body_mismatch", "digest_mismatch",
 * "payload_mismatch"). Returns 0 or HL_EPG (err filled). Any thread, its own connection. */
int aud_content_check(PGconn *c, json_t *o, char *err, size_t errcap) HL_MUST_CHECK;

#endif
