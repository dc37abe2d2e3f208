#include "ddp_options.h"

#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "ffb/error.h"
#include "ffb/sizes.h"
#include "ffb/strings.h"

namespace ffb::ddp {
namespace {

// "130" (every backend) or "hfreduce=130,mpi=270" (milliseconds).
std::map<std::string, double> parse_baseline(const std::string& text) {
  std::map<std::string, double> out;
  if (text.empty()) return out;
  for (const auto& item : ffb::split_list(text)) {
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

// Sane bounds of the numeric options (docs/ddp_bench.md, "Bounds"): beyond them a value is a
// typo, runs out of memory (per-step times are kept) or overflows the emulated clock.
constexpr int kMaxSteps = 1000000;
constexpr int kMaxBatch = 1000000;
constexpr double kMaxRate = 1e6;          // --tflops, --device-membw (GB/s)
constexpr double kMaxComputeScale = 1e6;  // --compute-scale
constexpr double kMaxProgressUs = 1e6;    // --progress-us (1 s)
constexpr double kMaxTimeoutS = 7 * 24 * 3600.0;
constexpr double kMaxStepS = 86400.0;  // emulated compute per step (forward + backward + update)

}  // namespace

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
  app.add_option("--stream-completion", o.stream_completion,
                 "HFReduce on GPU buffers: how the communication stream waits for each bucket's "
                 "result: host_func (a host function waits) or stream_wait (the stream waits on "
                 "a flag; no host function)")
      ->capture_default_str();
  app.add_option("--nvlink-pairs", o.nvlink_pairs,
                 "HFReduce on GPU buffers: off, auto (pairs of GPUs with peer access, else the "
                 "plain path with one line), force (also ranks sharing a GPU: testing)")
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
  app.add_option("--inject-corrupt-rank", o.inject_corrupt_rank)->group("");  // test only
}

namespace {

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
  st.backend_names = ffb::split_list(o.backends);
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

// The library's option values by their names (hfreduce::name_of).
template <class E>
E parse_hfreduce_choice(const std::string& text, std::initializer_list<E> values,
                        const char* flag) {
  std::string names;
  for (E v : values) {
    if (text == hfreduce::name_of(v)) return v;
    names += (names.empty() ? "" : ", ") + std::string(hfreduce::name_of(v));
  }
  throw ffb::UsageError(fmt::format("{} '{}': give {}", flag, text, names));
}

void check_hfreduce_gpu(const Cli& o, Settings& st) {
  using hfreduce::NvlinkPairs;
  using hfreduce::StreamCompletion;
  st.hs.options.stream_completion = parse_hfreduce_choice(
      o.stream_completion, {StreamCompletion::host_func, StreamCompletion::stream_wait},
      "--stream-completion");
  st.hs.options.nvlink_pairs = parse_hfreduce_choice(
      o.nvlink_pairs, {NvlinkPairs::off, NvlinkPairs::automatic, NvlinkPairs::force},
      "--nvlink-pairs");
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

}  // namespace

Settings check_options(const Cli& o) {
  check_counts(o);
  check_rates(o);
  Settings st;
  check_names(o, st);
  check_sizes(o, st);
  check_hfreduce_gpu(o, st);
  st.full = load_model(o.model);
  st.scale = param_scale(o, st.full);
  st.batch = o.batch > 0 ? o.batch : st.full.batch_per_gpu;
  if (o.compute != "cublas") check_emulated_step(o, st, scaled(st.full, st.scale, o.compute_scale));
  return st;
}

Plan plan_run(const Cli& o, const Settings& st) {
  Plan p;
  p.model = scaled(st.full, st.scale, o.compute_scale);
  p.esize = ffb::size_of(st.dtype);
  // A scaled model keeps the full model's bucket plan when the caps shrink with it.
  p.cap_scale = o.no_scale_buckets ? 1.0 : st.scale;
  const auto scale_cap = [&](std::uint64_t cap) {
    return cap == 0
               ? 0
               : std::max<std::uint64_t>(
                     p.esize, static_cast<std::uint64_t>(std::llround(double(cap) * p.cap_scale)));
  };
  p.bucket_bytes = scale_cap(st.bucket_cap);
  p.first_bucket_bytes = scale_cap(st.first_bucket_cap);
  p.buckets = plan_buckets(p.model, p.esize, p.bucket_bytes, p.first_bucket_bytes);
  p.params = p.model.total_params();
  p.grad_bytes = static_cast<double>(p.params) * static_cast<double>(p.esize);
  return p;
}

}  // namespace ffb::ddp
