// HFReduce on GPU buffers under real mpirun, checked against the host path (device_buffers off)
// on the same random inputs: every type, every op, sizes from 0 to many chunks, in place and out of
// place. The plain device path must agree bit for bit (same pipeline, same CPU kernel, same
// order), synchronous or (--async) through allreduce_async on a stream with either
// --stream-completion. The library's NVLink pairs (--pairs force|auto, Options::nvlink_pairs)
// regroup floating sum/prod/avg: they must agree bit for bit where the arithmetic does not depend
// on the grouping (integers, max, min), stay within the documented bound elsewhere
// (hfreduce/src/gpu/pair_logic.h, pair_tolerance, from every rank's inputs) and be exactly right on
// the suite's validation patterns.
// Also checks stream semantics of allreduce_async(..., stream): the copies wait for work queued
// before, work queued after (a download on the same stream) sees the result, and with
// stream_wait no host function holds the stream: a host function on another stream runs while the
// operation is still pending. Several ranks may share one GPU. Without a GPU: one line, exit 77.
#include <atomic>
#include <chrono>
#include <cmath>
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
#include "gpu/pair_logic.h"
#include "gpu_util.h"
#include "hfreduce/hfreduce.h"
#include "mpi_checks.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;
using ffb::test::Checks;
using ffb::test::fnv1a;
using ffb::test::same_on_all_ranks;
using Buffer = std::vector<unsigned char>;

constexpr std::size_t kChunk = 64 << 10;

struct Args {
  hfreduce::NvlinkPairs pairs = hfreduce::NvlinkPairs::off;
  hfreduce::StreamCompletion completion = hfreduce::StreamCompletion::host_func;
  int ranks_per_node = 0;
  bool quick = false, bitwise = true, stream = true, async = false;
};

template <class E>
bool parse_enum(const std::string& text, std::initializer_list<E> values, E& out) {
  for (E v : values)
    if (text == hfreduce::name_of(v)) {
      out = v;
      return true;
    }
  return false;
}

// nullopt-like: false on a bad argument (rank 0 printed the usage).
bool parse_args(int argc, char** argv, int rank, Args& a) {
  using hfreduce::NvlinkPairs;
  using hfreduce::StreamCompletion;
  bool ok = true;
  for (int i = 1; i < argc && ok; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--pairs" && has_value)
      ok = parse_enum(argv[++i], {NvlinkPairs::off, NvlinkPairs::automatic, NvlinkPairs::force},
                      a.pairs);
    else if (arg == "--stream-completion" && has_value)
      ok = parse_enum(argv[++i], {StreamCompletion::host_func, StreamCompletion::stream_wait},
                      a.completion);
    else if (arg == "--ranks-per-node" && has_value)
      a.ranks_per_node = std::atoi(argv[++i]);
    else if (arg == "--quick")
      a.quick = true;
    else if (arg == "--async")
      a.async = true;
    else if (arg == "--no-stream")
      a.stream = false;
    else if (arg == "--stream-only")
      a.bitwise = false;
    else
      ok = false;
  }
  if (!ok && rank == 0)
    fmt::print(stderr,
               "usage: hfreduce_gpu_test [--pairs off|auto|force] [--stream-completion "
               "host_func|stream_wait] [--async] [--ranks-per-node N] [--quick] [--no-stream | "
               "--stream-only]\n");
  return ok;
}

void fill_random(Buffer& buf, DataType t, ReduceOp op, std::size_t count, std::uint64_t seed) {
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

std::uint64_t seed_of(int rank, DataType t, ReduceOp op, std::size_t count) {
  return 1000003ull * static_cast<std::uint64_t>(rank) + 97ull * static_cast<unsigned>(t) +
         13ull * static_cast<unsigned>(op) + count;
}

void cuda(cudaError_t e, const char* what) { ffb::gpu::check(e, what); }

void CUDART_CB sleep_on_stream(void* ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(*static_cast<int*>(ms)));
}

