/* Connection options shared by the subcommands, and the small subcommands `verify` and
 * `lineage`. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hl/util.h"
#include "http_client.h"
#include "ledger.h"
#include "results.h"

#define DEFAULT_PG "host=127.0.0.1 port=55432 dbname=hookline user=hookline connect_timeout=5"

int cli_opt_i64(const char *name, const char *arg, int64_t min, int64_t max, int64_t *out)
{
    if (hl_parse_i64(arg, min, max, out) == 0) return 0;
    fprintf(stderr, "hookline: --%s '%s': need an integer in [%lld, %lld]\n", name, arg,
            (long long)min, (long long)max);
    return -1;
}

int cli_opt_double(const char *name, const char *arg, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno == 0 && end != arg && *end == '\0' && isfinite(v) && v >= min && v <= max) {
        *out = v;
        return 0;
    }
    fprintf(stderr, "hookline: --%s '%s': need a number in [%g, %g]\n", name, arg, min, max);
    return -1;
}

void cli_conn_opts_defaults(cli_conn_opts_t *c)
{
    memset(c, 0, sizeof(*c));
    c->pg = DEFAULT_PG;
    c->source = "demo";
    c->auditor_url = "http://127.0.0.1:8090";
    c->auditor_token_env = "HOOKLINE_AUDITOR_TOKEN";
    c->lineage_path = "/v1/requests/";
    c->settle_timeout_ms = 60000;
}

int cli_conn_opt(cli_conn_opts_t *c, int ch, const char *arg)
{
    int64_t v;
    switch (ch) {
    case OPT_PG: c->pg = arg; return 1;
    case OPT_PG_SCHEMA: c->pg_schema = arg; return 1;
    case OPT_SOURCE:
        if (!*arg || strlen(arg) > 64 || strpbrk(arg, "/?#% ")) {
            fprintf(stderr, "hookline: --source '%s': 1..64 characters without / ? # %% or space\n",
                    arg);
            return -1;
        }
        c->source = arg;
        return 1;
    case OPT_AUDITOR: c->auditor_url = arg; return 1;
    case OPT_AUDITOR_TOKEN_FILE: c->auditor_token_file = arg; return 1;
    case OPT_AUDITOR_TOKEN_ENV: c->auditor_token_env = arg; return 1;
    case OPT_LINEAGE_PATH:
        if (arg[0] != '/' || strlen(arg) > 128) {
            fprintf(stderr, "hookline: --lineage-path must start with / and be under 128 bytes\n");
            return -1;
        }
        c->lineage_path = arg;
        return 1;
    case OPT_SETTLE:
        if (cli_opt_i64("settle-timeout-ms", arg, 0, 3600000, &v)) return -1;
        c->settle_timeout_ms = (int)v;
        return 1;
    case OPT_NO_AUDITOR: c->no_auditor = 1; return 1;
    case OPT_LINEAGE_VIA:
        if (strcmp(arg, "db") && strcmp(arg, "api")) {
            fprintf(stderr, "hookline: --lineage-via must be db or api\n");
            return -1;
        }
        c->lineage_via_api = strcmp(arg, "api") == 0;
        return 1;
    default: return 0;
    }
}

int cli_conn_opts_finish(cli_conn_opts_t *c)
{
    if (cli_http_parse_url(c->auditor_url, c->auditor_host, sizeof(c->auditor_host),
                           &c->auditor_port) != 0) {
        fprintf(stderr, "hookline: --auditor '%s': need http://host:port\n", c->auditor_url);
        return CLI_EXIT_USAGE;
    }
    if (c->no_auditor) return 0;
    const char *env = c->auditor_token_env ? getenv(c->auditor_token_env) : NULL;
    size_t len = 0;
    c->token_from[0] = '\0';
    if (c->auditor_token_file) {
        if (hl_read_file(c->auditor_token_file, 4096, &c->auditor_token, &len) != 0) {
            fprintf(stderr, "hookline: --auditor-token-file %s: cannot read (or over 4 KiB)\n",
                    c->auditor_token_file);
            return CLI_EXIT_USAGE;
        }
        snprintf(c->token_from, sizeof(c->token_from), "--auditor-token-file %s",
                 c->auditor_token_file);
    } else if (env && *env) {
        c->auditor_token = hl_xstrdup(env);
        snprintf(c->token_from, sizeof(c->token_from), "$%s", c->auditor_token_env);
    } else if (hl_read_file(".hookline/auditor-token", 4096, &c->auditor_token, &len) == 0) {
        snprintf(c->token_from, sizeof(c->token_from), ".hookline/auditor-token");
    } else if (hl_read_file(CLI_DEMO_TOKEN_FILE, 4096, &c->auditor_token, &len) == 0) {
        snprintf(c->token_from, sizeof(c->token_from), "%s (the local stack's demo token)",
                 CLI_DEMO_TOKEN_FILE);
    } else {
        c->auditor_token = hl_xstrdup(""); /* the auditor will say 401, explained then */
    }
    /* A token file normally ends with a newline that is not part of the token. */
    len = strlen(c->auditor_token);
    while (len && (c->auditor_token[len - 1] == '\n' || c->auditor_token[len - 1] == '\r'))
        c->auditor_token[--len] = '\0';
    if (strpbrk(c->auditor_token, "\r\n") || len > 512) {
        fprintf(stderr, "hookline: auditor token: one line of at most 512 bytes\n");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

void cli_conn_token_advice(const cli_conn_opts_t *c, FILE *out)
{
    if (c->token_from[0])
        fprintf(out,
                "hookline: the auditor refused the token from %s: pass one with the auditor"
                " role (--auditor-token-file FILE or $HOOKLINE_AUDITOR_TOKEN)\n",
                c->token_from);
    else
        fprintf(out,
                "hookline: no auditor token found ($%s, .hookline/auditor-token, %s): pass"
                " one with --auditor-token-file FILE or $HOOKLINE_AUDITOR_TOKEN\n",
                c->auditor_token_env ? c->auditor_token_env : "HOOKLINE_AUDITOR_TOKEN",
                CLI_DEMO_TOKEN_FILE);
}

int cli_request_id_problem(const char *s, char *why, size_t cap)
{
    static const char shape[] = "a request id is a UUID: 8-4-4-4-12 hex digits with dashes, as"
                                " the ingress answers it in request_id";
    size_t n = strlen(s);
    if (hl_uuid_valid(s)) return 0;
    if (n != HL_UUID_STR_LEN) {
        snprintf(why, cap, "it has %zu characters, not 36 (%s)", n, shape);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash && ch != '-') {
            snprintf(why, cap, "character %zu should be '-' (%s)", i + 1, shape);
            return -1;
        }
        if (!dash && !strchr("0123456789abcdefABCDEF", ch)) {
            snprintf(why, cap, "character %zu ('%c') is not a hex digit (%s)", i + 1, ch, shape);
            return -1;
        }
    }
    snprintf(why, cap, "it mixes upper- and lower-case hex digits (%s)", shape);
    return -1;
}

