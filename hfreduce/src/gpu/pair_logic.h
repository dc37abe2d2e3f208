// The host-side logic of the NVLink-pair stage (pair_stage.cpp) in plain C++, so CI can unit-test
// it without a GPU (tests/hfreduce/unit/test_gpu_stage_logic.cpp): who pairs with whom, how a
// message is split between the two GPUs of a pair, and how far the pair's result may differ from
// the host path's (docs/gpu.md, "NVLink pairs: order and tolerance").
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "ffb/numeric.h"

namespace hfreduce::gpu {

// How a rank takes part in the pair stage. Local ranks (2k, 2k+1) of a node form a pair;
// position 0 keeps the first half of each message, position 1 the second.
struct PairPlan {
  bool ok = false;
  int partner_local = -1;  // local rank of the partner
  int position = 0;        // 0 or 1
  std::string reason;      // why not ok (one line, names the ranks and GPUs)
};

// bus_of_local: the PCI bus id of each local rank's GPU (same string = same GPU).
// can_access(a, b): peer access from GPU a to GPU b (both directions are asked).
// allow_same_device: pair two ranks on one GPU (NvlinkPairs::force, for testing on single-GPU
// machines: the "link" is then the GPU's own memory, reached through CUDA IPC).
// Every pair of the node is checked, so all local ranks reach the same verdict.
PairPlan plan_pair(int local_rank, const std::vector<std::string>& bus_of_local,
                   const std::function<bool(const std::string&, const std::string&)>& can_access,
                   bool allow_same_device);

// The element range [begin, end) position `pos` owns of a `count`-element message: the first half
// is rounded up to a multiple of `align` elements (alignment of the second half's start).
struct Range {
  std::size_t begin = 0, end = 0;
  std::size_t size() const { return end - begin; }
};
Range pair_half(std::size_t count, int pos, std::size_t align = 64);

// ---- order and tolerance ----
//
// The pair combines the two GPUs' values first (position 0's first, f32 accumulation for the
// narrow types, one rounding to the storage type), then the host stage reduces the L/2 pair
// results of the node left to right and the nodes combine as on the host path. The host path
// reduces all L local inputs left to right in one pass. Integer arithmetic (wrapping) and max/min
// (the earlier of equal values wins, NaN propagates, canonical NaN) do not depend on the grouping,
// so those results are bit-identical; floating sum, prod and avg are regrouped and differ in
// rounding, within the bound below.

// True where the pair's result equals the host path's bit for bit on one node: every integer type
// with every op, and max/min of every type. (Across nodes max/min may also resolve a +0/-0 tie
// between nodes to the other zero; integers stay bit-identical.)
bool pair_exact(ffb::DataType type, ffb::ReduceOp op);

// Half the smallest positive subnormal of the storage type: the absolute error of one rounding
// near zero (0 for integers). The relative error is ffb::unit_roundoff (f32 2^-24, f64 2^-53, f16
// 2^-11, bf16 2^-8, fp8 e4m3 2^-4, e5m2 2^-3).
double underflow_error(ffb::DataType type);

// What the tolerance is measured against, per element, from the inputs of all `ranks` ranks:
// sum_abs = sum |x_i|, prod_abs = prod |x_i|, prod_max1 = prod max(1, |x_i|).
struct InputMagnitude {
  double sum_abs = 0, prod_abs = 1, prod_max1 = 1;
};

// The most |pair result - host result| may be for one element, every value taken as the real
// number it encodes, when no partial result overflows (or saturates): a rigorous bound, not an
// estimate. Both results reduce the same n = `ranks` inputs by n - 1 binary combines (any tree:
// the pair, the node's left-to-right pass, the tree or the ring between nodes). Each combine
// rounds at most twice (the f32 operation and, for the narrow types, the storage rounding), each
// node's reduce once more at its end, avg twice more (its division): every input passes at most m
// roundings on its way to the result and the whole reduction has at most k. With relative error
// <= u per rounding, or absolute error <= eta near zero (Higham, Accuracy and Stability of
// Numerical Algorithms, ch. 2-4), each result is within E of the exact value, so the two are
// within 2 E:
//   sum:  E = gamma_m sum_abs     + k eta (1 + gamma_m),            m = 2n,      k = 3n
//   avg:  E = gamma_m sum_abs / n + k eta (1 + gamma_m),            m = 2n + 2,  k = 3n + 2
//   prod: E = gamma_m prod_abs    + k eta (1 + gamma_m) prod_max1,  m = k = 3n
// with gamma_m = m u / (1 - m u). 0 where pair_exact(); infinity where m u >= 1 (fp8 on many
// ranks: no bound is claimed).
double pair_tolerance(ffb::DataType type, ffb::ReduceOp op, int ranks, const InputMagnitude& mag);

}  // namespace hfreduce::gpu
