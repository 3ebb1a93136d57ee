/* A capped output buffer for the page's HTML and SVG, with escaping. */
#include "html.h"

#include <stdio.h>

void aud_put(aud_html_t *o, const char *fmt, ...)
{
    va_list ap;
    if (o->len + 1 >= o->cap) return;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0) o->len = o->len + (size_t)n < o->cap ? o->len + (size_t)n : o->cap - 1;
}

void aud_esc(aud_html_t *o, const char *s)
{
    for (; s && *s && o->len + 8 < o->cap; s++) {
        switch (*s) {
        case '<': aud_put(o, "&lt;"); break;
        case '>': aud_put(o, "&gt;"); break;
        case '&': aud_put(o, "&amp;"); break;
        case '"': aud_put(o, "&quot;"); break;
        case '\'': aud_put(o, "&#39;"); break;
        default: o->buf[o->len++] = *s; o->buf[o->len] = '\0';
        }
    }
}
