// Every compiled SIMD level of the reduce kernels against an independent scalar reference, bit for
// bit: every type and op, 1..9 inputs, unaligned pointers, lengths that are not multiples of any
// vector width, in-place and streaming stores, and NaN/inf/saturation behaviour.
#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "ffb/numeric.h"
#include "hfreduce/error.h"
#include "reduce_kernels.h"

namespace {

using ffb::DataType;
using ffb::ReduceOp;
using ffb::SimdLevel;
namespace kernels = hfreduce::kernels;

constexpr std::array kLevels = {SimdLevel::portable, SimdLevel::avx2_f16c, SimdLevel::avx512};

// Skips the calling test when the level cannot run here (not compiled, or the CPU lacks it).
#define SKIP_UNLESS_RUNNABLE(level)                                                 \
  do {                                                                              \
    if (!kernels::level_runnable(level)) {                                          \
      GTEST_SKIP() << "SIMD level " << kernels::level_name(level)                   \
                   << " is not compiled in or not supported by this CPU; skipping"; \
    }                                                                               \
  } while (false)

// ---- buffers with a chosen misalignment ----------------------------------------------------

// n elements of type t starting `offset_elems` elements past a 64-byte boundary, surrounded by
// guard bytes that a kernel must never write.
class Buffer {
 public:
  static constexpr unsigned char kGuard = 0xcd;

  Buffer(DataType t, std::size_t n, std::size_t offset_elems)
      : elem_(ffb::size_of(t)), n_(n), storage_((n + offset_elems) * elem_ + 192, kGuard) {
    const auto base = reinterpret_cast<std::uintptr_t>(storage_.data());
    const std::size_t pad = (64 - base % 64) % 64;
    data_ = storage_.data() + pad + offset_elems * elem_;
  }
  Buffer(const Buffer&) = delete;  // data_ points into storage_
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&&) noexcept = default;  // moving the vector keeps its heap block
  Buffer& operator=(Buffer&&) noexcept = default;

  unsigned char* data() { return data_; }
  const unsigned char* data() const { return data_; }

  // True if every byte outside the n elements still holds the guard value.
  bool guards_intact() const {
    const unsigned char* end = data_ + n_ * elem_;
    for (const unsigned char* p = storage_.data(); p < data_; ++p)
      if (*p != kGuard) return false;
    for (const unsigned char* p = end; p < storage_.data() + storage_.size(); ++p)
      if (*p != kGuard) return false;
    return true;
  }

 private:
  std::size_t elem_;
  std::size_t n_;
  std::vector<unsigned char> storage_;
  unsigned char* data_ = nullptr;
};

template <class T>
T load(const void* p, std::size_t i) {
  T v;
  std::memcpy(&v, static_cast<const unsigned char*>(p) + i * sizeof(T), sizeof(T));
  return v;
}

template <class T>
void store(void* p, std::size_t i, T v) {
  std::memcpy(static_cast<unsigned char*>(p) + i * sizeof(T), &v, sizeof(T));
}

// ---- the independent scalar reference -------------------------------------------------------

// The documented semantics, one element at a time: combine in input order; narrow floats in f32
// with one rounding at the end; integers wrap; max/min keep the earlier value on ties.
template <class T>
T float_step(ReduceOp op, T acc, T x) {
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg:
      return acc + x;
    case ReduceOp::prod:
      return acc * x;
    case ReduceOp::max:
      return (x > acc || std::isnan(x)) ? x : acc;
    case ReduceOp::min:
      return (x < acc || std::isnan(x)) ? x : acc;
  }
  return acc;
}

// Integers: Wide is the unsigned type of the same width (wrap-around), Signed for comparisons.
template <class T>
T int_step(ReduceOp op, T acc, T x) {
  using U = std::make_unsigned_t<T>;
  switch (op) {
    case ReduceOp::sum:
    case ReduceOp::avg:
      return static_cast<T>(static_cast<U>(static_cast<U>(acc) + static_cast<U>(x)));
    case ReduceOp::prod:
      // Multiply in a type at least as wide as int so u8 does not promote to signed int.
      return static_cast<T>(static_cast<U>(static_cast<std::uint64_t>(static_cast<U>(acc)) *
                                           static_cast<std::uint64_t>(static_cast<U>(x))));
    case ReduceOp::max:
      return x > acc ? x : acc;
    case ReduceOp::min:
      return x < acc ? x : acc;
  }
  return acc;
}

using DecodeFn = float (*)(std::uint32_t);
using EncodeFn = std::uint32_t (*)(float);

float decode_f16(std::uint32_t v) { return ffb::f16_to_f32(static_cast<std::uint16_t>(v)); }
float decode_bf16(std::uint32_t v) { return ffb::bf16_to_f32(static_cast<std::uint16_t>(v)); }
float decode_e4m3(std::uint32_t v) { return ffb::e4m3_to_f32(static_cast<std::uint8_t>(v)); }
float decode_e5m2(std::uint32_t v) { return ffb::e5m2_to_f32(static_cast<std::uint8_t>(v)); }
std::uint32_t encode_f16(float f) { return ffb::f32_to_f16(f); }
std::uint32_t encode_bf16(float f) { return ffb::f32_to_bf16(f); }
std::uint32_t encode_e4m3(float f) { return ffb::f32_to_e4m3(f); }
std::uint32_t encode_e5m2(float f) { return ffb::f32_to_e5m2(f); }