void CUDART_CB raise_flag(void* flag) { static_cast<std::atomic<bool>*>(flag)->store(true); }

// Everything one run of the checks shares.
struct Ctx {
  Args args;
  int rank = 0, size = 1, device = 0;
  hfreduce::Communicator* host = nullptr;
  hfreduce::Communicator* dev = nullptr;
  cudaStream_t stream = nullptr;
  Checks checks;
  int identical = 0, different = 0, within_bound = 0, outside_bound = 0, unbounded = 0;
  int pattern_ok = 0, pattern_bad = 0;
};

// The device path on `send` -> `recv`: synchronous, or asynchronous on the context's stream.
void device_allreduce(Ctx& c, const void* send, void* recv, std::size_t count, DataType t,
                      ReduceOp op) {
  if (!c.args.async) {
    c.dev->allreduce(send, recv, count, t, op);
    return;
  }
  auto req = c.dev->allreduce_async(send, recv, count, t, op, c.stream);
  cuda(cudaStreamSynchronize(c.stream), "cudaStreamSynchronize");
  req.wait();
}

// Pair regrouping of floating sum/prod/avg: every differing element within pair_tolerance of the
// host path, the magnitudes taken from every rank's inputs (regenerated from their seeds).
void check_within_bound(Ctx& c, DataType t, ReduceOp op, std::size_t count, const Buffer& host,
                        const Buffer& dev, const std::string& what) {
  std::vector<Buffer> all(static_cast<std::size_t>(c.size));
  for (int r = 0; r < c.size; ++r) fill_random(all[r], t, op, count, seed_of(r, t, op, count));
  const std::size_t es = ffb::size_of(t);
  std::size_t outside = 0, unbounded = 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (std::memcmp(host.data() + i * es, dev.data() + i * es, es) == 0) continue;
    hfreduce::gpu::InputMagnitude m;
    for (const auto& b : all) {
      const double v = std::fabs(ffb::load_as_double(b.data(), t, i));
      m.sum_abs += v;
      m.prod_abs *= v;
      m.prod_max1 *= std::max(1.0, v);
    }
    const double tol = hfreduce::gpu::pair_tolerance(t, op, c.size, m);
    const double diff =
        std::fabs(ffb::load_as_double(dev.data(), t, i) - ffb::load_as_double(host.data(), t, i));
    if (std::isinf(tol))
      ++unbounded;
    else if (!(diff <= tol))
      ++outside;
  }
  if (unbounded > 0) ++c.unbounded;
  outside == 0 ? ++c.within_bound : ++c.outside_bound;
  c.checks.expect(outside == 0,
                  fmt::format("{}: {} elements beyond the pair tolerance", what, outside));
}

// Validation patterns: exact sums, so the pair variant must be exactly right.
void check_pattern(Ctx& c, DataType t, ReduceOp op, std::size_t count, void* send, void* recv,
                   const std::string& what) {
  const std::size_t nbytes = count * ffb::size_of(t);
  Buffer pattern(nbytes), out(nbytes);
  ffb::fill_pattern(pattern.data(), t, op, c.size, c.rank, count);
  if (nbytes > 0) cuda(cudaMemcpy(send, pattern.data(), nbytes, cudaMemcpyHostToDevice), "upload");
  cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  device_allreduce(c, send, recv, count, t, op);
  if (nbytes > 0) cuda(cudaMemcpy(out.data(), recv, nbytes, cudaMemcpyDeviceToHost), "download");
  const auto wrong = ffb::ExpectedResult(t, op, c.size).count_wrong(out.data(), count);
  wrong == 0 ? ++c.pattern_ok : ++c.pattern_bad;
  c.checks.expect(wrong == 0,
                  fmt::format("{}: {} wrong elements on the validation pattern", what, wrong));
}

