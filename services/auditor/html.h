/* A capped output buffer for the page's HTML and SVG, with escaping. */
#ifndef AUD_HTML_H
#define AUD_HTML_H

#include <stdarg.h>
#include <stddef.h>

#include "hl/error.h"

/* What a page has written so far. buf is owned by whoever filled in the struct; nothing is
 * ever written past cap - 1 bytes (the rest is cut, the text stays NUL-terminated). */
typedef struct {
    char *buf;
    size_t len, cap;
} aud_html_t;

/* Appends printf-formatted text (not escaped: for markup and numbers only). */
void aud_put(aud_html_t *o, const char *fmt, ...) HL_PRINTF(2, 3);
/* Appends s (NULL: nothing) escaped for HTML text and quoted attribute values. */
void aud_esc(aud_html_t *o, const char *s);

#endif