template <class Stored>
void reference_narrow(ReduceOp op, const std::vector<const void*>& in, void* out, std::size_t n,
                      double divisor, DecodeFn decode, EncodeFn encode) {
  for (std::size_t i = 0; i < n; ++i) {
    float acc = decode(load<Stored>(in[0], i));
    for (std::size_t k = 1; k < in.size(); ++k)
      acc = float_step(op, acc, decode(load<Stored>(in[k], i)));
    if (op == ReduceOp::avg) acc = acc / static_cast<float>(divisor);
    if (std::isnan(acc)) acc = std::numeric_limits<float>::quiet_NaN();  // canonical NaN
    store<Stored>(out, i, static_cast<Stored>(encode(acc)));
  }
}

template <class T>
void reference_float(ReduceOp op, const std::vector<const void*>& in, void* out, std::size_t n,
                     double divisor) {
  for (std::size_t i = 0; i < n; ++i) {
    T acc = load<T>(in[0], i);
    for (std::size_t k = 1; k < in.size(); ++k) acc = float_step(op, acc, load<T>(in[k], i));
    if (op == ReduceOp::avg) acc = acc / static_cast<T>(divisor);
    if (std::isnan(acc)) acc = std::numeric_limits<T>::quiet_NaN();  // canonical NaN
    store<T>(out, i, acc);
  }
}

template <class T>
void reference_int(ReduceOp op, const std::vector<const void*>& in, void* out, std::size_t n,
                   double divisor) {
  for (std::size_t i = 0; i < n; ++i) {
    T acc = load<T>(in[0], i);
    for (std::size_t k = 1; k < in.size(); ++k) acc = int_step(op, acc, load<T>(in[k], i));
    if (op == ReduceOp::avg) {
      if constexpr (std::is_unsigned_v<T>)
        acc = static_cast<T>(static_cast<std::uint64_t>(acc) / static_cast<std::uint64_t>(divisor));
      else
        acc = static_cast<T>(static_cast<std::int64_t>(acc) / static_cast<std::int64_t>(divisor));
    }
    store<T>(out, i, acc);
  }
}

void reference_reduce(DataType t, ReduceOp op, const std::vector<const void*>& in, void* out,
                      std::size_t n, double divisor) {
  switch (t) {
    case DataType::f32:
      return reference_float<float>(op, in, out, n, divisor);
    case DataType::f64:
      return reference_float<double>(op, in, out, n, divisor);
    case DataType::f16:
      return reference_narrow<std::uint16_t>(op, in, out, n, divisor, decode_f16, encode_f16);
    case DataType::bf16:
      return reference_narrow<std::uint16_t>(op, in, out, n, divisor, decode_bf16, encode_bf16);
    case DataType::f8e4m3:
      return reference_narrow<std::uint8_t>(op, in, out, n, divisor, decode_e4m3, encode_e4m3);
    case DataType::f8e5m2:
      return reference_narrow<std::uint8_t>(op, in, out, n, divisor, decode_e5m2, encode_e5m2);
    case DataType::i32:
      return reference_int<std::int32_t>(op, in, out, n, divisor);
    case DataType::i64:
      return reference_int<std::int64_t>(op, in, out, n, divisor);
    case DataType::u8:
      return reference_int<std::uint8_t>(op, in, out, n, divisor);
    case DataType::i8:
      return reference_int<std::int8_t>(op, in, out, n, divisor);
    case DataType::u32:
      return reference_int<std::uint32_t>(op, in, out, n, divisor);
    case DataType::u64:
      return reference_int<std::uint64_t>(op, in, out, n, divisor);
  }
}

// ---- random inputs -------------------------------------------------------------------------

bool is_nan_or_inf_code(DataType t, std::uint32_t code) {
  switch (t) {
    case DataType::f16:
      return (code & 0x7c00u) == 0x7c00u;
    case DataType::bf16:
      return (code & 0x7f80u) == 0x7f80u;
    case DataType::f8e4m3:
      return (code & 0x7fu) == 0x7fu;
    case DataType::f8e5m2:
      return (code & 0x7cu) == 0x7cu;
    default:
      return false;
  }
}

// Largest magnitude m such that `num_inputs` values in [-m, m] cannot overflow the integer type
// under op (sum: m * L <= max; prod: m^L <= max).
double integer_bound(DataType t, ReduceOp op, int num_inputs) {
  double max = 255.0;
  if (t == DataType::i8) max = 127.0;
  if (t == DataType::i32) max = 2147483647.0;
  if (t == DataType::u32) max = 4294967295.0;
  if (t == DataType::i64 || t == DataType::u64) max = 9.2e18;
  if (op == ReduceOp::max || op == ReduceOp::min)
    return t == DataType::i64 || t == DataType::u64 ? 9.0e18 : max;
  if (op == ReduceOp::prod) return std::floor(std::pow(max, 1.0 / num_inputs) + 1e-9);
  return std::floor(max / num_inputs);
}

