/* Fuzzes the auditor's query-string and token handling: the query splitter and decoder, the
 * strict parameter readers (time, integer, limit, cursor, source, ids) of request.c, and the
 * bearer token parser and role matrix of auth.c. request.c is included whole; the HTTP sends
 * it links against are replaced by stubs that record the answered status, which must be 400
 * for every refused value. */
#include "../../services/auditor/request.c"

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

int hl_http_read_body(struct mg_connection *c, void *buf, size_t cap, int64_t deadline_us,
                      size_t *got)
{
    return HL_EIO;
}
PGconn *hl_pg_pool_get(hl_pg_pool_t *p)
{
    return NULL;
}
void hl_pg_pool_put(hl_pg_pool_t *p, PGconn *c, bool broken) {}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static aud_config_t cfg;
    static aud_state_t a;
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
    if (aud_auth_bearer(hdr, &tok, &tlen) == 0 && (tok < hdr || tok + tlen > hdr + hl)) abort();
    int known;
    (void)aud_auth_required("GET", hdr, &known);

    aud_req_t *r = calloc(1, sizeof *r);
    r->a = &a;
    g_status = 0;
    if (aud_req_parse_query(r, qs) != 0) {
        if (g_status != 400) abort();
    } else {
        int64_t v;
        int lim;
        aud_cursor_t cur;
        const char *src;
        g_status = 0;
        if (aud_param_time(r, "from", 0, &v) != 0 && g_status != 400) abort();
        g_status = 0;
        if (aud_param_int(r, "status", 100, 599, 0, &v) != 0 && g_status != 400) abort();
        g_status = 0;
        if (aud_param_limit(r, &lim) != 0 && g_status != 400) abort();
        g_status = 0;
        if (aud_param_cursor(r, &cur) != 0 && g_status != 400) abort();
        g_status = 0;
        if (aud_param_source(r, &src) != 0 && g_status != 400) abort();
        static const char *const allowed[] = {"from", "to", "limit", "cursor", "source", NULL};
        g_status = 0;
        if (aud_req_only(r, allowed) != 0 && g_status != 400) abort();
        for (int i = 0; i < r->nparams; i++) (void)aud_id_valid(r->vals[i], 256);
    }
    free(r);
    free(hdr);
    free(qs);
    return 0;
}
