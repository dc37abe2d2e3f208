// The paper's interference argument, measured: an allreduce (HFReduce on device buffers, then
// NCCL) runs while a GEMM loop runs on the same GPU in another stream. Reported per backend: the
// allreduce's slowdown (time with the GEMM loop / time alone) and the GEMM's slowdown (rate alone /
// rate during the allreduces). HFReduce moves data with copy engines and reduces on the CPU, so it
// should leave the SMs, and the GEMM, nearly alone; NCCL's reduction kernels share the SMs.
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>
#include <nccl.h>

#include "ffb/program.h"
#include "ffb/provenance.h"
#include "ffb/results.h"
#include "ffb/run_output.h"
#include "ffb/sizes.h"
#include "ffb/strings.h"
#include "gemm_runner.h"
#include "gpu_logic.h"
#include "gpu_util.h"
#include "hfreduce/hfreduce.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace gpu = ffb::gpu;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess)
    throw std::runtime_error(fmt::format("{}: {}", what, ncclGetErrorString(r)));
}

// GEMMs back to back on their own stream, from a thread, with the completion time of each.
class GemmLoop {
 public:
  GemmLoop(gpu::Gemm& gemm, cudaStream_t stream, int device)
      : gemm_(gemm), stream_(stream), device_(device) {}
  ~GemmLoop() {  // an exception between start() and stop(): end the thread, never terminate
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  GemmLoop(const GemmLoop&) = delete;
  GemmLoop& operator=(const GemmLoop&) = delete;
  void start() {
    stop_ = false;
    done_.clear();
    thread_ = std::thread([this] { loop(); });
  }
  void stop() {
    stop_ = true;
    thread_.join();
    if (!error_.empty()) throw std::runtime_error(error_);
  }
  std::size_t completed() {
    std::lock_guard lock(mutex_);
    return done_.size();
  }
  // Products per second between the first and last completion inside [from, to].
  double rate(Clock::time_point from, Clock::time_point to) {
    std::lock_guard lock(mutex_);
    std::vector<Clock::time_point> in;
    for (auto t : done_)
      if (t >= from && t <= to) in.push_back(t);
    if (in.size() < 2) return 0;
    return static_cast<double>(in.size() - 1) / seconds_between(in.front(), in.back());
  }

 private:
  void loop() {
    try {
      gpu::check(cudaSetDevice(device_), "cudaSetDevice");
      cudaEvent_t ev = nullptr;
      // Blocking sync: the waiting thread sleeps, leaving the CPU to HFReduce's reduce.
      gpu::check(cudaEventCreateWithFlags(&ev, cudaEventBlockingSync | cudaEventDisableTiming),
                 "cudaEventCreateWithFlags");
      while (!stop_) {
        gemm_.enqueue(1);
        gpu::check(cudaEventRecord(ev, stream_), "cudaEventRecord");
        gpu::check(cudaEventSynchronize(ev), "cudaEventSynchronize");
        std::lock_guard lock(mutex_);
        done_.push_back(Clock::now());
      }
      (void)cudaEventDestroy(ev);
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }
  gpu::Gemm& gemm_;
  cudaStream_t stream_;
  int device_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<Clock::time_point> done_;
  std::string error_;
  std::thread thread_;
};

// An NCCL communicator over the ranks of `comm`, one GPU each.
class NcclComm {
 public:
  NcclComm(MPI_Comm comm, int rank, int nranks) {
    ncclUniqueId id{};
    if (rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, comm);
    check_nccl(ncclCommInitRank(&comm_, nranks, id, rank), "ncclCommInitRank");
  }
  ~NcclComm() {
    (void)ncclCommFinalize(comm_);
    (void)ncclCommDestroy(comm_);
  }
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  ncclComm_t get() const { return comm_; }

 private:
  ncclComm_t comm_ = nullptr;
};

struct Args {
  std::string bytes_text = "64M", backends_text = "hfreduce,nccl", gemm_type_text = "bf16",
              chunk_text = "1M", output, label;
  int iters = 20, warmup = 3, device = -1, reduce_threads = 1;
  std::uint64_t gemm_n = 8192;
  // From the texts, by validate():
  std::uint64_t bytes = 0, chunk = 0;
  gpu::GemmType gemm_type = gpu::GemmType::bf16;
  std::vector<std::string> backends;
};

void add_options(CLI::App& app, Args& a) {
  app.add_option("-b,--bytes", a.bytes_text, "allreduce size (float sum)")->capture_default_str();
  app.add_option("-n,--iters", a.iters, "timed allreduces per phase")->capture_default_str();
  app.add_option("-w,--warmup", a.warmup, "warm-up allreduces")->capture_default_str();
  app.add_option("--backends", a.backends_text, "hfreduce and/or nccl")->capture_default_str();
  app.add_option("--gemm-n", a.gemm_n, "GEMM size N")->capture_default_str();
  app.add_option("--gemm-type", a.gemm_type_text, "tf32, fp16, bf16")->capture_default_str();
  app.add_option("--chunk-size", a.chunk_text, "HFReduce pipeline chunk")->capture_default_str();
  app.add_option("--threads", a.reduce_threads, "HFReduce reduce threads per rank")
      ->capture_default_str();
  app.add_option("--device", a.device, "GPU (-1: local rank modulo the GPUs)")
      ->capture_default_str();
  app.add_option("--output", a.output, "append this run to an HDF5 results file");
  app.add_option("--label", a.label, "free text stored with the run");
}

void check(Args& a) {
  a.bytes = ffb::parse_size(a.bytes_text, "--bytes");
  a.chunk = ffb::parse_size(a.chunk_text, "--chunk-size");
  const auto gtype = gpu::parse_gemm_type(a.gemm_type_text);
  if (!gtype)
    throw ffb::UsageError(fmt::format("--gemm-type {}: give tf32, fp16 or bf16", a.gemm_type_text));
  a.gemm_type = *gtype;
  if (a.iters < 2 || a.warmup < 0) throw ffb::UsageError("-n >= 2 and -w >= 0, please");
  if (a.gemm_n < 256 || a.gemm_n > 32768) throw ffb::UsageError("--gemm-n: give 256..32768");
  a.backends = ffb::split_list(a.backends_text);
  for (const auto& b : a.backends)
    if (b != "hfreduce" && b != "nccl")
      throw ffb::UsageError(fmt::format("--backends {}: give hfreduce and/or nccl", b));
}

// One backend's phases, this rank's view (allreduce times are already the slowest rank's).
struct Phases {
  double ar_alone = 0, ar_with = 0;      // seconds per allreduce
  double rate_alone = 0, rate_with = 0;  // GEMMs per second
};

// The table row of one backend: the slowest rank's numbers.
struct Row {
  double ar_alone_us, ar_with_us, ar_slow, tf_alone, tf_with, g_slow;
};

// The state shared by the backends: the device, the buffers, the GEMM and its loop.
class Interference {
 public:
  Interference(const Args& a, const ffb::ProgramContext& ctx, int device, int sharing)
      : a_(a),
        ctx_(ctx),
        device_(device),
        sharing_(sharing),
        count_f_(a.bytes / 4),
        send_(count_f_ * 4),
        recv_(count_f_ * 4),
        gemm_(a.gemm_n, a.gemm_type, gemm_stream_.get(), static_cast<std::uint64_t>(ctx.rank) + 7),
        loop_(gemm_, gemm_stream_.get(), device) {
    gpu::check(cudaMemset(send_.get(), 0, count_f_ * 4), "cudaMemset");
    gemm_.enqueue(3);  // warm cuBLAS up
    gemm_stream_.synchronize();
  }

  // The backend's row, or nullopt when it cannot run here (it says why on rank 0).
  std::optional<Row> measure(const std::string& backend) {
    Phases p;
    if (backend == "hfreduce") {
      hfreduce::Options o;
      o.device_buffers = true;
      o.cuda_device = device_;
      o.chunk_bytes = a_.chunk;
      o.reduce_threads = a_.reduce_threads;
      hfreduce::Communicator hf(ctx_.comm, o);
      p = phases([&] {
        hf.allreduce(send_.get(), recv_.get(), count_f_, ffb::DataType::f32, ffb::ReduceOp::sum);
      });
    } else {
      if (sharing_ > 1) {
        if (ctx_.root())
          fmt::print("  {:<9} skipped: NCCL needs one GPU per rank ({} ranks share a GPU)\n",
                     backend, sharing_);
        return std::nullopt;
      }
      NcclComm nccl(ctx_.comm, ctx_.rank, ctx_.size);
      p = phases([&] {
        check_nccl(ncclAllReduce(send_.get(), recv_.get(), count_f_, ncclFloat32, ncclSum,
                                 nccl.get(), nccl_stream_.get()),
                   "ncclAllReduce");
        nccl_stream_.synchronize();
      });
    }
    // Worst rank: the slowest allreduce is already global; GEMM rates take the minimum.
    double r[2] = {p.rate_alone, p.rate_with}, rmin[2] = {0, 0};
    MPI_Allreduce(r, rmin, 2, MPI_DOUBLE, MPI_MIN, ctx_.comm);
    const double flop = gpu::gemm_flops(a_.gemm_n);
    Row row{};
    row.ar_alone_us = p.ar_alone * 1e6;
    row.ar_with_us = p.ar_with * 1e6;
    row.ar_slow = p.ar_with / p.ar_alone;
    row.tf_alone = rmin[0] * flop / 1e12;
    row.tf_with = rmin[1] * flop / 1e12;
    row.g_slow = row.tf_with > 0 ? row.tf_alone / row.tf_with : std::nan("");
    return row;
  }

 private:
  double timed_allreduces(const std::function<void()>& allreduce, int reps) {
    MPI_Barrier(ctx_.comm);
    const auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) allreduce();
    double s = seconds_between(t0, Clock::now()), worst = 0;
    MPI_Allreduce(&s, &worst, 1, MPI_DOUBLE, MPI_MAX, ctx_.comm);
    return worst / reps;
  }

  Phases phases(const std::function<void()>& allreduce) {
    Phases p;
    for (int i = 0; i < a_.warmup; ++i) allreduce();
    // 1. allreduce alone; the phases last at least 0.5 s so that the GEMM rate during the
    //    allreduces is measured over many products (every rank runs the same count).
    p.ar_alone = timed_allreduces(allreduce, a_.iters);
    const int reps =
        std::max(a_.iters, static_cast<int>(std::ceil(0.5 / std::max(p.ar_alone, 1e-9))));
    if (reps > a_.iters) p.ar_alone = timed_allreduces(allreduce, reps);
    // 2. GEMM alone, about as long as the allreduce phase (at least 0.5 s)
    MPI_Barrier(ctx_.comm);
    loop_.start();
    const auto g0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.5, p.ar_alone * reps)));
    const auto g1 = Clock::now();
    loop_.stop();
    p.rate_alone = loop_.rate(g0, g1);
    // 3. together: the loop runs through the whole timed allreduce phase
    loop_.start();
    while (loop_.completed() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto w0 = Clock::now();
    p.ar_with = timed_allreduces(allreduce, reps);
    const auto w1 = Clock::now();
    loop_.stop();
    p.rate_with = loop_.rate(w0, w1);
    return p;
  }

  const Args& a_;
  const ffb::ProgramContext& ctx_;
  int device_, sharing_;
  std::size_t count_f_;
  gpu::DeviceMemory send_, recv_;
  gpu::Stream gemm_stream_, nccl_stream_;
  gpu::Gemm gemm_;
  GemmLoop loop_;
};

