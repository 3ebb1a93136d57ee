# Unit tests of libs/sigverify beyond the ingress's own (tests/unit/test_ingress_auth.c).
hl_unit_test(test_sigverify SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_sigverify.c
             ${CMAKE_CURRENT_LIST_DIR}/sig_vectors.c
             LIBS hl_sigverify PkgConfig::JANSSON)
target_compile_definitions(test_sigverify PRIVATE
    HL_VECTORS_FILE="${CMAKE_SOURCE_DIR}/tests/vectors/signatures.json")
