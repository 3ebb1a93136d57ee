# Unit tests of the lineage records each service writes, byte for byte (the auditor hashes them).
if(TARGET hl_ingress_core)
    hl_unit_test(test_ingress_lineage SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ingress_lineage.c
                 LIBS hl_ingress_core)
endif()
if(TARGET hl_persister_core)
    hl_unit_test(test_persister_lineage SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_persister_lineage.c
                 LIBS hl_persister_core)
endif()
