# Unit tests of libs/metrics (exact exposition text, validation, concurrency, external parsers).
hl_unit_test(test_metrics SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_metrics.c LIBS hl_metrics)
