/* `hookline replay`: options, then workload → replay → verify → gate → report and evidence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "evidence.h"
#include "hl/util.h"
#include "report.h"
#include "results.h"

typedef struct {
    const char *url, *path, *scheme, *secret_file, *secret_env, *sig_header, *sig_prefix;
    int sig_base64;
    const char *input, *msg_ptr, *msg_header, *type_ptr, *run_id, *criteria, *evidence;
    int64_t count, epm, payload, seed, concurrency, max_retries, max_wait_ms, timeout_ms;
    double dup_ratio, rate;
    int no_verify, progress, json_out;
    cli_conn_opts_t conn;
} replay_args_t;

enum {
    OPT_URL = OPT_CONN_LAST_ + 1,
    OPT_PATH,
    OPT_SCHEME,
    OPT_SECRET_FILE,
    OPT_SECRET_ENV,
    OPT_SIG_HEADER,
    OPT_SIG_ENCODING,
    OPT_SIG_PREFIX,
    OPT_INPUT,
    OPT_MSG_PTR,
    OPT_MSG_HEADER,
    OPT_TYPE_PTR,
    OPT_RUN_ID,
    OPT_CRITERIA,
    OPT_EVIDENCE,
    OPT_COUNT,
    OPT_EPM,
    OPT_PAYLOAD,
    OPT_SEED,
    OPT_CONCURRENCY,
    OPT_MAX_RETRIES,
    OPT_MAX_WAIT,
    OPT_TIMEOUT,
    OPT_DUP,
    OPT_RATE,
    OPT_NO_VERIFY,
    OPT_NO_PROGRESS,
    OPT_JSON,
    OPT_HELP
};

static const struct option replay_options[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"path", required_argument, NULL, OPT_PATH},
    {"scheme", required_argument, NULL, OPT_SCHEME},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"secret-env", required_argument, NULL, OPT_SECRET_ENV},
    {"sig-header", required_argument, NULL, OPT_SIG_HEADER},
    {"sig-encoding", required_argument, NULL, OPT_SIG_ENCODING},
    {"sig-prefix", required_argument, NULL, OPT_SIG_PREFIX},
    {"input", required_argument, NULL, OPT_INPUT},
    {"message-id-pointer", required_argument, NULL, OPT_MSG_PTR},
    {"message-id-header", required_argument, NULL, OPT_MSG_HEADER},
    {"event-type-pointer", required_argument, NULL, OPT_TYPE_PTR},
    {"run-id", required_argument, NULL, OPT_RUN_ID},
    {"criteria", required_argument, NULL, OPT_CRITERIA},
    {"evidence", required_argument, NULL, OPT_EVIDENCE},
    {"count", required_argument, NULL, OPT_COUNT},
    {"events-per-message", required_argument, NULL, OPT_EPM},
    {"payload-bytes", required_argument, NULL, OPT_PAYLOAD},
    {"seed", required_argument, NULL, OPT_SEED},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"max-retries", required_argument, NULL, OPT_MAX_RETRIES},
    {"max-retry-wait-ms", required_argument, NULL, OPT_MAX_WAIT},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"duplicate-ratio", required_argument, NULL, OPT_DUP},
    {"rate", required_argument, NULL, OPT_RATE},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    CLI_CONN_LONG_OPTIONS,
    {NULL, 0, NULL, 0}};

static void replay_usage(FILE *out)
{
    fputs("usage: hookline replay [options]\n"
          "workload (synthetic unless --input):\n"
          "  --count N                  events to send (originals) [30000]\n"
          "  --events-per-message N     events per message, fixed order [3]\n"
          "  --duplicate-ratio R        share of events sent again after their 202 [0.05]\n"
          "  --payload-bytes N          body size [512]\n"
          "  --seed N                   workload seed [1]\n"
          "  --run-id ID                message id prefix [run-<time>-<pid>]\n"
          "  --input FILE.ndjson        captured requests: {\"headers\":{…},\"body\":…} per line\n"
          "  --message-id-pointer P     JSON pointer of the message id [/messageId]\n"
          "  --message-id-header H      --input: take the message id from this captured header\n"
          "  --event-type-pointer P     JSON pointer of the event type [/eventType]\n"
          "sending:\n"
          "  --url URL                  ingress [http://127.0.0.1:8080]\n"
          "  --path PATH                request path [/v1/webhooks/<source>]\n"
          "  --scheme S                 none|standard-webhooks|stripe|hmac-sha256|bearer|sendgrid\n"
          "  --secret-file F / --secret-env VAR   signing secret [HOOKLINE_REPLAY_SECRET]\n"
          "  --sig-header H --sig-encoding hex|base64 --sig-prefix P   hmac-sha256 / bearer\n"
          "  --concurrency N            keep-alive connections [50]\n"
          "  --rate R                   open-loop at R req/s (latency from scheduled time);\n"
          "                             without it closed-loop, as fast as answers come\n"
          "  --max-retries N            retries of 429/503/transport errors [5]\n"
          "  --max-retry-wait-ms N      cap on one Retry-After wait [5000]\n"
          "  --timeout-ms N             per connect/read/write [10000]\n"
          "judging:\n"
          "  --criteria FILE.yaml       gate criteria [production gate]\n"
          "  --evidence DIR             write the evidence folder\n"
          "  --no-verify                skip Postgres/auditor checks (their criteria FAIL)\n"
          "  --json                     print results.json instead of the table\n"
          "  --no-progress              no progress line even on a terminal\n",
          out);
    fputs(CLI_CONN_HELP, out);
}

static int parse_args(replay_args_t *a, int argc, char **argv)
{
    *a = (replay_args_t){.url = "http://127.0.0.1:8080",
                         .scheme = "none",
                         .secret_env = "HOOKLINE_REPLAY_SECRET",
                         .msg_ptr = "/messageId",
                         .type_ptr = "/eventType",
                         .count = 30000,
                         .epm = 3,
                         .payload = 512,
                         .seed = 1,
                         .concurrency = 50,
                         .max_retries = 5,
                         .max_wait_ms = 5000,
                         .timeout_ms = 10000,
                         .dup_ratio = 0.05,
                         .progress = 1};
    cli_conn_opts_defaults(&a->conn);
    int ch, r;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", replay_options, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case OPT_URL: a->url = optarg; break;
        case OPT_PATH: a->path = optarg; break;
        case OPT_SCHEME: a->scheme = optarg; break;
        case OPT_SECRET_FILE: a->secret_file = optarg; break;
        case OPT_SECRET_ENV: a->secret_env = optarg; break;
        case OPT_SIG_HEADER: a->sig_header = optarg; break;
        case OPT_SIG_PREFIX: a->sig_prefix = optarg; break;
        case OPT_SIG_ENCODING:
            if (strcmp(optarg, "hex") && strcmp(optarg, "base64")) {
                fprintf(stderr, "hookline: --sig-encoding must be hex or base64\n");
                bad = 1;
            }
            a->sig_base64 = strcmp(optarg, "base64") == 0;
            break;
        case OPT_INPUT: a->input = optarg; break;
        case OPT_MSG_PTR: a->msg_ptr = optarg; break;
        case OPT_MSG_HEADER: a->msg_header = optarg; break;
        case OPT_TYPE_PTR: a->type_ptr = optarg; break;
        case OPT_RUN_ID: a->run_id = optarg; break;
        case OPT_CRITERIA: a->criteria = optarg; break;
        case OPT_EVIDENCE: a->evidence = optarg; break;
        case OPT_COUNT: bad = cli_opt_i64("count", optarg, 1, CLI_WL_MAX_COUNT, &a->count); break;
        case OPT_EPM:
            bad = cli_opt_i64("events-per-message", optarg, 1, CLI_WL_MAX_EVENTS_PER_MESSAGE,
                              &a->epm);
            break;
        case OPT_PAYLOAD:
            bad = cli_opt_i64("payload-bytes", optarg, 0, CLI_WL_MAX_PAYLOAD, &a->payload);
            break;
        case OPT_SEED: bad = cli_opt_i64("seed", optarg, 0, INT64_MAX, &a->seed); break;
        case OPT_CONCURRENCY:
            bad = cli_opt_i64("concurrency", optarg, 1, 1024, &a->concurrency);
            break;
        case OPT_MAX_RETRIES:
            bad = cli_opt_i64("max-retries", optarg, 0, 100, &a->max_retries);
            break;
        case OPT_MAX_WAIT:
            bad = cli_opt_i64("max-retry-wait-ms", optarg, 0, 600000, &a->max_wait_ms);
            break;
        case OPT_TIMEOUT:
            bad = cli_opt_i64("timeout-ms", optarg, 100, 600000, &a->timeout_ms);
            break;
        case OPT_DUP: bad = cli_opt_double("duplicate-ratio", optarg, 0, 1, &a->dup_ratio); break;
        case OPT_RATE: bad = cli_opt_double("rate", optarg, 0.001, 1e7, &a->rate); break;
        case OPT_NO_VERIFY: a->no_verify = 1; break;
        case OPT_NO_PROGRESS: a->progress = 0; break;
        case OPT_JSON: a->json_out = 1; break;
        case 'h':
        case OPT_HELP: replay_usage(stdout); return -1;
        default:
            r = cli_conn_opt(&a->conn, ch, optarg);
            if (r == 0) replay_usage(stderr);
            bad = r <= 0;
        }
        if (bad) return CLI_EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr, "hookline replay: unexpected argument '%s'\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    if (a->run_id && (!*a->run_id || strlen(a->run_id) > 64 || strpbrk(a->run_id, "\"\\/ "))) {
        fprintf(stderr, "hookline: --run-id: 1..64 characters without quotes, slashes or spaces\n");
        return CLI_EXIT_USAGE;
    }
    if (a->path && (a->path[0] != '/' || strlen(a->path) > 512 || strpbrk(a->path, " \r\n"))) {
        fprintf(stderr, "hookline: --path must start with / (no spaces, under 512 bytes)\n");
        return CLI_EXIT_USAGE;
    }
    return cli_conn_opts_finish(&a->conn);
}

static int make_signer(const replay_args_t *a, cli_signer_t **out)
{
    cli_sign_opts_t so = {
        .header = a->sig_header, .base64 = a->sig_base64, .prefix = a->sig_prefix};
    *out = NULL;
    if (cli_sign_scheme_parse(a->scheme, &so.scheme) != 0) {
        fprintf(stderr, "hookline: --scheme '%s' unknown\n", a->scheme);
        return CLI_EXIT_USAGE;
    }
    if (so.scheme == CLI_SIGN_NONE) return 0;
    char *secret = NULL;
    size_t len = 0;
    const char *env = a->secret_env ? getenv(a->secret_env) : NULL;
    if (a->secret_file) {
        if (hl_read_file(a->secret_file, 8192, &secret, &len) != 0) {
            fprintf(stderr, "hookline: --secret-file %s: cannot read (or over 8 KiB)\n",
                    a->secret_file);
            return CLI_EXIT_USAGE;
        }
        /* Files end with a newline that is not part of the secret (PEM keeps its own). */
        while (len && (secret[len - 1] == '\n' || secret[len - 1] == '\r') &&
               !strstr(secret, "-----BEGIN"))
            secret[--len] = '\0';
    } else if (env && *env) {
        secret = hl_xstrdup(env);
        len = strlen(secret);
    } else {
        fprintf(stderr, "hookline: --scheme %s needs --secret-file or $%s\n", a->scheme,
                a->secret_env ? a->secret_env : "HOOKLINE_REPLAY_SECRET");
        return CLI_EXIT_USAGE;
    }
    char err[256];
    int rc = cli_signer_new(&so, secret, len, out, err, sizeof(err));
    memset(secret, 0, len);
    free(secret);
    if (rc) {
        fprintf(stderr, "hookline: signing secret: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static json_t *config_json(const replay_args_t *a, const char *run_id, const char *path)
{
    json_t *c = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:f,s:I,s:s,s:s,s:I,s:f,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,"
        "s:s,s:s,s:b,s:b,s:I}",
        "url", a->url, "path", path, "source", a->conn.source, "scheme", a->scheme, "secret",
        a->scheme && strcmp(a->scheme, "none") ? "<redacted>" : "", "count", (json_int_t)a->count,
        "events_per_message", (json_int_t)a->epm, "payload_bytes", (json_int_t)a->payload,
        "duplicate_ratio", a->dup_ratio, "seed", (json_int_t)a->seed, "run_id", run_id, "input",
        a->input ? a->input : "", "concurrency", (json_int_t)a->concurrency, "rate", a->rate,
        "mode", a->rate > 0 ? "open-loop" : "closed-loop", "max_retries",
        (json_int_t)a->max_retries, "max_retry_wait_ms", (json_int_t)a->max_wait_ms, "timeout_ms",
        (json_int_t)a->timeout_ms, "criteria_file", a->criteria ? a->criteria : "", "pg",
        "<redacted: connection string>", "pg_schema", a->conn.pg_schema ? a->conn.pg_schema : "",
        "auditor", a->conn.auditor_url, "auditor_token", "<redacted>", "lineage_via",
        a->conn.lineage_via_api ? "api" : "db", "verified", !a->no_verify, "auditor_checked",
        !a->no_verify && !a->conn.no_auditor, "settle_timeout_ms",
        (json_int_t)a->conn.settle_timeout_ms);
    if (a->sig_header) json_object_set_new(c, "sig_header", json_string(a->sig_header));
    return c;
}

/* Renders the table into a string so the same text goes to stdout and report.txt. */
static char *table_text(const cli_results_t *r, const cli_gate_t *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    cli_report_table(f, r, g);
    fclose(f);
    return buf;
}

int cli_cmd_replay(int argc, char **argv)
{
    replay_args_t a;
    int code = parse_args(&a, argc, argv);
    if (code) {
        cli_conn_opts_free(&a.conn);
        return code < 0 ? 0 : code;
    }
    cli_criteria_t crit;
    char err[1024], run_id[80], path[600], host[256];
    int port;
    cli_signer_t *signer = NULL;
    cli_workload_t w = {0};
    cli_replay_results_t rep = {0};
    cli_verify_report_t ver = {0};
    int have_ver = 0;
    code = CLI_EXIT_USAGE;
    cli_criteria_defaults(&crit);
    if (a.criteria && cli_criteria_load(a.criteria, &crit, err, sizeof(err)) != 0) {
        fprintf(stderr, "hookline: %s\n", err);
        goto out;
    }
    if (cli_http_parse_url(a.url, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "hookline: --url '%s': need http://host:port\n", a.url);
        goto out;
    }
    if (make_signer(&a, &signer)) goto out;
    if (a.run_id)
        snprintf(run_id, sizeof(run_id), "%s", a.run_id);
    else
        snprintf(run_id, sizeof(run_id), "run-%lld-%d", (long long)time(NULL), (int)getpid());
    snprintf(path, sizeof(path), "%s", a.path ? a.path : "");
    if (!a.path) snprintf(path, sizeof(path), "/v1/webhooks/%s", a.conn.source);
    int rc;
    if (a.input) {
        cli_wl_input_opts_t io = {
            .msg_ptr = a.msg_ptr, .msg_header = a.msg_header, .type_ptr = a.type_ptr};
        rc = cli_wl_read_ndjson(a.input, &io, &w, err, sizeof(err));
    } else {
        cli_wl_synth_opts_t so = {.seed = (uint64_t)a.seed,
                                  .count = (uint32_t)a.count,
                                  .events_per_message = (uint32_t)a.epm,
                                  .duplicate_ratio = a.dup_ratio,
                                  .payload_bytes = (uint32_t)a.payload,
                                  .run_id = run_id};
        rc = cli_wl_synth(&so, &w, err, sizeof(err));
    }
    if (rc) {
        fprintf(stderr, "hookline: %s%s%s\n", a.input ? a.input : "workload", a.input ? ": " : ": ",
                err);
        goto out;
    }
    cli_replay_opts_t ro = {.host = host,
                            .port = port,
                            .path = path,
                            .content_type = "application/json",
                            .signer = signer,
                            .concurrency = (unsigned)a.concurrency,
                            .rate = a.rate,
                            .max_retries = (unsigned)a.max_retries,
                            .max_retry_wait_ms = a.max_wait_ms,
                            .timeout_ms = (int)a.timeout_ms,
                            .progress = a.progress && isatty(STDERR_FILENO)};
    if (cli_replay_run(&ro, &w, &rep) != 0) {
        fprintf(stderr,
                "hookline: ingress not reachable at %s: not a single request was answered;"
                " " CLI_STACK_HINT "\n",
                a.url);
        goto out;
    }
    if (!a.no_verify) {
        cli_verify_opts_t vo;
        cli_conn_verify_opts(&a.conn, &vo, (uint64_t)a.seed);
        vo.progress = ro.progress;
        have_ver = 1;
        if (cli_verify_run(&vo, &w, &ver, err, sizeof(err)) != 0) {
            fprintf(stderr, "hookline: verify: %s\n", err);
            goto out;
        }
    }
    cli_results_t res;
    cli_results_fill(&res, &rep, &w, have_ver ? &ver : NULL, a.conn.no_auditor);
    res.concurrency = (unsigned)a.concurrency;
    res.rate_rps = a.rate;
    cli_gate_t gate;
    cli_gate_eval(&crit, &res, &gate);
    json_t *extra =
        json_pack("{s:I,s:I,s:I,s:[I,I,I,I,I,I],s:I,s:o}", "transport_errors",
                  (json_int_t)rep.transport_errors, "connections", (json_int_t)rep.connections,
                  "messages", (json_int_t)w.nmsgs, "status_classes", (json_int_t)rep.status[0],
                  (json_int_t)rep.status[1], (json_int_t)rep.status[2], (json_int_t)rep.status[3],
                  (json_int_t)rep.status[4], (json_int_t)rep.status[5], "mean_us",
                  (json_int_t)hl_hist_mean(rep.latency_us), "auditor_gaps",
                  have_ver && ver.auditor_gaps >= 0 ? json_integer(ver.auditor_gaps) : json_null());
    if (have_ver) {
        json_object_set_new(extra, "verify_pg_s", json_real(ver.pg_seconds));
        json_object_set_new(extra, "verify_auditor_s", json_real(ver.auditor_seconds));
    }
    json_t *results = cli_results_json(&res, &gate, &crit, extra);
    json_decref(extra);
    char *table = table_text(&res, &gate);
    if (a.json_out) {
        json_dumpf(results, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else if (table) {
        fputs(table, stdout);
    }
    code = gate.pass ? CLI_EXIT_PASS : CLI_EXIT_FAIL;
    if (a.evidence) {
        json_t *budget = cli_error_budget_json(&res, &crit, rep.latency_us,
                                               have_ver ? ver.auditor_error_budget : NULL);
        json_t *cfg = config_json(&a, run_id, path);
        cli_evidence_t ev = {.dir = a.evidence,
                             .results = results,
                             .config = cfg,
                             .latency = rep.latency_us,
                             .error_budget = budget,
                             .verify = have_ver ? &ver : NULL,
                             .w = &w,
                             .report_text = table};
        if (cli_evidence_write_all(&ev, err, sizeof(err)) != 0 ||
            (!a.no_verify && !a.conn.no_auditor &&
             cli_evidence_sign(a.evidence, a.conn.auditor_host, a.conn.auditor_port,
                               a.conn.auditor_token, err, sizeof(err)) != 0)) {
            fprintf(stderr, "hookline: %s\n", err);
            code = CLI_EXIT_USAGE;
        } else if (!a.json_out) {
            printf("  evidence: %s\n", a.evidence);
        }
        json_decref(budget);
        json_decref(cfg);
    }
    free(table);
    json_decref(results);
out:
    if (have_ver) cli_verify_report_free(&ver);
    cli_replay_results_free(&rep);
    cli_wl_free(&w);
    cli_signer_free(signer);
    cli_conn_opts_free(&a.conn);
    return code;
}
