# The suite's rule that a skipped test fails (tests/integration/harness/noskip.py), held to what
# a child pytest does with every kind of skip; with Debian's pytest (no build, no stack).
add_test(NAME test_noskip
         COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
                 ${CMAKE_CURRENT_LIST_DIR}/test_noskip.py
         WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
set_tests_properties(test_noskip PROPERTIES LABELS unit TIMEOUT 120
                     ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
