/* JSON text with every number rewritten as a string naming its exact decimal value, so that a
 * parser that keeps numbers as doubles (jansson) compares them exactly. */
#ifndef HL_SIGVERIFY_EXACT_NUMBERS_H
#define HL_SIGVERIFY_EXACT_NUMBERS_H

#include <stddef.h>

#include "hl/util.h"

/* Appends `in` (len bytes of JSON text) to out (owned by the caller) with each number replaced
 * by the string "\u0000" + ["-"] + its significant digits + "e" + the decimal exponent of the
 * last one ("\u00000" for zero, of either sign). Two numbers become the same string exactly
 * when their values are equal, however they are spelled: 1e2, 100 and 100.0 alike, as a
 * Postgres jsonb column writes back what it read. Strings are copied as they are; a string
 * holding \u0000 (which jsonb never stores) is refused, so that none can pass for a number.
 * Everything else is copied for the JSON parser to judge. Returns 0, or HL_EPARSE for a number
 * outside JSON's grammar or with an exponent beyond +-10^9. */
int hl_sig_exact_numbers(const char *in, size_t len, hl_buf_t *out) HL_MUST_CHECK;

#endif
