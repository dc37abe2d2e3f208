#include "ffb/validation.h"

#include <cmath>
#include <cstring>
#include <numeric>

namespace ffb {

namespace {

// sum/avg: dense values in [0, K) when n*(K-1) fits the exact range, else one non-zero rank per
// element (the sparse pattern) so that even fp8 with 64 ranks stays exact.
int dense_sum_levels(DataType t, int nranks) {
  const double limit = exact_integer_limit(t);
  for (int k : {8, 4, 2})
    if (static_cast<double>(nranks) * (k - 1) <= limit) return k;
  return 0;  // sparse
}

int minmax_levels(DataType t) { return static_cast<int>(std::min(61.0, exact_integer_limit(t))); }

std::size_t pattern_period(DataType t, ReduceOp op, int nranks) {
  const auto n = static_cast<std::size_t>(nranks);
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: {
      const int k = dense_sum_levels(t, nranks);
      return k > 0 ? static_cast<std::size_t>(k) : std::lcm(n, std::size_t{3});
    }
    case ReduceOp::prod:
      return std::lcm(n, std::size_t{3});
    case ReduceOp::max:
    case ReduceOp::min:
      return static_cast<std::size_t>(minmax_levels(t));
  }
  return 1;
}

}  // namespace

double pattern_value(DataType t, ReduceOp op, int nranks, int rank, std::size_t j) {
  const auto r = static_cast<std::size_t>(rank);
  const auto n = static_cast<std::size_t>(nranks);
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg: {
      const int k = dense_sum_levels(t, nranks);
      // Rank 0 differs from the shifted sequence of the others so that the sum is never constant
      // over j (a plain (j + r) % k sums to a constant whenever k divides n).
      if (k > 0) return static_cast<double>((r == 0 ? 2 * j : j + r) % static_cast<std::size_t>(k));
      return (r + j) % n == 0 ? static_cast<double>(j % 3 + 1) : 0.0;
    }
    case ReduceOp::prod:
      // At most one factor 2 and one factor -1 or 3 per element: products stay in {2, -2, 6}.
      if ((r + j) % n == 0) return 2.0;
      if (n > 1 && (r + j) % n == 1 && j % 3 == 0) return is_signed(t) ? -1.0 : 1.0;
      if (n > 1 && (r + j) % n == 1 && j % 3 == 1) return 3.0;
      return 1.0;
    case ReduceOp::max:
    case ReduceOp::min: {
      const auto m = static_cast<std::size_t>(minmax_levels(t));
      const double v = static_cast<double>((r * 7 + j * 3) % m);
      return is_signed(t) ? v - static_cast<double>(m / 2) : v;
    }
  }
  return 0.0;
}

double average_of_sum(DataType t, double sum, int nranks) {
  if (!is_floating(t)) return std::trunc(sum / nranks);
  if (t == DataType::f64) return sum / nranks;
  return static_cast<double>(static_cast<float>(sum) / static_cast<float>(nranks));
}

ExpectedResult::ExpectedResult(DataType t, ReduceOp op, int nranks)
    : type_(t), period_(pattern_period(t, op, nranks)) {
  values_.resize(period_);
  bytes_.resize(period_ * size_of(t));
  for (std::size_t j = 0; j < period_; ++j) {
    double acc = pattern_value(t, op, nranks, 0, j);
    for (int r = 1; r < nranks; ++r) {
      const double v = pattern_value(t, op, nranks, r, j);
      switch (op) {
        case ReduceOp::sum:
        case ReduceOp::avg:
          acc += v;
          break;
        case ReduceOp::prod:
          acc *= v;
          break;
        case ReduceOp::max:
          acc = std::max(acc, v);
          break;
        case ReduceOp::min:
          acc = std::min(acc, v);
          break;
      }
    }
    if (op == ReduceOp::avg) acc = average_of_sum(t, acc, nranks);
    store_from_double(bytes_.data(), t, j, acc);
    values_[j] = load_as_double(bytes_.data(), t, j);  // the value as the type holds it
  }
}

std::size_t ExpectedResult::count_wrong(const void* result, std::size_t count) const {
  const std::size_t es = size_of(type_);
  const auto* res = static_cast<const unsigned char*>(result);
  std::size_t wrong = 0;
  std::size_t phase = 0;
  for (std::size_t j = 0; j < count; ++j) {
    wrong += std::memcmp(res + j * es, bytes_.data() + phase * es, es) != 0 ? 1 : 0;
    if (++phase == period_) phase = 0;
  }
  return wrong;
}

void fill_pattern(void* buf, DataType t, ReduceOp op, int nranks, int rank, std::size_t count) {
  // Tabulate one period, then tile it: the pattern is periodic in j for every (type, op).
  const std::size_t period = pattern_period(t, op, nranks);
  const std::size_t es = size_of(t);
  std::vector<unsigned char> tile(period * es);
  for (std::size_t j = 0; j < period; ++j)
    store_from_double(tile.data(), t, j, pattern_value(t, op, nranks, rank, j));
  auto* out = static_cast<unsigned char*>(buf);
  for (std::size_t j = 0; j < count; j += period) {
    const std::size_t n = std::min(period, count - j);
    std::memcpy(out + j * es, tile.data(), n * es);
  }
}

}  // namespace ffb
