/* `hookline reverify`: a stored event checked against its provider's signature again, long
 * after it arrived: the raw body and the signature headers kept with the row (proto/sql/006),
 * the source's keys from an ingress configuration file, no timestamp tolerance. */
#include <getopt.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "db.h"
#include "hl/sigverify.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/proto.h"
#include "hl/util.h"
#include "verifiers.h"

#define USAGE                                                                                      \
    "usage: hookline reverify --config INGRESS.yaml --source NAME --message-id ID\n"               \
    "                         [--event-type TYPE] [--pg CONNINFO] [--pg-schema NAME]\n"            \
    "  checks the stored raw body of each event of the message against the signature\n"            \
    "  headers stored with it, with the source's secret or public key from the ingress\n"          \
    "  configuration file (read as the ingress reads it); no timestamp tolerance applies.\n"       \
    "exit codes: 0 every event verifies, 1 one does not (or none is stored), 2 usage,\n"           \
    "configuration or connection error\n"

static const char SQL_EVENT[] =
    "SELECT id, event_type, request_id, raw_body, signature_headers::text,"
    " encode(body_sha256, 'hex'), payload::text FROM webhook_events"
    " WHERE source = $1 AND message_id = $2 AND ($3::text IS NULL OR event_type = $3)"
    " ORDER BY id LIMIT 64";

