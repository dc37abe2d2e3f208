// An owned MPI communicator: freed on destruction, so a constructor that throws half-way leaves
// no communicator behind (UCX-style clean-up discipline).
#pragma once

#include <utility>

#include <mpi.h>

namespace hfreduce::node {

class MpiComm {
 public:
  MpiComm() = default;
  explicit MpiComm(MPI_Comm c) : comm_(c) {}
  ~MpiComm() { reset(); }
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;
  MpiComm(MpiComm&& o) noexcept : comm_(std::exchange(o.comm_, MPI_COMM_NULL)) {}
  MpiComm& operator=(MpiComm&& o) noexcept {
    if (this != &o) {
      reset();
      comm_ = std::exchange(o.comm_, MPI_COMM_NULL);
    }
    return *this;
  }
  MPI_Comm get() const { return comm_; }
  MPI_Comm* out() {  // for MPI_Comm_dup / MPI_Comm_split to fill in
    reset();
    return &comm_;
  }
  MPI_Comm release() { return std::exchange(comm_, MPI_COMM_NULL); }
  void reset() {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

}  // namespace hfreduce::node
