// Internal interface between the dispatcher (reduce_kernels.cpp, baseline ISA) and the per-ISA
// translation units (level_*.cpp). Only plain data and function declarations live here: nothing
// inline, so no function compiled with AVX-512 flags can be picked by the linker for a caller that
// runs on a CPU without AVX-512.
#pragma once

#include <cstddef>

#include "ffb/numeric.h"

namespace hfreduce::kernels::detail {

// Arguments already validated by the dispatcher.
struct ReduceArgs {
  ffb::DataType type;
  ffb::ReduceOp op;
  const void* const* inputs;  // num_inputs >= 1 non-null pointers
  int num_inputs;
  void* out;
  std::size_t n;
  double avg_divisor;  // > 0 (integral for integer types); used only for avg
  bool streaming_store;
};

// The entry points one SIMD level provides.
struct LevelKernels {
  void (*reduce)(const ReduceArgs& args);
  // Only f32, f16, bf16, f8e4m3, f8e5m2 (checked by the dispatcher).
  void (*encode_from_f32)(ffb::DataType type, const float* in, void* out, std::size_t n);
  void (*decode_to_f32)(ffb::DataType type, const void* in, float* out, std::size_t n);
};

LevelKernels portable_level_kernels();
#if defined(HFREDUCE_KERNELS_HAVE_AVX2)
LevelKernels avx2_level_kernels();
#endif
#if defined(HFREDUCE_KERNELS_HAVE_AVX512)
LevelKernels avx512_level_kernels();
#endif

}  // namespace hfreduce::kernels::detail
