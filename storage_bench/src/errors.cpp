#include "errors.h"

#include <csignal>
#include <cstring>

#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/program.h"
#include "sync.h"

namespace sb {

IoError::IoError(const std::string& what, int err) : std::runtime_error(what), err_(err) {}

void throw_io(const std::string& operation, const std::string& path, int err) {
  throw IoError(fmt::format("{} {}: {}", operation, path, std::strerror(err)), err);
}

int exit_code_of(FailKind kind) {
  switch (kind) {
    case FailKind::usage:
      return ffb::kExitUsage;
    case FailKind::interrupted:
      return 128 + (stop_signal() ? stop_signal() : SIGINT);
    default:
      return ffb::kExitFailure;
  }
}

ffb::FailureInfo classify_storage_failure(const std::exception_ptr& e) {
  const auto info = [](FailKind kind, const char* what, bool names_rank = false) {
    return ffb::FailureInfo{exit_code_of(kind), static_cast<int>(kind), what, names_rank};
  };
  try {
    std::rethrow_exception(e);
  } catch (const ffb::AgreedFailure& f) {
    return {f.exit_code(), f.kind(), f.what(), true};  // a nested agree() already named the rank
  } catch (const ffb::UsageError& u) {
    return info(FailKind::usage, u.what());
  } catch (const Interrupted& i) {
    return info(FailKind::interrupted, i.what());
  } catch (const IoError& io) {
    return info(io.out_of_space() ? FailKind::out_of_space : FailKind::failure, io.what());
  } catch (const std::exception& x) {
    return info(FailKind::failure, x.what());
  } catch (...) {
    return info(FailKind::failure, "unknown error");
  }
}

FailKind kind_of(const ffb::AgreedFailure& f) { return static_cast<FailKind>(f.kind()); }

void throw_agreed(FailKind kind, const std::string& what) {
  throw ffb::AgreedFailure(exit_code_of(kind), static_cast<int>(kind), what);
}

}  // namespace sb
