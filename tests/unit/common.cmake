# Unit tests of libs/common, plus the source check that bans unbounded string functions.
hl_unit_test(test_common SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_common.c
             LIBS hl_common PkgConfig::JANSSON)
add_test(NAME check_source COMMAND bash ${PROJECT_SOURCE_DIR}/tools/check-source ${PROJECT_SOURCE_DIR})
set_tests_properties(check_source PROPERTIES LABELS unit TIMEOUT 60)
# The checker itself must catch a banned call (and ignore one in a comment).
add_test(NAME check_source_selftest COMMAND bash -c
         "d=$(mktemp -d) && mkdir -p $d/libs && printf '/* strcpy( */ int f(char *b){ return sprintf(b, \"x\"); }\\n' > $d/libs/bad.c && ! bash '${PROJECT_SOURCE_DIR}/tools/check-source' $d 2>$d/err && grep -q 'bad.c:1' $d/err; rc=$?; rm -rf $d; exit $rc")
set_tests_properties(check_source_selftest PROPERTIES LABELS unit TIMEOUT 60)
# The shared RFC 6901 resolver.
hl_unit_test(test_jsonptr SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_jsonptr.c LIBS hl_jsonptr)
