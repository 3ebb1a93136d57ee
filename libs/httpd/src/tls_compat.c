/* Compatibility shim for civetweb's TLS in this distribution. civetweb 1.15 loads OpenSSL at
 * run time with dlopen("libssl.so") and looks functions up by their OpenSSL 1.1 names; with
 * OpenSSL 3 one of them, SSL_get_peer_certificate, no longer exists as a symbol (it became a
 * macro for SSL_get1_peer_certificate), and civetweb calls the missing pointer after every
 * TLS handshake. This library carries the SONAME "libssl.so", is linked into every program
 * that uses hl_httpd, and so is the object civetweb's dlopen returns; its own dependency on
 * the real libssl.so.3 provides every other symbol civetweb looks up. */
#include <openssl/ssl.h>

#include "tls_compat.h"

#undef SSL_get_peer_certificate
X509 *SSL_get_peer_certificate(const SSL *s);

/* Same ownership as the 1.1 function: the caller releases the certificate with X509_free. */
X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}

int hl_tls_compat_loaded(void)
{
    return 1;
}
