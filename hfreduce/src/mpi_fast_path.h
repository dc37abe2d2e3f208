// The small-message fast path: one MPI_Allreduce on the communicator's private world. Native
// types use MPI's own datatypes and ops; fp16, bf16 and the fp8 types have none, so they travel as
// 1- or 2-byte MPI datatypes with user-defined ops (MPI_Op_create) that run HFReduce's own combine
// kernel (the same arithmetic as the pipeline's inter-node combine). avg is sum, then one division.
#pragma once

#include <array>
#include <cstddef>
#include <string>

#include <mpi.h>

#include "ffb/numeric.h"

namespace hfreduce {

class MpiFastPath {
 public:
  MpiFastPath();  // creates the datatypes and ops (local calls, no communication)
  ~MpiFastPath();
  MpiFastPath(const MpiFastPath&) = delete;
  MpiFastPath& operator=(const MpiFastPath&) = delete;

  // False (nothing done) when count does not fit MPI's int count. Throws Error(transport_error)
  // when MPI fails.
  bool allreduce(const void* send, void* recv, std::size_t count, ffb::DataType type,
                 ffb::ReduceOp op, MPI_Comm comm, int world_size, const std::string& where) const;

 private:
  static constexpr std::size_t kTypes = 12, kOps = 5;
  MPI_Datatype type_of(ffb::DataType t) const;
  MPI_Op op_of(ffb::DataType t, ffb::ReduceOp op) const;

  MPI_Datatype byte1_ = MPI_DATATYPE_NULL, byte2_ = MPI_DATATYPE_NULL;
  std::array<std::array<MPI_Op, kOps>, kTypes> user_ops_{};  // [type][op]; MPI_OP_NULL if native
};

}  // namespace hfreduce
