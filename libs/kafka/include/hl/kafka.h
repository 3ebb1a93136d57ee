/* Kafka helpers: librdkafka configuration from hl_kafka_config_t, and waiting for a broker. */
#ifndef HL_KAFKA_H
#define HL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

#include "hl/config.h"
#include "hl/error.h"
#include "hl/log.h"

/* Builds a new rd_kafka_conf_t owned by the caller: bootstrap.servers and client.id from
 * `k`, then `defaults` (NULL-terminated "key", "value" pairs, hookline's own settings for this
 * role), then k->properties ("key=value", so operators can override anything). librdkafka's
 * own log lines go through hl_kafka_log, so they are JSON lines like the service's. Returns NULL
 * and fills errbuf naming the property on a bad key or value ("kafka: property 'KEY': why");
 * the value of a credential property (password, secret, key material) is never echoed. */
rd_kafka_conf_t *hl_kafka_conf(const hl_kafka_config_t *k, const char *const *defaults,
                               char *errbuf, size_t errcap);

/* rd_kafka_new(type, conf) that takes conf in every case: the handle's on success, destroyed on
 * failure (errbuf then holds librdkafka's reason). Returns the handle, owned by the caller
 * (rd_kafka_destroy), or NULL. */
rd_kafka_t *hl_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errbuf, size_t errcap);

/* librdkafka log callbacks writing one hookline JSON log line per librdkafka line, with
 * "component":"librdkafka", the handle's name as "client" and librdkafka's facility. hl_kafka_log
 * keeps librdkafka's severity (syslog 0-3 error, 4 warn, 5-6 info, 7 debug); hl_kafka_log_debug
 * writes every line at debug level, for a second handle whose lines repeat another's. */
void hl_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
void hl_kafka_log_debug(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* The hookline log level of a librdkafka (syslog) level. */
hl_log_level_t hl_kafka_log_level(int syslog_level);

/* Waits until the cluster answers a metadata request, at most timeout_ms. Returns 0 or
 * HL_ETIMEDOUT. Runs on the calling thread. */
int hl_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms) HL_MUST_CHECK;

/* Returns the value of header `name` (the last one when repeated) as a NUL-terminated copy
 * into buf (cap bytes), or HL_ENOTFOUND / HL_ETOOBIG (value needs cap or more bytes) /
 * HL_EPARSE (value contains a NUL byte). A header with a null value reads as "". */
int hl_kafka_header(rd_kafka_headers_t *hdrs, const char *name, char *buf,
                    size_t cap) HL_MUST_CHECK;

/* The outcome of a delivery report: its error, or RD_KAFKA_RESP_ERR__INCONSISTENT for a
 * success without an offset. An acks=all acknowledgement always carries the record's offset;
 * librdkafka also reports success, with no offset, for records of an idempotent producer
 * that it only assumes were stored (a refused first request to a partition overtaken by a
 * later one that the broker accepted), and such a record can be in no log at all. Every
 * producer whose reports promise durability decides by this, never by m->err alone. */
rd_kafka_resp_err_t hl_kafka_delivery_err(const rd_kafka_message_t *m);

/* Seeks every partition of l (their .offset) at once, at most timeout_ms; a failure of the call
 * or of any partition is logged as a warning naming `what` and the partition. Returns 0 or
 * HL_EKAFKA. Consumer's thread. */
int hl_kafka_seek(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, int timeout_ms,
                  const char *what) HL_MUST_CHECK;

#endif
