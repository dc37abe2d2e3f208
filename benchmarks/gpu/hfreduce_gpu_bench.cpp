// HFReduce on GPU buffers through the shared harness: device-to-host copies on a copy engine into
// the node's pinned shared memory, CPU reduce, host-to-device copies (no GPU kernel), and the
// NVLink-pair variant with --nvlink-pairs. Same table, validation and HDF5 layout as
// hfreduce_bench, which stays CUDA-free.
#include <fmt/format.h>

#include "device_backend.h"
#include "ffb/sizes.h"
#include "gpu_logic.h"
#include "pair_allreduce.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;

class HfreduceGpuBackend final : public ffb::gpu::DeviceBackend {
 public:
  std::string name() const override { return "hfreduce"; }

  void add_options(CLI::App& app) override {
    DeviceBackend::add_options(app);
    app.add_option("--ranks-per-node", options_.ranks_per_node,
                   "form nodes from N consecutive ranks (0: ranks sharing memory)")
        ->capture_default_str();
    app.add_option("--chunk-size", chunk_text_, "pipeline chunk (K/M suffixes)")
        ->capture_default_str();
    app.add_option("--depth", options_.pipeline_depth, "chunk slots per rank in shared memory")
        ->capture_default_str();
    app.add_option("--threads", options_.reduce_threads, "reduce threads per rank")
        ->capture_default_str();
    app.add_option("--nvlink-pairs", pairs_text_,
                   "NVLink-pair variant: off, auto (pairs of GPUs with peer access; else the plain "
                   "path with a message), force (also pairs ranks sharing one GPU: testing)")
        ->capture_default_str();
    app.add_flag("--async", async_,
                 "use allreduce_async on a CUDA stream and wait on the stream (plain path only)");
    app.add_flag("--stages", stages_, "print per-stage times (us) after each placement");
  }

  void setup(const ffb::BackendContext& ctx) override {
    select(ctx);
    options_.chunk_bytes = ffb::parse_size(chunk_text_, "--chunk-size");
    options_.timeout_s = ctx.options->timeout_s;
    if (options_.chunk_bytes < 4096 || options_.chunk_bytes > (1ull << 30))
      throw ffb::UsageError(fmt::format("--chunk-size {}: give 4K to 1G", chunk_text_));
    if (options_.pipeline_depth < 2 || options_.pipeline_depth > 64)
      throw ffb::UsageError(fmt::format("--depth {}: give 2 to 64", options_.pipeline_depth));
    if (options_.reduce_threads < 1 || options_.reduce_threads > 256)
      throw ffb::UsageError(fmt::format("--threads {}: give 1 to 256", options_.reduce_threads));
    if (options_.ranks_per_node < 0 || options_.ranks_per_node > ctx.topology->size)
      throw ffb::UsageError(fmt::format("--ranks-per-node {}: give 0 (shared memory) or 1 to {}",
                                        options_.ranks_per_node, ctx.topology->size));
    const auto mode = ffb::gpu::parse_pair_mode(pairs_text_);
    if (!mode)
      throw ffb::UsageError(fmt::format("--nvlink-pairs {}: give off, auto or force", pairs_text_));
    mode_ = *mode;
    if (async_ && mode_ != ffb::gpu::PairMode::off)
      throw ffb::UsageError("--async works with --nvlink-pairs off only");
    options_.device_buffers = true;
    options_.cuda_device = device_;
    impl_ = std::make_unique<ffb::gpu::PairAllreduce>(ctx.comm, options_, mode_, device_);
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
    if (!stages_) return m;
    const auto& s = impl_->host_stage().last_stage_times();
    if (impl_->paired()) m.push_back({"stage_pair_scatter", "us", impl_->last_scatter_us()});
    m.push_back({"stage_copy_in", "us", s.copy_in_us});
    m.push_back({"stage_intra_reduce", "us", s.intra_reduce_us});
    m.push_back({"stage_inter_node", "us", s.inter_node_us});
    m.push_back({"stage_copy_out", "us", s.copy_out_us});
    m.push_back({"stage_wait", "us", s.wait_us});
    if (impl_->paired()) m.push_back({"stage_pair_gather", "us", impl_->last_gather_us()});
    return m;
  }
  bool print_metrics() const override { return stages_; }

  void describe(ffb::RunRecord& run) const override {
    const auto& l = impl_->host_stage().layout();
    run.attrs["memory_space"] = std::string("device");
    run.attrs["hfreduce_chunk_bytes"] = static_cast<std::int64_t>(options_.chunk_bytes);
    run.attrs["hfreduce_pipeline_depth"] = static_cast<std::int64_t>(options_.pipeline_depth);
    run.attrs["hfreduce_reduce_threads"] = static_cast<std::int64_t>(options_.reduce_threads);
    run.attrs["hfreduce_ranks_per_node_option"] =
        static_cast<std::int64_t>(options_.ranks_per_node);
    run.attrs["hfreduce_nodes"] = static_cast<std::int64_t>(l.nnodes);
    run.attrs["hfreduce_async_stream"] = static_cast<std::int64_t>(async_);
    run.attrs["nvlink_pairs_option"] = std::string(ffb::gpu::name_of(mode_));
    run.attrs["nvlink_pairs"] = std::string(impl_->paired() ? "on" : "off");
    run.attrs["nvlink_pairs_fallback_reason"] = impl_->fallback_reason();
  }

 private:
  hfreduce::Options options_;
  std::string chunk_text_ = "1M";
  std::string pairs_text_ = "off";
  ffb::gpu::PairMode mode_ = ffb::gpu::PairMode::off;
  bool stages_ = false;
  bool async_ = false;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<ffb::gpu::PairAllreduce> impl_;
};

}  // namespace

int main(int argc, char** argv) {
  return ffb::collective_main(argc, argv, "hfreduce_gpu_bench",
                              std::make_unique<HfreduceGpuBackend>());
}
