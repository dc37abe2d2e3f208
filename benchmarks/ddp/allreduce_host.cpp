// The host backends: none, MPI_Iallreduce, HFReduce.
#include <algorithm>
#include <array>
#include <climits>
#include <cstdio>

#include <fmt/format.h>

#include "allreduce.h"
#include "compute.h"
#include "ffb/error.h"

namespace ffb::ddp {

namespace {

class NoneAllreduce final : public GradientAllreduce {
 public:
  std::string name() const override { return "none"; }
  bool reduces() const override { return false; }
  void setup(MPI_Comm, const Topology& topo, ComputeEngine&) override { nodes_ = topo.nnodes(); }
  int nodes() const override { return nodes_; }
  void start(int, const void*, void*, std::size_t, DataType) override { ++started_; }
  void wait_all() override { started_ = 0; }
  int completed() override { return started_; }

 private:
  int nodes_ = 1;
  int started_ = 0;
};

// fp16 / bf16 have no MPI type: sum them with a user-defined op that adds in fp32 and rounds once
// per pair (exact for the validation pattern's small integers).
template <float (*ToF32)(std::uint16_t), std::uint16_t (*FromF32)(float)>
void half_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const std::uint16_t*>(in);
  auto* b = static_cast<std::uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = FromF32(ToF32(a[i]) + ToF32(b[i]));
}

class MpiAllreduce final : public GradientAllreduce {
 public:
  std::string name() const override { return "mpi"; }
  bool needs_progress() const override { return true; }

  void setup(MPI_Comm comm, const Topology& topo, ComputeEngine& compute) override {
    if (compute.device_memory())
      throw UsageError(
          "--backend mpi: the MPI backend reduces host memory only (Debian's Open MPI is not "
          "CUDA-aware); use hfreduce or nccl with --compute cublas");
    MPI_Comm_dup(comm, &comm_);
    nodes_ = topo.nnodes();
    MPI_Op_create(&half_sum<ffb::f16_to_f32, ffb::f32_to_f16>, 1, &f16_sum_);
    MPI_Op_create(&half_sum<ffb::bf16_to_f32, ffb::f32_to_bf16>, 1, &bf16_sum_);
  }
  void teardown() override {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    if (f16_sum_ != MPI_OP_NULL) MPI_Op_free(&f16_sum_);
    if (bf16_sum_ != MPI_OP_NULL) MPI_Op_free(&bf16_sum_);
  }
  int nodes() const override { return nodes_; }

  void start(int, const void* send, void* recv, std::size_t count, DataType t) override {
    MPI_Datatype type = MPI_FLOAT;
    MPI_Op op = MPI_SUM;
    switch (t) {
      case DataType::f32:
        break;
      case DataType::f16:
        type = MPI_UINT16_T;
        op = f16_sum_;
        break;
      case DataType::bf16:
        type = MPI_UINT16_T;
        op = bf16_sum_;
        break;
      default:
        throw UsageError(fmt::format("--dtype {}: the MPI backend takes float, half or bfloat16",
                                     ffb::name_of(t)));
    }
    const std::size_t esize = ffb::size_of(t);
    const std::size_t max_count = std::size_t{1} << 30;  // MPI counts are int
    for (std::size_t done = 0; done < count; done += max_count) {
      const auto n = static_cast<int>(std::min(max_count, count - done));
      requests_.push_back(MPI_REQUEST_NULL);  // completed by progress()/completed()/wait_all()
      MPI_Iallreduce(static_cast<const char*>(send) + done * esize,
                     static_cast<char*>(recv) + done * esize, n, type, op, comm_,
                     &requests_.back());
    }
    bucket_end_.push_back(requests_.size());
  }

  void progress() override {
    if (requests_.empty()) return;
    int flag = 0;
    MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &flag, MPI_STATUSES_IGNORE);
  }

  int completed() override {
    // Completed requests become MPI_REQUEST_NULL (MPI_Test frees them).
    while (done_ < bucket_end_.size()) {
      for (; first_open_ < bucket_end_[done_]; ++first_open_) {
        int flag = 0;
        MPI_Test(&requests_[first_open_], &flag, MPI_STATUS_IGNORE);
        if (!flag) return static_cast<int>(done_);
      }
      ++done_;
    }
    return static_cast<int>(done_);
  }

