# Unit tests of the lineage records each service writes, byte for byte (the auditor hashes them).
if(TARGET hl_ingress_core)
    hl_unit_test(test_ingress_lineage SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_ingress_lineage.c
                 LIBS hl_ingress_core)
endif()
if(TARGET hl_persister_core)
    hl_unit_test(test_persister_lineage SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_persister_lineage.c
                 LIBS hl_persister_core)
endif()
# The contract library against proto/ (read at test time) and its writer against its parser.
# Its parser is held to jansson's reading of the same bytes (lineage_ref.c).
hl_unit_test(test_proto SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_proto.c
             ${CMAKE_CURRENT_LIST_DIR}/lineage_ref.c LIBS hl_proto PkgConfig::JANSSON)
target_include_directories(test_proto PRIVATE ${CMAKE_SOURCE_DIR}/libs/proto/src)
target_compile_definitions(test_proto PRIVATE
    HL_PROTO_SCHEMA="${CMAKE_SOURCE_DIR}/proto/lineage.schema.json"
    HL_PROTO_TOPICS="${CMAKE_SOURCE_DIR}/proto/topics.yaml")
# The CLI's reading of stage names (tools/hookline/lineage.c) through the contract library.
if(TARGET hookline_cli)
    hl_unit_test(test_cli_lineage_stages
                 SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_cli_lineage_stages.c LIBS hookline_cli)
endif()
