// HFReduce library test under real mpirun: every type and op, counts from 0 to several chunks,
// in-place and out-of-place, sync and async, reduce and broadcast, results bitwise equal across
// ranks and across runs, two communicators alive at once, and (--big) more than 2^31 elements.
// Node layouts come from --ranks-per-node, the inter-node algorithm from --inter-node
// tree|ring|auto (auto with the link given as --link-latency US --link-gbps GBPS makes the model
// pick ring for some sizes and tree for others). Exit status 0 only when every check passed.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <mpi.h>

#include "ffb/numeric.h"
#include "ffb/validation.h"
#include "hfreduce/hfreduce.h"
#include "mpi_checks.h"

using ffb::test::Checks;
using ffb::test::fnv1a;
using ffb::test::same_on_all_ranks;

namespace {

// What the call must have run on: the node alone, the forced algorithm, or the model's choice.
hfreduce::Algorithm expected_algorithm(const hfreduce::Communicator& comm, std::size_t bytes) {
  if (comm.layout().nnodes < 2) return hfreduce::Algorithm::intra_node;
  switch (comm.options().inter_node) {
    case hfreduce::InterNode::tree:
      return hfreduce::Algorithm::tree;
    case hfreduce::InterNode::ring:
      return hfreduce::Algorithm::ring;
    case hfreduce::InterNode::automatic:
      break;
  }
  return comm.choose_inter_node(bytes);
}

}  // namespace

