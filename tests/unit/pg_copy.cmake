# hl_pg's binary wire encoding (COPY and array parameters): no server needed.
hl_unit_test(test_pg_copy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pg_copy.c LIBS hl_pg)
