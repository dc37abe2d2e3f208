// MPI's own datatypes and ops for ffb element types and reductions (header-only: the HFReduce
// library uses it without linking the harness).
#pragma once

#include <mpi.h>

#include "ffb/numeric.h"

namespace ffb {

// MPI_DATATYPE_NULL for types MPI has no native type for (fp16, bf16, fp8).
inline MPI_Datatype native_mpi_type(DataType t) {
  switch (t) {
    case DataType::f32:
      return MPI_FLOAT;
    case DataType::f64:
      return MPI_DOUBLE;
    case DataType::i32:
      return MPI_INT32_T;
    case DataType::i64:
      return MPI_INT64_T;
    case DataType::u8:
      return MPI_UINT8_T;
    case DataType::i8:
      return MPI_INT8_T;
    case DataType::u32:
      return MPI_UINT32_T;
    case DataType::u64:
      return MPI_UINT64_T;
    default:
      return MPI_DATATYPE_NULL;
  }
}

// avg has no MPI op: it is MPI_SUM followed by one division (see ffb::average_of_sum).
inline MPI_Op native_mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::prod:
      return MPI_PROD;
    case ReduceOp::max:
      return MPI_MAX;
    case ReduceOp::min:
      return MPI_MIN;
    default:
      return MPI_SUM;
  }
}

}  // namespace ffb