/* Prints when the signature was made, or that the scheme signs no time. */
static void print_signed_at(int64_t ts)
{
    if (ts < 0) {
        printf("  signed at       (the scheme signs no timestamp)\n");
        return;
    }
    time_t tt = (time_t)ts;
    struct tm tm;
    char when[32];
    gmtime_r(&tt, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("  signed at       %s (%" PRId64 "; no tolerance applied)\n", when, ts);
}

/* Prints one event's check (libs/sigverify's, the auditor's too); returns 1 when it holds. */
static int check_event(const hl_sig_t *v, PGresult *res, int t, const char *mid, int signed_id)
{
    printf("event %s (row %s, request %s)\n", PQgetvalue(res, t, 1), PQgetvalue(res, t, 0),
           PQgetvalue(res, t, 2));
    printf("  scheme          %s\n", hl_sig_scheme_name(v->scheme));
    if (PQgetisnull(res, t, 3) || PQgetisnull(res, t, 4)) {
        printf("  signature       not re-verifiable: stored without %s\n",
               PQgetisnull(res, t, 3) ? "its raw body (written before migration 006)"
                                      : "signature headers (written before migration 006)");
        return 0;
    }
    hl_sig_stored_event_t ev = {.signed_json = PQgetvalue(res, t, 4),
                                .body_sha256 = PQgetvalue(res, t, 5),
                                .payload = PQgetisnull(res, t, 6) ? NULL : PQgetvalue(res, t, 6)};
    unsigned char *body =
        PQunescapeBytea((const unsigned char *)PQgetvalue(res, t, 3), &ev.body_len);
    if (!body) hl_die("out of memory");
    ev.body = body;
    hl_sig_stored_check_t r;
    hl_sig_check_stored(v, &ev, mid, signed_id, &r);
    PQfreemem(body);
    printf("  signature       %s\n", !r.headers_ok
                                         ? "malformed_signature (stored headers unreadable)"
                                     : r.signature == HL_SIG_OK ? "ok"
                                                                : hl_sig_code(r.signature));
    print_signed_at(r.signed_ts);
    printf("  body sha256     %s (%s)\n", r.body_sha256,
           r.digest_matches ? "matches the stored digest" : "DIFFERS from the stored digest");
    printf("  payload         %s\n", r.payload_matches < 0
                                         ? "not compared (the raw body is not JSON read here)"
                                     : r.payload_matches == 1 ? "matches the raw body"
                                                              : "DIFFERS from the raw body");
    if (r.has_signed_id)
        printf("  signed id       %s (%s)\n", r.signed_id,
               r.signed_id_matches ? "matches the message id" : "DIFFERS from the message id");
    return hl_sig_stored_ok(&r);
}

/* Runs the query and checks each row. Returns the exit code. */
static int reverify(const char *conninfo, const char *schema, const hl_sig_t *v, int signed_id,
                    const char *source, const char *mid, const char *type)
{
    char err[512];
    PGconn *c = cli_db_open(conninfo, schema, err, sizeof err);
    if (!c) {
        fprintf(stderr, "hookline: reverify: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    const char *p[3] = {source, mid, type};
    PGresult *res = PQexecParams(c, SQL_EVENT, 3, NULL, p, NULL, NULL, 0);
    int code;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        (void)hl_pg_error(c, res, NULL, err, sizeof err);
        fprintf(stderr, "hookline: reverify: %s\n", err);
        code = CLI_EXIT_USAGE;
    } else if (PQntuples(res) == 0) {
        fprintf(stderr,
                "hookline: reverify: no stored event with source '%s', message id '%s'%s%s\n",
                source, mid, type ? ", event type " : "", type ? type : "");
        code = CLI_EXIT_FAIL;
    } else {
        int good = 0;
        for (int t = 0; t < PQntuples(res); t++) good += check_event(v, res, t, mid, signed_id);
        printf("reverify: %s\n", good == PQntuples(res) ? "OK" : "FAILED");
        code = good == PQntuples(res) ? CLI_EXIT_PASS : CLI_EXIT_FAIL;
    }
    PQclear(res);
    PQfinish(c);
    return code;
}

/* True for 1..max bytes without control characters. */
static int id_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

int cli_cmd_reverify(int argc, char **argv)
{
    enum { O_CONFIG = 1, O_SOURCE, O_MID, O_TYPE, O_PG, O_SCHEMA };
    static const struct option opts[] = {{"config", required_argument, NULL, O_CONFIG},
                                         {"source", required_argument, NULL, O_SOURCE},
                                         {"message-id", required_argument, NULL, O_MID},
                                         {"event-type", required_argument, NULL, O_TYPE},
                                         {"pg", required_argument, NULL, O_PG},
                                         {"pg-schema", required_argument, NULL, O_SCHEMA},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *source = NULL, *mid = NULL, *type = NULL, *schema = NULL;
    const char *pg = "host=127.0.0.1 port=55432 dbname=hookline user=hookline connect_timeout=5";
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_CONFIG: config = optarg; break;
        case O_SOURCE: source = optarg; break;
        case O_MID: mid = optarg; break;
        case O_TYPE: type = optarg; break;
        case O_PG: pg = optarg; break;
        case O_SCHEMA: schema = optarg; break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: fputs(USAGE, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc || !config || !source || !mid) {
        fputs("hookline reverify: --config, --source and --message-id are required\n" USAGE,
              stderr);
        return CLI_EXIT_USAGE;
    }
    if (!id_ok(source, HL_SOURCE_MAX) || !id_ok(mid, HL_MESSAGE_ID_MAX) ||
        (type && !id_ok(type, HL_EVENT_TYPE_MAX))) {
        fprintf(stderr,
                "hookline reverify: --source (1..%d bytes), --message-id (1..%d) and --event-type "
                "(1..%d) must be non-empty, within their length and free of control characters\n",
                HL_SOURCE_MAX, HL_MESSAGE_ID_MAX, HL_EVENT_TYPE_MAX);
        return CLI_EXIT_USAGE;
    }
    char err[1024];
    ing_verifiers_t *vs = ing_verifiers_load(config, err, sizeof err);
    if (!vs) {
        fprintf(stderr, "hookline: reverify: %s: %s\n", config, err);
        return CLI_EXIT_USAGE;
    }
    const hl_sig_t *v = ing_verifiers_find(vs, source);
    int code;
    if (!v) {
        fprintf(stderr, "hookline: reverify: source '%s' is not configured in %s\n", source,
                config);
        code = CLI_EXIT_USAGE;
    } else if (v->scheme == HL_SIG_SCHEME_BEARER) {
        fprintf(stderr,
                "hookline: reverify: source '%s' uses bearer tokens: its events carry no "
                "signature to verify again\n",
                source);
        code = CLI_EXIT_USAGE;
    } else {
        code = reverify(pg, schema, v, ing_verifiers_signed_id(vs, source), source, mid, type);
    }
    ing_verifiers_free(vs);
    return code;
}
