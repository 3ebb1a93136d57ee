/* One request of the auditor's HTTP API, shared by the handlers and the page: the parsed
 * request, strict query parameters, JSON answers and the database connection it borrows. */
#ifndef AUD_REQUEST_H
#define AUD_REQUEST_H

#include <civetweb.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "auditor.h"
#include "query.h"

#define AUD_API_MAX_PARAMS 16
#define AUD_API_MAX_VALUE 512

typedef struct aud_req {
    struct mg_connection *conn;
    aud_state_t *a;
    const char *method;
    const char *path; /* decoded path, borrowed from civetweb */
    char rid[37];     /* X-Request-Id of this answer */
    unsigned roles;   /* roles of the caller's token, 0 if none */
    int nparams;
    char keys[AUD_API_MAX_PARAMS][32];
    char vals[AUD_API_MAX_PARAMS][AUD_API_MAX_VALUE];
} aud_req_t;

/* Splits and decodes the query string qs (NULL: none) into r's parameters. Returns 0, or
 * answers 400 and returns -1. */
int aud_req_parse_query(aud_req_t *r, const char *qs);
/* The value of query parameter key, or NULL. */
const char *aud_req_param(const aud_req_t *r, const char *key);
/* Answers 400 unknown_parameter and returns -1 if a parameter is not in allowed (NULL-ended). */
int aud_req_only(aud_req_t *r, const char *const *allowed);

/* Strict parameter readers: each answers 400 with a JSON error itself and returns -1 on a bad
 * value; 0 otherwise (def when absent). */
int aud_param_time(aud_req_t *r, const char *key, int64_t def, int64_t *out);
int aud_param_int(aud_req_t *r, const char *key, int64_t min, int64_t max, int64_t def,
                  int64_t *out);
int aud_param_limit(aud_req_t *r, int *out);
int aud_param_cursor(aud_req_t *r, aud_cursor_t *out);
/* A source name: 1..64 of [A-Za-z0-9_.-]; NULL when absent. */
int aud_param_source(aud_req_t *r, const char **out);
/* Parses RFC 3339 UTC ("2026-01-02T03:04:05Z", optional .ffffff) or integer epoch µs. */
int aud_parse_time(const char *s, int64_t *out);
/* True for an id of 1..max bytes without control characters. */
int aud_id_valid(const char *s, size_t max);

int aud_reply_json(aud_req_t *r, int status, json_t *body); /* takes body */
int aud_reply_error(aud_req_t *r, int status, const char *code, const char *msg);
/* 503 when no database connection; returns NULL after answering. */
PGconn *aud_req_db(aud_req_t *r);
void aud_req_db_done(aud_req_t *r, PGconn *c, int failed);
/* Logs err, gives c back as failed and answers 503; returns 503. */
int aud_req_db_fail(aud_req_t *r, PGconn *c, const char *err);
/* Reads a small request body (below cap bytes) into buf, NUL-terminated, within
 * http.request_timeout_ms however slowly it comes. Returns its length, -1 (no length, too
 * large or unreadable), or -2 when it did not arrive in time. */
int aud_req_read_body(aud_req_t *r, char *buf, size_t cap);

#endif
