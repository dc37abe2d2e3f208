# Adds tests/gpu to a build whose tests/CMakeLists.txt does not list it yet:
#   cmake -S . -B build -DCMAKE_PROJECT_INCLUDE=$PWD/tests/benchmarks/gpu/standalone.cmake
# (scripts/gpu-check uses it when needed). Runs once the top-level CMakeLists.txt is processed.
if(NOT COMMAND _ffb_gpu_tests_standalone)
  function(_ffb_gpu_tests_standalone)
    if(TARGET test_gpu_logic OR NOT COMMAND ffb_add_gtest)
      return()  # already added by tests/CMakeLists.txt, or no tests at all
    endif()
    find_package(GTest REQUIRED)
    include(GoogleTest)
    set(FFB_MPIEXEC ${MPIEXEC_EXECUTABLE})
    set(FFB_MPIEXEC_FLAGS --oversubscribe --bind-to none)
    include(${CMAKE_SOURCE_DIR}/tests/benchmarks/gpu/CMakeLists.txt)
  endfunction()
endif()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _ffb_gpu_tests_standalone)
