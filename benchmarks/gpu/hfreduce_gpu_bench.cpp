// HFReduce on GPU buffers through the shared harness: device-to-host copies on a copy engine into
// the node's pinned shared memory, CPU reduce, host-to-device copies (no GPU kernel), and the
// library's NVLink pairs with --nvlink-pairs (Options::nvlink_pairs). --async runs each call as
// allreduce_async on a CUDA stream, completed as --stream-completion says. Same table, validation
// and HDF5 layout as hfreduce_bench, which stays CUDA-free.
#include <fmt/format.h>

#include "device_backend.h"
#include "ffb/sizes.h"
#include "hfreduce_flags.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;

// The library's option values by their names (name_of): one UsageError line naming the flag.
template <class E>
E parse_choice(const std::string& text, std::initializer_list<E> values, const char* flag) {
  std::string names;
  for (E v : values) {
    if (text == hfreduce::name_of(v)) return v;
    names += (names.empty() ? "" : ", ") + std::string(hfreduce::name_of(v));
  }
  throw ffb::UsageError(fmt::format("{} {}: give {}", flag, text, names));
}

class HfreduceGpuBackend final : public ffb::gpu::DeviceBackend {
 public:
  std::string name() const override { return "hfreduce"; }
  void add_options(CLI::App& app) override;
  void check_options(const ffb::CollectiveOptions&) override;
  void setup(const ffb::BackendContext& ctx) override;
  void teardown() override;
  // Every type: the host stage's kernels and the pair kernel reduce all of them.
  bool supports(DataType, ReduceOp) const override { return true; }
  void run(const void* send, void* recv, std::size_t count, DataType t, ReduceOp op) override;
  std::vector<ffb::Metric> last_metrics() const override;
  bool print_metrics() const override { return flags_.stages; }
  // The per-row `algorithm` column is stored with or without --stages.
  bool has_metrics() const override { return true; }
  void describe(ffb::RunRecord& run) const override;

 private:
  ffb::bench::HfreduceFlags flags_;
  std::string pairs_text_ = "off";
  std::string completion_text_ = "host_func";
  bool async_ = false;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<hfreduce::Communicator> comm_;
};

void HfreduceGpuBackend::add_options(CLI::App& app) {
  DeviceBackend::add_options(app);
  flags_.add_to(app);
  app.add_option("--nvlink-pairs", pairs_text_,
                 "NVLink pairs: off, auto (pairs of GPUs with peer access; else the plain path "
                 "with one line saying why), force (also pairs ranks sharing one GPU: testing)")
      ->capture_default_str();
  app.add_flag("--async", async_,
               "use allreduce_async on a CUDA stream and wait on the stream, then the request");
  app.add_option("--stream-completion", completion_text_,
                 "how --async holds the stream until the result is there: host_func (a host "
                 "function waits) or stream_wait (the stream waits on a flag; no host function)")
      ->capture_default_str();
}

void HfreduceGpuBackend::check_options(const ffb::CollectiveOptions&) {
  using hfreduce::NvlinkPairs;
  using hfreduce::StreamCompletion;
  auto& o = flags_.options;
  o.device_buffers = true;  // before the library's checks: pairs and completion need it
  o.nvlink_pairs =
      parse_choice(pairs_text_, {NvlinkPairs::off, NvlinkPairs::automatic, NvlinkPairs::force},
                   "--nvlink-pairs");
  o.stream_completion =
      parse_choice(completion_text_, {StreamCompletion::host_func, StreamCompletion::stream_wait},
                   "--stream-completion");
  if (o.stream_completion != StreamCompletion::host_func && !async_)
    throw ffb::UsageError(fmt::format(
        "--stream-completion {}: applies to --async only (synchronous calls hold no stream)",
        completion_text_));
  flags_.check();
}

void HfreduceGpuBackend::setup(const ffb::BackendContext& ctx) {
  select(ctx);
  flags_.finish(ctx);
  flags_.options.cuda_device = device_;
  comm_ = std::make_unique<hfreduce::Communicator>(ctx.comm, flags_.options);
  if (async_)
    ffb::gpu::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                    "cudaStreamCreateWithFlags");
  if (comm_->layout().rank == 0) {
    if (comm_->nvlink_pairs_active())
      fmt::print("# nvlink pairs: on ({}): each GPU hands half of every message to the host\n",
                 hfreduce::name_of(flags_.options.nvlink_pairs));
    else if (flags_.options.nvlink_pairs != hfreduce::NvlinkPairs::off)
      fmt::print("# nvlink pairs: unavailable, using the plain device path: {}\n",
                 comm_->nvlink_pairs_fallback());
    std::fflush(stdout);
  }
}

void HfreduceGpuBackend::teardown() {
  comm_.reset();
  if (stream_ != nullptr) {
    (void)cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }
}

void HfreduceGpuBackend::run(const void* send, void* recv, std::size_t count, DataType t,
                             ReduceOp op) {
  if (!async_) {
    comm_->allreduce(send, recv, count, t, op);
    return;
  }
  auto req = comm_->allreduce_async(send, recv, count, t, op, stream_);
  ffb::gpu::check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  req.wait();
}

std::vector<ffb::Metric> HfreduceGpuBackend::last_metrics() const {
  const auto& s = comm_->last_stage_times();
  std::vector<ffb::Metric> m;
  m.push_back({"algorithm", "1", 0, hfreduce::name_of(s.algorithm)});
  if (!flags_.stages) return m;
  if (comm_->nvlink_pairs_active()) m.push_back({"stage_pair_scatter", "us", s.pair_scatter_us});
  flags_.add_stage_metrics(s, m);
  if (comm_->nvlink_pairs_active()) m.push_back({"stage_pair_gather", "us", s.pair_gather_us});
  return m;
}

void HfreduceGpuBackend::describe(ffb::RunRecord& run) const {
  run.attrs["memory_space"] = std::string("device");
  flags_.describe(run, *comm_);
  run.attrs["hfreduce_async_stream"] = static_cast<std::int64_t>(async_);
  run.attrs["hfreduce_stream_completion"] =
      std::string(hfreduce::name_of(flags_.options.stream_completion));
  run.attrs["nvlink_pairs_option"] = std::string(hfreduce::name_of(flags_.options.nvlink_pairs));
  run.attrs["nvlink_pairs"] = std::string(comm_->nvlink_pairs_active() ? "on" : "off");
  run.attrs["nvlink_pairs_fallback_reason"] = comm_->nvlink_pairs_fallback();
}

}  // namespace

int main(int argc, char** argv) {
  return ffb::collective_main(argc, argv, "hfreduce_gpu_bench",
                              std::make_unique<HfreduceGpuBackend>());
}
