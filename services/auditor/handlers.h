/* The handlers of the auditor's HTTP API and page, the table api.c routes to. Each reads its
 * parameters strictly, answers, and returns the HTTP status it answered with. Every handler
 * runs on a civetweb worker thread. */
#ifndef HL_AUDITOR_HANDLERS_H
#define HL_AUDITOR_HANDLERS_H

#include "request.h"

/* Lineage queries and metrics (query_api.c). id and rest: the path after the endpoint's
 * prefix, percent-decoded by civetweb. */
int hl_h_request(hl_req_t *r, const char *id);
int hl_h_requests(hl_req_t *r);
int hl_h_message(hl_req_t *r, const char *id);
int hl_h_gaps(hl_req_t *r);
int hl_h_latency(hl_req_t *r);
int hl_h_budget(hl_req_t *r);
int hl_h_metrics(hl_req_t *r);

/* The history held to its checkpoints (verify_api.c). */
int hl_h_verify(hl_req_t *r);
int hl_h_checkpoints(hl_req_t *r);
int hl_h_evidence(hl_req_t *r);

/* Stored events held to the history (content.c). */
int hl_h_verify_content(hl_req_t *r);
int hl_h_event_signature(hl_req_t *r, const char *rest); /* rest: after /v1/events/ */

/* The page for people (page.c) and its sign-in (login.c). */
int hl_h_page(hl_req_t *r);
int hl_h_login(hl_req_t *r);
int hl_h_logout(hl_req_t *r);
/* Answers 401 for the page: the login form, with note (NULL: none) above it. */
int hl_h_page_login(hl_req_t *r, const char *note);

#endif
