#include "engine.h"

#include <fmt/format.h>

#include "build_features.h"
#include "ffb/error.h"

namespace sb {

std::string_view name_of(EngineKind kind) {
  return kind == EngineKind::posix ? "posix" : "io_uring";
}

void check_engine_available(EngineKind kind) {
  if (kind == EngineKind::io_uring && !FFB_HAVE_LIBURING)
    throw ffb::UsageError(
        "--engine io_uring: this build of storage_bench has no liburing; use --engine posix (or "
        "rebuild with liburing installed)");
}

std::unique_ptr<Engine> make_engine(EngineKind kind, unsigned depth, unsigned submit_batch) {
  check_engine_available(kind);
#if FFB_HAVE_LIBURING
  if (kind == EngineKind::io_uring) return make_uring_engine(depth, submit_batch);
#else
  (void)submit_batch;
#endif
  return make_posix_engine(depth);
}

}  // namespace sb
