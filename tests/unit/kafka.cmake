# hl_kafka unit tests: configuration, mock-cluster readiness and a produce/consume with headers.
hl_unit_test(test_kafka SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_kafka.c LIBS hl_kafka)
