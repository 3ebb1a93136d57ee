/* The history held to its checkpoints with what this process knows besides the table (the
 * heads it wrote, the chains it owns, the rows found deleted): the whole verification report,
 * the checkpoints read from the topic, the signing round, and the last whole verification
 * kept for the page. */
#ifndef AUD_HISTORY_H
#define AUD_HISTORY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "auditor.h"
#include "checkpoint.h"
#include "verify.h"

/* One chain's verification as the API answers it (chain, ok, rows, head, first_bad ...).
 * New reference. */
json_t *aud_history_chain_json(const aud_verify_t *v);

/* Reads the checkpoints of the checkpoint topic, plus the heads this process wrote (unsigned,
 * key_id ""). Returns 0 or HL_E* (errbuf filled). */
int aud_history_seals(aud_state_t *a, aud_seals_t *out, char *errbuf, size_t errcap) HL_MUST_CHECK;

/* GET /v1/verify's answer into o: "chain_ok", "checkpoints_outside" and "chains" (every chain,
 * or chain `only` when >= 0), each walked against the checkpoint topic; chain_ok is false when
 * any chain fails or the topic could not be read. A whole verification (only < 0) adds
 * "content" (aud_content_check: the stored events held to the lineage). "ok" is chain_ok and,
 * when there is one, the content's ok. Returns 0 or HL_EPG (err filled). */
int aud_history_report(aud_state_t *a, PGconn *c, int32_t only, json_t *o, char *err,
                       size_t errcap);

/* Adds the content check to a verification answer o: "content", and "ok" false when the
 * content is bad. The chain alone says nothing of an edited payload or body, a stored event
 * deleted or a row no lineage names. Returns 0 or HL_EPG. */
int aud_history_with_content(PGconn *c, json_t *o, char *err, size_t errcap);

/* One signing round (aud_checkpoint_run against the topic's checkpoints) with its metrics and
 * logs, on a connection of the writer's pool (the API's role may not insert checkpoints).
 * Returns the number signed or a negative HL_E* code (errbuf filled; HL_EPG: Postgres). */
int aud_history_sign(aud_state_t *a, char *errbuf, size_t errcap);

/* A whole verification (aud_history_report of every chain, began at began_us wall time, took
 * took_us) for the page to show, unless the one it holds began later. report is borrowed
 * (copied). Takes status_mu: any thread but one already holding it. */
void aud_history_offer(aud_state_t *a, json_t *report, int64_t began_us, int64_t took_us);

/* The last whole verification (the page's own or GET /v1/verify's) while it is younger than a
 * minute, else (or when `fresh`) a new one that began after this call: pages loading together
 * share one walk instead of each running its own. Sets *when_us to when it began. A new
 * reference, or NULL on a database error. Takes status_mu. */
json_t *aud_history_status(aud_state_t *a, PGconn *c, bool fresh, int64_t *when_us);

#endif
