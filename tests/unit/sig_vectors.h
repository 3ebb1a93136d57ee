/* The provider vectors of tests/vectors/signatures.json as verifiers: one loader for every
 * test that checks them (test_ingress_auth.c, test_sigverify.c). */
#ifndef HL_TEST_SIG_VECTORS_H
#define HL_TEST_SIG_VECTORS_H

#include <jansson.h>
#include <stdint.h>

#include "hl/sigverify.h"

/* Initialises a (deinit with hl_sig_deinit) as vector v describes it: scheme, header, prefix,
 * encoding and keys, with `tolerance` seconds. Fails the running test on an unknown scheme or a
 * refused key. */
void sig_vector_load(hl_sig_t *a, json_t *v, int64_t tolerance);

#endif
