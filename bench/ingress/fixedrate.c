/* Fixed-rate HTTP load: sends requests from a prepared file at RATE per second in total over
 * CONNS keep-alive connections for SECONDS, and reports latency percentiles measured from
 * each request's scheduled send time (so a stalled server is not hidden by the client
 * slowing down). Usage: fixedrate HOST PORT RATE SECONDS CONNS REQUESTS_FILE */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define USAGE "usage: fixedrate HOST PORT RATE SECONDS CONNS REQUESTS_FILE\n"

typedef struct {
    char *p;
    size_t n;
} req_t;

static req_t *reqs;
static size_t nreqs;
static const char *host;
static int port;
static double rate;
static int seconds, conns;
static int64_t start_ns;

typedef struct {
    int id;
    int64_t *lat; /* ns */
    size_t nlat, cap;
    long non202, errors;
} worker_t;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one response; returns its status or -1. */
static int read_response(int fd)
{
    char buf[8192];
    size_t got = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0) return -1;
        got += (size_t)r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) continue;
        char *cl = strcasestr(buf, "Content-Length:");
        size_t body = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
        size_t need = (size_t)(end + 4 - buf) + body;
        if (need > sizeof(buf) - 1) return -1; /* not an answer this client expects */
        while (got < need) {
            r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
            if (r <= 0) return -1;
            got += (size_t)r;
        }
        return (int)strtol(buf + 9, NULL, 10);
    }
}

static void *run(void *arg)
{
    worker_t *w = arg;
    int fd = dial();
    double interval = 1e9 * conns / rate;
    int64_t next = start_ns + (int64_t)(interval * w->id / conns);
    int64_t end = start_ns + (int64_t)seconds * 1000000000;
    size_t k = (size_t)w->id;
    while (next < end) {
        struct timespec ts = {next / 1000000000, next % 1000000000};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (fd < 0) fd = dial();
        req_t *q = &reqs[k % nreqs];
        k += (size_t)conns;
        int status = -1;
        if (fd >= 0 && send(fd, q->p, q->n, MSG_NOSIGNAL) == (ssize_t)q->n)
            status = read_response(fd);
        int64_t done = now_ns();
        if (status < 0) {
            w->errors++;
            if (fd >= 0) close(fd);
            fd = -1;
        } else if (status != 202) {
            w->non202++;
        }
        if (w->nlat < w->cap) w->lat[w->nlat++] = done - next;
        next += (int64_t)interval;
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "fixedrate: out of memory\n");
        exit(1);
    }
    return p;
}

/* The requests file: "LENGTH\n" then LENGTH bytes, repeated. */
static void load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fixedrate: %s: cannot open\n", path);
        exit(2);
    }
    size_t cap = 0;
    unsigned long len;
    while (fscanf(f, "%lu", &len) == 1 && fgetc(f) == '\n' && len > 0 && len <= (1ul << 24)) {
        if (nreqs == cap) {
            cap = cap ? cap * 2 : 1024;
            req_t *grown = realloc(reqs, cap * sizeof(req_t));
            if (grown == NULL) exit(1);
            reqs = grown;
        }
        reqs[nreqs].p = xmalloc(len);
        reqs[nreqs].n = len;
        if (fread(reqs[nreqs].p, 1, len, f) != len) break;
        nreqs++;
    }
    fclose(f);
}

/* A whole number in [min, max], or exit 2 with the usage line. */
static long arg_num(const char *s, long min, long max, const char *what)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "fixedrate: %s must be %ld..%ld, not '%s'\n%s", what, min, max, s, USAGE);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fputs(USAGE, stderr);
        return 2;
    }
    struct in_addr probe;
    host = argv[1];
    if (inet_pton(AF_INET, host, &probe) != 1) {
        fprintf(stderr, "fixedrate: HOST must be an IPv4 address, not '%s'\n%s", host, USAGE);
        return 2;
    }
    port = (int)arg_num(argv[2], 1, 65535, "PORT");
    rate = (double)arg_num(argv[3], 1, 10000000, "RATE");
    seconds = (int)arg_num(argv[4], 1, 86400, "SECONDS");
    conns = (int)arg_num(argv[5], 1, 4096, "CONNS");
    load(argv[6]);
    if (nreqs == 0) {
        fprintf(stderr, "fixedrate: %s holds no request\n%s", argv[6], USAGE);
        return 2;
    }
    worker_t *ws = xmalloc((size_t)conns * sizeof(worker_t));
    pthread_t *th = xmalloc((size_t)conns * sizeof(pthread_t));
    memset(ws, 0, (size_t)conns * sizeof(worker_t));
    start_ns = now_ns() + 100000000;
    for (int i = 0; i < conns; i++) {
        ws[i].id = i;
        ws[i].cap = (size_t)(rate * seconds / conns) + 16;
        ws[i].lat = xmalloc(ws[i].cap * sizeof(int64_t));
        if (pthread_create(&th[i], NULL, run, &ws[i]) != 0) {
            fprintf(stderr, "fixedrate: cannot start connection thread %d\n", i);
            return 1;
        }
    }
    size_t total = 0;
    long non202 = 0, errors = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        total += ws[i].nlat;
        non202 += ws[i].non202;
        errors += ws[i].errors;
    }
    int64_t *all = xmalloc((total + 1) * sizeof(int64_t));
    size_t o = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(all + o, ws[i].lat, ws[i].nlat * sizeof(int64_t));
        o += ws[i].nlat;
    }
    qsort(all, total, sizeof(int64_t), cmp);
    double q[] = {50, 90, 99, 99.9, 100};
    printf("fixedrate: %zu requests at %.0f/s over %d s, %d connections, non-202 %ld, errors %ld\n",
           total, rate, seconds, conns, non202, errors);
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]) && total > 0; i++) {
        size_t idx = (size_t)(q[i] / 100.0 * (double)(total - 1));
        printf("  p%-5g %8.3f ms\n", q[i], (double)all[idx] / 1e6);
    }
    return 0;
}
