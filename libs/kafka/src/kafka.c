/* librdkafka glue shared by the services: configuration built from hookline's config with
 * operator overrides, a readiness wait, bounded header reads, delivery outcomes and seeks. */
#include "hl/kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest property name librdkafka knows is well under this; longer is a typo or an attack. */
#define PROP_KEY_MAX 128

/* Property names whose values are credentials: an error about them never repeats librdkafka's
 * message, which may quote the value. */
static bool secret_property(const char *key)
{
    static const char *const marks[] = {"password",    "secret",  "sasl.oauthbearer.config",
                                        "ssl.key.pem", "ssl_key", "ssl.keystore"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(key, marks[i]) != NULL) return true;
    return false;
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                    size_t errcap)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) == RD_KAFKA_CONF_OK) return 0;
    if (secret_property(key))
        snprintf(errbuf, errcap, "kafka: property '%s': invalid value (not shown)", key);
    else
        snprintf(errbuf, errcap, "kafka: property '%s': %s", key, why);
    return HL_ECONFIG;
}

/* Splits "key=value" into key (copied into keybuf) and a pointer to the value. */
static int split_property(const char *kv, char *keybuf, size_t keycap, const char **value,
                          char *errbuf, size_t errcap)
{
    const char *eq = kv ? strchr(kv, '=') : NULL;
    if (eq == NULL || eq == kv || (size_t)(eq - kv) >= keycap) {
        /* Show at most the first 40 bytes: without '=' we cannot tell a key from a value. */
        snprintf(errbuf, errcap, "kafka: property '%.40s': expected \"key=value\"", kv ? kv : "");
        return HL_ECONFIG;
    }
    memcpy(keybuf, kv, (size_t)(eq - kv));
    keybuf[eq - kv] = '\0';
    *value = eq + 1;
    return 0;
}

hl_log_level_t hl_kafka_log_level(int syslog_level)
{
    if (syslog_level <= 3) return HL_LOG_ERROR; /* emerg, alert, crit, err */
    if (syslog_level == 4) return HL_LOG_WARN;
    if (syslog_level <= 6) return HL_LOG_INFO; /* notice, info */
    return HL_LOG_DEBUG;
}

static void log_line(hl_log_level_t level, const rd_kafka_t *rk, const char *fac, const char *buf)
{
    if (!hl_log_enabled(level)) return;
    char kv[256];
    size_t len = 0;
    kv[0] = '\0';
    hl_log_kv_str(kv, sizeof kv, &len, "component", "librdkafka");
    if (rk != NULL) hl_log_kv_str(kv, sizeof kv, &len, "client", rd_kafka_name(rk));
    if (fac != NULL) hl_log_kv_str(kv, sizeof kv, &len, "facility", fac);
    hl_log_write(level, NULL, kv, "%s", buf ? buf : "");
}

void hl_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_line(hl_kafka_log_level(level), rk, fac, buf);
}

void hl_kafka_log_debug(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)level;
    log_line(HL_LOG_DEBUG, rk, fac, buf);
}

/* Sets one secret property, its value read with hl_secret_load and wiped after use. Errors
 * name the property and where its value was looked for, never the value. */
static int set_secret_property(rd_kafka_conf_t *conf, const hl_secret_property_t *p, bool shared_ok,
                               char *errbuf, size_t errcap)
{
    char *value = NULL;
    size_t len = 0;
    /* An empty variable is a mistake (an unset shell variable exported, a missing Kubernetes
     * secret key), never a password: refused, rather than set empty over the file. */
    const char *ev = p->env != NULL ? getenv(p->env) : NULL;
    if (ev != NULL && ev[0] == '\0') {
        snprintf(errbuf, errcap,
                 "kafka: secret property '%s' (env %s, file %s): environment variable set but "
                 "empty (unset it, or give it the value)",
                 p->name, p->env, p->file ? p->file : "-");
        return HL_ECONFIG;
    }
    int rc = hl_secret_load(p->env, p->file, shared_ok, &value, &len);
    if (rc != 0) {
        snprintf(errbuf, errcap, "kafka: secret property '%s' (env %s, file %s): %s", p->name,
                 p->env ? p->env : "-", p->file ? p->file : "-",
                 rc == HL_EINVAL   ? "file readable by group or others"
                 : rc == HL_ESTATE ? "not a regular file"
                                   : hl_strerror(rc));
        return HL_ECONFIG;
    }
    char why[512]; /* librdkafka's reason may quote the value: not passed on */
    rc = rd_kafka_conf_set(conf, p->name, value, why, sizeof why) == RD_KAFKA_CONF_OK ? 0
                                                                                      : HL_ECONFIG;
    explicit_bzero(value, len);
    explicit_bzero(why, sizeof why);
    free(value);
    if (rc != 0)
        snprintf(errbuf, errcap, "kafka: secret property '%s': refused (value not shown)", p->name);
    return rc;
}

