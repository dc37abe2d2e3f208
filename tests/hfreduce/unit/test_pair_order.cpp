// The NVLink-pair stage's order against the host path, on the CPU: the pair step is emulated with
// kernels::combine (the pair kernel repeats its arithmetic: gpu/pair_kernels.h; the GPU run checks
// that part on hardware), the host stage with kernels::reduce over the L/2 pair results, avg with
// the single-input division the pair stage does at the end. Integer types (every op) and max/min
// must equal the host path bit for bit; floating sum, prod and avg must stay within
// gpu::pair_tolerance (docs/gpu.md, "NVLink pairs: order and tolerance"), and do differ in rounding
// (the documentation says they are not bit-identical; this checks it is so).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ffb/numeric.h"
#include "gpu/pair_logic.h"
#include "reduce_kernels.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;
namespace gpu = hfreduce::gpu;
namespace kernels = hfreduce::kernels;

constexpr std::size_t kCount = 4099;

using Buffer = std::vector<unsigned char>;

std::vector<Buffer> random_inputs(DataType t, ReduceOp op, int ranks, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const std::size_t es = ffb::size_of(t);
  std::vector<Buffer> in(static_cast<std::size_t>(ranks), Buffer(kCount * es));
  for (auto& b : in) {
    if (!ffb::is_floating(t)) {
      for (auto& byte : b) byte = static_cast<unsigned char>(rng());
      continue;
    }
    for (std::size_t i = 0; i < kCount; ++i)
      ffb::store_from_double(b.data(), t, i,
                             op == ReduceOp::prod ? 1.0 + 0.05 * normal(rng) : normal(rng));
  }
  if (ffb::is_floating(t) && ranks >= 2) {
    // Ties and specials in the first elements: +0/-0 (max/min keep the first), NaN, infinities.
    ffb::store_from_double(in[0].data(), t, 0, 0.0);
    ffb::store_from_double(in[1].data(), t, 0, -0.0);
    ffb::store_from_double(in[0].data(), t, 1, -0.0);
    ffb::store_from_double(in[1].data(), t, 1, 0.0);
    ffb::store_from_double(in[static_cast<std::size_t>(ranks) - 1].data(), t, 2,
                           std::numeric_limits<double>::quiet_NaN());
    if (ranks >= 4) {  // a tie across pairs: ranks 1 and 2 hold the node's largest value
      for (int r = 0; r < ranks; ++r) ffb::store_from_double(in[r].data(), t, 3, -1.0 - r);
      ffb::store_from_double(in[1].data(), t, 3, 0.0);
      ffb::store_from_double(in[2].data(), t, 3, -0.0);
    }
  }
  return in;
}

std::vector<const void*> pointers(const std::vector<Buffer>& v) {
  std::vector<const void*> p;
  for (const auto& b : v) p.push_back(b.data());
  return p;
}

Buffer host_path(DataType t, ReduceOp op, const std::vector<Buffer>& in) {
  Buffer out(kCount * ffb::size_of(t));
  const auto p = pointers(in);
  kernels::reduce(t, op, p.data(), static_cast<int>(p.size()), out.data(), kCount,
                  static_cast<double>(in.size()));
  return out;
}

// The pair stage on one node: pair k = ranks (2k, 2k+1) combines position 0's value first, the
// host stage reduces the pairs' results left to right, avg divides once at the end.
Buffer pair_path(DataType t, ReduceOp op, const std::vector<Buffer>& in) {
  const ReduceOp pair_op = op == ReduceOp::avg ? ReduceOp::sum : op;
  const std::size_t es = ffb::size_of(t);
  std::vector<Buffer> pairs(in.size() / 2, Buffer(kCount * es));
  for (std::size_t k = 0; k < pairs.size(); ++k)
    kernels::combine(t, pair_op, in[2 * k].data(), in[2 * k + 1].data(), pairs[k].data(), kCount);
  Buffer out(kCount * es);
  const auto p = pointers(pairs);
  kernels::reduce(t, pair_op, p.data(), static_cast<int>(p.size()), out.data(), kCount);
  if (op == ReduceOp::avg) {
    const void* one[1] = {out.data()};
    kernels::reduce(t, ReduceOp::avg, one, 1, out.data(), kCount, static_cast<double>(in.size()));
  }
  return out;
}

gpu::InputMagnitude magnitude(DataType t, const std::vector<Buffer>& in, std::size_t i) {
  gpu::InputMagnitude m;
  for (const auto& b : in) {
    const double v = std::fabs(ffb::load_as_double(b.data(), t, i));
    m.sum_abs += v;
    m.prod_abs *= v;
    m.prod_max1 *= std::max(1.0, v);
  }
  return m;
}

struct Comparison {
  std::size_t different = 0;     // elements whose bits differ
  std::size_t outside = 0;       // beyond pair_tolerance
  std::size_t beyond_tight = 0;  // beyond a hundredth of it (the bound is not vacuous)
  std::size_t unbounded = 0;     // pair_tolerance is infinite (fp8 on many ranks)
};

Comparison compare(DataType t, ReduceOp op, const std::vector<Buffer>& in, const Buffer& host,
                   const Buffer& pair) {
  Comparison c;
  const std::size_t es = ffb::size_of(t);
  const int ranks = static_cast<int>(in.size());
  for (std::size_t i = 0; i < kCount; ++i) {
    if (std::memcmp(host.data() + i * es, pair.data() + i * es, es) == 0) continue;
    ++c.different;
    const double h = ffb::load_as_double(host.data(), t, i);
    const double p = ffb::load_as_double(pair.data(), t, i);
    const double tol = gpu::pair_tolerance(t, op, ranks, magnitude(t, in, i));
    if (std::isinf(tol)) {
      ++c.unbounded;
      continue;
    }
    const double diff = std::fabs(p - h);
    if (!(diff <= tol)) ++c.outside;
    if (!(diff <= tol / 100)) ++c.beyond_tight;
  }
  return c;
}

