/* The replay engine. One thread per connection owns a fixed subset of the messages (message i
 * goes to thread i mod concurrency), so a message's events leave in order on one connection
 * and the next is sent only after the previous was answered 202. Open-loop, thread t's j-th
 * request is scheduled at start + (j * concurrency + t) / rate and its latency is measured
 * from that instant: if the server stalls, every request scheduled during the stall is
 * charged the time it waited, which is what a provider sending at that rate would see. */
#include "replay.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hl/util.h"
#include "http_client.h"

volatile sig_atomic_t cli_replay_stop;

typedef struct {
    const cli_replay_opts_t *o;
    cli_workload_t *w;
    unsigned index;                   /* this thread's number */
    int64_t start_us;                 /* common monotonic start */
    hl_hist_t *hist;                  /* shared, lock-free */
    atomic_uint_fast64_t *sent_total; /* for the progress line */
    cli_replay_results_t part;        /* this thread's counters (hist unused) */
    int64_t last_answer_us;
    int reached; /* 1 once any HTTP answer arrived */
} worker_t;

static void sleep_until(int64_t mono_us)
{
    struct timespec ts = {.tv_sec = mono_us / 1000000, .tv_nsec = (mono_us % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !cli_replay_stop)
        ;
}

/* Takes the request id from the header, else from the JSON body. */
static void take_request_id(const cli_http_response_t *resp, cli_wl_outcome_t *out)
{
    if (resp->request_id[0]) {
        (void)hl_strlcpy(out->request_id, resp->request_id, sizeof(out->request_id));
        return;
    }
    out->request_id[0] = '\0';
    if (!resp->body_len || resp->body[0] != '{') return;
    json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *id = json_object_get(j, "request_id");
    if (json_is_string(id))
        (void)hl_strlcpy(out->request_id, json_string_value(id), sizeof(out->request_id));
    json_decref(j);
}

/* Headers of one attempt: captured ones, content type, signature (signed afresh each attempt
 * so a retry after a long Retry-After is not refused as stale). */
static size_t build_headers(worker_t *wk, const cli_wl_req_t *rq, cli_sign_headers_t *sig,
                            cli_http_header_t *h, size_t cap)
{
    size_t n = 0;
    int have_ct = 0;
    for (size_t i = 0; i < rq->nheaders && n < cap - 1 - CLI_SIGN_MAX_HEADERS; i++) {
        if (wk->o->signer && sig->n) {
            /* Captured signatures would be stale; the fresh ones replace them. */
            int clash = 0;
            for (size_t s = 0; s < sig->n; s++)
                if (strcasecmp(rq->headers[i].name, sig->name[s]) == 0) clash = 1;
            if (clash) continue;
        }
        if (strcasecmp(rq->headers[i].name, "content-type") == 0) have_ct = 1;
        h[n++] = rq->headers[i];
    }
    if (!have_ct) h[n++] = (cli_http_header_t){"Content-Type", wk->o->content_type};
    for (size_t s = 0; s < sig->n; s++) h[n++] = (cli_http_header_t){sig->name[s], sig->value[s]};
    return n;
}

static int retryable(int status)
{
    return status == 429 || status == 503;
}

/* Sends one request with retries; fills rq->out. Returns 1 when it ended in a 202. */
static int send_one(worker_t *wk, cli_http_conn_t *conn, cli_wl_req_t *rq, int64_t first_us)
{
    const cli_replay_opts_t *o = wk->o;
    cli_wl_outcome_t *out = &rq->out;
    out->attempts = 0;
    for (;;) {
        cli_sign_headers_t sig = {0};
        cli_http_header_t hdr[CLI_WL_MAX_HEADERS + 2 + CLI_SIGN_MAX_HEADERS];
        if (o->signer && cli_sign(o->signer, rq->delivery_id, hl_now_us() / 1000000, rq->body,
                                  rq->body_len, &sig)) {
            out->status = -1;
            break;
        }
        size_t nh = build_headers(wk, rq, &sig, hdr, sizeof(hdr) / sizeof(hdr[0]));
        cli_http_response_t resp;
        int rc = cli_http_request(conn, "POST", o->path, hdr, nh, rq->body, rq->body_len, &resp);
        out->attempts++;
        int64_t wait_ms;
        if (rc == 0) {
            wk->reached = 1;
            out->status = resp.status;
            take_request_id(&resp, out);
            if (!retryable(resp.status)) break;
            wait_ms = resp.retry_after_s >= 0 ? resp.retry_after_s * 1000 : 1000;
        } else {
            wk->part.transport_errors++;
            out->status = -1;
            out->request_id[0] = '\0';
            wait_ms = 100 << (out->attempts < 6 ? out->attempts : 6);
        }
        if (out->attempts > o->max_retries || cli_replay_stop) break;
        if (wait_ms > o->max_retry_wait_ms) wait_ms = o->max_retry_wait_ms;
        wk->part.retries++;
        sleep_until(hl_mono_us() + wait_ms * 1000);
    }
    int64_t done = hl_mono_us();
    out->latency_us = done - first_us;
    out->answered_us = hl_now_us();
    wk->last_answer_us = done;
    hl_hist_record(wk->hist, out->latency_us);
    wk->part.sent++;
    atomic_fetch_add_explicit(wk->sent_total, 1, memory_order_relaxed);
    int cls = out->status > 0 ? out->status / 100 : 0;
    if (cls < 0 || cls > 5) cls = 5;
    wk->part.status[cls]++;
    if (out->status == 202) {
        wk->part.accepted++;
        return 1;
    }
    if (out->status >= 400 && out->status < 500 && out->status != 429)
        wk->part.rejected++;
    else
        wk->part.errors++;
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    const cli_replay_opts_t *o = wk->o;
    cli_http_conn_t *conn = cli_http_conn_new(o->host, o->port, 0, o->timeout_ms);
    uint64_t j = 0; /* this thread's request number, for the open-loop schedule */
    double step_us = o->rate > 0 ? 1e6 / o->rate : 0;
    for (size_t m = wk->index; m < wk->w->nmsgs && !cli_replay_stop; m += o->concurrency) {
        cli_wl_msg_t *msg = &wk->w->msgs[m];
        int failed = 0;
        for (size_t i = 0; i < msg->nreqs; i++) {
            cli_wl_req_t *rq = &msg->reqs[i];
            if (failed || cli_replay_stop) {
                rq->out.status = 0;
                wk->part.skipped++;
                continue;
            }
            int64_t first;
            if (step_us > 0) {
                first =
                    wk->start_us + (int64_t)(((double)j * o->concurrency + wk->index) * step_us);
                j++;
                if (first > hl_mono_us()) sleep_until(first);
            } else {
                first = hl_mono_us();
            }
            if (!send_one(wk, conn, rq, first)) failed = 1;
        }
    }
    wk->part.connections = cli_http_conn_opens(conn);
    cli_http_conn_free(conn);
    return NULL;
}

typedef struct {
    atomic_uint_fast64_t *sent;
    hl_hist_t *hist;
    atomic_int done;
    uint64_t total;
} progress_t;

static void *progress_main(void *arg)
{
    progress_t *p = arg;
    uint64_t last = 0;
    int64_t last_t = hl_mono_us();
    while (!atomic_load(&p->done)) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        for (int i = 0; i < 10 && !atomic_load(&p->done); i++) nanosleep(&ts, NULL);
        int64_t now = hl_mono_us();
        uint64_t s = atomic_load_explicit(p->sent, memory_order_relaxed);
        double rate = now > last_t ? (double)(s - last) * 1e6 / (double)(now - last_t) : 0;
        fprintf(stderr, "\r  sent %llu/%llu  rate %.0f req/s  p99 %.2f ms   ",
                (unsigned long long)s, (unsigned long long)p->total, rate,
                (double)hl_hist_percentile(p->hist, 99) / 1000.0);
        fflush(stderr);
        last = s;
        last_t = now;
    }
    fprintf(stderr, "\r%*s\r", 70, "");
    return NULL;
}

