/* Workload generation: synthetic requests derived only from the seed and options (so two runs
 * with the same options send the same bytes), and captured requests read from ndjson. */
#include "workload.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hl/jsonptr.h"
#include "hl/util.h"

static const char *const event_names[] = {"processed",   "delivered",  "open",   "click",
                                          "unsubscribe", "spamreport", "bounce", "dropped"};

const char *cli_wl_event_type(unsigned i, char *buf, size_t cap)
{
    if (i < sizeof(event_names) / sizeof(event_names[0])) return event_names[i];
    snprintf(buf, cap, "custom.%u", i);
    return buf;
}

/* splitmix64: a tiny, well-mixed generator; the whole workload depends only on its state. */
uint64_t cli_wl_mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int synth_fail(char *errbuf, size_t errcap, int rc, const char *msg)
{
    snprintf(errbuf, errcap, "%s", msg);
    return rc;
}

/* One body: the fields the ingress extracts, a few realistic ones, then padding to size. */
static char *synth_body(const cli_wl_synth_opts_t *o, uint64_t *rng, const char *mid,
                        const char *type, unsigned ev, size_t *len)
{
    char head[768];
    uint64_t r = cli_wl_mix64(rng);
    /* Both spellings of the event type: "type" is the Standard Webhooks payload convention,
     * "eventType" the ingress's default pointer. */
    int n = snprintf(head, sizeof(head),
                     "{\"type\":\"%s\",\"messageId\":\"%s\",\"eventType\":\"%s\",\"sequence\":%u,"
                     "\"timestamp\":%llu,\"data\":{\"email\":\"user%llu@example.com\"},\"pad\":\"",
                     type, mid, type, ev, (unsigned long long)(1700000000u + (r % 86400u)),
                     (unsigned long long)(r % 1000000u));
    size_t hn = (size_t)n, tail = 2; /* `"}` */
    size_t pad = o->payload_bytes > hn + tail ? o->payload_bytes - hn - tail : 0;
    char *b = hl_xmalloc(hn + pad + tail + 1);
    memcpy(b, head, hn);
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (size_t i = 0; i < pad; i++) {
        if ((i & 7) == 0) r = cli_wl_mix64(rng);
        b[hn + i] = alpha[(r >> ((i & 7) * 8)) % 36];
    }
    memcpy(b + hn + pad, "\"}", 3);
    *len = hn + pad + tail;
    return b;
}

int cli_wl_synth(const cli_wl_synth_opts_t *o, cli_workload_t *w, char *errbuf, size_t errcap)
{
    if (o->count == 0 || o->count > CLI_WL_MAX_COUNT)
        return synth_fail(errbuf, errcap, HL_EINVAL, "--count must be 1..10000000");
    if (o->events_per_message == 0 || o->events_per_message > CLI_WL_MAX_EVENTS_PER_MESSAGE)
        return synth_fail(errbuf, errcap, HL_EINVAL, "--events-per-message must be 1..64");
    if (!(o->duplicate_ratio >= 0.0 && o->duplicate_ratio <= 1.0))
        return synth_fail(errbuf, errcap, HL_EINVAL, "--duplicate-ratio must be 0..1");
    if (o->payload_bytes > CLI_WL_MAX_PAYLOAD)
        return synth_fail(errbuf, errcap, HL_ETOOBIG, "--payload-bytes over 1 MiB");
    if ((uint64_t)o->count * (o->payload_bytes + 256u) > CLI_WL_MAX_TOTAL_BYTES)
        return synth_fail(errbuf, errcap, HL_ETOOBIG, "--count x --payload-bytes over 1 GiB");
    const char *run = o->run_id ? o->run_id : "run";
    if (strlen(run) > 64) return synth_fail(errbuf, errcap, HL_EINVAL, "--run-id over 64 bytes");

    uint64_t rng = o->seed;
    size_t epm = o->events_per_message;
    w->nmsgs = (o->count + epm - 1) / epm;
    w->msgs = hl_xcalloc(w->nmsgs, sizeof(cli_wl_msg_t));
    /* A duplicate is chosen by comparing a draw with the ratio scaled to 2^53. */
    uint64_t dup_cut = (uint64_t)(o->duplicate_ratio * 9007199254740992.0);
    size_t left = o->count;
    for (size_t m = 0; m < w->nmsgs; m++) {
        cli_wl_msg_t *msg = &w->msgs[m];
        char mid[128], tb[32];
        snprintf(mid, sizeof(mid), "%s-%llu-m%zu", run, (unsigned long long)o->seed, m);
        msg->message_id = hl_xstrdup(mid);
        size_t nev = left < epm ? left : epm;
        left -= nev;
        msg->reqs = hl_xcalloc(nev * 2, sizeof(cli_wl_req_t));
        for (size_t e = 0; e < nev; e++) {
            const char *type = cli_wl_event_type((unsigned)e, tb, sizeof(tb));
            cli_wl_req_t *rq = &msg->reqs[msg->nreqs];
            rq->body = synth_body(o, &rng, mid, type, (unsigned)e, &rq->body_len);
            rq->event_type = hl_xstrdup(type);
            /* The delivery id (webhook-id) is the message id: sources may take the message id
             * from that header, and a resend carries the same one. */
            const char *did = mid;
            rq->delivery_id = hl_xstrdup(did);
            rq->dup_of = -1;
            size_t orig = msg->nreqs++;
            if ((cli_wl_mix64(&rng) >> 11) < dup_cut) {
                /* The provider resends the same delivery after its 202: same id, same bytes. */
                cli_wl_req_t *d = &msg->reqs[msg->nreqs++];
                d->body = rq->body;
                d->body_len = rq->body_len;
                d->event_type = hl_xstrdup(type);
                d->delivery_id = hl_xstrdup(did);
                d->dup_of = (int)orig;
                w->ndups++;
            }
        }
        w->nreqs += msg->nreqs;
    }
    return 0;
}