// One (type, op, count, placement): host path vs device path.
void check_case(Ctx& c, DataType t, ReduceOp op, std::size_t count, bool in_place,
                ffb::gpu::DeviceMemory& d_send, ffb::gpu::DeviceMemory& d_recv) {
  const std::size_t nbytes = count * ffb::size_of(t);
  const std::string what = fmt::format("{} {} count {} {}", ffb::name_of(t), ffb::name_of(op),
                                       count, in_place ? "in-place" : "out-of-place");
  Buffer input;
  fill_random(input, t, op, count, seed_of(c.rank, t, op, count));
  Buffer host_out(nbytes + 8, 0x5a);
  if (in_place) {
    std::memcpy(host_out.data(), input.data(), nbytes);
    c.host->allreduce(host_out.data(), host_out.data(), count, t, op);
  } else {
    c.host->allreduce(input.data(), host_out.data(), count, t, op);
  }
  void* recv = d_recv.get();
  void* send = in_place ? recv : d_send.get();
  cuda(cudaMemset(recv, 0xa5, nbytes + 8), "cudaMemset");
  if (nbytes > 0) cuda(cudaMemcpy(send, input.data(), nbytes, cudaMemcpyHostToDevice), "upload");
  cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");  // pageable copies may lag
  device_allreduce(c, send, recv, count, t, op);
  Buffer dev_out(nbytes + 8, 0);
  cuda(cudaMemcpy(dev_out.data(), recv, nbytes + 8, cudaMemcpyDeviceToHost), "download");
  bool guard_ok = true;  // the bytes after the message are untouched
  for (std::size_t k = nbytes; k < nbytes + 8; ++k) guard_ok = guard_ok && dev_out[k] == 0xa5;
  const bool same = std::memcmp(host_out.data(), dev_out.data(), nbytes) == 0;
  const bool paired = c.dev->nvlink_pairs_active();
  if (!paired || hfreduce::gpu::pair_exact(t, op)) {
    same ? ++c.identical : ++c.different;
    c.checks.expect(same, what + ": device result equals the host path bit for bit");
  }
  c.checks.expect(guard_ok, what + ": nothing written past the message");
  c.checks.expect(same_on_all_ranks(fnv1a(dev_out.data(), nbytes)),
                  what + ": every rank holds the same bits");
  if (paired && !hfreduce::gpu::pair_exact(t, op)) {
    check_within_bound(c, t, op, count, host_out, dev_out, what);
    check_pattern(c, t, op, count, send, recv, what);
  }
}

void check_bitwise(Ctx& c) {
  std::vector<std::size_t> bytes_classes = {0,           1,           7,
                                            kChunk - 64, kChunk + 24, 3 * kChunk + kChunk / 2};
  if (!c.args.quick) bytes_classes.push_back(40 * kChunk + 1000);
  std::size_t max_bytes = 0;
  for (auto b : bytes_classes) max_bytes = std::max(max_bytes, b * 8);
  ffb::gpu::DeviceMemory d_send(max_bytes + 64), d_recv(max_bytes + 64);
  for (auto t : ffb::kAllDataTypes)
    for (auto op : ffb::kAllReduceOps)
      for (auto b : bytes_classes) {
        const std::size_t count = b == 0 ? 0 : std::max<std::size_t>(1, b / ffb::size_of(t));
        for (int in_place = 0; in_place < 2; ++in_place)
          check_case(c, t, op, count, in_place != 0, d_send, d_recv);
      }
  if (c.rank != 0) return;
  const bool paired = c.dev->nvlink_pairs_active();
  fmt::print(
      "bitwise vs host path: {} identical, {} different ({} types x {} ops x {} sizes x 2 "
      "placements, {}{})\n",
      c.identical, c.different, ffb::kAllDataTypes.size(), ffb::kAllReduceOps.size(),
      bytes_classes.size(),
      c.args.async ? fmt::format("allreduce_async, {}", hfreduce::name_of(c.args.completion))
                   : std::string("allreduce"),
      paired ? "; pairs: floating sum/prod/avg checked against the bound and on patterns" : "");
  if (paired) {
    fmt::print(
        "pair tolerance: {} within the bound, {} beyond ({} with fp8 cases beyond any "
        "bound)\n",
        c.within_bound, c.outside_bound, c.unbounded);
    fmt::print("pair variant on validation patterns: {} exact, {} wrong\n", c.pattern_ok,
               c.pattern_bad);
  }
  std::fflush(stdout);
}

