# hl_httpd unit tests: endpoints over plain sockets and the TLS protocol floor.
hl_unit_test(test_httpd SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_httpd.c LIBS hl_httpd Threads::Threads)
