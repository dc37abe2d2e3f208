// MPI_Allreduce as a harness backend: the MPI baseline every other backend is judged against
// (mpi_allreduce_bench), and the MPI side of small_message_bench's side-by-side rounds.
#pragma once

#include <array>
#include <cstddef>
#include <string>

#include <mpi.h>
#include <nlohmann/json.hpp>

#include "ffb/collective.h"
#include "ffb/mpi_types.h"

namespace ffb::bench {

class MpiAllreduceBackend final : public ffb::CollectiveBackend {
 public:
  ~MpiAllreduceBackend() override { free_ops(); }

  std::string name() const override { return "mpi"; }

  void setup(const ffb::BackendContext& ctx) override;

  void teardown() override { free_ops(); }

  // MPI's native types, and f16/bf16 through the user-defined ops above; fp8 has neither.
  bool supports(DataType t, ReduceOp /*op*/) const override {
    return t == DataType::f16 || t == DataType::bf16 ||
           ffb::native_mpi_type(t) != MPI_DATATYPE_NULL;
  }

  void run(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op) override;

  void describe(ffb::RunRecord& run) const override {
    run.attrs["mpi_coll_settings"] = settings_.dump();
  }

 private:
  MPI_Datatype mpi_type(DataType t) const {
    return t == DataType::f16 || t == DataType::bf16 ? half_type_ : ffb::native_mpi_type(t);
  }
  MPI_Op mpi_op(DataType t, ReduceOp op) const {
    const auto i = static_cast<std::size_t>(op);
    if (t == DataType::f16) return f16_ops_[i];
    if (t == DataType::bf16) return bf16_ops_[i];
    return ffb::native_mpi_op(op);
  }
  // avg = sum, then one division in fp32 (fp64 for double; truncating for integers), rounded once:
  // the suite's definition, shared with the validator (ffb::average_of_sum).
  template <class T>
  static void divide_as(void* buf, std::size_t count, T n) {
    auto* p = static_cast<T*>(buf);
    for (std::size_t j = 0; j < count; ++j) p[j] = static_cast<T>(p[j] / n);
  }
  template <float (*ToF32)(std::uint16_t), std::uint16_t (*FromF32)(float)>
  static void divide_half(void* buf, std::size_t count, float n) {
    auto* p = static_cast<std::uint16_t*>(buf);
    for (std::size_t j = 0; j < count; ++j) p[j] = FromF32(ToF32(p[j]) / n);
  }
  void divide(void* buf, std::size_t count, DataType t) const;
  void free_ops();

  MPI_Comm comm_ = MPI_COMM_NULL;
  int nranks_ = 1;
  nlohmann::json settings_;
  MPI_Datatype half_type_ = MPI_DATATYPE_NULL;
  std::array<MPI_Op, 5> f16_ops_{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
  std::array<MPI_Op, 5> bf16_ops_{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
};

}  // namespace ffb::bench
