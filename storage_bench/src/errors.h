// storage_bench's error types and how a failure is classified when the ranks agree on it.
//
// Every failure a rank meets ends the run on every rank through sb::agree (sync.h), which carries
// the lowest failing rank's message and a FailKind as ffb::AgreedFailure::kind(): the kind picks
// the exit code (usage 2, interrupted 128 + signal, else 1) and the last line rank 0 prints.
#pragma once

#include <cerrno>
#include <exception>
#include <stdexcept>
#include <string>

namespace ffb {
struct FailureInfo;   // ffb/program.h
class AgreedFailure;  // ffb/program.h
}  // namespace ffb

namespace sb {

enum class FailKind : int { none = 0, failure = 1, out_of_space = 2, interrupted = 3, usage = 4 };

// An I/O failure with context: "<operation> <path>: <strerror>".
class IoError : public std::runtime_error {
 public:
  IoError(const std::string& what, int err);
  int err() const { return err_; }
  bool out_of_space() const { return err_ == ENOSPC || err_ == EDQUOT; }

 private:
  int err_;
};

[[noreturn]] void throw_io(const std::string& operation, const std::string& path, int err);

// Thrown by I/O loops when SIGINT/SIGTERM arrived.
class Interrupted : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The exit code of a failure of this kind (interrupted: 128 + the signal that stopped us, SIGINT
// when this rank saw none).
int exit_code_of(FailKind kind);

// ffb::agree's classifier for storage_bench: UsageError -> usage, Interrupted -> interrupted,
// IoError ENOSPC/EDQUOT -> out_of_space, a nested agreement keeps its kind, anything else failure.
ffb::FailureInfo classify_storage_failure(const std::exception_ptr& e);

FailKind kind_of(const ffb::AgreedFailure& f);

// A failure every rank already knows about (each rank throws the same one): the kind of an
// AgreedFailure made without a round of communication.
[[noreturn]] void throw_agreed(FailKind kind, const std::string& what);

}  // namespace sb
