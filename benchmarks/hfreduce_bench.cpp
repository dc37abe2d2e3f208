// HFReduce through the shared harness: same table, validation and HDF5 layout as the MPI baseline,
// plus per-stage times and the fraction of the host-memory ceiling each size reached.
#include <thread>

#include <fmt/format.h>

#include "ffb/collective.h"
#include "ffb/error.h"
#include "ffb/membw.h"
#include "ffb/sizes.h"
#include "hfreduce/hfreduce.h"

namespace {

class HfreduceBackend final : public ffb::CollectiveBackend {
 public:
  std::string name() const override { return "hfreduce"; }

  void add_options(CLI::App& app) override {
    app.add_option("--ranks-per-node", options_.ranks_per_node,
                   "form nodes from N consecutive ranks (0: ranks sharing memory)")
        ->capture_default_str();
    app.add_option("--chunk-size", chunk_text_, "pipeline chunk (K/M suffixes)")
        ->capture_default_str();
    app.add_option("--depth", options_.pipeline_depth, "chunk slots per rank in shared memory")
        ->capture_default_str();
    app.add_option("--threads", options_.reduce_threads, "reduce threads per rank")
        ->capture_default_str();
    app.add_option("--fallback-bytes", fallback_text_,
                   "messages below this use MPI_Allreduce (native types only)")
        ->capture_default_str();
    app.add_flag("--stages", stages_, "print per-stage times (us) after each placement");
    app.add_option("--membw", membw_gbps_,
                   "host memory bandwidth in GB/s for the ceiling (0: measure at start-up)")
        ->capture_default_str();
  }

  void setup(const ffb::BackendContext& ctx) override {
    options_.chunk_bytes = ffb::parse_size(chunk_text_, "--chunk-size");
    options_.fallback_bytes = ffb::parse_size(fallback_text_, "--fallback-bytes");
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
    if (membw_gbps_ < 0) throw ffb::UsageError("--membw: give a positive GB/s or 0 to measure");
    comm_ = std::make_unique<hfreduce::Communicator>(ctx.comm, options_);
    // The ceiling: measured add bandwidth (all cores) over the bytes this design moves per node.
    if (membw_gbps_ == 0) {
      int rank = 0;
      MPI_Comm_rank(ctx.comm, &rank);
      double gbps = 0;
      if (rank == 0) {
        const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        gbps = ffb::measure_membw(ffb::StreamKernel::add, threads, 64ull << 20, 5).gbps;
      }
      MPI_Bcast(&gbps, 1, MPI_DOUBLE, 0, ctx.comm);
      membw_gbps_ = gbps;
    }
  }

  void teardown() override { comm_.reset(); }

  bool supports(ffb::DataType, ffb::ReduceOp) const override { return true; }

  void run(const void* send, void* recv, std::size_t count, ffb::DataType t,
           ffb::ReduceOp op) override {
    comm_->allreduce(send, recv, count, t, op);
  }

  std::vector<ffb::Metric> last_metrics() const override {
    const auto& s = comm_->last_stage_times();
    std::vector<ffb::Metric> m{{"fallback", "1", s.used_fallback ? 1.0 : 0.0}};
    if (stages_) {
      m.push_back({"stage_copy_in", "us", s.copy_in_us});
      m.push_back({"stage_intra_reduce", "us", s.intra_reduce_us});
      m.push_back({"stage_inter_node", "us", s.inter_node_us});
      m.push_back({"stage_copy_out", "us", s.copy_out_us});
      m.push_back({"stage_wait", "us", s.wait_us});
    }
    return m;
  }
  bool print_metrics() const override { return true; }

  double algbw_ceiling(std::size_t bytes) const override {
    if (bytes < options_.fallback_bytes) return 0.0;
    return membw_gbps_ / comm_->memory_traffic_per_node();
  }

  void describe(ffb::RunRecord& run) const override {
    const auto& l = comm_->layout();
    run.attrs["hfreduce_chunk_bytes"] = static_cast<std::int64_t>(options_.chunk_bytes);
    run.attrs["hfreduce_pipeline_depth"] = static_cast<std::int64_t>(options_.pipeline_depth);
    run.attrs["hfreduce_reduce_threads"] = static_cast<std::int64_t>(options_.reduce_threads);
    run.attrs["hfreduce_fallback_bytes"] = static_cast<std::int64_t>(options_.fallback_bytes);
    run.attrs["hfreduce_ranks_per_node_option"] =
        static_cast<std::int64_t>(options_.ranks_per_node);
    run.attrs["hfreduce_nodes"] = static_cast<std::int64_t>(l.nnodes);
    run.attrs["hfreduce_memory_traffic_per_node"] = comm_->memory_traffic_per_node();
    run.attrs["host_membw_add_gbps"] = membw_gbps_;
  }

 private:
  hfreduce::Options options_;
  std::string chunk_text_ = "1M";
  std::string fallback_text_ = "16K";
  bool stages_ = false;
  double membw_gbps_ = 0;
  std::unique_ptr<hfreduce::Communicator> comm_;
};

}  // namespace

int main(int argc, char** argv) {
  return ffb::collective_main(argc, argv, "hfreduce_bench", std::make_unique<HfreduceBackend>());
}
