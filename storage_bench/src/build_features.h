// Optional dependencies of storage_bench. CMake defines FFB_HAVE_LIBURING and FFB_HAVE_YAML_CPP as
// 0 or 1 on the storage_bench targets; a build that does not define them has both (the default
// build links both).
#pragma once

#ifndef FFB_HAVE_LIBURING
#define FFB_HAVE_LIBURING 1
#endif
#ifndef FFB_HAVE_YAML_CPP
#define FFB_HAVE_YAML_CPP 1
#endif
