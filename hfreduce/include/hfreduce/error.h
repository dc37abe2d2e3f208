// HFReduce's one error type: every failure inside the library (the kernels and the tree
// construction included) is an hfreduce::Error with a status code, so a caller catches one type.
// No MPI here: the kernel and tree libraries use it without MPI.
#pragma once

#include <stdexcept>
#include <string>

namespace hfreduce {

enum class Status {
  ok,
  invalid_argument,  // bad count, type, op, root or options
  unsupported,       // the MPI library or machine lacks what is needed (thread level, ...)
  timeout,           // a peer did not deliver within Options::timeout_s
  transport_error,   // the inter-node transport failed
  system_error,      // shared memory, threads, allocation
  internal_error,    // a broken invariant of the library itself (a bug, never bad input)
};
const char* name_of(Status s);

class Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

}  // namespace hfreduce
