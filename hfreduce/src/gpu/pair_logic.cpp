#include "gpu/pair_logic.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace hfreduce::gpu {

PairPlan plan_pair(int local_rank, const std::vector<std::string>& bus_of_local,
                   const std::function<bool(const std::string&, const std::string&)>& can_access,
                   bool allow_same_device) {
  PairPlan plan;
  const int n = static_cast<int>(bus_of_local.size());
  if (local_rank < 0 || local_rank >= n) {
    plan.reason = "local rank out of range";
    return plan;
  }
  plan.position = local_rank % 2;
  plan.partner_local = local_rank ^ 1;
  if (n % 2 != 0) {
    plan.reason = "this node has " + std::to_string(n) +
                  " ranks: an odd count cannot be split into GPU pairs";
    return plan;
  }
  for (int a = 0; a < n; a += 2) {
    const std::string& da = bus_of_local[static_cast<std::size_t>(a)];
    const std::string& db = bus_of_local[static_cast<std::size_t>(a + 1)];
    if (da == db) {
      if (!allow_same_device) {
        plan.reason = "local ranks " + std::to_string(a) + " and " + std::to_string(a + 1) +
                      " share GPU " + da +
                      " (no link to use; nvlink_pairs force pairs them anyway, for testing)";
        return plan;
      }
      continue;
    }
    if (!can_access(da, db) || !can_access(db, da)) {
      plan.reason = "GPUs " + da + " and " + db + " (local ranks " + std::to_string(a) + " and " +
                    std::to_string(a + 1) + ") have no peer-to-peer access";
      return plan;
    }
  }
  plan.ok = true;
  return plan;
}

Range pair_half(std::size_t count, int pos, std::size_t align) {
  if (align == 0) align = 1;
  std::size_t h = (count + 1) / 2;
  h = (h + align - 1) / align * align;
  h = std::min(h, count);
  return pos == 0 ? Range{0, h} : Range{h, count};
}

bool pair_exact(ffb::DataType type, ffb::ReduceOp op) {
  return !ffb::is_floating(type) || op == ffb::ReduceOp::max || op == ffb::ReduceOp::min;
}

double underflow_error(ffb::DataType type) {
  // Half the smallest subnormal (f64: the smallest subnormal itself, as half of it is no double).
  switch (type) {
    case ffb::DataType::f32:
      return std::ldexp(1.0, -150);
    case ffb::DataType::f64:
      return std::ldexp(1.0, -1074);
    case ffb::DataType::f16:
      return std::ldexp(1.0, -25);
    case ffb::DataType::bf16:
      return std::ldexp(1.0, -134);
    case ffb::DataType::f8e4m3:
      return std::ldexp(1.0, -10);
    case ffb::DataType::f8e5m2:
      return std::ldexp(1.0, -17);
    default:
      return 0.0;
  }
}

double pair_tolerance(ffb::DataType type, ffb::ReduceOp op, int ranks, const InputMagnitude& mag) {
  if (pair_exact(type, op)) return 0.0;
  const double n = std::max(1, ranks);
  const bool avg = op == ffb::ReduceOp::avg, prod = op == ffb::ReduceOp::prod;
  const double m = prod ? 3 * n : avg ? 2 * n + 2 : 2 * n;
  const double k = prod ? 3 * n : avg ? 3 * n + 2 : 3 * n;
  const double u = ffb::unit_roundoff(type), eta = underflow_error(type);
  if (m * u >= 1.0) return std::numeric_limits<double>::infinity();
  const double gamma = m * u / (1.0 - m * u);
  double e = 0;
  if (prod)
    e = gamma * mag.prod_abs + k * eta * (1 + gamma) * mag.prod_max1;
  else
    e = gamma * (avg ? mag.sum_abs / n : mag.sum_abs) + k * eta * (1 + gamma);
  return 2.0 * e;
}

}  // namespace hfreduce::gpu