// A stream that is busy (a host function sleeps on it) and then uploads the input;
// allreduce_async on that stream; a download queued right after the call returns. The download
// must see the result without req.wait().
void check_stream_semantics(Ctx& c) {
  const std::size_t count = 3 * kChunk / 4 + 5;
  ffb::gpu::DeviceMemory d_send(count * 4), d_recv(count * 4);
  ffb::gpu::HostMemory pin_in(count * 4, true), pin_out(count * 4, true);
  auto* in = static_cast<float*>(pin_in.get());
  for (std::size_t i = 0; i < count; ++i) in[i] = static_cast<float>((c.rank + 1) * (i % 97));
  cuda(cudaMemset(d_send.get(), 0, count * 4), "cudaMemset");
  cuda(cudaMemset(d_recv.get(), 0, count * 4), "cudaMemset");
  cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  static int ms = 200;
  cuda(cudaLaunchHostFunc(c.stream, &sleep_on_stream, &ms), "cudaLaunchHostFunc");
  cuda(cudaMemcpyAsync(d_send.get(), in, count * 4, cudaMemcpyHostToDevice, c.stream), "upload");
  auto req = c.dev->allreduce_async(d_send.get(), d_recv.get(), count, DataType::f32, ReduceOp::sum,
                                    c.stream);
  cuda(cudaMemcpyAsync(pin_out.get(), d_recv.get(), count * 4, cudaMemcpyDeviceToHost, c.stream),
       "download");
  cuda(cudaStreamSynchronize(c.stream), "cudaStreamSynchronize");
  std::vector<float> seen(static_cast<float*>(pin_out.get()),
                          static_cast<float*>(pin_out.get()) + count);
  req.wait();
  const double ranks_sum = c.size * (c.size + 1) / 2.0;
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < count; ++i)
    if (seen[i] != static_cast<float>(ranks_sum * static_cast<double>(i % 97))) ++wrong;
  c.checks.expect(wrong == 0,
                  fmt::format("allreduce_async(stream, {}): {} of {} elements wrong when read from "
                              "the stream without req.wait() (work queued before must be waited "
                              "for, work queued after must see the result)",
                              hfreduce::name_of(c.args.completion), wrong, count));
  if (c.rank == 0) fmt::print("async stream semantics: {}\n", wrong == 0 ? "ok" : "FAILED");
}

// stream_wait: the last rank joins 300 ms late, so the operation is pending that long on the
// others; a host function on a second stream must run meanwhile (a blocking host function on the
// caller's stream, which the driver may serialise with every other, is what stream_wait removes).
void check_no_blocking_host_function(Ctx& c) {
  if (c.args.completion != hfreduce::StreamCompletion::stream_wait || c.size < 2) return;
  const std::size_t count = kChunk;
  ffb::gpu::DeviceMemory d_buf(count * 4);
  cuda(cudaMemset(d_buf.get(), 0, count * 4), "cudaMemset");
  cudaStream_t other = nullptr;
  cuda(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), "cudaStreamCreate");
  cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  MPI_Barrier(MPI_COMM_WORLD);
  if (c.rank == c.size - 1) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto req = c.dev->allreduce_async(d_buf.get(), d_buf.get(), count, DataType::f32, ReduceOp::sum,
                                    c.stream);
  std::atomic<bool> ran{false};
  cuda(cudaLaunchHostFunc(other, &raise_flag, &ran), "cudaLaunchHostFunc (second stream)");
  const auto t0 = std::chrono::steady_clock::now();
  while (!ran && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const bool pending_then = !req.test();
  const double waited_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  cuda(cudaStreamSynchronize(c.stream), "cudaStreamSynchronize");
  req.wait();
  cuda(cudaStreamSynchronize(other), "cudaStreamSynchronize");
  cuda(cudaStreamDestroy(other), "cudaStreamDestroy");
  const bool late_rank = c.rank == c.size - 1;
  c.checks.expect(late_rank || (ran && pending_then && waited_ms < 100),
                  fmt::format("stream_wait: a host function on another stream ran after {:.1f} ms "
                              "while the allreduce was {} (must run at once, while pending)",
                              waited_ms, pending_then ? "pending" : "already complete"));
  if (c.rank == 0)
    fmt::print("stream_wait holds no host function: {} ({:.1f} ms)\n",
               ran && pending_then && waited_ms < 100 ? "ok" : "FAILED", waited_ms);
}

