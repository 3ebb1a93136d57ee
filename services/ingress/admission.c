/* Connections and bodies counted per client address: a cap on each address's connections, a
 * client table of bounded size, the memory of the bodies in flight (in total and per
 * address), and civetweb's own refusals answered in the ingress's JSON shape. */
#include <stdatomic.h>
#include <string.h>

#include "hl/log.h"
#include "server_impl.h"

/* Is c's connection data a slot of the client table (not a refusal mark)? */
static ing_client_t *client_slot(const ing_server_t *s, const struct mg_connection *c)
{
    void *data = mg_get_user_connection_data(c);
    return data == &s->refused || data == &s->table_full ? NULL : data;
}

/* Reserves the memory the body may take (its Content-Length, or max_body when chunked) against
 * max_body_memory_mb, for all requests together, and against its address's share of it
 * (max_body_memory_per_client_pct): a few addresses sending slowly cannot hold the whole cap
 * for request_timeout_ms. False with r answered 503 past either. */
bool ing_body_reserve(ing_server_t *s, struct mg_connection *c, req_t *r, long long content_length)
{
    size_t max = r->src->cfg->max_body;
    size_t want =
        content_length >= 0 && (size_t)content_length < max ? (size_t)content_length : max;
    ing_client_t *slot = client_slot(s, c);
    if (slot != NULL &&
        !ing_clients_body_reserve(&s->clients, slot, want, s->body_cap_per_client)) {
        hl_counter_inc(s->body_per_client_total);
        ing_unavailable(s, r, "this address's bodies in flight over its share of the memory cap");
        return false;
    }
    if (atomic_fetch_add(&s->body_bytes, (long long)want) + (long long)want > s->body_cap) {
        atomic_fetch_sub(&s->body_bytes, (long long)want);
        if (slot != NULL) ing_clients_body_release(&s->clients, slot, want);
        ing_unavailable(s, r, "bodies in flight over the memory cap");
        return false;
    }
    r->body_reserved = want;
    r->client = slot;
    hl_gauge_add(s->body_bytes_g, (int64_t)want);
    return true;
}

void ing_body_release(ing_server_t *s, req_t *r)
{
    atomic_fetch_sub(&s->body_bytes, (long long)r->body_reserved);
    if (r->client != NULL) ing_clients_body_release(&s->clients, r->client, r->body_reserved);
    hl_gauge_add(s->body_bytes_g, -(int64_t)r->body_reserved);
    r->body_reserved = 0;
    r->client = NULL;
}

/* Was c turned away for its address's connection cap? */
static bool conn_refused(const ing_server_t *s, const struct mg_connection *c)
{
    return mg_get_user_connection_data(c) == &s->refused;
}

/* Counts a connection from addr against max_connections_per_client. Returns what its
 * connection data is to be: its address's slot, &s->refused over the cap, or &s->table_full
 * when the address found no slot in the client table. Worker thread. */
static void *count_connection(ing_server_t *s, const char *addr)
{
    bool full = false;
    ing_client_t *slot = ing_clients_connect(&s->clients, addr, s->cfg->max_connections_per_client,
                                             hl_mono_us() * 1000, &full);
    if (slot != NULL) return slot;
    if (full) {
        hl_counter_inc(s->table_full_total);
        return &s->table_full;
    }
    hl_counter_inc(s->refused_total);
    return &s->refused;
}

/* Was c turned away, for its address's cap or a full client table? */
static bool conn_turned_away(const ing_server_t *s, const struct mg_connection *c)
{
    return conn_refused(s, c) || mg_get_user_connection_data(c) == &s->table_full;
}

/* The 503 a connection turned away gets when its request arrived before its read was cut. */
static void turned_away(ing_server_t *s, const struct mg_connection *c, req_t *r)
{
    ing_unavailable(s, r,
                    conn_refused(s, c) ? "too many connections from this address"
                                       : "too many client addresses at once");
    r->code = conn_refused(s, c) ? "too_many_connections" : "too_many_clients";
}

/* The request info's offset in a connection is believed only within this bound, and no longer
 * once a request finds its info elsewhere or its address differs from the one counted. */
#define REQUEST_INFO_OFFSET_MAX (64 * 1024)
#define REQUEST_INFO_OFFSET_DISTRUSTED (-2)

