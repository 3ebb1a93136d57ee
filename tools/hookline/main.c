/* hookline: the command-line tool. `replay` sends a workload to the ingress, verifies what was
 * stored and judges the run against the gate; the other subcommands are thin clients. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "evidence.h"
#include "hl/util.h"
#include "gate.h"
#include "report.h"
#include "results.h"

#ifndef HL_VERSION
#error "HL_VERSION (the CMake project version) must be defined"
#endif

static void usage(FILE *out)
{
    fputs("usage: hookline <command> [options]          (hookline <command> --help for each)\n"
          "  replay [options]              send webhooks, verify, gate\n"
          "  verify --requests FILE        check a past run's ledger against Postgres and the\n"
          "                                auditor again\n"
          "  gate RESULTS.json [--criteria FILE]   judge a results file\n"
          "  evidence verify DIR [--public-key HEX64]\n"
          "                                check an evidence folder against its SHA256SUMS and\n"
          "                                the auditor's signature of it\n"
          "  lineage REQUEST_ID            print one request's lineage from the auditor\n"
          "  dlq list [--limit N]          print the dead letters (Kafka)\n"
          "  dlq redrive --request-id ID | --all   send dead letters back to the events topic\n"
          "  reverify --config INGRESS.yaml --source S --message-id ID [--event-type T]\n"
          "                                check a stored event against its provider signature\n"
          "  --version                     print the version\n"
          "exit codes: 0 PASS / ok, 1 FAIL / violations found, 2 usage or connection error\n"
          "The auditor token is read from --auditor-token-file, $HOOKLINE_AUDITOR_TOKEN,\n"
          ".hookline/auditor-token, then the local stack's " CLI_DEMO_TOKEN_FILE ".\n",
          out);
}

static int cmd_gate(int argc, char **argv)
{
    const char *criteria = NULL;
    static const struct option opts[] = {{"criteria", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (ch == 'c')
            criteria = optarg;
        else {
            fputs("usage: hookline gate RESULTS.json [--criteria FILE]\n"
                  "judge a results file (results.json of an evidence folder) and print the table;\n"
                  "exit 0 PASS, 1 FAIL, 2 error\n"
                  "  --criteria FILE            gate criteria (YAML) [production gate]\n",
                  ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 0 : CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fputs("usage: hookline gate RESULTS.json [--criteria FILE]\n", stderr);
        return CLI_EXIT_USAGE;
    }
    char err[512];
    cli_criteria_t c;
    cli_criteria_defaults(&c);
    if (criteria && cli_criteria_load(criteria, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "hookline: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    char *text = NULL;
    size_t len = 0;
    cli_results_t r;
    if (hl_read_file(argv[optind], 16u << 20, &text, &len) != 0) {
        fprintf(stderr, "hookline: %s: cannot read (or over 16 MiB)\n", argv[optind]);
        return CLI_EXIT_USAGE;
    }
    int rc = cli_results_parse(text, len, &r);
    free(text);
    if (rc) {
        fprintf(stderr, "hookline: %s: not a results file (JSON object with \"sent\")\n",
                argv[optind]);
        return CLI_EXIT_USAGE;
    }
    cli_gate_t g;
    cli_gate_eval(&c, &r, &g);
    cli_report_table(stdout, &r, &g);
    return g.pass ? CLI_EXIT_PASS : CLI_EXIT_FAIL;
}

static const char evidence_usage[] =
    "usage: hookline evidence verify DIR [--public-key HEX64]\n"
    "check an evidence folder: every file against SHA256SUMS, nothing missing or unlisted, and\n"
    "the auditor's signature of the manifest (SHA256SUMS.sig); exit 0 intact, 1 problems, 2 error\n"
    "  --public-key HEX64         the auditor's signing key (64 hex) the signature must be made\n"
    "                             with; without it the signature only shows the folder is whole\n";

static int cmd_evidence(int argc, char **argv)
{
    static const struct option opts[] = {{"public-key", required_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *pin = NULL;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(evidence_usage, stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "hookline evidence: %s\n%s",
                argc < 2 ? "which action? only 'verify' exists" : "unknown action (only 'verify')",
                evidence_usage);
        return CLI_EXIT_USAGE;
    }
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ch == 'k') {
            pin = optarg;
        } else {
            fputs(evidence_usage, ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 0 : CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "hookline evidence verify: %s\n%s",
                optind == argc ? "which folder? give one DIR" : "one DIR only", evidence_usage);
        return CLI_EXIT_USAGE;
    }
    if (pin && (strlen(pin) != 64 || strspn(pin, "0123456789abcdef") != 64)) {
        fprintf(stderr,
                "hookline evidence verify: --public-key: 64 lower-case hex digits (the"
                " auditor's public_key), got %zu characters\n",
                strlen(pin));
        return CLI_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    int n = cli_evidence_verify_progress(dir, stdout, isatty(STDERR_FILENO) ? stderr : NULL);
    if (n < 0) {
        fprintf(stderr, "hookline: %s: no readable %s (is it an evidence folder?)\n", dir,
                CLI_EVIDENCE_MANIFEST);
        return CLI_EXIT_USAGE;
    }
    n += cli_evidence_check_signature(dir, pin, stdout);
    if (n == 0) {
        printf("evidence %s: intact\n", dir);
        return CLI_EXIT_PASS;
    }
    printf("evidence %s: %d problem%s\n", dir, n, n == 1 ? "" : "s");
    return CLI_EXIT_FAIL;
}

static void on_signal(int sig)
{
    (void)sig;
    cli_replay_stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "replay") == 0) return cli_cmd_replay(argc, argv);
    if (strcmp(cmd, "verify") == 0) return cli_cmd_verify(argc, argv);
    if (strcmp(cmd, "gate") == 0) return cmd_gate(argc, argv);
    if (strcmp(cmd, "evidence") == 0) return cmd_evidence(argc, argv);
    if (strcmp(cmd, "lineage") == 0) return cli_cmd_lineage(argc, argv);
    if (strcmp(cmd, "dlq") == 0) return cli_cmd_dlq(argc, argv);
    if (strcmp(cmd, "reverify") == 0) return cli_cmd_reverify(argc, argv);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("hookline %s\n", HL_VERSION);
        return 0;
    }
    fprintf(stderr, "hookline: unknown command '%s'\n", cmd);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
