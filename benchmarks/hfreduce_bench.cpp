// HFReduce through the shared harness: same table, validation and HDF5 layout as the MPI baseline,
// plus per-stage times and the fraction of the host-memory ceiling each size reached.
#include <cmath>
#include <thread>

#include <fmt/format.h>

#include "ffb/collective.h"
#include "ffb/error.h"
#include "ffb/membw.h"
#include "ffb/mpi_env.h"
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
                   "messages below this take the small-message path (--small-path)")
        ->capture_default_str();
    app.add_option("--small-path", small_path_text_,
                   "below --fallback-bytes: auto (shared memory on one node, else MPI_Allreduce) "
                   "or mpi (always MPI_Allreduce)")
        ->capture_default_str();
    app.add_option("--membw", membw_gbps_,
                   "host memory bandwidth in GB/s for the ceiling (0: measure at start-up)")
        ->capture_default_str();
  }

  void check_options(const ffb::CollectiveOptions&) override {
    flags_.check();
    (void)ffb::parse_size(fallback_text_, "--fallback-bytes");
    (void)parse_small_path();
    if (!std::isfinite(membw_gbps_) || membw_gbps_ < 0)
      throw ffb::UsageError(fmt::format(
          "--membw {}: give a positive, finite GB/s, or 0 to measure at start-up", membw_gbps_));
  }

  void setup(const ffb::BackendContext& ctx) override {
    flags_.finish(ctx);
    flags_.options.fallback_bytes = ffb::parse_size(fallback_text_, "--fallback-bytes");
    flags_.options.small_path = parse_small_path();
    if (membw_gbps_ == 0) {
      measure_ceiling(ctx.comm);
    } else {
      membw_rule_ = fmt::format("given with --membw {}", membw_gbps_);
    }
    comm_ = std::make_unique<hfreduce::Communicator>(ctx.comm, flags_.options);
  }

  void teardown() override { comm_.reset(); }

  bool supports(ffb::DataType, ffb::ReduceOp) const override { return true; }

  void run(const void* send, void* recv, std::size_t count, ffb::DataType t,
           ffb::ReduceOp op) override {
    comm_->allreduce(send, recv, count, t, op);
  }

  // Called after every timed call (outside the timed span): one allocation for all of them.
  std::vector<ffb::Metric> last_metrics() const override {
    const auto& s = comm_->last_stage_times();
    std::vector<ffb::Metric> m;
    m.reserve(7);
    m.push_back({"fallback", "1", s.used_fallback ? 1.0 : 0.0});
    m.push_back({"algorithm", "1", 0, hfreduce::name_of(s.algorithm)});
    flags_.add_stage_metrics(s, m);
    return m;
  }
  bool print_metrics() const override { return true; }

  double algbw_ceiling(std::size_t bytes) const override {
    if (bytes < flags_.options.fallback_bytes) return 0.0;
    return membw_gbps_ / comm_->memory_traffic_per_node();
  }

  void describe(ffb::RunRecord& run) const override {
    flags_.describe(run, *comm_);
    run.attrs["hfreduce_fallback_bytes"] = static_cast<std::int64_t>(flags_.options.fallback_bytes);
    run.attrs["hfreduce_small_path_option"] = small_path_text_;
    run.attrs["hfreduce_memory_traffic_per_node"] = comm_->memory_traffic_per_node();
    run.attrs["host_membw_add_gbps"] = membw_gbps_;
    run.attrs["host_membw_size_rule"] = membw_rule_;
  }

 private:
  hfreduce::SmallPath parse_small_path() const {
    for (auto v : {hfreduce::SmallPath::automatic, hfreduce::SmallPath::mpi})
      if (small_path_text_ == hfreduce::name_of(v)) return v;
    throw ffb::UsageError(fmt::format("--small-path {}: give auto or mpi", small_path_text_));
  }

  // The ceiling: measured add bandwidth (all hardware threads, the shared size rule) over the
  // bytes this design moves per node. Rank 0 measures; every rank gets its figure and rule.
  void measure_ceiling(MPI_Comm comm) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const auto plan = ffb::plan_membw(ffb::arrays_of(ffb::StreamKernel::add), threads, 0);
    int fits = rank != 0 || plan.fits() ? 1 : 0;
    MPI_Bcast(&fits, 1, MPI_INT, 0, comm);
    if (!fits)
      throw ffb::UsageError(fmt::format(
          "--membw 0: the start-up measurement needs {}; give the host memory bandwidth with "
          "--membw GBPS",
          plan.shortfall()));
    double gbps = 0;
    if (rank == 0)
      gbps = ffb::measure_membw(ffb::StreamKernel::add, threads, plan.bytes_per_array, 5).gbps;
    MPI_Bcast(&gbps, 1, MPI_DOUBLE, 0, comm);
    membw_gbps_ = gbps;
    membw_rule_ = ffb::allgather_strings(comm, rank == 0 ? plan.rule : std::string()).front();
  }

  ffb::bench::HfreduceFlags flags_;
  std::string fallback_text_ = "16K";
  std::string small_path_text_ = "auto";
  double membw_gbps_ = 0;
  std::string membw_rule_;
  std::unique_ptr<hfreduce::Communicator> comm_;
};

}  // namespace

int main(int argc, char** argv) {
  return ffb::collective_main(argc, argv, "hfreduce_bench", std::make_unique<HfreduceBackend>());
}
