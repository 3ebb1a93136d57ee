/* The ingress's Kafka producer: an idempotent acks=all librdkafka producer, a pool of
 * delivery waiters so a civetweb worker can block until its record is acknowledged (or its
 * deadline passes), a thread serving delivery reports, and a background broker health check. */
#ifndef ING_PRODUCER_H
#define ING_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "hl/error.h"
#include "hl/metrics.h"

typedef struct ing_producer ing_producer_t;

/* One Kafka header of an event (all borrowed; copied by librdkafka). */
typedef struct {
    const char *name;
    const char *value;
    size_t len;
} ing_kv_t;

#define ING_EVENT_HEADERS 8

/* One event to produce (all borrowed for the duration of the call; copied). */
typedef struct {
    const char *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    ing_kv_t headers[ING_EVENT_HEADERS];
    size_t nheaders;
} ing_event_t;

/* What happened to an event. */
typedef struct {
    int err;           /* 0 stored; HL_EAGAIN (queue or waiter pool full, fatal producer),
                          HL_ETIMEDOUT (deadline passed), HL_EKAFKA (delivery failed) */
    int32_t partition; /* when err == 0 and the ack was awaited, else -1 */
    int64_t offset;    /* idem */
} ing_ack_t;

/* Creates the producer and starts its threads: one polling each librdkafka handle, and a
 * supervisor that checks the broker once a second and replaces a handle that librdkafka
 * declared fatal (counted in hookline_ingress_kafka_producer_restarts_total). `cfg` and
 * `m` are borrowed and must outlive the producer. Returns NULL with errbuf filled (bad property,
 * librdkafka refused). */
ing_producer_t *ing_producer_new(const ing_config_t *cfg, hl_metrics_t *m, char *errbuf,
                                 size_t errcap);

/* Produces an event to the events topic. With `wait` (durable mode) blocks the calling worker
 * until the delivery report or until monotonic time deadline_us, whichever is first; without
 * it returns once the record is queued. Never blocks on a full queue. Any thread. */
void ing_producer_send(ing_producer_t *p, const ing_event_t *ev, bool wait, int64_t deadline_us,
                       ing_ack_t *ack);

/* Produces n events (a split batch) as ing_producer_send does one, each with its own ack in
 * acks[n]: all are queued before any is awaited, so the batch costs one round trip, not n.
 * With `wait`, n delivery waiters are taken at once, waiting until deadline_us for the pool
 * to hold that many; when it does not by then (or n is more than max_in_flight), nothing is
 * produced and every ack is HL_EAGAIN. Any thread. */
void ing_producer_send_many(ing_producer_t *p, const ing_event_t *evs, size_t n, bool wait,
                            int64_t deadline_us, ing_ack_t *acks);

/* Queues one lineage record (key = request id) without waiting; while the lineage handle is
 * fatal and not yet replaced, a copy is held for its successor (at most 20,000). A record that
 * cannot be queued, held or delivered is counted in hookline_ingress_lineage_dropped_total.
 * Any thread. */
void ing_producer_lineage(ing_producer_t *p, const char *key, const char *json, size_t len);

/* True when the broker answered the last background check and the producer is usable. */
bool ing_producer_ready(const ing_producer_t *p);
/* True while the current events handle is fatal: from librdkafka's fatal error until the
 * supervisor has replaced it (normally well under a second). */
bool ing_producer_fatal(const ing_producer_t *p);

/* Test hook: makes librdkafka raise a fatal idempotent-producer error (out of order sequence
 * number) on the current events handle, or on the lineage handle, as a failover can. `reason`
 * is borrowed. Any thread. */
void ing_producer_inject_fatal(ing_producer_t *p, bool lineage, const char *reason);

/* Flushes queued records for at most timeout_ms. Returns 0 or HL_ETIMEDOUT. */
int ing_producer_flush(ing_producer_t *p, int timeout_ms) HL_MUST_CHECK;

/* The current librdkafka handles of events and of lineage (borrowed, valid until the next
 * replacement), for tests that drive librdkafka's mock cluster. */
rd_kafka_t *ing_producer_handle(ing_producer_t *p);
rd_kafka_t *ing_producer_lineage_handle(ing_producer_t *p);

/* Stops the threads and destroys the producer (pending waiters are released). NULL-safe.
 * Call ing_producer_flush first to deliver what is queued. */
void ing_producer_free(ing_producer_t *p);

#endif
