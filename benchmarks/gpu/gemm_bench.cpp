// Square matrix products with cuBLAS, the paper's Table II measurement (R7): TF32, FP16 and BF16,
// N = 2048 ... 16384, 30 warm-up and 100 timed products, TFLOPS = 2 N^3 / t, on random data. One
// rank per GPU (local rank -> device); rank 0 prints every rank's rows and writes the results.
#include <cmath>

#include <fmt/format.h>

#include "ffb/program.h"
#include "ffb/provenance.h"
#include "ffb/results.h"
#include "ffb/run_output.h"
#include "ffb/sizes.h"
#include "ffb/strings.h"
#include "gemm_runner.h"
#include "gpu_logic.h"
#include "gpu_util.h"

namespace {

using ffb::gpu::GemmType;

// R7 (A100 40GB: PCIe / SXM): the paper publishes TF32 and FP16 only.
std::string reference_text(GemmType t) {
  switch (t) {
    case GemmType::tf32:
      return "107 / 131";
    case GemmType::fp16:
      return "220 / 263";
    default:
      return "-";
  }
}

struct Args {
  std::string sizes_text = "2048,4096,8192,16384", types_text = "tf32,fp16,bf16", output, label;
  int warmup = 30, iters = 100, device = -1;
  double max_error = 0.05;
  // From the texts, by validate():
  std::vector<std::uint64_t> sizes;
  std::vector<GemmType> types;
};

void add_options(CLI::App& app, Args& a) {
  app.add_option("--sizes", a.sizes_text, "matrix sizes N, comma-separated")->capture_default_str();
  app.add_option("--types", a.types_text, "tf32, fp16, bf16, fp32, comma-separated")
      ->capture_default_str();
  app.add_option("-w,--warmup", a.warmup, "warm-up products")->capture_default_str();
  app.add_option("-n,--iters", a.iters, "timed products")->capture_default_str();
  app.add_option("--device", a.device, "GPU (-1: local rank modulo the GPUs)")
      ->capture_default_str();
  app.add_option("--max-error", a.max_error,
                 "spot check: largest allowed |C - ref| / sum|a b| (fails the run above)")
      ->capture_default_str();
  app.add_option("--output", a.output, "append this run to an HDF5 results file");
  app.add_option("--label", a.label, "free text stored with the run");
}

void check(Args& a) {
  a.sizes.clear();
  for (const auto& s : ffb::split_list(a.sizes_text)) {
    const auto v = ffb::parse_size(s, "--sizes");
    if (v < 16 || v > 65536)
      throw ffb::UsageError(fmt::format("--sizes {}: give N in 16..65536", s));
    a.sizes.push_back(v);
  }
  a.types.clear();
  for (const auto& s : ffb::split_list(a.types_text)) {
    const auto t = ffb::gpu::parse_gemm_type(s);
    if (!t) throw ffb::UsageError(fmt::format("--types {}: give tf32, fp16, bf16 or fp32", s));
    a.types.push_back(*t);
  }
  if (a.sizes.empty() || a.types.empty()) throw ffb::UsageError("--sizes/--types: empty list");
  if (a.warmup < 0 || a.iters < 1) throw ffb::UsageError("-w >= 0 and -n >= 1, please");
}

// This rank's rows: every (type, N) in the same order on every rank, three values each (seconds
// per product, TFLOPS, spot error; NaN: skipped for want of free GPU memory).
std::vector<double> measure(const Args& a, int rank) {
  ffb::gpu::Stream stream;
  std::vector<double> mine;
  for (auto t : a.types) {
    for (auto n : a.sizes) {
      std::size_t free_b = 0, total_b = 0;
      ffb::gpu::check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
      if (ffb::gpu::Gemm::bytes_needed(n, t) + (256u << 20) > free_b) {
        mine.insert(mine.end(), {std::nan(""), std::nan(""), std::nan("")});
        continue;
      }
      ffb::gpu::Gemm gemm(n, t, stream.get(), static_cast<std::uint64_t>(rank) + 1);
      gemm.enqueue(a.warmup);
      stream.synchronize();
      const double seconds = gemm.time(a.iters);
      const double err = gemm.spot_check(4);
      mine.insert(mine.end(), {seconds / a.iters, ffb::gpu::gemm_tflops(n, a.iters, seconds), err});
    }
  }
  return mine;
}

void print_header(const Args& a) {
  fmt::print(
      "# gemm_bench: C = A x B, square N x N, cuBLAS GemmEx, {} warm-up + {} timed "
      "products, random inputs; TFLOPS = 2 N^3 / t\n",
      a.warmup, a.iters);
  fmt::print("# R7 (paper, A100 40GB PCIe / SXM): TF32 107 / 131, FP16 220 / 263 TFLOPS\n");
  fmt::print("# {:>4}  {:<44} {:>5} {:>6} {:>11} {:>9} {:>10}  {}\n", "rank", "device", "type", "N",
             "time (ms)", "TFLOPS", "spot err", "R7 PCIe / SXM");
}

// Rank 0: prints every rank's rows (`all`: the gathered rows, rank by rank) into the table and
// returns how many failed the spot check.
int report_rows(const Args& a, const std::vector<double>& all, int nranks,
                const std::vector<std::string>& devices, ffb::Table& table) {
  auto& c_rank = table.add_i64("rank", "1");
  auto& c_dev = table.add_str("device");
  auto& c_type = table.add_str("type");
  auto& c_n = table.add_i64("n", "count");
  auto& c_time = table.add_f64("time", "us");
  auto& c_tf = table.add_f64("tflops", "TFLOPS");
  auto& c_err = table.add_f64("spot_error", "1");
  int failed = 0;
  const std::size_t rows_per_rank = all.size() / static_cast<std::size_t>(nranks) / 3;
  for (int r = 0; r < nranks; ++r) {
    std::size_t row = 0;
    for (auto t : a.types) {
      for (auto n : a.sizes) {
        const double* v = &all[(static_cast<std::size_t>(r) * rows_per_rank + row) * 3];
        ++row;
        c_rank.push_back(r);
        c_dev.push_back(devices[r]);
        c_type.emplace_back(ffb::gpu::name_of(t));
        c_n.push_back(static_cast<std::int64_t>(n));
        c_time.push_back(v[0] * 1e6);
        c_tf.push_back(v[1]);
        c_err.push_back(v[2]);
        if (std::isnan(v[0])) {
          fmt::print("  {:>4}  {:<44} {:>5} {:>6}  skipped: not enough free GPU memory\n", r,
                     devices[r], ffb::gpu::name_of(t), n);
          continue;
        }
        const bool bad = !(v[2] <= a.max_error);
        failed += bad ? 1 : 0;
        fmt::print("  {:>4}  {:<44} {:>5} {:>6} {:11.3f} {:9.1f} {:10.2e}  {}{}\n", r, devices[r],
                   ffb::gpu::name_of(t), n, v[0] * 1e3, v[1], v[2], reference_text(t),
                   bad ? "  FAILED spot check" : "");
      }
    }
  }
  return failed;
}

class GemmBench final : public ffb::Program {
 public:
  void add_options(CLI::App& app) override { ::add_options(app, a_); }
  void validate() override { check(a_); }
  int run(ffb::ProgramContext& ctx) override {
    ffb::check_output(a_.output, ctx.comm);
    const int count = ffb::gpu::require_gpus();
    const int device = ffb::gpu::select_device(a_.device, ffb::gpu::local_rank_of(ctx.comm), count);
    ffb::gpu::check(cudaSetDevice(device), "cudaSetDevice");
    const std::string dev_text = ffb::gpu::describe_device(device);

    ffb::RunRecord run;
    run.attrs["label"] = a_.label;
    run.attrs["options"] = fmt::format(
        R"({{"sizes": "{}", "types": "{}", "warmup": {}, "iters": {}, "max_error": {}}})",
        a_.sizes_text, a_.types_text, a_.warmup, a_.iters, a_.max_error);
    ffb::add_provenance(run, ctx.comm, ctx.topology, "gemm_bench", "probe", ctx.argv, dev_text);

    const auto mine = measure(a_, ctx.rank);
    std::vector<double> all(ctx.root() ? mine.size() * static_cast<std::size_t>(ctx.size) : 0);
    MPI_Gather(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(),
               static_cast<int>(mine.size()), MPI_DOUBLE, 0, ctx.comm);
    const auto devices = ffb::allgather_strings(ctx.comm, dev_text);

    int failed = 0;
    if (ctx.root()) {
      print_header(a_);
      ffb::Table table{.name = "gemm", .columns = {}};
      failed = report_rows(a_, all, ctx.size, devices, table);
      fmt::print("# spot check: {} (|C - ref| / sum|a b| <= {})\n", failed == 0 ? "OK" : "FAILED",
                 a_.max_error);
      run.attrs["status"] = std::string(failed == 0 ? "complete" : "failed");
      run.tables.push_back(std::move(table));
    }
    return ffb::finish_run(ctx.comm, a_.output, run, failed != 0);
  }

 private:
  Args a_;
};

}  // namespace

int main(int argc, char** argv) {
  GemmBench program;
  return ffb::run_program(
      argc, argv,
      {.name = "gemm_bench",
       .description = "cuBLAS square GEMM throughput per GPU (R7), TFLOPS = 2N^3/t",
       .thread_level = MPI_THREAD_MULTIPLE,
       .parse = {}},
      program);
}