/* Frees what one request owns; a duplicate's body is its original's. */
static void req_free(cli_wl_req_t *r)
{
    if (r->dup_of < 0) free(r->body);
    free(r->event_type);
    free(r->delivery_id);
    for (size_t h = 0; h < r->nheaders; h++) {
        free((char *)r->headers[h].name);
        free((char *)r->headers[h].value);
    }
    free(r->headers);
}

void cli_wl_free(cli_workload_t *w)
{
    for (size_t m = 0; m < w->nmsgs; m++) {
        cli_wl_msg_t *msg = &w->msgs[m];
        for (size_t i = 0; i < msg->nreqs; i++) req_free(&msg->reqs[i]);
        free(msg->reqs);
        free(msg->message_id);
    }
    free(w->msgs);
    memset(w, 0, sizeof(*w));
}

/* Index of message ids seen so far (open addressing) so that events group by message in
 * O(1) per line. */
typedef struct {
    size_t *slots; /* message index + 1, 0 = empty */
    size_t cap;
} id_index_t;

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t index_find(id_index_t *ix, cli_workload_t *w, const char *mid)
{
    if (w->nmsgs * 2 >= ix->cap) {
        size_t ncap = ix->cap ? ix->cap * 2 : 1024;
        size_t *ns = hl_xcalloc(ncap, sizeof(size_t));
        for (size_t i = 0; i < ix->cap; i++)
            if (ix->slots[i]) {
                size_t j = hash_str(w->msgs[ix->slots[i] - 1].message_id) & (ncap - 1);
                while (ns[j]) j = (j + 1) & (ncap - 1);
                ns[j] = ix->slots[i];
            }
        free(ix->slots);
        ix->slots = ns;
        ix->cap = ncap;
    }
    size_t j = hash_str(mid) & (ix->cap - 1);
    while (ix->slots[j]) {
        if (strcmp(w->msgs[ix->slots[j] - 1].message_id, mid) == 0) return ix->slots[j] - 1;
        j = (j + 1) & (ix->cap - 1);
    }
    w->msgs = hl_xrealloc(w->msgs, (w->nmsgs + 1) * sizeof(cli_wl_msg_t));
    memset(&w->msgs[w->nmsgs], 0, sizeof(cli_wl_msg_t));
    w->msgs[w->nmsgs].message_id = hl_xstrdup(mid);
    ix->slots[j] = ++w->nmsgs;
    return w->nmsgs - 1;
}

static int line_fail(char *errbuf, size_t errcap, int rc, size_t line, const char *why)
{
    snprintf(errbuf, errcap, "line %zu: %s", line, why);
    return rc;
}

/* Parses one captured request into rq; *mid receives the message id (borrowed from root). */
static const char *captured(const cli_wl_req_t *rq, const char *name)
{
    for (size_t i = 0; name && i < rq->nheaders; i++)
        if (strcasecmp(rq->headers[i].name, name) == 0) return rq->headers[i].value;
    return NULL;
}

