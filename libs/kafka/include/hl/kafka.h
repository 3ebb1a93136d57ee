/* Kafka helpers: librdkafka configuration from hl_kafka_config_t, and waiting for a broker. */
#ifndef HL_KAFKA_H
#define HL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "hl/config.h"
#include "hl/error.h"

/* Builds a new rd_kafka_conf_t owned by the caller: bootstrap.servers and client.id from
 * `k`, then `defaults` (NULL-terminated "key", "value" pairs, hookline's own settings for this
 * role), then k->properties ("key=value", so operators can override anything). Returns NULL
 * and fills errbuf naming the property on a bad key or value ("kafka: property 'KEY': why");
 * the value of a credential property (password, secret, key material) is never echoed. */
rd_kafka_conf_t *hl_kafka_conf(const hl_kafka_config_t *k, const char *const *defaults,
                               char *errbuf, size_t errcap);

/* Waits until the cluster answers a metadata request, at most timeout_ms. Returns 0 or
 * HL_ETIMEDOUT. Runs on the calling thread. */
int hl_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms) HL_MUST_CHECK;

/* Returns the value of header `name` (the last one when repeated) as a NUL-terminated copy
 * into buf (cap bytes), or HL_ENOTFOUND / HL_ETOOBIG (value needs cap or more bytes) /
 * HL_EPARSE (value contains a NUL byte). A header with a null value reads as "". */
int hl_kafka_header(rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t cap) HL_MUST_CHECK;

/* Translates a librdkafka error to an HL_E* code. */
int hl_kafka_err(rd_kafka_resp_err_t err);

#endif
