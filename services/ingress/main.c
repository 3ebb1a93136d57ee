/* hookline-ingress: loads the configuration, starts the producer and the HTTP server, reloads
 * the sources on SIGHUP or a changed config or secret file, and drains on SIGTERM/SIGINT
 * (readiness off, new requests 503, in-flight ones finish, producer flushed, exit 0). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "hl/log.h"
#include "hl/metrics.h"
#include "hl/util.h"
#include "producer.h"
#include "reload.h"
#include "server.h"
#include "sources.h"

static void usage(FILE *to)
{
    fprintf(to, "usage: hookline-ingress --config FILE\n"
                "Answers webhooks and produces them to Kafka; see services/ingress/README.md.\n");
}

/* Blocks SIGTERM/SIGINT/SIGHUP in every thread (civetweb and librdkafka threads inherit the
 * mask) so that main alone receives them through sigtimedwait; SIGUSR1/SIGUSR2 too when the
 * test hook is on (test_fault_signals), else they keep their default action. */
static void block_signals(sigset_t *set, bool fault_signals)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    if (fault_signals) {
        sigaddset(set, SIGUSR1);
        sigaddset(set, SIGUSR2);
    }
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Reloads the sources (why: what asked for it), or logs in one line why the running
 * configuration stays. Main thread. */
static void reload(ing_reload_t *rl, ing_server_t *s, ing_sources_t **current, const char *why)
{
    char err[HL_CONFIG_ERRBUF] = "";
    ing_sources_t *next = ing_reload_build(rl, *current, err, sizeof(err));
    if (next == NULL) {
        hl_error("config reload (%s) refused, the running configuration stays: %s", why, err);
        return;
    }
    ing_sources_unref(*current);
    *current = ing_sources_ref(next);
    ing_server_swap_sources(s, next);
    hl_info("config reloaded (%s): %zu sources", why, next->n);
}

/* Waits for a signal, reloading on SIGHUP and when a watched file changes; returns on
 * SIGTERM/SIGINT. `current` is main's own reference of the running snapshot. */
static void serve(const ing_config_t *cfg, ing_reload_t *rl, ing_server_t *s, ing_producer_t *p,
                  ing_sources_t **current)
{
    sigset_t set;
    block_signals(&set, cfg->test_fault_signals);
    struct timespec poll = {cfg->reload_poll_ms / 1000,
                            (long)(cfg->reload_poll_ms % 1000) * 1000000};
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &poll);
        if (sig < 0) {
            if (errno == EAGAIN && ing_reload_changed(rl)) reload(rl, s, current, "file changed");
        } else if (sig == SIGHUP) {
            reload(rl, s, current, "SIGHUP");
        } else if (sig == SIGUSR1 || sig == SIGUSR2) {
            /* The test hook: a fatal librdkafka error on demand, as a broker failover can raise. */
            hl_warn("signal %d: test hook, failing the %s producer", sig,
                    sig == SIGUSR1 ? "events" : "lineage");
            ing_producer_inject_fatal(p, sig == SIGUSR2, "test hook (test_fault_signals)");
        } else {
            hl_info("signal %d: draining", sig);
            return;
        }
    }
}

static int run(const char *path, const ing_config_t *cfg)
{
    char err[HL_CONFIG_ERRBUF] = "";
    int rc = 1;
    hl_metrics_t *m = hl_metrics_new();
    ing_producer_t *p = NULL;
    ing_server_t *s = NULL;
    ing_reload_t *rl = ing_reload_new(path, cfg, m);
    ing_sources_t *sources = ing_sources_new(cfg, NULL, NULL, m, err, sizeof(err));
    if (sources == NULL) {
        hl_error("%s", err);
        ing_reload_free(rl);
        hl_metrics_free(m);
        return HL_CONFIG_EXIT;
    }
    p = ing_producer_new(cfg, m, err, sizeof(err));
    if (p == NULL) {
        hl_error("%s", err);
        goto out;
    }
    s = ing_server_start(cfg, ing_sources_ref(sources), p, m, err, sizeof(err));
    if (s == NULL) {
        ing_sources_unref(sources); /* the reference meant for the server */
        hl_error("%s", err);
        goto out;
    }
    char kv[256];
    size_t n = 0;
    kv[0] = '\0';
    hl_log_kv_str(kv, sizeof(kv), &n, "listen", cfg->http.listen);
    hl_log_kv_str(kv, sizeof(kv), &n, "metrics_listen", cfg->metrics_listen);
    hl_log_kv_str(kv, sizeof(kv), &n, "ack_mode", cfg->ack_mode);
    hl_log_kv_int(kv, sizeof(kv), &n, "sources", (long long)cfg->sources_count);
    HL_LOG(HL_LOG_INFO, NULL, kv, "ingress started");

    serve(cfg, rl, s, p, &sources);
    int64_t t0 = hl_mono_us();
    int left = ing_server_drain(s, (int)cfg->drain_timeout_ms);
    if (left > 0) hl_warn("drain timeout with %d requests in flight", left);
    ing_server_stop(s);
    s = NULL;
    int remaining = (int)cfg->drain_timeout_ms - (int)((hl_mono_us() - t0) / 1000);
    if (ing_producer_flush(p, remaining > 1000 ? remaining : 1000) != 0)
        hl_warn("producer flush timed out");
    rc = 0;
    hl_info("drained, exiting");
out:
    ing_server_stop(s);
    ing_producer_free(p);
    ing_reload_free(rl);
    ing_sources_unref(sources);
    hl_metrics_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path;
    int args = hl_config_args(argc, argv, &path);
    if (args != 0) {
        usage(args > 0 ? stdout : stderr);
        return args > 0 ? 0 : HL_CONFIG_EXIT;
    }
    /* Signals are blocked before any thread starts so none of them can take a SIGTERM. */
    sigset_t set;
    block_signals(&set, false);
    hl_log_init("ingress", HL_LOG_INFO);
    char err[HL_CONFIG_ERRBUF] = "";
    ing_config_t *cfg = NULL;
    if (ing_config_load(path, &cfg, err, sizeof(err)) != 0) {
        hl_error("%s", err);
        return HL_CONFIG_EXIT;
    }
    hl_log_level_t lvl = HL_LOG_INFO;
    if (hl_log_level_parse(cfg->log_level, &lvl) == 0) hl_log_init("ingress", lvl);
    int rc = run(path, cfg);
    ing_config_free(cfg);
    return rc;
}
