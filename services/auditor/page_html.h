/* The page's shared pieces (page.c, login.c): its head and style, sending it, and the cells
 * every section writes. */
#ifndef AUD_PAGE_HTML_H
#define AUD_PAGE_HTML_H

#include <jansson.h>
#include <stdint.h>

#include "html.h"
#include "request.h"

/* The document's start up to <body>, with title escaped. */
void aud_page_head(aud_html_t *o, const char *title);
/* Sends o as text/html with status and the extra header lines (each ending in CRLF; NULL:
 * none), then frees o->buf. */
void aud_page_send(aud_req_t *r, int status, aud_html_t *o, const char *extra);
/* The string member k of o, "" when absent or not a string. Borrowed from o. */
const char *aud_page_jstr(json_t *o, const char *k);
/* The integer member k of row, or a dash when the record did not carry it. */
void aud_page_num(aud_html_t *o, json_t *row, const char *k);
/* ts_us as "YYYY-MM-DD HH:MM:SS.mmm" in UTC. */
void aud_page_when(aud_html_t *o, int64_t ts_us);
/* A duration in µs as milliseconds (aud_fmt_ms). */
void aud_page_ms(aud_html_t *o, int64_t us);

#endif