std::string name(DataType t, ReduceOp op, int ranks) {
  return std::string(ffb::name_of(t)) + " " + std::string(ffb::name_of(op)) + " on " +
         std::to_string(ranks) + " ranks";
}

TEST(PairOrder, ExactTypesAndOpsAreBitIdentical) {
  for (int ranks : {2, 4, 8})
    for (auto t : ffb::kAllDataTypes)
      for (auto op : ffb::kAllReduceOps) {
        if (!gpu::pair_exact(t, op)) continue;
        const auto in =
            random_inputs(t, op, ranks,
                          7919u * static_cast<unsigned>(ranks) + 31u * static_cast<unsigned>(t) +
                              static_cast<unsigned>(op));
        const Buffer host = host_path(t, op, in), pair = pair_path(t, op, in);
        EXPECT_EQ(std::memcmp(host.data(), pair.data(), host.size()), 0) << name(t, op, ranks);
      }
}

TEST(PairOrder, FloatingSumProdAvgStayWithinTheTolerance) {
  for (int ranks : {2, 4, 8})
    for (auto t : ffb::kAllDataTypes)
      for (auto op : {ReduceOp::sum, ReduceOp::prod, ReduceOp::avg}) {
        if (gpu::pair_exact(t, op)) continue;
        const auto in =
            random_inputs(t, op, ranks,
                          104729u * static_cast<unsigned>(ranks) + 37u * static_cast<unsigned>(t) +
                              static_cast<unsigned>(op));
        const auto c = compare(t, op, in, host_path(t, op, in), pair_path(t, op, in));
        EXPECT_EQ(c.outside, 0u) << name(t, op, ranks) << ": " << c.outside << " of " << c.different
                                 << " differing elements beyond the bound";
      }
}

TEST(PairOrder, RegroupingReallyChangesRoundingAndTheBoundDiscriminates) {
  // bf16 sum on 4 ranks: (a0 + a1) + (a2 + a3), rounded to bf16 after each pair, is not
  // ((a0 + a1) + a2) + a3 rounded once: many elements differ by a bf16 ulp or more, far more than a
  // hundredth of the bound allows, none more than the bound.
  const auto in = random_inputs(DataType::bf16, ReduceOp::sum, 4, 1);
  const auto c =
      compare(DataType::bf16, ReduceOp::sum, in, host_path(DataType::bf16, ReduceOp::sum, in),
              pair_path(DataType::bf16, ReduceOp::sum, in));
  EXPECT_GT(c.different, kCount / 10);
  EXPECT_GT(c.beyond_tight, 0u);
  EXPECT_EQ(c.outside, 0u);
  // Two ranks: the pair's one combine is the host path's whole node reduce, bit for bit.
  for (auto t : {DataType::f32, DataType::f16, DataType::bf16, DataType::f8e4m3})
    for (auto op : {ReduceOp::sum, ReduceOp::prod}) {
      const auto two = random_inputs(t, op, 2, 5);
      EXPECT_EQ(compare(t, op, two, host_path(t, op, two), pair_path(t, op, two)).different, 0u)
          << name(t, op, 2);
    }
}

TEST(PairOrder, ToleranceIsTheDocumentedBound) {
  gpu::InputMagnitude mag;
  mag.sum_abs = 10.0;
  mag.prod_abs = 2.0;
  mag.prod_max1 = 3.0;
  const double u = 0x1p-24, eta = 0x1p-150;
  const double g4 = 4 * u / (1 - 4 * u);  // f32 sum on 2 ranks: m = 4, k = 6
  EXPECT_DOUBLE_EQ(gpu::pair_tolerance(DataType::f32, ReduceOp::sum, 2, mag),
                   2 * (g4 * 10.0 + 6 * eta * (1 + g4)));
  const double g6 = 6 * u / (1 - 6 * u);  // avg: m = 6, k = 8, the sum part over n
  EXPECT_DOUBLE_EQ(gpu::pair_tolerance(DataType::f32, ReduceOp::avg, 2, mag),
                   2 * (g6 * 10.0 / 2 + 8 * eta * (1 + g6)));
  const double g6p = 6 * u / (1 - 6 * u);  // prod: m = k = 6
  EXPECT_DOUBLE_EQ(gpu::pair_tolerance(DataType::f32, ReduceOp::prod, 2, mag),
                   2 * (g6p * 2.0 + 6 * eta * (1 + g6p) * 3.0));
  EXPECT_EQ(gpu::pair_tolerance(DataType::i32, ReduceOp::sum, 8, mag), 0.0);
  EXPECT_EQ(gpu::pair_tolerance(DataType::f16, ReduceOp::max, 8, mag), 0.0);
  // e5m2 (u = 1/8) on 4 ranks: m u = 1, no bound is claimed.
  EXPECT_TRUE(std::isinf(gpu::pair_tolerance(DataType::f8e5m2, ReduceOp::sum, 4, mag)));
  EXPECT_TRUE(std::isfinite(gpu::pair_tolerance(DataType::f8e5m2, ReduceOp::sum, 2, mag)));
  EXPECT_LT(gpu::pair_tolerance(DataType::f32, ReduceOp::sum, 2, mag),
            gpu::pair_tolerance(DataType::f32, ReduceOp::sum, 8, mag));
  EXPECT_EQ(gpu::underflow_error(DataType::f16), 0x1p-25);
  EXPECT_EQ(gpu::underflow_error(DataType::u8), 0.0);
}

}  // namespace
