// ddp_bench: the data-parallel training step of the paper's HaiScale results (fire-flyer.md
// R9-R12): forward, backward layer by layer in reverse, each full gradient bucket's allreduce
// started at once and overlapped with the rest of the backward pass, wait, optional optimizer
// update. Backends: HFReduce (async API), MPI (MPI_Iallreduce), NCCL (GPU builds), none.
// Compute: cuBLAS on a GPU, else emulated (sleep-based) from each layer's FLOPs and a device rate.
// Design and output: docs/ddp_bench.md; results layout: results/SCHEMA.md ("ddp").
//
// The pieces: ddp_options (flags -> settings -> the model and bucket plan), this file (engines,
// the checks that need MPI or a device, the timed loop per backend), ddp_report (what is printed
// and stored).
#include <cmath>
#include <memory>
#include <stdexcept>

#include <fmt/format.h>
#include <mpi.h>

#include "allreduce.h"
#include "compute.h"
#include "ddp_options.h"
#include "ddp_report.h"
#include "ffb/error.h"
#include "ffb/hostinfo.h"
#include "ffb/mpi_env.h"
#include "ffb/program.h"
#include "ffb/provenance.h"
#include "ffb/results.h"
#include "ffb/run_output.h"
#include "ffb/sizes.h"
#include "hfreduce/error.h"
#include "model.h"
#include "step.h"

namespace {

using namespace ffb::ddp;

constexpr const char* kProgram = "ddp_bench";

int local_rank_and_size(MPI_Comm comm, int* local_size) {
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int r = 0;
  MPI_Comm_rank(node, &r);
  MPI_Comm_size(node, local_size);
  MPI_Comm_free(&node);
  return r;
}

// --compute auto picks cuBLAS when this rank sees a GPU.
std::string compute_kind_of(const Cli& o) {
  if (o.compute != "auto") return o.compute;
  return gpu_count_or_zero() > 0 ? "cublas" : "emulated";
}

std::unique_ptr<ComputeEngine> make_compute(const Cli& o, const Settings& st, const Plan& plan,
                                            const std::string& kind, int local_rank) {
  std::unique_ptr<ComputeEngine> compute;
  if (kind == "emulated")
    compute = std::make_unique<EmulatedCompute>();
  else
    compute = make_gpu_compute(o.device, local_rank);
  ComputeConfig ccfg;
  ccfg.tflops = o.tflops;
  ccfg.efficiency = o.efficiency;
  ccfg.batch = st.batch;
  ccfg.optimizer = st.opt_kind;
  ccfg.grad_type = st.dtype;
  ccfg.gemm_type = o.gemm;
  ccfg.device_membw_gbs = o.device_membw;
  ccfg.progress_us = o.progress_us > 0 ? o.progress_us : 100.0;
  compute->prepare(plan.model, ccfg);
  return compute;
}

// Host memory: send + recv gradients per rank (plus a staging copy on GPUs). Every rank of the
// communicator gets the verdict.
void check_host_memory(MPI_Comm comm, const Plan& plan, const ComputeEngine& compute,
                       int local_size, const ffb::Topology& topo) {
  const double need = 2.0 * plan.grad_bytes * local_size;
  const auto have = static_cast<double>(ffb::mem_available_bytes());
  int bad = (!compute.device_memory() && have > 0 && need > 0.8 * have) ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm);
  if (bad)
    throw ffb::UsageError(fmt::format(
        "{}: {} ranks x 2 x {} of gradients need {:.1f} GiB of host memory on {}, {:.1f} GiB "
        "available: use --scale or --max-params",
        plan.model.name, local_size, ffb::format_size(static_cast<std::uint64_t>(plan.grad_bytes)),
        need / (1u << 30), topo.host, have / (1u << 30)));
}

// The checks that need the rank count or the compute engine.
void check_backends(const Cli& o, const Settings& st, const ffb::Topology& topo,
                    const ComputeEngine& compute) {
  if (o.ranks_per_node > topo.size)
    throw ffb::UsageError(fmt::format("--ranks-per-node {}: give 0 (shared memory) or 1 to {}",
                                      o.ranks_per_node, topo.size));
  if (o.inject_corrupt_rank >= topo.size)
    throw ffb::UsageError("--inject-corrupt-rank: rank out of range");
  if (o.trace && compute.device_memory())
    throw ffb::UsageError(
        "--trace: only with emulated compute for now (on a GPU the host would have to poll the "
        "allreduces while the compute stream runs; see docs/ddp_bench.md)");
  const auto& h = st.hs.options;
  if (!compute.device_memory()) {  // the library refuses them on host buffers: say it in flags
    if (h.stream_completion != hfreduce::StreamCompletion::host_func)
      throw ffb::UsageError(fmt::format(
          "--stream-completion {}: HFReduce on GPU buffers only (--compute cublas on a GPU); the "
          "{} engine's gradients are host memory",
          o.stream_completion, compute.name()));
    if (h.nvlink_pairs != hfreduce::NvlinkPairs::off)
      throw ffb::UsageError(fmt::format(
          "--nvlink-pairs {}: HFReduce on GPU buffers only (--compute cublas on a GPU); the {} "
          "engine's gradients are host memory",
          o.nvlink_pairs, compute.name()));
  }
  for (const auto& b : st.backend_names) {
    if (b == "nccl" && !built_with_nccl())
      throw ffb::SkipError("--backend nccl: this ddp_bench was built without CUDA/NCCL");
    if (b == "nccl" && !compute.device_memory())
      throw ffb::SkipError(
          "--backend nccl: needs GPU compute (--compute cublas on a GPU); no GPU compute here");
    if (b == "mpi" && compute.device_memory())
      throw ffb::UsageError(
          "--backend mpi: the MPI backend reduces host memory only (Debian's Open MPI is not "
          "CUDA-aware); use hfreduce or nccl with --compute cublas");
  }
}