  void wait_all() override {
    if (!requests_.empty())
      MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    requests_.clear();
    bucket_end_.clear();
    done_ = first_open_ = 0;
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Op f16_sum_ = MPI_OP_NULL, bf16_sum_ = MPI_OP_NULL;
  std::vector<MPI_Request> requests_;
  std::vector<std::size_t> bucket_end_;  // per started bucket: end of its requests
  std::size_t done_ = 0, first_open_ = 0;
  int nodes_ = 1;
};

class HfreduceAllreduce final : public GradientAllreduce {
 public:
  explicit HfreduceAllreduce(const HfreduceSettings& s) : settings_(s) {}
  std::string name() const override { return "hfreduce"; }

  void setup(MPI_Comm comm, const Topology&, ComputeEngine& compute) override {
    auto opt = settings_.options;
    opt.device_buffers = compute.device_memory();
    compute_ = &compute;
    // GPU: the allreduces run on the engine's communication stream, which waits for the
    // gradients on the compute stream (HFReduce makes its stream wait for the result, so giving
    // it the compute stream would stall the rest of the backward pass).
    stream_ = compute.device_memory() ? compute.comm_stream() : nullptr;
    comm_ = std::make_unique<hfreduce::Communicator>(comm, opt);
    if (opt.nvlink_pairs != hfreduce::NvlinkPairs::off && !comm_->nvlink_pairs_active() &&
        comm_->layout().rank == 0) {
      fmt::print("# nvlink pairs: unavailable, using the plain device path: {}\n",
                 comm_->nvlink_pairs_fallback());
      std::fflush(stdout);
    }
  }
  void teardown() override { comm_.reset(); }
  int nodes() const override { return comm_ ? comm_->layout().nnodes : 1; }

  void start(int, const void* send, void* recv, std::size_t count, DataType t) override {
    if (stream_ != nullptr) {
      compute_->stream_wait(stream_, compute_->stream());
      requests_.push_back(comm_->allreduce_async(send, recv, count, t, ReduceOp::sum, stream_));
    } else
      requests_.push_back(comm_->allreduce_async(send, recv, count, t, ReduceOp::sum));
  }

  int completed() override {
    while (done_ < requests_.size() && requests_[done_].test()) ++done_;
    return static_cast<int>(done_);
  }

  void wait_all() override {
    for (auto& r : requests_) r.wait();
    requests_.clear();
    done_ = 0;
    if (stream_ != nullptr) compute_->stream_sync(stream_);
  }

  void describe(RunRecord& run) const override {
    const auto& o = comm_->options();
    run.attrs["hfreduce_chunk_bytes"] = static_cast<std::int64_t>(o.chunk_bytes);
    run.attrs["hfreduce_pipeline_depth"] = static_cast<std::int64_t>(o.pipeline_depth);
    run.attrs["hfreduce_reduce_threads"] = static_cast<std::int64_t>(o.reduce_threads);
    run.attrs["hfreduce_ranks_per_node_option"] = static_cast<std::int64_t>(o.ranks_per_node);
    run.attrs["hfreduce_nodes"] = static_cast<std::int64_t>(comm_->layout().nnodes);
    run.attrs["hfreduce_memory_space"] = std::string(o.device_buffers ? "device" : "host");
    run.attrs["hfreduce_stream_completion"] = std::string(hfreduce::name_of(o.stream_completion));
    run.attrs["hfreduce_nvlink_pairs_option"] = std::string(hfreduce::name_of(o.nvlink_pairs));
    run.attrs["hfreduce_nvlink_pairs"] = std::string(comm_->nvlink_pairs_active() ? "on" : "off");
    run.attrs["hfreduce_nvlink_pairs_fallback_reason"] = comm_->nvlink_pairs_fallback();
  }

 private:
  HfreduceSettings settings_;
  std::unique_ptr<hfreduce::Communicator> comm_;
  std::vector<hfreduce::Request> requests_;
  std::size_t done_ = 0;
  ComputeEngine* compute_ = nullptr;
  void* stream_ = nullptr;
};

}  // namespace

std::unique_ptr<GradientAllreduce> make_none() { return std::make_unique<NoneAllreduce>(); }
std::unique_ptr<GradientAllreduce> make_mpi() { return std::make_unique<MpiAllreduce>(); }
std::unique_ptr<GradientAllreduce> make_hfreduce(const HfreduceSettings& s) {
  return std::make_unique<HfreduceAllreduce>(s);
}

}  // namespace ffb::ddp
