# hl_pg unit tests: transient classification and a bounded failing connect (no server needed).
hl_unit_test(test_pg SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pg.c LIBS hl_pg)
