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
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nccl.h>

#include "ffb/sizes.h"
#include "gemm_runner.h"
#include "gpu_logic.h"
#include "gpu_program.h"
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

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bytes_text = "64M", backends_text = "hfreduce,nccl", gemm_type_text = "bf16",
              chunk_text = "1M", output, label;
  int iters = 20, warmup = 3, device_opt = -1, reduce_threads = 1;
  std::uint64_t gemm_n = 8192;
  return gpu::run_program(
      argc, argv, "interference_bench",
      "allreduce (HFReduce, NCCL) while a GEMM loop runs on the same GPU: both slowdowns",
      [&](CLI::App& app) {
        app.add_option("-b,--bytes", bytes_text, "allreduce size (float sum)")
            ->capture_default_str();
        app.add_option("-n,--iters", iters, "timed allreduces per phase")->capture_default_str();
        app.add_option("-w,--warmup", warmup, "warm-up allreduces")->capture_default_str();
        app.add_option("--backends", backends_text, "hfreduce and/or nccl")->capture_default_str();
        app.add_option("--gemm-n", gemm_n, "GEMM size N")->capture_default_str();
        app.add_option("--gemm-type", gemm_type_text, "tf32, fp16, bf16")->capture_default_str();
        app.add_option("--chunk-size", chunk_text, "HFReduce pipeline chunk")
            ->capture_default_str();
        app.add_option("--threads", reduce_threads, "HFReduce reduce threads per rank")
            ->capture_default_str();
        app.add_option("--device", device_opt, "GPU (-1: local rank modulo the GPUs)")
            ->capture_default_str();
        app.add_option("--output", output, "append this run to an HDF5 results file");
        app.add_option("--label", label, "free text stored with the run");
      },
      [&](gpu::ProgramContext& ctx) {
        ffb::check_output(output, ctx.comm);
        const auto bytes = ffb::parse_size(bytes_text, "--bytes");
        const auto chunk = ffb::parse_size(chunk_text, "--chunk-size");
        const auto gtype = gpu::parse_gemm_type(gemm_type_text);
        if (!gtype)
          throw ffb::UsageError(
              fmt::format("--gemm-type {}: give tf32, fp16 or bf16", gemm_type_text));
        if (iters < 2 || warmup < 0) throw ffb::UsageError("-n >= 2 and -w >= 0, please");
        if (gemm_n < 256 || gemm_n > 32768) throw ffb::UsageError("--gemm-n: give 256..32768");
        const auto backends = split_list(backends_text);
        for (const auto& b : backends)
          if (b != "hfreduce" && b != "nccl")
            throw ffb::UsageError(fmt::format("--backends {}: give hfreduce and/or nccl", b));

        const int count = gpu::require_gpus();
        const int device = gpu::select_device(device_opt, gpu::local_rank_of(ctx.comm), count);
        gpu::check(cudaSetDevice(device), "cudaSetDevice");
        const std::string dev_text = gpu::describe_device(device);
        int nranks = 1;
        MPI_Comm_size(ctx.comm, &nranks);
        const auto buses =
            ffb::allgather_strings(ctx.comm, ctx.topology.host + " " + gpu::pci_bus_id(device));
        std::map<std::string, int> per_gpu;
        int sharing = 1;
        for (const auto& b : buses) sharing = std::max(sharing, ++per_gpu[b]);

        ffb::RunRecord run;
        run.attrs["label"] = label;
        run.attrs["options"] = fmt::format(
            R"({{"bytes": {}, "iters": {}, "warmup": {}, "backends": "{}", "gemm_n": {}, "gemm_type": "{}", "chunk_bytes": {}, "reduce_threads": {}}})",
            bytes, iters, warmup, backends_text, gemm_n, gemm_type_text, chunk, reduce_threads);
        ffb::add_provenance(run, ctx.comm, ctx.topology, "interference_bench", "probe", ctx.argv,
                            dev_text);

        const std::size_t count_f = bytes / 4;
        gpu::DeviceMemory send(count_f * 4), recv(count_f * 4);
        gpu::check(cudaMemset(send.get(), 0, count_f * 4), "cudaMemset");
        gpu::Stream gemm_stream, nccl_stream;
        gpu::Gemm gemm(gemm_n, *gtype, gemm_stream.get(), static_cast<std::uint64_t>(ctx.rank) + 7);
        GemmLoop loop(gemm, gemm_stream.get(), device);
        gemm.enqueue(3);  // warm cuBLAS up
        gemm_stream.synchronize();

        if (ctx.root()) {
          fmt::print(
              "# interference_bench: {} float sum allreduce (at least {} calls and 0.5 s per "
              "phase) on {} rank(s) (up to {} per GPU), while {} GEMMs N={} loop on the same "
              "GPU\n",
              ffb::format_size(bytes), iters, nranks, sharing, gpu::name_of(*gtype), gemm_n);
          fmt::print("# {:<9} {:>12} {:>12} {:>9} {:>12} {:>12} {:>9}\n", "backend", "AR alone us",
                     "AR+GEMM us", "AR slow", "GEMM TFLOPS", "GEMM+AR", "GEMM slow");
        }
        ffb::Table table{.name = "interference", .columns = {}};
        auto& c_backend = table.add_str("backend");
        auto& c_ar_alone = table.add_f64("allreduce_time_alone", "us");
        auto& c_ar_with = table.add_f64("allreduce_time_with_gemm", "us");
        auto& c_ar_slow = table.add_f64("allreduce_slowdown", "1");
        auto& c_g_alone = table.add_f64("gemm_tflops_alone", "TFLOPS");
        auto& c_g_with = table.add_f64("gemm_tflops_with_allreduce", "TFLOPS");
        auto& c_g_slow = table.add_f64("gemm_slowdown", "1");

        for (const auto& backend : backends) {
          std::function<void()> allreduce;
          std::unique_ptr<hfreduce::Communicator> hf;
          ncclComm_t nccl = nullptr;
          if (backend == "hfreduce") {
            hfreduce::Options o;
            o.device_buffers = true;
            o.cuda_device = device;
            o.chunk_bytes = chunk;
            o.reduce_threads = reduce_threads;
            hf = std::make_unique<hfreduce::Communicator>(ctx.comm, o);
            allreduce = [&] {
              hf->allreduce(send.get(), recv.get(), count_f, ffb::DataType::f32,
                            ffb::ReduceOp::sum);
            };
          } else {
            if (sharing > 1) {
              if (ctx.root())
                fmt::print("  {:<9} skipped: NCCL needs one GPU per rank ({} ranks share a GPU)\n",
                           backend, sharing);
              continue;
            }
            ncclUniqueId id{};
            if (ctx.root()) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
            MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, ctx.comm);
            check_nccl(ncclCommInitRank(&nccl, nranks, id, ctx.rank), "ncclCommInitRank");
            allreduce = [&] {
              check_nccl(ncclAllReduce(send.get(), recv.get(), count_f, ncclFloat32, ncclSum, nccl,
                                       nccl_stream.get()),
                         "ncclAllReduce");
              nccl_stream.synchronize();
            };
          }
          auto timed_allreduces = [&](int reps) {
            MPI_Barrier(ctx.comm);
            const auto t0 = Clock::now();
            for (int i = 0; i < reps; ++i) allreduce();
            double s = seconds_between(t0, Clock::now()), worst = 0;
            MPI_Allreduce(&s, &worst, 1, MPI_DOUBLE, MPI_MAX, ctx.comm);
            return worst / reps;
          };
          for (int i = 0; i < warmup; ++i) allreduce();
          // 1. allreduce alone; the phases last at least 0.5 s so that the GEMM rate during the
          //    allreduces is measured over many products (every rank runs the same count).
          double ar_alone = timed_allreduces(iters);
          const int reps =
              std::max(iters, static_cast<int>(std::ceil(0.5 / std::max(ar_alone, 1e-9))));
          if (reps > iters) ar_alone = timed_allreduces(reps);
          // 2. GEMM alone, about as long as the allreduce phase (at least 0.5 s)
          MPI_Barrier(ctx.comm);
          loop.start();
          const auto g0 = Clock::now();
          std::this_thread::sleep_for(
              std::chrono::duration<double>(std::max(0.5, ar_alone * reps)));
          const auto g1 = Clock::now();
          loop.stop();
          const double rate_alone = loop.rate(g0, g1);
          // 3. together: the loop runs through the whole timed allreduce phase
          loop.start();
          while (loop.completed() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          const auto w0 = Clock::now();
          const double ar_with = timed_allreduces(reps);
          const auto w1 = Clock::now();
          loop.stop();
          const double rate_with = loop.rate(w0, w1);
          if (nccl != nullptr) {
            (void)ncclCommFinalize(nccl);
            (void)ncclCommDestroy(nccl);
          }
          hf.reset();
          // Worst rank: the slowest allreduce is already global; GEMM rates take the minimum.
          double r[2] = {rate_alone, rate_with}, rmin[2] = {0, 0};
          MPI_Allreduce(r, rmin, 2, MPI_DOUBLE, MPI_MIN, ctx.comm);
          const double flop = gpu::gemm_flops(gemm_n);
          const double tf_alone = rmin[0] * flop / 1e12, tf_with = rmin[1] * flop / 1e12;
          const double ar_slow = ar_with / ar_alone;
          const double g_slow = tf_with > 0 ? tf_alone / tf_with : std::nan("");
          if (ctx.root()) {
            fmt::print("  {:<9} {:12.1f} {:12.1f} {:9.3f} {:12.1f} {:12.1f} {:9.3f}\n", backend,
                       ar_alone * 1e6, ar_with * 1e6, ar_slow, tf_alone, tf_with, g_slow);
            std::fflush(stdout);
          }
          c_backend.push_back(backend);
          c_ar_alone.push_back(ar_alone * 1e6);
          c_ar_with.push_back(ar_with * 1e6);
          c_ar_slow.push_back(ar_slow);
          c_g_alone.push_back(tf_alone);
          c_g_with.push_back(tf_with);
          c_g_slow.push_back(g_slow);
        }
        if (ctx.root()) {
          fmt::print(
              "# slowdown = time (or 1/rate) with the other load / alone; 1.00 = no "
              "interference. GEMM rates: slowest rank.\n");
          run.tables.push_back(std::move(table));
          if (!output.empty())
            fmt::print("# results appended to {} as /runs/{}\n", output,
                       ffb::append_run(output, run));
          std::fflush(stdout);
        }
        return ffb::kExitOk;
      });
}
