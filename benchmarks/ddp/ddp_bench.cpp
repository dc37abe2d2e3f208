// ddp_bench: the data-parallel training step of the paper's HaiScale results (fire-flyer.md
// R9-R12): forward, backward layer by layer in reverse, each full gradient bucket's allreduce
// started at once and overlapped with the rest of the backward pass, wait, optional optimizer
// update. Backends: HFReduce (async API), MPI (MPI_Iallreduce), NCCL (GPU builds), none.
// Compute: cuBLAS on a GPU, else emulated (sleep-based) from each layer's FLOPs and a device rate.
// Design and output: docs/ddp_bench.md; results layout: results/SCHEMA.md ("ddp").
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <mpi.h>
#include <nlohmann/json.hpp>

#include "allreduce.h"
#include "compute.h"
#include "ffb/error.h"
#include "ffb/hostinfo.h"
#include "ffb/mpi_env.h"
#include "ffb/provenance.h"
#include "ffb/results.h"
#include "ffb/sizes.h"
#include "model.h"
#include "step.h"

namespace {

using namespace ffb::ddp;

constexpr const char* kProgram = "ddp_bench";

struct Cli {
  std::string model = "vgg16";
  std::string backends = "hfreduce,mpi,none";
  std::string compute = "auto";
  double tflops = 107.0;
  double efficiency = 1.0;
  int batch = 0;
  double scale = 1.0;
  std::string max_params;
  double compute_scale = 1.0;
  std::string bucket_size = "25M";
  std::string first_bucket_size = "1M";
  bool no_scale_buckets = false;
  std::string dtype = "float";
  int steps = 10;
  int warmup = 2;
  int comm_steps = 3;
  std::string optimizer = "none";
  std::string gemm = "tf32";
  double device_membw = 1555.0;
  bool no_check = false;
  bool check_every_step = false;
  double progress_us = 100.0;
  int ranks_per_node = 0;
  std::string chunk_size = "1M";
  int depth = 4;
  int threads = 1;
  std::string fallback_bytes = "16K";
  double hf_timeout = 300.0;
  std::string baseline;
  bool print_buckets = false;
  bool trace = false;
  int device = -1;
  std::string output, label;
  int inject_corrupt_rank = -1;
  bool check_args = false;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// "130" (every backend) or "hfreduce=130,mpi=270" (milliseconds).
std::map<std::string, double> parse_baseline(const std::string& text) {
  std::map<std::string, double> out;
  if (text.empty()) return out;
  for (const auto& item : split(text)) {
    const auto eq = item.find('=');
    const std::string key = eq == std::string::npos ? "*" : item.substr(0, eq);
    const std::string val = eq == std::string::npos ? item : item.substr(eq + 1);
    char* end = nullptr;
    const double v = std::strtod(val.c_str(), &end);
    if (end == val.c_str() || *end != '\0' || !(v > 0) || !std::isfinite(v))
      throw ffb::UsageError(
          fmt::format("--baseline-step-ms '{}': give milliseconds (130) or backend=ms pairs "
                      "(hfreduce=130,mpi=270)",
                      text));
    out[key] = v;
  }
  return out;
}

int local_rank_and_size(MPI_Comm comm, int* local_size) {
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int r = 0;
  MPI_Comm_rank(node, &r);
  MPI_Comm_size(node, local_size);
  MPI_Comm_free(&node);
  return r;
}

std::string fmt_ms(double s) {
  if (std::isnan(s)) return "-";
  return fmt::format("{:.2f}", s * 1e3);
}

std::string fmt_flops(double f) {
  if (f >= 1e12) return fmt::format("{:.3g} TFLOP", f / 1e12);
  if (f >= 1e9) return fmt::format("{:.3g} GFLOP", f / 1e9);
  return fmt::format("{:.3g} MFLOP", f / 1e6);
}

std::string fmt_count(double n) {
  if (n >= 1e9) return fmt::format("{:.3g}B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.3g}M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.3g}K", n / 1e3);
  return fmt::format("{:.0f}", n);
}

// Sane bounds of the numeric options (docs/ddp_bench.md, "Bounds"): beyond them a value is a
// typo, runs out of memory (per-step times are kept) or overflows the emulated clock.
constexpr int kMaxSteps = 1000000;
constexpr int kMaxBatch = 1000000;
constexpr double kMaxRate = 1e6;          // --tflops, --device-membw (GB/s)
constexpr double kMaxComputeScale = 1e6;  // --compute-scale
constexpr double kMaxProgressUs = 1e6;    // --progress-us (1 s)
constexpr double kMaxTimeoutS = 7 * 24 * 3600.0;
constexpr double kMaxStepS = 86400.0;  // emulated compute per step (forward + backward + update)

void add_options(CLI::App& app, Cli& o) {
  app.add_option("--model", o.model,
                 "model file or name in configs/models (vgg16, gpt2-medium, "
                 "llama-13b)")
      ->capture_default_str();
  app.add_option("--backend", o.backends,
                 "comma list of hfreduce, mpi, nccl (GPU builds), none (compute only)")
      ->capture_default_str();
  app.add_option("--compute", o.compute, "auto (cublas on a GPU, else emulated), emulated, cublas")
      ->capture_default_str();
  app.add_option("--gemm", o.gemm, "GPU GEMM type: tf32 (fp32 data on TF32 tensor cores) or bf16")
      ->capture_default_str();
  app.add_option("--tflops", o.tflops,
                 "emulated device rate, (0, 1e6] (the paper's A100-PCIe TF32: 107)")
      ->capture_default_str();
  app.add_option("--efficiency", o.efficiency,
                 "fraction of --tflops a layer achieves (emulated compute), (0, 1]")
      ->capture_default_str();
  app.add_option("--batch", o.batch,
                 "samples per rank per step, 0 to 1000000 (0: the model's batch_per_gpu)")
      ->capture_default_str();
  app.add_option("--scale", o.scale, "fraction of each layer's parameters (gradient bytes), (0, 1]")
      ->capture_default_str();
  app.add_option("--max-params", o.max_params,
                 "cap the parameters: sets --scale to min(1, N / model params); K/M/G suffixes "
                 "are decimal here (1M = 1e6)");
  app.add_option("--compute-scale", o.compute_scale,
                 "multiply every layer's FLOPs, 0 to 1e6 (0: no compute, communication only)")
      ->capture_default_str();
  app.add_option("--bucket-size", o.bucket_size, "gradient bucket cap (PyTorch DDP: 25 MiB)")
      ->capture_default_str();
  app.add_option("--first-bucket-size", o.first_bucket_size,
                 "cap of the first bucket (PyTorch DDP: 1 MiB; 0: same as --bucket-size)")
      ->capture_default_str();
  app.add_flag("--no-scale-buckets", o.no_scale_buckets,
               "keep the bucket caps when --scale/--max-params shrink the model (default: caps x "
               "scale, so the scaled model keeps the full model's bucket plan)");
  app.add_option("--dtype", o.dtype, "gradient type: float, bfloat16, half")->capture_default_str();
  app.add_option("--steps", o.steps, "timed steps (1 to 1000000)")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed steps first (0 to 1000000)")->capture_default_str();
  app.add_option("--comm-steps", o.comm_steps,
                 "communication-only repetitions (the allreduce time nothing hides; 0: skip)")
      ->capture_default_str();
  app.add_option("--optimizer", o.optimizer,
                 "none, sgd or adam: an update after the allreduces (emulated: params x bytes / "
                 "--device-membw)")
      ->capture_default_str();
  app.add_option("--device-membw", o.device_membw,
                 "device memory GB/s for the emulated update, (0, 1e6]")
      ->capture_default_str();
  app.add_flag("--no-check", o.no_check, "skip validating the allreduced gradients");
  app.add_flag("--check-every-step", o.check_every_step,
               "validate every timed step (default: the last one)");
  app.add_option("--progress-us", o.progress_us,
                 "MPI backend: call MPI_Testall at least this often while compute runs (0: never; "
                 "Open MPI then progresses the allreduces only when the step waits); up to 1e6")
      ->capture_default_str();
  app.add_option("--ranks-per-node", o.ranks_per_node,
                 "HFReduce nodes of N consecutive ranks (0: ranks sharing memory); emulates nodes")
      ->capture_default_str();
  app.add_option("--chunk-size", o.chunk_size, "HFReduce pipeline chunk (4K to 1G)")
      ->capture_default_str();
  app.add_option("--depth", o.depth, "HFReduce chunk slots per rank (2 to 64)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "HFReduce reduce threads per rank (1 to 256)")
      ->capture_default_str();
  app.add_option("--fallback-bytes", o.fallback_bytes,
                 "HFReduce hands buckets below this to MPI_Allreduce (0 to 1G)")
      ->capture_default_str();
  app.add_option("--hfreduce-timeout", o.hf_timeout, "HFReduce: longest wait for a peer (s)")
      ->capture_default_str();
  app.add_option("--baseline-step-ms", o.baseline,
                 "step time at the smallest scale (ms, or backend=ms,...): prints the weak-scaling "
                 "efficiency baseline / step time");
  app.add_flag("--buckets", o.print_buckets, "print the bucket plan");
  app.add_flag("--trace", o.trace,
               "record when each bucket's allreduce completes (polls every --progress-us; "
               "printed with --buckets, stored as ddp_buckets.done_offset)");
  app.add_option("--device", o.device, "GPU of this rank (-1: local rank modulo GPUs)")
      ->capture_default_str();
  app.add_option("--output", o.output, "append this run to an HDF5 results file");
  app.add_option("--label", o.label, "free text stored with the run");
  app.add_flag("--check-args", o.check_args,
               "only check the options and the model file as a run would: exit 0 if valid, else "
               "2 with the error (no MPI communication, no GPU)");
  app.add_option("--inject-corrupt-rank", o.inject_corrupt_rank)->group("");  // test only
}

// A number option in [lo, hi] (NaN and infinities refused); `range` is what the error suggests.
void check_range(const char* flag, double v, double lo, double hi, const std::string& range) {
  if (!(v >= lo && v <= hi)) throw ffb::UsageError(fmt::format("{} {}: give {}", flag, v, range));
}

void check_counts(const Cli& o) {
  if (o.steps < 1 || o.steps > kMaxSteps)
    throw ffb::UsageError(fmt::format("--steps {}: give 1 to {}", o.steps, kMaxSteps));
  if (o.warmup < 0 || o.warmup > kMaxSteps)
    throw ffb::UsageError(fmt::format("--warmup {}: give 0 to {}", o.warmup, kMaxSteps));
  if (o.comm_steps < 0 || o.comm_steps > kMaxSteps)
    throw ffb::UsageError(fmt::format("--comm-steps {}: give 0 to {}", o.comm_steps, kMaxSteps));
  if (o.batch < 0 || o.batch > kMaxBatch)
    throw ffb::UsageError(
        fmt::format("--batch {}: give 1 to {} samples per rank, or 0 for the model's batch_per_gpu",
                    o.batch, kMaxBatch));
  if (o.depth < 2 || o.depth > 64)
    throw ffb::UsageError(fmt::format("--depth {}: give 2 to 64", o.depth));
  if (o.threads < 1 || o.threads > 256)
    throw ffb::UsageError(fmt::format("--threads {}: give 1 to 256", o.threads));
  if (o.ranks_per_node < 0)
    throw ffb::UsageError(fmt::format("--ranks-per-node {}: give 0 (shared memory) or a rank count",
                                      o.ranks_per_node));
  if (o.device < -1)
    throw ffb::UsageError(
        fmt::format("--device {}: give a GPU index, or -1 for local rank modulo GPUs", o.device));
  if (o.inject_corrupt_rank < -1)
    throw ffb::UsageError("--inject-corrupt-rank: give a rank (0 or more), or -1 for none");
}

void check_rates(const Cli& o) {
  check_range("--tflops", o.tflops, 1e-9, kMaxRate, "a rate > 0 and at most 1e6");
  if (!(o.efficiency > 0 && o.efficiency <= 1))
    throw ffb::UsageError(fmt::format("--efficiency {}: give (0, 1]", o.efficiency));
  if (!(o.scale > 0 && o.scale <= 1))
    throw ffb::UsageError(fmt::format("--scale {}: give a fraction in (0, 1]", o.scale));
  check_range("--compute-scale", o.compute_scale, 0, kMaxComputeScale, "0 to 1e6");
  check_range("--progress-us", o.progress_us, 0, kMaxProgressUs, "0 to 1e6");
  check_range("--device-membw", o.device_membw, 1e-9, kMaxRate, "GB/s > 0 and at most 1e6");
  if (!(o.hf_timeout > 0 && o.hf_timeout <= kMaxTimeoutS))
    throw ffb::UsageError(fmt::format("--hfreduce-timeout {}: give seconds > 0 and at most {:g}",
                                      o.hf_timeout, kMaxTimeoutS));
}

// What the options decide before MPI communication, topology or devices are involved.
struct Settings {
  ffb::DataType dtype = ffb::DataType::f32;
  Optimizer opt_kind = Optimizer::none;
  std::uint64_t bucket_cap = 0, first_bucket_cap = 0;
  std::map<std::string, double> baseline;
  std::vector<std::string> backend_names;
  HfreduceSettings hs;
  Model full;
  double scale = 1.0;
  int batch = 1;
};

void check_names(const Cli& o, Settings& st) {
  auto t = ffb::parse_data_type(o.dtype);
  if (!t || (*t != ffb::DataType::f32 && *t != ffb::DataType::bf16 && *t != ffb::DataType::f16))
    throw ffb::UsageError(fmt::format("--dtype '{}': give float, bfloat16 or half", o.dtype));
  st.dtype = *t;
  if (o.gemm != "tf32" && o.gemm != "bf16")
    throw ffb::UsageError(fmt::format("--gemm '{}': give tf32 or bf16", o.gemm));
  if (o.compute != "auto" && o.compute != "emulated" && o.compute != "cublas")
    throw ffb::UsageError(fmt::format("--compute '{}': give auto, emulated or cublas", o.compute));
  if (o.optimizer == "sgd")
    st.opt_kind = Optimizer::sgd;
  else if (o.optimizer == "adam")
    st.opt_kind = Optimizer::adam;
  else if (o.optimizer != "none")
    throw ffb::UsageError(fmt::format("--optimizer '{}': give none, sgd or adam", o.optimizer));
  st.backend_names = split(o.backends);
  if (st.backend_names.empty())
    throw ffb::UsageError("--backend: give hfreduce, mpi, nccl or none");
  for (const auto& b : st.backend_names)
    if (b != "hfreduce" && b != "mpi" && b != "none" && b != "nccl")
      throw ffb::UsageError(
          fmt::format("--backend '{}': give a comma list of hfreduce, mpi, nccl, none", b));
  st.baseline = parse_baseline(o.baseline);
  for (const auto& [name, ms] : st.baseline)
    if (name != "*" && name != "hfreduce" && name != "mpi" && name != "nccl" && name != "none")
      throw ffb::UsageError(fmt::format(
          "--baseline-step-ms '{}': '{}' is not a backend; use hfreduce, mpi, nccl or none",
          o.baseline, name));
}

void check_sizes(const Cli& o, Settings& st) {
  st.bucket_cap = ffb::parse_size(o.bucket_size, "--bucket-size");
  st.first_bucket_cap = ffb::parse_size(o.first_bucket_size, "--first-bucket-size");
  if (st.bucket_cap == 0) throw ffb::UsageError("--bucket-size 0: give a size such as 25M");
  auto& h = st.hs.options;
  h.chunk_bytes = ffb::parse_size(o.chunk_size, "--chunk-size");
  h.fallback_bytes = ffb::parse_size(o.fallback_bytes, "--fallback-bytes");
  h.pipeline_depth = o.depth;
  h.reduce_threads = o.threads;
  h.ranks_per_node = o.ranks_per_node;
  h.timeout_s = o.hf_timeout;
  h.cuda_device = o.device;
  if (h.chunk_bytes < 4096 || h.chunk_bytes > (1ull << 30))
    throw ffb::UsageError(fmt::format("--chunk-size {}: give 4K to 1G", o.chunk_size));
  if (h.fallback_bytes > (1ull << 30))
    throw ffb::UsageError(fmt::format("--fallback-bytes {}: give 0 to 1G", o.fallback_bytes));
}

// --max-params N (decimal suffixes) -> the parameter scale, at most --scale.
double param_scale(const Cli& o, const Model& full) {
  if (o.max_params.empty()) return o.scale;
  const auto cap = static_cast<double>(ffb::parse_size(o.max_params, "--max-params"));
  // parse_size is binary (1M = 2^20); --max-params counts parameters, decimal is what people mean
  double decimal = cap;
  const char last = o.max_params.back();
  const int steps = last == 'K' || last == 'k'   ? 1
                    : last == 'M' || last == 'm' ? 2
                    : last == 'G' || last == 'g' ? 3
                                                 : 0;
  if (steps > 0) decimal = cap / std::pow(1024.0, steps) * std::pow(1000.0, steps);
  if (!(decimal >= 1))
    throw ffb::UsageError(fmt::format("--max-params {}: give at least 1", o.max_params));
  return std::min(o.scale, decimal / static_cast<double>(full.total_params()));
}

// The emulated device clock sleeps for this long per step: refuse what would overflow it or never
// end (a model file or flags off by orders of magnitude).
void check_emulated_step(const Cli& o, const Settings& st, const Model& model) {
  const double rate = o.tflops * 1e12 * o.efficiency;
  const double compute =
      (model.fwd_flops_per_sample() + model.bwd_flops_per_sample()) * st.batch / rate;
  const double update = static_cast<double>(model.total_params()) *
                        optimizer_bytes_per_param(st.opt_kind) / (o.device_membw * 1e9);
  if (!(compute + update <= kMaxStepS))
    throw ffb::UsageError(fmt::format(
        "{}: emulated compute would take {:.3g} s per step (FLOPs x batch {} / (--tflops {:g} x "
        "--efficiency {:g}), plus the optimizer update); give at most {:g} s: raise --tflops or "
        "lower --batch or --compute-scale",
        model.name, compute + update, st.batch, o.tflops, o.efficiency, kMaxStepS));
}

// Every check that needs no MPI communication, topology or device (also run by --check-args).
Settings check_options(const Cli& o) {
  check_counts(o);
  check_rates(o);
  Settings st;
  check_names(o, st);
  check_sizes(o, st);
  st.full = load_model(o.model);
  st.scale = param_scale(o, st.full);
  st.batch = o.batch > 0 ? o.batch : st.full.batch_per_gpu;
  if (o.compute != "cublas") check_emulated_step(o, st, scaled(st.full, st.scale, o.compute_scale));
  return st;
}

int run(int argc, char** argv) {
  int world_rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  const bool root = world_rank == 0;

  Cli o;
  CLI::App app{
      "ddp_bench: data-parallel training step with gradient allreduce overlapped with backprop "
      "(docs/ddp_bench.md)",
      kProgram};
  add_options(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    if (root) fmt::print("{}", app.help());
    return ffb::kExitOk;
  } catch (const CLI::ParseError& e) {
    throw ffb::UsageError(fmt::format("{} (see --help)", e.what()));
  }
  Settings st = check_options(o);
  if (o.check_args) return ffb::kExitOk;

  ffb::check_launcher(MPI_COMM_WORLD);
  ffb::check_output(o.output, MPI_COMM_WORLD);
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  const auto topo = ffb::discover_topology(comm);
  int local_size = 1;
  const int local_rank = local_rank_and_size(comm, &local_size);

  // ---- options -> model, buckets, engines ----
  const ffb::DataType dtype = st.dtype;
  const Optimizer opt_kind = st.opt_kind;
  const auto bucket_cap = st.bucket_cap;
  const auto first_bucket_cap = st.first_bucket_cap;
  const auto& baseline = st.baseline;
  const Model& full = st.full;
  const double scale = st.scale;
  const Model model = scaled(full, scale, o.compute_scale);
  const int batch = st.batch;
  const std::size_t esize = ffb::size_of(dtype);
  // A scaled model keeps the full model's bucket plan when the caps shrink with it.
  const double cap_scale = o.no_scale_buckets ? 1.0 : scale;
  const auto scale_cap = [&](std::uint64_t cap) {
    return cap == 0 ? 0
                    : std::max<std::uint64_t>(
                          esize, static_cast<std::uint64_t>(std::llround(double(cap) * cap_scale)));
  };
  const std::uint64_t bucket_bytes = scale_cap(bucket_cap);
  const std::uint64_t first_bucket_bytes = scale_cap(first_bucket_cap);
  const auto buckets = plan_buckets(model, esize, bucket_bytes, first_bucket_bytes);
  const std::uint64_t params = model.total_params();
  const double grad_bytes = static_cast<double>(params) * static_cast<double>(esize);

  // ---- compute engine ----
  std::unique_ptr<ComputeEngine> compute;
  std::string compute_kind = o.compute;
  if (compute_kind == "auto") compute_kind = gpu_count_or_zero() > 0 ? "cublas" : "emulated";
  if (compute_kind == "emulated")
    compute = std::make_unique<EmulatedCompute>();
  else
    compute = make_gpu_compute(o.device, local_rank);
  ComputeConfig ccfg;
  ccfg.tflops = o.tflops;
  ccfg.efficiency = o.efficiency;
  ccfg.batch = batch;
  ccfg.optimizer = opt_kind;
  ccfg.grad_type = dtype;
  ccfg.gemm_type = o.gemm;
  ccfg.device_membw_gbs = o.device_membw;
  ccfg.progress_us = o.progress_us > 0 ? o.progress_us : 100.0;
  compute->prepare(model, ccfg);

  // Host memory: send + recv gradients per rank (plus a staging copy on GPUs).
  {
    const double need = 2.0 * grad_bytes * local_size;
    const auto have = static_cast<double>(ffb::mem_available_bytes());
    int bad = (!compute->device_memory() && have > 0 && need > 0.8 * have) ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm);
    if (bad)
      throw ffb::UsageError(fmt::format(
          "{}: {} ranks x 2 x {} of gradients need {:.1f} GiB of host memory on {}, {:.1f} GiB "
          "available: use --scale or --max-params",
          model.name, local_size, ffb::format_size(static_cast<std::uint64_t>(grad_bytes)),
          need / (1u << 30), topo.host, have / (1u << 30)));
  }

  // ---- backends ----
  const HfreduceSettings& hs = st.hs;
  if (o.ranks_per_node > topo.size)
    throw ffb::UsageError(fmt::format("--ranks-per-node {}: give 0 (shared memory) or 1 to {}",
                                      o.ranks_per_node, topo.size));
  const auto& backend_names = st.backend_names;
  if (o.inject_corrupt_rank >= topo.size)
    throw ffb::UsageError("--inject-corrupt-rank: rank out of range");
  if (o.trace && compute->device_memory())
    throw ffb::UsageError(
        "--trace: only with emulated compute for now (on a GPU the host would have to poll the "
        "allreduces while the compute stream runs; see docs/ddp_bench.md)");
  for (const auto& b : backend_names) {
    if (b == "nccl" && !built_with_nccl())
      throw ffb::SkipError("--backend nccl: this ddp_bench was built without CUDA/NCCL");
    if (b == "nccl" && !compute->device_memory())
      throw ffb::SkipError(
          "--backend nccl: needs GPU compute (--compute cublas on a GPU); no GPU compute here");
    if (b == "mpi" && compute->device_memory())
      throw ffb::UsageError(
          "--backend mpi: the MPI backend reduces host memory only (Debian's Open MPI is not "
          "CUDA-aware); use hfreduce or nccl with --compute cublas");
  }

  // ---- record ----
  ffb::RunRecord record;
  record.attrs["label"] = o.label;
  nlohmann::json options = {{"model", model.source},
                            {"backend", backend_names},
                            {"compute", compute_kind},
                            {"tflops", o.tflops},
                            {"gemm", o.gemm},
                            {"efficiency", o.efficiency},
                            {"batch", batch},
                            {"scale", scale},
                            {"compute_scale", o.compute_scale},
                            {"bucket_size", bucket_cap},
                            {"first_bucket_size", first_bucket_cap},
                            {"scale_buckets", !o.no_scale_buckets},
                            {"dtype", std::string(ffb::name_of(dtype))},
                            {"steps", o.steps},
                            {"warmup", o.warmup},
                            {"comm_steps", o.comm_steps},
                            {"optimizer", o.optimizer},
                            {"device_membw", o.device_membw},
                            {"check", !o.no_check},
                            {"check_every_step", o.check_every_step},
                            {"progress_us", o.progress_us},
                            {"trace", o.trace},
                            {"ranks_per_node", o.ranks_per_node},
                            {"chunk_size", hs.options.chunk_bytes},
                            {"depth", o.depth},
                            {"threads", o.threads},
                            {"fallback_bytes", hs.options.fallback_bytes},
                            {"baseline_step_ms", o.baseline}};
  record.attrs["options"] = options.dump();
  std::vector<std::string> argv_vec(argv, argv + argc);
  // Model conditions (image_size, context, ...) are run attrs so configs/reference can match them.
  for (const auto& [k, v] : full.conditions) {
    if (std::holds_alternative<std::int64_t>(v))
      record.attrs[k] = std::get<std::int64_t>(v);
    else if (std::holds_alternative<double>(v))
      record.attrs[k] = std::get<double>(v);
    else
      record.attrs[k] = std::get<std::string>(v);
  }
  record.attrs["model"] = model.name;
  record.attrs["model_file"] = model.source;
  record.attrs["compute"] = compute_kind;
  record.attrs["compute_emulated"] = static_cast<std::int64_t>(compute->emulated() ? 1 : 0);
  record.attrs["compute_description"] = compute->describe();
  record.attrs["emulated_tflops"] = compute->emulated() ? o.tflops : std::nan("");
  record.attrs["emulated_efficiency"] = compute->emulated() ? o.efficiency : std::nan("");
  record.attrs["param_scale"] = scale;
  record.attrs["compute_scale"] = o.compute_scale;
  record.attrs["dtype"] = std::string(ffb::name_of(dtype));
  record.attrs["bucket_bytes"] = static_cast<std::int64_t>(bucket_bytes);
  record.attrs["first_bucket_bytes"] = static_cast<std::int64_t>(first_bucket_bytes);
  record.attrs["optimizer"] = o.optimizer;

  ffb::add_provenance(record, comm, topo, kProgram, "ddp", argv_vec, compute->device_description());

  if (root) {
    fmt::print("# ffbench {} (git {}): {}\n", kProgram, FFB_GIT_COMMIT_TEXT, model.name);
    fmt::print(
        "# model {}: {} params ({} in the file), {} forward / {} backward per sample, "
        "{} layers; batch {} per rank\n",
        model.source, fmt_count(static_cast<double>(params)),
        fmt_count(static_cast<double>(full.total_params())),
        fmt_flops(model.fwd_flops_per_sample()), fmt_flops(model.bwd_flops_per_sample()),
        model.layers.size(), batch);
    fmt::print("# compute: {}\n", compute->describe());
    if (compute->emulated())
      fmt::print("# compute per step (emulated, nominal): {:.2f} ms\n",
                 compute->nominal_step_compute_s() * 1e3);
    if (scale != 1.0 || o.compute_scale != 1.0)
      fmt::print("# SCALED: parameters x {:.4g}, FLOPs x {:.4g} (not the paper's model size)\n",
                 scale, o.compute_scale);
    fmt::print(
        "# gradients: {} {} per rank ({}), {} buckets (first {}, then {}{}; PyTorch DDP's "
        "assignment, reverse layer order), optimizer {}\n",
        fmt_count(static_cast<double>(params)), ffb::name_of(dtype),
        ffb::format_size(static_cast<std::uint64_t>(grad_bytes)), buckets.size(),
        first_bucket_bytes ? ffb::format_size(first_bucket_bytes) : "-",
        ffb::format_size(bucket_bytes),
        cap_scale != 1.0 ? fmt::format(": the caps x {:.4g} like the parameters", cap_scale) : "",
        o.optimizer);
    fmt::print(
        "# {} ranks on {} host{} ({} per host); steps {} (+{} warm-up), comm-only {}; "
        "times: per step the slowest rank\n",
        topo.size, topo.nnodes(), topo.nnodes() == 1 ? "" : "s", topo.ranks_per_node_text(),
        o.steps, o.warmup, o.comm_steps);
    if (o.print_buckets) {
      fmt::print("# bucket  layers (backward order)                       params        bytes\n");
      for (const auto& b : buckets)
        fmt::print("# {:6}  {:>18} .. {:<22} {:>10} {:>12}\n", b.index,
                   model.layers[static_cast<std::size_t>(b.last_layer)].name,
                   model.layers[static_cast<std::size_t>(b.first_layer)].name, b.params,
                   ffb::format_size(b.params * esize));
    }
    fmt::print(
        "#\n# {:>8} {:>5} {:>5} {:>8} {:>8} {:>8} {:>10} {:>10} {:>11} {:>8} {:>7} {:>9} "
        "{:>8} {:>6}\n",
        "backend", "ranks", "nodes", "step_ms", "p50_ms", "p99_ms", "compute_ms", "exposed_ms",
        "overhead_ms", "comm_ms", "overlap", "samples/s", "weak_eff", "check");
    std::fflush(stdout);
  }

  ffb::Table table{.name = "ddp", .columns = {}};
  auto& c_model = table.add_str("model");
  auto& c_backend = table.add_str("backend");
  auto& c_compute = table.add_str("compute");
  auto& c_ranks = table.add_i64("ranks", "count");
  auto& c_nodes = table.add_i64("nodes", "count");
  auto& c_batch = table.add_i64("batch_per_gpu", "count");
  auto& c_params = table.add_i64("params", "count");
  auto& c_gbytes = table.add_i64("grad_bytes", "B");
  auto& c_nbuckets = table.add_i64("buckets", "count");
  auto& c_step = table.add_f64("step_time", "s");
  auto& c_p50 = table.add_f64("step_time_p50", "s");
  auto& c_p99 = table.add_f64("step_time_p99", "s");
  auto& c_min = table.add_f64("step_time_min", "s");
  auto& c_max = table.add_f64("step_time_max", "s");
  auto& c_fwd = table.add_f64("forward_time", "s");
  auto& c_bwd = table.add_f64("backward_time", "s");
  auto& c_compute_t = table.add_f64("compute_time", "s");
  auto& c_exposed = table.add_f64("exposed_comm", "s");
  auto& c_opt = table.add_f64("optimizer_time", "s");
  auto& c_alone = table.add_f64("comm_alone", "s");
  auto& c_calone = table.add_f64("compute_alone", "s");
  auto& c_overhead = table.add_f64("comm_overhead", "s");
  auto& c_hidden = table.add_f64("hidden_comm", "s");
  auto& c_overlap = table.add_f64("overlap", "1");
  auto& c_sps = table.add_f64("samples_per_s", "samples/s");
  auto& c_base = table.add_f64("baseline_step_time", "s");
  auto& c_eff = table.add_f64("weak_scaling_efficiency", "1");
  auto& c_pscale = table.add_f64("param_scale", "1");
  auto& c_cscale = table.add_f64("compute_scale", "1");
  auto& c_wrong = table.add_i64("wrong", "count");
  auto& c_steps = table.add_f64("step_times", "s", static_cast<std::size_t>(o.steps));
  auto& c_exps = table.add_f64("exposed_comms", "s", static_cast<std::size_t>(o.steps));

  ffb::Table btable{.name = "ddp_buckets", .columns = {}};
  auto& b_backend = btable.add_str("backend");
  auto& b_index = btable.add_i64("bucket", "1");
  auto& b_first = btable.add_str("first_layer");
  auto& b_last = btable.add_str("last_layer");
  auto& b_params = btable.add_i64("params", "count");
  auto& b_bytes = btable.add_i64("bytes", "B");
  auto& b_start = btable.add_f64("start_offset", "s");
  auto& b_done = btable.add_f64("done_offset", "s");

  StepConfig scfg;
  scfg.steps = o.steps;
  scfg.warmup = o.warmup;
  scfg.comm_steps = o.comm_steps;
  scfg.type = dtype;
  scfg.check = !o.no_check;
  scfg.check_every_step = o.check_every_step;
  scfg.inject_corrupt_rank = o.inject_corrupt_rank;
  scfg.trace = o.trace;
  scfg.trace_interval_s = std::min(ccfg.progress_us, 100.0) * 1e-6;
  scfg.progress = o.progress_us > 0;

  bool all_ok = true;
  for (const auto& name : backend_names) {
    std::unique_ptr<GradientAllreduce> backend;
    if (name == "hfreduce")
      backend = make_hfreduce(hs);
    else if (name == "mpi")
      backend = make_mpi();
    else if (name == "nccl")
      backend = make_nccl();
    else
      backend = make_none();
    backend->setup(comm, topo, *compute);
    const auto r = run_ddp(model, buckets, *compute, *backend, comm, scfg);
    backend->describe(record);
    backend->teardown();
    const auto s = summarize(r);
    const bool ok = r.wrong <= 0;
    all_ok = all_ok && ok;
    double base = std::nan("");
    if (auto it = baseline.find(name); it != baseline.end())
      base = it->second * 1e-3;
    else if (auto any = baseline.find("*"); any != baseline.end())
      base = any->second * 1e-3;
    const double eff = std::isnan(base) ? base : base / s.step_mean;
    const double sps = static_cast<double>(batch) * topo.size / s.step_mean;
    std::string check = r.wrong < 0    ? "n/a"
                        : r.wrong == 0 ? "OK"
                                       : fmt::format("{} wrong", r.wrong);

    if (root) {
      fmt::print(
          "  {:>8} {:>5} {:>5} {:>8} {:>8} {:>8} {:>10} {:>10} {:>11} {:>8} {:>7} {:>9.1f} "
          "{:>8} {:>6}\n",
          name, topo.size, r.nodes, fmt_ms(s.step_mean), fmt_ms(s.step_p50), fmt_ms(s.step_p99),
          fmt_ms(s.compute), fmt_ms(s.exposed), fmt_ms(s.overhead), fmt_ms(s.comm_alone),
          std::isnan(s.overlap) ? "-" : fmt::format("{:.2f}", s.overlap), sps,
          std::isnan(eff) ? "-" : fmt::format("{:.3f}", eff), check);
      if (o.print_buckets && o.trace) {
        std::string line;
        for (const auto& b : buckets)
          line += fmt::format("{}{}: {:.1f} -> {:.1f}", line.empty() ? "" : ", ", b.index,
                              r.bucket_start[static_cast<std::size_t>(b.index)] * 1e3,
                              r.bucket_done[static_cast<std::size_t>(b.index)] * 1e3);
        fmt::print("#   {} buckets, ms from step start (allreduce start -> done): {}\n", name,
                   line);
      }
      std::fflush(stdout);
    }
    c_model.push_back(model.name);
    c_backend.push_back(name);
    c_compute.push_back(compute_kind);
    c_ranks.push_back(topo.size);
    c_nodes.push_back(r.nodes);
    c_batch.push_back(batch);
    c_params.push_back(static_cast<std::int64_t>(params));
    c_gbytes.push_back(static_cast<std::int64_t>(grad_bytes));
    c_nbuckets.push_back(static_cast<std::int64_t>(buckets.size()));
    c_step.push_back(s.step_mean);
    c_p50.push_back(s.step_p50);
    c_p99.push_back(s.step_p99);
    c_min.push_back(s.step_min);
    c_max.push_back(s.step_max);
    c_fwd.push_back(s.forward);
    c_bwd.push_back(s.backward);
    c_compute_t.push_back(s.compute);
    c_exposed.push_back(s.exposed);
    c_opt.push_back(s.optimizer);
    c_alone.push_back(s.comm_alone);
    c_calone.push_back(s.compute_alone);
    c_overhead.push_back(s.overhead);
    c_hidden.push_back(s.hidden);
    c_overlap.push_back(s.overlap);
    c_sps.push_back(sps);
    c_base.push_back(base);
    c_eff.push_back(eff);
    c_pscale.push_back(scale);
    c_cscale.push_back(o.compute_scale);
    c_wrong.push_back(r.wrong);
    c_steps.insert(c_steps.end(), r.timed.step.begin(), r.timed.step.end());
    c_exps.insert(c_exps.end(), r.timed.exposed.begin(), r.timed.exposed.end());
    for (const auto& b : buckets) {
      b_backend.push_back(name);
      b_index.push_back(b.index);
      b_first.push_back(model.layers[static_cast<std::size_t>(b.first_layer)].name);
      b_last.push_back(model.layers[static_cast<std::size_t>(b.last_layer)].name);
      b_params.push_back(static_cast<std::int64_t>(b.params));
      b_bytes.push_back(static_cast<std::int64_t>(b.params * esize));
      b_start.push_back(r.bucket_start[static_cast<std::size_t>(b.index)]);
      b_done.push_back(r.bucket_done[static_cast<std::size_t>(b.index)]);
    }
  }
  record.tables.push_back(std::move(table));
  record.tables.push_back(std::move(btable));
  if (!all_ok) record.attrs["status"] = std::string("failed");

  if (root) {
    fmt::print(
        "#\n# step_ms: mean step time (p50, p99 over steps; each step's slowest rank); "
        "compute_ms: forward + backward as the host saw it; exposed_ms: waiting for allreduces "
        "after the backward pass; overhead_ms: step minus the same step without communication "
        "({} repetitions); comm_ms: the allreduces alone, back to back; overlap = 1 - "
        "overhead / comm; weak_eff = baseline step / step\n",
        o.comm_steps);
    fmt::print("# check: {}\n", all_ok ? "OK (allreduced gradients equal the reference sum)"
                                       : "FAILED (allreduced gradients differ from the reference "
                                         "sum)");
    if (!o.output.empty())
      fmt::print("# results appended to {} as /runs/{}\n", o.output,
                 ffb::append_run(o.output, record));
  }
  MPI_Comm_free(&comm);
  return all_ok ? ffb::kExitOk : ffb::kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<ffb::MpiSession> mpi;
  try {
    mpi.emplace(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", kProgram, e.what());
    return ffb::kExitFailure;
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  try {
    return run(argc, argv);
  } catch (const ffb::UsageError& e) {
    if (rank == 0) std::fprintf(stderr, "%s: error: %s\n", kProgram, e.what());
    return ffb::kExitUsage;
  } catch (const ffb::SkipError& e) {
    if (rank == 0) std::fprintf(stderr, "%s: skipped: %s\n", kProgram, e.what());
    return ffb::kExitSkipped;
  } catch (const hfreduce::Error& e) {
    std::fprintf(stderr, "%s: rank %d: hfreduce: %s: %s\n", kProgram, rank,
                 hfreduce::name_of(e.status()), e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, ffb::kExitFailure);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: rank %d: error: %s\n", kProgram, rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, ffb::kExitFailure);
  }
  return ffb::kExitFailure;
}