// Fills n elements: finite values only (NaN semantics have their own tests); integers stay in a
// range without overflow; floats include both signed zeros to exercise the max/min tie rule.
void fill_random(DataType t, ReduceOp op, int num_inputs, void* p, std::size_t n,
                 std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::uniform_int_distribution<int> percent(0, 99);
  for (std::size_t i = 0; i < n; ++i) {
    const bool zero = percent(rng) < 3;
    const bool negative = percent(rng) < 50;
    switch (t) {
      case DataType::f32: {
        const double scale = op == ReduceOp::prod ? 4.0 : 1000.0;
        float v = zero ? 0.0f : static_cast<float>(unit(rng) * scale);
        if (zero && negative) v = -0.0f;
        store<float>(p, i, v);
        break;
      }
      case DataType::f64: {
        const double scale = op == ReduceOp::prod ? 4.0 : 1.0e6;
        double v = zero ? 0.0 : unit(rng) * scale;
        if (zero && negative) v = -0.0;
        store<double>(p, i, v);
        break;
      }
      case DataType::f16:
      case DataType::bf16: {  // any finite bit pattern: subnormals, huge values, both zeros
        std::uint32_t code = 0;
        do {
          code = static_cast<std::uint32_t>(rng()) & 0xffffu;
        } while (is_nan_or_inf_code(t, code));
        if (zero) code = negative ? 0x8000u : 0u;
        store<std::uint16_t>(p, i, static_cast<std::uint16_t>(code));
        break;
      }
      case DataType::f8e4m3:
      case DataType::f8e5m2: {
        std::uint32_t code = 0;
        do {
          code = static_cast<std::uint32_t>(rng()) & 0xffu;
        } while (is_nan_or_inf_code(t, code));
        if (zero) code = negative ? 0x80u : 0u;
        store<std::uint8_t>(p, i, static_cast<std::uint8_t>(code));
        break;
      }
      case DataType::i32: {
        const auto m = static_cast<std::int64_t>(integer_bound(t, op, num_inputs));
        store<std::int32_t>(
            p, i,
            static_cast<std::int32_t>(std::uniform_int_distribution<std::int64_t>(-m, m)(rng)));
        break;
      }
      case DataType::i64: {
        const auto m = static_cast<std::int64_t>(integer_bound(t, op, num_inputs));
        store<std::int64_t>(p, i, std::uniform_int_distribution<std::int64_t>(-m, m)(rng));
        break;
      }
      case DataType::u8: {
        const auto m = static_cast<int>(integer_bound(t, op, num_inputs));
        store<std::uint8_t>(
            p, i, static_cast<std::uint8_t>(std::uniform_int_distribution<int>(0, m)(rng)));
        break;
      }
      case DataType::i8: {
        const auto m = static_cast<int>(integer_bound(t, op, num_inputs));
        store<std::int8_t>(
            p, i, static_cast<std::int8_t>(std::uniform_int_distribution<int>(-m, m)(rng)));
        break;
      }
      case DataType::u32: {
        const auto m = static_cast<std::uint32_t>(integer_bound(t, op, num_inputs));
        store<std::uint32_t>(p, i, std::uniform_int_distribution<std::uint32_t>(0, m)(rng));
        break;
      }
      case DataType::u64: {
        const auto m = static_cast<std::uint64_t>(integer_bound(t, op, num_inputs));
        store<std::uint64_t>(p, i, std::uniform_int_distribution<std::uint64_t>(0, m)(rng));
        break;
      }
    }
  }
}

// Divisor for avg: a non-integer for floats (a real division), the input count for integers.
double avg_divisor_for(DataType t, int num_inputs) {
  return ffb::is_floating(t) ? num_inputs + 0.75 : static_cast<double>(num_inputs);
}

// First differing element, as a readable message; empty if equal.
std::string first_mismatch(DataType t, const void* got, const void* want, std::size_t n) {
  const std::size_t elem = ffb::size_of(t);
  for (std::size_t i = 0; i < n; ++i) {
    const auto* g = static_cast<const unsigned char*>(got) + i * elem;
    const auto* w = static_cast<const unsigned char*>(want) + i * elem;
    if (std::memcmp(g, w, elem) != 0) {
      std::uint64_t gv = 0;
      std::uint64_t wv = 0;
      std::memcpy(&gv, g, elem);
      std::memcpy(&wv, w, elem);
      char msg[160];
      std::snprintf(msg, sizeof msg, "element %zu: got bits 0x%llx (%g), want 0x%llx (%g)", i,
                    static_cast<unsigned long long>(gv), ffb::load_as_double(got, t, i),
                    static_cast<unsigned long long>(wv), ffb::load_as_double(want, t, i));
      return msg;
    }
  }
  return {};
}