StepConfig step_config(const Cli& o, const Settings& st) {
  StepConfig scfg;
  scfg.steps = o.steps;
  scfg.warmup = o.warmup;
  scfg.comm_steps = o.comm_steps;
  scfg.type = st.dtype;
  scfg.check = !o.no_check;
  scfg.check_every_step = o.check_every_step;
  scfg.inject_corrupt_rank = o.inject_corrupt_rank;
  scfg.trace = o.trace;
  // The compute engine's progress interval (100 us when --progress-us is 0), at most 100 us.
  scfg.trace_interval_s = std::min(o.progress_us > 0 ? o.progress_us : 100.0, 100.0) * 1e-6;
  scfg.progress = o.progress_us > 0;
  return scfg;
}

std::unique_ptr<GradientAllreduce> make_backend(const std::string& name, const Settings& st) {
  if (name == "hfreduce") return make_hfreduce(st.hs);
  if (name == "mpi") return make_mpi();
  if (name == "nccl") return make_nccl();
  return make_none();
}

// --baseline-step-ms for this backend (its own, else the one for every backend), in s; NaN.
double baseline_of(const Settings& st, const std::string& name) {
  if (auto it = st.baseline.find(name); it != st.baseline.end()) return it->second * 1e-3;
  if (auto any = st.baseline.find("*"); any != st.baseline.end()) return any->second * 1e-3;
  return std::nan("");
}

// The timed steps on one backend (collective); the backend describes itself in the record.
BackendOutcome run_backend(const std::string& name, const Settings& st, const Plan& plan,
                           ComputeEngine& compute, MPI_Comm comm, const ffb::Topology& topo,
                           const StepConfig& scfg, ffb::RunRecord& record) {
  const auto backend = make_backend(name, st);
  backend->setup(comm, topo, compute);
  BackendOutcome out;
  out.name = name;
  out.result = run_ddp(plan.model, plan.buckets, compute, *backend, comm, scfg);
  backend->describe(record);
  backend->teardown();
  out.summary = summarize(out.result);
  out.baseline = baseline_of(st, name);
  out.efficiency = std::isnan(out.baseline) ? out.baseline : out.baseline / out.summary.step_mean;
  out.samples_per_s = static_cast<double>(st.batch) * topo.size / out.summary.step_mean;
  return out;
}

class DdpBench final : public ffb::Program {
 public:
  void add_options(CLI::App& app) override { ffb::ddp::add_options(app, o_); }
  void validate() override { st_ = check_options(o_); }
  int run(ffb::ProgramContext& ctx) override {
    try {
      return measure(ctx);
    } catch (const hfreduce::Error& e) {  // the status names what went wrong (timeout, ...)
      throw std::runtime_error(
          fmt::format("hfreduce: {}: {}", hfreduce::name_of(e.status()), e.what()));
    }
  }

 private:
  int measure(ffb::ProgramContext& ctx) {
    ffb::check_output(o_.output, ctx.comm);
    const ffb::DupComm comm(ctx.comm);
    const auto& topo = ctx.topology;
    int local_size = 1;
    const int local_rank = local_rank_and_size(comm.get(), &local_size);

    const Plan plan = plan_run(o_, st_);
    const std::string compute_kind = compute_kind_of(o_);
    const auto compute = make_compute(o_, st_, plan, compute_kind, local_rank);
    check_host_memory(comm.get(), plan, *compute, local_size, topo);
    check_backends(o_, st_, topo, *compute);

    ffb::RunRecord record;
    describe_run(record, o_, st_, plan, compute_kind, *compute);
    ffb::add_provenance(record, comm.get(), topo, kProgram, "ddp", ctx.argv,
                        compute->device_description());
    if (ctx.root()) print_header(o_, st_, plan, topo, *compute);

    const StepConfig scfg = step_config(o_, st_);
    std::vector<BackendOutcome> outcomes;
    bool all_ok = true;
    for (const auto& name : st_.backend_names) {
      outcomes.push_back(run_backend(name, st_, plan, *compute, comm.get(), topo, scfg, record));
      all_ok = all_ok && outcomes.back().result.wrong <= 0;
      if (ctx.root()) print_row(o_, plan, topo, outcomes.back());
    }
    record.tables.push_back(ddp_table(o_, st_, plan, compute_kind, topo, outcomes));
    record.tables.push_back(bucket_table(plan, outcomes));
    if (!all_ok) record.attrs["status"] = std::string("failed");

    if (ctx.root()) print_footer(o_, all_ok);
    return ffb::finish_run(comm.get(), o_.output, record, !all_ok);
  }

  Cli o_;
  Settings st_;
};

}  // namespace

int main(int argc, char** argv) {
  DdpBench program;
  return ffb::run_program(argc, argv,
                          {.name = kProgram,
                           .description = "data-parallel training step with gradient allreduce "
                                          "overlapped with backprop (docs/ddp_bench.md)",
                           .thread_level = MPI_THREAD_MULTIPLE,
                           .parse = {}},
                          program);
}
