/* The signature verifiers of every source of an ingress configuration file, for re-verifying
 * stored events away from the ingress (hookline reverify, the auditor): the file is loaded and
 * its secrets and keys are read exactly as the ingress reads them. */
#ifndef ING_VERIFIERS_H
#define ING_VERIFIERS_H

#include <stdbool.h>
#include <stddef.h>

#include "hl/error.h"
#include "hl/sigverify.h"

typedef struct ing_verifiers ing_verifiers_t;

/* Loads the ingress configuration at path (borrowed) with its HOOKLINE_* overrides, and every
 * source's secrets and public keys. NULL with errbuf naming what failed (a bad file, a secret
 * that cannot be read: the value is never written). */
ing_verifiers_t *ing_verifiers_load(const char *path, char *errbuf, size_t errcap);

/* The verifier of source `name` (borrowed, lives as long as v), or NULL when it is not one. */
const hl_sig_t *ing_verifiers_find(const ing_verifiers_t *v, const char *name);

/* True when source `name` takes its message id from the id its signature covers (a
 * standard-webhooks source whose message id is the webhook-id or svix-id header): a stored
 * event's message id must then equal that signed id. */
bool ing_verifiers_signed_id(const ing_verifiers_t *v, const char *name);

/* Frees everything (secrets cleansed). NULL-safe. */
void ing_verifiers_free(ing_verifiers_t *v);

#endif