// ---- the sweep: level x type x op ----------------------------------------------------------

using SweepParam = std::tuple<SimdLevel, DataType, ReduceOp>;

class ReduceSweep : public ::testing::TestWithParam<SweepParam> {};

TEST_P(ReduceSweep, MatchesScalarReferenceBitwise) {
  const auto [level, type, op] = GetParam();
  SKIP_UNLESS_RUNNABLE(level);
  ASSERT_TRUE(kernels::supported(type, op));
  constexpr std::array<std::size_t, 6> kLengths = {0, 1, 7, 15, 33, 1003};
  std::mt19937_64 rng(0x5eed0000u + static_cast<unsigned>(type) * 16u + static_cast<unsigned>(op));
  for (int num_inputs = 1; num_inputs <= 9; ++num_inputs) {
    const double divisor = avg_divisor_for(type, num_inputs);
    for (const std::size_t n : kLengths) {
      for (std::size_t misalign = 0; misalign < 8; ++misalign) {
        std::vector<Buffer> inputs;
        std::vector<const void*> pointers;
        for (int k = 0; k < num_inputs; ++k) {
          inputs.emplace_back(type, n, (misalign + static_cast<std::size_t>(k)) % 8);
          fill_random(type, op, num_inputs, inputs.back().data(), n, rng);
          pointers.push_back(inputs.back().data());
        }
        Buffer got(type, n, (misalign * 3) % 8);
        Buffer want(type, n, 0);
        kernels::reduce_with(level, type, op, pointers.data(), num_inputs, got.data(), n, divisor);
        reference_reduce(type, op, pointers, want.data(), n, divisor);
        const std::string mismatch = first_mismatch(type, got.data(), want.data(), n);
        ASSERT_TRUE(mismatch.empty())
            << "L=" << num_inputs << " n=" << n << " misalign=" << misalign << ": " << mismatch;
        ASSERT_TRUE(got.guards_intact())
            << "wrote outside the output: L=" << num_inputs << " n=" << n;
      }
    }
  }
}

TEST_P(ReduceSweep, InPlaceAndStreamingMatchReference) {
  const auto [level, type, op] = GetParam();
  SKIP_UNLESS_RUNNABLE(level);
  std::mt19937_64 rng(0xabcdefu + static_cast<unsigned>(type));
  constexpr int kInputs = 5;
  constexpr std::size_t n = 4099;  // several unrolled iterations plus a tail
  const double divisor = avg_divisor_for(type, kInputs);
  std::vector<Buffer> inputs;
  std::vector<const void*> pointers;
  for (int k = 0; k < kInputs; ++k) {
    inputs.emplace_back(type, n, 0);  // 64-byte aligned: streaming stores engage
    fill_random(type, op, kInputs, inputs.back().data(), n, rng);
    pointers.push_back(inputs.back().data());
  }
  Buffer want(type, n, 0);
  reference_reduce(type, op, pointers, want.data(), n, divisor);

  for (const bool streaming : {false, true}) {
    for (const std::size_t out_offset : {std::size_t{0}, std::size_t{3}}) {  // aligned, unaligned
      Buffer got(type, n, out_offset);
      kernels::reduce_with(level, type, op, pointers.data(), kInputs, got.data(), n, divisor,
                           streaming);
      EXPECT_EQ(first_mismatch(type, got.data(), want.data(), n), "")
          << "streaming=" << streaming << " out_offset=" << out_offset;
      EXPECT_TRUE(got.guards_intact()) << "streaming=" << streaming;
    }
  }

  // In place: the output is the first input, then the last one.
  for (const int alias : {0, kInputs - 1}) {
    std::vector<Buffer> copies;
    std::vector<const void*> copy_pointers;
    for (int k = 0; k < kInputs; ++k) {
      copies.emplace_back(type, n, 0);
      std::memcpy(copies.back().data(), inputs[static_cast<std::size_t>(k)].data(),
                  n * ffb::size_of(type));
      copy_pointers.push_back(copies.back().data());
    }
    void* out = copies[static_cast<std::size_t>(alias)].data();
    kernels::reduce_with(level, type, op, copy_pointers.data(), kInputs, out, n, divisor, true);
    EXPECT_EQ(first_mismatch(type, out, want.data(), n), "") << "in place on input " << alias;
  }
}