void cli_conn_opts_free(cli_conn_opts_t *c)
{
    free(c->auditor_token);
    c->auditor_token = NULL;
}

void cli_conn_verify_opts(const cli_conn_opts_t *c, cli_verify_opts_t *v, uint64_t seed)
{
    *v = (cli_verify_opts_t){.conninfo = c->pg,
                             .schema = c->pg_schema,
                             .source = c->source,
                             .settle_timeout_ms = c->settle_timeout_ms,
                             .no_auditor = c->no_auditor,
                             .auditor_host = c->auditor_host,
                             .auditor_port = c->auditor_port,
                             .auditor_token = c->auditor_token,
                             .lineage_path = c->lineage_path,
                             .message_path = "/v1/messages/",
                             .lineage_via_api = c->lineage_via_api,
                             .auditor_concurrency = 8,
                             .seed = seed,
                             .sample = 10};
}

static void print_verify(FILE *out, const cli_verify_report_t *v, int no_auditor)
{
    fprintf(out, "  accepted events        %lld\n", (long long)v->expected_events);
    fprintf(out, "  stored                 %lld\n", (long long)v->stored_events);
    fprintf(out, "  missing rows (gaps)    %lld\n", (long long)v->missing_rows);
    fprintf(out, "  duplicate rows         %lld\n", (long long)v->duplicate_rows);
    fprintf(out, "  idempotency violations %lld\n", (long long)v->idempotency_violations);
    fprintf(out, "  ordering violations    %lld\n", (long long)v->ordering_violations);
    if (no_auditor)
        fprintf(out, "  lineage coverage       skipped (--no-auditor)\n");
    else
        fprintf(out, "  lineage coverage       %.3f %% (%lld of %lld request ids)\n",
                v->lineage_coverage * 100.0, (long long)v->lineage_complete,
                (long long)v->lineage_checked);
    if (v->auditor_gaps >= 0)
        fprintf(out, "  auditor gaps           %lld\n", (long long)v->auditor_gaps);
    if (!no_auditor)
        fprintf(out, "  chain verification     %s\n",
                v->chains_failed < 0    ? "not answered"
                : v->chains_failed == 0 ? "ok (held to the checkpoint topic)"
                                        : "FAILED (see the auditor's GET /v1/verify)");
    if (v->chains_failed > 0) {
        size_t i;
        json_t *ch;
        json_array_foreach(json_object_get(v->chain_verify, "chains"), i, ch)
        {
            json_t *b = json_object_get(ch, "first_bad");
            if (!json_is_object(b)) continue;
            fprintf(out, "    chain %lld: first bad row id %lld seq %lld: %s\n",
                    (long long)json_integer_value(json_object_get(ch, "chain")),
                    (long long)json_integer_value(json_object_get(b, "id")),
                    (long long)json_integer_value(json_object_get(b, "seq")),
                    json_string_value(json_object_get(b, "reason")));
        }
    }
    if (!no_auditor)
        fprintf(out, "  content check          %s\n",
                v->content_bad < 0    ? "not answered"
                : v->content_bad == 0 ? "ok (every stored event matches its lineage digest)"
                                      : "FAILED (see the auditor's GET /v1/verify/content)");
    json_int_t again = json_integer_value(json_object_get(v->content_verify, "rows_rewritten"));
    if (again > 0)
        fprintf(out,
                "    %lld event%s intact under another row id than %s lineage names (written"
                " again after a Postgres failover lost %s commit, or moved by hand:"
                " rewritten_events in GET /v1/verify/content)\n",
                (long long)again, again == 1 ? "" : "s", again == 1 ? "its" : "their",
                again == 1 ? "its" : "their");
    json_t *fb = json_object_get(v->content_verify, "first_bad");
    if (v->content_bad > 0 && json_is_object(fb)) {
        fprintf(out,
                "    %lld bad event%s; first: source %s message id %s event type %s (row %lld):",
                (long long)v->content_bad, v->content_bad == 1 ? "" : "s",
                json_string_value(json_object_get(fb, "source")),
                json_string_value(json_object_get(fb, "message_id")),
                json_string_value(json_object_get(fb, "event_type")),
                (long long)json_integer_value(json_object_get(fb, "row_id")));
        size_t i;
        json_t *why;
        json_array_foreach(json_object_get(fb, "reasons"), i, why)
            fprintf(out, " %s", json_string_value(why));
        json_array_foreach(json_object_get(fb, "fields"), i, why)
            fprintf(out, "%s%s", i == 0 ? " (" : " ", json_string_value(why));
        if (json_array_size(json_object_get(fb, "fields")) > 0) fputc(')', out);
        fputc('\n', out);
    }
}

