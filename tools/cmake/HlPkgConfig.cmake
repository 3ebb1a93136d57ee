# hl_pkg_check(PREFIX MODULE): pkg_check_modules(PREFIX REQUIRED IMPORTED_TARGET MODULE), and
# a stop at configure time when a library the module's Libs line names is not installed.
# pkg-config reports such a module as found (libcyaml's file names -lyaml, which Debian's
# libcyaml-dev does not pull in); CMake would pass the bare name on and every link would fail
# much later with "cannot find -lyaml".
find_package(PkgConfig REQUIRED)

macro(hl_pkg_check prefix module)
    pkg_check_modules(${prefix} REQUIRED IMPORTED_TARGET ${module})
    foreach(_hl_lib IN LISTS ${prefix}_LINK_LIBRARIES)
        if(NOT IS_ABSOLUTE "${_hl_lib}")
            message(FATAL_ERROR "pkg-config module ${module} links -l${_hl_lib}, which is not "
                    "installed (run deploy/local/install-deps)")
        endif()
    endforeach()
endmacro()
