// Dispatcher: validates arguments, detects the CPU once and forwards to one level's kernels.
// Compiled with the baseline ISA so it runs everywhere.
#include "reduce_kernels.h"

#include <array>
#include <cmath>
#include <string>

#include "hfreduce/error.h"
#include "kernel_levels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace hfreduce::kernels {
namespace {

using ffb::SimdLevel;

// The library's one error type (hfreduce/error.h), for every refused argument.
[[noreturn]] void refuse_argument(const std::string& message) {
  throw Error(Status::invalid_argument, message);
}

constexpr std::array kCompiledLevels = {
    SimdLevel::portable,
#if defined(HFREDUCE_KERNELS_HAVE_AVX2)
    SimdLevel::avx2_f16c,
#endif
#if defined(HFREDUCE_KERNELS_HAVE_AVX512)
    SimdLevel::avx512,
#endif
};

// What the CPU (and the OS: __builtin_cpu_supports checks XCR0 for AVX state) can run; probed
// once, since CPUID is slow under a hypervisor.
struct CpuLevels {
  bool avx2_f16c = false;
  bool avx512 = false;
};

CpuLevels probe_cpu() {
  CpuLevels levels;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // F16C from CPUID leaf 1 directly: clang's __builtin_cpu_supports does not know "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  levels.avx2_f16c = f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  levels.avx512 = levels.avx2_f16c && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
  return levels;
}

bool cpu_supports(SimdLevel level) {
  static const CpuLevels cpu = probe_cpu();
  switch (level) {
    case SimdLevel::portable:
      return true;
    case SimdLevel::avx2_f16c:
      return cpu.avx2_f16c;
    case SimdLevel::avx512:
      return cpu.avx512;
  }
  return false;
}

bool compiled(SimdLevel level) {
  for (const SimdLevel l : kCompiledLevels)
    if (l == level) return true;
  return false;
}

detail::LevelKernels kernels_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::portable:
      return detail::portable_level_kernels();
#if defined(HFREDUCE_KERNELS_HAVE_AVX2)
    case SimdLevel::avx2_f16c:
      return detail::avx2_level_kernels();
#endif
#if defined(HFREDUCE_KERNELS_HAVE_AVX512)
    case SimdLevel::avx512:
      return detail::avx512_level_kernels();
#endif
    default:
      break;
  }
  refuse_argument(std::string("reduce kernels: SIMD level ") + level_name(level) +
                  " is not compiled in");
}

detail::LevelKernels runnable_kernels(SimdLevel level) {
  if (!level_runnable(level)) {
    refuse_argument(std::string("reduce kernels: SIMD level ") + level_name(level) +
                    " is not runnable on this CPU/build");
  }
  return kernels_for(level);
}

// The level picked once per process; a fact about the hardware, not an option.
const detail::LevelKernels& active_kernels() {
  static const detail::LevelKernels kernels = kernels_for(active_level());
  return kernels;
}

bool valid_type(ffb::DataType t) {
  for (const auto x : ffb::kAllDataTypes)
    if (x == t) return true;
  return false;
}

bool valid_op(ffb::ReduceOp op) {
  for (const auto x : ffb::kAllReduceOps)
    if (x == op) return true;
  return false;
}

detail::ReduceArgs validated(ffb::DataType type, ffb::ReduceOp op, const void* const* inputs,
                             int num_inputs, void* out, std::size_t n, double avg_divisor,
                             bool streaming_store) {
  if (!supported(type, op)) refuse_argument("reduce kernels: unsupported type/op");
  if (num_inputs < 1 || inputs == nullptr) {
    refuse_argument("reduce kernels: need at least one input");
  }
  if (n > 0) {
    if (out == nullptr) refuse_argument("reduce kernels: null output");
    for (int k = 0; k < num_inputs; ++k)
      if (inputs[k] == nullptr) refuse_argument("reduce kernels: null input");
  }
  if (op == ffb::ReduceOp::avg) {
    if (!(avg_divisor > 0.0) || !std::isfinite(avg_divisor)) {
      refuse_argument("reduce kernels: avg divisor must be positive and finite");
    }
    if (!ffb::is_floating(type) &&
        (avg_divisor != std::floor(avg_divisor) || avg_divisor > 9.0e18)) {
      refuse_argument("reduce kernels: integer avg needs an integral divisor");
    }
  } else {
    avg_divisor = 1.0;
  }
  return detail::ReduceArgs{type, op, inputs, num_inputs, out, n, avg_divisor, streaming_store};
}

