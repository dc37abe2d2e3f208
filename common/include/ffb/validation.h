// Inputs crafted so that every type, op and rank count has an exact expected result
// (small integers whose sums and products stay inside the type's exactly-representable range).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ffb/numeric.h"

namespace ffb {

// The value rank `rank` of `nranks` contributes at element j, for (type, op).
double pattern_value(DataType t, ReduceOp op, int nranks, int rank, std::size_t j);

// Expected allreduce results. They depend on j only through j % period(), so they are tabulated
// once (O(nranks x period)) and checked bitwise against the result buffer.
class ExpectedResult {
 public:
  ExpectedResult(DataType t, ReduceOp op, int nranks);
  std::size_t period() const { return period_; }
  double value(std::size_t j) const { return values_[j % period_]; }
  // Elements of `result` (count elements of the type) whose bytes differ from the expectation.
  std::size_t count_wrong(const void* result, std::size_t count) const;

 private:
  DataType type_;
  std::size_t period_ = 1;
  std::vector<double> values_;
  std::vector<unsigned char> bytes_;  // period_ encoded elements
};

// Fills `count` elements for this rank.
void fill_pattern(void* buf, DataType t, ReduceOp op, int nranks, int rank, std::size_t count);

// avg as the suite defines it for every backend: the sum, then one division by nranks in fp32
// (fp64 for double) rounded once to the type; integer types divide truncating toward zero.
double average_of_sum(DataType t, double sum, int nranks);

}  // namespace ffb
