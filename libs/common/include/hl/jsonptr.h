/* RFC 6901 JSON pointers over jansson values, with the ingress's strict reading: what the
 * ingress extracts a message id with is what the replay computes it with, so both must refuse
 * the same pointers. */
#ifndef HL_JSONPTR_H
#define HL_JSONPTR_H

#include <jansson.h>
#include <stdbool.h>

/* Longest reference token resolved (decoded bytes); a longer one resolves to nothing. */
#define HL_JSONPTR_MAX_TOKEN 511

/* Returns true when `p` is a syntactically valid RFC 6901 pointer: "" or "/…" where every
 * '~' is followed by '0' or '1'. NULL is not a pointer. */
bool hl_jsonptr_valid(const char *p);

/* Resolves pointer `p` in `root` (both borrowed). Returns the value (borrowed from root) or
 * NULL when the pointer is invalid or resolves to nothing. "" is root itself. An array token
 * must be a canonical decimal index ("0", "12": no sign, no leading zero, at most 9 digits)
 * inside the array; "-" (the element after the last) resolves to nothing. */
json_t *hl_jsonptr_get(json_t *root, const char *p);

#endif