int cli_cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"requests", required_argument, NULL, 'r'},
                                         {"no-progress", no_argument, NULL, 'P'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_CONN_LONG_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    cli_conn_opts_t conn;
    cli_conn_opts_defaults(&conn);
    const char *ledger = NULL;
    int ch, r, progress = 1;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
        if (ch == 'r')
            ledger = optarg;
        else if (ch == 'P')
            progress = 0;
        else if ((r = cli_conn_opt(&conn, ch, optarg)) < 0)
            return CLI_EXIT_USAGE;
        else if (r == 0) {
            fprintf(ch == 'h' ? stdout : stderr,
                    "usage: hookline verify --requests DIR/requests.ndjson [options]\n"
                    "check a past run's ledger (an evidence folder's requests.ndjson) against\n"
                    "Postgres and the auditor again; exit 0 OK, 1 violations, 2 error\n"
                    "  --requests FILE            the ledger to check (required)\n"
                    "  --no-progress              no progress line even on a terminal\n%s",
                    CLI_CONN_HELP);
            return ch == 'h' ? 0 : CLI_EXIT_USAGE;
        }
    }
    if (!ledger || optind != argc) {
        fputs(
            "hookline verify: --requests FILE is required (an evidence folder's requests.ndjson)\n",
            stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_conn_opts_finish(&conn)) return CLI_EXIT_USAGE;
    char err[1024];
    cli_workload_t w = {0};
    if (cli_ledger_read(ledger, &w, err, sizeof(err)) != 0) {
        fprintf(stderr, "hookline: %s\n", err);
        cli_conn_opts_free(&conn);
        return CLI_EXIT_USAGE;
    }
    cli_verify_opts_t vo;
    cli_conn_verify_opts(&conn, &vo, 1);
    vo.sample = 0;
    vo.progress = progress && isatty(STDERR_FILENO);
    cli_verify_report_t v;
    int rc = cli_verify_run(&vo, &w, &v, err, sizeof(err));
    int code;
    if (rc) {
        fprintf(stderr, "hookline: %s\n", err);
        code = CLI_EXIT_USAGE;
    } else {
        print_verify(stdout, &v, conn.no_auditor);
        int bad = v.idempotency_violations || v.ordering_violations ||
                  (!conn.no_auditor && (v.lineage_complete < v.lineage_checked ||
                                        v.chains_failed != 0 || v.content_bad != 0));
        printf("  verify: %s\n", bad ? "VIOLATIONS" : "OK");
        code = bad ? CLI_EXIT_FAIL : CLI_EXIT_PASS;
    }
    cli_verify_report_free(&v);
    cli_wl_free(&w);
    cli_conn_opts_free(&conn);
    return code;
}