// The most ranks that share one GPU (NCCL needs one GPU per rank).
int ranks_per_gpu(const ffb::ProgramContext& ctx, int device) {
  const auto buses =
      ffb::allgather_strings(ctx.comm, ctx.topology.host + " " + gpu::pci_bus_id(device));
  std::map<std::string, int> per_gpu;
  int sharing = 1;
  for (const auto& b : buses) sharing = std::max(sharing, ++per_gpu[b]);
  return sharing;
}

void print_header(const Args& a, int nranks, int sharing) {
  fmt::print(
      "# interference_bench: {} float sum allreduce (at least {} calls and 0.5 s per "
      "phase) on {} rank(s) (up to {} per GPU), while {} GEMMs N={} loop on the same "
      "GPU\n",
      ffb::format_size(a.bytes), a.iters, nranks, sharing, gpu::name_of(a.gemm_type), a.gemm_n);
  fmt::print("# {:<9} {:>12} {:>12} {:>9} {:>12} {:>12} {:>9}\n", "backend", "AR alone us",
             "AR+GEMM us", "AR slow", "GEMM TFLOPS", "GEMM+AR", "GEMM slow");
}

// Every backend's row, printed on rank 0 as it is measured.
ffb::Table measure_backends(const Args& a, const ffb::ProgramContext& ctx, Interference& bench) {
  ffb::Table table{.name = "interference", .columns = {}};
  auto& c_backend = table.add_str("backend");
  auto& c_ar_alone = table.add_f64("allreduce_time_alone", "us");
  auto& c_ar_with = table.add_f64("allreduce_time_with_gemm", "us");
  auto& c_ar_slow = table.add_f64("allreduce_slowdown", "1");
  auto& c_g_alone = table.add_f64("gemm_tflops_alone", "TFLOPS");
  auto& c_g_with = table.add_f64("gemm_tflops_with_allreduce", "TFLOPS");
  auto& c_g_slow = table.add_f64("gemm_slowdown", "1");
  for (const auto& backend : a.backends) {
    const auto row = bench.measure(backend);
    if (!row) continue;
    if (ctx.root()) {
      fmt::print("  {:<9} {:12.1f} {:12.1f} {:9.3f} {:12.1f} {:12.1f} {:9.3f}\n", backend,
                 row->ar_alone_us, row->ar_with_us, row->ar_slow, row->tf_alone, row->tf_with,
                 row->g_slow);
      std::fflush(stdout);
    }
    c_backend.push_back(backend);
    c_ar_alone.push_back(row->ar_alone_us);
    c_ar_with.push_back(row->ar_with_us);
    c_ar_slow.push_back(row->ar_slow);
    c_g_alone.push_back(row->tf_alone);
    c_g_with.push_back(row->tf_with);
    c_g_slow.push_back(row->g_slow);
  }
  return table;
}

