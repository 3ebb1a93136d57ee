/* hookline-auditor: consumes hookline.lineage into an append-only, hash-chained table, keeps
 * latency histograms and serves the audit API and page. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "auditor.h"
#include "consumer.h"
#include "gapscan.h"
#include "history.h"
#include "hl/httpd.h"
#include "hl/log.h"
#include "hl/pg.h"
#include "hl/util.h"
#include "outside.h"
#include "query.h"
#include "rollup.h"
#include "verifiers.h"
#include "verify.h"

/* Largest Postgres pool, whatever http.threads says. */
#define AUDITOR_POOL_MAX 16u
/* The gap metric covers the requests of the last 24 h; one scan reads for at most 2 s. */
#define GAP_WINDOW_US INT64_C(86400000000)
#define GAP_SCAN_BUDGET_US INT64_C(2000000)
#define GAP_FULL_COUNT_SCANS 6 /* past gap_scan_pending_max: a full count every 6 scans at most */

static bool ready(void *arg)
{
    aud_state_t *a = arg;
    return !atomic_load(&a->stop) && atomic_load(&a->db_ok) && atomic_load(&a->consumer_up);
}

static void nap(aud_state_t *a, int seconds)
{
    for (int i = 0; i < seconds * 10 && !atomic_load(&a->stop); i++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
}

/* Asks Kafka whether the checkpoint topic keeps its records as the outside copy needs; an
 * ALARM when it does not (checkpoints could be removed, and verification would then hold
 * chains to fewer of them). */
static void check_checkpoint_topic(aud_state_t *a)
{
    char why[256];
    int rc = aud_ckpub_check_topic(a->ckpub, 10000, why, sizeof why);
    if (rc == HL_EIO) {
        hl_warn("checkpoint topic %s: shape not checked yet: %s", a->cfg->checkpoint.topic, why);
        return;
    }
    if (rc == 0) {
        hl_info("checkpoint topic %s: one partition, records never removed",
                a->cfg->checkpoint.topic);
    } else {
        hl_strlcpy(a->cp_topic_why, why, sizeof a->cp_topic_why);
        hl_error("ALARM checkpoint topic %s does not keep checkpoints as promised: %s",
                 a->cfg->checkpoint.topic, why);
    }
    hl_gauge_set(a->m_cp_topic_ok, rc == 0);
    atomic_store(&a->cp_topic_state, rc == 0 ? 1 : -1);
}

/* The housekeeping thread: gap counts and checkpoints on their intervals, until stop. */
static void *housekeeping_main(void *arg)
{
    aud_state_t *a = arg;
    const aud_config_t *cfg = a->cfg;
    int64_t next_gaps = 0, next_cp = hl_mono_us() + (int64_t)cfg->checkpoint.interval_s * 1000000;
    aud_gapscan_t *gaps = aud_gapscan_new(
        (int64_t)cfg->gap_grace_s * 1000000, GAP_WINDOW_US, cfg->gap_scan_pending_max,
        (int64_t)GAP_FULL_COUNT_SCANS * cfg->gap_scan_interval_s * 1000000);
    char err[512];
    int64_t next_topic = 0;
    while (!atomic_load(&a->stop)) {
        int64_t now = hl_mono_us();
        if (atomic_load(&a->cp_topic_state) == 0 && now >= next_topic) {
            check_checkpoint_topic(a);
            next_topic = now + INT64_C(30000000);
        }
        if (now >= next_gaps || now >= next_cp) {
            PGconn *c = hl_pg_pool_get(a->pool);
            if (c && now >= next_gaps) {
                int64_t open = 0, closed = 0;
                int rc = aud_gapscan_run(gaps, c, hl_now_us(), GAP_SCAN_BUDGET_US, &open, &closed,
                                         err, sizeof err);
                if (rc >= 1) {
                    hl_gauge_set(a->m_gaps_open, open);
                    hl_gauge_set(a->m_gaps_closed, closed);
                    if (rc == 2) hl_counter_add(a->m_gap_full_counts, 1);
                } else if (rc < 0) {
                    hl_warn("housekeeping: gap count: %s", err);
                }
                next_gaps = now + (int64_t)cfg->gap_scan_interval_s * 1000000;
            }
            if (now >= next_cp) {
                int n = aud_history_sign(a, err, sizeof err);
                if (n < 0)
                    hl_warn("housekeeping: checkpoint: %s", err);
                else if (n > 0) {
                    hl_counter_add(a->m_checkpoints, (uint64_t)n);
                    hl_info("housekeeping: signed %d checkpoint(s)", n);
                }
                next_cp = now + (int64_t)cfg->checkpoint.interval_s * 1000000;
            }
            if (c) hl_pg_pool_put(a->pool, c, PQstatus(c) != CONNECTION_OK);
        }
        nap(a, 1);
    }
    aud_gapscan_free(gaps);
    return NULL;
}

static void register_metrics(aud_state_t *a)
{
    hl_metrics_t *m = a->metrics;
    static const char *const classes[6] = {NULL, "1xx", "2xx", "3xx", "4xx", "5xx"};
    a->m_records = hl_metrics_counter(m, "hookline_auditor_lineage_records_total",
                                      "Lineage records taken from Kafka", NULL);
    a->m_invalid = hl_metrics_counter(m, "hookline_auditor_lineage_invalid_total",
                                      "Lineage records refused by validation (skipped)", NULL);
    a->m_rows = hl_metrics_counter(m, "hookline_auditor_lineage_rows_total",
                                   "Lineage rows appended to the chains", NULL);
    a->m_repeats = hl_metrics_counter(m, "hookline_auditor_lineage_repeats_total",
                                      "Outcome records skipped: their Kafka record had one", NULL);
    a->m_batches =
        hl_metrics_counter(m, "hookline_auditor_batches_total", "Batches committed", NULL);
    a->m_batch_errors = hl_metrics_counter(m, "hookline_auditor_batch_errors_total",
                                           "Batch transactions that failed (retried)", NULL);
    a->m_fold_errors = hl_metrics_counter(
        m, "hookline_auditor_rollup_fold_errors_total",
        "Folds of the batches' latency counts into latency_rollups that failed (tried again)",
        NULL);
    a->m_checkpoints = hl_metrics_counter(m, "hookline_auditor_checkpoints_total",
                                          "Chain-head checkpoints signed", NULL);
    a->m_cp_refused = hl_metrics_counter(
        m, "hookline_auditor_checkpoint_refusals_total",
        "Chain heads not signed because the walk from the last checkpoint failed (ALARM)", NULL);
    a->m_cp_errors =
        hl_metrics_counter(m, "hookline_auditor_checkpoint_errors_total",
                           "Signing rounds that failed (checkpoint topic, Postgres)", NULL);
    a->m_cp_topic_ok = hl_metrics_gauge(
        m, "hookline_auditor_checkpoint_topic_ok",
        "1 when the checkpoint topic has one partition and never removes records, else 0", NULL);
    a->m_foreign = hl_metrics_counter(
        m, "hookline_auditor_foreign_rows_total",
        "Chains found holding rows this auditor cannot vouch for (ALARM; not signed)", NULL);
    a->m_deleted = hl_metrics_counter(
        m, "hookline_auditor_history_shorter_than_checkpoint_total",
        "Chains found at assignment ending below their newest outside checkpoint: rows deleted"
        " (ALARM)",
        NULL);
    a->m_lag =
        hl_metrics_gauge(m, "hookline_auditor_consumer_lag",
                         "Lineage records not yet stored (sum over assigned partitions)", NULL);
    a->m_gaps_open =
        hl_metrics_gauge(m, "hookline_auditor_gaps",
                         "Gaps among accepted requests of the last 24 h", "state=\"open\"");
    a->m_gaps_closed =
        hl_metrics_gauge(m, "hookline_auditor_gaps",
                         "Gaps among accepted requests of the last 24 h", "state=\"closed\"");
    a->m_gap_full_counts = hl_metrics_counter(
        m, "hookline_auditor_gap_full_counts_total",
        "Gap counts made with the full query (more accepted requests awaiting an outcome than"
        " the auditor follows one by one)",
        NULL);
    a->m_batch_latency = hl_metrics_histogram(m, "hookline_auditor_batch_seconds",
                                              "Time to write one lineage batch", NULL);
    for (int k = 1; k <= 5; k++) {
        char labels[32];
        snprintf(labels, sizeof labels, "class=\"%s\"", classes[k]);
        a->m_http[k] = hl_metrics_counter(m, "hookline_auditor_http_responses_total",
                                          "HTTP answers by status class", labels);
    }
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --config FILE\n", argv0);
    return HL_CONFIG_EXIT;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    char err[HL_CONFIG_ERRBUF];
    aud_config_t *cfg = NULL;
    aud_state_t a;
    ing_verifiers_t *verifiers = NULL;
    hl_log_level_t lvl = HL_LOG_INFO;
    int opt, sig, rc = 0;
    sigset_t set;
    pthread_t consumer, housekeeping;

    /* Each checkpoint reads back the rows it seals (pages of 5,000 records through libpq,
     * a few MB each) and each consumed batch is as large: with the default trim, glibc gave
     * those pages back after every page and faulted them in again for the next, a quarter of
     * the process' CPU in profiles under load. */
    hl_malloc_recycle(64 << 20, 64 << 20);

    while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (opt == 'c')
            path = optarg;
        else if (opt == 'h') {
            printf("usage: %s --config FILE\n"
                   "Stores lineage and serves the audit API; see services/auditor/README.md.\n",
                   argv[0]);
            return 0;
        } else
            return usage(argv[0]);
    }
    if (!path || optind != argc) return usage(argv[0]);
    hl_log_init("auditor", HL_LOG_INFO);
    if (aud_config_load(path, &cfg, err, sizeof err) != 0) {
        hl_error("%s", err);
        return HL_CONFIG_EXIT;
    }
    if (hl_log_level_parse(cfg->log_level, &lvl) == 0) hl_log_init("auditor", lvl);
    memset(&a, 0, sizeof a);
    a.cfg = cfg;
    pthread_mutex_init(&a.written_mu, NULL);
    pthread_mutex_init(&a.status_mu, NULL);

    for (unsigned i = 0; i < cfg->tokens_count; i++)
        if (aud_tokens_add(&a.tokens, cfg->tokens[i].name, cfg->tokens[i].sha256,
                           cfg->tokens[i].roles) != 0) {
            hl_error("config: tokens[%u]: invalid", i);
            rc = HL_CONFIG_EXIT;
            goto out;
        }
    /* The signing key is what makes a checkpoint evidence: held to the rule of every secret
     * file (a key made here is written 0600). */
    if (!cfg->secret_files_shared &&
        hl_secret_file_private(cfg->checkpoint.key_file) == HL_EINVAL) {
        hl_error("config: checkpoint.key_file: %s is readable by group or others (chmod 600, or"
                 " secret_files_shared: true for a mounted Kubernetes Secret)",
                 cfg->checkpoint.key_file);
        rc = HL_CONFIG_EXIT;
        goto out;
    }
    a.signer = aud_signer_load(cfg->checkpoint.key_file, cfg->checkpoint.generate_if_missing, err,
                               sizeof err);
    if (!a.signer) {
        hl_error("config: checkpoint.key_file: %s", err);
        rc = HL_CONFIG_EXIT;
        goto out;
    }
    aud_keyring_init(&a.ring, a.signer);
    for (unsigned i = 0; i < cfg->checkpoint.public_keys_count; i++)
        if (aud_keyring_add_hex(&a.ring, cfg->checkpoint.public_keys[i]) != 0) {
            hl_error("config: checkpoint.public_keys[%u]: not a usable public key", i);
            rc = HL_CONFIG_EXIT;
            goto out;
        }
    if (cfg->signature_sources && cfg->signature_sources[0]) {
        verifiers = ing_verifiers_load(cfg->signature_sources, err, sizeof err);
        if (!verifiers) {
            hl_error("config: signature_sources %s: %s", cfg->signature_sources, err);
            rc = HL_CONFIG_EXIT;
            goto out;
        }
        a.verifiers = verifiers;
    }
    a.ckpub = aud_ckpub_new(&cfg->kafka, cfg->checkpoint.topic, err, sizeof err);
    if (!a.ckpub) {
        hl_error("kafka: checkpoint producer: %s", err);
        rc = HL_CONFIG_EXIT;
        goto out;
    }
    a.metrics = hl_metrics_new();
    register_metrics(&a);
    a.live = aud_live_new();
    /* One connection per API worker and one for housekeeping, opened as needed, but never
     * more than AUDITOR_POOL_MAX: most workers only ever wait on slow or idle clients. */
    a.pool = hl_pg_pool_new(&cfg->postgres_read, cfg->http.threads + 1 < AUDITOR_POOL_MAX
                                                     ? cfg->http.threads + 1
                                                     : AUDITOR_POOL_MAX);
    /* Signing (housekeeping, POST /v1/checkpoints, /v1/evidence) inserts checkpoints: the
     * writer's role, two connections at most. */
    a.wpool = hl_pg_pool_new(&cfg->postgres.w, 2);

    /* Signals are taken by sigwait on this thread only; every thread started below inherits
     * the block. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    hl_httpd_t *srv = hl_httpd_start(&cfg->http, NULL, ready, &a, err, sizeof err);
    if (!srv) {
        hl_error("%s", err);
        rc = 1;
        goto out;
    }
    aud_api_register(srv, &a);
    pthread_create(&consumer, NULL, aud_consumer_main, &a);
    pthread_create(&housekeeping, NULL, housekeeping_main, &a);
    hl_info("auditor: listening on %s, lineage topic %s, key id %s", cfg->http.listen,
            cfg->kafka.lineage_topic, aud_signer_key_id(a.signer));

    while (sigwait(&set, &sig) != 0 || (sig != SIGTERM && sig != SIGINT)) {
    }
    hl_info("auditor: signal %d, draining", sig);
    atomic_store(&a.stop, true);
    hl_pg_pool_close(a.pool); /* the API's and housekeeping's queries end with the process */
    hl_pg_pool_close(a.wpool);
    pthread_join(consumer, NULL);
    pthread_join(housekeeping, NULL);
    hl_httpd_stop(srv);
    if (atomic_load(&a.kafka_fatal)) rc = 1;
    hl_info("auditor: stopped");
out:
    json_decref(a.status);
    hl_pg_pool_free(a.pool);
    hl_pg_pool_free(a.wpool);
    aud_live_free(a.live);
    hl_metrics_free(a.metrics);
    aud_ckpub_free(a.ckpub);
    aud_signer_free(a.signer);
    aud_tokens_free(&a.tokens);
    ing_verifiers_free(verifiers);
    aud_config_free(cfg);
    return rc;
}