int skip_without_gpu(int rank) {
  const int gpus = ffb::gpu::gpu_count_or_zero();
  int min_gpus = gpus;
  MPI_Allreduce(&gpus, &min_gpus, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (min_gpus > 0) return 0;
  if (rank == 0) {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    fmt::print(stderr, "hfreduce_gpu_test: skipped: no GPU ({})\n",
               err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
  }
  return 77;
}

void run_checks(Ctx& c) {
  const int gpus = ffb::gpu::gpu_count_or_zero();
  c.device = ffb::gpu::local_rank_of(MPI_COMM_WORLD) % gpus;
  cuda(cudaSetDevice(c.device), "cudaSetDevice");
  hfreduce::Options host_opt;
  host_opt.chunk_bytes = kChunk;
  host_opt.ranks_per_node = c.args.ranks_per_node;
  hfreduce::Options dev_opt = host_opt;
  dev_opt.device_buffers = true;
  dev_opt.cuda_device = c.device;
  dev_opt.nvlink_pairs = c.args.pairs;
  dev_opt.stream_completion = c.args.completion;
  hfreduce::Communicator host(MPI_COMM_WORLD, host_opt);
  hfreduce::Communicator dev(MPI_COMM_WORLD, dev_opt);
  c.host = &host;
  c.dev = &dev;
  cuda(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const bool paired = dev.nvlink_pairs_active();
  if (c.rank == 0) {
    fmt::print(
        "hfreduce_gpu_test: {} ranks, GPU {} per rank 0 ({}), {} GPU(s) visible; variant: "
        "{}; stream completion {}\n",
        c.size, c.device, ffb::gpu::describe_device(c.device), gpus,
        paired ? "NVLink pairs" : "plain device path", hfreduce::name_of(c.args.completion));
    if (c.args.pairs != hfreduce::NvlinkPairs::off && !paired)
      fmt::print("hfreduce_gpu_test: nvlink pairs unavailable: {}\n", dev.nvlink_pairs_fallback());
    std::fflush(stdout);
  }
  if (c.args.pairs == hfreduce::NvlinkPairs::force && !paired && c.size % 2 == 0)
    c.checks.expect(
        false, "--pairs force on an even rank count must pair: " + dev.nvlink_pairs_fallback());
  if (c.args.bitwise) check_bitwise(c);
  if (c.args.stream) {
    check_stream_semantics(c);
    check_no_blocking_host_function(c);
  }
  cuda(cudaStreamDestroy(c.stream), "cudaStreamDestroy");
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  Ctx c;
  MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c.size);
  c.checks.rank = c.rank;
  if (!parse_args(argc, argv, c.rank, c.args)) {
    MPI_Finalize();
    return 2;
  }
  if (const int skip = skip_without_gpu(c.rank); skip != 0) {
    MPI_Finalize();
    return skip;
  }
  try {
    run_checks(c);
  } catch (const std::exception& e) {
    fmt::print(stderr, "rank {}: error: {}\n", c.rank, e.what());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (c.rank == 0)
    fmt::print("hfreduce_gpu_test: {} passed, {} failed\n", c.checks.passed, c.checks.failed);
  const int exit_code = c.checks.failed == 0 ? 0 : 1;
  MPI_Finalize();
  return exit_code;
}
