/* The auditor's HTTP entry: one dispatcher for every path it serves, applying the role matrix
 * (auth.c) before any parameter is read, then routing through the handler table. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "hl/httpd.h"
#include "hl/log.h"
#include "hl/util.h"

/* Finds the caller's token: the Authorization header, or for the page the hl_token cookie. */
static unsigned caller_roles(aud_req_t *r, int *malformed)
{
    const char *h = mg_get_header(r->conn, "Authorization");
    const char *tok;
    size_t len;
    char cookie[AUD_TOKEN_MAX + 2];
    *malformed = 0;
    if (h) {
        if (aud_auth_bearer(h, &tok, &len) != 0) {
            *malformed = 1;
            return 0;
        }
        return aud_tokens_roles(&r->a->tokens, tok, len);
    }
    const char *ck = mg_get_header(r->conn, "Cookie");
    if (ck && strcmp(r->method, "GET") == 0 && strcmp(r->path, "/") == 0) {
        int n = mg_get_cookie(ck, "hl_token", cookie, sizeof cookie);
        if (n > 0 && n <= AUD_TOKEN_MAX) return aud_tokens_roles(&r->a->tokens, cookie, (size_t)n);
    }
    return 0;
}

/* Every path and its handler: exact paths take the request alone, prefixes (ending in '/')
 * also what follows the prefix. The role matrix already checked the method for each path. */
static const struct {
    const char *path;
    int (*exact)(aud_req_t *r);
    int (*prefix)(aud_req_t *r, const char *rest);
} routes[] = {
    {"/", aud_h_page, NULL},
    {"/login", aud_h_login, NULL},
    {"/logout", aud_h_logout, NULL},
    {"/metrics", aud_h_metrics, NULL},
    {"/v1/requests", aud_h_requests, NULL},
    {"/v1/requests/", NULL, aud_h_request},
    {"/v1/messages/", NULL, aud_h_message},
    {"/v1/gaps", aud_h_gaps, NULL},
    {"/v1/latency", aud_h_latency, NULL},
    {"/v1/error-budget", aud_h_budget, NULL},
    {"/v1/verify", aud_h_verify, NULL},
    {"/v1/verify/content", aud_h_verify_content, NULL},
    {"/v1/events/", NULL, aud_h_event_signature},
    {"/v1/checkpoints", aud_h_checkpoints, NULL},
    {"/v1/evidence", aud_h_evidence, NULL},
};

static int route(aud_req_t *r)
{
    const char *p = r->path;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        size_t n = strlen(routes[i].path);
        if (routes[i].exact && strcmp(p, routes[i].path) == 0) return routes[i].exact(r);
        if (routes[i].prefix && strncmp(p, routes[i].path, n) == 0)
            return routes[i].prefix(r, p + n);
    }
    return aud_reply_error(r, 404, "not_found", "no such endpoint");
}

static int dispatch(struct mg_connection *conn, void *arg)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    aud_req_t *r = hl_xcalloc(1, sizeof *r);
    int known, malformed, status;
    unsigned need;
    r->conn = conn;
    r->a = arg;
    /* Few of these requests carry a body; a connection that sent one is not kept, so a body
     * left unread (a refused request, a slow client) is never read after the answer. */
    hl_http_close_if_body(conn);
    r->method = ri->request_method;
    r->path = ri->local_uri_raw ? ri->local_uri_raw : ri->local_uri;
    hl_uuid7(r->rid);
    if (!r->path) r->path = "";
    need = aud_auth_required(r->method, r->path, &known);
    if (!known) {
        int other;
        (void)aud_auth_required(strcmp(r->method, "GET") == 0 ? "POST" : "GET", r->path, &other);
        status = other ? aud_reply_error(r, 405, "method_not_allowed", "method not allowed")
                       : aud_reply_error(r, 404, "not_found", "no such endpoint");
        goto out;
    }
    if (need) {
        r->roles = caller_roles(r, &malformed);
        if (r->roles == 0) {
            status = strcmp(r->path, "/") == 0
                         ? aud_h_page_login(r, NULL)
                         : aud_reply_error(r, 401, malformed ? "malformed_token" : "unauthorized",
                                           malformed ? "Authorization must be 'Bearer <token>'"
                                                     : "a valid bearer token is required");
            goto out;
        }
        if (!(r->roles & need)) {
            status = aud_reply_error(r, 403, "forbidden", "this token's roles do not allow this");
            goto out;
        }
    }
    if (aud_req_parse_query(r, ri->query_string) != 0) {
        status = 400;
        goto out;
    }
    status = route(r);
out:
    if (hl_log_enabled(HL_LOG_DEBUG)) {
        char kv[256];
        size_t kl = 0;
        hl_log_kv_str(kv, sizeof kv, &kl, "method", r->method);
        hl_log_kv_str(kv, sizeof kv, &kl, "path", r->path);
        hl_log_kv_int(kv, sizeof kv, &kl, "status", status);
        hl_log_ctx_t ctx = {r->rid, NULL, -1, -1};
        hl_log_write(HL_LOG_DEBUG, &ctx, kv, "http");
    }
    free(r);
    return status > 0 ? status : 500;
}

void aud_api_register(struct hl_httpd *s, aud_state_t *a)
{
    static const char *const uris[] = {"/$", "/login$", "/logout$", "/metrics$", "/v1/", "/v1$"};
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++)
        hl_httpd_handle(s, uris[i], dispatch, a);
}
