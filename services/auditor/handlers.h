/* The handlers of the auditor's HTTP API and page, the table api.c routes to. Each reads its
 * parameters strictly, answers, and returns the HTTP status it answered with. Every handler
 * runs on a civetweb worker thread. */
#ifndef AUD_HANDLERS_H
#define AUD_HANDLERS_H

#include "request.h"

/* Lineage queries and metrics (query_api.c). id and rest: the path after the endpoint's
 * prefix, percent-decoded by civetweb. */
int aud_h_request(aud_req_t *r, const char *id);
int aud_h_requests(aud_req_t *r);
int aud_h_message(aud_req_t *r, const char *id);
int aud_h_gaps(aud_req_t *r);
int aud_h_latency(aud_req_t *r);
int aud_h_budget(aud_req_t *r);
int aud_h_metrics(aud_req_t *r);

/* The history held to its checkpoints (verify_api.c). */
int aud_h_verify(aud_req_t *r);
int aud_h_checkpoints(aud_req_t *r);
int aud_h_evidence(aud_req_t *r);

/* Stored events held to the history (content.c). */
int aud_h_verify_content(aud_req_t *r);
int aud_h_event_signature(aud_req_t *r, const char *rest); /* rest: after /v1/events/ */

/* The page for people (page.c) and its sign-in (login.c). */
int aud_h_page(aud_req_t *r);
int aud_h_login(aud_req_t *r);
int aud_h_logout(aud_req_t *r);
/* Answers 401 for the page: the login form, with note (NULL: none) above it. */
int aud_h_page_login(aud_req_t *r, const char *note);

#endif
