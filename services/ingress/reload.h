/* Reloading the sources without a restart: on SIGHUP, or when the config file or a secret
 * file it names changes on disk (polled every reload_poll_ms; a Kubernetes secret mount swaps
 * a symlink, which changes the file a path resolves to), the configuration is loaded and
 * validated again and a new sources snapshot is built. Only the sources (and default_source)
 * change live: a new configuration that changes anything else, or fails validation, is
 * refused whole and the running one stays. */
#ifndef ING_RELOAD_H
#define ING_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hl/metrics.h"
#include "sources.h"

typedef struct ing_reload ing_reload_t;

/* Watches `path` (borrowed, must outlive the result) and the secret files `running` names;
 * made before the secrets are first read, so a change while the process starts is seen.
 * `running` is the configuration the process started with (borrowed, must outlive the
 * result): every key outside the sources is held to it, and no max_body may pass its
 * largest (the workers' buffers). Registers hookline_ingress_config_reloads_total{result}.
 * Aborts on out-of-memory. Main thread. */
ing_reload_t *ing_reload_new(const char *path, const ing_config_t *running, hl_metrics_t *m);
void ing_reload_free(ing_reload_t *r);

/* Has the config file or a watched secret file changed (another file, size, mtime or
 * ctime, or appeared or vanished) since the last call or the last reload? Main thread. */
bool ing_reload_changed(ing_reload_t *r);

/* Loads the configuration again and builds its sources, sharing rate limiters with
 * `current` (borrowed). Returns the new snapshot (one reference, the caller's), or NULL with
 * errbuf naming what was refused; counts the outcome either way. Main thread. */
ing_sources_t *ing_reload_build(ing_reload_t *r, const ing_sources_t *current, char *errbuf,
                                size_t errcap);

/* The first key of `next` outside the sources that differs from `running` ("http.listen",
 * "kafka", "max_in_flight", ...), or NULL when only sources and default_source differ. */
const char *ing_reload_restart_key(const ing_config_t *running, const ing_config_t *next);

#endif
