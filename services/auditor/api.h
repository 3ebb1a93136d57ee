/* The auditor's HTTP entry: registers the one dispatcher that applies the role matrix and
 * routes every path to its handler (handlers.h). */
#ifndef AUD_API_H
#define AUD_API_H

#include "auditor.h"

struct hl_httpd;

/* Registers the HTTP handlers on a started server. a is borrowed and must outlive it. */
void aud_api_register(struct hl_httpd *s, aud_state_t *a);

#endif