bool f32_accumulated(ffb::DataType type) {
  using ffb::DataType;
  return type == DataType::f32 || type == DataType::f16 || type == DataType::bf16 ||
         type == DataType::f8e4m3 || type == DataType::f8e5m2;
}

}  // namespace

bool supported(ffb::DataType type, ffb::ReduceOp op) { return valid_type(type) && valid_op(op); }

std::span<const ffb::SimdLevel> compiled_levels() { return kCompiledLevels; }

bool level_runnable(ffb::SimdLevel level) { return compiled(level) && cpu_supports(level); }

ffb::SimdLevel active_level() {
  static const SimdLevel level = [] {
    SimdLevel best = SimdLevel::portable;
    for (const SimdLevel l : kCompiledLevels)
      if (cpu_supports(l)) best = l;  // kCompiledLevels is ordered worst to best
    return best;
  }();
  return level;
}

const char* level_name(ffb::SimdLevel level) {
  switch (level) {
    case SimdLevel::portable:
      return "portable";
    case SimdLevel::avx2_f16c:
      return "avx2+f16c";
    case SimdLevel::avx512:
      return "avx512";
  }
  return "unknown";
}

void reduce(ffb::DataType type, ffb::ReduceOp op, const void* const* inputs, int num_inputs,
            void* out, std::size_t n, double avg_divisor, bool streaming_store) {
  const auto args = validated(type, op, inputs, num_inputs, out, n, avg_divisor, streaming_store);
  if (n == 0) return;
  active_kernels().reduce(args);
}

void reduce_with(ffb::SimdLevel level, ffb::DataType type, ffb::ReduceOp op,
                 const void* const* inputs, int num_inputs, void* out, std::size_t n,
                 double avg_divisor, bool streaming_store) {
  const auto kernels = runnable_kernels(level);
  const auto args = validated(type, op, inputs, num_inputs, out, n, avg_divisor, streaming_store);
  if (n == 0) return;
  kernels.reduce(args);
}

void combine(ffb::DataType type, ffb::ReduceOp op, const void* a, const void* b, void* out,
             std::size_t n) {
  const std::array<const void*, 2> inputs = {a, b};
  const ffb::ReduceOp pairwise = op == ffb::ReduceOp::avg ? ffb::ReduceOp::sum : op;
  reduce(type, pairwise, inputs.data(), 2, out, n);
}

void encode_from_f32(ffb::SimdLevel level, ffb::DataType type, const float* in, void* out,
                     std::size_t n) {
  const auto kernels = runnable_kernels(level);
  if (!f32_accumulated(type)) {
    refuse_argument("encode_from_f32: only f32, f16, bf16 and fp8 types");
  }
  if (n == 0) return;
  if (in == nullptr || out == nullptr) refuse_argument("encode_from_f32: null buffer");
  kernels.encode_from_f32(type, in, out, n);
}

void decode_to_f32(ffb::SimdLevel level, ffb::DataType type, const void* in, float* out,
                   std::size_t n) {
  const auto kernels = runnable_kernels(level);
  if (!f32_accumulated(type)) {
    refuse_argument("decode_to_f32: only f32, f16, bf16 and fp8 types");
  }
  if (n == 0) return;
  if (in == nullptr || out == nullptr) refuse_argument("decode_to_f32: null buffer");
  kernels.decode_to_f32(type, in, out, n);
}

}  // namespace hfreduce::kernels
