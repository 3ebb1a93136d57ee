/* Request ledger: written after a replay, read by `hookline verify --requests`. */
#include "ledger.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "hl/util.h"

#define LEDGER_LINE_CAP 65536

int cli_ledger_write(FILE *out, const cli_workload_t *w)
{
    for (size_t m = 0; m < w->nmsgs; m++) {
        const cli_wl_msg_t *msg = &w->msgs[m];
        for (size_t i = 0; i < msg->nreqs; i++) {
            const cli_wl_req_t *r = &msg->reqs[i];
            json_t *o = json_pack(
                "{s:s,s:s,s:s,s:b,s:i,s:i,s:I,s:s}", "message_id", msg->message_id, "event_type",
                r->event_type, "delivery_id", r->delivery_id ? r->delivery_id : "", "duplicate",
                r->dup_of >= 0, "status", r->out.status, "attempts", r->out.attempts, "latency_us",
                (json_int_t)r->out.latency_us, "request_id", r->out.request_id);
            if (!o) return HL_EIO;
            int rc = json_dumpf(o, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
            json_decref(o);
            if (rc != 0 || fputc('\n', out) == EOF) return HL_EIO;
        }
    }
    return ferror(out) ? HL_EIO : 0;
}

static int fail(char *errbuf, size_t errcap, size_t line, const char *why, int rc)
{
    snprintf(errbuf, errcap, "ledger line %zu: %s", line, why);
    return rc;
}

/* Finds the message for id: the ledger lists each message's requests together, so only the
 * last message needs checking; anything else starts a new message. */
static cli_wl_msg_t *message_for(cli_workload_t *w, const char *id, size_t *cap)
{
    if (w->nmsgs && strcmp(w->msgs[w->nmsgs - 1].message_id, id) == 0)
        return &w->msgs[w->nmsgs - 1];
    if (w->nmsgs == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        w->msgs = hl_xrealloc(w->msgs, *cap * sizeof(cli_wl_msg_t));
    }
    cli_wl_msg_t *m = &w->msgs[w->nmsgs++];
    memset(m, 0, sizeof(*m));
    m->message_id = hl_xstrdup(id);
    return m;
}

int cli_ledger_read(const char *path, cli_workload_t *w, char *errbuf, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errcap, "%s: cannot open", path);
        return HL_EIO;
    }
    char *line = hl_xmalloc(LEDGER_LINE_CAP + 2);
    size_t lineno = 0, cap = 0;
    int rc = 0;
    while (!rc && fgets(line, LEDGER_LINE_CAP + 2, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n > LEDGER_LINE_CAP) {
            rc = fail(errbuf, errcap, lineno, "line over 64 KiB", HL_ETOOBIG);
            break;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (!n) continue;
        if (w->nreqs >= CLI_WL_MAX_COUNT) {
            rc = fail(errbuf, errcap, lineno, "over 10M requests", HL_ETOOBIG);
            break;
        }
        json_t *o = json_loadb(line, n, 0, NULL);
        const char *mid = json_string_value(json_object_get(o, "message_id"));
        const char *type = json_string_value(json_object_get(o, "event_type"));
        const char *rid = json_string_value(json_object_get(o, "request_id"));
        json_t *st = json_object_get(o, "status");
        if (!mid || !*mid || strlen(mid) > CLI_WL_MAX_ID || !type || !rid || strlen(rid) >= 40 ||
            !json_is_integer(st)) {
            json_decref(o);
            rc = fail(errbuf, errcap, lineno,
                      "need message_id, event_type, request_id (strings) and status", HL_EPARSE);
            break;
        }
        cli_wl_msg_t *m = message_for(w, mid, &cap);
        m->reqs = hl_xrealloc(m->reqs, (m->nreqs + 1) * sizeof(cli_wl_req_t));
        cli_wl_req_t *r = &m->reqs[m->nreqs++];
        memset(r, 0, sizeof(*r));
        r->event_type = hl_xstrdup(type);
        r->dup_of = json_is_true(json_object_get(o, "duplicate")) ? 0 : -1;
        if (r->dup_of >= 0) w->ndups++;
        r->out.status = (int)json_integer_value(st);
        (void)hl_strlcpy(r->out.request_id, rid, sizeof(r->out.request_id));
        w->nreqs++;
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (!rc && w->nreqs == 0) {
        snprintf(errbuf, errcap, "%s: empty ledger", path);
        rc = HL_EPARSE;
    }
    if (rc) cli_wl_free(w);
    return rc;
}
