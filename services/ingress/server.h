/* The HTTP side of the ingress: civetweb started with hookline's limits, the webhook
 * handlers, /healthz, /readyz, /metrics, and draining. */
#ifndef ING_SERVER_H
#define ING_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "hl/metrics.h"
#include "producer.h"
#include "sources.h"

typedef struct ing_server ing_server_t;

/* Starts listening. cfg, producer and metrics are borrowed and must outlive the server;
 * sources is a snapshot (ing_sources_new) whose reference the server takes on success (the
 * caller keeps it on failure). The workers' body buffers hold the largest max_body of these
 * sources: a later snapshot may not raise it. Returns NULL with errbuf filled (address in
 * use, bad option). */
ing_server_t *ing_server_start(const ing_config_t *cfg, ing_sources_t *sources,
                               ing_producer_t *producer, hl_metrics_t *metrics, char *errbuf,
                               size_t errcap);

/* Starts draining: /readyz fails and new webhook requests get 503 at once. Then waits until
 * no request is in flight or timeout_ms passed. Returns the number still in flight. Main
 * thread. */
int ing_server_drain(ing_server_t *s, int timeout_ms);

/* Makes `next` (a snapshot; its reference is taken) the sources new requests see; requests in
 * flight finish with the one they started with, freed when the last of them is done. Any
 * thread (main, on reload). */
void ing_server_swap_sources(ing_server_t *s, ing_sources_t *next);

/* Stops civetweb (joins its threads) and frees the server and its sources. NULL-safe. */
void ing_server_stop(ing_server_t *s);

#endif
