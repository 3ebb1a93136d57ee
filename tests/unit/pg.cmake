# hl_pg unit tests: transient classification and a bounded failing connect, and one test against
# the real server HL_TEST_PG_CONNINFO names, which fails when it is unset. Labelled "postgres"
# too: tests/run runs it once the local stack is up (ctest -L postgres), not with the others.
hl_unit_test(test_pg SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pg.c LIBS hl_pg)
set_tests_properties(test_pg PROPERTIES LABELS "unit;postgres")
# The connection pool, against the real server only (HL_TEST_PG_CONNINFO).
hl_unit_test(test_pg_pool SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pg_pool.c LIBS hl_pg)
set_tests_properties(test_pg_pool PROPERTIES LABELS "unit;postgres")

# ---- chunked queries (libs/pg/src/query.c): against the real server, labelled postgres ----
hl_unit_test(test_pg_query SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pg_query.c LIBS hl_pg)
set_tests_properties(test_pg_query PROPERTIES LABELS "unit;postgres")
