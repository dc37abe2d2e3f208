#include "mpi_fast_path.h"

#include <climits>
#include <string>

#include "ffb/mpi_types.h"
#include "hfreduce/error.h"
#include "reduce_kernels.h"

namespace hfreduce {
namespace {

// MPI's user function for one (type, op): inout = inout op in, with HFReduce's kernel.
template <ffb::DataType T, ffb::ReduceOp Op>
void combine_fn(void* in, void* inout, int* len, MPI_Datatype* /*type*/) {
  constexpr ffb::ReduceOp kernel_op = Op == ffb::ReduceOp::avg ? ffb::ReduceOp::sum : Op;
  kernels::combine(T, kernel_op, inout, in, inout, static_cast<std::size_t>(*len));
}

template <ffb::DataType T>
void create_ops(std::array<MPI_Op, 5>& ops) {
  using ffb::ReduceOp;
  MPI_Op_create(&combine_fn<T, ReduceOp::sum>, 1, &ops[static_cast<std::size_t>(ReduceOp::sum)]);
  MPI_Op_create(&combine_fn<T, ReduceOp::prod>, 1, &ops[static_cast<std::size_t>(ReduceOp::prod)]);
  MPI_Op_create(&combine_fn<T, ReduceOp::max>, 1, &ops[static_cast<std::size_t>(ReduceOp::max)]);
  MPI_Op_create(&combine_fn<T, ReduceOp::min>, 1, &ops[static_cast<std::size_t>(ReduceOp::min)]);
  // avg is a sum on the wire, divided once afterwards.
  MPI_Op_create(&combine_fn<T, ReduceOp::sum>, 1, &ops[static_cast<std::size_t>(ReduceOp::avg)]);
}

}  // namespace

MpiFastPath::MpiFastPath() {
  for (auto& row : user_ops_) row.fill(MPI_OP_NULL);
  MPI_Type_contiguous(1, MPI_BYTE, &byte1_);
  MPI_Type_commit(&byte1_);
  MPI_Type_contiguous(2, MPI_BYTE, &byte2_);
  MPI_Type_commit(&byte2_);
  using ffb::DataType;
  create_ops<DataType::f16>(user_ops_[static_cast<std::size_t>(DataType::f16)]);
  create_ops<DataType::bf16>(user_ops_[static_cast<std::size_t>(DataType::bf16)]);
  create_ops<DataType::f8e4m3>(user_ops_[static_cast<std::size_t>(DataType::f8e4m3)]);
  create_ops<DataType::f8e5m2>(user_ops_[static_cast<std::size_t>(DataType::f8e5m2)]);
}

MpiFastPath::~MpiFastPath() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;  // nothing to free once MPI is gone
  for (auto& row : user_ops_)
    for (auto& op : row)
      if (op != MPI_OP_NULL) MPI_Op_free(&op);
  MPI_Type_free(&byte1_);
  MPI_Type_free(&byte2_);
}

MPI_Datatype MpiFastPath::type_of(ffb::DataType t) const {
  const MPI_Datatype native = ffb::native_mpi_type(t);
  if (native != MPI_DATATYPE_NULL) return native;
  return ffb::size_of(t) == 2 ? byte2_ : byte1_;
}

MPI_Op MpiFastPath::op_of(ffb::DataType t, ffb::ReduceOp op) const {
  const MPI_Op user = user_ops_[static_cast<std::size_t>(t)][static_cast<std::size_t>(op)];
  return user != MPI_OP_NULL ? user : ffb::native_mpi_op(op);
}

bool MpiFastPath::allreduce(const void* send, void* recv, std::size_t count, ffb::DataType type,
                            ffb::ReduceOp op, MPI_Comm comm, int world_size,
                            const std::string& where) const {
  if (count > static_cast<std::size_t>(INT_MAX)) return false;
  const void* src = send == recv ? MPI_IN_PLACE : send;
  if (MPI_Allreduce(src, recv, static_cast<int>(count), type_of(type), op_of(type, op), comm) !=
      MPI_SUCCESS)
    throw Error(Status::transport_error, "hfreduce: fast-path MPI_Allreduce failed on " + where);
  if (op == ffb::ReduceOp::avg && count > 0) {
    const void* in[1] = {recv};
    kernels::reduce(type, ffb::ReduceOp::avg, in, 1, recv, count, world_size);
  }
  return true;
}

}  // namespace hfreduce