rd_kafka_t *hl_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errbuf, size_t errcap)
{
    rd_kafka_t *rk = rd_kafka_new(type, conf, errbuf, errcap);
    if (!rk) rd_kafka_conf_destroy(conf);
    return rk;
}

rd_kafka_conf_t *hl_kafka_conf(const hl_kafka_config_t *k, const char *const *defaults,
                               char *errbuf, size_t errcap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, hl_kafka_log);
    int rc = 0;
    if (k->brokers && k->brokers[0])
        rc = conf_set(conf, "bootstrap.servers", k->brokers, errbuf, errcap);
    if (rc == 0 && k->client_id && k->client_id[0])
        rc = conf_set(conf, "client.id", k->client_id, errbuf, errcap);
    for (size_t i = 0; rc == 0 && defaults && defaults[i]; i += 2) {
        if (defaults[i + 1] == NULL) {
            snprintf(errbuf, errcap, "kafka: property '%s': default has no value", defaults[i]);
            rc = HL_EINVAL;
            break;
        }
        rc = conf_set(conf, defaults[i], defaults[i + 1], errbuf, errcap);
    }
    for (unsigned i = 0; rc == 0 && i < k->properties_count; i++) {
        char key[PROP_KEY_MAX];
        const char *value = NULL;
        rc = split_property(k->properties[i], key, sizeof key, &value, errbuf, errcap);
        if (rc == 0) rc = conf_set(conf, key, value, errbuf, errcap);
    }
    for (unsigned i = 0; rc == 0 && i < k->secret_properties_count; i++)
        rc = set_secret_property(conf, &k->secret_properties[i], k->secret_files_shared, errbuf,
                                 errcap);
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hl_kafka_wait_ready(rd_kafka_t *rk, int timeout_ms)
{
    long long deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        long long left = deadline - mono_ms();
        if (left <= 0) return HL_ETIMEDOUT;
        /* Each try is bounded so a slow first answer does not eat the whole budget. */
        int slice = left > 1000 ? 1000 : (int)left;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, slice);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int brokers = md->broker_cnt;
            rd_kafka_metadata_destroy(md);
            if (brokers > 0) return 0;
        }
        /* Some failures (refused connection, no brokers yet) come back at once: pace the
         * retries so waiting never spins. */
        left = deadline - mono_ms();
        if (left > 0) {
            long pause_ms = left < 100 ? (long)left : 100;
            struct timespec pause = {0, pause_ms * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
}

int hl_kafka_header(rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t cap)
{
    if (cap == 0) return HL_ETOOBIG;
    buf[0] = '\0';
    if (hdrs == NULL) return HL_ENOTFOUND;
    const void *val = NULL;
    size_t size = 0;
    if (rd_kafka_header_get_last(hdrs, name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return HL_ENOTFOUND;
    if (val == NULL) size = 0; /* a null header reads as empty */
    if (size >= cap) return HL_ETOOBIG;
    /* The copy is NUL-terminated text; an embedded NUL would silently cut it short. */
    if (size > 0 && memchr(val, '\0', size) != NULL) return HL_EPARSE;
    if (size > 0) memcpy(buf, val, size);
    buf[size] = '\0';
    return 0;
}

rd_kafka_resp_err_t hl_kafka_delivery_err(const rd_kafka_message_t *m)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) return m->err;
    return m->offset < 0 ? RD_KAFKA_RESP_ERR__INCONSISTENT : RD_KAFKA_RESP_ERR_NO_ERROR;
}

int hl_kafka_seek(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, int timeout_ms,
                  const char *what)
{
    if (l->cnt == 0) return 0;
    int rc = 0;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, l, timeout_ms);
    if (e) {
        hl_warn("seeking %s: %s", what, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = HL_EKAFKA;
    }
    for (int i = 0; i < l->cnt; i++) {
        if (!l->elems[i].err) continue;
        hl_warn("seeking %s, partition %d: %s", what, l->elems[i].partition,
                rd_kafka_err2str(l->elems[i].err));
        rc = HL_EKAFKA;
    }
    return rc;
}
