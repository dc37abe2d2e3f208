#include "ffb/membw.h"

#include <algorithm>
#include <barrier>
#include <chrono>
#include <limits>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "ffb/sizes.h"

namespace ffb {

const char* name_of(StreamKernel k) { return k == StreamKernel::copy ? "copy" : "add"; }
int arrays_of(StreamKernel k) { return k == StreamKernel::copy ? 2 : 3; }

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<std::uint64_t>::max() : r;
}

std::string llc_text(const LastLevelCache& llc) {
  if (llc.instances > 1)
    return fmt::format("{} = {} x L{}, {}", format_size(llc.bytes), llc.instances, llc.level,
                       llc.source);
  return fmt::format("{}, {}", format_size(llc.bytes), llc.source);
}

std::string working_set_text(const MembwPlan& p) {
  return fmt::format("{} arrays x {} x {} {}{} = {}", p.arrays, format_size(p.bytes_per_array),
                     p.threads, p.unit, p.threads == 1 ? "" : "s", format_size(p.working_set));
}

}  // namespace

std::string MembwPlan::shortfall() const {
  return fmt::format("{} is more than half of MemAvailable ({})", working_set_text(*this),
                     format_size(mem_available));
}

MembwPlan plan_membw_for(int arrays, int concurrent_threads_on_node, std::uint64_t requested_bytes,
                         const LastLevelCache& llc, std::uint64_t mem_available,
                         std::string_view unit) {
  MembwPlan p;
  p.arrays = std::max(1, arrays);
  p.threads = std::max(1, concurrent_threads_on_node);
  p.llc_bytes = llc.bytes;
  p.llc_source = llc.source;
  p.mem_available = mem_available;
  p.automatic = requested_bytes == 0;
  p.unit = unit;
  const std::uint64_t streams = static_cast<std::uint64_t>(p.arrays) * p.threads;
  if (p.automatic) {
    const std::uint64_t target = saturating_mul(kMembwLlcFactor, llc.bytes);
    const std::uint64_t per = std::max(kMembwMinArrayBytes, (target + streams - 1) / streams);
    p.bytes_per_array = (per + kMiB - 1) / kMiB * kMiB;
  } else {
    p.bytes_per_array = requested_bytes;
  }
  p.working_set = saturating_mul(streams, p.bytes_per_array);
  const double times =
      llc.bytes > 0 ? static_cast<double>(p.working_set) / static_cast<double>(llc.bytes) : 0.0;
  const bool meets = p.working_set >= saturating_mul(kMembwLlcFactor, llc.bytes) &&
                     p.bytes_per_array >= kMembwMinArrayBytes;
  const std::string rule_text = fmt::format("working set >= {} x LLC, arrays >= {}",
                                            kMembwLlcFactor, format_size(kMembwMinArrayBytes));
  p.rule = fmt::format("{} = {} x LLC ({}); ", working_set_text(p),
                       times >= 100 ? fmt::format("{:.0f}", times) : fmt::format("{:.3g}", times),
                       llc_text(llc));
  if (p.automatic)
    p.rule += "rule: " + rule_text;
  else
    p.rule += fmt::format("explicit size, {} the rule ({})", meets ? "meets" : "below", rule_text);
  return p;
}

MembwPlan plan_membw(int arrays, int concurrent_threads_on_node, std::uint64_t requested_bytes,
                     std::string_view unit) {
  return plan_membw_for(arrays, concurrent_threads_on_node, requested_bytes, last_level_cache(),
                        mem_available_bytes(), unit);
}

namespace {

struct Arrays {
  std::unique_ptr<float[]> a, b, c;  // b only for add
  std::size_t n = 0;
};

void run_kernel(StreamKernel k, Arrays& x) {
  float* __restrict c = x.c.get();
  const float* __restrict a = x.a.get();
  const float* __restrict b = x.b.get();
  if (k == StreamKernel::copy) {
    for (std::size_t i = 0; i < x.n; ++i) c[i] = a[i];
  } else {
    for (std::size_t i = 0; i < x.n; ++i) c[i] = a[i] + b[i];
  }
}

void first_touch(StreamKernel k, Arrays& x) {
  for (std::size_t i = 0; i < x.n; ++i) {
    x.a[i] = 1.0f;
    x.c[i] = 0.0f;
  }
  if (k == StreamKernel::add)
    for (std::size_t i = 0; i < x.n; ++i) x.b[i] = 2.0f;
}

double steady_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

MembwResult summarise(StreamKernel kernel, int threads, std::size_t bytes,
                      const std::vector<double>& start, const std::vector<double>& end) {
  const double moved = static_cast<double>(bytes) * threads * arrays_of(kernel);
  MembwResult r{kernel, threads, bytes, 0, 0, {}, start, end};
  double sum = 0;
  for (std::size_t i = 0; i < start.size(); ++i) {
    const double s = end[i] - start[i];
    const double g = s > 0 ? moved / s / 1e9 : 0.0;
    r.rep_gbps.push_back(g);
    r.gbps = std::max(r.gbps, g);
    sum += g;
  }
  r.gbps_mean = sum / static_cast<double>(start.size());
  return r;
}

}  // namespace

MembwResult measure_membw(StreamKernel kernel, int threads, std::size_t bytes_per_array,
                          int repetitions, const std::function<void()>& before_each) {
  threads = std::max(1, threads);
  repetitions = std::max(1, repetitions);
  // Allocated here (so that running out of memory throws on this thread), touched by the owner.
  std::vector<Arrays> arrays(static_cast<std::size_t>(threads));
  for (auto& x : arrays) {
    x.n = std::max<std::size_t>(1, bytes_per_array / sizeof(float));
    x.a = std::make_unique_for_overwrite<float[]>(x.n);
    x.c = std::make_unique_for_overwrite<float[]>(x.n);
    if (kernel == StreamKernel::add) x.b = std::make_unique_for_overwrite<float[]>(x.n);
  }
  std::vector<double> start(static_cast<std::size_t>(repetitions), 0.0), end = start;
  std::barrier sync(threads);
  auto body = [&](int t) {
    auto& x = arrays[static_cast<std::size_t>(t)];
    first_touch(kernel, x);
    run_kernel(kernel, x);  // warm-up
    for (int r = 0; r < repetitions; ++r) {
      if (t == 0 && before_each) before_each();
      sync.arrive_and_wait();
      if (t == 0) start[static_cast<std::size_t>(r)] = steady_s();
      run_kernel(kernel, x);
      sync.arrive_and_wait();  // the repetition ends when the slowest thread does
      if (t == 0) end[static_cast<std::size_t>(r)] = steady_s();
    }
  };
  {
    std::vector<std::jthread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
    body(0);
  }
  return summarise(kernel, threads, arrays.front().n * sizeof(float), start, end);
}

}  // namespace ffb
