// Multi-input elementwise reduce kernels for HFReduce's CPU stages, with run-time CPU dispatch.
//
// Semantics (identical, bit for bit, on every SIMD level, so every rank gets the same bits
// whatever CPU it runs on):
//   out[i] = op(...op(op(in[0][i], in[1][i]), in[2][i])..., in[L-1][i])   for i in [0, n)
//   - The order is fixed: inputs are combined left to right in the order given, so the same input
//     order gives the same result on every call, level and rank. Every input is read once and the
//     output written once per element (no L-1 pairwise passes over memory).
//   - f32 and f64 compute in their own precision. f16, bf16, fp8 e4m3 and fp8 e5m2 are widened to
//     f32, combined in f32 across all L inputs and rounded once (round to nearest even) at the end.
//   - avg = sum, then one division by `avg_divisor` (in f32; in f64 for f64), rounded once.
//     Integers: truncating division (C++ `/`); avg_divisor must then be a positive integer.
//     reduce(t, avg, {x}, 1, out, n, d) is therefore "out = x / d": the final step of a two-phase
//     average whose partial results were summed with op sum.
//   - Integers (i8, u8, i32, u32, i64, u64): sum and prod wrap around modulo 2^bits (two's
//     complement); max/min compare signed or unsigned as the type is; avg truncates.
//   - NaN: every op propagates NaN (max/min included: a NaN input makes the result NaN). A NaN
//     result is always written as the canonical quiet NaN, positive with zero payload (f32
//     0x7fc00000, f64 0x7ff8000000000000, f16 0x7e00, bf16 0x7fc0, fp8 0x7f): which input payload
//     would survive depends on operand order inside commutative instructions, so it is dropped.
//   - max/min: when values compare equal (+0 and -0), the earlier input wins.
//   - Rounding of every non-NaN value matches ffb::f32_to_f16, f32_to_bf16, f32_to_e4m3 and
//     f32_to_e5m2 exactly (round to nearest even; f16/bf16 overflow to infinity; fp8 saturates to
//     the largest finite value, +-448 and +-57344, infinities included).
//   - Buffers need no alignment and n may be anything. `out` may be identical to any input
//   (in-place
//     reduce); partial overlap between `out` and an input is not allowed.
//   - streaming_store: use non-temporal stores when the output is suitably aligned (the result is
//     not read back by this core soon, e.g. it goes to a NIC); silently uses normal stores
//     otherwise.
//
// Supported: every ffb::DataType with every ffb::ReduceOp (12 x 5). fp8 prod/max/min work like the
// other narrow types (f32 arithmetic, one rounding), though only sum/avg matter for training.
#pragma once

#include <cstddef>
#include <span>

#include "ffb/cpu.h"
#include "ffb/numeric.h"

namespace hfreduce::kernels {

// True for every (type, op) pair listed above; false only for values outside the enums.
bool supported(ffb::DataType type, ffb::ReduceOp op);

// The level reduce() uses: the best level that is both compiled in and supported by this CPU.
ffb::SimdLevel active_level();

// Levels built into this binary (portable always; AVX2 and AVX-512 on x86-64), best last.
std::span<const ffb::SimdLevel> compiled_levels();

// Compiled in and supported by this CPU (and the OS saves its registers).
bool level_runnable(ffb::SimdLevel level);

// "portable", "avx2+f16c", "avx512" (the same words as ffb::name_of).
const char* level_name(ffb::SimdLevel level);

// Reduces num_inputs >= 1 buffers of n elements into out (see the semantics above) on the active
// level. Throws hfreduce::Error(invalid_argument) on a bad argument (no inputs, null pointer, bad
// divisor).
void reduce(ffb::DataType type, ffb::ReduceOp op, const void* const* inputs, int num_inputs,
            void* out, std::size_t n, double avg_divisor = 1.0, bool streaming_store = false);

// Same on a given level (tests and benchmarks); throws hfreduce::Error(invalid_argument) if the
// level is not runnable here.
void reduce_with(ffb::SimdLevel level, ffb::DataType type, ffb::ReduceOp op,
                 const void* const* inputs, int num_inputs, void* out, std::size_t n,
                 double avg_divisor = 1.0, bool streaming_store = false);

// out = op(a, b) elementwise: the pairwise step of the inter-node stage. Same arithmetic as
// reduce() with inputs {a, b}; avg combines like sum (divide once at the end with reduce(avg) and
// a single input). out may be a or b.
void combine(ffb::DataType type, ffb::ReduceOp op, const void* a, const void* b, void* out,
             std::size_t n);

// Conversions with exactly the rounding reduce() applies, for the f32-accumulated types
// (f32, f16, bf16, f8e4m3, f8e5m2); other types throw hfreduce::Error(invalid_argument).
// encode: out[i] = round_to_type(in[i]), NaN -> canonical NaN; decode: out[i] = widen(in[i]),
// exact for every non-NaN code; a NaN code decodes to some NaN (payload unspecified, and for fp8
// the sign too).
void encode_from_f32(ffb::SimdLevel level, ffb::DataType type, const float* in, void* out,
                     std::size_t n);
void decode_to_f32(ffb::SimdLevel level, ffb::DataType type, const void* in, float* out,
                   std::size_t n);

}  // namespace hfreduce::kernels
