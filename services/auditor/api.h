/* The auditor's HTTP entry: registers the one dispatcher that applies the role matrix and
 * routes every path to its handler (handlers.h). */
#ifndef HL_AUDITOR_API_H
#define HL_AUDITOR_API_H

#include "auditor.h"

struct hl_httpd;

/* Registers the HTTP handlers on a started server. a is borrowed and must outlive it. */
void hl_api_register(struct hl_httpd *s, hl_auditor_t *a);

#endif
