# The capacity model (bench/capacity) on synthetic results and the production overlay: Debian's
# pytest, no build, no stack.
add_test(NAME test_bench_capacity
         COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
                 ${CMAKE_CURRENT_LIST_DIR}/test_bench_capacity.py
         WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
set_tests_properties(test_bench_capacity PROPERTIES LABELS unit TIMEOUT 120
                     ENVIRONMENT "HL_SOURCE_DIR=${PROJECT_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1")
