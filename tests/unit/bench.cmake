# The benchmark's own tools on known input, with Debian's pytest (no build, no stack): the CPU
# accounting of bench/lib/procs.py against processes of known cost, and the capacity model
# (bench/capacity) on synthetic results and the production overlay, and bench/run --what-if's
# patches (they apply to this tree) and refusals.
foreach(name bench_cpu bench_capacity bench_what_if)
    add_test(NAME test_${name}
             COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
                     ${CMAKE_CURRENT_LIST_DIR}/test_${name}.py
             WORKING_DIRECTORY ${CMAKE_CURRENT_LIST_DIR})
    set_tests_properties(test_${name} PROPERTIES LABELS unit TIMEOUT 120
                         ENVIRONMENT "HL_SOURCE_DIR=${PROJECT_SOURCE_DIR};PYTHONDONTWRITEBYTECODE=1")
endforeach()
