# Unit tests of libs/hist (accuracy, merge, concurrency, JSON exchange, edge values).
hl_unit_test(test_hist SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_hist.c
             LIBS hl_hist PkgConfig::JANSSON m)
