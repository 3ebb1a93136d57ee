/* HTTP plumbing shared by the API handlers and the page: one parsed request, strict query
 * parameters, authentication and JSON answers. */
#ifndef HL_AUDITOR_API_H
#define HL_AUDITOR_API_H

#include <civetweb.h>
#include <jansson.h>
#include <stdint.h>

#include "auditor.h"
#include "query.h"

#define HL_API_MAX_PARAMS 16
#define HL_API_MAX_VALUE 512

typedef struct {
    struct mg_connection *conn;
    hl_auditor_t *a;
    const char *method;
    const char *path;  /* decoded path, borrowed from civetweb */
    char rid[37];      /* X-Request-Id of this answer */
    unsigned roles;    /* roles of the caller's token, 0 if none */
    int nparams;
    char keys[HL_API_MAX_PARAMS][32];
    char vals[HL_API_MAX_PARAMS][HL_API_MAX_VALUE];
} hl_req_t;

/* The value of query parameter key, or NULL. */
const char *hl_req_param(const hl_req_t *r, const char *key);
/* Answers 400 unknown_parameter and returns -1 if a parameter is not in allowed (NULL-ended). */
int hl_req_only(hl_req_t *r, const char *const *allowed);

/* Strict parameter readers: each answers 400 with a JSON error itself and returns -1 on a bad
 * value; 0 otherwise (def when absent). */
int hl_param_time(hl_req_t *r, const char *key, int64_t def, int64_t *out);
int hl_param_int(hl_req_t *r, const char *key, int64_t min, int64_t max, int64_t def,
                 int64_t *out);
int hl_param_limit(hl_req_t *r, int *out);
int hl_param_cursor(hl_req_t *r, hl_cursor_t *out);
/* A source name: 1..64 of [A-Za-z0-9_.-]; NULL when absent. */
int hl_param_source(hl_req_t *r, const char **out);
/* Parses RFC 3339 UTC ("2026-01-02T03:04:05Z", optional .ffffff) or integer epoch µs. */
int hl_parse_time(const char *s, int64_t *out);
/* True for an id of 1..max bytes without control characters. */
int hl_id_valid(const char *s, size_t max);

int hl_reply_json(hl_req_t *r, int status, json_t *body); /* takes body */
int hl_reply_error(hl_req_t *r, int status, const char *code, const char *msg);
/* 503 when no database connection; returns NULL after answering. */
PGconn *hl_req_db(hl_req_t *r);
void hl_req_db_done(hl_req_t *r, PGconn *c, int failed);

/* Handlers (api_handlers.c, page.c). Each answers and returns the HTTP status. */
int hl_h_request(hl_req_t *r, const char *id);
int hl_h_requests(hl_req_t *r);
int hl_h_message(hl_req_t *r, const char *id);
int hl_h_gaps(hl_req_t *r);
int hl_h_latency(hl_req_t *r);
int hl_h_budget(hl_req_t *r);
int hl_h_verify(hl_req_t *r);
int hl_h_verify_content(hl_req_t *r);                  /* content.c */
int hl_h_event_signature(hl_req_t *r, const char *rest); /* content.c: after /v1/events/ */
int hl_h_checkpoints(hl_req_t *r);
int hl_h_evidence(hl_req_t *r);
int hl_h_metrics(hl_req_t *r);
int hl_h_page(hl_req_t *r);
int hl_h_login(hl_req_t *r);
int hl_h_logout(hl_req_t *r);
/* Answers 401 for the page: the login form. */
int hl_h_page_login(hl_req_t *r, const char *note);
/* A whole verification (hl_verify_report of every chain, began at began_us wall time, took
 * took_us) for the page to show, unless the one it holds began later. report is borrowed
 * (copied). Takes status_mu: any thread but one already holding it. */
void hl_page_status_offer(hl_auditor_t *a, json_t *report, int64_t began_us, int64_t took_us);

#endif
