/* The replay engine: sends a workload to the ingress over keep-alive connections, closed-loop
 * or open-loop at a fixed rate with latencies measured from each request's scheduled send
 * time (so a stalled server cannot hide its stall), one message's events strictly in order. */
#ifndef CLI_REPLAY_H
#define CLI_REPLAY_H

#include <signal.h>
#include <stdint.h>

#include "hl/hist.h"
#include "sign.h"
#include "workload.h"

typedef struct {
    const char *host;           /* ingress host */
    int port;                   /* ingress port */
    const char *path;           /* "/v1/webhooks/<source>" */
    const char *content_type;   /* "application/json" unless captured headers say otherwise */
    const cli_signer_t *signer; /* borrowed; NULL = no authentication headers */
    unsigned concurrency;       /* connections (one thread each), 1..1024 */
    double rate;                /* requests per second, open-loop; 0 = closed-loop */
    unsigned max_retries;       /* retries of a 429/503/transport error per request */
    int64_t max_retry_wait_ms;  /* cap on one Retry-After wait */
    int timeout_ms;             /* per connect/write/read */
    int progress;               /* 1 = a progress line on stderr once a second */
} cli_replay_opts_t;

typedef struct {
    uint64_t sent;             /* requests sent at least once (duplicates included) */
    uint64_t accepted;         /* answered 202 in the end */
    uint64_t rejected;         /* ended in a 4xx other than 429 */
    uint64_t errors;           /* ended in a 5xx, a 429 after all retries, or a transport error */
    uint64_t transport_errors; /* attempts that got no HTTP answer at all */
    uint64_t retries;          /* attempts beyond the first */
    uint64_t skipped;          /* not sent because an earlier event of the message failed */
    uint64_t status[6];        /* final answers by class: [1] 1xx … [5] 5xx, [0] transport */
    uint64_t connections;      /* TCP connections opened */
    double duration_s;         /* first scheduled send to last answer */
    double throughput_rps;     /* sent / duration_s */
    hl_hist_t *latency_us;     /* one value per sent request; owned (cli_replay_results_free) */
} cli_replay_results_t;

/* Runs the workload; outcomes are written into each request's `out`. Returns 0, or HL_EIO
 * when not a single request could reach the ingress (connection refused throughout).
 * Blocks the calling thread; starts and joins `concurrency` threads. */
/* Set (e.g. from SIGINT) to stop scheduling: threads finish the request in hand, leave the rest
 * unsent and the run reports what it has. */
extern volatile sig_atomic_t cli_replay_stop;

int cli_replay_run(const cli_replay_opts_t *o, cli_workload_t *w,
                   cli_replay_results_t *r) HL_MUST_CHECK;
void cli_replay_results_free(cli_replay_results_t *r);

#endif
