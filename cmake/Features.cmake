# The state of every optional feature, in one string the programs record in their provenance
# (attribute `features`, common/src/provenance.cpp) and configure prints once:
#   FFB_FEATURES="liburing=on yaml-cpp=off cuda=on nccl=on verbs=on"
# It goes into a generated header (rewritten only when it changes, so nothing else rebuilds).
set(FFB_FEATURES "")
foreach(pair "liburing;FFB_HAVE_LIBURING" "yaml-cpp;FFB_HAVE_YAML_CPP" "cuda;FFB_HAVE_CUDA"
             "nccl;FFB_HAVE_NCCL" "verbs;FFB_HAVE_VERBS")
  list(GET pair 0 name)
  list(GET pair 1 var)
  if(${var})
    list(APPEND FFB_FEATURES "${name}=on")
  else()
    list(APPEND FFB_FEATURES "${name}=off")
  endif()
endforeach()
list(JOIN FFB_FEATURES " " FFB_FEATURES)
message(STATUS "ffbench: features ${FFB_FEATURES}")

set(FFB_GENERATED_INCLUDE_DIR ${CMAKE_BINARY_DIR}/generated)
configure_file(${CMAKE_CURRENT_LIST_DIR}/ffb_features.h.in
               ${FFB_GENERATED_INCLUDE_DIR}/ffb/features.h @ONLY)
