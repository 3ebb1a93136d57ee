/* Fuzzes the auditor's query-string and token handling: the query splitter and decoder, the
 * strict parameter readers (time, integer, limit, cursor, source, ids) of api.c, and the
 * bearer token parser and role matrix of auth.c. api.c is included whole so its static query
 * splitter is reachable; the HTTP sends and handlers it links against are replaced by stubs
 * that record the answered status, which must be 400 for every refused value. */
#include "../../services/auditor/api.c"

#include <stdint.h>
#include <stdlib.h>

static int g_status;

int hl_http_send(struct mg_connection *c, int status, const char *content_type,
                 const char *request_id, const char *extra_headers, const char *body,
                 size_t body_len)
{
    g_status = status;
    return 0;
}

int hl_http_error(struct mg_connection *c, int status, const char *code, const char *message,
                  const char *request_id, const char *extra_headers)
{
    g_status = status;
    return 0;
}

void hl_httpd_handle(hl_httpd_t *s, const char *uri, mg_request_handler fn, void *arg) {}
PGconn *hl_pg_pool_get(hl_pg_pool_t *p) { return NULL; }
void hl_pg_pool_put(hl_pg_pool_t *p, PGconn *c, bool broken) {}

#define STUB_HANDLER(name) \
    int name(hl_req_t *r) { return 0; }
STUB_HANDLER(hl_h_requests)
STUB_HANDLER(hl_h_gaps)
STUB_HANDLER(hl_h_latency)
STUB_HANDLER(hl_h_budget)
STUB_HANDLER(hl_h_verify)
STUB_HANDLER(hl_h_checkpoints)
STUB_HANDLER(hl_h_metrics)
STUB_HANDLER(hl_h_page)
STUB_HANDLER(hl_h_login)
STUB_HANDLER(hl_h_logout)
int hl_h_request(hl_req_t *r, const char *id) { return 0; }
int hl_h_message(hl_req_t *r, const char *id) { return 0; }
int hl_h_page_login(hl_req_t *r, const char *note) { return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hl_auditor_config_t cfg;
    static hl_auditor_t a;
    if (size > 8192) return 0;
    cfg.page_limit_max = 1000;
    a.cfg = &cfg;
    /* First line: an Authorization header value; the rest: the query string. */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hl = nl ? (size_t)(nl - data) : 0;
    char *hdr = malloc(hl + 1), *qs = malloc(size - hl + 1);
    memcpy(hdr, data, hl);
    hdr[hl] = '\0';
    size_t ql = nl ? size - hl - 1 : size;
    memcpy(qs, nl ? nl + 1 : data, ql);
    qs[ql] = '\0';

    const char *tok;
    size_t tlen;
    if (hl_auth_bearer(hdr, &tok, &tlen) == 0 && (tok < hdr || tok + tlen > hdr + hl)) abort();
    int known;
    (void)hl_auth_required("GET", hdr, &known);

    hl_req_t *r = calloc(1, sizeof *r);
    r->a = &a;
    g_status = 0;
    if (parse_query(r, qs) != 0) {
        if (g_status != 400) abort();
    } else {
        int64_t v;
        int lim;
        hl_cursor_t cur;
        const char *src;
        g_status = 0;
        if (hl_param_time(r, "from", 0, &v) != 0 && g_status != 400) abort();
        g_status = 0;
        if (hl_param_int(r, "status", 100, 599, 0, &v) != 0 && g_status != 400) abort();
        g_status = 0;
        if (hl_param_limit(r, &lim) != 0 && g_status != 400) abort();
        g_status = 0;
        if (hl_param_cursor(r, &cur) != 0 && g_status != 400) abort();
        g_status = 0;
        if (hl_param_source(r, &src) != 0 && g_status != 400) abort();
        static const char *const allowed[] = {"from", "to", "limit", "cursor", "source", NULL};
        g_status = 0;
        if (hl_req_only(r, allowed) != 0 && g_status != 400) abort();
        for (int i = 0; i < r->nparams; i++) (void)hl_id_valid(r->vals[i], 256);
    }
    free(r);
    free(hdr);
    free(qs);
    return 0;
}
