/* Text encodings of binary values: base64 (RFC 4648 §4) and hex decoding. Lowercase hex
 * encoding is hl_hex in hl/util.h. */
#ifndef HL_CODEC_H
#define HL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"

/* Decodes standard base64 ('=' padding required when the length is not a multiple of 4)
 * from n bytes of `in` into out (cap bytes). Any other byte, bad padding or non-zero trailing
 * bits is refused. Returns the decoded length, HL_EPARSE or HL_ETOOBIG. */
int hl_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap) HL_MUST_CHECK;

/* The same with the padding optional: for keys typed or pasted by people. */
int hl_base64_decode_loose(const char *in, size_t n, unsigned char *out, size_t cap) HL_MUST_CHECK;

/* Encodes n bytes as standard padded base64 into out (cap bytes, NUL-terminated).
 * Returns the text length or HL_ETOOBIG. */
int hl_base64_encode(const unsigned char *in, size_t n, char *out, size_t cap) HL_MUST_CHECK;

/* Decodes hex (either case, even length) into out (cap bytes). Returns length, HL_EPARSE
 * or HL_ETOOBIG. */
int hl_hex_decode(const char *in, size_t n, unsigned char *out, size_t cap) HL_MUST_CHECK;

#endif
