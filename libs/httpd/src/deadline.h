/* The header deadlines' civetweb callbacks, installed by hl_httpd_start (see deadline.c). */
#ifndef HL_HTTPD_DEADLINE_H
#define HL_HTTPD_DEADLINE_H

#include <civetweb.h>
#include <stdbool.h>
#include <stdint.h>

/* Sets cb's init_connection, begin_request, end_request and connection_close (overwriting
 * them) to bound the wait for each request's line and headers as a whole: request_timeout_ms
 * from the moment a new connection's worker waits for them, keep_alive_timeout_ms (idle time
 * included) for each later request on a kept-alive connection, both read from the server's
 * options. civetweb alone compares the elapsed time only after each read, and each read may
 * wait the whole request_timeout_ms, so a client that stops just before the deadline would hold
 * its worker up to twice as long. At the deadline the worker's signal (as in hl_http_read_body)
 * interrupts the read: civetweb then closes the connection, answering first with a 400 if part
 * of a request had come (see hl_http_headers_timed_out). hl_httpd_start installs these and wraps
 * them with the service's hooks. */
void hl_http_header_deadlines(struct mg_callbacks *cb);

/* For the tests: the watchdog's scans so far, and the calling thread's deadline set to at_us
 * (hl_mono_us; 0 disarms), repeated every 20 ms after it when repeat is set. */
uint64_t hl_http_deadline_scans(void);
void hl_http_deadline_arm(int64_t at_us, bool repeat);

#endif