class InterferenceBench final : public ffb::Program {
 public:
  void add_options(CLI::App& app) override { ::add_options(app, a_); }
  void validate() override { check(a_); }
  int run(ffb::ProgramContext& ctx) override {
    ffb::check_output(a_.output, ctx.comm);
    const int count = gpu::require_gpus();
    const int device = gpu::select_device(a_.device, gpu::local_rank_of(ctx.comm), count);
    gpu::check(cudaSetDevice(device), "cudaSetDevice");
    const std::string dev_text = gpu::describe_device(device);
    const int sharing = ranks_per_gpu(ctx, device);

    ffb::RunRecord run;
    run.attrs["label"] = a_.label;
    run.attrs["options"] = fmt::format(
        R"({{"bytes": {}, "iters": {}, "warmup": {}, "backends": "{}", "gemm_n": {}, "gemm_type": "{}", "chunk_bytes": {}, "reduce_threads": {}}})",
        a_.bytes, a_.iters, a_.warmup, a_.backends_text, a_.gemm_n, a_.gemm_type_text, a_.chunk,
        a_.reduce_threads);
    ffb::add_provenance(run, ctx.comm, ctx.topology, "interference_bench", "probe", ctx.argv,
                        dev_text);

    Interference bench(a_, ctx, device, sharing);
    if (ctx.root()) print_header(a_, ctx.size, sharing);
    auto table = measure_backends(a_, ctx, bench);
    if (ctx.root()) {
      fmt::print(
          "# slowdown = time (or 1/rate) with the other load / alone; 1.00 = no "
          "interference. GEMM rates: slowest rank.\n");
      run.tables.push_back(std::move(table));
    }
    return ffb::finish_run(ctx.comm, a_.output, run, false);
  }

 private:
  Args a_;
};

}  // namespace

int main(int argc, char** argv) {
  InterferenceBench program;
  return ffb::run_program(
      argc, argv,
      {.name = "interference_bench",
       .description =
           "allreduce (HFReduce, NCCL) while a GEMM loop runs on the same GPU: both slowdowns",
       .thread_level = MPI_THREAD_MULTIPLE,
       .parse = {}},
      program);
}
