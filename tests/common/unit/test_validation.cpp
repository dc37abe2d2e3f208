// The validation patterns must give exact results for every type, op and rank count 1..64,
// whatever order a backend reduces in: reduce in the type's own arithmetic (rounding after every
// step, as MPI does pairwise) forwards and backwards, and compare bitwise with the expectation.
#include <algorithm>
#include <vector>

#include <gtest/gtest.h>

#include "ffb/numeric.h"
#include "ffb/validation.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;

// One pairwise step in the type's arithmetic: convert, apply, round back to the type.
double step(DataType t, ReduceOp op, double a, double b) {
  double r = 0;
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg:
      r = a + b;
      break;
    case ReduceOp::prod:
      r = a * b;
      break;
    case ReduceOp::max:
      r = std::max(a, b);
      break;
    case ReduceOp::min:
      r = std::min(a, b);
      break;
  }
  unsigned char buf[8];
  ffb::store_from_double(buf, t, 0, r);
  return ffb::load_as_double(buf, t, 0);
}

TEST(ValidationPatterns, ExactForEveryTypeOpAndRankCountInAnyOrder) {
  for (auto t : ffb::kAllDataTypes) {
    for (auto op : ffb::kAllReduceOps) {
      for (int n = 1; n <= 64; ++n) {
        const ffb::ExpectedResult expected(t, op, n);
        const std::size_t count = 2 * expected.period() + 5;
        std::vector<unsigned char> forward(count * ffb::size_of(t)), backward(forward.size());
        for (std::size_t j = 0; j < count; ++j) {
          std::vector<double> v(n);
          for (int r = 0; r < n; ++r) {
            v[r] = ffb::pattern_value(t, op, n, r, j);
            unsigned char b[8];  // every input must be representable in the type
            ffb::store_from_double(b, t, 0, v[r]);
            ASSERT_EQ(ffb::load_as_double(b, t, 0), v[r])
                << ffb::name_of(t) << " " << ffb::name_of(op) << " n=" << n;
          }
          double fwd = v[0], bwd = v[n - 1];
          for (int r = 1; r < n; ++r) fwd = step(t, op, fwd, v[r]);
          for (int r = n - 2; r >= 0; --r) bwd = step(t, op, bwd, v[r]);
          if (op == ReduceOp::avg) {
            fwd = ffb::average_of_sum(t, fwd, n);
            bwd = ffb::average_of_sum(t, bwd, n);
          }
          ffb::store_from_double(forward.data(), t, j, fwd);
          ffb::store_from_double(backward.data(), t, j, bwd);
          ASSERT_EQ(ffb::load_as_double(forward.data(), t, j), expected.value(j))
              << ffb::name_of(t) << " " << ffb::name_of(op) << " n=" << n << " j=" << j;
        }
        ASSERT_EQ(expected.count_wrong(forward.data(), count), 0u)
            << ffb::name_of(t) << " " << ffb::name_of(op) << " n=" << n;
        ASSERT_EQ(expected.count_wrong(backward.data(), count), 0u)
            << ffb::name_of(t) << " " << ffb::name_of(op) << " n=" << n;
      }
    }
  }
}

TEST(ValidationPatterns, ResultsAreNotTrivial) {
  // A check that cannot fail is a defect: the expected values must vary across elements, and a
  // result missing one rank's contribution must be caught.
  for (auto t : {DataType::f32, DataType::bf16, DataType::u8, DataType::f8e4m3}) {
    for (auto op : {ReduceOp::sum, ReduceOp::max, ReduceOp::prod}) {
      const int n = 4;
      const ffb::ExpectedResult expected(t, op, n);
      const std::size_t count = 3 * expected.period();
      std::vector<unsigned char> partial(count * ffb::size_of(t));
      // Reduce only ranks 0..n-2 (a backend that forgot the last rank).
      for (std::size_t j = 0; j < count; ++j) {
        double acc = ffb::pattern_value(t, op, n, 0, j);
        for (int r = 1; r < n - 1; ++r) acc = step(t, op, acc, ffb::pattern_value(t, op, n, r, j));
        ffb::store_from_double(partial.data(), t, j, acc);
      }
      EXPECT_GT(expected.count_wrong(partial.data(), count), 0u)
          << ffb::name_of(t) << " " << ffb::name_of(op);
      std::vector<double> distinct;
      for (std::size_t j = 0; j < expected.period(); ++j) distinct.push_back(expected.value(j));
      std::sort(distinct.begin(), distinct.end());
      EXPECT_GT(std::unique(distinct.begin(), distinct.end()) - distinct.begin(), 1)
          << ffb::name_of(t) << " " << ffb::name_of(op);
    }
  }
}

TEST(ValidationPatterns, FillMatchesPatternValue) {
  for (auto t : ffb::kAllDataTypes) {
    const std::size_t count = 1000;
    std::vector<unsigned char> buf(count * ffb::size_of(t));
    ffb::fill_pattern(buf.data(), t, ReduceOp::sum, 5, 3, count);
    for (std::size_t j = 0; j < count; ++j)
      ASSERT_EQ(ffb::load_as_double(buf.data(), t, j),
                ffb::pattern_value(t, ReduceOp::sum, 5, 3, j));
  }
}

}  // namespace
