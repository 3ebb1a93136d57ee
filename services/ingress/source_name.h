/* The source name of a request path (/v1/webhooks/{source}): its decoding and the rule a name
 * follows, in requests and in the configuration alike. */
#ifndef ING_SOURCE_NAME_H
#define ING_SOURCE_NAME_H

#include <stddef.h>

#include "hl/proto.h"

/* Longest source name: the {source} of /v1/webhooks/{source}. */
#define ING_SOURCE_NAME_MAX HL_SOURCE_MAX

/* Decodes a source name as it arrived in the request path (n bytes at raw, percent escapes
 * still encoded) into out, NUL-terminated. Returns its length, or -1 when the name is empty,
 * decodes to more than ING_SOURCE_NAME_MAX bytes, holds an escape that is not '%' and two hex
 * digits, or decodes to any byte outside [a-z0-9_-] (so an escaped NUL, '/' or '.' is refused
 * rather than cut at or normalised away). Also the rule for names in the configuration. */
int ing_source_name_decode(const char *raw, size_t n, char out[ING_SOURCE_NAME_MAX + 1]);

#endif
