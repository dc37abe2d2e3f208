// HFReduce on GPU buffers through the shared harness: device-to-host copies on a copy engine into
// the node's pinned shared memory, CPU reduce, host-to-device copies (no GPU kernel), and the
// NVLink-pair variant with --nvlink-pairs. Same table, validation and HDF5 layout as
// hfreduce_bench, which stays CUDA-free.
#include <fmt/format.h>

#include "device_backend.h"
#include "ffb/sizes.h"
#include "gpu_logic.h"
#include "hfreduce_flags.h"
#include "pair_allreduce.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;

class HfreduceGpuBackend final : public ffb::gpu::DeviceBackend {
 public:
  std::string name() const override { return "hfreduce"; }

  void add_options(CLI::App& app) override {
    DeviceBackend::add_options(app);
    flags_.add_to(app);
    app.add_option("--nvlink-pairs", pairs_text_,
                   "NVLink-pair variant: off, auto (pairs of GPUs with peer access; else the plain "
                   "path with a message), force (also pairs ranks sharing one GPU: testing)")
        ->capture_default_str();
    app.add_flag("--async", async_,
                 "use allreduce_async on a CUDA stream and wait on the stream (plain path only)");
  }

  void check_options(const ffb::CollectiveOptions&) override {
    flags_.check();
    const auto mode = ffb::gpu::parse_pair_mode(pairs_text_);
    if (!mode)
      throw ffb::UsageError(fmt::format("--nvlink-pairs {}: give off, auto or force", pairs_text_));
    mode_ = *mode;
    if (async_ && mode_ != ffb::gpu::PairMode::off)
      throw ffb::UsageError("--async works with --nvlink-pairs off only");
  }

  void setup(const ffb::BackendContext& ctx) override {
    select(ctx);
    flags_.finish(ctx);
    flags_.options.device_buffers = true;
    flags_.options.cuda_device = device_;
    impl_ = std::make_unique<ffb::gpu::PairAllreduce>(ctx.comm, flags_.options, mode_, device_);
    if (async_)
      ffb::gpu::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                      "cudaStreamCreateWithFlags");
    int rank = 0;
    MPI_Comm_rank(ctx.comm, &rank);
    if (rank == 0) {
      if (impl_->paired())
        fmt::print("# nvlink pairs: on ({}): each GPU hands half of every message to the host\n",
                   ffb::gpu::name_of(mode_));
      else if (mode_ != ffb::gpu::PairMode::off)
        fmt::print("# nvlink pairs: unavailable, using the plain device path: {}\n",
                   impl_->fallback_reason());
      std::fflush(stdout);
    }
  }

  void teardown() override {
    impl_.reset();
    if (stream_ != nullptr) {
      (void)cudaStreamDestroy(stream_);
      stream_ = nullptr;
    }
  }

  // Every type: the host stage's kernels and the paired path's pair_combine (gpu_kernels.cu)
  // reduce all of them.
  bool supports(DataType, ReduceOp) const override { return true; }

  void run(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op) override {
    if (!async_) {
      impl_->allreduce(send, recv, count, t, op);
      return;
    }
    auto req = impl_->host_stage().allreduce_async(send, recv, count, t, op, stream_);
    ffb::gpu::check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    req.wait();
  }

  std::vector<ffb::Metric> last_metrics() const override {
    std::vector<ffb::Metric> m;
    if (!flags_.stages) return m;
    if (impl_->paired()) m.push_back({"stage_pair_scatter", "us", impl_->last_scatter_us()});
    flags_.add_stage_metrics(impl_->host_stage().last_stage_times(), m);
    if (impl_->paired()) m.push_back({"stage_pair_gather", "us", impl_->last_gather_us()});
    return m;
  }
  bool print_metrics() const override { return flags_.stages; }

  void describe(ffb::RunRecord& run) const override {
    run.attrs["memory_space"] = std::string("device");
    flags_.describe(run, impl_->host_stage().layout());
    run.attrs["hfreduce_async_stream"] = static_cast<std::int64_t>(async_);
    run.attrs["nvlink_pairs_option"] = std::string(ffb::gpu::name_of(mode_));
    run.attrs["nvlink_pairs"] = std::string(impl_->paired() ? "on" : "off");
    run.attrs["nvlink_pairs_fallback_reason"] = impl_->fallback_reason();
  }

 private:
  ffb::bench::HfreduceFlags flags_;
  std::string pairs_text_ = "off";
  ffb::gpu::PairMode mode_ = ffb::gpu::PairMode::off;
  bool async_ = false;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<ffb::gpu::PairAllreduce> impl_;
};

}  // namespace

int main(int argc, char** argv) {
  return ffb::collective_main(argc, argv, "hfreduce_gpu_bench",
                              std::make_unique<HfreduceGpuBackend>());
}
