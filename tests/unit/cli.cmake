# Unit tests of tools/hookline: signing, workload, gate, evidence, HTTP client and replay,
# argument checks.
if(TARGET hookline_cli)
    foreach(t sign workload gate evidence http args)
        hl_unit_test(test_cli_${t} SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cli_${t}.c
                     LIBS hookline_cli)
    endforeach()
endif()
# The replay's message id against the ingress's, for the same body and pointer.
if(TARGET hookline_cli AND TARGET hl_ingress_core)
    hl_unit_test(test_cli_message_id SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cli_message_id.c
                 LIBS hookline_cli hl_ingress_core)
endif()