/* A connection taken by a worker, before any request: counted against its address's cap, and
 * one over it gets no wait for its headers (hl_http_expire_headers), so it frees the worker at
 * once instead of holding it for request_timeout_ms. civetweb gives no request info before
 * the first request (mg_get_request_info is NULL, and no other call of its API names the peer),
 * though the address is known: it is read where the request info lies within the connection,
 * an offset learnt from civetweb itself at the first request (ing_request_begin), which checks
 * every later request against it. Connections that come before it, or after it was found
 * wrong, are counted there. */
void ing_conn_open(void *arg, const struct mg_connection *c, void **conn_data)
{
    ing_server_t *s = arg;
    long off = atomic_load(&s->request_info_offset);
    if (off < 0) return;
    const struct mg_request_info *ri = (const void *)((const char *)c + off);
    if (memchr(ri->remote_addr, '\0', sizeof(ri->remote_addr)) == NULL || !ri->remote_addr[0])
        return;
    *conn_data = count_connection(s, ri->remote_addr); /* civetweb stores it after we return */
    if (*conn_data == &s->refused || *conn_data == &s->table_full) hl_http_expire_headers(c);
}

/* Checks what ing_conn_open relied on against c's first request: the request info at the
 * learnt offset, and the address counted being the request's. Learns the offset the first time.
 * On any mismatch the offset is never read again, and a connection counted under another
 * address is counted anew under its own. */
static void check_request_info(ing_server_t *s, struct mg_connection *c,
                               const struct mg_request_info *ri)
{
    long off = (long)((const char *)ri - (const char *)c);
    bool inside = off >= 0 && off <= REQUEST_INFO_OFFSET_MAX;
    long want = ING_REQUEST_INFO_OFFSET_UNKNOWN;
    if (atomic_compare_exchange_strong(&s->request_info_offset, &want,
                                       inside ? off : REQUEST_INFO_OFFSET_DISTRUSTED))
        return;
    ing_client_t *slot = client_slot(s, c);
    bool same_addr = slot == NULL || strcmp(slot->addr, ri->remote_addr) == 0;
    if (want == off && same_addr) return;
    if (want >= 0) {
        atomic_store(&s->request_info_offset, REQUEST_INFO_OFFSET_DISTRUSTED);
        hl_warn("civetweb's request info is not where it was learnt: connections are counted "
                "from their first request on");
    }
    if (!same_addr) {
        ing_clients_disconnect(&s->clients, slot);
        mg_set_user_connection_data(c, NULL);
    }
}

/* A request's headers are in: checks the request info's offset, counts a connection that was
 * not counted at its start, and answers 503 to a refused connection whose request arrived
 * before its read was cut. */
int ing_request_begin(void *arg, struct mg_connection *c)
{
    ing_server_t *s = arg;
    const struct mg_request_info *ri = mg_get_request_info(c);
    if (ri != NULL && atomic_load(&s->request_info_offset) != REQUEST_INFO_OFFSET_DISTRUSTED)
        check_request_info(s, c, ri);
    if (ri != NULL && mg_get_user_connection_data(c) == NULL)
        mg_set_user_connection_data(c, count_connection(s, ri->remote_addr));
    if (!conn_turned_away(s, c)) return 0;
    req_t r;
    ing_req_init(&r);
    turned_away(s, c, &r);
    r.close = true;
    ing_answer(c, &r);
    ing_count_status(&s->unknown, r.status);
    return r.status;
}

void ing_conn_close(void *arg, const struct mg_connection *c)
{
    ing_server_t *s = arg;
    ing_clients_disconnect(&s->clients, client_slot(s, c));
}

/* civetweb's own refusals (headers too large, malformed request line, …) get the same JSON
 * error shape and a request id. Headers that did not arrive in time, which civetweb reports as
 * a malformed message, get 408. */
int ing_refuse(void *arg, struct mg_connection *c, int status)
{
    ing_server_t *s = arg;
    req_t r;
    ing_req_init(&r);
    if (conn_turned_away(s, c)) {
        turned_away(s, c, &r);
    } else if (status == 400 && hl_http_headers_timed_out(c)) {
        ing_reject(&r, 408, "request_timeout", "headers not received in time");
    } else {
        const char *code = status == 413 || status == 431 ? "headers_too_large"
                           : status == 408                ? "request_timeout"
                                                          : "bad_request";
        ing_reject(&r, status, code, "request refused by the HTTP server");
    }
    r.close = true;
    ing_answer(c, &r);
    ing_count_status(&s->unknown, r.status);
    return 0;
}
