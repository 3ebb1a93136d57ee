/* hookline-persister: consumes hookline.events and stores every event exactly once in
 * webhook_events. Usage: hookline-persister --config FILE */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "consumer.h"
#include "hl/httpd.h"
#include "hl/log.h"
#include "hl/util.h"
#include "hl/metrics.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s --config FILE\n", argv0);
    return HL_CONFIG_EXIT;
}

int main(int argc, char **argv)
{
    const char *path;
    int args = hl_config_args(argc, argv, &path);
    if (args < 0) return usage(argv[0]);
    if (args > 0) {
        printf("usage: %s --config FILE\n"
               "Writes hookline.events to Postgres in batches; see "
               "services/persister/README.md.\n",
               argv[0]);
        return 0;
    }

    /* Fetch buffers and batch arrays are large and recycled constantly; with glibc's dynamic
     * mmap threshold each one was mapped and unmapped again, and page faults took a third of
     * the process' CPU in profiles. Keeping them on the heap trades that for memory that is
     * bounded anyway (3 x batch_max records plus librdkafka's capped queues). */
    hl_malloc_recycle(64 << 20, 256 << 20);

    char err[HL_CONFIG_ERRBUF];
    pst_config_t *cfg = NULL;
    hl_log_init("persister", HL_LOG_INFO);
    if (pst_config_load(path, &cfg, err, sizeof(err)) != 0) {
        hl_error("%s", err);
        return HL_CONFIG_EXIT;
    }
    hl_log_level_t lvl = HL_LOG_INFO;
    if (hl_log_level_parse(cfg->log_level, &lvl) == 0) hl_log_init("persister", lvl);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    hl_metrics_t *metrics = hl_metrics_new();
    pst_metrics_t pm = {0};
    pst_metrics_register(metrics, &pm);
    hl_httpd_t *httpd = NULL;
    pst_consumer_t *consumer = pst_consumer_new(cfg, &pm, &stop_flag, err, sizeof(err));
    if (!consumer) {
        hl_error("%s", err);
        rc = HL_CONFIG_EXIT;
        goto out;
    }
    httpd = hl_httpd_start(&cfg->http, metrics, pst_consumer_ready, consumer, err, sizeof(err));
    if (!httpd) {
        hl_error("%s", err);
        goto out;
    }
    hl_info("persister listening on %s", cfg->http.listen);
    rc = pst_consumer_run(consumer) == 0 ? 0 : 1;
out:
    /* The consumer goes first: it finishes and commits the batch before anything else ends. */
    pst_consumer_free(consumer);
    hl_httpd_stop(httpd);
    hl_metrics_free(metrics);
    pst_metrics_deinit(&pm);
    pst_config_free(cfg);
    hl_info("persister stopped (exit %d)", rc);
    return rc;
}
