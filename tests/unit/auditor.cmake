# Unit tests of services/auditor: one cmocka executable per module.
if(TARGET hl_auditor_core)
    foreach(m chain record auth checkpoint rollup api chart config)
        hl_unit_test(test_auditor_${m} SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_auditor_${m}.c
                     LIBS hl_auditor_core)
    endforeach()
endif()
