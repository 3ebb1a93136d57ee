/* The civetweb/OpenSSL 3 compatibility shim (see tls_compat.c). */
#ifndef HL_TLS_COMPAT_H
#define HL_TLS_COMPAT_H

/* Returns 1. Called by hl_httpd_start so the linker keeps the shim as a dependency even with
 * --as-needed; the shim must be loaded before civetweb calls dlopen("libssl.so"). */
int hl_tls_compat_loaded(void);

#endif
