# `cmake --install <build> --prefix P` lays out a self-contained ffbench under P:
#   P/bin/<every program>             the benchmark programs built here (tests excluded)
#   P/bin/ffbench, fio-crosscheck...  the driver (scripts/ffbench), which finds its package at
#   P/lib/ffbench/python/ffbench/     ../lib/ffbench/python relative to itself (always lib/, never
#                                     lib64/: the script hard-codes it)
#   P/share/ffbench/configs/          sweeps, clusters, models, reference/
#   P/share/ffbench/docs/             docs/ and README.md
#   P/share/ffbench/reframe/          the ReFrame checks and example site configurations
# Nothing installed points back into the checkout: `ffbench run` from P finds P/bin and the
# shipped configs by itself (ffbench.data.paths).
include(GNUInstallDirs)

# ffb_collect_programs(<out> <dir>): every executable defined under <dir>, tests/ left out.
function(ffb_collect_programs out dir)
  set(found "")
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "EXECUTABLE")
      list(APPEND found ${t})
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    if(NOT sub MATCHES "^${PROJECT_SOURCE_DIR}/tests(/|$)")
      ffb_collect_programs(sub_found ${sub})
      list(APPEND found ${sub_found})
    endif()
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

ffb_collect_programs(FFB_PROGRAMS ${PROJECT_SOURCE_DIR})
install(TARGETS ${FFB_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The driver and its tool scripts (each finds `ffbench` beside itself).
install(PROGRAMS ${PROJECT_SOURCE_DIR}/scripts/ffbench ${PROJECT_SOURCE_DIR}/scripts/fio-crosscheck
                 ${PROJECT_SOURCE_DIR}/scripts/perf-hfreduce ${PROJECT_SOURCE_DIR}/scripts/append-cost
        DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/ffbench DESTINATION lib/ffbench/python
        PATTERN "__pycache__" EXCLUDE PATTERN "*.pyc" EXCLUDE)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/ffbench/configs)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/ffbench/docs)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/ffbench/docs)
# The ReFrame checks and example site configurations; the checks read the references from
# ../configs/reference, which holds in the checkout and under share/ffbench alike.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/reframe/ DESTINATION ${CMAKE_INSTALL_DATADIR}/ffbench/reframe
        PATTERN "__pycache__" EXCLUDE PATTERN "*.pyc" EXCLUDE)
