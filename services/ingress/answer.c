/* A webhook request's record and its answer, written whole with one mg_write. */
#include <stdio.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"
#include "server_impl.h"

void ing_reject(req_t *r, int status, const char *code, const char *message)
{
    r->status = status;
    r->code = code;
    r->message = message;
}

/* Writes the whole answer (status line, headers, body) with one mg_write: civetweb's
 * mg_response_header_* calls send every header line separately, which cost several TCP
 * segments and most of the ingress's CPU per request in profiles. The handler returns the
 * status, so civetweb still logs and counts it. */
static void send_answer(struct mg_connection *c, const req_t *r, const char *body, size_t len)
{
    char out[4096 + 1024 + 6 * ING_MAX_MESSAGE_ID];
    if (r->close) mg_disable_keep_alive(c);
    const char *reason = mg_get_response_code_text(c, r->status);
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "X-Request-Id: %s\r\nCache-Control: no-store\r\n",
                     r->status, reason ? reason : "", len, r->rid);
    if (n > 0 && r->retry_after > 0 && (size_t)n < sizeof(out))
        n += snprintf(out + n, sizeof(out) - (size_t)n, "Retry-After: %d\r\n", r->retry_after);
    if (n > 0 && r->allow != NULL && (size_t)n < sizeof(out))
        n += snprintf(out + n, sizeof(out) - (size_t)n, "Allow: %s\r\n", r->allow);
    if (n > 0 && (size_t)n < sizeof(out))
        n += snprintf(out + n, sizeof(out) - (size_t)n, "Connection: %s\r\n\r\n",
                      r->close ? "close" : "keep-alive");
    if (n < 0 || (size_t)n + len > sizeof(out)) { /* cannot happen with our bodies; stay safe */
        mg_disable_keep_alive(c);
        return;
    }
    memcpy(out + n, body, len);
    mg_write(c, out, (size_t)n + len);
}

void ing_answer(struct mg_connection *c, const req_t *r)
{
    char body[1024 + 6 * ING_MAX_MESSAGE_ID];
    int n;
    if (r->status == 202) {
        char esc[6 * ING_MAX_MESSAGE_ID + 1];
        hl_json_escape(esc, sizeof(esc), r->message_id, strlen(r->message_id));
        n = snprintf(body, sizeof(body),
                     "{\"status\":\"accepted\",\"request_id\":\"%s\",\"message_id\":\"%s\"", r->rid,
                     esc);
        if (n > 0 && (size_t)n < sizeof(body) && r->nelems > 0)
            n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"elements\":%zu", r->nelems);
        if (n > 0 && (size_t)n < sizeof(body))
            n += snprintf(body + n, sizeof(body) - (size_t)n, "}");
    } else {
        n = snprintf(body, sizeof(body),
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"},\"request_id\":\"%s\"}",
                     r->code, r->message, r->rid);
    }
    if (n < 0 || (size_t)n >= sizeof(body)) n = 0;
    send_answer(c, r, body, (size_t)n);
}

void ing_req_init(req_t *r)
{
    memset(r, 0, sizeof(*r));
    hl_uuid7(r->rid);
    r->received_us = hl_now_us();
    r->t0 = hl_mono_us();
    r->partition = -1;
    r->offset = -1;
}

void ing_unavailable(const ing_server_t *s, req_t *r, const char *message)
{
    ing_reject(r, 503, "unavailable", message);
    r->retry_after = (int)s->cfg->retry_after_s;
}