static int parse_line(json_t *root, const cli_wl_input_opts_t *o, cli_wl_req_t *rq, char *mid,
                      const char **why)
{
    json_t *body = json_object_get(root, "body");
    json_t *hdrs = json_object_get(root, "headers");
    if (!json_is_object(root) || !body) return (*why = "need an object with \"body\""), HL_EPARSE;
    if (hdrs && !json_is_object(hdrs)) return (*why = "\"headers\" must be an object"), HL_EPARSE;
    if (json_is_string(body)) {
        rq->body_len = json_string_length(body);
        rq->body = hl_xmalloc(rq->body_len + 1);
        memcpy(rq->body, json_string_value(body), rq->body_len + 1);
    } else if (json_is_object(body) || json_is_array(body)) {
        rq->body = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!rq->body) return (*why = "body cannot be serialized"), HL_EPARSE;
        rq->body_len = strlen(rq->body);
    } else {
        return (*why = "\"body\" must be a string or an object"), HL_EPARSE;
    }
    if (hdrs) {
        if (json_object_size(hdrs) > CLI_WL_MAX_HEADERS)
            return (*why = "over 32 headers"), HL_ETOOBIG;
        rq->headers = hl_xcalloc(json_object_size(hdrs) + 1, sizeof(cli_http_header_t));
        const char *k;
        json_t *v;
        json_object_foreach(hdrs, k, v)
        {
            if (!json_is_string(v)) return (*why = "header values must be strings"), HL_EPARSE;
            if (strlen(k) > 256 || json_string_length(v) > 8192)
                return (*why = "header over its size limit"), HL_ETOOBIG;
            if (!*k || strpbrk(k, "\r\n: ") || strpbrk(json_string_value(v), "\r\n"))
                return (*why = "header with a line break or a bad name"), HL_EPARSE;
            /* Content-Length and Host are the client's own business. */
            if (strcasecmp(k, "content-length") == 0 || strcasecmp(k, "host") == 0) continue;
            rq->headers[rq->nheaders].name = hl_xstrdup(k);
            rq->headers[rq->nheaders].value = hl_xstrdup(json_string_value(v));
            rq->nheaders++;
        }
    }
    json_t *parsed = json_loadb(rq->body, rq->body_len, 0, NULL);
    json_t *t = parsed ? hl_jsonptr_get(parsed, o->type_ptr) : NULL;
    const char *id = NULL;
    if (o->msg_header) {
        id = captured(rq, o->msg_header);
    } else {
        json_t *m = parsed ? hl_jsonptr_get(parsed, o->msg_ptr) : NULL;
        id = json_is_string(m) ? json_string_value(m) : NULL;
    }
    int rc = 0;
    if (!id || !*id) {
        *why = o->msg_header ? "no message id header" : "body has no message id at the pointer";
        rc = HL_EPARSE;
    } else if (strlen(id) > CLI_WL_MAX_ID) {
        *why = "message id over " HL_PROTO_STR(HL_MESSAGE_ID_MAX) " bytes";
        rc = HL_ETOOBIG;
    }
    if (!rc) {
        memcpy(mid, id, strlen(id) + 1);
        rq->event_type = hl_xstrdup(json_is_string(t) ? json_string_value(t) : "");
        /* A captured delivery id is kept so a resend is recognisable as one. */
        const char *did = captured(rq, "webhook-id");
        if (!did) did = captured(rq, "svix-id");
        rq->delivery_id = hl_xstrdup(did ? did : mid);
    }
    json_decref(parsed);
    return rc;
}

int cli_wl_read_ndjson(const char *path, const cli_wl_input_opts_t *o, cli_workload_t *w,
                       char *errbuf, size_t errcap)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errcap, "%s: cannot open", path);
        return HL_EIO;
    }
    char *line = hl_xmalloc(CLI_WL_MAX_LINE + 2);
    id_index_t ix = {0};
    size_t lineno = 0;
    uint64_t total = 0;
    int rc = 0;
    while (fgets(line, CLI_WL_MAX_LINE + 2, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n > CLI_WL_MAX_LINE) {
            rc = line_fail(errbuf, errcap, HL_ETOOBIG, lineno, "line over 2 MiB");
            break;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        json_error_t je;
        json_t *root = json_loadb(line, n, 0, &je);
        if (!root) {
            rc = line_fail(errbuf, errcap, HL_EPARSE, lineno, "not JSON");
            break;
        }
        cli_wl_req_t rq = {.dup_of = -1};
        char mid[CLI_WL_MAX_ID + 1];
        const char *why = "";
        rc = parse_line(root, o, &rq, mid, &why);
        json_decref(root);
        total += rq.body_len;
        if (!rc && (w->nreqs >= CLI_WL_MAX_COUNT || total > CLI_WL_MAX_TOTAL_BYTES)) {
            why = "input over 10M requests or 1 GiB of bodies";
            rc = HL_ETOOBIG;
        }
        if (rc) {
            req_free(&rq);
            rc = line_fail(errbuf, errcap, rc, lineno, why);
            break;
        }
        size_t mi = index_find(&ix, w, mid); /* may move w->msgs */
        cli_wl_msg_t *msg = &w->msgs[mi];
        msg->reqs = hl_xrealloc(msg->reqs, (msg->nreqs + 1) * sizeof(cli_wl_req_t));
        msg->reqs[msg->nreqs++] = rq;
        w->nreqs++;
    }
    if (!rc && ferror(f)) rc = line_fail(errbuf, errcap, HL_EIO, lineno, "read error");
    if (!rc && w->nreqs == 0) {
        snprintf(errbuf, errcap, "%s: no requests", path);
        rc = HL_EPARSE;
    }
    free(ix.slots);
    free(line);
    if (f != stdin) fclose(f);
    if (rc) cli_wl_free(w);
    return rc;
}