std::string sweep_name(const ::testing::TestParamInfo<SweepParam>& info) {
  const auto [level, type, op] = info.param;
  std::string name = std::string(kernels::level_name(level)) + "_" +
                     std::string(ffb::name_of(type)) + "_" + std::string(ffb::name_of(op));
  std::replace_if(
      name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(AllLevelsTypesOps, ReduceSweep,
                         ::testing::Combine(::testing::ValuesIn(kLevels),
                                            ::testing::ValuesIn(ffb::kAllDataTypes),
                                            ::testing::ValuesIn(ffb::kAllReduceOps)),
                         sweep_name);

// ---- special values: NaN, infinity, saturation, cross-level determinism ---------------------

class ReduceSpecial : public ::testing::TestWithParam<SimdLevel> {};

template <class T>
std::vector<T> reduce_vectors(SimdLevel level, DataType t, ReduceOp op,
                              const std::vector<std::vector<T>>& in, double divisor = 1.0) {
  std::vector<const void*> pointers;
  pointers.reserve(in.size());
  for (const auto& v : in) pointers.push_back(v.data());
  std::vector<T> out(in[0].size());
  kernels::reduce_with(level, t, op, pointers.data(), static_cast<int>(in.size()), out.data(),
                       out.size(), divisor);
  return out;
}

// Documented choice: every op, max/min included, propagates NaN, written as the canonical NaN.
TEST_P(ReduceSpecial, MaxMinAndSumPropagateNaN) {
  const SimdLevel level = GetParam();
  SKIP_UNLESS_RUNNABLE(level);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // NaN in the first, middle and last input, in lanes 0, 5 and 17 (and none in lane 9).
  const std::size_t n = 19;
  std::vector<std::vector<float>> in(3, std::vector<float>(n, 1.0f));
  in[0][0] = nan;
  in[1][5] = nan;
  in[2][17] = nan;
  for (const ReduceOp op : {ReduceOp::max, ReduceOp::min, ReduceOp::sum, ReduceOp::prod}) {
    const auto out = reduce_vectors(level, DataType::f32, op, in);
    for (const std::size_t lane : {0u, 5u, 17u}) {
      EXPECT_EQ(std::bit_cast<std::uint32_t>(out[lane]), 0x7fc00000u)
          << ffb::name_of(op) << " lane " << lane << ": not the canonical NaN";
    }
    EXPECT_FALSE(std::isnan(out[9])) << ffb::name_of(op);
  }
  // The same through f16, bf16 and f64.
  std::vector<std::vector<std::uint16_t>> halves(3, std::vector<std::uint16_t>(n, 0x3c00u));
  halves[1][5] = 0x7e00u;
  for (const ReduceOp op : {ReduceOp::max, ReduceOp::min}) {
    const auto out = reduce_vectors(level, DataType::f16, op, halves);
    EXPECT_EQ(out[5], 0x7e00u);
    EXPECT_EQ(out[4], 0x3c00u);
  }
  std::vector<std::vector<std::uint16_t>> bhalves(3, std::vector<std::uint16_t>(n, 0x3f80u));
  bhalves[2][5] = 0xffc1u;  // negative NaN with a payload
  for (const ReduceOp op : {ReduceOp::max, ReduceOp::min}) {
    const auto out = reduce_vectors(level, DataType::bf16, op, bhalves);
    EXPECT_EQ(out[5], 0x7fc0u);
  }
  std::vector<std::vector<double>> doubles(2, std::vector<double>(n, 2.0));
  doubles[0][3] = std::numeric_limits<double>::quiet_NaN();
  for (const ReduceOp op : {ReduceOp::max, ReduceOp::min}) {
    const auto out = reduce_vectors(level, DataType::f64, op, doubles);
    EXPECT_EQ(std::bit_cast<std::uint64_t>(out[3]), 0x7ff8000000000000u);
    EXPECT_EQ(out[2], 2.0);
  }
}

TEST_P(ReduceSpecial, Fp8SumSaturates) {
  const SimdLevel level = GetParam();
  SKIP_UNLESS_RUNNABLE(level);
  const std::size_t n = 37;
  // e4m3: 9 x 448 saturates to 448 (0x7e), -9 x 448 to -448 (0xfe).
  std::vector<std::vector<std::uint8_t>> e4m3(9, std::vector<std::uint8_t>(n, 0x7eu));
  for (auto& v : e4m3) v[1] = 0xfeu;
  auto out = reduce_vectors(level, DataType::f8e4m3, ReduceOp::sum, e4m3);
  EXPECT_EQ(out[0], 0x7eu);
  EXPECT_EQ(out[1], 0xfeu);
  // e5m2: max + max saturates to 57344 (0x7b); an infinite input saturates too.
  std::vector<std::vector<std::uint8_t>> e5m2(2, std::vector<std::uint8_t>(n, 0x7bu));
  e5m2[0][1] = 0x7cu;  // +inf
  e5m2[1][2] = 0xfcu;  // -inf + 57344 = -inf -> -57344
  e5m2[0][2] = 0x3cu;  // 1.0
  out = reduce_vectors(level, DataType::f8e5m2, ReduceOp::sum, e5m2);
  EXPECT_EQ(out[0], 0x7bu);
  EXPECT_EQ(out[1], 0x7bu);
  EXPECT_EQ(out[2], 0xfbu);
  // NaN stays NaN (canonical 0x7f, whatever the sign of the input NaN).
  e4m3[3][4] = 0xffu;
  out = reduce_vectors(level, DataType::f8e4m3, ReduceOp::sum, e4m3);
  EXPECT_EQ(out[4], 0x7fu);
}

TEST_P(ReduceSpecial, IntegersWrapAround) {
  const SimdLevel level = GetParam();
  SKIP_UNLESS_RUNNABLE(level);
  std::vector<std::vector<std::int32_t>> i32(2, std::vector<std::int32_t>(9, 2147483647));
  EXPECT_EQ(reduce_vectors(level, DataType::i32, ReduceOp::sum, i32)[8], -2);
  EXPECT_EQ(reduce_vectors(level, DataType::i32, ReduceOp::prod, i32)[8], 1);
  std::vector<std::vector<std::uint8_t>> u8(3, std::vector<std::uint8_t>(33, 200));
  EXPECT_EQ(reduce_vectors(level, DataType::u8, ReduceOp::sum, u8)[32], (600 % 256));
  EXPECT_EQ(reduce_vectors(level, DataType::u8, ReduceOp::prod, u8)[0], (200 * 200 * 200) % 256);
  std::vector<std::vector<std::int64_t>> i64(2, std::vector<std::int64_t>(5, INT64_MIN));
  EXPECT_EQ(reduce_vectors(level, DataType::i64, ReduceOp::sum, i64)[4], 0);
  std::vector<std::vector<std::int8_t>> i8(2, std::vector<std::int8_t>(70, 100));
  EXPECT_EQ(reduce_vectors(level, DataType::i8, ReduceOp::sum, i8)[69], -56);  // 200 - 256
  EXPECT_EQ(reduce_vectors(level, DataType::i8, ReduceOp::prod, i8)[0], 16);   // 10000 % 256
  std::vector<std::vector<std::uint32_t>> u32(2, std::vector<std::uint32_t>(17, 0xffffffffu));
  EXPECT_EQ(reduce_vectors(level, DataType::u32, ReduceOp::sum, u32)[16], 0xfffffffeu);
  EXPECT_EQ(reduce_vectors(level, DataType::u32, ReduceOp::max, u32)[3], 0xffffffffu);
  std::vector<std::vector<std::uint64_t>> u64{std::vector<std::uint64_t>(9, ~0ull),
                                              std::vector<std::uint64_t>(9, 3)};
  EXPECT_EQ(reduce_vectors(level, DataType::u64, ReduceOp::sum, u64)[8], 2u);
  EXPECT_EQ(reduce_vectors(level, DataType::u64, ReduceOp::min, u64)[8], 3u);  // unsigned order
  // Unsigned avg divides unsigned: 2^64 - 2 over 2 is 2^63 - 1, not a negative int64 halved.
  std::vector<std::vector<std::uint64_t>> big{std::vector<std::uint64_t>(3, ~0ull - 1)};
  EXPECT_EQ(reduce_vectors(level, DataType::u64, ReduceOp::avg, big, 2.0)[2],
            0x7fffffffffffffffull);
  // Integer avg truncates toward zero: (-7 + -8) / 2 = -7.
  std::vector<std::vector<std::int32_t>> avg = {std::vector<std::int32_t>(3, -7),
                                                std::vector<std::int32_t>(3, -8)};
  EXPECT_EQ(reduce_vectors(level, DataType::i32, ReduceOp::avg, avg, 2.0)[2], -7);
}

// Special inputs (NaN with payloads, infinities, subnormals, signed zeros) give the same bits on
// every level: the cross-rank determinism HFReduce relies on, beyond what the reference checks.
TEST_P(ReduceSpecial, SpecialValuesIdenticalToPortable) {
  const SimdLevel level = GetParam();
  SKIP_UNLESS_RUNNABLE(level);
  std::mt19937_64 rng(77);
  const std::size_t n = 1000 + 29;
  for (const DataType type : ffb::kAllDataTypes) {
    const std::size_t elem = ffb::size_of(type);
    std::vector<std::vector<unsigned char>> inputs(4, std::vector<unsigned char>(n * elem));
    std::vector<const void*> pointers;
    for (auto& in : inputs) {
      for (auto& byte : in) byte = static_cast<unsigned char>(rng());  // every bit pattern
      pointers.push_back(in.data());
    }
    for (const ReduceOp op : ffb::kAllReduceOps) {
      std::vector<unsigned char> got(n * elem);
      std::vector<unsigned char> want(n * elem);
      kernels::reduce_with(level, type, op, pointers.data(), 4, got.data(), n, 4.0);
      kernels::reduce_with(SimdLevel::portable, type, op, pointers.data(), 4, want.data(), n, 4.0);
      EXPECT_EQ(first_mismatch(type, got.data(), want.data(), n), "")
          << ffb::name_of(type) << " " << ffb::name_of(op);
    }
  }
}

TEST_P(ReduceSpecial, EncodeDecodeMatchScalarConversions) {
  const SimdLevel level = GetParam();
  SKIP_UNLESS_RUNNABLE(level);
  // Decode every 16-bit pattern; f16 NaNs gain the quiet bit (as F16C does), nothing else differs.
  std::vector<std::uint16_t> codes(65536);
  for (std::uint32_t c = 0; c < 65536; ++c) codes[c] = static_cast<std::uint16_t>(c);
  std::vector<float> decoded(codes.size());
  kernels::decode_to_f32(level, DataType::f16, codes.data(), decoded.data(), codes.size());
  for (std::uint32_t c = 0; c < 65536; ++c) {
    const auto want = std::bit_cast<std::uint32_t>(ffb::f16_to_f32(static_cast<std::uint16_t>(c)));
    const auto got = std::bit_cast<std::uint32_t>(decoded[c]);
    const bool nan = (c & 0x7c00u) == 0x7c00u && (c & 0x3ffu) != 0;
    ASSERT_EQ(got, nan ? (want | 0x00400000u) : want) << "f16 code " << c;
  }
  kernels::decode_to_f32(level, DataType::bf16, codes.data(), decoded.data(), codes.size());
  for (std::uint32_t c = 0; c < 65536; ++c) {
    ASSERT_EQ(std::bit_cast<std::uint32_t>(decoded[c]), c << 16) << "bf16 code " << c;
  }
  std::vector<std::uint8_t> bytes(256);
  for (std::uint32_t c = 0; c < 256; ++c) bytes[c] = static_cast<std::uint8_t>(c);
  for (const DataType t : {DataType::f8e4m3, DataType::f8e5m2}) {
    kernels::decode_to_f32(level, t, bytes.data(), decoded.data(), bytes.size());
    for (std::uint32_t c = 0; c < 256; ++c) {
      const float want = t == DataType::f8e4m3 ? ffb::e4m3_to_f32(static_cast<std::uint8_t>(c))
                                               : ffb::e5m2_to_f32(static_cast<std::uint8_t>(c));
      if (std::isnan(want)) {  // NaN payload (and sign) of a decoded fp8 NaN are unspecified
        ASSERT_TRUE(std::isnan(decoded[c])) << ffb::name_of(t) << " code " << c;
        continue;
      }
      ASSERT_EQ(std::bit_cast<std::uint32_t>(decoded[c]), std::bit_cast<std::uint32_t>(want))
          << ffb::name_of(t) << " code " << c;
    }
  }

  // Encode: a strided sweep over all 2^32 f32 patterns, plus every grid point and every midpoint
  // (the ties) of each narrow format, both signs, with their f32 neighbours.
  std::vector<float> values;
  for (std::uint64_t bits = 0; bits < (1ull << 32); bits += 4093) {
    values.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(bits)));
  }
  const auto add_neighbourhood = [&values](float v) {
    for (const float w : {v, -v}) {
      values.push_back(w);
      values.push_back(std::nextafter(w, 0.0f));
      values.push_back(std::nextafter(w, w < 0 ? -INFINITY : INFINITY));
    }
  };
  const auto add_grid = [&add_neighbourhood](float (*decode)(std::uint32_t),
                                             std::uint32_t num_codes) {
    for (std::uint32_t c = 0; c + 1 < num_codes; ++c) {  // non-negative codes, increasing magnitude
      const float base = decode(c);
      if (!std::isfinite(base)) continue;
      float next = decode(c + 1);
      if (!std::isfinite(next)) next = base + (base - decode(c - 1));  // one step past the max
      add_neighbourhood(base);
      add_neighbourhood((base + next) / 2);  // exact in f32: the narrow formats have <= 11 bits
    }
  };
  for (const std::uint32_t nan_bits :
       {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u, 0x7fffffffu})
    values.push_back(std::bit_cast<float>(nan_bits));
  add_grid(decode_f16, 0x8000u);
  add_grid(decode_bf16, 0x8000u);
  add_grid(decode_e4m3, 0x80u);
  add_grid(decode_e5m2, 0x80u);
  std::vector<std::uint16_t> halves(values.size());
  std::vector<std::uint8_t> quarters(values.size());
  kernels::encode_from_f32(level, DataType::f16, values.data(), halves.data(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    // Exactly ffb::f32_to_f16, except that every NaN becomes the canonical 0x7e00.
    const std::uint16_t want = std::isnan(values[i]) ? 0x7e00u : ffb::f32_to_f16(values[i]);
    ASSERT_EQ(halves[i], want) << "f16 from f32 bits 0x" << std::hex
                               << std::bit_cast<std::uint32_t>(values[i]);
  }
  kernels::encode_from_f32(level, DataType::bf16, values.data(), halves.data(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::uint16_t want = std::isnan(values[i]) ? 0x7fc0u : ffb::f32_to_bf16(values[i]);
    ASSERT_EQ(halves[i], want) << "bf16 from f32 bits 0x" << std::hex
                               << std::bit_cast<std::uint32_t>(values[i]);
  }
  for (const DataType t : {DataType::f8e4m3, DataType::f8e5m2}) {
    kernels::encode_from_f32(level, t, values.data(), quarters.data(), values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::uint8_t want = std::isnan(values[i])   ? 0x7fu
                                : t == DataType::f8e4m3 ? ffb::f32_to_e4m3(values[i])
                                                        : ffb::f32_to_e5m2(values[i]);
      ASSERT_EQ(quarters[i], want) << ffb::name_of(t) << " from f32 bits 0x" << std::hex
                                   << std::bit_cast<std::uint32_t>(values[i]);
    }
  }
}

std::string level_param_name(const ::testing::TestParamInfo<SimdLevel>& info) {
  std::string name = kernels::level_name(info.param);
  std::replace_if(
      name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(AllLevels, ReduceSpecial, ::testing::ValuesIn(kLevels), level_param_name);

// ---- dispatcher and API -----------------------------------------------------------------------

TEST(ReduceDispatch, ActiveLevelIsRunnableAndReported) {
  const SimdLevel active = kernels::active_level();
  EXPECT_TRUE(kernels::level_runnable(active));
  EXPECT_TRUE(kernels::level_runnable(SimdLevel::portable));
  // Announce what this machine tests, so a log shows which levels really ran.
  std::string runnable;
  for (const SimdLevel l : kernels::compiled_levels()) {
    runnable += std::string(kernels::level_name(l)) +
                (kernels::level_runnable(l) ? " (runs here) " : " (compiled, CPU lacks it) ");
  }
  std::printf("active SIMD level: %s; compiled: %s\n", kernels::level_name(active),
              runnable.c_str());
  for (const DataType t : ffb::kAllDataTypes)
    for (const ReduceOp op : ffb::kAllReduceOps) EXPECT_TRUE(kernels::supported(t, op));
}

TEST(ReduceDispatch, RejectsBadArguments) {
  const float a[4] = {1, 2, 3, 4};
  float out[4] = {};
  const void* inputs[1] = {a};
  EXPECT_THROW(kernels::reduce(DataType::f32, ReduceOp::sum, inputs, 0, out, 4), hfreduce::Error);
  EXPECT_THROW(kernels::reduce(DataType::f32, ReduceOp::avg, inputs, 1, out, 4, 0.0),
               hfreduce::Error);
  EXPECT_THROW(kernels::reduce(DataType::i32, ReduceOp::avg, inputs, 1, out, 4, 2.5),
               hfreduce::Error);
  const void* null_inputs[1] = {nullptr};
  EXPECT_THROW(kernels::reduce(DataType::f32, ReduceOp::sum, null_inputs, 1, out, 4),
               hfreduce::Error);
  EXPECT_THROW(kernels::encode_from_f32(SimdLevel::portable, DataType::i32, a, out, 4),
               hfreduce::Error);
  EXPECT_NO_THROW(kernels::reduce(DataType::f32, ReduceOp::sum, inputs, 1, out, 0));
}

TEST(ReduceDispatch, CombineIsPairwiseReduceAndAvgCombinesAsSum) {
  std::mt19937_64 rng(3);
  const std::size_t n = 517;
  for (const DataType type : ffb::kAllDataTypes) {
    const std::size_t elem = ffb::size_of(type);
    std::vector<unsigned char> a(n * elem);
    std::vector<unsigned char> b(n * elem);
    fill_random(type, ReduceOp::sum, 2, a.data(), n, rng);
    fill_random(type, ReduceOp::sum, 2, b.data(), n, rng);
    const void* inputs[2] = {a.data(), b.data()};
    for (const ReduceOp op : ffb::kAllReduceOps) {
      std::vector<unsigned char> got(n * elem);
      std::vector<unsigned char> want(n * elem);
      kernels::combine(type, op, a.data(), b.data(), got.data(), n);
      const ReduceOp expected_op = op == ReduceOp::avg ? ReduceOp::sum : op;
      kernels::reduce(type, expected_op, inputs, 2, want.data(), n);
      EXPECT_EQ(first_mismatch(type, got.data(), want.data(), n), "")
          << ffb::name_of(type) << " " << ffb::name_of(op);
    }
    // In place on the first operand, as the inter-node stage does.
    std::vector<unsigned char> want(n * elem);
    kernels::reduce(type, ReduceOp::sum, inputs, 2, want.data(), n);
    kernels::combine(type, ReduceOp::sum, a.data(), b.data(), a.data(), n);
    EXPECT_EQ(first_mismatch(type, a.data(), want.data(), n), "") << ffb::name_of(type);
  }
}

// Two-phase average: sum, then reduce(avg) of a single input divides once.
TEST(ReduceDispatch, SingleInputAvgDividesOnce) {
  const std::vector<std::uint16_t> sums = {ffb::f32_to_bf16(10.0f), ffb::f32_to_bf16(-3.0f),
                                           ffb::f32_to_bf16(1.0f)};
  std::vector<std::uint16_t> out(sums.size());
  const void* inputs[1] = {sums.data()};
  kernels::reduce(DataType::bf16, ReduceOp::avg, inputs, 1, out.data(), out.size(), 4.0);
  EXPECT_EQ(out[0], ffb::f32_to_bf16(2.5f));
  EXPECT_EQ(out[1], ffb::f32_to_bf16(-0.75f));
  EXPECT_EQ(out[2], ffb::f32_to_bf16(0.25f));
}

}  // namespace
