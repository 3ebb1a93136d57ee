# hl_config unit tests: sample schema, load failures, env overrides, checks, secrets.
hl_unit_test(test_config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config.c LIBS hl_config)
target_compile_definitions(test_config PRIVATE HL_TEST_DATA="${CMAKE_CURRENT_SOURCE_DIR}/data/config")
