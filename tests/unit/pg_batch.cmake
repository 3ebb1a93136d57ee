# hl_pg's batch helpers: the binary wire encoding (COPY and array parameters, no server needed),
# and the consumer_offsets upsert against the server HL_TEST_PG_CONNINFO names (labelled
# "postgres" too, like test_pg: it fails when the variable is unset).
hl_unit_test(test_pg_copy SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pg_copy.c LIBS hl_pg)
hl_unit_test(test_pg_offsets SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pg_offsets.c LIBS hl_pg)
set_tests_properties(test_pg_offsets PROPERTIES LABELS "unit;postgres")