int cli_cmd_lineage(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'}, CLI_AUDITOR_LONG_OPTIONS, {NULL, 0, NULL, 0}};
    static const char usage[] =
        "usage: hookline lineage REQUEST_ID [options]\n"
        "print one request's lineage (GET /v1/requests/ID) from the auditor; exit 0 found,\n"
        "1 the auditor knows nothing of it, 2 error\n"
        "  REQUEST_ID                 a UUID, as the ingress answers it in request_id\n";
    cli_conn_opts_t conn;
    cli_conn_opts_defaults(&conn);
    int ch, r;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if ((r = cli_conn_opt(&conn, ch, optarg)) < 0) return CLI_EXIT_USAGE;
        if (r == 0) {
            fprintf(ch == 'h' ? stdout : stderr, "%s%s", usage, CLI_AUDITOR_HELP);
            return ch == 'h' ? 0 : CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "hookline lineage: %s\n(hookline lineage --help)\n",
                optind == argc ? "which request? give one REQUEST_ID" : "one REQUEST_ID only");
        return CLI_EXIT_USAGE;
    }
    char why[256];
    if (cli_request_id_problem(argv[optind], why, sizeof(why)) != 0) {
        fprintf(stderr, "hookline lineage: '%s' is not a request id: %s\n", argv[optind], why);
        return CLI_EXIT_USAGE;
    }
    if (cli_conn_opts_finish(&conn)) return CLI_EXIT_USAGE;
    char path[256], auth[600];
    snprintf(path, sizeof(path), "%s%s", conn.lineage_path, argv[optind]);
    snprintf(auth, sizeof(auth), "Bearer %s", conn.auditor_token);
    cli_http_header_t h[] = {{"Authorization", auth}, {"Accept", "application/json"}};
    cli_http_conn_t *c = cli_http_conn_new(conn.auditor_host, conn.auditor_port, 4u << 20, 10000);
    cli_http_response_t resp;
    int rc = cli_http_request(c, "GET", path, h, 2, NULL, 0, &resp), code;
    if (rc) {
        fprintf(stderr, "hookline: auditor not reachable at %s (%s): " CLI_STACK_HINT "\n",
                conn.auditor_url, rc == HL_ETIMEDOUT ? "no answer in time" : "no connection");
        code = CLI_EXIT_USAGE;
    } else if (resp.status == 401 || resp.status == 403) {
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        const char *ec = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
        fprintf(stderr, "hookline: auditor answered %d%s%s\n", resp.status, ec ? " " : "",
                ec ? ec : "");
        json_decref(j);
        cli_conn_token_advice(&conn, stderr);
        code = CLI_EXIT_USAGE;
    } else {
        json_t *j = json_loadb(resp.body, resp.body_len, 0, NULL);
        if (j) {
            json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            fputc('\n', stdout);
        } else {
            fwrite(resp.body, 1, resp.body_len, stdout);
        }
        json_decref(j);
        if (resp.status == 404)
            fprintf(stderr, "hookline: the auditor has no lineage for %s\n", argv[optind]);
        else if (resp.status != 200)
            fprintf(stderr, "hookline: auditor answered %d\n", resp.status);
        code = resp.status == 200   ? CLI_EXIT_PASS
               : resp.status == 404 ? CLI_EXIT_FAIL
                                    : CLI_EXIT_USAGE;
    }
    cli_http_conn_free(c);
    cli_conn_opts_free(&conn);
    return code;
}
