# Unit tests of libs/common, plus the source check that bans unbounded string functions.
hl_unit_test(test_common SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_common.c
             LIBS hl_common PkgConfig::JANSSON)
hl_unit_test(test_common_log SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_common_log.c
             LIBS hl_common PkgConfig::JANSSON)
add_test(NAME check_source COMMAND bash ${PROJECT_SOURCE_DIR}/tools/check-source ${PROJECT_SOURCE_DIR})
set_tests_properties(check_source PROPERTIES LABELS unit TIMEOUT 60)
# The checker itself must catch a banned call (and ignore one in a comment).
add_test(NAME check_source_selftest COMMAND bash -c
         "d=$(mktemp -d) && mkdir -p $d/libs && printf '/* strcpy( */ int f(char *b){ return sprintf(b, \"x\"); }\\n' > $d/libs/bad.c && ! bash '${PROJECT_SOURCE_DIR}/tools/check-source' $d 2>$d/err && grep -q 'bad.c:1' $d/err; rc=$?; rm -rf $d; exit $rc")
set_tests_properties(check_source_selftest PROPERTIES LABELS unit TIMEOUT 60)
# The shared RFC 6901 resolver.
hl_unit_test(test_jsonptr SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_jsonptr.c LIBS hl_jsonptr)
# Every C file as clang-format makes it (.clang-format at the top).
add_test(NAME check_format COMMAND bash ${PROJECT_SOURCE_DIR}/tools/check-format ${PROJECT_SOURCE_DIR})
set_tests_properties(check_format PROPERTIES LABELS unit TIMEOUT 120)
# The checker itself must name a badly formatted file and pass a well formatted one.
add_test(NAME check_format_selftest COMMAND bash -c
         "d=$(mktemp -d) && cp '${PROJECT_SOURCE_DIR}/.clang-format' $d/ && mkdir -p $d/libs && printf 'int f(void)\\n{\\n    return 0;\\n}\\n' > $d/libs/good.c && bash '${PROJECT_SOURCE_DIR}/tools/check-format' $d && printf 'int  f(void) {return 0;}\\n' > $d/libs/bad.c && ! bash '${PROJECT_SOURCE_DIR}/tools/check-format' $d 2>$d/err && grep -q 'libs/bad.c' $d/err && ! grep -q 'good.c' $d/err; rc=$?; rm -rf $d; exit $rc")
set_tests_properties(check_format_selftest PROPERTIES LABELS unit TIMEOUT 60)
# The one-pass scan against jansson and the resolver.
hl_unit_test(test_jsonscan SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_jsonscan.c LIBS hl_jsonptr)