namespace {

struct Env {
  hfreduce::Communicator& comm;
  const hfreduce::Options& opt;
  Checks& checks;
  int rank, size;
};

// 1. Exact results for every type and op, many counts, both placements, sync and async.
void check_exact_results(Env& env) {
  std::set<std::string> used;  // the algorithms that carried the calls
  const auto& lay = env.comm.layout();
  auto& comm = env.comm;
  const auto& opt = env.opt;
  auto& checks = env.checks;
  const int rank = env.rank, size = env.size;
  static_cast<void>(comm), static_cast<void>(opt), static_cast<void>(checks);
  static_cast<void>(rank), static_cast<void>(size);
  const std::vector<std::size_t> counts{0, 1, 7, 63, 64, 65, 1003, 4096 * 3 + 17};
  for (auto t : ffb::kAllDataTypes) {
    for (auto op : ffb::kAllReduceOps) {
      const ffb::ExpectedResult expected(t, op, size);
      for (auto count : counts) {
        const std::size_t bytes = count * ffb::size_of(t);
        for (int mode = 0; mode < 4; ++mode) {  // bit 0: in place, bit 1: async
          const bool in_place = mode & 1, async = mode & 2;
          std::vector<unsigned char> send(bytes + 1), recv(bytes + 1, 0xA5);
          ffb::fill_pattern(in_place ? recv.data() : send.data(), t, op, size, rank, count);
          if (async) {
            auto req = comm.allreduce_async(in_place ? recv.data() : send.data(), recv.data(),
                                            count, t, op);
            req.wait();
          } else {
            comm.allreduce(in_place ? recv.data() : send.data(), recv.data(), count, t, op);
          }
          if (!async) {
            const auto algorithm = comm.last_stage_times().algorithm;
            if (count > 0) used.insert(hfreduce::name_of(algorithm));
            checks.expect(algorithm == expected_algorithm(comm, bytes),
                          fmt::format("count {} of {} ran on {}", count, ffb::name_of(t),
                                      hfreduce::name_of(algorithm)));
          }
          const auto wrong = expected.count_wrong(recv.data(), count);
          checks.expect(wrong == 0,
                        fmt::format("allreduce {} {} count {} {} {}: {} wrong", ffb::name_of(t),
                                    ffb::name_of(op), count, in_place ? "in-place" : "out-of-place",
                                    async ? "async" : "sync", wrong));
        }
      }
    }
  }

  if (rank == 0) {
    std::string list;
    for (const auto& u : used) list += " " + u;
    fmt::print("# algorithms used:{}\n", list);
  }
  // auto with a slow given link on 5 or more nodes (where the ring's 2(n-1) steps cost more
  // latency than the tree's 2 log2 n): small messages take the tree, large ones the ring.
  if (opt.inter_node == hfreduce::InterNode::automatic && opt.link.latency_us > 0 &&
      lay.nnodes >= 5)
    checks.expect(used.count("tree") == 1 && used.count("ring") == 1,
                  "auto picked both tree and ring across the sizes");
}

// 2. Random data: bitwise the same on every rank, and the same on a second run.
void check_bitwise_reproducible(Env& env) {
  auto& comm = env.comm;
  const auto& opt = env.opt;
  auto& checks = env.checks;
  const int rank = env.rank, size = env.size;
  static_cast<void>(comm), static_cast<void>(opt), static_cast<void>(checks);
  static_cast<void>(rank), static_cast<void>(size);
  for (auto t : {ffb::DataType::f32, ffb::DataType::f16, ffb::DataType::bf16, ffb::DataType::f8e4m3,
                 ffb::DataType::f64}) {
    const std::size_t count = 4096 * 5 + 333;
    std::vector<unsigned char> send(count * ffb::size_of(t)), a(send.size()), b(send.size());
    std::mt19937_64 rng(1234 + rank);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (std::size_t j = 0; j < count; ++j) ffb::store_from_double(send.data(), t, j, normal(rng));
    comm.allreduce(send.data(), a.data(), count, t, ffb::ReduceOp::sum);
    comm.allreduce(send.data(), b.data(), count, t, ffb::ReduceOp::sum);
    const auto ha = fnv1a(a.data(), a.size());
    checks.expect(same_on_all_ranks(ha),
                  fmt::format("{} sum bitwise equal across ranks", ffb::name_of(t)));
    checks.expect(ha == fnv1a(b.data(), b.size()),
                  fmt::format("{} sum bitwise equal across two runs", ffb::name_of(t)));
  }
}

// 3. Several asynchronous operations in flight complete in order and correctly.
void check_queued_async(Env& env) {
  auto& comm = env.comm;
  const auto& opt = env.opt;
  auto& checks = env.checks;
  const int rank = env.rank, size = env.size;
  static_cast<void>(comm), static_cast<void>(opt), static_cast<void>(checks);
  static_cast<void>(rank), static_cast<void>(size);
  {
    const std::size_t count = 20000;
    const ffb::ExpectedResult expected(ffb::DataType::f32, ffb::ReduceOp::sum, size);
    std::vector<std::vector<unsigned char>> bufs(4, std::vector<unsigned char>(count * 4));
    std::vector<hfreduce::Request> reqs;
    for (auto& buf : bufs) {
      ffb::fill_pattern(buf.data(), ffb::DataType::f32, ffb::ReduceOp::sum, size, rank, count);
      reqs.push_back(comm.allreduce_async(buf.data(), buf.data(), count, ffb::DataType::f32,
                                          ffb::ReduceOp::sum));
    }
    for (auto& r : reqs) r.wait();
    for (auto& buf : bufs)
      checks.expect(expected.count_wrong(buf.data(), count) == 0, "queued async allreduce");
  }
}

// 4. Reduce to a root and broadcast from a root, every root.
void check_reduce_and_broadcast(Env& env) {
  auto& comm = env.comm;
  const auto& opt = env.opt;
  auto& checks = env.checks;
  const int rank = env.rank, size = env.size;
  static_cast<void>(comm), static_cast<void>(opt), static_cast<void>(checks);
  static_cast<void>(rank), static_cast<void>(size);
  for (int root = 0; root < size; ++root) {
    const std::size_t count = 9000;
    const ffb::ExpectedResult expected(ffb::DataType::i32, ffb::ReduceOp::max, size);
    std::vector<unsigned char> send(count * 4), recv(count * 4, 0);
    ffb::fill_pattern(send.data(), ffb::DataType::i32, ffb::ReduceOp::max, size, rank, count);
    comm.reduce(send.data(), recv.data(), count, ffb::DataType::i32, ffb::ReduceOp::max, root);
    if (rank == root)
      checks.expect(expected.count_wrong(recv.data(), count) == 0, "reduce at root");
    else
      checks.expect(std::all_of(recv.begin(), recv.end(), [](unsigned char c) { return c == 0; }),
                    "reduce leaves non-root buffers untouched");
    std::vector<unsigned char> data(12345);
    for (std::size_t i = 0; i < data.size(); ++i)
      data[i] = rank == root ? static_cast<unsigned char>(i * 7 + root) : 0xEE;
    comm.broadcast(data.data(), data.size(), root);
    bool ok = true;
    for (std::size_t i = 0; i < data.size(); ++i)
      ok = ok && data[i] == static_cast<unsigned char>(i * 7 + root);
    checks.expect(ok, fmt::format("broadcast from root {}", root));
  }
}

// 5. Two communicators alive at once, used alternately.
void check_two_communicators(Env& env) {
  auto& comm = env.comm;
  const auto& opt = env.opt;
  auto& checks = env.checks;
  const int rank = env.rank, size = env.size;
  static_cast<void>(comm), static_cast<void>(opt), static_cast<void>(checks);
  static_cast<void>(rank), static_cast<void>(size);
  {
    hfreduce::Options other = opt;
    other.ranks_per_node = 0;
    other.chunk_bytes = 8192;
    hfreduce::Communicator second(MPI_COMM_WORLD, other);
    const std::size_t count = 30000;
    const ffb::ExpectedResult expected(ffb::DataType::f64, ffb::ReduceOp::sum, size);
    for (int i = 0; i < 3; ++i) {
      std::vector<unsigned char> x(count * 8), y(count * 8);
      ffb::fill_pattern(x.data(), ffb::DataType::f64, ffb::ReduceOp::sum, size, rank, count);
      ffb::fill_pattern(y.data(), ffb::DataType::f64, ffb::ReduceOp::sum, size, rank, count);
      auto req =
          second.allreduce_async(y.data(), y.data(), count, ffb::DataType::f64, ffb::ReduceOp::sum);
      comm.allreduce(x.data(), x.data(), count, ffb::DataType::f64, ffb::ReduceOp::sum);
      req.wait();
      checks.expect(
          expected.count_wrong(x.data(), count) == 0 && expected.count_wrong(y.data(), count) == 0,
          "two communicators at once");
    }
  }
}

// 6. The small-message paths for every type and op, exact: the shared-memory exchange on one node
// (fp8 from 512 B with the reduction split over the ranks; MPI across nodes) and, with small_path
// mpi, MPI_Allreduce (fp16, bf16, fp8 through user-defined ops); in and out of place, count 0, and
// alternating with pipeline calls (the two share nothing but the call order).
void check_fast_path(Env& env) {
  const int rank = env.rank, size = env.size;
  for (auto path : {hfreduce::SmallPath::automatic, hfreduce::SmallPath::mpi}) {
    hfreduce::Options small = env.opt;
    small.fallback_bytes = 64 << 10;
    small.small_path = path;
    hfreduce::Communicator fast(MPI_COMM_WORLD, small);
    const bool shm = path == hfreduce::SmallPath::automatic && fast.layout().nnodes == 1;
    const auto want = shm ? hfreduce::Algorithm::shm : hfreduce::Algorithm::mpi;
    for (auto t : ffb::kAllDataTypes)
      for (auto op : ffb::kAllReduceOps) {
        const ffb::ExpectedResult expected(t, op, size);
        // 511, 512, 1003: fp8's exchange just below its split, at it and with uneven slices
        for (std::size_t count :
             {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{511}, std::size_t{512},
              std::size_t{1003}, std::size_t{3001}, (std::size_t{40} << 10) / ffb::size_of(t)}) {
          std::vector<unsigned char> send(count * ffb::size_of(t)), recv(send.size());
          ffb::fill_pattern(send.data(), t, op, size, rank, count);
          const bool in_place = count % 2 == 1;
          if (in_place) recv = send;
          fast.allreduce(in_place ? recv.data() : send.data(), recv.data(), count, t, op);
          const auto& st = fast.last_stage_times();
          env.checks.expect(
              st.used_fallback && st.algorithm == want &&
                  expected.count_wrong(recv.data(), count) == 0,
              fmt::format("small path {} ({}) {} {} count {}{}", hfreduce::name_of(want),
                          hfreduce::name_of(path), ffb::name_of(t), ffb::name_of(op), count,
                          in_place ? " in place" : ""));
        }
        // A pipeline call in between: the small path's slots and sequence are its own.
        const std::size_t big = (std::size_t{96} << 10) / ffb::size_of(t);
        std::vector<unsigned char> send(big * ffb::size_of(t)), recv(send.size());
        ffb::fill_pattern(send.data(), t, op, size, rank, big);
        fast.allreduce(send.data(), recv.data(), big, t, op);
        env.checks.expect(
            !fast.last_stage_times().used_fallback && expected.count_wrong(recv.data(), big) == 0,
            fmt::format("pipeline between small calls {} {}", ffb::name_of(t), ffb::name_of(op)));
      }
  }
}

// 6a. fp8 takes the shared-memory exchange (split) up to kFp8SmallShmBytes on one node, above the
// default fallback_bytes; other types and larger fp8 messages take the pipeline. Exact throughout.
void check_fp8_small_path(Env& env) {
  hfreduce::Options o = env.opt;
  o.fallback_bytes = hfreduce::kDefaultFallbackBytes;
  hfreduce::Communicator c(MPI_COMM_WORLD, o);
  const bool one_node = c.layout().nnodes == 1;
  const std::size_t limit = hfreduce::kFp8SmallShmBytes;
  struct Case {
    ffb::DataType type;
    std::size_t count;
    bool shm;
  };
  const Case cases[] = {{ffb::DataType::f8e4m3, 16 << 10, one_node},
                        {ffb::DataType::f8e5m2, 40001, one_node},
                        {ffb::DataType::f8e4m3, limit, one_node},
                        {ffb::DataType::f8e5m2, limit + 1, false},
                        {ffb::DataType::f32, 8 << 10, false}};
  for (const auto& k : cases)
    for (auto op : ffb::kAllReduceOps) {
      const ffb::ExpectedResult expected(k.type, op, env.size);
      std::vector<unsigned char> send(k.count * ffb::size_of(k.type)), recv(send.size());
      ffb::fill_pattern(send.data(), k.type, op, env.size, env.rank, k.count);
      c.allreduce(send.data(), recv.data(), k.count, k.type, op);
      const bool shm = c.last_stage_times().algorithm == hfreduce::Algorithm::shm;
      env.checks.expect(shm == k.shm && expected.count_wrong(recv.data(), k.count) == 0,
                        fmt::format("fp8 small path: {} {} count {} {}", ffb::name_of(k.type),
                                    ffb::name_of(op), k.count, k.shm ? "shm" : "pipeline"));
    }
}

// 6b. A peer that never arrives: the shared-memory small path gives up after timeout_s with
// Error(timeout) naming the local rank it waited for (one node, 2+ ranks; rank 0 calls alone).
void check_small_path_timeout(Env& env) {
  hfreduce::Options small = env.opt;
  small.timeout_s = 0.3;
  small.fallback_bytes = hfreduce::kDefaultFallbackBytes;
  hfreduce::Communicator lonely(MPI_COMM_WORLD, small);
  if (lonely.layout().nnodes != 1 || env.size < 2) return;
  bool ok = true;
  std::string what;
  if (env.rank == 0) {
    double x = 1;
    hfreduce::Status status = hfreduce::Status::ok;
    try {
      lonely.allreduce(&x, &x, 1, ffb::DataType::f64, ffb::ReduceOp::sum);
    } catch (const hfreduce::Error& e) {
      status = e.status();
      what = e.what();
    }
    ok = status == hfreduce::Status::timeout && what.find("small allreduce") != std::string::npos &&
         what.find("waiting for local rank 1") != std::string::npos;
  }
  env.checks.expect(ok, "small path timeout names the missing rank: " + what);  // collective
}

// 7. More than 2^31 elements (uint8 sum), when asked for: sizes are size_t throughout.
void check_big_count(Env& env) {
  auto& comm = env.comm;
  const auto& opt = env.opt;
  auto& checks = env.checks;
  const int rank = env.rank, size = env.size;
  static_cast<void>(comm), static_cast<void>(opt), static_cast<void>(checks);
  static_cast<void>(rank), static_cast<void>(size);
  {
    hfreduce::Options large = opt;
    large.chunk_bytes = 4u << 20;
    hfreduce::Communicator bigcomm(MPI_COMM_WORLD, large);
    const std::size_t count = (1ull << 31) + 4099;
    std::vector<unsigned char> buf(count);
    for (std::size_t j = 0; j < count; j += 4096) buf[j] = 1;
    buf[count - 1] = static_cast<unsigned char>(rank + 1);
    bigcomm.allreduce(buf.data(), buf.data(), count, ffb::DataType::u8, ffb::ReduceOp::sum);
    bool ok = buf[count - 1] == static_cast<unsigned char>(size * (size + 1) / 2);
    for (std::size_t j = 0; j < count - 1 && ok; j += 4096) ok = buf[j] == size;
    checks.expect(ok, "allreduce of 2^31 + 4099 uint8 elements");
  }
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int rpn = 0;
  bool big = false;
  hfreduce::Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ranks-per-node" && i + 1 < argc) rpn = std::atoi(argv[++i]);
    if (a == "--big") big = true;
    if (a == "--inter-node" && i + 1 < argc) {
      const std::string v = argv[++i];
      opt.inter_node = v == "tree"   ? hfreduce::InterNode::tree
                       : v == "ring" ? hfreduce::InterNode::ring
                                     : hfreduce::InterNode::automatic;
    }
    if (a == "--link-latency" && i + 1 < argc) opt.link.latency_us = std::atof(argv[++i]);
    if (a == "--link-gbps" && i + 1 < argc) opt.link.gbps = std::atof(argv[++i]);
  }
  Checks checks;
  checks.rank = rank;
  int rc = 0;
  try {
    opt.chunk_bytes = 4096;  // many chunks from small messages
    opt.fallback_bytes = 0;  // every size through the pipeline (section 6 tests the fast path)
    opt.pipeline_depth = 3;
    opt.ranks_per_node = rpn;
    opt.timeout_s = 60;
    hfreduce::Communicator comm(MPI_COMM_WORLD, opt);
    const auto& lay = comm.layout();
    if (rank == 0)
      fmt::print("# {} ranks, {} nodes (--ranks-per-node {}), chunk {} B, inter-node {}\n", size,
                 lay.nnodes, rpn, opt.chunk_bytes, hfreduce::name_of(opt.inter_node));

    Env env{comm, opt, checks, rank, size};
    check_exact_results(env);
    check_bitwise_reproducible(env);
    check_queued_async(env);
    check_reduce_and_broadcast(env);
    check_two_communicators(env);
    check_fast_path(env);
    check_fp8_small_path(env);
    check_small_path_timeout(env);
    if (big) check_big_count(env);
  } catch (const hfreduce::Error& e) {
    fmt::print(stderr, "rank {}: hfreduce error ({}): {}\n", rank, hfreduce::name_of(e.status()),
               e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank == 0)
    fmt::print("hfreduce_api_test: {} passed, {} failed\n", checks.passed, checks.failed);
  rc = checks.failed == 0 ? 0 : 1;
  MPI_Finalize();
  return rc;
}
