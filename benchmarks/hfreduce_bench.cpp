// HFReduce through the shared harness: same table, validation and HDF5 layout as the MPI baseline,
// plus per-stage times and the fraction of the host-memory ceiling each size reached.
#include <thread>

#include <fmt/format.h>

#include "ffb/collective.h"
#include "ffb/error.h"
#include "ffb/membw.h"
#include "ffb/sizes.h"
#include "hfreduce/hfreduce.h"
#include "hfreduce_flags.h"

namespace {

class HfreduceBackend final : public ffb::CollectiveBackend {
 public:
  std::string name() const override { return "hfreduce"; }

  void add_options(CLI::App& app) override {
    flags_.add_to(app);
    app.add_option("--fallback-bytes", fallback_text_,
                   "messages below this use MPI_Allreduce (native types only)")
        ->capture_default_str();
    app.add_option("--membw", membw_gbps_,
                   "host memory bandwidth in GB/s for the ceiling (0: measure at start-up)")
        ->capture_default_str();
  }

  void setup(const ffb::BackendContext& ctx) override {
    flags_.finish(ctx);
    flags_.options.fallback_bytes = ffb::parse_size(fallback_text_, "--fallback-bytes");
    if (membw_gbps_ < 0) throw ffb::UsageError("--membw: give a positive GB/s or 0 to measure");
    comm_ = std::make_unique<hfreduce::Communicator>(ctx.comm, flags_.options);
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
    flags_.add_stage_metrics(s, m);
    return m;
  }
  bool print_metrics() const override { return true; }

  double algbw_ceiling(std::size_t bytes) const override {
    if (bytes < flags_.options.fallback_bytes) return 0.0;
    return membw_gbps_ / comm_->memory_traffic_per_node();
  }

  void describe(ffb::RunRecord& run) const override {
    flags_.describe(run, comm_->layout());
    run.attrs["hfreduce_fallback_bytes"] = static_cast<std::int64_t>(flags_.options.fallback_bytes);
    run.attrs["hfreduce_memory_traffic_per_node"] = comm_->memory_traffic_per_node();
    run.attrs["host_membw_add_gbps"] = membw_gbps_;
  }

 private:
  ffb::bench::HfreduceFlags flags_;
  std::string fallback_text_ = "16K";
  double membw_gbps_ = 0;
  std::unique_ptr<hfreduce::Communicator> comm_;
};

}  // namespace

int main(int argc, char** argv) {
  return ffb::collective_main(argc, argv, "hfreduce_bench", std::make_unique<HfreduceBackend>());
}