int cli_replay_run(const cli_replay_opts_t *o, cli_workload_t *w, cli_replay_results_t *r)
{
    memset(r, 0, sizeof(*r));
    r->latency_us = hl_hist_new();
    unsigned n = o->concurrency ? o->concurrency : 1;
    if (n > w->nmsgs) n = (unsigned)(w->nmsgs ? w->nmsgs : 1);
    cli_replay_opts_t eff = *o;
    eff.concurrency = n;
    atomic_uint_fast64_t sent_total = 0;
    worker_t *wk = hl_xcalloc(n, sizeof(*wk));
    pthread_t *th = hl_xcalloc(n, sizeof(*th));
    int64_t start = hl_mono_us() + 20000; /* a common start shortly after every thread exists */
    for (unsigned i = 0; i < n; i++) {
        wk[i] = (worker_t){.o = &eff,
                           .w = w,
                           .index = i,
                           .start_us = start,
                           .hist = r->latency_us,
                           .sent_total = &sent_total};
    }
    progress_t pr = {.sent = &sent_total, .hist = r->latency_us, .total = w->nreqs};
    atomic_init(&pr.done, 0);
    pthread_t pth;
    int have_progress = o->progress && pthread_create(&pth, NULL, progress_main, &pr) == 0;
    sleep_until(start);
    unsigned started = 0;
    for (; started < n; started++)
        if (pthread_create(&th[started], NULL, worker_main, &wk[started]) != 0) break;
    for (unsigned i = 0; i < started; i++) pthread_join(th[i], NULL);
    atomic_store(&pr.done, 1);
    if (have_progress) pthread_join(pth, NULL);
    int64_t end = start;
    int reached = 0;
    for (unsigned i = 0; i < started; i++) {
        cli_replay_results_t *p = &wk[i].part;
        r->sent += p->sent;
        r->accepted += p->accepted;
        r->rejected += p->rejected;
        r->errors += p->errors;
        r->transport_errors += p->transport_errors;
        r->retries += p->retries;
        r->skipped += p->skipped;
        r->connections += p->connections;
        for (int c = 0; c < 6; c++) r->status[c] += p->status[c];
        if (wk[i].last_answer_us > end) end = wk[i].last_answer_us;
        reached |= wk[i].reached;
    }
    r->duration_s = (double)(end - start) / 1e6;
    r->throughput_rps = r->duration_s > 0 ? (double)r->sent / r->duration_s : 0;
    free(wk);
    free(th);
    if (started < n) return HL_EIO;
    return reached ? 0 : HL_EIO;
}

void cli_replay_results_free(cli_replay_results_t *r)
{
    hl_hist_free(r->latency_us);
    r->latency_us = NULL;
}
