// HFReduce on GPU buffers under real mpirun, checked against the host path (device_buffers off)
// on the same random inputs: every type, every op, sizes from 0 to many chunks, in place and out of
// place. The plain device path must agree bit for bit (same pipeline, same CPU kernel, same
// order). The NVLink-pair variant (--pairs force|auto) reduces each pair on the GPU first, so
// its floating-point sums differ in rounding: it must agree bit for bit where the arithmetic is
// exact (integers, max, min) and be exactly right on the suite's validation patterns everywhere.
// Also checks stream semantics of allreduce_async(..., stream): the copies wait for work queued
// before, and work queued after (a download on the same stream) sees the result.
// Several ranks may share one GPU. Without a GPU: one line, exit 77.
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <mpi.h>

#include "ffb/numeric.h"
#include "ffb/validation.h"
#include "gpu_logic.h"
#include "gpu_util.h"
#include "hfreduce/hfreduce.h"
#include "mpi_checks.h"
#include "pair_allreduce.h"

namespace {

using ffb::test::Checks;
using ffb::test::fnv1a;
using ffb::test::same_on_all_ranks;

using ffb::DataType;
using ffb::ReduceOp;

void fill_random(std::vector<unsigned char>& buf, DataType t, ReduceOp op, std::size_t count,
                 std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::size_t es = ffb::size_of(t);
  buf.resize(count * es);
  if (!ffb::is_floating(t)) {
    for (auto& b : buf) b = static_cast<unsigned char>(rng());
    return;
  }
  std::normal_distribution<double> normal(0.0, 1.0);
  for (std::size_t i = 0; i < count; ++i) {
    double v = normal(rng);
    if (op == ReduceOp::prod) v = 1.0 + 0.05 * v;  // products stay finite and normal
    ffb::store_from_double(buf.data(), t, i, v);
  }
}

void cuda(cudaError_t e, const char* what) { ffb::gpu::check(e, what); }

void CUDART_CB sleep_on_stream(void* ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(*static_cast<int*>(ms)));
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::string pairs = "off";
  int rpn = 0;
  bool quick = false, bitwise_part = true, stream_part = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--pairs" && i + 1 < argc)
      pairs = argv[++i];
    else if (a == "--ranks-per-node" && i + 1 < argc)
      rpn = std::atoi(argv[++i]);
    else if (a == "--quick")
      quick = true;
    else if (a == "--no-stream")
      stream_part = false;
    else if (a == "--stream-only")
      bitwise_part = false;
    else {
      if (rank == 0)
        fmt::print(stderr,
                   "usage: hfreduce_gpu_test [--pairs off|auto|force] [--ranks-per-node N] "
                   "[--quick] [--no-stream | --stream-only]\n");
      MPI_Finalize();
      return 2;
    }
  }
  const auto mode = ffb::gpu::parse_pair_mode(pairs);
  if (!mode) {
    if (rank == 0)
      fmt::print(stderr, "hfreduce_gpu_test: --pairs {}: give off, auto or force\n", pairs);
    MPI_Finalize();
    return 2;
  }
  const int gpus = ffb::gpu::gpu_count_or_zero();
  int min_gpus = gpus;
  MPI_Allreduce(&gpus, &min_gpus, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (min_gpus == 0) {
    if (rank == 0) {
      int n = 0;
      const cudaError_t err = cudaGetDeviceCount(&n);
      fmt::print(stderr, "hfreduce_gpu_test: skipped: no GPU ({})\n",
                 err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
    }
    MPI_Finalize();
    return 77;
  }

  Checks checks;
  checks.rank = rank;
  int exit_code = 0;
  try {
    const int device = ffb::gpu::local_rank_of(MPI_COMM_WORLD) % gpus;
    cuda(cudaSetDevice(device), "cudaSetDevice");
    constexpr std::size_t kChunk = 64 << 10;
    hfreduce::Options host_opt;
    host_opt.chunk_bytes = kChunk;
    host_opt.ranks_per_node = rpn;
    hfreduce::Options dev_opt = host_opt;
    dev_opt.device_buffers = true;
    dev_opt.cuda_device = device;
    hfreduce::Communicator host(MPI_COMM_WORLD, host_opt);
    ffb::gpu::PairAllreduce dev(MPI_COMM_WORLD, dev_opt, *mode, device);
    const bool paired = dev.paired();
    if (rank == 0) {
      fmt::print(
          "hfreduce_gpu_test: {} ranks, GPU {} per rank 0 ({}), {} GPU(s) visible; variant: {}\n",
          size, device, ffb::gpu::describe_device(device), gpus,
          paired ? "NVLink pairs" : "plain device path");
      if (*mode != ffb::gpu::PairMode::off && !paired)
        fmt::print("hfreduce_gpu_test: nvlink pairs unavailable: {}\n", dev.fallback_reason());
      std::fflush(stdout);
    }
    if (*mode == ffb::gpu::PairMode::force && !paired && size % 2 == 0)
      checks.expect(false,
                    "--pairs force on an even rank count must pair: " + dev.fallback_reason());

    std::vector<std::size_t> bytes_classes = {0,           1,           7,
                                              kChunk - 64, kChunk + 24, 3 * kChunk + kChunk / 2};
    if (!quick) bytes_classes.push_back(40 * kChunk + 1000);
    std::size_t max_bytes = 0;
    for (auto b : bytes_classes) max_bytes = std::max(max_bytes, b * 8);
    ffb::gpu::DeviceMemory d_send(max_bytes + 64), d_recv(max_bytes + 64);
    std::vector<unsigned char> input, host_out, dev_out, pattern;
    int identical = 0, different = 0, pattern_ok = 0, pattern_bad = 0;
    for (auto t : bitwise_part
                      ? std::vector<DataType>(ffb::kAllDataTypes.begin(), ffb::kAllDataTypes.end())
                      : std::vector<DataType>{}) {
      for (auto op : ffb::kAllReduceOps) {
        for (auto b : bytes_classes) {
          const std::size_t count = b == 0 ? 0 : std::max<std::size_t>(1, b / ffb::size_of(t));
          const std::size_t nbytes = count * ffb::size_of(t);
          for (int in_place = 0; in_place < 2; ++in_place) {
            const std::string what =
                fmt::format("{} {} count {} {}", ffb::name_of(t), ffb::name_of(op), count,
                            in_place ? "in-place" : "out-of-place");
            const std::uint64_t seed = 1000003ull * static_cast<std::uint64_t>(rank) +
                                       97ull * static_cast<unsigned>(t) +
                                       13ull * static_cast<unsigned>(op) + count;
            fill_random(input, t, op, count, seed);
            // Host path.
            host_out.assign(nbytes + 8, 0x5a);
            if (in_place) {
              std::memcpy(host_out.data(), input.data(), nbytes);
              host.allreduce(host_out.data(), host_out.data(), count, t, op);
            } else {
              host.allreduce(input.data(), host_out.data(), count, t, op);
            }
            // Device path.
            void* recv = d_recv.get();
            void* send = in_place ? recv : d_send.get();
            cuda(cudaMemset(d_recv.get(), 0xa5, nbytes + 8), "cudaMemset");
            if (nbytes > 0)
              cuda(cudaMemcpy(send, input.data(), nbytes, cudaMemcpyHostToDevice), "upload");
            cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");  // pageable copies may lag
            dev.allreduce(send, recv, count, t, op);
            dev_out.assign(nbytes + 8, 0);
            cuda(cudaMemcpy(dev_out.data(), recv, nbytes + 8, cudaMemcpyDeviceToHost), "download");
            bool guard_ok = true;  // the bytes after the message are untouched
            for (std::size_t k = nbytes; k < nbytes + 8; ++k)
              guard_ok = guard_ok && dev_out[k] == 0xa5;
            const bool same = std::memcmp(host_out.data(), dev_out.data(), nbytes) == 0;
            const bool exact_op =
                !ffb::is_floating(t) || op == ReduceOp::max || op == ReduceOp::min;
            if (!paired || exact_op) {
              same ? ++identical : ++different;
              checks.expect(same, what + ": device result equals the host path bit for bit");
            }
            checks.expect(guard_ok, what + ": nothing written past the message");
            checks.expect(same_on_all_ranks(fnv1a(dev_out.data(), nbytes)),
                          what + ": every rank holds the same bits");
            if (paired && !exact_op) {
              // Validation patterns: exact sums, so the pair variant must be exactly right.
              pattern.assign(nbytes, 0);
              ffb::fill_pattern(pattern.data(), t, op, size, rank, count);
              if (nbytes > 0)
                cuda(cudaMemcpy(send, pattern.data(), nbytes, cudaMemcpyHostToDevice), "upload");
              cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
              dev.allreduce(send, recv, count, t, op);
              if (nbytes > 0)
                cuda(cudaMemcpy(dev_out.data(), recv, nbytes, cudaMemcpyDeviceToHost), "download");
              const ffb::ExpectedResult expected(t, op, size);
              const auto wrong = expected.count_wrong(dev_out.data(), count);
              wrong == 0 ? ++pattern_ok : ++pattern_bad;
              checks.expect(
                  wrong == 0,
                  fmt::format("{}: {} wrong elements on the validation pattern", what, wrong));
            }
          }
        }
      }
    }
    if (rank == 0 && bitwise_part) {
      fmt::print(
          "bitwise vs host path: {} identical, {} different ({} types x {} ops x {} sizes x 2 "
          "placements{})\n",
          identical, different, ffb::kAllDataTypes.size(), ffb::kAllReduceOps.size(),
          bytes_classes.size(), paired ? "; floating sum/prod/avg checked on patterns" : "");
      if (paired)
        fmt::print("pair variant on validation patterns: {} exact, {} wrong\n", pattern_ok,
                   pattern_bad);
      std::fflush(stdout);
    }

    // Stream semantics (plain path): a stream that is busy (a host function sleeps on it) and
    // then uploads the input; allreduce_async on that stream; a download queued on the stream
    // right after the call returns. The download must see the result without req.wait().
    if (!paired && stream_part) {
      const std::size_t count = 3 * kChunk / 4 + 5;
      cudaStream_t s = nullptr;
      cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
      ffb::gpu::HostMemory pin_in(count * 4, true), pin_out(count * 4, true);
      auto* in = static_cast<float*>(pin_in.get());
      for (std::size_t i = 0; i < count; ++i) in[i] = static_cast<float>((rank + 1) * (i % 97));
      cuda(cudaMemset(d_send.get(), 0, count * 4), "cudaMemset");
      cuda(cudaMemset(d_recv.get(), 0, count * 4), "cudaMemset");
      cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
      static int ms = 200;
      cuda(cudaLaunchHostFunc(s, &sleep_on_stream, &ms), "cudaLaunchHostFunc");
      cuda(cudaMemcpyAsync(d_send.get(), in, count * 4, cudaMemcpyHostToDevice, s), "upload");
      auto req = dev.host_stage().allreduce_async(d_send.get(), d_recv.get(), count, DataType::f32,
                                                  ReduceOp::sum, s);
      cuda(cudaMemcpyAsync(pin_out.get(), d_recv.get(), count * 4, cudaMemcpyDeviceToHost, s),
           "download");
      cuda(cudaStreamSynchronize(s), "cudaStreamSynchronize");
      std::vector<float> seen(static_cast<float*>(pin_out.get()),
                              static_cast<float*>(pin_out.get()) + count);
      req.wait();
      const double ranks_sum = size * (size + 1) / 2.0;
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < count; ++i)
        if (seen[i] != static_cast<float>(ranks_sum * static_cast<double>(i % 97))) ++wrong;
      checks.expect(wrong == 0, fmt::format("allreduce_async(stream): {} of {} elements wrong when "
                                            "read from the stream without req.wait() (work queued "
                                            "before must be waited for, work queued after must see "
                                            "the result)",
                                            wrong, count));
      if (rank == 0) fmt::print("async stream semantics: {}\n", wrong == 0 ? "ok" : "FAILED");
      cuda(cudaStreamDestroy(s), "cudaStreamDestroy");
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "rank {}: error: {}\n", rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank == 0)
    fmt::print("hfreduce_gpu_test: {} passed, {} failed\n", checks.passed, checks.failed);
  exit_code = checks.failed == 0 ? 0 : 1;
  MPI_Finalize();
  return exit_code;
}
