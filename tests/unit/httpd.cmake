# hl_httpd unit tests: endpoints over plain sockets (test_httpd) and the TLS protocol floor
# (test_httpd_tls), both speaking through the small client in http_client.c.
hl_unit_test(test_httpd SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_httpd.c
             ${CMAKE_CURRENT_SOURCE_DIR}/http_client.c LIBS hl_httpd Threads::Threads)
hl_unit_test(test_httpd_tls SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_httpd_tls.c
             ${CMAKE_CURRENT_SOURCE_DIR}/http_client.c LIBS hl_httpd Threads::Threads)
# The deadlines' signalling raced by worker threads, without a server (test_httpd_deadline).
hl_unit_test(test_httpd_deadline SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_httpd_deadline.c
             LIBS hl_httpd Threads::Threads)
target_include_directories(test_httpd_deadline PRIVATE ${PROJECT_SOURCE_DIR}/libs/httpd/src)
