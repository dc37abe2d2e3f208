// Square matrix products with cuBLAS, the paper's Table II measurement (R7): TF32, FP16 and BF16,
// N = 2048 ... 16384, 30 warm-up and 100 timed products, TFLOPS = 2 N^3 / t, on random data. One
// rank per GPU (local rank -> device); rank 0 prints every rank's rows and writes the results.
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "ffb/sizes.h"
#include "gemm_runner.h"
#include "gpu_logic.h"
#include "gpu_program.h"
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
  std::string sizes_text = "2048,4096,8192,16384", types_text = "tf32,fp16,bf16", output, label;
  int warmup = 30, iters = 100, device_opt = -1;
  double max_error = 0.05;
  return ffb::gpu::run_program(
      argc, argv, "gemm_bench", "cuBLAS square GEMM throughput per GPU (R7), TFLOPS = 2N^3/t",
      [&](CLI::App& app) {
        app.add_option("--sizes", sizes_text, "matrix sizes N, comma-separated")
            ->capture_default_str();
        app.add_option("--types", types_text, "tf32, fp16, bf16, fp32, comma-separated")
            ->capture_default_str();
        app.add_option("-w,--warmup", warmup, "warm-up products")->capture_default_str();
        app.add_option("-n,--iters", iters, "timed products")->capture_default_str();
        app.add_option("--device", device_opt, "GPU (-1: local rank modulo the GPUs)")
            ->capture_default_str();
        app.add_option("--max-error", max_error,
                       "spot check: largest allowed |C - ref| / sum|a b| (fails the run above)")
            ->capture_default_str();
        app.add_option("--output", output, "append this run to an HDF5 results file");
        app.add_option("--label", label, "free text stored with the run");
      },
      [&](ffb::gpu::ProgramContext& ctx) {
        ffb::check_output(output, ctx.comm);
        std::vector<std::uint64_t> sizes;
        for (const auto& s : split_list(sizes_text)) {
          const auto v = ffb::parse_size(s, "--sizes");
          if (v < 16 || v > 65536)
            throw ffb::UsageError(fmt::format("--sizes {}: give N in 16..65536", s));
          sizes.push_back(v);
        }
        std::vector<GemmType> types;
        for (const auto& s : split_list(types_text)) {
          const auto t = ffb::gpu::parse_gemm_type(s);
          if (!t)
            throw ffb::UsageError(fmt::format("--types {}: give tf32, fp16, bf16 or fp32", s));
          types.push_back(*t);
        }
        if (sizes.empty() || types.empty()) throw ffb::UsageError("--sizes/--types: empty list");
        if (warmup < 0 || iters < 1) throw ffb::UsageError("-w >= 0 and -n >= 1, please");

        const int count = ffb::gpu::require_gpus();
        const int device =
            ffb::gpu::select_device(device_opt, ffb::gpu::local_rank_of(ctx.comm), count);
        ffb::gpu::check(cudaSetDevice(device), "cudaSetDevice");
        const std::string dev_text = ffb::gpu::describe_device(device);

        ffb::RunRecord run;
        run.attrs["label"] = label;
        run.attrs["options"] = fmt::format(
            R"({{"sizes": "{}", "types": "{}", "warmup": {}, "iters": {}, "max_error": {}}})",
            sizes_text, types_text, warmup, iters, max_error);
        ffb::add_provenance(run, ctx.comm, ctx.topology, "gemm_bench", "probe", ctx.argv, dev_text);

        ffb::gpu::Stream stream;
        // Rows: every (type, N) on every rank, in the same order.
        std::vector<double>
            mine;  // per row: seconds per product, TFLOPS, spot error (NaN = skipped)
        for (auto t : types) {
          for (auto n : sizes) {
            std::size_t free_b = 0, total_b = 0;
            ffb::gpu::check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
            if (ffb::gpu::Gemm::bytes_needed(n, t) + (256u << 20) > free_b) {
              mine.insert(mine.end(), {std::nan(""), std::nan(""), std::nan("")});
              continue;
            }
            ffb::gpu::Gemm gemm(n, t, stream.get(), static_cast<std::uint64_t>(ctx.rank) + 1);
            gemm.enqueue(warmup);
            stream.synchronize();
            const double seconds = gemm.time(iters);
            const double err = gemm.spot_check(4);
            mine.insert(mine.end(),
                        {seconds / iters, ffb::gpu::gemm_tflops(n, iters, seconds), err});
          }
        }
        int nranks = 1;
        MPI_Comm_size(ctx.comm, &nranks);
        std::vector<double> all(ctx.root() ? mine.size() * static_cast<std::size_t>(nranks) : 0);
        MPI_Gather(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(),
                   static_cast<int>(mine.size()), MPI_DOUBLE, 0, ctx.comm);
        const auto devices = ffb::allgather_strings(ctx.comm, dev_text);

        int failed = 0;
        if (ctx.root()) {
          fmt::print(
              "# gemm_bench: C = A x B, square N x N, cuBLAS GemmEx, {} warm-up + {} timed "
              "products, random inputs; TFLOPS = 2 N^3 / t\n",
              warmup, iters);
          fmt::print("# R7 (paper, A100 40GB PCIe / SXM): TF32 107 / 131, FP16 220 / 263 TFLOPS\n");
          fmt::print("# {:>4}  {:<44} {:>5} {:>6} {:>11} {:>9} {:>10}  {}\n", "rank", "device",
                     "type", "N", "time (ms)", "TFLOPS", "spot err", "R7 PCIe / SXM");
          ffb::Table table{.name = "gemm", .columns = {}};
          auto& c_rank = table.add_i64("rank", "1");
          auto& c_dev = table.add_str("device");
          auto& c_type = table.add_str("type");
          auto& c_n = table.add_i64("n", "count");
          auto& c_time = table.add_f64("time", "us");
          auto& c_tf = table.add_f64("tflops", "TFLOPS");
          auto& c_err = table.add_f64("spot_error", "1");
          for (int r = 0; r < nranks; ++r) {
            std::size_t row = 0;
            for (auto t : types) {
              for (auto n : sizes) {
                const double* v = &all[(static_cast<std::size_t>(r) * mine.size() / 3 + row) * 3];
                ++row;
                c_rank.push_back(r);
                c_dev.push_back(devices[r]);
                c_type.emplace_back(ffb::gpu::name_of(t));
                c_n.push_back(static_cast<std::int64_t>(n));
                c_time.push_back(v[0] * 1e6);
                c_tf.push_back(v[1]);
                c_err.push_back(v[2]);
                if (std::isnan(v[0])) {
                  fmt::print("  {:>4}  {:<44} {:>5} {:>6}  skipped: not enough free GPU memory\n",
                             r, devices[r], ffb::gpu::name_of(t), n);
                  continue;
                }
                const bool bad = !(v[2] <= max_error);
                failed += bad ? 1 : 0;
                fmt::print("  {:>4}  {:<44} {:>5} {:>6} {:11.3f} {:9.1f} {:10.2e}  {}{}\n", r,
                           devices[r], ffb::gpu::name_of(t), n, v[0] * 1e3, v[1], v[2],
                           reference_text(t), bad ? "  FAILED spot check" : "");
              }
            }
          }
          fmt::print("# spot check: {} (|C - ref| / sum|a b| <= {})\n",
                     failed == 0 ? "OK" : "FAILED", max_error);
          run.attrs["status"] = std::string(failed == 0 ? "complete" : "failed");
          run.tables.push_back(std::move(table));
          if (!output.empty())
            fmt::print("# results appended to {} as /runs/{}\n", output,
                       ffb::append_run(output, run));
          std::fflush(stdout);
        }
        MPI_Bcast(&failed, 1, MPI_INT, 0, ctx.comm);
        return failed == 0 ? ffb::kExitOk : ffb::kExitFailure;
      });
}
