# Unit tests of services/persister: record parsing and validation with bad input, the JSON
# validator, batch ordering, backoff math, lineage JSON, the binary array encoding, config and
# the lineage watermark.
if(TARGET hl_persister_core)
    hl_unit_test(test_persister_record SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_persister_record.c
                 LIBS hl_persister_core)
    hl_unit_test(test_persister_batch SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_persister_batch.c
                 LIBS hl_persister_core PkgConfig::JANSSON)
    hl_unit_test(test_persister_backoff SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_persister_backoff.c
                 LIBS hl_persister_core)
    hl_unit_test(test_persister_track SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_persister_track.c
                 LIBS hl_persister_core)
    hl_unit_test(test_persister_config SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_persister_config.c
                 LIBS hl_persister_core)
    target_compile_definitions(test_persister_config PRIVATE
                               PST_README="${PROJECT_SOURCE_DIR}/services/persister/README.md")
endif()
